/* Hugging Face model directories: config.json -> GGUF-style hyper-parameter
 * keys, safetensors tensors (single file or sharded) -> GGUF tensor names,
 * tokenizer (tokenizer.model, else tokenizer.json) -> tokenizer.ggml.* keys,
 * chat template from tokenizer_config.json or chat_template.jinja.
 *
 * The table keeps Hugging Face's Q/K row order: HF applies RoPE with
 * rotate_half, pairing dimension i with i + n_rot/2 (GGUF's "NeoX" rope).
 * format "hf" tells the model layer so; `owl convert` permutes the rows of
 * the Llama family into llama.cpp's adjacent-pair order instead. */
#include "format/hf_dir.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_MAX_DIM (1 << 24)

static const owl_hf_family families[] = {
    {"llama", "llama", .permute_qk = true},
    {"mistral", "llama", .permute_qk = true},
    {"smollm", "llama", .permute_qk = true},
    {"tinyllama", "llama", .permute_qk = true},
    {"qwen2", "qwen2", .permute_qk = false},
    {"qwen3", "qwen3", .permute_qk = false},
    {"gemma", "gemma", .norm_plus_one = true},
    {"gemma2", "gemma2", .norm_plus_one = true, .post_norms = true},
    {"gemma3", "gemma3", .norm_plus_one = true, .post_norms = true},
    {"gemma3_text", "gemma3", .norm_plus_one = true, .post_norms = true},
    {"phi3", "phi3", .permute_qk = false},
    {"olmo2", "olmo2", .post_norms = true},
};

const owl_hf_family *owl_hf_family_find(const char *model_type) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].model_type, model_type) == 0) return &families[i];
    return NULL;
}

char *owl_hf_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

/* ---- config.json ---- */

typedef struct cfg {
    const char *file;
    json_t *root; /* the text model's fields (text_config when there is one) */
    owl_meta *meta;
    char arch[32];
} cfg;

static owl_status cfg_int(cfg *c, const char *field, bool required, int64_t dflt, int64_t lo, int64_t hi,
                          int64_t *out) {
    json_t *v = json_object_get(c->root, field);
    if (!v || json_is_null(v)) {
        if (required) return owl_errorf(OWL_ERR_FORMAT, "%s: missing field '%s'", c->file, field);
        *out = dflt;
        return OWL_OK;
    }
    double x = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : NAN;
    if (!json_is_integer(v) && !(json_is_real(v) && x == floor(x)))
        return owl_errorf(OWL_ERR_FORMAT, "%s: field '%s' is not an integer", c->file, field);
    if (!(x >= (double)lo && x <= (double)hi))
        return owl_errorf(OWL_ERR_FORMAT, "%s: field '%s' = %.17g is outside [%lld, %lld]", c->file, field, x,
                          (long long)lo, (long long)hi);
    *out = (int64_t)x;
    return OWL_OK;
}

