/* Step modes and the residual basis: how a unit's base and direction become its step vectors.
 *
 *   to_target   x_k = base + alpha_k d                 (d unscaled: for target kinds d = t - base)
 *   fixed_norm  x_k = base + alpha_k s |r| d / |d|     (teren's scan: alpha = 1 moves by |base|)
 *   absolute    x_k = base + alpha_k d / |d|           (alpha in activation units)
 *   arc         x_k = mu + |base - mu| (l_k - mu) / |l_k - mu|,  l_k = base + alpha_k d
 *               (Janiak et al.'s norm-preserving interpolation, jettjaniak/reometry
 *               reometry/utils.py arc_interpolation: the straight path to_target takes, pushed out
 *               to the base's distance from the mean mu of real activations; x_0 = base exactly)
 *
 * In fixed_norm s is [perturb] norm_scale (1; teren's draft-paper-experiments branch divides by 3)
 * and r the step reference: the base itself (own, teren's scan) or, with step_reference = real, the
 * prompt's real activation, so that a synthetic base is moved the same distance as its real pair.
 *
 * A kind whose base sits at alpha = ref_alpha != 0 (sae_feature_scale: alpha scales a feature's
 * contribution d) steps x_k = base + (alpha_k - ref_alpha) d, to_target only.
 *
 * d is centred first (d -= mean(d), teren's scan) when [perturb] center_direction is set or the
 * basis is centered; norms are taken in the sweep's basis. A zero direction leaves every step at the
 * base (a flat curve, whose normalised scores are NaN).
 */
#include <math.h>
#include <stdlib.h>

#include "plateau/error.h"
#include "experiment.h"

/* The names [perturb] step_mode and residual_basis take (config.c parses them; the C library too). */
const char *const PL_STEP_MODE_NAMES[PL_N_STEP_MODES] = {[PL_STEP_TO_TARGET] = "to_target", [PL_STEP_FIXED_NORM] = "fixed_norm",
                                          [PL_STEP_ABSOLUTE] = "absolute", [PL_STEP_ARC] = "arc"};
const char *const PL_STEP_REFERENCE_NAMES[PL_N_STEP_REFERENCES] = {[PL_STEP_REF_OWN] = "own", [PL_STEP_REF_REAL] = "real"};
const char *const PL_RESIDUAL_BASIS_NAMES[PL_N_RESIDUAL_BASES] = {[PL_BASIS_RAW] = "raw", [PL_BASIS_CENTERED] = "centered"};
const char *const PL_ALPHA_GRID_NAMES[PL_N_ALPHA_GRIDS] = {[PL_GRID_LINEAR] = "linear", [PL_GRID_LOG] = "log"};

void pl_center(double *v, int C)
{
    double mean = 0.0;
    for (int c = 0; c < C; c++)
        mean += v[c];
    mean /= C;
    for (int c = 0; c < C; c++)
        v[c] -= mean;
}

void pl_center_float(float *v, int C)
{
    double mean = 0.0;
    for (int c = 0; c < C; c++)
        mean += v[c];
    mean /= C;
    for (int c = 0; c < C; c++)
        v[c] = (float)(v[c] - mean);
}

static double norm2(const double *v, int C)
{
    double s = 0.0;
    for (int c = 0; c < C; c++)
        s += v[c] * v[c];
    return sqrt(s);
}

/* The unit's base and direction d as its steps use them (d centred when they centre it). */
static void unit_vectors(const pl_experiment *ex, pl_unit_id id, double *base, double *dir)
{
    const pl_sweep_config *cfg = ex->cfg;
    PL_BASE_KINDS[cfg->bases[id.b]].make(ex, id, base);
    PL_DIRECTION_KINDS[cfg->dirs[id.d].kind].direction(ex, id.d, id, base, dir);
    if (cfg->center_direction || cfg->residual_basis == PL_BASIS_CENTERED)
        pl_center(dir, ex->C);
}

int pl_unit_vectors(const pl_experiment *ex, pl_unit_id id, double *base, double *dir)
{
    unit_vectors(ex, id, base, dir);
    return PL_OK;
}

