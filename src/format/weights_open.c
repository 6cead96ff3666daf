/* Opening a model by path: the format is decided from the bytes (GGUF's
 * magic, a safetensors JSON header) or the path (a directory), then the
 * matching reader fills the weights table. Kept apart from weights.c so that
 * the table itself does not depend on every reader. */
#include "format/format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

owl_status owl_weights_open(const char *path, const char *tokenizer_path, owl_weights *out) {
    memset(out, 0, sizeof *out);
    if (owl_is_dir(path)) return owl_hf_dir_read(path, out);
    FILE *f = fopen(path, "rb");
    if (!f) return owl_errorf(OWL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t head[9] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got >= 4 && memcmp(head, "GGUF", 4) == 0) return owl_gguf_read(path, out);
    /* safetensors: u64 header length, then the JSON header */
    if (got == 9 && head[8] == '{' && head[6] == 0 && head[7] == 0)
        return owl_errorf(OWL_ERR_UNSUPPORTED,
                          "%s: a lone safetensors file has no hyper-parameters: open its directory (with config.json)",
                          path);
    return owl_llama2c_read(path, tokenizer_path, out);
}
