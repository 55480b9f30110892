/* The full result table on rank 0 and what is derived from it: per-curve scores, per-alpha
 * statistics, the paired comparisons of kinds and the score histograms, computed in one fixed order
 * from the stored float32 curves, so they depend neither on the number of ranks nor on a resume. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

int pl_results_init(pl_results *r, const pl_sweep *sw)
{
    memset(r, 0, sizeof *r);
    r->sw = sw;
    size_t per_unit = (size_t)sw->NM * sw->NPC * sw->steps;
    r->curves = pl_calloc((size_t)sw->n_units * per_unit, sizeof(float), "result table");
    r->done = pl_calloc((size_t)sw->n_units, 1, "completed units");
    if (sw->NX && !(r->local = pl_calloc((size_t)sw->n_units * sw->NX, sizeof(float), "local geometry table")))
        return PL_ERR;
    return r->curves && r->done ? PL_OK : PL_ERR;
}

void pl_results_free(pl_results *r)
{
    free(r->curves);
    free(r->local);
    free(r->done);
    free(r->mean);
    free(r->median);
    free(r->quant);
    free(r->count);
    free(r->scores);
    free(r->paired);
    free(r->hist);
    free(r->hist_outside);
    free(r->n_censored);
    free(r->axis_curves);
    free(r->axis_local);
    free(r->slice_mean);
    free(r->slice_median);
    free(r->slice_count);
    memset(r, 0, sizeof *r);
}

void pl_score_range(const pl_sweep *sw, int sc, double *lo, double *hi)
{
    *lo = 0.0;
    *hi = PL_SCORES[sc].alpha_valued ? sw->cfg->alpha_max : (double)(sw->steps - 1);
}

int pl_sweep_has_score(const pl_sweep_config *cfg, int m, int sc)
{
    if (pl_score_degenerate(sc, m))
        return 0; /* the NL scores on a metric quadratic near 0 (scores.c) */
    if (sc == PL_SCORE_ALPHA_AT_THRESHOLD)
        return isfinite(cfg->thresholds[m]);
    if (sc == PL_SCORE_PLATEAU_LENGTH) /* Giglemiani et al.'s is an L2 threshold */
        return m == PL_METRIC_L2 && isfinite(cfg->plateau_threshold);
    return 1;
}

/* A kind whose units sit at their base at alpha != 0 (sae_feature_scale) has V-shaped curves: no
 * per-curve scores (NaN) and no comparisons. */
static int kind_scored(const pl_sweep *sw, int d)
{
    return PL_DIRECTION_KINDS[sw->cfg->dirs[d].kind].ref_alpha == 0.0;
}

/* The comparisons a paper quotes: real vs synthetic base for each direction (when both bases are
 * swept), and each direction kind vs real_other for each base (when real_other is swept). */
static void list_comparisons(pl_results *r)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    int real = -1, synth = -1, other = -1;
    for (int b = 0; b < sw->NB; b++) {
        if (cfg->bases[b] == PL_BASE_REAL)
            real = b;
        if (cfg->bases[b] == PL_BASE_SYNTHETIC)
            synth = b;
    }
    for (int d = 0; d < sw->ND; d++)
        if (!strcmp(cfg->dirs[d].label, "real_other"))
            other = d;
    r->n_comparisons = 0;
    if (real >= 0 && synth >= 0)
        for (int d = 0; d < sw->ND; d++) {
            if (!kind_scored(sw, d))
                continue;
            pl_comparison *c = &r->comparisons[r->n_comparisons++];
            *c = (pl_comparison){real, d, synth, d, ""};
            snprintf(c->label, sizeof c->label, "real/synthetic @ %s", cfg->dirs[d].label);
        }
    if (other >= 0)
        for (int b = 0; b < sw->NB; b++)
            for (int d = 0; d < sw->ND; d++) {
                if (d == other || !kind_scored(sw, d))
                    continue;
                pl_comparison *c = &r->comparisons[r->n_comparisons++];
                *c = (pl_comparison){b, d, b, other, ""};
                snprintf(c->label, sizeof c->label, "%s/real_other @ %s", cfg->dirs[d].label,
                         PL_BASE_KINDS[cfg->bases[b]].name);
            }
}

