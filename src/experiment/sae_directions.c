/* The SAE direction kinds (rows of PL_DIRECTION_KINDS in directions.c):
 *
 *   sae_active          d = -act_f W_dec[f] (sign positive: +act_f W_dec[f]), f one of the features
 *                       active at the base above [sae] active_fraction of its largest activation
 *                       (LASR teren's SAEDecoderDirectionPerturbation)
 *   sae_feature_scale   the same feature's contribution c = act_f W_dec[f], scaled: x = base + (alpha - 1) c
 *   sae_reconstruction  target = SAE(base), d = SAE(base) - base (Gurnee's direction)
 *   sae_error_random    a random direction as long as SAE(base) - base (Gurnee's epsilon-random baseline)
 *   sae_recon_other     target = SAE(x_q), x_q the real activation of real_other's partner q (teren's
 *                       ReconRandomActivationPerturbation)
 *
 * With normalize_activations, a feature's contribution to the reconstruction in the input space is
 * act_f W_dec[f] times norm_out's gain, and that is the c used. Every base (real and synthetic) is
 * encoded once, at setup, on every rank, in fixed chunks of rows: each rank computes the same numbers.
 * The feature of unit (base b, prompt p, sample s) is drawn uniformly from the eligible ones (in
 * feature order) by below(n) of the stream (seed, p, PL_RNG_SAE_FEATURE, 2 s + base kind; for the
 * later base kinds k = sae_recon 2, sae_bag 3, sae_cosine 4: k 2^32 + s); a base
 * with no active feature has no feature (-1) and its sae_active / sae_feature_scale curves are NaN.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sae.h"

#define ENCODE_CHUNK 64 /* base rows per sgemm at setup: fixed, so the numbers never depend on a rank */

static int kind_swept(const pl_experiment *ex, const char *name)
{
    for (int d = 0; d < ex->ND; d++)
        if (!strcmp(PL_DIRECTION_KINDS[ex->cfg->dirs[d].kind].name, name))
            return 1;
    return 0;
}

static int first_feature_kind(const pl_experiment *ex)
{
    for (int d = 0; d < ex->ND; d++) {
        const char *name = PL_DIRECTION_KINDS[ex->cfg->dirs[d].kind].name;
        if (!strcmp(name, "sae_active") || !strcmp(name, "sae_feature_scale"))
            return d;
    }
    return -1;
}

/* The synthetic and sae_bag bases are drawn per sample; the others (real, sae_recon, sae_cosine) are one
 * per prompt. */
static int per_sample(const pl_experiment *ex, int b)
{
    return PL_BASE_KINDS[ex->cfg->bases[b]].per_sample;
}

static int base_row(const pl_sae_bases *sb, const pl_experiment *ex, pl_unit_id id)
{
    return sb->row0[id.b] + (per_sample(ex, id.b) ? id.p * ex->S + id.s : id.p);
}

/* The unit (sample 0 of the row, or its sample) whose base is ROW; *N_S: the samples sharing it. */
static pl_unit_id row_unit(const pl_sae_bases *sb, const pl_experiment *ex, int row, int *n_s)
{
    int b = 0;
    while (row >= sb->row0[b + 1])
        b++;
    int r = row - sb->row0[b], ps = per_sample(ex, b);
    *n_s = ps ? 1 : ex->S;
    return (pl_unit_id){ps ? r / ex->S : r, b, 0, ps ? r % ex->S : 0};
}

static size_t draw_index(const pl_experiment *ex, pl_unit_id id)
{
    return ((size_t)id.b * ex->P + id.p) * ex->S + id.s;
}

void pl_sae_bases_free(pl_sae_bases *sb)
{
    if (!sb)
        return;
    free(sb->x);
    free(sb->recon);
    free(sb->gain);
    free(sb->feature);
    free(sb->eligible);
    free(sb->feature_act);
    free(sb->active_bases);
    free(sb);
}

/* The c of the feature draw's stream: 2 s + kind for the real (0) and synthetic (1) bases, as it always
 * was; later kinds k take k 2^32 + s, which 2 s + kind never reaches (s < 2^31). */
static uint64_t feature_stream(int kind, int s)
{
    return kind < PL_BASE_SAE_RECON ? 2 * (uint64_t)s + (uint64_t)kind : ((uint64_t)kind << 32) + (uint64_t)s;
}

