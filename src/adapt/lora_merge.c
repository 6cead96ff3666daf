/* Merging adapters into a model's weights: W' = W + sum_i u_i s_i B_i A_i
 * for every adapted matrix (rows of fused tensors included: each pair is
 * added at the rows its projection occupies), written as a GGUF file with
 * the model's metadata. A tied head that an adapter changes (or whose
 * embeddings it changes) becomes its own output.weight. */
#include "adapt/lora_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct target {
    const owl_mat *mat; /* the model's view of the rows */
    int l, p;           /* layer, projection (l = -1: the head; -2: embeddings) */
} target;

/* M (rows of the tensor from row0, cols) += s * B A (s folded in). */
static void add_ba(float *M, int64_t cols, const owl_lora_pair *pr, float s) {
    const int64_t out = pr->b.rows, r = pr->b.cols;
    const float *A = pr->a.data, *B = pr->b.data;
#pragma omp parallel for
    for (int64_t i = 0; i < out; i++) {
        float *row = M + i * cols;
        for (int64_t k = 0; k < r; k++) {
            const float bk = s * B[i * r + k];
            const float *ak = A + k * cols;
            for (int64_t j = 0; j < cols; j++) row[j] += bk * ak[j];
        }
    }
}

/* Embeddings: E[v][d] += s * sum_k a[v][k] b[d][k]. */
static void add_embd(float *E, int64_t dim, const owl_lora_pair *pr, float s) {
    const int64_t V = pr->a.rows, r = pr->a.cols;
    const float *A = pr->a.data, *B = pr->b.data;
#pragma omp parallel for
    for (int64_t v = 0; v < V; v++)
        for (int64_t d = 0; d < dim; d++) {
            float acc = 0;
            for (int64_t k = 0; k < r; k++) acc += A[v * r + k] * B[d * r + k];
            E[v * dim + d] += s * acc;
        }
}

static const owl_lora_pair *pair(const owl_lora *lo, int l, int p) {
    if (l == -1) return &lo->w.output;
    if (l == -2) return &lo->w.embd;
    return &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)p];
}

static const owl_mat *layer_mat(const owl_layer *L, int p) {
    switch (p) {
    case OWL_PROJ_Q: return &L->wq;
    case OWL_PROJ_K: return &L->wk;
    case OWL_PROJ_V: return &L->wv;
    case OWL_PROJ_O: return &L->wo;
    case OWL_PROJ_GATE: return &L->w_gate;
    case OWL_PROJ_UP: return &L->w_up;
    default: return &L->w_down;
    }
}

/* Merged F32 -> dtype t (malloc'd); *nbytes. */
static owl_status encode(const float *f, int64_t n, owl_dtype t, const char *name, void **out, uint64_t *nbytes) {
    if (!owl_dtype_bytes(t, (uint64_t)n, nbytes))
        return owl_errorf(OWL_ERR_ARG, "%s: %lld values are no whole blocks of %s", name, (long long)n,
                          owl_dtype_name(t));
    void *d = malloc(*nbytes ? *nbytes : 1);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", name);
    owl_status st = owl_from_f32(t, f, d, n);
    if (st) {
        free(d);
        return owl_error_prefix(st, "%s", name);
    }
    *out = d;
    return OWL_OK;
}

#define SC(i) (scales ? scales[i] : 1.0f)

