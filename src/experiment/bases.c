/* Base kinds: the activation a unit starts from. Indexed by PL_BASE_* (plateau/sweep.h). */
#include "experiment.h"

/* The prompt's own activation at the hook. */
static void real_base(const pl_experiment *ex, pl_unit_id id, double *base)
{
    const float *x = ex->real_act + (size_t)id.p * ex->C;
    for (int c = 0; c < ex->C; c++)
        base[c] = x[c];
}

/* A sample of N(mu, Sigma) in the real activation's place: one per (prompt, sample), shared by every
 * direction kind. */
static void synthetic_base(const pl_experiment *ex, pl_unit_id id, double *base)
{
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_SYNTH_BASE, (uint64_t)id.s);
    pl_sample_gaussian(&r, ex->mu, ex->chol, ex->C, base);
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(base, ex->C);
}

const pl_base_kind PL_BASE_KINDS[PL_N_BASE_KINDS] = {
    [PL_BASE_REAL] = {"real", "the prompt's own activation", real_base},
    [PL_BASE_SYNTHETIC] = {"synthetic", "a sample of N(mu, Sigma) in its place", synthetic_base},
};
