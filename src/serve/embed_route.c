/* POST /v1/embeddings: the route of owl serve that returns embeddings. */
#include "serve/http.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* POST /v1/embeddings: input as a string, strings, token ids or lists of
 * token ids; mean-pooled, L2-normalised final hidden states. */
enum MHD_Result owl_http_embeddings(server *s, struct MHD_Connection *mc, conn *c) {
    owl_api_err e = {0};
    json_error_t je;
    json_t *body = json_loadb(c->body ? c->body : "", c->len, 0, &je);
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return owl_http_fail(mc, c, 400, "invalid_request_error", NULL, NULL, msg);
    }
    bool b64 = false;
    json_t *in = NULL;
    int n_ctx = owl_sched_ctx_size(s->sched);
    owl_gen *g = NULL;
    enum MHD_Result ret;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    char model[256] = "";
    if (owl_api_parse_embeddings(body, model, sizeof model, &in, &b64, &e)) goto error;
    owl_http_model_check(s, c, model, &e);
    if (e.status) goto error;
    owl_model_info info;
    owl_model_get_info(s->model, &info);
    json_t *dims = json_object_get(body, "dimensions");
    if (dims && !json_is_null(dims) && (!json_is_integer(dims) || json_integer_value(dims) != info.dim)) {
        owl_api_fail(&e, 400, "invalid_request_error", "dimensions", NULL, "this model's embeddings have %d dimensions", info.dim);
        goto error;
    }
    g = owl_gen_new();
    if (!g || !(g->input_off = calloc(json_array_size(in) + 1, sizeof(int)))) {
        owl_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto error;
    }
    g->embed = true;
    for (size_t i = 0; i < json_array_size(in); i++) {
        json_t *x = json_array_get(in, i);
        int32_t *t = NULL;
        size_t nt = 0;
        if (json_is_string(x)) {
            if (owl_tokenize(s->tok, json_string_value(x), json_string_length(x), true, false, &t, &nt) != OWL_OK) {
                owl_api_fail(&e, 400, "invalid_request_error", "input", NULL, "cannot tokenize input %zu: %.300s", i,
                             owl_last_error());
                goto error;
            }
        } else {
            nt = json_array_size(x);
            t = malloc((nt ? nt : 1) * sizeof *t);
            for (size_t j = 0; t && j < nt; j++) {
                json_int_t v = json_integer_value(json_array_get(x, j));
                if (v < 0 || v >= info.n_vocab) {
                    free(t);
                    owl_api_fail(&e, 400, "invalid_request_error", "input", NULL,
                                 "input %zu: token %lld is outside the vocabulary of %d", i, (long long)v, info.n_vocab);
                    goto error;
                }
                t[j] = (int32_t)v;
            }
        }
        if (!t || nt == 0 || nt > (size_t)n_ctx) {
            free(t);
            owl_api_fail(&e, 400, "invalid_request_error", "input", nt ? "context_length_exceeded" : NULL,
                         "input %zu is %zu tokens; it must be 1 to %d", i, nt, n_ctx);
            goto error;
        }
        if (n_ids + nt > cap) {
            cap = (n_ids + nt) * 2;
            int32_t *ni = realloc(ids, cap * sizeof *ids);
            if (!ni) {
                free(t);
                owl_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
                goto error;
            }
            ids = ni;
        }
        memcpy(ids + n_ids, t, nt * sizeof *t);
        n_ids += nt;
        free(t);
        g->input_off[i + 1] = (int)n_ids;
    }
    g->n_inputs = (int)json_array_size(in);
    g->prompt = ids;
    g->n_prompt = (int)n_ids;
    ids = NULL;
    if (s->o->timeout_s > 0) g->deadline_ms = owl_time_ms() + s->o->timeout_s * 1e3;
    if (!owl_sched_submit(s->sched, g)) {
        owl_api_fail(&e, 429, "server_overloaded", NULL, "queue_full",
                     "The server is busy (every slot and queue place is taken). Try again shortly.");
        ret = owl_http_send_err(mc, c, &e, 1);
        goto out;
    }
    c->g = g;
    pthread_mutex_lock(&g->mu);
    while (!g->done) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (g->finish == OWL_FINISH_ERROR) {
        owl_api_fail(&e, 500, "server_error", NULL, NULL, "embedding failed: %.300s", g->err);
        goto error;
    }
    json_t *data = json_array();
    for (int i = 0; i < g->n_inputs; i++) {
        const float *v = g->embedding + (size_t)i * (size_t)g->n_embd;
        json_t *emb;
        if (b64) {
            size_t nb = (size_t)g->n_embd * sizeof(float);
            unsigned char *enc = malloc(4 * ((nb + 2) / 3) + 1);
            if (enc) EVP_EncodeBlock(enc, (const unsigned char *)v, (int)nb);
            emb = enc ? json_string((const char *)enc) : json_null();
            free(enc);
        } else {
            emb = json_array();
            for (int j = 0; j < g->n_embd; j++) json_array_append_new(emb, json_real(v[j]));
        }
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", emb));
    }
    json_t *j = json_pack("{s:s,s:o,s:s,s:{s:i,s:i}}", "object", "list", "data", data, "model", s->o->model_name, "usage",
                          "prompt_tokens", g->n_prompt, "total_tokens", g->n_prompt);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    ret = owl_http_send_text(mc, c, 200, "application/json", txt, 0);
    goto out;
error:
    ret = owl_http_send_err(mc, c, &e, 0);
out:
    if (g && g != c->g) owl_gen_unref(g);
    free(ids);
    json_decref(body);
    return ret;
}

