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
 *
 * Whole contexts ([perturb] position A:B or all): a site (prompt p, position t = pos + j), the
 * experiment's prompt p * n_pos + j, has the geometry a one-position sweep at t computes, by the same
 * code: its clean run is the prompt's first t + 1 tokens, x_t alone perturbed, the logits read at t
 * (F_t = J_tᵀ (diag p_t − p_t p_tᵀ) J_t, J_t = ∂logits_t/∂x_t), its optima those of KL_t on the sphere of
 * the site's radius. The `fisher` and `optimized` directions of site j are its own, as every kind's. A
 * slot per (site, base sample) keeps each site's geometry while the units of its (prompt, base) come by;
 * the sites are computed one after another on the rank's one set of buffers. What couples the sites is
 * the unit's joint step, whose Rayleigh quotient pl_sweep_local_context takes through one JVP over every
 * perturbed position of the full context.
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

static void pending_clear(pl_sweep_local *l);

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
    if (l->have_ctx)
        pl_run_free(&l->ctx_clean);
    free(l->ctx_buf);
    free(l->x);
    free(l->xd);
    free(l->pcs);
    pending_clear(l);
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
    if (pl_patch_jvp_groups_at(sw->model, &cl, &n, 1, sw->hook, l->site_pos, l->X, v, NULL, dz, -1, NULL, NULL) != PL_OK)
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
    if (pl_patch_vjp_groups_at(sw->model, &cl, &n, 1, sw->hook, l->site_pos, l->X, u, -1, NULL, NULL, NULL, g) != PL_OK)
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
    if (pl_patch_eval_groups_at(sw->model, &cl, &n, 1, sw->hook, l->site_pos, l->X, l->logits, sw->read, NULL) != PL_OK)
        return PL_ERR;
    for (int r = 0; r < n; r++)
        value[r] = pl_kl_grad(l->base_logits, l->logits + (size_t)r * V, V, l->glog + (size_t)r * V);
    if (pl_patch_vjp_groups_at(sw->model, &cl, &n, 1, sw->hook, l->site_pos, l->X, l->glog, -1, NULL, NULL, NULL, grad) != PL_OK)
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
    l->n_slots = sw->S * (sw->n_pos > 1 ? sw->n_pos : 1); /* whole contexts: a slot per (site, sample) */
    l->slot = pl_calloc((size_t)l->n_slots, sizeof(pl_base_local), "local geometry slots");
    l->failed = pl_calloc((size_t)l->n_slots, 1, "local geometry slots");
    if (!l->slot || !l->failed)
        return PL_ERR;
    /* X[n_pos, C] DX[n_pos, C] logits[n_pos, V] dlogits[n_pos, V] p[n_pos, V] */
    if (sw->n_pos > 1 && !(l->ctx_buf = pl_malloc(sizeof(float) * (size_t)sw->n_pos * (2 * sw->C + 3 * sw->V),
                                                 "joint step derivatives")))
        return PL_ERR;
    for (int s = 0; s < l->n_slots; s++)
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

/* Site J of experiment prompt P (whole contexts: P = prompt * n_pos + j; else 0) and its position. */
static int site_index(const pl_sweep *sw, int p)
{
    return sw->n_pos > 1 ? p % sw->n_pos : 0;
}

/* Base ID's point x (xd[C] in double, xd holds 3 C; x[C] as the model is given it) and its own
 * logits[V] at POS of its prompt's (or site's) clean run; non-finite ones fail with l->nonfinite set. */
static int base_point(pl_sweep_local *l, const pl_run *clean, pl_unit_id id, int pos, double *xd, float *x,
                      float *logits)
{
    const pl_sweep *sw = l->sw;
    int C = sw->C, V = sw->V, one = 1;
    id.d = 0; /* the base does not depend on the direction (a synthetic one on the sample) */
    pl_unit_vectors(&sw->ex, id, xd, xd + C);
    for (int c = 0; c < C; c++)
        x[c] = (float)xd[c];
    if (pl_patch_eval_groups_at(sw->model, &clean, &one, 1, sw->hook, pos, x, logits, sw->read, NULL) != PL_OK)
        return PL_ERR;
    if (!all_finite(x, (size_t)C) || !all_finite(logits, (size_t)V)) {
        l->nonfinite = 1;
        return pl_fail("the base or its logits are not finite");
    }
    return PL_OK;
}

