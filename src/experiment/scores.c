/* Per-curve scores. Each sees the metric's score curve y(alpha) (1 - cosine for cosine, the increase
 * ce(alpha) - ce(0) for ce_loss, the value otherwise), which starts at 0 for the unperturbed base:
 *
 *   onset               first alpha where y / y(alpha_last) > onset_threshold (the curve's shape)
 *   max_slope_alpha     midpoint of the step of largest (y_{k+1} - y_k) / (alpha_{k+1} - alpha_k)
 *   sharpness           max_k (y_{k+1} - y_k) / y(alpha_last) x (steps - 1)
 *   alpha_at_threshold  first alpha where y reaches an absolute threshold, linearly interpolated
 *                       between the grid points around the crossing
 *   nonlinearity_alpha  the NL step, by [readout] nonlinearity_rule:
 *                       least_squares: a least-squares line through steps nl_first..nl_last
 *                       (gsl_fit_linear); the first later step where |y - line| > tol |line|
 *                       teren: jettjaniak/teren, branch draft-paper-experiments,
 *                       notebooks/baseline_experiment.py, NL_step(values, start_step, end_step,
 *                       threshold): the line through step indices start_step - 1 and end_step - 1
 *                       (first = start_step, last = end_step), the first step i >= end_step where
 *                       |y_i - e_i| / e_i > tol with e_i the line's SIGNED value (a negative e_i
 *                       never counts; e_i = 0 counts unless y_i = 0, as IEEE division gives)
 *   auc                 teren's calculate_auc (same file): the trapezoid area under y over the STEP
 *                       INDEX 0..S-1 (np.trapz(values, np.arange(len(values)))), not over alpha
 *   max_space_ratio_alpha  teren's max_space_ratio_step (same file; also explorations,
 *                       notebooks/experiment_plateaus.ipynb): for i = 1..S-1 the ratio of the
 *                       triangle y[i-1] i / 2 to the trapezoid area of y[0..i-1] over indices (0 when
 *                       that area is 0); alpha at the index j = argmax over i >= 6 of the ratio, - 1
 *                       (their np.argmax(aucs[5:]) + 5, first on ties). Needs S >= 7.
 *   plateau_length      Giglemiani et al. (teren, branch explorations, notebooks/experiment_plateaus.ipynb,
 *                       find_activation_plateau_length(dists, threshold=20)): the first grid alpha
 *                       where y >= plateau_threshold, not interpolated
 *   giglemiani_nl_alpha their nl_step(values, end_step=10, threshold=20) (same notebook): the line
 *                       through step indices 0 and nl_last - 1, the first step i >= nl_last where
 *                       |y_i - e_i| / e_i > gig_nl_tolerance (signed e_i, as teren's); alpha at i - 1
 *
 * A score is NaN when undefined: every score when the curve has a non-finite value or is flat (below);
 * onset and sharpness when y(alpha_last) <= 0; alpha_at_threshold and plateau_length without a
 * threshold; the NL scores when the grid has no step after their fit steps.
 *
 * A score is censored (PL_CENSORED, +inf) when its event lies beyond the grid: alpha_at_threshold and
 * plateau_length when y never reaches the threshold (Giglemiani's code returns 100, their grid's end),
 * the NL scores when no step deviates (teren's and Giglemiani's code return n = len(values), one step
 * past the grid: +inf ranks exactly where their n ranks, above every step), max_slope_alpha when the
 * steepest step is the grid's last (a curve still rising at the end), max_space_ratio_alpha when the
 * argmax is the last index the rule can return (S - 2: teren's prefixes never include the last point).
 * onset, sharpness and auc are always inside the grid.
 *
 * Flat: a curve that never leaves its first value by more than the float32 rounding of the values it
 * is stored as, |c_k - c_0| <= ulp(max(|c_k|, |c_0|)) for every k (c the stored curve: the difference
 * of two float32 roundings of one number can be one ulp of the larger). Such a curve has no shape:
 * onset and sharpness would normalise rounding noise by rounding noise, the slopes and crossings would
 * be those of the noise. For the divergences and distances, which are exactly 0 at the base, flat means
 * 0 everywhere; a step vector equal to the base's bit for bit is measured as the base itself
 * (metrics.c), so a zero direction gives a flat curve however the model's batched matmuls round.
 */
#include <math.h>

#include <gsl/gsl_fit.h>

#include "plateau/error.h"
#include "experiment.h"

