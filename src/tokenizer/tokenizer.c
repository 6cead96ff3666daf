/* The public tokenizer API: building a tokenizer from GGUF-style metadata,
 * loading a standalone tokenizer file, encoding (split at special tokens,
 * then the SentencePiece or byte-level BPE encoder) and decoding (whole or
 * streamed, never splitting a UTF-8 character). */
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's space */
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define UNK_SURFACE " \xe2\x81\x87 " /* " ⁇ ", how sentencepiece decodes the unknown token */

/* ---- building from metadata ---- */

/* dflt: the id when the key is missing, if that token has type dflt_type. */
static owl_status meta_token_id(const owl_meta *meta, const char *key, const owl_vocab *voc, int32_t dflt,
                                int32_t dflt_type, int32_t *out, bool strict) {
    int n = voc->n;
    *out = dflt >= 0 && dflt < n && voc->types[dflt] == dflt_type ? dflt : -1;
    const owl_meta_value *v = owl_meta_find(meta, key);
    if (!v) return OWL_OK;
    int64_t id;
    if (!owl_meta_get_i64(meta, key, &id))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: %s: not an integer (type %d)", key, (int)v->type);
    if (id == -1 || id == (int64_t)UINT32_MAX) { /* "none", as converters write it */
        *out = -1;
        return OWL_OK;
    }
    if (id < 0 || id >= n) {
        if (!strict) {
            owl_log(OWL_LOG_WARN, "tokenizer: %s = %lld is outside the vocabulary of %d: ignored", key,
                    (long long)id, n);
            *out = -1;
            return OWL_OK;
        }
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: %s = %lld is outside the vocabulary of %d tokens", key,
                          (long long)id, n);
    }
    *out = (int32_t)id;
    return OWL_OK;
}

typedef struct special_key {
    size_t len;
    int32_t id;
} special_key;

static int cmp_special(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return x->id < y->id ? -1 : x->id > y->id;
}

