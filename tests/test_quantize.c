/* eval/quant_mix.c and eval/quantize.c: the per-tensor types of every mix
 * equal those llama.cpp chose in the wp files; the rules on a larger made-up
 * model (layer pattern, GQA, untied output, row-size fallbacks); written
 * files read back with the same bytes as a serial row-by-row quantization;
 * requantizing; failures (bad rows, unwritable path) leave nothing behind. */
#include "eval/eval.h"
#include "tensor/quant.h"
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The type of every tensor as owl's mix rules choose it for an F32 copy of
 * each wp-<MIX>.gguf equals the type llama.cpp gave it there. */
static void check_wp_files(void) {
    static const char *mixes[] = {"Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0",
                                  "Q4_K_M", "Q4_1", "Q4_0", "Q3_K_M", "Q2_K"};
    for (size_t k = 0; k < sizeof mixes / sizeof mixes[0]; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/wp/wp-%s.gguf", mixes[k]);
        owl_weights ws;
        if (owl_gguf_read(testdata_path(rel), &ws) != OWL_OK) {
            CHECKF(false, "%s: %s", rel, owl_last_error());
            continue;
        }
        const owl_quant_mix *mix = owl_eval_mix_find(mixes[k]);
        CHECK(mix != NULL);
        uint64_t ft = 0;
        CHECK(owl_meta_get_u64(&ws.meta, "general.file_type", &ft));
        CHECKF(mix && ft == mix->file_type, "%s: file_type %llu, owl's %u", rel, (unsigned long long)ft,
               mix ? mix->file_type : 0);
        owl_quant_plan_info info;
        owl_eval_plan_info(&ws, &info);
        CHECK(info.n_attn_v == 4 && info.n_ffn_down == 4 && info.n_gqa == 2 && !info.has_output);
        owl_quant_plan_state st = {0};
        int mismatches = 0;
        for (size_t i = 0; mix && i < ws.n; i++) {
            owl_weight w = ws.w[i];
            w.dtype = OWL_F32; /* the original the file was made from */
            owl_dtype t = owl_eval_mix_type(mix, &info, &st, &w, NULL);
            if (t != ws.w[i].dtype) {
                mismatches++;
                fprintf(stderr, "%s: %s: owl %s, llama.cpp %s\n", rel, w.name, owl_dtype_name(t),
                        owl_dtype_name(ws.w[i].dtype));
            }
        }
        CHECKF(mismatches == 0, "%s: %d tensors differ", rel, mismatches);
        owl_weights_free(&ws);
    }
}

/* A made-up table of shapes only (no data): n_layers layers of a GQA model. */
static void add_shape(owl_weights *ws, const char *name, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    CHECK(owl_weights_add(ws, name, OWL_F32, ne1 ? 2 : 1, ne, NULL, 0) == OWL_OK);
}

static void make_shapes(owl_weights *ws, int n_layers, int64_t dim, bool untied, uint32_t heads, uint32_t kv) {
    CHECK(owl_weights_init(ws, "shapes", "gguf") == OWL_OK);
    CHECK(owl_meta_set_str(&ws->meta, "general.architecture", "llama", 5) == OWL_OK);
    CHECK(owl_meta_set_u32(&ws->meta, "llama.attention.head_count", heads) == OWL_OK);
    CHECK(owl_meta_set_u32(&ws->meta, "llama.attention.head_count_kv", kv) == OWL_OK);
    add_shape(ws, "token_embd.weight", dim, 1000);
    char name[64];
    static const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < n_layers; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        add_shape(ws, name, dim, 0);
        for (size_t m = 0; m < 7; m++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[m]);
            add_shape(ws, name, dim, 64);
        }
    }
    add_shape(ws, "output_norm.weight", dim, 0);
    if (untied) add_shape(ws, "output.weight", dim, 1000);
}

/* Types of one mix over a made-up table, by name. */
static owl_dtype type_of(const char *mixname, owl_weights *ws, const char *tensor) {
    const owl_quant_mix *mix = owl_eval_mix_find(mixname);
    owl_quant_plan_info info;
    owl_eval_plan_info(ws, &info);
    owl_quant_plan_state st = {0};
    owl_dtype found = (owl_dtype)-1;
    for (size_t i = 0; i < ws->n; i++) {
        owl_dtype t = owl_eval_mix_type(mix, &info, &st, &ws->w[i], NULL);
        if (strcmp(ws->w[i].name, tensor) == 0) found = t;
    }
    return found;
}