static owl_status cfg_num(cfg *c, json_t *obj, const char *field, double dflt, double lo, double hi, double *out) {
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return OWL_OK;
    }
    if (!json_is_number(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: field '%s' is not a number", c->file, field);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return owl_errorf(OWL_ERR_FORMAT, "%s: field '%s' = %g is outside [%g, %g]", c->file, field, x, lo, hi);
    *out = x;
    return OWL_OK;
}

static owl_status set_u32(cfg *c, const char *suffix, int64_t v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    return owl_meta_set_u32(c->meta, key, (uint32_t)v);
}

static owl_status set_f32(cfg *c, const char *suffix, double v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    return owl_meta_set_f32(c->meta, key, (float)v);
}

/* Llama 3 RoPE frequency factors (rope_freqs.weight: divisors of the
 * frequencies), as Meta's reference code computes them. */
static owl_status llama3_freqs(cfg *c, json_t *rs, double base, int64_t n_rot, owl_weights *ws) {
    double factor, lo_f, hi_f, old_ctx;
    owl_status st;
    if ((st = cfg_num(c, rs, "factor", 8.0, 1e-6, 1e6, &factor)) ||
        (st = cfg_num(c, rs, "low_freq_factor", 1.0, 1e-6, 1e6, &lo_f)) ||
        (st = cfg_num(c, rs, "high_freq_factor", 4.0, 1e-6, 1e6, &hi_f)) ||
        (st = cfg_num(c, rs, "original_max_position_embeddings", 8192, 1, 1 << 30, &old_ctx)))
        return owl_error_prefix(st, "rope_scaling");
    if (hi_f <= lo_f)
        return owl_errorf(OWL_ERR_FORMAT, "%s: rope_scaling high_freq_factor %g is not above low_freq_factor %g",
                          c->file, hi_f, lo_f);
    int64_t n = n_rot / 2;
    float *f = owl_arena_alloc(&ws->arena, sizeof(float) * (size_t)n);
    if (!f) return OWL_ERR_NOMEM;
    double lo_wl = old_ctx / lo_f, hi_wl = old_ctx / hi_f;
    for (int64_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(base, (double)(2 * i) / (double)n_rot);
        double wl = 2.0 * M_PI / freq;
        double r;
        if (wl < hi_wl) r = 1.0;
        else if (wl > lo_wl) r = factor;
        else {
            double smooth = (old_ctx / wl - lo_f) / (hi_f - lo_f);
            r = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        f[i] = (float)r;
    }
    int64_t ne[1] = {n};
    return owl_weights_add(ws, "rope_freqs.weight", OWL_F32, 1, ne, f, (uint64_t)n * 4);
}

/* Phi-3 "longrope": per-pair frequency divisors for short and long contexts
 * (rope_factors_short / rope_factors_long, as llama.cpp names them) and the
 * attention factor that scales cos and sin. */
static owl_status longrope(cfg *c, json_t *rs, int64_t n_rot, int64_t ctx, owl_weights *ws) {
    static const char *const names[2][2] = {{"short_factor", "rope_factors_short.weight"},
                                            {"long_factor", "rope_factors_long.weight"}};
    owl_status st;
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(rs, names[k][0]);
        if (!json_is_array(a) || (int64_t)json_array_size(a) != n_rot / 2)
            return owl_errorf(OWL_ERR_FORMAT, "%s: rope_scaling '%s' is not an array of %lld numbers", c->file,
                              names[k][0], (long long)(n_rot / 2));
        float *f = owl_arena_alloc(&ws->arena, sizeof(float) * (size_t)(n_rot / 2));
        if (!f) return OWL_ERR_NOMEM;
        for (int64_t i = 0; i < n_rot / 2; i++) {
            json_t *v = json_array_get(a, (size_t)i);
            double x = json_number_value(v);
            if (!json_is_number(v) || !(x > 0 && x < 1e9))
                return owl_errorf(OWL_ERR_FORMAT, "%s: rope_scaling '%s'[%lld] is not a positive number", c->file,
                                  names[k][0], (long long)i);
            f[i] = (float)x;
        }
        int64_t ne[1] = {n_rot / 2};
        if ((st = owl_weights_add(ws, names[k][1], OWL_F32, 1, ne, f, (uint64_t)(n_rot / 2) * 4))) return st;
    }
    int64_t orig;
    if ((st = cfg_int(c, "original_max_position_embeddings", false, ctx, 1, 1 << 30, &orig))) return st;
    double factor = (double)ctx / (double)orig, af;
    if ((st = cfg_num(c, rs, "attention_factor", factor <= 1.0 ? 1.0 : sqrt(1.0 + log(factor) / log((double)orig)),
                      1e-6, 1e6, &af)))
        return owl_error_prefix(st, "rope_scaling");
    if ((st = set_u32(c, "rope.scaling.original_context_length", orig))) return st;
    return set_f32(c, "rope.scaling.attn_factor", af);
}

static owl_status read_config(const char *dir, owl_weights *ws, const owl_hf_family **fam_out, bool *tied_out,
                              bool *tied_given) {
    char *file = owl_hf_path(dir, "config.json");
    if (!file) return OWL_ERR_NOMEM;
    char *text = NULL;
    size_t len;
    owl_status st = owl_read_file(file, &text, &len);
    json_t *root = NULL;
    cfg c = {.file = file, .meta = &ws->meta};
    if (st && !owl_file_exists(file)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: a directory, but not a Hugging Face model directory (no config.json)",
                        dir);
        goto done;
    }
    if (st) goto done;
    json_error_t jerr;
    root = json_loadb(text, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        st = root ? owl_errorf(OWL_ERR_FORMAT, "%s: not a JSON object", file)
                  : owl_errorf(OWL_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", file, jerr.text,
                               jerr.line, jerr.column);
        goto done;
    }
    c.root = root;
    json_t *tc = json_object_get(root, "text_config");
    if (json_is_object(tc)) c.root = tc; /* multimodal wrappers (gemma3) */
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!mt) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: missing field 'model_type' (or not a string)", file);
        goto done;
    }
    const owl_hf_family *fam = owl_hf_family_find(mt);
    if (!fam) {
        st = owl_errorf(OWL_ERR_UNSUPPORTED,
                        "%s: model_type '%.60s' is not supported (llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, "
                        "phi3, olmo2)",
                        file, mt);
        goto done;
    }
    *fam_out = fam;
    snprintf(c.arch, sizeof c.arch, "%s", fam->arch);

    int64_t dim, layers, ffn, heads, kv, ctx, vocab, hd;
    if ((st = cfg_int(&c, "hidden_size", true, 0, 1, HF_MAX_DIM, &dim)) ||
        (st = cfg_int(&c, "num_hidden_layers", true, 0, 1, 4096, &layers)) ||
        (st = cfg_int(&c, "intermediate_size", true, 0, 1, HF_MAX_DIM, &ffn)) ||
        (st = cfg_int(&c, "num_attention_heads", true, 0, 1, 65536, &heads)) ||
        (st = cfg_int(&c, "num_key_value_heads", false, heads, 1, heads, &kv)) ||
        (st = cfg_int(&c, "max_position_embeddings", false, 2048, 1, 1 << 30, &ctx)) ||
        (st = cfg_int(&c, "vocab_size", false, 0, 1, 1 << 30, &vocab)) ||
        (st = cfg_int(&c, "head_dim", false, 0, 2, 65536, &hd)))
        goto done;
    if (heads % kv != 0) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                        file, (long long)heads, (long long)kv);
        goto done;
    }
    bool hd_given = hd != 0;
    if (!hd_given) {
        if (dim % heads != 0) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                            file, (long long)dim, (long long)heads);
            goto done;
        }
        hd = dim / heads;
    }
    if (hd % 2 != 0) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: head dimension %lld is odd", file, (long long)hd);
        goto done;
    }
    double eps, theta, prf;
    if ((st = cfg_num(&c, c.root, "rms_norm_eps", 1e-6, 1e-30, 0.5, &eps)) ||
        (st = cfg_num(&c, c.root, "rope_theta", 10000.0, 1e-3, 1e12, &theta)) ||
        (st = cfg_num(&c, c.root, "partial_rotary_factor", 1.0, 1e-3, 1.0, &prf)))
        goto done;
    int64_t n_rot = (int64_t)(hd * prf);
    n_rot -= n_rot % 2;
    if (n_rot < 2) n_rot = 2;

    if ((st = owl_meta_set_str(&ws->meta, "general.architecture", c.arch, strlen(c.arch))) ||
        (st = set_u32(&c, "context_length", ctx)) || (st = set_u32(&c, "embedding_length", dim)) ||
        (st = set_u32(&c, "block_count", layers)) || (st = set_u32(&c, "feed_forward_length", ffn)) ||
        (st = set_u32(&c, "attention.head_count", heads)) || (st = set_u32(&c, "attention.head_count_kv", kv)) ||
        (st = set_f32(&c, "rope.freq_base", theta)) ||
        (st = set_f32(&c, "attention.layer_norm_rms_epsilon", eps)) ||
        (st = set_u32(&c, "rope.dimension_count", n_rot)))
        goto done;
    if (hd_given && ((st = set_u32(&c, "attention.key_length", hd)) || (st = set_u32(&c, "attention.value_length", hd))))
        goto done;
    if (vocab && (st = set_u32(&c, "vocab_size", vocab))) goto done;

    int64_t swa;
    json_t *use_swa = json_object_get(c.root, "use_sliding_window");
    if ((st = cfg_int(&c, "sliding_window", false, 0, 0, 1 << 30, &swa))) goto done;
    /* Qwen2/Qwen3 use the window only when use_sliding_window says so (their
     * default is false), and then on the layers from max_window_layers on */
    bool qwen = strncmp(fam->arch, "qwen", 4) == 0;
    if (qwen && swa > 0) {
        int64_t mwl;
        if (!json_is_true(use_swa)) swa = 0;
        else if ((st = cfg_int(&c, "max_window_layers", false, 28, 0, 1 << 20, &mwl))) goto done;
        else if (mwl >= layers) swa = 0;
        else if (mwl > 0) {
            st = owl_errorf(OWL_ERR_UNSUPPORTED,
                            "%s: a sliding window on layers %lld.. only (max_window_layers) is not supported", file,
                            (long long)mwl);
            goto done;
        }
    }
    if (swa > 0 && !json_is_false(use_swa) && (st = set_u32(&c, "attention.sliding_window", swa))) goto done;
    static const char *const caps[2] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (int i = 0; i < 2; i++) {
        double cap;
        if ((st = cfg_num(&c, c.root, caps[i], 0.0, 0.0, 1e9, &cap))) goto done;
        if (cap > 0 && (st = set_f32(&c, caps[i], cap))) goto done;
        json_t *cv = json_object_get(c.root, caps[i]); /* null: no capping (not the family's default) */
        if (cv && json_is_null(cv) && (st = set_f32(&c, caps[i], 0.0))) goto done;
    }
    /* Gemma 2/3: query scale, the local layers' RoPE base and which layers
     * are local (keys of owl's where llama.cpp hard-codes the values) */
    double qpas, rlb;
    int64_t pat;
    if ((st = cfg_num(&c, c.root, "query_pre_attn_scalar", 0.0, 0.0, 1e9, &qpas)) ||
        (st = cfg_num(&c, c.root, "rope_local_base_freq", 0.0, 0.0, 1e12, &rlb)) ||
        (st = cfg_int(&c, "sliding_window_pattern", false, 0, 0, 4096, &pat)))
        goto done;
    if (qpas > 0 && (st = set_f32(&c, "attention.scale", 1.0 / sqrt(qpas)))) goto done;
    if (rlb > 0 && (st = set_f32(&c, "rope.freq_base_swa", rlb))) goto done;
    json_t *lt = json_object_get(c.root, "layer_types");
    if (json_is_array(lt) && swa > 0) { /* as a period: layer l global iff (l + 1) % pat == 0 */
        size_t nl = json_array_size(lt), first_full = nl;
        for (size_t i = 0; i < nl && first_full == nl; i++)
            if (json_string_value(json_array_get(lt, i)) &&
                strcmp(json_string_value(json_array_get(lt, i)), "full_attention") == 0)
                first_full = i;
        pat = first_full == nl ? 0 : (int64_t)first_full + 1;
        for (size_t i = 0; i < nl; i++) {
            const char *t = json_string_value(json_array_get(lt, i));
            const char *want = pat == 0 || (int64_t)(i + 1) % pat != 0 ? "sliding_attention" : "full_attention";
            if (!t || strcmp(t, want) != 0) {
                st = owl_errorf(OWL_ERR_UNSUPPORTED,
                                "%s: layer_types[%zu] is '%.40s': owl runs windowed layers in a period only", file, i,
                                t ? t : "(not a string)");
                goto done;
            }
        }
        if (pat == 0) pat = (int64_t)nl + 1; /* every layer local */
    }
    if (pat > 0 && (st = set_u32(&c, "attention.sliding_window_pattern", pat))) goto done;

    json_t *rs = json_object_get(c.root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        if (!json_is_object(rs)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: field 'rope_scaling' is not an object or null", file);
            goto done;
        }
        const char *type = json_string_value(json_object_get(rs, "rope_type"));
        if (!type) type = json_string_value(json_object_get(rs, "type"));
        if (!type) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: rope_scaling has no 'rope_type' or 'type'", file);
            goto done;
        }
        double factor;
        if (strcmp(type, "default") == 0) {
        } else if (strcmp(type, "dynamic") == 0) { /* NTK scaling at run time beyond the trained context */
            owl_log(OWL_LOG_WARN, "%s: rope_scaling 'dynamic' is not applied (positions up to %lld are unaffected)",
                    file, (long long)ctx);
        } else if (strcmp(type, "llama3") == 0) {
            if ((st = llama3_freqs(&c, rs, theta, n_rot, ws))) goto done;
        } else if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0) {
            if ((st = longrope(&c, rs, n_rot, ctx, ws))) goto done;
        } else if (strcmp(type, "linear") == 0 || strcmp(type, "yarn") == 0) {
            if ((st = cfg_num(&c, rs, "factor", 1.0, 1e-6, 1e6, &factor))) goto done;
            char key[96];
            snprintf(key, sizeof key, "%s.rope.scaling.type", c.arch);
            if ((st = owl_meta_set_str(&ws->meta, key, type, strlen(type))) ||
                (st = set_f32(&c, "rope.scaling.factor", factor)))
                goto done;
            int64_t orig;
            if (strcmp(type, "yarn") == 0) {
                json_t *save = c.root;
                c.root = rs;
                st = cfg_int(&c, "original_max_position_embeddings", false, 0, 0, 1 << 30, &orig);
                c.root = save;
                if (st || (orig && (st = set_u32(&c, "rope.scaling.original_context_length", orig)))) goto done;
            }
        } else {
            st = owl_errorf(OWL_ERR_UNSUPPORTED,
                            "%s: rope_scaling type '%.40s' is not supported (linear, llama3, longrope, yarn, dynamic)", file,
                            type);
            goto done;
        }
    }
    json_t *tw = json_object_get(c.root, "tie_word_embeddings");
    if (!tw) tw = json_object_get(root, "tie_word_embeddings");
    *tied_given = json_is_boolean(tw);
    *tied_out = json_is_true(tw);
