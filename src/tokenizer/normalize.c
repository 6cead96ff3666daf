/* Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD (utf8proc),
 * Lowercase, Strip, Prepend, Replace (literal or regex), applied in order. */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

owl_status owl_norm_add(struct owl_norm *nm, const owl_norm_step *step) {
    if (nm->n == nm->cap) {
        int cap = nm->cap ? nm->cap * 2 : 4;
        owl_norm_step *ns = realloc(nm->steps, sizeof *ns * (size_t)cap);
        if (!ns) {
            if (step->re) pcre2_code_free(step->re);
            return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        }
        nm->steps = ns;
        nm->cap = cap;
    }
    nm->steps[nm->n++] = *step;
    return OWL_OK;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static bool buf_put(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return false;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

static bool is_space_cp(int32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool valid_utf8(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t l = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &c);
        if (l <= 0) return false;
        i += (size_t)l;
    }
    return true;
}

/* One step from cur into nx. */
static owl_status norm_step(const owl_norm_step *st, const char *s, size_t n, buf *nx) {
    const uint8_t *u = (const uint8_t *)s;
    switch (st->kind) {
    case OWL_NORM_NFC:
    case OWL_NORM_NFD:
    case OWL_NORM_NFKC:
    case OWL_NORM_NFKD: {
        if (n == 0 || !valid_utf8(s, n)) return buf_put(nx, s, n) ? OWL_OK : OWL_ERR_NOMEM;
        int opt = UTF8PROC_STABLE;
        opt |= (st->kind == OWL_NORM_NFC || st->kind == OWL_NORM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
        if (st->kind == OWL_NORM_NFKC || st->kind == OWL_NORM_NFKD) opt |= UTF8PROC_COMPAT;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map(u, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
        if (r < 0) {
            free(dst);
            return buf_put(nx, s, n) ? OWL_OK : OWL_ERR_NOMEM;
        }
        bool ok = buf_put(nx, dst, (size_t)r);
        free(dst);
        return ok ? OWL_OK : OWL_ERR_NOMEM;
    }
    case OWL_NORM_LOWERCASE:
        for (size_t i = 0; i < n;) {
            utf8proc_int32_t c;
            utf8proc_ssize_t l = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &c);
            if (l <= 0) {
                if (!buf_put(nx, s + i, 1)) return OWL_ERR_NOMEM;
                i++;
                continue;
            }
            utf8proc_uint8_t enc[4];
            utf8proc_ssize_t el = utf8proc_encode_char(utf8proc_tolower(c), enc);
            if (!buf_put(nx, enc, (size_t)el)) return OWL_ERR_NOMEM;
            i += (size_t)l;
        }
        return OWL_OK;
    case OWL_NORM_STRIP: {
        size_t a = 0, e = n;
        while (st->left && a < e) {
            utf8proc_int32_t c;
            utf8proc_ssize_t l = utf8proc_iterate(u + a, (utf8proc_ssize_t)(e - a), &c);
            if (l <= 0 || !is_space_cp(c)) break;
            a += (size_t)l;
        }
        while (st->right && e > a) {
            size_t k = e - 1;
            while (k > a && (u[k] & 0xC0) == 0x80 && e - k < 4) k--;
            utf8proc_int32_t c;
            utf8proc_ssize_t l = utf8proc_iterate(u + k, (utf8proc_ssize_t)(e - k), &c);
            if (l <= 0 || (size_t)l != e - k || !is_space_cp(c)) break;
            e = k;
        }
        return buf_put(nx, s + a, e - a) ? OWL_OK : OWL_ERR_NOMEM;
    }
    case OWL_NORM_PREPEND:
        if (n && !buf_put(nx, st->str, st->str_len)) return OWL_ERR_NOMEM;
        return buf_put(nx, s, n) ? OWL_OK : OWL_ERR_NOMEM;
    case OWL_NORM_REPLACE: {
        size_t prev = 0;
        if (st->re) {
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(st->re, NULL);
            if (!md) return OWL_ERR_NOMEM;
            size_t at = 0;
            while (at <= n) {
                int r = pcre2_match(st->re, (PCRE2_SPTR)s, n, at, 0, md, NULL);
                if (r < 0) break;
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (ms < at || me < ms || me > n) break;
                if (!buf_put(nx, s + prev, ms - prev) || !buf_put(nx, st->content, st->content_len)) {
                    pcre2_match_data_free(md);
                    return OWL_ERR_NOMEM;
                }
                prev = me;
                if (me > ms) {
                    at = me;
                } else {
                    if (ms >= n) break;
                    int l = owl_utf8_len(u[ms]);
                    at = ms + (l > 0 && (size_t)l <= n - ms ? (size_t)l : 1);
                    if (!buf_put(nx, s + ms, at - ms)) {
                        pcre2_match_data_free(md);
                        return OWL_ERR_NOMEM;
                    }
                    prev = at;
                }
            }
            pcre2_match_data_free(md);
        } else if (st->str_len) {
            for (;;) {
                const char *f = n - prev >= st->str_len ? memmem(s + prev, n - prev, st->str, st->str_len) : NULL;
                if (!f) break;
                size_t ms = (size_t)(f - s);
                if (!buf_put(nx, s + prev, ms - prev) || !buf_put(nx, st->content, st->content_len)) return OWL_ERR_NOMEM;
                prev = ms + st->str_len;
            }
        }
        return buf_put(nx, s + prev, n - prev) ? OWL_OK : OWL_ERR_NOMEM;
    }
    }
    return OWL_OK;
}

owl_status owl_normalize(const struct owl_norm *nm, const char *s, size_t n, char **out, size_t *out_len) {
    buf a = {0}, b = {0};
    if (!buf_put(&a, s, n)) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (int i = 0; nm && i < nm->n; i++) {
        b.n = 0;
        owl_status st = norm_step(&nm->steps[i], a.p, a.n, &b);
        if (st) {
            free(a.p);
            free(b.p);
            return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        }
        buf t = a;
        a = b;
        b = t;
    }
    free(b.p);
    a.p[a.n] = '\0';
    *out = a.p;
    *out_len = a.n;
    return OWL_OK;
}
