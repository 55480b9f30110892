/* Direction kinds: one function per kind (its raw direction d from the unit's base), and one row
 * in PL_DIRECTION_KINDS. A kind that needs per-sweep resources (a matrix file) or per-unit choices
 * (a partner prompt) has a setup, run on every rank once the real activations and the fit are
 * known; its choices are drawn from keyed streams, so every rank makes the same ones, and they are
 * recorded in the output as the kind's state variables. Centring, scaling and the steps themselves
 * are the step mode's business (steps.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "experiment.h"
#include "sae.h"

/* ------------------------------------------------------------ helpers of setup */

int *pl_direction_add_state(pl_experiment *ex, int d, const char *name, const char *long_name, int width,
                            const char *width_dim, int per_base)
{
    pl_direction_data *dd = &ex->dir[d];
    if (dd->n_state == PL_MAX_UNIT_STATE) {
        pl_fail("direction %s: more than %d state variables", ex->cfg->dirs[d].label, PL_MAX_UNIT_STATE);
        return NULL;
    }
    pl_unit_state *st = &dd->state[dd->n_state];
    st->values = pl_malloc(sizeof(int) * (size_t)(per_base ? ex->NB : 1) * ex->P * ex->S * width, "direction state");
    if (!st->values)
        return NULL;
    st->name = name;
    st->long_name = long_name;
    st->width = width;
    st->width_dim = width_dim;
    st->per_base = per_base;
    dd->n_state++;
    return st->values;
}

/* Classes of identical real activations: class_of[p] is the smallest prompt index whose activation
 * equals p's bit for bit. A direction between two prompts of one class is zero. */
static const pl_experiment *g_sort_ex; /* qsort has no context argument; setup is single-threaded */

static int cmp_rows(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    size_t n = sizeof(float) * g_sort_ex->C;
    int c = memcmp(g_sort_ex->real_act + (size_t)i * g_sort_ex->C, g_sort_ex->real_act + (size_t)j * g_sort_ex->C, n);
    return c ? c : (i > j) - (i < j);
}

static int *activation_classes(const pl_experiment *ex, int *n_classes)
{
    int P = ex->P, C = ex->C;
    int *order = pl_malloc(sizeof(int) * 2 * (size_t)P, "activation classes"), *class_of = order + P;
    if (!order)
        return NULL;
    for (int p = 0; p < P; p++)
        order[p] = p;
    g_sort_ex = ex;
    qsort(order, (size_t)P, sizeof(int), cmp_rows);
    *n_classes = 0;
    for (int k = 0; k < P; k++) {
        int p = order[k];
        if (k > 0 && !memcmp(ex->real_act + (size_t)p * C, ex->real_act + (size_t)order[k - 1] * C,
                             sizeof(float) * C))
            class_of[p] = class_of[order[k - 1]]; /* sorted by index within a class: the first is smallest */
        else {
            class_of[p] = p;
            ++*n_classes;
        }
    }
    memmove(order, class_of, sizeof(int) * (size_t)P);
    return order;
}

/* Another sweep prompt than P, uniformly: one draw of R. */
static int draw_other(pl_rng *r, int p, int P)
{
    int q = (int)pl_rng_below(r, (uint64_t)P - 1);
    return q + (q >= p);
}

/* ------------------------------------------------------------ the kinds */

/* isotropic: target mu + sqrt(tr Sigma / dims) z, d = target - base (half of d pulls towards mu). */
static void isotropic_target(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_ISO_TARGET, (uint64_t)id.s);
    for (int c = 0; c < ex->C; c++)
        dir[c] = ex->mu[c] + ex->iso_scale * pl_rng_gaussian(&r);
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(dir, ex->C);
    for (int c = 0; c < ex->C; c++)
        dir[c] -= base[c];
}

/* cov_random: target ~ N(mu, Sigma), d = target - base. */
static void cov_random(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_COV_TARGET, (uint64_t)id.s);
    pl_sample_gaussian(&r, ex->mu, ex->chol, ex->C, dir);
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(dir, ex->C);
    for (int c = 0; c < ex->C; c++)
        dir[c] -= base[c];
}

