/* Jinja values with Python semantics: memory, construction, truth, equality,
 * str() / repr() / json.dumps() printing, conversion from JSON. */
#include "chat/jinja.h"

#include <jansson.h>
#include <utf8proc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory ---- */

struct jmem_block {
    jmem_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *jmem_alloc(jmem *m, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (m->limit && (n > m->limit || m->used > m->limit - n)) {
        owl_errorf(OWL_ERR_RANGE, "template: memory limit of %zu bytes reached", m->limit);
        return NULL;
    }
    jmem_block *b = m->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > 65536 - sizeof *b ? n : 65536 - sizeof *b;
        b = malloc(sizeof *b + size);
        if (!b) {
            owl_errorf(OWL_ERR_NOMEM, "template: out of memory (%zu bytes)", n);
            return NULL;
        }
        b->size = size;
        b->used = 0;
        b->next = m->head;
        m->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    m->used += n;
    memset(p, 0, n);
    return p;
}

void *jmem_grow(jmem *m, void *p, size_t old_n, size_t new_n) {
    void *q = jmem_alloc(m, new_n);
    if (q && p && old_n) memcpy(q, p, old_n < new_n ? old_n : new_n);
    return q;
}

void jmem_free(jmem *m) {
    jmem_block *b = m->head;
    while (b) {
        jmem_block *next = b->next;
        free(b);
        b = next;
    }
    m->head = NULL;
    m->used = 0;
}

/* ---- construction ---- */

jval jv_undef(const char *hint) { jval v = {.t = JV_UNDEF}; v.u.hint = hint; return v; }
jval jv_none(void) { jval v = {.t = JV_NONE}; return v; }
jval jv_bool(bool b) { jval v = {.t = JV_BOOL}; v.u.b = b; return v; }
jval jv_int(int64_t i) { jval v = {.t = JV_INT}; v.u.i = i; return v; }
jval jv_float(double f) { jval v = {.t = JV_FLOAT}; v.u.f = f; return v; }
jval jv_list(jlist *l) { jval v = {.t = JV_LIST}; v.u.l = l; return v; }
jval jv_dict(jdict *d) { jval v = {.t = JV_DICT}; v.u.d = d; return v; }

jstr *jstr_new(jmem *m, const char *s, size_t len) {
    if (len > OWL_TEMPLATE_MAX_OUTPUT) {
        owl_errorf(OWL_ERR_RANGE, "template: string of %zu bytes is over the limit of %u", len,
                   OWL_TEMPLATE_MAX_OUTPUT);
        return NULL;
    }
    jstr *r = jmem_alloc(m, sizeof *r + len + 1);
    if (!r) return NULL;
    r->len = len;
    if (len && s) memcpy(r->s, s, len);
    r->s[len] = 0;
    return r;
}

jval jv_str(jmem *m, const char *s, size_t len) {
    jval v = {.t = JV_STR};
    v.u.s = jstr_new(m, s, len);
    if (!v.u.s) v.t = JV_UNDEF;
    return v;
}

jval jv_cstr(jmem *m, const char *s) { return jv_str(m, s, strlen(s)); }

jlist *jlist_new(jmem *m, size_t cap) {
    jlist *l = jmem_alloc(m, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->v = jmem_alloc(m, cap * sizeof *l->v);
        if (!l->v) return NULL;
        l->cap = cap;
    }
    return l;
}

bool jlist_push(jmem *m, jlist *l, jval v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jval *nv = jmem_grow(m, l->v, l->n * sizeof *nv, cap * sizeof *nv);
        if (!nv) return false;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

jdict *jdict_new(jmem *m, size_t cap) {
    jdict *d = jmem_alloc(m, sizeof *d);
    if (!d) return NULL;
    if (cap) {
        d->k = jmem_alloc(m, cap * sizeof *d->k);
        d->v = jmem_alloc(m, cap * sizeof *d->v);
        if (!d->k || !d->v) return NULL;
        d->cap = cap;
    }
    return d;
}

jval *jdict_gets(const jdict *d, const char *key, size_t len) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == len && memcmp(d->k[i].u.s->s, key, len) == 0)
            return &d->v[i];
    return NULL;
}

jval *jdict_get(const jdict *d, jval k) {
    if (k.t == JV_STR) return jdict_gets(d, k.u.s->s, k.u.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], k)) return &d->v[i];
    return NULL;
}

