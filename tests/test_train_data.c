/* Fine-tuning pieces other than the gradients: the data reader (chat
 * targets are exactly the assistant turns, prompt/completion targets the
 * completion and EOS, packed text covers every token once, malformed lines
 * by line number, long examples), JSONL lines with wrong fields, the
 * learning-rate schedule and one AdamW step against the formulas, and
 * checkpoints (round trip, damage, other settings). */
#include "adapt/train.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *write_file(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

/* The text of the runs of target tokens, separated by '|'. */
static char *target_text(const owl_model *m, const owl_data_seq *s) {
    const owl_tokenizer *tok = owl_model_tokenizer(m);
    size_t cap = 4096, n = 0;
    char *out = calloc(1, cap);
    for (int i = 1; i < s->n; i++) {
        if (!s->tgt[i]) continue;
        int j = i;
        while (j < s->n && s->tgt[j]) j++;
        char *t = NULL;
        if (owl_detokenize(tok, s->tok + i, (size_t)(j - i), &t) == OWL_OK) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "|" : "", t);
            free(t);
        }
        i = j;
    }
    return out;
}

static void test_data(owl_model *m, const char *dir) {
    owl_data d;
    owl_data_opts o = {.ctx = 200};
    /* chat: targets are the assistant turns with their end-of-turn mark (ChatML, the model has no template) */
    char *chat = write_file(dir, "chat.jsonl",
                            "{\"messages\": [{\"role\": \"system\", \"content\": \"SYS\"}, {\"role\": \"user\", \"content\": "
                            "\"U1\"}, {\"role\": \"assistant\", \"content\": \"A1\"}, {\"role\": \"user\", \"content\": "
                            "\"U2\"}, {\"role\": \"assistant\", \"content\": \"A2\"}]}\n");
    CHECKF(owl_data_read(m, chat, &o, &d) == OWL_OK, "%s", owl_last_error());
    if (d.n_seq == 1) {
        /* two runs of targets: "A1" then <|im_end|> and the newline, the same for A2 */
        char *t = target_text(m, &d.seq[0]);
        CHECKF(strncmp(t, "A1", 2) == 0 && strstr(t, "|A2") && !strstr(t, "U1") && !strstr(t, "U2") && !strstr(t, "SYS") &&
                   !strstr(t, "assistant"),
               "chat targets '%s'", t);
        free(t);
        int32_t im_end = -1, *ids = NULL;
        size_t nids = 0;
        CHECK(owl_tokenize(owl_model_tokenizer(m), "<|im_end|>", 10, false, true, &ids, &nids) == OWL_OK && nids == 1);
        if (nids == 1) im_end = ids[0];
        free(ids);
        int ends = 0, end_targets = 0;
        for (int i = 0; i < d.seq[0].n; i++)
            if (d.seq[0].tok[i] == im_end) ends++, end_targets += d.seq[0].tgt[i];
        CHECKF(ends == 5 && end_targets == 2, "<|im_end|>: %d, %d of them targets", ends, end_targets);
    } else {
        CHECK(d.n_seq == 1);
    }
    owl_data_free(&d);
    /* prompt / completion: the completion and EOS */
    char *pc = write_file(dir, "pc.jsonl", "{\"prompt\": \"Pq\", \"completion\": \"Cz\"}\n\n  \n");
    CHECK(owl_data_read(m, pc, &o, &d) == OWL_OK);
    if (d.n_seq == 1) {
        const owl_data_seq *s = &d.seq[0];
        const owl_tokenizer *tok = owl_model_tokenizer(m);
        int32_t *c = NULL, *p = NULL;
        size_t nc = 0, np = 0;
        CHECK(owl_tokenize(tok, "Pq", 2, true, false, &p, &np) == OWL_OK);
        CHECK(owl_tokenize(tok, "Cz", 2, false, false, &c, &nc) == OWL_OK);
        CHECK(s->n == (int)(np + nc + 1) && s->n_targets == (int)(nc + 1));
        CHECK(s->tok[s->n - 1] == owl_token_eos(tok));
        for (int i = 0; i < s->n; i++) CHECK(s->tgt[i] == (i >= (int)np));
        free(c);
        free(p);
    } else {
        CHECK(d.n_seq == 1);
    }
    owl_data_free(&d);
    /* plain text: sequences of ctx tokens overlapping by one: every token but the first a target once */
    char *txt = write_file(dir, "t.txt", "the quick brown fox jumps over the lazy dog, again and again and again.\n");
    int32_t *all = NULL;
    size_t n_all = 0;
    CHECK(owl_tokenize(owl_model_tokenizer(m), "the quick brown fox jumps over the lazy dog, again and again and again.\n",
                       72, true, false, &all, &n_all) == OWL_OK);
    o.ctx = 10;
    CHECK(owl_data_read(m, txt, &o, &d) == OWL_OK);
    CHECK(d.n_targets == (int64_t)n_all - 1);
    CHECK(d.n_seq == (int)((n_all - 1 + 8) / 9));
    for (int i = 0, pos = 0; i < d.n_seq; i++) {
        CHECK(d.seq[i].n <= 10 && d.seq[i].tgt[0] == 0);
        CHECK(memcmp(d.seq[i].tok, all + pos, sizeof(int32_t) * (size_t)d.seq[i].n) == 0);
        pos += d.seq[i].n - 1;
    }
    free(all);
    owl_data_free(&d);
    /* malformed lines: skipped and counted, or the first stops with its line number */
    char *bad = write_file(dir, "bad.jsonl",
                           "{\"text\": \"fine\"}\n[1, 2]\n{\"messages\": []}\n{\"messages\": [{\"role\": \"user\", \"content\": "
                           "\"x\"}]}\n{\"messages\": [{\"role\": 3, \"content\": \"x\"}]}\n{\"prompt\": \"a\"}\n{\"text\": "
                           "\"fine too\"}\n{\"text\": \"x\", \"text\": \"y\"}\n");
    o.ctx = 64;
    CHECK(owl_data_read(m, bad, &o, &d) == OWL_OK);
    CHECKF(d.n_seq == 2 && d.n_bad == 6, "%d sequences, %d bad", d.n_seq, d.n_bad);
    owl_data_free(&d);
    o.stop_on_bad = true;
    CHECK(owl_data_read(m, bad, &o, &d) == OWL_ERR_FORMAT);
    CHECKF(strstr(owl_last_error(), "bad.jsonl:2:") != NULL, "%s", owl_last_error());
    o.stop_on_bad = false;
    /* long examples: cut with a warning, or an error naming the line */
    char *lng = write_file(dir, "long.jsonl", "{\"text\": \"ab\"}\n{\"prompt\": \"p\", \"completion\": \"a long long long "
                                              "long long long long long long answer\"}\n");
    o.ctx = 12;
    CHECK(owl_data_read(m, lng, &o, &d) == OWL_OK);
    CHECK(d.n_seq == 2 && d.n_truncated == 1 && d.seq[1].n == 12);
    owl_data_free(&d);
    o.stop_on_long = true;
    CHECK(owl_data_read(m, lng, &o, &d) == OWL_ERR_RANGE);
    CHECKF(strstr(owl_last_error(), "long.jsonl:2:") && strstr(owl_last_error(), "context of 12"), "%s",
           owl_last_error());
    o.stop_on_long = false;
    /* nothing usable, a missing file */
    char *none = write_file(dir, "none.jsonl", "\n\n");
    CHECK(owl_data_read(m, none, &o, &d) == OWL_ERR_FORMAT);
    CHECK(owl_data_read(m, "/nonexistent/x.txt", &o, &d) != OWL_OK);
    free(chat);
    free(pc);
    free(txt);
    free(bad);
    free(lng);
    free(none);
}

