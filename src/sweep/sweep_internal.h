/* Internals of the sweep shared by its modules (config, data, stats, eval, checkpoint, results,
 * scheduler). Only scheduler.c includes mpi.h; the sweep never includes netcdf.h: it hands its result
 * as a plain pl_result (plateau/result.h) to the writer the CLI registered. */
#ifndef PLATEAU_SWEEP_INTERNAL_H
#define PLATEAU_SWEEP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/result.h"
#include "plateau/sweep.h"
#include "plateau/tokenizer.h"
#include "../experiment/experiment.h"
#include "../experiment/sae.h"
#include "../experiment/fisher.h"
#include "../experiment/base_local.h"

/* "FILE:LINE" or "--set ..." where (section, key) got its value (the config file for a default). */
const char *pl_sweep_config_origin(const pl_sweep_config *cfg, const char *section, const char *key);

/* ------------------------------------------------------------ model series (model_series.c) */

/* [model] paths FILE: one model a line, `DIR [label=LABEL] [step=N]` (model_series.c's header). */
int pl_model_series_read(const char *file, pl_model_entry **out, int *n);
/* [model] path = DIR1, DIR2, ...: labels the dirs' names, no steps; WHERE names the key in messages. */
int pl_model_series_from_list(char *const *dirs, int n, const char *where, pl_model_entry **out);
void pl_model_series_free(pl_model_entry *models, int n);
int pl_model_label_check(const char *label);
/* Open every model of CFG's series: each must open, and all be of one family and shape. */
int pl_model_series_check(const pl_sweep_config *cfg);
/* Model K's part file: <output>.model-K.nc (malloc'ed). */
char *pl_model_series_part(const pl_sweep_config *cfg, int k);
/* Model K's checkpoint: <[run] checkpoint>.model-K (malloc'ed). */
char *pl_model_series_checkpoint(const pl_sweep_config *cfg, int k);
/* The --set overrides of model K's run: SETS, then [model] paths emptied, path, label and step of
 * model K and the checkpoint <checkpoint>.model-K. */
typedef struct {
    char **sets;
    int n_sets;
    char *text;
} pl_series_args;
int pl_model_series_sets(const pl_sweep_config *cfg, int k, char *const *sets, int n_sets, pl_series_args *a);
void pl_series_args_free(pl_series_args *a);

/* ------------------------------------------------------------ optimisations in flight (opt_store.c)
 *
 * The saved states (pl_sphere_save) of the `optimized` kind's optimisations that are under way, one
 * per base (prompt p, base index b, base sample s), so that a run stopped mid-optimisation resumes it
 * where it was, bitwise (issue 17, item 7). Rank 0's store is what its checkpoints hold; a worker's is
 * what it was sent to resume from. A mutex guards it: rank 0's compute thread saves into it while its
 * main thread writes checkpoints. The scheduler sets the hooks; a store without them (the library,
 * the tests) only resumes. */
typedef struct {
    int32_t p, b, s;
    unsigned char *bytes;
    size_t len;
} pl_opt_saved;

typedef struct pl_opt_store {
    pthread_mutex_t lock;
    pl_opt_saved *e;
    int n, cap;
    double every;       /* seconds between saves of a running optimisation ([run] checkpoint_every) */
    void *ctx;
    /* between two optimiser steps: nonzero when the run is stopping (the state is saved, the batch
     * given up with PL_ERR_PREEMPTED). NULL: never. */
    int (*stopping)(void *ctx);
    /* a saved state to rank 0's store: a worker's sends it; NULL: put into this store (rank 0). */
    void (*publish)(void *ctx, const pl_opt_saved *e);
} pl_opt_store;

/* pl_batch_eval's return when the run stops mid-batch (a signal): nothing of the batch is kept but the
 * optimiser states it saved. */
#define PL_ERR_PREEMPTED (-3)

void pl_opt_store_init(pl_opt_store *st);
void pl_opt_store_free(pl_opt_store *st);
/* Keep only the states whose base NEEDED(ctx, p, b, s) (rank 0, before a checkpoint: a base whose
 * units are all stored needs none). */
