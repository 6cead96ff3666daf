/* tensor/: dtypes and block layouts, conversions, kernels (dot products,
 * matrix-vector and matrix-matrix products) and the ops of a decoder block.
 * Every kernel has a scalar reference; SIMD paths are picked at run time
 * from owl_cpu_get() and tested against the reference. */
#ifndef OWL_TENSOR_H
#define OWL_TENSOR_H

#include "base/base.h"

/* Type ids are GGUF's (ggml_type), so a GGUF tensor's type is used as is. */
typedef enum owl_dtype {
    OWL_F32 = 0,
    OWL_F16 = 1,
    OWL_Q4_0 = 2,
    OWL_Q4_1 = 3,
    OWL_Q5_0 = 6,
    OWL_Q5_1 = 7,
    OWL_Q8_0 = 8,
    OWL_Q8_1 = 9,
    OWL_Q2_K = 10,
    OWL_Q3_K = 11,
    OWL_Q4_K = 12,
    OWL_Q5_K = 13,
    OWL_Q6_K = 14,
    OWL_Q8_K = 15,
    OWL_I8 = 24,
    OWL_I16 = 25,
    OWL_I32 = 26,
    OWL_I64 = 27,
    OWL_F64 = 28,
    OWL_BF16 = 30,
    OWL_DTYPE_COUNT = 40
} owl_dtype;

typedef struct owl_dtype_info {
    const char *name;   /* "F32", "Q4_K", ...; NULL for an unknown id */
    int block;          /* elements per block (1 for plain types) */
    int block_bytes;    /* bytes per block */
    bool quantized;
} owl_dtype_info;

/* NULL for an id owl does not know. */
const owl_dtype_info *owl_dtype_get(uint32_t id);
const char *owl_dtype_name(owl_dtype t);
/* Parses "F32", "q4_k", ... ; false if unknown. */
bool owl_dtype_from_name(const char *name, owl_dtype *out);
/* Bytes of n elements of type t. Fails (false) if n is not a whole number of
 * blocks or the size overflows. */
bool owl_dtype_bytes(owl_dtype t, uint64_t n, uint64_t *bytes);

/* ---- scalar conversions ---- */
float owl_f16_to_f32(uint16_t h);
uint16_t owl_f32_to_f16(float f);    /* round to nearest even */
float owl_bf16_to_f32(uint16_t h);
uint16_t owl_f32_to_bf16(float f);   /* round to nearest even, NaN kept */

/* Converts n elements of type t at src to float (dequantizes blocks). */
owl_status owl_to_f32(owl_dtype t, const void *src, float *dst, int64_t n);
/* Converts n floats to type t (quantizes blocks; n a whole number of blocks). */
owl_status owl_from_f32(owl_dtype t, const float *src, void *dst, int64_t n);

/* ---- matrices ---- */

/* A row-major matrix of `rows` rows of `cols` elements of `dtype`: the layout
 * of a GGUF tensor with ne[0] = cols, ne[1] = rows. */
typedef struct owl_mat {
    owl_dtype dtype;
    int64_t rows, cols;
    size_t row_bytes;
    const void *data;
} owl_mat;

/* Y[t][r] = sum_c W[r][c] * X[t][c] for t < n_tok, r < W->rows.
 * X is n_tok x W->cols floats (row stride W->cols), Y is n_tok x W->rows
 * floats (row stride W->rows). Spread over owl_threads() threads. n_tok == 1
 * is a matrix-vector product; larger n_tok uses a blocked matrix-matrix
 * kernel. Rows [r0, r1) only: owl_matmul_rows. */
void owl_matmul(const owl_mat *W, const float *X, float *Y, int n_tok);
/* The same for rows [r0, r1) of W only (Y keeps its row stride W->rows). */
void owl_matmul_rows(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1);
/* True if owl_matmul can multiply weights of type t (F32, F16, BF16 and the
 * quantized types tensor/quant supports). Others give NaN outputs. */
bool owl_matmul_supported(owl_dtype t);

/* The transposed product of the backward pass: dX[t][c] (+)= sum_r dY[t][r]
 * W[r][c] for t < n_tok, c < W->cols (dY: n_tok x W->rows floats, dX: n_tok
 * x W->cols floats). acc: add into dX instead of overwriting it. Any type
 * owl_matmul supports (rows are converted to float); spread over
 * owl_threads() threads, the same result for the same number of threads. */
owl_status owl_matmul_t(const owl_mat *W, const float *dY, float *dX, int n_tok, bool acc);

/* Peak matrix throughput of this machine (gemm_peak.c): a loop of one
 * unit's multiply-accumulate instruction on register / tile data, on
 * `threads` threads at once for about `seconds`; the best trial in
 * operations per second (a multiply-add is two), 0 if the CPU lacks it. */
typedef enum owl_peak_unit {
    OWL_PEAK_AMX_INT8,     /* tdpbssd */
    OWL_PEAK_AMX_BF16,     /* tdpbf16ps */
    OWL_PEAK_VNNI_INT8,    /* AVX-512 VNNI vpdpbusd */
    OWL_PEAK_AVX512_BF16,  /* AVX-512 BF16 vdpbf16ps */
    OWL_PEAK_AVX512_FP32,  /* AVX-512 FMA */
    OWL_PEAK_COUNT
} owl_peak_unit;
const char *owl_peak_name(owl_peak_unit u); /* "amx_int8", ... */
bool owl_peak_available(owl_peak_unit u);
bool owl_peak_is_int8(owl_peak_unit u);
double owl_peak_measure(owl_peak_unit u, int threads, double seconds);

/* Dot product of n elements: a of type t, b float. */
float owl_dot_f32(owl_dtype t, const void *a, const float *b, int64_t n);

/* ---- ops (on float rows) ---- */
/* out = x / sqrt(mean(x^2) + eps) * w (w may be NULL: no weight; out may be x). */
void owl_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* RoPE on one head vector of head_dim at position pos, theta base freq_base.
 * neox = false: pairs (2i, 2i+1) (GGUF / llama.cpp); neox = true: pairs
 * (i, i + n_rot/2) (Hugging Face rotate_half; = head_dim/2 when all rotate).
 * The first n_rot <= head_dim dimensions rotate, pair i by
 * pos * freq_scale * freq_base^(-2i/n_rot). freq_scale multiplies the position (linear scaling). */
void owl_rope(float *x, int head_dim, int n_rot, int pos, float freq_base, float freq_scale, bool neox);
void owl_softmax(float *x, int n);
/* out[i] = silu(gate[i]) * up[i] */
void owl_swiglu(float *out, const float *gate, const float *up, int n);
/* out[i] = gelu(gate[i]) * up[i], gelu with the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GeGLU, Gemma) */
void owl_geglu(float *out, const float *gate, const float *up, int n);
/* x[i] = cap * tanh(x[i] / cap) (logit soft-capping; cap > 0) */
void owl_softcap(float *x, int n, float cap);

#endif
