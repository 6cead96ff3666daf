/* Gradient check of the fine-tuning backward pass: for random small models
 * (make_model.py) of several families and random non-zero LoRA pairs, the
 * loss and the gradients of every A and B that owl_train_seq computes equal
 * the float64 reference (tests/reference/train_ref.py: llama_ref.py's forward
 * on W + s B A, central finite differences) to relative error < 1e-3 per
 * tensor. Also: the same call twice gives the same bits, the forward-only
 * loss is the same, bad sequences are refused. */
#include "adapt/train.h"
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *PROJ[] = {"q", "k", "v", "o", "gate", "up", "down"};

typedef struct gcase {
    const char *name;
    const char *args;  /* make_model.py arguments */
    bool hf;           /* the reference reads PREFIX.hf (families), owl PREFIX.gguf */
    unsigned targets;
    int rank;
    float alpha;
    int n;
    const char *quant; /* owl quantize the model to this type first (NULL: no) */
    double tol;        /* relative error allowed (0: 1e-3) */
} gcase;

static void run_case(const gcase *gc, uint64_t *rng) {
    const char *dir = test_tmpdir("test_train_grad");
    char prefix[1024], gguf[1100], ref_model[1100], in_path[1100], out_path[1100];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, gc->name);
    snprintf(gguf, sizeof gguf, "%s.gguf", prefix);
    snprintf(ref_model, sizeof ref_model, gc->hf ? "%s.hf" : "%s.gguf", prefix);
    snprintf(in_path, sizeof in_path, "%s.in.json", prefix);
    snprintf(out_path, sizeof out_path, "%s.out.json", prefix);
    int rc = run_cmd("%s %s --out %s %s --no-ref", test_python(), source_path("tests/reference/make_model.py"), prefix,
                     gc->args);
    CHECKF(rc == 0, "%s: make_model.py failed (%d)", gc->name, rc);
    if (rc) return;
    if (gc->quant) { /* both owl and the reference read the quantized file (llama_ref dequantizes it) */
        char q[1200];
        snprintf(q, sizeof q, "%s.%s.gguf", prefix, gc->quant);
        rc = run_cmd("%s quantize %s %s --type %s > /dev/null 2>&1", owl_bin(), gguf, q, gc->quant);
        CHECKF(rc == 0, "%s: owl quantize failed (%d)", gc->name, rc);
        if (rc) return;
        snprintf(gguf, sizeof gguf, "%s", q);
        snprintf(ref_model, sizeof ref_model, "%s", q);
    }
    const double tol = gc->tol > 0 ? gc->tol : 1e-3;
    owl_model *m = NULL;
    owl_status st = owl_model_load(gguf, NULL, &m);
    CHECKF(st == OWL_OK, "%s: load: %s", gc->name, owl_last_error());
    if (st) return;
    owl_lora *lora = NULL;
    st = owl_lora_new(m, gc->targets, gc->rank, gc->alpha, false, &lora);
    CHECKF(st == OWL_OK, "%s: owl_lora_new: %s", gc->name, owl_last_error());
    owl_train *tr = NULL;
    if (!st) st = owl_train_new(m, lora, gc->n + 4, &tr);
    CHECKF(st == OWL_OK, "%s: owl_train_new: %s", gc->name, owl_last_error());
    if (st) {
        owl_lora_free(lora);
        owl_model_free(m);
        return;
    }
    /* random non-zero pairs, tokens, targets */
    const int nt = owl_train_n_tensors(tr);
    for (int i = 0; i < nt; i++) {
        float *p;
        size_t cnt;
        owl_train_tensor(tr, i, &p, NULL, &cnt, NULL, NULL, NULL);
        for (size_t j = 0; j < cnt; j++) p[j] = 0.4f * test_rand_f32(rng);
    }
    const int n = gc->n;
    int32_t tokens[64];
    uint8_t target[64];
    int n_t = 0;
    for (int i = 0; i < n; i++) {
        tokens[i] = 3 + (int32_t)(test_rand_u64(rng) % (uint64_t)(m->hp.n_vocab - 3));
        target[i] = i > 0 && (test_rand_u64(rng) % 10 < 7 || i == n - 1);
        n_t += target[i];
    }
    double loss_sum = 0;
    int count = 0;
    owl_train_zero_grads(tr);
    st = owl_train_seq(tr, tokens, target, n, true, 1.0f / (float)n_t, &loss_sum, &count);
    CHECKF(st == OWL_OK, "%s: owl_train_seq: %s", gc->name, owl_last_error());
    CHECK(count == n_t);
    const size_t np = owl_train_n_params(tr);
    float *g1 = malloc(sizeof(float) * np);
    memcpy(g1, owl_train_grads(tr), sizeof(float) * np);
    /* the same again: the same bits; forward only: the same loss */
    double loss2 = 0, loss3 = 0;
    int c2 = 0;
    owl_train_zero_grads(tr);
    CHECK(owl_train_seq(tr, tokens, target, n, true, 1.0f / (float)n_t, &loss2, &c2) == OWL_OK);
    CHECKF(memcmp(g1, owl_train_grads(tr), sizeof(float) * np) == 0, "%s: gradients differ between two runs", gc->name);
    CHECK(owl_train_seq(tr, tokens, target, n, false, 1.0f, &loss3, &c2) == OWL_OK);
    CHECK(loss2 == loss_sum && loss3 == loss_sum);

    /* the reference */
    json_t *in = json_object(), *jt = json_array(), *jm = json_array(), *pairs = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(jt, json_integer(tokens[i]));
        json_array_append_new(jm, json_integer(target[i]));
    }
    json_object_set_new(in, "tokens", jt);
    json_object_set_new(in, "target", jm);
    json_object_set_new(in, "scale", json_real(lora->w.scale));
    json_object_set_new(in, "rank", json_integer(gc->rank));
    for (int i = 0; i < nt; i += 2) {
        float *a, *b;
        size_t na, nb;
        int l;
        owl_proj p;
        owl_train_tensor(tr, i, &a, NULL, &na, &l, &p, NULL);
        owl_train_tensor(tr, i + 1, &b, NULL, &nb, NULL, NULL, NULL);
        json_t *pr = json_object(), *ja = json_array(), *jb = json_array();
        for (size_t j = 0; j < na; j++) json_array_append_new(ja, json_real(a[j]));
        for (size_t j = 0; j < nb; j++) json_array_append_new(jb, json_real(b[j]));
        json_object_set_new(pr, "layer", json_integer(l));
        json_object_set_new(pr, "proj", json_string(PROJ[p]));
        json_object_set_new(pr, "a", ja);
        json_object_set_new(pr, "b", jb);
        json_array_append_new(pairs, pr);
    }
    json_object_set_new(in, "pairs", pairs);
    CHECK(json_dump_file(in, in_path, 0) == 0);
    json_decref(in);
    rc = run_cmd("%s %s %s %s %s", test_python(), source_path("tests/reference/train_ref.py"), ref_model, in_path,
                 out_path);
    CHECKF(rc == 0, "%s: train_ref.py failed (%d)", gc->name, rc);
    json_error_t jerr;
    json_t *out = rc == 0 ? json_load_file(out_path, 0, &jerr) : NULL;
    CHECKF(out != NULL, "%s: no reference output", gc->name);
    if (out) {
        const double ref_loss = json_real_value(json_object_get(out, "loss"));
        const double loss = loss_sum / count;
        CHECKF(fabs(loss - ref_loss) <= (gc->quant ? tol : 1e-5) * fabs(ref_loss), "%s: loss %.9g, reference %.9g",
               gc->name, loss, ref_loss);
        json_t *grads = json_object_get(out, "grads");
        CHECK(json_array_size(grads) == (size_t)nt / 2);
        double worst = 0;
        for (int i = 0; i < nt && (size_t)(i / 2) < json_array_size(grads); i++) {
            float *g;
            size_t cnt;
            int l;
            owl_proj p;
            bool isb;
            owl_train_tensor(tr, i, NULL, &g, &cnt, &l, &p, &isb);
            g = g1 + (g - owl_train_grads(tr));
            json_t *ref = json_object_get(json_array_get(grads, (size_t)i / 2), isb ? "b" : "a");
            CHECK(json_array_size(ref) == cnt);
            if (json_array_size(ref) != cnt) continue;
            double *r = malloc(sizeof(double) * cnt);
            for (size_t j = 0; j < cnt; j++) r[j] = json_real_value(json_array_get(ref, j));
            double err = test_rel_err(g, r, (int)cnt);
            if (err > worst) worst = err;
            CHECKF(err < tol, "%s: layer %d %s lora_%s: relative error %g", gc->name, l, PROJ[p], isb ? "B" : "A", err);
            free(r);
        }
        fprintf(stderr, "%s: loss %.7f (reference %.7f), %d tensors, worst relative error %.2e\n", gc->name, loss,
                ref_loss, nt, worst);
        json_decref(out);
    }
    /* bad sequences */
    int32_t bad[3] = {1, 2, 999999};
    uint8_t bm[3] = {0, 1, 1};
    CHECK(owl_train_seq(tr, bad, bm, 3, true, 1.0f, &loss2, &c2) == OWL_ERR_ARG);
    CHECK(strstr(owl_last_error(), "999999") != NULL);
    CHECK(owl_train_seq(tr, tokens, target, gc->n + 5, true, 1.0f, &loss2, &c2) == OWL_ERR_ARG);
    CHECK(owl_train_seq(tr, tokens, target, 1, true, 1.0f, &loss2, &c2) == OWL_ERR_ARG);
    free(g1);
    owl_train_free(tr);
    owl_lora_free(lora);
    owl_model_free(m);
}

