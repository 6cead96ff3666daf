/* The HTTP side of owl serve (libmicrohttpd, one thread per connection with
 * a connection limit: a response waits on generation, so its thread blocks
 * on the request's condition variable rather than spinning a shared pool).
 *
 * Per request: body collected (limit -> 413), route, API key (401), rate
 * limit (429 + Retry-After), body checked (400), model and key scope (404),
 * prompt built and tokenized, queued (429 when full), answered whole or as
 * server-sent events. The completion callback of every request writes the
 * audit line and the metrics and cancels generation the client left.
 * POST /v1/embeddings is in embed_route.c (shared declarations: http.h). */
#include "chat/chat.h"
#include "chat/conversation.h"
#include "govern/govern.h"
#include "tokenizer/tokenizer.h"
#include "serve/api.h"
#include "serve/http.h"
#include "serve/serve.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

enum MHD_Result owl_http_send_text(struct MHD_Connection *mc, conn *c, int status, const char *ctype, char *body,
                                 int retry_after) {
    if (!body) {
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        status = 500;
    }
    c->status = status;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result owl_http_send_err(struct MHD_Connection *mc, conn *c, const owl_api_err *e, int retry_after) {
    return owl_http_send_text(mc, c, e->status, "application/json", owl_api_error_json(e), retry_after);
}

enum MHD_Result owl_http_fail(struct MHD_Connection *mc, conn *c, int status, const char *type, const char *param,
                            const char *code, const char *msg) {
    owl_api_err e;
    owl_api_fail(&e, status, type, param, code, "%s", msg);
    return owl_http_send_err(mc, c, &e, 0);
}

static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int owl_http_resolve_model(server *s, conn *c, const char *model, const char *adapter, owl_api_err *e) {
    const char *base = s->o->model_name, *ad = NULL;
    const size_t bl = strlen(base);
    if (strcmp(model, base) == 0) {
        ad = adapter && adapter[0] ? adapter : NULL;
    } else if (strncmp(model, base, bl) == 0 && model[bl] == ':' && model[bl + 1]) {
        ad = model + bl + 1;
        if (adapter && adapter[0] && strcmp(adapter, ad) != 0) {
            owl_api_fail(e, 400, "invalid_request_error", "adapter", NULL,
                         "'adapter' is '%.100s' but 'model' names the adapter '%.100s'", adapter, ad);
            return -2;
        }
    } else {
        owl_api_fail(e, 404, "invalid_request_error", "model", "model_not_found",
                     "The model '%.200s' does not exist or you do not have access to it.", model);
        return -2;
    }
    int idx = -1;
    for (int i = 0; ad && i < s->o->n_lora; i++)
        if (strcmp(s->o->lora_names[i], ad) == 0) idx = i;
    if (ad) snprintf(c->model_id, sizeof c->model_id, "%s:%.128s", base, ad);
    else snprintf(c->model_id, sizeof c->model_id, "%s", base);
    if ((ad && idx < 0) || (c->has_key && !owl_key_allows_model(&c->key, c->model_id))) {
        owl_api_fail(e, 404, "invalid_request_error", "model", "model_not_found",
                     "The model '%.300s' does not exist or you do not have access to it.", c->model_id);
        c->model_id[0] = 0;
        return -2;
    }
    return idx;
}

void owl_http_model_check(server *s, conn *c, const char *model, owl_api_err *e) {
    if (strcmp(model, s->o->model_name) != 0 || (c->has_key && !owl_key_allows_model(&c->key, model)))
        owl_api_fail(e, 404, "invalid_request_error", "model", "model_not_found",
                     "The model '%.200s' does not exist or you do not have access to it.", model);
}

/* ---- auth ---- */

/* 0 if the request may go on, else the response was queued. */
static int authorize(server *s, struct MHD_Connection *mc, conn *c, enum MHD_Result *ret) {
    if (s->o->no_auth) return 0;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    owl_api_err e;
    if (!h || strncmp(h, "Bearer ", 7) != 0) {
        owl_api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                     "You didn't provide an API key. Give it as 'Authorization: Bearer KEY'.");
        *ret = owl_http_send_err(mc, c, &e, 0);
        return 1;
    }
    const char *k = h + 7;
    while (*k == ' ') k++;
    if (!s->keys || !owl_keydb_check(s->keys, k, &c->key)) {
        owl_api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key", "Incorrect or revoked API key provided.");
        *ret = owl_http_send_err(mc, c, &e, 0);
        return 1;
    }
    c->has_key = true;
    int retry = 0;
    if (!owl_ratelimit_admit(s->rl, &c->key, &retry)) {
        owl_api_fail(&e, 429, "requests", NULL, "rate_limit_exceeded",
                     "Rate limit reached for key %lld (requests or tokens per minute). Try again in %d s.",
                     (long long)c->key.id, retry);
        *ret = owl_http_send_err(mc, c, &e, retry);
        return 1;
    }
    return 0;
}

