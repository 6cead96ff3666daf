/* chat/conversation: a conversation with a model, for `owl chat`, `owl run
 * --chat` and (later) the server. Holds the messages, renders them with the
 * model's chat template (or a given one, or ChatML when the model has none),
 * knows the end-of-turn tokens, and keeps a copy of the tokens in a context's
 * KV cache so that each turn evaluates only what is new:
 *
 *   owl_conv_new(model, NULL, &c);
 *   owl_conv_add(c, "user", text, len);
 *   owl_conv_tokenize(c, true, NULL, &ids, &n);      // whole conversation + generation prompt
 *   owl_conv_prefill(c, ctx, ids, n, &reused, &evaluated);
 *   loop: t = sample(logits); if (owl_conv_is_stop(c, t)) break; owl_conv_push(c, ctx, t);
 *   owl_conv_add(c, "assistant", answer, len);
 */
#ifndef OWL_CONVERSATION_H
#define OWL_CONVERSATION_H

#include "owl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct owl_conv owl_conv;

typedef enum owl_conv_origin {
    OWL_CONV_TEMPLATE_MODEL = 1,  /* the model's own (GGUF tokenizer.chat_template, tokenizer_config.json) */
    OWL_CONV_TEMPLATE_GIVEN,      /* the caller's template_src */
    OWL_CONV_TEMPLATE_CHATML,     /* the model has none: ChatML */
} owl_conv_origin;

/* The ChatML template used when a model has none. */
extern const char OWL_CONV_CHATML[];

/* template_src: NULL for the model's template (ChatML if it has none). The
 * model must outlive the conversation. Errors: a template that does not parse
 * (its line:column named). */
owl_status owl_conv_new(const owl_model *model, const char *template_src, owl_conv **out);
void owl_conv_free(owl_conv *c);
owl_conv_origin owl_conv_template_origin(const owl_conv *c);

/* Messages. */
int owl_conv_count(const owl_conv *c);
const char *owl_conv_role(const owl_conv *c, int i);
const char *owl_conv_content(const owl_conv *c, int i);
owl_status owl_conv_add(owl_conv *c, const char *role, const char *content, size_t len);
/* Drops message i and every one after it. */
void owl_conv_drop_from(owl_conv *c, int i);

/* Renders the messages (add_generation_prompt: the opening of the next
 * assistant turn). *out malloc'd, NUL-terminated. */
owl_status owl_conv_render(const owl_conv *c, bool add_generation_prompt, char **out, size_t *out_len);
/* Renders and tokenizes (special tokens the template writes become tokens,
 * while the text of the messages stays plain text: "<|im_end|>" typed by a
 * user is not the end of a turn; OWL_ERR_ARG where a message names a special
 * token and the template changes message text so that it cannot be told
 * apart; BOS put first where the tokenizer adds it and the text does not
 * start with it). text (optional) gets the rendered text (malloc'd); *ids malloc'd. */
owl_status owl_conv_tokenize(const owl_conv *c, bool add_generation_prompt, char **text, int32_t **ids,
                             size_t *n_ids);

/* End of an answer: EOS, and the control tokens the template names
 * (<|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>, ...). */
bool owl_conv_is_stop(const owl_conv *c, int32_t id);
/* The stop tokens (for messages / tests). */
const int32_t *owl_conv_stop_tokens(const owl_conv *c, int *n);

/* ---- the KV cache of one context ---- */

/* Makes ctx hold ids[0..n): keeps the longest common prefix of what the
 * context holds (as recorded by this conversation) and ids, evaluates only
 * the rest (at least the last token, for its logits). *reused / *evaluated
 * (optional) get the counts. OWL_ERR_RANGE (with a message) when ids do not
 * fit in the context; the cache is then unchanged. */
owl_status owl_conv_prefill(owl_conv *c, owl_ctx *ctx, const int32_t *ids, size_t n, int *reused, int *evaluated);
/* Evaluates one generated token and records it. OWL_ERR_RANGE when the
 * context is full. */
owl_status owl_conv_push(owl_conv *c, owl_ctx *ctx, int32_t id);
/* Forgets the cache (ctx truncated to 0). */
void owl_conv_cache_clear(owl_conv *c, owl_ctx *ctx);
/* Tokens recorded in the cache. */
const int32_t *owl_conv_cached(const owl_conv *c, int *n);

/* ---- saving ---- */

/* {"messages": [{"role": ..., "content": ...}, ...]} (malloc'd). */
owl_status owl_conv_to_json(const owl_conv *c, char **out);
/* Replaces the messages with those of such a JSON text; name is used in
 * errors. On error the messages are unchanged. */
owl_status owl_conv_from_json(owl_conv *c, const char *name, const char *json, size_t len);

#endif
