/* The scheduler: a fixed number of slots, each with its own context (KV
 * cache), and one thread that runs continuous batching. Each step builds one
 * batch (owl_batch_eval) over all active slots: one token for every slot
 * that is generating, plus the next prompt chunks of slots that joined,
 * first come first served, under a per-step budget of prompt tokens (so that
 * a long prompt does not stall the others' generation); the batch runs once
 * (every weight matrix read once for all slots), then every slot whose
 * logits are ready samples its next token. Requests wait in a bounded queue
 * and join a free slot between steps; a slot is picked by the longest common
 * prefix of the new prompt with the tokens its cache holds, and only the rest
 * of the prompt is evaluated. Finished, cancelled and timed-out requests
 * leave between steps. */
#include "serve/serve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

owl_gen *owl_gen_new(void) {
    owl_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->refs = 1;
    g->top_logprobs = -1;
    owl_sampler_defaults(&g->sp);
    return g;
}

void owl_gen_unref(owl_gen *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    int r = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (r > 0) return;
    free(g->prompt);
    free(g->stop_ids);
    free(g->input_off);
    free(g->lps);
    free(g->embedding);
    for (int i = 0; i < g->n_stops; i++) free(g->stops[i]);
    free(g->stops);
    free(g->text);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

typedef struct slot {
    owl_ctx *ctx;
    int32_t *cache; /* tokens the KV cache holds, n_ctx of room */
    int n_cache;
    const owl_lora *lora; /* the adapter installed on ctx (its cache was computed with it) */
    owl_gen *g;
    owl_sampler *smp;
    owl_detok *dt;
    bool started;
    int fed;         /* prompt tokens in the cache; the prompt is being read while fed < n_prompt */
    bool ready;      /* the context's last logits are this slot's next-token distribution */
    int32_t pending; /* sampled token to evaluate in the next batch, -1 if none */
    uint64_t joined; /* admission order (prompt chunks are served first come first served) */
    int b_n;         /* rows of this slot in the step's batch */
    double t_last;
} slot;

struct owl_sched {
    owl_model *model;
    const owl_tokenizer *tok;
    int n_vocab, n_ctx;
    slot *slots;
    int n_slots, n_active;
    owl_gen **queue;
    int q_cap, q_head, q_len;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started, stopping;
    owl_batch *batch;
    int step_tokens;  /* prompt tokens per step */
    uint64_t n_joined;
    /* the step's batch */
    owl_ctx **b_ctx;
    const int32_t **b_tok;
    int *b_cnt, *b_slot;
    int step_delay_ms; /* tests only: OWL_SERVE_TEST_STEP_DELAY_MS slows each step */
};

static void *sched_main(void *arg);

owl_status owl_sched_new(owl_model *model, int n_slots, int n_ctx, int queue_cap, int step_tokens, owl_sched **out) {
    *out = NULL;
    if (n_slots < 1 || n_slots > 256 || queue_cap < 0) return owl_errorf(OWL_ERR_ARG, "scheduler: %d slots, queue %d", n_slots, queue_cap);
    if (step_tokens == 0) step_tokens = OWL_SCHED_STEP_TOKENS;
    if (step_tokens < 1 || step_tokens > 65536)
        return owl_errorf(OWL_ERR_ARG, "scheduler: %d prompt tokens per step (1..65536)", step_tokens);
    owl_sched *s = calloc(1, sizeof *s);
    if (!s) return owl_errorf(OWL_ERR_NOMEM, "scheduler: out of memory");
    s->model = model;
    s->tok = owl_model_tokenizer(model);
    owl_model_info info;
    owl_model_get_info(model, &info);
    s->n_vocab = info.n_vocab;
    s->n_slots = n_slots;
    s->q_cap = queue_cap;
    s->step_tokens = step_tokens;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    const char *delay = getenv("OWL_SERVE_TEST_STEP_DELAY_MS");
    if (delay) s->step_delay_ms = atoi(delay) > 0 && atoi(delay) < 10000 ? atoi(delay) : 0;
    s->slots = calloc((size_t)n_slots, sizeof *s->slots);
    s->queue = calloc((size_t)queue_cap + (size_t)n_slots, sizeof *s->queue);
    s->b_ctx = calloc((size_t)n_slots, sizeof *s->b_ctx);
    s->b_tok = calloc((size_t)n_slots, sizeof *s->b_tok);
    s->b_cnt = calloc((size_t)n_slots, sizeof *s->b_cnt);
    s->b_slot = calloc((size_t)n_slots, sizeof *s->b_slot);
    owl_status st = (s->slots && s->queue && s->b_ctx && s->b_tok && s->b_cnt && s->b_slot)
                        ? OWL_OK
                        : owl_errorf(OWL_ERR_NOMEM, "scheduler: out of memory");
    if (st == OWL_OK) st = owl_batch_new(model, n_slots + step_tokens, &s->batch);
    for (int i = 0; i < n_slots && st == OWL_OK; i++) {
        st = owl_ctx_new(model, n_ctx, &s->slots[i].ctx);
        if (st != OWL_OK) break;
        s->n_ctx = owl_ctx_size(s->slots[i].ctx);
        s->slots[i].cache = malloc((size_t)s->n_ctx * sizeof(int32_t));
        if (!s->slots[i].cache) st = owl_errorf(OWL_ERR_NOMEM, "scheduler: out of memory");
    }
    if (st == OWL_OK) {
        if (pthread_create(&s->thread, NULL, sched_main, s) != 0)
            st = owl_errorf(OWL_ERR_NOMEM, "scheduler: cannot start its thread");
        else
            s->thread_started = true;
    }
    if (st != OWL_OK) {
        owl_sched_free(s);
        return st;
    }
    *out = s;
    return OWL_OK;
}

void owl_sched_free(owl_sched *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        owl_ctx_free(s->slots[i].ctx);
        free(s->slots[i].cache);
    }
    free(s->slots);
    free(s->queue);
    owl_batch_free(s->batch);
    free(s->b_ctx);
    free(s->b_tok);
    free(s->b_cnt);
    free(s->b_slot);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

int owl_sched_ctx_size(const owl_sched *s) { return s->n_ctx; }

bool owl_sched_submit(owl_sched *s, owl_gen *g) {
    pthread_mutex_lock(&s->mu);
    /* waiting room: q_cap requests beyond those a free slot takes now */
    bool ok = !s->stopping && (s->q_len < s->q_cap || s->n_active + s->q_len < s->n_slots);
    if (ok) {
        pthread_mutex_lock(&g->mu);
        g->refs++;
        pthread_mutex_unlock(&g->mu);
        s->queue[(s->q_head + s->q_len) % (s->q_cap + s->n_slots)] = g;
        s->q_len++;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void owl_sched_cancel(owl_sched *s, owl_gen *g) {
    pthread_mutex_lock(&g->mu);
    g->cancelled = true;
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void owl_sched_stats(owl_sched *s, int *queued, int *active) {
    pthread_mutex_lock(&s->mu);
    *queued = s->q_len;
    *active = s->n_active;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the generation thread ---- */

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

static void gen_finish(owl_gen *g, owl_finish f, const char *err) {
    pthread_mutex_lock(&g->mu);
    if (!g->done) {
        g->done = true;
        g->finish = f;
        g->hold = 0;
        if (err) snprintf(g->err, sizeof g->err, "%s", err);
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

static void slot_release(owl_sched *s, slot *sl) {
    owl_metrics_tokens(sl->g ? sl->g->n_prompt : 0, sl->g ? sl->g->n_gen : 0);
    owl_metrics_cached_tokens(sl->g ? sl->g->n_cached : 0);
    owl_sampler_free(sl->smp);
    owl_detok_free(sl->dt);
    sl->smp = NULL;
    sl->dt = NULL;
    owl_gen_unref(sl->g);
    sl->g = NULL;
    sl->started = false;
    sl->ready = false;
    sl->pending = -1;
    s->n_active--;
}

/* Appends a piece of text and looks for stop strings; true if one ended the
 * text (cut before it). Called with g->mu held. */
static bool append_text(owl_gen *g, const char *p, size_t n) {
    if (n == 0) return false;
    if (g->len + n + 1 > g->cap) {
        size_t nc = (g->len + n + 1) * 2;
        char *nt = realloc(g->text, nc);
        if (!nt) return false;
        g->text = nt;
        g->cap = nc;
    }
    size_t old = g->len;
    memcpy(g->text + g->len, p, n);
    g->len += n;
    g->text[g->len] = 0;
    size_t hold = 0;
    for (int i = 0; i < g->n_stops; i++) {
        const char *st = g->stops[i];
        size_t sl = strlen(st);
        if (sl == 0) continue;
        size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
        char *hit = memmem(g->text + from, g->len - from, st, sl);
        if (hit) {
            g->len = (size_t)(hit - g->text);
            g->text[g->len] = 0;
            g->hold = 0;
            return true;
        }
        for (size_t k = sl - 1 < g->len ? sl - 1 : g->len; k > 0; k--)
            if (memcmp(g->text + g->len - k, st, k) == 0) {
                if (k > hold) hold = k;
                break;
            }
    }
    g->hold = hold;
    return false;
}

/* Starts a slot's request: reuse the cached prefix; the rest of the prompt
 * is read by the following batches. */
static bool slot_start(owl_sched *s, slot *sl) {
    owl_gen *g = sl->g;
    char e[160];
    if (g->n_prompt < 1 || g->n_prompt > s->n_ctx) {
        snprintf(e, sizeof e, "prompt of %d tokens does not fit in the context of %d", g->n_prompt, s->n_ctx);
        gen_finish(g, OWL_FINISH_ERROR, e);
        return false;
    }
    for (int i = 0; i < g->n_prompt; i++)
        if (g->prompt[i] < 0 || g->prompt[i] >= s->n_vocab) {
            snprintf(e, sizeof e, "prompt token %d at index %d is outside the vocabulary of %d", (int)g->prompt[i], i,
                     s->n_vocab);
            gen_finish(g, OWL_FINISH_ERROR, e);
            return false;
        }
    int p = common_prefix(sl->cache, sl->n_cache, g->prompt, g->n_prompt);
    if (p >= g->n_prompt) p = g->n_prompt - 1; /* the last token is run again for its logits */
    if (p > owl_ctx_pos(sl->ctx)) p = owl_ctx_pos(sl->ctx);
    owl_ctx_truncate(sl->ctx, p);
    sl->n_cache = p;
    sl->fed = p;
    sl->ready = false;
    sl->pending = -1;
    g->n_cached = p;
    g->sp.repeat_last_n = g->sp.repeat_last_n < 0 ? s->n_ctx : g->sp.repeat_last_n;
    owl_status st = owl_sampler_new(&g->sp, s->n_vocab, &sl->smp);
    if (st == OWL_OK) st = owl_detok_new(s->tok, &sl->dt);
    if (st != OWL_OK) {
        gen_finish(g, OWL_FINISH_ERROR, owl_last_error());
        return false;
    }
    for (int i = 0; i < g->n_prompt; i++) owl_sampler_accept(sl->smp, g->prompt[i]);
    owl_detok_prime(sl->dt, g->prompt[g->n_prompt - 1]);
    sl->started = true;
    return true;
}

static void record_logprobs(owl_gen *g, const float *logits, int n_vocab, int32_t t);

/* Before a step: a cancelled, timed-out or embedding request ends here, a
 * new one starts, and a slot whose logits are ready samples its token (kept
 * in sl->pending for the batch). false when its request is over. */
static bool slot_prepare(owl_sched *s, slot *sl, double t0) {
    owl_gen *g = sl->g;
    pthread_mutex_lock(&g->mu);
    bool cancelled = g->cancelled;
    pthread_mutex_unlock(&g->mu);
    if (cancelled) {
        gen_finish(g, OWL_FINISH_ERROR, "cancelled");
        return false;
    }
    if (g->deadline_ms > 0 && owl_time_ms() > g->deadline_ms) {
        gen_finish(g, OWL_FINISH_ERROR, "timeout");
        return false;
    }
    if (!sl->started && sl->lora != g->lora) { /* the request's adapter on the slot's context */
        owl_status st = owl_ctx_set_adapters(sl->ctx, g->lora ? &g->lora : NULL, NULL, g->lora ? 1 : 0);
        sl->n_cache = 0;
        owl_ctx_truncate(sl->ctx, 0);
        if (st != OWL_OK) {
            sl->lora = NULL;
            owl_ctx_set_adapters(sl->ctx, NULL, NULL, 0);
            gen_finish(g, OWL_FINISH_ERROR, owl_last_error());
            return false;
        }
        sl->lora = g->lora;
    }
    if (g->embed) {
        owl_model_info info;
        owl_model_get_info(s->model, &info);
        g->n_embd = info.dim;
        g->embedding = malloc((size_t)g->n_inputs * (size_t)info.dim * sizeof(float));
        owl_status st = g->embedding ? OWL_OK : owl_errorf(OWL_ERR_NOMEM, "embeddings: out of memory");
        for (int i = 0; i < g->n_inputs && st == OWL_OK; i++)
            st = owl_ctx_embed(sl->ctx, g->prompt + g->input_off[i], g->input_off[i + 1] - g->input_off[i],
                               g->embedding + (size_t)i * (size_t)info.dim);
        sl->n_cache = 0; /* the cache no longer holds a prompt */
        gen_finish(g, st == OWL_OK ? OWL_FINISH_STOP : OWL_FINISH_ERROR, st == OWL_OK ? NULL : owl_last_error());
        return false;
    }
    if (!sl->started) {
        if (!slot_start(s, sl)) return false;
        sl->t_last = t0;
        return true;
    }
    if (!sl->ready) return true;
    sl->ready = false;
    int32_t t = owl_sampler_sample(sl->smp, owl_ctx_logits(sl->ctx, -1));
    if (t < 0) {
        gen_finish(g, OWL_FINISH_ERROR, "the model produced no usable logits");
        return false;
    }
    double now = owl_time_ms();
    bool end = t == owl_token_eos(s->tok) || t == owl_token_bos(s->tok);
    for (int i = 0; i < g->n_stop_ids && !end; i++) end = t == g->stop_ids[i];
    if (end) {
        size_t n = 0;
        const char *rest = owl_detok_flush(sl->dt, &n);
        pthread_mutex_lock(&g->mu);
        if (rest) append_text(g, rest, n);
        pthread_mutex_unlock(&g->mu);
        gen_finish(g, OWL_FINISH_STOP, NULL);
        return false;
    }
    owl_sampler_accept(sl->smp, t);
    if (g->top_logprobs >= 0) {
        pthread_mutex_lock(&g->mu);
        record_logprobs(g, owl_ctx_logits(sl->ctx, -1), s->n_vocab, t);
        pthread_mutex_unlock(&g->mu);
    }
    size_t n = 0;
    const char *piece = owl_detok_push(sl->dt, t, &n);
    pthread_mutex_lock(&g->mu);
    bool first = g->n_gen == 0;
    g->n_gen++;
    if (first) g->t_first_ms = now;
    bool stopped = piece ? append_text(g, piece, n) : false;
    bool length = g->n_gen >= g->max_tokens || owl_ctx_pos(sl->ctx) >= s->n_ctx;
    if (!stopped && length) {
        size_t rn = 0;
        const char *rest = owl_detok_flush(sl->dt, &rn);
        if (rest) stopped = append_text(g, rest, rn);
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (first)
        owl_metrics_ttft((now - sl->t_last) / 1e3);
    else
        owl_metrics_token_latency((now - sl->t_last) / 1e3);
    sl->t_last = now;
    if (stopped || length) {
        gen_finish(g, stopped ? OWL_FINISH_STOP : OWL_FINISH_LENGTH, NULL);
        return false;
    }
    sl->pending = t;
    return true;
}

/* One step over all active slots: prepare each (sample where logits are
 * ready), build one batch (a token per generating slot, prompt chunks of the
 * others under the budget, oldest first), run it, and mark the slots whose
 * logits are ready. over[i]: slot i's request ended. */
static void sched_step(owl_sched *s, bool *over, double t0) {
    int n = 0, rows = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        sl->b_n = 0;
        over[i] = sl->g && !slot_prepare(s, sl, t0);
        if (!sl->g || over[i] || sl->pending < 0) continue;
        s->b_ctx[n] = sl->ctx;
        s->b_tok[n] = &sl->pending;
        s->b_cnt[n] = 1;
        s->b_slot[n++] = i;
        sl->b_n = 1;
        rows++;
    }
    /* prompt chunks: the slots still reading their prompt, in the order they joined */
    int budget = s->step_tokens;
    while (budget > 0) {
        int pick = -1;
        for (int i = 0; i < s->n_slots; i++) {
            slot *sl = &s->slots[i];
            if (!sl->g || over[i] || !sl->started || sl->b_n || sl->fed >= sl->g->n_prompt) continue;
            if (pick < 0 || sl->joined < s->slots[pick].joined) pick = i;
        }
        if (pick < 0) break;
        slot *sl = &s->slots[pick];
        int take = sl->g->n_prompt - sl->fed;
        if (take > budget) take = budget;
        s->b_ctx[n] = sl->ctx;
        s->b_tok[n] = sl->g->prompt + sl->fed;
        s->b_cnt[n] = take;
        s->b_slot[n++] = pick;
        sl->b_n = take;
        budget -= take;
        rows += take;
    }
    if (n == 0) return;
    owl_status st = owl_batch_eval(s->batch, s->b_ctx, s->b_tok, s->b_cnt, n, false);
    owl_metrics_batch(n, rows);
    for (int k = 0; k < n; k++) {
        const int i = s->b_slot[k];
        slot *sl = &s->slots[i];
        if (st != OWL_OK) {
            gen_finish(sl->g, OWL_FINISH_ERROR, owl_last_error());
            over[i] = true;
            continue;
        }
        if (sl->pending >= 0) { /* a generated token */
            sl->cache[sl->n_cache++] = sl->pending;
            sl->pending = -1;
            sl->ready = true;
        } else { /* a prompt chunk */
            memcpy(sl->cache + sl->fed, s->b_tok[k], (size_t)s->b_cnt[k] * sizeof(int32_t));
            sl->fed += s->b_cnt[k];
            sl->n_cache = sl->fed;
            sl->ready = sl->fed == sl->g->n_prompt;
        }
    }
}

/* Log-softmax of the raw logits at token t and the n most likely tokens. */
static void record_logprobs(owl_gen *g, const float *logits, int n_vocab, int32_t t) {
    if (g->n_gen >= g->cap_lps) {
        int nc = g->cap_lps ? g->cap_lps * 2 : 64;
        owl_gen_lp *nl = realloc(g->lps, (size_t)nc * sizeof *nl);
        if (!nl) return;
        g->lps = nl;
        g->cap_lps = nc;
    }
    double mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    owl_gen_lp *e = &g->lps[g->n_gen];
    e->id = t;
    e->lp = (float)((double)logits[t] - lse);
    int k = g->top_logprobs < OWL_GEN_MAX_TOP ? g->top_logprobs : OWL_GEN_MAX_TOP;
    if (k > n_vocab) k = n_vocab;
    e->n_top = 0;
    for (int i = 0; i < n_vocab && k > 0; i++) { /* insertion into a sorted list of k */
        float v = logits[i];
        if (e->n_top == k && v <= logits[e->top_id[k - 1]]) continue;
        int j = e->n_top < k ? e->n_top++ : k - 1;
        while (j > 0 && logits[e->top_id[j - 1]] < v) {
            e->top_id[j] = e->top_id[j - 1];
            j--;
        }
        e->top_id[j] = i;
    }
    for (int i = 0; i < e->n_top; i++) e->top_lp[i] = (float)((double)logits[e->top_id[i]] - lse);
}

static void *sched_main(void *arg) {
    owl_sched *s = arg;
    bool *over = calloc((size_t)s->n_slots, sizeof *over);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* admit queued requests into free slots */
        while (s->q_len > 0 && s->n_active < s->n_slots) {
            owl_gen *g = s->queue[s->q_head];
            s->q_head = (s->q_head + 1) % (s->q_cap + s->n_slots);
            s->q_len--;
            int best = -1, best_p = -1;
            for (int i = 0; i < s->n_slots; i++) {
                if (s->slots[i].g) continue;
                /* a cache computed with another adapter is of no use */
                int p = s->slots[i].lora != g->lora
                            ? 0
                            : common_prefix(s->slots[i].cache, s->slots[i].n_cache, g->prompt, g->n_prompt);
                if (p > best_p) {
                    best_p = p;
                    best = i;
                }
            }
            s->slots[best].g = g;
            s->slots[best].started = false;
            s->slots[best].ready = false;
            s->slots[best].pending = -1;
            s->slots[best].joined = s->n_joined++;
            s->n_active++;
        }
        if (s->n_active == 0) {
            if (s->stopping && s->q_len == 0) break;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        double t0 = owl_time_ms();
        if (over) {
            sched_step(s, over, t0);
        } else { /* no memory for the flags: end every request */
            for (int i = 0; i < s->n_slots; i++)
                if (s->slots[i].g) gen_finish(s->slots[i].g, OWL_FINISH_ERROR, "scheduler: out of memory");
        }
        if (s->step_delay_ms > 0) {
            struct timespec ts = {s->step_delay_ms / 1000, (long)(s->step_delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->n_slots; i++)
            if (s->slots[i].g && (!over || over[i])) slot_release(s, &s->slots[i]);
    }
    pthread_mutex_unlock(&s->mu);
    free(over);
    return NULL;
}
