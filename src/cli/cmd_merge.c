/* plateau merge OUT.nc IN.nc... [--force]: stack per-hook result files along a new `hook` dimension, or
 * one hook's single-model files along `model` (src/io/merge.c chooses). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/merge.h"
#include "plateau/result_file.h"
#include "plateau/sweep.h"

const cli_spec CLI_MERGE = {
    "merge", "OUT.nc IN.nc... [--force]",
    "Stack per-hook result files along a new leading 'hook' dimension, or per-model ones along 'model'.",
    "The result files of one sweep run once per hook (a Slurm array), in the order given. Their configs\n"
    "may differ in one key only (the swept key, normally [perturb] hook). Files of one hook that differ\n"
    "only in their model (a model series run as one job per model) are stacked along 'model' instead,\n"
    "labelled by [model] label or the model dir's name, with model_path, model_sha256 and model_step.\n"
    "OUT is written atomically (a temporary file, then renamed); an existing OUT is refused unless --force.",
    (const cli_option[]){{"--force", NULL, NULL, "replace an existing OUT (atomically)"}, {NULL, NULL, NULL, NULL}},
    NULL};

int cmd_merge(int argc, char **argv)
{
    int code = cli_prepare(&CLI_MERGE, &argc, &argv);
    if (code >= 0)
        return code;
    char *files[argc > 1 ? argc : 1];
    int n_files = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            force = 1;
        else
            files[n_files++] = argv[i];
    }
    if (n_files < 2)
        return cli_usage("merge", CLI_MERGE.synopsis, "need an output file and at least one input file");
    const char *swept = NULL;
    if (pl_merge(files[0], files + 1, n_files - 1, force, &swept) != PL_OK)
        return cli_fail();
    fprintf(stderr, "plateau merge: %d file%s -> %s (swept key: %s)\n", n_files - 1, n_files > 2 ? "s" : "", files[0],
            swept && *swept ? swept : "none");
    return PL_EXIT_OK;
}

int cli_print_schema_json(FILE *out)
{
    const char *metrics[64], *scores[64];
    int alpha_valued[64], n_metrics = 0, n_scores = 0;
    while (n_metrics < 64 && (metrics[n_metrics] = pl_metric_name(n_metrics)))
        n_metrics++;
    while (n_scores < 64 && (scores[n_scores] = pl_score_name(n_scores, &alpha_valued[n_scores])))
        n_scores++;
    if (pl_result_schema_json(out, metrics, n_metrics, scores, alpha_valued, n_scores) != 0 || fflush(out) != 0) {
        fprintf(stderr, "plateau help: cannot write the schema\n");
        return PL_EXIT_INPUT;
    }
    return PL_EXIT_OK;
}
