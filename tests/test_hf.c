/* Hugging Face model directories and `owl convert`:
 * - the real wp model read from its directory greedily continues "Prince
 *   Andrew" exactly as llama.cpp (and PyTorch) did (models/wp/README.md);
 * - converted to GGUF (F32) it gives the same tokens and logits, F16 within
 *   1e-2; its keys, tensor names and shapes are those of llama.cpp's
 *   wp-Q8_0.gguf, and every tensor lies within Q8_0 rounding of that file's
 *   (which checks the Q/K row permutation);
 * - random directories from tests/reference/make_hf.py (Llama, Mistral,
 *   Qwen2; single file and sharded; GQA, tied, explicit head_dim, linear and
 *   Llama 3 RoPE scaling; F32/BF16) match the float64 NumPy reference at
 *   every position, read directly and after conversion;
 * - other families map their tensor names (Gemma 2 norms + 1), and bad
 *   directories fail with errors naming the field / file. */
#include "format/hf_dir.h"
#include "model/model.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *tmp;

static const int32_t wp_prompt[3] = {1, 10787, 11571};
static const int32_t wp_greedy[40] = {29892, 13,  392,   540,  471,   451,  304,   367,  263,  1472,
                                      931,   304, 1075,  29889, 13,   13,   29908, 29902, 626,  1407,
                                      1532,  1699, 1497, 540,  29892, 376,  29902, 626,   451,  263,
                                      767,   310, 263,   767,  1058,  756,  13,    915,   264,  263};

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Greedy continuation of the prompt; n tokens into out. */
static bool greedy(owl_model *m, const int32_t *prompt, int np, int32_t *out, int n) {
    owl_ctx *c;
    if (owl_ctx_new(m, 0, &c) != OWL_OK) return false;
    owl_model_info info;
    owl_model_get_info(m, &info);
    bool ok = owl_ctx_eval(c, prompt, np, false) == OWL_OK;
    for (int i = 0; ok && i < n; i++) {
        out[i] = argmax(owl_ctx_logits(c, -1), info.n_vocab);
        ok = owl_ctx_eval(c, &out[i], 1, false) == OWL_OK;
    }
    owl_ctx_free(c);
    return ok;
}

/* Logits of every position of tokens (malloc'd n x vocab). */
static float *all_logits(const char *path, const int32_t *tokens, int n, int *vocab) {
    owl_model *m;
    owl_status s = owl_model_load(path, NULL, &m);
    CHECKF(s == OWL_OK, "%s: %s", path, owl_last_error());
    if (s) return NULL;
    owl_model_info info;
    owl_model_get_info(m, &info);
    *vocab = info.n_vocab;
    owl_ctx *c;
    float *out = NULL;
    if (owl_ctx_new(m, 0, &c) == OWL_OK) {
        if (owl_ctx_eval(c, tokens, n, true) == OWL_OK) {
            out = malloc(sizeof(float) * (size_t)n * (size_t)info.n_vocab);
            for (int i = 0; i < n; i++)
                memcpy(out + (size_t)i * (size_t)info.n_vocab, owl_ctx_logits(c, i), sizeof(float) * (size_t)info.n_vocab);
        }
        owl_ctx_free(c);
    }
    owl_model_free(m);
    CHECKF(out != NULL, "%s: eval failed: %s", path, owl_last_error());
    return out;
}

