/* owl run: generate text from a prompt, streaming it to stdout. */
#include "chat/conversation.h"
#include "cli/args.h"
#include "cli/govern_cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *CMD = "run";

static void run_help(FILE *f) {
    owl_sampler_params d;
    owl_sampler_defaults(&d);
    fprintf(f,
            "usage: owl run MODEL [-p PROMPT | -f FILE] [options]\n"
            "\n"
            "Generates text after PROMPT and streams it to stdout (the prompt is echoed\n"
            "first, like llama2.c). Timings go to stderr. MODEL is a GGUF file, a\n"
            "Hugging Face model directory, or a llama2.c checkpoint (.bin) with its\n"
            "tokenizer.bin beside it or given with --tokenizer. Generation stops at\n"
            "the end-of-sequence token (or BOS, like llama2.c), after N tokens, or when\n"
            "the context is full.\n"
            "\n"
            "input:\n"
            "  -p, --prompt TEXT      the prompt (default: empty: start from BOS alone)\n"
            "  -f, --file FILE        read the prompt from FILE\n"
            "      --no-bos           do not put BOS before the prompt\n"
            "      --tokenizer PATH   tokenizer.bin for a llama2.c checkpoint\n"
            "      --policy FILE      refuse the model unless the policy (JSON: licences,\n"
            "                         uses, pinned digests; see src/govern/policy.c) allows it\n"
            "      --chat             the prompt is a user message: render it with the\n"
            "                         model's chat template (ChatML if it has none), print\n"
            "                         only the answer, stop at the end of the turn\n"
            "      --system TEXT      with --chat: a system message first\n"
            "      --lora PATH[:SCALE] apply a LoRA adapter (PEFT directory or GGUF adapter)\n"
            "                         times SCALE (default 1); repeatable, up to 8\n"
            "  -c, --ctx-size N       context size in tokens (default 0: the model's)\n"
            "  -n, --n-predict N      tokens to generate (default -1: until EOS or the\n"
            "                         context is full)\n"
            "  -t, --threads N        threads (default 0: all cores)\n"
            "\n"
            "sampling (temperature 0 is greedy: always the most likely token):\n"
            "      --temp T           temperature (default %.2f)\n"
            "      --top-k K          keep the K most likely tokens, 0 = off (default %d)\n"
            "      --top-p P          keep the smallest set with probability >= P,\n"
            "                         1 = off (default %.2f)\n"
            "      --min-p P          drop tokens less likely than P x the most likely,\n"
            "                         0 = off (default %.2f)\n"
            "      --repeat-penalty R divide (multiply if negative) the logits of recent\n"
            "                         tokens by R, 1 = off (default %.2f)\n"
            "      --repeat-last-n N  how many recent tokens the penalty looks at,\n"
            "                         -1 = the whole context (default %d)\n"
            "  -s, --seed S           random seed, 0..2^64-1 (default: random, printed\n"
            "                         to stderr)\n"
            "\n"
            "output:\n"
            "      --ids              print the generated token ids (space-separated, one\n"
            "                         line) instead of the text\n"
            "  -q, --quiet            no timings on stderr\n"
            "  -h, --help             this text\n",
            (double)d.temperature, d.top_k, (double)d.top_p, (double)d.min_p, (double)d.repeat_penalty,
            d.repeat_last_n);
}

