/* Attribute and item lookup (as jinja2's sandbox does it), Python string,
 * dict and list methods, the loop object and the global functions
 * (range, namespace, dict, raise_exception, strftime_now). */
#include "chat/jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* Python methods that exist but are not implemented here: using one is an
 * error, not an undefined value. */
static const char *const py_str_methods[] = {
    "casefold", "center", "encode", "expandtabs", "format_map", "isalnum", "isalpha", "isascii",
    "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace",
    "istitle", "isupper", "ljust", "maketrans", "partition", "rjust", "rpartition", "splitlines",
    "swapcase", "translate", "zfill", NULL};
static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "upper", "lower",
    "title", "capitalize", "replace", "find", "rfind", "index", "rindex", "count", "format", "join",
    "removeprefix", "removesuffix", NULL};
static const char *const py_dict_methods[] = {"clear", "copy", "fromkeys", "pop", "popitem", "setdefault", "update", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", NULL};
static const char *const py_list_methods[] = {"append", "clear", "copy", "extend", "insert", "pop", "remove", "reverse", "sort", NULL};
static const char *const list_methods[] = {"index", "count", NULL};
static const char *const py_num_attrs[] = {"real", "imag", "conjugate", "bit_length", "bit_count", "to_bytes",
                                           "from_bytes", "as_integer_ratio", "is_integer", "hex", "fromhex",
                                           "numerator", "denominator", NULL};

static bool in_list(const char *const *l, const char *name) {
    for (; *l; l++)
        if (strcmp(*l, name) == 0) return true;
    return false;
}

static bool make_method(jstate *st, const jnode *at, jval self, const char *name, jval *out) {
    jmethod *m = jmem_alloc(st->mem, sizeof *m);
    if (!m) return false;
    (void)at;
    m->self = self;
    m->name = name;
    out->t = JV_METHOD;
    out->tuple = 0;
    out->u.bm = m;
    return true;
}

static jval undef_attr(jstate *st, jval obj, const char *name) {
    const char *tn = jv_type_name(obj);
    char *hint = jmem_alloc(st->mem, strlen(tn) + strlen(name) + 40);
    if (hint) sprintf(hint, "'%s object' has no attribute '%s'", tn, name);
    return jv_undef(hint);
}

bool jinja_getattr(jstate *st, const jnode *at, jval obj, const char *name, jval *out) {
    if (obj.t == JV_UNDEF) return jerr(at, "%s", obj.u.hint ? obj.u.hint : "value is undefined");
    if (name[0] == '_') {
        *out = undef_attr(st, obj, name);
        return true;
    }
    switch (obj.t) {
    case JV_DICT:
        if (in_list(dict_methods, name)) return make_method(st, at, obj, name, out);
        if (in_list(py_dict_methods, name)) return jerr(at, "unsupported method dict.%s", name);
        /* fall through */
    case JV_NS: {
        jval *v = jdict_gets(obj.u.d, name, strlen(name));
        *out = v ? *v : undef_attr(st, obj, name);
        return true;
    }
    case JV_STR:
        if (in_list(str_methods, name)) return make_method(st, at, obj, name, out);
        if (in_list(py_str_methods, name)) return jerr(at, "unsupported method str.%s", name);
        break;
    case JV_LIST:
        if (in_list(list_methods, name)) return make_method(st, at, obj, name, out);
        if (in_list(py_list_methods, name)) return jerr(at, "unsupported method list.%s", name);
        break;
    case JV_INT: case JV_FLOAT: case JV_BOOL:
        if (in_list(py_num_attrs, name)) return jerr(at, "unsupported attribute %s.%s", jv_type_name(obj), name);
        break;
    case JV_LOOP: {
        const jloop *l = obj.u.loop;
        int64_t i = l->index0, n = l->length;
        if (strcmp(name, "index") == 0) *out = jv_int(i + 1);
        else if (strcmp(name, "index0") == 0) *out = jv_int(i);
        else if (strcmp(name, "revindex") == 0) *out = jv_int(n - i);
        else if (strcmp(name, "revindex0") == 0) *out = jv_int(n - i - 1);
        else if (strcmp(name, "first") == 0) *out = jv_bool(i == 0);
        else if (strcmp(name, "last") == 0) *out = jv_bool(i == n - 1);
        else if (strcmp(name, "length") == 0) *out = jv_int(n);
        else if (strcmp(name, "depth") == 0) *out = jv_int(l->depth0 + 1);
        else if (strcmp(name, "depth0") == 0) *out = jv_int(l->depth0);
        else if (strcmp(name, "previtem") == 0)
            *out = i > 0 ? l->items->v[i - 1] : jv_undef("there is no previous item");
        else if (strcmp(name, "nextitem") == 0)
            *out = i + 1 < n ? l->items->v[i + 1] : jv_undef("there is no next item");
        else if (strcmp(name, "cycle") == 0) return make_method(st, at, obj, name, out);
        else if (strcmp(name, "changed") == 0) return jerr(at, "unsupported method loop.changed");
        else *out = undef_attr(st, obj, name);
        return true;
    }
    case JV_MACRO:
        if (!strcmp(name, "name") || !strcmp(name, "arguments") || !strcmp(name, "defaults") ||
            !strcmp(name, "catch_kwargs") || !strcmp(name, "catch_varargs") || !strcmp(name, "caller"))
            return jerr(at, "unsupported attribute '%s' of a macro", name);
        break;
    default:
        break;
    }
    *out = undef_attr(st, obj, name);
    return true;
}

bool jinja_getitem(jstate *st, const jnode *at, jval obj, jval key, jval *out) {
    if (obj.t == JV_UNDEF) return jerr(at, "%s", obj.u.hint ? obj.u.hint : "value is undefined");
    if ((obj.t == JV_DICT || obj.t == JV_NS)) {
        jval *v = jdict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return true;
        }
    } else if (obj.t == JV_LIST && obj.tuple >= 2) {
        *out = jv_undef("the object is not subscriptable");
        return true;
    } else if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_BOOL ? key.u.b : key.u.i;
        int64_t n = obj.t == JV_LIST ? (int64_t)obj.u.l->n : (int64_t)ju_count(obj.u.s->s, obj.u.s->len);
        if (i < 0) i += n;
        if (i < 0 || i >= n) {
            *out = jv_undef(obj.t == JV_LIST ? "list index out of range" : "string index out of range");
            return true;
        }
        if (obj.t == JV_LIST) {
            *out = obj.u.l->v[i];
            return true;
        }
        size_t off = ju_offset(obj.u.s->s, obj.u.s->len, (size_t)i), adv;
        ju_decode(obj.u.s->s + off, obj.u.s->len - off, &adv);
        *out = jv_str(st->mem, obj.u.s->s + off, adv);
        out->tuple = obj.tuple; /* a Markup's characters are Markups */
        return out->t == JV_STR;
    }
    if (key.t == JV_STR) {
        if (obj.t == JV_DICT || obj.t == JV_NS) {
            /* jinja2 falls back to the attribute: d['items'] is the method */
            if (obj.t == JV_DICT && in_list(dict_methods, key.u.s->s)) return make_method(st, at, obj, key.u.s->s, out);
            *out = undef_attr(st, obj, key.u.s->s);
            return true;
        }
        return jinja_getattr(st, at, obj, key.u.s->s, out);
    }
    *out = jv_undef("no such item");
    return true;
}

