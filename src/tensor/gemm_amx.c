/* Matrix-matrix product on AMX (tdpbf16ps) with float-like precision.
 *
 * AMX multiplies bf16 (8-bit mantissa) pairs into float sums. Rounding the
 * activations to bf16 would cost ~3 significant digits, so every float is
 * split into two bf16 numbers, x = xh + xl (xh = bf16(x), xl = bf16(x - xh)),
 * which keeps 16 bits of mantissa. Weights: BF16 is exact in one part; F16
 * (11 bits) is exact in two parts; F32 keeps 16 bits in two parts. The
 * product uses the three significant terms:
 *     W x ~ wh xh + wh xl + wl xh    (the dropped wl xl is ~2^-16 relative)
 * (BF16 weights need only the first two.)
 *
 * Tiles: A = 16 weight rows x 32 k (bf16, row-major: a plain copy of the
 * converted rows), B = 32 k x 16 tokens in the pair-interleaved layout AMX
 * wants (packed once per token chunk), C = 16 rows x 16 tokens (float). Each
 * thread works on panels of 32 weight rows and pairs of token tiles: four C
 * tiles, two A tiles, two B tiles. k is blocked so that the A tiles of a
 * panel stay in L1 while the token tiles stream from L2; partial sums live in
 * a per-thread buffer and are transposed into Y at the end of a panel. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma")))

#define PR 32               /* weight rows per panel (two A tiles) */
#define PT 32               /* tokens per pair of B tiles */
#define KB 4                /* 32-wide k chunks per k block (A tiles stay in L1) */
#define X_BUDGET (1u << 20) /* bytes of packed tokens per chunk (kept in L2) */

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

bool owl_gemm_amx_usable(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (owl_kernel_level() != OWL_ISA_AVX512) return false;
    if (!(c->amx_tile && c->amx_bf16 && c->amx_permitted && c->avx512bf16)) return false;
    return t == OWL_F32 || t == OWL_F16 || t == OWL_BF16;
}

/* 32 floats (a: k 0..15, b: k 16..31) to 32 bf16 in k order, and the
 * remainders a - bf16(a), b - bf16(b) in lo_a, lo_b. */
TGT static inline __m512i split_bf16(__m512 a, __m512 b, __m512 *lo_a, __m512 *lo_b) {
    __m512i h = (__m512i)_mm512_cvtne2ps_pbh(b, a);
    __m512 ha = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
    __m512 hb = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
    *lo_a = _mm512_sub_ps(a, ha);
    *lo_b = _mm512_sub_ps(b, hb);
    return h;
}

TGT static inline __m512 load16(owl_dtype t, const void *row, int64_t k, __mmask16 m) {
    if (t == OWL_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i v = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (t == OWL_F16) return _mm512_cvtph_ps(v);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

static inline __mmask16 mask_from(int64_t k, int64_t cols) {
    int64_t left = cols - k;
    if (left >= 16) return (__mmask16)0xffff;
    if (left <= 0) return 0;
    return (__mmask16)((1u << left) - 1);
}

/* Tokens [t0, t0 + 16) (those < n_tok) of X as B tiles: for each 32-wide k
 * chunk c, tiles hi and lo of 16 rows (k pairs) x 16 tokens x 2 bf16. */
TGT static void pack_tokens_tile(const float *X, int64_t cols, int n_tok, int t0, int nkc, uint16_t *dst) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(16));
    for (int c = 0; c < nkc; c++) {
        uint32_t *hi = (uint32_t *)(dst + (size_t)c * 2 * 512), *lo = hi + 256;
        int64_t k = (int64_t)c * 32;
        __mmask16 m0 = mask_from(k, cols), m1 = mask_from(k + 16, cols);
        for (int t = 0; t < 16; t++) {
            __m512i h = _mm512_setzero_si512(), l = h;
            if (t0 + t < n_tok) {
                const float *x = X + (size_t)(t0 + t) * cols;
                __m512 la, lb;
                h = split_bf16(_mm512_maskz_loadu_ps(m0, x + k), _mm512_maskz_loadu_ps(m1, x + k + 16), &la, &lb);
                __m512 dummy_a, dummy_b;
                l = split_bf16(la, lb, &dummy_a, &dummy_b);
            }
            _mm512_i32scatter_epi32(hi + t, idx, h, 4);
            _mm512_i32scatter_epi32(lo + t, idx, l, 4);
        }
    }
}

/* Rows [r, r + nr) of W (nr <= PR) as bf16 rows of kp columns: part 0 (wh)
 * and, unless the weights are BF16, part 1 (wl). Missing rows are zero. */
TGT static void pack_weight_panel(const owl_mat *W, int64_t r, int nr, int64_t kp, uint16_t *dst) {
    const int64_t cols = W->cols;
    bool two = W->dtype != OWL_BF16;
    for (int i = 0; i < PR; i++) {
        uint16_t *h = dst + (size_t)i * kp, *l = dst + (size_t)(PR + i) * kp;
        if (i >= nr) {
            memset(h, 0, (size_t)kp * 2);
            if (two) memset(l, 0, (size_t)kp * 2);
            continue;
        }
        const void *row = (const char *)W->data + (size_t)(r + i) * W->row_bytes;
        for (int64_t k = 0; k < kp; k += 32) {
            __m512 a = load16(W->dtype, row, k, mask_from(k, cols));
            __m512 b = load16(W->dtype, row, k + 16, mask_from(k + 16, cols));
            __m512 la, lb;
            _mm512_store_si512(h + k, split_bf16(a, b, &la, &lb));
            if (two) {
                __m512 d0, d1;
                _mm512_store_si512(l + k, split_bf16(la, lb, &d0, &d1));
            }
        }
    }
}

