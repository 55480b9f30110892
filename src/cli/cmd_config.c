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

const cli_spec CLI_CONFIG = {
    "config", "CONFIG.ini [-o OUT.nc] [--set section.key=value]... [--get section.key]",
    "The resolved config as plateau run with the same arguments would run it, or one value of it.",
    "Every key, defaults filled, --set and -o applied. The run's flags are accepted and ignored, so a run's\n"
    "arguments can be passed unchanged. [readout] read_hook stays empty when not given (its default needs\n"
    "the model).",
    (const cli_option[]){
        {"--output", "-o", "OUT.nc", "the result file (replaces [output] path)"},
        {"--set", NULL, "SECTION.KEY=VALUE", "set a config key (repeatable; applied in order, after the file)"},
        {"--get", NULL, "SECTION.KEY", "print only this key's value"},
        {"--resume", NULL, NULL, "(a run flag: ignored)"},
        {"--naive", NULL, NULL, "(a run flag: ignored)"},
        {"--quiet", "-q", NULL, "(a run flag: ignored)"},
        {"--dry-run", NULL, NULL, "(a run flag: ignored)"},
        {"--ranks", NULL, "N", "(a run flag: ignored)"},
        {"--ranks-per-node", NULL, "N", "(a run flag: ignored)"},
        {NULL, NULL, NULL, NULL}},
    NULL};

int cmd_config(int argc, char **argv)
{
    int code = cli_prepare(&CLI_CONFIG, &argc, &argv);
    if (code >= 0)
        return code;
    cli_run_args a = {.allow_get = 1};
    code = cli_parse_run_args(argc, argv, "config", CLI_CONFIG.synopsis, &a);
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