bool jinja_iter(jstate *st, const jnode *at, jval v, jlist **out) {
    if (!jinja_work(st, at, v.t == JV_STR ? v.u.s->len : v.t == JV_LIST ? v.u.l->n : v.t == JV_DICT ? v.u.d->n : 1))
        return false;
    switch (v.t) {
    case JV_LIST:
        if (v.u.l->poison) return jerr_again(v.u.l->poison);
        *out = v.u.l;
        return true;
    case JV_UNDEF: *out = jlist_new(st->mem, 0); return *out != NULL;
    case JV_DICT: {
        jlist *l = jlist_new(st->mem, v.u.d->n);
        if (!l) return false;
        for (size_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = v.u.d->k[i];
        *out = l;
        return true;
    }
    case JV_STR: {
        const jstr *s = v.u.s;
        jlist *l = jlist_new(st->mem, ju_count(s->s, s->len));
        if (!l) return false;
        for (size_t i = 0; i < s->len;) {
            size_t adv;
            ju_decode(s->s + i, s->len - i, &adv);
            jval c = jv_str(st->mem, s->s + i, adv);
            if (c.t != JV_STR) return false;
            l->v[l->n++] = c;
            i += adv;
        }
        *out = l;
        return true;
    }
    default:
        return jerr(at, "'%s' object is not iterable", jv_type_name(v));
    }
}

bool jinja_bind(const jnode *at, const char *what, const jargs *a, const char *const *params,
                size_t n, size_t nreq, const jval *defs, jval *out) {
    if (a->npos > n) return jerr(at, "%s takes at most %zu argument(s), %zu given", what, n, a->npos);
    bool given[16] = {false};
    if (n > 16) return jerr(at, "internal error: too many parameters");
    for (size_t i = 0; i < a->npos; i++) {
        out[i] = a->pos[i];
        given[i] = true;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t j;
        for (j = 0; j < n; j++)
            if (strcmp(params[j], a->kwn[k]) == 0) break;
        if (j == n) return jerr(at, "%s got an unexpected keyword argument '%s'", what, a->kwn[k]);
        if (given[j]) return jerr(at, "%s got multiple values for argument '%s'", what, a->kwn[k]);
        out[j] = a->kwv[k];
        given[j] = true;
    }
    for (size_t j = 0; j < n; j++) {
        if (given[j]) continue;
        if (j < nreq) return jerr(at, "%s is missing required argument '%s'", what, params[j]);
        out[j] = defs[j - nreq];
    }
    return true;
}

/* ---- string helpers ---- */

static bool is_cased(uint32_t c) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
    return p->category == UTF8PROC_CATEGORY_LU || p->category == UTF8PROC_CATEGORY_LL ||
           p->category == UTF8PROC_CATEGORY_LT;
}

