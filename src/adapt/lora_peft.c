/* PEFT LoRA adapters: adapter_config.json (r, lora_alpha, target_modules,
 * use_rslora, fan_in_fan_out, rank_pattern, alpha_pattern, ...) and
 * adapter_model.safetensors with PEFT's names:
 *   base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
 *   base_model.model.model.layers.N.mlp.{gate,up,down}_proj.lora_{A,B}.weight
 *   (Phi-3: self_attn.qkv_proj, mlp.gate_up_proj)
 *   base_model.model.lm_head.lora_{A,B}.weight
 *   base_model.model.model.embed_tokens.lora_embedding_{A,B}
 * lora_A is r x in, lora_B out x r (torch order), Q / K rows in Hugging
 * Face's order. Also the dispatch of owl_lora_read by path. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "adapt/lora_internal.h"

#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KINDS (LORA_KIND_GATE_UP + 1)

static const char *const MODULES[] = {"q_proj", "k_proj",  "v_proj",   "o_proj",  "gate_proj",    "up_proj",
                                      "down_proj", "qkv_proj", "gate_up_proj", "lm_head", "embed_tokens"};
#define N_MODULES (sizeof MODULES / sizeof MODULES[0])

typedef struct peft_cfg {
    const char *file;
    json_t *root;
    int r;
    double alpha;
    bool rslora;
    const json_t *targets;     /* array of strings, or a string */
    pcre2_code *target_re;     /* target_modules as a regular expression */
    bool all_linear;
    const json_t *rank_pattern, *alpha_pattern; /* objects or NULL */
} peft_cfg;

static void cfg_free(peft_cfg *c) {
    if (c->target_re) pcre2_code_free(c->target_re);
    json_decref(c->root);
}

/* ends with "." + suffix, or equal */
static bool key_has_suffix(const char *key, const char *suffix) {
    size_t k = strlen(key), s = strlen(suffix);
    if (k == s) return memcmp(key, suffix, k) == 0;
    return k > s && key[k - s - 1] == '.' && memcmp(key + k - s, suffix, s) == 0;
}

static owl_status compile(const char *file, const char *field, const char *pat, size_t len, bool suffix,
                          pcre2_code **out) {
    /* PEFT: re.fullmatch(target_modules, key); patterns: (.*\.)?(key)$ */
    char *buf = malloc(len + 32);
    if (!buf) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    int n = snprintf(buf, len + 32, "%s(?:", suffix ? "(?:.*\\.)?" : "");
    memcpy(buf + n, pat, len);
    memcpy(buf + n + len, ")", 2);
    int err;
    PCRE2_SIZE at;
    *out = pcre2_compile((PCRE2_SPTR)buf, (PCRE2_SIZE)(n + len + 1), PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF,
                         &err, &at, NULL);
    free(buf);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s: the regular expression \"%.*s\" is not valid: %s", file, field,
                          (int)(len > 100 ? 100 : len), pat, (const char *)msg);
    }
    return OWL_OK;
}

/* A hostile pattern (nested quantifiers) gives up after a bounded amount of
 * backtracking instead of taking minutes: then it does not match. */
static bool re_match(pcre2_code *re, const char *s) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return false;
    }
    pcre2_set_match_limit(mc, 100000);
    pcre2_set_depth_limit(mc, 10000);
    int r = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, mc);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return r >= 0;
}

static bool known_module(const char *name) {
    for (size_t i = 0; i < N_MODULES; i++)
        if (key_has_suffix(name, MODULES[i])) return true;
    return false;
}

