/* GGUF reader (versions 2 and 3), zero-copy over a mapping or a buffer.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 key
 * count; the keys (string key, u32 type, value); the tensor infos (string
 * name, u32 n_dims, u64 ne[n_dims], u32 dtype, u64 offset); padding to the
 * alignment; the data section, where each tensor's offset is relative to the
 * section's start. A string is a u64 length and that many bytes; an array is
 * a u32 element type, a u64 count and the elements.
 *
 * Every count, length, offset and size is checked against the bytes that
 * are left before it is used; counts are bounded by the smallest encoding of
 * what they count, so a hostile count cannot cause a huge allocation. */
#include "format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_DEPTH 8          /* nested arrays */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct reader {
    const char *name;   /* file name for messages */
    const uint8_t *p;
    size_t size, pos;
    owl_weights *ws;
    char what[160];     /* "key 'x'", "tensor 'y'", ... for messages */
} reader;

/* Prints s (possibly hostile bytes) into buf: printable ASCII and UTF-8 as
 * is, other bytes as \xNN, at most ~80 bytes of input. */
static void safe_name(char *buf, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    size_t lim = len > 80 ? 80 : len;
    for (size_t i = 0; i < lim && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\'') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (lim < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o < cap ? o : cap - 1] = 0;
}

static void set_what_key(reader *r, const char *kind, owl_str s) {
    char nm[128];
    safe_name(nm, sizeof nm, s.ptr, s.len);
    snprintf(r->what, sizeof r->what, "%s '%s'", kind, nm);
}

static owl_status fail(reader *r, owl_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static owl_status fail(reader *r, owl_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->what[0]) return owl_errorf(st, "%s: %s: %s", r->name, r->what, msg);
    return owl_errorf(st, "%s: %s", r->name, msg);
}

static size_t left(const reader *r) { return r->size - r->pos; }

