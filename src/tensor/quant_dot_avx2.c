/* AVX2 dot products of quantized weight rows with Q8_0 / Q8_K activations,
 * for CPUs without AVX-512 VNNI. Levels are unpacked to unsigned bytes and
 * multiplied with the signed activation bytes by vpmaddubsw (pair sums stay
 * below 2^15: levels <= 63, or |w| <= 128 for Q8_0, times |x| <= 127 -- the
 * activations from owl_quant_quantize_row never hold -128), then widened to
 * 32 bits by vpmaddwd (with the group scales for the K-quants). Integer
 * sums are exact per block; one float multiply-add per block (per
 * super-block for the K-quants). Odd trailing blocks go to the reference. */
#include "tensor/quant_internal.h"

#include <immintrin.h>

/* Weights stream from memory once per token: prefetch PF_DIST bytes ahead. */
#define PF_DIST 2048
#define PREFETCH_BLOCK(p)                                                  \
    for (size_t pf = 0; pf < sizeof *(p); pf += 64) _mm_prefetch((const char *)(p) + PF_DIST + pf, _MM_HINT_T0);
#define PREFETCH_4(p) for (size_t pf = 0; pf < 4 * sizeof *(p); pf += 64) _mm_prefetch((const char *)(p) + PF_DIST + pf, _MM_HINT_T0);
#define T256 __attribute__((target("avx2,fma,f16c")))

static inline T256 float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline T256 __m128 h4(const uint8_t *p, size_t stride) {
    uint64_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint16_t h;
        memcpy(&h, p + k * stride, 2);
        v |= (uint64_t)h << (16 * k);
    }
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

static inline T256 __m256 lane_bcast(__m128 s, int k) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), _mm256_set1_epi32(k));
}

static inline T256 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline T256 __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 16 nibble bytes as 32 levels in element order: low nibbles, then high. */
static inline T256 __m256i nibbles(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(15));
}

/* Byte j = 0x10 if bit j of bits is set, else 0. */
static inline T256 __m256i bit4_bytes(uint32_t bits) {
    const __m256i sel = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), sel);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(16));
}

static inline T256 __m256i sum_pairs(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

static float T256 dot_q8_0(const void *w, const void *x, int64_t nb) {
    const blk_q8_0 *a = w, *b = x;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        PREFETCH_4(a + i)
        __m128 d = _mm_mul_ps(h4(a[i].d, sizeof *a), h4(b[i].d, sizeof *b));
        for (int k = 0; k < 4; k++) {
            __m256i wv = load32(a[i + k].qs), xv = load32(b[i + k].qs);
            /* |w| * (x with the sign of w) */
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_pairs(p)), lane_bcast(d, k), acc);
        }
    }
    float sum = hsum(acc);
    if (i < nb) sum += owl_q8_0_dot_ref(a + i, b + i, nb - i);
    return sum;
}

#define HI_NONE
#define HI_QH q = _mm256_or_si256(q, bit4_bytes(qi_u32(a[i + k].qh)));
#define MIN_NONE
#define MIN_M acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_pairs(_mm256_maddubs_epi16(_mm256_set1_epi8(1), xv))), lane_bcast(dm, k), acc);
#define LEGACY_BODY(BLK, HI, OFF, MIN, HAS_M)                                                  \
    const BLK *a = w;                                                                          \
    const blk_q8_0 *b = x;                                                                     \
    __m256 acc = _mm256_setzero_ps();                                                          \
    int64_t i = 0;                                                                             \
    for (; i + 4 <= nb; i += 4) {                                                              \
        PREFETCH_4(a + i)                                                                      \
        __m128 dx = h4(b[i].d, sizeof *b);                                                     \
        __m128 d = _mm_mul_ps(h4(a[i].d, sizeof *a), dx);                                      \
        __m128 dm = HAS_M ? _mm_mul_ps(h4(a[i].d + 2, sizeof *a), dx) : dx;                    \
        (void)dm;                                                                              \
        for (int k = 0; k < 4; k++) {                                                          \
            __m256i q = nibbles(a[i + k].qs);                                                  \
            HI                                                                                 \
            __m256i xv = load32(b[i + k].qs);                                                  \
            __m256i p = _mm256_maddubs_epi16(q, xv);                                           \
            if (OFF) p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8(OFF), xv)); \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_pairs(p)), lane_bcast(d, k), acc);    \
            MIN                                                                                \
        }                                                                                      \
    }                                                                                          \
    float sum = hsum(acc);

