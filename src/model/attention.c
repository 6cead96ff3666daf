/* Causal grouped-query attention against the KV cache, without ever building
 * an n x n score matrix: each task holds the scores of one query row (or of
 * a block of 16 query rows of one head) over keys 0..pos in a per-thread
 * buffer. Parallel over (query block, head).
 *
 * Paths: the portable one (owl_dot_f32 and plain loops) is the reference;
 * with AVX-512 and head_dim a multiple of 16 (<= 256), a single query row
 * (generation) keeps the query and its output in registers, and a block of
 * up to 16 query rows (prompt processing) is computed with the queries
 * transposed so that 16 scores come out of each key without horizontal sums,
 * a vectorised exp, and 16 / (head_dim/16) output rows accumulated at once. */
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OWL_ATT_AVX512 1
#endif

#define OWL_ATT_BLOCK 16 /* query rows per block */

size_t owl_model_attention_scratch(int n_ctx, int head_dim) {
    /* block scores [n_ctx][16] + transposed queries [head_dim][16] + row inverse sums */
    return (size_t)n_ctx * OWL_ATT_BLOCK + (size_t)head_dim * OWL_ATT_BLOCK + OWL_ATT_BLOCK;
}

/* Attention of one query row q (hd floats) over keys/values 0..n_keys-1 at
 * K, V (row stride `stride` floats); sc: n_keys floats of scratch. */
static void attend_row_ref(const float *q, const float *K, const float *V, size_t stride, int n_keys, int hd,
                           float scale, float cap, float *sc, float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        float s = owl_dot_f32(OWL_F32, K + (size_t)j * stride, q, hd) * scale;
        if (cap > 0) s = cap * tanhf(s / cap); /* soft-capped scores (Gemma 2) */
        sc[j] = s;
        if (s > mx) mx = s;
    }
    float sum = 0.0f;
    for (int j = 0; j < n_keys; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    const float inv = 1.0f / sum;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int j = 0; j < n_keys; j++) {
        const float a = sc[j] * inv;
        const float *v = V + (size_t)j * stride;
        for (int d = 0; d < hd; d++) out[d] += a * v[d];
    }
}

#ifdef OWL_ATT_AVX512
/* exp(x) for x <= 0 (exactly 0 below -87, so no denormals reach the sums):
 * 2^n * p(f), f = x - n ln2, degree-7 polynomial; relative error ~1e-7. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 exp_le0(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), f);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

/* sc[j] = exp(sc[j] - mx) for j < n; returns the sum. */
__attribute__((target("avx512f"))) static float exp_sum_avx512(float *sc, int n, float mx) {
    const __m512 m = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp_le0(_mm512_sub_ps(_mm512_loadu_ps(sc + j), m));
        _mm512_storeu_ps(sc + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
        __m512 e = exp_le0(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, sc + j), m));
        _mm512_mask_storeu_ps(sc + j, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

/* One query row; NV = hd / 16 is a compile-time constant in each caller so
 * that the query and the output stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
attend_row_nv(const float *q, const float *K, const float *V, size_t stride, int n_keys, float scale, float cap,
              float *sc, float *out, const int NV) {
    __m512 qv[16], ov[16];
    for (int i = 0; i < NV; i++) qv[i] = _mm512_loadu_ps(q + 16 * i);
    float mx = -INFINITY;
    int j = 0;
    for (; j + 2 <= n_keys; j += 2) { /* two keys: independent chains */
        const float *k0 = K + (size_t)j * stride, *k1 = k0 + stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0));
        __m512 a1 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k1));
        for (int i = 1; i < NV; i++) {
            a0 = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k0 + 16 * i), a0);
            a1 = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k1 + 16 * i), a1);
        }
        float s0 = _mm512_reduce_add_ps(a0) * scale, s1 = _mm512_reduce_add_ps(a1) * scale;
        sc[j] = s0;
        sc[j + 1] = s1;
        if (s0 > mx) mx = s0;
        if (s1 > mx) mx = s1;
    }
    for (; j < n_keys; j++) {
        const float *k0 = K + (size_t)j * stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0));
        for (int i = 1; i < NV; i++) a0 = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k0 + 16 * i), a0);
        float s0 = _mm512_reduce_add_ps(a0) * scale;
        sc[j] = s0;
        if (s0 > mx) mx = s0;
    }
    if (cap > 0) { /* soft-capped scores; tanh is monotonic, so the maximum maps to the maximum */
        for (j = 0; j < n_keys; j++) sc[j] = cap * tanhf(sc[j] / cap);
        mx = cap * tanhf(mx / cap);
    }
    const float inv = 1.0f / exp_sum_avx512(sc, n_keys, mx);
    for (int i = 0; i < NV; i++) ov[i] = _mm512_setzero_ps();
    for (j = 0; j < n_keys; j++) {
        const __m512 a = _mm512_set1_ps(sc[j]);
        const float *v = V + (size_t)j * stride;
        for (int i = 0; i < NV; i++) ov[i] = _mm512_fmadd_ps(a, _mm512_loadu_ps(v + 16 * i), ov[i]);
    }
    const __m512 iv = _mm512_set1_ps(inv);
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(out + 16 * i, _mm512_mul_ps(ov[i], iv));
}

