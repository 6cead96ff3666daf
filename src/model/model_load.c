/* Loading a model: read the weights table, bind it to the roles of the
 * architecture's decoder (every tensor checked for presence, dtype and exact
 * shape), load the tokenizer, and the public owl_model_* calls. */
#include "model/model.h"
#include "tensor/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OWL_MAX_HPARAM (1 << 24) /* sanity bound for dims and counts */

/* ---- hyper-parameters ---- */

static owl_status hp_int(const owl_model *m, const char *suffix, bool required, int64_t dflt, int64_t lo,
                         int64_t hi, int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    const owl_meta_value *v = owl_meta_find(&m->weights.meta, key);
    if (!v) {
        if (required)
            return owl_errorf(OWL_ERR_FORMAT, "%s: missing metadata key %s", m->weights.path, key);
        *out = (int)dflt;
        return OWL_OK;
    }
    int64_t x;
    if (!owl_meta_get_i64(&m->weights.meta, key, &x))
        return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key %s is not an integer (it is %s)", m->weights.path, key,
                          owl_meta_type_name(v->type));
    if (x < lo || x > hi)
        return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key %s = %lld is outside [%lld, %lld]", m->weights.path,
                          key, (long long)x, (long long)lo, (long long)hi);
    *out = (int)x;
    return OWL_OK;
}

static owl_status hp_float(const owl_model *m, const char *suffix, double dflt, double lo, double hi, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch->name, suffix);
    const owl_meta_value *v = owl_meta_find(&m->weights.meta, key);
    if (!v) {
        *out = (float)dflt;
        return OWL_OK;
    }
    double x;
    if (!owl_meta_get_f64(&m->weights.meta, key, &x))
        return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key %s is not a number (it is %s)", m->weights.path, key,
                          owl_meta_type_name(v->type));
    if (!(x >= lo && x <= hi))
        return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key %s = %g is outside [%g, %g]", m->weights.path, key, x,
                          lo, hi);
    *out = (float)x;
    return OWL_OK;
}