/* The prompt's clean run (a site's: its first pos + j + 1 tokens, as a one-position sweep at pos + j
 * runs), the base x as the model sees it and its distribution p. */
static int local_base(pl_sweep_local *l, pl_unit_id id)
{
    const pl_sweep *sw = l->sw;
    int C = sw->C, V = sw->V, j = site_index(sw, id.p), prompt = sw->n_pos > 1 ? id.p / sw->n_pos : id.p;
    l->site_pos = sw->pos + j;
    int T_eval = sw->n_pos > 1 ? l->site_pos + 1 : sw->T_eval;
    if (!l->have_clean || l->clean_p != id.p) {
        if (l->have_clean)
            pl_run_free(&l->clean);
        l->have_clean = 0;
        if (pl_forward_batch(sw->model, sw->tokens + (size_t)prompt * sw->T, 1, T_eval, &l->clean) != PL_OK)
            return PL_ERR;
        l->have_clean = 1;
        l->clean_p = id.p;
    }
    if (base_point(l, &l->clean, id, l->site_pos, l->xd, l->x, l->base_logits) != PL_OK)
        return PL_ERR;
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

/* ------------------------------------------------------------ a batch's optimisations together
 *
 * Before a batch's units are evaluated, the optimisations of every base the batch meets that the rank
 * has not got (not in the cache's slots) run together (pl_sphere_run_many): every combined step
 * advances the running starts of all of them, but each base's rows go through objective calls of
 * their own, at its own prompt's clean run. Under OpenBLAS a row's bits depend on its place in the call
 * and on the call's size (measured: sphere_opt.c's header), so rows of several bases in one call would
 * make a base's optimum depend on its batch, hence on the rank count; calls of its own keep it the one
 * it has alone, bit for bit (tests/sweep/test_optbatch.py). The units then take it from here
 * (local_compute). Checkpoints save every running state, keyed by base, as before. Whole contexts
 * skip this: each site's optima are computed where a unit needs them (local_base). */
struct pl_opt_pending {
    pl_unit_id id;        /* the base's first unit in the batch (d = 0) */
    int sb;               /* its base sample */
    const pl_run *clean;  /* its prompt's clean run (the batch's, freed after the run) */
    float *x, *logits;    /* [C] the base as the model sees it, [V] its own logits */
    pl_sphere_state st;
    double r;
    pl_base_local res;    /* the optima, once done (moved into the slot by local_compute) */
    int skip, ready, failed;
    char msg[480];        /* failed: why (its objective or gradient is not finite) */
};

static void pending_clear(pl_sweep_local *l)
{
    for (int i = 0; i < l->n_pend; i++) {
        pl_opt_pending *e = &l->pend[i];
        free(e->x);
        pl_sphere_free(&e->st);
        pl_base_local_free(&e->res);
    }
    free(l->pend);
    l->pend = NULL, l->n_pend = 0;
}

static pl_opt_pending *pending_find(pl_sweep_local *l, int p, int b, int sb)
{
    for (int i = 0; i < l->n_pend; i++)
        if (l->pend[i].id.p == p && l->pend[i].id.b == b && l->pend[i].sb == sb)
            return &l->pend[i];
    return NULL;
}

/* "prompt P, base KIND[, sample S]: the Fisher metric and optima at the base" into WHERE. */
static void base_place(const pl_sweep *sw, pl_unit_id id, int sb, char *where, size_t size)
{
    char sample[32] = "", prompt[64];
    if (PL_BASE_KINDS[sw->cfg->bases[id.b]].per_sample) /* one base per sample: name it */
        snprintf(sample, sizeof sample, ", sample %d", sb);
    if (sw->n_pos > 1) /* a site: its prompt and position */
        snprintf(prompt, sizeof prompt, "prompt %d, position %d", id.p / sw->n_pos, sw->pos + site_index(sw, id.p));
    else
        snprintf(prompt, sizeof prompt, "prompt %d", id.p);
    snprintf(where, size, "%s, base %s%s: the Fisher metric and optima at the base", prompt,
             PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sample);
}

typedef struct {
    pl_sweep_local *l;
    pl_opt_pending **run;   /* [n] the bases optimised, state i = run[i]->st */
    const pl_run **cleans;  /* [LOCAL_ROWS] a call's groups */
    int *group_rows;        /* [LOCAL_ROWS] */
    double t_saved;         /* when the states were last saved (monotonic seconds) */
} opt_batch;

/* base_objective over rows of several bases: each base's rows one group at its own clean run. */
static int batch_objective(void *ctx, const int *state, const float *delta, int n, double *value, float *grad)
{
    opt_batch *ob = ctx;
    pl_sweep_local *l = ob->l;
    const pl_sweep *sw = l->sw;
    int C = l->C, V = l->V, G = 0;
    for (int r = 0; r < n; r++) {
        const pl_opt_pending *e = ob->run[state[r]];
        for (int c = 0; c < C; c++)
            l->X[(size_t)r * C + c] = e->x[c] + delta[(size_t)r * C + c];
        if (r == 0 || state[r] != state[r - 1]) {
            ob->cleans[G] = e->clean;
            ob->group_rows[G++] = 0;
        }
        ob->group_rows[G - 1]++;
    }
    if (pl_patch_eval_groups_at(sw->model, ob->cleans, ob->group_rows, G, sw->hook, sw->pos, l->X, l->logits, sw->read,
                                NULL) != PL_OK)
        return PL_ERR;
    for (int r = 0; r < n; r++)
        value[r] = pl_kl_grad(ob->run[state[r]]->logits, l->logits + (size_t)r * V, V, l->glog + (size_t)r * V);
    return pl_patch_vjp_groups_at(sw->model, ob->cleans, ob->group_rows, G, sw->hook, sw->pos, l->X, l->glog, -1, NULL,
                                  NULL, NULL, grad);
}

static int batch_resume(void *ctx, int i, pl_sphere_state *s)
{
    opt_batch *ob = ctx;
    const pl_opt_pending *e = ob->run[i];
    opt_saver o = {ob->l->sw, e->id.p, e->id.b, e->sb, 0.0};
    return opt_resume(&o, s);
}

static int batch_finished(void *ctx, int i, const pl_sphere_state *s)
{
    opt_batch *ob = ctx;
    const pl_opt_pending *e = ob->run[i];
    opt_saver o = {ob->l->sw, e->id.p, e->id.b, e->sb, 0.0};
    return opt_save(&o, s);
}

/* opt_between for all of them: every running state saved every checkpoint_every seconds and at a stop. */
static int batch_between(void *ctx, pl_sphere_state *const *s, const unsigned char *active, int n)
{
    opt_batch *ob = ctx;
    pl_opt_store *st = ob->l->sw->opt_store;
    int stop = st->stopping && st->stopping(st->ctx);
    if (!stop && seconds_now() - ob->t_saved < st->every)
        return PL_OK;
    for (int i = 0; i < n; i++)
        if (active[i] && batch_finished(ctx, i, s[i]) != PL_OK)
            return PL_ERR;
    ob->t_saved = seconds_now();
    if (stop) {
        pl_fail("stopped mid-optimisation (its state is saved)");
        return PL_ERR_PREEMPTED;
    }
    return PL_OK;
}

static int batch_failed(void *ctx, int i)
{
    opt_batch *ob = ctx;
    ob->run[i]->failed = 1;
    snprintf(ob->run[i]->msg, sizeof ob->run[i]->msg, "%s", pl_error());
    return PL_OK;
}

/* The bases of units [first, first + n) the rank has no geometry for, once each, into l->pend. */
static int pending_collect(const pl_sweep *sw, pl_sweep_local *l, long first, int n)
{
    l->pend = pl_calloc((size_t)(n > 0 ? n : 1), sizeof *l->pend, "optimisations of a batch");
    if (!l->pend)
        return PL_ERR;
    for (int i = 0; i < n; i++) {
        pl_unit_id id = pl_unit_decode(sw, first + i);
        int sb = pl_base_sample(sw->cfg, id);
        const pl_base_local *slot = &l->slot[sb];
        if ((slot->p == id.p && slot->b == id.b && slot->s == sb) || pending_find(l, id.p, id.b, sb))
            continue;
        pl_opt_pending *e = &l->pend[l->n_pend++];
        id.d = 0;
        e->id = id, e->sb = sb;
        pl_base_local_free(&e->res); /* marks it empty */
    }
    return PL_OK;
}

/* Each pending base's clean run (one forward per prompt, as local_base's), point, logits and state;
 * a base whose point or logits are not finite is skipped (its units fail or are marked as before). */
static int pending_setup(const pl_sweep *sw, pl_sweep_local *l, pl_run *runs, int *prompts, int *n_runs)
{
    int C = sw->C, V = sw->V, rc = PL_OK;
    for (int i = 0; rc == PL_OK && i < l->n_pend; i++) {
        pl_opt_pending *e = &l->pend[i];
        int g = 0;
        while (g < *n_runs && prompts[g] != e->id.p)
            g++;
        if (g == *n_runs) {
            rc = pl_forward_batch(sw->model, sw->tokens + (size_t)e->id.p * sw->T, 1, sw->T_eval, &runs[g]);
            if (rc != PL_OK)
                break;
            prompts[(*n_runs)++] = e->id.p;
        }
        e->clean = &runs[g];
        e->x = pl_malloc(sizeof(float) * ((size_t)C + V), "a base's point and logits");
        if (!e->x)
            return PL_ERR;
        e->logits = e->x + C;
        l->nonfinite = 0;
        rc = base_point(l, e->clean, e->id, sw->pos, l->xd, e->x, e->logits);
        if (rc != PL_OK && l->nonfinite) {
            e->skip = 1, rc = PL_OK, l->nonfinite = 0;
            continue;
        }
        rc = rc == PL_OK ? pl_base_local_opt_setup(&sw->ex, e->id, l->xd, &e->st, &e->r) : rc;
        if (rc != PL_OK) { /* PL_ERR_BAD_RADIUS (bad input) kept: the run exits 2 */
            char where[200];
            base_place(sw, e->id, e->sb, where, sizeof where);
            pl_fail_prefix("%s", where);
            return rc == PL_ERR_BAD_INPUT ? rc : PL_ERR;
        }
    }
    return rc;
}

/* Every pending base's optimisation, together; the optima into each one's res. */
static int pending_run(const pl_sweep *sw, pl_sweep_local *l)
{
    opt_batch ob = {l, pl_malloc(sizeof(pl_opt_pending *) * (size_t)l->n_pend, "optimisations of a batch"),
                    pl_malloc(sizeof(pl_run *) * LOCAL_ROWS, "groups"), pl_malloc(sizeof(int) * LOCAL_ROWS, "groups"),
                    seconds_now()};
    pl_sphere_state **states = pl_malloc(sizeof(pl_sphere_state *) * (size_t)l->n_pend, "optimisations of a batch");
    int rc = ob.run && ob.cleans && ob.group_rows && states ? PL_OK : PL_ERR, n = 0, which = -1;
    for (int i = 0; rc == PL_OK && i < l->n_pend; i++)
        if (!l->pend[i].skip) {
            ob.run[n] = &l->pend[i];
            states[n++] = &l->pend[i].st;
        }
    /* one base's rows per call: the model's rows are not independent of the call's other rows under
     * OpenBLAS (fisher.h, pl_sphere_many_op), and a base's optimum must not depend on its batch */
    pl_sphere_many_op op = {&ob, sw->C, LOCAL_ROWS, batch_objective, 0};
    pl_sphere_many_hooks hooks = {&ob, NULL, NULL, NULL, batch_failed};
    if (sw->opt_store)
        hooks.resume = batch_resume, hooks.between = batch_between, hooks.finished = batch_finished;
    if (rc == PL_OK)
        rc = pl_sphere_run_many(states, n, &op, &hooks, &which);
    if (rc != PL_OK && rc != PL_ERR_PREEMPTED) {
        char where[200] = "the optimisations of a batch's bases";
        if (which >= 0)
            base_place(sw, ob.run[which]->id, ob.run[which]->sb, where, sizeof where);
        pl_fail_prefix("%s", where);
    }
    for (int i = 0; rc == PL_OK && i < n; i++)
        if (!ob.run[i]->failed) {
            rc = pl_base_local_opt_take(&sw->ex, &ob.run[i]->st, ob.run[i]->r, &ob.run[i]->res);
            ob.run[i]->ready = rc == PL_OK;
        }
    free(ob.run), free(ob.cleans), free(ob.group_rows), free(states);
    return rc;
}

int pl_sweep_local_optimize_batch(const pl_sweep *sw, pl_sweep_local *l, long first, int n)
{
    /* whole contexts: each site has a clean run and a position of its own (local_base); its optima are
     * computed there, one site after another, as a unit needs them */
    if (!sw->n_opt || sw->n_pos > 1)
        return PL_OK;
    int rc = local_alloc(l, sw);
    if (rc != PL_OK)
        return rc;
    pending_clear(l);
    rc = pending_collect(sw, l, first, n);
    if (rc != PL_OK || l->n_pend == 0)
        return rc;
    pl_run *runs = pl_calloc((size_t)l->n_pend, sizeof(pl_run), "clean runs");
    int *prompts = pl_malloc(sizeof(int) * (size_t)l->n_pend, "clean runs"), n_runs = 0;
    rc = runs && prompts ? pending_setup(sw, l, runs, prompts, &n_runs) : PL_ERR;
    rc = rc == PL_OK ? pending_run(sw, l) : rc;
    for (int g = 0; g < n_runs; g++)
        pl_run_free(&runs[g]);
    free(runs), free(prompts);
    for (int i = 0; i < l->n_pend; i++) { /* the clean runs are gone; what a unit takes is res */
        l->pend[i].clean = NULL;
        pl_sphere_free(&l->pend[i].st);
    }
    if (rc != PL_OK)
        pending_clear(l);
    return rc;
}

/* The optima of SLOT's base: the batch's, run before its units (pl_sweep_local_optimize_batch), or
 * (a base it did not run: none in today's callers) this base's alone, as before. */
static int local_optima(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, int sb, pl_base_local *slot)
{
    pl_opt_pending *e = pending_find(l, id.p, id.b, sb);
    if (e && e->failed) {
        l->nonfinite = 1;
        return pl_fail("%s", e->msg);
    }
    if (e && e->ready) {
        pl_base_local *r = &e->res;
        slot->opt_dir = r->opt_dir, slot->opt_value = r->opt_value, slot->opt_tangential = r->opt_tangential;
        slot->opt_grad_norm = r->opt_grad_norm, slot->opt_start = r->opt_start, slot->opt_cluster = r->opt_cluster;
        slot->opt_iterations = r->opt_iterations, slot->opt_status = r->opt_status;
        slot->n_opt = r->n_opt, slot->radius = r->radius, slot->opt_distinct = r->opt_distinct;
        r->opt_dir = NULL, r->opt_value = r->opt_tangential = r->opt_grad_norm = NULL;
        r->opt_iterations = r->opt_status = r->opt_start = r->opt_cluster = NULL;
        e->ready = 0;
        return PL_OK;
    }
    opt_saver saver = {sw, id.p, id.b, sb, 0.0};
    pl_sphere_hooks hooks = {&saver, opt_resume, opt_between, opt_finished};
    return pl_base_local_optimize(&l->sop, &sw->ex, id, l->xd, sw->opt_store ? &hooks : NULL, slot);
}

/* SLOT without optima (n_opt 0: its optimum numbers and optimized directions NaN). */
static void opt_drop(pl_base_local *slot)
{
    free(slot->opt_dir), free(slot->opt_value), free(slot->opt_tangential), free(slot->opt_grad_norm);
    free(slot->opt_iterations), free(slot->opt_status), free(slot->opt_start), free(slot->opt_cluster);
    slot->opt_dir = NULL, slot->opt_value = slot->opt_tangential = slot->opt_grad_norm = NULL;
    slot->opt_iterations = slot->opt_status = slot->opt_start = slot->opt_cluster = NULL;
    slot->n_opt = 0, slot->opt_distinct = 0;
}

/* The eigenpairs (and optima) at the operator's base into SLOT. */
static int local_compute(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, pl_base_local *slot)
{
    int sb = pl_base_sample(sw->cfg, id);
    /* Lanczos's stream: keyed by (prompt, base kind, base sample), not by the bases listed */
    int rc = pl_base_local_compute(&l->op, sw->fisher_k, sw->cfg->seed, id.p, id.b,
                                   sw->cfg->bases[id.b] + PL_N_BASE_KINDS * sb, slot);
    slot->s = sb;
    if (rc == PL_OK && sw->n_opt) {
        rc = local_optima(sw, l, id, sb, slot);
        /* nonfinite = mark with the eigenpairs and trace finite: only the optima (and the optimized
         * directions, NaN without them) are marked; the rest of the base does not depend on them */
        if (rc != PL_OK && rc != PL_ERR_PREEMPTED && l->nonfinite && sw->cfg->nonfinite_mark) {
            opt_drop(slot);
            l->nonfinite = 0, rc = PL_OK;
        }
    }
    rc = rc == PL_OK ? pl_base_local_align(&sw->ex, slot) : rc;
    return rc == PL_OK ? pl_base_local_align_dirs(&sw->ex, id, l->xd, sw->n_other, l->pcs, sw->n_pcs, slot) : rc;
}

/* A failure at the base: with a non-finite derivative, PL_ERR_BAD_INPUT naming the place (nonfinite =
 * error) or PL_OK with the slot marked failed (mark); anything else PL_ERR with the place. */
static int local_failed(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, pl_base_local *slot, int sb, int rc)
{
    char where[200];
    base_place(sw, id, sb, where, sizeof where);
    if (rc == PL_ERR_PREEMPTED) { /* the run is stopping: nothing half-done stays tagged as this base's */
        pl_base_local_free(slot);
        return rc;
    }
    if (!l->nonfinite) { /* a bad radius (PL_ERR_BAD_RADIUS) stays bad input */
        pl_fail_prefix("%s", where);
        return rc == PL_ERR_BAD_INPUT ? rc : PL_ERR;
    }
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
    l->failed[site_index(sw, id.p) * sw->S + sb] = 1;
    return PL_OK;
}

const pl_base_local *pl_sweep_local_prepare(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, int *rc)
{
    *rc = local_alloc(l, sw);
    if (*rc != PL_OK)
        return NULL;
    int sb = pl_base_sample(sw->cfg, id), at = site_index(sw, id.p) * sw->S + sb;
    pl_base_local *slot = &l->slot[at];
    int have = slot->p == id.p && slot->b == id.b && slot->s == sb;
    if (have && l->failed[at])
        return NULL;
    if (have && sw->n_pos > 1) /* the sites' units need no operator at the site: only the joint step's */
        return slot;
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
    l->failed[at] = 0;
    return slot;
}

/* The base's own numbers (trace, eigenvalues, optima, alignment, vectors) of GEO into EXTRAS[NX_site], the
 * unit's (Rayleigh quotient, fraction, direction norm) NaN; nothing more without GEO. */
static void base_extras(const pl_sweep *sw, const pl_base_local *geo, float *extras)
{
    int k = sw->fisher_k, C = sw->C;
    for (int j = 0; j < sw->NX_site; j++)
        extras[j] = NAN;
    if (!geo)
        return;
    extras[PL_LOCAL_TRACE] = (float)geo->trace;
    for (int j = 0; j < k && j < geo->k; j++)
        extras[PL_LOCAL_EIGEN + j] = (float)geo->values[j];
    /* objective, iterations, tangential gradient [n_opt] each, distinct, status, gradient norm, start,
     * cluster [n_opt] each */
    float *opt = extras + sw->x_opt;
    for (int j = 0; j < sw->n_opt && j < geo->n_opt; j++) {
        opt[j] = (float)geo->opt_value[j];
        opt[sw->n_opt + j] = (float)geo->opt_iterations[j];
        opt[2 * sw->n_opt + j] = (float)geo->opt_tangential[j];
        opt[3 * sw->n_opt + 1 + j] = (float)geo->opt_status[j];
        opt[4 * sw->n_opt + 1 + j] = (float)geo->opt_grad_norm[j];
        opt[5 * sw->n_opt + 1 + j] = (float)geo->opt_start[j];
        opt[6 * sw->n_opt + 1 + j] = (float)geo->opt_cluster[j];
    }
    if (sw->n_opt && geo->n_opt)
        opt[3 * sw->n_opt] = (float)geo->opt_distinct;
    int na = k + sw->n_opt; /* with [sae]: |cos| then feature, eigenvectors first */
    int nh = geo->k + geo->n_opt; /* what GEO holds: no optima when they were marked (nonfinite = mark) */
    for (int j = 0; sw->x_vec && j < k && j < geo->k; j++) /* [output] vectors */
        for (int c = 0; c < C; c++)
            extras[sw->x_vec + (size_t)j * C + c] = (float)geo->vectors[(size_t)j * C + c];
    for (int j = 0; sw->x_vec && j < sw->n_opt && j < geo->n_opt; j++)
        for (int c = 0; c < C; c++)
            extras[sw->x_vec + ((size_t)k + j) * C + c] = (float)geo->opt_dir[(size_t)j * C + c];
    for (int j = 0; sw->x_sae && geo->sae_cos && j < na && j < nh; j++) {
        extras[sw->x_sae + j] = (float)geo->sae_cos[j];
        extras[sw->x_sae + na + j] = (float)geo->sae_feature[j];
    }
    int nc = sw->n_other + sw->n_pcs; /* per aligned vector: real_other |cos| then PC |cos| */
    for (int j = 0; sw->x_align && geo->other_cos && j < na && j < nh; j++) {
        for (int o = 0; o < sw->n_other; o++)
            extras[sw->x_align + (size_t)j * nc + o] = (float)geo->other_cos[(size_t)j * sw->n_other + o];
        for (int q = 0; q < sw->n_pcs; q++)
            extras[sw->x_align + (size_t)j * nc + sw->n_other + q] = (float)geo->pc_cos[(size_t)j * sw->n_pcs + q];
    }
}

int pl_sweep_local_unit(const pl_sweep *sw, pl_sweep_local *l, const pl_base_local *geo, pl_unit_id id,
                        float *extras)
{
    int C = sw->C;
    base_extras(sw, geo, extras);
    if (!geo || !pl_unit_defined(&sw->ex, id))
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

/* ------------------------------------------------------------ whole contexts: the joint step */

/* The joint operator's JVP: the one row pl_sweep_local_context computed (DX), its dlogits returned as
 * they are; fisher.c's Rayleigh quotient takes it once per readout weighting. */
typedef struct {
    const float *dx, *dz;
    int C, PV;
} joint_jvp_ctx;

static int joint_jvp(void *ctx, const float *v, int n, float *dz)
{
    const joint_jvp_ctx *j = ctx;
    if (n != 1 || memcmp(v, j->dx, sizeof(float) * (size_t)j->C))
        return pl_fail("whole contexts: the joint step's JVP was asked for another row"); /* not reached */
    memcpy(dz, j->dz, sizeof(float) * (size_t)j->PV);
    return PL_OK;
}

/* The prompt's clean run of every perturbed position (its first T_eval tokens), kept while its units come. */
static int context_clean(const pl_sweep *sw, pl_sweep_local *l, int p)
{
    if (l->have_ctx && l->ctx_p == p)
        return PL_OK;
    if (l->have_ctx)
        pl_run_free(&l->ctx_clean);
    l->have_ctx = 0;
    if (pl_forward_batch(sw->model, sw->tokens + (size_t)p * sw->T, 1, sw->T_eval, &l->ctx_clean) != PL_OK)
        return PL_ERR;
    l->have_ctx = 1, l->ctx_p = p;
    return PL_OK;
}

/* Softmax of the N rows LG[N, V] in double (as metrics.c) into P[N, V]. */
static void softmax_rows(const float *lg, int n, int V, float *p)
{
    for (int t = 0; t < n; t++) {
        const float *z = lg + (size_t)t * V;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++)
            mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++)
            sum += exp((double)z[v] - mx);
        for (int v = 0; v < V; v++)
            p[(size_t)t * V + v] = (float)(exp((double)z[v] - mx) / sum);
    }
}

