/* Licence texts recognised by their words.
 *
 * A text is decoded (UTF-8 with or without BOM, UTF-16 with a BOM), then
 * normalised: lower case; curly quotes, dashes and odd spaces made plain;
 * markdown markup (* # _ ` > \ [ ] and link targets) dropped; every run of
 * whitespace one space; leading "[For the original ... see URL]" lines that
 * mirrors add skipped. Each published licence below is known by its first
 * and last phrase and the fingerprints (first 16 hex digits of SHA-256) of
 * the normalised text from the first through the last phrase in the copies
 * that were read. A text matches when that part has a known fingerprint and
 * what lies outside it is short and adds no terms (a title, a copyright
 * line). Everything else is unknown: one changed word changes the
 * fingerprint, so a removed section, an added clause or a changed number
 * is never taken for the licence it came from. */
#include "govern/govern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct text_entry {
    const char *id;
    const char *variant;
    const char *first; /* first phrase (first occurrence) */
    const char *last;  /* last phrase (last occurrence) */
    const char *fp[6]; /* fingerprints of published copies */
} text_entry;

/* Longer texts that contain a shorter one (a licence with its use policy
 * appended) win because the longest matching part is taken. */
static const text_entry TEXTS[] = {
    {"Apache-2.0", "Apache License 2.0", "apache license version 2.0, january 2004", "limitations under the license.",
     {"231a9e06c6706018", "9d3ca9d7dc1c8a06", "d740a17f4d848674"}},
    {"MIT", "MIT License", "permission is hereby granted, free of charge", "other dealings in the software.", {"56959050891f7b73"}},
    {"BSD-3-Clause", "BSD 3-Clause", "redistribution and use in source and binary forms", "possibility of such damage.",
     {"dac3f707c5f09ff7", "e67a28b98bc45809"}},
    {"CC-BY-4.0", "CC BY 4.0 legal code", "creative commons attribution 4.0 international",
     "creative commons may be contacted at creativecommons.org.", {"35df092e3d17a155"}},
    {"CC-BY-NC-4.0", "CC BY-NC 4.0 legal code", "creative commons attribution-noncommercial 4.0 international",
     "creative commons may be contacted at creativecommons.org.", {"d4ebb3350b25c549"}},
    {"CC-BY-SA-4.0", "CC BY-SA 4.0 legal code", "creative commons attribution-sharealike 4.0 international",
     "creative commons may be contacted at creativecommons.org.", {"31a462ebf768b91c"}},
    {"bigscience-bloom-rail-1.0", "BigScience RAIL 1.0 (May 19, 2022)", "bigscience rail license v1.0",
     "2011.03116.pdf", {"468414ceaf0cd096"}},
    {"creativeml-openrail-m", "CreativeML Open RAIL-M (August 22, 2022)", "creativeml open rail-m dated",
     "indiscriminate and arbitrarily-targeted use).", {"74255b7c4e64ab55"}},
    {"creativeml-openrail++-m", "CreativeML Open RAIL++-M (July 26, 2023)", "creativeml open rail++-m license dated",
     "indiscriminate and arbitrarily-targeted use).", {"711c2639c8c79835"}},
    {"bigcode-openrail-m-v1", "BigCode Open RAIL-M v1", "bigcode open rail-m v1 license agreement",
     "immigration or asylum processes.", {"df74d90a947395f0"}},
    {"deepseek-model-1.0", "DeepSeek License Agreement 1.0 (23 October 2023)", "deepseek license agreement version 1.0",
     "legally protected characteristics or categories.", {"0f8cc35a23064b76"}},
    {"llama2-community", "Llama 2 (July 18, 2023)", "llama 2 community license agreement",
     "any dispute arising out of this agreement.", {"0264b2344751c2d2"}},
    {"llama2-aup", "Llama 2 Acceptable Use Policy", "llama 2 acceptable use policy", "llamausereport@meta.com", {"70ab3f8f5487650e"}},
    {"llama3-community", "Meta Llama 3 (April 18, 2024), with its use policy", "meta llama 3 community license agreement",
     "llamausereport@meta.com", {"47cc794ceed62e63"}},
    {"llama3-aup", "Meta Llama 3 Acceptable Use Policy", "meta llama 3 acceptable use policy", "llamausereport@meta.com",
     {"dd30215f34df8f47"}},
    {"llama3.1-community", "Llama 3.1 (July 23, 2024)", "llama 3.1 community license agreement",
     "any dispute arising out of this agreement.", {"cdc25d6ea8173682"}},
    {"llama3.1-aup", "Llama 3.1 Acceptable Use Policy", "llama 3.1 acceptable use policy", "llamausereport@meta.com",
     {"2943ef5a3baadf8b"}},
    {"llama3.2-community", "Llama 3.2 (September 25, 2024)", "llama 3.2 community license agreement",
     "any dispute arising out of this agreement.", {"ae7ccbdccf193c5d"}},
    {"llama3.2-aup", "Llama 3.2 Acceptable Use Policy", "llama 3.2 acceptable use policy", "llamausereport@meta.com",
     {"e3ede59b0097f381"}},
    {"llama3.3-community", "Llama 3.3 (December 6, 2024)", "llama 3.3 community license agreement",
     "any dispute arising out of this agreement.", {"819b6fbb335e940f"}},
    {"llama3.3-aup", "Llama 3.3 Acceptable Use Policy", "llama 3.3 acceptable use policy", "llamausereport@meta.com",
     {"f74e63cd7ac55fd5"}},
    {"llama4-community", "Llama 4 (April 5, 2025)", "llama 4 community license agreement",
     "any dispute arising out of this agreement.", {"3492b658c33d2655"}},
    {"llama4-aup", "Llama 4 Acceptable Use Policy", "llama 4 acceptable use policy", "llamausereport@meta.com", {"90900af7cd6ca1ca"}},
    {"gemma-terms-of-use", "Gemma Terms of Use (last modified February 21, 2024)", "gemma terms of use last modified",
     "any rights under this agreement.", {"9901ae1945599f24"}},
    {"gemma-terms-of-use", "Gemma Terms of Use (last modified April 1, 2024)", "gemma terms of use last modified",
     "any rights under this agreement.", {"56223f3ca13ab4a9"}},
    {"gemma-terms-of-use", "Gemma Terms of Use (last modified March 24, 2025)", "gemma terms of use last modified",
     "any rights under this agreement.", {"4c9f4e5e0a056bb8"}},
    {"gemma-prohibited-use-policy", "Gemma Prohibited Use Policy (February 21, 2024)", "gemma prohibited use policy",
     "documentary, or artistic purposes.", {"eb68470b59180057"}},
    {"tongyi-qianwen", "Tongyi Qianwen License Agreement (August 3, 2023)", "tongyi qianwen license agreement",
     "any dispute arising out of this agreement.", {"cbd665dbe4342655"}},
    {"tongyi-qianwen-research", "Tongyi Qianwen Research License Agreement (November 30, 2023)",
     "tongyi qianwen research license agreement", "unless expressly agreed.", {"e0a2f6f9f14bf9c9"}},
    {"qwen-research", "Qwen Research License Agreement (September 19, 2024)", "qwen research license agreement",
     "unless expressly agreed.", {"b94ed95b44443269"}},
    {"mistral-research-license-0.1", "Mistral AI Research License 0.1", "mistral ai research license",
     "entering into this agreement with mistral ai.", {"a56ba76c5406de83"}},
    {"mistral-non-production-license-0.1", "Mistral AI Non-Production License 0.1", "mistral ai non-production license",
     "entering into this agreement with mistral ai.", {"6737cc04dddea74a"}},
    {"falcon-2-11b-tii-1.0", "Falcon 2 11B TII License 1.0 (May 2024)", "terms and conditions falcon 2 11b tii license",
     "limitations under the license.", {"4545953e09386667"}},
    {"falcon-2-11b-tii-aup-1.0", "Falcon 2 11B TII Acceptable Use Policy 1.0", "acceptable use policy falcon 2 11b tii",
     "harass others.", {"84143857beefbd2b"}},
    {"tii-falcon-license-2024-12", "TII Falcon License (December 2024)", "tii falcon license december 2024",
     "limitations under the license.", {"92c96af3bf78573c"}},
    {"tii-falcon-aup-2024-12", "TII Falcon License Acceptable Use Policy (December 2024)",
     "tii falcon 3 license december 2024", "harass others.", {"424c6ff7ad6b5529"}},
};
#define N_TEXTS (sizeof TEXTS / sizeof TEXTS[0])

