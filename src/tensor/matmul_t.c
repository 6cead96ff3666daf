/* The transposed product dX = dY W of the backward pass through a frozen
 * weight matrix W (rows x cols, any dtype owl_to_f32 converts): dX[t][c] =
 * sum_r dY[t][r] W[r][c].
 *
 * The sum runs over W's rows, so each thread takes a contiguous range of
 * rows (whole rows: quantized blocks never straddle a thread) and owns a
 * private n_tok x cols partial sum; the partials are added in thread order
 * at the end, so the result is the same for the same number of threads.
 * Inside a range, KR rows at a time are converted to float and laid out as
 * panels of OWL_GEMM_MR columns ([k][MR]), dY's matching columns as token
 * panels ([k][NR]), and the register-blocked micro-kernel of owl_matmul does
 * the multiply-adds (C[token][column] += sum_k wp[k][column] xp[k][token]).
 * The scalar path (owl_cpu_force_scalar) is plain loops. */
#include "tensor/kernels.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MR OWL_GEMM_MR
#define NR OWL_GEMM_NR
#define KR 64                  /* rows of W converted at once */
#define MIN_PAR_WORK (1 << 17) /* multiply-adds below which one thread is faster */

/* Rows [r_lo, r_hi) into out (n_tok x cols, accumulating), plain loops. */
static bool range_scalar(const owl_mat *W, const float *dY, float *out, int n_tok, int64_t r_lo, int64_t r_hi) {
    const int64_t cols = W->cols;
    float *w = malloc(sizeof(float) * (size_t)(cols > 0 ? cols : 1));
    if (!w) return false;
    for (int64_t r = r_lo; r < r_hi; r++) {
        if (owl_to_f32(W->dtype, (const char *)W->data + (size_t)r * W->row_bytes, w, cols) != OWL_OK) {
            free(w);
            return false;
        }
        for (int t = 0; t < n_tok; t++) {
            const float g = dY[(size_t)t * (size_t)W->rows + (size_t)r];
            if (g == 0.0f) continue;
            float *o = out + (size_t)t * (size_t)cols;
            for (int64_t c = 0; c < cols; c++) o[c] += g * w[c];
        }
    }
    free(w);
    return true;
}

/* The same with the micro-kernel. wbuf: KR x cols floats, wp: panels
 * (cols/MR rounded up) x KR x MR, xp: token blocks x KR x NR. */
static bool range_blocked(const owl_mat *W, const float *dY, float *out, int n_tok, int64_t r_lo, int64_t r_hi,
                          owl_kernel_isa isa, float *wbuf, float *wp, float *xp) {
    const int64_t cols = W->cols, ldy = W->rows;
    const int n_panels = (int)((cols + MR - 1) / MR), n_blocks = (n_tok + NR - 1) / NR;
    _Alignas(64) float ctile[NR * MR];
    for (int64_t r0 = r_lo; r0 < r_hi; r0 += KR) {
        const int kr = r_hi - r0 < KR ? (int)(r_hi - r0) : KR;
        for (int k = 0; k < kr; k++)
            if (owl_to_f32(W->dtype, (const char *)W->data + (size_t)(r0 + k) * W->row_bytes,
                           wbuf + (size_t)k * (size_t)cols, cols) != OWL_OK)
                return false;
        for (int p = 0; p < n_panels; p++) {
            float *d = wp + (size_t)p * KR * MR;
            const int64_t c0 = (int64_t)p * MR;
            const int nc = cols - c0 < MR ? (int)(cols - c0) : MR;
            for (int k = 0; k < kr; k++) {
                memcpy(d + (size_t)k * MR, wbuf + (size_t)k * (size_t)cols + c0, sizeof(float) * (size_t)nc);
                for (int i = nc; i < MR; i++) d[(size_t)k * MR + i] = 0.0f;
            }
        }
        for (int b = 0; b < n_blocks; b++) {
            float *d = xp + (size_t)b * KR * NR;
            const int t0 = b * NR, ntb = n_tok - t0 < NR ? n_tok - t0 : NR;
            for (int k = 0; k < kr; k++) {
                int j = 0;
                for (; j < ntb; j++) d[(size_t)k * NR + j] = dY[(size_t)(t0 + j) * (size_t)ldy + (size_t)(r0 + k)];
                for (; j < NR; j++) d[(size_t)k * NR + j] = 0.0f;
            }
        }
        for (int p = 0; p < n_panels; p++) {
            const int64_t c0 = (int64_t)p * MR;
            const int nc = cols - c0 < MR ? (int)(cols - c0) : MR;
            const float *wpp = wp + (size_t)p * KR * MR;
            for (int b = 0; b < n_blocks; b++) {
                const int t0 = b * NR, ntb = n_tok - t0 < NR ? n_tok - t0 : NR;
                const float *xb = xp + (size_t)b * KR * NR;
                float *c = out + (size_t)t0 * (size_t)cols + c0;
                if (nc == MR && ntb == NR) {
                    if (isa == OWL_ISA_AVX512) owl_gemm_micro_avx512(wpp, xb, kr, c, cols, true);
                    else owl_gemm_micro_avx2(wpp, xb, kr, c, cols, true);
                    continue;
                }
                for (int j = 0; j < NR; j++)
                    for (int i = 0; i < MR; i++) ctile[j * MR + i] = j < ntb && i < nc ? c[(size_t)j * (size_t)cols + i] : 0.0f;
                if (isa == OWL_ISA_AVX512) owl_gemm_micro_avx512(wpp, xb, kr, ctile, MR, true);
                else owl_gemm_micro_avx2(wpp, xb, kr, ctile, MR, true);
                for (int j = 0; j < ntb; j++)
                    memcpy(c + (size_t)j * (size_t)cols, ctile + j * MR, sizeof(float) * (size_t)nc);
            }
        }
    }
    return true;
}

