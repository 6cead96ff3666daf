/* The optimiser of fine-tuning: AdamW (decoupled weight decay) with linear
 * warm-up then cosine decay, clipping by the global gradient norm; the
 * seeded generator and PEFT's initialisation of the pairs. Every sum runs
 * in a fixed order, so a run is the same bits for the same seed and
 * threads. */
#include "adapt/train_internal.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void owl_train_rng_seed(owl_train_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t owl_train_rng_next(owl_train_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double owl_train_rng_unit(owl_train_rng *r) { return (double)(owl_train_rng_next(r) >> 11) * 0x1.0p-53; }

void owl_train_init_pairs(owl_train *tr, owl_train_rng *rng) {
    for (int i = 0; i < tr->n_tensors; i++) {
        const owl_ttensor *t = &tr->tens[i];
        if (t->b) {
            memset(t->p, 0, sizeof(float) * t->n);
            continue;
        }
        const owl_tparam *tp = &tr->tp[t->l * OWL_PROJ_LAYER_COUNT + t->proj];
        const double bound = 1.0 / sqrt((double)tp->in);
        for (size_t j = 0; j < t->n; j++) t->p[j] = (float)((2.0 * owl_train_rng_unit(rng) - 1.0) * bound);
    }
}

double owl_adamw_lr(const owl_adamw *o, int64_t step) {
    if (o->warmup > 0 && step < o->warmup) return (double)o->lr * (double)(step + 1) / (double)o->warmup;
    const int64_t span = o->total - o->warmup;
    if (span <= 1) return o->lr;
    double prog = (double)(step - o->warmup) / (double)(span - 1);
    if (prog > 1) prog = 1;
    const double lo = (double)o->lr * o->min_lr_frac;
    return lo + 0.5 * ((double)o->lr - lo) * (1.0 + cos(M_PI * prog));
}

bool owl_train_params_finite(owl_train *tr) {
    for (int i = 0; i < tr->n_tensors; i++)
        for (size_t j = 0; j < tr->tens[i].n; j++)
            if (!isfinite(tr->tens[i].p[j])) return false;
    return true;
}

owl_status owl_adamw_step(owl_train *tr, const owl_adamw *o, int64_t step, float *m, float *v, double *grad_norm) {
    const float *g = tr->grad;
    double ss = 0;
    for (size_t i = 0; i < tr->n_param; i++) ss += (double)g[i] * g[i];
    const double norm = sqrt(ss);
    *grad_norm = norm;
    if (!isfinite(norm)) return owl_errorf(OWL_ERR_RANGE, "step %lld: the gradient norm is %g", (long long)step + 1, norm);
    const float clip = o->clip > 0 && norm > o->clip ? (float)(o->clip / norm) : 1.0f;
    const double lr = owl_adamw_lr(o, step);
    const double bc1 = 1.0 - pow(o->beta1, (double)(step + 1)), bc2 = 1.0 - pow(o->beta2, (double)(step + 1));
    const float b1 = o->beta1, b2 = o->beta2;
    for (int i = 0; i < tr->n_tensors; i++) {
        const owl_ttensor *t = &tr->tens[i];
        float *p = t->p, *mi = m + t->g_off, *vi = v + t->g_off;
        const float *gi = g + t->g_off;
        for (size_t j = 0; j < t->n; j++) {
            const float gj = gi[j] * clip;
            mi[j] = b1 * mi[j] + (1.0f - b1) * gj;
            vi[j] = b2 * vi[j] + (1.0f - b2) * gj * gj;
            const double mh = mi[j] / bc1, vh = vi[j] / bc2;
            p[j] = (float)(p[j] - lr * (mh / (sqrt(vh) + o->eps) + (double)o->weight_decay * p[j]));
        }
    }
    return OWL_OK;
}
