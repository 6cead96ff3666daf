/* The governance subcommands (license, inspect, verify) and what they share. */
#ifndef OWL_CLI_GOVERN_H
#define OWL_CLI_GOVERN_H

#include "govern/govern.h"

#include <jansson.h>
#include <stdio.h>

int cli_license(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_verify(int argc, char **argv);

/* A licence report as JSON (new reference) and as the plain text owl
 * license prints. */
json_t *cli_license_json(const owl_license_report *r);
void cli_license_print(FILE *f, const owl_license_report *r);

#endif
