/* The science of a sweep, as a researcher reads and extends it: keyed random streams, the Gaussian
 * fit of real activations, the residual basis, bases and direction kinds (one function and one table
 * row each), step modes, metrics, per-curve scores and the statistics over them. Nothing here knows
 * of MPI, checkpoints, batches or NetCDF: the sweep (src/sweep/) calls in, never the other way.
 *
 * Adding a direction kind: write its direction function (and, if it needs them, a setup that loads
 * per-sweep resources and chooses per-unit state, and a release), add a row to PL_DIRECTION_KINDS in
 * directions.c, and document it in docs/science.md. A score: a row in scores.c. A metric: its value
 * function and a row in metrics.c (and its PL_METRIC_* name in plateau/sweep.h). Each step by step:
 * docs/architecture.md. */
#ifndef PLATEAU_EXPERIMENT_H
#define PLATEAU_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "plateau/sweep.h"

/* ------------------------------------------------------------ keyed random streams (rng.c)
 * A stream is a pure function of its key (seed, a, b, c): value i is splitmix64's finaliser of
 * key + (i + 1) * golden gamma. No state is shared between streams, so a unit's numbers do not
 * depend on which rank draws them or in which order. The kind numbers are part of every result's
 * identity: never renumber them, only append. */
enum {
    PL_RNG_DATA = 1,
    PL_RNG_SYNTH_BASE,
    PL_RNG_COV_TARGET,
    PL_RNG_ISO_TARGET,
    PL_RNG_PARTNER,
    PL_RNG_NAIVE_ISO,
    PL_RNG_COV_DIFFERENCE,    /* two samples: stream c = 2 s and 2 s + 1 */
    PL_RNG_REAL_DIFFERENCE,
    PL_RNG_WINDOW,
    PL_RNG_BOOTSTRAP,
    PL_RNG_SAE_FEATURE,       /* the feature of sae_active / sae_feature_scale: c = 2 s + base kind */
    PL_RNG_SAE_ERROR,         /* sae_error_random's direction */
    PL_RNG_SAE_BAG,           /* the sae_bag base's choices among the 10 nearest densities */
    PL_RNG_FISHER_LANCZOS,    /* issue 17: Lanczos's start block at a base: c = base kind + 2 * base sample
                               * (the optimiser's starts are [optimize] start_kind's own draws) */
};

typedef struct {
    uint64_t key, counter;
    int has_spare;
    double spare;
} pl_rng;

