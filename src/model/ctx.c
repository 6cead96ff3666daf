/* Contexts: the KV cache, the scratch buffers of the forward pass (all
 * allocated once, sized for the largest micro-batch), and evaluation. */
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define OWL_MAX_UBATCH 512    /* tokens pushed through the matrices at once */
#define OWL_MAX_CTX (1 << 22) /* positions a context may hold */

static float *alloc_floats(uint64_t n, uint64_t m, owl_status *st) {
    uint64_t elems, bytes;
    if (*st) return NULL;
    if (!owl_mul_ok(n, m, &elems) || !owl_mul_ok(elems, sizeof(float), &bytes) || bytes > SIZE_MAX) {
        *st = owl_errorf(OWL_ERR_NOMEM, "context: a buffer of %llu x %llu floats is too large",
                         (unsigned long long)n, (unsigned long long)m);
        return NULL;
    }
    float *p = owl_alloc_aligned((size_t)(bytes ? bytes : 64));
    if (!p) *st = OWL_ERR_NOMEM;
    return p;
}

/* The KV cache and the attention scratch: anonymous mappings, so that only
 * the positions used ever take memory (a long training context costs
 * nothing until it fills). */
static float *map_floats(uint64_t n, uint64_t m, size_t *bytes_out, owl_status *st) {
    uint64_t elems, bytes;
    if (*st) return NULL;
    if (!owl_mul_ok(n, m, &elems) || !owl_mul_ok(elems, sizeof(float), &bytes) || bytes > SIZE_MAX / 2) {
        *st = owl_errorf(OWL_ERR_NOMEM, "context buffer of %llu x %llu floats is too large", (unsigned long long)n,
                         (unsigned long long)m);
        return NULL;
    }
    if (bytes == 0) bytes = 64;
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        *st = owl_errorf(OWL_ERR_NOMEM, "out of memory for a context buffer of %llu bytes", (unsigned long long)bytes);
        return NULL;
    }
    *bytes_out = (size_t)bytes;
    return p;
}

owl_status owl_fwd_buf_init(owl_fwd_buf *b, const owl_model *m, int rows) {
    const owl_hparams *hp = &m->hp;
    memset(b, 0, sizeof *b);
    if (rows < 1) return owl_errorf(OWL_ERR_ARG, "forward buffers for %d rows", rows);
    owl_status st = OWL_OK;
    const uint64_t ub = (uint64_t)rows;
    b->cap = rows;
    b->x = alloc_floats(ub, (uint64_t)hp->dim, &st);
    b->h = alloc_floats(ub, (uint64_t)hp->dim, &st);
    b->o = alloc_floats(ub, (uint64_t)hp->dim, &st);
    b->q = alloc_floats(ub, (uint64_t)hp->q_dim, &st);
    b->k = alloc_floats(ub, (uint64_t)hp->kv_dim, &st);
    b->v = alloc_floats(ub, (uint64_t)hp->kv_dim, &st);
    b->att = alloc_floats(ub, (uint64_t)hp->q_dim, &st);
    b->gate = alloc_floats(ub, (uint64_t)hp->ffn_dim, &st);
    b->up = alloc_floats(ub, (uint64_t)hp->ffn_dim, &st);
    b->rope_cs = alloc_floats(ub, (uint64_t)hp->n_rot, &st);
    if (hp->rope_base_swa > 0 && hp->n_swa > 0) b->rope_cs_swa = alloc_floats(ub, (uint64_t)hp->n_rot, &st);
    if (!st) {
        b->row_seg = owl_alloc_aligned(sizeof(int) * (size_t)rows);
        if (!b->row_seg) st = OWL_ERR_NOMEM;
    }
    if (st) owl_fwd_buf_free(b);
    return st;
}

void owl_fwd_buf_free(owl_fwd_buf *b) {
    free(b->x);
    free(b->h);
    free(b->o);
    free(b->q);
    free(b->k);
    free(b->v);
    free(b->att);
    free(b->gate);
    free(b->up);
    free(b->rope_cs);
    free(b->rope_cs_swa);
    free(b->row_seg);
    memset(b, 0, sizeof *b);
}

