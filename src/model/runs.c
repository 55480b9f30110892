/* The bookkeeping every family's forward shares (model_internal.h): the clean run's buffers, the
 * fast path's rows, the last positions' logits. The math stays in the family files. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "plateau/error.h"

int pl_runs_alloc(pl_run *runs, int N, int T, int C, int L, int V, int kv_dim, int stop)
{
    size_t TC = (size_t)T * C, Tkv = (size_t)T * kv_dim;
    for (int i = 0; i < N; i++) {
        pl_run *run = &runs[i];
        run->T = T, run->C = C, run->L = L, run->V = V, run->kv_dim = kv_dim;
        run->resid = pl_malloc(sizeof(float) * (size_t)(stop + 1) * TC, "residual cache");
        run->k = pl_malloc(sizeof(float) * (size_t)(stop ? stop : 1) * Tkv, "key cache");
        run->v = pl_malloc(sizeof(float) * (size_t)(stop ? stop : 1) * Tkv, "value cache");
        run->logits = stop == L ? pl_malloc(sizeof(float) * (size_t)V, "logits") : NULL;
        if (!run->resid || !run->k || !run->v || (!run->logits && stop == L))
            return PL_ERR;
    }
    return PL_OK;
}

int pl_runs_logits(pl_run *runs, int N, int T, int C, int V, const float *x, pl_unembed_fn unembed,
                   const void *weights)
{
    float *last = pl_malloc(sizeof(float) * (size_t)N * C, "last positions");
    float *logits = N == 1 ? runs[0].logits : pl_malloc(sizeof(float) * (size_t)N * V, "logits");
    int rc = PL_ERR;
    if (last && logits) {
        for (int i = 0; i < N; i++)
            memcpy(last + (size_t)i * C, x + ((size_t)i * T + T - 1) * C, sizeof(float) * C);
        rc = unembed(weights, last, N, logits);
    }
    if (rc == PL_OK && N > 1)
        for (int i = 0; i < N; i++)
            memcpy(runs[i].logits, logits + (size_t)i * V, sizeof(float) * V);
    if (N > 1)
        free(logits);
    free(last);
    return rc;
}

int pl_fast_rows_alloc(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M, int n,
                       int C)
{
    f->M = M, f->n = n, f->C = C;
    f->x = pl_malloc(sizeof(float) * (size_t)M * n * C, "fast-path residual");
    f->clean_of = pl_malloc(sizeof(pl_run *) * (size_t)M, "fast-path groups");
    if (!f->x || !f->clean_of) {
        pl_fast_rows_free(f);
        return PL_ERR;
    }
    for (int g = 0, v = 0; g < G; g++)
        for (int i = 0; i < group_rows[g]; i++)
            f->clean_of[v++] = cleans[g];
    return PL_OK;
}

int pl_fast_rows_init(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M,
                      int resid_index, int pos, const float *X, int read_index, float *read)
{
    int C = cleans[0]->C, T = cleans[0]->T, n = T - pos;
    size_t TC = (size_t)T * C;
    if (pl_fast_rows_alloc(f, cleans, group_rows, G, M, n, C) != PL_OK)
        return PL_ERR;
    for (int v = 0; v < M; v++) {
        const float *clean_r = f->clean_of[v]->resid + (size_t)resid_index * TC;
        memcpy(f->x + (size_t)v * n * C, X + (size_t)v * C, sizeof(float) * C);
        if (n > 1)
            memcpy(f->x + ((size_t)v * n + 1) * C, clean_r + (size_t)(pos + 1) * C, sizeof(float) * (n - 1) * C);
    }
    /* A read hook at or before the patch sees what is there: the clean run, or the patch itself. */
    if (read && read_index <= resid_index)
        pl_fast_rows_read(f, read);
    if (read && read_index < resid_index)
        for (int v = 0; v < M; v++)
            memcpy(read + (size_t)v * C, f->clean_of[v]->resid + (size_t)read_index * TC + (size_t)(T - 1) * C,
                   sizeof(float) * C);
    return PL_OK;
}

void pl_fast_rows_read(const pl_fast_rows *f, float *read)
{
    size_t C = (size_t)f->C, n = (size_t)f->n;
    if (f->P > 0) { /* whole contexts: read[v, j] = row out[j] of variant v */
        for (int v = 0; v < f->M; v++)
            for (int j = 0; j < f->P; j++)
                memcpy(read + ((size_t)v * f->P + j) * C, f->x + ((size_t)v * n + f->out[j]) * C, sizeof(float) * C);
        return;
    }
    for (int v = 0; v < f->M; v++)
        memcpy(read + (size_t)v * C, f->x + ((size_t)v * n + n - 1) * C, sizeof(float) * C);
}

void pl_fast_rows_gather_last(pl_fast_rows *f)
{
    size_t C = (size_t)f->C, n = (size_t)f->n;
    if (f->P > 0) { /* row v*P + j <= v*n + out[j] (out increasing, P <= n): an in-order move never
                     * overwrites a row still to be moved */
        for (int v = 0; v < f->M; v++)
            for (int j = 0; j < f->P; j++)
                memmove(f->x + ((size_t)v * f->P + j) * C, f->x + ((size_t)v * n + f->out[j]) * C, sizeof(float) * C);
        return;
    }
    if (n > 1)
        for (int v = 0; v < f->M; v++)
            memmove(f->x + (size_t)v * C, f->x + ((size_t)v * n + n - 1) * C, sizeof(float) * C);
}

void pl_fast_rows_free(pl_fast_rows *f)
{
    free(f->x);
    free(f->clean_of);
    f->x = NULL;
    f->clean_of = NULL;
}

int pl_fast_rows_init_positions(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                int resid_index, const int *positions, const int *offsets, int P, const float *X,
                                int read_index, float *read)
{
    int C = cleans[0]->C, T = cleans[0]->T, p0 = positions[0], n = T - p0;
    size_t TC = (size_t)T * C;
    f->P = P, f->out = offsets;
    if (pl_fast_rows_alloc(f, cleans, group_rows, G, M, n, C) != PL_OK)
        return PL_ERR;
    for (int v = 0; v < M; v++) {
        float *rows = f->x + (size_t)v * n * C;
        memcpy(rows, f->clean_of[v]->resid + (size_t)resid_index * TC + (size_t)p0 * C, sizeof(float) * n * C);
        for (int j = 0; j < P; j++)
            memcpy(rows + (size_t)offsets[j] * C, X + ((size_t)v * P + j) * C, sizeof(float) * C);
    }
    /* A read hook at or before the patch sees what is there: the clean run, or the patches. */
    if (read && read_index <= resid_index)
        pl_fast_rows_read(f, read);
    if (read && read_index < resid_index)
        for (int v = 0; v < M; v++)
            for (int j = 0; j < P; j++)
                memcpy(read + ((size_t)v * P + j) * C,
                       f->clean_of[v]->resid + (size_t)read_index * TC + (size_t)positions[j] * C, sizeof(float) * C);
    return PL_OK;
}
