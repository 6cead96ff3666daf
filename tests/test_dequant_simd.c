/* K-quant dequantization to F32: the AVX-512 versions (dequant_avx512.c,
 * used when the CPU has them) and the scalar ones (OWL_CPU=scalar / forced)
 * must both equal, bit for bit, a decoding written here from the GGUF block
 * layouts (element bit positions as in ggml's block definitions), on random
 * blocks of every bit pattern with random finite fp16 scales (normal,
 * subnormal, zero, negative), odd block counts and unaligned buffers. The
 * float operations are the format's: (d * sc) * q - (dmin * m) per element,
 * each rounded once. */
#include "tensor/quant_internal.h"
#include "testutil.h"

#include <stdlib.h>

/* fp16 -> float, independent of owl's converter */
static float half(const uint8_t *p) {
    unsigned h = (unsigned)p[0] | ((unsigned)p[1] << 8);
    unsigned s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 1024), (int)e - 25);
    return s ? -v : v;
}

/* 6-bit scale j and min j of a Q4_K / Q5_K 12-byte field */
static void k4_scale(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void decode(owl_dtype t, const uint8_t *b, float *y) {
    for (int e = 0; e < 256; e++) {
        int n = e / 128, k = (e % 128) / 32, l = e % 32;
        switch (t) {
        case OWL_Q2_K: { /* scales[16] qs[64] d dmin */
            int q = (b[16 + 32 * n + l] >> (2 * k)) & 3, s = b[e / 16];
            y[e] = half(b + 80) * (float)(s & 15) * (float)q - half(b + 82) * (float)(s >> 4);
            break;
        }
        case OWL_Q3_K: { /* hmask[32] qs[64] scales[12] d */
            const uint8_t *sc = b + 96;
            int q = ((b[32 + 32 * n + l] >> (2 * k)) & 3) - (((b[l] >> (e / 32)) & 1) ? 0 : 4);
            int g = e / 16;
            int lo = g < 8 ? (sc[g] & 15) : (sc[g - 8] >> 4), hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
            y[e] = half(b + 108) * (float)((lo | (hi << 4)) - 32) * (float)q;
            break;
        }
        case OWL_Q4_K:
        case OWL_Q5_K: { /* d dmin scales[12] (qh[32]) qs[128] */
            const uint8_t *qs = b + (t == OWL_Q4_K ? 16 : 48);
            int q = (qs[32 * (e / 64) + l] >> (4 * ((e % 64) / 32))) & 15;
            if (t == OWL_Q5_K) q |= ((b[16 + l] >> (e / 32)) & 1) << 4;
            int sc, mn;
            k4_scale(b + 4, e / 32, &sc, &mn);
            y[e] = half(b) * (float)sc * (float)q - half(b + 2) * (float)mn;
            break;
        }
        case OWL_Q6_K: { /* ql[128] qh[64] scales[16] d */
            int lo = (b[64 * n + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
            int hi = (b[128 + 32 * n + l] >> (2 * k)) & 3;
            y[e] = half(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)((lo | (hi << 4)) - 32);
            break;
        }
        default: y[e] = NAN;
        }
    }
}

/* every byte random; fp16 fields random but finite, sometimes zero or tiny */
static void random_blocks(owl_dtype t, uint8_t *p, int nb, int bb, uint64_t *rng) {
    for (int i = 0; i < nb * bb; i++) p[i] = (uint8_t)test_rand_u64(rng);
    int off[2] = {-1, -1};
    switch (t) {
    case OWL_Q2_K: off[0] = 80, off[1] = 82; break;
    case OWL_Q3_K: off[0] = 108; break;
    case OWL_Q4_K: case OWL_Q5_K: off[0] = 0, off[1] = 2; break;
    case OWL_Q6_K: off[0] = 208; break;
    default: break;
    }
    for (int b = 0; b < nb; b++)
        for (int f = 0; f < 2; f++) {
            if (off[f] < 0) continue;
            uint8_t *h = p + (size_t)b * (size_t)bb + off[f];
            uint64_t r = test_rand_u64(rng) % 8;
            if (r == 0) h[0] = h[1] = 0;                 /* zero */
            else if (r == 1) h[1] &= 0x83;               /* subnormal or tiny */
            else if ((h[1] & 0x7c) == 0x7c) h[1] &= 0xbf; /* no Inf / NaN */
        }
}

int main(void) {
    static const owl_dtype types[] = {OWL_Q2_K, OWL_Q3_K, OWL_Q4_K, OWL_Q5_K, OWL_Q6_K};
    static const int counts[] = {1, 2, 3, 5, 8, 17};
    const owl_cpu *cpu = owl_cpu_get();
    bool simd = cpu->avx512f && cpu->avx512bw && cpu->avx512vl && !owl_cpu_scalar_forced();
    uint64_t rng = 0x5eed0dd5u;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        owl_dtype t = types[ti];
        const owl_dtype_info *di = owl_dtype_get((uint32_t)t);
        CHECK(di && di->block == 256);
        if (!di) continue;
        /* the dispatcher offers the SIMD version exactly when the CPU has it */
        CHECKF((owl_qdequant_avx512(t) != NULL) == (cpu->avx512f && cpu->avx512bw && cpu->avx512vl),
               "%s: AVX-512 dequantizer availability", owl_dtype_name(t));
        int bad_ref = 0, bad_simd = 0;
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            for (int rep = 0; rep < 20; rep++) {
                int nb = counts[ci], bb = di->block_bytes, n = 256 * nb;
                /* one byte / one float off alignment */
                uint8_t *raw = malloc((size_t)(nb * bb) + 1);
                float *want = malloc(sizeof(float) * (size_t)n), *yraw = malloc(sizeof(float) * (size_t)(n + 1));
                if (!raw || !want || !yraw) {
                    CHECK(false);
                    free(raw), free(want), free(yraw);
                    continue;
                }
                uint8_t *q = raw + 1;
                float *y = yraw + 1;
                random_blocks(t, q, nb, bb, &rng);
                for (int b = 0; b < nb; b++) decode(t, q + (size_t)b * (size_t)bb, want + 256 * b);
                owl_cpu_force_scalar(true);
                owl_quant_dequantize_row(t, q, y, n);
                bad_ref += memcmp(y, want, sizeof(float) * (size_t)n) != 0;
                owl_cpu_force_scalar(false);
                memset(y, 0xff, sizeof(float) * (size_t)n);
                owl_quant_dequantize_row(t, q, y, n);
                bad_simd += memcmp(y, want, sizeof(float) * (size_t)n) != 0;
                free(raw), free(want), free(yraw);
            }
        }
        CHECKF(bad_ref == 0, "%s: scalar dequantization differs from the layout decode in %d rows", owl_dtype_name(t), bad_ref);
        CHECKF(bad_simd == 0, "%s: %s dequantization differs from the layout decode in %d rows", owl_dtype_name(t),
               simd ? "AVX-512" : "default", bad_simd);
        fprintf(stderr, "  %-5s scalar and %s dequantization bit-exact on 120 random rows\n", owl_dtype_name(t),
                simd ? "AVX-512" : "(no AVX-512 here: scalar)");
    }
    return test_finish("test_dequant_simd");
}
