/* The local geometry at one base as the sweep uses it (issue 17): the top-k Fisher eigenpairs and
 * trace of fisher.c, held per (prompt, base) in a pl_base_local, and the `fisher` direction kind,
 * which reads them. The model is behind the operator (pl_local_op): the sweep builds it from the
 * exact derivatives at the base (src/sweep/local_ops.c) and calls pl_base_local_compute on the
 * worker before the curves of (prompt, base), so the numbers depend only on (prompt, base), never on
 * which rank computes them or in which batch.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "base_local.h"
#include "sae.h"

int pl_fisher_k(const pl_sweep_config *cfg)
{
    if (cfg->fisher_k > 0)
        return cfg->fisher_k;
    for (int d = 0; d < cfg->n_dirs; d++)
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].direction == pl_fisher_direction)
            return cfg->n_directions;
    return 0;
}

int pl_base_sample(const pl_sweep_config *cfg, pl_unit_id id)
{
    return PL_BASE_KINDS[cfg->bases[id.b]].per_sample ? id.s : 0;
}

void pl_base_local_free(pl_base_local *l)
{
    free(l->values);
    free(l->vectors);
    free(l->opt_dir);
    free(l->opt_value);
    free(l->opt_tangential);
    free(l->opt_grad_norm);
    free(l->opt_iterations);
    free(l->opt_status);
    free(l->opt_start);
    free(l->opt_cluster);
    free(l->sae_cos);
    free(l->sae_feature);
    free(l->other_cos);
    free(l->pc_cos);
    memset(l, 0, sizeof *l);
    l->p = l->b = l->s = -1;
}

int pl_base_local_compute(const pl_local_op *op, int k, uint64_t seed, int p, int b, int base_kind,
                          pl_base_local *out)
{
    pl_base_local_free(out);
    out->p = p;
    out->b = b;
    out->C = op->C;
    if (k == 0) /* no eigenpairs asked (optimized alone): the trace still */
        return pl_fisher_trace(op, &out->trace);
    pl_fisher_opts opts = {PL_FISHER_AUTO, 0.0, 0};
    pl_rng rng;
    /* keyed by (prompt, base kind): a synthetic base's stream does not depend on the bases listed */
    pl_rng_init(&rng, seed, (uint64_t)p, PL_RNG_FISHER_LANCZOS, (uint64_t)base_kind);
    pl_fisher_result res;
    memset(&res, 0, sizeof res);
    if (pl_fisher_top(op, k, &opts, &rng, &res) != PL_OK)
        return PL_ERR;
    out->values = res.values;
    out->vectors = res.vectors;
    out->trace = res.trace;
    out->k = res.k;
    return PL_OK;
}

/* The starts start[n, C]: KIND's directions (the optimiser's: [optimize] start_kind) of samples
 * 0..n-1 at the base (the same directions as that kind's units when it is listed), centred as steps
 * centre theirs. */
static int draw_starts(const pl_experiment *ex, pl_unit_id id, const double *base, int kind, int n, double *start)
{
    const pl_sweep_config *cfg = ex->cfg;
    int C = ex->C, slot = 0;
    for (int d = 0; d < cfg->n_dirs; d++)
        if (cfg->dirs[d].kind == kind) {
            slot = d;
            break;
        }
    double *dir = pl_malloc(sizeof(double) * 2 * (size_t)C, "optimiser start");
    if (!dir)
        return PL_ERR;
    for (int i = 0; i < n; i++) {
        pl_unit_id u = {id.p, id.b, slot, i};
        PL_DIRECTION_KINDS[kind].direction(ex, slot, u, base, dir);
        if (cfg->center_direction || cfg->residual_basis == PL_BASIS_CENTERED)
            pl_center(dir, C);
        memcpy(start + (size_t)i * C, dir, sizeof(double) * C);
    }
    free(dir);
    return PL_OK;
}

