/* The finished result as the plain pl_result io writes (plateau/result.h): the sweep's science turned
 * into numbers and words here (what alpha means, the curve the scores see, the basis of mu and
 * Sigma, the units' norms), so the writer needs nothing of the sweep. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

/* What alpha means in the step mode used, and what the direction kinds whose alpha means something
 * else (sae_feature_scale) add: the alpha coordinate's long_name (into E->alpha_text) and units. */
static void alpha_meaning(const pl_sweep_config *cfg, pl_result_export *e)
{
    const char *long_name;
    e->r.alpha_units = "1";
    switch (cfg->step_mode) {
    case PL_STEP_FIXED_NORM:
        long_name = cfg->step_reference == PL_STEP_REF_REAL
                        ? (cfg->norm_scale == 1.0 ? "step length in multiples of the real activation's norm: x = base + "
                                                    "alpha |real| d / |d|"
                                                  : "step length in multiples of norm_scale times the real activation's "
                                                    "norm: x = base + alpha norm_scale |real| d / |d|")
                        : (cfg->norm_scale == 1.0 ? "step length in multiples of the base's norm: x = base + alpha |base| "
                                                    "d / |d|"
                                                  : "step length in multiples of norm_scale times the base's norm: x = "
                                                    "base + alpha norm_scale |base| d / |d|");
        break;
    case PL_STEP_ARC:
        long_name = "fraction of the way along the arc around mu: x = mu + |base - mu| (l - mu) / |l - mu|, "
                    "l = base + alpha d";
        break;
    case PL_STEP_ABSOLUTE:
        long_name = "step length in activation units: x = base + alpha d / |d|";
        e->r.alpha_units = "residual stream units";
        break;
    default:
        long_name = "step fraction of the direction: x = base + alpha d (d = target - base for target kinds)";
    }
    char *t = e->alpha_text;
    size_t size = sizeof e->alpha_text;
    snprintf(t, size, "%s", long_name);
    for (int d = 0; d < cfg->n_dirs; d++)
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].alpha_meaning)
            snprintf(t + strlen(t), size - strlen(t), "; %s", PL_DIRECTION_KINDS[cfg->dirs[d].kind].alpha_meaning);
    e->r.alpha_long_name = t;
    e->r.step_mode = PL_STEP_MODE_NAMES[cfg->step_mode];
}

/* mu and Sigma of the output's basis: projected onto the mean-zero subspace when centered. */
static int basis_fit(const pl_sweep *sw, double *mu, double *sigma)
{
    int C = sw->C;
    memcpy(mu, sw->mu, sizeof(double) * C);
    memcpy(sigma, sw->sigma, sizeof(double) * (size_t)C * C);
    if (sw->cfg->residual_basis != PL_BASIS_CENTERED)
        return PL_OK;
    pl_center(mu, C);
    for (int i = 0; i < C; i++) /* rows, then columns: P Sigma P */
        pl_center(sigma + (size_t)i * C, C);
    double *col = pl_malloc(sizeof(double) * C, "Sigma column");
    if (!col)
        return PL_ERR;
    for (int j = 0; j < C; j++) {
        for (int i = 0; i < C; i++)
            col[i] = sigma[(size_t)i * C + j];
        pl_center(col, C);
        for (int i = 0; i < C; i++)
            sigma[(size_t)i * C + j] = col[i];
    }
    free(col);
    return PL_OK;
}

/* base_norm and direction_norm [base, direction, prompt, sample] of every unit (NaN where the unit has
 * no direction, e.g. sae_active at a base without an active feature) into BN and DN. */
static int unit_norms(const pl_results *res, double *bn, double *dn)
{
    const pl_sweep *sw = pl_results_view(res);
    for (long u = 0; u < sw->n_units; u++) {
        pl_unit_id id = pl_unit_decode(sw, u);
        size_t at = (((size_t)id.b * sw->ND + id.d) * sw->P + id.p) * sw->S + id.s;
        bn[at] = dn[at] = NAN;
        id = pl_unit_at_position(sw, id, 0); /* whole contexts: the first perturbed position's */
        if (pl_unit_defined(&sw->ex, id) && pl_unit_norms(&sw->ex, id, &bn[at], &dn[at]) != PL_OK)
            return PL_ERR;
        /* a kind that needs its base's local geometry (fisher) has its direction on the worker only:
         * the worker recorded its norm */
        if (pl_direction_kind_needs_local(sw->cfg->dirs[id.d].kind))
            dn[at] = pl_results_local(res) ? pl_results_local(res)[(size_t)u * sw->NX + PL_LOCAL_DIRECTION_NORM] : NAN;
    }
    return PL_OK;
}

