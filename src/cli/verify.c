/* owl verify: check a model's files against its integrity manifest. */
#include "cli/args.h"
#include "cli/govern_cli.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "verify";

static void verify_help(FILE *f) {
    fprintf(f, "usage: owl verify MODEL [--write] [-q]\n"
               "\n"
               "Checks every file of MODEL (a file, or a directory) against owl.manifest.json\n"
               "beside it (file -> size and SHA-256), or else against a sha256sum list\n"
               "(SHA256SUMS), or else - a snapshot in the store (MODEL may be a store name,\n"
               "ORG/NAME[@REVISION]) - against the names of the blobs its files link to;\n"
               "a Hugging Face model.safetensors.index.json's shards must all be present.\n"
               "Stops at the first file that differs and names it.\n"
               "\n"
               "      --write    record MODEL's files in owl.manifest.json instead\n"
               "  -q, --quiet    print nothing when every file matches\n"
               "  -h, --help     this text\n"
               "\n"
               "Exit status: 0 all files match (or the manifest was written), 1 a file\n"
               "differs or is missing, or the manifest is missing or broken, 2 usage error.\n");
}

static void print_ok(void *ud, const char *name, uint64_t size, const char *sha) {
    if (*(bool *)ud) return;
    printf("ok  %s  %llu bytes  %s\n", sha, (unsigned long long)size, name);
}

int cli_verify(int argc, char **argv) {
    const char *model = NULL;
    bool write = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            verify_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--write") == 0) write = true;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) quiet = true;
        else if (a[0] == '-' && a[1]) return cli_usage_error(CMD, "unknown option '%s'", a);
        else if (!model) model = a;
        else return cli_usage_error(CMD, "unexpected argument '%s'", a);
    }
    if (!model) return cli_usage_error(CMD, "no MODEL given");
    const char *given = model;
    if (!(model = cli_model_resolve(CMD, model, true)) || !cli_model_path_ok(CMD, model)) return CLI_EXIT_RUNTIME;
    if (write && model != given)
        return cli_error(CMD, "%s is in the store, whose files are checked by their blob names: --write is for models "
                              "outside it", given);
    if (write) {
        if (owl_manifest_write(model)) return cli_error(CMD, "%s", owl_last_error());
        if (!quiet) printf("wrote owl.manifest.json for %s\n", model);
        return CLI_EXIT_OK;
    }
    if (owl_manifest_verify(model, print_ok, &quiet)) return cli_error(CMD, "%s", owl_last_error());
    if (!quiet) printf("%s: every file matches\n", model);
    return CLI_EXIT_OK;
}
