/* tensor/quant internals: the GGUF block layouts (byte for byte as stored in
 * a GGUF file), small helpers, and the per-type reference and SIMD kernels
 * that quant.c dispatches to.
 *
 * Every field is a byte array, so a block has alignment 1 and may sit at any
 * address; the fp16 / f32 fields are little-endian and read with memcpy.
 *
 * 32-element types ("legacy"): element j of a block is q[j] * d (+ m).
 *   Q8_0: d, qs[32] int8.
 *   Q4_0: d, qs[16]: element j < 16 in the low nibble of qs[j], element
 *         j + 16 in its high nibble; value (q - 8) * d.
 *   Q4_1: d, m, qs[16] as Q4_0; value q * d + m.
 *   Q5_0: d, qh[4] (bit j of the little-endian u32 = bit 4 of element j),
 *         qs[16] as Q4_0; value (q - 16) * d.
 *   Q5_1: d, m, qh[4], qs[16]; value q * d + m.
 * 256-element super-blocks ("K-quants"):
 *   Q2_K: scales[16] (low nibble scale, high nibble min of each 16-group),
 *         qs[64] (2 bits each), d, dmin; value d*sc*q - dmin*m.
 *   Q3_K: hmask[32], qs[64] (low 2 bits), scales[12] (16 six-bit scales,
 *         biased by 32), d; value d*(sc-32)*(q - 4*(1-h)).
 *   Q4_K: d, dmin, scales[12] (8 six-bit scales and 8 six-bit mins),
 *         qs[128]; value d*sc*q - dmin*m per 32-group.
 *   Q5_K: as Q4_K plus qh[32] (bit 4 of each quant).
 *   Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d;
 *         value d*sc*(q - 32) per 16-group.
 *   Q8_K: d (f32), qs[256] int8, bsums[16] (int16 sum of each 16-group):
 *         the activation type of the K-quant dot products.
 * The bit positions of each element inside qs / qh / hmask are documented
 * in the file that decodes the type. */
#ifndef OWL_QUANT_INTERNAL_H
#define OWL_QUANT_INTERNAL_H

#include "tensor/quant.h"

#include <math.h>
#include <string.h>

#define QK 32   /* elements of a legacy block */
#define QKK 256 /* elements of a K-quant super-block */

