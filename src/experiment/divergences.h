/* The per-row sums over the vocabulary behind KL, JSD and the cross-entropy (metrics.c): a row's
 * log-sum-exp, and its divergences from the clean row. Two implementations, chosen by the process's
 * vector math (pl_vec_avx2()): plain C with libm's exp and log, and AVX2, four entries at a time with
 * libmvec's exp and log (libm's for the last V % 4 entries). Each computes, bit for bit, what the
 * whole-row passes it replaced computed on that path (pl_vec_exp and pl_vec_log over V-long arrays,
 * then plain loops): every sum in four lanes, entry v into lane v % 4, the lanes added as
 * (l0 + l1) + (l2 + l3), no fused multiply-add (tests/experiment/vector_paths.c checks both paths). */
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