__attribute__((target("avx512f"))) static void attend_row_avx512(const float *q, const float *K, const float *V,
                                                                  size_t stride, int n_keys, int hd, float scale,
                                                                  float cap, float *sc, float *out) {
    switch (hd / 16) {
    case 2: attend_row_nv(q, K, V, stride, n_keys, scale, cap, sc, out, 2); break;
    case 4: attend_row_nv(q, K, V, stride, n_keys, scale, cap, sc, out, 4); break;
    case 8: attend_row_nv(q, K, V, stride, n_keys, scale, cap, sc, out, 8); break;
    default: attend_row_nv(q, K, V, stride, n_keys, scale, cap, sc, out, hd / 16); break;
    }
}

/* Output rows of QG queries (from q0) of a block: out[qi] = sum_j S[j][q0+qi]
 * V[j] * inv[q0+qi]. NV * QG <= 16 accumulators. */
__attribute__((target("avx512f"), always_inline)) static inline void
block_out(const float *S, const float *V, size_t stride, int n_keys, const float *inv, int q0, int nq, float *O,
          size_t o_stride, const int NV, const int QG) {
    __m512 acc[16];
    for (int i = 0; i < NV * QG; i++) acc[i] = _mm512_setzero_ps();
    for (int j = 0; j < n_keys; j++) {
        const float *v = V + (size_t)j * stride;
        const float *s = S + (size_t)j * OWL_ATT_BLOCK + q0;
        for (int i = 0; i < NV; i++) {
            const __m512 vv = _mm512_loadu_ps(v + 16 * i);
            for (int g = 0; g < QG; g++) acc[g * NV + i] = _mm512_fmadd_ps(_mm512_set1_ps(s[g]), vv, acc[g * NV + i]);
        }
    }
    for (int g = 0; g < QG && g < nq; g++) {
        const __m512 iv = _mm512_set1_ps(inv[q0 + g]);
        float *o = O + (size_t)(q0 + g) * o_stride;
        for (int i = 0; i < NV; i++) _mm512_storeu_ps(o + 16 * i, _mm512_mul_ps(acc[g * NV + i], iv));
    }
}

/* A block of nb <= 16 query rows of one head at positions pos_first.. :
 * Q row i at Q + i * q_stride, output row i at O + i * o_stride. scratch:
 * owl_model_attention_scratch floats. */
