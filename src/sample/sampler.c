/* The sampler chain (see sample.h for the order and its semantics) and the
 * random number generator behind it. */
#include "sample/sample.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers: splitmix64 to seed, xoshiro256** to draw ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void owl_rng_seed(owl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t owl_rng_next(owl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double owl_rng_uniform(owl_rng *r) { return (double)(owl_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- the sampler ---- */

typedef struct cand {
    float logit; /* after the penalty */
    int32_t id;
    double p;
} cand;

struct owl_sampler {
    owl_sampler_params p;
    int n_vocab;
    owl_rng rng;
    int32_t *hist; /* ring of the last repeat_last_n accepted tokens */
    int hist_n, hist_head;
    float *work;     /* penalised logits, n_vocab */
    uint32_t *stamp; /* marks tokens already penalised in this call */
    uint32_t stamp_gen;
    cand *c; /* candidates, n_vocab */
};

void owl_sampler_defaults(owl_sampler_params *p) {
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0x6f776c; /* fixed; the CLI picks a random one unless told */
}

owl_status owl_sampler_new(const owl_sampler_params *p, int n_vocab, owl_sampler **out) {
    *out = NULL;
    if (!p) return owl_errorf(OWL_ERR_ARG, "sampler: no parameters given");
    if (n_vocab <= 0) return owl_errorf(OWL_ERR_ARG, "sampler: vocabulary size %d must be positive", n_vocab);
    if (isnan(p->temperature)) return owl_errorf(OWL_ERR_ARG, "sampler: temperature is NaN");
    if (isnan(p->top_p)) return owl_errorf(OWL_ERR_ARG, "sampler: top_p is NaN");
    if (isnan(p->min_p)) return owl_errorf(OWL_ERR_ARG, "sampler: min_p is NaN");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return owl_errorf(OWL_ERR_ARG, "sampler: repeat_penalty %g must be a positive number", (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return owl_errorf(OWL_ERR_ARG, "sampler: repeat_last_n %d must not be negative", p->repeat_last_n);
    owl_sampler *s = owl_calloc(1, sizeof *s);
    if (!s) return OWL_ERR_NOMEM;
    s->p = *p;
    s->n_vocab = n_vocab;
    owl_rng_seed(&s->rng, p->seed);
    s->work = owl_malloc((size_t)n_vocab * sizeof *s->work);
    s->stamp = owl_calloc((size_t)n_vocab, sizeof *s->stamp);
    s->c = owl_malloc((size_t)n_vocab * sizeof *s->c);
    if (p->repeat_last_n > 0) s->hist = owl_malloc((size_t)p->repeat_last_n * sizeof *s->hist);
    if (!s->work || !s->stamp || !s->c || (p->repeat_last_n > 0 && !s->hist)) {
        owl_sampler_free(s);
        return OWL_ERR_NOMEM;
    }
    *out = s;
    return OWL_OK;
}

void owl_sampler_free(owl_sampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->work);
    free(s->stamp);
    free(s->c);
    free(s);
}

void owl_sampler_accept(owl_sampler *s, int32_t token) {
    if (!s || token < 0 || token >= s->n_vocab || s->p.repeat_last_n <= 0) return;
    int cap = s->p.repeat_last_n;
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % cap;
    if (s->hist_n < cap) s->hist_n++;
}

/* a comes before b: larger logit first, lower id on ties. */
static inline bool before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (before(a, b)) return -1;
    if (before(b, a)) return 1;
    return 0;
}

/* Copies the logits into s->work (NaN -> -inf, +inf -> FLT_MAX) and applies
 * the repetition penalty once per distinct recent token. */
static void prepare(owl_sampler *s, const float *logits) {
    int n = s->n_vocab;
    float *w = s->work;
    for (int i = 0; i < n; i++) {
        float x = logits[i];
        if (isnan(x)) x = -INFINITY;
        else if (x == INFINITY) x = FLT_MAX;
        w[i] = x;
    }
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->hist_n == 0) return;
    if (++s->stamp_gen == 0) { /* wrapped: clear the marks */
        memset(s->stamp, 0, (size_t)n * sizeof *s->stamp);
        s->stamp_gen = 1;
    }
    for (int i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (s->stamp[t] == s->stamp_gen) continue;
        s->stamp[t] = s->stamp_gen;
        if (w[t] == -INFINITY) continue;
        w[t] = w[t] > 0.0f ? w[t] / pen : w[t] * pen;
    }
}

