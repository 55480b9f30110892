/* The io library: a run's result as a NetCDF-4 file (the schema: src/io/schema.c,
 * docs/result-format.md), and the merge of per-hook files (plateau/merge.h). */
#ifndef PLATEAU_RESULT_FILE_H
#define PLATEAU_RESULT_FILE_H

#include <stdio.h>

#include "plateau/result.h"

/* Write R to PATH: built in memory, then written atomically (pl_write_file_atomic). A
 * pl_result_writer (the CLI registers it for the sweep). */
int pl_result_write(const char *path, const pl_result *r);

/* The result schema as JSON on OUT, with the experiment's metrics and scores in their code order
 * (METRICS[n_metrics], SCORES[n_scores], ALPHA_VALUED[n_scores]): `plateau help --schema-json`, what
 * the Python reader's _schema.py is generated from. Returns 0, or -1 on a write error. */
int pl_result_schema_json(FILE *out, const char *const *metrics, int n_metrics, const char *const *scores,
                          const int *alpha_valued, int n_scores);

#endif
