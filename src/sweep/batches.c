/* Batches of units: a fixed run of consecutive units whose clean runs go through one batched
 * forward and whose steps are the rows of one grouped fast-path call (or, with --naive, one full
 * patched forward per step); row 0 of a unit is alpha = 0, the unperturbed base, against which every
 * row of the unit is measured.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

/* ------------------------------------------------------------ a unit */

void pl_unit_cache_init(pl_unit_cache *c) { memset(c, 0, sizeof *c); }

void pl_unit_cache_free(pl_unit_cache *c)
{
    free(c->X);
    free(c->logits);
    free(c->read);
    free(c->scratch);
    free(c->bad);
    pl_unit_cache_init(c);
}

void pl_sweep_set_batches(pl_sweep *sw)
{
    sw->batch_units = sw->steps >= PL_BATCH_ROWS ? 1 : PL_BATCH_ROWS / sw->steps;
    sw->n_batches = (sw->n_units + sw->batch_units - 1) / sw->batch_units;
}

long pl_batch_first_unit(const pl_sweep *sw, long b, int *n_units)
{
    long first = b * sw->batch_units;
    long n = sw->n_units - first;
    *n_units = (int)(n < sw->batch_units ? n : sw->batch_units);
    return first;
}

void pl_unit_name(const pl_sweep *sw, long u, char *out, size_t size)
{
    static const char *const base_names[] = {"real", "synthetic"};
    pl_unit_id id = pl_unit_decode(sw, u);
    snprintf(out, size, "unit %ld (prompt %d, base %s, direction %s, sample %d)", u, id.p,
             base_names[sw->cfg->bases[id.b]], sw->cfg->dirs[id.d].label, id.s);
}

/* Index of the first non-finite value of X[n], or -1. */
static long first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return (long)i;
    return -1;
}

/* Which rows of a batch's step vectors, logits and read-hook residuals hold a non-finite value
 * (BAD_LOGITS[row], BAD_READ[row]; a bad step vector makes both bad). With [run] nonfinite = error
 * the first one fails the batch with a message naming its unit, alpha and where; NULL X skips the
 * step vectors (checked before evaluating). */
static int find_nonfinite(const pl_sweep *sw, long first, int n, const float *X, const float *logits,
                          const float *read, unsigned char *bad_logits, unsigned char *bad_read)
{
    int S = sw->steps, C = sw->C, V = sw->V;
    for (size_t row = 0; row < (size_t)n * S; row++) {
        long at_x = X ? first_nonfinite(X + row * C, (size_t)C) : -1;
        long at_logit = logits ? first_nonfinite(logits + row * V, (size_t)V) : -1;
        long at_read = read ? first_nonfinite(read + row * C, (size_t)C) : -1;
        bad_logits[row] |= at_x >= 0 || at_logit >= 0;
        bad_read[row] |= at_x >= 0 || at_read >= 0;
        if (sw->cfg->nonfinite_mark || (at_x < 0 && at_logit < 0 && at_read < 0))
            continue;
        char unit[320], what[256];
        pl_unit_name(sw, first + (long)(row / S), unit, sizeof unit);
        if (at_x >= 0)
            snprintf(what, sizeof what, "the step vector (base + alpha x direction) has a non-finite component %ld",
                     at_x);
        else if (at_logit >= 0)
            snprintf(what, sizeof what, "the logit of token %ld is %s, from a finite step vector: the model computes "
                     "it; check its weights", at_logit, isnan(logits[row * V + at_logit]) ? "NaN" : "infinite");
        else
            snprintf(what, sizeof what, "the residual at %s has a non-finite component %ld, from a finite step "
                     "vector: the model computes it; check its weights", sw->cfg->read_hook, at_read);
        pl_fail("%s, alpha = %g: %s ([run] nonfinite = error; 'mark' stores NaN and leaves it out of the "
                "statistics)",
                unit, sw->alpha[row % S], what);
        return PL_ERR_BAD_INPUT;
    }
    return PL_OK;
}

