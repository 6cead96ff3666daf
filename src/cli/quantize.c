/* owl quantize: a GGUF (F32 / F16 / BF16) in, a quantized GGUF out. */
#include "cli/args.h"
#include "eval/eval.h"
#include "govern/govern.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *CMD = "quantize";

static void quantize_help(FILE *f) {
    fprintf(f,
            "usage: owl quantize IN OUT --type TYPE [options]\n"
            "\n"
            "Quantizes the model IN (a GGUF file with F32, F16 or BF16 weights, or a\n"
            "Hugging Face directory, converted as 'owl convert' does) into the GGUF file\n"
            "OUT. TYPE is one of llama.cpp's mixes, which keep more bits where\n"
            "they matter (Q4_K_M: attn_v and ffn_down of some layers in Q6_K, the output\n"
            "matrix in Q6_K), or a pure block type (Q3_K, Q4_K, Q5_K: every matrix), or\n"
            "F32 / F16 / BF16. Norms and other 1-D tensors stay F32. Types:\n"
            "  %s\n"
            "\n"
            "  -t, --type TYPE         the mix or type (required)\n"
            "      --threads N         threads (default 0: all cores)\n"
            "      --pure              no mix: every matrix gets TYPE's main type (Q4_K for\n"
            "                          Q4_K_M), the output matrix too\n"
            "      --allow-requantize  accept an input that is already quantized\n"
            "                          (dequantized first; loses more than quantizing\n"
            "                          the original)\n"
            "  -h, --help              this text\n"
            "\n"
            "OUT is written to a temporary file and renamed into place: on any failure\n"
            "nothing is left behind.\n",
            owl_eval_mix_names());
}

typedef struct progress {
    bool tty;
    double t0;
} progress;

static void on_tensor(void *ud, size_t i, size_t n, const owl_weight *in, owl_dtype out) {
    progress *p = ud;
    if (!p->tty) return;
    int width = 30, done = (int)((double)i / (double)n * width);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu %-28.28s %s -> %-5s", done, "##############################",
            width - done, "", i, n, in->name, owl_dtype_name(in->dtype), owl_dtype_name(out));
    if (i == n) fputs("\r\033[K", stderr);
    fflush(stderr);
}

static double mb(uint64_t b) { return (double)b / 1e6; }

int cli_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    int threads = 0;
    bool allow_requantize = false, pure = false, options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (options_done || a[0] != '-' || a[1] == 0) {
            if (!in) in = a;
            else if (!out) out = a;
            else return cli_usage_error(CMD, "unexpected argument '%s'", a);
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (cli_is_help(a)) {
            quantize_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--type") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            type = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            if (!cli_parse_int(CMD, a, v, 0, 4096, &threads)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--pure") == 0) {
            pure = true;
        } else if (strcmp(a, "--allow-requantize") == 0) {
            allow_requantize = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (!in) return cli_usage_error(CMD, "no input model given");
    if (!out) return cli_usage_error(CMD, "no output file given");
    if (!type) return cli_usage_error(CMD, "no --type given (one of %s)", owl_eval_mix_names());
    const owl_quant_mix *mix = owl_eval_mix_find(type);
    if (!mix) return cli_usage_error(CMD, "unknown type '%s' (one of %s)", type, owl_eval_mix_names());
    if (strcmp(in, out) == 0) return cli_usage_error(CMD, "the output '%s' is the input", out);
    if (!(in = cli_model_resolve(CMD, in, false))) return CLI_EXIT_RUNTIME; /* a store name */
    owl_quant_mix pure_mix = *mix; /* the same name and file type, without the rules */
    pure_mix.rules = false;
    if (pure) mix = &pure_mix;

    /* fail before the work when the output cannot be written: its folder
     * missing, not a folder or not writable, or OUT itself a folder */
    struct stat sb;
    if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) return cli_error(CMD, "cannot write %s: it is a folder", out);
    char *dir_copy = strdup(out);
    if (!dir_copy) return cli_error(CMD, "out of memory");
    const char *dir = dirname(dir_copy);
    int dir_err = stat(dir, &sb) != 0 ? errno : !S_ISDIR(sb.st_mode) ? ENOTDIR : access(dir, W_OK) != 0 ? errno : 0;
    if (dir_err) {
        int rc = cli_error(CMD, "cannot write %s: folder %s: %s", out, dir, strerror(dir_err));
        free(dir_copy);
        return rc;
    }
    free(dir_copy);
    owl_set_threads(threads);

    /* A Hugging Face directory goes through owl convert's path (names, keys,
     * Q/K permutation) into an F32 GGUF beside OUT, which is mapped and then
     * unlinked at once (the mapping outlives the name). */
    char *tmp = NULL;
    if (owl_is_dir(in)) {
        size_t n = strlen(out) + 32;
        tmp = malloc(n);
        if (!tmp) return cli_error(CMD, "out of memory");
        snprintf(tmp, n, "%s.f32.XXXXXX", out);
        int fd = mkstemp(tmp);
        if (fd < 0) {
            int rc = cli_error(CMD, "cannot write %s: %s", tmp, strerror(errno));
            free(tmp);
            return rc;
        }
        close(fd);
        if (owl_hf_convert(in, tmp, OWL_F32) != OWL_OK) {
            int rc = cli_error(CMD, "%s", owl_last_error());
            unlink(tmp);
            free(tmp);
            return rc;
        }
    }
    owl_weights ws;
    owl_status st = owl_weights_open(tmp ? tmp : in, NULL, &ws);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    if (st != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    if (strcmp(ws.format, "gguf") != 0) {
        int rc = cli_error(CMD, "%s: %s input is not supported (give a GGUF file or a Hugging Face directory)", in,
                           ws.format);
        owl_weights_free(&ws);
        return rc;
    }
    progress pr = {.tty = isatty(2) != 0, .t0 = owl_time_ms()};
    owl_quantize_params qp = {.mix = mix, .allow_requantize = allow_requantize, .on_tensor = on_tensor, .ud = &pr};
    owl_quantize_stats qs;
    st = owl_eval_quantize(&ws, out, &qp, &qs);
    owl_weights_free(&ws);
    if (st != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    if (owl_manifest_write_derived(out, in, "owl quantize") != OWL_OK) /* digests, source, licence carried over */
        return cli_error(CMD, "wrote %s, but not its manifest: %s", out, owl_last_error());
    double secs = (owl_time_ms() - pr.t0) / 1000.0;
    fprintf(stderr,
            "owl quantize: %s (%.2f MB) -> %s (%s, %.2f MB, %.2fx smaller): %zu of %zu tensors converted, "
            "%zu with a fallback type, %.1f s\n",
            in, mb(qs.in_bytes), out, mix->name, mb(qs.out_bytes),
            qs.out_bytes ? (double)qs.in_bytes / (double)qs.out_bytes : 0.0, qs.n_quantized, qs.n_tensors,
            qs.n_fallback, secs);
    return CLI_EXIT_OK;
}
