/* Writes a seed corpus for fuzz_lora_config into the directory argv[1]:
 * PEFT adapters (config + safetensors made by owl's writer) for the
 * fuzzer's base (llama, 2 layers, dim 8, ffn 12, vocab 16, 2 heads, 1 KV
 * head), with list, regex and all-linear targets, rank patterns, the head
 * and embeddings, and the same pairs as a GGUF adapter. */
#include "format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float buf[4096];

static int seed(const char *dir, const char *name, const char *cfg, const owl_weight *t, size_t n) {
    char path[4096], tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.tmp.st", dir);
    owl_meta m = {0};
    if (owl_safetensors_write(tmp, t, n, &m) != OWL_OK) return 1;
    FILE *f = fopen(tmp, "rb");
    if (!f) return 1;
    static uint8_t st[1 << 16];
    size_t got = fread(st, 1, sizeof st, f);
    fclose(f);
    remove(tmp);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f) return 1;
    size_t L = strlen(cfg);
    fputc('P', f);
    fputc((int)(L & 0xff), f);
    fputc((int)(L >> 8), f);
    fwrite(cfg, 1, L, f);
    fwrite(st, 1, got, f);
    fclose(f);
    return 0;
}

static int seed_gguf(const char *dir, const char *name, const owl_weight *t, size_t n) {
    char path[4096], tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.tmp.gguf", dir);
    owl_meta m = {0};
    owl_meta_set_str(&m, "general.architecture", "llama", 5);
    owl_meta_set_str(&m, "general.type", "adapter", 7);
    owl_meta_set_str(&m, "adapter.type", "lora", 4);
    owl_meta_set_f32(&m, "adapter.lora.alpha", 4.0f);
    owl_status s = owl_gguf_write(tmp, &m, t, n, 0);
    owl_meta_free(&m);
    if (s != OWL_OK) return 1;
    FILE *f = fopen(tmp, "rb");
    if (!f) return 1;
    static uint8_t g[1 << 16];
    size_t got = fread(g, 1, sizeof g, f);
    fclose(f);
    remove(tmp);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f) return 1;
    fputc('G', f);
    fwrite(g, 1, got, f);
    fclose(f);
    return 0;
}

#define W(nm, a0, a1) {nm, OWL_F32, 2, {a0, a1}, buf, (uint64_t)(a0) * (a1) * 4}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds_lora_config DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    for (int i = 0; i < 4096; i++) buf[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    owl_weight peft[] = {
        W("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", 8, 2),
        W("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", 2, 8),
        W("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight", 8, 2),
        W("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight", 2, 4),
        W("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight", 12, 2),
        W("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", 2, 8),
        W("base_model.model.lm_head.lora_A.weight", 8, 2),
        W("base_model.model.lm_head.lora_B.weight", 2, 16),
        W("base_model.model.model.embed_tokens.lora_embedding_A", 16, 2),
        W("base_model.model.model.embed_tokens.lora_embedding_B", 2, 8),
    };
    int bad = 0;
    bad |= seed(dir, "list", "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\", \"k_proj\", \"down_proj\", "
                "\"lm_head\", \"embed_tokens\"], \"use_rslora\": false, \"modules_to_save\": null}", peft, 10);
    bad |= seed(dir, "regex", "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": \".*(q|k|down)_proj\"}", peft, 6);
    bad |= seed(dir, "all_linear", "{\"r\": 2, \"lora_alpha\": 3.5, \"use_rslora\": true, \"target_modules\": "
                "\"all-linear\", \"rank_pattern\": {\"q_proj\": 2}, \"alpha_pattern\": {\"layers.1.mlp.down_proj\": 8}}",
                peft, 6);
    bad |= seed(dir, "one", "{\"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"]}", peft, 2);
    owl_weight gg[] = {
        W("blk.0.attn_q.weight.lora_a", 8, 2),  W("blk.0.attn_q.weight.lora_b", 2, 8),
        W("blk.1.ffn_up.weight.lora_a", 8, 2),  W("blk.1.ffn_up.weight.lora_b", 2, 12),
        W("token_embd.weight.lora_a", 2, 16),   W("token_embd.weight.lora_b", 2, 8),
        W("output.weight.lora_a", 8, 2),        W("output.weight.lora_b", 2, 16),
    };
    bad |= seed_gguf(dir, "gguf", gg, 8);
    return bad;
}
