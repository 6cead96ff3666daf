/* The model layer against the float64 NumPy reference: random Llama / Qwen2
 * models (tests/reference/make_model.py) in F32, F16 and BF16, MHA and GQA,
 * tied and untied heads, both RoPE layouts; logits at every position of a
 * 64-token sequence, evaluated token by token, in one batch, in uneven
 * chunks, in forced small micro-batches and after truncation. Bad models and
 * bad calls fail with clear errors. And the real stories260K reproduces
 * llama2.c's greedy continuation. */
#include "model/model.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *tmp;




/* Evaluates tokens[from, to) in chunks of the given sizes (all logits) and
 * returns the worst relative error against the reference rows. */
static double eval_chunks(owl_ctx *ctx, const int32_t *tok, const double *ref, int vocab, int from, int to,
                          const int *sizes, int n_sizes) {
    double worst = 0;
    int i = from, k = 0;
    while (i < to) {
        int n = n_sizes ? sizes[k % n_sizes] : to - i;
        k++;
        if (n > to - i) n = to - i;
        owl_status st = owl_ctx_eval(ctx, tok + i, n, true);
        CHECKF(st == OWL_OK, "eval of %d tokens at %d: %s", n, i, owl_last_error());
        if (st) return INFINITY;
        for (int t = 0; t < n; t++) {
            double e = test_rel_err(owl_ctx_logits(ctx, t), ref + (size_t)(i + t) * (size_t)vocab, vocab);
            if (!(e <= worst)) worst = e;
        }
        i += n;
    }
    return worst;
}

static void check_model(const char *name, const char *args, double tol, int n_heads, int n_kv, bool tied) {
    char *prefix = test_make_model(tmp, name, args);
    if (!prefix) return;
    char *gguf = path_ext(prefix, ".gguf"), *tpath = path_ext(prefix, ".tokens.txt"),
         *lpath = path_ext(prefix, ".logits.f64");
    owl_model *m = NULL;
    owl_status st = owl_model_load(gguf, NULL, &m);
    CHECKF(st == OWL_OK, "%s: load: %s", name, owl_last_error());
    int n_tok = 0;
    int32_t *tok = test_read_ids(tpath, &n_tok);
    CHECK(n_tok == 64);
    if (st || n_tok != 64) goto done;

    owl_model_info info;
    owl_model_get_info(m, &info);
    CHECK(info.n_heads == n_heads && info.n_kv_heads == n_kv && info.n_layers == 2);
    CHECK(m->tied == tied);
    CHECK(owl_model_tokenizer(m) != NULL);
    CHECK(info.bytes_per_token > 0 && info.bytes_per_token < info.weight_bytes + 1);
    const int vocab = info.n_vocab;
    double *ref = test_read_f64(lpath, (size_t)vocab * 64);
    CHECKF(ref != NULL, "%s: reference logits", name);
    if (!ref) goto done;

    owl_ctx *ctx = NULL;
    st = owl_ctx_new(m, 0, &ctx);
    CHECKF(st == OWL_OK, "%s: ctx: %s", name, owl_last_error());
    if (st) goto done_ref;
    CHECK(owl_ctx_size(ctx) == info.n_ctx_train);

    /* token by token, only the last logits */
    double worst = 0;
    for (int i = 0; i < 64; i++) {
        st = owl_ctx_eval(ctx, tok + i, 1, false);
        CHECKF(st == OWL_OK, "%s: eval token %d: %s", name, i, owl_last_error());
        double e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)i * (size_t)vocab, vocab);
        if (!(e <= worst)) worst = e;
    }
    CHECK(owl_ctx_pos(ctx) == 64);
    CHECKF(worst < tol, "%s: token by token: relative error %.3g (tolerance %.g)", name, worst, tol);
    fprintf(stderr, "%s: token by token %.3g", name, worst);

    /* one batch of 64 */
    owl_ctx_truncate(ctx, 0);
    CHECK(owl_ctx_pos(ctx) == 0);
    worst = eval_chunks(ctx, tok, ref, vocab, 0, 64, NULL, 0);
    CHECKF(worst < tol, "%s: batch of 64: relative error %.3g", name, worst);
    fprintf(stderr, ", batch %.3g", worst);
    CHECK(owl_ctx_logits(ctx, 64) == NULL && owl_ctx_logits(ctx, -2) == NULL);
    CHECK(owl_ctx_logits(ctx, -1) == owl_ctx_logits(ctx, 63));

    /* uneven chunks 5 + 27 + 32 */
    owl_ctx_truncate(ctx, 0);
    static const int uneven[] = {5, 27, 32};
    worst = eval_chunks(ctx, tok, ref, vocab, 0, 64, uneven, 3);
    CHECKF(worst < tol, "%s: chunks 5+27+32: relative error %.3g", name, worst);
    fprintf(stderr, ", chunks %.3g", worst);

    /* truncate to 40 and evaluate the rest again (batch, last logits only) */
    owl_ctx_truncate(ctx, 40);
    CHECK(owl_ctx_pos(ctx) == 40);
    st = owl_ctx_eval(ctx, tok + 40, 24, false);
    CHECK(st == OWL_OK);
    double e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)63 * (size_t)vocab, vocab);
    CHECKF(e < tol, "%s: after truncate: relative error %.3g", name, e);
    CHECK(owl_ctx_logits(ctx, 0) == NULL);
    CHECK(owl_ctx_logits(ctx, 23) == owl_ctx_logits(ctx, -1));

    /* micro-batches forced small: the prompt is cut inside owl_ctx_eval */
    owl_ctx_truncate(ctx, 0);
    ctx->n_ub = 7;
    worst = eval_chunks(ctx, tok, ref, vocab, 0, 64, NULL, 0);
    CHECKF(worst < tol, "%s: micro-batches of 7: relative error %.3g", name, worst);
    fprintf(stderr, ", ubatch 7 %.3g\n", worst);
    owl_ctx_truncate(ctx, 0);
    st = owl_ctx_eval(ctx, tok, 62, false); /* last micro-batch: 6 tokens, only the last one's logits */
    e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)61 * (size_t)vocab, vocab);
    CHECKF(st == OWL_OK && e < tol, "%s: 62 tokens in micro-batches of 7, last logits: relative error %.3g", name, e);
    st = owl_ctx_eval(ctx, tok + 62, 2, false);
    e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)63 * (size_t)vocab, vocab);
    CHECKF(st == OWL_OK && e < tol, "%s: 2 more tokens: relative error %.3g", name, e);

    /* the context is full now */
    CHECK(owl_ctx_pos(ctx) == 64);
    owl_ctx_free(ctx);