void pl_opt_store_prune(pl_opt_store *st, int (*needed)(void *ctx, int p, int b, int s), void *ctx);
/* Put (replace) the state of base (p, b, s), a copy of BYTES[len]; len 0 removes it. */
int pl_opt_store_put(pl_opt_store *st, int p, int b, int s, const unsigned char *bytes, size_t len);
/* A malloc'ed copy of the state of (p, b, s) into *bytes, *len (*bytes NULL: none). */
int pl_opt_store_get(pl_opt_store *st, int p, int b, int s, unsigned char **bytes, size_t *len);
/* All states as bytes (u64 count, then per state int32 p, b, s, u64 len, bytes; sorted by key so that
 * the same states give the same bytes), appended to *buf (realloc'ed, *len its length). */
int pl_opt_store_bytes(pl_opt_store *st, unsigned char **buf, size_t *len);
/* Read pl_opt_store_bytes' layout from BYTES[len] (exactly) into ST (NULL: only checked), replacing
 * what it held; at most MAX_LEN bytes per state. */
int pl_opt_store_parse(pl_opt_store *st, const unsigned char *bytes, size_t len, size_t max_len);
struct pl_sweep;
/* The longest state of one base for SW's config (pl_sphere_state_size). */
size_t pl_opt_state_max(const struct pl_sweep *sw);

/* ------------------------------------------------------------ the sweep's shared state (batches.c) */

typedef struct pl_sweep {
    pl_sweep_config *cfg;
    const pl_model *model;
    int C, T, V;        /* C: the perturbed activation's width (pl_hook_width: H*head_dim at attn.hook_z) */
    int C_read;         /* the readout's width: d_model */
    pl_hook_point hook; /* [perturb] hook (any TransformerLens hook point but ln_final.hook_normalized) */
    pl_hook_point read; /* [readout] read_hook (a resid point or ln_final.hook_normalized) */
    int pos;
    int read_pos;       /* readout position (>= pos): logits and read_hook are read there */
    int n_pos;          /* perturbed positions pos..pos+n_pos-1, all at once (whole contexts: n_pos > 1) */
    int NPC;            /* curves per (unit, metric): n_pos with [readout] positions = each, else 1 (their
                         * mean, or one position); a unit's curves are [NM, NPC, steps] */
    int act_first, act_count; /* positions of each prompt whose activations the setup gathers */
    int T_eval;         /* read_pos + 1: a unit runs the prompt's first T_eval tokens (causality) */
    int P, S, NB, ND, NM, steps; /* steps: rows of a unit (a slice's n_alpha^2); ND: 1 for a slice */
    int slice;          /* [perturb] slice: a unit is (prompt, base, sample), its rows the (alpha, beta) grid
                         * row i * n_alpha + j, directions 0 and 1 of the experiment its two kinds */
    int n_alpha;        /* the alpha grid's length (= steps but for a slice) */
    long n_units;
    int batch_units;    /* units per batch: consecutive units evaluated in one fast-path call */
    long n_batches;
    double *alpha;      /* [n_alpha] */
    int *tokens;        /* [P + cov_prompts, T] sweep prompts first */
    int *next_token;    /* [P + cov_prompts] the data's token after each prompt (-1: none) */
    char **prompt_text; /* [P] the sweep prompts decoded (valid UTF-8), or NULL: no tokenizer (rank 0) */
    long n_duplicates;  /* prompts dropped as duplicates of an earlier one (rank 0) */
    long n_short;       /* documents skipped as shorter than a prompt (rank 0) */
    int bos_id;         /* the BOS token every prompt starts with, or -1 (rank 0) */
    float *real_act;    /* [P * n_pos, C] real activation at (hook, pos + j) of each sweep prompt (row
                         * p * n_pos + j: the experiment's "prompt" is this site), sweep's basis */
    double *mu;         /* [C] raw basis */
    double *chol;       /* [C, C] */
    double trace;       /* tr Sigma */
    double *sigma;      /* [C, C] the Sigma sampled from (rank 0, with [output] activations) */
    pl_pd_report pd;
    pl_experiment ex;   /* the science's view of all this, and the direction kinds' state */
    pl_sae sae;         /* [sae] path, open on every rank (sae.dir NULL: none) */
    int naive;
    int fisher_k;       /* eigenpairs per (prompt, base) (pl_fisher_k), 0: no local geometry */
    int n_opt;          /* the optimized kind's optima per (prompt, base): [optimize] starts, or 0 */
    int x_opt;          /* offset of the optima's extras: PL_LOCAL_EIGEN + fisher_k */
    int x_sae;          /* offset of the SAE alignment's extras (0: no [sae]): |cos| then feature of the
                         * fisher_k eigenvectors and n_opt optima */
    int x_vec;          /* offset of the vectors' extras ([output] vectors; 0: none): the fisher_k
                         * eigenvectors then the n_opt optima's directions, C floats each */
    int NX_site;        /* extras of one site (perturbed position) after a unit's curves (0: no local
                         * geometry): x_opt, + 3 n_opt + 1 with optima, + 2 (fisher_k + n_opt) with [sae],
                         * + (fisher_k + n_opt) C with [output] vectors, + the alignment's */
    int NX;             /* extras per unit: n_pos * NX_site, site j's at j * NX_site (whole contexts: each
                         * perturbed position's local geometry, as a one-position sweep there has it); a
                         * slice's unit: 2 * NX_site, its axes' blocks (directions 0 then 1) */
    int n_pcs;          /* principal components of Sigma compared with ([fisher] n_pcs, at most C; 0 without
                         * local geometry) */
    int n_other;        /* real_other directions compared with per base: S when real_other is listed (0:
                         * not listed, or no local geometry) */
    int x_align;        /* offset of the |cos| with real_other and Sigma's PCs (0: none): per eigenvector
                         * then per optimum, n_other real_other |cos| then n_pcs PC |cos| */
    int unit_floats;    /* a unit's floats in a batch's output: NM * NPC * steps + NX */
    pl_opt_store *opt_store; /* the optimisations in flight (the scheduler's; NULL: none kept) */
} pl_sweep;

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

