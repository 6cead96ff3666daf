/* Matrix products Y = X W^T for weights in F32 / F16 / BF16 and the
 * quantized types of tensor/quant.
 *
 * n_tok == 1 (generation) is a matrix-vector product: rows split over the
 * threads in cache-line aligned chunks, four rows at a time sharing the loads
 * of x, so the weights are streamed from memory exactly once.
 *
 * n_tok >= 8 on a CPU with AMX-BF16 goes to gemm_amx.c (split-bf16 tiles,
 * float-like precision); quantized weights do so from 64 tokens (128 for the
 * K-quants), dequantizing each weight panel once per 512 tokens.
 *
 * Otherwise up to 31 tokens are matrix-vector products that keep four rows
 * in L1 for all tokens (weights still streamed once), and from 32 tokens on a
 * blocked matrix-matrix product: tokens
 * are packed in panels of OWL_GEMM_NR ([k][NR] floats, zero padded), each
 * thread takes a contiguous range of 32-row weight panels, converts a panel
 * of 32 rows x KC columns to float once ([k][32]) and runs the register-
 * blocked micro-kernel over every token panel with it. Quantized weights
 * quantize each token row once to the type's dot partner and use
 * owl_quant_dot per row. */
#include "tensor/kernels.h"
#include "tensor/quant.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MR OWL_GEMM_MR
#define NR OWL_GEMM_NR
#define KC 256          /* columns per packed weight panel (32 x 256 floats = 32 KiB) */
#define TOK_CHUNK 240   /* tokens packed at once (a multiple of NR) */
#define MIN_PAR_WORK (1 << 16) /* multiply-adds below which one thread is faster */
#define AMX_MIN_TOK 8        /* tokens from which AMX beats the float kernel */
#define GEMM_MIN_TOK 32      /* tokens from which the blocked float kernel beats matrix-vector products */
#define Q8_GEMM_MIN_TOK 16    /* tokens from which the VNNI int8 GEMM beats the quantized dot products */
#define AMX_MIN_TOK_QUANT 64 /* ... and the quantized dot products (x2 for the K-quants, slower to dequantize) */

static bool plain_float(owl_dtype t) { return t == OWL_F32 || t == OWL_F16 || t == OWL_BF16; }

bool owl_matmul_supported(owl_dtype t) {
    if (plain_float(t)) return true;
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    return d && d->quantized && owl_quant_supported(t);
}

/* Scratch that belongs to one thread and only grows, so that the hot path
 * does not allocate; a thread-specific key frees it when the thread ends. */
