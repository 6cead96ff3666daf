/* owl lora: merge adapters into a model, convert adapters between PEFT and
 * GGUF; and the --lora PATH[:SCALE] flag of run and chat. */
#include "adapt/adapt.h"
#include "cli/args.h"
#include "govern/govern.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "lora";

static void lora_help(FILE *f) {
    fprintf(f,
            "usage: owl lora merge BASE ADAPTER[:SCALE]... -o OUT.gguf [--type TYPE]\n"
            "       owl lora convert ADAPTER -o OUT --base MODEL [--type f32|f16|bf16]\n"
            "\n"
            "LoRA adapters are PEFT directories (adapter_config.json +\n"
            "adapter_model.safetensors) or llama.cpp GGUF adapters. Every adapter is\n"
            "checked against its base model (architecture, tensor names, shapes, ranks,\n"
            "finite values) before anything is written.\n"
            "\n"
            "merge    writes BASE (a GGUF file) with W + SCALE * s * B A merged into every\n"
            "         adapted matrix (SCALE default 1; s = lora_alpha / r). Merged tensors\n"
            "         keep their type (quantized ones are requantized) unless --type is\n"
            "         given (F32, F16, BF16, Q8_0, ...); the output can be quantized with\n"
            "         owl quantize. A Hugging Face directory must be converted first.\n"
            "convert  PEFT directory -> GGUF adapter when OUT ends in .gguf, else GGUF (or\n"
            "         PEFT) -> PEFT directory OUT. The base model is needed for its\n"
            "         architecture and head counts: Q/K rows of lora_b are permuted as\n"
            "         llama.cpp's converter does for Llama-family GGUF files.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH   the file or directory to write\n"
            "      --base MODEL    (convert) the base model the adapter belongs to\n"
            "      --type TYPE     tensor type of the output (see above)\n"
            "  -h, --help          this text\n"
            "\n"
            "Apply adapters at run time with owl run / owl chat --lora PATH[:SCALE].\n");
}

bool cli_lora_parse(const char *cmd, const char *text, cli_lora_list *l) {
    if (l->n >= CLI_LORA_MAX) {
        cli_usage_error(cmd, "--lora: at most %d adapters", CLI_LORA_MAX);
        return false;
    }
    if (!text[0]) {
        cli_usage_error(cmd, "--lora: empty path");
        return false;
    }
    const char *colon = strrchr(text, ':');
    float scale = 1.0f;
    struct stat sb;
    if (colon && stat(text, &sb) != 0) { /* PATH:SCALE (a path with ':' that exists wins) */
        char *end;
        errno = 0;
        double v = strtod(colon + 1, &end);
        if (colon[1] == 0 || *end != 0 || errno || !(v >= -1e3 && v <= 1e3)) {
            cli_usage_error(cmd, "--lora '%s': the scale '%s' is not a number from -1000 to 1000", text, colon + 1);
            return false;
        }
        scale = (float)v;
        size_t n = (size_t)(colon - text);
        if (n == 0) {
            cli_usage_error(cmd, "--lora '%s': no path before the scale", text);
            return false;
        }
        if (n >= sizeof l->store[0]) {
            cli_usage_error(cmd, "--lora: the path is longer than %zu bytes", sizeof l->store[0] - 1);
            return false;
        }
        memcpy(l->store[l->n], text, n);
        l->store[l->n][n] = 0;
        l->path[l->n] = l->store[l->n];
    } else {
        l->path[l->n] = text;
    }
    l->scale[l->n++] = scale;
    return true;
}

bool cli_lora_attach(const char *cmd, const owl_model *model, owl_ctx *ctx, const cli_lora_list *l, owl_lora ***out) {
    *out = NULL;
    owl_lora **ls = calloc((size_t)(l->n ? l->n : 1), sizeof *ls);
    if (!ls) return false;
    for (int i = 0; i < l->n; i++)
        if (owl_lora_load(model, l->path[i], &ls[i]) != OWL_OK) {
            cli_error(cmd, "adapter %s: %s", l->path[i], owl_last_error());
            cli_lora_free(ls, l->n);
            return false;
        }
    if (owl_ctx_set_adapters(ctx, (const owl_lora *const *)ls, l->scale, l->n) != OWL_OK) {
        cli_error(cmd, "%s", owl_last_error());
        cli_lora_free(ls, l->n);
        return false;
    }
    *out = ls;
    return true;
}

