/* The YAML front matter of a Hugging Face model card: the block between a
 * first line "---" and the next "---" (or "...") line.
 *
 * A strict parser for the subset cards use: top-level "key: value" lines;
 * nested block mappings and sequences (indented, or "- " items at column 0
 * under a key); plain scalars (one line, or continued on indented lines),
 * single- and double-quoted scalars (over several lines, with escapes and
 * "\" line continuations), literal and folded block scalars (| |- |+ > >-
 * >+), and flow collections ([...] {...}). Only top-level values are kept
 * (license, license_name, license_link); everything else is checked and
 * skipped. Anything outside the subset - an unclosed quote or bracket, a
 * top-level line that is not "key: value", a tab in the indentation, text
 * after a closing quote, a duplicate top-level key, a missing closing
 * "---" - is an error naming the card and the line. */
#include "govern/govern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fm_line {
    const char *s;
    size_t n;
} fm_line;

typedef struct fm {
    const char *name;
    fm_line *lines;
    size_t n_lines; /* lines of the front matter body (between the markers) */
    size_t first_no; /* file line number of lines[0] */
} fm;

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }

static owl_status fm_err(const fm *f, size_t line, const char *what) {
    return owl_errorf(OWL_ERR_FORMAT, "%s: front matter line %zu: %s", f->name, f->first_no + line, what);
}

static size_t indent_of(const fm_line *l) {
    size_t i = 0;
    while (i < l->n && l->s[i] == ' ') i++;
    return i;
}
static bool blank_from(const fm_line *l, size_t col) {
    for (size_t i = col; i < l->n; i++)
        if (l->s[i] != ' ' && l->s[i] != '\t') return false;
    return true;
}
static bool is_blank_or_comment(const fm_line *l) {
    size_t i = 0;
    while (i < l->n && (l->s[i] == ' ' || l->s[i] == '\t')) i++;
    return i == l->n || l->s[i] == '#';
}
/* After a closing quote / bracket: only spaces and a comment may follow. */
static bool rest_ok(const fm_line *l, size_t col) {
    while (col < l->n && (l->s[col] == ' ' || l->s[col] == '\t')) col++;
    return col == l->n || (l->s[col] == '#' && l->s[col - 1] != '"');
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_cp(sbuf *b, uint32_t cp) {
    char o[4];
    size_t n;
    if (cp < 0x80) o[0] = (char)cp, n = 1;
    else if (cp < 0x800) o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 63)), o[2] = (char)(0x80 | (cp & 63)), n = 3;
    else
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 63)), o[2] = (char)(0x80 | ((cp >> 6) & 63)),
        o[3] = (char)(0x80 | (cp & 63)), n = 4;
    sb_put(b, o, n);
}

/* A quoted scalar starting at (*li, col) (the quote). Leaves *li at the
 * line of the closing quote and *col just after it. */
