/* safetensors reader: single files and sharded checkpoints (an index JSON
 * whose "weight_map" names the file of every tensor), mapped, zero-copy.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON (an object:
 * tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an
 * optional "__metadata__" object of strings), then the data section; offsets
 * are relative to its start. Every field is checked before use: the header
 * length against the file, each tensor's bytes against its dtype and shape
 * (overflow-checked) and against the data section, and no two tensors may
 * share bytes. */
#include "format/format.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct st_span {
    uint64_t begin, end;
    size_t idx; /* position in the header, for messages */
    const char *name;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Prints a possibly hostile name: printable bytes as is, others as \xNN. */
static const char *safe(char *buf, size_t cap, const char *s) {
    size_t o = 0, len = strlen(s);
    for (size_t i = 0; i < len && i < 80 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\'') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (len > 80 && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

bool owl_safetensors_dtype(const char *name, owl_dtype *out) {
    if (strcmp(name, "F32") == 0) *out = OWL_F32;
    else if (strcmp(name, "F16") == 0) *out = OWL_F16;
    else if (strcmp(name, "BF16") == 0) *out = OWL_BF16;
    else return false;
    return true;
}

/* One tensor entry: checks and adds it (renamed) to ws. */
static owl_status add_entry(owl_weights *ws, const char *file, const char *name, json_t *info,
                            const uint8_t *data, uint64_t data_size, owl_st_rename_fn rename, void *ud,
                            st_span *span) {
    char nb[128];
    const char *sn = safe(nb, sizeof nb, name);
    if (!json_is_object(info))
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", file, sn);
    json_t *jd = json_object_get(info, "dtype"), *js = json_object_get(info, "shape"),
           *jo = json_object_get(info, "data_offsets");
    if (!json_is_string(jd)) return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': dtype missing or not a string", file, sn);
    if (!json_is_array(js)) return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': shape missing or not an array", file, sn);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': data_offsets missing or not [begin, end]", file, sn);
    char db[64];
    const char *dname = json_string_value(jd);
    owl_dtype dt;
    if (!owl_safetensors_dtype(dname, &dt))
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: tensor '%s': dtype '%s' is not supported (F32, F16, BF16)", file,
                          sn, safe(db, sizeof db, dname));
    size_t nd = json_array_size(js);
    if (nd > OWL_MAX_DIMS)
        return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)", file, sn, nd,
                          OWL_MAX_DIMS);
    int64_t ne[OWL_MAX_DIMS] = {1, 1, 1, 1};
    uint64_t nelem = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", file, sn,
                              i);
        uint64_t v = (uint64_t)json_integer_value(d);
        if (!owl_mul_ok(nelem, v, &nelem) || nelem > (1ull << 56))
            return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': shape element count overflows", file, sn);
        ne[nd - 1 - i] = (int64_t)v; /* GGUF order: fastest dimension first */
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 || json_integer_value(je) < 0)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", file, sn);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (end < begin)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", file, sn,
                          (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return owl_errorf(OWL_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data section (%llu bytes)",
                          file, sn, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_size);
    uint64_t want;
    if (!owl_dtype_bytes(dt, nelem, &want) || want != end - begin)
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': %llu bytes in data_offsets, but %s x %llu elements is %llu",
                          file, sn, (unsigned long long)(end - begin), dname, (unsigned long long)nelem,
                          (unsigned long long)want);
    span->begin = begin;
    span->end = end;
    span->name = name;

    char nbuf[512];
    bool skip = false;
    const char *tname = name;
    if (rename) {
        owl_status st = rename(ud, name, nbuf, sizeof nbuf, &skip);
        if (st) return owl_error_prefix(st, "%s", file);
        tname = nbuf;
    }
    if (skip) return OWL_OK;
    if (owl_weights_find(ws, tname))
        return owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s': a tensor named '%s' was already read", file, sn,
                          safe(db, sizeof db, tname));
    const uint8_t *p = data + begin;
    size_t esz = dt == OWL_F32 ? 4 : 2;
    if (((uintptr_t)p % esz) != 0 && want > 0) { /* unaligned: keep an aligned copy */
        uint8_t *c = owl_arena_alloc(&ws->arena, (size_t)want);
        if (!c) return owl_errorf(OWL_ERR_NOMEM, "%s: tensor '%s': out of memory", file, sn);
        memcpy(c, p, (size_t)want);
        p = c;
    }
    int n_dims = nd == 0 ? 1 : (int)nd;
    return owl_weights_add(ws, tname, dt, n_dims, ne, want ? p : data, want);
}

