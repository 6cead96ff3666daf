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

int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, const cli_gen_flags *f) {
    const char *a = argv[*i];
    if (f->lora && strcmp(a, "--lora") == 0) {
        const char *v = cli_value(cmd, argc, argv, i);
        return v && cli_lora_parse(cmd, v, f->lora) ? 1 : -1;
    }
#define IS(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
    enum { INT, FLOAT, SEED } kind;
    int *iv = NULL;
    float *fv = NULL;
    long long imin = 0, imax = 0;
    double fmin = 0, fmax = 0;
    if (IS("-n", "--n-predict")) kind = INT, iv = f->n_predict, imin = -1, imax = 1 << 30;
    else if (IS("-c", "--ctx-size")) kind = INT, iv = f->n_ctx, imin = 0, imax = 1 << 24;
    else if (IS("-t", "--threads")) kind = INT, iv = f->threads, imin = 0, imax = 4096;
    else if (IS("--top-k", "--top-k")) kind = INT, iv = &f->sp->top_k, imin = 0, imax = 1 << 30;
    else if (IS("--repeat-last-n", "--repeat-last-n")) kind = INT, iv = f->repeat_last_n, imin = -1, imax = 1 << 24;
    else if (IS("--temp", "--temperature")) kind = FLOAT, fv = &f->sp->temperature, fmin = 0.0, fmax = 1e6;
    else if (IS("--top-p", "--top-p")) kind = FLOAT, fv = &f->sp->top_p, fmin = 0.0, fmax = 1.0;
    else if (IS("--min-p", "--min-p")) kind = FLOAT, fv = &f->sp->min_p, fmin = 0.0, fmax = 1.0;
    else if (IS("--repeat-penalty", "--repeat-penalty")) kind = FLOAT, fv = &f->sp->repeat_penalty, fmin = 1e-3, fmax = 1e3;
    else if (IS("-s", "--seed")) kind = SEED;
    else return 0;
#undef IS
    const char *v = cli_value(cmd, argc, argv, i);
    if (!v) return -1;
    bool ok;
    if (kind == INT) ok = cli_parse_int(cmd, a, v, imin, imax, iv);
    else if (kind == FLOAT) ok = cli_parse_float(cmd, a, v, fmin, fmax, fv);
    else {
        ok = cli_parse_u64(cmd, a, v, &f->sp->seed);
        if (ok) *f->seed_given = true;
    }
    return ok ? 1 : -1;
}
