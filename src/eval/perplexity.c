/* Perplexity of a model over a text, as llama.cpp's perplexity tool measures
 * it: the text is tokenized once (BOS first), cut into non-overlapping
 * windows of n_ctx tokens whose first token is replaced by BOS, each window
 * is evaluated in one batch, and the positions of its second half
 * (n_ctx/2 .. n_ctx-2) are scored against the token that follows. With a
 * base model the same windows run through it too, and each scored position
 * also gives KL(base || model) and whether both argmaxes agree.
 *
 * Logits are not copied: each model has its own context, whose logit buffer
 * (n_ctx x vocab floats) holds the window's rows until its next eval. */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

static owl_status check_ctx(owl_model *m, const char *which, int n_ctx) {
    owl_model_info info;
    owl_model_get_info(m, &info);
    if (info.n_ctx_train > 0 && n_ctx > info.n_ctx_train)
        return owl_errorf(OWL_ERR_RANGE, "perplexity: window of %d tokens is larger than the %s's context (%d)",
                          n_ctx, which, info.n_ctx_train);
    return OWL_OK;
}

owl_status owl_eval_perplexity(owl_model *model, owl_model *base, const char *text, size_t len,
                               const owl_ppl_params *params, owl_eval_result *out) {
    memset(out, 0, sizeof *out);
    if (!model || !text) return owl_errorf(OWL_ERR_ARG, "perplexity: no model or no text");
    owl_model_info info;
    owl_model_get_info(model, &info);
    int n_ctx = params ? params->n_ctx : 0;
    if (n_ctx < 0) return owl_errorf(OWL_ERR_ARG, "perplexity: window size %d is negative", n_ctx);
    if (n_ctx == 0) n_ctx = info.n_ctx_train > 0 && info.n_ctx_train < 512 ? info.n_ctx_train : 512;
    if (n_ctx < 4) return owl_errorf(OWL_ERR_RANGE, "perplexity: window size %d is too small (at least 4)", n_ctx);
    owl_status st = check_ctx(model, "model", n_ctx);
    if (st != OWL_OK) return st;
    if (base) {
        owl_model_info binfo;
        owl_model_get_info(base, &binfo);
        if (binfo.n_vocab != info.n_vocab)
            return owl_errorf(OWL_ERR_ARG, "perplexity: the base model has %d tokens in its vocabulary, the model %d",
                              binfo.n_vocab, info.n_vocab);
        if ((st = check_ctx(base, "base model", n_ctx)) != OWL_OK) return st;
    }

    const owl_tokenizer *tok = owl_model_tokenizer(model);
    int32_t bos = tok ? owl_token_bos(tok) : -1;
    if (!tok) return owl_errorf(OWL_ERR_ARG, "perplexity: the model has no tokenizer");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if ((st = owl_tokenize(tok, text, len, true, false, &ids, &n_ids)) != OWL_OK)
        return owl_error_prefix(st, "perplexity: tokenizing the text");
    /* BOS replaces each window's first token only where the tokenizer puts
     * BOS first (tokenizer.ggml.add_bos_token not false) */
    if (n_ids == 0 || ids[0] != bos) bos = -1;
    size_t n_windows = n_ids / (size_t)n_ctx;
    if (n_windows < 2) {
        free(ids);
        return owl_errorf(OWL_ERR_RANGE,
                          "perplexity: the text has %zu tokens, fewer than two windows of %d (need at least %zu)",
                          n_ids, n_ctx, 2 * (size_t)n_ctx);
    }
    if (params && params->n_chunks > 0 && (size_t)params->n_chunks < n_windows) n_windows = (size_t)params->n_chunks;

    owl_ctx *ctx = NULL, *bctx = NULL;
    int32_t *win = malloc((size_t)n_ctx * sizeof *win);
    int first = n_ctx / 2, n_score = n_ctx - 1 - first;
    owl_eval_token *tk = malloc((size_t)n_score * sizeof *tk);
    double *kls = base ? malloc(n_windows * (size_t)n_score * sizeof *kls) : NULL; /* for the quantiles */
    size_t n_kls = 0;
    if (!win || !tk || (base && !kls)) {
        st = owl_errorf(OWL_ERR_NOMEM, "perplexity: no memory for a window of %d tokens", n_ctx);
        goto done;
    }
    if ((st = owl_ctx_new(model, n_ctx, &ctx)) != OWL_OK) goto done;
    if (base && (st = owl_ctx_new(base, n_ctx, &bctx)) != OWL_OK) goto done;

    owl_eval_acc acc = {.has_base = base != NULL};
    for (size_t w = 0; w < n_windows; w++) {
        const int32_t *src = ids + w * (size_t)n_ctx;
        memcpy(win, src, (size_t)n_ctx * sizeof *win);
        if (bos >= 0) win[0] = bos;
        owl_ctx_truncate(ctx, 0);
        if ((st = owl_ctx_eval(ctx, win, n_ctx, true)) != OWL_OK) goto done;
        if (bctx) {
            owl_ctx_truncate(bctx, 0);
            if ((st = owl_ctx_eval(bctx, win, n_ctx, true)) != OWL_OK) {
                owl_error_prefix(st, "base model");
                goto done;
            }
        }
        int nv = info.n_vocab;
        /* each position's softmaxes are independent; sums are taken in order below */
#pragma omp parallel for schedule(dynamic, 4)
        for (int j = 0; j < n_score; j++) {
            int pos = first + j;
            owl_eval_token_stats(owl_ctx_logits(ctx, pos), bctx ? owl_ctx_logits(bctx, pos) : NULL, nv, src[pos + 1],
                                 &tk[j]);
        }
        for (int j = 0; j < n_score; j++) {
            owl_eval_acc_push(&acc, &tk[j]);
            if (kls) kls[n_kls++] = tk[j].kl;
        }
        owl_eval_acc_result(&acc, out);
        if (params && params->on_chunk) params->on_chunk(params->ud, (int)w + 1, (int)n_windows, out);
    }
    if (kls) {
        out->kl_max = owl_eval_quantile(kls, n_kls, 1.0);
        out->kl_p99 = owl_eval_quantile(kls, n_kls, 0.99);
        out->kl_median = owl_eval_quantile(kls, n_kls, 0.5);
    }
done:
    free(kls);
    owl_ctx_free(bctx);
    owl_ctx_free(ctx);
    free(tk);
    free(win);
    free(ids);
    return st;
}