/* ------------------------------------------------------------ local geometry (local_ops.c, issue 17) */

/* What a unit records of its base's local geometry beside its curves: extras[NX_site] floats per site, at
 * these offsets, then fisher_k eigenvalues, then with `optimized` the optima's objective, iterations and
 * tangential gradient (n_opt each) and their number of distinct clusters (NX 0: no local geometry). Every
 * unit of a (prompt, base) holds the same trace and eigenvalues (computed from (prompt, base) alone).
 * Whole contexts (n_pos > 1): site j's block at j * NX_site holds the geometry at (prompt, pos + j), and
 * its PL_LOCAL_RAYLEIGH the joint kl_rayleigh read at position pos + j ([readout] positions = each) or,
 * in site 0's block only, the one of the mean readout (local_ops.c, pl_sweep_local_context). */
enum { PL_LOCAL_RAYLEIGH, PL_LOCAL_DIRECTION_NORM, PL_LOCAL_FRACTION, PL_LOCAL_TRACE, PL_LOCAL_EIGEN };

struct pl_sweep;
/* The Fisher operator at one (prompt, base) on a worker, and its eigenpairs. */
typedef struct {
    const struct pl_sweep *sw;
    int C, V;
    pl_base_local *slot;    /* [S] the geometry of the bases of the last (prompt, base kind): slot s holds base
                             * sample s (a synthetic base is one per sample; a real one in slot 0) */
    unsigned char *failed;  /* [S] nonfinite = mark: that base has no local geometry (NaN) */
    int n_slots;
    int op_p, op_b, op_s;   /* the base the operator is at (op_p -1: none) */
    pl_run clean;           /* the prompt's clean run (T_eval tokens) */
    int have_clean, clean_p;
    float *x;               /* [C] the base as the model is given it (sweep's basis) */
    float *base_logits, *p; /* [V] its logits and softmax */
    float *X;               /* [rows, C] the base repeated (the rows the derivatives are taken at) */
    float *logits, *glog;   /* [rows, V] the optimiser's logits and KL cotangents */
    double *xd;             /* [3 C] the base in double (and scratch) */
    double *pcs;            /* [n_pcs, C] the leading principal components of Sigma (sweep's basis) */
    pl_local_op op;
    pl_sphere_op sop;       /* KL and its gradient at x + delta (the optimized kind) */
    int nonfinite;          /* a derivative or the base's logits were not finite */
    struct pl_opt_pending *pend; /* [n_pend] the optima of a batch's bases, run together before its
                                  * units (pl_sweep_local_optimize_batch), until a unit takes them */
    int n_pend;
    int site_pos;           /* the perturbed position of the operator's site (sw->pos but in whole contexts) */
    /* whole contexts: the joint step's derivatives (pl_sweep_local_context) */
    pl_run ctx_clean;       /* the prompt's clean run (T_eval tokens: every perturbed position) */
    int have_ctx, ctx_p;
    float *ctx_buf;         /* X[n_pos, C] bases, DX[n_pos, C] the joint step, logits and dlogits [n_pos, V] */
} pl_sweep_local;
typedef struct pl_opt_pending pl_opt_pending;