bool jinja_str_case(jmem *m, const jstr *s, int mode, jval *out) {
    jbuf b = {0};
    bool ok = true, prev_cased = false, boundary = true, first = true;
    for (size_t i = 0; ok && i < s->len;) {
        size_t adv;
        uint32_t c = ju_decode(s->s + i, s->len - i, &adv), r = c;
        int op = 0; /* 0 lower, 1 upper, 2 title, 3 keep */
        switch (mode) {
        case 0: op = 0; break;
        case 1: op = 1; break;
        case 2: op = first ? 2 : 0; break;
        case 3: op = prev_cased ? 0 : 2; prev_cased = is_cased(c); break;
        default: {
            bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || ju_isspace(c);
            op = sep ? 3 : boundary ? 1 : 0;
            boundary = sep;
        }
        }
        first = false;
        if (op == 0) r = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        else if (op == 1) r = (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
        else if (op == 2) r = (uint32_t)utf8proc_totitle((utf8proc_int32_t)c);
        char enc[4];
        ok = c == r ? jbuf_add(&b, s->s + i, adv) : jbuf_add(&b, enc, ju_encode(r, enc));
        i += adv;
    }
    if (ok) *out = jv_str(m, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    return ok && out->t == JV_STR;
}

static bool in_chars(uint32_t c, jval chars) {
    if (chars.t != JV_STR) return ju_isspace(c);
    for (size_t i = 0; i < chars.u.s->len;) {
        size_t adv;
        if (ju_decode(chars.u.s->s + i, chars.u.s->len - i, &adv) == c) return true;
        i += adv;
    }
    return false;
}

bool jinja_str_strip(jmem *m, const jstr *s, jval chars, int which, jval *out) {
    size_t a = 0, b = s->len;
    if (which & 1)
        while (a < b) {
            size_t adv;
            uint32_t c = ju_decode(s->s + a, b - a, &adv);
            if (!in_chars(c, chars)) break;
            a += adv;
        }
    if (which & 2)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s->s[k] & 0xc0) == 0x80) k--;
            size_t adv;
            uint32_t c = ju_decode(s->s + k, b - k, &adv);
            if (!in_chars(c, chars)) break;
            b = k;
        }
    *out = jv_str(m, s->s + a, b - a);
    return out->t == JV_STR;
}