/* max |a - b| / max |b| */
static double rel_diff_f(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - (double)b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static double rel_diff_d(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

/* ---- the real wp model ---- */

static void test_wp(void) {
    const char *dir = testdata_path("models/wp/hf");
    char *d = strdup(dir);
    owl_model *m;
    owl_status s = owl_model_load(d, NULL, &m);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s) {
        free(d);
        return;
    }
    owl_model_info info;
    owl_model_get_info(m, &info);
    CHECK(strcmp(info.arch, "llama") == 0 && info.dim == 256 && info.n_layers == 4 && info.n_heads == 8 &&
          info.n_kv_heads == 4 && info.head_dim == 32 && info.ffn_dim == 768 && info.n_vocab == 32000 &&
          info.n_ctx_train == 256 && info.n_params == 11340032);
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    CHECK(tok != NULL);
    if (tok) {
        int32_t *ids;
        size_t n;
        CHECK(owl_tokenize(tok, "Prince Andrew", 13, true, false, &ids, &n) == OWL_OK && n == 3 &&
              memcmp(ids, wp_prompt, sizeof wp_prompt) == 0);
        free(ids);
    }
    int32_t out[40];
    CHECK(greedy(m, wp_prompt, 3, out, 40));
    CHECKF(memcmp(out, wp_greedy, sizeof out) == 0, "greedy continuation from the directory differs");
    owl_model_free(m);

    /* converted to GGUF */
    int32_t seq[43];
    memcpy(seq, wp_prompt, sizeof wp_prompt);
    memcpy(seq + 3, wp_greedy, sizeof wp_greedy);
    int vocab = 0;
    float *ref = all_logits(d, seq, 43, &vocab);
    char *g32 = path_join(tmp, "wp-f32.gguf"), *g16 = path_join(tmp, "wp-f16.gguf");
    double t0 = owl_time_ms();
    s = owl_hf_convert(d, g32, OWL_F32);
    double t1 = owl_time_ms();
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    s = owl_hf_convert(d, g16, OWL_F16);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    fprintf(stderr, "wp convert to F32: %.0f ms\n", t1 - t0);
    if (owl_model_load(g32, NULL, &m) == OWL_OK) {
        CHECK(greedy(m, wp_prompt, 3, out, 40));
        CHECKF(memcmp(out, wp_greedy, sizeof out) == 0, "greedy continuation from the converted GGUF differs");
        owl_model_free(m);
    } else {
        CHECKF(0, "%s", owl_last_error());
    }
    float *l32 = all_logits(g32, seq, 43, &vocab), *l16 = all_logits(g16, seq, 43, &vocab);
    if (ref && l32 && l16) {
        double e32 = rel_diff_f(l32, ref, (size_t)43 * 32000), e16 = rel_diff_f(l16, ref, (size_t)43 * 32000);
        fprintf(stderr, "wp logits: converted F32 rel %.2e, F16 rel %.2e\n", e32, e16);
        CHECKF(e32 <= 1e-4, "F32 GGUF vs directory: %g", e32);
        CHECKF(e16 <= 1e-2, "F16 GGUF vs directory: %g", e16);
    }
    free(ref);
    free(l32);
    free(l16);

    /* keys, names and shapes against llama.cpp's quantization of wp-F32.gguf */
    owl_weights q, c;
    s = owl_gguf_read(testdata_path("models/wp/wp-Q8_0.gguf"), &q);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    owl_status s2 = owl_gguf_read(g32, &c);
    CHECKF(s2 == OWL_OK, "%s", owl_last_error());
    if (!s && !s2) {
        for (size_t i = 0; i < q.meta.n; i++) {
            owl_str k = q.meta.entries[i].key;
            if (owl_str_eq(k, "general.description") || owl_str_eq(k, "general.alignment")) continue; /* by hand */
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
            const owl_meta_value *v = owl_meta_find(&c.meta, key);
            CHECKF(v && v->type == q.meta.entries[i].value.type, "converted file lacks key %s (or its type differs)",
                   key);
            if (!v || v->type != q.meta.entries[i].value.type || owl_str_eq(k, "general.file_type") ||
                owl_str_eq(k, "general.name")) /* file type: Q8_0 there; name: the directory's here */
                continue;
            const owl_meta_value *w = &q.meta.entries[i].value;
            if (v->type == OWL_META_STRING)
                CHECKF(v->s.len == w->s.len && memcmp(v->s.ptr, w->s.ptr, v->s.len) == 0, "key %s differs", key);
            else if (v->type == OWL_META_ARRAY)
                CHECKF(v->arr.count == w->arr.count && v->arr.elem == w->arr.elem, "key %s differs", key);
            else if (v->type == OWL_META_F32)
                CHECKF(v->f == w->f, "key %s differs", key);
            else
                CHECKF(v->u == w->u, "key %s differs", key);
        }
        uint64_t ft = 99;
        CHECK(owl_meta_get_u64(&c.meta, "general.file_type", &ft) && ft == 0);
        CHECK(c.n == q.n);
        size_t blocks = 0, exact = 0;
        for (size_t i = 0; i < q.n; i++) {
            const owl_weight *a = &q.w[i], *b = owl_weights_find(&c, a->name);
            CHECKF(b != NULL, "converted file lacks tensor %s", a->name);
            if (!b) continue;
            CHECKF(a->n_dims == b->n_dims && memcmp(a->ne, b->ne, sizeof a->ne) == 0, "%s: shape differs", a->name);
            CHECKF(b->dtype == OWL_F32, "%s: %s", a->name, owl_dtype_name(b->dtype));
            if (b->dtype != OWL_F32 || owl_weight_nelem(a) != owl_weight_nelem(b)) continue;
            int64_t n = owl_weight_nelem(a);
            float *deq = malloc(sizeof(float) * (size_t)n);
            if (owl_to_f32(a->dtype, a->data, deq, n) != OWL_OK) {
                CHECKF(0, "%s: %s", a->name, owl_last_error());
                free(deq);
                continue;
            }
            const float *f = b->data;
            /* Q8_0: 32 values, scale amax/127: every value within half a step */
            bool ok = true;
            int64_t blk = a->dtype == OWL_F32 ? 1 : 32;
            for (int64_t j = 0; j < n; j += blk) {
                double amax = 0;
                for (int64_t k = j; k < j + blk; k++) amax = fmax(amax, fabs(f[k]));
                double dd = amax / 127.0, d16 = owl_f16_to_f32(owl_f32_to_f16((float)dd));
                double tol = a->dtype == OWL_F32 ? 0 : dd * 0.5 + 127.0 * fabs(d16 - dd) + 1e-6 * amax + 1e-12;
                bool same = true;
                for (int64_t k = j; k < j + blk; k++) {
                    if (fabs((double)deq[k] - f[k]) > tol) ok = false;
                    if (deq[k] != f[k]) same = false;
                }
                blocks++;
                exact += same;
            }
            CHECKF(ok, "%s: converted values are not within Q8_0 rounding of wp-Q8_0.gguf", a->name);
            free(deq);
        }
        fprintf(stderr, "wp: %zu tensors, %zu blocks within Q8_0 rounding (%zu exact)\n", q.n, blocks, exact);
    }
    if (!s) owl_weights_free(&q);
    if (!s2) owl_weights_free(&c);

    /* the CLI */
    char *g = path_join(tmp, "cli.gguf");
    CHECK(run_cmd("'%s' convert '%s' -o '%s' --type bf16 2>/dev/null", owl_bin(), d, g) == 0);
    owl_weights cw;
    if (owl_gguf_read(g, &cw) == OWL_OK) {
        const owl_weight *w = owl_weights_find(&cw, "blk.0.attn_q.weight");
        const owl_weight *nw = owl_weights_find(&cw, "blk.0.attn_norm.weight");
        CHECK(w && w->dtype == OWL_BF16 && nw && nw->dtype == OWL_F32);
        uint64_t ft = 0;
        CHECK(owl_meta_get_u64(&cw.meta, "general.file_type", &ft) && ft == 32);
        owl_str lic;
        CHECK(owl_meta_get_str(&cw.meta, "general.license", &lic) && owl_str_eq(lic, "mit"));
        const owl_meta_value *tags = owl_meta_find(&cw.meta, "general.tags");
        CHECK(tags && tags->type == OWL_META_ARRAY && tags->arr.count == 3 && owl_str_eq(tags->arr.strs[1], "test-model"));
        owl_weights_free(&cw);
    } else {
        CHECKF(0, "%s", owl_last_error());
    }
    char *out_txt = run_capture(NULL, "'%s' run '%s' -p 'Prince Andrew' --temp 0 -n 8 -t 1 2>/dev/null", owl_bin(), d);
    CHECKF(out_txt && strstr(out_txt, "Prince Andrew,\nand he was not to be"), "owl run DIR: %s", out_txt ? out_txt : "");
    free(out_txt);
    char *ids_txt = run_capture(NULL, "'%s' tokenize '%s/' 'Prince Andrew' --ids 2>/dev/null", owl_bin(), d);
    CHECKF(ids_txt && strcmp(ids_txt, "1 10787 11571\n") == 0, "owl tokenize DIR: %s", ids_txt ? ids_txt : "");
    free(ids_txt);
    /* an output that cannot be written: an error, nothing left behind */
    char *nodir = path_join(tmp, "no/such/dir/x.gguf");
    s = owl_hf_convert(d, nodir, OWL_F16);
    CHECKF(s == OWL_ERR_IO && strstr(owl_last_error(), "no/such/dir/x.gguf"), "%s", owl_last_error());
    free(nodir);
    CHECK(run_cmd("ls '%s' | grep -q convert", tmp) != 0); /* no temporary files left */
    CHECK(run_cmd("'%s' convert '%s' 2>/dev/null", owl_bin(), d) == 2);                  /* no -o */
    CHECK(run_cmd("'%s' convert '%s' -o '%s' --type q4 2>/dev/null", owl_bin(), d, g) == 2); /* bad type */
    CHECK(run_cmd("'%s' convert '%s' -o '%s' 2>/dev/null", owl_bin(), g, g) == 1);          /* not a dir */
    free(g);
    free(g32);
    free(g16);
    free(d);
}

/* ---- random directories against the NumPy reference ---- */



static void random_case(const char *name, const char *args, int vocab, double tol) {
    char *dir = path_join(tmp, name);
    int rc = run_cmd("%s %s --out '%s' --vocab %d %s", test_python(), source_path("tests/reference/make_hf.py"), dir,
                     vocab, args);
    CHECKF(rc == 0, "make_hf.py %s failed", args);
    if (rc) {
        free(dir);
        return;
    }
    char tp[4200], lp[4200], gp[4200];
    snprintf(tp, sizeof tp, "%s.tokens.txt", dir);
    snprintf(lp, sizeof lp, "%s.logits.f64", dir);
    snprintf(gp, sizeof gp, "%s.gguf", dir);
    int n;
    int32_t *toks = test_read_ids(tp, &n);
    double *ref = toks ? test_read_f64(lp, (size_t)n * (size_t)vocab) : NULL;
    CHECK(ref != NULL);
    int v = 0;
    float *got = ref ? all_logits(dir, toks, n, &v) : NULL;
    if (got) {
        CHECK(v == vocab);
        double e = rel_diff_d(got, ref, (size_t)n * (size_t)vocab);
        CHECKF(e <= tol, "%s (%s): directory logits vs reference %g", name, args, e);
        free(got);
    }
    owl_status s = owl_hf_convert(dir, gp, OWL_F32);
    CHECKF(s == OWL_OK, "%s: convert: %s", name, owl_last_error());
    got = ref && !s ? all_logits(gp, toks, n, &v) : NULL;
    if (got) {
        double e = rel_diff_d(got, ref, (size_t)n * (size_t)vocab);
        CHECKF(e <= tol, "%s (%s): converted GGUF logits vs reference %g", name, args, e);
        free(got);
    }
    free(toks);
    free(ref);
    free(dir);
}

static void test_random(void) {
    random_case("llama", "--kv-heads 2", 300, 1e-4);
    random_case("llama_sharded", "--shards 3 --tied --heads 8 --kv-heads 2 --rope-llama3 4 --seed 2", 280, 1e-4);
    random_case("qwen2", "--arch qwen2 --shards 2 --tied --rope-theta 1000000 --seed 3", 300, 1e-4);
    random_case("mistral", "--arch mistral --head-dim 32 --kv-heads 1 --rope-linear 2 --seed 4", 260, 1e-4);
    random_case("llama_bf16", "--dtype bf16 --kv-heads 2 --seed 5", 300, 1e-3);
}

/* ---- other families: names ---- */

static void write_cfg(const char *dir, const char *json) {
    mkdir(dir, 0755);
    char *p = path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
    free(p);
}

static void test_gemma2(void) {
    char *dir = path_join(tmp, "gemma2");
    write_cfg(dir, "{\"model_type\": \"gemma2\", \"hidden_size\": 8, \"num_hidden_layers\": 1, "
                   "\"intermediate_size\": 16, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
                   "\"head_dim\": 4, \"rms_norm_eps\": 1e-6, \"vocab_size\": 10, \"sliding_window\": 4096, "
                   "\"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0, \"tie_word_embeddings\": true}");
    static float zeros[160], half[8] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    owl_weight t[] = {
        {"model.embed_tokens.weight", OWL_F32, 2, {8, 10}, zeros, 320},
        {"model.layers.0.input_layernorm.weight", OWL_F32, 1, {8}, half, 32},
        {"model.layers.0.post_attention_layernorm.weight", OWL_F32, 1, {8}, half, 32},
        {"model.layers.0.pre_feedforward_layernorm.weight", OWL_F32, 1, {8}, half, 32},
        {"model.layers.0.post_feedforward_layernorm.weight", OWL_F32, 1, {8}, half, 32},
        {"model.layers.0.self_attn.q_proj.weight", OWL_F32, 2, {8, 8}, zeros, 256},
        {"model.norm.weight", OWL_F32, 1, {8}, half, 32},
    };
    char *st = path_join(dir, "model.safetensors");
    CHECKF(owl_safetensors_write(st, t, sizeof t / sizeof t[0], NULL) == OWL_OK, "%s", owl_last_error());
    owl_weights ws;
    owl_status s = owl_hf_dir_read(dir, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (!s) {
        const owl_weight *a = owl_weights_find(&ws, "blk.0.post_attention_norm.weight");
        const owl_weight *b = owl_weights_find(&ws, "blk.0.ffn_norm.weight");
        const owl_weight *c = owl_weights_find(&ws, "blk.0.post_ffw_norm.weight");
        const owl_weight *o = owl_weights_find(&ws, "output_norm.weight");
        CHECK(a && b && c && o && owl_weights_find(&ws, "blk.0.attn_norm.weight") &&
              owl_weights_find(&ws, "blk.0.attn_q.weight"));
        CHECK(o && o->dtype == OWL_F32 && ((const float *)o->data)[3] == 1.5f); /* Gemma: 1 + w */
        owl_str arch;
        uint64_t kl = 0, sw = 0;
        double cap = 0;
        CHECK(owl_meta_get_str(&ws.meta, "general.architecture", &arch) && owl_str_eq(arch, "gemma2"));
        CHECK(owl_meta_get_u64(&ws.meta, "gemma2.attention.key_length", &kl) && kl == 4);
        CHECK(owl_meta_get_u64(&ws.meta, "gemma2.attention.sliding_window", &sw) && sw == 4096);
        CHECK(owl_meta_get_f64(&ws.meta, "gemma2.final_logit_softcapping", &cap) && cap == 30.0);
        owl_weights_free(&ws);
    }
    owl_model *m;
    s = owl_model_load(dir, NULL, &m);
    /* gemma2 runs now (test_families); this one-matrix directory misses the rest */
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "missing tensor blk.0.attn_k.weight"), "%s", owl_last_error());
    free(st);
    free(dir);
}

