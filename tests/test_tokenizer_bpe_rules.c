/* BPE tokenizer rules on small hand-made tokenizer.json files: every
 * normalizer, pre-tokenizer, split behaviour, added-token flag, merge rule,
 * post-processor and config override against Hugging Face's documented
 * behaviour; the GPT-2 byte alphabet; bad input with clear errors. */
#include "testutil.h"
#include "tokenizer/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static owl_ids encode(const owl_tokenizer *tok, const char *s, size_t n, bool special) {
    owl_ids ids = {0};
    owl_status st = owl_bpe_encode_text(tok, s, n, special, &ids);
    CHECKF(st == OWL_OK, "encode failed: %s", owl_last_error());
    return ids;
}

static bool ids_eq(owl_ids ids, const int32_t *want, size_t n) {
    bool ok = ids.n == n && memcmp(ids.v, want, n * sizeof *want) == 0;
    free(ids.v);
    return ok;
}

/* ---- small hand-made tokenizers: each option against HF's documented behaviour ---- */

#define CHARS "\"<unk>\":0,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"f\":5,\"i\":6,\"x\":7,\"\\u2581\":8,\" \":9,\"1\":10,\"2\":11,\"3\":12,\"w\":13"

static owl_tokenizer *small(const char *rest, const char *config) {
    char json[4096];
    snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",%s}", rest);
    owl_tokenizer *tok = NULL;
    owl_status st = owl_tokenizer_json_load_mem("small.json", json, strlen(json), config, config ? strlen(config) : 0, &tok);
    CHECKF(st == OWL_OK, "%s: %s", json, owl_last_error());
    return tok;
}

/* The pieces of the encoding joined by '|'. */
static bool pieces_are(owl_tokenizer *tok, const char *text, bool special, const char *want) {
    if (!tok) return false;
    owl_ids ids = encode(tok, text, strlen(text), special);
    char got[1024];
    size_t k = 0;
    for (size_t i = 0; i < ids.n && k + 64 < sizeof got; i++) {
        owl_str p = tok->vocab.pieces[ids.v[i]];
        if (i) got[k++] = '|';
        memcpy(got + k, p.ptr, p.len);
        k += p.len;
    }
    got[k] = 0;
    free(ids.v);
    if (strcmp(got, want) != 0) fprintf(stderr, "  '%s' gave '%s', expected '%s'\n", text, got, want);
    return strcmp(got, want) == 0;
}

