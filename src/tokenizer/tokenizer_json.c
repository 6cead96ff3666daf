/* Hugging Face tokenizer.json (model BPE) + tokenizer_config.json: the
 * vocabulary and added tokens, merges ("a b" or ["a","b"]), post-processor
 * BOS/EOS rules and the config's overrides and chat template. Every field is
 * type-checked; errors name the file and the field. */
#include "tokenizer/tokenizer_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids above this, or above 4 * entries + 1024, are refused. */
#define MAX_ID (1 << 24)

/* Builds tok->vocab from (piece, id) entries; holes become unused empty
 * pieces. The added tokens' pieces must agree with the vocabulary. */
typedef struct entry {
    const char *s;
    size_t len;
    int32_t id;
} entry;

static owl_status check_id(const char *name, const char *field, const json_t *v, size_t n_entries, int32_t *id) {
    if (!json_is_integer(v)) return owl_tj_wrong(name, field, "an integer id", v);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x >= MAX_ID || (uint64_t)x >= 4 * (uint64_t)n_entries + 1024)
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s: id %lld is out of range", name, field, (long long)x);
    *id = (int32_t)x;
    return OWL_OK;
}

static owl_status build_vocab(const char *name, owl_tokenizer *tok, const entry *ents, size_t n_ents, const entry *added,
                              const bool *added_special, size_t n_added) {
    int32_t n = 0;
    for (size_t i = 0; i < n_ents; i++)
        if (ents[i].id + 1 > n) n = ents[i].id + 1;
    for (size_t i = 0; i < n_added; i++)
        if (added[i].id + 1 > n) n = added[i].id + 1;
    if (n == 0) return owl_errorf(OWL_ERR_FORMAT, "%s: model.vocab: empty", name);
    owl_str *pieces = calloc((size_t)n, sizeof *pieces);
    int32_t *types = malloc(sizeof *types * (size_t)n);
    uint8_t *set = calloc((size_t)n, 1);
    owl_status st = OWL_OK;
    if (!pieces || !types || !set) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) types[i] = OWL_TOKTYPE_UNUSED;
    for (size_t i = 0; i < n_ents; i++) {
        int32_t id = ents[i].id;
        if (set[id]) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: model.vocab: id %d is given to both '%.*s' and '%.*s'", name, id,
                            (int)(pieces[id].len > 40 ? 40 : pieces[id].len), pieces[id].ptr,
                            (int)(ents[i].len > 40 ? 40 : ents[i].len), ents[i].s);
            goto done;
        }
        set[id] = 1;
        pieces[id] = (owl_str){ents[i].s, ents[i].len};
        types[id] = OWL_TOKTYPE_NORMAL;
    }
    for (size_t i = 0; i < n_added; i++) {
        int32_t id = added[i].id;
        if (set[id] && (pieces[id].len != added[i].len || memcmp(pieces[id].ptr, added[i].s, added[i].len) != 0)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: added_tokens[%zu]: id %d is '%.*s' elsewhere but '%.*s' here", name, i, id,
                            (int)(pieces[id].len > 40 ? 40 : pieces[id].len), pieces[id].ptr,
                            (int)(added[i].len > 40 ? 40 : added[i].len), added[i].s);
            goto done;
        }
        set[id] = 1;
        pieces[id] = (owl_str){added[i].s, added[i].len};
        types[id] = added_special[i] ? OWL_TOKTYPE_CONTROL : OWL_TOKTYPE_USER_DEFINED;
    }
    st = owl_vocab_init(&tok->vocab, n, pieces, NULL, types);
    if (st) owl_error_prefix(st, "%s", name);
done:
    free(pieces);
    free(types);
    free(set);
    return st;
}

static owl_status set_added(owl_tokenizer *tok, const json_t *arr, size_t n) {
    struct owl_bpe *b = tok->bpe;
    if (n == 0) return owl_bpe_index_added(tok);
    b->added = calloc(n, sizeof *b->added);
    if (!b->added) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(arr, i);
        owl_added *x = &b->added[b->n_added++];
        x->id = (int32_t)json_integer_value(json_object_get(a, "id"));
        x->text = tok->vocab.pieces[x->id].ptr;
        x->len = tok->vocab.pieces[x->id].len;
        x->special = json_is_true(json_object_get(a, "special"));
        x->lstrip = json_is_true(json_object_get(a, "lstrip"));
        x->rstrip = json_is_true(json_object_get(a, "rstrip"));
        x->single_word = json_is_true(json_object_get(a, "single_word"));
        x->normalized = json_is_true(json_object_get(a, "normalized"));
    }
    return owl_bpe_index_added(tok);
}

