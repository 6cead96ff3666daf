/* owl pull / list / rm against a local stand-in for the Hugging Face hub
 * (tests/reference/hub_server.py on 127.0.0.1): files land in the hub-cache
 * layout with blobs named by their SHA-256 (checked with sha256sum and
 * testdata/SHA256SUMS), a cut download resumes with a Range request, a
 * file whose digest differs from the listed one is refused and removed, a
 * hostile file name is refused; list and rm. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmp;
static char srv[1024], store[1024], endpoint[128];

static int owl_cmd(char **out, const char *fmt, const char *arg) {
    int status;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, arg);
    *out = run_capture(&status, "%s %s --store '%s' 2>&1", owl_bin(), cmd, store);
    return status;
}

static int count_in_log(const char *needle) {
    char *log = NULL;
    int status;
    log = run_capture(&status, "cat '%s/_log.txt'", srv);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)); p++) n++;
    free(log);
    return n;
}

static bool exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

int main(void) {
    tmp = test_tmpdir("test_store");
    snprintf(srv, sizeof srv, "%s/srv", tmp);
    snprintf(store, sizeof store, "%s/store", tmp);
    CHECK(run_cmd("mkdir -p '%s/org/tiny/sub' '%s/org/cut' '%s/org/bad' '%s/org/evil' '%s'", srv, srv, srv, srv,
                  store) == 0);
    CHECK(run_cmd("cp '%s' '%s/org/tiny/model.gguf' && printf '{\"a\": 1}' > '%s/org/tiny/config.json'",
                  testdata_path("models/stories260K.gguf"), srv, srv) == 0);
    CHECK(run_cmd("head -c 5000 /dev/urandom > '%s/org/tiny/sub/w.bin'", srv) == 0);
    CHECK(run_cmd("head -c 200000 /dev/urandom > '%s/org/cut/big.bin'", srv) == 0);
    CHECK(run_cmd("head -c 4000 /dev/urandom > '%s/org/bad/x.bin'", srv) == 0);
    CHECK(run_cmd("printf small > '%s/org/evil/a.txt'", srv) == 0);
    CHECK(run_cmd("printf '{\"cut_once\": [\"big.bin\"], \"bad_sha\": [\"x.bin\"]}' > '%s/_control.json'", srv) == 0);

    int status;
    char *pid = run_capture(&status, "%s '%s' '%s' '%s/port' > '%s/server.log' 2>&1 & echo $!", test_python(),
                            source_path("tests/reference/hub_server.py"), srv, tmp, tmp);
    CHECK(pid && atoi(pid) > 0);
    char *port = NULL;
    for (int i = 0; i < 100 && !port; i++) {
        char pf[1100];
        snprintf(pf, sizeof pf, "%s/port", tmp);
        if (access(pf, R_OK) == 0) port = run_capture(&status, "cat '%s'", pf);
        else usleep(100000);
    }
    CHECK(port != NULL);
    if (!port) {
        if (pid) run_cmd("kill %d", atoi(pid));
        free(pid);
        return test_finish("test_store");
    }
    snprintf(endpoint, sizeof endpoint, "--endpoint http://127.0.0.1:%d", atoi(port));

    char *out, arg[256];
    /* a pull: the snapshot path printed, files in place, blobs named by sha256 */
    snprintf(arg, sizeof arg, "org/tiny %s", endpoint);
    CHECKF(owl_cmd(&out, "pull %s", arg) == 0, "%s", out ? out : "");
    char snap[2048] = "";
    if (out) snprintf(snap, sizeof snap, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    CHECK(strstr(snap, "/models--org--tiny/snapshots/0123456789abcdef0123456789abcdef01234567") != NULL);
    char *sum = run_capture(&status, "sha256sum '%s/model.gguf' | cut -c1-64", snap);
    const char *want = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"; /* testdata/SHA256SUMS */
    CHECK(sum && strncmp(sum, want, 64) == 0);
    free(sum);
    char blob[2400];
    snprintf(blob, sizeof blob, "%s/models--org--tiny/blobs/%s", store, want);
    CHECK(exists(blob));
    CHECK(run_cmd("cmp -s '%s/sub/w.bin' '%s/org/tiny/sub/w.bin' && cmp -s '%s/config.json' '%s/org/tiny/config.json'",
                  snap, srv, snap, srv) == 0);
    CHECK(run_cmd("test \"$(readlink '%s/model.gguf')\" = ../../blobs/%s", snap, want) == 0);
    /* the pulled model runs */
    out = run_capture(&status, "%s run '%s/model.gguf' -p Once -n 3 -s 1 2>&1", owl_bin(), snap);
    CHECKF(status == 0, "%s", out ? out : "");
    free(out);
    /* pulling again fetches no LFS file twice */
    CHECK(owl_cmd(&out, "pull %s", arg) == 0);
    free(out);
    CHECK(count_in_log("resolve/0123456789abcdef0123456789abcdef01234567/model.gguf") == 1);

    /* a cut download: the first pull fails and keeps the partial file, the
     * second resumes it with a Range request */
    snprintf(arg, sizeof arg, "org/cut %s", endpoint);
    CHECK(owl_cmd(&out, "pull %s", arg) == 1);
    CHECKF(out && strstr(out, "resume"), "%s", out ? out : "");
    free(out);
    CHECK(run_cmd("ls '%s'/models--org--cut/blobs/*.incomplete > /dev/null", store) == 0);
    CHECK(owl_cmd(&out, "pull %s", arg) == 0);
    free(out);
    CHECK(count_in_log("big.bin bytes=") == 1);
    CHECK(run_cmd("cmp -s '%s'/models--org--cut/snapshots/*/big.bin '%s/org/cut/big.bin'", store, srv) == 0);
    CHECK(run_cmd("ls '%s'/models--org--cut/blobs/*.incomplete > /dev/null 2>&1", store) != 0);

    /* a digest that differs from the listed one: refused, nothing kept */
    snprintf(arg, sizeof arg, "org/bad %s", endpoint);
    CHECK(owl_cmd(&out, "pull %s", arg) == 1);
    CHECKF(out && strstr(out, "x.bin") && strstr(out, "the hub lists"), "%s", out ? out : "");
    free(out);
    CHECK(run_cmd("test -z \"$(ls '%s'/models--org--bad/blobs/)\"", store) == 0);

    /* a hostile file name from the hub is refused */
    CHECK(run_cmd("printf '{\"evil\": true}' > '%s/_control.json'", srv) == 0);
    snprintf(arg, sizeof arg, "org/evil %s", endpoint);
    CHECK(owl_cmd(&out, "pull %s", arg) == 1);
    CHECKF(out && strstr(out, "safe relative"), "%s", out ? out : "");
    free(out);
    CHECK(!exists("evil") && run_cmd("test ! -e '%s/evil'", tmp) == 0);

    /* no such repository; not a repository name */
    snprintf(arg, sizeof arg, "org/none %s", endpoint);
    CHECK(owl_cmd(&out, "pull %s", arg) == 1 && out && strstr(out, "404"));
    free(out);
    CHECK(owl_cmd(&out, "pull %s", "../etc") == 1 && out && strstr(out, "ORG/NAME"));
    free(out);
    CHECK(owl_cmd(&out, "pull %s", "--bogus") == 2);
    free(out);

    /* list and rm */
    CHECK(owl_cmd(&out, "list%s", "") == 0 && out && strstr(out, "org/tiny") && strstr(out, "org/cut"));
    free(out);
    CHECK(owl_cmd(&out, "rm %s", "org/tiny") == 0);
    free(out);
    CHECK(run_cmd("test ! -e '%s/models--org--tiny'", store) == 0);
    CHECK(owl_cmd(&out, "rm %s", "org/tiny") == 1);
    free(out);
    CHECK(owl_cmd(&out, "list%s", "") == 0 && out && !strstr(out, "org/tiny"));
    free(out);

    run_cmd("kill %d", atoi(pid));
    free(pid);
    free(port);
    return test_finish("test_store");
}
