/* Hugging Face directory -> GGUF, the way llama.cpp's converter lays it out:
 * the same metadata keys (hyper-parameters, tokenizer.ggml.*, chat template,
 * general.* from the model card's YAML front matter), the same tensor names,
 * matrices in the requested type (F32 / F16 / BF16), vectors (norms,
 * biases) in F32, and for the Llama family the Q/K rows of every head
 * reordered from rotate_half order (i, i + d/2) to adjacent pairs
 * (2i, 2i + 1), so that GGUF "llama" RoPE applies. */
#include "format/hf_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* llama.cpp's llama_ftype ids for general.file_type */
static uint32_t file_type_of(owl_dtype t) {
    switch (t) {
    case OWL_F16: return 1;
    case OWL_BF16: return 32;
    default: return 0;
    }
}

void owl_hf_permute_rows(const float *src, float *dst, int64_t n_heads, int64_t head_dim, int64_t cols) {
    int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t s = 0; s < 2; s++)
            for (int64_t i = 0; i < half; i++) {
                const float *from = src + (size_t)((h * head_dim + s * half + i) * cols);
                float *to = dst + (size_t)((h * head_dim + 2 * i + s) * cols);
                memcpy(to, from, sizeof(float) * (size_t)cols);
            }
}

/* ---- model card (README.md) YAML front matter ---- */

static size_t trim(const char *s, size_t n, const char **out) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) s++, n -= 2;
    *out = s;
    return n;
}

/* Scalars and lists of the top level: license, license_name, license_link,
 * base_model, tags, language. Anything else is ignored. */
static owl_status model_card(const char *dir, owl_meta *meta) {
    char *path = owl_hf_path(dir, "README.md"), *text = NULL;
    if (!path) return OWL_ERR_NOMEM;
    size_t len;
    owl_status st = OWL_OK;
    if (!owl_file_exists(path) || owl_read_file(path, &text, &len) != OWL_OK || len < 4 ||
        strncmp(text, "---", 3) != 0)
        goto done;
    enum { MAX_ITEMS = 64 };
    owl_str tags[MAX_ITEMS], langs[MAX_ITEMS], bases[MAX_ITEMS];
    size_t nt = 0, nl = 0, nb = 0;
    const char *list_key = NULL;
    const char *p = strchr(text, '\n');
    while (p && *p) {
        p++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n >= 3 && strncmp(p, "---", 3) == 0) break;
        const char *v;
        size_t vn;
        if (n && (p[0] == ' ' || p[0] == '-')) { /* "- item" under the last key */
            const char *q = p;
            size_t qn = trim(p, n, &q);
            if (qn >= 2 && q[0] == '-' && q[1] == ' ' && list_key) {
                vn = trim(q + 2, qn - 2, &v);
                owl_str s = {v, vn};
                if (strcmp(list_key, "tags") == 0 && nt < MAX_ITEMS) tags[nt++] = s;
                else if (strcmp(list_key, "language") == 0 && nl < MAX_ITEMS) langs[nl++] = s;
                else if (strcmp(list_key, "base_model") == 0 && nb < MAX_ITEMS) bases[nb++] = s;
            }
        } else {
            const char *colon = memchr(p, ':', n);
            list_key = NULL;
            if (colon) {
                size_t kn = (size_t)(colon - p);
                vn = trim(colon + 1, n - kn - 1, &v);
                static const char *const scal[][2] = {{"license", "general.license"},
                                                      {"license_name", "general.license.name"},
                                                      {"license_link", "general.license.link"}};
                static const char *const lists[] = {"tags", "language", "base_model"};
                for (size_t k = 0; k < 3; k++)
                    if (strlen(scal[k][0]) == kn && strncmp(p, scal[k][0], kn) == 0 && vn &&
                        (st = owl_meta_set_str(meta, scal[k][1], v, vn)))
                        goto done;
                for (size_t k = 0; k < 3; k++)
                    if (strlen(lists[k]) == kn && strncmp(p, lists[k], kn) == 0) {
                        list_key = lists[k];
                        if (vn && v[0] != '[') { /* a single value on the line */
                            owl_str s = {v, vn};
                            if (k == 0 && nt < MAX_ITEMS) tags[nt++] = s;
                            if (k == 1 && nl < MAX_ITEMS) langs[nl++] = s;
                            if (k == 2 && nb < MAX_ITEMS) bases[nb++] = s;
                        }
                    }
            }
        }
        p = e;
    }
    if (nt && (st = owl_meta_set_str_arr(meta, "general.tags", tags, nt))) goto done;
    if (nl && (st = owl_meta_set_str_arr(meta, "general.languages", langs, nl))) goto done;
    if (nb) {
        if ((st = owl_meta_set_u32(meta, "general.base_model.count", (uint32_t)nb))) goto done;
        for (size_t i = 0; i < nb; i++) {
            char key[64], url[600];
            snprintf(key, sizeof key, "general.base_model.%zu.name", i);
            if ((st = owl_meta_set_str(meta, key, bases[i].ptr, bases[i].len))) goto done;
            snprintf(key, sizeof key, "general.base_model.%zu.repo_url", i);
            int un = snprintf(url, sizeof url, "https://huggingface.co/%.*s", (int)(bases[i].len > 500 ? 500 : bases[i].len),
                              bases[i].ptr);
            if ((st = owl_meta_set_str(meta, key, url, (size_t)un))) goto done;
        }
    }
