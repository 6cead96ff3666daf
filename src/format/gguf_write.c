/* GGUF v3 writer: metadata (every value type, nested arrays), tensor infos,
 * aligned tensor data streamed from wherever it lives (each tensor, the last
 * included, padded to the alignment as ggml writes it), or produced tensor
 * by tensor by a callback while the file is written (owl quantize: one
 * tensor in memory at a time). The file is written
 * to a temporary file beside the target, flushed to disk and renamed into
 * place; on any error the temporary file is removed and the target is left
 * as it was. */
#include "format/format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct writer {
    FILE *f;
    const char *path;
    uint64_t pos;
    bool failed;
    int err; /* errno of the failed write */
    owl_gguf_fill_fn fill; /* tensors without data come from here */
    void *ud;
    owl_status fill_status; /* the callback's failure, if any */
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n) {
        w->failed = true;
        w->err = errno ? errno : EIO;
    }
    w->pos += n;
}

static void put_le(writer *w, uint64_t x, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(x >> (8 * i));
    put(w, b, (size_t)n);
}

static void put_str(writer *w, const char *s, size_t len) {
    put_le(w, len, 8);
    put(w, s, len);
}

static void put_zeros(writer *w, uint64_t n) {
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        put(w, zeros, k);
        n -= k;
    }
}

static int scalar_size(owl_meta_type t) {
    switch (t) {
    case OWL_META_U8: case OWL_META_I8: case OWL_META_BOOL: return 1;
    case OWL_META_U16: case OWL_META_I16: return 2;
    case OWL_META_U32: case OWL_META_I32: case OWL_META_F32: return 4;
    case OWL_META_U64: case OWL_META_I64: case OWL_META_F64: return 8;
    default: return 0;
    }
}

/* Checks a value before anything is written, so that a bad dictionary
 * fails with a message instead of a half-written file. */
static owl_status check_value(const owl_meta_value *v, const char *key, int depth) {
    if ((unsigned)v->type >= OWL_META_TYPE_COUNT)
        return owl_errorf(OWL_ERR_ARG, "key '%s': unknown value type %d", key, (int)v->type);
    if (v->type == OWL_META_STRING && v->s.len && !v->s.ptr)
        return owl_errorf(OWL_ERR_ARG, "key '%s': string of length %zu has no bytes", key, v->s.len);
    if (v->type != OWL_META_ARRAY) return OWL_OK;
    if (depth >= 16) return owl_errorf(OWL_ERR_ARG, "key '%s': arrays nested deeper than 16", key);
    owl_meta_type e = v->arr.elem;
    if ((unsigned)e >= OWL_META_TYPE_COUNT)
        return owl_errorf(OWL_ERR_ARG, "key '%s': unknown array element type %d", key, (int)e);
    if (v->arr.count == 0) return OWL_OK;
    if (e == OWL_META_STRING) {
        if (!v->arr.strs) return owl_errorf(OWL_ERR_ARG, "key '%s': array of strings has no strings", key);
        for (uint64_t i = 0; i < v->arr.count; i++)
            if (v->arr.strs[i].len && !v->arr.strs[i].ptr)
                return owl_errorf(OWL_ERR_ARG, "key '%s': string %llu has no bytes", key, (unsigned long long)i);
    } else if (e == OWL_META_ARRAY) {
        if (!v->arr.items) return owl_errorf(OWL_ERR_ARG, "key '%s': array of arrays has no items", key);
        for (uint64_t i = 0; i < v->arr.count; i++) {
            if (v->arr.items[i].type != OWL_META_ARRAY)
                return owl_errorf(OWL_ERR_ARG, "key '%s': item %llu of an array of arrays has type %s", key,
                                  (unsigned long long)i, owl_meta_type_name(v->arr.items[i].type));
            owl_status s = check_value(&v->arr.items[i], key, depth + 1);
            if (s != OWL_OK) return s;
        }
    } else {
        uint64_t bytes;
        if (!v->arr.raw || !owl_mul_ok(v->arr.count, (uint64_t)scalar_size(e), &bytes) || bytes > SIZE_MAX)
            return owl_errorf(OWL_ERR_ARG, "key '%s': array of %llu %s values has no data or is too large", key,
                              (unsigned long long)v->arr.count, owl_meta_type_name(e));
    }
    return OWL_OK;
}

static void put_scalar(writer *w, const owl_meta_value *v) {
    int n = scalar_size(v->type);
    switch (v->type) {
    case OWL_META_I8: case OWL_META_I16: case OWL_META_I32: case OWL_META_I64:
        put_le(w, (uint64_t)v->i, n);
        break;
    case OWL_META_F32: {
        float f = (float)v->f;
        uint32_t b;
        memcpy(&b, &f, 4);
        put_le(w, b, 4);
        break;
    }
    case OWL_META_F64: {
        uint64_t b;
        memcpy(&b, &v->f, 8);
        put_le(w, b, 8);
        break;
    }
    case OWL_META_BOOL: put_le(w, v->u ? 1 : 0, 1); break;
    default: put_le(w, v->u, n); break;
    }
}

