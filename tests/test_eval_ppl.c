/* eval/ppl.c and eval/perplexity.c: per-token statistics and their sums
 * against a float64 NumPy reference (tests/reference/ppl_ref.py) on
 * synthetic logits; the windowing of owl_eval_perplexity against the same
 * scheme spelled out here over a real model's logits; bad calls. */
#include "eval/eval.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool close_rel(double a, double b, double rel, double abs_tol) {
    if (isnan(a) || isnan(b)) return false;
    return fabs(a - b) <= abs_tol + rel * fabs(b);
}

static bool write_bin(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* n positions over a vocabulary of nv: base logits of scale `scale`, the
 * model's = base + noise; compared with ppl_ref.py. */
static void check_synthetic(const char *label, int n, int nv, float scale, float noise, uint64_t seed) {
    float *lm = malloc(sizeof(float) * (size_t)n * (size_t)nv);
    float *lb = malloc(sizeof(float) * (size_t)n * (size_t)nv);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    for (size_t i = 0; i < (size_t)n * (size_t)nv; i++) {
        lb[i] = scale * test_rand_f32(&seed);
        lm[i] = lb[i] + noise * test_rand_f32(&seed);
    }
    for (int i = 0; i < n; i++) t[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)nv);

    owl_eval_acc acc = {.has_base = true};
    double *kls = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        owl_eval_token tk;
        owl_eval_token_stats(lm + (size_t)i * nv, lb + (size_t)i * nv, nv, t[i], &tk);
        owl_eval_acc_push(&acc, &tk);
        kls[i] = tk.kl;
    }
    owl_eval_result r;
    owl_eval_acc_result(&acc, &r);
    r.kl_median = owl_eval_quantile(kls, (size_t)n, 0.5);
    r.kl_p99 = owl_eval_quantile(kls, (size_t)n, 0.99);
    r.kl_max = owl_eval_quantile(kls, (size_t)n, 1.0);
    free(kls);

    const char *dir = test_tmpdir("eval_ppl");
    char *pm = path_join(dir, "lm.f32"), *pb = path_join(dir, "lb.f32"), *pt = path_join(dir, "t.i32");
    CHECK(write_bin(pm, lm, sizeof(float) * (size_t)n * nv));
    CHECK(write_bin(pb, lb, sizeof(float) * (size_t)n * nv));
    CHECK(write_bin(pt, t, sizeof(int32_t) * (size_t)n));
    int status = 0;
    char *out = run_capture(&status, "%s %s %s %s %s %d", test_python(), source_path("tests/reference/ppl_ref.py"),
                            pm, pb, pt, nv);
    CHECKF(status == 0 && out, "%s: ppl_ref.py failed (%d)", label, status);
    double ref[14] = {0};
    int got = out ? sscanf(out, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf", &ref[0], &ref[1], &ref[2],
                           &ref[3], &ref[4], &ref[5], &ref[6], &ref[7], &ref[8], &ref[9], &ref[10], &ref[11],
                           &ref[12], &ref[13])
                  : 0;
    CHECKF(got == 14, "%s: reference printed '%s'", label, out ? out : "");
    if (got == 14) {
        double mine[14] = {(double)r.n,     r.ppl,       r.ppl_err,   r.base_ppl, r.base_ppl_err,
                           r.ppl_ratio,     r.ppl_ratio_err, r.kl,    r.kl_err,   r.agree,
                           r.agree_err,     r.kl_median, r.kl_p99,    r.kl_max};
        static const char *names[14] = {"n",     "ppl",    "ppl_err",   "base_ppl", "base_ppl_err",
                                        "ratio", "ratio_err", "kl",     "kl_err",   "agree",
                                        "agree_err", "kl_median", "kl_p99", "kl_max"};
        for (int k = 0; k < 14; k++)
            CHECKF(close_rel(mine[k], ref[k], 1e-9, 1e-13), "%s: %s owl %.17g reference %.17g", label, names[k],
                   mine[k], ref[k]);
    }
    free(out);
    free(pm);
    free(pb);
    free(pt);
    free(lm);
    free(lb);
    free(t);
}

static void check_edge_cases(void) {
    float l[4] = {1, 2, 3, 4};
    owl_eval_token tk;
    owl_eval_token_stats(l, l, 4, 2, &tk);
    CHECK(tk.kl == 0.0 && tk.agree);
    CHECK(close_rel(tk.nll, tk.base_nll, 0, 0));
    CHECK(close_rel(tk.nll, log(exp(1.0) + exp(2.0) + exp(3.0) + exp(4.0)) - 3.0, 1e-15, 0));
    owl_eval_token_stats(l, NULL, 4, 4, &tk); /* target outside the vocabulary */
    CHECK(isnan(tk.nll));
    owl_eval_token_stats(l, NULL, 4, -1, &tk);
    CHECK(isnan(tk.nll));
    /* one token: no error bars */
    owl_eval_acc acc = {0};
    owl_eval_token_stats(l, NULL, 4, 3, &tk);
    owl_eval_acc_push(&acc, &tk);
    owl_eval_result r;
    owl_eval_acc_result(&acc, &r);
    CHECK(r.n == 1 && r.ppl_err == 0.0 && close_rel(r.ppl, exp(tk.nll), 1e-15, 0));
    /* logits far from 0 do not overflow */
    float big[3] = {1000.0f, 999.0f, -1000.0f};
    owl_eval_token_stats(big, NULL, 3, 1, &tk);
    CHECK(close_rel(tk.nll, 1.0 + log1p(exp(-1.0)), 1e-12, 0));
    /* quantiles: linear between neighbours of the sorted values */
    double v[5] = {4, 1, 3, 2, 5};
    CHECK(owl_eval_quantile(v, 5, 0.5) == 3.0 && owl_eval_quantile(v, 5, 0.0) == 1.0);
    CHECK(close_rel(owl_eval_quantile(v, 5, 0.99), 4.96, 1e-14, 0) && owl_eval_quantile(v, 5, 1.0) == 5.0);
    CHECK(isnan(owl_eval_quantile(v, 0, 0.5)));
    double one = 7;
    CHECK(owl_eval_quantile(&one, 1, 0.99) == 7.0);
}

