/* GGUF reader and writer: a round trip of every metadata type and several
 * tensor types (checked against the values the test built, and against an
 * independent Python reader), the real files in testdata (facts from their
 * provenance notes, bytes compared with the same weights in other formats),
 * and a writer that leaves nothing behind when it fails. Bad input: see
 * test_gguf_bad.c. */
#include "testutil.h"

#include "format/format.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int meta_size(owl_meta_type t) {
    switch (t) {
    case OWL_META_U8: case OWL_META_I8: case OWL_META_BOOL: return 1;
    case OWL_META_U16: case OWL_META_I16: return 2;
    case OWL_META_U32: case OWL_META_I32: case OWL_META_F32: return 4;
    default: return 8;
    }
}

static bool value_eq(const owl_meta_value *a, const owl_meta_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case OWL_META_I8: case OWL_META_I16: case OWL_META_I32: case OWL_META_I64: return a->i == b->i;
    case OWL_META_F32: case OWL_META_F64: return a->f == b->f;
    case OWL_META_STRING: return a->s.len == b->s.len && memcmp(a->s.ptr, b->s.ptr, a->s.len) == 0;
    case OWL_META_ARRAY:
        if (a->arr.elem != b->arr.elem || a->arr.count != b->arr.count) return false;
        for (uint64_t i = 0; i < a->arr.count; i++) {
            if (a->arr.elem == OWL_META_STRING) {
                owl_str x = a->arr.strs[i], y = b->arr.strs[i];
                if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0) return false;
            } else if (a->arr.elem == OWL_META_ARRAY) {
                if (!value_eq(&a->arr.items[i], &b->arr.items[i])) return false;
            }
        }
        if (a->arr.elem != OWL_META_STRING && a->arr.elem != OWL_META_ARRAY && a->arr.count)
            return memcmp(a->arr.raw, b->arr.raw, a->arr.count * (uint64_t)meta_size(a->arr.elem)) == 0;
        return true;
    default: return a->u == b->u;
    }
}

/* ---- the round trip ---- */

#define N_KEYS_MAX 64
typedef struct expected {
    const char *key;
    owl_meta_value v;
} expected;

static const uint8_t a_u8[] = {0, 1, 255};
static const int8_t a_i8[] = {-128, -1, 0, 127};
static const uint16_t a_u16[] = {0, 65535, 1234};
static const int16_t a_i16[] = {-32768, 32767};
static const uint32_t a_u32[] = {4000000000u, 7, 0, 1};
static const int32_t a_i32[] = {-2000000000, 2000000000, -1};
static const float a_f32[] = {1.5f, -0.0f, 3.25e-7f, 1e30f};
static const uint8_t a_bool[] = {1, 0, 1};
static const uint64_t a_u64[] = {UINT64_MAX, 0, 1ull << 40};
static const int64_t a_i64[] = {INT64_MIN, INT64_MAX, -5};
static const double a_f64[] = {3.141592653589793, -1e-300};
static const owl_str a_strs[] = {{"alpha", 5}, {"", 0}, {"\xe2\x96\x81h\xc3\xa9llo", 9}, {"with\0nul", 8}};

static owl_meta_value arr(owl_meta_type elem, const void *raw, uint64_t count) {
    owl_meta_value v = {.type = OWL_META_ARRAY};
    v.arr.elem = elem;
    v.arr.count = count;
    if (elem == OWL_META_STRING) v.arr.strs = (owl_str *)raw;
    else if (elem == OWL_META_ARRAY) v.arr.items = (owl_meta_value *)raw;
    else v.arr.raw = raw;
    return v;
}

