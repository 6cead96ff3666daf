/* The in-memory adapter: F32 pairs bound to one model, made empty for
 * training or filled by the readers (lora_take), checked for shapes, ranks
 * and finite values. */
#include "adapt/lora_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PEFT_NAME[OWL_PROJ_LAYER_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"};
static const char *const GGUF_NAME[OWL_PROJ_LAYER_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                             "ffn_gate", "ffn_up", "ffn_down"};

const char *owl_lora_proj_peft(owl_proj p) { return (unsigned)p < OWL_PROJ_LAYER_COUNT ? PEFT_NAME[p] : "?"; }
const char *owl_lora_proj_gguf(owl_proj p) { return (unsigned)p < OWL_PROJ_LAYER_COUNT ? GGUF_NAME[p] : "?"; }

float lora_scale_of(float alpha, int rank, bool rslora) {
    if (rank < 1) return 0.0f;
    return rslora ? (float)((double)alpha / sqrt((double)rank)) : (float)((double)alpha / (double)rank);
}

bool lora_model_perm(const owl_model *m) { return !m->rope_neox; }
bool lora_gguf_perm(const owl_model *m) { return !m->arch->rope_neox; }

int lora_pair_rank(const owl_lora_pair *p, bool embd) { return (int)(embd ? p->a.cols : p->a.rows); }

void lora_proj_dims(const owl_hparams *hp, int l, owl_proj p, int64_t *in, int64_t *out) {
    if (l < 0) {
        *in = hp->dim;
        *out = hp->n_vocab;
        return;
    }
    switch (p) {
    case OWL_PROJ_Q: *in = hp->dim; *out = hp->q_dim; break;
    case OWL_PROJ_K:
    case OWL_PROJ_V: *in = hp->dim; *out = hp->kv_dim; break;
    case OWL_PROJ_O: *in = hp->q_dim; *out = hp->dim; break;
    case OWL_PROJ_GATE:
    case OWL_PROJ_UP: *in = hp->dim; *out = hp->ffn_dim; break;
    default: *in = hp->ffn_dim; *out = hp->dim; break;
    }
}

void lora_permute_rows(const float *src, float *dst, int n_heads, int head_dim, int64_t cols, bool to_perm) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t s = 0; s < 2; s++)
            for (int64_t i = 0; i < half; i++) {
                const int64_t hf = h * head_dim + s * half + i, gg = h * head_dim + 2 * i + s;
                const int64_t from = to_perm ? hf : gg, to = to_perm ? gg : hf;
                memcpy(dst + to * cols, src + from * cols, sizeof(float) * (size_t)cols);
            }
}

owl_status lora_begin(const owl_model *model, const char *path, owl_lora **out) {
    *out = NULL;
    if (!model) return owl_errorf(OWL_ERR_ARG, "adapter: no base model");
    owl_lora *lo = owl_calloc(1, sizeof *lo);
    if (!lo) return owl_errorf(OWL_ERR_NOMEM, "adapter: out of memory");
    lo->model = model;
    lo->w.layer = owl_arena_alloc(&lo->arena, sizeof(owl_lora_pair) * (size_t)model->hp.n_layers * OWL_PROJ_LAYER_COUNT);
    if (path) lo->path = owl_arena_strndup(&lo->arena, path, strlen(path));
    if (!lo->w.layer || (path && !lo->path)) {
        owl_lora_free(lo);
        return owl_errorf(OWL_ERR_NOMEM, "adapter: out of memory");
    }
    *out = lo;
    return OWL_OK;
}

void owl_lora_free(owl_lora *lo) {
    if (!lo) return;
    owl_arena_free(&lo->arena);
    free(lo);
}

owl_status owl_lora_set_base_name(owl_lora *lo, const char *name) {
    if (!name) {
        lo->base_name = NULL;
        return OWL_OK;
    }
    lo->base_name = owl_arena_strndup(&lo->arena, name, strlen(name));
    return lo->base_name ? OWL_OK : owl_errorf(OWL_ERR_NOMEM, "adapter: out of memory");
}

