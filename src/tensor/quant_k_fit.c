/* K-quant quantizers. Each super-block is cut into groups of 16 or 32
 * values; each group gets its own scale (and min) found by a small search
 * that minimises the group's *weighted* error, then the group scales are
 * themselves quantized to 4, 6 or 8 bits against one fp16 super-block scale
 * (a few candidate super-block scales are tried, the one with the least
 * weighted error of the whole super-block wins), and finally every value
 * takes the level nearest to it under its group's quantized scale (trying
 * the neighbouring integer group scales too).
 *
 * Weights can make the large values of a group count more than the small
 * ones (without an importance matrix, a value's magnitude is the only hint
 * of how much its error matters to the model's output). Measured by the
 * mean KL divergence of the quantized wp test model to its F32 original
 * (scripts/quant_kl_table.sh, 16 windows of 256), that pays at 2 bits and
 * not above:
 *   Q2_K                    rms(16-group) + |x|: weights |x| with the error
 *                           as sum w*|e| gave 1.20x the KL, x^2 1.04x, no
 *                           weights 1.36x
 *   Q3_K                    none: x^2 gave 1.12x, rms + |x| 1.09x
 *   Q4_K, Q5_K, Q6_K        none: rms(32-group) + |x| for Q4_K gave 1.07x
 *                           (Q4_K_M mix), x^2 for Q6_K the same KL
 * The quantizers are deterministic: same input, same bytes. */
#include "tensor/quant_internal.h"

#include <float.h>

static inline float min_f(float a, float b) { return b < a ? b : a; }
static inline float max_f(float a, float b) { return b > a ? b : a; }
/* Nearest integer (ties to even) for |x| < 2^22 without a libm call:
 * adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits.
 * Levels and scales here are far below that; larger |x| (only from
 * non-finite or absurd inputs) are clamped first. */
static inline int nearest(float x) {
    x = x < -4194303.0f ? -4194303.0f : x > 4194303.0f ? 4194303.0f : x;
    float t = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- group fits ---- */

/* Weighted error of the group under scale s and min m (x ~= s*q - m), each
 * value at its nearest level: sum w*e^2, or sum w*|e| when mad. */
static float err_asym(int n, const float *x, const float *w, float s, float m, int nmax, bool mad) {
    float err = 0;
    float is = s > 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = qi_clamp(nearest((x[i] + m) * is), 0, nmax);
        float e = s * (float)q - m - x[i];
        err += w[i] * (mad ? fabsf(e) : e * e);
    }
    return err;
}

/* Weighted least squares x ~= s*l + b over levels l; the min must not be
 * negative (b <= 0) and the scale not either: refit with b = 0 if so.
 * Returns false when the levels do not determine a fit. */
static bool wls_asym(int n, const float *x, const float *w, const int *l, float *s, float *b) {
    double sw = 0, swl = 0, swll = 0, swx = 0, swlx = 0;
    for (int i = 0; i < n; i++) {
        double wi = w[i];
        sw += wi;
        swl += wi * l[i];
        swll += wi * l[i] * l[i];
        swx += wi * x[i];
        swlx += wi * l[i] * x[i];
    }
    double det = sw * swll - swl * swl;
    if (!(det > 0)) return false;
    double ss = (sw * swlx - swx * swl) / det, bb = (swll * swx - swl * swlx) / det;
    if (bb > 0 || ss < 0) {
        bb = 0;
        ss = swll > 0 ? fmax(0.0, swlx / swll) : 0.0;
    }
    *s = (float)ss;
    *b = (float)bb;
    return true;
}

typedef struct {
    int nmax;           /* levels 0..nmax */
    float rmin, rdelta; /* candidate inverse scales (nmax + rmin + rdelta*k) / range */
    int nstep;          /* k = 0..nstep */
    bool mad;           /* error as sum w*|e| instead of sum w*e^2 */
} asym_search;