static owl_status parse_quoted(const fm *f, size_t *li, size_t *colp, sbuf *out) {
    size_t start_line = *li, col = *colp;
    char q = f->lines[*li].s[col++];
    size_t l = *li;
    int pending_breaks = 0; /* line breaks inside the scalar, folded on the next text */
    for (;;) {
        const fm_line *L = &f->lines[l];
        while (col < L->n) {
            char c = L->s[col];
            if (pending_breaks) {
                if (pending_breaks == 1) sb_putc(out, ' ');
                else
                    for (int k = 1; k < pending_breaks; k++) sb_putc(out, '\n');
                pending_breaks = 0;
            }
            if (q == '\'' && c == '\'') {
                if (col + 1 < L->n && L->s[col + 1] == '\'') {
                    sb_putc(out, '\'');
                    col += 2;
                    continue;
                }
                *li = l;
                *colp = col + 1;
                return OWL_OK;
            }
            if (q == '"' && c == '"') {
                *li = l;
                *colp = col + 1;
                return OWL_OK;
            }
            if (q == '"' && c == '\\') {
                if (col + 1 >= L->n) { /* escaped line break: join without space */
                    col = L->n;
                    pending_breaks = -1;
                    break;
                }
                char e = L->s[col + 1];
                col += 2;
                int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
                if (digits) {
                    uint32_t cp = 0;
                    for (int k = 0; k < digits; k++) {
                        int h = col < L->n ? hexval(L->s[col]) : -1;
                        if (h < 0) return fm_err(f, l, "bad \\x / \\u escape in a double-quoted string");
                        cp = cp * 16 + (uint32_t)h;
                        col++;
                    }
                    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return fm_err(f, l, "escape names no Unicode character");
                    put_cp(out, cp);
                    continue;
                }
                const char *from = "0abtnvfre \"/\\N_LP\t", *to = "\0\a\b\t\n\v\f\r\x1b \"/\\";
                const char *p = strchr(from, e);
                if (!p || !e) return fm_err(f, l, "unknown escape in a double-quoted string");
                size_t k = (size_t)(p - from);
                if (k < 13) sb_putc(out, to[k]);
                else if (e == '\t') sb_putc(out, '\t');
                else put_cp(out, e == 'N' ? 0x85 : e == '_' ? 0xA0 : e == 'L' ? 0x2028 : 0x2029);
                continue;
            }
            sb_putc(out, c);
            col++;
        }
        /* end of line inside the scalar */
        if (pending_breaks == -1) pending_breaks = 0;
        else {
            while (out->n && (out->p[out->n - 1] == ' ' || out->p[out->n - 1] == '\t')) out->p[--out->n] = 0;
            pending_breaks++;
        }
        if (++l >= f->n_lines) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s-quoted string not closed before the end of the front matter",
                     q == '"' ? "double" : "single");
            return fm_err(f, start_line, msg);
        }
        col = 0;
        const fm_line *N = &f->lines[l];
        while (col < N->n && (N->s[col] == ' ' || N->s[col] == '\t')) col++;
    }
}

/* A flow collection ([...] or {...}) from (*li, col); checks brackets and
 * quotes balance. */
static owl_status parse_flow(const fm *f, size_t *li, size_t *colp) {
    size_t start_line = *li, l = *li, col = *colp;
    char stack[64];
    int depth = 0;
    for (;;) {
        const fm_line *L = &f->lines[l];
        while (col < L->n) {
            char c = L->s[col];
            if (c == '[' || c == '{') {
                if (depth == (int)sizeof stack) return fm_err(f, l, "flow collection nested too deeply");
                stack[depth++] = c == '[' ? ']' : '}';
                col++;
            } else if (c == ']' || c == '}') {
                if (depth == 0 || stack[depth - 1] != c) return fm_err(f, l, "mismatched bracket in a flow collection");
                col++;
                if (--depth == 0) {
                    *li = l;
                    *colp = col;
                    return OWL_OK;
                }
            } else if (c == '"' || c == '\'') {
                sbuf tmp = {0};
                size_t ql = l;
                owl_status st = parse_quoted(f, &ql, &col, &tmp);
                free(tmp.p);
                if (st) return st;
                if (ql != l) {
                    l = ql;
                    L = &f->lines[l];
                }
            } else if (c == '#' && col > 0 && L->s[col - 1] == ' ') {
                col = L->n;
            } else {
                col++;
            }
        }
        if (++l >= f->n_lines) return fm_err(f, start_line, "flow collection ([...] or {...}) not closed");
        col = 0;
    }
}

/* A block scalar (| or >) whose header is at (*li, col); content lines are
 * those more indented than parent_indent. Leaves *li at its last line. */