/* The feature of every (b, p, s) whose base is ROW, from the row's activations A[d_sae]. LIST: d_sae
 * ints of scratch. */
static void draw_features(pl_experiment *ex, pl_sae_bases *sb, int row, const float *a, int *list)
{
    const pl_sae *sae = ex->sae;
    float mx = 0.0f;
    for (int f = 0; f < sae->d_sae; f++)
        mx = a[f] > mx ? a[f] : mx;
    int n = 0;
    if (mx > 0.0f) /* teren: act / max > fraction */
        for (int f = 0; f < sae->d_sae; f++)
            if (a[f] > 0.0f && a[f] > ex->cfg->sae_active_fraction * mx)
                list[n++] = f;
    int n_s;
    pl_unit_id u = row_unit(sb, ex, row, &n_s);
    int b = u.b, p = u.p;
    for (int s = u.s; s < u.s + n_s; s++) {
        pl_unit_id id = {p, b, 0, s};
        size_t at = draw_index(ex, id);
        sb->eligible[at] = n;
        sb->feature[at] = -1;
        sb->feature_act[at] = 0.0f;
        if (!n) {
            sb->n_no_feature++;
            continue;
        }
        pl_rng r;
        pl_rng_init(&r, ex->cfg->seed, (uint64_t)p, PL_RNG_SAE_FEATURE, feature_stream(ex->cfg->bases[b], s));
        int f = list[pl_rng_below(&r, (uint64_t)n)];
        sb->feature[at] = f;
        sb->feature_act[at] = a[f];
    }
}

/* Encode every base of the sweep once: what every SAE kind swept needs. */
static int bases_setup(pl_experiment *ex)
{
    if (ex->sae_bases)
        return PL_OK;
    const pl_sae *sae = ex->sae;
    if (!sae)
        return pl_fail("the SAE kinds need [sae] path");
    int C = ex->C, P = ex->P, S = ex->S, F = sae->d_sae;
    int features = first_feature_kind(ex) >= 0;
    int recon = kind_swept(ex, "sae_reconstruction") || kind_swept(ex, "sae_error_random");
    pl_sae_bases *sb = pl_calloc(1, sizeof *sb, "SAE bases");
    if (!sb)
        return PL_ERR;
    ex->sae_bases = sb;
    for (int b = 0; b < ex->NB; b++)
        sb->row0[b + 1] = sb->row0[b] + (per_sample(ex, b) ? P * S : P);
    sb->n_rows = sb->row0[ex->NB];
    size_t draws = (size_t)ex->NB * P * S;
    sb->x = pl_malloc(sizeof(float) * (size_t)sb->n_rows * C, "SAE bases");
    sb->gain = pl_malloc(sizeof(float) * (size_t)sb->n_rows, "SAE gains");
    sb->active_bases = pl_calloc((size_t)F, sizeof(int), "SAE feature counts");
    float *acts = pl_malloc(sizeof(float) * (size_t)ENCODE_CHUNK * F, "SAE activations");
    float *shift = pl_malloc(sizeof(float) * ENCODE_CHUNK, "SAE shifts");
    void *scratch = pl_malloc(pl_sae_encode_scratch(sae, ENCODE_CHUNK), "SAE scratch");
    int *list = pl_malloc(sizeof(int) * (size_t)F, "SAE feature list");
    double *v = pl_malloc(sizeof(double) * C, "SAE base");
    int ok = sb->x && sb->gain && sb->active_bases && acts && shift && scratch && list && v;
    if (ok && recon)
        ok = (sb->recon = pl_malloc(sizeof(float) * (size_t)sb->n_rows * C, "SAE reconstructions")) != NULL;
    if (ok && features) {
        sb->feature = pl_malloc(sizeof(int) * draws, "SAE features");
        sb->eligible = pl_malloc(sizeof(int) * draws, "SAE features");
        sb->feature_act = pl_malloc(sizeof(float) * draws, "SAE features");
        ok = sb->feature && sb->eligible && sb->feature_act;
    }
    /* the bases as the model sees them (float), each made as a unit makes it */
    for (int row = 0; ok && row < sb->n_rows; row++) {
        int n_s;
        pl_unit_id id = row_unit(sb, ex, row, &n_s);
        PL_BASE_KINDS[ex->cfg->bases[id.b]].make(ex, id, v);
        for (int c = 0; c < C; c++)
            sb->x[(size_t)row * C + c] = (float)v[c];
    }
    for (int r0 = 0; ok && r0 < sb->n_rows; r0 += ENCODE_CHUNK) {
        int n = sb->n_rows - r0 < ENCODE_CHUNK ? sb->n_rows - r0 : ENCODE_CHUNK;
        pl_sae_encode(sae, sb->x + (size_t)r0 * C, n, scratch, acts, sb->gain + r0, shift);
        if (recon)
            pl_sae_decode(sae, acts, n, sb->gain + r0, shift, sb->recon + (size_t)r0 * C);
        for (int i = 0; i < n; i++) {
            const float *a = acts + (size_t)i * F;
            for (int f = 0; f < F; f++)
                sb->active_bases[f] += a[f] > 0.0f;
            if (features)
                draw_features(ex, sb, r0 + i, a, list);
        }
    }
    for (int f = 0; ok && f < F; f++)
        sb->n_never_active += sb->active_bases[f] == 0;
    free(acts), free(shift), free(scratch), free(list), free(v);
    free(sb->x);
    sb->x = NULL;
    return ok ? PL_OK : PL_ERR;
}

