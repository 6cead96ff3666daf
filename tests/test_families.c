/* The model families of the architecture table against the float64 NumPy
 * reference (tests/reference/llama_ref.py, written from the Hugging Face
 * modeling semantics of each family): random small models written by
 * make_model.py --arch FAMILY both as a Hugging Face directory (read by
 * owl's HF reader) and as GGUF in llama.cpp's layout; the logits at every
 * position of a 64-token sequence, token by token, in one batch and in
 * uneven chunks, with a sliding window of 16 exercised where the family has
 * one. Missing family fields / tensors fail with clear errors. */
#include "model/model.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_TOK 64
#define TOL 1e-4

static const char *tmp;




/* Worst relative error over all positions, evaluated in chunks of the given
 * sizes (n_sizes 0: one batch) with all logits. */
static double eval_chunks(owl_ctx *ctx, const int32_t *tok, const double *ref, int vocab, const int *sizes,
                          int n_sizes) {
    double worst = 0;
    owl_ctx_truncate(ctx, 0);
    for (int i = 0, k = 0; i < N_TOK; k++) {
        int n = n_sizes ? sizes[k % n_sizes] : N_TOK - i;
        if (n > N_TOK - i) n = N_TOK - i;
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

/* One file (GGUF or HF directory) of the family against the reference;
 * returns the worst error seen. */
static double check_file(const char *what, const char *path, const char *arch, const int32_t *tok, const double *ref,
                         int vocab, int want_swa_layers) {
    owl_model *m = NULL;
    owl_status st = owl_model_load(path, NULL, &m);
    CHECKF(st == OWL_OK, "%s: load: %s", what, owl_last_error());
    if (st) return INFINITY;
    double all = 0;
    CHECKF(strcmp(m->arch->name, arch) == 0, "%s: architecture %s, expected %s", what, m->arch->name, arch);
    CHECK(m->hp.n_vocab == vocab);
    int n_swa_layers = 0;
    for (int l = 0; l < m->hp.n_layers; l++) n_swa_layers += m->layers[l].swa;
    CHECKF(n_swa_layers == want_swa_layers, "%s: %d windowed layers, expected %d", what, n_swa_layers,
           want_swa_layers);
    CHECKF(want_swa_layers == 0 || m->hp.n_swa == 16, "%s: window %d", what, m->hp.n_swa);
    owl_ctx *ctx = NULL;
    st = owl_ctx_new(m, N_TOK, &ctx);
    CHECKF(st == OWL_OK, "%s: ctx: %s", what, owl_last_error());
    if (!st) {
        /* token by token, only the last logits */
        double worst = 0;
        for (int i = 0; i < N_TOK; i++) {
            st = owl_ctx_eval(ctx, tok + i, 1, false);
            CHECKF(st == OWL_OK, "%s: eval token %d: %s", what, i, owl_last_error());
            double e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)i * (size_t)vocab, vocab);
            if (!(e <= worst)) worst = e;
        }
        CHECKF(worst < TOL, "%s: token by token: relative error %.3g", what, worst);
        fprintf(stderr, "%s: token by token %.3g", what, worst);
        all = worst;
        worst = eval_chunks(ctx, tok, ref, vocab, NULL, 0);
        CHECKF(worst < TOL, "%s: batch of 64: relative error %.3g", what, worst);
        fprintf(stderr, ", batch %.3g", worst);
        if (!(worst <= all)) all = worst;
        static const int uneven[] = {5, 27, 32};
        worst = eval_chunks(ctx, tok, ref, vocab, uneven, 3);
        CHECKF(worst < TOL, "%s: chunks 5+27+32: relative error %.3g", what, worst);
        if (!(worst <= all)) all = worst;
        /* last logits only, after a truncation inside the window's reach */
        owl_ctx_truncate(ctx, 40);
        st = owl_ctx_eval(ctx, tok + 40, 24, false);
        double e = test_rel_err(owl_ctx_logits(ctx, -1), ref + (size_t)63 * (size_t)vocab, vocab);
        CHECKF(st == OWL_OK && e < TOL, "%s: after truncate: relative error %.3g", what, e);
        if (!(e <= all)) all = e;
        fprintf(stderr, ", chunks %.3g, last %.3g\n", worst, e);
        owl_ctx_free(ctx);
    }
    owl_model_free(m);
    return all;
}

