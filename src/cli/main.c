#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "cli.h"
#include "plateau/error.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "MODEL_DIR                          config and tensors of a model dir"},
    {"verify", cmd_verify, "MODEL_DIR --manifest FILE          sha256 of every tensor against a manifest"},
    {"tokenize", cmd_tokenize, "MODEL_DIR TEXT|-                   token ids of TEXT ('-': stdin)"},
    {"logits", cmd_logits, "MODEL_DIR (--text T | --ids I,J,..) [--top K | --all]"},
    {"generate", cmd_generate, "MODEL_DIR --text T -n N            greedy continuation"},
    {"synth", cmd_synth, "OUT_DIR --layers L --embd C --heads H --ctx N [--vocab-from DIR] [--dtype f32|f16|bf16] [--seed S]"},
    {"run", cmd_run, "CONFIG.ini [-o OUT.nc] [--set sec.key=val] [--resume] [--naive] [--quiet]"},
    {"config", cmd_config, "CONFIG.ini [-o OUT.nc] [--set sec.key=val] [--get sec.key]  the resolved config"},
    {"merge", cmd_merge, "OUT.nc IN.nc...                    stack per-hook results along 'hook'"},
    {"synth-sae", cmd_synth_sae, "OUT_DIR --model MODEL --hook H --d-sae N [--architecture A] [--k K] [--seed S]"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: plateau COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nplateau %s — see README.md\n", PLATEAU_VERSION);
}

int cli_fail(void)
{
    fprintf(stderr, "plateau: %s\n", pl_error());
    return PL_EXIT_INPUT;
}

int cli_usage(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "plateau %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: plateau %s %s\n", cmd, usage);
    return PL_EXIT_USAGE;
}

int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi)
        return pl_fail("%s: '%s' is not an integer in [%ld, %ld]", flag, text, lo, hi);
    *out = v;
    return PL_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? PL_EXIT_USAGE : PL_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("plateau %s\n", PLATEAU_VERSION);
        return PL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "plateau: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return PL_EXIT_USAGE;
}
