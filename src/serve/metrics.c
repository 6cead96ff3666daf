/* Prometheus counters of the server (process-wide, one mutex). */
#include "serve/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ROUTES 16
#define N_STATUS 16

static const double TTFT_B[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double TOK_B[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
static const double SEQ_B[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define NB_SEQ (sizeof SEQ_B / sizeof SEQ_B[0])
#define NB_TTFT (sizeof TTFT_B / sizeof TTFT_B[0])
#define NB_TOK (sizeof TOK_B / sizeof TOK_B[0])

typedef struct hist {
    uint64_t b[16];
    uint64_t count;
    double sum;
} hist;

static struct {
    pthread_mutex_t mu;
    struct {
        char route[48];
        int status;
        uint64_t n;
    } req[N_ROUTES * N_STATUS];
    int n_req;
    uint64_t prompt_tokens, gen_tokens, cached_tokens;
    hist ttft, tok, batch_seqs;
    uint64_t batch_rows;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

void owl_metrics_request(const char *route, int status) {
    pthread_mutex_lock(&M.mu);
    int i;
    for (i = 0; i < M.n_req; i++)
        if (M.req[i].status == status && strcmp(M.req[i].route, route) == 0) break;
    if (i == M.n_req && M.n_req < N_ROUTES * N_STATUS) {
        snprintf(M.req[i].route, sizeof M.req[i].route, "%s", route);
        M.req[i].status = status;
        M.req[i].n = 0;
        M.n_req++;
    }
    if (i < M.n_req) M.req[i].n++;
    pthread_mutex_unlock(&M.mu);
}

void owl_metrics_tokens(int prompt, int generated) {
    pthread_mutex_lock(&M.mu);
    M.prompt_tokens += (uint64_t)(prompt > 0 ? prompt : 0);
    M.gen_tokens += (uint64_t)(generated > 0 ? generated : 0);
    pthread_mutex_unlock(&M.mu);
}

static void observe(hist *h, const double *bounds, size_t nb, double v);

void owl_metrics_batch(int sequences, int rows) {
    pthread_mutex_lock(&M.mu);
    observe(&M.batch_seqs, SEQ_B, NB_SEQ, (double)sequences);
    M.batch_rows += (uint64_t)(rows > 0 ? rows : 0);
    pthread_mutex_unlock(&M.mu);
}

static void observe(hist *h, const double *bounds, size_t nb, double v) {
    for (size_t i = 0; i < nb; i++)
        if (v <= bounds[i]) h->b[i]++;
    h->count++;
    h->sum += v;
}

void owl_metrics_cached_tokens(int n) {
    pthread_mutex_lock(&M.mu);
    M.cached_tokens += (uint64_t)(n > 0 ? n : 0);
    pthread_mutex_unlock(&M.mu);
}

void owl_metrics_ttft(double s) {
    pthread_mutex_lock(&M.mu);
    observe(&M.ttft, TTFT_B, NB_TTFT, s);
    pthread_mutex_unlock(&M.mu);
}

void owl_metrics_token_latency(double s) {
    pthread_mutex_lock(&M.mu);
    observe(&M.tok, TOK_B, NB_TOK, s);
    pthread_mutex_unlock(&M.mu);
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool bad;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->bad) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->bad = true;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->bad = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

static void hist_out(sbuf *b, const char *name, const char *help, const hist *h, const double *bounds, size_t nb) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < nb; i++) sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)h->b[i]);
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->count, name,
              h->sum, name, (unsigned long long)h->count);
}

char *owl_metrics_render(int queue_depth, int active_slots, int n_slots) {
    sbuf b = {0};
    b.cap = 4096;
    b.p = malloc(b.cap);
    if (!b.p) return NULL;
    pthread_mutex_lock(&M.mu);
    sb_printf(&b, "# HELP owl_requests_total HTTP requests by route and status.\n# TYPE owl_requests_total counter\n");
    for (int i = 0; i < M.n_req; i++)
        sb_printf(&b, "owl_requests_total{route=\"%s\",status=\"%d\"} %llu\n", M.req[i].route, M.req[i].status,
                  (unsigned long long)M.req[i].n);
    sb_printf(&b, "# HELP owl_queue_depth Requests waiting for a slot.\n# TYPE owl_queue_depth gauge\nowl_queue_depth %d\n",
              queue_depth);
    sb_printf(&b, "# HELP owl_slots_active Slots generating.\n# TYPE owl_slots_active gauge\nowl_slots_active %d\n",
              active_slots);
    sb_printf(&b, "# HELP owl_slots Slots configured.\n# TYPE owl_slots gauge\nowl_slots %d\n", n_slots);
    sb_printf(&b, "# HELP owl_prompt_tokens_total Prompt tokens processed.\n# TYPE owl_prompt_tokens_total counter\n"
                  "owl_prompt_tokens_total %llu\n", (unsigned long long)M.prompt_tokens);
    sb_printf(&b, "# HELP owl_generation_tokens_total Tokens generated.\n# TYPE owl_generation_tokens_total counter\n"
                  "owl_generation_tokens_total %llu\n", (unsigned long long)M.gen_tokens);
    sb_printf(&b, "# HELP owl_prompt_tokens_cached_total Prompt tokens found in the KV cache of a slot (not evaluated again).\n"
                  "# TYPE owl_prompt_tokens_cached_total counter\nowl_prompt_tokens_cached_total %llu\n",
              (unsigned long long)M.cached_tokens);
    hist_out(&b, "owl_time_to_first_token_seconds", "Time from admission to the first generated token.", &M.ttft,
             TTFT_B, NB_TTFT);
    hist_out(&b, "owl_time_per_output_token_seconds", "Time between generated tokens.", &M.tok, TOK_B, NB_TOK);
    hist_out(&b, "owl_batch_sequences", "Sequences (slots) in each batch the scheduler ran (continuous batching).",
             &M.batch_seqs, SEQ_B, NB_SEQ);
    sb_printf(&b, "# HELP owl_batch_tokens_total Tokens (rows) in all batches: prompt chunks and generated tokens.\n"
                  "# TYPE owl_batch_tokens_total counter\nowl_batch_tokens_total %llu\n",
              (unsigned long long)M.batch_rows);
    pthread_mutex_unlock(&M.mu);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