static owl_status parse_block(const fm *f, size_t *li, size_t col, size_t parent_indent, sbuf *out) {
    const fm_line *H = &f->lines[*li];
    char style = H->s[col++];
    char chomp = 0;
    size_t explicit_indent = 0;
    for (int k = 0; k < 2 && col < H->n; k++) {
        char c = H->s[col];
        if ((c == '-' || c == '+') && !chomp) chomp = c, col++;
        else if (c >= '1' && c <= '9' && !explicit_indent) explicit_indent = (size_t)(c - '0'), col++;
    }
    if (!rest_ok(H, col)) return fm_err(f, *li, "bad block scalar header (expected | or > with - + or a digit)");
    size_t content_indent = explicit_indent ? parent_indent + explicit_indent : 0;
    size_t l = *li + 1, last = *li;
    int breaks = 0;
    bool any = false;
    for (; l < f->n_lines; l++) {
        const fm_line *L = &f->lines[l];
        if (blank_from(L, 0)) {
            breaks++;
            continue;
        }
        size_t ind = indent_of(L);
        if (ind <= parent_indent) break;
        if (!content_indent) content_indent = ind;
        if (ind < content_indent) break; /* a sibling of the key: the scalar ended */
        if (any) {
            if (style == '|') {
                for (int k = 0; k <= breaks; k++) sb_putc(out, '\n');
            } else if (breaks == 0) {
                sb_putc(out, ' ');
            } else {
                for (int k = 0; k < breaks; k++) sb_putc(out, '\n');
            }
        }
        breaks = 0;
        sb_put(out, L->s + content_indent, L->n - content_indent);
        any = true;
        last = l;
    }
    if (any && chomp != '-') sb_putc(out, '\n');
    *li = last;
    return OWL_OK;
}

/* Plain scalar from (li, col) to the end of the line or a " #" comment. */
static void plain_value(const fm_line *L, size_t col, sbuf *out) {
    size_t e = col;
    while (e < L->n && !(L->s[e] == '#' && e > col && (L->s[e - 1] == ' ' || L->s[e - 1] == '\t'))) e++;
    while (e > col && (L->s[e - 1] == ' ' || L->s[e - 1] == '\t')) e--;
    sb_put(out, L->s + col, e - col);
}

/* A value at (*li, col) of a key whose line has indent `indent`. kind:
 * 'e' empty (a nested block follows), 's' scalar (out), 'f' flow. */
static owl_status parse_value(const fm *f, size_t *li, size_t col, size_t indent, sbuf *out, char *kind) {
    const fm_line *L = &f->lines[*li];
    while (col < L->n && (L->s[col] == ' ' || L->s[col] == '\t')) col++;
    if (col >= L->n || L->s[col] == '#') {
        *kind = 'e';
        return OWL_OK;
    }
    char c = L->s[col];
    *kind = 's';
    if (c == '"' || c == '\'') {
        owl_status st = parse_quoted(f, li, &col, out);
        if (st) return st;
        if (!rest_ok(&f->lines[*li], col)) return fm_err(f, *li, "text after the closing quote");
        return OWL_OK;
    }
    if (c == '|' || c == '>') return parse_block(f, li, col, indent, out);
    if (c == '[' || c == '{') {
        *kind = 'f';
        owl_status st = parse_flow(f, li, &col);
        if (st) return st;
        if (!rest_ok(&f->lines[*li], col)) return fm_err(f, *li, "text after a flow collection");
        return OWL_OK;
    }
    if (c == '@' || c == '`') return fm_err(f, *li, "a plain value cannot start with @ or `");
    plain_value(L, col, out);
    for (size_t i = 0; i + 1 < out->n; i++)
        if (out->p[i] == ':' && out->p[i + 1] == ' ')
            return fm_err(f, *li, "': ' inside a plain value (quote the value)");
    /* continuation lines of a plain scalar: more indented, not a new key */
    while (*li + 1 < f->n_lines) {
        const fm_line *N = &f->lines[*li + 1];
        if (blank_from(N, 0) || indent_of(N) <= indent) break;
        sb_putc(out, ' ');
        plain_value(N, indent_of(N), out);
        (*li)++;
    }
    return OWL_OK;
}

/* Key at the start of (li, col): plain characters up to ':' followed by a
 * space or the end of the line. Returns the length, 0 if none. */
