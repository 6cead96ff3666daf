/* adapt/ internal: LoRA fine-tuning. The loss of one token sequence and the
 * gradients of the adapter's A and B matrices (train.c, train_ops.c), AdamW
 * with warm-up + cosine schedule and clipping (train_opt.c), training data
 * (train_data.c) and checkpoints (train_ckpt.c). The base model is frozen in
 * whatever dtype it has; only the F32 pairs of an owl_lora learn. */
#ifndef OWL_ADAPT_TRAIN_H
#define OWL_ADAPT_TRAIN_H

#include "adapt/adapt.h"

/* ---- loss and gradients (train.c) ---- */

typedef struct owl_train owl_train;

/* A trainer for lora (rank r pairs on the targeted layer projections; the
 * head and embeddings are not trained) on its model, for sequences of up to
 * max_tokens tokens. Refuses, naming the feature, what the backward pass does
 * not cover (fused projections, adapters on the head or embeddings). The
 * model and lora must outlive it. */
owl_status owl_train_new(owl_model *model, owl_lora *lora, int max_tokens, owl_train **out);
void owl_train_free(owl_train *tr);

/* Number of trainable floats, and the i-th trainable tensor (in a fixed
 * order: layer, projection, A then B): its data, its gradient, its size. */
size_t owl_train_n_params(const owl_train *tr);
int owl_train_n_tensors(const owl_train *tr);
void owl_train_tensor(owl_train *tr, int i, float **param, float **grad, size_t *n, int *layer, owl_proj *proj,
                      bool *is_b);
/* All gradients, contiguous (owl_train_n_params floats), and zeroing them. */
float *owl_train_grads(owl_train *tr);
void owl_train_zero_grads(owl_train *tr);

/* One sequence: tokens[0..n) (n <= max_tokens), target[i] != 0 where token
 * i is predicted from tokens < i (target[0] is ignored). Returns the sum of
 * the cross-entropy over the targets in *loss_sum and their count in
 * *n_targets; with backward, adds grad_scale * d(loss sum)/d(A, B) to the
 * gradients (grad_scale = 1 / targets of the optimizer step: the mean).
 * Memory: every layer's input (n x dim) plus one layer's activations. */
owl_status owl_train_seq(owl_train *tr, const int32_t *tokens, const uint8_t *target, int n, bool backward,
                         float grad_scale, double *loss_sum, int *n_targets);

#endif