bool jdict_set(jmem *m, jdict *d, jval k, jval v) {
    jval *old = jdict_get(d, k);
    if (old) {
        *old = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jval *nk = jmem_grow(m, d->k, d->n * sizeof *nk, cap * sizeof *nk);
        jval *nv = jmem_grow(m, d->v, d->n * sizeof *nv, cap * sizeof *nv);
        if (!nk || !nv) return false;
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return true;
}

/* ---- truth and equality ---- */

bool jv_truthy(jval v) {
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.tuple == 2 || v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

bool jv_is_num(jval v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

double jv_num(jval v) {
    if (v.t == JV_INT) return (double)v.u.i;
    if (v.t == JV_FLOAT) return v.u.f;
    if (v.t == JV_BOOL) return v.u.b;
    return 0;
}

bool jv_equal(jval a, jval b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_BOOL ? a.u.b : a.u.i, y = b.t == JV_BOOL ? b.u.b : b.u.i;
            return x == y;
        }
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    case JV_LIST:
        if (a.tuple >= 2 || b.tuple >= 2) return a.u.l == b.u.l && a.tuple == b.tuple;
        if (a.tuple != b.tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jval *o = jdict_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o)) return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_LOOP: return a.u.loop == b.u.loop;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_FUNC: return a.u.fn == b.u.fn;
    default: return false;
    }
}

const char *jv_type_name(jval v) {
    static const char *names[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list",
                                  "dict", "Namespace", "LoopContext", "Macro", "function",
                                  "builtin_function_or_method"};
    static const char *seq_names[] = {"list", "tuple", "generator", "dict_keys", "dict_values", "dict_items"};
    if (v.t == JV_LIST && v.tuple < 6) return seq_names[v.tuple];
    if (v.t == JV_STR && v.tuple == 1) return "Markup";
    return v.t < sizeof names / sizeof *names ? names[v.t] : "object";
}

/* ---- byte buffer ---- */

bool jbuf_add(jbuf *b, const char *s, size_t n) {
    size_t limit = b->limit ? b->limit : OWL_TEMPLATE_MAX_OUTPUT;
    if (n > limit || b->n > limit - n) {
        owl_errorf(OWL_ERR_RANGE, "template: output is over the limit of %zu bytes", limit);
        return false;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            owl_errorf(OWL_ERR_NOMEM, "template: out of memory (%zu bytes of output)", cap);
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

bool jbuf_addc(jbuf *b, char c) { return jbuf_add(b, &c, 1); }

bool jbuf_addf(jbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return owl_errorf(OWL_ERR_FORMAT, "template: format overflow"), false;
    return jbuf_add(b, tmp, (size_t)n);
}

void jbuf_free(jbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- UTF-8 on code points ---- */

uint32_t ju_decode(const char *s, size_t n, size_t *adv) {
    const unsigned char *p = (const unsigned char *)s;
    int len = owl_utf8_len(p[0]);
    if (len == 0 || (size_t)len > n) {
        *adv = 1;
        return p[0];
    }
    *adv = (size_t)len;
    if (len == 1) return p[0];
    uint32_t cp = p[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) cp = cp << 6 | (p[i] & 0x3f);
    return cp;
}

size_t ju_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t ju_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
    return c;
}

size_t ju_offset(const char *s, size_t n, size_t cp) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (c == cp) return i;
            c++;
        }
    }
    return n;
}

bool ju_valid(const char *s, size_t n, size_t *bad) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len != 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (p[i + k] & 0xc0) == 0x80;
        if (ok && len > 1) {
            uint32_t cp = c & (0x7f >> len);
            for (size_t k = 1; k < len; k++) cp = cp << 6 | (p[i + k] & 0x3f);
            static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min_cp[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        }
        if (!ok) {
            *bad = i;
            return false;
        }
        i += len;
    }
    return true;
}

bool ju_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* ---- printing ---- */

