/* The ops of a decoder block (RMS norm, RoPE in both layouts, softmax,
 * SwiGLU) against straightforward double implementations written here, on
 * the widest path and on the scalar reference, for odd sizes. */
#include "tensor/tensor.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 12345;

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-30); }

static void test_rmsnorm(void) {
    const int ns[] = {1, 7, 16, 31, 33, 257, 768, 1000, 4099};
    float *x = malloc(4099 * 4), *w = malloc(4099 * 4), *o = malloc(4099 * 4);
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        for (int i = 0; i < n; i++) x[i] = test_rand_f32(&rng) * 3.0f, w[i] = 1.0f + test_rand_f32(&rng) * 0.5f;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double inv = 1.0 / sqrt(ss / n + 1e-5);
        for (int pass = 0; pass < 2; pass++) {
            owl_cpu_force_scalar(pass == 1);
            owl_rmsnorm(o, x, w, n, 1e-5f);
            double worst = 0;
            for (int i = 0; i < n; i++) worst = fmax(worst, fabs(o[i] - x[i] * inv * w[i]) / (fabs(x[i] * inv * w[i]) + 1e-6));
            CHECKF(worst < 1e-5, "rmsnorm n=%d pass %d: worst relative error %g", n, pass, worst);
            owl_rmsnorm(o, x, NULL, n, 1e-5f); /* no weight */
            worst = 0;
            for (int i = 0; i < n; i++) worst = fmax(worst, fabs(o[i] - x[i] * inv) / (fabs(x[i] * inv) + 1e-6));
            CHECKF(worst < 1e-5, "rmsnorm without weight n=%d pass %d: %g", n, pass, worst);
        }
        owl_cpu_force_scalar(false);
    }
    /* In place, and eps dominating a zero row. */
    for (int i = 0; i < 33; i++) x[i] = 0.0f;
    owl_rmsnorm(x, x, w, 33, 1e-6f);
    bool zeros = true;
    for (int i = 0; i < 33; i++) zeros = zeros && x[i] == 0.0f;
    CHECK(zeros);
    free(x), free(w), free(o);
}

/* RoPE as rotations of complex numbers z = x[a] + i x[b] by e^(i theta). */
static void rope_ref(double *x, int head_dim, int n_rot, int pos, double base, double scale, bool neox) {
    (void)head_dim;
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = pos * scale / pow(base, (2.0 * i) / n_rot);
        int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        double re = x[a] * cos(theta) - x[b] * sin(theta);
        double im = x[a] * sin(theta) + x[b] * cos(theta);
        x[a] = re, x[b] = im;
    }
}

static void test_rope(void) {
    const int dims[][2] = {{64, 64}, {128, 128}, {80, 32}, {6, 6}, {64, 24}};
    const int positions[] = {0, 1, 7, 100, 4095, 32767};
    float x[128];
    double d[128];
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        for (size_t p = 0; p < sizeof positions / sizeof positions[0]; p++) {
            for (int neox = 0; neox < 2; neox++) {
                int hd = dims[k][0], nr = dims[k][1], pos = positions[p];
                float base = p % 2 ? 10000.0f : 500000.0f, scale = p == 3 ? 0.25f : 1.0f;
                for (int i = 0; i < hd; i++) x[i] = test_rand_f32(&rng), d[i] = x[i];
                owl_rope(x, hd, nr, pos, base, scale, neox);
                rope_ref(d, hd, nr, pos, base, scale, neox);
                double worst = 0;
                for (int i = 0; i < hd; i++) worst = fmax(worst, fabs(x[i] - d[i]));
                CHECKF(worst < 1e-5, "rope hd=%d n_rot=%d pos=%d neox=%d: worst abs error %g", hd, nr, pos, neox, worst);
            }
        }
    }
    /* The layouts differ: pair (0, 1) vs pair (0, hd/2). */
    float a[8] = {1, 0, 0, 0, 0, 0, 0, 0}, b[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    owl_rope(a, 8, 8, 1, 10000.0f, 1.0f, false);
    owl_rope(b, 8, 8, 1, 10000.0f, 1.0f, true);
    CHECK(fabsf(a[1] - sinf(1.0f)) < 1e-6f && a[4] == 0.0f);
    CHECK(fabsf(b[4] - sinf(1.0f)) < 1e-6f && b[1] == 0.0f);
    /* Position 0 is the identity. */
    float c[6] = {1, 2, 3, 4, 5, 6};
    owl_rope(c, 6, 6, 0, 10000.0f, 1.0f, true);
    CHECK(c[0] == 1 && c[3] == 4 && c[5] == 6);
}

