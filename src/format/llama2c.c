/* Reader of llama2.c legacy checkpoints (.bin) and their tokenizer.bin.
 *
 * Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier
 * is stored at the end instead of shared with the embedding), then F32
 * tensors: token_embedding_table, rms_att_weight, wq, wk, wv, wo,
 * rms_ffn_weight, w1, w2, w3, rms_final_weight, freq_cis_real, freq_cis_imag,
 * [wcls]. Each per-layer tensor holds all layers back to back; the table gets
 * one zero-copy slice per layer under GGUF's llama names.
 *
 * tokenizer.bin: int32 max_token_length, then per token float32 score,
 * int32 length, bytes. llama2.c writes spaces as ' ' (not '▁') and BOS/EOS
 * as "\n<s>\n" / "\n</s>\n"; we turn them back into SentencePiece pieces. */
#include "format/format.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

static int32_t rd_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* ---- tokenizer.bin ---- */

static int32_t infer_type(const char *p, size_t n) {
    if (n == 5 && memcmp(p, "<unk>", 5) == 0) return OWL_TOKTYPE_UNKNOWN;
    if ((n == 3 && memcmp(p, "<s>", 3) == 0) || (n == 4 && memcmp(p, "</s>", 4) == 0)) return OWL_TOKTYPE_CONTROL;
    if (n == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>') {
        bool hex = true;
        for (int k = 3; k < 5; k++) {
            char c = p[k];
            hex = hex && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
        }
        if (hex) return OWL_TOKTYPE_BYTE;
    }
    return OWL_TOKTYPE_NORMAL;
}

/* Parses tokenizer.bin bytes; expect_n < 0: as many tokens as the file holds. */
static owl_status parse_tokenizer(const char *path, const uint8_t *d, size_t size, int64_t expect_n, owl_meta *meta) {
    if (size < 4) return owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes is too short for a tokenizer.bin header", path, size);
    int32_t max_len = rd_i32(d);
    if (max_len <= 0 || max_len > (1 << 20))
        return owl_errorf(OWL_ERR_FORMAT, "%s: max_token_length = %d (1..1048576 expected)", path, (int)max_len);
    /* First pass: count tokens and check every length. */
    size_t off = 4, n = 0, text_bytes = 0;
    while (off < size && (expect_n < 0 || (int64_t)n < expect_n)) {
        if (size - off < 8)
            return owl_errorf(OWL_ERR_FORMAT, "%s: token %zu: truncated (%zu bytes left, 8 needed for score and length)",
                              path, n, size - off);
        int32_t len = rd_i32(d + off + 4);
        if (len < 0 || len > max_len)
            return owl_errorf(OWL_ERR_FORMAT, "%s: token %zu: length %d (0..max_token_length %d expected)", path, n,
                              (int)len, (int)max_len);
        off += 8;
        if ((size_t)len > size - off)
            return owl_errorf(OWL_ERR_FORMAT, "%s: token %zu: length %d exceeds the %zu bytes left", path, n, (int)len,
                              size - off);
        off += (size_t)len;
        text_bytes += (size_t)len;
        n++;
    }
    if (n == 0) return owl_errorf(OWL_ERR_FORMAT, "%s: no tokens", path);
    if (expect_n >= 0 && (int64_t)n != expect_n)
        return owl_errorf(OWL_ERR_FORMAT, "%s: holds %zu tokens, the checkpoint's vocab_size is %lld", path, n,
                          (long long)expect_n);
    if (off != size && expect_n >= 0)
        return owl_errorf(OWL_ERR_FORMAT,
                          "%s: %zu bytes left after the checkpoint's vocab_size of %zu tokens: vocabulary size mismatch",
                          path, size - off, n);
    if (off != size) return owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes left after %zu tokens", path, size - off, n);
    if (n > (1u << 24)) return owl_errorf(OWL_ERR_FORMAT, "%s: %zu tokens is too many", path, n);

    owl_str *pieces = malloc(n * sizeof *pieces);
    float *scores = malloc(n * sizeof *scores);
    int32_t *types = malloc(n * sizeof *types);
    char *text = malloc(3 * text_bytes + 1); /* ' ' (1 byte) becomes '▁' (3 bytes) */
    owl_status s = OWL_OK;
    if (!pieces || !scores || !types || !text) {
        s = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for %zu tokens", path, n);
        goto done;
    }
    off = 4;
    size_t t = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)rd_i32(d + off);
        memcpy(&scores[i], &bits, 4);
        size_t len = (size_t)rd_i32(d + off + 4);
        const char *p = (const char *)d + off + 8;
        off += 8 + len;
        /* llama2.c's export writes BOS/EOS as "\n<s>\n" and "\n</s>\n" */
        if (len >= 2 && p[0] == '\n' && p[len - 1] == '\n' && infer_type(p + 1, len - 2) == OWL_TOKTYPE_CONTROL) {
            p++;
            len -= 2;
        }
        char *q = text + t;
        size_t m = 0;
        for (size_t k = 0; k < len; k++) {
            if (p[k] == ' ') {
                memcpy(q + m, SPACE_MARK, 3);
                m += 3;
            } else {
                q[m++] = p[k];
            }
        }
        pieces[i] = (owl_str){q, m};
        types[i] = infer_type(q, m);
        t += m;
    }
    if ((s = owl_meta_set_str(meta, "tokenizer.ggml.model", "llama", 5)) != OWL_OK) goto done;
    if ((s = owl_meta_set_str_arr(meta, "tokenizer.ggml.tokens", pieces, n)) != OWL_OK) goto done;
    if ((s = owl_meta_set_arr(meta, "tokenizer.ggml.scores", OWL_META_F32, scores, n)) != OWL_OK) goto done;
    if ((s = owl_meta_set_arr(meta, "tokenizer.ggml.token_type", OWL_META_I32, types, n)) != OWL_OK) goto done;
    if (n > 0 && (s = owl_meta_set_u32(meta, "tokenizer.ggml.unknown_token_id", 0)) != OWL_OK) goto done;
    if (n > 1 && (s = owl_meta_set_u32(meta, "tokenizer.ggml.bos_token_id", 1)) != OWL_OK) goto done;
    if (n > 2 && (s = owl_meta_set_u32(meta, "tokenizer.ggml.eos_token_id", 2)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_bos_token", true)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_eos_token", false)) != OWL_OK) goto done;
    if ((s = owl_meta_set_bool(meta, "tokenizer.ggml.add_space_prefix", true)) != OWL_OK) goto done;
