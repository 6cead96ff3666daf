/* The dtype table and the scalar F16 / BF16 conversions, checked against
 * IEEE 754 facts and against a round trip of every 16-bit pattern. */
#include "tensor/tensor.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

int main(void) {
    /* Block layouts as the GGUF format defines them. */
    CHECK(owl_dtype_get(OWL_Q4_0)->block == 32 && owl_dtype_get(OWL_Q4_0)->block_bytes == 18);
    CHECK(owl_dtype_get(OWL_Q6_K)->block == 256 && owl_dtype_get(OWL_Q6_K)->block_bytes == 210);
    CHECK(owl_dtype_get(4) == NULL && owl_dtype_get(1000) == NULL);
    uint64_t b;
    CHECK(owl_dtype_bytes(OWL_F16, 10, &b) && b == 20);
    CHECK(!owl_dtype_bytes(OWL_Q8_0, 33, &b));
    CHECK(!owl_dtype_bytes(OWL_F32, UINT64_MAX / 2, &b));
    owl_dtype t;
    CHECK(owl_dtype_from_name("bf16", &t) && t == OWL_BF16);
    CHECK(!owl_dtype_from_name("F17", &t));

    /* F16 facts: 1.0 = 0x3c00, -2 = 0xc000, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001. */
    CHECK(owl_f32_to_f16(1.0f) == 0x3c00);
    CHECK(owl_f32_to_f16(-2.0f) == 0xc000);
    CHECK(owl_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(owl_f32_to_f16(70000.0f) == 0x7c00);
    CHECK(owl_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001);
    CHECK(owl_f32_to_f16(ldexpf(1.0f, -26)) == 0x0000);
    CHECK(owl_f16_to_f32(0x3555) == 0.333251953125f);
    /* Every finite half survives half -> float -> half. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (owl_f32_to_f16(owl_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECKF(bad == 0, "%d half values do not round-trip", bad);
    /* Rounding to nearest even at the halfway point between 1 and 1+2^-10. */
    CHECK(owl_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);
    CHECK(owl_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02);

    /* BF16: the top 16 bits, rounded to nearest even. */
    CHECK(owl_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(owl_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(owl_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);
    CHECK(owl_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);
    CHECK(isnan(owl_bf16_to_f32(owl_f32_to_bf16(NAN))));
    return test_finish("test_dtype");
}
