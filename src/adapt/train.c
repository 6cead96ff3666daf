/* Loss and LoRA gradients of one token sequence.
 *
 * Forward: the embeddings, then every decoder block (train_ops.c computes a
 * block and keeps its internals in the trainer's one set of activation
 * buffers), keeping only each block's input (checkpointing); then the final
 * norm, the head on the rows that have a target, and the cross-entropy.
 * Backward: the gradient of the loss flows from the head back through the
 * final norm; for each block, last first, the block is computed again from
 * its saved input (the last one's internals are still there) and its
 * backward pass adds the A / B gradients and leaves the gradient of its
 * input. Memory: (n_layers + 1) x n x dim floats of inputs plus one block's
 * activations plus the logits of the target rows. */
#include "adapt/train_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n, owl_status *st) {
    if (*st) return NULL;
    float *p = owl_alloc_aligned(sizeof(float) * (n ? n : 1));
    if (!p) *st = owl_errorf(OWL_ERR_NOMEM, "fine-tuning: out of memory for %zu floats of activations", n);
    return p;
}

void owl_train_free(owl_train *tr) {
    if (!tr) return;
    owl_ctx_free(tr->ctx);
    float **bufs[] = {&tr->grad, &tr->xs, &tr->h1, &tr->rs1, &tr->qp, &tr->kp, &tr->v, &tr->rsq, &tr->rsk, &tr->q,
                      &tr->k, &tr->P, &tr->Sc, &tr->att, &tr->o, &tr->rso, &tr->x2, &tr->h2, &tr->rs2, &tr->g,
                      &tr->u, &tr->a, &tr->d, &tr->rsd, &tr->dx, &tr->dh, &tr->dq, &tr->dk, &tr->dv, &tr->datt,
                      &tr->dg, &tr->du, &tr->dz, &tr->tmp, &tr->tmp2, &tr->yt, &tr->cs, &tr->cs_swa, &tr->hf, &tr->rsf,
                      &tr->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    for (int i = 0; i < OWL_PROJ_LAYER_COUNT; i++) free(tr->z[i]);
    free(tr->tp);
    free(tr->tens);
    free(tr->rows);
    free(tr);
}

owl_status owl_train_new(owl_model *m, owl_lora *lora, int max_n, owl_train **out) {
    *out = NULL;
    const owl_hparams *hp = &m->hp;
    const owl_arch *ar = m->arch;
    if (ar->fused_qkv || ar->fused_gate_up)
        return owl_errorf(OWL_ERR_UNSUPPORTED,
                          "fine-tuning %s: fused projections (attn_qkv / gate+up in ffn_up) are not supported",
                          ar->name);
    if (lora->targets & (OWL_LORA_T_OUTPUT | OWL_LORA_T_EMBD))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "fine-tuning: adapters on the output head or the embeddings are not "
                                               "trained (targets: q, k, v, o, gate, up, down)");
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return owl_errorf(OWL_ERR_UNSUPPORTED, "fine-tuning: rotary dimensions %d with head_dim %d", hp->n_rot,
                          hp->head_dim);
    if (max_n < 2) return owl_errorf(OWL_ERR_ARG, "fine-tuning: sequences of %d tokens (at least 2)", max_n);
    owl_train *tr = owl_calloc(1, sizeof *tr);
    if (!tr) return OWL_ERR_NOMEM;
    tr->m = m;
    tr->lora = lora;
    tr->max_n = max_n;
    tr->rank = lora->rank;
    tr->s = lora->w.scale;
    owl_status st = owl_ctx_new(m, max_n, &tr->ctx); /* only for its RoPE frequencies */
    if (st) {
        free(tr);
        return owl_error_prefix(st, "fine-tuning");
    }
    const int L = hp->n_layers;
    tr->tp = owl_calloc((size_t)L * OWL_PROJ_LAYER_COUNT, sizeof *tr->tp);
    tr->tens = owl_calloc((size_t)L * OWL_PROJ_LAYER_COUNT * 2, sizeof *tr->tens);
    if (!tr->tp || !tr->tens) {
        owl_train_free(tr);
        return OWL_ERR_NOMEM;
    }
    /* the trainable tensors and their places in one gradient vector */
    size_t n_param = 0;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
            owl_lora_pair *pr = owl_lora_pair_of(lora, l, (owl_proj)p);
            if (!pr || !pr->a.data) continue;
            owl_tparam *t = &tr->tp[l * OWL_PROJ_LAYER_COUNT + p];
            t->a = owl_lora_a(lora, l, (owl_proj)p);
            t->b = owl_lora_b(lora, l, (owl_proj)p);
            t->in = (int)pr->a.cols;
            t->out = (int)pr->b.rows;
            if (!t->a || !t->b || pr->a.rows != tr->rank || pr->b.cols != tr->rank) {
                owl_train_free(tr);
                return owl_errorf(OWL_ERR_ARG, "fine-tuning: layer %d %s: the pair is not rank %d F32", l,
                                  owl_lora_proj_peft((owl_proj)p), tr->rank);
            }
            t->ga_off = n_param;
            n_param += (size_t)tr->rank * (size_t)t->in;
            t->gb_off = n_param;
            n_param += (size_t)t->out * (size_t)tr->rank;
            tr->tens[tr->n_tensors++] = (owl_ttensor){t->a, t->ga_off, (size_t)tr->rank * (size_t)t->in, l, (owl_proj)p, false};
            tr->tens[tr->n_tensors++] = (owl_ttensor){t->b, t->gb_off, (size_t)t->out * (size_t)tr->rank, l, (owl_proj)p, true};
        }
    if (n_param == 0) {
        owl_train_free(tr);
        return owl_errorf(OWL_ERR_ARG, "fine-tuning: the adapter has no pairs to train");
    }
    tr->n_param = n_param;
    const size_t n = (size_t)max_n, dim = (size_t)hp->dim, qd = (size_t)hp->q_dim, kvd = (size_t)hp->kv_dim,
                 ffn = (size_t)hp->ffn_dim, nh = (size_t)hp->n_heads, r = (size_t)tr->rank;
    size_t wide = dim > qd ? dim : qd;
    if (ffn > wide) wide = ffn;
    tr->grad = falloc(n_param, &st);
    tr->xs = falloc((size_t)(L + 1) * n * dim, &st);
    tr->h1 = falloc(n * dim, &st);
    tr->rs1 = falloc(n, &st);
    tr->qp = falloc(n * qd, &st);
    tr->kp = falloc(n * kvd, &st);
    tr->v = falloc(n * kvd, &st);
    tr->rsq = falloc(n * nh, &st);
    tr->rsk = falloc(n * nh, &st);
    tr->q = falloc(n * qd, &st);
    tr->k = falloc(n * kvd, &st);
    tr->P = falloc(nh * n * n, &st);
    if (hp->attn_softcap > 0) tr->Sc = falloc(nh * n * n, &st);
    tr->att = falloc(n * qd, &st);
    tr->o = falloc(n * dim, &st);
    tr->rso = falloc(n, &st);
    tr->x2 = falloc(n * dim, &st);
    tr->h2 = falloc(n * dim, &st);
    tr->rs2 = falloc(n, &st);
    tr->g = falloc(n * ffn, &st);
    tr->u = falloc(n * ffn, &st);
    tr->a = falloc(n * ffn, &st);
    tr->d = falloc(n * dim, &st);
    tr->rsd = falloc(n, &st);
    tr->dx = falloc(n * dim, &st);
    tr->dh = falloc(n * dim, &st);
    tr->dq = falloc(n * qd, &st);
    tr->dk = falloc(n * kvd, &st);
    tr->dv = falloc(n * kvd, &st);
    tr->datt = falloc(n * qd, &st);
    tr->dg = falloc(n * ffn, &st);
    tr->du = falloc(n * ffn, &st);
    tr->dz = falloc(n * r, &st);
    tr->tmp = falloc(n * wide, &st);
    tr->tmp2 = falloc(n * wide, &st);
    tr->yt = falloc(n * wide, &st);
    tr->cs = falloc(n * (size_t)hp->n_rot, &st);
    if (tr->ctx->rope_inv_swa) tr->cs_swa = falloc(n * (size_t)hp->n_rot, &st);
    tr->hf = falloc(n * dim, &st);
    tr->rsf = falloc(n, &st);
    for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) tr->z[p] = falloc(n * r, &st);
    tr->rows = st ? NULL : owl_calloc(n, sizeof *tr->rows);
    if (!st && !tr->rows) st = OWL_ERR_NOMEM;
    if (st) {
        owl_train_free(tr);
        return owl_error_prefix(st, "fine-tuning with sequences of %d tokens", max_n);
    }
    *out = tr;
    return OWL_OK;
}