/* Sites per unit: whole contexts' perturbed positions (each with its local geometry), else 1. */
static int n_sites(const pl_sweep *sw)
{
    return sw->n_pos > 1 ? sw->n_pos : 1;
}

/* [output] vectors: fisher_eigenvector [(n_pos,) P, NB, S, k, C] and optimum_direction [(n_pos,) P, NB, S,
 * n_opt, C] from the units of the first direction (whole contexts: every site's, position first). */
static int local_vectors(const pl_results *res, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    int k = sw->fisher_k, no = sw->n_opt, C = sw->C;
    size_t n_pb = (size_t)n_sites(sw) * sw->P * sw->NB * sw->S, w = (size_t)(k + no) * C;
    if (!(e->vectors = pl_malloc(sizeof(float) * (n_pb * w > 0 ? n_pb * w : 1), "local vectors")))
        return PL_ERR;
    for (long u = 0; u < sw->n_units; u++) {
        pl_unit_id id = pl_unit_decode(sw, u);
        if (id.d)
            continue;
        for (int j = 0; j < n_sites(sw); j++) {
            size_t pb = (((size_t)j * sw->P + id.p) * sw->NB + id.b) * sw->S + id.s;
            const float *x = pl_results_local(res) + (size_t)u * sw->NX + (size_t)j * sw->NX_site + sw->x_vec;
            memcpy(e->vectors + pb * k * C, x, sizeof(float) * k * C);
            memcpy(e->vectors + n_pb * k * C + pb * no * C, x + (size_t)k * C, sizeof(float) * no * C);
        }
    }
    e->r.C = C;
    e->r.fisher_eigenvector = k ? e->vectors : NULL;
    e->r.optimum_direction = no ? e->vectors + n_pb * k * C : NULL;
    return PL_OK;
}

/* fisher_real_other_cos [(n_pos,) P, NB, S, k, n_other], optimum_real_other_cos [(n_pos,) P, NB, S, n_opt,
 * n_other] and the same with n_pcs for the PCs, from the first direction's units (as local_arrays). */
static int local_align(const pl_results *res, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    int k = sw->fisher_k, no = sw->n_opt, nr = sw->n_other, nq = sw->n_pcs, nc = nr + nq;
    size_t n_pb = (size_t)n_sites(sw) * sw->P * sw->NB * sw->S;
    e->align = pl_malloc(sizeof(double) * (n_pb * (k + no) * nc + 1), "alignment");
    if (!e->align)
        return PL_ERR;
    double *fo = e->align, *oo = fo + n_pb * k * nr, *fq = oo + n_pb * no * nr, *oq = fq + n_pb * k * nq;
    for (long su = 0; su < sw->n_units * n_sites(sw); su++) { /* (unit, site) */
        long u = su / n_sites(sw);
        int site = (int)(su % n_sites(sw));
        pl_unit_id id = pl_unit_decode(sw, u);
        if (id.d)
            continue;
        size_t pb = (((size_t)site * sw->P + id.p) * sw->NB + id.b) * sw->S + id.s;
        const float *x = pl_results_local(res) + (size_t)u * sw->NX + (size_t)site * sw->NX_site + sw->x_align;
        for (int j = 0; j < k + no; j++) {
            double *o = j < k ? fo + (pb * k + j) * nr : oo + (pb * no + (j - k)) * nr;
            double *q = j < k ? fq + (pb * k + j) * nq : oq + (pb * no + (j - k)) * nq;
            for (int i = 0; i < nr; i++)
                o[i] = x[(size_t)j * nc + i];
            for (int i = 0; i < nq; i++)
                q[i] = x[(size_t)j * nc + nr + i];
        }
    }
    pl_result *r = &e->r;
    r->n_other = nr, r->n_pc = nq;
    r->fisher_real_other_cos = nr && k ? fo : NULL, r->optimum_real_other_cos = nr && no ? oo : NULL;
    r->fisher_pc_cos = nq && k ? fq : NULL, r->optimum_pc_cos = nq && no ? oq : NULL;
    return PL_OK;
}

/* [run] nonfinite = mark: how many bases of the file ([site,] prompt, base, sample entries; a real base
 * is one for every sample) had their whole local geometry marked (non-finite derivatives at the base),
 * and how many only their optima (a non-finite optimiser gradient), said on stderr: NaN there is no
 * number the run could compute, not a measured one. */