/* Reads a one-layer directory of the family and checks its tensor names. */
static void family_case(const char *name, const char *cfg, const char *const (*names)[2], size_t n, const char *arch,
                        bool plus_one) {
    char *dir = path_join(tmp, name);
    write_cfg(dir, cfg);
    static float v[8] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    owl_weight t[16];
    for (size_t i = 0; i < n; i++) t[i] = (owl_weight){names[i][0], OWL_F32, 1, {8}, v, 32};
    char *st = path_join(dir, "model.safetensors");
    CHECKF(owl_safetensors_write(st, t, n, NULL) == OWL_OK, "%s", owl_last_error());
    owl_weights ws;
    owl_status s = owl_hf_dir_read(dir, &ws);
    CHECKF(s == OWL_OK, "%s: %s", name, owl_last_error());
    if (!s) {
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (!names[i][1]) continue; /* dropped */
            kept++;
            const owl_weight *w = owl_weights_find(&ws, names[i][1]);
            CHECKF(w != NULL, "%s: %s should read as %s", name, names[i][0], names[i][1]);
            size_t l = strlen(names[i][1]);
            bool norm = l > 11 && strcmp(names[i][1] + l - 11, "norm.weight") == 0;
            if (w) CHECKF(((const float *)w->data)[0] == (norm && plus_one ? 1.25f : 0.25f), "%s: %s value", name, names[i][1]);
        }
        CHECKF(ws.n == kept, "%s: %zu tensors, expected %zu", name, ws.n, kept);
        owl_str a;
        CHECK(owl_meta_get_str(&ws.meta, "general.architecture", &a) && owl_str_eq(a, arch));
        owl_weights_free(&ws);
    }
    free(st);
    free(dir);
}