/* x ~= s*q - m, q in [0, nmax], m >= 0: returns s, sets *m. */
static float fit_asym(int n, const float *x, const float *w, const asym_search *p, float *m) {
    float xmin = 0.0f, xmax = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        xmin = min_f(xmin, x[i]);
        xmax = max_f(xmax, x[i]);
    }
    if (!(xmax > xmin)) {
        *m = -xmin;
        return 0.0f;
    }
    int q[QKK];
    const int nmax = p->nmax;
    float best_s = (xmax - xmin) / (float)nmax, best_b = xmin;
    float best = err_asym(n, x, w, best_s, -best_b, nmax, p->mad);
    for (int k = 0; k <= p->nstep; k++) {
        float is = ((float)nmax + p->rmin + p->rdelta * (float)k) / (xmax - xmin);
        for (int i = 0; i < n; i++) q[i] = qi_clamp(nearest((x[i] - xmin) * is), 0, nmax);
        float s, b;
        if (!wls_asym(n, x, w, q, &s, &b)) continue;
        float e = err_asym(n, x, w, s, -b, nmax, p->mad);
        if (e < best) {
            best = e;
            best_s = s;
            best_b = b;
        }
    }
    for (int it = 0; it < 3 && best_s > 0; it++) { /* refit on the best levels */
        float is = 1.0f / best_s;
        for (int i = 0; i < n; i++) q[i] = qi_clamp(nearest((x[i] - best_b) * is), 0, nmax);
        float s, b;
        if (!wls_asym(n, x, w, q, &s, &b)) break;
        float e = err_asym(n, x, w, s, -b, nmax, p->mad);
        if (!(e < best)) break;
        best = e;
        best_s = s;
        best_b = b;
    }
    *m = -best_b;
    return best_s;
}

static float err_sym(int n, const float *x, const float *w, float s, int nneg, int npos) {
    float err = 0;
    float is = s != 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = qi_clamp(nearest(x[i] * is), -nneg, npos);
        float e = s * (float)q - x[i];
        err += w[i] * e * e;
    }
    return err;
}

/* x ~= s*q, q in [-nneg, npos]: returns s (may be negative). Candidates map
 * the value of largest magnitude near either end of the range; each is
 * scored by its weighted least-squares scale (error = sum w x^2 -
 * sqx^2 / sqq, so the largest sqx^2 / sqq wins), then refit on the levels
 * of the best. */
static float fit_sym(int n, const float *x, const float *w, int nneg, int npos, int nstep) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0.0f) return 0.0f;
    float best_s = -max / (float)nneg;
    double best_score = -1.0;
    for (int side = 0; side < 2; side++) {
        for (int k = -nstep; k <= nstep; k++) {
            /* side 0 maps max to the negative end, side 1 to the positive */
            float is = side == 0 ? -((float)nneg + 0.1f * (float)k) / max : ((float)npos + 0.1f * (float)k) / max;
            double sqx = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                int q = qi_clamp(nearest(x[i] * is), -nneg, npos);
                sqx += (double)w[i] * q * x[i];
                sqq += (double)w[i] * q * q;
            }
            if (sqq <= 0) continue;
            double score = sqx * sqx / sqq;
            if (score > best_score) {
                best_score = score;
                best_s = (float)(sqx / sqq);
            }
        }
    }
    float best = err_sym(n, x, w, best_s, nneg, npos);
    for (int it = 0; it < 3 && best_s != 0; it++) {
        double sqx = 0, sqq = 0;
        float is = 1.0f / best_s;
        for (int i = 0; i < n; i++) {
            int q = qi_clamp(nearest(x[i] * is), -nneg, npos);
            sqx += (double)w[i] * q * x[i];
            sqq += (double)w[i] * q * q;
        }
        if (sqq <= 0) break;
        float s = (float)(sqx / sqq);
        float e = err_sym(n, x, w, s, nneg, npos);
        if (!(e < best)) break;
        best = e;
        best_s = s;
    }
    return best_s;
}

/* ---- quantized group scales ---- */

/* Picks integer scale and min near s/d, m/dm that give the least weighted
 * error for the group, with d and dm the stored (fp16) bases; returns it. */
static float pick_asym(int n, const float *x, const float *w, int nmax, bool mad, float s, float m, float d, float dm,
                       int smax, int *isc, int *imn) {
    int r0 = d > 0 ? qi_clamp(nearest(s / d), 0, smax) : 0;
    int m0 = dm > 0 ? qi_clamp(nearest(m / dm), 0, smax) : 0;
    float best = FLT_MAX;
    *isc = r0;
    *imn = m0;
    for (int a = r0 - 1; a <= r0 + 1; a++) {
        if (a < 0 || a > smax) continue;
        for (int c = m0 - 1; c <= m0 + 1; c++) {
            if (c < 0 || c > smax) continue;
            float e = err_asym(n, x, w, d * (float)a, dm * (float)c, nmax, mad);
            if (e < best) {
                best = e;
                *isc = a;
                *imn = c;
            }
        }
    }
    return best;
}

static float pick_sym(int n, const float *x, const float *w, int nneg, int npos, float s, float d, int lo, int hi,
                      int *r) {
    if (d == 0) {
        *r = 0;
        return err_sym(n, x, w, 0, nneg, npos);
    }
    int r0 = qi_clamp(nearest(s / d), lo, hi);
    float best = FLT_MAX;
    *r = r0;
    for (int a = r0 - 1; a <= r0 + 1; a++) {
        if (a < lo || a > hi) continue;
        float e = err_sym(n, x, w, d * (float)a, nneg, npos);
        if (e < best) {
            best = e;
            *r = a;
        }
    }
    return best;
}

