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
typedef enum owl_act_kind { OWL_ACT_SWIGLU = 1, OWL_ACT_GEGLU } owl_act_kind;
/* RMSNorm of the projected queries and keys before RoPE (weights
 * blk.N.attn_q_norm / attn_k_norm): none, per head (head_dim weights,
 * Qwen3, Gemma 3), or over the whole q / k vector (q_dim / kv_dim, OLMo 2). */
typedef enum owl_qk_norm_kind { OWL_QK_NORM_NONE = 0, OWL_QK_NORM_HEAD, OWL_QK_NORM_FULL } owl_qk_norm_kind;

typedef struct owl_arch {
    const char *name;   /* GGUF general.architecture and key prefix */
    bool rope_neox;     /* RoPE pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    bool qkv_bias;      /* blk.N.attn_{q,k,v}.bias are looked for (used if present) */
    bool tied_ok;       /* output.weight may be absent: token_embd.weight is the head */
    owl_norm_kind norm;
    owl_act_kind act;      /* SwiGLU, or GeGLU (gelu, tanh form) */
    bool fused_qkv;        /* blk.N.attn_qkv.weight holds the Q, K, V rows (Phi-3) */
    bool fused_gate_up;    /* blk.N.ffn_up.weight holds the gate rows, then the up rows (Phi-3) */
    owl_qk_norm_kind qk_norm;
    bool no_pre_norms;     /* no attn_norm / ffn_norm before the sublayers (OLMo 2) */
    bool post_norms;       /* post_attention_norm / post_ffw_norm on each sublayer's output */
    bool embd_scale;       /* embeddings multiplied by sqrt(dim) (Gemma) */
    bool swa_required;     /* <arch>.attention.sliding_window must be present */
    int swa_pattern;       /* with a window: 0 every layer; p: layer l global iff (l + 1) % p == 0 */
    float rope_base_swa;   /* RoPE base of the windowed layers if no key says (0: the global one) */
    float attn_softcap, final_softcap; /* defaults when the keys are absent (0: none) */
    int big_layers;        /* with this many layers (the 27B models) the query scale is
                              (dim / heads)^-0.5 instead of head_dim^-0.5, as llama.cpp decides */
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
    int n_swa;         /* sliding window: a query sees the n_swa latest positions (0: all) */
    int swa_pattern;   /* see owl_arch */
    float rope_base_swa; /* RoPE base of windowed layers (no scaling there); 0: same as global */
    float attn_scale;  /* query scale (head_dim^-0.5 unless the file says otherwise) */
    float attn_softcap, final_softcap; /* cap * tanh(x / cap) of scores / logits; 0: none */
    float rope_attn_factor; /* cos and sin multiplied by it (Phi-3 longrope; 1: none) */
    int n_ctx_orig;    /* rope.scaling.original_context_length (longrope: long factors beyond it) */
} owl_hparams;

typedef struct owl_layer {
    const float *attn_norm;        /* dim, F32 (converted at load if needed) */
    owl_mat wq, wk, wv, wo;
    const float *bq, *bk, *bv;     /* NULL if absent */
    const float *q_norm, *k_norm;  /* NULL unless the architecture has them */
    const float *ffn_norm;         /* NULL with no pre-norms (attn_norm too) */
    const float *post_attn_norm, *post_ffw_norm; /* NULL unless post-norms */
    owl_mat w_gate, w_up, w_down;  /* row ranges of fused tensors where the architecture fuses */
    bool swa;                      /* attention limited to the window */
} owl_layer;