/* The joint kl_rayleigh of the step DD[n_pos, C] at the sites' bases X[n_pos, C] (l->ctx_buf) into the
 * sites' blocks of EXTRAS: one JVP over every perturbed position of the full context (F_read's J_t d for
 * every readout position t), then fisher.c's quadratic form with the readout's weights. */
static int joint_rayleigh(const pl_sweep *sw, pl_sweep_local *l, pl_unit_id id, const double *dd, float *extras)
{
    int N = sw->n_pos, C = sw->C, V = sw->V;
    float *X = l->ctx_buf, *DX = X + (size_t)N * C, *lg = DX + (size_t)N * C, *dz = lg + (size_t)N * V;
    float *p = dz + (size_t)N * V;
    int *positions = pl_malloc(sizeof(int) * (size_t)N, "perturbed positions");
    double *w = pl_malloc(sizeof(double) * (size_t)N, "readout weights");
    int rc = positions && w ? context_clean(sw, l, id.p) : PL_ERR, one = 1;
    for (int j = 0; j < N && positions; j++)
        positions[j] = sw->pos + j;
    for (size_t i = 0; i < (size_t)N * C; i++)
        DX[i] = (float)dd[i]; /* the row fisher.c casts d to: the same bits */
    const pl_run *cl = &l->ctx_clean;
    if (rc == PL_OK)
        rc = pl_patch_jvp_positions_at(sw->model, &cl, &one, 1, sw->hook, positions, N, X, DX, lg, dz, -1, NULL, NULL);
    if (rc == PL_OK && (!all_finite(lg, (size_t)N * V) || !all_finite(dz, (size_t)N * V))) {
        l->nonfinite = 1;
        rc = pl_fail("the logits at the bases or their Jacobian-vector product along the joint step are not finite");
    }
    if (rc == PL_OK)
        softmax_rows(lg, N, V, p);
    joint_jvp_ctx jc = {DX, dz, N * C, N * V};
    pl_local_op op = {&jc, N * C, V, N, 1, p, w, joint_jvp, NULL};
    int each = sw->NPC > 1;
    for (int t = 0; rc == PL_OK && t < (each ? N : 1); t++) { /* each: position t alone; mean: 1/N each */
        for (int j = 0; j < N; j++)
            w[j] = each ? (j == t) : 1.0 / N;
        double q;
        if ((rc = pl_fisher_rayleigh(&op, dd, 1, &q)) == PL_OK)
            extras[(size_t)t * sw->NX_site + PL_LOCAL_RAYLEIGH] = (float)q;
    }
    free(positions), free(w);
    return rc;
}

