/* owl chat: a conversation with a model in the terminal (GNU readline for
 * line editing and history) or over a pipe (each line of stdin is a user
 * message, stdout gets the answers). The conversation logic (template,
 * stop tokens, KV-cache reuse) is in src/chat/conversation.c. */
#include "chat/conversation.h"
#include "cli/args.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

static const char *CMD = "chat";

static void chat_help(FILE *f) {
    owl_sampler_params d;
    owl_sampler_defaults(&d);
    fprintf(f,
            "usage: owl chat MODEL [options]\n"
            "\n"
            "A conversation with MODEL (a GGUF file, a Hugging Face directory or a\n"
            "llama2.c checkpoint), using its chat template (ChatML if it has none).\n"
            "Answers stream to stdout. In a terminal: line editing and history;\n"
            "Ctrl-C stops an answer (what was written stays in the conversation),\n"
            "Ctrl-C or Ctrl-D at the prompt leaves. With stdin not a terminal, each\n"
            "line is a user message and only the answers are written (one per line\n"
            "group), with a line of statistics per turn on stderr.\n"
            "Each turn evaluates only the tokens that are new since the last one.\n"
            "\n"
            "commands (at the start of a line):\n"
            "  /reset        forget the conversation (the --system message stays)\n"
            "  /save FILE    write the conversation as JSON ({\"messages\": [...]})\n"
            "  /load FILE    replace the conversation with one saved by /save\n"
            "  /exit         leave (also /quit)\n"
            "\n"
            "options:\n"
            "      --system TEXT      a system message first\n"
            "      --template FILE    use this Jinja chat template instead of the model's\n"
            "      --tokenizer PATH   tokenizer.bin for a llama2.c checkpoint\n"
            "      --lora PATH[:SCALE] apply a LoRA adapter (PEFT directory or GGUF adapter)\n"
            "                         times SCALE (default 1); repeatable, up to 8\n"
            "  -c, --ctx-size N       context size in tokens (default 0: the model's)\n"
            "  -n, --n-predict N      most tokens per answer (default -1: until the end\n"
            "                         of the turn or the context is full)\n"
            "  -t, --threads N        threads (default 0: all cores)\n"
            "      --temp T           temperature, 0 = greedy (default %.2f)\n"
            "      --top-k K          keep the K most likely tokens, 0 = off (default %d)\n"
            "      --top-p P          nucleus sampling, 1 = off (default %.2f)\n"
            "      --min-p P          min-p sampling, 0 = off (default %.2f)\n"
            "      --repeat-penalty R repetition penalty, 1 = off (default %.2f)\n"
            "      --repeat-last-n N  tokens the penalty looks at, -1 = all (default %d)\n"
            "  -s, --seed S           random seed (default: random)\n"
            "  -v, --verbose          statistics after each turn in a terminal too, and\n"
            "                         the rendered prompt and token ids on stderr\n"
            "  -h, --help             this text\n",
            (double)d.temperature, d.top_k, (double)d.top_p, (double)d.min_p, (double)d.repeat_penalty,
            d.repeat_last_n);
}

typedef struct chat_opts {
    const char *model, *system, *template_file, *tokenizer;
    int n_predict, n_ctx, threads, repeat_last_n;
    bool seed_given, verbose;
    owl_sampler_params sp;
    cli_lora_list lora;
} chat_opts;

static int parse(int argc, char **argv, chat_opts *o) {
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
#define VALUE()                                                           \
    do {                                                                  \
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE; \
    } while (0)
        int gen = cli_gen_flag(CMD, argc, argv, &i, &gen_flags);
        if (gen < 0) return CLI_EXIT_USAGE;
        if (gen > 0) continue;
        if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (cli_is_help(a)) {
            chat_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--system") == 0) {
            VALUE();
            o->system = v;
        } else if (strcmp(a, "--template") == 0) {
            VALUE();
            o->template_file = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            VALUE();
            o->tokenizer = v;
        } else if (FLAG("-v", "--verbose")) {
            o->verbose = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef FLAG
#undef VALUE
    }
    if (!o->model) return cli_usage_error(CMD, "no model given");
    return -1;
}

/* ---- Ctrl-C ---- */

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

/* Readline's input: a read interrupted by Ctrl-C (SIGINT without
 * SA_RESTART) ends the input, so that Ctrl-C at the prompt leaves. */
