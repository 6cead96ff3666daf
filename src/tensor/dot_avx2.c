/* AVX2 + FMA + F16C dot products of F32 / F16 / BF16 rows with float rows,
 * for machines without AVX-512 (and OWL_CPU=avx2). Tails are finished with
 * the scalar conversions. */
#include "tensor/kernels.h"

#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma,f16c")))

TGT static inline __m256 ld_f32(const void *p, int64_t i) { return _mm256_loadu_ps((const float *)p + i); }
TGT static inline __m256 ld_f16(const void *p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
TGT static inline __m256 ld_bf16(const void *p, int64_t i) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
static inline float sc_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
static inline float sc_f16(const void *p, int64_t i) { return owl_f16_to_f32(((const uint16_t *)p)[i]); }
static inline float sc_bf16(const void *p, int64_t i) { return owl_bf16_to_f32(((const uint16_t *)p)[i]); }

TGT static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

typedef float ELEM_f32;
typedef uint16_t ELEM_f16;
typedef uint16_t ELEM_bf16;

#define DEFINE_DOT(SUF)                                                                              \
    TGT static float dot_##SUF(const void *a, const float *b, int64_t n) {                           \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                   \
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                                   \
        int64_t i = 0;                                                                               \
        for (; i + 32 <= n; i += 32) {                                                               \
            s0 = _mm256_fmadd_ps(ld_##SUF(a, i), _mm256_loadu_ps(b + i), s0);                        \
            s1 = _mm256_fmadd_ps(ld_##SUF(a, i + 8), _mm256_loadu_ps(b + i + 8), s1);                \
            s2 = _mm256_fmadd_ps(ld_##SUF(a, i + 16), _mm256_loadu_ps(b + i + 16), s2);              \
            s3 = _mm256_fmadd_ps(ld_##SUF(a, i + 24), _mm256_loadu_ps(b + i + 24), s3);              \
        }                                                                                            \
        for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(ld_##SUF(a, i), _mm256_loadu_ps(b + i), s0); \
        float r = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));                 \
        for (; i < n; i++) r += sc_##SUF(a, i) * b[i];                                               \
        return r;                                                                                    \
    }                                                                                                \
    TGT static void dot4_##SUF(const void *a, size_t stride, const float *b, int64_t n, float out[4]) { \
        const char *r0 = a, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;                 \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                   \
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                                   \
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();                                   \
        __m256 t2 = _mm256_setzero_ps(), t3 = _mm256_setzero_ps();                                   \
        int64_t i = 0;                                                                               \
        const size_t pf = 4 * stride; /* the next four rows: the hardware prefetcher stops at pages */ \
        for (; i + 16 <= n; i += 16) {                                                               \
            if ((i & 31) == 0) {                                                                     \
                _mm_prefetch(r0 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                 \
                _mm_prefetch(r1 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                 \
                _mm_prefetch(r2 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                 \
                _mm_prefetch(r3 + pf + i * (int64_t)sizeof(ELEM_##SUF), _MM_HINT_T0);                 \
            }                                                                                        \
            __m256 x0 = _mm256_loadu_ps(b + i), x1 = _mm256_loadu_ps(b + i + 8);                     \
            s0 = _mm256_fmadd_ps(ld_##SUF(r0, i), x0, s0);                                           \
            s1 = _mm256_fmadd_ps(ld_##SUF(r1, i), x0, s1);                                           \
            s2 = _mm256_fmadd_ps(ld_##SUF(r2, i), x0, s2);                                           \
            s3 = _mm256_fmadd_ps(ld_##SUF(r3, i), x0, s3);                                           \
            t0 = _mm256_fmadd_ps(ld_##SUF(r0, i + 8), x1, t0);                                       \
            t1 = _mm256_fmadd_ps(ld_##SUF(r1, i + 8), x1, t1);                                       \
            t2 = _mm256_fmadd_ps(ld_##SUF(r2, i + 8), x1, t2);                                       \
            t3 = _mm256_fmadd_ps(ld_##SUF(r3, i + 8), x1, t3);                                       \
        }                                                                                            \
        out[0] = hsum(_mm256_add_ps(s0, t0));                                                        \
        out[1] = hsum(_mm256_add_ps(s1, t1));                                                        \
        out[2] = hsum(_mm256_add_ps(s2, t2));                                                        \
        out[3] = hsum(_mm256_add_ps(s3, t3));                                                        \
        for (; i < n; i++) {                                                                         \
            out[0] += sc_##SUF(r0, i) * b[i];                                                        \
            out[1] += sc_##SUF(r1, i) * b[i];                                                        \
            out[2] += sc_##SUF(r2, i) * b[i];                                                        \
            out[3] += sc_##SUF(r3, i) * b[i];                                                        \
        }                                                                                            \
    }

DEFINE_DOT(f32)
DEFINE_DOT(f16)
DEFINE_DOT(bf16)

float owl_dot_avx2(owl_dtype t, const void *a, const float *b, int64_t n) {
    switch (t) {
    case OWL_F16:
        return dot_f16(a, b, n);
    case OWL_BF16:
        return dot_bf16(a, b, n);
    default:
        return dot_f32(a, b, n);
    }
}

void owl_dot4_avx2(owl_dtype t, const void *a, size_t stride, const float *b, int64_t n, float out[4]) {
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
