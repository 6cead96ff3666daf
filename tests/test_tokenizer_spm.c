/* SentencePiece-style tokenizer: the Llama 2 tokenizer (from tokenizer.model
 * and from llama2.c's tokenizer.bin) against llama.cpp's published vectors
 * and against Google's sentencepiece (Python) on generated strings; the
 * stories260K tokenizer; special tokens; streaming decode; bad input. */
#include "testutil.h"

#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    *len = n;
    return b;
}

static int parse_ids(const char *s, int32_t *ids, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static bool ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

/* Encodes text (no BOS, no special parsing), compares with want, and checks
 * that decoding gives the text back when roundtrip is set. */
static void check_case(const owl_tokenizer *tok, const char *label, const char *text, size_t len, const int32_t *want,
                       size_t n_want, bool roundtrip) {
    int32_t *ids = NULL;
    size_t n = 0;
    owl_status s = owl_tokenize(tok, text, len, false, false, &ids, &n);
    CHECKF(s == OWL_OK, "%s: %s", label, owl_last_error());
    bool eq = s == OWL_OK && ids_equal(ids, n, want, n_want);
    CHECKF(eq, "%s: ids differ for text [%.*s]", label, (int)(len > 200 ? 200 : len), text);
    if (!eq) {
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    if (s == OWL_OK && roundtrip) {
        char *back = NULL;
        s = owl_detokenize(tok, ids, n, &back);
        CHECKF(s == OWL_OK && back && strlen(back) == len && memcmp(back, text, len) == 0,
               "%s: decode gives [%s], not [%.*s]", label, back ? back : "(null)", (int)len, text);
        free(back);
    }
    free(ids);
}

/* llama.cpp's vectors: cases in .inp end with a line __ggml_vocab_test__
 * (the newline before it is not part of the case); line i of .out holds the
 * ids of case i. */
static void test_vectors(const owl_tokenizer *tok, const char *label) {
    size_t in_len = 0, out_len = 0;
    char *inp = read_all(testdata_path("vectors/llama.cpp/ggml-vocab-llama-spm.gguf.inp"), &in_len);
    char *out = read_all(testdata_path("vectors/llama.cpp/ggml-vocab-llama-spm.gguf.out"), &out_len);
    CHECK(inp && out);
    if (!inp || !out) {
        free(inp);
        free(out);
        return;
    }
    /* A case is the lines before a separator line, joined by "\n". */
    char *p = inp, *case_start = inp, *q = out;
    int cases = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll == 19 && memcmp(p, "__ggml_vocab_test__", 19) == 0) {
            size_t tl = p > case_start ? (size_t)(p - case_start) - 1 : 0; /* without the last newline */
            char *ol = strchr(q, '\n');
            if (!ol) break;
            *ol = 0;
            int32_t want[512];
            int nw = parse_ids(q, want, 512);
            *ol = '\n';
            q = ol + 1;
            char name[64];
            snprintf(name, sizeof name, "%s vector %d", label, cases);
            check_case(tok, name, case_start, tl, want, (size_t)nw, true);
            cases++;
            case_start = nl ? nl + 1 : p + ll;
        }
        if (!nl) break;
        p = nl + 1;
    }
    CHECKF(cases == 43, "%s: %d vector cases read, 43 expected", label, cases);
    free(inp);
    free(out);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Differential test against sentencepiece on generated strings. */
static void test_differential(const owl_tokenizer *tok, const char *model_path, const char *label, bool roundtrip) {
    const char *dir = test_tmpdir("tokenizer_spm");
    char *ref = path_join(dir, "spm_ref.txt");
    /* OWL_SPM_CASES / OWL_SPM_SEED: more or other cases when run by hand */
    const char *nc = getenv("OWL_SPM_CASES"), *seed = getenv("OWL_SPM_SEED");
    int st = run_cmd("'%s' '%s' '%s' '%s' %s %s '%s'", test_python(), source_path("tests/reference/spm_ref.py"),
                     model_path, ref, nc ? nc : "300", seed ? seed : "4321", testdata_path("text/war-and-peace.txt"));
    CHECKF(st == 0, "spm_ref.py failed (status %d)", st);
    size_t len = 0;
    char *data = st == 0 ? read_all(ref, &len) : NULL;
    CHECK(data != NULL);
    int n_cases = 0, n_bad = 0;
    char *line = data;
    while (data && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *tab = strchr(line, '\t');
        if (!tab) break;
        size_t hl = (size_t)(tab - line);
        char *text = malloc(hl / 2 + 1);
        for (size_t i = 0; i + 1 < hl; i += 2) text[i / 2] = (char)(hexval(line[i]) * 16 + hexval(line[i + 1]));
        size_t tl = hl / 2;
        int32_t *want = malloc(sizeof(int32_t) * (strlen(tab) + 1));
        int nw = parse_ids(tab + 1, want, (int)strlen(tab) + 1);
        int before = owl_test_failures;
        char name[64];
        snprintf(name, sizeof name, "%s differential %d", label, n_cases);
        /* decoding gives the text back (no normalization here), except where
         * the text itself holds U+2581, which decodes as a space */
        bool has_mark = memmem(text, tl, "\xe2\x96\x81", 3) != NULL;
        check_case(tok, name, text, tl, want, (size_t)nw, roundtrip && !has_mark);
        if (owl_test_failures != before) n_bad++;
        free(text);
        free(want);
        n_cases++;
        if (!nl) break;
        line = nl + 1;
    }
    CHECKF(n_cases >= (nc ? atoi(nc) : 300), "%s: %d differential cases", label, n_cases);
    fprintf(stderr, "%s: %d differential cases, %d mismatched\n", label, n_cases, n_bad);
    free(data);
    free(ref);
}

static owl_tokenizer *load_meta_tok(const char *what, owl_status (*reader)(const char *, owl_meta *),
                                    const char *path) {
    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    double t0 = now_ms();
    owl_status s = reader(path, &meta);
    CHECKF(s == OWL_OK, "%s: %s", what, owl_last_error());
    owl_tokenizer *tok = NULL;
    if (s == OWL_OK) {
        s = owl_tokenizer_from_meta(&meta, &tok);
        CHECKF(s == OWL_OK, "%s: %s", what, owl_last_error());
    }
    fprintf(stderr, "%s: loaded in %.1f ms\n", what, now_ms() - t0);
    owl_meta_free(&meta);
    return tok;
}

static void test_llama2(void) {
    char *model = strdup(testdata_path("tokenizers/llama2/tokenizer.model")); /* testdata_path's buffers rotate */
    owl_tokenizer *a = load_meta_tok("tokenizer.model", owl_spm_model_read, model);
    owl_tokenizer *b = load_meta_tok("tokenizer.bin", owl_llama2c_tokenizer_read,
                                     testdata_path("tokenizers/llama2/tokenizer.bin"));
    if (!a || !b) {
        owl_tokenizer_free(a);
        owl_tokenizer_free(b);
        free(model);
        return;
    }
    CHECK(owl_token_count(a) == 32000 && owl_token_count(b) == 32000);
    CHECK(owl_token_bos(a) == 1 && owl_token_eos(a) == 2 && owl_token_bos(b) == 1 && owl_token_eos(b) == 2);
    size_t pl = 0;
    const char *p = owl_token_piece(a, 15043, &pl);
    CHECK(p && pl == 8 && memcmp(p, "\xe2\x96\x81Hello", 8) == 0);
    p = owl_token_piece(b, 15043, &pl);
    CHECK(p && pl == 8 && memcmp(p, "\xe2\x96\x81Hello", 8) == 0);
    CHECK(owl_token_piece(a, 32000, &pl) == NULL && owl_token_piece(a, -1, &pl) == NULL);
    CHECK(owl_token_is_special(a, 1) && owl_token_is_special(b, 2) && !owl_token_is_special(a, 15043));
    /* the two files hold the same vocabulary */
    int same = 0;
    for (int i = 0; i < 32000; i++) {
        size_t la, lb;
        const char *pa = owl_token_piece(a, i, &la), *pb = owl_token_piece(b, i, &lb);
        same += la == lb && memcmp(pa, pb, la) == 0 && a->vocab.scores[i] == b->vocab.scores[i] &&
                a->vocab.types[i] == b->vocab.types[i];
    }
    CHECKF(same == 32000, "tokenizer.model and tokenizer.bin agree on %d of 32000 tokens", same);

    test_vectors(a, "tokenizer.model");
    test_vectors(b, "tokenizer.bin");
    /* the same vocabulary as llama.cpp's converter wrote it into a GGUF */
    owl_tokenizer *g = NULL;
    owl_status gs = owl_tokenizer_load(testdata_path("models/wp/wp-Q4_0.gguf"), &g);
    CHECKF(gs == OWL_OK && g && owl_token_count(g) == 32000, "wp-Q4_0.gguf: %s", owl_last_error());
    if (g) test_vectors(g, "wp-Q4_0.gguf");
    owl_tokenizer_free(g);
    test_differential(a, model, "tokenizer.model", true);
    test_differential(b, model, "tokenizer.bin", true);

    /* BOS, special text */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(owl_tokenize(a, "Hello world", 11, true, false, &ids, &n) == OWL_OK);
    CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186);
    char *text = NULL;
    CHECK(owl_detokenize(a, ids, n, &text) == OWL_OK && text && strcmp(text, "Hello world") == 0);
    free(text);
    free(ids);
    CHECK(owl_tokenize(a, "", 0, false, false, &ids, &n) == OWL_OK && n == 0);
    free(ids);
    CHECK(owl_tokenize(a, "", 0, true, false, &ids, &n) == OWL_OK && n == 1 && ids[0] == 1);
    free(ids);

    /* Unknown and bad ids */
    CHECK(owl_detokenize(a, (const int32_t[]){15043, 32000}, 2, &text) != OWL_OK);
    CHECK(owl_detokenize(a, (const int32_t[]){-5}, 1, &text) != OWL_OK);

    /* Invalid UTF-8 must not crash: each bad byte goes to byte fallback. */
    const char bad[] = "a\xff\xc3(\xe2\x82 \xf0\x9f\x98";
    CHECK(owl_tokenize(a, bad, sizeof bad - 1, false, false, &ids, &n) == OWL_OK);
    int n_bytes = 0;
    for (size_t i = 0; i < n; i++) n_bytes += a->vocab.types[ids[i]] == OWL_TOKTYPE_BYTE;
    CHECKF(n_bytes >= 6, "invalid UTF-8: %d byte tokens", n_bytes);
    free(ids);

    /* Speed: 1 MB of text (printed, not asserted). */
    size_t wl = 0;
    char *wp = read_all(testdata_path("text/war-and-peace.txt"), &wl);
    CHECK(wp != NULL);
    if (wp) {
        size_t mb = wl < (1u << 20) ? wl : (1u << 20);
        while (mb > 0 && ((unsigned char)wp[mb] & 0xc0) == 0x80) mb--;
        double t0 = now_ms();
        owl_status s = owl_tokenize(a, wp, mb, true, false, &ids, &n);
        double t1 = now_ms();
        CHECK(s == OWL_OK && n > 100000);
        fprintf(stderr, "encoded %zu bytes into %zu tokens in %.1f ms\n", mb, n, t1 - t0);
        if (s == OWL_OK) {
            s = owl_detokenize(a, ids, n, &text);
            CHECK(s == OWL_OK && strlen(text) == mb && memcmp(text, wp, mb) == 0);
            free(text);
            free(ids);
        }
        free(wp);
    }
    owl_tokenizer_free(a);
    owl_tokenizer_free(b);
    free(model);
}