/* sae_active and sae_feature_scale: the first of them to be swept records the draws. */
int pl_sae_active_setup(pl_experiment *ex, int d)
{
    if (bases_setup(ex) != PL_OK)
        return PL_ERR;
    if (first_feature_kind(ex) != d)
        return PL_OK; /* the same draws, recorded once */
    const pl_sae_bases *sb = ex->sae_bases;
    size_t draws = (size_t)ex->NB * ex->P * ex->S;
    int *feature = pl_direction_add_state(
        ex, d, "feature",
        "SAE feature of sae_active and sae_feature_scale (-1: no feature active at the base: NaN curve)", 1, NULL, 1);
    int *eligible = pl_direction_add_state(
        ex, d, "sae_eligible_features",
        "SAE features active above active_fraction of the base's largest activation: the feature was drawn from "
        "these",
        1, NULL, 1);
    if (!feature || !eligible)
        return PL_ERR;
    memcpy(feature, sb->feature, sizeof(int) * draws);
    memcpy(eligible, sb->eligible, sizeof(int) * draws);
    return PL_OK;
}

int pl_sae_reconstruction_setup(pl_experiment *ex, int d)
{
    (void)d;
    return bases_setup(ex);
}

int pl_sae_feature_defined(const pl_experiment *ex, int d, pl_unit_id id)
{
    (void)d;
    return ex->sae_bases->feature[draw_index(ex, id)] >= 0;
}

/* c = act_f W_dec[f] times norm_out's gain, times SIGN; zero without a feature. */
static void feature_contribution(const pl_experiment *ex, pl_unit_id id, double sign, double *dir)
{
    const pl_sae_bases *sb = ex->sae_bases;
    size_t at = draw_index(ex, id);
    int f = sb->feature[at], C = ex->C;
    if (f < 0) {
        memset(dir, 0, sizeof(double) * C);
        return;
    }
    double a = sign * (double)sb->feature_act[at] * sb->gain[base_row(sb, ex, id)];
    const float *w = ex->sae->W_dec + (size_t)f * C;
    for (int c = 0; c < C; c++)
        dir[c] = a * w[c];
}

void pl_sae_active(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d, (void)base;
    feature_contribution(ex, id, ex->cfg->sae_sign == PL_SAE_SIGN_POSITIVE ? 1.0 : -1.0, dir);
}

void pl_sae_feature_scale(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d, (void)base;
    feature_contribution(ex, id, 1.0, dir);
}

void pl_sae_reconstruction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    (void)d;
    const float *t = ex->sae_bases->recon + (size_t)base_row(ex->sae_bases, ex, id) * ex->C;
    for (int c = 0; c < ex->C; c++)
        dir[c] = (double)t[c] - base[c];
}

static double norm2(const double *v, int C)
{
    double s = 0.0;
    for (int c = 0; c < C; c++)
        s += v[c] * v[c];
    return sqrt(s);
}

/* z ~ N(0, I) from the stream (seed, p, PL_RNG_SAE_ERROR, s), as long as the reconstruction error
 * SAE(base) - base. Both are centred first when the steps centre d (center_direction, or the
 * centred basis), so the two stay equally long after that. */