static int chat_getc(FILE *f) {
    for (;;) {
        unsigned char c;
        ssize_t r = read(fileno(f), &c, 1);
        if (r == 1) return c;
        if (r < 0 && errno == EINTR && !g_interrupted) continue;
        return EOF;
    }
}

/* ---- one session ---- */

typedef struct chat_session {
    chat_opts *o;
    bool tty;
    bool stats; /* a statistics line per turn on stderr */
    owl_model *model;
    const owl_tokenizer *tok;
    owl_ctx *ctx;
    owl_sampler *smp;
    owl_conv *conv;
} chat_session;

static uint64_t seed_from_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}

static bool emit(const char *s, size_t n) {
    if (n && fwrite(s, 1, n, stdout) != n) return false;
    return fflush(stdout) == 0;
}

/* A JSON string of text on stderr (for --verbose). */
static void print_json_string(const char *label, const char *text) {
    json_t *s = json_string(text);
    char *j = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "owl chat: %s %s\n", label, j ? j : "(not UTF-8)");
    free(j);
    json_decref(s);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "owl chat: %s", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static void reset(chat_session *s) {
    owl_conv_drop_from(s->conv, 0);
    if (s->o->system) owl_conv_add(s->conv, "system", s->o->system, strlen(s->o->system));
    owl_conv_cache_clear(s->conv, s->ctx);
}

/* Answers the conversation's last (user) message. Returns false on an
 * error that ends the session. */
static bool answer(chat_session *s) {
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0;
    char *text = NULL, *ans = NULL;
    size_t ans_len = 0, ans_cap = 0;
    owl_detok *dt = NULL;
    bool ok = false;
    int n_user = owl_conv_count(s->conv) - 1;
    owl_status st = owl_conv_tokenize(s->conv, true, &text, &ids, &n_ids);
    if (st) {
        cli_error(CMD, "cannot render the conversation with the chat template: %s", owl_last_error());
        owl_conv_drop_from(s->conv, n_user);
        return true; /* a template error for this message; the session goes on */
    }
    if (s->o->verbose) {
        print_json_string("prompt", text);
        print_ids("prompt ids:", ids, n_ids);
    }
    int reused = 0, evaluated = 0;
    st = owl_conv_prefill(s->conv, s->ctx, ids, n_ids, &reused, &evaluated);
    if (st == OWL_ERR_RANGE) {
        fprintf(stderr, "owl chat: the conversation (%zu tokens) no longer fits the context of %d tokens: "
                        "/reset to start over, or a larger -c\n", n_ids, owl_ctx_size(s->ctx));
        owl_conv_drop_from(s->conv, n_user);
        ok = true;
        goto done;
    }
    if (st) {
        cli_error(CMD, "evaluating the prompt failed: %s", owl_last_error());
        goto done;
    }
    if (s->stats) fprintf(stderr, "owl chat: prompt %zu tokens: %d evaluated, %d reused\n", n_ids, evaluated, reused);
    for (size_t i = (size_t)reused; i < n_ids; i++) owl_sampler_accept(s->smp, ids[i]);
    if ((st = owl_detok_new(s->tok, &dt))) {
        cli_error(CMD, "%s", owl_last_error());
        goto done;
    }
    owl_detok_prime(dt, ids[n_ids - 1]);
    int max_gen = s->o->n_predict < 0 ? owl_ctx_size(s->ctx) : s->o->n_predict;
    gen = malloc(((size_t)max_gen + 1) * sizeof *gen);
    if (!gen) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    int n_gen = 0;
    bool full = false, stopped = false;
    while (n_gen < max_gen) {
        if (g_interrupted) {
            stopped = true;
            break;
        }
        int32_t t = owl_sampler_sample(s->smp, owl_ctx_logits(s->ctx, -1));
        if (t < 0) {
            cli_error(CMD, "the model produced no usable logits (all NaN) at position %d", owl_ctx_pos(s->ctx));
            goto done;
        }
        if (owl_conv_is_stop(s->conv, t)) break;
        owl_sampler_accept(s->smp, t);
        gen[n_gen++] = t;
        size_t len;
        const char *piece = owl_detok_push(dt, t, &len);
        if (piece && len) {
            if (ans_len + len + 1 > ans_cap) {
                size_t cap = (ans_len + len + 1) * 2;
                char *g = realloc(ans, cap);
                if (!g) {
                    cli_error(CMD, "out of memory");
                    goto done;
                }
                ans = g;
                ans_cap = cap;
            }
            memcpy(ans + ans_len, piece, len);
            ans_len += len;
            if (!emit(piece, len)) {
                cli_error(CMD, "cannot write to stdout");
                goto done;
            }
        }
        /* the last token too: the next turn starts with it in the cache */
        st = owl_conv_push(s->conv, s->ctx, t);
        if (st == OWL_ERR_RANGE) {
            full = true;
            break;
        }
        if (st) {
            cli_error(CMD, "evaluating token %d of the answer failed: %s", n_gen, owl_last_error());
            goto done;
        }
    }
    size_t len;
    const char *rest = owl_detok_flush(dt, &len);
    if (rest && len) {
        char *g = realloc(ans, ans_len + len + 1);
        if (!g) {
            cli_error(CMD, "out of memory");
            goto done;
        }
        ans = g;
        memcpy(ans + ans_len, rest, len);
        ans_len += len;
        emit(rest, len);
    }
    if (!emit("\n", 1)) {
        cli_error(CMD, "cannot write to stdout");
        goto done;
    }
    if ((st = owl_conv_add(s->conv, "assistant", ans ? ans : "", ans_len))) {
        cli_error(CMD, "%s", owl_last_error());
        goto done;
    }
    if (stopped) {
        g_interrupted = 0;
        fprintf(stderr, "owl chat: answer stopped (Ctrl-C); what was written is kept\n");
    }
    if (full)
        fprintf(stderr, "owl chat: the context of %d tokens is full: /reset to start over, or a larger -c\n",
                owl_ctx_size(s->ctx));
    if (s->o->verbose) {
        print_ids("answer ids:", gen, (size_t)n_gen);
        int n_cached;
        const int32_t *cached = owl_conv_cached(s->conv, &n_cached);
        print_ids("cached ids:", cached, (size_t)n_cached);
    }
    if (s->stats) fprintf(stderr, "owl chat: answer %d tokens%s\n", n_gen, stopped ? " (stopped)" : "");
    ok = true;
done:
    owl_detok_free(dt);
    free(gen);
    free(ans);
    free(ids);
    free(text);
    return ok;
}

