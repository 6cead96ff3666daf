/* owl serve: the OpenAI-compatible HTTP server. */
#include "cli/args.h"
#include "cli/govern_cli.h"
#include "cli/serve_cli.h"
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "serve";

#define MAX_LORA 64

/* NAME=PATH of --lora: NAME of letters, digits, '.', '_', '-' (1..64). */
static bool lora_arg(const char *v, char *name, size_t cap, const char **path) {
    const char *eq = strchr(v, '=');
    if (!eq) {
        cli_usage_error(CMD, "--lora '%s': expected NAME=PATH", v);
        return false;
    }
    size_t n = (size_t)(eq - v);
    if (n == 0 || n >= cap || n > 64) {
        cli_usage_error(CMD, "--lora '%s': the name must have 1 to 64 characters", v);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-')) {
            cli_usage_error(CMD, "--lora '%s': the name may hold only letters, digits, '.', '_' and '-'", v);
            return false;
        }
    }
    if (!eq[1]) {
        cli_usage_error(CMD, "--lora '%s': no path after '='", v);
        return false;
    }
    memcpy(name, v, n);
    name[n] = 0;
    *path = eq + 1;
    return true;
}

static void serve_help(FILE *f) {
    fprintf(f,
            "usage: owl serve MODEL [options]\n"
            "\n"
            "Serves MODEL over HTTP with OpenAI's API: POST /v1/chat/completions,\n"
            "POST /v1/completions (both with \"stream\": true for server-sent events),\n"
            "POST /v1/embeddings (mean of the final hidden states, unit length),\n"
            "GET /v1/models, GET /health, GET /metrics (Prometheus text).\n"
            "Chat prompts use the model's chat template, else ChatML. Supported body\n"
            "fields: model, messages / prompt (text or token ids), max_tokens,\n"
            "max_completion_tokens, temperature, top_p, stop, seed, n (1), stream,\n"
            "stream_options.include_usage, logprobs, top_logprobs (not with stream);\n"
            "presence/frequency_penalty other than 0 are refused with 400.\n"
            "Generation runs in --slots slots with continuous batching: each step is\n"
            "one forward pass over a token of every generating slot and the next\n"
            "prompt chunks (at most --batch-tokens) of slots that joined; requests\n"
            "join and leave between steps. A slot whose cache starts with the new\n"
            "prompt evaluates only the rest.\n"
            "Requests need 'Authorization: Bearer KEY' with a key made by 'owl keys\n"
            "create' (only its SHA-256 is stored) unless --no-auth is given.\n"
            "SIGTERM or SIGINT: stop accepting, finish the requests in progress, flush\n"
            "the audit log, exit 0.\n"
            "\n"
            "network:\n"
            "      --host ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
            "      --port N           port (default 8080; 0 = any free port, printed on\n"
            "                         stderr)\n"
            "      --timeout SEC      time limit of one request's generation, 0 = none\n"
            "                         (default 600); idle connections close after\n"
            "                         --conn-timeout SEC (default 30)\n"
            "      --max-body BYTES   largest request body (default 1048576; more: 413)\n"
            "      --max-messages N   most chat messages in a request (default 1024)\n"
            "\n"
            "scheduling:\n"
            "      --slots N          requests generated at once, each with its own KV\n"
            "                         cache (default 1)\n"
            "      --batch-tokens N   prompt tokens read per step besides the generated\n"
            "                         ones (default 128): smaller keeps generation of\n"
            "                         the others smooth while a long prompt is read\n"
            "      --queue N          requests that may wait for a slot (default 16;\n"
            "                         more: 429 with Retry-After)\n"
            "      --max-tokens-cap N largest max_tokens a request may ask for (default\n"
            "                         4096; more: 400); also the default when absent\n"
            "  -c, --ctx-size N       context of each slot (default 0: the model's)\n"
            "  -t, --threads N        threads (default 0: all cores)\n"
            "      --tokenizer PATH   tokenizer.bin for a llama2.c checkpoint\n"
            "      --lora NAME=PATH   also serve an adapter (PEFT directory or GGUF\n"
            "                         adapter, loaded once; repeatable, up to 64): a\n"
            "                         request picks it with \"model\": \"MODEL:NAME\" or\n"
            "                         \"adapter\": \"NAME\"; /v1/models lists MODEL:NAME;\n"
            "                         requests with different adapters share a batch.\n"
            "                         Keys scoped with --models MODEL:NAME or MODEL:*\n"
            "      --policy FILE      refuse to start unless the policy (JSON: licences,\n"
            "                         uses, pinned digests; see src/govern/policy.c)\n"
            "                         allows the model\n"
            "\n"
            "keys and audit:\n"
            "      --no-auth          accept requests without a key (a warning is printed)\n"
            "      --keys DB          the key database (default owl-keys.db)\n"
            "      --audit FILE       append one JSON line per request: time, key id\n"
            "                         (never the key), route, model and its SHA-256,\n"
            "                         token counts, status, latency; each line carries\n"
            "                         the SHA-256 of the line before (\"prev\") and of\n"
            "                         itself (\"sha256\"). Each line is written with one\n"
            "                         write() and fsync()ed before the next. Check with\n"
            "                         'owl audit verify FILE'.\n"
            "      --audit-content    also log prompt and completion text\n"
            "  -h, --help             this text\n");
}

