/* The dense kernels of tensor/: row conversions, dot products and matrix
 * products for F32 / F16 / BF16 weights. Every SIMD path this CPU has is
 * checked against the scalar reference and against sums in double computed
 * here; matrix products cover n_tok 1 .. 250, odd row and column counts,
 * padded row strides, row ranges and 1..3 threads. The test runs itself a
 * second time with OWL_CPU=avx2 so that the AVX2 dispatch is covered too,
 * and with OWL_CPU=avx512 (no AMX) for the AVX-512 float GEMM. */
#include "owl.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static const owl_dtype types[3] = {OWL_F32, OWL_F16, OWL_BF16};

static size_t esize(owl_dtype t) { return t == OWL_F32 ? 4 : 2; }

/* Element i of a row of type t, as the reference reads it (scalar conversions). */
static double elem(owl_dtype t, const void *a, int64_t i) {
    if (t == OWL_F16) return owl_f16_to_f32(((const uint16_t *)a)[i]);
    if (t == OWL_BF16) return owl_bf16_to_f32(((const uint16_t *)a)[i]);
    return ((const float *)a)[i];
}

/* Random row of type t, built with the scalar conversions. */
static void fill(owl_dtype t, void *a, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float v = test_rand_f32(&rng) * scale;
        if (t == OWL_F16) ((uint16_t *)a)[i] = owl_f32_to_f16(v);
        else if (t == OWL_BF16) ((uint16_t *)a)[i] = owl_f32_to_bf16(v);
        else ((float *)a)[i] = v;
    }
}

