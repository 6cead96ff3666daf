/* OpenAI request bodies: checks every field's type and range and fills a
 * generation request; builds the response and stream-chunk objects. */
#include "serve/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int owl_api_fail(owl_api_err *e, int status, const char *type, const char *param, const char *code,
                 const char *fmt, ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

char *owl_api_error_json(const owl_api_err *e) {
    json_t *j = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type", e->type, "param",
                          e->param[0] ? json_string(e->param) : json_null(), "code",
                          e->code[0] ? json_string(e->code) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

#define BAD(param, ...) owl_api_fail(err, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

static bool is_num(const json_t *v) { return json_is_integer(v) || json_is_real(v); }

/* Optional number field in [lo, hi]; 0 = absent or null, 1 = set, -1 = error. */
static int get_num(json_t *body, const char *name, double lo, double hi, double *out, owl_api_err *err) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return 0;
    if (!is_num(v)) {
        BAD(name, "'%s' must be a number", name);
        return -1;
    }
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) {
        BAD(name, "'%s' is %g; it must be between %g and %g", name, d, lo, hi);
        return -1;
    }
    *out = d;
    return 1;
}

static int get_int(json_t *body, const char *name, long long lo, long long hi, long long *out, owl_api_err *err) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        BAD(name, "'%s' must be an integer", name);
        return -1;
    }
    long long d = json_integer_value(v);
    if (d < lo || d > hi) {
        BAD(name, "'%s' is %lld; it must be between %lld and %lld", name, d, lo, hi);
        return -1;
    }
    *out = d;
    return 1;
}