/* The histograms of score SC per (base, direction) from BASE[NB, ND, n_kind], and the censored (+inf)
 * scores they leave out, at SLAB (metric, score, position) of hist [.., NB, ND, HB] and its counts. */
static int score_histograms(pl_results *r, size_t slab, int sc, const double *base, size_t n_kind)
{
    const pl_sweep *sw = r->sw;
    int NB = sw->NB, ND = sw->ND, HB = sw->cfg->histogram_bins;
    double lo, hi;
    pl_score_range(sw, sc, &lo, &hi);
    for (int bd = 0; bd < NB * ND; bd++) {
        size_t at = slab * NB * ND + bd;
        if (pl_histogram(base + (size_t)bd * n_kind, (int)n_kind, lo, hi, HB, r->hist + at * HB,
                         r->hist_outside + at) != PL_OK)
            return PL_ERR;
        int nc = 0;
        for (size_t i = 0; i < n_kind; i++)
            nc += base[(size_t)bd * n_kind + i] == PL_CENSORED;
        r->n_censored[at] = nc;
    }
    return PL_OK;
}

/* Metric MI's per-curve scores and per-alpha statistics at curve position J (of NPC) from the curves:
 * scores into r->scores [NM, NSC, NPC, NB, ND, P*S], mean, median, count [NM, NPC, NB, ND, K] and
 * quantiles [NM, NPC, Q, NB, ND, K]. COLUMN[P*S], SCRATCH, QV[Q] and SC_OUT[NSC] are scratch. */
static void position_statistics(pl_results *r, int mi, int j, float *column, double *scratch, double *qv,
                                double *sc_out)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    int NM = sw->NM, NB = sw->NB, ND = sw->ND, P = sw->P, S = sw->S, K = sw->steps, NSC = PL_N_SCORES;
    int NPC = sw->NPC, Q = cfg->n_quantiles, m = cfg->metrics[mi];
    size_t n_kind = (size_t)P * S;
    pl_score_params sp = {cfg->onset_threshold, cfg->thresholds[m], cfg->nl_first, cfg->nl_last,
                          cfg->nl_tolerance, cfg->nl_rule,
                          m == PL_METRIC_L2 ? cfg->plateau_threshold : NAN, cfg->giglemiani_nl_tolerance};
    for (int b = 0; b < NB; b++)
        for (int d = 0; d < ND; d++) {
            for (int p = 0; p < P; p++)
                for (int s = 0; s < S; s++) {
                    long u = (((long)p * NB + b) * ND + d) * S + s;
                    pl_score_curve(r->curves + (((size_t)u * NM + mi) * NPC + j) * K, K, PL_METRICS[m].score_on,
                                   scratch);
                    pl_curve_scores(scratch, sw->alpha, K, &sp, sc_out);
                    for (int sc = 0; sc < NSC && !kind_scored(sw, d); sc++)
                        sc_out[sc] = NAN;
                    for (int sc = 0; sc < NSC; sc++)
                        r->scores[(((((size_t)mi * NSC + sc) * NPC + j) * NB + b) * ND + d) * n_kind +
                                  (size_t)p * S + s] = sc_out[sc];
                }
            for (int k = 0; k < K; k++) {
                for (int p = 0; p < P; p++)
                    for (int s = 0; s < S; s++) {
                        long u = (((long)p * NB + b) * ND + d) * S + s;
                        column[(size_t)p * S + s] = r->curves[(((size_t)u * NM + mi) * NPC + j) * K + k];
                    }
                size_t at = ((((size_t)mi * NPC + j) * NB + b) * ND + d) * K + k;
                pl_describe(column, (int)n_kind, cfg->quantiles, Q, scratch, &r->mean[at], &r->median[at], qv,
                            &r->count[at]);
                for (int q = 0; q < Q; q++)
                    r->quant[(((((size_t)mi * NPC + j) * Q + q) * NB + b) * ND + d) * K + k] = qv[q];
            }
        }
}

/* Every (prompt, sample) statistic of metric MI's scores at curve position J: the histograms and
 * censored counts per kind, and the paired comparisons [NM, NSC, NPC, NC]. */
