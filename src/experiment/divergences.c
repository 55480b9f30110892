/* A row's log-sum-exp and divergences from the clean row (divergences.h), in plain C and in AVX2.
 * They were the metrics' whole cost (~11 % of a GPT-2-small-shaped sweep): per entry a handful of
 * double operations behind two branches, which -march=x86-64-v2 compiles to scalar SSE2. The AVX2
 * version does the same operations on four entries at once, the branches as blends. */
#include <math.h>

#include "plateau/vecmath.h"
#include "divergences.h"

#define LANES 4

static double lanes_total(const double *acc) { return (acc[0] + acc[1]) + (acc[2] + acc[3]); }

/* The largest of z[0..V) (NaNs skipped as by a plain running max); max is exact in any order. */
static double max_of(const float *z, int V)
{
    float acc[LANES] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int v = 0;
    for (; v + LANES <= V; v += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] = z[v + l] > acc[l] ? z[v + l] : acc[l];
    for (; v < V; v++)
        acc[0] = z[v] > acc[0] ? z[v] : acc[0];
    float mx = acc[0];
    for (int l = 1; l < LANES; l++)
        mx = acc[l] > mx ? acc[l] : mx;
    return mx;
}

/* ------------------------------------------------------------ plain C */

static void exp_sum_plain(const float *z, int V, double mx, double *e, double *acc)
{
    for (int v = 0; v < V; v++)
        e[v] = exp((double)z[v] - mx);
    for (int v = 0; v < V; v++)
        acc[v % LANES] += e[v];
}

/* One entry's JSD term, 0 where m = 0 (the AVX2 tail too). */
static double jsd_term(double p, double logp, double q, double lq, double logm)
{
    double t = 0.0;
    if (p > 0.0)
        t += 0.5 * p * (logp - logm);
    if (q > 0.0)
        t += 0.5 * q * (lq - logm);
    return t;
}

/* Entries [v0, V) of the divergences, one at a time. */
static void divergences_plain(const double *p0, const float *z0, double lse0, const float *z, const double *e,
                              double lse, double inv, int v0, int V, int want_kl, int want_jsd, double *kl_acc,
                              double *jsd_acc)
{
    for (int v = v0; v < V; v++) {
        double p = p0[v], logp = (double)z0[v] - lse0, lq = (double)z[v] - lse;
        if (want_kl && p > 0.0)
            kl_acc[v % LANES] += p * (logp - lq);
        if (want_jsd) {
            double q = e[v] * inv;
            if (!(p + q > 0.0))
                continue; /* m = 0 */
            jsd_acc[v % LANES] += jsd_term(p, logp, q, lq, log(0.5 * (p + q)));
        }
    }
}

/* ------------------------------------------------------------ AVX2 */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
AVX2 __m256d _ZGVdN4v_exp(__m256d x);
AVX2 __m256d _ZGVdN4v_log(__m256d x);

AVX2 static void exp_sum_avx2(const float *z, int V, double mx, double *e, double *acc)
{
    __m256d vmx = _mm256_set1_pd(mx), vacc = _mm256_loadu_pd(acc);
    int v = 0;
    for (; v + LANES <= V; v += LANES) {
        __m256d ev = _ZGVdN4v_exp(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(z + v)), vmx));
        _mm256_storeu_pd(e + v, ev);
        vacc = _mm256_add_pd(vacc, ev);
    }
    _mm256_storeu_pd(acc, vacc);
    for (; v < V; v++) {
        e[v] = exp((double)z[v] - mx);
        acc[v % LANES] += e[v];
    }
}

