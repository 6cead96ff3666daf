/* Batched evaluation of several sequences (owl_batch_eval) against each
 * sequence evaluated alone (owl_ctx_eval on its own context, itself checked
 * against the NumPy reference in test_forward): mixes of prompt chunks and
 * single decode tokens at different positions, last-only and all logits,
 * steps cut by a small row budget, GQA, several families (Qwen2 with bias,
 * Gemma 2 with soft-capping and a window, Qwen3 with q/k norms, Phi-3 with
 * fused matrices and partial rotary), one sequence with random low-rank
 * adapters installed. The first sequence is also checked against the NumPy
 * reference logits directly. Bad calls give clear errors. */
#include "model/model.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *tmp;

#define NSEQ 4

/* Random F32 matrix of rows x cols in [-amp, amp). */
static owl_mat rand_mat(int64_t rows, int64_t cols, float amp, uint64_t *rng, float **keep) {
    float *d = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) d[i] = test_rand_f32(rng) * amp;
    *keep = d;
    return (owl_mat){.dtype = OWL_F32, .rows = rows, .cols = cols, .row_bytes = sizeof(float) * (size_t)cols, .data = d};
}

/* A rank-4 adapter on every projection of every layer and on the head. */
typedef struct adapter {
    owl_lora_weights w;
    float *bufs[256];
    int n_bufs;
} adapter;

static void make_adapter(adapter *a, const owl_hparams *hp) {
    memset(a, 0, sizeof *a);
    uint64_t rng = 77;
    const int r = 4;
    a->w.scale = 0.5f;
    a->w.layer = calloc((size_t)hp->n_layers * OWL_PROJ_LAYER_COUNT, sizeof *a->w.layer);
    for (int l = 0; l < hp->n_layers; l++)
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
            int in = hp->dim, out = hp->dim;
            if (p == OWL_PROJ_Q) out = hp->q_dim;
            if (p == OWL_PROJ_K || p == OWL_PROJ_V) out = hp->kv_dim;
            if (p == OWL_PROJ_O) in = hp->q_dim;
            if (p == OWL_PROJ_GATE || p == OWL_PROJ_UP) out = hp->ffn_dim;
            if (p == OWL_PROJ_DOWN) in = hp->ffn_dim;
            owl_lora_pair *pr = &a->w.layer[l * OWL_PROJ_LAYER_COUNT + p];
            pr->a = rand_mat(r, in, 0.3f, &rng, &a->bufs[a->n_bufs++]);
            pr->b = rand_mat(out, r, 0.3f, &rng, &a->bufs[a->n_bufs++]);
        }
    a->w.output.a = rand_mat(r, hp->dim, 0.3f, &rng, &a->bufs[a->n_bufs++]);
    a->w.output.b = rand_mat(hp->n_vocab, r, 0.3f, &rng, &a->bufs[a->n_bufs++]);
}

static void free_adapter(adapter *a) {
    for (int i = 0; i < a->n_bufs; i++) free(a->bufs[i]);
    free(a->w.layer);
}

