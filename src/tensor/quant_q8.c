/* Q8_0 (weights and the activation partner of the 32-element types) and
 * Q8_K (the activation partner of the K-quants): round to nearest with one
 * scale per block, d = max|x| / 127. */
#include "tensor/quant_internal.h"

void owl_q8_0_quantize(const float *x, void *y, int64_t nb) {
    blk_q8_0 *b = y;
    for (int64_t i = 0; i < nb; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        qi_put_h(b[i].d, d);
        for (int j = 0; j < QK; j++) b[i].qs[j] = (int8_t)qi_round(x[j] * id);
    }
}

void owl_q8_0_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q8_0 *b = x;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = qi_h(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = d * (float)b[i].qs[j];
    }
}

float owl_q8_0_dot_ref(const void *w, const void *x, int64_t nb) {
    const blk_q8_0 *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++) isum += a[i].qs[j] * b[i].qs[j];
        sum += (qi_h(a[i].d) * qi_h(b[i].d)) * (float)isum;
    }
    return sum;
}

void owl_q8_k_quantize(const float *x, void *y, int64_t nb) {
    blk_q8_k *b = y;
    for (int64_t i = 0; i < nb; i++, x += QKK) {
        float amax = 0.0f;
        for (int j = 0; j < QKK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        memcpy(b[i].d, &d, 4);
        for (int g = 0; g < QKK / 16; g++) {
            int s = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                int q = qi_clamp(qi_round(x[j] * id), -127, 127);
                b[i].qs[j] = (int8_t)q;
                s += q;
            }
            qi_put_i16(b[i].bsums + 2 * g, s);
        }
    }
}

void owl_q8_k_dequantize(const void *x, float *y, int64_t nb) {
    const blk_q8_k *b = x;
    for (int64_t i = 0; i < nb; i++, y += QKK) {
        float d = qi_f(b[i].d);
        for (int j = 0; j < QKK; j++) y[j] = d * (float)b[i].qs[j];
    }
}
