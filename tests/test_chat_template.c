/* Chat templates against Python's jinja2: every real template in the test
 * data (Hugging Face and Ollama's collection) with a fixed set of
 * conversations and seeded random ones. The reference renderer
 * (tests/reference/render_template.py) writes the cases and jinja2's output;
 * owl's rendering must be byte-identical, and owl must fail where jinja2
 * fails. */
#include "chat/chat.h"
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void show_diff(const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t from = i > 60 ? i - 60 : 0;
    fprintf(stderr, "    first difference at byte %zu\n    want: ...%.120s\n    got:  ...%.120s\n", i, want + from,
            got + from);
}

int main(void) {
    const char *tmp = test_tmpdir("chat_template");
    char *cases_path = path_join(tmp, "cases.json");
    int rc = run_cmd("'%s' '%s' gen-cases '%s' '%s' --random 10 --seed 20240620", test_python(),
                     source_path("tests/reference/render_template.py"), testdata_path("templates"), cases_path);
    CHECKF(rc == 0, "reference renderer failed (%d)", rc);
    if (rc != 0) return test_finish("test_chat_template");
    json_error_t jerr;
    json_t *root = json_load_file(cases_path, 0, &jerr);
    CHECKF(root != NULL, "%s: %s", cases_path, jerr.text);
    if (!root) return test_finish("test_chat_template");
    json_t *templates = json_object_get(root, "templates"), *cases = json_object_get(root, "cases");
    owl_template_opts opts = {.fixed_now = true, .now = json_integer_value(json_object_get(root, "now"))};
    size_t nt = json_array_size(templates);
    CHECK(nt >= 40);
    owl_template **parsed = calloc(nt, sizeof *parsed);
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(templates, i);
        const char *src = json_string_value(json_object_get(t, "source"));
        owl_status s = owl_template_parse(src, json_string_length(json_object_get(t, "source")), &parsed[i]);
        CHECKF(s == OWL_OK, "%s: %s", json_string_value(json_object_get(t, "name")), owl_last_error());
    }
    size_t n = json_array_size(cases), n_ok = 0, n_err = 0, failures = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        size_t ti = (size_t)json_integer_value(json_object_get(c, "template"));
        const char *name = json_string_value(json_object_get(json_array_get(templates, ti), "name"));
        if (ti >= nt || !parsed[ti]) continue;
        char *inputs = json_dumps(json_object_get(c, "inputs"), JSON_COMPACT);
        bool want_ok = json_is_true(json_object_get(c, "ok"));
        char *got = NULL;
        size_t got_len = 0;
        owl_status s = owl_template_render_opts(parsed[ti], inputs, &opts, &got, &got_len);
        if (want_ok) {
            n_ok++;
            const char *want = json_string_value(json_object_get(c, "output"));
            size_t want_len = json_string_length(json_object_get(c, "output"));
            bool same = s == OWL_OK && got_len == want_len && memcmp(got, want, want_len) == 0;
            CHECKF(same, "case %zu (%s): %s", i, name, s ? owl_last_error() : "output differs");
            if (!same && s == OWL_OK && failures < 20) {
                fprintf(stderr, "    inputs: %.300s\n", inputs);
                show_diff(want, got);
            }
            if (!same) failures++;
        } else {
            n_err++;
            CHECKF(s != OWL_OK, "case %zu (%s): jinja2 failed (%s) but owl rendered", i, name,
                   json_string_value(json_object_get(c, "error")));
            if (s == OWL_OK) failures++;
            /* the message of raise_exception comes through */
            const char *jerrtxt = json_string_value(json_object_get(c, "error"));
            if (s != OWL_OK && strncmp(jerrtxt, "TemplateError: ", 15) == 0)
                CHECKF(strstr(owl_last_error(), jerrtxt + 15) != NULL, "case %zu: error '%s' lacks '%s'", i,
                       owl_last_error(), jerrtxt + 15);
        }
        free(got);
        free(inputs);
    }
    printf("%zu templates, %zu cases: %zu rendered, %zu errors expected; %zu failures\n", nt, n, n_ok, n_err, failures);
    CHECK(n >= 300);
    CHECK(n_ok > n / 2);
    for (size_t i = 0; i < nt; i++) owl_template_free(parsed[i]);
    free(parsed);
    json_decref(root);
    free(cases_path);
    return test_finish("test_chat_template");
}