const pl_score_info PL_SCORES[PL_N_SCORES] = {
    [PL_SCORE_ONSET] = {"onset", 1, 0},
    [PL_SCORE_MAX_SLOPE_ALPHA] = {"max_slope_alpha", 1, 0},
    [PL_SCORE_SHARPNESS] = {"sharpness", 0, 0},
    [PL_SCORE_ALPHA_AT_THRESHOLD] = {"alpha_at_threshold", 1, 0},
    [PL_SCORE_NONLINEARITY_ALPHA] = {"nonlinearity_alpha", 1, 1},
    [PL_SCORE_AUC] = {"auc", 0, 0},
    [PL_SCORE_MAX_SPACE_RATIO_ALPHA] = {"max_space_ratio_alpha", 1, 0},
    [PL_SCORE_PLATEAU_LENGTH] = {"plateau_length", 1, 0},
    [PL_SCORE_GIGLEMIANI_NL_ALPHA] = {"giglemiani_nl_alpha", 1, 1},
};

const char *const PL_NL_RULE_NAMES[PL_N_NL_RULES] = {[PL_NL_LEAST_SQUARES] = "least_squares",
                                                     [PL_NL_TEREN] = "teren"};

int pl_score_degenerate(int score, int metric)
{
    /* KL and JSD are quadratic in alpha near 0 (their gradient vanishes at the clean distribution), and
     * so is 1 - cosine (~ theta^2 / 2): a line through the first steps is left behind at the first
     * step tested whatever the curve, so the NL step says nothing. js_dist (sqrt of JSD), l2 and the
     * ce_loss increase are linear near 0. */
    return PL_SCORES[score].nl_like &&
           (metric == PL_METRIC_KL || metric == PL_METRIC_JSD || metric == PL_METRIC_COSINE);
}

/* 1 when |c_k - c_0| <= ulp(max(|c_k|, |c_0|)) for every k of the float32 curve C[S] (see above). */
static int curve_is_flat(const float *c, int S)
{
    for (int k = 1; k < S; k++) {
        float big = fabsf(c[k]) > fabsf(c[0]) ? fabsf(c[k]) : fabsf(c[0]);
        float up = nextafterf(big, INFINITY); /* ulp(big): the spacing above big (below at FLT_MAX) */
        double ulp = isinf(up) ? (double)big - (double)nextafterf(big, 0.0f) : (double)up - (double)big;
        if (!(fabs((double)c[k] - (double)c[0]) <= ulp))
            return 0;
    }
    return 1;
}

void pl_score_curve(const float *curve, int S, int score_on, double *y)
{
    if (S > 1 && curve_is_flat(curve, S)) { /* no shape: every score NaN (pl_curve_scores) */
        for (int k = 0; k < S; k++)
            y[k] = NAN;
        return;
    }
    for (int k = 0; k < S; k++)
        y[k] = score_on == PL_SCORE_ON_ONE_MINUS ? 1.0 - (double)curve[k]
               : score_on == PL_SCORE_ON_INCREASE ? (double)curve[k] - (double)curve[0]
                                                  : (double)curve[k];
}

static double alpha_at_threshold(const double *y, const double *alpha, int S, double threshold)
{
    if (!isfinite(threshold))
        return NAN;
    for (int k = 0; k < S; k++)
        if (y[k] >= threshold) {
            if (k == 0)
                return alpha[0];
            /* y[k - 1] < threshold <= y[k]: the crossing on the segment between them */
            double t = (threshold - y[k - 1]) / (y[k] - y[k - 1]);
            return alpha[k - 1] + t * (alpha[k] - alpha[k - 1]);
        }
    return PL_CENSORED;
}

/* Giglemiani's find_activation_plateau_length: the first grid alpha where y >= threshold. */
static double plateau_length(const double *y, const double *alpha, int S, double threshold)
{
    if (!isfinite(threshold))
        return NAN;
    for (int k = 0; k < S; k++)
        if (y[k] >= threshold)
            return alpha[k];
    return PL_CENSORED;
}

static double nl_least_squares(const double *y, const double *alpha, int S, const pl_score_params *sp)
{
    int a = sp->nl_first, b = sp->nl_last;
    if (b >= S - 1 || b <= a)
        return NAN;
    double c0, c1, cov00, cov01, cov11, sumsq;
    if (gsl_fit_linear(alpha + a, 1, y + a, 1, (size_t)(b - a + 1), &c0, &c1, &cov00, &cov01, &cov11, &sumsq))
        return NAN;
    for (int k = b + 1; k < S; k++) {
        double line = c0 + c1 * alpha[k];
        if (fabs(y[k] - line) > sp->nl_tolerance * fabs(line))
            return alpha[k];
    }
    return PL_CENSORED;
}

/* The step index i >= end of the first relative deviation > TOL from the line through step indices
 * x1 and x2 (teren's NL_step and Giglemiani's nl_step, which share this loop: the deviation is divided
 * by the line's signed value, as theirs); -1 when none. The line is over indices, as theirs: on a
 * uniform grid the same as over alpha. */
