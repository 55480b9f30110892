/* Local optima of sensitivity (issue 17, item 3): maximise f(δ) (KL(clean ‖ perturbed at x + δ)) over
 * the sphere ‖δ‖ = r by Riemannian gradient ascent, every running start a row of one objective call.
 * A step is propose (the running rows' trial points), the objective, accept (pl_sphere_propose /
 * pl_sphere_accept), so that pl_sphere_run_many can advance several optimisations (the sweep: every base
 * of a batch) in combined steps.
 *
 * Why the sweep still gives each base calls of its own (mix_states 0): rows of several bases in one call
 * are right only when a row's result does not depend on the call's other rows, and on OpenBLAS 0.3.21
 * (DYNAMIC_ARCH, Haswell kernels on this AMD EPYC, one thread) it does: the same row x in a call
 * x·Wᵀ of M rows gives bits equal to its bits in a 64-row call only at in-tile positions 0-5 of each
 * full 12-row tile; M ≤ 11 (tail kernels) and positions 6-11 give other bits (a probe over K 32..768,
 * N 32..2304, and the 1-row bits differ from every M ≥ 4). With mixed calls the sweep's optima changed
 * by ~1e-7 relative in f and by up to 5 iterations between batch compositions (sweep_optbatch fails),
 * i.e. with the rank count. Measured on a 4-layer, 128-wide synthetic GPT-2 (6 prompts, real and
 * synthetic bases, 8 starts, task-clock of the whole sweep): orthogonal 1.0 row per call, 7.4 s, where
 * mixed calls would give 10.6 rows per call, 6.6 s; independent starts 5.0 rows per call, 7.9 s,
 * mixed 30 rows per call, 5.1 s. A BLAS whose rows are independent of their call (or padding each
 * base's rows to whole tiles, which is kernel-specific) would let mix_states be 1.
 *
 * Step: the tangential gradient g = ∇f − (∇f·δ/r²)δ (first projected off the excluded directions, e.g.
 * the all-ones direction in a centred residual basis, and off the earlier optima under `orthogonal`), the trial δ' = r·(δ + t g)/‖δ + t g‖ (the metric-projection retraction), with t capped
 * so that the trial turns δ by at most about one radian (t‖g‖ ≤ r). Armijo: the trial is accepted when
 * f(δ') ≥ f(δ) + 1e-4·t‖g‖², and t doubles for the next step; otherwise t halves and the row tries
 * again in the next call (its point, value and gradient kept, so a rejected trial costs one row).
 *
 * Convergence, per row, checked at every accepted point (tol = opts.tol):
 *   GRADIENT  ‖g‖ ≤ tol·‖∇f‖: the gradient is radial to within an angle of about tol;
 *   FLAT      an accepted step taken without backtracking changed f by ≤ tol²·|f| (near a maximum f
 *             departs from its peak quadratically in the angle, so tol² in f matches tol in angle;
 *             a step shortened by backtracking is no evidence of flatness and never counts);
 *   CAP       max_iterations accepted steps;
 *   STALL     backtracking shrank the turn t‖g‖/r below 1e-8, under what float32 points resolve.
 *
 * Why tol defaults to 1e-3: the points cross the interface as float32 rows, so each evaluated δ is off
 * the sphere by ~6e-8·r radially, which moves f by ~6e-8·r‖∇f‖; an Armijo gain r‖g‖²/‖∇f‖ below that
 * cannot be seen, so ‖g‖/‖∇f‖ cannot be driven much below ~3e-4 (the toy of tests/experiment stalls
 * there at tol 1e-5), and the real model's own float32 rounding adds to it. A STALL is reported as
 * such, with its tangential gradient, never as converged.
 *
 * Mack & Turner (2024, "Mechanistically eliciting latent behaviors") learn their steering vectors at a
 * fixed norm with orthogonality to the earlier ones by projected gradient steps; here each later
 * optimum of a base is a fresh constrained optimisation (its start, gradient and every trial projected
 * off the span of the earlier optima), run one after another.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "plateau/error.h"
#include "fisher.h"

#define ARMIJO_C 1e-4
#define STALL_TURN 1e-8

const char *pl_opt_status_name(int status)
{
    static const char *names[] = {"running", "gradient", "flat", "cap", "stall"};
    return status >= 0 && status <= PL_OPT_STALL ? names[status] : "?";
}

void pl_sphere_free(pl_sphere_state *s)
{
    free(s->delta), free(s->value), free(s->grad), free(s->step), free(s->last_change);
    free(s->iterations), free(s->evaluations), free(s->status), free(s->evaluated), free(s->backtracked);
    free(s->exclude);
    memset(s, 0, sizeof *s);
}

static double orthonormalise(const double *B, int a, int C, double *b, double tiny);

int pl_sphere_init(pl_sphere_state *s, const double *start, int n, int C, const pl_sphere_opts *opts)
{
    memset(s, 0, sizeof *s);
    if (n < 1 || C < 1 || !(opts->radius > 0) || !isfinite(opts->radius))
        return pl_fail("optimise: need starts >= 1 and a finite radius > 0 (got %d starts, radius %g)", n,
                       opts->radius);
    if (opts->n_exclude < 0 || opts->n_exclude >= C || (opts->n_exclude > 0 && !opts->exclude))
        return pl_fail("optimise: %d excluded directions in dimension %d", opts->n_exclude, C);
    if (opts->orthogonal && n > C - opts->n_exclude)
        return pl_fail("optimise: %d mutually orthogonal optima asked in dimension %d", n, C - opts->n_exclude);
    s->n = n, s->C = C, s->radius = opts->radius;
    s->tol = opts->tol > 0 ? opts->tol : 1e-3;
    s->max_iterations = opts->max_iterations > 0 ? opts->max_iterations : 200;
    s->orthogonal = opts->orthogonal;
    s->delta = pl_malloc(sizeof(double) * (size_t)n * C, "optimiser points");
    s->grad = pl_malloc(sizeof(double) * (size_t)n * C, "optimiser gradients");
    s->value = pl_calloc((size_t)n, sizeof(double), "optimiser values");
    s->step = pl_calloc((size_t)n, sizeof(double), "optimiser steps");
    s->last_change = pl_calloc((size_t)n, sizeof(double), "optimiser changes");
    s->iterations = pl_calloc((size_t)n, sizeof(int), "optimiser iterations");
    s->evaluations = pl_calloc((size_t)n, sizeof(int), "optimiser evaluations");
    s->status = pl_calloc((size_t)n, sizeof(int), "optimiser status");
    s->evaluated = pl_calloc((size_t)n, sizeof(int), "optimiser flags");
    s->backtracked = pl_calloc((size_t)n, sizeof(int), "optimiser flags");
    s->exclude = pl_malloc(sizeof(double) * ((size_t)opts->n_exclude + 1) * C, "optimiser exclusions");
    if (!s->delta || !s->grad || !s->value || !s->step || !s->last_change || !s->iterations || !s->evaluations ||
        !s->status || !s->evaluated || !s->backtracked || !s->exclude) {
        pl_sphere_free(s);
        return PL_ERR;
    }
    for (int a = 0; a < opts->n_exclude; a++) {
        double *b = s->exclude + (size_t)a * C;
        memcpy(b, opts->exclude + (size_t)a * C, sizeof(double) * C);
        double n0 = cblas_dnrm2(C, b, 1);
        if (!(orthonormalise(s->exclude, a, C, b, 0.0) > 1e-8 * n0)) {
            pl_sphere_free(s);
            return pl_fail("optimise: excluded direction %d is zero or in the span of the ones before it", a);
        }
        s->n_exclude = a + 1;
    }
    for (int i = 0; i < n; i++) {
        double nrm = cblas_dnrm2(C, start + (size_t)i * C, 1);
        if (!(nrm > 0) || !isfinite(nrm)) {
            pl_sphere_free(s);
            return pl_fail("optimise: start %d has norm %g (need a finite nonzero direction)", i, nrm);
        }
        for (int j = 0; j < C; j++)
            s->delta[(size_t)i * C + j] = start[(size_t)i * C + j] * (opts->radius / nrm);
        s->last_change[i] = -1.0;
    }
    return PL_OK;
}

/* Gram-Schmidt (twice) of the row b[C] against the a orthonormal rows B[a, C]; returns its norm after,
 * and normalises it when that is above tiny. */
