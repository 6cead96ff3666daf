/* Command-line helpers shared by the subcommands: strict number parsing,
 * flag values, and the two kinds of error (usage: exit 2, runtime: exit 1).
 * Every message is one line on stderr that starts with "owl". */
#ifndef OWL_CLI_ARGS_H
#define OWL_CLI_ARGS_H

#include "owl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_RUNTIME = 1, CLI_EXIT_USAGE = 2 };

/* The subcommands: argv[0] is the command name. */
int cli_run(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_lora(int argc, char **argv);

/* "owl CMD: message (see owl CMD --help)"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "owl CMD: message"; returns CLI_EXIT_RUNTIME. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True if argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

/* The value of flag argv[*i] (argv[*i + 1]); advances *i. NULL (after a
 * usage message) if there is none. A value may start with '-' only for
 * flags that take numbers or text, so "-p -n" gives "-n" as the prompt:
 * like every other tool, the next word is the value. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Strict parsers: the whole text must be the number, within [min, max];
 * otherwise a usage message naming the flag and the text, and false. */
bool cli_parse_int(const char *cmd, const char *flag, const char *text, long long min, long long max, int *out);
bool cli_parse_u64(const char *cmd, const char *flag, const char *text, uint64_t *out);
bool cli_parse_float(const char *cmd, const char *flag, const char *text, double min, double max, float *out);

/* --lora PATH[:SCALE], repeatable (lora.c). */
#define CLI_LORA_MAX 8
typedef struct cli_lora_list {
    int n;
    const char *path[CLI_LORA_MAX];
    float scale[CLI_LORA_MAX];
    char store[CLI_LORA_MAX][4096]; /* PATH of PATH:SCALE */
} cli_lora_list;
/* Parses one PATH[:SCALE] into l (a usage message and false if bad). */
bool cli_lora_parse(const char *cmd, const char *text, cli_lora_list *l);
/* Loads l's adapters for model and applies them to ctx; *out gets them (n
 * = l->n; free with cli_lora_free). false after the error message. */
bool cli_lora_attach(const char *cmd, const owl_model *model, owl_ctx *ctx, const cli_lora_list *l, owl_lora ***out);
void cli_lora_free(owl_lora **loras, int n);

/* Flags shared by the commands that generate (run, chat): -n, -c, -t,
 * the sampling flags and --lora (when lora is not NULL). Each pointer
 * receives its flag's value. */
typedef struct cli_gen_flags {
    int *n_predict, *n_ctx, *threads, *repeat_last_n;
    owl_sampler_params *sp;
    bool *seed_given;
    cli_lora_list *lora;
} cli_gen_flags;
/* If argv[*i] is one of those flags, parses its value (advancing *i) and
 * returns 1; returns 0 if it is not one of them, -1 after a usage message. */
int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, const cli_gen_flags *f);

/* True if path names an existing file (not a directory); else a runtime
 * message naming `what` and the path, and false. */
bool cli_readable_file(const char *cmd, const char *what, const char *path);

/* MODEL as given on the command line: a path that exists wins; else a store
 * name (ORG/NAME[@REVISION][/FILE], see owl_store_resolve) becomes the path
 * of that model in the store (whole: the snapshot directory). Returns the
 * argument itself or a path that lives until exit; NULL after printing the
 * error (which says how to pull a name the store lacks). */
const char *cli_model_resolve(const char *cmd, const char *model, bool whole);
/* A model path or store name: a readable file or a directory (Hugging
 * Face); false after printing the error. */
bool cli_model_path_ok(const char *cmd, const char *path);
/* Loads a model (a path or store name), printing "owl CMD: ..." on failure
 * (NULL). */
owl_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer_path);

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL (after a
 * message naming `what` and the path) on failure. */
char *cli_read_text(const char *cmd, const char *what, const char *path, size_t *len);

#endif
