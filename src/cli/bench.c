/* owl bench: prompt processing and generation speed, measured against the
 * machine's own memory read bandwidth. */
#include "base/base.h"
#include "cli/args.h"
#include "tensor/tensor.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *CMD = "bench";

static void bench_help(FILE *f) {
    fprintf(f,
            "usage: owl bench MODEL [options]\n"
            "       owl bench --peak [-t N] [--seconds S] [--json]\n"
            "\n"
            "Measures, like llama-bench's pp512 and tg128:\n"
            "  pp  prompt processing: P tokens evaluated in one batch from an empty cache\n"
            "  tg  generation: N tokens evaluated one at a time from an empty cache\n"
            "each repeated R times after a warm-up (median, min and max tokens/s), then\n"
            "the machine's memory read bandwidth with the same threads, the bytes of\n"
            "weights read per generated token, the achieved bytes/s of generation\n"
            "(tg tok/s x bytes per token) as a fraction of that bandwidth, and the\n"
            "ratio of pp to tg speed per token; then the peak of the matrix unit that\n"
            "matches the weights (AMX int8 for quantized weights, whose dot products\n"
            "are integer, AMX bf16 for float weights; AVX-512 where there is no AMX)\n"
            "and pp's FLOP/s as a fraction of it. pp FLOPs = 2 x the layer matrices'\n"
            "parameters x P + the output head for the last token + attention\n"
            "(4 x q_dim x P(P+1)/2 per layer).\n"
            "\n"
            "--peak measures the machine instead, on 1 and N threads: AMX int8\n"
            "(tdpbssd) and bf16 (tdpbf16ps) tile loops, AVX-512 VNNI int8, BF16 and\n"
            "FP32 dot loops (data in registers; the best of several trials) and the\n"
            "memory read bandwidth.\n"
            "\n"
            "  -p, --n-prompt P       prompt tokens, 0 = skip pp (default 512)\n"
            "  -n, --n-gen N          generated tokens, 0 = skip tg (default 128)\n"
            "  -r, --repetitions R    measured runs of each test (default 5)\n"
            "  -t, --threads N        threads (default 0: all cores)\n"
            "      --tokenizer PATH   tokenizer.bin for a llama2.c checkpoint\n"
            "      --bw-seconds S     time spent measuring bandwidth (default 1.0)\n"
            "      --bw-mib M         bandwidth buffer in MiB (default 1024)\n"
            "      --no-bandwidth     do not measure the bandwidth\n"
            "      --no-peak          do not measure the matrix unit's peak\n"
            "      --peak             measure the machine's peak throughput (no MODEL)\n"
            "      --seconds S        time per unit and thread count for --peak and the\n"
            "                         peak of a model run (default 0.5)\n"
            "      --json             print one JSON object instead of the table\n"
            "      --lora PATH[:SCALE] measure with a LoRA adapter applied (repeatable)\n"
            "  -h, --help             this text\n");
}

