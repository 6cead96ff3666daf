/* A Hugging Face byte-level BPE tokenizer.json (with tokenizer_config.json
 * beside it) as GGUF "gpt2" tokenizer keys, for the Hugging Face directory
 * reader and `owl convert`: the tokenizer layer loads the file and writes
 * its GGUF form (owl_bpe_to_meta: tokens with [PADn] holes, token types,
 * merges, tokenizer.ggml.pre, special ids, add_bos/eos, chat template).
 * SentencePiece-style tokenizer.json files have no such form
 * (OWL_ERR_UNSUPPORTED). */
#include "format/hf_dir.h"
#include "tokenizer/tokenizer.h"

owl_status owl_hf_tokenizer_json_meta(const char *path, owl_meta *meta) {
    owl_tokenizer *tok = NULL;
    owl_status st = owl_tokenizer_json_load(path, &tok);
    if (st) return st;
    if (tok->kind != OWL_TOK_BPE)
        st = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: not a BPE tokenizer", path);
    else if ((st = owl_bpe_to_meta(tok, meta)))
        st = owl_error_prefix(st, "%s", path);
    owl_tokenizer_free(tok);
    return st;
}