void jv_float_repr(double f, char out[32]) {
    if (isnan(f)) { strcpy(out, "nan"); return; }
    if (isinf(f)) { strcpy(out, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0) { strcpy(out, signbit(f) ? "-0.0" : "0.0"); return; }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    /* e: [-]d[.ddd]e[+-]xx -> digits and decimal exponent */
    char digits[24];
    int nd = 0, neg = 0;
    const char *q = e;
    if (*q == '-') { neg = 1; q++; }
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = out;
    if (neg) *o++ = '-';
    if (exp10 < -4 || exp10 >= 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return;
    }
    if (exp10 < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -exp10 - 1; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp10; i++) *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > exp10 + 1) {
            memcpy(o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            o += nd - exp10 - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = 0;
}

/* str.isprintable() for one code point: not in the general categories
 * Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (the space itself is printable). The
 * Unicode version of utf8proc may differ from Python's for new characters. */
static bool py_printable(uint32_t c) {
    if (c < 0x7f) return c >= 0x20;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    switch (cat) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static bool write_str_repr(jbuf *b, const jstr *s) {
    bool has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (!jbuf_addc(b, q)) return false;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        uint32_t c = ju_decode(s->s + i, s->len - i, &adv);
        bool ok;
        if (c == (uint32_t)q || c == '\\') {
            char t[2] = {'\\', (char)c};
            ok = jbuf_add(b, t, 2);
        } else if (c == '\n') ok = jbuf_add(b, "\\n", 2);
        else if (c == '\r') ok = jbuf_add(b, "\\r", 2);
        else if (c == '\t') ok = jbuf_add(b, "\\t", 2);
        else if (py_printable(c)) ok = jbuf_add(b, s->s + i, adv);
        else if (c < 0x100) ok = jbuf_addf(b, "\\x%02x", c);
        else if (c < 0x10000) ok = jbuf_addf(b, "\\u%04x", c);
        else ok = jbuf_addf(b, "\\U%08x", c);
        if (!ok) return false;
        i += adv;
    }
    return jbuf_addc(b, q);
}

static bool write_str_repr_c(jbuf *b, const char *s) {
    size_t n = strlen(s);
    jstr *tmp = malloc(sizeof *tmp + n + 1);
    if (!tmp) return false;
    tmp->len = n;
    memcpy(tmp->s, s, n + 1);
    bool ok = write_str_repr(b, tmp);
    free(tmp);
    return ok;
}

static bool write_common(jbuf *b, jval v, bool repr, int level);

static bool write_seq(jbuf *b, jval v, int level) {
    const jlist *l = v.u.l;
    if (v.tuple >= 3) { /* dict_items([...]) */
        const char *name = jv_type_name(v);
        jval inner = v;
        inner.tuple = 0;
        return jbuf_add(b, name, strlen(name)) && jbuf_addc(b, '(') && write_seq(b, inner, level) && jbuf_addc(b, ')');
    }
    if (!jbuf_addc(b, v.tuple ? '(' : '[')) return false;
    for (size_t i = 0; i < l->n; i++) {
        if (i && !jbuf_add(b, ", ", 2)) return false;
        if (!write_common(b, l->v[i], true, level + 1)) return false;
    }
    if (v.tuple && l->n == 1 && !jbuf_addc(b, ',')) return false;
    return jbuf_addc(b, v.tuple ? ')' : ']');
}

static bool write_dict(jbuf *b, const jdict *d, int level) {
    if (!jbuf_addc(b, '{')) return false;
    for (size_t i = 0; i < d->n; i++) {
        if (i && !jbuf_add(b, ", ", 2)) return false;
        if (!write_common(b, d->k[i], true, level + 1) || !jbuf_add(b, ": ", 2) ||
            !write_common(b, d->v[i], true, level + 1))
            return false;
    }
    return jbuf_addc(b, '}');
}

/* level counts containers entered: a list or dict that holds itself (through
   namespace attributes or append) stops here instead of exhausting the stack. */
static bool write_common(jbuf *b, jval v, bool repr, int level) {
    char tmp[32];
    if (level > OWL_TEMPLATE_MAX_NESTING) {
        owl_errorf(OWL_ERR_RANGE, "printing a value nested deeper than %d (does a list or dict contain itself?)",
                   OWL_TEMPLATE_MAX_NESTING);
        return false;
    }
    switch (v.t) {
    case JV_UNDEF: return repr ? jbuf_add(b, "Undefined", 9) : true;
    case JV_NONE: return jbuf_add(b, "None", 4);
    case JV_BOOL: return v.u.b ? jbuf_add(b, "True", 4) : jbuf_add(b, "False", 5);
    case JV_INT: return jbuf_addf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: jv_float_repr(v.u.f, tmp); return jbuf_add(b, tmp, strlen(tmp));
    case JV_STR:
        if (!repr) return jbuf_add(b, v.u.s->s, v.u.s->len);
        if (v.tuple == 1) return jbuf_add(b, "Markup(", 7) && write_str_repr(b, v.u.s) && jbuf_addc(b, ')');
        return write_str_repr(b, v.u.s);
    case JV_LIST:
        if (v.tuple == 2) {
            owl_errorf(OWL_ERR_UNSUPPORTED, "printing a generator (the result of map, select, items, reverse...) is not supported; add |list");
            return false;
        }
        return write_seq(b, v, level);
    case JV_DICT: return write_dict(b, v.u.d, level);
    case JV_NS: return jbuf_add(b, "<Namespace ", 11) && write_dict(b, v.u.d, level) && jbuf_addc(b, '>');
    case JV_LOOP:
        return jbuf_addf(b, "<LoopContext %lld/%lld>", (long long)v.u.loop->index0 + 1,
                         (long long)v.u.loop->length);
    case JV_MACRO: {
        const char *name = v.u.m->node->name;
        return jbuf_add(b, "<Macro ", 7) && write_str_repr_c(b, name) && jbuf_addc(b, '>');
    }
    default:
        owl_errorf(OWL_ERR_UNSUPPORTED, "printing a %s object is not supported", jv_type_name(v));
        return false;
    }
}

bool jv_write_str(jbuf *b, jval v) { return write_common(b, v, false, 0); }
bool jv_write_repr(jbuf *b, jval v) { return write_common(b, v, true, 0); }

bool jv_to_str(jmem *m, jval v, jstr **out) {
    if (v.t == JV_STR) {
        *out = v.u.s;
        return true;
    }
    jbuf b = {0};
    bool ok = jv_write_str(&b, v);
    if (ok) *out = jstr_new(m, b.p ? b.p : "", b.n);
    ok = ok && *out;
    jbuf_free(&b);
    return ok;
}

/* ---- json.dumps ---- */

static bool jdump_string(jbuf *b, const char *s, size_t n, bool ensure_ascii) {
    if (!jbuf_addc(b, '"')) return false;
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[16];
        size_t adv = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        else if (c >= 0x80 && ensure_ascii) {
            uint32_t cp = ju_decode(s + i, n - i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            }
            esc = tmp;
        }
        if (esc) {
            if (!jbuf_add(b, s + i - run, run) || !jbuf_add(b, esc, strlen(esc))) return false;
            run = 0;
            i += adv;
        } else {
            run++;
            i++;
        }
    }
    return jbuf_add(b, s + n - run, run) && jbuf_addc(b, '"');
}

static bool json_indent(jbuf *b, int indent, int level) {
    if (!jbuf_addc(b, '\n')) return false;
    for (int i = 0; i < indent * level; i++)
        if (!jbuf_addc(b, ' ')) return false;
    return true;
}

typedef struct json_opts {
    bool ensure_ascii, sort_keys;
    int indent;
    const char *item_sep, *key_sep;
} json_opts;

static bool json_value(jbuf *b, jval v, const json_opts *o, int level);

static bool json_key(jbuf *b, jval k, const json_opts *o) {
    char tmp[32];
    switch (k.t) {
    case JV_STR: return jdump_string(b, k.u.s->s, k.u.s->len, o->ensure_ascii);
    case JV_INT: snprintf(tmp, sizeof tmp, "\"%lld\"", (long long)k.u.i); return jbuf_add(b, tmp, strlen(tmp));
    case JV_BOOL: return jbuf_add(b, k.u.b ? "\"true\"" : "\"false\"", k.u.b ? 6 : 7);
    case JV_NONE: return jbuf_add(b, "\"null\"", 6);
    case JV_FLOAT: {
        jv_float_repr(k.u.f, tmp);
        return jbuf_addc(b, '"') && jbuf_add(b, tmp, strlen(tmp)) && jbuf_addc(b, '"');
    }
    default:
        owl_errorf(OWL_ERR_FORMAT, "tojson: keys must be str, int, float, bool or None, not %s",
                   jv_type_name(k));
        return false;
    }
}

static int cmp_keys(const jdict *d, size_t a, size_t b) {
    const jstr *x = d->k[a].u.s, *y = d->k[b].u.s;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static bool json_value(jbuf *b, jval v, const json_opts *o, int level) {
    char tmp[32];
    if (level > OWL_TEMPLATE_MAX_NESTING) {
        owl_errorf(OWL_ERR_RANGE, "tojson: nesting deeper than %d", OWL_TEMPLATE_MAX_NESTING);
        return false;
    }
    switch (v.t) {
    case JV_NONE: return jbuf_add(b, "null", 4);
    case JV_BOOL: return v.u.b ? jbuf_add(b, "true", 4) : jbuf_add(b, "false", 5);
    case JV_INT: return jbuf_addf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT:
        if (isnan(v.u.f)) return jbuf_add(b, "NaN", 3);
        if (isinf(v.u.f)) return v.u.f < 0 ? jbuf_add(b, "-Infinity", 9) : jbuf_add(b, "Infinity", 8);
        jv_float_repr(v.u.f, tmp);
        return jbuf_add(b, tmp, strlen(tmp));
    case JV_STR: return jdump_string(b, v.u.s->s, v.u.s->len, o->ensure_ascii);
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (v.tuple >= 2) {
            owl_errorf(OWL_ERR_FORMAT, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
            return false;
        }
        if (l->n == 0) return jbuf_add(b, "[]", 2);
        if (!jbuf_addc(b, '[')) return false;
        for (size_t i = 0; i < l->n; i++) {
            if (i && !jbuf_add(b, o->item_sep, strlen(o->item_sep))) return false;
            if (o->indent >= 0 && !json_indent(b, o->indent, level + 1)) return false;
            if (!json_value(b, l->v[i], o, level + 1)) return false;
        }
        if (o->indent >= 0 && !json_indent(b, o->indent, level)) return false;
        return jbuf_addc(b, ']');
    }
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (d->n == 0) return jbuf_add(b, "{}", 2);
        size_t order_small[64], *order = order_small;
        if (d->n > 64 && !(order = malloc(d->n * sizeof *order))) {
            owl_errorf(OWL_ERR_NOMEM, "tojson: out of memory");
            return false;
        }
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        bool ok = true;
        if (o->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].t != JV_STR) {
                    owl_errorf(OWL_ERR_UNSUPPORTED, "tojson: sort_keys with non-string keys is not supported");
                    ok = false;
                }
            for (size_t i = 1; ok && i < d->n; i++) /* insertion sort: stable */
                for (size_t j = i; j > 0 && cmp_keys(d, order[j - 1], order[j]) > 0; j--) {
                    size_t t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
                }
        }
        ok = ok && jbuf_addc(b, '{');
        for (size_t i = 0; ok && i < d->n; i++) {
            if (i && !jbuf_add(b, o->item_sep, strlen(o->item_sep))) ok = false;
            if (ok && o->indent >= 0 && !json_indent(b, o->indent, level + 1)) ok = false;
            ok = ok && json_key(b, d->k[order[i]], o) && jbuf_add(b, o->key_sep, strlen(o->key_sep)) &&
                 json_value(b, d->v[order[i]], o, level + 1);
        }
        if (ok && o->indent >= 0) ok = json_indent(b, o->indent, level);
        ok = ok && jbuf_addc(b, '}');
        if (order != order_small) free(order);
        return ok;
    }
    default:
        owl_errorf(OWL_ERR_FORMAT, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
        return false;
    }
}