bool jinja_str_replace(jstate *st, const jnode *at, const jstr *s, const jstr *old, const jstr *new_,
                       int64_t count, jval *out) {
    jbuf b = {0};
    bool ok = true;
    int64_t done = 0;
    if (old->len == 0) {
        for (size_t i = 0; ok && i <= s->len;) {
            if (count < 0 || done < count) {
                ok = jbuf_add(&b, new_->s, new_->len);
                done++;
            }
            if (i == s->len) break;
            size_t adv;
            ju_decode(s->s + i, s->len - i, &adv);
            ok = ok && jbuf_add(&b, s->s + i, adv);
            i += adv;
        }
    } else {
        size_t i = 0;
        while (ok && i < s->len) {
            const char *hit = (count < 0 || done < count) ? memmem(s->s + i, s->len - i, old->s, old->len) : NULL;
            if (!hit) break;
            size_t k = (size_t)(hit - s->s);
            ok = jbuf_add(&b, s->s + i, k - i) && jbuf_add(&b, new_->s, new_->len);
            i = k + old->len;
            done++;
        }
        ok = ok && jbuf_add(&b, s->s + i, s->len - i);
    }
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    return (ok && out->t == JV_STR) || jerr(at, "%s", owl_last_error());
}

static bool need_str(const jnode *at, const char *what, jval v) {
    if (v.t == JV_STR) return true;
    return jerr(at, "%s: expected a string argument, got %s", what, jv_type_name(v));
}

static bool str_split(jstate *st, const jnode *at, const jstr *s, jval sep, int64_t maxsplit, bool right, jval *out) {
    jlist *l = jlist_new(st->mem, 4);
    if (!l) return false;
    if (sep.t == JV_NONE || sep.t == JV_UNDEF) {
        if (right && maxsplit >= 0) return jerr(at, "str.rsplit() without a separator and with maxsplit is not supported");
        size_t i = 0;
        for (;;) {
            while (i < s->len) {
                size_t adv;
                if (!ju_isspace(ju_decode(s->s + i, s->len - i, &adv))) break;
                i += adv;
            }
            if (i >= s->len) break;
            size_t j = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                /* rest, with trailing whitespace stripped */
                size_t e = s->len;
                while (e > j) {
                    size_t k = e - 1;
                    while (k > j && ((unsigned char)s->s[k] & 0xc0) == 0x80) k--;
                    size_t adv;
                    if (!ju_isspace(ju_decode(s->s + k, e - k, &adv))) break;
                    e = k;
                }
                jval v = jv_str(st->mem, s->s + j, e - j);
                if (v.t != JV_STR || !jlist_push(st->mem, l, v)) return false;
                break;
            }
            while (j < s->len) {
                size_t adv;
                if (ju_isspace(ju_decode(s->s + j, s->len - j, &adv))) break;
                j += adv;
            }
            jval v = jv_str(st->mem, s->s + i, j - i);
            if (v.t != JV_STR || !jlist_push(st->mem, l, v)) return false;
            i = j;
        }
        *out = jv_list(l);
        return true;
    }
    if (!need_str(at, "str.split", sep)) return false;
    const jstr *p = sep.u.s;
    if (p->len == 0) return jerr(at, "str.split: empty separator");
    if (!right || maxsplit < 0) {
        size_t i = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || (int64_t)l->n < maxsplit) ? memmem(s->s + i, s->len - i, p->s, p->len) : NULL;
            size_t k = hit ? (size_t)(hit - s->s) : s->len;
            jval v = jv_str(st->mem, s->s + i, k - i);
            if (v.t != JV_STR || !jlist_push(st->mem, l, v)) return false;
            if (!hit) break;
            i = k + p->len;
        }
    } else {
        /* rsplit with maxsplit: find separators from the right */
        size_t end = s->len;
        int64_t splits = 0;
        jlist *rev = jlist_new(st->mem, 4);
        if (!rev) return false;
        while (splits < maxsplit && end >= p->len) {
            size_t k = end - p->len;
            bool found = false;
            for (;; k--) {
                if (memcmp(s->s + k, p->s, p->len) == 0) { found = true; break; }
                if (k == 0) break;
            }
            if (!found) break;
            jval v = jv_str(st->mem, s->s + k + p->len, end - k - p->len);
            if (v.t != JV_STR || !jlist_push(st->mem, rev, v)) return false;
            end = k;
            splits++;
        }
        jval v = jv_str(st->mem, s->s, end);
        if (v.t != JV_STR || !jlist_push(st->mem, l, v)) return false;
        for (size_t i = rev->n; i-- > 0;)
            if (!jlist_push(st->mem, l, rev->v[i])) return false;
    }
    *out = jv_list(l);
    return true;
}

