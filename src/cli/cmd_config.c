/* plateau config CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--get section.key]
 * The resolved config, as `plateau run` with the same arguments would run it (every key, defaults
 * filled, --set and -o applied), or one value of it: the one INI reader for scripts (the Slurm
 * scripts ask it for the checkpoint path and the threads). Run flags (--resume, --naive, --quiet)
 * are accepted and ignored, so a run's arguments can be passed unchanged. [readout] read_hook stays
 * empty when not given: its default, the model's last block, needs the model. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/sweep.h"

static const char *USAGE = "CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--get section.key]";

int cmd_config(int argc, char **argv)
{
    cli_run_args a = {.allow_get = 1};
    int code = cli_parse_run_args(argc, argv, "config", USAGE, &a);
    if (code >= 0)
        return code;
    pl_sweep_config cfg;
    if (pl_sweep_config_load(&cfg, a.config, a.sets, a.n_sets, a.output) != PL_OK) {
        free(a.sets);
        return cli_fail();
    }
    free(a.sets);
    char *text = a.get ? pl_sweep_config_value(&cfg, a.get) : pl_sweep_config_text(&cfg, 0);
    pl_sweep_config_free(&cfg);
    if (!text)
        return cli_fail();
    printf(a.get ? "%s\n" : "%s", text);
    free(text);
    return fflush(stdout) == 0 ? PL_EXIT_OK : PL_EXIT_INPUT;
}