done:
    free(text);
    free(path);
    return st;
}

/* ---- conversion ---- */

static bool is_vector(const owl_weight *w) {
    int nd = w->n_dims;
    while (nd > 1 && w->ne[nd - 1] == 1) nd--;
    return nd == 1;
}

owl_status owl_hf_convert(const char *dir, const char *out_path, owl_dtype type) {
    if (type != OWL_F32 && type != OWL_F16 && type != OWL_BF16)
        return owl_errorf(OWL_ERR_ARG, "convert: output type %s is not F32, F16 or BF16", owl_dtype_name(type));
    owl_weights ws;
    owl_status st = owl_hf_dir_read(dir, &ws);
    if (st) return st;
    owl_meta meta = {0};
    owl_weight *out = calloc(ws.n ? ws.n : 1, sizeof *out);
    uint64_t *off = calloc(ws.n ? ws.n : 1, sizeof *off);
    float *tmp = NULL, *tmp2 = NULL;
    void *obuf = NULL;
    size_t cap = 0;
    const size_t esz_max = 4;
    char *spill = NULL;
    FILE *sf = NULL;
    owl_mmap map = {0};
    if (!out || !off) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* metadata: what the reader made, then the file's own general.* keys */
    for (size_t i = 0; i < ws.meta.n; i++) {
        char key[256];
        const owl_meta_entry *e = &ws.meta.entries[i];
        snprintf(key, sizeof key, "%.*s", (int)(e->key.len > 255 ? 255 : e->key.len), e->key.ptr);
        if ((st = owl_meta_set(&meta, key, &e->value))) goto done;
    }
    if ((st = owl_meta_set_str(&meta, "general.type", "model", 5)) ||
        (st = owl_meta_set_u32(&meta, "general.file_type", file_type_of(type))) ||
        (st = owl_meta_set_u32(&meta, "general.quantization_version", 2)) || (st = model_card(dir, &meta)))
        goto done;

    if (!owl_meta_find(&ws.meta, "tokenizer.ggml.model")) {
        char *tj = owl_hf_path(dir, "tokenizer.json");
        if (tj && owl_file_exists(tj)) { /* read_tokenizer skipped it: say why */
            st = owl_hf_tokenizer_json_meta(tj, &meta);
            if (!st) st = owl_errorf(OWL_ERR_UNSUPPORTED, "%s: tokenizer.json has no GGUF form", tj);
            free(tj);
            goto done;
        }
        free(tj);
        owl_log(OWL_LOG_WARN, "%s: no tokenizer.model or tokenizer.json: the GGUF has no vocabulary", dir);
    }
    owl_str an;
    owl_meta_get_str(&ws.meta, "general.architecture", &an);
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)(an.len > 31 ? 31 : an.len), an.ptr);
    char key[96];
    uint64_t n_heads = 0, n_kv = 0, dim = 0, hd = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    owl_meta_get_u64(&ws.meta, key, &n_heads);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    owl_meta_get_u64(&ws.meta, key, &n_kv);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    owl_meta_get_u64(&ws.meta, key, &dim);
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    if (!owl_meta_get_u64(&ws.meta, key, &hd) && n_heads) hd = dim / n_heads;
    /* the family decides the Q/K permutation: only llama-style ones */
    bool permute = strcmp(arch, "llama") == 0;

    /* Converted tensors go to a temporary file beside the output, mapped
     * afterwards: the pages are file-backed, so a model larger than memory
     * converts without holding every converted tensor in RAM. */
    spill = malloc(strlen(out_path) + 24);
    if (!spill) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    sprintf(spill, "%s.convert.XXXXXX", out_path);
    int fd = mkstemp(spill);
    if (fd < 0 || !(sf = fdopen(fd, "w+b"))) {
        st = owl_errorf(OWL_ERR_IO, "%s: cannot create a temporary file beside it: %s", out_path, strerror(errno));
        if (fd >= 0) close(fd);
        free(spill);
        spill = NULL;
        goto done;
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < ws.n; i++) {
        const owl_weight *w = &ws.w[i];
        owl_weight *o = &out[i];
        *o = *w;
        off[i] = UINT64_MAX;
        owl_dtype to = is_vector(w) ? OWL_F32 : type;
        size_t nl = strlen(w->name);
        bool is_q = nl > 14 && strcmp(w->name + nl - 14, ".attn_q.weight") == 0;
        bool is_k = nl > 14 && strcmp(w->name + nl - 14, ".attn_k.weight") == 0;
        int64_t heads = is_q ? (int64_t)n_heads : (int64_t)n_kv;
        bool perm = permute && (is_q || is_k);
        if (perm && (w->n_dims != 2 || heads <= 0 || hd < 2 || w->ne[1] != heads * (int64_t)hd)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s has %lld rows, not %lld heads x %llu", dir, w->name,
                            (long long)w->ne[1], (long long)heads, (unsigned long long)hd);
            goto done;
        }
        if (to == w->dtype && !perm) continue; /* written straight from the mapping */
        int64_t n = owl_weight_nelem(w);
        uint64_t nb, esz_in, esz_out;
        owl_dtype_bytes(w->dtype, 1, &esz_in);
        owl_dtype_bytes(to, 1, &esz_out);
        if (!owl_dtype_bytes(to, (uint64_t)n, &nb)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor %s is too large", dir, w->name);
            goto done;
        }
        /* whole tensor when permuted (Q/K are small), else 1M-element chunks */
        int64_t chunk = perm ? n : (n < (1 << 20) ? n : (1 << 20));
        size_t need = (size_t)(chunk ? chunk : 1);
        if (need > cap) {
            float *a = realloc(tmp, sizeof(float) * need), *b = a ? realloc(tmp2, sizeof(float) * need) : NULL;
            if (a) tmp = a;
            if (b) tmp2 = b;
            void *c = b ? realloc(obuf, (size_t)esz_max * need) : NULL;
            if (!c) {
                st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory converting %s", dir, w->name);
                goto done;
            }
            obuf = c;
            cap = need;
        }
        off[i] = pos;
        for (int64_t k = 0; k < n; k += chunk) {
            int64_t m = n - k < chunk ? n - k : chunk;
            if ((st = owl_to_f32(w->dtype, (const uint8_t *)w->data + (size_t)k * esz_in, tmp, m)))
                goto done;
            const float *src = tmp;
            if (perm) {
                owl_hf_permute_rows(tmp, tmp2, heads, (int64_t)hd, w->ne[0]);
                src = tmp2;
            }
            if ((st = owl_from_f32(to, src, obuf, m))) goto done;
            if (fwrite(obuf, (size_t)esz_out, (size_t)m, sf) != (size_t)m) {
                st = owl_errorf(OWL_ERR_IO, "%s: cannot write %s: %s", out_path, spill, strerror(errno));
                goto done;
            }
        }
        pos += nb;
        uint64_t pad = (64 - pos % 64) % 64; /* keep every converted tensor aligned */
        for (uint64_t k = 0; k < pad; k++) fputc(0, sf);
        pos += pad;
        o->dtype = to;
        o->nbytes = nb;
    }
    if (fflush(sf) != 0) {
        st = owl_errorf(OWL_ERR_IO, "%s: cannot write %s: %s", out_path, spill, strerror(errno));
        goto done;
    }
    if (pos > 0) {
        if ((st = owl_mmap_open(&map, spill))) goto done;
        for (size_t i = 0; i < ws.n; i++)
            if (off[i] != UINT64_MAX) out[i].data = map.data + off[i];
    }
    st = owl_gguf_write(out_path, &meta, out, ws.n, 0);
done:
    if (sf) fclose(sf);
    if (spill) unlink(spill);
    free(spill);
    owl_mmap_close(&map);
    free(off);
    free(out);
    free(tmp);
    free(tmp2);
    free(obuf);
    owl_meta_free(&meta);
    owl_weights_free(&ws);
    return st;
}
