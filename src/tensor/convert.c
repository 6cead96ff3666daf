/* Row conversions between float and the storage types: F32, F16, BF16 with
 * AVX2 / AVX-512 paths (F16 through F16C's vcvtph2ps / vcvtps2ph, BF16 with
 * integer shifts and round-to-nearest-even), F64, and the block-quantized
 * types through tensor/quant. The SIMD paths give bit-identical results to
 * the scalar conversions in dtype.c (NaN payloads aside). */
#include "tensor/kernels.h"
#include "tensor/quant.h"

#include <immintrin.h>
#include <string.h>

owl_kernel_isa owl_kernel_level(void) {
    const owl_cpu *c = owl_cpu_get();
    if (owl_cpu_scalar_forced()) return OWL_ISA_SCALAR;
    if (c->avx512f && c->avx512bw && c->avx512vl && c->fma && c->f16c) return OWL_ISA_AVX512;
    if (c->avx2 && c->fma && c->f16c) return OWL_ISA_AVX2;
    return OWL_ISA_SCALAR;
}

/* ---- AVX2 + F16C ---- */

__attribute__((target("avx2,fma,f16c"))) void owl_cvt_f16_f32_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = owl_f16_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) void owl_cvt_f32_f16_avx2(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = owl_f32_to_f16(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) void owl_cvt_bf16_f32_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = owl_bf16_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c"))) void owl_cvt_f32_bf16_avx2(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, lsb)), 16);
        __m256i nanv = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
        __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(x, absmask), inf);
        r = _mm256_blendv_epi8(r, nanv, isnan);
        /* r holds 16-bit values in 32-bit lanes: pack (unsigned saturation is exact). */
        __m256i p = _mm256_packus_epi32(r, r); /* per 128-bit lane: r0..3 r0..3 | r4..7 r4..7 */
        p = _mm256_permute4x64_epi64(p, 0x08); /* qwords 0, 2 */
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_castsi256_si128(p));
    }
    for (; i < n; i++) dst[i] = owl_f32_to_bf16(src[i]);
}

/* ---- AVX-512 ---- */

__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void owl_cvt_f16_f32_avx512(const uint16_t *src, float *dst,
                                                                                      int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))) void owl_cvt_f32_f16_avx512(const float *src, uint16_t *dst,
                                                                                      int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void owl_cvt_bf16_f32_avx512(const uint16_t *src, float *dst,
                                                                                 int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m256i bf16_round16(__m512i x) {
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), one);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(bias, lsb)), 16);
    __mmask16 isnan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                              _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, isnan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void owl_cvt_f32_bf16_avx512(const float *src, uint16_t *dst,
                                                                                 int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), bf16_round16(_mm512_loadu_si512(src + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, m, bf16_round16(_mm512_maskz_loadu_epi32(m, src + i)));
    }
}

/* ---- dispatch ---- */

void owl_cvt_row_f32(owl_dtype t, const void *src, float *dst, int64_t n) {
    owl_kernel_isa isa = owl_kernel_level();
    if (t == OWL_F32) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
    } else if (t == OWL_F16) {
        if (isa == OWL_ISA_AVX512) owl_cvt_f16_f32_avx512(src, dst, n);
        else if (isa == OWL_ISA_AVX2) owl_cvt_f16_f32_avx2(src, dst, n);
        else
            for (int64_t i = 0; i < n; i++) dst[i] = owl_f16_to_f32(((const uint16_t *)src)[i]);
    } else if (t == OWL_BF16) {
        if (isa == OWL_ISA_AVX512) owl_cvt_bf16_f32_avx512(src, dst, n);
        else if (isa == OWL_ISA_AVX2) owl_cvt_bf16_f32_avx2(src, dst, n);
        else
            for (int64_t i = 0; i < n; i++) dst[i] = owl_bf16_to_f32(((const uint16_t *)src)[i]);
    }
}

static owl_status check_count(owl_dtype t, int64_t n, const char *what) {
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    if (!d) return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: unknown dtype id %d", what, (int)t);
    if (n < 0) return owl_errorf(OWL_ERR_ARG, "%s: negative element count %lld", what, (long long)n);
    if (n % d->block != 0)
        return owl_errorf(OWL_ERR_ARG, "%s: %lld elements are not a whole number of %s blocks of %d", what,
                          (long long)n, d->name, d->block);
    return OWL_OK;
}

owl_status owl_to_f32(owl_dtype t, const void *src, float *dst, int64_t n) {
    owl_status s = check_count(t, n, "owl_to_f32");
    if (s != OWL_OK) return s;
    switch (t) {
    case OWL_F32:
    case OWL_F16:
    case OWL_BF16:
        owl_cvt_row_f32(t, src, dst, n);
        return OWL_OK;
    case OWL_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, (const char *)src + 8 * i, 8);
            dst[i] = (float)v;
        }
        return OWL_OK;
    default:
        break;
    }
    if (owl_dtype_get((uint32_t)t)->quantized && owl_quant_supported(t)) {
        owl_quant_dequantize_row(t, src, dst, n);
        return OWL_OK;
    }
    return owl_errorf(OWL_ERR_UNSUPPORTED, "owl_to_f32: conversion from %s is not supported", owl_dtype_name(t));
}

owl_status owl_from_f32(owl_dtype t, const float *src, void *dst, int64_t n) {
    owl_status s = check_count(t, n, "owl_from_f32");
    if (s != OWL_OK) return s;
    owl_kernel_isa isa = owl_kernel_level();
    switch (t) {
    case OWL_F32:
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return OWL_OK;
    case OWL_F16:
        if (isa == OWL_ISA_AVX512) owl_cvt_f32_f16_avx512(src, dst, n);
        else if (isa == OWL_ISA_AVX2) owl_cvt_f32_f16_avx2(src, dst, n);
        else
            for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = owl_f32_to_f16(src[i]);
        return OWL_OK;
    case OWL_BF16:
        if (isa == OWL_ISA_AVX512) owl_cvt_f32_bf16_avx512(src, dst, n);
        else if (isa == OWL_ISA_AVX2) owl_cvt_f32_bf16_avx2(src, dst, n);
        else
            for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = owl_f32_to_bf16(src[i]);
        return OWL_OK;
    case OWL_F64:
        for (int64_t i = 0; i < n; i++) {
            double v = src[i];
            memcpy((char *)dst + 8 * i, &v, 8);
        }
        return OWL_OK;
    default:
        break;
    }
    if (owl_dtype_get((uint32_t)t)->quantized && owl_quant_supported(t)) return owl_quant_quantize_row(t, src, dst, n);
    return owl_errorf(OWL_ERR_UNSUPPORTED, "owl_from_f32: conversion to %s is not supported", owl_dtype_name(t));
}
