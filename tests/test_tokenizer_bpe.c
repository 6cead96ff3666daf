/* BPE tokenizers from tokenizer.json, GGUF metadata and GPT-2's files,
 * against the published llama.cpp vectors (Llama 3, Qwen2/3), round trips on
 * every other tokenizer in testdata, facts from PROVENANCE.md, the public
 * API over them. Rules on small hand-made files: test_tokenizer_bpe_rules.c. */
#include "testutil.h"
#include "tokenizer/bpe.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct vectors {
    char **text;
    size_t *len;
    int32_t **ids;
    size_t *n_ids;
    size_t n;
} vectors;

static char *slurp(const char *path, size_t *size) {
    char *d = NULL;
    if (owl_read_file(path, &d, size) != OWL_OK) return NULL;
    return d;
}

static bool load_vectors(const char *base, vectors *v) {
    memset(v, 0, sizeof *v);
    char p[512];
    size_t isz, osz;
    snprintf(p, sizeof p, "vectors/llama.cpp/%s.inp", base);
    char *inp = slurp(testdata_path(p), &isz);
    snprintf(p, sizeof p, "vectors/llama.cpp/%s.out", base);
    char *out = slurp(testdata_path(p), &osz);
    if (!inp || !out) {
        free(inp);
        free(out);
        return false;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t cap = 128;
    v->text = calloc(cap, sizeof *v->text);
    v->len = calloc(cap, sizeof *v->len);
    v->ids = calloc(cap, sizeof *v->ids);
    v->n_ids = calloc(cap, sizeof *v->n_ids);
    for (char *s = inp; v->n < cap;) {
        char *e = strstr(s, sep);
        if (!e) break;
        v->len[v->n] = (size_t)(e - s);
        v->text[v->n] = malloc(v->len[v->n] + 1);
        memcpy(v->text[v->n], s, v->len[v->n]);
        v->text[v->n][v->len[v->n]] = 0;
        v->n++;
        s = e + strlen(sep);
    }
    char *line = out;
    for (size_t i = 0; i < v->n; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        v->ids[i] = malloc(sizeof(int32_t) * (strlen(line) + 1));
        for (char *q = line; *q;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q) break;
            v->ids[i][v->n_ids[i]++] = (int32_t)x;
            q = end;
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(inp);
    free(out);
    return v->n > 0;
}

static void free_vectors(vectors *v) {
    for (size_t i = 0; i < v->n; i++) {
        free(v->text[i]);
        free(v->ids[i]);
    }
    free(v->text);
    free(v->len);
    free(v->ids);
    free(v->n_ids);
}

static owl_ids encode(const owl_tokenizer *tok, const char *s, size_t n, bool special) {
    owl_ids ids = {0};
    owl_status st = owl_bpe_encode_text(tok, s, n, special, &ids);
    CHECKF(st == OWL_OK, "encode failed: %s", owl_last_error());
    return ids;
}

/* decode(encode(text)) == text */
static bool roundtrip(const owl_tokenizer *tok, const char *s, size_t n) {
    owl_ids ids = encode(tok, s, n, false);
    char *back = NULL;
    size_t bl = 0;
    owl_status st = owl_bpe_decode(tok, ids.v, ids.n, &back, &bl);
    bool ok = st == OWL_OK && bl == n && memcmp(back, s, n) == 0;
    if (!ok) fprintf(stderr, "  round trip of '%s' gave '%s'\n", s, back ? back : "(null)");
    free(back);
    free(ids.v);
    return ok;
}

static void check_vectors(const owl_tokenizer *tok, const char *base, bool exact) {
    vectors v;
    bool have = load_vectors(base, &v);
    CHECKF(have, "vectors %s missing", base);
    if (!have) return;
    int bad = 0, badrt = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (exact) {
            owl_ids ids = encode(tok, v.text[i], v.len[i], false);
            bool same = ids.n == v.n_ids[i] && (ids.n == 0 || memcmp(ids.v, v.ids[i], ids.n * sizeof(int32_t)) == 0);
            if (!same) {
                bad++;
                fprintf(stderr, "  %s case %zu '%s': got", base, i, v.text[i]);
                for (size_t k = 0; k < ids.n; k++) fprintf(stderr, " %d", ids.v[k]);
                fprintf(stderr, "\n     expected");
                for (size_t k = 0; k < v.n_ids[i]; k++) fprintf(stderr, " %d", v.ids[i][k]);
                fprintf(stderr, "\n");
            }
            free(ids.v);
        }
        if (!roundtrip(tok, v.text[i], v.len[i])) badrt++;
    }
    CHECKF(bad == 0, "%s: %d of %zu cases differ", base, bad, v.n);
    CHECKF(badrt == 0, "%s: %d of %zu round trips differ", base, badrt, v.n);
    free_vectors(&v);
}

static owl_tokenizer *load_json(const char *rel, double *ms) {
    owl_tokenizer *tok = NULL;
    double t0 = owl_time_ms();
    owl_status st = owl_tokenizer_json_load(testdata_path(rel), &tok);
    double t = owl_time_ms() - t0;
    if (ms) *ms = t;
    CHECKF(st == OWL_OK, "%s: %s", rel, owl_last_error());
    if (st == OWL_OK) printf("loaded %s: %d tokens in %.0f ms\n", rel, tok->vocab.n, t);
    return st == OWL_OK ? tok : NULL;
}

static int32_t piece_id(const owl_tokenizer *tok, const char *s) { return owl_vocab_find(&tok->vocab, s, strlen(s)); }

static bool ids_eq(owl_ids ids, const int32_t *want, size_t n) {
    bool ok = ids.n == n && memcmp(ids.v, want, n * sizeof *want) == 0;
    free(ids.v);
    return ok;
}

static bool ids_contain(owl_ids ids, int32_t id) {
    bool found = false;
    for (size_t i = 0; i < ids.n; i++) found |= ids.v[i] == id;
    free(ids.v);
    return found;
}

static const char *extra_texts[] = {
    "Hello world", " leading space", "trailing space ", "tab\there\nnew line\r\n", "ünïcödé façade naïve",
    "日本語のテキスト、中文文本", "emoji 🦉🎉 mix", "numbers 1234567 3.14159 -42", "code: if (x != y) { return a->b; }",
    "\x01\x02 control bytes \x7f", "  multiple   spaces  ", "", "invalid \xff\xfe utf-8 \xc3(\xe2\x96",
};

static void check_roundtrips(const owl_tokenizer *tok, const char *what) {
    int bad = 0;
    for (size_t i = 0; i < sizeof extra_texts / sizeof *extra_texts; i++)
        if (!roundtrip(tok, extra_texts[i], strlen(extra_texts[i]))) bad++;
    CHECKF(bad == 0, "%s: %d round trips differ", what, bad);
}

static char *file_text(const char *rel) {
    size_t n;
    return slurp(testdata_path(rel), &n);
}

/* The public API over a BPE tokenizer: BOS per the tokenizer's rule,
 * streaming decode that only emits whole characters, whole decode. */
static void check_public(const owl_tokenizer *tok, bool expect_bos) {
    const char *text = "Owls 🦉 see at night: 夜に見る, ça va? 12345";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(owl_tokenize(tok, text, strlen(text), true, false, &ids, &n) == OWL_OK);
    if (!ids) return;
    size_t first = expect_bos ? 1 : 0;
    CHECK(n > first && (expect_bos ? ids[0] == owl_token_bos(tok) : ids[0] != owl_token_bos(tok)));
    owl_detok *d = NULL;
    CHECK(owl_detok_new(tok, &d) == OWL_OK);
    char out[512];
    size_t ol = 0;
    bool whole = true;
    for (size_t i = first; d && i <= n; i++) {
        size_t m = 0;
        const char *p = i < n ? owl_detok_push(d, ids[i], &m) : owl_detok_flush(d, &m);
        if (!p || ol + m >= sizeof out) break;
        if (m && ((unsigned char)p[0] & 0xC0) == 0x80) whole = false; /* a piece starting mid-character */
        memcpy(out + ol, p, m);
        ol += m;
    }
    out[ol] = 0;
    CHECKF(ol == strlen(text) && memcmp(out, text, ol) == 0, "stream decode gave '%s'", out);
    CHECK(whole);
    owl_detok_free(d);
    char *all = NULL;
    CHECK(owl_detokenize(tok, ids + first, n - first, &all) == OWL_OK && all && strcmp(all, text) == 0);
    free(all);
    free(ids);
}

/* Cutting SentencePiece-style text before '▁' (cut_at_space) must not
 * change a single id: compare with the uncut encoding on real text. */
static void check_cache_same(owl_tokenizer *tok, const char *what) {
    size_t n = 0;
    char *text = slurp(testdata_path("text/war-and-peace.txt"), &n);
    CHECK(text != NULL);
    if (!text) return;
    if (n > 200000) n = 200000;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
    owl_ids a = encode(tok, text, n, false);
    tok->bpe->no_cache = true;
    owl_ids b = encode(tok, text, n, false);
    tok->bpe->no_cache = false;
    CHECKF(a.n == b.n && a.n > 0 && memcmp(a.v, b.v, a.n * sizeof *a.v) == 0, "%s: cached %zu ids, uncached %zu", what, a.n, b.n);
    free(a.v);
    free(b.v);
    free(text);
}

static void check_cut_same(owl_tokenizer *tok, const char *what) {
    size_t n = 0;
    char *text = slurp(testdata_path("text/war-and-peace.txt"), &n);
    CHECK(text != NULL);
    if (!text) return;
    if (n > 60000) n = 60000;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
    CHECKF(tok->bpe->cut_at_space, "%s: cut_at_space is off", what);
    owl_ids a = encode(tok, text, n, false);
    tok->bpe->cut_at_space = false;
    owl_ids b = encode(tok, text, n, false);
    tok->bpe->cut_at_space = true;
    CHECKF(a.n == b.n && a.n > 0 && memcmp(a.v, b.v, a.n * sizeof *a.v) == 0, "%s: cut %zu ids, uncut %zu", what, a.n, b.n);
    free(a.v);
    free(b.v);
    free(text);
}

/* tokenizer.ggml.* written from a tokenizer.json tokenizer reads back into
 * the same encoder (checked on the published vectors when given). */
static void check_to_meta(const owl_tokenizer *tok, const char *pre, const char *vectors_base) {
    CHECKF(strcmp(tok->bpe->pre_name, pre) == 0, "pre name '%s', expected '%s'", tok->bpe->pre_name, pre);
    owl_meta meta = {0};
    owl_status st = owl_bpe_to_meta(tok, &meta);
    CHECKF(st == OWL_OK, "to_meta: %s", owl_last_error());
    owl_tokenizer *t2 = owl_calloc(1, sizeof *t2);
    t2->kind = OWL_TOK_BPE;
    if (st == OWL_OK) {
        st = owl_bpe_from_meta(&meta, t2);
        CHECKF(st == OWL_OK, "from_meta(to_meta): %s", owl_last_error());
    }
    if (st == OWL_OK) {
        CHECK(t2->vocab.n == tok->vocab.n && t2->bos == tok->bos && t2->eos == tok->eos && t2->add_bos == tok->add_bos);
        CHECK(t2->bpe->n_merges == tok->bpe->n_merges);
        CHECK((owl_tokenizer_chat_template(tok) == NULL) == (owl_tokenizer_chat_template(t2) == NULL));
        if (vectors_base) check_vectors(t2, vectors_base, true);
        const char *t = "Owls 🦉 see at night: 夜に見る, ça va? 12345 <|im_start|>";
        owl_ids a = encode(tok, t, strlen(t), true), b = encode(t2, t, strlen(t), true);
        CHECK(a.n == b.n && memcmp(a.v, b.v, a.n * sizeof *a.v) == 0);
        free(a.v);
        free(b.v);
    }
    owl_tokenizer_free(t2);
    owl_meta_free(&meta);
}

/* The chat template from tokenizer_config.json, as published beside it. */
static void check_template(const owl_tokenizer *tok, const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "templates/hf/%s.chat_template.jinja", name);
    char *want = file_text(rel);
    const char *got = owl_tokenizer_chat_template(tok);
    CHECKF(want && got && strcmp(want, got) == 0, "%s: chat template differs", name);
    free(want);
}