static owl_status need(reader *r, uint64_t n, const char *field) {
    if (n > left(r))
        return fail(r, OWL_ERR_FORMAT, "%s (%llu bytes at offset %zu) runs past the end of the file (size %zu)", field,
                    (unsigned long long)n, r->pos, r->size);
    return OWL_OK;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

static owl_status rd_u32(reader *r, uint32_t *v, const char *field) {
    owl_status s = need(r, 4, field);
    if (s != OWL_OK) return s;
    *v = (uint32_t)le(r->p + r->pos, 4);
    r->pos += 4;
    return OWL_OK;
}

static owl_status rd_u64(reader *r, uint64_t *v, const char *field) {
    owl_status s = need(r, 8, field);
    if (s != OWL_OK) return s;
    *v = le(r->p + r->pos, 8);
    r->pos += 8;
    return OWL_OK;
}

static owl_status rd_str(reader *r, owl_str *out, const char *field) {
    uint64_t len;
    char lenfield[96];
    snprintf(lenfield, sizeof lenfield, "%s length", field);
    owl_status s = rd_u64(r, &len, lenfield);
    if (s != OWL_OK) return s;
    if (len > left(r))
        return fail(r, OWL_ERR_FORMAT, "%s length %llu runs past the end of the file (size %zu)", field,
                    (unsigned long long)len, r->size);
    out->ptr = (const char *)r->p + r->pos;
    out->len = (size_t)len;
    r->pos += (size_t)len;
    return OWL_OK;
}

static int scalar_size(uint32_t t) {
    switch (t) {
    case OWL_META_U8: case OWL_META_I8: case OWL_META_BOOL: return 1;
    case OWL_META_U16: case OWL_META_I16: return 2;
    case OWL_META_U32: case OWL_META_I32: case OWL_META_F32: return 4;
    case OWL_META_U64: case OWL_META_I64: case OWL_META_F64: return 8;
    default: return 0;
    }
}

/* Decodes a scalar of type t at p into v. */
static void decode_scalar(owl_meta_value *v, uint32_t t, const uint8_t *p) {
    uint64_t x = le(p, scalar_size(t));
    v->type = (owl_meta_type)t;
    switch (t) {
    case OWL_META_I8: v->i = (int8_t)(uint8_t)x; break;
    case OWL_META_I16: v->i = (int16_t)(uint16_t)x; break;
    case OWL_META_I32: v->i = (int32_t)(uint32_t)x; break;
    case OWL_META_I64: v->i = (int64_t)x; break;
    case OWL_META_F32: {
        uint32_t b = (uint32_t)x;
        float f;
        memcpy(&f, &b, 4);
        v->f = f;
        break;
    }
    case OWL_META_F64: memcpy(&v->f, &x, 8); break;
    default: v->u = x; break;
    }
}

static owl_status rd_value(reader *r, uint32_t type, owl_meta_value *v, int depth);

static owl_status rd_array(reader *r, owl_meta_value *v, int depth) {
    uint32_t elem;
    uint64_t count;
    owl_status s = rd_u32(r, &elem, "array element type");
    if (s != OWL_OK) return s;
    if (elem >= OWL_META_TYPE_COUNT) return fail(r, OWL_ERR_FORMAT, "unknown array element type %u", elem);
    if ((s = rd_u64(r, &count, "array count")) != OWL_OK) return s;
    v->type = OWL_META_ARRAY;
    v->arr.elem = (owl_meta_type)elem;
    v->arr.count = count;
    int sz = scalar_size(elem);
    if (sz > 0) {
        uint64_t bytes;
        if (!owl_mul_ok(count, (uint64_t)sz, &bytes) || bytes > left(r))
            return fail(r, OWL_ERR_FORMAT, "array of %llu %s values runs past the end of the file (size %zu)",
                        (unsigned long long)count, owl_meta_type_name((owl_meta_type)elem), r->size);
        const uint8_t *raw = r->p + r->pos;
        if (elem == OWL_META_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (raw[i] > 1)
                    return fail(r, OWL_ERR_FORMAT, "bool array element %llu has value %u (must be 0 or 1)",
                                (unsigned long long)i, raw[i]);
        }
        v->arr.raw = count ? raw : NULL;
        r->pos += (size_t)bytes;
        return OWL_OK;
    }
    /* strings (>= 8 bytes each) or arrays (>= 12 bytes each): bound the count
     * by what is left before allocating. */
    uint64_t min = elem == OWL_META_STRING ? 8 : 12;
    if (count > left(r) / min)
        return fail(r, OWL_ERR_FORMAT, "array count %llu of %s runs past the end of the file (size %zu)",
                    (unsigned long long)count, owl_meta_type_name((owl_meta_type)elem), r->size);
    if (count == 0) return OWL_OK;
    if (elem == OWL_META_STRING) {
        owl_str *strs = owl_arena_alloc(&r->ws->meta.arena, (size_t)count * sizeof *strs);
        if (!strs) return owl_error_prefix(OWL_ERR_NOMEM, "%s: %s", r->name, r->what);
        for (uint64_t i = 0; i < count; i++) {
            char field[64];
            snprintf(field, sizeof field, "string %llu of the array", (unsigned long long)i);
            if ((s = rd_str(r, &strs[i], field)) != OWL_OK) return s;
        }
        v->arr.strs = strs;
        return OWL_OK;
    }
    if (depth + 1 >= GGUF_MAX_DEPTH)
        return fail(r, OWL_ERR_FORMAT, "arrays nested deeper than %d levels", GGUF_MAX_DEPTH);
    owl_meta_value *items = owl_arena_alloc(&r->ws->meta.arena, (size_t)count * sizeof *items);
    if (!items) return owl_error_prefix(OWL_ERR_NOMEM, "%s: %s", r->name, r->what);
    for (uint64_t i = 0; i < count; i++)
        if ((s = rd_value(r, OWL_META_ARRAY, &items[i], depth + 1)) != OWL_OK) return s;
    v->arr.items = items;
    return OWL_OK;
}

static owl_status rd_value(reader *r, uint32_t type, owl_meta_value *v, int depth) {
    memset(v, 0, sizeof *v);
    if (type >= OWL_META_TYPE_COUNT) return fail(r, OWL_ERR_FORMAT, "unknown value type %u", type);
    if (type == OWL_META_STRING) {
        v->type = OWL_META_STRING;
        return rd_str(r, &v->s, "string");
    }
    if (type == OWL_META_ARRAY) return rd_array(r, v, depth);
    int sz = scalar_size(type);
    owl_status s = need(r, (uint64_t)sz, owl_meta_type_name((owl_meta_type)type));
    if (s != OWL_OK) return s;
    if (type == OWL_META_BOOL && r->p[r->pos] > 1)
        return fail(r, OWL_ERR_FORMAT, "bool value %u (must be 0 or 1)", r->p[r->pos]);
    decode_scalar(v, type, r->p + r->pos);
    r->pos += (size_t)sz;
    return OWL_OK;
}

/* ---- duplicate checks (sort, compare neighbours) ---- */

static int cmp_str(owl_str a, owl_str b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_entry(const void *a, const void *b) {
    return cmp_str(((const owl_meta_entry *)a)->key, ((const owl_meta_entry *)b)->key);
}

typedef struct tinfo {
    owl_str name;
    uint64_t offset, nbytes;
} tinfo;

static int cmp_tinfo_name(const void *a, const void *b) {
    return cmp_str(((const tinfo *)a)->name, ((const tinfo *)b)->name);
}

static int cmp_tinfo_off(const void *a, const void *b) {
    uint64_t x = ((const tinfo *)a)->offset, y = ((const tinfo *)b)->offset;
    return x < y ? -1 : x > y;
}

static owl_status check_dup_keys(reader *r) {
    owl_meta *m = &r->ws->meta;
    if (m->n < 2) return OWL_OK;
    owl_meta_entry *sorted = malloc(m->n * sizeof *sorted);
    if (!sorted) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory checking %zu keys", r->name, m->n);
    memcpy(sorted, m->entries, m->n * sizeof *sorted);
    qsort(sorted, m->n, sizeof *sorted, cmp_entry);
    for (size_t i = 1; i < m->n; i++) {
        if (cmp_str(sorted[i - 1].key, sorted[i].key) == 0) {
            set_what_key(r, "key", sorted[i].key);
            free(sorted);
            return fail(r, OWL_ERR_FORMAT, "duplicate key");
        }
    }
    free(sorted);
    return OWL_OK;
}

/* ---- header and keys ---- */

static owl_status rd_header(reader *r, uint64_t *n_tensors, uint64_t *n_kv) {
    if (r->size < 4) return fail(r, OWL_ERR_FORMAT, "file too short for a GGUF header (size %zu)", r->size);
    if (memcmp(r->p, "GGUF", 4) != 0) {
        char m[32];
        safe_name(m, sizeof m, (const char *)r->p, 4);
        return fail(r, OWL_ERR_FORMAT, "not a GGUF file (magic '%s', expected 'GGUF')", m);
    }
    r->pos = 4;
    uint32_t version;
    owl_status s = rd_u32(r, &version, "version");
    if (s != OWL_OK) return s;
    if (version != 2 && version != 3) {
        uint32_t swapped = __builtin_bswap32(version);
        if (swapped >= 1 && swapped <= 3)
            return fail(r, OWL_ERR_UNSUPPORTED, "big-endian GGUF (version %u byte-swapped) is not supported", swapped);
        if (version == 1)
            return fail(r, OWL_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only versions 2 and 3)");
        return fail(r, OWL_ERR_UNSUPPORTED, "unknown GGUF version %u (supported: 2 and 3)", version);
    }
    if ((s = rd_u64(r, n_tensors, "tensor count")) != OWL_OK) return s;
    if ((s = rd_u64(r, n_kv, "key count")) != OWL_OK) return s;
    /* smallest key: 8-byte length, 4-byte type, 1-byte value */
    if (*n_kv > left(r) / 13)
        return fail(r, OWL_ERR_FORMAT, "key count %llu runs past the end of the file (size %zu)", (unsigned long long)*n_kv,
                    r->size);
    /* smallest tensor info: 8-byte name length, n_dims, one ne, dtype, offset */
    if (*n_tensors > left(r) / 32)
        return fail(r, OWL_ERR_FORMAT, "tensor count %llu runs past the end of the file (size %zu)",
                    (unsigned long long)*n_tensors, r->size);
    return OWL_OK;
}

static owl_status rd_keys(reader *r, uint64_t n_kv) {
    owl_meta *m = &r->ws->meta;
    if (n_kv) {
        m->entries = malloc((size_t)n_kv * sizeof *m->entries);
        if (!m->entries) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for %llu keys", r->name,
                                           (unsigned long long)n_kv);
        m->cap = (size_t)n_kv;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        snprintf(r->what, sizeof r->what, "key #%llu", (unsigned long long)i);
        owl_str key;
        owl_status s = rd_str(r, &key, "key name");
        if (s != OWL_OK) return s;
        set_what_key(r, "key", key);
        uint32_t type;
        if ((s = rd_u32(r, &type, "value type")) != OWL_OK) return s;
        owl_meta_value v;
        if ((s = rd_value(r, type, &v, 0)) != OWL_OK) return s;
        if ((s = owl_meta_append(m, key, &v)) != OWL_OK) return s;
    }
    r->what[0] = 0;
    return check_dup_keys(r);
}

static owl_status rd_alignment(reader *r, uint64_t *alignment) {
    *alignment = GGUF_DEFAULT_ALIGNMENT;
    const owl_meta_value *v = owl_meta_find(&r->ws->meta, "general.alignment");
    if (!v) return OWL_OK;
    snprintf(r->what, sizeof r->what, "key 'general.alignment'");
    uint64_t a;
    if (!owl_meta_get_u64(&r->ws->meta, "general.alignment", &a)) {
        if (v->type == OWL_META_I8 || v->type == OWL_META_I16 || v->type == OWL_META_I32 || v->type == OWL_META_I64)
            return fail(r, OWL_ERR_FORMAT, "alignment %lld is not a nonzero power of two", (long long)v->i);
        return fail(r, OWL_ERR_FORMAT, "has type %s, expected u32", owl_meta_type_name(v->type));
    }
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 30))
        return fail(r, OWL_ERR_FORMAT, "alignment %llu is not a nonzero power of two (at most 2^30)",
                    (unsigned long long)a);
    *alignment = a;
    r->what[0] = 0;
    return OWL_OK;
}

