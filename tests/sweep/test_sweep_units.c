/* Unit tests of the sweep's statistics on constructed inputs: per-curve scores, aggregates, the
 * keyed random streams, the Gaussian fit (and its positive-definite fix) and sampling from it.
 * Expected values are worked out by hand in the comments; the statistical checks use bounds of
 * several standard errors with fixed seeds, so they are deterministic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

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

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* onset, max slope alpha and sharpness of CURVE through the library's score curve and scores */
static void old_scores(const float *curve, const double *alpha, int S, double threshold, int one_minus, float *onset,
                       float *slope, float *sharp)
{
    double y[64];
    double out[PL_N_SCORES];
    pl_score_params sp = {threshold, NAN, 1, 10, 0.1, PL_NL_LEAST_SQUARES, NAN, 0.2};
    pl_score_curve(curve, S, one_minus ? PL_SCORE_ON_ONE_MINUS : PL_SCORE_ON_VALUE, y);
    pl_curve_scores(y, alpha, S, &sp, out);
    *onset = out[PL_SCORE_ONSET];
    *slope = out[PL_SCORE_MAX_SLOPE_ALPHA];
    *sharp = out[PL_SCORE_SHARPNESS];
}

static void test_scores(void)
{
    double alpha[11];
    float curve[11];
    float onset, slope, sharp;
    for (int k = 0; k < 11; k++)
        alpha[k] = k / 10.0;

    /* alpha^2: normalised = alpha^2; first > 0.1 at 0.4 (0.16; 0.3^2 = 0.09); steepest step 0.9..1.0,
     * the grid's last: still rising at the end, so max_slope_alpha is censored (+inf); largest rise
     * 1 - 0.81 = 0.19, times 10 = 1.9 */
    for (int k = 0; k < 11; k++)
        curve[k] = (float)(alpha[k] * alpha[k] * 3.0);
    old_scores(curve, alpha, 11, 0.1, 0, &onset, &slope, &sharp);
    CHECK(close_to(onset, 0.4, 1e-6), "alpha^2 onset %g", onset);
    CHECK(slope == INFINITY, "alpha^2 max slope alpha %g, want censored", slope);
    CHECK(close_to(sharp, 1.9, 1e-5), "alpha^2 sharpness %g", sharp);

    /* a step from 0 to 2 between alpha 0.5 and 0.6: onset 0.6, slope midpoint 0.55, sharpness 10 */
    for (int k = 0; k < 11; k++)
        curve[k] = k >= 6 ? 2.0f : 0.0f;
    old_scores(curve, alpha, 11, 0.1, 0, &onset, &slope, &sharp);
    CHECK(close_to(onset, 0.6, 1e-6), "step onset %g", onset);
    CHECK(close_to(slope, 0.55, 1e-6), "step max slope alpha %g", slope);
    CHECK(close_to(sharp, 10.0, 1e-5), "step sharpness %g", sharp);

    /* threshold 0.5 on a linear curve: first normalised value > 0.5 is 0.6 */
    for (int k = 0; k < 11; k++)
        curve[k] = (float)alpha[k];
    old_scores(curve, alpha, 11, 0.5, 0, &onset, &slope, &sharp);
    CHECK(close_to(onset, 0.6, 1e-6), "linear onset %g", onset);
    CHECK(close_to(sharp, 1.0, 1e-5), "linear sharpness %g", sharp);

    /* cosine scores use 1 - cosine: cos = 1 - alpha^2 behaves like alpha^2 */
    for (int k = 0; k < 11; k++)
        curve[k] = (float)(1.0 - alpha[k] * alpha[k]);
    old_scores(curve, alpha, 11, 0.1, 1, &onset, &slope, &sharp);
    CHECK(close_to(onset, 0.4, 1e-6), "cosine onset %g", onset);
    CHECK(slope == INFINITY, "cosine max slope alpha %g, want censored", slope);

    /* a flat zero curve has no normalised shape: onset and sharpness NaN */
    for (int k = 0; k < 11; k++)
        curve[k] = 0.0f;
    old_scores(curve, alpha, 11, 0.1, 0, &onset, &slope, &sharp);
    CHECK(isnan(onset) && isnan(sharp), "zero curve onset %g sharpness %g", onset, sharp);

    /* a NaN anywhere makes every score NaN */
    for (int k = 0; k < 11; k++)
        curve[k] = (float)alpha[k];
    curve[3] = NAN;
    old_scores(curve, alpha, 11, 0.1, 0, &onset, &slope, &sharp);
    CHECK(isnan(onset) && isnan(slope) && isnan(sharp), "NaN curve gives scores %g %g %g", onset, slope, sharp);
}