/* Small models trained by sentencepiece at test time: unknown characters
 * without byte fallback (runs become one unknown token), user-defined and
 * control symbols, extra whitespace removed; and byte fallback without the
 * dummy prefix. */
static void test_trained(void) {
    const char *variants[] = {"unk", "bytes"};
    for (int v = 0; v < 2; v++) {
        const char *dir = test_tmpdir(v == 0 ? "tokenizer_spm_unk" : "tokenizer_spm_bytes");
        char *prefix = path_join(dir, variants[v]);
        int st = run_cmd("'%s' '%s' train '%s' '%s' %s", test_python(), source_path("tests/reference/spm_ref.py"),
                         testdata_path("text/war-and-peace.txt"), prefix, variants[v]);
        CHECKF(st == 0, "training the %s model failed (status %d)", variants[v], st);
        char model[4200];
        snprintf(model, sizeof model, "%s.model", prefix);
        owl_tokenizer *tok = NULL;
        if (st == 0) {
            owl_status s = owl_tokenizer_load(model, &tok);
            CHECKF(s == OWL_OK, "%s: %s", model, owl_last_error());
        }
        if (tok) {
            CHECK(tok->add_space_prefix == (v == 0) && tok->remove_extra_spaces == (v == 0));
            CHECK((tok->byte_tokens[0x41] >= 0) == (v == 1) && tok->n_user_defined == (v == 0 ? 3 : 0));
            char label[32];
            snprintf(label, sizeof label, "trained-%s", variants[v]);
            test_differential(tok, model, label, false);
        }
        owl_tokenizer_free(tok);
        free(prefix);
    }
}

