/* One decoder block of the training pass, forward (keeping what the
 * backward pass needs) and backward (the gradients of the block's LoRA pairs
 * and of its input). The same block as model/forward.c: optional pre-norms
 * (RMSNorm), Q/K/V projections with optional biases, optional per-head or
 * whole-vector RMSNorm of q and k, RoPE in the model's layout, causal
 * grouped-query attention (optional window and score soft-cap), output
 * projection, optional post-norms, SwiGLU or GeGLU feed-forward.
 *
 * A projection with a pair computes y = x W^T + s (x A^T) B^T; its backward
 * with dy: dB += s dy^T z (z = x A^T, kept), dz = s dy B, dA += dz^T x,
 * dx += dy W + dz A (dy W through the frozen W by owl_matmul_t). */
#include "adapt/train_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void owl_train_norm_fwd(float *y, const float *x, const float *w, float *rs, int n_vec, int len, float eps) {
    const int nt = owl_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)n_vec * (size_t)len >= 32768)
    for (int v = 0; v < n_vec; v++) {
        const float *xv = x + (size_t)v * (size_t)len;
        float *yv = y + (size_t)v * (size_t)len;
        double ss = 0;
        for (int i = 0; i < len; i++) ss += (double)xv[i] * xv[i];
        const float r = (float)(1.0 / sqrt(ss / len + (double)eps));
        rs[v] = r;
        for (int i = 0; i < len; i++) yv[i] = xv[i] * r * (w ? w[i] : 1.0f);
    }
}

void owl_train_norm_bwd(float *dx, const float *x, const float *w, const float *rs, const float *dy, int n_vec,
                        int len, bool acc) {
    const int nt = owl_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)n_vec * (size_t)len >= 32768)
    for (int v = 0; v < n_vec; v++) {
        const float *xv = x + (size_t)v * (size_t)len, *gv = dy + (size_t)v * (size_t)len;
        float *dv = dx + (size_t)v * (size_t)len;
        const float r = rs[v];
        double gx = 0;
        for (int i = 0; i < len; i++) gx += (double)gv[i] * (w ? w[i] : 1.0f) * xv[i];
        const float c = (float)(gx / len) * r * r * r;
        for (int i = 0; i < len; i++) {
            const float d = r * gv[i] * (w ? w[i] : 1.0f) - xv[i] * c;
            dv[i] = acc ? dv[i] + d : d;
        }
    }
}

static void add_bias(float *y, const float *b, int n, int len) {
    if (!b) return;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < len; i++) y[(size_t)t * (size_t)len + i] += b[i];
}

/* dst[p][q] += alpha * sum_t m1[t][p] m2[t][q] (dst P x Q; each row of dst
 * summed by one thread in token order: the same bits for any thread count). */
static void atb(float *dst, const float *m1, int P, const float *m2, int Q, int n, float alpha) {
    const int nt = owl_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)P * (size_t)Q * (size_t)n > 65536)
    for (int p = 0; p < P; p++) {
        float *dr = dst + (size_t)p * (size_t)Q;
        for (int t = 0; t < n; t++) {
            const float c = alpha * m1[(size_t)t * (size_t)P + (size_t)p];
            if (c == 0.0f) continue;
            const float *mr = m2 + (size_t)t * (size_t)Q;
#pragma omp simd
            for (int q = 0; q < Q; q++) dr[q] += c * mr[q];
        }
    }
}

static owl_mat f32_mat(float *data, int rows, int cols) {
    return (owl_mat){.dtype = OWL_F32, .rows = rows, .cols = cols, .row_bytes = sizeof(float) * (size_t)cols, .data = data};
}

