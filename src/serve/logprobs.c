/* The "logprobs" object of a response: per generated token its text, its
 * log-probability under the model (raw logits, before temperature) and the
 * most likely alternatives. Chat form: {"content":[{token, logprob, bytes,
 * top_logprobs}], "refusal":null}; completions (legacy) form: {tokens,
 * token_logprobs, top_logprobs, text_offset}. */
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

/* The text a token adds after another token (its leading space kept);
 * malloc'd. */
static char *token_text(const owl_tokenizer *tok, int32_t id, size_t *len) {
    owl_detok *d = NULL;
    *len = 0;
    if (owl_detok_new(tok, &d) != OWL_OK) return strdup("");
    int32_t prev = owl_token_bos(tok) == 0 ? 1 : 0; /* any token but BOS */
    owl_detok_prime(d, prev);
    size_t n1 = 0, n2 = 0;
    const char *a = owl_detok_push(d, id, &n1);
    char *out = malloc(n1 + 8);
    if (out && a) memcpy(out, a, n1);
    if (!a) n1 = 0;
    const char *b = owl_detok_flush(d, &n2);
    if (out && b && n2 <= 7) {
        memcpy(out + n1, b, n2);
        n1 += n2;
    }
    owl_detok_free(d);
    if (!out) return strdup("");
    out[n1] = 0;
    *len = n1;
    return out;
}

static json_t *bytes_of(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *str_of(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    return j ? j : json_string("\xef\xbf\xbd");
}

json_t *owl_serve_logprobs_json(const owl_tokenizer *tok, const owl_gen *g, bool chat) {
    int n = g->lps && g->cap_lps >= g->n_gen ? g->n_gen : 0;
    if (chat) {
        json_t *content = json_array();
        for (int i = 0; i < n; i++) {
            const owl_gen_lp *e = &g->lps[i];
            size_t tl;
            char *t = token_text(tok, e->id, &tl);
            json_t *tops = json_array();
            for (int k = 0; k < e->n_top; k++) {
                size_t ol;
                char *o = token_text(tok, e->top_id[k], &ol);
                json_array_append_new(tops, json_pack("{s:o,s:f,s:o}", "token", str_of(o, ol), "logprob",
                                                      (double)e->top_lp[k], "bytes", bytes_of(o, ol)));
                free(o);
            }
            json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", str_of(t, tl), "logprob", (double)e->lp,
                                                     "bytes", bytes_of(t, tl), "top_logprobs", tops));
            free(t);
        }
        return json_pack("{s:o,s:n}", "content", content, "refusal");
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const owl_gen_lp *e = &g->lps[i];
        size_t tl;
        char *t = token_text(tok, e->id, &tl);
        json_array_append_new(tokens, str_of(t, tl));
        json_array_append_new(lps, json_real(e->lp));
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += tl;
        free(t);
        json_t *m = json_object();
        for (int k = 0; k < e->n_top; k++) {
            size_t ol;
            char *o = token_text(tok, e->top_id[k], &ol);
            json_object_set_new(m, o, json_real(e->top_lp[k]));
            free(o);
        }
        json_array_append_new(tops, m);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops, "text_offset",
                     offs);
}
