/* tokenizer/: vocabularies and the encoders that use them: SentencePiece-
 * style BPE (scores, byte fallback), byte-level BPE (merge ranks, regex
 * pre-tokenizer; tokenizer.json), special tokens, streaming decode.
 * struct owl_tokenizer is opaque to the public API. */
#ifndef OWL_TOKENIZER_H
#define OWL_TOKENIZER_H

#include "base/base.h"
#include "format/format.h"

typedef enum owl_tok_kind {
    OWL_TOK_SPM = 1, /* SentencePiece-style: scores, '▁' for space, <0xXX> byte fallback */
    OWL_TOK_BPE = 2, /* byte-level BPE: merge ranks, GPT-2 byte-to-unicode map, regex pre-split */
} owl_tok_kind;

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    OWL_TOKTYPE_NORMAL = 1,
    OWL_TOKTYPE_UNKNOWN = 2,
    OWL_TOKTYPE_CONTROL = 3,
    OWL_TOKTYPE_USER_DEFINED = 4,
    OWL_TOKTYPE_UNUSED = 5,
    OWL_TOKTYPE_BYTE = 6,
};

/* Loads the tokenizer described by GGUF-style metadata (tokenizer.ggml.*),
 * whichever file it came from. */
owl_status owl_tokenizer_from_meta(const owl_meta *meta, owl_tokenizer **out);
void owl_tokenizer_free(owl_tokenizer *tok);


/* ---- vocabulary: pieces and a piece -> id hash map (vocab.c) ---- */

typedef struct owl_vocab {
    int n;                 /* number of tokens */
    owl_str *pieces;       /* pieces[id]: bytes as stored (SPM: '▁' for space; BPE: GPT-2 byte alphabet) */
    float *scores;         /* SPM scores (NULL if none) */
    int32_t *types;        /* OWL_TOKTYPE_* per token */
    uint32_t *slots;       /* hash table of ids + 1 (0 = empty), size mask + 1 */
    uint32_t mask;
    owl_arena arena;
} owl_vocab;

/* Builds the vocabulary from n pieces (copied), optional scores and types
 * (NULL: all 0 / OWL_TOKTYPE_NORMAL). Duplicate pieces keep the lowest id. */
owl_status owl_vocab_init(owl_vocab *v, int n, const owl_str *pieces, const float *scores, const int32_t *types);
void owl_vocab_free(owl_vocab *v);
/* Id of a piece, -1 if absent. */
int32_t owl_vocab_find(const owl_vocab *v, const char *s, size_t len);
uint64_t owl_hash_bytes(const void *data, size_t len);

/* ---- the tokenizer ---- */

struct owl_bpe;  /* byte-level BPE state (bpe.c): merge ranks, pre-tokenizer */
struct owl_norm; /* normalizer chain from tokenizer.json (NULL: none) */

struct owl_tokenizer {
    owl_tok_kind kind;
    owl_vocab vocab;
    int32_t bos, eos, unk, pad; /* -1 if none */
    bool add_bos, add_eos;
    bool add_space_prefix;      /* SPM: a '▁' before the text */
    int32_t byte_tokens[256];   /* SPM byte fallback <0xXX> ids, -1 if absent */
    /* Tokens that text can name when parse_special is on (control and
     * user-defined tokens), longest first. */
    int32_t *specials;          /* malloc'd; owl_tokenizer_free frees it */
    int n_specials;
    struct owl_bpe *bpe;
    struct owl_norm *norm;
    /* SPM (spm.c): */
    bool remove_extra_spaces;   /* collapse runs of ' ' and strip both ends (sentencepiece's remove_extra_whitespaces) */
    size_t max_piece_len;       /* longest piece in bytes */
    int n_user_defined;         /* user-defined pieces: always split out of plain text, as sentencepiece does */
    bool has_unused;            /* some pieces are UNUSED: merged, then split back into their parts */
    struct owl_spm_pairs *spm_pairs; /* adjacent character pairs inside pieces (spm.c); NULL: not built */
};

/* Shared helpers for the encoders. */
/* Splits text at special-token matches (when parse_special) and calls
 * encode_plain on each plain stretch; appends ids to a growing array. */
typedef struct owl_ids {
    int32_t *v;
    size_t n, cap;
} owl_ids;
owl_status owl_ids_push(owl_ids *ids, int32_t id);

owl_status owl_spm_encode(const owl_tokenizer *tok, const char *text, size_t len, owl_ids *out);
/* Same, choosing whether the '▁' prefix goes before this stretch (the
 * dispatcher adds it at the start of the text and after a special token). */
/* Builds / frees tok->spm_pairs: lets the encoder cut text where no piece
 * can span, so that merges run on short stretches (same result, faster). */
