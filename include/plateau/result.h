/* One sweep's result as the io layer writes it: plain sizes, arrays and strings, no sweep state.
 *
 * The sweep fills a pl_result (src/sweep/results.c: pl_results_export) and hands it to the writer
 * the CLI registered (pl_run_options.write_result), so the sweep never links the io library and the
 * writer knows nothing of the sweep, the experiment or the tokenizer. The names, types, dimensions
 * and attributes of what a result file holds are io's schema table (src/io/schema.c); this struct is
 * only the numbers. Every array is in C order over the dimensions named beside it; NULL where the
 * text says "absent".
 */
#ifndef PLATEAU_RESULT_H
#define PLATEAU_RESULT_H

#include <limits.h>

/* An integer global attribute the file does not have (sae_k of a ReLU SAE, ...). */
#define PL_RESULT_NO_INT INT_MIN

/* A metric of the run, in config order. */
typedef struct {
    const char *name, *long_name, *units; /* units: UDUNITS, or plateau's own ("nats") */
    const char *score_curve;              /* the curve the scores see: the name, "1 - cosine", ... */
    double threshold;                     /* alpha_at_threshold's absolute threshold (NaN: none) */
} pl_result_metric;

/* A per-curve score, in the experiment's order (its index is the score's code). */
typedef struct {
    const char *name;
    int alpha_valued;  /* in alpha's units; else a dimensionless rise (sharpness) */
    double hist_lo, hist_hi; /* histogram range */
} pl_result_score;

/* A paired comparison x/y of two (base, direction) kinds' scores, by (prompt, sample). */
typedef struct {
    const char *label;
    int x_base, x_direction, y_base, y_direction;
} pl_result_comparison;

/* The statistics of one comparison of one (metric, score). */
typedef struct {
    int n_pairs, n_censored_x, n_censored_y;
    double ratio, ratio_lo, ratio_hi, diff, diff_lo, diff_hi, p_value, w_plus;
} pl_result_paired;

/* Integers a direction kind chose per unit (real_other's partner, ...):
 * values [(base,) prompt, sample(, width_dim)]. */
typedef struct {
    const char *name, *long_name;
    const char *width_dim; /* the trailing dimension when width > 1 */
    int width, per_base;
    const int *values;
} pl_result_state;

/* The global attributes a run supplies (the writer adds its own provenance: created, history,
 * source, git_commit, hostname, plateau_version, data_sha256, absolute paths). Text NULL and
 * integers PL_RESULT_NO_INT: absent. Their names, order and merge rules: src/io/schema.c. */
typedef struct {
    const char *config, *model_path, *model_sha256, *data_path, *hook, *read_hook, *residual_basis, *sampling;
    const char *model_config_sha256; /* of config.json as read ("" for a llama2.c file) */
    const char *sigma_positive_definite_fix, *openblas_config, *command_line;
    int synthetic_model, position, read_position, center_direction, duplicate_prompts_dropped;
    int short_documents_skipped, bos_token, bootstrap_resamples, n_prompts, n_ranks, threads;
    int n_positions; /* perturbed positions, from position on (whole contexts: > 1) */
    double evals_per_second;
    /* [sae] (sae_path NULL: no SAE) */
    const char *sae_path, *sae_sha256, *sae_hook, *sae_architecture, *sae_normalize_activations;
    int synthetic_sae, sae_d_sae, sae_k, sae_apply_b_dec_to_input, sae_features_never_active;
    int sae_draws_without_active_feature;
} pl_result_attrs;