static owl_status read_hparams(owl_model *m) {
    owl_hparams *hp = &m->hp;
    owl_status st;
    if ((st = hp_int(m, "embedding_length", true, 0, 1, OWL_MAX_HPARAM, &hp->dim)) ||
        (st = hp_int(m, "block_count", true, 0, 1, 4096, &hp->n_layers)) ||
        (st = hp_int(m, "feed_forward_length", true, 0, 1, OWL_MAX_HPARAM, &hp->ffn_dim)) ||
        (st = hp_int(m, "attention.head_count", true, 0, 1, 65536, &hp->n_heads)) ||
        (st = hp_int(m, "attention.head_count_kv", false, hp->n_heads, 1, hp->n_heads, &hp->n_kv_heads)) ||
        (st = hp_int(m, "context_length", false, 2048, 1, 1 << 30, &hp->n_ctx_train)))
        return st;
    int dflt_hd = hp->dim / hp->n_heads;
    if ((st = hp_int(m, "attention.key_length", false, dflt_hd, 2, 65536, &hp->head_dim))) return st;
    char klkey[160];
    snprintf(klkey, sizeof klkey, "%s.attention.key_length", m->arch->name);
    if (!owl_meta_find(&m->weights.meta, klkey) && hp->dim % hp->n_heads != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s.embedding_length %d is not a multiple of the head count %d",
                          m->weights.path, m->arch->name, hp->dim, hp->n_heads);
    if (hp->head_dim % 2 != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: head dimension %d is odd", m->weights.path, hp->head_dim);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
                          m->weights.path, m->arch->name, hp->n_heads, hp->n_kv_heads);
    if ((st = hp_int(m, "rope.dimension_count", false, hp->head_dim, 2, hp->head_dim, &hp->n_rot))) return st;
    if (hp->n_rot % 2 != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s.rope.dimension_count %d is odd", m->weights.path, m->arch->name,
                          hp->n_rot);
    if ((st = hp_float(m, "attention.layer_norm_rms_epsilon", 1e-5, 0.0, 1.0, &hp->eps)) ||
        (st = hp_float(m, "rope.freq_base", 10000.0, 1.0, 1e12, &hp->rope_base)))
        return st;
    hp->rope_scale = 1.0f;
    char key[160];
    owl_str stype;
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch->name);
    if (owl_meta_get_str(&m->weights.meta, key, &stype) && !owl_str_eq(stype, "none")) {
        float factor;
        if ((st = hp_float(m, "rope.scaling.factor", 1.0, 1e-6, 1e6, &factor))) return st;
        if (owl_str_eq(stype, "linear"))
            hp->rope_scale = 1.0f / factor;
        else
            owl_log(OWL_LOG_WARN, "%s: RoPE scaling \"%.*s\" is not applied (positions up to %d are unaffected)",
                    m->weights.path, (int)(stype.len > 40 ? 40 : stype.len), stype.ptr, hp->n_ctx_train);
    }
    uint64_t qd, kvd;
    if (!owl_mul_ok((uint64_t)hp->n_heads, (uint64_t)hp->head_dim, &qd) || qd > OWL_MAX_HPARAM ||
        !owl_mul_ok((uint64_t)hp->n_kv_heads, (uint64_t)hp->head_dim, &kvd))
        return owl_errorf(OWL_ERR_FORMAT, "%s: %d heads of %d dimensions is too large", m->weights.path,
                          hp->n_heads, hp->head_dim);
    hp->q_dim = (int)qd;
    hp->kv_dim = (int)kvd;

    /* family options: sliding window, soft-capping, query scale */
    const owl_arch *a = m->arch;
    if ((st = hp_int(m, "attention.sliding_window", a->swa_required, 0, 0, 1 << 30, &hp->n_swa)) ||
        (st = hp_int(m, "attention.sliding_window_pattern", false, a->swa_pattern, 0, 1 << 20, &hp->swa_pattern)) ||
        (st = hp_float(m, "rope.freq_base_swa", a->rope_base_swa, 0.0, 1e12, &hp->rope_base_swa)) ||
        (st = hp_float(m, "attn_logit_softcapping", a->attn_softcap, 0.0, 1e9, &hp->attn_softcap)) ||
        (st = hp_float(m, "final_logit_softcapping", a->final_softcap, 0.0, 1e9, &hp->final_softcap)))
        return st;
    if (a->swa_required && hp->n_swa < 1)
        return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key %s.attention.sliding_window = %d must be at least 1",
                          m->weights.path, a->name, hp->n_swa);
    double q_scale_dim = (a->big_layers && hp->n_layers == a->big_layers) ? (double)hp->dim / hp->n_heads
                                                                          : (double)hp->head_dim;
    if ((st = hp_float(m, "attention.scale", 1.0 / sqrt(q_scale_dim), 1e-6, 1e6, &hp->attn_scale)) ||
        (st = hp_float(m, "rope.scaling.attn_factor", 1.0, 1e-6, 1e6, &hp->rope_attn_factor)) ||
        (st = hp_int(m, "rope.scaling.original_context_length", false, hp->n_ctx_train, 1, 1 << 30,
                     &hp->n_ctx_orig)))
        return st;
    return OWL_OK;
}

/* ---- tensors ---- */

static bool dtype_ok_for_mat(owl_dtype t) {
    if (t == OWL_F32 || t == OWL_F16 || t == OWL_BF16) return true;
    const owl_dtype_info *d = owl_dtype_get((uint32_t)t);
    return d && d->quantized && owl_quant_supported(t);
}

static void shape_str(const owl_weight *w, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < w->n_dims && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)w->ne[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Finds a tensor and checks dtype and shape [ne0] (ne1 = 0) or [ne0, ne1]. */
static owl_status find_tensor(const owl_model *m, const char *name, int64_t ne0, int64_t ne1, bool optional,
                              const owl_weight **out) {
    *out = NULL;
    const owl_weight *w = owl_weights_find(&m->weights, name);
    if (!w) {
        if (optional) return OWL_OK;
        return owl_errorf(OWL_ERR_FORMAT, "%s: missing tensor %s (architecture %s)", m->weights.path, name,
                          m->arch->name);
    }
    int want_dims = ne1 ? 2 : 1;
    bool ok = w->n_dims >= want_dims && w->ne[0] == ne0 && (!ne1 || w->ne[1] == ne1);
    for (int i = want_dims; ok && i < w->n_dims; i++) ok = w->ne[i] == 1;
    if (!ok) {
        char got[128];
        shape_str(w, got, sizeof got);
        if (ne1)
            return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s has shape %s, expected [%lld, %lld]", m->weights.path,
                              name, got, (long long)ne0, (long long)ne1);
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s has shape %s, expected [%lld]", m->weights.path, name, got,
                          (long long)ne0);
    }
    if (!dtype_ok_for_mat(w->dtype))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which owl cannot compute with",
                          m->weights.path, name, owl_dtype_name(w->dtype));
    uint64_t row_bytes, need;
    if (!owl_dtype_bytes(w->dtype, (uint64_t)ne0, &row_bytes))
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s: row of %lld is not a whole number of %s blocks",
                          m->weights.path, name, (long long)ne0, owl_dtype_name(w->dtype));
    if (!owl_mul_ok(row_bytes, (uint64_t)(ne1 ? ne1 : 1), &need) || w->nbytes < need || !w->data)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s holds %llu bytes, expected %llu", m->weights.path, name,
                          (unsigned long long)w->nbytes, (unsigned long long)need);
    *out = w;
    return OWL_OK;
}

