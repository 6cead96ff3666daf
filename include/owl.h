/* owl — open weights, locally.
 *
 * The public library: opaque handles, owl_status return codes and a
 * per-thread error text. The CLI and the server use only this header.
 *
 * Data flows one way: file -> weights table -> model -> context -> logits ->
 * sampler -> tokens -> text.
 */
#ifndef OWL_H
#define OWL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------ */

typedef enum owl_status {
    OWL_OK = 0,
    OWL_ERR_IO,          /* a file could not be opened, read, mapped or written */
    OWL_ERR_FORMAT,      /* the bytes do not follow the format */
    OWL_ERR_UNSUPPORTED, /* valid, but not something owl runs (yet) */
    OWL_ERR_NOMEM,       /* an allocation failed */
    OWL_ERR_ARG,         /* a caller passed a bad argument */
    OWL_ERR_RANGE,       /* a value is outside what is allowed (e.g. context full) */
} owl_status;

/* The message of the last error on this thread: names the file, the field
 * and the value. Valid until the next failing call on this thread. */
const char *owl_last_error(void);
const char *owl_status_name(owl_status s);

/* Threads used by matrix products (0 = all cores). */
void owl_set_threads(int n);
int owl_get_threads(void);

/* ---- models ----------------------------------------------------------- */

typedef struct owl_model owl_model;
typedef struct owl_ctx owl_ctx;
typedef struct owl_tokenizer owl_tokenizer;
typedef struct owl_sampler owl_sampler;

typedef struct owl_model_params {
    /* For llama2.c checkpoints: the tokenizer.bin that goes with it. NULL:
     * look for tokenizer.bin beside the checkpoint. */
    const char *tokenizer_path;
} owl_model_params;

/* Loads a GGUF file or a llama2.c checkpoint (decided by the file's bytes). */
owl_status owl_model_load(const char *path, const owl_model_params *params, owl_model **out);
void owl_model_free(owl_model *model);

typedef struct owl_model_info {
    const char *arch;         /* "llama", ... */
    const char *weight_type;  /* dtype name of the largest matrices, "F32", "F16", ... */
    int n_vocab;
    int n_ctx_train;
    int dim;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int ffn_dim;
    uint64_t n_params;
    uint64_t weight_bytes;     /* bytes of all tensors */
    uint64_t bytes_per_token;  /* bytes of weights read to generate one token */
} owl_model_info;

void owl_model_get_info(const owl_model *model, owl_model_info *info);
const owl_tokenizer *owl_model_tokenizer(const owl_model *model);

/* ---- contexts: KV cache and evaluation ---------------------------------- */

/* n_ctx = 0: the model's training context. */
owl_status owl_ctx_new(owl_model *model, int n_ctx, owl_ctx **out);
void owl_ctx_free(owl_ctx *ctx);
int owl_ctx_size(const owl_ctx *ctx);
/* Number of positions already in the KV cache. */
int owl_ctx_pos(const owl_ctx *ctx);
/* Forget positions >= pos (pos <= owl_ctx_pos). */
void owl_ctx_truncate(owl_ctx *ctx, int pos);

/* Runs n tokens at the next positions, all through each matrix at once.
 * all_logits: keep the logits of every token, else only of the last one.
 * OWL_ERR_RANGE if the tokens do not fit in the context. */
owl_status owl_ctx_eval(owl_ctx *ctx, const int32_t *tokens, int n, bool all_logits);
/* Logits (n_vocab floats) of token i of the last eval; i = -1: the last token. */
const float *owl_ctx_logits(const owl_ctx *ctx, int i);
/* Embedding of tokens (n <= owl_ctx_size): the final normed hidden states
 * of the tokens run from position 0, averaged and scaled to length 1; out
 * gets owl_model_info.dim floats. Empties the KV cache (pos 0 after) and
 * the logits. */
owl_status owl_ctx_embed(owl_ctx *ctx, const int32_t *tokens, int n, float *out);

/* ---- LoRA adapters ------------------------------------------------------ */

typedef struct owl_lora owl_lora;

/* Loads a LoRA adapter for model: a PEFT directory (adapter_config.json +
 * adapter_model.safetensors), its .safetensors file, or a llama.cpp GGUF
 * adapter. Checked against the model (architecture, tensor names, shapes,
 * ranks, finite values) with an error naming the tensor or key. The
 * adapter keeps a pointer to model: free it first. */
