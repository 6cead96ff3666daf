/* The governance subcommands (license, inspect, verify) and what they share. */
#ifndef OWL_CLI_GOVERN_H
#define OWL_CLI_GOVERN_H

#include "govern/govern.h"

#include <jansson.h>
#include <stdio.h>

int cli_license(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_verify(int argc, char **argv);
/* the local store (pull.c) */
int cli_pull(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_rm(int argc, char **argv);

/* A licence report as JSON (new reference) and as the plain text owl
 * license prints. */
json_t *cli_license_json(const owl_license_report *r);
void cli_license_print(FILE *f, const owl_license_report *r);

/* Loads the policy at policy_path and checks model against it before the
 * model is loaded: 0 when allowed, else CLI_EXIT_RUNTIME after printing
 * "owl CMD: POLICY: rule NAME: why" (or the policy file's error). */
int cli_policy_enforce(const char *cmd, const char *policy_path, const char *model);

#endif
