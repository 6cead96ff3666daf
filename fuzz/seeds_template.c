/* Writes a seed corpus for fuzz_template into the directory argv[1]: the
 * real chat templates of the test data ($OWL_TESTDATA/templates) and a few
 * hand-written ones covering every tag. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(const char *dir, const char *name, const char *text, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(text, 1, len, f);
    fclose(f);
}

static const char *hand[] = {
    ("{% set ns = namespace(a=0) %}{% for m in messages if m.role != 'system' %}{% set ns.a = ns.a + 1 %}"
     "{{ loop.index }}{{ m.content|trim|upper }}{% else %}none{% endfor %}{{ ns.a }}"),
    "{% macro f(x, y=2) %}{{ x ~ y }}{% endmacro %}{{ f(1) }}{{ f(y=3, x=4) }}{% raw %}{{ raw }}{% endraw %}",
    "{%- for k, v in {'a': [1, 2.5, none], 'b': 'x'}|dictsort -%}\n  {{ k }}={{ v|tojson(indent=2) }}\n{%- endfor %}",
    "{{ messages[-1].content.split(' ')[::-1]|join(',') if messages else raise_exception('empty') }}",
    "{% for i in range(5) %}{% if i is odd %}{% continue %}{% elif i > 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{{ tools|map(attribute='name')|list }}{{ messages|selectattr('role', 'equalto', 'user')|list|length }}",
    "{% set x %}block {{ bos_token }}{% endset %}{{ x|replace('b', 'B') }}{# comment #}{{ strftime_now('%Y') }}",
};

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *dir = argv[1];
    char name[64];
    for (size_t i = 0; i < sizeof hand / sizeof *hand; i++) {
        snprintf(name, sizeof name, "hand%zu.jinja", i);
        put(dir, name, hand[i], strlen(hand[i]));
    }
    const char *td = getenv("OWL_TESTDATA");
    if (!td) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/templates/hf", td);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".jinja")) continue;
        char file[4200];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *f = fopen(file, "rb");
        if (!f) continue;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        put(dir, e->d_name, buf, n);
    }
    if (d) closedir(d);
    snprintf(path, sizeof path, "%s/templates/ollama/templates.jsonl", td);
    FILE *f = fopen(path, "rb");
    char line[1 << 16];
    int k = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v) {
            snprintf(name, sizeof name, "ollama%d.jinja", k++);
            put(dir, name, json_string_value(v), json_string_length(v));
        }
        json_decref(j);
    }
    if (f) fclose(f);
    return 0;
}