static size_t build_expected(expected *e) {
    static owl_meta_value inner[3], deep_in[1], deep_mid[2];
    size_t n = 0;
    e[n++] = (expected){"general.architecture", {.type = OWL_META_STRING, .s = {"llama", 5}}};
    e[n++] = (expected){"t.u8", {.type = OWL_META_U8, .u = 200}};
    e[n++] = (expected){"t.i8", {.type = OWL_META_I8, .i = -100}};
    e[n++] = (expected){"t.u16", {.type = OWL_META_U16, .u = 60000}};
    e[n++] = (expected){"t.i16", {.type = OWL_META_I16, .i = -30000}};
    e[n++] = (expected){"t.u32", {.type = OWL_META_U32, .u = 4000000000u}};
    e[n++] = (expected){"t.i32", {.type = OWL_META_I32, .i = -2000000000}};
    e[n++] = (expected){"t.f32", {.type = OWL_META_F32, .f = 1.5}};
    e[n++] = (expected){"t.bool", {.type = OWL_META_BOOL, .u = 1}};
    e[n++] = (expected){"t.false", {.type = OWL_META_BOOL, .u = 0}};
    e[n++] = (expected){"t.string", {.type = OWL_META_STRING, .s = {"h\xc3\xa9llo \"w\"", 10}}};
    e[n++] = (expected){"t.empty_string", {.type = OWL_META_STRING, .s = {"", 0}}};
    e[n++] = (expected){"t.u64", {.type = OWL_META_U64, .u = (1ull << 63) + 5}};
    e[n++] = (expected){"t.i64", {.type = OWL_META_I64, .i = -(1ll << 62)}};
    e[n++] = (expected){"t.f64", {.type = OWL_META_F64, .f = 2.718281828459045}};
    e[n++] = (expected){"a.u8", arr(OWL_META_U8, a_u8, 3)};
    e[n++] = (expected){"a.i8", arr(OWL_META_I8, a_i8, 4)};
    e[n++] = (expected){"a.u16", arr(OWL_META_U16, a_u16, 3)};
    e[n++] = (expected){"a.i16", arr(OWL_META_I16, a_i16, 2)};
    e[n++] = (expected){"a.u32", arr(OWL_META_U32, a_u32, 4)};
    e[n++] = (expected){"a.i32", arr(OWL_META_I32, a_i32, 3)};
    e[n++] = (expected){"a.f32", arr(OWL_META_F32, a_f32, 4)};
    e[n++] = (expected){"a.bool", arr(OWL_META_BOOL, a_bool, 3)};
    e[n++] = (expected){"a.u64", arr(OWL_META_U64, a_u64, 3)};
    e[n++] = (expected){"a.i64", arr(OWL_META_I64, a_i64, 3)};
    e[n++] = (expected){"a.f64", arr(OWL_META_F64, a_f64, 2)};
    e[n++] = (expected){"a.empty", arr(OWL_META_U32, NULL, 0)};
    e[n++] = (expected){"a.strings", arr(OWL_META_STRING, a_strs, 4)};
    /* [[u32 x4], [string x4], []] and [[[i8 x4]], [[f64 x2], [bool x3]]] */
    inner[0] = arr(OWL_META_U32, a_u32, 4);
    inner[1] = arr(OWL_META_STRING, a_strs, 4);
    inner[2] = arr(OWL_META_F32, NULL, 0);
    e[n++] = (expected){"a.nested", arr(OWL_META_ARRAY, inner, 3)};
    static owl_meta_value deep_b[2];
    deep_in[0] = arr(OWL_META_I8, a_i8, 4);
    deep_b[0] = arr(OWL_META_F64, a_f64, 2);
    deep_b[1] = arr(OWL_META_BOOL, a_bool, 3);
    deep_mid[0] = arr(OWL_META_ARRAY, deep_in, 1);
    deep_mid[1] = arr(OWL_META_ARRAY, deep_b, 2);
    e[n++] = (expected){"a.deep", arr(OWL_META_ARRAY, deep_mid, 2)};
    return n;
}

typedef struct tensor_spec {
    const char *name;
    owl_dtype dtype;
    int n_dims;
    int64_t ne[4];
} tensor_spec;

