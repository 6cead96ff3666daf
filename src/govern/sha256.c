/* SHA-256 of files and buffers through OpenSSL's EVP interface; files are
 * streamed in 1 MiB reads, never mapped or read whole. */
#include "govern/govern.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void to_hex(const unsigned char *d, unsigned n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = 0;
}

owl_status owl_sha256_mem(const void *data, size_t size, char hex[65]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(data, size, d, &n, EVP_sha256(), NULL) || n != 32)
        return owl_errorf(OWL_ERR_IO, "sha256: OpenSSL digest failed");
    to_hex(d, n, hex);
    return OWL_OK;
}

/* The digest md of a file, after `prefix` (may be NULL) when given. */
static owl_status digest_file(const char *path, const EVP_MD *md, const char *name, unsigned want, const char *prefix,
                              size_t prefix_len, char *hex) {
    FILE *f = fopen(path, "rb");
    if (!f) return owl_errorf(OWL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = owl_malloc(CHUNK);
    owl_status st = OWL_OK;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, md, NULL) || (prefix && !EVP_DigestUpdate(ctx, prefix, prefix_len))) {
        st = owl_errorf(OWL_ERR_NOMEM, "%s: cannot start a %s digest", path, name);
        goto done;
    }
    for (;;) {
        size_t n = fread(buf, 1, CHUNK, f);
        if (n > 0 && !EVP_DigestUpdate(ctx, buf, n)) {
            st = owl_errorf(OWL_ERR_IO, "%s: %s update failed", path, name);
            goto done;
        }
        if (n < CHUNK) {
            if (ferror(f)) st = owl_errorf(OWL_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    if (st == OWL_OK) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!EVP_DigestFinal_ex(ctx, d, &n) || n != want) st = owl_errorf(OWL_ERR_IO, "%s: %s final failed", path, name);
        else to_hex(d, n, hex);
    }
done:
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}

owl_status owl_sha256_file(const char *path, char hex[65]) {
    return digest_file(path, EVP_sha256(), "SHA-256", 32, NULL, 0, hex);
}

owl_status owl_git_blob_sha1_file(const char *path, char hex[41]) {
    struct stat sb;
    if (stat(path, &sb) != 0) return owl_errorf(OWL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    char head[64];
    int n = snprintf(head, sizeof head, "blob %llu", (unsigned long long)sb.st_size);
    return digest_file(path, EVP_sha1(), "SHA-1", 20, head, (size_t)n + 1, hex); /* the NUL is part of it */
}
