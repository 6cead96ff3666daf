/* Jinja filters and tests with jinja2's semantics (including which filters
 * give a one-shot iterator rather than a list: map, select, reject,
 * selectattr, rejectattr, unique, items and reverse of a list). */
#include "chat/jinja.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define ITER 2 /* jval.tuple of a list that stands for a Python iterator */

static const char *const filters[] = {
    "trim", "tojson", "length", "count", "upper", "lower", "capitalize", "title", "replace", "join",
    "default", "d", "items", "selectattr", "rejectattr", "select", "reject", "map", "first", "last",
    "string", "list", "int", "float", "abs", "round", "reverse", "sort", "unique", "dictsort", "safe",
    "e", "escape", "indent", "min", "max", "sum", "format", NULL};

static const char *const tests[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable",
    "sequence", "boolean", "true", "false", "equalto", "eq", "==", "ne", "!=", "lt", "<", "lessthan",
    "le", "<=", "gt", ">", "greaterthan", "ge", ">=", "odd", "even", "divisibleby", "in", "callable",
    "lower", "upper", "sameas", "escaped", NULL};

static bool known(const char *const *l, const char *name) {
    for (; *l; l++)
        if (strcmp(*l, name) == 0) return true;
    return false;
}

bool jinja_filter_known(const char *name) { return known(filters, name); }
bool jinja_test_known(const char *name) { return known(tests, name); }

static jval iter_of(jlist *l) {
    jval v = jv_list(l);
    v.tuple = ITER;
    return v;
}

/* Attribute getter of selectattr / map / sort: "a.b.0" looks up each part. */
static bool attr_get(jstate *st, const jnode *at, jval item, const jstr *attr, jval *out) {
    const char *p = attr->s, *end = attr->s + attr->len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++)
            if (*q < '0' || *q > '9') digits = false;
        jval key = digits ? jv_int(strtoll(p, NULL, 10)) : jv_str(st->mem, p, (size_t)(dot - p));
        if (!digits && key.t != JV_STR) return false;
        if (!jinja_getitem(st, at, item, key, &item)) return false;
        p = dot + 1;
    }
    *out = item;
    return true;
}

/* str(v); a Markup stays one (jinja2's soft_str). */
static bool to_str_val(jstate *st, jval v, jval *out) {
    jstr *s;
    if (!jv_to_str(st->mem, v, &s)) return false;
    out->t = JV_STR;
    out->tuple = jv_is_markup(v);
    out->u.s = s;
    return true;
}

static bool lowered(jstate *st, jval v, bool case_sensitive, jval *out) {
    if (case_sensitive || v.t != JV_STR) {
        *out = v;
        return true;
    }
    return jinja_str_case(st->mem, v.u.s, 0, out);
}

/* Stable merge sort of items by keys. */
/* eq_first: keys compare as one-item lists do in Python (equal items,
 * even two undefined values, are equal without an ordering). */
static bool merge_sort(const jnode *at, jval *items, jval *keys, size_t n, bool reverse, bool eq_first, jval *tmp_i,
                       jval *tmp_k) {
    if (n < 2) return true;
    size_t h = n / 2;
    if (!merge_sort(at, items, keys, h, reverse, eq_first, tmp_i, tmp_k) ||
        !merge_sort(at, items + h, keys + h, n - h, reverse, eq_first, tmp_i, tmp_k))
        return false;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c = 0;
        if (!(eq_first && jv_equal(keys[j], keys[i])) && !jinja_compare(at, keys[j], keys[i], false, &c)) return false;
        bool take_right = reverse ? c > 0 : c < 0;
        if (take_right) { tmp_i[k] = items[j]; tmp_k[k++] = keys[j++]; }
        else { tmp_i[k] = items[i]; tmp_k[k++] = keys[i++]; }
    }
    while (i < h) { tmp_i[k] = items[i]; tmp_k[k++] = keys[i++]; }
    while (j < n) { tmp_i[k] = items[j]; tmp_k[k++] = keys[j++]; }
    memcpy(items, tmp_i, n * sizeof *items);
    memcpy(keys, tmp_k, n * sizeof *keys);
    return true;
}

static bool sorted(jstate *st, const jnode *at, jlist *src, jval *keys, bool reverse, bool eq_first, jlist **out) {
    size_t n = src->n;
    jlist *l = jlist_new(st->mem, n);
    jval *ti = jmem_alloc(st->mem, (n + 1) * sizeof *ti), *tk = jmem_alloc(st->mem, (n + 1) * sizeof *tk);
    if (!l || !ti || !tk) return false;
    if (n) memcpy(l->v, src->v, n * sizeof *l->v);
    l->n = n;
    if (!merge_sort(at, l->v, keys, n, reverse, eq_first, ti, tk)) return false;
    *out = l;
    return true;
}