void pl_sweep_local_init(pl_sweep_local *l);
void pl_sweep_local_free(pl_sweep_local *l);
/* The local geometry at unit ID's base (computed unless L holds it; the operator moved to that base),
 * whole contexts: ID a site's (pl_unit_at_position), the geometry a one-position sweep at that site's
 * position computes (its prompt's first pos + j + 1 tokens, perturbed and read at pos + j; the operator
 * is moved only to compute it, a slot per (site, sample) keeps it), or NULL: *RC PL_OK under nonfinite = mark for a base whose derivatives are not finite (its numbers
 * NaN), else the failure (PL_ERR_BAD_INPUT naming the place for a non-finite derivative under
 * nonfinite = error). */
const pl_base_local *pl_sweep_local_prepare(const struct pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, int *rc);
/* With `optimized`: the optimisations of every base of units [FIRST, FIRST + N) that L holds no
 * geometry for, advanced together (each base's rows in objective calls of their own), before
 * pl_sweep_local_prepare is called for the units (which takes them from there). PL_ERR_PREEMPTED when
 * the run stops mid-optimisation (the states saved); other failures name the base. */
int pl_sweep_local_optimize_batch(const struct pl_sweep *sw, pl_sweep_local *l, long first, int n);
/* Unit ID's extras[NX_site] (its Rayleigh quotient, direction norm, and its base's trace, eigenvalues and
 * optima) from GEO (pl_sweep_local_prepare's; NULL: all NaN). */
int pl_sweep_local_unit(const struct pl_sweep *sw, pl_sweep_local *l, const pl_base_local *geo, pl_unit_id id,
                        float *extras);
/* Whole contexts: unit ID's extras[NX] from its sites' geometry GEOS[n_pos] (pl_sweep_local_prepare's at
 * each site, NULL entries: NaN): site j's block as a one-position unit at pos + j has it (trace,
 * eigenvalues, optima, alignment, vectors) but for its Rayleigh quotient, and its fisher_fraction and
 * direction norm of site j's own displacement (under per_position = shared the first site's); then the
 * joint kl_rayleigh of the unit's step d [n_pos, C] (every site's displacement at alpha = 1): dᵀ F_read d
 * / |d|^2 with F_read = Σ_t w_t J_tᵀ (diag p_t − p_t p_tᵀ) J_t, J_t = ∂logits_t / ∂(x_pos..) (causal, one
 * JVP over every perturbed position), w_t = 1/n_pos ([readout] positions = mean, into site 0's block) or
 * each t alone (= each, into site t's block). */
int pl_sweep_local_context(const struct pl_sweep *sw, pl_sweep_local *l, const pl_base_local *const *geos,
                           pl_unit_id id, float *extras);

/* A rank's reusable buffers for one batch. */
typedef struct {
    float *X, *logits, *read;  /* [batch_units * steps, C], [.., V], [.., C_read] */
    void *scratch;             /* the metrics' (pl_unit_metrics_scratch) */
    unsigned char *bad;        /* [batch_units * steps]: which inputs of a row are not finite (batches.c) */
    float *pos_rows;           /* whole contexts: one position's rows gathered, and scratch (contexts.c) */
    pl_sweep_local local;      /* [fisher]: the local geometry of the last (prompt, base) */
} pl_unit_cache;

void pl_unit_cache_init(pl_unit_cache *c);
void pl_unit_cache_free(pl_unit_cache *c);

/* The alpha grid; needs cfg and steps set. */
int pl_sweep_setup_grid(pl_sweep *sw);
/* Rank 0, after the clean forwards: the sweep prompts' activations (in the sweep's basis) from
 * ACTS[P + cov_prompts, act_count, C], and the fit of the covariance prompts' ones at the positions
 * of [perturb] fit_positions, with sigma_ridge (mu, chol, trace, pd; sigma when the output stores it).
 * real_act, mu and chol are allocated by the caller. */
