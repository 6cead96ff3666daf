/* The sampler: greedy, determinism, each filter's kept set, the repetition
 * penalty, NaN/inf logits, and the empirical frequencies of many draws
 * against a distribution computed here independently (float64, the filters
 * applied literally in the documented order, with renormalisation between
 * them). */
#include "owl.h"
#include "sample/sample.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- independent reference: literal chain in float64 ---- */

typedef struct {
    double l;
    int id;
    double p;
} rc;

static int rc_cmp(const void *pa, const void *pb) {
    const rc *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return a->id - b->id;
}

/* Fills probs[n_vocab] with the expected probability of each id. */
static void ref_distribution(const float *logits, int nv, const owl_sampler_params *p, const int *hist,
                             int n_hist, double *probs) {
    rc *c = calloc((size_t)nv, sizeof *c);
    int n = 0;
    for (int i = 0; i < nv; i++) {
        double l = logits[i];
        if (isnan(l) || l == -INFINITY) continue;
        if (l == INFINITY) l = 3.4e38;
        int seen = 0;
        int from = n_hist - p->repeat_last_n;
        if (from < 0) from = 0;
        for (int h = from; h < n_hist; h++) seen |= hist[h] == i;
        if (seen && p->repeat_penalty != 1.0f) l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        c[n++] = (rc){l, i, 0};
    }
    for (int i = 0; i < nv; i++) probs[i] = 0;
    if (n == 0) {
        free(c);
        return;
    }
    qsort(c, (size_t)n, sizeof *c, rc_cmp);
    if (p->temperature <= 0) {
        probs[c[0].id] = 1;
        free(c);
        return;
    }
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += c[i].p = exp((c[i].l - c[0].l) / p->temperature);
    for (int i = 0; i < n; i++) c[i].p /= sum;
    if (p->top_p < 1) {
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
        sum = 0;
        for (int i = 0; i < n; i++) sum += c[i].p;
        for (int i = 0; i < n; i++) c[i].p /= sum;
    }
    if (p->min_p > 0) {
        double pmax = c[0].p;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].p >= p->min_p * pmax) c[m++] = c[i];
        n = m;
        sum = 0;
        for (int i = 0; i < n; i++) sum += c[i].p;
        for (int i = 0; i < n; i++) c[i].p /= sum;
    }
    for (int i = 0; i < n; i++) probs[c[i].id] = c[i].p;
    free(c);
}