static void test_llama3(void) {
    double ms;
    owl_tokenizer *tok = load_json("tokenizers/llama3/tokenizer.json", &ms);
    if (!tok) return;
    CHECK(tok->vocab.n == 128256);
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", true);
    check_roundtrips(tok, "llama3");
    check_cache_same(tok, "llama3");
    check_to_meta(tok, "llama-bpe", "ggml-vocab-llama-bpe.gguf");
    CHECK(tok->bos == 128000);
    CHECK(tok->eos == 128001);
    CHECK(!tok->add_bos); /* ByteLevel post-processor, no add_bos_token in the config */
    check_public(tok, false);
    const char *text = "<|begin_of_text|>Hi<|eot_id|>";
    int32_t want[] = {128000, 13347, 128009};
    CHECK(ids_eq(encode(tok, text, strlen(text), true), want, 3));
    CHECK(!ids_contain(encode(tok, text, strlen(text), false), 128000));
    char *tmpl = file_text("templates/hf/llama3.chat_template.jinja");
    CHECK(tmpl && owl_tokenizer_chat_template(tok) && strcmp(tmpl, owl_tokenizer_chat_template(tok)) == 0);
    free(tmpl);
    /* decoding of single tokens */
    char buf[64];
    size_t l;
    CHECK(owl_bpe_token_bytes(tok, 128000, buf, sizeof buf, &l) == OWL_OK && l == 17 && !memcmp(buf, "<|begin_of_text|>", 17));
    CHECK(owl_bpe_token_bytes(tok, 220, buf, sizeof buf, &l) == OWL_OK && l == 1 && buf[0] == ' ');
    CHECK(owl_bpe_token_bytes(tok, 128000, buf, 4, &l) == OWL_ERR_RANGE && l == 17);
    CHECK(owl_bpe_token_bytes(tok, 128256, buf, sizeof buf, &l) == OWL_ERR_ARG);
    CHECK(owl_bpe_token_bytes(tok, -1, buf, sizeof buf, &l) == OWL_ERR_ARG);
    owl_tokenizer_free(tok);
}