static owl_status bind_mat(const owl_model *m, const char *name, int64_t cols, int64_t rows, owl_mat *out) {
    const owl_weight *w;
    owl_status st = find_tensor(m, name, cols, rows, false, &w);
    if (st) return st;
    uint64_t rb;
    owl_dtype_bytes(w->dtype, (uint64_t)cols, &rb);
    *out = (owl_mat){.dtype = w->dtype, .rows = rows, .cols = cols, .row_bytes = (size_t)rb, .data = w->data};
    return OWL_OK;
}

/* A small vector converted to F32 into the model's arena (NULL: absent and optional). */
static owl_status bind_vec(owl_model *m, const char *name, int64_t n, bool optional, const float **out) {
    const owl_weight *w;
    *out = NULL;
    owl_status st = find_tensor(m, name, n, 0, optional, &w);
    if (st || !w) return st;
    float *v = owl_arena_alloc(&m->arena, sizeof(float) * (size_t)n);
    if (!v) return OWL_ERR_NOMEM;
    if ((st = owl_to_f32(w->dtype, w->data, v, n)))
        return owl_error_prefix(st, "%s: tensor %s", m->weights.path, name);
    *out = v;
    return OWL_OK;
}

static owl_status bind_layer(owl_model *m, int l) {
    const owl_hparams *hp = &m->hp;
    owl_layer *L = &m->layers[l];
    char n[96];
    owl_status st;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    const owl_arch *a = m->arch;
    if (!a->no_pre_norms && ((st = bind_vec(m, NAME("attn_norm.weight"), hp->dim, false, &L->attn_norm)) ||
                             (st = bind_vec(m, NAME("ffn_norm.weight"), hp->dim, false, &L->ffn_norm))))
        return st;
    if (a->post_norms &&
        ((st = bind_vec(m, NAME("post_attention_norm.weight"), hp->dim, false, &L->post_attn_norm)) ||
         (st = bind_vec(m, NAME("post_ffw_norm.weight"), hp->dim, false, &L->post_ffw_norm))))
        return st;
    if (a->fused_qkv) { /* Q, K and V as row ranges of one matrix */
        owl_mat qkv;
        if ((st = bind_mat(m, NAME("attn_qkv.weight"), hp->dim, (int64_t)hp->q_dim + 2 * (int64_t)hp->kv_dim, &qkv)))
            return st;
        L->wq = L->wk = L->wv = qkv;
        L->wq.rows = hp->q_dim;
        L->wk.rows = L->wv.rows = hp->kv_dim;
        L->wk.data = (const uint8_t *)qkv.data + (size_t)hp->q_dim * qkv.row_bytes;
        L->wv.data = (const uint8_t *)L->wk.data + (size_t)hp->kv_dim * qkv.row_bytes;
    } else if ((st = bind_mat(m, NAME("attn_q.weight"), hp->dim, hp->q_dim, &L->wq)) ||
               (st = bind_mat(m, NAME("attn_k.weight"), hp->dim, hp->kv_dim, &L->wk)) ||
               (st = bind_mat(m, NAME("attn_v.weight"), hp->dim, hp->kv_dim, &L->wv)))
        return st;
    if (a->fused_gate_up) { /* gate rows, then up rows */
        owl_mat gu;
        if ((st = bind_mat(m, NAME("ffn_up.weight"), hp->dim, 2 * (int64_t)hp->ffn_dim, &gu))) return st;
        L->w_gate = L->w_up = gu;
        L->w_gate.rows = L->w_up.rows = hp->ffn_dim;
        L->w_up.data = (const uint8_t *)gu.data + (size_t)hp->ffn_dim * gu.row_bytes;
    } else if ((st = bind_mat(m, NAME("ffn_gate.weight"), hp->dim, hp->ffn_dim, &L->w_gate)) ||
               (st = bind_mat(m, NAME("ffn_up.weight"), hp->dim, hp->ffn_dim, &L->w_up)))
        return st;
    if ((st = bind_mat(m, NAME("attn_output.weight"), hp->q_dim, hp->dim, &L->wo)) ||
        (st = bind_mat(m, NAME("ffn_down.weight"), hp->ffn_dim, hp->dim, &L->w_down)))
        return st;
    if (a->qk_norm != OWL_QK_NORM_NONE) {
        bool head = a->qk_norm == OWL_QK_NORM_HEAD;
        if ((st = bind_vec(m, NAME("attn_q_norm.weight"), head ? hp->head_dim : hp->q_dim, false, &L->q_norm)) ||
            (st = bind_vec(m, NAME("attn_k_norm.weight"), head ? hp->head_dim : hp->kv_dim, false, &L->k_norm)))
            return st;
    }
    L->swa = hp->n_swa > 0 && (hp->swa_pattern == 0 || (l + 1) % hp->swa_pattern != 0);
    if (m->arch->qkv_bias) {
        if ((st = bind_vec(m, NAME("attn_q.bias"), hp->q_dim, true, &L->bq)) ||
            (st = bind_vec(m, NAME("attn_k.bias"), hp->kv_dim, true, &L->bk)) ||
            (st = bind_vec(m, NAME("attn_v.bias"), hp->kv_dim, true, &L->bv)))
            return st;
    }
#undef NAME
    return OWL_OK;
}