static void test_softmax_swiglu(void) {
    const int ns[] = {1, 2, 7, 16, 17, 31, 33, 257, 1000, 4099, 32000};
    float *x = malloc(32000 * 4), *y = malloc(32000 * 4), *g = malloc(32000 * 4), *u = malloc(32000 * 4);
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        for (int pass = 0; pass < 2; pass++) {
            owl_cpu_force_scalar(pass == 1);
            for (int i = 0; i < n; i++) x[i] = test_rand_f32(&rng) * 30.0f;
            if (n > 3) x[2] = -INFINITY; /* a masked position */
            memcpy(y, x, (size_t)n * 4);
            double m = -INFINITY, s = 0;
            for (int i = 0; i < n; i++) m = fmax(m, x[i]);
            for (int i = 0; i < n; i++) s += exp((double)x[i] - m);
            owl_softmax(y, n);
            double worst = 0, total = 0;
            for (int i = 0; i < n; i++) {
                double want = exp((double)x[i] - m) / s;
                worst = fmax(worst, fabs(y[i] - want) / (want + 1e-30));
                total += y[i];
            }
            CHECKF(worst < 1e-5, "softmax n=%d pass %d: worst relative error %g", n, pass, worst);
            CHECKF(fabs(total - 1.0) < 1e-5, "softmax n=%d pass %d sums to %g", n, pass, total);
            if (n > 3) CHECK(y[2] == 0.0f);

            for (int i = 0; i < n; i++) g[i] = test_rand_f32(&rng) * 20.0f, u[i] = test_rand_f32(&rng) * 3.0f;
            if (n > 4) g[3] = -200.0f, g[4] = 200.0f; /* exp overflow on either side */
            owl_swiglu(y, g, u, n);
            worst = 0;
            for (int i = 0; i < n; i++) {
                double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
                worst = fmax(worst, fabs(y[i] - want) / (fabs(want) + 1e-6));
            }
            CHECKF(worst < 2e-6, "swiglu n=%d pass %d: worst relative error %g", n, pass, worst);
        }
        owl_cpu_force_scalar(false);
    }
    /* Large equal logits: no overflow, uniform result. */
    float big[5] = {1e30f, 1e30f, 1e30f, 1e30f, 1e30f};
    owl_softmax(big, 5);
    CHECK(fabsf(big[0] - 0.2f) < 1e-6f && fabsf(big[4] - 0.2f) < 1e-6f);
    CHECK(rel(big[1], 0.2) < 1e-6);
    free(x), free(y), free(g), free(u);
}


/* GeGLU (tanh gelu) and logit soft-capping against double. */
static void test_geglu_softcap(void) {
    const int ns[] = {1, 7, 33, 1000};
    float g[1000], u[1000], y[1000], x[1000];
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        for (int i = 0; i < n; i++) g[i] = test_rand_f32(&rng) * 8.0f, u[i] = test_rand_f32(&rng) * 2.0f;
        owl_geglu(y, g, u, n);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double a = g[i];
            double want = 0.5 * a * (1.0 + tanh(sqrt(2.0 / M_PI) * (a + 0.044715 * a * a * a))) * u[i];
            worst = fmax(worst, fabs(y[i] - want) / (fabs(want) + 1e-6));
        }
        CHECKF(worst < 1e-5, "geglu n=%d: worst relative error %g", n, worst);
        for (int i = 0; i < n; i++) x[i] = test_rand_f32(&rng) * 100.0f;
        memcpy(y, x, sizeof(float) * (size_t)n);
        owl_softcap(y, n, 30.0f);
        worst = 0;
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - 30.0 * tanh(x[i] / 30.0)));
        CHECKF(worst < 1e-4, "softcap n=%d: worst abs error %g", n, worst);
    }
}

int main(void) {
    test_rmsnorm();
    test_rope();
    test_softmax_swiglu();
    test_geglu_softcap();
    return test_finish("test_ops");
}
