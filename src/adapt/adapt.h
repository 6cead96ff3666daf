/* adapt/: LoRA adapters. An adapter is always bound to the model it adapts:
 * its pairs have that model's shapes, F32, with the Q / K rows of lora_b in
 * the row order the model's RoPE uses (Hugging Face's rotate-half order on a
 * Hugging Face directory or a NeoX-style GGUF family, llama.cpp's permuted
 * adjacent-pair order on a GGUF "llama" file). Readers convert from the
 * file's order, writers to the file format's order:
 *   PEFT (adapter_config.json + adapter_model.safetensors): Hugging Face order;
 *   GGUF (general.type = adapter, adapter.type = lora): llama.cpp's order,
 *   i.e. permuted for architectures whose GGUF files are (llama).
 * Applying adapters to a context: owl_ctx_set_adapters (include/owl.h) or
 * owl_ctx_set_lora (model/model.h) with &lora->w. */
#ifndef OWL_ADAPT_H
#define OWL_ADAPT_H

#include "base/base.h"
#include "format/format.h"
#include "model/model.h"

/* Target bits: one per layer projection (1u << owl_proj), the head, the
 * embeddings. */
#define OWL_LORA_T_OUTPUT (1u << OWL_PROJ_LAYER_COUNT)
#define OWL_LORA_T_EMBD (1u << (OWL_PROJ_LAYER_COUNT + 1))
#define OWL_LORA_T_LAYERS ((1u << OWL_PROJ_LAYER_COUNT) - 1u) /* q k v o gate up down */

struct owl_lora {
    owl_lora_weights w;      /* what the forward pass applies (F32 pairs owned here) */
    const owl_model *model;  /* the base it is bound to */
    unsigned targets;        /* OWL_LORA_T_* / 1u << owl_proj bits present */
    int rank;                /* the adapter's rank (pairs of another rank are scaled into w.scale) */
    float alpha;             /* lora_alpha */
    bool rslora;             /* w.scale = alpha / sqrt(rank) instead of alpha / rank */
    char *base_name;         /* base_model_name_or_path (NULL if unknown) */
    char *path;              /* what it was read from (NULL if made in memory) */
    owl_arena arena;         /* pairs' floats, names, w.layer */
};
typedef struct owl_lora owl_lora;

/* PEFT's module name of a projection ("q_proj", ... "down_proj"). */
const char *owl_lora_proj_peft(owl_proj p);
/* GGUF tensor stem of a projection ("attn_q", ... "ffn_down"). */
const char *owl_lora_proj_gguf(owl_proj p);

/* A new adapter for model with zeroed F32 pairs of rank `rank` on every
 * layer projection in targets (bits 1u << owl_proj) plus the head
 * (OWL_LORA_T_OUTPUT) and embeddings (OWL_LORA_T_EMBD) if asked; w.scale =
 * alpha / rank (alpha / sqrt(rank) with rslora). Fused-projection
 * architectures (Phi-3) are refused. Free with owl_lora_free. */
owl_status owl_lora_new(const owl_model *model, unsigned targets, int rank, float alpha, bool rslora, owl_lora **out);
/* The writable F32 data of a pair (l = -1: the head; l = -2: the
 * embeddings, then a is n_vocab x rank). NULL if the pair is not there.
 * a: rank x in, row-major; b: out x rank, row-major. */
float *owl_lora_a(owl_lora *lora, int l, owl_proj p);
float *owl_lora_b(owl_lora *lora, int l, owl_proj p);
/* The pair of layer l projection p (l = -1 the head, l = -2 the embeddings). */
owl_lora_pair *owl_lora_pair_of(owl_lora *lora, int l, owl_proj p);
/* Records base_model_name_or_path (copied). */
owl_status owl_lora_set_base_name(owl_lora *lora, const char *name);

/* Reads a PEFT directory (or its adapter_model.safetensors beside an
 * adapter_config.json), a GGUF adapter or a lone .safetensors (then the
 * adapter_config.json beside it is required) and binds it to model:
 * architecture, every tensor name, shape and rank checked, NaN / Inf
 * refused; errors name the file and the tensor or key. */
owl_status owl_lora_read(const owl_model *model, const char *path, owl_lora **out);
/* The same from a PEFT config text and safetensors bytes in memory (for
 * fuzzing; name is used in messages). */
owl_status owl_lora_read_peft_mem(const owl_model *model, const char *name, const char *config_json,
                                  size_t config_len, const uint8_t *st, size_t st_len, owl_lora **out);
/* A GGUF adapter from bytes in memory (for fuzzing). */
owl_status owl_lora_read_gguf_mem(const owl_model *model, const char *name, const uint8_t *data, size_t size,
                                  owl_lora **out);
void owl_lora_free(owl_lora *lora);
/* Every float of every pair finite? Else an error naming the tensor. */
owl_status owl_lora_check_finite(const owl_lora *lora);

/* Writes a PEFT adapter directory (created if missing): adapter_config.json
 * and adapter_model.safetensors (F32, Hugging Face names and row order). */
owl_status owl_lora_write_peft(const owl_lora *lora, const char *dir);
/* Writes a llama.cpp GGUF LoRA adapter; type F32, F16 or BF16 for the pairs. */
owl_status owl_lora_write_gguf(const owl_lora *lora, const char *path, owl_dtype type);

/* Writes the model's GGUF with W + sum_i scales[i] * s_i * B_i A_i merged into
 * every adapted matrix (the head and embeddings too; scales NULL: all 1),
 * each merged tensor in its base type, or in `type` unless that is
 * OWL_DTYPE_COUNT; other tensors are copied as they are. The model must
 * come from a GGUF file. */
owl_status owl_lora_merge(const owl_model *model, const owl_lora *const *loras, const float *scales, int n,
                          owl_dtype type, const char *out_path);

#endif
