/* Subcommands of the plateau CLI. Each parses its own arguments (argv[0] is the subcommand name),
 * calls into the library, prints results on stdout, and returns a process exit code. On failure a
 * subcommand prints nothing itself: it returns cli_fail(), which prints pl_error() once. */
#ifndef PLATEAU_CLI_H
#define PLATEAU_CLI_H

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_synth_sae(int argc, char **argv);

/* Print "plateau: <pl_error()>" on stderr and return PL_EXIT_INPUT. */
int cli_fail(void);
/* Print "plateau <cmd>: <message>" and the subcommand's usage line, return PL_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *usage, const char *fmt, ...);
/* Strict integer parsing for flags: the whole string must be a number in [lo, hi]. */
int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out);

/* The arguments of `plateau run` and `plateau config` (run_args.c). */
#include "plateau/sweep.h"
typedef struct {
    int allow_get;       /* in: accept --get section.key (plateau config) */
    const char *config, *output, *get;
    char **sets;         /* malloc'ed: free it */
    int n_sets;
    pl_run_options opt;
} cli_run_args;
/* Parse ARGV into *A (A->allow_get set by the caller). Returns -1 to go on, else the exit code to
 * return (usage errors and --help print their own message). */
int cli_parse_run_args(int argc, char **argv, const char *cmd, const char *usage, cli_run_args *a);

#endif