done:
    free(pieces);
    free(scores);
    free(types);
    free(text);
    return s;
}

static owl_status read_tokenizer(const char *path, int64_t expect_n, owl_meta *meta) {
    char *data = NULL;
    size_t size = 0;
    owl_status s = owl_read_file(path, &data, &size);
    if (s != OWL_OK) return s;
    s = parse_tokenizer(path, (const uint8_t *)data, size, expect_n, meta);
    free(data);
    return s;
}

owl_status owl_llama2c_tokenizer_read_mem(const char *name, const uint8_t *data, size_t size, owl_meta *meta) {
    if (!name || !meta || (!data && size > 0)) return owl_errorf(OWL_ERR_ARG, "owl_llama2c_tokenizer_read_mem: NULL argument");
    return parse_tokenizer(name, data, size, -1, meta);
}

owl_status owl_llama2c_tokenizer_read(const char *path, owl_meta *meta) {
    if (!path || !meta) return owl_errorf(OWL_ERR_ARG, "owl_llama2c_tokenizer_read: NULL argument");
    return read_tokenizer(path, -1, meta);
}

/* ---- checkpoint ---- */

typedef struct l2c_header {
    int64_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    bool shared;
} l2c_header;

static owl_status check_field(const char *path, const char *name, int64_t v, int64_t max) {
    if (v <= 0 || v > max)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header field %s = %lld (1..%lld expected)", path, name, (long long)v,
                          (long long)max);
    return OWL_OK;
}

