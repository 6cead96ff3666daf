/* Chat templates: the public parse / render interface over the Jinja
 * interpreter (jinja_*.c). */
#include "chat/chat.h"
#include "chat/jinja.h"

#include <stdlib.h>
#include <string.h>

struct owl_template {
    jmem mem;
    jparsed tree;
};


owl_status owl_template_parse(const char *src, size_t len, owl_template **out) {
    *out = NULL;
    if (!src) return owl_errorf(OWL_ERR_ARG, "template: no source");
    if (len > OWL_TEMPLATE_MAX_SOURCE)
        return owl_errorf(OWL_ERR_RANGE, "template: source of %zu bytes is over the limit of %u", len,
                          OWL_TEMPLATE_MAX_SOURCE);
    size_t bad;
    if (!ju_valid(src, len, &bad))
        return owl_errorf(OWL_ERR_FORMAT, "template: invalid UTF-8 at byte %zu (0x%02x)", bad, (unsigned char)src[bad]);
    owl_template *t = calloc(1, sizeof *t);
    if (!t) return owl_errorf(OWL_ERR_NOMEM, "template: out of memory");
    /* jinja2 reads "\r\n" and "\r" as "\n" and drops one trailing newline */
    char *norm = jmem_alloc(&t->mem, len + 1);
    if (!norm) {
        owl_template_free(t);
        return OWL_ERR_NOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            norm[n++] = src[i];
        }
    }
    if (n && norm[n - 1] == '\n') n--;
    norm[n] = 0;
    jtok *toks;
    size_t ntok;
    owl_status s = jinja_lex(&t->mem, norm, n, &toks, &ntok);
    if (!s) s = jinja_parse(&t->mem, toks, ntok, &t->tree);
    if (!s) s = jinja_analyze(&t->mem, &t->tree);
    if (s) {
        owl_template_free(t);
        return s;
    }
    *out = t;
    return OWL_OK;
}

void owl_template_free(owl_template *t) {
    if (!t) return;
    jmem_free(&t->mem);
    free(t);
}

owl_status owl_template_render_opts(const owl_template *t, const char *inputs_json,
                                    const owl_template_opts *opts, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !inputs_json) return owl_errorf(OWL_ERR_ARG, "template render: no template or inputs");
    jmem mem = {.limit = OWL_TEMPLATE_MAX_MEMORY};
    jbuf buf = {0};
    jstate st = {.mem = &mem, .out = &buf};
    if (opts && opts->fixed_now) {
        st.fixed_now = true;
        st.now = opts->now;
    } else {
        const char *env = getenv("OWL_TEMPLATE_NOW");
        if (env && *env) {
            char *end;
            long long v = strtoll(env, &end, 10);
            if (*end) return owl_errorf(OWL_ERR_ARG, "OWL_TEMPLATE_NOW: expected Unix seconds, got '%s'", env);
            st.fixed_now = true;
            st.now = v;
        }
    }
    jval inputs;
    owl_status s = jv_from_json(&mem, inputs_json, &inputs);
    jscope *root = s ? NULL : jmem_alloc(&mem, sizeof *root);
    if (!s && !root) s = OWL_ERR_NOMEM;
    if (!s) {
        const jdict *d = inputs.u.d;
        root->names = jmem_alloc(&mem, (d->n + 1) * sizeof *root->names);
        root->vals = jmem_alloc(&mem, (d->n + 1) * sizeof *root->vals);
        if (!root->names || !root->vals) s = OWL_ERR_NOMEM;
        for (size_t i = 0; !s && i < d->n; i++) {
            root->names[i] = d->k[i].u.s->s;
            root->vals[i] = d->v[i];
        }
        if (!s) {
            root->n = root->cap = d->n;
            st.globals = root;
            jinja_reset_error();
            /* the template's own names live in a scope below the inputs */
            jscope *top = jmem_alloc(&mem, sizeof *top);
            if (!top) s = OWL_ERR_NOMEM;
            else {
                top->parent = root;
                int ctl = 0;
                if (!jinja_bind_undef(&st, top, t->tree.undef, t->tree.n_undef) ||
                    !jinja_exec_body(&st, top, &t->tree.body, &ctl))
                    s = OWL_ERR_FORMAT;
            }
        }
    }
    if (!s) {
        *out = malloc(buf.n + 1);
        if (!*out) {
            s = owl_errorf(OWL_ERR_NOMEM, "template: out of memory");
        } else {
            if (buf.n) memcpy(*out, buf.p, buf.n);
            (*out)[buf.n] = 0;
            if (out_len) *out_len = buf.n;
        }
    }
    jbuf_free(&buf);
    jmem_free(&mem);
    return s;
}

owl_status owl_template_render(const owl_template *t, const char *inputs_json, char **out, size_t *out_len) {
    return owl_template_render_opts(t, inputs_json, NULL, out, out_len);
}

owl_status owl_chat_render(const char *template_src, const char *inputs_json, char **out) {
    owl_template *t;
    *out = NULL;
    owl_status s = owl_template_parse(template_src, template_src ? strlen(template_src) : 0, &t);
    if (s) return s;
    s = owl_template_render(t, inputs_json, out, NULL);
    owl_template_free(t);
    return s;
}