/* real_other: the partner's real activation is the target. The partner of (p, s) is drawn from the
 * stream (seed, p, PARTNER, s), redrawn from it while its activation equals p's. */
const int *pl_partner_setup(pl_experiment *ex, int d, const char *name, const char *long_name, const char *redraw_name,
                            const char *redraw_long_name)
{
    int P = ex->P, S = ex->S, n_classes;
    int *partner = pl_direction_add_state(ex, d, name, long_name, 1, NULL, 0);
    int *redraws = partner ? pl_direction_add_state(ex, d, redraw_name, redraw_long_name, 1, NULL, 0) : NULL;
    int *cls = partner && redraws ? activation_classes(ex, &n_classes) : NULL;
    if (!cls)
        return NULL;
    if (n_classes < 2) {
        free(cls);
        pl_fail("every sweep prompt has the same activation at the hook: %s has no partner", ex->cfg->dirs[d].label);
        return NULL;
    }
    for (int p = 0; p < P; p++)
        for (int s = 0; s < S; s++) {
            pl_rng r;
            pl_rng_init(&r, ex->cfg->seed, (uint64_t)p, PL_RNG_PARTNER, (uint64_t)s);
            int q = draw_other(&r, p, P), n = 0;
            while (cls[q] == cls[p]) {
                q = draw_other(&r, p, P);
                n++;
            }
            partner[(size_t)p * S + s] = q;
            redraws[(size_t)p * S + s] = n;
        }
    free(cls);
    return partner;
}

static int real_other_setup(pl_experiment *ex, int d)
{
    return pl_partner_setup(ex, d, "partner", "prompt whose real activation is the real_other target", "partner_redraws",
                            "real_other partners redrawn because their activation equalled the base's")
               ? PL_OK
               : PL_ERR;
}

static void real_other(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    const float *t = ex->real_act + (size_t)ex->dir[d].state[0].values[(size_t)id.p * ex->S + id.s] * ex->C;
    for (int c = 0; c < ex->C; c++)
        dir[c] = (double)t[c] - base[c];
}

/* file:PATH[#TENSOR]: the row itself is the direction; unit (p, s) uses row (p S + s) mod rows. */
static int file_setup(pl_experiment *ex, int d)
{
    const pl_direction_spec *ds = &ex->cfg->dirs[d];
    return pl_load_direction_rows(ds->path, ds->tensor, ex->C, &ex->dir[d].rows, &ex->dir[d].n_rows);
}

static void file_row(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)base;
    long row = (long)(((long long)id.p * ex->S + id.s) % ex->dir[d].n_rows);
    const float *t = ex->dir[d].rows + (size_t)row * ex->C;
    for (int c = 0; c < ex->C; c++)
        dir[c] = t[c];
}

/* naive_isotropic: d = sqrt(tr Sigma / dims) z, z ~ N(0, I): the post's naive random direction
 * (scaled to the data only for to_target steps; the other modes normalise it). */
static void naive_isotropic(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d, (void)base;
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_NAIVE_ISO, (uint64_t)id.s);
    for (int c = 0; c < ex->C; c++)
        dir[c] = ex->iso_scale * pl_rng_gaussian(&r);
}

/* cov_difference: d = t1 - t2, two samples of N(mu, Sigma) (Lee & Heimersheim's baseline). */
static void cov_difference(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d, (void)base;
    int C = ex->C;
    double *t2 = dir + C; /* dir has room for 2 C doubles */
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_COV_DIFFERENCE, 2 * (uint64_t)id.s);
    pl_sample_gaussian(&r, ex->mu, ex->chol, C, dir);
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_COV_DIFFERENCE, 2 * (uint64_t)id.s + 1);
    pl_sample_gaussian(&r, ex->mu, ex->chol, C, t2);
    for (int c = 0; c < C; c++)
        dir[c] -= t2[c];
}

/* real_difference: d = r1 - r2, the real activations of two other prompts. Both are drawn from the
 * stream (seed, p, REAL_DIFFERENCE, s) as real_other's partner is; r1 is redrawn while its activation
 * equals p's, r2 while it equals p's or r1's. */
