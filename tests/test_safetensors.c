/* safetensors reader and writer:
 * - round trip writer -> reader (F32, F16, BF16, 1..4 dimensions, a scalar
 *   and an empty tensor, metadata), and the written file read by an
 *   independent Python reader (tests/reference/safetensors_ref.py): same
 *   names, shapes, sums, metadata, 8-byte aligned data, space padding;
 * - the real wp model.safetensors: shapes from config.json, values equal to
 *   what the Python reader sees;
 * - sharded checkpoints through an index;
 * - bad input: each case a clear error naming the problem, no crash; the
 *   reader over every truncation of a valid file. */
#include "format/format.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *tmp;

/* ---- the independent reader ---- */

typedef struct ref_tensor {
    char name[128], dtype[8], shape[64];
    double sum, sumsq;
} ref_tensor;

static int ref_read(const char *path, ref_tensor *out, int cap, char *meta, size_t meta_cap, int *pad_ok) {
    int st;
    char *txt = run_capture(&st, "%s %s '%s'", test_python(), source_path("tests/reference/safetensors_ref.py"), path);
    CHECKF(txt && st == 0, "safetensors_ref.py %s failed", path);
    if (!txt) return 0;
    int n = 0;
    char *save, *line = strtok_r(txt, "\n", &save);
    while (line) {
        if (strncmp(line, "metadata ", 9) == 0) snprintf(meta, meta_cap, "%s", line + 9);
        else if (strncmp(line, "header_len ", 11) == 0) sscanf(line, "header_len %*d pad_ok %d", pad_ok);
        else if (n < cap && sscanf(line, "%127s %7s %63s %lf %lf", out[n].name, out[n].dtype, out[n].shape, &out[n].sum,
                                   &out[n].sumsq) == 5)
            n++;
        line = strtok_r(NULL, "\n", &save);
    }
    free(txt);
    return n;
}

/* Compares a table with the Python reader's view of the same file. */
static void check_against_ref(const owl_weights *ws, const char *path) {
    static ref_tensor r[512];
    char meta[1024] = "";
    int pad_ok = 0;
    int n = ref_read(path, r, 512, meta, sizeof meta, &pad_ok);
    CHECKF((size_t)n == ws->n, "%s: python sees %d tensors, owl %zu", path, n, ws->n);
    for (int i = 0; i < n; i++) {
        const owl_weight *w = owl_weights_find(ws, r[i].name);
        CHECKF(w != NULL, "%s: owl lacks %s", path, r[i].name);
        if (!w) continue;
        CHECKF(strcmp(r[i].dtype, w->dtype == OWL_F32 ? "F32" : w->dtype == OWL_F16 ? "F16" : "BF16") == 0, "%s dtype",
               r[i].name);
        char shape[64] = "";
        size_t o = 0;
        for (int d = w->n_dims - 1; d >= 0; d--)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", o ? "," : "", (long long)w->ne[d]);
        /* a scalar: python prints "-", owl holds [1] */
        CHECKF(strcmp(shape, r[i].shape) == 0 || (strcmp(r[i].shape, "-") == 0 && strcmp(shape, "1") == 0),
               "%s: shape %s vs %s", r[i].name, shape, r[i].shape);
        int64_t ne = owl_weight_nelem(w);
        float *f = malloc(sizeof(float) * (size_t)(ne ? ne : 1));
        double s = 0, s2 = 0;
        if (ne && owl_to_f32(w->dtype, w->data, f, ne) != OWL_OK) CHECK(0);
        for (int64_t k = 0; k < ne; k++) {
            s += f[k];
            s2 += (double)f[k] * f[k];
        }
        CHECKF(fabs(s - r[i].sum) <= 1e-9 * (fabs(r[i].sum) + r[i].sumsq + 1) && fabs(s2 - r[i].sumsq) <= 1e-9 * (r[i].sumsq + 1),
               "%s: sums %.17g %.17g vs python %.17g %.17g", r[i].name, s, s2, r[i].sum, r[i].sumsq);
        free(f);
    }
}