/* Text outside the matched part may be a title or a copyright line: short,
 * and without words that would add or change terms. */
enum { MAX_OUTSIDE = 240 };
static const char *const OPERATIVE[] = {"not ", "commercial", "permi", "shall", "must", "may ", "restrict",
                                        "prohibit", "except", "only", "grant", "condition", "terminat", "revoke"};

/* ---- decoding ---- */

static bool put_utf8(char *out, size_t *n, uint32_t cp) {
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, buf);
    if (k <= 0) return false;
    memcpy(out + *n, buf, (size_t)k);
    *n += (size_t)k;
    return true;
}

/* Decodes data into malloc'd UTF-8 (NUL-terminated). */
static owl_status decode_text(const char *name, const uint8_t *d, size_t size, char **out, size_t *out_len) {
    *out = NULL;
    if (size >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF))) {
        bool le = d[0] == 0xFF;
        if (size % 2) return owl_errorf(OWL_ERR_FORMAT, "%s: UTF-16 text with an odd number of bytes (%zu)", name, size);
        size_t cap;
        if (size > SIZE_MAX / 2 - 1) return owl_errorf(OWL_ERR_FORMAT, "%s: too large", name);
        cap = size * 2 + 1; /* a UTF-16 unit gives at most 3 bytes; a pair 4 bytes */
        char *buf = owl_malloc(cap);
        if (!buf) return OWL_ERR_NOMEM;
        size_t n = 0;
        for (size_t i = 2; i < size; i += 2) {
            uint32_t u = le ? (uint32_t)(d[i] | d[i + 1] << 8) : (uint32_t)(d[i] << 8 | d[i + 1]);
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (i + 3 >= size) goto bad16;
                uint32_t v = le ? (uint32_t)(d[i + 2] | d[i + 3] << 8) : (uint32_t)(d[i + 2] << 8 | d[i + 3]);
                if (v < 0xDC00 || v > 0xDFFF) goto bad16;
                u = 0x10000 + ((u - 0xD800) << 10) + (v - 0xDC00);
                i += 2;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                goto bad16;
            }
            if (u == 0) {
                free(buf);
                return owl_errorf(OWL_ERR_FORMAT, "%s: NUL character at byte %zu: binary data, not a licence text", name, i);
            }
            if (!put_utf8(buf, &n, u)) goto bad16;
            continue;
        bad16:
            free(buf);
            return owl_errorf(OWL_ERR_FORMAT, "%s: broken UTF-16 (unpaired surrogate) at byte %zu", name, i);
        }
        buf[n] = 0;
        *out = buf;
        *out_len = n;
        return OWL_OK;
    }
    size_t start = (size >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF) ? 3 : 0;
    for (size_t i = start; i < size;) {
        if (d[i] == 0)
            return owl_errorf(OWL_ERR_FORMAT, "%s: NUL byte at offset %zu: binary data, not a licence text", name, i);
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(d + i, (utf8proc_ssize_t)(size - i), &cp);
        if (k <= 0)
            return owl_errorf(OWL_ERR_FORMAT,
                              "%s: not valid UTF-8 at byte %zu (0x%02x; Latin-1 or another 8-bit encoding?)", name, i,
                              d[i]);
        i += (size_t)k;
    }
    char *buf = owl_malloc(size - start + 1);
    if (!buf) return OWL_ERR_NOMEM;
    memcpy(buf, d + start, size - start);
    buf[size - start] = 0;
    *out = buf;
    *out_len = size - start;
    return OWL_OK;
}

