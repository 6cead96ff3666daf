/* Provenance of written models (govern/provenance.c):
 *  - owl_model_digest of a directory is the SHA-256 of sha256sum's own
 *    listing of its files, sorted by path (computed here by sha256sum);
 *  - owl_manifest_write_derived records the output (sha256sum's digest) and
 *    its source (digest, licence); owl verify then checks the output and
 *    catches a flipped byte; the licence comes back through
 *    owl_license_detect as "made from", known (MIT, from a licence text
 *    only the source has) or unknown with the source's reason;
 *  - broken "source" objects, a stale entry, a manifest naming missing
 *    files and a source path that is not UTF-8: errors naming the manifest
 *    or "unknown" with the reason, never a crash. */
#include "govern/govern.h"
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    CHECK(owl_write_file_atomic(p, text, strlen(text)) == OWL_OK);
    free(p);
}

/* sha256sum's digest of a file (first 64 characters of its output). */
static void sha256sum(const char *path, char hex[65]) {
    int status;
    char *out = run_capture(&status, "sha256sum '%s'", path);
    CHECK(status == 0 && out && strlen(out) >= 64);
    snprintf(hex, 65, "%.64s", out ? out : "");
    free(out);
}

static json_t *load_json(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    CHECKF(j != NULL, "%s: %s", p, e.text);
    free(p);
    return j;
}

static const char *src_str(json_t *entry, const char *key) {
    return json_string_value(json_object_get(json_object_get(entry, "source"), key));
}