/* SentencePiece-style tokenizer from tokenizer.ggml.* keys. */
static owl_status spm_from_meta(const owl_meta *meta, owl_tokenizer *tok) {
    const owl_meta_value *tv = owl_meta_find(meta, "tokenizer.ggml.tokens");
    if (!tv) return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is missing");
    if (tv->type != OWL_META_ARRAY || tv->arr.elem != OWL_META_STRING)
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is not an array of strings");
    uint64_t n64 = tv->arr.count;
    if (n64 == 0 || n64 > (1u << 24) || !tv->arr.strs)
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens has %llu entries (1..16777216 allowed)",
                          (unsigned long long)n64);
    int n = (int)n64;
    const owl_meta_value *sv = owl_meta_find(meta, "tokenizer.ggml.scores");
    const owl_meta_value *yv = owl_meta_find(meta, "tokenizer.ggml.token_type");
    if (sv && (sv->type != OWL_META_ARRAY || (sv->arr.elem != OWL_META_F32 && sv->arr.elem != OWL_META_F64) ||
               sv->arr.count != n64))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.scores is not an array of %d floats", n);
    if (yv && (yv->type != OWL_META_ARRAY || yv->arr.count != n64 || yv->arr.elem == OWL_META_STRING ||
               yv->arr.elem == OWL_META_ARRAY || yv->arr.elem == OWL_META_F32 || yv->arr.elem == OWL_META_F64))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.token_type is not an array of %d integers", n);
    float *scores = malloc(sizeof(float) * (size_t)n);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)n);
    owl_status s = OWL_OK;
    if (!scores || !types) {
        s = owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        scores[i] = sv ? (float)owl_meta_arr_f64(sv, (uint64_t)i) : 0.0f;
        int64_t t = yv ? owl_meta_arr_i64(yv, (uint64_t)i) : OWL_TOKTYPE_NORMAL;
        if (t < OWL_TOKTYPE_NORMAL || t > OWL_TOKTYPE_BYTE) {
            s = owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.token_type[%d] = %lld (1..6 expected)", i,
                           (long long)t);
            goto done;
        }
        types[i] = (int32_t)t;
        if (tv->arr.strs[i].len == 0 && types[i] != OWL_TOKTYPE_UNUSED && types[i] != OWL_TOKTYPE_CONTROL) {
            s = owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens[%d] is empty", i);
            goto done;
        }
    }
    if ((s = owl_vocab_init(&tok->vocab, n, tv->arr.strs, scores, types)) != OWL_OK) goto done;
    tok->kind = OWL_TOK_SPM;
    /* without keys: llama's <unk> 0, <s> 1, </s> 2 when those ids have those types */
    const owl_vocab *v = &tok->vocab;
    if ((s = meta_token_id(meta, "tokenizer.ggml.bos_token_id", v, 1, OWL_TOKTYPE_CONTROL, &tok->bos, true)) ||
        (s = meta_token_id(meta, "tokenizer.ggml.eos_token_id", v, 2, OWL_TOKTYPE_CONTROL, &tok->eos, true)) ||
        (s = meta_token_id(meta, "tokenizer.ggml.unknown_token_id", v, 0, OWL_TOKTYPE_UNKNOWN, &tok->unk, true)) ||
        (s = meta_token_id(meta, "tokenizer.ggml.padding_token_id", v, -1, 0, &tok->pad, false)))
        goto done;
    if (!owl_meta_get_bool(meta, "tokenizer.ggml.add_bos_token", &tok->add_bos)) tok->add_bos = true;
    if (!owl_meta_get_bool(meta, "tokenizer.ggml.add_eos_token", &tok->add_eos)) tok->add_eos = false;
    if (!owl_meta_get_bool(meta, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix))
        tok->add_space_prefix = true;
    if (!owl_meta_get_bool(meta, "tokenizer.ggml.remove_extra_whitespaces", &tok->remove_extra_spaces))
        tok->remove_extra_spaces = false;

    for (int b = 0; b < 256; b++) tok->byte_tokens[b] = -1;
    int n_specials = 0;
    for (int i = 0; i < n; i++) {
        owl_str p = tok->vocab.pieces[i];
        if (p.len > tok->max_piece_len) tok->max_piece_len = p.len;
        int32_t t = types[i];
        if (t == OWL_TOKTYPE_BYTE) {
            /* "<0xXX>" */
            unsigned v = 0;
            bool ok = p.len == 6 && memcmp(p.ptr, "<0x", 3) == 0 && p.ptr[5] == '>';
            for (int k = 3; ok && k < 5; k++) {
                char c = p.ptr[k];
                unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                             : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                                    : 16u;
                ok = d < 16;
                v = v * 16 + d;
            }
            if (!ok) {
                s = owl_errorf(OWL_ERR_FORMAT, "tokenizer: byte token %d has piece '%.*s', not <0xXX>", i,
                               (int)(p.len > 32 ? 32 : p.len), p.ptr);
                goto done;
            }
            if (tok->byte_tokens[v] < 0) tok->byte_tokens[v] = i;
        }
        if (t == OWL_TOKTYPE_USER_DEFINED) tok->n_user_defined++;
        if (t == OWL_TOKTYPE_UNUSED) tok->has_unused = true;
        if ((t == OWL_TOKTYPE_CONTROL || t == OWL_TOKTYPE_USER_DEFINED || t == OWL_TOKTYPE_UNKNOWN) && p.len > 0)
            n_specials++;
    }
    if (n_specials > 0) {
        tok->specials = malloc(sizeof(int32_t) * (size_t)n_specials);
        special_key *keys = malloc(sizeof(special_key) * (size_t)n_specials);
        if (!tok->specials || !keys) {
            free(keys);
            s = owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory");
            goto done;
        }
        int k = 0;
        for (int i = 0; i < n; i++) {
            int32_t t = types[i];
            if ((t == OWL_TOKTYPE_CONTROL || t == OWL_TOKTYPE_USER_DEFINED || t == OWL_TOKTYPE_UNKNOWN) &&
                tok->vocab.pieces[i].len > 0)
                keys[k++] = (special_key){tok->vocab.pieces[i].len, i};
        }
        qsort(keys, (size_t)k, sizeof *keys, cmp_special);
        for (int i = 0; i < k; i++) tok->specials[i] = keys[i].id;
        tok->n_specials = k;
        free(keys);
    }
    s = owl_spm_pairs_build(tok);
done:
    free(scores);
    free(types);
    return s;
}

