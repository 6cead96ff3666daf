/* Memory read bandwidth: how fast this machine streams a buffer much larger
 * than its caches through the cores, the limit of token generation. */
#include "base/base.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Each reader sums 64-byte lines into independent accumulators so that the
 * loads, not the adds, set the pace. The results feed a sink so nothing is
 * optimised away. */

__attribute__((target("avx512f"))) static uint64_t read_avx512(const uint8_t *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    uint64_t out[8];
    _mm512_storeu_si512((void *)out, a0);
    return out[0] ^ out[3] ^ out[7];
}

__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a0);
    return out[0] ^ out[3];
}

static uint64_t read_scalar(const uint8_t *p, size_t n) {
    const uint64_t *q = (const uint64_t *)(const void *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a0 ^= q[i];
        a1 ^= q[i + 1];
        a2 ^= q[i + 2];
        a3 ^= q[i + 3];
    }
    return a0 ^ a1 ^ a2 ^ a3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile uint64_t sink;

double owl_measure_read_bandwidth_ex(int threads, double seconds, size_t bytes) {
    if (threads <= 0) threads = owl_threads();
    if (seconds <= 0) seconds = 1.0;
    bytes &= ~(size_t)4095;
    if (bytes < ((size_t)1 << 20)) bytes = (size_t)1 << 20;
    uint8_t *buf = NULL;
    while (!buf && bytes >= ((size_t)16 << 20)) {
        buf = aligned_alloc(4096, bytes);
        if (!buf) bytes /= 2;
    }
    if (!buf) buf = aligned_alloc(4096, bytes);
    if (!buf) return 0.0;

    const owl_cpu *cpu = owl_cpu_get();
    int kind = owl_cpu_scalar_forced() ? 0 : cpu->avx512f ? 2 : cpu->avx2 ? 1 : 0;
    /* Each thread owns a slice (4 KiB multiples) and touches it first, so
     * its pages sit near the core that reads them. */
    size_t slice = (bytes / (size_t)threads) & ~(size_t)4095;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        memset(buf + (size_t)t * slice, t + 1, slice);
    }

    enum { MAX_REPS = 200 };
    double rates[MAX_REPS];
    int reps = 0;
    double start = owl_time_ms();
    uint64_t acc = 0;
    for (int pass = 0; reps < MAX_REPS; pass++) {
        double t0 = owl_time_ms();
        uint64_t x = 0;
#pragma omp parallel num_threads(threads) reduction(^ : x)
        {
            const uint8_t *p = buf + (size_t)omp_get_thread_num() * slice;
            x ^= kind == 2 ? read_avx512(p, slice) : kind == 1 ? read_avx2(p, slice) : read_scalar(p, slice);
        }
        double t1 = owl_time_ms();
        acc ^= x;
        if (pass > 0 && t1 > t0) rates[reps++] = (double)slice * (double)threads / ((t1 - t0) * 1e-3) / 1e9;
        if (pass > 0 && reps >= 3 && t1 - start >= seconds * 1e3) break;
    }
    sink = acc;
    free(buf);
    qsort(rates, (size_t)reps, sizeof rates[0], cmp_double);
    return reps ? rates[reps / 2] : 0.0;
}

double owl_measure_read_bandwidth(int threads, double seconds) {
    return owl_measure_read_bandwidth_ex(threads, seconds, (size_t)1 << 30);
}
