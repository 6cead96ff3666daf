/* owl audit verify: checks the hash chain of owl serve's audit log. */
#include "cli/args.h"
#include "cli/serve_cli.h"
#include "serve/serve.h"

#include <stdio.h>
#include <string.h>

static const char *CMD = "audit";

int cli_audit(int argc, char **argv) {
    if (argc >= 2 && cli_is_help(argv[1])) {
        printf("usage: owl audit verify FILE\n"
               "\n"
               "Checks an audit log of 'owl serve --audit FILE': every line must be a JSON\n"
               "object whose \"sha256\" is the SHA-256 of its text before that field and\n"
               "whose \"prev\" is the SHA-256 of the whole line before it. Prints the\n"
               "number of good lines, or names the first bad line (exit 1).\n");
        return CLI_EXIT_OK;
    }
    if (argc < 2) return cli_usage_error(CMD, "no subcommand (verify)");
    if (strcmp(argv[1], "verify") != 0) return cli_usage_error(CMD, "unknown subcommand '%s'", argv[1]);
    if (argc != 3) return cli_usage_error(CMD, "verify takes one FILE");
    long n = 0, bad = 0;
    if (owl_audit_verify(argv[2], &n, &bad) != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    printf("%s: %ld line%s, chain intact\n", argv[2], n, n == 1 ? "" : "s");
    return CLI_EXIT_OK;
}
