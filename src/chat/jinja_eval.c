/* Jinja evaluator: statements (output, if, for with loop variable and
 * loop controls, set with jinja2's scoping, macros) and expressions with
 * Python's operator semantics. */
#include "chat/jinja.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { CTL_NONE, CTL_BREAK, CTL_CONTINUE };

static _Thread_local bool err_has_pos;

bool jerr(const jnode *at, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: %s", at->line, at->col, msg);
    else owl_errorf(OWL_ERR_FORMAT, "template: %s", msg);
    err_has_pos = true;
    return false;
}

/* A failure reported below without a position gets the node's. */
bool jinja_work(jstate *st, const jnode *at, uint64_t units) {
    st->work += units;
    if (st->work > OWL_TEMPLATE_MAX_WORK)
        return jerr(at, "the template did more than %llu units of work (searching, copying)",
                    (unsigned long long)OWL_TEMPLATE_MAX_WORK);
    return true;
}

bool jinja_fail_at(const jnode *at) {
    if (!err_has_pos) {
        owl_error_prefix(OWL_ERR_FORMAT, "template:%d:%d", at->line, at->col);
        err_has_pos = true;
    }
    return false;
}

/* Raises an error again with its text as it was (it has its position). */
bool jerr_again(const char *text) {
    owl_errorf(OWL_ERR_FORMAT, "%s", text);
    err_has_pos = true;
    return false;
}

void jinja_reset_error(void) { err_has_pos = false; }

/* ---- scopes ---- */

static jval *scope_find(jscope *sc, const char *name) {
    for (; sc; sc = sc->parent)
        for (size_t i = sc->n; i-- > 0;)
            if (strcmp(sc->names[i], name) == 0) return &sc->vals[i];
    return NULL;
}

static bool scope_set(jstate *st, jscope *sc, const char *name, jval v) {
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->names[i], name) == 0) {
            sc->vals[i] = v;
            return true;
        }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 8;
        const char **nn = jmem_grow(st->mem, sc->names, sc->n * sizeof *nn, cap * sizeof *nn);
        jval *nv = jmem_grow(st->mem, sc->vals, sc->n * sizeof *nv, cap * sizeof *nv);
        if (!nn || !nv) return false;
        sc->names = nn;
        sc->vals = nv;
        sc->cap = cap;
    }
    sc->names[sc->n] = name;
    sc->vals[sc->n++] = v;
    return true;
}

