/* AVX-512 VNNI dot products of quantized weight rows with Q8_0 / Q8_K
 * activations. Levels are unpacked to unsigned bytes (nibbles with shifts
 * and masks, high bits through byte masks). 32-element types: vpdpbusd
 * multiplies them with the signed activation bytes and a second vpdpbusd
 * takes the level offset off. K-quants: vpmaddubsw pair sums, weighted by
 * the group scales with vpdpwssd; offsets and mins meet the Q8_K group
 * sums. Integer sums stay exact; one float multiply-add per block (per
 * super-block for the K-quants) scales them. Trailing blocks that do not
 * fill a step go to the reference. */
#include "tensor/quant_internal.h"

#include <immintrin.h>

#ifndef PF_DIST
#define PF_DIST 1024
#endif
/* Weights stream from memory once per token: software prefetch PF_DIST
 * bytes ahead (measured: +50-70 % over the hardware prefetcher alone). */
#define PREFETCH_BLOCK(p)                                                  \
    for (size_t pf = 0; pf < sizeof *(p); pf += 64) _mm_prefetch((const char *)(p) + PF_DIST + pf, _MM_HINT_T0);
#define PREFETCH_N(p, n)                                                   \
    for (size_t pf = 0; pf < (n) * sizeof *(p); pf += 64) _mm_prefetch((const char *)(p) + PF_DIST + pf, _MM_HINT_T0);
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

static inline T512 float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 32 bytes at a and 32 bytes at b as one register. */
static inline T512 __m512i load2x32(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Two 16-byte nibble arrays as [lo(a), hi(a), lo(b), hi(b)]: the 32 levels
 * of block a then of block b, in element order. */
static inline T512 __m512i nibbles2(const uint8_t *a, const uint8_t *b) {
    const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0); /* 64-bit count per 128-bit half */
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)a))),
                                   _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b)), 1);
    return _mm512_and_si512(_mm512_srlv_epi64(v, shifts), _mm512_set1_epi8(15));
}

/* The fp16 fields at p, p + stride, p + 2*stride, p + 3*stride as floats. */
static inline T512 __m128 h4(const uint8_t *p, size_t stride) {
    uint64_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint16_t h;
        memcpy(&h, p + k * stride, 2);
        v |= (uint64_t)h << (16 * k);
    }
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* Lanes 0..7 get s[2k], lanes 8..15 s[2k+1] (k = 0 or 1). */
static inline T512 __m512 spread(__m128 s, int k) {
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(2 * k)), _mm512_castps128_ps512(s));
}

/* Every legacy kernel below computes R rows (R = 1 or 4, a constant after
 * inlining) against one activation row: the activation blocks and their
 * sums are loaded once per step for all R rows. Each row sees exactly the
 * same float operations in the same order for any R, so a row's result
 * does not depend on how rows are grouped. */
#define INLINE static inline __attribute__((always_inline))

/* Prefetch for a row at byte `off` of `len`, about to read `n` bytes at p:
 * PF_DIST ahead. One row (R = 1) runs on into the next row; R rows read
 * side by side go on past a row's end into the same row of the next group
 * of R (R rows further on). */
INLINE T512 void prefetch_rows(const uint8_t *p, size_t off, size_t len, size_t n, size_t stride, const int R) {
    const uint8_t *q = p + PF_DIST;
    if (R > 1 && off + PF_DIST >= len) q += (size_t)R * stride - len;
    for (size_t pf = 0; pf < n; pf += 64) _mm_prefetch((const char *)q + pf, _MM_HINT_T0);
}