static void report_marked(const pl_sweep *sw, const double *trace, const int *status, size_t n_pb)
{
    long whole = 0, optima = 0;
    for (size_t pb = 0; pb < n_pb; pb++) {
        if (!isfinite(trace[pb]))
            whole++;
        else if (sw->n_opt && status[pb * sw->n_opt] < 0)
            optima++;
    }
    if (whole)
        fprintf(stderr, "plateau: [run] nonfinite = mark: %ld of %zu bases (prompt, base, sample entries) have "
                "non-finite derivatives: their local geometry, fisher and optimized curves are NaN\n", whole, n_pb);
    if (optima)
        fprintf(stderr, "plateau: [run] nonfinite = mark: %ld of %zu bases (prompt, base, sample entries) met a "
                "non-finite optimiser gradient: their optima and optimized curves are NaN (the Fisher numbers "
                "stand)\n", optima, n_pb);
}

/* fisher_eigenvalue [P, NB, S, k], fisher_trace [P, NB, S], the optima's [P, NB, S, n_opt] and
 * [P, NB, S] (per base: a synthetic base is one per (prompt, sample), a real one the same for every
 * sample), kl_rayleigh and fisher_fraction [NB, ND, P, S] from the units' extras: every unit of a base
 * holds the same numbers of it; the first direction's are taken. Whole contexts: every per-base array and
 * fisher_fraction with a leading position dimension (each site's), kl_rayleigh with one under [readout]
 * positions = each (the joint step read at each position; site t's block holds it). */
static int local_arrays(const pl_results *res, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    int k = sw->fisher_k, NX = sw->NX, no = sw->n_opt, NS = n_sites(sw);
    size_t n_pb = (size_t)NS * sw->P * sw->NB * sw->S, n = (size_t)sw->n_units;
    if (!NX)
        return PL_OK;
    int na = sw->x_sae ? k + no : 0; /* aligned vectors per base */
    e->local = pl_malloc(sizeof(double) * (n_pb * (k + 1 + 3 * no + na) + (size_t)(sw->NPC + NS) * n),
                         "local geometry");
    e->local_int = pl_malloc(sizeof(int) * (n_pb * (4 * no + 1 + na)), "local geometry");
    if (!e->local || !e->local_int)
        return PL_ERR;
    double *eig = e->local, *trace = eig + n_pb * k, *ray = trace + n_pb, *acos = ray + n * sw->NPC;
    double *frac = acos + n_pb * na, *obj = frac + n * NS, *tan = obj + n_pb * no, *gnorm = tan + n_pb * no;
    int *iters = e->local_int, *distinct = iters + n_pb * no, *feat = distinct + n_pb, *status = feat + n_pb * na;
    int *start = status + n_pb * no, *cluster = start + n_pb * no;
    for (long su = 0; su < sw->n_units * NS; su++) { /* (unit, site) */
        long u = su / NS;
        int site = (int)(su % NS);
        pl_unit_id id = pl_unit_decode(sw, u);
        const float *x = pl_results_local(res) + (size_t)u * NX + (size_t)site * sw->NX_site;
        size_t at = (((size_t)id.b * sw->ND + id.d) * sw->P + id.p) * sw->S + id.s;
        if (site < sw->NPC) /* mean: site 0's block holds the one quotient */
            ray[(size_t)site * n + at] = x[PL_LOCAL_RAYLEIGH];
        frac[(size_t)site * n + at] = x[PL_LOCAL_FRACTION];
        if (id.d)
            continue;
        size_t pb = (((size_t)site * sw->P + id.p) * sw->NB + id.b) * sw->S + id.s;
        trace[pb] = x[PL_LOCAL_TRACE];
        for (int j = 0; j < k; j++)
            eig[pb * k + j] = x[PL_LOCAL_EIGEN + j];
        /* NaN under nonfinite = mark: iterations, distinct, status, start and cluster -1 */
        const float *o = x + sw->x_opt;
        for (int j = 0; j < no; j++) {
            obj[pb * no + j] = o[j];
            iters[pb * no + j] = isfinite(o[no + j]) ? (int)o[no + j] : -1;
            tan[pb * no + j] = o[2 * no + j];
            status[pb * no + j] = isfinite(o[3 * no + 1 + j]) ? (int)o[3 * no + 1 + j] : -1;
            gnorm[pb * no + j] = o[4 * no + 1 + j];
            start[pb * no + j] = isfinite(o[5 * no + 1 + j]) ? (int)o[5 * no + 1 + j] : -1;
            cluster[pb * no + j] = isfinite(o[6 * no + 1 + j]) ? (int)o[6 * no + 1 + j] : -1;
        }
        if (no)
            distinct[pb] = isfinite(o[3 * no]) ? (int)o[3 * no] : -1;
        for (int j = 0; j < na; j++) { /* [P, NB, S, k] then [P, NB, S, n_opt] */
            size_t ai = j < k ? pb * k + j : n_pb * k + pb * no + (j - k);
            acos[ai] = x[sw->x_sae + j];
            feat[ai] = isfinite(x[sw->x_sae + na + j]) ? (int)x[sw->x_sae + na + j] : -1;
        }
    }
    if (sw->cfg->nonfinite_mark)
        report_marked(sw, trace, status, n_pb);
    pl_result *r = &e->r;
    if (sw->x_align && local_align(res, e) != PL_OK)
        return PL_ERR;
    if (sw->x_vec && local_vectors(res, e) != PL_OK)
        return PL_ERR;
    r->fisher_fraction = k ? frac : NULL;
    r->n_eigen = k, r->fisher_eigenvalue = eig, r->fisher_trace = trace, r->kl_rayleigh = ray;
    r->n_optimum = no, r->optimum_objective = obj, r->optimum_iterations = iters, r->optimum_tangential_grad = tan;
    r->optimum_distinct = distinct, r->optimum_status = status, r->optimum_grad_norm = gnorm;
    r->optimum_start = start, r->optimum_cluster = cluster;
    if (na) {
        r->fisher_max_sae_cos = k ? acos : NULL, r->fisher_sae_feature = k ? feat : NULL;
        r->optimum_max_sae_cos = no ? acos + n_pb * k : NULL, r->optimum_sae_feature = no ? feat + n_pb * k : NULL;
    }
    return PL_OK;
}

