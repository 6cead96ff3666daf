/* Jinja lexer: splits template source into text and tag tokens with the
 * whitespace rules of jinja2 configured with trim_blocks and lstrip_blocks
 * ("-" strips all whitespace, "+" keeps it, a block tag eats the newline
 * after it, whitespace before a block tag at the start of a line goes). */
#include "chat/jinja.h"

#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    jmem *m;
    const char *src;
    size_t len, pos;
    jtok *toks;
    size_t n, cap;
    /* line:column of offset cur_off */
    size_t cur_off;
    int line, col;
} lexer;

static void pos_of(lexer *L, size_t off, int *line, int *col) {
    /* positions are asked for in increasing order: walk forward from the last */
    if (off < L->cur_off) {
        L->cur_off = 0;
        L->line = 1;
        L->col = 1;
    }
    for (size_t i = L->cur_off; i < off && i < L->len; i++) {
        if (L->src[i] == '\n') {
            L->line++;
            L->col = 1;
        } else if (((unsigned char)L->src[i] & 0xc0) != 0x80) {
            L->col++;
        }
    }
    L->cur_off = off;
    *line = L->line;
    *col = L->col;
}

static owl_status lex_error(lexer *L, size_t off, const char *fmt, const char *what) {
    int line, col;
    pos_of(L, off, &line, &col);
    return owl_errorf(OWL_ERR_FORMAT, "template:%d:%d: %s%s", line, col, fmt, what ? what : "");
}

static jtok *push(lexer *L, int type, size_t off) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *t = jmem_grow(L->m, L->toks, L->n * sizeof *t, cap * sizeof *t);
        if (!t) return NULL;
        L->toks = t;
        L->cap = cap;
    }
    jtok *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    pos_of(L, off, &t->line, &t->col);
    return t;
}

/* Python's \s: byte length of the whitespace character at p, 0 if none. */
static size_t ws_at(const char *src, size_t len, size_t p) {
    unsigned char c = (unsigned char)src[p];
    if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) ? 1 : 0;
    size_t adv;
    uint32_t cp = ju_decode(src + p, len - p, &adv);
    return ju_isspace(cp) ? adv : 0;
}

/* Skips whitespace from p; returns the new position. */
static size_t skip_ws(const char *src, size_t len, size_t p) {
    size_t w;
    while (p < len && (w = ws_at(src, len, p))) p += w;
    return p;
}

/* Strips whitespace backwards from end down to start. */
static size_t rstrip_ws(const char *src, size_t start, size_t end) {
    while (end > start) {
        size_t k = end - 1;
        while (k > start && ((unsigned char)src[k] & 0xc0) == 0x80) k--;
        if (ws_at(src, end, k) != end - k) break;
        end = k;
    }
    return end;
}

static owl_status add_text(lexer *L, size_t start, size_t end) {
    if (end <= start) return OWL_OK;
    jtok *t = push(L, TK_TEXT, start);
    if (!t) return OWL_ERR_NOMEM;
    t->s = L->src + start;
    t->len = end - start;
    return OWL_OK;
}

/* Text before a tag at tag_start whose sign is sign ('-', '+' or 0);
 * block: the tag is {% or {#. */
static owl_status emit_text_before(lexer *L, size_t start, size_t tag_start, char sign, bool block,
                                   bool line_starting) {
    size_t end = tag_start;
    if (sign == '-') {
        end = rstrip_ws(L->src, start, end);
    } else if (sign != '+' && block) {
        size_t l = end;
        while (l > start && L->src[l - 1] != '\n') l--;
        bool at_line_start = l > start || line_starting;
        if (at_line_start) {
            if (skip_ws(L->src, end, l) == end) end = l;
        }
    }
    return add_text(L, start, end);
}

/* After a tag's closing marker at p (just past it): sign is the character
 * before the marker. Returns the position where text resumes. */
static size_t after_tag(lexer *L, size_t p, char sign, bool trim, bool *line_starting) {
    size_t q = p;
    if (sign == '-') {
        q = skip_ws(L->src, L->len, q);
    } else if (sign != '+' && trim && q < L->len && L->src[q] == '\n') {
        q++;
    }
    *line_starting = q > 0 && L->src[q - 1] == '\n';
    return q;
}

