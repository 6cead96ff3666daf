/* BPE encoding: added tokens split out first, then per stretch the
 * normalizer, the pre-tokenizer and the merges (lowest rank first, leftmost
 * first among equal ranks, with a heap over a linked list of symbols). */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct heap_ent {
    uint32_t rank, pos, right;
    int32_t l, r;
} heap_ent;

/* Per-call cache of short pre-tokens -> their ids (long texts repeat words). */
#define CACHE_SLOTS 8192
#define CACHE_MAX_KEY 48
typedef struct cache_ent {
    uint32_t key_off, ids_off;
    uint16_t key_len, ids_n; /* key_len 0: empty slot */
} cache_ent;

typedef struct scratch {
    int32_t *id, *prev, *next;
    size_t cap;
    heap_ent *heap;
    size_t hn, hcap;
    char *tmp;
    size_t tcap;
    cache_ent *cache; /* CACHE_SLOTS, NULL until the first use */
    size_t n_cached;
    owl_pieces keys;  /* cached keys, one piece each */
    owl_ids ids;      /* cached ids */
} scratch;

static void scratch_free(scratch *sc) {
    free(sc->id);
    free(sc->prev);
    free(sc->next);
    free(sc->heap);
    free(sc->tmp);
    free(sc->cache);
    owl_pieces_free(&sc->keys);
    free(sc->ids.v);
}

static owl_status scratch_reserve(scratch *sc, size_t n) {
    if (n <= sc->cap) return OWL_OK;
    size_t cap = n < 64 ? 64 : n * 2;
    int32_t *a = realloc(sc->id, cap * sizeof *a);
    if (a) sc->id = a;
    int32_t *p = realloc(sc->prev, cap * sizeof *p);
    if (p) sc->prev = p;
    int32_t *q = realloc(sc->next, cap * sizeof *q);
    if (q) sc->next = q;
    if (!a || !p || !q) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    sc->cap = cap;
    return OWL_OK;
}

static bool heap_less(const heap_ent *a, const heap_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static owl_status heap_push(scratch *sc, heap_ent e) {
    if (sc->hn == sc->hcap) {
        size_t cap = sc->hcap ? sc->hcap * 2 : 64;
        heap_ent *nh = realloc(sc->heap, cap * sizeof *nh);
        if (!nh) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        sc->heap = nh;
        sc->hcap = cap;
    }
    size_t i = sc->hn++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!heap_less(&e, &sc->heap[par])) break;
        sc->heap[i] = sc->heap[par];
        i = par;
    }
    sc->heap[i] = e;
    return OWL_OK;
}

