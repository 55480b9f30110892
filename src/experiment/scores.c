/* Per-curve scores (see README: onset, max_slope_alpha, sharpness). */
#include <math.h>

#include "plateau/error.h"
#include "experiment.h"

void pl_curve_scores(const float *curve, const double *alpha, int S, double threshold, int one_minus,
                     float *onset, float *max_slope_alpha, float *sharpness)
{
    *onset = *max_slope_alpha = *sharpness = NAN;
#define VAL(k) (one_minus ? 1.0 - (double)curve[k] : (double)curve[k])
    for (int k = 0; k < S; k++)
        if (!isfinite(VAL(k)))
            return;
    /* alpha of maximum slope: midpoint of the steepest step (first one on ties) */
    double best = -INFINITY;
    for (int k = 0; k + 1 < S; k++) {
        double slope = (VAL(k + 1) - VAL(k)) / (alpha[k + 1] - alpha[k]);
        if (slope > best) {
            best = slope;
            *max_slope_alpha = (float)(0.5 * (alpha[k] + alpha[k + 1]));
        }
    }
    double end = VAL(S - 1);
    if (!(end > 0.0))
        return; /* a curve that ends at 0 has no normalised shape */
    for (int k = 0; k < S; k++)
        if (VAL(k) / end > threshold) {
            *onset = (float)alpha[k];
            break;
        }
    double rise = -INFINITY;
    for (int k = 0; k + 1 < S; k++) {
        double d = VAL(k + 1) / end - VAL(k) / end;
        if (d > rise)
            rise = d;
    }
    *sharpness = (float)(rise * (S - 1));
#undef VAL
}