/* The value without its type tag. */
static void put_value(writer *w, const owl_meta_value *v) {
    if (v->type == OWL_META_STRING) {
        put_str(w, v->s.ptr, v->s.len);
        return;
    }
    if (v->type != OWL_META_ARRAY) {
        put_scalar(w, v);
        return;
    }
    put_le(w, (uint64_t)v->arr.elem, 4);
    put_le(w, v->arr.count, 8);
    if (v->arr.count == 0) return;
    if (v->arr.elem == OWL_META_STRING) {
        for (uint64_t i = 0; i < v->arr.count; i++) put_str(w, v->arr.strs[i].ptr, v->arr.strs[i].len);
    } else if (v->arr.elem == OWL_META_ARRAY) {
        for (uint64_t i = 0; i < v->arr.count; i++) put_value(w, &v->arr.items[i]);
    } else if (v->arr.elem == OWL_META_BOOL) {
        const uint8_t *b = v->arr.raw;
        for (uint64_t i = 0; i < v->arr.count; i++) put_le(w, b[i] ? 1 : 0, 1);
    } else {
        put(w, v->arr.raw, (size_t)(v->arr.count * (uint64_t)scalar_size(v->arr.elem)));
    }
}

static owl_status check_tensor(const owl_weight *t, size_t i, bool streamed) {
    const char *name = t->name ? t->name : "";
    if (!t->name) return owl_errorf(OWL_ERR_ARG, "tensor #%zu has no name", i);
    if (strlen(name) >= 64) /* GGML_MAX_NAME: llama.cpp refuses longer names */
        return owl_errorf(OWL_ERR_ARG, "tensor name '%s' is %zu bytes long (at most 63)", name, strlen(name));
    if (t->n_dims < 1 || t->n_dims > OWL_MAX_DIMS)
        return owl_errorf(OWL_ERR_ARG, "tensor '%s': %d dimensions (must be 1..%d)", name, t->n_dims, OWL_MAX_DIMS);
    const owl_dtype_info *info = owl_dtype_get((uint32_t)t->dtype);
    if (!info) return owl_errorf(OWL_ERR_ARG, "tensor '%s': unknown dtype %d", name, (int)t->dtype);
    uint64_t nelem = 1, bytes;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->ne[d] < 1 || !owl_mul_ok(nelem, (uint64_t)t->ne[d], &nelem))
            return owl_errorf(OWL_ERR_ARG, "tensor '%s': bad dimension %d = %lld", name, d, (long long)t->ne[d]);
    }
    if (t->ne[0] % info->block != 0 || !owl_dtype_bytes(t->dtype, nelem, &bytes))
        return owl_errorf(OWL_ERR_ARG, "tensor '%s': row length %lld is not a whole number of %s blocks", name,
                          (long long)t->ne[0], info->name);
    if (bytes != t->nbytes)
        return owl_errorf(OWL_ERR_ARG, "tensor '%s': %llu bytes given, its shape as %s needs %llu", name,
                          (unsigned long long)t->nbytes, info->name, (unsigned long long)bytes);
    if (bytes && !t->data && !streamed) return owl_errorf(OWL_ERR_ARG, "tensor '%s' has no data", name);
    return OWL_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static owl_status check_input(const owl_meta *meta, const owl_weight *tensors, size_t n, uint32_t alignment,
                              bool streamed) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 30))
        return owl_errorf(OWL_ERR_ARG, "alignment %u is not a nonzero power of two (at most 2^30)", alignment);
    for (size_t i = 0; meta && i < meta->n; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(meta->entries[i].key.len > 200 ? 200 : meta->entries[i].key.len),
                 meta->entries[i].key.ptr ? meta->entries[i].key.ptr : "");
        owl_status s = check_value(&meta->entries[i].value, key, 0);
        if (s != OWL_OK) return s;
    }
    for (size_t i = 0; i < n; i++) {
        owl_status s = check_tensor(&tensors[i], i, streamed);
        if (s != OWL_OK) return s;
    }
    if (n < 2) return OWL_OK;
    const char **names = malloc(n * sizeof *names);
    if (!names) return owl_errorf(OWL_ERR_NOMEM, "out of memory checking %zu tensor names", n);
    for (size_t i = 0; i < n; i++) names[i] = tensors[i].name;
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            owl_status s = owl_errorf(OWL_ERR_ARG, "duplicate tensor name '%s'", names[i]);
            free(names);
            return s;
        }
    }
    free(names);
    return OWL_OK;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static void write_all(writer *w, const owl_meta *meta, const owl_weight *tensors, size_t n, uint32_t alignment) {
    size_t n_kv = meta ? meta->n : 0;
    bool have_alignment = meta && owl_meta_find(meta, "general.alignment");
    bool add_alignment = !have_alignment && alignment != GGUF_DEFAULT_ALIGNMENT;
    put(w, "GGUF", 4);
    put_le(w, 3, 4);
    put_le(w, n, 8);
    put_le(w, n_kv + (add_alignment ? 1 : 0), 8);
    for (size_t i = 0; i < n_kv; i++) {
        const owl_meta_entry *e = &meta->entries[i];
        put_str(w, e->key.ptr, e->key.len);
        if (owl_str_eq(e->key, "general.alignment")) { /* always the alignment used */
            put_le(w, OWL_META_U32, 4);
            put_le(w, alignment, 4);
            continue;
        }
        put_le(w, (uint64_t)e->value.type, 4);
        put_value(w, &e->value);
    }
    if (add_alignment) {
        put_str(w, "general.alignment", strlen("general.alignment"));
        put_le(w, OWL_META_U32, 4);
        put_le(w, alignment, 4);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const owl_weight *t = &tensors[i];
        put_str(w, t->name, strlen(t->name));
        put_le(w, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) put_le(w, (uint64_t)t->ne[d], 8);
        put_le(w, (uint64_t)t->dtype, 4);
        put_le(w, offset, 8);
        offset = align_up(offset + t->nbytes, alignment);
    }
    if (n == 0) return;
    put_zeros(w, align_up(w->pos, alignment) - w->pos);
    uint64_t start = w->pos;
    for (size_t i = 0; i < n && !w->failed; i++) {
        const uint8_t *p = tensors[i].data;
        uint64_t left = tensors[i].nbytes;
        if (!p && left > 0) {
            const void *got = NULL;
            owl_status s = w->fill(w->ud, i, &got);
            if (s == OWL_OK && !got) s = owl_errorf(OWL_ERR_ARG, "tensor '%s': no data given", tensors[i].name);
            if (s != OWL_OK) {
                w->fill_status = s;
                w->failed = true;
                return;
            }
            p = got;
        }
        while (left > 0 && !w->failed) { /* in pieces: fwrite takes size_t, and errors show early */
            size_t k = left > (1u << 26) ? (1u << 26) : (size_t)left;
            put(w, p, k);
            p += k;
            left -= k;
        }
        /* after the last tensor too: ggml's readers expect the data
         * section to be a whole number of aligned blocks */
        put_zeros(w, align_up(w->pos - start, alignment) - (w->pos - start));
    }
}

