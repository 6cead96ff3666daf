/* owl_gguf_write_stream: tensors produced by a callback while the file is
 * written give the same bytes as owl_gguf_write with the data in memory;
 * the callback is asked in file order, once per tensor without data; a
 * failing callback (or one that gives no data) stops the write with its
 * own error and leaves no file, temporary or final, behind; an existing
 * file at the path stays as it was. */
#include "format/format.h"
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const owl_weight *src; /* where the bytes really are */
    size_t calls, order_ok, fail_at, null_at;
    uint8_t buf[4096];
} producer;

static owl_status produce(void *ud, size_t i, const void **data) {
    producer *p = ud;
    p->order_ok += i == 2 * p->calls; /* tensors 0, 2, 4 have no data */
    p->calls++;
    if (i == p->fail_at) return owl_errorf(OWL_ERR_FORMAT, "producer: tensor %zu is broken", i);
    if (i == p->null_at) {
        *data = NULL;
        return OWL_OK;
    }
    memset(p->buf, 0xee, sizeof p->buf); /* the buffer is reused: stale bytes must not leak */
    memcpy(p->buf, p->src[i].data, p->src[i].nbytes);
    *data = p->buf;
    return OWL_OK;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

int main(void) {
    const char *dir = test_tmpdir("gguf_stream");
    char *a = path_join(dir, "a.gguf"), *b = path_join(dir, "b.gguf");
    owl_meta meta = {0};
    CHECK(owl_meta_set_str(&meta, "general.architecture", "llama", 5) == OWL_OK);
    static uint8_t data[5][1200];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 1200; i++) data[t][i] = (uint8_t)(i * 13 + t * 7);
    owl_weight w[5] = {
        {.name = "t0", .dtype = OWL_F32, .n_dims = 2, .ne = {10, 3, 1, 1}, .nbytes = 120},
        {.name = "t1", .dtype = OWL_Q8_0, .n_dims = 2, .ne = {64, 2, 1, 1}, .nbytes = 136},
        {.name = "t2", .dtype = OWL_Q4_K, .n_dims = 2, .ne = {256, 3, 1, 1}, .nbytes = 432},
        {.name = "t3", .dtype = OWL_F16, .n_dims = 1, .ne = {7, 1, 1, 1}, .nbytes = 14},
        {.name = "t4", .dtype = OWL_Q6_K, .n_dims = 2, .ne = {256, 5, 1, 1}, .nbytes = 1050},
    };
    for (int t = 0; t < 5; t++) w[t].data = data[t];
    CHECK(owl_gguf_write(a, &meta, w, 5, 0) == OWL_OK);

    owl_weight s[5];
    memcpy(s, w, sizeof s);
    s[0].data = s[2].data = s[4].data = NULL;
    producer p = {.src = w, .fail_at = 99, .null_at = 99};
    CHECKF(owl_gguf_write_stream(b, &meta, s, 5, 0, produce, &p) == OWL_OK, "%s", owl_last_error());
    CHECKF(p.calls == 3 && p.order_ok == 3, "callback asked %zu times, %zu in order", p.calls, p.order_ok);
    char *fa = NULL, *fb = NULL;
    size_t na = 0, nb = 0;
    CHECK(owl_read_file(a, &fa, &na) == OWL_OK && owl_read_file(b, &fb, &nb) == OWL_OK);
    CHECKF(fa && fb && na == nb && memcmp(fa, fb, na) == 0, "streamed file differs (%zu vs %zu bytes)", nb, na);
    free(fa);
    free(fb);

    /* a failing producer: its error, nothing new in the folder, the older
     * file untouched */
    CHECK(owl_write_file_atomic(b, "old", 3) == OWL_OK);
    int before = count_entries(dir);
    p = (producer){.src = w, .fail_at = 2, .null_at = 99};
    owl_status st = owl_gguf_write_stream(b, &meta, s, 5, 0, produce, &p);
    CHECKF(st == OWL_ERR_FORMAT && strstr(owl_last_error(), "producer: tensor 2 is broken"), "failing producer: %d %s", (int)st,
           owl_last_error());
    CHECK(p.calls == 2);
    p = (producer){.src = w, .fail_at = 99, .null_at = 4};
    st = owl_gguf_write_stream(b, &meta, s, 5, 0, produce, &p);
    CHECKF(st == OWL_ERR_ARG && strstr(owl_last_error(), "tensor 't4': no data given"), "no data: %d %s", (int)st,
           owl_last_error());
    CHECK(count_entries(dir) == before);
    CHECK(owl_read_file(b, &fb, &nb) == OWL_OK && nb == 3 && memcmp(fb, "old", 3) == 0);
    free(fb);
    /* without a producer, a tensor without data is still an error */
    st = owl_gguf_write(b, &meta, s, 5, 0);
    CHECKF(st == OWL_ERR_ARG && strstr(owl_last_error(), "tensor 't0' has no data"), "no producer: %s", owl_last_error());
    CHECK(count_entries(dir) == before);

    owl_meta_free(&meta);
    free(a);
    free(b);
    return test_finish("test_gguf_stream");
}
