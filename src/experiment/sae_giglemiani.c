/* The bases Giglemiani et al. build from SAE latents (rows of PL_BASE_KINDS in bases.c), following
 * their code: jettjaniak/teren, branch explorations (commit 0381673), notebooks/experiment_plateaus.ipynb,
 * cell 12 (the same functions are in notebooks/replications.ipynb). For the prompt's real activation x
 * with SAE code a = encode(x) (gain and shift: norm_out's, as decode undoes them), and the feature
 * densities rho = 10^sparsity of the SAE dir's sparsity.safetensors (their feature_sparsities =
 * 10 ** sparsities from SAELens's get_gpt2_res_jb_saes):
 *
 *   sae_bag     synthetic_perturbation_bag_of_features(top_k = 10): for each feature f active in a
 *               (index order, the list taken before the loop), act = a[f] as it stands now, the features
 *               sorted by |rho - rho[f]| (f left out), one of the first 10 drawn uniformly (theirs
 *               random.choice; here below(n) of the stream (seed, prompt, PL_RNG_SAE_BAG, sample)),
 *               then a[f] = 0 and a[g] = act, in place; the base is decode(a). Their selected_features
 *               set holds tensors, hashed by identity, so its exclusion never fires: nor does it here.
 *   sae_cosine  synthetic_perturbation_homeschooled_v2: t the largest activation; among the 100
 *               features of density nearest rho[t] (t left out), c the one whose decoder cosine with t
 *               is nearest mean_sim_base_target = 0.42; for each active f (index order) the feature g not
 *               yet chosen whose cosine with c is nearest cos(t, f) gets a[f]; the base is decode of that
 *               code (the rest 0).
 *
 * Sorts are stable here (ties to the lower feature index; torch.sort's order among ties is unspecified)
 * and distances are computed in double. Every prompt is encoded in fixed chunks of ENCODE_CHUNK rows and
 * each base decoded one row at a time, on every rank: the same numbers everywhere.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "sae.h"

#define ENCODE_CHUNK 64
#define BAG_TOP_K 10          /* synthetic_perturbation_bag_of_features(top_k=10) */
#define COSINE_CANDIDATES 100 /* spars_scores.argsort()[:100] */
#define COSINE_TARGET 0.42    /* mean_sim_base_target */

/* rho[d_sae] = 10^sparsity of DIR/sparsity.safetensors's tensor `sparsity` (log10 densities). */
static double *load_densities(const pl_sae *sae)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sparsity.safetensors", sae->dir);
    st_file f;
    if (st_open(&f, path, NULL) != PL_OK) {
        pl_fail_prefix("the feature densities Giglemiani's bases sort by (SAELens's sparsity.safetensors beside the "
                       "weights)");
        return NULL;
    }
    double *rho = NULL;
    const st_tensor *t = st_find(&f, "sparsity");
    if (!t)
        pl_fail("%s: tensor 'sparsity' (log10 feature densities) is missing", path);
    else if (t->ndim != 1 || t->shape[0] != sae->d_sae || (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16))
        pl_fail("%s: tensor 'sparsity' must be F32, F16 or BF16 of shape [%d] (d_sae)", path, sae->d_sae);
    else if ((rho = pl_malloc(sizeof(double) * (size_t)sae->d_sae, "feature densities")) != NULL) {
        float *v = pl_malloc(sizeof(float) * (size_t)sae->d_sae, "feature densities");
        if (v) {
            st_to_f32(t->dtype, t->data, (size_t)sae->d_sae, v);
            int bad = st_check_finite(path, "sparsity", v, (size_t)sae->d_sae) != PL_OK;
            for (int i = 0; i < sae->d_sae; i++)
                rho[i] = pow(10.0, (double)v[i]);
            free(v);
            if (bad) {
                free(rho);
                rho = NULL;
            }
        } else {
            free(rho);
            rho = NULL;
        }
    }
    st_close(&f);
    return rho;
}