/* ---- tensor infos ---- */

static owl_status rd_tensor_info(reader *r, uint64_t idx, uint64_t alignment, tinfo *ti, owl_weight *w) {
    snprintf(r->what, sizeof r->what, "tensor #%llu", (unsigned long long)idx);
    owl_status s = rd_str(r, &ti->name, "tensor name");
    if (s != OWL_OK) return s;
    set_what_key(r, "tensor", ti->name);
    if (memchr(ti->name.ptr, 0, ti->name.len)) return fail(r, OWL_ERR_FORMAT, "name contains a NUL byte");
    uint32_t n_dims;
    if ((s = rd_u32(r, &n_dims, "n_dims")) != OWL_OK) return s;
    if (n_dims < 1 || n_dims > OWL_MAX_DIMS)
        return fail(r, OWL_ERR_FORMAT, "n_dims %u (must be 1..%d)", n_dims, OWL_MAX_DIMS);
    uint64_t nelem = 1;
    bool overflow = false;
    char shape[160];
    size_t o = 0;
    shape[0] = 0;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if ((s = rd_u64(r, &ne, "dimension")) != OWL_OK) return s;
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%llu", d ? ", " : "", (unsigned long long)ne);
        if (o >= sizeof shape) o = sizeof shape - 1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return fail(r, OWL_ERR_FORMAT, "dimension %u is %llu (must be 1..2^63-1)", d, (unsigned long long)ne);
        if (!owl_mul_ok(nelem, ne, &nelem)) overflow = true;
        w->ne[d] = (int64_t)ne;
    }
    w->n_dims = (int)n_dims;
    if (overflow || nelem > (uint64_t)INT64_MAX)
        return fail(r, OWL_ERR_FORMAT, "shape [%s] has more than 2^63 elements", shape);
    uint32_t type;
    if ((s = rd_u32(r, &type, "dtype")) != OWL_OK) return s;
    const owl_dtype_info *info = owl_dtype_get(type);
    if (!info) return fail(r, OWL_ERR_UNSUPPORTED, "unknown dtype id %u", type);
    w->dtype = (owl_dtype)type;
    if ((uint64_t)w->ne[0] % (uint64_t)info->block != 0)
        return fail(r, OWL_ERR_FORMAT, "row length ne[0] = %lld is not a multiple of the %s block size %d",
                    (long long)w->ne[0], info->name, info->block);
    if (!owl_dtype_bytes(w->dtype, nelem, &ti->nbytes))
        return fail(r, OWL_ERR_FORMAT, "byte size of shape [%s] as %s overflows 64 bits", shape, info->name);
    w->nbytes = ti->nbytes;
    if ((s = rd_u64(r, &ti->offset, "offset")) != OWL_OK) return s;
    if (ti->offset % alignment != 0)
        return fail(r, OWL_ERR_FORMAT, "offset %llu is not a multiple of the alignment %llu",
                    (unsigned long long)ti->offset, (unsigned long long)alignment);
    return OWL_OK;
}

