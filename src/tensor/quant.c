/* Placeholder until the block formats land: no quantized type is supported
 * yet, and callers check owl_quant_supported() first. */
#include "tensor/quant.h"

#include <string.h>

bool owl_quant_supported(owl_dtype t) {
    (void)t;
    return false;
}

void owl_quant_dequantize_row(owl_dtype t, const void *src, float *dst, int64_t n) {
    (void)t;
    (void)src;
    memset(dst, 0, sizeof(float) * (size_t)n);
}

owl_status owl_quant_quantize_row(owl_dtype t, const float *src, void *dst, int64_t n) {
    (void)src;
    (void)dst;
    (void)n;
    return owl_errorf(OWL_ERR_UNSUPPORTED, "quantization to %s is not supported", owl_dtype_name(t));
}

owl_dtype owl_quant_dot_type(owl_dtype t) {
    (void)t;
    return OWL_Q8_0;
}

float owl_quant_dot(owl_dtype t, const void *w, const void *x, int64_t n) {
    (void)t;
    (void)w;
    (void)x;
    (void)n;
    return 0.0f;
}
