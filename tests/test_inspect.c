/* owl inspect on the real models: values against the facts in
 * testdata/PROVENANCE.md and the architecture (parameter counts computed
 * here from the published dimensions), SHA-256 against testdata/SHA256SUMS
 * (made by sha256sum, not by owl), JSON that parses; bad input fails
 * cleanly. */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *sums;

/* The digest SHA256SUMS gives for ./rel, or NULL. */
static const char *sum_of(const char *rel) {
    static char hex[65];
    char pat[512];
    snprintf(pat, sizeof pat, "  ./%s\n", rel);
    const char *p = strstr(sums, pat);
    if (!p || p - sums < 64) return NULL;
    memcpy(hex, p - 64, 64);
    hex[64] = 0;
    return hex;
}

static json_t *inspect_json(const char *rel, const char *extra) {
    int status;
    char *out = run_capture(&status, "%s inspect --json %s '%s'", owl_bin(), extra, testdata_path(rel));
    CHECKF(status == 0, "owl inspect %s: exit %d", rel, status);
    json_error_t e;
    json_t *j = out ? json_loads(out, 0, &e) : NULL;
    CHECKF(j != NULL, "owl inspect --json %s: not JSON (%s)", rel, out ? e.text : "no output");
    free(out);
    return j;
}

static long long jint(json_t *o, const char *path) {
    /* "a.b.c" through objects */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, k);
    return json_is_integer(cur) ? (long long)json_integer_value(cur) : -1;
}