owl_lora_pair *owl_lora_pair_of(owl_lora *lo, int l, owl_proj p) {
    if (!lo) return NULL;
    if (l == -1) return &lo->w.output;
    if (l == -2) return &lo->w.embd;
    if (l < 0 || l >= lo->model->hp.n_layers || (unsigned)p >= OWL_PROJ_LAYER_COUNT) return NULL;
    return &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)p];
}

float *owl_lora_a(owl_lora *lo, int l, owl_proj p) {
    owl_lora_pair *pr = owl_lora_pair_of(lo, l, p);
    return pr ? (float *)(uintptr_t)pr->a.data : NULL;
}

float *owl_lora_b(owl_lora *lo, int l, owl_proj p) {
    owl_lora_pair *pr = owl_lora_pair_of(lo, l, p);
    return pr ? (float *)(uintptr_t)pr->b.data : NULL;
}

static owl_mat f32_mat(float *data, int64_t rows, int64_t cols) {
    return (owl_mat){.dtype = OWL_F32, .rows = rows, .cols = cols, .row_bytes = sizeof(float) * (size_t)cols,
                     .data = data};
}

static float *alloc_floats(owl_lora *lo, int64_t n) {
    return owl_arena_alloc(&lo->arena, sizeof(float) * (size_t)n);
}

owl_status owl_lora_new(const owl_model *m, unsigned targets, int rank, float alpha, bool rslora, owl_lora **out) {
    *out = NULL;
    if (!m) return owl_errorf(OWL_ERR_ARG, "owl_lora_new: no base model");
    if (rank < 1 || rank > 65536) return owl_errorf(OWL_ERR_RANGE, "owl_lora_new: rank %d (1 to 65536)", rank);
    if (!isfinite(alpha) || alpha == 0.0f)
        return owl_errorf(OWL_ERR_RANGE, "owl_lora_new: lora_alpha %g must be finite and not 0", (double)alpha);
    if (!targets || (targets & ~(OWL_LORA_T_LAYERS | OWL_LORA_T_OUTPUT | OWL_LORA_T_EMBD)))
        return owl_errorf(OWL_ERR_ARG, "owl_lora_new: target bits 0x%x (allowed 0x%x)", targets,
                          OWL_LORA_T_LAYERS | OWL_LORA_T_OUTPUT | OWL_LORA_T_EMBD);
    if ((m->arch->fused_qkv || m->arch->fused_gate_up) && (targets & OWL_LORA_T_LAYERS))
        return owl_errorf(OWL_ERR_UNSUPPORTED,
                          "owl_lora_new: %s has fused projections (qkv_proj, gate_up_proj); new adapters on its "
                          "layers are not supported",
                          m->arch->name);
    owl_lora *lo;
    owl_status st = lora_begin(m, NULL, &lo);
    if (st) return st;
    const owl_hparams *hp = &m->hp;
    lo->rank = rank;
    lo->alpha = alpha;
    lo->rslora = rslora;
    lo->targets = targets;
    lo->w.scale = lora_scale_of(alpha, rank, rslora);
    for (int l = 0; l < hp->n_layers; l++)
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
            if (!(targets & (1u << p))) continue;
            int64_t in, o;
            lora_proj_dims(hp, l, (owl_proj)p, &in, &o);
            owl_lora_pair *pr = owl_lora_pair_of(lo, l, (owl_proj)p);
            float *a = alloc_floats(lo, rank * in), *b = alloc_floats(lo, o * rank);
            if (!a || !b) goto nomem;
            pr->a = f32_mat(a, rank, in);
            pr->b = f32_mat(b, o, rank);
        }
    if (targets & OWL_LORA_T_OUTPUT) {
        float *a = alloc_floats(lo, (int64_t)rank * hp->dim), *b = alloc_floats(lo, (int64_t)hp->n_vocab * rank);
        if (!a || !b) goto nomem;
        lo->w.output.a = f32_mat(a, rank, hp->dim);
        lo->w.output.b = f32_mat(b, hp->n_vocab, rank);
    }
    if (targets & OWL_LORA_T_EMBD) {
        float *a = alloc_floats(lo, (int64_t)hp->n_vocab * rank), *b = alloc_floats(lo, (int64_t)hp->dim * rank);
        if (!a || !b) goto nomem;
        lo->w.embd.a = f32_mat(a, hp->n_vocab, rank);
        lo->w.embd.b = f32_mat(b, hp->dim, rank);
    }
    *out = lo;
    return OWL_OK;
