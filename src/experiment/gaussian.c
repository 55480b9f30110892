/* The Gaussian fit of real activations (mu, Sigma, made positive definite when it is not) and
 * sampling from it. Everything accumulates in double in a fixed order. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "experiment.h"

int pl_fit_gaussian(const float *X, int N, int C, double *mu, double *chol, double *trace, double *sigma,
                    pl_pd_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (N < 2)
        return pl_fail("covariance fit: %d activations (need at least 2)", N);
    double *D = pl_malloc(sizeof(double) * (size_t)N * C, "centred activations");
    double *A = pl_malloc(sizeof(double) * (size_t)C * C, "covariance");
    double *W = pl_malloc(sizeof(double) * (size_t)C, "eigenvalues");
    if (!D || !A || !W) {
        free(D), free(A), free(W);
        return PL_ERR;
    }
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
    /* Sigma = D^T D / (N - 1), lower triangle, then mirrored. */
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, C, N, 1.0 / (N - 1), D, C, 0.0, A, C);
    for (int i = 0; i < C; i++)
        for (int j = i + 1; j < C; j++)
            A[(size_t)i * C + j] = A[(size_t)j * C + i];
    double norm = 0.0;
    for (size_t k = 0; k < (size_t)C * C; k++)
        norm += A[k] * A[k];
    norm = sqrt(norm);

    memcpy(chol, A, sizeof(double) * (size_t)C * C);
    int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', C, chol, C);
    if (info == 0) {
        /* Cholesky can succeed on a singular Sigma by rounding: treat pivots below 1e-12 of the
         * largest variance as zero eigenvalues. */
        double dmax = 0.0, pmin = INFINITY;
        for (int c = 0; c < C; c++) {
            double d = A[(size_t)c * C + c], p = chol[(size_t)c * C + c] * chol[(size_t)c * C + c];
            dmax = d > dmax ? d : dmax;
            pmin = p < pmin ? p : pmin;
        }
        if (pmin < 1e-12 * dmax)
            info = 1;
    }
    if (info != 0) {
        /* Not numerically positive definite (e.g. fewer activations than dimensions): floor the
         * eigenvalues at 1e-9 of the largest, raising the floor tenfold until Cholesky succeeds. */
        double *V = pl_malloc(sizeof(double) * (size_t)C * C, "eigenvectors");
        double *B = pl_malloc(sizeof(double) * (size_t)C * C, "floored covariance");
        if (!V || !B) {
            free(V), free(B), free(D), free(A), free(W);
            return PL_ERR;
        }
        memcpy(V, A, sizeof(double) * (size_t)C * C);
        info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', C, V, C, W);
        if (info != 0) {
            free(V), free(B), free(D), free(A), free(W);
            return pl_fail("covariance fit: eigendecomposition failed (LAPACK info %d)", info);
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
            for (int i = 0; i < C; i++)
                for (int j = i + 1; j < C; j++)
                    B[(size_t)i * C + j] = B[(size_t)j * C + i];
            double diff = 0.0;
            for (size_t k = 0; k < (size_t)C * C; k++)
                diff += (B[k] - A[k]) * (B[k] - A[k]);
            rep->rel_change = norm > 0 ? sqrt(diff) / norm : 0.0;
            memcpy(chol, B, sizeof(double) * (size_t)C * C);
            info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', C, chol, C);
            if (info == 0)
                break;
        }
        memcpy(A, B, sizeof(double) * (size_t)C * C); /* the Sigma that is sampled from */
        free(V), free(B);
        if (info != 0) {
            free(D), free(A), free(W);
            return pl_fail("covariance fit: Sigma is not positive definite even after an eigenvalue floor of 1e-3 "
                           "of the largest");
        }
        if (rep->n_raised == 0) /* Cholesky failed on rounding alone; the rebuild fixed it */
            rep->n_raised = -1;
    }
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
    free(D), free(A), free(W);
    return PL_OK;
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