owl_status owl_tokenizer_from_meta(const owl_meta *meta, owl_tokenizer **out) {
    *out = NULL;
    owl_str model;
    if (!owl_meta_get_str(meta, "tokenizer.ggml.model", &model))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is missing or not a string");
    owl_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return owl_errorf(OWL_ERR_NOMEM, "tokenizer: out of memory");
    tok->bos = tok->eos = tok->unk = tok->pad = -1;
    owl_status s;
    if (owl_str_eq(model, "llama")) {
        s = spm_from_meta(meta, tok);
    } else if (owl_str_eq(model, "gpt2")) {
        tok->kind = OWL_TOK_BPE;
        s = owl_bpe_from_meta(meta, tok);
    } else {
        s = owl_errorf(OWL_ERR_UNSUPPORTED, "tokenizer: tokenizer.ggml.model '%.*s' is not supported (llama, gpt2)",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr ? model.ptr : "");
    }
    if (s != OWL_OK) {
        owl_tokenizer_free(tok);
        return s;
    }
    *out = tok;
    return OWL_OK;
}

void owl_tokenizer_free(owl_tokenizer *tok) {
    if (!tok) return;
    if (tok->bpe) owl_bpe_free(tok->bpe);
    if (tok->norm) owl_norm_free(tok->norm);
    owl_spm_pairs_free(tok->spm_pairs);
    owl_vocab_free(&tok->vocab);
    free(tok->specials);
    free(tok);
}

/* ---- standalone tokenizer files ---- */

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

owl_status owl_tokenizer_load(const char *path, owl_tokenizer **out) {
    if (!path || !out) return owl_errorf(OWL_ERR_ARG, "owl_tokenizer_load: NULL argument");
    *out = NULL;
    if (owl_is_dir(path)) return owl_tokenizer_json_load(path, out); /* a Hugging Face directory */
    owl_mmap m;
    owl_status s = owl_mmap_open(&m, path);
    if (s != OWL_OK) return s;
    uint8_t head[8] = {0};
    size_t nh = m.size < 8 ? m.size : 8;
    if (nh) memcpy(head, m.data, nh);
    size_t size = m.size;
    owl_mmap_close(&m);

    if (nh >= 4 && memcmp(head, "GGUF", 4) == 0) {
        owl_weights ws;
        memset(&ws, 0, sizeof ws);
        s = owl_gguf_read(path, &ws);
        if (s == OWL_OK) s = owl_tokenizer_from_meta(&ws.meta, out);
        owl_weights_free(&ws);
        return s;
    }
    size_t k = 0;
    while (k < nh && (head[k] == ' ' || head[k] == '\n' || head[k] == '\r' || head[k] == '\t')) k++;
    if (has_suffix(path, ".json") || (k < nh && head[k] == '{')) return owl_tokenizer_json_load(path, out);

    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    uint32_t first = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 24;
    if (size >= 4 && head[0] == 0x0a && !has_suffix(path, ".bin")) {
        s = owl_spm_model_read(path, &meta); /* protobuf: field 1 (pieces), length-delimited */
    } else if (size >= 4 && first < 65536) {
        s = owl_llama2c_tokenizer_read(path, &meta); /* int32 max_token_length */
    } else {
        return owl_errorf(OWL_ERR_FORMAT,
                          "%s: not a tokenizer file owl knows (GGUF, tokenizer.json, SentencePiece tokenizer.model, "
                          "llama2.c tokenizer.bin)",
                          path);
    }
    if (s == OWL_OK) s = owl_tokenizer_from_meta(&meta, out);
    if (s != OWL_OK) owl_error_prefix(s, "%s", path);
    owl_meta_free(&meta);
    return s;
}

/* ---- queries ---- */

int owl_token_count(const owl_tokenizer *tok) { return tok ? tok->vocab.n : 0; }
int32_t owl_token_bos(const owl_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t owl_token_eos(const owl_tokenizer *tok) { return tok ? tok->eos : -1; }

const char *owl_token_piece(const owl_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->vocab.n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->vocab.pieces[id].len;
    return tok->vocab.pieces[id].ptr;
}

bool owl_token_is_special(const owl_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->vocab.n) return false;
    return tok->vocab.types[id] == OWL_TOKTYPE_CONTROL;
}

