/* tensor/quant: block layouts against files written by llama.cpp, round-trip
 * error bounds, dot products (every SIMD path against the scalar reference
 * and against float dots of the dequantized rows), bad input. */
#include "tensor/quant_internal.h"
#include "testutil.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static const owl_dtype ALL[] = {OWL_Q8_0, OWL_Q4_0, OWL_Q4_1, OWL_Q5_0, OWL_Q5_1,
                                OWL_Q2_K, OWL_Q3_K, OWL_Q4_K, OWL_Q5_K, OWL_Q6_K};
#define NTYPES (int)(sizeof ALL / sizeof ALL[0])

static const owl_dtype_info *info(owl_dtype t) { return owl_dtype_get((uint32_t)t); }

static size_t row_bytes(owl_dtype t, int64_t n) {
    uint64_t b = 0;
    owl_dtype_bytes(t, (uint64_t)n, &b);
    return (size_t)b;
}

static double rmse(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s / (double)n);
}
static double rms(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s / (double)n);
}

/* ---- round trip on random data ---- */

/* Levels per type (bits): the step of a group whose values span [-1, 1] is
 * at most 2 / (levels - 1); uniform rounding error has RMS step / sqrt(12).
 * K-quants also quantize their group scales (6 bits: < 1 % more; Q2_K's 4
 * bits more), hence the 1.3 allowance. */
static int levels(owl_dtype t) {
    switch (t) {
    case OWL_Q8_0: return 255;
    case OWL_Q4_0: case OWL_Q4_1: case OWL_Q4_K: return 16;
    case OWL_Q5_0: case OWL_Q5_1: case OWL_Q5_K: return 32;
    case OWL_Q6_K: return 64;
    case OWL_Q3_K: return 8;
    case OWL_Q2_K: return 4;
    default: return 0;
    }
}

static void test_roundtrip(owl_dtype t, uint64_t *rng) {
    const int block = info(t)->block;
    const int rows = 5, nb = block == 32 ? 9 : 3;
    const int64_t n = (int64_t)nb * block;
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    uint8_t *q = malloc(row_bytes(t, n));
    double worst_rmse = 0;
    for (int r = 0; r < rows; r++) {
        float amp = r == 3 ? 1e-3f : 1.0f; /* one row of small values */
        for (int64_t i = 0; i < n; i++) x[i] = amp * test_rand_f32(rng);
        if (r == 4) for (int i = 0; i < block; i++) x[i] = 0.0f; /* an all-zero block */
        CHECK(owl_quant_quantize_row(t, x, q, n) == OWL_OK);
        owl_quant_dequantize_row(t, q, y, n);
        if (block == 32) {
            /* Per element: half a step, plus the fp16 rounding of d and m,
             * except where the symmetric types clamp their extreme level
             * (the largest value of one sign maps to -8 / -16 exactly, the
             * other sign can reach +8 / +16 but clamps to 7 / 15: one step). */
            for (int b = 0; b < nb; b++) {
                const float *xb = x + b * 32, *yb = y + b * 32;
                float mn = FLT_MAX, mx = -FLT_MAX, amax = 0;
                for (int j = 0; j < 32; j++) {
                    mn = fminf(mn, xb[j]);
                    mx = fmaxf(mx, xb[j]);
                    amax = fmaxf(amax, fabsf(xb[j]));
                }
                /* fp16 keeps 11 significant bits, or an absolute 2^-24
                 * below 2^-14 (subnormals): the stored d is off by at most
                 * h(d), which the largest level multiplies. */
#define H16(v) fmaxf(fabsf(v) / 2048.0f, 1.0f / 33554432.0f)
                float step, extra;
                if (t == OWL_Q8_0) step = amax / 127, extra = 127 * H16(step);
                else if (t == OWL_Q4_0) step = amax / 8, extra = step / 2 + 8 * H16(step);
                else if (t == OWL_Q5_0) step = amax / 16, extra = step / 2 + 16 * H16(step);
                else if (t == OWL_Q4_1) step = (mx - mn) / 15, extra = 15 * H16(step) + H16(mn);
                else step = (mx - mn) / 31, extra = 31 * H16(step) + H16(mn);
                float bound = step / 2 + extra + 1e-12f;
                float worst = 0;
                for (int j = 0; j < 32; j++) worst = fmaxf(worst, fabsf(xb[j] - yb[j]));
                CHECKF(worst <= bound, "%s row %d block %d: max error %g > %g", owl_dtype_name(t), r, b, worst, bound);
            }
        }
        double e = rmse(x, y, n) / amp;
        if (r < 3 && e > worst_rmse) worst_rmse = e;
        if (r == 4) {
            bool zero = true;
            for (int i = 0; i < block; i++) zero = zero && y[i] == 0.0f;
            CHECKF(zero, "%s: an all-zero block must dequantize to zeros", owl_dtype_name(t));
        }
    }
    double bound = 1.3 * (2.0 / (levels(t) - 1)) / sqrt(12.0);
    CHECKF(worst_rmse <= bound, "%s: round-trip RMSE %g > %g", owl_dtype_name(t), worst_rmse, bound);
    fprintf(stderr, "  %-5s random round trip: RMSE %.5f (bound %.5f)\n", owl_dtype_name(t), worst_rmse, bound);
    free(x);
    free(y);
    free(q);
}

