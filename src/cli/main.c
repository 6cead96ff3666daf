/* owl: the command-line entry point. One file per subcommand; this one only
 * dispatches and prints the overview. */
#include "cli/args.h"
#include "cli/serve_cli.h"
#include "cli/govern_cli.h"

#include <stdio.h>
#include <string.h>

int cli_finetune(int argc, char **argv); /* finetune.c */

#define OWL_VERSION "0.1.0"

static void usage(FILE *f) {
    fprintf(f,
            "owl " OWL_VERSION " - open weights, locally: run open-weight language models.\n"
            "\n"
            "usage: owl COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  run       generate text from a prompt with a GGUF, llama2.c or Hugging Face model\n"
            "  chat      talk with a model in the terminal (or through a pipe)\n"
            "  tokenize  print the tokens of a text\n"
            "  bench     measure prompt processing and generation speed against the\n"
            "            machine's memory bandwidth\n"
            "  quantize  quantize a GGUF model (Q8_0, Q4_K_M, ... as llama.cpp's mixes)\n"
            "  finetune  train a LoRA adapter on a text or JSONL file (written as PEFT)\n"
            "  lora      merge LoRA adapters into a model, convert them (PEFT <-> GGUF)\n"
            "  perplexity  perplexity of a model on a text, KL divergence to a base model\n"
            "  convert   convert a Hugging Face model directory to GGUF\n"
            "  serve     OpenAI-compatible HTTP server (API keys, audit log, metrics)\n"
            "  keys      create, list and revoke the server's API keys\n"
            "  audit     verify the hash chain of the server's audit log\n"
            "  license   what a model's licence allows (GGUF keys, model card, LICENSE files)\n"
            "  inspect   what a model file holds: architecture, tensors, tokenizer, metadata,\n"
            "            licence, SHA-256 of each file\n"
            "  verify    check a model's files against owl.manifest.json (--write makes it)\n"
            "  pull      download a Hugging Face model repository into the local store\n"
            "  list      the models in the local store\n"
            "  rm        remove a model from the local store\n"
            "\n"
            "options:\n"
            "  -h, --help     this text ('owl COMMAND --help' for a command's flags)\n"
            "  -V, --version  print the version\n"
            "\n"
            "Exit status: 0 success, 1 runtime error (bad file, model error),\n"
            "2 usage error (unknown command or flag, bad number).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(NULL, "no command given");
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("owl " OWL_VERSION "\n");
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        static char help_flag[] = "--help";
        char *help_argv[] = {argv[0], argv[2], help_flag, NULL};
        return main(3, help_argv);
    }
    if (strcmp(cmd, "run") == 0) return cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "finetune") == 0) return cli_finetune(argc - 1, argv + 1);
    if (strcmp(cmd, "lora") == 0) return cli_lora(argc - 1, argv + 1);
    if (strcmp(cmd, "chat") == 0) return cli_chat(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenize") == 0) return cli_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return cli_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "quantize") == 0) return cli_quantize(argc - 1, argv + 1);
    if (strcmp(cmd, "perplexity") == 0) return cli_perplexity(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return cli_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0) return cli_keys(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0) return cli_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "license") == 0) return cli_license(argc - 1, argv + 1);
    if (strcmp(cmd, "inspect") == 0) return cli_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0) return cli_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "pull") == 0) return cli_pull(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0) return cli_list(argc - 1, argv + 1);
    if (strcmp(cmd, "rm") == 0) return cli_rm(argc - 1, argv + 1);
    if (cmd[0] == '-') return cli_usage_error(NULL, "unknown option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
