/* llama.cpp's GGUF LoRA adapters: general.type = "adapter", adapter.type =
 * "lora", adapter.lora.alpha (scale of each pair: alpha / its rank; no
 * alpha or 0: scale 1), general.architecture of the base, tensors
 * <base tensor name>.lora_a (ne [in, r]; token_embd's: [r, n_vocab]) and
 * .lora_b (ne [r, out]), Q / K rows in the order of the architecture's GGUF
 * files (permuted for llama). */
#include "adapt/lora_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KINDS (LORA_KIND_GATE_UP + 1)

typedef struct gslot {
    const owl_weight *a, *b;
} gslot;

/* Parses "<stem>.weight.lora_a|b"; false if unknown. */
static bool parse_name(const char *name, int *layer, int *kind, bool *is_a) {
    size_t n = strlen(name);
    if (n < 14 || strcmp(name + n - 7, ".lora_a") != 0) {
        if (n < 14 || strcmp(name + n - 7, ".lora_b") != 0) return false;
    }
    *is_a = name[n - 1] == 'a';
    const size_t stem_n = n - 7;
    if (stem_n < 8 || memcmp(name + stem_n - 7, ".weight", 7) != 0) return false;
    const size_t base_n = stem_n - 7;
    if (base_n == 6 && memcmp(name, "output", 6) == 0) {
        *layer = -1;
        *kind = LORA_KIND_OUTPUT;
        return true;
    }
    if (base_n == 10 && memcmp(name, "token_embd", 10) == 0) {
        *layer = -1;
        *kind = LORA_KIND_EMBD;
        return true;
    }
    if (base_n < 5 || memcmp(name, "blk.", 4) != 0) return false;
    const char *s = name + 4, *end = name + base_n;
    if (s >= end || *s < '0' || *s > '9') return false;
    long l = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        l = l * 10 + (*s++ - '0');
        if (l > 100000) return false;
    }
    if (s >= end || *s != '.') return false;
    s++;
    const size_t rest = (size_t)(end - s);
    static const struct {
        const char *stem;
        int kind;
    } stems[] = {{"attn_q", OWL_PROJ_Q},       {"attn_k", OWL_PROJ_K},   {"attn_v", OWL_PROJ_V},
                 {"attn_output", OWL_PROJ_O},  {"ffn_gate", OWL_PROJ_GATE}, {"ffn_up", OWL_PROJ_UP},
                 {"ffn_down", OWL_PROJ_DOWN},  {"attn_qkv", LORA_KIND_QKV}};
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++)
        if (strlen(stems[i].stem) == rest && memcmp(s, stems[i].stem, rest) == 0) {
            *layer = (int)l;
            *kind = stems[i].kind;
            return true;
        }
    return false;
}