#define BASE_CFG "\"hidden_size\": 8, \"num_hidden_layers\": 1, \"intermediate_size\": 16, \"num_attention_heads\": 2"

static void test_families(void) {
    static const char *const qwen3[][2] = {
        {"model.layers.0.self_attn.q_norm.weight", "blk.0.attn_q_norm.weight"},
        {"model.layers.0.self_attn.k_norm.weight", "blk.0.attn_k_norm.weight"},
        {"model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"},
        {"lm_head.weight", "output.weight"}};
    family_case("qwen3", "{\"model_type\": \"qwen3\", " BASE_CFG ", \"tie_word_embeddings\": false}", qwen3, 4, "qwen3",
                false);
    static const char *const phi3[][2] = {
        {"model.layers.0.self_attn.qkv_proj.weight", "blk.0.attn_qkv.weight"},
        {"model.layers.0.mlp.gate_up_proj.weight", "blk.0.ffn_up.weight"},
        {"model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight"},
        {"model.layers.0.self_attn.rotary_emb.inv_freq", NULL}};
    family_case("phi3", "{\"model_type\": \"phi3\", " BASE_CFG "}", phi3, 4, "phi3", false);
    static const char *const olmo2[][2] = {
        {"model.layers.0.post_attention_layernorm.weight", "blk.0.post_attention_norm.weight"},
        {"model.layers.0.post_feedforward_layernorm.weight", "blk.0.post_ffw_norm.weight"},
        {"model.layers.0.self_attn.q_norm.weight", "blk.0.attn_q_norm.weight"}};
    family_case("olmo2", "{\"model_type\": \"olmo2\", " BASE_CFG "}", olmo2, 3, "olmo2", false);
    static const char *const gemma[][2] = {{"model.norm.weight", "output_norm.weight"},
                                           {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
                                           {"model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"},
                                           {"lm_head.weight", NULL}}; /* tied: dropped */
    family_case("gemma", "{\"model_type\": \"gemma\", " BASE_CFG ", \"tie_word_embeddings\": true}", gemma, 4, "gemma",
                true);
    /* Gemma 3 as the multimodal wrapper writes it: text_config, language_model prefix, vision tower dropped */
    static const char *const gemma3[][2] = {
        {"language_model.model.layers.0.self_attn.k_norm.weight", "blk.0.attn_k_norm.weight"},
        {"language_model.model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"},
        {"language_model.model.embed_tokens.weight", "token_embd.weight"},
        {"vision_tower.vision_model.post_layernorm.weight", NULL}};
    family_case("gemma3", "{\"model_type\": \"gemma3\", \"text_config\": {\"model_type\": \"gemma3_text\", " BASE_CFG
                          ", \"head_dim\": 4}}", gemma3, 4, "gemma3", true);
}

/* ---- bad directories ---- */

static void bad_cfg(const char *name, const char *json, const char *want1, const char *want2) {
    char *dir = path_join(tmp, name);
    write_cfg(dir, json);
    owl_weights ws;
    owl_status s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), want1) && (!want2 || strstr(owl_last_error(), want2)),
           "%s: status %d, error '%s' (wanted '%s' '%s')", name, (int)s, owl_last_error(), want1, want2 ? want2 : "");
    if (!s) owl_weights_free(&ws);
    free(dir);
}

