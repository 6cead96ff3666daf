/* Bad GGUF input: every case must fail with a clear message naming the file
 * and the problem, never crash, never allocate what a hostile count asks
 * for. Files are built byte by byte here (independently of owl's writer),
 * each a valid base file with one thing broken; the base file itself must
 * read. Truncation runs over every length of a file made by owl's writer. */
#include "testutil.h"

#include "format/format.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_bytes(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_le(buf *b, uint64_t x, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(x >> (8 * i));
    b_bytes(b, t, (size_t)n);
}
static void b_u8(buf *b, uint8_t x) { b_le(b, x, 1); }
static void b_u32(buf *b, uint32_t x) { b_le(b, x, 4); }
static void b_u64(buf *b, uint64_t x) { b_le(b, x, 8); }
static void b_str(buf *b, const char *s) {
    b_u64(b, strlen(s));
    b_bytes(b, s, strlen(s));
}
static void b_header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_bytes(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(buf *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, 4);
    b_u32(b, v);
}
static void b_kv_str(buf *b, const char *key, const char *v) {
    b_str(b, key);
    b_u32(b, 8);
    b_str(b, v);
}
static void b_tensor(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) b_u64(b, ne[i]);
    b_u32(b, type);
    b_u64(b, off);
}
static void b_pad(buf *b, size_t align) {
    while (b->n % align) b_u8(b, 0);
}
static void b_zeros(buf *b, size_t n) {
    for (size_t i = 0; i < n; i++) b_u8(b, 0);
}

/* Reads b (copied into a buffer of exactly its size, so that ASan sees any
 * over-read) and checks the outcome. want == NULL: must succeed; else must
 * fail with an error containing the file name and each '|'-separated part
 * of want. */
static void expect(const char *label, const buf *b, const char *want) {
    uint8_t *copy = malloc(b->n ? b->n : 1);
    if (b->n) memcpy(copy, b->p, b->n);
    owl_weights ws;
    owl_status s = owl_gguf_read_mem("bad.gguf", copy, b->n, &ws);
    if (!want) {
        CHECKF(s == OWL_OK, "%s: %s", label, owl_last_error());
        if (s == OWL_OK) owl_weights_free(&ws);
    } else {
        const char *err = owl_last_error();
        CHECKF(s != OWL_OK, "%s: read succeeded", label);
        if (s == OWL_OK) owl_weights_free(&ws);
        CHECKF(strncmp(err, "bad.gguf: ", 10) == 0, "%s: error does not name the file: %s", label, err);
        char parts[256];
        snprintf(parts, sizeof parts, "%s", want);
        for (char *tok = strtok(parts, "|"); tok; tok = strtok(NULL, "|"))
            CHECKF(strstr(err, tok) != NULL, "%s: error '%s' lacks '%s'", label, err, tok);
        CHECK(ws.n == 0 && ws.w == NULL && ws.meta.n == 0); /* nothing half-built is left */
    }
    free(copy);
}

static const uint64_t ne_8x2[] = {8, 2};
static const uint64_t ne_32[] = {32};

/* A valid file: two keys (and optional extra ones), two F32 tensors [8, 2]
 * and [32] at offsets 0 and 64. */
static void base_file(buf *b, uint32_t version, int extra_kv) {
    b_header(b, version, 2, 2 + (uint64_t)extra_kv);
    b_kv_str(b, "general.architecture", "llama");
    b_kv_u32(b, "llama.block_count", 1);
}
static void base_tensors(buf *b) {
    b_tensor(b, "a", 2, ne_8x2, 0, 0);
    b_tensor(b, "b", 1, ne_32, 0, 64);
    b_pad(b, 32);
    b_zeros(b, 64 + 128);
}

static void test_base(void) {
    buf b = {0};
    base_file(&b, 3, 0);
    base_tensors(&b);
    expect("base v3", &b, NULL);
    b.n = 0;
    base_file(&b, 2, 0);
    base_tensors(&b);
    expect("base v2", &b, NULL);
    /* a tensor whose dims are all 1, and ne[0] = 1 */
    b.n = 0;
    b_header(&b, 3, 1, 0);
    uint64_t ones[4] = {1, 1, 1, 1};
    b_tensor(&b, "scalar", 4, ones, 0, 0);
    b_pad(&b, 32);
    b_zeros(&b, 4);
    expect("all-ones shape", &b, NULL);
    free(b.p);
}