/* The Llama 2 model with every 7th multi-character piece marked UNUSED:
 * sentencepiece still merges through them, then splits them back into the
 * two parts they were made of. */
static void test_unused(void) {
    const char *dir = test_tmpdir("tokenizer_spm_unused");
    char *model = path_join(dir, "unused.model");
    int st = run_cmd("'%s' '%s' unused '%s' '%s' 7", test_python(), source_path("tests/reference/spm_ref.py"),
                     testdata_path("tokenizers/llama2/tokenizer.model"), model);
    CHECKF(st == 0, "marking pieces unused failed (status %d)", st);
    owl_tokenizer *tok = NULL;
    if (st == 0) {
        owl_status s = owl_tokenizer_load(model, &tok);
        CHECKF(s == OWL_OK, "%s: %s", model, owl_last_error());
    }
    if (tok) {
        CHECK(tok->has_unused);
        test_differential(tok, model, "llama2-unused", true);
    }
    owl_tokenizer_free(tok);
    free(model);
}

static void test_stories(void) {
    owl_tokenizer *tok = NULL;
    owl_status s = owl_tokenizer_load(testdata_path("tokenizers/tinystories512/tok512.bin"), &tok);
    CHECKF(s == OWL_OK, "tok512.bin: %s", owl_last_error());
    if (!tok) return;
    CHECK(owl_token_count(tok) == 512 && owl_token_bos(tok) == 1 && owl_token_eos(tok) == 2);
    const char *texts[] = {"Once upon a time, there was a little girl named Lily.",
                           "  She liked to play\toutside!\n\nThe end. 123",
                           "Zoë ate 日本 food 🦉 <s> and </s>"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        s = owl_tokenize(tok, texts[i], strlen(texts[i]), true, false, &ids, &n);
        CHECK(s == OWL_OK && n > 1 && ids[0] == 1);
        char *back = NULL;
        CHECK(s == OWL_OK && owl_detokenize(tok, ids, n, &back) == OWL_OK && back && strcmp(back, texts[i]) == 0);
        free(back);
        for (size_t k = 1; k < n; k++) CHECK(ids[k] != 1 && ids[k] != 2); /* "<s>" stays text */
        free(ids);
    }
    /* parse_special: "<s>" and "</s>" become ids 1 and 2 */
    int32_t *ids = NULL;
    size_t n = 0;
    const char *t = "<s>Hi</s>";
    CHECK(owl_tokenize(tok, t, strlen(t), false, true, &ids, &n) == OWL_OK);
    CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2);
    for (size_t k = 1; k + 1 < n; k++) CHECK(ids[k] != 1 && ids[k] != 2);
    free(ids);
    CHECK(owl_tokenize(tok, t, strlen(t), false, false, &ids, &n) == OWL_OK);
    for (size_t k = 0; k < n; k++) CHECK(ids[k] != 1 && ids[k] != 2);
    free(ids);
    owl_tokenizer_free(tok);
}