static int position_comparisons(pl_results *r, int mi, int j)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    int NB = sw->NB, ND = sw->ND, NSC = PL_N_SCORES, NPC = sw->NPC, NC = r->n_comparisons, rc = PL_OK;
    int m = cfg->metrics[mi];
    size_t n_kind = (size_t)sw->P * sw->S;
    for (int sc = 0; sc < NSC && rc == PL_OK; sc++) {
        size_t slab = ((size_t)mi * NSC + sc) * NPC + j; /* (metric, score, position) */
        const double *base = r->scores + slab * NB * ND * n_kind;
        rc = score_histograms(r, slab, sc, base, n_kind);
        for (int c = 0; c < NC && rc == PL_OK; c++) {
            const pl_comparison *cp = &r->comparisons[c];
            char key[256];
            /* one position's key is the one-position run's: its bootstrap draws stay the same bits */
            if (NPC > 1)
                snprintf(key, sizeof key, "%s|%s|%s|position %d", PL_METRICS[m].name, PL_SCORES[sc].name,
                         cp->label, sw->pos + j);
            else
                snprintf(key, sizeof key, "%s|%s|%s", PL_METRICS[m].name, PL_SCORES[sc].name, cp->label);
            rc = pl_paired_compare(base + ((size_t)cp->b1 * ND + cp->d1) * n_kind,
                                   base + ((size_t)cp->b2 * ND + cp->d2) * n_kind, (int)n_kind, cfg->bootstrap,
                                   cfg->seed, pl_hash_label(key), &r->paired[slab * NC + c]);
        }
    }
    return rc;
}

/* The scores and statistics of R's 1-D table (r->sw, r->curves). */
static int finish_table(pl_results *r)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    int NM = sw->NM, NB = sw->NB, ND = sw->ND, P = sw->P, S = sw->S, K = sw->steps, NSC = PL_N_SCORES;
    int Q = cfg->n_quantiles, HB = cfg->histogram_bins, NPC = sw->NPC;
    size_t n_stat = (size_t)NM * NPC * NB * ND * K, n_kind = (size_t)P * S;
    size_t n_score = (size_t)NM * NSC * NPC * NB * ND * n_kind, n_kinds = (size_t)NM * NSC * NPC * NB * ND;
    list_comparisons(r);
    int NC = r->n_comparisons;
    r->mean = pl_malloc(sizeof(double) * n_stat, "means");
    r->median = pl_malloc(sizeof(double) * n_stat, "medians");
    r->quant = pl_malloc(sizeof(double) * n_stat * (Q ? Q : 1), "quantiles");
    r->count = pl_malloc(sizeof(int) * n_stat, "counts");
    r->scores = pl_malloc(sizeof(double) * n_score, "scores");
    r->paired = pl_malloc(sizeof(pl_paired) * (size_t)NM * NSC * NPC * (NC ? NC : 1), "comparisons");
    r->hist = pl_malloc(sizeof(int) * n_kinds * HB, "histograms");
    r->hist_outside = pl_malloc(sizeof(int) * n_kinds, "histograms");
    r->n_censored = pl_malloc(sizeof(int) * n_kinds, "histograms");
    float *column = pl_malloc(sizeof(float) * n_kind, "statistics column");
    double *scratch = pl_malloc(sizeof(double) * (n_kind > (size_t)K ? n_kind : (size_t)K), "statistics scratch");
    double *qv = pl_malloc(sizeof(double) * (Q ? Q : 1), "quantile values");
    double *sc_out = pl_malloc(sizeof(double) * NSC, "scores");
    int rc = PL_OK;
    if (!r->mean || !r->median || !r->quant || !r->count || !r->scores || !r->paired || !r->hist ||
        !r->hist_outside || !r->n_censored || !column || !scratch || !qv || !sc_out)
        rc = PL_ERR;
    for (int mi = 0; mi < NM && rc == PL_OK; mi++) {
        for (int sc = 0; sc < NSC; sc++)
            r->has_score[mi][sc] = pl_sweep_has_score(cfg, cfg->metrics[mi], sc);
        for (int j = 0; j < NPC && rc == PL_OK; j++) {
            position_statistics(r, mi, j, column, scratch, qv, sc_out);
            rc = position_comparisons(r, mi, j);
        }
    }
    free(column), free(scratch), free(qv), free(sc_out);
    return rc;
}

