/* plateau run CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet]
 * Parses the command line only; the sweep (and MPI) lives in plateau_sweep. */
#include <stdlib.h>

#include "cli.h"
#include "plateau/sweep.h"

static const char *USAGE = "CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet]";

int cmd_run(int argc, char **argv)
{
    cli_run_args a = {0};
    int code = cli_parse_run_args(argc, argv, "run", USAGE, &a);
    if (code >= 0)
        return code;
    code = pl_sweep_main(&argc, &argv, a.config, a.sets, a.n_sets, a.output, &a.opt);
    free(a.sets);
    return code;
}