nomem:
    owl_lora_free(lo);
    return owl_errorf(OWL_ERR_NOMEM, "owl_lora_new: out of memory for rank %d pairs", rank);
}

/* ---- pairs from files ---- */

static const char *kind_name(int kind) {
    switch (kind) {
    case LORA_KIND_OUTPUT: return "output";
    case LORA_KIND_EMBD: return "token_embd";
    case LORA_KIND_QKV: return "attn_qkv";
    case LORA_KIND_GATE_UP: return "ffn_up (gate_up)";
    default: return GGUF_NAME[kind];
    }
}

static owl_status finite_scan(const char *file, const char *tensor, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: element %lld is %s", file, tensor, (long long)i,
                              isnan(x[i]) ? "NaN" : "infinite");
    return OWL_OK;
}

/* F32 copy of a whole tensor (2-D, ne0 x ne1 elements). */
static owl_status to_f32(owl_lora *lo, const char *file, const owl_weight *w, float **out) {
    const int64_t n = w->ne[0] * w->ne[1];
    uint64_t need;
    if (!owl_dtype_bytes(w->dtype, (uint64_t)n, &need) || need > w->nbytes)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: %llu bytes for %lld elements of %s", file, w->name,
                          (unsigned long long)w->nbytes, (long long)n, owl_dtype_name(w->dtype));
    float *f = alloc_floats(lo, n);
    if (!f) return owl_errorf(OWL_ERR_NOMEM, "%s: tensor %s: out of memory", file, w->name);
    owl_status st = owl_to_f32(w->dtype, w->data, f, n);
    if (st) return owl_error_prefix(st, "%s: tensor %s", file, w->name);
    if ((st = finite_scan(file, w->name, f, n))) return st;
    *out = f;
    return OWL_OK;
}

typedef struct lora_part {
    int p;
    int64_t row0, rows;
} lora_part;

static owl_status bad_shape(const char *file, const owl_weight *w, int l, int kind, const char *want) {
    char ls[32] = "";
    if (l >= 0) snprintf(ls, sizeof ls, "layer %d ", l);
    return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s (%s%s) has shape [%lld, %lld] (GGUF order), the base model needs %s",
                      file, w->name, ls, kind_name(kind), (long long)w->ne[0], (long long)w->ne[1], want);
}