/* Streaming decode with the Llama 2 vocabulary: byte tokens of a multi-byte
 * character come out together; an unfinished one flushes as U+FFFD. */
static void test_streaming(void) {
    owl_tokenizer *tok = NULL;
    owl_status s = owl_tokenizer_load(testdata_path("tokenizers/llama2/tokenizer.model"), &tok);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (!tok) return;
    owl_detok *d = NULL;
    CHECK(owl_detok_new(tok, &d) == OWL_OK);
    size_t len = 99;
    const char *o = owl_detok_push(d, 1, &len); /* BOS */
    CHECK(o && len == 0);
    o = owl_detok_push(d, 15043, &len); /* "▁Hello" after BOS: the space goes */
    CHECK(o && len == 5 && strcmp(o, "Hello") == 0);
    /* 🦉 = f0 9f a6 89: byte tokens are <0xXX> = id 3 + byte */
    const uint8_t owl[4] = {0xf0, 0x9f, 0xa6, 0x89};
    for (int i = 0; i < 4; i++) {
        o = owl_detok_push(d, 3 + owl[i], &len);
        CHECK(o != NULL);
        if (i < 3) CHECKF(len == 0, "byte %d: %zu bytes out too early", i, len);
        else CHECK(len == 4 && memcmp(o, owl, 4) == 0);
    }
    o = owl_detok_push(d, 3186, &len); /* "▁world": not at the start, keeps its space */
    CHECK(o && strcmp(o, " world") == 0);
    o = owl_detok_push(d, 3 + 0xe2, &len); /* a dangling lead byte */
    CHECK(o && len == 0);
    o = owl_detok_flush(d, &len);
    CHECK(o && len == 3 && memcmp(o, "\xef\xbf\xbd", 3) == 0);
    o = owl_detok_flush(d, &len);
    CHECK(o && len == 0);
    /* an invalid byte then ASCII */
    o = owl_detok_push(d, 3 + 0xff, &len);
    CHECK(o && len == 3 && memcmp(o, "\xef\xbf\xbd", 3) == 0);
    o = owl_detok_push(d, 3 + 0xc3, &len);
    CHECK(o && len == 0);
    o = owl_detok_push(d, 3 + 'A', &len); /* breaks the sequence */
    CHECK(o && len == 4 && memcmp(o, "\xef\xbf\xbd" "A", 4) == 0);
    CHECK(owl_detok_push(d, 40000, &len) == NULL);
    owl_detok_free(d);

    /* primed: continuing after a prompt keeps the space */
    CHECK(owl_detok_new(tok, &d) == OWL_OK);
    owl_detok_prime(d, 15043);
    o = owl_detok_push(d, 3186, &len);
    CHECK(o && strcmp(o, " world") == 0);
    owl_detok_free(d);
    owl_tokenizer_free(tok);
}

