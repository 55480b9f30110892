/* The command line shared by `plateau run` and `plateau config`: a config, -o, --set (repeatable)
 * and the run's flags, so that `plateau config` resolves exactly what `plateau run` would run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"

int cli_parse_run_args(int argc, char **argv, const char *cmd, const char *usage, cli_run_args *a)
{
    int allow_get = a->allow_get;
    memset(a, 0, sizeof *a);
    a->allow_get = allow_get;
    a->sets = calloc((size_t)argc, sizeof(char *));
    if (!a->sets) {
        pl_fail("out of memory (command line)");
        return cli_fail();
    }
    int code = -1;
    for (int i = 1; i < argc && code < 0; i++) {
        const char *arg = argv[i];
        int takes_value = !strcmp(arg, "-o") || !strcmp(arg, "--output") || !strcmp(arg, "--set") ||
                          !strcmp(arg, "--ranks") || !strcmp(arg, "--ranks-per-node") || (a->allow_get && !strcmp(arg, "--get"));
        if (takes_value && i + 1 >= argc) {
            code = cli_usage(cmd, usage, "%s needs a value", arg);
        } else if (!strcmp(arg, "--set")) {
            const char *set = argv[++i], *eq = strchr(set, '='), *dot = strchr(set, '.');
            /* the form is the command line's; whether the key and value are right, the config's */
            if (!eq || !dot || dot == set || dot > eq || dot + 1 == eq)
                code = cli_usage(cmd, usage, "--set '%s': expected section.key=value", set);
            else
                a->sets[a->n_sets++] = argv[i];
        } else if (!strcmp(arg, "--ranks")) {
            long ranks;
            if (cli_parse_int("--ranks", argv[++i], 1, 1 << 20, &ranks) != PL_OK)
                code = cli_usage(cmd, usage, "%s", pl_error());
            a->opt.dry_run_ranks = (int)ranks;
        } else if (!strcmp(arg, "--ranks-per-node")) {
            long per_node;
            if (cli_parse_int("--ranks-per-node", argv[++i], 1, 1 << 20, &per_node) != PL_OK)
                code = cli_usage(cmd, usage, "%s", pl_error());
            a->opt.dry_run_ranks_per_node = (int)per_node;
        } else if (!strcmp(arg, "--dry-run")) {
            a->opt.dry_run = 1;
        } else if (takes_value && !strcmp(arg, "--get")) {
            a->get = argv[++i];
        } else if (takes_value) {
            a->output = argv[++i];
        } else if (!strcmp(arg, "--resume")) {
            a->opt.resume = 1;
        } else if (!strcmp(arg, "--naive")) {
            a->opt.naive = 1;
        } else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            a->opt.quiet = 1;
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            printf("usage: plateau %s %s\n", cmd, usage);
            code = PL_EXIT_OK;
        } else if (arg[0] == '-' && arg[1]) {
            code = cli_usage(cmd, usage, "unknown option '%s'", arg);
        } else if (!a->config) {
            a->config = arg;
        } else {
            code = cli_usage(cmd, usage, "more than one config ('%s' and '%s')", a->config, arg);
        }
    }
    if (code < 0 && !a->config)
        code = cli_usage(cmd, usage, "no config file given");
    if (code < 0 && a->opt.dry_run_ranks && !a->opt.dry_run && !a->allow_get)
        code = cli_usage(cmd, usage, "--ranks is for --dry-run");
    if (code < 0 && a->opt.dry_run_ranks_per_node && !a->opt.dry_run && !a->allow_get)
        code = cli_usage(cmd, usage, "--ranks-per-node is for --dry-run");
    if (code >= 0) {
        free(a->sets);
        a->sets = NULL;
    }
    return code;
}
