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
    /* Qwen3: no biases; RMSNorm of each query and key head before RoPE
     * (head_dim usually given by attention.key_length). */
    {.name = "qwen3", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_SWIGLU,
     .qk_norm = OWL_QK_NORM_HEAD},
    /* Gemma: embeddings times sqrt(dim), GeGLU, tied head. Norm weights are
     * used as stored (GGUF and owl's HF reader hold Hugging Face's 1 + w). */
    {.name = "gemma", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_GEGLU,
     .embd_scale = true},
    /* Gemma 2: + norms on the attention and FFN outputs, soft-capped scores
     * and logits, a window on every other layer (even layers local). */
    {.name = "gemma2", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_GEGLU,
     .embd_scale = true, .post_norms = true, .swa_required = true, .swa_pattern = 2, .attn_softcap = 50.0f,
     .final_softcap = 30.0f, .big_layers = 46},
    /* Gemma 3: Gemma 2 without soft-capping, + per-head Q/K norms; five
     * local layers to one global, the local ones with their own RoPE base. */
    {.name = "gemma3", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_GEGLU,
     .embd_scale = true, .post_norms = true, .qk_norm = OWL_QK_NORM_HEAD, .swa_required = true, .swa_pattern = 6,
     .rope_base_swa = 10000.0f, .big_layers = 62},
    /* Phi-3: fused QKV and gate/up projections; a window on every layer
     * when the file gives one; partial rotary from rope.dimension_count. */
    {.name = "phi3", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_SWIGLU,
     .fused_qkv = true, .fused_gate_up = true},
    /* OLMo 2: RMSNorm after the attention and FFN outputs instead of before,
     * and over the whole q / k vectors before RoPE. */
    {.name = "olmo2", .rope_neox = true, .tied_ok = true, .norm = OWL_NORM_RMS, .act = OWL_ACT_SWIGLU,
     .qk_norm = OWL_QK_NORM_FULL, .no_pre_norms = true, .post_norms = true},
};

const owl_arch *owl_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strlen(archs[i].name) == len && memcmp(archs[i].name, name, len) == 0) return &archs[i];
    return NULL;
}

const char *owl_arch_list(void) { return "llama (also Mistral), qwen2, qwen3, gemma, gemma2, gemma3, phi3, olmo2"; }