int main(void) {
    uint64_t rng = 7;
    const unsigned all = OWL_LORA_T_LAYERS;
    const unsigned qv_down = (1u << OWL_PROJ_Q) | (1u << OWL_PROJ_V) | (1u << OWL_PROJ_DOWN);
    const gcase cases[] = {
        {"llama_gqa", "--dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 48 --vocab 300", false, all, 2, 6.0f, 12, NULL, 0},
        {"llama_f16_tied", "--dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 40 --vocab 280 --dtype f16 --tied", false,
         qv_down, 2, 4.0f, 10, NULL, 0},
        {"qwen2_bias", "--arch qwen2 --dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 48 --vocab 300 --tied", false,
         all, 2, 2.0f, 9, NULL, 0},
        {"gemma2", "--arch gemma2 --dim 32 --layers 2 --heads 2 --kv-heads 1 --ffn 40 --vocab 290 --window 4", true,
         (1u << OWL_PROJ_K) | (1u << OWL_PROJ_O) | (1u << OWL_PROJ_GATE) | (1u << OWL_PROJ_UP), 2, 3.0f, 9, NULL, 0},
        {"qwen3", "--arch qwen3 --dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 40 --vocab 290", true, all, 2, 2.0f, 8, NULL, 0},
        {"olmo2", "--arch olmo2 --dim 32 --layers 1 --heads 4 --kv-heads 4 --ffn 40 --vocab 290", true,
         (1u << OWL_PROJ_Q) | (1u << OWL_PROJ_K) | (1u << OWL_PROJ_UP), 2, 2.0f, 8, NULL, 0},
        /* a quantized base: owl's products with Q8_0 weights round the activations to 8 bits (as llama.cpp
         * does), the reference keeps them in float64, hence the looser bound */
        {"llama_q8_0", "--dim 32 --layers 1 --heads 4 --kv-heads 2 --ffn 64 --vocab 300", false, qv_down, 2, 4.0f, 10,
         "Q8_0", 6e-2},
    };
    owl_set_threads(2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], &rng);
    /* a fused-projection family is refused, naming the feature */
    {
        const char *dir = test_tmpdir("test_train_grad");
        char prefix[1024], gguf[1100];
        snprintf(prefix, sizeof prefix, "%s/phi3", dir);
        snprintf(gguf, sizeof gguf, "%s.gguf", prefix);
        int rc = run_cmd("%s %s --out %s --arch phi3 --dim 32 --layers 1 --heads 4 --ffn 40 --vocab 290 --no-ref",
                         test_python(), source_path("tests/reference/make_model.py"), prefix);
        owl_model *m = NULL;
        CHECK(rc == 0 && owl_model_load(gguf, NULL, &m) == OWL_OK);
        owl_lora *lora = NULL;
        owl_train *tr = NULL;
        /* owl_lora_new refuses fused projections itself; owl_train_new does too */
        if (m && owl_lora_new(m, all, 2, 2.0f, false, &lora) == OWL_OK) {
            CHECK(owl_train_new(m, lora, 8, &tr) == OWL_ERR_UNSUPPORTED);
            CHECK(strstr(owl_last_error(), "fused") != NULL);
        } else {
            CHECK(m != NULL);
            CHECKF(strstr(owl_last_error(), "used") != NULL || strstr(owl_last_error(), "Phi") != NULL, "%s",
                   owl_last_error());
        }
        owl_train_free(tr);
        owl_lora_free(lora);
        owl_model_free(m);
    }
    return test_finish("test_train_grad");
}