/* ---- encoding ---- */

/* SentencePiece: split at control-token matches when parse_special; the '▁'
 * prefix goes at the start and after each special token. */
static owl_status spm_tokenize(const owl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                               const uint8_t *plain, owl_ids *ids) {
    bool first_byte[256] = {false};
    bool any = false;
    if (parse_special) {
        for (int k = 0; k < tok->n_specials; k++) {
            int32_t id = tok->specials[k];
            if (tok->vocab.types[id] == OWL_TOKTYPE_USER_DEFINED) continue; /* the encoder splits these out */
            first_byte[(uint8_t)tok->vocab.pieces[id].ptr[0]] = true;
            any = true;
        }
    }
    bool prefix = tok->add_space_prefix;
    size_t start = 0;
    owl_status s;
    for (size_t i = 0; any && i < len;) {
        int32_t match = -1;
        if (first_byte[(uint8_t)text[i]]) {
            for (int k = 0; k < tok->n_specials; k++) { /* longest first */
                int32_t id = tok->specials[k];
                owl_str p = tok->vocab.pieces[id];
                if (tok->vocab.types[id] == OWL_TOKTYPE_USER_DEFINED) continue;
                if (p.len <= len - i && memcmp(p.ptr, text + i, p.len) == 0) {
                    bool over = false; /* over bytes a user typed: plain text */
                    for (size_t j = i; plain && j < i + p.len && !over; j++) over = plain[j] != 0;
                    if (over) continue;
                    match = id;
                    break;
                }
            }
        }
        if (match < 0) {
            i++;
            continue;
        }
        if (i > start) {
            if ((s = owl_spm_encode_stretch(tok, text + start, i - start, prefix, ids)) != OWL_OK) return s;
        }
        if ((s = owl_ids_push(ids, match)) != OWL_OK) return s;
        prefix = tok->add_space_prefix;
        i += tok->vocab.pieces[match].len;
        start = i;
    }
    if (start < len) return owl_spm_encode_stretch(tok, text + start, len - start, prefix, ids);
    return OWL_OK;
}

static owl_status tokenize(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special,
                           const uint8_t *plain, int32_t **ids_out, size_t *n_ids);

owl_status owl_tokenize(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special,
                        int32_t **ids_out, size_t *n_ids) {
    return tokenize(tok, text, len, add_bos, parse_special, NULL, ids_out, n_ids);
}

owl_status owl_tokenize_masked(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos,
                               const uint8_t *plain, int32_t **ids_out, size_t *n_ids) {
    return tokenize(tok, text, len, add_bos, true, plain, ids_out, n_ids);
}

static owl_status tokenize(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special,
                           const uint8_t *plain, int32_t **ids_out, size_t *n_ids) {
    if (!tok || !ids_out || !n_ids || (!text && len > 0))
        return owl_errorf(OWL_ERR_ARG, "owl_tokenize: NULL argument");
    *ids_out = NULL;
    *n_ids = 0;
    owl_ids ids = {0};
    owl_status s = OWL_OK;
    if (add_bos && tok->add_bos && tok->bos >= 0) s = owl_ids_push(&ids, tok->bos);
    if (s == OWL_OK && len > 0) {
        if (tok->kind == OWL_TOK_SPM) s = spm_tokenize(tok, text, len, parse_special, plain, &ids);
        else s = owl_bpe_encode_masked(tok, text, len, parse_special, plain, &ids);
    }
    if (s == OWL_OK && ids.n == 0) { /* a valid (empty) malloc'd array */
        s = owl_ids_push(&ids, 0);
        ids.n = 0;
    }
    if (s != OWL_OK) {
        free(ids.v);
        return s;
    }
    *ids_out = ids.v;
    *n_ids = ids.n;
    return OWL_OK;
}

/* ---- decoding ---- */

struct owl_detok {
    const owl_tokenizer *tok;
    int32_t prev;       /* previous token, -1 at the start */
    bool emitted;       /* some text came out already (BPE leading strip) */
    int strip_left;     /* BPE: leading spaces still to strip */
    uint8_t pend[4];    /* an incomplete UTF-8 character */
    size_t n_pend;
    char *out;
    size_t out_len, out_cap;
    char *tmp;
    size_t tmp_cap;
};