static owl_status parse_config(peft_cfg *c, const char *file, const char *text, size_t len) {
    memset(c, 0, sizeof *c);
    c->file = file;
    json_error_t je;
    c->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!c->root) return owl_errorf(OWL_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", file, je.line, je.text);
    if (!json_is_object(c->root)) return owl_errorf(OWL_ERR_FORMAT, "%s: not a JSON object", file);
    const json_t *v = json_object_get(c->root, "peft_type");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: peft_type is %s, owl reads LORA adapters", file,
                          json_is_string(v) ? json_string_value(v) : "not a string");
    v = json_object_get(c->root, "r");
    if (!v) return owl_errorf(OWL_ERR_FORMAT, "%s: missing key \"r\" (the rank)", file);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
        return owl_errorf(OWL_ERR_FORMAT, "%s: \"r\" must be an integer from 1 to 65536", file);
    c->r = (int)json_integer_value(v);
    v = json_object_get(c->root, "lora_alpha");
    if (!v) return owl_errorf(OWL_ERR_FORMAT, "%s: missing key \"lora_alpha\"", file);
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) == 0.0 ||
        fabs(json_number_value(v)) > 1e9)
        return owl_errorf(OWL_ERR_FORMAT, "%s: \"lora_alpha\" must be a finite non-zero number", file);
    c->alpha = json_number_value(v);
    static const char *const bools[] = {"use_rslora", "fan_in_fan_out", "use_dora", "lora_bias"};
    for (size_t i = 0; i < 4; i++) {
        v = json_object_get(c->root, bools[i]);
        if (v && !json_is_boolean(v) && !json_is_null(v))
            return owl_errorf(OWL_ERR_FORMAT, "%s: \"%s\" must be true or false", file, bools[i]);
    }
    c->rslora = json_is_true(json_object_get(c->root, "use_rslora"));
    /* fan_in_fan_out only says the BASE layer stores its weight transposed
     * (GPT-2's Conv1D); lora_A / lora_B are plain linear weights either way,
     * and owl's bases hold (out, in) matrices, so it changes nothing here. */
    if (json_is_true(json_object_get(c->root, "use_dora")))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: use_dora is true: DoRA adapters are not supported", file);
    if (json_is_true(json_object_get(c->root, "lora_bias")))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: lora_bias is true: adapters with biases are not supported", file);
    v = json_object_get(c->root, "modules_to_save");
    if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
        return owl_errorf(OWL_ERR_UNSUPPORTED,
                          "%s: modules_to_save is set: adapters carrying whole trained modules are not supported", file);
    v = json_object_get(c->root, "base_model_name_or_path");
    if (v && !json_is_null(v) && !json_is_string(v))
        return owl_errorf(OWL_ERR_FORMAT, "%s: \"base_model_name_or_path\" must be a string", file);
    /* target_modules */
    v = json_object_get(c->root, "target_modules");
    if (!v || json_is_null(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: missing key \"target_modules\"", file);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "all-linear") == 0)
            c->all_linear = true;
        else {
            owl_status st = compile(file, "target_modules", s, json_string_length(v), false, &c->target_re);
            if (st) return st;
        }
    } else if (json_is_array(v)) {
        if (json_array_size(v) == 0) return owl_errorf(OWL_ERR_FORMAT, "%s: target_modules is empty", file);
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                return owl_errorf(OWL_ERR_FORMAT, "%s: target_modules[%zu] is not a string", file, i);
            if (!known_module(json_string_value(e)))
                return owl_errorf(OWL_ERR_FORMAT,
                                  "%s: unknown target module \"%.100s\" (owl adapts q_proj, k_proj, v_proj, o_proj, "
                                  "gate_proj, up_proj, down_proj, qkv_proj, gate_up_proj, lm_head, embed_tokens)",
                                  file, json_string_value(e));
        }
    } else {
        return owl_errorf(OWL_ERR_FORMAT, "%s: target_modules must be a list of names or a string", file);
    }
    c->targets = v;
    static const char *const pats[] = {"rank_pattern", "alpha_pattern"};
    for (int k = 0; k < 2; k++) {
        v = json_object_get(c->root, pats[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_object(v)) return owl_errorf(OWL_ERR_FORMAT, "%s: %s must be an object", file, pats[k]);
        const char *key;
        const json_t *e;
        json_object_foreach((json_t *)v, key, e) {
            if (k == 0 ? (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 65536)
                       : (!json_is_number(e) || !isfinite(json_number_value(e)) || fabs(json_number_value(e)) > 1e9))
                return owl_errorf(OWL_ERR_FORMAT, "%s: %s[\"%.100s\"] must be %s", file, pats[k], key,
                                  k == 0 ? "an integer from 1 to 65536" : "a finite number");
        }
        if (k == 0) c->rank_pattern = v;
        else c->alpha_pattern = v;
    }
    return OWL_OK;
}