AVX2 static void divergences_avx2(const double *p0, const float *z0, double lse0, const float *z, const double *e,
                                  double lse, double inv, int V, int want_kl, int want_jsd, double *kl_acc,
                                  double *jsd_acc)
{
    const __m256d zero = _mm256_setzero_pd(), half = _mm256_set1_pd(0.5);
    __m256d vlse0 = _mm256_set1_pd(lse0), vlse = _mm256_set1_pd(lse), vinv = _mm256_set1_pd(inv);
    __m256d kacc = _mm256_loadu_pd(kl_acc), jacc = _mm256_loadu_pd(jsd_acc);
    int v = 0;
    for (; v + LANES <= V; v += LANES) {
        __m256d p = _mm256_loadu_pd(p0 + v);
        __m256d logp = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(z0 + v)), vlse0);
        __m256d lq = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(z + v)), vlse);
        __m256d p_pos = _mm256_cmp_pd(p, zero, _CMP_GT_OQ);
        if (want_kl)
            kacc = _mm256_add_pd(kacc, _mm256_and_pd(p_pos, _mm256_mul_pd(p, _mm256_sub_pd(logp, lq))));
        if (want_jsd) {
            __m256d q = _mm256_mul_pd(_mm256_loadu_pd(e + v), vinv);
            __m256d pq = _mm256_add_pd(p, q);
            __m256d logm = _ZGVdN4v_log(_mm256_mul_pd(half, pq));
            __m256d a = _mm256_mul_pd(_mm256_mul_pd(half, p), _mm256_sub_pd(logp, logm));
            __m256d b = _mm256_mul_pd(_mm256_mul_pd(half, q), _mm256_sub_pd(lq, logm));
            /* t = 0 (+ a where p > 0) (+ b where q > 0); nothing where m = 0. Adding a +0 instead of
             * skipping leaves the sums' bits alone: they start at +0 and so are never -0. */
            __m256d t = _mm256_add_pd(zero, _mm256_and_pd(p_pos, a));
            t = _mm256_add_pd(t, _mm256_and_pd(_mm256_cmp_pd(q, zero, _CMP_GT_OQ), b));
            jacc = _mm256_add_pd(jacc, _mm256_and_pd(_mm256_cmp_pd(pq, zero, _CMP_GT_OQ), t));
        }
    }
    _mm256_storeu_pd(kl_acc, kacc);
    _mm256_storeu_pd(jsd_acc, jacc);
    divergences_plain(p0, z0, lse0, z, e, lse, inv, v, V, want_kl, want_jsd, kl_acc, jsd_acc);
}
#else
static void exp_sum_avx2(const float *z, int V, double mx, double *e, double *acc) { exp_sum_plain(z, V, mx, e, acc); }
static void divergences_avx2(const double *p0, const float *z0, double lse0, const float *z, const double *e,
                             double lse, double inv, int V, int want_kl, int want_jsd, double *kl_acc,
                             double *jsd_acc)
{
    divergences_plain(p0, z0, lse0, z, e, lse, inv, 0, V, want_kl, want_jsd, kl_acc, jsd_acc);
}
#endif

/* ------------------------------------------------------------ the interface */

double pl_row_log_sum_exp(const float *z, int V, double *e, double *sum_out)
{
    double mx = max_of(z, V), acc[LANES] = {0.0, 0.0, 0.0, 0.0};
    if (pl_vec_avx2())
        exp_sum_avx2(z, V, mx, e, acc);
    else
        exp_sum_plain(z, V, mx, e, acc);
    *sum_out = lanes_total(acc);
    return mx + log(*sum_out);
}

void pl_row_divergences(const double *p0, const float *z0, double lse0, const float *z, const double *e, double lse,
                        double sum, int V, int want_kl, int want_jsd, double *kl, double *jsd)
{
    double kl_acc[LANES] = {0.0, 0.0, 0.0, 0.0}, jsd_acc[LANES] = {0.0, 0.0, 0.0, 0.0}, inv = 1.0 / sum;
    if (pl_vec_avx2())
        divergences_avx2(p0, z0, lse0, z, e, lse, inv, V, want_kl, want_jsd, kl_acc, jsd_acc);
    else
        divergences_plain(p0, z0, lse0, z, e, lse, inv, 0, V, want_kl, want_jsd, kl_acc, jsd_acc);
    *kl = lanes_total(kl_acc);
    *jsd = lanes_total(jsd_acc);
}
