/* Byte-level BPE from GGUF metadata (tokenizer.ggml.model = "gpt2") and from
 * OpenAI's GPT-2 files (encoder.json + vocab.bpe). */
#include "tokenizer/tokenizer_json.h"

#include <stdlib.h>
#include <string.h>

/* Splits "a b" at its one space. */
static bool split_merge(owl_str m, owl_str *l, owl_str *r) {
    const char *sp = m.len ? memchr(m.ptr, ' ', m.len) : NULL;
    if (!sp || sp == m.ptr || (size_t)(sp - m.ptr) + 1 >= m.len) return false;
    size_t ll = (size_t)(sp - m.ptr);
    if (memchr(sp + 1, ' ', m.len - ll - 1)) return false;
    *l = (owl_str){m.ptr, ll};
    *r = (owl_str){sp + 1, m.len - ll - 1};
    return true;
}

static owl_status set_merges_from_lines(owl_tokenizer *tok, const owl_str *lines, size_t n, const char *what) {
    owl_str *l = malloc(sizeof *l * (n + 1)), *r = malloc(sizeof *r * (n + 1));
    owl_status st = OWL_OK;
    if (!l || !r) st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == OWL_OK && i < n; i++)
        if (!split_merge(lines[i], &l[i], &r[i]))
            st = owl_errorf(OWL_ERR_FORMAT, "%s[%zu]: '%.*s' is not two tokens separated by one space", what, i,
                            (int)(lines[i].len > 60 ? 60 : lines[i].len), lines[i].ptr);
    if (st == OWL_OK) st = owl_bpe_set_merges(tok, n, l, r, what);
    free(l);
    free(r);
    return st;
}

static owl_status add_pre_regexes(struct owl_bpe *b, const char *const *res, const char *what) {
    for (; *res; res++) {
        owl_pre_step step = {.kind = OWL_PRE_SPLIT, .behavior = OWL_SPLIT_ISOLATED};
        owl_status st = owl_regex_compile(*res, strlen(*res), what, &step.re);
        if (st || (st = owl_bpe_add_pre(b, &step))) return st;
    }
    return OWL_OK;
}

static owl_status meta_id(const owl_meta *meta, const char *key, int n, int32_t *id) {
    uint64_t v;
    if (!owl_meta_find(meta, key)) return OWL_OK;
    if (!owl_meta_get_u64(meta, key, &v) || v >= (uint64_t)n)
        return owl_errorf(OWL_ERR_FORMAT, "%s: not a token id below %d", key, n);
    *id = (int32_t)v;
    return OWL_OK;
}

