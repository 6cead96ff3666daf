/* Bad templates and bad inputs: each is an error naming what is wrong and
 * where (line:column), never a crash, a hang or a silent different output. */
#include "chat/chat.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static const char *INPUTS =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi\"}],"
    " \"x\": 1, \"add_generation_prompt\": true}";

/* Parse (and render when it parses); expects an error whose text contains
 * every one of the needles (NULL-terminated). */
static void expect_error(const char *src, size_t len, const char *inputs, const char *n1, const char *n2) {
    owl_template *t = NULL;
    char *out = NULL;
    owl_status s = owl_template_parse(src, len, &t);
    if (s == OWL_OK) s = owl_template_render(t, inputs ? inputs : INPUTS, &out, NULL);
    CHECKF(s != OWL_OK, "%.80s: rendered '%.80s'", src, out ? out : "");
    if (s != OWL_OK) {
        const char *e = owl_last_error();
        CHECKF(n1 == NULL || strstr(e, n1), "%.80s: error '%s' lacks '%s'", src, e, n1);
        CHECKF(n2 == NULL || strstr(e, n2), "%.80s: error '%s' lacks '%s'", src, e, n2);
    }
    free(out);
    owl_template_free(t);
}

#define ERR(src, n1, n2) expect_error(src, strlen(src), NULL, n1, n2)

static char *repeat(const char *a, int n, const char *mid, const char *b) {
    size_t la = strlen(a), lb = strlen(b), lm = strlen(mid);
    char *s = malloc(la * (size_t)n + lm + lb * (size_t)n + 1), *p = s;
    for (int i = 0; i < n; i++, p += la) memcpy(p, a, la);
    memcpy(p, mid, lm);
    p += lm;
    for (int i = 0; i < n; i++, p += lb) memcpy(p, b, lb);
    *p = 0;
    return s;
}