typedef struct {
    int NB, ND, P, S, K, NM, T, Q, HB; /* bases, directions, prompts, samples, alphas, metrics, ctx, quantiles,
                                          histogram bins */
    int n_scores, n_comparisons, n_states;
    int per_position;                  /* 1: every curve variable and all derived from it has a leading
                                          position dimension of attrs.n_positions ([readout] positions = each;
                                          the arrays below marked [NPC, ...] then hold n_positions slabs) */
    int C;                             /* resid length of activation/mu/sigma (and the vectors); 0: none stored */
    const double *alpha;               /* [K] */
    const char *alpha_long_name, *alpha_units, *step_mode;
    const char *const *bases;          /* [NB] */
    const char *const *directions;     /* [ND] */
    const double *quantiles;           /* [Q] levels */
    const pl_result_metric *metrics;   /* [NM] */
    const pl_result_score *scores;     /* [n_scores] */
    const pl_result_comparison *comparisons; /* [n_comparisons] */
    const unsigned char *has_score;    /* [NM, n_scores]: the file has metric m's score sc */
    double onset_threshold, nl_tolerance;
    int nl_fit_steps[2];
    const char *nl_rule;               /* [readout] nonlinearity_rule */
    double plateau_threshold, giglemiani_nl_tolerance;
    /* NPC: attrs.n_positions with per_position, else 1 (no position dimension)
     * curves: [P, NB, ND, S, NM, NPC, K] (the sweep's table, unit-major), NULL: no raw curves */
    const float *curves;
    const double *mean, *median;       /* [NM, NPC, NB, ND, K] */
    const double *quant;               /* [NM, NPC, Q, NB, ND, K] */
    const int *count;                  /* [NM, NPC, NB, ND, K] */
    const double *score_values;        /* [NM, n_scores, NPC, NB, ND, P, S] */
    const int *hist;                   /* [NM, n_scores, NPC, NB, ND, HB] */
    const int *hist_outside;           /* [NM, n_scores, NPC, NB, ND] */
    const int *n_censored;             /* [NM, n_scores, NPC, NB, ND] censored (+inf) scores per kind */
    const pl_result_paired *paired;    /* [NM, n_scores, NPC, n_comparisons] */
    const double *base_norm, *direction_norm; /* [NB, ND, P, S] (NaN: a unit without a direction) */
    /* [perturb] slice (slice_mean NULL: not a slice): the (alpha, beta) grid of every unit, beta on
     * alpha's grid; the 1-D arrays above then hold its two axes as directions 0 (beta = 0) and 1 (alpha = 0) */
    const char *slice_directions[2];   /* the alpha axis's kind, the beta axis's */
    const float *slice_curves;         /* [P, NB, S, NM, K, K] (the sweep's table), NULL: no raw curves */
    const double *slice_mean, *slice_median; /* [NM, NB, K, K] over prompts and samples */
    const int *slice_count;            /* [NM, NB, K, K] */
    /* the local geometry at the bases (issue 17; n_eigen 0: no eigenpairs; kl_rayleigh and fisher_trace
     * whenever n_eigen or n_optimum is set) */
    int n_eigen;                       /* length of the eigen dimension: the eigenpairs per (prompt, base) */
    const double *fisher_eigenvalue;   /* [P, NB, S, n_eigen] descending (per base: a synthetic base is
                                          one per (prompt, sample)) */
    const double *fisher_trace;        /* [P, NB, S] */
    const double *kl_rayleigh;         /* [NB, ND, P, S] */
    const double *fisher_fraction;     /* [NB, ND, P, S] (with n_eigen) */
    int n_optimum;                     /* the optimized kind's optima per (prompt, base); 0: absent */
    const double *optimum_objective;   /* [P, NB, S, n_optimum] KL at the optimum */
    const int *optimum_iterations;     /* [P, NB, S, n_optimum] */
    const double *optimum_tangential_grad; /* [P, NB, S, n_optimum] */
    const int *optimum_status;         /* [P, NB, S, n_optimum] PL_OPT_*: gradient 1, flat 2, cap 3, stall 4 */
    const int *optimum_start;          /* [P, NB, S, n_optimum] the start of each optimum */
    const int *optimum_cluster;        /* [P, NB, S, n_optimum] its cluster (optimum_distinct's) */
    const double *optimum_grad_norm;   /* [P, NB, S, n_optimum] |grad| off the constraints (GRADIENT's reference) */
    const int *optimum_distinct;       /* [P, NB, S] */
    /* with [sae] (NULL: absent): the largest |cos| with the SAE's decoder rows and which feature */
    const double *fisher_max_sae_cos;  /* [P, NB, S, n_eigen] */
    const int *fisher_sae_feature;     /* [P, NB, S, n_eigen] */
    const double *optimum_max_sae_cos; /* [P, NB, S, n_optimum] */
    const int *optimum_sae_feature;    /* [P, NB, S, n_optimum] */
    /* |cos| with the base's real_other directions (n_other: S when real_other is listed; 0: absent) and
     * with Sigma's leading principal components (n_pc: [fisher] n_pcs; 0: absent) */
    int n_other, n_pc;
    const double *fisher_real_other_cos;  /* [P, NB, S, n_eigen, n_other] */
    const double *optimum_real_other_cos; /* [P, NB, S, n_optimum, n_other] */
    const double *fisher_pc_cos;          /* [P, NB, S, n_eigen, n_pc] */
    const double *optimum_pc_cos;         /* [P, NB, S, n_optimum, n_pc] */
    /* [output] vectors (NULL: absent), unit vectors in the residual basis; C is then the resid length */
    const float *fisher_eigenvector;   /* [P, NB, S, n_eigen, C] */
    const float *optimum_direction;    /* [P, NB, S, n_optimum, C] */
    const int *tokens;                 /* [P, T] */
    const int *next_token;             /* [P] */
    const char *const *prompt_text;    /* [P] valid UTF-8, or NULL: not decodable */
    const pl_result_state *states;     /* [n_states] */
    int sae_features;                  /* length of sae_feature_active_bases; 0: absent */
    const int *sae_feature_active_bases;
    const float *activation;           /* [P, C]; whole contexts (attrs.n_positions > 1): [n_positions, P, C] */
    const double *mu, *sigma;          /* [C], [C, C], in residual_basis */
    pl_result_attrs attrs;
} pl_result;

/* What writes a result to PATH (the io library's pl_result_write, registered by the CLI). */
typedef int (*pl_result_writer)(const char *path, const pl_result *r);
/* What stacks the N single-model result files PARTS (one per model of a series, in order) along a
 * leading `model` dimension into OUT (io's pl_merge_models). LABELS and PATHS: the models the parts
 * must be (a part from another model is refused), or NULL. COMMAND_LINE: the series run's ("plateau
 * run ARGS"), OUT's history. */
typedef int (*pl_result_stacker)(const char *out, char *const *parts, int n, char *const *labels,
                                 char *const *paths, const char *command_line);
/* What checks that the finished part PART of a series is model K + 1's, LABEL at PATH, run with CONFIG
 * (the resolved text of model K + 1's run; NULL: not checked) in every key of a run's identity, as the
 * stacker will (io's pl_merge_check_part): a resumed series refuses a changed model list or config
 * before any work. TOKENS_SHA256 gets the sha256 of the part's `tokens` (int32, [prompt, ctx] in order;
 * "" when it has none): what the run's own prompts must hash to (pl_tokens_sha256). */
typedef int (*pl_result_part_checker)(const char *part, int k, const char *label, const char *path,
                                      const char *config, char tokens_sha256[65]);

#endif