static owl_status check_header(const char *path, const uint8_t *d, size_t size, l2c_header *h) {
    if (size < 28)
        return owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes is too short for a llama2.c header (28 bytes)", path, size);
    h->dim = rd_i32(d);
    h->hidden = rd_i32(d + 4);
    h->n_layers = rd_i32(d + 8);
    h->n_heads = rd_i32(d + 12);
    h->n_kv_heads = rd_i32(d + 16);
    int64_t vocab = rd_i32(d + 20);
    h->seq_len = rd_i32(d + 24);
    h->shared = vocab > 0;
    h->vocab = vocab < 0 ? -vocab : vocab;
    owl_status s;
    if ((s = check_field(path, "dim", h->dim, 1 << 20)) != OWL_OK) return s;
    if ((s = check_field(path, "hidden_dim", h->hidden, 1 << 22)) != OWL_OK) return s;
    if ((s = check_field(path, "n_layers", h->n_layers, 1 << 12)) != OWL_OK) return s;
    if ((s = check_field(path, "n_heads", h->n_heads, h->dim)) != OWL_OK) return s;
    if ((s = check_field(path, "n_kv_heads", h->n_kv_heads, h->n_heads)) != OWL_OK) return s;
    if ((s = check_field(path, "vocab_size", h->vocab, 1 << 24)) != OWL_OK) return s;
    if ((s = check_field(path, "seq_len", h->seq_len, 1 << 24)) != OWL_OK) return s;
    if (h->dim % h->n_heads != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header field n_heads = %lld does not divide dim = %lld", path,
                          (long long)h->n_heads, (long long)h->dim);
    if (h->n_heads % h->n_kv_heads != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header field n_kv_heads = %lld does not divide n_heads = %lld", path,
                          (long long)h->n_kv_heads, (long long)h->n_heads);
    if ((h->dim / h->n_heads) % 2 != 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: head size %lld (dim / n_heads) is odd; RoPE needs it even", path,
                          (long long)(h->dim / h->n_heads));
    return OWL_OK;
}

/* One array of the checkpoint: count rows x cols per layer (layers = 0: not per layer). */
typedef struct l2c_tensor {
    const char *name; /* GGUF name pattern ("%d" for the layer), NULL: skipped */
    int64_t layers, rows, cols;
    int n_dims; /* 1: a vector of cols */
} l2c_tensor;

