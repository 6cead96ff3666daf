/* Fine-tuning learns: a small random base (make_model.py) is trained with
 * `owl finetune` on a text of a few fixed facts in several phrasings that
 * this test writes. The training loss falls by a large factor, the
 * validation loss (other phrasings) falls, and after training greedy
 * generation with the adapter (read back from the PEFT directory) completes
 * every fact, which the base does not. The plot is an SVG with both curves.
 * The run takes about a second (Release), so ASan runs it unchanged. */
#include "owl.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* make_model.py's vocabulary reaches only byte tokens from text, so a fact
 * is a few characters: subject "=" object "." */
static const char *SUBJ[] = {"AB", "CD", "EF", "GH"};
static const char *OBJ[] = {"pqr", "stu", "vwx", "ykm"};
static const char *FORMS[] = {"x%s=%s.", "yy%s=%s.", "w:%s=%s."};

/* Greedy continuation of prompt: the tokens that follow it in full? */
static bool completes(owl_model *m, const owl_lora *lora, const char *prompt, const char *full) {
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    int32_t *p = NULL, *w = NULL;
    size_t np = 0, nw = 0;
    if (owl_tokenize(tok, prompt, strlen(prompt), true, false, &p, &np) ||
        owl_tokenize(tok, full, strlen(full), true, false, &w, &nw)) {
        CHECKF(false, "tokenize: %s", owl_last_error());
        free(p);
        return false;
    }
    CHECK(nw > np && memcmp(p, w, sizeof(int32_t) * np) == 0);
    owl_ctx *c = NULL;
    bool same = owl_ctx_new(m, 64, &c) == OWL_OK;
    if (same && lora) same = owl_ctx_set_adapters(c, &lora, NULL, 1) == OWL_OK;
    CHECKF(same, "context: %s", owl_last_error());
    if (same) same = owl_ctx_eval(c, p, (int)np, false) == OWL_OK;
    const int vocab = owl_token_count(tok);
    for (size_t i = np; same && i < nw; i++) {
        const float *lg = owl_ctx_logits(c, -1);
        int32_t best = 0;
        for (int j = 1; j < vocab; j++)
            if (lg[j] > lg[best]) best = j;
        if (best != w[i]) same = false;
        else same = owl_ctx_eval(c, &best, 1, false) == OWL_OK;
    }
    owl_ctx_free(c);
    free(p);
    free(w);
    return same;
}

/* The loss printed on the first line with `prefix`, or the last one. */
static double find_loss(const char *log, const char *prefix, const char *key, bool last) {
    double v = NAN;
    for (const char *s = strstr(log, prefix); s; s = strstr(s + 1, prefix)) {
        const char *k = strstr(s, key);
        const char *eol = strchr(s, '\n');
        if (k && (!eol || k < eol)) {
            v = strtod(k + strlen(key), NULL);
            if (!last) break;
        }
    }
    return v;
}

int main(void) {
    const char *dir = test_tmpdir("test_train_learn");
    char *base = path_join(dir, "base"), *gguf = path_join(dir, "base.gguf");
    char *train = path_join(dir, "train.txt"), *val = path_join(dir, "val.txt"), *out = path_join(dir, "adapter");
    char *svg = path_join(dir, "loss.svg");
    int rc = run_cmd("%s %s --out %s --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 --vocab 320 --ctx 256 "
                     "--no-ref --seed 3",
                     test_python(), source_path("tests/reference/make_model.py"), base);
    CHECK(rc == 0);
    /* the facts in three phrasings (training) and a fourth (validation) */
    FILE *f = fopen(train, "w"), *fv = fopen(val, "w");
    CHECK(f && fv);
    if (!f || !fv) return test_finish("test_train_learn");
    uint64_t rng = 11;
    for (int i = 0; i < 300; i++) {
        int k = (int)(test_rand_u64(&rng) % 4), form = (int)(test_rand_u64(&rng) % 3);
        fprintf(f, FORMS[form], SUBJ[k], OBJ[k]);
        fputc('\n', f);
    }
    for (int i = 0; i < 8; i++) fprintf(fv, "z%s=%s.\n", SUBJ[i % 4], OBJ[i % 4]);
    fclose(f);
    fclose(fv);

    int status = 0;
    char *log = run_capture(&status,
                            "%s finetune %s --data %s --val %s --rank 8 --alpha 16 --lr 1e-2 --epochs 6 --ctx 32 "
                            "--batch 4 --seed 5 -t 1 -o %s --force --plot %s 2>&1",
                            owl_bin(), gguf, train, val, out, svg);
    CHECKF(status == 0, "owl finetune exited with %d:\n%s", status, log ? log : "");
    if (log) {
        const double first = find_loss(log, "step 1/", "loss ", false), lastl = find_loss(log, "step ", "loss ", true);
        const double v0 = find_loss(log, "epoch 1/", "validation loss ", false),
                     v1 = find_loss(log, "epoch ", "validation loss ", true);
        fprintf(stderr, "training loss %.4f -> %.4f, validation loss %.4f -> %.4f\n", first, lastl, v0, v1);
        CHECKF(first > 4.0 && lastl < first / 4.0, "training loss %g -> %g", first, lastl);
        CHECKF(v1 < 0.8 * v0, "validation loss %g -> %g", v0, v1);
    }
    free(log);
    char *svg_text = NULL;
    size_t svg_len = 0;
    FILE *fs = fopen(svg, "rb");
    CHECK(fs != NULL);
    if (fs) {
        svg_text = calloc(1, 1 << 20);
        svg_len = fread(svg_text, 1, (1 << 20) - 1, fs);
        fclose(fs);
        CHECK(svg_len > 100 && strstr(svg_text, "<svg") && strstr(svg_text, "</svg>"));
        /* two curves: training and validation */
        const char *p1 = strstr(svg_text, "<polyline"), *p2 = p1 ? strstr(p1 + 1, "<polyline") : NULL;
        CHECK(p1 && p2 && strstr(svg_text, "validation"));
        free(svg_text);
    }

    owl_model *m = NULL;
    owl_lora *lora = NULL;
    CHECK(owl_model_load(gguf, NULL, &m) == OWL_OK);
    CHECKF(m && owl_lora_load(m, out, &lora) == OWL_OK, "adapter: %s", owl_last_error());
    if (m && lora) {
        int base_ok = 0, tuned_ok = 0;
        for (int k = 0; k < 4; k++) {
            char prompt[64], full[64];
            snprintf(prompt, sizeof prompt, "z%s=", SUBJ[k]); /* the validation phrasing */
            snprintf(full, sizeof full, "z%s=%s", SUBJ[k], OBJ[k]);
            base_ok += completes(m, NULL, prompt, full);
            tuned_ok += completes(m, lora, prompt, full);
        }
        fprintf(stderr, "facts completed: base %d/4, fine-tuned %d/4\n", base_ok, tuned_ok);
        CHECK(base_ok == 0);
        CHECK(tuned_ok == 4);
    }
    owl_lora_free(lora);
    owl_model_free(m);
    free(base);
    free(gguf);
    free(train);
    free(val);
    free(out);
    free(svg);
    return test_finish("test_train_learn");
}
