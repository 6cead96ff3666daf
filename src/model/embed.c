/* Sentence embeddings: mean of the final normed hidden states, L2-normalised
 * (owl_ctx_embed). Uses the forward pass as owl_ctx_eval does, without the
 * output matrix. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

owl_status owl_ctx_embed(owl_ctx *c, const int32_t *tokens, int n, float *out) {
    if (!c || !tokens || !out || n <= 0) return owl_errorf(OWL_ERR_ARG, "embed: no tokens (n = %d)", n);
    const owl_model *m = c->model;
    const int dim = m->hp.dim, vocab = m->hp.n_vocab;
    if (n > c->n_ctx)
        return owl_errorf(OWL_ERR_RANGE, "embed: %d tokens do not fit in the context of %d", n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return owl_errorf(OWL_ERR_ARG, "embed: token %d at index %d is outside the vocabulary of %d", (int)tokens[i],
                              i, vocab);
    double *sum = calloc((size_t)dim, sizeof *sum);
    if (!sum) return owl_errorf(OWL_ERR_NOMEM, "embed: out of memory for %d floats", dim);
    c->pos = 0;
    c->n_logits = 0;
    c->last_n = 0;
    owl_status st = OWL_OK;
    for (int t0 = 0; t0 < n && st == OWL_OK; t0 += c->n_ub) {
        int nb = n - t0 < c->n_ub ? n - t0 : c->n_ub;
        st = owl_model_forward(c, tokens + t0, nb, false);
        for (int r = 0; st == OWL_OK && r < nb; r++)
            for (int j = 0; j < dim; j++) sum[j] += c->buf.h[(size_t)r * (size_t)dim + (size_t)j];
    }
    c->pos = 0;
    if (st == OWL_OK) {
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            sum[j] /= n;
            norm += sum[j] * sum[j];
        }
        norm = sqrt(norm);
        for (int j = 0; j < dim; j++) out[j] = (float)(norm > 0 ? sum[j] / norm : 0.0);
    }
    free(sum);
    return st;
}
