/* Store names as MODEL arguments: ORG/NAME[@REVISION][/FILE] -> a path in
 * the store (a snapshot, the model in it, or a file in it). */
#include "store/store.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parsed {
    char org[128], name[128], rev[128];
    const char *file; /* points into the argument; NULL when absent */
} parsed;

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
}

/* One part: 1..cap-1 name characters, not starting with '.', no "..". */
static bool take_part(const char *p, size_t n, char *out, size_t cap) {
    if (n == 0 || n >= cap || p[0] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(p[i]) || (i && p[i] == '.' && p[i - 1] == '.')) return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

/* A relative path inside a snapshot: no empty, "." or ".." parts, no
 * control characters. */
static bool valid_file(const char *f) {
    if (!*f || strlen(f) > 1000) return false;
    for (const char *p = f;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
        if (!e) break;
        p = e + 1;
    }
    for (const char *p = f; *p; p++)
        if ((unsigned char)*p < 0x20) return false;
    return true;
}

static bool parse_name(const char *s, parsed *out) {
    memset(out, 0, sizeof *out);
    const char *slash = strchr(s, '/');
    if (!slash || !take_part(s, (size_t)(slash - s), out->org, sizeof out->org)) return false;
    const char *rest = slash + 1, *end = strchr(rest, '/');
    size_t n = end ? (size_t)(end - rest) : strlen(rest);
    const char *at = memchr(rest, '@', n);
    if (!take_part(rest, at ? (size_t)(at - rest) : n, out->name, sizeof out->name)) return false;
    if (at && !take_part(at + 1, n - (size_t)(at + 1 - rest), out->rev, sizeof out->rev)) return false;
    if (end) {
        out->file = end + 1;
        if (!valid_file(out->file)) return false;
    }
    return true;
}

bool owl_store_is_name(const char *s) {
    parsed p;
    return s && parse_name(s, &p);
}

static char *fmt_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* The names in dir (one level) accepted by keep, comma-separated into out;
 * returns how many there were, first receives the first one (sorted). */
static int list_names(const char *dir, bool (*keep)(const char *dir, const char *name), char *out, size_t cap,
                      char *first, size_t first_cap) {
    out[0] = 0;
    if (first) first[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !keep(dir, e->d_name)) continue;
        char **g = realloc(names, (size_t)(n + 1) * sizeof *g);
        if (!g) break;
        names = g;
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (i < 10 && k < cap) k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? ", " : "", names[i]);
        else if (i == 10 && k < cap) k += (size_t)snprintf(out + k, cap - k, ", ...");
        if (i == 0 && first) snprintf(first, first_cap, "%s", names[i]);
        free(names[i]);
    }
    free(names);
    return n;
}

static bool any_name(const char *dir, const char *name) {
    (void)dir, (void)name;
    return true;
}

static bool is_gguf_file(const char *dir, const char *name) {
    size_t n = strlen(name);
    if (n < 6 || strcmp(name + n - 5, ".gguf") != 0) return false;
    char *p = fmt_path(dir, name);
    bool ok = p && owl_file_exists(p) && !owl_is_dir(p);
    free(p);
    return ok;
}

/* True if some ref under refs names commit. */
static bool ref_names(const char *refs, const char *commit) {
    DIR *d = opendir(refs);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = fmt_path(refs, e->d_name), *text = NULL;
        size_t len = 0;
        if (p && !owl_is_dir(p) && owl_read_file(p, &text, &len) == OWL_OK)
            found = strcspn(text, "\r\n") == strlen(commit) && strncmp(text, commit, strlen(commit)) == 0;
        free(text);
        free(p);
    }
    closedir(d);
    return found;
}

