/* Per-token statistics of a language model against the text (negative
 * log-likelihood) and against a base model (KL divergence, top-1
 * agreement), and their running sums with standard errors. */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log(sum_i exp(x_i)) in double, and the first index of the largest x_i. */
static double logsumexp(const float *x, int n, int *argmax) {
    int am = 0;
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m || (isnan(m) && !isnan(x[i]))) {
            m = x[i];
            am = i;
        }
    *argmax = am;
    double s = 0.0, md = (double)m;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - md);
    return md + log(s);
}

void owl_eval_token_stats(const float *logits, const float *base_logits, int n_vocab, int32_t target,
                          owl_eval_token *out) {
    memset(out, 0, sizeof *out);
    if (n_vocab <= 0 || target < 0 || target >= n_vocab) {
        out->nll = out->base_nll = out->kl = NAN;
        return;
    }
    int am = 0;
    double lse = logsumexp(logits, n_vocab, &am);
    out->nll = lse - (double)logits[target];
    if (!base_logits) return;
    int bam = 0;
    double blse = logsumexp(base_logits, n_vocab, &bam);
    out->base_nll = blse - (double)base_logits[target];
    out->agree = am == bam;
    /* KL(base || model) = sum_i pb_i (log pb_i - log pm_i) */
    double kl = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        double lb = (double)base_logits[i] - blse;
        double lm = (double)logits[i] - lse;
        kl += exp(lb) * (lb - lm);
    }
    out->kl = kl;
}

void owl_eval_acc_push(owl_eval_acc *acc, const owl_eval_token *t) {
    acc->n++;
    acc->nll += t->nll;
    acc->nll2 += t->nll * t->nll;
    if (acc->has_base) {
        double d = t->nll - t->base_nll;
        acc->bnll += t->base_nll;
        acc->bnll2 += t->base_nll * t->base_nll;
        acc->dnll += d;
        acc->dnll2 += d * d;
        acc->kl += t->kl;
        acc->kl2 += t->kl * t->kl;
        acc->agree += t->agree ? 1 : 0;
    }
}

/* Mean of n values from their sum and sum of squares, and the standard error
 * of that mean: sqrt((E[x^2] - E[x]^2) / (n - 1)). */
static void mean_err(double sum, double sum2, uint64_t n, double *mean, double *err) {
    *mean = n ? sum / (double)n : NAN;
    *err = 0.0;
    if (n < 2) return;
    double var = sum2 / (double)n - *mean * *mean;
    *err = var > 0.0 ? sqrt(var / (double)(n - 1)) : 0.0;
}

void owl_eval_acc_result(const owl_eval_acc *acc, owl_eval_result *out) {
    memset(out, 0, sizeof *out);
    out->n = acc->n;
    double m, e;
    /* PPL = exp(mean nll); d PPL = PPL * d mean (delta method) */
    mean_err(acc->nll, acc->nll2, acc->n, &m, &e);
    out->ppl = exp(m);
    out->ppl_err = out->ppl * e;
    if (!acc->has_base) return;
    mean_err(acc->bnll, acc->bnll2, acc->n, &m, &e);
    out->base_ppl = exp(m);
    out->base_ppl_err = out->base_ppl * e;
    mean_err(acc->dnll, acc->dnll2, acc->n, &m, &e);
    out->ppl_ratio = exp(m);
    out->ppl_ratio_err = out->ppl_ratio * e;
    mean_err(acc->kl, acc->kl2, acc->n, &out->kl, &out->kl_err);
    out->agree = acc->n ? (double)acc->agree / (double)acc->n : NAN;
    out->agree_err = acc->n >= 2 ? sqrt(out->agree * (1.0 - out->agree) / (double)(acc->n - 1)) : 0.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double owl_eval_quantile(double *v, size_t n, double q) {
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    if (q <= 0) return v[0];
    if (q >= 1) return v[n - 1];
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double f = pos - (double)lo;
    return v[lo] + (v[hi] - v[lo]) * f;
}
