/* Per-thread error text and status names. */
#include "base/base.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char error_text[1024];

owl_status owl_errorf(owl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_text, sizeof error_text, fmt, ap);
    va_end(ap);
    return s;
}

owl_status owl_error_prefix(owl_status s, const char *fmt, ...) {
    char prefix[512];
    char old[sizeof error_text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_text, sizeof old);
    snprintf(error_text, sizeof error_text, "%s: %s", prefix, old);
    return s;
}

const char *owl_last_error(void) { return error_text; }

const char *owl_status_name(owl_status s) {
    switch (s) {
    case OWL_OK: return "ok";
    case OWL_ERR_IO: return "i/o error";
    case OWL_ERR_FORMAT: return "bad format";
    case OWL_ERR_UNSUPPORTED: return "unsupported";
    case OWL_ERR_NOMEM: return "out of memory";
    case OWL_ERR_ARG: return "bad argument";
    case OWL_ERR_RANGE: return "out of range";
    }
    return "unknown status";
}
