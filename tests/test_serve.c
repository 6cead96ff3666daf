/* serve/: the audit chain (good, reopened, edited, reordered, torn, hostile
 * lines), SHA-256 against a published vector, the key store (hashes only,
 * scopes, revocation), rate limits and request-body checks. */
#include "serve/api.h"
#include "serve/serve.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static long verify_bad(const char *path) {
    long n = 0, bad = 0;
    owl_status st = owl_audit_verify(path, &n, &bad);
    return st == OWL_OK ? 0 : bad;
}

static void test_sha256(void) {
    char h[65];
    owl_serve_sha256_hex("abc", 3, h); /* FIPS 180-2 example */
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    owl_serve_sha256_hex("", 0, h);
    CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
}

static void test_audit(const char *dir) {
    char *p = path_join(dir, "audit.log");
    remove(p);
    owl_audit *a = NULL;
    CHECK(owl_audit_open(p, &a) == OWL_OK);
    CHECK(owl_audit_append(a, "{\"n\":1}") == OWL_OK);
    CHECK(owl_audit_append(a, "{\"n\":2,\"text\":\"a\\nb \\\"q\\\"\"}") == OWL_OK);
    CHECK(owl_audit_append(a, "not json") == OWL_ERR_ARG);
    owl_audit_close(a);
    /* reopening continues the chain */
    CHECK(owl_audit_open(p, &a) == OWL_OK);
    CHECK(owl_audit_append(a, "{}") == OWL_OK);
    CHECK(owl_audit_append(a, "{\"n\":4}") == OWL_OK);
    owl_audit_close(a);
    long n = 0, bad = -1;
    CHECKF(owl_audit_verify(p, &n, &bad) == OWL_OK && n == 4 && bad == 0, "%s", owl_last_error());

    char *data = NULL;
    size_t size = 0;
    CHECK(owl_read_file(p, &data, &size) == OWL_OK);
    /* the first line's prev is empty, the second's is the SHA-256 of the first */
    char *nl = strchr(data, '\n');
    CHECK(nl && strstr(data, "\"prev\":\"\"") && strstr(data, "\"prev\":\"\"") < nl);
    char h[65];
    owl_serve_sha256_hex(data, (size_t)(nl - data), h);
    CHECK(strstr(nl, h) != NULL);

    char *q = path_join(dir, "bad.log");
    /* an edited value in line 2 */
    char *e = strdup(data);
    char *x = strstr(e, "\"n\":2");
    x[4] = '3';
    write_text(q, e);
    CHECK(verify_bad(q) == 2);
    CHECK(strstr(owl_last_error(), "line 2") != NULL);
    /* lines 2 and 3 swapped: line 2 (the old 3) has the wrong prev */
    char *l2 = strchr(data, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
    snprintf(e, size + 1, "%.*s%.*s%.*s%s", (int)(l2 - data), data, (int)(l4 - l3), l3, (int)(l3 - l2), l2, l4);
    write_text(q, e);
    CHECK(verify_bad(q) == 2);
    /* a torn last line */
    snprintf(e, size + 1, "%.*s", (int)size - 5, data);
    write_text(q, e);
    CHECK(verify_bad(q) == 4);
    /* hostile lines */
    write_text(q, "\n");
    CHECK(verify_bad(q) == 1);
    write_text(q, "[1,2]\n");
    CHECK(verify_bad(q) == 1);
    write_text(q, "{\"prev\":\"\"}\n");
    CHECK(verify_bad(q) == 1);
    write_text(q, "{\"prev\":\"\",\"sha256\":\"00\"}\n");
    CHECK(verify_bad(q) == 1);
    write_text(q, "{\"prev\":7,\"sha256\":[]}\n");
    CHECK(verify_bad(q) == 1);
    write_text(q, "");
    CHECK(owl_audit_verify(q, &n, &bad) == OWL_OK && n == 0);
    char *missing = path_join(dir, "none.log");
    remove(missing);
    CHECK(owl_audit_verify(missing, &n, &bad) == OWL_ERR_IO);
    free(missing);
    free(e);
    free(q);
    free(data);
    free(p);
}

static void test_keys(const char *dir) {
    char *p = path_join(dir, "keys.db");
    remove(p);
    owl_keydb *db = NULL;
    CHECK(owl_keydb_open(p, false, &db) != OWL_OK); /* not created unless asked */
    CHECK(owl_keydb_open(p, true, &db) == OWL_OK);
    char *k1 = NULL, *k2 = NULL;
    int64_t id1 = 0, id2 = 0;
    CHECK(owl_keydb_create(db, "a", "", 0, 0, &k1, &id1) == OWL_OK);
    CHECK(owl_keydb_create(db, "b", "m1,m2", 5, 100, &k2, &id2) == OWL_OK);
    CHECK(k1 && k2 && strlen(k1) == 68 && strncmp(k1, "owl-", 4) == 0 && strcmp(k1, k2) != 0 && id1 != id2);
    owl_key_info ki;
    CHECK(owl_keydb_check(db, k1, &ki) && ki.id == id1);
    CHECK(owl_keydb_check(db, k2, &ki) && ki.rpm == 5 && ki.tpm == 100);
    CHECK(owl_key_allows_model(&ki, "m2") && owl_key_allows_model(&ki, "m1") && !owl_key_allows_model(&ki, "m"));
    CHECK(!owl_key_allows_model(&ki, "m1,m2"));
    CHECK(!owl_keydb_check(db, "owl-nope", &ki));
    CHECK(!owl_keydb_check(db, "", &ki));
    CHECK(owl_keydb_revoke(db, id1) == OWL_OK);
    CHECK(!owl_keydb_check(db, k1, &ki));
    CHECK(owl_keydb_revoke(db, 12345) == OWL_ERR_ARG);
    owl_key_info *v = NULL;
    size_t n = 0;
    CHECK(owl_keydb_list(db, &v, &n) == OWL_OK && n == 2 && v[0].revoked && !v[1].revoked);
    free(v);
    owl_keydb_close(db);
    /* the file holds no key */
    char *data = NULL;
    size_t size = 0;
    CHECK(owl_read_file(p, &data, &size) == OWL_OK);
    CHECK(!memmem(data, size, k1 + 4, 64) && !memmem(data, size, k2 + 4, 64));
    free(data);
    /* not a database */
    char *q = path_join(dir, "junk.db");
    write_text(q, "this is not an SQLite database, not at all, no...............................................");
    CHECK(owl_keydb_open(q, true, &db) != OWL_OK);
    free(q);
    /* rate limits */
    owl_ratelimit *rl = owl_ratelimit_new();
    owl_key_info lim = {.id = 9, .rpm = 2, .tpm = 0};
    int ra = 0;
    CHECK(owl_ratelimit_admit(rl, &lim, &ra) && owl_ratelimit_admit(rl, &lim, &ra));
    CHECK(!owl_ratelimit_admit(rl, &lim, &ra) && ra >= 1 && ra <= 60);
    owl_key_info tl = {.id = 10, .rpm = 0, .tpm = 50};
    CHECK(owl_ratelimit_admit(rl, &tl, &ra));
    owl_ratelimit_add_tokens(rl, 10, 60);
    CHECK(!owl_ratelimit_admit(rl, &tl, &ra) && ra >= 1);
    owl_ratelimit_free(rl);
    free(k1);
    free(k2);
    free(p);
}

static int parse_chat(const char *body, char *param) {
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    owl_api_req r;
    memset(&r, 0, sizeof r);
    owl_api_err e = {0};
    json_t *msgs = NULL;
    int st = owl_api_parse_chat(j, 4, &r, &msgs, &e);
    if (param) snprintf(param, 64, "%s", e.param);
    owl_api_req_free(&r);
    json_decref(msgs);
    json_decref(j);
    return st;
}

static void test_api(void) {
    char p[64];
    CHECK(parse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", p) == 0);
    CHECK(parse_chat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}],"
                     "\"stop\":[\"x\",\"y\"],\"max_completion_tokens\":3,\"seed\":-1,\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true}}", p) == 0);
    struct {
        const char *body, *param;
    } bad[] = {
        {"[]", ""},
        {"{\"messages\":[]}", "model"},
        {"{\"model\":1,\"messages\":[]}", "model"},
        {"{\"model\":\"m\"}", "messages"},
        {"{\"model\":\"m\",\"messages\":{}}", "messages"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages"},
        {"{\"model\":\"m\",\"messages\":[1]}", "messages[0]"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"x\"},"
         "{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"x\"}]}",
         "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"1\"}", "temperature"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":-1}", "temperature"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":1.5}", "top_p"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", "max_tokens"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", "max_tokens"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":3}", "n"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", "stream"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":{}}", "stream_options"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":7}", "stop"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",2]}", "stop"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"presence_penalty\":0.5}", "presence_penalty"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"stream\":true}", "logprobs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":1}", "logprobs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":\"1\"}", "seed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = parse_chat(bad[i].body, p);
        CHECKF(st == 400 && strcmp(p, bad[i].param) == 0, "%s: status %d param '%s'", bad[i].body, st, p);
    }
    owl_api_err e;
    owl_api_fail(&e, 404, "invalid_request_error", NULL, "model_not_found", "no \"%s\"", "x");
    char *js = owl_api_error_json(&e);
    CHECK(js && strcmp(js, "{\"error\":{\"message\":\"no \\\"x\\\"\",\"type\":\"invalid_request_error\",\"param\":null,"
                           "\"code\":\"model_not_found\"}}") == 0);
    free(js);
}

int main(void) {
    const char *dir = test_tmpdir("test_serve");
    test_sha256();
    test_audit(dir);
    test_keys(dir);
    test_api();
    return test_finish("test_serve");
}
