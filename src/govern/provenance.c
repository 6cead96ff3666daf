/* Where a written model came from: owl convert, owl quantize and owl lora
 * merge record their output in owl.manifest.json (size and SHA-256, so owl
 * verify checks it) together with its source,
 *
 *   "source": {"path": "...", "sha256": "<owl_model_digest of the source>",
 *              "tool": "owl quantize", "license": "apache-2.0" | null,
 *              "license_note": "why unknown"}
 *
 * in the output's entry (a file) or at the top (a directory). The licence
 * detected in the source is carried over: owl_license_detect reads it back
 * as one more source of the output's licence. */
#include "govern/govern.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MANIFEST_NAME "owl.manifest.json"

/* ---- the digest of a model ---- */

typedef struct file_list {
    char **rel;
    size_t n;
} file_list;

static owl_status collect(const char *dir, const char *rel, int depth, file_list *fl) {
    size_t dn = strlen(dir) + strlen(rel) + 2;
    char *d = malloc(dn);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    snprintf(d, dn, "%s%s%s", dir, rel[0] ? "/" : "", rel);
    DIR *dd = opendir(d);
    if (!dd) {
        owl_status st = owl_errorf(OWL_ERR_IO, "%s: cannot open directory", d);
        free(d);
        return st;
    }
    owl_status st = OWL_OK;
    struct dirent *e;
    while (st == OWL_OK && (e = readdir(dd))) {
        if (e->d_name[0] == '.' || (!rel[0] && strcmp(e->d_name, MANIFEST_NAME) == 0)) continue;
        size_t n = strlen(rel) + strlen(e->d_name) + 2;
        char *r = malloc(n), *full = malloc(dn + n);
        if (!r || !full) {
            free(r), free(full);
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(r, n, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, dn + n, "%s/%s", dir, r);
        struct stat sb;
        if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            st = depth < 16 ? collect(dir, r, depth + 1, fl)
                            : owl_errorf(OWL_ERR_FORMAT, "%s: folders nested too deep", full);
            free(r);
        } else if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode)) {
            char **g = realloc(fl->rel, (fl->n + 1) * sizeof *g);
            if (!g) {
                free(r);
                st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            } else {
                fl->rel = g;
                fl->rel[fl->n++] = r;
            }
        } else {
            free(r);
        }
        free(full);
    }
    closedir(dd);
    free(d);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

owl_status owl_model_digest(const char *path, char hex[65]) {
    if (!owl_is_dir(path)) return owl_sha256_file(path, hex);
    file_list fl = {0};
    owl_status st = collect(path, "", 0, &fl);
    char *list = NULL;
    size_t len = 0, cap = 0;
    if (st == OWL_OK) qsort(fl.rel, fl.n, sizeof *fl.rel, cmp_str);
    for (size_t i = 0; i < fl.n && st == OWL_OK; i++) {
        size_t n = strlen(path) + strlen(fl.rel[i]) + 2;
        char *full = malloc(n), h[65];
        if (!full) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(full, n, "%s/%s", path, fl.rel[i]);
        st = owl_sha256_file(full, h);
        free(full);
        size_t need = len + 64 + 2 + strlen(fl.rel[i]) + 2;
        if (st == OWL_OK && need > cap) {
            char *g = realloc(list, cap = need * 2);
            if (!g) st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            else list = g;
        }
        if (st == OWL_OK) len += (size_t)snprintf(list + len, cap - len, "%s  %s\n", h, fl.rel[i]);
    }
    if (st == OWL_OK) st = owl_sha256_mem(list ? list : "", len, hex);
    for (size_t i = 0; i < fl.n; i++) free(fl.rel[i]);
    free(fl.rel);
    free(list);
    return st;
}

/* ---- writing ---- */

/* owl.manifest.json of a directory, or the one beside a file (*base: the
 * file's entry name; NULL for a directory). */
static char *manifest_of(const char *path, const char **base) {
    bool dir = owl_is_dir(path);
    const char *slash = strrchr(path, '/');
    *base = dir ? NULL : slash ? slash + 1 : path;
    size_t dl = dir ? strlen(path) : slash ? (size_t)(slash - path) : 0;
    size_t n = dl + sizeof MANIFEST_NAME + 2;
    char *m = malloc(n);
    if (!m) return NULL;
    if (!dir && !slash) snprintf(m, n, "%s", MANIFEST_NAME);
    else snprintf(m, n, "%.*s/%s", (int)dl, path, MANIFEST_NAME); /* dl 0: "/owl.manifest.json" */
    return m;
}