static void save(chat_session *s, const char *path) {
    char *json = NULL;
    if (owl_conv_to_json(s->conv, &json)) {
        cli_error(CMD, "%s", owl_last_error());
        return;
    }
    FILE *f = fopen(path, "wb");
    size_t n = strlen(json);
    bool ok = f && fwrite(json, 1, n, f) == n && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) cli_error(CMD, "cannot write the conversation to '%s': %s", path, strerror(errno));
    else fprintf(stderr, "owl chat: saved %d messages to '%s'\n", owl_conv_count(s->conv), path);
    free(json);
}

static void load(chat_session *s, const char *path) {
    size_t len;
    char *text = cli_read_text(CMD, "conversation", path, &len);
    if (!text) return;
    if (owl_conv_from_json(s->conv, path, text, len)) cli_error(CMD, "cannot load the conversation: %s", owl_last_error());
    else fprintf(stderr, "owl chat: loaded %d messages from '%s'\n", owl_conv_count(s->conv), path);
    free(text);
}

/* A command line ("/..."); false to leave. */
static bool command(chat_session *s, char *line) {
    char *arg = line + strcspn(line, " \t");
    if (*arg) *arg++ = 0;
    arg += strspn(arg, " \t");
    size_t al = strlen(arg);
    while (al && (arg[al - 1] == ' ' || arg[al - 1] == '\t')) arg[--al] = 0;
    if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) return false;
    if (strcmp(line, "/reset") == 0) {
        reset(s);
        fprintf(stderr, "owl chat: conversation cleared\n");
    } else if (strcmp(line, "/save") == 0 || strcmp(line, "/load") == 0) {
        if (!*arg) fprintf(stderr, "owl chat: %s needs a file name\n", line);
        else if (line[1] == 's') save(s, arg);
        else load(s, arg);
    } else {
        fprintf(stderr, "owl chat: unknown command '%s' (commands: /reset, /save FILE, /load FILE, /exit)\n", line);
    }
    return true;
}