/* The N features (N <= d_sae - 1) nearest rho[f] in density, f left out, in order (stable). */
static int nearest_densities(const double *rho, int F, int f, int n, int *out)
{
    int k = 0;
    for (int g = 0; g < F; g++) {
        if (g == f)
            continue;
        double dg = fabs(rho[g] - rho[f]);
        if (k == n && !(dg < fabs(rho[out[n - 1]] - rho[f])))
            continue;
        int at = k < n ? k++ : n - 1; /* insertion: strictly nearer moves ahead, ties stay behind */
        while (at > 0 && dg < fabs(rho[out[at - 1]] - rho[f])) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = g;
    }
    return k;
}

/* One bag of features from code A[F] (modified in place): the swaps, in index order of the active list. */
static void bag_of_features(const pl_experiment *ex, const double *rho, float *a, int p, int s, int *active, int *near)
{
    int F = ex->sae->d_sae, n_active = 0;
    for (int f = 0; f < F; f++)
        if (a[f] != 0.0f) /* feature_acts.nonzero() */
            active[n_active++] = f;
    pl_rng r;
    pl_rng_init(&r, ex->cfg->seed, (uint64_t)p, PL_RNG_SAE_BAG, (uint64_t)s);
    for (int i = 0; i < n_active; i++) {
        int f = active[i], n = nearest_densities(rho, F, f, BAG_TOP_K, near);
        if (!n)
            break; /* a one-feature SAE: nothing to swap with */
        float act = a[f];
        int g = near[pl_rng_below(&r, (uint64_t)n)];
        a[f] = 0.0f;
        a[g] = act;
    }
}

static double cosine(const float *u, const float *v, double nu, double nv, int C)
{
    double dot = 0.0;
    for (int c = 0; c < C; c++)
        dot += (double)u[c] * v[c];
    return dot / (fmax(nu, 1e-8) * fmax(nv, 1e-8)); /* F.cosine_similarity's eps */
}

/* The cosine-matched code OUT[F] of code A[F]; NORM[F] the decoder rows' norms; WORK: F doubles + F ints. */
static void cosine_matched(const pl_sae *sae, const double *rho, const double *norm, const float *a, float *out,
                           double *sims, int *chosen, int *cand)
{
    int F = sae->d_sae, C = sae->d_in, t = 0;
    memset(out, 0, sizeof(float) * (size_t)F);
    for (int f = 1; f < F; f++)
        if (a[f] >= a[t]) /* argsort()[-1]: the last of an ascending stable sort among ties */
            t = f;
    int n = nearest_densities(rho, F, t, COSINE_CANDIDATES, cand);
    if (n < COSINE_CANDIDATES)
        cand[n++] = t; /* their spars_scores[t] = inf sorts t last: a candidate when d_sae <= 100 */
    const float *W = sae->W_dec;
    int c = cand[0];
    double best = INFINITY;
    for (int k = 0; k < n; k++) {
        double dev = fabs(cosine(W + (size_t)t * C, W + (size_t)cand[k] * C, norm[t], norm[cand[k]], C) - COSINE_TARGET);
        if (dev < best)
            best = dev, c = cand[k];
    }
    for (int g = 0; g < F; g++) {
        sims[g] = cosine(W + (size_t)c * C, W + (size_t)g * C, norm[c], norm[g], C);
        chosen[g] = 0;
    }
    for (int f = 0; f < F; f++) {
        if (a[f] == 0.0f)
            continue;
        double want = cosine(W + (size_t)t * C, W + (size_t)f * C, norm[t], norm[f], C);
        int g = -1;
        for (int h = 0; h < F; h++)
            if (!chosen[h] && (g < 0 || fabs(sims[h] - want) < fabs(sims[g] - want)))
                g = h;
        if (g < 0)
            break; /* more active features than features: cannot happen for an SAE's code */
        chosen[g] = 1;
        out[g] = a[f];
    }
}