void pl_sae_error_random(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    int C = ex->C, centre = ex->cfg->center_direction || ex->cfg->residual_basis == PL_BASIS_CENTERED;
    double *err = dir + C; /* dir has room for 2 C doubles */
    pl_sae_reconstruction(ex, d, id, base, err);
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)id.p, PL_RNG_SAE_ERROR, (uint64_t)id.s);
    for (int c = 0; c < C; c++)
        dir[c] = pl_rng_gaussian(&r);
    if (centre) {
        pl_center(err, C);
        pl_center(dir, C);
    }
    double length = norm2(err, C), nz = norm2(dir, C), k = nz > 0.0 ? length / nz : 0.0;
    for (int c = 0; c < C; c++)
        dir[c] *= k;
}

/* SAE(x) of every prompt's real activation, in fixed chunks of ENCODE_CHUNK rows (the same numbers on
 * every rank): the sae_recon base and sae_recon_other's targets. */
int pl_sae_recon_real_setup(pl_experiment *ex)
{
    if (ex->sae_recon_real)
        return PL_OK;
    const pl_sae *sae = ex->sae;
    if (!sae)
        return pl_fail("needs [sae] path");
    int C = ex->C, P = ex->P;
    float *out = pl_malloc(sizeof(float) * (size_t)P * C, "SAE reconstructions of the real activations");
    float *acts = pl_malloc(sizeof(float) * (size_t)ENCODE_CHUNK * sae->d_sae, "SAE activations");
    float *gain = pl_malloc(sizeof(float) * 2 * ENCODE_CHUNK, "SAE gains"), *shift = gain ? gain + ENCODE_CHUNK : NULL;
    void *scratch = pl_malloc(pl_sae_encode_scratch(sae, ENCODE_CHUNK), "SAE scratch");
    int ok = out && acts && gain && scratch;
    for (int r0 = 0; ok && r0 < P; r0 += ENCODE_CHUNK) {
        int n = P - r0 < ENCODE_CHUNK ? P - r0 : ENCODE_CHUNK;
        pl_sae_encode(sae, ex->real_act + (size_t)r0 * C, n, scratch, acts, gain, shift);
        pl_sae_decode(sae, acts, n, gain, shift, out + (size_t)r0 * C);
    }
    free(acts), free(gain), free(scratch);
    if (!ok) {
        free(out);
        return PL_ERR;
    }
    ex->sae_recon_real = out;
    return PL_OK;
}

/* sae_recon_other: target = SAE(x_q), q the unit's partner, drawn as real_other draws it (the same
 * stream, so the same partner as real_other's for the same unit: the two kinds differ by the SAE
 * alone). teren's ReconRandomActivationPerturbation (branch draft-paper-experiments, commit 3a82827,
 * notebooks/baseline_recon_experiment.py): target = sae.decode(sae.encode(get_random_activation(...))),
 * d = target - resid_acts; theirs draws a fresh prompt of the dataset, plateau another sweep prompt. */
int pl_sae_recon_other_setup(pl_experiment *ex, int d)
{
    if (!pl_partner_setup(ex, d, "sae_recon_partner", "prompt whose SAE reconstruction is the sae_recon_other target",
                          "sae_recon_partner_redraws",
                          "sae_recon_other partners redrawn because their activation equalled the base's"))
        return PL_ERR;
    return pl_sae_recon_real_setup(ex);
}

void pl_sae_recon_other(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir)
{
    int q = ex->dir[d].state[0].values[(size_t)id.p * ex->S + id.s];
    const float *t = ex->sae_recon_real + (size_t)q * ex->C;
    for (int c = 0; c < ex->C; c++)
        dir[c] = (double)t[c] - base[c];
}

void pl_experiment_notes(const pl_experiment *ex, FILE *out)
{
    const pl_sae_bases *sb = ex->sae_bases;
    if (!sb)
        return;
    fprintf(out, "plateau: SAE %s: %d of %d features active at no base of the sweep (sae_feature_active_bases)\n",
            ex->sae->dir, sb->n_never_active, ex->sae->d_sae);
    if (sb->feature && sb->n_no_feature)
        fprintf(out,
                "plateau: SAE %s: %d of %lld (base, prompt, sample) draws have no active feature at their base: "
                "their sae_active and sae_feature_scale curves are NaN (feature = -1)\n",
                ex->sae->dir, sb->n_no_feature, (long long)ex->NB * ex->P * ex->S);
}