static const tensor_spec specs[] = {
    {"token_embd.weight", OWL_F32, 2, {8, 3}},
    {"blk.0.attn_q.weight", OWL_F16, 2, {16, 5}},
    {"blk.0.ffn_up.weight", OWL_BF16, 3, {4, 2, 3}},
    {"blk.0.ffn_down.weight", OWL_Q8_0, 2, {64, 3}},
    {"output_norm.weight", OWL_F32, 1, {7}},
    {"blk.0.four_d", OWL_Q4_K, 4, {256, 1, 2, 1}},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

static void make_tensors(owl_weight *t, uint8_t **bufs, uint64_t *rng) {
    for (size_t i = 0; i < N_SPECS; i++) {
        uint64_t nelem = 1, bytes = 0;
        for (int d = 0; d < specs[i].n_dims; d++) nelem *= (uint64_t)specs[i].ne[d];
        CHECK(owl_dtype_bytes(specs[i].dtype, nelem, &bytes));
        bufs[i] = malloc(bytes);
        for (uint64_t b = 0; b < bytes; b++) bufs[i][b] = (uint8_t)test_rand_u64(rng);
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = specs[i].name;
        t[i].dtype = specs[i].dtype;
        t[i].n_dims = specs[i].n_dims;
        for (int d = 0; d < 4; d++) t[i].ne[d] = d < specs[i].n_dims ? specs[i].ne[d] : 1;
        t[i].data = bufs[i];
        t[i].nbytes = bytes;
    }
}

/* Runs the independent Python reader on path and returns its JSON. */
static json_t *python_dump(const char *path) {
    int st = 0;
    char *out = run_capture(&st, "'%s' '%s' '%s'", test_python(), source_path("tests/reference/gguf_dump.py"), path);
    json_t *j = NULL;
    if (st == 0 && out) j = json_loads(out, JSON_ALLOW_NUL, NULL);
    CHECKF(j != NULL, "gguf_dump.py failed on %s (status %d)", path, st);
    free(out);
    return j;
}

static void check_python(const char *path, const expected *e, size_t n_e, const owl_weight *t, uint32_t alignment) {
    json_t *j = python_dump(path);
    if (!j) return;
    CHECK(json_integer_value(json_object_get(j, "version")) == 3);
    CHECK(json_integer_value(json_object_get(j, "alignment")) == alignment);
    json_t *kv = json_object_get(j, "kv");
    for (size_t i = 0; i < n_e; i++) {
        json_t *k = json_object_get(kv, e[i].key);
        CHECKF(k && json_integer_value(json_array_get(k, 0)) == e[i].v.type, "python sees key %s", e[i].key);
    }
    json_t *u8 = json_array_get(json_object_get(kv, "t.u8"), 1);
    CHECK(json_integer_value(u8) == 200);
    json_t *i64 = json_array_get(json_object_get(kv, "t.i64"), 1);
    CHECK(json_integer_value(i64) == -(1ll << 62));
    json_t *u64 = json_array_get(json_object_get(kv, "t.u64"), 1);
    CHECK(u64 && json_is_string(u64) && strcmp(json_string_value(u64), "9223372036854775813") == 0);
    json_t *f64 = json_array_get(json_object_get(kv, "t.f64"), 1);
    CHECK(json_real_value(f64) == 2.718281828459045);
    json_t *str = json_array_get(json_object_get(kv, "t.string"), 1);
    CHECK(str && strcmp(json_string_value(str), "h\xc3\xa9llo \"w\"") == 0);
    json_t *strs = json_array_get(json_object_get(kv, "a.strings"), 1);
    CHECK(json_array_size(strs) == 4 && strcmp(json_string_value(json_array_get(strs, 2)), "\xe2\x96\x81h\xc3\xa9llo") == 0);
    json_t *deep = json_array_get(json_object_get(kv, "a.deep"), 1);
    json_t *d_i8 = json_array_get(json_array_get(json_array_get(deep, 0), 0), 0);
    CHECK(json_integer_value(d_i8) == -128);
    json_t *tensors = json_object_get(j, "tensors");
    CHECK(json_array_size(tensors) == N_SPECS);
    for (size_t i = 0; i < N_SPECS && i < json_array_size(tensors); i++) {
        json_t *ti = json_array_get(tensors, i);
        CHECK(strcmp(json_string_value(json_object_get(ti, "name")), t[i].name) == 0);
        CHECK(json_integer_value(json_object_get(ti, "type")) == t[i].dtype);
        json_t *ne = json_object_get(ti, "ne");
        CHECK((int)json_array_size(ne) == t[i].n_dims);
        for (int d = 0; d < t[i].n_dims; d++) CHECK(json_integer_value(json_array_get(ne, (size_t)d)) == t[i].ne[d]);
        CHECK(json_integer_value(json_object_get(ti, "abs_offset")) % alignment == 0);
        /* the python reader hashes the bytes it finds at the tensor's place */
        char hex[17];
        uint64_t h = 1469598103934665603ull;
        const uint8_t *p = t[i].data;
        for (uint64_t b = 0; b < t[i].nbytes; b++) h = (h ^ p[b]) * 1099511628211ull;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        CHECKF(strcmp(json_string_value(json_object_get(ti, "fnv1a")), hex) == 0, "tensor %s bytes", t[i].name);
    }
    CHECK(json_is_true(json_object_get(j, "ends_after_padding")));
    CHECK(json_is_true(json_object_get(j, "offsets_contiguous")));
    json_decref(j);
}

static void test_round_trip(uint32_t alignment) {
    const char *dir = test_tmpdir("gguf_round_trip");
    char *path = path_join(dir, "rt.gguf");
    expected e[N_KEYS_MAX];
    size_t n_e = build_expected(e);
    owl_meta meta = {0};
    for (size_t i = 0; i < n_e; i++) CHECK(owl_meta_set(&meta, e[i].key, &e[i].v) == OWL_OK);
    /* setters replace: the dictionary keeps one entry per key */
    CHECK(owl_meta_set_u32(&meta, "t.replaced", 1) == OWL_OK);
    CHECK(owl_meta_set_u32(&meta, "t.replaced", 2) == OWL_OK);
    CHECK(meta.n == n_e + 1);

    owl_weight t[N_SPECS];
    uint8_t *bufs[N_SPECS];
    uint64_t rng = 42 + alignment;
    make_tensors(t, bufs, &rng);
    CHECKF(owl_gguf_write(path, &meta, t, N_SPECS, alignment) == OWL_OK, "%s", owl_last_error());
    owl_meta_free(&meta);

    owl_weights ws;
    owl_status s = owl_gguf_read(path, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s == OWL_OK) {
        CHECK(strcmp(ws.format, "gguf") == 0);
        CHECK(strcmp(ws.path, path) == 0);
        CHECK(ws.n_maps == 1);
        /* keys in order, values equal to what was built; alignment 32 is
         * not written (the default), others are */
        size_t extra = alignment != 32 ? 1 : 0;
        CHECK(ws.meta.n == n_e + 1 + extra);
        for (size_t i = 0; i < n_e && i < ws.meta.n; i++) {
            CHECK(owl_str_eq(ws.meta.entries[i].key, e[i].key));
            const owl_meta_value *v = owl_meta_find(&ws.meta, e[i].key);
            CHECKF(v && value_eq(v, &e[i].v), "key %s", e[i].key);
        }
        uint64_t u = 0;
        int64_t i64 = 0;
        double f = 0;
        bool b = false;
        owl_str str;
        CHECK(owl_meta_get_u64(&ws.meta, "t.replaced", &u) && u == 2);
        CHECK(owl_meta_get_u64(&ws.meta, "general.alignment", &u) == (alignment != 32) && (!extra || u == alignment));
        CHECK(owl_meta_get_u64(&ws.meta, "t.u8", &u) && u == 200);
        CHECK(owl_meta_get_i64(&ws.meta, "t.u32", &i64) && i64 == 4000000000ll);
        CHECK(!owl_meta_get_u64(&ws.meta, "t.i8", &u)); /* negative */
        CHECK(owl_meta_get_i64(&ws.meta, "t.i8", &i64) && i64 == -100);
        CHECK(!owl_meta_get_i64(&ws.meta, "t.u64", &i64)); /* > INT64_MAX */
        CHECK(owl_meta_get_u64(&ws.meta, "t.u64", &u) && u == (1ull << 63) + 5);
        CHECK(owl_meta_get_f64(&ws.meta, "t.f32", &f) && f == 1.5);
        CHECK(owl_meta_get_f64(&ws.meta, "t.i16", &f) && f == -30000.0);
        CHECK(!owl_meta_get_f64(&ws.meta, "t.string", &f));
        CHECK(owl_meta_get_bool(&ws.meta, "t.bool", &b) && b);
        CHECK(owl_meta_get_bool(&ws.meta, "t.false", &b) && !b);
        CHECK(!owl_meta_get_bool(&ws.meta, "t.u8", &b));
        CHECK(owl_meta_get_str(&ws.meta, "t.string", &str) && owl_str_eq(str, "h\xc3\xa9llo \"w\""));
        CHECK(!owl_meta_get_str(&ws.meta, "t.u8", &str));
        CHECK(!owl_meta_get_u64(&ws.meta, "no.such.key", &u) && !owl_meta_find(&ws.meta, "no.such.key"));
        const owl_meta_value *a = owl_meta_find(&ws.meta, "a.i8");
        CHECK(a && owl_meta_arr_i64(a, 0) == -128 && owl_meta_arr_i64(a, 3) == 127 && owl_meta_arr_f64(a, 1) == -1.0);
        CHECK(owl_meta_arr_i64(a, 4) == 0); /* out of range */
        a = owl_meta_find(&ws.meta, "a.f32");
        CHECK(a && owl_meta_arr_f64(a, 0) == 1.5 && owl_meta_arr_f64(a, 2) == (double)3.25e-7f);
        a = owl_meta_find(&ws.meta, "a.u64");
        CHECK(a && owl_meta_arr_i64(a, 2) == (1ll << 40) && owl_meta_arr_f64(a, 0) == 18446744073709551615.0);
        a = owl_meta_find(&ws.meta, "a.i64");
        CHECK(a && owl_meta_arr_i64(a, 0) == INT64_MIN && owl_meta_arr_i64(a, 2) == -5);
        a = owl_meta_find(&ws.meta, "a.u16");
        CHECK(a && owl_meta_arr_i64(a, 1) == 65535);
        a = owl_meta_find(&ws.meta, "a.i32");
        CHECK(a && owl_meta_arr_i64(a, 0) == -2000000000);
        a = owl_meta_find(&ws.meta, "a.strings");
        CHECK(a && owl_meta_arr_f64(a, 0) == 0.0); /* not numeric */

        CHECK(ws.n == N_SPECS);
        const uint8_t *base = ws.maps[0].data;
        for (size_t i = 0; i < N_SPECS && i < ws.n; i++) {
            const owl_weight *w = owl_weights_find(&ws, specs[i].name);
            CHECKF(w != NULL, "tensor %s", specs[i].name);
            if (!w) continue;
            CHECK(w == &ws.w[i]); /* file order kept */
            CHECK(w->dtype == t[i].dtype && w->n_dims == t[i].n_dims && w->nbytes == t[i].nbytes);
            for (int d = 0; d < 4; d++) CHECK(w->ne[d] == t[i].ne[d]);
            CHECK(memcmp(w->data, t[i].data, t[i].nbytes) == 0);
            CHECK(((const uint8_t *)w->data - base) % alignment == 0);
            CHECK((const uint8_t *)w->data >= base && (const uint8_t *)w->data + w->nbytes <= base + ws.maps[0].size);
        }
        CHECK(owl_weights_find(&ws, "nope") == NULL);
        CHECK(owl_weight_nelem(&ws.w[2]) == 24);
        /* the last tensor is padded to the alignment, as ggml writes it */
        const owl_weight *last = &ws.w[N_SPECS - 1];
        size_t end = (size_t)((const uint8_t *)last->data + last->nbytes - base);
        CHECK(ws.maps[0].size % alignment == 0 && ws.maps[0].size - end < alignment);

        /* read -> write -> read keeps everything (values now point into
         * the first mapping) */
        char *path2 = path_join(dir, "rt2.gguf");
        CHECKF(owl_gguf_write(path2, &ws.meta, ws.w, ws.n, 0) == OWL_OK, "%s", owl_last_error());
        int st = run_cmd("cmp -s '%s' '%s'", path, path2);
        CHECKF(st == 0, "rewriting %s gives the same bytes", path);
        free(path2);
        owl_weights_free(&ws);
    }
    check_python(path, e, n_e, t, alignment);
    for (size_t i = 0; i < N_SPECS; i++) free(bufs[i]);
    free(path);
}

/* ---- the real files ---- */

static uint64_t get_u(const owl_meta *m, const char *key) {
    uint64_t v = 0;
    CHECKF(owl_meta_get_u64(m, key, &v), "key %s", key);
    return v;
}

static void check_arch(const owl_weights *ws, const char *arch) {
    owl_str s = {0};
    CHECK(owl_meta_get_str(&ws->meta, "general.architecture", &s) && owl_str_eq(s, arch));
}

static uint64_t vocab_count(const owl_weights *ws) {
    const owl_meta_value *v = owl_meta_find(&ws->meta, "tokenizer.ggml.tokens");
    CHECK(v && v->type == OWL_META_ARRAY && v->arr.elem == OWL_META_STRING);
    return v && v->type == OWL_META_ARRAY ? v->arr.count : 0;
}

static void test_stories260k(void) {
    owl_weights ws;
    const char *path = testdata_path("models/stories260K.gguf");
    owl_status s = owl_gguf_read(path, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s != OWL_OK) return;
    /* PROVENANCE.md: dim 64, 5 layers, 8 heads, 4 KV heads, vocab 512, F32 */
    check_arch(&ws, "llama");
    CHECK(get_u(&ws.meta, "llama.embedding_length") == 64);
    CHECK(get_u(&ws.meta, "llama.block_count") == 5);
    CHECK(get_u(&ws.meta, "llama.attention.head_count") == 8);
    CHECK(get_u(&ws.meta, "llama.attention.head_count_kv") == 4);
    CHECK(vocab_count(&ws) == 512);
    const owl_meta_value *tok = owl_meta_find(&ws.meta, "tokenizer.ggml.tokens");
    CHECK(tok && owl_str_eq(tok->arr.strs[0], "<unk>") && owl_str_eq(tok->arr.strs[1], "<s>"));
    const owl_meta_value *scores = owl_meta_find(&ws.meta, "tokenizer.ggml.scores");
    CHECK(scores && scores->arr.elem == OWL_META_F32 && scores->arr.count == 512);
    /* 9 tensors per block, token_embd, output_norm and output (the llama2.c
     * conversion writes the shared classifier out as its own tensor) */
    CHECK(ws.n == 5 * 9 + 3);
    const owl_weight *w = owl_weights_find(&ws, "token_embd.weight");
    CHECK(w && w->dtype == OWL_F32 && w->n_dims == 2 && w->ne[0] == 64 && w->ne[1] == 512);
    for (size_t i = 0; i < ws.n; i++) CHECK(ws.w[i].dtype == OWL_F32);
    char *copy = path_join(test_tmpdir("gguf_rewrite"), "stories260K.gguf");
    CHECKF(owl_gguf_write(copy, &ws.meta, ws.w, ws.n, 0) == OWL_OK, "%s", owl_last_error());
    CHECKF(run_cmd("cmp '%s' '%s'", path, copy) == 0, "rewrite of %s differs", path);
    remove(copy);
    free(copy);
    /* stories260K.bin holds the same weights: 7 int32 header, then the
     * token embedding [512][64] F32 */
    char *bin = NULL;
    size_t bin_size = 0;
    if (w && owl_read_file(testdata_path("models/stories260K.bin"), &bin, &bin_size) == OWL_OK) {
        CHECK(bin_size > 28 + w->nbytes && w->nbytes == 512 * 64 * 4);
        if (bin_size > 28 + w->nbytes) CHECK(memcmp(bin + 28, w->data, w->nbytes) == 0);
        free(bin);
    } else {
        CHECKF(false, "cannot read stories260K.bin");
    }
    owl_weights_free(&ws);
}

/* The bytes of one tensor in a safetensors file (F32), or NULL. */
static const uint8_t *safetensors_tensor(const uint8_t *p, size_t size, const char *name, size_t *n) {
    if (size < 8) return NULL;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8) return NULL;
    json_t *j = json_loadb((const char *)p + 8, (size_t)hlen, 0, NULL);
    json_t *offs = json_object_get(json_object_get(j, name), "data_offsets");
    const uint8_t *r = NULL;
    if (offs && json_array_size(offs) == 2) {
        size_t a = (size_t)json_integer_value(json_array_get(offs, 0));
        size_t b = (size_t)json_integer_value(json_array_get(offs, 1));
        if (a <= b && 8 + hlen + b <= size) {
            r = p + 8 + hlen + a;
            *n = b - a;
        }
    }
    json_decref(j);
    return r;
}