static void proj_fwd(owl_train *tr, const owl_mat *W, int l, owl_proj p, const float *x, float *y, int n) {
    owl_matmul(W, x, y, n);
    const owl_tparam *t = &tr->tp[l * OWL_PROJ_LAYER_COUNT + p];
    if (!t->a) return;
    owl_mat A = f32_mat(t->a, tr->rank, t->in), B = f32_mat(t->b, t->out, tr->rank);
    float *z = tr->z[p];
    owl_matmul(&A, x, z, n);
    owl_matmul(&B, z, tr->yt, n);
    const float s = tr->s;
    for (size_t i = 0; i < (size_t)n * (size_t)t->out; i++) y[i] += s * tr->yt[i];
}

/* dx (n x in) += dy W + s dy B A; the pair's gradients. */
static owl_status proj_bwd(owl_train *tr, const owl_mat *W, int l, owl_proj p, const float *x, const float *dy,
                           float *dx, int n) {
    owl_status st = owl_matmul_t(W, dy, dx, n, true);
    if (st) return st;
    const owl_tparam *t = &tr->tp[l * OWL_PROJ_LAYER_COUNT + p];
    if (!t->a) return OWL_OK;
    owl_mat A = f32_mat(t->a, tr->rank, t->in), B = f32_mat(t->b, t->out, tr->rank);
    const float s = tr->s;
    atb(tr->grad + t->gb_off, dy, t->out, tr->z[p], tr->rank, n, s);
    if ((st = owl_matmul_t(&B, dy, tr->dz, n, false))) return st;
    for (size_t i = 0; i < (size_t)n * (size_t)tr->rank; i++) tr->dz[i] *= s;
    atb(tr->grad + t->ga_off, tr->dz, tr->rank, x, t->in, n, 1.0f);
    return owl_matmul_t(&A, tr->dz, dx, n, true);
}

/* RoPE of n tokens' n_vec head vectors (row stride n_vec * hd) with the
 * table cs; sgn = -1 rotates back (the backward pass). */
static void rope_rows(float *x, int n, int n_vec, int hd, int n_rot, const float *cs, bool neox, float sgn) {
    const int half = n_rot / 2;
    for (int t = 0; t < n; t++) {
        const float *c = cs + (size_t)t * (size_t)half * 2;
        for (int v = 0; v < n_vec; v++) {
            float *h = x + ((size_t)t * (size_t)n_vec + (size_t)v) * (size_t)hd;
            for (int i = 0; i < half; i++) {
                const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                const float x0 = h[i0], x1 = h[i1], co = c[2 * i], si = sgn * c[2 * i + 1];
                h[i0] = x0 * co - x1 * si;
                h[i1] = x0 * si + x1 * co;
            }
        }
    }
}

static int win_lo(int i, int win) { return win > 0 && i - win + 1 > 0 ? i - win + 1 : 0; }

/* The attention loops of one head (forward) or one key/value head and its
 * query heads (backward), written once and compiled twice: for the
 * baseline ISA and, picked at run time, for AVX-512 (the vector loops are
 * plain C with simd hints). */
typedef struct att_args {
    owl_train *tr;
    int n, hd, qd, kvd, group, win;
    float scale, cap;
} att_args;

#define OWL_ALWAYS_INLINE __attribute__((always_inline)) static inline

