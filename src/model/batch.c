/* Batched evaluation of several sequences (owl_batch): each sequence is its
 * own context (KV cache, position, adapters); one call runs the next tokens
 * of all of them through owl_model_forward_segs, so that every weight matrix
 * is read once per step for all sequences. Rows beyond the batch's capacity
 * are cut into further steps (a long prompt goes on in the next step). The
 * logits end up in each context, read with owl_ctx_logits as after
 * owl_ctx_eval. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

struct owl_batch {
    owl_model *model;
    owl_fwd_buf buf;
    owl_seg segs[OWL_BATCH_MAX_SEQ];
    int seq_of[OWL_BATCH_MAX_SEQ]; /* the sequence of each segment of a step */
    int done[OWL_BATCH_MAX_SEQ];   /* tokens of each sequence run so far */
    float *logits;                 /* head output of a step */
    size_t logits_cap;             /* floats */
};

owl_status owl_batch_new(owl_model *model, int max_rows, owl_batch **out) {
    *out = NULL;
    if (!model) return owl_errorf(OWL_ERR_ARG, "owl_batch_new: no model");
    if (max_rows == 0) max_rows = 512;
    if (max_rows < 1 || max_rows > 65536)
        return owl_errorf(OWL_ERR_RANGE, "owl_batch_new: %d rows per step (1..65536)", max_rows);
    owl_batch *b = owl_calloc(1, sizeof *b);
    if (!b) return owl_errorf(OWL_ERR_NOMEM, "owl_batch_new: out of memory");
    b->model = model;
    owl_status st = owl_fwd_buf_init(&b->buf, model, max_rows);
    if (st) {
        free(b);
        return owl_error_prefix(st, "batch of %d rows", max_rows);
    }
    *out = b;
    return OWL_OK;
}

void owl_batch_free(owl_batch *b) {
    if (!b) return;
    owl_fwd_buf_free(&b->buf);
    free(b->logits);
    free(b);
}

int owl_batch_rows(const owl_batch *b) { return b ? b->buf.cap : 0; }

static owl_status check_args(const owl_batch *b, owl_ctx *const *ctxs, const int32_t *const *tokens,
                             const int *counts, int n_seq) {
    if (!b || !ctxs || !tokens || !counts) return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: missing argument");
    if (n_seq < 1 || n_seq > OWL_BATCH_MAX_SEQ)
        return owl_errorf(OWL_ERR_RANGE, "owl_batch_eval: %d sequences (1..%d)", n_seq, OWL_BATCH_MAX_SEQ);
    const int vocab = b->model->hp.n_vocab;
    for (int i = 0; i < n_seq; i++) {
        const owl_ctx *c = ctxs[i];
        if (!c) return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: sequence %d has no context", i);
        if (c->model != b->model)
            return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: sequence %d's context is of another model", i);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == c) return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: sequences %d and %d share a context", j, i);
        if (counts[i] < 1 || !tokens[i])
            return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: sequence %d has no tokens (n = %d)", i, counts[i]);
        if (counts[i] > c->n_ctx - c->pos)
            return owl_errorf(OWL_ERR_RANGE,
                              "owl_batch_eval: sequence %d: %d tokens do not fit in the context of %d (%d already used)",
                              i, counts[i], c->n_ctx, c->pos);
        for (int t = 0; t < counts[i]; t++)
            if (tokens[i][t] < 0 || tokens[i][t] >= vocab)
                return owl_errorf(OWL_ERR_ARG, "owl_batch_eval: sequence %d: token %d at index %d is outside the vocabulary of %d",
                                  i, (int)tokens[i][t], t, vocab);
    }
    return OWL_OK;
}

owl_status owl_batch_eval(owl_batch *b, owl_ctx *const *ctxs, const int32_t *const *tokens, const int *counts,
                          int n_seq, bool all_logits) {
    owl_status st = check_args(b, ctxs, tokens, counts, n_seq);
    if (st) return st;
    const owl_model *m = b->model;
    const size_t vocab = (size_t)m->hp.n_vocab;
    const int cap = b->buf.cap;
    for (int i = 0; i < n_seq; i++) {
        owl_ctx *c = ctxs[i];
        if ((st = owl_ctx_logits_reserve(c, all_logits ? counts[i] : 1))) return st;
        c->n_logits = c->last_n = 0;
        b->done[i] = 0;
    }
    for (int next = 0; next < n_seq;) {
        /* one step: the next tokens of each unfinished sequence in order,
         * as many as the rows allow */
        int rows = 0, ns = 0;
        for (int i = next; i < n_seq && rows < cap; i++) {
            const int take = counts[i] - b->done[i] < cap - rows ? counts[i] - b->done[i] : cap - rows;
            b->segs[ns] = (owl_seg){.ctx = ctxs[i], .tokens = tokens[i] + b->done[i], .n = take, .last_only = !all_logits};
            b->seq_of[ns++] = i;
            rows += take;
        }
        if ((st = owl_model_forward_segs(&b->buf, b->segs, ns))) return st;
        /* the rows whose logits are wanted: every row with all_logits, else
         * the last row of each sequence that is complete now; packed to the
         * front of h */
        int n_out = 0;
        for (int k = 0; k < ns; k++) {
            owl_seg *sg = &b->segs[k];
            const int i = b->seq_of[k];
            const bool final = b->done[i] + sg->n == counts[i];
            const int want = all_logits ? sg->n_out : final ? 1 : 0;
            if (want) {
                const float *src = b->buf.h + (size_t)(sg->out_row + sg->n_out - want) * (size_t)m->hp.dim;
                float *dst = b->buf.h + (size_t)n_out * (size_t)m->hp.dim;
                if (dst != src) memmove(dst, src, sizeof(float) * (size_t)want * (size_t)m->hp.dim);
            }
            sg->out_row = n_out;
            sg->n_out = want;
            n_out += want;
        }
        if (n_out > 0) {
            const size_t need = (size_t)n_out * vocab;
            if (need > b->logits_cap) {
                float *nl = owl_alloc_aligned(need * sizeof(float));
                if (!nl) return owl_errorf(OWL_ERR_NOMEM, "owl_batch_eval: logits of %d rows", n_out);
                free(b->logits);
                b->logits = nl;
                b->logits_cap = need;
            }
            owl_matmul(&m->output, b->buf.h, b->logits, n_out);
        }
        for (int k = 0; k < ns; k++) {
            owl_seg *sg = &b->segs[k];
            const int i = b->seq_of[k];
            owl_ctx *c = ctxs[i];
            if (sg->n_out) {
                float *lg = b->logits + (size_t)sg->out_row * vocab;
                if (c->lora.n && (st = owl_lora_add(c, -1, OWL_PROJ_Q, b->buf.h + (size_t)sg->out_row * (size_t)m->hp.dim,
                                                    lg, sg->n_out)))
                    return st;
                for (int r = 0; m->hp.final_softcap > 0 && r < sg->n_out; r++) /* Gemma 2 */
                    owl_softcap(lg + (size_t)r * vocab, (int)vocab, m->hp.final_softcap);
                float *dst = c->logits + (all_logits ? (size_t)b->done[i] * vocab : 0);
                memcpy(dst, lg, sizeof(float) * (size_t)sg->n_out * vocab);
            }
            b->done[i] += sg->n;
            if (b->done[i] == counts[i]) {
                c->last_n = counts[i];
                c->last_all = all_logits;
                c->n_logits = all_logits ? counts[i] : 1;
            }
        }
        while (next < n_seq && b->done[next] == counts[next]) next++;
    }
    return OWL_OK;
}