static bool same_bits_or_nan(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- conversions ---- */

static void test_conversions(void) {
    const owl_cpu *c = owl_cpu_get();
    bool has2 = c->avx2 && c->fma && c->f16c, has512 = has2 && c->avx512f && c->avx512bw && c->avx512vl;
    enum { N = 65536 };
    uint16_t *h = malloc(N * 2), *h2 = malloc(N * 2);
    float *f = malloc(N * 4), *g = malloc(N * 4);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;

    /* Every 16-bit pattern to float: identical to the scalar conversion. */
    for (int pass = 0; pass < 3; pass++) {
        if ((pass == 1 && !has2) || (pass == 2 && !has512)) continue;
        for (int bf = 0; bf < 2; bf++) {
            if (pass == 0) {
                owl_cpu_force_scalar(true);
                CHECK(owl_to_f32(bf ? OWL_BF16 : OWL_F16, h, f, N) == OWL_OK);
                owl_cpu_force_scalar(false);
            } else if (pass == 1) {
                (bf ? owl_cvt_bf16_f32_avx2 : owl_cvt_f16_f32_avx2)(h, f, N);
            } else {
                (bf ? owl_cvt_bf16_f32_avx512 : owl_cvt_f16_f32_avx512)(h, f, N);
            }
            int bad = 0;
            for (int i = 0; i < N; i++)
                if (!same_bits_or_nan(f[i], bf ? owl_bf16_to_f32(h[i]) : owl_f16_to_f32(h[i]))) bad++;
            CHECKF(bad == 0, "pass %d %s: %d of 65536 patterns differ", pass, bf ? "BF16" : "F16", bad);
        }
    }

    /* Float to half / bf16: random bit patterns (all exponents, subnormals,
     * infinities, NaN), ties and overflow edges, odd counts for the tails. */
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)test_rand_u64(&rng);
        if (i % 4 == 1) u = (u & 0x80000000u) | (((u >> 8) % 40 + 100) << 23) | (u & 0x7fffff); /* half range */
        if (i % 4 == 2) u = (u & 0xffff0000u) | 0x8000u;                                      /* bf16 ties */
        if (i % 4 == 3) u = (u & 0xffffe000u) | 0x1000u;                                      /* half ties */
        f[i] = float_of(u);
    }
    f[0] = 65519.0f, f[1] = 65520.0f, f[2] = -65536.0f, f[3] = ldexpf(1.0f, -25), f[5] = ldexpf(3.0f, -26);
    f[6] = INFINITY, f[7] = -0.0f, f[9] = NAN;
    const int64_t counts[] = {N, 1, 7, 15, 17, 33};
    for (int pass = 0; pass < 3; pass++) {
        if ((pass == 1 && !has2) || (pass == 2 && !has512)) continue;
        for (int bf = 0; bf < 2; bf++) {
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                int64_t n = counts[ci];
                memset(h2, 0xab, N * 2);
                if (pass == 0) {
                    owl_cpu_force_scalar(true);
                    CHECK(owl_from_f32(bf ? OWL_BF16 : OWL_F16, f, h2, n) == OWL_OK);
                    owl_cpu_force_scalar(false);
                } else if (pass == 1) {
                    (bf ? owl_cvt_f32_bf16_avx2 : owl_cvt_f32_f16_avx2)(f, h2, n);
                } else {
                    (bf ? owl_cvt_f32_bf16_avx512 : owl_cvt_f32_f16_avx512)(f, h2, n);
                }
                int bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    uint16_t want = bf ? owl_f32_to_bf16(f[i]) : owl_f32_to_f16(f[i]);
                    bool nan_in = isnan(f[i]);
                    bool ok = nan_in ? (bf ? isnan(owl_bf16_to_f32(h2[i])) : isnan(owl_f16_to_f32(h2[i])))
                                     : h2[i] == want;
                    if (!ok) bad++;
                }
                if (n < N) CHECKF(h2[n] == 0xabab, "pass %d wrote past %lld elements", pass, (long long)n);
                CHECKF(bad == 0, "pass %d %s n=%lld: %d values differ from the scalar rounding", pass,
                       bf ? "BF16" : "F16", (long long)n, bad);
            }
        }
    }

    /* Round trips through the public API at the widest path. */
    for (int i = 0; i < 1001; i++) f[i] = test_rand_f32(&rng) * 100.0f;
    CHECK(owl_from_f32(OWL_F16, f, h2, 1001) == OWL_OK && owl_to_f32(OWL_F16, h2, g, 1001) == OWL_OK);
    double worst = 0;
    for (int i = 0; i < 1001; i++) worst = fmax(worst, fabs((double)g[i] - f[i]) / fabs(f[i]));
    CHECKF(worst <= 1.0 / 2048, "F16 round trip relative error %g", worst);
    CHECK(owl_from_f32(OWL_BF16, f, h2, 1001) == OWL_OK && owl_to_f32(OWL_BF16, h2, g, 1001) == OWL_OK);
    worst = 0;
    for (int i = 0; i < 1001; i++) worst = fmax(worst, fabs((double)g[i] - f[i]) / fabs(f[i]));
    CHECKF(worst <= 1.0 / 256, "BF16 round trip relative error %g", worst);
    CHECK(owl_from_f32(OWL_F32, f, g, 1001) == OWL_OK && memcmp(f, g, 1001 * 4) == 0);
    double d[3];
    CHECK(owl_from_f32(OWL_F64, f, d, 3) == OWL_OK && owl_to_f32(OWL_F64, d, g, 3) == OWL_OK && memcmp(f, g, 12) == 0);

    /* Errors: unsupported types name the type; partial blocks; bad counts. */
    CHECK(owl_to_f32(OWL_I32, h, f, 4) == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "I32"));
    CHECK(owl_from_f32(OWL_I8, f, h, 4) == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "I8"));
    CHECK(owl_to_f32((owl_dtype)5, h, f, 4) == OWL_ERR_UNSUPPORTED);
    CHECK(owl_to_f32(OWL_Q8_0, h, f, 33) != OWL_OK && strstr(owl_last_error(), "Q8_0"));
    CHECK(owl_to_f32(OWL_F16, h, f, -1) == OWL_ERR_ARG);
    CHECK(owl_to_f32(OWL_F16, h, f, 0) == OWL_OK);
    free(h), free(h2), free(f), free(g);
}