/* The family's model in both forms against the reference logits. */
static void check_family(const char *name, const char *args, const char *arch, int want_swa_layers) {
    char *prefix = test_make_model(tmp, name, args);
    if (!prefix) return;
    char *gguf = path_ext(prefix, ".gguf"), *hf = path_ext(prefix, ".hf"), *tpath = path_ext(prefix, ".tokens.txt"),
         *lpath = path_ext(prefix, ".logits.f64");
    int n = 0;
    int32_t *tok = test_read_ids(tpath, &n);
    CHECK(tok && n == N_TOK);
    if (!tok || n != N_TOK) {
        free(tok);
        free(gguf), free(hf), free(tpath), free(lpath), free(prefix);
        return;
    }
    owl_model *m = NULL;
    int vocab = 0;
    if (owl_model_load(gguf, NULL, &m) == OWL_OK) vocab = m->hp.n_vocab;
    owl_model_free(m);
    double *ref = vocab ? test_read_f64(lpath, (size_t)vocab * N_TOK) : NULL;
    CHECKF(ref != NULL, "%s: reference logits (%s)", name, owl_last_error());
    if (ref && n == N_TOK) {
        char what[96];
        snprintf(what, sizeof what, "%s gguf", name);
        double e1 = check_file(what, gguf, arch, tok, ref, vocab, want_swa_layers);
        snprintf(what, sizeof what, "%s hf", name);
        double e2 = check_file(what, hf, arch, tok, ref, vocab, want_swa_layers);
        /* owl convert's GGUF of the directory */
        char *conv = path_ext(prefix, ".conv.gguf");
        int rc = run_cmd("'%s' convert '%s' -o '%s' --type f32 2>/dev/null", owl_bin(), hf, conv);
        CHECKF(rc == 0, "%s: owl convert failed (%d)", name, rc);
        snprintf(what, sizeof what, "%s converted", name);
        if (rc == 0) check_file(what, conv, arch, tok, ref, vocab, want_swa_layers);
        free(conv);
        /* Q8_0 (owl quantize of the directory): fused and split matrices alike, loosely (weights and
         * activations rounded to 8 bits give ~5e-2 on these random 2-layer models; a wrong row range ~1) */
        char *q8 = path_ext(prefix, ".q8.gguf");
        rc = run_cmd("'%s' quantize '%s' '%s' --type Q8_0 >/dev/null 2>&1", owl_bin(), hf, q8);
        CHECKF(rc == 0, "%s: owl quantize failed (%d)", name, rc);
        if (rc == 0) {
            owl_model *qm = NULL;
            owl_status qs = owl_model_load(q8, NULL, &qm);
            CHECKF(qs == OWL_OK, "%s: Q8_0: %s", name, owl_last_error());
            owl_ctx *qc = NULL;
            if (!qs && (qs = owl_ctx_new(qm, N_TOK, &qc)) == OWL_OK) {
                double e = eval_chunks(qc, tok, ref, vocab, NULL, 0);
                CHECKF(e < 0.1, "%s: Q8_0: relative error %.3g", name, e);
                fprintf(stderr, "%s Q8_0: %.3g (%s)\n", name, e, qm->layers[0].wq.dtype == OWL_Q8_0 ? "q8_0" : "?");
                owl_ctx_free(qc);
            }
            owl_model_free(qm);
        }
        free(q8);
        /* the portable attention path (scores row by row) too */
        owl_cpu_force_scalar(true);
        snprintf(what, sizeof what, "%s gguf scalar", name);
        double e3 = check_file(what, gguf, arch, tok, ref, vocab, want_swa_layers);
        owl_cpu_force_scalar(false);
        fprintf(stderr, "%s: max relative error %.3g (GGUF), %.3g (HF directory), %.3g (scalar)\n", name, e1, e2, e3);
    }
    free(ref);
    free(tok);
    free(gguf);
    free(hf);
    free(tpath);
    free(lpath);
    free(prefix);
}