OWL_ALWAYS_INLINE float dotf(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

OWL_ALWAYS_INLINE void fwd_head(const att_args *a, int h) {
    owl_train *tr = a->tr;
    const int n = a->n, hd = a->hd, qd = a->qd, kvd = a->kvd, g = h / a->group;
    const float scale = a->scale, cap = a->cap;
    float *Ph = tr->P + (size_t)h * (size_t)n * (size_t)n;
    float *Sh = tr->Sc ? tr->Sc + (size_t)h * (size_t)n * (size_t)n : NULL;
    for (int i = 0; i < n; i++) {
        const int lo = win_lo(i, a->win);
        const float *qi = tr->q + (size_t)i * (size_t)qd + (size_t)h * (size_t)hd;
        float *row = Ph + (size_t)i * (size_t)n;
        float mx = -INFINITY;
        for (int j = lo; j <= i; j++) {
            float sc = dotf(qi, tr->k + (size_t)j * (size_t)kvd + (size_t)g * (size_t)hd, hd) * scale;
            if (cap > 0) {
                sc = cap * tanhf(sc / cap);
                Sh[(size_t)i * (size_t)n + (size_t)j] = sc;
            }
            row[j] = sc;
            mx = sc > mx ? sc : mx;
        }
        float sum = 0;
        for (int j = lo; j <= i; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = 1.0f / sum;
        float *out = tr->att + (size_t)i * (size_t)qd + (size_t)h * (size_t)hd;
        memset(out, 0, sizeof(float) * (size_t)hd);
        for (int j = lo; j <= i; j++) {
            const float pj = row[j] *= inv;
            const float *vj = tr->v + (size_t)j * (size_t)kvd + (size_t)g * (size_t)hd;
#pragma omp simd
            for (int d = 0; d < hd; d++) out[d] += pj * vj[d];
        }
    }
}

OWL_ALWAYS_INLINE void bwd_group(const att_args *a, int g, float *dP) {
    owl_train *tr = a->tr;
    const int n = a->n, hd = a->hd, qd = a->qd, kvd = a->kvd;
    const float scale = a->scale, cap = a->cap;
    for (int h = g * a->group; h < (g + 1) * a->group; h++) {
        const float *Ph = tr->P + (size_t)h * (size_t)n * (size_t)n;
        const float *Sh = tr->Sc ? tr->Sc + (size_t)h * (size_t)n * (size_t)n : NULL;
        for (int i = 0; i < n; i++) {
            const int lo = win_lo(i, a->win);
            const float *da = tr->datt + (size_t)i * (size_t)qd + (size_t)h * (size_t)hd;
            const float *qi = tr->q + (size_t)i * (size_t)qd + (size_t)h * (size_t)hd;
            float *dqi = tr->dq + (size_t)i * (size_t)qd + (size_t)h * (size_t)hd;
            const float *row = Ph + (size_t)i * (size_t)n;
            float sum = 0;
            for (int j = lo; j <= i; j++) {
                dP[j] = dotf(da, tr->v + (size_t)j * (size_t)kvd + (size_t)g * (size_t)hd, hd);
                sum += row[j] * dP[j];
            }
            for (int j = lo; j <= i; j++) {
                float ds = row[j] * (dP[j] - sum);
                if (Sh) {
                    const float tq = Sh[(size_t)i * (size_t)n + (size_t)j] / cap;
                    ds *= 1.0f - tq * tq;
                }
                ds *= scale;
                const size_t kj = (size_t)j * (size_t)kvd + (size_t)g * (size_t)hd;
                const float *k = tr->k + kj;
                float *dk = tr->dk + kj, *dv = tr->dv + kj;
                const float pj = row[j];
#pragma omp simd
                for (int d = 0; d < hd; d++) {
                    dqi[d] += ds * k[d];
                    dk[d] += ds * qi[d];
                    dv[d] += pj * da[d];
                }
            }
        }
    }
}

static void fwd_head_plain(const att_args *a, int h) { fwd_head(a, h); }
static void bwd_group_plain(const att_args *a, int g, float *dP) { bwd_group(a, g, dP); }
#if defined(__x86_64__) && defined(__GNUC__)
#define OWL_TRAIN_AVX512 1
__attribute__((target("avx512f,avx512vl,avx512bw,fma"))) static void fwd_head_avx512(const att_args *a, int h) {
    fwd_head(a, h);
}
__attribute__((target("avx512f,avx512vl,avx512bw,fma"))) static void bwd_group_avx512(const att_args *a, int g,
                                                                                         float *dP) {
    bwd_group(a, g, dP);
}
#endif

static bool use_avx512(void) {
#ifdef OWL_TRAIN_AVX512
    const owl_cpu *c = owl_cpu_get();
    return c->avx512f && c->avx512vl && c->avx512bw && c->fma && !owl_cpu_scalar_forced();
#else
    return false;
#endif
}

static att_args att_setup(owl_train *tr, int l, int n) {
    const owl_hparams *hp = &tr->m->hp;
    return (att_args){.tr = tr, .n = n, .hd = hp->head_dim, .qd = hp->q_dim, .kvd = hp->kv_dim,
                      .group = hp->n_heads / hp->n_kv_heads, .win = tr->m->layers[l].swa ? hp->n_swa : 0,
                      .scale = hp->attn_scale, .cap = hp->attn_softcap};
}

static void attn_fwd(owl_train *tr, int l, int n) {
    const att_args a = att_setup(tr, l, n);
    const int nh = tr->m->hp.n_heads;
    const bool wide = use_avx512();
    const int nt = (size_t)n * (size_t)n * (size_t)a.hd * (size_t)nh < 100000 ? 1 : owl_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int h = 0; h < nh; h++) {
#ifdef OWL_TRAIN_AVX512
        if (wide) {
            fwd_head_avx512(&a, h);
            continue;
        }
#endif
        (void)wide;
        fwd_head_plain(&a, h);
    }
}

static owl_status attn_bwd(owl_train *tr, int l, int n) {
    const att_args a = att_setup(tr, l, n);
    const owl_hparams *hp = &tr->m->hp;
    const int nkv = hp->n_kv_heads;
    const bool wide = use_avx512();
    const int nt = (size_t)n * (size_t)n * (size_t)a.hd * (size_t)hp->n_heads < 100000 ? 1 : owl_threads();
    memset(tr->dq, 0, sizeof(float) * (size_t)n * (size_t)a.qd);
    memset(tr->dk, 0, sizeof(float) * (size_t)n * (size_t)a.kvd);
    memset(tr->dv, 0, sizeof(float) * (size_t)n * (size_t)a.kvd);
    float *scratch = malloc(sizeof(float) * (size_t)n * (size_t)nkv);
    if (!scratch) return owl_errorf(OWL_ERR_NOMEM, "fine-tuning: attention scratch of %d floats", n * nkv);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int g = 0; g < nkv; g++) {
        float *dP = scratch + (size_t)g * (size_t)n;
#ifdef OWL_TRAIN_AVX512
        if (wide) {
            bwd_group_avx512(&a, g, dP);
            continue;
        }
#endif
        (void)wide;
        bwd_group_plain(&a, g, dP);
    }
    free(scratch);
    return OWL_OK;
}