static void test_new_scores(void)
{
    double alpha[21], y[21];
    double out[PL_N_SCORES];
    for (int k = 0; k < 21; k++)
        alpha[k] = k / 20.0;
    /* y = 2 alpha: reaches 0.25 between alpha 0.10 (0.2) and 0.15 (0.3), at 0.125 exactly */
    pl_score_params sp = {0.1, 0.25, 1, 10, 0.1, PL_NL_LEAST_SQUARES, NAN, 0.2};
    for (int k = 0; k < 21; k++)
        y[k] = 2 * alpha[k];
    pl_curve_scores(y, alpha, 21, &sp, out);
    CHECK(close_to(out[PL_SCORE_ALPHA_AT_THRESHOLD], 0.125, 1e-6), "threshold crossing %g",
          out[PL_SCORE_ALPHA_AT_THRESHOLD]);
    CHECK(out[PL_SCORE_NONLINEARITY_ALPHA] == INFINITY, "a straight line never leaves its fit (censored): %g",
          out[PL_SCORE_NONLINEARITY_ALPHA]);
    /* a line through steps 1..10 (alpha 0.05..0.5) and a kink after step 14: y = alpha up to 0.7, then
     * alpha + 5 (alpha - 0.7); at 0.75 the deviation is 0.25 > 0.1 * 0.75 */
    for (int k = 0; k < 21; k++)
        y[k] = alpha[k] + (alpha[k] > 0.7 + 1e-12 ? 5 * (alpha[k] - 0.7) : 0.0);
    pl_curve_scores(y, alpha, 21, &sp, out);
    CHECK(close_to(out[PL_SCORE_NONLINEARITY_ALPHA], 0.75, 1e-6), "NL step %g", out[PL_SCORE_NONLINEARITY_ALPHA]);
    /* a threshold never reached, and no threshold at all */
    sp.threshold = 100;
    pl_curve_scores(y, alpha, 21, &sp, out);
    CHECK(out[PL_SCORE_ALPHA_AT_THRESHOLD] == INFINITY, "unreached threshold %g, want censored",
          out[PL_SCORE_ALPHA_AT_THRESHOLD]);
    /* a grid too short for the fit steps */
    pl_curve_scores(y, alpha, 11, &sp, out);
    CHECK(isnan(out[PL_SCORE_NONLINEARITY_ALPHA]), "11 steps cannot fit 1..10 and test after: %g",
          out[PL_SCORE_NONLINEARITY_ALPHA]);
    /* teren's NL_step divides by the line's SIGNED value: through y0 = 1 and y9 = -8 the line is 1 - i,
     * negative from step 2, so no deviation counts however large (censored, teren's n); least squares
     * (|line|) would flag step 10. A zero line (y0 = y9 = 0) counts any nonzero y at once (|d| / 0 =
     * inf), and Giglemiani's rule returns the step before. */
    pl_score_params tp = {0.1, NAN, 1, 10, 0.1, PL_NL_TEREN, NAN, 0.2};
    for (int k = 0; k < 12; k++)
        y[k] = k < 10 ? 1.0 - k : 100.0;
    pl_curve_scores(y, alpha, 12, &tp, out);
    CHECK(out[PL_SCORE_NONLINEARITY_ALPHA] == INFINITY, "teren rule below a negative line: %g, want censored",
          out[PL_SCORE_NONLINEARITY_ALPHA]);
    tp.nl_rule = PL_NL_LEAST_SQUARES;
    pl_curve_scores(y, alpha, 12, &tp, out);
    CHECK(close_to(out[PL_SCORE_NONLINEARITY_ALPHA], alpha[11], 1e-12), "least squares: %g, want %g",
          out[PL_SCORE_NONLINEARITY_ALPHA], alpha[11]);
    tp.nl_rule = PL_NL_TEREN;
    for (int k = 0; k < 12; k++)
        y[k] = k < 10 ? 0.0 : 5.0;
    pl_curve_scores(y, alpha, 12, &tp, out);
    CHECK(out[PL_SCORE_NONLINEARITY_ALPHA] == alpha[10] && out[PL_SCORE_GIGLEMIANI_NL_ALPHA] == alpha[9],
          "zero line: teren %g (want %g), Giglemiani %g (want %g)", out[PL_SCORE_NONLINEARITY_ALPHA], alpha[10],
          out[PL_SCORE_GIGLEMIANI_NL_ALPHA], alpha[9]);

    /* paired statistics keep censored scores: x = {1, 2, inf, inf}, y = {2, inf, 1, inf}; differences
     * -1, -inf, +inf, 0 (both censored: tied); median of x (2 + inf) / 2 = inf: beyond the grid, ratio
     * NaN; median difference (-1 + 0) / 2 = -0.5; one pair NaN is left out */
    double cx[5] = {1, 2, INFINITY, INFINITY, NAN}, cy[5] = {2, INFINITY, 1, INFINITY, 3};
    pl_paired cp;
    CHECK(pl_paired_compare(cx, cy, 5, 0, 1, 2, &cp) == PL_OK, "censored paired compare");
    CHECK(cp.n_pairs == 4 && cp.n_censored_x == 2 && cp.n_censored_y == 2 && isnan(cp.ratio) && cp.diff == -0.5,
          "censored pairs %d (%d, %d), ratio %g, difference %g", cp.n_pairs, cp.n_censored_x, cp.n_censored_y,
          cp.ratio, cp.diff);

    /* ce_loss scores see the increase over alpha 0 */
    float ce[3] = {2.0f, 2.5f, 4.0f};
    pl_score_curve(ce, 3, PL_SCORE_ON_INCREASE, y);
    CHECK(y[0] == 0.0 && y[1] == 0.5 && y[2] == 2.0, "ce increase %g %g %g", y[0], y[1], y[2]);

    /* histogram: 4 bins over [0, 1], the last closed; NaN left out, 1.5 and -0.1 outside */
    double v[8] = {0.0, 0.1, 0.25, 0.5, 0.99, 1.0, NAN, 1.5};
    int counts[4], outside;
    CHECK(pl_histogram(v, 8, 0.0, 1.0, 4, counts, &outside) == PL_OK, "histogram");
    CHECK(counts[0] == 2 && counts[1] == 1 && counts[2] == 1 && counts[3] == 2 && outside == 1,
          "histogram %d %d %d %d outside %d", counts[0], counts[1], counts[2], counts[3], outside);
}