/* ---- generation routes ---- */

/* The chat prompt through the model's template (ChatML if none) and the
 * end-of-turn tokens, by chat/conversation.c. */
static bool chat_prompt(server *s, json_t *messages, char **text, int32_t **ids, size_t *n_ids, owl_gen *g,
                        owl_api_err *e) {
    owl_conv *cv = NULL;
    owl_status st = owl_conv_new(s->model, NULL, &cv);
    for (size_t i = 0; st == OWL_OK && i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i), *c = json_object_get(m, "content");
        st = owl_conv_add(cv, json_string_value(json_object_get(m, "role")), json_string_value(c), json_string_length(c));
    }
    if (st == OWL_OK) st = owl_conv_tokenize(cv, true, text, ids, n_ids);
    if (st == OWL_OK) {
        int n = 0;
        const int32_t *stops = owl_conv_stop_tokens(cv, &n);
        if (n > 0 && (g->stop_ids = malloc((size_t)n * sizeof(int32_t)))) {
            memcpy(g->stop_ids, stops, (size_t)n * sizeof(int32_t));
            g->n_stop_ids = n;
        }
    }
    owl_conv_free(cv);
    if (st != OWL_OK) {
        owl_api_fail(e, 400, "invalid_request_error", "messages", NULL, "cannot build the prompt: %.300s",
                     owl_last_error());
        return false;
    }
    return true;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max);