static void test_header(void) {
    buf b = {0};
    b_bytes(&b, "GGUX", 4);
    b_u32(&b, 3);
    b_u64(&b, 0);
    b_u64(&b, 0);
    expect("wrong magic", &b, "not a GGUF file|GGUX");
    b.n = 0;
    expect("empty", &b, "too short");
    for (uint32_t v = 0; v < 6; v++) {
        if (v == 2 || v == 3) continue;
        b.n = 0;
        base_file(&b, v, 0);
        base_tensors(&b);
        char want[64];
        snprintf(want, sizeof want, "version %u", v);
        expect("bad version", &b, want);
    }
    b.n = 0;
    b_bytes(&b, "GGUF\0\0\0\3", 8); /* big-endian version 3 */
    b_bytes(&b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    expect("big-endian", &b, "big-endian");
    /* hostile counts */
    b.n = 0;
    b_header(&b, 3, UINT64_MAX, 0);
    expect("tensor count 2^64-1", &b, "tensor count 18446744073709551615");
    b.n = 0;
    b_header(&b, 3, 0, 1ull << 63);
    expect("key count 2^63", &b, "key count 9223372036854775808");
    b.n = 0;
    b_header(&b, 3, 0, 3); /* three keys announced, one present */
    b_kv_u32(&b, "x", 1);
    expect("missing keys", &b, "key count 3|runs past the end");
    free(b.p);
}

static void test_values(void) {
    buf b = {0};
    /* the example from the issue */
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.name");
    b_u32(&b, 8);
    b_u64(&b, 99999999);
    b_bytes(&b, "short", 5);
    char want[128];
    snprintf(want, sizeof want, "key 'general.name': string length 99999999 runs past the end of the file (size %zu)", b.n);
    expect("string length", &b, want);

    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_u64(&b, 1ull << 62); /* key name length */
    b_bytes(&b, "0123456789abcdef", 16);
    expect("key length", &b, "key #0|key name length 4611686018427387904");

    const struct {
        uint32_t elem;
        uint64_t count;
        const char *want;
    } arrays[] = {
        {4, 1000000, "array of 1000000 u32 values runs past"},
        {10, UINT64_MAX, "array of 18446744073709551615 u64"},
        {10, 1ull << 61, "array of 2305843009213693952 u64"}, /* count * 8 overflows */
        {8, 1ull << 63, "array count 9223372036854775808 of string"},
        {8, 3, "string 0 of the array"},
        {9, UINT64_MAX - 1, "array count 18446744073709551614 of array"},
        {13, 1, "unknown array element type 13"},
        {0xffffffffu, 1, "unknown array element type 4294967295"},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        b.n = 0;
        b_header(&b, 3, 0, 1);
        b_str(&b, "tokenizer.ggml.tokens");
        b_u32(&b, 9);
        b_u32(&b, arrays[i].elem);
        b_u64(&b, arrays[i].count);
        b_u64(&b, 5000); /* a first string length that runs past the end */
        b_bytes(&b, "abcdabcdabcdabcdabcdabcdabcdabcd", 32);
        char w[160];
        snprintf(w, sizeof w, "key 'tokenizer.ggml.tokens'|%s", arrays[i].want);
        expect("array", &b, w);
    }

    /* nested array depth bomb: 10000 levels of [1 x array] */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "bomb");
    b_u32(&b, 9);
    for (int i = 0; i < 10000; i++) {
        b_u32(&b, 9);
        b_u64(&b, 1);
    }
    b_u32(&b, 4);
    b_u64(&b, 0);
    expect("depth bomb", &b, "key 'bomb'|nested deeper");

    /* unknown value types; bad bool */
    const uint32_t bad_types[] = {13, 100, 0x80000000u};
    for (size_t i = 0; i < 3; i++) {
        b.n = 0;
        b_header(&b, 3, 0, 1);
        b_str(&b, "k");
        b_u32(&b, bad_types[i]);
        b_u64(&b, 0);
        snprintf(want, sizeof want, "key 'k'|unknown value type %u", bad_types[i]);
        expect("unknown type", &b, want);
    }
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "flag");
    b_u32(&b, 7);
    b_u8(&b, 2);
    expect("bool 2", &b, "key 'flag'|bool value 2");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "flags");
    b_u32(&b, 9);
    b_u32(&b, 7);
    b_u64(&b, 3);
    b_bytes(&b, "\1\0\5", 3);
    expect("bool array", &b, "key 'flags'|element 2 has value 5");
    /* a scalar cut short */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "big");
    b_u32(&b, 12);
    b_bytes(&b, "1234", 4);
    expect("short f64", &b, "key 'big'|f64");

    /* duplicate keys (not neighbours) */
    b.n = 0;
    b_header(&b, 3, 0, 3);
    b_kv_u32(&b, "llama.block_count", 1);
    b_kv_str(&b, "general.name", "x");
    b_kv_u32(&b, "llama.block_count", 2);
    expect("duplicate key", &b, "key 'llama.block_count'|duplicate key");
    /* a hostile key name is quoted safely */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "bad\nkey\x01");
    b_u32(&b, 99);
    expect("hostile key name", &b, "key 'bad\\x0akey\\x01'|unknown value type 99");
    free(b.p);
}

