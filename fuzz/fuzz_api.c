/* libFuzzer target: the request bodies of owl serve (chat completions,
 * completions, embeddings: JSON parsed by jansson, then every field checked
 * by serve/api.c, the "adapter" field included) and a key's model scope
 * (owl_key_allows_model with "BASE:*" entries) on arbitrary bytes. Any input
 * must give a request or an HTTP error, never a crash, a leak or an
 * over-read. */
#include "serve/api.h"
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, 0, &je);
    if (body) {
        owl_api_req r;
        owl_api_err e;
        json_t *messages = NULL;
        memset(&r, 0, sizeof r);
        memset(&e, 0, sizeof e);
        (void)owl_api_parse_chat(body, 64, &r, &messages, &e);
        owl_api_req_free(&r);
        json_decref(messages);
        char *prompt = NULL;
        memset(&r, 0, sizeof r);
        memset(&e, 0, sizeof e);
        (void)owl_api_parse_completion(body, &r, &prompt, &e);
        owl_api_req_free(&r);
        free(prompt);
        char model[256];
        json_t *inputs = NULL;
        bool b64 = false;
        memset(&e, 0, sizeof e);
        (void)owl_api_parse_embeddings(body, model, sizeof model, &inputs, &b64, &e);
        json_decref(body);
    }
    /* key scope: the first line is the scope, the rest the model asked for */
    owl_key_info k;
    memset(&k, 0, sizeof k);
    const uint8_t *nl = memchr(data, '\n', size);
    size_t sl = nl ? (size_t)(nl - data) : size;
    if (sl >= sizeof k.models) sl = sizeof k.models - 1;
    memcpy(k.models, data, sl);
    k.models[sl] = 0;
    size_t rest = nl ? size - (size_t)(nl - data) - 1 : 0;
    char *model = malloc(rest + 1);
    if (model) {
        if (rest) memcpy(model, nl + 1, rest);
        model[rest] = 0;
        (void)owl_key_allows_model(&k, model);
        free(model);
    }
    return 0;
}