done_ref:
    free(ref);
done:
    free(tok);
    owl_model_free(m);
    free(gguf);
    free(tpath);
    free(lpath);
    free(prefix);
}

/* Loading fails with status `want` and an error text containing each of the words. */
static void check_bad_model(const char *name, const char *args, owl_status want, const char *w1, const char *w2) {
    char *prefix = test_make_model(tmp, name, args);
    if (!prefix) return;
    char *gguf = path_ext(prefix, ".gguf");
    owl_model *m = (owl_model *)1;
    owl_status st = owl_model_load(gguf, NULL, &m);
    const char *err = owl_last_error();
    CHECKF(st == want, "%s: status %s, expected %s", name, owl_status_name(st), owl_status_name(want));
    CHECK(m == NULL);
    CHECKF(strstr(err, w1) != NULL, "%s: error \"%s\" does not name %s", name, err, w1);
    if (w2) CHECKF(strstr(err, w2) != NULL, "%s: error \"%s\" does not name %s", name, err, w2);
    fprintf(stderr, "%s: %s\n", name, err);
    free(gguf);
    free(prefix);
}

static void check_bad_calls(void) {
    char *prefix = test_make_model(tmp, "calls", "--no-ref --no-tokenizer --vocab 300 --ctx 32 --dim 64 --heads 4 --kv-heads 1");
    if (!prefix) return;
    char *gguf = path_ext(prefix, ".gguf");
    owl_model *m = NULL;
    owl_status st = owl_model_load(gguf, NULL, &m);
    CHECKF(st == OWL_OK, "load: %s", owl_last_error());
    if (!st) {
        CHECK(owl_model_tokenizer(m) == NULL);
        owl_model_info info;
        owl_model_get_info(m, &info);
        /* an independent count: 2 layers of (2 norms, q, k, v, o, gate, up, down) + embd, norm, output */
        uint64_t dim = 64, kv = 16, ffn = 96, vocab = 300;
        uint64_t layer_mats = dim * dim * 2 + dim * kv * 2 + dim * ffn * 3;
        uint64_t n_params = 2 * (layer_mats + 2 * dim) + 2 * vocab * dim + dim;
        CHECKF(info.n_params == n_params, "n_params %llu, expected %llu", (unsigned long long)info.n_params,
               (unsigned long long)n_params);
        CHECK(info.weight_bytes == 4 * n_params);
        CHECK(info.bytes_per_token == 4 * (2 * layer_mats + vocab * dim));
        CHECK(strcmp(info.arch, "llama") == 0 && strcmp(info.weight_type, "F32") == 0);
        CHECK(info.head_dim == 16 && info.ffn_dim == 96 && info.n_ctx_train == 32 && info.dim == 64);

        owl_ctx *ctx = NULL;
        CHECK(owl_ctx_new(m, -5, &ctx) == OWL_ERR_ARG && ctx == NULL);
        CHECK(owl_ctx_new(m, 1 << 30, &ctx) == OWL_ERR_RANGE && ctx == NULL);
        st = owl_ctx_new(m, 16, &ctx);
        CHECK(st == OWL_OK);
        if (!st) {
            int32_t toks[40];
            for (int i = 0; i < 40; i++) toks[i] = (int32_t)(i * 7 % 300);
            CHECK(owl_ctx_logits(ctx, -1) == NULL);
            st = owl_ctx_eval(ctx, toks, 17, false);
            CHECK(st == OWL_ERR_RANGE);
            CHECKF(strstr(owl_last_error(), "17 tokens") && strstr(owl_last_error(), "context of 16"), "%s",
                   owl_last_error());
            CHECK(owl_ctx_pos(ctx) == 0);
            CHECK(owl_ctx_eval(ctx, toks, 10, false) == OWL_OK);
            st = owl_ctx_eval(ctx, toks, 7, true);
            CHECK(st == OWL_ERR_RANGE);
            CHECKF(strstr(owl_last_error(), "10 already used") != NULL, "%s", owl_last_error());
            CHECK(owl_ctx_pos(ctx) == 10);
            int32_t bad[2] = {5, 300};
            CHECK(owl_ctx_eval(ctx, bad, 2, false) == OWL_ERR_ARG);
            bad[1] = -1;
            CHECK(owl_ctx_eval(ctx, bad, 2, false) == OWL_ERR_ARG);
            CHECK(owl_ctx_eval(ctx, bad, 0, false) == OWL_ERR_ARG);
            CHECK(owl_ctx_pos(ctx) == 10);
            CHECK(owl_ctx_eval(ctx, toks, 6, false) == OWL_OK && owl_ctx_pos(ctx) == 16);
            owl_ctx_truncate(ctx, 99);
            CHECK(owl_ctx_pos(ctx) == 16);
            owl_ctx_truncate(ctx, 3);
            CHECK(owl_ctx_pos(ctx) == 3);
            owl_ctx_free(ctx);
        }
        owl_model_free(m);
    }
    st = owl_model_load("/nonexistent/model.gguf", NULL, &m);
    CHECK(st != OWL_OK && m == NULL);
    free(gguf);
    free(prefix);
}