static bool affix(const jnode *at, const jstr *s, jval arg, bool end, bool *out) {
    jval one = arg;
    size_t n = arg.t == JV_LIST && arg.tuple ? arg.u.l->n : 1;
    *out = false;
    for (size_t i = 0; i < n; i++) {
        if (arg.t == JV_LIST && arg.tuple) one = arg.u.l->v[i];
        if (one.t != JV_STR)
            return jerr(at, "%s first arg must be str or a tuple of str, not %s", end ? "endswith" : "startswith",
                        jv_type_name(one));
        const jstr *p = one.u.s;
        if (p->len <= s->len && memcmp(end ? s->s + s->len - p->len : s->s, p->s, p->len) == 0) *out = true;
    }
    return true;
}

/* Python str.find on code points. */
static int64_t str_find(const jstr *s, const jstr *sub, bool right) {
    const char *hit = NULL;
    if (!right) hit = memmem(s->s, s->len, sub->s, sub->len);
    else
        for (size_t k = s->len - sub->len + 1; sub->len <= s->len && k-- > 0;)
            if (memcmp(s->s + k, sub->s, sub->len) == 0) { hit = s->s + k; break; }
    return hit ? (int64_t)ju_count(s->s, (size_t)(hit - s->s)) : -1;
}

static bool str_format(jstate *st, const jnode *at, const jstr *f, const jargs *a, jval *out) {
    jbuf b = {0};
    size_t auto_i = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < f->len; i++) {
        char c = f->s[i];
        if ((c == '{' || c == '}') && i + 1 < f->len && f->s[i + 1] == c) {
            ok = jbuf_addc(&b, c);
            i++;
            continue;
        }
        if (c == '}') { jbuf_free(&b); return jerr(at, "str.format: single '}' in format string"); }
        if (c != '{') { ok = jbuf_addc(&b, c); continue; }
        size_t e = i + 1;
        while (e < f->len && f->s[e] != '}') e++;
        if (e >= f->len) { jbuf_free(&b); return jerr(at, "str.format: single '{' in format string"); }
        const char *field = f->s + i + 1;
        size_t fl = e - i - 1;
        if (memchr(field, ':', fl) || memchr(field, '!', fl) || memchr(field, '.', fl) || memchr(field, '[', fl)) {
            jbuf_free(&b);
            return jerr(at, "str.format: format specs, conversions and field access are not supported");
        }
        jval v;
        bool found = false;
        if (fl == 0 || (field[0] >= '0' && field[0] <= '9')) {
            size_t idx = fl == 0 ? auto_i++ : (size_t)strtoul(field, NULL, 10);
            if (idx < a->npos) { v = a->pos[idx]; found = true; }
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (strlen(a->kwn[k]) == fl && memcmp(a->kwn[k], field, fl) == 0) { v = a->kwv[k]; found = true; }
        }
        if (!found) { jbuf_free(&b); return jerr(at, "str.format: no argument for field '{%.*s}'", (int)fl, field); }
        ok = jv_write_str(&b, v);
        i = e;
    }
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    return (ok && out->t == JV_STR) || jerr(at, "%s", owl_last_error());
}

