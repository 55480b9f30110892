/* Issue 20, item 6, on constructed curves: the flat-curve rule of the scores (scores.c), the ratio of
 * medians over a zero median (statistics.c) and which metric values [run] nonfinite catches (metrics.c).
 * Expected values by hand: a curve within one float32 ulp of its first value everywhere is flat (every
 * score NaN); two ulps is a curve (its onset is the first step); a ratio over a zero median is NaN. */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "plateau/error.h"
#include "experiment.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                                          \
    do {                                                                                                          \
        if (!(cond)) {                                                                                            \
            failures++;                                                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                         \
            fprintf(stderr, "\n");                                                                                \
        }                                                                                                         \
    } while (0)

enum { S = 6 };
static const double alpha[S] = {0.0, 0.2, 0.4, 0.6, 0.8, 1.0};

/* Every score of the stored curve C[S] as the sweep computes it (score curve, then scores). */
static void scores_of(const float *c, int score_on, double *out)
{
    double y[S];
    pl_score_params sp = {0.1, 1e-30, 1, 3, 0.1, PL_NL_LEAST_SQUARES, 1e-30, 0.2};
    pl_score_curve(c, S, score_on, y);
    pl_curve_scores(y, alpha, S, &sp, out);
}

static int all_nan(const double *out)
{
    for (int i = 0; i < PL_N_SCORES; i++)
        if (!isnan(out[i]))
            return 0;
    return 1;
}

int main(void)
{
    double out[PL_N_SCORES];
    float below1 = nextafterf(1.0f, 0.0f), five = 5.0f, up1 = nextafterf(five, INFINITY);
    float up2 = nextafterf(up1, INFINITY);

    /* cosine: 1 and the float below it (one ulp): rounding, not a curve */
    float cosine[S] = {1.0f, below1, 1.0f, below1, below1, 1.0f};
    scores_of(cosine, PL_SCORE_ON_ONE_MINUS, out);
    CHECK(all_nan(out), "cosine within one ulp of 1: onset %g, max_slope_alpha %g", out[PL_SCORE_ONSET],
          out[PL_SCORE_MAX_SLOPE_ALPHA]);
    float falling[S] = {1.0f, 0.999f, 0.99f, 0.9f, 0.8f, 0.5f};
    scores_of(falling, PL_SCORE_ON_ONE_MINUS, out);
    CHECK(out[PL_SCORE_ONSET] == 0.6, "a falling cosine: onset %g, want 0.6 (0.1 / 0.5 > 0.1 first there)",
          out[PL_SCORE_ONSET]);

    /* ce_loss (an increase from ce(0) = 5): one ulp of 5 is flat, two ulps is a rise at the first step */
    float ce1[S] = {five, up1, five, up1, up1, up1};
    scores_of(ce1, PL_SCORE_ON_INCREASE, out);
    CHECK(all_nan(out), "ce_loss within one ulp: onset %g", out[PL_SCORE_ONSET]);
    float ce2[S] = {five, up2, up2, up2, up2, up2};
    scores_of(ce2, PL_SCORE_ON_INCREASE, out);
    CHECK(out[PL_SCORE_ONSET] == 0.2 && out[PL_SCORE_SHARPNESS] == 5.0,
          "ce_loss two ulps up at step 1: onset %g (want 0.2), sharpness %g (want 5)", out[PL_SCORE_ONSET],
          out[PL_SCORE_SHARPNESS]);

    /* KL: exactly 0 everywhere is flat; a rise to 1e-30 is a curve (the rule is float32 rounding, not size) */
    float zero[S] = {0};
    scores_of(zero, PL_SCORE_ON_VALUE, out);
    CHECK(all_nan(out), "a zero KL curve: max_slope_alpha %g, sharpness %g", out[PL_SCORE_MAX_SLOPE_ALPHA],
          out[PL_SCORE_SHARPNESS]);
    float tiny[S] = {0.0f, 0.0f, 0.0f, 1e-30f, 1e-30f, 1e-30f};
    scores_of(tiny, PL_SCORE_ON_VALUE, out);
    CHECK(out[PL_SCORE_ONSET] == 0.6 && out[PL_SCORE_MAX_SLOPE_ALPHA] == 0.5, "a step to 1e-30: onset %g, slope %g",
          out[PL_SCORE_ONSET], out[PL_SCORE_MAX_SLOPE_ALPHA]);
    /* at FLT_MAX the ulp is the spacing below it: a drop to 0 is not within it */
    float huge[S] = {FLT_MAX, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    scores_of(huge, PL_SCORE_ON_VALUE, out);
    CHECK(!isnan(out[PL_SCORE_MAX_SLOPE_ALPHA]), "FLT_MAX then 0 taken for flat");
    /* a constant score curve handed to pl_curve_scores directly */
    double flat_y[S] = {0.25, 0.25, 0.25, 0.25, 0.25, 0.25};
    pl_score_params sp = {0.1, 0.1, 1, 3, 0.1, PL_NL_LEAST_SQUARES, 0.1, 0.2};
    pl_curve_scores(flat_y, alpha, S, &sp, out);
    CHECK(all_nan(out), "a constant y: alpha_at_threshold %g", out[PL_SCORE_ALPHA_AT_THRESHOLD]);

    /* ratio of medians over a zero median: NaN (and its interval), never inf */
    double x[4] = {1, 2, 3, 4}, yz[4] = {0, 0, 0, 0};
    pl_paired p;
    CHECK(pl_paired_compare(x, yz, 4, 50, 1, 2, &p) == PL_OK, "paired compare: %s", pl_error());
    CHECK(isnan(p.ratio) && isnan(p.ratio_lo) && isnan(p.ratio_hi) && p.diff == 2.5,
          "ratio over a zero median: %g [%g, %g], difference %g (want NaN, NaN, NaN, 2.5)", p.ratio, p.ratio_lo,
          p.ratio_hi, p.diff);

    /* the metric values [run] nonfinite catches: infinities always, NaN but for the documented ones */
    CHECK(!pl_metric_value_ok(PL_METRIC_L2, INFINITY) && !pl_metric_value_ok(PL_METRIC_KL, NAN) &&
              !pl_metric_value_ok(PL_METRIC_SAE_L0, NAN) && !pl_metric_value_ok(PL_METRIC_COSINE, -INFINITY),
          "an overflow passed");
    CHECK(pl_metric_value_ok(PL_METRIC_COSINE, NAN) && pl_metric_value_ok(PL_METRIC_CE_LOSS, NAN) &&
              pl_metric_value_ok(PL_METRIC_L2, FLT_MAX),
          "a documented value refused");
    if (failures)
        return 1;
    printf("flat-curve and non-finite unit tests passed\n");
    return 0;
}
