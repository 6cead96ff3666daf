/* The audit log: one JSON object per line, each chained to the one before.
 *
 * A line is {...fields...,"prev":"P","sha256":"H"} where P is the SHA-256
 * (hex) of the whole previous line (without its newline; "" for the first
 * line) and H the SHA-256 of this line's bytes before ',"sha256":"'. Changing
 * a line breaks its own H; removing or reordering lines breaks the next P.
 * Each line goes out with one write() and is fsync()ed before the request's
 * slot is reused for auditing the next one. */
#include "serve/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void owl_serve_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = 0;
}

struct owl_audit {
    int fd;
    char *path;
    char prev[65];
    pthread_mutex_t mu;
};

/* The SHA-256 of the last line of fd's file ("" if empty). */
static owl_status last_line_hash(int fd, const char *path, char out[65]) {
    out[0] = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) return owl_errorf(OWL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    off_t size = sb.st_size;
    if (size == 0) return OWL_OK;
    /* Read backwards until the newline before the last line. */
    size_t cap = 4096;
    char *buf = NULL;
    for (;;) {
        size_t want = (size_t)size < cap ? (size_t)size : cap;
        char *nb = realloc(buf, want);
        if (!nb) {
            free(buf);
            return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory reading the last line", path);
        }
        buf = nb;
        ssize_t r = pread(fd, buf, want, size - (off_t)want);
        if (r != (ssize_t)want) {
            free(buf);
            return owl_errorf(OWL_ERR_IO, "%s: cannot read the last line", path);
        }
        size_t end = want;
        if (end && buf[end - 1] == '\n') end--;
        size_t start = end;
        while (start > 0 && buf[start - 1] != '\n') start--;
        if (start > 0 || want == (size_t)size) {
            owl_serve_sha256_hex(buf + start, end - start, out);
            free(buf);
            return OWL_OK;
        }
        if (cap > ((size_t)1 << 30)) {
            free(buf);
            return owl_errorf(OWL_ERR_FORMAT, "%s: last line longer than 1 GiB", path);
        }
        cap *= 4;
    }
}

owl_status owl_audit_open(const char *path, owl_audit **out) {
    *out = NULL;
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return owl_errorf(OWL_ERR_IO, "%s: cannot open the audit log: %s", path, strerror(errno));
    owl_audit *a = calloc(1, sizeof *a);
    if (!a) {
        close(fd);
        return owl_errorf(OWL_ERR_NOMEM, "%s: out of memory", path);
    }
    a->fd = fd;
    a->path = strdup(path);
    pthread_mutex_init(&a->mu, NULL);
    owl_status st = a->path ? last_line_hash(fd, path, a->prev) : owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (st != OWL_OK) {
        owl_audit_close(a);
        return st;
    }
    *out = a;
    return OWL_OK;
}

void owl_audit_close(owl_audit *a) {
    if (!a) return;
    if (a->fd >= 0) {
        fsync(a->fd);
        close(a->fd);
    }
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

owl_status owl_audit_append(owl_audit *a, const char *obj) {
    size_t n = strlen(obj);
    if (n < 2 || obj[0] != '{' || obj[n - 1] != '}')
        return owl_errorf(OWL_ERR_ARG, "audit: a line must be a JSON object");
    pthread_mutex_lock(&a->mu);
    /* obj without its '}' + "prev" + "sha256" */
    size_t cap = n + 200;
    char *line = malloc(cap);
    if (!line) {
        pthread_mutex_unlock(&a->mu);
        return owl_errorf(OWL_ERR_NOMEM, "audit: out of memory");
    }
    int k = snprintf(line, cap, "%.*s%s\"prev\":\"%s\"", (int)(n - 1), obj, n > 2 ? "," : "", a->prev);
    char h[65];
    owl_serve_sha256_hex(line, (size_t)k, h);
    k += snprintf(line + k, cap - (size_t)k, ",\"sha256\":\"%s\"}", h);
    owl_serve_sha256_hex(line, (size_t)k, a->prev);
    line[k++] = '\n';
    owl_status st = OWL_OK;
    size_t off = 0;
    while (off < (size_t)k) {
        ssize_t w = write(a->fd, line + off, (size_t)k - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = owl_errorf(OWL_ERR_IO, "%s: audit write failed: %s", a->path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (st == OWL_OK && fsync(a->fd) != 0)
        st = owl_errorf(OWL_ERR_IO, "%s: audit fsync failed: %s", a->path, strerror(errno));
    free(line);
    pthread_mutex_unlock(&a->mu);
    return st;
}

static const char SUFFIX[] = ",\"sha256\":\"";

static bool check_line(const char *line, size_t len, const char *prev, char *why, size_t why_len) {
    json_error_t e;
    json_t *j = json_loadb(line, len, 0, &e);
    if (!j || !json_is_object(j)) {
        snprintf(why, why_len, "not a JSON object (%s)", j ? "other value" : e.text);
        json_decref(j);
        return false;
    }
    const char *p = json_string_value(json_object_get(j, "prev"));
    const char *h = json_string_value(json_object_get(j, "sha256"));
    bool ok = false;
    size_t sl = sizeof SUFFIX - 1;
    if (!p || !h) {
        snprintf(why, why_len, "no \"prev\" or \"sha256\" field");
    } else if (strcmp(p, prev) != 0) {
        snprintf(why, why_len, "\"prev\" is not the SHA-256 of the line before (expected '%s', found '%.64s')",
                 prev, p);
    } else if (len < sl + 66 || memcmp(line + len - 66 - sl, SUFFIX, sl) != 0 || line[len - 2] != '"' ||
               line[len - 1] != '}') {
        snprintf(why, why_len, "the line does not end with its \"sha256\" field");
    } else {
        char c[65];
        owl_serve_sha256_hex(line, len - 66 - sl, c);
        if (memcmp(c, line + len - 66, 64) != 0)
            snprintf(why, why_len, "the line's content does not match its \"sha256\" (edited)");
        else
            ok = true;
    }
    json_decref(j);
    return ok;
}

owl_status owl_audit_verify(const char *path, long *n_lines, long *bad_line) {
    *n_lines = 0;
    *bad_line = 0;
    char *data = NULL;
    size_t size = 0;
    owl_status st = owl_read_file(path, &data, &size);
    if (st != OWL_OK) return st;
    char prev[65] = "";
    size_t off = 0;
    long ln = 0;
    while (off < size) {
        const char *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        ln++;
        char why[300];
        if (!nl) {
            *bad_line = ln;
            st = owl_errorf(OWL_ERR_FORMAT, "%s: line %ld: no newline at the end (torn write)", path, ln);
            break;
        }
        if (!check_line(data + off, len, prev, why, sizeof why)) {
            *bad_line = ln;
            st = owl_errorf(OWL_ERR_FORMAT, "%s: line %ld: %s", path, ln, why);
            break;
        }
        owl_serve_sha256_hex(data + off, len, prev);
        off += len + 1;
    }
    *n_lines = *bad_line ? *bad_line - 1 : ln;
    free(data);
    return st;
}