owl_status owl_lora_merge(const owl_model *m, const owl_lora *const *loras, const float *scales, int n, owl_dtype type,
                          const char *out_path) {
    if (!m || !out_path || n < 0 || (n > 0 && !loras)) return owl_errorf(OWL_ERR_ARG, "owl_lora_merge: bad arguments");
    if (!m->weights.format || strcmp(m->weights.format, "gguf") != 0)
        return owl_errorf(OWL_ERR_UNSUPPORTED,
                          "%s: merging writes GGUF and needs a GGUF base (convert it first: owl convert)",
                          m->weights.path ? m->weights.path : "model");
    for (int i = 0; i < n; i++)
        if (!loras[i] || loras[i]->model != m)
            return owl_errorf(OWL_ERR_ARG, "owl_lora_merge: adapter %d was not loaded for this model", i);
    if (type != OWL_DTYPE_COUNT && (!owl_dtype_get((uint32_t)type) || type == OWL_Q8_K || type == OWL_Q8_1))
        return owl_errorf(OWL_ERR_ARG, "owl_lora_merge: cannot write merged tensors as type %d", (int)type);
    const owl_hparams *hp = &m->hp;
    const size_t nt = (size_t)hp->n_layers * OWL_PROJ_LAYER_COUNT + 2;
    target *tg = calloc(nt, sizeof *tg);
    owl_weight *ws = calloc(m->weights.n + 1, sizeof *ws);
    void **owned = calloc(m->weights.n + 1, sizeof *owned);
    float *buf = NULL;
    owl_status st = OWL_OK;
    if (!tg || !ws || !owned) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    for (int l = 0; l < hp->n_layers; l++)
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) tg[k++] = (target){layer_mat(&m->layers[l], p), l, p};
    tg[k++] = (target){&m->output, -1, 0};
    tg[k++] = (target){&m->tok_embd, -2, 0};
    bool head_changed = false, embd_changed = false;
    for (int i = 0; i < n; i++) {
        head_changed |= loras[i]->w.output.a.data != NULL && SC(i) != 0.0f;
        embd_changed |= loras[i]->w.embd.a.data != NULL && SC(i) != 0.0f;
    }
    const bool split_head = m->tied && (head_changed || embd_changed);
    size_t nw = 0;
    for (size_t t = 0; t <= m->weights.n && !st; t++) {
        /* t == weights.n: the head of a tied model that becomes its own */
        if (t == m->weights.n && !split_head) break;
        const owl_weight *w = t < m->weights.n ? &m->weights.w[t] : owl_weights_find(&m->weights, "token_embd.weight");
        ws[nw] = *w;
        if (t == m->weights.n) ws[nw].name = "output.weight";
        const uint8_t *lo_b = w->data, *hi_b = lo_b + w->nbytes;
        bool any = false;
        for (size_t j = 0; j < nt; j++) {
            const uint8_t *d = tg[j].mat->data;
            bool mine = d >= lo_b && d < hi_b;
            if (tg[j].l == -1 && split_head) mine = t == m->weights.n;   /* the head: the new tensor */
            if (tg[j].l == -2 && split_head && t == m->weights.n) mine = false;
            if (!mine) continue;
            for (int i = 0; i < n && !st; i++) {
                const owl_lora_pair *pr = pair(loras[i], tg[j].l, tg[j].p);
                const float s = SC(i) * loras[i]->w.scale;
                if (!pr->a.data || s == 0.0f) continue;
                const int64_t cols = w->ne[0], rows = w->n_dims > 1 ? w->ne[1] : 1, ne = cols * rows;
                if (!any) {
                    buf = malloc(sizeof(float) * (size_t)ne);
                    if (!buf) {
                        st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", w->name);
                        break;
                    }
                    if ((st = owl_to_f32(w->dtype, w->data, buf, ne))) {
                        st = owl_error_prefix(st, "%s", w->name);
                        break;
                    }
                    any = true;
                }
                if (tg[j].l == -2) {
                    add_embd(buf, cols, pr, s);
                } else {
                    const int64_t row0 = (int64_t)((d - lo_b) / (tg[j].mat->row_bytes ? tg[j].mat->row_bytes : 1));
                    add_ba(buf + (tg[j].l == -1 && split_head ? 0 : row0) * cols, cols, pr, s);
                }
            }
        }
        if (!st && any) {
            const owl_dtype ot = type != OWL_DTYPE_COUNT ? type : w->dtype;
            const int64_t ne = w->ne[0] * (w->n_dims > 1 ? w->ne[1] : 1);
            void *enc = NULL;
            uint64_t nb = 0;
            if (!(st = encode(buf, ne, ot, ws[nw].name, &enc, &nb))) {
                owned[nw] = enc;
                ws[nw].data = enc;
                ws[nw].nbytes = nb;
                ws[nw].dtype = ot;
            }
        }
        free(buf);
        buf = NULL;
        nw++;
    }
    if (!st) st = owl_gguf_write(out_path, &m->weights.meta, ws, nw, 0);
done:
    for (size_t i = 0; owned && i <= m->weights.n; i++) free(owned[i]);
    free(owned);
    free(ws);
    free(tg);
    free(buf);
    return st;
}
