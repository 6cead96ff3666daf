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
 * Quantized weights are dequantized to float first, then split the same way.
 * Measured on realistic data (768 x 2048, 64 tokens): |Y - Y_exact| / |Y_exact|
 * = 4.6e-6 (F32), 3.9e-6 (F16), 2.6e-6 (BF16); float FMAs give 3e-7.
 *
 * Tiles: A = 16 weight rows x 32 k (bf16, row-major: a plain copy of the
 * converted rows; BF16 rows are used in place), B = 32 k x 16 tokens in the
 * pair-interleaved layout AMX wants, C = 16 rows x 16 tokens (float). Each
 * thread owns a range of 32-row panels and works through
 *   token chunks (<= 512) > panel groups (sums <= 4 MiB) > k blocks (packed
 *   tokens <= 1 MiB, in L2) > panels > pairs of token tiles > 32-wide k,
 * with four C tiles (32 rows x 32 tokens), two A tiles and two B tiles. Each
 * thread packs the tokens it needs itself (no barriers); the sums of a
 * group stay in a per-thread buffer across the k blocks and are transposed
 * into Y once. */
#include "tensor/avx512_util.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define TGT __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma")))

#define PR 32               /* weight rows per panel (two A tiles) */
#define PT 32               /* tokens per pair of B tiles */
#define KB 4                /* 32-wide k chunks per k block (A tiles stay in L1) */
#define X_BUDGET (1u << 20) /* bytes of packed tokens per k block (kept in L2) */
#define MAX_CHUNK 512       /* tokens per chunk (weights are converted once per chunk) */
static size_t c_budget = 4u << 20; /* bytes of partial sums per thread (a group of panels) */

void owl_gemm_amx_set_budget(size_t bytes) { c_budget = bytes ? bytes : 4u << 20; }

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
    if (t == OWL_F32 || t == OWL_F16 || t == OWL_BF16) return true;
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    return d && d->quantized && owl_quant_supported(t);
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

/* The bf16 of 32 floats in k order (a: k 0..15, b: k 16..31). */
TGT static inline __m512i to_bf16(__m512 a, __m512 b) { return (__m512i)_mm512_cvtne2ps_pbh(b, a); }

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

/* Tokens [t0, t0 + 16) (those < n_tok) of X (row stride ldx, klen columns
 * from X on) as B tiles: for each 32-wide k chunk c, tiles hi and lo of 16
 * rows (k pairs) x 16 tokens x 2 bf16. Columns past klen are zero. */
TGT static void pack_tokens_tile(const float *X, int64_t ldx, int64_t klen, int n_tok, int t0, int nkc, uint16_t *dst) {
    for (int c = 0; c < nkc; c++) {
        __m512i *hi = (__m512i *)(dst + (size_t)c * 2 * 512), *lo = hi + 16;
        int64_t k = (int64_t)c * 32;
        __mmask16 m0 = mask_from(k, klen), m1 = mask_from(k + 16, klen);
        __m512i h[16], l[16];
        for (int t = 0; t < 16; t++) {
            h[t] = l[t] = _mm512_setzero_si512();
            if (t0 + t < n_tok) {
                const float *x = X + (size_t)(t0 + t) * ldx;
                __m512 la, lb;
                h[t] = split_bf16(_mm512_maskz_loadu_ps(m0, x + k), _mm512_maskz_loadu_ps(m1, x + k + 16), &la, &lb);
                l[t] = to_bf16(la, lb);
            }
        }
        owl_transpose16_avx512(h);
        owl_transpose16_avx512(l);
        for (int i = 0; i < 16; i++) {
            _mm512_store_si512(hi + i, h[i]);
            _mm512_store_si512(lo + i, l[i]);
        }
    }
}

/* Rows [r, r + nr) of W (nr <= PR), columns [k0, k0 + kb) (kb a multiple
 * of 32; columns past W->cols are zero) as bf16 rows of kb: part 0 (wh) and,
 * unless the weights are BF16, part 1 (wl) PR rows later. Missing rows are
 * zero. */