static heap_ent heap_pop(scratch *sc) {
    heap_ent top = sc->heap[0];
    heap_ent last = sc->heap[--sc->hn];
    size_t i = 0, n = sc->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!heap_less(&sc->heap[c], &last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (n) sc->heap[i] = last;
    return top;
}

static bool merge_lookup(const struct owl_bpe *b, int32_t l, int32_t r, uint32_t *rank, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t h64 = key;
    h64 ^= h64 >> 33;
    h64 *= 0xff51afd7ed558ccdull;
    h64 ^= h64 >> 33;
    for (uint32_t h = (uint32_t)h64 & b->mmask;; h = (h + 1) & b->mmask) {
        if (b->mrank[h] == UINT32_MAX) return false;
        if (b->mkey[h] == key) {
            *rank = b->mrank[h];
            *res = b->mres[h];
            return true;
        }
    }
}

static owl_status push_pair(const struct owl_bpe *b, scratch *sc, int32_t i) {
    if (i < 0 || !b->mkey) return OWL_OK;
    int32_t j = sc->next[i];
    if (j < 0) return OWL_OK;
    uint32_t rank;
    int32_t res;
    if (!merge_lookup(b, sc->id[i], sc->id[j], &rank, &res)) return OWL_OK;
    return heap_push(sc, (heap_ent){rank, (uint32_t)i, (uint32_t)j, sc->id[i], sc->id[j]});
}

/* One pre-token through the model. */
static owl_status bpe_word(const owl_tokenizer *tok, const char *s, size_t n, owl_ids *out, scratch *sc) {
    const struct owl_bpe *b = tok->bpe;
    if (n == 0) return OWL_OK;
    owl_status st;
    if (b->ignore_merges) {
        const char *key = s;
        size_t kl = n;
        if (b->byte_level) {
            if (sc->tcap < n * 2) {
                char *t = realloc(sc->tmp, n * 2);
                if (!t) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
                sc->tmp = t;
                sc->tcap = n * 2;
            }
            kl = 0;
            for (size_t i = 0; i < n; i++) kl += owl_utf8_put(owl_bpe_byte_char((uint8_t)s[i]), sc->tmp + kl);
            key = sc->tmp;
        }
        int32_t id = owl_vocab_find(&tok->vocab, key, kl);
        if (id >= 0) return owl_ids_push(out, id);
    }
    if ((st = scratch_reserve(sc, n))) return st;
    size_t m = 0;
    const uint8_t *u = (const uint8_t *)s;
    if (b->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = b->byte_ids[u[i]];
            if (id < 0) id = tok->unk;
            if (id >= 0) sc->id[m++] = id;
        }
    } else {
        bool last_unk = false;
        for (size_t i = 0; i < n;) {
            int l = owl_utf8_len(u[i]);
            if (l == 0 || (size_t)l > n - i) l = 1;
            int32_t id = owl_vocab_find(&tok->vocab, s + i, (size_t)l);
            if (id >= 0) {
                sc->id[m++] = id;
                last_unk = false;
            } else {
                bool fb = b->byte_fallback;
                for (int k = 0; fb && k < l; k++)
                    if (b->fallback_ids[u[i + (size_t)k]] < 0) fb = false;
                if (fb) {
                    for (int k = 0; k < l; k++) sc->id[m++] = b->fallback_ids[u[i + (size_t)k]];
                    last_unk = false;
                } else if (tok->unk >= 0 && !(b->fuse_unk && last_unk)) {
                    sc->id[m++] = tok->unk;
                    last_unk = true;
                }
            }
            i += (size_t)l;
        }
    }
    for (size_t i = 0; i < m; i++) {
        sc->prev[i] = (int32_t)i - 1;
        sc->next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    sc->hn = 0;
    for (size_t i = 0; i + 1 < m; i++)
        if ((st = push_pair(b, sc, (int32_t)i))) return st;
    while (sc->hn) {
        heap_ent e = heap_pop(sc);
        int32_t i = (int32_t)e.pos, j = (int32_t)e.right;
        if (sc->id[i] != e.l || sc->next[i] != j || sc->id[j] != e.r) continue; /* stale */
        uint32_t rank;
        int32_t res;
        if (!merge_lookup(b, e.l, e.r, &rank, &res)) continue;
        sc->id[i] = res;
        sc->id[j] = -1;
        sc->next[i] = sc->next[j];
        if (sc->next[j] >= 0) sc->prev[sc->next[j]] = i;
        if ((st = push_pair(b, sc, sc->prev[i]))) return st;
        if ((st = push_pair(b, sc, i))) return st;
    }
    for (int32_t i = m ? 0 : -1; i >= 0; i = sc->next[i])
        if ((st = owl_ids_push(out, sc->id[i]))) return st;
    return OWL_OK;
}

/* bpe_word through the cache. */
static owl_status bpe_word_cached(const owl_tokenizer *tok, const char *s, size_t n, owl_ids *out, scratch *sc) {
    if (n == 0 || n > CACHE_MAX_KEY || tok->bpe->no_cache) return bpe_word(tok, s, n, out, sc);
    if (!sc->cache && !(sc->cache = calloc(CACHE_SLOTS, sizeof *sc->cache))) return bpe_word(tok, s, n, out, sc);
    uint32_t h = (uint32_t)owl_hash_bytes(s, n) & (CACHE_SLOTS - 1);
    for (;; h = (h + 1) & (CACHE_SLOTS - 1)) {
        const cache_ent *e = &sc->cache[h];
        if (e->key_len == 0) break;
        if (e->key_len == n && memcmp(sc->keys.buf + e->key_off, s, n) == 0) {
            for (uint32_t i = 0; i < e->ids_n; i++) {
                owl_status st = owl_ids_push(out, sc->ids.v[e->ids_off + i]);
                if (st) return st;
            }
            return OWL_OK;
        }
    }
    size_t before = out->n;
    owl_status st = bpe_word(tok, s, n, out, sc);
    if (st || sc->n_cached >= CACHE_SLOTS / 2 || out->n - before > 0xFFFF || sc->ids.n > 0x7FFFFFFF) return st;
    size_t key_off = sc->keys.blen, ids_off = sc->ids.n;
    if (owl_pieces_add(&sc->keys, s, n)) return OWL_OK; /* no memory for the cache: fine */
    for (size_t i = before; i < out->n; i++)
        if (owl_ids_push(&sc->ids, out->v[i])) return OWL_OK;
    sc->cache[h] = (cache_ent){(uint32_t)key_off, (uint32_t)ids_off, (uint16_t)n, (uint16_t)(out->n - before)};
    sc->n_cached++;
    return OWL_OK;
}

/* One pre-token, cut first where no merge can cross (cut_at_space). */
static owl_status bpe_word_cut(const owl_tokenizer *tok, const char *s, size_t n, owl_ids *out, scratch *sc) {
    const struct owl_bpe *b = tok->bpe;
    if (!b->cut_at_space) return bpe_word_cached(tok, s, n, out, sc);
    const char *sp = b->dec_space;
    size_t sl = b->dec_space_len, start = 0;
    owl_status st;
    for (size_t i = 1; i + sl <= n; i++) {
        if (s[i] != sp[0] || memcmp(s + i, sp, sl) != 0) continue;
        if (i >= sl && memcmp(s + i - sl, sp, sl) == 0) continue;
        size_t cs;
        uint32_t cp = owl_utf8_prev(s, i, &cs);
        bool blocked = false;
        for (int k = 0; k < b->n_cut_block; k++) blocked |= b->cut_block[k] == cp;
        if (blocked || i <= start) continue;
        if ((st = bpe_word_cached(tok, s + start, i - start, out, sc))) return st;
        start = i;
    }
    return bpe_word_cached(tok, s + start, n - start, out, sc);
}

static bool word_byte(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool space_byte(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static bool has_norm(const owl_tokenizer *tok) { return tok->norm && tok->norm->n > 0; }

/* The added token that starts at text[p], longest first; NULL if none.
 * pass 0 looks at the raw text (tokens with normalized = false, or all when
 * there is no normalizer), pass 1 at normalized text (normalized = true). */
static const owl_added *added_at(const owl_tokenizer *tok, const char *text, size_t len, size_t p, bool parse_special,
                                 int pass) {
    const struct owl_bpe *b = tok->bpe;
    const uint8_t *lens = b->added_lens[(uint8_t)text[p]];
    if (!lens) return NULL;
    bool norm = has_norm(tok);
    /* hashes of every prefix up to the longest candidate, in one pass */
    uint64_t hs[256];
    size_t top = lens[0] < len - p ? lens[0] : len - p;
    hs[0] = owl_added_hash_init();
    for (size_t i = 0; i < top; i++) hs[i + 1] = owl_added_hash_step(hs[i], (uint8_t)text[p + i]);
    for (; *lens; lens++) {
        size_t l = *lens;
        if (l > len - p) continue;
        uint32_t h = (uint32_t)hs[l] & b->added_mask;
        for (;; h = (h + 1) & b->added_mask) {
            uint32_t sl = b->added_slots[h];
            if (sl == 0) break;
            const owl_added *a = &b->added[sl - 1];
            if (a->len != l || memcmp(a->text, text + p, l) != 0) continue;
            if (a->special && !parse_special) break;
            if (pass == 0 ? norm && a->normalized : !a->normalized) break;
            if (a->single_word && ((p > 0 && word_byte((uint8_t)text[p - 1])) ||
                                   (p + l < len && word_byte((uint8_t)text[p + l]))))
                break;
            return a;
        }
    }
    return NULL;
}

typedef struct enc_ctx {
    const owl_tokenizer *tok;
    bool parse_special;
    const char *text;     /* the whole text (pass 0 offsets) */
    const uint8_t *plain; /* per byte of text: nonzero = never part of a special token; NULL: none */
    bool special_norm;    /* pass 1 (normalized stretch) may match special tokens */
    owl_ids *out;
    scratch sc;
    owl_pieces pcs;
} enc_ctx;

static owl_status split_added(enc_ctx *c, const char *text, size_t len, bool at_start, int pass);

/* Normalized text without added tokens: pre-tokenizer, model. */
static owl_status encode_model(enc_ctx *c, const char *s, size_t n, bool at_start) {
    if (n == 0) return OWL_OK;
    owl_pieces_clear(&c->pcs);
    owl_status st = owl_pretokenize(c->tok->bpe, s, n, at_start, &c->pcs);
    for (size_t i = 0; st == OWL_OK && i < c->pcs.n; i++)
        st = bpe_word_cut(c->tok, c->pcs.buf + c->pcs.off[i], c->pcs.len[i], c->out, &c->sc);
    return st;
}

/* Raw text without (non-normalized) added tokens: normalizer, then the
 * normalized added tokens, then the model. */
static owl_status encode_plain(enc_ctx *c, const char *s, size_t n, bool at_start) {
    if (n == 0) return OWL_OK;
    if (!has_norm(c->tok)) return encode_model(c, s, n, at_start);
    char *norm = NULL;
    size_t nn = n;
    owl_status st = owl_normalize(c->tok->norm, s, n, &norm, &nn);
    if (st) return st;
    /* the normalized text's offsets are not the original's: a stretch with
     * any plain byte matches no special token there */
    c->special_norm = c->parse_special;
    for (size_t i = 0; c->plain && c->special_norm && i < n; i++)
        if (c->plain[(size_t)(s - c->text) + i]) c->special_norm = false;
    st = split_added(c, norm, nn, at_start, 1);
    free(norm);
    return st;
}

static owl_status split_added(enc_ctx *c, const char *text, size_t len, bool at_start, int pass) {
    const struct owl_bpe *b = c->tok->bpe;
    owl_status st = OWL_OK;
    size_t cur = 0; /* start of the pending plain stretch */
    bool any = pass == 0 ? b->n_added > (has_norm(c->tok) ? b->n_added_normalized : 0) : b->n_added_normalized > 0;
    for (size_t p = 0; st == OWL_OK && any && p < len; p++) {
        if (!b->added_lens[(uint8_t)text[p]]) continue;
        const owl_added *a = added_at(c->tok, text, len, p, pass == 0 ? c->parse_special : c->special_norm, pass);
        if (a && a->special && pass == 0 && c->plain) { /* a special token over plain bytes is plain text */
            bool over = false;
            for (size_t i = p; i < p + a->len && !over; i++) over = c->plain[i] != 0;
            if (over) a = added_at(c->tok, text, len, p, false, pass);
        }
        if (!a) continue;
        size_t start = p, end = p + a->len;
        if (a->lstrip)
            while (start > cur && space_byte((uint8_t)text[start - 1])) start--;
        if (a->rstrip)
            while (end < len && space_byte((uint8_t)text[end])) end++;
        bool first = at_start && cur == 0;
        st = pass == 0 ? encode_plain(c, text + cur, start - cur, first) : encode_model(c, text + cur, start - cur, first);
        if (st == OWL_OK) st = owl_ids_push(c->out, a->id);
        cur = end;
        p = end - 1;
    }
    if (st) return st;
    bool first = at_start && cur == 0;
    return pass == 0 ? encode_plain(c, text + cur, len - cur, first) : encode_model(c, text + cur, len - cur, first);
}

owl_status owl_bpe_encode_text(const owl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                               owl_ids *out) {
    return owl_bpe_encode_masked(tok, text, len, parse_special, NULL, out);
}

owl_status owl_bpe_encode_masked(const owl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                                 const uint8_t *plain, owl_ids *out) {
    if (!tok->bpe) return owl_errorf(OWL_ERR_ARG, "tokenizer has no BPE model");
    if (len && !text) return owl_errorf(OWL_ERR_ARG, "text is NULL");
    enc_ctx c = {.tok = tok, .parse_special = parse_special, .text = text, .plain = plain, .out = out};
    owl_status st = split_added(&c, text, len, true, 0);
    scratch_free(&c.sc);
    owl_pieces_free(&c.pcs);
    return st;
}

owl_status owl_bpe_encode(const owl_tokenizer *tok, const char *text, size_t len, owl_ids *out) {
    return owl_bpe_encode_text(tok, text, len, false, out);
}
