/* The local geometry of a sweep's bases (issue 17) on the worker: the Fisher operator of fisher.h
 * built from the exact derivatives of plateau/grad.h at one (prompt, base), and what a batch records
 * of it per unit (`kl_rayleigh`, and the base's eigenvalues and trace).
 *
 * The operator at a base x (the adapter the fisher helper sketched, /work/brief/fisher_report.md):
 *   J v   = pl_patch_jvp of rows X = x with tangents v (logits at the readout position),
 *   Jᵀ u  = pl_patch_vjp of rows X = x with cotangents u on the logits,
 *   p     = softmax of the base's own unperturbed logits (pl_patch_eval at x): the "clean" row every
 *           step of the unit is measured against, so ½ δᵀFδ is the second-order term of the kl
 *           curve's own KL (for a synthetic base too).
 * The clean run is the prompt's first T_eval tokens, one forward of its own per (prompt, base), so
 * the numbers depend on (prompt, base) only: not on the batch, the rank or the other prompts.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/grad.h"
#include "sweep_internal.h"
#include "../experiment/base_local.h"

/* rows per JVP/VJP call: dz of 64 rows is 64 V floats (13 MB for GPT-2's vocabulary) */
#define LOCAL_ROWS 64

void pl_sweep_local_init(pl_sweep_local *l)
{
    memset(l, 0, sizeof *l);
    l->geo.p = l->geo.b = -1;
}

void pl_sweep_local_free(pl_sweep_local *l)
{
    pl_base_local_free(&l->geo);
    if (l->have_clean)
        pl_run_free(&l->clean);
    free(l->x);
    pl_sweep_local_init(l);
}

/* Every value of A[n] finite, else a note of where (the caller names the place). */
static int all_finite(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

static void fill_rows(pl_sweep_local *l, int n)
{
    for (int r = 0; r < n; r++)
        memcpy(l->X + (size_t)r * l->C, l->x, sizeof(float) * l->C);
}

static int base_jvp(void *ctx, const float *v, int n, float *dz)
{
    pl_sweep_local *l = ctx;
    const pl_sweep *sw = l->sw;
    fill_rows(l, n);
    if (pl_patch_jvp(sw->model, &l->clean, sw->resid_index, sw->pos, l->X, v, n, NULL, dz, -1, NULL, NULL) != PL_OK)
        return PL_ERR;
    if (!all_finite(dz, (size_t)n * l->V)) {
        l->nonfinite = 1;
        return pl_fail("the Jacobian-vector product of the logits is not finite");
    }
    return PL_OK;
}

static int base_vjp(void *ctx, const float *u, int n, float *g)
{
    pl_sweep_local *l = ctx;
    const pl_sweep *sw = l->sw;
    fill_rows(l, n);
    if (pl_patch_vjp(sw->model, &l->clean, sw->resid_index, sw->pos, l->X, n, u, -1, NULL, NULL, NULL, g) != PL_OK)
        return PL_ERR;
    if (!all_finite(g, (size_t)n * l->C)) {
        l->nonfinite = 1;
        return pl_fail("the vector-Jacobian product (the gradient at the hook) is not finite");
    }
    return PL_OK;
}

/* Buffers, sized once per rank. */
static int local_alloc(pl_sweep_local *l, const pl_sweep *sw)
{
    if (l->x)
        return PL_OK;
    l->sw = sw;
    l->C = sw->C;
    l->V = sw->V;
    size_t C = (size_t)sw->C, V = (size_t)sw->V;
    /* x[C] base_logits[V] p[V] X[rows, C] */
    l->x = pl_malloc(sizeof(float) * (C + 2 * V + LOCAL_ROWS * C), "local geometry buffers");
    if (!l->x)
        return PL_ERR;
    l->base_logits = l->x + C;
    l->p = l->base_logits + V;
    l->X = l->p + V;
    return PL_OK;
}

/* The prompt's clean run, the base x as the model sees it and its distribution p. */
static int local_base(pl_sweep_local *l, pl_unit_id id)
{
    const pl_sweep *sw = l->sw;
    int C = sw->C, V = sw->V;
    if (!l->have_clean || l->clean_p != id.p) {
        if (l->have_clean)
            pl_run_free(&l->clean);
        l->have_clean = 0;
        if (pl_forward_batch(sw->model, sw->tokens + (size_t)id.p * sw->T, 1, sw->T_eval, &l->clean) != PL_OK)
            return PL_ERR;
        l->have_clean = 1;
        l->clean_p = id.p;
    }
    double *base = pl_malloc(sizeof(double) * 3 * (size_t)C, "base"), *dir = base + C;
    if (!base)
        return PL_ERR;
    id.d = 0, id.s = 0; /* the base does not depend on the direction */
    pl_unit_vectors(&sw->ex, id, base, dir);
    for (int c = 0; c < C; c++)
        l->x[c] = (float)base[c];
    free(base);
    if (pl_patch_eval(sw->model, &l->clean, sw->resid_index, sw->pos, l->x, 1, l->base_logits, -1, NULL) != PL_OK)
        return PL_ERR;
    if (!all_finite(l->x, (size_t)C) || !all_finite(l->base_logits, (size_t)V)) {
        l->nonfinite = 1;
        return pl_fail("the base or its logits are not finite");
    }
    double mx = -INFINITY, z = 0.0; /* softmax in double, as metrics.c */
    for (int j = 0; j < V; j++)
        mx = l->base_logits[j] > mx ? l->base_logits[j] : mx;
    for (int j = 0; j < V; j++)
        z += exp((double)l->base_logits[j] - mx);
    for (int j = 0; j < V; j++)
        l->p[j] = (float)(exp((double)l->base_logits[j] - mx) / z);
    l->op = (pl_local_op){l, C, V, 1, LOCAL_ROWS, l->p, NULL, base_jvp, base_vjp};
    return PL_OK;
}

int pl_sweep_local_at(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id)
{
    if (local_alloc(l, sw) != PL_OK)
        return PL_ERR;
    pl_base_local_free(&l->geo);
    l->nonfinite = 0;
    l->failed = 0;
    int rc = local_base(l, id);
    if (rc == PL_OK)
        rc = pl_base_local_compute(&l->op, sw->fisher_k, sw->cfg->seed, id.p, id.b, sw->cfg->bases[id.b], &l->geo);
    if (rc == PL_OK)
        return PL_OK;
    char where[160];
    snprintf(where, sizeof where, "prompt %d, base %s: the Fisher metric at the base", id.p,
             PL_BASE_KINDS[sw->cfg->bases[id.b]].name);
    if (!l->nonfinite)
        return pl_fail_prefix("%s", where);
    if (!sw->cfg->nonfinite_mark) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", pl_error());
        pl_fail("%s: %s ([run] nonfinite = error; 'mark' stores NaN for what it feeds)", where, msg);
        return PL_ERR_BAD_INPUT;
    }
    /* nonfinite = mark: this (prompt, base) has no local geometry; its numbers are NaN and the fisher
     * kind's directions NaN, which marks their curves */
    l->failed = 1;
    l->geo.p = id.p;
    l->geo.b = id.b;
    return PL_OK;
}