static void test_describe(void)
{
    /* 1..10 in scrambled order, plus two NaNs that must be left out */
    float v[12] = {7, 3, NAN, 10, 1, 5, 9, 2, INFINITY, 8, 4, 6};
    double q[3] = {0.05, 0.25, 0.95}, qs[3], mean, median, scratch[12];
    int count;
    pl_describe(v, 12, q, 3, scratch, &mean, &median, qs, &count);
    CHECK(count == 10, "count %d", count);
    CHECK(close_to(mean, 5.5, 1e-12), "mean %g", mean);
    CHECK(close_to(median, 5.5, 1e-12), "median %g", median);
    /* numpy linear: h = 9 q; 0.05 -> 1 + 0.45; 0.25 -> 3 + 0.25; 0.95 -> 9 + 0.55 */
    CHECK(close_to(qs[0], 1.45, 1e-12), "q05 %g", qs[0]);
    CHECK(close_to(qs[1], 3.25, 1e-12), "q25 %g", qs[1]);
    CHECK(close_to(qs[2], 9.55, 1e-12), "q95 %g", qs[2]);
    float odd[3] = {5, -1, 2};
    pl_describe(odd, 3, q, 0, scratch, &mean, &median, qs, &count);
    CHECK(median == 2.0 && count == 3, "odd median %g", median);
    float none[2] = {NAN, NAN};
    pl_describe(none, 2, q, 3, scratch, &mean, &median, qs, &count);
    CHECK(count == 0 && isnan(mean) && isnan(median) && isnan(qs[0]), "all-NaN statistics");
}

