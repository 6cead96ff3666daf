/* llama2.c checkpoints: stories260K.bin read with tok512.bin, checked against
 * PROVENANCE's facts and, tensor by tensor and byte for byte, against
 * stories260K.gguf read by the GGUF reader (an independent check of both
 * readers); the tokenizer against the GGUF's vocabulary and llama2.c's own
 * greedy output; bad checkpoints and tokenizer files. */
#include "testutil.h"

#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *read_all(const char *path, size_t *len) {
    char *d = NULL;
    if (owl_read_file(path, &d, len) != OWL_OK) return NULL;
    return (uint8_t *)d;
}

static bool write_all(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static int64_t meta_int(const owl_meta *m, const char *key) {
    int64_t v = -1;
    if (!owl_meta_get_i64(m, key, &v)) return -1;
    return v;
}

static void test_read(void) {
    owl_weights ws;
    owl_status s = owl_llama2c_read(testdata_path("models/stories260K.bin"),
                                    testdata_path("tokenizers/tinystories512/tok512.bin"), &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s != OWL_OK) return;
    CHECK(ws.format && strcmp(ws.format, "llama2c") == 0);
    const owl_meta *m = &ws.meta;
    owl_str arch;
    CHECK(owl_meta_get_str(m, "general.architecture", &arch) && owl_str_eq(arch, "llama"));
    CHECK(meta_int(m, "llama.embedding_length") == 64);
    CHECK(meta_int(m, "llama.block_count") == 5);
    CHECK(meta_int(m, "llama.attention.head_count") == 8);
    CHECK(meta_int(m, "llama.attention.head_count_kv") == 4);
    CHECK(meta_int(m, "llama.context_length") == 512);
    CHECK(meta_int(m, "llama.rope.dimension_count") == 8);
    int64_t ffn = meta_int(m, "llama.feed_forward_length");
    CHECK(ffn > 0);
    double eps = 0, base = 0;
    CHECK(owl_meta_get_f64(m, "llama.attention.layer_norm_rms_epsilon", &eps) && eps > 0.99e-5 && eps < 1.01e-5);
    CHECK(owl_meta_get_f64(m, "llama.rope.freq_base", &base) && base == 10000.0);
    const owl_meta_value *toks = owl_meta_find(m, "tokenizer.ggml.tokens");
    CHECK(toks && toks->type == OWL_META_ARRAY && toks->arr.count == 512);
    CHECK(meta_int(m, "tokenizer.ggml.bos_token_id") == 1 && meta_int(m, "tokenizer.ggml.eos_token_id") == 2);

    /* 1 embedding + 9 per layer + final norm; the classifier is shared */
    CHECKF(ws.n == 1 + 9 * 5 + 1, "%zu tensors", ws.n);
    CHECK(owl_weights_find(&ws, "output.weight") == NULL);
    const owl_weight *e = owl_weights_find(&ws, "token_embd.weight");
    CHECK(e && e->dtype == OWL_F32 && e->n_dims == 2 && e->ne[0] == 64 && e->ne[1] == 512);
    const owl_weight *k = owl_weights_find(&ws, "blk.4.attn_k.weight");
    CHECK(k && k->ne[0] == 64 && k->ne[1] == 32 && k->nbytes == 64 * 32 * 4);
    const owl_weight *dn = owl_weights_find(&ws, "blk.0.ffn_down.weight");
    CHECK(dn && dn->ne[0] == ffn && dn->ne[1] == 64);
    const owl_weight *nrm = owl_weights_find(&ws, "blk.2.ffn_norm.weight");
    CHECK(nrm && nrm->n_dims == 1 && nrm->ne[0] == 64);

    /* byte for byte against the GGUF file */
    owl_weights g;
    s = owl_gguf_read(testdata_path("models/stories260K.gguf"), &g);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        int same = 0;
        for (size_t i = 0; i < ws.n; i++) {
            const owl_weight *a = &ws.w[i];
            const owl_weight *b = owl_weights_find(&g, a->name);
            CHECKF(b != NULL, "%s is not in the GGUF", a->name);
            if (!b) continue;
            bool eq = a->dtype == b->dtype && a->n_dims == b->n_dims && a->nbytes == b->nbytes &&
                      memcmp(a->ne, b->ne, sizeof a->ne) == 0 && memcmp(a->data, b->data, a->nbytes) == 0;
            CHECKF(eq, "%s differs from the GGUF's", a->name);
            same += eq;
        }
        fprintf(stderr, "%d of %zu tensors equal the GGUF's byte for byte (GGUF has %zu)\n", same, ws.n, g.n);
        for (size_t i = 0; i < g.n; i++)
            CHECKF(owl_weights_find(&ws, g.w[i].name) != NULL || strcmp(g.w[i].name, "output.weight") == 0,
                   "GGUF tensor %s is missing from the llama2.c table", g.w[i].name);
        /* the header facts agree with the GGUF's keys */
        static const char *keys[] = {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                                     "llama.attention.head_count", "llama.attention.head_count_kv",
                                     "llama.rope.dimension_count"}; /* the GGUF says context 2048 */
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            CHECKF(meta_int(&g.meta, keys[i]) == meta_int(m, keys[i]), "%s: GGUF %lld, llama2c %lld", keys[i],
                   (long long)meta_int(&g.meta, keys[i]), (long long)meta_int(m, keys[i]));

        /* the two vocabularies: same pieces and scores; same encodings */
        owl_tokenizer *ta = NULL, *tb = NULL;
        CHECKF(owl_tokenizer_from_meta(m, &ta) == OWL_OK, "%s", owl_last_error());
        CHECKF(owl_tokenizer_from_meta(&g.meta, &tb) == OWL_OK, "%s", owl_last_error());
        if (ta && tb) {
            int agree = 0;
            for (int i = 0; i < 512; i++) {
                size_t la, lb;
                const char *pa = owl_token_piece(ta, i, &la), *pb = owl_token_piece(tb, i, &lb);
                agree += pa && pb && la == lb && memcmp(pa, pb, la) == 0 &&
                         ta->vocab.scores[i] == tb->vocab.scores[i] && ta->vocab.types[i] == tb->vocab.types[i];
            }
            CHECKF(agree == 512, "tok512.bin and the GGUF vocabulary agree on %d of 512 tokens", agree);
            const char *texts[] = {"Once upon a time, there was a little girl named Lily.",
                                   "  Tom said: \"Let's go!\"\n\tThe end 42 \xe2\x9c\xa8 \xe6\x97\xa5"};
            for (int t = 0; t < 2; t++) {
                int32_t *ia = NULL, *ib = NULL;
                size_t na = 0, nb = 0;
                CHECK(owl_tokenize(ta, texts[t], strlen(texts[t]), true, false, &ia, &na) == OWL_OK);
                CHECK(owl_tokenize(tb, texts[t], strlen(texts[t]), true, false, &ib, &nb) == OWL_OK);
                CHECK(na == nb && na > 2 && memcmp(ia, ib, na * sizeof *ia) == 0);
                free(ia);
                free(ib);
            }
        }
        owl_tokenizer_free(ta);
        owl_tokenizer_free(tb);
        owl_weights_free(&g);
    }
    owl_weights_free(&ws);
}