bool jinja_escape(jmem *m, jval v, jval *out) {
    if (jv_is_markup(v)) {
        *out = v;
        return true;
    }
    jstr *s;
    if (!jv_to_str(m, v, &s)) return false;
    jbuf b = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < s->len; i++) {
        switch (s->s[i]) {
        case '&': ok = jbuf_add(&b, "&amp;", 5); break;
        case '<': ok = jbuf_add(&b, "&lt;", 4); break;
        case '>': ok = jbuf_add(&b, "&gt;", 4); break;
        case '"': ok = jbuf_add(&b, "&#34;", 5); break;
        case '\'': ok = jbuf_add(&b, "&#39;", 5); break;
        default: ok = jbuf_addc(&b, s->s[i]);
        }
    }
    if (ok) *out = jv_str(m, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    out->tuple = 1;
    return ok && out->t == JV_STR;
}

/* Python str.splitlines() boundaries. */
static size_t line_break(const char *s, size_t n, size_t i, size_t *brk_len) {
    size_t adv;
    uint32_t c = ju_decode(s + i, n - i, &adv);
    if (c == '\r' && i + 1 < n && s[i + 1] == '\n') { *brk_len = 2; return 1; }
    if (c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 ||
        c == 0x2028 || c == 0x2029) {
        *brk_len = adv;
        return 1;
    }
    *brk_len = adv;
    return 0;
}

static bool do_indent(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    static const char *const p[] = {"width", "first", "blank"};
    jval defs[3] = {jv_int(4), jv_bool(false), jv_bool(false)}, x[3];
    if (!jinja_bind(at, "indent", a, p, 3, 0, defs, x)) return false;
    jstr *s, *ind;
    /* jinja2's indent appends "\n" to its argument: only strings work */
    if (v.t != JV_STR) return jerr(at, "indent: unsupported operand type(s) for +=: '%s' and 'str'", jv_type_name(v));
    s = v.u.s;
    if (x[0].t == JV_STR) ind = x[0].u.s;
    else if (x[0].t == JV_INT && x[0].u.i >= 0 && x[0].u.i <= 1000) {
        ind = jstr_new(st->mem, NULL, (size_t)x[0].u.i);
        if (!ind) return false;
        memset(ind->s, ' ', ind->len);
    } else return jerr(at, "indent: width must be a string or a small non-negative integer");
    /* lines of s + "\n" */
    jlist *lines = jlist_new(st->mem, 8);
    if (!lines) return false;
    jbuf tmp = {0};
    if (!jbuf_add(&tmp, s->s, s->len) || !jbuf_addc(&tmp, '\n')) { jbuf_free(&tmp); return false; }
    size_t start = 0;
    for (size_t i = 0; i < tmp.n;) {
        size_t bl;
        if (line_break(tmp.p, tmp.n, i, &bl)) {
            jval ln = jv_str(st->mem, tmp.p + start, i - start);
            if (ln.t != JV_STR || !jlist_push(st->mem, lines, ln)) { jbuf_free(&tmp); return false; }
            start = i + bl;
        }
        i += bl;
    }
    if (start < tmp.n) {
        jval ln = jv_str(st->mem, tmp.p + start, tmp.n - start);
        if (ln.t != JV_STR || !jlist_push(st->mem, lines, ln)) { jbuf_free(&tmp); return false; }
    }
    jbuf_free(&tmp);
    jbuf b = {0};
    bool ok = true, blank = jv_truthy(x[2]);
    if (jv_truthy(x[1])) ok = jbuf_add(&b, ind->s, ind->len);
    for (size_t i = 0; ok && i < lines->n; i++) {
        const jstr *ln = lines->v[i].u.s;
        if (i) ok = jbuf_addc(&b, '\n');
        if (ok && i && (blank || ln->len)) ok = jbuf_add(&b, ind->s, ind->len);
        ok = ok && jbuf_add(&b, ln->s, ln->len);
    }
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    out->tuple = jv_is_markup(v);
    return ok && out->t == JV_STR;
}