bool jv_write_json(jbuf *b, jval v, bool ensure_ascii, int indent, const char *item_sep,
                   const char *key_sep, bool sort_keys) {
    json_opts o = {ensure_ascii, sort_keys, indent, item_sep, key_sep};
    if (!o.item_sep) o.item_sep = indent >= 0 ? "," : ", ";
    if (!o.key_sep) o.key_sep = ": ";
    return json_value(b, v, &o, 0);
}

/* ---- from JSON ---- */

static bool from_json(jmem *m, json_t *j, jval *out, int depth) {
    if (depth > 1000) {
        owl_errorf(OWL_ERR_RANGE, "template inputs: JSON nested deeper than 1000");
        return false;
    }
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return true;
    case JSON_TRUE: *out = jv_bool(true); return true;
    case JSON_FALSE: *out = jv_bool(false); return true;
    case JSON_INTEGER: *out = jv_int(json_integer_value(j)); return true;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return true;
    case JSON_STRING:
        *out = jv_str(m, json_string_value(j), json_string_length(j));
        return out->t == JV_STR;
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jlist *l = jlist_new(m, n);
        if (!l) return false;
        for (size_t i = 0; i < n; i++)
            if (!from_json(m, json_array_get(j, i), &l->v[l->n++], depth + 1)) return false;
        *out = jv_list(l);
        return true;
    }
    case JSON_OBJECT: {
        jdict *d = jdict_new(m, json_object_size(j));
        if (!d) return false;
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
            jval k = jv_cstr(m, key), v;
            /* jansson has no duplicate keys: append without searching */
            if (k.t != JV_STR || !from_json(m, val, &v, depth + 1)) return false;
            d->k[d->n] = k;
            d->v[d->n++] = v;
        }
        *out = jv_dict(d);
        return true;
    }
    }
    return false;
}

owl_status jv_from_json(jmem *m, const char *json, jval *out) {
    json_error_t err;
    json_t *j = json_loads(json, JSON_ALLOW_NUL, &err);
    if (!j) return owl_errorf(OWL_ERR_FORMAT, "template inputs: JSON line %d column %d: %s", err.line, err.column, err.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return owl_errorf(OWL_ERR_FORMAT, "template inputs: expected a JSON object");
    }
    bool ok = from_json(m, j, out, 0);
    json_decref(j);
    return ok ? OWL_OK : OWL_ERR_FORMAT;
}