static owl_status read_table(const owl_model *m, const char *path, owl_weights *ws, owl_lora **out) {
    *out = NULL;
    owl_str s;
    if (!owl_meta_get_str(&ws->meta, "general.type", &s) || !owl_str_eq(s, "adapter"))
        return owl_errorf(OWL_ERR_FORMAT, "%s: general.type is not \"adapter\": a model, not a LoRA adapter", path);
    if (!owl_meta_get_str(&ws->meta, "adapter.type", &s) || !owl_str_eq(s, "lora"))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: adapter.type is not \"lora\"", path);
    if (!owl_meta_get_str(&ws->meta, "general.architecture", &s))
        return owl_errorf(OWL_ERR_FORMAT, "%s: missing key general.architecture", path);
    if (!owl_str_eq(s, m->arch->name))
        return owl_errorf(OWL_ERR_FORMAT, "%s: the adapter is for architecture \"%.*s\", the base model is \"%s\"", path,
                          (int)(s.len > 64 ? 64 : s.len), s.ptr, m->arch->name);
    double alpha = 0.0;
    if (owl_meta_find(&ws->meta, "adapter.lora.alpha") && !owl_meta_get_f64(&ws->meta, "adapter.lora.alpha", &alpha))
        return owl_errorf(OWL_ERR_FORMAT, "%s: adapter.lora.alpha is not a number", path);
    if (!isfinite(alpha) || fabs(alpha) > 1e9)
        return owl_errorf(OWL_ERR_FORMAT, "%s: adapter.lora.alpha %g is not a finite number", path, alpha);
    const int nl = m->hp.n_layers;
    const size_t n_slots = ((size_t)nl + 1) * KINDS;
    gslot *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    owl_lora *lo = NULL;
    owl_status st = lora_begin(m, path, &lo);
    for (size_t i = 0; !st && i < ws->n; i++) {
        const owl_weight *w = &ws->w[i];
        int l, kind;
        bool is_a;
        if (!parse_name(w->name, &l, &kind, &is_a)) {
            st = owl_errorf(OWL_ERR_FORMAT,
                            "%s: tensor %.200s is not a LoRA tensor owl knows (<tensor>.weight.lora_a|lora_b of "
                            "blk.N.attn_q|k|v|output|qkv, ffn_gate|up|down, output, token_embd)",
                            path, w->name);
            break;
        }
        if (l >= nl) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s is for layer %d, the base model has %d layers", path, w->name,
                            l, nl);
            break;
        }
        if (kind == OWL_PROJ_UP && m->arch->fused_gate_up) kind = LORA_KIND_GATE_UP;
        gslot *sl = &slots[(size_t)(l + 1) * KINDS + (size_t)kind];
        const owl_weight **dst = is_a ? &sl->a : &sl->b;
        if (*dst) st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s appears twice", path, w->name);
        *dst = w;
    }
    /* the adapter's rank: the first pair's */
    for (size_t i = 0; !st && i < n_slots && !lo->rank; i++) {
        const gslot *sl = &slots[i];
        if (sl->a && sl->b && sl->b->n_dims == 2) lo->rank = (int)(sl->b->ne[0] > 0 && sl->b->ne[0] <= 65536 ? sl->b->ne[0] : 0);
    }
    if (!st && !lo->rank) st = owl_errorf(OWL_ERR_FORMAT, "%s: no lora_a / lora_b pair with a usable rank", path);
    if (!st) {
        lo->alpha = alpha != 0.0 ? (float)alpha : (float)lo->rank;
        lo->w.scale = lora_scale_of(lo->alpha, lo->rank, false);
    }
    for (size_t i = 0; !st && i < n_slots; i++) {
        const gslot *sl = &slots[i];
        if (!sl->a && !sl->b) continue;
        if (!sl->a || !sl->b) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s has no %s partner (missing %s)", path,
                            (sl->a ? sl->a : sl->b)->name, sl->a ? "lora_b" : "lora_a", sl->a ? "lora_b" : "lora_a");
            break;
        }
        const int l = (int)(i / KINDS) - 1, kind = (int)(i % KINDS);
        const int64_t r = sl->b->ne[0];
        const float ps = alpha != 0.0 ? (float)(alpha / (double)(r > 0 ? r : 1)) : 1.0f;
        st = lora_take(lo, path, l, kind, sl->a, sl->b, false, ps, lora_gguf_perm(m));
    }
    if (!st) st = lora_finish(lo, path);
    free(slots);
    if (st) {
        owl_lora_free(lo);
        return st;
    }
    *out = lo;
    return OWL_OK;
}

owl_status lora_read_gguf(const owl_model *m, const char *path, owl_lora **out) {
    owl_weights ws;
    owl_status st = owl_gguf_read(path, &ws);
    if (st) return st;
    st = read_table(m, path, &ws, out);
    owl_weights_free(&ws);
    return st;
}

owl_status owl_lora_read_gguf_mem(const owl_model *m, const char *name, const uint8_t *data, size_t size,
                                  owl_lora **out) {
    *out = NULL;
    if (!m) return owl_errorf(OWL_ERR_ARG, "adapter: no base model");
    owl_weights ws;
    owl_status st = owl_gguf_read_mem(name, data, size, &ws);
    if (st) return st;
    st = read_table(m, name, &ws, out);
    owl_weights_free(&ws);
    return st;
}