/* What the SAE of [sae] path is. */
static void sae_attrs(const pl_experiment *ex, pl_result_attrs *a)
{
    const pl_sae *sae = ex->sae;
    a->sae_path = sae->dir;
    a->sae_sha256 = sae->sha256;
    a->synthetic_sae = sae->synthetic != 0; /* booleans: 0/1 */
    a->sae_hook = sae->hook;
    a->sae_architecture = pl_sae_arch_name(sae->arch);
    a->sae_d_sae = sae->d_sae;
    a->sae_k = sae->arch == PL_SAE_TOPK ? sae->k : PL_RESULT_NO_INT;
    a->sae_normalize_activations = pl_sae_norm_name(sae->norm);
    a->sae_apply_b_dec_to_input = sae->apply_b_dec_to_input != 0;
    a->sae_features_never_active = a->sae_draws_without_active_feature = PL_RESULT_NO_INT;
    if (ex->sae_bases) {
        a->sae_features_never_active = ex->sae_bases->n_never_active;
        if (ex->sae_bases->feature)
            a->sae_draws_without_active_feature = ex->sae_bases->n_no_feature;
    }
}

static void run_attrs(const pl_sweep *sw, const pl_output_meta *meta, pl_result_attrs *a)
{
    const pl_sweep_config *cfg = sw->cfg;
    memset(a, 0, sizeof *a);
    a->config = meta->config_text;
    a->model_path = cfg->model_path;
    a->model_sha256 = meta->model_sha256;
    a->model_config_sha256 = meta->model_config_sha256;
    a->synthetic_model = meta->synthetic_model != 0;
    a->data_path = cfg->data_path;
    a->hook = cfg->hook;
    a->read_hook = cfg->read_hook;
    a->position = sw->pos;
    a->read_position = sw->read_pos;
    a->n_positions = sw->n_pos;
    a->residual_basis = PL_RESIDUAL_BASIS_NAMES[cfg->residual_basis];
    a->center_direction = cfg->center_direction != 0;
    a->sampling = PL_SAMPLING_NAMES[cfg->sampling];
    a->duplicate_prompts_dropped = (int)sw->n_duplicates;
    a->short_documents_skipped = (int)sw->n_short;
    a->bos_token = sw->bos_id;
    a->bootstrap_resamples = cfg->bootstrap;
    a->n_prompts = sw->P;
    a->n_ranks = meta->n_ranks;
    a->evals_per_second = meta->evals_per_second;
    a->sigma_positive_definite_fix = meta->sigma_note ? meta->sigma_note : "";
    a->threads = meta->threads;
    a->openblas_config = meta->openblas_config ? meta->openblas_config : "";
    a->command_line = meta->command_line;
    /* no SAE: none of its attributes */
    a->synthetic_sae = a->sae_d_sae = a->sae_k = a->sae_apply_b_dec_to_input = PL_RESULT_NO_INT;
    a->sae_features_never_active = a->sae_draws_without_active_feature = PL_RESULT_NO_INT;
    if (sw->ex.sae)
        sae_attrs(&sw->ex, a);
}

