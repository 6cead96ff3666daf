/* Fine-tuning checkpoints: one little-endian file, written to a temporary
 * file and renamed into place, so that a crash or Ctrl-C never leaves half
 * a checkpoint:
 *   "OWLTRAIN" u32 version
 *   settings: i32 rank ctx batch accum epochs n_seq, u32 targets, f32 alpha
 *             lr, u64 seed data_hash, u64 n_param
 *   progress: i64 step, u64 rng[4], i32 n_loss n_val, f32 loss[n_loss],
 *             f32 val[n_val], i64 val_step[n_val]
 *   f32 params, m, v (n_param each, in the trainer's tensor order)
 *   u64 FNV-1a of everything before */
#include "adapt/train_internal.h"

#include <stdlib.h>
#include <string.h>

#define CKPT_MAGIC "OWLTRAIN"
#define CKPT_VERSION 1u

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

uint64_t owl_data_hash(const owl_data *d) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < d->n_seq; i++) {
        h = fnv(h, &d->seq[i].n, sizeof d->seq[i].n);
        h = fnv(h, d->seq[i].tok, sizeof(int32_t) * (size_t)d->seq[i].n);
        h = fnv(h, d->seq[i].tgt, (size_t)d->seq[i].n);
    }
    return h;
}

static owl_status grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return OWL_OK;
    int c = *cap ? *cap * 2 : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, elem * (size_t)c);
    if (!q) return owl_errorf(OWL_ERR_NOMEM, "training history of %d entries", c);
    *p = q;
    *cap = c;
    return OWL_OK;
}

owl_status owl_train_state_push_loss(owl_train_state *s, float loss) {
    owl_status st = grow((void **)&s->loss, &s->cap_loss, s->n_loss + 1, sizeof(float));
    if (!st) s->loss[s->n_loss++] = loss;
    return st;
}

owl_status owl_train_state_push_val(owl_train_state *s, float loss) {
    int cap = s->cap_val;
    owl_status st = grow((void **)&s->val, &cap, s->n_val + 1, sizeof(float));
    if (!st) {
        cap = s->cap_val;
        st = grow((void **)&s->val_step, &cap, s->n_val + 1, sizeof(int64_t));
    }
    if (st) return st;
    s->cap_val = cap;
    s->val[s->n_val] = loss;
    s->val_step[s->n_val++] = s->step;
    return OWL_OK;
}

void owl_train_state_free(owl_train_state *s) {
    free(s->loss);
    free(s->val);
    free(s->val_step);
    s->loss = s->val = NULL;
    s->val_step = NULL;
    s->n_loss = s->n_val = s->cap_loss = s->cap_val = 0;
}

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} wbuf;

