/* The forward pass of the generic decoder block over a list of segments,
 * each the next tokens of one sequence (its own context: KV cache, position,
 * adapters): every matrix sees the rows of all segments at once (owl_matmul
 * with n_tok = all rows), so the weights are read once per step however many
 * sequences share it. RoPE takes each row's own position; attention runs per
 * segment against its own cache. One segment (owl_model_forward, every
 * owl_ctx_eval) writes K and V straight into its cache, whose rows for
 * consecutive positions are contiguous; several go through b->k / b->v. */
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

/* Element-wise loops over rows go to the threads only with this many floats
 * of work: a fork / join costs more than a few rows (a batch of decode
 * tokens of several sequences), all the more on a busy machine. */
#define PAR_FLOATS (1 << 16)

static void norm_rows(float *out, const float *x, const float *w, int n, int dim, float eps, int nt) {
#pragma omp parallel for num_threads(nt) if ((size_t)n * (size_t)dim >= PAR_FLOATS)
    for (int t = 0; t < n; t++)
        owl_rmsnorm(out + (size_t)t * (size_t)dim, x + (size_t)t * (size_t)dim, w, dim, eps);
}

/* cos and sin of every rotated pair at positions pos0..pos0+n-1 (same
 * angles as owl_rope), once per forward pass for all layers and heads. */