static float T256 dot_q4_0(const void *w, const void *x, int64_t nb) {
    LEGACY_BODY(blk_q4_0, HI_NONE, 8, MIN_NONE, 0)
    if (i < nb) sum += owl_q4_0_dot_ref(a + i, b + i, nb - i);
    return sum;
}

static float T256 dot_q4_1(const void *w, const void *x, int64_t nb) {
    LEGACY_BODY(blk_q4_1, HI_NONE, 0, MIN_M, 1)
    if (i < nb) sum += owl_q4_1_dot_ref(a + i, b + i, nb - i);
    return sum;
}

static float T256 dot_q5_0(const void *w, const void *x, int64_t nb) {
    LEGACY_BODY(blk_q5_0, HI_QH, 16, MIN_NONE, 0)
    if (i < nb) sum += owl_q5_0_dot_ref(a + i, b + i, nb - i);
    return sum;
}

static float T256 dot_q5_1(const void *w, const void *x, int64_t nb) {
    LEGACY_BODY(blk_q5_1, HI_QH, 0, MIN_M, 1)
    if (i < nb) sum += owl_q5_1_dot_ref(a + i, b + i, nb - i);
    return sum;
}

/* ---- K-quants ---- */

/* 32 levels (two groups of 16) times 32 activations, each group's pair sums
 * weighted by its scale: 8 int32 lanes. */
static inline T256 __m256i groups2(__m256i q, const int8_t *xq, int s0, int s1) {
    __m256i sc = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)s0)), _mm_set1_epi16((short)s1), 1);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, load32(xq)), sc);
}

/* sum_g sc[g] * bsums[g] (8 int32 lanes). */
static inline T256 __m256i group_sums(__m128i sc8, const blk_q8_k *b) {
    return _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load32(b->bsums));
}

/* bit k of each byte of v, moved to bit `to` */
static inline T256 __m256i bit_of(__m256i v, int k, int to) {
    __m256i b = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(k)), _mm256_set1_epi8(1));
    return _mm256_sll_epi16(b, _mm_cvtsi32_si128(to));
}

static inline void q4k_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u0 = qi_u32(s), u1 = qi_u32(s + 4), u2 = qi_u32(s + 8);
    uint32_t v[4] = {u0 & 0x3f3f3f3fu, (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4), u1 & 0x3f3f3f3fu,
                     ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4)};
    memcpy(sc, v, 8);
    memcpy(mn, v + 2, 8);
}

#define Q45K_BODY(BLK, HIGH)                                                                                 \
    const BLK *a = w;                                                                                        \
    const blk_q8_k *b = x;                                                                                   \
    const __m256i m4 = _mm256_set1_epi8(15);                                                                 \
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();                                            \
    for (int64_t i = 0; i < nb; i++) {                                                                       \
        PREFETCH_BLOCK(a + i)                                                                                \
        uint8_t sc[8], mn[8];                                                                                \
        q4k_scales(a[i].scales, sc, mn);                                                                     \
        __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);                                                   \
        __m256i mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)), load32(b[i].bsums)); \
        HIGH##_SETUP                                                                                         \
        __m256i tot = _mm256_setzero_si256();                                                                \
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {                                                \
            __m256i v = load32(a[i].qs + 32 * c);                                                            \
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);        \
            HIGH##_ADD                                                                                       \
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(b[i].qs + 64 * c)),               \
                                           _mm256_set1_epi16(sc[2 * c]));                                    \
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(b[i].qs + 64 * c + 32)),          \
                                           _mm256_set1_epi16(sc[2 * c + 1]));                                \
            tot = _mm256_add_epi32(tot, _mm256_add_epi32(p0, p1));                                           \
        }                                                                                                    \
        float dx = qi_f(b[i].d);                                                                             \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(h2f(a[i].d) * dx), acc);              \
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(h2f(a[i].dmin) * dx), accm);        \
    }                                                                                                        \
    return hsum(acc) - hsum(accm);

#define Q4K_SETUP
#define Q4K_ADD
#define Q5K_SETUP const __m256i hh = load32(a[i].qh);
#define Q5K_ADD                                          \
    lo = _mm256_or_si256(lo, bit_of(hh, 2 * c, 4));      \
    hi = _mm256_or_si256(hi, bit_of(hh, 2 * c + 1, 4));

static float T256 dot_q4_k(const void *w, const void *x, int64_t nb) { Q45K_BODY(blk_q4_k, Q4K) }

static float T256 dot_q5_k(const void *w, const void *x, int64_t nb) { Q45K_BODY(blk_q5_k, Q5K) }

