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