/* ---- dot products ---- */

static void test_dots(void) {
    const owl_cpu *c = owl_cpu_get();
    bool has2 = c->avx2 && c->fma && c->f16c, has512 = has2 && c->avx512f && c->avx512bw && c->avx512vl;
    const int64_t ns[] = {1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 257, 1000, 4099};
    enum { MAXN = 4099 };
    float *b = malloc(MAXN * 4);
    char *a = malloc(4 * MAXN * 4 + 64);
    for (int ti = 0; ti < 3; ti++) {
        owl_dtype t = types[ti];
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int64_t n = ns[ni];
            size_t stride = (size_t)n * esize(t) + 8; /* padded stride for dot4 */
            for (int r = 0; r < 4; r++) fill(t, a + r * stride, n, 1.0f);
            fill(OWL_F32, b, n, 2.0f);
            double ref[4], mag[4];
            for (int r = 0; r < 4; r++) {
                ref[r] = mag[r] = 0;
                for (int64_t i = 0; i < n; i++) {
                    double p = elem(t, a + r * stride, i) * b[i];
                    ref[r] += p;
                    mag[r] += fabs(p);
                }
            }
            double tol = 1e-5 * mag[0] + 1e-30;
            float s = owl_dot_scalar(t, a, b, n);
            CHECKF(fabs(s - ref[0]) <= tol, "scalar %s n=%lld: %g vs %g", owl_dtype_name(t), (long long)n, s, ref[0]);
            float v = owl_dot_f32(t, a, b, n);
            CHECKF(fabs(v - ref[0]) <= tol, "dispatch %s n=%lld: %g vs %g", owl_dtype_name(t), (long long)n, v, ref[0]);
            for (int isa = 1; isa <= 2; isa++) {
                if ((isa == 1 && !has2) || (isa == 2 && !has512)) continue;
                float d = isa == 1 ? owl_dot_avx2(t, a, b, n) : owl_dot_avx512(t, a, b, n);
                CHECKF(fabs(d - ref[0]) <= tol && fabs(d - s) <= tol, "isa %d %s n=%lld: %g vs %g (scalar %g)", isa,
                       owl_dtype_name(t), (long long)n, d, ref[0], s);
                float o[4] = {NAN, NAN, NAN, NAN};
                if (isa == 1) owl_dot4_avx2(t, a, stride, b, n, o);
                else owl_dot4_avx512(t, a, stride, b, n, o);
                for (int r = 0; r < 4; r++)
                    CHECKF(fabs(o[r] - ref[r]) <= 1e-5 * mag[r] + 1e-30, "dot4 isa %d %s n=%lld row %d: %g vs %g", isa,
                           owl_dtype_name(t), (long long)n, r, o[r], ref[r]);
            }
        }
    }
    CHECK(owl_dot_f32(OWL_F32, a, b, 0) == 0.0f);
    CHECK(isnan(owl_dot_f32(OWL_I16, a, b, 4)));
    free(a), free(b);
}

/* ---- matrix products ---- */

/* Y = X W^T in double, compared with owl_matmul_rows over rows [r0, r1);
 * rows outside the range must keep their sentinel. */