static void set_str(json_t *o, const char *key, const char *v, bool *bad) {
    json_t *s = json_string(v);
    if (!s) *bad = true; /* not UTF-8 */
    else json_object_set_new(o, key, s);
}

owl_status owl_manifest_write_derived(const char *out, const char *source, const char *tool) {
    char digest[65];
    owl_status st = owl_model_digest(source, digest);
    if (st) return owl_error_prefix(st, "source model %s", source);
    owl_license_report lic;
    if ((st = owl_license_detect(source, &lic))) return owl_error_prefix(st, "source model %s", source);
    json_t *src = json_object();
    bool bad = !src;
    if (src) {
        char *abs = realpath(source, NULL); /* recorded absolute where it can be */
        set_str(src, "path", abs ? abs : source, &bad);
        free(abs);
        set_str(src, "sha256", digest, &bad);
        set_str(src, "tool", tool, &bad);
        if (lic.license) set_str(src, "license", lic.license->id, &bad);
        else json_object_set_new(src, "license", json_null());
        json_t *note = lic.license ? NULL : json_string(lic.note); /* a note that is not UTF-8 is left out */
        if (note) json_object_set_new(src, "license_note", note);
    }
    owl_license_report_free(&lic);
    if (bad) {
        json_decref(src);
        return owl_errorf(OWL_ERR_ARG, "%s: the source path is not UTF-8 text (or out of memory)", source);
    }

    if ((st = owl_manifest_write(out))) {
        json_decref(src);
        return st;
    }
    const char *base;
    char *mpath = manifest_of(out, &base);
    json_error_t e;
    json_t *root = mpath ? json_load_file(mpath, JSON_REJECT_DUPLICATES, &e) : NULL;
    json_t *entry = base ? json_object_get(json_object_get(root, "files"), base) : root;
    if (!mpath || !json_is_object(entry)) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: cannot read back the manifest just written", mpath ? mpath : out);
        json_decref(src);
    } else {
        json_object_set_new(entry, "source", src);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        st = text ? owl_write_file_atomic(mpath, text, strlen(text))
                  : owl_errorf(OWL_ERR_NOMEM, "%s: cannot format the manifest", mpath);
        free(text);
    }
    json_decref(root);
    free(mpath);
    return st;
}

/* ---- reading back ---- */

owl_status owl_manifest_source(const char *path, owl_model_source *out) {
    memset(out, 0, sizeof *out);
    const char *base;
    char *mpath = manifest_of(path, &base);
    if (!mpath) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (!owl_file_exists(mpath)) {
        free(mpath);
        return OWL_OK;
    }
    json_error_t e;
    json_t *root = json_load_file(mpath, JSON_REJECT_DUPLICATES, &e);
    owl_status st = OWL_OK;
    if (!root) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: line %d: %s", mpath, e.line, e.text);
        goto done;
    }
    json_t *entry = base ? json_object_get(json_object_get(root, "files"), base) : root;
    json_t *src = json_object_get(entry, "source");
    if (!src) goto done; /* not a derived model (or not listed) */
    if (base) { /* an entry for a file that has changed since is not this file's */
        struct stat sb;
        json_t *size = json_object_get(entry, "size");
        if (stat(path, &sb) != 0 || !json_is_integer(size) || json_integer_value(size) != (json_int_t)sb.st_size)
            goto done;
    }
    const char *p = json_string_value(json_object_get(src, "path"));
    const char *sha = json_string_value(json_object_get(src, "sha256"));
    json_t *lic = json_object_get(src, "license");
    const char *note = json_string_value(json_object_get(src, "license_note"));
    if (!json_is_object(src) || !p || !sha || strlen(sha) != 64 || !(json_is_null(lic) || json_is_string(lic)) ||
        (json_object_get(src, "license_note") && !note)) {
        st = owl_errorf(OWL_ERR_FORMAT,
                        "%s: \"source\" is not {\"path\": text, \"sha256\": 64 hex digits, \"license\": id or null, ...}",
                        mpath);
        goto done;
    }
    out->present = true;
    snprintf(out->path, sizeof out->path, "%s", p);
    snprintf(out->sha256, sizeof out->sha256, "%s", sha);
    snprintf(out->license, sizeof out->license, "%s", json_is_string(lic) ? json_string_value(lic) : "");
    snprintf(out->note, sizeof out->note, "%s", note ? note : "");
done:
    json_decref(root);
    free(mpath);
    return st;
}