/* ---- round trip ---- */

static void test_round_trip(void) {
    static float a[3 * 5], e[2 * 3 * 4 * 2];
    static uint16_t h[7], b[2 * 3 * 4];
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 7; i++) h[i] = owl_f32_to_f16((float)i / 3.0f);
    for (int i = 0; i < 24; i++) b[i] = owl_f32_to_bf16((float)(i * i) - 7.5f);
    for (int i = 0; i < 48; i++) e[i] = (float)sin(i);
    float one = 42.0f;
    owl_weight t[] = {
        {"z.last", OWL_F32, 2, {5, 3}, a, sizeof a},  /* shape [3, 5] */
        {"a.first", OWL_F16, 1, {7}, h, sizeof h},
        {"m.bf16", OWL_BF16, 3, {4, 3, 2}, b, sizeof b},
        {"four.d", OWL_F32, 4, {2, 4, 3, 2}, e, sizeof e},
        {"scalar.one", OWL_F32, 1, {1}, &one, 4},
        {"empty", OWL_F32, 2, {0, 3}, a, 0},
    };
    size_t nt = sizeof t / sizeof t[0];
    owl_meta meta = {0};
    owl_meta_set_str(&meta, "format", "pt", 2);
    owl_meta_set_str(&meta, "owl.note", "caf\xc3\xa9 \"quoted\"", 14);
    owl_meta_set_u32(&meta, "not.a.string", 7); /* only strings are written */
    char *path = path_join(tmp, "rt.safetensors");
    owl_status s = owl_safetensors_write(path, t, nt, &meta);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    owl_weights ws;
    s = owl_safetensors_read(path, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (!s) {
        CHECK(ws.n == nt && strcmp(ws.format, "safetensors") == 0);
        for (size_t i = 0; i < nt; i++) {
            const owl_weight *w = owl_weights_find(&ws, t[i].name);
            CHECKF(w && w->dtype == t[i].dtype && w->n_dims == t[i].n_dims && w->nbytes == t[i].nbytes &&
                       memcmp(w->ne, t[i].ne, sizeof(int64_t) * (size_t)t[i].n_dims) == 0 &&
                       (!w->nbytes || memcmp(w->data, t[i].data, w->nbytes) == 0),
                   "tensor %s differs after the round trip", t[i].name);
        }
        /* sorted names: data in that order */
        CHECK(strcmp(ws.w[0].name, "a.first") == 0 && strcmp(ws.w[nt - 1].name, "z.last") == 0);
        owl_str v;
        CHECK(owl_meta_get_str(&ws.meta, "owl.note", &v) && v.len == 14 && memcmp(v.ptr, "caf\xc3\xa9 \"quoted\"", 14) == 0);
        CHECK(owl_meta_get_str(&ws.meta, "format", &v) && owl_str_eq(v, "pt"));
        CHECK(!owl_meta_find(&ws.meta, "not.a.string"));
        check_against_ref(&ws, path);
        owl_weights_free(&ws);
    }
    static ref_tensor r[16];
    char m[256] = "";
    int pad_ok = 0;
    ref_read(path, r, 16, m, sizeof m, &pad_ok);
    CHECKF(pad_ok == 1, "data section not 8-byte aligned or padding not spaces");
    CHECKF(strcmp(m, "format=pt;owl.note=caf\xc3\xa9 \"quoted\"") == 0, "metadata as python reads it: %s", m);

    /* deterministic: the same tensors in another order give the same bytes */
    owl_weight t2[6];
    for (size_t i = 0; i < nt; i++) t2[i] = t[nt - 1 - i];
    char *path2 = path_join(tmp, "rt2.safetensors");
    CHECK(owl_safetensors_write(path2, t2, nt, &meta) == OWL_OK);
    char *x, *y;
    size_t nx, ny;
    if (owl_read_file(path, &x, &nx) == OWL_OK) {
        if (owl_read_file(path2, &y, &ny) == OWL_OK) {
            CHECK(nx == ny && memcmp(x, y, nx) == 0);
            free(y);
        }
        free(x);
    }
    /* writer errors: bad dtype, byte count, duplicate name; nothing left behind */
    owl_weight bad = {"q", OWL_Q8_0, 1, {32}, a, 34};
    char *path3 = path_join(tmp, "bad.safetensors");
    s = owl_safetensors_write(path3, &bad, 1, NULL);
    CHECK(s != OWL_OK && strstr(owl_last_error(), "Q8_0") && strstr(owl_last_error(), "'q'"));
    bad = (owl_weight){"q", OWL_F32, 1, {4}, a, 12};
    s = owl_safetensors_write(path3, &bad, 1, NULL);
    CHECK(s != OWL_OK && strstr(owl_last_error(), "12 bytes"));
    owl_weight dup[2] = {{"d", OWL_F32, 1, {1}, a, 4}, {"d", OWL_F32, 1, {1}, a, 4}};
    s = owl_safetensors_write(path3, dup, 2, NULL);
    CHECK(s != OWL_OK && strstr(owl_last_error(), "'d'"));
    CHECK(!owl_file_exists(path3));
    char *nodir = path_join(tmp, "no/such/dir.safetensors");
    CHECK(owl_safetensors_write(nodir, t, 1, NULL) == OWL_ERR_IO);
    free(nodir);
    free(path3);
    free(path2);
    free(path);
    owl_meta_free(&meta);
}

