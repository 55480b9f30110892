/* The sweep: plateaus and sensitive directions of one hook, written to NetCDF.
 *
 * A run reads an INI config (every key in docs/config.md), fits mu and Sigma of the real
 * activations at the hook, and evaluates work units (prompt x base x direction kind x sample): each
 * unit is one curve of `steps` perturbed evaluations per metric. pl_sweep_main() owns MPI (it is
 * the only entry point that initialises it) and returns a process exit code (plateau/error.h).
 */
#ifndef PLATEAU_SWEEP_H
#define PLATEAU_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/result.h"

enum { PL_BASE_REAL, PL_BASE_SYNTHETIC, PL_BASE_SAE_RECON, PL_BASE_SAE_BAG, PL_BASE_SAE_COSINE, PL_N_BASE_KINDS }; /* append only: a kind's number keys streams */
enum { PL_METRIC_KL, PL_METRIC_JSD, PL_METRIC_L2, PL_METRIC_COSINE, PL_METRIC_JS_DIST, PL_METRIC_CE_LOSS,
       PL_METRIC_SAE_L0, PL_METRIC_SAE_RECON_ERROR, PL_N_METRICS };
enum { PL_SAE_SIGN_NEGATIVE, PL_SAE_SIGN_POSITIVE };
enum { PL_STEP_TO_TARGET, PL_STEP_FIXED_NORM, PL_STEP_ABSOLUTE, PL_STEP_ARC, PL_N_STEP_MODES };
enum { PL_BASIS_RAW, PL_BASIS_CENTERED, PL_N_RESIDUAL_BASES };
enum { PL_GRID_LINEAR, PL_GRID_LOG, PL_N_ALPHA_GRIDS };
enum { PL_STEP_REF_OWN, PL_STEP_REF_REAL, PL_N_STEP_REFERENCES };
enum { PL_DATA_AUTO, PL_DATA_JSONL, PL_DATA_TEXT, PL_DATA_BIN };
enum { PL_SAMPLING_DOCUMENT_START, PL_SAMPLING_RANDOM_WINDOW };
enum { PL_BOS_AUTO, PL_BOS_TRUE, PL_BOS_FALSE };
/* The config's names of these values, indexed by the enums above (step modes and bases: steps.c, the
 * experiment's; sampling: config.c). */
extern const char *const PL_STEP_MODE_NAMES[PL_N_STEP_MODES];
extern const char *const PL_RESIDUAL_BASIS_NAMES[PL_N_RESIDUAL_BASES];
extern const char *const PL_ALPHA_GRID_NAMES[PL_N_ALPHA_GRIDS];
extern const char *const PL_STEP_REFERENCE_NAMES[PL_N_STEP_REFERENCES];
extern const char *const PL_SAMPLING_NAMES[];
/* [perturb] position: one position, a range A:B (half-open) or `all` (whole contexts, issue 18) */
enum { PL_POSITION_ONE, PL_POSITION_RANGE, PL_POSITION_ALL };
#define PL_POSITION_TO_END INT32_MAX /* A: with no B */
enum { PL_PER_POSITION_OWN, PL_PER_POSITION_SHARED };
enum { PL_READ_POSITIONS_EACH, PL_READ_POSITIONS_MEAN };
enum { PL_FIT_POSITIONS_SWEEP, PL_FIT_POSITIONS_ALL };
/* [readout] position = perturbed (the default): read where the perturbation is */
#define PL_READ_AT_PERTURBED INT32_MIN

#define PL_MAX_DIRECTIONS 16
#define PL_MAX_QUANTILES 32
#define PL_MAX_ALPHAS 2048 /* values of an explicit [perturb] alphas list */

typedef struct {
    int kind;      /* index into the experiment's table of direction kinds (PL_DIRECTION_KINDS) */
    char *label;   /* coordinate value: "isotropic", ..., "file:<basename>" */
    char *path;    /* file: only */
    char *tensor;  /* file:PATH#tensor, or NULL */
} pl_direction_spec;

/* One model of a series ([model] path = DIR1, DIR2, ... or [model] paths = FILE): its dir, its label
 * (the `model` coordinate: unique in the series) and its training step (-1: not given). */
typedef struct {
    char *path, *label;
    int64_t step;
} pl_model_entry;

/* A model's label by default: DIR's last component (trailing slashes dropped), into OUT[SIZE]. */
void pl_model_default_label(const char *dir, char *out, size_t size);