typedef struct stats {
    double median, min, max; /* tokens/s */
    int n;
} stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static stats summarize(double *v, int n) {
    stats s = {0, 0, 0, n};
    if (n == 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

/* CPU seconds of the whole process (all threads). */
static double cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One pp run: P tokens at once from an empty cache. Returns tokens/s or -1;
 * *cpu_rate: tokens per CPU second of the process x threads (the speed if
 * each thread had a core to itself; spinning threads count as busy). */
static double run_pp(owl_ctx *ctx, const int32_t *toks, int p, int threads, double *cpu_rate) {
    owl_ctx_truncate(ctx, 0);
    double t0 = owl_time_ms(), c0 = cpu_seconds();
    if (owl_ctx_eval(ctx, toks, p, false) != OWL_OK) return -1;
    double ms = owl_time_ms() - t0, cs = cpu_seconds() - c0;
    *cpu_rate = cs > 0 ? p * threads / cs : 0;
    return ms > 0 ? p * 1e3 / ms : 0;
}

/* One tg run: N single-token evaluations from an empty cache. */
static double run_tg(owl_ctx *ctx, const int32_t *toks, int n, int threads, double *cpu_rate) {
    owl_ctx_truncate(ctx, 0);
    double t0 = owl_time_ms(), c0 = cpu_seconds();
    for (int i = 0; i < n; i++)
        if (owl_ctx_eval(ctx, &toks[i], 1, false) != OWL_OK) return -1;
    double ms = owl_time_ms() - t0, cs = cpu_seconds() - c0;
    *cpu_rate = cs > 0 ? n * threads / cs : 0;
    return ms > 0 ? n * 1e3 / ms : 0;
}

static json_t *stats_json(const char *name, int tokens, stats s, stats cpu) {
    return json_pack("{s:s, s:i, s:i, s:f, s:f, s:f, s:f}", "test", name, "tokens", tokens, "repetitions", s.n,
                     "tok_s_median", s.median, "tok_s_min", s.min, "tok_s_max", s.max, "tok_s_cpu_median", cpu.median);
}

/* owl bench --peak: each unit on 1 and on n threads, then the bandwidth. */
static int bench_peak(int threads, double seconds, bool json, float bw_seconds, int bw_mib, bool no_bw) {
    int counts[2] = {1, threads};
    int nc = threads > 1 ? 2 : 1;
    json_t *root = json ? json_object() : NULL, *arr = json ? json_array() : NULL;
    if (json && (!root || !arr)) {
        json_decref(root);
        json_decref(arr);
        return cli_error(CMD, "out of memory");
    }
    if (!json) printf("%-12s %8s %14s %14s\n", "unit", "threads", "GOP/s", "per thread");
    for (int u = 0; u < OWL_PEAK_COUNT; u++) {
        bool avail = owl_peak_available((owl_peak_unit)u);
        for (int c = 0; c < nc; c++) {
            double ops = avail ? owl_peak_measure((owl_peak_unit)u, counts[c], seconds) : 0.0;
            if (json) {
                json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:i, s:o, s:o}", "unit", owl_peak_name((owl_peak_unit)u),
                                                     "kind", owl_peak_is_int8((owl_peak_unit)u) ? "int8" : "float", "available",
                                                     avail, "threads", counts[c], "gops", avail ? json_real(ops / 1e9) : json_null(),
                                                     "gops_per_thread", avail ? json_real(ops / 1e9 / counts[c]) : json_null()));
            } else if (avail) {
                printf("%-12s %8d %14.1f %14.1f\n", owl_peak_name((owl_peak_unit)u), counts[c], ops / 1e9, ops / 1e9 / counts[c]);
            } else if (c == 0) {
                printf("%-12s %8s %14s\n", owl_peak_name((owl_peak_unit)u), "-", "not on this CPU");
            }
        }
    }
    double bw[2] = {0, 0};
    for (int c = 0; c < nc && !no_bw; c++) bw[c] = owl_measure_read_bandwidth_ex(counts[c], bw_seconds, (size_t)bw_mib << 20);
    if (json) {
        json_object_set_new(root, "threads", json_integer(threads));
        json_object_set_new(root, "seconds_per_test", json_real(seconds));
        json_object_set_new(root, "units", arr);
        json_t *b = json_array();
        for (int c = 0; c < nc && !no_bw && b; c++)
            json_array_append_new(b, json_pack("{s:i, s:f}", "threads", counts[c], "gb_s", bw[c]));
        json_object_set_new(root, "bandwidth", no_bw ? json_null() : b ? b : json_null());
        if (no_bw) json_decref(b);
        char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        json_decref(root);
        if (!out) return cli_error(CMD, "cannot format the JSON output");
        printf("%s\n", out);
        free(out);
    } else {
        printf("(GOP/s: a multiply-add is two operations; the best of the trials of %.2f s)\n", seconds);
        for (int c = 0; c < nc && !no_bw; c++)
            printf("bandwidth    %.2f GB/s (memory read, %d thread%s)\n", bw[c], counts[c], counts[c] == 1 ? "" : "s");
    }
    return fflush(stdout) == 0 ? CLI_EXIT_OK : cli_error(CMD, "cannot write to stdout");
}

/* The unit whose peak pp is compared with: integer dots for quantized
 * weights, bf16 for float ones; AVX-512 where there is no AMX. -1: none. */