owl_status owl_matmul_t(const owl_mat *W, const float *dY, float *dX, int n_tok, bool acc) {
    if (!W || !W->data || W->rows < 1 || W->cols < 1 || n_tok < 0)
        return owl_errorf(OWL_ERR_ARG, "owl_matmul_t: no matrix or %d tokens", n_tok);
    const owl_dtype_info *di = owl_dtype_get((uint32_t)W->dtype);
    if (!di || !di->name || !owl_matmul_supported(W->dtype))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "owl_matmul_t: weights of type %s", owl_dtype_name(W->dtype));
    const int64_t rows = W->rows, cols = W->cols;
    const size_t out_n = (size_t)n_tok * (size_t)cols;
    if (!acc) memset(dX, 0, sizeof(float) * out_n);
    if (n_tok == 0) return OWL_OK;
    const owl_kernel_isa isa = owl_kernel_level();
    int nt = owl_threads();
    if ((double)rows * (double)cols * (double)n_tok < MIN_PAR_WORK) nt = 1;
    if (nt > rows / KR) nt = rows / KR > 0 ? (int)(rows / KR) : 1;
    /* partial sums of threads 1..nt-1 (thread 0 adds into dX) */
    float *part = NULL;
    if (nt > 1) {
        part = owl_kernel_scratch(OWL_SCRATCH_AMX_ROW, sizeof(float) * out_n * (size_t)(nt - 1));
        if (part) memset(part, 0, sizeof(float) * out_n * (size_t)(nt - 1));
        else nt = 1;
    }
    const int n_panels = (int)((cols + MR - 1) / MR), n_blocks = (n_tok + NR - 1) / NR;
    int ok_all = 1;
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(& : ok_all)
    {
        const int tid = omp_get_thread_num();
        /* row ranges in whole KR chunks, thread order */
        const int64_t chunks = (rows + KR - 1) / KR;
        const int64_t lo = chunks * tid / nt * KR, hi_c = chunks * (tid + 1) / nt * KR;
        const int64_t hi = hi_c < rows ? hi_c : rows;
        float *out = tid == 0 ? dX : part + out_n * (size_t)(tid - 1);
        bool ok = true;
        if (isa == OWL_ISA_SCALAR) {
            ok = range_scalar(W, dY, out, n_tok, lo, hi);
        } else {
            /* this thread's scratch of owl_matmul (not in use here): no allocation per call */
            float *wbuf = owl_kernel_scratch(OWL_SCRATCH_AMX_W, sizeof(float) * (size_t)KR * (size_t)cols);
            float *wp = owl_kernel_scratch(OWL_SCRATCH_AMX_X, sizeof(float) * (size_t)n_panels * KR * MR);
            float *xp = owl_kernel_scratch(OWL_SCRATCH_AMX_C, sizeof(float) * (size_t)n_blocks * KR * NR);
            ok = wbuf && wp && xp && range_blocked(W, dY, out, n_tok, lo, hi, isa, wbuf, wp, xp);
        }
        ok_all = ok ? 1 : 0;
    }
    if (part) {
        if (ok_all) {
            /* add the partials in thread order, parallel over the output */
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int t = 0; t < n_tok; t++) {
                float *o = dX + (size_t)t * (size_t)cols;
                for (int k = 0; k < nt - 1; k++) {
                    const float *p = part + out_n * (size_t)k + (size_t)t * (size_t)cols;
#pragma omp simd
                    for (int64_t c = 0; c < cols; c++) o[c] += p[c];
                }
            }
        }
    }
    if (!ok_all) return owl_errorf(OWL_ERR_NOMEM, "owl_matmul_t: scratch for %lld x %lld weights and %d tokens",
                                   (long long)rows, (long long)cols, n_tok);
    return OWL_OK;
}