static uint64_t mat_bytes(const owl_mat *w) { return (uint64_t)w->row_bytes * (uint64_t)w->rows; }

static void compute_sizes(owl_model *m) {
    uint64_t by_type[OWL_DTYPE_COUNT] = {0};
    m->n_params = m->weight_bytes = 0;
    for (size_t i = 0; i < m->weights.n; i++) {
        const owl_weight *w = &m->weights.w[i];
        m->n_params += (uint64_t)owl_weight_nelem(w);
        m->weight_bytes += w->nbytes;
        if (w->n_dims >= 2 && (unsigned)w->dtype < OWL_DTYPE_COUNT) by_type[w->dtype] += w->nbytes;
    }
    int best = m->tok_embd.dtype;
    for (int t = 0; t < OWL_DTYPE_COUNT; t++)
        if (by_type[t] > by_type[best]) best = t;
    m->weight_type = owl_dtype_name((owl_dtype)best);
    uint64_t b = mat_bytes(&m->output);
    for (int l = 0; l < m->hp.n_layers; l++) {
        const owl_layer *L = &m->layers[l];
        b += mat_bytes(&L->wq) + mat_bytes(&L->wk) + mat_bytes(&L->wv) + mat_bytes(&L->wo) +
             mat_bytes(&L->w_gate) + mat_bytes(&L->w_up) + mat_bytes(&L->w_down);
    }
    m->bytes_per_token = b;
}