static double orthonormalise(const double *B, int a, int C, double *b, double tiny)
{
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < a; c++)
            cblas_daxpy(C, -cblas_ddot(C, B + (size_t)c * C, 1, b, 1), B + (size_t)c * C, 1, b, 1);
    double nrm = cblas_dnrm2(C, b, 1);
    if (nrm > tiny)
        cblas_dscal(C, 1.0 / nrm, b, 1);
    return nrm;
}

/* The constraint basis of row j, B[m, C] orthonormal: the excluded directions, then (under
 * orthogonal) the optima of rows 0..j-1, which are orthogonal to them and to each other by
 * construction up to rounding. Returns m. */
static int constraint_basis(const pl_sphere_state *s, int j, double *B)
{
    int C = s->C, m = s->n_exclude, earlier = s->orthogonal ? j : 0;
    memcpy(B, s->exclude, sizeof(double) * (size_t)m * C);
    for (int a = 0; a < earlier; a++, m++) {
        memcpy(B + (size_t)m * C, s->delta + (size_t)a * C, sizeof(double) * C);
        orthonormalise(B, m, C, B + (size_t)m * C, 0.0);
    }
    return m;
}

static void project_off(const double *B, int m, int C, double *x)
{
    for (int a = 0; a < m; a++)
        cblas_daxpy(C, -cblas_ddot(C, B + (size_t)a * C, 1, x, 1), B + (size_t)a * C, 1, x, 1);
}

