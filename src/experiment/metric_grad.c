/* Readout cotangents (metric_grad.h): the metrics of metrics.c (distributions(), residual_distances())
 * at one row, and their gradients. The values follow metrics.c's formulas and double accumulation
 * with scalar libm (metrics.c may take glibc's vector exp/log, under 4 ulp apart). */
#include <math.h>
#include <stdlib.h>

#include "metric_grad.h"

/* logp[V] = log-softmax of z[V] in double, as metrics.c: lse = max + log(sum exp(z - max)). */
static void log_softmax_d(const float *z, int V, double *logp)
{
    double mx = -INFINITY, sum = 0.0;
    for (int v = 0; v < V; v++)
        mx = z[v] > mx ? z[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)z[v] - mx);
    double lse = mx + log(sum);
    for (int v = 0; v < V; v++)
        logp[v] = (double)z[v] - lse;
}

/* The two rows' log-probabilities, [2V] doubles (NULL when out of memory). */
static double *two_rows(const float *clean, const float *logits, int V)
{
    double *lp = malloc(sizeof(double) * 2 * (size_t)V);
    if (!lp)
        return NULL;
    log_softmax_d(clean, V, lp);
    log_softmax_d(logits, V, lp + V);
    return lp;
}

double pl_kl_grad(const float *clean, const float *logits, int V, float *g)
{
    double *lp = two_rows(clean, logits, V), kl = 0.0;
    if (!lp)
        return NAN;
    for (int v = 0; v < V; v++) {
        double p = exp(lp[v]);
        if (p > 0.0)
            kl += p * (lp[v] - lp[V + v]);
        if (g) /* d/dz_v of -sum p log q = q_v - p_v */
            g[v] = (float)(exp(lp[V + v]) - p);
    }
    free(lp);
    return kl < 0.0 ? 0.0 : kl;
}

double pl_jsd_grad(const float *clean, const float *logits, int V, float *g)
{
    double *lp = two_rows(clean, logits, V), jsd = 0.0, qa = 0.0;
    if (!lp)
        return NAN;
    for (int v = 0; v < V; v++) {
        double p = exp(lp[v]), q = exp(lp[V + v]), m = 0.5 * (p + q);
        if (!(p + q > 0.0))
            continue;
        double logm = log(m);
        if (p > 0.0)
            jsd += 0.5 * p * (lp[v] - logm);
        if (q > 0.0)
            jsd += 0.5 * q * (lp[V + v] - logm);
        qa += q * 0.5 * (lp[V + v] - logm); /* dJSD/dq_v = log(q_v / m_v) / 2 */
    }
    if (g)
        for (int v = 0; v < V; v++) {
            double p = exp(lp[v]), q = exp(lp[V + v]);
            double a = p + q > 0.0 ? 0.5 * (lp[V + v] - log(0.5 * (p + q))) : 0.0;
            g[v] = (float)(q * (a - qa)); /* through the softmax: q (a - q.a) */
        }
    free(lp);
    return jsd < 0.0 ? 0.0 : jsd;
}

double pl_ce_grad(const float *logits, int V, int next, float *g)
{
    if (next < 0 || next >= V) {
        for (int v = 0; g && v < V; v++)
            g[v] = 0.0f;
        return NAN;
    }
    double *lp = malloc(sizeof(double) * (size_t)V);
    if (!lp)
        return NAN;
    log_softmax_d(logits, V, lp);
    double ce = -lp[next];
    for (int v = 0; g && v < V; v++)
        g[v] = (float)(exp(lp[v]) - (v == next));
    free(lp);
    return ce;
}

double pl_l2_grad(const float *clean, const float *read, int C, float *g)
{
    double l2 = 0.0;
    for (int c = 0; c < C; c++) {
        double d = (double)read[c] - clean[c];
        l2 += d * d;
    }
    l2 = sqrt(l2);
    for (int c = 0; g && c < C; c++)
        g[c] = l2 > 0.0 ? (float)(((double)read[c] - clean[c]) / l2) : 0.0f;
    return l2;
}

void pl_softmax_fisher_apply(const float *logits, int V, const float *u, float *out)
{
    double mx = -INFINITY, sum = 0.0, pu = 0.0;
    for (int v = 0; v < V; v++)
        mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)logits[v] - mx);
    for (int v = 0; v < V; v++)
        pu += exp((double)logits[v] - mx) / sum * u[v];
    for (int v = 0; v < V; v++) {
        double p = exp((double)logits[v] - mx) / sum;
        out[v] = (float)(p * ((double)u[v] - pu));
    }
}
