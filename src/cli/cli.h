/* Subcommands of the plateau CLI. Each parses its own arguments (argv[0] is the subcommand name),
 * calls into the library, prints results on stdout, and returns a process exit code. On failure a
 * subcommand prints nothing itself: it returns cli_fail(), which prints pl_error() once. */
#ifndef PLATEAU_CLI_H
#define PLATEAU_CLI_H

#include <stdio.h>

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

/* A command's options and help: the one table its parser accepts, --help prints and the man page is
 * made of (cli_help.c). */
typedef struct {
    const char *name;    /* "--top" */
    const char *alias;   /* "-o", or NULL */
    const char *metavar; /* "K": takes a value (--top K, --top=K); NULL: a flag */
    const char *help;    /* one line */
} cli_option;
/* An option's help that is the list of model families: cli_option_help writes it from the registry
 * (pl_model_families), so no table here spells them. */
extern const char CLI_HELP_FAMILIES[];
/* O's help line as printed (--help, the man page). */
const char *cli_option_help(const cli_option *o);

typedef struct {
    const char *name;          /* "logits" */
    const char *synopsis;      /* arguments after the command name */
    const char *summary;       /* one line for `plateau help` */
    const char *description;   /* what it does (lines of at most 100 characters) */
    const cli_option *options; /* ended by an entry with name NULL; -h/--help is implicit */
    const char *exit_codes;    /* exit codes beyond 0, 1 and 2 ("3 ...\n75 ..."), or NULL */
} cli_spec;

/* Every command's spec, in `plateau help`'s order (main.c). */
extern const cli_spec CLI_INFO, CLI_VERIFY, CLI_TOKENIZE, CLI_LOGITS, CLI_GENERATE, CLI_SYNTH, CLI_RUN, CLI_CONFIG,
    CLI_MERGE, CLI_SYNTH_SAE;

/* Check ARGV (argv[0]: the command) against SPEC before a command parses it: --help/-h prints the
 * help (exit 0); an option not in the table, a missing value or a value given to a flag is a usage
 * error (one line, exit 1). Rewrites --opt=value as --opt value (GNU style) in a new *ARGV (freed at
 * exit) so the command's parser sees one form. "--" ends the options: it and the words after it
 * reach the command unchecked (tokenize takes them as arguments; the others refuse "--"). Returns -1 to go on, else the
 * exit code. */
int cli_prepare(const cli_spec *spec, int *argc, char ***argv);
/* The help of SPEC on OUT. */
void cli_print_help(const cli_spec *spec, FILE *out);
/* The man page (roff) of the commands SPECS[N] on OUT. */
void cli_print_man(const cli_spec *const *specs, int n, FILE *out);
/* The config reference (docs/config.md) as markdown, from the config's key table. */
void cli_print_config_md(FILE *out);

/* `plateau help --schema-json`: the result file's schema (io's table) with the experiment's metrics
 * and scores in their code order, as JSON on OUT (cmd_merge.c). Returns the exit code. */
int cli_print_schema_json(FILE *out);
/* Print "plateau: <pl_error()>" on stderr and return PL_EXIT_INPUT. */
int cli_fail(void);
/* Print "plateau <cmd>: <message> (usage: plateau <cmd> <usage>)" as one line, return PL_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *usage, const char *fmt, ...);
/* Strict integer parsing for flags: the whole string must be a number in [lo, hi]. */
int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out);

/* Check OUT_DIR of generator CMD (synth, synth-sae) before it writes: missing or empty is fine; a
 * symbolic link or a non-directory is refused; a non-empty dir needs FORCE, and even then only one whose
 * MARKER file (config.json, cfg.json: a regular file) says "plateau_synthetic": true, so that real
 * weights are never replaced by random ones (cmd_model.c). */
int cli_generator_dir(const char *cmd, const char *out_dir, const char *marker, int force);

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
