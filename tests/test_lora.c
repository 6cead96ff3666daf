/* LoRA adapters against the float64 NumPy reference (llama_ref.py --lora,
 * which merges W + s B A itself from the PEFT files): random bases
 * (GGUF "llama" with permuted Q/K, Qwen2 GGUF, a Hugging Face directory and
 * its owl-converted GGUF, a Q8_0 base, Phi-3 with fused projections) and
 * random adapters in PEFT and GGUF form (ranks 2 to 8, alpha, rsLoRA,
 * rank_pattern / alpha_pattern, subsets of targets, lm_head, embed_tokens).
 * Runtime logits = reference; PEFT form = GGUF form; two adapters at 0.5
 * and 1.0; scale 0 = base bit for bit; merged model = runtime; owl's own
 * PEFT / GGUF writers read back equal (and the reference reads owl's PEFT
 * output); every broken adapter is refused with a clear error. */
#include "adapt/adapt.h"
#include "owl.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *tmp;

static bool py(const char *script, const char *args) {
    int rc = run_cmd("%s %s %s", test_python(), source_path(script), args);
    CHECKF(rc == 0, "%s %s failed (%d)", script, args, rc);
    return rc == 0;
}

static char *tp(const char *name) { return path_join(tmp, name); }

/* Logits of every position of tokens with adapters (n may be 0). */
static float *run_logits(owl_model *m, const int32_t *tok, int n_tok, const owl_lora *const *ad, const float *sc,
                         int n) {
    owl_ctx *ctx = NULL;
    owl_status st = owl_ctx_new(m, 64, &ctx);
    CHECKF(st == OWL_OK, "ctx: %s", owl_last_error());
    if (st) return NULL;
    st = owl_ctx_set_adapters(ctx, ad, sc, n);
    CHECKF(st == OWL_OK, "set adapters: %s", owl_last_error());
    if (!st) st = owl_ctx_eval(ctx, tok, n_tok, true);
    CHECKF(st == OWL_OK, "eval: %s", owl_last_error());
    const int vocab = m->hp.n_vocab;
    float *out = st ? NULL : malloc(sizeof(float) * (size_t)vocab * (size_t)n_tok);
    for (int t = 0; out && t < n_tok; t++)
        memcpy(out + (size_t)t * (size_t)vocab, owl_ctx_logits(ctx, t), sizeof(float) * (size_t)vocab);
    owl_ctx_free(ctx);
    return out;
}

static double worst_f64(const float *got, const double *ref, int vocab, int n_tok) {
    if (!got || !ref) return INFINITY;
    double w = 0;
    for (int t = 0; t < n_tok; t++) {
        double e = test_rel_err(got + (size_t)t * (size_t)vocab, ref + (size_t)t * (size_t)vocab, vocab);
        if (!(e <= w)) w = e;
    }
    return w;
}

static double worst_f32(const float *got, const float *want, int vocab, int n_tok) {
    if (!got || !want) return INFINITY;
    double *r = malloc(sizeof(double) * (size_t)vocab * (size_t)n_tok);
    for (size_t i = 0; i < (size_t)vocab * (size_t)n_tok; i++) r[i] = want[i];
    double w = worst_f64(got, r, vocab, n_tok);
    free(r);
    return w;
}

/* Reference logits of base + adapters "--lora DIR:S ..." */
static double *ref_logits(const char *base, const char *toks, const char *loras, int vocab, int n_tok,
                          const char *out_name) {
    char *out = tp(out_name);
    double *r = NULL;
    char args[4096];
    snprintf(args, sizeof args, "'%s' '%s' '%s' %s", base, toks, out, loras);
    if (py("tests/reference/llama_ref.py", args)) r = test_read_f64(out, (size_t)vocab * (size_t)n_tok);
    free(out);
    return r;
}

static owl_lora *load(owl_model *m, const char *path) {
    owl_lora *lo = NULL;
    owl_status st = owl_lora_load(m, path, &lo);
    CHECKF(st == OWL_OK, "load adapter %s: %s", path, owl_last_error());
    return lo;
}

/* One base: every runtime / reference / format / merge check. */
/* quant: the base is block-quantized: owl multiplies with activations
 * quantized to Q8 too, so logits differ from the float64 reference on the
 * dequantized weights by that noise (a few %); the adapter must still move
 * them to the adapted reference, and the merged F32 model matches tightly. */