/* The metrics, scores, comparisons and per-unit states of the run as the result lists them. */
static int describe_tables(const pl_results *res, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    const pl_sweep_config *cfg = sw->cfg;
    for (int mi = 0; mi < sw->NM; mi++) {
        const pl_metric_info *mt = &PL_METRICS[cfg->metrics[mi]];
        /* the curve pl_score_curve hands the scores, in words */
        const char *curve = mt->name;
        if (mt->score_on == PL_SCORE_ON_ONE_MINUS) {
            snprintf(e->score_curve_text[mi], sizeof e->score_curve_text[mi], "1 - %s", mt->name);
            curve = e->score_curve_text[mi];
        } else if (mt->score_on == PL_SCORE_ON_INCREASE) {
            snprintf(e->score_curve_text[mi], sizeof e->score_curve_text[mi], "%s - %s at alpha 0", mt->name,
                     mt->name);
            curve = e->score_curve_text[mi];
        }
        e->metrics[mi] = (pl_result_metric){mt->name, mt->long_name, mt->units, curve,
                                            cfg->thresholds[cfg->metrics[mi]]};
        for (int sc = 0; sc < PL_N_SCORES; sc++)
            e->has_score[mi * PL_N_SCORES + sc] = (unsigned char)(res->has_score[mi][sc] != 0);
    }
    for (int sc = 0; sc < PL_N_SCORES; sc++) {
        e->scores[sc] = (pl_result_score){PL_SCORES[sc].name, PL_SCORES[sc].alpha_valued, 0, 0};
        pl_score_range(sw, sc, &e->scores[sc].hist_lo, &e->scores[sc].hist_hi);
    }
    for (int c = 0; c < res->n_comparisons; c++) {
        const pl_comparison *cp = &res->comparisons[c];
        e->comparisons[c] = (pl_result_comparison){cp->label, cp->b1, cp->d1, cp->b2, cp->d2};
    }
    size_t n_paired = (size_t)sw->NM * PL_N_SCORES * sw->NPC * res->n_comparisons;
    e->paired = pl_malloc(sizeof *e->paired * (n_paired ? n_paired : 1), "comparisons");
    if (!e->paired)
        return PL_ERR;
    for (size_t i = 0; i < n_paired; i++) {
        const pl_paired *p = &res->paired[i];
        e->paired[i] = (pl_result_paired){p->n_pairs, p->n_censored_x, p->n_censored_y, p->ratio, p->ratio_lo, p->ratio_hi, p->diff, p->diff_lo,
                                          p->diff_hi, p->p_value, p->w_plus};
    }
    int n = 0;
    /* whole contexts: the states are per site (prompt, position), not per prompt: not written yet */
    for (int d = 0; d < sw->ND && sw->n_pos == 1; d++)
        for (int k = 0; k < sw->ex.dir[d].n_state; k++) {
            const pl_unit_state *st = &sw->ex.dir[d].state[k];
            e->states[n++] = (pl_result_state){st->name, st->long_name, st->width_dim, st->width, st->per_base,
                                               st->values};
        }
    e->r.n_states = n;
    return PL_OK;
}