int pl_sweep_fit(pl_sweep *sw, const float *acts);
/* Every rank, once real_act, mu, chol and trace are known: the experiment's setup (direction kinds'
 * resources and per-unit state). Errors name the config line of [perturb] directions. */
int pl_sweep_setup_units(pl_sweep *sw);
/* [fisher] k and orthogonal [optimize] starts against the hook's width (sw->C): the run's setup and
 * --dry-run. */
int pl_sweep_check_local_sizes(const pl_sweep *sw);
/* Every rank, once the config is resolved: open [sae] path (if set) and check it against the model
 * and [perturb] hook; fill or check [sae] sha256. Errors name the config line. */
int pl_sweep_open_sae(pl_sweep *sw);
/* sha256 of the selected prompts (tokens and next tokens of all P + cov_prompts). */
int pl_data_sha256(const pl_sweep *sw, char out[65]);
/* sha256 of the sweep's prompts' token ids as the result's `tokens` holds them (int32 [P, T]): what a
 * model series' stacker compares between models (io's part checker hashes a part's the same way). */
int pl_tokens_sha256(const pl_sweep *sw, char out[65]);
/* Set batch_units and n_batches from steps and n_units. */
void pl_sweep_set_batches(pl_sweep *sw);
/* First unit and unit count of batch B. */
long pl_batch_first_unit(const pl_sweep *sw, long b, int *n_units);
/* pl_batch_eval's return for bad input rather than a fault: non-finite values with
 * [run] nonfinite = error. The run stops with exit code 2. */
#define PL_ERR_BAD_INPUT (-2)
_Static_assert(PL_ERR_BAD_RADIUS == PL_ERR_BAD_INPUT, "a bad radius is bad input");

/* Evaluate batch B: OUT[n_units, NM, steps] (metrics in config order), its units' clean runs in one
 * batched forward and all their steps in one grouped fast-path call (--naive: a full patched
 * forward per step). Every step vector, logit and read-hook value is checked to be finite: with
 * [run] nonfinite = error a non-finite one fails the batch (PL_ERR_BAD_INPUT, the message names
 * the unit, alpha and what), with = mark the metrics it feeds are NaN, left out of every count. */
int pl_batch_eval(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out);
/* The metrics O[NM, S] of unit U from finite inputs that are still not finite where they should be:
 * the batch fails ([run] nonfinite = error, PL_ERR_BAD_INPUT) or they become NaN (mark). */
int pl_check_metric_values(const pl_sweep *sw, long u, float *o);
/* A batch's clean runs and row groups, as the fast path takes them: the G distinct prompts PROMPTS[G]
 * run forward together (their first T_eval tokens, one pl_forward_batch), unit i's S rows on the run of
 * its prompt GROUP[i]. eval_fast (one position) and whole contexts build them alike. */
typedef struct {
    pl_run *runs;          /* [G] */
    const pl_run **cleans; /* [n] unit i's clean run */
    int *group_rows;       /* [n] steps each */
    int G;
} pl_batch_runs;
/* On failure B holds nothing (closing it is still allowed). */
int pl_batch_runs_open(const pl_sweep *sw, int n, const int *group, const int *prompts, int G, pl_batch_runs *b);
void pl_batch_runs_close(pl_batch_runs *b);
/* pl_batch_eval of a whole-context sweep (n_pos > 1; contexts.c): OUT[n_units, unit_floats], each
 * unit's curves [NM, NPC, steps]: every perturbed position's ([readout] positions = each) or their
 * mean (NPC = 1). */
int pl_batch_eval_contexts(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out);
/* "unit 7 (prompt 1, base real, direction cov_random, sample 0)" */
void pl_unit_name(const pl_sweep *sw, long u, char *out, size_t size);
/* Unit ID of the sweep as the experiment's unit at perturbed position J (its site p * n_pos + j). */
static inline pl_unit_id pl_unit_at_position(const pl_sweep *sw, pl_unit_id id, int j)
{
    id.p = id.p * sw->n_pos + j;
    return id;
}
/* "alpha = 0.5" or, for a slice's row K, "alpha = 0.5, beta = 0.25" into OUT. */
void pl_row_alpha_text(const pl_sweep *sw, int k, char *out, size_t size);
/* The unit's step vectors X[steps, C] (exposed for tests). */
int pl_unit_steps(const pl_sweep *sw, pl_unit_id id, float *X);
void pl_sweep_free(pl_sweep *sw);