owl_status owl_store_resolve(const char *root, const char *name, bool whole, char **path) {
    *path = NULL;
    parsed p;
    if (!parse_name(name, &p))
        return owl_errorf(OWL_ERR_ARG, "'%s' is not a store name (ORG/NAME[@REVISION][/FILE])", name);
    if (!root) root = owl_store_root();
    const char *rev = p.rev[0] ? p.rev : "main";
    char mdir[4096], refs[4400], snaps[4400], have[1200], pull[600];
    snprintf(mdir, sizeof mdir, "%s/models--%s--%s", root, p.org, p.name);
    snprintf(pull, sizeof pull, "owl pull %s/%s%s%s", p.org, p.name, p.rev[0] ? " --revision " : "", p.rev);
    if (!owl_is_dir(mdir))
        return owl_errorf(OWL_ERR_ARG, "'%s' is not a file or directory, and the store (%s) has no %s/%s: '%s' fetches it",
                          name, root, p.org, p.name, pull);
    snprintf(refs, sizeof refs, "%s/refs", mdir);
    snprintf(snaps, sizeof snaps, "%s/snapshots", mdir);

    /* the revision: a ref naming a commit, or a commit with a snapshot */
    char commit[128] = "";
    char *rp = fmt_path(refs, rev);
    if (!rp) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    if (owl_file_exists(rp) && !owl_is_dir(rp) && owl_read_file(rp, &text, &len) == OWL_OK) {
        size_t n = strcspn(text, "\r\n");
        bool ok = n > 0 && n < sizeof commit;
        for (size_t i = 0; ok && i < n; i++) ok = name_char(text[i]) && text[i] != '.';
        if (ok) snprintf(commit, sizeof commit, "%.*s", (int)n, text);
        free(text);
        if (!ok) {
            owl_status st = owl_errorf(OWL_ERR_FORMAT, "%s: not a commit id (the store entry is damaged: '%s' again)",
                                       rp, pull);
            free(rp);
            return st;
        }
    }
    free(rp);
    if (!commit[0]) {
        /* a commit id: only one that a ref names, since a snapshot nothing
         * names yet may be a pull that has not finished */
        char *sp = fmt_path(snaps, rev);
        bool is_commit = sp && owl_is_dir(sp) && ref_names(refs, rev);
        free(sp);
        if (!is_commit) {
            list_names(refs, any_name, have, sizeof have, NULL, 0);
            return owl_errorf(OWL_ERR_ARG, "the store (%s) has no revision '%s' of %s/%s (it has: %s): '%s%s' fetches it",
                              root, rev, p.org, p.name, have[0] ? have : "none", pull,
                              p.rev[0] ? "" : " --revision main");
        }
        snprintf(commit, sizeof commit, "%s", rev);
    }
    char *snap = fmt_path(snaps, commit);
    if (!snap) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    if (!owl_is_dir(snap)) {
        owl_status st = owl_errorf(OWL_ERR_FORMAT, "%s/%s@%s: commit %s has no snapshot %s (damaged: '%s' again)",
                                   p.org, p.name, rev, commit, snap, pull);
        free(snap);
        return st;
    }
    if (p.file) {
        char *fp = fmt_path(snap, p.file);
        if (!fp) {
            free(snap);
            return owl_errorf(OWL_ERR_NOMEM, "out of memory");
        }
        if (!owl_file_exists(fp)) {
            list_names(snap, is_gguf_file, have, sizeof have, NULL, 0);
            owl_status st = owl_errorf(OWL_ERR_ARG, "%s: the snapshot %s has no file '%s' (GGUF files: %s)", name,
                                       snap, p.file, have[0] ? have : "none");
            free(fp);
            free(snap);
            return st;
        }
        free(snap);
        *path = fp;
        return OWL_OK;
    }
    if (whole) {
        *path = snap;
        return OWL_OK;
    }
    char *cfg = fmt_path(snap, "config.json");
    bool hf = cfg && owl_file_exists(cfg);
    free(cfg);
    char first[512];
    int n = hf ? 0 : list_names(snap, is_gguf_file, have, sizeof have, first, sizeof first);
    if (n > 1) {
        owl_status st = owl_errorf(OWL_ERR_ARG, "%s holds %d GGUF files (%s): name one, e.g. %s/%s%s%s/%s", name, n, have,
                                   p.org, p.name, p.rev[0] ? "@" : "", p.rev, first);
        free(snap);
        return st;
    }
    if (n == 1) {
        *path = fmt_path(snap, first);
        free(snap);
        return *path ? OWL_OK : owl_errorf(OWL_ERR_NOMEM, "out of memory");
    }
    *path = snap;
    return OWL_OK;
}
