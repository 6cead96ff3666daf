/* chat/: chat templates. A Jinja interpreter for what real chat templates
 * use, rendering byte-identical to Python's jinja2 configured the way Hugging
 * Face's apply_chat_template configures it (ImmutableSandboxedEnvironment,
 * trim_blocks, lstrip_blocks, loopcontrols, raise_exception, strftime_now,
 * tojson keeping non-ASCII).
 *
 * Anything the interpreter does not support (a filter, test, tag, method or
 * function) is an error naming it and its line:column, never a silent
 * different rendering. Python semantics are kept where output depends on
 * them: str()/repr() of values, int vs float, integer division, Python's
 * string methods, jinja2's scoping (loop bodies, namespaces, macros), lazy
 * filters, Markup from |safe and |e, json.dumps for |tojson.
 *
 * Files: jinja_lex.c (tokens, whitespace control), jinja_parse*.c (syntax
 * tree), jinja_scope.c (jinja2's compile-time scoping), jinja_eval.c
 * (statements, expressions), jinja_ops.c, jinja_filters.c, jinja_tests.c,
 * jinja_methods.c, jinja_format.c (operators, filters, tests, methods and
 * '%' formatting), jinja_value.c (values, printing, JSON).
 *
 * A parsed template is read-only: several threads may render it at once. */
#ifndef OWL_CHAT_H
#define OWL_CHAT_H

#include "base/base.h"

#include <stdint.h>

typedef struct owl_template owl_template;

/* Limits (each exceeded limit is a clear error). */
#define OWL_TEMPLATE_MAX_SOURCE (1u << 20)        /* template source bytes */
#define OWL_TEMPLATE_MAX_NESTING 200              /* nested blocks / expressions */
#define OWL_TEMPLATE_MAX_CALL_DEPTH 200           /* macro calls in progress */
#define OWL_TEMPLATE_MAX_OUTPUT (32u << 20)       /* rendered bytes and string size */
#define OWL_TEMPLATE_MAX_ITERATIONS 250000        /* loop iterations per render */
#define OWL_TEMPLATE_MAX_MEMORY (256u << 20)      /* bytes of values per render */
#define OWL_TEMPLATE_MAX_RANGE 100000             /* range() length, as jinja2's sandbox */
#define OWL_TEMPLATE_MAX_WORK (1ull << 30)        /* bytes / items scanned per render */

/* Parses a template. Errors name the line:column ("template:3:14: ..."). */
owl_status owl_template_parse(const char *src, size_t len, owl_template **out);
void owl_template_free(owl_template *t);

typedef struct owl_template_opts {
    /* strftime_now() uses this time (Unix seconds, formatted as UTC) when
     * fixed_now is set; otherwise the local clock. The environment variable
     * OWL_TEMPLATE_NOW (Unix seconds) also fixes it. */
    bool fixed_now;
    int64_t now;
} owl_template_opts;

/* Renders with the variables of inputs_json, a JSON object: messages
 * (role, content as a string or a list of {"type":"text","text":...} parts,
 * tool_calls, ...), tools, add_generation_prompt, bos_token, eos_token and any
 * other variable. *out is malloc'd and NUL-terminated; *out_len (optional)
 * gets its length. raise_exception(msg) in the template fails the render with
 * msg in the error text. */
owl_status owl_template_render(const owl_template *t, const char *inputs_json, char **out,
                               size_t *out_len);
owl_status owl_template_render_opts(const owl_template *t, const char *inputs_json,
                                    const owl_template_opts *opts, char **out, size_t *out_len);

/* Parse + render + free in one call. */
owl_status owl_chat_render(const char *template_src, const char *inputs_json, char **out);

#endif
