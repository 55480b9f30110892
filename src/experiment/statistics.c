/* Statistics over curves and scores, with GSL: per-alpha mean, median and quantiles (numpy's linear
 * interpolation); paired comparisons of two kinds' scores (ratio of medians, median of differences,
 * percentile-bootstrap intervals from a keyed stream, the Wilcoxon signed-rank p-value); fixed-bin
 * histograms. NaN values (undefined) are left out, and the counts say how many entered.

Censoring (scores.c): a score whose event lies beyond the grid is +inf (PL_CENSORED), a right-censored
observation at the grid's end, all at one censoring point. The paired comparisons keep it and count it
(n_censored_x, n_censored_y):
  - medians (ratio of medians): the Kaplan-Meier median, which under censoring at one point above every
    event is the plain median with the censored values tied at the top, and +inf ("beyond the grid")
    when the middle order statistic(s) are censored; the ratio is NaN when either median is +inf;
  - differences: x - y with +inf - +inf = 0 (both censored: tied), +inf - y = +inf, x - +inf = -inf;
    their median is then a median of ordered values (NaN only if the middle pair is -inf, +inf);
  - Wilcoxon: the ranks of |x - y| with every censored-vs-measured pair tied at the top (|d| = inf),
    both-censored pairs zero differences (dropped from the ranking, as every zero difference);
  - bootstrap: resamples of all kept pairs, the same statistics per replicate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_histogram.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "plateau/error.h"
#include "experiment.h"

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
    gsl_sort(scratch, 1, (size_t)m);
    /* gsl's quantile is numpy's linear rule: x[floor(h)] + (h - floor(h)) (x[floor(h)+1] - ...), h = (n-1) q */
    *median = gsl_stats_quantile_from_sorted_data(scratch, 1, (size_t)m, 0.5);
    for (int k = 0; k < Q; k++)
        quantiles[k] = gsl_stats_quantile_from_sorted_data(scratch, 1, (size_t)m, q[k]);
}

/* ------------------------------------------------------------ Wilcoxon signed-rank */

/* P(W+ <= w) and P(W+ >= w) of the exact null distribution for n nonzero, untied differences:
 * the pmf over 0..n(n+1)/2 built one rank at a time, as scipy's _get_wilcoxon_distr. */
static double wilcoxon_exact_p(int n, int w)
{
    int top = n * (n + 1) / 2;
    double *c = calloc((size_t)top + 1, sizeof(double)), *prev = calloc((size_t)top + 1, sizeof(double));
    if (!c || !prev) {
        free(c), free(prev);
        return NAN;
    }
    c[0] = 1.0;
    int len = 1;
    for (int k = 1; k <= n; k++) {
        memcpy(prev, c, sizeof(double) * (size_t)len);
        int nlen = k * (k + 1) / 2 + 1;
        for (int i = 0; i < nlen; i++)
            c[i] = 0.0;
        for (int i = 0; i < len; i++) {
            c[i] += 0.5 * prev[i];      /* rank k negative */
            c[i + k] += 0.5 * prev[i];  /* rank k positive */
        }
        len = nlen;
    }
    double p;
    if (w == top / 2) {
        p = 1.0; /* the centre of the distribution */
    } else {
        double less = 0.0, greater = 0.0;
        for (int i = 0; i <= w; i++)
            less += c[i];
        for (int i = w; i <= top; i++)
            greater += c[i];
        p = 2.0 * (less < greater ? less : greater);
        p = p > 1.0 ? 1.0 : p;
    }
    free(c), free(prev);
    return p;
}

