/* K-quants (256-element super-blocks): bit positions, scale packing,
 * dequantization and the reference dot products with Q8_K activations.
 *
 * Element e of a super-block (0..255) is stored as follows:
 *   Q2_K: 2 bits at shift 2*((e%128)/32) of qs[32*(e/128) + e%32];
 *         group g = e/16 has scale scales[g] & 15 and min scales[g] >> 4.
 *   Q3_K: low 2 bits as Q2_K; the high bit is bit (e/32) of hmask[e%32];
 *         a clear high bit subtracts 4, so q = low - 4*(1-h) in -4..3;
 *         group g = e/16 has a 6-bit scale (see q3k scales) minus 32.
 *   Q4_K: 4 bits at shift 4*((e%64)/32) of qs[32*(e/64) + e%32]; group
 *         s = e/32 has a 6-bit scale and a 6-bit min (see q4k scales).
 *   Q5_K: as Q4_K, plus bit 4 = bit (e/32) of qh[e%32].
 *   Q6_K: with n = e/128, k = (e%128)/32, l = e%32: low 4 bits at shift
 *         4*(k/2) of ql[64n + 32*(k%2) + l], high 2 bits at shift 2k of
 *         qh[32n + l]; q - 32; group g = e/16 scale scales[g] (int8). */
#include "tensor/quant_internal.h"

/* Q4_K / Q5_K: 8 scales and 8 mins of 6 bits in 12 bytes. Scale j < 4 is
 * the low 6 bits of s[j], min j < 4 the low 6 bits of s[j+4]; for j >= 4
 * the low 4 bits sit in the nibbles of s[j+4] (scale low, min high) and the
 * top 2 bits in bits 6..7 of s[j-4] (scale) and s[j] (min). */
void owl_q4k_unpack_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

void owl_q4k_pack_scales(uint8_t s[12], const uint8_t sc[8], const uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

/* Q3_K: 16 scales of 6 bits (stored biased by 32). Low 4 bits of scale
 * i < 8 are the low nibble of s[i], of scale i >= 8 the high nibble of
 * s[i-8]; the top 2 bits of scale i are at shift 2*(i/4) of s[8 + i%4]. */
void owl_q3k_unpack_scales(const uint8_t s[12], int8_t sc[16]) {
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 15) : (s[i - 8] >> 4);
        int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
        sc[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

void owl_q3k_pack_scales(uint8_t s[12], const int8_t sc[16]) {
    memset(s, 0, 12);
    for (int i = 0; i < 16; i++) {
        int v = sc[i] + 32;
        if (i < 8)
            s[i] |= (uint8_t)(v & 15);
        else
            s[i - 8] |= (uint8_t)((v & 15) << 4);
        s[8 + (i & 3)] |= (uint8_t)(((v >> 4) & 3) << (2 * (i >> 2)));
    }
}

/* ---- decoding a super-block into its integer levels ---- */

static void q2k_levels(const blk_q2_k *b, int8_t q[QKK]) {
    for (int e = 0; e < QKK; e++) q[e] = (int8_t)((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
}

static void q3k_levels(const blk_q3_k *b, int8_t q[QKK]) {
    for (int e = 0; e < QKK; e++) {
        int lo = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int h = (b->hmask[e % 32] >> (e / 32)) & 1;
        q[e] = (int8_t)(lo - (h ? 0 : 4));
    }
}

static void q4k_levels(const blk_q4_k *b, int8_t q[QKK]) {
    for (int e = 0; e < QKK; e++) q[e] = (int8_t)((b->qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 15);
}

static void q5k_levels(const blk_q5_k *b, int8_t q[QKK]) {
    for (int e = 0; e < QKK; e++) {
        int lo = (b->qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 15;
        q[e] = (int8_t)(lo | (((b->qh[e % 32] >> (e / 32)) & 1) << 4));
    }
}

static void q6k_levels(const blk_q6_k *b, int8_t q[QKK]) {
    for (int e = 0; e < QKK; e++) {
        int n = e / 128, k = (e % 128) / 32, l = e % 32;
        int lo = (b->ql[64 * n + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
        int hi = (b->qh[32 * n + l] >> (2 * k)) & 3;
        q[e] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* ---- dequantize ----
 * Each entry point hands the work to the AVX-512 version (dequant_avx512.c,
 * bit-identical) when the CPU has it and scalar code is not forced. */

static owl_qdequant_fn fast_dequant(owl_dtype t) { return owl_cpu_scalar_forced() ? NULL : owl_qdequant_avx512(t); }

void owl_q2_k_dequantize(const void *x, float *y, int64_t nb) {
    owl_qdequant_fn f = fast_dequant(OWL_Q2_K);
    if (f) {
        f(x, y, nb);
        return;
    }
    const blk_q2_k *b = x;
    int8_t q[QKK];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        q2k_levels(&b[i], q);
        for (int e = 0; e < QKK; e++) {
            int s = b[i].scales[e / 16];
            y[e] = d * (float)(s & 15) * (float)q[e] - dmin * (float)(s >> 4);
        }
    }
}

void owl_q3_k_dequantize(const void *x, float *y, int64_t nb) {
    owl_qdequant_fn f = fast_dequant(OWL_Q3_K);
    if (f) {
        f(x, y, nb);
        return;
    }
    const blk_q3_k *b = x;
    int8_t q[QKK], sc[16];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d);
        q3k_levels(&b[i], q);
        owl_q3k_unpack_scales(b[i].scales, sc);
        for (int e = 0; e < QKK; e++) y[e] = d * (float)sc[e / 16] * (float)q[e];
    }
}

void owl_q4_k_dequantize(const void *x, float *y, int64_t nb) {
    owl_qdequant_fn f = fast_dequant(OWL_Q4_K);
    if (f) {
        f(x, y, nb);
        return;
    }
    const blk_q4_k *b = x;
    int8_t q[QKK];
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        q4k_levels(&b[i], q);
        owl_q4k_unpack_scales(b[i].scales, sc, mn);
        for (int e = 0; e < QKK; e++) y[e] = d * (float)sc[e / 32] * (float)q[e] - dmin * (float)mn[e / 32];
    }
}

void owl_q5_k_dequantize(const void *x, float *y, int64_t nb) {
    owl_qdequant_fn f = fast_dequant(OWL_Q5_K);
    if (f) {
        f(x, y, nb);
        return;
    }
    const blk_q5_k *b = x;
    int8_t q[QKK];
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        q5k_levels(&b[i], q);
        owl_q4k_unpack_scales(b[i].scales, sc, mn);
        for (int e = 0; e < QKK; e++) y[e] = d * (float)sc[e / 32] * (float)q[e] - dmin * (float)mn[e / 32];
    }
}

void owl_q6_k_dequantize(const void *x, float *y, int64_t nb) {
    owl_qdequant_fn f = fast_dequant(OWL_Q6_K);
    if (f) {
        f(x, y, nb);
        return;
    }
    const blk_q6_k *b = x;
    int8_t q[QKK];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d);
        q6k_levels(&b[i], q);
        for (int e = 0; e < QKK; e++) y[e] = d * (float)b[i].scales[e / 16] * (float)q[e];
    }
}

/* ---- reference dots with Q8_K: integer sums per group, one float step
 * per super-block ---- */

/* sum over e in group [g*len, g*len+len) of q[e] * x[e] */
static int group_dot(const int8_t *q, const int8_t *x, int g, int len) {
    int s = 0;
    for (int e = g * len; e < g * len + len; e++) s += q[e] * x[e];
    return s;
}

float owl_q2_k_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q2_k *a = w;
    const blk_q8_k *b = x;
    int8_t q[QKK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q2k_levels(&a[i], q);
        int isum = 0, imin = 0;
        for (int g = 0; g < 16; g++) {
            isum += (a[i].scales[g] & 15) * group_dot(q, b[i].qs, g, 16);
            imin += (a[i].scales[g] >> 4) * qi_i16(b[i].bsums + 2 * g);
        }
        float dx = qi_f(b[i].d);
        sum += dx * (qi_h(a[i].d) * (float)isum - qi_h(a[i].dmin) * (float)imin);
    }
    return sum;
}

float owl_q3_k_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q3_k *a = w;
    const blk_q8_k *b = x;
    int8_t q[QKK], sc[16];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q3k_levels(&a[i], q);
        owl_q3k_unpack_scales(a[i].scales, sc);
        int isum = 0;
        for (int g = 0; g < 16; g++) isum += sc[g] * group_dot(q, b[i].qs, g, 16);
        sum += (qi_f(b[i].d) * qi_h(a[i].d)) * (float)isum;
    }
    return sum;
}

