/* The full result table on rank 0 and what is derived from it: per-curve scores and per-alpha
 * statistics, computed in one fixed order (base, direction, prompt, sample) from the stored float32
 * curves, so they depend neither on the number of ranks nor on a resume. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

int pl_results_init(pl_results *r, const pl_sweep *sw)
{
    memset(r, 0, sizeof *r);
    r->sw = sw;
    size_t per_unit = (size_t)sw->NM * sw->steps;
    r->curves = pl_calloc((size_t)sw->n_units * per_unit, sizeof(float), "result table");
    r->done = pl_calloc((size_t)sw->n_units, 1, "completed units");
    return r->curves && r->done ? PL_OK : PL_ERR;
}

void pl_results_free(pl_results *r)
{
    free(r->curves);
    free(r->done);
    free(r->mean);
    free(r->median);
    free(r->quant);
    free(r->count);
    free(r->onset);
    free(r->slope_alpha);
    free(r->sharp);
    memset(r, 0, sizeof *r);
}

int pl_results_finish(pl_results *r)
{
    const pl_sweep *sw = r->sw;
    int NM = sw->NM, NB = sw->NB, ND = sw->ND, P = sw->P, S = sw->S, K = sw->steps;
    int Q = sw->cfg->n_quantiles;
    size_t n_stat = (size_t)NM * NB * ND * K, n_score = (size_t)NM * NB * ND * P * S;
    size_t n_curves = (size_t)P * S;
    r->mean = pl_malloc(sizeof(double) * n_stat, "means");
    r->median = pl_malloc(sizeof(double) * n_stat, "medians");
    r->quant = pl_malloc(sizeof(double) * n_stat * (Q ? Q : 1), "quantiles");
    r->count = pl_malloc(sizeof(int) * n_stat, "counts");
    r->onset = pl_malloc(sizeof(float) * n_score, "onsets");
    r->slope_alpha = pl_malloc(sizeof(float) * n_score, "max-slope alphas");
    r->sharp = pl_malloc(sizeof(float) * n_score, "sharpness");
    float *column = pl_malloc(sizeof(float) * n_curves, "statistics column");
    double *scratch = pl_malloc(sizeof(double) * n_curves, "statistics scratch");
    double *qv = pl_malloc(sizeof(double) * (Q ? Q : 1), "quantile values");
    if (!r->mean || !r->median || !r->quant || !r->count || !r->onset || !r->slope_alpha || !r->sharp || !column ||
        !scratch || !qv) {
        free(column), free(scratch), free(qv);
        return PL_ERR;
    }
    for (int mi = 0; mi < NM; mi++) {
        int one_minus = sw->cfg->metrics[mi] == PL_METRIC_COSINE; /* scores of 1 - cosine */
        for (int b = 0; b < NB; b++)
            for (int d = 0; d < ND; d++) {
                for (int p = 0; p < P; p++)
                    for (int s = 0; s < S; s++) {
                        long u = (((long)p * NB + b) * ND + d) * S + s;
                        const float *curve = r->curves + ((size_t)u * NM + mi) * K;
                        size_t at = ((((size_t)mi * NB + b) * ND + d) * P + p) * S + s;
                        pl_curve_scores(curve, sw->alpha, K, sw->cfg->onset_threshold, one_minus, &r->onset[at],
                                        &r->slope_alpha[at], &r->sharp[at]);
                    }
                for (int k = 0; k < K; k++) {
                    for (int p = 0; p < P; p++)
                        for (int s = 0; s < S; s++) {
                            long u = (((long)p * NB + b) * ND + d) * S + s;
                            column[(size_t)p * S + s] = r->curves[((size_t)u * NM + mi) * K + k];
                        }
                    size_t at = (((size_t)mi * NB + b) * ND + d) * K + k;
                    pl_describe(column, (int)n_curves, sw->cfg->quantiles, Q, scratch, &r->mean[at], &r->median[at],
                                qv, &r->count[at]);
                    for (int q = 0; q < Q; q++)
                        r->quant[((((size_t)mi * Q + q) * NB + b) * ND + d) * K + k] = qv[q];
                }
            }
    }
    free(column), free(scratch), free(qv);
    return PL_OK;
}