/* ---- normalising ---- */

static bool is_pointer_line(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (n < 2 || s[0] != '[' || s[n - 1] != ']') return false;
    for (size_t i = 0; i + 4 <= n; i++)
        if (strncmp(s + i, "http", 4) == 0) return true;
    return false;
}

static uint32_t fold_char(uint32_t cp) {
    switch (cp) {
    case 0x201C: case 0x201D: case 0x201E: case 0x00AB: case 0x00BB: return '"';
    case 0x2018: case 0x2019: case 0x201A: case 0x0060: return '\'';
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: case 0x2212: return '-';
    case 0x00A0: case 0x202F: case 0x3000: case 0x2028: case 0x2029: return ' ';
    case 0xFEFF: case 0x200B: return 0;
    default: break;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return ' ';
    if (cp < 128) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}

static owl_status normalize_utf8(const char *t, size_t len, char **out, size_t *out_len) {
    /* skip leading blank and pointer lines */
    size_t p = 0;
    for (;;) {
        size_t e = p;
        while (e < len && t[e] != '\n') e++;
        bool blank = true;
        for (size_t i = p; i < e; i++)
            if (t[i] != ' ' && t[i] != '\t' && t[i] != '\r') blank = false;
        if (e >= len || !(blank || is_pointer_line(t + p, e - p))) break;
        p = e + 1;
    }
    char *o = owl_malloc(2 * (len - p) + 4); /* a lower-case form may be 1.5x its source */
    if (!o) return OWL_ERR_NOMEM;
    size_t n = 0;
    bool space = false;
    while (p < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)t + p, (utf8proc_ssize_t)(len - p), &cp);
        if (k <= 0) { /* decode_text validated; be safe anyway */
            p++;
            continue;
        }
        p += (size_t)k;
        if (cp == ']' && p < len && t[p] == '(') { /* markdown link target: drop "(...)" */
            size_t q = p + 1;
            int depth = 1;
            while (q < len && depth > 0 && t[q] != '\n') {
                if (t[q] == '(') depth++;
                else if (t[q] == ')') depth--;
                q++;
            }
            if (depth == 0) p = q;
            continue;
        }
        uint32_t c = fold_char((uint32_t)cp);
        if (c == 0 || c == '*' || c == '#' || c == '_' || c == '`' || c == '>' || c == '\\' || c == '[' || c == ']')
            continue;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            space = n > 0;
            continue;
        }
        if (space) o[n++] = ' ';
        space = false;
        size_t before = n;
        if (!put_utf8(o, &n, c)) n = before;
        /* a lower-case form is never longer than 4 bytes; the output never
         * outgrows the input because every folded character is at most as
         * long as its source (ASCII replacements are 1 byte) */
    }
    o[n] = 0;
    *out = o;
    *out_len = n;
    return OWL_OK;
}

