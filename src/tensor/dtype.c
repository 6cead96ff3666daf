/* The dtype table (GGUF type ids, block sizes) and scalar conversions. */
#include "tensor/tensor.h"

#include <string.h>
#include <strings.h>

static const owl_dtype_info dtypes[OWL_DTYPE_COUNT] = {
    [OWL_F32] = {"F32", 1, 4, false},
    [OWL_F16] = {"F16", 1, 2, false},
    [OWL_Q4_0] = {"Q4_0", 32, 18, true},
    [OWL_Q4_1] = {"Q4_1", 32, 20, true},
    [OWL_Q5_0] = {"Q5_0", 32, 22, true},
    [OWL_Q5_1] = {"Q5_1", 32, 24, true},
    [OWL_Q8_0] = {"Q8_0", 32, 34, true},
    [OWL_Q8_1] = {"Q8_1", 32, 36, true},
    [OWL_Q2_K] = {"Q2_K", 256, 84, true},
    [OWL_Q3_K] = {"Q3_K", 256, 110, true},
    [OWL_Q4_K] = {"Q4_K", 256, 144, true},
    [OWL_Q5_K] = {"Q5_K", 256, 176, true},
    [OWL_Q6_K] = {"Q6_K", 256, 210, true},
    [OWL_Q8_K] = {"Q8_K", 256, 292, true},
    [OWL_I8] = {"I8", 1, 1, false},
    [OWL_I16] = {"I16", 1, 2, false},
    [OWL_I32] = {"I32", 1, 4, false},
    [OWL_I64] = {"I64", 1, 8, false},
    [OWL_F64] = {"F64", 1, 8, false},
    [OWL_BF16] = {"BF16", 1, 2, false},
};

const owl_dtype_info *owl_dtype_get(uint32_t id) {
    if (id >= OWL_DTYPE_COUNT || !dtypes[id].name) return NULL;
    return &dtypes[id];
}

const char *owl_dtype_name(owl_dtype t) {
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    return d ? d->name : "unknown";
}

bool owl_dtype_from_name(const char *name, owl_dtype *out) {
    for (int i = 0; i < OWL_DTYPE_COUNT; i++) {
        if (dtypes[i].name && strcasecmp(dtypes[i].name, name) == 0) {
            *out = (owl_dtype)i;
            return true;
        }
    }
    return false;
}

bool owl_dtype_bytes(owl_dtype t, uint64_t n, uint64_t *bytes) {
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    if (!d || n % (uint64_t)d->block != 0) return false;
    return owl_mul_ok(n / (uint64_t)d->block, (uint64_t)d->block_bytes, bytes);
}

float owl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t owl_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        /* value = m * 2^(e-150); the subnormal half unit is 2^-24, so q = m * 2^(e-126) */
        uint32_t s = 126 - e; /* number of bits to shift right */
        uint32_t q = m >> s;
        uint32_t rem = m & ((1u << s) - 1);
        uint32_t halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (absx >> 23) - 127 + 15;
    uint32_t m = absx & 0x7fffff;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into exponent: correct */
    return (uint16_t)(sign | h);
}

float owl_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t owl_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