static size_t key_len(const fm_line *L, size_t col) {
    size_t i = col;
    if (i < L->n && (L->s[i] == '"' || L->s[i] == '\'')) {
        char q = L->s[i++];
        while (i < L->n && L->s[i] != q) i++;
        if (i >= L->n) return 0;
        i++;
        return (i < L->n && L->s[i] == ':' && (i + 1 == L->n || L->s[i + 1] == ' ')) ? i - col : 0;
    }
    while (i < L->n) {
        char c = L->s[i];
        if (c == ':' && (i + 1 == L->n || L->s[i + 1] == ' ' || L->s[i + 1] == '\t')) return i - col;
        if (c == '#' || c == '"' || c == '\'' || c == '[' || c == ']' || c == '{' || c == '}' || c == ',' ||
            (c == '-' && i == col && i + 1 < L->n && L->s[i + 1] == ' '))
            return 0;
        i++;
    }
    return 0;
}

/* A nested line (inside a block under a top-level key): "- item", "key:
 * value", "- key: value"; quoted / block / flow values are parsed so that
 * multi-line ones are consumed. */
static owl_status parse_nested(const fm *f, size_t *li) {
    const fm_line *L = &f->lines[*li];
    size_t col = indent_of(L);
    while (col + 1 <= L->n && L->s[col] == '-' && (col + 1 == L->n || L->s[col + 1] == ' ')) {
        col++;
        while (col < L->n && L->s[col] == ' ') col++;
    }
    size_t key_col = col, kl = 0;
    if (col < L->n && (L->s[col] == '?' || L->s[col] == ':') && (col + 1 == L->n || L->s[col + 1] == ' ')) {
        col++; /* an explicit ("? key") complex key or its (": value") value */
        key_col = indent_of(L);
    } else {
        kl = key_len(L, col);
    }
    if (kl) col += kl + 1;
    sbuf tmp = {0};
    char kind;
    owl_status st = parse_value(f, li, col, key_col, &tmp, &kind);
    free(tmp.p);
    return st;
}

static bool key_is(const fm_line *L, size_t kl, const char *k) {
    size_t n = strlen(k);
    if (kl >= 2 && (L->s[0] == '"' || L->s[0] == '\'')) return kl - 2 == n && memcmp(L->s + 1, k, n) == 0;
    return kl == n && memcmp(L->s, k, n) == 0;
}

