/* Matrix-matrix product of quantized weights with many tokens on AVX-512
 * VNNI (vpdpbusd), for prompt processing on CPUs without AMX.
 *
 * Both sides are int8 levels with one float scale per 32-element block:
 *   activations: each token row quantized to Q8_0 once per product (the
 *     dot partner the matrix-vector path uses for the 32-element types);
 *   weights: Q8_0 levels and Q4_0 levels (q - 8) as they are, with their
 *     fp16 scales (exact); other types are dequantized and re-quantized to
 *     Q8_0 per row, an error below half a step of Q8_0 -- finer than the
 *     4-6 bit levels of the type itself.
 * vpdpbusd multiplies unsigned by signed bytes, so the weights are stored
 * as w + 128 and each (token, block) integer sum starts at -128 * sum(x)
 * of the block: the sums are exact integers, and the float work is one
 * multiply-add per (row, token, block):
 *     y[t][r] += (dw[r][b] * dx[t][b]) * isum[r][t][b].
 *
 * Each thread owns a range of 32-row weight panels; a panel is packed once
 * for all tokens as [block][4-byte group j][row][4 bytes] (a zmm holds
 * group j of 16 rows) plus the scales [block][row]. The micro-kernel keeps
 * 32 rows x 6 tokens: 12 integer and 12 float accumulators, one weight load
 * per 16 rows and 4 bytes of k, the token bytes broadcast. */
#include "tensor/avx512_util.h"
#include "tensor/kernels.h"
#include "tensor/quant_internal.h"

#include <immintrin.h>
#include <omp.h>
#include <stdatomic.h>

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define PR 32 /* rows per panel */
#define NT 6  /* tokens per micro-kernel */
#define PANEL_BLOCK_BYTES (32 * PR) /* packed bytes of one block of a panel */

bool owl_gemm_q8_usable(owl_dtype t) {
    const owl_cpu *c = owl_cpu_get();
    if (owl_kernel_level() != OWL_ISA_AVX512 || !c->avx512vnni || !c->f16c || !c->fma) return false;
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    return d && d->quantized && owl_quant_supported(t);
}

/* Row levels as Q8_0 blocks (nb of them): the row itself for Q8_0, Q4_0
 * unpacked exactly, other types dequantized and re-quantized. tmp holds
 * nb * 32 floats. Returns the blocks (the row or q). */
TGT static const blk_q8_0 *row_q8(owl_dtype t, const void *row, int64_t cols, blk_q8_0 *q, float *tmp) {
    const int64_t nb = cols / QK;
    if (t == OWL_Q8_0) return row;
    if (t == OWL_Q4_0) {
        const blk_q4_0 *a = row;
        const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
        for (int64_t b = 0; b < nb; b++) {
            __m128i v = _mm_loadu_si128((const __m128i *)a[b].qs);
            __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
            _mm256_storeu_si256((__m256i *)q[b].qs, _mm256_sub_epi8(_mm256_and_si256(z, m4), eight));
            memcpy(q[b].d, a[b].d, 2);
        }
        return q;
    }
    owl_quant_dequantize_row(t, row, tmp, cols);
    if (owl_quant_quantize_row(OWL_Q8_0, tmp, q, cols) != OWL_OK) memset(q, 0, sizeof *q * (size_t)nb);
    return q;
}

/* Packs rows [r, r + nr) (nr <= PR) of W: levels + 128 into wp, scales into
 * ws ([b][PR] floats); missing rows are zero weights. rq: PR rows of nb
 * Q8_0 blocks for the rows that are converted; tmp: a row of floats. Two
 * blocks of 16 rows at a time are one 16 x 16 transpose of 4-byte groups:
 * row i's register holds groups 0-7 of block b and of block b + 1. */
TGT static void pack_panel(const owl_mat *W, int64_t r, int nr, uint8_t *wp, float *ws, blk_q8_0 *rq, float *tmp) {
    const int64_t nb = W->cols / QK;
    const blk_q8_0 *rows[PR];
    for (int i = 0; i < PR; i++) {
        if (i >= nr) {
            rows[i] = NULL;
            continue;
        }
        rows[i] = row_q8(W->dtype, (const char *)W->data + (size_t)(r + i) * W->row_bytes, W->cols, rq + (size_t)i * nb, tmp);
    }
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b += 2) {
        bool two = b + 1 < nb;
        for (int h = 0; h < 2; h++) {
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                const blk_q8_0 *a = rows[16 * h + i];
                if (!a) {
                    v[i] = flip; /* level 0 */
                    continue;
                }
                /* 32 rows are more streams than the hardware prefetcher
                 * follows: fetch each row 16 blocks ahead */
                _mm_prefetch((const char *)(a + b + 16), _MM_HINT_T0);
                _mm_prefetch((const char *)(a + b + 16) + 64, _MM_HINT_T0);
                __m256i lo = _mm256_loadu_si256((const __m256i *)a[b].qs);
                __m256i hi = two ? _mm256_loadu_si256((const __m256i *)a[b + 1].qs) : _mm256_setzero_si256();
                v[i] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
            }
            owl_transpose16_avx512(v);
            for (int g = 0; g < 8; g++) {
                _mm512_store_si512((void *)(wp + (size_t)b * PANEL_BLOCK_BYTES + g * 4 * PR + h * 64), v[g]);
                if (two) _mm512_store_si512((void *)(wp + (size_t)(b + 1) * PANEL_BLOCK_BYTES + g * 4 * PR + h * 64), v[8 + g]);
            }
        }
    }
    for (int i = 0; i < PR; i++) {
        const blk_q8_0 *a = rows[i];
        for (int64_t b = 0; b < nb; b++) ws[b * PR + i] = a ? _cvtsh_ss((uint16_t)(a[b].d[0] | (a[b].d[1] << 8))) : 0.0f;
    }
}