static void check_matmul(owl_dtype t, int64_t rows, int64_t cols, int n_tok, int64_t r0, int64_t r1, const char *what) {
    size_t row_bytes = (size_t)cols * esize(t) + (rows % 2 ? 64 : 0); /* padded stride on odd row counts */
    char *w = malloc(row_bytes * (size_t)rows);
    float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
    float *y = malloc(sizeof(float) * (size_t)n_tok * rows);
    for (int64_t r = 0; r < rows; r++) fill(t, w + r * row_bytes, cols, 1.0f);
    fill(OWL_F32, x, (int64_t)n_tok * cols, 1.0f);
    for (int64_t i = 0; i < (int64_t)n_tok * rows; i++) y[i] = -12345.0f;
    owl_mat m = {.dtype = t, .rows = rows, .cols = cols, .row_bytes = row_bytes, .data = w};
    owl_matmul_rows(&m, x, y, n_tok, r0, r1);
    /* Float sums: 1e-5 of sum |w x|. The AMX path keeps 16 bits of each
     * operand (split bf16): 2^-15 of sum |w x| at worst. */
    double tol = n_tok >= 8 && owl_gemm_amx_usable(t) ? 3.1e-5 : 1e-5;
    int bad = 0, untouched_bad = 0;
    double worst = 0;
    for (int tk = 0; tk < n_tok; tk++) {
        for (int64_t r = 0; r < rows; r++) {
            float got = y[(size_t)tk * rows + r];
            if (r < r0 || r >= r1) {
                if (got != -12345.0f) untouched_bad++;
                continue;
            }
            double ref = 0, mag = 0;
            const char *wr = w + r * row_bytes;
            for (int64_t k = 0; k < cols; k++) {
                double p = elem(t, wr, k) * x[(size_t)tk * cols + k];
                ref += p;
                mag += fabs(p);
            }
            double err = fabs(got - ref) / (mag + 1e-30);
            if (!(err <= tol)) bad++;
            if (err > worst || isnan(err)) worst = err;
        }
    }
    CHECKF(bad == 0 && untouched_bad == 0,
           "%s %s rows=%lld cols=%lld n_tok=%d range [%lld,%lld): %d wrong (worst rel %g), %d outside written", what,
           owl_dtype_name(t), (long long)rows, (long long)cols, n_tok, (long long)r0, (long long)r1, bad, worst,
           untouched_bad);
    free(w), free(x), free(y);
}

/* full: every shape; otherwise a few that split over threads unevenly. */
static void test_matmul(const char *what, bool full) {
    const int64_t shapes[][2] = {{67, 301}, {33, 31}, {1, 1}, {5, 7}, {32, 64}, {100, 600}, {64, 256}, {31, 513}};
    const int toks[] = {1, 2, 3, 12, 17, 64};
    size_t nshapes = full ? sizeof shapes / sizeof shapes[0] : 2;
    for (int ti = 0; ti < 3; ti++) {
        for (size_t si = 0; si < nshapes; si++)
            for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
                check_matmul(types[ti], shapes[si][0], shapes[si][1], toks[k], 0, shapes[si][0], what);
        /* Row ranges, and more tokens than one packed chunk. */
        check_matmul(types[ti], 67, 301, 17, 5, 60, what);
        check_matmul(types[ti], 67, 301, 1, 3, 4, what);
        check_matmul(types[ti], 40, 37, 250, 0, 40, what);
        if (!full) continue;
        check_matmul(types[ti], 40, 1100, 250, 0, 40, what); /* several k blocks (AMX) */
        check_matmul(types[ti], 33, 64, 530, 0, 33, what);   /* several token chunks (AMX) */
        owl_gemm_amx_set_budget(16 << 10);                   /* several panel groups (AMX) */
        check_matmul(types[ti], 100, 1100, 250, 7, 99, what);
        owl_gemm_amx_set_budget(0);
    }
    check_matmul(OWL_F16, 300, 200, 3, 0, 300, what);
    check_matmul(OWL_F32, 2000, 40, 1, 0, 2000, what);
    /* Unsupported weights give NaN, never garbage. */
    CHECK(!owl_matmul_supported(OWL_I8) && owl_matmul_supported(OWL_F16));
    int8_t wi[6] = {1, 2, 3, 4, 5, 6};
    float xi[3] = {1, 1, 1}, yi[2] = {0, 0};
    owl_mat mi = {.dtype = OWL_I8, .rows = 2, .cols = 3, .row_bytes = 3, .data = wi};
    owl_matmul(&mi, xi, yi, 1);
    CHECK(isnan(yi[0]) && isnan(yi[1]));
}