/* Is the module key (e.g. "model.layers.3.self_attn.q_proj") a target? */
static bool is_target(const peft_cfg *c, const char *key, bool linear_layer) {
    if (c->all_linear) return linear_layer; /* PEFT's all-linear leaves the output layer out */
    if (c->target_re) return re_match(c->target_re, key);
    size_t i;
    const json_t *e;
    json_array_foreach(c->targets, i, e) if (key_has_suffix(key, json_string_value(e))) return true;
    return false;
}

/* The value of the first pattern key that matches key ((.*\.)?(pat)$), or NULL. */
static owl_status pattern_get(const peft_cfg *c, const json_t *obj, const char *field, const char *key,
                              const json_t **out) {
    *out = NULL;
    if (!obj) return OWL_OK;
    const char *pk;
    const json_t *e;
    json_object_foreach((json_t *)obj, pk, e) {
        pcre2_code *re;
        owl_status st = compile(c->file, field, pk, strlen(pk), true, &re);
        if (st) return st;
        bool m = re_match(re, key);
        pcre2_code_free(re);
        if (m) {
            *out = e;
            return OWL_OK;
        }
    }
    return OWL_OK;
}

typedef struct slot {
    const owl_weight *a, *b;
    char key[96];
} slot;

/* Parses a PEFT tensor name; false if it is not one of owl's names. */
static bool parse_name(const char *name, int *layer, int *kind, bool *is_a, char *key, size_t cap) {
    static const char pre[] = "base_model.model.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return false;
    const char *s = name + sizeof pre - 1;
    if (strcmp(s, "lm_head.lora_A.weight") == 0 || strcmp(s, "lm_head.lora_B.weight") == 0) {
        *layer = -1;
        *kind = LORA_KIND_OUTPUT;
        *is_a = s[13] == 'A';
        snprintf(key, cap, "lm_head");
        return true;
    }
    if (strcmp(s, "model.embed_tokens.lora_embedding_A") == 0 || strcmp(s, "model.embed_tokens.lora_embedding_B") == 0) {
        *layer = -1;
        *kind = LORA_KIND_EMBD;
        *is_a = s[strlen(s) - 1] == 'A';
        snprintf(key, cap, "model.embed_tokens");
        return true;
    }
    static const char lp[] = "model.layers.";
    if (strncmp(s, lp, sizeof lp - 1) != 0) return false;
    s += sizeof lp - 1;
    if (*s < '0' || *s > '9') return false;
    long l = 0;
    while (*s >= '0' && *s <= '9') {
        l = l * 10 + (*s++ - '0');
        if (l > 100000) return false;
    }
    static const struct {
        const char *mod;
        int kind;
    } mods[] = {{".self_attn.q_proj.", OWL_PROJ_Q},   {".self_attn.k_proj.", OWL_PROJ_K},
                {".self_attn.v_proj.", OWL_PROJ_V},   {".self_attn.o_proj.", OWL_PROJ_O},
                {".mlp.gate_proj.", OWL_PROJ_GATE},   {".mlp.up_proj.", OWL_PROJ_UP},
                {".mlp.down_proj.", OWL_PROJ_DOWN},   {".self_attn.qkv_proj.", LORA_KIND_QKV},
                {".mlp.gate_up_proj.", LORA_KIND_GATE_UP}};
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        size_t n = strlen(mods[i].mod);
        if (strncmp(s, mods[i].mod, n) != 0) continue;
        const char *t = s + n;
        if (strcmp(t, "lora_A.weight") != 0 && strcmp(t, "lora_B.weight") != 0) return false;
        *layer = (int)l;
        *kind = mods[i].kind;
        *is_a = t[5] == 'A';
        snprintf(key, cap, "model.layers.%ld%.*s", l, (int)(n - 1), mods[i].mod);
        return true;
    }
    return false;
}

