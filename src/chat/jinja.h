/* Internal interface of the Jinja interpreter: memory, values, tokens, syntax
 * tree, evaluator state. Only files in src/chat/ include it. */
#ifndef OWL_JINJA_H
#define OWL_JINJA_H

#include "chat/chat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory: a bump allocator with a byte budget ---- */
typedef struct jmem_block jmem_block;
typedef struct jmem {
    jmem_block *head;
    size_t used;  /* bytes handed out in all blocks */
    size_t limit; /* 0: none */
} jmem;
void *jmem_alloc(jmem *m, size_t n); /* zeroed, 16-aligned; NULL + error text on failure */
void *jmem_grow(jmem *m, void *p, size_t old_n, size_t new_n);
void jmem_free(jmem *m);

/* ---- values (Python semantics) ---- */
typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
    JV_NS, JV_LOOP, JV_MACRO, JV_FUNC, JV_METHOD,
} jtype;

typedef struct jstr { size_t len; char s[]; } jstr; /* NUL-terminated UTF-8 */
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jloop jloop;
typedef struct jmacro jmacro;
typedef struct jmethod jmethod;

typedef struct jval {
    uint8_t t;
    uint8_t tuple; /* JV_LIST: 0 list, 1 tuple, 2 iterator (generator), 3 dict_keys,
                      4 dict_values, 5 dict_items; JV_STR: 1 Markup (from safe, escape) */
    union {
        bool b;
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d; /* JV_DICT, JV_NS */
        jloop *loop;
        jmacro *m;
        int fn; /* JV_FUNC */
        jmethod *bm;
        const char *hint; /* JV_UNDEF: why ("'x' is undefined"), may be NULL */
    } u;
} jval;

struct jlist {
    size_t n, cap;
    jval *v;
    const char *poison; /* an iterator whose (lazy, in jinja2) computation failed: the error */
};
struct jdict { size_t n, cap; jval *k, *v; };
struct jloop {
    int64_t index0, length, depth0;
    const jlist *items;
};
struct jmethod { jval self; const char *name; };

jval jv_undef(const char *hint);
jval jv_none(void);
jval jv_bool(bool b);
jval jv_int(int64_t i);
jval jv_float(double f);
jstr *jstr_new(jmem *m, const char *s, size_t len); /* s NULL: zeroed */
jval jv_str(jmem *m, const char *s, size_t len); /* t = JV_UNDEF on allocation failure */
jval jv_cstr(jmem *m, const char *s);
jlist *jlist_new(jmem *m, size_t cap);
bool jlist_push(jmem *m, jlist *l, jval v);
jdict *jdict_new(jmem *m, size_t cap);
bool jdict_set(jmem *m, jdict *d, jval k, jval v); /* replaces an equal key */
jval *jdict_get(const jdict *d, jval k);
jval *jdict_gets(const jdict *d, const char *key, size_t len);
jval jv_list(jlist *l);
jval jv_dict(jdict *d);

bool jv_truthy(jval v);
bool jv_equal(jval a, jval b);
bool jv_is_num(jval v); /* int, float or bool */
double jv_num(jval v);
const char *jv_type_name(jval v); /* Python's type name: 'str', 'dict', ... */

/* Growable byte buffer (malloc'd) with a size limit. */
typedef struct jbuf { char *p; size_t n, cap, limit; } jbuf;
bool jbuf_add(jbuf *b, const char *s, size_t n); /* false + error text past limit */
bool jbuf_addc(jbuf *b, char c);
bool jbuf_addf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_free(jbuf *b);

/* Python str(v) and repr(v) appended to b. false + error text on failure
 * (an object that has no printable form here, or the size limit). */
bool jv_write_str(jbuf *b, jval v);
bool jv_write_repr(jbuf *b, jval v);
void jv_float_repr(double f, char out[32]); /* Python repr(float) */
/* json.dumps(v, ensure_ascii, indent (<0: none), separators, sort_keys). */
bool jv_write_json(jbuf *b, jval v, bool ensure_ascii, int indent, const char *item_sep,
                   const char *key_sep, bool sort_keys);
/* str(v) as a value (strings are returned as they are). */
bool jv_to_str(jmem *m, jval v, jstr **out);
/* Converts a JSON document into values. */
owl_status jv_from_json(jmem *m, const char *json, jval *out);

