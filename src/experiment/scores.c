/* Per-curve scores. Each sees the metric's score curve y(alpha) (1 - cosine for cosine, the increase
 * ce(alpha) - ce(0) for ce_loss, the value otherwise), which starts at 0 for the unperturbed base:
 *
 *   onset               first alpha where y / y(alpha_last) > onset_threshold (the curve's shape)
 *   max_slope_alpha     midpoint of the step of largest (y_{k+1} - y_k) / (alpha_{k+1} - alpha_k)
 *   sharpness           max_k (y_{k+1} - y_k) / y(alpha_last) x (steps - 1)
 *   alpha_at_threshold  first alpha where y reaches an absolute threshold, linearly interpolated
 *                       between the grid points around the crossing
 *   nonlinearity_alpha  teren's NL step: a least-squares line through steps nl_first..nl_last
 *                       (gsl_fit_linear); the first later step where |y - line| > tol |line|
 *
 * A score is NaN when undefined: every score when the curve has a non-finite value or is flat (below);
 * onset and sharpness when y(alpha_last) <= 0; alpha_at_threshold when y never reaches it (or no
 * threshold); nonlinearity_alpha when the grid has no step after nl_last or no step deviates.
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
    [PL_SCORE_ONSET] = {"onset", 1},
    [PL_SCORE_MAX_SLOPE_ALPHA] = {"max_slope_alpha", 1},
    [PL_SCORE_SHARPNESS] = {"sharpness", 0},
    [PL_SCORE_ALPHA_AT_THRESHOLD] = {"alpha_at_threshold", 1},
    [PL_SCORE_NONLINEARITY_ALPHA] = {"nonlinearity_alpha", 1},
};

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
    return NAN;
}

static double nonlinearity_alpha(const double *y, const double *alpha, int S, const pl_score_params *sp)
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
    return NAN;
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
    double best = -INFINITY;
    for (int k = 0; k + 1 < S; k++) {
        double slope = (y[k + 1] - y[k]) / (alpha[k + 1] - alpha[k]);
        if (slope > best) { /* first one on ties */
            best = slope;
            out[PL_SCORE_MAX_SLOPE_ALPHA] = 0.5 * (alpha[k] + alpha[k + 1]);
        }
    }
    out[PL_SCORE_ALPHA_AT_THRESHOLD] = alpha_at_threshold(y, alpha, S, sp->threshold);
    out[PL_SCORE_NONLINEARITY_ALPHA] = nonlinearity_alpha(y, alpha, S, sp);
    double end = y[S - 1];
    if (!(end > 0.0))
        return; /* a curve that ends at 0 has no normalised shape */
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
