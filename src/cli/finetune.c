/* owl finetune: trains a LoRA adapter on a text or JSONL file and writes it
 * as a PEFT adapter directory (optionally also a GGUF adapter), with
 * checkpoints that --resume continues exactly, Ctrl-C saving one, and a
 * stop with a clear message if the loss becomes NaN. */
#include "adapt/train.h"
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_finetune(int argc, char **argv);

static const char *CMD = "finetune";
#define CKPT_NAME "checkpoint.owlt"

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void finetune_help(FILE *f) {
    fprintf(f,
            "usage: owl finetune BASE --data FILE -o ADAPTER_DIR [options]\n"
            "\n"
            "Trains a LoRA adapter for BASE (GGUF or Hugging Face directory; the base stays\n"
            "frozen in its own type, quantized too) on the CPU and writes it as a PEFT adapter\n"
            "(adapter_config.json + adapter_model.safetensors) that `owl run --lora DIR` and\n"
            "PEFT read.\n"
            "\n"
            "data:\n"
            "  --data FILE           training data: plain text (packed into --ctx sequences) or\n"
            "                        JSONL (*.jsonl): {\"messages\": [...]} rendered with the chat\n"
            "                        template, loss only on assistant turns; {\"prompt\",\n"
            "                        \"completion\"}, loss only on the completion; {\"text\"}\n"
            "  --val FILE            validation data (same forms): its loss after each epoch\n"
            "  --format auto|text|jsonl  how to read the files (auto: by extension)\n"
            "  --template FILE       chat template (Jinja) instead of the model's\n"
            "  --on-bad-line skip|stop   a malformed JSONL line: warn and skip (default) or stop\n"
            "  --on-long truncate|stop   an example longer than --ctx: cut (default) or stop\n"
            "adapter:\n"
            "  --rank R              LoRA rank (default 8)\n"
            "  --alpha A             LoRA alpha, scale alpha / R (default 16)\n"
            "  --rslora              scale alpha / sqrt(R)\n"
            "  --targets LIST        projections, comma separated from q,k,v,o,gate,up,down\n"
            "                        (default: all seven)\n"
            "training:\n"
            "  --lr LR               peak learning rate (default 1e-4)\n"
            "  --epochs E            passes over the data (default 1)\n"
            "  --ctx N               tokens per sequence (default 512)\n"
            "  --batch B             sequences per micro-batch (default 1)\n"
            "  --grad-accum K        micro-batches per optimiser step (default 1)\n"
            "  --warmup N            steps of linear warm-up, then cosine decay (default 0)\n"
            "  --weight-decay W      AdamW weight decay (default 0)\n"
            "  --clip C              clip the global gradient norm to C (default 1; 0: none)\n"
            "  --seed S              initialisation and data order (default 0)\n"
            "  -t, --threads T       threads (default: all cores)\n"
            "output:\n"
            "  -o, --output DIR      the adapter directory; refused if it exists unless --force\n"
            "  --force               write into an existing directory (starting afresh)\n"
            "  --resume              continue from DIR's checkpoint (same settings and data):\n"
            "                        the result is the same as an uninterrupted run\n"
            "  --save-every N        write the adapter and a checkpoint every N steps (default:\n"
            "                        after each epoch and at the end)\n"
            "  --stop-after N        stop (with a checkpoint) once N steps in all are done\n"
            "  --gguf                also write DIR/adapter.gguf (llama.cpp's LoRA format)\n"
            "  --plot FILE           an SVG of the training and validation loss\n"
            "  -q, --quiet           no progress lines\n"
            "  -h, --help            this text\n"
            "\n"
            "Progress (step, loss, learning rate, tokens/s, ETA) goes to stderr. Ctrl-C writes a\n"
            "checkpoint and exits (status 130); a NaN loss stops (status 1) keeping the last good\n"
            "checkpoint. The checkpoint (DIR/" CKPT_NAME ") holds the adapter, the AdamW state,\n"
            "the generator and the step.\n");
}