typedef struct scratch_set {
    void *p[OWL_SCRATCH_SLOTS];
    size_t cap[OWL_SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_set *s = p;
    for (int i = 0; i < OWL_SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *owl_kernel_scratch(int slot, size_t n) {
    pthread_once(&scratch_once, scratch_init);
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = owl_calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (n > s->cap[slot]) {
        free(s->p[slot]);
        s->cap[slot] = 0;
        s->p[slot] = owl_alloc_aligned(n);
        if (!s->p[slot]) return NULL;
        s->cap[slot] = n;
    }
    return s->p[slot];
}

static int threads_for(int64_t rows, int64_t work) {
    int nt = owl_threads();
    if (work < MIN_PAR_WORK) return 1;
    if (nt > rows) nt = (int)(rows > 0 ? rows : 1);
    return nt;
}

/* ---- a pool for matrix-vector products ----
 *
 * Generation runs ~10 small products per layer, each a few hundred
 * microseconds. An OpenMP region ends in a barrier that every thread of the
 * team must reach, so when the machine is busier than its cores a worker
 * that the system has not scheduled yet holds the product up for a whole
 * time slice (measured: 2-thread generation 10x slower than 1 thread under
 * load). Here the rows are chunks that whoever runs takes from a counter;
 * the caller works too and waits only for chunks another thread has taken,
 * never for a worker to wake up. Workers spin briefly, then sleep. One
 * product at a time: a caller that finds the pool busy uses OpenMP. */

static struct {
    pthread_mutex_t busy;  /* held by the caller of the product running now */
    pthread_mutex_t lock;  /* with wake: sleeping workers */
    pthread_cond_t wake;
    int n_workers;         /* started so far */
    _Atomic uint64_t gen;  /* bumped per product */
    _Atomic int open;      /* workers may join the product of gen */
    _Atomic int active;    /* workers inside the product */
    _Atomic int64_t next, done;
    int64_t n_chunks;
    int max_workers;       /* workers (by index) that may join this product */
    owl_chunk_fn fn;
    void *arg;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

#define POOL_MAX_WORKERS 63
#define POOL_SPIN 20000 /* pause loops (~100 us) before a worker sleeps */

static void pool_run_chunks(void) {
    for (;;) {
        int64_t c = atomic_fetch_add(&pool.next, 1);
        if (c >= pool.n_chunks) break;
        pool.fn(pool.arg, c);
        atomic_fetch_add(&pool.done, 1);
    }
}

static void *pool_worker(void *p) {
    int index = (int)(intptr_t)p;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spin = 0;
        while ((g = atomic_load(&pool.gen)) == seen && spin < POOL_SPIN) {
            __builtin_ia32_pause();
            spin++;
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load(&pool.gen)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        /* join: registered first, then check the product is still open,
         * so that the caller either sees us or we see it closed */
        atomic_fetch_add(&pool.active, 1);
        if (atomic_load(&pool.open) && atomic_load(&pool.gen) == g && index < pool.max_workers) pool_run_chunks();
        atomic_fetch_sub(&pool.active, 1);
    }
    return NULL;
}

/* Runs fn(arg, c) for c < n_chunks on up to nt threads (the caller is one).
 * False if the pool is busy or no worker could be started: nothing ran. */
bool owl_kernel_pool_run(owl_chunk_fn fn, void *arg, int64_t n_chunks, int nt) {
    if (nt < 2 || n_chunks < 2) {
        for (int64_t c = 0; c < n_chunks; c++) fn(arg, c);
        return true;
    }
    if (pthread_mutex_trylock(&pool.busy) != 0) return false;
    int want = nt - 1 < POOL_MAX_WORKERS ? nt - 1 : POOL_MAX_WORKERS;
    while (pool.n_workers < want) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &at, pool_worker, (void *)(intptr_t)pool.n_workers);
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        pool.n_workers++;
    }
    if (pool.n_workers == 0) {
        pthread_mutex_unlock(&pool.busy);
        return false;
    }
    pool.fn = fn;
    pool.arg = arg;
    pool.n_chunks = n_chunks;
    pool.max_workers = want;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.open, 1);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.gen, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    pool_run_chunks();
    for (int spin = 0; atomic_load(&pool.done) < n_chunks; spin++) { /* chunks others have taken */
        __builtin_ia32_pause();
        if (spin > 2000) sched_yield(); /* the thread we wait for may need this core */
    }
    atomic_store(&pool.open, 0);
    while (atomic_load(&pool.active) > 0) __builtin_ia32_pause(); /* a worker between joining and leaving */
    pthread_mutex_unlock(&pool.busy);
    return true;
}

/* ---- matrix-vector ---- */

/* Rows [r0, r1) for n_tok tokens, four rows at a time: the four rows are
 * read from memory once and stay in L1 for the other tokens. */
static void gemv_range(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1,
                       owl_kernel_isa isa) {
    const char *base = W->data;
    const int64_t cols = W->cols, ldy = W->rows;
    int64_t r = r0;
    float o[4];
    if (isa != OWL_ISA_SCALAR) {
        for (; r + 4 <= r1; r += 4) {
            const char *rows = base + (size_t)r * W->row_bytes;
            for (int t = 0; t < n_tok; t++) {
                const float *x = X + (size_t)t * cols;
                if (isa == OWL_ISA_AVX512) owl_dot4_avx512(W->dtype, rows, W->row_bytes, x, cols, o);
                else owl_dot4_avx2(W->dtype, rows, W->row_bytes, x, cols, o);
                memcpy(Y + (size_t)t * ldy + r, o, sizeof o);
            }
        }
    }
    for (; r < r1; r++) {
        const void *row = base + (size_t)r * W->row_bytes;
        for (int t = 0; t < n_tok; t++) {
            const float *x = X + (size_t)t * cols;
            float v;
            if (isa == OWL_ISA_AVX512) v = owl_dot_avx512(W->dtype, row, x, cols);
            else if (isa == OWL_ISA_AVX2) v = owl_dot_avx2(W->dtype, row, x, cols);
            else v = owl_dot_scalar(W->dtype, row, x, cols);
            Y[(size_t)t * ldy + r] = v;
        }
    }
}

/* Matrix-vector products for a few tokens (or the scalar reference for any
 * number): the weights are streamed once whatever n_tok is. */
typedef struct rows_job {
    const owl_mat *W;
    const float *X;
    float *Y;
    const void *q; /* quantized activations (matmul_quant) */
    size_t qbytes;
    int n_tok;
    int64_t r0, r1, chunk;
    owl_kernel_isa isa;
} rows_job;

static void gemv_chunk(void *arg, int64_t c) {
    const rows_job *j = arg;
    int64_t lo = j->r0 + c * j->chunk, hi = lo + j->chunk < j->r1 ? lo + j->chunk : j->r1;
    gemv_range(j->W, j->X, j->Y, j->n_tok, lo, hi, j->isa);
}

/* Rows per chunk of the pool: cache-line multiples of Y (16 floats), about
 * eight chunks per thread so that a late thread takes fewer. */
static int64_t pool_chunk(int64_t R, int nt) {
    int64_t c = R / ((int64_t)nt * 8);
    c = (c + 15) & ~(int64_t)15;
    return c < 16 ? 16 : c;
}

static void gemv(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1, owl_kernel_isa isa) {
    int64_t R = r1 - r0;
    int nt = threads_for(R, R * W->cols * n_tok);
    if (nt > 1) {
        rows_job j = {W, X, Y, NULL, 0, n_tok, r0, r1, pool_chunk(R, nt), isa};
        if (owl_kernel_pool_run(gemv_chunk, &j, (R + j.chunk - 1) / j.chunk, nt)) return;
    }
    /* Chunks of 16 rows: 16 floats of Y are one cache line. */
    int64_t chunk = (R + nt - 1) / nt;
    chunk = (chunk + 15) & ~(int64_t)15;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo = r0 + chunk * omp_get_thread_num();
        int64_t hi = lo + chunk < r1 ? lo + chunk : r1;
        if (lo < hi) gemv_range(W, X, Y, n_tok, lo, hi, isa);
    }
}

