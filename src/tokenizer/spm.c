/* SentencePiece-style BPE encoding.
 *
 * The text is normalized (spaces become U+2581 '▁', a '▁' goes in front when
 * the tokenizer asks for a space prefix), split into UTF-8 characters, and
 * then the adjacent pair of symbols whose concatenation is a vocabulary piece
 * with the highest score is merged, again and again (leftmost first on equal
 * scores). A max-heap of candidate pairs keeps this O(n log n); candidates
 * that went stale (one side merged since) are recognised by their span and
 * dropped when popped. Symbols left that are not pieces become byte-fallback
 * tokens <0xXX> (or the unknown token). */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

typedef struct spm_pair {
    float score;
    uint32_t left, right; /* symbol indexes */
    uint32_t len;         /* bytes of the merged span when pushed */
} spm_pair;

typedef struct spm_node {
    uint32_t start, len;
    int32_t left, right; /* child nodes of a merge, -1 for a character */
} spm_node;

typedef struct spm_work {
    const char *s; /* normalized text */
    uint32_t n_sym;
    uint32_t *sym_node; /* node of each symbol */
    int32_t *prev, *next;
    uint8_t *fixed; /* 1: never merged (user-defined piece or invalid byte) */
    spm_node *nodes;
    uint32_t n_nodes;
    spm_pair *heap;
    size_t n_heap, cap_heap;
} spm_work;

/* ---- the set of adjacent character pairs found inside pieces ---- */

struct owl_spm_pairs {
    uint64_t *key; /* the two characters' bytes, little-endian, zero-padded */
    uint8_t *len;  /* their byte count; 0 = empty slot */
    size_t mask, used;
};

static uint64_t pack_bytes(const char *s, size_t n) {
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++) k |= (uint64_t)(uint8_t)s[i] << (8 * i);
    return k;
}