static const char *jstr(json_t *o, const char *a, const char *b) {
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* Llama parameters from its dimensions. */
static long long llama_params(long long dim, long long layers, long long heads, long long kv_heads, long long ffn,
                              long long vocab, bool tied) {
    long long hd = dim / heads;
    long long per_layer = dim * dim * 2 + 2 * dim * kv_heads * hd + 3 * dim * ffn + 2 * dim;
    return vocab * dim * (tied ? 1 : 2) + layers * per_layer + dim;
}

static void test_stories(void) {
    json_t *j = inspect_json("models/stories260K.gguf", "");
    if (!j) return;
    CHECK(strcmp(jstr(j, "architecture", NULL), "llama") == 0);
    /* PROVENANCE: dim 64, 5 layers, 8 heads, 4 KV heads, vocab 512; the
     * FFN width (172) comes from llama2.c's rule for dim 64 */
    long long want = llama_params(64, 5, 8, 4, 172, 512, false);
    CHECKF(jint(j, "parameters") == want, "parameters %lld, want %lld", jint(j, "parameters"), want);
    CHECK(jint(j, "dtypes.F32.tensors") == 48 && jint(j, "dtypes.F32.bytes") == 4 * want);
    CHECK(jint(j, "metadata.llama.embedding_length") == -1); /* keys with dots are not nested: look them up whole */
    json_t *meta = json_object_get(j, "metadata");
    CHECK(json_integer_value(json_object_get(meta, "llama.embedding_length")) == 64);
    CHECK(json_integer_value(json_object_get(meta, "llama.block_count")) == 5);
    CHECK(json_integer_value(json_object_get(meta, "llama.attention.head_count")) == 8);
    CHECK(json_integer_value(json_object_get(meta, "llama.attention.head_count_kv")) == 4);
    /* the file's own context_length key is what inspect reports (the GGUF
     * says 2048 where PROVENANCE gives llama2.c's 512 training length) */
    CHECK(jint(j, "context_length") == (long long)json_integer_value(json_object_get(meta, "llama.context_length")));
    CHECK(json_array_size(json_object_get(meta, "tokenizer.ggml.tokens")) == 512); /* complete in JSON */
    CHECK(jint(j, "tokenizer.tokens") == 512);
    CHECK(strcmp(jstr(j, "tokenizer", "model"), "llama") == 0);
    json_t *tok = json_object_get(j, "tokenizer");
    CHECK(json_is_false(json_object_get(tok, "chat_template")));
    CHECK(jint(tok, "bos.id") == 1 && strcmp(jstr(json_object_get(tok, "bos"), "piece", NULL), "<s>") == 0);
    CHECK(jint(tok, "eos.id") == 2 && strcmp(jstr(json_object_get(tok, "eos"), "piece", NULL), "</s>") == 0);
    CHECK(jint(tok, "unk.id") == 0 && strcmp(jstr(json_object_get(tok, "unk"), "piece", NULL), "<unk>") == 0);
    json_t *files = json_object_get(j, "files");
    CHECK(json_array_size(files) == 1);
    const char *want_sum = sum_of("models/stories260K.gguf");
    CHECK(want_sum && strcmp(jstr(json_array_get(files, 0), "sha256", NULL), want_sum) == 0);
    CHECK(strcmp(jstr(json_object_get(j, "license"), "license", NULL), "unknown") == 0);
    json_decref(j);

    j = inspect_json("models/stories260K.gguf", "--no-hash");
    if (j) CHECK(json_is_null(json_object_get(json_array_get(json_object_get(j, "files"), 0), "sha256")));
    json_decref(j);

    int status;
    char *out = run_capture(&status, "%s inspect '%s'", owl_bin(), testdata_path("models/stories260K.gguf"));
    CHECK(status == 0 && out && strstr(out, "architecture:      llama") && strstr(out, want_sum ? want_sum : "x"));
    CHECK(out && strstr(out, "[512 x string]")); /* long arrays summarised in the table */
    free(out);
}

static void test_wp(void) {
    /* PROVENANCE: dim 256, 4 layers, 8 heads, 4 KV heads, ffn 768, vocab
     * 32000, tied embeddings, context 256, 11.3M parameters */
    long long want = llama_params(256, 4, 8, 4, 768, 32000, true);
    CHECK(want == 11340032); /* wp/README.md: 11,340,032 parameters */
    json_t *j = inspect_json("models/wp/hf", "");
    if (j) {
        CHECK(strcmp(jstr(j, "format", NULL), "hf") == 0);
        CHECK(jint(j, "parameters") == want);
        CHECK(jint(j, "context_length") == 256);
        CHECK(jint(j, "tokenizer.tokens") == 32000);
        CHECK(strcmp(jstr(json_object_get(j, "license"), "license", "id"), "MIT") == 0);
        json_t *files = json_object_get(j, "files");
        CHECK(json_array_size(files) == 6);
        for (size_t i = 0; i < json_array_size(files); i++) {
            const char *p = jstr(json_array_get(files, i), "path", NULL);
            const char *base = strrchr(p, '/');
            char rel[256];
            snprintf(rel, sizeof rel, "models/wp/hf/%s", base ? base + 1 : p);
            const char *s = sum_of(rel);
            CHECKF(s && strcmp(jstr(json_array_get(files, i), "sha256", NULL), s) == 0, "sha256 of %s", rel);
        }
        json_decref(j);
    }
    j = inspect_json("models/wp/wp-Q4_K_M.gguf", "");
    if (j) {
        CHECK(jint(j, "parameters") == want);
        CHECK(jint(j, "dtypes.Q4_K.tensors") > 0 && jint(j, "dtypes.Q6_K.tensors") > 0);
        long long tensors = jint(j, "dtypes.Q4_K.tensors") + jint(j, "dtypes.Q6_K.tensors") +
                            (jint(j, "dtypes.F32.tensors") > 0 ? jint(j, "dtypes.F32.tensors") : 0);
        CHECK(tensors == jint(j, "tensors") && tensors == 4 * 9 + 2); /* tied: no output tensor */
        const char *s = sum_of("models/wp/wp-Q4_K_M.gguf");
        CHECK(s && strcmp(jstr(json_array_get(json_object_get(j, "files"), 0), "sha256", NULL), s) == 0);
        json_decref(j);
    }
}

static void test_bad(void) {
    int status;
    char *out = run_capture(&status, "%s inspect /nonexistent/x.gguf 2>&1", owl_bin());
    CHECK(status == 1 && out && strstr(out, "/nonexistent/x.gguf"));
    free(out);
    out = run_capture(&status, "%s inspect --frobnicate 2>&1", owl_bin());
    CHECK(status == 2);
    free(out);
    out = run_capture(&status, "%s inspect 2>&1", owl_bin());
    CHECK(status == 2);
    free(out);
    /* a truncated GGUF: a clear error, exit 1 */
    const char *dir = test_tmpdir("test_inspect");
    char *cut = path_join(dir, "cut.gguf");
    CHECK(run_cmd("head -c 5000 '%s' > '%s'", testdata_path("models/stories260K.gguf"), cut) == 0);
    out = run_capture(&status, "%s inspect '%s' 2>&1", owl_bin(), cut);
    CHECK(status == 1 && out && strstr(out, "cut.gguf"));
    free(out);
    free(cut);
}

int main(void) {
    size_t n = 0;
    FILE *f = fopen(testdata_path("SHA256SUMS"), "rb");
    CHECK(f != NULL);
    if (f) {
        sums = calloc(1, 1 << 16);
        n = fread(sums, 1, (1 << 16) - 1, f);
        fclose(f);
    }
    CHECK(n > 0);
    if (sums) {
        test_stories();
        test_wp();
        test_bad();
    }
    free(sums);
    return test_finish("test_inspect");
}
