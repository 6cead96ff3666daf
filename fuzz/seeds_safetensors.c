/* Writes a small seed corpus for fuzz_safetensors into the directory argv[1]:
 * files made by owl's writer (F32 / F16 / BF16, 1..4 dimensions, empty
 * tensors, metadata) and a few hand-made headers near the edges. */
#include "format/format.h"

#include <stdio.h>
#include <string.h>

static int write_raw(const char *dir, const char *name, const char *header, size_t data_len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fputs(header, f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 37), f);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_safetensors DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    static float a[24];
    static uint16_t h[12];
    for (int i = 0; i < 24; i++) a[i] = (float)i - 3.5f;
    for (int i = 0; i < 12; i++) h[i] = owl_f32_to_f16((float)i);
    owl_weight t[] = {
        {"model.embed_tokens.weight", OWL_F32, 2, {4, 6}, a, sizeof a},
        {"model.norm.weight", OWL_F16, 1, {12}, h, sizeof h},
        {"b16", OWL_BF16, 3, {2, 3, 2}, h, sizeof h},
        {"four", OWL_F32, 4, {2, 1, 3, 2}, a, 48},
        {"empty", OWL_F32, 2, {0, 5}, a, 0},
    };
    owl_meta m = {0};
    owl_meta_set_str(&m, "format", "pt", 2);
    int bad = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/all.safetensors", dir);
    if (owl_safetensors_write(path, t, 5, &m) != OWL_OK) bad++;
    snprintf(path, sizeof path, "%s/one.safetensors", dir);
    if (owl_safetensors_write(path, t, 1, NULL) != OWL_OK) bad++;
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    if (owl_safetensors_write(path, t, 0, &m) != OWL_OK) bad++;
    bad += write_raw(dir, "overlap.st",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                     16);
    bad += write_raw(dir, "gap.st",
                     "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]},"
                     "\"__metadata__\":{\"k\":\"v\"}}",
                     8);
    bad += write_raw(dir, "scalar.st", "{\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}", 2);
    owl_meta_free(&m);
    if (bad) fprintf(stderr, "seeds_safetensors: %d seeds failed: %s\n", bad, owl_last_error());
    return bad ? 1 : 0;
}