static int real_difference_setup(pl_experiment *ex, int d)
{
    int P = ex->P, S = ex->S, n_classes;
    int *pair = pl_direction_add_state(
        ex, d, "difference_prompts", "prompts r1, r2 whose real activations give the real_difference direction r1 - r2",
        2, "pair", 0);
    int *redraws = pl_direction_add_state(ex, d, "difference_redraws",
                                          "real_difference prompts redrawn because their activation equalled the "
                                          "base's or each other's",
                                          1, NULL, 0);
    int *cls = pair && redraws ? activation_classes(ex, &n_classes) : NULL;
    if (!cls)
        return PL_ERR;
    if (n_classes < 3) {
        free(cls);
        return pl_fail("real_difference needs sweep prompts of at least 3 distinct activations (there are %d)",
                       n_classes);
    }
    for (int p = 0; p < P; p++)
        for (int s = 0; s < S; s++) {
            pl_rng r;
            pl_rng_init(&r, ex->cfg->seed, (uint64_t)p, PL_RNG_REAL_DIFFERENCE, (uint64_t)s);
            int n = 0, r1 = draw_other(&r, p, P), r2;
            while (cls[r1] == cls[p]) {
                r1 = draw_other(&r, p, P);
                n++;
            }
            r2 = draw_other(&r, p, P);
            while (cls[r2] == cls[p] || cls[r2] == cls[r1]) {
                r2 = draw_other(&r, p, P);
                n++;
            }
            pair[((size_t)p * S + s) * 2] = r1;
            pair[((size_t)p * S + s) * 2 + 1] = r2;
            redraws[(size_t)p * S + s] = n;
        }
    free(cls);
    return PL_OK;
}

static void real_difference(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)base;
    const int *pair = ex->dir[d].state[0].values + ((size_t)id.p * ex->S + id.s) * 2;
    const float *a = ex->real_act + (size_t)pair[0] * ex->C, *b = ex->real_act + (size_t)pair[1] * ex->C;
    for (int c = 0; c < ex->C; c++)
        dir[c] = (double)a[c] - b[c];
}

/* ------------------------------------------------------------ the table */

const pl_direction_kind PL_DIRECTION_KINDS[] = {
    {"isotropic", "target mu + sqrt(tr Sigma / dims) z, d = target - base", NULL, isotropic_target, NULL, NULL, 0,
     0.0, NULL},
    {"cov_random", "target ~ N(mu, Sigma), d = target - base", NULL, cov_random, NULL, NULL, 0, 0.0, NULL},
    {"real_other", "target: another sweep prompt's real activation", real_other_setup, real_other, NULL, NULL, 0,
     0.0, NULL},
    {"file", "rows of a .npy or safetensors matrix", file_setup, file_row, NULL, NULL, 0, 0.0, NULL},
    {"naive_isotropic", "d = z ~ N(0, I), scaled by sqrt(tr Sigma / dims)", NULL, naive_isotropic, NULL, NULL, 0,
     0.0, NULL},
    {"cov_difference", "d = t1 - t2, two samples of N(mu, Sigma)", NULL, cov_difference, NULL, NULL, 0, 0.0, NULL},
    {"real_difference", "d = r1 - r2, two other prompts' real activations", real_difference_setup, real_difference,
     NULL, NULL, 0, 0.0, NULL},
    /* the SAE kinds (sae_directions.c) */
    {"sae_active", "d = -act_f W_dec[f], f an SAE feature active at the base (teren's)", pl_sae_active_setup,
     pl_sae_active, NULL, pl_sae_feature_defined, 1, 0.0, NULL},
    {"sae_reconstruction", "target = the SAE's reconstruction of the base (Gurnee's)", pl_sae_reconstruction_setup,
     pl_sae_reconstruction, NULL, NULL, 1, 0.0, NULL},
    {"sae_error_random", "a random direction as long as the SAE's reconstruction error (Gurnee's baseline)",
     pl_sae_reconstruction_setup, pl_sae_error_random, NULL, NULL, 1, 0.0, NULL},
    {"sae_feature_scale", "an active SAE feature's contribution c scaled by alpha: x = base + (alpha - 1) c",
     pl_sae_active_setup, pl_sae_feature_scale, NULL, pl_sae_feature_defined, 1, 1.0,
     "for sae_feature_scale: the scale of one SAE feature's contribution c, x = base + (alpha - 1) c (alpha = 1 is "
     "the base)"},
    {"sae_recon_other", "target = SAE(another sweep prompt's real activation), real_other's partner (teren's)",
     pl_sae_recon_other_setup, pl_sae_recon_other, NULL, NULL, 1, 0.0, NULL},
    /* issue 17: the local geometry at the base (base_local.c), computed by the sweep on the worker */
    {"fisher", "d = the s-th eigenvector of the Fisher metric F at the base (sign: largest |component| positive)",
     NULL, pl_fisher_direction, NULL, NULL, 0, 0.0, NULL},
    {"optimized",
     "d = the s-th local optimum of KL(clean || perturbed) on the sphere of [optimize] radius_alpha (ranked by KL, "
     "descending; under orthogonal, the sequence)",
     NULL, pl_optimized_direction, NULL, NULL, 0, 0.0, NULL},
};
const int PL_N_DIRECTION_KINDS = (int)(sizeof PL_DIRECTION_KINDS / sizeof PL_DIRECTION_KINDS[0]);