/* The micro-kernel: 32 rows x N tokens over nb blocks. xl[t]: the token's
 * levels (nb * 32 bytes), xd[t] its block scales, xc[t] its -128 * block
 * sums; y[t]: where the token's 32 outputs go (m: the valid rows). */
static inline __attribute__((always_inline)) TGT void kernel(const uint8_t *wp, const float *ws, int64_t nb,
                                                            const int8_t *const *xl, const float *const *xd,
                                                            const int32_t *const *xc, float *const *y, __mmask16 m0,
                                                            __mmask16 m1, const int N) {
    __m512 f0[NT], f1[NT];
    __m512i i0[NT], i1[NT];
#pragma GCC unroll 6
    for (int t = 0; t < N; t++) f0[t] = f1[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *w = wp + (size_t)b * PANEL_BLOCK_BYTES;
#pragma GCC unroll 6
        for (int t = 0; t < N; t++) i0[t] = i1[t] = _mm512_set1_epi32(xc[t][b]);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i w0 = _mm512_load_si512((const void *)(w + j * 4 * PR));
            __m512i w1 = _mm512_load_si512((const void *)(w + j * 4 * PR + 64));
#pragma GCC unroll 6
            for (int t = 0; t < N; t++) {
                int32_t v;
                memcpy(&v, xl[t] + b * QK + 4 * j, 4);
                __m512i x = _mm512_set1_epi32(v);
                i0[t] = _mm512_dpbusd_epi32(i0[t], w0, x);
                i1[t] = _mm512_dpbusd_epi32(i1[t], w1, x);
            }
        }
        __m512 s0 = _mm512_load_ps(ws + b * PR), s1 = _mm512_load_ps(ws + b * PR + 16);
#pragma GCC unroll 6
        for (int t = 0; t < N; t++) {
            __m512 d = _mm512_set1_ps(xd[t][b]);
            f0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(s0, d), f0[t]);
            f1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(s1, d), f1[t]);
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < N; t++) {
        _mm512_mask_storeu_ps(y[t], m0, f0[t]);
        _mm512_mask_storeu_ps(y[t] + 16, m1, f1[t]);
    }
}

TGT static void kernel_n(int n, const uint8_t *wp, const float *ws, int64_t nb, const int8_t *const *xl, const float *const *xd,
                         const int32_t *const *xc, float *const *y, __mmask16 m0, __mmask16 m1) {
    switch (n) {
    case 6: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 6); break;
    case 5: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 5); break;
    case 4: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 4); break;
    case 3: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 3); break;
    case 2: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 2); break;
    default: kernel(wp, ws, nb, xl, xd, xc, y, m0, m1, 1); break;
    }
}

/* Token t's row quantized to Q8_0, split into levels, scales and -128 x
 * block sums. */
TGT static void quantize_token(const float *x, int64_t cols, blk_q8_0 *q, int8_t *xl, float *xd, int32_t *xc) {
    const int64_t nb = cols / QK;
    if (owl_quant_quantize_row(OWL_Q8_0, x, q, cols) != OWL_OK) memset(q, 0, sizeof *q * (size_t)nb);
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)q[b].qs);
        _mm256_storeu_si256((__m256i *)(xl + b * QK), v);
        /* sum of the signed levels: maddubs(1, v) gives pairs, madd ones the rest */
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, v), _mm256_set1_epi16(1));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        xc[b] = -128 * _mm_cvtsi128_si32(s);
        xd[b] = _cvtsh_ss((uint16_t)(q[b].d[0] | (q[b].d[1] << 8)));
    }
}

typedef struct q8_job {
    const owl_mat *W;
    const float *X;
    float *Y;
    int n_tok;
    int64_t r0, r1, nb;
    int8_t *xl;
    float *xd;
    int32_t *xc;
    _Atomic int failed;
} q8_job;

