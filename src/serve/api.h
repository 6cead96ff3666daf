/* serve/api.c: OpenAI request bodies in, response objects out. */
#ifndef OWL_SERVE_API_H
#define OWL_SERVE_API_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct owl_api_err {
    int status;
    char type[48], param[64], code[48];
    char message[400];
} owl_api_err;

/* Fills e; returns status. */
int owl_api_fail(owl_api_err *e, int status, const char *type, const char *param, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}}, malloc'd. */
char *owl_api_error_json(const owl_api_err *e);

typedef struct owl_api_req {
    char model[256];
    char adapter[128]; /* the "adapter" field ("": none) */
    float temperature, top_p;
    int max_tokens; /* -1: not given */
    bool seed_given;
    uint64_t seed;
    bool stream, include_usage;
    int logprobs; /* -1: none; else how many alternatives per token */
    int32_t *prompt_ids; /* completions: the prompt given as token ids */
    int n_prompt_ids;
    char *stops[4];
    int n_stops;
} owl_api_req;

/* Each returns 0, or an HTTP status with err filled. */
int owl_api_parse_chat(json_t *body, int max_messages, owl_api_req *r, json_t **messages, owl_api_err *err);
int owl_api_parse_completion(json_t *body, owl_api_req *r, char **prompt, owl_api_err *err);
void owl_api_req_free(owl_api_req *r);
/* /v1/embeddings: *inputs (borrowed from body) becomes an array whose items
 * are strings or arrays of integers; *base64 for encoding_format "base64". */
int owl_api_parse_embeddings(json_t *body, char *model, size_t model_size, json_t **inputs, bool *base64,
                             owl_api_err *err);

/* logprobs (NULL: null) is stolen. */
char *owl_api_response(bool chat, const char *id, long long created, const char *model, const char *text,
                       size_t len, const char *finish, int prompt_tokens, int completion_tokens, json_t *logprobs);

enum { OWL_CHUNK_ROLE, OWL_CHUNK_TEXT, OWL_CHUNK_FINISH, OWL_CHUNK_USAGE };
char *owl_api_chunk(bool chat, const char *id, long long created, const char *model, int kind, const char *text,
                    size_t len, const char *finish, bool include_usage, int prompt_tokens, int completion_tokens);

#endif