/* UTF-8 helpers on Python code points. */
size_t ju_count(const char *s, size_t n);               /* code points */
size_t ju_offset(const char *s, size_t n, size_t cp);   /* byte offset of code point cp */
uint32_t ju_decode(const char *s, size_t n, size_t *adv); /* one code point */
size_t ju_encode(uint32_t cp, char out[4]);
bool ju_isspace(uint32_t cp); /* Python str.isspace */
/* Whether s is valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF); *bad gets the offset of the first bad byte. */
bool ju_valid(const char *s, size_t n, size_t *bad);

/* ---- tokens ---- */
typedef enum {
    TK_EOF, TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP,
} jtok_type;

typedef enum {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_ASSIGN,
    OP_LPAREN, OP_RPAREN, OP_LBRACKET, OP_RBRACKET, OP_LBRACE, OP_RBRACE,
    OP_COMMA, OP_DOT, OP_COLON, OP_PIPE, OP_SEMI,
    OP_IN, OP_NOTIN, /* compare operators made by the parser */
} jop;

typedef struct jtok {
    uint8_t type;
    uint8_t op;
    int line, col;
    const char *s; /* TEXT, NAME, STRING: arena copy */
    size_t len;
    int64_t i;
    double f;
} jtok;

/* Splits normalized source into tokens (arena-allocated array ending in
 * TK_EOF). Applies whitespace control, trim_blocks, lstrip_blocks, raw and
 * comments. */
owl_status jinja_lex(jmem *m, const char *src, size_t len, jtok **toks, size_t *n);

/* ---- syntax tree ---- */
typedef enum {
    /* statements */
    N_TEXT, N_PRINT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK, N_CONTINUE,
    N_FILTERBLOCK, N_WITH,
    /* expressions */
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_GETATTR, N_GETITEM, N_SLICE, N_CALL,
    N_FILTER, N_TEST, N_NEG, N_POS, N_NOT, N_AND, N_OR, N_BINOP, N_COMPARE, N_COND,
    N_CONCAT,
} jnode_kind;

typedef struct jnode jnode;
typedef struct jnodes { jnode **v; size_t n, cap; } jnodes;

struct jnode {
    uint8_t kind;
    uint8_t op;      /* N_BINOP: jop; N_TEST: negated; N_IF: 1 for an elif */
    int line, col;
    const char *name;  /* NAME, GETATTR attr, FILTER/TEST name, SET/MACRO target */
    const char *attr;  /* N_SET/N_SETBLOCK: namespace attribute (name.attr = ...) */
    jnode *a, *b, *c, *d;
    jnodes list;     /* body, args, items, operands, dict keys */
    jnodes list2;    /* else body, kwarg values, dict values */
    const char **names; /* kwarg names, for/set targets, macro params */
    size_t n_names;
    uint8_t *ops;    /* N_COMPARE: operators between operands */
    jval val;        /* N_CONST */
    /* Names that start undefined in the scope this node opens (for body,
     * macro, block set, filter block), shadowing outer values: see
     * jinja_scope.c. undef2: the for loop's else block. */
    const char **undef, **undef2;
    size_t n_undef, n_undef2;
};

typedef struct jparsed {
    jnodes body;
    const char **undef; /* names that start undefined at the top level */
    size_t n_undef;
} jparsed;

/* jinja2's compile-time scoping: which names each scope starts with as
 * undefined (jinja_scope.c). */
owl_status jinja_analyze(jmem *m, jparsed *tree);

owl_status jinja_parse(jmem *m, const jtok *toks, size_t n, jparsed *out);

/* ---- evaluation ---- */
typedef struct jscope jscope;
struct jscope {
    jscope *parent;
    size_t n, cap;
    const char **names;
    jval *vals;
};

struct jmacro { const jnode *node; jscope *scope; };

typedef enum { FN_RANGE, FN_NAMESPACE, FN_DICT, FN_RAISE, FN_STRFTIME, FN_UNSUPPORTED } jfunc;

