/* The result file's schema (schema.h): one row per dimension, variable (or family of variables) and
 * global attribute, in the order the writer writes them. The writer defines its variables from these
 * rows, merge decides from them what it stacks, checks and keeps per hook, and the Python reader's
 * names come from their JSON dump (`plateau help --schema-json`). Long names are templates: {m}, {s},
 * {ms} (m_s), {m_long}, {curve}, {score_long}, {alpha_long}, {state_long}, {attr}. */
#include <stdio.h>
#include <string.h>

#include "schema.h"

const pl_schema_dim PL_SCHEMA_DIMS[] = {
    {"hook", "merged files: one per input file (the merge's leading dimension)", "merged"},
    {"model", "models of a model series: one per model ([model] paths; the leading dimension)", "model series"},
    {"base", "base activation kinds ([perturb] bases)", ""},
    {"direction", "direction kinds ([perturb] directions)", ""},
    {"prompt", "sweep prompts ([data] n_prompts)", ""},
    {"sample", "directions drawn per (prompt, base, kind) ([perturb] n_directions)", ""},
    {"alpha", "steps along a direction ([perturb] steps)", ""},
    {"beta", "steps along a slice's second direction ([perturb] slice: alpha's grid)", "slice"},
    {"quantile", "quantile levels ([output] quantiles)", ""},
    {"ctx", "tokens per prompt ([data] n_ctx)", ""},
    {"position", "perturbed positions of whole contexts (n_positions > 1) as the curves' leading dimension "
                 "([readout] positions = each), activation's and the local geometry's (each position's own)",
     "positions"},
    {"hist_bin", "bins of the score histograms ([output] histogram_bins)", ""},
    {"hist_edge", "hist_bin + 1 bin edges", ""},
    {"comparison", "paired comparisons of kinds", "comparisons"},
    {"bound", "the two percentiles of a 95 % interval", "comparisons"},
    {"resid", "width of the activation at [perturb] hook (d_model; H*head_dim at attn.hook_z)", "resid"},
    {"resid_col", "the same width (Sigma's columns)", "activations"},
    {"{width_dim}", "a per-unit state's trailing dimension (difference_prompts: pair)", "state"},
    {"sae_feature", "features of the SAE", "sae_active"},
    {"eigen", "eigenpairs of the Fisher metric per (prompt, base) ([fisher] k)", "fisher"},
    {"optimum", "local optima of KL on the sphere per (prompt, base) ([optimize] starts)", "optimized"},
    {"other", "the base's real_other directions compared with (one per sample: [perturb] n_directions)",
     "local_other"},
    {"pc", "leading principal components of Sigma compared with ([fisher] n_pcs)", "local_pc"},
};
const int PL_SCHEMA_N_DIMS = (int)(sizeof PL_SCHEMA_DIMS / sizeof PL_SCHEMA_DIMS[0]);

#define FIXED PL_SCH_FIXED
#define METRIC PL_SCH_METRIC
#define MSCORE PL_SCH_METRIC_SCORE
#define SCORE PL_SCH_SCORE
#define STACK PL_MERGE_STACK
#define SAME PL_MERGE_SAME
#define ONCE PL_MERGE_ONCE_IF_SAME
#define RSU "residual stream units"