/* A slice's grid statistics: per (metric, base, grid point) the mean, median and count over (prompt,
 * sample), as the 1-D statistics are per alpha. */
static int slice_statistics(pl_results *r)
{
    const pl_sweep *sw = r->sw;
    int NM = sw->NM, NB = sw->NB, S = sw->S, G = sw->steps;
    size_t n_kind = (size_t)sw->P * S, n_stat = (size_t)NM * NB * G;
    r->slice_mean = pl_malloc(sizeof(double) * n_stat, "slice means");
    r->slice_median = pl_malloc(sizeof(double) * n_stat, "slice medians");
    r->slice_count = pl_malloc(sizeof(int) * n_stat, "slice counts");
    float *column = pl_malloc(sizeof(float) * n_kind, "statistics column");
    double *scratch = pl_malloc(sizeof(double) * n_kind, "statistics scratch"), qv;
    int rc = r->slice_mean && r->slice_median && r->slice_count && column && scratch ? PL_OK : PL_ERR;
    for (int mi = 0; mi < NM && rc == PL_OK; mi++)
        for (int b = 0; b < NB; b++)
            for (int g = 0; g < G; g++) {
                for (int p = 0; p < sw->P; p++)
                    for (int s = 0; s < S; s++) {
                        long u = ((long)p * NB + b) * S + s; /* a slice's ND is 1 */
                        column[(size_t)p * S + s] = r->curves[((size_t)u * NM + mi) * G + g];
                    }
                size_t at = ((size_t)mi * NB + b) * G + g;
                pl_describe(column, (int)n_kind, NULL, 0, scratch, &r->slice_mean[at], &r->slice_median[at], &qv,
                            &r->slice_count[at]);
            }
    free(column), free(scratch);
    return rc;
}

/* A slice: its grid's statistics, then its two axes as the 1-D curves of its two kinds (row i K of the
 * grid, beta = 0, is direction 0's curve at alpha_i; row j, alpha = 0, direction 1's at alpha_j; the grid
 * starts at 0), scored and compared as any 1-D table. */
static int finish_slice(pl_results *r)
{
    const pl_sweep *sw = r->sw;
    int NM = sw->NM, NB = sw->NB, S = sw->S, K = sw->n_alpha, G = sw->steps;
    if (slice_statistics(r) != PL_OK)
        return PL_ERR;
    r->axis = *sw;
    r->axis.slice = 0, r->axis.ND = 2, r->axis.steps = K, r->axis.n_units = 2 * sw->n_units;
    r->axis.NX = sw->NX_site; /* a slice unit's extras are its two axes' blocks (batches.c) */
    r->axis.unit_floats = NM * K + r->axis.NX;
    size_t NXA = (size_t)r->axis.NX;
    r->axis_curves = pl_malloc(sizeof(float) * (size_t)r->axis.n_units * NM * K, "slice axes");
    if (NXA && !(r->axis_local = pl_malloc(sizeof(float) * (size_t)r->axis.n_units * NXA, "slice axes' extras")))
        return PL_ERR;
    if (!r->axis_curves)
        return PL_ERR;
    for (long u = 0; u < sw->n_units; u++) {
        long p = u / ((long)NB * S), bs = u % ((long)NB * S);
        for (int d = 0; d < 2; d++) {
            long v = (p * NB + bs / S) * 2 * S + (long)d * S + bs % S; /* (p, b, d, s) of the axis table */
            for (int mi = 0; mi < NM; mi++)
                for (int k = 0; k < K; k++)
                    r->axis_curves[((size_t)v * NM + mi) * K + k] =
                        r->curves[((size_t)u * NM + mi) * G + (d == 0 ? (size_t)k * K : (size_t)k)];
            if (NXA)
                memcpy(r->axis_local + (size_t)v * NXA, r->local + ((size_t)u * 2 + d) * NXA, sizeof(float) * NXA);
        }
    }
    float *grid = r->curves;
    r->sw = &r->axis, r->curves = r->axis_curves;
    int rc = finish_table(r);
    r->sw = sw, r->curves = grid;
    return rc;
}

int pl_results_finish(pl_results *r)
{
    r->view = r->sw->slice ? &r->axis : r->sw;
    return r->sw->slice ? finish_slice(r) : finish_table(r);
}