owl_status owl_bpe_from_meta(const owl_meta *meta, owl_tokenizer *tok) {
    const owl_meta_value *toks = owl_meta_find(meta, "tokenizer.ggml.tokens");
    const owl_meta_value *types = owl_meta_find(meta, "tokenizer.ggml.token_type");
    const owl_meta_value *merges = owl_meta_find(meta, "tokenizer.ggml.merges");
    if (!toks || toks->type != OWL_META_ARRAY || toks->arr.elem != OWL_META_STRING)
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer.ggml.tokens: missing or not an array of strings");
    if (toks->arr.count == 0 || toks->arr.count > (1u << 24))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer.ggml.tokens: %llu tokens", (unsigned long long)toks->arr.count);
    int n = (int)toks->arr.count;
    if (!merges || merges->type != OWL_META_ARRAY || merges->arr.elem != OWL_META_STRING)
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer.ggml.merges: missing or not an array of strings");
    if (types && (types->type != OWL_META_ARRAY || types->arr.count != toks->arr.count ||
                  (types->arr.elem != OWL_META_I32 && types->arr.elem != OWL_META_U32 && types->arr.elem != OWL_META_I8 &&
                   types->arr.elem != OWL_META_U8)))
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer.ggml.token_type: not an integer array of %d entries", n);
    owl_status st;
    int32_t *ty = malloc(sizeof *ty * (size_t)n);
    if (!ty) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int64_t t = types ? owl_meta_arr_i64(types, (uint64_t)i) : OWL_TOKTYPE_NORMAL;
        ty[i] = t >= OWL_TOKTYPE_NORMAL && t <= OWL_TOKTYPE_BYTE ? (int32_t)t : OWL_TOKTYPE_NORMAL;
    }
    if (tok->vocab.n == 0) {
        st = owl_vocab_init(&tok->vocab, n, toks->arr.strs, NULL, ty);
        if (st) {
            free(ty);
            return owl_error_prefix(st, "tokenizer.ggml.tokens");
        }
    } else if (tok->vocab.n != n) {
        free(ty);
        return owl_errorf(OWL_ERR_FORMAT, "tokenizer.ggml.tokens: %d tokens, vocabulary has %d", n, tok->vocab.n);
    }
    free(ty);
    if (!tok->bpe && !(tok->bpe = owl_bpe_new())) return OWL_ERR_NOMEM;
    struct owl_bpe *b = tok->bpe;
    tok->kind = OWL_TOK_BPE;
    b->byte_level = b->dec_byte_level = true;
    tok->bos = tok->eos = tok->unk = tok->pad = -1;
    tok->add_bos = tok->add_eos = false;
    if ((st = meta_id(meta, "tokenizer.ggml.bos_token_id", n, &tok->bos)) ||
        (st = meta_id(meta, "tokenizer.ggml.eos_token_id", n, &tok->eos)) ||
        (st = meta_id(meta, "tokenizer.ggml.unknown_token_id", n, &tok->unk)) ||
        (st = meta_id(meta, "tokenizer.ggml.padding_token_id", n, &tok->pad)))
        return st;
    bool v;
    if (owl_meta_get_bool(meta, "tokenizer.ggml.add_bos_token", &v)) tok->add_bos = v;
    if (owl_meta_get_bool(meta, "tokenizer.ggml.add_eos_token", &v)) tok->add_eos = v;
    owl_str pre = {"default", 7}, ct;
    owl_meta_get_str(meta, "tokenizer.ggml.pre", &pre);
    bool digits;
    const char *const *res = owl_pre_regexes(pre.ptr, pre.len, &digits);
    if (!res) {
        owl_log(OWL_LOG_WARN, "tokenizer.ggml.pre '%.*s' is not known; using the GPT-2 pre-tokenizer", (int)pre.len, pre.ptr);
        res = owl_pre_regexes("gpt-2", 5, &digits);
    }
    if ((st = add_pre_regexes(b, res, "tokenizer.ggml.pre"))) return st;
    snprintf(b->pre_name, sizeof b->pre_name, "%.*s", (int)(pre.len < 31 ? pre.len : 31), pre.ptr);
    b->ignore_merges = owl_str_eq(pre, "llama-bpe") || owl_str_eq(pre, "llama3") || owl_str_eq(pre, "llama-v3");
    if (owl_meta_get_str(meta, "tokenizer.chat_template", &ct) &&
        !(b->chat_template = owl_arena_strndup(&b->arena, ct.ptr, ct.len)))
        return OWL_ERR_NOMEM;
    if ((st = set_merges_from_lines(tok, merges->arr.strs, merges->arr.count, "tokenizer.ggml.merges"))) return st;
    int n_added = 0;
    for (int i = 0; i < n; i++)
        if (tok->vocab.types[i] == OWL_TOKTYPE_CONTROL || tok->vocab.types[i] == OWL_TOKTYPE_USER_DEFINED) n_added++;
    if (n_added && !(b->added = calloc((size_t)n_added, sizeof *b->added))) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        int32_t t = tok->vocab.types[i];
        if (t != OWL_TOKTYPE_CONTROL && t != OWL_TOKTYPE_USER_DEFINED) continue;
        b->added[b->n_added++] = (owl_added){.id = i, .text = tok->vocab.pieces[i].ptr, .len = tok->vocab.pieces[i].len,
                                             .special = t == OWL_TOKTYPE_CONTROL};
    }
    if ((st = owl_bpe_index_added(tok))) return st;
    return owl_bpe_finish(tok, "tokenizer.ggml.tokens");
}

/* ---- GPT-2: encoder.json ({piece: id}) + vocab.bpe ("#version" line, then "a b" lines) ---- */