static void test_wp_q4_k_m(void) {
    owl_weights ws;
    const char *path = testdata_path("models/wp/wp-Q4_K_M.gguf");
    owl_status s = owl_gguf_read(path, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s != OWL_OK) return;
    /* models/wp/README.md: hidden 256, 4 layers, 8 heads, 4 KV heads, ffn
     * 768, vocab 32000, tied embeddings (no output.weight), Q4_K_M mix:
     * q6_K x5 + q4_K x24, norms f32 */
    check_arch(&ws, "llama");
    CHECK(get_u(&ws.meta, "llama.embedding_length") == 256);
    CHECK(get_u(&ws.meta, "llama.block_count") == 4);
    CHECK(get_u(&ws.meta, "llama.attention.head_count") == 8);
    CHECK(get_u(&ws.meta, "llama.attention.head_count_kv") == 4);
    CHECK(get_u(&ws.meta, "llama.feed_forward_length") == 768);
    CHECK(vocab_count(&ws) == 32000);
    owl_str name = {0};
    CHECK(owl_meta_get_str(&ws.meta, "general.name", &name) && owl_str_eq(name, "wp"));
    bool add_bos = false;
    CHECK(owl_meta_get_bool(&ws.meta, "tokenizer.ggml.add_bos_token", &add_bos) && add_bos);
    CHECK(ws.n == 4 * 9 + 2);
    CHECK(owl_weights_find(&ws, "output.weight") == NULL);
    const owl_weight *w = owl_weights_find(&ws, "token_embd.weight");
    CHECK(w && w->dtype == OWL_Q6_K && w->n_dims == 2 && w->ne[0] == 256 && w->ne[1] == 32000);
    CHECK(w && w->nbytes == 32000ull * 210);
    int n_q6 = 0, n_q4 = 0, n_f32 = 0;
    for (size_t i = 0; i < ws.n; i++) {
        n_q6 += ws.w[i].dtype == OWL_Q6_K;
        n_q4 += ws.w[i].dtype == OWL_Q4_K;
        n_f32 += ws.w[i].dtype == OWL_F32;
    }
    CHECK(n_q6 == 5 && n_q4 == 24 && n_f32 == 9);
    const owl_weight *v2 = owl_weights_find(&ws, "blk.2.attn_v.weight");
    CHECK(v2 && v2->dtype == OWL_Q6_K && v2->ne[0] == 256 && v2->ne[1] == 128);
    /* the final norm is stored as F32 unchanged: compare it with the same
     * tensor in the Hugging Face safetensors file */
    /* owl's writer lays a file out as llama.cpp does: rewriting the file
     * llama.cpp made gives the same bytes */
    char *copy = path_join(test_tmpdir("gguf_rewrite"), "wp-Q4_K_M.gguf");
    CHECKF(owl_gguf_write(copy, &ws.meta, ws.w, ws.n, 0) == OWL_OK, "%s", owl_last_error());
    CHECKF(run_cmd("cmp '%s' '%s'", path, copy) == 0, "rewrite of %s differs", path);
    remove(copy);
    free(copy);
    const owl_weight *norm = owl_weights_find(&ws, "output_norm.weight");
    owl_mmap st;
    if (norm && owl_mmap_open(&st, testdata_path("models/wp/hf/model.safetensors")) == OWL_OK) {
        size_t n = 0;
        const uint8_t *ref = safetensors_tensor(st.data, st.size, "model.norm.weight", &n);
        CHECK(ref && n == 1024 && norm->nbytes == 1024 && memcmp(ref, norm->data, 1024) == 0);
        owl_mmap_close(&st);
    } else {
        CHECKF(false, "cannot compare output_norm.weight with hf/model.safetensors");
    }
    owl_weights_free(&ws);
}