static enum MHD_Result generate(server *s, struct MHD_Connection *mc, conn *c, bool chat) {
    owl_api_err e = {0};
    json_error_t je;
    json_t *body = json_loadb(c->body ? c->body : "", c->len, 0, &je);
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return owl_http_fail(mc, c, 400, "invalid_request_error", NULL, NULL, msg);
    }
    owl_api_req r;
    memset(&r, 0, sizeof r);
    json_t *messages = NULL;
    char *text = NULL;
    int status = chat ? owl_api_parse_chat(body, s->o->max_messages, &r, &messages, &e)
                      : owl_api_parse_completion(body, &r, &text, &e);
    json_decref(body);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    owl_gen *g = NULL;
    enum MHD_Result ret;
    if (status) goto error;
    const int adapter = owl_http_resolve_model(s, c, r.model, r.adapter, &e);
    if (e.status) goto error;
    g = owl_gen_new();
    if (!g) {
        owl_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto error;
    }
    g->lora = adapter >= 0 ? s->loras[adapter] : NULL;
    if (chat) {
        if (!chat_prompt(s, messages, &text, &ids, &n_ids, g, &e)) goto error;
    } else if (r.prompt_ids) {
        owl_model_info mi;
        owl_model_get_info(s->model, &mi);
        for (int i = 0; i < r.n_prompt_ids; i++)
            if (r.prompt_ids[i] >= mi.n_vocab) {
                owl_api_fail(&e, 400, "invalid_request_error", "prompt", NULL,
                             "'prompt[%d]' is %d, outside the vocabulary of %d", i, (int)r.prompt_ids[i], mi.n_vocab);
                goto error;
            }
        ids = r.prompt_ids;
        n_ids = (size_t)r.n_prompt_ids;
        r.prompt_ids = NULL;
        r.n_prompt_ids = 0;
    } else if (owl_tokenize(s->tok, text, strlen(text), true, false, &ids, &n_ids) != OWL_OK) {
        owl_api_fail(&e, 400, "invalid_request_error", "prompt", NULL, "cannot tokenize the prompt: %.300s",
                     owl_last_error());
        goto error;
    }
    int n_ctx = owl_sched_ctx_size(s->sched);
    if (n_ids == 0) {
        owl_api_fail(&e, 400, "invalid_request_error", "prompt", NULL, "the prompt is empty and the model has no BOS token");
        goto error;
    }
    if (n_ids >= (size_t)n_ctx) {
        owl_api_fail(&e, 400, "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded",
                     "This model's context is %d tokens; the prompt is %zu tokens.", n_ctx, n_ids);
        goto error;
    }
    if (r.max_tokens > s->o->max_tokens_cap) {
        owl_api_fail(&e, 400, "invalid_request_error", "max_tokens", NULL,
                     "max_tokens is %d; this server allows at most %d", r.max_tokens, s->o->max_tokens_cap);
        goto error;
    }
    if (r.max_tokens > 0 && (size_t)r.max_tokens + n_ids > (size_t)n_ctx) {
        owl_api_fail(&e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                     "This model's context is %d tokens; the prompt is %zu tokens and max_tokens %d.", n_ctx, n_ids,
                     r.max_tokens);
        goto error;
    }
    g->prompt = ids;
    ids = NULL;
    g->n_prompt = (int)n_ids;
    g->max_tokens = r.max_tokens > 0 ? r.max_tokens : n_ctx - (int)n_ids;
    if (g->max_tokens > s->o->max_tokens_cap) g->max_tokens = s->o->max_tokens_cap;
    g->top_logprobs = r.logprobs;
    g->sp.temperature = r.temperature;
    g->sp.top_p = r.top_p;
    g->sp.top_k = 0;
    g->sp.min_p = 0;
    g->sp.repeat_penalty = 1;
    if (r.seed_given) {
        g->sp.seed = r.seed;
    } else {
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&g->sp.seed, sizeof g->sp.seed, 1, f) != 1) g->sp.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)g;
        if (f) fclose(f);
    }
    g->stops = calloc(4, sizeof *g->stops);
    for (int i = 0; g->stops && i < r.n_stops; i++) {
        g->stops[i] = r.stops[i];
        r.stops[i] = NULL;
        g->n_stops++;
    }
    if (s->o->timeout_s > 0) g->deadline_ms = owl_time_ms() + s->o->timeout_s * 1e3;
    c->chat = chat;
    c->stream = r.stream;
    c->include_usage = r.include_usage;
    if (s->o->audit_content) {
        c->prompt_text = text;
        text = NULL;
    }
    if (!owl_sched_submit(s->sched, g)) {
        owl_api_fail(&e, 429, "server_overloaded", NULL, "queue_full",
                     "The server is busy (every slot and queue place is taken). Try again shortly.");
        ret = owl_http_send_err(mc, c, &e, 1);
        goto out;
    }
    c->g = g;
    pthread_mutex_lock(&s->mu);
    c->created = (long long)time(NULL);
    snprintf(c->id, sizeof c->id, "%s-owl%llx%llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)c->created, ++s->next_id);
    pthread_mutex_unlock(&s->mu);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;

    if (c->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, c, NULL);
        if (!resp) {
            ret = MHD_NO;
            goto out;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        c->status = 200;
        ret = MHD_queue_response(mc, 200, resp);
        MHD_destroy_response(resp);
        goto out;
    }
    /* whole answer: wait here (the client leaving cancels) */
    pthread_mutex_lock(&g->mu);
    while (!g->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!g->done && client_gone(c->fd)) {
            pthread_mutex_unlock(&g->mu);
            owl_sched_cancel(s->sched, g);
            pthread_mutex_lock(&g->mu);
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (g->finish == OWL_FINISH_ERROR) {
        bool timeout = strcmp(g->err, "timeout") == 0;
        if (strcmp(g->err, "cancelled") == 0) {
            c->status = 499;
            ret = MHD_NO;
            goto out;
        }
        owl_api_fail(&e, timeout ? 504 : 500, "server_error", NULL, timeout ? "timeout" : NULL, "generation failed: %.300s",
                     timeout ? "the request ran past the server's time limit" : g->err);
        ret = owl_http_send_err(mc, c, &e, 0);
        goto out;
    }
    c->finish = g->finish == OWL_FINISH_LENGTH ? "length" : "stop";
    ret = owl_http_send_text(mc, c, 200, "application/json",
                    owl_api_response(chat, c->id, c->created, c->model_id, g->text ? g->text : "", g->len, c->finish,
                                     g->n_prompt, g->n_gen,
                                     g->top_logprobs >= 0 ? owl_serve_logprobs_json(s->tok, g, chat) : NULL),
                    0);
    goto out;
error:
    ret = owl_http_send_err(mc, c, &e, 0);
out:
    if (g && g != c->g) owl_gen_unref(g);
    owl_api_req_free(&r);
    json_decref(messages);
    free(text);
    free(ids);
    return ret;
}

/* Server-sent events: a role chunk (chat), text deltas, the finish chunk,
 * the usage chunk (stream_options.include_usage), then [DONE]. */
static bool sse_add(conn *c, char *json) {
    if (!json) return false;
    size_t n = strlen(json);
    char *nb = realloc(c->out, c->out_len + n + 9);
    if (!nb) {
        free(json);
        return false;
    }
    c->out = nb;
    memcpy(c->out + c->out_len, "data: ", 6);
    memcpy(c->out + c->out_len + 6, json, n);
    memcpy(c->out + c->out_len + 6 + n, "\n\n", 2);
    c->out_len += n + 8;
    free(json);
    return true;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *c = cls;
    server *s = c->srv;
    owl_gen *g = c->g;
    const char *model = c->model_id[0] ? c->model_id : s->o->model_name;
    while (c->out_off >= c->out_len) {
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = 0;
        if (c->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (c->phase == 0) {
            c->phase = 1;
            if (c->chat &&
                !sse_add(c, owl_api_chunk(true, c->id, c->created, model, OWL_CHUNK_ROLE, NULL, 0, NULL, c->include_usage, 0, 0)))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        pthread_mutex_lock(&g->mu);
        for (;;) {
            size_t ready = g->len - g->hold;
            if (g->done || ready > c->sent) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g->cv, &g->mu, &ts);
            if (!g->done && client_gone(c->fd)) {
                pthread_mutex_unlock(&g->mu);
                owl_sched_cancel(s->sched, g);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        size_t ready = g->done ? g->len : g->len - g->hold;
        char *delta = NULL;
        size_t dn = 0;
        if (ready > c->sent) {
            dn = ready - c->sent;
            delta = malloc(dn);
            if (delta) memcpy(delta, g->text + c->sent, dn);
            c->sent = ready;
        }
        bool done = g->done;
        owl_finish fin = g->finish;
        int np = g->n_prompt, ng = g->n_gen;
        char err[256];
        snprintf(err, sizeof err, "%s", g->err);
        pthread_mutex_unlock(&g->mu);
        bool ok = true;
        if (delta) ok = sse_add(c, owl_api_chunk(c->chat, c->id, c->created, model, OWL_CHUNK_TEXT, delta, dn, NULL,
                                                 c->include_usage, 0, 0));
        free(delta);
        if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (done) {
            c->phase = 2;
            if (fin == OWL_FINISH_ERROR) {
                if (strcmp(err, "cancelled") == 0) return MHD_CONTENT_READER_END_WITH_ERROR;
                owl_api_err e;
                bool timeout = strcmp(err, "timeout") == 0;
                owl_api_fail(&e, timeout ? 504 : 500, "server_error", NULL, timeout ? "timeout" : NULL,
                             "generation failed: %.300s", timeout ? "the request ran past the server's time limit" : err);
                c->status = e.status;
                sse_add(c, owl_api_error_json(&e));
            } else {
                c->finish = fin == OWL_FINISH_LENGTH ? "length" : "stop";
                sse_add(c, owl_api_chunk(c->chat, c->id, c->created, model, OWL_CHUNK_FINISH, NULL, 0, c->finish,
                                         c->include_usage, 0, 0));
                if (c->include_usage)
                    sse_add(c, owl_api_chunk(c->chat, c->id, c->created, model, OWL_CHUNK_USAGE, NULL, 0, NULL, true, np, ng));
            }
            char *d = realloc(c->out, c->out_len + 15);
            if (!d) return MHD_CONTENT_READER_END_WITH_ERROR;
            c->out = d;
            memcpy(c->out + c->out_len, "data: [DONE]\n\n", 14);
            c->out_len += 14;
        }
    }
    size_t n = c->out_len - c->out_off;
    if (n > max) n = max;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    return (ssize_t)n;
}

/* ---- other routes ---- */

static enum MHD_Result models(server *s, struct MHD_Connection *mc, conn *c) {
    json_t *data = json_array();
    if (!c->has_key || owl_key_allows_model(&c->key, s->o->model_name))
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", s->o->model_name, "object", "model", "created",
                                              (json_int_t)time(NULL), "owned_by", "owl"));
    for (int i = 0; i < s->o->n_lora; i++) { /* each adapter as BASE:NAME */
        char id[400];
        snprintf(id, sizeof id, "%s:%s", s->o->model_name, s->o->lora_names[i]);
        if (!c->has_key || owl_key_allows_model(&c->key, id))
            json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", id, "object", "model", "created",
                                                  (json_int_t)time(NULL), "owned_by", "owl", "parent", s->o->model_name));
    }
    json_t *j = json_pack("{s:s,s:o}", "object", "list", "data", data);
    char *txt = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return owl_http_send_text(mc, c, 200, "application/json", txt, 0);
}

