/* libFuzzer target: SentencePiece encoding of arbitrary text with the Llama 2
 * vocabulary ($OWL_TESTDATA/tokenizers/llama2/tokenizer.model, else a tiny
 * built-in one). Never a crash; and for valid UTF-8 without U+2581 the
 * decode of the encoding gives the text back (checked: abort if not). */
#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static owl_tokenizer *tok;

static owl_tokenizer *load(void) {
    const char *td = getenv("OWL_TESTDATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/llama2/tokenizer.model", td && *td ? td : "../shared/testdata");
    owl_tokenizer *t = NULL;
    if (owl_tokenizer_load(path, &t) == OWL_OK) return t;
    /* fallback: <unk> <s> </s>, the 256 byte tokens, a few pieces */
    owl_meta m;
    memset(&m, 0, sizeof m);
    enum { N = 262 };
    owl_str pieces[N];
    int32_t types[N];
    float scores[N];
    static char bytes[256][7];
    pieces[0] = (owl_str){"<unk>", 5};
    pieces[1] = (owl_str){"<s>", 3};
    pieces[2] = (owl_str){"</s>", 4};
    types[0] = OWL_TOKTYPE_UNKNOWN;
    types[1] = types[2] = OWL_TOKTYPE_CONTROL;
    scores[0] = scores[1] = scores[2] = 0;
    for (int i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof bytes[i], "<0x%02X>", i);
        pieces[3 + i] = (owl_str){bytes[i], 6};
        types[3 + i] = OWL_TOKTYPE_BYTE;
        scores[3 + i] = 0;
    }
    pieces[259] = (owl_str){"\xe2\x96\x81", 3};
    pieces[260] = (owl_str){"a", 1};
    pieces[261] = (owl_str){"\xe2\x96\x81" "a", 4};
    for (int i = 259; i < N; i++) types[i] = OWL_TOKTYPE_NORMAL, scores[i] = (float)-i;
    owl_meta_set_str(&m, "tokenizer.ggml.model", "llama", 5);
    owl_meta_set_str_arr(&m, "tokenizer.ggml.tokens", pieces, N);
    owl_meta_set_arr(&m, "tokenizer.ggml.scores", OWL_META_F32, scores, N);
    owl_meta_set_arr(&m, "tokenizer.ggml.token_type", OWL_META_I32, types, N);
    if (owl_tokenizer_from_meta(&m, &t) != OWL_OK) t = NULL;
    owl_meta_free(&m);
    return t;
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int len = owl_utf8_len(s[i]);
        if (len == 0 || i + (size_t)len > n) return false;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return false;
        if (len == 3 && ((s[i] == 0xe0 && s[i + 1] < 0xa0) || (s[i] == 0xed && s[i + 1] >= 0xa0))) return false;
        if (len == 4 && ((s[i] == 0xf0 && s[i + 1] < 0x90) || (s[i] == 0xf4 && s[i + 1] >= 0x90))) return false;
        i += (size_t)len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) tok = load();
    if (!tok) return 0;
    /* (a NUL in the text would end the decoded C string early) */
    bool check = valid_utf8(data, size) && !memmem(data, size, "\xe2\x96\x81", 3) && !memchr(data, 0, size);
    for (int sp = 0; sp < 2; sp++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (owl_tokenize(tok, (const char *)data, size, sp == 0, sp == 1, &ids, &n) != OWL_OK) continue;
        char *back = NULL;
        if (owl_detokenize(tok, ids, n, &back) == OWL_OK) {
            if (check && sp == 0 && (strlen(back) != size || memcmp(back, data, size) != 0)) {
                fprintf(stderr, "round trip failed: %zu bytes in, %zu out\n", size, strlen(back));
                abort();
            }
            free(back);
        }
        /* streamed decode never splits a character and ends the same */
        owl_detok *d = NULL;
        if (owl_detok_new(tok, &d) == OWL_OK) {
            for (size_t i = 0; i < n; i++) {
                size_t len = 0;
                const char *o = owl_detok_push(d, ids[i], &len);
                if (o && len > 0 && !valid_utf8((const uint8_t *)o, len)) abort();
            }
            size_t len = 0;
            owl_detok_flush(d, &len);
            owl_detok_free(d);
        }
        free(ids);
    }
    return 0;
}