/* llama2.c's run.c output for its greedy 200 tokens equals our decode of them. */
static void test_greedy_decode(void) {
    owl_tokenizer *tok = NULL;
    owl_status s = owl_tokenizer_load(testdata_path("tokenizers/tinystories512/tok512.bin"), &tok);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    size_t il = 0, tl = 0;
    char *ids_txt = (char *)read_all(testdata_path("vectors/stories260K/greedy_n200.ids.txt"), &il);
    char *want = (char *)read_all(testdata_path("vectors/stories260K/greedy_n200.stdout.txt"), &tl);
    CHECK(ids_txt && want);
    if (tok && ids_txt && want) {
        int32_t ids[256];
        size_t n = 0;
        ids[n++] = 1; /* BOS */
        char *p = ids_txt, *end;
        for (long v; n < 256 && (v = strtol(p, &end, 10), end != p); p = end) ids[n++] = (int32_t)v;
        CHECKF(n == 201, "%zu ids", n);
        char *text = NULL;
        CHECK(owl_detokenize(tok, ids, n, &text) == OWL_OK);
        /* run.c ends its output with a newline of its own */
        if (tl > 0 && want[tl - 1] == '\n') want[--tl] = 0;
        CHECKF(text && strcmp(text, want) == 0, "decode:\n[%s]\nrun.c:\n[%s]", text ? text : "", want);
        free(text);
    }
    free(ids_txt);
    free(want);
    owl_tokenizer_free(tok);
}

