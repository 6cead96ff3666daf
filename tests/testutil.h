/* Small helpers shared by the C tests: checks that count failures, paths to
 * test data and temporary files, running the owl binary. */
#ifndef OWL_TESTUTIL_H
#define OWL_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int owl_test_failures;
extern int owl_test_checks;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        owl_test_checks++;                                                            \
        if (!(cond)) {                                                                \
            owl_test_failures++;                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define CHECKF(cond, ...)                                                    \
    do {                                                                     \
        owl_test_checks++;                                                   \
        if (!(cond)) {                                                       \
            owl_test_failures++;                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* Prints a summary and returns the exit code for main(). A test that checked
 * nothing fails: it could not have failed otherwise. */
int test_finish(const char *name);

/* $OWL_TESTDATA/rel (static buffer per call slot; copy if kept). */
const char *testdata_path(const char *rel);
/* A fresh directory for this test's temporary files ($OWL_TMP/<name>). */
const char *test_tmpdir(const char *name);
/* Joins dir and name into a malloc'd path. */
char *path_join(const char *dir, const char *name);
/* prefix followed by ext, malloc'd ("/tmp/m" + ".gguf"). */
char *path_ext(const char *prefix, const char *ext);
/* Runs tests/reference/make_model.py --out dir/name ARGS (a failure is a
 * failed check); returns the malloc'd prefix of what it wrote, or NULL. */
char *test_make_model(const char *dir, const char *name, const char *args);
/* Runs a shell command, returns its exit status (-1 if it did not exit). */
int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command and captures stdout into a malloc'd string. */
char *run_capture(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The owl binary ($OWL_BIN). */
const char *owl_bin(void);
/* Debian's python3 ($OWL_PYTHON, default /usr/bin/python3). */
const char *test_python(void);
/* $OWL_SOURCE_DIR/rel */
const char *source_path(const char *rel);
/* Reference data the Python generators write: whitespace-separated token
 * ids (malloc'd, at most 4096, count in *n; NULL if unreadable) and exactly
 * `count` little-endian float64 values (malloc'd; NULL if short). */
int32_t *test_read_ids(const char *path, int *n);
double *test_read_f64(const char *path, size_t count);
/* ||got - ref|| / ||ref||; infinity when got is NULL. */
double test_rel_err(const float *got, const double *ref, int n);
/* Deterministic random numbers for tests. */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_f32(uint64_t *state); /* uniform in [-1, 1) */

#endif
