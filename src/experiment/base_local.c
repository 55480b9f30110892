/* The local geometry at one base as the sweep uses it (issue 17): the top-k Fisher eigenpairs and
 * trace of fisher.c, held per (prompt, base) in a pl_base_local, and the `fisher` direction kind,
 * which reads them. The model is behind the operator (pl_local_op): the sweep builds it from the
 * exact derivatives at the base (src/sweep/local_ops.c) and calls pl_base_local_compute on the
 * worker before the curves of (prompt, base), so the numbers depend only on (prompt, base), never on
 * which rank computes them or in which batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "base_local.h"

int pl_fisher_k(const pl_sweep_config *cfg)
{
    if (cfg->fisher_k > 0)
        return cfg->fisher_k;
    for (int d = 0; d < cfg->n_dirs; d++)
        if (pl_direction_kind_needs_local(cfg->dirs[d].kind))
            return cfg->n_directions;
    return 0;
}

void pl_base_local_free(pl_base_local *l)
{
    free(l->values);
    free(l->vectors);
    memset(l, 0, sizeof *l);
    l->p = l->b = -1;
}

int pl_base_local_compute(const pl_local_op *op, int k, uint64_t seed, int p, int b, int base_kind,
                          pl_base_local *out)
{
    pl_base_local_free(out);
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
    out->C = op->C;
    out->p = p;
    out->b = b;
    return PL_OK;
}

/* The s-th eigenvector. The sweep computes the local geometry of a unit's (prompt, base) before its
 * steps; without it (a caller that did not, e.g. rank 0 summing up) the direction is NaN, never a
 * silent zero. */
void pl_fisher_direction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    (void)base;
    const pl_base_local *l = ex->local;
    int ok = l && l->p == id.p && l->b == id.b && id.s < l->k;
    for (int c = 0; c < ex->C; c++)
        dir[c] = ok ? l->vectors[(size_t)id.s * ex->C + c] : NAN;
}