/* Per-thread buffers: a panel's rows as Q8_0 blocks, a row of floats, a packed panel and
 * its scales. */
typedef struct q8_bufs {
    blk_q8_0 *q;
    float *tmp, *ws;
    uint8_t *wp;
} q8_bufs;

static bool get_bufs(int64_t nb, q8_bufs *b) {
    size_t qbytes = (sizeof(blk_q8_0) * (size_t)nb * PR + 63) & ~(size_t)63; /* then 64-byte aligned floats */
    b->q = owl_kernel_scratch(OWL_SCRATCH_AMX_ROW, qbytes + sizeof(float) * (size_t)nb * QK);
    b->tmp = b->q ? (float *)(void *)((char *)b->q + qbytes) : NULL;
    b->wp = owl_kernel_scratch(OWL_SCRATCH_AMX_W, (size_t)nb * PANEL_BLOCK_BYTES);
    b->ws = owl_kernel_scratch(OWL_SCRATCH_AMX_C, sizeof(float) * (size_t)nb * PR);
    return b->q && b->wp && b->ws;
}

/* Chunk c: tokens [8c, 8c + 8) quantized. */
static void quant_chunk(void *arg, int64_t c) {
    q8_job *j = arg;
    q8_bufs b;
    if (!get_bufs(j->nb, &b)) {
        atomic_store(&j->failed, 1);
        return;
    }
    const int64_t cols = j->W->cols;
    for (int64_t t = c * 8; t < c * 8 + 8 && t < j->n_tok; t++)
        quantize_token(j->X + (size_t)t * cols, cols, b.q, j->xl + (size_t)t * cols, j->xd + (size_t)t * j->nb,
                       j->xc + (size_t)t * j->nb);
}

/* Chunk p: panel p (rows r0 + 32p ...) for all tokens. */
static void panel_chunk(void *arg, int64_t p) {
    q8_job *j = arg;
    const owl_mat *W = j->W;
    const int64_t cols = W->cols, nb = j->nb;
    q8_bufs b;
    if (atomic_load(&j->failed) || !get_bufs(nb, &b)) {
        atomic_store(&j->failed, 1);
        return;
    }
    int64_t r = j->r0 + p * PR;
    int nr = j->r1 - r < PR ? (int)(j->r1 - r) : PR;
    pack_panel(W, r, nr, b.wp, b.ws, b.q, b.tmp);
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    for (int t0 = 0; t0 < j->n_tok; t0 += NT) {
        int n = j->n_tok - t0 < NT ? j->n_tok - t0 : NT;
        const int8_t *pl[NT];
        const float *pd[NT];
        const int32_t *pc[NT];
        float *py[NT];
        for (int t = 0; t < n; t++) {
            pl[t] = j->xl + (size_t)(t0 + t) * cols;
            pd[t] = j->xd + (size_t)(t0 + t) * nb;
            pc[t] = j->xc + (size_t)(t0 + t) * nb;
            py[t] = j->Y + (size_t)(t0 + t) * W->rows + r;
        }
        kernel_n(n, b.wp, b.ws, nb, pl, pd, pc, py, m0, m1);
    }
}

/* Runs the chunks on the pool, or with OpenMP when it is busy. */
static void run_chunks(owl_chunk_fn fn, q8_job *j, int64_t n, int nt) {
    if (owl_kernel_pool_run(fn, j, n, nt)) return;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < n; c++) fn(j, c);
}

bool owl_gemm_q8(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    const int64_t cols = W->cols, R = r1 - r0, nb = cols / QK;
    if (cols % QK != 0 || cols % owl_dtype_get((uint32_t)W->dtype)->block != 0 || R <= 0 || n_tok <= 0) return false;
    /* the activations, shared by the threads */
    int8_t *xl = owl_kernel_scratch(OWL_SCRATCH_QUANT, (size_t)n_tok * (size_t)cols + (size_t)n_tok * (size_t)nb * 8);
    if (!xl) return false;
    q8_job j = {.W = W, .X = X, .Y = Y, .n_tok = n_tok, .r0 = r0, .r1 = r1, .nb = nb, .xl = xl};
    j.xd = (float *)(void *)(xl + (size_t)n_tok * (size_t)cols);
    j.xc = (int32_t *)(void *)(j.xd + (size_t)n_tok * (size_t)nb);
    atomic_init(&j.failed, 0);
    int64_t panels = (R + PR - 1) / PR;
    int nt = owl_threads();
    if ((int64_t)n_tok * R * cols < (1 << 16)) nt = 1;
    run_chunks(quant_chunk, &j, (n_tok + 7) / 8, nt);
    if (!atomic_load(&j.failed)) run_chunks(panel_chunk, &j, panels, nt);
    return !atomic_load(&j.failed);
}
