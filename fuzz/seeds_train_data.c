/* Writes a seed corpus for fuzz_train_data into the directory argv[1]: JSONL
 * lines of every form the fine-tuning reader takes, and broken ones. */
#include <stdio.h>
#include <string.h>

static const char *seeds[] = {
    ("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"hi\"}, "
     "{\"role\": \"assistant\", \"content\": \"hello\"}]}\n"),
    "{\"prompt\": \"2+2=\", \"completion\": \" 4\"}\n{\"text\": \"plain \\u00e9 text\"}\n",
    "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n[1]\n\"s\"\n{\"prompt\": 1}\n",
    "{\"messages\": [{\"role\": \"assistant\", \"content\": \"a\\u0000b\"}]}\r\n\n{\"a\": 1, \"a\": 2}\n{",
};

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%zu.jsonl", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        fwrite(seeds[i], 1, strlen(seeds[i]), f);
        fclose(f);
    }
    return 0;
}