static int get_bool(json_t *body, const char *name, bool *out, owl_api_err *err) {
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) {
        BAD(name, "'%s' must be a boolean", name);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* Fields common to both routes. */
static int parse_common(json_t *body, owl_api_req *r, owl_api_err *err) {
    json_t *m = json_object_get(body, "model");
    if (!m) return BAD("model", "you must provide a model parameter");
    if (!json_is_string(m)) return BAD("model", "'model' must be a string");
    snprintf(r->model, sizeof r->model, "%s", json_string_value(m));
    json_t *ad = json_object_get(body, "adapter");
    if (ad && !json_is_null(ad)) {
        if (!json_is_string(ad)) return BAD("adapter", "'adapter' must be a string");
        if (json_string_length(ad) >= sizeof r->adapter || strlen(json_string_value(ad)) != json_string_length(ad))
            return BAD("adapter", "'adapter' is longer than %zu bytes or holds a NUL", sizeof r->adapter - 1);
        snprintf(r->adapter, sizeof r->adapter, "%s", json_string_value(ad));
    }

    double d;
    long long ll;
    int k;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->logprobs = -1;
    if ((k = get_num(body, "temperature", 0, 2, &d, err)) < 0) return err->status;
    if (k) r->temperature = (float)d;
    if ((k = get_num(body, "top_p", 0, 1, &d, err)) < 0) return err->status;
    if (k) r->top_p = (float)d;
    const char *pen[] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        if ((k = get_num(body, pen[i], -2, 2, &d, err)) < 0) return err->status;
        if (k && d != 0)
            return BAD(pen[i], "'%s' other than 0 is not supported by this server", pen[i]);
    }
    r->max_tokens = -1;
    if ((k = get_int(body, "max_tokens", 1, 1LL << 30, &ll, err)) < 0) return err->status;
    if (k) r->max_tokens = (int)ll;
    if ((k = get_int(body, "max_completion_tokens", 1, 1LL << 30, &ll, err)) < 0) return err->status;
    if (k) r->max_tokens = (int)ll;
    if ((k = get_int(body, "seed", INT64_MIN, INT64_MAX, &ll, err)) < 0) return err->status;
    r->seed_given = k == 1;
    if (k) r->seed = (uint64_t)ll;
    if ((k = get_int(body, "n", 1, 128, &ll, err)) < 0) return err->status;
    if (k && ll != 1) return BAD("n", "'n' other than 1 is not supported by this server");
    if (get_bool(body, "stream", &r->stream, err) < 0) return err->status;
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return BAD("stream_options", "'stream_options' must be an object");
        if (!r->stream) return BAD("stream_options", "'stream_options' is only allowed when 'stream' is true");
        if (get_bool(so, "include_usage", &r->include_usage, err) < 0) return err->status;
    }
    json_t *st = json_object_get(body, "stop");
    if (st && !json_is_null(st)) {
        if (json_is_string(st)) {
            r->n_stops = 1;
            r->stops[0] = strdup(json_string_value(st));
        } else if (json_is_array(st)) {
            if (json_array_size(st) > 4) return BAD("stop", "'stop' has %zu strings; at most 4", json_array_size(st));
            for (size_t i = 0; i < json_array_size(st); i++) {
                json_t *x = json_array_get(st, i);
                if (!json_is_string(x)) return BAD("stop", "'stop[%zu]' must be a string", i);
                r->stops[r->n_stops++] = strdup(json_string_value(x));
            }
        } else {
            return BAD("stop", "'stop' must be a string or an array of strings");
        }
        for (int i = 0; i < r->n_stops; i++)
            if (!r->stops[i]) return owl_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

int owl_api_parse_chat(json_t *body, int max_messages, owl_api_req *r, json_t **messages, owl_api_err *err) {
    *messages = NULL;
    if (!json_is_object(body)) return BAD(NULL, "the request body must be a JSON object");
    int s = parse_common(body, r, err);
    if (s) return s;
    bool lp = false;
    long long top = 0;
    if (get_bool(body, "logprobs", &lp, err) < 0) return err->status;
    int k = get_int(body, "top_logprobs", 0, 20, &top, err);
    if (k < 0) return err->status;
    if (k && !lp) return BAD("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    if (lp && r->stream) return BAD("logprobs", "'logprobs' with 'stream' is not supported by this server");
    if (lp) r->logprobs = (int)top;
    json_t *ms = json_object_get(body, "messages");
    if (!ms) return BAD("messages", "you must provide a 'messages' parameter");
    if (!json_is_array(ms)) return BAD("messages", "'messages' must be an array");
    size_t n = json_array_size(ms);
    if (n == 0) return BAD("messages", "'messages' must not be empty");
    if (n > (size_t)max_messages) return BAD("messages", "'messages' has %zu entries; this server takes at most %d", n, max_messages);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(ms, i);
        char p[64];
        snprintf(p, sizeof p, "messages[%zu]", i);
        if (!json_is_object(m)) {
            json_decref(out);
            return BAD(p, "'%s' must be an object", p);
        }
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            json_decref(out);
            snprintf(p, sizeof p, "messages[%zu].role", i);
            return BAD(p, "'%s' must be a string", p);
        }
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "developer") &&
            strcmp(rs, "tool")) {
            json_decref(out);
            snprintf(p, sizeof p, "messages[%zu].role", i);
            return BAD(p, "'%s' is '%.40s'; expected system, developer, user, assistant or tool", p, rs);
        }
        json_t *c = json_object_get(m, "content");
        json_t *content = NULL;
        snprintf(p, sizeof p, "messages[%zu].content", i);
        if (json_is_string(c)) {
            content = json_incref(c);
        } else if (json_is_array(c)) {
            /* text parts are joined (no images or audio here) */
            size_t total = 0;
            for (size_t j = 0; j < json_array_size(c); j++) {
                json_t *part = json_array_get(c, j);
                json_t *ty = json_object_get(part, "type"), *tx = json_object_get(part, "text");
                if (!json_is_object(part) || !json_is_string(ty) || strcmp(json_string_value(ty), "text") != 0 ||
                    !json_is_string(tx)) {
                    json_decref(out);
                    return BAD(p, "'%s[%zu]' must be a {\"type\":\"text\",\"text\":...} part (only text is supported)", p, j);
                }
                total += json_string_length(tx);
            }
            char *buf = malloc(total + 1);
            if (!buf) {
                json_decref(out);
                return owl_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
            }
            size_t off = 0;
            for (size_t j = 0; j < json_array_size(c); j++) {
                json_t *tx = json_object_get(json_array_get(c, j), "text");
                memcpy(buf + off, json_string_value(tx), json_string_length(tx));
                off += json_string_length(tx);
            }
            content = json_stringn_nocheck(buf, off);
            free(buf);
        } else if ((!c || json_is_null(c)) && strcmp(rs, "assistant") == 0) {
            content = json_string("");
        } else {
            json_decref(out);
            return BAD(p, "'%s' must be a string or an array of text parts", p);
        }
        json_array_append_new(out, json_pack("{s:s,s:o}", "role", rs, "content", content));
    }
    *messages = out;
    return 0;
}