__attribute__((target("avx512f"))) static void attend_block_avx512(const float *Q, size_t q_stride, int nb,
                                                                    const float *K, const float *V, size_t stride,
                                                                    int pos_first, int win, int hd, float scale,
                                                                    float cap, float *scratch, float *O,
                                                                    size_t o_stride) {
    /* keys k_lo.. (the window of the first query, win > 0) up to the last query */
    const int k_lo = win > 0 && pos_first - win + 1 > 0 ? pos_first - win + 1 : 0;
    K += (size_t)k_lo * stride;
    V += (size_t)k_lo * stride;
    pos_first -= k_lo; /* positions relative to k_lo from here on */
    const int n_keys = pos_first + nb;
    float *S = scratch;                                   /* [n_keys][16] */
    float *qt = scratch + (size_t)n_keys * OWL_ATT_BLOCK; /* [hd][16] */
    float *inv = qt + (size_t)hd * OWL_ATT_BLOCK;         /* [16] */
    for (int d = 0; d < hd; d++)
        for (int i = 0; i < OWL_ATT_BLOCK; i++) qt[d * OWL_ATT_BLOCK + i] = i < nb ? Q[(size_t)i * q_stride + d] * scale : 0.0f;

    /* scores: 16 queries per key, four keys at a time, two chains each */
    const __m512 lane = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j < n_keys; j += 4) {
        const int kn = n_keys - j < 4 ? n_keys - j : 4;
        __m512 a[8];
        for (int u = 0; u < 8; u++) a[u] = _mm512_setzero_ps();
        const float *k0 = K + (size_t)j * stride;
        if (kn == 4) {
            for (int d = 0; d < hd; d += 2) {
                const __m512 q0 = _mm512_loadu_ps(qt + d * OWL_ATT_BLOCK);
                const __m512 q1 = _mm512_loadu_ps(qt + (d + 1) * OWL_ATT_BLOCK);
                for (int u = 0; u < 4; u++) {
                    const float *k = k0 + (size_t)u * stride + d;
                    a[2 * u] = _mm512_fmadd_ps(q0, _mm512_set1_ps(k[0]), a[2 * u]);
                    a[2 * u + 1] = _mm512_fmadd_ps(q1, _mm512_set1_ps(k[1]), a[2 * u + 1]);
                }
            }
        } else {
            for (int d = 0; d < hd; d += 2) {
                const __m512 q0 = _mm512_loadu_ps(qt + d * OWL_ATT_BLOCK);
                const __m512 q1 = _mm512_loadu_ps(qt + (d + 1) * OWL_ATT_BLOCK);
                for (int u = 0; u < kn; u++) {
                    const float *k = k0 + (size_t)u * stride + d;
                    a[2 * u] = _mm512_fmadd_ps(q0, _mm512_set1_ps(k[0]), a[2 * u]);
                    a[2 * u + 1] = _mm512_fmadd_ps(q1, _mm512_set1_ps(k[1]), a[2 * u + 1]);
                }
            }
        }
        for (int u = 0; u < kn; u++) {
            __m512 s = _mm512_add_ps(a[2 * u], a[2 * u + 1]);
            const int jj = j + u;
            if (cap > 0) { /* soft-capping before the masks */
                float t[16];
                _mm512_storeu_ps(t, s);
                for (int i = 0; i < 16; i++) t[i] = cap * tanhf(t[i] / cap);
                s = _mm512_loadu_ps(t);
            }
            if (jj > pos_first) { /* causal: query i sees keys <= pos_first + i */
                const __mmask16 late = _mm512_cmp_ps_mask(lane, _mm512_set1_ps((float)(jj - pos_first)), _CMP_LT_OQ);
                s = _mm512_mask_mov_ps(s, late, _mm512_set1_ps(-INFINITY));
            }
            if (win > 0) { /* window: query i sees keys > pos_first + i - win */
                const __mmask16 old =
                    _mm512_cmp_ps_mask(lane, _mm512_set1_ps((float)(jj - pos_first + win)), _CMP_GE_OQ);
                s = _mm512_mask_mov_ps(s, old, _mm512_set1_ps(-INFINITY));
            }
            _mm512_storeu_ps(S + (size_t)jj * OWL_ATT_BLOCK, s);
            mx = _mm512_max_ps(mx, s);
        }
    }
    /* softmax numerators and sums, per query lane */
    __m512 sum = _mm512_setzero_ps();
    for (j = 0; j < n_keys; j++) {
        const __m512 e = exp_le0(_mm512_sub_ps(_mm512_loadu_ps(S + (size_t)j * OWL_ATT_BLOCK), mx));
        _mm512_storeu_ps(S + (size_t)j * OWL_ATT_BLOCK, e);
        sum = _mm512_add_ps(sum, e);
    }
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    /* outputs */
    const int nv = hd / 16;
    for (int q0 = 0; q0 < nb;) {
        switch (nv) {
        case 2: block_out(S, V, stride, n_keys, inv, q0, nb - q0, O, o_stride, 2, 8); q0 += 8; break;
        case 4: block_out(S, V, stride, n_keys, inv, q0, nb - q0, O, o_stride, 4, 4); q0 += 4; break;
        case 8: block_out(S, V, stride, n_keys, inv, q0, nb - q0, O, o_stride, 8, 2); q0 += 2; break;
        default: block_out(S, V, stride, n_keys, inv, q0, nb - q0, O, o_stride, nv, 1); q0 += 1; break;
        }
    }
}
#endif

