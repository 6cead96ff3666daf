/* Logging to stderr with a level. */
#include "base/base.h"

#include <stdio.h>

static owl_log_level log_level = OWL_LOG_WARN;

void owl_log_set_level(owl_log_level level) { log_level = level; }

void owl_log(owl_log_level level, const char *fmt, ...) {
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "owl: %s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
