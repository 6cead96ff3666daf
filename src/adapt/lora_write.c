/* Writers: a PEFT adapter directory (adapter_config.json +
 * adapter_model.safetensors, Hugging Face names and Q / K row order, F32)
 * and a llama.cpp GGUF LoRA adapter (general.type = adapter, adapter.type =
 * lora, adapter.lora.alpha, blk.N.<tensor>.weight.lora_a / lora_b). Pairs
 * whose rank differs from the adapter's are written so that the reader's
 * scale comes out the same (PEFT: rank_pattern / alpha_pattern; GGUF, whose
 * scale is alpha / rank of each tensor: lora_b scaled). */
#include "adapt/lora_internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct out_list {
    owl_weight *w;
    size_t n, cap;
    owl_arena arena; /* names, converted data */
} out_list;

static owl_status out_add(out_list *o, const char *name, owl_dtype t, int64_t ne0, int64_t ne1, const void *data) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 64;
        owl_weight *nw = realloc(o->w, nc * sizeof *nw);
        if (!nw) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        o->w = nw;
        o->cap = nc;
    }
    uint64_t nb = 0;
    if (!owl_dtype_bytes(t, (uint64_t)(ne0 * ne1), &nb)) return owl_errorf(OWL_ERR_ARG, "%s: bad size", name);
    char *nm = owl_arena_strndup(&o->arena, name, strlen(name));
    if (!nm) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    o->w[o->n++] = (owl_weight){.name = nm, .dtype = t, .n_dims = 2, .ne = {ne0, ne1, 1, 1}, .data = data, .nbytes = nb};
    return OWL_OK;
}

static void out_free(out_list *o) {
    free(o->w);
    owl_arena_free(&o->arena);
}

/* f32 rows x cols -> type t (F32 kept as is, no copy); times mul unless 1. */
static owl_status conv(out_list *o, const float *src, int64_t n, owl_dtype t, float mul, const void **dst) {
    if (t == OWL_F32 && mul == 1.0f) {
        *dst = src;
        return OWL_OK;
    }
    const float *s = src;
    if (mul != 1.0f) {
        float *m = owl_arena_alloc(&o->arena, sizeof(float) * (size_t)n);
        if (!m) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) m[i] = src[i] * mul;
        s = m;
    }
    if (t == OWL_F32) {
        *dst = s;
        return OWL_OK;
    }
    uint64_t nb;
    if (!owl_dtype_bytes(t, (uint64_t)n, &nb)) return owl_errorf(OWL_ERR_ARG, "%lld values are no whole blocks of %s",
                                                                 (long long)n, owl_dtype_name(t));
    void *d = owl_arena_alloc(&o->arena, nb);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    owl_status st = owl_from_f32(t, s, d, n);
    if (st) return st;
    *dst = d;
    return OWL_OK;
}

/* b of a pair in the target row order (file_perm) as F32 floats. */
static owl_status b_rows(out_list *o, const owl_lora *lo, int p, const owl_lora_pair *pr, bool file_perm,
                         const float **out) {
    const float *b = pr->b.data;
    const owl_hparams *hp = &lo->model->hp;
    if ((p == OWL_PROJ_Q || p == OWL_PROJ_K) && file_perm != lora_model_perm(lo->model)) {
        float *t = owl_arena_alloc(&o->arena, sizeof(float) * (size_t)(pr->b.rows * pr->b.cols));
        if (!t) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        lora_permute_rows(b, t, p == OWL_PROJ_Q ? hp->n_heads : hp->n_kv_heads, hp->head_dim, pr->b.cols, file_perm);
        b = t;
    }
    *out = b;
    return OWL_OK;
}

/* Fused bases: q, k, v (gate, up) pairs that share one a are written as one
 * pair with b's rows stacked. *a NULL when none of them is present. */