owl_status owl_ctx_new(owl_model *model, int n_ctx, owl_ctx **out) {
    *out = NULL;
    if (!model) return owl_errorf(OWL_ERR_ARG, "owl_ctx_new: no model");
    const owl_hparams *hp = &model->hp;
    if (n_ctx == 0) n_ctx = hp->n_ctx_train;
    if (n_ctx < 1) return owl_errorf(OWL_ERR_ARG, "owl_ctx_new: context size %d must be at least 1", n_ctx);
    if (n_ctx > OWL_MAX_CTX)
        return owl_errorf(OWL_ERR_RANGE, "owl_ctx_new: context size %d is above owl's limit of %d", n_ctx, OWL_MAX_CTX);
    owl_ctx *c = owl_calloc(1, sizeof *c);
    if (!c) return OWL_ERR_NOMEM;
    c->model = model;
    c->n_ctx = n_ctx;
    c->n_ub = n_ctx < OWL_MAX_UBATCH ? n_ctx : OWL_MAX_UBATCH;
    int nt = omp_get_num_procs();
    if (omp_get_max_threads() > nt) nt = omp_get_max_threads();
    if (owl_threads() > nt) nt = owl_threads();
    c->n_score_threads = nt;

    owl_status st = OWL_OK;
    uint64_t cache_rows;
    if (!owl_mul_ok((uint64_t)hp->n_layers, (uint64_t)n_ctx, &cache_rows)) cache_rows = UINT64_MAX;
    c->k_cache = map_floats(cache_rows, (uint64_t)hp->kv_dim, &c->cache_bytes, &st);
    c->v_cache = map_floats(cache_rows, (uint64_t)hp->kv_dim, &c->cache_bytes, &st);
    c->scores = map_floats((uint64_t)nt, (uint64_t)owl_model_attention_scratch(n_ctx, hp->head_dim),
                           &c->scores_bytes, &st);
    c->rope_inv = owl_alloc_aligned(sizeof(double) * (size_t)(hp->n_rot / 2 + 1));
    if (!c->rope_inv && !st) st = OWL_ERR_NOMEM;
    /* frequency divisors: rope_freqs, or longrope's short / long factors
     * (long ones for a context beyond the original one, as llama.cpp) */
    const float *div = model->rope_freqs;
    if (model->rope_long && n_ctx > hp->n_ctx_orig) div = model->rope_long;
    else if (model->rope_short) div = model->rope_short;
    for (int i = 0; !st && i < hp->n_rot / 2; i++)
        c->rope_inv[i] = pow((double)hp->rope_base, -2.0 * i / hp->n_rot) * (double)hp->rope_scale /
                         (div ? (double)div[i] : 1.0);
    if (!st && hp->rope_base_swa > 0 && hp->n_swa > 0) { /* the windowed layers' RoPE: own base, unscaled */
        c->rope_inv_swa = owl_alloc_aligned(sizeof(double) * (size_t)(hp->n_rot / 2 + 1));
        if (!c->rope_inv_swa && !st) st = OWL_ERR_NOMEM;
        for (int i = 0; !st && i < hp->n_rot / 2; i++)
            c->rope_inv_swa[i] = pow((double)hp->rope_base_swa, -2.0 * i / hp->n_rot);
    }
    if (!st) st = owl_fwd_buf_init(&c->buf, model, c->n_ub);
    c->logits_cap = (size_t)hp->n_vocab;
    c->logits = alloc_floats(1, (uint64_t)hp->n_vocab, &st);
    if (st) {
        owl_ctx_free(c);
        return owl_error_prefix(st, "context of %d positions", n_ctx);
    }
    *out = c;
    return OWL_OK;
}