static enum MHD_Result dispatch(server *s, struct MHD_Connection *mc, conn *c, const char *url, const char *method) {
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    enum MHD_Result ret;
    if (strcmp(url, "/health") == 0 && get) return owl_http_send_text(mc, c, 200, "application/json", strdup("{\"status\":\"ok\"}"), 0);
    if (strcmp(url, "/metrics") == 0 && get) {
        int q, a;
        owl_sched_stats(s->sched, &q, &a);
        return owl_http_send_text(mc, c, 200, "text/plain; version=0.0.4", owl_metrics_render(q, a, s->o->slots), 0);
    }
    bool chat = strcmp(url, "/v1/chat/completions") == 0, comp = strcmp(url, "/v1/completions") == 0,
         mod = strcmp(url, "/v1/models") == 0, emb = strcmp(url, "/v1/embeddings") == 0;
    bool mod1 = strncmp(url, "/v1/models/", 11) == 0;
    if (!chat && !comp && !mod && !mod1 && !emb) {
        return owl_http_fail(mc, c, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL.");
    }
    if (((chat || comp || emb) && !post) || ((mod || mod1) && !get))
        return owl_http_fail(mc, c, 405, "invalid_request_error", NULL, "method_not_allowed", "Method not allowed for this URL.");
    if (authorize(s, mc, c, &ret)) return ret;
    if (mod) return models(s, mc, c);
    if (mod1) {
        owl_api_err e = {0};
        owl_http_resolve_model(s, c, url + 11, NULL, &e);
        if (e.status) return owl_http_send_err(mc, c, &e, 0);
        json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "id", c->model_id, "object", "model", "created",
                              (json_int_t)time(NULL), "owned_by", "owl");
        char *txt = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return owl_http_send_text(mc, c, 200, "application/json", txt, 0);
    }
    if (emb) return owl_http_embeddings(s, mc, c);
    return generate(s, mc, c, chat);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->fd = -1;
        c->t_start = owl_time_ms();
        /* a fixed set of route names (metrics labels, audit) */
        static const char *const known[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                            "/v1/models", "/health", "/metrics"};
        snprintf(c->route, sizeof c->route, "%s", strncmp(url, "/v1/models/", 11) == 0 ? "/v1/models/{id}" : "other");
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strcmp(url, known[i]) == 0) snprintf(c->route, sizeof c->route, "%s", known[i]);
        *con_cls = c;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o->max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "The request body is larger than this server's limit of %zu bytes.", s->o->max_body);
            return owl_http_fail(mc, c, 413, "invalid_request_error", NULL, "request_too_large", msg);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!c->too_big && c->len + *upload_size > s->o->max_body) c->too_big = true;
        if (!c->too_big) {
            if (c->len + *upload_size + 1 > c->cap) {
                size_t nc = (c->len + *upload_size + 1) * 2;
                if (nc > s->o->max_body + 1) nc = s->o->max_body + 1;
                char *nb = realloc(c->body, nc);
                if (!nb) return MHD_NO;
                c->body = nb;
                c->cap = nc;
            }
            memcpy(c->body + c->len, upload, *upload_size);
            c->len += *upload_size;
            c->body[c->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->status) return MHD_YES; /* answered already (413 on the header) */
    if (c->too_big) {
        char msg[160];
        snprintf(msg, sizeof msg, "The request body is larger than this server's limit of %zu bytes.", s->o->max_body);
        return owl_http_fail(mc, c, 413, "invalid_request_error", NULL, "request_too_large", msg);
    }
    return dispatch(s, mc, c, url, method);
}