/* stories260K from BOS, greedy: llama2.c's 200 ids. */
static void check_stories(const char *path, const char *tok_path) {
    int n_want = 0;
    int32_t *want = test_read_ids(testdata_path("vectors/stories260K/greedy_n200.ids.txt"), &n_want);
    CHECK(n_want == 200);
    owl_model_params params = {.tokenizer_path = tok_path};
    owl_model *m = NULL;
    owl_status st = owl_model_load(path, &params, &m);
    CHECKF(st == OWL_OK, "%s: %s", path, owl_last_error());
    if (st || n_want != 200) {
        free(want);
        return;
    }
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    CHECK(tok != NULL && owl_token_bos(tok) == 1);
    owl_model_info info;
    owl_model_get_info(m, &info);
    CHECK(info.dim == 64 && info.n_layers == 5 && info.n_heads == 8 && info.n_kv_heads == 4 && info.n_vocab == 512);
    owl_ctx *ctx = NULL;
    st = owl_ctx_new(m, 256, &ctx);
    CHECK(st == OWL_OK);
    if (!st) {
        int32_t t = 1;
        int same = 0;
        for (int i = 0; i < 200; i++) {
            if (owl_ctx_eval(ctx, &t, 1, false) != OWL_OK) break;
            const float *lg = owl_ctx_logits(ctx, -1);
            int best = 0;
            for (int v = 1; v < info.n_vocab; v++)
                if (lg[v] > lg[best]) best = v;
            if (best != want[i]) break;
            same++;
            t = best;
        }
        CHECKF(same == 200, "%s: greedy ids match llama2.c for %d of 200 steps", path, same);
        fprintf(stderr, "%s: greedy %d/200 ids match\n", path, same);
        owl_ctx_free(ctx);
    }
    owl_model_free(m);
    free(want);
}

/* The real quantized wp models (llama.cpp's files) against the float64
 * reference run on the F32 Hugging Face original (rotate_half RoPE, no Q/K
 * permutation): mean relative error of the logits per position, by type. */
