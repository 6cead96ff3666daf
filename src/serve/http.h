/* serve/: what http.c shares with the route files beside it (embed_route.c). */
#ifndef OWL_SERVE_HTTP_H
#define OWL_SERVE_HTTP_H

#include "serve/api.h"
#include "serve/serve.h"

#include <microhttpd.h>

typedef struct server {
    const owl_server_opts *o;
    owl_model *model;
    const owl_tokenizer *tok;
    owl_sched *sched;
    owl_keydb *keys;
    owl_ratelimit *rl;
    owl_audit *audit;
    char digest[65];
    owl_lora **loras; /* o->n_lora adapters, loaded once */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    unsigned long long next_id;
} server;

typedef struct conn {
    server *srv;
    char *body;
    size_t len, cap;
    bool too_big;
    char route[40];
    int status;
    bool has_key;
    owl_key_info key;
    owl_gen *g;
    bool chat, stream, include_usage;
    char id[48];
    char model_id[400]; /* the model the request named: BASE or BASE:ADAPTER */
    long long created;
    double t_start;
    int fd;
    const char *finish;
    char *prompt_text; /* for --audit-content */
    /* stream state */
    int phase; /* 0 role, 1 text, 2 end */
    size_t sent;
    char *out;
    size_t out_len, out_off;
} conn;

/* Queues a response of body (malloc'd, taken; NULL: a 500) with status. */
enum MHD_Result owl_http_send_text(struct MHD_Connection *mc, conn *c, int status, const char *ctype, char *body,
                                   int retry_after);
/* OpenAI's error object with e->status (Retry-After when retry_after > 0). */
enum MHD_Result owl_http_send_err(struct MHD_Connection *mc, conn *c, const owl_api_err *e, int retry_after);
enum MHD_Result owl_http_fail(struct MHD_Connection *mc, conn *c, int status, const char *type, const char *param,
                              const char *code, const char *msg);
/* The adapter a generation request names ("model": "BASE:NAME" and / or
 * "adapter": "NAME"): its index, -1 for the base model, -2 with e filled
 * (404 unknown or not allowed for the key, 400 contradicting fields). Sets
 * c->model_id. */
int owl_http_resolve_model(server *s, conn *c, const char *model, const char *adapter, owl_api_err *e);
/* Fills e with a 404 model_not_found unless model is served and the key may use it. */
void owl_http_model_check(server *s, conn *c, const char *model, owl_api_err *e);

/* POST /v1/embeddings (embed_route.c). */
enum MHD_Result owl_http_embeddings(server *s, struct MHD_Connection *mc, conn *c);

#endif