static void act_fwd(bool geglu, float *a, const float *g, const float *u, int n, int ffn) {
    const int nt = owl_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if ((size_t)n * (size_t)ffn >= 32768)
    for (int t = 0; t < n; t++) {
        const size_t o = (size_t)t * (size_t)ffn;
        if (geglu) owl_geglu(a + o, g + o, u + o, ffn);
        else owl_swiglu(a + o, g + o, u + o, ffn);
    }
}

/* da -> dg, du */
static void act_bwd(bool geglu, const float *da, const float *g, const float *u, float *dg, float *du, size_t count) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    for (size_t i = 0; i < count; i++) {
        const float x = g[i];
        float f, df;
        if (geglu) {
            const float th = tanhf(k * (x + c * x * x * x));
            f = 0.5f * x * (1.0f + th);
            df = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * c * x * x);
        } else {
            const float sg = 1.0f / (1.0f + expf(-x));
            f = x * sg;
            df = sg * (1.0f + x * (1.0f - sg));
        }
        dg[i] = da[i] * u[i] * df;
        du[i] = da[i] * f;
    }
}

owl_status owl_train_layer_fwd(owl_train *tr, int l, const float *xin, float *xout, int n) {
    const owl_model *m = tr->m;
    const owl_hparams *hp = &m->hp;
    const owl_layer *L = &m->layers[l];
    const int dim = hp->dim, hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, ffn = hp->ffn_dim;
    const size_t nd = (size_t)n * (size_t)dim;
    if (L->attn_norm) owl_train_norm_fwd(tr->h1, xin, L->attn_norm, tr->rs1, n, dim, hp->eps);
    else memcpy(tr->h1, xin, sizeof(float) * nd);
    proj_fwd(tr, &L->wq, l, OWL_PROJ_Q, tr->h1, tr->qp, n);
    proj_fwd(tr, &L->wk, l, OWL_PROJ_K, tr->h1, tr->kp, n);
    proj_fwd(tr, &L->wv, l, OWL_PROJ_V, tr->h1, tr->v, n);
    add_bias(tr->qp, L->bq, n, qd);
    add_bias(tr->kp, L->bk, n, kvd);
    add_bias(tr->v, L->bv, n, kvd);
    const owl_qk_norm_kind qkn = m->arch->qk_norm;
    if (qkn == OWL_QK_NORM_HEAD) {
        owl_train_norm_fwd(tr->q, tr->qp, L->q_norm, tr->rsq, n * hp->n_heads, hd, hp->eps);
        owl_train_norm_fwd(tr->k, tr->kp, L->k_norm, tr->rsk, n * hp->n_kv_heads, hd, hp->eps);
    } else if (qkn == OWL_QK_NORM_FULL) {
        owl_train_norm_fwd(tr->q, tr->qp, L->q_norm, tr->rsq, n, qd, hp->eps);
        owl_train_norm_fwd(tr->k, tr->kp, L->k_norm, tr->rsk, n, kvd, hp->eps);
    } else {
        memcpy(tr->q, tr->qp, sizeof(float) * (size_t)n * (size_t)qd);
        memcpy(tr->k, tr->kp, sizeof(float) * (size_t)n * (size_t)kvd);
    }
    const float *cs = L->swa && tr->cs_swa ? tr->cs_swa : tr->cs;
    rope_rows(tr->q, n, hp->n_heads, hd, hp->n_rot, cs, m->rope_neox, 1.0f);
    rope_rows(tr->k, n, hp->n_kv_heads, hd, hp->n_rot, cs, m->rope_neox, 1.0f);
    attn_fwd(tr, l, n);
    proj_fwd(tr, &L->wo, l, OWL_PROJ_O, tr->att, tr->o, n);
    const float *o = tr->o;
    if (L->post_attn_norm) {
        owl_train_norm_fwd(tr->tmp, tr->o, L->post_attn_norm, tr->rso, n, dim, hp->eps);
        o = tr->tmp;
    }
    for (size_t i = 0; i < nd; i++) tr->x2[i] = xin[i] + o[i];
    if (L->ffn_norm) owl_train_norm_fwd(tr->h2, tr->x2, L->ffn_norm, tr->rs2, n, dim, hp->eps);
    else memcpy(tr->h2, tr->x2, sizeof(float) * nd);
    proj_fwd(tr, &L->w_gate, l, OWL_PROJ_GATE, tr->h2, tr->g, n);
    proj_fwd(tr, &L->w_up, l, OWL_PROJ_UP, tr->h2, tr->u, n);
    act_fwd(m->arch->act == OWL_ACT_GEGLU, tr->a, tr->g, tr->u, n, ffn);
    proj_fwd(tr, &L->w_down, l, OWL_PROJ_DOWN, tr->a, tr->d, n);
    const float *d = tr->d;
    if (L->post_ffw_norm) {
        owl_train_norm_fwd(tr->tmp, tr->d, L->post_ffw_norm, tr->rsd, n, dim, hp->eps);
        d = tr->tmp;
    }
    for (size_t i = 0; i < nd; i++) xout[i] = tr->x2[i] + d[i];
    return OWL_OK;
}