int pl_direction_kind_needs_local(int k)
{
    return PL_DIRECTION_KINDS[k].direction == pl_fisher_direction ||
           PL_DIRECTION_KINDS[k].direction == pl_optimized_direction;
}

int pl_optimized_listed(const pl_sweep_config *cfg)
{
    for (int d = 0; d < cfg->n_dirs; d++)
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].direction == pl_optimized_direction)
            return 1;
    return 0;
}

/* [optimize]'s keys when `optimized` is listed: a radius, a step mode that has one, enough starts, and
 * a start kind that can draw (one with a per-sweep setup must be listed, its setup is the listed one's). */
static int check_optimize(const pl_sweep_config *cfg, const char **which)
{
    if (!pl_optimized_listed(cfg))
        return PL_OK;
    *which = "directions";
    if (!isfinite(cfg->opt_radius_alpha))
        return pl_fail("optimized needs [optimize] radius_alpha (the sphere's radius in the step mode's units)");
    if (cfg->step_mode != PL_STEP_FIXED_NORM && cfg->step_mode != PL_STEP_ABSOLUTE)
        return pl_fail("optimized needs step_mode = fixed_norm or absolute: radius_alpha is a length in their units "
                       "(%s has none)", PL_STEP_MODE_NAMES[cfg->step_mode]);
    if (cfg->opt_starts < cfg->n_directions)
        return pl_fail("optimized: its samples are the optima of n_directions = %d starts, but [optimize] starts = %d",
                       cfg->n_directions, cfg->opt_starts);
    const pl_direction_kind *k = &PL_DIRECTION_KINDS[cfg->opt_start_kind];
    int listed = 0;
    for (int d = 0; d < cfg->n_dirs; d++)
        listed |= cfg->dirs[d].kind == cfg->opt_start_kind;
    if ((k->setup || k->needs_sae) && !listed)
        return pl_fail("optimized: [optimize] start_kind = %s needs per-sweep state: list it in [perturb] directions "
                       "too", k->name);
    return PL_OK;
}

int pl_direction_kind_find(const char *name)
{
    for (int k = 0; k < PL_N_DIRECTION_KINDS; k++)
        if (!strcmp(PL_DIRECTION_KINDS[k].name, name))
            return k;
    return -1;
}

const char *pl_direction_kind_names(void)
{
    static char names[512];
    if (!names[0])
        for (int k = 0; k < PL_N_DIRECTION_KINDS; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s%s", k ? ", " : "",
                     PL_DIRECTION_KINDS[k].name, strcmp(PL_DIRECTION_KINDS[k].name, "file") ? "" : ":PATH");
    return names;
}

/* ------------------------------------------------------------ what kinds and metrics need */

double pl_alpha_at(double alpha_max, int steps, int k)
{
    return k == steps - 1 ? alpha_max : alpha_max * k / (steps - 1);
}

