/* The metadata dictionary: GGUF-typed values under string keys, lookups with
 * safe integer conversion, setters that copy into the dictionary's arena. */
#include "format/format.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[OWL_META_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *owl_meta_type_name(owl_meta_type t) {
    return (unsigned)t < OWL_META_TYPE_COUNT ? type_names[t] : "?";
}

bool owl_str_eq(owl_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

void owl_meta_free(owl_meta *m) {
    free(m->entries);
    owl_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

static owl_meta_entry *find_entry(const owl_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (owl_str_eq(m->entries[i].key, key)) return &m->entries[i];
    return NULL;
}

const owl_meta_value *owl_meta_find(const owl_meta *m, const char *key) {
    const owl_meta_entry *e = find_entry(m, key);
    return e ? &e->value : NULL;
}

/* ---- getters ---- */

static bool is_unsigned(owl_meta_type t) {
    return t == OWL_META_U8 || t == OWL_META_U16 || t == OWL_META_U32 || t == OWL_META_U64;
}
static bool is_signed(owl_meta_type t) {
    return t == OWL_META_I8 || t == OWL_META_I16 || t == OWL_META_I32 || t == OWL_META_I64;
}
static bool is_float(owl_meta_type t) { return t == OWL_META_F32 || t == OWL_META_F64; }

bool owl_meta_get_u64(const owl_meta *m, const char *key, uint64_t *out) {
    const owl_meta_value *v = owl_meta_find(m, key);
    if (!v) return false;
    if (is_unsigned(v->type)) {
        *out = v->u;
        return true;
    }
    if (is_signed(v->type) && v->i >= 0) {
        *out = (uint64_t)v->i;
        return true;
    }
    return false;
}

bool owl_meta_get_i64(const owl_meta *m, const char *key, int64_t *out) {
    const owl_meta_value *v = owl_meta_find(m, key);
    if (!v) return false;
    if (is_signed(v->type)) {
        *out = v->i;
        return true;
    }
    if (is_unsigned(v->type) && v->u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->u;
        return true;
    }
    return false;
}

bool owl_meta_get_f64(const owl_meta *m, const char *key, double *out) {
    const owl_meta_value *v = owl_meta_find(m, key);
    if (!v) return false;
    if (is_float(v->type)) *out = v->f;
    else if (is_unsigned(v->type)) *out = (double)v->u;
    else if (is_signed(v->type)) *out = (double)v->i;
    else return false;
    return true;
}

bool owl_meta_get_bool(const owl_meta *m, const char *key, bool *out) {
    const owl_meta_value *v = owl_meta_find(m, key);
    if (!v || v->type != OWL_META_BOOL) return false;
    *out = v->u != 0;
    return true;
}

bool owl_meta_get_str(const owl_meta *m, const char *key, owl_str *out) {
    const owl_meta_value *v = owl_meta_find(m, key);
    if (!v || v->type != OWL_META_STRING) return false;
    *out = v->s;
    return true;
}

/* ---- array elements (little-endian, possibly unaligned) ---- */

static int elem_size(owl_meta_type t) {
    switch (t) {
    case OWL_META_U8: case OWL_META_I8: case OWL_META_BOOL: return 1;
    case OWL_META_U16: case OWL_META_I16: return 2;
    case OWL_META_U32: case OWL_META_I32: case OWL_META_F32: return 4;
    case OWL_META_U64: case OWL_META_I64: case OWL_META_F64: return 8;
    default: return 0;
    }
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

/* Reads element i as one of three kinds; false if v is not a numeric array
 * or i is out of range. */
static bool arr_elem(const owl_meta_value *v, uint64_t i, uint64_t *u, int64_t *s, double *f, int *kind) {
    if (!v || v->type != OWL_META_ARRAY || i >= v->arr.count || !v->arr.raw) return false;
    int sz = elem_size(v->arr.elem);
    if (sz == 0) return false;
    uint64_t x = load_le((const uint8_t *)v->arr.raw + i * (uint64_t)sz, sz);
    switch (v->arr.elem) {
    case OWL_META_U8: case OWL_META_U16: case OWL_META_U32: case OWL_META_U64: case OWL_META_BOOL:
        *u = x;
        *kind = 0;
        return true;
    case OWL_META_I8: *s = (int8_t)(uint8_t)x; break;
    case OWL_META_I16: *s = (int16_t)(uint16_t)x; break;
    case OWL_META_I32: *s = (int32_t)(uint32_t)x; break;
    case OWL_META_I64: *s = (int64_t)x; break;
    case OWL_META_F32: {
        uint32_t b = (uint32_t)x;
        float ff;
        memcpy(&ff, &b, 4);
        *f = ff;
        *kind = 2;
        return true;
    }
    case OWL_META_F64: memcpy(f, &x, 8); *kind = 2; return true;
    default: return false;
    }
    *kind = 1;
    return true;
}

double owl_meta_arr_f64(const owl_meta_value *v, uint64_t i) {
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    int kind = 0;
    if (!arr_elem(v, i, &u, &s, &f, &kind)) return 0.0;
    return kind == 0 ? (double)u : kind == 1 ? (double)s : f;
}

int64_t owl_meta_arr_i64(const owl_meta_value *v, uint64_t i) {
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    int kind = 0;
    if (!arr_elem(v, i, &u, &s, &f, &kind)) return 0;
    if (kind == 0) return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    if (kind == 1) return s;
    if (isnan(f)) return 0;
    if (f >= 9223372036854775807.0) return INT64_MAX;
    if (f <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)f;
}

/* ---- adding entries ---- */

owl_status owl_meta_append(owl_meta *m, owl_str key, const owl_meta_value *v) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        owl_meta_entry *e = realloc(m->entries, cap * sizeof *e);
        if (!e) return owl_errorf(OWL_ERR_NOMEM, "out of memory growing the metadata to %zu entries", cap);
        m->entries = e;
        m->cap = cap;
    }
    m->entries[m->n].key = key;
    m->entries[m->n].value = *v;
    m->n++;
    return OWL_OK;
}

owl_status owl_meta_put(owl_meta *m, owl_str key, const owl_meta_value *v) {
    for (size_t i = 0; i < m->n; i++) {
        owl_str k = m->entries[i].key;
        if (k.len == key.len && (k.len == 0 || memcmp(k.ptr, key.ptr, k.len) == 0)) {
            m->entries[i].value = *v;
            return OWL_OK;
        }
    }
    return owl_meta_append(m, key, v);
}

static owl_status copy_str(owl_arena *a, owl_str *dst, const char *s, size_t len) {
    char *p = owl_arena_strndup(a, s ? s : "", s ? len : 0);
    if (!p) return OWL_ERR_NOMEM;
    dst->ptr = p;
    dst->len = s ? len : 0;
    return OWL_OK;
}

/* Deep copy of v into the arena, depth-limited like the reader. */
static owl_status copy_value(owl_arena *a, owl_meta_value *dst, const owl_meta_value *v, int depth) {
    *dst = *v;
    if ((unsigned)v->type >= OWL_META_TYPE_COUNT)
        return owl_errorf(OWL_ERR_ARG, "metadata value type %d is unknown", (int)v->type);
    if (v->type == OWL_META_STRING) return copy_str(a, &dst->s, v->s.ptr, v->s.len);
    if (v->type != OWL_META_ARRAY) return OWL_OK;
    if (depth > 16) return owl_errorf(OWL_ERR_ARG, "metadata arrays nested deeper than 16");
    uint64_t count = v->arr.count, bytes;
    dst->arr.raw = NULL;
    dst->arr.strs = NULL;
    dst->arr.items = NULL;
    if ((unsigned)v->arr.elem >= OWL_META_TYPE_COUNT)
        return owl_errorf(OWL_ERR_ARG, "metadata array element type %d is unknown", (int)v->arr.elem);
    if (count == 0) return OWL_OK;
    if (v->arr.elem == OWL_META_STRING) {
        if (!owl_mul_ok(count, sizeof(owl_str), &bytes) || bytes > SIZE_MAX / 2 || !v->arr.strs)
            return owl_errorf(OWL_ERR_ARG, "array of %llu strings is too large or missing", (unsigned long long)count);
        owl_str *s = owl_arena_alloc(a, (size_t)bytes);
        if (!s) return OWL_ERR_NOMEM;
        for (uint64_t i = 0; i < count; i++) {
            owl_status st = copy_str(a, &s[i], v->arr.strs[i].ptr, v->arr.strs[i].len);
            if (st != OWL_OK) return st;
        }
        dst->arr.strs = s;
    } else if (v->arr.elem == OWL_META_ARRAY) {
        if (!owl_mul_ok(count, sizeof(owl_meta_value), &bytes) || bytes > SIZE_MAX / 2 || !v->arr.items)
            return owl_errorf(OWL_ERR_ARG, "array of %llu arrays is too large or missing", (unsigned long long)count);
        owl_meta_value *items = owl_arena_alloc(a, (size_t)bytes);
        if (!items) return OWL_ERR_NOMEM;
        for (uint64_t i = 0; i < count; i++) {
            if (v->arr.items[i].type != OWL_META_ARRAY)
                return owl_errorf(OWL_ERR_ARG, "item %llu of an array of arrays has type %s",
                                  (unsigned long long)i, owl_meta_type_name(v->arr.items[i].type));
            owl_status st = copy_value(a, &items[i], &v->arr.items[i], depth + 1);
            if (st != OWL_OK) return st;
        }
        dst->arr.items = items;
    } else {
        if (!owl_mul_ok(count, (uint64_t)elem_size(v->arr.elem), &bytes) || bytes > SIZE_MAX / 2 || !v->arr.raw)
            return owl_errorf(OWL_ERR_ARG, "array of %llu %s values is too large or missing", (unsigned long long)count,
                              owl_meta_type_name(v->arr.elem));
        void *raw = owl_arena_alloc(a, (size_t)bytes);
        if (!raw) return OWL_ERR_NOMEM;
        memcpy(raw, v->arr.raw, (size_t)bytes);
        dst->arr.raw = raw;
    }
    return OWL_OK;
}

owl_status owl_meta_set(owl_meta *m, const char *key, const owl_meta_value *v) {
    owl_str k;
    owl_meta_value copy;
    owl_status s = copy_value(&m->arena, &copy, v, 0);
    if (s != OWL_OK) return owl_error_prefix(s, "metadata key '%s'", key);
    owl_meta_entry *e = find_entry(m, key);
    if (e) {
        e->value = copy;
        return OWL_OK;
    }
    if (copy_str(&m->arena, &k, key, strlen(key)) != OWL_OK) return OWL_ERR_NOMEM;
    return owl_meta_append(m, k, &copy);
}

owl_status owl_meta_set_u32(owl_meta *m, const char *key, uint32_t v) {
    owl_meta_value x = {.type = OWL_META_U32, .u = v};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_u64(owl_meta *m, const char *key, uint64_t v) {
    owl_meta_value x = {.type = OWL_META_U64, .u = v};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_i32(owl_meta *m, const char *key, int32_t v) {
    owl_meta_value x = {.type = OWL_META_I32, .i = v};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_f32(owl_meta *m, const char *key, float v) {
    owl_meta_value x = {.type = OWL_META_F32, .f = v};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_bool(owl_meta *m, const char *key, bool v) {
    owl_meta_value x = {.type = OWL_META_BOOL, .u = v ? 1 : 0};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_str(owl_meta *m, const char *key, const char *s, size_t len) {
    owl_meta_value x = {.type = OWL_META_STRING, .s = {s, len}};
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_arr(owl_meta *m, const char *key, owl_meta_type elem, const void *raw, uint64_t count) {
    if (elem_size(elem) == 0)
        return owl_errorf(OWL_ERR_ARG, "metadata key '%s': owl_meta_set_arr takes numeric or bool elements, not %s",
                          key, owl_meta_type_name(elem));
    owl_meta_value x = {.type = OWL_META_ARRAY};
    x.arr.elem = elem;
    x.arr.count = count;
    x.arr.raw = raw;
    return owl_meta_set(m, key, &x);
}

owl_status owl_meta_set_str_arr(owl_meta *m, const char *key, const owl_str *strs, uint64_t count) {
    owl_meta_value x = {.type = OWL_META_ARRAY};
    x.arr.elem = OWL_META_STRING;
    x.arr.count = count;
    x.arr.strs = (owl_str *)strs;
    return owl_meta_set(m, key, &x);
}
