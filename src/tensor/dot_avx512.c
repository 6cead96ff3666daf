/* AVX-512 dot products of F32 / F16 / BF16 rows with float rows. F16 is
 * widened with vcvtph2ps, BF16 with a 16-bit shift; the activation stays in
 * float and the sums are float FMAs in four (dot) or eight (dot4) registers. */
#include "tensor/kernels.h"

#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))

TGT static inline __m512 ld_f32(const void *p, int64_t i) { return _mm512_loadu_ps((const float *)p + i); }
TGT static inline __m512 ldm_f32(const void *p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, (const float *)p + i);
}
TGT static inline __m512 ld_f16(const void *p, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
}
TGT static inline __m512 ldm_f16(const void *p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
}
TGT static inline __m512 ld_bf16(const void *p, int64_t i) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
TGT static inline __m512 ldm_bf16(const void *p, int64_t i, __mmask16 m) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

typedef float ELEM_f32;
typedef uint16_t ELEM_f16;
typedef uint16_t ELEM_bf16;

#define DEFINE_DOT(SUF)                                                                              \
    TGT static float dot_##SUF(const void *a, const float *b, int64_t n) {                           \
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                                   \
        __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();                                   \
        int64_t i = 0;                                                                               \
        for (; i + 64 <= n; i += 64) {                                                               \
            s0 = _mm512_fmadd_ps(ld_##SUF(a, i), _mm512_loadu_ps(b + i), s0);                        \
            s1 = _mm512_fmadd_ps(ld_##SUF(a, i + 16), _mm512_loadu_ps(b + i + 16), s1);              \
            s2 = _mm512_fmadd_ps(ld_##SUF(a, i + 32), _mm512_loadu_ps(b + i + 32), s2);              \
            s3 = _mm512_fmadd_ps(ld_##SUF(a, i + 48), _mm512_loadu_ps(b + i + 48), s3);              \
        }                                                                                            \
        for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(ld_##SUF(a, i), _mm512_loadu_ps(b + i), s0); \
        if (i < n) {                                                                                 \
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                          \
            s1 = _mm512_fmadd_ps(ldm_##SUF(a, i, m), _mm512_maskz_loadu_ps(m, b + i), s1);          \
        }                                                                                            \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));   \
    }                                                                                                \
    TGT static void dot4_##SUF(const void *a, size_t stride, const float *b, int64_t n, float out[4]) { \
        const char *r0 = a, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;                 \
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();                                   \
        __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();                                   \
        __m512 t0 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps();                                   \
        __m512 t2 = _mm512_setzero_ps(), t3 = _mm512_setzero_ps();                                   \
        int64_t i = 0;                                                                               \
        const size_t pf = 4 * stride; /* the next four rows: the hardware prefetcher stops at pages */ \
        for (; i + 32 <= n; i += 32) {                                                               \
            _mm_prefetch(r0 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                     \
            _mm_prefetch(r1 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                     \
            _mm_prefetch(r2 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                     \
            _mm_prefetch(r3 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                     \
            __m512 x0 = _mm512_loadu_ps(b + i), x1 = _mm512_loadu_ps(b + i + 16);                    \
            s0 = _mm512_fmadd_ps(ld_##SUF(r0, i), x0, s0);                                           \
            s1 = _mm512_fmadd_ps(ld_##SUF(r1, i), x0, s1);                                           \
            s2 = _mm512_fmadd_ps(ld_##SUF(r2, i), x0, s2);                                           \
            s3 = _mm512_fmadd_ps(ld_##SUF(r3, i), x0, s3);                                           \
            t0 = _mm512_fmadd_ps(ld_##SUF(r0, i + 16), x1, t0);                                      \
            t1 = _mm512_fmadd_ps(ld_##SUF(r1, i + 16), x1, t1);                                      \
            t2 = _mm512_fmadd_ps(ld_##SUF(r2, i + 16), x1, t2);                                      \
            t3 = _mm512_fmadd_ps(ld_##SUF(r3, i + 16), x1, t3);                                      \
        }                                                                                            \
        for (; i < n; i += 16) {                                                                     \
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);       \
            __m512 x0 = _mm512_maskz_loadu_ps(m, b + i);                                             \
            s0 = _mm512_fmadd_ps(ldm_##SUF(r0, i, m), x0, s0);                                       \
            s1 = _mm512_fmadd_ps(ldm_##SUF(r1, i, m), x0, s1);                                       \
            s2 = _mm512_fmadd_ps(ldm_##SUF(r2, i, m), x0, s2);                                       \
            s3 = _mm512_fmadd_ps(ldm_##SUF(r3, i, m), x0, s3);                                       \
        }                                                                                            \
        out[0] = _mm512_reduce_add_ps(_mm512_add_ps(s0, t0));                                        \
        out[1] = _mm512_reduce_add_ps(_mm512_add_ps(s1, t1));                                        \
        out[2] = _mm512_reduce_add_ps(_mm512_add_ps(s2, t2));                                        \
        out[3] = _mm512_reduce_add_ps(_mm512_add_ps(s3, t3));                                        \
    }

DEFINE_DOT(f32)
DEFINE_DOT(f16)
DEFINE_DOT(bf16)

float owl_dot_avx512(owl_dtype t, const void *a, const float *b, int64_t n) {
    switch (t) {
    case OWL_F16:
        return dot_f16(a, b, n);
    case OWL_BF16:
        return dot_bf16(a, b, n);
    default:
        return dot_f32(a, b, n);
    }
}

void owl_dot4_avx512(owl_dtype t, const void *a, size_t stride, const float *b, int64_t n, float out[4]) {
    switch (t) {
    case OWL_F16:
        dot4_f16(a, stride, b, n, out);
        break;
    case OWL_BF16:
        dot4_bf16(a, stride, b, n, out);
        break;
    default:
        dot4_f32(a, stride, b, n, out);
        break;
    }
}
