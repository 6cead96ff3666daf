/* Low-rank deltas at run time: y += s * B (A x) after a projection, for
 * every adapter a context applies, without touching the base weights (which
 * may be of any dtype, quantized too). A and B go through owl_matmul, so
 * adapters may be stored in any dtype as well. Rows are taken in chunks so
 * that the scratch stays small even for the output head over a long prompt. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>

#define LORA_SCRATCH_FLOATS ((size_t)1 << 20) /* 4 MiB: rank + out floats per row chunk */

static const char *const PROJ_NAME[OWL_PROJ_LAYER_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

/* in and out sizes of projection p (-1 for the head via l < 0). */
static void proj_dims(const owl_hparams *hp, int l, owl_proj p, int64_t *in, int64_t *out) {
    if (l < 0) {
        *in = hp->dim;
        *out = hp->n_vocab;
        return;
    }
    switch (p) {
    case OWL_PROJ_Q: *in = hp->dim; *out = hp->q_dim; break;
    case OWL_PROJ_K:
    case OWL_PROJ_V: *in = hp->dim; *out = hp->kv_dim; break;
    case OWL_PROJ_O: *in = hp->q_dim; *out = hp->dim; break;
    case OWL_PROJ_GATE:
    case OWL_PROJ_UP: *in = hp->dim; *out = hp->ffn_dim; break;
    default: *in = hp->ffn_dim; *out = hp->dim; break;
    }
}

static owl_status check_pair(const owl_lora_pair *pr, int64_t in, int64_t out, int adapter, const char *what, int l) {
    if (!pr->a.data && !pr->b.data) return OWL_OK;
    const char *lw = l >= 0 ? "layer " : "";
    char ls[16] = "";
    if (l >= 0) snprintf(ls, sizeof ls, "%d ", l);
    if (!pr->a.data || !pr->b.data)
        return owl_errorf(OWL_ERR_FORMAT, "adapter %d: %s%s%s has lora_%s but no lora_%s", adapter, lw, ls, what,
                          pr->a.data ? "a" : "b", pr->a.data ? "b" : "a");
    if (pr->a.rows < 1 || pr->a.cols != in || pr->b.rows != out || pr->b.cols != pr->a.rows)
        return owl_errorf(OWL_ERR_FORMAT,
                          "adapter %d: %s%s%s: lora_a is %lld x %lld and lora_b %lld x %lld, the model needs "
                          "r x %lld and %lld x r",
                          adapter, lw, ls, what, (long long)pr->a.rows, (long long)pr->a.cols, (long long)pr->b.rows,
                          (long long)pr->b.cols, (long long)in, (long long)out);
    if (!owl_matmul_supported(pr->a.dtype) || !owl_matmul_supported(pr->b.dtype))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "adapter %d: %s%s%s: weights of type %s / %s cannot be multiplied",
                          adapter, lw, ls, what, owl_dtype_name(pr->a.dtype), owl_dtype_name(pr->b.dtype));
    return OWL_OK;
}

owl_status owl_ctx_set_lora(owl_ctx *c, const owl_lora_set *set) {
    if (!c) return owl_errorf(OWL_ERR_ARG, "owl_ctx_set_lora: no context");
    owl_lora_set none = {0};
    if (!set) set = &none;
    if (set->n < 0 || set->n > OWL_LORA_MAX)
        return owl_errorf(OWL_ERR_RANGE, "%d adapters at once; owl applies at most %d", set->n, OWL_LORA_MAX);
    const owl_hparams *hp = &c->model->hp;
    for (int i = 0; i < set->n; i++) {
        const owl_lora_weights *w = set->w[i];
        if (!w) return owl_errorf(OWL_ERR_ARG, "adapter %d: no weights", i);
        if (!(set->scale[i] == set->scale[i]) || !(w->scale == w->scale))
            return owl_errorf(OWL_ERR_ARG, "adapter %d: scale is NaN", i);
        int64_t in, out;
        for (int l = 0; w->layer && l < hp->n_layers; l++)
            for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
                proj_dims(hp, l, (owl_proj)p, &in, &out);
                owl_status st = check_pair(&w->layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)p], in, out, i,
                                           PROJ_NAME[p], l);
                if (st) return st;
            }
        proj_dims(hp, -1, OWL_PROJ_Q, &in, &out);
        owl_status st = check_pair(&w->output, in, out, i, "output", -1);
        if (st) return st;
        const owl_lora_pair *e = &w->embd;
        if (e->a.data || e->b.data) {
            if (!e->a.data || !e->b.data)
                return owl_errorf(OWL_ERR_FORMAT, "adapter %d: token_embd has lora_%s but no lora_%s", i,
                                  e->a.data ? "a" : "b", e->a.data ? "b" : "a");
            if (e->a.rows != hp->n_vocab || e->b.rows != hp->dim || e->b.cols != e->a.cols || e->a.cols < 1)
                return owl_errorf(OWL_ERR_FORMAT,
                                  "adapter %d: token_embd: lora_a is %lld x %lld (tokens x r) and lora_b %lld x %lld, "
                                  "the model needs %d x r and %d x r",
                                  i, (long long)e->a.rows, (long long)e->a.cols, (long long)e->b.rows,
                                  (long long)e->b.cols, hp->n_vocab, hp->dim);
        }
    }
    c->lora = *set;
    return OWL_OK;
}

