/* Q4_0, Q4_1, Q5_0, Q5_1: 32-element blocks with an fp16 scale (and for the
 * _1 types an fp16 offset m). Elements 0..15 sit in the low nibbles of
 * qs[0..15], elements 16..31 in the high nibbles; the 5-bit types keep bit 4
 * of element j in bit j of qh (a little-endian u32).
 *
 * The quantizers are the formats' reference round-to-nearest schemes: the
 * symmetric types map the value of largest magnitude (with its sign) to the
 * most negative level (-8 / -16), so d = max / -8 (or -16); the _1 types map
 * [min, max] onto [0, 15] (or [0, 31]). Levels are taken as
 * floor(x / d + offset + 0.5), clamped. */
#include "tensor/quant_internal.h"

#include <float.h>

/* The signed value of largest magnitude (the first one on ties). */
static float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *mn = lo;
    *mx = hi;
}

/* floor(v) for v >= 0 (truncation), clamped to [0, hi]; v may be slightly
 * negative from rounding, which truncates to 0. */
static inline int level(float v, int hi) {
    int q = (int)v;
    return q < 0 ? 0 : q > hi ? hi : q;
}

/* ---- Q4_0 ---- */

void owl_q4_0_quantize(const float *x, void *y, int64_t nb) {
    blk_q4_0 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float d = signed_absmax(x) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        for (int j = 0; j < 16; j++) {
            int lo = level(x[j] * id + 8.5f, 15), hi = level(x[j + 16] * id + 8.5f, 15);
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void owl_q4_0_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q4_0 *b = x;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = qi_h(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b[i].qs[j] & 15) - 8);
            y[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

float owl_q4_0_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += ((a[i].qs[j] & 15) - 8) * b[i].qs[j];
            isum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        }
        sum += (qi_h(a[i].d) * qi_h(b[i].d)) * (float)isum;
    }
    return sum;
}

/* ---- Q4_1 ---- */

void owl_q4_1_quantize(const float *x, void *y, int64_t nb) {
    blk_q4_1 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float mn, mx;
        min_max(x, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        qi_put_h(b[i].m, mn);
        for (int j = 0; j < 16; j++) {
            int lo = level((x[j] - mn) * id + 0.5f, 15), hi = level((x[j + 16] - mn) * id + 0.5f, 15);
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void owl_q4_1_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q4_1 *b = x;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = qi_h(b[i].d), m = qi_h(b[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(b[i].qs[j] & 15) + m;
            y[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}

float owl_q4_1_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q4_1 *a = w;
    const blk_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0, xsum = 0;
        for (int j = 0; j < 16; j++) {
            isum += (a[i].qs[j] & 15) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
            xsum += b[i].qs[j] + b[i].qs[j + 16];
        }
        float dx = qi_h(b[i].d);
        sum += (qi_h(a[i].d) * dx) * (float)isum + (qi_h(a[i].m) * dx) * (float)xsum;
    }
    return sum;
}

/* ---- Q5_0 ---- */

void owl_q5_0_quantize(const float *x, void *y, int64_t nb) {
    blk_q5_0 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float d = signed_absmax(x) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int lo = level(x[j] * id + 16.5f, 31), hi = level(x[j + 16] * id + 16.5f, 31);
            b[i].qs[j] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++) b[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void owl_q5_0_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q5_0 *b = x;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = qi_h(b[i].d);
        uint32_t qh = qi_u32(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
            int hi = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

float owl_q5_0_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q5_0 *a = w;
    const blk_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh = qi_u32(a[i].qh);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (a[i].qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
            int hi = (a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            isum += (lo - 16) * b[i].qs[j] + (hi - 16) * b[i].qs[j + 16];
        }
        sum += (qi_h(a[i].d) * qi_h(b[i].d)) * (float)isum;
    }
    return sum;
}

/* ---- Q5_1 ---- */

void owl_q5_1_quantize(const float *x, void *y, int64_t nb) {
    blk_q5_1 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float mn, mx;
        min_max(x, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        qi_put_h(b[i].m, mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int lo = level((x[j] - mn) * id + 0.5f, 31), hi = level((x[j + 16] - mn) * id + 0.5f, 31);
            b[i].qs[j] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++) b[i].qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

void owl_q5_1_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q5_1 *b = x;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = qi_h(b[i].d), m = qi_h(b[i].m);
        uint32_t qh = qi_u32(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
            int hi = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = d * (float)lo + m;
            y[j + 16] = d * (float)hi + m;
        }
    }
}

float owl_q5_1_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q5_1 *a = w;
    const blk_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh = qi_u32(a[i].qh);
        int isum = 0, xsum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (a[i].qs[j] & 15) | (int)(((qh >> j) & 1) << 4);
            int hi = (a[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            isum += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
            xsum += b[i].qs[j] + b[i].qs[j + 16];
        }
        float dx = qi_h(b[i].d);
        sum += (qi_h(a[i].d) * dx) * (float)isum + (qi_h(a[i].m) * dx) * (float)xsum;
    }
    return sum;
}
