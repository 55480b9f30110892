/* The readouts of a unit's evaluations against its unperturbed base: KL, JSD and the JS distance of
 * the next-token distributions and the cross-entropy of the real next token at the readout position;
 * L2 and cosine at the read hook, readout position. In double, in a fixed order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "experiment.h"

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

const pl_metric_info PL_METRICS[PL_N_METRICS] = {
    [PL_METRIC_KL] = {"kl", "KL(clean || perturbed) of the next-token distribution at the readout position", "nats",
                      PL_SCORE_ON_VALUE, 1},
    [PL_METRIC_JSD] = {"jsd", "Jensen-Shannon divergence of the next-token distributions at the readout position",
                       "nats", PL_SCORE_ON_VALUE, 1},
    [PL_METRIC_L2] = {"l2", "L2 distance to the unperturbed run at read_hook, readout position",
                      "residual stream units", PL_SCORE_ON_VALUE, 0},
    [PL_METRIC_COSINE] = {"cosine", "cosine similarity to the unperturbed run at read_hook, readout position", "1",
                          PL_SCORE_ON_ONE_MINUS, 0},
    [PL_METRIC_JS_DIST] = {"js_dist",
                           "Jensen-Shannon distance (square root of the divergence with log base 2) of the next-token "
                           "distributions at the readout position",
                           "1", PL_SCORE_ON_VALUE, 1},
    [PL_METRIC_CE_LOSS] = {"ce_loss",
                           "cross-entropy of the prompt's real next token at the readout position (NaN where the "
                           "data has none)",
                           "nats", PL_SCORE_ON_INCREASE, 1},
};

void pl_unit_metrics(const float *logits, const float *read, int M, int V, int C, const int *metrics,
                     int n_metrics, int next_token, double *scratch, float *out)
{
    int want_kl = 0, want_jsd = 0, want_logits = 0;
    for (int k = 0; k < n_metrics; k++) {
        want_kl |= metrics[k] == PL_METRIC_KL;
        want_jsd |= metrics[k] == PL_METRIC_JSD || metrics[k] == PL_METRIC_JS_DIST;
        want_logits |= PL_METRICS[metrics[k]].needs_logits;
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
        double kl = 0.0, jsd = 0.0, l2 = 0.0, cosine = 0.0, ce = NAN;
        if (want_logits) {
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
            if (next_token >= 0 && next_token < V)
                ce = lse - (double)z[next_token];
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
            double v = 0.0;
            switch (metrics[k]) {
            case PL_METRIC_KL: v = kl; break;
            case PL_METRIC_JSD: v = jsd; break;
            case PL_METRIC_L2: v = l2; break;
            case PL_METRIC_COSINE: v = cosine; break;
            case PL_METRIC_JS_DIST: v = sqrt(jsd / M_LN2); break; /* the follow-ups' distance, in bits */
            case PL_METRIC_CE_LOSS: v = ce; break;
            }
            out[(size_t)k * M + row] = (float)v;
        }
    }
}

