/* Training data: plain text packed into fixed-length sequences, or JSONL
 * examples (chat messages rendered with the model's chat template, prompt /
 * completion pairs, plain texts) with targets only where the model should
 * learn to write. See train.h. */
#include "adapt/train.h"
#include "chat/conversation.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void owl_example_free(owl_example *ex) {
    if (!ex) return;
    free(ex->role);
    free(ex->content);
    free(ex->content_len);
    if (ex->json) json_decref(ex->json);
    memset(ex, 0, sizeof *ex);
}

static owl_status str_field(json_t *o, const char *key, const char *file, int lineno, const char **s, size_t *len) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return owl_errorf(OWL_ERR_FORMAT, "%s:%d: \"%s\" must be a string, not %s", file, lineno, key,
                          !v ? "missing" : json_is_object(v) ? "an object" : json_is_array(v) ? "an array"
                                         : json_is_number(v) ? "a number" : json_is_null(v) ? "null" : "a boolean");
    *s = json_string_value(v);
    *len = json_string_length(v);
    return OWL_OK;
}

owl_status owl_example_parse(const char *line, size_t len, const char *file, int lineno, owl_example *ex) {
    memset(ex, 0, sizeof *ex);
    json_error_t err;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!root) return owl_errorf(OWL_ERR_FORMAT, "%s:%d: not valid JSON (column %d: %s)", file, lineno, err.column, err.text);
    ex->json = root;
    if (!json_is_object(root)) {
        owl_example_free(ex);
        return owl_errorf(OWL_ERR_FORMAT, "%s:%d: a line must be a JSON object with \"messages\", \"prompt\" and "
                                          "\"completion\", or \"text\"", file, lineno);
    }
    owl_status st;
    json_t *msgs = json_object_get(root, "messages");
    if (msgs) {
        ex->kind = OWL_EX_MESSAGES;
        if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
            owl_example_free(ex);
            return owl_errorf(OWL_ERR_FORMAT, "%s:%d: \"messages\" must be a non-empty array", file, lineno);
        }
        const size_t n = json_array_size(msgs);
        if (n > 100000) {
            owl_example_free(ex);
            return owl_errorf(OWL_ERR_FORMAT, "%s:%d: %zu messages (at most 100000)", file, lineno, n);
        }
        ex->role = calloc(n, sizeof *ex->role);
        ex->content = calloc(n, sizeof *ex->content);
        ex->content_len = calloc(n, sizeof *ex->content_len);
        if (!ex->role || !ex->content || !ex->content_len) {
            owl_example_free(ex);
            return owl_errorf(OWL_ERR_NOMEM, "%s:%d: out of memory", file, lineno);
        }
        bool assistant = false;
        for (size_t i = 0; i < n; i++) {
            json_t *m = json_array_get(msgs, i);
            size_t rl;
            if (!json_is_object(m)) {
                owl_example_free(ex);
                return owl_errorf(OWL_ERR_FORMAT, "%s:%d: messages[%zu] must be an object", file, lineno, i);
            }
            if ((st = str_field(m, "role", file, lineno, &ex->role[i], &rl)) ||
                (st = str_field(m, "content", file, lineno, &ex->content[i], &ex->content_len[i]))) {
                owl_example_free(ex);
                return owl_error_prefix(st, "messages[%zu]", i);
            }
            if (strlen(ex->role[i]) != rl || rl == 0) {
                owl_example_free(ex);
                return owl_errorf(OWL_ERR_FORMAT, "%s:%d: messages[%zu]: an empty role or one with a NUL", file,
                                  lineno, i);
            }
            if (strcmp(ex->role[i], "assistant") == 0) assistant = true;
        }
        ex->n_msg = (int)n;
        if (!assistant) {
            owl_example_free(ex);
            return owl_errorf(OWL_ERR_FORMAT, "%s:%d: no \"assistant\" message: nothing to learn", file, lineno);
        }
        return OWL_OK;
    }
    if (json_object_get(root, "prompt") || json_object_get(root, "completion")) {
        ex->kind = OWL_EX_PROMPT;
        if ((st = str_field(root, "prompt", file, lineno, &ex->prompt, &ex->prompt_len)) ||
            (st = str_field(root, "completion", file, lineno, &ex->completion, &ex->completion_len))) {
            owl_example_free(ex);
            return st;
        }
        return OWL_OK;
    }
    if (json_object_get(root, "text")) {
        ex->kind = OWL_EX_TEXT;
        if ((st = str_field(root, "text", file, lineno, &ex->text, &ex->text_len))) {
            owl_example_free(ex);
            return st;
        }
        return OWL_OK;
    }
    owl_example_free(ex);
    return owl_errorf(OWL_ERR_FORMAT, "%s:%d: none of \"messages\", \"prompt\"/\"completion\" or \"text\"", file,
                      lineno);
}

