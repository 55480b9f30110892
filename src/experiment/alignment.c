/* How found directions line up with others (issue 17, item 5): the largest |cos| with an SAE's decoder
 * rows and which feature, |cos| with given directions (a base's real_other directions), and the
 * leading principal components of Σ. Cosines are of the directions only: every row is normalised
 * first, so a row's scale (an SAE's decoder norm, a step's radius) never enters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "plateau/error.h"
#include "fisher.h"

/* Unit copies of the n rows v[n, C] into u; a zero or non-finite row is an error naming WHAT. */
static int unit_rows(const double *v, int n, int C, double *u, const char *what)
{
    for (int i = 0; i < n; i++) {
        double nrm = cblas_dnrm2(C, v + (size_t)i * C, 1);
        if (!(nrm > 0) || !isfinite(nrm))
            return pl_fail("alignment: %s %d has norm %g (need a finite nonzero direction)", what, i, nrm);
        for (int j = 0; j < C; j++)
            u[(size_t)i * C + j] = v[(size_t)i * C + j] / nrm;
    }
    return PL_OK;
}

int pl_max_abs_cos(const double *v, int n, const float *M, int m, int C, double *best, int *which)
{
    enum { CHUNK = 512 }; /* rows of M converted to double at a time */
    double *u = pl_malloc(sizeof(double) * (size_t)n * C, "alignment rows");
    double *Md = pl_malloc(sizeof(double) * (size_t)CHUNK * C, "alignment matrix chunk");
    double *dots = pl_malloc(sizeof(double) * (size_t)n * CHUNK, "alignment dots");
    double *nrm = pl_malloc(sizeof(double) * CHUNK, "alignment norms");
    int rc = (u && Md && dots && nrm) ? unit_rows(v, n, C, u, "direction") : PL_ERR;
    for (int i = 0; i < n; i++)
        best[i] = 0.0, which[i] = -1;
    for (int r0 = 0; rc == PL_OK && r0 < m; r0 += CHUNK) {
        int w = m - r0 < CHUNK ? m - r0 : CHUNK;
        for (size_t j = 0; j < (size_t)w * C; j++)
            Md[j] = M[(size_t)r0 * C + j];
        for (int r = 0; r < w; r++)
            nrm[r] = cblas_dnrm2(C, Md + (size_t)r * C, 1);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, w, C, 1.0, u, C, Md, C, 0.0, dots, w);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < w; r++) {
                if (!(nrm[r] > 0)) /* a dead feature's zero row has no direction */
                    continue;
                double c = fabs(dots[(size_t)i * w + r]) / nrm[r];
                if (which[i] < 0 || c > best[i]) /* strict: ties keep the lower index */
                    best[i] = c, which[i] = r0 + r;
            }
    }
    free(u), free(Md), free(dots), free(nrm);
    return rc;
}

int pl_abs_cos(const double *v, int n, const double *D, int m, int C, double *out)
{
    double *u = pl_malloc(sizeof(double) * (size_t)n * C, "alignment rows");
    double *e = pl_malloc(sizeof(double) * (size_t)(m > 0 ? m : 1) * C, "alignment directions");
    int rc = (u && e) ? unit_rows(v, n, C, u, "direction") : PL_ERR;
    if (rc == PL_OK)
        rc = unit_rows(D, m, C, e, "reference direction");
    if (rc == PL_OK && m > 0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, C, 1.0, u, C, e, C, 0.0, out, m);
        for (size_t j = 0; j < (size_t)n * m; j++)
            out[j] = fabs(out[j]);
    }
    free(u), free(e);
    return rc;
}

int pl_principal_components(const double *S, int C, int q, double *pcs, double *var)
{
    if (q < 1 || q > C)
        return pl_fail("alignment: %d principal components asked of a covariance of dimension %d", q, C);
    double *A = pl_malloc(sizeof(double) * (size_t)C * C, "covariance eigenvectors");
    double *w = pl_malloc(sizeof(double) * (size_t)C, "covariance eigenvalues");
    int rc = (A && w) ? PL_OK : PL_ERR;
    if (rc == PL_OK) {
        memcpy(A, S, sizeof(double) * (size_t)C * C);
        int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', C, A, C, w);
        if (info != 0)
            rc = pl_fail("alignment: eigendecomposition of the covariance failed (LAPACK info %d)", info);
    }
    for (int j = 0; rc == PL_OK && j < q; j++) {
        int col = C - 1 - j;
        var[j] = w[col];
        for (int i = 0; i < C; i++)
            pcs[(size_t)j * C + i] = A[(size_t)i * C + col];
        pl_fix_sign(pcs + (size_t)j * C, C);
    }
    free(A), free(w);
    return rc;
}
