/* Python's printf-style string formatting ("%s and %d" % (a, b)), used by
 * the % operator on strings and by the format filter. */
#include "chat/jinja.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pads a piece to width (code points) on the left or right. */
static bool add_padded(jbuf *b, const char *s, size_t n, long width, bool left, char fill) {
    size_t cps = ju_count(s, n);
    size_t pad = width > 0 && (size_t)width > cps ? (size_t)width - cps : 0;
    if (!left)
        for (size_t i = 0; i < pad; i++)
            if (!jbuf_addc(b, fill)) return false;
    if (!jbuf_add(b, s, n)) return false;
    if (left)
        for (size_t i = 0; i < pad; i++)
            if (!jbuf_addc(b, ' ')) return false;
    return true;
}

bool jinja_printf(jstate *st, const jnode *at, const jstr *fmt, bool markup, jval args, jval *out) {
    /* Python: a tuple gives the arguments; anything else is one argument,
     * and a subscriptable one (dict, list) may also be used by %(key)s and
     * need not be converted at all */
    const jval *pos = &args;
    size_t npos = 1, next = 0;
    const jdict *map = args.t == JV_DICT ? args.u.d : NULL;
    if (args.t == JV_LIST && args.tuple == 1) {
        pos = args.u.l->v;
        npos = args.u.l->n;
    }
    bool mapping_arg = args.t == JV_DICT || (args.t == JV_LIST && args.tuple == 0) || args.t == JV_UNDEF;
    jbuf b = {0};
    bool ok = true;
    const char *s = fmt->s, *end = fmt->s + fmt->len;
    while (ok && s < end) {
        const char *pct = memchr(s, '%', (size_t)(end - s));
        if (!pct) {
            ok = jbuf_add(&b, s, (size_t)(end - s));
            break;
        }
        ok = jbuf_add(&b, s, (size_t)(pct - s));
        const char *p = pct + 1;
        jval arg;
        bool have_arg = false;
        if (p < end && *p == '(') {
            const char *close = memchr(p, ')', (size_t)(end - p));
            if (!close) { jbuf_free(&b); return jerr(at, "incomplete format key"); }
            if (!map) { jbuf_free(&b); return jerr(at, "format requires a mapping"); }
            jval *v = jdict_gets(map, p + 1, (size_t)(close - p - 1));
            if (!v) { jbuf_free(&b); return jerr(at, "KeyError: '%.*s'", (int)(close - p - 1), p + 1); }
            arg = *v;
            have_arg = true;
            p = close + 1;
        }
        bool left = false, plus = false, space = false, alt = false, zero = false;
        for (; p < end && strchr("-+ #0", *p); p++) {
            if (*p == '-') left = true;
            else if (*p == '+') plus = true;
            else if (*p == ' ') space = true;
            else if (*p == '#') alt = true;
            else zero = true;
        }
        long width = -1, prec = -1;
        if (p < end && *p == '*') { jbuf_free(&b); return jerr(at, "'*' widths in format strings are not supported"); }
        if (p < end && *p >= '0' && *p <= '9') width = strtol(p, (char **)&p, 10);
        if (p < end && *p == '.') {
            p++;
            prec = p < end && *p >= '0' && *p <= '9' ? strtol(p, (char **)&p, 10) : 0;
        }
        while (p < end && (*p == 'h' || *p == 'l' || *p == 'L')) p++;
        if (p >= end) { jbuf_free(&b); return jerr(at, "incomplete format"); }
        if (width > 100000 || prec > 100000) { jbuf_free(&b); return jerr(at, "format width or precision too large"); }
        char conv = *p++;
        if (conv == '%') {
            ok = jbuf_addc(&b, '%');
            s = p;
            continue;
        }
        if (!have_arg) {
            if (next >= npos) { jbuf_free(&b); return jerr(at, "not enough arguments for format string"); }
            arg = pos[next++];
        }
        char spec[32], num[160];
        int sn = snprintf(spec, sizeof spec, "%%%s%s%s%s%s", left ? "-" : "", plus ? "+" : "", space ? " " : "",
                          alt ? "#" : "", zero && !left ? "0" : "");
        (void)sn;
        switch (conv) {
        case 's': case 'r': {
            jbuf t = {0};
            ok = conv == 's' ? jv_write_str(&t, arg) : jv_write_repr(&t, arg);
            if (ok && markup) { /* Markup % x escapes x */
                jval piece = jv_str(st->mem, t.p ? t.p : "", t.n), esc;
                if (conv == 's' && jv_is_markup(arg)) piece.tuple = 1;
                ok = piece.t == JV_STR && jinja_escape(st->mem, piece, &esc);
                jbuf_free(&t);
                ok = ok && jbuf_add(&t, esc.u.s->s, esc.u.s->len);
            }
            size_t n = t.n;
            if (ok && prec >= 0) n = ju_offset(t.p ? t.p : "", t.n, (size_t)prec);
            ok = ok && add_padded(&b, t.p ? t.p : "", n, width, left, ' ');
            jbuf_free(&t);
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
            long long v;
            if (arg.t == JV_INT) v = arg.u.i;
            else if (arg.t == JV_BOOL) v = arg.u.b;
            else if (arg.t == JV_FLOAT && (conv == 'd' || conv == 'i' || conv == 'u') && isfinite(arg.u.f) &&
                     fabs(arg.u.f) < 9.2e18)
                v = (long long)arg.u.f;
            else { jbuf_free(&b); return jerr(at, "%%%c format: a real number is required, not %s", conv, jv_type_name(arg)); }
            if (alt && conv == 'o') { jbuf_free(&b); return jerr(at, "'%%#o' is not supported"); }
            char c = conv == 'i' || conv == 'u' ? 'd' : conv;
            char full[48];
            if (c == 'd') snprintf(full, sizeof full, "%s%s%sll%c", spec, width >= 0 ? "*" : "", prec >= 0 ? ".*" : "", c);
            else snprintf(full, sizeof full, "%s%s%sll%c", spec, width >= 0 ? "*" : "", prec >= 0 ? ".*" : "", c);
            /* Python formats negative hex/octal with a sign, C as unsigned */
            bool neg = v < 0 && c != 'd';
            unsigned long long mag = neg ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
            char digits[100];
            int w = (int)width, pr = (int)prec;
            if (c == 'd') {
                if (width >= 0 && prec >= 0) snprintf(digits, sizeof digits, full, w, pr, v);
                else if (width >= 0) snprintf(digits, sizeof digits, full, w, v);
                else if (prec >= 0) snprintf(digits, sizeof digits, full, pr, v);
                else snprintf(digits, sizeof digits, full, v);
                ok = jbuf_add(&b, digits, strlen(digits));
            } else {
                if (neg && (width >= 0 || prec >= 0 || plus || space)) {
                    jbuf_free(&b);
                    return jerr(at, "negative numbers with %%%c and flags are not supported", conv);
                }
                if (width >= 0 && prec >= 0) snprintf(digits, sizeof digits, full, w, pr, mag);
                else if (width >= 0) snprintf(digits, sizeof digits, full, w, mag);
                else if (prec >= 0) snprintf(digits, sizeof digits, full, pr, mag);
                else snprintf(digits, sizeof digits, full, mag);
                ok = (!neg || jbuf_addc(&b, '-')) && jbuf_add(&b, digits, strlen(digits));
            }
            break;
        }
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
            if (!jv_is_num(arg)) { jbuf_free(&b); return jerr(at, "%%%c format: a real number is required, not %s", conv, jv_type_name(arg)); }
            char full[48];
            snprintf(full, sizeof full, "%s%s.*%c", spec, width >= 0 ? "*" : "", conv);
            int pr = prec >= 0 ? (int)prec : 6;
            double f = jv_num(arg);
            int n = width >= 0 ? snprintf(num, sizeof num, full, (int)width, pr, f) : snprintf(num, sizeof num, full, pr, f);
            if (n < 0 || (size_t)n >= sizeof num) { jbuf_free(&b); return jerr(at, "formatted number too long"); }
            ok = jbuf_add(&b, num, (size_t)n);
            break;
        }
        case 'c': {
            char enc[4];
            size_t n;
            if (arg.t == JV_INT && arg.u.i >= 0 && arg.u.i <= 0x10ffff && !(arg.u.i >= 0xd800 && arg.u.i <= 0xdfff))
                n = ju_encode((uint32_t)arg.u.i, enc);
            else if (arg.t == JV_STR && ju_count(arg.u.s->s, arg.u.s->len) == 1 && arg.u.s->len <= 4) {
                memcpy(enc, arg.u.s->s, arg.u.s->len);
                n = arg.u.s->len;
            } else { jbuf_free(&b); return jerr(at, "%%c requires an int or a single character"); }
            ok = add_padded(&b, enc, n, width, left, ' ');
            break;
        }
        default:
            jbuf_free(&b);
            return jerr(at, "unsupported format character '%c'", conv);
        }
        s = p;
    }
    if (ok && !map && !mapping_arg && next < npos) {
        jbuf_free(&b);
        return jerr(at, "not all arguments converted during string formatting");
    }
    if (ok) *out = jv_str(st->mem, b.p ? b.p : "", b.n);
    jbuf_free(&b);
    out->tuple = markup;
    return (ok && out->t == JV_STR) || jerr(at, "%s", owl_last_error());
}