/* ---- dot products ---- */

/* Random weight blocks: every byte random (so every bit pattern of the
 * levels occurs), then the fp16 scale fields set to modest finite values. */
static void random_blocks(owl_dtype t, uint8_t *p, int nb, uint64_t *rng) {
    const int bb = info(t)->block_bytes;
    for (int i = 0; i < nb * bb; i++) p[i] = (uint8_t)test_rand_u64(rng);
    for (int b = 0; b < nb; b++) {
        uint8_t *k = p + (size_t)b * (size_t)bb;
        int off[2] = {-1, -1};
        switch (t) {
        case OWL_Q8_0: case OWL_Q4_0: case OWL_Q5_0: off[0] = 0; break;
        case OWL_Q4_1: case OWL_Q5_1: off[0] = 0, off[1] = 2; break;
        case OWL_Q4_K: case OWL_Q5_K: off[0] = 0, off[1] = 2; break;
        case OWL_Q2_K: off[0] = 80, off[1] = 82; break;
        case OWL_Q3_K: off[0] = 108; break;
        case OWL_Q6_K: off[0] = 208; break;
        default: break;
        }
        for (int f = 0; f < 2; f++)
            if (off[f] >= 0) qi_put_h(k + off[f], 0.01f * test_rand_f32(rng));
    }
}

