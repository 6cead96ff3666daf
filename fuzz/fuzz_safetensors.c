/* libFuzzer target: the safetensors reader on arbitrary bytes. Any input must
 * give either a table or an error, never a crash, a leak or an over-read. */
#include "format/format.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    owl_weights ws;
    if (owl_safetensors_read_mem("fuzz.safetensors", data, size, &ws) != OWL_OK) return 0;
    /* touch what the reader promised is inside the input */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < ws.n; i++) {
        const owl_weight *w = &ws.w[i];
        if (w->nbytes) sink ^= ((const uint8_t *)w->data)[0] ^ ((const uint8_t *)w->data)[w->nbytes - 1];
        sink ^= (uint8_t)strlen(w->name);
    }
    for (size_t i = 0; i < ws.meta.n; i++) {
        const owl_meta_value *v = &ws.meta.entries[i].value;
        if (v->type == OWL_META_STRING && v->s.len) sink ^= (uint8_t)v->s.ptr[v->s.len - 1];
    }
    (void)sink;
    owl_weights_free(&ws);
    return 0;
}