owl_status owl_license_normalize(const char *name, const uint8_t *data, size_t size, char **out, size_t *out_len) {
    char *t;
    size_t len;
    owl_status st = decode_text(name, data, size, &t, &len);
    if (st) return st;
    st = normalize_utf8(t, len, out, out_len);
    free(t);
    return st;
}

/* ---- matching ---- */

static const char *last_occurrence(const char *hay, size_t hay_len, const char *from, const char *needle) {
    size_t k = strlen(needle);
    if (hay_len < k) return NULL;
    for (const char *p = hay + hay_len - k; p >= from; p--) {
        if (memcmp(p, needle, k) == 0) return p;
        if (p == hay) break;
    }
    return NULL;
}

typedef struct region {
    size_t start, end; /* [start, end) in the normalised text */
    char fp[17];
} region;

static bool find_region(const char *norm, size_t len, const text_entry *e, region *r) {
    const char *s = strstr(norm, e->first);
    if (!s) return false;
    const char *l = last_occurrence(norm, len, s, e->last);
    if (!l) return false;
    r->start = (size_t)(s - norm);
    r->end = (size_t)(l - norm) + strlen(e->last);
    if (r->end < r->start + strlen(e->first)) return false;
    char hex[65];
    if (owl_sha256_mem(norm + r->start, r->end - r->start, hex)) return false;
    memcpy(r->fp, hex, 16);
    r->fp[16] = 0;
    return true;
}