static void test_qwen3(void) {
    owl_tokenizer *tok = load_json("tokenizers/qwen3/tokenizer.json", NULL);
    if (!tok) return;
    CHECK(tok->vocab.n == 151669);
    check_vectors(tok, "ggml-vocab-qwen2.gguf", true);
    check_roundtrips(tok, "qwen3");
    check_to_meta(tok, "qwen2", NULL);
    check_template(tok, "qwen3");
    CHECK(tok->bos == -1 && !tok->add_bos);
    check_public(tok, false);
    CHECK(tok->eos == piece_id(tok, "<|im_end|>") && tok->eos == 151645);
    CHECK(tok->pad == 151643);
    /* </think> is a non-special added token: split out even without parse_special */
    const char *t = "a</think>b";
    CHECK(ids_contain(encode(tok, t, strlen(t), false), 151668));
    const char *s = "<|im_start|>user";
    CHECK(ids_contain(encode(tok, s, strlen(s), true), 151644));
    CHECK(!ids_contain(encode(tok, s, strlen(s), false), 151644));
    owl_bpe_tokenizer_destroy(tok);
}

static void test_mistral(void) {
    owl_tokenizer *tok = load_json("tokenizers/mistral/tokenizer.json", NULL);
    if (!tok) return;
    CHECK(tok->vocab.n == 32000);
    CHECK(piece_id(tok, "\xe2\x96\x81") == 28705);
    CHECK(tok->bos == 1 && tok->add_bos && tok->eos == 2 && !tok->add_eos && tok->unk == 0);
    CHECK(owl_tokenizer_chat_template(tok) == NULL); /* its config has none */
    check_public(tok, true);
    CHECK(tok->byte_tokens[0] == 3 && tok->byte_tokens[255] == 258);
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", false);
    check_roundtrips(tok, "mistral");
    check_cut_same(tok, "mistral");
    owl_meta mm = {0};
    CHECK(owl_bpe_to_meta(tok, &mm) == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "SentencePiece"));
    owl_meta_free(&mm);
    /* merges define the result: "Hello" is one piece "▁Hello" */
    int32_t hello = piece_id(tok, "\xe2\x96\x81Hello");
    CHECK(hello >= 0 && ids_eq(encode(tok, "Hello", 5, false), &hello, 1));
    /* a character outside the vocabulary falls back to its UTF-8 bytes */
    const char *owl = "\xf0\x9f\xa6\x89"; /* U+1F989 */
    if (piece_id(tok, owl) < 0) {
        int32_t want[] = {28705, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x89};
        CHECK(ids_eq(encode(tok, owl, 4, false), want, 5));
    }
    CHECK(ids_contain(encode(tok, "<s>x", 4, true), 1));
    CHECK(!ids_contain(encode(tok, "<s>x", 4, false), 1));
    owl_bpe_tokenizer_destroy(tok);
}