static void test_lines(void) {
    static const struct {
        const char *line, *want;
    } bad[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"\"str\"", "JSON object"},
        {"{\"messages\": {}}", "non-empty array"},
        {"{\"messages\": [5]}", "messages[0] must be an object"},
        {"{\"messages\": [{\"role\": \"user\"}]}", "\"content\" must be a string, not missing"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": null}]}", "not null"},
        {"{\"messages\": [{\"role\": \"\", \"content\": \"x\"}]}", "empty role"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "no \"assistant\""},
        {"{\"prompt\": \"x\", \"completion\": [1]}", "\"completion\" must be a string, not an array"},
        {"{\"completion\": \"x\"}", "\"prompt\" must be a string"},
        {"{\"text\": true}", "\"text\" must be a string, not a boolean"},
        {"{\"other\": 1}", "none of"},
        {"{\"a\": 1, \"a\": 2}", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        owl_example ex;
        owl_status st = owl_example_parse(bad[i].line, strlen(bad[i].line), "f.jsonl", 7, &ex);
        CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "f.jsonl:7:") && strstr(owl_last_error(), bad[i].want),
               "'%s': %s", bad[i].line, owl_last_error());
        owl_example_free(&ex);
    }
    owl_example ex;
    const char *ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": "
                     "\"a\\u0000b\"}]}";
    CHECK(owl_example_parse(ok, strlen(ok), "f", 1, &ex) == OWL_OK);
    CHECK(ex.kind == OWL_EX_MESSAGES && ex.n_msg == 2 && ex.content_len[1] == 3);
    owl_example_free(&ex);
}