int pl_batch_eval(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out)
{
    const pl_model *m = sw->model;
    int C = sw->C, V = sw->V, T = sw->T, S = sw->steps, n;
    long first = pl_batch_first_unit(sw, b, &n);
    size_t rows = (size_t)sw->batch_units * S;
    if (!cache->X) {
        cache->X = pl_malloc(sizeof(float) * rows * C, "batch steps");
        cache->logits = pl_malloc(sizeof(float) * rows * V, "batch logits");
        cache->read = pl_malloc(sizeof(float) * rows * C, "batch readout");
        cache->scratch = pl_malloc(sizeof(double) * 4 * (size_t)V, "metric scratch");
        cache->bad = pl_malloc(2 * rows, "non-finite rows");
        if (!cache->X || !cache->logits || !cache->read || !cache->scratch || !cache->bad)
            return PL_ERR;
    }
    unsigned char *bad_logits = cache->bad, *bad_read = cache->bad + rows;
    memset(cache->bad, 0, 2 * rows);
    /* Units are prompt-major, so a batch's prompts come in runs: group g is the g-th distinct one. */
    int *group = pl_malloc(sizeof(int) * 2 * (size_t)n, "batch groups"), *prompts = group + n, G = 0;
    if (!group)
        return PL_ERR;
    for (int i = 0; i < n; i++) {
        pl_unit_id id = pl_unit_decode(sw, first + i);
        if (G == 0 || prompts[G - 1] != id.p)
            prompts[G++] = id.p;
        group[i] = G - 1;
        if (pl_unit_steps(sw, id, cache->X + (size_t)i * S * C) != PL_OK) {
            free(group);
            return PL_ERR;
        }
    }
    int rc = find_nonfinite(sw, first, n, cache->X, NULL, NULL, bad_logits, bad_read);
    if (rc != PL_OK) {
        free(group);
        return rc;
    }
    if (sw->naive) {
        for (int i = 0; i < n && rc == PL_OK; i++) {
            const int *tokens = sw->tokens + (size_t)prompts[group[i]] * T;
            for (int k = 0; k < S && rc == PL_OK; k++) {
                size_t row = (size_t)i * S + k;
                pl_run run;
                rc = pl_forward_patched(m, tokens, T, sw->resid_index, sw->pos, cache->X + row * C, &run);
                if (rc != PL_OK)
                    break;
                memcpy(cache->logits + row * V, run.logits, sizeof(float) * V);
                memcpy(cache->read + row * C, run.resid + ((size_t)sw->read_index * T + T - 1) * C,
                       sizeof(float) * C);
                pl_run_free(&run);
            }
        }
    } else {
        int *tokens = pl_malloc(sizeof(int) * (size_t)G * T, "batch prompts");
        pl_run *runs = pl_calloc((size_t)G, sizeof(pl_run), "clean runs");
        const pl_run **cleans = pl_malloc(sizeof(pl_run *) * (size_t)n, "clean runs");
        int *group_rows = pl_malloc(sizeof(int) * (size_t)n, "batch groups");
        rc = tokens && runs && cleans && group_rows ? PL_OK : PL_ERR;
        for (int g = 0; rc == PL_OK && g < G; g++)
            memcpy(tokens + (size_t)g * T, sw->tokens + (size_t)prompts[g] * T, sizeof(int) * T);
        if (rc == PL_OK)
            rc = pl_forward_batch(m, tokens, G, T, runs);
        if (rc == PL_OK) {
            for (int i = 0; i < n; i++) {
                cleans[i] = &runs[group[i]];
                group_rows[i] = S;
            }
            rc = pl_patch_eval_groups(m, cleans, group_rows, n, sw->resid_index, sw->pos, cache->X,
                                      cache->logits, sw->read_index, cache->read);
            for (int g = 0; g < G; g++)
                pl_run_free(&runs[g]);
        }
        free(tokens);
        free(runs);
        free(cleans);
        free(group_rows);
    }
    free(group);
    if (rc != PL_OK)
        return PL_ERR;
    rc = find_nonfinite(sw, first, n, NULL, cache->logits, cache->read, bad_logits, bad_read);
    if (rc != PL_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * sw->NM * S;
        const unsigned char *bl = bad_logits + (size_t)i * S, *br = bad_read + (size_t)i * S;
        pl_unit_metrics(cache->logits + (size_t)i * S * V, cache->read + (size_t)i * S * C, S, V, C,
                        sw->cfg->metrics, sw->NM, cache->scratch, o);
        /* [run] nonfinite = mark: a metric fed by a non-finite value (in the row or in the unit's
         * unperturbed row 0, its reference) is NaN */
        for (int mi = 0; mi < sw->NM; mi++) {
            int logit_metric = sw->cfg->metrics[mi] == PL_METRIC_KL || sw->cfg->metrics[mi] == PL_METRIC_JSD;
            const unsigned char *bad = logit_metric ? bl : br;
            for (int k = 0; k < S; k++)
                if (bad[k] || bad[0])
                    o[(size_t)mi * S + k] = NAN;
        }
    }
    return PL_OK;
}

void pl_sweep_free(pl_sweep *sw)
{
    free(sw->alpha);
    free(sw->tokens);
    free(sw->real_act);
    free(sw->mu);
    free(sw->chol);
    free(sw->partner);
    for (int d = 0; d < PL_MAX_DIRECTIONS; d++)
        free(sw->file_rows[d]);
    memset(sw, 0, sizeof *sw);
}
