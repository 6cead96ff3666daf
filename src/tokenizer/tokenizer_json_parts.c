/* Parts of tokenizer.json: normalizer, pre-tokenizer and decoder objects,
 * and the typed field getters the loader shares. */
#include "tokenizer/tokenizer_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NEST 16

const char *owl_tj_type(const json_t *v) {
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

owl_status owl_tj_wrong(const char *name, const char *field, const char *want, const json_t *v) {
    return owl_errorf(OWL_ERR_FORMAT, "%s: %s: expected %s, got %s", name, field, want, owl_tj_type(v));
}

/* Optional bool: absent or null gives def. */
owl_status owl_tj_bool(const char *name, const char *field, const json_t *obj, const char *key, bool def, bool *out) {
    const json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v || json_is_null(v)) return OWL_OK;
    if (!json_is_boolean(v)) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", field, key);
        return owl_tj_wrong(name, f, "a boolean", v);
    }
    *out = json_is_true(v);
    return OWL_OK;
}

/* Optional string: absent or null gives NULL. */
owl_status owl_tj_str(const char *name, const char *field, const json_t *obj, const char *key, const char **s,
                          size_t *len) {
    const json_t *v = json_object_get(obj, key);
    *s = NULL;
    *len = 0;
    if (!v || json_is_null(v)) return OWL_OK;
    if (!json_is_string(v)) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", field, key);
        return owl_tj_wrong(name, f, "a string", v);
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return OWL_OK;
}

/* The "pattern" of Split / Replace: {"Regex": ...} or {"String": ...}. */
static owl_status get_pattern(const char *name, const char *field, const json_t *obj, pcre2_code **re, const char **lit,
                              size_t *lit_len) {
    char f[256];
    snprintf(f, sizeof f, "%s.pattern", field);
    const json_t *p = json_object_get(obj, "pattern");
    *re = NULL;
    *lit = NULL;
    *lit_len = 0;
    if (!json_is_object(p)) return owl_tj_wrong(name, f, "an object with Regex or String", p);
    const json_t *r = json_object_get(p, "Regex"), *s = json_object_get(p, "String");
    if (r) {
        char g[300];
        snprintf(g, sizeof g, "%s: %s.Regex", name, f);
        if (!json_is_string(r)) return owl_tj_wrong(name, g + strlen(name) + 2, "a string", r);
        return owl_regex_compile(json_string_value(r), json_string_length(r), g, re);
    }
    if (s) {
        if (!json_is_string(s)) {
            snprintf(f, sizeof f, "%s.pattern.String", field);
            return owl_tj_wrong(name, f, "a string", s);
        }
        *lit = json_string_value(s);
        *lit_len = json_string_length(s);
        return OWL_OK;
    }
    return owl_tj_wrong(name, f, "an object with Regex or String", p);
}

static char *arena_dup(owl_arena *a, const char *s, size_t n) { return owl_arena_strndup(a, s ? s : "", n); }

/* ---- normalizer ---- */

