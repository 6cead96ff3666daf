/* Pre-tokenizer: splitting a stretch of text into pieces with regexes or
 * literals (Split, ByteLevel's regex, Digits, Metaspace's split) under the
 * five split behaviours, plus ByteLevel's prefix space and Metaspace's
 * replacement. */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

/* ---- piece lists ---- */

static owl_status pieces_grow(owl_pieces *p, size_t bytes) {
    if (p->blen + bytes > p->bcap) {
        size_t cap = p->bcap ? p->bcap : 256;
        while (cap < p->blen + bytes) cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        p->buf = nb;
        p->bcap = cap;
    }
    return OWL_OK;
}

owl_status owl_pieces_add(owl_pieces *p, const char *s, size_t len) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        size_t *no = realloc(p->off, cap * sizeof *no);
        if (no) p->off = no;
        size_t *nl = realloc(p->len, cap * sizeof *nl);
        if (nl) p->len = nl;
        if (!no || !nl) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        p->cap = cap;
    }
    owl_status st = pieces_grow(p, len);
    if (st) return st;
    if (len) memcpy(p->buf + p->blen, s, len);
    p->off[p->n] = p->blen;
    p->len[p->n] = len;
    p->blen += len;
    p->n++;
    return OWL_OK;
}

owl_status owl_pieces_append(owl_pieces *p, const char *s, size_t len) {
    owl_status st = pieces_grow(p, len);
    if (st) return st;
    if (len) memcpy(p->buf + p->blen, s, len);
    p->blen += len;
    p->len[p->n - 1] += len;
    return OWL_OK;
}

void owl_pieces_clear(owl_pieces *p) {
    p->n = 0;
    p->blen = 0;
}

void owl_pieces_free(owl_pieces *p) {
    free(p->buf);
    free(p->off);
    free(p->len);
    memset(p, 0, sizeof *p);
}

/* ---- regexes ---- */

const char owl_regex_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *const re_gpt2[] = {owl_regex_gpt2, NULL};
static const char *const re_llama3[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_qwen2[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
    /* (CR and LF as characters, as the published tokenizer.json has them) */
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL};

/* digits one by one, then GPT-2's */
static const char *const re_digits_gpt2[] = {"\\p{N}", owl_regex_gpt2, NULL};
/* OpenAI o200k_base (GPT-4o) */
static const char *const re_o200k[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};

static const struct {
    const char *name;
    const char *const *re;
} pre_table[] = {
    {"gpt-2", re_gpt2},        {"default", re_gpt2},         {"gpt2", re_gpt2},
    {"llama-bpe", re_llama3},  {"llama3", re_llama3},        {"llama-v3", re_llama3},
    {"smaug-bpe", re_llama3},  {"qwen2", re_qwen2},          {"deepseek-v3", re_deepseek3},
    {"starcoder", re_digits_gpt2}, {"refact", re_digits_gpt2}, {"smollm", re_digits_gpt2},
    {"gpt-4o", re_o200k},
};

const char *const *owl_pre_regexes(const char *name, size_t len, bool *individual_digits) {
    *individual_digits = false;
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++)
        if (strlen(pre_table[i].name) == len && memcmp(pre_table[i].name, name, len) == 0) return pre_table[i].re;
    return NULL;
}

const char *owl_pre_name_of(const char *const *patterns, int n) {
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++) {
        int k = 0;
        while (pre_table[i].re[k] && k < n && strcmp(pre_table[i].re[k], patterns[k]) == 0) k++;
        if (k == n && !pre_table[i].re[k]) return pre_table[i].name;
    }
    return NULL;
}

owl_status owl_regex_compile(const char *pattern, size_t len, const char *what, pcre2_code **out) {
    int err;
    PCRE2_SIZE at;
    *out = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return owl_errorf(OWL_ERR_FORMAT, "%s: invalid regex '%.*s' at offset %zu: %s", what,
                          (int)(len > 80 ? 80 : len), pattern, (size_t)at, (const char *)msg);
    }
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    return OWL_OK;
}

/* ---- splitting ---- */

typedef struct seg {
    size_t s, e;
    bool m;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

static owl_status segs_push(segs *g, size_t s, size_t e, bool m) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        seg *nv = realloc(g->v, cap * sizeof *nv);
        if (!nv) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        g->v = nv;
        g->cap = cap;
    }
    g->v[g->n++] = (seg){s, e, m};
    return OWL_OK;
}