int pl_unit_norms(const pl_experiment *ex, pl_unit_id id, double *base_norm, double *direction_norm)
{
    int C = ex->C;
    double *base = pl_malloc(sizeof(double) * 3 * (size_t)C, "unit vectors"), *dir = base + C; /* dir: 2 C */
    if (!base)
        return PL_ERR;
    unit_vectors(ex, id, base, dir);
    *base_norm = norm2(base, C);
    *direction_norm = norm2(dir, C);
    free(base);
    return PL_OK;
}

/* fixed_norm's step length at alpha = 1: norm_scale |r|, r the base or the prompt's real activation.
 * norm_scale = 1 multiplies by exactly 1, so today's steps are bitwise unchanged. */
double pl_fixed_norm_length(const pl_experiment *ex, pl_unit_id id, const double *base)
{
    const pl_sweep_config *cfg = ex->cfg;
    double n;
    if (cfg->step_reference == PL_STEP_REF_REAL) {
        const float *x = ex->real_act + (size_t)id.p * ex->C; /* in the sweep's basis already */
        double s = 0.0;
        for (int c = 0; c < ex->C; c++)
            s += (double)x[c] * x[c];
        n = sqrt(s);
    } else {
        n = norm2(base, ex->C);
    }
    return cfg->norm_scale == 1.0 ? n : cfg->norm_scale * n;
}

/* arc's steps X[steps, C] from BASE and d (see the top). MU is the fit's mean in the sweep's basis.
 * A point l_k that falls on mu (zero length: no direction to push along) stays at l_k. */
static void arc_steps(const pl_experiment *ex, const double *base, const double *dir, const double *mu, float *X)
{
    int C = ex->C;
    double r = 0.0;
    for (int c = 0; c < C; c++)
        r += (base[c] - mu[c]) * (base[c] - mu[c]);
    r = sqrt(r);
    for (int k = 0; k < ex->steps; k++) {
        float *x = X + (size_t)k * C;
        double a = ex->alpha[k], n = 0.0;
        if (a == 0.0) { /* the clean row: the base bit for bit */
            for (int c = 0; c < C; c++)
                x[c] = (float)base[c];
            continue;
        }
        for (int c = 0; c < C; c++) {
            double l = base[c] + a * dir[c] - mu[c];
            n += l * l;
        }
        double s = n > 0.0 ? r / sqrt(n) : 1.0;
        for (int c = 0; c < C; c++)
            x[c] = (float)(mu[c] + s * (base[c] + a * dir[c] - mu[c]));
    }
}

/* The factor the step mode multiplies d by at alpha = 1: 1 (to_target), else the step length over |d|
 * (0 for a zero d: every step at the base). */
static double step_scale(const pl_experiment *ex, pl_unit_id id, const double *base, const double *dir)
{
    const pl_sweep_config *cfg = ex->cfg;
    double scale = 1.0;
    if (cfg->step_mode != PL_STEP_TO_TARGET) {
        double nd = norm2(dir, ex->C);
        double length = cfg->step_mode == PL_STEP_FIXED_NORM ? pl_fixed_norm_length(ex, id, base) : 1.0;
        scale = nd > 0.0 ? length / nd : 0.0;
    }
    return scale;
}

int pl_unit_steps_of(const pl_experiment *ex, pl_unit_id id, float *X)
{
    const pl_sweep_config *cfg = ex->cfg;
    int C = ex->C;
    double *base = pl_malloc(sizeof(double) * 3 * (size_t)C, "unit vectors"), *dir = base + C; /* dir: 2 C */
    if (!base)
        return PL_ERR;
    const pl_direction_kind *kind = &PL_DIRECTION_KINDS[cfg->dirs[id.d].kind];
    unit_vectors(ex, id, base, dir);
    if (cfg->step_mode == PL_STEP_ARC) {
        double *mu = dir + C; /* dir's scratch half */
        for (int c = 0; c < C; c++)
            mu[c] = ex->mu[c];
        if (cfg->residual_basis == PL_BASIS_CENTERED) /* the mean of the projected activations */
            pl_center(mu, C);
        arc_steps(ex, base, dir, mu, X);
        free(base);
        return PL_OK;
    }
    double scale = step_scale(ex, id, base, dir);
    for (int k = 0; k < ex->steps; k++) {
        double a = (ex->alpha[k] - kind->ref_alpha) * scale; /* ref_alpha: 0 but for sae_feature_scale */
        float *x = X + (size_t)k * C;
        for (int c = 0; c < C; c++)
            x[c] = (float)(base[c] + a * dir[c]);
    }
    free(base);
    return PL_OK;
}

