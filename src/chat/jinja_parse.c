/* Jinja parser, statements: tokens -> syntax tree (text, output, if, for,
 * set, macro, filter and generation blocks, loop controls). Unknown tags are
 * errors naming the tag and its line:column. */
#include "chat/jinja_parser.h"

#include <string.h>

static owl_status expect_block_end(parser *P, const char *tag) {
    if (cur(P)->type != TK_BLOCK_END)
        return jparse_err(cur(P), "expected end of '%s' tag ('%%}'), got %s", tag, jparse_describe(cur(P)));
    adv(P);
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
    TRY(jparse_expect_name(P, &name));
    if (!jparse_push_name(P, n, name)) return OWL_ERR_NOMEM;
    if (allow_attr && !paren && is_op(P, OP_DOT)) {
        adv(P);
        TRY(jparse_expect_name(P, &n->attr));
        return OWL_OK;
    }
    while (is_op(P, OP_COMMA)) {
        adv(P);
        if (paren && is_op(P, OP_RPAREN)) break;
        TRY(jparse_expect_name(P, &name));
        if (!jparse_push_name(P, n, name)) return OWL_ERR_NOMEM;
    }
    if (paren) TRY(jparse_expect_op(P, OP_RPAREN, ")"));
    return OWL_OK;
}

static owl_status parse_if(parser *P, const jtok *tag, jnode **out) {
    jnode *n;
    NEW(n, N_IF, tag);
    TRY(jparse_expr(P, false, &n->a));
    TRY(expect_block_end(P, "if"));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *end;
    TRY(parse_body(P, ends, tag, "if", &n->list, &end));
    if (strcmp(end, "elif") == 0) {
        jnode *e;
        TRY(parse_if(P, &P->t[P->i - 1], &e));
        e->op = 1; /* an elif: scope analysis follows jinja2's flat elif list */
        if (!jparse_push(P, &n->list2, e)) return OWL_ERR_NOMEM;
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
    if (!is_name(P, "in")) return jparse_err(cur(P), "expected 'in' in for loop, got %s", jparse_describe(cur(P)));
    adv(P);
    TRY(jparse_tuple(P, false, false, &n->a));
    if (is_name(P, "if")) {
        adv(P);
        TRY(jparse_expr(P, true, &n->b));
    }
    if (is_name(P, "recursive")) return jparse_err(cur(P), "recursive for loops are not supported");
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
        TRY(jparse_expect_name(P, &f->name));
        if (!jinja_filter_known(f->name)) return jparse_err(nt, "unknown or unsupported filter '%s'", f->name);
        if (is_op(P, OP_LPAREN)) TRY(jparse_call_args(P, f));
        *chain = f;
    }
    while (is_op(P, OP_PIPE)) {
        adv(P);
        const jtok *nt = cur(P);
        jnode *f;
        NEW(f, N_FILTER, nt);
        TRY(jparse_expect_name(P, &f->name));
        if (!jinja_filter_known(f->name)) return jparse_err(nt, "unknown or unsupported filter '%s'", f->name);
        if (is_op(P, OP_LPAREN)) TRY(jparse_call_args(P, f));
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
        TRY(jparse_tuple(P, true, false, &n->a));
        TRY(expect_block_end(P, "set"));
        *out = n;
        return OWL_OK;
    }
    if (n->n_names != 1) return jparse_err(cur(P), "expected '=' after set target, got %s", jparse_describe(cur(P)));
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
    TRY(jparse_expect_name(P, &n->name));
    TRY(jparse_expect_op(P, OP_LPAREN, "("));
    while (!is_op(P, OP_RPAREN)) {
        if (n->n_names) TRY(jparse_expect_op(P, OP_COMMA, ","));
        const char *pn;
        const jtok *pt = cur(P);
        TRY(jparse_expect_name(P, &pn));
        for (size_t i = 0; i < n->n_names; i++)
            if (strcmp(n->names[i], pn) == 0) return jparse_err(pt, "duplicate argument '%s' in macro '%s'", pn, n->name);
        jnode *def = NULL;
        if (is_op(P, OP_ASSIGN)) {
            adv(P);
            TRY(jparse_expr(P, true, &def));
        } else if (n->list2.n) {
            /* jinja2: a parameter without default after one with a default */
            return jparse_err(cur(P), "non-default argument follows default argument");
        }
        if (!jparse_push_name(P, n, pn)) return OWL_ERR_NOMEM;
        if (def && !jparse_push(P, &n->list2, def)) return OWL_ERR_NOMEM;
    }
    adv(P);
    TRY(expect_block_end(P, "macro"));
    static const char *const ends[] = {"endmacro", NULL};
    const char *end;
    int saved = P->loop_depth;
    P->loop_depth = 0;
    TRY(parse_body(P, ends, tag, "macro", &n->list, &end));
    P->loop_depth = saved;
    TRY(expect_block_end(P, "endmacro"));
    *out = n;
    return OWL_OK;
}

static const char *const unsupported_tags[] = {
    "include", "import", "from", "extends", "block", "call", "do", "autoescape",
    "trans", "pluralize", NULL};