static owl_status read_peft(const owl_model *m, const char *cfg_name, const char *cfg_text, size_t cfg_len,
                            const char *st_name, owl_weights *ws, owl_lora **out) {
    *out = NULL;
    peft_cfg c;
    owl_status st = parse_config(&c, cfg_name, cfg_text, cfg_len);
    owl_lora *lo = NULL;
    slot *slots = NULL;
    const int nl = m->hp.n_layers;
    const size_t n_slots = ((size_t)nl + 1) * KINDS;
    if (st) goto done;
    if ((st = lora_begin(m, ws->path ? ws->path : st_name, &lo))) goto done;
    lo->rank = c.r;
    lo->alpha = (float)c.alpha;
    lo->rslora = c.rslora;
    lo->w.scale = lora_scale_of(lo->alpha, c.r, c.rslora);
    const json_t *bn = json_object_get(c.root, "base_model_name_or_path");
    if (json_is_string(bn) && (st = owl_lora_set_base_name(lo, json_string_value(bn)))) goto done;
    slots = calloc(n_slots, sizeof *slots);
    if (!slots) {
        st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", st_name);
        goto done;
    }
    for (size_t i = 0; i < ws->n; i++) {
        const owl_weight *w = &ws->w[i];
        int l, kind;
        bool is_a;
        char key[96];
        if (!parse_name(w->name, &l, &kind, &is_a, key, sizeof key)) {
            st = owl_errorf(OWL_ERR_FORMAT,
                            "%s: tensor %.200s is not a LoRA tensor owl knows (base_model.model.model.layers.N."
                            "self_attn|mlp.<module>.lora_A|lora_B.weight, lm_head, embed_tokens lora_embedding_A|B)",
                            st_name, w->name);
            goto done;
        }
        if (l >= nl) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s is for layer %d, the base model has %d layers", st_name,
                            w->name, l, nl);
            goto done;
        }
        if (!is_target(&c, key, kind != LORA_KIND_OUTPUT && kind != LORA_KIND_EMBD)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s adapts %s, which target_modules in %s does not name",
                            st_name, w->name, key, cfg_name);
            goto done;
        }
        slot *sl = &slots[(size_t)(l + 1) * KINDS + (size_t)kind];
        const owl_weight **dst = is_a ? &sl->a : &sl->b;
        if (*dst) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s appears twice", st_name, w->name);
            goto done;
        }
        *dst = w;
        snprintf(sl->key, sizeof sl->key, "%s", key);
    }
    for (size_t i = 0; i < n_slots; i++) {
        slot *sl = &slots[i];
        if (!sl->a && !sl->b) continue;
        if (!sl->a || !sl->b) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s has no %s partner (missing lora_%s)", st_name,
                            (sl->a ? sl->a : sl->b)->name, sl->a ? "lora_B" : "lora_A", sl->a ? "B" : "A");
            goto done;
        }
        const int l = (int)(i / KINDS) - 1, kind = (int)(i % KINDS);
        const json_t *rp, *ap;
        if ((st = pattern_get(&c, c.rank_pattern, "rank_pattern", sl->key, &rp)) ||
            (st = pattern_get(&c, c.alpha_pattern, "alpha_pattern", sl->key, &ap)))
            goto done;
        const int r = rp ? (int)json_integer_value(rp) : c.r;
        const double alpha = ap ? json_number_value(ap) : c.alpha;
        const int64_t tr = sl->a->n_dims == 2 ? sl->a->ne[1] : 1; /* rows of lora_A (torch) */
        if (tr != r) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: rank mismatch: tensor %s has %lld rows, %s says r = %d for %s",
                            st_name, sl->a->name, (long long)tr, cfg_name, r, sl->key);
            goto done;
        }
        if (alpha == 0.0) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: alpha_pattern gives %s an alpha of 0", cfg_name, sl->key);
            goto done;
        }
        const float ps = lora_scale_of((float)alpha, r, c.rslora);
        if ((st = lora_take(lo, st_name, l, kind, sl->a, sl->b, kind == LORA_KIND_EMBD, ps, false))) goto done;
    }
    st = lora_finish(lo, st_name);