const pl_schema_var PL_SCHEMA_VARS[] = {
    {"alpha", FIXED, NC_DOUBLE, 1, "alpha", "{alpha}", "{alpha_long}", "", "step_mode", 0, SAME},
    {"beta", FIXED, NC_DOUBLE, 1, "beta", "{alpha}",
     "{alpha_long}, along the slice's second direction (its step at alpha = 1 orthogonalised against the first's)",
     "slice", "alpha_direction, beta_direction", 0, SAME},
    {"base", FIXED, NC_STRING, 0, "base", NULL, "base activation kind", "", "", 0, SAME},
    {"direction", FIXED, NC_STRING, 0, "direction", NULL, "direction kind", "", "", 0, SAME},
    {"prompt", FIXED, NC_INT, 1, "prompt", "1", "sweep prompt index", "", "", 0, SAME},
    {"sample", FIXED, NC_INT, 1, "sample", "1", "direction sample index", "", "", 0, SAME},
    {"position", FIXED, NC_INT, 1, "position", "1",
     "absolute token position of the prompt ([perturb] position: each perturbed one, replaced at once)", "positions",
     "", 0, SAME},
    {"quantile", FIXED, NC_DOUBLE, 1, "quantile", "1", "quantile level", "", "", 0, SAME},
    {"comparison", FIXED, NC_STRING, 0, "comparison", NULL,
     "paired comparison x/y of two (base, direction) kinds' scores, by (prompt, sample)", "comparisons", "", 0,
     SAME},
    {"comparison_x_base", FIXED, NC_INT, 0, "comparison", "1", "index into base of x", "comparisons", "", 0, STACK},
    {"comparison_x_direction", FIXED, NC_INT, 0, "comparison", "1", "index into direction of x", "comparisons", "",
     0, STACK},
    {"comparison_y_base", FIXED, NC_INT, 0, "comparison", "1", "index into base of y", "comparisons", "", 0, STACK},
    {"comparison_y_direction", FIXED, NC_INT, 0, "comparison", "1", "index into direction of y", "comparisons", "",
     0, STACK},
    {"bound", FIXED, NC_DOUBLE, 1, "bound", "1", "percentile of the bootstrap distribution bounding the 95 % interval",
     "comparisons", "", 0, SAME},
    /* per metric m (config order) */
    {"", METRIC, NC_FLOAT, 0, "[position] base direction prompt sample alpha", "{metric}", "{m_long}", "raw_curves", "", 1,
     STACK},
    {"_mean", METRIC, NC_DOUBLE, 0, "[position] base direction alpha", "{metric}", "mean over prompts and samples of {m}", "",
     "", 0, STACK},
    {"_median", METRIC, NC_DOUBLE, 0, "[position] base direction alpha", "{metric}", "median over prompts and samples of {m}",
     "", "", 0, STACK},
    {"_quantiles", METRIC, NC_DOUBLE, 0, "[position] quantile base direction alpha", "{metric}",
     "quantiles over prompts and samples of {m} (linear interpolation)", "", "", 0, STACK},
    {"_count", METRIC, NC_INT, 0, "[position] base direction alpha", "1", "curves with a finite {m} that entered the statistics",
     "", "", 0, STACK},
    /* per metric m of a slice ([perturb] slice): the (alpha, beta) grid base + alpha v1 + beta v2 */
    {"_slice", METRIC, NC_FLOAT, 0, "base prompt sample alpha beta", "{metric}",
     "{m_long} on the slice base + alpha v1 + beta v2", "slice_raw", "", 1, STACK},
    {"_slice_mean", METRIC, NC_DOUBLE, 0, "base alpha beta", "{metric}", "mean over prompts and samples of {m}_slice",
     "slice", "", 0, STACK},
    {"_slice_median", METRIC, NC_DOUBLE, 0, "base alpha beta", "{metric}",
     "median over prompts and samples of {m}_slice", "slice", "", 0, STACK},
    {"_slice_count", METRIC, NC_INT, 0, "base alpha beta", "1",
     "units whose {m}_slice is finite there (entered the statistics)", "slice", "", 0, STACK},
    /* per metric m and score s (float64 like alpha, so that sel(alpha=onset) finds the step) */
    {"", MSCORE, NC_DOUBLE, 0, "[position] base direction prompt sample", "{score}", "{score_long} (curve: {curve})", "",
     "score_curve; onset: onset_threshold; alpha_at_threshold: threshold; nonlinearity_alpha: fit_steps, tolerance, "
     "rule; plateau_length: threshold; giglemiani_nl_alpha: end_step, tolerance",
     0, STACK},
    {"_hist", MSCORE, NC_INT, 0, "[position] base direction hist_bin", "1",
     "histogram of {ms} over prompts and samples (bins: {s}_hist_edges)", "", "", 0, STACK},
    {"_hist_outside", MSCORE, NC_INT, 0, "[position] base direction", "1", "finite {ms} values outside the histogram's range", "",
     "", 0, STACK},
    {"_n_censored", MSCORE, NC_INT, 0, "[position] base direction", "1",
     "curves whose {ms} is censored (+inf: its event lies beyond the grid's last alpha); not in the histogram", "",
     "", 0, STACK},
    {"_n_pairs", MSCORE, NC_INT, 0, "[position] comparison", "1",
     "(prompt, sample) pairs where both kinds' {ms} are defined (finite, or censored: +inf)", "comparisons", "", 0,
     STACK},
    {"_n_censored_x", MSCORE, NC_INT, 0, "[position] comparison", "1",
     "kept pairs whose x {ms} is censored (+inf, tied at the top of every statistic)", "comparisons", "", 0, STACK},
    {"_n_censored_y", MSCORE, NC_INT, 0, "[position] comparison", "1",
     "kept pairs whose y {ms} is censored (+inf, tied at the top of every statistic)", "comparisons", "", 0, STACK},
    {"_ratio", MSCORE, NC_DOUBLE, 0, "[position] comparison", "1",
     "Kaplan-Meier median of x's {ms} over y's (kept pairs; NaN when either median lies beyond the grid)",
     "comparisons", "", 0, STACK},
    {"_ratio_ci", MSCORE, NC_DOUBLE, 0, "[position] comparison bound", "1", "95 % percentile-bootstrap interval of {ms}_ratio",
     "comparisons", "", 0, STACK},
    {"_difference", MSCORE, NC_DOUBLE, 0, "[position] comparison", "{score}", "median over pairs of x's {ms} minus y's",
     "comparisons", "", 0, STACK},
    {"_difference_ci", MSCORE, NC_DOUBLE, 0, "[position] comparison bound", "{score}",
     "95 % percentile-bootstrap interval of {ms}_difference", "comparisons", "", 0, STACK},
    {"_wilcoxon_p", MSCORE, NC_DOUBLE, 0, "[position] comparison", "1",
     "two-sided Wilcoxon signed-rank p-value of x's {ms} against y's", "comparisons", "", 0, STACK},
    {"_wilcoxon_w", MSCORE, NC_DOUBLE, 0, "[position] comparison", "1", "Wilcoxon W+: sum of the ranks of |x - y| where x > y ({ms})",
     "comparisons", "", 0, STACK},
    /* per score s that any metric has */
    {"_hist_edges", SCORE, NC_DOUBLE, 1, "hist_edge", "{score}",
     "bin edges of the {s} histograms (bins [e_k, e_k+1), the last closed)", "", "", 0, SAME},
    {"base_norm", FIXED, NC_DOUBLE, 0, "base direction prompt sample", RSU, "|base| of the curve, in the residual basis",
     "", "", 0, STACK},
    {"direction_norm", FIXED, NC_DOUBLE, 0, "base direction prompt sample", RSU,
     "|d| of the curve's direction as its steps use it (centred when they are), before the step mode's scaling; "
     "step k lies |alpha_k| |d| (to_target), |alpha_k| norm_scale |r| (fixed_norm; r the base, or the prompt's real "
     "activation under step_reference = real) or |alpha_k| (absolute) from the base (arc: on the sphere around mu "
     "through the base)",
     "", "", 0, STACK},
    /* the local geometry at the bases (issue 17, [fisher] and `optimized`): per base, a synthetic base being
     * one per (prompt, sample) and a real one the same for every sample (hence the sample dimension) */
    {"fisher_eigenvalue", FIXED, NC_DOUBLE, 0, "[site] prompt base sample eigen", "nats per squared " RSU,
     "top eigenvalues (descending) of the Fisher metric F = J^T (diag p - p p^T) J at the base, J = dlogits/dx at "
     "the hook and position, p the base's next-token distribution (1/2 d^T F d is KL's second-order term); computed "
     "in double, stored from float32",
     "fisher", "", 0, STACK},
    {"fisher_trace", FIXED, NC_DOUBLE, 0, "[site] prompt base sample", "nats per squared " RSU,
     "trace of the Fisher metric F at the base (exact: one JVP row per residual dimension)", "local", "", 0, STACK},
    {"kl_rayleigh", FIXED, NC_DOUBLE, 0, "[position] base direction prompt sample", "nats per squared " RSU,
     "Rayleigh quotient d^T F d / |d|^2 of the curve's direction d (as its steps use it) under the Fisher metric at "
     "its base: KL ~ 1/2 kl_rayleigh t^2 for a step of length t along d (NaN: a unit without a direction); whole "
     "contexts: d the joint step (every position's at alpha = 1) and F the pull-back of the readout through every "
     "perturbed position (the mean over positions, or each position's with [readout] positions = each)",
     "local", "", 0, STACK},
    {"fisher_fraction", FIXED, NC_DOUBLE, 0, "[site] base direction prompt sample", "1",
     "fraction of |d|^2 of the curve's direction d (as its steps use it) inside the span of the top [fisher] k "
     "eigenvectors of F at its base (NaN: a unit without a direction; whole contexts: each position's step in that "
     "position's F)",
     "fisher", "", 0, STACK},
    {"optimum_objective", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum", "nats",
     "KL(clean || perturbed at x + delta) at the optimum of each start (Riemannian gradient ascent on |delta| = r, "
     "r = [optimize] radius_alpha in the step mode's units; clean: the base's own logits)", "optimized", "", 0, STACK},
    {"optimum_iterations", FIXED, NC_INT, 0, "[site] prompt base sample optimum", "1",
     "accepted ascent steps of each start (-1: not computed)", "optimized", "", 0, STACK},
    {"optimum_tangential_grad", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum", "nats per " RSU,
     "norm of the tangential part of grad KL at the optimum (0 at an exact optimum on the sphere)", "optimized", "",
     0, STACK},
    {"optimum_grad_norm", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum", "nats per " RSU,
     "norm of grad KL at the optimum projected off the constraints (the centred basis's all-ones direction; under "
     "[optimize] orthogonal the earlier optima) but not off delta: the gradient rule's reference "
     "(optimum_tangential_grad <= tolerance * optimum_grad_norm)", "optimized", "", 0, STACK},
    {"optimum_status", FIXED, NC_INT, 0, "[site] prompt base sample optimum", "1",
     "how each start's ascent ended (flag_values 1 2 3 4, flag_meanings gradient flat cap stall): 1 gradient "
     "(converged: optimum_tangential_grad <= tolerance * optimum_grad_norm), 2 flat (converged: an accepted step "
     "without backtracking changed KL by <= tolerance^2 * KL), 3 cap (not converged: max_iterations accepted "
     "steps), 4 stall (not converged: backtracking shrank the turn below 1e-8 rad); -1: not computed",
     "optimized", "flag_values flag_meanings", 0, STACK},
    {"optimum_start", FIXED, NC_INT, 0, "[site] prompt base sample optimum", "1",
     "the start (0..starts-1, drawn as [optimize] start_kind) each optimum came from; the optimum dimension is "
     "ranked by optimum_objective, descending, ties by the lower start (orthogonal = false), or is the sequence of "
     "orthogonal optima (orthogonal = true); the optimized kind's sample s is optimum s (-1: not computed)",
     "optimized", "", 0, STACK},
    {"optimum_cluster", FIXED, NC_INT, 0, "[site] prompt base sample optimum", "1",
     "the optimum's cluster among its base's optima by |cos| >= [optimize] distinct_cos (chained; the clusters "
     "optimum_distinct counts), numbered 0, 1, ... by first appearance along the optimum dimension: keep the first "
     "optimum of each label to drop duplicates (-1: not computed)", "optimized", "", 0, STACK},
    {"optimum_distinct", FIXED, NC_INT, 0, "[site] prompt base sample", "1",
     "distinct optima of the base: clusters of the optima by |cos| >= [optimize] distinct_cos (chained; -1: not "
     "computed)", "optimized", "", 0, STACK},
    {"fisher_max_sae_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample eigen", "1",
     "largest |cos| of the Fisher eigenvector with the SAE's decoder rows (W_dec as stored)", "fisher_sae", "", 0,
     STACK},
    {"fisher_sae_feature", FIXED, NC_INT, 0, "[site] prompt base sample eigen", "1",
     "the SAE feature (row of W_dec) of fisher_max_sae_cos (-1: not computed)", "fisher_sae", "", 0, STACK},
    {"optimum_max_sae_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum", "1",
     "largest |cos| of the optimum with the SAE's decoder rows (W_dec as stored)", "optimized_sae", "", 0, STACK},
    {"optimum_sae_feature", FIXED, NC_INT, 0, "[site] prompt base sample optimum", "1",
     "the SAE feature (row of W_dec) of optimum_max_sae_cos (-1: not computed)", "optimized_sae", "", 0, STACK},
    {"fisher_real_other_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample eigen other", "1",
     "|cos| of the Fisher eigenvector with the base's real_other directions x_partner - base (real_other's draws "
     "of samples 0..n_directions-1 at this base, as its curves use them; NaN: a zero direction)", "fisher_other", "",
     0, STACK},
    {"optimum_real_other_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum other", "1",
     "|cos| of the optimum with the base's real_other directions (as fisher_real_other_cos)", "optimized_other", "",
     0, STACK},
    {"fisher_pc_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample eigen pc", "1",
     "|cos| of the Fisher eigenvector with the leading principal components of Sigma (sigma's eigenvectors in the "
     "residual basis, descending variance)", "fisher_pc", "", 0, STACK},
    {"optimum_pc_cos", FIXED, NC_DOUBLE, 0, "[site] prompt base sample optimum pc", "1",
     "|cos| of the optimum with the leading principal components of Sigma (as fisher_pc_cos)", "optimized_pc", "", 0,
     STACK},
    {"fisher_eigenvector", FIXED, NC_FLOAT, 0, "[site] prompt base sample eigen resid", "1",
     "unit eigenvectors of the Fisher metric at the base (fisher_eigenvalue's; the largest-|component| entry "
     "positive), in the residual basis ([output] vectors)", "fisher_vectors", "residual_basis", 1, STACK},
    {"optimum_direction", FIXED, NC_FLOAT, 0, "[site] prompt base sample optimum resid", "1",
     "unit direction delta / r of each optimum at the base, in the residual basis ([output] vectors)",
     "optimized_vectors", "residual_basis", 1, STACK},
    {"prompt_text", FIXED, NC_STRING, 0, "prompt", NULL,
     "the sweep prompt's tokens decoded by the model's tokenizer (invalid UTF-8 as U+FFFD)", "tokenizer", "", 0, ONCE},
    {"tokens", FIXED, NC_INT, 0, "prompt ctx", "1", "token ids of the prompt", "", "", 0, ONCE},
    {"next_token", FIXED, NC_INT, 0, "prompt", "1",
     "the data's token after the prompt (-1: none); ce_loss at the last position predicts it", "", "", 0, STACK},
    /* the direction kinds' per-unit state, in [perturb] directions order */
    {"partner", PL_SCH_STATE, NC_INT, 0, "prompt sample", "1", "{state_long}", "real_other", "", 0, ONCE},
    {"{state}", PL_SCH_STATE, NC_INT, 0, "[base] prompt sample [{width_dim}]", "1", "{state_long}", "state", "", 0,
     STACK},
    {"sae_feature_active_bases", FIXED, NC_INT, 0, "sae_feature", "1",
     "bases of the sweep (real: per prompt; synthetic: per prompt and sample) at which the SAE feature is active "
     "(> 0); 0: never active in the run",
     "sae_active", "", 0, STACK},
    {"activation", FIXED, NC_FLOAT, 0, "[position] prompt resid", RSU,
     "real activation of each sweep prompt at (hook, position) (whole contexts: at each perturbed position)",
     "activations", "residual_basis", 0, STACK},
    {"mu", FIXED, NC_DOUBLE, 0, "resid", RSU, "mean of the covariance prompts' activations", "activations",
     "residual_basis", 0, STACK},
    {"sigma", FIXED, NC_DOUBLE, 0, "resid resid_col", RSU " squared",
     "covariance of the covariance prompts' activations (unbiased; the positive-definite Sigma sampled from)",
     "activations", "residual_basis", 0, STACK},
    /* merge's own */
    {"hook", PL_SCH_MERGED, NC_STRING, 1, "hook", NULL, "hook where the perturbation is applied (one per merged file)",
     "merged", "", 0, SAME},
    {"hook_{attr}", PL_SCH_MERGED, NC_STRING, 0, "hook", NULL, "global attribute '{attr}' of the input file of this hook",
     "merged", "", 0, SAME},
    {"model", PL_SCH_MERGED, NC_STRING, 1, "model", NULL, "label of the model ([model] paths' label=, else its dir's name)",
     "model series", "", 0, SAME},
    {"model_path", PL_SCH_MERGED, NC_STRING, 0, "model", NULL, "the model, absolute", "model series", "", 0, SAME},
    {"model_sha256", PL_SCH_MERGED, NC_STRING, 0, "model", NULL,
     "sha256 of the model's weight file(s) as stored (the single-model file's model_sha256)", "model series", "", 0,
     SAME},
    {"model_step", PL_SCH_MERGED, NC_INT, 0, "model", NULL, "training step of the model (-1: not given)",
     "model series", "", 0, SAME},
    {"model_{attr}", PL_SCH_MERGED, NC_STRING, 0, "model", NULL,
     "global attribute '{attr}' of the single-model file of this model", "model series", "", 0, SAME},
};
const int PL_SCHEMA_N_VARS = (int)(sizeof PL_SCHEMA_VARS / sizeof PL_SCHEMA_VARS[0]);

