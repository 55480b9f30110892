/* plateau run CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet] [--dry-run]
 * Parses the command line only; the sweep (and MPI) lives in plateau_sweep, the writer in plateau_io. */
#include <stdlib.h>

#include "cli.h"
#include "plateau/merge.h"
#include "plateau/result_file.h"
#include "plateau/sweep.h"

const cli_spec CLI_RUN = {
    "run",
    "CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--resume] [--naive] [--quiet] [--dry-run [--ranks N] "
    "[--ranks-per-node N]]",
    "Run a sweep: the plateau and sensitive-direction curves of one hook, written as one NetCDF file.",
    "Start it under mpirun for several ranks (mpirun -n 4 plateau run CONFIG.ini). Progress goes to stderr.\n"
    "The config's keys are in docs/config.md (plateau help --config-md) and the man page's CONFIG section;\n"
    "plateau config prints the resolved config.\n"
    "--dry-run prints the resolved config, the units and evaluations, the memory per rank, on rank 0 and\n"
    "per node (--ranks R ranks, --ranks-per-node N of them a node: ceil(R / N) nodes; default all on one)\n"
    "and a time estimate from a short measured calibration, and writes nothing.",
    (const cli_option[]){
        {"--output", "-o", "OUT.nc", "the result file (replaces [output] path)"},
        {"--set", NULL, "SECTION.KEY=VALUE", "set a config key (repeatable; applied in order, after the file)"},
        {"--resume", NULL, NULL, "continue from the checkpoint of an interrupted run"},
        {"--naive", NULL, NULL, "every evaluation by a full patched forward (slow; the fast path's check)"},
        {"--quiet", "-q", NULL, "no progress lines"},
        {"--dry-run", NULL, NULL, "say what the run would do, its memory and time; write nothing"},
        {"--ranks", NULL, "N", "with --dry-run: estimate for N ranks (default: the ranks it runs on)"},
        {"--ranks-per-node", NULL, "N", "with --dry-run: N of the ranks on each node (default: all on one): the nodes and "
                                        "memory per node"},
        {NULL, NULL, NULL, NULL}},
    "3 fault: a rank died, stopped answering or failed (the checkpoint is written first)\n"
    "75 checkpointed after SIGTERM, SIGINT or SIGUSR1: run again with --resume"};

int cmd_run(int argc, char **argv)
{
    int code = cli_prepare(&CLI_RUN, &argc, &argv);
    if (code >= 0)
        return code;
    cli_run_args a = {0};
    code = cli_parse_run_args(argc, argv, "run", CLI_RUN.synopsis, &a);
    if (code >= 0)
        return code;
    a.opt.write_result = pl_result_write; /* io writes what the sweep hands over */
    a.opt.stack_models = pl_merge_models; /* and stacks a model series' files */
    a.opt.check_model_part = pl_merge_check_part; /* (a resumed series' finished ones checked first) */
    code = pl_sweep_main(&argc, &argv, a.config, a.sets, a.n_sets, a.output, &a.opt);
    free(a.sets);
    return code;
}
