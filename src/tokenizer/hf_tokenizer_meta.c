/* A Hugging Face byte-level BPE tokenizer.json written as GGUF "gpt2"
 * tokenizer keys (what llama.cpp's converter stores): tokens by id (holes
 * filled with [PADn]), token types (added special tokens CONTROL, other
 * added tokens USER_DEFINED), merges as "a b" lines, and the pre-tokenizer
 * name whose regexes equal the file's Split patterns. Used by the Hugging
 * Face directory reader and `owl convert`. */
#include "format/hf_dir.h"
#include "tokenizer/bpe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1 << 24)

/* Split patterns of the pre_tokenizer (a Sequence or a single step). */
static int collect_patterns(json_t *pt, const char **pat, int cap, bool *bytelevel_regex) {
    int n = 0;
    json_t *steps = json_object_get(pt, "pretokenizers");
    size_t count = json_is_array(steps) ? json_array_size(steps) : 1;
    for (size_t i = 0; i < count; i++) {
        json_t *s = json_is_array(steps) ? json_array_get(steps, i) : pt;
        const char *type = json_string_value(json_object_get(s, "type"));
        if (!type) continue;
        if (strcmp(type, "Split") == 0) {
            const char *re = json_string_value(json_object_get(json_object_get(s, "pattern"), "Regex"));
            if (re && n < cap) pat[n++] = re;
        } else if (strcmp(type, "Digits") == 0) {
            if (n < cap) pat[n++] = "\\p{N}";
        } else if (strcmp(type, "ByteLevel") == 0) {
            json_t *u = json_object_get(s, "use_regex");
            if (!json_is_false(u)) *bytelevel_regex = true;
        }
    }
    return n;
}

owl_status owl_hf_tokenizer_json_meta(const char *path, owl_meta *meta) {
    char *text = NULL;
    size_t len;
    owl_status st = owl_read_file(path, &text, &len);
    if (st) return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    owl_str *toks = NULL, *merges = NULL;
    int32_t *types = NULL;
    char **mbuf = NULL;
    size_t n_merges = 0;
    if (!json_is_object(root)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: not a JSON object%s%s", path, root ? "" : ": ", root ? "" : jerr.text);
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab");
    if (!mtype || strcmp(mtype, "BPE") != 0 || !json_is_object(vocab)) {
        st = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: model type '%.40s' (only BPE with a vocab object is converted)",
                        path, mtype ? mtype : "?");
        goto done;
    }
    if (json_is_true(json_object_get(model, "byte_fallback"))) {
        st = owl_errorf(OWL_ERR_UNSUPPORTED,
                        "%s: SentencePiece-style BPE (byte_fallback) needs tokenizer.model beside it", path);
        goto done;
    }
    json_t *added = json_object_get(root, "added_tokens");
    int64_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= MAX_VOCAB) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: vocab entry '%.60s' has no valid id", path, key);
            goto done;
        }
        if (json_integer_value(val) + 1 > n) n = json_integer_value(val) + 1;
    }
    for (size_t i = 0; json_is_array(added) && i < json_array_size(added); i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= MAX_VOCAB) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: added_tokens[%zu] has no valid id", path, i);
            goto done;
        }
        if (json_integer_value(id) + 1 > n) n = json_integer_value(id) + 1;
    }
    if (n == 0) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: empty vocabulary", path);
        goto done;
    }
    toks = calloc((size_t)n, sizeof *toks);
    types = calloc((size_t)n, sizeof *types);
    mbuf = calloc((size_t)n, sizeof *mbuf); /* [PADn] names */
    if (!toks || !types || !mbuf) goto nomem;
    json_object_foreach(vocab, key, val) {
        int64_t id = json_integer_value(val);
        toks[id] = (owl_str){key, strlen(key)};
        types[id] = OWL_TOKTYPE_NORMAL;
    }
    for (size_t i = 0; json_is_array(added) && i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        int64_t id = json_integer_value(json_object_get(a, "id"));
        const char *c = json_string_value(json_object_get(a, "content"));
        if (!c) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: added_tokens[%zu] has no content", path, i);
            goto done;
        }
        toks[id] = (owl_str){c, strlen(c)};
        types[id] = json_is_true(json_object_get(a, "special")) ? OWL_TOKTYPE_CONTROL : OWL_TOKTYPE_USER_DEFINED;
    }
    for (int64_t i = 0; i < n; i++) {
        if (toks[i].ptr) continue;
        char b[32];
        int l = snprintf(b, sizeof b, "[PAD%lld]", (long long)i);
        if (!(mbuf[i] = strdup(b))) goto nomem;
        toks[i] = (owl_str){mbuf[i], (size_t)l};
        types[i] = OWL_TOKTYPE_UNUSED;
    }
    json_t *jm = json_object_get(model, "merges");
    n_merges = json_is_array(jm) ? json_array_size(jm) : 0;
    merges = calloc(n_merges ? n_merges : 1, sizeof *merges);
    char **mtext = calloc(n_merges ? n_merges : 1, sizeof *mtext);
    if (!merges || !mtext) {
        free(mtext);
        goto nomem;
    }
    for (size_t i = 0; i < n_merges; i++) {
        json_t *m = json_array_get(jm, i);
        if (json_is_string(m)) {
            merges[i] = (owl_str){json_string_value(m), json_string_length(m)};
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            const char *a = json_string_value(json_array_get(m, 0)), *b = json_string_value(json_array_get(m, 1));
            size_t la = strlen(a), lb = strlen(b);
            if (!(mtext[i] = malloc(la + lb + 2))) {
                for (size_t k = 0; k < i; k++) free(mtext[k]);
                free(mtext);
                goto nomem;
            }
            memcpy(mtext[i], a, la);
            mtext[i][la] = ' ';
            memcpy(mtext[i] + la + 1, b, lb + 1);
            merges[i] = (owl_str){mtext[i], la + lb + 1};
        } else {
            for (size_t k = 0; k < i; k++) free(mtext[k]);
            free(mtext);
            st = owl_errorf(OWL_ERR_FORMAT, "%s: merges[%zu] is not \"a b\" or [a, b]", path, i);
            goto done;
        }
    }
    const char *pat[8];
    bool bl_regex = false;
    int np = collect_patterns(json_object_get(root, "pre_tokenizer"), pat, 7, &bl_regex);
    if (bl_regex) pat[np++] = owl_regex_gpt2;
    const char *pre = np ? owl_pre_name_of(pat, np) : "default";
    if (!pre) {
        owl_log(OWL_LOG_WARN, "%s: pre-tokenizer regexes match no known tokenizer.ggml.pre; writing 'default'", path);
        pre = "default";
    }
    if (!(st = owl_meta_set_str(meta, "tokenizer.ggml.model", "gpt2", 4)) &&
        !(st = owl_meta_set_str(meta, "tokenizer.ggml.pre", pre, strlen(pre))) &&
        !(st = owl_meta_set_str_arr(meta, "tokenizer.ggml.tokens", toks, (uint64_t)n)) &&
        !(st = owl_meta_set_arr(meta, "tokenizer.ggml.token_type", OWL_META_I32, types, (uint64_t)n)))
        st = owl_meta_set_str_arr(meta, "tokenizer.ggml.merges", merges, n_merges);
    for (size_t k = 0; k < n_merges; k++) free(mtext[k]);
    free(mtext);
    goto done;
nomem:
    st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
done:
    if (mbuf)
        for (int64_t i = 0; i < n; i++) free(mbuf[i]);
    free(mbuf);
    free(toks);
    free(types);
    free(merges);
    json_decref(root);
    return st;
}
