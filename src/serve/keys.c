/* API keys in SQLite: only the SHA-256 of a key is stored, with its name,
 * model scope and per-minute limits. Rate limits are counted in memory. */
#include "serve/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct owl_keydb {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
};

static owl_status db_err(owl_keydb *k, const char *what) {
    return owl_errorf(OWL_ERR_IO, "%s: %s: %s", k->path, what, sqlite3_errmsg(k->db));
}

owl_status owl_keydb_open(const char *path, bool create, owl_keydb **out) {
    *out = NULL;
    owl_keydb *k = calloc(1, sizeof *k);
    if (!k) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    k->path = strdup(path);
    pthread_mutex_init(&k->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (!k->path || sqlite3_open_v2(path, &k->db, flags, NULL) != SQLITE_OK) {
        owl_status st = owl_errorf(OWL_ERR_IO, "%s: cannot open the key database: %s", path,
                                   k->db ? sqlite3_errmsg(k->db) : "out of memory");
        owl_keydb_close(k);
        return st;
    }
    sqlite3_busy_timeout(k->db, 5000);
    const char *schema =
        "CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
        " sha256 TEXT NOT NULL UNIQUE, models TEXT NOT NULL DEFAULT '', rpm INTEGER NOT NULL DEFAULT 0,"
        " tpm INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)";
    if (sqlite3_exec(k->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        owl_status st = db_err(k, "cannot create the keys table");
        owl_keydb_close(k);
        return st;
    }
    *out = k;
    return OWL_OK;
}

void owl_keydb_close(owl_keydb *k) {
    if (!k) return;
    if (k->db) sqlite3_close(k->db);
    pthread_mutex_destroy(&k->mu);
    free(k->path);
    free(k);
}

owl_status owl_keydb_create(owl_keydb *k, const char *name, const char *models, int rpm, int tpm, char **secret,
                            int64_t *id) {
    *secret = NULL;
    unsigned char raw[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return owl_errorf(OWL_ERR_IO, "/dev/urandom: cannot open: %s", strerror(errno));
    ssize_t r = read(fd, raw, sizeof raw);
    close(fd);
    if (r != (ssize_t)sizeof raw) return owl_errorf(OWL_ERR_IO, "/dev/urandom: short read");
    char *s = malloc(4 + 64 + 1);
    if (!s) return owl_errorf(OWL_ERR_NOMEM, "out of memory");
    memcpy(s, "owl-", 4);
    for (int i = 0; i < 32; i++) snprintf(s + 4 + 2 * i, 3, "%02x", raw[i]);
    char h[65];
    owl_serve_sha256_hex(s, strlen(s), h);
    sqlite3_stmt *q = NULL;
    owl_status st = OWL_OK;
    if (sqlite3_prepare_v2(k->db, "INSERT INTO keys (name, sha256, models, rpm, tpm, created) VALUES (?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK) {
        st = db_err(k, "cannot prepare insert");
    } else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, h, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, models ? models : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 4, rpm);
        sqlite3_bind_int(q, 5, tpm);
        sqlite3_bind_int64(q, 6, (sqlite3_int64)time(NULL));
        if (sqlite3_step(q) != SQLITE_DONE) st = db_err(k, "cannot insert the key");
    }
    sqlite3_finalize(q);
    if (st != OWL_OK) {
        free(s);
        return st;
    }
    *id = (int64_t)sqlite3_last_insert_rowid(k->db);
    *secret = s;
    return OWL_OK;
}

static void row_info(sqlite3_stmt *q, owl_key_info *ki) {
    memset(ki, 0, sizeof *ki);
    ki->id = sqlite3_column_int64(q, 0);
    const char *n = (const char *)sqlite3_column_text(q, 1);
    const char *m = (const char *)sqlite3_column_text(q, 2);
    snprintf(ki->name, sizeof ki->name, "%s", n ? n : "");
    snprintf(ki->models, sizeof ki->models, "%s", m ? m : "");
    ki->rpm = sqlite3_column_int(q, 3);
    ki->tpm = sqlite3_column_int(q, 4);
    ki->created = sqlite3_column_int64(q, 5);
    ki->revoked = sqlite3_column_int(q, 6) != 0;
}

owl_status owl_keydb_list(owl_keydb *k, owl_key_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(k->db, "SELECT id, name, models, rpm, tpm, created, revoked FROM keys ORDER BY id", -1,
                           &q, NULL) != SQLITE_OK)
        return db_err(k, "cannot list keys");
    owl_key_info *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            owl_key_info *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                sqlite3_finalize(q);
                return owl_errorf(OWL_ERR_NOMEM, "out of memory");
            }
            v = nv;
        }
        row_info(q, &v[cnt++]);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return db_err(k, "cannot list keys");
    }
    *out = v;
    *n = cnt;
    return OWL_OK;
}