/* Every quantized wp file reads; README: token_embd.weight is q8_0 in
 * Q8_0 and q6_K in the others; norms f32 everywhere; the Q8_0 and Q4_0
 * mixes are q8_0 x29 and q6_K x1 + q4_0 x28. */
static void test_wp_all(void) {
    static const char *const names[] = {"Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M",
                                        "Q5_0", "Q5_1", "Q5_K_M", "Q6_K", "Q8_0"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/wp/wp-%s.gguf", names[f]);
        owl_weights ws;
        owl_status s = owl_gguf_read(testdata_path(rel), &ws);
        CHECKF(s == OWL_OK, "%s", owl_last_error());
        if (s != OWL_OK) continue;
        CHECK(ws.n == 38);
        int count[OWL_DTYPE_COUNT] = {0};
        for (size_t i = 0; i < ws.n; i++) count[ws.w[i].dtype]++;
        const owl_weight *e = owl_weights_find(&ws, "token_embd.weight");
        bool q8 = strcmp(names[f], "Q8_0") == 0;
        CHECKF(e && e->dtype == (q8 ? OWL_Q8_0 : OWL_Q6_K), "%s token_embd", rel);
        CHECK(count[OWL_F32] == 9);
        if (q8) CHECK(count[OWL_Q8_0] == 29);
        if (strcmp(names[f], "Q4_0") == 0) CHECK(count[OWL_Q6_K] == 1 && count[OWL_Q4_0] == 28);
        owl_weights_free(&ws);
    }
}

