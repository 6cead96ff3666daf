/* owl convert: a Hugging Face model directory to one GGUF file. */
#include "base/base.h"
#include "cli/args.h"
#include "format/format.h"
#include "govern/govern.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "convert";

static void convert_help(FILE *f) {
    fprintf(f, "usage: owl convert HF_DIR -o OUT.gguf [--type f16|bf16|f32]\n"
               "\n"
               "Converts a Hugging Face model directory (config.json, model.safetensors or\n"
               "sharded model-*.safetensors with model.safetensors.index.json, tokenizer.model\n"
               "or tokenizer.json, tokenizer_config.json, README.md) into a GGUF file laid out\n"
               "as llama.cpp's converter does: the same metadata keys and tensor names, and\n"
               "for Llama-family models the Q/K rows permuted for GGUF's RoPE. Matrices get\n"
               "the chosen type, norms and biases stay F32. The file is written atomically.\n"
               "\n"
               "  -o, --output PATH     the GGUF file to write (required)\n"
               "      --type T          f16 (default), bf16 or f32\n"
               "  -h, --help            this text\n");
}

int cli_convert(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *type = "f16";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (a[0] != '-' || a[1] == 0) {
            if (dir) return cli_usage_error(CMD, "unexpected argument '%s'", a);
            dir = a;
        } else if (cli_is_help(a)) {
            convert_help(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            out = v;
        } else if (strcmp(a, "--type") == 0 || strcmp(a, "--outtype") == 0) {
            if (!(v = cli_value(CMD, argc, argv, &i))) return CLI_EXIT_USAGE;
            type = v;
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }
    if (!dir) return cli_usage_error(CMD, "no model directory given");
    if (!out) return cli_usage_error(CMD, "no output file given (-o OUT.gguf)");
    owl_dtype t;
    if (strcmp(type, "f32") == 0) t = OWL_F32;
    else if (strcmp(type, "f16") == 0) t = OWL_F16;
    else if (strcmp(type, "bf16") == 0) t = OWL_BF16;
    else return cli_usage_error(CMD, "--type: '%s' is not f16, bf16 or f32", type);
    if (!(dir = cli_model_resolve(CMD, dir, false))) return CLI_EXIT_RUNTIME; /* a store name */
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error(CMD, "'%s' is not a directory (a Hugging Face model directory is expected)", dir);
    double t0 = owl_time_ms();
    if (owl_hf_convert(dir, out, t) != OWL_OK) return cli_error(CMD, "%s", owl_last_error());
    if (owl_manifest_write_derived(out, dir, "owl convert") != OWL_OK) /* digests, source, licence carried over */
        return cli_error(CMD, "wrote %s, but not its manifest: %s", out, owl_last_error());
    struct stat os;
    double mb = stat(out, &os) == 0 ? (double)os.st_size / 1e6 : 0.0;
    fprintf(stderr, "owl convert: wrote %s (%s, %.1f MB) in %.0f ms\n", out, type, mb, owl_time_ms() - t0);
    return CLI_EXIT_OK;
}