static owl_status lex_string(lexer *L, size_t *pp, jtok *t) {
    size_t p = *pp;
    char q = L->src[p++];
    jbuf b = {0};
    owl_status s = OWL_OK;
    while (p < L->len && L->src[p] != q) {
        char c = L->src[p];
        if (c != '\\' || p + 1 >= L->len) {
            if (!jbuf_addc(&b, c)) { s = OWL_ERR_RANGE; goto out; }
            p++;
            continue;
        }
        char e = L->src[p + 1];
        const char *simple = NULL;
        switch (e) {
        case 'n': simple = "\n"; break;
        case 't': simple = "\t"; break;
        case 'r': simple = "\r"; break;
        case '\\': simple = "\\"; break;
        case '\'': simple = "'"; break;
        case '"': simple = "\""; break;
        case 'a': simple = "\a"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'v': simple = "\v"; break;
        case '\n': simple = ""; break;
        default: break;
        }
        if (simple) {
            if (!jbuf_add(&b, simple, strlen(simple))) { s = OWL_ERR_RANGE; goto out; }
            p += 2;
            continue;
        }
        int hex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (hex || (e >= '0' && e <= '7')) {
            uint32_t cp = 0;
            size_t k = p + 1;
            if (hex) {
                k++;
                for (int i = 0; i < hex; i++, k++) {
                    char h = k < L->len ? L->src[k] : 0;
                    int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                          : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                    if (d < 0) { s = lex_error(L, p, "truncated \\x/\\u escape in string", NULL); goto out; }
                    cp = cp * 16 + (uint32_t)d;
                }
            } else {
                for (int i = 0; i < 3 && k < L->len && L->src[k] >= '0' && L->src[k] <= '7'; i++, k++)
                    cp = cp * 8 + (uint32_t)(L->src[k] - '0');
            }
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                s = lex_error(L, p, "escape outside Unicode in string", NULL);
                goto out;
            }
            char enc[4];
            if (!jbuf_add(&b, enc, ju_encode(cp, enc))) { s = OWL_ERR_RANGE; goto out; }
            p = k;
            continue;
        }
        if (e == 'N') { s = lex_error(L, p, "\\N{...} escapes are not supported", NULL); goto out; }
        /* unknown escape: kept as written */
        if (!jbuf_add(&b, L->src + p, 2)) { s = OWL_ERR_RANGE; goto out; }
        p += 2;
    }
    if (p >= L->len) {
        s = lex_error(L, *pp, "unterminated string", NULL);
        goto out;
    }
    jstr *js = jstr_new(L->m, b.p ? b.p : "", b.n);
    if (!js) { s = OWL_ERR_NOMEM; goto out; }
    t->s = js->s;
    t->len = b.n;
    *pp = p + 1;
out:
    jbuf_free(&b);
    return s;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

static owl_status lex_number(lexer *L, size_t *pp, jtok *t) {
    size_t p = *pp, start = p;
    if (L->src[p] == '0' && p + 2 < L->len && strchr("xXoObB", L->src[p + 1]) && L->src[p + 1]) {
        int base = L->src[p + 1] == 'x' || L->src[p + 1] == 'X' ? 16 : L->src[p + 1] == 'o' || L->src[p + 1] == 'O' ? 8 : 2;
        uint64_t v = 0;
        size_t q = p + 2, digits = 0;
        for (; q < L->len; q++) {
            char c = L->src[q];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (c == '_' && digits) continue;
            if (d < 0 || d >= base) break;
            if (v > (uint64_t)INT64_MAX / (uint64_t)base) return lex_error(L, start, "integer literal too large", NULL);
            v = v * (uint64_t)base + (uint64_t)d;
            digits++;
        }
        if (digits && v <= (uint64_t)INT64_MAX) {
            t->type = TK_INT;
            t->i = (int64_t)v;
            *pp = q;
            return OWL_OK;
        }
    }
    char buf[64];
    size_t n = 0;
    bool is_float = false;
    while (p < L->len && (is_digit(L->src[p]) || (L->src[p] == '_' && p + 1 < L->len && is_digit(L->src[p + 1])))) {
        if (L->src[p] != '_' && n < sizeof buf - 1) buf[n++] = L->src[p];
        p++;
    }
    if (p + 1 < L->len && L->src[p] == '.' && is_digit(L->src[p + 1])) {
        is_float = true;
        if (n < sizeof buf - 1) buf[n++] = '.';
        p++;
        while (p < L->len && (is_digit(L->src[p]) || (L->src[p] == '_' && p + 1 < L->len && is_digit(L->src[p + 1])))) {
            if (L->src[p] != '_' && n < sizeof buf - 1) buf[n++] = L->src[p];
            p++;
        }
    }
    if (p < L->len && (L->src[p] == 'e' || L->src[p] == 'E')) {
        size_t q = p + 1;
        if (q < L->len && (L->src[q] == '+' || L->src[q] == '-')) q++;
        if (q < L->len && is_digit(L->src[q])) {
            is_float = true;
            for (size_t i = p; i < q && n < sizeof buf - 1; i++) buf[n++] = L->src[i];
            p = q;
            while (p < L->len && is_digit(L->src[p])) {
                if (n < sizeof buf - 1) buf[n++] = L->src[p];
                p++;
            }
        }
    }
    buf[n] = 0;
    if (n >= sizeof buf - 1) return lex_error(L, start, "number literal too long", NULL);
    if (is_float) {
        t->type = TK_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (n > 18 && (v > (unsigned long long)INT64_MAX || n > 19))
            return lex_error(L, start, "integer literal too large: ", buf);
        t->type = TK_INT;
        t->i = (int64_t)v;
    }
    *pp = p;
    return OWL_OK;
}