/* ---- matrix-matrix ---- */

/* Packs tokens [t0, t0 + nt) (nt <= NR) of X into xp[k][NR] for all k,
 * zero-padding missing tokens. */
static void pack_tokens(const float *X, int64_t cols, int t0, int nt, float *xp) {
    for (int64_t k = 0; k < cols; k++) {
        float *d = xp + k * NR;
        int j = 0;
        for (; j < nt; j++) d[j] = X[(size_t)(t0 + j) * cols + k];
        for (; j < NR; j++) d[j] = 0.0f;
    }
}

/* Converts rows [r, r + nr) (nr <= MR), columns [k0, k0 + kc) of W into
 * wp[k][MR], zero-padding missing rows. */
static void pack_weights(const owl_mat *W, int64_t r, int nr, int64_t k0, int kc, float *wp, float *tmp, owl_kernel_isa isa) {
    const char *base = W->data;
    size_t esz = W->dtype == OWL_F32 ? 4 : 2;
    if (isa == OWL_ISA_AVX512) {
        owl_gemm_pack_avx512(W->dtype, base + (size_t)r * W->row_bytes + (size_t)k0 * esz, W->row_bytes, nr, kc, wp);
        return;
    }
    for (int i = 0; i < nr; i++) {
        const char *src = base + (size_t)(r + i) * W->row_bytes + (size_t)k0 * esz;
        const float *f;
        if (W->dtype == OWL_F32) {
            f = (const float *)src;
        } else {
            if (isa == OWL_ISA_AVX512) {
                if (W->dtype == OWL_F16) owl_cvt_f16_f32_avx512((const uint16_t *)src, tmp, kc);
                else owl_cvt_bf16_f32_avx512((const uint16_t *)src, tmp, kc);
            } else {
                if (W->dtype == OWL_F16) owl_cvt_f16_f32_avx2((const uint16_t *)src, tmp, kc);
                else owl_cvt_bf16_f32_avx2((const uint16_t *)src, tmp, kc);
            }
            f = tmp;
        }
        for (int k = 0; k < kc; k++) wp[(size_t)k * MR + i] = f[k];
    }
    for (int i = nr; i < MR; i++)
        for (int k = 0; k < kc; k++) wp[(size_t)k * MR + i] = 0.0f;
}