static owl_status fused(out_list *o, const owl_lora *lo, int l, const int *ps, int np, const char *what,
                        const owl_lora_pair **a, const float **b, int64_t *rows) {
    const owl_lora_pair *first = &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)ps[0]];
    *a = NULL;
    int present = 0;
    int64_t total = 0;
    for (int i = 0; i < np; i++) {
        const owl_lora_pair *pr = &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)ps[i]];
        if (pr->a.data) present++;
        total += pr->b.rows;
    }
    if (!present) return OWL_OK;
    for (int i = 0; i < np; i++) {
        const owl_lora_pair *pr = &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)ps[i]];
        if (!pr->a.data || pr->a.data != first->a.data || pr->b.cols != first->b.cols)
            return owl_errorf(OWL_ERR_UNSUPPORTED,
                              "layer %d: %s has fused %s; its pieces must share one lora_A to be written", l,
                              lo->model->arch->name, what);
    }
    float *t = owl_arena_alloc(&o->arena, sizeof(float) * (size_t)(total * first->b.cols));
    if (!t) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    int64_t r0 = 0;
    for (int i = 0; i < np; i++) {
        const owl_lora_pair *pr = &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)ps[i]];
        memcpy(t + r0 * first->b.cols, pr->b.data, sizeof(float) * (size_t)(pr->b.rows * pr->b.cols));
        r0 += pr->b.rows;
    }
    *a = first;
    *b = t;
    *rows = total;
    return OWL_OK;
}

static const int QKV[3] = {OWL_PROJ_Q, OWL_PROJ_K, OWL_PROJ_V}, GATE_UP[2] = {OWL_PROJ_GATE, OWL_PROJ_UP};

/* Visits every pair to write: (l, name stems, a, b floats, rows of b). */
typedef owl_status (*pair_fn)(void *ud, out_list *o, int l, int kind, const owl_lora_pair *pr, const float *b,
                              int64_t b_rows);

static owl_status each_pair(const owl_lora *lo, out_list *o, bool file_perm, pair_fn fn, void *ud) {
    const owl_model *m = lo->model;
    owl_status st;
    for (int l = 0; l < m->hp.n_layers; l++) {
        for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
            if (m->arch->fused_qkv && p <= OWL_PROJ_V) {
                if (p != OWL_PROJ_Q) continue;
                const owl_lora_pair *a = NULL;
                const float *b = NULL;
                int64_t rows = 0;
                if ((st = fused(o, lo, l, QKV, 3, "qkv_proj", &a, &b, &rows))) return st;
                if (a && (st = fn(ud, o, l, LORA_KIND_QKV, a, b, rows))) return st;
                continue;
            }
            if (m->arch->fused_gate_up && (p == OWL_PROJ_GATE || p == OWL_PROJ_UP)) {
                if (p != OWL_PROJ_GATE) continue;
                const owl_lora_pair *a = NULL;
                const float *b = NULL;
                int64_t rows = 0;
                if ((st = fused(o, lo, l, GATE_UP, 2, "gate_up_proj", &a, &b, &rows))) return st;
                if (a && (st = fn(ud, o, l, LORA_KIND_GATE_UP, a, b, rows))) return st;
                continue;
            }
            const owl_lora_pair *pr = &lo->w.layer[(size_t)l * OWL_PROJ_LAYER_COUNT + (size_t)p];
            if (!pr->a.data) continue;
            const float *b = NULL;
            if ((st = b_rows(o, lo, p, pr, file_perm, &b)) || (st = fn(ud, o, l, p, pr, b, pr->b.rows))) return st;
        }
    }
    if (lo->w.output.a.data && (st = fn(ud, o, -1, LORA_KIND_OUTPUT, &lo->w.output, lo->w.output.b.data,
                                        lo->w.output.b.rows)))
        return st;
    if (lo->w.embd.a.data &&
        (st = fn(ud, o, -1, LORA_KIND_EMBD, &lo->w.embd, lo->w.embd.b.data, lo->w.embd.b.rows)))
        return st;
    return OWL_OK;
}

/* ---- PEFT ---- */

static const char *peft_module(int kind) {
    switch (kind) {
    case OWL_PROJ_Q: return "self_attn.q_proj";
    case OWL_PROJ_K: return "self_attn.k_proj";
    case OWL_PROJ_V: return "self_attn.v_proj";
    case OWL_PROJ_O: return "self_attn.o_proj";
    case OWL_PROJ_GATE: return "mlp.gate_proj";
    case OWL_PROJ_UP: return "mlp.up_proj";
    case OWL_PROJ_DOWN: return "mlp.down_proj";
    case LORA_KIND_QKV: return "self_attn.qkv_proj";
    default: return "mlp.gate_up_proj";
    }
}

typedef struct peft_ud {
    const owl_lora *lo;
    json_t *targets, *rank_pattern, *alpha_pattern;
} peft_ud;