static owl_sampler_params params(float temp, int k, float top_p, float min_p, uint64_t seed) {
    owl_sampler_params p;
    owl_sampler_defaults(&p);
    p.temperature = temp;
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

static owl_sampler *make(const owl_sampler_params *p, int nv) {
    owl_sampler *s = NULL;
    owl_status st = owl_sampler_new(p, nv, &s);
    CHECKF(st == OWL_OK, "%s", owl_last_error());
    return s;
}

/* The kept set of owl_sampler_distribution equals the ids listed in want
 * (terminated by -1). */
static void check_set(const owl_sampler_params *p, const float *logits, int nv, const int *want, const char *what) {
    owl_sampler *s = make(p, nv);
    if (!s) return;
    int32_t *ids = malloc((size_t)nv * sizeof *ids);
    float *pr = malloc((size_t)nv * sizeof *pr);
    int n = owl_sampler_distribution(s, logits, ids, pr);
    int nw = 0;
    while (want[nw] >= 0) nw++;
    CHECKF(n == nw, "%s: kept %d tokens, want %d", what, n, nw);
    for (int i = 0; i < n && i < nw; i++) CHECKF(ids[i] == want[i], "%s: kept[%d] = %d, want %d", what, i, ids[i], want[i]);
    free(ids);
    free(pr);
    owl_sampler_free(s);
}

/* Compares owl_sampler_distribution and the frequencies of `draws` draws
 * with the reference. */
static void check_stats(const owl_sampler_params *p, const float *logits, int nv, const int *hist, int n_hist,
                        int draws, const char *what) {
    double *want = malloc((size_t)nv * sizeof *want);
    ref_distribution(logits, nv, p, hist, n_hist, want);
    owl_sampler *s = make(p, nv);
    if (!s) {
        free(want);
        return;
    }
    for (int i = 0; i < n_hist; i++) owl_sampler_accept(s, hist[i]);
    int32_t *ids = malloc((size_t)nv * sizeof *ids);
    float *pr = malloc((size_t)nv * sizeof *pr);
    double *got = calloc((size_t)nv, sizeof *got);
    int n = owl_sampler_distribution(s, logits, ids, pr);
    for (int i = 0; i < n; i++) got[ids[i]] = pr[i];
    int bad = 0;
    for (int i = 0; i < nv; i++) {
        if ((want[i] > 0) != (got[i] > 0) || fabs(want[i] - got[i]) > 1e-5) {
            if (bad++ < 5) fprintf(stderr, "%s: id %d: distribution %.6f, reference %.6f\n", what, i, got[i], want[i]);
        }
    }
    CHECKF(bad == 0, "%s: %d ids differ from the reference distribution", what, bad);

    int *count = calloc((size_t)nv, sizeof *count);
    for (int d = 0; d < draws; d++) {
        int32_t t = owl_sampler_sample(s, logits);
        if (t < 0 || t >= nv) {
            CHECKF(0, "%s: draw returned %d", what, t);
            break;
        }
        count[t]++;
    }
    bad = 0;
    for (int i = 0; i < nv; i++) {
        double f = (double)count[i] / draws;
        double sd = sqrt(want[i] * (1 - want[i]) / draws);
        bool ok = want[i] == 0 ? count[i] == 0 : fabs(f - want[i]) <= 5 * sd + 1e-4;
        if (!ok && bad++ < 5) fprintf(stderr, "%s: id %d: frequency %.5f, expected %.5f\n", what, i, f, want[i]);
    }
    CHECKF(bad == 0, "%s: %d ids with frequencies off the expected distribution", what, bad);
    free(count);
    free(got);
    free(ids);
    free(pr);
    free(want);
    owl_sampler_free(s);
}

static void test_rng(void) {
    owl_rng a, b, c;
    owl_rng_seed(&a, 42);
    owl_rng_seed(&b, 42);
    owl_rng_seed(&c, 43);
    int same = 0, diff = 0;
    double mean = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t x = owl_rng_next(&a), y = owl_rng_next(&b), z = owl_rng_next(&c);
        same += x == y;
        diff += x != z;
        double u = (double)(x >> 11) * 0x1.0p-53;
        CHECK(u >= 0 && u < 1);
        mean += u;
    }
    CHECK(same == 100000);
    CHECK(diff > 99990);
    mean /= 100000;
    CHECKF(fabs(mean - 0.5) < 0.005, "mean of uniforms %f", mean);
}

static void test_greedy(void) {
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, NAN};
    owl_sampler_params p = params(0.0f, 40, 0.95f, 0.05f, 1);
    owl_sampler *s = make(&p, 6);
    if (!s) return;
    for (int i = 0; i < 10; i++) CHECK(owl_sampler_sample(s, l) == 1); /* tie 1 vs 3: lowest id */
    l[5] = INFINITY;
    CHECK(owl_sampler_sample(s, l) == 5);
    float nan6[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    CHECK(owl_sampler_sample(s, nan6) == -1);
    owl_sampler_free(s);
    p.temperature = -1.0f; /* negative is greedy too */
    s = make(&p, 6);
    if (!s) return;
    l[5] = NAN;
    CHECK(owl_sampler_sample(s, l) == 1);
    owl_sampler_free(s);
}

