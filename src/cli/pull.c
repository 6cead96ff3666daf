/* owl pull, owl list, owl rm: the local model store. */
#include "cli/args.h"
#include "cli/govern_cli.h"
#include "store/store.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void pull_help(FILE *f) {
    fprintf(f, "usage: owl pull ORG/NAME [--revision REV] [--endpoint URL] [--store DIR] [-q]\n"
               "       owl list [--store DIR]\n"
               "       owl rm ORG/NAME [--store DIR]\n"
               "\n"
               "pull downloads every file of a Hugging Face model repository into the\n"
               "local store (the hub cache layout: blobs by SHA-256, snapshots, refs),\n"
               "resuming partial downloads and checking each file's SHA-256 against the\n"
               "one the hub lists. It prints the snapshot directory. Every command that\n"
               "takes a MODEL also takes a store name: ORG/NAME, ORG/NAME@REVISION, and\n"
               "/FILE after either for one file of the snapshot (a path on disk of the\n"
               "same name wins). list shows the store (size, licence, weight formats);\n"
               "rm removes a repository from it.\n"
               "\n"
               "      --revision REV  branch, tag or commit (default main)\n"
               "      --endpoint URL  hub address (default $HF_ENDPOINT or https://huggingface.co)\n"
               "      --store DIR     store root (default $OWL_STORE, $HF_HUB_CACHE or\n"
               "                      ~/.cache/huggingface/hub)\n"
               "  -q, --quiet         no progress\n"
               "  -h, --help          this text\n"
               "\n"
               "Environment: HF_TOKEN is sent as a bearer token (gated models).\n");
}

static void progress(void *ud, const char *file, uint64_t done, uint64_t total) {
    (void)ud;
    static char last[1024];
    static double last_ms;
    double now = owl_time_ms();
    bool end = total != UINT64_MAX && done == total;
    if (!end && strcmp(last, file) == 0 && now - last_ms < 500) return;
    snprintf(last, sizeof last, "%s", file);
    last_ms = now;
    if (total != UINT64_MAX) fprintf(stderr, "\r%s: %llu / %llu bytes", file, (unsigned long long)done, (unsigned long long)total);
    else fprintf(stderr, "\r%s: %llu bytes", file, (unsigned long long)done);
    if (end) fputc('\n', stderr);
}

/* Shared flag parsing: returns -1 to go on, else an exit code. */
static int parse(const char *cmd, int argc, char **argv, const char **repo, owl_pull_opts *o, bool *quiet) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            pull_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--revision") == 0 && o) {
            if (!(o->revision = cli_value(cmd, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--endpoint") == 0 && o) {
            if (!(o->endpoint = cli_value(cmd, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--store") == 0) {
            const char *v = cli_value(cmd, argc, argv, &i);
            if (!v) return CLI_EXIT_USAGE;
            setenv("OWL_STORE", v, 1);
        } else if ((strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) && quiet) {
            *quiet = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (repo && !*repo) {
            *repo = a;
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
    }
    if (repo && !*repo) return cli_usage_error(cmd, "no repository (ORG/NAME) given");
    return -1;
}

int cli_pull(int argc, char **argv) {
    const char *repo = NULL;
    owl_pull_opts o = {0};
    bool quiet = false;
    int rc = parse("pull", argc, argv, &repo, &o, &quiet);
    if (rc >= 0) return rc;
    if (!quiet && isatty(2)) o.progress = progress;
    signal(SIGXFSZ, SIG_IGN); /* past a file size limit a write fails (EFBIG) and is reported, no core dump */
    char *snap = NULL;
    if (owl_store_pull(repo, &o, &snap)) return cli_error("pull", "%s", owl_last_error());
    printf("%s\n", snap);
    free(snap);
    return CLI_EXIT_OK;
}

/* The weight formats in a snapshot: "gguf", "safetensors", both, or "-". */
static void formats_of(const char *dir, char *out, size_t cap) {
    bool gguf = false, st = false;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        gguf |= n > 5 && strcmp(e->d_name + n - 5, ".gguf") == 0;
        st |= n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0;
    }
    if (d) closedir(d);
    snprintf(out, cap, "%s%s%s", gguf ? "gguf" : "", gguf && st ? "," : "", st ? "safetensors" : !gguf ? "-" : "");
}

/* The licence id of a snapshot: its card and licence files, else (when they
 * say nothing) the GGUF keys of its one model file; "unknown" otherwise. */
static void licence_of(const owl_store_entry *e, char *out, size_t cap) {
    owl_license_report r;
    snprintf(out, cap, "unknown");
    if (owl_license_detect(e->snapshot, &r) != OWL_OK) return;
    bool said = r.n > 0;
    if (r.license) snprintf(out, cap, "%s", r.license->id);
    owl_license_report_free(&r);
    char name[512], *model = NULL;
    snprintf(name, sizeof name, "%s@%s", e->repo, e->revision);
    if (said || owl_store_resolve(NULL, name, false, &model) != OWL_OK) return;
    if (!owl_is_dir(model) && owl_license_detect(model, &r) == OWL_OK) {
        if (r.license) snprintf(out, cap, "%s", r.license->id);
        owl_license_report_free(&r);
    }
    free(model);
}

static void print_entry(void *ud, const owl_store_entry *e) {
    int *n = ud;
    char lic[64], fmts[32];
    licence_of(e, lic, sizeof lic);
    formats_of(e->snapshot, fmts, sizeof fmts);
    if ((*n)++ == 0)
        printf("%-40s %-12s %-12s %6s %14s  %-20s %-16s %s\n", "REPOSITORY", "REVISION", "COMMIT", "FILES", "BYTES",
               "LICENCE", "FORMATS", "SNAPSHOT");
    printf("%-40s %-12s %-12.12s %6d %14llu  %-20s %-16s %s\n", e->repo, e->revision, e->commit, e->files,
           (unsigned long long)e->bytes, lic, fmts, e->snapshot);
}

int cli_list(int argc, char **argv) {
    int rc = parse("list", argc, argv, NULL, NULL, NULL);
    if (rc >= 0) return rc;
    int n = 0;
    if (owl_store_list(NULL, print_entry, &n)) return cli_error("list", "%s", owl_last_error());
    if (n == 0) printf("the store (%s) is empty\n", owl_store_root());
    return CLI_EXIT_OK;
}

int cli_rm(int argc, char **argv) {
    const char *repo = NULL;
    int rc = parse("rm", argc, argv, &repo, NULL, NULL);
    if (rc >= 0) return rc;
    if (owl_store_rm(NULL, repo)) return cli_error("rm", "%s", owl_last_error());
    printf("removed %s\n", repo);
    return CLI_EXIT_OK;
}
