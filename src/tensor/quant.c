/* tensor/quant: the public entry points. Each block type is a row of the
 * table below; the dot product picks the fastest kernel this CPU runs
 * (AVX-512 VNNI, then AVX2) unless scalar code is forced. */
#include "tensor/quant_internal.h"

#include <stdatomic.h>

typedef struct {
    owl_dtype type;
    int block;
    owl_dtype dot_type;
    void (*quantize)(const float *x, void *y, int64_t nb);
    void (*dequantize)(const void *x, float *y, int64_t nb);
    owl_qdot_fn dot_ref;
    bool supported; /* tested end to end: weights of this type can be used */
} quant_type;

#define ROW(T, B, DT, Q, DQ, DOT, OK) [T] = {T, B, DT, Q, DQ, DOT, OK}
static const quant_type types[OWL_DTYPE_COUNT] = {
    ROW(OWL_Q8_0, QK, OWL_Q8_0, owl_q8_0_quantize, owl_q8_0_dequantize, owl_q8_0_dot_ref, true),
    ROW(OWL_Q4_0, QK, OWL_Q8_0, owl_q4_0_quantize, owl_q4_0_dequantize, owl_q4_0_dot_ref, true),
    ROW(OWL_Q4_1, QK, OWL_Q8_0, owl_q4_1_quantize, owl_q4_1_dequantize, owl_q4_1_dot_ref, true),
    ROW(OWL_Q5_0, QK, OWL_Q8_0, owl_q5_0_quantize, owl_q5_0_dequantize, owl_q5_0_dot_ref, true),
    ROW(OWL_Q5_1, QK, OWL_Q8_0, owl_q5_1_quantize, owl_q5_1_dequantize, owl_q5_1_dot_ref, true),
    ROW(OWL_Q2_K, QKK, OWL_Q8_K, owl_q2_k_quantize, owl_q2_k_dequantize, owl_q2_k_dot_ref, true),
    ROW(OWL_Q3_K, QKK, OWL_Q8_K, owl_q3_k_quantize, owl_q3_k_dequantize, owl_q3_k_dot_ref, true),
    ROW(OWL_Q4_K, QKK, OWL_Q8_K, owl_q4_k_quantize, owl_q4_k_dequantize, owl_q4_k_dot_ref, true),
    ROW(OWL_Q5_K, QKK, OWL_Q8_K, owl_q5_k_quantize, owl_q5_k_dequantize, owl_q5_k_dot_ref, true),
    ROW(OWL_Q6_K, QKK, OWL_Q8_K, owl_q6_k_quantize, owl_q6_k_dequantize, owl_q6_k_dot_ref, true),
    /* Q8_K is only an activation type: no weights of it are multiplied. */
    ROW(OWL_Q8_K, QKK, OWL_Q8_K, owl_q8_k_quantize, owl_q8_k_dequantize, NULL, false),
};

static const quant_type *find(owl_dtype t) {
    return (unsigned)t < OWL_DTYPE_COUNT && types[t].quantize ? &types[t] : NULL;
}

bool owl_quant_supported(owl_dtype t) {
    const quant_type *q = find(t);
    return q && q->supported;
}

void owl_quant_dequantize_row(owl_dtype t, const void *src, float *dst, int64_t n) {
    const quant_type *q = find(t);
    if (!q || n % q->block != 0) { /* callers check; never leave garbage */
        memset(dst, 0, sizeof(float) * (size_t)(n > 0 ? n : 0));
        return;
    }
    q->dequantize(src, dst, n / q->block);
}

owl_status owl_quant_quantize_row(owl_dtype t, const float *src, void *dst, int64_t n) {
    const quant_type *q = find(t);
    if (!q) return owl_errorf(OWL_ERR_UNSUPPORTED, "quantization to %s (type id %d) is not supported", owl_dtype_name(t), (int)t);
    if (n < 0 || n % q->block != 0)
        return owl_errorf(OWL_ERR_ARG, "quantize to %s: row of %lld elements is not a whole number of %d-element blocks",
                          owl_dtype_name(t), (long long)n, q->block);
    owl_qquant_fn fast = NULL;
    if (!owl_cpu_scalar_forced()) {
        fast = owl_qquant_avx512(t);
        if (!fast) fast = owl_qquant_avx2(t);
    }
    (fast ? fast : q->quantize)(src, dst, n / q->block);
    return OWL_OK;
}

owl_dtype owl_quant_dot_type(owl_dtype t) {
    const quant_type *q = find(t);
    return q ? q->dot_type : OWL_Q8_0;
}

/* The kernel for type t: SIMD where available. Chosen once per type and
 * mode (scalar forced or not) and cached: a dot runs once per weight row. */
static _Atomic(owl_qdot_fn) kernels[2][OWL_DTYPE_COUNT];

owl_qdot_fn owl_quant_dot_kernel(owl_dtype t) {
    const quant_type *q = find(t);
    if (!q || !q->dot_ref) return NULL;
    int forced = owl_cpu_scalar_forced();
    owl_qdot_fn f = atomic_load_explicit(&kernels[forced][t], memory_order_relaxed);
    if (f) return f;
    f = forced ? NULL : owl_qdot_avx512(t);
    if (!f && !forced) f = owl_qdot_avx2(t);
    if (!f) f = q->dot_ref;
    atomic_store_explicit(&kernels[forced][t], f, memory_order_relaxed);
    return f;
}

float owl_quant_dot(owl_dtype t, const void *w, const void *x, int64_t n) {
    const quant_type *q = find(t);
    if (!q || !q->dot_ref || n % q->block != 0) return 0.0f;
    return owl_quant_dot_kernel(t)(w, x, n / q->block);
}

static _Atomic(owl_qdot4_fn) kernels4[OWL_DTYPE_COUNT];
static _Atomic(bool) kernels4_done[OWL_DTYPE_COUNT];

void owl_quant_dot_rows(owl_dtype t, const void *w, size_t row_bytes, int64_t nrows, const void *x, int64_t n, float *out) {
    const quant_type *q = find(t);
    if (!q || !q->dot_ref || n % q->block != 0) {
        for (int64_t r = 0; r < nrows; r++) out[r] = 0.0f;
        return;
    }
    const int64_t nb = n / q->block;
    owl_qdot_fn f = owl_quant_dot_kernel(t);
    owl_qdot4_fn f4 = NULL;
    if (!owl_cpu_scalar_forced()) {
        if (atomic_load_explicit(&kernels4_done[t], memory_order_acquire)) {
            f4 = atomic_load_explicit(&kernels4[t], memory_order_relaxed);
        } else {
            f4 = owl_qdot4_avx512(t);
            /* the 4-row kernels pair with the single-row AVX-512 ones */
            if (f != owl_qdot_avx512(t)) f4 = NULL;
            atomic_store_explicit(&kernels4[t], f4, memory_order_relaxed);
            atomic_store_explicit(&kernels4_done[t], true, memory_order_release);
        }
    }
    const char *p = w;
    int64_t r = 0;
    if (f4)
        for (; r + 4 <= nrows; r += 4) f4(p + (size_t)r * row_bytes, row_bytes, x, nb, out + r);
    for (; r < nrows; r++) out[r] = f(p + (size_t)r * row_bytes, x, nb);
}
