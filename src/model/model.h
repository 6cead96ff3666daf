/* model/: architecture descriptors (one row per family), binding a weights
 * table to roles, the forward pass of a decoder (batched), the KV cache.
 * struct owl_model and struct owl_ctx are opaque to the public API. */
#ifndef OWL_MODEL_H
#define OWL_MODEL_H

#include "base/base.h"
#include "format/format.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

/* ---- architecture table (arch.c) ---- */

typedef enum owl_norm_kind { OWL_NORM_RMS = 1 } owl_norm_kind;
typedef enum owl_act_kind { OWL_ACT_SWIGLU = 1 } owl_act_kind;

typedef struct owl_arch {
    const char *name;   /* GGUF general.architecture and key prefix */
    bool rope_neox;     /* RoPE pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    bool qkv_bias;      /* blk.N.attn_{q,k,v}.bias are looked for (used if present) */
    bool tied_ok;       /* output.weight may be absent: token_embd.weight is the head */
    owl_norm_kind norm;
    owl_act_kind act;
} owl_arch;

/* The row of a GGUF architecture name, NULL if owl does not know it. */
const owl_arch *owl_arch_find(const char *name, size_t len);
/* Names of all known architectures, comma separated (for error messages). */
const char *owl_arch_list(void);

/* ---- a bound model ---- */

typedef struct owl_hparams {
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim;
    int n_vocab, n_ctx_train, n_rot;
    float eps, rope_base, rope_scale;
    int q_dim, kv_dim; /* n_heads * head_dim, n_kv_heads * head_dim */
} owl_hparams;

typedef struct owl_layer {
    const float *attn_norm;        /* dim, F32 (converted at load if needed) */
    owl_mat wq, wk, wv, wo;
    const float *bq, *bk, *bv;     /* NULL if absent */
    const float *ffn_norm;
    owl_mat w_gate, w_up, w_down;
} owl_layer;

struct owl_model {
    owl_weights weights;
    const owl_arch *arch;
    owl_hparams hp;
    owl_mat tok_embd;              /* rows = vocab, cols = dim */
    const float *out_norm;
    const float *rope_freqs;       /* n_rot/2 frequency divisors (rope_freqs.weight), NULL if absent */
    owl_mat output;                /* == tok_embd when tied */
    bool tied;
    bool rope_neox;                /* the layout RoPE uses for this file (see owl_model_bind) */
    owl_layer *layers;
    owl_arena arena;               /* F32 copies of small vectors, layers */
    owl_tokenizer *tok;            /* NULL if the file holds no vocabulary */
    const char *weight_type;
    uint64_t n_params, weight_bytes, bytes_per_token;
};

/* Binds m->weights (already read) to roles: architecture row, hyper-
 * parameters, every tensor checked for presence, dtype and shape. */
owl_status owl_model_bind(owl_model *m);

/* ---- context (ctx.c) and forward pass (forward.c, attention.c) ---- */

struct owl_ctx {
    owl_model *model;
    int n_ctx;          /* positions the KV cache holds */
    int pos;            /* positions used */
    int n_ub;           /* most tokens pushed through the matrices at once */
    float *k_cache;     /* [layer][n_ctx][kv_dim] */
    float *v_cache;
    size_t cache_bytes; /* of each (mapped) */
    /* scratch, sized for n_ub tokens */
    float *x;           /* n_ub x dim: residual stream */
    float *h;           /* n_ub x dim: normed */
    float *q;           /* n_ub x q_dim */
    float *att;         /* n_ub x q_dim: attention output */
    float *o;           /* n_ub x dim: projection out */
    float *gate, *up;   /* n_ub x ffn_dim */
    float *scores;      /* n_score_threads x owl_model_attention_scratch() (mapped) */
    size_t scores_bytes;
    double *rope_inv;   /* n_rot/2 inverse frequencies */
    float *rope_cs;     /* n_ub x n_rot/2 x (cos, sin) of the micro-batch's positions */
    int n_score_threads;
    /* logits of the last eval */
    float *logits;
    size_t logits_cap;  /* floats */
    int n_logits;       /* rows held */
    int last_n;         /* tokens in the last eval */
    bool last_all;
};

/* Runs tokens [0, n) (n <= ctx->n_ub) at positions ctx->pos... through all
 * layers; leaves the final hidden states (normed) in ctx->h and advances
 * ctx->pos. last_only: only the last token's state is wanted (it is then
 * row 0 of ctx->h); the KV cache is filled for all n either way. */
owl_status owl_model_forward(owl_ctx *ctx, const int32_t *tokens, int n, bool last_only);

/* Causal grouped-query attention of n query rows (in ctx->q, roped) at
 * positions pos0.. against layer l's cache; writes ctx->att. */
void owl_model_attention(owl_ctx *ctx, int l, int pos0, int n);
/* Floats of per-thread scratch owl_model_attention needs. */
size_t owl_model_attention_scratch(int n_ctx, int head_dim);

#endif
