/* AVX-512 and AVX2 activation quantizers (Q8_0, Q8_K): the same arithmetic
 * as the reference in quant_q8.c -- d = max|x| / 127, id = 1/d, level =
 * roundf(x * id) with halves away from zero -- so the bytes are identical;
 * these run once per activation row and token. */
#include "tensor/quant_internal.h"

#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl")))

/* roundf(v) for |v| < 2^23: truncate, then step away from zero when the
 * dropped fraction (exact) is at least one half. */
static inline T512 __m512i round_away(__m512 v) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_abs_ps(_mm512_sub_ps(v, t));
    __mmask16 up = _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    /* copysign(1, v) */
    __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), sign),
                                                     _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
}

static inline T512 float absmax(const float *x, int n) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    return _mm512_reduce_max_ps(m);
}

static void T512 q8_0_avx512(const float *x, void *y, int64_t nb) {
    blk_q8_0 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float d = absmax(x, QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        for (int j = 0; j < QK; j += 16) {
            __m512i q = round_away(_mm512_mul_ps(_mm512_loadu_ps(x + j), _mm512_set1_ps(id)));
            _mm_storeu_si128((__m128i *)(b[i].qs + j), _mm512_cvtsepi32_epi8(q));
        }
    }
}

static void T512 q8_k_avx512(const float *x, void *y, int64_t nb) {
    blk_q8_k *b = y;
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float d = absmax(x, QKK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        memcpy(b[i].d, &d, 4);
        for (int g = 0; g < QKK / 16; g++) {
            __m512i q = round_away(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), _mm512_set1_ps(id)));
            q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
            _mm_storeu_si128((__m128i *)(b[i].qs + 16 * g), _mm512_cvtsepi32_epi8(q));
            qi_put_i16(b[i].bsums + 2 * g, _mm512_reduce_add_epi32(q));
        }
    }
}

/* ---- AVX2 ---- */

#define T256 __attribute__((target("avx2,fma")))

static inline T256 __m256i round_away8(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f)); /* copysign(1, v) */
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
}

static inline T256 float absmax8(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* 32 levels (x * id, rounded, clamped to +-127) as bytes in order; *sum16
 * gets the sums of the first and second 16. */
static inline T256 void levels32(const float *x, float id, int8_t *out, int sum16[2]) {
    __m256i v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = round_away8(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), _mm256_set1_ps(id)));
        v[k] = _mm256_max_epi32(_mm256_min_epi32(v[k], _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
    }
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, p);
    for (int h = 0; h < 2; h++) {
        __m256i s = _mm256_add_epi32(v[2 * h], v[2 * h + 1]);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        sum16[h] = _mm_cvtsi128_si32(s4);
    }
}

static void T256 q8_0_avx2(const float *x, void *y, int64_t nb) {
    blk_q8_0 *b = y;
    int s[2];
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float d = absmax8(x, QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        levels32(x, id, b[i].qs, s);
    }
}

static void T256 q8_k_avx2(const float *x, void *y, int64_t nb) {
    blk_q8_k *b = y;
    int s[2];
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float d = absmax8(x, QKK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        memcpy(b[i].d, &d, 4);
        for (int g = 0; g < QKK / 32; g++) {
            levels32(x + 32 * g, id, b[i].qs + 32 * g, s);
            qi_put_i16(b[i].bsums + 4 * g, s[0]);
            qi_put_i16(b[i].bsums + 4 * g + 2, s[1]);
        }
    }
}

owl_qquant_fn owl_qquant_avx2(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx2 && c->fma)) return NULL;
    switch (t) {
    case OWL_Q8_0: return q8_0_avx2;
    case OWL_Q8_K: return q8_k_avx2;
    default: return NULL;
    }
}

owl_qquant_fn owl_qquant_avx512(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl)) return NULL;
    switch (t) {
    case OWL_Q8_0: return q8_0_avx512;
    case OWL_Q8_K: return q8_k_avx512;
    default: return NULL;
    }
}
