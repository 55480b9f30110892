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
        if (!cache->X || !cache->logits || !cache->read || !cache->scratch)
            return PL_ERR;
    }
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
    int rc = PL_OK;
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
    for (int i = 0; i < n; i++)
        pl_unit_metrics(cache->logits + (size_t)i * S * V, cache->read + (size_t)i * S * C, S, V, C,
                        sw->cfg->metrics, sw->NM, cache->scratch, out + (size_t)i * sw->NM * S);
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
