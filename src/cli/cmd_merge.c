/* plateau merge OUT.nc IN.nc...: stack per-hook result files along a new `hook` dimension. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/merge.h"

static const char *MERGE_USAGE = "OUT.nc IN.nc...";

int cmd_merge(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: plateau merge %s\n"
                   "Stack the result files of one sweep run once per hook (a Slurm array) along a new\n"
                   "leading 'hook' dimension, in the order given. The files' configs may differ in one key\n"
                   "only (the swept key, normally [perturb] hook). OUT is written atomically.\n",
                   MERGE_USAGE);
            return PL_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage("merge", MERGE_USAGE, "unknown option '%s'", argv[i]);
    }
    if (argc < 3)
        return cli_usage("merge", MERGE_USAGE, "need an output file and at least one input file");
    const char *swept = NULL;
    if (pl_merge(argv[1], argv + 2, argc - 2, &swept) != PL_OK)
        return cli_fail();
    fprintf(stderr, "plateau merge: %d file%s -> %s (swept key: %s)\n", argc - 2, argc > 3 ? "s" : "", argv[1],
            swept && *swept ? swept : "none");
    return PL_EXIT_OK;
}