struct owl_model {
    owl_weights weights;
    const owl_arch *arch;
    owl_hparams hp;
    owl_mat tok_embd;              /* rows = vocab, cols = dim */
    const float *out_norm;
    const float *rope_freqs;       /* n_rot/2 frequency divisors (rope_freqs.weight), NULL if absent */
    const float *rope_short, *rope_long; /* longrope divisors (rope_factors_short/long.weight), NULL if absent */
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

/* ---- low-rank deltas on the projections (lora_apply.c) ----
 * The math of LoRA at run time lives here so that the forward pass can call
 * it; reading, checking, merging and training adapters is adapt/'s job.
 * A pair adds scale * B (A x) to a projection's output: A is rank x in
 * (owl_mat rows = rank), B is out x rank. An unused pair has a.data NULL. */
typedef enum owl_proj {
    OWL_PROJ_Q, OWL_PROJ_K, OWL_PROJ_V, OWL_PROJ_O, OWL_PROJ_GATE, OWL_PROJ_UP, OWL_PROJ_DOWN,
    OWL_PROJ_LAYER_COUNT
} owl_proj;

typedef struct owl_lora_pair {
    owl_mat a, b;
} owl_lora_pair;

typedef struct owl_lora_weights {
    float scale;          /* alpha / rank, or alpha / sqrt(rank) with rsLoRA */
    owl_lora_pair *layer; /* n_layers x OWL_PROJ_LAYER_COUNT, indexed [l * OWL_PROJ_LAYER_COUNT + p] */
    owl_lora_pair output; /* the head: a is rank x dim, b is vocab x rank */
    owl_lora_pair embd;   /* embeddings: a is vocab x rank (row t = A's column t), b is dim x rank */
} owl_lora_weights;

#define OWL_LORA_MAX 8 /* adapters applied at once */

/* The adapters a context applies, each with its own user scale (times the
 * adapter's own scale). n = 0: none, the base model exactly. */
typedef struct owl_lora_set {
    int n;
    const owl_lora_weights *w[OWL_LORA_MAX];
    float scale[OWL_LORA_MAX];
} owl_lora_set;

/* Checks every pair of every adapter in set against the model's shapes
 * (in, out, and a.rows == b.cols) and installs the set on the context (a
 * copy of the set; the weights must outlive their use). Errors name the
 * layer and projection. */
owl_status owl_ctx_set_lora(owl_ctx *ctx, const owl_lora_set *set);
/* y (n rows of the projection's out) += the deltas of ctx's adapters for
 * layer l's projection p (l = -1: the output head) on x (n rows of in). */
owl_status owl_lora_add(owl_ctx *ctx, int l, owl_proj p, const float *x, float *y, int n);
/* x (n rows of dim) += the embedding deltas of tokens. */
owl_status owl_lora_add_embd(owl_ctx *ctx, const int32_t *tokens, float *x, int n);

/* ---- context (ctx.c) and forward pass (forward.c, attention.c) ---- */

/* Scratch of the forward pass for up to cap rows: a context holds one for
 * its own micro-batches, an owl_batch one for the rows of all its
 * sequences (batch.c). */
typedef struct owl_fwd_buf {
    int cap;            /* rows */
    float *x;           /* cap x dim: residual stream */
    float *h;           /* cap x dim: normed */
    float *q;           /* cap x q_dim */
    float *k, *v;       /* cap x kv_dim: keys / values of several sequences before they go to their caches */
    float *att;         /* cap x q_dim: attention output */
    float *o;           /* cap x dim: projection out */
    float *gate, *up;   /* cap x ffn_dim */
    float *rope_cs;     /* cap x n_rot/2 x (cos, sin) of each row's position */
    float *rope_cs_swa; /* the windowed layers' own, NULL if the model has no own base for them */
    int *row_seg;       /* cap: the segment each row belongs to */
} owl_fwd_buf;

owl_status owl_fwd_buf_init(owl_fwd_buf *b, const owl_model *m, int rows);
void owl_fwd_buf_free(owl_fwd_buf *b);

struct owl_ctx {
    owl_model *model;
    int n_ctx;          /* positions the KV cache holds */
    int pos;            /* positions used */
    int n_ub;           /* most tokens pushed through the matrices at once */
    float *k_cache;     /* [layer][n_ctx][kv_dim] */
    float *v_cache;
    size_t cache_bytes; /* of each (mapped) */
    owl_fwd_buf buf;    /* scratch, sized for n_ub tokens */
    float *scores;      /* n_score_threads x owl_model_attention_scratch() (mapped) */
    size_t scores_bytes;
    double *rope_inv;   /* n_rot/2 inverse frequencies */
    double *rope_inv_swa; /* the windowed layers' own (rope_base_swa), NULL if none */
    int n_score_threads;
    /* logits of the last eval */
    float *logits;
    size_t logits_cap;  /* floats */
    int n_logits;       /* rows held */
    int last_n;         /* tokens in the last eval */
    bool last_all;
    owl_lora_set lora;  /* adapters applied (n = 0: none) */
    float *lora_tmp;    /* their scratch, lora_tmp_cap floats */
    size_t lora_tmp_cap;
};

/* Room for rows x n_vocab logits in ctx->logits (kept if big enough). */
owl_status owl_ctx_logits_reserve(owl_ctx *ctx, int rows);

/* One sequence's share of a forward pass: n tokens of ctx at positions
 * ctx->pos... (the KV cache must have room). */
typedef struct owl_seg {
    owl_ctx *ctx;
    const int32_t *tokens;
    int n;
    bool last_only; /* only the last row's final state is wanted */
    /* set by the forward pass: where the segment's final (normed) states
     * are in the buffer's h, n_out rows (n, or 1 with last_only) */
    int row, out_row, n_out;
} owl_seg;

#define OWL_BATCH_MAX_SEQ 256 /* sequences in one forward pass */

/* Runs the segments (1..OWL_BATCH_MAX_SEQ, distinct contexts of one model,
 * rows in all <= b->cap) through all layers at once: every matrix sees the
 * rows of all segments, RoPE uses each row's own position, each segment's
 * attention its own cache, each context's adapters its own rows. Leaves the
 * final normed states in b->h (see owl_seg.out_row) and advances each
 * context's pos. The KV cache is filled for all rows either way. */
owl_status owl_model_forward_segs(owl_fwd_buf *b, owl_seg *segs, int n_seg);
/* The one-segment case on ctx's own buffer (n <= ctx->n_ub); with
 * last_only the last token's state is row 0 of ctx->buf.h. */
owl_status owl_model_forward(owl_ctx *ctx, const int32_t *tokens, int n, bool last_only);

/* Attention of one segment in one layer: n query rows at q (roped, row
 * stride q_dim) at positions pos0.. against ctx's cache; output rows at att. */
typedef struct owl_att_job {
    owl_ctx *ctx;
    int pos0, n;
    const float *q;
    float *att;
} owl_att_job;

/* Causal grouped-query attention of all jobs of layer l, in one parallel
 * loop over (job, query block, head). */
void owl_model_attention(const owl_att_job *jobs, int n_jobs, int l);
/* Floats of per-thread scratch owl_model_attention needs. */
size_t owl_model_attention_scratch(int n_ctx, int head_dim);

#endif