static void test_small(void) {
    owl_tokenizer *tok;
    /* normalizers in order: NFKC, Lowercase, Strip, Replace (regex), Prepend */
    tok = small("\"vocab\":{" CHARS "},\"merges\":[]},\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
                "{\"type\":\"Lowercase\"},{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},{\"type\":\"Replace\","
                "\"pattern\":{\"Regex\":\" +\"},\"content\":\"\\u2581\"},{\"type\":\"Prepend\",\"prepend\":\"x\"}]}",
                NULL);
    CHECK(pieces_are(tok, "  \xef\xbc\xa1" "B \xef\xac\x81   C ", false, "x|a|b|\xe2\x96\x81|f|i|\xe2\x96\x81|c"));
    owl_tokenizer_free(tok);
    /* NFD splits é into e + U+0301: both unknown, fused into one <unk> */
    tok = small("\"vocab\":{" CHARS "},\"merges\":[],\"fuse_unk\":true},\"normalizer\":{\"type\":\"NFD\"}", NULL);
    CHECK(pieces_are(tok, "a\xc3\xa9" "b", false, "a|<unk>|b"));
    owl_tokenizer_free(tok);
    /* byte fallback absent: an unknown character is <unk>, one per character without fuse_unk */
    tok = small("\"vocab\":{" CHARS "},\"merges\":[]}", NULL);
    CHECK(pieces_are(tok, "a\xc3\xa9\xc3\xa9", false, "a|<unk>|<unk>"));
    owl_tokenizer_free(tok);

    /* merges: lowest rank first; ignore_merges takes a whole pre-token found in the vocabulary */
    tok = small("\"vocab\":{" CHARS ",\"ab\":14,\"bc\":15,\"abc\":16,\"abcd\":17},\"merges\":[\"b c\",\"a b\",\"a bc\"]}", NULL);
    CHECK(pieces_are(tok, "abcab", false, "abc|ab"));
    CHECK(pieces_are(tok, "abcd", false, "abc|d"));
    owl_tokenizer_free(tok);
    tok = small("\"vocab\":{" CHARS ",\"ab\":14,\"bc\":15,\"abc\":16,\"abcd\":17},\"merges\":[\"b c\",\"a b\",\"a bc\"],"
                "\"ignore_merges\":true}",
                NULL);
    CHECK(pieces_are(tok, "abcd", false, "abcd"));
    owl_tokenizer_free(tok);

    /* added tokens: lstrip / rstrip swallow the spaces beside them, single_word only between non-word characters,
     * special ones only with parse_special, non-special ones always */
    tok = small("\"vocab\":{" CHARS ",\"<m>\":14,\"<r>\":15},\"merges\":[]},\"added_tokens\":["
                "{\"id\":14,\"content\":\"<m>\",\"special\":true,\"lstrip\":true},"
                "{\"id\":15,\"content\":\"<r>\",\"special\":false,\"rstrip\":true},"
                "{\"id\":13,\"content\":\"w\",\"special\":false,\"single_word\":true}]",
                NULL);
    CHECK(pieces_are(tok, "a <m> b<r>  c", true, "a|<m>| |b|<r>|c"));
    CHECK(pieces_are(tok, "a <m>", false, "a| |<unk>|<unk>|<unk>"));
    CHECK(pieces_are(tok, "a<r> ", false, "a|<r>"));
    CHECK(pieces_are(tok, "w aw w", false, "w| |a|w| |w"));
    CHECK(tok && tok->n_specials == 1 && tok->specials[0] == 14);
    owl_tokenizer_free(tok);

    /* normalized added tokens are found in the normalized text, the others in the raw text */
    tok = small("\"vocab\":{" CHARS ",\"<m>\":14,\"<R>\":15},\"merges\":[]},\"added_tokens\":["
                "{\"id\":14,\"content\":\"<m>\",\"special\":false,\"normalized\":true},"
                "{\"id\":15,\"content\":\"<R>\",\"special\":false,\"normalized\":false}],"
                "\"normalizer\":{\"type\":\"Lowercase\"}",
                NULL);
    CHECK(pieces_are(tok, "A<M>b<R>c<r>", false, "a|<m>|b|<R>|c|<unk>|<unk>|<unk>"));
    owl_tokenizer_free(tok);

    /* Metaspace: prepend "first" only at the start of the text (not after an added token), split before each '▁' */
    const char *ms = "\"vocab\":{" CHARS ",\"<s>\":14,\"b\\u2581\":15},\"merges\":[\"b \\u2581\"]},\"added_tokens\":[{\"id\":14,"
                     "\"content\":\"<s>\",\"special\":true}],\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
                     "\"prepend_scheme\":\"%s\",\"split\":%s}";
    char buf[1024];
    snprintf(buf, sizeof buf, ms, "first", "true");
    tok = small(buf, NULL);
    CHECK(pieces_are(tok, "ab c<s>ab", true, "\xe2\x96\x81|a|b|\xe2\x96\x81|c|<s>|a|b"));
    owl_tokenizer_free(tok);
    snprintf(buf, sizeof buf, ms, "always", "false");
    tok = small(buf, NULL);
    CHECK(pieces_are(tok, "ab c<s>ab", true, "\xe2\x96\x81|a|b\xe2\x96\x81|c|<s>|\xe2\x96\x81|a|b"));
    owl_tokenizer_free(tok);
    snprintf(buf, sizeof buf, ms, "never", "true");
    tok = small(buf, NULL);
    CHECK(pieces_are(tok, "ab c", false, "a|b|\xe2\x96\x81|c"));
    owl_tokenizer_free(tok);

    /* Digits, contiguous and individual; ByteLevel-free Split with a literal; Whitespace */
    const char *dg = "\"vocab\":{" CHARS ",\"12\":14,\"ab\":15},\"merges\":[\"1 2\",\"a b\"]},\"pre_tokenizer\":{\"type\":\"Digits\","
                     "\"individual_digits\":%s}";
    snprintf(buf, sizeof buf, dg, "false");
    tok = small(buf, NULL);
    CHECK(pieces_are(tok, "ab123", false, "ab|12|3"));
    owl_tokenizer_free(tok);
    snprintf(buf, sizeof buf, dg, "true");
    tok = small(buf, NULL);
    CHECK(pieces_are(tok, "ab123", false, "ab|1|2|3"));
    owl_tokenizer_free(tok);
    tok = small("\"vocab\":{" CHARS ",\"ab\":14},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                "{\"String\":\"a\"},\"behavior\":\"Isolated\",\"invert\":true}",
                NULL);
    CHECK(pieces_are(tok, "abab", false, "a|b|a|b")); /* invert: the non-matches are the delimiters, isolated still */
    owl_tokenizer_free(tok);
    tok = small("\"vocab\":{" CHARS ",\"ab\":14},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"}", NULL);
    CHECK(pieces_are(tok, " ab  ab ", false, "ab|ab"));
    owl_tokenizer_free(tok);

    /* an id no token has (a hole) is an unused empty piece; GGUF metadata names it [PADn] */
    tok = small("\"vocab\":{\"a\":0,\"b\":1,\"ab\":3,\"\\u0120\":4},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":"
                "\"ByteLevel\",\"add_prefix_space\":false}",
                NULL);
    if (tok) {
        CHECK(tok->vocab.n == 5 && tok->vocab.types[2] == OWL_TOKTYPE_UNUSED && tok->vocab.pieces[2].len == 0);
        CHECK(strcmp(tok->bpe->pre_name, "gpt-2") == 0);
        owl_meta m = {0};
        CHECKF(owl_bpe_to_meta(tok, &m) == OWL_OK, "%s", owl_last_error());
        const owl_meta_value *tv = owl_meta_find(&m, "tokenizer.ggml.tokens");
        CHECK(tv && tv->arr.count == 5 && owl_str_eq(tv->arr.strs[2], "[PAD2]") && owl_str_eq(tv->arr.strs[3], "ab"));
        const owl_meta_value *mv = owl_meta_find(&m, "tokenizer.ggml.merges");
        CHECK(mv && mv->arr.count == 1 && owl_str_eq(mv->arr.strs[0], "a b"));
        owl_meta_free(&m);
    }
    owl_tokenizer_free(tok);

    /* files beside tokenizer.json: tokenizer_config.json, else chat_template.jinja for the template */
    const char *dir = test_tmpdir("tokenizer_bpe_rules");
    char *tj = path_join(dir, "tokenizer.json"), *cj = path_join(dir, "chat_template.jinja");
    char *cfgp = path_join(dir, "tokenizer_config.json");
    const char *mini = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"<s>\":1},\"merges\":[]}}";
    remove(cfgp);
    CHECK(owl_write_file_atomic(tj, mini, strlen(mini)) == OWL_OK);
    CHECK(owl_write_file_atomic(cj, "{{ messages }}", 14) == OWL_OK);
    tok = NULL;
    CHECKF(owl_tokenizer_json_load(tj, &tok) == OWL_OK, "%s", owl_last_error());
    CHECK(tok && owl_tokenizer_chat_template(tok) && strcmp(owl_tokenizer_chat_template(tok), "{{ messages }}") == 0);
    owl_tokenizer_free(tok);
    const char *cfg = "{\"chat_template\":\"C\",\"bos_token\":\"<s>\",\"add_bos_token\":true}";
    CHECK(owl_write_file_atomic(cfgp, cfg, strlen(cfg)) == OWL_OK);
    tok = NULL;
    CHECKF(owl_tokenizer_json_load(dir, &tok) == OWL_OK, "%s", owl_last_error()); /* the directory itself */
    CHECK(tok && tok->bos == 1 && tok->add_bos && strcmp(owl_tokenizer_chat_template(tok), "C") == 0);
    owl_tokenizer_free(tok);
    free(tj);
    free(cj);
    free(cfgp);

    /* post-processors and the config's overrides */
    const char *pp = "\"vocab\":{" CHARS ",\"<s>\":14,\"</s>\":15},\"merges\":[]},\"added_tokens\":[{\"id\":14,\"content\":\"<s>\","
                     "\"special\":true},{\"id\":15,\"content\":\"</s>\",\"special\":true}],\"post_processor\":{\"type\":"
                     "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                     "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"</s>\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\","
                     "\"ids\":[14],\"tokens\":[\"<s>\"]},\"</s>\":{\"id\":\"</s>\",\"ids\":[15],\"tokens\":[\"</s>\"]}}}";
    tok = small(pp, NULL);
    CHECK(tok && tok->bos == 14 && tok->add_bos && tok->eos == 15 && tok->add_eos);
    owl_tokenizer_free(tok);
    tok = small(pp, "{\"add_bos_token\":false,\"add_eos_token\":false,\"eos_token\":{\"content\":\"a\"},"
                    "\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},{\"name\":\"default\",\"template\":\"D\"}]}");
    CHECK(tok && tok->bos == 14 && !tok->add_bos && tok->eos == 1 && !tok->add_eos);
    CHECK(tok && owl_tokenizer_chat_template(tok) && strcmp(owl_tokenizer_chat_template(tok), "D") == 0);
    owl_tokenizer_free(tok);
    tok = small("\"vocab\":{" CHARS "},\"merges\":[]},\"post_processor\":{\"type\":\"RobertaProcessing\",\"cls\":[\"a\",1],"
                "\"sep\":[\"b\",2]}",
                NULL);
    CHECK(tok && tok->bos == 1 && tok->add_bos && tok->eos == 2 && tok->add_eos);
    owl_tokenizer_free(tok);
}

/* ---- bad input ---- */

static void expect_error(const char *json, owl_status want, const char *needle1, const char *needle2) {
    owl_tokenizer *tok = NULL;
    owl_status st = owl_tokenizer_json_load_mem("bad.json", json, strlen(json), NULL, 0, &tok);
    const char *e = owl_last_error();
    CHECKF(st == want, "status %d for %s (%s)", st, json, e);
    CHECKF(tok == NULL, "tokenizer returned for %s", json);
    CHECKF(strstr(e, "bad.json") && strstr(e, needle1) && (!needle2 || strstr(e, needle2)), "error '%s' lacks '%s' / '%s'", e,
           needle1, needle2 ? needle2 : "");
    if (tok) owl_bpe_tokenizer_destroy(tok);
}

#define VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c\":3}"

static void test_bad_input(void) {
    expect_error("this is not json", OWL_ERR_FORMAT, "not valid JSON", NULL);
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0", OWL_ERR_FORMAT, "not valid JSON", NULL);
    expect_error("[1,2,3]", OWL_ERR_FORMAT, "top level", NULL);
    expect_error("{}", OWL_ERR_FORMAT, "model", "expected an object");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":[\"a\",\"b\"],\"merges\":[]}}", OWL_ERR_FORMAT, "model.vocab", "expected an object");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[1,2]}}", OWL_ERR_FORMAT, "model.merges[0]", "expected a string");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":{}}}", OWL_ERR_FORMAT, "model.merges", "expected an array");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\",\"a x\"]}}", OWL_ERR_FORMAT, "model.merges[1]", "'x'");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[[\"a\",\"zz\"]]}}", OWL_ERR_FORMAT, "model.merges[0]", "'zz'");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"b c\"]}}", OWL_ERR_FORMAT, "model.merges[0]", "'bc'");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"abc\"]}}", OWL_ERR_FORMAT, "model.merges[0]", "one space");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[[\"a\",\"\"]]}}", OWL_ERR_FORMAT, "model.merges[0]", "empty side");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999999},\"merges\":[]}}", OWL_ERR_FORMAT, "model.vocab['a']", "out of range");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", OWL_ERR_FORMAT, "model.vocab['a']", "out of range");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}}", OWL_ERR_FORMAT, "model.vocab['a']", "integer");
    expect_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", OWL_ERR_FORMAT, "model.vocab", "id 0");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"added_tokens\":[{\"id\":1,\"content\":\"<s>\"}]}",
                 OWL_ERR_FORMAT, "added_tokens[0]", "id 1");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"added_tokens\":[{\"id\":7}]}", OWL_ERR_FORMAT,
                 "added_tokens[0].content", NULL);
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"added_tokens\":[{\"id\":4,\"content\":\"x\",\"special\":\"yes\"}]}",
                 OWL_ERR_FORMAT, "added_tokens[0].special", "boolean");
    expect_error("{\"model\":{\"type\":\"WordPiece\"," VOCAB "}}", OWL_ERR_UNSUPPORTED, "model.type", "WordPiece");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                 "{\"Regex\":\"(a|\"},\"behavior\":\"Isolated\"}}",
                 OWL_ERR_FORMAT, "pre_tokenizer.pattern.Regex", "invalid regex");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
                 "{\"String\":\"-\"},\"behavior\":\"Sideways\"}}",
                 OWL_ERR_FORMAT, "pre_tokenizer.behavior", "Sideways");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
                 "[{\"type\":\"Nope\"}]}}",
                 OWL_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].type", "Nope");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},"
                 "\"content\":5}}",
                 OWL_ERR_FORMAT, "normalizer.content", "string");
    expect_error("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"normalizer\":[]}", OWL_ERR_FORMAT, "normalizer", "an object");
    /* deep nesting is refused, not recursed into without bound */
    char deep[4096];
    size_t k = (size_t)snprintf(deep, sizeof deep, "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]},\"normalizer\":");
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "{\"type\":\"Sequence\",\"normalizers\":[");
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{\"type\":\"NFC\"}");
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(deep + k, sizeof deep - k, "]}");
    snprintf(deep + k, sizeof deep - k, "}");
    expect_error(deep, OWL_ERR_FORMAT, "nested too deeply", NULL);
    /* a config that is not JSON */
    owl_tokenizer *tok = NULL;
    const char *ok = "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"]}}";
    CHECK(owl_tokenizer_json_load_mem("bad.json", ok, strlen(ok), "{nope", 5, &tok) == OWL_ERR_FORMAT && !tok &&
          strstr(owl_last_error(), "tokenizer_config.json"));

    /* a small valid SentencePiece-style model: merges and unknown characters */
    CHECK(owl_tokenizer_json_load_mem("ok.json", ok, strlen(ok), NULL, 0, &tok) == OWL_OK);
    if (tok) {
        int32_t w1[] = {2, 3, 2};
        CHECK(ids_eq(encode(tok, "abcab", 5, false), w1, 3));
        owl_bpe_tokenizer_destroy(tok);
    }

    /* the GPT-2 byte alphabet: a bijection; space is U+0120 (Ġ), newline U+010A (Ċ), 0xAD U+0143 */
    bool seen[324] = {0};
    int alpha_bad = 0;
    for (int i = 0; i < 256; i++) {
        uint32_t cp = owl_bpe_byte_char((uint8_t)i);
        if (cp >= 324 || seen[cp] || owl_bpe_char_byte(cp) != i) alpha_bad++;
        else seen[cp] = true;
    }
    CHECK(alpha_bad == 0);
    CHECK(owl_bpe_byte_char(' ') == 0x120 && owl_bpe_byte_char('\n') == 0x10A && owl_bpe_byte_char(0xAD) == 0x143);
    CHECK(owl_bpe_byte_char('A') == 'A' && owl_bpe_char_byte(0x41) == 0x41 && owl_bpe_char_byte(0x20) == -1);

    /* every GGUF pre-tokenizer name we map compiles; unknown names are NULL */
    const char *names[] = {"default", "gpt-2", "llama-bpe", "llama3", "smaug-bpe", "qwen2", "deepseek-v3", "starcoder",
                           "refact", "smollm", "gpt-4o"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        bool dig;
        const char *const *res = owl_pre_regexes(names[i], strlen(names[i]), &dig);
        CHECKF(res && *res, "no regex for %s", names[i]);
        for (; res && *res; res++) {
            pcre2_code *re = NULL;
            CHECKF(owl_regex_compile(*res, strlen(*res), names[i], &re) == OWL_OK, "%s: %s", names[i], owl_last_error());
            if (re) pcre2_code_free(re);
        }
    }
    bool dig;
    CHECK(owl_pre_regexes("no-such-pre", 11, &dig) == NULL);

    /* the five split behaviours, as documented for "the-final--countdown" */
    struct owl_bpe *b = owl_bpe_new();
    static const char *want[5][7] = {
        {"the", "final", "countdown"},
        {"the", "-", "final", "-", "-", "countdown"},
        {"the-", "final-", "-", "countdown"},
        {"the", "-final", "-", "-countdown"},
        {"the", "-", "final", "--", "countdown"},
    };
    for (int bh = 0; b && bh < 5; bh++) {
        for (int lit = 0; lit < 2; lit++) {
            b->n_pre = 0;
            owl_pre_step step = {.kind = OWL_PRE_SPLIT, .behavior = (owl_split_behavior)bh, .lit = "-", .lit_len = 1};
            if (!lit) {
                step.lit = NULL;
                CHECK(owl_regex_compile("-", 1, "test", &step.re) == OWL_OK);
            }
            CHECK(owl_bpe_add_pre(b, &step) == OWL_OK);
            owl_pieces pcs = {0};
            CHECK(owl_pretokenize(b, "the-final--countdown", 20, true, &pcs) == OWL_OK);
            size_t n = 0;
            while (n < 7 && want[bh][n]) n++;
            bool same = pcs.n == n;
            for (size_t i = 0; same && i < n; i++)
                same = pcs.len[i] == strlen(want[bh][i]) && memcmp(pcs.buf + pcs.off[i], want[bh][i], pcs.len[i]) == 0;
            CHECKF(same, "behaviour %d (%s) gave %zu pieces", bh, lit ? "literal" : "regex", pcs.n);
            owl_pieces_free(&pcs);
            if (step.re) pcre2_code_free(step.re);
        }
    }
    if (b) {
        b->n_pre = 0;
        owl_bpe_free(b);
    }
}

int main(void) {
    test_small();
    test_bad_input();
    return test_finish("test_tokenizer_bpe_rules");
}