done:
    free(slots);
    cfg_free(&c);
    if (st) {
        owl_lora_free(lo);
        return st;
    }
    *out = lo;
    return OWL_OK;
}

owl_status owl_lora_read_peft_mem(const owl_model *m, const char *name, const char *cfg, size_t cfg_len,
                                  const uint8_t *stb, size_t st_len, owl_lora **out) {
    *out = NULL;
    if (!m) return owl_errorf(OWL_ERR_ARG, "adapter: no base model");
    owl_weights ws;
    owl_status st = owl_safetensors_read_mem(name, stb, st_len, &ws);
    if (st) return st;
    st = read_peft(m, "adapter_config.json", cfg, cfg_len, name, &ws, out);
    owl_weights_free(&ws);
    return st;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    return strndup(path, (size_t)(slash - path) + (slash == path));
}

static owl_status read_peft_files(const owl_model *m, const char *cfg_path, const char *st_path, owl_lora **out) {
    char *text = NULL;
    size_t len = 0;
    owl_status st = owl_read_file(cfg_path, &text, &len);
    if (st) return owl_error_prefix(st, "adapter config %s", cfg_path);
    owl_weights ws;
    if ((st = owl_safetensors_read(st_path, &ws))) {
        free(text);
        return st;
    }
    st = read_peft(m, cfg_path, text, len, st_path, &ws, out);
    owl_weights_free(&ws);
    free(text);
    return st;
}

owl_status lora_read_gguf(const owl_model *m, const char *path, owl_lora **out); /* lora_gguf.c */

owl_status owl_lora_read(const owl_model *m, const char *path, owl_lora **out) {
    *out = NULL;
    if (!m || !path) return owl_errorf(OWL_ERR_ARG, "owl_lora_read: no %s", m ? "path" : "base model");
    owl_status st;
    if (owl_is_dir(path)) {
        char *cfg = path_join(path, "adapter_config.json"), *stp = path_join(path, "adapter_model.safetensors");
        if (!cfg || !stp) st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        else if (!owl_file_exists(cfg))
            st = owl_errorf(OWL_ERR_IO, "%s: no adapter_config.json: not a PEFT adapter directory", path);
        else if (!owl_file_exists(stp))
            st = owl_errorf(OWL_ERR_IO, "%s: no adapter_model.safetensors (owl does not read adapter_model.bin)", path);
        else
            st = read_peft_files(m, cfg, stp, out);
        free(cfg);
        free(stp);
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) return owl_errorf(OWL_ERR_IO, "%s: cannot open the adapter", path);
        char magic[4] = {0};
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return lora_read_gguf(m, path, out);
        char *d = dir_of(path), *cfg = d ? path_join(d, "adapter_config.json") : NULL;
        if (!cfg) st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        else if (!owl_file_exists(cfg))
            st = owl_errorf(OWL_ERR_FORMAT, "%s: neither a GGUF adapter nor a safetensors file with an "
                            "adapter_config.json beside it", path);
        else
            st = read_peft_files(m, cfg, path, out);
        free(d);
        free(cfg);
    }
    return st;
}