static const struct { const char *s; int op; } ops[] = {
    {"**", OP_POW}, {"//", OP_FLOORDIV}, {"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE},
    {"+", OP_ADD}, {"-", OP_SUB}, {"*", OP_MUL}, {"/", OP_DIV}, {"%", OP_MOD}, {"~", OP_TILDE},
    {"<", OP_LT}, {">", OP_GT}, {"=", OP_ASSIGN}, {"(", OP_LPAREN}, {")", OP_RPAREN},
    {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"{", OP_LBRACE}, {"}", OP_RBRACE}, {",", OP_COMMA},
    {".", OP_DOT}, {":", OP_COLON}, {"|", OP_PIPE}, {";", OP_SEMI},
};

/* Tokens of a {{ }} or {% %} tag starting after its opening marker at p.
 * Returns in *end the position just after the closing marker and in *sign
 * the whitespace sign of the closing marker. */
static owl_status lex_tag(lexer *L, size_t p, bool block, size_t open, size_t *end, char *sign) {
    int depth = 0;
    for (;;) {
        p = skip_ws(L->src, L->len, p);
        if (p >= L->len)
            return lex_error(L, open, block ? "unclosed block tag '{%'" : "unclosed variable tag '{{'", NULL);
        const char *s = L->src + p;
        size_t left = L->len - p;
        if (depth == 0) {
            const char *close = block ? "%}" : "}}";
            char sg = 0;
            size_t skip = 0;
            if (left >= 3 && (s[0] == '-' || (block && s[0] == '+')) && memcmp(s + 1, close, 2) == 0) {
                sg = s[0];
                skip = 3;
            } else if (left >= 2 && memcmp(s, close, 2) == 0) {
                skip = 2;
            }
            if (skip) {
                jtok *t = push(L, block ? TK_BLOCK_END : TK_VAR_END, p);
                if (!t) return OWL_ERR_NOMEM;
                *end = p + skip;
                *sign = sg;
                return OWL_OK;
            }
        }
        jtok *t = push(L, TK_OP, p);
        if (!t) return OWL_ERR_NOMEM;
        owl_status st;
        if (s[0] == '\'' || s[0] == '"') {
            t->type = TK_STRING;
            if ((st = lex_string(L, &p, t))) return st;
        } else if (is_digit(s[0])) {
            if ((st = lex_number(L, &p, t))) return st;
        } else if (is_name0(s[0])) {
            size_t k = p;
            while (k < L->len && (is_name0(L->src[k]) || is_digit(L->src[k]))) k++;
            t->type = TK_NAME;
            char *nm = jmem_alloc(L->m, k - p + 1);
            if (!nm) return OWL_ERR_NOMEM;
            memcpy(nm, s, k - p);
            t->s = nm;
            t->len = k - p;
            p = k;
        } else {
            size_t i;
            for (i = 0; i < sizeof ops / sizeof *ops; i++) {
                size_t ol = strlen(ops[i].s);
                if (left >= ol && memcmp(s, ops[i].s, ol) == 0) break;
            }
            if (i == sizeof ops / sizeof *ops) {
                char what[8] = {0};
                size_t adv;
                ju_decode(s, left, &adv);
                memcpy(what, s, adv < 5 ? adv : 4);
                return lex_error(L, p, "unexpected character in tag: ", what);
            }
            t->op = (uint8_t)ops[i].op;
            if (t->op == OP_LPAREN || t->op == OP_LBRACKET || t->op == OP_LBRACE) depth++;
            if (t->op == OP_RPAREN || t->op == OP_RBRACKET || t->op == OP_RBRACE) {
                if (depth == 0) return lex_error(L, p, "unexpected closing bracket ", ops[i].s);
                depth--;
            }
            p += strlen(ops[i].s);
        }
    }
}

/* Finds "{% endraw %}" (with optional -/+ signs) from p. */
static bool find_endraw(lexer *L, size_t p, size_t *tag, char *open_sign, size_t *close_end, char *close_sign) {
    for (; p + 1 < L->len; p++) {
        if (L->src[p] != '{' || L->src[p + 1] != '%') continue;
        size_t q = p + 2;
        char os = 0;
        if (q < L->len && (L->src[q] == '-' || L->src[q] == '+')) os = L->src[q++];
        q = skip_ws(L->src, L->len, q);
        if (L->len - q < 6 || memcmp(L->src + q, "endraw", 6) != 0) continue;
        q += 6;
        q = skip_ws(L->src, L->len, q);
        char cs = 0;
        if (q < L->len && (L->src[q] == '-' || L->src[q] == '+')) cs = L->src[q++];
        if (L->len - q < 2 || memcmp(L->src + q, "%}", 2) != 0) continue;
        *tag = p;
        *open_sign = os;
        *close_end = q + 2;
        *close_sign = cs;
        return true;
    }
    return false;
}

/* Is there "raw" (then "%}" or "-%}") at p? Returns the end of the tag. */
static bool raw_begin(lexer *L, size_t p, size_t *end, char *sign) {
    p = skip_ws(L->src, L->len, p);
    if (L->len - p < 3 || memcmp(L->src + p, "raw", 3) != 0) return false;
    p += 3;
    p = skip_ws(L->src, L->len, p);
    char s = 0;
    if (p < L->len && L->src[p] == '-') s = L->src[p++];
    if (L->len - p < 2 || memcmp(L->src + p, "%}", 2) != 0) return false;
    *end = p + 2;
    *sign = s;
    return true;
}

owl_status jinja_lex(jmem *m, const char *src, size_t len, jtok **toks, size_t *n) {
    lexer L = {.m = m, .src = src, .len = len, .line = 1, .col = 1};
    size_t p = 0;
    bool line_starting = true;
    owl_status s;
    for (;;) {
        /* next tag start */
        size_t q = p;
        while (q + 1 < len && !(src[q] == '{' && (src[q + 1] == '{' || src[q + 1] == '%' || src[q + 1] == '#'))) q++;
        if (q + 1 >= len) {
            if ((s = add_text(&L, p, len))) return s;
            break;
        }
        char kind = src[q + 1];
        size_t body = q + 2;
        char sign = 0;
        if (body < len && (src[body] == '-' || src[body] == '+')) sign = src[body++];
        size_t raw_end;
        char raw_sign;
        if (kind == '%' && raw_begin(&L, body, &raw_end, &raw_sign)) {
            if ((s = emit_text_before(&L, p, q, sign, true, line_starting))) return s;
            size_t tag, close_end;
            char os, cs;
            size_t content = raw_end;
            if (raw_sign == '-')
                content = skip_ws(src, len, content);
            if (content >= len) { /* jinja2 ends quietly when nothing follows */
                p = len;
                continue;
            }
            if (!find_endraw(&L, content, &tag, &os, &close_end, &cs))
                return lex_error(&L, q, "unclosed '{% raw %}' (missing '{% endraw %}')", NULL);
            if ((s = emit_text_before(&L, content, tag, os, true, false))) return s;
            p = after_tag(&L, close_end, cs, true, &line_starting);
            continue;
        }
        if ((s = emit_text_before(&L, p, q, sign, kind != '{', line_starting))) return s;
        if (kind == '#') {
            if (body >= len) { /* "{#" at the very end: jinja2 ends quietly */
                p = len;
                continue;
            }
            size_t e = body;
            while (e + 1 < len && !(src[e] == '#' && src[e + 1] == '}')) e++;
            if (e + 1 >= len) return lex_error(&L, q, "unclosed comment '{#'", NULL);
            char cs = e > body && (src[e - 1] == '-' || src[e - 1] == '+') ? src[e - 1] : 0;
            p = after_tag(&L, e + 2, cs, true, &line_starting);
            continue;
        }
        bool block = kind == '%';
        jtok *t = push(&L, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, q);
        if (!t) return OWL_ERR_NOMEM;
        size_t end = 0;
        char cs = 0;
        if ((s = lex_tag(&L, body, block, q, &end, &cs))) return s;
        p = after_tag(&L, end, cs, block, &line_starting);
    }
    jtok *t = push(&L, TK_EOF, len);
    if (!t) return OWL_ERR_NOMEM;
    *toks = L.toks;
    *n = L.n;
    return OWL_OK;
}