/* Parses the header and adds the tensors; data must outlive ws. */
static owl_status parse(owl_weights *ws, const char *file, const uint8_t *data, size_t size,
                        owl_st_rename_fn rename, void *ud, bool keep_meta) {
    if (size < 8) return owl_errorf(OWL_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", file, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (hlen > ST_MAX_HEADER)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header length %llu is absurd (limit %u)", file,
                          (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header length %llu is larger than the file after it (%zu bytes)", file,
                          (unsigned long long)hlen, size - 8);
    if (hlen < 2) return owl_errorf(OWL_ERR_FORMAT, "%s: header of %llu bytes is not a JSON object", file,
                                    (unsigned long long)hlen);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return owl_errorf(OWL_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)", file, jerr.text,
                          jerr.line, jerr.column);
    owl_status st = OWL_OK;
    st_span *spans = NULL;
    if (!json_is_object(root)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: header is JSON but not an object", file);
        goto done;
    }
    const uint8_t *sec = data + 8 + hlen;
    uint64_t sec_size = size - 8 - hlen;
    size_t n = json_object_size(root);
    spans = calloc(n ? n : 1, sizeof *spans);
    if (!spans) {
        st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }
    size_t ns = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                st = owl_errorf(OWL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", file);
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                char kb[128];
                if (!json_is_string(mv)) {
                    st = owl_errorf(OWL_ERR_FORMAT, "%s: __metadata__ '%s' is not a string", file,
                                    safe(kb, sizeof kb, mk));
                    goto done;
                }
                if (keep_meta &&
                    (st = owl_meta_set_str(&ws->meta, mk, json_string_value(mv), json_string_length(mv))))
                    goto done;
            }
            continue;
        }
        spans[ns].idx = ns;
        if ((st = add_entry(ws, file, key, val, sec, sec_size, rename, ud, &spans[ns]))) goto done;
        ns++;
    }
    qsort(spans, ns, sizeof *spans, cmp_span);
    for (size_t i = 1; i < ns; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            char a[128], b[128];
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", file,
                            safe(a, sizeof a, spans[i - 1].name), (unsigned long long)spans[i - 1].begin,
                            (unsigned long long)spans[i - 1].end, safe(b, sizeof b, spans[i].name),
                            (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
            goto done;
        }
    }
done:
    free(spans);
    json_decref(root);
    return st;
}

owl_status owl_safetensors_add(owl_weights *ws, const char *path, owl_st_rename_fn rename, void *ud,
                               bool keep_meta) {
    owl_mmap m;
    owl_status st = owl_mmap_open(&m, path);
    if (st) return st;
    const owl_mmap *kept;
    if ((st = owl_weights_keep_map(ws, &m, &kept))) {
        owl_mmap_close(&m);
        return st;
    }
    return parse(ws, path, kept->data, kept->size, rename, ud, keep_meta);
}

owl_status owl_safetensors_read(const char *path, owl_weights *out) {
    owl_status st = owl_weights_init(out, path, "safetensors");
    if (st) return st;
    if ((st = owl_safetensors_add(out, path, NULL, NULL, true))) owl_weights_free(out);
    return st;
}

