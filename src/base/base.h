/* base/: status and error text, logging, arenas, mapped files, timers, cpu
 * features, checked arithmetic. Every other layer uses it; it uses none. */
#ifndef OWL_BASE_H
#define OWL_BASE_H

#include "owl.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---- */

/* Sets this thread's error text (printf-style) and returns s, so that
 * failing paths read: return owl_errorf(OWL_ERR_FORMAT, "%s: ...", path); */
owl_status owl_errorf(owl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current error text: "prefix: old text". Returns s. */
owl_status owl_error_prefix(owl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- logging (stderr) ---- */
typedef enum { OWL_LOG_ERROR, OWL_LOG_WARN, OWL_LOG_INFO, OWL_LOG_DEBUG } owl_log_level;
void owl_log_set_level(owl_log_level level);
void owl_log(owl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checked arithmetic: false on overflow ---- */
static inline bool owl_add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool owl_mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* ---- allocation ---- */
/* malloc/calloc that set the error text on failure. */
void *owl_malloc(size_t n);
void *owl_calloc(size_t n, size_t size);
/* 64-byte aligned, zeroed; free with free(). */
void *owl_alloc_aligned(size_t n);

/* Arena: many small allocations freed at once. */
typedef struct owl_arena_block owl_arena_block;
typedef struct owl_arena {
    owl_arena_block *head;
} owl_arena;
void *owl_arena_alloc(owl_arena *a, size_t n); /* 16-byte aligned, zeroed; NULL + error on failure */
char *owl_arena_strndup(owl_arena *a, const char *s, size_t n);
void owl_arena_free(owl_arena *a);

/* ---- files ---- */
typedef struct owl_mmap {
    const uint8_t *data;
    size_t size;
    char *path; /* owned */
} owl_mmap;
/* Maps a whole file read-only. An empty file maps to data = NULL, size 0. */
owl_status owl_mmap_open(owl_mmap *m, const char *path);
void owl_mmap_close(owl_mmap *m);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
owl_status owl_read_file(const char *path, char **data, size_t *size);
/* Writes data to path atomically: a temporary file beside it, fsync, rename. */
owl_status owl_write_file_atomic(const char *path, const void *data, size_t size);
bool owl_is_dir(const char *path);
bool owl_file_exists(const char *path);

/* ---- time ---- */
double owl_time_ms(void); /* monotonic */

/* ---- cpu features (detected once) ---- */
typedef struct owl_cpu {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avx512fp16;
    bool amx_tile, amx_int8, amx_bf16;
    bool amx_permitted; /* the kernel granted AMX tile state to this process */
} owl_cpu;
const owl_cpu *owl_cpu_get(void);
/* Forces the scalar paths (tests compare SIMD against scalar). */
void owl_cpu_force_scalar(bool on);
bool owl_cpu_scalar_forced(void);

/* ---- threads ---- */
int owl_threads(void); /* the number owl_set_threads chose, >= 1 */

/* ---- memory bandwidth (bandwidth.c) ---- */
/* Median read bandwidth in GB/s (1e9 bytes/s) of `threads` threads (<= 0:
 * owl_threads()) streaming a 1 GiB buffer, repeated for about `seconds`
 * after one warm-up pass. 0 if the buffer cannot be allocated. */
double owl_measure_read_bandwidth(int threads, double seconds);
/* The same over a buffer of `bytes` (rounded to 4 KiB, at least 1 MiB). */
double owl_measure_read_bandwidth_ex(int threads, double seconds, size_t bytes);

/* ---- UTF-8 ---- */
/* Length of the UTF-8 sequence that starts with byte c (1..4), 0 if c is a
 * continuation byte or invalid as a lead byte. */
int owl_utf8_len(uint8_t c);

#endif
