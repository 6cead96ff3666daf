/* Causal grouped-query attention against the KV cache. One query row at a
 * time: the scores of one (token, head) pair over keys 0..pos live in a
 * per-thread buffer of n_ctx floats, so no n x n matrix is ever built.
 * Parallel over (token, head) pairs. An AVX-512 path (head_dim a multiple
 * of 16, up to 256) keeps the query and the output row in registers; the
 * portable path (owl_dot_f32 and plain loops) is what it is tested against
 * (OWL_CPU=scalar, or a head_dim that is not a multiple of 16). */
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OWL_ATT_AVX512 1
#endif

/* Attention of one query row q (hd floats) over keys/values 0..n_keys-1 at
 * K, V (row stride `stride` floats); sc: n_keys floats of scratch. */
static void attend_row_ref(const float *q, const float *K, const float *V, size_t stride, int n_keys, int hd,
                           float scale, float *sc, float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        float s = owl_dot_f32(OWL_F32, K + (size_t)j * stride, q, hd) * scale;
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
/* NV = hd / 16 vectors per row, a compile-time constant in each caller so
 * that the query and the output stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
attend_row_nv(const float *q, const float *K, const float *V, size_t stride, int n_keys, float scale, float *sc,
              float *out, const int NV) {
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
        mx = fmaxf(mx, fmaxf(s0, s1));
    }
    for (; j < n_keys; j++) {
        const float *k0 = K + (size_t)j * stride;
        __m512 a0 = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k0));
        for (int i = 1; i < NV; i++) a0 = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k0 + 16 * i), a0);
        float s0 = _mm512_reduce_add_ps(a0) * scale;
        sc[j] = s0;
        mx = fmaxf(mx, s0);
    }
    float sum = 0.0f;
    for (j = 0; j < n_keys; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < NV; i++) ov[i] = _mm512_setzero_ps();
    for (j = 0; j < n_keys; j++) {
        const __m512 a = _mm512_set1_ps(sc[j] * inv);
        const float *v = V + (size_t)j * stride;
        for (int i = 0; i < NV; i++) ov[i] = _mm512_fmadd_ps(a, _mm512_loadu_ps(v + 16 * i), ov[i]);
    }
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(out + 16 * i, ov[i]);
}

__attribute__((target("avx512f"))) static void attend_row_avx512(const float *q, const float *K, const float *V,
                                                                  size_t stride, int n_keys, int hd, float scale,
                                                                  float *sc, float *out) {
    switch (hd / 16) {
    case 2: attend_row_nv(q, K, V, stride, n_keys, scale, sc, out, 2); break;
    case 4: attend_row_nv(q, K, V, stride, n_keys, scale, sc, out, 4); break;
    case 8: attend_row_nv(q, K, V, stride, n_keys, scale, sc, out, 8); break;
    default: attend_row_nv(q, K, V, stride, n_keys, scale, sc, out, hd / 16); break;
    }
}
#endif

void owl_model_attention(owl_ctx *c, int l, int pos0, int n) {
    const owl_hparams *hp = &c->model->hp;
    const int hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, n_heads = hp->n_heads;
    const int group = hp->n_heads / hp->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *K = c->k_cache + (size_t)l * (size_t)c->n_ctx * (size_t)kvd;
    const float *V = c->v_cache + (size_t)l * (size_t)c->n_ctx * (size_t)kvd;
    int nt = owl_threads();
    if (nt > c->n_score_threads) nt = c->n_score_threads;
    const int total = n * n_heads;
    bool fast = false;
#ifdef OWL_ATT_AVX512
    fast = owl_cpu_get()->avx512f && !owl_cpu_scalar_forced() && hd % 16 == 0 && hd <= 256;
#endif

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (total > 1)
    for (int i = 0; i < total; i++) {
        const int t = i / n_heads, h = i % n_heads, g = h / group;
        float *sc = c->scores + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const float *qv = c->q + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        float *out = c->att + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        const float *kg = K + (size_t)g * (size_t)hd, *vg = V + (size_t)g * (size_t)hd;
#ifdef OWL_ATT_AVX512
        if (fast) {
            attend_row_avx512(qv, kg, vg, (size_t)kvd, pos0 + t + 1, hd, scale, sc, out);
            continue;
        }
#endif
        (void)fast;
        attend_row_ref(qv, kg, vg, (size_t)kvd, pos0 + t + 1, hd, scale, sc, out);
    }
}
