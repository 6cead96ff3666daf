/* Policies enforced by owl run --policy: models with a denied licence,
 * missing uses, unknown licences or files whose digest differs from the
 * pinned one are refused (exit 1, the policy file and the rule named);
 * allowed models run. Pinned digests are computed here with sha256sum, not
 * by owl. Bad policy files fail with a clear error. */
#include "format/format.h"
#include "govern/govern.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const char *tmp;

/* stories260K with general.license (and .name) set: a real runnable model. */
static char *model_with(const char *file, const char *lic, const char *name) {
    owl_weights ws;
    CHECKF(owl_gguf_read(testdata_path("models/stories260K.gguf"), &ws) == OWL_OK, "%s", owl_last_error());
    owl_meta_set_str(&ws.meta, "general.license", lic, strlen(lic));
    if (name) owl_meta_set_str(&ws.meta, "general.license.name", name, strlen(name));
    char *path = path_join(tmp, file);
    CHECKF(owl_gguf_write(path, &ws.meta, ws.w, ws.n, 0) == OWL_OK, "%s", owl_last_error());
    owl_weights_free(&ws);
    return path;
}

static char *policy(const char *file, const char *json) {
    char *path = path_join(tmp, file);
    CHECK(owl_write_file_atomic(path, json, strlen(json)) == OWL_OK);
    return path;
}

/* Runs owl run with the policy; returns the exit status, output in *out. */
static int run_with(const char *model, const char *pol, char **out) {
    int status;
    *out = run_capture(&status, "%s run '%s' -p 'Once' -n 4 -s 1 --policy '%s' 2>&1", owl_bin(), model, pol);
    return status;
}

static void expect_refused(const char *model, const char *pol, const char *rule, const char *also) {
    char *out;
    int st = run_with(model, pol, &out);
    const char *pname = strrchr(pol, '/') + 1;
    CHECKF(st == 1, "%s with %s: exit %d, want 1", model, pname, st);
    CHECKF(out && strstr(out, pname) && strstr(out, rule) && (!also || strstr(out, also)),
           "refusal does not name %s / %s / %s: %s", pname, rule, also ? also : "", out ? out : "");
    free(out);
}

static void expect_runs(const char *model, const char *pol) {
    char *out;
    int st = run_with(model, pol, &out);
    CHECKF(st == 0, "%s with %s refused: %s", model, pol, out ? out : "");
    free(out);
}

int main(void) {
    tmp = test_tmpdir("test_policy");
    char *nc = model_with("nc.gguf", "cc-by-nc-4.0", NULL);
    char *ap = model_with("ap.gguf", "apache-2.0", NULL);
    char *l2 = model_with("l2.gguf", "other", "llama2");
    const char *plain = testdata_path("models/stories260K.gguf"); /* no licence key */

    char *deny = policy("deny.json", "{\"deny_licenses\": [\"CC-BY-NC-4.0\"]}");
    expect_refused(nc, deny, "rule deny_licenses", "model licence CC-BY-NC-4.0 is denied");
    expect_runs(ap, deny);

    char *known = policy("known.json", "{\"require_known_license\": true}");
    expect_refused(plain, known, "rule require_known_license", NULL);
    expect_runs(ap, known);

    char *com = policy("commercial.json", "{\"allow\": [\"commercial\", \"derivatives\"]}");
    expect_refused(nc, com, "rule allow", "commercial use is not granted under CC-BY-NC-4.0");
    expect_runs(l2, com); /* conditional (700M MAU) counts by default */
    char *strict = policy("strict.json", "{\"allow\": [\"commercial\"], \"conditional_ok\": false}");
    expect_refused(l2, strict, "rule allow", "conditional under llama2-community");
    expect_runs(ap, strict);
    expect_refused(plain, com, "rule allow", "unknown");

    char *only = policy("only.json", "{\"allow_licenses\": [\"MIT\", \"Apache-2.0\"], \"require_osi\": true}");
    expect_runs(ap, only);
    expect_refused(l2, only, "rule allow_licenses", "llama2-community");
    char *ow = policy("ow.json", "{\"require_open_weight\": true, \"deny_use_restrictions\": true}");
    expect_runs(ap, ow);
    expect_refused(l2, ow, "rule deny_use_restrictions", NULL);

    /* pinned digests: sha256sum's digest of the file */
    int status;
    char *sum = run_capture(&status, "sha256sum '%s' | cut -c1-64", ap);
    CHECK(status == 0 && sum && strlen(sum) >= 64);
    if (sum) {
        sum[64] = 0;
        char json[512];
        snprintf(json, sizeof json, "{\"pinned_digests\": {\"ap.gguf\": \"%s\"}}", sum);
        char *pin = policy("pin.json", json);
        expect_runs(ap, pin);
        expect_refused(nc, pin, "rule pinned_digests", "nc.gguf is not pinned");
        sum[0] = sum[0] == '0' ? '1' : '0';
        snprintf(json, sizeof json, "{\"pinned_digests\": {\"ap.gguf\": \"%s\"}}", sum);
        char *bad = policy("pinbad.json", json);
        expect_refused(ap, bad, "rule pinned_digests", "ap.gguf has sha256");
        free(pin);
        free(bad);
        free(sum);
    }

    /* broken policy files: exit 1, the file and the key named */
    static const struct {
        const char *json, *needle;
    } broken[] = {
        {"{\"deny_licenses\": [\"MIT\"", "line"},
        {"{\"deny_license\": []}", "unknown key \"deny_license\""},
        {"{\"require_known_license\": \"yes\"}", "require_known_license"},
        {"{\"allow\": [\"commerce\"]}", "commerce"},
        {"{\"pinned_digests\": {\"a.gguf\": \"xyz\"}}", "pinned_digests[\"a.gguf\"]"},
        {"[1, 2]", "JSON object"},
        {"{\"deny_licenses\": [1]}", "deny_licenses"},
        {"{\"a\": 1, \"a\": 2}", "duplicate"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        char *p = policy("broken.json", broken[i].json);
        char *out;
        int st = run_with(ap, p, &out);
        CHECKF(st == 1 && out && strstr(out, "broken.json") && strstr(out, broken[i].needle),
               "broken policy %zu: exit %d: %s", i, st, out ? out : "");
        free(out);
        free(p);
    }
    char *out;
    CHECK(run_with(ap, "/nonexistent/policy.json", &out) == 1);
    free(out);

    /* the library call directly */
    owl_policy *p;
    CHECK(owl_policy_load(deny, &p) == OWL_OK);
    CHECK(owl_policy_check(p, nc) == OWL_ERR_RANGE);
    CHECK(strstr(owl_last_error(), "deny.json: rule deny_licenses") != NULL);
    CHECK(owl_policy_check(p, ap) == OWL_OK);
    owl_policy_free(p);

    free(nc), free(ap), free(l2), free(deny), free(known), free(com), free(strict), free(only), free(ow);
    return test_finish("test_policy");
}