static jscope *scope_new(jstate *st, jscope *parent) {
    jscope *s = jmem_alloc(st->mem, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

/* Names jinja2 starts as undefined in a scope (jinja_scope.c). */
bool jinja_bind_undef(jstate *st, jscope *sc, const char **names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *hint = jmem_alloc(st->mem, strlen(names[i]) + 20);
        if (!hint) return false;
        sprintf(hint, "'%s' is undefined", names[i]);
        if (!scope_set(st, sc, names[i], jv_undef(hint))) return false;
    }
    return true;
}

/* ---- output ---- */

static bool emit(jstate *st, const jnode *at, jval v) {
    if (v.t == JV_STR) {
        if (!jbuf_add(st->out, v.u.s->s, v.u.s->len)) return jinja_fail_at(at);
        return true;
    }
    if (!jv_write_str(st->out, v)) return jinja_fail_at(at);
    return true;
}

/* ---- unpacking ---- */

static bool bind_targets(jstate *st, jscope *sc, const jnode *at, const char **names, size_t n, jval v) {
    if (n == 1) return scope_set(st, sc, names[0], v) || jinja_fail_at(at);
    jlist *items;
    if (v.t == JV_LIST) items = v.u.l;
    else if (v.t == JV_STR || v.t == JV_DICT) {
        if (!jinja_iter(st, at, v, &items)) return false;
    } else {
        return jerr(at, "cannot unpack non-iterable %s object", jv_type_name(v));
    }
    if (items->n != n)
        return jerr(at, "cannot unpack %zu values into %zu names", items->n, n);
    for (size_t i = 0; i < n; i++)
        if (!scope_set(st, sc, names[i], items->v[i])) return jinja_fail_at(at);
    return true;
}

/* ---- statements ---- */

static bool exec_stmt(jstate *st, jscope *sc, const jnode *n, int *ctl);

bool jinja_exec_body(jstate *st, jscope *sc, const jnodes *body, int *ctl) {
    for (size_t i = 0; i < body->n; i++) {
        if (!exec_stmt(st, sc, body->v[i], ctl)) return false;
        if (*ctl != CTL_NONE) return true;
    }
    return true;
}

static bool apply_filters(jstate *st, jscope *sc, const jnode *f, jval base, jval *out);

/* Renders body into a string value (block set, filter block, macro). */
static bool render_to_value(jstate *st, jscope *sc, const jnodes *body, jval *out) {
    jbuf b = {0};
    jbuf *saved = st->out;
    st->out = &b;
    int ctl = CTL_NONE;
    bool ok = jinja_exec_body(st, sc, body, &ctl);
    st->out = saved;
    if (ok) {
        *out = jv_str(st->mem, b.p ? b.p : "", b.n);
        ok = out->t == JV_STR;
    }
    jbuf_free(&b);
    return ok;
}

static bool exec_for(jstate *st, jscope *sc, const jnode *n, int *ctl) {
    jval seq;
    if (!jinja_eval(st, sc, n->a, &seq)) return false;
    jlist *items;
    if (seq.t == JV_UNDEF) items = jlist_new(st->mem, 0);
    else if (!jinja_iter(st, n->a, seq, &items)) return false;
    if (!items) return jinja_fail_at(n);
    jscope *it = scope_new(st, sc);
    if (!it) return jinja_fail_at(n);
    if (n->b) { /* for x in xs if cond: filter first, loop over what is left */
        jlist *kept = jlist_new(st->mem, items->n);
        if (!kept) return jinja_fail_at(n);
        for (size_t i = 0; i < items->n; i++) {
            if (++st->iterations > OWL_TEMPLATE_MAX_ITERATIONS)
                return jerr(n, "more than %d loop iterations", OWL_TEMPLATE_MAX_ITERATIONS);
            it->n = 0;
            jval c;
            if (!bind_targets(st, it, n, n->names, n->n_names, items->v[i]) || !jinja_eval(st, it, n->b, &c))
                return false;
            if (jv_truthy(c)) kept->v[kept->n++] = items->v[i];
        }
        items = kept;
    }
    jloop *lp = jmem_alloc(st->mem, sizeof *lp);
    if (!lp) return jinja_fail_at(n);
    lp->length = (int64_t)items->n;
    lp->items = items;
    lp->depth0 = 0; /* depth counts recursive loops only, which are not supported */
    jval lv = {.t = JV_LOOP};
    lv.u.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        if (++st->iterations > OWL_TEMPLATE_MAX_ITERATIONS)
            return jerr(n, "more than %d loop iterations", OWL_TEMPLATE_MAX_ITERATIONS);
        lp->index0 = (int64_t)i;
        /* a fresh scope per iteration: sets inside do not survive it */
        it->n = 0;
        if (!jinja_bind_undef(st, it, n->undef, n->n_undef)) return jinja_fail_at(n);
        if (!bind_targets(st, it, n, n->names, n->n_names, items->v[i])) return false;
        if (!scope_set(st, it, "loop", lv)) return jinja_fail_at(n);
        int c = CTL_NONE;
        if (!jinja_exec_body(st, it, &n->list, &c)) return false;
        if (c == CTL_BREAK) break;
    }
    if (items->n == 0 && n->list2.n) { /* the else block is a scope of its own */
        jscope *es = scope_new(st, sc);
        if (!es || !jinja_bind_undef(st, es, n->undef2, n->n_undef2)) return jinja_fail_at(n);
        return jinja_exec_body(st, es, &n->list2, ctl);
    }
    return true;
}