/* Loading the GGUF (or, hf = true, the HF directory) fails with an error naming w1 (and w2). */
static void check_bad(const char *name, const char *args, bool hf, owl_status want, const char *w1, const char *w2) {
    char *prefix = test_make_model(tmp, name, args);
    if (!prefix) return;
    char *path = path_ext(prefix, hf ? ".hf" : ".gguf");
    owl_model *m = (owl_model *)1;
    owl_status st = owl_model_load(path, NULL, &m);
    const char *err = owl_last_error();
    CHECKF(st == want, "%s: status %s, expected %s (%s)", name, owl_status_name(st), owl_status_name(want), err);
    CHECK(m == NULL);
    CHECKF(strstr(err, w1) != NULL, "%s: error \"%s\" does not name %s", name, err, w1);
    if (w2) CHECKF(strstr(err, w2) != NULL, "%s: error \"%s\" does not name %s", name, err, w2);
    fprintf(stderr, "%s: %s\n", name, err);
    free(path);
    free(prefix);
}

/* owl_geglu and owl_softcap against values of the formulas computed in
 * float64 by NumPy. */
static void check_ops(void) {
    static const double gelu[][2] = {
        {1.0, 0.84119199060827676},      {-2.0, -0.045402305912224938},   {0.5, 0.34571400982514394},
        {3.0, 2.9963626079182268},       {-0.25, -0.100324649298315},     {-6.0, -8.43964897967453e-11},
        {12.0, 12},                      {-12.0, -0.0},                   {0.0, 0},
        {0.001, 0.00050039894221358199}, {-0.001, -0.00049960105778641803}, {2.5, 2.4849157339100012},
        {-3.5, -0.00061619765537374027}, {4.0, 3.9999297540518075},       {-0.75, -0.17003944483437972},
        {0.125, 0.068717198624223388},   {7.0, 6.9999999999999973},       {-9.0, -0.0},
        {0.3, 0.18537092354275922},      {-0.3, -0.11462907645724076}};
    enum { NG = sizeof gelu / sizeof gelu[0] }; /* 16 on the vector path, 4 after */
    float g[NG], u[NG], out[NG];
    for (int pass = 0; pass < 2; pass++) {
        owl_cpu_force_scalar(pass == 1);
        for (int i = 0; i < NG; i++) g[i] = (float)gelu[i][0], u[i] = 2.0f;
        owl_geglu(out, g, u, NG);
        for (int i = 0; i < NG; i++)
            CHECKF(fabs(out[i] - 2 * gelu[i][1]) <= 1e-6 * fabs(2 * gelu[i][1]) + 1e-20,
                   "geglu(%g) = %.9g, expected %.9g (%s)", gelu[i][0], out[i], 2 * gelu[i][1],
                   pass ? "scalar" : "default");
    }
    owl_cpu_force_scalar(false);
    static const double cap3[][2] = {
        {1.0, 0.96453821259490302}, {-2.0, -1.7483488360437303}, {100.0, 3.0}, {-0.25, -0.24942289930079925}};
    float x[4];
    for (int i = 0; i < 4; i++) x[i] = (float)cap3[i][0];
    owl_softcap(x, 4, 3.0f);
    for (int i = 0; i < 4; i++)
        CHECKF(fabs(x[i] - cap3[i][1]) <= 1e-6 * fabs(cap3[i][1]), "softcap(%g) = %.9g, expected %.9g", cap3[i][0],
               x[i], cap3[i][1]);
}

/* Options a llama.cpp GGUF leaves to the architecture: the 27B query scale
 * (decided by the layer count), Gemma 3's 5:1 layer pattern and local
 * RoPE base, Gemma 2's default soft-caps. */