static void check_base(const char *label, const char *base_path, const char *toks_path, bool gguf_base, bool quant) {
    const double tol = quant ? 0.1 : 1e-4;
    owl_model *m = NULL;
    owl_status st = owl_model_load(base_path, NULL, &m);
    CHECKF(st == OWL_OK, "%s: load base: %s", label, owl_last_error());
    if (st) return;
    int n_tok = 0;
    int32_t *tok = test_read_ids(toks_path, &n_tok);
    CHECK(tok && n_tok >= 8);
    if (n_tok > 24) n_tok = 24;
    const int vocab = m->hp.n_vocab;
    char *a1 = tp("a1"), *a1g = tp("a1.gguf"), *a2 = tp("a2"), *a2g = tp("a2.gguf"), args[2048];
    /* adapter 1: rank 4, alpha 8, all projections, head and embeddings;
     * adapter 2: rsLoRA rank 6 alpha 3 on q, v, down with a rank / alpha
     * pattern for layer 1's v_proj, F16 tensors */
    snprintf(args, sizeof args, "--base '%s' --out '%s' --gguf '%s' --rank 4 --alpha 8 --lm-head --embed --seed 3",
             base_path, a1, a1g);
    bool ok = py("tests/reference/make_lora.py", args);
    snprintf(args, sizeof args,
             "--base '%s' --out '%s' --gguf '%s' --gguf-dtype f32 --rank 6 --alpha 3 --rslora --dtype f16 --seed 4 "
             "--targets q_proj,v_proj,down_proj --rank-pattern layers.1.self_attn.v_proj=2 "
             "--alpha-pattern layers.1.self_attn.v_proj=5",
             base_path, a2, a2g);
    ok = ok && py("tests/reference/make_lora.py", args);
    if (!ok || !tok) goto out;
    snprintf(args, sizeof args, "--lora '%s'", a1);
    double *r1 = ref_logits(base_path, toks_path, args, vocab, n_tok, "r1.f64");
    snprintf(args, sizeof args, "--lora '%s:0.5' --lora '%s:1.0'", a1, a2);
    double *r12 = ref_logits(base_path, toks_path, args, vocab, n_tok, "r12.f64");
    double *r0 = ref_logits(base_path, toks_path, "", vocab, n_tok, "r0.f64");

    owl_lora *l1 = load(m, a1), *l1g = load(m, a1g), *l2 = load(m, a2), *l2g = load(m, a2g);
    if (!l1 || !l1g || !l2 || !l2g) goto free_all;
    CHECK(l1->rank == 4 && l1->w.scale == 2.0f && l1->targets == (OWL_LORA_T_LAYERS | OWL_LORA_T_OUTPUT | OWL_LORA_T_EMBD));
    CHECK(l2->rslora && l2->rank == 6 && fabsf(l2->w.scale - 3.0f / sqrtf(6.0f)) < 1e-6f);
    CHECK(l1->base_name && strcmp(l1->base_name, "owl/random-base") == 0);

    float *base = run_logits(m, tok, n_tok, NULL, NULL, 0);
    const owl_lora *one[1] = {l1}, *oneg[1] = {l1g}, *two[2] = {l1, l2}, *twog[2] = {l1g, l2g};
    const float s1[1] = {1.0f}, s12[2] = {0.5f, 1.0f}, s0[2] = {0.0f, 0.0f};
    float *g1 = run_logits(m, tok, n_tok, one, s1, 1), *g1g = run_logits(m, tok, n_tok, oneg, NULL, 1);
    float *g12 = run_logits(m, tok, n_tok, two, s12, 2), *g12g = run_logits(m, tok, n_tok, twog, s12, 2);
    float *g0 = run_logits(m, tok, n_tok, two, s0, 2);
    double e;
    e = worst_f64(base, r0, vocab, n_tok);
    CHECKF(e < tol, "%s: base vs reference %.3g", label, e);
    const double moved = worst_f64(base, r1, vocab, n_tok);
    CHECKF(moved > 0.3, "%s: adapter 1 hardly changes the logits (%.3g): the test would not see a wrong delta", label,
           moved);
    e = worst_f64(g1, r1, vocab, n_tok);
    CHECKF(e < moved / 10, "%s: adapter 1 leaves the logits far from the adapted reference: %.3g (base: %.3g)", label,
           e, moved);
    e = worst_f64(g1, r1, vocab, n_tok);
    CHECKF(e < tol, "%s: adapter 1 (PEFT) vs reference: relative error %.3g", label, e);
    e = worst_f64(g1g, r1, vocab, n_tok);
    CHECKF(e < tol, "%s: adapter 1 (GGUF) vs reference: relative error %.3g", label, e);
    e = worst_f32(g1g, g1, vocab, n_tok);
    CHECKF(e < 1e-6, "%s: adapter 1 GGUF vs PEFT form: %.3g", label, e);
    e = worst_f64(g12, r12, vocab, n_tok);
    CHECKF(e < tol, "%s: adapters at 0.5 and 1.0 vs reference: %.3g", label, e);
    e = worst_f64(g12g, r12, vocab, n_tok);
    CHECKF(e < tol, "%s: adapters at 0.5 and 1.0 (GGUF forms) vs reference: %.3g", label, e);
    CHECKF(base && g0 && memcmp(base, g0, sizeof(float) * (size_t)vocab * (size_t)n_tok) == 0,
           "%s: scale 0 is not the base bit for bit", label);

    /* owl's writers: read back equal; the reference reads owl's PEFT output */
    char *w1 = tp("w1"), *w1g = tp("w1.gguf"), *w2 = tp("w2"), *w2g = tp("w2.gguf");
    CHECKF(owl_lora_write_peft(l1, w1) == OWL_OK, "write peft: %s", owl_last_error());
    CHECKF(owl_lora_write_gguf(l1, w1g, OWL_F32) == OWL_OK, "write gguf: %s", owl_last_error());
    CHECKF(owl_lora_write_peft(l2, w2) == OWL_OK, "write peft 2: %s", owl_last_error());
    CHECKF(owl_lora_write_gguf(l2g, w2g, OWL_F32) == OWL_OK, "write gguf 2: %s", owl_last_error());
    owl_lora *x1 = load(m, w1), *x1g = load(m, w1g), *x2 = load(m, w2), *x2g = load(m, w2g);
    if (x1 && x1g && x2 && x2g) {
        const owl_lora *rt[2] = {x1, x2}, *rtg[2] = {x1g, x2g};
        float *h = run_logits(m, tok, n_tok, rt, s12, 2), *hg = run_logits(m, tok, n_tok, rtg, s12, 2);
        e = worst_f32(h, g12, vocab, n_tok);
        CHECKF(e < 1e-6, "%s: owl's PEFT writer read back: %.3g", label, e);
        e = worst_f32(hg, g12, vocab, n_tok);
        CHECKF(e < 1e-6, "%s: owl's GGUF writer read back: %.3g", label, e);
        snprintf(args, sizeof args, "--lora '%s:0.5' --lora '%s:1.0'", w1, w2);
        double *rw = ref_logits(base_path, toks_path, args, vocab, n_tok, "rw.f64");
        e = worst_f64(h, rw, vocab, n_tok);
        CHECKF(e < tol, "%s: reference on owl's PEFT output: %.3g", label, e);
        free(rw);
        free(h);
        free(hg);
    }
    owl_lora_free(x1);
    owl_lora_free(x1g);
    owl_lora_free(x2);
    owl_lora_free(x2g);

    /* merged model (F32 tensors) = runtime adapters */
    if (gguf_base) {
        char *mg = tp("merged.gguf");
        st = owl_lora_merge(m, two, s12, 2, OWL_F32, mg);
        CHECKF(st == OWL_OK, "%s: merge: %s", label, owl_last_error());
        owl_model *mm = NULL;
        if (!st && owl_model_load(mg, NULL, &mm) == OWL_OK) {
            float *gm = run_logits(mm, tok, n_tok, NULL, NULL, 0);
            e = worst_f32(gm, g12, vocab, n_tok);
            CHECKF(e < (quant ? tol : 1e-5), "%s: merged model vs runtime adapters: %.3g", label, e);
            e = worst_f64(gm, r12, vocab, n_tok);
            CHECKF(e < 1e-4, "%s: merged model vs reference: %.3g", label, e);
            free(gm);
        } else {
            CHECKF(false, "%s: merged model does not load: %s", label, owl_last_error());
        }
        owl_model_free(mm);
        free(mg);
    } else {
        st = owl_lora_merge(m, two, s12, 2, OWL_F32, "/nonexistent/x.gguf");
        CHECKF(st == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "GGUF base"), "%s: merge of an HF base: %s",
               label, owl_last_error());
    }
    free(w1);
    free(w1g);
    free(w2);
    free(w2g);
    free(base);
    free(g1);
    free(g1g);
    free(g12);
    free(g12g);
    free(g0);