/* ---- the real file ---- */

static void test_wp(void) {
    const char *p = testdata_path("models/wp/hf/model.safetensors");
    char *path = strdup(p);
    owl_weights ws;
    owl_status s = owl_safetensors_read(path, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (s) {
        free(path);
        return;
    }
    /* config.json: hidden 256, 4 layers, 8 heads x 32, 4 KV heads, ffn 768, vocab 32000, tied */
    CHECK(ws.n == 38);
    struct {
        const char *name;
        int64_t ne0, ne1;
    } want[] = {{"model.embed_tokens.weight", 256, 32000},
                {"model.norm.weight", 256, 1},
                {"model.layers.0.self_attn.q_proj.weight", 256, 256},
                {"model.layers.3.self_attn.k_proj.weight", 256, 128},
                {"model.layers.2.self_attn.v_proj.weight", 256, 128},
                {"model.layers.1.self_attn.o_proj.weight", 256, 256},
                {"model.layers.0.mlp.gate_proj.weight", 256, 768},
                {"model.layers.0.mlp.up_proj.weight", 256, 768},
                {"model.layers.3.mlp.down_proj.weight", 768, 256},
                {"model.layers.3.input_layernorm.weight", 256, 1},
                {"model.layers.3.post_attention_layernorm.weight", 256, 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const owl_weight *w = owl_weights_find(&ws, want[i].name);
        CHECKF(w && w->dtype == OWL_F32 && w->ne[0] == want[i].ne0 && w->ne[1] == want[i].ne1 &&
                   w->n_dims == (want[i].ne1 == 1 ? 1 : 2),
               "%s", want[i].name);
    }
    CHECK(!owl_weights_find(&ws, "lm_head.weight"));
    owl_str f;
    CHECK(owl_meta_get_str(&ws.meta, "format", &f) && owl_str_eq(f, "pt"));
    check_against_ref(&ws, path);
    /* zero-copy: tensors point into the mapping */
    const owl_weight *e = owl_weights_find(&ws, "model.embed_tokens.weight");
    CHECK(ws.n_maps == 1 && e && (const uint8_t *)e->data >= ws.maps[0].data &&
          (const uint8_t *)e->data + e->nbytes <= ws.maps[0].data + ws.maps[0].size);
    owl_weights_free(&ws);
    free(path);
}

/* ---- shards ---- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_shards(void) {
    static float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {-1, -2, -3, -4};
    owl_weight s1[] = {{"x.a", OWL_F32, 2, {3, 2}, a, 24}};
    owl_weight s2[] = {{"x.b", OWL_F32, 1, {4}, b, 16}, {"x.c", OWL_F32, 1, {2}, a, 8}};
    char *p1 = path_join(tmp, "s-1.safetensors"), *p2 = path_join(tmp, "s-2.safetensors");
    char *ix = path_join(tmp, "s.index.json");
    CHECK(owl_safetensors_write(p1, s1, 1, NULL) == OWL_OK && owl_safetensors_write(p2, s2, 2, NULL) == OWL_OK);
    write_text(ix, "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {\"x.a\": \"s-1.safetensors\", "
                   "\"x.b\": \"s-2.safetensors\", \"x.c\": \"s-2.safetensors\"}}");
    owl_weights ws;
    owl_status s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s == OWL_OK, "%s", owl_last_error());
    if (!s) {
        const owl_weight *w = owl_weights_find(&ws, "x.b");
        CHECK(ws.n == 3 && ws.n_maps == 2 && w && ((const float *)w->data)[3] == -4.0f);
        owl_weights_free(&ws);
    }
    /* the index puts x.c in the first shard: it is not there */
    write_text(ix, "{\"weight_map\": {\"x.a\": \"s-1.safetensors\", \"x.b\": \"s-2.safetensors\", "
                   "\"x.c\": \"s-1.safetensors\"}}");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "'x.c'") && strstr(owl_last_error(), "s-1.safetensors"), "%s",
           owl_last_error());
    write_text(ix, "{\"weight_map\": {\"x.a\": \"s-9.safetensors\"}}");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "s-9.safetensors") && strstr(owl_last_error(), "does not exist"),
           "%s", owl_last_error());
    write_text(ix, "{\"weight_map\": [1, 2]}");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "weight_map"), "%s", owl_last_error());
    write_text(ix, "{\"weight_map\": {\"x.a\": 5}}");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "'x.a'"), "%s", owl_last_error());
    write_text(ix, "weight_map = x");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "s.index.json") && strstr(owl_last_error(), "JSON"), "%s",
           owl_last_error());
    write_text(ix, "{\"weight_map\": {\"x.a\": \"/etc/passwd\"}}");
    s = owl_safetensors_read_index(ix, &ws);
    CHECKF(s != OWL_OK && strstr(owl_last_error(), "same directory"), "%s", owl_last_error());
    free(p1);
    free(p2);
    free(ix);
}

