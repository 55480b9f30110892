/* The per-row sums over the vocabulary behind KL, JSD and the cross-entropy (metrics.c): a row's
 * log-sum-exp, and its divergences from the clean row. Two implementations of the same arithmetic:
 * plain C, and AVX2 (four doubles at a time, taken when the process's vector math is AVX2:
 * pl_vec_path()). Every sum runs in four lanes, entry v into lane v % 4, the lanes added as
 * (l0 + l1) + (l2 + l3), and the AVX2 lanes are exactly those: both give the same bits (no FMA, the
 * same exp and log for every entry: libmvec's for whole groups of four, libm's for the last V % 4). */
#ifndef PLATEAU_DIVERGENCES_H
#define PLATEAU_DIVERGENCES_H

/* Returns log sum_v exp(z[v]) over z[0..V); e[v] = exp(z[v] - max z) (V doubles), *sum_out = sum_v e[v]. */
double pl_row_log_sum_exp(const float *z, int V, double *e, double *sum_out);

/* Against the clean row z0 with log-sum-exp LSE0 and distribution p0[v] = exp(z0[v] - lse0), a row z
 * with log-sum-exp LSE and e, sum from pl_row_log_sum_exp:
 *   *kl  = KL(p0 || q)  = sum_v p0 (log p0 - log q), log q = z - lse, over the entries with p0 > 0;
 *   *jsd = JSD(p0, q)   = sum_v (p0 (log p0 - log m) + q (log q - log m)) / 2, m = (p0 + q) / 2,
 *          q = e / sum, over the entries with m > 0.
 * Each only when asked for (WANT_KL, WANT_JSD), else 0. */
void pl_row_divergences(const double *p0, const float *z0, double lse0, const float *z, const double *e, double lse,
                        double sum, int V, int want_kl, int want_jsd, double *kl, double *jsd);

#endif
