/* tensor/ internal: the per-ISA kernels behind owl_to_f32, owl_dot_f32 and
 * owl_matmul. Each family has a scalar reference (always available) and
 * AVX2 / AVX-512 versions compiled with function-level target attributes,
 * picked at run time by owl_kernel_level(). Not part of the tensor/ API. */
#ifndef OWL_TENSOR_KERNELS_H
#define OWL_TENSOR_KERNELS_H

#include "tensor/tensor.h"

typedef enum owl_kernel_isa {
    OWL_ISA_SCALAR = 0,
    OWL_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    OWL_ISA_AVX512 = 2, /* AVX-512 F/BW/VL */
} owl_kernel_isa;

/* The widest path allowed now (honours owl_cpu_force_scalar and OWL_CPU). */
owl_kernel_isa owl_kernel_level(void);

/* ---- conversions (n >= 0, any n) ---- */
void owl_cvt_f16_f32_avx2(const uint16_t *src, float *dst, int64_t n);
void owl_cvt_f32_f16_avx2(const float *src, uint16_t *dst, int64_t n);
void owl_cvt_bf16_f32_avx2(const uint16_t *src, float *dst, int64_t n);
void owl_cvt_f32_bf16_avx2(const float *src, uint16_t *dst, int64_t n);
void owl_cvt_f16_f32_avx512(const uint16_t *src, float *dst, int64_t n);
void owl_cvt_f32_f16_avx512(const float *src, uint16_t *dst, int64_t n);
void owl_cvt_bf16_f32_avx512(const uint16_t *src, float *dst, int64_t n);
void owl_cvt_f32_bf16_avx512(const float *src, uint16_t *dst, int64_t n);
/* Converts n elements of a plain float type (F32, F16, BF16) to float with
 * the best path; other types are not handled here. */
void owl_cvt_row_f32(owl_dtype t, const void *src, float *dst, int64_t n);

/* ---- dot products: a of type t (F32, F16, BF16), b float ---- */
float owl_dot_scalar(owl_dtype t, const void *a, const float *b, int64_t n);
float owl_dot_avx2(owl_dtype t, const void *a, const float *b, int64_t n);
float owl_dot_avx512(owl_dtype t, const void *a, const float *b, int64_t n);
/* Four rows at once (rows a, a + stride, a + 2 stride, a + 3 stride bytes)
 * against the same b: out[i] = dot(row i, b). Shares the loads of b. */
void owl_dot4_avx2(owl_dtype t, const void *a, size_t stride, const float *b, int64_t n, float out[4]);
void owl_dot4_avx512(owl_dtype t, const void *a, size_t stride, const float *b, int64_t n, float out[4]);

/* ---- blocked matrix-matrix micro-kernels ----
 * A tile of OWL_GEMM_MR weight rows x OWL_GEMM_NR tokens. wp is a packed
 * weight panel [kc][MR] (floats, 64-byte aligned), xp a packed token panel
 * [kc][NR]. C[j * ldc + i] (+)= sum_k wp[k][i] * xp[k][j] for i < MR, j < NR;
 * acc = false overwrites C. */
#define OWL_GEMM_MR 32
#define OWL_GEMM_NR 12
void owl_gemm_micro_avx512(const float *wp, const float *xp, int kc, float *c, int64_t ldc, bool acc);
void owl_gemm_micro_avx2(const float *wp, const float *xp, int kc, float *c, int64_t ldc, bool acc);
/* wp[k][MR] (64-byte aligned) from nr <= MR rows of type t (F32, F16, BF16)
 * starting at rows, row_bytes apart, kc columns; missing rows are zero. */
void owl_gemm_pack_avx512(owl_dtype t, const void *rows, size_t row_bytes, int nr, int kc, float *wp);

/* Per-thread scratch memory that only grows (no allocation on the hot
 * path) and is freed when the thread exits: slot < OWL_SCRATCH_SLOTS,
 * 64-byte aligned, contents undefined. NULL if out of memory. */
enum { OWL_SCRATCH_XPACK, OWL_SCRATCH_QUANT, OWL_SCRATCH_AMX_X, OWL_SCRATCH_AMX_W, OWL_SCRATCH_AMX_C, OWL_SCRATCH_AMX_ROW,
       OWL_SCRATCH_SLOTS };
void *owl_kernel_scratch(int slot, size_t n);

/* AMX (tdpbf16ps) matrix-matrix product with split-bf16 operands (see
 * gemm_amx.c): usable for weights of type t on this CPU now? */
bool owl_gemm_amx_usable(owl_dtype t);
/* Y rows [r0, r1) x n_tok tokens; false (nothing written) if scratch memory
 * could not be had. */
bool owl_gemm_amx(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1);
/* Runs fn(arg, c) for every c < n_chunks on up to nt threads, the caller
 * one of them (matmul.c): chunks go to whichever thread is running, and
 * the caller waits only for chunks another thread has taken, never for a
 * thread to wake. False (nothing ran) if the pool is in use by another
 * caller or has no thread; then use OpenMP. */
typedef void (*owl_chunk_fn)(void *arg, int64_t chunk);
bool owl_kernel_pool_run(owl_chunk_fn fn, void *arg, int64_t n_chunks, int nt);

/* AVX-512 VNNI int8 matrix-matrix product of quantized weights (see
 * gemm_q8.c): usable for weights of type t on this CPU now? */
bool owl_gemm_q8_usable(owl_dtype t);
/* Y rows [r0, r1) x n_tok tokens; false (nothing written) if scratch memory
 * could not be had or the rows are not whole 32-element blocks. */
bool owl_gemm_q8(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1);
/* Tests: the per-thread budget of partial sums (0: the default, 4 MiB). */
void owl_gemm_amx_set_budget(size_t bytes);

#endif