static void micro(owl_kernel_isa isa, const float *wp, const float *xp, int kc, float *c, int64_t ldc, bool acc) {
    if (isa == OWL_ISA_AVX512) owl_gemm_micro_avx512(wp, xp, kc, c, ldc, acc);
    else owl_gemm_micro_avx2(wp, xp, kc, c, ldc, acc);
}

/* Y rows [r0, r1) x tokens [t0, t0 + nt) from the packed token panels xp. */
static void gemm_rows(const owl_mat *W, const float *xp, int nblocks, int t0, int nt, float *Y, int64_t r0, int64_t r1,
                      owl_kernel_isa isa) {
    _Alignas(64) float wp[KC * MR];
    _Alignas(64) float tmp[KC];
    _Alignas(64) float ctile[NR * MR];
    const int64_t cols = W->cols, ldy = W->rows;
    for (int64_t r = r0; r < r1; r += MR) {
        int nr = r1 - r < MR ? (int)(r1 - r) : MR;
        for (int64_t k0 = 0; k0 < cols; k0 += KC) {
            int kc = cols - k0 < KC ? (int)(cols - k0) : KC;
            bool acc = k0 > 0;
            pack_weights(W, r, nr, k0, kc, wp, tmp, isa);
            for (int b = 0; b < nblocks; b++) {
                const float *xb = xp + (size_t)b * cols * NR + (size_t)k0 * NR;
                int tb = t0 + b * NR;
                int ntb = nt - b * NR < NR ? nt - b * NR : NR;
                float *c = Y + (size_t)tb * ldy + r;
                if (nr == MR && ntb == NR) {
                    micro(isa, wp, xb, kc, c, ldy, acc);
                    continue;
                }
                /* An edge tile: run it on a full tile buffer and copy back. */
                for (int j = 0; j < NR; j++)
                    for (int i = 0; i < MR; i++)
                        ctile[j * MR + i] = acc && j < ntb && i < nr ? c[(size_t)j * ldy + i] : 0.0f;
                micro(isa, wp, xb, kc, ctile, MR, true);
                for (int j = 0; j < ntb; j++) memcpy(c + (size_t)j * ldy, ctile + j * MR, sizeof(float) * (size_t)nr);
            }
        }
    }
}

/* One token chunk of gemm on the pool: packing, then rows. */
typedef struct gemm_job {
    const owl_mat *W;
    const float *X;
    float *Y, *xp;
    int t0, ntc, nblocks;
    int64_t r0, r1, panels_per_chunk;
    owl_kernel_isa isa;
} gemm_job;

static void gemm_pack_chunk(void *arg, int64_t b) {
    const gemm_job *j = arg;
    const int64_t cols = j->W->cols;
    int ntb = j->ntc - (int)b * NR < NR ? j->ntc - (int)b * NR : NR;
    pack_tokens(j->X + (size_t)(j->t0 + b * NR) * cols, cols, 0, ntb, j->xp + (size_t)b * cols * NR);
}

static void gemm_rows_chunk(void *arg, int64_t c) {
    const gemm_job *j = arg;
    int64_t lo = j->r0 + c * j->panels_per_chunk * MR, hi = lo + j->panels_per_chunk * MR;
    if (hi > j->r1) hi = j->r1;
    if (lo < hi) gemm_rows(j->W, j->xp, j->nblocks, j->t0, j->ntc, j->Y, lo, hi, j->isa);
}

/* The pool (no barrier waits for a thread the system has not scheduled);
 * false if it is busy. */