/* g[C] = the tangential gradient of row i (B[m, C] the constraint basis). Returns ‖g‖. */
static double tangential(const pl_sphere_state *s, int i, const double *B, int m, double *g)
{
    int C = s->C;
    const double *d = s->delta + (size_t)i * C;
    memcpy(g, s->grad + (size_t)i * C, sizeof(double) * C);
    project_off(B, m, C, g);
    double dd = cblas_ddot(C, d, 1, d, 1);
    cblas_daxpy(C, -cblas_ddot(C, g, 1, d, 1) / dd, d, 1, g, 1);
    return cblas_dnrm2(C, g, 1);
}

double pl_sphere_tangential_norm(const pl_sphere_state *s, int i)
{
    double *B = pl_malloc(sizeof(double) * ((size_t)s->n_exclude + s->n + 1) * s->C, "optimiser basis");
    double *g = pl_malloc(sizeof(double) * s->C, "optimiser gradient");
    double t = NAN;
    if (B && g)
        t = tangential(s, i, B, constraint_basis(s, i, B), g);
    free(B), free(g);
    return t;
}

double pl_sphere_grad_norm(const pl_sphere_state *s, int i)
{
    double *B = pl_malloc(sizeof(double) * ((size_t)s->n_exclude + s->n + 1) * s->C, "optimiser basis");
    double *g = pl_malloc(sizeof(double) * s->C, "optimiser gradient");
    double t = NAN;
    if (B && g) { /* as check_converged's `full` */
        int m = constraint_basis(s, i, B);
        memcpy(g, s->grad + (size_t)i * s->C, sizeof(double) * s->C);
        project_off(B, m, s->C, g);
        t = cblas_dnrm2(s->C, g, 1);
    }
    free(B), free(g);
    return t;
}

/* The point row i is evaluated at next: its start (projected off B under orthogonal and scaled to r)
 * before its first evaluation, else the Armijo trial. x[C] gets it; *t and *gn the step and ‖g‖ used. */
