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

/* SAE(x), the SAE's reconstruction of the prompt's real activation, in its place: teren's
 * reconstruction base (jettjaniak/teren, branch draft-paper-experiments, commit 3a82827,
 * notebooks/baseline_recon_experiment.py, class Reference with use_recon=True: self.recon_act =
 * sae.decode(sae.encode(self.act)) is patched in and its run is the clean reference). One per prompt,
 * shared by every sample and direction kind; made once at setup (pl_sae_recon_real_setup). Projected
 * like every vector in the centred basis (LayerNorm ignores the removed component). */
static void sae_recon_base(const pl_experiment *ex, pl_unit_id id, double *base)
{
    const float *x = ex->sae_recon_real + (size_t)id.p * ex->C;
    for (int c = 0; c < ex->C; c++)
        base[c] = x[c];
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(base, ex->C);
}

/* Giglemiani et al.'s activations built from SAE latents (sae_giglemiani.c): a bag of features of
 * matching density per (prompt, sample), and the cosine-matched ("structured") one per prompt. */
static void sae_bag_base(const pl_experiment *ex, pl_unit_id id, double *base)
{
    const float *x = ex->sae_bag + ((size_t)id.p * ex->S + id.s) * ex->C;
    for (int c = 0; c < ex->C; c++)
        base[c] = x[c];
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(base, ex->C);
}

static void sae_cosine_base(const pl_experiment *ex, pl_unit_id id, double *base)
{
    const float *x = ex->sae_cosine + (size_t)id.p * ex->C;
    for (int c = 0; c < ex->C; c++)
        base[c] = x[c];
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(base, ex->C);
}

const pl_base_kind PL_BASE_KINDS[PL_N_BASE_KINDS] = {
    [PL_BASE_REAL] = {"real", "the prompt's own activation", real_base, 0, 0},
    [PL_BASE_SYNTHETIC] = {"synthetic", "a sample of N(mu, Sigma) in its place", synthetic_base, 0, 1},
    [PL_BASE_SAE_RECON] = {"sae_recon", "SAE(x), the SAE's reconstruction of the prompt's activation, in its place",
                           sae_recon_base, 1, 0},
    [PL_BASE_SAE_BAG] = {"sae_bag", "decode of the prompt's SAE code with each active feature swapped for one of "
                                    "similar density (Giglemiani et al.'s bag of features)", sae_bag_base, 1, 1},
    [PL_BASE_SAE_COSINE] = {"sae_cosine", "decode of a code whose features copy the cosine structure of the "
                                          "prompt's (Giglemiani et al.'s structured synthetic)", sae_cosine_base, 1, 0},
};