/* A parsed, validated config. Every string is owned. */
typedef struct {
    char *file;                 /* the config file as given */
    /* [model] */
    char *model_path;           /* the model; a series' first model */
    int n_models;               /* a series (every result over `model`): models[0 .. n_models - 1]; 0: one model */
    pl_model_entry *models;
    char *models_file;          /* [model] paths, or NULL */
    char *model_label;          /* [model] label of a single model, or NULL: the dir's name */
    int64_t model_step;         /* [model] step of a single model, -1: not given */
    char *tokenizer_path;       /* [model] tokenizer, or NULL: the model's own */
    /* [data] */
    char *data_path;
    int data_format;            /* PL_DATA_*, resolved from the extension when auto (never AUTO) */
    int n_prompts, n_ctx;
    uint64_t data_seed;
    int sampling;               /* PL_SAMPLING_* */
    int token_bytes;            /* .bin token width: 2 (uint16) or 4 (uint32) */
    int bos;                    /* PL_BOS_*: a BOS token first in every prompt */
    /* [perturb] */
    char *hook;
    int position;               /* -1 = last; PL_POSITION_RANGE: A (negative: from the end) */
    int position_kind;          /* PL_POSITION_* */
    int position_end;           /* PL_POSITION_RANGE: B, one past the last (negative: from the end; or TO_END) */
    int per_position;           /* PL_PER_POSITION_*: each position its own direction, or one shared */
    int fit_positions;          /* PL_FIT_POSITIONS_*: mu, Sigma from the sweep's positions or all non-BOS */
    double sigma_ridge;         /* added to Sigma's diagonal before it is factored (Lee & Heimersheim: 0.01) */
    int n_bases, bases[PL_N_BASE_KINDS];
    int n_dirs;
    pl_direction_spec dirs[PL_MAX_DIRECTIONS];
    int slice;                  /* [perturb] slice: dirs[0], dirs[1] span a 2-D (alpha, beta) grid per unit */
    int n_directions, steps;
    double alpha_max;
    int alpha_grid;             /* PL_GRID_*: linspace(0, alpha_max, steps) or 0 + a geometric grid */
    double alpha_min;           /* the log grid's first nonzero alpha (0 for linear) */
    int n_alphas;               /* [perturb] alphas: alphas[0 .. n_alphas - 1] (alphas[0] = 0), or 0: none */
    double alphas[PL_MAX_ALPHAS];
    int step_mode;              /* PL_STEP_* */
    double norm_scale;          /* fixed_norm: alpha = 1 moves by norm_scale times the reference's norm */
    int step_reference;         /* PL_STEP_REF_*: whose norm fixed_norm steps by (0: the base's own) */
    int center_direction;       /* d -= mean(d) before scaling */
    int residual_basis;         /* PL_BASIS_* */
    int cov_prompts;
    /* [readout] */
    int n_metrics, metrics[PL_N_METRICS];
    char *read_hook;            /* NULL until resolved against the model (default: last block) */
    int read_position;          /* PL_READ_AT_PERTURBED or a position (negative: from the end) */
    int read_positions;         /* PL_READ_POSITIONS_*: several perturbed positions: each, or their mean */
    double onset_threshold;
    double thresholds[PL_N_METRICS]; /* alpha_at_threshold per metric; NaN: none */
    int nl_first, nl_last;      /* nonlinearity_alpha: the line through steps nl_first..nl_last */
    double nl_tolerance;        /* ... and the relative deviation that ends it */
    int nl_rule;                /* PL_NL_* (experiment.h): least_squares or teren */
    double plateau_threshold;   /* plateau_length's l2 threshold (NaN: none) */
    double giglemiani_nl_tolerance; /* giglemiani_nl_alpha's relative deviation */    /* [output] */
    char *output_path;
    int raw_curves;
    int n_quantiles;
    double quantiles[PL_MAX_QUANTILES];
    int activations;            /* store real activations, mu and Sigma */
    int vectors;                /* store the Fisher eigenvectors and the optima's directions (issue 17) */
    int bootstrap;              /* resamples of the paired comparisons */
    int histogram_bins;
    /* [sae] */
    char *sae_path;             /* a SAELens dir, or NULL: no SAE */
    char *sae_sha256;           /* pinned by the config, or filled in once the SAE is open; NULL before */
    double sae_active_fraction; /* features above this fraction of the base's largest activation are active */
    int sae_sign;               /* PL_SAE_SIGN_*: sae_active's d = -act W_dec[f] or +act W_dec[f] */
    /* [run] */
    uint64_t seed;
    double checkpoint_every;
    char *checkpoint_path;
    double worker_timeout;
    int threads;                /* OpenBLAS threads of every rank: the bits depend on it, not on the machine */
    int shared_weights;         /* under MPI: converted weights in one shared window per node */
    int nonfinite_mark;         /* [run] nonfinite = mark: non-finite evaluations are stored as NaN */
    /* [fisher] (issue 17) */
    int fisher_k;               /* eigenpairs of F per (prompt, base); 0: none unless `fisher` is listed */
    int fisher_n_pcs;           /* leading principal components of Sigma the eigenvectors and optima are
                                 * compared with (fisher_pc_cos, optimum_pc_cos); 0: none */
    /* [optimize] (issue 17: the `optimized` kind's local optima of KL on a sphere) */
    double opt_radius_alpha;    /* the sphere's radius in the step mode's units; NaN: not given */
    int opt_starts, opt_start_kind, opt_orthogonal, opt_max_iterations;
    double opt_tolerance, opt_distinct_cos;

    /* where each key's value came from, for messages: "FILE:LINE", "--set ...", or "FILE" (default) */
    char *origin[96];
} pl_sweep_config;