static int trial_point(pl_sphere_state *s, int i, const double *B, int m, double *x, double *t, double *gn)
{
    int C = s->C;
    double *d = s->delta + (size_t)i * C;
    *t = 0.0, *gn = 0.0;
    if (!s->evaluated[i]) {
        memcpy(x, d, sizeof(double) * C);
        project_off(B, m, C, x);
        double nrm = cblas_dnrm2(C, x, 1);
        if (!(nrm > 1e-8 * s->radius))
            return pl_fail("optimise: start %d lies in the span of the %d excluded directions and earlier optima",
                           i, m);
        cblas_dscal(C, s->radius / nrm, x, 1);
        return PL_OK;
    }
    *gn = tangential(s, i, B, m, x); /* x = g */
    *t = s->step[i] * *gn > s->radius ? s->radius / *gn : s->step[i];
    cblas_dscal(C, *t, x, 1);
    cblas_daxpy(C, 1.0, d, 1, x, 1);
    project_off(B, m, C, x); /* rounding drift only: δ and g are in the complement already */
    cblas_dscal(C, s->radius / cblas_dnrm2(C, x, 1), x, 1);
    return PL_OK;
}

/* Take f and ∇f at point x (what was evaluated) into row i as its current point. */
static void take_point(pl_sphere_state *s, int i, const float *x, double f, const float *g)
{
    for (int j = 0; j < s->C; j++) {
        s->delta[(size_t)i * s->C + j] = x[j];
        s->grad[(size_t)i * s->C + j] = g[j];
    }
    s->value[i] = f;
}

/* After row i took a new point: the convergence rules (file comment). */
static void check_converged(pl_sphere_state *s, int i, const double *B, int m, double *g, int flat)
{
    double gn = tangential(s, i, B, m, g);
    memcpy(g, s->grad + (size_t)i * s->C, sizeof(double) * s->C);
    project_off(B, m, s->C, g);
    double full = cblas_dnrm2(s->C, g, 1);
    if (gn <= s->tol * full)
        s->status[i] = PL_OPT_GRADIENT;
    else if (flat)
        s->status[i] = PL_OPT_FLAT;
    else if (s->iterations[i] >= s->max_iterations)
        s->status[i] = PL_OPT_CAP;
    else if (s->step[i] <= 0) /* first point: a tenth of a radian along g */
        s->step[i] = 0.1 * s->radius / gn;
}

/* Row i's trial at x (float, as evaluated) has value f and gradient g: accept or backtrack. */
static void update_row(pl_sphere_state *s, int i, const double *B, int m, const float *x, double f, const float *g,
                       double t, double gn, double *work)
{
    s->evaluations[i]++;
    if (!s->evaluated[i]) {
        take_point(s, i, x, f, g);
        s->evaluated[i] = 1;
        check_converged(s, i, B, m, work, 0);
        return;
    }
    if (f >= s->value[i] + ARMIJO_C * t * gn * gn) {
        double change = fabs(f - s->value[i]);
        int flat = !s->backtracked[i] && change <= s->tol * s->tol * fabs(f);
        take_point(s, i, x, f, g);
        s->last_change[i] = change;
        s->iterations[i]++;
        s->backtracked[i] = 0;
        s->step[i] = 2.0 * t;
        check_converged(s, i, B, m, work, flat);
        return;
    }
    s->backtracked[i] = 1;
    s->step[i] = 0.5 * t;
    if (s->step[i] * gn < STALL_TURN * s->radius)
        s->status[i] = PL_OPT_STALL;
}

/* The rows that run in the next call: all running rows, or row `current` under orthogonal. */
static int running_rows(pl_sphere_state *s, int *rows)
{
    int k = 0;
    if (s->orthogonal) {
        while (s->current < s->n && s->status[s->current] != PL_OPT_RUNNING)
            s->current++;
        if (s->current < s->n)
            rows[k++] = s->current;
        return k;
    }
    for (int i = 0; i < s->n; i++)
        if (s->status[i] == PL_OPT_RUNNING)
            rows[k++] = i;
    return k;
}

void pl_sphere_trial_free(pl_sphere_trial *tr)
{
    free(tr->rows), free(tr->B), free(tr->t), free(tr->x), free(tr->work);
    memset(tr, 0, sizeof *tr);
}