owl_status owl_tokenizer_gpt2_load(const char *encoder_json, const char *vocab_bpe, owl_tokenizer **out) {
    *out = NULL;
    char *bpe_text = NULL;
    size_t bpe_size = 0;
    json_error_t err;
    owl_str *pieces = NULL, *lines = NULL;
    json_t *enc = json_load_file(encoder_json, JSON_ALLOW_NUL, &err);
    if (!enc) return owl_errorf(OWL_ERR_FORMAT, "%s: not valid JSON (line %d): %s", encoder_json, err.line, err.text);
    owl_status st = OWL_OK;
    owl_tokenizer *tok = owl_calloc(1, sizeof *tok);
    if (!tok || !(tok->bpe = owl_bpe_new())) {
        st = OWL_ERR_NOMEM;
        goto done;
    }
    tok->kind = OWL_TOK_BPE;
    tok->bos = tok->eos = tok->unk = tok->pad = -1;
    if (!json_is_object(enc)) {
        st = owl_tj_wrong(encoder_json, "top level", "an object", enc);
        goto done;
    }
    size_t n = json_object_size(enc);
    if (n == 0 || n > (1u << 24)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: %zu tokens", encoder_json, n);
        goto done;
    }
    pieces = calloc(n, sizeof *pieces);
    if (!pieces) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *key;
    size_t kl;
    json_t *val;
    json_object_keylen_foreach(enc, key, kl, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (size_t)id >= n || pieces[id].ptr) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: '%.40s': id is not an unused integer below %zu", encoder_json, key, n);
            goto done;
        }
        pieces[id] = (owl_str){key, kl};
    }
    if ((st = owl_vocab_init(&tok->vocab, (int)n, pieces, NULL, NULL))) goto done;
    if ((st = owl_read_file(vocab_bpe, &bpe_text, &bpe_size))) goto done;
    size_t n_lines = 0, cap = 1024;
    lines = malloc(sizeof *lines * cap);
    for (size_t i = 0; lines && i < bpe_size;) {
        const char *nl = memchr(bpe_text + i, '\n', bpe_size - i);
        size_t e = nl ? (size_t)(nl - bpe_text) : bpe_size, le = e;
        if (le > i && bpe_text[le - 1] == '\r') le--;
        if (le > i && !(i == 0 && bpe_text[0] == '#')) {
            if (n_lines == cap) {
                owl_str *nl2 = realloc(lines, sizeof *lines * cap * 2);
                if (!nl2) break;
                lines = nl2;
                cap *= 2;
            }
            lines[n_lines++] = (owl_str){bpe_text + i, le - i};
        }
        i = e + 1;
    }
    if (!lines) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    char what[512];
    snprintf(what, sizeof what, "%s: line", vocab_bpe);
    if ((st = set_merges_from_lines(tok, lines, n_lines, what))) goto done;
    struct owl_bpe *b = tok->bpe;
    b->byte_level = b->dec_byte_level = true;
    owl_pre_step step = {.kind = OWL_PRE_SPLIT, .behavior = OWL_SPLIT_ISOLATED};
    if ((st = owl_regex_compile(owl_regex_gpt2, strlen(owl_regex_gpt2), encoder_json, &step.re)) == OWL_OK)
        st = owl_bpe_add_pre(b, &step);
    if (st) goto done;
    snprintf(b->pre_name, sizeof b->pre_name, "gpt-2");
    int32_t eot = owl_vocab_find(&tok->vocab, "<|endoftext|>", 13);
    if (eot >= 0) {
        tok->bos = tok->eos = eot;
        tok->vocab.types[eot] = OWL_TOKTYPE_CONTROL;
        if (!(b->added = calloc(1, sizeof *b->added))) {
            st = OWL_ERR_NOMEM;
            goto done;
        }
        b->added[b->n_added++] = (owl_added){.id = eot, .text = tok->vocab.pieces[eot].ptr, .len = 13, .special = true};
    }
    if ((st = owl_bpe_index_added(tok)) || (st = owl_bpe_finish(tok, encoder_json))) goto done;
done:
    free(pieces);
    free(lines);
    free(bpe_text);
    json_decref(enc);
    if (st) owl_bpe_tokenizer_destroy(tok);
    else *out = tok;
    return st;
}

/* ---- the other way: tokenizer.ggml.* for a GGUF writer ---- */

typedef struct rank_pair {
    uint32_t rank;
    int32_t l, r;
} rank_pair;