int main(void) {
    /* unclosed tags and blocks */
    ERR("abc {{ x", "1:5", "unclosed");
    ERR("{% if x %}yes", "1:4", "endif");
    ERR("a\n{% for m in messages %}{{ m }}", "2:4", "endfor");
    ERR("{# never closed", "1:1", "comment");
    ERR("{% raw %}abc", "1:1", "endraw");
    ERR("{{ 'unterminated }}", "1:4", "unterminated string");
    ERR("{% macro f() %}x", "macro", "endmacro");
    ERR("{% set x %}abc", "set", "endset");
    /* unknown or unsupported things name themselves and their place */
    ERR("line1\n  {{ x|frobnicate }}", "2:8", "frobnicate");
    ERR("é{{ x|bad }}", "1:7", "'bad'");
    ERR("{% frob %}", "1:4", "frob");
    ERR("{% include 'other.jinja' %}", "1:4", "include");
    ERR("{% extends 'base' %}", "1:4", "extends");
    ERR("{{ x is frob }}", "1:9", "frob");
    ERR("{{ 'a'.zfill(3) }}", "1:7", "str.zfill");
    ERR("{{ {'a': 1}.copy() }}", "dict.copy", NULL);
    ERR("{{ cycler(1, 2) }}", "1:10", "cycler");
    ERR("{% for i in l recursive %}{% endfor %}", "recursive", NULL);
    ERR("{{ '%s %s' % 1 }}", "1:12", "not enough arguments");
    ERR("{{ '%*d' % (1, 2) }}", "1:10", "not supported");
    ERR("{{ f(*args) }}", "not supported", NULL);
    ERR("{% for i in [1] %}{{ loop.changed(i) }}{% endfor %}", "loop.changed", NULL);
    /* invalid syntax */
    ERR("{{ 1 + }}", "1:8", "unexpected");
    ERR("{% if %}{% endif %}", "1:7", "unexpected");
    ERR("{% for in x %}{% endfor %}", "1:11", "'in'");
    ERR("{{ a b }}", "1:6", "expected '}}'");
    ERR("{% set %}", "1:8", "expected a name");
    ERR("{{ ) }}", "1:4", "unexpected closing bracket )");
    ERR("{{ (1 }}", "1:8", NULL);
    ERR("{% endif %}", "1:4", "endif");
    ERR("x{% else %}", "1:5", "else");
    ERR("{% break %}", "1:4", "outside");
    ERR("{{ }}", "1:4", "expected an expression");
    ERR("{{ x @ y }}", "1:6", "unexpected character");
    ERR("{{ 99999999999999999999 }}", "1:4", "too large");
    ERR("{% macro f(a=1, b) %}{% endmacro %}", "non-default", NULL);
    ERR("{{ x is not }}", "1:13", "expected a name");
    /* raise_exception's message comes through with its place */
    ERR("{% for m in messages %}\n{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}",
        "2:46", "System role not supported");
    ERR("{% if (messages[0]['role'] == 'user') != true %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}",
        "raise_exception: Conversation roles must alternate", NULL);
    /* runtime errors that jinja2 raises too */
    ERR("{{ messages[0].content + 1 }}", "1:24", "unsupported operand");
    ERR("{{ nothing.attr }}", "1:11", "'nothing' is undefined");
    ERR("{{ messages[7].role }}", "1:15", "list index out of range");
    ERR("{{ 1 // 0 }}", "division", NULL);
    ERR("{{ none.x.y }}", "1:10", "NoneType");
    ERR("{% for a, b in [1, 2] %}{% endfor %}", "unpack", NULL);
    ERR("{% set y.attr = 1 %}", "namespace", NULL);
    /* limits: recursion, loops, output, memory, nesting, size */
    ERR("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deeper than", "'f'");
    ERR("{% macro f(n) %}{{ - - - - - - - - - - - - - - - - - - - - f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "nested deeper", NULL);
    ERR("{% for i in range(10**9) %}{% endfor %}", "1:18", "range() too big");
    ERR("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations", NULL);
    ERR("{{ 'x' * 10**9 }}", "1:8", "bytes");
    ERR("{% set big = 'x' * 10000000 %}{% for i in range(200) %}{% if 'y' in big %}{% endif %}{% endfor %}",
        "1:66", "units of work");
    ERR("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "limit", NULL);
    ERR("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "output is over the limit", NULL);
    ERR("{{ 2 ** 64 }}", "integer overflow", NULL);
    char *deep = repeat("(", 5000, "1", ")");
    char *wrapped = malloc(strlen(deep) + 8);
    sprintf(wrapped, "{{ %s }}", deep);
    ERR(wrapped, "nested deeper", NULL);
    free(wrapped);
    free(deep);
    deep = repeat("[", 5000, "1", "]");
    wrapped = malloc(strlen(deep) + 8);
    sprintf(wrapped, "{{ %s }}", deep);
    ERR(wrapped, "nested deeper", NULL);
    free(wrapped);
    free(deep);
    deep = repeat("{% if x %}", 5000, "y", "{% endif %}");
    ERR(deep, "nested deeper", NULL);
    free(deep);
    deep = repeat("not ", 5000, "x", "");
    wrapped = malloc(strlen(deep) + 8);
    sprintf(wrapped, "{{ %s }}", deep);
    ERR(wrapped, "nested deeper", NULL);
    free(wrapped);
    free(deep);
    deep = repeat("-", 5000, "x", "");
    wrapped = malloc(strlen(deep) + 8);
    sprintf(wrapped, "{{ %s }}", deep);
    ERR(wrapped, "nested deeper", NULL);
    free(wrapped);
    free(deep);
    /* values that contain themselves: printed or dumped, an error, not a stack overflow */
    ERR("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns }}", "contain itself", NULL);
    ERR("{% set ns = namespace(a=1) %}{% set ns.a = [ns] %}{{ ns.a }}", "contain itself", NULL);
    ERR("{% set ns = namespace(a=1) %}{% set ns.a = {'k': ns} %}{{ ns.a|string }}", "contain itself", NULL);
    size_t big = OWL_TEMPLATE_MAX_SOURCE + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = 0;
    expect_error(huge, big, NULL, "limit", NULL);
    free(huge);
    /* bad inputs */
    const char *ok_src = "{{ messages|length }}";
    expect_error(ok_src, strlen(ok_src), "not json", "JSON", NULL);
    expect_error(ok_src, strlen(ok_src), "[1, 2]", "JSON object", NULL);
    expect_error(ok_src, strlen(ok_src), "{\"messages\": [1, 2", "JSON", NULL);
    char *deep_json = repeat("[", 3000, "1", "]");
    char *dj = malloc(strlen(deep_json) + 16);
    sprintf(dj, "{\"a\": %s}", deep_json);
    expect_error(ok_src, strlen(ok_src), dj, NULL, NULL);
    free(dj);
    free(deep_json);
    /* template sources must be UTF-8 (jinja2 works on str) */
    expect_error("ok \xff{{ x }}", 9, NULL, "invalid UTF-8 at byte 3", NULL);
    expect_error("{{ '\xc3' }}", 9, NULL, "invalid UTF-8", NULL);
    expect_error("\xed\xa0\x80", 3, NULL, "invalid UTF-8", NULL); /* a surrogate */
    expect_error("\xc0\xaf", 2, NULL, "invalid UTF-8", NULL);     /* overlong '/' */
    /* embedded NUL bytes in the source are text, not an end */
    {
        owl_template *t;
        char *out;
        size_t len;
        const char src[] = "a\0b{{ x }}";
        CHECK(owl_template_parse(src, sizeof src - 1, &t) == OWL_OK);
        CHECK(owl_template_render(t, INPUTS, &out, &len) == OWL_OK && len == 4 && memcmp(out, "a\0b1", 4) == 0);
        free(out);
        owl_template_free(t);
    }
    /* after all these errors, a good template still renders */
    char *out = NULL;
    CHECK(owl_chat_render("{% for m in messages %}<{{ m.role }}>{% endfor %}", INPUTS, &out) == OWL_OK);
    CHECK(out && strcmp(out, "<system><user>") == 0);
    free(out);
    /* fixing the clock through the environment */
    setenv("OWL_TEMPLATE_NOW", "0", 1);
    CHECK(owl_chat_render("{{ strftime_now('%Y-%m-%d') }}", "{}", &out) == OWL_OK && strcmp(out, "1970-01-01") == 0);
    free(out);
    setenv("OWL_TEMPLATE_NOW", "soon", 1);
    CHECK(owl_chat_render("{{ strftime_now('%Y') }}", "{}", &out) != OWL_OK);
    unsetenv("OWL_TEMPLATE_NOW");
    return test_finish("test_chat_errors");
}