done:
    json_decref(root);
    free(text);
    free(file);
    return st;
}

/* ---- tensor names ---- */

typedef struct rename_ctx {
    const owl_hf_family *fam;
    bool tied;
} rename_ctx;

static owl_status hf_rename(void *p, const char *name, char *buf, size_t cap, bool *skip) {
    rename_ctx *rc = p;
    const char *n = name;
    if (strncmp(n, "language_model.", 15) == 0) n += 15;
    if (strncmp(n, "model.language_model.", 21) == 0) n += 21;
    else if (strncmp(n, "model.", 6) == 0) n += 6;
    if (strncmp(name, "vision_tower.", 13) == 0 || strncmp(name, "multi_modal_projector.", 22) == 0 ||
        strncmp(name, "model.vision_tower.", 19) == 0 || strncmp(name, "model.multi_modal_projector.", 28) == 0 ||
        strstr(n, "rotary_emb.inv_freq")) {
        *skip = true;
        return OWL_OK;
    }
    const char *out = NULL;
    char tmp[256];
    if (strcmp(n, "embed_tokens.weight") == 0) out = "token_embd.weight";
    else if (strcmp(n, "norm.weight") == 0) out = "output_norm.weight";
    else if (strcmp(n, "lm_head.weight") == 0) {
        if (rc->tied) {
            *skip = true;
            return OWL_OK;
        }
        out = "output.weight";
    } else if (strncmp(n, "layers.", 7) == 0) {
        char *end;
        long l = strtol(n + 7, &end, 10);
        if (end != n + 7 && *end == '.' && l >= 0 && l < 100000) {
            static const char *const map[][2] = {
                {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
                {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
                {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
                {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.o_proj.bias", "attn_output.bias"},
                {"self_attn.qkv_proj.weight", "attn_qkv.weight"}, {"self_attn.q_norm.weight", "attn_q_norm.weight"},
                {"self_attn.k_norm.weight", "attn_k_norm.weight"}, {"input_layernorm.weight", "attn_norm.weight"},
                {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
                {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
                {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
                {"mlp.down_proj.weight", "ffn_down.weight"},    {"mlp.gate_up_proj.weight", "ffn_up.weight"},
            };
            const char *sub = end + 1, *to = NULL;
            if (strcmp(sub, "post_attention_layernorm.weight") == 0)
                to = rc->fam->post_norms ? "post_attention_norm.weight" : "ffn_norm.weight";
            for (size_t i = 0; !to && i < sizeof map / sizeof map[0]; i++)
                if (strcmp(sub, map[i][0]) == 0) to = map[i][1];
            if (to) {
                snprintf(tmp, sizeof tmp, "blk.%ld.%s", l, to);
                out = tmp;
            }
        }
    }
    if (!out)
        return owl_errorf(OWL_ERR_UNSUPPORTED, "tensor '%.120s' has no GGUF name (model_type %s)", name,
                          rc->fam->model_type);
    size_t len = strlen(out);
    if (len >= cap) return owl_errorf(OWL_ERR_FORMAT, "tensor name '%.120s' is too long", out);
    memcpy(buf, out, len + 1);
    return OWL_OK;
}

/* Gemma stores RMSNorm weights as w and multiplies by (1 + w): the table
 * holds 1 + w (F32), as llama.cpp's GGUF files do. */
static owl_status norms_plus_one(owl_weights *ws) {
    for (size_t i = 0; i < ws->n; i++) {
        owl_weight *w = &ws->w[i];
        size_t nl = strlen(w->name);
        if (nl < 11 || strcmp(w->name + nl - 11, "norm.weight") != 0) continue;
        int64_t n = owl_weight_nelem(w);
        float *f = owl_arena_alloc(&ws->arena, sizeof(float) * (size_t)(n ? n : 1));
        if (!f) return OWL_ERR_NOMEM;
        owl_status st = owl_to_f32(w->dtype, w->data, f, n);
        if (st) return owl_error_prefix(st, "tensor %s", w->name);
        for (int64_t k = 0; k < n; k++) f[k] += 1.0f;
        w->dtype = OWL_F32;
        w->data = f;
        w->nbytes = (uint64_t)n * 4;
    }
    return OWL_OK;
}

/* ---- tokenizer ---- */

/* A token string in tokenizer_config.json: "x" or {"content": "x", ...}. */
static const char *token_text(json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

owl_status owl_hf_tokenizer_config(const char *dir, owl_meta *meta) {
    char *file = owl_hf_path(dir, "tokenizer_config.json");
    if (!file) return OWL_ERR_NOMEM;
    owl_status st = OWL_OK;
    char *text = NULL;
    json_t *root = NULL;
    size_t len;
    if (owl_file_exists(file)) {
        if ((st = owl_read_file(file, &text, &len))) goto done;
        json_error_t jerr;
        root = json_loadb(text, len, 0, &jerr);
        if (!json_is_object(root)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: not a JSON object%s%s", file, root ? "" : ": ", root ? "" : jerr.text);
            goto done;
        }
        json_t *v;
        if (json_is_boolean(v = json_object_get(root, "add_bos_token")) &&
            (st = owl_meta_set_bool(meta, "tokenizer.ggml.add_bos_token", json_is_true(v))))
            goto done;
        if (json_is_boolean(v = json_object_get(root, "add_eos_token")) &&
            (st = owl_meta_set_bool(meta, "tokenizer.ggml.add_eos_token", json_is_true(v))))
            goto done;
        /* special tokens named by text: their ids in the vocabulary */
        static const char *const ids[][2] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                             {"eos_token", "tokenizer.ggml.eos_token_id"},
                                             {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                             {"pad_token", "tokenizer.ggml.padding_token_id"}};
        const owl_meta_value *toks = owl_meta_find(meta, "tokenizer.ggml.tokens");
        for (size_t k = 0; toks && toks->type == OWL_META_ARRAY && toks->arr.elem == OWL_META_STRING &&
                           k < sizeof ids / sizeof ids[0];
             k++) {
            const char *t = token_text(json_object_get(root, ids[k][0]));
            if (!t) continue;
            for (uint64_t i = 0; i < toks->arr.count; i++)
                if (owl_str_eq(toks->arr.strs[i], t)) {
                    if ((st = owl_meta_set_u32(meta, ids[k][1], (uint32_t)i))) goto done;
                    break;
                }
        }
        v = json_object_get(root, "chat_template");
        const char *tmpl = json_string_value(v);
        for (size_t i = 0; !tmpl && json_is_array(v) && i < json_array_size(v); i++) { /* named templates */
            json_t *e = json_array_get(v, i);
            const char *nm = json_string_value(json_object_get(e, "name"));
            if (nm && strcmp(nm, "default") == 0) tmpl = json_string_value(json_object_get(e, "template"));
        }
        if (tmpl && (st = owl_meta_set_str(meta, "tokenizer.chat_template", tmpl, strlen(tmpl)))) goto done;
    }
    free(file);
    file = owl_hf_path(dir, "chat_template.jinja");
    if (!file) return OWL_ERR_NOMEM;
    if (owl_file_exists(file)) {
        free(text);
        text = NULL;
        if ((st = owl_read_file(file, &text, &len)) ||
            (st = owl_meta_set_str(meta, "tokenizer.chat_template", text, len)))
            goto done;
    }
done:
    json_decref(root);
    free(text);
    free(file);
    return st;
}

static owl_status read_tokenizer(const char *dir, owl_meta *meta) {
    char *spm = owl_hf_path(dir, "tokenizer.model"), *tj = owl_hf_path(dir, "tokenizer.json");
    owl_status st = OWL_OK;
    if (!spm || !tj) st = OWL_ERR_NOMEM;
    else if (owl_file_exists(spm)) {
        st = owl_spm_model_read(spm, meta);
        if (!st) st = owl_hf_tokenizer_config(dir, meta);
    } else if (owl_file_exists(tj)) { /* the tokenizer layer reads tokenizer_config.json itself */
        st = owl_hf_tokenizer_json_meta(tj, meta);
        if (st == OWL_ERR_UNSUPPORTED) { /* no GGUF form: the model layer loads tokenizer.json itself */
            owl_log(OWL_LOG_DEBUG, "%s", owl_last_error());
            st = OWL_OK;
        }
    }
    free(spm);
    free(tj);
    return st;
}

/* ---- the directory ---- */

owl_status owl_hf_dir_read(const char *dir, owl_weights *out) {
    owl_status st = owl_weights_init(out, dir, "hf");
    if (st) return st;
    const owl_hf_family *fam = NULL;
    bool tied = false, tied_given = false;
    char *index = NULL, *single = NULL;
    if ((st = read_config(dir, out, &fam, &tied, &tied_given))) goto fail;
    const char *base = strrchr(dir, '/');
    while (base && base[1] == 0 && base > dir) { /* trailing slash */
        const char *b = base - 1;
        while (b > dir && *b != '/') b--;
        base = b;
    }
    char name[256];
    snprintf(name, sizeof name, "%s", base && *base == '/' ? base + 1 : dir);
    char *slash = strchr(name, '/');
    if (slash) *slash = 0;
    if ((st = owl_meta_set_str(&out->meta, "general.name", name, strlen(name)))) goto fail;

    index = owl_hf_path(dir, "model.safetensors.index.json");
    single = owl_hf_path(dir, "model.safetensors");
    if (!index || !single) {
        st = OWL_ERR_NOMEM;
        goto fail;
    }
    rename_ctx rc = {.fam = fam, .tied = tied};
    if (owl_file_exists(index)) st = owl_safetensors_add_index(out, index, hf_rename, &rc);
    else if (owl_file_exists(single)) st = owl_safetensors_add(out, single, hf_rename, &rc, false);
    else st = owl_errorf(OWL_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    if (st) goto fail;
    if (tied_given && !tied && !owl_weights_find(out, "output.weight")) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: tie_word_embeddings is false but lm_head.weight is missing", dir);
        goto fail;
    }
    if (fam->norm_plus_one && (st = norms_plus_one(out))) goto fail;
    if ((st = read_tokenizer(dir, &out->meta))) goto fail;
    free(index);
    free(single);
    return OWL_OK;
fail:
    free(index);
    free(single);
    owl_weights_free(out);
    return st;
}
