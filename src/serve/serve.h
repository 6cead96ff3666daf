/* serve/: the HTTP server behind `owl serve` (OpenAI-compatible routes),
 * its scheduler, API keys, audit log and metrics.
 *
 * Files: audit.c (hash-chained JSON-lines log and its verifier), keys.c
 * (SQLite key store, per-key rate limits), sched.c (slots, queue, the
 * generation thread), metrics.c (Prometheus counters), api.c (request
 * bodies, response objects), logprobs.c, http.c + embed_route.c (routes,
 * libmicrohttpd). */
#ifndef OWL_SERVE_H
#define OWL_SERVE_H

#include "base/base.h"
#include "owl.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- SHA-256 (hex, 64 chars + NUL) ------------------------------------ */

void owl_serve_sha256_hex(const void *data, size_t len, char out[65]);

/* ---- audit log (audit.c) ---------------------------------------------- */

typedef struct owl_audit owl_audit;

/* Opens (creates) path for appending; the chain continues from its last
 * line. */
owl_status owl_audit_open(const char *path, owl_audit **out);
/* Appends one JSON object (a line) with "prev" set to the SHA-256 of the
 * previous line ("" for the first). write() + fsync() per line. Thread-safe. */
owl_status owl_audit_append(owl_audit *a, const char *json_object_text);
void owl_audit_close(owl_audit *a);
/* Checks the chain: *bad_line = 0 if good, else the first bad line (1-based)
 * and the error text says why. */
owl_status owl_audit_verify(const char *path, long *n_lines, long *bad_line);

/* ---- API keys (keys.c) ------------------------------------------------ */

typedef struct owl_key_info {
    int64_t id;
    char name[128];
    char models[512]; /* comma-separated, "" = all */
    int rpm, tpm;     /* 0 = no limit */
    int64_t created;
    bool revoked;
} owl_key_info;

typedef struct owl_keydb owl_keydb;

owl_status owl_keydb_open(const char *path, bool create, owl_keydb **out);
void owl_keydb_close(owl_keydb *db);
/* Creates a key: *secret (malloc'd) is "owl-" + 64 hex chars, shown once. */
owl_status owl_keydb_create(owl_keydb *db, const char *name, const char *models, int rpm, int tpm,
                            char **secret, int64_t *id);
/* Lists keys; *out malloc'd. */
owl_status owl_keydb_list(owl_keydb *db, owl_key_info **out, size_t *n);
/* OWL_ERR_ARG if no such key. */
owl_status owl_keydb_revoke(owl_keydb *db, int64_t id);
/* Looks up a presented secret: true and *info if it is a live key. */
bool owl_keydb_check(owl_keydb *db, const char *secret, owl_key_info *info);
/* True if the key's scope allows model name: an entry equal to it, "*",
 * or "BASE:*" for any adapter "BASE:NAME" (plain "BASE" is the base model
 * alone). */
bool owl_key_allows_model(const owl_key_info *k, const char *model);

/* Per-key requests/tokens per minute (in memory, one-minute windows). */
typedef struct owl_ratelimit owl_ratelimit;
owl_ratelimit *owl_ratelimit_new(void);
void owl_ratelimit_free(owl_ratelimit *r);
/* Counts one request; false (and *retry_after seconds) if over rpm or tpm. */
bool owl_ratelimit_admit(owl_ratelimit *r, const owl_key_info *k, int *retry_after);
/* Adds tokens used by a finished request. */
void owl_ratelimit_add_tokens(owl_ratelimit *r, int64_t key_id, int tokens);

/* ---- metrics (metrics.c) ---------------------------------------------- */

void owl_metrics_request(const char *route, int status);
void owl_metrics_tokens(int prompt, int generated);
/* Prompt tokens a slot's cache already held (prefix reuse). */
void owl_metrics_cached_tokens(int n);
void owl_metrics_ttft(double seconds);
void owl_metrics_token_latency(double seconds);
/* One batch of the scheduler: sequences and rows (tokens) in it. */
void owl_metrics_batch(int sequences, int rows);
/* Prometheus text; malloc'd. */
char *owl_metrics_render(int queue_depth, int active_slots, int n_slots);

/* ---- scheduler (sched.c) ---------------------------------------------- */