static void check_rules(void) {
    owl_weights ws;
    make_shapes(&ws, 32, 4096, true, 32, 4);
    /* more bits in layers i < 4, i >= 28 and (i - 4) % 3 == 2 */
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int l = 0; l < 32; l++) {
        bool m = false;
        for (size_t j = 0; j < sizeof more / sizeof more[0]; j++) m |= more[j] == l;
        char v[64], d[64], q[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        snprintf(d, sizeof d, "blk.%d.ffn_down.weight", l);
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", l);
        CHECKF(type_of("Q4_K_M", &ws, v) == (m ? OWL_Q6_K : OWL_Q4_K), "Q4_K_M layer %d attn_v", l);
        CHECKF(type_of("q5_k_m", &ws, d) == (m ? OWL_Q6_K : OWL_Q5_K), "Q5_K_M layer %d ffn_down", l);
        CHECK(type_of("Q4_K_M", &ws, q) == OWL_Q4_K);
        CHECK(type_of("Q4_K_S", &ws, v) == (l < 4 ? OWL_Q5_K : OWL_Q4_K));
        CHECK(type_of("Q4_K_S", &ws, d) == (l < 4 ? OWL_Q5_K : OWL_Q4_K));
        CHECK(type_of("Q3_K_M", &ws, v) == (l < 2 ? OWL_Q5_K : OWL_Q4_K));
        CHECK(type_of("Q3_K_M", &ws, d) == (l < 2 ? OWL_Q5_K : OWL_Q4_K));
        CHECK(type_of("Q2_K", &ws, v) == OWL_Q4_K); /* 8 query heads per KV head */
        CHECK(type_of("Q4_K", &ws, v) == OWL_Q4_K); /* pure */
    }
    CHECK(type_of("Q3_K_L", &ws, "blk.5.attn_output.weight") == OWL_Q5_K);
    CHECK(type_of("Q3_K_S", &ws, "blk.5.attn_output.weight") == OWL_Q3_K);
    CHECK(type_of("Q2_K", &ws, "blk.5.attn_output.weight") == OWL_Q3_K);
    CHECK(type_of("Q2_K", &ws, "blk.5.ffn_up.weight") == OWL_Q2_K);
    /* untied: the output matrix takes Q6_K, the embeddings the mix's type */
    CHECK(type_of("Q4_K_M", &ws, "output.weight") == OWL_Q6_K);
    CHECK(type_of("Q4_K_M", &ws, "token_embd.weight") == OWL_Q4_K);
    CHECK(type_of("Q8_0", &ws, "output.weight") == OWL_Q8_0);
    CHECK(type_of("Q4_0", &ws, "output.weight") == OWL_Q6_K);
    CHECK(type_of("F16", &ws, "output.weight") == OWL_F16);
    CHECK(type_of("BF16", &ws, "blk.0.ffn_down.weight") == OWL_BF16);
    CHECK(type_of("Q4_K_M", &ws, "blk.0.attn_norm.weight") == OWL_F32);
    CHECK(type_of("F16", &ws, "output_norm.weight") == OWL_F32);
    owl_weights_free(&ws);

    /* rows of 96: no 256-blocks, so the K types fall back */
    make_shapes(&ws, 4, 96, true, 8, 8);
    CHECK(type_of("Q4_K_M", &ws, "blk.0.attn_q.weight") == OWL_Q5_0);
    CHECK(type_of("Q4_K_M", &ws, "blk.3.attn_v.weight") == OWL_Q8_0); /* Q6_K */
    CHECK(type_of("Q5_K_S", &ws, "blk.0.ffn_up.weight") == OWL_Q5_1);
    CHECK(type_of("Q2_K", &ws, "blk.0.ffn_up.weight") == OWL_Q4_0);
    CHECK(type_of("Q4_K_M", &ws, "output.weight") == OWL_Q8_0);
    CHECK(type_of("Q4_0", &ws, "blk.0.ffn_up.weight") == OWL_Q4_0);
    const owl_quant_mix *mix = owl_eval_mix_find("Q4_K");
    bool fb = false;
    owl_quant_plan_state st = {0};
    owl_quant_plan_info info;
    owl_eval_plan_info(&ws, &info);
    owl_eval_mix_type(mix, &info, &st, &ws.w[1 + 1], &fb);
    CHECK(fb);
    owl_weights_free(&ws);
    /* rows of 48: not even 32-blocks */
    make_shapes(&ws, 2, 48, false, 8, 8);
    CHECK(type_of("Q4_K", &ws, "blk.0.attn_q.weight") == OWL_F16);
    CHECK(type_of("Q4_0", &ws, "blk.0.attn_q.weight") == OWL_DTYPE_COUNT);
    CHECK(type_of("Q8_0", &ws, "blk.0.attn_q.weight") == OWL_DTYPE_COUNT);
    owl_weights_free(&ws);

    /* 8 experts (Mixtral-style, experts of layer 1 listed first), fused QKV */
    CHECK(owl_weights_init(&ws, "moe", "gguf") == OWL_OK);
    CHECK(owl_meta_set_str(&ws.meta, "general.architecture", "llama", 5) == OWL_OK);
    CHECK(owl_meta_set_u32(&ws.meta, "llama.expert_count", 8) == OWL_OK);
    add_shape(&ws, "token_embd.weight", 512, 100);
    for (int l = 7; l >= 0; l--) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        add_shape(&ws, name, 512, 64);
        snprintf(name, sizeof name, "blk.%d.attn_k.weight", l);
        add_shape(&ws, name, 512, 64);
        snprintf(name, sizeof name, "blk.%d.attn_output.weight", l);
        add_shape(&ws, name, 512, 64);
        snprintf(name, sizeof name, "blk.%d.attn_qkv.weight", l);
        add_shape(&ws, name, 512, 64);
        snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", l);
        add_shape(&ws, name, 512, 64);
    }
    CHECK(type_of("Q4_K_M", &ws, "blk.3.attn_v.weight") == OWL_Q8_0);
    CHECK(type_of("Q4_K_M", &ws, "blk.3.attn_k.weight") == OWL_Q8_0);
    CHECK(type_of("Q4_K_M", &ws, "blk.3.attn_output.weight") == OWL_Q5_K);
    CHECK(type_of("Q5_K_M", &ws, "blk.3.attn_output.weight") == OWL_Q5_K);
    CHECK(type_of("Q4_K_M", &ws, "blk.3.attn_qkv.weight") == OWL_Q5_K);
    CHECK(type_of("Q5_K_M", &ws, "blk.3.attn_qkv.weight") == OWL_Q6_K);
    CHECK(type_of("Q3_K_L", &ws, "blk.3.attn_qkv.weight") == OWL_Q4_K);
    CHECK(type_of("Q4_K_S", &ws, "blk.3.attn_qkv.weight") == OWL_Q4_K);
    /* the layer comes from the name: layers 0 (i < 8/8), 3 and 6 ((i - 1) % 3 == 2), 7 (>= 7) */
    for (int l = 0; l < 8; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", l);
        bool m = l == 0 || l == 3 || l == 6 || l == 7;
        CHECKF(type_of("Q4_K_M", &ws, name) == (m ? OWL_Q6_K : OWL_Q4_K), "MoE ffn_down layer %d", l);
    }
    owl_weights_free(&ws);

    CHECK(owl_eval_mix_find("Q4_K_X") == NULL && owl_eval_mix_find("") == NULL && owl_eval_mix_find(NULL) == NULL);
    /* the list of names is the table */
    char names[512];
    snprintf(names, sizeof names, "%s", owl_eval_mix_names());
    int n_names = 0;
    for (char *save = NULL, *tok = strtok_r(names, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        const owl_quant_mix *m = owl_eval_mix_find(tok);
        CHECKF(m && strcmp(m->name, tok) == 0, "listed mix '%s'", tok);
        n_names++;
    }
    CHECK(n_names == 20);
    static const char *types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
                                  "F16",  "BF16", "F32",  "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M",
                                  "Q3_K_S", "Q3_K_L"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) CHECKF(owl_eval_mix_find(types[i]), "%s", types[i]);
    /* routers and the like stay as they are */
    CHECK(owl_weights_init(&ws, "keep", "gguf") == OWL_OK);
    add_shape(&ws, "blk.0.ffn_gate_inp.weight", 256, 8);
    add_shape(&ws, "pos_embd.weight", 256, 8);
    CHECK(type_of("Q4_K_M", &ws, "blk.0.ffn_gate_inp.weight") == OWL_F32);
    CHECK(type_of("Q8_0", &ws, "pos_embd.weight") == OWL_F32);
    owl_weights_free(&ws);
}