void owl_data_free(owl_data *d) {
    if (!d) return;
    for (int i = 0; i < d->n_seq; i++) {
        free(d->seq[i].tok);
        free(d->seq[i].tgt);
    }
    free(d->seq);
    memset(d, 0, sizeof *d);
}

/* Appends a sequence (copies); n_targets counted here. */
static owl_status push_seq(owl_data *d, const int32_t *tok, const uint8_t *tgt, int n) {
    if (d->n_seq == d->cap) {
        int cap = d->cap ? d->cap * 2 : 64;
        owl_data_seq *s = realloc(d->seq, sizeof *s * (size_t)cap);
        if (!s) return owl_errorf(OWL_ERR_NOMEM, "training data: out of memory for %d sequences", cap);
        d->seq = s;
        d->cap = cap;
    }
    owl_data_seq *s = &d->seq[d->n_seq];
    s->tok = malloc(sizeof(int32_t) * (size_t)n);
    s->tgt = malloc((size_t)n);
    if (!s->tok || !s->tgt) {
        free(s->tok);
        free(s->tgt);
        return owl_errorf(OWL_ERR_NOMEM, "training data: out of memory for a sequence of %d tokens", n);
    }
    memcpy(s->tok, tok, sizeof(int32_t) * (size_t)n);
    memcpy(s->tgt, tgt, (size_t)n);
    s->tgt[0] = 0;
    s->n = n;
    s->n_targets = 0;
    for (int i = 1; i < n; i++) s->n_targets += s->tgt[i] != 0;
    d->n_seq++;
    d->n_tokens += n;
    d->n_targets += s->n_targets;
    return OWL_OK;
}

static owl_status read_text(const owl_tokenizer *tok, const char *path, const char *text, size_t len,
                            const owl_data_opts *o, owl_data *d) {
    int32_t *ids = NULL;
    size_t n = 0;
    owl_status st = owl_tokenize(tok, text, len, true, false, &ids, &n);
    if (st) return owl_error_prefix(st, "%s", path);
    uint8_t *tgt = malloc((size_t)o->ctx);
    if (!tgt) {
        free(ids);
        return OWL_ERR_NOMEM;
    }
    memset(tgt, 1, (size_t)o->ctx);
    const size_t step = (size_t)o->ctx - 1;
    for (size_t s = 0; st == OWL_OK && s + 1 < n; s += step) {
        size_t cnt = n - s < (size_t)o->ctx ? n - s : (size_t)o->ctx;
        st = push_seq(d, ids + s, tgt, (int)cnt);
    }
    free(tgt);
    free(ids);
    return st;
}