static void test_dot(owl_dtype t, uint64_t *rng) {
    const owl_dtype xt = owl_quant_dot_type(t);
    const int block = info(t)->block;
    const int nbs[] = {1, 3, 7, 13, 31};
    for (int k = 0; k < 5; k++) {
        const int nb = block == 32 ? nbs[k] * 3 : nbs[k]; /* odd block counts */
        const int64_t n = (int64_t)nb * block;
        float *a = malloc(sizeof(float) * (size_t)n), *wf = malloc(sizeof(float) * (size_t)n),
              *xf = malloc(sizeof(float) * (size_t)n);
        uint8_t *w = malloc(row_bytes(t, n)), *x = malloc(row_bytes(xt, n));
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0) { /* quantized random data */
                for (int64_t i = 0; i < n; i++) a[i] = test_rand_f32(rng);
                CHECK(owl_quant_quantize_row(t, a, w, n) == OWL_OK);
            } else { /* arbitrary bit patterns */
                random_blocks(t, w, nb, rng);
            }
            for (int64_t i = 0; i < n; i++) a[i] = 3.0f * test_rand_f32(rng);
            CHECK(owl_quant_quantize_row(xt, a, x, n) == OWL_OK);
            owl_quant_dequantize_row(t, w, wf, n);
            owl_quant_dequantize_row(xt, x, xf, n);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                ref += (double)wf[i] * xf[i];
                mag += fabs((double)wf[i] * xf[i]);
            }
            double tol = 2e-6 * mag + 1e-30;
            owl_cpu_force_scalar(true);
            float scalar = owl_quant_dot(t, w, x, n);
            owl_cpu_force_scalar(false);
            float fast = owl_quant_dot(t, w, x, n);
            CHECKF(fabs(scalar - ref) <= tol, "%s nb=%d pass %d: scalar dot %.9g vs dequantized %.9g", owl_dtype_name(t), nb, pass,
                   scalar, ref);
            CHECKF(fabs(fast - ref) <= tol, "%s nb=%d pass %d: dot %.9g vs dequantized %.9g", owl_dtype_name(t), nb, pass, fast,
                   ref);
            owl_qdot_fn simd[2] = {owl_qdot_avx512(t), owl_qdot_avx2(t)};
            const char *names[2] = {"avx512", "avx2"};
            for (int s = 0; s < 2; s++) {
                if (!simd[s]) continue;
                float v = simd[s](w, x, nb);
                CHECKF(fabs(v - scalar) <= tol, "%s nb=%d pass %d: %s %.9g vs scalar %.9g", owl_dtype_name(t), nb, pass, names[s], v,
                       scalar);
            }
        }
        free(a);
        free(wf);
        free(xf);
        free(w);
        free(x);
    }
}

/* owl_quant_dot_rows: each row bit-identical to owl_quant_dot, for any
 * number of rows (groups of 4 and a remainder). */
static void test_dot_rows(owl_dtype t, uint64_t *rng) {
    const owl_dtype xt = owl_quant_dot_type(t);
    const int block = info(t)->block;
    const int nb = block == 32 ? 23 : 3, rows = 11;
    const int64_t n = (int64_t)nb * block;
    const size_t rb = row_bytes(t, n);
    uint8_t *w = malloc(rb * rows), *x = malloc(row_bytes(xt, n));
    float *a = malloc(sizeof(float) * (size_t)n), out[11];
    random_blocks(t, w, nb * rows, rng);
    for (int64_t i = 0; i < n; i++) a[i] = test_rand_f32(rng);
    CHECK(owl_quant_quantize_row(xt, a, x, n) == OWL_OK);
    for (int forced = 0; forced < 2; forced++) {
        owl_cpu_force_scalar(forced);
        for (int nr = 0; nr <= rows; nr += 5) { /* 0, 5, 10 rows */
            owl_quant_dot_rows(t, w, rb, nr, x, n, out);
            bool same = true;
            for (int r = 0; r < nr; r++) same = same && out[r] == owl_quant_dot(t, w + (size_t)r * rb, x, n);
            CHECKF(same, "%s: owl_quant_dot_rows (%d rows, scalar %d) differs from owl_quant_dot", owl_dtype_name(t), nr, forced);
        }
        owl_quant_dot_rows(t, w, rb, rows, x, n, out);
        bool same = true;
        for (int r = 0; r < rows; r++) same = same && out[r] == owl_quant_dot(t, w + (size_t)r * rb, x, n);
        CHECKF(same, "%s: owl_quant_dot_rows (%d rows) differs from owl_quant_dot", owl_dtype_name(t), rows);
    }
    owl_cpu_force_scalar(false);
    free(w);
    free(x);
    free(a);
}

/* ---- files written by llama.cpp ---- */

static void *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(len > 0 ? (size_t)len : 1);
    *size = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* Relative RMSE (error RMS / weight RMS) a type's bits allow on these
 * (near-Gaussian) weights: about 2^-bits * 4 for the 32-blocks and a bit
 * less for the K-quants; measured values are printed. */