/* The next line of input without its newline (malloc'd), NULL at the end. */
static char *next_line(chat_session *s) {
    if (s->tty) {
        g_interrupted = 0;
        char *l = readline("> ");
        if (g_interrupted) { /* Ctrl-C at the prompt */
            free(l);
            fputc('\n', stdout);
            return NULL;
        }
        if (l && *l) add_history(l);
        return l;
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n = getline(&l, &cap, stdin);
    if (n < 0) {
        free(l);
        return NULL;
    }
    while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r')) l[--n] = 0;
    return l;
}

int cli_chat(int argc, char **argv) {
    chat_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    chat_session s = {.o = &o};
    int ret = CLI_EXIT_RUNTIME;
    char *tmpl = NULL;
    owl_lora **loras = NULL;
    owl_status st;
    if (o.template_file) {
        size_t len;
        if (!(tmpl = cli_read_text(CMD, "template", o.template_file, &len))) return CLI_EXIT_RUNTIME;
    }
    owl_set_threads(o.threads);
    if (!o.seed_given) o.sp.seed = seed_from_clock();
    if (!(s.model = cli_load_model(CMD, o.model, o.tokenizer))) goto done;
    s.tok = owl_model_tokenizer(s.model);
    if ((st = owl_conv_new(s.model, tmpl, &s.conv))) {
        cli_error(CMD, "cannot use the chat template%s%s: %s", tmpl ? " " : "", tmpl ? o.template_file : "",
                  owl_last_error());
        goto done;
    }
    if (o.verbose) { /* the end-of-turn tokens: id and text */
        int n_stops;
        const int32_t *stops = owl_conv_stop_tokens(s.conv, &n_stops);
        fprintf(stderr, "owl chat: stop tokens:");
        for (int i = 0; i < n_stops; i++) {
            size_t pl = 0;
            const char *p = owl_token_piece(s.tok, stops[i], &pl);
            fprintf(stderr, " %d=%.*s", stops[i], p ? (int)pl : 0, p ? p : "");
        }
        fputc('\n', stderr);
    }
    if (owl_conv_template_origin(s.conv) == OWL_CONV_TEMPLATE_CHATML)
        fprintf(stderr, "owl chat: model '%s' has no chat template: using ChatML (give one with --template FILE)\n",
                o.model);
    if ((st = owl_ctx_new(s.model, o.n_ctx, &s.ctx))) {
        cli_error(CMD, "cannot create a context of %d tokens: %s", o.n_ctx, owl_last_error());
        goto done;
    }
    if (o.lora.n && !cli_lora_attach(CMD, s.model, s.ctx, &o.lora, &loras)) goto done;
    owl_model_info info;
    owl_model_get_info(s.model, &info);
    o.sp.repeat_last_n = o.repeat_last_n < 0 ? owl_ctx_size(s.ctx) : o.repeat_last_n;
    if ((st = owl_sampler_new(&o.sp, info.n_vocab, &s.smp))) {
        cli_error(CMD, "%s", owl_last_error());
        goto done;
    }
    s.tty = isatty(STDIN_FILENO);
    s.stats = o.verbose || !s.tty;
    reset(&s);

    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    if (s.tty) {
        rl_catch_signals = 0; /* our handler sees Ctrl-C; readline restores the terminal when its input ends */
        rl_getc_function = chat_getc;
        fprintf(stderr, "owl chat: %s (/exit or Ctrl-D to leave, /reset, /save FILE, /load FILE)\n", o.model);
    }
    ret = CLI_EXIT_OK;
    for (;;) {
        char *line = next_line(&s);
        if (!line) break;
        bool go_on = true;
        if (line[0] == '/') {
            go_on = command(&s, line);
        } else if (line[0]) {
            if ((st = owl_conv_add(s.conv, "user", line, strlen(line)))) {
                cli_error(CMD, "%s", owl_last_error());
                ret = CLI_EXIT_RUNTIME;
                go_on = false;
            } else if (!answer(&s)) {
                ret = CLI_EXIT_RUNTIME;
                go_on = false;
            }
        }
        free(line);
        if (!go_on) break;
    }
    sigaction(SIGINT, &old_sa, NULL);
    if (s.tty) rl_clear_history();
done:
    owl_conv_free(s.conv);
    owl_sampler_free(s.smp);
    owl_ctx_free(s.ctx);
    cli_lora_free(loras, o.lora.n);
    owl_model_free(s.model);
    free(tmpl);
    return ret;
}
