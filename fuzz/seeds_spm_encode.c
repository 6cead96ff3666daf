/* Writes a seed corpus for fuzz_spm_encode into the directory argv[1]. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_spm_encode DIR\n");
        return 2;
    }
    static const char *texts[] = {
        "Hello world",
        "  leading and trailing  ",
        "<s>special</s> <unk> <0x41>",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\xa6\x89 caf\xc3\xa9",
        "tab\there\nnew line\r\n",
        "\xff\xfe\xc3(\xe2\x82 invalid",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%zu.txt", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        fwrite(texts[i], 1, strlen(texts[i]), f);
        if (fclose(f) != 0) return 1;
    }
    return 0;
}
