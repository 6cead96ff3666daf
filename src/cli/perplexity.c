/* owl perplexity: perplexity of a model over a text, and with --kl-base its
 * KL divergence to a base model (e.g. a quantized file against the original). */
#include "cli/args.h"
#include "eval/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "perplexity";

static void perplexity_help(FILE *f) {
    fprintf(f, "usage: owl perplexity MODEL -f TEXT [options]\n"
               "\n"
               "Measures the perplexity of MODEL on the text file TEXT as llama.cpp's\n"
               "perplexity tool does: the text is tokenized (BOS first) and cut into\n"
               "windows of --ctx tokens, each starting with BOS; the second half of each\n"
               "window is scored. Prints the running estimate after each window, then\n"
               "PPL = X +/- E (standard error of the per-token log-likelihoods).\n"
               "\n"
               "  -f, --file TEXT       the text (at least two windows of tokens)\n"
               "  -c, --ctx N           window length (default 512, or the model's context\n"
               "                        if smaller)\n"
               "      --chunks K        evaluate only the first K windows\n"
               "      --kl-base BASE    also run BASE (e.g. the unquantized model, a GGUF file\n"
               "                        or its Hugging Face directory) on the\n"
               "                        same windows: mean KL(BASE || MODEL), top-1\n"
               "                        agreement, BASE's perplexity and the ratio\n"
               "  -t, --threads N       threads (default 0: all cores)\n"
               "  -h, --help            this text\n");
}

static void on_chunk(void *ud, int chunk, int n, const owl_eval_result *r) {
    (void)ud;
    printf("%s[%d]%.4f", chunk > 1 ? "," : "", chunk, r->ppl);
    if (chunk == n) putchar('\n');
    fflush(stdout);
}

int cli_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL, *base_path = NULL;
    int n_ctx = 0, n_chunks = 0, threads = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (options_done || a[0] != '-' || a[1] == 0) {
            if (!model_path) model_path = a;
            else return cli_usage_error(CMD, "unexpected argument '%s'", a);
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (cli_is_help(a)) {
            perplexity_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            file = v;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (!cli_parse_int(CMD, a, v, 4, 1 << 24, &n_ctx)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--chunks") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (!cli_parse_int(CMD, a, v, 1, 1 << 30, &n_chunks)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--kl-base") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            base_path = v;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (!cli_parse_int(CMD, a, v, 0, 4096, &threads)) return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (!model_path) return cli_usage_error(CMD, "no model given");
    if (!file) return cli_usage_error(CMD, "no text given (-f FILE)");
    if (!cli_model_path_ok(CMD, model_path)) return CLI_EXIT_RUNTIME;
    if (base_path && !cli_model_path_ok(CMD, base_path)) return CLI_EXIT_RUNTIME;
    owl_set_threads(threads);

    size_t len = 0;
    char *text = cli_read_text(CMD, "text file", file, &len);
    if (!text) return CLI_EXIT_RUNTIME;
    int rc = CLI_EXIT_RUNTIME;
    owl_model *model = cli_load_model(CMD, model_path, NULL), *base = NULL;
    if (!model) goto done;
    if (base_path && !(base = cli_load_model(CMD, base_path, NULL))) goto done;

    owl_ppl_params pp = {.n_ctx = n_ctx, .n_chunks = n_chunks, .on_chunk = on_chunk};
    owl_eval_result r;
    double t0 = owl_time_ms();
    owl_status st = owl_eval_perplexity(model, base, text, len, &pp, &r);
    if (st != OWL_OK) {
        const char *msg = owl_last_error(); /* the library's "perplexity: " is said by the prefix already */
        rc = cli_error(CMD, "%s", strncmp(msg, "perplexity: ", 12) == 0 ? msg + 12 : msg);
        goto done;
    }
    double secs = (owl_time_ms() - t0) / 1000.0;
    printf("scored tokens: %llu (%.1f s)\n", (unsigned long long)r.n, secs);
    printf("PPL = %.4f +/- %.4f\n", r.ppl, r.ppl_err);
    if (base) {
        printf("base PPL = %.4f +/- %.4f\n", r.base_ppl, r.base_ppl_err);
        printf("PPL ratio = %.6f +/- %.6f\n", r.ppl_ratio, r.ppl_ratio_err);
        printf("mean KL = %.6g +/- %.3g\n", r.kl, r.kl_err);
        printf("KL median = %.6g, 99%% = %.6g, max = %.6g\n", r.kl_median, r.kl_p99, r.kl_max);
        printf("top-1 agreement = %.3f +/- %.3f %%\n", 100.0 * r.agree, 100.0 * r.agree_err);
    }
    rc = CLI_EXIT_OK;
done:
    owl_model_free(base);
    owl_model_free(model);
    free(text);
    return rc;
}