#define RUN(f) offsetof(pl_schema_globals, run.f)
#define OWN(f) offsetof(pl_schema_globals, f)
#define MERGE_ONLY ((size_t)-1)
#define TEXT PL_GA_TEXT
#define INT PL_GA_INT
#define BOOL PL_GA_BOOL
#define DBL PL_GA_DOUBLE
#define SHARED PL_GA_SHARED
#define PH_TEXT PL_GA_PER_HOOK_TEXT
#define PH_NUM PL_GA_PER_HOOK_NUMBER
#define NEVER PL_GA_NEVER_GLOBAL

const pl_schema_global PL_SCHEMA_GLOBALS[] = {
    {"Conventions", TEXT, OWN(conventions), "CF-1.8", SHARED, 0, 0, NULL, NULL},
    {"title", TEXT, OWN(title), "what the file is", SHARED, 0, 0, NULL, NULL},
    {"source", TEXT, OWN(source), "plateau VERSION (git COMMIT)", PH_TEXT, NEVER, 4, NULL, NULL},
    {"history", TEXT, OWN(history), "TIME: the command line that made the file", PH_TEXT, NEVER, 3, NULL, NULL},
    {"config", TEXT, RUN(config), "the resolved config (INI text, every key)", PL_GA_CONFIG, 0, 1, NULL, NULL},
    {"model_path", TEXT, RUN(model_path), "the model, absolute", PH_TEXT, PL_GA_ALWAYS_GLOBAL, 10, NULL, NULL},
    {"model_sha256", TEXT, RUN(model_sha256), "sha256 of the model's weights", SHARED, 0, 0, NULL, NULL},
    {"model_config_sha256", TEXT, RUN(model_config_sha256),
     "sha256 of the model's config.json as read (empty: a llama2.c checkpoint, its header in its weights)", PH_TEXT,
     0, 18, NULL, NULL},
    {"synthetic_model", BOOL, RUN(synthetic_model), "1: random weights (plateau synth)", SHARED, 0, 0, NULL, NULL},
    {"data_path", TEXT, RUN(data_path), "[data] prompts, absolute", PH_TEXT, 0, 11, NULL, NULL},
    {"data_sha256", TEXT, OWN(data_sha256), "sha256 of the prompts file", PH_TEXT, 0, 8, NULL, NULL},
    {"git_commit", TEXT, OWN(git_commit), "the source's git commit", PH_TEXT, 0, 5, NULL, NULL},
    {"hostname", TEXT, OWN(hostname), "the host of rank 0", PH_TEXT, 0, 6, NULL, NULL},
    {"hook", TEXT, RUN(hook), "[perturb] hook", PL_GA_HOOK, 0, 0, NULL, NULL},
    {"read_hook", TEXT, RUN(read_hook), "[readout] read_hook, resolved", PH_TEXT, 0, 9, NULL, NULL},
    {"position", INT, RUN(position), "perturbed position, resolved (>= 0)", SHARED, 0, 0, NULL, NULL},
    {"read_position", INT, RUN(read_position),
     "readout position, resolved (>= 0); whole contexts: the last perturbed one (every one is read)", SHARED, 0, 0,
     NULL, NULL},
    {"n_positions", INT, RUN(n_positions),
     "perturbed positions position .. position + n_positions - 1, replaced at once (1: one position; more: whole "
     "contexts: [readout] positions = mean, each curve the mean over them of its metric; = each, a leading position "
     "dimension on every curve variable; base_norm and direction_norm the first position's)",
     SHARED, 0, 0, NULL, NULL},
    {"residual_basis", TEXT, RUN(residual_basis), "raw or centered", SHARED, 0, 0, NULL, NULL},
    {"center_direction", BOOL, RUN(center_direction), "[perturb] center_direction", SHARED, 0, 0, NULL, NULL},
    {"sampling", TEXT, RUN(sampling), "document_start or random_window", SHARED, 0, 0, NULL, NULL},
    {"duplicate_prompts_dropped", INT, RUN(duplicate_prompts_dropped), "prompts dropped as duplicates", SHARED, 0, 0,
     NULL, NULL},
    {"short_documents_skipped", INT, RUN(short_documents_skipped), "documents shorter than a prompt", SHARED, 0, 0,
     NULL, NULL},
    {"bos_token", INT, RUN(bos_token), "the BOS token every prompt starts with, or -1", SHARED, 0, 0, NULL, NULL},
    {"bootstrap_resamples", INT, RUN(bootstrap_resamples), "[output] bootstrap", SHARED, 0, 0, NULL, NULL},
    {"n_prompts", INT, RUN(n_prompts), "sweep prompts", SHARED, 0, 0, NULL, NULL},
    {"plateau_version", TEXT, OWN(plateau_version), "plateau's version", SHARED, 0, 0, NULL, NULL},
    {"n_ranks", INT, RUN(n_ranks), "MPI ranks of the run", PH_NUM, NEVER, 1,
     "MPI ranks of the run that produced this hook", NULL},
    {"evals_per_second", DBL, RUN(evals_per_second), "perturbed evaluations per second", PH_NUM, NEVER, 2,
     "perturbed evaluations per second of that run", "s-1"},
    {"created", TEXT, OWN(created), "UTC time the file was written", PH_TEXT, NEVER, 2, NULL, NULL},
    {"sigma_positive_definite_fix", TEXT, RUN(sigma_positive_definite_fix),
     "how Sigma was made positive definite, or empty", PH_TEXT, 0, 7, NULL, NULL},
    {"threads", INT, RUN(threads), "OpenBLAS threads per rank ([run] threads)", PH_NUM, 0, 3,
     "OpenBLAS threads per rank of that run", NULL},
    {"openblas_config", TEXT, RUN(openblas_config), "OpenBLAS's build and kernels", PH_TEXT, 0, 12, NULL, NULL},
    /* [sae] path set */
    {"sae_path", TEXT, RUN(sae_path), "the SAE directory", PH_TEXT, 0, 13, NULL, NULL},
    {"sae_sha256", TEXT, RUN(sae_sha256), "sha256 of the SAE's files", PH_TEXT, 0, 14, NULL, NULL},
    {"synthetic_sae", BOOL, RUN(synthetic_sae), "1: random SAE weights (plateau synth-sae)", PH_NUM, 0, 4,
     "1: the SAE of this hook has random weights (plateau synth-sae), 0: not", NULL},
    {"sae_hook", TEXT, RUN(sae_hook), "the hook the SAE reads", PH_TEXT, 0, 15, NULL, NULL},
    {"sae_architecture", TEXT, RUN(sae_architecture), "relu, topk, ...", PH_TEXT, 0, 16, NULL, NULL},
    {"sae_d_sae", INT, RUN(sae_d_sae), "features of the SAE", PH_NUM, 0, 6, "number of features of the SAE of this hook",
     NULL},
    {"sae_k", INT, RUN(sae_k), "k of a TopK SAE (absent otherwise)", PH_NUM, 0, 7, "k of the TopK SAE of this hook",
     NULL},
    {"sae_normalize_activations", TEXT, RUN(sae_normalize_activations), "the SAE's input normalisation", PH_TEXT, 0, 17,
     NULL, NULL},
    {"sae_apply_b_dec_to_input", BOOL, RUN(sae_apply_b_dec_to_input), "1: b_dec subtracted before encoding", PH_NUM, 0,
     5, "the SAE of this hook subtracts b_dec before encoding (1) or not (0)", NULL},
    {"sae_features_never_active", INT, RUN(sae_features_never_active), "features never active in the run (sae_active)",
     PH_NUM, 0, 8, "features of the SAE of this hook never active in that run", NULL},
    {"sae_draws_without_active_feature", INT, RUN(sae_draws_without_active_feature),
     "draws whose base had no active feature", PH_NUM, 0, 9, "draws of that run whose base had no active SAE feature",
     NULL},
    /* merge's own */
    {"swept_key", TEXT, MERGE_ONLY, "the config key the merged files differ in", PL_GA_MERGE, 0, 0, NULL, NULL},
    {"merged_from", TEXT, MERGE_ONLY, "the input files, one per line", PL_GA_MERGE, 0, 0, NULL, NULL},
};
const int PL_SCHEMA_N_GLOBALS = (int)(sizeof PL_SCHEMA_GLOBALS / sizeof PL_SCHEMA_GLOBALS[0]);

