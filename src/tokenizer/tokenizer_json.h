/* Internal to tokenizer/: the pieces of the tokenizer.json reader
 * (tokenizer_json.c, tokenizer_json_parts.c). Field names in errors are
 * written like "pre_tokenizer.pretokenizers[0].pattern.Regex". */
#ifndef OWL_TOKENIZER_JSON_H
#define OWL_TOKENIZER_JSON_H

#include "tokenizer/bpe.h"

#include <jansson.h>

const char *owl_tj_type(const json_t *v);
/* "name: field: expected want, got <type>" as OWL_ERR_FORMAT. */
owl_status owl_tj_wrong(const char *name, const char *field, const char *want, const json_t *v);
/* Optional fields of obj (absent or null: def / NULL). */
owl_status owl_tj_bool(const char *name, const char *field, const json_t *obj, const char *key, bool def, bool *out);
owl_status owl_tj_str(const char *name, const char *field, const json_t *obj, const char *key, const char **s,
                      size_t *len);
owl_status owl_tj_normalizer(const char *name, const char *field, const json_t *j, struct owl_norm *nm, int depth);
owl_status owl_tj_pre(const char *name, const char *field, const json_t *j, struct owl_bpe *b, int depth);
owl_status owl_tj_decoder(const char *name, const char *field, const json_t *j, struct owl_bpe *b, int depth);

#endif
