/* A conversation: messages, their rendering with the chat template, the
 * end-of-turn tokens and the KV-cache prefix reuse (see conversation.h). */
#include "chat/conversation.h"

#include "chat/chat.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char OWL_CONV_CHATML[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

typedef struct conv_msg {
    char *role, *content;
} conv_msg;

struct owl_conv {
    const owl_model *model;
    const owl_tokenizer *tok;
    owl_template *tmpl;
    owl_conv_origin origin;
    char *tmpl_src;
    conv_msg *msgs;
    int n_msgs, cap_msgs;
    int32_t *stops;
    int n_stops;
    int32_t *cache; /* tokens the context holds, as far as we know */
    int n_cache, cap_cache;
};

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static owl_status add_stop(owl_conv *c, int32_t id) {
    if (id < 0) return OWL_OK;
    for (int i = 0; i < c->n_stops; i++)
        if (c->stops[i] == id) return OWL_OK;
    int32_t *g = realloc(c->stops, ((size_t)c->n_stops + 1) * sizeof *g);
    if (!g) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for the stop tokens");
    c->stops = g;
    c->stops[c->n_stops++] = id;
    return OWL_OK;
}

/* A control token written like <...> or [...] whose text the template
 * writes ends a turn: <|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>.
 * Tokens that open a turn (<|im_start|>, <start_of_turn>, headers) are stops
 * too: an answer never contains them. */
static owl_status find_stops(owl_conv *c) {
    const owl_tokenizer *tok = c->tok;
    owl_status st = add_stop(c, owl_token_eos(tok));
    if (st) return st;
    static const char *const known[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|eom_id|>",
                                        "<|endoftext|>", "<|end_of_text|>", "<eos>", "</s>"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int32_t id = owl_vocab_find(&tok->vocab, known[k], strlen(known[k]));
        if (id >= 0 && tok->vocab.types && tok->vocab.types[id] == OWL_TOKTYPE_CONTROL && (st = add_stop(c, id)))
            return st;
    }
    const char *src = c->tmpl_src;
    size_t src_len = strlen(src);
    for (int i = 0; i < tok->n_specials; i++) {
        int32_t id = tok->specials[i];
        if (id < 0 || id >= tok->vocab.n || id == owl_token_bos(tok)) continue;
        if (!tok->vocab.types || tok->vocab.types[id] != OWL_TOKTYPE_CONTROL) continue;
        owl_str p = tok->vocab.pieces[id];
        bool bracketed = p.len >= 3 && ((p.ptr[0] == '<' && p.ptr[p.len - 1] == '>') ||
                                        (p.ptr[0] == '[' && p.ptr[p.len - 1] == ']'));
        if (!bracketed || !memmem(src, src_len, p.ptr, p.len)) continue;
        if ((st = add_stop(c, id))) return st;
    }
    return OWL_OK;
}

owl_status owl_conv_new(const owl_model *model, const char *template_src, owl_conv **out) {
    *out = NULL;
    if (!model || !model->tok) return owl_errorf(OWL_ERR_ARG, "chat: the model has no tokenizer");
    owl_conv *c = calloc(1, sizeof *c);
    if (!c) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory");
    c->model = model;
    c->tok = model->tok;
    const char *src = template_src;
    size_t len = src ? strlen(src) : 0;
    c->origin = OWL_CONV_TEMPLATE_GIVEN;
    if (!src) {
        owl_str s;
        if (owl_meta_get_str(&model->weights.meta, "tokenizer.chat_template", &s) && s.len > 0) {
            src = s.ptr;
            len = s.len;
        } else if ((src = owl_tokenizer_chat_template(c->tok)) && *src) {
            len = strlen(src);
        } else {
            src = OWL_CONV_CHATML;
            len = strlen(src);
        }
        c->origin = src == OWL_CONV_CHATML ? OWL_CONV_TEMPLATE_CHATML : OWL_CONV_TEMPLATE_MODEL;
    }
    owl_status st = OWL_OK;
    if (!(c->tmpl_src = dup_n(src, len))) st = owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for the template");
    if (!st) st = owl_template_parse(c->tmpl_src, len, &c->tmpl);
    if (!st) st = find_stops(c);
    if (st) {
        owl_conv_free(c);
        return st;
    }
    *out = c;
    return OWL_OK;
}

void owl_conv_free(owl_conv *c) {
    if (!c) return;
    owl_conv_drop_from(c, 0);
    free(c->msgs);
    free(c->stops);
    free(c->cache);
    free(c->tmpl_src);
    owl_template_free(c->tmpl);
    free(c);
}

