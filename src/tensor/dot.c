/* Dot products of a weight row (F32, F16, BF16) with a float activation row:
 * the scalar reference and the run-time dispatch to the AVX2 / AVX-512
 * kernels in dot_avx2.c and dot_avx512.c. Quantized rows go through
 * tensor/quant (the activation is quantized once to the dot partner type). */
#include "tensor/kernels.h"
#include "tensor/quant.h"

#include <math.h>
#include <stdlib.h>

static inline float load_scalar(owl_dtype t, const void *a, int64_t i) {
    switch (t) {
    case OWL_F16:
        return owl_f16_to_f32(((const uint16_t *)a)[i]);
    case OWL_BF16:
        return owl_bf16_to_f32(((const uint16_t *)a)[i]);
    default:
        return ((const float *)a)[i];
    }
}

/* Eight running sums, like the SIMD kernels, so that long rows do not lose
 * the small terms to one large accumulator. */
float owl_dot_scalar(owl_dtype t, const void *a, const float *b, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += load_scalar(t, a, i + j) * b[i + j];
    for (; i < n; i++) s[i & 7] += load_scalar(t, a, i) * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

float owl_dot_f32(owl_dtype t, const void *a, const float *b, int64_t n) {
    if (n <= 0) return 0.0f;
    if (t == OWL_F32 || t == OWL_F16 || t == OWL_BF16) {
        switch (owl_kernel_level()) {
        case OWL_ISA_AVX512:
            return owl_dot_avx512(t, a, b, n);
        case OWL_ISA_AVX2:
            return owl_dot_avx2(t, a, b, n);
        default:
            return owl_dot_scalar(t, a, b, n);
        }
    }
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    if (d && d->quantized && owl_quant_supported(t) && n % d->block == 0) {
        /* One-off product: dequantize the row (exact in float) and take the
         * float dot product. Matrix products use owl_quant_dot instead. */
        float *w = malloc(sizeof(float) * (size_t)n);
        if (!w) return NAN;
        owl_quant_dequantize_row(t, a, w, n);
        float r = owl_dot_f32(OWL_F32, w, b, n);
        free(w);
        return r;
    }
    return NAN; /* no dot product for this type: callers check the dtype first */
}
