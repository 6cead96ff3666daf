/* AVX-512 activation quantizers (Q8_0, Q8_K): the same arithmetic as the
 * reference in quant_q8.c -- d = max|x| / 127, id = 1/d, level =
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

owl_qquant_fn owl_qquant_avx512(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl)) return NULL;
    switch (t) {
    case OWL_Q8_0: return q8_0_avx512;
    case OWL_Q8_K: return q8_k_avx512;
    default: return NULL;
    }
}
