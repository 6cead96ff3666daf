/* Writes a seed corpus for fuzz_license into the directory given: small
 * front matters in the YAML subset cards use, and licence-like texts. */
#include <stdio.h>
#include <string.h>

static const char *const SEEDS[] = {
    "---\nlicense: apache-2.0\n---\n# card\n",
    "---\r\nlicense: other\r\nlicense_name: llama3\r\nlicense_link: >-\r\n  https://x.org/LICENSE\r\n---\r\n",
    "---\nlanguage:\n- en\n- fr\nlicense: llama3.1\nextra_gated_prompt: \"### LLAMA\\nline\\\n  more\"\n---\n",
    "---\nwidget:\n- text: |-\n    a: b\n  title: t\nf:\n  ? long key\n    continued\n  : checkbox\n---\n",
    "---\np: 'User: {x}\n\n  Assistant:'\ntags: [a, {b: c}]\nlicense: mit # comment\n---\n",
    "MIT License\n\nCopyright (c) 2024 X\n\nPermission is hereby granted, free of charge, to any person\n"
    "obtaining a copy ... OTHER DEALINGS IN THE SOFTWARE.\n",
    "[For the original copy, see https://example.org]\n\nGemma Terms of Use\n\nLast modified: April 1, 2024\n",
    "\xFF\xFE" "A\0p\0a\0c\0h\0e\0",
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_license DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        size_t n = i == sizeof SEEDS / sizeof SEEDS[0] - 1 ? 14 : strlen(SEEDS[i]);
        fwrite(SEEDS[i], 1, n, f);
        fclose(f);
    }
    return 0;
}