owl_status owl_spm_pairs_build(owl_tokenizer *tok);
void owl_spm_pairs_free(struct owl_spm_pairs *p);
owl_status owl_spm_encode_stretch(const owl_tokenizer *tok, const char *text, size_t len, bool space_prefix,
                                  owl_ids *out);
owl_status owl_bpe_encode(const owl_tokenizer *tok, const char *text, size_t len, owl_ids *out);

/* ---- byte-level / tokenizer.json BPE (bpe*.c, tokenizer_json.c; engineer "bpe") ----
 * kind OWL_TOK_BPE covers every BPE model: GPT-2 style byte-level ones and
 * SentencePiece-style ones from tokenizer.json (byte fallback, '▁').
 * owl_bpe_encode encodes a plain stretch: non-special added tokens are still
 * split out, then normalizer, pre-tokenizer, merges. owl_bpe_encode_text does
 * the whole text: added tokens first (special ones only when parse_special,
 * honouring lstrip/rstrip/single_word; normalized ones are looked for in the
 * normalized text), then the same; the dispatcher should
 * prefer it for OWL_TOK_BPE. Neither adds BOS/EOS. */
owl_status owl_bpe_encode_text(const owl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                               owl_ids *out);
/* Same; plain (NULL: none) has a byte per byte of text, nonzero where the
 * text came from a user: no special token is matched over those bytes. */
owl_status owl_bpe_encode_masked(const owl_tokenizer *tok, const char *text, size_t len, bool parse_special,
                                 const uint8_t *plain, owl_ids *out);
/* owl_tokenize with parse_special, except that no special token is matched
 * over bytes where plain[i] != 0 (text a user typed inside a rendered chat
 * template: "<|im_end|>" there stays text, the template's own is a token). */
owl_status owl_tokenize_masked(const owl_tokenizer *tok, const char *text, size_t len, bool add_bos,
                               const uint8_t *plain, int32_t **ids, size_t *n_ids);
/* Bytes of one token as text (GPT-2 alphabet mapped back, <0xXX> -> byte,
 * '▁' -> ' ', added tokens as written). cap too small: OWL_ERR_RANGE with
 * *len = the size needed. */
owl_status owl_bpe_token_bytes(const owl_tokenizer *tok, int32_t id, char *buf, size_t cap, size_t *len);
/* Whole decode of a BPE tokenizer's ids (leading-space strip of the
 * decoder applied) into a malloc'd NUL-terminated string. */
owl_status owl_bpe_decode(const owl_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len);
/* GGUF metadata with tokenizer.ggml.model = "gpt2": fills tok (allocated
 * and zeroed by the caller, kind set to OWL_TOK_BPE): vocabulary, merges,
 * bos/eos/unk/pad, add_bos/add_eos, specials, pre-tokenizer from
 * tokenizer.ggml.pre. */
owl_status owl_bpe_from_meta(const owl_meta *meta, owl_tokenizer *tok);
/* Hugging Face tokenizer.json (+ tokenizer_config.json beside it when
 * present: add_bos_token, add_eos_token, bos/eos/unk/pad tokens,
 * chat_template). path may also be a Hugging Face directory (its
 * tokenizer.json, else encoder.json + vocab.bpe) or GPT-2's encoder.json. */
owl_status owl_tokenizer_json_load(const char *path, owl_tokenizer **out);
/* Same from bytes (config may be NULL); name is used in errors (fuzzing). */
owl_status owl_tokenizer_json_load_mem(const char *name, const char *json, size_t len, const char *config,
                                       size_t config_len, owl_tokenizer **out);
/* The other way, for GGUF writers: tokenizer.ggml.* (model "gpt2", pre,
 * tokens, token_type, merges, special ids, add_bos/eos, chat_template) of a
 * byte-level BPE tokenizer. OWL_ERR_UNSUPPORTED for SentencePiece-style
 * BPE or a pre-tokenizer GGUF has no name for. */
owl_status owl_bpe_to_meta(const owl_tokenizer *tok, owl_meta *meta);
/* OpenAI GPT-2 encoder.json + vocab.bpe. */
owl_status owl_tokenizer_gpt2_load(const char *encoder_json, const char *vocab_bpe, owl_tokenizer **out);
/* The chat template that came with a BPE tokenizer (tokenizer_config.json,
 * else chat_template.jinja; tokenizer.chat_template for GGUF gpt2 models),
 * NULL if none. */
const char *owl_tokenizer_chat_template(const owl_tokenizer *tok);
/* Frees tok->bpe / tok->norm (owl_tokenizer_free calls these). */
void owl_bpe_free(struct owl_bpe *bpe);
void owl_norm_free(struct owl_norm *norm);

#endif
