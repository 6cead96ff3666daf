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


/* ---- optimiser (train_opt.c) ---- */

/* A small deterministic generator (xoshiro256**), seeded by splitmix64. */
typedef struct owl_train_rng {
    uint64_t s[4];
} owl_train_rng;
void owl_train_rng_seed(owl_train_rng *r, uint64_t seed);
uint64_t owl_train_rng_next(owl_train_rng *r);
double owl_train_rng_unit(owl_train_rng *r); /* [0, 1) */

/* PEFT's initialisation: every A uniform in +-1/sqrt(in) (Kaiming-uniform
 * with a = sqrt(5)), every B zero. */
void owl_train_init_pairs(owl_train *tr, owl_train_rng *rng);

typedef struct owl_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    float clip;          /* global gradient norm limit (0: none) */
    int64_t warmup;      /* steps of linear warm-up */
    int64_t total;       /* steps in all (cosine decay to min_lr_frac * lr at the end) */
    float min_lr_frac;
} owl_adamw;

/* The learning rate of step (0-based). */
double owl_adamw_lr(const owl_adamw *o, int64_t step);
/* One AdamW step (step: 0-based, for the bias corrections) on the trainer's
 * pairs with its gradients; m and v: owl_train_n_params floats each.
 * *grad_norm: the norm before clipping. A non-finite norm changes nothing
 * and returns OWL_ERR_RANGE. */
owl_status owl_adamw_step(owl_train *tr, const owl_adamw *o, int64_t step, float *m, float *v, double *grad_norm);
/* True if every trained float is finite. */
bool owl_train_params_finite(owl_train *tr);


/* ---- training data (train_data.c) ----
 * Plain text: tokenized whole (BOS first) and cut into sequences of ctx
 * tokens that overlap by one, so every token after the first is a target
 * once. JSONL, one example per line: {"messages": [{"role", "content"}...]}
 * rendered with the chat template, targets only the assistant turns' tokens
 * (their end-of-turn marks included); {"prompt", "completion"}: BOS +
 * prompt + completion + EOS, targets the completion and EOS; {"text"}: all
 * tokens. A line that is not one of those is reported with its line number
 * and skipped, or stops the reading; a longer example than ctx is cut to ctx
 * tokens (a warning), or stops the reading. */
typedef enum owl_data_format { OWL_DATA_AUTO = 0, OWL_DATA_TEXT, OWL_DATA_JSONL } owl_data_format;

typedef struct owl_data_opts {
    int ctx;
    owl_data_format format; /* AUTO: JSONL for *.jsonl / *.json, else text */
    bool stop_on_bad;       /* a malformed line is an error (else skipped) */
    bool stop_on_long;      /* an example longer than ctx is an error (else truncated) */
    const char *template_src; /* chat template; NULL: the model's (ChatML if none) */
} owl_data_opts;

typedef struct owl_data_seq {
    int32_t *tok;
    uint8_t *tgt;
    int n, n_targets;
} owl_data_seq;

typedef struct owl_data {
    owl_data_seq *seq;
    int n_seq, cap;
    int64_t n_tokens, n_targets;
    int n_bad, n_truncated, n_skipped; /* lines skipped as malformed / examples cut / with no target left */
} owl_data;

owl_status owl_data_read(const owl_model *model, const char *path, const owl_data_opts *o, owl_data *out);
void owl_data_free(owl_data *d);

/* One JSONL line, checked (what the fuzz target drives). */
typedef enum owl_example_kind { OWL_EX_MESSAGES = 1, OWL_EX_PROMPT, OWL_EX_TEXT } owl_example_kind;
typedef struct owl_example {
    owl_example_kind kind;
    int n_msg;
    const char **role, **content; /* n_msg each (messages) */
    size_t *content_len;
    const char *prompt, *completion, *text;
    size_t prompt_len, completion_len, text_len;
    void *json; /* owned */
} owl_example;
/* Errors read "FILE:LINE: ..." naming the field. */
owl_status owl_example_parse(const char *line, size_t len, const char *file, int lineno, owl_example *ex);
void owl_example_free(owl_example *ex);


/* ---- checkpoints (train_ckpt.c) ----
 * One file (written atomically): the run's settings, the step, the seed and
 * generator state, the loss history, every trained float and the AdamW
 * moments, and a checksum. Loading checks the settings against the run that
 * resumes and names the first that differs. */
typedef struct owl_train_state {
    /* settings a resumed run must share */
    int32_t rank, ctx, batch, accum, epochs, n_seq;
    uint32_t targets;
    float alpha, lr;
    uint64_t seed, data_hash;
    /* progress */
    int64_t step; /* optimiser steps done */
    owl_train_rng rng;
    int n_loss, n_val;  /* history: training loss of each step, validation loss after each epoch */
    float *loss;        /* n_loss */
    float *val;         /* n_val */
    int64_t *val_step;  /* n_val: the step it was measured after */
    int cap_loss, cap_val;
} owl_train_state;

owl_status owl_train_state_push_loss(owl_train_state *s, float loss);
owl_status owl_train_state_push_val(owl_train_state *s, float loss);
void owl_train_state_free(owl_train_state *s);
/* FNV-1a of the data's tokens and targets (checks that a resume reads the same data). */
uint64_t owl_data_hash(const owl_data *d);
owl_status owl_train_ckpt_save(const char *path, owl_train *tr, const owl_train_state *s, const float *m,
                               const float *v);
/* s holds this run's settings; on success its progress and history, the
 * trained floats, m and v are those of the checkpoint. */
owl_status owl_train_ckpt_load(const char *path, owl_train *tr, owl_train_state *s, float *m, float *v);


/* ---- loss curve (train_plot.c) ----
 * An SVG of the training loss of each step and the validation losses
 * (at the steps they were measured after), written atomically. */
owl_status owl_train_plot_svg(const owl_train_state *s, const char *path);

#endif