static owl_status peft_pair(void *ud, out_list *o, int l, int kind, const owl_lora_pair *pr, const float *b,
                            int64_t b_rows) {
    peft_ud *u = ud;
    const owl_lora *lo = u->lo;
    const bool embd = kind == LORA_KIND_EMBD;
    const int r = lora_pair_rank(pr, embd);
    char key[96], na[160], nb[160];
    const char *mod;
    if (kind == LORA_KIND_OUTPUT) {
        snprintf(key, sizeof key, "lm_head");
        mod = "lm_head";
    } else if (embd) {
        snprintf(key, sizeof key, "model.embed_tokens");
        mod = "embed_tokens";
    } else {
        snprintf(key, sizeof key, "model.layers.%d.%s", l, peft_module(kind));
        mod = strchr(peft_module(kind), '.') + 1;
    }
    /* target_modules: each module name once */
    bool seen = false;
    size_t i;
    json_t *e;
    json_array_foreach(u->targets, i, e) if (strcmp(json_string_value(e), mod) == 0) seen = true;
    if (!seen && json_array_append_new(u->targets, json_string(mod))) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (r != lo->rank) {
        const double a = (double)lo->w.scale * (lo->rslora ? sqrt((double)r) : (double)r);
        if (json_object_set_new(u->rank_pattern, key, json_integer(r)) ||
            json_object_set_new(u->alpha_pattern, key, json_real(a)))
            return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    }
    owl_status st;
    if (embd) {
        /* owl: a is n_vocab x r; PEFT's lora_embedding_A is r x n_vocab */
        const int64_t V = pr->a.rows;
        float *t = owl_arena_alloc(&o->arena, sizeof(float) * (size_t)(V * r));
        if (!t) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        const float *a = pr->a.data;
        for (int64_t v = 0; v < V; v++)
            for (int k = 0; k < r; k++) t[(int64_t)k * V + v] = a[v * r + k];
        snprintf(na, sizeof na, "base_model.model.%s.lora_embedding_A", key);
        snprintf(nb, sizeof nb, "base_model.model.%s.lora_embedding_B", key);
        if ((st = out_add(o, na, OWL_F32, V, r, t))) return st;
        return out_add(o, nb, OWL_F32, r, b_rows, b);
    }
    snprintf(na, sizeof na, "base_model.model.%s.lora_A.weight", key);
    snprintf(nb, sizeof nb, "base_model.model.%s.lora_B.weight", key);
    if ((st = out_add(o, na, OWL_F32, pr->a.cols, r, pr->a.data))) return st;
    return out_add(o, nb, OWL_F32, r, b_rows, b);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

owl_status owl_lora_write_peft(const owl_lora *lo, const char *dir) {
    if (!lo || !dir) return owl_errorf(OWL_ERR_ARG, "owl_lora_write_peft: no %s", lo ? "directory" : "adapter");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return owl_errorf(OWL_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
    if (!owl_is_dir(dir)) return owl_errorf(OWL_ERR_IO, "%s: exists and is not a directory", dir);
    out_list o = {0};
    peft_ud u = {.lo = lo, .targets = json_array(), .rank_pattern = json_object(), .alpha_pattern = json_object()};
    json_t *root = json_object();
    char *text = NULL, *cfg = NULL, *stp = NULL;
    owl_status st = OWL_OK;
    if (!u.targets || !u.rank_pattern || !u.alpha_pattern || !root) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = each_pair(lo, &o, false, peft_pair, &u))) {
        st = owl_error_prefix(st, "%s", dir);
        goto done;
    }
    /* sorted target names (json arrays sort through their items) */
    size_t nt = json_array_size(u.targets);
    json_t **items = malloc(sizeof *items * (nt ? nt : 1)), *sorted = json_array();
    if (!items || !sorted) {
        free(items);
        json_decref(sorted);
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) items[i] = json_array_get(u.targets, i);
    qsort(items, nt, sizeof *items, cmp_str);
    for (size_t i = 0; i < nt; i++) json_array_append(sorted, items[i]);
    free(items);
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(root, "base_model_name_or_path", lo->base_name ? json_string(lo->base_name) : json_null());
    json_object_set_new(root, "r", json_integer(lo->rank));
    json_object_set_new(root, "lora_alpha", json_real(lo->alpha));
    json_object_set_new(root, "use_rslora", json_boolean(lo->rslora));
    json_object_set_new(root, "target_modules", sorted);
    json_object_set_new(root, "rank_pattern", u.rank_pattern);
    json_object_set_new(root, "alpha_pattern", u.alpha_pattern);
    u.rank_pattern = u.alpha_pattern = NULL;
    json_object_set_new(root, "fan_in_fan_out", json_false());
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "lora_dropout", json_real(0.0));
    json_object_set_new(root, "modules_to_save", json_null());
    json_object_set_new(root, "inference_mode", json_true());
    json_object_set_new(root, "init_lora_weights", json_true());
    text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    cfg = malloc(strlen(dir) + 32);
    stp = malloc(strlen(dir) + 32);
    if (!text || !cfg || !stp) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    sprintf(cfg, "%s/adapter_config.json", dir);
    sprintf(stp, "%s/adapter_model.safetensors", dir);
    owl_meta meta = {0};
    if ((st = owl_meta_set_str(&meta, "format", "pt", 2)) == OWL_OK)
        st = owl_safetensors_write(stp, o.w, o.n, &meta);
    owl_meta_free(&meta);
    if (!st) st = owl_write_file_atomic(cfg, text, strlen(text));