/* ------------------------------------------------------------ data (data.c) */

/* Select P sweep prompts and P_cov covariance prompts (disjoint, seeded, no two alike) of exactly T
 * tokens from the data file into sw->tokens [P + P_cov, T] (sweep prompts first) and
 * sw->next_token; counts in sw->n_duplicates, sw->n_short. Resolves cfg->data_format. Prints the
 * counts on stderr when VERBOSE. */
int pl_data_load(pl_sweep *sw, int verbose);
/* sw->prompt_text from sw->tokens, decoded by TOK (NULL: the model's tokenizer, opened here; none
 * that opens or an id it cannot decode leaves prompt_text NULL, never a failed run). */
int pl_prompt_texts(pl_sweep *sw, const pl_tokenizer *tok);
void pl_prompt_texts_free(char **texts, int n);

/* ------------------------------------------------------------ results (results.c) */

/* A paired comparison of two (base, direction) kinds' scores, by (prompt, sample). */
typedef struct {
    int b1, d1, b2, d2;  /* x = scores of (b1, d1), y = scores of (b2, d2) */
    char label[160];     /* "real/synthetic @ cov_random", "cov_random/real_other @ real" */
} pl_comparison;

#define PL_MAX_COMPARISONS (PL_MAX_DIRECTIONS * (PL_N_BASE_KINDS + 1))

typedef struct {
    const pl_sweep *sw;
    float *curves;     /* [n_units, NM, NPC, steps]: the full table */
    unsigned char *done; /* [n_units] */
    float *local;      /* [n_units, NX]: each unit's extras (PL_LOCAL_*), NULL without [fisher] */
    long n_done;
    /* derived (pl_results_finish), all (base, direction, ...) in config order */
    /* NPC: sw->NPC, the curve positions ([readout] positions = each: n_pos; else 1) */
    double *mean, *median, *quant; /* [NM][NPC, NB, ND, steps]; quant [NM][NPC, Q, NB, ND, steps] */
    int *count;                    /* [NM][NPC, NB, ND, steps] */
    double *scores;                /* [NM][PL_N_SCORES][NPC, NB, ND, P, S] (float64: onsets are alpha values) */
    int has_score[PL_N_METRICS][PL_N_SCORES]; /* by metric index: alpha_at_threshold needs a threshold */
    int n_comparisons;
    pl_comparison comparisons[PL_MAX_COMPARISONS];
    pl_paired *paired;             /* [NM][PL_N_SCORES][NPC, n_comparisons] */
    int *hist;                     /* [NM][PL_N_SCORES][NPC, NB, ND, bins] */
    int *hist_outside;             /* [NM][PL_N_SCORES][NPC, NB, ND] */
    int *n_censored;               /* [NM][PL_N_SCORES][NPC, NB, ND] censored (+inf) scores per kind */
    /* a slice (pl_results_finish): everything above but curves and done is of its two axes, the 1-D
     * table axis_curves [P, NB, 2, S, NM, n_alpha] of the sweep `axis` (direction 0: beta = 0, the
     * alpha axis; 1: alpha = 0, the beta axis); view is &axis (else sw): the sweep the derived numbers
     * are of */
    const struct pl_sweep *view;
    pl_sweep axis;
    float *axis_curves;
    float *axis_local; /* [axis.n_units, axis.NX]: the axes' extras (NULL without local geometry) */
    double *slice_mean, *slice_median; /* [NM][NB, n_alpha, n_alpha] over (prompt, sample) */
    int *slice_count;                  /* [NM][NB, n_alpha, n_alpha] */
} pl_results;

/* The sweep R's derived numbers are of: a slice's axes (after pl_results_finish), else R's sweep. */
static inline const struct pl_sweep *pl_results_view(const pl_results *r) { return r->view ? r->view : r->sw; }
/* The extras [n_units, NX] of pl_results_view's units: a slice's axes' (after pl_results_finish), else
 * R's own. */
static inline const float *pl_results_local(const pl_results *r)
{
    return r->view && r->sw->slice ? r->axis_local : r->local;
}

/* 1 when metric M (PL_METRIC_*) has score SC: alpha_at_threshold needs a threshold, plateau_length is
 * l2's (with a plateau_threshold), the NL scores are not computed on a metric quadratic near 0. */