static double rel_bound(owl_dtype t) {
    switch (t) {
    case OWL_Q8_0: return 0.01;
    case OWL_Q6_K: return 0.03;
    case OWL_Q5_0: case OWL_Q5_1: case OWL_Q5_K: return 0.06;
    case OWL_Q4_0: case OWL_Q4_1: case OWL_Q4_K: return 0.12;
    case OWL_Q3_K: return 0.25;
    case OWL_Q2_K: return 0.5;
    default: return 0;
    }
}

typedef struct {
    long blocks, same;   /* legacy types: blocks equal byte for byte */
    double err_ll, err_owl, sq; /* sums of squared errors and of squares */
    int tensors;
} file_stats;

static void test_file(const char *stem, file_stats st[OWL_DTYPE_COUNT]) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/wp/wp-%s.gguf", stem);
    char gguf[4096], stp[4096];
    snprintf(gguf, sizeof gguf, "%s", testdata_path(rel));
    snprintf(stp, sizeof stp, "%s", testdata_path("models/wp/hf/model.safetensors"));
    if (!owl_file_exists(gguf)) {
        fprintf(stderr, "  skip %s: not present\n", gguf);
        return;
    }
    char sub[64];
    snprintf(sub, sizeof sub, "quant_%s", stem);
    const char *dir = test_tmpdir(sub);
    int rc = run_cmd("%s %s %s %s %s 48", test_python(), source_path("tests/reference/quant_ref.py"), gguf, stp, dir);
    CHECKF(rc == 0, "quant_ref.py on %s", gguf);
    if (rc != 0) return;
    char *ip = path_join(dir, "index.txt");
    FILE *f = fopen(ip, "r");
    free(ip);
    CHECK(f != NULL);
    if (!f) return;
    char name[128], qf[160], ff[160], df[160];
    int type;
    long rows, cols;
    int ntensors = 0;
    while (fscanf(f, "%127s %d %ld %ld %159s %159s %159s", name, &type, &rows, &cols, qf, ff, df) == 7) {
        ntensors++;
        owl_dtype t = (owl_dtype)type;
        CHECKF(owl_quant_supported(t), "%s %s: type %d not supported", stem, name, type);
        if (!owl_quant_supported(t)) continue;
        char *qp = path_join(dir, qf), *fp = path_join(dir, ff), *dp = path_join(dir, df);
        size_t qsize = 0, fsize = 0, dsize = 0;
        uint8_t *q = read_all(qp, &qsize);
        float *orig = read_all(fp, &fsize), *npdeq = read_all(dp, &dsize);
        const int64_t n = rows * cols;
        const size_t rb = row_bytes(t, cols);
        CHECKF(q && orig && qsize == rb * (size_t)rows && fsize == sizeof(float) * (size_t)n, "%s %s: extracted sizes", stem, name);
        if (q && orig && qsize == rb * (size_t)rows && fsize == sizeof(float) * (size_t)n) {
            float *deq = malloc(sizeof(float) * (size_t)n), *mine = malloc(sizeof(float) * (size_t)n);
            uint8_t *requant = malloc(qsize);
            for (long r = 0; r < rows; r++) owl_quant_dequantize_row(t, q + r * rb, deq + r * cols, cols);
            /* NumPy's float64 dequantization from the block specification:
             * equal up to owl's float rounding */
            CHECKF(npdeq && dsize == fsize, "%s %s: NumPy dequantization missing", stem, name);
            if (npdeq && dsize == fsize) {
                double scale = rms(npdeq, n), worst = 0;
                for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)deq[i] - npdeq[i]) / (fabs(npdeq[i]) + scale));
                CHECKF(worst <= 1e-6, "%s %s (%s): owl's dequantization differs from NumPy's by %g", stem, name, owl_dtype_name(t),
                       worst);
            }
            for (long r = 0; r < rows; r++) CHECK(owl_quant_quantize_row(t, orig + r * cols, requant + r * rb, cols) == OWL_OK);
            for (long r = 0; r < rows; r++) owl_quant_dequantize_row(t, requant + r * rb, mine + r * cols, cols);
            double rel = rmse(deq, orig, n) / rms(orig, n);
            CHECKF(rel <= rel_bound(t), "%s %s (%s): llama.cpp blocks dequantize to relative RMSE %g > %g", stem, name, owl_dtype_name(t),
                   rel, rel_bound(t));
            file_stats *s = &st[t];
            s->tensors++;
            s->err_ll += rmse(deq, orig, n) * rmse(deq, orig, n) * (double)n;
            s->err_owl += rmse(mine, orig, n) * rmse(mine, orig, n) * (double)n;
            s->sq += rms(orig, n) * rms(orig, n) * (double)n;
            const int bb = info(t)->block_bytes;
            if (info(t)->block == 32) {
                long nblk = (long)(qsize / (size_t)bb), same = 0;
                for (long b = 0; b < nblk; b++) same += memcmp(q + b * bb, requant + b * bb, (size_t)bb) == 0;
                s->blocks += nblk;
                s->same += same;
            }
            free(deq);
            free(mine);
            free(requant);
        }
        free(q);
        free(orig);
        free(npdeq);
        free(qp);
        free(fp);
        free(dp);
    }
    fclose(f);
    CHECKF(ntensors >= 21, "%s: %d tensors compared", stem, ntensors);
}