/* owl_eval_perplexity against the scheme written out here: windows of n_ctx
 * tokens of the BOS-first token list, BOS in front, positions n_ctx/2 ..
 * n_ctx-2 scored. */
static void check_windows(void) {
    const char *mpath = testdata_path("models/wp/wp-Q8_0.gguf");
    owl_model *m = NULL;
    if (owl_model_load(mpath, NULL, &m) != OWL_OK) {
        CHECKF(false, "load %s: %s", mpath, owl_last_error());
        return;
    }
    char *text = NULL;
    size_t len = 0;
    CHECK(owl_read_file(testdata_path("text/war-and-peace.txt"), &text, &len) == OWL_OK);
    if (!text) {
        owl_model_free(m);
        return;
    }
    const char *valid = text + 2882089;
    size_t vlen = 6000; /* ~1500 tokens */
    int n_ctx = 64, n_chunks = 3;
    owl_ppl_params pp = {.n_ctx = n_ctx, .n_chunks = n_chunks};
    owl_eval_result r;
    CHECKF(owl_eval_perplexity(m, m, valid, vlen, &pp, &r) == OWL_OK, "%s", owl_last_error());
    CHECK(r.n == (uint64_t)(n_chunks * (n_ctx - 1 - n_ctx / 2)));
    CHECK(r.kl == 0.0 && r.agree == 1.0 && close_rel(r.ppl_ratio, 1.0, 1e-15, 0));
    CHECK(r.kl_max == 0.0 && r.kl_median == 0.0);
    CHECK(r.ppl > 5 && r.ppl < 2000);

    int32_t *ids = NULL;
    size_t n_ids = 0;
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    CHECK(owl_tokenize(tok, valid, vlen, true, false, &ids, &n_ids) == OWL_OK);
    owl_model_info info;
    owl_model_get_info(m, &info);
    owl_ctx *ctx = NULL;
    CHECK(owl_ctx_new(m, n_ctx, &ctx) == OWL_OK);
    double sum = 0;
    int count = 0;
    for (int w = 0; ctx && w < n_chunks && (size_t)(w + 1) * n_ctx <= n_ids; w++) {
        int32_t win[64];
        memcpy(win, ids + w * n_ctx, sizeof win);
        win[0] = owl_token_bos(tok);
        owl_ctx_truncate(ctx, 0);
        CHECK(owl_ctx_eval(ctx, win, n_ctx, true) == OWL_OK);
        for (int p = n_ctx / 2; p < n_ctx - 1; p++) {
            const float *lg = owl_ctx_logits(ctx, p);
            double mx = lg[0], s = 0;
            for (int v = 1; v < info.n_vocab; v++) mx = lg[v] > mx ? lg[v] : mx;
            for (int v = 0; v < info.n_vocab; v++) s += exp(lg[v] - mx);
            sum += mx + log(s) - lg[ids[w * n_ctx + p + 1]];
            count++;
        }
    }
    CHECK(count == (int)r.n);
    CHECKF(close_rel(r.ppl, exp(sum / count), 1e-9, 0), "ppl %.12g spelled out %.12g", r.ppl, exp(sum / count));
    owl_ctx_free(ctx);

    /* bad calls */
    pp.n_ctx = 1024; /* above the model's 256 */
    CHECK(owl_eval_perplexity(m, NULL, valid, vlen, &pp, &r) == OWL_ERR_RANGE);
    CHECK(strstr(owl_last_error(), "1024") != NULL);
    pp.n_ctx = 256; /* 6000 bytes are fewer than 512 tokens */
    CHECK(owl_eval_perplexity(m, NULL, valid, 1000, &pp, &r) == OWL_ERR_RANGE);
    CHECK(strstr(owl_last_error(), "fewer than two windows") != NULL);
    pp.n_ctx = -3;
    CHECK(owl_eval_perplexity(m, NULL, valid, vlen, &pp, &r) == OWL_ERR_ARG);
    CHECK(owl_eval_perplexity(NULL, NULL, valid, vlen, NULL, &r) == OWL_ERR_ARG);
    free(ids);
    free(text);
    owl_model_free(m);
}

int main(void) {
    check_synthetic("small differences", 300, 1000, 4.0f, 0.3f, 1);
    check_synthetic("large logits, half agreement", 200, 517, 60.0f, 40.0f, 2);
    check_synthetic("identical models", 50, 300, 3.0f, 0.0f, 3);
    check_edge_cases();
    check_windows();
    return test_finish("test_eval_ppl");
}