static bool str_method(jstate *st, const jnode *at, const jstr *s, const char *name, const jargs *a, jval *out) {
    if (!jinja_work(st, at, s->len + 1)) return false;
    jval v[3];
    char what[64];
    snprintf(what, sizeof what, "str.%s()", name);
    static const char *const p_chars[] = {"chars"};
    jval none = jv_none();
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        if (!jinja_bind(at, what, a, p_chars, 1, 0, &none, v)) return false;
        if (v[0].t != JV_NONE && !need_str(at, what, v[0])) return false;
        return jinja_str_strip(st->mem, s, v[0], name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3, out);
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        static const char *const p[] = {"prefix"};
        if (!jinja_bind(at, what, a, p, 1, 1, NULL, v)) return false;
        bool r;
        if (!affix(at, s, v[0], name[0] == 'e', &r)) return false;
        *out = jv_bool(r);
        return true;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        static const char *const p[] = {"sep", "maxsplit"};
        jval defs[2] = {jv_none(), jv_int(-1)};
        if (!jinja_bind(at, what, a, p, 2, 0, defs, v)) return false;
        if (v[1].t != JV_INT) return jerr(at, "%s: maxsplit must be an integer", what);
        return str_split(st, at, s, v[0], v[1].u.i, name[0] == 'r', out);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") || !strcmp(name, "capitalize")) {
        if (!jinja_bind(at, what, a, NULL, 0, 0, NULL, v)) return false;
        int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 'c' ? 2 : 3;
        return jinja_str_case(st->mem, s, mode, out);
    }
    if (!strcmp(name, "replace")) {
        static const char *const p[] = {"old", "new", "count"};
        jval defs[1] = {jv_int(-1)};
        if (!jinja_bind(at, what, a, p, 3, 2, defs, v)) return false;
        if (!need_str(at, what, v[0]) || !need_str(at, what, v[1])) return false;
        if (v[2].t != JV_INT) return jerr(at, "%s: count must be an integer", what);
        return jinja_str_replace(st, at, s, v[0].u.s, v[1].u.s, v[2].u.i, out);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") || !strcmp(name, "rindex") ||
        !strcmp(name, "count")) {
        static const char *const p[] = {"sub"};
        if (!jinja_bind(at, what, a, p, 1, 1, NULL, v)) return false;
        if (!need_str(at, what, v[0])) return false;
        if (name[0] == 'c') {
            int64_t c = 0;
            const jstr *sub = v[0].u.s;
            if (sub->len == 0) c = (int64_t)ju_count(s->s, s->len) + 1;
            else
                for (size_t i = 0; i + sub->len <= s->len;) {
                    const char *hit = memmem(s->s + i, s->len - i, sub->s, sub->len);
                    if (!hit) break;
                    c++;
                    i = (size_t)(hit - s->s) + sub->len;
                }
            *out = jv_int(c);
            return true;
        }
        int64_t r = str_find(s, v[0].u.s, name[0] == 'r');
        if (r < 0 && strstr(name, "index")) return jerr(at, "%s: substring not found", what);
        *out = jv_int(r);
        return true;
    }
    if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        static const char *const p[] = {"affix"};
        if (!jinja_bind(at, what, a, p, 1, 1, NULL, v) || !need_str(at, what, v[0])) return false;
        bool suffix = name[6] == 's';
        bool r;
        if (!affix(at, s, v[0], suffix, &r)) return false;
        size_t cut = r ? v[0].u.s->len : 0;
        *out = jv_str(st->mem, suffix ? s->s : s->s + cut, s->len - cut);
        return out->t == JV_STR;
    }
    if (!strcmp(name, "format")) return str_format(st, at, s, a, out);
    if (!strcmp(name, "join")) {
        static const char *const p[] = {"iterable"};
        if (!jinja_bind(at, what, a, p, 1, 1, NULL, v)) return false;
        jlist *items;
        if (v[0].t == JV_UNDEF) return jerr(at, "%s: %s", what, v[0].u.hint ? v[0].u.hint : "undefined");
        if (!jinja_iter(st, at, v[0], &items)) return false;
        jbuf b = {0};
        bool ok = true;
        for (size_t i = 0; ok && i < items->n; i++) {
            if (items->v[i].t != JV_STR) {
                jbuf_free(&b);
                return jerr(at, "%s: sequence item %zu: expected str instance, %s found", what, i, jv_type_name(items->v[i]));
            }
            ok = (i == 0 || jbuf_add(&b, s->s, s->len)) && jbuf_add(&b, items->v[i].u.s->s, items->v[i].u.s->len);
        }
        if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
        jbuf_free(&b);
        return (ok && out->t == JV_STR) || jerr(at, "%s", owl_last_error());
    }
    return jerr(at, "unsupported method str.%s", name);
}