static int opt_alloc(pl_base_local *out, int n, int C)
{
    out->opt_dir = pl_malloc(sizeof(double) * (size_t)n * C, "optima");
    out->opt_value = pl_malloc(sizeof(double) * (size_t)n, "optima");
    out->opt_tangential = pl_malloc(sizeof(double) * (size_t)n, "optima");
    out->opt_grad_norm = pl_malloc(sizeof(double) * (size_t)n, "optima");
    out->opt_iterations = pl_malloc(sizeof(int) * (size_t)n, "optima");
    out->opt_status = pl_malloc(sizeof(int) * (size_t)n, "optima");
    out->opt_start = pl_malloc(sizeof(int) * (size_t)n, "optima");
    out->opt_cluster = pl_malloc(sizeof(int) * (size_t)n, "optima");
    return out->opt_dir && out->opt_value && out->opt_tangential && out->opt_grad_norm && out->opt_iterations &&
                   out->opt_status && out->opt_start && out->opt_cluster
               ? PL_OK
               : PL_ERR;
}

/* The steps are float32: on a sphere of radius below FLT_MIN·√C every point's components underflow,
 * x + δ = x and the normalised gradient is 0/0 (radius_alpha = 1e-300 stopped the run as "the
 * objective is not finite", naming no key). */
int pl_sphere_radius_ok(double r, int C)
{
    return r >= FLT_MIN * sqrt((double)C) && r <= FLT_MAX / 4;
}

int pl_base_local_opt_setup(const pl_experiment *ex, pl_unit_id id, const double *base, pl_sphere_state *st,
                            double *radius)
{
    const pl_sweep_config *cfg = ex->cfg;
    int C = ex->C, n = cfg->opt_starts;
    double r = cfg->opt_radius_alpha * (cfg->step_mode == PL_STEP_FIXED_NORM ? pl_fixed_norm_length(ex, id, base) : 1.0);
    memset(st, 0, sizeof *st);
    *radius = r;
    if (!pl_sphere_radius_ok(r, C)) {
        pl_fail("[optimize] radius_alpha = %g: the optimiser's radius is %g%s, %s float32 step of the model "
                "(a sphere in %d dimensions needs a radius in [%g, %g])",
                cfg->opt_radius_alpha, r,
                cfg->step_mode == PL_STEP_FIXED_NORM ? " (radius_alpha times norm_scale times the reference's norm)" : "",
                isnan(r) ? "not a" : r > 1.0 ? "beyond a" : "below the smallest", C, FLT_MIN * sqrt((double)C),
                FLT_MAX / 4);
        return PL_ERR_BAD_RADIUS;
    }
    double *start = pl_malloc(sizeof(double) * ((size_t)n + 1) * C, "optimiser starts"), *ones = start + (size_t)n * C;
    if (!start)
        return PL_ERR;
    for (int c = 0; c < C; c++)
        ones[c] = 1.0;
    int centered = cfg->residual_basis == PL_BASIS_CENTERED;
    pl_sphere_opts opts = {r, cfg->opt_max_iterations, cfg->opt_tolerance, cfg->opt_orthogonal, centered ? ones : NULL,
                           centered};
    int rc = draw_starts(ex, id, base, cfg->opt_start_kind, n, start);
    rc = rc == PL_OK ? pl_sphere_init(st, start, n, C, &opts) : rc;
    free(start);
    return rc;
}

/* ORDER[n] of the optima: under orthogonal the sequence (each the best found orthogonal to the earlier
 * ones, Mack & Turner's order); otherwise by objective, descending, ties (and NaN, last) by the lower
 * start, so that sample 0 is the best and two starts reaching one optimum are neighbours. A function
 * of the final state alone: the same on every rank and after a resume. Insertion sort: n is small. */