static void check_wp(void) {
    /* BOS "Prince Andrew" and llama.cpp's greedy continuation (wp/README.md) */
    static const int32_t toks[] = {1, 10787, 11571, 29892, 13, 392, 540, 471, 451, 304, 367, 263, 1472, 931, 304,
                                   1075, 29889, 13, 13, 29908, 29902, 626, 1407, 1532, 1699, 1497, 540, 29892, 376,
                                   29902, 626, 451, 263, 767, 310, 263, 767, 1058, 756, 13, 915, 264, 263};
    const int n = (int)(sizeof toks / sizeof toks[0]), vocab = 32000;
    char *tpath = path_join(tmp, "wp.tokens.txt"), *rpath = path_join(tmp, "wp.logits.f64");
    FILE *f = fopen(tpath, "w");
    for (int i = 0; f && i < n; i++) fprintf(f, "%d ", (int)toks[i]);
    if (f) fclose(f);
    int rc = run_cmd("%s %s '%s' '%s' '%s'", test_python(), source_path("tests/reference/llama_ref.py"),
                     testdata_path("models/wp/hf"), tpath, rpath);
    CHECKF(rc == 0, "llama_ref.py on wp/hf failed (%d)", rc);
    double *ref = rc == 0 ? test_read_f64(rpath, (size_t)vocab * (size_t)n) : NULL;
    static const struct {
        const char *file;
        double tol;
    } files[] = {
        {"hf", 1e-4}, /* the F32 original itself, through the Hugging Face reader */
        {"wp-Q8_0.gguf", 0.008}, {"wp-Q6_K.gguf", 0.02},  {"wp-Q5_K_M.gguf", 0.02},  {"wp-Q5_1.gguf", 0.02},
        {"wp-Q5_0.gguf", 0.02},  {"wp-Q4_K_M.gguf", 0.03}, {"wp-Q4_1.gguf", 0.03},   {"wp-Q4_0.gguf", 0.04},
        {"wp-Q3_K_M.gguf", 0.05}, {"wp-Q2_K.gguf", 0.09},
    };
    for (size_t k = 0; ref && k < sizeof files / sizeof files[0]; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/wp/%s", files[k].file);
        owl_model *m = NULL;
        owl_status st = owl_model_load(testdata_path(rel), NULL, &m);
        CHECKF(st == OWL_OK, "%s: %s", rel, owl_last_error());
        if (st) continue;
        owl_ctx *ctx = NULL;
        st = owl_ctx_new(m, 64, &ctx);
        if (!st) st = owl_ctx_eval(ctx, toks, n, true);
        CHECKF(st == OWL_OK, "%s: eval: %s", rel, owl_last_error());
        if (!st) {
            double mean = 0, worst = 0;
            int agree = 0;
            for (int i = 0; i < n; i++) {
                const float *lg = owl_ctx_logits(ctx, i);
                const double *r = ref + (size_t)i * (size_t)vocab;
                double e = test_rel_err(lg, r, vocab);
                mean += e / n;
                if (!(e <= worst)) worst = e;
                int a = 0, b = 0;
                for (int v = 1; v < vocab; v++) {
                    if (lg[v] > lg[a]) a = v;
                    if (r[v] > r[b]) b = v;
                }
                agree += a == b;
            }
            CHECKF(mean < files[k].tol && worst < 4 * files[k].tol && agree >= n * 3 / 4,
                   "%s: mean relative error %.3g (tolerance %.3g), worst %.3g, argmax agrees %d/%d", rel, mean,
                   files[k].tol, worst, agree, n);
            fprintf(stderr, "%s: mean %.3g worst %.3g argmax %d/%d\n", files[k].file, mean, worst, agree, n);
        }
        owl_ctx_free(ctx);
        owl_model_free(m);
    }
    free(ref);
    free(tpath);
    free(rpath);
}

