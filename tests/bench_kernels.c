/* A small benchmark of the dense kernels (not a test): matrix-vector GB/s
 * for F32 / F16 / BF16 on 5632 x 2048 weights (many copies, so that they do
 * not stay in cache) and matrix-matrix GFLOP/s for 512 tokens. Medians of a
 * few runs. Usage: bench_kernels [threads ...] (default: 1 2). */
#include "owl.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: with one thread the kernels run here, so a rate
 * from it is what an unloaded core would give. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *make(owl_dtype t, int64_t n) {
    size_t es = t == OWL_F32 ? 4 : 2;
    uint16_t *p = malloc((size_t)n * es);
    float v[256];
    for (int i = 0; i < 256; i++) v[i] = (float)((i * 37) % 101 - 50) / 500.0f;
    for (int64_t i = 0; i < n; i += 256) {
        int64_t m = n - i < 256 ? n - i : 256;
        owl_from_f32(t, v, (char *)p + (size_t)i * es, m);
    }
    return p;
}

static void bench_gemv(owl_dtype t, int threads) {
    const int64_t rows = 5632, cols = 2048;
    size_t es = t == OWL_F32 ? 4 : 2, bytes = (size_t)rows * cols * es;
    int copies = (int)((600u << 20) / bytes) + 1;
    void **w = malloc(sizeof(void *) * copies);
    for (int i = 0; i < copies; i++) w[i] = make(t, rows * cols);
    float *x = malloc(sizeof(float) * cols), *y = malloc(sizeof(float) * rows);
    for (int i = 0; i < cols; i++) x[i] = 0.01f * (i % 7);
    owl_set_threads(threads);
    double res[7], cres[7];
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now(), c0 = cpu_now();
        for (int i = 0; i < copies; i++) {
            owl_mat m = {t, rows, cols, cols * es, w[i]};
            owl_matmul(&m, x, y, 1);
        }
        res[rep] = (double)bytes * copies / (now() - t0) / 1e9;
        cres[rep] = (double)bytes * copies / (cpu_now() - c0) / 1e9;
    }
    qsort(res, 7, sizeof(double), cmp);
    qsort(cres, 7, sizeof(double), cmp);
    printf("gemv %-4s %lldx%lld threads %d: %.1f GB/s (min %.1f max %.1f)", owl_dtype_name(t), (long long)rows,
           (long long)cols, threads, res[3], res[0], res[6]);
    if (threads == 1) printf(", by cpu time %.1f", cres[3]);
    printf("\n");
    for (int i = 0; i < copies; i++) free(w[i]);
    free(w), free(x), free(y);
}

static void bench_gemm(owl_dtype t, int64_t rows, int64_t cols, int n_tok, int threads) {
    size_t es = t == OWL_F32 ? 4 : 2;
    void *w = make(t, rows * cols);
    float *x = make(OWL_F32, (int64_t)n_tok * cols), *y = malloc(sizeof(float) * rows * n_tok);
    owl_set_threads(threads);
    owl_mat m = {t, rows, cols, cols * es, w};
    owl_matmul(&m, x, y, n_tok);
    double res[5], cres[5];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now(), c0 = cpu_now();
        owl_matmul(&m, x, y, n_tok);
        res[rep] = 2.0 * rows * cols * n_tok / (now() - t0) / 1e9;
        cres[rep] = 2.0 * rows * cols * n_tok / (cpu_now() - c0) / 1e9;
    }
    qsort(res, 5, sizeof(double), cmp);
    qsort(cres, 5, sizeof(double), cmp);
    printf("gemm %-4s %lldx%lld n_tok %d threads %d: %.1f GFLOP/s (min %.1f max %.1f)", owl_dtype_name(t),
           (long long)rows, (long long)cols, n_tok, threads, res[2], res[0], res[4]);
    if (threads == 1) printf(", by cpu time %.1f", cres[2]);
    printf("\n");
    free(w), free(x), free(y);
}

int main(int argc, char **argv) {
    int th[8] = {1, 2}, nth = 2;
    bool only_gemm = false, only_gemv = false;
    if (argc > 1) {
        nth = 0;
        for (int i = 1; i < argc && nth < 8; i++) {
            if (strcmp(argv[i], "gemm") == 0) only_gemm = true;
            else if (strcmp(argv[i], "gemv") == 0) only_gemv = true;
            else th[nth++] = atoi(argv[i]);
        }
        if (nth == 0) th[nth++] = 2;
    }
    const owl_dtype types[3] = {OWL_F32, OWL_F16, OWL_BF16};
    for (int k = 0; k < nth; k++) {
        for (int i = 0; i < 3 && !only_gemm; i++) bench_gemv(types[i], th[k]);
        for (int i = 0; i < 3 && !only_gemv; i++) {
            bench_gemm(types[i], 768, 2048, 512, th[k]);
            bench_gemm(types[i], 2048, 768, 512, th[k]);
        }
    }
    return 0;
}