owl_status owl_tj_normalizer(const char *name, const char *field, const json_t *j, struct owl_norm *nm, int depth) {
    if (!j || json_is_null(j)) return OWL_OK;
    if (!json_is_object(j)) return owl_tj_wrong(name, field, "an object", j);
    if (depth > MAX_NEST) return owl_errorf(OWL_ERR_FORMAT, "%s: %s: nested too deeply", name, field);
    const char *type;
    size_t tl;
    owl_status st = owl_tj_str(name, field, j, "type", &type, &tl);
    if (st) return st;
    if (!type) return owl_errorf(OWL_ERR_FORMAT, "%s: %s.type: missing", name, field);
    owl_norm_step step = {0};
    char f[256];
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(j, "normalizers");
        snprintf(f, sizeof f, "%s.normalizers", field);
        if (!json_is_array(list)) return owl_tj_wrong(name, f, "an array", list);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.normalizers[%zu]", field, i);
            if ((st = owl_tj_normalizer(name, f, json_array_get(list, i), nm, depth + 1))) return st;
        }
        return OWL_OK;
    }
    if (!strcmp(type, "NFC")) step.kind = OWL_NORM_NFC;
    else if (!strcmp(type, "NFD")) step.kind = OWL_NORM_NFD;
    else if (!strcmp(type, "NFKC")) step.kind = OWL_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) step.kind = OWL_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) step.kind = OWL_NORM_LOWERCASE;
    else if (!strcmp(type, "Strip")) {
        step.kind = OWL_NORM_STRIP;
        bool l1, r1;
        if ((st = owl_tj_bool(name, field, j, "strip_left", true, &l1)) || (st = owl_tj_bool(name, field, j, "left", l1, &step.left)) ||
            (st = owl_tj_bool(name, field, j, "strip_right", true, &r1)) || (st = owl_tj_bool(name, field, j, "right", r1, &step.right)))
            return st;
    } else if (!strcmp(type, "Prepend")) {
        step.kind = OWL_NORM_PREPEND;
        const char *s;
        size_t l;
        if ((st = owl_tj_str(name, field, j, "prepend", &s, &l))) return st;
        if (!s) return owl_errorf(OWL_ERR_FORMAT, "%s: %s.prepend: missing", name, field);
        if (!(step.str = arena_dup(&nm->arena, s, l))) return OWL_ERR_NOMEM;
        step.str_len = l;
    } else if (!strcmp(type, "Replace")) {
        step.kind = OWL_NORM_REPLACE;
        const char *lit, *c;
        size_t ll, cl;
        if ((st = owl_tj_str(name, field, j, "content", &c, &cl))) return st;
        if (!c) return owl_errorf(OWL_ERR_FORMAT, "%s: %s.content: missing", name, field);
        if ((st = get_pattern(name, field, j, &step.re, &lit, &ll))) return st;
        step.str = arena_dup(&nm->arena, lit, ll);
        step.content = arena_dup(&nm->arena, c, cl);
        if (!step.str || !step.content) {
            if (step.re) pcre2_code_free(step.re);
            return OWL_ERR_NOMEM;
        }
        step.str_len = ll;
        step.content_len = cl;
    } else {
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: %s.type: normalizer '%s' is not supported", name, field, type);
    }
    return owl_norm_add(nm, &step);
}

/* ---- pre-tokenizer ---- */

static owl_status add_regex_step(struct owl_bpe *b, const char *pattern, owl_split_behavior bh, bool invert, const char *what) {
    owl_pre_step step = {.kind = OWL_PRE_SPLIT, .behavior = bh, .invert = invert};
    bool plain = bh == OWL_SPLIT_ISOLATED && !invert; /* (static patterns only come here) */
    if (plain && b->n_pre_patterns < 8) b->pre_patterns[b->n_pre_patterns] = pattern;
    b->n_pre_patterns += plain ? 1 : 9;
    owl_status st = owl_regex_compile(pattern, strlen(pattern), what, &step.re);
    return st ? st : owl_bpe_add_pre(b, &step);
}

static owl_status parse_behavior(const char *name, const char *field, const json_t *j, owl_split_behavior *bh) {
    const char *s;
    size_t l;
    owl_status st = owl_tj_str(name, field, j, "behavior", &s, &l);
    if (st) return st;
    if (!s) return owl_errorf(OWL_ERR_FORMAT, "%s: %s.behavior: missing", name, field);
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *bh = (owl_split_behavior)i;
            return OWL_OK;
        }
    return owl_errorf(OWL_ERR_FORMAT, "%s: %s.behavior: unknown value '%s'", name, field, s);
}

static owl_status parse_prepend_scheme(const char *name, const char *field, const json_t *j, int *out) {
    const char *s;
    size_t l;
    bool aps;
    owl_status st = owl_tj_bool(name, field, j, "add_prefix_space", true, &aps);
    if (st || (st = owl_tj_str(name, field, j, "prepend_scheme", &s, &l))) return st;
    *out = aps ? OWL_PREPEND_ALWAYS : OWL_PREPEND_NEVER;
    if (!s) return OWL_OK;
    if (!strcmp(s, "always")) *out = OWL_PREPEND_ALWAYS;
    else if (!strcmp(s, "first")) *out = OWL_PREPEND_FIRST;
    else if (!strcmp(s, "never")) *out = OWL_PREPEND_NEVER;
    else return owl_errorf(OWL_ERR_FORMAT, "%s: %s.prepend_scheme: unknown value '%s'", name, field, s);
    return OWL_OK;
}

