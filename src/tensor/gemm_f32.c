/* Register-blocked float micro-kernels of the matrix-matrix product: a tile
 * of 32 weight rows x 12 tokens kept in registers while k runs over a packed
 * panel (see kernels.h for the layouts). AVX-512: 24 zmm accumulators, two
 * weight loads and twelve broadcasts per k. AVX2: the same tile in four
 * passes of 3 tokens (12 ymm accumulators). */
#include "tensor/avx512_util.h"
#include "tensor/kernels.h"

#include <immintrin.h>

#define TGT512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define TGT2 __attribute__((target("avx2,fma")))

#define MR OWL_GEMM_MR
#define NR OWL_GEMM_NR

TGT512 void owl_gemm_micro_avx512(const float *wp, const float *xp, int kc, float *c, int64_t ldc, bool acc) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    __m512 a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
    __m512 b6 = a0, b7 = a0, b8 = a0, b9 = a0, b10 = a0, b11 = a0;
    for (int k = 0; k < kc; k++) {
        const __m512 w0 = _mm512_load_ps(wp + (size_t)k * MR);
        const __m512 w1 = _mm512_load_ps(wp + (size_t)k * MR + 16);
        const float *x = xp + (size_t)k * NR;
#define STEP(j)                                      \
    do {                                             \
        const __m512 xb = _mm512_set1_ps(x[j]);      \
        a##j = _mm512_fmadd_ps(w0, xb, a##j);        \
        b##j = _mm512_fmadd_ps(w1, xb, b##j);        \
    } while (0)
        STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5);
        STEP(6); STEP(7); STEP(8); STEP(9); STEP(10); STEP(11);
#undef STEP
    }
#define OUT(j)                                                                          \
    do {                                                                                \
        float *cj = c + (j) * ldc;                                                      \
        if (acc) {                                                                      \
            a##j = _mm512_add_ps(a##j, _mm512_loadu_ps(cj));                            \
            b##j = _mm512_add_ps(b##j, _mm512_loadu_ps(cj + 16));                       \
        }                                                                               \
        _mm512_storeu_ps(cj, a##j);                                                     \
        _mm512_storeu_ps(cj + 16, b##j);                                                \
    } while (0)
    OUT(0); OUT(1); OUT(2); OUT(3); OUT(4); OUT(5);
    OUT(6); OUT(7); OUT(8); OUT(9); OUT(10); OUT(11);
#undef OUT
}

TGT2 void owl_gemm_micro_avx2(const float *wp, const float *xp, int kc, float *c, int64_t ldc, bool acc) {
    for (int j0 = 0; j0 < NR; j0 += 3) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        __m256 d0 = a0, d1 = a0, d2 = a0, d3 = a0;
        for (int k = 0; k < kc; k++) {
            const float *w = wp + (size_t)k * MR;
            const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);
            const __m256 w2 = _mm256_load_ps(w + 16), w3 = _mm256_load_ps(w + 24);
            const float *x = xp + (size_t)k * NR + j0;
            __m256 xb = _mm256_broadcast_ss(x);
            a0 = _mm256_fmadd_ps(w0, xb, a0);
            a1 = _mm256_fmadd_ps(w1, xb, a1);
            a2 = _mm256_fmadd_ps(w2, xb, a2);
            a3 = _mm256_fmadd_ps(w3, xb, a3);
            xb = _mm256_broadcast_ss(x + 1);
            b0 = _mm256_fmadd_ps(w0, xb, b0);
            b1 = _mm256_fmadd_ps(w1, xb, b1);
            b2 = _mm256_fmadd_ps(w2, xb, b2);
            b3 = _mm256_fmadd_ps(w3, xb, b3);
            xb = _mm256_broadcast_ss(x + 2);
            d0 = _mm256_fmadd_ps(w0, xb, d0);
            d1 = _mm256_fmadd_ps(w1, xb, d1);
            d2 = _mm256_fmadd_ps(w2, xb, d2);
            d3 = _mm256_fmadd_ps(w3, xb, d3);
        }
#define OUT(v, j)                                                                                  \
    do {                                                                                           \
        float *cj = c + (int64_t)(j) * ldc;                                                        \
        if (acc) {                                                                                 \
            v##0 = _mm256_add_ps(v##0, _mm256_loadu_ps(cj));                                       \
            v##1 = _mm256_add_ps(v##1, _mm256_loadu_ps(cj + 8));                                   \
            v##2 = _mm256_add_ps(v##2, _mm256_loadu_ps(cj + 16));                                  \
            v##3 = _mm256_add_ps(v##3, _mm256_loadu_ps(cj + 24));                                  \
        }                                                                                          \
        _mm256_storeu_ps(cj, v##0);                                                                \
        _mm256_storeu_ps(cj + 8, v##1);                                                            \
        _mm256_storeu_ps(cj + 16, v##2);                                                           \
        _mm256_storeu_ps(cj + 24, v##3);                                                           \
    } while (0)
        OUT(a, j0);
        OUT(b, j0 + 1);
        OUT(d, j0 + 2);
#undef OUT
    }
}

TGT512 static inline __m512 load16(owl_dtype t, const char *row, int k, __mmask16 m) {
    if (t == OWL_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i v = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (t == OWL_F16) return _mm512_cvtph_ps(v);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

TGT512 void owl_gemm_pack_avx512(owl_dtype t, const void *rows, size_t row_bytes, int nr, int kc, float *wp) {
    for (int half = 0; half < MR / 16; half++) {
        for (int k = 0; k < kc; k += 16) {
            int nk = kc - k < 16 ? kc - k : 16;
            __mmask16 m = (__mmask16)((1u << nk) - 1);
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                int row = half * 16 + i;
                v[i] = row < nr ? _mm512_castps_si512(load16(t, (const char *)rows + (size_t)row * row_bytes, k, m))
                                : _mm512_setzero_si512();
            }
            owl_transpose16_avx512(v);
            for (int j = 0; j < nk; j++) _mm512_store_si512(wp + (size_t)(k + j) * MR + half * 16, v[j]);
        }
    }
}