INLINE T512 void q8_0_rows(const uint8_t *w, size_t stride, const blk_q8_0 *b, int64_t nb, float *out, const int R) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512 acc0[4], acc1[4];
    for (int r = 0; r < R; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    int64_t i = 0;
    /* w*x = (w+128)*x - 128*x: w+128 is w with its top bit flipped, unsigned. */
    for (; i + 4 <= nb; i += 4) {
        __m128 dx = h4(b[i].d, sizeof *b);
        __m512i x0 = load2x32(b[i].qs, b[i + 1].qs), x1 = load2x32(b[i + 2].qs, b[i + 3].qs);
        __m512i o0 = _mm512_dpbusd_epi32(zero, flip, x0), o1 = _mm512_dpbusd_epi32(zero, flip, x1);
        for (int r = 0; r < R; r++) {
            const blk_q8_0 *a = (const blk_q8_0 *)(w + (size_t)r * stride) + i;
            prefetch_rows((const uint8_t *)a, (size_t)i * sizeof *a, (size_t)nb * sizeof *a, 4 * sizeof *a, stride, R);
            __m128 d = _mm_mul_ps(h4(a[0].d, sizeof *a), dx);
            __m512i w0 = _mm512_xor_si512(load2x32(a[0].qs, a[1].qs), flip);
            __m512i w1 = _mm512_xor_si512(load2x32(a[2].qs, a[3].qs), flip);
            __m512i s0 = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, w0, x0), o0);
            __m512i s1 = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, w1, x1), o1);
            acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), spread(d, 0), acc0[r]);
            acc1[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), spread(d, 1), acc1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        const blk_q8_0 *a = (const blk_q8_0 *)(w + (size_t)r * stride);
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
        if (i < nb) out[r] += owl_q8_0_dot_ref(a + i, b + i, nb - i);
    }
}

/* The 32-element 4- and 5-bit types, four blocks per step (two per
 * register). The block layout comes as byte offsets: BS block size, OM the
 * min m (0: none; the _1 types add m * dx * sum(x)), OQH the high bits (0:
 * none), OQS the nibbles; OFF is the level offset (8 or 16) of the
 * symmetric types, taken off as OFF * sum(x). */
INLINE T512 void legacy_rows(const uint8_t *w, size_t stride, const blk_q8_0 *b, int64_t nb, float *out, const int R,
                             const int BS, const int OM, const int OQH, const int OQS, const int OFF, owl_qdot_fn ref) {
    const __m512i zero = _mm512_setzero_si512(), offv = _mm512_set1_epi8((char)OFF), ones = _mm512_set1_epi8(1);
    __m512 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m128 dx = h4(b[i].d, sizeof *b);
        __m512i xv[2], xo[2], xs[2];
        for (int k = 0; k < 2; k++) {
            xv[k] = load2x32(b[i + 2 * k].qs, b[i + 2 * k + 1].qs);
            if (OFF) xo[k] = _mm512_dpbusd_epi32(zero, offv, xv[k]);
            if (OM) xs[k] = _mm512_dpbusd_epi32(zero, ones, xv[k]);
        }
        for (int r = 0; r < R; r++) {
            const uint8_t *a = w + (size_t)r * stride + (size_t)i * BS;
            prefetch_rows(a, (size_t)i * BS, (size_t)nb * BS, 4 * (size_t)BS, stride, R);
            __m128 d = _mm_mul_ps(h4(a, BS), dx);
            __m128 dm = OM ? _mm_mul_ps(h4(a + OM, BS), dx) : dx;
            for (int k = 0; k < 2; k++) {
                const uint8_t *a0 = a + 2 * k * BS, *a1 = a0 + BS;
                __m512i q = nibbles2(a0 + OQS, a1 + OQS);
                if (OQH) q = _mm512_mask_add_epi8(q, (__mmask64)qi_u32(a0 + OQH) | ((__mmask64)qi_u32(a1 + OQH) << 32), q,
                                                  _mm512_set1_epi8(16));
                __m512i s = _mm512_dpbusd_epi32(zero, q, xv[k]);
                if (OFF) s = _mm512_sub_epi32(s, xo[k]);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), spread(d, k), acc[r]);
                if (OM) acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(xs[k]), spread(dm, k), acc[r]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint8_t *a = w + (size_t)r * stride;
        out[r] = _mm512_reduce_add_ps(acc[r]);
        if (i < nb) out[r] += ref(a + (size_t)i * BS, b + i, nb - i);
    }
}

