/* plateau run CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet]
 * Parses the command line only; the sweep (and MPI) lives in plateau_sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/sweep.h"

static const char *USAGE = "CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet]";

int cmd_run(int argc, char **argv)
{
    const char *config = NULL, *output = NULL;
    pl_run_options opt = {0};
    char **sets = calloc((size_t)argc, sizeof(char *));
    int n_sets = 0;
    if (!sets)
        return cli_fail();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                free(sets);
                return cli_usage("run", USAGE, "%s needs a value", a);
            }
            if (a[2] == 's')
                sets[n_sets++] = argv[++i];
            else
                output = argv[++i];
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else if (!strcmp(a, "--resume")) {
            opt.resume = 1;
        } else if (!strcmp(a, "--naive")) {
            opt.naive = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            opt.quiet = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(sets);
            printf("usage: plateau run %s\n", USAGE);
            return PL_EXIT_OK;
        } else if (a[0] == '-' && a[1]) {
            free(sets);
            return cli_usage("run", USAGE, "unknown option '%s'", a);
        } else if (!config) {
            config = a;
        } else {
            free(sets);
            return cli_usage("run", USAGE, "more than one config ('%s' and '%s')", config, a);
        }
    }
    if (!config) {
        free(sets);
        return cli_usage("run", USAGE, "no config file given");
    }
    int code = pl_sweep_main(&argc, &argv, config, sets, n_sets, output, &opt);
    free(sets);
    return code;
}
