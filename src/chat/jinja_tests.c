/* Jinja tests (x is defined, x is divisibleby 3, ...) with jinja2's
 * semantics. */
#include "chat/jinja.h"

#include <math.h>
#include <string.h>
#include <utf8proc.h>

#define ITER 2 /* jval.tuple of a list that stands for a Python iterator */

static bool str_cased_is(const jstr *s, bool upper) {
    bool any = false;
    for (size_t i = 0; i < s->len;) {
        size_t adv;
        uint32_t c = ju_decode(s->s + i, s->len - i, &adv);
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
        if (p->category == UTF8PROC_CATEGORY_LU || p->category == UTF8PROC_CATEGORY_LT) {
            if (!upper) return false;
            any = true;
        } else if (p->category == UTF8PROC_CATEGORY_LL) {
            if (upper) return false;
            any = true;
        }
        i += adv;
    }
    return any;
}

bool jinja_test(jstate *st, const jnode *at, const char *name, jval v, const jargs *a, bool *out) {
    jval x[1];
    if (!jinja_test_known(name)) return jerr(at, "unknown or unsupported test '%s'", name);
    static const char *const p_other[] = {"other"};
    static const char *const p_num[] = {"num"};
    static const char *const p_seq[] = {"seq"};
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==") || !strcmp(name, "ne") ||
        !strcmp(name, "!=") || !strcmp(name, "sameas")) {
        if (!jinja_bind(at, name, a, p_other, 1, 1, NULL, x)) return false;
        bool eq = jv_equal(v, x[0]);
        if (name[0] == 's' && eq && (v.t != x[0].t || (v.t == JV_LIST && v.u.l != x[0].u.l) ||
                                     (v.t == JV_DICT && v.u.d != x[0].u.d) || (v.t == JV_STR && v.u.s != x[0].u.s)))
            eq = false;
        *out = (name[0] == 'n' || name[0] == '!') ? !eq : eq;
        return true;
    }
    if (!strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "lessthan") || !strcmp(name, "le") ||
        !strcmp(name, "<=") || !strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "greaterthan") ||
        !strcmp(name, "ge") || !strcmp(name, ">=")) {
        if (!jinja_bind(at, name, a, p_other, 1, 1, NULL, x)) return false;
        int c;
        if (!jinja_compare(at, v, x[0], false, &c)) return false;
        bool lt = name[0] == 'l' || name[0] == '<', eq = name[1] == 'e' || name[1] == '=';
        *out = lt ? (eq ? c <= 0 : c < 0) : (eq ? c >= 0 : c > 0);
        return true;
    }
    if (!strcmp(name, "divisibleby")) {
        if (!jinja_bind(at, name, a, p_num, 1, 1, NULL, x)) return false;
        if (!jv_is_num(v) || !jv_is_num(x[0])) return jerr(at, "divisibleby: expected numbers");
        if (v.t != JV_FLOAT && x[0].t != JV_FLOAT) {
            int64_t n = v.t == JV_BOOL ? v.u.b : v.u.i, d = x[0].t == JV_BOOL ? x[0].u.b : x[0].u.i;
            if (d == 0) return jerr(at, "integer division or modulo by zero");
            *out = d == -1 || n % d == 0;
        } else {
            if (jv_num(x[0]) == 0) return jerr(at, "float modulo by zero");
            *out = fmod(jv_num(v), jv_num(x[0])) == 0;
        }
        return true;
    }
    if (!strcmp(name, "in")) {
        if (!jinja_bind(at, name, a, p_seq, 1, 1, NULL, x)) return false;
        jval seq = x[0];
        if (seq.t == JV_STR) {
            if (v.t != JV_STR) return jerr(at, "'in <string>' requires string as left operand, not %s", jv_type_name(v));
            *out = memmem(seq.u.s->s, seq.u.s->len, v.u.s->s, v.u.s->len) != NULL || v.u.s->len == 0;
            return true;
        }
        if (seq.t == JV_DICT) { *out = jdict_get(seq.u.d, v) != NULL; return true; }
        jlist *items;
        if (!jinja_iter(st, at, seq, &items)) return false;
        *out = false;
        for (size_t i = 0; i < items->n && !*out; i++) *out = jv_equal(items->v[i], v);
        return true;
    }
    if (!jinja_bind(at, name, a, NULL, 0, 0, NULL, x)) return false;
    if (!strcmp(name, "defined")) *out = v.t != JV_UNDEF;
    else if (!strcmp(name, "undefined")) *out = v.t == JV_UNDEF;
    else if (!strcmp(name, "none")) *out = v.t == JV_NONE;
    else if (!strcmp(name, "string")) *out = v.t == JV_STR;
    else if (!strcmp(name, "number")) *out = jv_is_num(v);
    else if (!strcmp(name, "integer")) *out = v.t == JV_INT;
    else if (!strcmp(name, "float")) *out = v.t == JV_FLOAT;
    else if (!strcmp(name, "boolean") || !strcmp(name, "true") || !strcmp(name, "false"))
        *out = v.t == JV_BOOL && (name[0] == 'b' || v.u.b == (name[0] == 't'));
    else if (!strcmp(name, "mapping")) *out = v.t == JV_DICT;
    else if (!strcmp(name, "iterable")) *out = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(name, "sequence"))
        *out = v.t == JV_STR || (v.t == JV_LIST && v.tuple < ITER) || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(name, "callable")) *out = v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_METHOD;
    else if (!strcmp(name, "escaped")) *out = false;
    else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v.t == JV_BOOL) v = jv_int(v.u.b);
        if (v.t == JV_INT) *out = (((v.u.i % 2) + 2) % 2 == 1) == (name[0] == 'o');
        else if (v.t == JV_FLOAT) {
            double m = fmod(v.u.f, 2.0);
            if (m < 0) m += 2.0;
            *out = name[0] == 'o' ? m == 1.0 : m == 0.0;
        } else return jerr(at, "%s: expected a number, got %s", name, jv_type_name(v));
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        jstr *s;
        if (!jv_to_str(st->mem, v, &s)) return false;
        *out = str_cased_is(s, name[0] == 'u');
    } else return jerr(at, "unknown or unsupported test '%s'", name);
    return true;
}