static void iso_time(char *out, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03ldZ", b, ts.tv_nsec / 1000000L);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)mc;
    server *s = cls;
    conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    int status = c->status ? c->status : 500;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400) status = 499; /* the client left */
    int np = 0, ng = 0;
    char *completion = NULL;
    if (c->g) {
        owl_sched_cancel(s->sched, c->g); /* no-op once done */
        pthread_mutex_lock(&c->g->mu);
        np = c->g->n_prompt;
        ng = c->g->n_gen;
        if (s->o->audit_content && c->g->text) completion = strndup(c->g->text, c->g->len);
        pthread_mutex_unlock(&c->g->mu);
        if (c->has_key) owl_ratelimit_add_tokens(s->rl, c->key.id, np + ng);
    }
    const char *route = c->route;
    owl_metrics_request(route, status);
    if (s->audit) {
        char t[40];
        iso_time(t, sizeof t);
        json_t *j = json_pack("{s:s,s:o,s:s,s:s,s:s,s:i,s:i,s:i,s:f}", "time", t, "key_id",
                              c->has_key ? json_integer((json_int_t)c->key.id) : json_null(), "route", route, "model",
                              c->model_id[0] ? c->model_id : s->o->model_name, "model_sha256", s->digest, "status", status, "prompt_tokens", np,
                              "completion_tokens", ng, "latency_ms", owl_time_ms() - c->t_start);
        if (j && c->id[0]) json_object_set_new(j, "id", json_string(c->id));
        if (j && c->finish) json_object_set_new(j, "finish_reason", json_string(c->finish));
        if (j && s->o->audit_content) {
            json_t *pt = c->prompt_text ? json_string(c->prompt_text) : NULL;
            json_t *ct = completion ? json_string(completion) : NULL;
            json_object_set_new(j, "prompt", pt ? pt : json_null());
            json_object_set_new(j, "completion", ct ? ct : json_null());
        }
        char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!line || owl_audit_append(s->audit, line) != OWL_OK)
            fprintf(stderr, "owl serve: cannot write the audit log: %s\n", line ? owl_last_error() : "out of memory");
        free(line);
    }
    free(completion);
    owl_gen_unref(c->g);
    free(c->body);
    free(c->out);
    free(c->prompt_text);
    free(c);
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- start and stop ---- */