owl_status owl_lora_load(const owl_model *model, const char *path, owl_lora **out);
void owl_lora_free(owl_lora *lora);
/* Applies n adapters (n = 0: none, the base model exactly) to ctx's next
 * evaluations, adapter i with its own scale times scales[i] (NULL: all 1).
 * The adapters must be loaded for ctx's model and outlive their use. */
owl_status owl_ctx_set_adapters(owl_ctx *ctx, const owl_lora *const *adapters, const float *scales, int n);

/* ---- batches: several sequences in one forward pass ------------------ */

/* Runs the next tokens of several contexts (sequences) of one model at once:
 * every weight matrix is multiplied once over the rows of all of them, each
 * row at its own context's position, attention against its own cache, its
 * own adapters. Gives the same logits as owl_ctx_eval on each context alone
 * (up to float summation order). */
typedef struct owl_batch owl_batch;

/* max_rows: tokens of all sequences run per step (0 = 512); more are cut
 * into further steps. */
owl_status owl_batch_new(owl_model *model, int max_rows, owl_batch **out);
void owl_batch_free(owl_batch *batch);
int owl_batch_rows(const owl_batch *batch);
/* Sequence i: counts[i] >= 1 tokens[i] for ctxs[i] (distinct contexts,
 * 1..256 sequences). Afterwards owl_ctx_logits(ctxs[i], ...) reads its logits
 * as after owl_ctx_eval(ctxs[i], tokens[i], counts[i], all_logits). */
owl_status owl_batch_eval(owl_batch *batch, owl_ctx *const *ctxs, const int32_t *const *tokens, const int *counts,
                          int n_seq, bool all_logits);

/* ---- tokenizer -------------------------------------------------------- */

/* Loads a standalone tokenizer: SentencePiece tokenizer.model, llama2.c
 * tokenizer.bin, a GGUF file (only its tokenizer) or a tokenizer.json. */
owl_status owl_tokenizer_load(const char *path, owl_tokenizer **out);
void owl_tokenizer_free(owl_tokenizer *tok);

int owl_token_count(const owl_tokenizer *tok);
int32_t owl_token_bos(const owl_tokenizer *tok); /* -1 if none */
int32_t owl_token_eos(const owl_tokenizer *tok); /* -1 if none */
/* The stored piece of a token (not NUL-terminated), NULL for a bad id. */
const char *owl_token_piece(const owl_tokenizer *tok, int32_t id, size_t *len);
bool owl_token_is_special(const owl_tokenizer *tok, int32_t id);

/* Encodes text. add_bos: start with BOS (if the model has one and its
 * tokenizer.ggml.add_bos_token is not false). parse_special: text like "<s>" may
 * become a special token (never for plain user text). *ids is malloc'd. */
owl_status owl_tokenize(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t **ids, size_t *n_ids);

/* Streaming decode: bytes come out only as whole UTF-8 characters. */
typedef struct owl_detok owl_detok;
owl_status owl_detok_new(const owl_tokenizer *tok, owl_detok **out);
void owl_detok_free(owl_detok *d);
/* Appends the text of token id; returns a pointer to the complete text ready
 * now (NUL-terminated, valid until the next call) and its length in *len.
 * NULL (error text set) for an id outside the vocabulary. The first token
 * (or the one after BOS) loses the space that SentencePiece's dummy prefix put
 * in front of it. */
const char *owl_detok_push(owl_detok *d, int32_t id, size_t *len);
/* Continues a decode after tokens shown already (e.g. the prompt): prev is
 * the last of them; no leading space is dropped then. */
void owl_detok_prime(owl_detok *d, int32_t prev);
/* Whatever is left (an incomplete character comes out as U+FFFD). */
const char *owl_detok_flush(owl_detok *d, size_t *len);
/* Whole decode of ids into a malloc'd NUL-terminated string. */
owl_status owl_detokenize(const owl_tokenizer *tok, const int32_t *ids, size_t n, char **text);

/* ---- sampling --------------------------------------------------------- */

typedef struct owl_sampler_params {
    float temperature;    /* <= 0: greedy (argmax) */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* how many recent tokens the penalty looks at */
    uint64_t seed;
} owl_sampler_params;

void owl_sampler_defaults(owl_sampler_params *p);
owl_status owl_sampler_new(const owl_sampler_params *p, int n_vocab, owl_sampler **out);
void owl_sampler_free(owl_sampler *s);
/* Picks a token from logits (not modified); -1 if no logit is a number. */
int32_t owl_sampler_sample(owl_sampler *s, const float *logits);
/* Records a token as generated or seen (for the repetition penalty). */
void owl_sampler_accept(owl_sampler *s, int32_t token);

#ifdef __cplusplus
}
#endif
#endif