owl_status owl_keydb_revoke(owl_keydb *k, int64_t id) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(k->db, "UPDATE keys SET revoked = 1 WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return db_err(k, "cannot prepare revoke");
    sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
    owl_status st = OWL_OK;
    if (sqlite3_step(q) != SQLITE_DONE) st = db_err(k, "cannot revoke");
    else if (sqlite3_changes(k->db) == 0) st = owl_errorf(OWL_ERR_ARG, "%s: no key with id %lld", k->path, (long long)id);
    sqlite3_finalize(q);
    return st;
}

bool owl_keydb_check(owl_keydb *k, const char *secret, owl_key_info *info) {
    char h[65];
    owl_serve_sha256_hex(secret, strlen(secret), h);
    sqlite3_stmt *q = NULL;
    bool ok = false;
    pthread_mutex_lock(&k->mu);
    if (sqlite3_prepare_v2(k->db,
                           "SELECT id, name, models, rpm, tpm, created, revoked FROM keys WHERE sha256 = ?", -1, &q,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, h, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(q) == SQLITE_ROW) {
            row_info(q, info);
            ok = !info->revoked;
        }
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&k->mu);
    return ok;
}

bool owl_key_allows_model(const owl_key_info *k, const char *model) {
    if (!k->models[0]) return true;
    size_t ml = strlen(model);
    const char *p = k->models;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if ((l == ml && memcmp(p, model, l) == 0) || (l == 1 && *p == '*')) return true;
        /* "BASE:*": every adapter of BASE */
        if (l >= 2 && p[l - 1] == '*' && p[l - 2] == ':' && ml > l - 1 && memcmp(p, model, l - 1) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

/* ---- rate limits: fixed one-minute windows per key ---- */

typedef struct rl_entry {
    int64_t id;
    double window_start;
    int requests, tokens;
} rl_entry;

struct owl_ratelimit {
    pthread_mutex_t mu;
    rl_entry *e;
    size_t n, cap;
};

owl_ratelimit *owl_ratelimit_new(void) {
    owl_ratelimit *r = calloc(1, sizeof *r);
    if (r) pthread_mutex_init(&r->mu, NULL);
    return r;
}

void owl_ratelimit_free(owl_ratelimit *r) {
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free(r->e);
    free(r);
}

static rl_entry *rl_find(owl_ratelimit *r, int64_t id, double now) {
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].id == id) {
            if (now - r->e[i].window_start >= 60000.0) {
                r->e[i].window_start = now;
                r->e[i].requests = r->e[i].tokens = 0;
            }
            return &r->e[i];
        }
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        rl_entry *ne = realloc(r->e, nc * sizeof *ne);
        if (!ne) return NULL;
        r->e = ne;
        r->cap = nc;
    }
    rl_entry *x = &r->e[r->n++];
    x->id = id;
    x->window_start = now;
    x->requests = x->tokens = 0;
    return x;
}

bool owl_ratelimit_admit(owl_ratelimit *r, const owl_key_info *k, int *retry_after) {
    *retry_after = 0;
    if (k->rpm <= 0 && k->tpm <= 0) return true;
    double now = owl_time_ms();
    pthread_mutex_lock(&r->mu);
    rl_entry *x = rl_find(r, k->id, now);
    bool ok = true;
    if (x && ((k->rpm > 0 && x->requests >= k->rpm) || (k->tpm > 0 && x->tokens >= k->tpm))) {
        ok = false;
        double left = 60000.0 - (now - x->window_start);
        *retry_after = left <= 0 ? 1 : (int)(left / 1000.0) + 1;
    } else if (x) {
        x->requests++;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void owl_ratelimit_add_tokens(owl_ratelimit *r, int64_t key_id, int tokens) {
    pthread_mutex_lock(&r->mu);
    rl_entry *x = rl_find(r, key_id, owl_time_ms());
    if (x) x->tokens += tokens;
    pthread_mutex_unlock(&r->mu);
}
