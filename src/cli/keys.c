/* owl keys: the server's API keys (create, list, revoke). */
#include "cli/args.h"
#include "cli/serve_cli.h"
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *CMD = "keys";

static void keys_help(FILE *f) {
    fprintf(f,
            "usage: owl keys create --name NAME [--models M1,M2,...] [--rpm R] [--tpm T] [--db FILE]\n"
            "       owl keys list [--db FILE]\n"
            "       owl keys revoke ID [--db FILE]\n"
            "\n"
            "API keys of 'owl serve'. create prints the new key once (owl- and 64 hex\n"
            "digits from /dev/urandom); the database keeps only its SHA-256, the name,\n"
            "the models it may use (default: all; a model is the file name without\n"
            "its extension, as GET /v1/models shows it) and its limits: requests (rpm)\n"
            "and tokens (tpm) per minute, 0 = none. Adapters served with --lora are\n"
            "models MODEL:NAME: scope a key to one with --models MODEL:NAME, to all of\n"
            "a model's with MODEL:*; a plain MODEL is the base model alone.\n"
            "\n"
            "      --db FILE          the key database (default owl-keys.db)\n"
            "  -h, --help             this text\n");
}

int cli_keys(int argc, char **argv) {
    const char *db_path = "owl-keys.db", *name = NULL, *models = "", *sub = NULL, *id_text = NULL;
    int rpm = 0, tpm = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            keys_help(stdout);
            return CLI_EXIT_OK;
        }
        if (a[0] != '-') {
            if (!sub) sub = a;
            else if (!id_text) id_text = a;
            else return cli_usage_error(CMD, "unexpected argument '%s'", a);
            continue;
        }
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        if (strcmp(a, "--db") == 0) db_path = v;
        else if (strcmp(a, "--name") == 0) name = v;
        else if (strcmp(a, "--models") == 0) models = v;
        else if (strcmp(a, "--rpm") == 0) {
            if (!cli_parse_int(CMD, a, v, 0, 1 << 30, &rpm)) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--tpm") == 0) {
            if (!cli_parse_int(CMD, a, v, 0, 1 << 30, &tpm)) return CLI_EXIT_USAGE;
        } else
            return cli_usage_error(CMD, "unknown option '%s'", a);
    }
    if (!sub) return cli_usage_error(CMD, "no subcommand (create, list or revoke)");
    bool create = strcmp(sub, "create") == 0, list = strcmp(sub, "list") == 0, revoke = strcmp(sub, "revoke") == 0;
    if (!create && !list && !revoke) return cli_usage_error(CMD, "unknown subcommand '%s'", sub);
    if (create && (!name || !*name)) return cli_usage_error(CMD, "create needs --name NAME");
    if (!revoke && id_text) return cli_usage_error(CMD, "unexpected argument '%s'", id_text);
    uint64_t id = 0;
    if (revoke) {
        if (!id_text) return cli_usage_error(CMD, "revoke needs the key's ID (see owl keys list)");
        if (!cli_parse_u64(CMD, "ID", id_text, &id) || id > INT64_MAX) return CLI_EXIT_USAGE;
    }
    owl_keydb *db = NULL;
    if (owl_keydb_open(db_path, create, &db) != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    int ret = CLI_EXIT_OK;
    if (create) {
        char *secret = NULL;
        int64_t kid = 0;
        if (owl_keydb_create(db, name, models, rpm, tpm, &secret, &kid) != OWL_OK) {
            ret = cli_error(CMD, "%s", owl_last_error());
        } else {
            printf("%s\n", secret);
            fprintf(stderr, "owl keys: key %lld '%s' created; it is shown only this once\n", (long long)kid, name);
            free(secret);
        }
    } else if (list) {
        owl_key_info *v = NULL;
        size_t n = 0;
        if (owl_keydb_list(db, &v, &n) != OWL_OK) {
            ret = cli_error(CMD, "%s", owl_last_error());
        } else {
            printf("%-6s %-20s %-8s %-8s %-8s %-20s %s\n", "ID", "NAME", "STATE", "RPM", "TPM", "CREATED", "MODELS");
            for (size_t i = 0; i < n; i++) {
                char t[32];
                time_t ct = (time_t)v[i].created;
                struct tm tm;
                gmtime_r(&ct, &tm);
                strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
                printf("%-6lld %-20s %-8s %-8d %-8d %-20s %s\n", (long long)v[i].id, v[i].name,
                       v[i].revoked ? "revoked" : "active", v[i].rpm, v[i].tpm, t, v[i].models[0] ? v[i].models : "*");
            }
            free(v);
        }
    } else {
        if (owl_keydb_revoke(db, (int64_t)id) != OWL_OK) ret = cli_error(CMD, "%s", owl_last_error());
        else fprintf(stderr, "owl keys: key %llu revoked\n", (unsigned long long)id);
    }
    owl_keydb_close(db);
    return ret;
}