int pl_sweep_local_unit(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, float *extras)
{
    int k = sw->fisher_k, C = sw->C;
    for (int j = 0; j < sw->NX; j++)
        extras[j] = NAN;
    if (l->failed)
        return PL_OK;
    extras[PL_LOCAL_TRACE] = (float)l->geo.trace;
    for (int j = 0; j < k && j < l->geo.k; j++)
        extras[PL_LOCAL_EIGEN + j] = (float)l->geo.values[j];
    if (!pl_unit_defined(&sw->ex, id))
        return PL_OK;
    pl_experiment ex = sw->ex;
    ex.local = &l->geo;
    double *base = pl_malloc(sizeof(double) * 3 * (size_t)C, "unit vectors"), *dir = base + C;
    if (!base)
        return PL_ERR;
    pl_unit_vectors(&ex, id, base, dir);
    double n2 = 0.0;
    for (int c = 0; c < C; c++)
        n2 += dir[c] * dir[c];
    extras[PL_LOCAL_DIRECTION_NORM] = (float)sqrt(n2);
    int rc = PL_OK;
    double q = NAN;
    if (n2 > 0.0 && isfinite(n2)) /* a zero direction has no Rayleigh quotient */
        rc = pl_fisher_rayleigh(&l->op, dir, 1, &q);
    free(base);
    if (rc != PL_OK) {
        if (l->nonfinite && sw->cfg->nonfinite_mark)
            return PL_OK;
        pl_fail_prefix("prompt %d, base %s, direction %s, sample %d: kl_rayleigh", id.p,
                       PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sw->cfg->dirs[id.d].label, id.s);
        return l->nonfinite ? PL_ERR_BAD_INPUT : PL_ERR;
    }
    extras[PL_LOCAL_RAYLEIGH] = (float)q;
    return PL_OK;
}
