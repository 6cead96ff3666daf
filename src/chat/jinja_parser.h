/* Internal to the Jinja parser (jinja_parse.c statements,
 * jinja_parse_expr.c expressions): parser state and token helpers. */
#ifndef OWL_JINJA_PARSER_H
#define OWL_JINJA_PARSER_H

#include "chat/jinja.h"

#include <string.h>

typedef struct parser {
    jmem *m;
    const jtok *t;
    size_t n, i;
    int depth;      /* expression / block nesting */
    int loop_depth; /* for loops around the current statement (reset in macros) */
} parser;

static inline const jtok *cur(parser *P) { return &P->t[P->i]; }
static inline const jtok *peek(parser *P, size_t k) { return P->i + k < P->n ? &P->t[P->i + k] : &P->t[P->n - 1]; }
static inline void adv(parser *P) { if (P->i + 1 < P->n) P->i++; }
static inline bool is_op(parser *P, int op) { return cur(P)->type == TK_OP && cur(P)->op == op; }
static inline bool tok_is_name(const jtok *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}
static inline bool is_name(parser *P, const char *name) { return tok_is_name(cur(P), name); }

#define TRY(x) do { owl_status s_ = (x); if (s_) return s_; } while (0)
#define NEW(var, kind, at) do { if (!((var) = jparse_node(P, kind, at))) return OWL_ERR_NOMEM; } while (0)

const char *jparse_describe(const jtok *t);
owl_status jparse_err(const jtok *at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
jnode *jparse_node(parser *P, int kind, const jtok *at);
bool jparse_push(parser *P, jnodes *l, jnode *x);
bool jparse_push_name(parser *P, jnode *n, const char *name);
owl_status jparse_expect_op(parser *P, int op, const char *what);
owl_status jparse_expect_name(parser *P, const char **out);
owl_status jparse_enter(parser *P);

/* Expressions (jinja_parse_expr.c). */
owl_status jparse_expr(parser *P, bool with_cond, jnode **out);
owl_status jparse_tuple(parser *P, bool with_cond, bool explicit, jnode **out);
owl_status jparse_call_args(parser *P, jnode *call);

#endif