static owl_status parse_body(parser *P, const char *const *ends, const jtok *opener, const char *what,
                             jnodes *body, const char **end_found) {
    TRY(jparse_enter(P));
    for (;;) {
        const jtok *t = cur(P);
        jnode *n = NULL;
        if (t->type == TK_EOF) {
            if (!ends) break;
            const char *want = ends[0];
            for (size_t i = 0; ends[i]; i++)
                if (strncmp(ends[i], "end", 3) == 0) want = ends[i];
            return jparse_err(opener, "unclosed '%s' block: reached the end of the template looking for '%s'", what, want);
        }
        if (t->type == TK_TEXT) {
            NEW(n, N_TEXT, t);
            n->val = jv_str(P->m, t->s, t->len);
            if (n->val.t != JV_STR) return OWL_ERR_NOMEM;
            adv(P);
        } else if (t->type == TK_VAR_BEGIN) {
            adv(P);
            NEW(n, N_PRINT, t);
            if (cur(P)->type == TK_VAR_END) return jparse_err(cur(P), "expected an expression, got '}}'");
            TRY(jparse_tuple(P, true, false, &n->a));
            if (cur(P)->type != TK_VAR_END) return jparse_err(cur(P), "expected '}}', got %s", jparse_describe(cur(P)));
            adv(P);
        } else if (t->type == TK_BLOCK_BEGIN) {
            adv(P);
            const jtok *tag = cur(P);
            if (tag->type != TK_NAME) return jparse_err(tag, "expected a tag name after '{%%', got %s", jparse_describe(tag));
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
                if (P->loop_depth == 0) return jparse_err(tag, "'%s' outside of a for loop", tn);
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
            } else if (strcmp(tn, "with") == 0) {
                /* {% with a = 1, b = x %}...{% endwith %}: a scope with names */
                NEW(n, N_WITH, tag);
                while (cur(P)->type != TK_BLOCK_END) {
                    if (n->n_names) TRY(jparse_expect_op(P, OP_COMMA, ","));
                    const char *name;
                    TRY(jparse_expect_name(P, &name));
                    TRY(jparse_expect_op(P, OP_ASSIGN, "="));
                    jnode *v;
                    TRY(jparse_expr(P, true, &v));
                    if (!jparse_push_name(P, n, name) || !jparse_push(P, &n->list2, v)) return OWL_ERR_NOMEM;
                }
                TRY(expect_block_end(P, "with"));
                static const char *const wends[] = {"endwith", NULL};
                const char *end;
                TRY(parse_body(P, wends, tag, "with", &n->list, &end));
                TRY(expect_block_end(P, "endwith"));
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
                    if (strcmp(tn, unsupported_tags[i]) == 0) return jparse_err(tag, "unsupported tag '%s'", tn);
                if (ends) return jparse_err(tag, "unknown tag '%s' (inside '%s' block, expected '%s')", tn, what, ends[0]);
                return jparse_err(tag, "unknown tag '%s'", tn);
            }
        } else {
            return jparse_err(t, "unexpected %s", jparse_describe(t));
        }
        if (!jparse_push(P, body, n)) return OWL_ERR_NOMEM;
    }
    P->depth--;
    return OWL_OK;
}

/* jinja2 checks at compile time that filters and tests exist, except in
 * "soft" places (if tests and bodies, conditional expressions, without
 * crossing into a new scope), where the error waits until the filter runs. */
static owl_status check_expr(const jnode *e, bool soft) {
    if (!e) return OWL_OK;
    if (e->kind == N_COND) soft = true;
    if (!soft && e->kind == N_FILTER && !jinja_filter_known(e->name))
        return owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: unknown or unsupported filter '%s'", e->line, e->col, e->name);
    if (!soft && e->kind == N_TEST && !jinja_test_known(e->name))
        return owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: unknown or unsupported test '%s'", e->line, e->col, e->name);
    TRY(check_expr(e->a, soft));
    TRY(check_expr(e->b, soft));
    TRY(check_expr(e->c, soft));
    TRY(check_expr(e->d, soft));
    for (size_t i = 0; i < e->list.n; i++) TRY(check_expr(e->list.v[i], soft));
    for (size_t i = 0; i < e->list2.n; i++) TRY(check_expr(e->list2.v[i], soft));
    return OWL_OK;
}

static owl_status check_body(const jnodes *body, bool soft) {
    for (size_t i = 0; i < body->n; i++) {
        const jnode *n = body->v[i];
        switch (n->kind) {
        case N_PRINT: TRY(check_expr(n->a, soft)); break;
        case N_IF:
            TRY(check_expr(n->a, true));
            TRY(check_body(&n->list, true));
            TRY(check_body(&n->list2, true));
            break;
        case N_FOR:
            TRY(check_expr(n->a, soft));
            TRY(check_expr(n->b, false));
            TRY(check_body(&n->list, false));
            TRY(check_body(&n->list2, false));
            break;
        case N_SET: TRY(check_expr(n->a, soft)); break;
        case N_WITH:
            for (size_t k = 0; k < n->list2.n; k++) TRY(check_expr(n->list2.v[k], soft));
            TRY(check_body(&n->list, false));
            break;
        case N_SETBLOCK: case N_FILTERBLOCK:
            for (const jnode *f = n->b; f; f = f->a) {
                for (size_t k = 0; k < f->list.n; k++) TRY(check_expr(f->list.v[k], false));
                for (size_t k = 0; k < f->list2.n; k++) TRY(check_expr(f->list2.v[k], false));
            }
            TRY(check_body(&n->list, false));
            break;
        case N_MACRO:
            for (size_t k = 0; k < n->list2.n; k++) TRY(check_expr(n->list2.v[k], false));
            TRY(check_body(&n->list, false));
            break;
        default: break;
        }
    }
    return OWL_OK;
}

owl_status jinja_parse(jmem *m, const jtok *toks, size_t n, jparsed *out) {
    parser P = {.m = m, .t = toks, .n = n};
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    TRY(parse_body(&P, NULL, toks, "template", &out->body, &end));
    return check_body(&out->body, false);
}