static int base_swept(const pl_experiment *ex, int kind)
{
    for (int b = 0; b < ex->NB; b++)
        if (ex->cfg->bases[b] == kind)
            return 1;
    return 0;
}

/* Both kinds for the rows r0 .. r0 + n - 1 from their codes ACTS[n, F]. */
static void build_chunk(pl_experiment *ex, const double *rho, const double *norm, int r0, int n, const float *acts,
                        const float *gain, const float *shift, float *code, double *sims, int *iw)
{
    const pl_sae *sae = ex->sae;
    int F = sae->d_sae, C = ex->C, S = ex->S;
    for (int i = 0; i < n; i++) {
        int p = r0 + i;
        const float *a = acts + (size_t)i * F;
        if (ex->sae_bag)
            for (int s = 0; s < S; s++) {
                memcpy(code, a, sizeof(float) * (size_t)F);
                bag_of_features(ex, rho, code, p, s, iw, iw + F);
                pl_sae_decode(sae, code, 1, gain + i, shift + i, ex->sae_bag + ((size_t)p * S + s) * C);
            }
        if (ex->sae_cosine) {
            cosine_matched(sae, rho, norm, a, code, sims, iw, iw + F);
            pl_sae_decode(sae, code, 1, gain + i, shift + i, ex->sae_cosine + (size_t)p * C);
        }
    }
}

int pl_sae_giglemiani_setup(pl_experiment *ex)
{
    int bag = base_swept(ex, PL_BASE_SAE_BAG) && !ex->sae_bag, cos = base_swept(ex, PL_BASE_SAE_COSINE) && !ex->sae_cosine;
    if (!bag && !cos)
        return PL_OK;
    const pl_sae *sae = ex->sae;
    int F = sae->d_sae, C = ex->C, P = ex->P, S = ex->S;
    double *rho = load_densities(sae);
    if (!rho)
        return PL_ERR;
    double *norm = pl_malloc(sizeof(double) * 2 * (size_t)F, "SAE decoder norms"), *sims = norm ? norm + F : NULL;
    float *acts = pl_malloc(sizeof(float) * ((size_t)ENCODE_CHUNK + 1) * F, "SAE activations");
    float *code = acts ? acts + (size_t)ENCODE_CHUNK * F : NULL;
    float *gain = pl_malloc(sizeof(float) * 2 * ENCODE_CHUNK, "SAE gains"), *shift = gain ? gain + ENCODE_CHUNK : NULL;
    int *iw = pl_malloc(sizeof(int) * ((size_t)F + COSINE_CANDIDATES + BAG_TOP_K), "SAE feature lists");
    void *scratch = pl_malloc(pl_sae_encode_scratch(sae, ENCODE_CHUNK), "SAE scratch");
    if (bag)
        ex->sae_bag = pl_malloc(sizeof(float) * (size_t)P * S * C, "sae_bag bases");
    if (cos)
        ex->sae_cosine = pl_malloc(sizeof(float) * (size_t)P * C, "sae_cosine bases");
    int ok = norm && acts && gain && iw && scratch && (!bag || ex->sae_bag) && (!cos || ex->sae_cosine);
    for (int f = 0; ok && f < F; f++) {
        double s2 = 0.0;
        for (int c = 0; c < C; c++)
            s2 += (double)sae->W_dec[(size_t)f * C + c] * sae->W_dec[(size_t)f * C + c];
        norm[f] = sqrt(s2);
    }
    for (int r0 = 0; ok && r0 < P; r0 += ENCODE_CHUNK) {
        int n = P - r0 < ENCODE_CHUNK ? P - r0 : ENCODE_CHUNK;
        pl_sae_encode(sae, ex->real_act + (size_t)r0 * C, n, scratch, acts, gain, shift);
        build_chunk(ex, rho, norm, r0, n, acts, gain, shift, code, sims, iw);
    }
    free(rho), free(norm), free(acts), free(gain), free(iw), free(scratch);
    return ok ? PL_OK : PL_ERR;
}