int owl_api_parse_completion(json_t *body, owl_api_req *r, char **prompt, owl_api_err *err) {
    *prompt = NULL;
    if (!json_is_object(body)) return BAD(NULL, "the request body must be a JSON object");
    int s = parse_common(body, r, err);
    if (s) return s;
    json_t *p = json_object_get(body, "prompt");
    if (!p) return BAD("prompt", "you must provide a 'prompt' parameter");
    bool ids = json_is_array(p) && json_array_size(p) > 0;
    for (size_t i = 0; ids && i < json_array_size(p); i++) ids = json_is_integer(json_array_get(p, i));
    if (ids) { /* token ids */
        size_t n = json_array_size(p);
        if (n > (1u << 20)) return BAD("prompt", "'prompt' has %zu token ids; at most %u", n, 1u << 20);
        r->prompt_ids = malloc(n * sizeof(int32_t));
        if (!r->prompt_ids) return owl_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_int_t v = json_integer_value(json_array_get(p, i));
            if (v < 0 || v > INT32_MAX) return BAD("prompt", "'prompt[%zu]' is %lld, not a token id", i, (long long)v);
            r->prompt_ids[r->n_prompt_ids++] = (int32_t)v;
        }
        p = json_string("");
        json_object_set_new(body, "_prompt", p); /* owned by body */
    } else if (json_is_array(p)) {
        if (json_array_size(p) != 1 || !json_is_string(json_array_get(p, 0)))
            return BAD("prompt", "'prompt' as an array must hold token ids or exactly one string (batches are not supported)");
        p = json_array_get(p, 0);
    }
    if (!json_is_string(p)) return BAD("prompt", "'prompt' must be a string");
    bool echo = false;
    if (get_bool(body, "echo", &echo, err) < 0) return err->status;
    if (echo) return BAD("echo", "'echo' is not supported by this server");
    json_t *sfx = json_object_get(body, "suffix");
    if (sfx && !json_is_null(sfx)) return BAD("suffix", "'suffix' is not supported by this server");
    long long bo;
    int k = get_int(body, "best_of", 1, 128, &bo, err);
    if (k < 0) return err->status;
    if (k && bo != 1) return BAD("best_of", "'best_of' other than 1 is not supported by this server");
    long long lpn = 0;
    k = get_int(body, "logprobs", 0, 5, &lpn, err);
    if (k < 0) return err->status;
    if (k && r->stream) return BAD("logprobs", "'logprobs' with 'stream' is not supported by this server");
    if (k) r->logprobs = (int)lpn;
    *prompt = strndup(json_string_value(p), json_string_length(p));
    if (!*prompt) return owl_api_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

static bool token_list(json_t *a) {
    if (!json_is_array(a)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_integer(json_array_get(a, i))) return false;
    return true;
}