int pl_unit_step_vector(const pl_experiment *ex, pl_unit_id id, double *base, double *step)
{
    const pl_sweep_config *cfg = ex->cfg;
    int C = ex->C;
    unit_vectors(ex, id, base, step);
    if (cfg->step_mode != PL_STEP_ARC) {
        double scale = step_scale(ex, id, base, step);
        for (int c = 0; c < C; c++)
            step[c] *= scale;
        return PL_OK;
    }
    /* d/dalpha of mu + |b - mu| (l - mu) / |l - mu|, l = b + alpha d, at alpha = 0: d - u (u . d) */
    double *u = pl_malloc(sizeof(double) * (size_t)C, "arc tangent");
    if (!u)
        return PL_ERR;
    double r = 0.0, ud = 0.0;
    for (int c = 0; c < C; c++)
        u[c] = base[c] - ex->mu[c];
    if (cfg->residual_basis == PL_BASIS_CENTERED) { /* mu projected, as pl_unit_steps_of's */
        double m = 0.0;
        for (int c = 0; c < C; c++)
            m += ex->mu[c];
        for (int c = 0; c < C; c++)
            u[c] += m / C;
    }
    for (int c = 0; c < C; c++)
        r += u[c] * u[c];
    r = sqrt(r);
    for (int c = 0; c < C && r > 0.0; c++)
        ud += u[c] / r * step[c];
    for (int c = 0; c < C && r > 0.0; c++)
        step[c] -= u[c] / r * ud;
    free(u);
    return PL_OK;
}

/* A 2-D slice ([perturb] slice; Janiak et al., jettjaniak/reometry reometry/utils.py
 * interpolate_2d_slice): v1 and v2 are the steps at alpha = 1 of the unit's base along directions 0 and
 * 1 (each kind's d, centred and scaled by the step mode exactly as pl_unit_steps_of does), and v2 loses
 * its component along v1 (reometry's c - x, x = a + t (b - a) the projection of c onto the line
 * through a and b: the same Gram-Schmidt step, not renormalised, so beta's unit is v2's part
 * orthogonal to v1). Row i K + j is base + alpha_i v1 + alpha_j v2 (K = ex->steps, the alpha grid on
 * both axes). The alpha term is pl_unit_steps_of's (alpha_i s1) d1, not alpha_i (s1 d1), and beta = 0
 * adds nothing: row i K (beta = 0) is direction 0's 1-D step i bit for bit. */
int pl_unit_slice_of(const pl_experiment *ex, pl_unit_id id, float *X)
{
    int C = ex->C, K = ex->steps;
    double *base = pl_malloc(sizeof(double) * 7 * (size_t)C, "slice vectors");
    if (!base)
        return PL_ERR;
    double *d1 = base + C, *v2 = d1 + 2 * (size_t)C, *other = v2 + 2 * (size_t)C, *v1 = other + C; /* d1, v2: 2 C */
    pl_unit_id i1 = id, i2 = id;
    i1.d = 0, i2.d = 1;
    unit_vectors(ex, i1, base, d1);
    unit_vectors(ex, i2, other, v2); /* the same base: a base depends on (prompt, base kind, sample) only */
    double s1 = step_scale(ex, i1, base, d1), s2 = step_scale(ex, i2, base, v2), dot = 0.0, nn = 0.0;
    for (int c = 0; c < C; c++) {
        v1[c] = d1[c] * s1, v2[c] *= s2;
        dot += v1[c] * v2[c], nn += v1[c] * v1[c];
    }
    if (nn > 0.0) /* a zero v1 leaves v2 as it is */
        for (int c = 0; c < C; c++)
            v2[c] -= dot / nn * v1[c];
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            float *x = X + ((size_t)i * K + j) * C;
            double a = ex->alpha[i] * s1, b = ex->alpha[j];
            for (int c = 0; c < C; c++)
                x[c] = b == 0.0 ? (float)(base[c] + a * d1[c]) : (float)(base[c] + a * d1[c] + b * v2[c]);
        }
    free(base);
    return PL_OK;
}