static inline int level_asym(float x, float s, float m, int nmax) {
    return s > 0 ? qi_clamp(nearest((x + m) / s), 0, nmax) : 0;
}
static inline int level_sym(float x, float s, int nneg, int npos) {
    return s != 0 ? qi_clamp(nearest(x / s), -nneg, npos) : 0;
}

/* An asymmetric super-block: ng groups of gl values, group scales and mins
 * quantized to 0..smax against fp16 bases d and dm. The bases are chosen
 * among max/smax and a few nearby values (each rounded to fp16) by the
 * least weighted error of the whole super-block: first d with dm at its
 * plain value, then dm. Fills d16 / dm16, sc[] and mn[]. */
#define N_BASE 5
static const float BASE_STEPS[N_BASE] = {0.0f, -0.5f, 0.5f, -1.0f, 1.0f};

typedef struct {
    int ng, gl, smax;
    asym_search fit;
} asym_block;

static float asym_block_err(const asym_block *p, const float *x, const float *w, const float *s, const float *m,
                            float d, float dm, uint8_t *sc, uint8_t *mn) {
    float tot = 0;
    for (int g = 0; g < p->ng; g++) {
        int a, c;
        tot += pick_asym(p->gl, x + p->gl * g, w + p->gl * g, p->fit.nmax, p->fit.mad, s[g], m[g], d, dm, p->smax, &a, &c);
        sc[g] = (uint8_t)a;
        mn[g] = (uint8_t)c;
    }
    return tot;
}

static float fp16_round(float v) { return owl_f16_to_f32(owl_f32_to_f16(v)); }

static void quant_asym_block(const asym_block *p, const float *x, const float *w, uint8_t d16[2], uint8_t dm16[2],
                             uint8_t *sc, uint8_t *mn) {
    float s[16] = {0}, m[16] = {0};
    float smx = 0, mmx = 0;
    for (int g = 0; g < p->ng; g++) {
        s[g] = fit_asym(p->gl, x + p->gl * g, w + p->gl * g, &p->fit, &m[g]);
        smx = max_f(smx, s[g]);
        mmx = max_f(mmx, m[g]);
    }
    uint8_t tsc[16], tmn[16];
    float best_d = fp16_round(smx / (float)p->smax), best_dm = fp16_round(mmx / (float)p->smax);
    float best = asym_block_err(p, x, w, s, m, best_d, best_dm, sc, mn);
    for (int pass = 0; pass < 2; pass++) {
        float mx = pass == 0 ? smx : mmx;
        if (!(mx > 0)) continue;
        float d0 = best_d, dm0 = best_dm;
        for (int k = 1; k < N_BASE; k++) {
            float v = fp16_round(mx / ((float)p->smax + BASE_STEPS[k]));
            float d = pass == 0 ? v : d0, dm = pass == 0 ? dm0 : v;
            float e = asym_block_err(p, x, w, s, m, d, dm, tsc, tmn);
            if (e < best) {
                best = e;
                best_d = d;
                best_dm = dm;
                memcpy(sc, tsc, (size_t)p->ng);
                memcpy(mn, tmn, (size_t)p->ng);
            }
        }
    }
    qi_put_h(d16, best_d);
    qi_put_h(dm16, best_dm);
}

/* A symmetric super-block: 16 groups of 16, signed group scales in lo..hi
 * against one fp16 base d = (the group scale of largest magnitude) / lo,
 * or a few nearby values, by the least weighted error. */
typedef struct {
    int nneg, npos, lo, hi, nstep;
} sym_block;

static void quant_sym_block(const sym_block *p, const float *x, const float *w, uint8_t d16[2], int sc[16]) {
    float s[16], amax = 0, max = 0;
    for (int g = 0; g < 16; g++) {
        s[g] = fit_sym(16, x + 16 * g, w + 16 * g, p->nneg, p->npos, p->nstep);
        if (fabsf(s[g]) > amax) {
            amax = fabsf(s[g]);
            max = s[g];
        }
    }
    float best = FLT_MAX, best_d = 0;
    int t[16];
    for (int k = 0; k < N_BASE; k++) {
        float d = fp16_round(max / ((float)p->lo - BASE_STEPS[k])); /* lo < 0 */
        float e = 0;
        for (int g = 0; g < 16; g++) e += pick_sym(16, x + 16 * g, w + 16 * g, p->nneg, p->npos, s[g], d, p->lo, p->hi, &t[g]);
        if (e < best || k == 0) {
            best = e;
            best_d = d;
            memcpy(sc, t, sizeof t);
        }
        if (max == 0) break;
    }
    qi_put_h(d16, best_d);
}

/* ---- per-type quantizers ---- */