static owl_status check_tensors(reader *r, tinfo *ti, size_t n, uint64_t data_start) {
    r->what[0] = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t start, end;
        if (!owl_add_ok(data_start, ti[i].offset, &start) || !owl_add_ok(start, ti[i].nbytes, &end) ||
            end > r->size) {
            set_what_key(r, "tensor", ti[i].name);
            return fail(r, OWL_ERR_FORMAT,
                        "data at offset %llu, %llu bytes, runs past the end of the file (data section starts at "
                        "%llu, size %zu)",
                        (unsigned long long)ti[i].offset, (unsigned long long)ti[i].nbytes,
                        (unsigned long long)data_start, r->size);
        }
    }
    if (n < 2) return OWL_OK;
    tinfo *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory checking %zu tensors", r->name, n);
    memcpy(sorted, ti, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_tinfo_name);
    for (size_t i = 1; i < n; i++) {
        if (cmp_str(sorted[i - 1].name, sorted[i].name) == 0) {
            set_what_key(r, "tensor", sorted[i].name);
            free(sorted);
            return fail(r, OWL_ERR_FORMAT, "duplicate tensor name");
        }
    }
    qsort(sorted, n, sizeof *sorted, cmp_tinfo_off);
    for (size_t i = 1; i < n; i++) {
        const tinfo *a = &sorted[i - 1], *b = &sorted[i];
        if (a->offset + a->nbytes > b->offset) { /* no overflow: checked against the file above */
            char an[128];
            safe_name(an, sizeof an, a->name.ptr, a->name.len);
            set_what_key(r, "tensor", b->name);
            owl_status s = fail(r, OWL_ERR_FORMAT,
                                "data at offset %llu overlaps tensor '%s' (offset %llu, %llu bytes)",
                                (unsigned long long)b->offset, an, (unsigned long long)a->offset,
                                (unsigned long long)a->nbytes);
            free(sorted);
            return s;
        }
    }
    free(sorted);
    return OWL_OK;
}

