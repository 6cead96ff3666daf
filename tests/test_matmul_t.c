/* owl_matmul_t (dX = dY W, the backward product through frozen weights)
 * against a double-precision scalar reference on the dequantized rows, for
 * plain and quantized types, odd sizes, 1 and 2 threads, SIMD and scalar. */
#include "tensor/tensor.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void one(owl_dtype dt, int rows, int cols, int n_tok, bool acc, uint64_t *rng) {
    uint64_t rb = 0;
    if (!owl_dtype_bytes(dt, (uint64_t)cols, &rb)) {
        CHECKF(false, "%s: %d columns", owl_dtype_name(dt), cols);
        return;
    }
    float *wf = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    uint8_t *wq = malloc((size_t)rb * (size_t)rows);
    float *dy = malloc(sizeof(float) * (size_t)n_tok * (size_t)rows);
    float *dx = malloc(sizeof(float) * (size_t)n_tok * (size_t)cols + 1);
    float *row = malloc(sizeof(float) * (size_t)cols);
    double *ref = calloc((size_t)n_tok * (size_t)cols + 1, sizeof(double));
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++) wf[i] = test_rand_f32(rng);
    for (int r = 0; r < rows; r++)
        CHECK(owl_from_f32(dt, wf + (size_t)r * (size_t)cols, wq + (size_t)r * rb, cols) == OWL_OK);
    for (size_t i = 0; i < (size_t)n_tok * (size_t)rows; i++) dy[i] = test_rand_f32(rng);
    for (size_t i = 0; i < (size_t)n_tok * (size_t)cols; i++) dx[i] = acc ? test_rand_f32(rng) : NAN;
    if (acc)
        for (size_t i = 0; i < (size_t)n_tok * (size_t)cols; i++) ref[i] = dx[i];
    for (int r = 0; r < rows; r++) {
        CHECK(owl_to_f32(dt, wq + (size_t)r * rb, row, cols) == OWL_OK);
        for (int t = 0; t < n_tok; t++)
            for (int c = 0; c < cols; c++)
                ref[(size_t)t * (size_t)cols + (size_t)c] += (double)dy[(size_t)t * (size_t)rows + (size_t)r] * row[c];
    }
    owl_mat W = {.dtype = dt, .rows = rows, .cols = cols, .row_bytes = (size_t)rb, .data = wq};
    CHECK(owl_matmul_t(&W, dy, dx, n_tok, acc) == OWL_OK);
    double err = test_rel_err(dx, ref, n_tok * cols);
    CHECKF(err < 2e-6, "%s %d x %d, %d tokens, acc %d, %d threads: relative error %g", owl_dtype_name(dt), rows, cols,
           n_tok, acc, owl_get_threads(), err);
    free(wf);
    free(wq);
    free(dy);
    free(dx);
    free(row);
    free(ref);
}

int main(void) {
    uint64_t rng = 42;
    const owl_dtype types[] = {OWL_F32, OWL_F16, OWL_BF16, OWL_Q8_0, OWL_Q4_0, OWL_Q5_1, OWL_Q4_K, OWL_Q6_K};
    for (int scalar = 0; scalar < 2; scalar++) {
        owl_cpu_force_scalar(scalar);
        for (int th = 1; th <= 2; th++) {
            owl_set_threads(th);
            for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
                const bool k = types[i] == OWL_Q4_K || types[i] == OWL_Q6_K;
                const bool q = types[i] != OWL_F32 && types[i] != OWL_F16 && types[i] != OWL_BF16;
                const int cols = k ? 512 : q ? 96 : 77;
                one(types[i], 131, cols, 1, false, &rng);
                one(types[i], 200, cols, 13, true, &rng);
                one(types[i], 67, cols, 37, false, &rng);
                if (!scalar) one(types[i], 300, cols, 25, true, &rng);
            }
        }
    }
    owl_cpu_force_scalar(false);
    /* deterministic: the same inputs and threads give the same bits */
    {
        owl_set_threads(2);
        const int rows = 256, cols = 96, n = 29;
        float *w = malloc(sizeof(float) * rows * cols), *dy = malloc(sizeof(float) * n * rows);
        float *a = malloc(sizeof(float) * n * cols), *b = malloc(sizeof(float) * n * cols);
        for (int i = 0; i < rows * cols; i++) w[i] = test_rand_f32(&rng);
        for (int i = 0; i < n * rows; i++) dy[i] = test_rand_f32(&rng);
        owl_mat W = {.dtype = OWL_F32, .rows = rows, .cols = cols, .row_bytes = sizeof(float) * cols, .data = w};
        CHECK(owl_matmul_t(&W, dy, a, n, false) == OWL_OK);
        CHECK(owl_matmul_t(&W, dy, b, n, false) == OWL_OK);
        CHECK(memcmp(a, b, sizeof(float) * n * cols) == 0);
        /* bad arguments */
        CHECK(owl_matmul_t(NULL, dy, a, n, false) == OWL_ERR_ARG);
        owl_mat bad = W;
        bad.dtype = OWL_I32;
        CHECK(owl_matmul_t(&bad, dy, a, n, false) != OWL_OK);
        free(w);
        free(dy);
        free(a);
        free(b);
    }
    return test_finish("test_matmul_t");
}