/* Site J's step at alpha = 1 into STEP[C] and its base into X[C] (GEO its geometry, the fisher and
 * optimized kinds' directions); its direction norm and fisher_fraction of the step into its block B. */
static int site_step(const pl_sweep *sw, const pl_base_local *geo, pl_unit_id site, double *buf, double *step,
                     float *x, float *b)
{
    int C = sw->C;
    pl_experiment ex = sw->ex;
    ex.local = geo;
    double *base = buf, *dir = buf + C; /* buf [3 C] */
    pl_unit_vectors(&ex, site, base, dir);
    double n2 = 0.0;
    for (int c = 0; c < C; c++)
        n2 += dir[c] * dir[c];
    b[PL_LOCAL_DIRECTION_NORM] = (float)sqrt(n2);
    if (pl_unit_step_vector(&ex, site, base, step) != PL_OK)
        return PL_ERR;
    for (int c = 0; c < C; c++)
        x[c] = (float)base[c];
    return PL_OK;
}

/* The fraction of STEP[C]'s squared norm in GEO's top-k subspace into block B (NaN: none, a zero step). */
static void site_fraction(const pl_base_local *geo, const double *step, int C, float *b)
{
    double n2 = 0.0, frac;
    for (int c = 0; c < C; c++)
        n2 += step[c] * step[c];
    if (geo && geo->k && n2 > 0.0 && isfinite(n2) && pl_subspace_fraction(geo->vectors, geo->k, C, step, 1, &frac) == PL_OK)
        b[PL_LOCAL_FRACTION] = (float)frac;
}

