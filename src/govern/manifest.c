/* Integrity manifests: owl.manifest.json beside a model lists each file's
 * size and SHA-256,
 *
 *   {"version": 1, "files": {"model.gguf": {"size": 1185376, "sha256": "..."}}}
 *
 * owl_manifest_write records a file (merged into an existing manifest in its
 * directory) or every regular file of a directory; owl_manifest_verify
 * checks them and stops at the first difference. Without an owl manifest a
 * sha256sum-style list (SHA256SUMS, sha256sums.txt) is used, else the blob
 * names of a hub-cache snapshot (owl pull's store, huggingface_hub's cache:
 * each file a link to blobs/<sha256>, or blobs/<git blob id> for files kept
 * outside LFS); the shards a Hugging Face model.safetensors.index.json names
 * must all be present. */
#include "govern/govern.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_NAME "owl.manifest.json"

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Directory and base name of a file path (dir malloc'd). */
static char *dir_of(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

static bool is_sha_hex(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (size_t i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", s[i])) return false;
    return true;
}

static bool safe_name(const char *n) {
    return *n && !strchr(n, '/') && strcmp(n, ".") != 0 && strcmp(n, "..") != 0;
}

static owl_status entry_json(const char *path, json_t *files, const char *name) {
    struct stat sb;
    if (stat(path, &sb) != 0) return owl_errorf(OWL_ERR_IO, "%s: cannot stat", path);
    char hex[65];
    owl_status st = owl_sha256_file(path, hex);
    if (st) return st;
    json_t *e = json_object();
    json_object_set_new(e, "size", json_integer((json_int_t)sb.st_size));
    json_object_set_new(e, "sha256", json_string(hex));
    json_object_set_new(files, name, e);
    return OWL_OK;
}

/* Reads and checks a manifest; *files borrows from the returned root. */
static owl_status load_manifest(const char *mpath, json_t **root_out, json_t **files_out) {
    json_error_t e;
    json_t *root = json_load_file(mpath, JSON_REJECT_DUPLICATES, &e);
    if (!root) return owl_errorf(OWL_ERR_FORMAT, "%s: line %d: %s", mpath, e.line, e.text);
    json_t *files = json_object_get(root, "files");
    json_t *ver = json_object_get(root, "version");
    if (!json_is_object(root) || !json_is_integer(ver) || json_integer_value(ver) != 1 || !json_is_object(files)) {
        json_decref(root);
        return owl_errorf(OWL_ERR_FORMAT, "%s: not an owl manifest (want {\"version\": 1, \"files\": {...}})", mpath);
    }
    const char *name;
    json_t *v;
    json_object_foreach(files, name, v) {
        json_t *size = json_object_get(v, "size");
        const char *sha = json_string_value(json_object_get(v, "sha256"));
        if (!safe_name(name) || !json_is_integer(size) || json_integer_value(size) < 0 || !is_sha_hex(sha)) {
            owl_status st = owl_errorf(OWL_ERR_FORMAT,
                                       "%s: entry \"%s\" is not {\"size\": N, \"sha256\": 64 lower-case hex digits} "
                                       "for a file in this directory",
                                       mpath, name);
            json_decref(root); /* after the message: name lives in root */
            return st;
        }
    }
    *root_out = root;
    *files_out = files;
    return OWL_OK;
}

owl_status owl_manifest_write(const char *path) {
    bool dir = owl_is_dir(path);
    const char *base = NULL;
    char *d = dir ? strdup(path) : dir_of(path, &base);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    char *mpath = join(d, MANIFEST_NAME);
    json_t *root = NULL, *files = NULL;
    owl_status st = OWL_OK;
    if (!mpath) {
        st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!dir && owl_file_exists(mpath)) { /* add to the manifest already there */
        if ((st = load_manifest(mpath, &root, &files))) goto done;
    } else {
        root = json_object();
        files = json_object();
        json_object_set_new(root, "version", json_integer(1));
        json_object_set_new(root, "files", files);
    }
    if (!dir) {
        st = entry_json(path, files, base);
    } else {
        DIR *dd = opendir(d);
        if (!dd) {
            st = owl_errorf(OWL_ERR_IO, "%s: cannot open directory", d);
            goto done;
        }
        struct dirent *e;
        while (st == OWL_OK && (e = readdir(dd))) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, MANIFEST_NAME) == 0) continue;
            char *p = join(d, e->d_name);
            if (!p) {
                st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
                break;
            }
            struct stat sb;
            if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) st = entry_json(p, files, e->d_name);
            free(p);
        }
        closedir(dd);
    }
    if (st == OWL_OK) {
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text) st = owl_errorf(OWL_ERR_NOMEM, "%s: cannot format the manifest", mpath);
        else {
            st = owl_write_file_atomic(mpath, text, strlen(text));
            free(text);
        }
    }