owl_status owl_gguf_write(const char *path, const owl_meta *meta, const owl_weight *tensors, size_t n_tensors,
                          uint32_t alignment) {
    return owl_gguf_write_stream(path, meta, tensors, n_tensors, alignment, NULL, NULL);
}

owl_status owl_gguf_write_stream(const char *path, const owl_meta *meta, const owl_weight *tensors, size_t n_tensors,
                                 uint32_t alignment, owl_gguf_fill_fn fill, void *ud) {
    if (alignment == 0) {
        uint64_t a = GGUF_DEFAULT_ALIGNMENT;
        if (meta && owl_meta_find(meta, "general.alignment") && !owl_meta_get_u64(meta, "general.alignment", &a))
            return owl_errorf(OWL_ERR_ARG, "%s: key 'general.alignment' is not an unsigned integer", path);
        if (a > UINT32_MAX) return owl_errorf(OWL_ERR_ARG, "%s: alignment %llu is too large", path,
                                              (unsigned long long)a);
        alignment = (uint32_t)a;
    }
    owl_status s = check_input(meta, tensors, n_tensors, alignment, fill != NULL);
    if (s != OWL_OK) return owl_error_prefix(s, "%s", path);

    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        s = owl_errorf(OWL_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a model file is readable like any other */
    writer w = {.f = fdopen(fd, "wb"), .path = path, .fill = fill, .ud = ud};
    if (!w.f) {
        s = owl_errorf(OWL_ERR_IO, "%s: cannot open %s: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return s;
    }
    setvbuf(w.f, NULL, _IOFBF, 1 << 20);
    write_all(&w, meta, tensors, n_tensors, alignment);
    if (w.fill_status != OWL_OK) { /* the producer failed: its message stands */
        fclose(w.f);
        unlink(tmp);
        free(tmp);
        return w.fill_status;
    }
    int err = w.failed ? w.err : 0;
    if (!w.failed && fflush(w.f) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(w.f)) != 0) err = errno ? errno : EIO;
    if (fclose(w.f) != 0 && !err) err = errno ? errno : EIO;
    if (err) {
        s = owl_errorf(OWL_ERR_IO, "%s: write failed: %s", path, strerror(err));
        unlink(tmp);
        free(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        s = owl_errorf(OWL_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return OWL_OK;
}