typedef struct { uint8_t d[2]; int8_t qs[32]; } blk_q8_0;
typedef struct { uint8_t d[2]; uint8_t qs[16]; } blk_q4_0;
typedef struct { uint8_t d[2], m[2]; uint8_t qs[16]; } blk_q4_1;
typedef struct { uint8_t d[2]; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;
typedef struct { uint8_t d[2], m[2]; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint8_t d[2], dmin[2]; } blk_q2_k;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint8_t d[2]; } blk_q3_k;
typedef struct { uint8_t d[2], dmin[2]; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_k;
typedef struct { uint8_t d[2], dmin[2]; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint8_t d[2]; } blk_q6_k;
typedef struct { uint8_t d[4]; int8_t qs[256]; uint8_t bsums[32]; } blk_q8_k;

_Static_assert(sizeof(blk_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(blk_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(blk_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(blk_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(blk_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(blk_q2_k) == 84, "Q2_K block");
_Static_assert(sizeof(blk_q3_k) == 110, "Q3_K block");
_Static_assert(sizeof(blk_q4_k) == 144, "Q4_K block");
_Static_assert(sizeof(blk_q5_k) == 176, "Q5_K block");
_Static_assert(sizeof(blk_q6_k) == 210, "Q6_K block");
_Static_assert(sizeof(blk_q8_k) == 292, "Q8_K block");

static inline float qi_h(const uint8_t p[2]) { return owl_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline void qi_put_h(uint8_t p[2], float f) {
    uint16_t h = owl_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static inline float qi_f(const uint8_t p[4]) {
    float f;
    memcpy(&f, p, 4);
    return f;
}
static inline uint32_t qi_u32(const uint8_t p[4]) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline int16_t qi_i16(const uint8_t *p) { return (int16_t)(uint16_t)(p[0] | (p[1] << 8)); }
static inline void qi_put_i16(uint8_t *p, int v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(((unsigned)v >> 8) & 0xff);
}
/* Nearest integer, halves away from zero (C's roundf), as an int. */
static inline int qi_round(float x) { return (int)roundf(x); }
static inline int qi_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* K-quant scale packing (shared by quantizer, dequantizer and the SIMD dots). */
void owl_q4k_unpack_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]);
void owl_q4k_pack_scales(uint8_t s[12], const uint8_t sc[8], const uint8_t mn[8]);
void owl_q3k_unpack_scales(const uint8_t s[12], int8_t sc[16]); /* -32..31 */
void owl_q3k_pack_scales(uint8_t s[12], const int8_t sc[16]);

/* Reference (scalar) kernels. nb = number of blocks. */
void owl_q8_0_quantize(const float *x, void *y, int64_t nb);
void owl_q8_0_dequantize(const void *x, float *y, int64_t nb);
float owl_q8_0_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q8_k_quantize(const float *x, void *y, int64_t nb);
void owl_q8_k_dequantize(const void *x, float *y, int64_t nb);

void owl_q4_0_quantize(const float *x, void *y, int64_t nb);
void owl_q4_0_dequantize(const void *x, float *y, int64_t nb);
float owl_q4_0_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q4_1_quantize(const float *x, void *y, int64_t nb);
void owl_q4_1_dequantize(const void *x, float *y, int64_t nb);
float owl_q4_1_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q5_0_quantize(const float *x, void *y, int64_t nb);
void owl_q5_0_dequantize(const void *x, float *y, int64_t nb);
float owl_q5_0_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q5_1_quantize(const float *x, void *y, int64_t nb);
void owl_q5_1_dequantize(const void *x, float *y, int64_t nb);
float owl_q5_1_dot_ref(const void *w, const void *x, int64_t nb);

void owl_q2_k_quantize(const float *x, void *y, int64_t nb);
void owl_q2_k_dequantize(const void *x, float *y, int64_t nb);
float owl_q2_k_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q3_k_quantize(const float *x, void *y, int64_t nb);
void owl_q3_k_dequantize(const void *x, float *y, int64_t nb);
float owl_q3_k_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q4_k_quantize(const float *x, void *y, int64_t nb);
void owl_q4_k_dequantize(const void *x, float *y, int64_t nb);
float owl_q4_k_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q5_k_quantize(const float *x, void *y, int64_t nb);
void owl_q5_k_dequantize(const void *x, float *y, int64_t nb);
float owl_q5_k_dot_ref(const void *w, const void *x, int64_t nb);
void owl_q6_k_quantize(const float *x, void *y, int64_t nb);
void owl_q6_k_dequantize(const void *x, float *y, int64_t nb);
float owl_q6_k_dot_ref(const void *w, const void *x, int64_t nb);

/* SIMD dots (NULL when not compiled for this machine). Same contracts as
 * the _ref functions. */
owl_qdot_fn owl_qdot_avx512(owl_dtype t);
owl_qdot_fn owl_qdot_avx2(owl_dtype t);
/* Four rows (stride bytes apart) against one activation row: out[0..3],
 * each bit-identical to the single-row kernel of the same ISA. */
typedef void (*owl_qdot4_fn)(const void *w, size_t stride, const void *x, int64_t nb, float *out);
owl_qdot4_fn owl_qdot4_avx512(owl_dtype t);
/* SIMD activation quantizers (Q8_0, Q8_K; NULL elsewhere or when the CPU
 * lacks the ISA), byte-identical to the reference. */
typedef void (*owl_qquant_fn)(const float *x, void *y, int64_t nb);
owl_qquant_fn owl_qquant_avx512(owl_dtype t);
owl_qquant_fn owl_qquant_avx2(owl_dtype t);
/* SIMD K-quant dequantizers to F32 (dequant_avx512.c; NULL for other types
 * or when the CPU lacks AVX-512 F/BW/VL), bit-identical to the scalar
 * ones; the owl_q*_k_dequantize entry points of quant_k.c call them. */
typedef void (*owl_qdequant_fn)(const void *x, float *y, int64_t nb);
owl_qdequant_fn owl_qdequant_avx512(owl_dtype t);

#endif