double pl_wilcoxon_p(const double *d, int n, double *w_plus)
{
    *w_plus = NAN;
    int m = 0;
    double *a = malloc(sizeof(double) * (size_t)(n ? n : 1));
    size_t *order = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    double *rank = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!a || !order || !rank) {
        free(a), free(order), free(rank);
        return NAN;
    }
    for (int i = 0; i < n; i++)
        if (d[i] != 0.0)
            a[m++] = fabs(d[i]);
    int zeros = n - m;
    double p = NAN;
    if (m > 0) {
        /* ranks of |d| among the nonzero differences, ties get the average rank */
        gsl_sort_index(order, a, 1, (size_t)m);
        double tie_term = 0.0;
        for (int i = 0; i < m;) {
            int j = i;
            while (j + 1 < m && a[order[j + 1]] == a[order[i]])
                j++;
            double t = j - i + 1;
            for (int k = i; k <= j; k++)
                rank[order[k]] = 0.5 * (i + j) + 1.0;
            tie_term += t * (t * t - 1.0);
            i = j + 1;
        }
        double rp = 0.0, rm = 0.0;
        for (int i = 0, k = 0; i < n; i++) {
            if (d[i] == 0.0)
                continue;
            if (d[i] > 0)
                rp += rank[k];
            else
                rm += rank[k];
            k++;
        }
        *w_plus = rp;
        if (n <= 50 && zeros == 0 && tie_term == 0.0) {
            p = wilcoxon_exact_p(m, (int)rp);
        } else {
            double T = rp < rm ? rp : rm, mn = m * (m + 1.0) * 0.25;
            double se = sqrt((m * (m + 1.0) * (2.0 * m + 1.0) - 0.5 * tie_term) / 24.0);
            p = se > 0 ? 2.0 * gsl_cdf_ugaussian_Q(fabs((T - mn) / se)) : 1.0;
            p = p > 1.0 ? 1.0 : p;
        }
    }
    free(a), free(order), free(rank);
    return p;
}

/* ------------------------------------------------------------ paired comparisons */

static double median_of(double *v, int n) { return gsl_stats_median(v, 1, (size_t)n); } /* reorders v */

/* A / B, NaN when B is 0 (a ratio of medians is undefined, not infinite, when the denominator's median
 * is 0: e.g. scores of curves that barely move). */
static double ratio_of(double a, double b) { return b != 0.0 ? a / b : NAN; }

/* The median of a resample given as multiplicities CNT[m] of the values V[m], whose ascending order
 * is ORDER[m]: the value(s) at rank (m - 1) / 2 and m / 2 of the resample, found by one walk. */
static double median_of_counts(const double *v, const size_t *order, const int *cnt, int m)
{
    int lo = (m - 1) / 2, hi = m / 2, seen = 0;
    double a = NAN;
    for (int i = 0; i < m; i++) {
        int c = cnt[order[i]];
        if (!c)
            continue;
        if (seen <= lo && lo < seen + c)
            a = v[order[i]];
        if (seen <= hi && hi < seen + c)
            return (a + v[order[i]]) / 2.0;
        seen += c;
    }
    return NAN;
}

/* Quantile Q of the ascending R[B], numpy's linear rule; an infinite neighbour gives that infinity
 * (gsl's x + h (y - x) would give inf - inf = NaN for two equal infinities). */
static double quantile_sorted(const double *r, int B, double q)
{
    if (isfinite(r[0]) && isfinite(r[B - 1]))
        return gsl_stats_quantile_from_sorted_data(r, 1, (size_t)B, q);
    double h = (B - 1) * q;
    int i = (int)floor(h);
    double t = h - i;
    if (i + 1 >= B || t == 0.0 || r[i] == r[i + 1])
        return r[i];
    return r[i] + t * (r[i + 1] - r[i]);
}

/* The 2.5 % and 97.5 % points of R[B] (numpy's linear rule), NaN when a replicate is NaN. */
static void percentile_interval(double *r, int B, double *lo, double *hi)
{
    for (int i = 0; i < B; i++)
        if (isnan(r[i])) {
            *lo = *hi = NAN;
            return;
        }
    gsl_sort(r, 1, (size_t)B);
    *lo = quantile_sorted(r, B, 0.025);
    *hi = quantile_sorted(r, B, 0.975);
}

/* x - y of two scores, a censored one (+inf) above every measured one: both censored are tied (0). */
static double censored_difference(double x, double y)
{
    return isinf(x) && isinf(y) ? 0.0 : x - y;
}

/* A ratio of two medians, NaN when either lies beyond the grid (a Kaplan-Meier median not reached). */
static double ratio_of_medians(double a, double b)
{
    return isinf(a) || isinf(b) ? NAN : ratio_of(a, b);
}