owl_status owl_model_bind(owl_model *m) {
    owl_str an;
    const char *path = m->weights.path ? m->weights.path : "model";
    if (!owl_meta_get_str(&m->weights.meta, "general.architecture", &an)) {
        const owl_meta_value *v = owl_meta_find(&m->weights.meta, "general.architecture");
        if (v)
            return owl_errorf(OWL_ERR_FORMAT, "%s: metadata key general.architecture is not a string (it is %s)", path,
                              owl_meta_type_name(v->type));
        return owl_errorf(OWL_ERR_FORMAT, "%s: missing metadata key general.architecture", path);
    }
    m->arch = owl_arch_find(an.ptr, an.len);
    if (!m->arch && m->weights.format && strcmp(m->weights.format, "hf") == 0) /* the HF reader maps more families */
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: architecture \"%.*s\" is read but not runnable yet (owl runs: %s)",
                          path, (int)(an.len > 200 ? 200 : an.len), an.ptr, owl_arch_list());
    if (!m->arch)
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: unknown architecture \"%.*s\" (owl runs: %s)", path,
                          (int)(an.len > 200 ? 200 : an.len), an.ptr, owl_arch_list());
    owl_status st = read_hparams(m);
    if (st) return st;
    owl_hparams *hp = &m->hp;
    /* GGUF "llama" files hold Q and K permuted for adjacent pairs; Hugging
     * Face checkpoints (read as they are) rotate halves in every family. */
    m->rope_neox = m->arch->rope_neox || (m->weights.format && strcmp(m->weights.format, "hf") == 0);

    const owl_weight *emb = owl_weights_find(&m->weights, "token_embd.weight");
    if (!emb) return owl_errorf(OWL_ERR_FORMAT, "%s: missing tensor token_embd.weight", path);
    if (emb->n_dims < 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 30))
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor token_embd.weight has %d dimensions, expected [%d, n_vocab]",
                          path, emb->n_dims, hp->dim);
    hp->n_vocab = (int)emb->ne[1];
    if ((st = bind_mat(m, "token_embd.weight", hp->dim, hp->n_vocab, &m->tok_embd))) return st;
    if ((st = bind_vec(m, "output_norm.weight", hp->dim, false, &m->out_norm))) return st;
    if ((st = bind_vec(m, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs)) ||
        (st = bind_vec(m, "rope_factors_short.weight", hp->n_rot / 2, true, &m->rope_short)) ||
        (st = bind_vec(m, "rope_factors_long.weight", hp->n_rot / 2, true, &m->rope_long)))
        return st;
    if (owl_weights_find(&m->weights, "output.weight") || !m->arch->tied_ok) {
        if ((st = bind_mat(m, "output.weight", hp->dim, hp->n_vocab, &m->output))) return st;
        m->tied = false;
    } else {
        m->output = m->tok_embd;
        m->tied = true;
    }
    m->layers = owl_arena_alloc(&m->arena, sizeof(owl_layer) * (size_t)hp->n_layers);
    if (!m->layers) return OWL_ERR_NOMEM;
    for (int l = 0; l < hp->n_layers; l++)
        if ((st = bind_layer(m, l))) return st;
    compute_sizes(m);
    return OWL_OK;
}

/* ---- public API ---- */

owl_status owl_model_load(const char *path, const owl_model_params *params, owl_model **out) {
    *out = NULL;
    if (!path) return owl_errorf(OWL_ERR_ARG, "owl_model_load: no path");
    owl_model *m = owl_calloc(1, sizeof *m);
    if (!m) return OWL_ERR_NOMEM;
    owl_status st = owl_weights_open(path, params ? params->tokenizer_path : NULL, &m->weights);
    if (!st) st = owl_model_bind(m);
    if (!st && (owl_meta_find(&m->weights.meta, "tokenizer.ggml.tokens") ||
                owl_meta_find(&m->weights.meta, "tokenizer.ggml.model"))) {
        st = owl_tokenizer_from_meta(&m->weights.meta, &m->tok);
        if (st) st = owl_error_prefix(st, "%s: tokenizer", path);
    } else if (!st && m->weights.format && strcmp(m->weights.format, "hf") == 0 && owl_is_dir(path)) {
        /* a Hugging Face directory whose tokenizer.json has no GGUF form
         * (SentencePiece-style BPE without tokenizer.model): load it as is */
        char tj[4096];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
        if (owl_file_exists(tj) && (st = owl_tokenizer_json_load(path, &m->tok)))
            st = owl_error_prefix(st, "%s: tokenizer", path);
    }
    if (st) {
        owl_model_free(m);
        return st;
    }
    *out = m;
    return OWL_OK;
}

void owl_model_free(owl_model *m) {
    if (!m) return;
    if (m->tok) owl_tokenizer_free(m->tok);
    owl_arena_free(&m->arena);
    owl_weights_free(&m->weights);
    free(m);
}

void owl_model_get_info(const owl_model *m, owl_model_info *info) {
    memset(info, 0, sizeof *info);
    if (!m) return;
    const owl_hparams *hp = &m->hp;
    info->arch = m->arch->name;
    info->weight_type = m->weight_type;
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->dim = hp->dim;
    info->n_layers = hp->n_layers;
    info->n_heads = hp->n_heads;
    info->n_kv_heads = hp->n_kv_heads;
    info->head_dim = hp->head_dim;
    info->ffn_dim = hp->ffn_dim;
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    info->bytes_per_token = m->bytes_per_token;
}

const owl_tokenizer *owl_model_tokenizer(const owl_model *m) { return m ? m->tok : NULL; }
