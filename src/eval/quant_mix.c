/* Quantization mixes: which type each tensor of a model gets.
 *
 * The mix names are llama.cpp's (Q4_K_M, Q3_K_S, ...), and so are the
 * choices, as llama.cpp's quantizer makes them for a model without an
 * importance matrix (written from its documented behaviour and checked
 * against files it produced, tests/test_quantize.c):
 *
 *  - only tensors named "*weight" with two or more dimensions are quantized;
 *    1-D tensors (norms, biases) stay as they are (F32), and so do MoE
 *    routers (ffn_gate_inp), position / token-type embeddings and SSM
 *    convolutions;
 *  - the output matrix (output.weight, or token_embd.weight when the
 *    embeddings are tied and there is no output.weight) gets Q6_K, except
 *    in the Q8_0 mix (Q8_0) and when its rows do not divide into 256-blocks
 *    (Q8_0);
 *  - "more bits" layers: i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2;
 *  - per mix, attn_v / ffn_down / attn_output take the types of the table
 *    below (i counts attn_v or ffn_down tensors in file order, n their
 *    number);
 *  - a type whose block does not divide a row falls back to a 32-block type.
 *
 *  mix     attn_v                         ffn_down                  attn_output
 *  Q2_K    Q4_K if n_gqa >= 4 else Q3_K   Q3_K                      Q3_K
 *  Q3_K_S  -                              -                         -
 *  Q3_K_M  Q5_K if i < 2 else Q4_K        Q5_K if i < n/16 else Q4_K Q4_K
 *  Q3_K_L  Q5_K                           Q5_K                      Q5_K
 *  Q4_K_S  Q5_K if i < 4                  Q5_K if i < n/8           -
 *  Q4_K_M  Q6_K if more bits              Q6_K if more bits         -
 *  Q5_K_S  -                              -                         -
 *  Q5_K_M  Q6_K if more bits              Q6_K if more bits         -
 *  others  -                              -                         -
 *
 * Fused attn_qkv (Phi-3 style): Q4_K in Q3_K_M / Q3_K_L, Q5_K in Q4_K_M, Q6_K
 * in Q5_K_M. Mixtral-style models with 8 experts: attn_v and attn_k Q8_0,
 * attn_output Q5_K in Q2_K, Q3_K_S, Q3_K_M, Q4_K_S and Q4_K_M; ffn_down's
 * layer is then read from its name (blk.N.), as experts are not in order.
 *
 * Pure block types (Q3_K, Q4_K, Q5_K: no llama.cpp mix of that name) give
 * every matrix the type; F32 / F16 / BF16 convert every matrix. */
#include "eval/eval.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* general.file_type values are llama.cpp's LLAMA_FTYPE_* */
static const owl_quant_mix MIXES[] = {
    {"F32", OWL_F32, 0, false},     {"F16", OWL_F16, 1, false},     {"BF16", OWL_BF16, 32, false},
    {"Q4_0", OWL_Q4_0, 2, true},    {"Q4_1", OWL_Q4_1, 3, true},    {"Q5_0", OWL_Q5_0, 8, true},
    {"Q5_1", OWL_Q5_1, 9, true},    {"Q8_0", OWL_Q8_0, 7, true},    {"Q2_K", OWL_Q2_K, 10, true},
    {"Q3_K_S", OWL_Q3_K, 11, true}, {"Q3_K_M", OWL_Q3_K, 12, true}, {"Q3_K_L", OWL_Q3_K, 13, true},
    {"Q4_K_S", OWL_Q4_K, 14, true}, {"Q4_K_M", OWL_Q4_K, 15, true}, {"Q5_K_S", OWL_Q5_K, 16, true},
    {"Q5_K_M", OWL_Q5_K, 17, true}, {"Q6_K", OWL_Q6_K, 18, true},
    /* pure block types: every matrix the one type (file type of the _S mix) */
    {"Q3_K", OWL_Q3_K, 11, false},  {"Q4_K", OWL_Q4_K, 14, false},  {"Q5_K", OWL_Q5_K, 16, false},
};
#define N_MIXES (sizeof MIXES / sizeof MIXES[0])

const owl_quant_mix *owl_eval_mix_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_MIXES; i++)
        if (strcasecmp(name, MIXES[i].name) == 0) return &MIXES[i];
    return NULL;
}

const char *owl_eval_mix_names(void) {
    /* the table's names in its order (test_quantize checks they match) */
    return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, "
           "Q5_K_S, Q5_K_M, Q6_K, Q3_K, Q4_K, Q5_K";
}

static bool has(const char *name, const char *part) { return strstr(name, part) != NULL; }

void owl_eval_plan_info(const owl_weights *ws, owl_quant_plan_info *info) {
    memset(info, 0, sizeof *info);
    info->n_gqa = 1;
    for (size_t i = 0; i < ws->n; i++) {
        const char *nm = ws->w[i].name;
        if (has(nm, "attn_v.weight")) info->n_attn_v++;
        if (has(nm, "ffn_down")) info->n_ffn_down++;
        if (strcmp(nm, "output.weight") == 0) info->has_output = true;
        if (has(nm, "blk.")) {
            int l = -1;
            if (sscanf(strstr(nm, "blk.") + 4, "%d", &l) == 1 && l + 1 > info->n_layers) info->n_layers = l + 1;
        }
    }
    owl_str arch;
    if (owl_meta_get_str(&ws->meta, "general.architecture", &arch) && arch.len < 64) {
        char key[128];
        uint64_t nh = 0, nkv = 0;
        snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.ptr);
        bool ok = owl_meta_get_u64(&ws->meta, key, &nh);
        snprintf(key, sizeof key, "%.*s.attention.head_count_kv", (int)arch.len, arch.ptr);
        if (!owl_meta_get_u64(&ws->meta, key, &nkv)) nkv = nh;
        if (ok && nkv > 0 && nh >= nkv) info->n_gqa = (int)(nh / nkv);
        uint64_t ne = 0;
        snprintf(key, sizeof key, "%.*s.expert_count", (int)arch.len, arch.ptr);
        if (owl_meta_get_u64(&ws->meta, key, &ne) && ne < 1000000) info->n_expert = (int)ne;
    }
}

