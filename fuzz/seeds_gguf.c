/* Writes a small seed corpus for fuzz_gguf into the directory argv[1]:
 * GGUF files made by owl's writer covering every value type, nested arrays,
 * several tensor types, a non-default alignment, and a version 2 copy. */
#include "format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_seed(const char *dir, const char *name, const owl_meta *m, const owl_weight *t, size_t n,
                      uint32_t alignment, bool v2) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (owl_gguf_write(path, m, t, n, alignment) != OWL_OK) {
        fprintf(stderr, "seeds_gguf: %s\n", owl_last_error());
        return 1;
    }
    if (v2) { /* the layouts of versions 2 and 3 are the same */
        FILE *f = fopen(path, "r+b");
        if (!f || fseek(f, 4, SEEK_SET) != 0 || fputc(2, f) == EOF) return 1;
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_gguf DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int bad = 0;
    owl_meta m = {0};
    owl_meta_set_str(&m, "general.architecture", "llama", 5);
    owl_meta_set_u32(&m, "llama.block_count", 2);
    owl_meta_set_f32(&m, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    owl_meta_set_bool(&m, "tokenizer.ggml.add_bos_token", true);
    owl_meta_set_i32(&m, "x.i32", -7);
    owl_meta_set_u64(&m, "x.u64", 1ull << 40);
    owl_str toks[4] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"\xe2\x96\x81" "a", 4}};
    owl_meta_set_str_arr(&m, "tokenizer.ggml.tokens", toks, 4);
    float scores[4] = {0, 0, 0, -1.5f};
    owl_meta_set_arr(&m, "tokenizer.ggml.scores", OWL_META_F32, scores, 4);
    int32_t types[4] = {2, 3, 3, 1};
    owl_meta_set_arr(&m, "tokenizer.ggml.token_type", OWL_META_I32, types, 4);
    const owl_meta_type scalar_types[] = {OWL_META_U8, OWL_META_I8, OWL_META_U16, OWL_META_I16, OWL_META_U64,
                                          OWL_META_I64, OWL_META_F64, OWL_META_BOOL};
    uint8_t raw[64];
    for (int i = 0; i < 64; i++) raw[i] = (uint8_t)(i & 1);
    for (size_t i = 0; i < sizeof scalar_types / sizeof scalar_types[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "arr.%s", owl_meta_type_name(scalar_types[i]));
        owl_meta_set_arr(&m, key, scalar_types[i], raw, 3);
        owl_meta_value v = {.type = scalar_types[i]};
        snprintf(key, sizeof key, "val.%s", owl_meta_type_name(scalar_types[i]));
        owl_meta_set(&m, key, &v);
    }
    owl_meta_value inner[2] = {{.type = OWL_META_ARRAY}, {.type = OWL_META_ARRAY}};
    inner[0].arr.elem = OWL_META_U16;
    inner[0].arr.count = 2;
    inner[0].arr.raw = raw;
    inner[1].arr.elem = OWL_META_STRING;
    inner[1].arr.count = 2;
    inner[1].arr.strs = toks;
    owl_meta_value nested = {.type = OWL_META_ARRAY};
    nested.arr.elem = OWL_META_ARRAY;
    nested.arr.count = 2;
    nested.arr.items = inner;
    owl_meta_set(&m, "x.nested", &nested);

    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 13 + 1);
    owl_weight t[5] = {
        {.name = "token_embd.weight", .dtype = OWL_F32, .n_dims = 2, .ne = {4, 4, 1, 1}, .data = data, .nbytes = 64},
        {.name = "blk.0.attn_q.weight", .dtype = OWL_Q8_0, .n_dims = 2, .ne = {32, 2, 1, 1}, .data = data, .nbytes = 68},
        {.name = "blk.0.ffn_up.weight", .dtype = OWL_F16, .n_dims = 3, .ne = {2, 3, 4, 1}, .data = data, .nbytes = 48},
        {.name = "blk.0.ffn_down.weight", .dtype = OWL_Q4_K, .n_dims = 1, .ne = {256, 1, 1, 1}, .data = data, .nbytes = 144},
        {.name = "output_norm.weight", .dtype = OWL_BF16, .n_dims = 4, .ne = {2, 1, 2, 1}, .data = data, .nbytes = 8},
    };
    bad |= write_seed(dir, "full.gguf", &m, t, 5, 0, false);
    bad |= write_seed(dir, "full_v2.gguf", &m, t, 5, 0, true);
    bad |= write_seed(dir, "align64.gguf", &m, t + 1, 2, 64, false);
    bad |= write_seed(dir, "tensors_only.gguf", NULL, t, 5, 0, false);
    bad |= write_seed(dir, "empty.gguf", NULL, NULL, 0, 0, false);
    owl_meta small = {0};
    owl_meta_set_str(&small, "general.name", "s", 1);
    bad |= write_seed(dir, "one_key.gguf", &small, t, 1, 0, false);
    owl_meta_free(&small);
    owl_meta_free(&m);
    return bad;
}