#define CFG(extra) \
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"intermediate_size\": 96, " \
    "\"num_attention_heads\": 4" extra "}"

static void test_bad(void) {
    bad_cfg("no_hidden", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"intermediate_size\": 96, "
                         "\"num_attention_heads\": 4}", "hidden_size", "missing");
    bad_cfg("neg_heads", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                         "\"intermediate_size\": 96, \"num_attention_heads\": -4}", "num_attention_heads", "-4");
    bad_cfg("zero_layers", "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 0, "
                           "\"intermediate_size\": 96, \"num_attention_heads\": 4}", "num_hidden_layers", "0");
    bad_cfg("huge_dim", "{\"model_type\": \"llama\", \"hidden_size\": 1e15, \"num_hidden_layers\": 2, "
                        "\"intermediate_size\": 96, \"num_attention_heads\": 4}", "hidden_size", NULL);
    bad_cfg("str_dim", "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"num_hidden_layers\": 2, "
                       "\"intermediate_size\": 96, \"num_attention_heads\": 4}", "hidden_size", "integer");
    bad_cfg("indivisible", "{\"model_type\": \"llama\", \"hidden_size\": 65, \"num_hidden_layers\": 2, "
                           "\"intermediate_size\": 96, \"num_attention_heads\": 4}", "hidden_size 65", "multiple");
    bad_cfg("kv", CFG(", \"num_key_value_heads\": 3"), "num_key_value_heads", "3");
    bad_cfg("eps", CFG(", \"rms_norm_eps\": -1"), "rms_norm_eps", NULL);
    bad_cfg("theta", CFG(", \"rope_theta\": 0"), "rope_theta", NULL);
    bad_cfg("rope_type", CFG(", \"rope_scaling\": {\"rope_type\": \"mrope\"}"), "mrope", NULL);
    bad_cfg("unknown_type", "{\"model_type\": \"bert\", \"hidden_size\": 64}", "model_type 'bert'", NULL);
    bad_cfg("no_type", "{\"hidden_size\": 64}", "model_type", NULL);
    bad_cfg("not_json", "{\"model_type\": llama", "config.json", "JSON");
    bad_cfg("array", "[1, 2]", "config.json", "object");
    bad_cfg("no_weights", CFG(""), "model.safetensors", NULL);
    /* not a model directory at all */
    owl_weights ws;
    CHECK(owl_hf_dir_read(tmp, &ws) != OWL_OK && strstr(owl_last_error(), "config.json"));

    /* an index naming a missing shard, an index that is not JSON */
    char *dir = path_join(tmp, "missing_shard");
    write_cfg(dir, CFG(""));
    char *ix = path_join(dir, "model.safetensors.index.json");
    FILE *f = fopen(ix, "w");
    if (f) {
        fputs("{\"weight_map\": {\"model.norm.weight\": \"model-00002-of-00002.safetensors\"}}", f);
        fclose(f);
    }
    owl_status s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "model-00002-of-00002.safetensors") &&
               strstr(owl_last_error(), "does not exist"),
           "%s", owl_last_error());
    f = fopen(ix, "w");
    if (f) {
        fputs("{\"weight_map\": ", f);
        fclose(f);
    }
    s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "index.json") && strstr(owl_last_error(), "JSON"), "%s",
           owl_last_error());
    f = fopen(ix, "w");
    if (f) {
        fputs("{\"weight_map\": {\"model.norm.weight\": \"../escape.safetensors\"}}", f);
        fclose(f);
    }
    s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "escape"), "%s", owl_last_error());
    free(ix);
    free(dir);

    /* tensors that do not fit the config; untied config without lm_head; unknown tensor */
    dir = path_join(tmp, "mismatch");
    int rc = run_cmd("%s %s --out '%s' --dim 64 --tied >/dev/null", test_python(), source_path("tests/reference/make_hf.py"),
                     dir);
    CHECK(rc == 0);
    write_cfg(dir, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                   "\"intermediate_size\": 96, \"num_attention_heads\": 4, \"tie_word_embeddings\": true}");
    owl_model *m;
    s = owl_model_load(dir, NULL, &m);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "token_embd.weight") && strstr(owl_last_error(), "shape"), "%s",
           owl_last_error());
    write_cfg(dir, CFG(", \"tie_word_embeddings\": false"));
    s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "lm_head.weight"), "%s", owl_last_error());
    free(dir);

    dir = path_join(tmp, "unknown_tensor");
    write_cfg(dir, CFG(""));
    static float z[4];
    owl_weight t[] = {{"model.layers.0.mlp.experts.0.w1.weight", OWL_F32, 1, {4}, z, 16}};
    char *st = path_join(dir, "model.safetensors");
    owl_safetensors_write(st, t, 1, NULL);
    s = owl_hf_dir_read(dir, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "experts.0.w1") && strstr(owl_last_error(), "GGUF name"), "%s",
           owl_last_error());
    free(st);
    free(dir);
}