free_all:
    owl_lora_free(l1);
    owl_lora_free(l1g);
    owl_lora_free(l2);
    owl_lora_free(l2g);
    free(r1);
    free(r12);
    free(r0);
out:
    free(a1);
    free(a1g);
    free(a2);
    free(a2g);
    free(tok);
    owl_model_free(m);
}

/* A broken adapter is refused with an error holding `want`. */
static void check_bad(owl_model *m, const char *base_path, const char *brk, const char *want) {
    char *d = tp("bad"), args[1024];
    snprintf(args, sizeof args, "--base '%s' --out '%s' --rank 2 --break %s --lm-head", base_path, d, brk);
    if (py("tests/reference/make_lora.py", args)) {
        owl_lora *lo = NULL;
        owl_status st = owl_lora_load(m, d, &lo);
        CHECKF(st != OWL_OK && lo == NULL && strstr(owl_last_error(), want), "--break %s: %s (want \"%s\")", brk,
               st ? owl_last_error() : "accepted", want);
        owl_lora_free(lo);
    }
    run_cmd("rm -rf '%s'", d);
    free(d);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void check_bad_inputs(const char *base_path) {
    owl_model *m = NULL;
    if (owl_model_load(base_path, NULL, &m) != OWL_OK) {
        CHECKF(false, "bad inputs: base: %s", owl_last_error());
        return;
    }
    check_bad(m, base_path, "nan", "NaN");
    check_bad(m, base_path, "drop_b", "missing lora_B");
    check_bad(m, base_path, "rank_mismatch", "rank mismatch");
    check_bad(m, base_path, "unknown_target", "unknown target module \"foo_proj\"");
    check_bad(m, base_path, "bad_shape", "q_proj.lora_A.weight");
    check_bad(m, base_path, "extra_layer", "the base model has 2 layers");
    check_bad(m, base_path, "modules_to_save", "modules_to_save");
    check_bad(m, base_path, "regex_bad", "regular expression");

    /* an adapter for other shapes (another dim) and another architecture */
    char *ob = tp("other"), *ad = tp("other_ad"), *adg = tp("other_ad.gguf"), args[1024];
    snprintf(args, sizeof args, "--out '%s' --dim 32 --heads 4 --kv-heads 2 --layers 2 --no-ref", ob);
    char *obg = tp("other.gguf");
    if (py("tests/reference/make_model.py", args)) {
        snprintf(args, sizeof args, "--base '%s' --out '%s' --gguf '%s' --rank 2", obg, ad, adg);
        if (py("tests/reference/make_lora.py", args)) {
            owl_lora *lo = NULL;
            owl_status st = owl_lora_load(m, ad, &lo);
            CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "shape"), "other shapes (PEFT): %s",
                   owl_last_error());
            st = owl_lora_load(m, adg, &lo);
            CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "shape"), "other shapes (GGUF): %s",
                   owl_last_error());
        }
    }
    snprintf(args, sizeof args, "--out '%s' --arch qwen2 --dim 64 --heads 4 --kv-heads 2 --layers 2 --no-ref", ob);
    if (py("tests/reference/make_model.py", args)) {
        snprintf(args, sizeof args, "--base '%s' --out '%s' --gguf '%s' --rank 2", obg, ad, adg);
        if (py("tests/reference/make_lora.py", args)) {
            owl_lora *lo = NULL;
            owl_status st = owl_lora_load(m, adg, &lo);
            CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "architecture \"qwen2\""), "other arch: %s",
                   owl_last_error());
        }
    }
    /* broken config texts and files */
    static const struct {
        const char *cfg, *want;
    } cfgs[] = {
        {"{", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{\"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "missing key \"r\""},
        {"{\"r\": \"4\", \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "\"r\" must be an integer"},
        {"{\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "\"r\" must be an integer"},
        {"{\"r\": 99999999, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "\"r\" must be an integer"},
        {"{\"r\": 2, \"target_modules\": [\"q_proj\"]}", "missing key \"lora_alpha\""},
        {"{\"r\": 2, \"lora_alpha\": 0, \"target_modules\": [\"q_proj\"]}", "lora_alpha"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": 5}", "target_modules must be"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": []}", "target_modules is empty"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [7]}", "target_modules[0] is not a string"},
        {"{\"r\": 2, \"lora_alpha\": 2}", "missing key \"target_modules\""},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"], \"use_rslora\": \"yes\"}", "use_rslora"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"], \"use_dora\": true}", "DoRA"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"], \"peft_type\": \"IA3\"}", "peft_type"},
        {"{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"], \"rank_pattern\": {\"q_proj\": \"x\"}}",
         "rank_pattern"},
        {"{\"r\": 2, \"r\": 3, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"]}", "not valid JSON"},
    };
    char *bd = tp("badcfg");
    run_cmd("mkdir -p '%s'", bd);
    snprintf(args, sizeof args, "--base '%s' --out '%s' --rank 2", base_path, bd);
    if (py("tests/reference/make_lora.py", args)) {
        char *cfgp = path_join(bd, "adapter_config.json");
        for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
            write_text(cfgp, cfgs[i].cfg);
            owl_lora *lo = NULL;
            owl_status st = owl_lora_load(m, bd, &lo);
            CHECKF(st != OWL_OK && strstr(owl_last_error(), cfgs[i].want), "config %s: %s (want \"%s\")", cfgs[i].cfg,
                   st ? owl_last_error() : "accepted", cfgs[i].want);
        }
        /* target_modules that do not name the tensors' modules */
        write_text(cfgp, "{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"q_proj\"]}");
        owl_lora *lo = NULL;
        owl_status st = owl_lora_load(m, bd, &lo);
        CHECKF(st != OWL_OK && strstr(owl_last_error(), "does not name"), "narrow targets: %s", owl_last_error());
        /* a regular expression that names them all: accepted */
        write_text(cfgp, "{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": \".*\\\\.(q|k|v|o|gate|up|down)_proj\"}");
        st = owl_lora_load(m, bd, &lo);
        CHECKF(st == OWL_OK, "regex targets: %s", owl_last_error());
        owl_lora_free(lo);
        lo = NULL;
        /* truncated safetensors */
        write_text(cfgp, "{\"r\": 2, \"lora_alpha\": 2, \"target_modules\": \"all-linear\"}");
        char *stp = path_join(bd, "adapter_model.safetensors");
        CHECK(run_cmd("truncate -s 200 '%s'", stp) == 0);
        st = owl_lora_load(m, bd, &lo);
        CHECKF(st != OWL_OK && strstr(owl_last_error(), "adapter_model.safetensors"), "truncated: %s",
               owl_last_error());
        free(stp);
        free(cfgp);
    }
    /* owl_ctx_set_adapters: another model's adapter, too many, NaN scale */
    {
        char *d2 = tp("api_ad"), a2[1024];
        snprintf(a2, sizeof a2, "--base '%s' --out '%s' --rank 2", base_path, d2);
        owl_model *m2 = NULL;
        owl_lora *la = NULL;
        owl_ctx *c2 = NULL;
        if (py("tests/reference/make_lora.py", a2) && owl_model_load(base_path, NULL, &m2) == OWL_OK &&
            owl_ctx_new(m2, 16, &c2) == OWL_OK && (la = load(m, d2)) != NULL) {
            const owl_lora *one[1] = {la}, *nine[9] = {la, la, la, la, la, la, la, la, la};
            owl_status s2 = owl_ctx_set_adapters(c2, one, NULL, 1);
            CHECKF(s2 == OWL_ERR_ARG && strstr(owl_last_error(), "another model"), "other model: %s", owl_last_error());
            owl_ctx *c1 = NULL;
            if (owl_ctx_new(m, 16, &c1) == OWL_OK) {
                CHECK(owl_ctx_set_adapters(c1, nine, NULL, 9) == OWL_ERR_RANGE);
                const float nan_s[1] = {NAN};
                CHECK(owl_ctx_set_adapters(c1, one, nan_s, 1) == OWL_ERR_RANGE);
                CHECK(owl_ctx_set_adapters(c1, NULL, NULL, 1) == OWL_ERR_ARG);
                CHECK(owl_ctx_set_adapters(c1, one, NULL, 1) == OWL_OK);
                CHECK(owl_ctx_set_adapters(c1, NULL, NULL, 0) == OWL_OK);
            }
            owl_ctx_free(c1);
        }
        owl_lora_free(la);
        owl_ctx_free(c2);
        owl_model_free(m2);
        free(d2);
    }
    /* a model file is not an adapter; nothing at all */
    owl_lora *lo = NULL;
    owl_status st = owl_lora_load(m, base_path, &lo);
    CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "general.type"), "model as adapter: %s", owl_last_error());
    st = owl_lora_load(m, "/nonexistent/adapter", &lo);
    CHECKF(st == OWL_ERR_IO, "missing adapter: %s", owl_last_error());
    free(bd);
    free(ob);
    free(obg);
    free(ad);
    free(adg);
    owl_model_free(m);
}