/* Longest common prefix of two token lists. */
static size_t lcp(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* The tokens and targets of one example: *ids, *tgt malloc'd. */
static owl_status example_tokens(const owl_model *m, const owl_tokenizer *tok, owl_conv *conv, const owl_example *ex,
                                 int32_t **ids, uint8_t **tgt, size_t *n) {
    *ids = NULL;
    *tgt = NULL;
    *n = 0;
    owl_status st = OWL_OK;
    if (ex->kind == OWL_EX_TEXT) {
        if ((st = owl_tokenize(tok, ex->text, ex->text_len, true, false, ids, n))) return st;
        if (!(*tgt = malloc(*n + 1))) return OWL_ERR_NOMEM;
        memset(*tgt, 1, *n);
        return OWL_OK;
    }
    if (ex->kind == OWL_EX_PROMPT) {
        int32_t *p = NULL, *c = NULL;
        size_t np = 0, nc = 0;
        if ((st = owl_tokenize(tok, ex->prompt, ex->prompt_len, true, false, &p, &np)) ||
            (st = owl_tokenize(tok, ex->completion, ex->completion_len, false, false, &c, &nc))) {
            free(p);
            return st;
        }
        const int32_t eos = owl_token_eos(tok);
        const size_t total = np + nc + (eos >= 0 ? 1 : 0);
        *ids = malloc(sizeof(int32_t) * (total + 1));
        *tgt = malloc(total + 1);
        if (*ids && *tgt) {
            memcpy(*ids, p, sizeof(int32_t) * np);
            memcpy(*ids + np, c, sizeof(int32_t) * nc);
            if (eos >= 0) (*ids)[np + nc] = eos;
            memset(*tgt, 0, np);
            memset(*tgt + np, 1, total - np);
            *n = total;
        } else {
            st = OWL_ERR_NOMEM;
        }
        free(p);
        free(c);
        return st;
    }
    /* messages: the whole conversation, then for each assistant turn the
     * tokens between the conversation so far with the generation prompt and
     * the conversation including that turn */
    (void)m;
    owl_conv_drop_from(conv, 0);
    for (int i = 0; i < ex->n_msg && !st; i++) st = owl_conv_add(conv, ex->role[i], ex->content[i], ex->content_len[i]);
    if (st || (st = owl_conv_tokenize(conv, false, NULL, ids, n))) return st;
    if (!(*tgt = calloc(*n + 1, 1))) return OWL_ERR_NOMEM;
    owl_conv_drop_from(conv, 0);
    for (int i = 0; i < ex->n_msg && !st; i++) {
        if (strcmp(ex->role[i], "assistant") == 0) {
            int32_t *p = NULL, *f = NULL;
            size_t np = 0, nf = 0;
            if (!(st = owl_conv_tokenize(conv, true, NULL, &p, &np)) &&
                !(st = owl_conv_add(conv, ex->role[i], ex->content[i], ex->content_len[i])) &&
                !(st = owl_conv_tokenize(conv, false, NULL, &f, &nf))) {
                const size_t a = lcp(p, np, *ids, *n), b = lcp(f, nf, *ids, *n);
                for (size_t j = a; j < b; j++) (*tgt)[j] = 1;
            }
            free(p);
            free(f);
        } else {
            st = owl_conv_add(conv, ex->role[i], ex->content[i], ex->content_len[i]);
        }
    }
    return st;
}

static owl_status read_jsonl(const owl_model *m, const owl_tokenizer *tok, const char *path, const char *text,
                             size_t len, const owl_data_opts *o, owl_data *d) {
    owl_conv *conv = NULL;
    owl_status st = OWL_OK;
    int lineno = 0;
    for (size_t pos = 0; pos < len && !st;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, ll = end - pos;
        const char *line = text + pos;
        pos = end + 1;
        lineno++;
        if (ll && line[ll - 1] == '\r') ll--;
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == ll) continue; /* blank line */
        owl_example ex;
        owl_status es = owl_example_parse(line, ll, path, lineno, &ex);
        if (!es && ex.kind == OWL_EX_MESSAGES && !conv) {
            es = owl_conv_new(m, o->template_src, &conv);
            if (es) {
                owl_example_free(&ex);
                st = owl_error_prefix(es, "%s: chat template", path);
                break;
            }
        }
        int32_t *ids = NULL;
        uint8_t *tgt = NULL;
        size_t n = 0;
        if (!es) {
            es = example_tokens(m, tok, conv, &ex, &ids, &tgt, &n);
            if (es) es = owl_error_prefix(es, "%s:%d", path, lineno);
        }
        owl_example_free(&ex);
        if (es) {
            free(ids);
            free(tgt);
            if (o->stop_on_bad || es == OWL_ERR_NOMEM) {
                st = es;
                break;
            }
            owl_log(OWL_LOG_WARN, "%s (line skipped)", owl_last_error());
            d->n_bad++;
            continue;
        }
        if (n > (size_t)o->ctx) {
            if (o->stop_on_long) {
                st = owl_errorf(OWL_ERR_RANGE, "%s:%d: %zu tokens, longer than the context of %d", path, lineno, n,
                                o->ctx);
            } else {
                owl_log(OWL_LOG_WARN, "%s:%d: %zu tokens, truncated to the context of %d", path, lineno, n, o->ctx);
                d->n_truncated++;
                n = (size_t)o->ctx;
            }
        }
        int nt = 0;
        for (size_t j = 1; !st && j < n; j++) nt += tgt[j] != 0;
        if (!st && (n < 2 || nt == 0)) {
            owl_log(OWL_LOG_WARN, "%s:%d: no tokens to learn%s (line skipped)", path, lineno,
                    d->n_truncated && n == (size_t)o->ctx ? " within the context" : "");
            d->n_skipped++;
        } else if (!st) {
            st = push_seq(d, ids, tgt, (int)n);
        }
        free(ids);
        free(tgt);
    }
    owl_conv_free(conv);
    return st;
}

owl_status owl_data_read(const owl_model *m, const char *path, const owl_data_opts *o, owl_data *d) {
    memset(d, 0, sizeof *d);
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    if (!tok) return owl_errorf(OWL_ERR_ARG, "%s: the model has no tokenizer to read training data with", path);
    if (o->ctx < 2) return owl_errorf(OWL_ERR_ARG, "training data: a context of %d tokens (at least 2)", o->ctx);
    char *text = NULL;
    size_t len = 0;
    owl_status st = owl_read_file(path, &text, &len);
    if (st) return st;
    owl_data_format f = o->format;
    if (f == OWL_DATA_AUTO) {
        size_t pl = strlen(path);
        f = (pl > 6 && strcmp(path + pl - 6, ".jsonl") == 0) || (pl > 5 && strcmp(path + pl - 5, ".json") == 0)
                ? OWL_DATA_JSONL
                : OWL_DATA_TEXT;
    }
    st = f == OWL_DATA_JSONL ? read_jsonl(m, tok, path, text, len, o, d) : read_text(tok, path, text, len, o, d);
    free(text);
    if (!st && d->n_seq == 0) st = owl_errorf(OWL_ERR_FORMAT, "%s: no training sequences (%d lines skipped)", path,
                                              d->n_bad + d->n_skipped);
    if (st) owl_data_free(d);
    return st;
}
