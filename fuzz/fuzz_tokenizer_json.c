/* libFuzzer target: the tokenizer.json loader on arbitrary bytes (the file's
 * content). Any input must give a tokenizer or an error, never a crash, a
 * leak or an over-read. A tokenizer that loads also encodes and decodes a
 * few texts, with and without special tokens. */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    owl_tokenizer *tok = NULL;
    if (owl_tokenizer_json_load_mem("fuzz.json", (const char *)data, size, NULL, 0, &tok) != OWL_OK) return 0;
    const char *texts[] = {"Hello world <s> 123  x\n\t\xe2\x96\x81\xf0\x9f\xa6\x89", "\xff\xfe invalid \xc3", ""};
    for (int i = 0; i < 4; i++) {
        const char *t = i < 3 ? texts[i] : (const char *)data;
        size_t n = i < 3 ? strlen(t) : (size > 256 ? 256 : size);
        for (int sp = 0; sp < 2; sp++) {
            owl_ids ids = {0};
            if (owl_bpe_encode_text(tok, t, n, sp, &ids) == OWL_OK) {
                char *back = NULL;
                size_t bl;
                if (owl_bpe_decode(tok, ids.v, ids.n, &back, &bl) == OWL_OK) free(back);
            }
            free(ids.v);
        }
    }
    owl_bpe_tokenizer_destroy(tok);
    return 0;
}
