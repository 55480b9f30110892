/* The readouts of a unit's evaluations against its unperturbed base: KL, JSD and the JS distance of
 * the next-token distributions and the cross-entropy of the real next token at the readout position;
 * L2 and cosine at the read hook, readout position; the SAE's L0 and reconstruction error of the
 * step vectors at the hook. In double (the SAE's matmuls in fp32), in a fixed order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/vecmath.h"
#include "divergences.h"
#include "experiment.h"
#include "sae.h"

/* ------------------------------------------------------------ the shared quantities */

/* KL(clean || row), JSD and -log q(next token) of every row, against row REF: per row one pass for
 * its log-sum-exp and one for its divergences (divergences.c). SCRATCH: 2 V doubles. */
static void distributions(const pl_readout *r, int want_kl, int want_jsd, double *scratch, double *kl_out,
                          double *jsd_out, double *ce_out)
{
    int V = r->V;
    double *p0 = scratch, *e = scratch + V; /* the clean distribution; a row's exp(z - max z) */
    const float *z0 = r->logits + (size_t)r->ref * V;
    double lse0 = 0.0, sum;
    if (want_kl || want_jsd) {
        /* its lse computed as the rows' below, so KL(ref || ref) = 0 */
        lse0 = pl_row_log_sum_exp(z0, V, e, &sum);
        for (int v = 0; v < V; v++)
            p0[v] = (double)z0[v] - lse0;
        pl_vec_exp(p0, V);
    }
    for (int row = 0; row < r->M; row++) {
        double kl = 0.0, jsd = 0.0, ce = NAN;
        const float *z = r->logits + (size_t)row * V;
        double lse = pl_row_log_sum_exp(z, V, e, &sum);
        if (r->next_token >= 0 && r->next_token < V)
            ce = lse - (double)z[r->next_token];
        if (want_kl || want_jsd)
            pl_row_divergences(p0, z0, lse0, z, e, lse, sum, V, want_kl, want_jsd, &kl, &jsd);
        /* Exact zero for the clean row itself (KL's terms are 0 there, JSD's are rounding: q = e / sum is
         * not p0 bit for bit) and no negative rounding noise: KL and JSD are >= 0. */
        kl_out[row] = kl < 0.0 || row == r->ref ? 0.0 : kl;
        jsd_out[row] = jsd < 0.0 || row == r->ref ? 0.0 : jsd;
        ce_out[row] = ce;
    }
}

/* L2 distance and cosine similarity of every row's read residual to row REF's. */
static void residual_distances(const pl_readout *r, double *l2_out, double *cos_out)
{
    int C = r->C;
    const float *r0 = r->read + (size_t)r->ref * C;
    double n0 = 0.0;
    for (int c = 0; c < C; c++)
        n0 += (double)r0[c] * r0[c];
    for (int row = 0; row < r->M; row++) {
        const float *x = r->read + (size_t)row * C;
        double l2 = 0.0, dot = 0.0, nr = 0.0;
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] - r0[c];
            l2 += d * d;
            dot += (double)x[c] * r0[c];
            nr += (double)x[c] * x[c];
        }
        l2_out[row] = sqrt(l2);
        cos_out[row] = (nr > 0.0 && n0 > 0.0) ? dot / (sqrt(nr) * sqrt(n0)) : NAN;
    }
}

/* ------------------------------------------------------------ the metrics */

static double kl_value(const pl_readout *r, int row) { return r->kl[row]; }
static double jsd_value(const pl_readout *r, int row) { return r->jsd[row]; }
/* the follow-ups' distance, in bits */
static double js_dist_value(const pl_readout *r, int row) { return sqrt(r->jsd[row] / M_LN2); }
static double ce_value(const pl_readout *r, int row) { return r->ce[row]; }
static double l2_value(const pl_readout *r, int row) { return r->l2[row]; }
static double cosine_value(const pl_readout *r, int row) { return r->cosine[row]; }
static double sae_l0_value(const pl_readout *r, int row) { return r->sae_l0[row]; }
static double sae_error_value(const pl_readout *r, int row) { return r->sae_error[row]; }

