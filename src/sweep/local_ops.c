/* The local geometry of a sweep's bases (issue 17) on the worker: the Fisher operator of fisher.h
 * built from the exact derivatives of plateau/grad.h at one (prompt, base), and what a batch records
 * of it per unit (`kl_rayleigh`, and the base's eigenvalues and trace). At any hook point the sweep
 * perturbs (the _at calls: a residual hook is the one-position residual path itself, bitwise; a
 * mid-block hook finishes its block from the site), x and the directions of the hook's width.
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
#include <time.h>

#include "plateau/error.h"
#include "plateau/grad.h"
#include "../experiment/metric_grad.h"
#include "sweep_internal.h"
#include "../experiment/base_local.h"

/* rows per JVP/VJP call: dz of 64 rows is 64 V floats (13 MB for GPT-2's vocabulary) */
#define LOCAL_ROWS 64

void pl_sweep_local_init(pl_sweep_local *l)
{
    memset(l, 0, sizeof *l);
    l->op_p = -1;
}

void pl_sweep_local_free(pl_sweep_local *l)
{
    for (int s = 0; s < l->n_slots; s++)
        pl_base_local_free(&l->slot[s]);
    free(l->slot);
    free(l->failed);
    if (l->have_clean)
        pl_run_free(&l->clean);
    free(l->x);
    free(l->xd);
    free(l->pcs);
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
    const pl_run *cl = &l->clean;
    if (pl_patch_jvp_groups_at(sw->model, &cl, &n, 1, sw->hook, sw->pos, l->X, v, NULL, dz, -1, NULL, NULL) != PL_OK)
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
    const pl_run *cl = &l->clean;
    if (pl_patch_vjp_groups_at(sw->model, &cl, &n, 1, sw->hook, sw->pos, l->X, u, -1, NULL, NULL, NULL, g) != PL_OK)
        return PL_ERR;
    if (!all_finite(g, (size_t)n * l->C)) {
        l->nonfinite = 1;
        return pl_fail("the vector-Jacobian product (the gradient at the hook) is not finite");
    }
    return PL_OK;
}

/* f(delta) = KL(p || softmax(logits at x + delta)) and its gradient: the kl curve's own KL (the base's
 * logits as the clean row), its gradient the VJP of metric_grad.c's cotangent q - p. */
static int base_objective(void *ctx, const float *delta, int n, double *value, float *grad)
{
    pl_sweep_local *l = ctx;
    const pl_sweep *sw = l->sw;
    int C = l->C, V = l->V;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < C; c++)
            l->X[(size_t)r * C + c] = l->x[c] + delta[(size_t)r * C + c];
    const pl_run *cl = &l->clean;
    if (pl_patch_eval_groups_at(sw->model, &cl, &n, 1, sw->hook, sw->pos, l->X, l->logits, sw->read, NULL) != PL_OK)
        return PL_ERR;
    for (int r = 0; r < n; r++)
        value[r] = pl_kl_grad(l->base_logits, l->logits + (size_t)r * V, V, l->glog + (size_t)r * V);
    if (pl_patch_vjp_groups_at(sw->model, &cl, &n, 1, sw->hook, sw->pos, l->X, l->glog, -1, NULL, NULL, NULL, grad) != PL_OK)
        return PL_ERR;
    for (int r = 0; r < n; r++)
        if (!isfinite(value[r]) || !all_finite(grad + (size_t)r * C, (size_t)C)) {
            l->nonfinite = 1;
            return pl_fail("the optimiser's KL or its gradient at the hook is not finite (row %d of a call)", r);
        }
    return PL_OK;
}

/* The n_pcs leading principal components of Sigma in the sweep's basis, as the output's `sigma` holds
 * it: L L^T of the factor every rank samples from (broadcast from rank 0, so the same bits on every
 * rank), projected P Sigma P under residual_basis = centered (result_export.c's basis_fit). Plain
 * loops in a fixed order: no BLAS threading enters the bits. */