/* Log-probabilities of one generated token (logprobs in the response). */
#define OWL_GEN_MAX_TOP 20
typedef struct owl_gen_lp {
    int32_t id;
    float lp;
    int n_top;
    int32_t top_id[OWL_GEN_MAX_TOP];
    float top_lp[OWL_GEN_MAX_TOP];
} owl_gen_lp;

typedef enum owl_finish { OWL_FINISH_NONE, OWL_FINISH_STOP, OWL_FINISH_LENGTH, OWL_FINISH_ERROR } owl_finish;

/* One generation request. The HTTP side fills the inputs, the scheduler the
 * outputs (under mu); both hold a reference. */
typedef struct owl_gen {
    /* inputs */
    const owl_lora *lora; /* the adapter applied (NULL: the base model); owned by the server */
    int32_t *prompt;
    int n_prompt;
    int max_tokens;
    owl_sampler_params sp;
    char **stops; /* stop strings */
    int n_stops;
    int32_t *stop_ids; /* tokens that end the answer besides EOS (chat: end of turn) */
    int n_stop_ids;
    double deadline_ms;   /* owl_time_ms() limit; 0 = none */
    int top_logprobs;     /* -1: no logprobs; else also the n most likely tokens */
    owl_gen_lp *lps;      /* n_gen entries when top_logprobs >= 0 */
    int cap_lps;
    /* embeddings instead of generation: prompt holds n_inputs token lists,
     * input i at [input_off[i], input_off[i + 1]); embedding gets n_inputs x
     * n_embd floats */
    bool embed;
    int n_inputs, n_embd;
    int *input_off;
    float *embedding;
    /* outputs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text; /* generated text so far (cut at a stop string when found) */
    size_t len, cap;
    size_t hold;    /* bytes at the end that may start a stop string */
    int n_gen;
    int n_cached;   /* prompt tokens reused from the slot's cache */
    bool done;
    bool cancelled; /* set by the HTTP side */
    owl_finish finish;
    char err[256];
    double t_first_ms; /* time of the first token (0 = none yet) */
    int refs;
} owl_gen;

owl_gen *owl_gen_new(void);
void owl_gen_unref(owl_gen *g);

typedef struct owl_sched owl_sched;

#define OWL_SCHED_STEP_TOKENS 128 /* default prompt tokens per step */
/* n_slots contexts of n_ctx positions; queue_cap requests may wait; each
 * step reads at most step_tokens prompt tokens (0: OWL_SCHED_STEP_TOKENS)
 * besides one token per generating slot. */
owl_status owl_sched_new(owl_model *model, int n_slots, int n_ctx, int queue_cap, int step_tokens, owl_sched **out);
/* Stops the thread after finishing every request it holds. */
void owl_sched_free(owl_sched *s);
/* Queues g (takes a reference). false if the queue is full. */
bool owl_sched_submit(owl_sched *s, owl_gen *g);
void owl_sched_cancel(owl_sched *s, owl_gen *g);
void owl_sched_stats(owl_sched *s, int *queued, int *active);
int owl_sched_ctx_size(const owl_sched *s);

/* logprobs.c: the "logprobs" object of a response (chat or legacy
 * completions form) from g->lps. */
#include <jansson.h>
json_t *owl_serve_logprobs_json(const owl_tokenizer *tok, const owl_gen *g, bool chat);

/* ---- server (http.c) -------------------------------------------------- */

typedef struct owl_server_opts {
    const char *model_path;
    const char *model_name; /* id shown by /v1/models */
    const char *host;
    int port;
    int slots, queue, n_ctx;
    int step_tokens;      /* prompt tokens per scheduler step (0: OWL_SCHED_STEP_TOKENS) */
    bool no_auth;
    const char *keys_db;
    const char *audit_path;
    bool audit_content;
    size_t max_body;
    int max_tokens_cap;
    int timeout_s;        /* per request generation limit */
    int conn_timeout_s;   /* idle connection limit (slow clients) */
    int max_messages;
    /* adapters served beside the base model (--lora NAME=PATH): a request
     * picks one with "model": "BASE:NAME" or "adapter": "NAME" */
    int n_lora;
    const char *const *lora_names;
    const char *const *lora_paths;
} owl_server_opts;

/* Runs until SIGTERM/SIGINT; returns OWL_OK after a clean shutdown. */
owl_status owl_server_run(owl_model *model, const owl_server_opts *o);

#endif