/* weights rms(group) + |x| over groups of gl */
static void weights_rms_abs(const float *x, float *w, int gl) {
    for (int g = 0; g < QKK; g += gl) {
        float sx2 = 0;
        for (int i = 0; i < gl; i++) sx2 += x[g + i] * x[g + i];
        float av = sqrtf(sx2 / (float)gl);
        for (int i = 0; i < gl; i++) w[g + i] = av + fabsf(x[g + i]);
    }
}

static const asym_block Q4K = {8, 32, 63, {15, -1.0f, 0.1f, 20, false}};
static const asym_block Q5K = {8, 32, 63, {31, -0.5f, 0.1f, 15, false}};
static const asym_block Q2K = {16, 16, 15, {3, -0.5f, 0.1f, 15, false}};
static const sym_block Q3K = {4, 3, -32, 31, 10};
static const sym_block Q6K = {32, 31, -128, 127, 10};

/* Shared by Q4_K and Q5_K: 8 groups of 32, 6-bit scales and mins. Fills
 * the header fields and the levels q[256] in 0..nmax. */
static void fit_q45k(const asym_block *p, const float *x, uint8_t d16[2], uint8_t dmin16[2], uint8_t scales[12],
                     int q[QKK]) {
    float w[QKK];
    for (int i = 0; i < QKK; i++) w[i] = 1.0f;
    uint8_t sc[8], mn[8];
    quant_asym_block(p, x, w, d16, dmin16, sc, mn);
    float d = qi_h(d16), dm = qi_h(dmin16);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 32; i++)
            q[32 * j + i] = level_asym(x[32 * j + i], d * (float)sc[j], dm * (float)mn[j], p->fit.nmax);
    owl_q4k_pack_scales(scales, sc, mn);
}

void owl_q4_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q4_k *b = y;
    int q[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        fit_q45k(&Q4K, x, b[i].d, b[i].dmin, b[i].scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
}

void owl_q5_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q5_k *b = y;
    int q[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        fit_q45k(&Q5K, x, b[i].d, b[i].dmin, b[i].scales, q);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)((q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4));
        for (int e = 0; e < QKK; e++) b[i].qh[e % 32] |= (uint8_t)(((q[e] >> 4) & 1) << (e / 32));
    }
}

void owl_q2_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q2_k *b = y;
    float w[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        weights_rms_abs(x, w, 16);
        uint8_t sc[16], mn[16];
        quant_asym_block(&Q2K, x, w, b[i].d, b[i].dmin, sc, mn);
        float d = qi_h(b[i].d), dm = qi_h(b[i].dmin);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int g = 0; g < 16; g++) {
            b[i].scales[g] = (uint8_t)(sc[g] | (mn[g] << 4));
            for (int k = 0; k < 16; k++) {
                int e = 16 * g + k;
                int q = level_asym(x[e], d * (float)sc[g], dm * (float)mn[g], 3);
                b[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
            }
        }
    }
}

void owl_q3_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q3_k *b = y;
    float w[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        for (int e = 0; e < QKK; e++) w[e] = 1.0f;
        int isc[16];
        quant_sym_block(&Q3K, x, w, b[i].d, isc);
        float d = qi_h(b[i].d);
        int8_t sc[16];
        memset(b[i].qs, 0, sizeof b[i].qs);
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int g = 0; g < 16; g++) {
            sc[g] = (int8_t)isc[g];
            for (int k = 0; k < 16; k++) {
                int e = 16 * g + k;
                int v = level_sym(x[e], d * (float)sc[g], 4, 3) + 4;
                b[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)((v & 3) << (2 * ((e % 128) / 32)));
                b[i].hmask[e % 32] |= (uint8_t)((v >> 2) << (e / 32));
            }
        }
        owl_q3k_pack_scales(b[i].scales, sc);
    }
}

void owl_q6_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q6_k *b = y;
    float w[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        for (int e = 0; e < QKK; e++) w[e] = 1.0f;
        int isc[16];
        quant_sym_block(&Q6K, x, w, b[i].d, isc);
        float d = qi_h(b[i].d);
        memset(b[i].ql, 0, sizeof b[i].ql);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int g = 0; g < 16; g++) {
            b[i].scales[g] = (int8_t)isc[g];
            for (int k = 0; k < 16; k++) {
                int e = 16 * g + k;
                int v = level_sym(x[e], d * (float)isc[g], 32, 31) + 32;
                int n = e / 128, kk = (e % 128) / 32, l = e % 32;
                b[i].ql[64 * n + 32 * (kk & 1) + l] |= (uint8_t)((v & 15) << (4 * (kk >> 1)));
                b[i].qh[32 * n + l] |= (uint8_t)((v >> 4) << (2 * kk));
            }
        }
    }
}