typedef struct jstate {
    jmem *mem;
    jbuf *out;
    jscope *globals;
    int64_t iterations;
    uint64_t work;   /* bytes and items scanned by searches, methods, filters */
    int depth;       /* macro calls in progress */
    int eval_depth;  /* nested expression evaluations on the C stack */
    bool fixed_now;
    int64_t now;
} jstate;

/* Error text with position: returns false so that callers can
 * "return jerr(node, ...)". */
bool jerr(const jnode *at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool jerr_again(const char *text);
/* Charges units of work (bytes or items scanned); false + error past
 * OWL_TEMPLATE_MAX_WORK, so that no template runs for long. */
bool jinja_work(jstate *st, const jnode *at, uint64_t units);
/* A failure reported without a position gets at's; returns false. */
bool jinja_fail_at(const jnode *at);
void jinja_reset_error(void);

bool jinja_exec_body(jstate *st, jscope *sc, const jnodes *body, int *ctl);
bool jinja_bind_undef(jstate *st, jscope *sc, const char **names, size_t n);
bool jinja_eval(jstate *st, jscope *sc, const jnode *e, jval *out);
bool jinja_call_macro(jstate *st, const jnode *at, jmacro *m, const jval *args, size_t nargs,
                      const char **kwn, const jval *kwv, size_t nkw, jval *out);

/* Filters, tests, methods and functions (jinja_filters.c, jinja_methods.c). */
bool jinja_filter_known(const char *name);
bool jinja_test_known(const char *name);
typedef struct jargs {
    const jval *pos;
    size_t npos;
    const char **kwn;
    const jval *kwv;
    size_t nkw;
} jargs;
bool jinja_filter(jstate *st, const jnode *at, const char *name, jval subject, const jargs *a,
                  jval *out);
bool jinja_test(jstate *st, const jnode *at, const char *name, jval subject, const jargs *a,
                bool *out);
/* Binds positional and keyword arguments to parameter names: the first
 * nreq are required, the others default to defs[i - nreq]. */
bool jinja_bind(const jnode *at, const char *what, const jargs *a, const char *const *params,
                size_t n, size_t nreq, const jval *defs, jval *out);
/* Attribute lookup as jinja2's sandbox getattr / getitem. */
bool jinja_getattr(jstate *st, const jnode *at, jval obj, const char *name, jval *out);
bool jinja_getitem(jstate *st, const jnode *at, jval obj, jval key, jval *out);
bool jinja_call_method(jstate *st, const jnode *at, jmethod *bm, const jargs *a, jval *out);
bool jinja_call_func(jstate *st, const jnode *at, int fn, const jargs *a, jval *out);
bool jinja_global(const char *name, jval *out);
/* fmt % args with Python's printf-style rules; markup: fmt is a Markup
 * (arguments are escaped, the result is a Markup). */
bool jinja_printf(jstate *st, const jnode *at, const jstr *fmt, bool markup, jval args, jval *out);
/* Markup semantics (jinja2 with autoescape off still has them for |safe and
 * |e): escape(v) is v for a Markup, else the HTML-escaped str(v), marked. */
bool jinja_escape(jmem *m, jval v, jval *out);
static inline bool jv_is_markup(jval v) { return v.t == JV_STR && v.tuple == 1; }
/* Operators (jinja_ops.c): a op b for + - * / // % **; == != < <= > >= in
 * and not in. */
bool jinja_arith(jstate *st, const jnode *at, int op, jval a, jval b, jval *out);
bool jinja_compare_op(jstate *st, const jnode *at, int op, jval a, jval b, bool *out);
/* Python-ordered comparison (<0, 0, >0); false + error when not comparable. */
bool jinja_compare(const jnode *at, jval a, jval b, bool ignore_case, int *out);
/* Iterates a value into a list (str -> characters, dict -> keys). */
bool jinja_iter(jstate *st, const jnode *at, jval v, jlist **out);
/* String helpers shared by filters and methods. */
bool jinja_str_case(jmem *m, const jstr *s, int mode, jval *out); /* 0 lower 1 upper 2 capitalize 3 str.title 4 filter title */
bool jinja_str_strip(jmem *m, const jstr *s, jval chars, int which, jval *out); /* 1 left 2 right 3 both */
bool jinja_str_replace(jstate *st, const jnode *at, const jstr *s, const jstr *old, const jstr *new_,
                       int64_t count, jval *out);

#endif
