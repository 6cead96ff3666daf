/* K-quant quantizers. Each super-block is cut into groups of 16 or 32
 * values; each group gets its own scale (and min) found by a small search
 * that minimises the squared error of the group, then the group scales are
 * themselves quantized to 4, 6 or 8 bits against one fp16 super-block scale,
 * and finally every value takes the level nearest to it under its group's
 * quantized scale (trying the neighbouring integer group scales too). */
#include "tensor/quant_internal.h"

#include <float.h>

/* Nearest integer (ties to even) for |x| < 2^22 without a libm call:
 * adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits.
 * Levels and scales here are far below that; larger |x| (only from
 * non-finite or absurd inputs) are clamped first. */
static inline float min_f(float a, float b) { return b < a ? b : a; }
static inline float max_f(float a, float b) { return b > a ? b : a; }
static inline int nearest(float x) {
    x = x < -4194303.0f ? -4194303.0f : x > 4194303.0f ? 4194303.0f : x;
    float t = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Least-squares x ~= s*q + b over a group; with b forced to 0 if it would be
 * positive (the formats store a non-negative min that is subtracted). */
static void ls_fit(int n, const float *x, const int *q, float *s, float *b) {
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
        sq += q[i];
        sqq += (double)q[i] * q[i];
        sx += x[i];
        sqx += (double)q[i] * x[i];
    }
    double det = n * sqq - sq * sq;
    double ss = 0, bb = 0;
    if (det > 0) {
        ss = (n * sqx - sq * sx) / det;
        bb = (sqq * sx - sq * sqx) / det;
    }
    if (det <= 0 || bb > 0 || ss < 0) {
        bb = fmin(0.0, sx / n);
        ss = 0;
        double sqb = 0;
        for (int i = 0; i < n; i++) sqb += (double)q[i] * (x[i] - bb);
        if (sqq > 0) ss = fmax(0.0, sqb / sqq);
    }
    *s = (float)ss;
    *b = (float)bb;
}

/* Squared error of the group under scale s and min m (x ~= s*q - m). */
static float err_asym(int n, const float *x, float s, float m, int nmax) {
    float err = 0;
    float is = s > 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = qi_clamp(nearest((x[i] + m) * is), 0, nmax);
        float e = s * (float)q - m - x[i];
        err += e * e;
    }
    return err;
}

float owl_qfit_asym(int n, const float *x, int nmax, float *m) {
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
    float best_s = (xmax - xmin) / (float)nmax, best_b = xmin;
    float best = err_asym(n, x, best_s, -best_b, nmax);
    /* Candidate level assignments from a range of inverse scales; each is
     * scored by the error of its least-squares fit, from the sums alone:
     * sum (s*q + b - x)^2 expanded. */
    float sx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        sx += x[i];
        sxx += x[i] * x[i];
    }
    for (int k = -10; k <= 15; k++) {
        float is = ((float)nmax + 0.1f * (float)k) / (xmax - xmin);
        int isq = 0, isqq = 0;
        float px[4] = {0, 0, 0, 0}; /* four partial sums (n is a multiple of 4), added in a fixed order */
        for (int i = 0; i < n; i++) {
            int l = qi_clamp(nearest((x[i] - xmin) * is), 0, nmax);
            q[i] = l;
            isq += l;
            isqq += l * l;
            px[i & 3] += (float)l * x[i];
        }
        float sq = (float)isq, sqq = (float)isqq, sqx = (px[0] + px[1]) + (px[2] + px[3]);
        float det = (float)n * sqq - sq * sq, s, b;
        if (!(det > 0)) continue;
        s = ((float)n * sqx - sq * sx) / det;
        b = (sqq * sx - sq * sqx) / det;
        if (b > 0 || s < 0) { /* the min must not be negative: refit with b = 0 */
            b = 0;
            s = sqq > 0 ? max_f(0.0f, sqx / sqq) : 0.0f;
        }
        float e = sxx - 2 * s * sqx - 2 * b * sx + s * s * sqq + 2 * s * b * sq + (float)n * b * b;
        if (e < best) {
            best = e;
            best_s = s;
            best_b = b;
        }
    }
    best = err_asym(n, x, best_s, -best_b, nmax);
    for (int it = 0; it < 2 && best_s > 0; it++) { /* refit on the best levels */
        for (int i = 0; i < n; i++) q[i] = qi_clamp(nearest((x[i] - best_b) / best_s), 0, nmax);
        float s, b;
        ls_fit(n, x, q, &s, &b);
        float e = err_asym(n, x, s, -b, nmax);
        if (!(e < best)) break;
        best = e;
        best_s = s;
        best_b = b;
    }
    *m = -best_b;
    return best_s;
}