/* "<s>" or {"content": "<s>", ...} -> id; -1 when absent or unknown. */
static owl_status config_token(const char *name, const owl_tokenizer *tok, const json_t *cfg, const char *key, int32_t *id) {
    const json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return OWL_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) {
        char f[64];
        snprintf(f, sizeof f, "tokenizer_config.json: %s", key);
        return owl_tj_wrong(name, f, "a string or an object with content", v);
    }
    int32_t t = owl_vocab_find(&tok->vocab, json_string_value(v), json_string_length(v));
    if (t < 0) owl_log(OWL_LOG_WARN, "%s: tokenizer_config.json: %s '%s' is not in the vocabulary", name, key, json_string_value(v));
    else *id = t;
    return OWL_OK;
}

static owl_status parse_config(const char *name, owl_tokenizer *tok, const char *cfg_text, size_t cfg_len) {
    json_error_t err;
    json_t *cfg = json_loadb(cfg_text, cfg_len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err); /* model_max_length: 1e30 */
    if (!cfg) return owl_errorf(OWL_ERR_FORMAT, "%s: tokenizer_config.json is not valid JSON (line %d, column %d): %s", name, err.line, err.column, err.text);
    owl_status st = OWL_OK;
    if (!json_is_object(cfg)) {
        st = owl_tj_wrong(name, "tokenizer_config.json", "an object", cfg);
        goto done;
    }
    const char *f = "tokenizer_config.json";
    if ((st = owl_tj_bool(name, f, cfg, "add_bos_token", tok->add_bos, &tok->add_bos)) ||
        (st = owl_tj_bool(name, f, cfg, "add_eos_token", tok->add_eos, &tok->add_eos)))
        goto done;
    if ((st = config_token(name, tok, cfg, "bos_token", &tok->bos)) || (st = config_token(name, tok, cfg, "eos_token", &tok->eos)) ||
        (st = config_token(name, tok, cfg, "unk_token", &tok->unk)) || (st = config_token(name, tok, cfg, "pad_token", &tok->pad)))
        goto done;
    const json_t *ct = json_object_get(cfg, "chat_template");
    const char *tmpl = NULL;
    size_t tl = 0;
    if (json_is_string(ct)) {
        tmpl = json_string_value(ct);
        tl = json_string_length(ct);
    } else if (json_is_array(ct)) { /* [{"name": ..., "template": ...}]: "default", else the first */
        for (size_t i = 0; i < json_array_size(ct); i++) {
            const json_t *e = json_array_get(ct, i), *t = json_object_get(e, "template");
            if (!json_is_string(t)) continue;
            const json_t *nm = json_object_get(e, "name");
            if (!tmpl || (json_is_string(nm) && !strcmp(json_string_value(nm), "default"))) {
                tmpl = json_string_value(t);
                tl = json_string_length(t);
            }
        }
    } else if (ct && !json_is_null(ct)) {
        st = owl_tj_wrong(name, "tokenizer_config.json: chat_template", "a string or an array", ct);
        goto done;
    }
    if (tmpl && !(tok->bpe->chat_template = owl_arena_strndup(&tok->bpe->arena, tmpl, tl))) st = OWL_ERR_NOMEM;
done:
    json_decref(cfg);
    return st;
}

/* TemplateProcessing / RobertaProcessing / BertProcessing: which special
 * tokens a single sequence gets before and after it. */