int cli_serve(int argc, char **argv) {
    owl_server_opts o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 8080;
    o.slots = 1;
    o.queue = 16;
    o.keys_db = "owl-keys.db";
    o.max_body = 1 << 20;
    o.max_tokens_cap = 4096;
    o.timeout_s = 600;
    o.conn_timeout_s = 30;
    o.max_messages = 1024;
    const char *tokenizer = NULL, *policy = NULL;
    static char lora_name_buf[MAX_LORA][72];
    const char *lora_names[MAX_LORA], *lora_paths[MAX_LORA];
    int n_lora = 0;
    int threads = 0, v_int;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (a[0] != '-' || a[1] == 0) {
            if (o.model_path) return cli_usage_error(CMD, "unexpected argument '%s' (the model is '%s')", a, o.model_path);
            o.model_path = a;
            continue;
        }
#define FLAG(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
#define VALUE()                                                           \
    do {                                                                  \
        if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE; \
    } while (0)
#define INT(lo, hi, dst)                                                                  \
    do {                                                                                  \
        VALUE();                                                                          \
        if (!cli_parse_int(CMD, a, v, lo, hi, &v_int)) return CLI_EXIT_USAGE;             \
        dst = v_int;                                                                      \
    } while (0)
        if (cli_is_help(a)) {
            serve_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--host") == 0) {
            VALUE();
            o.host = v;
        } else if (strcmp(a, "--port") == 0) {
            INT(0, 65535, o.port);
        } else if (strcmp(a, "--slots") == 0) {
            INT(1, 256, o.slots);
        } else if (strcmp(a, "--lora") == 0) {
            VALUE();
            if (n_lora == MAX_LORA) return cli_usage_error(CMD, "more than %d --lora adapters", MAX_LORA);
            if (!lora_arg(v, lora_name_buf[n_lora], sizeof lora_name_buf[n_lora], &lora_paths[n_lora]))
                return CLI_EXIT_USAGE;
            lora_names[n_lora] = lora_name_buf[n_lora];
            for (int k = 0; k < n_lora; k++)
                if (strcmp(lora_names[k], lora_names[n_lora]) == 0)
                    return cli_usage_error(CMD, "--lora: the name '%s' is given twice", lora_names[k]);
            n_lora++;
        } else if (strcmp(a, "--batch-tokens") == 0) {
            INT(1, 65536, o.step_tokens);
        } else if (strcmp(a, "--queue") == 0) {
            INT(0, 1 << 16, o.queue);
        } else if (strcmp(a, "--no-auth") == 0) {
            o.no_auth = true;
        } else if (strcmp(a, "--keys") == 0) {
            VALUE();
            o.keys_db = v;
        } else if (strcmp(a, "--audit") == 0) {
            VALUE();
            o.audit_path = v;
        } else if (strcmp(a, "--audit-content") == 0) {
            o.audit_content = true;
        } else if (strcmp(a, "--max-body") == 0) {
            INT(64, 1 << 30, o.max_body);
        } else if (strcmp(a, "--max-messages") == 0) {
            INT(1, 1 << 20, o.max_messages);
        } else if (strcmp(a, "--max-tokens-cap") == 0) {
            INT(1, 1 << 30, o.max_tokens_cap);
        } else if (strcmp(a, "--timeout") == 0) {
            INT(0, 1 << 24, o.timeout_s);
        } else if (strcmp(a, "--conn-timeout") == 0) {
            INT(1, 1 << 24, o.conn_timeout_s);
        } else if (FLAG("-c", "--ctx-size")) {
            INT(0, 1 << 24, o.n_ctx);
        } else if (FLAG("-t", "--threads")) {
            INT(0, 4096, threads);
        } else if (strcmp(a, "--tokenizer") == 0) {
            VALUE();
            tokenizer = v;
        } else if (strcmp(a, "--policy") == 0) {
            VALUE();
            policy = v;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
#undef FLAG
#undef VALUE
#undef INT
    }
    if (!o.model_path) return cli_usage_error(CMD, "no model given");
    o.n_lora = n_lora;
    o.lora_names = lora_names;
    o.lora_paths = lora_paths;
    if (o.audit_content && !o.audit_path) return cli_usage_error(CMD, "--audit-content needs --audit FILE");
    /* the model's name: the file name without its extension */
    const char *base = strrchr(o.model_path, '/');
    base = base ? base + 1 : o.model_path;
    char name[256];
    snprintf(name, sizeof name, "%s", base);
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/') name[--nl] = 0;
    char *dot = strrchr(name, '.');
    if (dot && dot != name && (strcmp(dot, ".gguf") == 0 || strcmp(dot, ".bin") == 0)) *dot = 0;
    o.model_name = name;
    if (!(o.model_path = cli_model_resolve(CMD, o.model_path, false))) return CLI_EXIT_RUNTIME; /* a store name */
    if (policy && cli_policy_enforce(CMD, policy, o.model_path)) return CLI_EXIT_RUNTIME;   /* before loading */
    if (o.no_auth)
        fprintf(stderr, "owl serve: WARNING: --no-auth: anyone who can reach %s:%d can use this server without a key\n",
                o.host, o.port);
    owl_set_threads(threads);
    owl_model *model = cli_load_model(CMD, o.model_path, tokenizer);
    if (!model) return CLI_EXIT_RUNTIME;
    owl_status st = owl_server_run(model, &o);
    owl_model_free(model);
    if (st != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    return CLI_EXIT_OK;
}
