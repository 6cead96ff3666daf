/* Hugging Face directory internals shared by the reader (hf_dir.c), the
 * tokenizer.json -> metadata conversion (tokenizer/hf_tokenizer_meta.c) and
 * `owl convert` (cli/convert.c). */
#ifndef OWL_HF_DIR_H
#define OWL_HF_DIR_H

#include "format/format.h"

/* One supported config.json model_type. */
typedef struct owl_hf_family {
    const char *model_type;  /* config.json "model_type" */
    const char *arch;        /* GGUF general.architecture */
    bool permute_qk;         /* llama.cpp's converter reorders Q/K rows (adjacent-pair RoPE) */
    bool norm_plus_one;      /* RMSNorm weights are stored as w, used as 1 + w (Gemma) */
    bool post_norms;         /* post_attention_layernorm is a post-norm, not the FFN pre-norm */
} owl_hf_family;

/* NULL if owl does not know the model_type. */
const owl_hf_family *owl_hf_family_find(const char *model_type);
/* dir + "/" + name, malloc'd (NULL: out of memory). */
char *owl_hf_path(const char *dir, const char *name);
/* tokenizer_config.json (add_bos/eos_token, special token ids by text,
 * chat_template) and chat_template.jinja of dir into meta. */
owl_status owl_hf_tokenizer_config(const char *dir, owl_meta *meta);
/* A byte-level BPE tokenizer.json as GGUF "gpt2" keys (tokens, token_type,
 * merges, pre). Implemented in the tokenizer layer. */
owl_status owl_hf_tokenizer_json_meta(const char *path, owl_meta *meta);

/* Reorders the rows of each of n_heads heads (head_dim rows of cols floats)
 * from rotate_half order to adjacent pairs: row s*head_dim/2 + i goes to
 * row 2i + s (llama.cpp's Q/K permutation). */
void owl_hf_permute_rows(const float *src, float *dst, int64_t n_heads, int64_t head_dim, int64_t cols);

#endif