static void expect_model_error(const char *label, const uint8_t *data, size_t size) {
    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    owl_status s = owl_spm_model_read_mem(label, data, size, &meta);
    const char *err = owl_last_error();
    CHECKF(s != OWL_OK && strstr(err, label) != NULL, "%s: status %d, error [%s]", label, s, err);
    if (s != OWL_OK) fprintf(stderr, "  ok, rejected: %s\n", err);
    owl_meta_free(&meta);
}

static void test_bad_model(void) {
    size_t len = 0;
    char *data = read_all(testdata_path("tokenizers/llama2/tokenizer.model"), &len);
    CHECK(data != NULL && len > 1000);
    if (!data) return;
    const uint8_t *u = (const uint8_t *)data;
    expect_model_error("empty.model", u, 0);
    expect_model_error("truncated-10.model", u, 10);
    expect_model_error("truncated-half.model", u, len / 2);
    expect_model_error("truncated-minus1.model", u, len - 1);
    /* garbage */
    uint8_t junk[4096];
    uint64_t st = 99;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)test_rand_u64(&st);
    expect_model_error("garbage.model", junk, sizeof junk);
    /* a huge length on the first field */
    uint8_t huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x01, 'a'};
    expect_model_error("hugelen.model", huge, sizeof huge);
    /* a piece with a bad type */
    uint8_t badtype[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x09, 0x12, 0x02, 0x18, 0x02};
    expect_model_error("badtype.model", badtype, sizeof badtype);
    /* score with the wrong wire type */
    uint8_t badwire[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x10, 0x01, 0x12, 0x02, 0x18, 0x02};
    expect_model_error("badwire.model", badwire, sizeof badwire);
    /* a unigram model (model_type 1) is refused */
    uint8_t unigram[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
    expect_model_error("unigram.model", unigram, sizeof unigram);
    /* no pieces */
    uint8_t nopieces[] = {0x12, 0x02, 0x18, 0x02};
    expect_model_error("nopieces.model", nopieces, sizeof nopieces);
    /* a tiny valid one loads */
    uint8_t tiny[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x02, 0x18, 0x02};
    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    CHECKF(owl_spm_model_read_mem("tiny.model", tiny, sizeof tiny, &meta) == OWL_OK, "%s", owl_last_error());
    owl_meta_free(&meta);
    /* flip bytes of the real file: no crash (errors or success both fine) */
    char *copy = malloc(len);
    for (int round = 0; round < 200; round++) {
        memcpy(copy, data, len);
        for (int k = 0; k < 4; k++) copy[test_rand_u64(&st) % 2048] ^= (char)(1 + test_rand_u64(&st) % 255);
        memset(&meta, 0, sizeof meta);
        owl_status s = owl_spm_model_read_mem("flipped.model", (const uint8_t *)copy, len, &meta);
        owl_tokenizer *tok = NULL;
        if (s == OWL_OK && owl_tokenizer_from_meta(&meta, &tok) == OWL_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (owl_tokenize(tok, "Hello <s> world \xff", 17, true, true, &ids, &n) == OWL_OK) free(ids);
            owl_tokenizer_free(tok);
        }
        owl_meta_free(&meta);
    }
    CHECK(true);
    free(copy);
    free(data);

    owl_tokenizer *tok = NULL;
    CHECK(owl_tokenizer_load("/nonexistent/tokenizer.model", &tok) == OWL_ERR_IO && tok == NULL);
}