static void rope_table(float *rope_cs, const double *rope_inv, const owl_model *m, int pos0, int n) {
    const int half = m->hp.n_rot / 2;
    const double af = m->hp.rope_attn_factor; /* longrope's attention factor (1 otherwise) */
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

/* Moves rows [from, from + n) of a buffer of rows of len floats to row to
 * (to <= from). */
static void move_rows(float *buf, int to, int from, int n, int len) {
    if (to != from) memmove(buf + (size_t)to * (size_t)len, buf + (size_t)from * (size_t)len, sizeof(float) * (size_t)n * (size_t)len);
}

/* The adapters of every segment that has some: y rows += deltas of x rows,
 * segment i's rows starting at its row (all rows) or out_row (query rows). */
static owl_status lora_segs(owl_seg *segs, int n_seg, int l, owl_proj p, const float *x, int in_len, float *y,
                            int out_len, bool query_rows) {
    for (int i = 0; i < n_seg; i++) {
        owl_seg *sg = &segs[i];
        if (!sg->ctx->lora.n) continue;
        const int r0 = query_rows ? sg->out_row : sg->row, n = query_rows ? sg->n_out : sg->n;
        owl_status st = owl_lora_add(sg->ctx, l, p, x + (size_t)r0 * (size_t)in_len, y + (size_t)r0 * (size_t)out_len, n);
        if (st) return st;
    }
    return OWL_OK;
}

owl_status owl_model_forward_segs(owl_fwd_buf *b, owl_seg *segs, int n_seg) {
    if (n_seg < 1 || n_seg > OWL_BATCH_MAX_SEQ)
        return owl_errorf(OWL_ERR_ARG, "forward: %d sequences (1..%d)", n_seg, OWL_BATCH_MAX_SEQ);
    const owl_model *m = segs[0].ctx->model;
    const owl_hparams *hp = &m->hp;
    const int dim = hp->dim, hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, ffn = hp->ffn_dim;
    const int nt = owl_threads();
    const bool neox = m->rope_neox, single = n_seg == 1;
    owl_att_job jobs[OWL_BATCH_MAX_SEQ];
    owl_status st;

    int N = 0;
    for (int i = 0; i < n_seg; i++) {
        owl_seg *sg = &segs[i];
        if (sg->n < 1 || sg->ctx->model != m || sg->ctx->pos + sg->n > sg->ctx->n_ctx || N + sg->n > b->cap)
            return owl_errorf(OWL_ERR_ARG, "forward: segment %d of %d tokens does not fit (position %d of %d, %d rows of %d)",
                              i, sg->n, sg->ctx->pos, sg->ctx->n_ctx, N, b->cap);
        sg->row = sg->out_row = N;
        sg->n_out = sg->n;
        for (int t = 0; t < sg->n; t++) b->row_seg[N + t] = i;
        N += sg->n;
    }

    /* embeddings: convert each token's row from its dtype */
    for (int i = 0; i < n_seg; i++) {
        const owl_seg *sg = &segs[i];
        for (int t = 0; t < sg->n; t++) {
            const int32_t tok = sg->tokens[t];
            const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)tok * m->tok_embd.row_bytes;
            st = owl_to_f32(m->tok_embd.dtype, row, b->x + (size_t)(sg->row + t) * (size_t)dim, dim);
            if (st) return owl_error_prefix(st, "embedding of token %d", (int)tok);
        }
        if (sg->ctx->lora.n && (st = owl_lora_add_embd(sg->ctx, sg->tokens, b->x + (size_t)sg->row * (size_t)dim, sg->n)))
            return st;
        rope_table(b->rope_cs + (size_t)sg->row * (size_t)hp->n_rot, sg->ctx->rope_inv, m, sg->ctx->pos, sg->n);
        if (b->rope_cs_swa && sg->ctx->rope_inv_swa)
            rope_table(b->rope_cs_swa + (size_t)sg->row * (size_t)hp->n_rot, sg->ctx->rope_inv_swa, m, sg->ctx->pos,
                       sg->n);
    }
    if (m->arch->embd_scale) { /* Gemma: times sqrt(dim), rounded to float as Hugging Face does */
        const float s = sqrtf((float)dim);
        for (size_t i = 0; i < (size_t)N * (size_t)dim; i++) b->x[i] *= s;
    }
    const owl_qk_norm_kind qkn = m->arch->qk_norm;

    int NQ = N; /* query rows of the layer */
    for (int l = 0; l < hp->n_layers; l++) {
        const owl_layer *L = &m->layers[l];
        /* The last layer: segments whose only wanted output is their last
         * token get K and V of every token into the cache, but the query,
         * attention and feed-forward run for their last token alone; the
         * query rows of all segments are packed to the front. */
        const bool last = l == hp->n_layers - 1;
        bool packed = false;
        if (last) {
            NQ = 0;
            for (int i = 0; i < n_seg; i++) {
                owl_seg *sg = &segs[i];
                sg->n_out = sg->last_only ? 1 : sg->n;
                sg->out_row = NQ;
                if (sg->out_row != sg->row + sg->n - sg->n_out) packed = true;
                NQ += sg->n_out;
            }
        }
        float *kout = single ? segs[0].ctx->k_cache + ((size_t)l * (size_t)segs[0].ctx->n_ctx + (size_t)segs[0].ctx->pos) * (size_t)kvd : b->k;
        float *vout = single ? segs[0].ctx->v_cache + ((size_t)l * (size_t)segs[0].ctx->n_ctx + (size_t)segs[0].ctx->pos) * (size_t)kvd : b->v;

        /* attention (input: the pre-normed residual, or the residual itself) */
        float *in = b->x;
        if (L->attn_norm) {
            norm_rows(b->h, b->x, L->attn_norm, N, dim, hp->eps, nt);
            in = b->h;
        }
        owl_matmul(&L->wk, in, kout, N);
        owl_matmul(&L->wv, in, vout, N);
        if ((st = lora_segs(segs, n_seg, l, OWL_PROJ_K, in, dim, kout, kvd, false)) ||
            (st = lora_segs(segs, n_seg, l, OWL_PROJ_V, in, dim, vout, kvd, false)))
            return st;
        if (packed) /* the query rows of the input and of the residual to the front */
            for (int i = 0; i < n_seg; i++) {
                const owl_seg *sg = &segs[i];
                move_rows(in, sg->out_row, sg->row + sg->n - sg->n_out, sg->n_out, dim);
                if (in != b->x) move_rows(b->x, sg->out_row, sg->row + sg->n - sg->n_out, sg->n_out, dim);
            }
        owl_matmul(&L->wq, in, b->q, NQ);
        if ((st = lora_segs(segs, n_seg, l, OWL_PROJ_Q, in, dim, b->q, qd, true))) return st;
        add_bias(b->q, L->bq, NQ, qd);
        add_bias(kout, L->bk, N, kvd);
        add_bias(vout, L->bv, N, kvd);
        const float *rcs = L->swa && b->rope_cs_swa ? b->rope_cs_swa : b->rope_cs;
#pragma omp parallel for num_threads(nt) if ((size_t)N * (size_t)(qd + kvd) >= PAR_FLOATS)
        for (int r = 0; r < N; r++) {
            const owl_seg *sg = &segs[b->row_seg[r]];
            const int t = r - sg->row, tq = t - (sg->n - sg->n_out); /* tq >= 0: the row has a query */
            const float *cs = rcs + (size_t)r * (size_t)hp->n_rot;
            float *qt = tq >= 0 ? b->q + (size_t)(sg->out_row + tq) * (size_t)qd : NULL;
            float *kt = kout + (size_t)r * (size_t)kvd;
            if (qkn == OWL_QK_NORM_HEAD) {
                if (qt) norm_vecs(qt, hp->n_heads, hd, L->q_norm, hp->eps);
                norm_vecs(kt, hp->n_kv_heads, hd, L->k_norm, hp->eps);
            } else if (qkn == OWL_QK_NORM_FULL) {
                if (qt) norm_vecs(qt, 1, qd, L->q_norm, hp->eps);
                norm_vecs(kt, 1, kvd, L->k_norm, hp->eps);
            }
            if (qt) rope_apply(qt, hp->n_heads, hd, hp->n_rot, cs, neox);
            rope_apply(kt, hp->n_kv_heads, hd, hp->n_rot, cs, neox);
        }
        for (int i = 0; i < n_seg; i++) {
            const owl_seg *sg = &segs[i];
            owl_ctx *c = sg->ctx;
            if (!single) { /* keys and values into the segment's own cache */
                const size_t at = ((size_t)l * (size_t)c->n_ctx + (size_t)c->pos) * (size_t)kvd;
                memcpy(c->k_cache + at, b->k + (size_t)sg->row * (size_t)kvd, sizeof(float) * (size_t)sg->n * (size_t)kvd);
                memcpy(c->v_cache + at, b->v + (size_t)sg->row * (size_t)kvd, sizeof(float) * (size_t)sg->n * (size_t)kvd);
            }
            jobs[i] = (owl_att_job){c, c->pos + sg->n - sg->n_out, sg->n_out, b->q + (size_t)sg->out_row * (size_t)qd,
                                    b->att + (size_t)sg->out_row * (size_t)qd};
        }
        owl_model_attention(jobs, n_seg, l);
        owl_matmul(&L->wo, b->att, b->o, NQ);
        if ((st = lora_segs(segs, n_seg, l, OWL_PROJ_O, b->att, qd, b->o, dim, true))) return st;
        if (L->post_attn_norm) norm_rows(b->o, b->o, L->post_attn_norm, NQ, dim, hp->eps, nt);
        add_rows(b->x, b->o, (size_t)NQ * (size_t)dim);

        /* feed-forward */
        in = b->x;
        if (L->ffn_norm) {
            norm_rows(b->h, b->x, L->ffn_norm, NQ, dim, hp->eps, nt);
            in = b->h;
        }
        owl_matmul(&L->w_gate, in, b->gate, NQ);
        owl_matmul(&L->w_up, in, b->up, NQ);
        if ((st = lora_segs(segs, n_seg, l, OWL_PROJ_GATE, in, dim, b->gate, ffn, true)) ||
            (st = lora_segs(segs, n_seg, l, OWL_PROJ_UP, in, dim, b->up, ffn, true)))
            return st;
        const bool geglu = m->arch->act == OWL_ACT_GEGLU;
#pragma omp parallel for num_threads(nt) if ((size_t)NQ * (size_t)ffn >= PAR_FLOATS)
        for (int t = 0; t < NQ; t++) {
            size_t off = (size_t)t * (size_t)ffn;
            if (geglu)
                owl_geglu(b->gate + off, b->gate + off, b->up + off, ffn);
            else
                owl_swiglu(b->gate + off, b->gate + off, b->up + off, ffn);
        }
        owl_matmul(&L->w_down, b->gate, b->o, NQ);
        if ((st = lora_segs(segs, n_seg, l, OWL_PROJ_DOWN, b->gate, ffn, b->o, dim, true))) return st;
        if (L->post_ffw_norm) norm_rows(b->o, b->o, L->post_ffw_norm, NQ, dim, hp->eps, nt);
        add_rows(b->x, b->o, (size_t)NQ * (size_t)dim);
    }
    norm_rows(b->h, b->x, m->out_norm, NQ, dim, hp->eps, nt);
    for (int i = 0; i < n_seg; i++) segs[i].ctx->pos += segs[i].n;
    return OWL_OK;
}

owl_status owl_model_forward(owl_ctx *c, const int32_t *tokens, int n, bool last_only) {
    owl_seg sg = {.ctx = c, .tokens = tokens, .n = n, .last_only = last_only};
    return owl_model_forward_segs(&c->buf, &sg, 1);
}