bool jinja_call_method(jstate *st, const jnode *at, jmethod *bm, const jargs *a, jval *out) {
    jval self = bm->self, v[2];
    const char *name = bm->name;
    char what[64];
    snprintf(what, sizeof what, "%s.%s()", jv_type_name(self), name);
    if (self.t == JV_STR) {
        if (!str_method(st, at, self.u.s, name, a, out)) return false;
        /* Markup's strip and case methods give a Markup */
        if (jv_is_markup(self) && out->t == JV_STR &&
            (strstr(name, "strip") || !strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
             !strcmp(name, "capitalize")))
            out->tuple = 1;
        if (jv_is_markup(self) && out->t == JV_LIST && strstr(name, "split"))
            for (size_t i = 0; i < out->u.l->n; i++) out->u.l->v[i].tuple = 1;
        return true;
    }
    if (self.t == JV_DICT) {
        const jdict *d = self.u.d;
        if (!strcmp(name, "get")) {
            static const char *const p[] = {"key", "default"};
            jval defs[1] = {jv_none()};
            if (!jinja_bind(at, what, a, p, 2, 1, defs, v)) return false;
            jval *r = jdict_get(d, v[0]);
            *out = r ? *r : v[1];
            return true;
        }
        if (!jinja_bind(at, what, a, NULL, 0, 0, NULL, v)) return false;
        jlist *l = jlist_new(st->mem, d->n);
        if (!l) return false;
        for (size_t i = 0; i < d->n; i++) {
            if (name[0] == 'k') l->v[l->n++] = d->k[i];
            else if (name[0] == 'v') l->v[l->n++] = d->v[i];
            else {
                jlist *pair = jlist_new(st->mem, 2);
                if (!pair) return false;
                pair->v[0] = d->k[i];
                pair->v[1] = d->v[i];
                pair->n = 2;
                l->v[l->n] = jv_list(pair);
                l->v[l->n++].tuple = 1;
            }
        }
        *out = jv_list(l);
        out->tuple = name[0] == 'k' ? 3 : name[0] == 'v' ? 4 : 5;
        return true;
    }
    if (self.t == JV_LIST) {
        static const char *const p[] = {"value"};
        if (!jinja_work(st, at, self.u.l->n)) return false;
        if (!jinja_bind(at, what, a, p, 1, 1, NULL, v)) return false;
        int64_t c = 0, first = -1;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jv_equal(self.u.l->v[i], v[0])) {
                if (first < 0) first = (int64_t)i;
                c++;
            }
        if (name[0] == 'i' && first < 0) return jerr(at, "list.index(x): x not in list");
        *out = jv_int(name[0] == 'i' ? first : c);
        return true;
    }
    if (self.t == JV_LOOP) { /* loop.cycle(a, b, ...) */
        if (a->nkw || a->npos == 0) return jerr(at, "loop.cycle() takes one or more positional arguments");
        *out = a->pos[self.u.loop->index0 % (int64_t)a->npos];
        return true;
    }
    return jerr(at, "unsupported method %s", what);
}

/* ---- global functions ---- */