/* ---- bad input ---- */

/* u64 length + header text (+ pad_to spaces) + data_len zero bytes */
static uint8_t *make(const char *header, uint64_t claimed_len, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    uint8_t *b = calloc(1, *size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(claimed_len >> (8 * i));
    memcpy(b + 8, header, hl);
    return b;
}

static void bad(const char *what, const char *header, uint64_t claimed_len, size_t data_len, const char *want1,
                const char *want2) {
    size_t size;
    uint8_t *b = make(header, claimed_len ? claimed_len : strlen(header), data_len, &size);
    owl_weights ws;
    owl_status s = owl_safetensors_read_mem("bad.safetensors", b, size, &ws);
    const char *e = owl_last_error();
    CHECKF(s != OWL_OK && strstr(e, "bad.safetensors") && strstr(e, want1) && (!want2 || strstr(e, want2)),
           "%s: status %d, error '%s' (wanted '%s', '%s')", what, (int)s, e, want1, want2 ? want2 : "");
    if (!s) owl_weights_free(&ws);
    free(b);
}

#define T1(dtype, shape, offs) "{\"t\": {\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": " offs "}}"

static void test_bad(void) {
    bad("header length past the file", T1("F32", "[2]", "[0, 8]"), 1000, 8, "header length 1000", "larger");
    bad("absurd header length", T1("F32", "[2]", "[0, 8]"), 1ull << 40, 8, "header length", "absurd");
    bad("not JSON", "{\"t\": {\"dtype\": ", 0, 0, "not valid JSON", NULL);
    bad("not an object", "[1, 2, 3]", 0, 0, "not an object", NULL);
    bad("offsets past the end", T1("F32", "[4]", "[0, 16]"), 0, 8, "'t'", "past the end");
    bad("end before begin", T1("F32", "[0]", "[8, 4]"), 0, 8, "'t'", "end before begin");
    bad("size mismatch", T1("F32", "[3]", "[0, 8]"), 0, 8, "'t'", "8 bytes");
    bad("negative shape", T1("F32", "[-2]", "[0, 8]"), 0, 8, "'t'", "shape[0]");
    bad("float shape", T1("F32", "[2.5]", "[0, 8]"), 0, 8, "'t'", "shape[0]");
    bad("shape overflow", T1("F32", "[4294967296, 4294967296, 2]", "[0, 8]"), 0, 8, "'t'", "overflow");
    bad("unknown dtype", T1("F8_E4M3", "[2]", "[0, 2]"), 0, 8, "'t'", "F8_E4M3");
    bad("int dtype", T1("I64", "[1]", "[0, 8]"), 0, 8, "'t'", "I64");
    bad("too many dims", T1("F32", "[1, 1, 1, 1, 2]", "[0, 8]"), 0, 8, "'t'", "5 dimensions");
    bad("no dtype", "{\"t\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 0, 8, "'t'", "dtype");
    bad("no offsets", "{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", 0, 8, "'t'", "data_offsets");
    bad("entry not object", "{\"t\": 5}", 0, 0, "'t'", "not a JSON object");
    bad("metadata not strings", "{\"__metadata__\": {\"k\": 1}}", 0, 0, "__metadata__", "'k'");
    bad("overlap",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
        "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
        0, 16, "overlap", "'a'");
    bad("duplicate names",
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
        0, 8, "JSON", NULL);
    bad("tiny header", "{", 0, 0, "not a JSON object", NULL);
    size_t size;
    owl_weights ws;
    owl_status s = owl_safetensors_read_mem("short.safetensors", (const uint8_t *)"abc", 3, &ws);
    CHECK(s != OWL_OK && strstr(owl_last_error(), "too short"));

    /* every truncation of a valid file: an error or (whole file) a table */
    const char *hdr = "{\"__metadata__\": {\"format\": \"pt\"}, \"a\": {\"dtype\": \"BF16\", \"shape\": [2, 2], "
                      "\"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [8, 14]}}";
    uint8_t *b = make(hdr, strlen(hdr), 14, &size);
    int ok = 0;
    for (size_t n = 0; n <= size; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, b, n);
        s = owl_safetensors_read_mem("cut.safetensors", c, n, &ws);
        if (s == OWL_OK) {
            ok++;
            CHECK(n == size && ws.n == 2);
            owl_weights_free(&ws);
        } else {
            CHECK(strstr(owl_last_error(), "cut.safetensors") != NULL);
        }
        free(c);
    }
    CHECK(ok == 1);
    free(b);
    /* a missing file; a lone safetensors file through owl_weights_open */
    char *missing = path_join(tmp, "missing.safetensors");
    CHECK(owl_safetensors_read(missing, &ws) == OWL_ERR_IO && strstr(owl_last_error(), "missing.safetensors"));
    free(missing);
    s = owl_weights_open(testdata_path("models/wp/hf/model.safetensors"), NULL, &ws);
    CHECK(s == OWL_ERR_UNSUPPORTED && strstr(owl_last_error(), "config.json"));
}

int main(void) {
    tmp = test_tmpdir("safetensors");
    test_round_trip();
    test_wp();
    test_shards();
    test_bad();
    return test_finish("test_safetensors");
}
