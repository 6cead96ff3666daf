/* adapt/ internal: the trainer's state shared by train.c (sequence loss)
 * and train_ops.c (one decoder block forward and backward). */
#ifndef OWL_ADAPT_TRAIN_INTERNAL_H
#define OWL_ADAPT_TRAIN_INTERNAL_H

#include "adapt/train.h"

/* One trained pair: A (rank x in), B (out x rank) in the owl_lora, their
 * gradients at grad + ga_off / gb_off. a == NULL: projection not adapted. */
typedef struct owl_tparam {
    float *a, *b;
    int in, out;
    size_t ga_off, gb_off;
} owl_tparam;

typedef struct owl_ttensor {
    float *p;
    size_t g_off, n;
    int l;
    owl_proj proj;
    bool b;
} owl_ttensor;

struct owl_train {
    owl_model *m;
    owl_lora *lora;
    owl_ctx *ctx; /* RoPE frequencies */
    int max_n, rank;
    float s;      /* the adapter's scale */
    owl_tparam *tp; /* [l * OWL_PROJ_LAYER_COUNT + p] */
    owl_ttensor *tens;
    int n_tensors;
    size_t n_param;
    float *grad;
    float *xs; /* (n_layers + 1) x max_n x dim: each block's input, then the last output */
    /* one block's activations (n rows each) */
    float *h1, *rs1, *qp, *kp, *v, *rsq, *rsk, *q, *k, *P, *Sc, *att, *o, *rso, *x2, *h2, *rs2, *g, *u, *a, *d, *rsd;
    float *z[OWL_PROJ_LAYER_COUNT]; /* x A^T of each adapted projection: n x rank */
    /* gradients and scratch */
    float *dx, *dh, *dq, *dk, *dv, *datt, *dg, *du, *dz, *tmp, *tmp2, *yt;
    float *cs, *cs_swa; /* RoPE cos / sin of positions 0..n-1 */
    float *hf, *rsf;    /* final norm */
    float *logits;
    size_t logits_cap;
    int *rows; /* rows with a target */
};

/* y = x / rms(x) * w per vector (w NULL: none), rs[i] = 1 / rms of vector i. */
void owl_train_norm_fwd(float *y, const float *x, const float *w, float *rs, int n_vec, int len, float eps);
/* dx (+)= the gradient through that norm of dy (acc: add, else overwrite). */
void owl_train_norm_bwd(float *dx, const float *x, const float *w, const float *rs, const float *dy, int n_vec,
                        int len, bool acc);
/* Block l on xin (n x dim) into xout, its internals kept in tr's buffers. */
owl_status owl_train_layer_fwd(owl_train *tr, int l, const float *xin, float *xout, int n);
/* With block l's internals in the buffers (from xin) and tr->dx = d loss /
 * d output: adds the gradients of block l's pairs, leaves d loss / d xin in
 * tr->dx. */
owl_status owl_train_layer_bwd(owl_train *tr, int l, const float *xin, int n);

#endif
