/* The machine's peak matrix throughput, for `owl bench --peak` and for the
 * prompt efficiency of `owl bench MODEL`: each unit runs a loop of its
 * multiply-accumulate instruction on data that stays in registers (AMX:
 * tiles), with enough independent accumulators to cover the latency, on
 * 1..N threads at once. No memory traffic, so this is the compute ceiling
 * that a matrix-matrix kernel can approach, never pass.
 *
 *   amx_int8     tdpbssd    16 x 16 x 64 int8 MACs per instruction
 *   amx_bf16     tdpbf16ps  16 x 16 x 32 bf16 MACs (float sums)
 *   vnni_int8    vpdpbusd   64 u8 x s8 MACs per zmm instruction
 *   avx512_bf16  vdpbf16ps  32 bf16 MACs per zmm instruction
 *   avx512_fp32  vfmadd     16 float FMAs per zmm instruction
 * One MAC counts as two operations. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

static const struct {
    const char *name;
    double ops_per_iter; /* operations per loop iteration of one thread */
} units[OWL_PEAK_COUNT] = {
    [OWL_PEAK_AMX_INT8] = {"amx_int8", 4 * 2.0 * 16 * 16 * 64},
    [OWL_PEAK_AMX_BF16] = {"amx_bf16", 4 * 2.0 * 16 * 16 * 32},
    [OWL_PEAK_VNNI_INT8] = {"vnni_int8", 12 * 2.0 * 64},
    [OWL_PEAK_AVX512_BF16] = {"avx512_bf16", 12 * 2.0 * 32},
    [OWL_PEAK_AVX512_FP32] = {"avx512_fp32", 12 * 2.0 * 16},
};

const char *owl_peak_name(owl_peak_unit u) { return (unsigned)u < OWL_PEAK_COUNT ? units[u].name : "?"; }

bool owl_peak_is_int8(owl_peak_unit u) { return u == OWL_PEAK_AMX_INT8 || u == OWL_PEAK_VNNI_INT8; }

bool owl_peak_available(owl_peak_unit u) {
    const owl_cpu *c = owl_cpu_get();
    if (owl_kernel_level() == OWL_ISA_SCALAR) return false;
    bool z = c->avx512f && c->avx512bw && c->avx512vl;
    switch (u) {
    case OWL_PEAK_AMX_INT8: return z && c->amx_tile && c->amx_int8 && c->amx_permitted;
    case OWL_PEAK_AMX_BF16: return z && c->amx_tile && c->amx_bf16 && c->amx_permitted;
    case OWL_PEAK_VNNI_INT8: return z && c->avx512vnni;
    case OWL_PEAK_AVX512_BF16: return z && c->avx512bf16;
    case OWL_PEAK_AVX512_FP32: return z;
    default: return false;
    }
}

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

#define TAMX __attribute__((target("amx-tile,amx-int8,amx-bf16,avx512f")))
#define TZMM __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")))

/* Tiles 0-3: C (16 x 64 bytes), 4-5: A, 6-7: B; a 2 x 2 block of products
 * per iteration, as a GEMM micro-kernel does. */
TAMX static uint32_t loop_amx(int64_t iters, bool int8) {
    _Alignas(64) uint8_t buf[1024];
    _Alignas(64) int32_t out[256];
    for (int i = 0; i < 1024; i++) buf[i] = (uint8_t)(i * 37 % 7 + 1); /* small values: no overflow, no denormals */
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    if (int8) {
        for (int64_t i = 0; i < iters; i++) {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
    } else {
        for (int64_t i = 0; i < iters; i++) {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, out, 64);
    _tile_release();
    return (uint32_t)out[0] ^ (uint32_t)out[255];
}

/* 12 independent accumulators, one instruction each per iteration. */
#define ZMM_LOOP(ZERO, OP, ACC_T)                                                    \
    ACC_T a0 = ZERO, a1 = ZERO, a2 = ZERO, a3 = ZERO, a4 = ZERO, a5 = ZERO, a6 = ZERO, \
          a7 = ZERO, a8 = ZERO, a9 = ZERO, a10 = ZERO, a11 = ZERO;                   \
    for (int64_t i = 0; i < iters; i++) {                                            \
        a0 = OP(a0);                                                                 \
        a1 = OP(a1);                                                                 \
        a2 = OP(a2);                                                                 \
        a3 = OP(a3);                                                                 \
        a4 = OP(a4);                                                                 \
        a5 = OP(a5);                                                                 \
        a6 = OP(a6);                                                                 \
        a7 = OP(a7);                                                                 \
        a8 = OP(a8);                                                                 \
        a9 = OP(a9);                                                                 \
        a10 = OP(a10);                                                               \
        a11 = OP(a11);                                                               \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5)); \
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)); \
    }

