/* Internals of the sweep shared by its modules (config, data, stats, eval, checkpoint, output,
 * scheduler). Only scheduler.c includes mpi.h and only output.c includes netcdf.h. */
#ifndef PLATEAU_SWEEP_INTERNAL_H
#define PLATEAU_SWEEP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/sweep.h"
#include "../experiment/experiment.h"

/* "FILE:LINE" or "--set ..." where (section, key) got its value (the config file for a default). */
const char *pl_sweep_config_origin(const pl_sweep_config *cfg, const char *section, const char *key);

/* ------------------------------------------------------------ the sweep's shared state (batches.c) */

typedef struct {
    pl_sweep_config *cfg;
    const pl_model *model;
    int C, T, V;
    int resid_index, read_index, pos;
    int P, S, NB, ND, NM, steps;
    long n_units;
    int batch_units;    /* units per batch: consecutive units evaluated in one fast-path call */
    long n_batches;
    double *alpha;      /* [steps] */
    int *tokens;        /* [P, T] sweep prompts */
    float *real_act;    /* [P, C] real activation at (hook, pos) of each sweep prompt */
    double *mu;         /* [C] */
    double *chol;       /* [C, C] */
    double trace;       /* tr Sigma */
    pl_pd_report pd;
    int *partner;       /* [P, S] (-1 when real_other is not swept) */
    float *file_rows[PL_MAX_DIRECTIONS]; /* [rows, C] for file: directions */
    long file_n_rows[PL_MAX_DIRECTIONS];
    int naive;
} pl_sweep;

typedef struct {
    int p, b, d, s; /* prompt, base index, direction index, sample */
} pl_unit_id;

static inline pl_unit_id pl_unit_decode(const pl_sweep *sw, long u)
{
    pl_unit_id id;
    id.s = (int)(u % sw->S);
    u /= sw->S;
    id.d = (int)(u % sw->ND);
    u /= sw->ND;
    id.b = (int)(u % sw->NB);
    id.p = (int)(u / sw->NB);
    return id;
}

/* Rows per fast-path call. A batch is a fixed run of consecutive units (batch k holds units
 * [k * batch_units, (k + 1) * batch_units)), whatever the number of ranks: every batch goes through
 * one pl_patch_eval_groups call of the same shape, so its numbers do not depend on who computes it.
 * ~1000 rows amortise OpenBLAS's packing of each weight matrix (measured: 101 rows reach ~70 % of
 * the sgemm peak, 1000 rows ~90 %) at ~200 MB of logits per rank for GPT-2's vocabulary. */
#define PL_BATCH_ROWS 1024

/* A rank's reusable buffers for one batch. */
typedef struct {
    float *X, *logits, *read;  /* [batch_units * steps, C], [.., V], [.., C] */
    double *scratch;
} pl_unit_cache;

void pl_unit_cache_init(pl_unit_cache *c);
void pl_unit_cache_free(pl_unit_cache *c);

/* Partners of every (prompt, sample) and the alpha grid; needs cfg, P, S, steps set. */
int pl_sweep_setup_grid(pl_sweep *sw);
/* Read every file: direction (rows of a .npy or safetensors matrix, C columns). */
int pl_sweep_load_file_directions(pl_sweep *sw);
/* Set batch_units and n_batches from steps and n_units. */
void pl_sweep_set_batches(pl_sweep *sw);
/* First unit and unit count of batch B. */
long pl_batch_first_unit(const pl_sweep *sw, long b, int *n_units);
/* Evaluate batch B: OUT[n_units, NM, steps] (metrics in config order), its units' clean runs in one
 * batched forward and all their steps in one grouped fast-path call (--naive: a full patched
 * forward per step). */
int pl_batch_eval(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out);
/* The unit's step vectors X[steps, C] (exposed for tests). */
int pl_unit_steps(const pl_sweep *sw, pl_unit_id id, float *X);
void pl_sweep_free(pl_sweep *sw);

/* ------------------------------------------------------------ data (data.c) */

/* Select P sweep prompts and P_cov covariance prompts (disjoint, seeded) of exactly T tokens from
 * the data file. tokens[P + P_cov, T]: sweep prompts first. Prints the skipped count on stderr
 * when VERBOSE. */
int pl_data_load(pl_sweep_config *cfg, int V, int **tokens, int verbose);

/* ------------------------------------------------------------ results (results.c) */

typedef struct {
    const pl_sweep *sw;
    float *curves;     /* [n_units, NM, steps]: the full table */
    unsigned char *done; /* [n_units] */
    long n_done;
    /* derived (pl_results_finish), all (base, direction, ...) in config order */
    double *mean, *median, *quant; /* [NM][NB, ND, steps]; quant [NM][Q, NB, ND, steps] */
    int *count;                    /* [NM][NB, ND, steps] */
    float *onset, *slope_alpha, *sharp; /* [NM][NB, ND, P, S] */
} pl_results;

int pl_results_init(pl_results *r, const pl_sweep *sw);
void pl_results_free(pl_results *r);
/* Scores and statistics from the complete table, in a fixed order. */
int pl_results_finish(pl_results *r);

/* ------------------------------------------------------------ checkpoint (checkpoint.c) */

/* Write the completed units of R to PATH atomically (PATH.tmp.<pid> then rename). */
int pl_checkpoint_write(const char *path, const pl_results *r, const char *config_text,
                        const char *model_sha256, const char *data_sha256);
/* Load PATH into R, refusing a checkpoint of another config, model or data (the message says which
 * differs and how). */
int pl_checkpoint_read(const char *path, pl_results *r, const char *config_text, const char *model_sha256,
                       const char *data_sha256);

/* ------------------------------------------------------------ output (output.c) */

typedef struct {
    const char *config_text;     /* full resolved config */
    const char *model_sha256;
    int synthetic_model;
    int n_ranks;
    double evals_per_second;
    const char *sigma_note;      /* how Sigma was made positive definite, or "" */
} pl_output_meta;

/* Write the NetCDF file (temp name, then rename). */
int pl_output_write(const char *path, const pl_results *r, const pl_output_meta *meta);


#endif