/* Parse PATH, apply SETS[i] ("section.key=value") in order, and OUTPUT (from -o; may be NULL).
 * Errors: "FILE:LINE: [section] key: what is wrong" or "--set section.key=value: ...". */
int pl_sweep_config_load(pl_sweep_config *cfg, const char *path, char *const *sets, int n_sets,
                         const char *output);
/* The same from TEXT[LEN] (a config file's contents, or a result's `config` attribute); NAME stands
 * for the file in messages. */
int pl_sweep_config_parse(pl_sweep_config *cfg, const char *name, const char *text, size_t len, char *const *sets,
                          int n_sets, const char *output);
void pl_sweep_config_free(pl_sweep_config *cfg);

/* The keys, in the order of the resolved text: key I's section and name, and whether it is part of
 * a run's identity (HASHED: what a checkpoint must match and merged files must share). */
int pl_sweep_config_n_keys(void);
void pl_sweep_config_key(int i, const char **section, const char **key, int *hashed);
/* Key I's reference, from the table that parses it (markdown: `code`, [text](link)): the docs'
 * config reference (plateau help --config-md, docs/config.md) and the man page are made of it. */
typedef struct {
    const char *section, *key;
    char def[128];    /* the default as the docs write it: "`auto`", "1000", "(required)" */
    char values[512]; /* what the key takes: "an integer in [2, 10000000]", "one of `a`, `b`" */
    const char *doc;  /* what it means */
    int hashed;       /* part of the run's identity (fixed across a resume, shared by merged files) */
} pl_config_key_doc;
void pl_sweep_config_key_doc(int i, pl_config_key_doc *out);
/* 1 when key I was given (in the text or by --set), 0 when it has its default. */
int pl_sweep_config_given(const pl_sweep_config *cfg, int i);
/* The value of NAME ("section.key") as the resolved text writes it (malloc'ed; "" for an unset
 * optional key). NULL with a message when NAME is not a key. */
char *pl_sweep_config_value(const pl_sweep_config *cfg, const char *name);

/* Fill model-dependent defaults (read_hook: the last block's hook_resid_post) and check the hooks
 * (the perturbed point *hook: any TransformerLens hook of forward.h but ln_final.hook_normalized; the
 * readout *read: a residual hook or ln_final.hook_normalized), positions (perturbed *pos, read
 * *read_pos), n_ctx and the residual basis against the model. Errors name the config line of the
 * offending key. */
int pl_sweep_config_resolve(pl_sweep_config *cfg, const pl_model *model, pl_hook_point *hook,
                            pl_hook_point *read, int *pos, int *read_pos);
/* The perturbed positions of [perturb] position for prompts of cfg->n_ctx tokens: *COUNT consecutive
 * ones from *FIRST (1 for a single position). Errors name the config line. */
int pl_sweep_config_positions(const pl_sweep_config *cfg, int *first, int *count);

/* The resolved config as INI text (every key, defaults filled). HASHED_ONLY leaves out the keys
 * that may change between a checkpoint and its resume (output path, checkpoint path and period,
 * worker timeout, model path: the model is identified by its sha256 instead). malloc'ed. */
char *pl_sweep_config_text(const pl_sweep_config *cfg, int hashed_only);

/* A model series' prompts: the sha256 of the token ids every model runs on (pl_tokens_sha256: what the
 * result's `tokens` holds) and the model they were first seen with (its label and index; "" and NULL
 * before the first), from its finished part or its run in this session. */
typedef struct {
    char tokens_sha256[65];
    const char *label;
    int model;
    int from_part;
} pl_series_prompts;

typedef struct {
    int naive;   /* every evaluation by a full patched forward */
    int quiet;   /* no progress lines */
    int resume;  /* continue from the checkpoint */
    int dry_run; /* say what the run would do (units, memory, time), write nothing */
    int dry_run_ranks; /* the ranks --dry-run estimates for (0: the ranks it runs on) */
    int dry_run_ranks_per_node; /* --dry-run's ranks on a node (0: all on one node) */
    pl_result_writer write_result; /* writes the result file (the CLI registers io's pl_result_write):
                                      the sweep does not link the io library */
    pl_result_stacker stack_models; /* a model series: stacks the per-model files along `model` (io's
                                       pl_merge_models) */
    pl_result_part_checker check_model_part; /* --resume of a series: a finished part is the listed
                                                model's (io's pl_merge_check_part) */
    pl_series_prompts *series_prompts; /* a series' model: its prompts must be these (empty: it sets them);
                                          NULL outside a series */
} pl_run_options;

/* The names of metric M and score SC in the experiment's order (PL_METRIC_*, the scores' codes:
 * they key the bootstrap streams), NULL past the last: what the result schema dump lists.
 * *ALPHA_VALUED: the score is in alpha's units. */
const char *pl_metric_name(int m);
const char *pl_score_name(int sc, int *alpha_valued);

/* Run a sweep (MPI_Init .. MPI_Finalize inside). Returns the process exit code; every rank
 * returns the same code. */
int pl_sweep_main(int *argc, char ***argv, const char *config_path, char *const *sets, int n_sets,
                  const char *output, const pl_run_options *opt);

#endif
