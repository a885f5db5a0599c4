/* main.c: the hcinfer program: dispatches to a subcommand (run, inspect, tokenize, plugins ...)
 * and turns its status into the exit code. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    { "run", hc_cmd_run, "generate text from a prompt (or a chat turn)" },
    { "eval", hc_cmd_eval, "perplexity, multiple-choice accuracy and LAMBADA of a model" },
    { "inspect", hc_cmd_inspect, "print a model file's metadata and tensors" },
    { "tokenize", hc_cmd_tokenize, "print the token ids of a text" },
    { "compress", hc_cmd_compress, "quantize a model and add low-rank compensation branches" },
    { "bench", hc_cmd_bench, "measure speed under each overlap scheduler" },
    { "synth", hc_cmd_synth, "write a model with random weights (dense or mixture of experts)" },
    { "plugins", hc_cmd_plugins, "list loaded and refused plugins" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hcinfer COMMAND [options]   (hcinfer COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hcinfer: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
