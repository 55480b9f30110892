/* The local geometry at one base as the sweep uses it (issue 17): see base_local.c. */
#ifndef PLATEAU_BASE_LOCAL_H
#define PLATEAU_BASE_LOCAL_H

#include <stdint.h>

#include "experiment.h"
#include "fisher.h"

/* Top-K eigenpairs and trace of F at one base (OP built there) into OUT (freed first), tagged with
 * (P, B). Lanczos (when fisher.c's rule picks it) draws its start block from the stream (SEED, P,
 * PL_RNG_FISHER_LANCZOS, BASE_KIND). */
int pl_base_local_compute(const pl_local_op *op, int k, uint64_t seed, int p, int b, int base_kind,
                          pl_base_local *out);
/* The `optimized` kind's optima at unit ID's (prompt, base) BASE[C] into OUT (after
 * pl_base_local_compute): [optimize] starts drawn as start_kind, Riemannian ascent of OP's objective
 * on the sphere of radius radius_alpha (x norm_scale |reference| under fixed_norm), off the all-ones
 * direction in the centered basis, clustered by |cos| >= distinct_cos. HOOKS (NULL: none) resume the
 * optimisation from a saved state and may stop it (their code returned unchanged). */
int pl_base_local_optimize(const pl_sphere_op *op, const pl_experiment *ex, pl_unit_id id, const double *base,
                           const pl_sphere_hooks *hooks, pl_base_local *out);
/* pl_base_local_opt_setup's (and so pl_base_local_optimize's) return when the radius r is not a sphere a
 * float32 step can hold (pl_sphere_radius_ok): the config's radius_alpha (times norm_scale and the
 * reference's norm under fixed_norm) is bad input, not a fault. The sweep's PL_ERR_BAD_INPUT. */
#define PL_ERR_BAD_RADIUS (-2)
/* Whether radius R is one whose sphere in C dimensions float32 steps hold: at least FLT_MIN·√C (below
 * it every component of a point underflows and x + δ = x) and at most FLT_MAX / 4. */
int pl_sphere_radius_ok(double r, int C);
/* pl_base_local_optimize in parts, for optimisations run together (pl_sphere_run_many): the state of
 * unit ID's base (its starts and sphere; *radius r) and, once it is done, its optima into OUT. */
int pl_base_local_opt_setup(const pl_experiment *ex, pl_unit_id id, const double *base, pl_sphere_state *st,
                            double *radius);
int pl_base_local_opt_take(const pl_experiment *ex, const pl_sphere_state *st, double r, pl_base_local *out);
/* With an SAE (ex->sae): each eigenvector's and optimum's largest |cos| with the SAE's decoder rows
 * (W_dec as stored) and which feature, into out->sae_cos / sae_feature. No SAE: nothing. */
int pl_base_local_align(const pl_experiment *ex, pl_base_local *out);
/* Each eigenvector's and optimum's |cos| with the base's real_other directions (N_OTHER > 0: the
 * directions real_other draws at BASE for samples 0..n_other-1 of unit ID's prompt, as its curves use
 * them, i.e. x_partner - base, centred under residual_basis = centered) into out->other_cos, and with
 * the rows of PCS[n_pcs, C] (unit) into out->pc_cos. Nothing when both are 0. */
int pl_base_local_align_dirs(const pl_experiment *ex, pl_unit_id id, const double *base, int n_other,
                             const double *pcs, int n_pcs, pl_base_local *out);
/* Free and mark empty (p = b = -1). Safe on a zeroed struct. */
void pl_base_local_free(pl_base_local *l);

#endif