/* owl_lora_new + writer: the reference reads what owl wrote for a
 * hand-filled adapter (the API the fine-tuning code builds on). */
static void check_new(const char *base_path, const char *toks_path) {
    owl_model *m = NULL;
    if (owl_model_load(base_path, NULL, &m) != OWL_OK) return;
    owl_lora *lo = NULL;
    owl_status st = owl_lora_new(m, (1u << OWL_PROJ_Q) | (1u << OWL_PROJ_DOWN) | OWL_LORA_T_OUTPUT, 3, 6.0f, false, &lo);
    CHECKF(st == OWL_OK, "owl_lora_new: %s", owl_last_error());
    int n_tok = 0;
    int32_t *tok = test_read_ids(toks_path, &n_tok);
    if (!st && tok) {
        uint64_t rng = 7;
        const int vocab = m->hp.n_vocab;
        for (int l = -1; l < m->hp.n_layers; l++)
            for (int p = 0; p < OWL_PROJ_LAYER_COUNT; p++) {
                owl_lora_pair *pr = owl_lora_pair_of(lo, l, (owl_proj)p);
                if (!pr || !pr->a.data || (l == -1 && p)) continue;
                float *a = owl_lora_a(lo, l, (owl_proj)p), *b = owl_lora_b(lo, l, (owl_proj)p);
                for (int64_t i = 0; i < pr->a.rows * pr->a.cols; i++) a[i] = 0.3f * test_rand_f32(&rng);
                for (int64_t i = 0; i < pr->b.rows * pr->b.cols; i++) b[i] = 0.3f * test_rand_f32(&rng);
            }
        CHECK(owl_lora_b(lo, 0, OWL_PROJ_K) == NULL && owl_lora_a(lo, 1, OWL_PROJ_Q) != NULL);
        char *d = tp("new_ad"), args[1024];
        CHECKF(owl_lora_write_peft(lo, d) == OWL_OK, "write: %s", owl_last_error());
        if (n_tok > 16) n_tok = 16;
        snprintf(args, sizeof args, "--lora '%s'", d);
        double *r = ref_logits(base_path, toks_path, args, vocab, n_tok, "rnew.f64");
        const owl_lora *one[1] = {lo};
        float *g = run_logits(m, tok, n_tok, one, NULL, 1);
        double e = worst_f64(g, r, vocab, n_tok);
        CHECKF(e < 1e-4, "owl_lora_new adapter vs reference on its PEFT files: %.3g", e);
        free(g);
        free(r);
        free(d);
    }
    owl_lora *bad = NULL;
    CHECK(owl_lora_new(m, 1u << 12, 3, 6.0f, false, &bad) == OWL_ERR_ARG && !bad);
    CHECK(owl_lora_new(m, 1u, 0, 6.0f, false, &bad) == OWL_ERR_RANGE && !bad);
    free(tok);
    owl_lora_free(lo);
    owl_model_free(m);
}

