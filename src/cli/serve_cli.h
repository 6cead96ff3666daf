/* The server's subcommands: owl serve, owl keys, owl audit. */
#ifndef OWL_CLI_SERVE_H
#define OWL_CLI_SERVE_H

int cli_serve(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_audit(int argc, char **argv);

#endif
