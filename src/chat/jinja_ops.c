/* Jinja operators with Python's semantics: arithmetic (int, float, str,
 * list, Markup), comparisons and membership. */
#include "chat/jinja.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

static bool undefined_error(const jnode *at, jval v) {
    return jerr(at, "%s", v.u.hint ? v.u.hint : "value is undefined");
}

static bool py_floordiv(const jnode *at, int64_t a, int64_t b, int64_t *q, int64_t *r) {
    if (b == 0) return jerr(at, "integer division or modulo by zero");
    if (a == INT64_MIN && b == -1) return jerr(at, "integer overflow");
    int64_t d = a / b, m = a % b;
    if (m != 0 && ((m < 0) != (b < 0))) {
        d--;
        m += b;
    }
    *q = d;
    *r = m;
    return true;
}

static void py_float_divmod(double a, double b, double *fd, double *md) {
    double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    double floordiv;
    if (div != 0) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, a / b);
    }
    *fd = floordiv;
    *md = mod;
}

static bool repeat(jstate *st, const jnode *at, jval seq, int64_t times, jval *out) {
    if (times < 0) times = 0;
    if (seq.t == JV_STR) {
        uint64_t total;
        if (!owl_mul_ok(seq.u.s->len, (uint64_t)times, &total) || total > OWL_TEMPLATE_MAX_OUTPUT)
            return jerr(at, "string repetition result over %u bytes", OWL_TEMPLATE_MAX_OUTPUT);
        jstr *r = jstr_new(st->mem, NULL, (size_t)total);
        if (!r) return jinja_fail_at(at);
        for (int64_t i = 0; i < times; i++) memcpy(r->s + (size_t)i * seq.u.s->len, seq.u.s->s, seq.u.s->len);
        out->t = JV_STR;
        out->tuple = seq.tuple;
        out->u.s = r;
        return true;
    }
    uint64_t total;
    if (!owl_mul_ok(seq.u.l->n, (uint64_t)times, &total) || total > OWL_TEMPLATE_MAX_RANGE * 10ull)
        return jerr(at, "list repetition result too long");
    jlist *l = jlist_new(st->mem, (size_t)total);
    if (!l) return jinja_fail_at(at);
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++) l->v[l->n++] = seq.u.l->v[j];
    *out = jv_list(l);
    out->tuple = seq.tuple;
    return true;
}

static const char *op_name(int op) {
    switch (op) {
    case OP_ADD: return "+"; case OP_SUB: return "-"; case OP_MUL: return "*"; case OP_DIV: return "/";
    case OP_FLOORDIV: return "//"; case OP_MOD: return "%"; case OP_POW: return "**";
    default: return "?";
    }
}

bool jinja_arith(jstate *st, const jnode *at, int op, jval a, jval b, jval *out) {
    if (a.t == JV_STR && b.t == JV_STR && !jinja_work(st, at, a.u.s->len + b.u.s->len)) return false;
    if (a.t == JV_LIST && b.t == JV_LIST && !jinja_work(st, at, a.u.l->n + b.u.l->n)) return false;
    if (op == OP_MOD && a.t == JV_STR) return jinja_printf(st, at, a.u.s, jv_is_markup(a), b, out);
    if (a.t == JV_UNDEF) return undefined_error(at, a);
    if (b.t == JV_UNDEF) return undefined_error(at, b);
    bool an = jv_is_num(a), bn = jv_is_num(b);
    if (an && bn) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_BOOL ? a.u.b : a.u.i, y = b.t == JV_BOOL ? b.u.b : b.u.i, r, q;
            switch (op) {
            case OP_ADD: if (__builtin_add_overflow(x, y, &r)) return jerr(at, "integer overflow"); *out = jv_int(r); return true;
            case OP_SUB: if (__builtin_sub_overflow(x, y, &r)) return jerr(at, "integer overflow"); *out = jv_int(r); return true;
            case OP_MUL: if (__builtin_mul_overflow(x, y, &r)) return jerr(at, "integer overflow"); *out = jv_int(r); return true;
            case OP_DIV: if (y == 0) return jerr(at, "division by zero"); *out = jv_float((double)x / (double)y); return true;
            case OP_FLOORDIV: if (!py_floordiv(at, x, y, &q, &r)) return false; *out = jv_int(q); return true;
            case OP_MOD: if (!py_floordiv(at, x, y, &q, &r)) return false; *out = jv_int(r); return true;
            case OP_POW:
                if (y < 0) {
                    if (x == 0) return jerr(at, "0 cannot be raised to a negative power");
                    *out = jv_float(pow((double)x, (double)y));
                    return true;
                }
                r = 1;
                for (int64_t base = x, e = y; e; ) {
                    if ((e & 1) && __builtin_mul_overflow(r, base, &r)) return jerr(at, "integer overflow");
                    e >>= 1;
                    if (e && __builtin_mul_overflow(base, base, &base)) return jerr(at, "integer overflow");
                }
                *out = jv_int(r);
                return true;
            }
        }
        double x = jv_num(a), y = jv_num(b), fd, md;
        switch (op) {
        case OP_ADD: *out = jv_float(x + y); return true;
        case OP_SUB: *out = jv_float(x - y); return true;
        case OP_MUL: *out = jv_float(x * y); return true;
        case OP_DIV: if (y == 0) return jerr(at, "float division by zero"); *out = jv_float(x / y); return true;
        case OP_FLOORDIV: case OP_MOD:
            if (y == 0) return jerr(at, "float modulo by zero");
            py_float_divmod(x, y, &fd, &md);
            *out = jv_float(op == OP_MOD ? md : fd);
            return true;
        case OP_POW:
            if (x == 0 && y < 0) return jerr(at, "0.0 cannot be raised to a negative power");
            if (x < 0 && y != floor(y)) return jerr(at, "negative number to a fractional power is complex");
            *out = jv_float(pow(x, y));
            if (isinf(out->u.f) && isfinite(x) && isfinite(y)) return jerr(at, "OverflowError: Numerical result out of range");
            return true;
        }
    }
    if (op == OP_ADD && a.t == JV_STR && b.t == JV_STR) {
        /* Markup + str (either order) escapes the str and is a Markup */
        bool markup = jv_is_markup(a) || jv_is_markup(b);
        if (markup && (!jinja_escape(st->mem, a, &a) || !jinja_escape(st->mem, b, &b))) return jinja_fail_at(at);
        jstr *r = jstr_new(st->mem, NULL, a.u.s->len + b.u.s->len);
        if (!r) return jinja_fail_at(at);
        memcpy(r->s, a.u.s->s, a.u.s->len);
        memcpy(r->s + a.u.s->len, b.u.s->s, b.u.s->len);
        out->t = JV_STR;
        out->tuple = markup;
        out->u.s = r;
        return true;
    }
    if (op == OP_ADD && a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple && a.tuple < 2) {
        jlist *l = jlist_new(st->mem, a.u.l->n + b.u.l->n);
        if (!l) return jinja_fail_at(at);
        for (size_t i = 0; i < a.u.l->n; i++) l->v[l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++) l->v[l->n++] = b.u.l->v[i];
        *out = jv_list(l);
        out->tuple = a.tuple;
        return true;
    }
    if (op == OP_MUL && (a.t == JV_STR || (a.t == JV_LIST && a.tuple < 2)) && (b.t == JV_INT || b.t == JV_BOOL))
        return repeat(st, at, a, b.t == JV_BOOL ? b.u.b : b.u.i, out);
    if (op == OP_MUL && (b.t == JV_STR || (b.t == JV_LIST && b.tuple < 2)) && (a.t == JV_INT || a.t == JV_BOOL))
        return repeat(st, at, b, a.t == JV_BOOL ? a.u.b : a.u.i, out);
    return jerr(at, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op), jv_type_name(a), jv_type_name(b));
}