static void test_gemma3(void) {
    owl_tokenizer *tok = load_json("tokenizers/gemma3/tokenizer.json", NULL);
    if (!tok) return;
    CHECK(tok->vocab.n == 262145);
    CHECK(tok->bos == 2 && tok->add_bos && tok->eos == piece_id(tok, "<end_of_turn>"));
    check_public(tok, true);
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", false);
    check_roundtrips(tok, "gemma3");
    check_cut_same(tok, "gemma3");
    check_template(tok, "gemma3");
    CHECK(ids_contain(encode(tok, "<start_of_turn>user", 19, true), piece_id(tok, "<start_of_turn>")));
    CHECK(!ids_contain(encode(tok, "<start_of_turn>user", 19, false), piece_id(tok, "<start_of_turn>")));
    CHECK(ids_contain(encode(tok, "x<unused5>y", 11, false), piece_id(tok, "<unused5>")));
    owl_bpe_tokenizer_destroy(tok);
}

static void test_deepseek(void) {
    owl_tokenizer *tok = load_json("tokenizers/deepseek_v3/tokenizer.json", NULL);
    if (!tok) return;
    CHECK(tok->bos == 0 && tok->add_bos && tok->eos == 1);
    check_public(tok, true);
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", false);
    check_roundtrips(tok, "deepseek_v3");
    check_to_meta(tok, "deepseek-v3", NULL);
    check_template(tok, "deepseek_v3");
    const char *u = "<\xef\xbd\x9c" "User\xef\xbd\x9c>hi";
    CHECK(ids_contain(encode(tok, u, strlen(u), false), piece_id(tok, "<\xef\xbd\x9cUser\xef\xbd\x9c>")));
    owl_bpe_tokenizer_destroy(tok);
}