static float T256 dot_q6_k(const void *w, const void *x, int64_t nb) {
    const blk_q6_k *a = w;
    const blk_q8_k *b = x;
    const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        const int8_t *sc = a[i].scales;
        __m256i tot = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(group_sums(_mm_loadu_si128((const __m128i *)sc), &b[i]), 5));
        _Pragma("GCC unroll 2") for (int n = 0; n < 2; n++) {
            __m256i l0 = load32(a[i].ql + 64 * n), l1 = load32(a[i].ql + 64 * n + 32), h = load32(a[i].qh + 32 * n);
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
                __m256i l = (k & 1) ? l1 : l0;
                if (k >= 2) l = _mm256_srli_epi16(l, 4);
                __m256i hb = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * k)), m3);
                __m256i q = _mm256_or_si256(_mm256_and_si256(l, m4), _mm256_slli_epi16(hb, 4));
                int g = 8 * n + 2 * k;
                tot = _mm256_add_epi32(tot, groups2(q, b[i].qs + 128 * n + 32 * k, sc[g], sc[g + 1]));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(h2f(a[i].d) * qi_f(b[i].d)), acc);
    }
    return hsum(acc);
}

static float T256 dot_q2_k(const void *w, const void *x, int64_t nb) {
    const blk_q2_k *a = w;
    const blk_q8_k *b = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        __m256i s16 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        __m256i mins = _mm256_madd_epi16(_mm256_srli_epi16(s16, 4), load32(b[i].bsums));
        __m256i tot = _mm256_setzero_si256();
        _Pragma("GCC unroll 2") for (int n = 0; n < 2; n++) {
            __m256i v = load32(a[i].qs + 32 * n);
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * j)), m3);
                int g = 8 * n + 2 * j;
                tot = _mm256_add_epi32(tot, groups2(q, b[i].qs + 128 * n + 32 * j, a[i].scales[g] & 15, a[i].scales[g + 1] & 15));
            }
        }
        float dx = qi_f(b[i].d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(h2f(a[i].d) * dx), acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(-h2f(a[i].dmin) * dx), acc);
    }
    return hsum(acc);
}

/* The 16 Q3_K scales (minus their bias of 32) from the 12-byte packing
 * (see quant_k.c), four at a time in 32-bit words. */
static inline T256 void q3k_scales(const uint8_t s[12], int8_t sc[16]) {
    uint32_t a0 = qi_u32(s), a1 = qi_u32(s + 4), t = qi_u32(s + 8);
    const uint32_t lo = 0x0f0f0f0fu, hi = 0x03030303u;
    uint32_t v[4] = {(a0 & lo) | ((t & hi) << 4), (a1 & lo) | (((t >> 2) & hi) << 4), ((a0 >> 4) & lo) | (((t >> 4) & hi) << 4),
                     ((a1 >> 4) & lo) | (((t >> 6) & hi) << 4)};
    __m128i b = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)v), _mm_set1_epi8(32)); /* per byte */
    _mm_storeu_si128((__m128i *)sc, b);
}

static float T256 dot_q3_k(const void *w, const void *x, int64_t nb) {
    const blk_q3_k *a = w;
    const blk_q8_k *b = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        int8_t sc[16];
        q3k_scales(a[i].scales, sc);
        /* levels stored as low + 4*h in 0..7: take 4 * sum(sc * x) off */
        __m256i tot = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(group_sums(_mm_loadu_si128((const __m128i *)sc), &b[i]), 2));
        const __m256i hm = load32(a[i].hmask);
        _Pragma("GCC unroll 2") for (int n = 0; n < 2; n++) {
            __m256i v = load32(a[i].qs + 32 * n);
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
                __m256i q = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * j)), m3);
                q = _mm256_or_si256(q, bit_of(hm, 4 * n + j, 2));
                int g = 8 * n + 2 * j;
                tot = _mm256_add_epi32(tot, groups2(q, b[i].qs + 128 * n + 32 * j, sc[g], sc[g + 1]));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(h2f(a[i].d) * qi_f(b[i].d)), acc);
    }
    return hsum(acc);
}

owl_qdot_fn owl_qdot_avx2(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx2 && c->fma && c->f16c)) return NULL;
    switch (t) {
    case OWL_Q8_0: return dot_q8_0;
    case OWL_Q4_0: return dot_q4_0;
    case OWL_Q4_1: return dot_q4_1;
    case OWL_Q5_0: return dot_q5_0;
    case OWL_Q5_1: return dot_q5_1;
    case OWL_Q2_K: return dot_q2_k;
    case OWL_Q3_K: return dot_q3_k;
    case OWL_Q4_K: return dot_q4_k;
    case OWL_Q5_K: return dot_q5_k;
    case OWL_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}