static owl_status parse_post(const char *name, const char *field, const json_t *j, owl_tokenizer *tok, int depth) {
    if (!j || json_is_null(j)) return OWL_OK;
    if (!json_is_object(j)) return owl_tj_wrong(name, field, "an object", j);
    if (depth > 8) return owl_errorf(OWL_ERR_FORMAT, "%s: %s: nested too deeply", name, field);
    const char *type;
    size_t tl;
    owl_status st = owl_tj_str(name, field, j, "type", &type, &tl);
    if (st || !type) return st;
    char f[256];
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(j, "processors");
        if (!json_is_array(list)) return owl_tj_wrong(name, "post_processor.processors", "an array", list);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.processors[%zu]", field, i);
            if ((st = parse_post(name, f, json_array_get(list, i), tok, depth + 1))) return st;
        }
        return OWL_OK;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const json_t *cls = json_object_get(j, "cls"), *sep = json_object_get(j, "sep");
        if (!json_is_array(cls) || !json_is_integer(json_array_get(cls, 1)) || !json_is_array(sep) ||
            !json_is_integer(json_array_get(sep, 1)))
            return owl_tj_wrong(name, "post_processor.cls/sep", "[\"token\", id] pairs", cls);
        json_int_t c = json_integer_value(json_array_get(cls, 1)), s = json_integer_value(json_array_get(sep, 1));
        if (c < 0 || c >= tok->vocab.n || s < 0 || s >= tok->vocab.n)
            return owl_errorf(OWL_ERR_FORMAT, "%s: post_processor.cls/sep: id out of range", name);
        tok->bos = (int32_t)c;
        tok->add_bos = true;
        if (tok->eos < 0) tok->eos = (int32_t)s;
        tok->add_eos = true;
        return OWL_OK;
    }
    if (strcmp(type, "TemplateProcessing")) return OWL_OK; /* ByteLevel and others add nothing */
    const json_t *single = json_object_get(j, "single"), *sp = json_object_get(j, "special_tokens");
    if (!json_is_array(single)) return owl_tj_wrong(name, "post_processor.single", "an array", single);
    bool seen_seq = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *e = json_array_get(single, i);
        if (json_object_get(e, "Sequence")) {
            seen_seq = true;
            continue;
        }
        const json_t *s = json_object_get(e, "SpecialToken");
        const json_t *idn = json_object_get(s, "id");
        if (!json_is_string(idn)) {
            snprintf(f, sizeof f, "post_processor.single[%zu]", i);
            return owl_tj_wrong(name, f, "a SpecialToken or Sequence object", e);
        }
        const json_t *ids = json_object_get(json_object_get(sp, json_string_value(idn)), "ids");
        const json_t *id0 = json_array_get(ids, 0);
        int32_t id = -1;
        if (json_is_integer(id0) && json_integer_value(id0) >= 0 && json_integer_value(id0) < tok->vocab.n)
            id = (int32_t)json_integer_value(id0);
        else
            id = owl_vocab_find(&tok->vocab, json_string_value(idn), json_string_length(idn));
        if (id < 0)
            return owl_errorf(OWL_ERR_FORMAT, "%s: post_processor.special_tokens: '%s' has no valid id", name, json_string_value(idn));
        if (!seen_seq && !tok->add_bos) {
            tok->bos = id;
            tok->add_bos = true;
        } else if (seen_seq && !tok->add_eos) {
            if (tok->eos < 0) tok->eos = id;
            tok->add_eos = true;
        }
    }
    return OWL_OK;
}