/* Matches of the step in s[0..n) as alternating segments. */
static owl_status find_matches(const owl_pre_step *st, pcre2_match_data *md, const char *s, size_t n, segs *g) {
    g->n = 0;
    size_t prev = 0, at = 0;
    owl_status rc;
    while (at <= n) {
        size_t ms, me;
        if (st->re) {
            int r = pcre2_match(st->re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
            if (r == PCRE2_ERROR_NOMATCH) break;
            if (r < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(r, msg, sizeof msg);
                return owl_errorf(OWL_ERR_ARG, "pre-tokenizer regex failed: %s", (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
            if (ms < at || me < ms || me > n) break;
        } else {
            if (st->lit_len == 0 || n - at < st->lit_len) break;
            const char *f = memmem(s + at, n - at, st->lit, st->lit_len);
            if (!f) break;
            ms = (size_t)(f - s);
            me = ms + st->lit_len;
        }
        if (ms > prev && (rc = segs_push(g, prev, ms, false))) return rc;
        if ((rc = segs_push(g, ms, me, true))) return rc;
        prev = me;
        if (me > ms) {
            at = me;
        } else { /* empty match: step over one character */
            if (ms >= n) break;
            int l = owl_utf8_len((uint8_t)s[ms]);
            at = ms + (l > 0 && (size_t)l <= n - ms ? (size_t)l : 1);
        }
    }
    if (prev < n && (rc = segs_push(g, prev, n, false))) return rc;
    return OWL_OK;
}

/* Applies the behaviour to the segments (in place): result ranges, m unused. */
static void apply_behavior(owl_split_behavior bh, bool invert, segs *g) {
    size_t k = 0;
    bool prev_m = false;
    if (invert)
        for (size_t i = 0; i < g->n; i++) g->v[i].m = !g->v[i].m;
    switch (bh) {
    case OWL_SPLIT_REMOVED:
        for (size_t i = 0; i < g->n; i++)
            if (!g->v[i].m) g->v[k++] = g->v[i];
        break;
    case OWL_SPLIT_ISOLATED:
        k = g->n;
        break;
    case OWL_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < g->n; i++) {
            seg x = g->v[i];
            if (x.m && !prev_m && k > 0) g->v[k - 1].e = x.e;
            else g->v[k++] = x;
            prev_m = x.m;
        }
        break;
    case OWL_SPLIT_MERGED_NEXT:
        /* walk backwards, building the result at the end of the array */
        k = g->n;
        for (size_t i = g->n; i-- > 0;) {
            seg x = g->v[i];
            if (x.m && !prev_m && k < g->n) g->v[k].s = x.s;
            else g->v[--k] = x;
            prev_m = x.m;
        }
        memmove(g->v, g->v + k, (g->n - k) * sizeof *g->v);
        k = g->n - k;
        break;
    case OWL_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < g->n; i++) {
            seg x = g->v[i];
            if (x.m == prev_m && k > 0) g->v[k - 1].e = x.e;
            else g->v[k++] = x;
            prev_m = x.m;
        }
        break;
    }
    g->n = k;
}

owl_status owl_pretokenize(const struct owl_bpe *b, const char *s, size_t n, bool at_start, owl_pieces *out) {
    owl_pieces_clear(out);
    owl_status st = owl_pieces_add(out, s, n);
    if (st || !b) return st;
    owl_pieces tmp = {0};
    segs g = {0};
    for (int k = 0; st == OWL_OK && k < b->n_pre; k++) {
        const owl_pre_step *step = &b->pre[k];
        pcre2_match_data *md = NULL;
        if (step->re && !(md = pcre2_match_data_create_from_pattern(step->re, NULL))) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            break;
        }
        owl_pieces_clear(&tmp);
        for (size_t i = 0; st == OWL_OK && i < out->n; i++) {
            const char *p = out->buf + out->off[i];
            size_t pl = out->len[i];
            if (pl == 0) continue;
            if (step->kind == OWL_PRE_PREFIX) {
                if (p[0] != ' ') {
                    st = owl_pieces_add(&tmp, " ", 1);
                    if (st == OWL_OK) st = owl_pieces_append(&tmp, p, pl);
                } else {
                    st = owl_pieces_add(&tmp, p, pl);
                }
            } else if (step->kind == OWL_PRE_METASPACE) {
                bool pre = step->prepend == OWL_PREPEND_ALWAYS || (step->prepend == OWL_PREPEND_FIRST && at_start && i == 0);
                if (pre && (p[0] == ' ' || (pl >= step->lit_len && memcmp(p, step->lit, step->lit_len) == 0)))
                    pre = false; /* it starts with the replacement already (after ' ' -> replacement) */
                st = owl_pieces_add(&tmp, pre ? step->lit : "", pre ? step->lit_len : 0);
                for (size_t j = 0; st == OWL_OK && j < pl; j++)
                    st = p[j] == ' ' ? owl_pieces_append(&tmp, step->lit, step->lit_len) : owl_pieces_append(&tmp, p + j, 1);
            } else {
                st = find_matches(step, md, p, pl, &g);
                if (st) break;
                apply_behavior(step->behavior, step->invert, &g);
                for (size_t j = 0; st == OWL_OK && j < g.n; j++)
                    if (g.v[j].e > g.v[j].s) st = owl_pieces_add(&tmp, p + g.v[j].s, g.v[j].e - g.v[j].s);
            }
        }
        pcre2_match_data_free(md);
        owl_pieces sw = *out;
        *out = tmp;
        tmp = sw;
    }
    owl_pieces_free(&tmp);
    free(g.v);
    return st;
}