/* ---- tokenizer.json directories ---- */

/* llama.cpp's vectors: case i of .inp (cases end with a separator line)
 * and the ids on line i of .out; tokenized without BOS or special parsing. */
static int check_vectors(const owl_tokenizer *tok, const char *base) {
    char rel[256];
    size_t ni, no;
    char *inp = NULL, *out = NULL;
    snprintf(rel, sizeof rel, "vectors/llama.cpp/%s.inp", base);
    if (owl_read_file(testdata_path(rel), &inp, &ni) != OWL_OK) return -1;
    snprintf(rel, sizeof rel, "vectors/llama.cpp/%s.out", base);
    if (owl_read_file(testdata_path(rel), &out, &no) != OWL_OK) {
        free(inp);
        return -1;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    int bad = 0, n = 0;
    char *s = inp, *line = out;
    for (char *e; (e = strstr(s, sep)) != NULL; s = e + strlen(sep), n++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int32_t *ids;
        size_t nid;
        if (owl_tokenize(tok, s, (size_t)(e - s), false, false, &ids, &nid) != OWL_OK) {
            bad++;
        } else {
            size_t k = 0;
            bool same = true;
            for (char *q = line; *q; k++) {
                char *end;
                long x = strtol(q, &end, 10);
                if (end == q) break;
                same = same && k < nid && ids[k] == x;
                q = end;
            }
            if (!same || k != nid) bad++;
            free(ids);
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(inp);
    free(out);
    CHECKF(n > 40, "%s: only %d cases", base, n);
    return bad;
}

static char *tok_dir(const char *name, const char *tokenizer, const char *args) {
    char *dir = path_join(tmp, name);
    int rc = run_cmd("%s %s --out '%s' %s >/dev/null && cp '%s'/tokenizer.json '%s'/tokenizer_config.json '%s'/",
                     test_python(), source_path("tests/reference/make_hf.py"), dir, args,
                     testdata_path(tokenizer), testdata_path(tokenizer), dir);
    CHECKF(rc == 0, "making %s failed", name);
    return dir;
}

static void tokenizer_case(const char *name, const char *tokenizer, const char *args, const char *vectors,
                           const char *pre, const char *tmpl) {
    char *dir = tok_dir(name, tokenizer, args);
    owl_model *m;
    owl_status s = owl_model_load(dir, NULL, &m);
    CHECKF(s == OWL_OK, "%s: %s", name, owl_last_error());
    if (!s) {
        const owl_tokenizer *tok = owl_model_tokenizer(m);
        CHECK(tok != NULL);
        int bad = tok ? check_vectors(tok, vectors) : -1;
        CHECKF(bad == 0, "%s: %d llama.cpp vectors differ (from the directory)", name, bad);
        owl_model_free(m);
    }
    char gp[4200];
    snprintf(gp, sizeof gp, "%s.gguf", dir);
    s = owl_hf_convert(dir, gp, OWL_F16);
    CHECKF(s == OWL_OK, "%s: %s", name, owl_last_error());
    owl_weights ws;
    if (!s && owl_gguf_read(gp, &ws) == OWL_OK) {
        owl_str v;
        CHECK(owl_meta_get_str(&ws.meta, "tokenizer.ggml.model", &v) && owl_str_eq(v, "gpt2"));
        CHECK(owl_meta_get_str(&ws.meta, "tokenizer.ggml.pre", &v) && owl_str_eq(v, pre));
        char rel[128], *want = NULL;
        size_t wl = 0;
        snprintf(rel, sizeof rel, "templates/hf/%s.chat_template.jinja", tmpl);
        CHECK(owl_read_file(testdata_path(rel), &want, &wl) == OWL_OK);
        CHECKF(owl_meta_get_str(&ws.meta, "tokenizer.chat_template", &v) && want && v.len == wl &&
                   memcmp(v.ptr, want, wl) == 0,
               "%s: chat template differs from %s", name, rel);
        free(want);
        owl_tokenizer *tok;
        s = owl_tokenizer_from_meta(&ws.meta, &tok);
        CHECKF(s == OWL_OK, "%s", owl_last_error());
        if (!s) {
            int bad = check_vectors(tok, vectors);
            CHECKF(bad == 0, "%s: %d llama.cpp vectors differ (from the converted GGUF)", name, bad);
            owl_tokenizer_free(tok);
        }
        owl_weights_free(&ws);
    } else {
        CHECKF(0, "%s: converted file unreadable: %s", name, owl_last_error());
    }
    free(dir);
}

static void test_tokenizers(void) {
    tokenizer_case("qwen3_tok", "tokenizers/qwen3", "--arch qwen2 --tied", "ggml-vocab-qwen2.gguf", "qwen2", "qwen3");
    tokenizer_case("llama3_tok", "tokenizers/llama3", "--heads 8 --kv-heads 2", "ggml-vocab-llama-bpe.gguf",
                   "llama-bpe", "llama3");
    /* SentencePiece-style tokenizer.json (Mistral): the model loads it as is;
     * it has no GGUF gpt2 form, so convert fails naming it */
    char *dir = tok_dir("mistral_tok", "tokenizers/mistral", "--arch mistral");
    owl_model *m;
    owl_status s = owl_model_load(dir, NULL, &m);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (!s) {
        owl_tokenizer *ref;
        const owl_tokenizer *tok = owl_model_tokenizer(m);
        if (owl_tokenizer_json_load(testdata_path("tokenizers/mistral/tokenizer.json"), &ref) == OWL_OK) {
            const char *t = "Hello world, owls see at night.";
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            CHECK(tok && owl_tokenize(tok, t, strlen(t), true, false, &a, &na) == OWL_OK &&
                  owl_tokenize(ref, t, strlen(t), true, false, &b, &nb) == OWL_OK && na == nb && na > 3 &&
                  memcmp(a, b, na * sizeof *a) == 0);
            free(a);
            free(b);
            owl_tokenizer_free(ref);
        }
        owl_model_free(m);
    }
    char *gp = path_join(tmp, "mistral_tok.gguf");
    s = owl_hf_convert(dir, gp, OWL_F16);
    CHECKF(s == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "tokenizer.json"), "%s", owl_last_error());
    CHECK(!owl_file_exists(gp));
    free(gp);
    free(dir);
}

/* ---- the Q/K permutation itself ---- */

static void test_permute(void) {
    /* 2 heads of 4 rows, 1 column: rows h*4 + {0,1,2,3} = (a0, a1, b0, b1) -> (a0, b0, a1, b1) */
    float src[8] = {0, 1, 2, 3, 10, 11, 12, 13}, dst[8];
    owl_hf_permute_rows(src, dst, 2, 4, 1);
    float want[8] = {0, 2, 1, 3, 10, 12, 11, 13};
    CHECK(memcmp(dst, want, sizeof want) == 0);
}

int main(void) {
    tmp = test_tmpdir("hf");
    test_permute();
    test_wp();
    test_random();
    test_gemma2();
    test_families();
    test_tokenizers();
    test_bad();
    return test_finish("test_hf");
}