owl_status owl_tj_pre(const char *name, const char *field, const json_t *j, struct owl_bpe *b, int depth) {
    if (!j || json_is_null(j)) return OWL_OK;
    if (!json_is_object(j)) return owl_tj_wrong(name, field, "an object", j);
    if (depth > MAX_NEST) return owl_errorf(OWL_ERR_FORMAT, "%s: %s: nested too deeply", name, field);
    const char *type;
    size_t tl;
    owl_status st = owl_tj_str(name, field, j, "type", &type, &tl);
    if (st) return st;
    if (!type) return owl_errorf(OWL_ERR_FORMAT, "%s: %s.type: missing", name, field);
    char f[256];
    snprintf(f, sizeof f, "%s: %s", name, field);
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(j, "pretokenizers");
        snprintf(f, sizeof f, "%s.pretokenizers", field);
        if (!json_is_array(list)) return owl_tj_wrong(name, f, "an array", list);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.pretokenizers[%zu]", field, i);
            if ((st = owl_tj_pre(name, f, json_array_get(list, i), b, depth + 1))) return st;
        }
        return OWL_OK;
    }
    if (!strcmp(type, "Split")) {
        owl_pre_step step = {.kind = OWL_PRE_SPLIT};
        const char *lit;
        size_t ll;
        if ((st = parse_behavior(name, field, j, &step.behavior)) || (st = owl_tj_bool(name, field, j, "invert", false, &step.invert)))
            return st;
        if ((st = get_pattern(name, field, j, &step.re, &lit, &ll))) return st;
        if (step.re) { /* remember the pattern to name it for GGUF */
            const json_t *rx = json_object_get(json_object_get(j, "pattern"), "Regex");
            if (b->n_pre_patterns < 8 && !step.invert && step.behavior == OWL_SPLIT_ISOLATED &&
                !(b->pre_patterns[b->n_pre_patterns] = arena_dup(&b->arena, json_string_value(rx), json_string_length(rx)))) {
                pcre2_code_free(step.re);
                return OWL_ERR_NOMEM;
            }
            b->n_pre_patterns += step.invert || step.behavior != OWL_SPLIT_ISOLATED ? 9 : 1;
        } else {
            b->n_pre_patterns += 9; /* a literal split: no GGUF name */
            if (!(step.lit = arena_dup(&b->arena, lit, ll))) return OWL_ERR_NOMEM;
            step.lit_len = ll;
        }
        return owl_bpe_add_pre(b, &step);
    }
    if (!strcmp(type, "ByteLevel")) {
        bool aps, use_re;
        if ((st = owl_tj_bool(name, field, j, "add_prefix_space", true, &aps)) || (st = owl_tj_bool(name, field, j, "use_regex", true, &use_re)))
            return st;
        b->byte_level = true;
        if (aps) b->n_pre_patterns += 9; /* a prefix space: no GGUF name */
        if (aps && (st = owl_bpe_add_pre(b, &(owl_pre_step){.kind = OWL_PRE_PREFIX}))) return st;
        if (use_re) return add_regex_step(b, owl_regex_gpt2, OWL_SPLIT_ISOLATED, false, f);
        return OWL_OK;
    }
    if (!strcmp(type, "Digits")) {
        bool ind;
        if ((st = owl_tj_bool(name, field, j, "individual_digits", false, &ind))) return st;
        return add_regex_step(b, "\\p{N}", ind ? OWL_SPLIT_ISOLATED : OWL_SPLIT_CONTIGUOUS, false, f);
    }
    if (!strcmp(type, "Metaspace")) {
        owl_pre_step step = {.kind = OWL_PRE_METASPACE};
        const char *r;
        size_t rl;
        bool split;
        if ((st = owl_tj_str(name, field, j, "replacement", &r, &rl)) || (st = parse_prepend_scheme(name, field, j, &step.prepend)) ||
            (st = owl_tj_bool(name, field, j, "split", true, &split)))
            return st;
        if (!r) r = "\xe2\x96\x81", rl = 3;
        if (rl == 0 || rl >= sizeof b->dec_space)
            return owl_errorf(OWL_ERR_FORMAT, "%s: %s.replacement: must be one character", name, field);
        if (!(step.lit = arena_dup(&b->arena, r, rl))) return OWL_ERR_NOMEM;
        step.lit_len = rl;
        b->n_pre_patterns += 9; /* no GGUF name */
        if ((st = owl_bpe_add_pre(b, &step))) return st;
        if (!b->dec_space_len) {
            memcpy(b->dec_space, r, rl);
            b->dec_space_len = rl;
            if (step.prepend != OWL_PREPEND_NEVER) b->dec_strip = 1;
        }
        if (split) {
            owl_pre_step sp = {.kind = OWL_PRE_SPLIT, .behavior = OWL_SPLIT_MERGED_NEXT, .lit = step.lit, .lit_len = rl};
            return owl_bpe_add_pre(b, &sp);
        }
        return OWL_OK;
    }
    if (!strcmp(type, "Whitespace")) return add_regex_step(b, "\\w+|[^\\w\\s]+", OWL_SPLIT_REMOVED, true, f);
    if (!strcmp(type, "WhitespaceSplit")) return add_regex_step(b, "\\s+", OWL_SPLIT_REMOVED, false, f);
    if (!strcmp(type, "Punctuation")) {
        owl_split_behavior bh = OWL_SPLIT_ISOLATED;
        if (json_object_get(j, "behavior") && (st = parse_behavior(name, field, j, &bh))) return st;
        return add_regex_step(b, "[!-/:-@\\[-`{-~]|\\p{P}", bh, false, f);
    }
    return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: %s.type: pre-tokenizer '%s' is not supported", name, field, type);
}

