/* owl: the command-line entry point; one file per subcommand. */
#include "owl.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: owl COMMAND [ARGS]\n");
        return argc < 2 ? 1 : 0;
    }
    fprintf(stderr, "owl: unknown command '%s' (see owl --help)\n", argv[1]);
    return 2;
}
