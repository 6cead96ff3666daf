/* The local model store (hub-cache layout) and owl pull over libcurl. */
#include "store/store.h"
#include "govern/govern.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *owl_store_root(void) {
    static char buf[4096];
    const char *e = getenv("OWL_STORE");
    if (e && *e) return e;
    e = getenv("HF_HUB_CACHE");
    if (e && *e) return e;
    const char *home = getenv("HOME");
    snprintf(buf, sizeof buf, "%s/.cache/huggingface/hub", home && *home ? home : ".");
    return buf;
}

static owl_status mkdirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return owl_errorf(OWL_ERR_ARG, "%s: path too long", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return owl_errorf(OWL_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
    return OWL_OK;
}

/* "ORG/NAME" with safe characters only. */
static bool valid_repo(const char *repo) {
    const char *slash = strchr(repo, '/');
    if (!slash || slash == repo || !slash[1] || strchr(slash + 1, '/')) return false;
    for (const char *p = repo; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.' || *p == '/'))
            return false;
    return strstr(repo, "..") == NULL && repo[0] != '.' && slash[1] != '.';
}

/* A file name the hub lists: relative, no "..", no empty parts. */
static bool valid_rel(const char *f) {
    if (!*f || f[0] == '/' || strlen(f) > 1000) return false;
    for (const char *p = f; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
        p += n + (e ? 1 : 0);
        if (e && !*p) return false;
    }
    for (const char *p = f; *p; p++)
        if ((unsigned char)*p < 0x20) return false;
    return true;
}

static void model_dir(char *out, size_t cap, const char *root, const char *repo) {
    const char *slash = strchr(repo, '/');
    snprintf(out, cap, "%s/models--%.*s--%s", root, (int)(slash - repo), repo, slash + 1);
}

/* ---- HTTP ---- */

typedef struct membuf {
    char *p;
    size_t n;
    bool too_big;
} membuf;

static size_t to_mem(char *ptr, size_t size, size_t nmemb, void *ud) {
    membuf *b = ud;
    size_t k = size * nmemb;
    if (b->n + k > (64u << 20)) { /* API answers are small */
        b->too_big = true;
        return 0;
    }
    char *q = realloc(b->p, b->n + k + 1);
    if (!q) return 0;
    b->p = q;
    memcpy(b->p + b->n, ptr, k);
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

typedef struct dl {
    FILE *f;
    const owl_pull_opts *o;
    const char *name;
    uint64_t base, total;
    long status;  /* of the last status line (redirects have several) */
    bool ranged;  /* a Range was asked for */
    bool started; /* body bytes arrived */
    int werr;     /* errno of a failed write (disk full, file too large) */
} dl;

static size_t on_header(char *b, size_t size, size_t nmemb, void *ud) {
    dl *d = ud;
    size_t k = size * nmemb;
    if (k > 9 && memcmp(b, "HTTP/", 5) == 0) {
        const char *sp = memchr(b, ' ', k);
        if (sp && (size_t)(sp - b) + 4 <= k) d->status = strtol(sp + 1, NULL, 10);
    }
    return k;
}

static size_t to_file(char *ptr, size_t size, size_t nmemb, void *ud) {
    dl *d = ud;
    size_t k = size * nmemb;
    if (!d->started) {
        d->started = true;
        if (d->ranged && d->status == 200) { /* the server sent the whole file: start over */
            if (fflush(d->f) != 0 || ftruncate(fileno(d->f), 0) != 0 || fseek(d->f, 0, SEEK_SET) != 0) {
                d->werr = errno;
                return 0;
            }
            d->base = 0;
        }
    }
    errno = 0;
    if (fwrite(ptr, 1, k, d->f) != k || fflush(d->f) != 0) { /* flushed: a full disk shows here, not later */
        d->werr = errno ? errno : EIO;
        return 0;
    }
    d->base += k;
    if (d->o->progress) d->o->progress(d->o->ud, d->name, d->base, d->total);
    return k;
}

/* What went wrong with a transfer, in words (why: curl's error buffer). */
static const char *transfer_error(CURLcode rc, const char *why, char *out, size_t cap) {
    const char *text = why[0] ? why : curl_easy_strerror(rc);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_WEIRD_SERVER_REPLY) snprintf(out, cap, "the answer is not HTTP (%s)", text);
    else if (rc == CURLE_PARTIAL_FILE) snprintf(out, cap, "the answer was cut short (%s)", text);
    else snprintf(out, cap, "%s", text);
    return out;
}

static CURL *new_handle(const char *url, const char *token, struct curl_slist **hdrs) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "owl/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails (and resumes next time) */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *hdrs = NULL;
    if (token && *token) {
        char h[1100];
        snprintf(h, sizeof h, "Authorization: Bearer %.1000s", token);
        *hdrs = curl_slist_append(NULL, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

static owl_status http_get_json(const char *url, const char *token, json_t **out) {
    struct curl_slist *h;
    CURL *c = new_handle(url, token, &h);
    if (!c) return owl_errorf(OWL_ERR_NOMEM, "%s: cannot start libcurl", url);
    membuf b = {0};
    char ebuf[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 64];
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_mem);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    owl_status st = OWL_OK;
    if (rc != CURLE_OK)
        st = owl_errorf(OWL_ERR_IO, "%s: %s", url, b.too_big ? "answer too large" : transfer_error(rc, ebuf, why, sizeof why));
    else if (status != 200)
        st = owl_errorf(OWL_ERR_IO, "%s: HTTP %ld%s", url, status,
                        status == 401 || status == 403 ? " (gated or private: set HF_TOKEN)"
                        : status == 404               ? " (no such repository or revision)"
                        : status >= 500               ? " (the hub failed: try again later)"
                                                      : "");
    else {
        json_error_t e;
        *out = json_loadb(b.p ? b.p : "", b.n, 0, &e);
        if (!*out) st = owl_errorf(OWL_ERR_FORMAT, "%s: not JSON: %s", url, e.text);
    }
    free(b.p);
    return st;
}

/* Downloads url into path, continuing what is there (HTTP Range). */
static owl_status http_download(const char *url, const owl_pull_opts *o, const char *token, const char *path,
                                const char *name, uint64_t total) {
    struct stat sb;
    uint64_t have = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (total != UINT64_MAX && have == total) return OWL_OK; /* complete: the caller checks the digest */
    if (total != UINT64_MAX && have > total) have = 0;
    FILE *f = fopen(path, have ? "ab" : "wb");
    if (!f) return owl_errorf(OWL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct curl_slist *h;
    CURL *c = new_handle(url, token, &h);
    if (!c) {
        fclose(f);
        return owl_errorf(OWL_ERR_NOMEM, "cannot start libcurl");
    }
    dl d = {f, o, name, have, total, 0, have > 0, false, 0};
    char ebuf[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 64];
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    char range[64];
    if (have) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_HTTP_RETURNED_ERROR && status == 416 && have) rc = CURLE_OK; /* nothing left: digest decides */
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    int cerr = fclose(f) != 0 ? errno : 0;
    if (d.werr || (cerr && rc == CURLE_OK))
        return owl_errorf(OWL_ERR_IO, "%s: cannot write %s: %s (partial download kept: make room and pull again to resume)",
                          name, path, strerror(d.werr ? d.werr : cerr));
    if (rc != CURLE_OK) {
        if (status >= 400)
            return owl_errorf(OWL_ERR_IO, "%s: HTTP %ld%s", url, status, status >= 500 ? " (the hub failed: try again later)" : "");
        return owl_errorf(OWL_ERR_IO, "%s: %s (partial download kept: pull again to resume)", url,
                          transfer_error(rc, ebuf, why, sizeof why));
    }
    return OWL_OK;
}

/* ---- pull ---- */

static owl_status write_text(const char *path, const char *text) { return owl_write_file_atomic(path, text, strlen(text)); }

static owl_status link_snapshot(const char *mdir, const char *commit, const char *file, const char *sha) {
    char path[4096], dirp[4096], target[4096];
    snprintf(path, sizeof path, "%s/snapshots/%s/%s", mdir, commit, file);
    snprintf(dirp, sizeof dirp, "%s", path);
    char *slash = strrchr(dirp, '/');
    *slash = 0;
    owl_status st = mkdirs(dirp);
    if (st) return st;
    /* ../../blobs/<sha> plus one ../ per subfolder of file */
    size_t depth = 0;
    for (const char *p = file; *p; p++) depth += *p == '/';
    size_t k = 0;
    for (size_t i = 0; i < depth + 2; i++) k += (size_t)snprintf(target + k, sizeof target - k, "../");
    snprintf(target + k, sizeof target - k, "blobs/%s", sha);
    unlink(path);
    if (symlink(target, path) != 0) return owl_errorf(OWL_ERR_IO, "%s: cannot link: %s", path, strerror(errno));
    return OWL_OK;
}

static owl_status pull_file(const char *endpoint, const char *repo, const char *commit, const char *mdir,
                            const char *file, const char *want_sha, uint64_t size, const owl_pull_opts *o,
                            const char *token) {
    char blob[4096], part[4096], url[4096];
    owl_status st;
    if (want_sha) {
        snprintf(blob, sizeof blob, "%s/blobs/%s", mdir, want_sha);
        if (owl_file_exists(blob)) return link_snapshot(mdir, commit, file, want_sha); /* have it already */
    }
    /* a stable name for the partial file, so that a later pull resumes it */
    char key[65];
    char ident[4200];
    snprintf(ident, sizeof ident, "%s\n%s\n%s", repo, commit, file);
    if ((st = owl_sha256_mem(ident, strlen(ident), key))) return st;
    snprintf(part, sizeof part, "%s/blobs/%s.incomplete", mdir, want_sha ? want_sha : key);
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", endpoint, repo, commit, file);
    if ((st = http_download(url, o, token, part, file, size))) return st;
    char got[65];
    if ((st = owl_sha256_file(part, got))) return st;
    struct stat sb;
    uint64_t have = stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if ((want_sha && strcmp(got, want_sha) != 0) || (size != UINT64_MAX && have != size)) {
        unlink(part);
        if (size == UINT64_MAX || have == size) /* the size is the plainer news when it differs */
            return owl_errorf(OWL_ERR_FORMAT, "%s: %s: downloaded sha256 %s, the hub lists %s (file removed)", repo,
                              file, got, want_sha);
        return owl_errorf(OWL_ERR_FORMAT, "%s: %s: downloaded %llu bytes, the hub lists %llu (file removed)", repo, file,
                          (unsigned long long)have, (unsigned long long)size);
    }
    snprintf(blob, sizeof blob, "%s/blobs/%s", mdir, got);
    if (rename(part, blob) != 0) return owl_errorf(OWL_ERR_IO, "%s: cannot rename into place: %s", blob, strerror(errno));
    return link_snapshot(mdir, commit, file, got);
}

owl_status owl_store_pull(const char *repo, const owl_pull_opts *opts, char **snapshot) {
    owl_pull_opts o = opts ? *opts : (owl_pull_opts){0};
    if (snapshot) *snapshot = NULL;
    if (!valid_repo(repo)) return owl_errorf(OWL_ERR_ARG, "'%s' is not a repository name like ORG/NAME", repo);
    const char *endpoint = o.endpoint ? o.endpoint : getenv("HF_ENDPOINT");
    if (!endpoint || !*endpoint) endpoint = "https://huggingface.co";
    const char *rev = o.revision ? o.revision : "main";
    const char *token = o.token ? o.token : getenv("HF_TOKEN");
    const char *root = o.root ? o.root : owl_store_root();
    for (const char *p = rev; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.') || strstr(rev, ".."))
            return owl_errorf(OWL_ERR_ARG, "revision '%s' has characters owl does not accept", rev);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return owl_errorf(OWL_ERR_IO, "libcurl failed to start");

    char url[4096], mdir[4096];
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", endpoint, repo, rev);
    json_t *info = NULL;
    owl_status st = http_get_json(url, token, &info);
    if (st) return st;
    const char *commit = json_string_value(json_object_get(info, "sha"));
    json_t *sib = json_object_get(info, "siblings");
    bool commit_ok = commit && strlen(commit) > 0 && strlen(commit) < 100;
    for (const char *p = commit_ok ? commit : ""; *p; p++)
        commit_ok &= (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z');
    if (!commit_ok || !json_is_array(sib)) {
        json_decref(info);
        return owl_errorf(OWL_ERR_FORMAT, "%s: answer has no commit \"sha\" (hex) and \"siblings\" list", url);
    }
    model_dir(mdir, sizeof mdir, root, repo);
    char blobs[4200];
    snprintf(blobs, sizeof blobs, "%s/blobs", mdir);
    if ((st = mkdirs(blobs))) goto done;
    for (size_t i = 0; i < json_array_size(sib) && st == OWL_OK; i++) {
        json_t *s = json_array_get(sib, i);
        const char *file = json_string_value(json_object_get(s, "rfilename"));
        if (!file || !valid_rel(file)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: siblings[%zu] has no safe relative \"rfilename\"", url, i);
            break;
        }
        json_t *lfs = json_object_get(s, "lfs");
        const char *sha = json_string_value(json_object_get(lfs, "sha256"));
        json_t *size_j = json_object_get(lfs, "size");
        if (!size_j) size_j = json_object_get(s, "size");
        if (lfs && !(sha && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: %s: lfs.sha256 is not 64 lower-case hex digits", url, file);
            break;
        }
        uint64_t size = json_is_integer(size_j) && json_integer_value(size_j) >= 0
                            ? (uint64_t)json_integer_value(size_j) : UINT64_MAX;
        st = pull_file(endpoint, repo, commit, mdir, file, lfs ? sha : NULL, size, &o, token);
    }
    if (st == OWL_OK) {
        char refs[4200], ref[4400];
        snprintf(refs, sizeof refs, "%s/refs", mdir);
        snprintf(ref, sizeof ref, "%s/%s", refs, rev);
        if ((st = mkdirs(refs)) == OWL_OK) st = write_text(ref, commit);
        if (st == OWL_OK && snapshot) {
            size_t n = strlen(mdir) + strlen(commit) + 16;
            *snapshot = malloc(n);
            if (*snapshot) snprintf(*snapshot, n, "%s/snapshots/%s", mdir, commit);
            else st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        }
    }
done:
    json_decref(info);
    return st;
}

/* ---- list and rm ---- */

static uint64_t snapshot_bytes(const char *dir, int *files) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) total += snapshot_bytes(p, files);
        else if (S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size, (*files)++;
    }
    closedir(d);
    return total;
}

owl_status owl_store_list(const char *root, void (*cb)(void *ud, const owl_store_entry *e), void *ud) {
    if (!root) root = owl_store_root();
    DIR *d = opendir(root);
    if (!d) return errno == ENOENT ? OWL_OK : owl_errorf(OWL_ERR_IO, "%s: cannot open: %s", root, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "models--", 8) != 0) continue;
        const char *rest = e->d_name + 8, *sep = strstr(rest, "--");
        if (!sep) continue;
        char refs[4096];
        snprintf(refs, sizeof refs, "%s/%s/refs", root, e->d_name);
        DIR *r = opendir(refs);
        if (!r) continue;
        struct dirent *re;
        while ((re = readdir(r))) {
            if (re->d_name[0] == '.') continue;
            owl_store_entry en = {0};
            snprintf(en.repo, sizeof en.repo, "%.*s/%s", (int)(sep - rest), rest, sep + 2);
            snprintf(en.revision, sizeof en.revision, "%s", re->d_name);
            char rp[8192], *text = NULL;
            size_t n = 0;
            snprintf(rp, sizeof rp, "%s/%s", refs, re->d_name);
            if (owl_read_file(rp, &text, &n) != OWL_OK) continue;
            snprintf(en.commit, sizeof en.commit, "%.*s", (int)strcspn(text, "\r\n"), text);
            free(text);
            snprintf(en.snapshot, sizeof en.snapshot, "%s/%s/snapshots/%s", root, e->d_name, en.commit);
            en.bytes = snapshot_bytes(en.snapshot, &en.files);
            cb(ud, &en);
        }
        closedir(r);
    }
    closedir(d);
    return OWL_OK;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

owl_status owl_store_rm(const char *root, const char *repo) {
    if (!valid_repo(repo)) return owl_errorf(OWL_ERR_ARG, "'%s' is not a repository name like ORG/NAME", repo);
    if (!root) root = owl_store_root();
    char mdir[4096];
    model_dir(mdir, sizeof mdir, root, repo);
    if (!owl_is_dir(mdir)) return owl_errorf(OWL_ERR_ARG, "%s is not in the store (%s)", repo, root);
    if (nftw(mdir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return owl_errorf(OWL_ERR_IO, "%s: cannot remove: %s", mdir, strerror(errno));
    return OWL_OK;
}