const pl_metric_info PL_METRICS[PL_N_METRICS] = {
    [PL_METRIC_KL] = {"kl", "KL(clean || perturbed) of the next-token distribution at the readout position", "nats",
                      PL_SCORE_ON_VALUE, PL_READS_DISTRIBUTIONS, kl_value},
    [PL_METRIC_JSD] = {"jsd", "Jensen-Shannon divergence of the next-token distributions at the readout position",
                       "nats", PL_SCORE_ON_VALUE, PL_READS_DISTRIBUTIONS, jsd_value},
    [PL_METRIC_L2] = {"l2", "L2 distance to the unperturbed run at read_hook, readout position",
                      "residual stream units", PL_SCORE_ON_VALUE, PL_READS_RESIDUAL, l2_value},
    [PL_METRIC_COSINE] = {"cosine", "cosine similarity to the unperturbed run at read_hook, readout position", "1",
                          PL_SCORE_ON_ONE_MINUS, PL_READS_RESIDUAL, cosine_value},
    [PL_METRIC_JS_DIST] = {"js_dist",
                           "Jensen-Shannon distance (square root of the divergence with log base 2) of the next-token "
                           "distributions at the readout position",
                           "1", PL_SCORE_ON_VALUE, PL_READS_DISTRIBUTIONS, js_dist_value},
    [PL_METRIC_CE_LOSS] = {"ce_loss",
                           "cross-entropy of the prompt's real next token at the readout position (NaN where the "
                           "data has none)",
                           "nats", PL_SCORE_ON_INCREASE, PL_READS_DISTRIBUTIONS, ce_value},
    [PL_METRIC_SAE_L0] = {"sae_l0",
                          "number of the SAE's features active (> 0) on the perturbed activation at the hook",
                          "features", PL_SCORE_ON_INCREASE, PL_READS_SAE, sae_l0_value},
    [PL_METRIC_SAE_RECON_ERROR] = {"sae_recon_error",
                                   "L2 norm of the SAE's reconstruction error x - SAE(x) of the perturbed activation "
                                   "x at the hook",
                                   "residual stream units", PL_SCORE_ON_INCREASE, PL_READS_SAE, sae_error_value},
};

/* ------------------------------------------------------------ a unit */

static int reads_of(const pl_experiment *ex)
{
    int reads = 0;
    for (int k = 0; k < ex->cfg->n_metrics; k++)
        reads |= PL_METRICS[ex->cfg->metrics[k]].reads;
    return reads;
}

size_t pl_unit_metrics_scratch(const pl_experiment *ex, int M)
{
    int reads = reads_of(ex);
    size_t bytes = sizeof(double) * 7 * (size_t)M; /* the seven shared quantities */
    if (reads & PL_READS_DISTRIBUTIONS)
        bytes += sizeof(double) * 2 * (size_t)ex->V;
    if (reads & PL_READS_SAE)
        bytes += pl_sae_readout_scratch(ex->sae, M);
    return bytes;
}

/* A row whose step vector equals the base row's bit for bit is the base itself, and its metrics are the
 * base row's: the model evaluated at the same input gives the same output, up to where in a batched
 * matmul each row sits (rows of one sgemm round differently). Without this a zero direction's curve
 * would be that rounding (KL ~ 1e-15, L2 ~ 1e-8), and its normalised scores would be noise. */
static void base_rows_as_base(const float *X, int M, int C, int ref, int NM, float *out)
{
    for (int row = 0; row < M; row++)
        if (row != ref && !memcmp(X + (size_t)row * C, X + (size_t)ref * C, sizeof(float) * C))
            for (int k = 0; k < NM; k++)
                out[(size_t)k * M + row] = out[(size_t)k * M + ref];
}

int pl_metric_value_ok(int metric, float value)
{
    if (isfinite(value))
        return 1;
    /* the documented undefined values: a zero residual has no direction, a prompt may have no next token */
    return isnan(value) && (metric == PL_METRIC_COSINE || metric == PL_METRIC_CE_LOSS);
}

void pl_unit_metrics(const pl_experiment *ex, const float *logits, const float *read, const float *X, int M,
                     int ref, int next_token, void *scratch, float *out)
{
    const pl_sweep_config *cfg = ex->cfg;
    int reads = reads_of(ex), want_kl = 0, want_jsd = 0;
    for (int k = 0; k < cfg->n_metrics; k++) {
        want_kl |= cfg->metrics[k] == PL_METRIC_KL;
        want_jsd |= cfg->metrics[k] == PL_METRIC_JSD || cfg->metrics[k] == PL_METRIC_JS_DIST;
    }
    double *q = scratch; /* the shared quantities [7][M], then the stages' own scratch */
    double *kl = q, *jsd = q + M, *ce = q + 2 * (size_t)M, *l2 = q + 3 * (size_t)M, *cosine = q + 4 * (size_t)M;
    double *l0 = q + 5 * (size_t)M, *err = q + 6 * (size_t)M, *rest = q + 7 * (size_t)M;
    pl_readout r = {ex, M, ex->V, ex->C_read, ref, logits, read, X, next_token, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    if (reads & PL_READS_DISTRIBUTIONS) {
        distributions(&r, want_kl, want_jsd, rest, kl, jsd, ce);
        r.kl = kl, r.jsd = jsd, r.ce = ce;
    }
    if (reads & PL_READS_RESIDUAL) {
        residual_distances(&r, l2, cosine);
        r.l2 = l2, r.cosine = cosine;
    }
    if (reads & PL_READS_SAE) {
        pl_sae_readout(ex->sae, X, M, rest, l0, err);
        r.sae_l0 = l0, r.sae_error = err;
    }
    for (int k = 0; k < cfg->n_metrics; k++) {
        const pl_metric_info *mt = &PL_METRICS[cfg->metrics[k]];
        for (int row = 0; row < M; row++)
            out[(size_t)k * M + row] = (float)mt->value(&r, row); /* beyond FLT_MAX: inf, caught by the caller */
    }
    if (X)
        base_rows_as_base(X, M, ex->C, ref, cfg->n_metrics, out);
}
