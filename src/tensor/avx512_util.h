/* tensor/ internal: small AVX-512 helpers shared by the GEMM kernels
 * (compiled with function-level target attributes, like their callers). */
#ifndef OWL_TENSOR_AVX512_UTIL_H
#define OWL_TENSOR_AVX512_UTIL_H

#include <immintrin.h>

/* 16 x 16 transpose of 32-bit elements: r[i] element j -> r[j] element i. */
__attribute__((target("avx512f"))) static inline void owl_transpose16_avx512(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4q + e], 128-bit lane L = rows 4q..4q+3 of column 4L + e */
    for (int e = 0; e < 4; e++) {
        __m512i v = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x88), w = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x88), w2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xdd);
        r[e] = _mm512_shuffle_i32x4(v, v2, 0x88);
        r[8 + e] = _mm512_shuffle_i32x4(v, v2, 0xdd);
        r[4 + e] = _mm512_shuffle_i32x4(w, w2, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(w, w2, 0xdd);
    }
}

#endif
