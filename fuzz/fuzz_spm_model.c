/* libFuzzer target: the SentencePiece tokenizer.model reader and the llama2.c
 * tokenizer.bin reader on arbitrary bytes (the first input byte picks the
 * reader). Any input must give a tokenizer or an error, never a crash, a
 * leak or an over-read; a tokenizer that loads encodes and decodes a few
 * texts, with and without special tokens. */
#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    owl_meta meta;
    memset(&meta, 0, sizeof meta);
    owl_status s = data[0] & 1 ? owl_llama2c_tokenizer_read_mem("fuzz.bin", data + 1, size - 1, &meta)
                               : owl_spm_model_read_mem("fuzz.model", data + 1, size - 1, &meta);
    owl_tokenizer *tok = NULL;
    if (s == OWL_OK && owl_tokenizer_from_meta(&meta, &tok) == OWL_OK) {
        const char *texts[] = {"Hello world <s> </s> 123  x\n\t\xe2\x96\x81\xf0\x9f\xa6\x89", "\xff\xfe invalid \xc3",
                               "   "};
        for (int i = 0; i < 3; i++) {
            for (int sp = 0; sp < 2; sp++) {
                int32_t *ids = NULL;
                size_t n = 0;
                if (owl_tokenize(tok, texts[i], strlen(texts[i]), true, sp, &ids, &n) == OWL_OK) {
                    char *back = NULL;
                    if (owl_detokenize(tok, ids, n, &back) == OWL_OK) free(back);
                    free(ids);
                }
            }
        }
        owl_tokenizer_free(tok);
    }
    owl_meta_free(&meta);
    return 0;
}