static void check_defaults(void) {
    static const struct {
        const char *name, *args;
        int swa_layers;
        float scale, rope_swa, attn_cap, final_cap;
    } cases[] = {
        {"g2_27b", "--arch gemma2 --layers 46 --head-dim 32 --window 16 --unset gemma2.attention.scale "
                   "--unset gemma2.attn_logit_softcapping --unset gemma2.final_logit_softcapping",
         23, 0.25f, 0.0f, 50.0f, 30.0f},
        {"g2_9b", "--arch gemma2 --layers 45 --head-dim 32 --window 16 --unset gemma2.attention.scale", 23,
         0.17677669f, 0.0f, 50.0f, 30.0f},
        {"g3_7", "--arch gemma3 --layers 7 --head-dim 32 --window 16 --unset gemma3.attention.scale", 6, 0.17677669f,
         10000.0f, 0.0f, 0.0f},
        {"g3_62", "--arch gemma3 --layers 62 --head-dim 32 --window 16 --unset gemma3.attention.scale", 52, 0.25f,
         10000.0f, 0.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "--no-ref --dim 64 --heads 4 --kv-heads 2 --ffn 32 --vocab 260 %s", cases[i].args);
        char *prefix = test_make_model(tmp, cases[i].name, args);
        if (!prefix) continue;
        char *gguf = path_ext(prefix, ".gguf");
        owl_model *m = NULL;
        owl_status st = owl_model_load(gguf, NULL, &m);
        CHECKF(st == OWL_OK, "%s: %s", cases[i].name, owl_last_error());
        if (!st) {
            int n = 0;
            for (int l = 0; l < m->hp.n_layers; l++) n += m->layers[l].swa;
            CHECKF(n == cases[i].swa_layers, "%s: %d windowed layers", cases[i].name, n);
            CHECKF(fabsf(m->hp.attn_scale - cases[i].scale) < 1e-6f, "%s: scale %g", cases[i].name, m->hp.attn_scale);
            CHECKF(m->hp.rope_base_swa == cases[i].rope_swa && m->hp.attn_softcap == cases[i].attn_cap &&
                       m->hp.final_softcap == cases[i].final_cap,
                   "%s: rope_base_swa %g, caps %g %g", cases[i].name, m->hp.rope_base_swa, m->hp.attn_softcap,
                   m->hp.final_softcap);
            /* Gemma 3: layer 5 (and 11, ...) global */
            if (m->hp.n_layers == 7) CHECK(!m->layers[5].swa && m->layers[4].swa && m->layers[6].swa);
        }
        owl_model_free(m);
        free(gguf);
        free(prefix);
    }
}