done:
    json_decref(root);
    free(mpath);
    free(d);
    return st;
}

/* ---- verifying ---- */

static owl_status check_file(const char *dir, const char *name, uint64_t size, const char *sha, const char *listed_in,
                             owl_verify_cb cb, void *ud) {
    char *p = join(dir, name);
    if (!p) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    struct stat sb;
    owl_status st = OWL_OK;
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = owl_errorf(OWL_ERR_IO, "%s: %s names %s, which is missing", dir, listed_in, name);
    } else if (size != UINT64_MAX && (uint64_t)sb.st_size != size) {
        st = owl_errorf(OWL_ERR_FORMAT, "%s: %s is %llu bytes, %s says %llu", dir, name,
                        (unsigned long long)sb.st_size, listed_in, (unsigned long long)size);
    } else {
        char hex[65];
        st = owl_sha256_file(p, hex);
        if (st == OWL_OK && strcmp(hex, sha) != 0)
            st = owl_errorf(OWL_ERR_FORMAT, "%s: %s has sha256 %s, %s says %s", dir, name, hex, listed_in, sha);
        if (st == OWL_OK && cb) cb(ud, name, (uint64_t)sb.st_size, hex);
    }
    free(p);
    return st;
}

/* ---- hub-cache snapshots: the blob a file links to is named by its digest ---- */

static bool is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i])) return false;
    return true;
}

/* Checks the file rel (relative to dir) if it links to a blob named by a
 * digest; *linked says whether it did. */
static owl_status check_blob_link(const char *dir, const char *rel, owl_verify_cb cb, void *ud, bool *linked) {
    *linked = false;
    char *p = join(dir, rel);
    if (!p) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    char target[4096];
    ssize_t n = readlink(p, target, sizeof target - 1);
    owl_status st = OWL_OK;
    if (n > 0) {
        target[n] = 0;
        const char *slash = strrchr(target, '/');
        const char *blob = slash ? slash + 1 : target;
        bool sha256 = is_hex(blob, 64), sha1 = is_hex(blob, 40);
        if ((sha256 || sha1) && slash && slash - target >= 5 && strncmp(slash - 5, "blobs", 5) == 0) {
            *linked = true;
            struct stat sb;
            char hex[65];
            if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
                st = owl_errorf(OWL_ERR_IO, "%s: %s links to blob %s, which is missing", dir, rel, blob);
            else if ((st = sha256 ? owl_sha256_file(p, hex) : owl_git_blob_sha1_file(p, hex)) == OWL_OK) {
                if (strcmp(hex, blob) != 0)
                    st = owl_errorf(OWL_ERR_FORMAT, "%s: %s has %s %s, its blob is named %s", dir, rel,
                                    sha256 ? "sha256" : "git blob id", hex, blob);
                else if (cb)
                    cb(ud, rel, (uint64_t)sb.st_size, hex);
            }
        }
    }
    free(p);
    return st;
}

/* Every file under dir/rel (rel "" for dir itself) that links to a blob. */
static owl_status verify_blob_links(const char *dir, const char *rel, int depth, owl_verify_cb cb, void *ud,
                                    size_t *checked) {
    char *d = rel[0] ? join(dir, rel) : strdup(dir);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    DIR *dd = opendir(d);
    free(d);
    if (!dd) return OWL_OK;
    owl_status st = OWL_OK;
    struct dirent *e;
    while (st == OWL_OK && (e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        char *r = rel[0] ? join(rel, e->d_name) : strdup(e->d_name);
        if (!r) {
            st = owl_errorf(OWL_ERR_NOMEM, "out of memory");
            break;
        }
        char *full = join(dir, r);
        struct stat sb;
        if (full && lstat(full, &sb) == 0) {
            if (S_ISDIR(sb.st_mode) && depth < 16) st = verify_blob_links(dir, r, depth + 1, cb, ud, checked);
            else if (S_ISLNK(sb.st_mode)) {
                bool linked;
                st = check_blob_link(dir, r, cb, ud, &linked);
                *checked += linked;
            }
        }
        free(full);
        free(r);
    }
    closedir(dd);
    return st;
}

/* sha256sum lines: "<64 hex>  name" or "<64 hex> *name". */
static owl_status verify_sums(const char *dir, const char *spath, const char *only, owl_verify_cb cb, void *ud,
                              size_t *checked) {
    char *text = NULL;
    size_t n = 0;
    owl_status st = owl_read_file(spath, &text, &n);
    if (st) return st;
    const char *sname = strrchr(spath, '/') + 1;
    size_t line_no = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line && st == OWL_OK;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (!len || line[0] == '#') continue;
        char hex[65];
        if (len < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: line %zu is not '<sha256>  <file>'", spath, line_no);
            break;
        }
        for (int i = 0; i < 64; i++) hex[i] = (char)(line[i] | 0x20);
        hex[64] = 0;
        const char *name = line + 66;
        if (strncmp(name, "./", 2) == 0) name += 2;
        if (!is_sha_hex(hex) || !safe_name(name)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: line %zu: bad digest or a name outside this directory", spath,
                            line_no);
            break;
        }
        if (only && strcmp(only, name) != 0) continue;
        st = check_file(dir, name, UINT64_MAX, hex, sname, cb, ud);
        (*checked)++;
    }
    free(text);
    return st;
}