/* ---- decoder ---- */

owl_status owl_tj_decoder(const char *name, const char *field, const json_t *j, struct owl_bpe *b, int depth) {
    if (!j || json_is_null(j)) return OWL_OK;
    if (!json_is_object(j)) return owl_tj_wrong(name, field, "an object", j);
    if (depth > MAX_NEST) return owl_errorf(OWL_ERR_FORMAT, "%s: %s: nested too deeply", name, field);
    const char *type;
    size_t tl;
    owl_status st = owl_tj_str(name, field, j, "type", &type, &tl);
    if (st || !type) return st;
    char f[256];
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(j, "decoders");
        snprintf(f, sizeof f, "%s.decoders", field);
        if (!json_is_array(list)) return owl_tj_wrong(name, f, "an array", list);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(f, sizeof f, "%s.decoders[%zu]", field, i);
            if ((st = owl_tj_decoder(name, f, json_array_get(list, i), b, depth + 1))) return st;
        }
    } else if (!strcmp(type, "ByteLevel")) {
        b->dec_byte_level = true;
    } else if (!strcmp(type, "ByteFallback")) {
        b->dec_byte_fallback = true;
    } else if (!strcmp(type, "Replace")) {
        const char *c, *lit;
        size_t cl, ll;
        pcre2_code *re;
        if ((st = owl_tj_str(name, field, j, "content", &c, &cl)) || (st = get_pattern(name, field, j, &re, &lit, &ll))) return st;
        if (re) pcre2_code_free(re);
        else if (c && cl == 1 && c[0] == ' ' && ll > 0 && ll < sizeof b->dec_space) {
            memcpy(b->dec_space, lit, ll);
            b->dec_space_len = ll;
        }
    } else if (!strcmp(type, "Strip")) {
        const json_t *s = json_object_get(j, "start");
        if (s && !json_is_integer(s)) {
            snprintf(f, sizeof f, "%s.start", field);
            return owl_tj_wrong(name, f, "an integer", s);
        }
        if (s && json_integer_value(s) > 0 && json_integer_value(s) < 16) b->dec_strip = (int)json_integer_value(s);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r;
        size_t rl;
        int ps;
        if ((st = owl_tj_str(name, field, j, "replacement", &r, &rl)) || (st = parse_prepend_scheme(name, field, j, &ps))) return st;
        if (!r) r = "\xe2\x96\x81", rl = 3;
        if (rl > 0 && rl < sizeof b->dec_space) {
            memcpy(b->dec_space, r, rl);
            b->dec_space_len = rl;
        }
        b->dec_strip = ps != OWL_PREPEND_NEVER;
    }
    return OWL_OK; /* Fuse and others change nothing here */
}