/* ---- a writer that fails leaves nothing behind ---- */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_writer_failures(void) {
    const char *dir0 = test_tmpdir("gguf_writer_fail");
    char *dir = strdup(dir0);
    owl_meta meta = {0};
    CHECK(owl_meta_set_str(&meta, "general.architecture", "llama", 5) == OWL_OK);
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    owl_weight t = {.name = "x", .dtype = OWL_F32, .n_dims = 1, .ne = {8, 1, 1, 1}, .data = data, .nbytes = 32};

    /* the target directory does not exist */
    char *missing = path_join(dir, "no/such/dir/m.gguf");
    owl_status s = owl_gguf_write(missing, &meta, &t, 1, 0);
    CHECK(s == OWL_ERR_IO && strstr(owl_last_error(), "no/such/dir/m.gguf"));
    CHECK(count_entries(dir) == 0);

    /* the target is a directory: the rename fails, the temporary goes */
    char *sub = path_join(dir, "sub");
    mkdir(sub, 0755);
    s = owl_gguf_write(sub, &meta, &t, 1, 0);
    CHECKF(s == OWL_ERR_IO, "%s", owl_last_error());
    CHECK(count_entries(dir) == 1 && count_entries(sub) == 0);

    /* a directory we may not write to (root may write anywhere: skipped) */
    if (geteuid() != 0) {
        chmod(sub, 0555);
        char *ro = path_join(sub, "m.gguf");
        CHECK(owl_gguf_write(ro, &meta, &t, 1, 0) == OWL_ERR_IO);
        CHECK(count_entries(sub) == 0);
        chmod(sub, 0755);
        free(ro);
    }

    /* a path below a regular file */
    char *under_file = path_join(dir, "plain/m.gguf");
    char *plain = path_join(dir, "plain");
    FILE *pf = fopen(plain, "wb");
    if (pf) fclose(pf);
    CHECK(owl_gguf_write(under_file, &meta, &t, 1, 0) == OWL_ERR_IO);
    CHECK(count_entries(dir) == 2);
    remove(plain);
    free(plain);
    free(under_file);

    /* the disk fills up in the middle of the tensor data (a file size limit
     * in a child process stands in for it): an error, and no file */
    {
        char *big_path = path_join(dir, "big.gguf");
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {.rlim_cur = 100000, .rlim_max = RLIM_INFINITY};
            getrlimit(RLIMIT_FSIZE, &rl);
            rl.rlim_cur = 100000;
            setrlimit(RLIMIT_FSIZE, &rl);
            size_t n = 1 << 20;
            uint8_t *big = calloc(n, 1);
            owl_weight bt = {.name = "big", .dtype = OWL_I8, .n_dims = 1, .ne = {(int64_t)n, 1, 1, 1}, .data = big,
                             .nbytes = n};
            owl_status ws_ = owl_gguf_write(big_path, &meta, &bt, 1, 0);
            free(big);
            _exit(ws_ == OWL_ERR_IO && strstr(owl_last_error(), "big.gguf") ? 0 : 1);
        }
        int wst = -1;
        waitpid(pid, &wst, 0);
        CHECKF(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "write past the file size limit must fail with an i/o error");
        CHECK(count_entries(dir) == 1);
        free(big_path);
    }

    /* bad input is refused before anything is created; an existing file
     * stays as it was */
    char *target = path_join(dir, "m.gguf");
    CHECK(owl_gguf_write(target, &meta, &t, 1, 0) == OWL_OK);
    CHECK(count_entries(dir) == 2);
    owl_weight bad = t;
    bad.nbytes = 31;
    s = owl_gguf_write(target, &meta, &bad, 1, 0);
    CHECK(s == OWL_ERR_ARG && strstr(owl_last_error(), "'x'"));
    bad = t;
    bad.dtype = OWL_Q8_0; /* 8 is not a whole number of 32-element blocks */
    CHECK(owl_gguf_write(target, &meta, &bad, 1, 0) == OWL_ERR_ARG);
    owl_weight two[2] = {t, t};
    s = owl_gguf_write(target, &meta, two, 2, 0);
    CHECK(s == OWL_ERR_ARG && strstr(owl_last_error(), "duplicate tensor name 'x'"));
    CHECK(owl_gguf_write(target, &meta, &t, 1, 48) == OWL_ERR_ARG);
    bad = t;
    bad.name = "a.name.that.is.exactly.sixty.four.bytes.long.which.llama.cpp.rejects";
    s = owl_gguf_write(target, &meta, &bad, 1, 0);
    CHECK(s == OWL_ERR_ARG && strstr(owl_last_error(), "at most 63"));
    CHECK(count_entries(dir) == 2);
    owl_weights ws;
    s = owl_gguf_read(target, &ws);
    CHECK(s == OWL_OK);
    if (s == OWL_OK) {
        CHECK(ws.n == 1 && ws.w[0].nbytes == 32 && memcmp(ws.w[0].data, data, 32) == 0);
        owl_weights_free(&ws);
    }
    /* no tensors, no metadata: still a valid file */
    CHECK(owl_gguf_write(target, NULL, NULL, 0, 0) == OWL_OK);
    s = owl_gguf_read(target, &ws);
    CHECK(s == OWL_OK);
    if (s == OWL_OK) {
        CHECK(ws.n == 0 && ws.meta.n == 0 && ws.maps[0].size == 24);
        owl_weights_free(&ws);
    }
    owl_meta_free(&meta);
    free(target);
    free(sub);
    free(missing);
    free(dir);
}

int main(void) {
    test_round_trip(32);
    test_round_trip(64);
    test_stories260k();
    test_wp_q4_k_m();
    test_wp_all();
    test_writer_failures();
    return test_finish("test_gguf");
}
