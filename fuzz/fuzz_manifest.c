/* libFuzzer target: owl.manifest.json as owl verify, owl license (a derived
 * model's carried-over licence) and the manifest reader of derived models
 * see it, and store names (ORG/NAME[@REVISION][/FILE]) resolved against a
 * small store. Input: the first line is a store name, the rest the manifest.
 * Any input must give a result or an error, never a crash, a leak or an
 * over-read. */
#include "govern/govern.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], store[128], manifest[128], model[128];

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_manifest: could not remove %s\n", dir);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/fuzz_manifest.XXXXXX");
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    snprintf(manifest, sizeof manifest, "%s/owl.manifest.json", dir);
    snprintf(model, sizeof model, "%s/model.gguf", dir);
    put(model, "GGUF not really");
    snprintf(store, sizeof store, "%s/store", dir);
    char p[512];
    snprintf(p, sizeof p, "%s/models--org--m/refs", store);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s/models--org--m/snapshots/c0ffee/sub'", p, store);
    if (system(cmd) != 0) abort();
    snprintf(p, sizeof p, "%s/models--org--m/refs/main", store);
    put(p, "c0ffee\n");
    snprintf(p, sizeof p, "%s/models--org--m/snapshots/c0ffee/a.gguf", store);
    put(p, "GGUF");
    snprintf(p, sizeof p, "%s/models--org--m/snapshots/c0ffee/sub/b.gguf", store);
    put(p, "GGUF");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) setup();
    const uint8_t *nl = memchr(data, '\n', size);
    size_t name_len = nl ? (size_t)(nl - data) : size;
    char *name = malloc(name_len + 1);
    if (!name) return 0;
    memcpy(name, data, name_len);
    name[name_len] = 0;
    char *path = NULL;
    (void)owl_store_is_name(name);
    if (owl_store_resolve(store, name, false, &path) == OWL_OK) free(path);
    if (owl_store_resolve(store, name, true, &path) == OWL_OK) free(path);
    free(name);

    size_t off = nl ? name_len + 1 : size;
    FILE *f = fopen(manifest, "wb");
    if (!f) return 0;
    fwrite(data + off, 1, size - off, f);
    fclose(f);
    owl_model_source ms;
    (void)owl_manifest_source(model, &ms);
    (void)owl_manifest_source(dir, &ms);
    (void)owl_manifest_verify(model, NULL, NULL);
    owl_license_report r;
    if (owl_license_detect(dir, &r) == OWL_OK) owl_license_report_free(&r);
    return 0;
}
