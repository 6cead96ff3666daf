/* libFuzzer target: chat template parser, and a render of what parses with
 * a small fixed conversation. Any input must give a template or an error,
 * never a crash, hang or leak. */
#include "chat/chat.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static const char *INPUTS =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi\"},"
    " {\"role\": \"assistant\", \"content\": \"yo\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"tools\": [{\"name\": \"f\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    owl_template *t;
    if (owl_template_parse((const char *)data, size, &t) != OWL_OK) return 0;
    owl_template_opts opts = {.fixed_now = true, .now = 0};
    char *out = NULL;
    size_t len;
    if (owl_template_render_opts(t, INPUTS, &opts, &out, &len) == OWL_OK) free(out);
    owl_template_free(t);
    return 0;
}
