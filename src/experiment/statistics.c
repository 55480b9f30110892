/* Statistics over curves: mean, median and quantiles (numpy's linear interpolation), leaving out
 * non-finite values. */
#include <math.h>
#include <stdlib.h>

#include "plateau/error.h"
#include "experiment.h"

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
