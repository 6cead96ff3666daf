/* Writes a seed corpus for fuzz_manifest into the directory given: a store
 * name line, then an owl.manifest.json (plain, derived, broken). */
#include <stdio.h>

static const char *const SEEDS[] = {
    "org/m\n{\"version\": 1, \"files\": {\"model.gguf\": {\"size\": 15, \"sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000000\"}}}",
    "org/m@main/sub/b.gguf\n{\"version\": 1, \"files\": {\"model.gguf\": {\"size\": 15, \"sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000000\", \"source\": {\"path\": \"/x\", "
    "\"sha256\": \"1111111111111111111111111111111111111111111111111111111111111111\", \"tool\": \"owl quantize\", "
    "\"license\": \"MIT\"}}}}",
    "org/m@c0ffee\n{\"version\": 1, \"files\": {}, \"source\": {\"path\": \"/x\", \"sha256\": "
    "\"1111111111111111111111111111111111111111111111111111111111111111\", \"license\": null, "
    "\"license_note\": \"no licence information found\"}}",
    "org/m@v2/../x\n{\"version\": 2}",
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_manifest DIR\n");
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
        fputs(SEEDS[i], f);
        fclose(f);
    }
    return 0;
}
