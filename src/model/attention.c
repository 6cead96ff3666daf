/* Causal grouped-query attention against the KV cache. One query row at a
 * time: the scores of one (token, head) pair over keys 0..pos live in a
 * per-thread buffer of n_ctx floats, so no n x n matrix is ever built.
 * Parallel over (token, head) pairs. */
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <string.h>

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

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (total > 1)
    for (int i = 0; i < total; i++) {
        const int t = i / n_heads, h = i % n_heads, g = h / group, p = pos0 + t;
        float *sc = c->scores + (size_t)omp_get_thread_num() * (size_t)c->n_ctx;
        const float *qv = c->q + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        const float *kg = K + (size_t)g * (size_t)hd;
        const float *vg = V + (size_t)g * (size_t)hd;
        float mx = -INFINITY;
        for (int j = 0; j <= p; j++) {
            float s = owl_dot_f32(OWL_F32, kg + (size_t)j * (size_t)kvd, qv, hd) * scale;
            sc[j] = s;
            if (s > mx) mx = s;
        }
        float sum = 0.0f;
        for (int j = 0; j <= p; j++) {
            float e = expf(sc[j] - mx);
            sc[j] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        float *out = c->att + (size_t)t * (size_t)qd + (size_t)h * (size_t)hd;
        memset(out, 0, sizeof(float) * (size_t)hd);
        for (int j = 0; j <= p; j++) {
            const float a = sc[j] * inv;
            const float *vr = vg + (size_t)j * (size_t)kvd;
#pragma omp simd
            for (int d = 0; d < hd; d++) out[d] += a * vr[d];
        }
    }
}