int main(void) {
    tmp = test_tmpdir("test_forward");
    /* two threads for the first models (the parallel paths), then one: the
     * test machine is shared, and idle OpenMP threads spin */
    owl_set_threads(2);

    /* head_dim 128, 64 (the f32 models), 32 (wp below), 16 (the others), 8
     * (stories260K): every width of the attention kernels */
    const char *common = "--layers 2 --ctx 128 --seed";
    char args[512];
#define MODEL(name, tol, nh, nkv, tied, fmt, ...)                       \
    snprintf(args, sizeof args, "%s " fmt, common, __VA_ARGS__);        \
    check_model(name, args, tol, nh, nkv, tied)
    MODEL("f32_llama_mha_untied", 1e-4, 2, 2, false, "%d --dtype f32 --arch llama --dim 256 --heads 2 --ffn 96 --vocab 300", 11);
    MODEL("f32_qwen2_gqa_tied", 1e-4, 4, 2, true, "%d --dtype f32 --arch qwen2 --dim 256 --heads 4 --kv-heads 2 --ffn 160 --vocab 320 --tied", 12);
    owl_set_threads(1);
    MODEL("f16_llama_gqa_tied", 1e-2, 4, 1, true, "%d --dtype f16 --arch llama --dim 64 --heads 4 --kv-heads 1 --ffn 96 --vocab 300 --tied --rope-freqs --bias", 13);
    MODEL("f16_qwen2_mha_untied", 1e-2, 6, 6, false, "%d --dtype f16 --norm-dtype f16 --arch qwen2 --dim 96 --heads 6 --ffn 128 --vocab 400", 14);
    MODEL("bf16_llama_gqa_untied", 1e-2, 8, 4, false, "%d --dtype bf16 --norm-dtype bf16 --arch llama --dim 128 --heads 8 --kv-heads 4 --ffn 192 --vocab 512 --rope-base 50000 --rope-linear 4", 15);
    /* this one on the portable paths (tensor kernels and attention) */
    owl_cpu_force_scalar(true);
    MODEL("bf16_qwen2_gqa_tied", 1e-2, 4, 2, true, "%d --dtype bf16 --arch qwen2 --dim 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 300 --tied", 16);
    owl_cpu_force_scalar(false);
#undef MODEL

    check_bad_model("bad_arch", "--no-ref --arch-name gpt9", OWL_ERR_UNSUPPORTED, "gpt9", "architecture");
    check_bad_model("bad_missing", "--no-ref --drop blk.1.ffn_up.weight", OWL_ERR_FORMAT, "blk.1.ffn_up.weight", "missing");
    check_bad_model("bad_shape", "--no-ref --kv-heads 2 --bad-shape blk.0.attn_k.weight", OWL_ERR_FORMAT,
                    "blk.0.attn_k.weight", "expected [64, 32]");
    check_bad_model("bad_norm_shape", "--no-ref --bad-shape output_norm.weight", OWL_ERR_FORMAT, "output_norm.weight",
                    "expected [64]");
    check_bad_model("bad_bias_shape", "--no-ref --arch qwen2 --bad-shape blk.1.attn_v.bias", OWL_ERR_FORMAT,
                    "blk.1.attn_v.bias", "expected [64]");
    check_bad_model("bad_embd_missing", "--no-ref --drop token_embd.weight", OWL_ERR_FORMAT, "token_embd.weight", NULL);
    check_bad_model("bad_kv_heads", "--no-ref --set llama.attention.head_count_kv=u32:3", OWL_ERR_FORMAT,
                    "head_count_kv 3", NULL);
    check_bad_model("bad_dim_missing", "--no-ref --unset llama.embedding_length", OWL_ERR_FORMAT,
                    "llama.embedding_length", "missing");
    check_bad_model("bad_dim_type", "--no-ref --set llama.embedding_length=str:64", OWL_ERR_FORMAT,
                    "llama.embedding_length", "not an integer");
    check_bad_model("bad_layers", "--no-ref --set llama.block_count=u32:3", OWL_ERR_FORMAT, "blk.2.attn_norm.weight",
                    "missing");
    check_bad_model("bad_layers_zero", "--no-ref --set llama.block_count=u32:0", OWL_ERR_FORMAT, "llama.block_count",
                    "outside");
    check_bad_model("bad_ffn", "--no-ref --set llama.feed_forward_length=u32:100", OWL_ERR_FORMAT,
                    "blk.0.ffn_gate.weight", "expected [64, 100]");
    check_bad_model("bad_rot", "--no-ref --set llama.rope.dimension_count=u32:7", OWL_ERR_FORMAT,
                    "llama.rope.dimension_count", "odd");
    check_bad_model("bad_heads", "--no-ref --set llama.attention.head_count=u32:5 --set llama.attention.head_count_kv=u32:5",
                    OWL_ERR_FORMAT, "not a multiple of the head count", NULL);
    check_bad_model("bad_eps", "--no-ref --set llama.attention.layer_norm_rms_epsilon=f32:-1", OWL_ERR_FORMAT,
                    "layer_norm_rms_epsilon", "outside");
    check_bad_model("bad_arch_type", "--no-ref --set general.architecture=u32:7", OWL_ERR_FORMAT,
                    "general.architecture", "not a string");
    check_bad_calls();

    check_wp();
    check_stories(testdata_path("models/stories260K.gguf"), NULL);
    check_stories(testdata_path("models/stories260K.bin"), testdata_path("tokenizers/tinystories512/tok512.bin"));
    return test_finish("test_forward");
}