static bool parse_targets(const char *s, unsigned *out) {
    static const char *names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    unsigned t = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = -1;
        for (int i = 0; i < 7; i++)
            if (strlen(names[i]) == n && strncmp(p, names[i], n) == 0) found = i;
        /* PEFT's module names too */
        static const char *peft[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
        for (int i = 0; i < 7 && found < 0; i++)
            if (strlen(peft[i]) == n && strncmp(p, peft[i], n) == 0) found = i;
        if (found < 0) {
            cli_usage_error(CMD, "--targets: unknown projection '%.*s' (q, k, v, o, gate, up, down)", (int)n, p);
            return false;
        }
        t |= 1u << found;
        if (!e) break;
        p = e + 1;
    }
    if (!t) {
        cli_usage_error(CMD, "--targets: no projection given");
        return false;
    }
    *out = t;
    return true;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* The order of the sequences in epoch e: a permutation from the seed. */
static void epoch_order(int *perm, int n, uint64_t seed, int e) {
    owl_train_rng r;
    owl_train_rng_seed(&r, seed ^ (0xA5A5A5A5ull + (uint64_t)e * 0x9E3779B97F4A7C15ull));
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(owl_train_rng_next(&r) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

typedef struct run {
    const char *dir;
    char *ckpt_path;
    bool gguf;
    owl_lora *lora;
    owl_train *tr;
    owl_train_state *st;
    float *m, *v;
    int64_t saved_step; /* -1: none written by this run */
} run;

static owl_status save_all(run *r) {
    owl_status st = owl_lora_write_peft(r->lora, r->dir);
    if (!st && r->gguf) {
        char *g = join(r->dir, "adapter.gguf");
        st = g ? owl_lora_write_gguf(r->lora, g, OWL_F32) : OWL_ERR_NOMEM;
        free(g);
    }
    if (!st) st = owl_train_ckpt_save(r->ckpt_path, r->tr, r->st, r->m, r->v);
    if (!st) r->saved_step = r->st->step;
    return st;
}

/* Mean loss over a data set (forward only). */
static owl_status eval_loss(owl_train *tr, const owl_data *d, double *out) {
    double sum = 0;
    int64_t cnt = 0;
    for (int i = 0; i < d->n_seq && !g_interrupted; i++) {
        double ls;
        int c;
        owl_status st = owl_train_seq(tr, d->seq[i].tok, d->seq[i].tgt, d->seq[i].n, false, 1.0f, &ls, &c);
        if (st) return st;
        sum += ls;
        cnt += c;
    }
    *out = cnt ? sum / (double)cnt : NAN;
    return OWL_OK;
}

int cli_finetune(int argc, char **argv) {
    const char *base = NULL, *data_path = NULL, *val_path = NULL, *out_dir = NULL, *plot = NULL, *tmpl_path = NULL;
    int rank = 8, epochs = 1, ctx = 512, batch = 1, accum = 1, threads = 0, save_every = 0, stop_after = 0;
    long long warmup = 0;
    float alpha = 16, lr = 1e-4f, wd = 0, clip = 1;
    uint64_t seed = 0;
    unsigned targets = OWL_LORA_T_LAYERS;
    bool force = false, resume = false, gguf = false, quiet = false, rslora = false;
    owl_data_opts dopt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (a[0] != '-' || a[1] == 0) {
            if (base) return cli_usage_error(CMD, "unexpected argument '%s' (one BASE model)", a);
            base = a;
            continue;
        }
        if (cli_is_help(a)) {
            finetune_help(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--force") == 0) { force = true; continue; }
        if (strcmp(a, "--resume") == 0) { resume = true; continue; }
        if (strcmp(a, "--gguf") == 0) { gguf = true; continue; }
        if (strcmp(a, "--rslora") == 0) { rslora = true; continue; }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { quiet = true; continue; }
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        bool ok = true;
        if (strcmp(a, "--data") == 0) data_path = v;
        else if (strcmp(a, "--val") == 0) val_path = v;
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) out_dir = v;
        else if (strcmp(a, "--plot") == 0) plot = v;
        else if (strcmp(a, "--template") == 0) tmpl_path = v;
        else if (strcmp(a, "--rank") == 0) ok = cli_parse_int(CMD, a, v, 1, 4096, &rank);
        else if (strcmp(a, "--alpha") == 0) ok = cli_parse_float(CMD, a, v, 1e-6, 1e6, &alpha);
        else if (strcmp(a, "--lr") == 0) ok = cli_parse_float(CMD, a, v, 1e-12, 1e38, &lr);
        else if (strcmp(a, "--epochs") == 0) ok = cli_parse_int(CMD, a, v, 1, 1000000, &epochs);
        else if (strcmp(a, "--ctx") == 0) ok = cli_parse_int(CMD, a, v, 2, 1 << 20, &ctx);
        else if (strcmp(a, "--batch") == 0) ok = cli_parse_int(CMD, a, v, 1, 1 << 20, &batch);
        else if (strcmp(a, "--grad-accum") == 0) ok = cli_parse_int(CMD, a, v, 1, 1 << 20, &accum);
        else if (strcmp(a, "--weight-decay") == 0) ok = cli_parse_float(CMD, a, v, 0, 1e3, &wd);
        else if (strcmp(a, "--clip") == 0) ok = cli_parse_float(CMD, a, v, 0, 1e30, &clip);
        else if (strcmp(a, "--save-every") == 0) ok = cli_parse_int(CMD, a, v, 0, 1 << 30, &save_every);
        else if (strcmp(a, "--stop-after") == 0) ok = cli_parse_int(CMD, a, v, 1, 1 << 30, &stop_after);
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) ok = cli_parse_int(CMD, a, v, 1, 1024, &threads);
        else if (strcmp(a, "--seed") == 0) ok = cli_parse_u64(CMD, a, v, &seed);
        else if (strcmp(a, "--warmup") == 0) {
            int w = 0;
            ok = cli_parse_int(CMD, a, v, 0, 1 << 30, &w);
            warmup = w;
        } else if (strcmp(a, "--targets") == 0) ok = parse_targets(v, &targets);
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "auto") == 0) dopt.format = OWL_DATA_AUTO;
            else if (strcmp(v, "text") == 0) dopt.format = OWL_DATA_TEXT;
            else if (strcmp(v, "jsonl") == 0) dopt.format = OWL_DATA_JSONL;
            else return cli_usage_error(CMD, "--format: '%s' (auto, text or jsonl)", v);
        } else if (strcmp(a, "--on-bad-line") == 0) {
            if (strcmp(v, "skip") == 0) dopt.stop_on_bad = false;
            else if (strcmp(v, "stop") == 0) dopt.stop_on_bad = true;
            else return cli_usage_error(CMD, "--on-bad-line: '%s' (skip or stop)", v);
        } else if (strcmp(a, "--on-long") == 0) {
            if (strcmp(v, "truncate") == 0) dopt.stop_on_long = false;
            else if (strcmp(v, "stop") == 0) dopt.stop_on_long = true;
            else return cli_usage_error(CMD, "--on-long: '%s' (truncate or stop)", v);
        } else return cli_usage_error(CMD, "unknown option '%s'", a);
        if (!ok) return CLI_EXIT_USAGE;
    }
    if (!base) return cli_usage_error(CMD, "no BASE model given");
    if (!data_path) return cli_usage_error(CMD, "no training data given (--data FILE)");
    if (!out_dir) return cli_usage_error(CMD, "no output directory given (-o ADAPTER_DIR)");
    if (resume && force) return cli_usage_error(CMD, "--resume and --force exclude each other");
    if (!cli_readable_file(CMD, "training data", data_path)) return CLI_EXIT_RUNTIME;
    if (val_path && !cli_readable_file(CMD, "validation data", val_path)) return CLI_EXIT_RUNTIME;
    struct stat sb;
    const bool exists = stat(out_dir, &sb) == 0;
    if (exists && !S_ISDIR(sb.st_mode)) return cli_error(CMD, "output '%s' exists and is not a directory", out_dir);
    if (exists && !force && !resume)
        return cli_error(CMD, "output directory '%s' exists (--force to overwrite it, --resume to continue its run)",
                         out_dir);
    char *ckpt_path = join(out_dir, CKPT_NAME);
    if (!ckpt_path) return cli_error(CMD, "out of memory");
    if (resume && !owl_file_exists(ckpt_path)) {
        cli_error(CMD, "--resume: no checkpoint '%s'", ckpt_path);
        free(ckpt_path);
        return CLI_EXIT_RUNTIME;
    }
    char *tmpl = NULL;
    if (tmpl_path && !(tmpl = cli_read_text(CMD, "chat template", tmpl_path, NULL))) {
        free(ckpt_path);
        return CLI_EXIT_RUNTIME;
    }
    if (threads) owl_set_threads(threads);

    int rc = CLI_EXIT_RUNTIME;
    owl_model *model = NULL;
    owl_data train = {0}, val = {0};
    owl_lora *lora = NULL;
    owl_train *tr = NULL;
    owl_train_state state = {0};
    float *m = NULL, *v = NULL;
    int *perm = NULL;
    owl_status st;
    if (!(model = cli_load_model(CMD, base, NULL))) goto out;
    dopt.ctx = ctx;
    dopt.template_src = tmpl;
    if ((st = owl_data_read(model, data_path, &dopt, &train))) {
        cli_error(CMD, "%s", owl_last_error());
        goto out;
    }
    if (val_path && (st = owl_data_read(model, val_path, &dopt, &val))) {
        cli_error(CMD, "%s", owl_last_error());
        goto out;
    }
    if ((st = owl_lora_new(model, targets, rank, alpha, rslora, &lora)) ||
        (st = owl_lora_set_base_name(lora, base)) || (st = owl_train_new(model, lora, ctx, &tr))) {
        cli_error(CMD, "%s", owl_last_error());
        goto out;
    }
    const size_t np = owl_train_n_params(tr);
    m = calloc(np, sizeof *m);
    v = calloc(np, sizeof *v);
    perm = malloc(sizeof *perm * (size_t)train.n_seq);
    if (!m || !v || !perm) {
        cli_error(CMD, "out of memory for the optimiser state (%zu floats)", np);
        goto out;
    }
    state.rank = rank;
    state.ctx = ctx;
    state.batch = batch;
    state.accum = accum;
    state.epochs = epochs;
    state.n_seq = train.n_seq;
    state.targets = targets;
    state.alpha = alpha;
    state.lr = lr;
    state.seed = seed;
    state.data_hash = owl_data_hash(&train);
    owl_train_rng_seed(&state.rng, seed);
    owl_train_init_pairs(tr, &state.rng);
    if (resume && (st = owl_train_ckpt_load(ckpt_path, tr, &state, m, v))) {
        cli_error(CMD, "%s", owl_last_error());
        goto out;
    }
    const int per_step = batch * accum;
    const int64_t spe = (train.n_seq + per_step - 1) / per_step, total = spe * epochs;
    owl_adamw opt = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = wd, .clip = clip,
                     .warmup = warmup, .total = total, .min_lr_frac = 0.0f};
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        cli_error(CMD, "cannot create '%s': %s", out_dir, strerror(errno));
        goto out;
    }
    if (force && !resume) unlink(ckpt_path); /* a fresh run: no stale checkpoint */
    run r = {.dir = out_dir, .ckpt_path = ckpt_path, .gguf = gguf, .lora = lora, .tr = tr, .st = &state, .m = m,
             .v = v, .saved_step = resume ? state.step : -1};
    fprintf(stderr,
            "owl finetune: %d sequences (%lld tokens, %lld to learn)%s%s, %d validation; rank %d, alpha %g, %zu "
            "trained floats; %lld steps (%lld per epoch) of %d sequences\n",
            train.n_seq, (long long)train.n_tokens, (long long)train.n_targets,
            train.n_bad ? ", malformed lines skipped" : "", train.n_truncated ? ", some truncated" : "", val.n_seq,
            rank, (double)alpha, np, (long long)total, (long long)spe, per_step);
    if (resume) fprintf(stderr, "owl finetune: resuming after step %lld\n", (long long)state.step);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    const bool tty = isatty(2);
    const double t0 = owl_time_ms();
    int64_t tokens_done = 0, steps_done = 0;
    int cur_epoch = -1;
    bool nan_stop = false, stopped = false;
    while (state.step < total) {
        const int64_t step = state.step;
        const int epoch = (int)(step / spe), k = (int)(step % spe);
        if (epoch != cur_epoch) {
            epoch_order(perm, train.n_seq, seed, epoch);
            cur_epoch = epoch;
        }
        const int first = k * per_step, last = first + per_step < train.n_seq ? first + per_step : train.n_seq;
        int64_t n_t = 0;
        for (int i = first; i < last; i++) n_t += train.seq[perm[i]].n_targets;
        owl_train_zero_grads(tr);
        double loss_sum = 0;
        for (int i = first; i < last && !g_interrupted; i++) {
            const owl_data_seq *s = &train.seq[perm[i]];
            double ls;
            int c;
            if ((st = owl_train_seq(tr, s->tok, s->tgt, s->n, true, 1.0f / (float)n_t, &ls, &c))) {
                cli_error(CMD, "step %lld: %s", (long long)step + 1, owl_last_error());
                goto restore;
            }
            loss_sum += ls;
            tokens_done += s->n;
        }
        if (g_interrupted) break; /* the unfinished step is dropped */
        const double loss = loss_sum / (double)n_t;
        double gnorm = 0;
        if (!isfinite(loss) || owl_adamw_step(tr, &opt, step, m, v, &gnorm) != OWL_OK || !owl_train_params_finite(tr)) {
            nan_stop = true;
            if (tty && !quiet) fputc('\n', stderr);
            char what[96];
            if (!isfinite(loss)) snprintf(what, sizeof what, "the loss is NaN");
            else if (!isfinite(gnorm)) snprintf(what, sizeof what, "the gradient norm is %g", gnorm);
            else snprintf(what, sizeof what, "the update made the adapter non-finite");
            if (r.saved_step >= 0)
                cli_error(CMD,
                          "step %lld: %s: training stopped; the adapter and checkpoint of step %lld are kept in '%s' "
                          "(a lower --lr may help)",
                          (long long)step + 1, what, (long long)r.saved_step, out_dir);
            else
                cli_error(CMD, "step %lld: %s: training stopped before any checkpoint was written (a lower --lr may help)",
                          (long long)step + 1, what);
            break;
        }
        state.step = step + 1;
        steps_done++;
        if ((st = owl_train_state_push_loss(&state, (float)loss))) {
            cli_error(CMD, "%s", owl_last_error());
            goto restore;
        }
        if (!quiet) {
            const double el = (owl_time_ms() - t0) / 1000.0;
            char eta[32];
            fmt_time(eta, sizeof eta, el / (double)steps_done * (double)(total - state.step));
            fprintf(stderr, "%sstep %lld/%lld  epoch %d/%d  loss %.4f  lr %.3g  %.1f tok/s  ETA %s%s",
                    tty ? "\r" : "", (long long)state.step, (long long)total, epoch + 1, epochs, loss,
                    owl_adamw_lr(&opt, step), el > 0 ? (double)tokens_done / el : 0.0, eta, tty ? "   " : "\n");
        }
        const bool epoch_end = state.step % spe == 0;
        if (epoch_end && val.n_seq) {
            double vl;
            if ((st = eval_loss(tr, &val, &vl))) {
                cli_error(CMD, "validation: %s", owl_last_error());
                goto restore;
            }
            if (!g_interrupted) {
                if (tty && !quiet) fputc('\n', stderr);
                fprintf(stderr, "epoch %d/%d: validation loss %.4f\n", epoch + 1, epochs, vl);
                if ((st = owl_train_state_push_val(&state, (float)vl))) {
                    cli_error(CMD, "%s", owl_last_error());
                    goto restore;
                }
            }
        }
        const bool stop_now = stop_after && state.step >= stop_after;
        if ((save_every && state.step % save_every == 0) || (epoch_end && !save_every) || stop_now ||
            state.step == total) {
            if ((st = save_all(&r))) {
                cli_error(CMD, "saving: %s", owl_last_error());
                goto restore;
            }
        }
        if (stop_now && state.step < total) {
            stopped = true;
            break;
        }
        if (g_interrupted) break;
    }
    if (tty && !quiet) fputc('\n', stderr);
    if (plot && (st = owl_train_plot_svg(&state, plot))) {
        cli_error(CMD, "--plot: %s", owl_last_error());
        goto restore;
    }
    if (nan_stop) goto restore;
    if (g_interrupted) {
        if (r.saved_step != state.step && (st = save_all(&r))) {
            cli_error(CMD, "interrupted; saving the checkpoint failed: %s", owl_last_error());
            goto restore;
        }
        fprintf(stderr, "owl finetune: interrupted after step %lld; checkpoint in '%s' (continue with --resume)\n",
                (long long)state.step, out_dir);
        rc = 130;
        goto restore;
    }
    if (stopped)
        fprintf(stderr, "owl finetune: stopped after step %lld (--stop-after); continue with --resume\n",
                (long long)state.step);
    else
        fprintf(stderr, "owl finetune: adapter written to '%s' (%lld steps, final loss %.4f)\n", out_dir,
                (long long)state.step, state.n_loss ? (double)state.loss[state.n_loss - 1] : NAN);
    rc = CLI_EXIT_OK;
restore:
    sigaction(SIGINT, &old_sa, NULL);
out:
    free(perm);
    free(m);
    free(v);
    owl_train_state_free(&state);
    owl_train_free(tr);
    owl_lora_free(lora);
    owl_data_free(&train);
    owl_data_free(&val);
    owl_model_free(model);
    free(tmpl);
    free(ckpt_path);
    return rc;
}
