/* One small template per feature of the Jinja interpreter
 * (tests/reference/chat_features.txt), each rendered by owl and by Python's
 * jinja2 (render_template.py batch): byte-identical output, or an error on
 * both sides. */
#include "chat/chat.h"
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1718900000

static const char *DEFAULT_INPUTS =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Sys\"}, {\"role\": \"user\", \"content\": \"Hi there\"},"
    " {\"role\": \"assistant\", \"content\": \"Hello!\", \"tool_calls\": [{\"type\": \"function\", \"function\":"
    " {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [1, 2.5, null, true], \"c\": \"\\u00e9\"}}}]}],"
    " \"x\": 5, \"f\": 2.5, \"s\": \"Hello World\", \"n\": null, \"t\": true, \"l\": [3, 1, 2],"
    " \"d\": {\"b\": 1, \"a\": 2}, \"u8\": \"na\\u00efve \\u2713 \\ud83e\\udd89\", \"words\": [\"b\", \"A\", \"c\", \"a\"],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

typedef struct fcase {
    char *name, *src, *inputs;
} fcase;

/* Reads "### name" sections of the features file. */
static size_t load_cases(const char *path, fcase *cases, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    size_t n = 0;
    char *p = strstr(text, "\n### ");
    while (p && n < max) {
        p += 5;
        char *eol = strchr(p, '\n');
        if (!eol) break;
        fcase *c = &cases[n++];
        c->name = strndup(p, (size_t)(eol - p));
        p = eol + 1;
        c->inputs = NULL;
        if (strncmp(p, "#inputs ", 8) == 0) {
            eol = strchr(p, '\n');
            c->inputs = strndup(p + 8, (size_t)(eol - p - 8));
            p = eol + 1;
        }
        char *next = strstr(p - 1, "\n### ");
        size_t body = next ? (size_t)(next - p) : strlen(p);
        if (!next && body && p[body - 1] == '\n') body--;
        c->src = strndup(p, body);
        if (strstr(c->name, "crlf")) { /* the same template with \r\n line ends */
            char *crlf = malloc(2 * body + 1), *o = crlf;
            for (size_t i = 0; i < body; i++) {
                if (p[i] == '\n') *o++ = '\r';
                *o++ = p[i];
            }
            *o = 0;
            free(c->src);
            c->src = crlf;
        }
        p = next;
    }
    return n;
}

int main(void) {
    static fcase cases[256];
    size_t n = load_cases(source_path("tests/reference/chat_features.txt"), cases, 256);
    CHECKF(n >= 40, "only %zu feature cases", n);
    const char *tmp = test_tmpdir("chat_features");
    char *in_path = path_join(tmp, "in.json"), *out_path = path_join(tmp, "out.json");
    json_t *spec = json_object(), *arr = json_array();
    json_object_set_new(spec, "now", json_integer(NOW));
    for (size_t i = 0; i < n; i++) {
        json_error_t e;
        json_t *inputs = json_loads(cases[i].inputs ? cases[i].inputs : DEFAULT_INPUTS, 0, &e);
        CHECKF(inputs != NULL, "%s: inputs: %s", cases[i].name, e.text);
        json_t *c = json_object();
        json_object_set_new(c, "template", json_string(cases[i].src));
        json_object_set_new(c, "inputs", inputs ? inputs : json_object());
        json_array_append_new(arr, c);
    }
    json_object_set_new(spec, "cases", arr);
    CHECK(json_dump_file(spec, in_path, 0) == 0);
    json_decref(spec);
    int rc = run_cmd("'%s' '%s' batch '%s' '%s'", test_python(), source_path("tests/reference/render_template.py"),
                     in_path, out_path);
    CHECKF(rc == 0, "reference renderer failed (%d)", rc);
    json_error_t e;
    json_t *res = rc == 0 ? json_load_file(out_path, 0, &e) : NULL;
    CHECK(res != NULL && json_array_size(res) == n);
    owl_template_opts opts = {.fixed_now = true, .now = NOW};
    size_t n_err = 0;
    for (size_t i = 0; res && i < n; i++) {
        json_t *r = json_array_get(res, i);
        bool want_ok = json_is_true(json_object_get(r, "ok"));
        const char *want = json_string_value(json_object_get(r, "output"));
        size_t want_len = json_string_length(json_object_get(r, "output"));
        owl_template *t = NULL;
        char *got = NULL;
        size_t got_len = 0;
        owl_status s = owl_template_parse(cases[i].src, strlen(cases[i].src), &t);
        if (s == OWL_OK)
            s = owl_template_render_opts(t, cases[i].inputs ? cases[i].inputs : DEFAULT_INPUTS, &opts, &got, &got_len);
        if (want_ok) {
            bool same = s == OWL_OK && got_len == want_len && memcmp(got, want, want_len) == 0;
            CHECKF(same, "%s: %s\n  want: %s\n  got:  %s", cases[i].name, s ? owl_last_error() : "output differs", want,
                   got ? got : "(error)");
        } else {
            n_err++;
            CHECKF(s != OWL_OK, "%s: jinja2 failed (%s) but owl rendered: %s", cases[i].name,
                   json_string_value(json_object_get(r, "error")), got);
            if (s != OWL_OK) printf("%-50s owl: %s\n", cases[i].name, owl_last_error());
        }
        /* the case names say which ones jinja2 must reject */
        CHECKF(want_ok == (strstr(cases[i].name, "errors too") == NULL && strcmp(cases[i].name, "raise_exception") != 0),
               "%s: jinja2 %s", cases[i].name, want_ok ? "rendered" : json_string_value(json_object_get(r, "error")));
        free(got);
        owl_template_free(t);
    }
    printf("%zu feature templates, %zu expected errors\n", n, n_err);
    json_decref(res);
    for (size_t i = 0; i < n; i++) {
        free(cases[i].name);
        free(cases[i].src);
        free(cases[i].inputs);
    }
    free(in_path);
    free(out_path);
    return test_finish("test_chat_features");
}