/* Phi-3 (fused qkv_proj, gate_up_proj) from its Hugging Face directory: a
 * PEFT adapter on the fused modules, split over q / k / v and gate / up
 * rows, against the reference; owl's GGUF writer re-fuses them. */
static void check_phi3(void) {
    char *p = tp("phi3"), args[1024];
    snprintf(args, sizeof args, "--out '%s' --arch phi3 --dim 64 --heads 4 --kv-heads 2 --layers 2 --n-tokens 16", p);
    if (!py("tests/reference/make_model.py", args)) {
        free(p);
        return;
    }
    char *hf = tp("phi3.hf"), *t = tp("phi3.tokens.txt"), *ad = tp("phi3_ad"), *adg = tp("phi3_ad.gguf");
    owl_model *m = NULL;
    snprintf(args, sizeof args, "--base '%s' --out '%s' --rank 3 --alpha 5 --seed 8", hf, ad);
    int n_tok = 0;
    int32_t *tok = test_read_ids(t, &n_tok);
    if (py("tests/reference/make_lora.py", args) && tok && owl_model_load(hf, NULL, &m) == OWL_OK) {
        const int vocab = m->hp.n_vocab;
        snprintf(args, sizeof args, "--lora '%s'", ad);
        double *r = ref_logits(hf, t, args, vocab, n_tok, "rphi.f64");
        owl_lora *lo = load(m, ad);
        if (lo) {
            CHECK(lo->targets == OWL_LORA_T_LAYERS);
            const owl_lora *one[1] = {lo};
            float *g = run_logits(m, tok, n_tok, one, NULL, 1);
            double e = worst_f64(g, r, vocab, n_tok);
            CHECKF(e < 1e-4, "phi3 fused adapter vs reference: %.3g", e);
            CHECKF(owl_lora_write_gguf(lo, adg, OWL_F32) == OWL_OK, "phi3 gguf write: %s", owl_last_error());
            owl_lora *lg = load(m, adg);
            if (lg) {
                const owl_lora *oneg[1] = {lg};
                float *gg = run_logits(m, tok, n_tok, oneg, NULL, 1);
                e = worst_f32(gg, g, vocab, n_tok);
                CHECKF(e < 1e-6, "phi3 GGUF (re-fused) vs PEFT: %.3g", e);
                free(gg);
            }
            owl_lora_free(lg);
            free(g);
        }
        owl_lora_free(lo);
        free(r);
    }
    owl_model_free(m);
    free(tok);
    free(p);
    free(hf);
    free(t);
    free(ad);
    free(adg);
}