TZMM static uint32_t loop_vnni(int64_t iters) {
    __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    __asm__ volatile("" : "+v"(u), "+v"(s));
#define OP(a) _mm512_dpbusd_epi32(a, u, s)
    ZMM_LOOP(_mm512_setzero_si512(), OP, __m512i)
#undef OP
    __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
    uint32_t lanes[16], r = 0; /* the sums wrap (the values do not matter): combine without signed adds */
    _mm512_storeu_si512((void *)lanes, t);
    for (int i = 0; i < 16; i++) r ^= lanes[i];
    return r;
}

TZMM static uint32_t loop_bf16(int64_t iters) {
    __m512bh u = (__m512bh)_mm512_set1_epi16(0x3f80), s = (__m512bh)_mm512_set1_epi16(0x3c00); /* 1.0, 2^-7 */
    __asm__ volatile("" : "+v"(u), "+v"(s));
#define OP(a) _mm512_dpbf16_ps(a, u, s)
    ZMM_LOOP(_mm512_setzero_ps(), OP, __m512)
#undef OP
    __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    t = _mm512_add_ps(t, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    float f = _mm512_reduce_add_ps(t);
    uint32_t r;
    memcpy(&r, &f, 4);
    return r;
}

TZMM static uint32_t loop_fp32(int64_t iters) {
    __m512 u = _mm512_set1_ps(0.999f), s = _mm512_set1_ps(1e-3f);
    __asm__ volatile("" : "+v"(u), "+v"(s));
#define OP(a) _mm512_fmadd_ps(a, u, s)
    ZMM_LOOP(_mm512_setzero_ps(), OP, __m512)
#undef OP
    __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    t = _mm512_add_ps(t, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    float f = _mm512_reduce_add_ps(t);
    uint32_t r;
    memcpy(&r, &f, 4);
    return r;
}

static uint32_t run_unit(owl_peak_unit u, int64_t iters) {
    switch (u) {
    case OWL_PEAK_AMX_INT8: return loop_amx(iters, true);
    case OWL_PEAK_AMX_BF16: return loop_amx(iters, false);
    case OWL_PEAK_VNNI_INT8: return loop_vnni(iters);
    case OWL_PEAK_AVX512_BF16: return loop_bf16(iters);
    case OWL_PEAK_AVX512_FP32: return loop_fp32(iters);
    default: return 0;
    }
}

static volatile uint32_t peak_sink;

/* One trial: every thread runs iters iterations; the rate is the work of
 * all threads over the wall time of the slowest. */
static double trial(owl_peak_unit u, int threads, int64_t iters, double *ms_out) {
    uint32_t x = 0;
    double t0 = owl_time_ms();
#pragma omp parallel num_threads(threads) reduction(^ : x) if (threads > 1)
    x ^= run_unit(u, iters);
    double ms = owl_time_ms() - t0;
    peak_sink ^= x;
    *ms_out = ms;
    return ms > 0 ? units[u].ops_per_iter * (double)iters * threads / (ms * 1e-3) : 0.0;
}

double owl_peak_measure(owl_peak_unit u, int threads, double seconds) {
    if (!owl_peak_available(u)) return 0.0;
    if (threads < 1) threads = 1;
    if (seconds <= 0) seconds = 0.5;
    /* calibrate: trials of ~20 ms on one thread */
    int64_t iters = 1000;
    double ms = 0;
    for (int k = 0; k < 20; k++) {
        trial(u, 1, iters, &ms);
        if (ms >= 5.0) break;
        iters *= 4;
    }
    if (ms > 0) iters = (int64_t)((double)iters * 20.0 / ms) + 1;
    /* the best of the trials: the peak is what the unit can do, and a
     * trial that another process interrupted only says less */
    double best = 0.0, start = owl_time_ms();
    for (int k = 0; k < 1000; k++) {
        double r = trial(u, threads, iters, &ms);
        if (r > best) best = r;
        if (k >= 2 && owl_time_ms() - start >= seconds * 1e3) break;
    }
    return best;
}