owl_conv_origin owl_conv_template_origin(const owl_conv *c) { return c->origin; }
int owl_conv_count(const owl_conv *c) { return c->n_msgs; }
const char *owl_conv_role(const owl_conv *c, int i) { return i >= 0 && i < c->n_msgs ? c->msgs[i].role : NULL; }
const char *owl_conv_content(const owl_conv *c, int i) {
    return i >= 0 && i < c->n_msgs ? c->msgs[i].content : NULL;
}

owl_status owl_conv_add(owl_conv *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == c->cap_msgs) {
        int cap = c->cap_msgs ? c->cap_msgs * 2 : 8;
        conv_msg *g = realloc(c->msgs, (size_t)cap * sizeof *g);
        if (!g) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for the messages");
        c->msgs = g;
        c->cap_msgs = cap;
    }
    conv_msg m = {dup_n(role, strlen(role)), dup_n(content, len)};
    if (!m.role || !m.content) {
        free(m.role);
        free(m.content);
        return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for a message");
    }
    c->msgs[c->n_msgs++] = m;
    return OWL_OK;
}

void owl_conv_drop_from(owl_conv *c, int i) {
    if (i < 0) i = 0;
    while (c->n_msgs > i) {
        c->n_msgs--;
        free(c->msgs[c->n_msgs].role);
        free(c->msgs[c->n_msgs].content);
    }
}

/* Markers around each message's text in a second rendering (private-use
 * characters U+E000 / U+E001) that show which bytes of the prompt are
 * message text: no special token is matched there. */
#define MARK_OPEN "\xEE\x80\x80"
#define MARK_CLOSE "\xEE\x80\x81"
#define MARK_LEN 3

static json_t *content_json(const char *content, bool mark) {
    if (!mark) return json_string(content);
    size_t n = strlen(content);
    char *w = malloc(n + 2 * MARK_LEN + 1);
    if (!w) return NULL;
    memcpy(w, MARK_OPEN, MARK_LEN);
    memcpy(w + MARK_LEN, content, n);
    memcpy(w + MARK_LEN + n, MARK_CLOSE, MARK_LEN + 1);
    json_t *j = json_string(w);
    free(w);
    return j;
}

