/* owl_weights_open: the format is chosen from the bytes and the path. */
#include "testutil.h"

#include "format/format.h"

#include <stdlib.h>
#include <string.h>

int main(void) {
    owl_weights ws;
    /* GGUF by its magic */
    owl_status s = owl_weights_open(testdata_path("models/stories260K.gguf"), NULL, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        CHECK(strcmp(ws.format, "gguf") == 0 && ws.n == 48);
        owl_weights_free(&ws);
    }
    /* anything else that is a file: a llama2.c checkpoint */
    s = owl_weights_open(testdata_path("models/stories260K.bin"), testdata_path("tokenizers/tinystories512/tok512.bin"),
                         &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        CHECK(strcmp(ws.format, "llama2c") == 0);
        const owl_weight *w = owl_weights_find(&ws, "token_embd.weight");
        CHECK(w && w->ne[0] == 64 && w->ne[1] == 512);
        owl_weights_free(&ws);
    }
    /* a directory: the Hugging Face reader (test_hf checks it in depth) */
    s = owl_weights_open(testdata_path("models/wp/hf"), NULL, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        CHECK(strcmp(ws.format, "hf") == 0 && owl_weights_find(&ws, "blk.3.ffn_down.weight"));
        owl_weights_free(&ws);
    }
    /* a safetensors file: not yet, and not mistaken for a checkpoint */
    s = owl_weights_open(testdata_path("models/wp/hf/model.safetensors"), NULL, &ws);
    CHECK(s == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "safetensors"));
    /* a missing file */
    s = owl_weights_open(testdata_path("models/no-such-model.gguf"), NULL, &ws);
    CHECK(s == OWL_ERR_IO && strstr(owl_last_error(), "no-such-model.gguf"));
    /* a GGUF that is broken is reported by the GGUF reader */
    const char *dir = test_tmpdir("weights_open");
    char *path = path_join(dir, "broken.gguf");
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite("GGUF\1\0\0\0", 1, 8, f);
        fclose(f);
    }
    s = owl_weights_open(path, NULL, &ws);
    CHECK(s == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "version 1"));
    free(path);
    return test_finish("test_weights_open");
}