static bool gemm_pool(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1, owl_kernel_isa isa,
                      float *xp, int per_chunk, int nt) {
    int64_t panels = (r1 - r0 + MR - 1) / MR;
    int64_t ppc = panels / ((int64_t)nt * 4);
    if (ppc < 1) ppc = 1;
    for (int t0 = 0; t0 < n_tok; t0 += per_chunk) {
        int ntc = n_tok - t0 < per_chunk ? n_tok - t0 : per_chunk;
        gemm_job j = {W, X, Y, xp, t0, ntc, (ntc + NR - 1) / NR, r0, r1, ppc, isa};
        if (!owl_kernel_pool_run(gemm_pack_chunk, &j, j.nblocks, nt)) {
            if (t0 == 0) return false;
            for (int b = 0; b < j.nblocks; b++) gemm_pack_chunk(&j, b);
        }
        int64_t n = (panels + ppc - 1) / ppc;
        if (!owl_kernel_pool_run(gemm_rows_chunk, &j, n, nt))
            for (int64_t c = 0; c < n; c++) gemm_rows_chunk(&j, c);
    }
    return true;
}

static bool gemm(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1, owl_kernel_isa isa) {
    const int64_t cols = W->cols, R = r1 - r0;
    int n_chunks = (n_tok + TOK_CHUNK - 1) / TOK_CHUNK;
    int per_chunk = (n_tok + n_chunks - 1) / n_chunks;
    per_chunk = (per_chunk + NR - 1) / NR * NR;
    int max_blocks = per_chunk / NR;
    float *xp = owl_kernel_scratch(OWL_SCRATCH_XPACK, sizeof(float) * (size_t)max_blocks * NR * (size_t)cols);
    if (!xp) return false;
    int64_t panels = (R + MR - 1) / MR;
    int nt = threads_for(panels, R * cols * n_tok);
    if (nt > 1 && gemm_pool(W, X, Y, n_tok, r0, r1, isa, xp, per_chunk, nt)) return true;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int64_t p0 = panels * tid / nth, p1 = panels * (tid + 1) / nth;
        int64_t lo = r0 + p0 * MR, hi = r0 + p1 * MR < r1 ? r0 + p1 * MR : r1;
        for (int t0 = 0; t0 < n_tok; t0 += per_chunk) {
            int ntc = n_tok - t0 < per_chunk ? n_tok - t0 : per_chunk;
            int nblocks = (ntc + NR - 1) / NR;
#pragma omp for schedule(static)
            for (int b = 0; b < nblocks; b++) {
                int ntb = ntc - b * NR < NR ? ntc - b * NR : NR;
                pack_tokens(X + (size_t)(t0 + b * NR) * cols, cols, 0, ntb, xp + (size_t)b * cols * NR);
            }
            /* the implicit barrier of omp for: every panel is packed */
            if (lo < hi) gemm_rows(W, xp, nblocks, t0, ntc, Y, lo, hi, isa);
#pragma omp barrier
        }
    }
    return true;
}

/* ---- quantized weights ---- */

static void quant_fallback(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    /* Dequantize each row once and use the float dot product. */
    float *w = malloc(sizeof(float) * (size_t)W->cols);
    for (int64_t r = r0; r < r1; r++) {
        if (w) owl_quant_dequantize_row(W->dtype, (const char *)W->data + (size_t)r * W->row_bytes, w, W->cols);
        for (int t = 0; t < n_tok; t++)
            Y[(size_t)t * W->rows + r] = w ? owl_dot_f32(OWL_F32, w, X + (size_t)t * W->cols, W->cols) : NAN;
    }
    free(w);
}

/* Rows of a chunk, 8 at a time for all tokens (they stay in L1), four
 * rows per kernel call sharing the activation loads. */
static void quant_chunk(void *arg, int64_t c) {
    const rows_job *j = arg;
    const owl_mat *W = j->W;
    int64_t lo = j->r0 + c * j->chunk, hi = lo + j->chunk < j->r1 ? lo + j->chunk : j->r1;
    float out[8];
    for (int64_t r = lo; r < hi; r += 8) {
        int64_t nr = hi - r < 8 ? hi - r : 8;
        const char *rows = (const char *)W->data + (size_t)r * W->row_bytes;
        for (int t = 0; t < j->n_tok; t++) {
            owl_quant_dot_rows(W->dtype, rows, W->row_bytes, nr, (const char *)j->q + (size_t)t * j->qbytes, W->cols, out);
            memcpy(j->Y + (size_t)t * W->rows + r, out, sizeof(float) * (size_t)nr);
        }
    }
}

