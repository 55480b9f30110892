/* The science of a sweep: keyed random streams, the Gaussian fit of real activations, the metrics
 * of an evaluation, per-curve scores and statistics. Nothing here knows of MPI, checkpoints or
 * NetCDF. */
#ifndef PLATEAU_EXPERIMENT_H
#define PLATEAU_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include "plateau/sweep.h"

/* ------------------------------------------------------------ keyed random streams (rng.c)
 * A stream is a pure function of its key (seed, a, b, c): value i is splitmix64's finaliser of
 * key + (i + 1) * golden gamma. No state is shared between streams, so a unit's numbers do not
 * depend on which rank draws them or in which order. */
enum { PL_RNG_DATA = 1, PL_RNG_SYNTH_BASE, PL_RNG_COV_TARGET, PL_RNG_ISO_TARGET, PL_RNG_PARTNER };

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

/* ------------------------------------------------------------ the Gaussian fit (gaussian.c) */

typedef struct {
    int n_raised;        /* eigenvalues raised to the floor (0: Sigma was positive definite) */
    double floor;        /* the eigenvalue floor used */
    double min_eig;      /* smallest eigenvalue before the fix */
    double rel_change;   /* ||Sigma' - Sigma||_F / ||Sigma||_F */
} pl_pd_report;

/* mu[C] and the lower Cholesky factor chol[C, C] (row-major) of the covariance of X[N, C] (unbiased,
 * N - 1), in double. Sigma is made positive definite when it is not (eigenvalue floor); *rep says
 * by how much. *trace is tr(Sigma) of the Sigma that is sampled from. */
int pl_fit_gaussian(const float *X, int N, int C, double *mu, double *chol, double *trace, pl_pd_report *rep);

/* out[C] = mu + chol @ z, z standard normal from R. */
void pl_sample_gaussian(pl_rng *r, const double *mu, const double *chol, int C, double *out);

/* ------------------------------------------------------------ per-curve scores (scores.c) */

/* Per-curve scores of CURVE[S] over ALPHA[S] (NaN when undefined); see README. */
void pl_curve_scores(const float *curve, const double *alpha, int S, double threshold, int one_minus,
                     float *onset, float *max_slope_alpha, float *sharpness);

/* ------------------------------------------------------------ statistics (statistics.c) */

/* Statistics of VALUES[n] (non-finite values are left out; *count says how many entered):
 * mean, median, and the Q quantiles (linear interpolation, numpy's default). SCRATCH[n]. */
void pl_describe(const float *values, int n, const double *q, int Q, double *scratch, double *mean,
                 double *median, double *quantiles, int *count);

/* ------------------------------------------------------------ metrics (metrics.c) */

/* The metrics of each row of the M evaluations against row 0 (the unperturbed base):
 * out[m_index * M + row] for the requested metrics (METRICS[n_metrics], PL_METRIC_*).
 * logits[M, V], read[M, C]. SCRATCH: 4 V doubles. */
void pl_unit_metrics(const float *logits, const float *read, int M, int V, int C, const int *metrics,
                     int n_metrics, double *scratch, float *out);

#endif
