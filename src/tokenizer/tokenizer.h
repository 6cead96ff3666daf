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

#endif

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
    int32_t *specials;
    int n_specials;
    struct owl_bpe *bpe;
    struct owl_norm *norm;
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
owl_status owl_bpe_encode(const owl_tokenizer *tok, const char *text, size_t len, owl_ids *out);