void owl_ctx_free(owl_ctx *c) {
    if (!c) return;
    if (c->k_cache) munmap(c->k_cache, c->cache_bytes);
    if (c->v_cache) munmap(c->v_cache, c->cache_bytes);
    owl_fwd_buf_free(&c->buf);
    if (c->scores) munmap(c->scores, c->scores_bytes);
    free(c->rope_inv);
    free(c->rope_inv_swa);
    free(c->logits);
    free(c->lora_tmp);
    free(c);
}

int owl_ctx_size(const owl_ctx *c) { return c ? c->n_ctx : 0; }
int owl_ctx_pos(const owl_ctx *c) { return c ? c->pos : 0; }

void owl_ctx_truncate(owl_ctx *c, int pos) {
    if (!c) return;
    if (pos < 0) pos = 0;
    if (pos < c->pos) c->pos = pos;
}

owl_status owl_ctx_logits_reserve(owl_ctx *c, int rows) {
    size_t need = (size_t)c->model->hp.n_vocab * (size_t)rows;
    if (need <= c->logits_cap) return OWL_OK;
    float *nl = owl_alloc_aligned(need * sizeof(float));
    if (!nl) return owl_errorf(OWL_ERR_NOMEM, "logits of %d tokens", rows);
    free(c->logits);
    c->logits = nl;
    c->logits_cap = need;
    return OWL_OK;
}

owl_status owl_ctx_eval(owl_ctx *c, const int32_t *tokens, int n, bool all_logits) {
    if (!c) return owl_errorf(OWL_ERR_ARG, "owl_ctx_eval: no context");
    if (n <= 0 || !tokens) return owl_errorf(OWL_ERR_ARG, "owl_ctx_eval: no tokens (n = %d)", n);
    if (n > c->n_ctx - c->pos)
        return owl_errorf(OWL_ERR_RANGE, "prompt of %d tokens does not fit in the context of %d (%d already used)", n,
                          c->n_ctx, c->pos);
    const owl_model *m = c->model;
    const int vocab = m->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return owl_errorf(OWL_ERR_ARG, "token %d at index %d is outside the vocabulary of %d", (int)tokens[i], i,
                              vocab);
    owl_status rs = owl_ctx_logits_reserve(c, all_logits ? n : 1);
    if (rs) return rs;
    c->n_logits = 0;
    c->last_n = 0;
    for (int t0 = 0; t0 < n; t0 += c->n_ub) {
        int nb = n - t0 < c->n_ub ? n - t0 : c->n_ub;
        const bool last = t0 + nb == n;
        owl_status st = owl_model_forward(c, tokens + t0, nb, !all_logits);
        if (st) return st;
        if (all_logits) {
            owl_matmul(&m->output, c->buf.h, c->logits + (size_t)t0 * (size_t)vocab, nb);
            st = owl_lora_add(c, -1, OWL_PROJ_Q, c->buf.h, c->logits + (size_t)t0 * (size_t)vocab, nb);
        } else if (last) {
            owl_matmul(&m->output, c->buf.h, c->logits, 1);
            st = owl_lora_add(c, -1, OWL_PROJ_Q, c->buf.h, c->logits, 1);
        }
        if (st) return st;
    }
    for (int r = 0; m->hp.final_softcap > 0 && r < (all_logits ? n : 1); r++) /* Gemma 2 */
        owl_softcap(c->logits + (size_t)r * (size_t)vocab, vocab, m->hp.final_softcap);
    c->last_n = n;
    c->last_all = all_logits;
    c->n_logits = all_logits ? n : 1;
    return OWL_OK;
}

const float *owl_ctx_logits(const owl_ctx *c, int i) {
    if (!c || c->n_logits == 0) return NULL;
    if (i == -1) i = c->last_n - 1;
    if (i < 0 || i >= c->last_n) return NULL;
    size_t vocab = (size_t)c->model->hp.n_vocab;
    if (c->last_all) return c->logits + (size_t)i * vocab;
    return i == c->last_n - 1 ? c->logits : NULL;
}