int pl_sweep_has_score(const pl_sweep_config *cfg, int m, int sc);

/* Histogram range of score SC: [0, alpha_max] for alpha-valued scores, [0, steps - 1] otherwise. */
void pl_score_range(const pl_sweep *sw, int sc, double *lo, double *hi);

int pl_results_init(pl_results *r, const pl_sweep *sw);
void pl_results_free(pl_results *r);
/* Scores and statistics from the complete table, in a fixed order. */
int pl_results_finish(pl_results *r);

/* ------------------------------------------------------------ checkpoint (checkpoint.c) */

/* The checkpoint of R's completed units as bytes (malloc'ed). */
int pl_checkpoint_bytes(const pl_results *r, const char *config_text, const char *model_sha256,
                        const char *data_sha256, unsigned char **bytes, size_t *len);
/* Write the completed units of R to PATH atomically (pl_write_file_atomic). */
int pl_checkpoint_write(const char *path, const pl_results *r, const char *config_text,
                        const char *model_sha256, const char *data_sha256);
/* Load PATH (a regular file of at most the size such a checkpoint can have) into R, refusing a
 * checkpoint of another config, model or data (the message says which differs and how). */
int pl_checkpoint_read(const char *path, pl_results *r, const char *config_text, const char *model_sha256,
                       const char *data_sha256);
/* The same from BYTES[LEN] (PATH names them in messages). With r->done and r->curves NULL the
 * checkpoint is only checked (r->n_done is still counted). */
int pl_checkpoint_parse(const char *path, const void *bytes, size_t len, pl_results *r, const char *config_text,
                        const char *model_sha256, const char *data_sha256);
/* Take PATH.lock (exclusive flock, held until pl_checkpoint_unlock or the process ends): *FD holds it.
 * Held by another process: an error naming it. */
int pl_checkpoint_lock(const char *path, int *fd);
/* Remove PATH.lock and release it. */
void pl_checkpoint_unlock(const char *path, int fd);
/* PL_OK when no other process holds PATH.lock (--dry-run: looks, keeps nothing). */
int pl_checkpoint_lock_free(const char *path);

/* ------------------------------------------------------------ the result handed to io (result_export.c) */

typedef struct {
    const char *config_text;     /* full resolved config */
    const char *model_sha256;
    const char *model_config_sha256; /* pl_model_config_sha256 */
    int synthetic_model;
    int n_ranks;
    double evals_per_second;
    const char *sigma_note;      /* how Sigma was made positive definite, or "" */
    int threads;                 /* OpenBLAS threads of every rank */
    const char *openblas_config; /* openblas_get_config(): version, build options, kernel type */
    const char *command_line;    /* "plateau run ..." as given (the history attribute) */
} pl_output_meta;

/* R (finished) as the plain pl_result the writer takes, and the storage it points into. */
typedef struct {
    pl_result r;
    pl_result_metric metrics[PL_N_METRICS];
    pl_result_score scores[PL_N_SCORES];
    pl_result_comparison comparisons[PL_MAX_COMPARISONS];
    pl_result_state states[PL_MAX_DIRECTIONS * PL_MAX_UNIT_STATE];
    const char *bases[PL_N_BASE_KINDS], *directions[PL_MAX_DIRECTIONS];
    unsigned char has_score[PL_N_METRICS * PL_N_SCORES];
    char alpha_text[1024];
    char score_curve_text[PL_N_METRICS][80]; /* "<m> - <m> at alpha 0" of the increase-scored metrics */
    pl_result_paired *paired;
    double *norms, *mu, *sigma; /* norms: base_norm then direction_norm */
    double *local;              /* fisher_eigenvalue, fisher_trace, kl_rayleigh, optima (with [fisher]) */
    int *local_int;             /* optimum_iterations, optimum_distinct */
    double *align;              /* the |cos| with real_other and Sigma's PCs (local_align) */
    float *vectors;             /* fisher_eigenvector then optimum_direction ([output] vectors) */
    float *activation;          /* whole contexts: real_act as [n_pos, P, C] (the file's position-major order) */
} pl_result_export;

/* Fill *E from the finished results R and the run's META (rank 0). Free with pl_result_export_free. */
int pl_results_export(const pl_results *r, const pl_output_meta *meta, pl_result_export *e);
void pl_result_export_free(pl_result_export *e);

#endif