/* Sift down in a heap whose root is the WORST candidate (the one that comes
 * last in the order). */
static void heap_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[m], &h[l])) m = l;
        if (r < n && before(&h[m], &h[r])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Moves the k best of c[0..n) to c[0..k), sorted; the others stay in
 * c[k..n) in some order. */
static int select_top_k(cand *c, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
    for (int i = k; i < n; i++) {
        if (before(&c[i], &c[0])) {
            cand t = c[0]; /* swap: the rest stays in c[k..n) */
            c[0] = c[i];
            c[i] = t;
            heap_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
    return k;
}

/* Runs the chain up to the draw. Returns the number of candidates left in
 * s->c with unnormalised probabilities in .p (sum in *total); sorted in
 * the order of `before` when `sorted` or when a filter needed it. */
static int filter(owl_sampler *s, const float *logits, bool sorted, double *total) {
    prepare(s, logits);
    const float *w = s->work;
    int nv = s->n_vocab;
    cand *c = s->c;
    *total = 0.0;

    if (!(s->p.temperature > 0.0f)) {
        int best = -1;
        for (int i = 0; i < nv; i++)
            if (w[i] != -INFINITY && (best < 0 || w[i] > w[best])) best = i;
        if (best < 0) return 0;
        c[0] = (cand){w[best], best, 1.0};
        *total = 1.0;
        return 1;
    }

    int n = 0;
    for (int i = 0; i < nv; i++)
        if (w[i] != -INFINITY) c[n++] = (cand){w[i], i, 0.0};
    if (n == 0) return 0;

    bool is_sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        n = select_top_k(c, n, s->p.top_k);
        is_sorted = true;
    }

    /* softmax with temperature (unnormalised: the largest gets exp(0) = 1) */
    float max = c[0].logit;
    for (int i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double inv_t = 1.0 / (double)s->p.temperature;
    double sum = 0.0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        double p = exp(((double)c[i].logit - (double)max) * inv_t);
        if (p > 0.0) { /* underflowed tokens can never be drawn */
            c[m] = c[i];
            c[m++].p = p;
            sum += p;
        }
    }
    n = m; /* >= 1: the maximum has p = 1 */

    /* min-p: p >= min_p * p_max, p_max = 1 here; the maximum always stays */
    if (s->p.min_p > 0.0f) {
        double thr = (double)s->p.min_p;
        m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].p >= thr || c[i].logit == max) c[m++] = c[i];
        n = m;
    }

    /* top-p over the probabilities normalised before min-p. Unless top-k
     * sorted them already, the candidates are sorted in growing chunks
     * from the top, so a peaked distribution never sorts the whole vocab. */
    if (s->p.top_p < 1.0f) {
        double target = (double)s->p.top_p * sum, cum = 0.0;
        int done = 0, chunk = 128;
        while (done < n) {
            int k = n - done;
            if (is_sorted) {
                /* nothing to do */
            } else if (chunk < k) {
                k = select_top_k(c + done, n - done, chunk);
                chunk *= 4;
            } else {
                qsort(c + done, (size_t)k, sizeof *c, cmp_cand);
            }
            int i = done;
            for (; i < done + k; i++) {
                cum += c[i].p;
                if (cum >= target) break;
            }
            if (i < done + k) {
                n = i + 1;
                break;
            }
            done += k;
        }
        is_sorted = true;
    }
    if (sorted && !is_sorted) qsort(c, (size_t)n, sizeof *c, cmp_cand);

    double kept = 0.0;
    for (int i = 0; i < n; i++) kept += c[i].p;
    *total = kept;
    return n;
}

int owl_sampler_distribution(owl_sampler *s, const float *logits, int32_t *ids, float *probs) {
    double total;
    int n = filter(s, logits, true, &total);
    for (int i = 0; i < n; i++) {
        ids[i] = s->c[i].id;
        probs[i] = (float)(s->c[i].p / total);
    }
    return n;
}

int32_t owl_sampler_sample(owl_sampler *s, const float *logits) {
    double total;
    int n = filter(s, logits, false, &total);
    if (n == 0) return -1;
    if (n == 1) return s->c[0].id;
    double r = owl_rng_uniform(&s->rng) * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += s->c[i].p;
        if (r < cum) return s->c[i].id;
    }
    return s->c[n - 1].id;
}