static void expect_fail(const char *label, const char *ckpt, const char *tokp, const char *must_name) {
    owl_weights ws;
    owl_status s = owl_llama2c_read(ckpt, tokp, &ws);
    const char *err = owl_last_error();
    CHECKF(s != OWL_OK, "%s: accepted", label);
    CHECKF(s == OWL_OK || strstr(err, must_name) != NULL, "%s: error [%s] does not name %s", label, err, must_name);
    if (s != OWL_OK) fprintf(stderr, "  ok, %s rejected: %s\n", label, err);
    if (s == OWL_OK) owl_weights_free(&ws);
}

static void put_i32(uint8_t *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

static void test_bad(void) {
    const char *dir = test_tmpdir("llama2c");
    size_t cl = 0, tl = 0;
    uint8_t *ck = read_all(testdata_path("models/stories260K.bin"), &cl);
    uint8_t *tk = read_all(testdata_path("tokenizers/tinystories512/tok512.bin"), &tl);
    CHECK(ck && tk && cl > 28 && tl > 8);
    if (!ck || !tk) return;
    char *tok512 = strdup(testdata_path("tokenizers/tinystories512/tok512.bin")); /* testdata_path's buffers rotate */
    char *bad = path_join(dir, "bad.bin");
    char *badtok = path_join(dir, "badtok.bin");

    /* beside: tokenizer.bin next to the checkpoint */
    char *beside = path_join(dir, "model.bin"), *beside_tok = path_join(dir, "tokenizer.bin");
    CHECK(write_all(beside, ck, cl));
    owl_weights ws;
    expect_fail("no tokenizer.bin beside", beside, NULL, "tokenizer.bin");
    CHECK(write_all(beside_tok, tk, tl));
    owl_status s = owl_llama2c_read(beside, NULL, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) owl_weights_free(&ws);

    /* truncated and size mismatches */
    size_t cuts[] = {0, 3, 27, 28, 100, cl / 2, cl - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(write_all(bad, ck, cuts[i]));
        char label[64];
        snprintf(label, sizeof label, "checkpoint cut at %zu", cuts[i]);
        expect_fail(label, bad, tok512, "bad.bin");
    }
    uint8_t *big = malloc(cl + 4);
    memcpy(big, ck, cl);
    memset(big + cl, 0, 4);
    CHECK(write_all(bad, big, cl + 4));
    expect_fail("4 bytes too many", bad, tok512, "implies");

    /* header fields: index, value, what the error must name */
    struct {
        int field;
        int32_t value;
        const char *name;
    } hdr[] = {
        {0, 0, "dim"},           {0, -64, "dim"},           {0, 1 << 30, "dim"},        {1, 0, "hidden_dim"},
        {1, -5, "hidden_dim"},   {2, 0, "n_layers"},        {2, 100000, "n_layers"},    {3, 0, "n_heads"},
        {3, 7, "n_heads"},       {3, 128, "n_heads"},       {4, 0, "n_kv_heads"},       {4, 3, "n_kv_heads"},
        {4, 16, "n_kv_heads"},   {5, 0, "vocab_size"},      {5, -512, "implies"},       {5, 513, "implies"},
        {5, INT32_MIN, "vocab_size"}, {6, 0, "seq_len"},    {6, -1, "seq_len"},         {6, 1000, "implies"},
        {0, 1 << 20, "implies"}, {3, 64, "odd"},
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        uint8_t *c = malloc(cl);
        memcpy(c, ck, cl);
        put_i32(c + 4 * hdr[i].field, hdr[i].value);
        CHECK(write_all(bad, c, cl));
        char label[96];
        snprintf(label, sizeof label, "header field %d = %d", hdr[i].field, (int)hdr[i].value);
        expect_fail(label, bad, tok512, hdr[i].name);
        free(c);
    }
    /* unshared classifier: a negative vocab_size with the extra matrix present reads fine */
    uint8_t *uns = malloc(cl + 512 * 64 * 4);
    memcpy(uns, ck, cl);
    memcpy(uns + cl, ck + 28, 512 * 64 * 4);
    put_i32(uns + 20, -512);
    CHECK(write_all(bad, uns, cl + 512 * 64 * 4));
    s = owl_llama2c_read(bad, tok512, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        const owl_weight *o = owl_weights_find(&ws, "output.weight");
        const owl_weight *e = owl_weights_find(&ws, "token_embd.weight");
        CHECK(o && e && o->ne[0] == 64 && o->ne[1] == 512 && memcmp(o->data, e->data, o->nbytes) == 0);
        CHECK(meta_int(&ws.meta, "llama.vocab_size") == 512);
        owl_weights_free(&ws);
    }
    free(uns);

    /* tokenizer.bin problems */
    CHECK(write_all(badtok, tk, tl / 2));
    expect_fail("tokenizer.bin cut in half", testdata_path("models/stories260K.bin"), badtok, "badtok.bin");
    CHECK(write_all(badtok, tk, 2));
    expect_fail("tokenizer.bin of 2 bytes", testdata_path("models/stories260K.bin"), badtok, "badtok.bin");
    uint8_t *t2 = malloc(tl);
    memcpy(t2, tk, tl);
    put_i32(t2 + 4 + 4, 0x7fffffff); /* first token's length */
    CHECK(write_all(badtok, t2, tl));
    expect_fail("tokenizer.bin huge length", testdata_path("models/stories260K.bin"), badtok, "length");
    memcpy(t2, tk, tl);
    put_i32(t2 + 4 + 4, -3);
    CHECK(write_all(badtok, t2, tl));
    expect_fail("tokenizer.bin negative length", testdata_path("models/stories260K.bin"), badtok, "length");
    memcpy(t2, tk, tl);
    put_i32(t2, 0);
    CHECK(write_all(badtok, t2, tl));
    expect_fail("tokenizer.bin max_token_length 0", testdata_path("models/stories260K.bin"), badtok, "max_token_length");
    free(t2);
    expect_fail("vocab size mismatch", testdata_path("models/stories260K.bin"),
                testdata_path("tokenizers/llama2/tokenizer.bin"), "vocab_size");
    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    CHECK(write_all(badtok, tk, tl - 1));
    s = owl_llama2c_tokenizer_read(badtok, &meta);
    CHECK(s != OWL_OK && strstr(owl_last_error(), "badtok.bin"));
    owl_meta_free(&meta);
    memset(&meta, 0, sizeof meta);
    s = owl_llama2c_tokenizer_read(tok512, &meta);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    owl_meta_free(&meta);

    free(big);
    free(tok512);
    free(bad);
    free(badtok);
    free(beside);
    free(beside_tok);
    free(ck);
    free(tk);
}

int main(void) {
    test_read();
    test_greedy_decode();
    test_bad();
    return test_finish("test_llama2c");
}