/* The arrays of R's data that the sweep holds as they are, and those made for the file. */
static int fill_arrays(const pl_results *res, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    const pl_sweep_config *cfg = sw->cfg;
    pl_result *r = &e->r;
    size_t n = (size_t)sw->n_units;
    r->curves = !cfg->raw_curves ? NULL : res->sw->slice ? res->axis_curves : res->curves;
    if (res->sw->slice) { /* the grid beside its axes */
        r->slice_curves = cfg->raw_curves ? res->curves : NULL;
        r->slice_mean = res->slice_mean, r->slice_median = res->slice_median, r->slice_count = res->slice_count;
        r->slice_directions[0] = cfg->dirs[0].label, r->slice_directions[1] = cfg->dirs[1].label;
    }
    r->mean = res->mean, r->median = res->median, r->quant = res->quant, r->count = res->count;
    r->score_values = res->scores, r->hist = res->hist, r->hist_outside = res->hist_outside;
    r->n_censored = res->n_censored;
    r->tokens = sw->tokens, r->next_token = sw->next_token;
    r->prompt_text = (const char *const *)sw->prompt_text;
    if (sw->ex.sae_bases) {
        r->sae_features = sw->ex.sae->d_sae;
        r->sae_feature_active_bases = sw->ex.sae_bases->active_bases;
    }
    e->norms = pl_malloc(sizeof(double) * 2 * (n ? n : 1), "curve norms");
    if (!e->norms || unit_norms(res, e->norms, e->norms + n) != PL_OK || local_arrays(res, e) != PL_OK)
        return PL_ERR;
    r->base_norm = e->norms, r->direction_norm = e->norms + n;
    if (!cfg->activations)
        return PL_OK;
    int C = sw->C;
    e->mu = pl_malloc(sizeof(double) * C, "mu");
    e->sigma = pl_malloc(sizeof(double) * (size_t)C * C, "Sigma");
    if (!e->mu || !e->sigma || !sw->sigma || basis_fit(sw, e->mu, e->sigma) != PL_OK)
        return PL_ERR;
    r->C = C, r->activation = sw->real_act, r->mu = e->mu, r->sigma = e->sigma;
    if (sw->n_pos > 1) { /* real_act's sites [P, n_pos, C] as the file's [position, prompt, resid] */
        e->activation = pl_malloc(sizeof(float) * (size_t)sw->n_pos * sw->P * C, "activations");
        if (!e->activation)
            return PL_ERR;
        for (int p = 0; p < sw->P; p++)
            for (int j = 0; j < sw->n_pos; j++)
                memcpy(e->activation + ((size_t)j * sw->P + p) * C, sw->real_act + ((size_t)p * sw->n_pos + j) * C,
                       sizeof(float) * C);
        r->activation = e->activation;
    }
    return PL_OK;
}

int pl_results_export(const pl_results *res, const pl_output_meta *meta, pl_result_export *e)
{
    const pl_sweep *sw = pl_results_view(res);
    const pl_sweep_config *cfg = sw->cfg;
    memset(e, 0, sizeof *e);
    pl_result *r = &e->r;
    r->NB = sw->NB, r->ND = sw->ND, r->P = sw->P, r->S = sw->S, r->K = sw->steps, r->NM = sw->NM, r->T = sw->T;
    r->Q = cfg->n_quantiles, r->HB = cfg->histogram_bins, r->per_position = sw->NPC > 1;
    r->n_scores = PL_N_SCORES, r->n_comparisons = res->n_comparisons;
    r->alpha = sw->alpha;
    alpha_meaning(cfg, e);
    for (int b = 0; b < sw->NB; b++)
        e->bases[b] = PL_BASE_KINDS[cfg->bases[b]].name;
    for (int d = 0; d < sw->ND; d++)
        e->directions[d] = cfg->dirs[d].label;
    r->bases = e->bases, r->directions = e->directions, r->quantiles = cfg->quantiles;
    r->metrics = e->metrics, r->scores = e->scores, r->comparisons = e->comparisons, r->has_score = e->has_score;
    r->states = e->states;
    r->onset_threshold = cfg->onset_threshold, r->nl_tolerance = cfg->nl_tolerance;
    r->nl_fit_steps[0] = cfg->nl_first, r->nl_fit_steps[1] = cfg->nl_last;
    r->nl_rule = PL_NL_RULE_NAMES[cfg->nl_rule];
    r->plateau_threshold = cfg->plateau_threshold, r->giglemiani_nl_tolerance = cfg->giglemiani_nl_tolerance;
    run_attrs(sw, meta, &r->attrs);
    if (describe_tables(res, e) != PL_OK || fill_arrays(res, e) != PL_OK) {
        pl_result_export_free(e);
        return PL_ERR;
    }
    r->paired = e->paired;
    return PL_OK;
}

void pl_result_export_free(pl_result_export *e)
{
    free(e->local);
    free(e->local_int);
    free(e->align);
    free(e->vectors);
    free(e->paired);
    free(e->norms);
    free(e->mu);
    free(e->sigma);
    free(e->activation);
    memset(e, 0, sizeof *e);
}

const char *pl_metric_name(int m)
{
    return m >= 0 && m < PL_N_METRICS ? PL_METRICS[m].name : NULL;
}

const char *pl_score_name(int sc, int *alpha_valued)
{
    if (sc < 0 || sc >= PL_N_SCORES)
        return NULL;
    *alpha_valued = PL_SCORES[sc].alpha_valued;
    return PL_SCORES[sc].name;
}