static bool out_reserve(owl_detok *d, size_t more) {
    if (d->out_cap - d->out_len > more) return true;
    size_t cap = d->out_cap ? d->out_cap : 64;
    while (cap - d->out_len <= more) cap *= 2;
    char *n = realloc(d->out, cap);
    if (!n) return false;
    d->out = n;
    d->out_cap = cap;
    return true;
}

static bool out_put(owl_detok *d, const void *p, size_t n) {
    if (!out_reserve(d, n)) return false;
    memcpy(d->out + d->out_len, p, n);
    d->out_len += n;
    return true;
}

/* Bytes of a SentencePiece token given the previous one, into d->tmp. */
static owl_status spm_token_bytes(owl_detok *d, int32_t id, size_t *len) {
    const owl_tokenizer *tok = d->tok;
    owl_str p = tok->vocab.pieces[id];
    int32_t t = tok->vocab.types[id];
    *len = 0;
    if (t == OWL_TOKTYPE_CONTROL) return OWL_OK;
    size_t need = p.len + 8;
    if (need > d->tmp_cap) {
        char *n = realloc(d->tmp, need);
        if (!n) return owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
        d->tmp = n;
        d->tmp_cap = need;
    }
    if (t == OWL_TOKTYPE_BYTE) {
        for (int b = 0; b < 256; b++)
            if (tok->byte_tokens[b] == id) {
                d->tmp[0] = (char)b;
                *len = 1;
                return OWL_OK;
            }
        return OWL_OK; /* a second token for the same byte: cannot happen after from_meta */
    }
    if (t == OWL_TOKTYPE_UNKNOWN) {
        memcpy(d->tmp, UNK_SURFACE, sizeof UNK_SURFACE - 1);
        *len = sizeof UNK_SURFACE - 1;
        return OWL_OK;
    }
    size_t i = 0, n = 0;
    bool at_start = d->prev < 0 || d->prev == tok->bos;
    if (tok->add_space_prefix && at_start && p.len >= 3 && memcmp(p.ptr, SPACE_MARK, 3) == 0) i = 3;
    while (i < p.len) {
        if (p.len - i >= 3 && memcmp(p.ptr + i, SPACE_MARK, 3) == 0) {
            d->tmp[n++] = ' ';
            i += 3;
        } else {
            d->tmp[n++] = p.ptr[i++];
        }
    }
    *len = n;
    return OWL_OK;
}

static owl_status bpe_token_bytes(owl_detok *d, int32_t id, size_t *len) {
    for (;;) {
        size_t need = 0;
        owl_status s = owl_bpe_token_bytes(d->tok, id, d->tmp, d->tmp_cap, &need);
        if (s == OWL_OK) {
            *len = need;
            return OWL_OK;
        }
        if (s != OWL_ERR_RANGE || need <= d->tmp_cap) return s;
        char *n = realloc(d->tmp, need + 16);
        if (!n) return owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
        d->tmp = n;
        d->tmp_cap = need + 16;
    }
}

/* Length of a complete, valid UTF-8 character at s (n bytes), 0 if the bytes
 * so far are a valid start but incomplete, -1 if invalid. */
static int utf8_check(const uint8_t *s, size_t n) {
    int len = owl_utf8_len(s[0]);
    if (len == 0) return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return 0;
        uint8_t c = s[k];
        if ((c & 0xc0) != 0x80) return -1;
        if (k == 1) {
            if (s[0] == 0xe0 && c < 0xa0) return -1;
            if (s[0] == 0xed && c >= 0xa0) return -1;
            if (s[0] == 0xf0 && c < 0x90) return -1;
            if (s[0] == 0xf4 && c >= 0x90) return -1;
        }
    }
    return len;
}