static bool exec_stmt(jstate *st, jscope *sc, const jnode *n, int *ctl) {
    jval v;
    switch (n->kind) {
    case N_TEXT:
        if (!jbuf_add(st->out, n->val.u.s->s, n->val.u.s->len)) return jinja_fail_at(n);
        return true;
    case N_PRINT:
        return jinja_eval(st, sc, n->a, &v) && emit(st, n, v);
    case N_IF:
        if (!jinja_eval(st, sc, n->a, &v)) return false;
        return jinja_exec_body(st, sc, jv_truthy(v) ? &n->list : &n->list2, ctl);
    case N_FOR:
        return exec_for(st, sc, n, ctl);
    case N_SET:
        if (!jinja_eval(st, sc, n->a, &v)) return false;
        if (n->attr) {
            jval *ns = scope_find(sc, n->names[0]);
            if (!ns || ns->t != JV_NS)
                return jerr(n, "can only assign attributes of a namespace(), '%s' is %s", n->names[0],
                            ns ? jv_type_name(*ns) : "undefined");
            jval k = jv_cstr(st->mem, n->attr);
            if (k.t != JV_STR || !jdict_set(st->mem, ns->u.d, k, v)) return jinja_fail_at(n);
            return true;
        }
        return bind_targets(st, sc, n, n->names, n->n_names, v);
    case N_SETBLOCK: {
        jscope *inner = scope_new(st, sc);
        if (!inner || !jinja_bind_undef(st, inner, n->undef, n->n_undef)) return jinja_fail_at(n);
        if (!render_to_value(st, inner, &n->list, &v)) return false;
        if (n->b && !apply_filters(st, sc, n->b, v, &v)) return false;
        if (n->attr) {
            jval *ns = scope_find(sc, n->names[0]);
            if (!ns || ns->t != JV_NS) return jerr(n, "can only assign attributes of a namespace()");
            jval k = jv_cstr(st->mem, n->attr);
            if (k.t != JV_STR || !jdict_set(st->mem, ns->u.d, k, v)) return jinja_fail_at(n);
            return true;
        }
        return scope_set(st, sc, n->names[0], v) || jinja_fail_at(n);
    }
    case N_FILTERBLOCK: {
        jscope *inner = scope_new(st, sc);
        if (!inner || !jinja_bind_undef(st, inner, n->undef, n->n_undef)) return jinja_fail_at(n);
        if (!render_to_value(st, inner, &n->list, &v)) return false;
        if (n->b && !apply_filters(st, sc, n->b, v, &v)) return false;
        return emit(st, n, v);
    }
    case N_WITH: {
        /* values are evaluated outside, then bound in a scope of their own */
        jval *vals = jmem_alloc(st->mem, (n->n_names + 1) * sizeof *vals);
        jscope *inner = scope_new(st, sc);
        if (!vals || !inner || !jinja_bind_undef(st, inner, n->undef, n->n_undef)) return jinja_fail_at(n);
        for (size_t i = 0; i < n->n_names; i++)
            if (!jinja_eval(st, sc, n->list2.v[i], &vals[i])) return false;
        for (size_t i = 0; i < n->n_names; i++)
            if (!scope_set(st, inner, n->names[i], vals[i])) return jinja_fail_at(n);
        return jinja_exec_body(st, inner, &n->list, ctl);
    }
    case N_MACRO: {
        jmacro *m = jmem_alloc(st->mem, sizeof *m);
        if (!m) return jinja_fail_at(n);
        m->node = n;
        m->scope = sc;
        jval mv = {.t = JV_MACRO};
        mv.u.m = m;
        return scope_set(st, sc, n->name, mv) || jinja_fail_at(n);
    }
    case N_BREAK: *ctl = CTL_BREAK; return true;
    case N_CONTINUE: *ctl = CTL_CONTINUE; return true;
    default: return jerr(n, "internal error: statement kind %d", n->kind);
    }
}

bool jinja_call_macro(jstate *st, const jnode *at, jmacro *m, const jval *args, size_t nargs,
                      const char **kwn, const jval *kwv, size_t nkw, jval *out) {
    const jnode *mn = m->node;
    if (st->depth >= OWL_TEMPLATE_MAX_CALL_DEPTH)
        return jerr(at, "macro calls nested deeper than %d (recursion?) calling '%s'", OWL_TEMPLATE_MAX_CALL_DEPTH,
                    mn->name);
    if (nargs > mn->n_names)
        return jerr(at, "macro '%s' takes not more than %zu argument(s)", mn->name, mn->n_names);
    jscope *sc = scope_new(st, m->scope);
    if (!sc || !jinja_bind_undef(st, sc, mn->undef, mn->n_undef)) return jinja_fail_at(at);
    size_t first_def = mn->n_names - mn->list2.n;
    for (size_t k = 0; k < nkw; k++) {
        size_t j;
        for (j = 0; j < mn->n_names; j++)
            if (strcmp(mn->names[j], kwn[k]) == 0) break;
        if (j == mn->n_names) return jerr(at, "macro '%s' has no argument '%s'", mn->name, kwn[k]);
        if (j < nargs) return jerr(at, "macro '%s' got multiple values for argument '%s'", mn->name, kwn[k]);
    }
    st->depth++;
    bool ok = true;
    for (size_t j = 0; ok && j < mn->n_names; j++) {
        jval v = jv_undef(NULL);
        bool have = false;
        if (j < nargs) {
            v = args[j];
            have = true;
        }
        for (size_t k = 0; !have && k < nkw; k++)
            if (strcmp(mn->names[j], kwn[k]) == 0) {
                v = kwv[k];
                have = true;
            }
        if (!have && j >= first_def) ok = jinja_eval(st, sc, mn->list2.v[j - first_def], &v);
        if (!have && v.t == JV_UNDEF && j < first_def) {
            char *hint = jmem_alloc(st->mem, strlen(mn->names[j]) + 64);
            if (hint) sprintf(hint, "parameter '%s' was not provided", mn->names[j]);
            v = jv_undef(hint);
        }
        ok = ok && (scope_set(st, sc, mn->names[j], v) || jinja_fail_at(at));
    }
    ok = ok && render_to_value(st, sc, &mn->list, out);
    st->depth--;
    return ok;
}