static float err_sym(int n, const float *x, float s, int nneg, int npos) {
    float err = 0;
    float is = s != 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) {
        int q = qi_clamp(nearest(x[i] * is), -nneg, npos);
        float e = s * (float)q - x[i];
        err += e * e;
    }
    return err;
}

float owl_qfit_sym(int n, const float *x, int nneg, int npos) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0.0f) return 0.0f;
    float best_s = -max / (float)nneg;
    /* each candidate scored by its least-squares scale: error = sum x^2 -
     * sqx^2 / sqq, so the largest sqx^2 / sqq wins */
    float best_score = -1.0f;
    for (int side = 0; side < 2; side++) {
        for (int k = -10; k <= 10; k++) {
            /* side 0 maps max to the negative end, side 1 to the positive */
            float is = side == 0 ? -((float)nneg + 0.1f * (float)k) / max : ((float)npos + 0.1f * (float)k) / max;
            float px[4] = {0, 0, 0, 0};
            int isqq = 0;
            for (int i = 0; i < n; i++) {
                int q = qi_clamp(nearest(x[i] * is), -nneg, npos);
                px[i & 3] += (float)q * x[i];
                isqq += q * q;
            }
            float sqx = (px[0] + px[1]) + (px[2] + px[3]), sqq = (float)isqq;
            if (sqq <= 0) continue;
            float score = sqx * sqx / sqq;
            if (score > best_score) {
                best_score = score;
                best_s = sqx / sqq;
            }
        }
    }
    return best_s;
}

/* ---- per-type quantizers ---- */

/* Quantizes group scales s[] (>= 0) to integers 0..smax against d = max/smax. */
static float scale_base(const float *s, int n, int smax) {
    float mx = 0;
    for (int i = 0; i < n; i++) mx = max_f(mx, s[i]);
    return mx / (float)smax;
}

/* Picks integer scale and min near s/d, m/dm that give the least error
 * for the group, with d and dm the stored (fp16) bases. */
static void pick_asym(int n, const float *x, int nmax, float s, float m, float d, float dm, int smax,
                      int *isc, int *imn) {
    int r0 = d > 0 ? qi_clamp(nearest(s / d), 0, smax) : 0;
    int m0 = dm > 0 ? qi_clamp(nearest(m / dm), 0, smax) : 0;
    float best = FLT_MAX;
    *isc = r0;
    *imn = m0;
    for (int a = r0 - 1; a <= r0 + 1; a++) {
        if (a < 0 || a > smax) continue;
        for (int c = m0 - 1; c <= m0 + 1; c++) {
            if (c < 0 || c > smax) continue;
            float e = err_asym(n, x, d * (float)a, dm * (float)c, nmax);
            if (e < best) {
                best = e;
                *isc = a;
                *imn = c;
            }
        }
    }
}

static int pick_sym(int n, const float *x, int nneg, int npos, float s, float d, int lo, int hi) {
    if (d == 0) return 0;
    int r0 = qi_clamp(nearest(s / d), lo, hi);
    int best_r = r0;
    float best = FLT_MAX;
    for (int a = r0 - 1; a <= r0 + 1; a++) {
        if (a < lo || a > hi) continue;
        float e = err_sym(n, x, d * (float)a, nneg, npos);
        if (e < best) {
            best = e;
            best_r = a;
        }
    }
    return best_r;
}

static inline int level_asym(float x, float s, float m, int nmax) {
    return s > 0 ? qi_clamp(nearest((x + m) / s), 0, nmax) : 0;
}
static inline int level_sym(float x, float s, int nneg, int npos) {
    return s != 0 ? qi_clamp(nearest(x / s), -nneg, npos) : 0;
}

/* Shared by Q4_K and Q5_K: 8 groups of 32, 6-bit scales and mins. Fills
 * the header fields and the levels q[256] in 0..nmax. */
