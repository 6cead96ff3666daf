/* The forward pass of the generic decoder block, batched: every matrix sees
 * all n tokens of a micro-batch at once (owl_matmul with n_tok = n). K and V
 * are written straight into the KV cache, whose rows for consecutive
 * positions are contiguous. */
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Adds bias b (len) to each of n rows of y (row stride len). */
static void add_bias(float *y, const float *b, int n, int len) {
    if (!b) return;
    for (int t = 0; t < n; t++) {
        float *r = y + (size_t)t * (size_t)len;
#pragma omp simd
        for (int i = 0; i < len; i++) r[i] += b[i];
    }
}

/* x += o for n rows of dim. */
static void add_rows(float *x, const float *o, size_t count) {
#pragma omp simd
    for (size_t i = 0; i < count; i++) x[i] += o[i];
}

static void norm_rows(float *out, const float *x, const float *w, int n, int dim, float eps, int nt) {
#pragma omp parallel for num_threads(nt) if (n >= 8)
    for (int t = 0; t < n; t++)
        owl_rmsnorm(out + (size_t)t * (size_t)dim, x + (size_t)t * (size_t)dim, w, dim, eps);
}

/* cos and sin of every rotated pair at each token's position, once per
 * micro-batch for all layers and heads (same angles as owl_rope). */
static void rope_table(owl_ctx *c, int pos0, int n) {
    const int half = c->model->hp.n_rot / 2;
    for (int t = 0; t < n; t++) {
        float *cs = c->rope_cs + (size_t)t * (size_t)half * 2;
        for (int i = 0; i < half; i++) {
            double theta = (double)(pos0 + t) * c->rope_inv[i];
            cs[2 * i] = (float)cos(theta);
            cs[2 * i + 1] = (float)sin(theta);
        }
    }
}

/* Rotates n_vec head vectors of head_dim at x with one token's table:
 * pairs (2i, 2i+1), or (i, i + n_rot/2) when neox. */
static void rope_apply(float *x, int n_vec, int head_dim, int n_rot, const float *cs, bool neox) {
    const int half = n_rot / 2;
    for (int v = 0; v < n_vec; v++, x += head_dim) {
        if (neox) {
            for (int i = 0; i < half; i++) {
                float x0 = x[i], x1 = x[i + half], co = cs[2 * i], si = cs[2 * i + 1];
                x[i] = x0 * co - x1 * si;
                x[i + half] = x0 * si + x1 * co;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float x0 = x[2 * i], x1 = x[2 * i + 1], co = cs[2 * i], si = cs[2 * i + 1];
                x[2 * i] = x0 * co - x1 * si;
                x[2 * i + 1] = x0 * si + x1 * co;
            }
        }
    }
}

owl_status owl_model_forward(owl_ctx *c, const int32_t *tokens, int n, bool last_only) {
    const owl_model *m = c->model;
    const owl_hparams *hp = &m->hp;
    const int dim = hp->dim, hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, ffn = hp->ffn_dim;
    const int pos0 = c->pos;
    const int nt = owl_threads();
    const bool neox = m->rope_neox;
    int n_out = n;

    /* embeddings: convert each token's row from its dtype */
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes;
        owl_status st = owl_to_f32(m->tok_embd.dtype, row, c->x + (size_t)t * (size_t)dim, dim);
        if (st) return owl_error_prefix(st, "embedding of token %d", (int)tokens[t]);
    }

    rope_table(c, pos0, n);

    for (int l = 0; l < hp->n_layers; l++) {
        const owl_layer *L = &m->layers[l];
        float *kc = c->k_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)kvd;
        float *vc = c->v_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)kvd;
        /* The last layer of a batch whose only wanted output is its last
         * token: K and V of every token still go to the cache, but the
         * query, attention and feed-forward run for the last token alone. */
        const int t0 = (last_only && l == hp->n_layers - 1) ? n - 1 : 0;
        const int nq = n - t0;

        /* attention */
        norm_rows(c->h, c->x, L->attn_norm, n, dim, hp->eps, nt);
        owl_matmul(&L->wq, c->h + (size_t)t0 * (size_t)dim, c->q, nq);
        owl_matmul(&L->wk, c->h, kc, n);
        owl_matmul(&L->wv, c->h, vc, n);
        add_bias(c->q, L->bq, nq, qd);
        add_bias(kc, L->bk, n, kvd);
        add_bias(vc, L->bv, n, kvd);
#pragma omp parallel for num_threads(nt) if (n >= 8)
        for (int t = 0; t < n; t++) {
            const float *cs = c->rope_cs + (size_t)t * (size_t)hp->n_rot;
            if (t >= t0) rope_apply(c->q + (size_t)(t - t0) * (size_t)qd, hp->n_heads, hd, hp->n_rot, cs, neox);
            rope_apply(kc + (size_t)t * (size_t)kvd, hp->n_kv_heads, hd, hp->n_rot, cs, neox);
        }
        owl_model_attention(c, l, pos0 + t0, nq);
        if (t0) memmove(c->x, c->x + (size_t)t0 * (size_t)dim, sizeof(float) * (size_t)dim);
        owl_matmul(&L->wo, c->att, c->o, nq);
        add_rows(c->x, c->o, (size_t)nq * (size_t)dim);

        /* feed-forward */
        norm_rows(c->h, c->x, L->ffn_norm, nq, dim, hp->eps, nt);
        owl_matmul(&L->w_gate, c->h, c->gate, nq);
        owl_matmul(&L->w_up, c->h, c->up, nq);
#pragma omp parallel for num_threads(nt) if (nq >= 8)
        for (int t = 0; t < nq; t++) {
            size_t off = (size_t)t * (size_t)ffn;
            owl_swiglu(c->gate + off, c->gate + off, c->up + off, ffn);
        }
        owl_matmul(&L->w_down, c->gate, c->o, nq);
        add_rows(c->x, c->o, (size_t)nq * (size_t)dim);
        n_out = nq;
    }
    norm_rows(c->h, c->x, m->out_norm, n_out, dim, hp->eps, nt);
    c->pos = pos0 + n;
    return OWL_OK;
}