owl_status owl_server_run(owl_model *model, const owl_server_opts *o) {
    server s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.model = model;
    s.tok = owl_model_tokenizer(model);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    struct MHD_Daemon *d = NULL;
    owl_status st = OWL_OK;
    if (!s.tok) {
        st = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: the model has no tokenizer", o->model_path);
        goto done;
    }
    /* a file's SHA-256; a Hugging Face directory's digest covers every file */
    if ((st = owl_model_digest(o->model_path, s.digest)) != OWL_OK) goto done;
    {
        owl_conv *cv = NULL; /* the chat template must parse */
        st = owl_conv_new(model, NULL, &cv);
        owl_conv_free(cv);
        if (st != OWL_OK) {
            owl_error_prefix(st, "%s: the model's chat template", o->model_path);
            goto done;
        }
    }
    if (!o->no_auth) {
        st = owl_keydb_open(o->keys_db, true, &s.keys);
        if (st != OWL_OK) goto done;
    }
    s.rl = owl_ratelimit_new();
    if (!s.rl) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (o->audit_path) {
        st = owl_audit_open(o->audit_path, &s.audit);
        if (st != OWL_OK) goto done;
    }
    if (o->n_lora > 0) { /* adapters, loaded once and shared by every slot */
        s.loras = calloc((size_t)o->n_lora, sizeof *s.loras);
        if (!s.loras) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < o->n_lora; i++)
            if ((st = owl_lora_load(model, o->lora_paths[i], &s.loras[i])) != OWL_OK) {
                owl_error_prefix(st, "--lora %s=%s", o->lora_names[i], o->lora_paths[i]);
                goto done;
            }
    }
    st = owl_sched_new(model, o->slots, o->n_ctx, o->queue, o->step_tokens, &s.sched);
    if (st != OWL_OK) goto done;

    /* SIGTERM/SIGINT go to sigwait below, not to MHD's threads. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        st = owl_errorf(OWL_ERR_ARG, "--host '%s' is not an IPv4 address", o->host);
        goto done;
    }
    unsigned limit = (unsigned)(o->slots + o->queue + 16);
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                             MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)o->conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_END);
    if (!d) {
        st = owl_errorf(OWL_ERR_IO, "cannot listen on %s:%d: %s", o->host, o->port, strerror(errno));
        goto done;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    for (int i = 0; i < o->n_lora; i++)
        fprintf(stderr, "owl serve: adapter %s:%s from %s\n", o->model_name, o->lora_names[i], o->lora_paths[i]);
    fprintf(stderr, "owl serve: %s (sha256 %s) on http://%s:%d with %d slot%s of %d tokens\n", o->model_name,
            s.digest[0] ? s.digest : "-", o->host, di ? (int)di->port : o->port, o->slots, o->slots == 1 ? "" : "s",
            owl_sched_ctx_size(s.sched));
    fflush(stderr);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "owl serve: %s: no new connections; finishing the requests in progress\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    double until = owl_time_ms() + (o->timeout_s > 0 ? o->timeout_s : 600) * 1e3 + 5e3;
    pthread_mutex_lock(&s.mu);
    while (s.in_flight > 0 && owl_time_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&s.cv, &s.mu, &ts);
    }
    pthread_mutex_unlock(&s.mu);
    MHD_stop_daemon(d);
    d = NULL;
    fprintf(stderr, "owl serve: stopped\n");

done:
    if (d) MHD_stop_daemon(d);
    owl_sched_free(s.sched);
    for (int i = 0; s.loras && i < o->n_lora; i++) owl_lora_free(s.loras[i]);
    free(s.loras);
    owl_audit_close(s.audit);
    owl_ratelimit_free(s.rl);
    owl_keydb_close(s.keys);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return st;
}