/* ---- expressions ---- */

static bool undefined_error(const jnode *at, jval v) {
    return jerr(at, "%s", v.u.hint ? v.u.hint : "value is undefined");
}

static bool eval_args(jstate *st, jscope *sc, const jnode *n, jval **pos, jval **kwv) {
    *pos = *kwv = NULL;
    if (n->list.n) {
        *pos = jmem_alloc(st->mem, n->list.n * sizeof **pos);
        if (!*pos) return jinja_fail_at(n);
    }
    if (n->list2.n) {
        *kwv = jmem_alloc(st->mem, n->list2.n * sizeof **kwv);
        if (!*kwv) return jinja_fail_at(n);
    }
    for (size_t i = 0; i < n->list.n; i++)
        if (!jinja_eval(st, sc, n->list.v[i], &(*pos)[i])) return false;
    for (size_t i = 0; i < n->list2.n; i++)
        if (!jinja_eval(st, sc, n->list2.v[i], &(*kwv)[i])) return false;
    return true;
}

static bool apply_filters(jstate *st, jscope *sc, const jnode *f, jval base, jval *out) {
    jval subject = base;
    if (f->a && f->a->kind == N_FILTER) {
        if (!apply_filters(st, sc, f->a, base, &subject)) return false;
    } else if (f->a && !jinja_eval(st, sc, f->a, &subject)) {
        return false;
    }
    jval *pos, *kwv;
    if (!eval_args(st, sc, f, &pos, &kwv)) return false;
    jargs a = {pos, f->list.n, f->names, kwv, f->n_names};
    return jinja_filter(st, f, f->name, subject, &a, out) || jinja_fail_at(f);
}

