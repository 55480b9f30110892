/* The Gaussian fit of real activations (mu, Sigma, made positive definite when it is not) and
 * sampling from it. Everything accumulates in double in a fixed order. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "experiment.h"

/* Copy the lower triangle of A[C, C] into its upper triangle. */
static void mirror_lower(double *A, int C)
{
    for (int i = 0; i < C; i++)
        for (int j = i + 1; j < C; j++)
            A[(size_t)i * C + j] = A[(size_t)j * C + i];
}

/* mu[C] and Sigma A[C, C] = D^T D / (N - 1) of X[N, C], with D[N, C] the centred rows (scratch). */
static void fit_moments(const float *X, int N, int C, double *mu, double *D, double *A)
{
    for (int c = 0; c < C; c++)
        mu[c] = 0.0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            mu[c] += X[(size_t)i * C + c];
    for (int c = 0; c < C; c++)
        mu[c] /= N;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            D[(size_t)i * C + c] = X[(size_t)i * C + c] - mu[c];
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, C, N, 1.0 / (N - 1), D, C, 0.0, A, C);
    mirror_lower(A, C);
}

/* chol = the lower Cholesky factor of A; 0 when A is numerically positive definite. Cholesky can
 * succeed on a singular Sigma by rounding: pivots below 1e-12 of the largest variance count as zero
 * eigenvalues (returns 1). */
static int cholesky_checked(const double *A, int C, double *chol)
{
    memcpy(chol, A, sizeof(double) * (size_t)C * C);
    int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', C, chol, C);
    if (info != 0)
        return info;
    double dmax = 0.0, pmin = INFINITY;
    for (int c = 0; c < C; c++) {
        double d = A[(size_t)c * C + c], p = chol[(size_t)c * C + c] * chol[(size_t)c * C + c];
        dmax = d > dmax ? d : dmax;
        pmin = p < pmin ? p : pmin;
    }
    return pmin < 1e-12 * dmax;
}

/* Sigma A[C, C] (Frobenius norm NORM) is not numerically positive definite (e.g. fewer activations
 * than dimensions): floor its eigenvalues at 1e-9 of the largest, raising the floor tenfold until
 * Cholesky succeeds. A becomes the floored Sigma (the one sampled from), chol its factor; *rep says
 * by how much it moved. */
static int floor_eigenvalues(double *A, int C, double norm, double *chol, pl_pd_report *rep)
{
    double *V = pl_malloc(sizeof(double) * (size_t)C * C, "eigenvectors");
    double *B = pl_malloc(sizeof(double) * (size_t)C * C, "floored covariance");
    double *W = pl_malloc(sizeof(double) * (size_t)C, "eigenvalues");
    int info = PL_ERR;
    if (!V || !B || !W)
        goto done;
    memcpy(V, A, sizeof(double) * (size_t)C * C);
    info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', C, V, C, W);
    if (info != 0) {
        info = pl_fail("covariance fit: eigendecomposition failed (LAPACK info %d)", info);
        goto done;
    }
    double lmax = W[C - 1] > 0 ? W[C - 1] : 1.0;
    rep->min_eig = W[0];
    for (double rel = 1e-9; rel <= 1.001e-3; rel *= 10.0) {
        double floor = rel * lmax;
        rep->floor = floor;
        rep->n_raised = 0;
        /* B = V diag(max(w, floor)) V^T; column k of V is eigenvector k */
        memset(B, 0, sizeof(double) * (size_t)C * C);
        for (int k = 0; k < C; k++) {
            double w = W[k] < floor ? floor : W[k];
            rep->n_raised += W[k] < floor;
            cblas_dsyr(CblasRowMajor, CblasLower, C, w, V + k, C, B, C);
        }
        mirror_lower(B, C);
        double diff = 0.0;
        for (size_t k = 0; k < (size_t)C * C; k++)
            diff += (B[k] - A[k]) * (B[k] - A[k]);
        rep->rel_change = norm > 0 ? sqrt(diff) / norm : 0.0;
        memcpy(chol, B, sizeof(double) * (size_t)C * C);
        info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', C, chol, C);
        if (info == 0)
            break;
    }
    memcpy(A, B, sizeof(double) * (size_t)C * C);
    if (info != 0) {
        info = pl_fail("covariance fit: Sigma is not positive definite even after an eigenvalue floor of 1e-3 "
                       "of the largest");
        goto done;
    }
    if (rep->n_raised == 0) /* Cholesky failed on rounding alone; the rebuild fixed it */
        rep->n_raised = -1;
    info = PL_OK;
done:
    free(V), free(B), free(W);
    return info;
}

int pl_fit_gaussian(const float *X, int N, int C, double *mu, double *chol, double *trace, double *sigma,
                    pl_pd_report *rep)
{
    return pl_fit_gaussian_ridge(X, N, C, 0.0, mu, chol, trace, sigma, rep);
}

int pl_fit_gaussian_ridge(const float *X, int N, int C, double ridge, double *mu, double *chol, double *trace,
                          double *sigma, pl_pd_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (N < 2)
        return pl_fail("covariance fit: %d activations (need at least 2)", N);
    double *D = pl_malloc(sizeof(double) * (size_t)N * C, "centred activations");
    double *A = pl_malloc(sizeof(double) * (size_t)C * C, "covariance");
    int rc = PL_ERR;
    if (!D || !A)
        goto done;
    fit_moments(X, N, C, mu, D, A);
    if (ridge > 0) /* Lee & Heimersheim's Sigma + 0.01 I: before the check, so it is what is sampled from */
        for (int c = 0; c < C; c++)
            A[(size_t)c * C + c] += ridge;
    double norm = 0.0;
    for (size_t k = 0; k < (size_t)C * C; k++)
        norm += A[k] * A[k];
    norm = sqrt(norm);
    if (cholesky_checked(A, C, chol) != 0 && floor_eigenvalues(A, C, norm, chol, rep) != PL_OK)
        goto done;
    double tr = 0.0;
    for (int c = 0; c < C; c++)
        tr += A[(size_t)c * C + c];
    *trace = tr;
    if (sigma)
        memcpy(sigma, A, sizeof(double) * (size_t)C * C);
    /* zero the strict upper triangle left over from the input */
    for (int i = 0; i < C; i++)
        for (int j = i + 1; j < C; j++)
            chol[(size_t)i * C + j] = 0.0;
    rc = PL_OK;
done:
    free(D), free(A);
    return rc;
}

void pl_sample_gaussian(pl_rng *r, const double *mu, const double *chol, int C, double *out)
{
    double *z = out; /* z first, then out = mu + L z in place from the last row up (L is lower) */
    for (int c = 0; c < C; c++)
        z[c] = pl_rng_gaussian(r);
    for (int i = C - 1; i >= 0; i--) {
        double acc = 0.0;
        const double *row = chol + (size_t)i * C;
        for (int j = 0; j <= i; j++)
            acc += row[j] * z[j];
        out[i] = mu[i] + acc;
    }
}

