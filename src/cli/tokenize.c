/* owl tokenize: print the tokens of a text. */
#include "cli/args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "tokenize";

static void tokenize_help(FILE *f) {
    fprintf(f, "usage: owl tokenize MODEL [TEXT | -f FILE] [options]\n"
               "\n"
               "Encodes TEXT with the model's tokenizer and prints one line per token:\n"
               "the id, a tab, and the stored piece in single quotes (bytes below 0x20,\n"
               "0x7f, \\ and ' are escaped as \\xNN, \\\\ and \\'). MODEL is a GGUF file, a\n"
               "llama2.c checkpoint (with tokenizer.bin beside it) or a tokenizer file:\n"
               "SentencePiece tokenizer.model, llama2.c tokenizer.bin, tokenizer.json.\n"
               "\n"
               "  -f, --file FILE       read the text from FILE\n"
               "      --tokenizer PATH  use this tokenizer file instead of MODEL's\n"
               "      --ids             print only the ids, space-separated, on one line\n"
               "      --no-bos          do not put BOS first\n"
               "      --special         let text like <s> become special tokens\n"
               "  -h, --help            this text\n");
}

static void print_piece(const char *p, size_t n) {
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else if (c == '\\' || c == '\'') printf("\\%c", c);
        else putchar(c);
    }
    putchar('\'');
}

int cli_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *text = NULL, *file = NULL, *tokenizer = NULL;
    bool ids_only = false, no_bos = false, special = false, options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (options_done || a[0] != '-' || a[1] == 0) {
            if (!model_path) model_path = a;
            else if (!text) text = a;
            else return cli_usage_error(CMD, "unexpected argument '%s' (quote the text as one argument)", a);
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (cli_is_help(a)) {
            tokenize_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            file = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            tokenizer = v;
        } else if (strcmp(a, "--ids") == 0) {
            ids_only = true;
        } else if (strcmp(a, "--no-bos") == 0) {
            no_bos = true;
        } else if (strcmp(a, "--special") == 0) {
            special = true;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (!model_path) return cli_usage_error(CMD, "no model given");
    if (text && file) return cli_usage_error(CMD, "give the text as an argument or with -f, not both");
    if (!text && !file) return cli_usage_error(CMD, "no text given");

    char *buf = NULL;
    size_t len = 0;
    if (file) {
        buf = cli_read_text(CMD, "text file", file, &len);
        if (!buf) return CLI_EXIT_RUNTIME;
        text = buf;
    } else {
        len = strlen(text);
    }

    int ret = CLI_EXIT_RUNTIME;
    int32_t *ids = NULL;
    size_t n = 0;
    /* A tokenizer file (given, or MODEL itself: GGUF, tokenizer.model,
     * tokenizer.bin, tokenizer.json) loads without the weights; a llama2.c
     * checkpoint needs the model loader to find its tokenizer.bin. */
    owl_model *model = NULL;
    owl_tokenizer *own = NULL;
    const owl_tokenizer *tok = NULL;
    const char *tok_path = tokenizer ? tokenizer : model_path;
    if (tokenizer ? !cli_readable_file(CMD, "tokenizer", tok_path) : !cli_model_path_ok(CMD, tok_path)) goto done;
    if (owl_tokenizer_load(tok_path, &own) == OWL_OK) {
        tok = own;
    } else if (tokenizer) {
        const char *err = owl_last_error();
        if (strstr(err, tokenizer)) cli_error(CMD, "cannot load tokenizer: %s", err);
        else cli_error(CMD, "cannot load tokenizer '%s': %s", tokenizer, err);
        goto done;
    } else {
        if (!(model = cli_load_model(CMD, model_path, NULL))) goto done;
        tok = owl_model_tokenizer(model);
    }
    if (owl_tokenize(tok, text, len, !no_bos, special, &ids, &n) != OWL_OK) {
        cli_error(CMD, "cannot tokenize the text: %s", owl_last_error());
        goto done;
    }
    if (ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t plen = 0;
            const char *p = owl_token_piece(tok, ids[i], &plen);
            printf("%d\t", ids[i]);
            print_piece(p ? p : "", p ? plen : 0);
            putchar('\n');
        }
    }
    ret = fflush(stdout) == 0 ? CLI_EXIT_OK : cli_error(CMD, "cannot write to stdout");
done:
    free(ids);
    owl_tokenizer_free(own);
    owl_model_free(model);
    free(buf);
    return ret;
}
