/* libFuzzer target: the fine-tuning JSONL reader's line parser
 * (owl_example_parse) on arbitrary bytes, each input split into lines as
 * the reader does. Any line must give an example whose strings are inside
 * the parsed document, or an error naming the line, never a crash or leak. */
#include "adapt/train.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    int lineno = 0;
    volatile size_t sink = 0;
    for (size_t pos = 0; pos < size;) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        const size_t end = nl ? (size_t)(nl - text) : size;
        owl_example ex;
        lineno++;
        if (owl_example_parse(text + pos, end - pos, "fuzz.jsonl", lineno, &ex) == OWL_OK) {
            for (int i = 0; i < ex.n_msg; i++) sink += strlen(ex.role[i]) + ex.content_len[i];
            if (ex.n_msg) sink += (size_t)(unsigned char)ex.content[ex.n_msg - 1][0];
            if (ex.prompt) sink += ex.prompt_len + ex.completion_len + (size_t)(unsigned char)ex.completion[0];
            if (ex.text) sink += ex.text_len;
            owl_example_free(&ex);
        }
        pos = end + 1;
    }
    (void)sink;
    return 0;
}
