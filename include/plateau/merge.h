/* Merging per-hook result files (one per Slurm array task) into one file with a leading `hook`
 * dimension, or one hook's files of several models (a model series) along a leading `model` one. The inputs must come from the same sweep except for one config key, the swept key
 * (normally [perturb] hook); see src/io/merge.c for the exact rules.
 */
#ifndef PLATEAU_MERGE_H
#define PLATEAU_MERGE_H

/* Stack IN_PATHS[0..n_in) along a new `hook` dimension, or `model` when two or more share one hook (in the order given) and write OUT_PATH
 * atomically (a temporary file in the same directory, renamed on success; on failure OUT_PATH is
 * untouched). An existing OUT_PATH is refused unless FORCE (after the inputs are checked). Returns PL_OK, or PL_ERR with a message naming the file, key or variable at fault.
 * On success *SWEPT_KEY (if not NULL) points to a static "section.key" string, or "" when only one
 * file was given. */
int pl_merge(const char *out_path, char *const *in_paths, int n_in, int force, const char **swept_key);

/* A model series run's stacker (pl_result_stacker, registered by `plateau run`): PARTS[0..n), the
 * single-model files of models LABELS/PATHS (each part's [model] label and path must be those), stacked
 * along a leading `model` dimension into OUT_PATH (replaced atomically). Its history is COMMAND_LINE
 * (the run's "plateau run ARGS"), not a merge the user never ran. */
int pl_merge_models(const char *out_path, char *const *parts, int n, char *const *labels, char *const *paths,
                    const char *command_line);

/* A model series' finished part PART (pl_result_part_checker, registered by `plateau run`): PL_OK when
 * it is a single-model result of model K + 1, LABEL at PATH, whose config agrees with CONFIG (model
 * K + 1's run's resolved text, NULL: not checked) in every key of a run's identity, as pl_merge_models
 * would accept it beside this run's other parts; else PL_ERR naming the part and what differs. What
 * --resume checks before any model runs. TOKENS_SHA256: the sha256 of the part's `tokens` ("" if none). */
int pl_merge_check_part(const char *part, int k, const char *label, const char *path, const char *config,
                        char tokens_sha256[65]);

/* The same on inputs held in memory (BYTES[i] of LENS[i] bytes, named NAMES[i] in messages; each
 * must stay valid during the call): *OUT (malloc'ed, *OUT_LEN bytes) is the merged file. What
 * pl_merge does after reading its inputs, and what the fuzz target drives. */
#include <stddef.h>
int pl_merge_buffers(const char *out_name, char *const *names, void *const *bytes, const size_t *lens, int n_in,
                     void **out, size_t *out_len, const char **swept_key);

#endif