/* The log grid's alpha_k: 0, then alpha_min (alpha_max / alpha_min)^((k - 1) / (steps - 2)) for
 * k = 1 .. steps - 1 (numpy's geomspace), exact at alpha_min and alpha_max. */
static double log_alpha_at(double alpha_min, double alpha_max, int steps, int k)
{
    if (k == 0)
        return 0.0;
    if (k == 1)
        return alpha_min;
    if (k == steps - 1)
        return alpha_max;
    double t = (double)(k - 1) / (steps - 2);
    return exp(log(alpha_min) + t * (log(alpha_max) - log(alpha_min)));
}

double pl_grid_alpha(const pl_sweep_config *cfg, int k)
{
    if (cfg->n_alphas > 0)
        return cfg->alphas[k];
    if (cfg->alpha_grid == PL_GRID_LOG)
        return log_alpha_at(cfg->alpha_min, cfg->alpha_max, cfg->steps, k);
    return pl_alpha_at(cfg->alpha_max, cfg->steps, k);
}

/* The grid index of A, or -1 when A is not on the grid. */
static int grid_index(const pl_sweep_config *cfg, double a)
{
    for (int k = 0; k < cfg->steps; k++)
        if (pl_grid_alpha(cfg, k) == a)
            return k;
    return -1;
}

/* What the fixed_norm-only keys need (norm_scale, step_reference). */
static int check_step_keys(const pl_sweep_config *cfg, const char **which)
{
    if (cfg->step_mode == PL_STEP_FIXED_NORM)
        return PL_OK;
    if (cfg->norm_scale != 1.0) {
        *which = "norm_scale";
        return pl_fail("norm_scale = %g scales fixed_norm steps; step_mode = %s has no norm to scale (use "
                       "fixed_norm, or alpha in the mode's own units)",
                       cfg->norm_scale, PL_STEP_MODE_NAMES[cfg->step_mode]);
    }
    if (cfg->step_reference != PL_STEP_REF_OWN) {
        *which = "step_reference";
        return pl_fail("step_reference = %s chooses whose norm fixed_norm steps by; step_mode = %s steps by "
                       "no norm", PL_STEP_REFERENCE_NAMES[cfg->step_reference], PL_STEP_MODE_NAMES[cfg->step_mode]);
    }
    return PL_OK;
}

int pl_experiment_check_config(const pl_sweep_config *cfg, const char **which)
{
    if (check_step_keys(cfg, which) != PL_OK)
        return PL_ERR;
    for (int b = 0; b < cfg->n_bases; b++)
        if (PL_BASE_KINDS[cfg->bases[b]].needs_sae && !cfg->sae_path) {
            *which = "bases";
            return pl_fail("%s needs an SAE: set [sae] path (a SAELens dir)", PL_BASE_KINDS[cfg->bases[b]].name);
        }
    for (int d = 0; d < cfg->n_dirs; d++) {
        const pl_direction_kind *k = &PL_DIRECTION_KINDS[cfg->dirs[d].kind];
        if (k->needs_sae && !cfg->sae_path) {
            *which = "directions";
            return pl_fail("%s needs an SAE: set [sae] path (a SAELens dir)", k->name);
        }
        if (k->ref_alpha == 0.0)
            continue;
        if (cfg->step_mode != PL_STEP_TO_TARGET) {
            *which = "step_mode";
            return pl_fail("%s needs step_mode = to_target: its alpha is a scale factor, with no fixed_norm or "
                           "absolute reading (sweep it in a run of its own)",
                           k->name);
        }
        if (grid_index(cfg, k->ref_alpha) < 0) {
            *which = "directions";
            return pl_fail("%s needs alpha = %g (its base) on the alpha grid: with alpha_max = %g and %d steps (%s) "
                           "it is not (e.g. alpha_max = 2 with an odd number of steps)",
                           k->name, k->ref_alpha, cfg->alpha_max, cfg->steps,
                           cfg->n_alphas ? "[perturb] alphas" : PL_ALPHA_GRID_NAMES[cfg->alpha_grid]);
        }
    }
    if (check_optimize(cfg, which) != PL_OK)
        return PL_ERR;
    for (int d = 0; d < cfg->n_dirs; d++)
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].direction == pl_fisher_direction && cfg->fisher_k && cfg->fisher_k < cfg->n_directions) {
            *which = "directions";
            return pl_fail("fisher: its samples are the top n_directions = %d eigenvectors, but [fisher] k = %d "
                           "computes %d (raise k, or leave it 0: then k = n_directions)",
                           cfg->n_directions, cfg->fisher_k, cfg->fisher_k);
        }
    for (int m = 0; m < cfg->n_metrics; m++)
        if ((PL_METRICS[cfg->metrics[m]].reads & PL_READS_SAE) && !cfg->sae_path) {
            *which = "metrics";
            return pl_fail("%s needs an SAE: set [sae] path (a SAELens dir)", PL_METRICS[cfg->metrics[m]].name);
        }
    return PL_OK;
}