static json_t *messages_json(const owl_conv *c, bool mark) {
    json_t *arr = json_array();
    for (int i = 0; arr && i < c->n_msgs; i++) {
        json_t *m = json_object();
        if (!m || json_object_set_new(m, "role", json_string(c->msgs[i].role)) ||
            json_object_set_new(m, "content", content_json(c->msgs[i].content, mark))) {
            json_decref(m);
            json_decref(arr);
            return NULL;
        }
        if (json_array_append_new(arr, m)) { /* it takes m even when it fails */
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *piece_json(const owl_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *p = id >= 0 ? owl_token_piece(tok, id, &len) : NULL;
    return p ? json_stringn(p, len) : json_string("");
}

static owl_status render(const owl_conv *c, bool add_generation_prompt, bool mark, char **out, size_t *out_len) {
    *out = NULL;
    json_t *in = json_object();
    char *text = NULL;
    /* json_object_set_new takes the value even when it fails */
    bool bad = !in || json_object_set_new(in, "messages", messages_json(c, mark)) ||
               json_object_set_new(in, "add_generation_prompt", json_boolean(add_generation_prompt)) ||
               json_object_set_new(in, "bos_token", piece_json(c->tok, owl_token_bos(c->tok))) ||
               json_object_set_new(in, "eos_token", piece_json(c->tok, owl_token_eos(c->tok)));
    if (bad) {
        json_decref(in);
        return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory (or a message that is not UTF-8) building the template inputs");
    }
    text = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    if (!text) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory building the template inputs");
    owl_status st = owl_template_render(c->tmpl, text, out, out_len);
    free(text);
    return st;
}

owl_status owl_conv_render(const owl_conv *c, bool add_generation_prompt, char **out, size_t *out_len) {
    return render(c, add_generation_prompt, false, out, out_len);
}

/* Which bytes of the rendered prompt r are message text: renders again with
 * markers around every message's text; where removing the markers gives r
 * exactly, *plain (malloc'd, len bytes) is 1 between them. NULL when the
 * template changed the marked text (it trims or inspects it) or a message
 * holds a marker character itself. */
static owl_status plain_mask(const owl_conv *c, bool add_generation_prompt, const char *r, size_t len, uint8_t **plain) {
    *plain = NULL;
    for (int i = 0; i < c->n_msgs; i++)
        if (strstr(c->msgs[i].content, MARK_OPEN) || strstr(c->msgs[i].content, MARK_CLOSE)) return OWL_OK;
    char *m = NULL;
    size_t ml = 0;
    owl_status st = render(c, add_generation_prompt, true, &m, &ml);
    if (st) return st;
    uint8_t *mask = calloc(len + 1, 1);
    if (!mask) {
        free(m);
        return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for a prompt of %zu bytes", len);
    }
    size_t j = 0; /* bytes of r matched */
    bool in = false, good = true;
    for (size_t i = 0; i < ml && good;) {
        if (ml - i >= MARK_LEN && memcmp(m + i, MARK_OPEN, MARK_LEN) == 0) {
            good = !in;
            in = true;
            i += MARK_LEN;
        } else if (ml - i >= MARK_LEN && memcmp(m + i, MARK_CLOSE, MARK_LEN) == 0) {
            good = in;
            in = false;
            i += MARK_LEN;
        } else {
            good = j < len && m[i] == r[j];
            if (good) mask[j++] = in;
            i++;
        }
    }
    free(m);
    if (good && !in && j == len) *plain = mask;
    else free(mask);
    return OWL_OK;
}

/* True if text holds the text of a special token (tokenizing it with
 * special tokens gives other ids than without). */
static bool names_special(const owl_tokenizer *tok, const char *text) {
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    bool differ = false;
    if (owl_tokenize(tok, text, strlen(text), false, true, &a, &na) == OWL_OK &&
        owl_tokenize(tok, text, strlen(text), false, false, &b, &nb) == OWL_OK)
        differ = na != nb || memcmp(a, b, na * sizeof *a) != 0;
    free(a);
    free(b);
    return differ;
}

owl_status owl_conv_tokenize(const owl_conv *c, bool add_generation_prompt, char **text, int32_t **ids,
                             size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (text) *text = NULL;
    char *r = NULL;
    size_t len = 0;
    owl_status st = owl_conv_render(c, add_generation_prompt, &r, &len);
    if (st) return st;
    /* A template that writes {{ bos_token }} itself gets no second BOS. */
    bool add_bos = true;
    int32_t bos = owl_token_bos(c->tok);
    size_t bl = 0;
    const char *bp = bos >= 0 ? owl_token_piece(c->tok, bos, &bl) : NULL;
    if (bp && bl > 0 && len >= bl && memcmp(r, bp, bl) == 0) add_bos = false;
    /* Message text is plain text: "<|im_end|>" typed by a user must not end
     * the turn (prompt injection); the template's own special tokens are
     * tokens. */
    uint8_t *plain = NULL;
    st = plain_mask(c, add_generation_prompt, r, len, &plain);
    for (int i = 0; st == OWL_OK && !plain && i < c->n_msgs; i++)
        if (names_special(c->tok, c->msgs[i].content))
            st = owl_errorf(OWL_ERR_ARG,
                            "chat: message %d (%s) holds the text of a special token, and the chat template changes "
                            "message text so that it cannot be kept apart from the template's own tokens",
                            i + 1, c->msgs[i].role);
    if (st == OWL_OK) st = owl_tokenize_masked(c->tok, r, len, add_bos, plain, ids, n_ids);
    free(plain);
    if (st == OWL_OK && text) *text = r;
    else free(r);
    return st;
}

bool owl_conv_is_stop(const owl_conv *c, int32_t id) {
    for (int i = 0; i < c->n_stops; i++)
        if (c->stops[i] == id) return true;
    return false;
}

const int32_t *owl_conv_stop_tokens(const owl_conv *c, int *n) {
    *n = c->n_stops;
    return c->stops;
}

static owl_status cache_reserve(owl_conv *c, size_t n) {
    if (n <= (size_t)c->cap_cache) return OWL_OK;
    size_t cap = c->cap_cache ? (size_t)c->cap_cache : 256;
    while (cap < n) cap *= 2;
    if (cap > (size_t)INT32_MAX) return owl_errorf(OWL_ERR_RANGE, "chat: %zu tokens are too many", n);
    int32_t *g = realloc(c->cache, cap * sizeof *g);
    if (!g) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory for %zu cached tokens", n);
    c->cache = g;
    c->cap_cache = (int)cap;
    return OWL_OK;
}

owl_status owl_conv_prefill(owl_conv *c, owl_ctx *ctx, const int32_t *ids, size_t n, int *reused, int *evaluated) {
    if (reused) *reused = 0;
    if (evaluated) *evaluated = 0;
    if (n == 0) return owl_errorf(OWL_ERR_ARG, "chat: nothing to evaluate (the rendered prompt has no tokens)");
    int n_ctx = owl_ctx_size(ctx);
    if (n > (size_t)n_ctx)
        return owl_errorf(OWL_ERR_RANGE, "chat: the conversation is %zu tokens, more than the context of %d tokens", n,
                          n_ctx);
    /* What we recorded can only be trusted as far as the context still holds it. */
    int held = owl_ctx_pos(ctx);
    if (c->n_cache > held) c->n_cache = held;
    size_t keep = 0;
    while (keep < (size_t)c->n_cache && keep < n && c->cache[keep] == ids[keep]) keep++;
    if (keep == n) keep--; /* the last token is evaluated again for its logits */
    owl_status st = cache_reserve(c, n);
    if (st) return st;
    owl_ctx_truncate(ctx, (int)keep);
    c->n_cache = (int)keep;
    st = owl_ctx_eval(ctx, ids + keep, (int)(n - keep), false);
    if (st) {
        /* the context may hold part of the new tokens: forget them */
        owl_ctx_truncate(ctx, (int)keep);
        return st;
    }
    memcpy(c->cache + keep, ids + keep, (n - keep) * sizeof *ids);
    c->n_cache = (int)n;
    if (reused) *reused = (int)keep;
    if (evaluated) *evaluated = (int)(n - keep);
    return OWL_OK;
}

owl_status owl_conv_push(owl_conv *c, owl_ctx *ctx, int32_t id) {
    if (owl_ctx_pos(ctx) >= owl_ctx_size(ctx))
        return owl_errorf(OWL_ERR_RANGE, "chat: the context of %d tokens is full", owl_ctx_size(ctx));
    if (c->n_cache != owl_ctx_pos(ctx))
        return owl_errorf(OWL_ERR_ARG, "chat: the context holds %d tokens, the conversation recorded %d",
                          owl_ctx_pos(ctx), c->n_cache);
    owl_status st = cache_reserve(c, (size_t)c->n_cache + 1);
    if (st) return st;
    st = owl_ctx_eval(ctx, &id, 1, false);
    if (st) {
        owl_ctx_truncate(ctx, c->n_cache);
        return st;
    }
    c->cache[c->n_cache++] = id;
    return OWL_OK;
}

void owl_conv_cache_clear(owl_conv *c, owl_ctx *ctx) {
    c->n_cache = 0;
    if (ctx) owl_ctx_truncate(ctx, 0);
}

const int32_t *owl_conv_cached(const owl_conv *c, int *n) {
    *n = c->n_cache;
    return c->cache;
}

owl_status owl_conv_to_json(const owl_conv *c, char **out) {
    *out = NULL;
    json_t *root = json_object(), *msgs = messages_json(c, false);
    if (!root || !msgs || json_object_set_new(root, "messages", msgs)) {
        json_decref(root);
        return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory saving the conversation");
    }
    *out = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!*out) return owl_errorf(OWL_ERR_NOMEM, "chat: out of memory saving the conversation");
    return OWL_OK;
}

owl_status owl_conv_from_json(owl_conv *c, const char *name, const char *json, size_t len) {
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return owl_errorf(OWL_ERR_FORMAT, "%s:%d:%d: not JSON: %s", name, err.line, err.column, err.text);
    owl_status st = OWL_OK;
    json_t *msgs = json_is_object(root) ? json_object_get(root, "messages") : NULL;
    if (!msgs || !json_is_array(msgs)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: expected an object with a \"messages\" array", name);
        goto done;
    }
    size_t n = json_array_size(msgs);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role) || !json_is_string(content)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: messages[%zu] needs string \"role\" and \"content\"", name, i);
            goto done;
        }
    }
    int old = c->n_msgs;
    for (size_t i = 0; i < n && !st; i++) {
        json_t *m = json_array_get(msgs, i);
        st = owl_conv_add(c, json_string_value(json_object_get(m, "role")),
                          json_string_value(json_object_get(m, "content")),
                          json_string_length(json_object_get(m, "content")));
    }
    if (st) {
        owl_conv_drop_from(c, old);
        goto done;
    }
    /* the new messages replace the old ones */
    for (int i = 0; i < old; i++) {
        free(c->msgs[i].role);
        free(c->msgs[i].content);
    }
    memmove(c->msgs, c->msgs + old, (size_t)(c->n_msgs - old) * sizeof *c->msgs);
    c->n_msgs -= old;
done:
    json_decref(root);
    return st;
}