int main(void) {
    tmp = test_tmpdir("test_families");
    owl_set_threads(1);
    check_ops();
    check_defaults();
#define SMALL "--no-tokenizer --dim 64 --heads 4 --kv-heads 2 --ffn 96 --vocab 300 --ctx 128 "
    /* Mistral: Llama + a window on every layer (GGUF "llama", Q/K permuted) */
    check_family("mistral", SMALL "--arch mistral --window 16", "llama", 2);
    /* Qwen3: per-head Q/K norms, head_dim given apart from dim / heads */
    check_family("qwen3", SMALL "--arch qwen3 --head-dim 32", "qwen3", 0);
    /* Gemma: (1 + w) norms, sqrt(dim) embeddings, GeGLU, tied, head_dim 32 */
    check_family("gemma", SMALL "--arch gemma --head-dim 32", "gemma", 0);
    /* Gemma 2: post-norms, soft-capping, window on even layers, query_pre_attn_scalar */
    check_family("gemma2", SMALL "--arch gemma2 --layers 3 --window 16 --q-scalar 24 --softcap 1,3", "gemma2", 2);
    /* Gemma 3: Q/K norms, local layers 0 and 1 (pattern 3) with their own RoPE base, global layer 2 scaled */
    check_family("gemma3", SMALL "--arch gemma3 --layers 3 --window 16 --swa-pattern 3 --head-dim 32", "gemma3", 2);
    /* the same with layer_types (sliding, full, sliding, full) in config.json */
    check_family("gemma3_types", SMALL "--arch gemma3 --layers 4 --window 16 --swa-pattern 2 --layer-types", "gemma3", 2);
    /* Phi-3: fused QKV and gate/up, half the dimensions rotated, window */
    check_family("phi3", SMALL "--arch phi3 --window 16 --partial-rotary 0.5", "phi3", 2);
    /* Phi-3 longrope (Phi-3.5 / Phi-4-mini): the long factors for a context beyond the original 32, the short
     * ones within 64; cos and sin scaled by the attention factor */
    check_family("phi3_long", SMALL "--arch phi3 --partial-rotary 0.75 --longrope 32", "phi3", 0);
    check_family("phi3_short", SMALL "--arch phi3 --longrope 64", "phi3", 0);
    /* Qwen3 with a sliding_window but no use_sliding_window (false by default): no window */
    check_family("qwen3_nowin", SMALL "--arch qwen3 --window 16", "qwen3", 0);
    /* Gemma 2 with soft-capping turned off (null in config.json, 0 in GGUF) */
    check_family("gemma2_nocap", SMALL "--arch gemma2 --window 16 --softcap none", "gemma2", 1);
    /* OLMo 2: post-norms only, Q/K norms over the whole vectors */
    check_family("olmo2", SMALL "--arch olmo2", "olmo2", 0);

    /* bad configs: missing family fields and tensors */
    check_bad("bad_gemma2_swa", SMALL "--no-ref --arch gemma2 --window 16 --unset gemma2.attention.sliding_window",
              false, OWL_ERR_FORMAT, "gemma2.attention.sliding_window", "missing");
    check_bad("bad_gemma3_swa_hf", SMALL "--no-ref --arch gemma3 --cfg-unset sliding_window", true, OWL_ERR_FORMAT,
              "gemma3.attention.sliding_window", "missing");
    check_bad("bad_qwen3_qnorm", SMALL "--no-ref --arch qwen3 --drop blk.1.attn_q_norm.weight", false, OWL_ERR_FORMAT,
              "blk.1.attn_q_norm.weight", "missing");
    check_bad("bad_olmo2_knorm", SMALL "--no-ref --arch olmo2 --drop blk.0.attn_k_norm.weight", false, OWL_ERR_FORMAT,
              "blk.0.attn_k_norm.weight", "missing");
    check_bad("bad_gemma2_post", SMALL "--no-ref --arch gemma2 --window 16 --drop blk.0.post_ffw_norm.weight", false,
              OWL_ERR_FORMAT, "blk.0.post_ffw_norm.weight", "missing");
    check_bad("bad_phi3_qkv", SMALL "--no-ref --arch phi3 --drop blk.0.attn_qkv.weight", false, OWL_ERR_FORMAT,
              "blk.0.attn_qkv.weight", "missing");
    check_bad("bad_phi3_heads", SMALL "--no-ref --arch phi3 --set phi3.attention.head_count_kv=u32:4", false,
              OWL_ERR_FORMAT, "blk.0.attn_qkv.weight", "expected [64, 192]");
    check_bad("bad_qwen3_hd", SMALL "--no-ref --arch qwen3 --head-dim 32 --unset qwen3.attention.key_length", false,
              OWL_ERR_FORMAT, "blk.0.attn_q.weight", "expected [64, 64]");
    /* config.json edits loading must refuse clearly */
    static const struct {
        const char *name, *args, *edit, *w1, *w2;
        owl_status want;
    } edits[] = {
        {"bad_longrope", "--arch phi3 --longrope 32",
         "c['rope_scaling']['short_factor']=c['rope_scaling']['short_factor'][:-1]", "short_factor",
         "array of 8 numbers", OWL_ERR_FORMAT},
        {"bad_qwen_mwl", "--arch qwen3 --window 16", "c['use_sliding_window']=True; c['max_window_layers']=1",
         "max_window_layers", "not supported", OWL_ERR_UNSUPPORTED},
        {"bad_layer_types", "--arch gemma3 --layers 3 --window 16",
         "c['layer_types']=['full_attention','sliding_attention','sliding_attention']", "layer_types[1]",
         "period", OWL_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, SMALL "--no-ref %s", edits[i].args);
        char *lp = test_make_model(tmp, edits[i].name, args);
        if (!lp) continue;
        char *cfgp = path_ext(lp, ".hf/config.json"), *dir = path_ext(lp, ".hf");
        int rc = run_cmd("%s -c \"import json,sys; p=sys.argv[1]; c=json.load(open(p)); %s; "
                         "json.dump(c, open(p, 'w'))\" '%s'",
                         test_python(), edits[i].edit, cfgp);
        CHECK(rc == 0);
        owl_model *m = NULL;
        owl_status st = owl_model_load(dir, NULL, &m);
        CHECKF(st == edits[i].want && strstr(owl_last_error(), edits[i].w1) && strstr(owl_last_error(), edits[i].w2),
               "%s: %s", edits[i].name, owl_last_error());
        fprintf(stderr, "%s: %s\n", edits[i].name, owl_last_error());
        owl_model_free(m);
        free(cfgp);
        free(dir);
        free(lp);
    }
    return test_finish("test_families");
}
