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
static void rope_table(float *rope_cs, const double *rope_inv, const owl_ctx *c, int pos0, int n) {
    const int half = c->model->hp.n_rot / 2;
    const double af = c->model->hp.rope_attn_factor; /* longrope's attention factor (1 otherwise) */
    for (int t = 0; t < n; t++) {
        float *cs = rope_cs + (size_t)t * (size_t)half * 2;
        for (int i = 0; i < half; i++) {
            double theta = (double)(pos0 + t) * rope_inv[i];
            cs[2 * i] = (float)(cos(theta) * af);
            cs[2 * i + 1] = (float)(sin(theta) * af);
        }
    }
}

/* RMSNorm of each of n_vec vectors of len at x (in place) with weights w. */
static void norm_vecs(float *x, int n_vec, int len, const float *w, float eps) {
    for (int v = 0; v < n_vec; v++) owl_rmsnorm(x + (size_t)v * (size_t)len, x + (size_t)v * (size_t)len, w, len, eps);
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
    owl_status st = owl_lora_add_embd(c, tokens, c->x, n);
    if (st) return st;
    if (m->arch->embd_scale) { /* Gemma: times sqrt(dim), rounded to float as Hugging Face does */
        const float s = sqrtf((float)dim);
        for (size_t i = 0; i < (size_t)n * (size_t)dim; i++) c->x[i] *= s;
    }
    const owl_qk_norm_kind qkn = m->arch->qk_norm;

    rope_table(c->rope_cs, c->rope_inv, c, pos0, n);
    if (c->rope_cs_swa) rope_table(c->rope_cs_swa, c->rope_inv_swa, c, pos0, n);

    for (int l = 0; l < hp->n_layers; l++) {
        const owl_layer *L = &m->layers[l];
        float *kc = c->k_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)kvd;
        float *vc = c->v_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos0) * (size_t)kvd;
        /* The last layer of a batch whose only wanted output is its last
         * token: K and V of every token still go to the cache, but the
         * query, attention and feed-forward run for the last token alone. */
        const int t0 = (last_only && l == hp->n_layers - 1) ? n - 1 : 0;
        const int nq = n - t0;

        /* attention (input: the pre-normed residual, or the residual itself) */
        const float *in = c->x;
        if (L->attn_norm) {
            norm_rows(c->h, c->x, L->attn_norm, n, dim, hp->eps, nt);
            in = c->h;
        }
        owl_matmul(&L->wq, in + (size_t)t0 * (size_t)dim, c->q, nq);
        owl_matmul(&L->wk, in, kc, n);
        owl_matmul(&L->wv, in, vc, n);
        if (c->lora.n) {
            if ((st = owl_lora_add(c, l, OWL_PROJ_Q, in + (size_t)t0 * (size_t)dim, c->q, nq)) ||
                (st = owl_lora_add(c, l, OWL_PROJ_K, in, kc, n)) || (st = owl_lora_add(c, l, OWL_PROJ_V, in, vc, n)))
                return st;
        }
        add_bias(c->q, L->bq, nq, qd);
        add_bias(kc, L->bk, n, kvd);
        add_bias(vc, L->bv, n, kvd);
        const float *rcs = L->swa && c->rope_cs_swa ? c->rope_cs_swa : c->rope_cs;
#pragma omp parallel for num_threads(nt) if (n >= 8)
        for (int t = 0; t < n; t++) {
            const float *cs = rcs + (size_t)t * (size_t)hp->n_rot;
            float *qt = t >= t0 ? c->q + (size_t)(t - t0) * (size_t)qd : NULL, *kt = kc + (size_t)t * (size_t)kvd;
            if (qkn == OWL_QK_NORM_HEAD) {
                if (t >= t0) norm_vecs(qt, hp->n_heads, hd, L->q_norm, hp->eps);
                norm_vecs(kt, hp->n_kv_heads, hd, L->k_norm, hp->eps);
            } else if (qkn == OWL_QK_NORM_FULL) {
                if (t >= t0) norm_vecs(qt, 1, qd, L->q_norm, hp->eps);
                norm_vecs(kt, 1, kvd, L->k_norm, hp->eps);
            }
            if (t >= t0) rope_apply(qt, hp->n_heads, hd, hp->n_rot, cs, neox);
            rope_apply(kt, hp->n_kv_heads, hd, hp->n_rot, cs, neox);
        }
        owl_model_attention(c, l, pos0 + t0, nq);
        if (t0) memmove(c->x, c->x + (size_t)t0 * (size_t)dim, sizeof(float) * (size_t)dim);
        owl_matmul(&L->wo, c->att, c->o, nq);
        if (c->lora.n && (st = owl_lora_add(c, l, OWL_PROJ_O, c->att, c->o, nq))) return st;
        if (L->post_attn_norm) norm_rows(c->o, c->o, L->post_attn_norm, nq, dim, hp->eps, nt);
        add_rows(c->x, c->o, (size_t)nq * (size_t)dim);

        /* feed-forward */
        in = c->x;
        if (L->ffn_norm) {
            norm_rows(c->h, c->x, L->ffn_norm, nq, dim, hp->eps, nt);
            in = c->h;
        }
        owl_matmul(&L->w_gate, in, c->gate, nq);
        owl_matmul(&L->w_up, in, c->up, nq);
        if (c->lora.n && ((st = owl_lora_add(c, l, OWL_PROJ_GATE, in, c->gate, nq)) ||
                          (st = owl_lora_add(c, l, OWL_PROJ_UP, in, c->up, nq))))
            return st;
        const bool geglu = m->arch->act == OWL_ACT_GEGLU;
#pragma omp parallel for num_threads(nt) if (nq >= 8)
        for (int t = 0; t < nq; t++) {
            size_t off = (size_t)t * (size_t)ffn;
            if (geglu)
                owl_geglu(c->gate + off, c->gate + off, c->up + off, ffn);
            else
                owl_swiglu(c->gate + off, c->gate + off, c->up + off, ffn);
        }
        owl_matmul(&L->w_down, c->gate, c->o, nq);
        if (c->lora.n && (st = owl_lora_add(c, l, OWL_PROJ_DOWN, c->gate, c->o, nq))) return st;
        if (L->post_ffw_norm) norm_rows(c->o, c->o, L->post_ffw_norm, nq, dim, hp->eps, nt);
        add_rows(c->x, c->o, (size_t)nq * (size_t)dim);
        n_out = nq;
    }
    norm_rows(c->h, c->x, m->out_norm, n_out, dim, hp->eps, nt);
    c->pos = pos0 + n;
    return OWL_OK;
}