static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The mix's choice before the block-size check. */
static owl_dtype rule_type(const owl_quant_mix *mix, const owl_quant_plan_info *info, owl_quant_plan_state *st,
                           const char *name, int64_t ne0) {
    const char *m = mix->name;
    owl_dtype t = mix->base;
    bool is_output = strcmp(name, "output.weight") == 0 || (!info->has_output && strcmp(name, "token_embd.weight") == 0);
    if (is_output) {
        if (ne0 % 256 != 0) return OWL_Q8_0;
        return t == OWL_Q8_0 ? OWL_Q8_0 : OWL_Q6_K;
    }
    if (has(name, "attn_v.weight")) {
        int i = st->i_attn_v++, n = info->n_attn_v;
        if (!strcmp(m, "Q2_K")) t = info->n_gqa >= 4 ? OWL_Q4_K : OWL_Q3_K;
        else if (!strcmp(m, "Q3_K_M")) t = i < 2 ? OWL_Q5_K : OWL_Q4_K;
        else if (!strcmp(m, "Q3_K_L")) t = OWL_Q5_K;
        else if ((!strcmp(m, "Q4_K_M") || !strcmp(m, "Q5_K_M")) && more_bits(i, n)) t = OWL_Q6_K;
        else if (!strcmp(m, "Q4_K_S") && i < 4) t = OWL_Q5_K;
        if (info->n_expert == 8) t = OWL_Q8_0;
    } else if (has(name, "attn_k.weight")) {
        if (info->n_expert == 8) t = OWL_Q8_0;
    } else if (has(name, "attn_qkv.weight")) {
        if (!strcmp(m, "Q3_K_M") || !strcmp(m, "Q3_K_L")) t = OWL_Q4_K;
        else if (!strcmp(m, "Q4_K_M")) t = OWL_Q5_K;
        else if (!strcmp(m, "Q5_K_M")) t = OWL_Q6_K;
    } else if (has(name, "ffn_down")) {
        int i = st->i_ffn_down++, n = info->n_ffn_down;
        if (info->n_expert > 1) { /* experts are not in layer order: the layer from the name */
            const char *b = strstr(name, "blk.");
            if (b && sscanf(b + 4, "%d", &i) == 1) n = info->n_layers;
        }
        if (!strcmp(m, "Q2_K")) t = OWL_Q3_K;
        else if (!strcmp(m, "Q3_K_M")) t = i < n / 16 ? OWL_Q5_K : OWL_Q4_K;
        else if (!strcmp(m, "Q3_K_L")) t = OWL_Q5_K;
        else if ((!strcmp(m, "Q4_K_M") || !strcmp(m, "Q5_K_M")) && more_bits(i, n)) t = OWL_Q6_K;
        else if (!strcmp(m, "Q4_K_S") && i < n / 8) t = OWL_Q5_K;
    } else if (has(name, "attn_output.weight")) {
        if (info->n_expert == 8) {
            if (!strcmp(m, "Q2_K") || !strcmp(m, "Q3_K_S") || !strcmp(m, "Q3_K_M") || !strcmp(m, "Q4_K_S") ||
                !strcmp(m, "Q4_K_M"))
                t = OWL_Q5_K;
        } else if (!strcmp(m, "Q2_K")) t = OWL_Q3_K;
        else if (!strcmp(m, "Q3_K_M")) t = OWL_Q4_K;
        else if (!strcmp(m, "Q3_K_L")) t = OWL_Q5_K;
    }
    return t;
}

static int block_of(owl_dtype t) {
    const owl_dtype_info *di = owl_dtype_get((uint32_t)t);
    return di ? di->block : 1;
}

owl_dtype owl_eval_mix_type(const owl_quant_mix *mix, const owl_quant_plan_info *info, owl_quant_plan_state *st,
                            const owl_weight *w, bool *fallback) {
    if (fallback) *fallback = false;
    size_t nl = strlen(w->name);
    bool is_weight = nl >= 6 && strcmp(w->name + nl - 6, "weight") == 0;
    int n_dims = w->n_dims;
    while (n_dims > 1 && w->ne[n_dims - 1] == 1) n_dims--; /* as ggml_n_dims counts */
    if (!is_weight || n_dims < 2) return w->dtype;
    /* kept as they are by llama.cpp: MoE routers, position / token-type embeddings, SSM convolutions */
    static const char *const keep[] = {"ffn_gate_inp.weight", "pos_embd.weight", "token_types.weight",
                                       "ssm_conv1d.weight"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (has(w->name, keep[i])) return w->dtype;
    owl_dtype t = mix->rules ? rule_type(mix, info, st, w->name, w->ne[0]) : mix->base;
    if (w->ne[0] % block_of(t) == 0) return t;
    if (fallback) *fallback = true;
    switch (t) {
    case OWL_Q2_K:
    case OWL_Q3_K: t = OWL_Q4_0; break; /* llama.cpp: IQ4_NL, which owl does not have */
    case OWL_Q4_K: t = OWL_Q5_0; break;
    case OWL_Q5_K: t = OWL_Q5_1; break;
    case OWL_Q6_K: t = OWL_Q8_0; break;
    default: return OWL_DTYPE_COUNT; /* a 32-block type: no fallback (llama.cpp refuses too) */
    }
    if (w->ne[0] % block_of(t) != 0) t = OWL_F16;
    return t;
}