#define LEGACY_FNS(NAME, BS, OM, OQH, OQS, OFF, REF)                                                          \
    static float T512 dot_##NAME(const void *w, const void *x, int64_t nb) {                                   \
        float out;                                                                                             \
        legacy_rows(w, 0, x, nb, &out, 1, BS, OM, OQH, OQS, OFF, REF);                                         \
        return out;                                                                                            \
    }                                                                                                          \
    static void T512 dot4_##NAME(const void *w, size_t stride, const void *x, int64_t nb, float *out) {       \
        legacy_rows(w, stride, x, nb, out, 4, BS, OM, OQH, OQS, OFF, REF);                                     \
    }

LEGACY_FNS(q4_0, 18, 0, 0, 2, 8, owl_q4_0_dot_ref)
LEGACY_FNS(q4_1, 20, 2, 0, 4, 0, owl_q4_1_dot_ref)
LEGACY_FNS(q5_0, 22, 0, 2, 6, 16, owl_q5_0_dot_ref)
LEGACY_FNS(q5_1, 24, 2, 4, 8, 0, owl_q5_1_dot_ref)

static float T512 dot_q8_0(const void *w, const void *x, int64_t nb) {
    float out;
    q8_0_rows(w, 0, x, nb, &out, 1);
    return out;
}

static void T512 dot4_q8_0(const void *w, size_t stride, const void *x, int64_t nb, float *out) { q8_0_rows(w, stride, x, nb, out, 4); }

/* ---- K-quants ---- */

/* sum_g sc[g] * bsums[g] over the 16 groups of a Q8_K block, as 8 int32
 * lanes in the low half of a zmm. */
static inline T512 __m512i group_sums(__m128i sc, const blk_q8_k *b) {
    __m256i s16 = _mm256_cvtepi8_epi16(sc);
    __m256i bs = _mm256_loadu_si256((const __m256i *)b->bsums);
    return _mm512_zextsi256_si512(_mm256_madd_epi16(s16, bs));
}

/* Group-index vectors for 64 levels: lane L of a vpdpbusd result covers
 * bytes 4L..4L+3, i.e. group (base + L/4) of 16 or (base + L/8) of 32. */
#define IDX16(base) _mm512_set_epi32(base + 3, base + 3, base + 3, base + 3, base + 2, base + 2, base + 2, base + 2, \
                                     base + 1, base + 1, base + 1, base + 1, base, base, base, base)

static inline T512 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Q4_K / Q5_K scales and mins as two 8-byte words: 6-bit fields from the
 * 12-byte packing (see quant_k.c), decoded four at a time in 32-bit words. */
static inline void q4k_scales_u64(const uint8_t s[12], uint64_t *sc, uint64_t *mn) {
    uint32_t u0 = qi_u32(s), u1 = qi_u32(s + 4), u2 = qi_u32(s + 8);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    *sc = sc_lo | ((uint64_t)sc_hi << 32);
    *mn = mn_lo | ((uint64_t)mn_hi << 32);
}

/* The K-quants with 32-element groups (Q4_K, Q5_K). Levels are multiplied
 * with the activations by vpmaddubsw (pairs: at most 2*31*127, no
 * saturation) and the pair sums with the group scales by vpdpwssd. The mins
 * meet the Q8_K group sums in a second (256-bit) accumulator. */