void pl_rng_init(pl_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t pl_rng_u64(pl_rng *r);
double pl_rng_uniform(pl_rng *r);            /* [0, 1) with 53 bits */
uint64_t pl_rng_below(pl_rng *r, uint64_t n); /* uniform in [0, n) */
double pl_rng_gaussian(pl_rng *r);           /* standard normal (Box-Muller) */
/* FNV-1a of a string: a stable key for a label (a comparison, a direction). */
uint64_t pl_hash_label(const char *s);

/* ------------------------------------------------------------ the Gaussian fit (gaussian.c) */

typedef struct {
    int n_raised;        /* eigenvalues raised to the floor (0: Sigma was positive definite) */
    double floor;        /* the eigenvalue floor used */
    double min_eig;      /* smallest eigenvalue before the fix */
    double rel_change;   /* ||Sigma' - Sigma||_F / ||Sigma||_F */
} pl_pd_report;

/* mu[C] and the lower Cholesky factor chol[C, C] (row-major) of the covariance of X[N, C] (unbiased,
 * N - 1), in double. Sigma is made positive definite when it is not (eigenvalue floor); *rep says
 * by how much. *trace is tr(Sigma) of the Sigma that is sampled from; SIGMA[C, C] (may be NULL)
 * receives that Sigma. */
int pl_fit_gaussian(const float *X, int N, int C, double *mu, double *chol, double *trace, double *sigma,
                    pl_pd_report *rep);

/* pl_fit_gaussian with RIDGE (>= 0) added to Sigma's diagonal first (0: pl_fit_gaussian's numbers). */
int pl_fit_gaussian_ridge(const float *X, int N, int C, double ridge, double *mu, double *chol, double *trace,
                          double *sigma, pl_pd_report *rep);

/* out[C] = mu + chol @ z, z standard normal from R. */
void pl_sample_gaussian(pl_rng *r, const double *mu, const double *chol, int C, double *out);

/* ------------------------------------------------------------ the residual basis (steps.c)
 * raw: Hugging Face's residual as the model computes it. centered: TransformerLens's basis for
 * LayerNorm models, every vector projected onto the mean-zero subspace (x - mean(x) 1); LayerNorm
 * removes the mean, so the projection changes no output, only norms, L2 and cosine. */
void pl_center(double *v, int C);
void pl_center_float(float *v, int C);

/* ------------------------------------------------------------ the experiment's state */

typedef struct {
    int p, b, d, s; /* prompt, base index, direction index, sample */
} pl_unit_id;

/* Integers a direction kind chooses per unit at setup and the output records, e.g. the partner
 * prompt of real_other: values[(((base * P) + p) * S + s) * width + k] (no base factor unless
 * per_base). */
typedef struct {
    const char *name;       /* NetCDF variable */
    const char *long_name;
    const char *width_dim;  /* name of the trailing dimension when width > 1 */
    int width, per_base;
    int *values;
} pl_unit_state;

#define PL_MAX_UNIT_STATE 4

/* What one swept direction kind holds for the whole sweep. */
typedef struct {
    pl_unit_state state[PL_MAX_UNIT_STATE];
    int n_state;
    float *rows;   /* file: the matrix [n_rows, C] */
    long n_rows;
    void *priv;    /* any other per-sweep resource of the kind (freed by its release) */
} pl_direction_data;

struct pl_sae;
struct pl_sae_bases;

/* The local geometry at one (prompt, base) (issue 17; fisher.h): the top-k eigenpairs of the Fisher
 * metric F pulled back to the hook and its trace. It needs the model (exact JVP/VJP), so the sweep
 * computes it on the worker before the curves of (prompt, base) (base_local.c, pl_base_local_compute)
 * and hands it to the steps in a copy of the experiment (pl_experiment.local): the `fisher` kind's
 * direction reads it there. */
typedef struct pl_base_local {
    int p, b, s;         /* the (prompt, base index, base sample: pl_base_sample) it belongs to; -1: none yet */
    int k, C;
    double *values;      /* [k] eigenvalues, descending */
    double *vectors;     /* [k, C] unit eigenvectors, the largest-|component| entry positive */
    double trace;        /* tr F */
    /* the `optimized` kind's local optima of KL on the sphere |delta| = radius (n_opt 0: none) */
    int n_opt;
    double radius;
    double *opt_dir;     /* [n_opt, C] unit directions delta / radius */
    double *opt_value;   /* [n_opt] KL at the optimum, nats */
    double *opt_tangential; /* [n_opt] |tangential gradient| at the end */
    double *opt_grad_norm;  /* [n_opt] |gradient off the constraints| at the end: GRADIENT's reference */
    int *opt_iterations; /* [n_opt] accepted steps */
    int *opt_status;     /* [n_opt] PL_OPT_* (fisher.h) */
    int *opt_start;      /* [n_opt] the start each optimum came from (the order: pl_base_local_opt_take) */
    int *opt_cluster;    /* [n_opt] its cluster by |cos| >= distinct_cos, numbered by first appearance */
    int opt_distinct;    /* clusters of the optima by |cos| >= [optimize] distinct_cos */
    /* with [sae]: the largest |cos| of each eigenvector / optimum with the SAE's decoder rows, and which */
    double *sae_cos;     /* [k + n_opt] eigenvectors first */
    int *sae_feature;    /* [k + n_opt] */
    /* |cos| of each eigenvector / optimum (eigenvectors first) with the base's real_other directions
     * and with Sigma's leading principal components (pl_base_local_align_dirs; NULL: not computed) */
    int n_other, n_pcs;
    double *other_cos;   /* [k + n_opt, n_other] */
    double *pc_cos;      /* [k + n_opt, n_pcs] */
} pl_base_local;

typedef struct pl_experiment {
    const pl_sweep_config *cfg;
    int C, V, P, S, NB, ND, steps; /* C: the perturbed activation's width (the hook's) */
    int C_read;              /* the readout's width (d_model: a residual hook or ln_final.hook_normalized) */
    const double *alpha;     /* [steps] */
    const float *real_act;   /* [P, C] each sweep prompt's activation, in the sweep's basis */
    const double *mu, *chol; /* the fit, raw basis (samples are projected when centered) */
    double trace;            /* tr Sigma (raw basis) */
    double iso_scale;        /* sqrt(tr Sigma / dims): per-dimension scale of the isotropic kinds */
    pl_direction_data dir[PL_MAX_DIRECTIONS];
    const struct pl_sae *sae;        /* [sae] path, open (sae.c), or NULL */
    struct pl_sae_bases *sae_bases;  /* the SAE's encoding of every base, once an SAE kind needs it */
    float *sae_recon_real;           /* [P, C] SAE(real activation) of every sweep prompt, once a kind needs it
                                        (the sae_recon base, sae_recon_other): the SAE's output, not centred */
    float *sae_bag;                  /* [P, S, C] the sae_bag bases (pl_sae_giglemiani_setup), not centred */
    float *sae_cosine;               /* [P, C] the sae_cosine bases, not centred */
    const pl_base_local *local;      /* the local geometry of the unit's (prompt, base), set on a copy of
                                      * the experiment by whoever computed it (NULL: none) */
} pl_experiment;

/* ------------------------------------------------------------ bases (bases.c) */

typedef struct {
    const char *name;
    const char *doc;
    /* base[C] of unit ID, in the sweep's basis */
    void (*make)(const pl_experiment *ex, pl_unit_id id, double *base);
    int needs_sae;  /* needs [sae] path (its reconstructions are made at setup: pl_sae_recon_real_setup) */
    int per_sample; /* one base per (prompt, sample) (else one per prompt, shared by every sample) */
} pl_base_kind;

extern const pl_base_kind PL_BASE_KINDS[PL_N_BASE_KINDS]; /* indexed by PL_BASE_* */

/* ------------------------------------------------------------ direction kinds (directions.c) */

typedef struct {
    const char *name;  /* the config's name; "file" is written file:PATH[#TENSOR] */
    const char *doc;   /* one line, for messages */
    /* Per-sweep setup, on every rank once the real activations and the fit are known: load
     * resources, choose per-unit state. Must be deterministic (keyed streams only). May be NULL. */
    int (*setup)(pl_experiment *ex, int d);
    /* The raw direction dir[C] of unit ID from its BASE[C] (before centring and scaling); DIR has
     * room for 2 C doubles, the second half scratch. */
    void (*direction)(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
    void (*release)(pl_experiment *ex, int d); /* may be NULL: state values and rows are freed anyway */
    /* 0 when unit ID has a direction (NULL: always). An undefined unit's curves are NaN (counted in
     * the statistics' counts as non-finite), e.g. sae_active at a base where no feature is active. */
    int (*defined)(const pl_experiment *ex, int d, pl_unit_id id);
    int needs_sae;            /* needs [sae] path */
    /* The alpha at which a unit sits at its base: steps are x_k = base + (alpha_k - ref_alpha) scale d
     * and every row is measured against that row. 0 for every kind but sae_feature_scale (1), whose
     * V-shaped curves have no per-curve scores (NaN) and enter no paired comparison; such a kind
     * needs step_mode = to_target and ref_alpha on the grid. */
    double ref_alpha;
    const char *alpha_meaning; /* what alpha means for this kind when ref_alpha != 0 (the alpha long_name) */
} pl_direction_kind;

extern const pl_direction_kind PL_DIRECTION_KINDS[];
extern const int PL_N_DIRECTION_KINDS;

/* A state variable of direction D (for a setup): its values, [P, S, WIDTH] or with PER_BASE [NB, P, S,
 * WIDTH], owned by the experiment. NULL on failure. */
int *pl_direction_add_state(pl_experiment *ex, int d, const char *name, const char *long_name, int width,
                            const char *width_dim, int per_base);

/* A partner prompt q != p for every (p, s), drawn from the stream (seed, p, PL_RNG_PARTNER, s) and redrawn
 * while its activation equals p's (real_other's draw; sae_recon_other takes the same partners), recorded
 * as direction D's state NAME (and the redraws as REDRAW_NAME). The partners, [P, S], or NULL. */
const int *pl_partner_setup(pl_experiment *ex, int d, const char *name, const char *long_name, const char *redraw_name,
                            const char *redraw_long_name);
/* 1 when kind K's direction needs the local geometry of its base (pl_experiment.local): `fisher`. */
int pl_direction_kind_needs_local(int k);
/* `optimized`: d = the s-th local optimum of KL on the sphere at the unit's base (ex->local). */
void pl_optimized_direction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
/* The sample index of unit ID's base: id.s for a synthetic base (one per prompt and sample), 0 for a
 * real one (the prompt's). Units of one (prompt, base index) with equal pl_base_sample share a base. */
int pl_base_sample(const pl_sweep_config *cfg, pl_unit_id id);
/* 1 when `optimized` is among the config's direction kinds. */
int pl_optimized_listed(const pl_sweep_config *cfg);
/* fixed_norm's step length at alpha = 1: norm_scale |r|, r the base or the prompt's real activation. */
double pl_fixed_norm_length(const pl_experiment *ex, pl_unit_id id, const double *base);
/* `fisher`: d = the s-th eigenvector of F at the unit's base (ex->local; base_local.c). */
void pl_fisher_direction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
/* The eigenpairs a sweep computes at every (prompt, base): [fisher] k, or n_directions when `fisher`
 * is listed and k is 0. */
int pl_fisher_k(const pl_sweep_config *cfg);

/* Index of NAME in PL_DIRECTION_KINDS, or -1. */
int pl_direction_kind_find(const char *name);
/* "isotropic, cov_random, ..." for messages. */
const char *pl_direction_kind_names(void);

/* Checks of the config a kind or metric needs, before anything runs (config.c calls it): [sae] path
 * for the SAE kinds and readouts, step_mode and the grid for kinds with ref_alpha != 0. On failure
 * the message (without the config location) is in pl_error() and *WHICH says the offending key:
 * "directions", "metrics", "step_mode" or "path" (of [sae]). */
int pl_experiment_check_config(const pl_sweep_config *cfg, const char **which);
/* alpha_k of the grid linspace(0, alpha_max, steps), exact at both ends. */
double pl_alpha_at(double alpha_max, int steps, int k);
/* alpha_k (k < cfg->steps) of the config's grid: [perturb] alphas when given, else alpha_grid's
 * linspace(0, alpha_max, steps) (pl_alpha_at) or 0 + geomspace(alpha_min, alpha_max, steps - 1). */
double pl_grid_alpha(const pl_sweep_config *cfg, int k);
/* The row of unit ID's steps that is its base (its kind's ref_alpha on the grid). */
int pl_unit_reference(const pl_experiment *ex, pl_unit_id id);
/* 0 when unit ID's kind has no direction for it (its curves are NaN). */
int pl_unit_defined(const pl_experiment *ex, pl_unit_id id);

/* The base kinds' resources (the SAE-built bases), after the fit and before pl_experiment_setup (the
 * SAE direction kinds' setups make every base). */
int pl_experiment_setup_bases(pl_experiment *ex);
/* Set up every swept kind (after the fit and the bases, before any unit). */
int pl_experiment_setup(pl_experiment *ex);
void pl_experiment_free(pl_experiment *ex);
/* Notes of the setup a user should see (rank 0, on stderr): the SAE's never-active features and the
 * draws without an active feature. */
void pl_experiment_notes(const pl_experiment *ex, FILE *out);

/* Rows of a file: direction (a 2-D .npy, or a safetensors tensor), C columns (direction_files.c). */
int pl_load_direction_rows(const char *path, const char *tensor, int C, float **rows, long *n_rows);

/* ------------------------------------------------------------ steps (steps.c) */

/* The unit's step vectors X[steps, C]: base + alpha_k * scale * d, d its kind's direction (centred
 * when [perturb] center_direction or the centered basis), scale by [perturb] step_mode. */
int pl_unit_steps_of(const pl_experiment *ex, pl_unit_id id, float *X);
/* The unit's base BASE[C] and its step at alpha = 1 STEP[C] as pl_unit_steps_of makes them: the steps are
 * base + (alpha - ref_alpha) STEP under to_target, fixed_norm and absolute; under arc STEP is the path's
 * tangent at the base (d less its component along base - mu, which the arc keeps at its length). A zero
 * d gives a zero STEP. (Whole contexts' joint kl_rayleigh: every site's STEP at once.) */
int pl_unit_step_vector(const pl_experiment *ex, pl_unit_id id, double *base, double *step);
/* [perturb] slice: the unit's grid X[steps * steps, C], row i steps + j = base + alpha_i v1 + alpha_j v2,
 * v1 and v2 the steps at alpha = 1 along directions 0 and 1 (ID's d is ignored), v2 orthogonalised
 * against v1 (steps.c). */
int pl_unit_slice_of(const pl_experiment *ex, pl_unit_id id, float *X);
/* The unit's base[C] and direction dir[2 C] (second half scratch) as its steps use them: d centred when
 * they centre it, before the step mode's scaling. */
int pl_unit_vectors(const pl_experiment *ex, pl_unit_id id, double *base, double *dir);
/* |base| and |d| of the unit, d as its steps use it (centred when they centre it), in the sweep's
 * basis: step k lies |alpha_k - ref| |d| (to_target), |alpha_k| norm_scale |r| (fixed_norm; r the
 * base, or the prompt's real activation under step_reference = real) or |alpha_k| (absolute) from
 * the base. */
int pl_unit_norms(const pl_experiment *ex, pl_unit_id id, double *base_norm, double *direction_norm);

/* ------------------------------------------------------------ metrics (metrics.c)
 * A metric is one function and one row of PL_METRICS: its value at each row of a unit's
 * evaluations, read from pl_readout. Quantities several metrics share (the divergences of one pass
 * over the vocabulary, the read residual's distances, the SAE's encoding of the step vectors) are
 * computed once per unit for the metrics that ask for them (`reads`). */

enum { PL_SCORE_ON_VALUE, PL_SCORE_ON_ONE_MINUS, PL_SCORE_ON_INCREASE };

/* The shared quantities a metric reads (pl_metric_info.reads). */
enum { PL_READS_DISTRIBUTIONS = 1, PL_READS_RESIDUAL = 2, PL_READS_SAE = 4 };

/* One unit's M evaluations as the metrics see them. */
typedef struct {
    const pl_experiment *ex; /* the sweep's per-sweep resources (the SAE) */
    int M, V, C;
    int ref;                 /* row of the unperturbed base, the "clean" run every row is compared with */
    const float *logits;     /* [M, V] next-token logits at the readout position */
    const float *read;       /* [M, C] residual at read_hook, readout position, in the sweep's basis (C: C_read) */
    const float *X;          /* [M, C] the step vectors: what the model was given at the hook (sweep's basis) */
    int next_token;          /* the prompt's real next token at the readout position (-1: none) */
    /* [M] each, filled when a requested metric reads them (else NULL) */
    const double *kl, *jsd, *ce;        /* PL_READS_DISTRIBUTIONS: KL(clean || row), JSD, -log q(next) */
    const double *l2, *cosine;          /* PL_READS_RESIDUAL: to the clean row at read_hook */
    const double *sae_l0, *sae_error;   /* PL_READS_SAE: active features of x, |x - SAE(x)| */
} pl_readout;

typedef struct {
    const char *name;
    const char *long_name;
    const char *units;
    int score_on;           /* PL_SCORE_ON_*: the curve the scores see (1 - cosine, ce - ce(0)) */
    int reads;              /* PL_READS_* */
    double (*value)(const pl_readout *r, int row);
} pl_metric_info;

extern const pl_metric_info PL_METRICS[PL_N_METRICS];

/* Bytes of scratch pl_unit_metrics needs for M rows of EX's sweep. */
size_t pl_unit_metrics_scratch(const pl_experiment *ex, int M);

/* The requested metrics (ex->cfg->metrics) of each of the M evaluations of a unit against its row
 * REF: out[m_index * M + row]. logits[M, V], read[M, C] and X[M, C] as in pl_readout; NEXT_TOKEN the
 * prompt's real next token at the readout position (-1: none, ce_loss is NaN). SCRATCH holds
 * pl_unit_metrics_scratch(ex, M) bytes. A row whose step vector equals row REF's bit for bit gets row
 * REF's values (it is the base). */
void pl_unit_metrics(const pl_experiment *ex, const float *logits, const float *read, const float *X, int M,
                     int ref, int next_token, void *scratch, float *out);
/* 0 when VALUE of METRIC (PL_METRIC_*) is non-finite where it should not be: an infinity (a value beyond
 * float32's range, e.g. l2 of steps near FLT_MAX) or a NaN other than a metric's documented undefined
 * value (cosine of a zero residual, ce_loss without a next token). [run] nonfinite catches those. */
int pl_metric_value_ok(int metric, float value);

/* ------------------------------------------------------------ per-curve scores (scores.c) */

enum { PL_SCORE_ONSET, PL_SCORE_MAX_SLOPE_ALPHA, PL_SCORE_SHARPNESS, PL_SCORE_ALPHA_AT_THRESHOLD,
       PL_SCORE_NONLINEARITY_ALPHA, PL_SCORE_AUC, PL_SCORE_MAX_SPACE_RATIO_ALPHA, PL_SCORE_PLATEAU_LENGTH,
       PL_SCORE_GIGLEMIANI_NL_ALPHA, PL_N_SCORES };

/* [readout] nonlinearity_rule */
enum { PL_NL_LEAST_SQUARES, PL_NL_TEREN, PL_N_NL_RULES };
extern const char *const PL_NL_RULE_NAMES[PL_N_NL_RULES];

/* A right-censored score (the event did not happen on the grid: a threshold never reached, a curve
 * that never deviates, a steepest rise in the grid's last step) is +INFINITY: above every measured
 * value, never NaN (NaN: undefined, e.g. a flat curve). The statistics keep it (statistics.c). */
#define PL_CENSORED INFINITY

typedef struct {
    const char *name;
    int alpha_valued;  /* in alpha's units (histogram over [0, alpha_max]); else sharpness-like */
    int nl_like;       /* a line through the first steps: degenerate on a metric quadratic near 0 */
} pl_score_info;

extern const pl_score_info PL_SCORES[PL_N_SCORES];

/* 1 when SCORE says nothing on METRIC (PL_METRIC_*): the NL scores on a metric quadratic near alpha = 0
 * (kl, jsd, 1 - cosine). Such a score is not computed for that metric (use js_dist or l2). */
int pl_score_degenerate(int score, int metric);

typedef struct {
    double onset_threshold;
    double threshold;    /* absolute threshold of alpha_at_threshold (NaN: not computed) */
    int nl_first, nl_last;
    double nl_tolerance;
    int nl_rule;               /* PL_NL_*: nonlinearity_alpha's rule */
    double plateau_threshold;  /* plateau_length's threshold (NaN: not computed) */
    double gig_nl_tolerance;   /* giglemiani_nl_alpha's relative deviation (theirs 0.2) */
} pl_score_params;

/* The curve the scores see (cosine: 1 - c; ce_loss: c - c(0)) of CURVE[S] into Y[S]. */
void pl_score_curve(const float *curve, int S, int score_on, double *y);
/* Every score of Y[S] over ALPHA[S] into OUT[PL_N_SCORES] (NaN when undefined, PL_CENSORED when the
 * event is beyond the grid; see docs/science.md). */
void pl_curve_scores(const double *y, const double *alpha, int S, const pl_score_params *sp, double *out);

/* ------------------------------------------------------------ statistics (statistics.c) */

/* Statistics of VALUES[n] (non-finite values are left out; *count says how many entered):
 * mean, median, and the Q quantiles (linear interpolation, numpy's default). SCRATCH[n]. */
void pl_describe(const float *values, int n, const double *q, int Q, double *scratch, double *mean,
                 double *median, double *quantiles, int *count);

/* A paired comparison of X[n] with Y[n]: pairs with a NaN member (undefined) are left out, censored
 * members (+inf, PL_CENSORED) are kept and counted (statistics.c says how each statistic treats them). */
typedef struct {
    int n_pairs;
    int n_censored_x, n_censored_y;         /* kept pairs whose x (y) is censored */
    double ratio, ratio_lo, ratio_hi;       /* median(x) / median(y), 95 % percentile bootstrap */
    double diff, diff_lo, diff_hi;          /* median(x - y) */
    double w_plus;                          /* Wilcoxon signed-rank statistic: sum of positive ranks */
    double p_value;                         /* two-sided Wilcoxon signed-rank p-value */
} pl_paired;

/* B bootstrap resamples of the pairs, drawn from the stream (SEED, PL_RNG_BOOTSTRAP, KEY); the same
 * key gives the same resamples. B = 0: no intervals (NaN). */
int pl_paired_compare(const double *x, const double *y, int n, int B, uint64_t seed, uint64_t key, pl_paired *out);

/* Two-sided Wilcoxon signed-rank p-value of the nonzero differences D[n] (docs/science.md); *w_plus the
 * sum of the ranks of the positive ones. */
double pl_wilcoxon_p(const double *d, int n, double *w_plus);

/* Counts of the finite VALUES[n] in NB equal bins over [lo, hi] (the last bin closed); values
 * outside go to *outside. */
int pl_histogram(const double *values, int n, double lo, double hi, int NB, int *counts, int *outside);

#endif