static void test_optimizer(owl_model *m, const char *dir) {
    owl_adamw o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f, .clip = 0.5f,
                   .warmup = 10, .total = 110, .min_lr_frac = 0.0f};
    CHECK(fabs(owl_adamw_lr(&o, 0) - 1e-4) < 1e-9);
    CHECK(fabs(owl_adamw_lr(&o, 9) - 1e-3) < 1e-9);
    CHECK(fabs(owl_adamw_lr(&o, 10) - 1e-3) < 1e-9);
    for (int s = 10; s < 110; s++) { /* cosine from lr to 0 over steps 10..109 */
        double want = 0.5e-3 * (1 + cos(M_PI * (s - 10) / 99.0));
        CHECKF(fabs(owl_adamw_lr(&o, s) - want) < 1e-9, "step %d: %g, want %g", s, owl_adamw_lr(&o, s), want);
    }
    owl_lora *lora = NULL;
    owl_train *tr = NULL;
    CHECK(owl_lora_new(m, 1u << OWL_PROJ_V, 2, 4.0f, false, &lora) == OWL_OK);
    CHECK(lora && owl_train_new(m, lora, 16, &tr) == OWL_OK);
    if (!tr) {
        owl_lora_free(lora);
        return;
    }
    owl_train_rng rng;
    owl_train_rng_seed(&rng, 3);
    owl_train_init_pairs(tr, &rng);
    const size_t np = owl_train_n_params(tr);
    float *p0 = malloc(sizeof(float) * np), *mm = calloc(np, sizeof(float)), *vv = calloc(np, sizeof(float));
    float *g = owl_train_grads(tr);
    /* A uniform in +-1/sqrt(in), B zero */
    for (int i = 0, off = 0; i < owl_train_n_tensors(tr); i++) {
        float *p;
        size_t n;
        bool isb;
        owl_train_tensor(tr, i, &p, NULL, &n, NULL, NULL, &isb);
        const float bound = 1.0f / sqrtf((float)m->hp.dim);
        bool ok = true, nonzero = false;
        for (size_t j = 0; j < n; j++) {
            ok = ok && (isb ? p[j] == 0.0f : fabsf(p[j]) <= bound);
            nonzero = nonzero || p[j] != 0.0f;
        }
        CHECK(ok && nonzero != isb);
        memcpy(p0 + off, p, sizeof(float) * n);
        off += (int)n;
    }
    double ss = 0;
    for (size_t j = 0; j < np; j++) {
        g[j] = (float)sin((double)j) * 0.01f;
        ss += (double)g[j] * g[j];
    }
    double norm = 0;
    CHECK(owl_adamw_step(tr, &o, 3, mm, vv, &norm) == OWL_OK);
    CHECK(fabs(norm - sqrt(ss)) < 1e-6 * sqrt(ss));
    const double clip = sqrt(ss) > 0.5 ? 0.5 / sqrt(ss) : 1.0, lr = owl_adamw_lr(&o, 3);
    double worst = 0;
    for (int i = 0, off = 0; i < owl_train_n_tensors(tr); i++) {
        float *p;
        size_t n;
        owl_train_tensor(tr, i, &p, NULL, &n, NULL, NULL, NULL);
        for (size_t j = 0; j < n; j++, off++) {
            const double gj = g[off] * clip, mh = 0.1 * gj / (1 - pow(0.9, 4)), vh = 0.001 * gj * gj / (1 - pow(0.999, 4));
            const double want = p0[off] - lr * (mh / (sqrt(vh) + 1e-8) + 0.1 * p0[off]);
            worst = fmax(worst, fabs(p[j] - want));
        }
    }
    CHECKF(worst < 1e-7, "AdamW step: worst difference %g", worst);
    /* a non-finite gradient changes nothing */
    g[0] = NAN;
    memcpy(p0, mm, sizeof(float) * np);
    CHECK(owl_adamw_step(tr, &o, 4, mm, vv, &norm) == OWL_ERR_RANGE);
    CHECK(memcmp(p0, mm, sizeof(float) * np) == 0);

    /* checkpoint: round trip, damage, other settings */
    owl_train_state s = {.rank = 2, .ctx = 16, .batch = 1, .accum = 1, .epochs = 1, .n_seq = 5, .targets = 1u << OWL_PROJ_V,
                         .alpha = 4.0f, .lr = 1e-3f, .seed = 3, .data_hash = 77, .step = 4, .rng = rng};
    CHECK(owl_train_state_push_loss(&s, 2.5f) == OWL_OK && owl_train_state_push_loss(&s, 2.0f) == OWL_OK);
    CHECK(owl_train_state_push_val(&s, 2.2f) == OWL_OK);
    char *ck = path_join(dir, "ck.owlt");
    for (size_t j = 0; j < np; j++) vv[j] = (float)j;
    CHECK(owl_train_ckpt_save(ck, tr, &s, mm, vv) == OWL_OK);
    float *p_saved = malloc(sizeof(float) * np);
    for (int i = 0, off = 0; i < owl_train_n_tensors(tr); i++) {
        float *p;
        size_t n;
        owl_train_tensor(tr, i, &p, NULL, &n, NULL, NULL, NULL);
        memcpy(p_saved + off, p, sizeof(float) * n);
        memset(p, 0, sizeof(float) * n);
        off += (int)n;
    }
    owl_train_state s2 = s;
    s2.loss = NULL, s2.val = NULL, s2.val_step = NULL, s2.n_loss = s2.n_val = s2.cap_loss = s2.cap_val = 0;
    s2.step = 0;
    float *m2 = calloc(np, sizeof(float)), *v2 = calloc(np, sizeof(float));
    CHECKF(owl_train_ckpt_load(ck, tr, &s2, m2, v2) == OWL_OK, "%s", owl_last_error());
    CHECK(s2.step == 4 && s2.n_loss == 2 && s2.loss[1] == 2.0f && s2.n_val == 1 && s2.val[0] == 2.2f &&
          s2.val_step[0] == 4 && memcmp(s2.rng.s, rng.s, sizeof rng.s) == 0);
    CHECK(memcmp(m2, mm, sizeof(float) * np) == 0 && memcmp(v2, vv, sizeof(float) * np) == 0);
    for (int i = 0, off = 0; i < owl_train_n_tensors(tr); i++) {
        float *p;
        size_t n;
        owl_train_tensor(tr, i, &p, NULL, &n, NULL, NULL, NULL);
        CHECK(memcmp(p, p_saved + off, sizeof(float) * n) == 0);
        off += (int)n;
    }
    s2.batch = 2;
    CHECK(owl_train_ckpt_load(ck, tr, &s2, m2, v2) == OWL_ERR_ARG);
    CHECK(strstr(owl_last_error(), "--batch 1, this run has 2") != NULL);
    s2.batch = 1;
    s2.data_hash = 78;
    CHECK(owl_train_ckpt_load(ck, tr, &s2, m2, v2) == OWL_ERR_ARG);
    CHECK(strstr(owl_last_error(), "other training data") != NULL);
    s2.data_hash = 77;
    /* truncated and damaged files */
    char *data = NULL;
    size_t size = 0;
    CHECK(owl_read_file(ck, &data, &size) == OWL_OK);
    for (size_t cut = 0; data && cut < size; cut += size / 7 + 1) {
        char *t = path_join(dir, "cut.owlt");
        CHECK(owl_write_file_atomic(t, data, cut) == OWL_OK);
        CHECK(owl_train_ckpt_load(t, tr, &s2, m2, v2) == OWL_ERR_FORMAT);
        free(t);
    }
    if (data) {
        data[size / 2] ^= 1;
        CHECK(owl_write_file_atomic(ck, data, size) == OWL_OK);
        CHECK(owl_train_ckpt_load(ck, tr, &s2, m2, v2) == OWL_ERR_FORMAT);
        CHECK(strstr(owl_last_error(), "checksum") != NULL);
    }
    free(data);
    free(ck);
    free(p_saved);
    free(m2);
    free(v2);
    owl_train_state_free(&s);
    owl_train_state_free(&s2);
    free(p0);
    free(mm);
    free(vv);
    owl_train_free(tr);
    owl_lora_free(lora);
}

int main(void) {
    const char *dir = test_tmpdir("test_train_data");
    char *prefix = path_join(dir, "m");
    int rc = run_cmd("%s %s --out %s --dim 32 --layers 1 --heads 2 --ffn 48 --vocab 300 --no-ref --special "
                     "'<|im_start|>' --special '<|im_end|>'",
                     test_python(), source_path("tests/reference/make_model.py"), prefix);
    CHECK(rc == 0);
    char *gguf = path_join(dir, "m.gguf");
    owl_model *m = NULL;
    CHECKF(owl_model_load(gguf, NULL, &m) == OWL_OK, "%s", owl_last_error());
    test_lines();
    if (m) {
        test_data(m, dir);
        test_optimizer(m, dir);
    }
    owl_model_free(m);
    free(prefix);
    free(gguf);
    return test_finish("test_train_data");
}