owl_status owl_frontmatter_parse(const char *name, const char *text, size_t len, owl_frontmatter *out) {
    memset(out, 0, sizeof *out);
    if (len >= 3 && (uint8_t)text[0] == 0xEF && (uint8_t)text[1] == 0xBB && (uint8_t)text[2] == 0xBF) text += 3, len -= 3;
    /* split into lines (LF, CRLF) */
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    fm_line *lines = owl_calloc(cap, sizeof *lines);
    if (!lines) return OWL_ERR_NOMEM;
    size_t n = 0;
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && text[e] != '\n') e++;
        size_t k = e - p;
        if (k && text[p + k - 1] == '\r') k--;
        lines[n].s = text + p;
        lines[n].n = k;
        n++;
        p = e + 1;
    }
    owl_status st = OWL_OK;
    fm f = {name, NULL, 0, 2};
    if (n == 0 || !(lines[0].n >= 3 && memcmp(lines[0].s, "---", 3) == 0 && blank_from(&lines[0], 3))) goto done;
    out->present = true;
    size_t close = 0;
    for (size_t i = 1; i < n; i++)
        if (lines[i].n >= 3 && (memcmp(lines[i].s, "---", 3) == 0 || memcmp(lines[i].s, "...", 3) == 0) &&
            blank_from(&lines[i], 3)) {
            close = i;
            break;
        }
    if (!close) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: front matter opened by '---' on line 1 is never closed by '---'", name);
        goto done;
    }
    f.lines = lines + 1;
    f.n_lines = close - 1;
    char seen_keys[64][48];
    size_t n_seen = 0;
    bool open_block = false; /* the last top-level key had an empty value */
    bool in_license_list = false;
    for (size_t i = 0; i < f.n_lines; i++) {
        const fm_line *L = &f.lines[i];
        if (is_blank_or_comment(L)) continue;
        for (size_t c = 0; c < L->n && (L->s[c] == ' ' || L->s[c] == '\t'); c++)
            if (L->s[c] == '\t') {
                st = fm_err(&f, i, "tab in the indentation (YAML allows spaces only)");
                goto done;
            }
        size_t ind = indent_of(L);
        bool item = L->s[ind] == '-' && (ind + 1 == L->n || L->s[ind + 1] == ' ');
        if (ind > 0 || item) {
            if (!open_block) {
                st = fm_err(&f, i, ind > 0 ? "indented line with no key above it" : "list item with no key above it");
                goto done;
            }
            if (in_license_list && item && ind == 0) out->license_is_list = true;
            if ((st = parse_nested(&f, &i))) goto done;
            continue;
        }
        size_t kl = key_len(L, 0);
        if (!kl) {
            char msg[120];
            snprintf(msg, sizeof msg, "expected 'key: value', got '%.*s%s'", (int)(L->n > 60 ? 60 : L->n), L->s,
                     L->n > 60 ? "..." : "");
            st = fm_err(&f, i, msg);
            goto done;
        }
        for (size_t k = 0; k < n_seen; k++)
            if (strlen(seen_keys[k]) == kl && memcmp(seen_keys[k], L->s, kl) == 0) {
                char msg[96];
                snprintf(msg, sizeof msg, "duplicate key '%.*s'", (int)(kl > 60 ? 60 : kl), L->s);
                st = fm_err(&f, i, msg);
                goto done;
            }
        if (n_seen < 64 && kl < 48) {
            memcpy(seen_keys[n_seen], L->s, kl);
            seen_keys[n_seen++][kl] = 0;
        }
        sbuf v = {0};
        char kind;
        size_t key_line = i;
        if ((st = parse_value(&f, &i, kl + 1, 0, &v, &kind))) {
            free(v.p);
            goto done;
        }
        if (v.oom) {
            free(v.p);
            st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
        open_block = kind == 'e';
        bool is_lic = key_is(L, kl, "license");
        in_license_list = is_lic && kind == 'e';
        char **slot = is_lic ? &out->license
                      : key_is(&f.lines[key_line], kl, "license_name") ? &out->license_name
                      : key_is(&f.lines[key_line], kl, "license_link") ? &out->license_link
                                                                       : NULL;
        if (slot && kind == 'f') {
            if (is_lic) out->license_is_list = true;
            free(v.p);
        } else if (slot && kind == 's' && *slot) {
            /* the same key again (e.g. under a name the duplicate check does not track) */
            free(v.p);
            char msg[64];
            snprintf(msg, sizeof msg, "'%.*s' given twice", (int)kl, f.lines[key_line].s);
            st = fm_err(&f, key_line, msg);
            goto done;
        } else if (slot && kind == 's') {
            /* trim */
            size_t a = 0, b = v.n;
            while (a < b && (v.p[a] == ' ' || v.p[a] == '\n' || v.p[a] == '\t')) a++;
            while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\n' || v.p[b - 1] == '\t')) b--;
            if (a == b) {
                free(v.p);
                char msg[64];
                snprintf(msg, sizeof msg, "empty value for '%.*s'", (int)kl, f.lines[key_line].s);
                st = fm_err(&f, key_line, msg);
                goto done;
            }
            memmove(v.p, v.p + a, b - a);
            v.p[b - a] = 0;
            *slot = v.p;
        } else {
            free(v.p);
        }
    }
done:
    free(lines);
    if (st) owl_frontmatter_free(out);
    return st;
}

void owl_frontmatter_free(owl_frontmatter *fm) {
    free(fm->license);
    free(fm->license_name);
    free(fm->license_link);
    memset(fm, 0, sizeof *fm);
}
