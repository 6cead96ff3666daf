/* Differential test of the Jinja interpreter itself: seeded random
 * templates (expressions, operators, filters, tests, methods, loops with
 * loop controls, namespaces, whitespace control) made and rendered by
 * tests/reference/render_template.py with jinja2; owl must render the same
 * bytes, or fail where jinja2 fails. Renderings that print a Python object
 * address ("<generator object ... at 0x...>") cannot be matched and are
 * skipped (owl refuses to print such objects). */
#include "chat/chat.h"
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    const char *tmp = test_tmpdir("chat_random");
    char *path = path_join(tmp, "random.json");
    int rc = run_cmd("'%s' '%s' random-templates '%s' 800 77", test_python(),
                     source_path("tests/reference/render_template.py"), path);
    CHECKF(rc == 0, "reference renderer failed (%d)", rc);
    json_error_t e;
    json_t *root = rc == 0 ? json_load_file(path, 0, &e) : NULL;
    CHECK(root != NULL);
    if (!root) return test_finish("test_chat_random");
    char *inputs = json_dumps(json_object_get(root, "inputs"), JSON_COMPACT);
    owl_template_opts opts = {.fixed_now = true, .now = json_integer_value(json_object_get(root, "now"))};
    json_t *cases = json_object_get(root, "cases");
    size_t n = json_array_size(cases), n_ok = 0, n_err = 0, skipped = 0, failures = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *src = json_object_get(c, "template"), *want = json_object_get(c, "output");
        bool want_ok = json_is_true(json_object_get(c, "ok"));
        if (want_ok && strstr(json_string_value(want), " object at 0x")) {
            skipped++;
            continue;
        }
        owl_template *t = NULL;
        char *got = NULL;
        size_t got_len = 0;
        owl_status s = owl_template_parse(json_string_value(src), json_string_length(src), &t);
        if (s == OWL_OK) s = owl_template_render_opts(t, inputs, &opts, &got, &got_len);
        bool same;
        if (want_ok) {
            n_ok++;
            same = s == OWL_OK && got_len == json_string_length(want) &&
                   memcmp(got, json_string_value(want), got_len) == 0;
        } else {
            n_err++;
            same = s != OWL_OK;
        }
        if (!same && failures++ < 10)
            fprintf(stderr, "case %zu: %s\n  template: %s\n  jinja2: %s\n  owl:    %s\n", i,
                    want_ok ? "output differs" : "jinja2 failed, owl rendered", json_string_value(src),
                    want_ok ? json_string_value(want) : json_string_value(json_object_get(c, "error")),
                    s == OWL_OK ? got : owl_last_error());
        CHECK(same);
        free(got);
        owl_template_free(t);
    }
    printf("%zu random templates: %zu rendered, %zu errors on both sides, %zu skipped, %zu failures\n", n, n_ok, n_err,
           skipped, failures);
    CHECK(n_ok > n / 4 && skipped < n / 10);
    free(inputs);
    free(path);
    json_decref(root);
    return test_finish("test_chat_random");
}