#define BARRIER() __asm__ volatile("" ::: "memory")

/* One panel of 32 rows against npair pairs of token tiles (packed at xp),
 * partial sums in cb ([pair][4 tiles][16][16] floats). */
TGT static void panel_tiles(const uint16_t *wp, int64_t kp, int nkc, const uint16_t *xp, int npair, float *cb, bool two) {
    const size_t astride = (size_t)kp * 2;
    const uint16_t *wh0 = wp, *wh1 = wp + 16 * (size_t)kp;
    const uint16_t *wl0 = wp + (size_t)PR * kp, *wl1 = wl0 + 16 * (size_t)kp;
    BARRIER();
    for (int c0 = 0; c0 < nkc; c0 += KB) {
        int c1 = c0 + KB < nkc ? c0 + KB : nkc;
        for (int p = 0; p < npair; p++) {
            float *cp = cb + (size_t)p * 4 * 256;
            if (c0 == 0) {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            } else {
                _tile_loadd(0, cp, 64);
                _tile_loadd(1, cp + 256, 64);
                _tile_loadd(2, cp + 512, 64);
                _tile_loadd(3, cp + 768, 64);
            }
            const uint16_t *x0 = xp + (size_t)(2 * p) * nkc * 1024, *x1 = x0 + (size_t)nkc * 1024;
            for (int c = c0; c < c1; c++) {
                const uint16_t *xh0 = x0 + (size_t)c * 1024, *xh1 = x1 + (size_t)c * 1024;
                /* tiles: 0..3 C (rows 0-15 / 16-31 x tokens 0-15 / 16-31), 4-5 A, 6-7 B */
                _tile_loadd(6, xh0, 64);
                _tile_loadd(7, xh1, 64);
                if (two) {
                    _tile_loadd(4, wl0 + c * 32, astride);
                    _tile_loadd(5, wl1 + c * 32, astride);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
                _tile_loadd(4, wh0 + c * 32, astride);
                _tile_loadd(5, wh1 + c * 32, astride);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
                _tile_loadd(6, xh0 + 512, 64);
                _tile_loadd(7, xh1 + 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, cp, 64);
            _tile_stored(1, cp + 256, 64);
            _tile_stored(2, cp + 512, 64);
            _tile_stored(3, cp + 768, 64);
        }
    }
    BARRIER();
}

TGT static void tile_config(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    BARRIER();
    _tile_loadconfig(&cfg);
}

TGT static void tile_release(void) { _tile_release(); }

/* Y rows [r0, r1) for all n_tok tokens; false if scratch memory ran out
 * (nothing written then). */
bool owl_gemm_amx(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    const int64_t cols = W->cols, kp = (cols + 31) / 32 * 32, R = r1 - r0;
    const int nkc = (int)(kp / 32);
    bool two = W->dtype != OWL_BF16;
    /* Token chunk: a multiple of 32 whose packed size fits the budget. */
    int64_t per_tok = kp * 4;
    int chunk = (int)(X_BUDGET / (uint64_t)per_tok) / PT * PT;
    if (chunk < PT) chunk = PT;
    int need = (n_tok + PT - 1) / PT * PT;
    if (chunk > need) chunk = need;
    uint16_t *xp = owl_kernel_scratch(OWL_SCRATCH_AMX_X, (size_t)chunk * (size_t)per_tok);
    if (!xp) return false;
    int64_t panels = (R + PR - 1) / PR;
    int nt = owl_threads();
    if (nt > panels) nt = (int)panels;
    bool ok = true;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(&& : ok)
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int64_t p0 = panels * tid / nth, p1 = panels * (tid + 1) / nth;
        uint16_t *wp = owl_kernel_scratch(OWL_SCRATCH_AMX_W, (size_t)2 * PR * (size_t)kp * 2);
        float *cb = owl_kernel_scratch(OWL_SCRATCH_AMX_C, sizeof(float) * (size_t)chunk * PR);
        bool mine = wp && cb;
        if (mine) tile_config();
        for (int t0 = 0; t0 < n_tok; t0 += chunk) {
            int ntc = n_tok - t0 < chunk ? n_tok - t0 : chunk;
            int ntiles = (ntc + PT - 1) / PT * 2;
#pragma omp for schedule(static)
            for (int tt = 0; tt < ntiles; tt++)
                pack_tokens_tile(X + (size_t)t0 * cols, cols, ntc, tt * 16, nkc, xp + (size_t)tt * nkc * 1024);
            for (int64_t p = p0; mine && p < p1; p++) {
                int64_t r = r0 + p * PR;
                int nr = r1 - r < PR ? (int)(r1 - r) : PR;
                pack_weight_panel(W, r, nr, kp, wp);
                panel_tiles(wp, kp, nkc, xp, ntiles / 2, cb, two);
                /* cb[pair][rt * 2 + tt][row 16][token 16] -> Y[token][row] */
                for (int pr = 0; pr < ntiles / 2; pr++) {
                    for (int q = 0; q < 4; q++) {
                        const float *tile = cb + ((size_t)pr * 4 + q) * 256;
                        int row0 = (q >> 1) * 16, tok0 = pr * PT + (q & 1) * 16;
                        for (int j = 0; j < 16 && tok0 + j < ntc; j++) {
                            float *y = Y + (size_t)(t0 + tok0 + j) * W->rows + r + row0;
                            for (int i = 0; i < 16 && row0 + i < nr; i++) y[i] = tile[i * 16 + j];
                        }
                    }
                }
            }
#pragma omp barrier
        }
        if (mine) tile_release();
        ok = mine;
    }
    return ok;
}