void owl_model_attention(const owl_att_job *jobs, int n_jobs, int l) {
    if (n_jobs < 1 || n_jobs > OWL_BATCH_MAX_SEQ) return;
    const owl_model *m = jobs[0].ctx->model;
    const owl_hparams *hp = &m->hp;
    const int hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, n_heads = hp->n_heads;
    const int group = hp->n_heads / hp->n_kv_heads;
    const float scale = hp->attn_scale, cap = hp->attn_softcap;
    const int win = m->layers[l].swa ? hp->n_swa : 0; /* 0: every earlier position */
    int nt = owl_threads();
    bool fast = false;
#ifdef OWL_ATT_AVX512
    fast = owl_cpu_get()->avx512f && !owl_cpu_scalar_forced() && hd % 16 == 0 && hd <= 256;
#endif
    /* tasks of job j: [start[j], start[j + 1]), (query block, head) pairs;
     * blocks of query rows for prompts, single rows otherwise */
    int start[OWL_BATCH_MAX_SEQ + 1];
    double work = 0;
    start[0] = 0;
    for (int j = 0; j < n_jobs; j++) {
        const int bs = (fast && jobs[j].n >= 4) ? OWL_ATT_BLOCK : 1;
        const int n_blocks = (jobs[j].n + bs - 1) / bs;
        start[j + 1] = start[j] + n_blocks * n_heads;
        work += (double)n_blocks * n_heads * (double)bs * (double)(jobs[j].pos0 + jobs[j].n) * (double)hd;
        if (nt > jobs[j].ctx->n_score_threads) nt = jobs[j].ctx->n_score_threads;
    }
    const int total = start[n_jobs];

    /* threads only when there is enough work to pay for waking them: a
     * short generation step runs on the calling thread (every fork/join is
     * costly on a busy machine; measured with 8 sequences decoding in one
     * batch on 2 busy cores, 2e5 made steps 3x slower than one thread) */
    if (work < 1e6) nt = 1;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1 && total > 1)
    for (int i = 0; i < total; i++) {
        int lo_j = 0, hi_j = n_jobs - 1; /* the job whose tasks hold i */
        while (lo_j < hi_j) {
            const int mid = (lo_j + hi_j + 1) / 2;
            if (start[mid] <= i) lo_j = mid;
            else hi_j = mid - 1;
        }
        const owl_att_job *jb = &jobs[lo_j];
        const owl_ctx *c = jb->ctx;
        const int n = jb->n, pos0 = jb->pos0;
        const int bs = (fast && n >= 4) ? OWL_ATT_BLOCK : 1;
        const int ti = i - start[lo_j];
        const int b = ti / n_heads, h = ti % n_heads, g = h / group;
        const int t = b * bs, nb = n - t < bs ? n - t : bs;
        const size_t per_thread = owl_model_attention_scratch(c->n_ctx, hd);
        float *sc = c->scores + (size_t)omp_get_thread_num() * per_thread;
        const float *qv = jb->q + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        float *out = jb->att + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        const float *K = c->k_cache + (size_t)l * (size_t)c->n_ctx * (size_t)kvd;
        const float *V = c->v_cache + (size_t)l * (size_t)c->n_ctx * (size_t)kvd;
        const float *kg = K + (size_t)g * (size_t)hd, *vg = V + (size_t)g * (size_t)hd;
#ifdef OWL_ATT_AVX512
        if (fast && bs > 1) {
            attend_block_avx512(qv, (size_t)qd, nb, kg, vg, (size_t)kvd, pos0 + t, win, hd, scale, cap, sc, out,
                                (size_t)qd);
            continue;
        }
#endif
        /* one query row at position p: keys lo..p */
        const int p = pos0 + t, lo = win > 0 && p - win + 1 > 0 ? p - win + 1 : 0;
        kg += (size_t)lo * (size_t)kvd;
        vg += (size_t)lo * (size_t)kvd;
#ifdef OWL_ATT_AVX512
        if (fast) {
            attend_row_avx512(qv, kg, vg, (size_t)kvd, p + 1 - lo, hd, scale, cap, sc, out);
            continue;
        }
#endif
        (void)nb;
        attend_row_ref(qv, kg, vg, (size_t)kvd, p + 1 - lo, hd, scale, cap, sc, out);
    }
}