/* Feeds bytes through the UTF-8 assembler into d->out. */
static bool feed(owl_detok *d, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (d->strip_left > 0) {
            if (c == ' ' && !d->emitted) {
                d->strip_left--;
                continue;
            }
            d->strip_left = 0;
        }
        d->pend[d->n_pend++] = c;
        for (;;) {
            int r = utf8_check(d->pend, d->n_pend);
            if (r == 0) break; /* wait for more */
            if (r > 0) {
                if (!out_put(d, d->pend, (size_t)r)) return false;
                d->n_pend = 0;
                d->emitted = true;
                break;
            }
            /* invalid: the first byte becomes U+FFFD, the rest is looked at again */
            if (!out_put(d, REPLACEMENT, 3)) return false;
            d->emitted = true;
            memmove(d->pend, d->pend + 1, d->n_pend - 1);
            d->n_pend--;
            if (d->n_pend == 0) break;
        }
    }
    return true;
}

owl_status owl_detok_new(const owl_tokenizer *tok, owl_detok **out) {
    if (!tok || !out) return owl_errorf(OWL_ERR_ARG, "owl_detok_new: NULL argument");
    owl_detok *d = calloc(1, sizeof *d);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
    d->tok = tok;
    d->prev = -1;
    if (tok->kind == OWL_TOK_BPE && tok->bpe) d->strip_left = tok->bpe->dec_strip;
    *out = d;
    return OWL_OK;
}

void owl_detok_free(owl_detok *d) {
    if (!d) return;
    free(d->out);
    free(d->tmp);
    free(d);
}

void owl_detok_prime(owl_detok *d, int32_t prev) {
    if (!d) return;
    d->prev = prev;
    d->emitted = true;
    d->strip_left = 0;
}

const char *owl_detok_push(owl_detok *d, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!d) return NULL;
    d->out_len = 0;
    if (id < 0 || id >= d->tok->vocab.n) {
        owl_errorf(OWL_ERR_ARG, "detokenize: token id %d is outside the vocabulary of %d", (int)id, d->tok->vocab.n);
        return NULL;
    }
    size_t n = 0;
    owl_status s = d->tok->kind == OWL_TOK_SPM ? spm_token_bytes(d, id, &n) : bpe_token_bytes(d, id, &n);
    if (s != OWL_OK) return NULL;
    d->prev = id;
    if (!feed(d, (const uint8_t *)d->tmp, n) || !out_reserve(d, 1)) {
        owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
        return NULL;
    }
    d->out[d->out_len] = 0;
    if (len) *len = d->out_len;
    return d->out;
}

const char *owl_detok_flush(owl_detok *d, size_t *len) {
    if (len) *len = 0;
    if (!d) return NULL;
    d->out_len = 0;
    if (d->n_pend > 0 && !out_put(d, REPLACEMENT, 3)) return NULL;
    d->n_pend = 0;
    if (!out_reserve(d, 1)) return NULL;
    d->out[d->out_len] = 0;
    if (len) *len = d->out_len;
    return d->out;
}

owl_status owl_detokenize(const owl_tokenizer *tok, const int32_t *ids, size_t n, char **text) {
    if (!tok || !text || (!ids && n > 0)) return owl_errorf(OWL_ERR_ARG, "owl_detokenize: NULL argument");
    *text = NULL;
    if (tok->kind == OWL_TOK_BPE) {
        size_t len = 0;
        return owl_bpe_decode(tok, ids, n, text, &len);
    }
    owl_detok *d;
    owl_status s = owl_detok_new(tok, &d);
    if (s != OWL_OK) return s;
    char *all = NULL;
    size_t all_len = 0, all_cap = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t m = 0;
        const char *p = i < n ? owl_detok_push(d, ids[i], &m) : owl_detok_flush(d, &m);
        if (!p) {
            s = i < n && (ids[i] < 0 || ids[i] >= tok->vocab.n) ? OWL_ERR_ARG : OWL_ERR_NOMEM;
            break;
        }
        if (all_cap - all_len <= m) {
            size_t cap = all_cap ? all_cap : 64;
            while (cap - all_len <= m) cap *= 2;
            char *na = realloc(all, cap);
            if (!na) {
                s = owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
                break;
            }
            all = na;
            all_cap = cap;
        }
        memcpy(all + all_len, p, m);
        all_len += m;
    }
    owl_detok_free(d);
    if (s != OWL_OK) {
        free(all);
        return s;
    }
    if (!all) all = calloc(1, 1);
    if (!all) return owl_errorf(OWL_ERR_NOMEM, "detokenize: out of memory");
    all[all_len] = 0;
    *text = all;
    return OWL_OK;
}