/* GGUF-style metadata (tokenizer.ggml.*) made from a tokenizer.json the way
 * a converter writes it: tokens by id, merges as "a b", added tokens as
 * CONTROL, and the pre-tokenizer's name. */
static void test_from_meta(const char *rel, const char *pre, const char *vectors_base, int32_t bos) {
    json_error_t err;
    json_t *root = json_load_file(testdata_path(rel), 0, &err);
    CHECKF(root != NULL, "%s: %s", rel, err.text);
    if (!root) return;
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    json_t *added = json_object_get(root, "added_tokens");
    size_t n = json_object_size(vocab) + json_array_size(added);
    owl_str *toks = calloc(n, sizeof *toks);
    int32_t *types = calloc(n, sizeof *types);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        toks[id] = (owl_str){key, strlen(key)};
        types[id] = OWL_TOKTYPE_NORMAL;
    }
    size_t i;
    json_array_foreach(added, i, val) {
        json_int_t id = json_integer_value(json_object_get(val, "id"));
        toks[id] = (owl_str){json_string_value(json_object_get(val, "content")), json_string_length(json_object_get(val, "content"))};
        types[id] = OWL_TOKTYPE_CONTROL;
    }
    size_t nm = json_array_size(merges);
    owl_str *ms = calloc(nm, sizeof *ms);
    char **own = calloc(nm, sizeof *own);
    json_array_foreach(merges, i, val) {
        if (json_is_string(val)) {
            ms[i] = (owl_str){json_string_value(val), json_string_length(val)};
        } else {
            const char *a = json_string_value(json_array_get(val, 0)), *b = json_string_value(json_array_get(val, 1));
            size_t la = strlen(a), lb = strlen(b);
            own[i] = malloc(la + lb + 2);
            memcpy(own[i], a, la);
            own[i][la] = ' ';
            memcpy(own[i] + la + 1, b, lb + 1);
            ms[i] = (owl_str){own[i], la + lb + 1};
        }
    }
    owl_meta meta = {0};
    CHECK(owl_meta_set_str(&meta, "tokenizer.ggml.model", "gpt2", 4) == OWL_OK);
    CHECK(owl_meta_set_str(&meta, "tokenizer.ggml.pre", pre, strlen(pre)) == OWL_OK);
    CHECK(owl_meta_set_str_arr(&meta, "tokenizer.ggml.tokens", toks, n) == OWL_OK);
    CHECK(owl_meta_set_arr(&meta, "tokenizer.ggml.token_type", OWL_META_I32, types, n) == OWL_OK);
    CHECK(owl_meta_set_str_arr(&meta, "tokenizer.ggml.merges", ms, nm) == OWL_OK);
    if (bos >= 0) CHECK(owl_meta_set_u32(&meta, "tokenizer.ggml.bos_token_id", (uint32_t)bos) == OWL_OK);
    CHECK(owl_meta_set_bool(&meta, "tokenizer.ggml.add_bos_token", true) == OWL_OK);
    owl_tokenizer *tok = owl_calloc(1, sizeof *tok);
    tok->kind = OWL_TOK_BPE;
    owl_status st = owl_bpe_from_meta(&meta, tok);
    CHECKF(st == OWL_OK, "from_meta %s: %s", rel, owl_last_error());
    if (st == OWL_OK) {
        CHECK(tok->bos == bos && tok->add_bos);
        check_vectors(tok, vectors_base, true);
        owl_str last = toks[n - 1]; /* an added token: CONTROL, found only with parse_special */
        CHECK(ids_contain(encode(tok, last.ptr, last.len, true), (int32_t)n - 1));
        CHECK(!ids_contain(encode(tok, last.ptr, last.len, false), (int32_t)n - 1));
    }
    /* bad metadata: a merge that names an unknown token, a bos id past the end */
    owl_str bad = {"\xc4\xa0 zzzz_not_a_token", 20};
    owl_meta m2 = {0};
    owl_meta_set_str_arr(&m2, "tokenizer.ggml.tokens", toks, n);
    owl_meta_set_str_arr(&m2, "tokenizer.ggml.merges", &bad, 1);
    owl_tokenizer *t2 = owl_calloc(1, sizeof *t2);
    CHECK(owl_bpe_from_meta(&m2, t2) == OWL_ERR_FORMAT && strstr(owl_last_error(), "tokenizer.ggml.merges[0]"));
    owl_bpe_tokenizer_destroy(t2);
    owl_meta_set_str_arr(&m2, "tokenizer.ggml.merges", ms, 1);
    owl_meta_set_u32(&m2, "tokenizer.ggml.bos_token_id", (uint32_t)n + 5);
    t2 = owl_calloc(1, sizeof *t2);
    CHECK(owl_bpe_from_meta(&m2, t2) == OWL_ERR_FORMAT && strstr(owl_last_error(), "bos_token_id"));
    owl_bpe_tokenizer_destroy(t2);
    owl_meta_free(&m2);
    owl_meta_free(&meta);
    owl_bpe_tokenizer_destroy(tok);
    for (i = 0; i < nm; i++) free(own[i]);
    free(own);
    free(ms);
    free(toks);
    free(types);
    json_decref(root);
}