owl_status owl_llama2c_read(const char *path, const char *tokenizer_path, owl_weights *out) {
    if (!path || !out) return owl_errorf(OWL_ERR_ARG, "owl_llama2c_read: NULL argument");
    owl_status s = owl_weights_init(out, path, "llama2c");
    if (s != OWL_OK) return s;
    owl_mmap m;
    if ((s = owl_mmap_open(&m, path)) != OWL_OK) goto fail;
    const uint8_t *base = m.data;
    size_t size = m.size;
    if ((s = owl_weights_keep_map(out, &m, NULL)) != OWL_OK) {
        owl_mmap_close(&m);
        goto fail;
    }
    l2c_header h = {0};
    if ((s = check_header(path, base, size, &h)) != OWL_OK) goto fail;
    int64_t head = h.dim / h.n_heads, kv_dim = head * h.n_kv_heads;
    const l2c_tensor tensors[] = {
        {"token_embd.weight", 0, h.vocab, h.dim, 2},
        {"blk.%d.attn_norm.weight", h.n_layers, 1, h.dim, 1},
        {"blk.%d.attn_q.weight", h.n_layers, h.dim, h.dim, 2},
        {"blk.%d.attn_k.weight", h.n_layers, kv_dim, h.dim, 2},
        {"blk.%d.attn_v.weight", h.n_layers, kv_dim, h.dim, 2},
        {"blk.%d.attn_output.weight", h.n_layers, h.dim, h.dim, 2},
        {"blk.%d.ffn_norm.weight", h.n_layers, 1, h.dim, 1},
        {"blk.%d.ffn_gate.weight", h.n_layers, h.hidden, h.dim, 2},
        {"blk.%d.ffn_down.weight", h.n_layers, h.dim, h.hidden, 2},
        {"blk.%d.ffn_up.weight", h.n_layers, h.hidden, h.dim, 2},
        {"output_norm.weight", 0, 1, h.dim, 1},
        {NULL, 0, h.seq_len, head / 2, 2}, /* freq_cis_real */
        {NULL, 0, h.seq_len, head / 2, 2}, /* freq_cis_imag */
        {"output.weight", 0, h.vocab, h.dim, 2},
    };
    size_t n_t = sizeof tensors / sizeof tensors[0] - (h.shared ? 1 : 0);
    /* The size the header implies, overflow-safe. */
    uint64_t want = 28;
    for (size_t i = 0; i < n_t; i++) {
        uint64_t e, b;
        const l2c_tensor *t = &tensors[i];
        if (!owl_mul_ok((uint64_t)t->rows, (uint64_t)t->cols, &e) ||
            !owl_mul_ok(e, (uint64_t)(t->layers ? t->layers : 1), &e) || !owl_mul_ok(e, 4, &b) ||
            !owl_add_ok(want, b, &want)) {
            s = owl_errorf(OWL_ERR_FORMAT, "%s: the header's sizes overflow (dim %lld, hidden_dim %lld, n_layers %lld, "
                                           "vocab_size %lld)",
                           path, (long long)h.dim, (long long)h.hidden, (long long)h.n_layers, (long long)h.vocab);
            goto fail;
        }
    }
    if (want != size) {
        s = owl_errorf(OWL_ERR_FORMAT,
                       "%s: file is %zu bytes, the header (dim %lld, hidden_dim %lld, n_layers %lld, n_heads %lld, "
                       "n_kv_heads %lld, vocab_size %lld%s, seq_len %lld) implies %llu",
                       path, size, (long long)h.dim, (long long)h.hidden, (long long)h.n_layers, (long long)h.n_heads,
                       (long long)h.n_kv_heads, (long long)h.vocab, h.shared ? "" : " unshared", (long long)h.seq_len,
                       (unsigned long long)want);
        goto fail;
    }
    size_t off = 28;
    for (size_t i = 0; i < n_t; i++) {
        const l2c_tensor *t = &tensors[i];
        uint64_t slice = (uint64_t)t->rows * (uint64_t)t->cols * 4; /* checked above */
        int64_t layers = t->layers ? t->layers : 1;
        for (int64_t l = 0; l < layers; l++) {
            if (t->name) {
                char name[64];
                if (t->layers) snprintf(name, sizeof name, t->name, (int)l);
                else snprintf(name, sizeof name, "%s", t->name);
                int64_t ne[2] = {t->cols, t->rows};
                if ((s = owl_weights_add(out, name, OWL_F32, t->n_dims, ne, base + off, slice)) != OWL_OK) goto fail;
            }
            off += slice;
        }
    }

    owl_meta *meta = &out->meta;
    if ((s = owl_meta_set_str(meta, "general.architecture", "llama", 5)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.embedding_length", (uint32_t)h.dim)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.feed_forward_length", (uint32_t)h.hidden)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.block_count", (uint32_t)h.n_layers)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.attention.head_count", (uint32_t)h.n_heads)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.attention.head_count_kv", (uint32_t)h.n_kv_heads)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.context_length", (uint32_t)h.seq_len)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.rope.dimension_count", (uint32_t)head)) != OWL_OK ||
        (s = owl_meta_set_f32(meta, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) != OWL_OK ||
        (s = owl_meta_set_f32(meta, "llama.rope.freq_base", 10000.0f)) != OWL_OK ||
        (s = owl_meta_set_u32(meta, "llama.vocab_size", (uint32_t)h.vocab)) != OWL_OK)
        goto fail;

    /* The tokenizer: given, or tokenizer.bin beside the checkpoint. */
    char *tpath = NULL;
    if (tokenizer_path) {
        tpath = strdup(tokenizer_path);
    } else {
        const char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path + 1) : 0;
        tpath = malloc(dir + sizeof "tokenizer.bin");
        if (tpath) {
            memcpy(tpath, path, dir);
            memcpy(tpath + dir, "tokenizer.bin", sizeof "tokenizer.bin");
        }
    }
    if (!tpath) {
        s = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s = read_tokenizer(tpath, h.vocab, meta);
    if (s != OWL_OK && !tokenizer_path) owl_error_prefix(s, "%s: the tokenizer beside the checkpoint", path);
    free(tpath);
    if (s != OWL_OK) goto fail;
    return OWL_OK;
fail:
    owl_weights_free(out);
    return s;
}