static void test_alignment(void) {
    buf b = {0};
    const struct {
        uint32_t v;
        const char *want;
    } cases[] = {{0, "alignment 0 is not a nonzero power of two"}, {48, "alignment 48"}, {3, "alignment 3"}};
    for (size_t i = 0; i < 3; i++) {
        b.n = 0;
        base_file(&b, 3, 1);
        b_kv_u32(&b, "general.alignment", cases[i].v);
        base_tensors(&b);
        char w[128];
        snprintf(w, sizeof w, "key 'general.alignment'|%s", cases[i].want);
        expect("alignment", &b, w);
    }
    b.n = 0;
    base_file(&b, 3, 1);
    b_kv_str(&b, "general.alignment", "32");
    base_tensors(&b);
    expect("alignment string", &b, "key 'general.alignment'|has type string");
    /* alignment 64 is honoured: offset 32 is then misaligned, 64 is fine */
    b.n = 0;
    base_file(&b, 3, 1);
    b_kv_u32(&b, "general.alignment", 64);
    base_tensors(&b);
    b_pad(&b, 64);
    expect("alignment 64", &b, NULL);
    b.n = 0;
    base_file(&b, 3, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tensor(&b, "a", 2, ne_8x2, 0, 0);
    b_tensor(&b, "b", 1, ne_32, 0, 96);
    b_pad(&b, 64);
    b_zeros(&b, 96 + 128);
    expect("misaligned for 64", &b, "tensor 'b'|offset 96 is not a multiple of the alignment 64");
    free(b.p);
}

/* The base file with tensor "b" (the second) replaced. */
static void with_tensor_b(buf *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    b->n = 0;
    base_file(b, 3, 0);
    b_tensor(b, "a", 2, ne_8x2, 0, 0);
    b_tensor(b, "b", n_dims, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data);
}

static void test_tensors(void) {
    buf b = {0};
    with_tensor_b(&b, 1, ne_32, 0, 64, 192);
    expect("tensor base", &b, NULL);
    with_tensor_b(&b, 1, ne_32, 99, 64, 192);
    expect("unknown dtype", &b, "tensor 'b'|unknown dtype id 99");
    with_tensor_b(&b, 1, ne_32, 4, 64, 192); /* id 4 was Q4_2, long gone */
    expect("removed dtype", &b, "tensor 'b'|unknown dtype id 4");
    uint64_t ne5[5] = {32, 1, 1, 1, 1};
    with_tensor_b(&b, 5, ne5, 0, 64, 192);
    expect("n_dims 5", &b, "tensor 'b'|n_dims 5");
    with_tensor_b(&b, 0, ne5, 0, 64, 192);
    expect("n_dims 0", &b, "tensor 'b'|n_dims 0");
    uint64_t ne0[2] = {32, 0};
    with_tensor_b(&b, 2, ne0, 0, 64, 192);
    expect("zero dim", &b, "tensor 'b'|dimension 1 is 0");
    with_tensor_b(&b, 1, ne_32, 0, 4096, 192);
    expect("offset past end", &b, "tensor 'b'|offset 4096|runs past the end");
    with_tensor_b(&b, 1, ne_32, 0, UINT64_MAX - 31, 192);
    expect("offset near 2^64", &b, "tensor 'b'|runs past the end");
    with_tensor_b(&b, 1, ne_32, 0, 32, 192);
    expect("overlap", &b, "tensor 'b'|overlaps tensor 'a'");
    with_tensor_b(&b, 1, ne_32, 0, 0, 192);
    expect("same offset", &b, "overlaps");
    with_tensor_b(&b, 1, ne_32, 0, 68, 192);
    expect("misaligned", &b, "tensor 'b'|offset 68 is not a multiple of the alignment 32");
    uint64_t ne_big[2] = {1ull << 31, 1ull << 31}; /* 2^62 F32 elements: 2^64 bytes */
    with_tensor_b(&b, 2, ne_big, 0, 64, 192);
    expect("byte size overflow", &b, "tensor 'b'|overflows 64 bits");
    uint64_t ne_huge[3] = {1ull << 32, 1ull << 32, 2}; /* element count overflows */
    with_tensor_b(&b, 3, ne_huge, 0, 64, 192);
    expect("element count overflow", &b, "tensor 'b'|more than 2^63 elements");
    uint64_t ne_neg[1] = {1ull << 63};
    with_tensor_b(&b, 1, ne_neg, 0, 64, 192);
    expect("dimension 2^63", &b, "tensor 'b'|dimension 0 is 9223372036854775808");
    uint64_t ne_q8[2] = {33, 2};
    with_tensor_b(&b, 2, ne_q8, 8, 64, 192);
    expect("partial block", &b, "tensor 'b'|ne[0] = 33|block size 32");
    /* duplicate names */
    b.n = 0;
    base_file(&b, 3, 0);
    b_tensor(&b, "a", 2, ne_8x2, 0, 0);
    b_tensor(&b, "a", 1, ne_32, 0, 64);
    b_pad(&b, 32);
    b_zeros(&b, 192);
    expect("duplicate tensor", &b, "tensor 'a'|duplicate tensor name");
    /* a NUL in a name */
    b.n = 0;
    base_file(&b, 3, 0);
    b_tensor(&b, "a", 2, ne_8x2, 0, 0);
    b_u64(&b, 3);
    b_bytes(&b, "b\0c", 3);
    b_u32(&b, 1);
    b_u64(&b, 32);
    b_u32(&b, 0);
    b_u64(&b, 64);
    b_pad(&b, 32);
    b_zeros(&b, 192);
    expect("NUL in name", &b, "NUL");
    free(b.p);
}

/* Every length of a small file made by owl's writer, from 0 to one byte
 * short, must fail cleanly; the whole file must read. */
static void test_truncation(void) {
    const char *dir = test_tmpdir("gguf_truncation");
    char *path = path_join(dir, "t.gguf");
    owl_meta meta = {0};
    CHECK(owl_meta_set_str(&meta, "general.architecture", "llama", 5) == OWL_OK);
    CHECK(owl_meta_set_u32(&meta, "llama.block_count", 2) == OWL_OK);
    owl_str toks[3] = {{"<unk>", 5}, {"<s>", 3}, {"\xe2\x96\x81the", 6}};
    CHECK(owl_meta_set_str_arr(&meta, "tokenizer.ggml.tokens", toks, 3) == OWL_OK);
    float scores[3] = {0, -1, -2.5f};
    CHECK(owl_meta_set_arr(&meta, "tokenizer.ggml.scores", OWL_META_F32, scores, 3) == OWL_OK);
    owl_meta_value inner[2] = {{.type = OWL_META_ARRAY}, {.type = OWL_META_ARRAY}};
    inner[0].arr.elem = OWL_META_F32;
    inner[0].arr.count = 3;
    inner[0].arr.raw = scores;
    inner[1].arr.elem = OWL_META_STRING;
    inner[1].arr.count = 3;
    inner[1].arr.strs = toks;
    owl_meta_value nested = {.type = OWL_META_ARRAY};
    nested.arr.elem = OWL_META_ARRAY;
    nested.arr.count = 2;
    nested.arr.items = inner;
    CHECK(owl_meta_set(&meta, "x.nested", &nested) == OWL_OK);
    CHECK(owl_meta_set_bool(&meta, "x.flag", true) == OWL_OK);
    uint8_t data[34 * 2 + 4 * 8];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7);
    owl_weight t[2] = {
        {.name = "q", .dtype = OWL_Q8_0, .n_dims = 2, .ne = {32, 2, 1, 1}, .data = data, .nbytes = 68},
        /* 32 bytes: the file ends with it, without padding */
        {.name = "n", .dtype = OWL_F32, .n_dims = 1, .ne = {8, 1, 1, 1}, .data = data + 68, .nbytes = 32},
    };
    CHECK(owl_gguf_write(path, &meta, t, 2, 0) == OWL_OK);
    owl_meta_free(&meta);
    char *file = NULL;
    size_t size = 0;
    CHECK(owl_read_file(path, &file, &size) == OWL_OK);
    int fails = 0, bad_msgs = 0;
    for (size_t len = 0; file && len <= size; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, file, len);
        owl_weights ws;
        owl_status s = owl_gguf_read_mem("cut.gguf", copy, len, &ws);
        if (len == size) {
            CHECKF(s == OWL_OK, "whole file: %s", owl_last_error());
            if (s == OWL_OK) {
                CHECK(ws.n == 2 && ws.meta.n == 6);
                owl_weights_free(&ws);
            }
        } else if (s == OWL_OK) {
            fails++;
            fprintf(stderr, "length %zu of %zu read without error\n", len, size);
            owl_weights_free(&ws);
        } else if (strncmp(owl_last_error(), "cut.gguf: ", 10) != 0 || !strstr(owl_last_error(), "end of the file")) {
            /* every truncation is reported as running past the end, except
             * lengths below the magic */
            if (len >= 4) {
                bad_msgs++;
                fprintf(stderr, "length %zu: unclear message: %s\n", len, owl_last_error());
            }
        }
        free(copy);
    }
    CHECK(size > 200);
    CHECK(fails == 0);
    CHECK(bad_msgs == 0);
    free(file);
    free(path);
}

int main(void) {
    test_base();
    test_header();
    test_values();
    test_alignment();
    test_tensors();
    test_truncation();
    return test_finish("test_gguf_bad");
}
