/* The architecture table: one row per model family, holding the options the
 * generic decoder block needs. A new family is a new row (and, where it
 * needs an option the block does not have yet, a new field). */
#include "model/model.h"

#include <string.h>

static const owl_arch archs[] = {
    /* GGUF "llama": llama.cpp's converter permutes Q/K so RoPE rotates
     * adjacent pairs (2i, 2i+1). Q/K/V biases are rare but allowed (used if
     * present); output.weight may be absent. */
    {.name = "llama", .rope_neox = false, .qkv_bias = true, .tied_ok = true,
     .norm = OWL_NORM_RMS, .act = OWL_ACT_SWIGLU},
    /* GGUF "qwen2": Hugging Face rotate_half layout (NeoX halves), biases on
     * the Q, K and V projections, tied head in the small models. */
    {.name = "qwen2", .rope_neox = true, .qkv_bias = true, .tied_ok = true,
     .norm = OWL_NORM_RMS, .act = OWL_ACT_SWIGLU},
};

const owl_arch *owl_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strlen(archs[i].name) == len && memcmp(archs[i].name, name, len) == 0) return &archs[i];
    return NULL;
}

const char *owl_arch_list(void) { return "llama, qwen2"; }