void cli_lora_free(owl_lora **ls, int n) {
    if (!ls) return;
    for (int i = 0; i < n; i++) owl_lora_free(ls[i]);
    free(ls);
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int cli_lora(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(CMD, "no subcommand (merge or convert)");
    if (cli_is_help(argv[1])) {
        lora_help(stdout);
        return CLI_EXIT_OK;
    }
    const char *sub = argv[1];
    const bool merge = strcmp(sub, "merge") == 0;
    if (!merge && strcmp(sub, "convert") != 0)
        return cli_usage_error(CMD, "unknown subcommand '%s' (merge or convert)", sub);
    const char *out = NULL, *base = NULL, *type_name = NULL, *first = NULL;
    cli_lora_list ads = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            lora_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!(out = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--base") == 0) {
            if (!(base = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (strcmp(a, "--type") == 0) {
            if (!(type_name = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(CMD, "unknown flag '%s'", a);
        } else if (!first) {
            first = a;
        } else if (merge) {
            if (!cli_lora_parse(CMD, a, &ads)) return CLI_EXIT_USAGE;
        } else {
            return cli_usage_error(CMD, "convert takes one adapter ('%s' is extra)", a);
        }
    }
    if (!first) return cli_usage_error(CMD, "%s: no %s given", sub, merge ? "base model" : "adapter");
    if (!out) return cli_usage_error(CMD, "%s: no output given (-o)", sub);
    if (merge && ads.n == 0) return cli_usage_error(CMD, "merge: no adapter given");
    if (!merge && !base) return cli_usage_error(CMD, "convert: the base model is needed (--base MODEL)");
    if (merge && base) return cli_usage_error(CMD, "merge: the base is the first argument, not --base");
    owl_dtype type = OWL_DTYPE_COUNT;
    if (type_name && !owl_dtype_from_name(type_name, &type))
        return cli_usage_error(CMD, "--type '%s' is not a tensor type", type_name);
    if (!merge && type_name && type != OWL_F32 && type != OWL_F16 && type != OWL_BF16)
        return cli_usage_error(CMD, "convert: --type %s: adapters are written as f32, f16 or bf16", type_name);
    if (merge && type_name && (type == OWL_Q8_K || type == OWL_Q8_1 || type == OWL_I8 || type == OWL_I16 ||
                               type == OWL_I32 || type == OWL_I64 || type == OWL_F64))
        return cli_usage_error(CMD, "merge: --type %s is not a type for weights", type_name);

    int ret = CLI_EXIT_RUNTIME;
    owl_model *model = cli_load_model(CMD, merge ? first : base, NULL);
    owl_lora **ls = NULL;
    if (!model) return CLI_EXIT_RUNTIME;
    if (merge) {
        if (!(ls = calloc((size_t)ads.n, sizeof *ls))) goto done;
        for (int i = 0; i < ads.n; i++)
            if (owl_lora_load(model, ads.path[i], &ls[i]) != OWL_OK) {
                cli_error(CMD, "adapter %s: %s", ads.path[i], owl_last_error());
                goto done;
            }
        if (owl_lora_merge(model, (const owl_lora *const *)ls, ads.scale, ads.n, type, out) != OWL_OK) {
            cli_error(CMD, "merge: %s", owl_last_error());
            goto done;
        }
        const char *src = cli_model_resolve(CMD, first, false);
        if (!src) goto done;
        if (owl_manifest_write_derived(out, src, "owl lora merge") != OWL_OK) { /* digests, source, licence */
            cli_error(CMD, "wrote %s, but not its manifest: %s", out, owl_last_error());
            goto done;
        }
        fprintf(stderr, "owl lora: merged %d adapter%s into %s\n", ads.n, ads.n == 1 ? "" : "s", out);
    } else {
        if (!(ls = calloc(1, sizeof *ls))) goto done;
        ads.n = 1;
        if (owl_lora_load(model, first, &ls[0]) != OWL_OK) {
            cli_error(CMD, "adapter %s: %s", first, owl_last_error());
            goto done;
        }
        owl_status st = ends_with(out, ".gguf") ? owl_lora_write_gguf(ls[0], out, type == OWL_DTYPE_COUNT ? OWL_F32 : type)
                                                 : owl_lora_write_peft(ls[0], out);
        if (st != OWL_OK) {
            cli_error(CMD, "convert: %s", owl_last_error());
            goto done;
        }
        fprintf(stderr, "owl lora: wrote %s (%s)\n", out, ends_with(out, ".gguf") ? "GGUF adapter" : "PEFT directory");
    }
    ret = CLI_EXIT_OK;
done:
    cli_lora_free(ls, ads.n);
    owl_model_free(model);
    return ret;
}