static void opt_order(const pl_sphere_state *st, int *order)
{
    for (int i = 0; i < st->n; i++) {
        int j = i;
        for (; j > 0 && !st->orthogonal; j--) {
            double a = st->value[order[j - 1]], b = st->value[i];
            if (!(b > a || (isnan(a) && !isnan(b)))) /* stays after: lower start first on ties */
                break;
            order[j] = order[j - 1];
        }
        order[j] = i;
    }
}

/* Cluster labels of the ranked optima numbered 0, 1, ... by first appearance (pl_cluster_by_cos
 * labels a cluster by its lowest member, so first appearance is the order of those). Returns the count. */
static int opt_clusters(pl_base_local *out, int C, double threshold)
{
    int n = out->n_opt, count = pl_cluster_by_cos(out->opt_dir, n, C, threshold, out->opt_cluster);
    for (int i = 0, next = 0; count > 0 && i < n; i++)
        if (out->opt_cluster[i] == i) { /* a root: relabel it and its members (all later) */
            for (int j = n - 1; j >= i; j--)
                if (out->opt_cluster[j] == i)
                    out->opt_cluster[j] = -1 - next;
            next++;
        }
    for (int i = 0; count > 0 && i < n; i++)
        out->opt_cluster[i] = -1 - out->opt_cluster[i];
    return count;
}

int pl_base_local_opt_take(const pl_experiment *ex, const pl_sphere_state *st, double r, pl_base_local *out)
{
    int C = ex->C, n = st->n;
    int rc = opt_alloc(out, n, C);
    if (rc == PL_OK)
        opt_order(st, out->opt_start);
    for (int i = 0; rc == PL_OK && i < n; i++) {
        int s = out->opt_start[i];
        for (int c = 0; c < C; c++)
            out->opt_dir[(size_t)i * C + c] = st->delta[(size_t)s * C + c] / r;
        out->opt_value[i] = st->value[s];
        out->opt_tangential[i] = pl_sphere_tangential_norm(st, s);
        out->opt_grad_norm[i] = pl_sphere_grad_norm(st, s);
        out->opt_iterations[i] = st->iterations[s];
        out->opt_status[i] = st->status[s];
    }
    if (rc == PL_OK) {
        out->n_opt = n;
        out->radius = r;
        out->opt_distinct = opt_clusters(out, C, ex->cfg->opt_distinct_cos);
        rc = out->opt_distinct < 0 ? PL_ERR : PL_OK;
    }
    return rc;
}

int pl_base_local_optimize(const pl_sphere_op *op, const pl_experiment *ex, pl_unit_id id, const double *base,
                           const pl_sphere_hooks *hooks, pl_base_local *out)
{
    pl_sphere_state st;
    double r;
    int rc = pl_base_local_opt_setup(ex, id, base, &st, &r);
    rc = rc == PL_OK ? pl_sphere_run_hooked(&st, op, hooks) : rc;
    rc = rc == PL_OK ? pl_base_local_opt_take(ex, &st, r, out) : rc;
    pl_sphere_free(&st);
    return rc;
}

int pl_base_local_align(const pl_experiment *ex, pl_base_local *out)
{
    const pl_sae *sae = ex->sae;
    int C = ex->C, n = out->k + out->n_opt;
    if (!sae || n == 0)
        return PL_OK;
    out->sae_cos = pl_malloc(sizeof(double) * (size_t)n, "SAE alignment");
    out->sae_feature = pl_malloc(sizeof(int) * (size_t)n, "SAE alignment");
    if (!out->sae_cos || !out->sae_feature)
        return PL_ERR;
    if (out->k && pl_max_abs_cos(out->vectors, out->k, sae->W_dec, sae->d_sae, C, out->sae_cos, out->sae_feature) !=
                      PL_OK)
        return PL_ERR;
    if (out->n_opt && pl_max_abs_cos(out->opt_dir, out->n_opt, sae->W_dec, sae->d_sae, C, out->sae_cos + out->k,
                                     out->sae_feature + out->k) != PL_OK)
        return PL_ERR;
    return PL_OK;
}