static void test_rng(void)
{
    /* same key, same numbers; the draw order of other streams is irrelevant */
    pl_rng a, b, c;
    pl_rng_init(&a, 7, 3, PL_RNG_COV_TARGET, 1);
    pl_rng_init(&c, 7, 4, PL_RNG_COV_TARGET, 1);
    for (int i = 0; i < 100; i++)
        pl_rng_u64(&c);
    pl_rng_init(&b, 7, 3, PL_RNG_COV_TARGET, 1);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= pl_rng_u64(&a) == pl_rng_u64(&b);
    CHECK(same, "a stream is a function of its key");

    /* standard normals: mean 0 +- 5/sqrt(n), variance 1 +- 5 sqrt(2/n); neighbouring keys
     * uncorrelated (|r| < 5/sqrt(n)) */
    int n = 200000;
    double s = 0, s2 = 0, cross = 0;
    pl_rng_init(&a, 1, 0, PL_RNG_ISO_TARGET, 0);
    pl_rng_init(&b, 1, 0, PL_RNG_ISO_TARGET, 1);
    for (int i = 0; i < n; i++) {
        double x = pl_rng_gaussian(&a), y = pl_rng_gaussian(&b);
        s += x;
        s2 += x * x;
        cross += x * y;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(fabs(mean) < 5 / sqrt(n), "gaussian mean %g", mean);
    CHECK(fabs(var - 1) < 5 * sqrt(2.0 / n), "gaussian variance %g", var);
    CHECK(fabs(cross / n) < 5 / sqrt(n), "neighbouring streams correlate: %g", cross / n);

    /* below(n): uniform over 0..9 (chi-square with 9 dof < 40 is far in the tail) */
    long hist[10] = {0};
    pl_rng_init(&a, 2, 0, PL_RNG_PARTNER, 0);
    for (int i = 0; i < 100000; i++)
        hist[pl_rng_below(&a, 10)]++;
    double chi2 = 0;
    for (int k = 0; k < 10; k++)
        chi2 += (hist[k] - 10000.0) * (hist[k] - 10000.0) / 10000.0;
    CHECK(chi2 < 40, "below(10) chi-square %g", chi2);
}

static void test_fit_and_sample(void)
{
    /* X ~ N(mu, Sigma) with a known, correlated Sigma = A A^T */
    enum { C = 4, N = 40000 };
    const double mu[C] = {1.0, -2.0, 0.5, 3.0};
    const double A[C][C] = {{1.0, 0, 0, 0}, {0.5, 2.0, 0, 0}, {-0.3, 0.2, 0.7, 0}, {0.1, -0.4, 0.3, 1.5}};
    double Sigma[C][C] = {{0}};
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            for (int k = 0; k < C; k++)
                Sigma[i][j] += A[i][k] * A[j][k];
    float *X = malloc(sizeof(float) * N * C);
    pl_rng r;
    pl_rng_init(&r, 11, 0, 99, 0);
    for (int i = 0; i < N; i++) {
        double z[C];
        for (int c = 0; c < C; c++)
            z[c] = pl_rng_gaussian(&r);
        for (int c = 0; c < C; c++) {
            double v = mu[c];
            for (int k = 0; k < C; k++)
                v += A[c][k] * z[k];
            X[i * C + c] = (float)v;
        }
    }
    double fmu[C], chol[C * C], trace;
    pl_pd_report rep;
    CHECK(pl_fit_gaussian(X, N, C, fmu, chol, &trace, NULL, &rep) == PL_OK, "fit: %s", pl_error());
    CHECK(rep.n_raised == 0, "a well-conditioned Sigma needs no fix (%d raised)", rep.n_raised);
    for (int c = 0; c < C; c++)
        CHECK(fabs(fmu[c] - mu[c]) < 5 * sqrt(Sigma[c][c] / N), "mu[%d] %g vs %g", c, fmu[c], mu[c]);
    /* fitted Sigma = L L^T; standard error of a covariance entry ~ sqrt((S_ii S_jj + S_ij^2) / N) */
    double tr = 0;
    for (int i = 0; i < C; i++) {
        tr += Sigma[i][i];
        for (int j = 0; j < C; j++) {
            double f = 0;
            for (int k = 0; k < C; k++)
                f += chol[i * C + k] * chol[j * C + k];
            double se = sqrt((Sigma[i][i] * Sigma[j][j] + Sigma[i][j] * Sigma[i][j]) / N);
            CHECK(fabs(f - Sigma[i][j]) < 5 * se, "Sigma[%d][%d] %g vs %g (se %g)", i, j, f, Sigma[i][j], se);
        }
    }
    CHECK(fabs(trace - tr) < 0.05 * tr, "trace %g vs %g", trace, tr);

    /* sampling from the fit reproduces it */
    double s1[C] = {0}, s2[C][C] = {{0}};
    pl_rng_init(&r, 12, 0, PL_RNG_COV_TARGET, 0);
    for (int i = 0; i < N; i++) {
        double x[C];
        pl_sample_gaussian(&r, fmu, chol, C, x);
        for (int a = 0; a < C; a++) {
            s1[a] += x[a];
            for (int b = 0; b < C; b++)
                s2[a][b] += x[a] * x[b];
        }
    }
    for (int a = 0; a < C; a++) {
        double m = s1[a] / N;
        CHECK(fabs(m - fmu[a]) < 5 * sqrt(Sigma[a][a] / N), "sample mean[%d] %g vs %g", a, m, fmu[a]);
        for (int b = 0; b < C; b++) {
            double cov = s2[a][b] / N - (s1[a] / N) * (s1[b] / N);
            double se = sqrt((Sigma[a][a] * Sigma[b][b] + Sigma[a][b] * Sigma[a][b]) / N);
            CHECK(fabs(cov - Sigma[a][b]) < 10 * se, "sample cov[%d][%d] %g vs %g", a, b, cov, Sigma[a][b]);
        }
    }
    free(X);

    /* fewer activations than dimensions: Sigma is singular; the fix raises eigenvalues and says so,
     * and the factor reproduces the fitted Sigma up to that floor */
    enum { C2 = 8, N2 = 3 };
    float Y[N2 * C2];
    pl_rng_init(&r, 13, 0, 99, 1);
    for (int i = 0; i < N2 * C2; i++)
        Y[i] = (float)pl_rng_gaussian(&r);
    double mu2[C2], chol2[C2 * C2];
    CHECK(pl_fit_gaussian(Y, N2, C2, mu2, chol2, &trace, NULL, &rep) == PL_OK, "singular fit: %s", pl_error());
    CHECK(rep.n_raised >= C2 - (N2 - 1), "rank %d Sigma of width %d: %d eigenvalues raised", N2 - 1, C2,
          rep.n_raised);
    CHECK(rep.rel_change > 0 && rep.rel_change < 1e-6, "relative change %g", rep.rel_change);
}

int main(void)
{
    test_scores();
    test_new_scores();
    test_describe();
    test_rng();
    test_fit_and_sample();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("sweep unit tests passed\n");
    return 0;
}
