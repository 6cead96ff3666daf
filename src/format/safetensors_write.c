/* safetensors writer: u64 header length, a JSON header (tensor names sorted,
 * __metadata__ from the string entries of a metadata dictionary), padded
 * with spaces so that the data section starts 8-byte aligned, then the
 * tensor bytes in the header's order. Written to a temporary file beside
 * the target, flushed to disk and renamed into place. */
#include "format/format.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *st_dtype_name(owl_dtype t) {
    switch (t) {
    case OWL_F32: return "F32";
    case OWL_F16: return "F16";
    case OWL_BF16: return "BF16";
    default: return NULL;
    }
}


static const owl_weight *sort_base; /* qsort has no context argument */
static int cmp_name(const void *a, const void *b) {
    return strcmp(sort_base[*(const size_t *)a].name, sort_base[*(const size_t *)b].name);
}

/* Builds the header JSON (unpadded) into a malloc'd string. */
static owl_status build_header(const char *path, const owl_weight *t, const size_t *order, size_t n,
                               const owl_meta *metadata, char **out) {
    json_t *root = json_object();
    owl_status st = OWL_OK;
    if (!root) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (metadata) {
        json_t *m = NULL;
        for (size_t i = 0; i < metadata->n; i++) {
            const owl_meta_entry *e = &metadata->entries[i];
            if (e->value.type != OWL_META_STRING) continue;
            if (!m && !(m = json_object())) goto nomem;
            json_t *s = json_stringn(e->value.s.ptr, e->value.s.len);
            char *k = strndup(e->key.ptr, e->key.len);
            if (!s || !k || json_object_set_new(m, k, s) != 0) {
                free(k);
                json_decref(m);
                st = owl_errorf(OWL_ERR_ARG, "%s: metadata key '%.*s' is not valid UTF-8 text", path,
                                (int)(e->key.len > 80 ? 80 : e->key.len), e->key.ptr);
                goto fail;
            }
            free(k);
        }
        if (m) json_object_set_new(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (size_t k = 0; k < n; k++) {
        const owl_weight *w = &t[order[k]];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        if (!e || !shape || !offs) {
            json_decref(e);
            json_decref(shape);
            json_decref(offs);
            goto nomem;
        }
        json_object_set_new(e, "dtype", json_string(st_dtype_name(w->dtype)));
        for (int d = w->n_dims - 1; d >= 0; d--) json_array_append_new(shape, json_integer(w->ne[d]));
        json_object_set_new(e, "shape", shape);
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + w->nbytes)));
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, w->name, e) != 0) {
            st = owl_errorf(OWL_ERR_ARG, "%s: tensor name '%s' is not valid UTF-8", path, w->name);
            goto fail;
        }
        off += w->nbytes;
    }
    *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!*out) goto nomem;
    json_decref(root);
    return OWL_OK;
nomem:
    st = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory building the header", path);
fail:
    json_decref(root);
    return st;
}

static owl_status check_tensors(const char *path, const owl_weight *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const owl_weight *w = &t[i];
        if (!w->name || !*w->name) return owl_errorf(OWL_ERR_ARG, "%s: tensor %zu has no name", path, i);
        if (strcmp(w->name, "__metadata__") == 0)
            return owl_errorf(OWL_ERR_ARG, "%s: a tensor cannot be named __metadata__", path);
        if (!st_dtype_name(w->dtype))
            return owl_errorf(OWL_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (safetensors: F32, F16, BF16)", path,
                              w->name, owl_dtype_name(w->dtype));
        if (w->n_dims < 1 || w->n_dims > OWL_MAX_DIMS)
            return owl_errorf(OWL_ERR_ARG, "%s: tensor '%s' has %d dimensions", path, w->name, w->n_dims);
        uint64_t ne = 1, want;
        for (int d = 0; d < w->n_dims; d++)
            if (w->ne[d] < 0 || !owl_mul_ok(ne, (uint64_t)w->ne[d], &ne))
                return owl_errorf(OWL_ERR_ARG, "%s: tensor '%s' has a bad shape", path, w->name);
        if (!owl_dtype_bytes(w->dtype, ne, &want) || want != w->nbytes || (want && !w->data))
            return owl_errorf(OWL_ERR_ARG, "%s: tensor '%s' holds %llu bytes, its shape needs %llu", path, w->name,
                              (unsigned long long)w->nbytes, (unsigned long long)want);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[j].name, w->name) == 0)
                return owl_errorf(OWL_ERR_ARG, "%s: two tensors are named '%s'", path, w->name);
    }
    return OWL_OK;
}

owl_status owl_safetensors_write(const char *path, const owl_weight *tensors, size_t n, const owl_meta *metadata) {
    owl_status st = check_tensors(path, tensors, n);
    if (st) return st;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) order[i] = i;
    sort_base = tensors;
    qsort(order, n, sizeof *order, cmp_name);
    sort_base = NULL;
    char *hdr = NULL;
    if ((st = build_header(path, tensors, order, n, metadata, &hdr))) {
        free(order);
        return st;
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(order);
        free(hdr);
        return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        st = owl_errorf(OWL_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        goto out;
    }
    (void)fchmod(fd, 0644);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (size_t k = 0; ok && k < n; k++) {
        const owl_weight *w = &tensors[order[k]];
        ok = w->nbytes == 0 || fwrite(w->data, 1, (size_t)w->nbytes, f) == w->nbytes;
    }
    int err = ok ? 0 : (errno ? errno : EIO);
    if (!err && fflush(f) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(f)) != 0) err = errno ? errno : EIO;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) {
        st = owl_errorf(OWL_ERR_IO, "%s: write failed: %s", path, strerror(err));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        st = owl_errorf(OWL_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    free(hdr);
    free(order);
    return st;
}
