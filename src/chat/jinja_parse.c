/* Jinja parser: tokens -> syntax tree, with jinja2's operator precedence
 * (condexpr < or < and < not < compare < + - < ~ < * / // % < ** < unary <
 * postfix, filters and tests). Unknown tags, filters and tests are errors
 * here, at parse time, like jinja2's compile-time checks. */
#include "chat/jinja.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct parser {
    jmem *m;
    const jtok *t;
    size_t n, i;
    int depth;      /* expression / block nesting */
    int loop_depth; /* for loops around the current statement (reset in macros) */
} parser;

static const jtok *cur(parser *P) { return &P->t[P->i]; }
static const jtok *peek(parser *P, size_t k) { return P->i + k < P->n ? &P->t[P->i + k] : &P->t[P->n - 1]; }
static void adv(parser *P) { if (P->i + 1 < P->n) P->i++; }
static bool is_op(parser *P, int op) { return cur(P)->type == TK_OP && cur(P)->op == op; }
static bool tok_is_name(const jtok *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}
static bool is_name(parser *P, const char *name) { return tok_is_name(cur(P), name); }

static const char *describe(const jtok *t) {
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

static owl_status perr(const jtok *at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static owl_status perr(const jtok *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: %s", at->line, at->col, msg);
}

static jnode *node(parser *P, int kind, const jtok *at) {
    jnode *n = jmem_alloc(P->m, sizeof *n);
    if (!n) return NULL;
    n->kind = (uint8_t)kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static bool nodes_push(parser *P, jnodes *l, jnode *x) {
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

static bool names_push(parser *P, jnode *n, const char *name) {
    const char **v = jmem_grow(P->m, n->names, n->n_names * sizeof *v, (n->n_names + 1) * sizeof *v);
    if (!v) return false;
    v[n->n_names++] = name;
    n->names = v;
    return true;
}

#define TRY(x) do { owl_status s_ = (x); if (s_) return s_; } while (0)
#define NEW(var, kind, at) do { if (!((var) = node(P, kind, at))) return OWL_ERR_NOMEM; } while (0)

static owl_status expect_op(parser *P, int op, const char *what) {
    if (!is_op(P, op)) return perr(cur(P), "expected '%s', got %s", what, describe(cur(P)));
    adv(P);
    return OWL_OK;
}

static owl_status expect_name(parser *P, const char **out) {
    if (cur(P)->type != TK_NAME) return perr(cur(P), "expected a name, got %s", describe(cur(P)));
    *out = cur(P)->s;
    adv(P);
    return OWL_OK;
}

static owl_status expect_block_end(parser *P, const char *tag) {
    if (cur(P)->type != TK_BLOCK_END)
        return perr(cur(P), "expected end of '%s' tag ('%%}'), got %s", tag, describe(cur(P)));
    adv(P);
    return OWL_OK;
}

/* ---- expressions ---- */

static owl_status parse_expr(parser *P, bool with_cond, jnode **out);
static owl_status parse_unary(parser *P, bool with_filter, jnode **out);

static owl_status enter(parser *P) {
    if (++P->depth > OWL_TEMPLATE_MAX_NESTING)
        return perr(cur(P), "nested deeper than %d levels", OWL_TEMPLATE_MAX_NESTING);
    return OWL_OK;
}

/* Expression, or a tuple when commas follow (a, b). explicit: inside ( ). */
static owl_status parse_tuple(parser *P, bool with_cond, bool explicit, jnode **out) {
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
        if (explicit && is_op(P, OP_RPAREN)) break;
        if (!explicit && t->list.n && (cur(P)->type == TK_BLOCK_END || cur(P)->type == TK_VAR_END ||
                                      is_name(P, "if") || is_name(P, "recursive")))
            break;
        jnode *e;
        TRY(parse_expr(P, with_cond, &e));
        if (!nodes_push(P, &t->list, e)) return OWL_ERR_NOMEM;
    }
    if (!is_tuple) {
        if (t->list.n == 0) {
            if (!explicit) return perr(start, "expected an expression, got %s", describe(start));
            *out = t; /* () */
            return OWL_OK;
        }
        *out = t->list.v[0];
        return OWL_OK;
    }
    *out = t;
    return OWL_OK;
}

static owl_status parse_call_args(parser *P, jnode *call) {
    TRY(expect_op(P, OP_LPAREN, "("));
    while (!is_op(P, OP_RPAREN)) {
        if (call->list.n || call->n_names) {
            TRY(expect_op(P, OP_COMMA, ","));
            if (is_op(P, OP_RPAREN)) break;
        }
        if (is_op(P, OP_MUL) || is_op(P, OP_POW))
            return perr(cur(P), "*args and **kwargs in calls are not supported");
        if (cur(P)->type == TK_NAME && peek(P, 1)->type == TK_OP && peek(P, 1)->op == OP_ASSIGN) {
            const char *k = cur(P)->s;
            adv(P);
            adv(P);
            jnode *v;
            TRY(parse_expr(P, true, &v));
            if (!names_push(P, call, k) || !nodes_push(P, &call->list2, v)) return OWL_ERR_NOMEM;
        } else {
            if (call->n_names) return perr(cur(P), "positional argument after keyword argument");
            jnode *v;
            TRY(parse_expr(P, true, &v));
            if (!nodes_push(P, &call->list, v)) return OWL_ERR_NOMEM;
        }
    }
    adv(P);
    return OWL_OK;
}

static owl_status parse_primary(parser *P, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    TRY(enter(P));
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
        n = node(P, N_CONST, t);
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
            TRY(parse_tuple(P, true, true, &n));
            TRY(expect_op(P, OP_RPAREN, ")"));
            break;
        }
        if (t->op == OP_LBRACKET) {
            adv(P);
            NEW(n, N_LIST, t);
            while (!is_op(P, OP_RBRACKET)) {
                if (n->list.n) {
                    TRY(expect_op(P, OP_COMMA, ","));
                    if (is_op(P, OP_RBRACKET)) break;
                }
                jnode *e;
                TRY(parse_expr(P, true, &e));
                if (!nodes_push(P, &n->list, e)) return OWL_ERR_NOMEM;
            }
            adv(P);
            break;
        }
        if (t->op == OP_LBRACE) {
            adv(P);
            NEW(n, N_DICT, t);
            while (!is_op(P, OP_RBRACE)) {
                if (n->list.n) {
                    TRY(expect_op(P, OP_COMMA, ","));
                    if (is_op(P, OP_RBRACE)) break;
                }
                jnode *k, *v;
                TRY(parse_expr(P, true, &k));
                TRY(expect_op(P, OP_COLON, ":"));
                TRY(parse_expr(P, true, &v));
                if (!nodes_push(P, &n->list, k) || !nodes_push(P, &n->list2, v)) return OWL_ERR_NOMEM;
            }
            adv(P);
            break;
        }
        /* fall through */
    default:
        return perr(t, "unexpected %s", describe(t));
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
            return perr(a, "expected name or number after '.', got %s", describe(a));
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
            if (np >= 2) return perr(cur(P), "too many ':' in slice");
            np++;
            adv(P);
            continue;
        }
        if (is_op(P, OP_RBRACKET)) break;
        if (is_op(P, OP_COMMA)) { /* x[a, b] is x[(a, b)] */
            if (slice || !parts[0]) return perr(cur(P), "slices in tuple subscripts are not supported");
            jnode *tup;
            NEW(tup, N_TUPLE, cur(P));
            if (!nodes_push(P, &tup->list, parts[0])) return OWL_ERR_NOMEM;
            while (is_op(P, OP_COMMA)) {
                adv(P);
                if (is_op(P, OP_RBRACKET)) break;
                jnode *e;
                TRY(parse_expr(P, true, &e));
                if (!nodes_push(P, &tup->list, e)) return OWL_ERR_NOMEM;
            }
            parts[0] = tup;
            continue;
        }
        if (parts[np]) return perr(cur(P), "expected ']' or ':', got %s", describe(cur(P)));
        TRY(parse_expr(P, true, &parts[np]));
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
            TRY(parse_call_args(P, c));
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
            TRY(expect_name(P, &f->name));
            if (!jinja_filter_known(f->name)) return perr(nt, "unknown or unsupported filter '%s'", f->name);
            f->a = *n;
            if (is_op(P, OP_LPAREN)) TRY(parse_call_args(P, f));
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
            TRY(expect_name(P, &f->name));
            if (!jinja_test_known(f->name)) return perr(nt, "unknown or unsupported test '%s'", f->name);
            f->a = *n;
            f->op = neg;
            const jtok *c = cur(P);
            if (is_op(P, OP_LPAREN)) {
                TRY(parse_call_args(P, f));
            } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
                        (c->type == TK_OP && (c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
                if (is_name(P, "is")) return perr(c, "cannot chain multiple tests with 'is'");
                jnode *arg;
                TRY(parse_primary(P, &arg));
                TRY(parse_postfix(P, &arg));
                if (!nodes_push(P, &f->list, arg)) return OWL_ERR_NOMEM;
            }
            *n = f;
        } else if (is_op(P, OP_LPAREN)) {
            jnode *c;
            NEW(c, N_CALL, cur(P));
            c->a = *n;
            TRY(parse_call_args(P, c));
            *n = c;
        } else {
            return OWL_OK;
        }
    }
}