done:
    free(text);
    free(cfg);
    free(stp);
    json_decref(root);
    json_decref(u.targets);
    json_decref(u.rank_pattern);
    json_decref(u.alpha_pattern);
    out_free(&o);
    return st;
}

/* ---- GGUF ---- */

typedef struct gguf_ud {
    const owl_lora *lo;
    owl_dtype type;
} gguf_ud;

static owl_status gguf_pair(void *ud, out_list *o, int l, int kind, const owl_lora_pair *pr, const float *b,
                            int64_t b_rows) {
    gguf_ud *u = ud;
    const bool embd = kind == LORA_KIND_EMBD;
    const int r = lora_pair_rank(pr, embd);
    char stem[64], na[96], nb[96];
    if (kind == LORA_KIND_OUTPUT) snprintf(stem, sizeof stem, "output");
    else if (embd) snprintf(stem, sizeof stem, "token_embd");
    else if (kind == LORA_KIND_QKV) snprintf(stem, sizeof stem, "blk.%d.attn_qkv", l);
    else if (kind == LORA_KIND_GATE_UP) snprintf(stem, sizeof stem, "blk.%d.ffn_up", l);
    else snprintf(stem, sizeof stem, "blk.%d.%s", l, owl_lora_proj_gguf((owl_proj)kind));
    snprintf(na, sizeof na, "%s.weight.lora_a", stem);
    snprintf(nb, sizeof nb, "%s.weight.lora_b", stem);
    /* llama.cpp: scale = alpha / (rank of the tensor); alpha = w.scale * rank */
    const float mul = r == u->lo->rank ? 1.0f : (float)r / (float)u->lo->rank;
    const void *ad, *bd;
    owl_status st;
    const int64_t an = embd ? pr->a.rows * r : (int64_t)r * pr->a.cols;
    if ((st = conv(o, pr->a.data, an, u->type, 1.0f, &ad)) || (st = conv(o, b, b_rows * r, u->type, mul, &bd)))
        return owl_error_prefix(st, "%s", na);
    /* a: ne [in, r] (token_embd: [r, n_vocab]); b: ne [r, out] */
    if ((st = out_add(o, na, u->type, embd ? r : pr->a.cols, embd ? pr->a.rows : r, ad))) return st;
    return out_add(o, nb, u->type, r, b_rows, bd);
}

owl_status owl_lora_write_gguf(const owl_lora *lo, const char *path, owl_dtype type) {
    if (!lo || !path) return owl_errorf(OWL_ERR_ARG, "owl_lora_write_gguf: no %s", lo ? "path" : "adapter");
    if (type != OWL_F32 && type != OWL_F16 && type != OWL_BF16)
        return owl_errorf(OWL_ERR_ARG, "%s: adapter tensors of type %s: owl writes F32, F16 or BF16", path,
                          owl_dtype_name(type));
    out_list o = {0};
    gguf_ud u = {.lo = lo, .type = type};
    owl_meta meta = {0};
    const char *arch = lo->model->arch->name;
    owl_status st = each_pair(lo, &o, lora_gguf_perm(lo->model), gguf_pair, &u);
    if (!st) st = owl_meta_set_str(&meta, "general.architecture", arch, strlen(arch));
    if (!st) st = owl_meta_set_str(&meta, "general.type", "adapter", 7);
    if (!st) st = owl_meta_set_str(&meta, "adapter.type", "lora", 4);
    if (!st) st = owl_meta_set_f32(&meta, "adapter.lora.alpha", lo->w.scale * (float)lo->rank);
    if (!st) st = owl_gguf_write(path, &meta, o.w, o.n, 0);
    owl_meta_free(&meta);
    out_free(&o);
    return st;
}