static owl_status load_model(const char *name, const json_t *root, owl_tokenizer *tok) {
    const json_t *model = json_object_get(root, "model");
    owl_status st;
    if (!json_is_object(model)) return owl_tj_wrong(name, "model", "an object", model);
    const char *type, *s;
    size_t tl, sl;
    if ((st = owl_tj_str(name, "model", model, "type", &type, &tl))) return st;
    if (type && strcmp(type, "BPE"))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: model.type: '%s' is not supported (only BPE)", name, type);
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab)) return owl_tj_wrong(name, "model.vocab", "an object", vocab);
    if (!json_is_array(merges)) return owl_tj_wrong(name, "model.merges", "an array", merges);
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added)) return owl_tj_wrong(name, "added_tokens", "an array", added);
    size_t n_vocab = json_object_size(vocab), n_added = json_array_size(added), n_merges = json_array_size(merges);
    entry *ents = malloc(sizeof *ents * (n_vocab + 1)), *aents = malloc(sizeof *aents * (n_added + 1));
    bool *aspecial = malloc(n_added + 1);
    owl_str *ml = malloc(sizeof *ml * (n_merges + 1)), *mr = malloc(sizeof *mr * (n_merges + 1));
    char f[128];
    if (!ents || !aents || !aspecial || !ml || !mr) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, val) {
        if ((st = check_id(name, "model.vocab", val, n_vocab + n_added, &ents[k].id))) { /* again, naming the key */
            snprintf(f, sizeof f, "model.vocab['%.40s']", key);
            st = check_id(name, f, val, n_vocab + n_added, &ents[k].id);
            goto done;
        }
        ents[k].s = key;
        ents[k].len = key_len;
        k++;
    }
    for (size_t i = 0; i < n_added; i++) {
        const json_t *a = json_array_get(added, i);
        snprintf(f, sizeof f, "added_tokens[%zu]", i);
        if (!json_is_object(a)) {
            st = owl_tj_wrong(name, f, "an object", a);
            goto done;
        }
        const char *c;
        size_t cl;
        bool b0;
        if ((st = owl_tj_str(name, f, a, "content", &c, &cl))) goto done;
        if (!c) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: %s.content: missing", name, f);
            goto done;
        }
        if ((st = owl_tj_bool(name, f, a, "special", false, &aspecial[i])) || (st = owl_tj_bool(name, f, a, "lstrip", false, &b0)) ||
            (st = owl_tj_bool(name, f, a, "rstrip", false, &b0)) || (st = owl_tj_bool(name, f, a, "single_word", false, &b0)) ||
            (st = owl_tj_bool(name, f, a, "normalized", false, &b0)))
            goto done;
        snprintf(f, sizeof f, "added_tokens[%zu].id", i);
        if ((st = check_id(name, f, json_object_get(a, "id"), n_vocab + n_added, &aents[i].id))) goto done;
        aents[i].s = c;
        aents[i].len = cl;
    }
    if ((st = build_vocab(name, tok, ents, k, aents, aspecial, n_added))) goto done;
    /* model options */
    struct owl_bpe *b = tok->bpe;
    if ((st = owl_tj_bool(name, "model", model, "byte_fallback", false, &b->byte_fallback)) ||
        (st = owl_tj_bool(name, "model", model, "ignore_merges", false, &b->ignore_merges)) ||
        (st = owl_tj_bool(name, "model", model, "fuse_unk", false, &b->fuse_unk)))
        goto done;
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        if ((st = owl_tj_str(name, "model", model, affixes[i], &s, &sl))) goto done;
        if (sl) {
            st = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: model.%s: '%s' is not supported", name, affixes[i], s);
            goto done;
        }
    }
    if ((st = owl_tj_str(name, "model", model, "unk_token", &s, &sl))) goto done;
    if (s && (tok->unk = owl_vocab_find(&tok->vocab, s, sl)) >= 0) tok->vocab.types[tok->unk] = OWL_TOKTYPE_UNKNOWN;
    /* merges */
    for (size_t i = 0; i < n_merges; i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            const char *ms = json_string_value(m);
            size_t ml_ = json_string_length(m);
            const char *sp = memchr(ms, ' ', ml_);
            if (!sp || memchr(sp + 1, ' ', ml_ - (size_t)(sp + 1 - ms))) {
                snprintf(f, sizeof f, "model.merges[%zu]", i);
                st = owl_errorf(OWL_ERR_FORMAT, "%s: %s: '%.60s' is not two tokens separated by one space", name, f, ms);
                goto done;
            }
            ml[i] = (owl_str){ms, (size_t)(sp - ms)};
            mr[i] = (owl_str){sp + 1, ml_ - (size_t)(sp + 1 - ms)};
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            const json_t *a = json_array_get(m, 0), *c = json_array_get(m, 1);
            ml[i] = (owl_str){json_string_value(a), json_string_length(a)};
            mr[i] = (owl_str){json_string_value(c), json_string_length(c)};
        } else {
            snprintf(f, sizeof f, "model.merges[%zu]", i);
            st = owl_tj_wrong(name, f, "a string \"a b\" or a pair [\"a\", \"b\"]", m);
            goto done;
        }
    }
    snprintf(f, sizeof f, "%s: model.merges", name);
    if ((st = owl_bpe_set_merges(tok, n_merges, ml, mr, f))) goto done;
    st = set_added(tok, added, n_added);
done:
    free(ents);
    free(aents);
    free(aspecial);
    free(ml);
    free(mr);
    return st;
}