static owl_status parse_unary(parser *P, bool with_filter, jnode **out) {
    const jtok *t = cur(P);
    jnode *n;
    TRY(enter(P));
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
    if (!nodes_push(P, &c->list, *out)) return OWL_ERR_NOMEM;
    while (is_op(P, OP_TILDE)) {
        adv(P);
        jnode *r;
        TRY(parse_math2(P, &r));
        if (!nodes_push(P, &c->list, r)) return OWL_ERR_NOMEM;
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
            if (!nodes_push(P, &c->list, first)) return OWL_ERR_NOMEM;
        }
        jnode *r;
        TRY(parse_math1(P, &r));
        uint8_t *ops = jmem_grow(P->m, c->ops, c->list.n - 1, c->list.n);
        if (!ops || !nodes_push(P, &c->list, r)) return OWL_ERR_NOMEM;
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
        TRY(enter(P));
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

static owl_status parse_expr(parser *P, bool with_cond, jnode **out) {
    TRY(enter(P));
    TRY(parse_or(P, out));
    while (with_cond && is_name(P, "if")) {
        jnode *n;
        NEW(n, N_COND, cur(P));
        adv(P);
        n->b = *out;
        TRY(parse_or(P, &n->a));
        if (is_name(P, "else")) {
            adv(P);
            TRY(parse_expr(P, true, &n->c));
        }
        *out = n;
    }
    P->depth--;
    return OWL_OK;
}

/* ---- statements ---- */

static owl_status parse_body(parser *P, const char *const *ends, const jtok *opener, const char *what,
                             jnodes *body, const char **end_found);

/* Assignment target: name, name.attr (namespace, when allow_attr) or
 * a, b (tuple unpacking). */
static owl_status parse_target(parser *P, jnode *n, bool allow_attr) {
    const char *name;
    bool paren = is_op(P, OP_LPAREN);
    if (paren) adv(P);
    TRY(expect_name(P, &name));
    if (!names_push(P, n, name)) return OWL_ERR_NOMEM;
    if (allow_attr && !paren && is_op(P, OP_DOT)) {
        adv(P);
        TRY(expect_name(P, &n->attr));
        return OWL_OK;
    }
    while (is_op(P, OP_COMMA)) {
        adv(P);
        if (paren && is_op(P, OP_RPAREN)) break;
        TRY(expect_name(P, &name));
        if (!names_push(P, n, name)) return OWL_ERR_NOMEM;
    }
    if (paren) TRY(expect_op(P, OP_RPAREN, ")"));
    return OWL_OK;
}

static owl_status parse_if(parser *P, const jtok *tag, jnode **out) {
    jnode *n;
    NEW(n, N_IF, tag);
    TRY(parse_expr(P, false, &n->a));
    TRY(expect_block_end(P, "if"));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *end;
    TRY(parse_body(P, ends, tag, "if", &n->list, &end));
    if (strcmp(end, "elif") == 0) {
        jnode *e;
        TRY(parse_if(P, &P->t[P->i - 1], &e));
        if (!nodes_push(P, &n->list2, e)) return OWL_ERR_NOMEM;
        *out = n;
        return OWL_OK; /* the nested if consumed endif */
    }
    if (strcmp(end, "else") == 0) {
        TRY(expect_block_end(P, "else"));
        static const char *const ends2[] = {"endif", NULL};
        TRY(parse_body(P, ends2, tag, "if", &n->list2, &end));
    }
    TRY(expect_block_end(P, "endif"));
    *out = n;
    return OWL_OK;
}

static owl_status parse_for(parser *P, const jtok *tag, jnode **out) {
    jnode *n;
    NEW(n, N_FOR, tag);
    TRY(parse_target(P, n, false));
    if (!is_name(P, "in")) return perr(cur(P), "expected 'in' in for loop, got %s", describe(cur(P)));
    adv(P);
    TRY(parse_tuple(P, false, false, &n->a));
    if (is_name(P, "if")) {
        adv(P);
        TRY(parse_expr(P, true, &n->b));
    }
    if (is_name(P, "recursive")) return perr(cur(P), "recursive for loops are not supported");
    TRY(expect_block_end(P, "for"));
    static const char *const ends[] = {"else", "endfor", NULL};
    const char *end;
    P->loop_depth++;
    TRY(parse_body(P, ends, tag, "for", &n->list, &end));
    P->loop_depth--;
    if (strcmp(end, "else") == 0) {
        TRY(expect_block_end(P, "else"));
        static const char *const ends2[] = {"endfor", NULL};
        TRY(parse_body(P, ends2, tag, "for", &n->list2, &end));
    }
    TRY(expect_block_end(P, "endfor"));
    *out = n;
    return OWL_OK;
}

/* Filters after a block set / filter tag: | f(args) | g ... applied to
 * n->a == NULL (the block's text). Returns the outermost filter. */
static owl_status parse_block_filters(parser *P, jnode **chain, bool need_one) {
    *chain = NULL;
    if (need_one) {
        const jtok *nt = cur(P);
        jnode *f;
        NEW(f, N_FILTER, nt);
        TRY(expect_name(P, &f->name));
        if (!jinja_filter_known(f->name)) return perr(nt, "unknown or unsupported filter '%s'", f->name);
        if (is_op(P, OP_LPAREN)) TRY(parse_call_args(P, f));
        *chain = f;
    }
    while (is_op(P, OP_PIPE)) {
        adv(P);
        const jtok *nt = cur(P);
        jnode *f;
        NEW(f, N_FILTER, nt);
        TRY(expect_name(P, &f->name));
        if (!jinja_filter_known(f->name)) return perr(nt, "unknown or unsupported filter '%s'", f->name);
        if (is_op(P, OP_LPAREN)) TRY(parse_call_args(P, f));
        f->a = *chain;
        *chain = f;
    }
    return OWL_OK;
}

static owl_status parse_set(parser *P, const jtok *tag, jnode **out) {
    jnode *n;
    NEW(n, N_SET, tag);
    TRY(parse_target(P, n, true));
    if (is_op(P, OP_ASSIGN)) {
        adv(P);
        TRY(parse_tuple(P, true, false, &n->a));
        TRY(expect_block_end(P, "set"));
        *out = n;
        return OWL_OK;
    }
    if (n->n_names != 1) return perr(cur(P), "expected '=' after set target, got %s", describe(cur(P)));
    n->kind = N_SETBLOCK;
    TRY(parse_block_filters(P, &n->b, false));
    TRY(expect_block_end(P, "set"));
    static const char *const ends[] = {"endset", NULL};
    const char *end;
    TRY(parse_body(P, ends, tag, "set", &n->list, &end));
    TRY(expect_block_end(P, "endset"));
    *out = n;
    return OWL_OK;
}

static owl_status parse_macro(parser *P, const jtok *tag, jnode **out) {
    jnode *n;
    NEW(n, N_MACRO, tag);
    TRY(expect_name(P, &n->name));
    TRY(expect_op(P, OP_LPAREN, "("));
    while (!is_op(P, OP_RPAREN)) {
        if (n->n_names) TRY(expect_op(P, OP_COMMA, ","));
        const char *pn;
        TRY(expect_name(P, &pn));
        jnode *def = NULL;
        if (is_op(P, OP_ASSIGN)) {
            adv(P);
            TRY(parse_expr(P, true, &def));
        } else if (n->list2.n) {
            /* jinja2: a parameter without default after one with a default */
            return perr(cur(P), "non-default argument follows default argument");
        }
        if (!names_push(P, n, pn)) return OWL_ERR_NOMEM;
        if (def && !nodes_push(P, &n->list2, def)) return OWL_ERR_NOMEM;
    }
    adv(P);
    TRY(expect_block_end(P, "macro"));
    static const char *const ends[] = {"endmacro", NULL};
    const char *end;
    int saved = P->loop_depth;
    P->loop_depth = 0;
    TRY(parse_body(P, ends, tag, "macro", &n->list, &end));
    P->loop_depth = saved;
    if (cur(P)->type == TK_NAME) adv(P); /* {% endmacro name %} */
    TRY(expect_block_end(P, "endmacro"));
    *out = n;
    return OWL_OK;
}

static const char *const unsupported_tags[] = {
    "include", "import", "from", "extends", "block", "call", "with", "do", "autoescape",
    "trans", "pluralize", NULL};

static owl_status parse_body(parser *P, const char *const *ends, const jtok *opener, const char *what,
                             jnodes *body, const char **end_found) {
    TRY(enter(P));
    for (;;) {
        const jtok *t = cur(P);
        jnode *n = NULL;
        if (t->type == TK_EOF) {
            if (!ends) break;
            const char *want = ends[0];
            for (size_t i = 0; ends[i]; i++)
                if (strncmp(ends[i], "end", 3) == 0) want = ends[i];
            return perr(opener, "unclosed '%s' block: reached the end of the template looking for '%s'", what, want);
        }
        if (t->type == TK_TEXT) {
            NEW(n, N_TEXT, t);
            n->val = jv_str(P->m, t->s, t->len);
            if (n->val.t != JV_STR) return OWL_ERR_NOMEM;
            adv(P);
        } else if (t->type == TK_VAR_BEGIN) {
            adv(P);
            NEW(n, N_PRINT, t);
            if (cur(P)->type == TK_VAR_END) return perr(cur(P), "expected an expression, got '}}'");
            TRY(parse_tuple(P, true, false, &n->a));
            if (cur(P)->type != TK_VAR_END) return perr(cur(P), "expected '}}', got %s", describe(cur(P)));
            adv(P);
        } else if (t->type == TK_BLOCK_BEGIN) {
            adv(P);
            const jtok *tag = cur(P);
            if (tag->type != TK_NAME) return perr(tag, "expected a tag name after '{%%', got %s", describe(tag));
            for (size_t i = 0; ends && ends[i]; i++)
                if (strcmp(tag->s, ends[i]) == 0) {
                    adv(P);
                    *end_found = ends[i];
                    P->depth--;
                    return OWL_OK;
                }
            adv(P);
            const char *tn = tag->s;
            if (strcmp(tn, "if") == 0) TRY(parse_if(P, tag, &n));
            else if (strcmp(tn, "for") == 0) TRY(parse_for(P, tag, &n));
            else if (strcmp(tn, "set") == 0) TRY(parse_set(P, tag, &n));
            else if (strcmp(tn, "macro") == 0) TRY(parse_macro(P, tag, &n));
            else if (strcmp(tn, "break") == 0 || strcmp(tn, "continue") == 0) {
                if (P->loop_depth == 0) return perr(tag, "'%s' outside of a for loop", tn);
                NEW(n, tn[0] == 'b' ? N_BREAK : N_CONTINUE, tag);
                TRY(expect_block_end(P, tn));
            } else if (strcmp(tn, "filter") == 0) {
                NEW(n, N_FILTERBLOCK, tag);
                TRY(parse_block_filters(P, &n->b, true));
                TRY(expect_block_end(P, "filter"));
                static const char *const fends[] = {"endfilter", NULL};
                const char *end;
                TRY(parse_body(P, fends, tag, "filter", &n->list, &end));
                TRY(expect_block_end(P, "endfilter"));
            } else if (strcmp(tn, "generation") == 0) {
                /* Hugging Face's {% generation %} (AssistantTracker): marks
                 * assistant text, renders its body as it is */
                NEW(n, N_FILTERBLOCK, tag);
                TRY(expect_block_end(P, "generation"));
                static const char *const gends[] = {"endgeneration", NULL};
                const char *end;
                TRY(parse_body(P, gends, tag, "generation", &n->list, &end));
                TRY(expect_block_end(P, "endgeneration"));
            } else {
                for (size_t i = 0; unsupported_tags[i]; i++)
                    if (strcmp(tn, unsupported_tags[i]) == 0) return perr(tag, "unsupported tag '%s'", tn);
                if (ends) return perr(tag, "unknown tag '%s' (inside '%s' block, expected '%s')", tn, what, ends[0]);
                return perr(tag, "unknown tag '%s'", tn);
            }
        } else {
            return perr(t, "unexpected %s", describe(t));
        }
        if (!nodes_push(P, body, n)) return OWL_ERR_NOMEM;
    }
    P->depth--;
    return OWL_OK;
}

owl_status jinja_parse(jmem *m, const jtok *toks, size_t n, jparsed *out) {
    parser P = {.m = m, .t = toks, .n = n};
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    return parse_body(&P, NULL, toks, "template", &out->body, &end);
}