/* What each score's variables say it is (the experiment's scores, by name). */
static const struct {
    const char *name, *long_name;
} SCORE_LONG_NAMES[] = {
    {"onset", "first alpha where the curve, divided by its value at the last alpha, exceeds onset_threshold"},
    {"max_slope_alpha", "alpha (step midpoint) of the curve's steepest rise; +inf: in the grid's last step"},
    {"sharpness", "largest step-to-step rise of the curve divided by its last value, times (steps - 1)"},
    {"alpha_at_threshold", "first alpha where the curve reaches the absolute threshold (linear interpolation); +inf: never"},
    {"nonlinearity_alpha", "NL step ([readout] nonlinearity_rule): first alpha after the fit steps where the curve "
                           "deviates from the line through them by more than the tolerance (relative); +inf: never"},
    {"auc", "teren's calculate_auc: trapezoid area under the curve over the step index (not alpha)"},
    {"max_space_ratio_alpha", "teren's max_space_ratio_step: alpha of the largest triangle/area ratio of the curve's "
                              "prefixes (from step 5); +inf: at the last step the rule can return"},
    {"plateau_length", "Giglemiani et al.'s activation plateau length: first alpha where the curve >= "
                       "plateau_threshold; +inf: never"},
    {"giglemiani_nl_alpha", "Giglemiani et al.'s nl_step: alpha of the step before the first deviation from the line "
                            "through steps 0 and last - 1 by more than their tolerance; +inf: never"},
};