owl_status owl_safetensors_read_mem(const char *name, const uint8_t *data, size_t size, owl_weights *out) {
    owl_status st = owl_weights_init(out, name, "safetensors");
    if (st) return st;
    if ((st = parse(out, name, data, size, NULL, NULL, true))) owl_weights_free(out);
    return st;
}

/* ---- sharded checkpoints ---- */

typedef struct shard_ctx {
    json_t *map;        /* weight_map */
    json_t *seen;       /* names read so far */
    const char *file;   /* the shard being read (as the index names it) */
    owl_st_rename_fn rename;
    void *ud;
} shard_ctx;

static owl_status shard_rename(void *p, const char *name, char *buf, size_t cap, bool *skip) {
    shard_ctx *c = p;
    json_t *f = json_object_get(c->map, name);
    if (!f || strcmp(json_string_value(f), c->file) != 0) { /* the index puts it elsewhere (or nowhere) */
        *skip = true;
        return OWL_OK;
    }
    json_object_set_new(c->seen, name, json_true());
    if (c->rename) return c->rename(c->ud, name, buf, cap, skip);
    size_t n = strlen(name);
    if (n >= cap) return owl_errorf(OWL_ERR_FORMAT, "tensor name of %zu bytes is too long", n);
    memcpy(buf, name, n + 1);
    return OWL_OK;
}

owl_status owl_safetensors_add_index(owl_weights *ws, const char *index_path, owl_st_rename_fn rename, void *ud) {
    char *text;
    size_t len;
    owl_status st = owl_read_file(index_path, &text, &len);
    if (st) return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return owl_errorf(OWL_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", index_path, jerr.text,
                          jerr.line, jerr.column);
    shard_ctx c = {.map = json_object_get(root, "weight_map"), .seen = json_object(), .rename = rename, .ud = ud};
    json_t *files = json_array();
    char *dir = NULL;
    if (!c.seen || !files) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!json_is_object(root) || !json_is_object(c.map)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(c.map, key, val) {
        char a[128], b[128];
        const char *f = json_string_value(val);
        if (!f || !*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: weight_map['%s'] is not a file name in the same directory%s%s%s",
                            index_path, safe(a, sizeof a, key), f ? " ('" : "", f ? safe(b, sizeof b, f) : "",
                            f ? "')" : "");
            goto done;
        }
        bool known = false;
        for (size_t i = 0; i < json_array_size(files) && !known; i++)
            known = strcmp(json_string_value(json_array_get(files, i)), f) == 0;
        if (!known) json_array_append(files, val);
    }
    const char *slash = strrchr(index_path, '/');
    size_t dlen = slash ? (size_t)(slash - index_path) + 1 : 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        const char *f = json_string_value(json_array_get(files, i));
        size_t flen = strlen(f);
        free(dir);
        if (!(dir = malloc(dlen + flen + 1))) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(dir, index_path, dlen);
        memcpy(dir + dlen, f, flen + 1);
        if (!owl_file_exists(dir)) {
            st = owl_errorf(OWL_ERR_IO, "%s: shard '%s' named in weight_map does not exist", index_path, dir);
            goto done;
        }
        c.file = f;
        if ((st = owl_safetensors_add(ws, dir, shard_rename, &c, false))) goto done;
    }
    json_object_foreach(c.map, key, val) {
        if (!json_object_get(c.seen, key)) {
            char a[128], b[128];
            st = owl_errorf(OWL_ERR_FORMAT, "%s: tensor '%s' is not in its shard '%s'", index_path,
                            safe(a, sizeof a, key), safe(b, sizeof b, json_string_value(val)));
            goto done;
        }
    }
done:
    free(dir);
    json_decref(files);
    json_decref(c.seen);
    json_decref(root);
    return st;
}

owl_status owl_safetensors_read_index(const char *index_path, owl_weights *out) {
    owl_status st = owl_weights_init(out, index_path, "safetensors");
    if (st) return st;
    if ((st = owl_safetensors_add_index(out, index_path, NULL, NULL))) owl_weights_free(out);
    return st;
}