static int matching_unit(const char *weight_type) {
    owl_dtype t;
    bool quant = false;
    if (weight_type && owl_dtype_from_name(weight_type, &t)) {
        const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
        quant = d && d->quantized;
    }
    const owl_peak_unit order_q[] = {OWL_PEAK_AMX_INT8, OWL_PEAK_VNNI_INT8};
    const owl_peak_unit order_f[] = {OWL_PEAK_AMX_BF16, OWL_PEAK_AVX512_BF16, OWL_PEAK_AVX512_FP32};
    const owl_peak_unit *o = quant ? order_q : order_f;
    int n = quant ? 2 : 3;
    for (int i = 0; i < n; i++)
        if (owl_peak_available(o[i])) return (int)o[i];
    return -1;
}

/* FLOPs of one pp run of p tokens (see the help text). */
static double pp_flops(const owl_model_info *in, int p) {
    double qd = (double)in->n_heads * in->head_dim, kvd = (double)in->n_kv_heads * in->head_dim, d = in->dim;
    double layer = d * qd + 2 * d * kvd + qd * d + 3 * d * (double)in->ffn_dim;
    double attn = 4.0 * qd * (double)p * (p + 1) / 2.0;
    return in->n_layers * (2.0 * layer * p + attn) + 2.0 * (double)in->n_vocab * d;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cli_bench(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer = NULL;
    int n_prompt = 512, n_gen = 128, reps = 5, threads = 0, bw_mib = 1024;
    float bw_seconds = 1.0f, peak_seconds = 0.5f;
    bool json = false, no_bw = false, peak = false, no_peak = false;
    cli_lora_list lora = {0};
    owl_lora **loras = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define FLAG(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
#define VALUE()                                                  \
    do {                                                         \
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE; \
    } while (0)
        if (a[0] != '-' || a[1] == 0) {
            if (model_path) return cli_usage_error(CMD, "unexpected argument '%s' (the model is '%s')", a, model_path);
            model_path = a;
        } else if (cli_is_help(a)) {
            bench_help(stdout);
            return CLI_EXIT_OK;
        } else if (FLAG("-p", "--n-prompt")) {
            VALUE();
            if (!cli_parse_int(CMD, a, v, 0, 1 << 20, &n_prompt)) return CLI_EXIT_USAGE;
        } else if (FLAG("-n", "--n-gen")) {
            VALUE();
            if (!cli_parse_int(CMD, a, v, 0, 1 << 20, &n_gen)) return CLI_EXIT_USAGE;
        } else if (FLAG("-r", "--repetitions")) {
            VALUE();
            if (!cli_parse_int(CMD, a, v, 1, 1000, &reps)) return CLI_EXIT_USAGE;
        } else if (FLAG("-t", "--threads")) {
            VALUE();
            if (!cli_parse_int(CMD, a, v, 0, 4096, &threads)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--tokenizer") == 0) {
            VALUE();
            tokenizer = v;
        } else if (strcmp(a, "--bw-seconds") == 0) {
            VALUE();
            if (!cli_parse_float(CMD, a, v, 0.01, 60.0, &bw_seconds)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--bw-mib") == 0) {
            VALUE();
            if (!cli_parse_int(CMD, a, v, 1, 1 << 20, &bw_mib)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--no-bandwidth") == 0) {
            no_bw = true;
        } else if (strcmp(a, "--peak") == 0) {
            peak = true;
        } else if (strcmp(a, "--no-peak") == 0) {
            no_peak = true;
        } else if (strcmp(a, "--seconds") == 0) {
            VALUE();
            if (!cli_parse_float(CMD, a, v, 0.01, 60.0, &peak_seconds)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--lora") == 0) {
            VALUE();
            if (!cli_lora_parse(CMD, v, &lora)) return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef FLAG
#undef VALUE
    }
    if (peak) {
        if (model_path) return cli_usage_error(CMD, "--peak measures the machine: no MODEL with it (got '%s')", model_path);
        owl_set_threads(threads);
        return bench_peak(owl_get_threads(), peak_seconds, json, bw_seconds, bw_mib, no_bw);
    }
    if (!model_path) return cli_usage_error(CMD, "no model given");
    if (n_prompt == 0 && n_gen == 0) return cli_usage_error(CMD, "nothing to measure: -p and -n are both 0");

    owl_set_threads(threads);
    int used_threads = owl_get_threads();
    int ret = CLI_EXIT_RUNTIME;
    owl_ctx *ctx = NULL;
    int32_t *toks = NULL;
    double *v = NULL, *vc = NULL;
    json_t *root = NULL;
    owl_model *model = cli_load_model(CMD, model_path, tokenizer);
    if (!model) return CLI_EXIT_RUNTIME;
    owl_model_info info;
    owl_model_get_info(model, &info);

    int n_ctx = n_prompt > n_gen ? n_prompt : n_gen;
    if (owl_ctx_new(model, n_ctx, &ctx) != OWL_OK) {
        cli_error(CMD, "cannot create a context of %d tokens: %s", n_ctx, owl_last_error());
        goto done;
    }
    if (lora.n && !cli_lora_attach(CMD, model, ctx, &lora, &loras)) goto done;
    /* Any tokens do: speed does not depend on which. Avoid BOS/EOS. */
    toks = malloc((size_t)n_ctx * sizeof *toks);
    v = malloc((size_t)reps * sizeof *v);
    vc = malloc((size_t)reps * sizeof *vc);
    if (!toks || !v || !vc) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_ctx; i++) toks[i] = (int32_t)(3 + ((uint64_t)i * 7919u + 13u) % (uint64_t)(info.n_vocab > 3 ? info.n_vocab - 3 : 1));
    if (info.n_vocab <= 3)
        for (int i = 0; i < n_ctx; i++) toks[i] = 0;

    stats pp = {0}, tg = {0}, pp_cpu = {0}, tg_cpu = {0};
    double crate;
    if (n_prompt > 0) {
        if (run_pp(ctx, toks, n_prompt, used_threads, &crate) < 0) goto eval_failed; /* warm-up */
        for (int r = 0; r < reps; r++)
            if ((v[r] = run_pp(ctx, toks, n_prompt, used_threads, &vc[r])) < 0) goto eval_failed;
        pp = summarize(v, reps);
        pp_cpu = summarize(vc, reps);
    }
    if (n_gen > 0) {
        if (run_tg(ctx, toks, n_gen < 16 ? n_gen : 16, used_threads, &crate) < 0) goto eval_failed; /* warm-up */
        for (int r = 0; r < reps; r++)
            if ((v[r] = run_tg(ctx, toks, n_gen, used_threads, &vc[r])) < 0) goto eval_failed;
        tg = summarize(v, reps);
        tg_cpu = summarize(vc, reps);
    }
    double bw = no_bw ? 0.0 : owl_measure_read_bandwidth_ex(used_threads, bw_seconds, (size_t)bw_mib << 20);
    double achieved = tg.median * (double)info.bytes_per_token / 1e9; /* GB/s */
    double frac = bw > 0 ? achieved / bw : 0.0;
    double ratio = tg.median > 0 ? pp.median / tg.median : 0.0;
    int unit = n_prompt > 0 && !no_peak ? matching_unit(info.weight_type) : -1;
    double peak_ops = unit >= 0 ? owl_peak_measure((owl_peak_unit)unit, used_threads, peak_seconds) : 0.0;
    double flops = n_prompt > 0 ? pp_flops(&info, n_prompt) : 0.0;
    double pp_ops = pp.median > 0 ? flops * pp.median / n_prompt : 0.0; /* FLOP/s at the median speed */
    double pp_frac = peak_ops > 0 ? pp_ops / peak_ops : 0.0;

    if (json) {
        root = json_object();
        json_object_set_new(root, "model", json_string(model_path));
        json_object_set_new(root, "arch", json_string(info.arch ? info.arch : ""));
        json_object_set_new(root, "weight_type", json_string(info.weight_type ? info.weight_type : ""));
        json_object_set_new(root, "n_params", json_integer((json_int_t)info.n_params));
        json_object_set_new(root, "weight_bytes", json_integer((json_int_t)info.weight_bytes));
        json_object_set_new(root, "bytes_per_token", json_integer((json_int_t)info.bytes_per_token));
        json_object_set_new(root, "n_vocab", json_integer(info.n_vocab));
        json_object_set_new(root, "dim", json_integer(info.dim));
        json_object_set_new(root, "n_layers", json_integer(info.n_layers));
        json_object_set_new(root, "n_heads", json_integer(info.n_heads));
        json_object_set_new(root, "n_kv_heads", json_integer(info.n_kv_heads));
        json_object_set_new(root, "head_dim", json_integer(info.head_dim));
        json_object_set_new(root, "ffn_dim", json_integer(info.ffn_dim));
        json_object_set_new(root, "n_ctx_train", json_integer(info.n_ctx_train));
        json_object_set_new(root, "threads", json_integer(used_threads));
        json_object_set_new(root, "repetitions", json_integer(reps));
        json_object_set_new(root, "pp", n_prompt > 0 ? stats_json("pp", n_prompt, pp, pp_cpu) : json_null());
        json_object_set_new(root, "tg", n_gen > 0 ? stats_json("tg", n_gen, tg, tg_cpu) : json_null());
        json_object_set_new(root, "bandwidth_gb_s", no_bw ? json_null() : json_real(bw));
        json_object_set_new(root, "tg_achieved_gb_s", n_gen > 0 ? json_real(achieved) : json_null());
        json_object_set_new(root, "tg_bandwidth_fraction", n_gen > 0 && bw > 0 ? json_real(frac) : json_null());
        json_object_set_new(root, "pp_tg_ratio", n_prompt > 0 && n_gen > 0 ? json_real(ratio) : json_null());
        json_object_set_new(root, "pp_flops", n_prompt > 0 ? json_real(flops) : json_null());
        json_object_set_new(root, "pp_gflop_s", n_prompt > 0 ? json_real(pp_ops / 1e9) : json_null());
        json_object_set_new(root, "peak_unit", unit >= 0 ? json_string(owl_peak_name((owl_peak_unit)unit)) : json_null());
        json_object_set_new(root, "peak_gops", unit >= 0 ? json_real(peak_ops / 1e9) : json_null());
        json_object_set_new(root, "pp_peak_fraction", unit >= 0 && peak_ops > 0 ? json_real(pp_frac) : json_null());
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        if (!s) {
            cli_error(CMD, "cannot format the JSON output");
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("model        %s (%s, %s, %.2f M params, %.2f MiB of weights)\n", base_name(model_path),
               info.arch ? info.arch : "?", info.weight_type ? info.weight_type : "?", (double)info.n_params / 1e6,
               (double)info.weight_bytes / 1048576.0);
        printf("threads      %d\n", used_threads);
        printf("%-12s %12s %12s %12s %14s\n", "test", "tok/s", "min", "max", "tok/s by CPU");
        if (n_prompt > 0) {
            char name[32];
            snprintf(name, sizeof name, "pp%d", n_prompt);
            printf("%-12s %12.2f %12.2f %12.2f %14.2f\n", name, pp.median, pp.min, pp.max, pp_cpu.median);
        }
        if (n_gen > 0) {
            char name[32];
            snprintf(name, sizeof name, "tg%d", n_gen);
            printf("%-12s %12.2f %12.2f %12.2f %14.2f\n", name, tg.median, tg.min, tg.max, tg_cpu.median);
        }
        printf("(median of %d runs after a warm-up; by CPU: tokens x threads / CPU seconds of the process)\n", reps);
        if (!no_bw) printf("bandwidth    %.2f GB/s (memory read, %d thread%s)\n", bw, used_threads, used_threads == 1 ? "" : "s");
        printf("bytes/token  %.3f MB of weights read per generated token\n", (double)info.bytes_per_token / 1e6);
        if (n_gen > 0) {
            printf("achieved     %.2f GB/s in generation", achieved);
            if (bw > 0) printf(" = %.1f%% of the measured bandwidth", 100.0 * frac);
            printf("\n");
        }
        if (n_prompt > 0 && n_gen > 0) printf("pp/tg        %.2fx the speed per token\n", ratio);
        if (n_prompt > 0) {
            printf("pp FLOP/s    %.1f GFLOP/s (%.3f TFLOP per run)", pp_ops / 1e9, flops / 1e12);
            if (unit >= 0 && peak_ops > 0)
                printf(" = %.1f%% of the %s peak (%.1f GOP/s, %d thread%s)", 100.0 * pp_frac, owl_peak_name((owl_peak_unit)unit),
                       peak_ops / 1e9, used_threads, used_threads == 1 ? "" : "s");
            printf("\n");
        }
    }
    ret = fflush(stdout) == 0 ? CLI_EXIT_OK : cli_error(CMD, "cannot write to stdout");
    goto done;

eval_failed:
    cli_error(CMD, "evaluation failed: %s", owl_last_error());
done:
    json_decref(root);
    free(v);
    free(vc);
    free(toks);
    owl_ctx_free(ctx);
    cli_lora_free(loras, lora.n);
    owl_model_free(model);
    return ret;
}
