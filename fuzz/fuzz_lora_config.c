/* libFuzzer target: LoRA adapter parsing against a small fixed base model
 * (llama, 2 layers, dim 8, GQA). Input: one selector byte, then
 *   'G': a GGUF adapter;
 *   else: u16 little-endian length L, L bytes of adapter_config.json, and
 *         the rest as adapter_model.safetensors.
 * Any input must give an adapter or an error, never a crash, a leak or an
 * over-read; an accepted adapter is checked finite and written back. */
#include "adapt/adapt.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static owl_model model;
static owl_layer layers[2];

static void init_model(void) {
    if (model.arch) return;
    model.arch = owl_arch_find("llama", 5);
    owl_hparams *hp = &model.hp;
    hp->dim = 8;
    hp->n_layers = 2;
    hp->n_heads = 2;
    hp->n_kv_heads = 1;
    hp->head_dim = 4;
    hp->ffn_dim = 12;
    hp->n_vocab = 16;
    hp->n_rot = 4;
    hp->q_dim = 8;
    hp->kv_dim = 4;
    model.layers = layers;
    model.rope_neox = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_model();
    if (size < 1) return 0;
    owl_lora *lo = NULL;
    owl_status st;
    if (data[0] == 'G') {
        st = owl_lora_read_gguf_mem(&model, "fuzz.gguf", data + 1, size - 1, &lo);
    } else {
        if (size < 3) return 0;
        size_t n = (size_t)data[1] | (size_t)data[2] << 8;
        if (n > size - 3) n = size - 3;
        st = owl_lora_read_peft_mem(&model, "fuzz.safetensors", (const char *)data + 3, n, data + 3 + n,
                                    size - 3 - n, &lo);
    }
    if (st == OWL_OK) {
        if (owl_lora_check_finite(lo) != OWL_OK) __builtin_trap(); /* the readers scan every value */
        owl_lora_free(lo);
    }
    return 0;
}
