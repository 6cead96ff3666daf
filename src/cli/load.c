/* Opening a model or a text file for a subcommand, with a clear message
 * when it fails; MODEL arguments that name a model in the store. */
#include "cli/args.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool cli_readable_file(const char *cmd, const char *what, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_error(cmd, "cannot open %s '%s': %s", what, path, strerror(errno));
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        cli_error(cmd, "%s '%s' is a directory, not a file", what, path);
        return false;
    }
    return true;
}

/* The paths store names resolved to: they live until the process exits. */
static char **resolved;
static size_t n_resolved;

static void free_resolved(void) {
    for (size_t i = 0; i < n_resolved; i++) free(resolved[i]);
    free(resolved);
    resolved = NULL;
    n_resolved = 0;
}

const char *cli_model_resolve(const char *cmd, const char *model, bool whole) {
    struct stat st;
    if (stat(model, &st) == 0 || !owl_store_is_name(model)) return model; /* a path on disk wins */
    char *path = NULL;
    if (owl_store_resolve(NULL, model, whole, &path) != OWL_OK) {
        cli_error(cmd, "%s", owl_last_error());
        return NULL;
    }
    char **g = realloc(resolved, (n_resolved + 1) * sizeof *g);
    if (!g) {
        free(path);
        cli_error(cmd, "out of memory");
        return NULL;
    }
    if (!resolved) atexit(free_resolved);
    resolved = g;
    resolved[n_resolved++] = path;
    return path;
}

bool cli_model_path_ok(const char *cmd, const char *path) {
    if (!(path = cli_model_resolve(cmd, path, false))) return false;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return true; /* a Hugging Face directory */
    return cli_readable_file(cmd, "model", path);
}

owl_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer_path) {
    if (!(path = cli_model_resolve(cmd, path, false)) || !cli_model_path_ok(cmd, path)) return NULL;
    if (tokenizer_path && !cli_readable_file(cmd, "tokenizer", tokenizer_path)) return NULL;
    owl_model_params mp = {.tokenizer_path = tokenizer_path};
    owl_model *m = NULL;
    owl_status st = owl_model_load(path, &mp, &m);
    if (st != OWL_OK) {
        const char *err = owl_last_error();
        if (strstr(err, path)) cli_error(cmd, "cannot load model: %s", err); /* the text names the file */
        else cli_error(cmd, "cannot load model '%s': %s", path, err);
        return NULL;
    }
    if (!owl_model_tokenizer(m)) {
        owl_model_free(m);
        cli_error(cmd, "model '%s' has no tokenizer (give one with --tokenizer)", path);
        return NULL;
    }
    return m;
}

char *cli_read_text(const char *cmd, const char *what, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error(cmd, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *g = realloc(buf, cap *= 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_error(cmd, "cannot read %s '%s'", what, path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}