/* |cos| of the n rows v[n, C] with each row of D[m, C] into out[n, m]; a zero or non-finite row of D
 * (a real_other partner equal to a synthetic base) has no direction: its column is NaN. */
static int abs_cos_or_nan(const double *v, int n, const double *D, int m, int C, double *out)
{
    double *col = pl_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1), "alignment column");
    int rc = col ? PL_OK : PL_ERR;
    for (int j = 0; rc == PL_OK && j < m; j++) {
        double nrm = 0.0;
        for (int c = 0; c < C; c++)
            nrm += D[(size_t)j * C + c] * D[(size_t)j * C + c];
        if (nrm > 0.0 && isfinite(nrm))
            rc = pl_abs_cos(v, n, D + (size_t)j * C, 1, C, col);
        for (int i = 0; rc == PL_OK && i < n; i++)
            out[(size_t)i * m + j] = nrm > 0.0 && isfinite(nrm) ? col[i] : NAN;
    }
    free(col);
    return rc;
}

int pl_base_local_align_dirs(const pl_experiment *ex, pl_unit_id id, const double *base, int n_other,
                             const double *pcs, int n_pcs, pl_base_local *out)
{
    int C = ex->C, k = out->k, no = out->n_opt, n = k + no;
    if (n == 0 || n_other + n_pcs == 0)
        return PL_OK;
    out->n_other = n_other, out->n_pcs = n_pcs;
    out->other_cos = pl_malloc(sizeof(double) * (size_t)n * (n_other ? n_other : 1), "real_other alignment");
    out->pc_cos = pl_malloc(sizeof(double) * (size_t)n * (n_pcs ? n_pcs : 1), "PC alignment");
    double *dirs = pl_malloc(sizeof(double) * (size_t)(n_other ? n_other : 1) * C, "real_other directions");
    int rc = out->other_cos && out->pc_cos && dirs ? PL_OK : PL_ERR;
    if (rc == PL_OK && n_other) /* real_other's directions of samples 0..n_other-1 at this base */
        rc = draw_starts(ex, id, base, pl_direction_kind_find("real_other"), n_other, dirs);
    if (rc == PL_OK && n_other && k)
        rc = abs_cos_or_nan(out->vectors, k, dirs, n_other, C, out->other_cos);
    if (rc == PL_OK && n_other && no)
        rc = abs_cos_or_nan(out->opt_dir, no, dirs, n_other, C, out->other_cos + (size_t)k * n_other);
    if (rc == PL_OK && n_pcs && k)
        rc = pl_abs_cos(out->vectors, k, pcs, n_pcs, C, out->pc_cos);
    if (rc == PL_OK && n_pcs && no)
        rc = pl_abs_cos(out->opt_dir, no, pcs, n_pcs, C, out->pc_cos + (size_t)k * n_pcs);
    free(dirs);
    return rc;
}

void pl_optimized_direction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    (void)base;
    const pl_base_local *l = ex->local;
    int ok = l && l->p == id.p && l->b == id.b && l->s == pl_base_sample(ex->cfg, id) && id.s < l->n_opt;
    for (int c = 0; c < ex->C; c++)
        dir[c] = ok ? l->opt_dir[(size_t)id.s * ex->C + c] : NAN;
}

/* The s-th eigenvector. The sweep computes the local geometry of a unit's (prompt, base) before its
 * steps; without it (a caller that did not, e.g. rank 0 summing up) the direction is NaN, never a
 * silent zero. */
void pl_fisher_direction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    (void)base;
    const pl_base_local *l = ex->local;
    int ok = l && l->p == id.p && l->b == id.b && l->s == pl_base_sample(ex->cfg, id) && id.s < l->k;
    for (int c = 0; c < ex->C; c++)
        dir[c] = ok ? l->vectors[(size_t)id.s * ex->C + c] : NAN;
}