int pl_unit_reference(const pl_experiment *ex, pl_unit_id id)
{
    double a = PL_DIRECTION_KINDS[ex->cfg->dirs[id.d].kind].ref_alpha;
    return a == 0.0 ? 0 : grid_index(ex->cfg, a);
}

int pl_unit_defined(const pl_experiment *ex, pl_unit_id id)
{
    const pl_direction_kind *k = &PL_DIRECTION_KINDS[ex->cfg->dirs[id.d].kind];
    return !k->defined || k->defined(ex, id.d, id);
}

/* ------------------------------------------------------------ the experiment */

int pl_experiment_setup_bases(pl_experiment *ex)
{
    for (int b = 0; b < ex->NB; b++)
        if (PL_BASE_KINDS[ex->cfg->bases[b]].needs_sae &&
            (pl_sae_recon_real_setup(ex) != PL_OK || pl_sae_giglemiani_setup(ex) != PL_OK))
            return pl_fail_prefix("%s", PL_BASE_KINDS[ex->cfg->bases[b]].name);
    return PL_OK;
}

int pl_experiment_setup(pl_experiment *ex)
{
    int C = ex->C;
    /* the isotropic kinds' per-dimension scale: tr Sigma / C, or in the centered basis
     * tr(P Sigma P) / (C - 1) = (tr Sigma - 1'Sigma 1 / C) / (C - 1), with 1'Sigma 1 = |L'1|^2 */
    double tr = ex->trace, ones = 0.0;
    if (ex->cfg->residual_basis == PL_BASIS_CENTERED) {
        for (int j = 0; j < C; j++) {
            double col = 0.0;
            for (int i = j; i < C; i++)
                col += ex->chol[(size_t)i * C + j];
            ones += col * col;
        }
        ex->iso_scale = C > 1 ? sqrt((tr - ones / C) / (C - 1)) : 0.0;
    } else {
        ex->iso_scale = sqrt(tr / C);
    }
    for (int d = 0; d < ex->ND; d++) {
        const pl_direction_kind *k = &PL_DIRECTION_KINDS[ex->cfg->dirs[d].kind];
        if (k->setup && k->setup(ex, d) != PL_OK)
            return pl_fail_prefix("%s", ex->cfg->dirs[d].label);
    }
    return PL_OK;
}

void pl_experiment_free(pl_experiment *ex)
{
    pl_sae_bases_free(ex->sae_bases);
    ex->sae_bases = NULL;
    free(ex->sae_recon_real);
    free(ex->sae_bag);
    free(ex->sae_cosine);
    ex->sae_recon_real = ex->sae_bag = ex->sae_cosine = NULL;
    for (int d = 0; d < PL_MAX_DIRECTIONS; d++) {
        pl_direction_data *dd = &ex->dir[d];
        if (d < ex->ND && ex->cfg && PL_DIRECTION_KINDS[ex->cfg->dirs[d].kind].release)
            PL_DIRECTION_KINDS[ex->cfg->dirs[d].kind].release(ex, d);
        for (int i = 0; i < dd->n_state; i++)
            free(dd->state[i].values);
        free(dd->rows);
        memset(dd, 0, sizeof *dd);
    }
}
