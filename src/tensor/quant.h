/* tensor/quant: GGUF block-quantized types (Q4_0 ... Q8_0, Q2_K ... Q8_K):
 * bit-exact block layouts, reference quantize / dequantize, and dot products
 * of a quantized weight row with an activation row quantized once to the
 * type's dot partner (Q8_0 for the 32-blocks, Q8_K for the K-quants). */
#ifndef OWL_QUANT_H
#define OWL_QUANT_H

#include "tensor/tensor.h"

/* True if owl can dequantize and multiply type t. */
bool owl_quant_supported(owl_dtype t);
/* n must be a whole number of blocks (otherwise dst is zero-filled). Any
 * bytes are valid input: no level or scale can read outside the block. */
void owl_quant_dequantize_row(owl_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes n floats (whole blocks, else OWL_ERR_ARG) with the reference
 * algorithm: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 give llama.cpp's bytes exactly;
 * the K-quants search group scales for least squared error (no worse than
 * llama.cpp's). Q8_0 and Q8_K (activations) take the SIMD path: same bytes. */
owl_status owl_quant_quantize_row(owl_dtype t, const float *src, void *dst, int64_t n);
/* The type an activation row is quantized to for dot products with t. */
owl_dtype owl_quant_dot_type(owl_dtype t);
/* sum_i w[i] * x[i] with w a row of type t and x a row of owl_quant_dot_type(t)
 * made by owl_quant_quantize_row (its levels stay within +-127, which the
 * AVX2 kernels rely on). Integer sums per block are exact; 0 if n is not a
 * whole number of blocks or t has no dot product. */
float owl_quant_dot(owl_dtype t, const void *w, const void *x, int64_t n);
/* The kernel owl_quant_dot calls for t (fastest for this CPU, or the scalar
 * reference while owl_cpu_force_scalar is on), to skip the per-call lookup
 * in a loop over rows: f(w, x, nblocks) with nblocks = n / block size.
 * NULL if t has no dot product. */
typedef float (*owl_qdot_fn)(const void *w, const void *x, int64_t nblocks);
owl_qdot_fn owl_quant_dot_kernel(owl_dtype t);
/* out[r] = owl_quant_dot(t, w + r * row_bytes, x, n) for r < nrows, each
 * bit-identical to that call, but faster for the 32-element types: groups
 * of rows share the loads and sums of the activation blocks. */
void owl_quant_dot_rows(owl_dtype t, const void *w, size_t row_bytes, int64_t nrows, const void *x, int64_t n, float *out);

#endif
