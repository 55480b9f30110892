/* Statistics of the sweep: the Gaussian fit of real activations, sampling from it, the metrics of a
 * unit's evaluations, per-curve scores and per-alpha aggregates. Everything accumulates in double
 * in a fixed order, so results do not depend on how the work was split. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

/* ------------------------------------------------------------ Gaussian fit */

int pl_fit_gaussian(const float *X, int N, int C, double *mu, double *chol, double *trace, pl_pd_report *rep)
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

/* ------------------------------------------------------------ metrics of one unit */

/* exp and log over arrays of doubles. KL and JSD take one exp and one log per vocabulary entry and
 * step, a sixth of a sweep's time with scalar libm; glibc's vector math library (libmvec, AVX2,
 * under 4 ulp) does four at a time. The path is chosen once per process from the CPU, so every
 * rank of a job on one CPU type computes the same bits. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__m256d _ZGVdN4v_exp(__m256d x);
__m256d _ZGVdN4v_log(__m256d x);

__attribute__((target("avx2,fma"))) static void exp_avx2(double *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(x + i, _ZGVdN4v_exp(_mm256_loadu_pd(x + i)));
    for (; i < n; i++)
        x[i] = exp(x[i]);
}

__attribute__((target("avx2,fma"))) static void log_avx2(double *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(x + i, _ZGVdN4v_log(_mm256_loadu_pd(x + i)));
    for (; i < n; i++)
        x[i] = log(x[i]);
}

static int use_avx2(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
}
#else
static int use_avx2(void) { return 0; }
static void exp_avx2(double *x, int n) { (void)x, (void)n; }
static void log_avx2(double *x, int n) { (void)x, (void)n; }
#endif

/* x[i] = exp(x[i]) and x[i] = log(x[i]), in place. */
static void exp_inplace(double *x, int n)
{
    if (use_avx2()) {
        exp_avx2(x, n);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = exp(x[i]);
}

static void log_inplace(double *x, int n)
{
    if (use_avx2()) {
        log_avx2(x, n);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = log(x[i]);
}

void pl_unit_metrics(const float *logits, const float *read, int M, int V, int C, const int *metrics,
                     int n_metrics, double *scratch, float *out)
{
    int want_kl = 0, want_jsd = 0;
    for (int k = 0; k < n_metrics; k++) {
        want_kl |= metrics[k] == PL_METRIC_KL;
        want_jsd |= metrics[k] == PL_METRIC_JSD;
    }
    /* scratch: logp0[V], p0[V], e[V] (the row's exp(z - max)), logm[V] */
    double *logp0 = scratch, *p0 = scratch + V, *e = scratch + 2 * (size_t)V, *logm = scratch + 3 * (size_t)V;
    if (want_kl || want_jsd) {
        /* log-softmax of the clean row, in double */
        const float *z = logits;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++)
            p0[v] = (double)z[v] - mx;
        exp_inplace(p0, V);
        for (int v = 0; v < V; v++)
            sum += p0[v];
        double lse = mx + log(sum);
        for (int v = 0; v < V; v++)
            logp0[v] = (double)z[v] - lse;
        memcpy(p0, logp0, sizeof(double) * V);
        exp_inplace(p0, V);
    }
    double n0 = 0.0;
    for (int c = 0; c < C && read; c++)
        n0 += (double)read[c] * read[c];
    for (int row = 0; row < M; row++) {
        double kl = 0.0, jsd = 0.0, l2 = 0.0, cosine = 0.0;
        if (want_kl || want_jsd) {
            const float *z = logits + (size_t)row * V;
            double mx = -INFINITY, sum = 0.0;
            for (int v = 0; v < V; v++)
                mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < V; v++)
                e[v] = (double)z[v] - mx;
            exp_inplace(e, V); /* unnormalised q */
            for (int v = 0; v < V; v++)
                sum += e[v];
            double lse = mx + log(sum);
            if (want_kl)
                for (int v = 0; v < V; v++)
                    if (p0[v] > 0.0)
                        kl += p0[v] * (logp0[v] - ((double)z[v] - lse));
            if (want_jsd) {
                double inv = 1.0 / sum;
                for (int v = 0; v < V; v++)
                    logm[v] = 0.5 * (p0[v] + e[v] * inv); /* m = (p + q) / 2 */
                log_inplace(logm, V);
                for (int v = 0; v < V; v++) {
                    double p = p0[v], q = e[v] * inv, lq = (double)z[v] - lse;
                    if (!(p + q > 0.0))
                        continue; /* m = 0 */
                    if (p > 0.0)
                        jsd += 0.5 * p * (logp0[v] - logm[v]);
                    if (q > 0.0)
                        jsd += 0.5 * q * (lq - logm[v]);
                }
            }
            /* Exact zero for the clean row itself and no negative rounding noise: KL and JSD are >= 0. */
            if (kl < 0.0)
                kl = 0.0;
            if (jsd < 0.0)
                jsd = 0.0;
        }
        if (read) {
            const float *r0 = read, *r = read + (size_t)row * C;
            double dot = 0.0, nr = 0.0;
            for (int c = 0; c < C; c++) {
                double d = (double)r[c] - r0[c];
                l2 += d * d;
                dot += (double)r[c] * r0[c];
                nr += (double)r[c] * r[c];
            }
            l2 = sqrt(l2);
            cosine = (nr > 0.0 && n0 > 0.0) ? dot / (sqrt(nr) * sqrt(n0)) : NAN;
        }
        for (int k = 0; k < n_metrics; k++) {
            double v = metrics[k] == PL_METRIC_KL    ? kl
                       : metrics[k] == PL_METRIC_JSD ? jsd
                       : metrics[k] == PL_METRIC_L2  ? l2
                                                     : cosine;
            out[(size_t)k * M + row] = (float)v;
        }
    }
}

/* ------------------------------------------------------------ per-curve scores */

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

/* ------------------------------------------------------------ aggregates */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile_sorted(const double *x, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1)
        return x[n - 1];
    return x[lo] + (h - lo) * (x[lo + 1] - x[lo]);
}

void pl_describe(const float *values, int n, const double *q, int Q, double *scratch, double *mean, double *median,
                 double *quantiles, int *count)
{
    int m = 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        if (isfinite(values[i])) {
            scratch[m++] = values[i];
            sum += values[i];
        }
    *count = m;
    if (m == 0) {
        *mean = *median = NAN;
        for (int k = 0; k < Q; k++)
            quantiles[k] = NAN;
        return;
    }
    *mean = sum / m;
    qsort(scratch, (size_t)m, sizeof(double), cmp_double);
    *median = quantile_sorted(scratch, m, 0.5);
    for (int k = 0; k < Q; k++)
        quantiles[k] = quantile_sorted(scratch, m, q[k]);
}