static owl_status scratch(owl_ctx *c, size_t floats) {
    if (floats <= c->lora_tmp_cap) return OWL_OK;
    float *p = owl_alloc_aligned(floats * sizeof(float));
    if (!p) return owl_errorf(OWL_ERR_NOMEM, "adapter scratch of %zu floats", floats);
    free(c->lora_tmp);
    c->lora_tmp = p;
    c->lora_tmp_cap = floats;
    return OWL_OK;
}

/* y (n x b.rows) += s * B (A x) for x of n rows of a.cols. */
static owl_status add_pair(owl_ctx *c, const owl_lora_pair *pr, float s, const float *x, float *y, int n) {
    const size_t rank = (size_t)pr->a.rows, in = (size_t)pr->a.cols, out = (size_t)pr->b.rows;
    size_t chunk = LORA_SCRATCH_FLOATS / (rank + out);
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)n) chunk = (size_t)n;
    owl_status st = scratch(c, chunk * (rank + out));
    if (st) return st;
    float *t = c->lora_tmp, *d = c->lora_tmp + chunk * rank;
    for (size_t r0 = 0; r0 < (size_t)n; r0 += chunk) {
        const int nr = (int)((size_t)n - r0 < chunk ? (size_t)n - r0 : chunk);
        owl_matmul(&pr->a, x + r0 * in, t, nr);
        for (size_t i = 0; i < (size_t)nr * rank; i++) t[i] *= s;
        owl_matmul(&pr->b, t, d, nr);
        float *yr = y + r0 * out;
        for (size_t i = 0; i < (size_t)nr * out; i++) yr[i] += d[i];
    }
    return OWL_OK;
}

owl_status owl_lora_add(owl_ctx *c, int l, owl_proj p, const float *x, float *y, int n) {
    for (int i = 0; i < c->lora.n && n > 0; i++) {
        const owl_lora_weights *w = c->lora.w[i];
        const owl_lora_pair *pr = l < 0 ? &w->output : w->layer ? &w->layer[(size_t)l * OWL_PROJ_LAYER_COUNT + p] : NULL;
        const float s = c->lora.scale[i] * w->scale;
        if (!pr || !pr->a.data || s == 0.0f) continue;
        owl_status st = add_pair(c, pr, s, x, y, n);
        if (st) return st;
    }
    return OWL_OK;
}

owl_status owl_lora_add_embd(owl_ctx *c, const int32_t *tokens, float *x, int n) {
    for (int i = 0; i < c->lora.n && n > 0; i++) {
        const owl_lora_weights *w = c->lora.w[i];
        const owl_lora_pair *pr = &w->embd;
        const float s = c->lora.scale[i] * w->scale;
        if (!pr->a.data || s == 0.0f) continue;
        const size_t rank = (size_t)pr->a.cols, out = (size_t)pr->b.rows;
        owl_status st = scratch(c, (size_t)n * (rank + out));
        if (st) return st;
        float *t = c->lora_tmp, *d = c->lora_tmp + (size_t)n * rank;
        for (int k = 0; k < n; k++) {
            const uint8_t *row = (const uint8_t *)pr->a.data + (size_t)tokens[k] * pr->a.row_bytes;
            st = owl_to_f32(pr->a.dtype, row, t + (size_t)k * rank, (int64_t)rank);
            if (st) return owl_error_prefix(st, "adapter %d: embedding delta of token %d", i, (int)tokens[k]);
            for (size_t j = 0; j < rank; j++) t[(size_t)k * rank + j] *= s;
        }
        owl_matmul(&pr->b, t, d, n);
        for (size_t j = 0; j < (size_t)n * out; j++) x[j] += d[j];
    }
    return OWL_OK;
}