static void matmul_quant(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    owl_dtype dt = owl_quant_dot_type(W->dtype);
    uint64_t qbytes = 0;
    void *q = NULL;
    if (owl_dtype_bytes(dt, (uint64_t)W->cols, &qbytes) && qbytes > 0)
        q = owl_kernel_scratch(OWL_SCRATCH_QUANT, (size_t)qbytes * (size_t)n_tok);
    bool ok = q != NULL;
    if (ok) {
        for (int t = 0; t < n_tok && ok; t++)
            ok = owl_quant_quantize_row(dt, X + (size_t)t * W->cols, (char *)q + (size_t)t * qbytes, W->cols) == OWL_OK;
    }
    int64_t R = r1 - r0;
    int nt = threads_for(R, R * W->cols * n_tok);
    if (ok) {
        rows_job j = {W, X, Y, q, (size_t)qbytes, n_tok, r0, r1, pool_chunk(R, nt), OWL_ISA_SCALAR};
        if (owl_kernel_pool_run(quant_chunk, &j, (R + j.chunk - 1) / j.chunk, nt)) return;
    }
    int64_t chunk = ((R + nt - 1) / nt + 15) & ~(int64_t)15;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo = r0 + chunk * omp_get_thread_num();
        int64_t hi = lo + chunk < r1 ? lo + chunk : r1;
        if (lo < hi && !ok) quant_fallback(W, X, Y, n_tok, lo, hi);
        for (int64_t r = lo; ok && r < hi; r++) {
            const void *row = (const char *)W->data + (size_t)r * W->row_bytes;
            for (int t = 0; t < n_tok; t++)
                Y[(size_t)t * W->rows + r] = owl_quant_dot(W->dtype, row, (const char *)q + (size_t)t * qbytes, W->cols);
        }
    }
}

/* ---- entry points ---- */

void owl_matmul_rows(const owl_mat *W, const float *X, float *Y, int n_tok, int64_t r0, int64_t r1) {
    if (r0 < 0) r0 = 0;
    if (r1 > W->rows) r1 = W->rows;
    if (n_tok <= 0 || r1 <= r0) return;
    if (!plain_float(W->dtype)) {
        /* quantized rows must be whole blocks (format readers check this) */
        if (owl_matmul_supported(W->dtype) && W->cols % owl_dtype_get((uint32_t)W->dtype)->block == 0) {
            /* Long prompts: dequantize panels once for AMX (float activations). */
            int min_tok = owl_dtype_get((uint32_t)W->dtype)->block >= 256 ? 2 * AMX_MIN_TOK_QUANT : AMX_MIN_TOK_QUANT;
            if (n_tok >= min_tok && owl_gemm_amx_usable(W->dtype) && owl_gemm_amx(W, X, Y, n_tok, r0, r1))
                return;
            /* Without AMX: integer tiles of 32 rows x 6 tokens on VNNI. */
            if (n_tok >= Q8_GEMM_MIN_TOK && owl_gemm_q8_usable(W->dtype) && owl_gemm_q8(W, X, Y, n_tok, r0, r1)) return;
            matmul_quant(W, X, Y, n_tok, r0, r1);
        } else {
            for (int t = 0; t < n_tok; t++)
                for (int64_t r = r0; r < r1; r++) Y[(size_t)t * W->rows + r] = NAN;
        }
        return;
    }
    owl_kernel_isa isa = owl_kernel_level();
    if (n_tok >= AMX_MIN_TOK && owl_gemm_amx_usable(W->dtype) && owl_gemm_amx(W, X, Y, n_tok, r0, r1)) return;
    /* A few tokens: matrix-vector products that read the weights once beat
     * converting them into packed panels. */
    if (n_tok < GEMM_MIN_TOK || isa == OWL_ISA_SCALAR || !gemm(W, X, Y, n_tok, r0, r1, isa))
        gemv(W, X, Y, n_tok, r0, r1, isa);
}

void owl_matmul(const owl_mat *W, const float *X, float *Y, int n_tok) { owl_matmul_rows(W, X, Y, n_tok, 0, W->rows); }