/* The shards a model.safetensors.index.json names must exist. */
static owl_status check_index(const char *dir) {
    char *ipath = join(dir, "model.safetensors.index.json");
    if (!ipath) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    owl_status st = OWL_OK;
    if (owl_file_exists(ipath)) {
        json_error_t e;
        json_t *root = json_load_file(ipath, 0, &e);
        json_t *map = root ? json_object_get(root, "weight_map") : NULL;
        if (!json_is_object(map)) {
            st = owl_errorf(OWL_ERR_FORMAT, "%s: no weight_map object", ipath);
        } else {
            const char *tensor;
            json_t *v;
            json_object_foreach(map, tensor, v) {
                const char *shard = json_string_value(v);
                if (!shard || !safe_name(shard)) {
                    st = owl_errorf(OWL_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file in this directory", ipath,
                                    tensor);
                    break;
                }
                char *sp = join(dir, shard);
                bool ok = sp && owl_file_exists(sp);
                free(sp);
                if (!ok) {
                    st = owl_errorf(OWL_ERR_IO, "%s: model.safetensors.index.json names %s, which is missing", dir,
                                    shard);
                    break;
                }
            }
        }
        json_decref(root);
    }
    free(ipath);
    return st;
}

owl_status owl_manifest_verify(const char *path, owl_verify_cb cb, void *ud) {
    bool dir = owl_is_dir(path);
    const char *only = NULL;
    char *d = dir ? strdup(path) : dir_of(path, &only);
    if (!d) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (!dir && !owl_file_exists(path)) {
        free(d);
        return owl_errorf(OWL_ERR_IO, "%s: no such file", path);
    }
    owl_status st = check_index(d);
    char *mpath = join(d, MANIFEST_NAME);
    size_t checked = 0;
    if (st == OWL_OK && mpath && owl_file_exists(mpath)) {
        json_t *root, *files;
        if ((st = load_manifest(mpath, &root, &files)) == OWL_OK) {
            const char *name;
            json_t *v;
            json_object_foreach(files, name, v) {
                if (only && strcmp(only, name) != 0) continue;
                st = check_file(d, name, (uint64_t)json_integer_value(json_object_get(v, "size")),
                                json_string_value(json_object_get(v, "sha256")), MANIFEST_NAME, cb, ud);
                checked++;
                if (st) break;
            }
            json_decref(root);
        }
    } else if (st == OWL_OK) {
        static const char *const lists[] = {"SHA256SUMS", "sha256sums.txt", "SHA256SUMS.txt"};
        bool found = false;
        for (size_t i = 0; i < 3 && !found && st == OWL_OK; i++) {
            char *sp = join(d, lists[i]);
            if (sp && owl_file_exists(sp)) {
                found = true;
                st = verify_sums(d, sp, only, cb, ud, &checked);
            }
            free(sp);
        }
        if (!found && st == OWL_OK) {
            if (only) {
                bool linked = false;
                st = check_blob_link(d, only, cb, ud, &linked);
                found = linked;
                checked += linked;
            } else {
                st = verify_blob_links(d, "", 0, cb, ud, &checked);
                found = checked > 0;
            }
        }
        if (!found && st == OWL_OK)
            st = owl_errorf(OWL_ERR_IO, "%s: no %s or SHA256SUMS beside the model (owl verify --write makes one)",
                            path, MANIFEST_NAME);
    }
    if (st == OWL_OK && checked == 0)
        st = owl_errorf(OWL_ERR_FORMAT, "%s: the manifest lists %s", path, only ? "no entry for this file" : "no files");
    free(mpath);
    free(d);
    return st;
}