static void test_gpt2(void) {
    owl_tokenizer *tok = NULL;
    char enc[512];
    snprintf(enc, sizeof enc, "%s", testdata_path("tokenizers/gpt2/encoder.json"));
    owl_status st = owl_tokenizer_gpt2_load(enc, testdata_path("tokenizers/gpt2/vocab.bpe"), &tok);
    CHECKF(st == OWL_OK, "gpt2: %s", owl_last_error());
    if (st) return;
    CHECK(tok->vocab.n == 50257 && tok->eos == 50256);
    /* the same through the tokenizer.json entry point: a directory, and encoder.json by name */
    owl_tokenizer *t2 = NULL, *t3 = NULL;
    CHECKF(owl_tokenizer_json_load(testdata_path("tokenizers/gpt2"), &t2) == OWL_OK, "%s", owl_last_error());
    CHECKF(owl_tokenizer_json_load(enc, &t3) == OWL_OK, "%s", owl_last_error());
    CHECK(t2 && t3 && t2->vocab.n == 50257 && t3->vocab.n == 50257);
    owl_tokenizer_free(t2);
    owl_tokenizer_free(t3);
    CHECK(owl_tokenizer_json_load(testdata_path("tokenizers/no_such_dir/tokenizer.json"), &t2) != OWL_OK && !t2);
    int32_t want[] = {15496, 995}; /* "Hello world" as published for GPT-2 */
    CHECK(ids_eq(encode(tok, "Hello world", 11, false), want, 2));
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", false);
    check_roundtrips(tok, "gpt2");
    check_to_meta(tok, "gpt-2", NULL);
    owl_bpe_tokenizer_destroy(tok);
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0; }