int owl_api_parse_embeddings(json_t *body, char *model, size_t model_size, json_t **inputs, bool *base64,
                             owl_api_err *err) {
    *inputs = NULL;
    *base64 = false;
    if (!json_is_object(body)) return BAD(NULL, "the request body must be a JSON object");
    json_t *m = json_object_get(body, "model");
    if (!m) return BAD("model", "you must provide a model parameter");
    if (!json_is_string(m)) return BAD("model", "'model' must be a string");
    snprintf(model, model_size, "%s", json_string_value(m));
    json_t *f = json_object_get(body, "encoding_format");
    if (f && !json_is_null(f)) {
        if (!json_is_string(f) || (strcmp(json_string_value(f), "float") && strcmp(json_string_value(f), "base64")))
            return BAD("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        *base64 = strcmp(json_string_value(f), "base64") == 0;
    }
    json_t *in = json_object_get(body, "input");
    if (!in) return BAD("input", "you must provide an 'input' parameter");
    json_t *list;
    if (json_is_string(in) || (token_list(in) && json_array_size(in) > 0)) {
        list = json_pack("[O]", in);
    } else if (json_is_array(in)) {
        if (json_array_size(in) == 0) return BAD("input", "'input' must not be empty");
        if (json_array_size(in) > 2048) return BAD("input", "'input' has %zu items; at most 2048", json_array_size(in));
        for (size_t i = 0; i < json_array_size(in); i++) {
            json_t *x = json_array_get(in, i);
            if (!json_is_string(x) && !token_list(x))
                return BAD("input", "'input[%zu]' must be a string or an array of token ids", i);
        }
        list = json_incref(in);
    } else {
        return BAD("input", "'input' must be a string, an array of strings, or token ids");
    }
    json_object_set_new(body, "_inputs", list); /* owned by body from here */
    *inputs = list;
    return 0;
}

void owl_api_req_free(owl_api_req *r) {
    free(r->prompt_ids);
    r->prompt_ids = NULL;
    r->n_prompt_ids = 0;
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    r->n_stops = 0;
}

static json_t *usage_obj(int prompt, int completion) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", prompt, "completion_tokens", completion, "total_tokens",
                     prompt + completion);
}

char *owl_api_response(bool chat, const char *id, long long created, const char *model, const char *text,
                       size_t len, const char *finish, int prompt_tokens, int completion_tokens, json_t *logprobs) {
    if (!logprobs) logprobs = json_null();
    json_t *choice;
    json_t *t = json_stringn(text, len);
    if (!t) t = json_string(""); /* not UTF-8: should not happen, the decoder emits whole characters */
    if (chat)
        choice = json_pack("{s:i,s:{s:s,s:o,s:n},s:o,s:s}", "index", 0, "message", "role", "assistant", "content", t,
                           "refusal", "logprobs", logprobs, "finish_reason", finish);
    else
        choice = json_pack("{s:o,s:i,s:o,s:s}", "text", t, "index", 0, "logprobs", logprobs, "finish_reason", finish);
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:n}", "id", id, "object", chat ? "chat.completion" : "text_completion",
                          "created", (json_int_t)created, "model", model, "choices", choice, "usage",
                          usage_obj(prompt_tokens, completion_tokens), "system_fingerprint");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

char *owl_api_chunk(bool chat, const char *id, long long created, const char *model, int kind, const char *text,
                    size_t len, const char *finish, bool include_usage, int prompt_tokens, int completion_tokens) {
    json_t *choices = json_array();
    if (kind != OWL_CHUNK_USAGE) {
        json_t *choice;
        json_t *fin = finish ? json_string(finish) : json_null();
        if (chat) {
            json_t *delta = json_object();
            if (kind == OWL_CHUNK_ROLE) {
                json_object_set_new(delta, "role", json_string("assistant"));
                json_object_set_new(delta, "content", json_string(""));
            } else if (kind == OWL_CHUNK_TEXT) {
                json_t *t = json_stringn(text, len);
                json_object_set_new(delta, "content", t ? t : json_string(""));
            }
            choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason", fin);
        } else {
            json_t *t = kind == OWL_CHUNK_TEXT ? json_stringn(text, len) : json_string("");
            choice = json_pack("{s:o,s:i,s:n,s:o}", "text", t ? t : json_string(""), "index", 0, "logprobs",
                               "finish_reason", fin);
        }
        json_array_append_new(choices, choice);
    }
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:o,s:n}", "id", id, "object",
                          chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)created, "model",
                          model, "choices", choices, "system_fingerprint");
    if (include_usage)
        json_object_set_new(j, "usage", kind == OWL_CHUNK_USAGE ? usage_obj(prompt_tokens, completion_tokens) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}