/* A small model with data: F32 (or F16) matrices of random values. */
typedef struct tiny {
    owl_weights ws;
    float *data[4];
    uint16_t *half;
} tiny;

static void make_tiny(tiny *t, owl_dtype mat_type, int64_t cols) {
    memset(t, 0, sizeof *t);
    uint64_t seed = 7;
    CHECK(owl_weights_init(&t->ws, "tiny", "gguf") == OWL_OK);
    CHECK(owl_meta_set_str(&t->ws.meta, "general.architecture", "llama", 5) == OWL_OK);
    CHECK(owl_meta_set_str(&t->ws.meta, "general.name", "tiny", 4) == OWL_OK);
    CHECK(owl_meta_set_u32(&t->ws.meta, "general.file_type", 0) == OWL_OK);
    CHECK(owl_meta_set_u32(&t->ws.meta, "llama.block_count", 1) == OWL_OK);
    static const char *names[4] = {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_v.weight",
                                   "blk.0.ffn_down.weight"};
    int64_t rows[4] = {300, 1, 64, 200};
    for (int i = 0; i < 4; i++) {
        int64_t n = cols * rows[i];
        t->data[i] = malloc(sizeof(float) * (size_t)n);
        for (int64_t j = 0; j < n; j++) t->data[i][j] = test_rand_f32(&seed) * (i == 3 ? 0.1f : 1.0f);
        int64_t ne[2] = {cols, rows[i]};
        const void *d = t->data[i];
        uint64_t nbytes = sizeof(float) * (uint64_t)n;
        if (i != 1 && mat_type != OWL_F32) {
            uint64_t b = 0;
            CHECK(owl_dtype_bytes(mat_type, (uint64_t)n, &b));
            void *q = malloc(b);
            CHECK(owl_from_f32(mat_type, t->data[i], q, n) == OWL_OK);
            CHECK(owl_to_f32(mat_type, q, t->data[i], n) == OWL_OK); /* the values the table holds */
            free(t->data[i]);
            t->data[i] = q;
            d = q;
            nbytes = b;
        }
        CHECK(owl_weights_add(&t->ws, names[i], i == 1 ? OWL_F32 : mat_type, i == 1 ? 1 : 2, ne, d, nbytes) ==
              OWL_OK);
    }
}

