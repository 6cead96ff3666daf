/* Flag values, strict numbers and error messages for the subcommands. */
#include "cli/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "owl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'owl%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
    return CLI_EXIT_USAGE;
}

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "owl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_RUNTIME;
}

bool cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

/* Leading or trailing white space is not part of a number. */
static bool has_space(const char *t) { return !*t || isspace((unsigned char)t[0]) || isspace((unsigned char)t[strlen(t) - 1]); }

bool cli_parse_int(const char *cmd, const char *flag, const char *text, long long min, long long max, int *out) {
    char *end;
    errno = 0;
    long long v = has_space(text) ? 0 : strtoll(text, &end, 10);
    if (has_space(text) || *end || errno == ERANGE) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number", flag, text);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "%s: %s is out of range [%lld, %lld]", flag, text, min, max);
        return false;
    }
    *out = (int)v;
    return true;
}

bool cli_parse_u64(const char *cmd, const char *flag, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    if (has_space(text) || text[0] == '-' || text[0] == '+') {
        cli_usage_error(cmd, "%s: '%s' is not a non-negative whole number", flag, text);
        return false;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno == ERANGE) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number in [0, 2^64)", flag, text);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *flag, const char *text, double min, double max, float *out) {
    char *end;
    errno = 0;
    double v = has_space(text) ? 0 : strtod(text, &end);
    if (has_space(text) || *end || errno == ERANGE || !isfinite(v)) {
        cli_usage_error(cmd, "%s: '%s' is not a finite number", flag, text);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "%s: %s is out of range [%g, %g]", flag, text, min, max);
        return false;
    }
    *out = (float)v;
    return true;
}
