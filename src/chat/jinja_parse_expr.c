/* Jinja parser, expressions: jinja2's operator precedence (condexpr < or <
 * and < not < compare < + - < ~ < * / // % < ** < unary < postfix, filters
 * and tests). Unknown filters and tests are errors here, at parse time, like
 * jinja2's compile-time checks. */
#include "chat/jinja_parser.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *jparse_describe(const jtok *t) {
    static _Thread_local char buf[64];
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    case TK_NAME: snprintf(buf, sizeof buf, "'%.40s'", t->s); return buf;
    default: snprintf(buf, sizeof buf, "operator"); return buf;
    }
}

owl_status jparse_err(const jtok *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: %s", at->line, at->col, msg);
}

jnode *jparse_node(parser *P, int kind, const jtok *at) {
    jnode *n = jmem_alloc(P->m, sizeof *n);
    if (!n) return NULL;
    n->kind = (uint8_t)kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

bool jparse_push(parser *P, jnodes *l, jnode *x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jnode **v = jmem_grow(P->m, l->v, l->n * sizeof *v, cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return true;
}

bool jparse_push_name(parser *P, jnode *n, const char *name) {
    const char **v = jmem_grow(P->m, n->names, n->n_names * sizeof *v, (n->n_names + 1) * sizeof *v);
    if (!v) return false;
    v[n->n_names++] = name;
    n->names = v;
    return true;
}


owl_status jparse_expect_op(parser *P, int op, const char *what) {
    if (!is_op(P, op)) return jparse_err(cur(P), "expected '%s', got %s", what, jparse_describe(cur(P)));
    adv(P);
    return OWL_OK;
}

owl_status jparse_expect_name(parser *P, const char **out) {
    if (cur(P)->type != TK_NAME) return jparse_err(cur(P), "expected a name, got %s", jparse_describe(cur(P)));
    *out = cur(P)->s;
    adv(P);
    return OWL_OK;
}


static owl_status parse_unary(parser *P, bool with_filter, jnode **out);

owl_status jparse_enter(parser *P) {
    if (++P->depth > OWL_TEMPLATE_MAX_NESTING)
        return jparse_err(cur(P), "nested deeper than %d levels", OWL_TEMPLATE_MAX_NESTING);
    return OWL_OK;
}

/* Expression, or a tuple when commas follow (a, b). explicit: inside ( ). */
owl_status jparse_tuple(parser *P, bool with_cond, bool explicit, jnode **out) {
    const jtok *start = cur(P);
    jnode *t;
    NEW(t, N_TUPLE, start);
    bool is_tuple = false;
    for (;;) {
        if (t->list.n) {
            if (!is_op(P, OP_COMMA)) break;
            adv(P);
            is_tuple = true;
        }
        /* jinja2's tuple ends: '%}', '}}', ')' and (for loops) 'recursive' */
        if (cur(P)->type == TK_BLOCK_END || cur(P)->type == TK_VAR_END || is_op(P, OP_RPAREN) ||
            (!explicit && is_name(P, "recursive")))
            break;
        jnode *e;
        TRY(jparse_expr(P, with_cond, &e));
        if (!jparse_push(P, &t->list, e)) return OWL_ERR_NOMEM;
    }
    if (!is_tuple) {
        if (t->list.n == 0) {
            if (!explicit) return jparse_err(start, "expected an expression, got %s", jparse_describe(start));
            *out = t; /* () */
            return OWL_OK;
        }
        *out = t->list.v[0];
        return OWL_OK;
    }
    *out = t;
    return OWL_OK;
}

owl_status jparse_call_args(parser *P, jnode *call) {
    TRY(jparse_expect_op(P, OP_LPAREN, "("));
    while (!is_op(P, OP_RPAREN)) {
        if (call->list.n || call->n_names) {
            TRY(jparse_expect_op(P, OP_COMMA, ","));
            if (is_op(P, OP_RPAREN)) break;
        }
        if (is_op(P, OP_MUL) || is_op(P, OP_POW))
            return jparse_err(cur(P), "*args and **kwargs in calls are not supported");
        if (cur(P)->type == TK_NAME && peek(P, 1)->type == TK_OP && peek(P, 1)->op == OP_ASSIGN) {
            const char *k = cur(P)->s;
            for (size_t i = 0; i < call->n_names; i++)
                if (strcmp(call->names[i], k) == 0) return jparse_err(cur(P), "keyword argument repeated: %s", k);
            adv(P);
            adv(P);
            jnode *v;
            TRY(jparse_expr(P, true, &v));
            if (!jparse_push_name(P, call, k) || !jparse_push(P, &call->list2, v)) return OWL_ERR_NOMEM;
        } else {
            if (call->n_names) return jparse_err(cur(P), "positional argument after keyword argument");
            jnode *v;
            TRY(jparse_expr(P, true, &v));
            if (!jparse_push(P, &call->list, v)) return OWL_ERR_NOMEM;
        }
    }
    adv(P);
    return OWL_OK;
}

static owl_status parse_primary(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    TRY(jparse_enter(P));
    switch (t->type) {
    case TK_NAME:
        NEW(n, N_CONST, t);
        if (tok_is_name(t, "true") || tok_is_name(t, "True")) n->val = jv_bool(true);
        else if (tok_is_name(t, "false") || tok_is_name(t, "False")) n->val = jv_bool(false);
        else if (tok_is_name(t, "none") || tok_is_name(t, "None")) n->val = jv_none();
        else {
            n->kind = N_NAME;
            n->name = t->s;
        }
        adv(P);
        break;
    case TK_STRING: {
        jbuf b = {0};
        while (cur(P)->type == TK_STRING) {
            if (!jbuf_add(&b, cur(P)->s, cur(P)->len)) { jbuf_free(&b); return OWL_ERR_RANGE; }
            adv(P);
        }
        n = jparse_node(P, N_CONST, t);
        if (n) n->val = jv_str(P->m, b.p ? b.p : "", b.n);
        jbuf_free(&b);
        if (!n || n->val.t != JV_STR) return OWL_ERR_NOMEM;
        break;
    }
    case TK_INT:
        NEW(n, N_CONST, t);
        n->val = jv_int(t->i);
        adv(P);
        break;
    case TK_FLOAT:
        NEW(n, N_CONST, t);
        n->val = jv_float(t->f);
        adv(P);
        break;
    case TK_OP:
        if (t->op == OP_LPAREN) {
            adv(P);
            TRY(jparse_tuple(P, true, true, &n));
            TRY(jparse_expect_op(P, OP_RPAREN, ")"));
            break;
        }
        if (t->op == OP_LBRACKET) {
            adv(P);
            NEW(n, N_LIST, t);
            while (!is_op(P, OP_RBRACKET)) {
                if (n->list.n) {
                    TRY(jparse_expect_op(P, OP_COMMA, ","));
                    if (is_op(P, OP_RBRACKET)) break;
                }
                jnode *e;
                TRY(jparse_expr(P, true, &e));
                if (!jparse_push(P, &n->list, e)) return OWL_ERR_NOMEM;
            }
            adv(P);
            break;
        }
        if (t->op == OP_LBRACE) {
            adv(P);
            NEW(n, N_DICT, t);
            while (!is_op(P, OP_RBRACE)) {
                if (n->list.n) {
                    TRY(jparse_expect_op(P, OP_COMMA, ","));
                    if (is_op(P, OP_RBRACE)) break;
                }
                jnode *k, *v;
                TRY(jparse_expr(P, true, &k));
                TRY(jparse_expect_op(P, OP_COLON, ":"));
                TRY(jparse_expr(P, true, &v));
                if (!jparse_push(P, &n->list, k) || !jparse_push(P, &n->list2, v)) return OWL_ERR_NOMEM;
            }
            adv(P);
            break;
        }
        /* fall through */
    default:
        return jparse_err(t, "unexpected %s", jparse_describe(t));
    }
    P->depth--;
    *out = n;
    return OWL_OK;
}

static owl_status parse_subscript(parser *P, jnode *obj, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    if (is_op(P, OP_DOT)) {
        adv(P);
        const jtok *a = cur(P);
        if (a->type == TK_NAME) {
            NEW(n, N_GETATTR, t);
            n->a = obj;
            n->name = a->s;
        } else if (a->type == TK_INT) {
            NEW(n, N_GETITEM, t);
            n->a = obj;
            NEW(n->b, N_CONST, a);
            n->b->val = jv_int(a->i);
        } else {
            return jparse_err(a, "expected name or number after '.', got %s", jparse_describe(a));
        }
        adv(P);
        *out = n;
        return OWL_OK;
    }
    adv(P); /* [ */
    jnode *parts[3] = {NULL, NULL, NULL};
    int np = 0;
    bool slice = false;
    for (;;) {
        if (is_op(P, OP_COLON)) {
            slice = true;
            if (np >= 2) return jparse_err(cur(P), "too many ':' in slice");
            np++;
            adv(P);
            continue;
        }
        if (is_op(P, OP_RBRACKET)) break;
        if (is_op(P, OP_COMMA)) { /* x[a, b] is x[(a, b)] */
            if (slice || !parts[0]) return jparse_err(cur(P), "slices in tuple subscripts are not supported");
            jnode *tup;
            NEW(tup, N_TUPLE, cur(P));
            if (!jparse_push(P, &tup->list, parts[0])) return OWL_ERR_NOMEM;
            while (is_op(P, OP_COMMA)) {
                adv(P);
                if (is_op(P, OP_RBRACKET)) break;
                jnode *e;
                TRY(jparse_expr(P, true, &e));
                if (!jparse_push(P, &tup->list, e)) return OWL_ERR_NOMEM;
            }
            parts[0] = tup;
            continue;
        }
        if (parts[np]) return jparse_err(cur(P), "expected ']' or ':', got %s", jparse_describe(cur(P)));
        TRY(jparse_expr(P, true, &parts[np]));
    }
    adv(P);
    if (!slice && !parts[0]) { /* x[] is x[()] in jinja2 */
        NEW(parts[0], N_TUPLE, t);
    }
    if (!slice) {
        NEW(n, N_GETITEM, t);
        n->a = obj;
        n->b = parts[0];
    } else {
        NEW(n, N_SLICE, t);
        n->a = obj;
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    }
    *out = n;
    return OWL_OK;
}

static owl_status parse_postfix(parser *P, jnode **n) {
    for (;;) {
        if (is_op(P, OP_DOT) || is_op(P, OP_LBRACKET)) {
            TRY(parse_subscript(P, *n, n));
        } else if (is_op(P, OP_LPAREN)) {
            jnode *c;
            NEW(c, N_CALL, cur(P));
            c->a = *n;
            TRY(jparse_call_args(P, c));
            *n = c;
        } else {
            return OWL_OK;
        }
    }
}

static owl_status parse_filter_expr(parser *P, jnode **n) {
    for (;;) {
        if (is_op(P, OP_PIPE)) {
            adv(P);
            const jtok *nt = cur(P);
            jnode *f;
            NEW(f, N_FILTER, nt);
            TRY(jparse_expect_name(P, &f->name));
            f->a = *n;
            if (is_op(P, OP_LPAREN)) TRY(jparse_call_args(P, f));
            *n = f;
        } else if (is_name(P, "is")) {
            adv(P);
            bool neg = false;
            if (is_name(P, "not")) {
                neg = true;
                adv(P);
            }
            const jtok *nt = cur(P);
            jnode *f;
            NEW(f, N_TEST, nt);
            TRY(jparse_expect_name(P, &f->name));
            f->a = *n;
            f->op = neg;
            const jtok *c = cur(P);
            if (is_op(P, OP_LPAREN)) {
                TRY(jparse_call_args(P, f));
            } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
                        (c->type == TK_OP && (c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
                if (is_name(P, "is")) return jparse_err(c, "cannot chain multiple tests with 'is'");
                jnode *arg;
                TRY(parse_primary(P, &arg));
                TRY(parse_postfix(P, &arg));
                if (!jparse_push(P, &f->list, arg)) return OWL_ERR_NOMEM;
            }
            *n = f;
        } else if (is_op(P, OP_LPAREN)) {
            jnode *c;
            NEW(c, N_CALL, cur(P));
            c->a = *n;
            TRY(jparse_call_args(P, c));
            *n = c;
        } else {
            return OWL_OK;
        }
    }
}

static owl_status parse_unary(parser *P, bool with_filter, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    TRY(jparse_enter(P));
    if (is_op(P, OP_SUB) || is_op(P, OP_ADD)) {
        NEW(n, is_op(P, OP_SUB) ? N_NEG : N_POS, t);
        adv(P);
        TRY(parse_unary(P, false, &n->a));
    } else {
        TRY(parse_primary(P, &n));
    }
    TRY(parse_postfix(P, &n));
    if (with_filter) TRY(parse_filter_expr(P, &n));
    P->depth--;
    *out = n;
    return OWL_OK;
}

static owl_status binop(parser *P, int op, jnode *a, jnode *b, const jtok *at, jnode **out) {
    jnode *n;
    NEW(n, N_BINOP, at);
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    *out = n;
    return OWL_OK;
}

static owl_status parse_pow(parser *P, jnode **out) {
    TRY(parse_unary(P, true, out));
    while (is_op(P, OP_POW)) {
        const jtok *t = cur(P);
        adv(P);
        jnode *r;
        TRY(parse_unary(P, true, &r));
        TRY(binop(P, OP_POW, *out, r, t, out));
    }
    return OWL_OK;
}

static owl_status parse_math2(parser *P, jnode **out) {
    TRY(parse_pow(P, out));
    while (is_op(P, OP_MUL) || is_op(P, OP_DIV) || is_op(P, OP_FLOORDIV) || is_op(P, OP_MOD)) {
        const jtok *t = cur(P);
        adv(P);
        jnode *r;
        TRY(parse_pow(P, &r));
        TRY(binop(P, t->op, *out, r, t, out));
    }
    return OWL_OK;
}

static owl_status parse_concat(parser *P, jnode **out) {
    TRY(parse_math2(P, out));
    if (!is_op(P, OP_TILDE)) return OWL_OK;
    jnode *c;
    NEW(c, N_CONCAT, cur(P));
    if (!jparse_push(P, &c->list, *out)) return OWL_ERR_NOMEM;
    while (is_op(P, OP_TILDE)) {
        adv(P);
        jnode *r;
        TRY(parse_math2(P, &r));
        if (!jparse_push(P, &c->list, r)) return OWL_ERR_NOMEM;
    }
    *out = c;
    return OWL_OK;
}

static owl_status parse_math1(parser *P, jnode **out) {
    TRY(parse_concat(P, out));
    while (is_op(P, OP_ADD) || is_op(P, OP_SUB)) {
        const jtok *t = cur(P);
        adv(P);
        jnode *r;
        TRY(parse_concat(P, &r));
        TRY(binop(P, t->op, *out, r, t, out));
    }
    return OWL_OK;
}

static owl_status parse_compare(parser *P, jnode **out) {
    jnode *first;
    TRY(parse_math1(P, &first));
    jnode *c = NULL;
    for (;;) {
        const jtok *t = cur(P);
        int op = 0;
        if (t->type == TK_OP && t->op >= OP_EQ && t->op <= OP_GE) {
            op = t->op;
            adv(P);
        } else if (is_name(P, "in")) {
            op = OP_IN;
            adv(P);
        } else if (is_name(P, "not") && tok_is_name(peek(P, 1), "in")) {
            op = OP_NOTIN;
            adv(P);
            adv(P);
        } else {
            break;
        }
        if (!c) {
            NEW(c, N_COMPARE, t);
            if (!jparse_push(P, &c->list, first)) return OWL_ERR_NOMEM;
        }
        jnode *r;
        TRY(parse_math1(P, &r));
        uint8_t *ops = jmem_grow(P->m, c->ops, c->list.n - 1, c->list.n);
        if (!ops || !jparse_push(P, &c->list, r)) return OWL_ERR_NOMEM;
        ops[c->list.n - 2] = (uint8_t)op;
        c->ops = ops;
    }
    *out = c ? c : first;
    return OWL_OK;
}

static owl_status parse_not(parser *P, jnode **out) {
    if (is_name(P, "not")) {
        jnode *n;
        NEW(n, N_NOT, cur(P));
        adv(P);
        TRY(jparse_enter(P));
        TRY(parse_not(P, &n->a));
        P->depth--;
        *out = n;
        return OWL_OK;
    }
    return parse_compare(P, out);
}

static owl_status parse_and(parser *P, jnode **out) {
    TRY(parse_not(P, out));
    while (is_name(P, "and")) {
        jnode *n;
        NEW(n, N_AND, cur(P));
        adv(P);
        n->a = *out;
        TRY(parse_not(P, &n->b));
        *out = n;
    }
    return OWL_OK;
}

static owl_status parse_or(parser *P, jnode **out) {
    TRY(parse_and(P, out));
    while (is_name(P, "or")) {
        jnode *n;
        NEW(n, N_OR, cur(P));
        adv(P);
        n->a = *out;
        TRY(parse_and(P, &n->b));
        *out = n;
    }
    return OWL_OK;
}

owl_status jparse_expr(parser *P, bool with_cond, jnode **out) {
    TRY(jparse_enter(P));
    TRY(parse_or(P, out));
    while (with_cond && is_name(P, "if")) {
        jnode *n;
        NEW(n, N_COND, cur(P));
        adv(P);
        n->b = *out;
        TRY(parse_or(P, &n->a));
        if (is_name(P, "else")) {
            adv(P);
            TRY(jparse_expr(P, true, &n->c));
        }
        *out = n;
    }
    P->depth--;
    return OWL_OK;
}