static void test_files(void) {
    static const char *stems[] = {"Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K"};
    file_stats st[OWL_DTYPE_COUNT];
    memset(st, 0, sizeof st);
    for (int i = 0; i < 10; i++) test_file(stems[i], st);
    for (int i = 0; i < NTYPES; i++) {
        owl_dtype t = ALL[i];
        file_stats *s = &st[t];
        if (!s->tensors) continue;
        double ll = sqrt(s->err_ll / s->sq), me = sqrt(s->err_owl / s->sq);
        fprintf(stderr, "  %-5s llama.cpp files: %3d tensors, rel RMSE llama.cpp %.5f, owl %.5f (ratio %.4f)", owl_dtype_name(t),
                s->tensors, ll, me, me / ll);
        if (info(t)->block == 32) {
            fprintf(stderr, ", identical blocks %ld/%ld (%.4f%%)\n", s->same, s->blocks, 100.0 * (double)s->same / (double)s->blocks);
            /* The reference quantizers of the 32-blocks are plain rounding:
             * ours must reproduce llama.cpp's blocks. */
            CHECKF(s->same >= s->blocks - s->blocks / 1000, "%s: only %ld of %ld blocks identical to llama.cpp", owl_dtype_name(t),
                   s->same, s->blocks);
        } else {
            fputc('\n', stderr);
        }
        CHECKF(me <= 1.05 * ll, "%s: owl's quantization error %g is more than 1.05x llama.cpp's %g", owl_dtype_name(t), me, ll);
    }
    CHECK(st[OWL_Q4_K].tensors > 0 && st[OWL_Q6_K].tensors > 0 && st[OWL_Q8_0].tensors > 0);
}

/* ---- activation quantizers: SIMD bytes equal the reference's ---- */