int main(void) {
    tmp = test_tmpdir("test_lora");
    char args[1024];
    /* GGUF llama (permuted Q/K), GQA, untied */
    char *b1 = tp("llama");
    snprintf(args, sizeof args, "--out '%s' --dim 64 --heads 4 --kv-heads 2 --layers 2 --ffn 96 --n-tokens 24", b1);
    if (py("tests/reference/make_model.py", args)) {
        char *g = tp("llama.gguf"), *t = tp("llama.tokens.txt");
        check_base("llama gguf", g, t, true, false);
        check_bad_inputs(g);
        check_new(g, t);
        /* Q8_0 base (owl quantize) vs the reference on the dequantized base */
        char *q = tp("llama.q8.gguf");
        if (run_cmd("'%s' quantize '%s' '%s' --type Q8_0 >/dev/null 2>&1", owl_bin(), g, q) == 0)
            check_base("llama q8_0", q, t, true, true);
        else
            CHECKF(false, "owl quantize Q8_0 failed");
        free(q);
        free(g);
        free(t);
    }
    /* Qwen2 GGUF (NeoX RoPE, no permutation), tied head */
    char *b2 = tp("qwen");
    snprintf(args, sizeof args, "--out '%s' --arch qwen2 --dim 64 --heads 4 --kv-heads 2 --layers 2 --tied --n-tokens 24",
             b2);
    if (py("tests/reference/make_model.py", args)) {
        char *g = tp("qwen.gguf"), *t = tp("qwen.tokens.txt");
        check_base("qwen2 gguf tied", g, t, true, false);
        free(g);
        free(t);
    }
    /* a Hugging Face llama directory (rotate-half rows) and its GGUF made by
     * owl convert (permuted rows): the same PEFT adapter gives the same logits */
    char *h = tp("hf");
    snprintf(args, sizeof args, "--out '%s' --arch llama --dim 64 --heads 4 --kv-heads 2 --layers 2 --n-tokens 24", h);
    if (py("tests/reference/make_hf.py", args)) {
        char *t = tp("hf.tokens.txt"), *hg = tp("hf_conv.gguf");
        check_base("llama hf dir", h, t, false, false);
        if (run_cmd("'%s' convert '%s' -o '%s' --type f32 >/dev/null 2>&1", owl_bin(), h, hg) == 0)
            check_base("llama hf converted", hg, t, true, false);
        else
            CHECKF(false, "owl convert of the HF directory failed");
        free(t);
        free(hg);
    }
    check_phi3();
    free(b1);
    free(b2);
    free(h);
    return test_finish("test_lora");
}
