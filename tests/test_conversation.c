/* chat/conversation.c: stop tokens found from the vocabulary and the
 * template, BOS not doubled by a template that writes it, the KV-cache
 * prefix reuse (counts, logits equal to a fresh evaluation, a prompt longer
 * than the context refused with the cache kept), /save JSON round trip and
 * bad /load files (clear error, messages unchanged).
 * The model: a small random GGUF from tests/reference/make_model.py with
 * <|im_start|> (259) and <|im_end|> (260) as control tokens. */
#include "chat/conversation.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *CHATML_T =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static bool has(const int32_t *v, int n, int32_t x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return true;
    return false;
}

static void test_stops_and_bos(owl_model *m) {
    owl_conv *c = NULL;
    CHECK(owl_conv_new(m, NULL, &c) == OWL_OK);
    if (!c) return;
    CHECK(owl_conv_template_origin(c) == OWL_CONV_TEMPLATE_MODEL);
    int n;
    const int32_t *stops = owl_conv_stop_tokens(c, &n);
    CHECKF(n == 3 && has(stops, n, 2) && has(stops, n, 259) && has(stops, n, 260), "%d stop tokens", n);
    CHECK(owl_conv_is_stop(c, 260) && owl_conv_is_stop(c, 2) && !owl_conv_is_stop(c, 1) && !owl_conv_is_stop(c, 100));
    CHECK(owl_conv_add(c, "user", "hi", 2) == OWL_OK);
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK(owl_conv_tokenize(c, true, &text, &ids, &n_ids) == OWL_OK);
    CHECK(text && strcmp(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
    CHECK(n_ids > 3 && ids[0] == 1 && ids[1] == 259 && ids[n_ids - 1] == 13 /* <0x0A> */);
    free(text);
    free(ids);
    owl_conv_free(c);

    /* A template writing {{ bos_token }} gets one BOS, not two; its stop
     * tokens: EOS and <|im_end|> (written), not <|im_start|> (absent). */
    CHECK(owl_conv_new(m, "{{ bos_token }}{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}", &c) ==
          OWL_OK);
    if (!c) return;
    CHECK(owl_conv_template_origin(c) == OWL_CONV_TEMPLATE_GIVEN);
    stops = owl_conv_stop_tokens(c, &n);
    CHECKF(n == 2 && has(stops, n, 2) && has(stops, n, 260), "%d stop tokens", n);
    CHECK(owl_conv_add(c, "user", "x", 1) == OWL_OK);
    CHECK(owl_conv_tokenize(c, false, NULL, &ids, &n_ids) == OWL_OK);
    CHECKF(n_ids >= 3 && ids[0] == 1 && ids[1] != 1 && ids[n_ids - 1] == 260, "%zu ids", n_ids);
    free(ids);
    owl_conv_free(c);

    /* A template that does not parse: an error naming line:column. */
    CHECK(owl_conv_new(m, "{% for %}", &c) != OWL_OK && c == NULL);
    CHECKF(strstr(owl_last_error(), "1:") != NULL, "%s", owl_last_error());
}

static void test_cache(owl_model *m) {
    owl_conv *c = NULL;
    owl_ctx *ctx = NULL, *fresh = NULL;
    CHECK(owl_conv_new(m, NULL, &c) == OWL_OK);
    CHECK(owl_ctx_new(m, 64, &ctx) == OWL_OK);
    CHECK(owl_ctx_new(m, 64, &fresh) == OWL_OK);
    if (!c || !ctx || !fresh) goto done;
    int32_t a[20], b[30];
    uint64_t rs = 7;
    for (int i = 0; i < 20; i++) a[i] = (int32_t)(3 + test_rand_u64(&rs) % 256);
    memcpy(b, a, 12 * sizeof *b);
    for (int i = 12; i < 30; i++) b[i] = (int32_t)(3 + test_rand_u64(&rs) % 256);
    b[12] = a[12] == 50 ? 51 : 50; /* first difference at 12 */
    int reused = -1, evaluated = -1;
    CHECK(owl_conv_prefill(c, ctx, a, 20, &reused, &evaluated) == OWL_OK);
    CHECK(reused == 0 && evaluated == 20 && owl_ctx_pos(ctx) == 20);
    CHECK(owl_conv_push(c, ctx, 77) == OWL_OK && owl_ctx_pos(ctx) == 21);
    int nc;
    const int32_t *cached = owl_conv_cached(c, &nc);
    CHECK(nc == 21 && cached[20] == 77 && memcmp(cached, a, sizeof a) == 0);
    CHECK(owl_conv_prefill(c, ctx, b, 30, &reused, &evaluated) == OWL_OK);
    CHECKF(reused == 12 && evaluated == 18 && owl_ctx_pos(ctx) == 30, "reused %d evaluated %d", reused, evaluated);
    /* the logits after reuse = those of evaluating b from scratch */
    CHECK(owl_ctx_eval(fresh, b, 30, false) == OWL_OK);
    const float *l1 = owl_ctx_logits(ctx, -1), *l2 = owl_ctx_logits(fresh, -1);
    owl_model_info info;
    owl_model_get_info(m, &info);
    double worst = 0;
    for (int i = 0; l1 && l2 && i < info.n_vocab; i++) worst = fmax(worst, fabs((double)l1[i] - l2[i]));
    CHECKF(l1 && l2 && worst < 1e-4, "logits differ by %g", worst);
    /* the same prompt again: all but the last token reused */
    CHECK(owl_conv_prefill(c, ctx, b, 30, &reused, &evaluated) == OWL_OK && reused == 29 && evaluated == 1);
    /* longer than the context: refused, the cache unchanged */
    int32_t big[65] = {0};
    memcpy(big, b, sizeof b);
    CHECK(owl_conv_prefill(c, ctx, big, 65, &reused, &evaluated) == OWL_ERR_RANGE);
    CHECKF(strstr(owl_last_error(), "65 tokens") && strstr(owl_last_error(), "64"), "%s", owl_last_error());
    CHECK(owl_ctx_pos(ctx) == 30);
    CHECK(owl_conv_prefill(c, ctx, big, 0, &reused, &evaluated) == OWL_ERR_ARG);
    /* pushing into a full context */
    int64_t k = 0;
    owl_status st = OWL_OK;
    while (st == OWL_OK && k < 100) {
        st = owl_conv_push(c, ctx, 5);
        k++;
    }
    CHECKF(st == OWL_ERR_RANGE && owl_ctx_pos(ctx) == 64 && k == 35, "status %d after %lld pushes", st, (long long)k);
    /* context truncated behind the conversation's back: only what it holds counts */
    owl_ctx_truncate(ctx, 5);
    CHECK(owl_conv_prefill(c, ctx, b, 30, &reused, &evaluated) == OWL_OK && reused == 5 && evaluated == 25);
    owl_conv_cache_clear(c, ctx);
    CHECK(owl_ctx_pos(ctx) == 0 && owl_conv_prefill(c, ctx, b, 30, &reused, &evaluated) == OWL_OK && reused == 0);
done:
    owl_ctx_free(ctx);
    owl_ctx_free(fresh);
    owl_conv_free(c);
}

static void test_json(owl_model *m) {
    owl_conv *c = NULL, *d = NULL;
    CHECK(owl_conv_new(m, CHATML_T, &c) == OWL_OK);
    CHECK(owl_conv_new(m, NULL, &d) == OWL_OK);
    if (!c || !d) goto done;
    const char *uni = "caf\xc3\xa9 \xe2\x9c\x93 \"q\" \\ \n";
    CHECK(owl_conv_add(c, "system", "be brief", 8) == OWL_OK);
    CHECK(owl_conv_add(c, "user", uni, strlen(uni)) == OWL_OK);
    CHECK(owl_conv_add(c, "assistant", "", 0) == OWL_OK);
    char *j = NULL;
    CHECK(owl_conv_to_json(c, &j) == OWL_OK && j);
    if (!j) goto done;
    CHECK(owl_conv_from_json(d, "saved.json", j, strlen(j)) == OWL_OK);
    CHECK(owl_conv_count(d) == 3 && strcmp(owl_conv_role(d, 1), "user") == 0 &&
          strcmp(owl_conv_content(d, 1), uni) == 0 && strcmp(owl_conv_content(d, 2), "") == 0);
    free(j);
    static const char *bad[] = {
        "",
        "{\"messages\": [",
        "[]",
        "{}",
        "{\"messages\": {}}",
        "{\"messages\": [1]}",
        "{\"messages\": [{\"role\": \"user\"}]}",
        "{\"messages\": [{\"role\": 3, \"content\": \"x\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}",
        "{\"messages\": [], \"messages\": []}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, null]}",
        "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        owl_status st = owl_conv_from_json(d, "bad.json", bad[i], strlen(bad[i]));
        CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "bad.json"), "case %zu: %d %s", i, st,
               owl_last_error());
        CHECKF(owl_conv_count(d) == 3 && strcmp(owl_conv_content(d, 1), uni) == 0, "case %zu changed the messages", i);
    }
    /* a message that is not UTF-8 cannot be rendered: an error, no crash */
    CHECK(owl_conv_add(d, "user", "\xff", 1) == OWL_OK);
    char *out = NULL;
    CHECK(owl_conv_render(d, true, &out, NULL) != OWL_OK && out == NULL);
    owl_conv_drop_from(d, 1);
    CHECK(owl_conv_count(d) == 1);
done:
    owl_conv_free(c);
    owl_conv_free(d);
}

int main(void) {
    const char *dir = test_tmpdir("test_conversation");
    char *prefix = path_join(dir, "chat");
    int st = run_cmd("'%s' '%s' --out '%s' --no-ref --vocab 261 --dim 32 --heads 2 --ffn 48 --ctx 64 --seed 3 "
                     "--special '<|im_start|>' --special '<|im_end|>' --set \"tokenizer.chat_template=str:%s\" > /dev/null",
                     test_python(), source_path("tests/reference/make_model.py"), prefix, CHATML_T);
    CHECKF(st == 0, "make_model.py exited with %d", st);
    char gguf[4096];
    snprintf(gguf, sizeof gguf, "%s.gguf", prefix);
    owl_model *m = NULL;
    owl_set_threads(1);
    if (st == 0 && owl_model_load(gguf, NULL, &m) == OWL_OK) {
        test_stops_and_bos(m);
        test_cache(m);
        test_json(m);
    } else {
        CHECKF(false, "cannot load %s: %s", gguf, owl_last_error());
    }
    owl_model_free(m);
    free(prefix);
    return test_finish("test_conversation");
}