static int cmp_rank(const void *a, const void *b) {
    const rank_pair *x = a, *y = b;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

owl_status owl_bpe_to_meta(const owl_tokenizer *tok, owl_meta *meta) {
    const struct owl_bpe *b = tok ? tok->bpe : NULL;
    if (!b || tok->kind != OWL_TOK_BPE) return owl_errorf(OWL_ERR_ARG, "owl_bpe_to_meta: not a BPE tokenizer");
    if (!b->byte_level)
        return owl_errorf(OWL_ERR_UNSUPPORTED, "tokenizer: a SentencePiece-style BPE tokenizer.json has no GGUF gpt2 form");
    if (!b->pre_name[0])
        return owl_errorf(OWL_ERR_UNSUPPORTED, "tokenizer: the pre-tokenizer matches no GGUF tokenizer.ggml.pre name");
    int n = tok->vocab.n;
    rank_pair *rp = malloc(sizeof *rp * (b->n_merges + 1));
    owl_str *ms = malloc(sizeof *ms * (b->n_merges + 1));
    size_t total = 0, k = 0;
    char *buf = NULL;
    owl_str *pieces = NULL;
    owl_status st = OWL_OK;
    if (!rp || !ms) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint32_t h = 0; h <= b->mmask; h++)
        if (b->mrank[h] != UINT32_MAX && k < b->n_merges) {
            rp[k++] = (rank_pair){b->mrank[h], (int32_t)(b->mkey[h] >> 32), (int32_t)(b->mkey[h] & 0xFFFFFFFFu)};
            total += tok->vocab.pieces[rp[k - 1].l].len + tok->vocab.pieces[rp[k - 1].r].len + 1;
        }
    qsort(rp, k, sizeof *rp, cmp_rank);
    if (!(buf = malloc(total + 1))) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
        owl_str l = tok->vocab.pieces[rp[i].l], r = tok->vocab.pieces[rp[i].r];
        ms[i] = (owl_str){buf + at, l.len + 1 + r.len};
        memcpy(buf + at, l.ptr, l.len);
        buf[at + l.len] = ' ';
        memcpy(buf + at + l.len + 1, r.ptr, r.len);
        at += l.len + 1 + r.len;
    }
    /* ids no token had (empty, UNUSED) are written as [PADn], as llama.cpp's converter does */
    int holes = 0;
    for (int i = 0; i < n; i++) holes += tok->vocab.pieces[i].len == 0 && tok->vocab.types[i] == OWL_TOKTYPE_UNUSED;
    if (holes && !(pieces = malloc(sizeof *pieces * (size_t)n + (size_t)holes * 20))) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (holes) {
        char *pad = (char *)(pieces + n);
        for (int i = 0; i < n; i++) {
            pieces[i] = tok->vocab.pieces[i];
            if (pieces[i].len == 0 && tok->vocab.types[i] == OWL_TOKTYPE_UNUSED) {
                int l = snprintf(pad, 20, "[PAD%d]", i);
                pieces[i] = (owl_str){pad, (size_t)l};
                pad += l;
            }
        }
    }
    if ((st = owl_meta_set_str(meta, "tokenizer.ggml.model", "gpt2", 4)) ||
        (st = owl_meta_set_str(meta, "tokenizer.ggml.pre", b->pre_name, strlen(b->pre_name))) ||
        (st = owl_meta_set_str_arr(meta, "tokenizer.ggml.tokens", holes ? pieces : tok->vocab.pieces, (uint64_t)n)) ||
        (st = owl_meta_set_arr(meta, "tokenizer.ggml.token_type", OWL_META_I32, tok->vocab.types, (uint64_t)n)) ||
        (st = owl_meta_set_str_arr(meta, "tokenizer.ggml.merges", ms, k)) ||
        (st = owl_meta_set_bool(meta, "tokenizer.ggml.add_bos_token", tok->add_bos)) ||
        (st = owl_meta_set_bool(meta, "tokenizer.ggml.add_eos_token", tok->add_eos)))
        goto done;
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    const int32_t ids[] = {tok->bos, tok->eos, tok->unk, tok->pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0 && (st = owl_meta_set_u32(meta, keys[i], (uint32_t)ids[i]))) goto done;
    if (b->chat_template)
        st = owl_meta_set_str(meta, "tokenizer.chat_template", b->chat_template, strlen(b->chat_template));
done:
    free(rp);
    free(ms);
    free(buf);
    free(pieces);
    return st;
}