/* relative error of float rows */
static double rel_f(const float *got, const float *want, int n) {
    if (!got || !want) return INFINITY;
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * (double)want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One step: sequence i runs counts[i] tokens (0: sits out). Batched in
 * batch over ctxs, alone over solo; returns the worst relative error of
 * the logits wanted. */
static double step(owl_batch *batch, owl_ctx **ctxs, owl_ctx **solo, const int32_t *tok, int n_tok, const int *counts,
                   bool all, const char *name, int k) {
    owl_ctx *cs[NSEQ];
    const int32_t *ts[NSEQ];
    int ns[NSEQ], idx[NSEQ], n = 0;
    for (int i = 0; i < NSEQ; i++) {
        if (!counts[i]) continue;
        int pos = owl_ctx_pos(ctxs[i]);
        CHECK(pos + counts[i] + 7 * i <= n_tok);
        cs[n] = ctxs[i];
        ts[n] = tok + pos + 7 * i; /* sequence i reads the tokens from 7 i on */
        ns[n] = counts[i];
        idx[n++] = i;
    }
    owl_status st = owl_batch_eval(batch, cs, ts, ns, n, all);
    CHECKF(st == OWL_OK, "%s step %d: batch eval: %s", name, k, owl_last_error());
    if (st) return INFINITY;
    double worst = 0;
    const int vocab = ctxs[0]->model->hp.n_vocab;
    for (int j = 0; j < n; j++) {
        owl_ctx *s = solo[idx[j]];
        st = owl_ctx_eval(s, ts[j], ns[j], all);
        CHECKF(st == OWL_OK, "%s step %d: alone: %s", name, k, owl_last_error());
        CHECK(owl_ctx_pos(s) == owl_ctx_pos(cs[j]));
        for (int r = all ? 0 : ns[j] - 1; r < ns[j]; r++) {
            double e = rel_f(owl_ctx_logits(cs[j], r), owl_ctx_logits(s, r), vocab);
            if (!(e <= worst)) worst = e;
        }
        if (!all) CHECK(owl_ctx_logits(cs[j], 0) == NULL || ns[j] == 1);
    }
    return worst;
}

static void check_family(const char *name, const char *args, bool with_lora) {
    char *prefix = test_make_model(tmp, name, args);
    if (!prefix) return;
    char *gguf = path_ext(prefix, ".gguf"), *tpath = path_ext(prefix, ".tokens.txt"),
         *lpath = path_ext(prefix, ".logits.f64");
    owl_model *m = NULL;
    owl_batch *batch = NULL, *small = NULL;
    owl_ctx *ctxs[NSEQ] = {0}, *solo[NSEQ] = {0};
    double *ref = NULL;
    adapter ad = {0};
    int n_tok = 0;
    int32_t *tok = test_read_ids(tpath, &n_tok);
    owl_status st = owl_model_load(gguf, NULL, &m);
    CHECKF(st == OWL_OK && n_tok == 64, "%s: load: %s", name, owl_last_error());
    if (st || n_tok != 64) goto done;
    const int vocab = m->hp.n_vocab;
    ref = test_read_f64(lpath, (size_t)vocab * 64);
    CHECK(ref != NULL);
    for (int i = 0; i < NSEQ; i++) {
        CHECK(owl_ctx_new(m, 64, &ctxs[i]) == OWL_OK);
        CHECK(owl_ctx_new(m, 64, &solo[i]) == OWL_OK);
    }
    CHECK(owl_batch_new(m, 0, &batch) == OWL_OK && owl_batch_rows(batch) == 512);
    CHECK(owl_batch_new(m, 8, &small) == OWL_OK && owl_batch_rows(small) == 8);
    if (!ref || !batch || !small || !ctxs[NSEQ - 1] || !solo[NSEQ - 1]) goto done;
    if (with_lora) {
        make_adapter(&ad, &m->hp);
        owl_lora_set set = {.n = 1, .w = {&ad.w}, .scale = {1.0f}};
        CHECKF(owl_ctx_set_lora(ctxs[1], &set) == OWL_OK, "%s: set lora: %s", name, owl_last_error());
        CHECK(owl_ctx_set_lora(solo[1], &set) == OWL_OK);
    }

    /* prompts of different lengths, then decode tokens mixed with a prompt
     * chunk, then all logits, then a budget of 8 rows that cuts sequences */
    static const int plan[][NSEQ + 1] = {
        /* counts..., all logits */
        {10, 5, 1, 17, 0}, {1, 1, 1, 1, 0}, {1, 9, 1, 1, 0}, {1, 1, 0, 1, 0}, {3, 1, 9, 2, 1},
        {0, 1, 1, 1, 0},   {1, 1, 1, 1, 1},
    };
    double worst = 0;
    for (int k = 0; k < (int)(sizeof plan / sizeof plan[0]); k++) {
        double e = step(batch, ctxs, solo, tok, n_tok, plan[k], plan[k][NSEQ] != 0, name, k);
        if (!(e <= worst)) worst = e;
    }
    static const int cut[][NSEQ + 1] = {{12, 1, 3, 1, 0}, {1, 6, 1, 1, 1}, {1, 1, 1, 1, 0}};
    for (int k = 0; k < 3; k++) {
        double e = step(small, ctxs, solo, tok, n_tok, cut[k], cut[k][NSEQ] != 0, name, 100 + k);
        if (!(e <= worst)) worst = e;
    }
    CHECKF(worst < 2e-5, "%s: batched vs alone: relative error %.3g", name, worst);
    fprintf(stderr, "%s: batched vs alone %.3g", name, worst);

    /* sequence 0 read tok[0..pos): its last logits against NumPy */
    const int p0 = owl_ctx_pos(ctxs[0]);
    double e = test_rel_err(owl_ctx_logits(ctxs[0], -1), ref + (size_t)(p0 - 1) * (size_t)vocab, vocab);
    CHECKF(e < 1e-3, "%s: sequence 0 at %d vs the reference: %.3g", name, p0, e);
    fprintf(stderr, ", vs reference %.3g", e);
    if (with_lora) { /* the adapter changed sequence 1: its logits are not the base's */
        owl_ctx *base = NULL;
        CHECK(owl_ctx_new(m, 64, &base) == OWL_OK);
        const int p1 = owl_ctx_pos(ctxs[1]);
        CHECK(base && owl_ctx_eval(base, tok + 7, p1, false) == OWL_OK);
        double d = rel_f(owl_ctx_logits(ctxs[1], -1), base ? owl_ctx_logits(base, -1) : NULL, vocab);
        CHECKF(d > 1e-3, "%s: the adapter changed nothing (%.3g)", name, d);
        fprintf(stderr, ", adapter moved the logits by %.3g", d);
        owl_ctx_free(base);
    }
    fputc('\n', stderr);

    /* bad calls */
    {
        owl_ctx *two[2] = {ctxs[0], ctxs[0]};
        const int32_t *tt[2] = {tok, tok};
        int cn[2] = {1, 1};
        CHECK(owl_batch_eval(batch, two, tt, cn, 2, false) == OWL_ERR_ARG && strstr(owl_last_error(), "share"));
        CHECK(owl_batch_eval(batch, ctxs, tt, cn, 0, false) == OWL_ERR_RANGE);
        cn[1] = 0;
        CHECK(owl_batch_eval(batch, ctxs, tt, cn, 2, false) == OWL_ERR_ARG && strstr(owl_last_error(), "sequence 1"));
        int32_t badt = vocab;
        const int32_t *tb[2] = {tok, &badt};
        cn[1] = 1;
        CHECK(owl_batch_eval(batch, ctxs, tb, cn, 2, false) == OWL_ERR_ARG && strstr(owl_last_error(), "vocabulary"));
        cn[1] = 64;
        CHECK(owl_batch_eval(batch, ctxs, tt, cn, 2, false) == OWL_ERR_RANGE && strstr(owl_last_error(), "fit"));
        owl_ctx *none[1] = {NULL};
        CHECK(owl_batch_eval(batch, none, tt, cn, 1, false) == OWL_ERR_ARG);
        owl_batch *bb = NULL;
        CHECK(owl_batch_new(m, -3, &bb) == OWL_ERR_RANGE && bb == NULL);
        CHECK(owl_batch_new(NULL, 8, &bb) == OWL_ERR_ARG);
    }

done:
    for (int i = 0; i < NSEQ; i++) {
        owl_ctx_free(ctxs[i]);
        owl_ctx_free(solo[i]);
    }
    if (with_lora) free_adapter(&ad);
    owl_batch_free(batch);
    owl_batch_free(small);
    owl_model_free(m);
    free(ref);
    free(tok);
    free(gguf);
    free(tpath);
    free(lpath);
    free(prefix);
}

/* A context of another model in the batch is refused. */
static void check_other_model(void) {
    char *p1 = test_make_model(tmp, "om1", "--no-ref --no-tokenizer --dim 32 --heads 2 --ffn 48 --vocab 260 --ctx 32 --layers 1");
    if (!p1) return;
    char *g1 = path_ext(p1, ".gguf");
    owl_model *a = NULL, *b = NULL;
    owl_ctx *cb = NULL;
    owl_batch *bt = NULL;
    CHECK(owl_model_load(g1, NULL, &a) == OWL_OK && owl_model_load(g1, NULL, &b) == OWL_OK);
    if (a && b && owl_ctx_new(b, 0, &cb) == OWL_OK && owl_batch_new(a, 4, &bt) == OWL_OK) {
        int32_t t = 1;
        const int32_t *ts[1] = {&t};
        int n = 1;
        CHECK(owl_batch_eval(bt, &cb, ts, &n, 1, false) == OWL_ERR_ARG && strstr(owl_last_error(), "another model"));
    }
    owl_batch_free(bt);
    owl_ctx_free(cb);
    owl_model_free(a);
    owl_model_free(b);
    free(g1);
    free(p1);
}

#define SMALL "--no-tokenizer --dim 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 300 --ctx 128 "

int main(void) {
    tmp = test_tmpdir("batch");
    check_family("llama_gqa", SMALL "--layers 2", true);
    check_family("qwen2_bias", SMALL "--arch qwen2 --bias --tied", false);
    check_family("gemma2", SMALL "--arch gemma2 --layers 3 --window 16 --q-scalar 24 --softcap 1,3", true);
    check_family("qwen3", SMALL "--arch qwen3 --head-dim 32", false);
    check_family("phi3", SMALL "--arch phi3 --window 16 --partial-rotary 0.5", false);
    check_other_model();
    return test_finish("test_batch");
}
