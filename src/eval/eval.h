/* eval/: measuring models and making smaller ones.
 *
 * ppl.c       per-token statistics (negative log-likelihood, KL divergence
 *             to a base model, top-1 agreement) and their running sums, with
 *             standard errors as llama.cpp's perplexity tool reports them.
 * perplexity.c  the windowed perplexity run over a text (llama.cpp's scheme).
 * quant_mix.c   which type each tensor gets for a quantization mix (Q4_K_M ...).
 * quantize.c    quantizing a weights table into a GGUF file. */
#ifndef OWL_EVAL_H
#define OWL_EVAL_H

#include "format/format.h"

/* ---- per-token statistics (ppl.c) ---- */

typedef struct owl_eval_token {
    double nll;      /* -log p_model(target) */
    double base_nll; /* -log p_base(target) (0 without a base) */
    double kl;       /* KL(base || model) over the vocabulary (0 without a base) */
    bool agree;      /* argmax of model == argmax of base */
} owl_eval_token;

/* Statistics of one scored position: logits of the model (and of the base
 * model, or NULL) over n_vocab entries, target the token that follows.
 * Softmaxes in double. NaN/inf logits give non-finite results. */
void owl_eval_token_stats(const float *logits, const float *base_logits, int n_vocab, int32_t target,
                          owl_eval_token *out);

/* Running sums over scored tokens. Zero-initialise. */
typedef struct owl_eval_acc {
    uint64_t n;
    double nll, nll2;         /* sums of nll and nll^2 */
    double bnll, bnll2;       /* the base's */
    double dnll, dnll2;       /* sums of nll - base_nll and its square */
    double kl, kl2;
    uint64_t agree;
    bool has_base;
} owl_eval_acc;

void owl_eval_acc_push(owl_eval_acc *acc, const owl_eval_token *t);

typedef struct owl_eval_result {
    uint64_t n;               /* scored tokens */
    double ppl, ppl_err;      /* exp(mean nll), delta-method standard error */
    double base_ppl, base_ppl_err;
    double ppl_ratio, ppl_ratio_err; /* ppl / base_ppl: exp(mean(nll - base_nll)) */
    double kl, kl_err;        /* mean KL(base || model), standard error of the mean */
    double agree, agree_err;  /* fraction of argmax matches, binomial standard error */
    /* filled by owl_eval_perplexity with a base model only: */
    double kl_median, kl_p99, kl_max; /* of the per-token KL divergences */
} owl_eval_result;

/* Errors need n >= 2 (else 0). */
void owl_eval_acc_result(const owl_eval_acc *acc, owl_eval_result *out);

/* The q-quantile (0 <= q <= 1) of v[0..n) with linear interpolation between
 * the sorted values at floor and ceil of q * (n - 1) (NumPy's default);
 * sorts v in place. NaN for n == 0. */
double owl_eval_quantile(double *v, size_t n, double q);

/* ---- perplexity over a text (perplexity.c) ---- */

typedef struct owl_ppl_params {
    int n_ctx;      /* window length; 0: min(512, model context) */
    int n_chunks;   /* windows to evaluate; <= 0: all */
    /* Called after each window with the running result (may be NULL). */
    void (*on_chunk)(void *ud, int chunk, int n_chunks, const owl_eval_result *running);
    void *ud;
} owl_ppl_params;

/* Tokenizes text with model's tokenizer (BOS first), cuts it into
 * non-overlapping windows of n_ctx tokens, each starting with BOS (unless
 * the tokenizer adds no BOS: add_bos_token false), evaluates
 * each in one batch and scores positions n_ctx/2 .. n_ctx-2 predicting the
 * next token. base (may be NULL): evaluated on the same windows for KL,
 * agreement and base perplexity; it must have the same vocabulary size.
 * OWL_ERR_RANGE: text shorter than two windows, n_ctx above a model's
 * context. */
owl_status owl_eval_perplexity(owl_model *model, owl_model *base, const char *text, size_t len,
                               const owl_ppl_params *params, owl_eval_result *out);

/* ---- quantization mixes (quant_mix.c) ---- */

typedef struct owl_quant_mix {
    const char *name;     /* "Q4_K_M", "Q8_0", "Q4_K", "F16", ... */
    owl_dtype base;       /* the type most matrices get */
    uint32_t file_type;   /* llama.cpp's LLAMA_FTYPE value (general.file_type) */
    bool rules;           /* llama.cpp's per-tensor choices apply (false: pure) */
} owl_quant_mix;

/* Looks a mix or block type up by name (case-insensitive); NULL if unknown. */
const owl_quant_mix *owl_eval_mix_find(const char *name);
/* Names of every mix, comma-separated (for help and errors). */
const char *owl_eval_mix_names(void);

/* What the mix rules need to know of the model. */
typedef struct owl_quant_plan_info {
    int n_attn_v;        /* tensors whose name holds "attn_v.weight" */
    int n_ffn_down;      /* ... "ffn_down" */
    int n_gqa;           /* n_head / n_head_kv (1 if unknown) */
    bool has_output;     /* output.weight exists (else token_embd is the output) */
    int n_expert;        /* {arch}.expert_count (0: dense) */
    int n_layers;        /* 1 + the largest N of tensors named blk.N.* */
} owl_quant_plan_info;

/* The counters the rules keep while walking tensors in file order. */
typedef struct owl_quant_plan_state {
    int i_attn_v, i_ffn_down;
} owl_quant_plan_state;

/* The type tensor w gets in mix (w's own type when it is kept as is, e.g.
 * 1-D norms). Call for every tensor in file order (state counts layers).
 * A type whose block does not divide the rows falls back as llama.cpp does
 * (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0 (owl has no
 * IQ4_NL), then F16 if even that does not divide); OWL_DTYPE_COUNT if the
 * type is a 32-block type that does not divide the rows (no fallback).
 * *fallback (may be NULL): set if a fallback type was taken. */
owl_dtype owl_eval_mix_type(const owl_quant_mix *mix, const owl_quant_plan_info *info, owl_quant_plan_state *st,
                            const owl_weight *w, bool *fallback);
/* Fills info from a weights table. */
void owl_eval_plan_info(const owl_weights *ws, owl_quant_plan_info *info);

/* ---- quantizing a weights table (quantize.c) ---- */

typedef struct owl_quantize_params {
    const owl_quant_mix *mix;
    bool allow_requantize;   /* input tensors already quantized are dequantized first */
    /* Progress after each tensor (may be NULL). */
    void (*on_tensor)(void *ud, size_t i, size_t n, const owl_weight *in, owl_dtype out_type);
    void *ud;
} owl_quantize_params;

typedef struct owl_quantize_stats {
    uint64_t in_bytes, out_bytes;
    size_t n_tensors, n_quantized;
    size_t n_fallback;   /* tensors that took a fallback type */
} owl_quantize_stats;

/* Quantizes every tensor of ws as params->mix says and writes a GGUF file
 * to out_path atomically (all metadata copied, general.file_type and
 * general.quantization_version = 2 set). ws must use GGUF tensor names and
 * llama.cpp's Q/K row order. Rows are quantized in parallel (OpenMP). */
owl_status owl_eval_quantize(const owl_weights *ws, const char *out_path, const owl_quantize_params *params,
                             owl_quantize_stats *stats);

#endif
