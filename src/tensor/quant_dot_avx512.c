/* AVX-512 (VNNI) dot products of quantized weight rows with Q8_0 / Q8_K
 * activations. */
#include "tensor/quant_internal.h"

owl_qdot_fn owl_qdot_avx512(owl_dtype t) {
    (void)t;
    return NULL;
}