int main(void) {
    const char *tmp = test_tmpdir("test_provenance");
    int status;
    char hex[65], want[65];

    /* a directory's digest against sha256sum's listing */
    char *src = path_join(tmp, "src");
    CHECK(run_cmd("mkdir -p '%s/sub/deeper' && printf one > '%s/b.txt' && printf two > '%s/sub/a.txt' && "
                  "printf three > '%s/sub/deeper/c.bin' && printf hidden > '%s/.hidden'",
                  src, src, src, src, src) == 0);
    char *lic = path_join(src, "LICENSE");
    CHECK(run_cmd("cp '%s' '%s'", testdata_path("licenses/licenses/MIT.spdx-license-list.txt"), lic) == 0);
    char *ref = run_capture(&status,
                            "cd '%s' && find . -type f ! -name '.*' | sed 's|^\\./||' | LC_ALL=C sort | "
                            "xargs sha256sum | sha256sum",
                            src);
    CHECK(status == 0 && ref && strlen(ref) >= 64);
    snprintf(want, sizeof want, "%.64s", ref ? ref : "");
    free(ref);
    CHECK(owl_model_digest(src, hex) == OWL_OK);
    CHECKF(strcmp(hex, want) == 0, "directory digest %s, sha256sum listing %s", hex, want);
    /* a file's digest is its SHA-256 */
    sha256sum(lic, want);
    CHECK(owl_model_digest(lic, hex) == OWL_OK && strcmp(hex, want) == 0);
    CHECK(owl_model_digest("/nonexistent/model", hex) == OWL_ERR_IO);

    /* a derived file: entry with sha256sum's digest and the source */
    char *out = path_join(tmp, "out");
    CHECK(run_cmd("mkdir -p '%s' && head -c 3000 /dev/urandom > '%s/model.bin'", out, out) == 0);
    char *model = path_join(out, "model.bin");
    CHECK(owl_manifest_write_derived(model, src, "owl test") == OWL_OK);
    json_t *m = load_json(out, "owl.manifest.json");
    json_t *entry = json_object_get(json_object_get(m, "files"), "model.bin");
    sha256sum(model, want);
    CHECK(json_is_string(json_object_get(entry, "sha256")) &&
          strcmp(json_string_value(json_object_get(entry, "sha256")), want) == 0);
    CHECK(owl_model_digest(src, hex) == OWL_OK);
    CHECK(src_str(entry, "sha256") && strcmp(src_str(entry, "sha256"), hex) == 0);
    CHECK(src_str(entry, "license") && strcmp(src_str(entry, "license"), "MIT") == 0);
    CHECK(src_str(entry, "tool") && strcmp(src_str(entry, "tool"), "owl test") == 0);
    CHECK(src_str(entry, "path") && src_str(entry, "path")[0] == '/'); /* absolute */
    json_decref(m);
    owl_model_source ms;
    CHECK(owl_manifest_source(model, &ms) == OWL_OK && ms.present && strcmp(ms.license, "MIT") == 0);
    CHECK(owl_manifest_verify(model, NULL, NULL) == OWL_OK);
    /* a flipped byte: verify names the file */
    CHECK(run_cmd("printf 'X' | dd of='%s' bs=1 seek=100 conv=notrunc 2>/dev/null", model) == 0);
    CHECK(owl_manifest_verify(model, NULL, NULL) == OWL_ERR_FORMAT && strstr(owl_last_error(), "model.bin has sha256"));
    /* the same size: still this file's entry; another size: stale, not used */
    CHECK(owl_manifest_source(model, &ms) == OWL_OK && ms.present);
    CHECK(run_cmd("printf more >> '%s'", model) == 0);
    CHECK(owl_manifest_source(model, &ms) == OWL_OK && !ms.present);

    /* a derived directory: the licence carried over, through owl_license_detect */
    char *dout = path_join(tmp, "dout");
    CHECK(run_cmd("mkdir -p '%s' && printf w > '%s/w.bin'", dout, dout) == 0);
    CHECK(owl_manifest_write_derived(dout, src, "owl test") == OWL_OK);
    owl_license_report r;
    CHECK(owl_license_detect(dout, &r) == OWL_OK);
    CHECKF(r.license && strcmp(r.license->id, "MIT") == 0, "%s", r.note);
    CHECK(r.n == 1 && r.src[0].kind == OWL_LIC_SRC_SOURCE && strstr(r.src[0].where, "made from"));
    owl_license_report_free(&r);
    CHECK(owl_manifest_verify(dout, NULL, NULL) == OWL_OK);
    /* a source without a licence: unknown, with the source's reason */
    CHECK(unlink(lic) == 0);
    CHECK(owl_manifest_write_derived(dout, src, "owl test") == OWL_OK);
    CHECK(owl_license_detect(dout, &r) == OWL_OK);
    CHECKF(!r.license && strstr(r.note, "the source's licence was unknown: no licence information found"), "%s",
           r.note);
    owl_license_report_free(&r);
    /* a manifest naming a file that is missing */
    CHECK(run_cmd("rm '%s/w.bin'", dout) == 0);
    CHECK(owl_manifest_verify(dout, NULL, NULL) == OWL_ERR_IO && strstr(owl_last_error(), "names w.bin, which is missing"));

    /* broken "source" objects: the manifest named; a licence report records it */
    static const char *const broken[] = {
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": 5, \"sha256\": \"%s\", \"license\": null}}",
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": \"abc\", \"license\": null}}",
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": \"%s\", \"license\": 7}}",
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": \"%s\", \"license\": null, "
        "\"license_note\": []}}",
        "{\"version\": 1, \"files\": {}, \"source\": \"from somewhere\"}",
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": \"%s\", \"license\": \"MIT\", "
        "\"path\": \"/y\"}}", /* a key given twice */
        "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\"",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, broken[i], want);
        put(dout, "owl.manifest.json", text);
        CHECKF(owl_manifest_source(dout, &ms) == OWL_ERR_FORMAT && strstr(owl_last_error(), "owl.manifest.json"),
               "broken source %zu: %s", i, owl_last_error());
        CHECK(owl_license_detect(dout, &r) == OWL_OK);
        CHECKF(!r.license && strstr(r.note, "could not be read"), "broken source %zu: %s", i, r.note);
        owl_license_report_free(&r);
    }
    /* an unknown licence id in the source: unknown, the id named */
    snprintf(hex, sizeof hex, "%s", want);
    char text[1024];
    snprintf(text, sizeof text,
             "{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": \"%s\", \"license\": "
             "\"WTFPL-9\"}}",
             hex);
    put(dout, "owl.manifest.json", text);
    CHECK(owl_license_detect(dout, &r) == OWL_OK);
    CHECKF(!r.license && strstr(r.note, "'WTFPL-9' is not a licence owl knows"), "%s", r.note);
    owl_license_report_free(&r);

    /* a source path that is not UTF-8 */
    char *bad = path_join(tmp, "caf\xe9");
    CHECK(run_cmd("printf x > '%s'", bad) == 0);
    CHECK(owl_manifest_write_derived(model, bad, "owl test") == OWL_ERR_ARG && strstr(owl_last_error(), "UTF-8"));
    /* a missing source */
    CHECK(owl_manifest_write_derived(model, "/nonexistent/src", "owl test") == OWL_ERR_IO &&
          strstr(owl_last_error(), "/nonexistent/src"));

    free(bad);
    free(dout);
    free(model);
    free(out);
    free(lic);
    free(src);
    return test_finish("test_provenance");
}