static uint64_t random_seed(void) {
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
        close(fd);
    }
    if (s == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    return s;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

typedef struct run_opts {
    const char *model, *prompt, *prompt_file, *tokenizer, *system, *policy;
    int n_predict, n_ctx, threads, repeat_last_n;
    bool no_bos, ids, quiet, seed_given, chat;
    cli_lora_list lora;
    owl_sampler_params sp;
} run_opts;

/* Returns -1 when the options are good, else the exit code. */
static int parse(int argc, char **argv, run_opts *o) {
    memset(o, 0, sizeof *o);
    owl_sampler_defaults(&o->sp);
    o->n_predict = -1;
    o->repeat_last_n = o->sp.repeat_last_n;
    bool options_done = false;
    const cli_gen_flags gen_flags = {&o->n_predict, &o->n_ctx,        &o->threads, &o->repeat_last_n,
                                     &o->sp,        &o->seed_given, &o->lora};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (options_done || a[0] != '-' || a[1] == 0) {
            if (o->model) return cli_usage_error(CMD, "unexpected argument '%s' (the model is '%s')", a, o->model);
            o->model = a;
            continue;
        }
#define FLAG(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
#define VALUE()                                                  \
    do {                                                         \
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE; \
    } while (0)
        int gen = cli_gen_flag(CMD, argc, argv, &i, &gen_flags);
        if (gen < 0) return CLI_EXIT_USAGE;
        if (gen > 0) continue;
        if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (cli_is_help(a)) {
            run_help(stdout);
            return CLI_EXIT_OK;
        } else if (FLAG("-p", "--prompt")) {
            VALUE();
            o->prompt = v;
        } else if (FLAG("-f", "--file")) {
            VALUE();
            o->prompt_file = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            VALUE();
            o->tokenizer = v;
        } else if (strcmp(a, "--policy") == 0) {
            VALUE();
            o->policy = v;
        } else if (strcmp(a, "--chat") == 0) {
            o->chat = true;
        } else if (strcmp(a, "--system") == 0) {
            VALUE();
            o->system = v;
        } else if (strcmp(a, "--no-bos") == 0) {
            o->no_bos = true;
        } else if (strcmp(a, "--ids") == 0) {
            o->ids = true;
        } else if (FLAG("-q", "--quiet")) {
            o->quiet = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef FLAG
#undef VALUE
    }
    if (!o->model) return cli_usage_error(CMD, "no model given");
    if (o->prompt && o->prompt_file) return cli_usage_error(CMD, "give the prompt with -p or -f, not both");
    if (o->system && !o->chat) return cli_usage_error(CMD, "--system needs --chat");
    return -1;
}

/* Writes text to stdout at once (the stream is the product). */
static bool emit(const char *s, size_t n) {
    if (n && fwrite(s, 1, n, stdout) != n) return false;
    return fflush(stdout) == 0;
}

int cli_run(int argc, char **argv) {
    run_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;

    char *file_text = NULL;
    size_t prompt_len = 0;
    const char *prompt = o.prompt ? o.prompt : "";
    if (o.prompt_file) {
        file_text = cli_read_text(CMD, "prompt file", o.prompt_file, &prompt_len);
        if (!file_text) return CLI_EXIT_RUNTIME;
        prompt = file_text;
    } else {
        prompt_len = strlen(prompt);
    }

    owl_set_threads(o.threads);
    if (!o.seed_given) o.sp.seed = random_seed();

    int ret = CLI_EXIT_RUNTIME;
    owl_model *model = NULL;
    owl_ctx *ctx = NULL;
    owl_sampler *smp = NULL;
    owl_detok *dt = NULL;
    owl_conv *conv = NULL;
    owl_lora **loras = NULL;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    int n_gen = 0;
    owl_status st;

    if (o.policy && cli_policy_enforce(CMD, o.policy, o.model)) goto done;
    double t_load = now_ms();
    model = cli_load_model(CMD, o.model, o.tokenizer);
    if (!model) goto done;
    t_load = now_ms() - t_load;
    const owl_tokenizer *tok = owl_model_tokenizer(model);
    owl_model_info info;
    owl_model_get_info(model, &info);

    if (o.chat) { /* one user message through the chat template */
        st = owl_conv_new(model, NULL, &conv);
        if (st == OWL_OK && owl_conv_template_origin(conv) == OWL_CONV_TEMPLATE_CHATML)
            fprintf(stderr, "owl run: model '%s' has no chat template: using ChatML\n", o.model);
        if (st == OWL_OK && o.system) st = owl_conv_add(conv, "system", o.system, strlen(o.system));
        if (st == OWL_OK) st = owl_conv_add(conv, "user", prompt, prompt_len);
        if (st == OWL_OK) st = owl_conv_tokenize(conv, true, NULL, &ids, &n_ids);
        if (st != OWL_OK) {
            cli_error(CMD, "cannot render the prompt with the chat template: %s", owl_last_error());
            goto done;
        }
    } else {
        st = owl_tokenize(tok, prompt, prompt_len, !o.no_bos, false, &ids, &n_ids);
    }
    if (st != OWL_OK) {
        cli_error(CMD, "cannot tokenize the prompt: %s", owl_last_error());
        goto done;
    }
    if (n_ids == 0) {
        ret = cli_usage_error(CMD, "nothing to start from: the prompt is empty and %s",
                              o.no_bos ? "--no-bos was given" : "the model has no BOS token");
        goto done;
    }
    st = owl_ctx_new(model, o.n_ctx, &ctx);
    if (st != OWL_OK) {
        cli_error(CMD, "cannot create a context of %d tokens: %s", o.n_ctx, owl_last_error());
        goto done;
    }
    if (o.lora.n && !cli_lora_attach(CMD, model, ctx, &o.lora, &loras)) goto done;
    int n_ctx = owl_ctx_size(ctx);
    if (n_ids > (size_t)n_ctx) {
        cli_error(CMD, "the prompt is %zu tokens, longer than the context of %d tokens (see -c)", n_ids, n_ctx);
        goto done;
    }
    o.sp.repeat_last_n = o.repeat_last_n < 0 ? n_ctx : o.repeat_last_n;
    st = owl_sampler_new(&o.sp, info.n_vocab, &smp);
    if (st == OWL_OK) st = owl_detok_new(tok, &dt);
    if (st != OWL_OK) {
        cli_error(CMD, "%s", owl_last_error());
        goto done;
    }
    if (!o.quiet && !o.seed_given && o.sp.temperature > 0.0f) fprintf(stderr, "owl run: seed %llu\n", (unsigned long long)o.sp.seed);

    int32_t bos = owl_token_bos(tok), eos = owl_token_eos(tok);
    /* Echo the prompt through the same streaming decoder. */
    for (size_t i = 0; i < n_ids; i++) {
        owl_sampler_accept(smp, ids[i]);
        if (o.ids) continue;
        if (o.chat) { /* only the answer is printed */
            owl_detok_prime(dt, ids[i]);
            continue;
        }
        size_t len;
        const char *s = owl_detok_push(dt, ids[i], &len);
        if (s && !emit(s, len)) {
            cli_error(CMD, "cannot write to stdout");
            goto done;
        }
    }

    double t_prompt = now_ms();
    st = owl_ctx_eval(ctx, ids, (int)n_ids, false);
    t_prompt = now_ms() - t_prompt;
    if (st != OWL_OK) {
        cli_error(CMD, "evaluating the prompt failed: %s", owl_last_error());
        goto done;
    }

    int max_gen = o.n_predict < 0 ? n_ctx : o.n_predict;
    gen = malloc(((size_t)max_gen + 1) * sizeof *gen);
    if (!gen) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    bool ctx_full = false;
    double t_gen = now_ms();
    while (n_gen < max_gen || o.n_predict < 0) {
        int32_t t = owl_sampler_sample(smp, owl_ctx_logits(ctx, -1));
        if (t < 0) {
            cli_error(CMD, "the model produced no usable logits (all NaN) at position %d", owl_ctx_pos(ctx));
            goto done;
        }
        if (t == eos || t == bos || (conv && owl_conv_is_stop(conv, t))) break;
        owl_sampler_accept(smp, t);
        gen[n_gen++] = t;
        if (!o.ids) {
            size_t len;
            const char *s = owl_detok_push(dt, t, &len);
            if (s && !emit(s, len)) {
                cli_error(CMD, "cannot write to stdout");
                goto done;
            }
        }
        if (n_gen == max_gen && o.n_predict >= 0) break;
        if (owl_ctx_pos(ctx) >= n_ctx) {
            ctx_full = true;
            break;
        }
        st = owl_ctx_eval(ctx, &t, 1, false);
        if (st != OWL_OK) {
            cli_error(CMD, "evaluating token %d failed: %s", n_gen, owl_last_error());
            goto done;
        }
    }
    t_gen = now_ms() - t_gen;

    if (o.ids) {
        for (int i = 0; i < n_gen; i++) printf(i ? " %d" : "%d", gen[i]);
        printf("\n");
    } else {
        size_t len;
        const char *s = owl_detok_flush(dt, &len);
        if (s) emit(s, len);
        printf("\n");
    }
    if (fflush(stdout) != 0) {
        cli_error(CMD, "cannot write to stdout");
        goto done;
    }
    if (!o.quiet) {
        if (ctx_full) fprintf(stderr, "owl run: the context of %d tokens is full\n", n_ctx);
        fprintf(stderr, "owl run: load %.1f ms; prompt %zu tokens in %.1f ms (%.1f tok/s); "
                        "generated %d tokens in %.1f ms (%.1f tok/s); %d thread%s\n",
                t_load, n_ids, t_prompt, t_prompt > 0 ? (double)n_ids * 1e3 / t_prompt : 0.0, n_gen, t_gen,
                t_gen > 0 ? n_gen * 1e3 / t_gen : 0.0, owl_get_threads(), owl_get_threads() == 1 ? "" : "s");
    }
    ret = CLI_EXIT_OK;

done:
    free(gen);
    free(ids);
    owl_detok_free(dt);
    owl_conv_free(conv);
    owl_sampler_free(smp);
    owl_ctx_free(ctx);
    cli_lora_free(loras, o.lora.n);
    owl_model_free(model);
    free(file_text);
    return ret;
}