/* Hostile metadata for owl_tokenizer_from_meta: each a clear error. */
static void test_bad_meta(void) {
    static const char *names[] = {"<unk>", "<s>", "</s>", "a", "b"};
    owl_str pieces[5];
    for (int i = 0; i < 5; i++) pieces[i] = (owl_str){names[i], strlen(names[i])};
    float scores[5] = {0, 0, 0, -1, -2};
    int32_t types[5] = {2, 3, 3, 1, 1};
    for (int c = 0; c < 9; c++) {
        owl_meta m;
        memset(&m, 0, sizeof m);
        const char *model = c == 0 ? "unigram" : "llama";
        owl_meta_set_str(&m, "tokenizer.ggml.model", model, strlen(model));
        if (c != 1) owl_meta_set_str_arr(&m, "tokenizer.ggml.tokens", pieces, c == 2 ? 0 : 5);
        else owl_meta_set_u32(&m, "tokenizer.ggml.tokens", 5);
        owl_meta_set_arr(&m, "tokenizer.ggml.scores", OWL_META_F32, scores, c == 3 ? 4 : 5);
        int32_t t2[5];
        memcpy(t2, types, sizeof t2);
        if (c == 4) t2[3] = 9;
        owl_meta_set_arr(&m, "tokenizer.ggml.token_type", c == 5 ? OWL_META_F32 : OWL_META_I32, t2, 5);
        if (c == 6) owl_meta_set_u32(&m, "tokenizer.ggml.bos_token_id", 5);
        if (c == 7) owl_meta_set_str(&m, "tokenizer.ggml.eos_token_id", "2", 1);
        if (c == 8) {
            static const owl_str bad_byte = {"<0xZZ>", 6};
            owl_str p2[5];
            memcpy(p2, pieces, sizeof p2);
            p2[4] = bad_byte;
            t2[4] = 6;
            owl_meta_set_str_arr(&m, "tokenizer.ggml.tokens", p2, 5);
            owl_meta_set_arr(&m, "tokenizer.ggml.token_type", OWL_META_I32, t2, 5);
        }
        owl_tokenizer *tok = NULL;
        owl_status s = owl_tokenizer_from_meta(&m, &tok);
        CHECKF(s != OWL_OK && tok == NULL && strstr(owl_last_error(), "tokenizer"), "bad meta %d: status %d [%s]", c,
               s, owl_last_error());
        fprintf(stderr, "  ok, bad meta %d rejected: %s\n", c, owl_last_error());
        owl_tokenizer_free(tok);
        owl_meta_free(&m);
    }
    /* tok512.bin cut at every length: an error or (at a token boundary) fewer tokens, never a crash */
    size_t len = 0;
    char *data = read_all(testdata_path("tokenizers/tinystories512/tok512.bin"), &len);
    CHECK(data != NULL);
    int ok = 0;
    for (size_t cut = 0; data && cut <= len; cut++) {
        owl_meta m;
        memset(&m, 0, sizeof m);
        owl_status s = owl_llama2c_tokenizer_read_mem("cut.bin", (const uint8_t *)data, cut, &m);
        if (s == OWL_OK) {
            ok++;
            owl_tokenizer *tok = NULL;
            if (owl_tokenizer_from_meta(&m, &tok) == OWL_OK) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (owl_tokenize(tok, "Hi <s> there", 12, true, true, &ids, &n) == OWL_OK) free(ids);
                owl_tokenizer_free(tok);
            }
        } else {
            CHECK(strstr(owl_last_error(), "cut.bin") != NULL);
        }
        owl_meta_free(&m);
    }
    CHECKF(ok == 512, "%d cuts read fine (512 token boundaries)", ok);
    free(data);
}