static bool do_tojson(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    static const char *const p[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    jval defs[4] = {jv_bool(false), jv_none(), jv_none(), jv_bool(false)}, x[4];
    if (!jinja_bind(at, "tojson", a, p, 4, 0, defs, x)) return false;
    int indent = -1;
    if (x[1].t == JV_INT) {
        if (x[1].u.i > 100000) return jerr(at, "tojson: indent %lld is too large", (long long)x[1].u.i);
        indent = x[1].u.i < 0 ? 0 : (int)x[1].u.i;
    }
    else if (x[1].t != JV_NONE && !(x[1].t == JV_UNDEF && v.t != JV_LIST && v.t != JV_DICT))
        return jerr(at, "tojson: indent must be an integer");
    const char *isep = NULL, *ksep = NULL;
    if (x[2].t == JV_LIST && x[2].u.l->n == 2 && x[2].u.l->v[0].t == JV_STR && x[2].u.l->v[1].t == JV_STR) {
        isep = x[2].u.l->v[0].u.s->s;
        ksep = x[2].u.l->v[1].u.s->s;
    } else if (x[2].t != JV_NONE) return jerr(at, "tojson: separators must be a pair of strings");
    jbuf b = {0};
    bool ok = jv_write_json(&b, v, jv_truthy(x[0]), indent, isep, ksep, jv_truthy(x[3]));
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    return ok && out->t == JV_STR;
}

/* select / reject / selectattr / rejectattr */
static bool do_select(jstate *st, const jnode *at, jval v, const jargs *a, bool attr, bool want, jval *out) {
    jlist *items;
    if (!jv_truthy(v)) { /* jinja2 looks at nothing (not even the test name) for a falsy input */
        *out = iter_of(jlist_new(st->mem, 0));
        return out->u.l != NULL;
    }
    if (!jinja_iter(st, at, v, &items)) return false;
    if (items->n == 0) { /* the test is looked up for the first item only */
        *out = iter_of(jlist_new(st->mem, 0));
        return out->u.l != NULL;
    }
    size_t k = 0;
    const jstr *attrname = NULL;
    if (attr) {
        if (a->npos < 1 || a->pos[0].t != JV_STR) return jerr(at, "selectattr/rejectattr need an attribute name");
        attrname = a->pos[0].u.s;
        k = 1;
    }
    const char *test = NULL;
    if (a->npos > k) {
        if (a->pos[k].t != JV_STR) return jerr(at, "select: the test name must be a string");
        test = a->pos[k].u.s->s;
        if (!jinja_test_known(test) || strlen(test) != a->pos[k].u.s->len)
            return jerr(at, "unknown or unsupported test '%s'", test);
        k++;
    }
    jargs ta = {a->pos ? a->pos + k : NULL, a->npos - k, a->kwn, a->kwv, a->nkw};
    jlist *l = jlist_new(st->mem, items->n);
    if (!l) return false;
    for (size_t i = 0; i < items->n; i++) {
        jval x = items->v[i];
        if (attrname && !attr_get(st, at, x, attrname, &x)) return false;
        bool r;
        if (test) {
            if (!jinja_test(st, at, test, x, &ta, &r)) return false;
        } else {
            r = jv_truthy(x);
        }
        if (r == want) l->v[l->n++] = items->v[i];
    }
    *out = iter_of(l);
    return true;
}

static bool do_map(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    jlist *items;
    if (!jv_truthy(v)) {
        *out = iter_of(jlist_new(st->mem, 0));
        return out->u.l != NULL;
    }
    if (!jinja_iter(st, at, v, &items)) return false;
    if (items->n == 0) {
        *out = iter_of(jlist_new(st->mem, 0));
        return out->u.l != NULL;
    }
    jlist *l = jlist_new(st->mem, items->n);
    if (!l) return false;
    const jstr *attr = NULL;
    jval attr_v = jv_undef(NULL), def = jv_undef(NULL);
    bool has_def = false, has_attr = false;
    for (size_t k = 0; k < a->nkw; k++) {
        if (strcmp(a->kwn[k], "attribute") == 0) {
            has_attr = true;
            attr_v = a->kwv[k];
            if (attr_v.t == JV_STR) attr = attr_v.u.s;
        }
        else if (strcmp(a->kwn[k], "default") == 0) { def = a->kwv[k]; has_def = true; }
        else if (a->npos == 0) return jerr(at, "map: unexpected keyword argument '%s'", a->kwn[k]);
    }
    if (has_attr) {
        if (a->npos) return jerr(at, "map: attribute= with positional arguments");
        for (size_t i = 0; i < items->n; i++) {
            jval x;
            if (attr ? !attr_get(st, at, items->v[i], attr, &x) : !jinja_getitem(st, at, items->v[i], attr_v, &x))
                return false;
            if (x.t == JV_UNDEF && has_def) x = def;
            l->v[l->n++] = x;
        }
        *out = iter_of(l);
        return true;
    }
    if (a->npos < 1 || a->pos[0].t != JV_STR) return jerr(at, "map: expected attribute= or a filter name");
    const char *f = a->pos[0].u.s->s;
    if (!jinja_filter_known(f) || strlen(f) != a->pos[0].u.s->len) return jerr(at, "unknown or unsupported filter '%s'", f);
    jargs fa = {a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw};
    for (size_t i = 0; i < items->n; i++)
        if (!jinja_filter(st, at, f, items->v[i], &fa, &l->v[l->n++])) return false;
    *out = iter_of(l);
    return true;
}

static bool do_sort(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    static const char *const p[] = {"reverse", "case_sensitive", "attribute"};
    jval defs[3] = {jv_bool(false), jv_bool(false), jv_none()}, x[3];
    if (!jinja_bind(at, "sort", a, p, 3, 0, defs, x)) return false;
    jlist *items;
    if (!jinja_iter(st, at, v, &items)) return false;
    jval *keys = jmem_alloc(st->mem, (items->n + 1) * sizeof *keys);
    if (!keys) return false;
    for (size_t i = 0; i < items->n; i++) {
        jval k = items->v[i];
        if (x[2].t == JV_STR && !attr_get(st, at, k, x[2].u.s, &k)) return false;
        if (!lowered(st, k, jv_truthy(x[1]), &keys[i])) return false;
    }
    jlist *l;
    if (!sorted(st, at, items, keys, jv_truthy(x[0]), true, &l)) return false;
    *out = jv_list(l);
    return true;
}

static bool do_dictsort(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    static const char *const p[] = {"case_sensitive", "by", "reverse"};
    jval defs[3] = {jv_bool(false), jv_none(), jv_bool(false)}, x[3];
    if (!jinja_bind(at, "dictsort", a, p, 3, 0, defs, x)) return false;
    if (v.t != JV_DICT) return jerr(at, "dictsort: expected a dict, got %s", jv_type_name(v));
    bool by_value = false;
    if (x[1].t == JV_STR) {
        if (strcmp(x[1].u.s->s, "value") == 0) by_value = true;
        else if (strcmp(x[1].u.s->s, "key") != 0) return jerr(at, "dictsort: You can only sort by either \"key\" or \"value\"");
    }
    const jdict *d = v.u.d;
    jlist *pairs = jlist_new(st->mem, d->n);
    jval *keys = jmem_alloc(st->mem, (d->n + 1) * sizeof *keys);
    if (!pairs || !keys) return false;
    for (size_t i = 0; i < d->n; i++) {
        jlist *pr = jlist_new(st->mem, 2);
        if (!pr) return false;
        pr->v[0] = d->k[i];
        pr->v[1] = d->v[i];
        pr->n = 2;
        pairs->v[i] = jv_list(pr);
        pairs->v[i].tuple = 1;
        if (!lowered(st, by_value ? d->v[i] : d->k[i], jv_truthy(x[0]), &keys[i])) return false;
    }
    pairs->n = d->n;
    jlist *l;
    if (!sorted(st, at, pairs, keys, jv_truthy(x[2]), false, &l)) return false;
    *out = jv_list(l);
    return true;
}

/* Python-compatible hash: equal values (1 == 1.0 == True) hash alike. */
static uint64_t value_hash(jval v) {
    uint64_t h = 1469598103934665603ull;
    switch (v.t) {
    case JV_STR:
        for (size_t i = 0; i < v.u.s->len; i++) h = (h ^ (unsigned char)v.u.s->s[i]) * 1099511628211ull;
        return h;
    case JV_BOOL: case JV_INT: case JV_FLOAT: {
        double d = jv_num(v);
        if (v.t != JV_FLOAT) return (uint64_t)(v.t == JV_BOOL ? v.u.b : v.u.i) * 0x9e3779b97f4a7c15ull;
        if (d == floor(d) && fabs(d) < 9.2e18) return (uint64_t)(int64_t)d * 0x9e3779b97f4a7c15ull;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return bits * 0x9e3779b97f4a7c15ull;
    }
    case JV_LIST:
        for (size_t i = 0; i < v.u.l->n; i++) h = (h ^ value_hash(v.u.l->v[i])) * 1099511628211ull;
        return h;
    default:
        return (uint64_t)v.t;
    }
}

static bool do_unique(jstate *st, const jnode *at, jval v, const jargs *a, jval *out) {
    static const char *const p[] = {"case_sensitive", "attribute"};
    jval defs[2] = {jv_bool(false), jv_none()}, x[2];
    if (!jinja_bind(at, "unique", a, p, 2, 0, defs, x)) return false;
    jlist *items;
    if (!jinja_iter(st, at, v, &items)) return false;
    size_t cap = 16;
    while (cap < 2 * items->n) cap *= 2;
    jlist *l = jlist_new(st->mem, items->n);
    jval *table = jmem_alloc(st->mem, cap * sizeof *table); /* open addressing */
    bool *used = jmem_alloc(st->mem, cap);
    if (!l || !table || !used) return false;
    for (size_t i = 0; i < items->n; i++) {
        jval k = items->v[i];
        if (x[1].t == JV_STR && !attr_get(st, at, k, x[1].u.s, &k)) return false;
        if (!lowered(st, k, jv_truthy(x[0]), &k)) return false;
        if (k.t == JV_DICT || k.t == JV_NS || (k.t == JV_LIST && k.tuple != 1))
            return jerr(at, "unique: unhashable type: '%s'", jv_type_name(k));
        bool dup = false;
        size_t slot = (size_t)value_hash(k) & (cap - 1);
        while (used[slot] && !dup) {
            dup = jv_equal(table[slot], k);
            slot = (slot + 1) & (cap - 1);
        }
        if (dup) continue;
        table[slot] = k;
        used[slot] = true;
        l->v[l->n++] = items->v[i];
    }
    *out = iter_of(l);
    return true;
}

static bool do_minmax(jstate *st, const jnode *at, jval v, const jargs *a, bool max, jval *out) {
    static const char *const p[] = {"case_sensitive", "attribute"};
    jval defs[2] = {jv_bool(false), jv_none()}, x[2];
    if (!jinja_bind(at, max ? "max" : "min", a, p, 2, 0, defs, x)) return false;
    jlist *items;
    if (!jinja_iter(st, at, v, &items)) return false;
    if (items->n == 0) {
        *out = jv_undef("no items in an empty sequence");
        return true;
    }
    size_t best = 0;
    jval bk = jv_none();
    for (size_t i = 0; i < items->n; i++) {
        jval k = items->v[i];
        if (x[1].t == JV_STR && !attr_get(st, at, k, x[1].u.s, &k)) return false;
        if (!lowered(st, k, jv_truthy(x[0]), &k)) return false;
        int c = 0;
        if (i && !jinja_compare(at, k, bk, false, &c)) return false;
        if (i == 0 || (max ? c > 0 : c < 0)) {
            best = i;
            bk = k;
        }
    }
    *out = items->v[best];
    return true;
}

static bool parse_py_int(const jstr *s, int64_t *out) {
    const char *p = s->s, *e = s->s + s->len;
    while (p < e && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) p++;
    while (e > p && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r'))) e--;
    if (p == e || e - p > 30) return false;
    char buf[32];
    memcpy(buf, p, (size_t)(e - p));
    buf[e - p] = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end || buf[0] == ' ') return false;
    *out = v;
    return true;
}

static bool parse_py_float(const jstr *s, double *out) {
    const char *p = s->s, *e = s->s + s->len;
    while (p < e && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) p++;
    while (e > p && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r'))) e--;
    if (p == e || e - p > 60) return false;
    char buf[64];
    memcpy(buf, p, (size_t)(e - p));
    buf[e - p] = 0;
    if (strchr(buf, 'x') || strchr(buf, 'X') || strchr(buf, 'p') || strchr(buf, 'P')) return false;
    char *end;
    double v = strtod(buf, &end);
    if (*end) return false;
    *out = v;
    return true;
}

static bool filter_now(jstate *st, const jnode *at, const char *name, jval v, const jargs *a, jval *out);

/* In jinja2 these filters are generators: nothing runs until the result
 * is iterated. A failure becomes an iterator that fails when iterated. */
static const char *const lazy_filters[] = {"map", "select", "reject", "selectattr", "rejectattr", "unique", "items", NULL};

bool jinja_filter(jstate *st, const jnode *at, const char *name, jval v, const jargs *a, jval *out) {
    if (!jinja_filter_known(name)) return jerr(at, "unknown or unsupported filter '%s'", name);
    if (!known(lazy_filters, name)) return filter_now(st, at, name, v, a, out);
    if (filter_now(st, at, name, v, a, out)) return true;
    jlist *l = jlist_new(st->mem, 0);
    if (!l) return false;
    const char *e = owl_last_error();
    jstr *msg = jstr_new(st->mem, e, strlen(e));
    if (!msg) return false;
    l->poison = msg->s;
    *out = iter_of(l);
    jinja_reset_error(); /* the error is kept for later; none is current */
    return true;
}

static bool filter_now(jstate *st, const jnode *at, const char *name, jval v, const jargs *a, jval *out) {
    jval x[4];
    if (!jinja_work(st, at, v.t == JV_STR ? v.u.s->len : v.t == JV_LIST ? v.u.l->n : v.t == JV_DICT ? v.u.d->n : 1))
        return false;
    jstr *s;
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        static const char *const p[] = {"default_value", "boolean"};
        jval defs[2] = {jv_str(st->mem, "", 0), jv_bool(false)};
        if (!jinja_bind(at, name, a, p, 2, 0, defs, x)) return false;
        *out = v.t == JV_UNDEF || (jv_truthy(x[1]) && !jv_truthy(v)) ? x[0] : v;
        return true;
    }
    if (!strcmp(name, "safe") || !strcmp(name, "string") || !strcmp(name, "upper") || !strcmp(name, "lower") ||
        !strcmp(name, "capitalize") || !strcmp(name, "title") || !strcmp(name, "e") || !strcmp(name, "escape")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        if (name[0] == 'e') return jinja_escape(st->mem, v, out);
        if (!strcmp(name, "string")) return to_str_val(st, v, out);
        if (!strcmp(name, "safe")) {
            if (!to_str_val(st, v, out)) return false;
            out->tuple = 1;
            return true;
        }
        if (!jv_to_str(st->mem, v, &s)) return false;
        int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 'c' ? 2 : 4;
        if (!jinja_str_case(st->mem, s, mode, out)) return false;
        out->tuple = jv_is_markup(v);
        return true;
    }
    if (!strcmp(name, "trim")) {
        static const char *const p[] = {"chars"};
        jval defs[1] = {jv_none()};
        if (!jinja_bind(at, name, a, p, 1, 0, defs, x) || !jv_to_str(st->mem, v, &s)) return false;
        if (!jinja_str_strip(st->mem, s, x[0], 3, out)) return false;
        out->tuple = jv_is_markup(v);
        return true;
    }
    if (!strcmp(name, "replace")) {
        static const char *const p[] = {"old", "new", "count"};
        jval defs[1] = {jv_none()};
        if (!jinja_bind(at, name, a, p, 3, 2, defs, x) || !jv_to_str(st->mem, v, &s)) return false;
        jstr *o, *n;
        if (!jv_to_str(st->mem, x[0], &o) || !jv_to_str(st->mem, x[1], &n)) return false;
        if (x[2].t != JV_NONE && x[2].t != JV_INT && x[2].t != JV_BOOL)
            return jerr(at, "replace: '%s' object cannot be interpreted as an integer", jv_type_name(x[2]));
        int64_t count = x[2].t == JV_INT ? x[2].u.i : x[2].t == JV_BOOL ? x[2].u.b : -1;
        return jinja_str_replace(st, at, s, o, n, count, out);
    }
    if (!strcmp(name, "tojson")) return do_tojson(st, at, v, a, out);
    if (!strcmp(name, "format")) { /* value % (kwargs or args) */
        if (a->npos && a->nkw) return jerr(at, "format: can't handle positional and keyword arguments at the same time");
        jval args;
        if (a->nkw) {
            jdict *d = jdict_new(st->mem, a->nkw);
            if (!d) return false;
            for (size_t k = 0; k < a->nkw; k++) {
                jval key = jv_cstr(st->mem, a->kwn[k]);
                if (key.t != JV_STR || !jdict_set(st->mem, d, key, a->kwv[k])) return false;
            }
            args = jv_dict(d);
        } else {
            jlist *l = jlist_new(st->mem, a->npos);
            if (!l) return false;
            for (size_t k = 0; k < a->npos; k++) l->v[l->n++] = a->pos[k];
            args = jv_list(l);
            args.tuple = 1;
        }
        if (!jv_to_str(st->mem, v, &s)) return false;
        return jinja_printf(st, at, s, jv_is_markup(v), args, out);
    }
    if (!strcmp(name, "indent")) return do_indent(st, at, v, a, out);
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        switch (v.t) {
        case JV_UNDEF: *out = jv_int(0); return true;
        case JV_STR: *out = jv_int((int64_t)ju_count(v.u.s->s, v.u.s->len)); return true;
        case JV_LIST:
            if (v.tuple == ITER) return jerr(at, "object of type 'generator' has no len()");
            if (v.u.l->poison) return jerr_again(v.u.l->poison);
            *out = jv_int((int64_t)v.u.l->n);
            return true;
        case JV_DICT: *out = jv_int((int64_t)v.u.d->n); return true;
        default: return jerr(at, "object of type '%s' has no len()", jv_type_name(v));
        }
    }
    if (!strcmp(name, "join")) {
        static const char *const p[] = {"d", "attribute"};
        jval defs[2] = {jv_str(st->mem, "", 0), jv_none()};
        if (!jinja_bind(at, name, a, p, 2, 0, defs, x)) return false;
        jlist *items;
        jstr *sep;
        if (!jinja_iter(st, at, v, &items) || !jv_to_str(st->mem, x[0], &sep)) return false;
        jbuf b = {0};
        bool ok = true;
        for (size_t i = 0; ok && i < items->n; i++) {
            jval it = items->v[i];
            if (x[1].t == JV_STR) ok = attr_get(st, at, it, x[1].u.s, &it);
            ok = ok && (i == 0 || jbuf_add(&b, sep->s, sep->len)) && jv_write_str(&b, it);
        }
        if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
        jbuf_free(&b);
        return ok && out->t == JV_STR;
    }
    if (!strcmp(name, "items")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        if (v.t == JV_UNDEF) { *out = iter_of(jlist_new(st->mem, 0)); return out->u.l != NULL; }
        if (v.t != JV_DICT) return jerr(at, "items: Can only get item pairs from a mapping.");
        jlist *l = jlist_new(st->mem, v.u.d->n);
        if (!l) return false;
        for (size_t i = 0; i < v.u.d->n; i++) {
            jlist *pr = jlist_new(st->mem, 2);
            if (!pr) return false;
            pr->v[0] = v.u.d->k[i];
            pr->v[1] = v.u.d->v[i];
            pr->n = 2;
            l->v[l->n] = jv_list(pr);
            l->v[l->n++].tuple = 1;
        }
        *out = iter_of(l);
        return true;
    }
    if (!strcmp(name, "selectattr")) return do_select(st, at, v, a, true, true, out);
    if (!strcmp(name, "rejectattr")) return do_select(st, at, v, a, true, false, out);
    if (!strcmp(name, "select")) return do_select(st, at, v, a, false, true, out);
    if (!strcmp(name, "reject")) return do_select(st, at, v, a, false, false, out);
    if (!strcmp(name, "map")) return do_map(st, at, v, a, out);
    if (!strcmp(name, "sort")) return do_sort(st, at, v, a, out);
    if (!strcmp(name, "dictsort")) return do_dictsort(st, at, v, a, out);
    if (!strcmp(name, "unique")) return do_unique(st, at, v, a, out);
    if (!strcmp(name, "min") || !strcmp(name, "max")) return do_minmax(st, at, v, a, name[1] == 'a', out);
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        bool last = name[0] == 'l';
        if (last && v.t == JV_LIST && v.tuple == ITER) return jerr(at, "last: a generator is not reversible");
        jlist *items;
        if (!jinja_iter(st, at, v, &items)) return false;
        if (items->n == 0) *out = jv_undef(last ? "No last item, sequence was empty." : "No first item, sequence was empty.");
        else *out = items->v[last ? items->n - 1 : 0];
        return true;
    }
    if (!strcmp(name, "list")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        jlist *items;
        if (!jinja_iter(st, at, v, &items)) return false;
        jlist *l = jlist_new(st->mem, items->n);
        if (!l) return false;
        if (items->n) memcpy(l->v, items->v, items->n * sizeof *l->v);
        l->n = items->n;
        *out = jv_list(l);
        return true;
    }
    if (!strcmp(name, "reverse")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        if (v.t == JV_STR) {
            jlist *chars;
            if (!jinja_iter(st, at, v, &chars)) return false;
            jbuf b = {0};
            bool ok = true;
            for (size_t i = chars->n; ok && i-- > 0;) ok = jbuf_add(&b, chars->v[i].u.s->s, chars->v[i].u.s->len);
            if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
            jbuf_free(&b);
            return ok && out->t == JV_STR;
        }
        jlist *items;
        if (!jinja_iter(st, at, v, &items)) return false;
        jlist *l = jlist_new(st->mem, items->n);
        if (!l) return false;
        for (size_t i = items->n; i-- > 0;) l->v[l->n++] = items->v[i];
        /* reversed(list) is an iterator; a generator becomes a list */
        *out = v.t == JV_LIST && v.tuple == ITER ? jv_list(l) : iter_of(l);
        return true;
    }
    if ((!strcmp(name, "int") || !strcmp(name, "float") || !strcmp(name, "round") || !strcmp(name, "abs")) &&
        v.t == JV_UNDEF)
        return jerr(at, "%s", v.u.hint ? v.u.hint : "value is undefined");
    if (!strcmp(name, "int")) {
        static const char *const p[] = {"default", "base"};
        jval defs[2] = {jv_int(0), jv_int(10)};
        if (!jinja_bind(at, name, a, p, 2, 0, defs, x)) return false;
        if (x[1].t != JV_INT || x[1].u.i != 10) return jerr(at, "int: only base 10 is supported");
        int64_t i;
        double f;
        if (v.t == JV_INT) *out = v;
        else if (v.t == JV_BOOL) *out = jv_int(v.u.b);
        else if (v.t == JV_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18) *out = jv_int((int64_t)v.u.f);
        else if (v.t == JV_STR && parse_py_int(v.u.s, &i)) *out = jv_int(i);
        else if (v.t == JV_STR && parse_py_float(v.u.s, &f) && isfinite(f) && fabs(f) < 9.2e18) *out = jv_int((int64_t)f);
        else *out = x[0];
        return true;
    }
    if (!strcmp(name, "float")) {
        static const char *const p[] = {"default"};
        jval defs[1] = {jv_float(0.0)};
        if (!jinja_bind(at, name, a, p, 1, 0, defs, x)) return false;
        double f;
        if (jv_is_num(v)) *out = jv_float(jv_num(v));
        else if (v.t == JV_STR && parse_py_float(v.u.s, &f)) *out = jv_float(f);
        else *out = x[0];
        return true;
    }
    if (!strcmp(name, "abs")) {
        if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
        if (v.t == JV_BOOL) v = jv_int(v.u.b);
        if (v.t == JV_INT) {
            if (v.u.i == INT64_MIN) return jerr(at, "integer overflow");
            *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        } else if (v.t == JV_FLOAT) *out = jv_float(fabs(v.u.f));
        else return jerr(at, "bad operand type for abs(): '%s'", jv_type_name(v));
        return true;
    }
    if (!strcmp(name, "round")) {
        static const char *const p[] = {"precision", "method"};
        jval defs[2] = {jv_int(0), jv_cstr(st->mem, "common")};
        if (!jinja_bind(at, name, a, p, 2, 0, defs, x)) return false;
        if (x[0].t != JV_INT || x[0].u.i < 0 || x[0].u.i > 30) return jerr(at, "round: precision must be 0..30");
        if (x[1].t != JV_STR) return jerr(at, "round: method must be a string");
        int prec = (int)x[0].u.i;
        const char *m = x[1].u.s->s;
        if (strcmp(m, "common") && strcmp(m, "ceil") && strcmp(m, "floor"))
            return jerr(at, "round: method must be common, ceil or floor");
        if (v.t == JV_BOOL) v = jv_int(v.u.b);
        if (v.t == JV_INT && m[0] == 'c' && m[1] == 'o') { *out = v; return true; }
        if (!jv_is_num(v)) return jerr(at, "round: type %s doesn't define __round__ method", jv_type_name(v));
        double f = jv_num(v);
        if (m[0] == 'c' && m[1] == 'o') {
            if (!isfinite(f)) { *out = jv_float(f); return true; }
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", prec, f);
            *out = jv_float(strtod(buf, NULL));
        } else {
            double mul = pow(10, prec);
            *out = jv_float((m[0] == 'c' ? ceil(f * mul) : floor(f * mul)) / mul);
        }
        return true;
    }
    if (!strcmp(name, "sum")) {
        static const char *const p[] = {"attribute", "start"};
        jval defs[2] = {jv_none(), jv_int(0)};
        if (!jinja_bind(at, name, a, p, 2, 0, defs, x)) return false;
        jlist *items;
        if (!jinja_iter(st, at, v, &items)) return false;
        jval acc = x[1];
        for (size_t i = 0; i < items->n; i++) {
            jval it = items->v[i];
            if (x[0].t == JV_STR && !attr_get(st, at, it, x[0].u.s, &it)) return false;
            if (!jv_is_num(it) || !jv_is_num(acc)) return jerr(at, "sum: only numbers are supported");
            if (acc.t != JV_FLOAT && it.t != JV_FLOAT) {
                int64_t r;
                if (__builtin_add_overflow(acc.t == JV_BOOL ? acc.u.b : acc.u.i, it.t == JV_BOOL ? it.u.b : it.u.i, &r))
                    return jerr(at, "integer overflow");
                acc = jv_int(r);
            } else {
                acc = jv_float(jv_num(acc) + jv_num(it));
            }
        }
        *out = acc;
        return true;
    }
    return jerr(at, "unknown or unsupported filter '%s'", name);
}