bool jinja_compare(const jnode *at, jval a, jval b, bool ignore_case, int *out) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_BOOL ? a.u.b : a.u.i, y = b.t == JV_BOOL ? b.u.b : b.u.i;
            *out = (x > y) - (x < y);
        } else {
            double x = jv_num(a), y = jv_num(b);
            *out = (x > y) - (x < y);
        }
        return true;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        const jstr *x = a.u.s, *y = b.u.s;
        size_t i = 0, j = 0;
        while (i < x->len && j < y->len) {
            size_t ax, ay;
            uint32_t cx = ju_decode(x->s + i, x->len - i, &ax), cy = ju_decode(y->s + j, y->len - j, &ay);
            if (ignore_case) {
                if (cx >= 'A' && cx <= 'Z') cx += 32;
                if (cy >= 'A' && cy <= 'Z') cy += 32;
            }
            if (cx != cy) {
                *out = cx < cy ? -1 : 1;
                return true;
            }
            i += ax;
            j += ay;
        }
        *out = (i < x->len) - (j < y->len);
        return true;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.tuple == b.tuple && a.tuple < 2) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return jinja_compare(at, a.u.l->v[i], b.u.l->v[i], ignore_case, out);
        }
        *out = (a.u.l->n > n) - (b.u.l->n > n);
        return true;
    }
    if (a.t == JV_UNDEF) return undefined_error(at, a);
    if (b.t == JV_UNDEF) return undefined_error(at, b);
    return jerr(at, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
}

static bool contains(jstate *st, const jnode *at, jval item, jval seq, bool *out) {
    if (!jinja_work(st, at, seq.t == JV_STR ? seq.u.s->len : seq.t == JV_LIST ? seq.u.l->n : seq.t == JV_DICT ? seq.u.d->n : 1))
        return false;
    switch (seq.t) {
    case JV_STR:
        if (item.t != JV_STR) return jerr(at, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        *out = item.u.s->len == 0 || memmem(seq.u.s->s, seq.u.s->len, item.u.s->s, item.u.s->len) != NULL;
        return true;
    case JV_LIST:
        if (seq.u.l->poison) return jerr_again(seq.u.l->poison);
        *out = false;
        for (size_t i = 0; i < seq.u.l->n && !*out; i++) *out = jv_equal(seq.u.l->v[i], item);
        return true;
    case JV_DICT: case JV_NS:
        if ((item.t == JV_LIST && item.tuple != 1) || item.t == JV_DICT)
            return jerr(at, "unhashable type: '%s'", jv_type_name(item));
        *out = jdict_get(seq.u.d, item) != NULL;
        return true;
    case JV_UNDEF:
        *out = false;
        return true;
    default:
        return jerr(at, "argument of type '%s' is not iterable", jv_type_name(seq));
    }
}

bool jinja_compare_op(jstate *st, const jnode *at, int op, jval a, jval b, bool *out) {
    if (a.t == JV_LIST && b.t == JV_LIST && !jinja_work(st, at, a.u.l->n + b.u.l->n)) return false;
    int c;
    switch (op) {
    case OP_EQ: *out = jv_equal(a, b); return true;
    case OP_NE: *out = !jv_equal(a, b); return true;
    case OP_IN: return contains(st, at, a, b, out);
    case OP_NOTIN: if (!contains(st, at, a, b, out)) return false; *out = !*out; return true;
    default:
        if (!jinja_compare(at, a, b, false, &c)) return false;
        *out = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        return true;
    }
}