#define Q45K_BODY(BLK, HIGH)                                                                                  \
    const BLK *a = w;                                                                                         \
    const blk_q8_k *b = x;                                                                                    \
    const __m512i m4 = _mm512_set1_epi8(15);                                                                  \
    __m512 acc = _mm512_setzero_ps();                                                                         \
    __m256 accm = _mm256_setzero_ps();                                                                        \
    for (int64_t i = 0; i < nb; i++) {                                                                        \
        PREFETCH_BLOCK(a + i)                                                                                 \
        uint64_t sc, mn;                                                                                      \
        q4k_scales_u64(a[i].scales, &sc, &mn);                                                                \
        __m128i m8 = _mm_cvtsi64_si128((long long)mn);                                                        \
        __m256i mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)),                     \
                                         _mm256_loadu_si256((const __m256i *)b[i].bsums));                    \
        const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));  \
        HIGH##_SETUP                                                                                          \
        __m512i tot = _mm512_setzero_si512();                                                                 \
        __m512i qq[4];                                                                                        \
        for (int h = 0; h < 2; h++) { /* 64 bytes: chunks 2h, 2h+1 as [low nibbles, high nibbles] each */     \
            __m512i z = _mm512_loadu_si512(a[i].qs + 64 * h), zs = _mm512_srli_epi16(z, 4);                   \
            qq[2 * h] = _mm512_and_si512(_mm512_shuffle_i64x2(z, zs, 0x44), m4);                              \
            qq[2 * h + 1] = _mm512_and_si512(_mm512_shuffle_i64x2(z, zs, 0xee), m4);                          \
        }                                                                                                     \
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {                                                 \
            __m512i q = qq[c];                                                                                \
            HIGH##_ADD                                                                                        \
            __m512i p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(b[i].qs + 64 * c));                        \
            __m512i s = _mm512_permutexvar_epi16(                                                             \
                _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16((short)(2 * c)),                      \
                                        _mm512_set1_epi16((short)(2 * c + 1))), sc16);                        \
            tot = _mm512_dpwssd_epi32(tot, p, s);                                                             \
        }                                                                                                     \
        float dx = qi_f(b[i].d);                                                                              \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(h2f(a[i].d) * dx), acc);                \
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(h2f(a[i].dmin) * dx), accm);          \
    }                                                                                                         \
    return _mm512_reduce_add_ps(acc) - hsum256(accm);

#define Q4K_SETUP
#define Q4K_ADD
#define Q5K_SETUP                                                                                           \
    const __m512i hh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a[i].qh));
#define Q5K_ADD                                                                                             \
    q = _mm512_mask_add_epi8(q,                                                                             \
                             _mm512_test_epi8_mask(hh, _mm512_inserti64x4(                                  \
                                 _mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << (2 * c)))),            \
                                 _mm256_set1_epi8((char)(1 << (2 * c + 1))), 1)),                           \
                             q, _mm512_set1_epi8(16));

static float T512 dot_q4_k(const void *w, const void *x, int64_t nb) { Q45K_BODY(blk_q4_k, Q4K) }

static float T512 dot_q5_k(const void *w, const void *x, int64_t nb) { Q45K_BODY(blk_q5_k, Q5K) }

/* 64 levels (four groups of 16, unsigned, <= 63) times 64 activations:
 * pair sums by vpmaddubsw (no saturation: 2 * 63 * 127 < 2^15), then each
 * group's pairs times its scale into tot by vpdpwssd. Group g + j/8 for
 * 16-bit lane j; scw holds the 16 group scales as int16 in its low half. */
static inline T512 __m512i groups4(__m512i tot, __m512i q, const int8_t *xq, int g, __m512i scw) {
    __m512i idx = _mm512_add_epi16(_mm512_or_si512(IDX16(0), _mm512_slli_epi32(IDX16(0), 16)), _mm512_set1_epi16((short)g));
    return _mm512_dpwssd_epi32(tot, _mm512_maddubs_epi16(q, _mm512_loadu_si512(xq)), _mm512_permutexvar_epi16(idx, scw));
}