/* Quantized weights. Short runs: every X row is quantized once to the dot
 * partner and each output is owl_quant_dot of the row with it (checked
 * exactly), and close to the float product of the dequantized weights.
 * Long runs (>= 128 tokens) may take the AMX path with float activations:
 * then close to the float product within the split-bf16 bound. Without AMX
 * runs of >= 16 tokens take the VNNI int8 GEMM (gemm_q8.c): Q8_0 and Q4_0
 * keep their levels and the Q8_0 activations of owl_quant_dot, so the
 * integer block sums are the same and only the float sums differ in order
 * (1e-5 of sum |w x|); other types are re-quantized to Q8_0 (close to the
 * float product like the dot products). */
static void test_matmul_quant(int n_tok) {
    const owl_dtype qt[] = {OWL_Q8_0, OWL_Q4_0, OWL_Q4_1, OWL_Q5_0, OWL_Q5_1, OWL_Q2_K, OWL_Q3_K, OWL_Q4_K, OWL_Q5_K, OWL_Q6_K};
    for (size_t k = 0; k < sizeof qt / sizeof qt[0]; k++) {
        owl_dtype t = qt[k];
        if (!owl_quant_supported(t)) continue;
        const int64_t rows = 37, cols = 2560;
        bool amx = n_tok >= (owl_dtype_get((uint32_t)t)->block >= 256 ? 128 : 64) && owl_gemm_amx_usable(t);
        bool q8 = !amx && n_tok >= 16 && owl_gemm_q8_usable(t);
        bool same_levels = t == OWL_Q8_0 || t == OWL_Q4_0;
        uint64_t rb = 0, xb = 0;
        owl_dtype dt = owl_quant_dot_type(t);
        CHECK(owl_dtype_bytes(t, cols, &rb) && owl_dtype_bytes(dt, cols, &xb));
        char *w = malloc(rb * rows), *xq = malloc(xb);
        float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n_tok * cols);
        float *y = malloc(sizeof(float) * n_tok * rows);
        fill(OWL_F32, wf, rows * cols, 1.0f);
        fill(OWL_F32, x, n_tok * cols, 1.0f);
        for (int64_t r = 0; r < rows; r++) CHECK(owl_from_f32(t, wf + r * cols, w + r * rb, cols) == OWL_OK);
        CHECK(owl_to_f32(t, w, wf, rows * cols) == OWL_OK);
        owl_mat m = {.dtype = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
        owl_matmul(&m, x, y, n_tok);
        int exact_bad = 0, close_bad = 0;
        for (int tk = 0; tk < n_tok; tk++) {
            CHECK(owl_quant_quantize_row(dt, x + tk * cols, xq, cols) == OWL_OK);
            for (int64_t r = 0; r < rows; r++) {
                float want = owl_quant_dot(t, w + r * rb, xq, cols);
                double ref = 0, mag = 0;
                for (int64_t c = 0; c < cols; c++) {
                    ref += (double)wf[r * cols + c] * x[tk * cols + c];
                    mag += fabs((double)wf[r * cols + c] * x[tk * cols + c]);
                }
                if (q8 && same_levels && !(fabs(y[tk * rows + r] - want) <= 1e-5 * mag)) exact_bad++;
                if (!amx && !q8 && y[tk * rows + r] != want) exact_bad++;
                if (!(fabs(y[tk * rows + r] - ref) <= (amx ? 3.1e-5 : 2e-2) * mag)) close_bad++;
            }
        }
        CHECKF(exact_bad == 0 && close_bad == 0, "%s n_tok %d: %d outputs differ from owl_quant_dot, %d far from float",
               owl_dtype_name(t), n_tok, exact_bad, close_bad);
        free(w), free(xq), free(wf), free(x), free(y);
    }
}