const char *pl_schema_score_long_name(const char *score)
{
    for (size_t i = 0; i < sizeof SCORE_LONG_NAMES / sizeof SCORE_LONG_NAMES[0]; i++)
        if (!strcmp(SCORE_LONG_NAMES[i].name, score))
            return SCORE_LONG_NAMES[i].long_name;
    return NULL;
}

const pl_schema_var *pl_schema_var_find(const char *name)
{
    for (int i = 0; i < PL_SCHEMA_N_VARS; i++) {
        const pl_schema_var *v = &PL_SCHEMA_VARS[i];
        if ((v->scope == PL_SCH_FIXED || v->scope == PL_SCH_STATE || v->scope == PL_SCH_MERGED) &&
            !strcmp(v->name, name))
            return v;
    }
    return NULL;
}

const pl_schema_global *pl_schema_global_find(const char *name)
{
    for (int i = 0; i < PL_SCHEMA_N_GLOBALS; i++)
        if (!strcmp(PL_SCHEMA_GLOBALS[i].name, name))
            return &PL_SCHEMA_GLOBALS[i];
    return NULL;
}

void pl_schema_expand(const char *tmpl, const char *const *keys, const char *const *values, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = tmpl; *p && n + 1 < size;) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        int k = -1;
        for (int i = 0; end && keys[i] && k < 0; i++)
            if (strlen(keys[i]) == (size_t)(end - p - 1) && !strncmp(p + 1, keys[i], (size_t)(end - p - 1)))
                k = i;
        if (k >= 0) {
            n += (size_t)snprintf(out + n, size - n, "%s", values[k]);
            p = end + 1;
        } else {
            out[n++] = *p++;
            out[n] = '\0';
        }
        if (n >= size)
            n = size - 1;
    }
}