static void test_determinism(void) {
    enum { NV = 300, T = 500 };
    float l[NV];
    uint64_t st = 7;
    for (int i = 0; i < NV; i++) l[i] = 3.0f * test_rand_f32(&st);
    owl_sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 1234);
    owl_sampler *a = make(&p, NV), *b = make(&p, NV);
    p.seed = 1235;
    owl_sampler *c = make(&p, NV);
    if (!a || !b || !c) return;
    int same = 0, diff = 0;
    for (int i = 0; i < T; i++) {
        int32_t x = owl_sampler_sample(a, l), y = owl_sampler_sample(b, l), z = owl_sampler_sample(c, l);
        same += x == y;
        diff += x != z;
    }
    CHECKF(same == T, "same seed: %d of %d draws equal", same, T);
    CHECKF(diff > T / 2, "different seeds: only %d of %d draws differ", diff, T);
    owl_sampler_free(a);
    owl_sampler_free(b);
    owl_sampler_free(c);
}

static void test_top_k_1_is_greedy(void) {
    enum { NV = 1000 };
    float *l = malloc(NV * sizeof *l);
    uint64_t st = 99;
    owl_sampler_params pg = params(0.0f, 0, 1.0f, 0.0f, 5);
    owl_sampler_params pk = params(1.5f, 1, 1.0f, 0.0f, 5);
    owl_sampler *g = make(&pg, NV), *k = make(&pk, NV);
    if (!g || !k) return;
    int agree = 0;
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < NV; i++) l[i] = 4.0f * test_rand_f32(&st);
        if (t % 3 == 0) l[t] = l[t + 1] = 5.0f; /* a tie: lowest id wins both ways */
        agree += owl_sampler_sample(g, l) == owl_sampler_sample(k, l);
    }
    CHECKF(agree == 200, "top_k = 1 agreed with greedy %d of 200 times", agree);
    owl_sampler_free(g);
    owl_sampler_free(k);
    free(l);
}

static void test_kept_sets(void) {
    /* probabilities 0.5 0.3 0.15 0.05 at temperature 1 (ids permuted) */
    float l[5];
    l[3] = logf(0.5f);
    l[0] = logf(0.3f);
    l[4] = logf(0.15f);
    l[1] = logf(0.05f);
    l[2] = NAN;
    owl_sampler_params p;
    p = params(1.0f, 0, 0.79f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, 0, -1}, "top_p 0.79");
    p = params(1.0f, 0, 0.81f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, 0, 4, -1}, "top_p 0.81");
    p = params(1.0f, 0, 0.0f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, -1}, "top_p 0 keeps one");
    p = params(1.0f, 0, 0.3f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, -1}, "top_p 0.3");
    p = params(1.0f, 0, 1.0f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, 0, 4, 1, -1}, "no filter");
    p = params(1.0f, 0, 1.0f, 0.2f, 1); /* threshold 0.1 */
    check_set(&p, l, 5, (int[]){3, 0, 4, -1}, "min_p 0.2");
    p = params(1.0f, 0, 1.0f, 0.5f, 1); /* threshold 0.25 */
    check_set(&p, l, 5, (int[]){3, 0, -1}, "min_p 0.5");
    p = params(1.0f, 0, 1.0f, 0.9f, 1);
    check_set(&p, l, 5, (int[]){3, -1}, "min_p 0.9");
    p = params(1.0f, 2, 1.0f, 0.0f, 1);
    check_set(&p, l, 5, (int[]){3, 0, -1}, "top_k 2");
    p = params(1.0f, 3, 0.9f, 0.0f, 1); /* top-p after top-k renormalises: 0.5/0.95, 0.3/0.95 = 0.84 < 0.9 */
    check_set(&p, l, 5, (int[]){3, 0, 4, -1}, "top_k 3 + top_p 0.9");
    p = params(1.0f, 3, 0.8f, 0.0f, 1); /* 0.842 >= 0.8 */
    check_set(&p, l, 5, (int[]){3, 0, -1}, "top_k 3 + top_p 0.8");
    /* temperature 0.5 squares the ratios: 0.25 0.09 0.0225 0.0025 -> min_p 0.05 drops the last */
    p = params(0.5f, 0, 1.0f, 0.05f, 1);
    check_set(&p, l, 5, (int[]){3, 0, 4, -1}, "temperature 0.5 + min_p 0.05");
    p = params(0.5f, 0, 1.0f, 0.1f, 1);
    check_set(&p, l, 5, (int[]){3, 0, -1}, "temperature 0.5 + min_p 0.1");
}