static bool eval_slice(jstate *st, jscope *sc, const jnode *n, jval obj, jval *out) {
    int64_t idx[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    const jnode *parts[3] = {n->b, n->c, n->d};
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        jval v;
        if (!jinja_eval(st, sc, parts[i], &v)) return false;
        if (v.t == JV_NONE) continue;
        if (v.t != JV_INT && v.t != JV_BOOL) return jerr(n, "slice indices must be integers or None");
        idx[i] = v.t == JV_BOOL ? v.u.b : v.u.i;
        given[i] = true;
    }
    if (obj.t == JV_UNDEF) return undefined_error(n, obj);
    if ((obj.t != JV_STR && obj.t != JV_LIST) || (obj.t == JV_LIST && obj.tuple >= 2)) {
        *out = jv_undef("slice of an object that is not a sequence");
        return true;
    }
    int64_t step = idx[2];
    if (step == 0) return jerr(n, "slice step cannot be zero");
    int64_t len = obj.t == JV_STR ? (int64_t)ju_count(obj.u.s->s, obj.u.s->len) : (int64_t)obj.u.l->n;
    int64_t start, stop;
    if (step > 0) {
        start = given[0] ? idx[0] : 0;
        stop = given[1] ? idx[1] : len;
        if (start < 0) start = start + len < 0 ? 0 : start + len;
        if (start > len) start = len;
        if (stop < 0) stop = stop + len < 0 ? 0 : stop + len;
        if (stop > len) stop = len;
    } else {
        start = given[0] ? idx[0] : len - 1;
        stop = given[1] ? idx[1] : -len - 1;
        if (start < 0) start = start + len < 0 ? -1 : start + len;
        if (start >= len) start = len - 1;
        if (stop < 0) stop = stop + len < 0 ? -1 : stop + len;
        if (stop >= len) stop = len - 1;
    }
    if (obj.t == JV_LIST) {
        jlist *l = jlist_new(st->mem, (size_t)len);
        if (!l) return jinja_fail_at(n);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) l->v[l->n++] = obj.u.l->v[i];
        *out = jv_list(l);
        out->tuple = obj.tuple;
        return true;
    }
    const jstr *s = obj.u.s;
    if (step == 1) {
        size_t a = ju_offset(s->s, s->len, (size_t)start), b = stop > start ? ju_offset(s->s, s->len, (size_t)stop) : a;
        *out = jv_str(st->mem, s->s + a, b - a);
        out->tuple = obj.tuple;
        return out->t == JV_STR || jinja_fail_at(n);
    }
    /* general step: go through code point offsets */
    size_t *offs = jmem_alloc(st->mem, ((size_t)len + 1) * sizeof *offs);
    if (!offs) return jinja_fail_at(n);
    size_t k = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->s[i] & 0xc0) != 0x80) offs[k++] = i;
    offs[k] = s->len;
    jbuf b = {0};
    bool ok = true;
    for (int64_t i = start; ok && (step > 0 ? i < stop : i > stop); i += step)
        ok = jbuf_add(&b, s->s + offs[i], offs[i + 1] - offs[i]);
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    out->tuple = obj.tuple;
    return (ok && out->t == JV_STR) || jinja_fail_at(n);
}

static bool eval_call(jstate *st, jscope *sc, const jnode *n, jval *out) {
    jval callee;
    if (!jinja_eval(st, sc, n->a, &callee)) return false;
    jval *pos, *kwv;
    if (!eval_args(st, sc, n, &pos, &kwv)) return false;
    jargs a = {pos, n->list.n, n->names, kwv, n->n_names};
    switch (callee.t) {
    case JV_MACRO:
        return jinja_call_macro(st, n, callee.u.m, pos, n->list.n, n->names, kwv, n->n_names, out);
    case JV_FUNC:
        if (callee.u.fn == FN_UNSUPPORTED)
            return jerr(n, "unsupported function '%s'", n->a->kind == N_NAME ? n->a->name : "?");
        return jinja_call_func(st, n, callee.u.fn, &a, out) || jinja_fail_at(n);
    case JV_METHOD:
        return jinja_call_method(st, n, callee.u.bm, &a, out) || jinja_fail_at(n);
    case JV_UNDEF:
        return undefined_error(n, callee);
    default:
        return jerr(n, "'%s' object is not callable", jv_type_name(callee));
    }
}

static bool eval_node(jstate *st, jscope *sc, const jnode *e, jval *out);

bool jinja_eval(jstate *st, jscope *sc, const jnode *e, jval *out) {
    /* macros nest expressions inside expressions: bound the C stack */
    if (st->eval_depth >= 4 * OWL_TEMPLATE_MAX_NESTING)
        return jerr(e, "expressions and macro calls nested deeper than %d", 4 * OWL_TEMPLATE_MAX_NESTING);
    st->eval_depth++;
    bool ok = eval_node(st, sc, e, out);
    st->eval_depth--;
    return ok;
}