static void free_tiny(tiny *t) {
    owl_weights_free(&t->ws);
    for (int i = 0; i < 4; i++) free(t->data[i]);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Every converted tensor of out equals the serial conversion of in's rows. */
static void check_written(const char *path, const owl_weights *in, const char *mixname) {
    owl_weights out;
    if (owl_gguf_read(path, &out) != OWL_OK) {
        CHECKF(false, "%s: %s", path, owl_last_error());
        return;
    }
    const owl_quant_mix *mix = owl_eval_mix_find(mixname);
    uint64_t v = 0;
    CHECK(owl_meta_get_u64(&out.meta, "general.file_type", &v) && v == mix->file_type);
    CHECK(owl_meta_get_u64(&out.meta, "general.quantization_version", &v) && v == 2);
    owl_str s;
    CHECK(owl_meta_get_str(&out.meta, "general.name", &s) && owl_str_eq(s, "tiny"));
    CHECK(owl_meta_get_u64(&out.meta, "llama.block_count", &v) && v == 1);
    CHECK(out.n == in->n);
    owl_quant_plan_info info;
    owl_eval_plan_info(in, &info);
    owl_quant_plan_state st = {0};
    for (size_t i = 0; i < in->n && i < out.n; i++) {
        const owl_weight *a = &in->w[i], *b = &out.w[i];
        owl_dtype t = owl_eval_mix_type(mix, &info, &st, a, NULL);
        CHECK(strcmp(a->name, b->name) == 0 && b->dtype == t && b->n_dims == a->n_dims && b->ne[0] == a->ne[0]);
        if (t == a->dtype) {
            CHECK(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0);
            continue;
        }
        int64_t cols = a->ne[0], rows = owl_weight_nelem(a) / cols;
        uint64_t in_row = 0, out_row = 0;
        CHECK(owl_dtype_bytes(a->dtype, (uint64_t)cols, &in_row) && owl_dtype_bytes(t, (uint64_t)cols, &out_row));
        float *f = malloc(sizeof(float) * (size_t)cols);
        uint8_t *q = malloc(out_row);
        int bad = 0;
        for (int64_t r = 0; r < rows; r++) {
            CHECK(owl_to_f32(a->dtype, (const uint8_t *)a->data + r * in_row, f, cols) == OWL_OK);
            CHECK(owl_from_f32(t, f, q, cols) == OWL_OK);
            bad += memcmp(q, (const uint8_t *)b->data + r * out_row, out_row) != 0;
        }
        CHECKF(bad == 0, "%s %s: %d rows differ from the serial conversion", mixname, a->name, bad);
        free(f);
        free(q);
    }
    owl_weights_free(&out);
}

static void check_quantize(void) {
    const char *dir = test_tmpdir("quantize");
    char *out = path_join(dir, "out.gguf");
    tiny t;
    make_tiny(&t, OWL_F32, 256);
    static const char *mixes[] = {"Q8_0", "Q4_K_M", "Q2_K", "F16", "Q5_1"};
    for (size_t k = 0; k < 5; k++) {
        owl_quantize_params qp = {.mix = owl_eval_mix_find(mixes[k])};
        owl_quantize_stats qs;
        CHECKF(owl_eval_quantize(&t.ws, out, &qp, &qs) == OWL_OK, "%s: %s", mixes[k], owl_last_error());
        CHECK(qs.n_tensors == 4 && qs.n_quantized == 3 && qs.n_fallback == 0 && qs.out_bytes < qs.in_bytes);
        check_written(out, &t.ws, mixes[k]);
    }
    free_tiny(&t);

    /* F16 and BF16 inputs */
    make_tiny(&t, OWL_F16, 256);
    owl_quantize_params qp = {.mix = owl_eval_mix_find("Q4_K_M")};
    CHECK(owl_eval_quantize(&t.ws, out, &qp, NULL) == OWL_OK);
    check_written(out, &t.ws, "Q4_K_M");
    free_tiny(&t);

    /* already quantized: refused unless allowed */
    make_tiny(&t, OWL_Q8_0, 256);
    unlink(out);
    qp.mix = owl_eval_mix_find("Q4_0");
    CHECK(owl_eval_quantize(&t.ws, out, &qp, NULL) == OWL_ERR_UNSUPPORTED);
    CHECK(strstr(owl_last_error(), "--allow-requantize") && strstr(owl_last_error(), "token_embd.weight"));
    CHECK(access(out, F_OK) != 0);
    qp.allow_requantize = true;
    CHECK(owl_eval_quantize(&t.ws, out, &qp, NULL) == OWL_OK);
    check_written(out, &t.ws, "Q4_0");
    /* tensors that keep their type are copied: no requantizing needed */
    qp.allow_requantize = false;
    qp.mix = owl_eval_mix_find("Q8_0");
    CHECK(owl_eval_quantize(&t.ws, out, &qp, NULL) == OWL_OK);
    check_written(out, &t.ws, "Q8_0");
    free_tiny(&t);

    /* rows that do not divide into blocks */
    make_tiny(&t, OWL_F32, 48);
    unlink(out);
    qp.mix = owl_eval_mix_find("Q8_0");
    CHECK(owl_eval_quantize(&t.ws, out, &qp, NULL) == OWL_ERR_UNSUPPORTED);
    CHECK(strstr(owl_last_error(), "token_embd.weight") && strstr(owl_last_error(), "48"));
    CHECK(count_files(dir) == 0);
    free_tiny(&t);

    /* unwritable path, disk full: nothing left behind */
    make_tiny(&t, OWL_F32, 256);
    char *missing = path_join(dir, "no/such/dir/out.gguf");
    CHECK(owl_eval_quantize(&t.ws, missing, &qp, NULL) == OWL_ERR_IO);
    free(missing);
    CHECK(count_files(dir) == 0);
    /* disk full: tests/e2e_quantize.sh (a fresh process under ulimit -f) */
    CHECK(count_files(dir) == 0);
    free_tiny(&t);
    free(out);
}

int main(void) {
    check_wp_files();
    check_rules();
    check_quantize();
    return test_finish("test_quantize");
}
