/* Merging per-hook result files (one per Slurm array task) into one file with a leading `hook`
 * dimension. The inputs must come from the same sweep except for one config key, the swept key
 * (normally [perturb] hook); see src/cluster/merge.c for the exact rules.
 */
#ifndef PLATEAU_MERGE_H
#define PLATEAU_MERGE_H

/* Stack IN_PATHS[0..n_in) along a new `hook` dimension (in the order given) and write OUT_PATH
 * atomically (a temporary file in the same directory, renamed on success; on failure OUT_PATH is
 * untouched). Returns PL_OK, or PL_ERR with a message naming the file, key or variable at fault.
 * On success *SWEPT_KEY (if not NULL) points to a static "section.key" string, or "" when only one
 * file was given. */
int pl_merge(const char *out_path, char *const *in_paths, int n_in, const char **swept_key);

#endif