bool jinja_global(const char *name, jval *out) {
    static const struct { const char *name; int fn; } g[] = {
        {"range", FN_RANGE}, {"namespace", FN_NAMESPACE}, {"dict", FN_DICT},
        {"raise_exception", FN_RAISE}, {"strftime_now", FN_STRFTIME},
        {"lipsum", FN_UNSUPPORTED}, {"cycler", FN_UNSUPPORTED}, {"joiner", FN_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof g / sizeof *g; i++)
        if (strcmp(name, g[i].name) == 0) {
            out->t = JV_FUNC;
            out->tuple = 0;
            out->u.fn = g[i].fn;
            return true;
        }
    return false;
}

static bool int_arg(const jnode *at, const char *what, jval v, int64_t *out) {
    if (v.t == JV_INT) *out = v.u.i;
    else if (v.t == JV_BOOL) *out = v.u.b;
    else return jerr(at, "%s: '%s' object cannot be interpreted as an integer", what, jv_type_name(v));
    return true;
}

bool jinja_call_func(jstate *st, const jnode *at, int fn, const jargs *a, jval *out) {
    switch (fn) {
    case FN_RANGE: {
        if (a->nkw) return jerr(at, "range() takes no keyword arguments");
        if (a->npos < 1 || a->npos > 3) return jerr(at, "range expected 1 to 3 arguments, got %zu", a->npos);
        int64_t v[3] = {0, 0, 1};
        for (size_t i = 0; i < a->npos; i++)
            if (!int_arg(at, "range()", a->pos[i], &v[a->npos == 1 ? 1 : i])) return false;
        int64_t start = v[0], stop = v[1], step = v[2];
        if (step == 0) return jerr(at, "range() arg 3 must not be zero");
        double count = step > 0 ? (stop > start ? ((double)stop - (double)start + (double)step - 1) / (double)step : 0)
                                : (start > stop ? ((double)start - (double)stop - (double)step - 1) / (double)-step : 0);
        if (count > OWL_TEMPLATE_MAX_RANGE)
            return jerr(at, "range() too big: %.0f items, the limit is %d", count, OWL_TEMPLATE_MAX_RANGE);
        jlist *l = jlist_new(st->mem, (size_t)count);
        if (!l) return false;
        for (int64_t x = start; step > 0 ? x < stop : x > stop; x += step) l->v[l->n++] = jv_int(x);
        *out = jv_list(l);
        return true;
    }
    case FN_NAMESPACE: case FN_DICT: {
        jdict *d = jdict_new(st->mem, a->nkw);
        if (!d) return false;
        if (a->npos > 1) return jerr(at, "%s() takes at most one positional argument", fn == FN_DICT ? "dict" : "namespace");
        if (a->npos == 1) {
            if (a->pos[0].t != JV_DICT) return jerr(at, "%s(): the positional argument must be a dict", fn == FN_DICT ? "dict" : "namespace");
            for (size_t i = 0; i < a->pos[0].u.d->n; i++)
                if (!jdict_set(st->mem, d, a->pos[0].u.d->k[i], a->pos[0].u.d->v[i])) return false;
        }
        for (size_t i = 0; i < a->nkw; i++) {
            jval k = jv_cstr(st->mem, a->kwn[i]);
            if (k.t != JV_STR || !jdict_set(st->mem, d, k, a->kwv[i])) return false;
        }
        out->t = fn == FN_DICT ? JV_DICT : JV_NS;
        out->tuple = 0;
        out->u.d = d;
        return true;
    }
    case FN_RAISE: {
        jbuf b = {0};
        for (size_t i = 0; i < a->npos; i++)
            if ((i && !jbuf_add(&b, " ", 1)) || !jv_write_str(&b, a->pos[i])) break;
        jerr(at, "raise_exception: %s", b.p ? b.p : "");
        jbuf_free(&b);
        return false;
    }
    case FN_STRFTIME: {
        if (a->npos != 1 || a->nkw || a->pos[0].t != JV_STR) return jerr(at, "strftime_now(format) takes one string");
        time_t t = st->fixed_now ? (time_t)st->now : time(NULL);
        struct tm tmv;
        if (st->fixed_now) gmtime_r(&t, &tmv);
        else localtime_r(&t, &tmv);
        /* as Python's datetime.strftime: the format ends at a NUL; a
         * sentinel character tells an empty result from an overflow */
        const jstr *f = a->pos[0].u.s;
        size_t seg = strnlen(f->s, f->len);
        if (seg > 256) return jerr(at, "strftime_now: format longer than 256 bytes");
        char fmt[260], buf[2048];
        memcpy(fmt, f->s, seg);
        fmt[seg] = '|';
        fmt[seg + 1] = 0;
        size_t n = strftime(buf, sizeof buf, fmt, &tmv);
        if (n == 0) return jerr(at, "strftime_now: output too long");
        *out = jv_str(st->mem, buf, n - 1);
        return out->t == JV_STR;
    }
    default:
        return jerr(at, "unsupported function");
    }
}