owl_status lora_take(owl_lora *lo, const char *file, int l, int kind, const owl_weight *a, const owl_weight *b,
                     bool a_transposed, float pair_scale, bool file_perm) {
    const owl_model *m = lo->model;
    const owl_hparams *hp = &m->hp;
    char want[128];
    if (a->n_dims > 2 || b->n_dims > 2 || a->n_dims < 1 || b->n_dims < 1)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensors %s / %s have %d / %d dimensions, LoRA pairs have 2", file,
                          a->name, b->name, a->n_dims, b->n_dims);
    if (l >= hp->n_layers)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s is for layer %d, the base model has %d layers", file, a->name,
                          l, hp->n_layers);
    /* expected in / out */
    int64_t in, out;
    if (kind == LORA_KIND_EMBD) {
        in = hp->n_vocab;
        out = hp->dim;
    } else if (kind == LORA_KIND_OUTPUT) {
        lora_proj_dims(hp, -1, OWL_PROJ_Q, &in, &out);
    } else if (kind == LORA_KIND_QKV) {
        in = hp->dim;
        out = (int64_t)hp->q_dim + 2 * (int64_t)hp->kv_dim;
    } else if (kind == LORA_KIND_GATE_UP) {
        in = hp->dim;
        out = 2 * (int64_t)hp->ffn_dim;
    } else {
        lora_proj_dims(hp, l, (owl_proj)kind, &in, &out);
    }
    const bool fused_model_q = m->arch->fused_qkv, fused_model_ffn = m->arch->fused_gate_up;
    if (kind <= OWL_PROJ_V && fused_model_q)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: %s fuses q, k and v (qkv_proj); an adapter of %s cannot apply",
                          file, a->name, m->arch->name, kind_name(kind));
    if ((kind == OWL_PROJ_GATE || kind == OWL_PROJ_UP) && fused_model_ffn)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: %s fuses gate and up (gate_up_proj); an adapter of %s cannot "
                          "apply", file, a->name, m->arch->name, kind_name(kind));
    if ((kind == LORA_KIND_QKV && !fused_model_q) || (kind == LORA_KIND_GATE_UP && !fused_model_ffn))
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: the base model (%s) has no fused %s", file, a->name,
                          m->arch->name, kind == LORA_KIND_QKV ? "qkv_proj" : "gate_up_proj");
    /* rank and shapes; ne[0] of a 1-D tensor is its length, ne[1] 1 */
    const int64_t a0 = a->ne[0], a1 = a->n_dims > 1 ? a->ne[1] : 1, b0 = b->ne[0], b1 = b->n_dims > 1 ? b->ne[1] : 1;
    /* lora_a is ne [in, r] (PEFT's lora_embedding_A too: r rows of n_vocab,
     * transposed below); GGUF's token_embd lora_a is ne [r, n_vocab] */
    const int64_t r_a = a1, in_a = a0;
    if (kind == LORA_KIND_EMBD && !a_transposed) {
        if (a1 != in) {
            snprintf(want, sizeof want, "[r, %lld]", (long long)in);
            return bad_shape(file, a, l, kind, want);
        }
    } else if (in_a != in) {
        snprintf(want, sizeof want, "[%lld, r]", (long long)in);
        return bad_shape(file, a, l, kind, want);
    }
    const int64_t rank = kind == LORA_KIND_EMBD && !a_transposed ? a0 : r_a;
    if (b1 != out) {
        snprintf(want, sizeof want, "[r, %lld]", (long long)out);
        return bad_shape(file, b, l, kind, want);
    }
    if (rank < 1 || rank > 65536 || b0 != rank)
        return owl_errorf(OWL_ERR_FORMAT, "%s: rank mismatch: %s has rank %lld, %s has rank %lld", file, a->name,
                          (long long)rank, b->name, (long long)b0);
    float *af, *bf;
    owl_status st;
    if ((st = to_f32(lo, file, a, &af)) || (st = to_f32(lo, file, b, &bf))) return st;
    if (a_transposed) { /* PEFT's lora_embedding_A is r x n_vocab: make it n_vocab x r */
        float *t = alloc_floats(lo, rank * in);
        if (!t) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", file);
        for (int64_t r = 0; r < rank; r++)
            for (int64_t v = 0; v < in; v++) t[v * rank + r] = af[r * in + v];
        af = t;
    }
    /* the pair's own scale into b */
    if (lo->w.scale == 0.0f) return owl_errorf(OWL_ERR_FORMAT, "%s: the adapter's scale is 0", file);
    if (pair_scale != lo->w.scale) {
        const float f = pair_scale / lo->w.scale;
        for (int64_t i = 0; i < out * rank; i++) bf[i] *= f;
        for (int64_t i = 0; i < out * rank; i++)
            if (!isfinite(bf[i]))
                return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: element %lld overflows when scaled by %g (its own "
                                  "scale over the adapter's)", file, b->name, (long long)i, (double)f);
    }
    /* Q / K rows into the model's order */
    const bool mperm = lora_model_perm(m);
    if (file_perm != mperm && (kind == OWL_PROJ_Q || kind == OWL_PROJ_K)) {
        float *t = alloc_floats(lo, out * rank);
        if (!t) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", file);
        lora_permute_rows(bf, t, kind == OWL_PROJ_Q ? hp->n_heads : hp->n_kv_heads, hp->head_dim, rank, mperm);
        bf = t;
    }
    /* install (fused rows split; the pieces share a) */
    lora_part parts[3];
    int np = 0;
    if (kind == LORA_KIND_QKV) {
        parts[np++] = (lora_part){OWL_PROJ_Q, 0, hp->q_dim};
        parts[np++] = (lora_part){OWL_PROJ_K, hp->q_dim, hp->kv_dim};
        parts[np++] = (lora_part){OWL_PROJ_V, (int64_t)hp->q_dim + hp->kv_dim, hp->kv_dim};
    } else if (kind == LORA_KIND_GATE_UP) {
        parts[np++] = (lora_part){OWL_PROJ_GATE, 0, hp->ffn_dim};
        parts[np++] = (lora_part){OWL_PROJ_UP, hp->ffn_dim, hp->ffn_dim};
    } else {
        parts[np++] = (lora_part){kind, 0, out};
    }
    for (int i = 0; i < np; i++) {
        owl_lora_pair *pr = kind == LORA_KIND_EMBD     ? &lo->w.embd
                            : kind == LORA_KIND_OUTPUT ? &lo->w.output
                                                       : owl_lora_pair_of(lo, l, (owl_proj)parts[i].p);
        if (pr->a.data)
            return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: the same projection is adapted twice", file, a->name);
        if (kind == LORA_KIND_EMBD) {
            pr->a = f32_mat(af, in, rank);
            pr->b = f32_mat(bf, out, rank);
            lo->targets |= OWL_LORA_T_EMBD;
        } else {
            pr->a = f32_mat(af, rank, in);
            pr->b = f32_mat(bf + parts[i].row0 * rank, parts[i].rows, rank);
            lo->targets |= kind == LORA_KIND_OUTPUT ? OWL_LORA_T_OUTPUT : 1u << parts[i].p;
        }
    }
    return OWL_OK;
}