owl_status owl_train_layer_bwd(owl_train *tr, int l, const float *xin, int n) {
    const owl_model *m = tr->m;
    const owl_hparams *hp = &m->hp;
    const owl_layer *L = &m->layers[l];
    const int dim = hp->dim, hd = hp->head_dim, qd = hp->q_dim, kvd = hp->kv_dim, ffn = hp->ffn_dim;
    const size_t nd = (size_t)n * (size_t)dim, nf = (size_t)n * (size_t)ffn;
    owl_status st;
    /* feed-forward: xout = x2 + post(d) */
    const float *dd = tr->dx;
    if (L->post_ffw_norm) {
        owl_train_norm_bwd(tr->tmp2, tr->d, L->post_ffw_norm, tr->rsd, tr->dx, n, dim, false);
        dd = tr->tmp2;
    }
    float *da = tr->tmp;
    memset(da, 0, sizeof(float) * nf);
    if ((st = proj_bwd(tr, &L->w_down, l, OWL_PROJ_DOWN, tr->a, dd, da, n))) return st;
    act_bwd(m->arch->act == OWL_ACT_GEGLU, da, tr->g, tr->u, tr->dg, tr->du, nf);
    memset(tr->dh, 0, sizeof(float) * nd);
    if ((st = proj_bwd(tr, &L->w_gate, l, OWL_PROJ_GATE, tr->h2, tr->dg, tr->dh, n)) ||
        (st = proj_bwd(tr, &L->w_up, l, OWL_PROJ_UP, tr->h2, tr->du, tr->dh, n)))
        return st;
    if (L->ffn_norm) owl_train_norm_bwd(tr->dx, tr->x2, L->ffn_norm, tr->rs2, tr->dh, n, dim, true);
    else
        for (size_t i = 0; i < nd; i++) tr->dx[i] += tr->dh[i];
    /* attention: x2 = xin + post(o) */
    const float *dout = tr->dx;
    if (L->post_attn_norm) {
        owl_train_norm_bwd(tr->tmp2, tr->o, L->post_attn_norm, tr->rso, tr->dx, n, dim, false);
        dout = tr->tmp2;
    }
    memset(tr->datt, 0, sizeof(float) * (size_t)n * (size_t)qd);
    if ((st = proj_bwd(tr, &L->wo, l, OWL_PROJ_O, tr->att, dout, tr->datt, n))) return st;
    if ((st = attn_bwd(tr, l, n))) return st;
    const float *cs = L->swa && tr->cs_swa ? tr->cs_swa : tr->cs;
    rope_rows(tr->dq, n, hp->n_heads, hd, hp->n_rot, cs, m->rope_neox, -1.0f);
    rope_rows(tr->dk, n, hp->n_kv_heads, hd, hp->n_rot, cs, m->rope_neox, -1.0f);
    const float *dqp = tr->dq, *dkp = tr->dk;
    const owl_qk_norm_kind qkn = m->arch->qk_norm;
    if (qkn != OWL_QK_NORM_NONE) {
        const bool head = qkn == OWL_QK_NORM_HEAD;
        owl_train_norm_bwd(tr->tmp, tr->qp, L->q_norm, tr->rsq, tr->dq, head ? n * hp->n_heads : n, head ? hd : qd,
                           false);
        owl_train_norm_bwd(tr->tmp2, tr->kp, L->k_norm, tr->rsk, tr->dk, head ? n * hp->n_kv_heads : n,
                           head ? hd : kvd, false);
        dqp = tr->tmp;
        dkp = tr->tmp2;
    }
    memset(tr->dh, 0, sizeof(float) * nd);
    if ((st = proj_bwd(tr, &L->wq, l, OWL_PROJ_Q, tr->h1, dqp, tr->dh, n)) ||
        (st = proj_bwd(tr, &L->wk, l, OWL_PROJ_K, tr->h1, dkp, tr->dh, n)) ||
        (st = proj_bwd(tr, &L->wv, l, OWL_PROJ_V, tr->h1, tr->dv, tr->dh, n)))
        return st;
    if (L->attn_norm) owl_train_norm_bwd(tr->dx, xin, L->attn_norm, tr->rs1, tr->dh, n, dim, true);
    else
        for (size_t i = 0; i < nd; i++) tr->dx[i] += tr->dh[i];
    return OWL_OK;
}