static bool eval_node(jstate *st, jscope *sc, const jnode *e, jval *out) {
    jval a, b;
    bool r;
    switch (e->kind) {
    case N_CONST: *out = e->val; return true;
    case N_NAME: {
        jval *v = scope_find(sc, e->name);
        if (v) { *out = *v; return true; }
        if (jinja_global(e->name, out)) return true;
        char *hint = jmem_alloc(st->mem, strlen(e->name) + 20);
        if (hint) sprintf(hint, "'%s' is undefined", e->name);
        *out = jv_undef(hint);
        return true;
    }
    case N_LIST: case N_TUPLE: {
        jlist *l = jlist_new(st->mem, e->list.n);
        if (!l) return jinja_fail_at(e);
        for (size_t i = 0; i < e->list.n; i++)
            if (!jinja_eval(st, sc, e->list.v[i], &l->v[l->n++])) return false;
        *out = jv_list(l);
        out->tuple = e->kind == N_TUPLE;
        return true;
    }
    case N_DICT: {
        jdict *d = jdict_new(st->mem, e->list.n);
        if (!d) return jinja_fail_at(e);
        for (size_t i = 0; i < e->list.n; i++) {
            if (!jinja_eval(st, sc, e->list.v[i], &a) || !jinja_eval(st, sc, e->list2.v[i], &b)) return false;
            if (a.t == JV_LIST && !a.tuple) return jerr(e, "unhashable type: 'list'");
            if (a.t == JV_DICT) return jerr(e, "unhashable type: 'dict'");
            if (!jdict_set(st->mem, d, a, b)) return jinja_fail_at(e);
        }
        *out = jv_dict(d);
        return true;
    }
    case N_GETATTR:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        return jinja_getattr(st, e, a, e->name, out) || jinja_fail_at(e);
    case N_GETITEM:
        if (!jinja_eval(st, sc, e->a, &a) || !jinja_eval(st, sc, e->b, &b)) return false;
        return jinja_getitem(st, e, a, b, out) || jinja_fail_at(e);
    case N_SLICE:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        return eval_slice(st, sc, e, a, out);
    case N_CALL:
        return eval_call(st, sc, e, out);
    case N_FILTER:
        return apply_filters(st, sc, e, jv_undef(NULL), out);
    case N_TEST: {
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        jval *pos, *kwv;
        if (!eval_args(st, sc, e, &pos, &kwv)) return false;
        jargs args = {pos, e->list.n, e->names, kwv, e->n_names};
        if (!jinja_test(st, e, e->name, a, &args, &r)) return jinja_fail_at(e);
        *out = jv_bool(e->op ? !r : r);
        return true;
    }
    case N_NEG: case N_POS:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        if (a.t == JV_UNDEF) return undefined_error(e, a);
        if (a.t == JV_BOOL) a = jv_int(a.u.b);
        if (a.t == JV_INT) {
            if (e->kind == N_NEG && a.u.i == INT64_MIN) return jerr(e, "integer overflow");
            *out = jv_int(e->kind == N_NEG ? -a.u.i : a.u.i);
            return true;
        }
        if (a.t == JV_FLOAT) {
            *out = jv_float(e->kind == N_NEG ? -a.u.f : a.u.f);
            return true;
        }
        return jerr(e, "bad operand type for unary %s: '%s'", e->kind == N_NEG ? "-" : "+", jv_type_name(a));
    case N_NOT:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        *out = jv_bool(!jv_truthy(a));
        return true;
    case N_AND: case N_OR:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        if (jv_truthy(a) == (e->kind == N_OR)) {
            *out = a;
            return true;
        }
        return jinja_eval(st, sc, e->b, out);
    case N_BINOP:
        if (!jinja_eval(st, sc, e->a, &a) || !jinja_eval(st, sc, e->b, &b)) return false;
        return jinja_arith(st, e, e->op, a, b, out);
    case N_COMPARE:
        if (!jinja_eval(st, sc, e->list.v[0], &a)) return false;
        for (size_t i = 1; i < e->list.n; i++) {
            if (!jinja_eval(st, sc, e->list.v[i], &b)) return false;
            if (!jinja_compare_op(st, e, e->ops[i - 1], a, b, &r)) return false;
            if (!r) break;
            a = b;
        }
        *out = jv_bool(r);
        return true;
    case N_COND:
        if (!jinja_eval(st, sc, e->a, &a)) return false;
        if (jv_truthy(a)) return jinja_eval(st, sc, e->b, out);
        if (e->c) return jinja_eval(st, sc, e->c, out);
        *out = jv_undef("the inline if expression had no else branch");
        return true;
    case N_CONCAT: {
        jbuf buf = {0};
        bool ok = true;
        for (size_t i = 0; ok && i < e->list.n; i++) {
            ok = jinja_eval(st, sc, e->list.v[i], &a);
            if (ok && !jv_write_str(&buf, a)) ok = jinja_fail_at(e);
        }
        if (ok) {
            *out = jv_str(st->mem, buf.p ? buf.p : "", buf.n);
            if (out->t != JV_STR) ok = jinja_fail_at(e);
        }
        jbuf_free(&buf);
        return ok;
    }
    default:
        return jerr(e, "internal error: expression kind %d", e->kind);
    }
}