owl_status lora_finish(owl_lora *lo, const char *file) {
    if (!lo->targets) return owl_errorf(OWL_ERR_FORMAT, "%s: the adapter holds no lora_A / lora_B pair", file);
    return OWL_OK;
}

static owl_status scan_pair(const owl_lora_pair *p, const char *what, int l) {
    if (!p->a.data) return OWL_OK;
    char ls[32] = "";
    if (l >= 0) snprintf(ls, sizeof ls, "layer %d ", l);
    const owl_mat *ms[2] = {&p->a, &p->b};
    for (int k = 0; k < 2; k++) {
        const float *x = ms[k]->data;
        const int64_t n = ms[k]->rows * ms[k]->cols;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(x[i]))
                return owl_errorf(OWL_ERR_FORMAT, "adapter: %s%s lora_%s element %lld is %s", ls, what, k ? "b" : "a", (long long)i, isnan(x[i]) ? "NaN" : "infinite");
    }
    return OWL_OK;
}

owl_status owl_lora_check_finite(const owl_lora *lo) {
    const int nl = lo->model->hp.n_layers;
    for (int l = 0; l < nl; l++)
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
            owl_status st = scan_pair(&lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)p], GGUF_NAME[p], l);
            if (st) return st;
        }
    owl_status st = scan_pair(&lo->w.output, "output", -1);
    return st ? st : scan_pair(&lo->w.embd, "token_embd", -1);
}