int pl_sphere_propose(pl_sphere_state *s, pl_sphere_trial *tr)
{
    int n = s->n, C = s->C, rc = PL_OK;
    memset(tr, 0, sizeof *tr);
    tr->rows = pl_malloc(sizeof(int) * (size_t)n, "optimiser rows");
    tr->B = pl_malloc(sizeof(double) * ((size_t)s->n_exclude + n) * C, "optimiser basis");
    tr->t = pl_malloc(sizeof(double) * (size_t)n * 2, "optimiser steps");
    tr->x = pl_malloc(sizeof(float) * (size_t)n * C, "optimiser rows");
    tr->work = pl_malloc(sizeof(double) * (size_t)C, "optimiser work");
    if (!tr->rows || !tr->B || !tr->t || !tr->x || !tr->work) {
        pl_sphere_trial_free(tr);
        return PL_ERR;
    }
    tr->gn = tr->t + n;
    tr->k = running_rows(s, tr->rows);
    tr->m = constraint_basis(s, s->orthogonal && tr->k ? tr->rows[0] : 0, tr->B);
    for (int a = 0; a < tr->k && rc == PL_OK; a++) {
        rc = trial_point(s, tr->rows[a], tr->B, tr->m, tr->work, &tr->t[a], &tr->gn[a]);
        for (int j = 0; j < C; j++)
            tr->x[(size_t)a * C + j] = (float)tr->work[j];
    }
    if (rc != PL_OK)
        pl_sphere_trial_free(tr);
    return rc;
}

int pl_sphere_accept(pl_sphere_state *s, pl_sphere_trial *tr, const double *value, const float *grad, int *done)
{
    int C = s->C;
    for (int a = 0; a < tr->k; a++) { /* every number finite before any row moves */
        int bad = !isfinite(value[a]);
        for (int j = 0; j < C && !bad; j++)
            bad = !isfinite(grad[(size_t)a * C + j]);
        if (bad)
            return pl_fail("optimise: the objective or its gradient is not finite at start %d, iteration %d",
                           tr->rows[a], s->iterations[tr->rows[a]]);
    }
    for (int a = 0; a < tr->k; a++)
        update_row(s, tr->rows[a], tr->B, tr->m, tr->x + (size_t)a * C, value[a], grad + (size_t)a * C, tr->t[a],
                   tr->gn[a], tr->work);
    *done = running_rows(s, tr->rows) == 0;
    return PL_OK;
}

/* value[k], grad[k, C] of the k rows x[k, C] (of the states state[k]; NULL: one state), in calls of at
 * most max_rows rows. */
