/* Writes a seed corpus for fuzz_api into the directory given: request
 * bodies of each route (valid and broken) and key scopes with a model. */
#include <stdio.h>
#include <string.h>

static const char *const SEEDS[] = {
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi <|im_end|>\"}],\"max_tokens\":8}",
    "{\"model\":\"m:tone\",\"prompt\":\"Once\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
    "{\"model\":\"m\",\"adapter\":\"tone\",\"prompt\":[1,2,3],\"logprobs\":5,\"stop\":[\"a\",\"b\"],\"seed\":-1}",
    "{\"model\":\"m\",\"adapter\":7,\"prompt\":\"x\",\"temperature\":2.5}",
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}],\"top_logprobs\":3,\"logprobs\":true}",
    "{\"model\":\"m\",\"input\":[\"a\",[1,2]],\"encoding_format\":\"base64\"}",
    "{\"model\":\"m\",\"adapter\":\"a\\u0000b\",\"prompt\":\"x\"}",
    "m,m:*\nm:tone",
    "*\nanything",
    "m:one,m\nm:two",
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_api DIR\n");
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
        fwrite(SEEDS[i], 1, strlen(SEEDS[i]), f);
        fclose(f);
    }
    return 0;
}