/* Two threads multiplying at once: one gets the matrix-vector pool, the
 * other OpenMP (the pool serves one product at a time); every output is
 * what one thread alone computes (rows do not depend on who runs them). */
typedef struct conc_arg {
    const owl_mat *m;
    const float *x;
    float *y;
    int n_tok, reps;
} conc_arg;

static void *conc_run(void *p) {
    conc_arg *a = p;
    for (int i = 0; i < a->reps; i++) owl_matmul(a->m, a->x, a->y, a->n_tok);
    return NULL;
}

static void test_matmul_concurrent(void) {
    const owl_dtype types[] = {OWL_F32, OWL_Q8_0, OWL_Q4_K};
    const int toks[] = {1, 3, 20};
    for (size_t k = 0; k < 3; k++) {
        owl_dtype t = types[k];
        const int64_t rows = 300, cols = 512;
        uint64_t rb = 0;
        CHECK(owl_dtype_bytes(t, cols, &rb));
        char *w = malloc(rb * rows);
        float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * 20 * cols);
        float *want = malloc(sizeof(float) * 20 * rows), *y0 = malloc(sizeof(float) * 20 * rows), *y1 = malloc(sizeof(float) * 20 * rows);
        fill(OWL_F32, wf, rows * cols, 1.0f);
        fill(OWL_F32, x, 20 * cols, 1.0f);
        for (int64_t r = 0; r < rows; r++) CHECK(owl_from_f32(t, wf + r * cols, w + r * rb, cols) == OWL_OK);
        owl_mat m = {.dtype = t, .rows = rows, .cols = cols, .row_bytes = rb, .data = w};
        for (int ti = 0; ti < 3; ti++) {
            int n = toks[ti];
            owl_set_threads(1);
            owl_matmul(&m, x, want, n);
            owl_set_threads(2);
            conc_arg a0 = {&m, x, y0, n, 30}, a1 = {&m, x, y1, n, 30};
            pthread_t th;
            CHECK(pthread_create(&th, NULL, conc_run, &a1) == 0);
            conc_run(&a0);
            pthread_join(th, NULL);
            CHECKF(memcmp(y0, want, sizeof(float) * (size_t)n * rows) == 0 && memcmp(y1, want, sizeof(float) * (size_t)n * rows) == 0,
                   "%s, %d tokens: two threads multiplying at once differ from one", owl_dtype_name(t), n);
        }
        free(w), free(wf), free(x), free(want), free(y0), free(y1);
    }
    owl_set_threads(0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_conversions();
    test_dots();
    test_matmul("widest", true);
    test_matmul_quant(5);
    test_matmul_quant(130);
    test_matmul_quant(1);
    test_matmul_quant(17);
    owl_set_threads(3);
    test_matmul("3 threads", false);
    test_matmul_quant(1);
    test_matmul_quant(23);
    test_matmul_concurrent();
    owl_set_threads(1);
    test_matmul("1 thread", false);
    owl_set_threads(0);
    owl_cpu_force_scalar(true);
    test_matmul("scalar", false);
    owl_cpu_force_scalar(false);
    /* Once more with the paths capped at AVX2 (a child process: the cap is read once). */
    const char *cap = getenv("OWL_CPU");
    if (!cap && owl_cpu_get()->avx512f) {
        int st = run_cmd("OWL_CPU=avx2 '%s' > /dev/null", argv[0]);
        CHECKF(st == 0, "the run with OWL_CPU=avx2 failed (status %d)", st);
    }
    if (!cap && owl_cpu_get()->amx_permitted) { /* the AVX-512 float GEMM */
        int st = run_cmd("OWL_CPU=avx512 '%s' > /dev/null", argv[0]);
        CHECKF(st == 0, "the run with OWL_CPU=avx512 failed (status %d)", st);
    }
    return test_finish(cap ? "test_kernels (OWL_CPU capped)" : "test_kernels");
}