owl_status owl_tokenizer_json_load_mem(const char *name, const char *json, size_t len, const char *config, size_t config_len,
                                       owl_tokenizer **out) {
    *out = NULL;
    if (!name) name = "tokenizer.json";
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &err);
    if (!root) return owl_errorf(OWL_ERR_FORMAT, "%s: not valid JSON (line %d, column %d): %s", name, err.line, err.column, err.text);
    owl_tokenizer *tok = owl_calloc(1, sizeof *tok);
    owl_status st = OWL_OK;
    if (!tok || !(tok->bpe = owl_bpe_new()) || !(tok->norm = owl_calloc(1, sizeof *tok->norm))) {
        st = OWL_ERR_NOMEM;
        goto fail;
    }
    tok->kind = OWL_TOK_BPE;
    tok->bos = tok->eos = tok->unk = tok->pad = -1;
    for (int i = 0; i < 256; i++) tok->byte_tokens[i] = -1;
    if (!json_is_object(root)) {
        st = owl_tj_wrong(name, "top level", "an object", root);
        goto fail;
    }
    struct owl_bpe *b = tok->bpe;
    if ((st = load_model(name, root, tok))) goto fail;
    if ((st = owl_tj_normalizer(name, "normalizer", json_object_get(root, "normalizer"), tok->norm, 0))) goto fail;
    if ((st = owl_tj_pre(name, "pre_tokenizer", json_object_get(root, "pre_tokenizer"), b, 0))) goto fail;
    if ((st = owl_tj_decoder(name, "decoder", json_object_get(root, "decoder"), b, 0))) goto fail;
    if ((st = parse_post(name, "post_processor", json_object_get(root, "post_processor"), tok, 0))) goto fail;
    if (b->byte_level) b->dec_byte_level = true;
    if (b->byte_level && b->n_pre_patterns <= 8) {
        const char *pn = owl_pre_name_of(b->pre_patterns, b->n_pre_patterns);
        if (pn) snprintf(b->pre_name, sizeof b->pre_name, "%s", pn);
    }
    if (b->byte_fallback) b->dec_byte_fallback = true;
    if (!b->byte_level && !b->dec_byte_level && !b->dec_space_len) { /* SentencePiece-style without a decoder */
        memcpy(b->dec_space, "\xe2\x96\x81", 3);
        b->dec_space_len = 3;
    }
    if (config && (st = parse_config(name, tok, config, config_len))) goto fail;
    tok->add_space_prefix = b->dec_strip > 0;
    if ((st = owl_bpe_finish(tok, name))) goto fail;
    json_decref(root);
    *out = tok;
    return OWL_OK;
fail:
    json_decref(root);
    owl_bpe_tokenizer_destroy(tok);
    return st;
}

/* dir + "/" + name, malloc'd. */
static char *join(const char *dir, size_t dl, const char *name) {
    size_t nl = strlen(name);
    char *p = malloc(dl + nl + 2);
    if (!p) return NULL;
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

owl_status owl_tokenizer_json_load(const char *path, owl_tokenizer **out) {
    *out = NULL;
    if (!path) return owl_errorf(OWL_ERR_ARG, "owl_tokenizer_json_load: NULL path");
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    const char *base = slash ? slash + 1 : path;
    owl_status st;
    if (owl_is_dir(path)) { /* a Hugging Face directory: tokenizer.json, else GPT-2's encoder.json + vocab.bpe */
        char *tj = join(path, strlen(path), "tokenizer.json"), *enc = join(path, strlen(path), "encoder.json");
        char *vb = join(path, strlen(path), "vocab.bpe");
        if (!tj || !enc || !vb) st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        else if (owl_file_exists(tj) || !owl_file_exists(enc) || !owl_file_exists(vb)) st = owl_tokenizer_json_load(tj, out);
        else st = owl_tokenizer_gpt2_load(enc, vb, out);
        free(tj);
        free(enc);
        free(vb);
        return st;
    }
    if (!strcmp(base, "encoder.json")) {
        char *vb = join(dir, dl, "vocab.bpe");
        if (!vb) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        if (owl_file_exists(vb)) {
            st = owl_tokenizer_gpt2_load(path, vb, out);
            free(vb);
            return st;
        }
        free(vb);
    }
    char *data = NULL, *cfg = NULL;
    size_t size = 0, cfg_size = 0;
    if ((st = owl_read_file(path, &data, &size))) return st;
    char *cp = join(dir, dl, "tokenizer_config.json");
    if (!cp) {
        free(data);
        return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    }
    if (owl_file_exists(cp) && (st = owl_read_file(cp, &cfg, &cfg_size))) {
        free(cp);
        free(data);
        return st;
    }
    free(cp);
    st = owl_tokenizer_json_load_mem(path, data, size, cfg, cfg_size, out);
    free(data);
    free(cfg);
    if (st == OWL_OK && !(*out)->bpe->chat_template) { /* newer repositories keep it in chat_template.jinja */
        char *jp = join(dir, dl, "chat_template.jinja"), *t = NULL;
        size_t tl = 0;
        if (jp && owl_file_exists(jp) && owl_read_file(jp, &t, &tl) == OWL_OK &&
            !((*out)->bpe->chat_template = owl_arena_strndup(&(*out)->bpe->arena, t, tl)))
            st = OWL_ERR_NOMEM;
        free(t);
        free(jp);
        if (st) {
            owl_bpe_tokenizer_destroy(*out);
            *out = NULL;
        }
    }
    return st;
}
