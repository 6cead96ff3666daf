/* Integrity manifests: owl_manifest_write records size and SHA-256 (checked
 * against testdata/SHA256SUMS, made by sha256sum); owl verify catches a
 * flipped byte, a truncated file, a missing file, a broken manifest, and
 * works from a sha256sum list and a Hugging Face index. */
#include "govern/govern.h"
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *sum_of(const char *sums, const char *rel) {
    static char hex[65];
    char pat[256];
    snprintf(pat, sizeof pat, "  ./%s\n", rel);
    const char *p = strstr(sums, pat);
    if (!p || p - sums < 64) return NULL;
    memcpy(hex, p - 64, 64);
    hex[64] = 0;
    return hex;
}

static void put(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    CHECK(owl_write_file_atomic(p, text, strlen(text)) == OWL_OK);
    free(p);
}

static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static int verify_cli(const char *model, char **out) {
    int status;
    *out = run_capture(&status, "%s verify '%s' 2>&1", owl_bin(), model);
    return status;
}

int main(void) {
    const char *tmp = test_tmpdir("test_verify");
    char *sums = NULL;
    size_t n;
    CHECK(owl_read_file(testdata_path("SHA256SUMS"), &sums, &n) == OWL_OK);
    if (!sums) return test_finish("test_verify");

    /* a directory model: a copy of stories260K.gguf and tok512.bin */
    char *d = path_join(tmp, "m");
    mkdir(d, 0755);
    CHECK(run_cmd("cp '%s' '%s/model.gguf' && cp '%s' '%s/tok512.bin'", testdata_path("models/stories260K.gguf"), d,
                  testdata_path("tokenizers/tinystories512/tok512.bin"), d) == 0);
    CHECKF(owl_manifest_write(d) == OWL_OK, "%s", owl_last_error());
    char *mpath = path_join(d, "owl.manifest.json");
    json_error_t je;
    json_t *m = json_load_file(mpath, 0, &je);
    CHECK(m != NULL);
    json_t *files = json_object_get(m, "files");
    CHECK(json_object_size(files) == 2);
    const char *want = sum_of(sums, "models/stories260K.gguf");
    CHECK(want && strcmp(json_string_value(json_object_get(json_object_get(files, "model.gguf"), "sha256")), want) == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(files, "model.gguf"), "size")) == 1185376);
    want = sum_of(sums, "tokenizers/tinystories512/tok512.bin");
    CHECK(want && strcmp(json_string_value(json_object_get(json_object_get(files, "tok512.bin"), "sha256")), want) == 0);
    json_decref(m);

    char *out;
    CHECK(verify_cli(d, &out) == 0 && out && strstr(out, "every file matches"));
    free(out);
    CHECK(owl_manifest_verify(d, NULL, NULL) == OWL_OK);

    /* one flipped byte deep in the tensors: caught and named */
    char *gg = path_join(d, "model.gguf");
    flip_byte(gg, 600000);
    CHECK(verify_cli(d, &out) == 1 && out && strstr(out, "model.gguf has sha256"));
    free(out);
    CHECK(owl_manifest_verify(d, NULL, NULL) == OWL_ERR_FORMAT);
    flip_byte(gg, 600000);
    CHECK(owl_manifest_verify(d, NULL, NULL) == OWL_OK);
    /* truncated: the size names it before hashing */
    CHECK(run_cmd("truncate -s 1000 '%s/tok512.bin'", d) == 0);
    CHECK(verify_cli(d, &out) == 1 && out && strstr(out, "tok512.bin is 1000 bytes"));
    free(out);
    /* missing file */
    char *tok = path_join(d, "tok512.bin");
    unlink(tok);
    CHECK(verify_cli(d, &out) == 1 && out && strstr(out, "names tok512.bin, which is missing"));
    free(out);

    /* broken manifests */
    static const char *const broken[] = {
        "{\"version\": 1, \"files\": {\"model.gguf\": {\"size\": 1, \"sha256\": \"zz\"}}}",
        "{\"version\": 1, \"files\": {\"../etc/passwd\": {\"size\": 1, \"sha256\": "
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}}}",
        "{\"version\": 2, \"files\": {}}",
        "{\"version\": 1, \"files\": {\"model.gguf\": {\"size\": -5, \"sha256\": "
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}}}",
        "not json",
        "{\"version\": 1, \"files\": {}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        put(d, "owl.manifest.json", broken[i]);
        CHECKF(verify_cli(d, &out) == 1 && out && strstr(out, "owl verify"), "broken manifest %zu: %s", i,
               out ? out : "");
        free(out);
    }
    unlink(mpath);
    CHECK(verify_cli(d, &out) == 1 && out && strstr(out, "no owl.manifest.json"));
    free(out);

    /* a single file: its entry, merged into the directory's manifest */
    CHECK(owl_manifest_write(gg) == OWL_OK);
    CHECK(run_cmd("cp '%s' '%s/tok512.bin'", testdata_path("tokenizers/tinystories512/tok512.bin"), d) == 0);
    CHECK(owl_manifest_write(tok) == OWL_OK);
    m = json_load_file(mpath, 0, &je);
    CHECK(m && json_object_size(json_object_get(m, "files")) == 2);
    json_decref(m);
    CHECK(verify_cli(gg, &out) == 0);
    free(out);
    flip_byte(tok, 10);
    CHECK(verify_cli(gg, &out) == 0); /* only model.gguf's entry is checked */
    free(out);
    CHECK(verify_cli(tok, &out) == 1 && out && strstr(out, "tok512.bin has sha256"));
    free(out);
    /* --write through the CLI */
    int status;
    out = run_capture(&status, "%s verify --write '%s' 2>&1", owl_bin(), d);
    CHECK(status == 0);
    free(out);
    CHECK(verify_cli(d, &out) == 0);
    free(out);

    /* a sha256sum list and a Hugging Face index */
    char *h = path_join(tmp, "hf");
    mkdir(h, 0755);
    put(h, "model-00001-of-00002.safetensors", "shard one");
    put(h, "model-00002-of-00002.safetensors", "shard two");
    put(h, "model.safetensors.index.json",
        "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
        "\"b\": \"model-00002-of-00002.safetensors\"}}");
    CHECK(run_cmd("cd '%s' && sha256sum model-0000* > SHA256SUMS", h) == 0);
    CHECK(verify_cli(h, &out) == 0);
    free(out);
    CHECK(run_cmd("printf 'shard tw0' > '%s/model-00002-of-00002.safetensors'", h) == 0);
    CHECK(verify_cli(h, &out) == 1 && out && strstr(out, "model-00002-of-00002.safetensors has sha256"));
    free(out);
    char *s2 = path_join(h, "model-00002-of-00002.safetensors");
    unlink(s2);
    CHECK(verify_cli(h, &out) == 1 && out && strstr(out, "index.json names model-00002-of-00002.safetensors"));
    free(out);
    put(h, "SHA256SUMS", "not a sum line\n");
    put(h, "model-00002-of-00002.safetensors", "shard two");
    CHECK(verify_cli(h, &out) == 1 && out && strstr(out, "SHA256SUMS: line 1"));
    free(out);

    CHECK(verify_cli("/nonexistent/model", &out) == 1);
    free(out);
    free(s2), free(h), free(tok), free(gg), free(mpath), free(d), free(sums);
    return test_finish("test_verify");
}
