/* Shared between the adapter readers and writers of adapt/ (not an
 * interface of the layer: adapt.h is). */
#ifndef OWL_LORA_INTERNAL_H
#define OWL_LORA_INTERNAL_H

#include "adapt/adapt.h"

/* What a pair read from a file adapts: a layer projection (owl_proj), or: */
enum {
    LORA_KIND_OUTPUT = OWL_PROJ_LAYER_COUNT, /* the head */
    LORA_KIND_EMBD,                          /* the embeddings */
    LORA_KIND_QKV,                           /* Phi-3's fused q, k, v rows */
    LORA_KIND_GATE_UP,                       /* Phi-3's fused gate, then up rows */
};

/* An adapter with no pairs yet, bound to model (w.layer allocated). */
owl_status lora_begin(const owl_model *model, const char *path, owl_lora **out);
/* alpha / rank or alpha / sqrt(rank). */
float lora_scale_of(float alpha, int rank, bool rslora);
/* Takes a pair read from file: checks its shapes against the model (a:
 * ne = [in, r], or [r, n_vocab]-shaped [n_vocab, r] transposed when
 * a_transposed for PEFT's embeddings; b: ne = [r, out]), that a and b have
 * the same rank, converts to F32, refuses NaN / Inf, brings Q / K rows of b
 * from the file's order (file_perm: llama.cpp's permuted order) to the
 * model's, splits fused rows, and multiplies b by pair_scale / w.scale when
 * they differ. l: the layer (-1 for the head and embeddings). */
owl_status lora_take(owl_lora *lo, const char *file, int l, int kind, const owl_weight *a, const owl_weight *b,
                     bool a_transposed, float pair_scale, bool file_perm);
/* After the last lora_take: at least one pair, NaN scan done. */
owl_status lora_finish(owl_lora *lo, const char *file);
/* Row permutation of Q / K rows of a (rows x cols) matrix: to_perm true:
 * Hugging Face order -> llama.cpp's adjacent-pair order, false: back. */
void lora_permute_rows(const float *src, float *dst, int n_heads, int head_dim, int64_t cols, bool to_perm);
/* Does the model hold its Q / K rows in llama.cpp's permuted order? */
bool lora_model_perm(const owl_model *m);
/* Are a GGUF file's Q / K rows of architecture arch permuted? */
bool lora_gguf_perm(const owl_model *m);
/* Rank of a pair (a.rows; for the embeddings a.cols). */
int lora_pair_rank(const owl_lora_pair *p, bool embd);
/* in / out of layer projection p (l >= 0) or the head (l = -1). */
void lora_proj_dims(const owl_hparams *hp, int l, owl_proj p, int64_t *in, int64_t *out);

#endif