int pl_sweep_local_context(const pl_sweep *sw, pl_sweep_local *l, const pl_base_local *const *geos, pl_unit_id id,
                           float *extras)
{
    int N = sw->n_pos, C = sw->C, defined = 1, rc = PL_OK;
    double *dd = pl_malloc(sizeof(double) * ((size_t)N * C + 3 * (size_t)C), "joint step"), *buf = dd + (size_t)N * C;
    if (!dd)
        return PL_ERR;
    for (int j = 0; j < N && rc == PL_OK; j++) {
        pl_unit_id site = pl_unit_at_position(sw, id, j);
        float *b = extras + (size_t)j * sw->NX_site;
        base_extras(sw, geos[j], b);
        defined &= pl_unit_defined(&sw->ex, site) != 0;
        if (!pl_unit_defined(&sw->ex, site))
            continue;
        double *step = dd + (size_t)j * C;
        rc = site_step(sw, geos[j], site, buf, step, l->ctx_buf + (size_t)j * C, b);
        if (sw->cfg->per_position == PL_PER_POSITION_SHARED && j > 0) /* every site moves by the first's step */
            memcpy(step, dd, sizeof(double) * C);
        site_fraction(geos[j], step, C, b);
    }
    double n2 = 0.0;
    for (size_t i = 0; i < (size_t)N * C; i++)
        n2 += dd[i] * dd[i];
    if (rc == PL_OK && defined && n2 > 0.0 && isfinite(n2)) { /* a zero or undefined step: no quotient */
        l->nonfinite = 0;
        rc = joint_rayleigh(sw, l, id, dd, extras);
    }
    free(dd);
    if (rc == PL_OK || (l->nonfinite && sw->cfg->nonfinite_mark))
        return PL_OK;
    pl_fail_prefix("prompt %d, base %s, direction %s, sample %d: the joint kl_rayleigh of positions %d..%d", id.p,
                   PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sw->cfg->dirs[id.d].label, id.s, sw->pos,
                   sw->pos + N - 1);
    return l->nonfinite ? PL_ERR_BAD_INPUT : PL_ERR;
}