static int nl_two_point(const double *y, int S, int x1, int x2, int end, double tol)
{
    double slope = (y[x2] - y[x1]) / (double)(x2 - x1), intercept = y[x1] - slope * x1;
    for (int i = end; i < S; i++) {
        double expected = slope * i + intercept;
        if (fabs(y[i] - expected) / expected > tol)
            return i;
    }
    return -1;
}

static double nl_teren(const double *y, const double *alpha, int S, const pl_score_params *sp)
{
    int start = sp->nl_first, end = sp->nl_last; /* teren's start_step, end_step */
    if (start < 1 || end <= start || end >= S)
        return NAN; /* teren raises when end_step >= n */
    int i = nl_two_point(y, S, start - 1, end - 1, end, sp->nl_tolerance);
    return i < 0 ? PL_CENSORED : alpha[i];
}

static double nl_giglemiani(const double *y, const double *alpha, int S, const pl_score_params *sp)
{
    int end = sp->nl_last; /* their end_step (10) */
    if (end < 2 || end >= S)
        return NAN;
    int i = nl_two_point(y, S, 0, end - 1, end, sp->gig_nl_tolerance);
    return i < 0 ? PL_CENSORED : alpha[i - 1]; /* their i - 1: the last step still on the line */
}

/* teren's calculate_auc: np.trapz over the step indices of the first N values. */
static double trapz_steps(const double *y, int N)
{
    double a = 0.0;
    for (int k = 0; k + 1 < N; k++)
        a += 0.5 * (y[k] + y[k + 1]);
    return a;
}

static double max_space_ratio_alpha(const double *y, const double *alpha, int S)
{
    if (S < 7)
        return NAN; /* their aucs[5:] is empty */
    double best = -INFINITY;
    int at = -1;
    for (int i = 6; i < S; i++) { /* their aucs[5:]: i >= 6 (aucs[j] belongs to i = j + 1) */
        double area = trapz_steps(y, i); /* y finite here, so the ratio is finite */
        double ratio = area == 0.0 ? 0.0 : y[i - 1] * i / 2.0 / area;
        if (ratio > best) { /* np.argmax: the first maximum */
            best = ratio;
            at = i - 1;
        }
    }
    return at == S - 2 ? PL_CENSORED : alpha[at];
}

static double max_slope_alpha(const double *y, const double *alpha, int S)
{
    double best = -INFINITY, at = NAN;
    int k_best = -1;
    for (int k = 0; k + 1 < S; k++) {
        double slope = (y[k + 1] - y[k]) / (alpha[k + 1] - alpha[k]);
        if (slope > best) { /* first one on ties */
            best = slope;
            at = 0.5 * (alpha[k] + alpha[k + 1]);
            k_best = k;
        }
    }
    return k_best == S - 2 ? PL_CENSORED : at; /* steepest in the last step: still rising */
}

/* onset and sharpness: the curve's shape normalised by its last value (NaN when that is <= 0). */
static void shape_scores(const double *y, const double *alpha, int S, const pl_score_params *sp, double *out)
{
    double end = y[S - 1];
    if (!(end > 0.0))
        return;
    for (int k = 0; k < S; k++)
        if (y[k] / end > sp->onset_threshold) {
            out[PL_SCORE_ONSET] = alpha[k];
            break;
        }
    double rise = -INFINITY;
    for (int k = 0; k + 1 < S; k++) {
        double d = y[k + 1] / end - y[k] / end;
        if (d > rise)
            rise = d;
    }
    out[PL_SCORE_SHARPNESS] = rise * (S - 1);
}

void pl_curve_scores(const double *y, const double *alpha, int S, const pl_score_params *sp, double *out)
{
    for (int i = 0; i < PL_N_SCORES; i++)
        out[i] = NAN;
    int moves = 0;
    for (int k = 0; k < S; k++) {
        if (!isfinite(y[k]))
            return;
        moves |= y[k] != y[0];
    }
    if (!moves)
        return; /* a constant curve has no shape */
    out[PL_SCORE_MAX_SLOPE_ALPHA] = max_slope_alpha(y, alpha, S);
    out[PL_SCORE_ALPHA_AT_THRESHOLD] = alpha_at_threshold(y, alpha, S, sp->threshold);
    out[PL_SCORE_NONLINEARITY_ALPHA] = sp->nl_rule == PL_NL_TEREN ? nl_teren(y, alpha, S, sp)
                                                                   : nl_least_squares(y, alpha, S, sp);
    out[PL_SCORE_AUC] = trapz_steps(y, S);
    out[PL_SCORE_MAX_SPACE_RATIO_ALPHA] = max_space_ratio_alpha(y, alpha, S);
    out[PL_SCORE_PLATEAU_LENGTH] = plateau_length(y, alpha, S, sp->plateau_threshold);
    out[PL_SCORE_GIGLEMIANI_NL_ALPHA] = nl_giglemiani(y, alpha, S, sp);
    shape_scores(y, alpha, S, sp, out);
}