static size_t pair_slot(uint64_t k, size_t n) {
    uint64_t h = (k ^ (uint64_t)n * 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
    return (size_t)(h ^ (h >> 29));
}

static bool pairs_has(const struct owl_spm_pairs *p, const char *s, size_t n) {
    uint64_t k = pack_bytes(s, n);
    for (size_t i = pair_slot(k, n) & p->mask;; i = (i + 1) & p->mask) {
        if (p->len[i] == 0) return false;
        if (p->len[i] == n && p->key[i] == k) return true;
    }
}

static void pairs_insert(uint64_t *keys, uint8_t *lens, size_t mask, uint64_t k, size_t n) {
    for (size_t i = pair_slot(k, n) & mask;; i = (i + 1) & mask) {
        if (lens[i] == 0) {
            lens[i] = (uint8_t)n;
            keys[i] = k;
            return;
        }
    }
}

/* false: out of memory */
static bool pairs_add(struct owl_spm_pairs *p, const char *s, size_t n) {
    uint64_t k = pack_bytes(s, n);
    for (size_t i = pair_slot(k, n) & p->mask;; i = (i + 1) & p->mask) {
        if (p->len[i] == 0) break;
        if (p->len[i] == n && p->key[i] == k) return true;
    }
    if (2 * (p->used + 1) > p->mask + 1) { /* keep the table at most half full */
        size_t cap = 2 * (p->mask + 1);
        uint64_t *keys = malloc(cap * sizeof *keys);
        uint8_t *lens = calloc(cap, 1);
        if (!keys || !lens) {
            free(keys);
            free(lens);
            return false;
        }
        for (size_t i = 0; i <= p->mask; i++)
            if (p->len[i]) pairs_insert(keys, lens, cap - 1, p->key[i], p->len[i]);
        free(p->key);
        free(p->len);
        p->key = keys;
        p->len = lens;
        p->mask = cap - 1;
    }
    pairs_insert(p->key, p->len, p->mask, k, n);
    p->used++;
    return true;
}

/* Length of a valid UTF-8 character at s (n bytes left), 0 if invalid. */
static size_t utf8_char(const uint8_t *s, size_t n);

void owl_spm_pairs_free(struct owl_spm_pairs *p) {
    if (!p) return;
    free(p->key);
    free(p->len);
    free(p);
}

static bool mergeable_type(int32_t t);

owl_status owl_spm_pairs_build(owl_tokenizer *tok) {
    owl_spm_pairs_free(tok->spm_pairs);
    tok->spm_pairs = NULL;
    size_t cap = 1024;
    struct owl_spm_pairs *p = calloc(1, sizeof *p);
    if (p) {
        p->key = malloc(cap * sizeof *p->key);
        p->len = calloc(cap, 1);
    }
    if (!p || !p->key || !p->len) {
        owl_spm_pairs_free(p);
        return owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for the character-pair index");
    }
    p->mask = cap - 1;
    for (int i = 0; i < tok->vocab.n; i++) {
        if (!mergeable_type(tok->vocab.types[i])) continue;
        owl_str s = tok->vocab.pieces[i];
        const uint8_t *u = (const uint8_t *)s.ptr;
        size_t prev_len = 0;
        for (size_t k = 0; k < s.len;) {
            size_t c = utf8_char(u + k, s.len - k);
            if (c == 0) c = 1; /* a piece with invalid UTF-8: its bytes pair up as they are */
            if (prev_len > 0 && !pairs_add(p, s.ptr + k - prev_len, prev_len + c)) {
                owl_spm_pairs_free(p);
                return owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for the character-pair index");
            }
            prev_len = c;
            k += c;
        }
    }
    tok->spm_pairs = p;
    return OWL_OK;
}

/* ---- the merge agenda ---- */

static bool pair_before(const spm_pair *a, const spm_pair *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static owl_status heap_push(spm_work *w, spm_pair p) {
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? w->cap_heap * 2 : 256;
        spm_pair *nh = realloc(w->heap, cap * sizeof *nh);
        if (!nh) return owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for %zu merge candidates", cap);
        w->heap = nh;
        w->cap_heap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
    return OWL_OK;
}

static spm_pair heap_pop(spm_work *w) {
    spm_pair top = w->heap[0];
    spm_pair last = w->heap[--w->n_heap];
    size_t n = w->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static bool mergeable_type(int32_t t) {
    return t == OWL_TOKTYPE_NORMAL || t == OWL_TOKTYPE_USER_DEFINED || t == OWL_TOKTYPE_UNUSED;
}

static owl_status try_pair(const owl_tokenizer *tok, spm_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->fixed[l] || w->fixed[r]) return OWL_OK;
    const spm_node *a = &w->nodes[w->sym_node[l]], *b = &w->nodes[w->sym_node[r]];
    size_t len = (size_t)a->len + b->len;
    if (len > tok->max_piece_len) return OWL_OK;
    int32_t id = owl_vocab_find(&tok->vocab, w->s + a->start, len);
    if (id < 0 || !mergeable_type(tok->vocab.types[id])) return OWL_OK;
    spm_pair p = {tok->vocab.scores[id], (uint32_t)l, (uint32_t)r, (uint32_t)len};
    return heap_push(w, p);
}

static size_t utf8_char(const uint8_t *s, size_t n) {
    int len = owl_utf8_len(s[0]);
    if (len == 0 || (size_t)len > n) return 0;
    for (int k = 1; k < len; k++)
        if ((s[k] & 0xc0) != 0x80) return 0;
    if (len == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
    if (len == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
    return (size_t)len;
}

/* The longest user-defined piece at s, 0 if none. first: which bytes start one. */
static size_t user_defined_at(const owl_tokenizer *tok, const bool *first, const char *s, size_t n) {
    if (!first[(uint8_t)s[0]]) return 0;
    for (int k = 0; k < tok->n_specials; k++) {
        int32_t id = tok->specials[k];
        if (tok->vocab.types[id] != OWL_TOKTYPE_USER_DEFINED) continue;
        owl_str p = tok->vocab.pieces[id];
        if (p.len > 0 && p.len <= n && memcmp(p.ptr, s, p.len) == 0) return p.len; /* specials: longest first */
    }
    return 0;
}

static owl_status emit_bytes(const owl_tokenizer *tok, const char *s, size_t len, owl_ids *out, bool *prev_unk) {
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t id = tok->byte_tokens[b];
        if (id >= 0) {
            *prev_unk = false;
        } else if (tok->unk >= 0) {
            if (*prev_unk) continue; /* a run of unknown symbols is one unknown token */
            id = tok->unk;
            *prev_unk = true;
        } else {
            return owl_errorf(OWL_ERR_UNSUPPORTED,
                              "tokenizer: byte 0x%02x is not in the vocabulary and there is no byte-fallback or "
                              "unknown token",
                              b);
        }
        owl_status s2 = owl_ids_push(out, id);
        if (s2 != OWL_OK) return s2;
    }
    return OWL_OK;
}

/* Emits one final symbol: its piece if it is one, the parts of an unused
 * piece, else byte fallback. Uses an explicit stack for unused pieces. */
static owl_status emit_symbol(const owl_tokenizer *tok, spm_work *w, uint32_t node, owl_ids *out, bool *prev_unk,
                              uint32_t *stack) {
    size_t sp = 0;
    stack[sp++] = node;
    while (sp > 0) {
        const spm_node *nd = &w->nodes[stack[--sp]];
        int32_t id = owl_vocab_find(&tok->vocab, w->s + nd->start, nd->len);
        int32_t t = id >= 0 ? tok->vocab.types[id] : 0;
        if (id >= 0 && t == OWL_TOKTYPE_UNUSED && nd->left >= 0) {
            stack[sp++] = (uint32_t)nd->right; /* left is handled first */
            stack[sp++] = (uint32_t)nd->left;
            continue;
        }
        owl_status s;
        if (id >= 0 && mergeable_type(t)) {
            *prev_unk = false;
            s = owl_ids_push(out, id);
        } else {
            s = emit_bytes(tok, w->s + nd->start, nd->len, out, prev_unk);
        }
        if (s != OWL_OK) return s;
    }
    return OWL_OK;
}

/* Normalizes text into a malloc'd buffer: optional whitespace cleanup,
 * optional '▁' prefix, ' ' -> '▁'. */
static owl_status spm_normalize(const owl_tokenizer *tok, const char *text, size_t len, bool prefix, char **out,
                                size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (len > ((size_t)1 << 28))
        return owl_errorf(OWL_ERR_RANGE, "tokenizer: text of %zu bytes is too long (at most 256 MiB)", len);
    size_t a = 0, b = len;
    if (tok->remove_extra_spaces) {
        while (a < b && text[a] == ' ') a++;
        while (b > a && text[b - 1] == ' ') b--;
    }
    if (a == b) return OWL_OK; /* nothing to encode */
    char *buf = malloc(3 * (b - a) + 4);
    if (!buf) return owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    size_t n = 0;
    if (prefix) {
        memcpy(buf, SPACE_MARK, 3);
        n = 3;
    }
    for (size_t i = a; i < b; i++) {
        if (text[i] == ' ') {
            if (tok->remove_extra_spaces && i > a && text[i - 1] == ' ') continue;
            memcpy(buf + n, SPACE_MARK, 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    /* sentencepiece strips trailing spaces after escaping them, so a '▁'
     * written in the text goes too (and the prefix, if nothing else is left) */
    if (tok->remove_extra_spaces)
        while (n >= 3 && memcmp(buf + n - 3, SPACE_MARK, 3) == 0) n -= 3;
    if (n == 0) {
        free(buf);
        return OWL_OK;
    }
    *out = buf;
    *out_len = n;
    return OWL_OK;
}

static void work_free(spm_work *w) {
    free(w->sym_node);
    free(w->prev);
    free(w->next);
    free(w->fixed);
    free(w->nodes);
    free(w->heap);
}

owl_status owl_spm_encode_stretch(const owl_tokenizer *tok, const char *text, size_t len, bool space_prefix,
                                  owl_ids *out) {
    if (len == 0) return OWL_OK;
    char *norm = NULL;
    size_t n = 0;
    owl_status s = spm_normalize(tok, text, len, space_prefix, &norm, &n);
    if (s != OWL_OK || n == 0) return s;

    spm_work w = {.s = norm};
    w.sym_node = malloc(n * sizeof *w.sym_node);
    w.prev = malloc(n * sizeof *w.prev);
    w.next = malloc(n * sizeof *w.next);
    w.fixed = malloc(n);
    w.nodes = malloc(2 * n * sizeof *w.nodes);
    uint32_t *stack = NULL;
    if (!w.sym_node || !w.prev || !w.next || !w.fixed || !w.nodes) {
        s = owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n);
        goto done;
    }
    /* Split into characters (and whole user-defined pieces). */
    bool first[256] = {false};
    for (int k = 0; k < tok->n_specials && tok->n_user_defined > 0; k++) {
        owl_str p = tok->vocab.pieces[tok->specials[k]];
        if (tok->vocab.types[tok->specials[k]] == OWL_TOKTYPE_USER_DEFINED && p.len > 0) first[(uint8_t)p.ptr[0]] = true;
    }
    const uint8_t *u = (const uint8_t *)norm;
    for (size_t i = 0; i < n;) {
        size_t clen = 0;
        uint8_t fixed = 0;
        if (tok->n_user_defined > 0 && (clen = user_defined_at(tok, first, norm + i, n - i)) > 0) fixed = 1;
        if (clen == 0) {
            clen = utf8_char(u + i, n - i);
            if (clen == 0) {
                clen = 1; /* a byte that is not valid UTF-8 stays alone and goes to byte fallback */
                fixed = 1;
            }
        }
        uint32_t k = w.n_sym++;
        w.nodes[k] = (spm_node){(uint32_t)i, (uint32_t)clen, -1, -1};
        w.sym_node[k] = k;
        w.prev[k] = (int32_t)k - 1;
        w.next[k] = k + 1 < n ? (int32_t)k + 1 : -1;
        w.fixed[k] = fixed;
        i += clen;
    }
    w.next[w.n_sym - 1] = -1;
    w.n_nodes = w.n_sym;

    /* Merge stretch by stretch: a cut goes between two characters that no
     * piece holds side by side, so no merge can cross it and the result is
     * the same as merging the whole text at once. */
    for (uint32_t seg = 0; seg < w.n_sym;) {
        uint32_t end = seg + 1;
        if (tok->spm_pairs) {
            while (end < w.n_sym && !w.fixed[end - 1] && !w.fixed[end]) {
                const spm_node *a = &w.nodes[end - 1], *b = &w.nodes[end];
                if (!pairs_has(tok->spm_pairs, norm + a->start, (size_t)a->len + b->len)) break;
                end++;
            }
        } else {
            end = w.n_sym;
        }
        for (uint32_t k = seg; k + 1 < end; k++)
            if ((s = try_pair(tok, &w, (int32_t)k, (int32_t)k + 1)) != OWL_OK) goto done;
        seg = end;

        while (w.n_heap > 0) {
            spm_pair p = heap_pop(&w);
            uint32_t l = p.left, r = p.right;
            if (w.next[l] != (int32_t)r) continue; /* stale: no longer neighbours */
            spm_node *a = &w.nodes[w.sym_node[l]], *b = &w.nodes[w.sym_node[r]];
            if ((size_t)a->len + b->len != p.len) continue; /* stale: a side grew */
            uint32_t nn = w.n_nodes++;
            w.nodes[nn] = (spm_node){a->start, a->len + b->len, (int32_t)w.sym_node[l], (int32_t)w.sym_node[r]};
            w.sym_node[l] = nn;
            w.next[l] = w.next[r];
            if (w.next[r] >= 0) w.prev[w.next[r]] = (int32_t)l;
            w.next[r] = w.prev[r] = -1;
            if ((s = try_pair(tok, &w, w.prev[l], (int32_t)l)) != OWL_OK) goto done;
            if ((s = try_pair(tok, &w, (int32_t)l, w.next[l])) != OWL_OK) goto done;
        }
    }

    stack = malloc((size_t)w.n_nodes * sizeof *stack);
    if (!stack) {
        s = owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    bool prev_unk = false;
    for (int32_t k = 0; k >= 0; k = w.next[k])
        if ((s = emit_symbol(tok, &w, w.sym_node[k], out, &prev_unk, stack)) != OWL_OK) goto done;
done:
    free(stack);
    work_free(&w);
    free(norm);
    return s;
}

owl_status owl_spm_encode(const owl_tokenizer *tok, const char *text, size_t len, owl_ids *out) {
    return owl_spm_encode_stretch(tok, text, len, tok->add_space_prefix, out);
}