float owl_q4_k_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q4_k *a = w;
    const blk_q8_k *b = x;
    int8_t q[QKK];
    uint8_t sc[8], mn[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q4k_levels(&a[i], q);
        owl_q4k_unpack_scales(a[i].scales, sc, mn);
        int isum = 0, imin = 0;
        for (int s = 0; s < 8; s++) {
            isum += sc[s] * group_dot(q, b[i].qs, s, 32);
            imin += mn[s] * (qi_i16(b[i].bsums + 4 * s) + qi_i16(b[i].bsums + 4 * s + 2));
        }
        float dx = qi_f(b[i].d);
        sum += dx * (qi_h(a[i].d) * (float)isum - qi_h(a[i].dmin) * (float)imin);
    }
    return sum;
}

float owl_q5_k_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q5_k *a = w;
    const blk_q8_k *b = x;
    int8_t q[QKK];
    uint8_t sc[8], mn[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q5k_levels(&a[i], q);
        owl_q4k_unpack_scales(a[i].scales, sc, mn);
        int isum = 0, imin = 0;
        for (int s = 0; s < 8; s++) {
            isum += sc[s] * group_dot(q, b[i].qs, s, 32);
            imin += mn[s] * (qi_i16(b[i].bsums + 4 * s) + qi_i16(b[i].bsums + 4 * s + 2));
        }
        float dx = qi_f(b[i].d);
        sum += dx * (qi_h(a[i].d) * (float)isum - qi_h(a[i].dmin) * (float)imin);
    }
    return sum;
}

float owl_q6_k_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q6_k *a = w;
    const blk_q8_k *b = x;
    int8_t q[QKK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        q6k_levels(&a[i], q);
        int isum = 0;
        for (int g = 0; g < 16; g++) isum += a[i].scales[g] * group_dot(q, b[i].qs, g, 16);
        sum += (qi_f(b[i].d) * qi_h(a[i].d)) * (float)isum;
    }
    return sum;
}