static int local_pcs(pl_sweep_local *l, const pl_sweep *sw)
{
    int C = sw->C;
    double *S = pl_malloc(sizeof(double) * (size_t)C * C, "Sigma"), *var = pl_malloc(sizeof(double) * C, "PCs");
    l->pcs = pl_malloc(sizeof(double) * (size_t)sw->n_pcs * C, "PCs");
    int rc = S && var && l->pcs ? PL_OK : PL_ERR;
    for (int i = 0; rc == PL_OK && i < C; i++)
        for (int j = 0; j <= i; j++) {
            double a = 0.0;
            for (int t = 0; t <= j; t++) /* chol is lower triangular */
                a += sw->chol[(size_t)i * C + t] * sw->chol[(size_t)j * C + t];
            S[(size_t)i * C + j] = S[(size_t)j * C + i] = a;
        }
    if (rc == PL_OK && sw->cfg->residual_basis == PL_BASIS_CENTERED) {
        for (int i = 0; i < C; i++) /* rows (S P), then columns (P S P) */
            pl_center(S + (size_t)i * C, C);
        for (int j = 0; j < C; j++) {
            double m = 0.0;
            for (int i = 0; i < C; i++)
                m += S[(size_t)i * C + j];
            for (int i = 0; i < C; i++)
                S[(size_t)i * C + j] -= m / C; /* as pl_center: the mean, then subtracted */
        }
    }
    if (rc == PL_OK)
        rc = pl_principal_components(S, C, sw->n_pcs, l->pcs, var);
    free(S), free(var);
    return rc;
}

/* Buffers, sized once per rank. */
static int local_alloc(pl_sweep_local *l, const pl_sweep *sw)
{
    if (l->x)
        return PL_OK;
    l->sw = sw;
    l->C = sw->C;
    l->V = sw->V;
    l->n_slots = sw->S;
    l->slot = pl_calloc((size_t)sw->S, sizeof(pl_base_local), "local geometry slots");
    l->failed = pl_calloc((size_t)sw->S, 1, "local geometry slots");
    if (!l->slot || !l->failed)
        return PL_ERR;
    for (int s = 0; s < sw->S; s++)
        pl_base_local_free(&l->slot[s]); /* marks it empty */
    size_t C = (size_t)sw->C, V = (size_t)sw->V;
    /* x[C] base_logits[V] p[V] X[rows, C] logits[rows, V] glog[rows, V] */
    l->x = pl_malloc(sizeof(float) * (C + 2 * V + LOCAL_ROWS * (C + 2 * V)), "local geometry buffers");
    l->xd = pl_malloc(sizeof(double) * 3 * C, "local geometry base");
    if (!l->x || !l->xd)
        return PL_ERR;
    l->base_logits = l->x + C;
    l->p = l->base_logits + V;
    l->X = l->p + V;
    l->logits = l->X + (size_t)LOCAL_ROWS * C;
    l->glog = l->logits + (size_t)LOCAL_ROWS * V;
    return sw->n_pcs ? local_pcs(l, sw) : PL_OK;
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
    double *base = l->xd, *dir = base + C;
    id.d = 0; /* the base does not depend on the direction (a synthetic one on the sample) */
    pl_unit_vectors(&sw->ex, id, base, dir);
    for (int c = 0; c < C; c++)
        l->x[c] = (float)base[c];
    const pl_run *cl = &l->clean;
    int one = 1;
    if (pl_patch_eval_groups_at(sw->model, &cl, &one, 1, sw->hook, sw->pos, l->x, l->base_logits, sw->read, NULL) != PL_OK)
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
    l->sop = (pl_sphere_op){l, C, LOCAL_ROWS, base_objective};
    l->op_p = id.p, l->op_b = id.b, l->op_s = pl_base_sample(sw->cfg, id);
    return PL_OK;
}

/* ------------------------------------------------------------ optimisations that survive a stop
 *
 * An optimisation is saved into the run's store (sweep_internal.h, pl_opt_store) every [run]
 * checkpoint_every seconds, when the run stops between two of its steps, and once finished (until
 * every unit of its base is stored: a batch given up mid-way holds bases finished before the one it
 * stopped in), and resumed from the store when that holds this base's state: a run stopped
 * mid-optimisation loses at most one checkpoint period of it, and goes on bitwise as if never stopped
 * (everything a step reads is in the state; the objective depends on the base alone). */
typedef struct {
    const pl_sweep *sw;
    int p, b, s;        /* the base: prompt, base index, base sample */
    double t_saved;     /* when it was last saved (monotonic seconds) */
} opt_saver;

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int opt_publish(opt_saver *o, const unsigned char *bytes, size_t len)
{
    pl_opt_store *st = o->sw->opt_store;
    if (st->publish) {
        pl_opt_saved e = {o->p, o->b, o->s, (unsigned char *)bytes, len};
        st->publish(st->ctx, &e);
        return PL_OK;
    }
    return pl_opt_store_put(st, o->p, o->b, o->s, bytes, len);
}