/* The Llama 2 SentencePiece model converted to a tokenizer.json the way
 * Hugging Face's converter does it (tests/reference/spm_to_tokenizer_json.py):
 * owl's merge-ranked BPE must give the published llama.cpp ids and the ids of
 * Google's sentencepiece itself on generated strings (tests/reference/spm_ref.py). */
static void test_llama2_converted(void) {
    const char *dir = test_tmpdir("tokenizer_bpe");
    char *tj = path_join(dir, "tokenizer.json"), *ref = path_join(dir, "spm_ref.txt");
    const char *model = testdata_path("tokenizers/llama2/tokenizer.model");
    char model_copy[1024];
    snprintf(model_copy, sizeof model_copy, "%s", model);
    int st = run_cmd("'%s' '%s' '%s' '%s'", test_python(), source_path("tests/reference/spm_to_tokenizer_json.py"), model_copy, tj);
    CHECKF(st == 0, "spm_to_tokenizer_json.py failed (status %d)", st);
    owl_tokenizer *tok = NULL;
    if (st == 0) CHECKF(owl_tokenizer_json_load(tj, &tok) == OWL_OK, "%s", owl_last_error());
    if (tok) {
        CHECK(tok->vocab.n == 32000 && !tok->add_bos && tok->unk == 0 && tok->byte_tokens[0x41] == 3 + 0x41);
        check_vectors(tok, "ggml-vocab-llama-spm.gguf", true);
        check_roundtrips(tok, "llama2 converted");
        st = run_cmd("'%s' '%s' '%s' '%s' 300 4321 '%s'", test_python(), source_path("tests/reference/spm_ref.py"), model_copy, ref,
                     testdata_path("text/war-and-peace.txt"));
        CHECKF(st == 0, "spm_ref.py failed (status %d)", st);
        size_t len = 0;
        char *data = st == 0 ? slurp(ref, &len) : NULL;
        int n_cases = 0, n_bad = 0;
        for (char *line = data; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            char *tab = strchr(line, '\t');
            if (!tab) break;
            size_t tl = (size_t)(tab - line) / 2;
            char *text = malloc(tl + 1);
            for (size_t i = 0; i < tl; i++) text[i] = (char)(hexval(line[2 * i]) * 16 + hexval(line[2 * i + 1]));
            owl_ids want = {0};
            for (char *q = tab + 1;;) {
                char *end;
                long x = strtol(q, &end, 10);
                if (end == q) break;
                owl_ids_push(&want, (int32_t)x);
                q = end;
            }
            owl_ids got = encode(tok, text, tl, false);
            if (got.n != want.n || (got.n && memcmp(got.v, want.v, got.n * sizeof *got.v) != 0)) {
                if (n_bad++ < 5) {
                    fprintf(stderr, "  sentencepiece case %d:", n_cases);
                    for (size_t k = 0; k < tl && k < 60; k++) fprintf(stderr, " %02x", (unsigned char)text[k]);
                    fprintf(stderr, "\n    got");
                    for (size_t k = 0; k < got.n; k++) fprintf(stderr, " %d", got.v[k]);
                    fprintf(stderr, "\n    expected");
                    for (size_t k = 0; k < want.n; k++) fprintf(stderr, " %d", want.v[k]);
                    fprintf(stderr, "\n");
                }
            }
            free(got.v);
            free(want.v);
            free(text);
            n_cases++;
            if (!nl) break;
            line = nl + 1;
        }
        CHECKF(n_cases >= 300 && n_bad == 0, "llama2 converted: %d of %d sentencepiece cases differ", n_bad, n_cases);
        printf("llama2 converted: %d sentencepiece cases, %d differ\n", n_cases, n_bad);
        free(data);
        owl_tokenizer_free(tok);
    }
    free(tj);
    free(ref);
}

int main(void) {
    test_llama3();
    test_qwen3();
    test_mistral();
    test_deepseek();
    test_gpt2();
    test_from_meta("tokenizers/llama3/tokenizer.json", "llama-bpe", "ggml-vocab-llama-bpe.gguf", 128000);
    test_from_meta("tokenizers/qwen3/tokenizer.json", "qwen2", "ggml-vocab-qwen2.gguf", -1);
    test_gemma3();
    test_llama2_converted();
    return test_finish("test_tokenizer_bpe");
}