static int evaluate(const pl_sphere_op *op, const pl_sphere_many_op *many, const int *state, const float *x, int k,
                    double *value, float *grad)
{
    int C = op ? op->C : many->C, max_rows = op ? op->max_rows : many->max_rows;
    for (int a = 0, nr; a < k; a += nr) {
        nr = k - a < max_rows ? k - a : max_rows;
        if (state && !many->mix_states) /* each state's rows in calls of their own */
            for (int q = 1; q < nr; q++)
                if (state[a + q] != state[a]) {
                    nr = q;
                    break;
                }
        int rc = op ? op->objective(op->ctx, x + (size_t)a * C, nr, value + a, grad + (size_t)a * C)
                    : many->objective(many->ctx, state + a, x + (size_t)a * C, nr, value + a, grad + (size_t)a * C);
        if (rc != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

int pl_sphere_step(pl_sphere_state *s, const pl_sphere_op *op, int *done)
{
    if (op->C != s->C || op->max_rows < 1)
        return pl_fail("optimise: the objective takes rows of %d (max %d per call), the state has %d", op->C,
                       op->max_rows, s->C);
    pl_sphere_trial tr;
    int rc = pl_sphere_propose(s, &tr);
    if (rc != PL_OK)
        return rc;
    double *f = pl_malloc(sizeof(double) * (size_t)(tr.k ? tr.k : 1), "optimiser values");
    float *g = pl_malloc(sizeof(float) * (size_t)(tr.k ? tr.k : 1) * s->C, "optimiser gradients");
    rc = f && g ? PL_OK : PL_ERR;
    if (rc == PL_OK && tr.k > 0)
        rc = evaluate(op, NULL, NULL, tr.x, tr.k, f, g);
    if (rc == PL_OK)
        rc = pl_sphere_accept(s, &tr, f, g, done);
    free(f), free(g);
    pl_sphere_trial_free(&tr);
    return rc;
}

int pl_sphere_run(pl_sphere_state *s, const pl_sphere_op *op)
{
    return pl_sphere_run_hooked(s, op, NULL);
}

static int sphere_done(const pl_sphere_state *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->status[i] == PL_OPT_RUNNING)
            return 0;
    return 1;
}

int pl_sphere_run_hooked(pl_sphere_state *s, const pl_sphere_op *op, const pl_sphere_hooks *hooks)
{
    int rc, done = 0;
    if (hooks && hooks->resume && (rc = hooks->resume(hooks->ctx, s)) != PL_OK)
        return rc;
    done = sphere_done(s); /* a loaded state may be finished already: no row running */
    while (!done) {
        if (hooks && hooks->between && (rc = hooks->between(hooks->ctx, s)) != PL_OK)
            return rc; /* the caller's code (the sweep's: preempted) passes up unchanged */
        if (pl_sphere_step(s, op, &done) != PL_OK)
            return PL_ERR;
    }
    return hooks && hooks->finished ? hooks->finished(hooks->ctx, s) : PL_OK;
}

/* ------------------------------------------------------------ several optimisations together
 *
 * Each combined step proposes the trial rows of every running state, evaluates their concatenation
 * (state by state, in calls of at most max_rows rows) and hands each state its own rows back. A state
 * sees exactly what pl_sphere_step would have given it (its rows' values depend on those rows alone),
 * so its optimum does not depend on which other states ran beside it. */

/* One combined step over the active states: proposals, one evaluation, acceptances. */
static int many_step(pl_sphere_state **s, int n, unsigned char *active, const pl_sphere_many_op *op,
                     const pl_sphere_many_hooks *hooks, pl_sphere_trial *tr, int *which)
{
    int K = 0, rc = PL_OK, C = op->C;
    for (int i = 0; i < n; i++)
        if (active[i]) {
            if ((rc = pl_sphere_propose(s[i], &tr[i])) != PL_OK) {
                *which = i;
                return rc;
            }
            K += tr[i].k;
        }
    int *state = pl_malloc(sizeof(int) * (size_t)(K ? K : 1), "optimiser rows");
    float *x = pl_malloc(sizeof(float) * (size_t)(K ? K : 1) * C, "optimiser rows");
    float *g = pl_malloc(sizeof(float) * (size_t)(K ? K : 1) * C, "optimiser gradients");
    double *f = pl_malloc(sizeof(double) * (size_t)(K ? K : 1), "optimiser values");
    rc = state && x && g && f ? PL_OK : PL_ERR;
    for (int i = 0, at = 0; rc == PL_OK && i < n; i++)
        for (int a = 0; active[i] && a < tr[i].k; a++, at++) {
            state[at] = i;
            memcpy(x + (size_t)at * C, tr[i].x + (size_t)a * C, sizeof(float) * C);
        }
    if (rc == PL_OK && K > 0)
        rc = evaluate(NULL, op, state, x, K, f, g);
    for (int i = 0, at = 0; rc == PL_OK && i < n; i++) {
        if (!active[i])
            continue;
        int done = 0;
        if (pl_sphere_accept(s[i], &tr[i], f + at, g + (size_t)at * C, &done) != PL_OK) {
            /* non-finite: the hook decides (the sweep's nonfinite = mark lets the others go on) */
            active[i] = 0;
            rc = hooks && hooks->failed ? hooks->failed(hooks->ctx, i) : PL_ERR;
            *which = i;
        } else if (done) {
            active[i] = 0;
            rc = hooks && hooks->finished ? hooks->finished(hooks->ctx, i, s[i]) : PL_OK;
            *which = i;
        }
        at += tr[i].k;
    }
    free(state), free(x), free(g), free(f);
    return rc;
}

int pl_sphere_run_many(pl_sphere_state **s, int n, const pl_sphere_many_op *op, const pl_sphere_many_hooks *hooks,
                       int *which)
{
    int rc = PL_OK, left = 0;
    *which = -1;
    for (int i = 0; i < n; i++)
        if (s[i]->C != op->C || op->max_rows < 1)
            return pl_fail("optimise: the objective takes rows of %d (max %d per call), a state has %d", op->C,
                           op->max_rows, s[i]->C);
    unsigned char *active = pl_calloc((size_t)(n ? n : 1), 1, "optimiser states");
    pl_sphere_trial *tr = pl_calloc((size_t)(n ? n : 1), sizeof *tr, "optimiser trials");
    rc = active && tr ? PL_OK : PL_ERR;
    for (int i = 0; rc == PL_OK && i < n; i++) {
        if (hooks && hooks->resume && (rc = hooks->resume(hooks->ctx, i, s[i])) != PL_OK) {
            *which = i;
            break;
        }
        active[i] = !sphere_done(s[i]);
        left += active[i];
        if (!active[i] && hooks && hooks->finished && (rc = hooks->finished(hooks->ctx, i, s[i])) != PL_OK)
            *which = i;
    }
    while (rc == PL_OK && left > 0) {
        if (hooks && hooks->between && (rc = hooks->between(hooks->ctx, s, active, n)) != PL_OK)
            break; /* the caller's code (the sweep's: preempted) passes up unchanged */
        *which = -1;
        rc = many_step(s, n, active, op, hooks, tr, which);
        for (int i = 0; i < n; i++)
            pl_sphere_trial_free(&tr[i]);
        left = 0;
        for (int i = 0; i < n; i++)
            left += active[i];
    }
    free(active), free(tr);
    return rc;
}

/* Union-find root with path halving. */
static int root(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

int pl_cluster_by_cos(const double *X, int m, int C, double threshold, int *label)
{
    int *parent = pl_malloc(sizeof(int) * (size_t)(m > 0 ? m : 1), "cluster labels");
    double *nrm = pl_malloc(sizeof(double) * (size_t)(m > 0 ? m : 1), "cluster norms");
    int rc = (parent && nrm) ? PL_OK : PL_ERR, count = 0;
    for (int i = 0; rc == PL_OK && i < m; i++) {
        parent[i] = i;
        nrm[i] = cblas_dnrm2(C, X + (size_t)i * C, 1);
        if (!(nrm[i] > 0))
            rc = pl_fail("cluster: optimum %d has norm zero", i);
    }
    for (int i = 0; rc == PL_OK && i < m; i++)
        for (int j = i + 1; j < m; j++) {
            double c = fabs(cblas_ddot(C, X + (size_t)i * C, 1, X + (size_t)j * C, 1)) / (nrm[i] * nrm[j]);
            int ri = root(parent, i), rj = root(parent, j);
            if (c >= threshold && ri != rj) /* the lower index stays the root: labels are lowest members */
                parent[ri > rj ? ri : rj] = ri < rj ? ri : rj;
        }
    for (int i = 0; rc == PL_OK && i < m; i++) {
        int r = root(parent, i);
        count += r == i;
        if (label)
            label[i] = r;
    }
    free(parent), free(nrm);
    return rc == PL_OK ? count : PL_ERR;
}

/* ------------------------------------------------------------ the state as bytes (resume mid-run)
 *
 * Layout (native byte order, as a checkpoint's): "PLSPHR01", int32 n, C, max_iterations, orthogonal,
 * current, n_exclude; float64 radius, tol; then float64 delta[n, C], grad[n, C], exclude[n_exclude, C],
 * value[n], step[n], last_change[n]; int32 iterations[n], evaluations[n], status[n], evaluated[n],
 * backtracked[n]. Every number a step reads, bit for bit: a loaded state steps as the saved one would. */

static const char SPHERE_MAGIC[8] = {'P', 'L', 'S', 'P', 'H', 'R', '0', '1'};

size_t pl_sphere_state_size(int n, int C, int n_exclude)
{
    return 8 + 6 * 4 + 2 * 8 + sizeof(double) * ((size_t)2 * n * C + (size_t)n_exclude * C + 3 * (size_t)n) +
           4 * 5 * (size_t)n;
}

int pl_sphere_save(const pl_sphere_state *s, unsigned char **bytes, size_t *len)
{
    size_t n = (size_t)s->n, nc = n * s->C;
    *len = pl_sphere_state_size(s->n, s->C, s->n_exclude);
    unsigned char *p = *bytes = pl_malloc(*len, "optimiser state");
    if (!p)
        return PL_ERR;
    int32_t head[6] = {s->n, s->C, s->max_iterations, s->orthogonal, s->current, s->n_exclude};
    double real[2] = {s->radius, s->tol};
#define PUT(src, size) (memcpy(p, (src), (size)), p += (size))
    PUT(SPHERE_MAGIC, 8);
    PUT(head, sizeof head);
    PUT(real, sizeof real);
    PUT(s->delta, sizeof(double) * nc);
    PUT(s->grad, sizeof(double) * nc);
    PUT(s->exclude, sizeof(double) * (size_t)s->n_exclude * s->C);
    PUT(s->value, sizeof(double) * n);
    PUT(s->step, sizeof(double) * n);
    PUT(s->last_change, sizeof(double) * n);
    const int *ints[5] = {s->iterations, s->evaluations, s->status, s->evaluated, s->backtracked};
    for (int a = 0; a < 5; a++)
        for (size_t i = 0; i < n; i++) {
            int32_t v = ints[a][i];
            PUT(&v, 4);
        }
#undef PUT
    return PL_OK;
}

int pl_sphere_load(pl_sphere_state *s, const unsigned char *bytes, size_t len)
{
    int32_t head[6];
    double real[2];
    if (len < 8 + sizeof head + sizeof real || memcmp(bytes, SPHERE_MAGIC, 8))
        return pl_fail("optimiser state: not one (bad magic or too short)");
    memcpy(head, bytes + 8, sizeof head);
    memcpy(real, bytes + 8 + sizeof head, sizeof real);
    /* the state was set up from the same config at the same base: its shape and sphere are this one's */
    if (head[0] != s->n || head[1] != s->C || head[2] != s->max_iterations || head[3] != s->orthogonal ||
        head[5] != s->n_exclude || memcmp(real, &s->radius, 8) || memcmp(real + 1, &s->tol, 8))
        return pl_fail("optimiser state: %d starts in dimension %d at radius %.17g saved, %d in %d at %.17g here",
                       head[0], head[1], real[0], s->n, s->C, s->radius);
    if (len != pl_sphere_state_size(s->n, s->C, s->n_exclude) || head[4] < 0 || head[4] > s->n)
        return pl_fail("optimiser state: corrupt (size or current row)");
    size_t n = (size_t)s->n, nc = n * s->C;
    const unsigned char *p = bytes + 8 + sizeof head + sizeof real;
#define GET(dst, size) (memcpy((dst), p, (size)), p += (size))
    GET(s->delta, sizeof(double) * nc);
    GET(s->grad, sizeof(double) * nc);
    GET(s->exclude, sizeof(double) * (size_t)s->n_exclude * s->C);
    GET(s->value, sizeof(double) * n);
    GET(s->step, sizeof(double) * n);
    GET(s->last_change, sizeof(double) * n);
    int *ints[5] = {s->iterations, s->evaluations, s->status, s->evaluated, s->backtracked};
    for (int a = 0; a < 5; a++)
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            GET(&v, 4);
            ints[a][i] = v;
        }
#undef GET
    s->current = head[4];
    for (size_t i = 0; i < n; i++)
        if (s->status[i] < PL_OPT_RUNNING || s->status[i] > PL_OPT_STALL)
            return pl_fail("optimiser state: corrupt (status %d of start %zu)", s->status[i], i);
    return PL_OK;
}