static int opt_resume(void *ctx, pl_sphere_state *s)
{
    opt_saver *o = ctx;
    unsigned char *bytes;
    size_t len;
    o->t_saved = seconds_now();
    if (pl_opt_store_get(o->sw->opt_store, o->p, o->b, o->s, &bytes, &len) != PL_OK)
        return PL_ERR;
    if (!bytes)
        return PL_OK;
    int rc = pl_sphere_load(s, bytes, len);
    free(bytes);
    return rc == PL_OK ? PL_OK : pl_fail_prefix("resuming from the checkpoint");
}

static int opt_save(opt_saver *o, const pl_sphere_state *s)
{
    unsigned char *bytes;
    size_t len;
    if (pl_sphere_save(s, &bytes, &len) != PL_OK)
        return PL_ERR;
    int rc = opt_publish(o, bytes, len);
    free(bytes);
    o->t_saved = seconds_now();
    return rc;
}

static int opt_between(void *ctx, const pl_sphere_state *s)
{
    opt_saver *o = ctx;
    pl_opt_store *st = o->sw->opt_store;
    int stop = st->stopping && st->stopping(st->ctx);
    if (!stop && seconds_now() - o->t_saved < st->every)
        return PL_OK;
    int rc = opt_save(o, s);
    if (rc != PL_OK)
        return rc;
    if (stop) {
        pl_fail("stopped mid-optimisation (its state is saved)");
        return PL_ERR_PREEMPTED;
    }
    return PL_OK;
}

static int opt_finished(void *ctx, const pl_sphere_state *s)
{
    return opt_save(ctx, s);
}

/* The eigenpairs (and optima) at the operator's base into SLOT. */
static int local_compute(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, pl_base_local *slot)
{
    int sb = pl_base_sample(sw->cfg, id);
    /* Lanczos's stream: keyed by (prompt, base kind, base sample), not by the bases listed */
    int rc = pl_base_local_compute(&l->op, sw->fisher_k, sw->cfg->seed, id.p, id.b,
                                   sw->cfg->bases[id.b] + PL_N_BASE_KINDS * sb, slot);
    slot->s = sb;
    opt_saver saver = {sw, id.p, id.b, sb, 0.0};
    pl_sphere_hooks hooks = {&saver, opt_resume, opt_between, opt_finished};
    if (rc == PL_OK && sw->n_opt)
        rc = pl_base_local_optimize(&l->sop, &sw->ex, id, l->xd, sw->opt_store ? &hooks : NULL, slot);
    rc = rc == PL_OK ? pl_base_local_align(&sw->ex, slot) : rc;
    return rc == PL_OK ? pl_base_local_align_dirs(&sw->ex, id, l->xd, sw->n_other, l->pcs, sw->n_pcs, slot) : rc;
}

/* A failure at the base: with a non-finite derivative, PL_ERR_BAD_INPUT naming the place (nonfinite =
 * error) or PL_OK with the slot marked failed (mark); anything else PL_ERR with the place. */
static int local_failed(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, pl_base_local *slot, int sb, int rc)
{
    char where[200], sample[32] = "";
    if (PL_BASE_KINDS[sw->cfg->bases[id.b]].per_sample) /* one base per sample: name it */
        snprintf(sample, sizeof sample, ", sample %d", sb);
    snprintf(where, sizeof where, "prompt %d, base %s%s: the Fisher metric and optima at the base", id.p,
             PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sample);
    if (rc == PL_ERR_PREEMPTED) { /* the run is stopping: nothing half-done stays tagged as this base's */
        pl_base_local_free(slot);
        return rc;
    }
    if (!l->nonfinite)
        return pl_fail_prefix("%s", where);
    if (!sw->cfg->nonfinite_mark) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", pl_error());
        pl_fail("%s: %s ([run] nonfinite = error; 'mark' stores NaN for what it feeds)", where, msg);
        return PL_ERR_BAD_INPUT;
    }
    /* nonfinite = mark: no local geometry here; its numbers are NaN and the fisher and optimized
     * directions NaN, which marks their curves */
    pl_base_local_free(slot);
    slot->p = id.p, slot->b = id.b, slot->s = sb;
    l->failed[sb] = 1;
    return PL_OK;
}

