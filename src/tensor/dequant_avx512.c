/* AVX-512 dequantization of the K-quants to F32 (prompt processing turns
 * quantized weight rows into floats for the BF16/AMX and F32 GEMMs, see
 * gemm_amx.c): 16 levels at a time are widened from bytes to 32-bit lanes,
 * put together from their bit fields with shifts and masks (quant_k.c
 * documents where each element's bits sit) and scaled.
 *
 * Bit-exact with the scalar code of quant_k.c: the same float operations in
 * the same order, one rounding each, no fused multiply-add -
 *   Q2_K, Q4_K, Q5_K:  (d * sc) * q - (dmin * m)
 *   Q3_K, Q6_K:        (d * sc) * q
 * with d * sc and dmin * m computed once per group as the scalar code's
 * left-to-right evaluation does. quant_k.c calls these when the CPU has
 * AVX-512 (F and BW) and scalar code is not forced. */
#include "tensor/quant_internal.h"

#include <immintrin.h>

#define TDQ __attribute__((target("avx512f,avx512bw,avx512vl")))

/* 16 bytes at p widened to 32-bit lanes. */
static inline TDQ __m512i bytes16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

static inline TDQ __m512i shr(__m512i v, int n) { return _mm512_srl_epi32(v, _mm_cvtsi32_si128(n)); }

/* y[0..15] = (dl * q) - ml, q as floats */
static inline TDQ void store_asym(float *y, __m512i q, float dl, float ml) {
    __m512 v = _mm512_mul_ps(_mm512_set1_ps(dl), _mm512_cvtepi32_ps(q));
    _mm512_storeu_ps(y, _mm512_sub_ps(v, _mm512_set1_ps(ml)));
}

static inline TDQ void store_sym(float *y, __m512i q, float dl) {
    _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_set1_ps(dl), _mm512_cvtepi32_ps(q)));
}

static TDQ void dq_q4_k(const void *x, float *y, int64_t nb) {
    const blk_q4_k *b = x;
    const __m512i m4 = _mm512_set1_epi32(15);
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        owl_q4k_unpack_scales(b[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) { /* elements 64c.. : group 2c low nibbles, 2c+1 high */
            float dl0 = d * (float)sc[2 * c], ml0 = dmin * (float)mn[2 * c];
            float dl1 = d * (float)sc[2 * c + 1], ml1 = dmin * (float)mn[2 * c + 1];
            for (int h = 0; h < 2; h++) {
                __m512i v = bytes16(b[i].qs + 32 * c + 16 * h);
                store_asym(y + 64 * c + 16 * h, _mm512_and_si512(v, m4), dl0, ml0);
                store_asym(y + 64 * c + 32 + 16 * h, shr(v, 4), dl1, ml1);
            }
        }
    }
}

static TDQ void dq_q5_k(const void *x, float *y, int64_t nb) {
    const blk_q5_k *b = x;
    const __m512i m4 = _mm512_set1_epi32(15), one = _mm512_set1_epi32(1);
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        owl_q4k_unpack_scales(b[i].scales, sc, mn);
        for (int c = 0; c < 4; c++) {
            float dl0 = d * (float)sc[2 * c], ml0 = dmin * (float)mn[2 * c];
            float dl1 = d * (float)sc[2 * c + 1], ml1 = dmin * (float)mn[2 * c + 1];
            for (int h = 0; h < 2; h++) {
                __m512i v = bytes16(b[i].qs + 32 * c + 16 * h), hb = bytes16(b[i].qh + 16 * h);
                /* bit 4 of element e is bit e/32 of qh[e%32] */
                __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(shr(hb, 2 * c), one), 4);
                __m512i h1 = _mm512_slli_epi32(_mm512_and_si512(shr(hb, 2 * c + 1), one), 4);
                store_asym(y + 64 * c + 16 * h, _mm512_or_si512(_mm512_and_si512(v, m4), h0), dl0, ml0);
                store_asym(y + 64 * c + 32 + 16 * h, _mm512_or_si512(shr(v, 4), h1), dl1, ml1);
            }
        }
    }
}

static TDQ void dq_q6_k(const void *x, float *y, int64_t nb) {
    const blk_q6_k *b = x;
    const __m512i m4 = _mm512_set1_epi32(15), m2 = _mm512_set1_epi32(3), off = _mm512_set1_epi32(32);
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d);
        for (int n = 0; n < 2; n++) {
            for (int h = 0; h < 2; h++) {
                __m512i l0 = bytes16(b[i].ql + 64 * n + 16 * h), l1 = bytes16(b[i].ql + 64 * n + 32 + 16 * h);
                __m512i hb = bytes16(b[i].qh + 32 * n + 16 * h);
                for (int k = 0; k < 4; k++) { /* element 128n + 32k + 16h + l */
                    __m512i lo = _mm512_and_si512(shr((k & 1) ? l1 : l0, 4 * (k >> 1)), m4);
                    __m512i hi = _mm512_slli_epi32(_mm512_and_si512(shr(hb, 2 * k), m2), 4);
                    __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo, hi), off);
                    int g = 8 * n + 2 * k + h;
                    store_sym(y + 128 * n + 32 * k + 16 * h, q, d * (float)b[i].scales[g]);
                }
            }
        }
    }
}

static TDQ void dq_q3_k(const void *x, float *y, int64_t nb) {
    const blk_q3_k *b = x;
    const __m512i m2 = _mm512_set1_epi32(3), one = _mm512_set1_epi32(1), four = _mm512_set1_epi32(4);
    int8_t sc[16];
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d);
        owl_q3k_unpack_scales(b[i].scales, sc);
        for (int h = 0; h < 2; h++) {
            __m512i hm = bytes16(b[i].hmask + 16 * h);
            for (int n = 0; n < 2; n++) {
                __m512i v = bytes16(b[i].qs + 32 * n + 16 * h);
                for (int k = 0; k < 4; k++) { /* element 128n + 32k + 16h + l */
                    __m512i lo = _mm512_and_si512(shr(v, 2 * k), m2);
                    /* a clear high bit (bit e/32 of hmask[e%32]) subtracts 4 */
                    __m512i hbit = _mm512_and_si512(shr(hm, 4 * n + k), one);
                    __m512i q = _mm512_sub_epi32(lo, _mm512_mullo_epi32(_mm512_sub_epi32(one, hbit), four));
                    int e0 = 128 * n + 32 * k + 16 * h;
                    store_sym(y + e0, q, d * (float)sc[e0 / 16]);
                }
            }
        }
    }
}

static TDQ void dq_q2_k(const void *x, float *y, int64_t nb) {
    const blk_q2_k *b = x;
    const __m512i m2 = _mm512_set1_epi32(3);
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_h(b[i].d), dmin = qi_h(b[i].dmin);
        for (int n = 0; n < 2; n++) {
            for (int h = 0; h < 2; h++) {
                __m512i v = bytes16(b[i].qs + 32 * n + 16 * h);
                for (int k = 0; k < 4; k++) {
                    int e0 = 128 * n + 32 * k + 16 * h, s = b[i].scales[e0 / 16];
                    store_asym(y + e0, _mm512_and_si512(shr(v, 2 * k), m2), d * (float)(s & 15), dmin * (float)(s >> 4));
                }
            }
        }
    }
}

owl_qdequant_fn owl_qdequant_avx512(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl)) return NULL;
    switch (t) {
    case OWL_Q2_K: return dq_q2_k;
    case OWL_Q3_K: return dq_q3_k;
    case OWL_Q4_K: return dq_q4_k;
    case OWL_Q5_K: return dq_q5_k;
    case OWL_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}
