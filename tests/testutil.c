#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

int owl_test_failures;
int owl_test_checks;

int test_finish(const char *name) {
    if (owl_test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    fprintf(stderr, "%s: %d checks, %d failed\n", name, owl_test_checks, owl_test_failures);
    return owl_test_failures ? 1 : 0;
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

const char *testdata_path(const char *rel) {
    static char bufs[8][4096];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, 4096, "%s/%s", env_or("OWL_TESTDATA", "../shared/testdata"), rel);
    return b;
}

const char *source_path(const char *rel) {
    static char bufs[8][4096];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, 4096, "%s/%s", env_or("OWL_SOURCE_DIR", "."), rel);
    return b;
}

static void mkdir_p(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

const char *test_tmpdir(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", env_or("OWL_TMP", "/tmp/owl-tests"), name);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", buf);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not clear %s\n", buf);
    mkdir_p(buf);
    return buf;
}

char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int run_cmd(const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

char *run_capture(int *status, const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) {
        if (status) *status = -1;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[n] = 0;
    int st = pclose(p);
    if (status) *status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    return buf;
}

const char *owl_bin(void) { return env_or("OWL_BIN", "./owl"); }
const char *test_python(void) { return env_or("OWL_PYTHON", "/usr/bin/python3"); }

uint64_t test_rand_u64(uint64_t *s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float test_rand_f32(uint64_t *s) { return (float)((double)(test_rand_u64(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

int32_t *test_read_ids(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    *n = 0;
    if (!f) return NULL;
    int32_t *v = malloc(sizeof(int32_t) * 4096);
    int x;
    while (v && *n < 4096 && fscanf(f, "%d", &x) == 1) v[(*n)++] = x;
    fclose(f);
    return v;
}

double *test_read_f64(const char *path, size_t count) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    double *v = malloc(sizeof(double) * (count ? count : 1));
    size_t got = v ? fread(v, sizeof(double), count, f) : 0;
    fclose(f);
    if (got != count) {
        free(v);
        return NULL;
    }
    return v;
}

double test_rel_err(const float *got, const double *ref, int n) {
    if (!got) return INFINITY;
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-300);
}

char *path_ext(const char *prefix, const char *ext) {
    size_t n = strlen(prefix) + strlen(ext) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", prefix, ext);
    return p;
}

char *test_make_model(const char *dir, const char *name, const char *args) {
    char *prefix = path_join(dir, name);
    int rc = run_cmd("%s %s --out '%s' %s", test_python(), source_path("tests/reference/make_model.py"), prefix, args);
    CHECKF(rc == 0, "make_model.py %s failed (%d)", args, rc);
    if (rc != 0) {
        free(prefix);
        return NULL;
    }
    return prefix;
}