static void test_activation_quant(uint64_t *rng) {
    const owl_dtype ts[2] = {OWL_Q8_0, OWL_Q8_K};
    const int64_t n = 7 * 256;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int k = 0; k < 2; k++) {
        owl_dtype t = ts[k];
        const int block = info(t)->block;
        size_t bytes = row_bytes(t, n);
        uint8_t *ref = malloc(bytes), *fast = malloc(bytes);
        for (int pass = 0; pass < 3; pass++) {
            for (int64_t i = 0; i < n; i++) x[i] = (pass == 1 ? 1e-6f : 4.0f) * test_rand_f32(rng);
            if (pass == 2) {
                /* scale 1 blocks (max 127) full of ties and near-ties of the rounding */
                for (int64_t i = 0; i < n; i++) {
                    int r = (int)(test_rand_u64(rng) % 253) - 126;
                    static const float frac[] = {0.5f, -0.5f, 0.49999997f, -0.49999997f, 0.50000006f, 0.0f};
                    x[i] = (float)r + frac[test_rand_u64(rng) % 6];
                    if (x[i] > 127.0f) x[i] = 127.0f;
                    if (x[i] < -127.0f) x[i] = -127.0f;
                }
                for (int64_t b = 0; b < n / block; b++) x[b * block] = 127.0f;
            }
            owl_cpu_force_scalar(true);
            CHECK(owl_quant_quantize_row(t, x, ref, n) == OWL_OK);
            owl_cpu_force_scalar(false);
            CHECK(owl_quant_quantize_row(t, x, fast, n) == OWL_OK);
            CHECKF(memcmp(ref, fast, bytes) == 0, "%s pass %d: SIMD quantizer bytes differ from the reference", owl_dtype_name(t), pass);
            owl_qquant_fn paths[2] = {owl_qquant_avx512(t), owl_qquant_avx2(t)};
            for (int k2 = 0; k2 < 2; k2++) {
                if (!paths[k2]) continue;
                memset(fast, 0xa5, bytes);
                paths[k2](x, fast, n / block);
                CHECKF(memcmp(ref, fast, bytes) == 0, "%s pass %d: %s quantizer bytes differ from the reference", owl_dtype_name(t), pass,
                       k2 ? "AVX2" : "AVX-512");
            }
            if (pass == 2) { /* with d = 1 the levels are roundf(x) exactly */
                bool exact = true;
                for (int64_t i = 0; i < n; i++) {
                    const int8_t *qs = t == OWL_Q8_0 ? ((const blk_q8_0 *)ref)[i / 32].qs + i % 32
                                                     : ((const blk_q8_k *)ref)[i / 256].qs + i % 256;
                    exact = exact && *qs == (int)roundf(x[i]);
                }
                CHECKF(exact, "%s: levels of a scale-1 block are not roundf(x)", owl_dtype_name(t));
            }
        }
        free(ref);
        free(fast);
    }
    free(x);
}

/* ---- bad input ---- */

static void test_bad_input(void) {
    float x[64] = {0};
    uint8_t y[512];
    owl_status s = owl_quant_quantize_row(OWL_Q4_0, x, y, 33);
    CHECK(s == OWL_ERR_ARG);
    CHECKF(strstr(owl_last_error(), "33") != NULL, "error text: %s", owl_last_error());
    CHECK(owl_quant_quantize_row(OWL_Q4_K, x, y, 64) == OWL_ERR_ARG);
    CHECK(owl_quant_quantize_row(OWL_Q8_K, x, y, 32) == OWL_ERR_ARG);
    CHECK(owl_quant_quantize_row(OWL_Q8_0, x, y, -32) == OWL_ERR_ARG);
    CHECK(owl_quant_quantize_row(OWL_F32, x, y, 32) == OWL_ERR_UNSUPPORTED);
    CHECK(owl_quant_quantize_row(OWL_Q8_1, x, y, 32) == OWL_ERR_UNSUPPORTED);
    CHECK(!owl_quant_supported(OWL_F32) && !owl_quant_supported(OWL_Q8_1) && !owl_quant_supported((owl_dtype)99));
    CHECK(owl_quant_dot_type(OWL_Q4_0) == OWL_Q8_0 && owl_quant_dot_type(OWL_Q6_K) == OWL_Q8_K);
}

int main(void) {
    uint64_t rng = 12345;
    for (int i = 0; i < NTYPES; i++) CHECKF(owl_quant_supported(ALL[i]), "%s", owl_dtype_name(ALL[i]));
    for (int i = 0; i < NTYPES; i++) test_roundtrip(ALL[i], &rng);
    for (int i = 0; i < NTYPES; i++) test_dot(ALL[i], &rng);
    for (int i = 0; i < NTYPES; i++) test_dot_rows(ALL[i], &rng);
    test_activation_quant(&rng);
    test_bad_input();
    test_files();
    return test_finish("test_quant");
}
