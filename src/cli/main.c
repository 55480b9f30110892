#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/version.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const cli_spec *spec;
} commands[] = {
    {"info", cmd_info, &CLI_INFO},
    {"verify", cmd_verify, &CLI_VERIFY},
    {"tokenize", cmd_tokenize, &CLI_TOKENIZE},
    {"logits", cmd_logits, &CLI_LOGITS},
    {"generate", cmd_generate, &CLI_GENERATE},
    {"synth", cmd_synth, &CLI_SYNTH},
    {"run", cmd_run, &CLI_RUN},
    {"config", cmd_config, &CLI_CONFIG},
    {"merge", cmd_merge, &CLI_MERGE},
    {"synth-sae", cmd_synth_sae, &CLI_SYNTH_SAE},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void print_usage(FILE *out)
{
    fprintf(out, "usage: plateau COMMAND [ARGS]     (plateau COMMAND --help: its options)\n"
                 "       plateau help [COMMAND]      (plateau help --man: the man page as roff;\n"
                 "                                    plateau help --config-md: the config keys as markdown;\n"
                 "                                    plateau help --schema-json: the result file's schema)\n"
                 "       plateau --version\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].spec->summary);
    fprintf(out, "\nexit status: 0 done, 1 command-line error, 2 bad input, 3 fault (run), 75 preempted (run)\n"
                 "plateau %s; README.md and docs/ document everything\n",
            PLATEAU_VERSION);
}

/* plateau help [COMMAND | --man | --config-md | --schema-json] */
static int cmd_help(int argc, char **argv)
{
    if (argc == 1) {
        print_usage(stdout);
        return PL_EXIT_OK;
    }
    if (argc == 2 && !strcmp(argv[1], "--schema-json")) /* the result file's schema (docs, Python reader) */
        return cli_print_schema_json(stdout);
    if (argc == 2 && !strcmp(argv[1], "--man")) {
        const cli_spec *specs[N_COMMANDS];
        for (int i = 0; i < N_COMMANDS; i++)
            specs[i] = commands[i].spec;
        cli_print_man(specs, N_COMMANDS, stdout);
        return fflush(stdout) == 0 ? PL_EXIT_OK : PL_EXIT_INPUT;
    }
    if (argc == 2 && !strcmp(argv[1], "--config-md")) {
        cli_print_config_md(stdout);
        return fflush(stdout) == 0 ? PL_EXIT_OK : PL_EXIT_INPUT;
    }
    if (argc == 2)
        for (int i = 0; i < N_COMMANDS; i++)
            if (!strcmp(argv[1], commands[i].name)) {
                cli_print_help(commands[i].spec, stdout);
                return PL_EXIT_OK;
            }
    if (argc == 2 && argv[1][0] != '-')
        fprintf(stderr, "plateau help: unknown command '%s' (plateau help lists them)\n", argv[1]);
    else
        fprintf(stderr, "plateau help: expected one COMMAND, --man, --config-md or --schema-json "
                        "(usage: plateau help [COMMAND | --man | --config-md | --schema-json])\n");
    return PL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return PL_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return cmd_help(1, argv + 1);
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("plateau %s (git %s)\n", PLATEAU_VERSION, pl_git_commit());
        return PL_EXIT_OK;
    }
    if (!strcmp(argv[1], "help"))
        return cmd_help(argc - 1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "plateau: unknown command '%s' (plateau help lists them)\n", argv[1]);
    return PL_EXIT_USAGE;
}