static const char *adds_terms(const char *s, size_t n) {
    if (n > MAX_OUTSIDE) return "is too long";
    for (size_t w = 0; w < sizeof OPERATIVE / sizeof OPERATIVE[0]; w++) {
        size_t k = strlen(OPERATIVE[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (memcmp(s + i, OPERATIVE[w], k) == 0) return OPERATIVE[w];
    }
    return NULL;
}

owl_status owl_license_classify_text(const char *name, const uint8_t *data, size_t size, owl_license_match *out) {
    memset(out, 0, sizeof *out);
    char *norm;
    size_t len;
    owl_status st = owl_license_normalize(name, data, size, &norm, &len);
    if (st) return st;
    const text_entry *best = NULL, *near = NULL;
    region best_r = {0}, near_r = {0};
    for (size_t i = 0; i < N_TEXTS; i++) {
        region r;
        if (!find_region(norm, len, &TEXTS[i], &r)) continue;
        bool known = false;
        for (size_t f = 0; f < 6 && TEXTS[i].fp[f]; f++)
            if (strcmp(TEXTS[i].fp[f], r.fp) == 0) known = true;
        if (known) {
            if (!best || r.end - r.start > best_r.end - best_r.start) best = &TEXTS[i], best_r = r;
        } else if (!near || r.end - r.start > near_r.end - near_r.start) {
            near = &TEXTS[i], near_r = r;
        }
    }
    if (best) {
        const char *why = adds_terms(norm, best_r.start);
        const char *why2 = adds_terms(norm + best_r.end, len - best_r.end);
        if (why || why2) {
            out->resembles = owl_license_find(best->id);
            snprintf(out->reason, sizeof out->reason, "the text %s the %s text %s%s%s", why ? "before" : "after",
                     best->id, (why ? why : why2)[0] == 'i' ? "" : "adds terms (\"", why ? why : why2,
                     (why ? why : why2)[0] == 'i' ? "" : "\")");
        } else {
            out->info = owl_license_find(best->id);
            out->variant = best->variant;
        }
    } else if (near) {
        out->resembles = owl_license_find(near->id);
        snprintf(out->reason, sizeof out->reason,
                 "starts and ends like %s but differs from every published copy owl knows (fingerprint %s)", near->id,
                 near_r.fp);
    } else {
        snprintf(out->reason, sizeof out->reason, "not a licence text owl knows");
    }
    free(norm);
    return OWL_OK;
}

owl_status owl_license_fingerprints(const char *name, const uint8_t *data, size_t size, char **out) {
    char *norm;
    size_t len;
    owl_status st = owl_license_normalize(name, data, size, &norm, &len);
    if (st) return st;
    size_t cap = N_TEXTS * 96 + 1, n = 0;
    char *s = owl_malloc(cap);
    if (!s) {
        free(norm);
        return OWL_ERR_NOMEM;
    }
    s[0] = 0;
    for (size_t i = 0; i < N_TEXTS; i++) {
        region r;
        if (!find_region(norm, len, &TEXTS[i], &r)) continue;
        int k = snprintf(s + n, cap - n, "%s %s %zu..%zu of %zu\n", TEXTS[i].id, r.fp, r.start, r.end, len);
        if (k > 0 && (size_t)k < cap - n) n += (size_t)k;
    }
    free(norm);
    *out = s;
    return OWL_OK;
}