static void test_penalty(void) {
    float l[4] = {2.0f, 1.9f, -1.0f, -1.1f};
    owl_sampler_params p = params(0.0f, 0, 1.0f, 0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    owl_sampler *s = make(&p, 4);
    if (!s) return;
    CHECK(owl_sampler_sample(s, l) == 0);
    owl_sampler_accept(s, 0);
    CHECK(owl_sampler_sample(s, l) == 1); /* 2.0 / 1.5 < 1.9 */
    owl_sampler_accept(s, 0);              /* repeated: still divided once */
    owl_sampler_accept(s, 0);
    CHECK(owl_sampler_sample(s, l) == 1);
    owl_sampler_accept(s, 2);
    owl_sampler_accept(s, 3);
    owl_sampler_accept(s, 2); /* 0 has left the window of 3 */
    CHECK(owl_sampler_sample(s, l) == 0);
    owl_sampler_accept(s, 99); /* out of range: ignored */
    owl_sampler_accept(s, -1);
    CHECK(owl_sampler_sample(s, l) == 0);
    owl_sampler_free(s);

    float neg[2] = {-1.0f, -1.2f};
    p.repeat_last_n = 64;
    s = make(&p, 2);
    if (!s) return;
    owl_sampler_accept(s, 0);
    CHECK(owl_sampler_sample(s, neg) == 1); /* -1.5 < -1.2 */
    owl_sampler_free(s);

    p.repeat_penalty = 1.0f; /* off */
    s = make(&p, 4);
    if (!s) return;
    owl_sampler_accept(s, 0);
    CHECK(owl_sampler_sample(s, l) == 0);
    owl_sampler_free(s);
}

static void test_statistics(void) {
    enum { NV = 64 };
    float l[NV];
    uint64_t st = 2024;
    for (int i = 0; i < NV; i++) l[i] = 2.5f * test_rand_f32(&st);
    l[10] = NAN;
    l[20] = -INFINITY;
    int hist[] = {5, 7, 5, 11, 30, 31, 32};
    struct {
        float t;
        int k;
        float top_p, min_p, pen;
        int last_n;
    } cases[] = {
        {1.0f, 0, 1.0f, 0.0f, 1.0f, 64},    {0.8f, 40, 0.95f, 0.05f, 1.0f, 64}, {1.3f, 10, 1.0f, 0.0f, 1.0f, 64},
        {0.7f, 0, 0.8f, 0.0f, 1.0f, 64},    {1.0f, 0, 1.0f, 0.2f, 1.0f, 64},    {2.0f, 20, 0.9f, 0.1f, 1.3f, 4},
        {0.5f, 0, 0.95f, 0.05f, 1.2f, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        owl_sampler_params p = params(cases[i].t, cases[i].k, cases[i].top_p, cases[i].min_p, 100 + i);
        p.repeat_penalty = cases[i].pen;
        p.repeat_last_n = cases[i].last_n;
        char what[128];
        snprintf(what, sizeof what, "case %zu (T %.2f k %d top_p %.2f min_p %.2f pen %.2f)", i, cases[i].t,
                 cases[i].k, cases[i].top_p, cases[i].min_p, cases[i].pen);
        check_stats(&p, l, NV, hist, (int)(sizeof hist / sizeof hist[0]), 30000, what);
    }
    /* a flat distribution over 1000 ids: top-p sorts in several chunks */
    enum { NB = 1000 };
    float *big = malloc(NB * sizeof *big);
    for (int i = 0; i < NB; i++) big[i] = 0.5f * test_rand_f32(&st);
    big[500] = big[501] = big[502]; /* ties */
    owl_sampler_params pb = params(1.0f, 0, 0.9f, 0.0f, 77);
    check_stats(&pb, big, NB, hist, 0, 10000, "flat 1000, top_p 0.9");
    pb = params(0.9f, 0, 0.5f, 0.02f, 78);
    check_stats(&pb, big, NB, hist, 0, 10000, "flat 1000, top_p 0.5, min_p 0.02");
    pb = params(1.0f, 300, 0.97f, 0.0f, 79);
    check_stats(&pb, big, NB, hist, 0, 10000, "flat 1000, top_k 300, top_p 0.97");
    free(big);

    /* +inf among finite logits: it takes all the mass */
    float inf[4] = {1.0f, INFINITY, 2.0f, NAN};
    owl_sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 3);
    owl_sampler *s = make(&p, 4);
    if (!s) return;
    int ok = 0;
    for (int i = 0; i < 1000; i++) ok += owl_sampler_sample(s, inf) == 1;
    CHECK(ok == 1000);
    float nan_only[4] = {NAN, 0.5f, NAN, -INFINITY};
    ok = 0;
    for (int i = 0; i < 1000; i++) ok += owl_sampler_sample(s, nan_only) == 1;
    CHECK(ok == 1000);
    float all_nan[4] = {NAN, NAN, NAN, -INFINITY};
    CHECK(owl_sampler_sample(s, all_nan) == -1);
    owl_sampler_free(s);
}

static void test_large_vocab(void) {
    enum { NV = 128256 };
    float *l = malloc(NV * sizeof *l);
    uint64_t st = 5;
    for (int i = 0; i < NV; i++) l[i] = 6.0f * test_rand_f32(&st);
    l[777] = 20.0f;
    owl_sampler_params ps[3] = {params(0.8f, 40, 0.95f, 0.05f, 9), params(0.8f, 0, 0.95f, 0.0f, 9),
                                params(1.0f, 0, 1.0f, 0.0f, 9)};
    for (int c = 0; c < 3; c++) {
        owl_sampler *s = make(&ps[c], NV);
        if (!s) break;
        double t0 = owl_time_ms();
        int valid = 0;
        for (int i = 0; i < 50; i++) {
            int32_t t = owl_sampler_sample(s, l);
            valid += t >= 0 && t < NV;
            owl_sampler_accept(s, t);
        }
        CHECK(valid == 50);
        fprintf(stderr, "vocab %d, config %d: %.3f ms per draw\n", NV, c, (owl_time_ms() - t0) / 50);
        owl_sampler_free(s);
    }
    free(l);
}

static void test_bad_params(void) {
    owl_sampler_params p = params(NAN, 40, 0.95f, 0.05f, 1);
    owl_sampler *s = NULL;
    CHECK(owl_sampler_new(&p, 10, &s) == OWL_ERR_ARG && s == NULL);
    CHECK(strstr(owl_last_error(), "temperature") != NULL);
    p = params(0.8f, 40, 0.95f, 0.05f, 1);
    CHECK(owl_sampler_new(&p, 0, &s) == OWL_ERR_ARG);
    p.repeat_penalty = 0.0f;
    CHECK(owl_sampler_new(&p, 10, &s) == OWL_ERR_ARG);
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = -2;
    CHECK(owl_sampler_new(&p, 10, &s) == OWL_ERR_ARG);
    p.repeat_last_n = 0;
    p.top_p = NAN;
    CHECK(owl_sampler_new(&p, 10, &s) == OWL_ERR_ARG);
    CHECK(s == NULL);
}

int main(void) {
    test_rng();
    test_greedy();
    test_determinism();
    test_top_k_1_is_greedy();
    test_kept_sets();
    test_penalty();
    test_statistics();
    test_large_vocab();
    test_bad_params();
    return test_finish("test_sampler");
}