TGT static void pack_weight_panel(const owl_mat *W, int64_t r, int nr, int64_t k0, int64_t kb, uint16_t *dst, float *tmp) {
    const int64_t klen = W->cols - k0;
    const owl_dtype_info *d = owl_dtype_get((uint32_t)W->dtype);
    const size_t esz = d->quantized ? 4 : (size_t)d->block_bytes;
    owl_dtype lt = d->quantized ? OWL_F32 : W->dtype; /* quantized rows are dequantized into tmp first */
    bool two = W->dtype != OWL_BF16;
    for (int i = 0; i < PR; i++) {
        uint16_t *h = dst + (size_t)i * kb, *l = dst + (size_t)(PR + i) * kb;
        if (i >= nr) {
            memset(h, 0, (size_t)kb * 2);
            if (two) memset(l, 0, (size_t)kb * 2);
            continue;
        }
        const void *row;
        if (d->quantized) {
            /* k0 and the slice are whole blocks (k blocks are multiples of 256) */
            int64_t n = klen < kb ? klen : kb;
            owl_quant_dequantize_row(W->dtype, (const char *)W->data + (size_t)(r + i) * W->row_bytes +
                                                   (size_t)(k0 / d->block) * (size_t)d->block_bytes,
                                     tmp, n);
            row = tmp;
        } else {
            row = (const char *)W->data + (size_t)(r + i) * W->row_bytes + (size_t)k0 * esz;
            /* short row pieces do not wake the hardware prefetcher: fetch
             * the piece of the row 4 below (the next panel's at the end) */
            const char *ahead = (const char *)row + 4 * W->row_bytes;
            for (int64_t b = 0; b < kb * (int64_t)esz; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
        }
        for (int64_t k = 0; k < kb; k += 32) {
            __m512 a = load16(lt, row, k, mask_from(k, klen));
            __m512 b = load16(lt, row, k + 16, mask_from(k + 16, klen));
            __m512 la, lb;
            _mm512_store_si512(h + k, split_bf16(a, b, &la, &lb));
            if (two) _mm512_store_si512(l + k, to_bf16(la, lb));
        }
    }
}

#define BARRIER() __asm__ volatile("" ::: "memory")

/* One panel of 32 rows against npair pairs of token tiles (packed at xp),
 * partial sums in cb ([pair][4 tiles][16][16] floats; acc: add to them). */
TGT static void panel_tiles(const uint16_t *wh, const uint16_t *wl, size_t astride, int nkc, const uint16_t *xp, int npair,
                            float *cb, bool two, bool acc) {
    const uint16_t *wh0 = wh, *wh1 = (const uint16_t *)((const char *)wh + 16 * astride);
    const uint16_t *wl0 = wl, *wl1 = two ? (const uint16_t *)((const char *)wl + 16 * astride) : NULL;
    BARRIER();
    for (int c0 = 0; c0 < nkc; c0 += KB) {
        int c1 = c0 + KB < nkc ? c0 + KB : nkc;
        for (int p = 0; p < npair; p++) {
            float *cp = cb + (size_t)p * 4 * 256;
            if (c0 == 0 && !acc) {
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

/* cb[pair][q = rows/16 * 2 + tokens/16][row 16][token 16] -> y[token][row]
 * for tokens < ntc and rows < nr. */
TGT static void write_back(const float *cb, int npair, int ntc, int nr, float *y, int64_t ldy) {
    for (int pr = 0; pr < npair; pr++) {
        for (int q = 0; q < 4; q++) {
            const float *tile = cb + ((size_t)pr * 4 + q) * 256;
            int row0 = (q >> 1) * 16, tok0 = pr * PT + (q & 1) * 16;
            if (row0 >= nr || tok0 >= ntc) continue;
            int left = nr - row0;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            __m512i v[16];
            for (int i = 0; i < 16; i++) v[i] = _mm512_load_si512(tile + i * 16);
            owl_transpose16_avx512(v);
            for (int j = 0; j < 16 && tok0 + j < ntc; j++) {
                _mm512_mask_storeu_ps(y + (size_t)(tok0 + j) * ldy + row0, m, _mm512_castsi512_ps(v[j]));
            }
        }
    }
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
 * (nothing written then). Each thread packs the token block it needs
 * itself: more packing, but no barriers, so a thread that the system holds
 * back delays only its own rows. */
bool owl_gemm_amx(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    const int64_t cols = W->cols, R = r1 - r0;
    bool two = W->dtype != OWL_BF16;
    /* Token chunk up to MAX_CHUNK, then a k block whose packed tokens fit the
     * budget (a multiple of 32 columns, at least 128). */
    int n_chunks = (n_tok + MAX_CHUNK - 1) / MAX_CHUNK; /* balanced: 513 tokens are 2 x 288, not 512 + 32 */
    int chunk = ((n_tok + n_chunks - 1) / n_chunks + PT - 1) / PT * PT;
    int64_t kblk = (int64_t)(X_BUDGET / (4u * (unsigned)chunk)) / 32 * 32;
    if (kblk < 256) kblk = 256; /* a multiple of every block size (32, 256) */
    kblk = kblk / 256 * 256;
    int64_t kp = (cols + 31) / 32 * 32;
    if (kblk > kp) kblk = kp;
    int64_t panels = (R + PR - 1) / PR;
    int nt = owl_threads();
    if (nt > panels) nt = (int)panels;
    bool ok = true;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(&& : ok)
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int64_t p0 = panels * tid / nth, p1 = panels * (tid + 1) / nth;
        uint16_t *xp = owl_kernel_scratch(OWL_SCRATCH_AMX_X, (size_t)chunk * (size_t)kblk * 4);
        uint16_t *wp = owl_kernel_scratch(OWL_SCRATCH_AMX_W, (size_t)2 * PR * (size_t)kblk * 2);
        float *tmp = owl_kernel_scratch(OWL_SCRATCH_AMX_ROW, sizeof(float) * (size_t)kblk);
        int64_t group = (int64_t)(c_budget / (sizeof(float) * (size_t)chunk * PR));
        if (group < 1) group = 1;
        if (group > p1 - p0) group = p1 - p0 > 0 ? p1 - p0 : 1;
        float *cb = owl_kernel_scratch(OWL_SCRATCH_AMX_C, sizeof(float) * (size_t)chunk * PR * (size_t)group);
        bool mine = xp && wp && cb && tmp;
        if (mine && p0 < p1) {
            tile_config();
            for (int t0 = 0; t0 < n_tok; t0 += chunk) {
                int ntc = n_tok - t0 < chunk ? n_tok - t0 : chunk;
                int ntiles = (ntc + PT - 1) / PT * 2;
                /* Panels in groups whose sums stay in cb across the k blocks;
                 * the tokens are packed again for each group. */
                for (int64_t g0 = p0; g0 < p1; g0 += group) {
                    int64_t g1 = g0 + group < p1 ? g0 + group : p1;
                    for (int64_t k0 = 0; k0 < cols; k0 += kblk) {
                        int64_t klen = cols - k0 < kblk ? cols - k0 : kblk;
                        int nkc = (int)((klen + 31) / 32);
                        int64_t kb = (int64_t)nkc * 32;
                        for (int tt = 0; tt < ntiles; tt++)
                            pack_tokens_tile(X + (size_t)t0 * cols + k0, cols, klen, ntc, tt * 16, nkc,
                                             xp + (size_t)tt * nkc * 1024);
                        for (int64_t p = g0; p < g1; p++) {
                            int64_t r = r0 + p * PR;
                            int nr = r1 - r < PR ? (int)(r1 - r) : PR;
                            float *c = cb + (size_t)(p - g0) * (size_t)chunk * PR;
                            if (!two && nr == PR && cols % 32 == 0) {
                                /* BF16 rows are A tiles as they are */
                                const char *a = (const char *)W->data + (size_t)r * W->row_bytes + (size_t)k0 * 2;
                                panel_tiles((const uint16_t *)a, NULL, W->row_bytes, nkc, xp, ntiles / 2, c, false, k0 > 0);
                            } else {
                                pack_weight_panel(W, r, nr, k0, kb, wp, tmp);
                                panel_tiles(wp, wp + (size_t)PR * kb, (size_t)kb * 2, nkc, xp, ntiles / 2, c, two, k0 > 0);
                            }
                        }
                    }
                    for (int64_t p = g0; p < g1; p++) {
                        int64_t r = r0 + p * PR;
                        int nr = r1 - r < PR ? (int)(r1 - r) : PR;
                        write_back(cb + (size_t)(p - g0) * (size_t)chunk * PR, ntiles / 2, ntc, nr,
                                   Y + (size_t)t0 * W->rows + r, W->rows);
                    }
                }
            }
            tile_release();
        }
        ok = mine;
    }
    return ok;
}