/* owl_tokenizer_load decides the kind of file from its bytes. */
static void test_load_dispatch(void) {
    owl_tokenizer *g = NULL, *b = NULL, *j = NULL;
    owl_status s = owl_tokenizer_load(testdata_path("models/stories260K.gguf"), &g);
    CHECKF(s == OWL_OK && g && owl_token_count(g) == 512, "GGUF: %s", owl_last_error());
    s = owl_tokenizer_load(testdata_path("tokenizers/tinystories512/tok512.bin"), &b);
    CHECKF(s == OWL_OK && b, "tok512.bin: %s", owl_last_error());
    const char *t = "Lily and Ben went to the park. \xe2\x9c\xa8";
    if (g && b) {
        int32_t *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        CHECK(owl_tokenize(g, t, strlen(t), true, false, &ia, &na) == OWL_OK);
        CHECK(owl_tokenize(b, t, strlen(t), true, false, &ib, &nb) == OWL_OK);
        CHECK(na == nb && na > 3 && memcmp(ia, ib, na * sizeof *ia) == 0);
        free(ia);
        free(ib);
    }
    /* a byte-level BPE tokenizer.json: streamed decode equals the whole decode */
    s = owl_tokenizer_load(testdata_path("tokenizers/llama3/tokenizer.json"), &j);
    CHECKF(s == OWL_OK && j && j->kind == OWL_TOK_BPE && owl_token_count(j) > 128000, "llama3: %s",
           owl_last_error());
    if (j) {
        const char *u = "Hello \xf0\x9f\xa6\x89 w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac!";
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(owl_tokenize(j, u, strlen(u), false, false, &ids, &n) == OWL_OK && n > 3);
        char *whole = NULL;
        CHECK(owl_detokenize(j, ids, n, &whole) == OWL_OK && whole && strcmp(whole, u) == 0);
        owl_detok *d = NULL;
        CHECK(owl_detok_new(j, &d) == OWL_OK);
        char acc[256] = "";
        size_t al = 0;
        for (size_t i = 0; d && i <= n; i++) {
            size_t len = 0;
            const char *o = i < n ? owl_detok_push(d, ids[i], &len) : owl_detok_flush(d, &len);
            CHECK(o != NULL);
            if (o && al + len < sizeof acc) {
                memcpy(acc + al, o, len);
                al += len;
            }
        }
        acc[al] = 0;
        CHECKF(strcmp(acc, u) == 0, "streamed [%s]", acc);
        owl_detok_free(d);
        free(whole);
        free(ids);
    }
    owl_tokenizer_free(g);
    owl_tokenizer_free(b);
    owl_tokenizer_free(j);
    /* something else */
    const char *dir = test_tmpdir("tokenizer_spm_junk");
    char *junk = path_join(dir, "junk.dat");
    FILE *f = fopen(junk, "wb");
    if (f) {
        fputs("\x7f\x45\x4c\x46 not a tokenizer", f);
        fclose(f);
    }
    owl_tokenizer *x = NULL;
    s = owl_tokenizer_load(junk, &x);
    CHECKF(s == OWL_ERR_FORMAT && x == NULL && strstr(owl_last_error(), "junk.dat"), "%s", owl_last_error());
    free(junk);
}

int main(void) {
    test_llama2();
    test_trained();
    test_unused();
    test_stories();
    test_streaming();
    test_bad_model();
    test_load_dispatch();
    test_bad_meta();
    return test_finish("test_tokenizer_spm");
}
