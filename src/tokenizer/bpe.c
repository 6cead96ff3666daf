/* BPE state: the GPT-2 byte alphabet, merge ranks keyed by a pair of ids,
 * added-token index, token -> bytes, and freeing. */
#include "tokenizer/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GPT-2 byte alphabet ----
 * Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves;
 * the other 68 bytes get code points 256, 257, ... in byte order. */
static bool byte_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The 68 others: 0..32 (33), 127..160 (34), 173 (1). */
uint32_t owl_bpe_byte_char(uint8_t b) {
    if (byte_printable(b)) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33 + (b - 127u);
    return 256u + 67; /* 173 */
}

int owl_bpe_char_byte(uint32_t cp) {
    if (cp < 256) return byte_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(127 + k - 33);
    return 173;
}

size_t owl_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one UTF-8 character at s (n > 0 bytes left); returns its length
 * (1 for an invalid byte, with *cp = 0xFFFFFFFF). */
static size_t utf8_get(const uint8_t *s, size_t n, uint32_t *cp) {
    int l = owl_utf8_len(s[0]);
    if (l == 0 || (size_t)l > n) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    uint32_t c = l == 1 ? s[0] : l == 2 ? (s[0] & 0x1Fu) : l == 3 ? (s[0] & 0x0Fu) : (s[0] & 0x07u);
    for (int i = 1; i < l; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFFu;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *cp = c;
    return (size_t)l;
}

uint32_t owl_utf8_prev(const char *s, size_t end, size_t *start) {
    size_t k = end - 1;
    while (k > 0 && end - k < 4 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp;
    size_t l = utf8_get((const uint8_t *)s + k, end - k, &cp);
    if (l != end - k) {
        k = end - 1;
        cp = 0xFFFFFFFFu;
    }
    *start = k;
    return cp;
}

/* Which characters some piece holds right before '▁' (see cut_at_space). */
static void find_cut_blocks(owl_tokenizer *tok) {
    struct owl_bpe *b = tok->bpe;
    b->cut_at_space = false;
    b->n_cut_block = 0;
    if (b->byte_level || b->ignore_merges || !b->dec_space_len) return;
    const char *sp = b->dec_space;
    size_t sl = b->dec_space_len;
    for (int id = 0; id < tok->vocab.n; id++) {
        owl_str p = tok->vocab.pieces[id];
        for (size_t i = 1; i + sl <= p.len; i++) {
            if (memcmp(p.ptr + i, sp, sl) != 0) continue;
            if (i >= sl && memcmp(p.ptr + i - sl, sp, sl) == 0) continue;
            size_t st;
            uint32_t cp = owl_utf8_prev(p.ptr, i, &st);
            bool have = false;
            for (int k = 0; k < b->n_cut_block; k++) have |= b->cut_block[k] == cp;
            if (have) continue;
            if (b->n_cut_block == 16) return; /* too many: never cut */
            b->cut_block[b->n_cut_block++] = cp;
        }
    }
    b->cut_at_space = true;
}

/* ---- construction ---- */

struct owl_bpe *owl_bpe_new(void) {
    struct owl_bpe *b = owl_calloc(1, sizeof *b);
    if (!b) return NULL;
    for (int i = 0; i < 256; i++) b->byte_ids[i] = b->fallback_ids[i] = -1;
    return b;
}

owl_status owl_bpe_add_pre(struct owl_bpe *b, const owl_pre_step *step) {
    if (b->n_pre == b->cap_pre) {
        int cap = b->cap_pre ? b->cap_pre * 2 : 4;
        owl_pre_step *np = realloc(b->pre, sizeof *np * (size_t)cap);
        if (!np) {
            if (step->re) pcre2_code_free(step->re);
            return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        }
        b->pre = np;
        b->cap_pre = cap;
    }
    b->pre[b->n_pre++] = *step;
    return OWL_OK;
}

static uint32_t pair_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (uint32_t)key;
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

owl_status owl_bpe_set_merges(owl_tokenizer *tok, size_t n, const owl_str *left, const owl_str *right,
                              const char *what) {
    struct owl_bpe *b = tok->bpe;
    if (n >= UINT32_MAX / 4) return owl_errorf(OWL_ERR_FORMAT, "%s: %zu merges is too many", what, n);
    uint32_t size = 16;
    while (size < n * 2) size <<= 1;
    b->mkey = owl_arena_alloc(&b->arena, sizeof(uint64_t) * size);
    b->mrank = owl_arena_alloc(&b->arena, sizeof(uint32_t) * size);
    b->mres = owl_arena_alloc(&b->arena, sizeof(int32_t) * size);
    if (!b->mkey || !b->mrank || !b->mres) return OWL_ERR_NOMEM;
    memset(b->mrank, 0xFF, sizeof(uint32_t) * size);
    b->mmask = size - 1;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (left[i].len == 0 || right[i].len == 0) {
            free(cat);
            return owl_errorf(OWL_ERR_FORMAT, "%s[%zu]: merge has an empty side", what, i);
        }
        int32_t l = owl_vocab_find(&tok->vocab, left[i].ptr, left[i].len);
        int32_t r = owl_vocab_find(&tok->vocab, right[i].ptr, right[i].len);
        if (l < 0 || r < 0) {
            owl_str bad = l < 0 ? left[i] : right[i];
            free(cat);
            return owl_errorf(OWL_ERR_FORMAT, "%s[%zu]: merge names unknown token '%.*s'", what, i,
                              (int)(bad.len > 64 ? 64 : bad.len), bad.ptr);
        }
        size_t cl = left[i].len + right[i].len;
        if (cl > cat_cap) {
            char *nc = realloc(cat, cl * 2);
            if (!nc) {
                free(cat);
                return owl_errorf(OWL_ERR_NOMEM, "out of memory");
            }
            cat = nc;
            cat_cap = cl * 2;
        }
        memcpy(cat, left[i].ptr, left[i].len);
        memcpy(cat + left[i].len, right[i].ptr, right[i].len);
        int32_t res = owl_vocab_find(&tok->vocab, cat, cl);
        if (res < 0) {
            owl_status st = owl_errorf(OWL_ERR_FORMAT, "%s[%zu]: merge result '%.*s' is not in the vocabulary", what,
                                       i, (int)(cl > 64 ? 64 : cl), cat);
            free(cat);
            return st;
        }
        uint64_t key = pair_key(l, r);
        for (uint32_t h = pair_hash(key) & b->mmask;; h = (h + 1) & b->mmask) {
            if (b->mrank[h] == UINT32_MAX) {
                b->mkey[h] = key;
                b->mrank[h] = (uint32_t)i;
                b->mres[h] = res;
                b->n_merges++;
                break;
            }
            if (b->mkey[h] == key) break; /* duplicate merge: the first rank wins */
        }
    }
    free(cat);
    return OWL_OK;
}

owl_status owl_bpe_finish(owl_tokenizer *tok, const char *what) {
    struct owl_bpe *b = tok->bpe;
    int missing = 0;
    for (int i = 0; i < 256; i++) {
        char s[8];
        size_t l = owl_utf8_put(owl_bpe_byte_char((uint8_t)i), s);
        b->byte_ids[i] = owl_vocab_find(&tok->vocab, s, l);
        if (b->byte_level && b->byte_ids[i] < 0 && !missing++)
            owl_log(OWL_LOG_WARN, "%s: byte-level vocabulary lacks the piece of byte 0x%02X (encoded as unknown)", what, i);
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", i);
        b->fallback_ids[i] = owl_vocab_find(&tok->vocab, hex, 6);
        tok->byte_tokens[i] = b->fallback_ids[i];
        if (b->fallback_ids[i] >= 0 && tok->vocab.types[b->fallback_ids[i]] == OWL_TOKTYPE_NORMAL)
            tok->vocab.types[b->fallback_ids[i]] = OWL_TOKTYPE_BYTE;
    }
    find_cut_blocks(tok);
    return OWL_OK;
}

static int cmp_added_len(const void *a, const void *b) {
    const owl_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

owl_status owl_bpe_index_added(owl_tokenizer *tok) {
    struct owl_bpe *b = tok->bpe;
    b->is_added = owl_arena_alloc(&b->arena, (size_t)tok->vocab.n);
    if (!b->is_added) return OWL_ERR_NOMEM;
    /* drop empty texts; longest first so the per-byte length lists come out descending */
    int k = 0;
    for (int i = 0; i < b->n_added; i++)
        if (b->added[i].len > 0 && b->added[i].len <= 255) b->added[k++] = b->added[i];
    b->n_added = k;
    if (k) qsort(b->added, (size_t)k, sizeof *b->added, cmp_added_len);
    uint32_t size = 16;
    while (size < (uint32_t)k * 2) size <<= 1;
    b->added_slots = owl_arena_alloc(&b->arena, sizeof(uint32_t) * size);
    if (!b->added_slots) return OWL_ERR_NOMEM;
    b->added_mask = size - 1;
    uint8_t lens[256][32];
    int nl[256] = {0};
    bool overflow[256] = {0};
    int n_special = 0;
    for (int i = 0; i < k; i++) {
        owl_added *a = &b->added[i];
        b->is_added[a->id] = 1;
        if (a->special) n_special++;
        if (a->len > b->added_max_len) b->added_max_len = a->len;
        if (a->normalized) b->n_added_normalized++;
        uint64_t h64 = owl_added_hash_init();
        for (size_t j = 0; j < a->len; j++) h64 = owl_added_hash_step(h64, (uint8_t)a->text[j]);
        uint32_t h = (uint32_t)h64 & b->added_mask;
        bool dup = false;
        for (;; h = (h + 1) & b->added_mask) {
            uint32_t s = b->added_slots[h];
            if (s == 0) break;
            const owl_added *o = &b->added[s - 1];
            if (o->len == a->len && memcmp(o->text, a->text, a->len) == 0) {
                dup = true;
                break;
            }
        }
        if (dup) continue;
        b->added_slots[h] = (uint32_t)i + 1;
        uint8_t c = (uint8_t)a->text[0];
        if (nl[c] > 0 && lens[c][nl[c] - 1] == a->len) continue;
        if (nl[c] == 32) {
            overflow[c] = true;
            continue;
        }
        lens[c][nl[c]++] = (uint8_t)a->len;
    }
    for (int c = 0; c < 256; c++) {
        if (!nl[c]) continue;
        if (overflow[c]) { /* many lengths: list every one from the longest down */
            int maxl = lens[c][0];
            b->added_lens[c] = owl_arena_alloc(&b->arena, (size_t)maxl + 1);
            if (!b->added_lens[c]) return OWL_ERR_NOMEM;
            for (int l = maxl, j = 0; l >= 1; l--) b->added_lens[c][j++] = (uint8_t)l;
        } else {
            b->added_lens[c] = owl_arena_alloc(&b->arena, (size_t)nl[c] + 1);
            if (!b->added_lens[c]) return OWL_ERR_NOMEM;
            memcpy(b->added_lens[c], lens[c], (size_t)nl[c]);
        }
    }
    free(tok->specials);
    tok->specials = NULL;
    tok->n_specials = 0;
    if (n_special) {
        tok->specials = malloc(sizeof(int32_t) * (size_t)n_special);
        if (!tok->specials) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        for (int i = 0; i < k; i++)
            if (b->added[i].special) tok->specials[tok->n_specials++] = b->added[i].id;
    }
    return OWL_OK;
}

/* ---- decoding ---- */

owl_status owl_bpe_token_bytes(const owl_tokenizer *tok, int32_t id, char *buf, size_t cap, size_t *len) {
    *len = 0;
    if (id < 0 || id >= tok->vocab.n) return owl_errorf(OWL_ERR_ARG, "token id %d is outside the vocabulary of %d", id, tok->vocab.n);
    const struct owl_bpe *b = tok->bpe;
    owl_str p = tok->vocab.pieces[id];
    const uint8_t *s = (const uint8_t *)p.ptr;
    char tmp[8];
    size_t n = 0;
    /* byte-level added tokens are text as written; SentencePiece-style ones go through the decoder too */
    bool raw = !b || (b->dec_byte_level && b->is_added && b->is_added[id]);
    if (!raw && b->dec_byte_level) /* a piece with a character outside the byte alphabet is text as written */
        for (size_t i = 0; i < p.len && !raw;) {
            uint32_t cp;
            i += utf8_get(s + i, p.len - i, &cp);
            raw = cp == 0xFFFFFFFFu || owl_bpe_char_byte(cp) < 0;
        }
    if (!raw && b->dec_byte_fallback && tok->vocab.types[id] == OWL_TOKTYPE_BYTE && p.len == 6 && s[0] == '<' &&
        s[1] == '0' && s[2] == 'x' && s[5] == '>') { /* <0xXX> */
        int v = 0;
        bool ok = true;
        for (int k = 3; k < 5; k++) {
            int c = s[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) ok = false;
            v = v * 16 + d;
        }
        if (ok) {
            *len = 1;
            if (cap < 1) return OWL_ERR_RANGE;
            buf[0] = (char)v;
            return OWL_OK;
        }
    }
    for (size_t i = 0; i < p.len;) {
        size_t l, tl;
        const char *t;
        if (raw) {
            l = tl = 1;
            t = (const char *)s + i;
        } else if (b->dec_byte_level) {
            uint32_t cp;
            l = utf8_get(s + i, p.len - i, &cp);
            int by = cp == 0xFFFFFFFFu ? -1 : owl_bpe_char_byte(cp);
            if (by >= 0) {
                tmp[0] = (char)by;
                t = tmp;
                tl = 1;
            } else {
                t = (const char *)s + i;
                tl = l;
            }
        } else if (b->dec_space_len && p.len - i >= b->dec_space_len &&
                   memcmp(s + i, b->dec_space, b->dec_space_len) == 0) {
            l = b->dec_space_len;
            t = " ";
            tl = 1;
        } else {
            l = tl = 1;
            t = (const char *)s + i;
        }
        if (n + tl <= cap) memcpy(buf + n, t, tl);
        n += tl;
        i += l;
    }
    *len = n;
    return n <= cap ? OWL_OK : OWL_ERR_RANGE;
}

owl_status owl_bpe_decode(const owl_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    size_t cap = 256, used = 0;
    char *out = malloc(cap);
    if (!out) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t l;
        owl_status st = owl_bpe_token_bytes(tok, ids[i], out + used, cap - used - 1, &l);
        if (st == OWL_ERR_RANGE && l > 0) {
            while (cap - used - 1 < l) cap *= 2;
            char *no = realloc(out, cap);
            if (!no) {
                free(out);
                return owl_errorf(OWL_ERR_NOMEM, "out of memory");
            }
            out = no;
            st = owl_bpe_token_bytes(tok, ids[i], out + used, cap - used - 1, &l);
        }
        if (st != OWL_OK) {
            free(out);
            return st;
        }
        used += l;
    }
    size_t skip = 0;
    int strip = tok->bpe ? tok->bpe->dec_strip : 0;
    while ((int)skip < strip && skip < used && out[skip] == ' ') skip++;
    memmove(out, out + skip, used - skip);
    used -= skip;
    out[used] = '\0';
    *text = out;
    if (len) *len = used;
    return OWL_OK;
}

const char *owl_tokenizer_chat_template(const owl_tokenizer *tok) {
    return tok && tok->bpe ? tok->bpe->chat_template : NULL;
}

/* ---- freeing ---- */

void owl_bpe_free(struct owl_bpe *b) {
    if (!b) return;
    for (int i = 0; i < b->n_pre; i++)
        if (b->pre[i].re) pcre2_code_free(b->pre[i].re);
    free(b->pre);
    free(b->added);
    owl_arena_free(&b->arena);
    free(b);
}

void owl_norm_free(struct owl_norm *nm) {
    if (!nm) return;
    for (int i = 0; i < nm->n; i++)
        if (nm->steps[i].re) pcre2_code_free(nm->steps[i].re);
    free(nm->steps);
    owl_arena_free(&nm->arena);
    free(nm);
}

void owl_bpe_tokenizer_destroy(owl_tokenizer *tok) {
    if (!tok) return;
    owl_vocab_free(&tok->vocab);
    free(tok->specials);
    owl_bpe_free(tok->bpe);
    owl_norm_free(tok->norm);
    free(tok);
}