static void put(wbuf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

owl_status owl_train_ckpt_save(const char *path, owl_train *tr, const owl_train_state *s, const float *m,
                               const float *v) {
    wbuf b = {0};
    const uint32_t ver = CKPT_VERSION;
    const uint64_t np = tr->n_param;
    put(&b, CKPT_MAGIC, 8);
    put(&b, &ver, 4);
    const int32_t ints[6] = {s->rank, s->ctx, s->batch, s->accum, s->epochs, s->n_seq};
    put(&b, ints, sizeof ints);
    put(&b, &s->targets, 4);
    put(&b, &s->alpha, 4);
    put(&b, &s->lr, 4);
    put(&b, &s->seed, 8);
    put(&b, &s->data_hash, 8);
    put(&b, &np, 8);
    put(&b, &s->step, 8);
    put(&b, s->rng.s, 32);
    put(&b, &s->n_loss, 4);
    put(&b, &s->n_val, 4);
    if (s->n_loss) put(&b, s->loss, sizeof(float) * (size_t)s->n_loss);
    if (s->n_val) {
        put(&b, s->val, sizeof(float) * (size_t)s->n_val);
        put(&b, s->val_step, sizeof(int64_t) * (size_t)s->n_val);
    }
    for (int i = 0; i < tr->n_tensors; i++) put(&b, tr->tens[i].p, sizeof(float) * tr->tens[i].n);
    put(&b, m, sizeof(float) * tr->n_param);
    put(&b, v, sizeof(float) * tr->n_param);
    if (b.oom) {
        free(b.p);
        return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for the checkpoint", path);
    }
    const uint64_t h = fnv(0xCBF29CE484222325ull, b.p, b.n);
    put(&b, &h, 8);
    owl_status st = b.oom ? owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for the checkpoint", path)
                          : owl_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return st;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n, off;
} rbuf;

static bool take(rbuf *r, void *dst, size_t n) {
    if (r->n - r->off < n) return false;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return true;
}

#define MISMATCH(field, fmt, was, now)                                                                            \
    owl_errorf(OWL_ERR_ARG, "%s: the checkpoint was made with " field " " fmt ", this run has " fmt                \
                            " (start afresh without --resume, or use the same settings)",                         \
               path, was, now)

owl_status owl_train_ckpt_load(const char *path, owl_train *tr, owl_train_state *s, float *m, float *v) {
    char *data = NULL;
    size_t size = 0;
    owl_status st = owl_read_file(path, &data, &size);
    if (st) return st;
    rbuf r = {(const uint8_t *)data, size, 0};
    uint32_t ver = 0, targets = 0;
    int32_t ints[6];
    float alpha, lr;
    uint64_t seed, hash, np, h = 0;
    int64_t step;
    owl_train_rng rng;
    int32_t n_loss, n_val;
    st = OWL_OK;
    if (size < 8 + 8 || memcmp(data, CKPT_MAGIC, 8) != 0) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: not an owl fine-tuning checkpoint", path);
        goto out;
    }
    memcpy(&h, data + size - 8, 8);
    if (fnv(0xCBF29CE484222325ull, data, size - 8) != h) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: checksum mismatch (the file is damaged)", path);
        goto out;
    }
    r.n = size - 8;
    r.off = 8;
    if (!take(&r, &ver, 4) || ver != CKPT_VERSION) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: checkpoint version %u (owl reads %u)", path, ver, CKPT_VERSION);
        goto out;
    }
    if (!take(&r, ints, sizeof ints) || !take(&r, &targets, 4) || !take(&r, &alpha, 4) || !take(&r, &lr, 4) ||
        !take(&r, &seed, 8) || !take(&r, &hash, 8) || !take(&r, &np, 8) || !take(&r, &step, 8) ||
        !take(&r, rng.s, 32) || !take(&r, &n_loss, 4) || !take(&r, &n_val, 4)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: truncated header", path);
        goto out;
    }
    if (ints[0] != s->rank) st = MISMATCH("--rank", "%d", ints[0], s->rank);
    else if (targets != s->targets) st = MISMATCH("targets (bits)", "0x%x", targets, s->targets);
    else if (np != tr->n_param) st = MISMATCH("trained floats", "%llu", (unsigned long long)np, (unsigned long long)tr->n_param);
    else if (ints[1] != s->ctx) st = MISMATCH("--ctx", "%d", ints[1], s->ctx);
    else if (ints[2] != s->batch) st = MISMATCH("--batch", "%d", ints[2], s->batch);
    else if (ints[3] != s->accum) st = MISMATCH("--grad-accum", "%d", ints[3], s->accum);
    else if (ints[4] != s->epochs) st = MISMATCH("--epochs", "%d", ints[4], s->epochs);
    else if (alpha != s->alpha) st = MISMATCH("--alpha", "%g", (double)alpha, (double)s->alpha);
    else if (lr != s->lr) st = MISMATCH("--lr", "%g", (double)lr, (double)s->lr);
    else if (seed != s->seed) st = MISMATCH("--seed", "%llu", (unsigned long long)seed, (unsigned long long)s->seed);
    else if (ints[5] != s->n_seq || hash != s->data_hash)
        st = owl_errorf(OWL_ERR_ARG, "%s: the checkpoint was made on other training data (%d sequences, now %d)", path,
                        ints[5], s->n_seq);
    if (st) goto out;
    if (step < 0 || n_loss < 0 || n_val < 0 || (uint64_t)n_loss > size || (uint64_t)n_val > size) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: bad step %lld or history (%d, %d)", path, (long long)step, n_loss, n_val);
        goto out;
    }
    const size_t hist = sizeof(float) * (size_t)n_loss + (sizeof(float) + sizeof(int64_t)) * (size_t)n_val;
    if (r.n - r.off != hist + 3 * sizeof(float) * tr->n_param) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes after the header, expected %zu", path, r.n - r.off,
                        hist + 3 * sizeof(float) * tr->n_param);
        goto out;
    }
    owl_train_state_free(s);
    s->n_loss = s->n_val = 0;
    for (int i = 0; i < n_loss && !st; i++) {
        float x;
        take(&r, &x, 4);
        st = owl_train_state_push_loss(s, x);
    }
    float *vals = malloc(sizeof(float) * (size_t)(n_val + 1));
    if (!vals) st = OWL_ERR_NOMEM;
    for (int i = 0; i < n_val && !st; i++) take(&r, &vals[i], 4);
    for (int i = 0; i < n_val && !st; i++) {
        take(&r, &s->step, 8);
        st = owl_train_state_push_val(s, vals[i]);
    }
    free(vals);
    if (st) goto out;
    for (int i = 0; i < tr->n_tensors; i++) take(&r, tr->tens[i].p, sizeof(float) * tr->tens[i].n);
    take(&r, m, sizeof(float) * tr->n_param);
    take(&r, v, sizeof(float) * tr->n_param);
    s->step = step;
    s->rng = rng;
out:
    free(data);
    return st;
}