size_t owl_train_n_params(const owl_train *tr) { return tr->n_param; }
int owl_train_n_tensors(const owl_train *tr) { return tr->n_tensors; }
float *owl_train_grads(owl_train *tr) { return tr->grad; }
void owl_train_zero_grads(owl_train *tr) { memset(tr->grad, 0, sizeof(float) * tr->n_param); }

void owl_train_tensor(owl_train *tr, int i, float **param, float **grad, size_t *n, int *layer, owl_proj *proj,
                      bool *is_b) {
    const owl_ttensor *t = &tr->tens[i];
    if (param) *param = t->p;
    if (grad) *grad = tr->grad + t->g_off;
    if (n) *n = t->n;
    if (layer) *layer = t->l;
    if (proj) *proj = t->proj;
    if (is_b) *is_b = t->b;
}

/* cos, sin of each rotated pair at positions 0..n-1 (as the forward pass). */
static void rope_table(float *cs, const double *inv, int half, double af, int n) {
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            double th = (double)t * inv[i];
            cs[((size_t)t * (size_t)half + (size_t)i) * 2] = (float)(cos(th) * af);
            cs[((size_t)t * (size_t)half + (size_t)i) * 2 + 1] = (float)(sin(th) * af);
        }
}

owl_status owl_train_seq(owl_train *tr, const int32_t *tokens, const uint8_t *target, int n, bool backward,
                         float grad_scale, double *loss_sum, int *n_targets) {
    *loss_sum = 0;
    *n_targets = 0;
    const owl_model *m = tr->m;
    const owl_hparams *hp = &m->hp;
    const int dim = hp->dim, vocab = hp->n_vocab, L = hp->n_layers;
    const int nt = owl_threads();
    if (n < 2 || n > tr->max_n)
        return owl_errorf(OWL_ERR_ARG, "fine-tuning: a sequence of %d tokens (2 to %d)", n, tr->max_n);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return owl_errorf(OWL_ERR_ARG, "fine-tuning: token %d at index %d is outside the vocabulary of %d",
                              (int)tokens[i], i, vocab);
    /* rows whose next token is a target */
    int nr = 0;
    for (int i = 1; i < n; i++)
        if (target[i]) tr->rows[nr++] = i - 1;
    if (nr == 0) return OWL_OK;
    const size_t need = (size_t)nr * (size_t)vocab;
    if (need > tr->logits_cap) {
        free(tr->logits);
        tr->logits = owl_alloc_aligned(sizeof(float) * need);
        tr->logits_cap = tr->logits ? need : 0;
        if (!tr->logits) return owl_errorf(OWL_ERR_NOMEM, "fine-tuning: logits of %d rows x %d", nr, vocab);
    }
    const int half = hp->n_rot / 2;
    rope_table(tr->cs, tr->ctx->rope_inv, half, hp->rope_attn_factor, n);
    if (tr->cs_swa) rope_table(tr->cs_swa, tr->ctx->rope_inv_swa, half, hp->rope_attn_factor, n);

    /* embeddings */
    float *x0 = tr->xs;
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes;
        owl_status st = owl_to_f32(m->tok_embd.dtype, row, x0 + (size_t)t * (size_t)dim, dim);
        if (st) return owl_error_prefix(st, "embedding of token %d", (int)tokens[t]);
    }
    if (m->arch->embd_scale) {
        const float sc = sqrtf((float)dim);
        for (size_t i = 0; i < (size_t)n * (size_t)dim; i++) x0[i] *= sc;
    }
    const size_t xstride = (size_t)tr->max_n * (size_t)dim;
    for (int l = 0; l < L; l++) {
        owl_status st = owl_train_layer_fwd(tr, l, tr->xs + (size_t)l * xstride, tr->xs + (size_t)(l + 1) * xstride, n);
        if (st) return st;
    }
    /* final norm, head on the target rows, cross-entropy */
    const float *xL = tr->xs + (size_t)L * xstride;
    owl_train_norm_fwd(tr->hf, xL, m->out_norm, tr->rsf, n, dim, hp->eps);
    float *hc = tr->tmp; /* gathered rows: nr x dim <= n x wide */
    for (int r = 0; r < nr; r++)
        memcpy(hc + (size_t)r * (size_t)dim, tr->hf + (size_t)tr->rows[r] * (size_t)dim, sizeof(float) * (size_t)dim);
    owl_matmul(&m->output, hc, tr->logits, nr);
    const float cap = hp->final_softcap;
    double loss = 0;
    bool finite = true;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : loss) reduction(&& : finite) if ((size_t)nr * (size_t)vocab >= 32768)
    for (int r = 0; r < nr; r++) {
        float *lg = tr->logits + (size_t)r * (size_t)vocab;
        if (cap > 0) owl_softcap(lg, vocab, cap);
        const int y = tokens[tr->rows[r] + 1];
        float mx = lg[0];
        for (int j = 1; j < vocab; j++) mx = lg[j] > mx ? lg[j] : mx;
        double sum = 0;
        for (int j = 0; j < vocab; j++) sum += exp((double)(lg[j] - mx));
        const double lse = (double)mx + log(sum);
        loss += lse - (double)lg[y];
        if (!isfinite(lse) || !isfinite(lg[y])) finite = false;
        if (backward) { /* d loss / d logits, times grad_scale (and the cap's derivative) */
            for (int j = 0; j < vocab; j++) {
                float p = (float)exp((double)lg[j] - lse);
                float gj = (p - (j == y ? 1.0f : 0.0f)) * grad_scale;
                if (cap > 0) {
                    float tq = lg[j] / cap;
                    gj *= 1.0f - tq * tq;
                }
                lg[j] = gj;
            }
        }
    }
    *loss_sum = finite ? loss : NAN;
    *n_targets = nr;
    if (!backward || !finite) return OWL_OK;

    /* backward: head (frozen) and final norm */
    owl_status st = owl_matmul_t(&m->output, tr->logits, hc, nr, false);
    if (st) return st;
    memset(tr->dh, 0, sizeof(float) * (size_t)n * (size_t)dim);
    for (int r = 0; r < nr; r++)
        memcpy(tr->dh + (size_t)tr->rows[r] * (size_t)dim, hc + (size_t)r * (size_t)dim, sizeof(float) * (size_t)dim);
    owl_train_norm_bwd(tr->dx, xL, m->out_norm, tr->rsf, tr->dh, n, dim, false);
    for (int l = L - 1; l >= 0; l--) {
        const float *xin = tr->xs + (size_t)l * xstride;
        /* the last block's internals are still in the buffers */
        if (l != L - 1 && (st = owl_train_layer_fwd(tr, l, xin, tr->xs + (size_t)(l + 1) * xstride, n))) return st;
        if ((st = owl_train_layer_bwd(tr, l, xin, n))) return st;
    }
    return OWL_OK;
}