const pl_base_local *pl_sweep_local_prepare(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, int *rc)
{
    *rc = local_alloc(l, sw);
    if (*rc != PL_OK)
        return NULL;
    int sb = pl_base_sample(sw->cfg, id);
    pl_base_local *slot = &l->slot[sb];
    int have = slot->p == id.p && slot->b == id.b && slot->s == sb;
    if (have && l->failed[sb])
        return NULL;
    if (l->op_p != id.p || l->op_b != id.b || l->op_s != sb) {
        l->nonfinite = 0;
        *rc = local_base(l, id);
        if (*rc == PL_OK && !have)
            *rc = local_compute(sw, l, id, slot);
    } else if (!have) {
        *rc = local_compute(sw, l, id, slot);
    }
    if (*rc != PL_OK) {
        l->op_p = -1; /* the operator's base may be half set */
        *rc = local_failed(sw, l, id, slot, sb, *rc);
        return NULL;
    }
    l->failed[sb] = 0;
    return slot;
}

int pl_sweep_local_unit(const pl_sweep *sw, pl_sweep_local *l, const pl_base_local *geo, pl_unit_id id,
                        float *extras)
{
    int k = sw->fisher_k, C = sw->C, NX = sw->slice ? sw->NX / 2 : sw->NX; /* a slice: one axis's block */
    for (int j = 0; j < NX; j++)
        extras[j] = NAN;
    if (!geo)
        return PL_OK;
    extras[PL_LOCAL_TRACE] = (float)geo->trace;
    for (int j = 0; j < k && j < geo->k; j++)
        extras[PL_LOCAL_EIGEN + j] = (float)geo->values[j];
    float *opt = extras + sw->x_opt; /* objective, iterations, tangential gradient [n_opt] each, distinct */
    for (int j = 0; j < sw->n_opt && j < geo->n_opt; j++) {
        opt[j] = (float)geo->opt_value[j];
        opt[sw->n_opt + j] = (float)geo->opt_iterations[j];
        opt[2 * sw->n_opt + j] = (float)geo->opt_tangential[j];
    }
    if (sw->n_opt && geo->n_opt)
        opt[3 * sw->n_opt] = (float)geo->opt_distinct;
    int na = k + sw->n_opt; /* with [sae]: |cos| then feature, eigenvectors first */
    for (int j = 0; sw->x_vec && j < k && j < geo->k; j++) /* [output] vectors */
        for (int c = 0; c < C; c++)
            extras[sw->x_vec + (size_t)j * C + c] = (float)geo->vectors[(size_t)j * C + c];
    for (int j = 0; sw->x_vec && j < sw->n_opt && j < geo->n_opt; j++)
        for (int c = 0; c < C; c++)
            extras[sw->x_vec + ((size_t)k + j) * C + c] = (float)geo->opt_dir[(size_t)j * C + c];
    for (int j = 0; sw->x_sae && geo->sae_cos && j < na; j++) {
        extras[sw->x_sae + j] = (float)geo->sae_cos[j];
        extras[sw->x_sae + na + j] = (float)geo->sae_feature[j];
    }
    int nc = sw->n_other + sw->n_pcs; /* per aligned vector: real_other |cos| then PC |cos| */
    for (int j = 0; sw->x_align && geo->other_cos && j < na; j++) {
        for (int o = 0; o < sw->n_other; o++)
            extras[sw->x_align + (size_t)j * nc + o] = (float)geo->other_cos[(size_t)j * sw->n_other + o];
        for (int q = 0; q < sw->n_pcs; q++)
            extras[sw->x_align + (size_t)j * nc + sw->n_other + q] = (float)geo->pc_cos[(size_t)j * sw->n_pcs + q];
    }
    if (!pl_unit_defined(&sw->ex, id))
        return PL_OK;
    pl_experiment ex = sw->ex;
    ex.local = geo;
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
    if (n2 > 0.0 && isfinite(n2)) { /* a zero direction has no Rayleigh quotient, no fraction */
        rc = pl_fisher_rayleigh(&l->op, dir, 1, &q);
        double frac;
        if (rc == PL_OK && geo->k && pl_subspace_fraction(geo->vectors, geo->k, C, dir, 1, &frac) == PL_OK)
            extras[PL_LOCAL_FRACTION] = (float)frac;
    }
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