static owl_status rd_tensors(reader *r, uint64_t n_tensors) {
    uint64_t alignment;
    owl_status s = rd_alignment(r, &alignment);
    if (s != OWL_OK) return s;
    size_t n = (size_t)n_tensors;
    tinfo *ti = n ? calloc(n, sizeof *ti) : NULL;
    owl_weight *w = n ? calloc(n, sizeof *w) : NULL;
    if (n && (!ti || !w)) {
        free(ti);
        free(w);
        return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for %zu tensors", r->name, n);
    }
    for (size_t i = 0; i < n && s == OWL_OK; i++) s = rd_tensor_info(r, i, alignment, &ti[i], &w[i]);
    uint64_t data_start = ((uint64_t)r->pos + alignment - 1) / alignment * alignment; /* pos < 2^63, alignment <= 2^30 */
    if (s == OWL_OK) s = check_tensors(r, ti, n, data_start);
    if (s == OWL_OK && n) {
        r->ws->w = malloc(n * sizeof *r->ws->w);
        if (!r->ws->w) s = owl_errorf(OWL_ERR_NOMEM, "%s: out of memory for %zu tensors", r->name, n);
        else r->ws->cap = n;
    }
    for (size_t i = 0; i < n && s == OWL_OK; i++) {
        char *name = owl_arena_strndup(&r->ws->arena, ti[i].name.ptr, ti[i].name.len);
        if (!name) {
            s = OWL_ERR_NOMEM;
            break;
        }
        for (int d = w[i].n_dims; d < OWL_MAX_DIMS; d++) w[i].ne[d] = 1;
        w[i].name = name;
        w[i].data = r->p + data_start + ti[i].offset;
        r->ws->w[i] = w[i];
        r->ws->n = i + 1;
    }
    free(ti);
    free(w);
    return s;
}

static owl_status parse(reader *r) {
    uint64_t n_tensors, n_kv;
    owl_status s = rd_header(r, &n_tensors, &n_kv);
    if (s == OWL_OK) s = rd_keys(r, n_kv);
    if (s == OWL_OK) s = rd_tensors(r, n_tensors);
    return s;
}

owl_status owl_gguf_read_mem(const char *name, const uint8_t *data, size_t size, owl_weights *out) {
    owl_status s = owl_weights_init(out, name, "gguf");
    if (s != OWL_OK) return s;
    reader r = {.name = name ? name : "<memory>", .p = data, .size = data ? size : 0, .ws = out};
    s = parse(&r);
    if (s != OWL_OK) owl_weights_free(out);
    return s;
}

owl_status owl_gguf_read(const char *path, owl_weights *out) {
    memset(out, 0, sizeof *out);
    owl_mmap m;
    owl_status s = owl_mmap_open(&m, path);
    if (s != OWL_OK) return s;
    if ((s = owl_gguf_read_mem(path, m.data, m.size, out)) != OWL_OK) {
        owl_mmap_close(&m);
        return s;
    }
    if ((s = owl_weights_keep_map(out, &m, NULL)) != OWL_OK) {
        owl_mmap_close(&m);
        owl_weights_free(out);
    }
    return s;
}