static float T512 dot_q6_k(const void *w, const void *x, int64_t nb) {
    const blk_q6_k *a = w;
    const blk_q8_k *b = x;
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        const __m512i scw = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales)));
        __m512i tot = _mm512_sub_epi32(zero, _mm512_slli_epi32(group_sums(_mm_loadu_si128((const __m128i *)a[i].scales), &b[i]), 5)); /* the -32 offset */
        for (int n = 0; n < 2; n++) {
            __m512i l = _mm512_loadu_si512(a[i].ql + 64 * n);
            __m256i h = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * n));
            __m512i hh = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 2), 1);
            /* bytes 0..31: levels k=0 (bits 0-1 of qh), 32..63: k=1 (bits 2-3) */
            __m512i q01 = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(_mm512_slli_epi16(hh, 4), m30));
            /* k=2 (bits 4-5), k=3 (bits 6-7) */
            __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(hh, m30));
            tot = groups4(tot, q01, b[i].qs + 128 * n, 8 * n, scw);
            tot = groups4(tot, q23, b[i].qs + 128 * n + 64, 8 * n + 4, scw);
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(h2f(a[i].d) * qi_f(b[i].d)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

static float T512 dot_q2_k(const void *w, const void *x, int64_t nb) {
    const blk_q2_k *a = w;
    const blk_q8_k *b = x;
    const __m512i zero = _mm512_setzero_si512(), m2 = _mm512_set1_epi8(3);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        __m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m512i scw = _mm512_castsi256_si512(_mm256_and_si256(_mm256_cvtepu8_epi16(raw), _mm256_set1_epi16(15)));
        __m256i mn16 = _mm256_srli_epi16(_mm256_cvtepu8_epi16(raw), 4);
        __m256i imin = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        __m512i tot = zero;
        for (int n = 0; n < 2; n++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * n));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 2), 1);
            __m512i q01 = _mm512_and_si512(z, m2), q23 = _mm512_and_si512(_mm512_srli_epi16(z, 4), m2);
            tot = groups4(tot, q01, b[i].qs + 128 * n, 8 * n, scw);
            tot = groups4(tot, q23, b[i].qs + 128 * n + 64, 8 * n + 4, scw);
        }
        float dx = qi_f(b[i].d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(h2f(a[i].d) * dx), acc);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(imin)), _mm512_set1_ps(-h2f(a[i].dmin) * dx), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* The 16 Q3_K scales (minus their bias of 32) from the 12-byte packing
 * (see quant_k.c), four at a time in 32-bit words. */
static inline T512 __m128i q3k_scales(const uint8_t s[12]) {
    uint32_t a0 = qi_u32(s), a1 = qi_u32(s + 4), t = qi_u32(s + 8);
    const uint32_t lo = 0x0f0f0f0fu, hi = 0x03030303u;
    __m128i v = _mm_set_epi32((int)(((a1 >> 4) & lo) | (((t >> 6) & hi) << 4)), (int)(((a0 >> 4) & lo) | (((t >> 4) & hi) << 4)),
                              (int)((a1 & lo) | (((t >> 2) & hi) << 4)), (int)((a0 & lo) | ((t & hi) << 4)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

static float T512 dot_q3_k(const void *w, const void *x, int64_t nb) {
    const blk_q3_k *a = w;
    const blk_q8_k *b = x;
    const __m512i zero = _mm512_setzero_si512(), m2 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PREFETCH_BLOCK(a + i)
        __m128i sc8 = q3k_scales(a[i].scales);
        const __m512i scw = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(sc8));
        /* levels are stored as low + 4*h in 0..7: take 4 * sum(sc * x) off */
        __m512i tot = _mm512_sub_epi32(zero, _mm512_slli_epi32(group_sums(sc8, &b[i]), 2));
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)a[i].hmask));
        for (int n = 0; n < 2; n++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * n));
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 2), 1);
            __m512i q01 = _mm512_and_si512(z, m2), q23 = _mm512_and_si512(_mm512_srli_epi16(z, 4), m2);
            __m512i b01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << (4 * n)))),
                                             _mm256_set1_epi8((char)(1 << (4 * n + 1))), 1);
            __m512i b23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << (4 * n + 2)))),
                                             _mm256_set1_epi8((char)(1 << (4 * n + 3))), 1);
            q01 = _mm512_mask_add_epi8(q01, _mm512_test_epi8_mask(hm, b01), q01, four);
            q23 = _mm512_mask_add_epi8(q23, _mm512_test_epi8_mask(hm, b23), q23, four);
            tot = groups4(tot, q01, b[i].qs + 128 * n, 8 * n, scw);
            tot = groups4(tot, q23, b[i].qs + 128 * n + 64, 8 * n + 4, scw);
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(h2f(a[i].d) * qi_f(b[i].d)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

owl_qdot4_fn owl_qdot4_avx512(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->avx2 && c->fma && c->f16c)) return NULL;
    switch (t) {
    case OWL_Q8_0: return dot4_q8_0;
    case OWL_Q4_0: return dot4_q4_0;
    case OWL_Q4_1: return dot4_q4_1;
    case OWL_Q5_0: return dot4_q5_0;
    case OWL_Q5_1: return dot4_q5_1;
    default: return NULL;
    }
}

owl_qdot_fn owl_qdot_avx512(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (!(c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->avx2 && c->fma && c->f16c)) return NULL;
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