static void fit_q45k(const float *x, int nmax, uint8_t d16[2], uint8_t dmin16[2], uint8_t scales[12], int q[QKK]) {
    float s[8], m[8];
    for (int j = 0; j < 8; j++) s[j] = owl_qfit_asym(32, x + 32 * j, nmax, &m[j]);
    qi_put_h(d16, scale_base(s, 8, 63));
    qi_put_h(dmin16, scale_base(m, 8, 63));
    float d = qi_h(d16), dm = qi_h(dmin16);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        int a, c;
        pick_asym(32, x + 32 * j, nmax, s[j], m[j], d, dm, 63, &a, &c);
        sc[j] = (uint8_t)a;
        mn[j] = (uint8_t)c;
        for (int i = 0; i < 32; i++) q[32 * j + i] = level_asym(x[32 * j + i], d * (float)a, dm * (float)c, nmax);
    }
    owl_q4k_pack_scales(scales, sc, mn);
}

void owl_q4_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q4_k *b = y;
    int q[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        fit_q45k(x, 15, b[i].d, b[i].dmin, b[i].scales, q);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
    }
}

void owl_q5_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q5_k *b = y;
    int q[QKK];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        fit_q45k(x, 31, b[i].d, b[i].dmin, b[i].scales, q);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)((q[64 * c + l] & 15) | ((q[64 * c + 32 + l] & 15) << 4));
        for (int e = 0; e < QKK; e++) b[i].qh[e % 32] |= (uint8_t)(((q[e] >> 4) & 1) << (e / 32));
    }
}

void owl_q2_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q2_k *b = y;
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float s[16], m[16];
        for (int g = 0; g < 16; g++) s[g] = owl_qfit_asym(16, x + 16 * g, 3, &m[g]);
        qi_put_h(b[i].d, scale_base(s, 16, 15));
        qi_put_h(b[i].dmin, scale_base(m, 16, 15));
        float d = qi_h(b[i].d), dm = qi_h(b[i].dmin);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int g = 0; g < 16; g++) {
            int a, c;
            pick_asym(16, x + 16 * g, 3, s[g], m[g], d, dm, 15, &a, &c);
            b[i].scales[g] = (uint8_t)(a | (c << 4));
            for (int k = 0; k < 16; k++) {
                int e = 16 * g + k;
                int q = level_asym(x[e], d * (float)a, dm * (float)c, 3);
                b[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
            }
        }
    }
}

/* The group scale of largest magnitude, with its sign. */
static float signed_max(const float *s, int n) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(s[i]) > amax) {
            amax = fabsf(s[i]);
            max = s[i];
        }
    }
    return max;
}

void owl_q3_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q3_k *b = y;
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float s[16];
        for (int g = 0; g < 16; g++) s[g] = owl_qfit_sym(16, x + 16 * g, 4, 3);
        qi_put_h(b[i].d, signed_max(s, 16) / -32.0f);
        float d = qi_h(b[i].d);
        int8_t sc[16];
        memset(b[i].qs, 0, sizeof b[i].qs);
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int g = 0; g < 16; g++) {
            sc[g] = (int8_t)pick_sym(16, x + 16 * g, 4, 3, s[g], d, -32, 31);
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
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float s[16];
        for (int g = 0; g < 16; g++) s[g] = owl_qfit_sym(16, x + 16 * g, 32, 31);
        qi_put_h(b[i].d, signed_max(s, 16) / -128.0f);
        float d = qi_h(b[i].d);
        memset(b[i].ql, 0, sizeof b[i].ql);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int g = 0; g < 16; g++) {
            int a = pick_sym(16, x + 16 * g, 32, 31, s[g], d, -128, 127);
            b[i].scales[g] = (int8_t)a;
            for (int k = 0; k < 16; k++) {
                int e = 16 * g + k;
                int v = level_sym(x[e], d * (float)a, 32, 31) + 32;
                int n = e / 128, kk = (e % 128) / 32, l = e % 32;
                b[i].ql[64 * n + 32 * (kk & 1) + l] |= (uint8_t)((v & 15) << (4 * (kk >> 1)));
                b[i].qh[32 * n + l] |= (uint8_t)((v >> 4) << (2 * kk));
            }
        }
    }
}