int pl_paired_compare(const double *x, const double *y, int n, int B, uint64_t seed, uint64_t key, pl_paired *out)
{
    out->n_pairs = out->n_censored_x = out->n_censored_y = 0;
    out->ratio = out->ratio_lo = out->ratio_hi = out->diff = out->diff_lo = out->diff_hi = NAN;
    out->w_plus = out->p_value = NAN;
    size_t cap = (size_t)(n ? n : 1), nb = (size_t)(B ? B : 1);
    double *xs = pl_malloc(sizeof(double) * cap * 4, "paired comparison");
    size_t *order = pl_malloc(sizeof(size_t) * cap * 3, "paired comparison");
    int *cnt = pl_malloc(sizeof(int) * cap, "paired comparison");
    double *rr = pl_malloc(sizeof(double) * 2 * nb, "bootstrap replicates");
    if (!xs || !order || !cnt || !rr) {
        free(xs), free(order), free(cnt), free(rr);
        return PL_ERR;
    }
    double *ys = xs + cap, *ds = ys + cap, *tmp = ds + cap, *rd = rr + nb;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && !isnan(y[i]) && x[i] != -INFINITY && y[i] != -INFINITY) { /* +inf: censored */
            xs[m] = x[i];
            ys[m] = y[i];
            ds[m] = censored_difference(x[i], y[i]);
            out->n_censored_x += isinf(x[i]) != 0;
            out->n_censored_y += isinf(y[i]) != 0;
            m++;
        }
    out->n_pairs = m;
    if (m > 0) {
        out->p_value = pl_wilcoxon_p(ds, m, &out->w_plus);
        memcpy(tmp, xs, sizeof(double) * m);
        double mx = median_of(tmp, m);
        memcpy(tmp, ys, sizeof(double) * m);
        out->ratio = ratio_of_medians(mx, median_of(tmp, m));
        memcpy(tmp, ds, sizeof(double) * m);
        out->diff = median_of(tmp, m);
        if (B > 0) {
            /* One stream per comparison; replicate b takes the next m indices. A resample is held as
             * multiplicities, its medians found by walking each value's ascending order once. */
            size_t *ox = order, *oy = order + cap, *od = oy + cap;
            gsl_sort_index(ox, xs, 1, (size_t)m);
            gsl_sort_index(oy, ys, 1, (size_t)m);
            gsl_sort_index(od, ds, 1, (size_t)m);
            pl_rng r;
            pl_rng_init(&r, seed, key, PL_RNG_BOOTSTRAP, 0);
            for (int b = 0; b < B; b++) {
                memset(cnt, 0, sizeof(int) * m);
                for (int i = 0; i < m; i++)
                    cnt[pl_rng_below(&r, (uint64_t)m)]++;
                rr[b] = ratio_of_medians(median_of_counts(xs, ox, cnt, m), median_of_counts(ys, oy, cnt, m));
                rd[b] = median_of_counts(ds, od, cnt, m);
            }
            percentile_interval(rr, B, &out->ratio_lo, &out->ratio_hi);
            percentile_interval(rd, B, &out->diff_lo, &out->diff_hi);
        }
    }
    free(xs), free(order), free(cnt), free(rr);
    return PL_OK;
}

/* ------------------------------------------------------------ histograms */

int pl_histogram(const double *values, int n, double lo, double hi, int NB, int *counts, int *outside)
{
    gsl_histogram *h = gsl_histogram_alloc((size_t)NB);
    if (!h)
        return pl_fail("out of memory (histogram)");
    gsl_histogram_set_ranges_uniform(h, lo, hi);
    int last = 0;
    *outside = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(values[i]))
            continue;
        if (values[i] < lo || values[i] > hi)
            ++*outside;
        else if (values[i] == hi)
            last++; /* the last bin is closed: [lo_k, hi] */
        else
            gsl_histogram_increment(h, values[i]);
    }
    for (int k = 0; k < NB; k++)
        counts[k] = (int)gsl_histogram_get(h, (size_t)k);
    counts[NB - 1] += last;
    gsl_histogram_free(h);
    return PL_OK;
}
