/* The sweep's shared state and its batches of units. A batch is a fixed run of consecutive units
 * whose clean runs go through one batched forward and whose steps are the rows of one grouped
 * fast-path call (or, with --naive, one full patched forward per step); row 0 of a unit is
 * alpha = 0, the unperturbed base, against which every row of the unit is measured.
 *
 * Readout position: by causality the logits at position q are the last-position logits of the
 * prompt's first q + 1 tokens, so a unit runs those T_eval = q + 1 tokens and reads their last
 * position.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/vecmath.h"
#include "sweep_internal.h"

/* ------------------------------------------------------------ setup */

int pl_sweep_setup_grid(pl_sweep *sw)
{
    sw->alpha = pl_malloc(sizeof(double) * sw->n_alpha, "alpha grid");
    if (!sw->alpha)
        return PL_ERR;
    /* the config's grid: linspace(0, alpha_max, steps) exact at both ends, the log grid, or alphas */
    for (int k = 0; k < sw->n_alpha; k++)
        sw->alpha[k] = pl_grid_alpha(sw->cfg, k);
    return PL_OK;
}

/* The covariance prompts' rows the fit uses, ROWS[n, C] (malloc'ed; *N their count): the perturbed
 * positions, or with fit_positions = all every position but a leading BOS. ACTS[P_cov, act_count, C]. */
static float *fit_rows(const pl_sweep *sw, const float *acts, int *n)
{
    int C = sw->C, W = sw->act_count, P_cov = sw->cfg->cov_prompts;
    int from = sw->pos, to = sw->pos + sw->n_pos; /* absolute positions */
    if (sw->cfg->fit_positions == PL_FIT_POSITIONS_ALL)
        from = sw->bos_id >= 0 ? 1 : 0, to = sw->T;
    *n = P_cov * (to - from);
    float *rows = pl_malloc(sizeof(float) * (size_t)(*n > 0 ? *n : 1) * C, "covariance rows");
    if (!rows)
        return NULL;
    size_t k = 0;
    for (int i = 0; i < P_cov; i++) /* prompt-major, then position: a fixed order, so a fixed sum */
        for (int t = from; t < to; t++, k++)
            memcpy(rows + k * C, acts + ((size_t)i * W + (t - sw->act_first)) * C, sizeof(float) * C);
    return rows;
}

int pl_sweep_fit(pl_sweep *sw, const float *acts)
{
    int C = sw->C, P = sw->P, W = sw->act_count;
    for (int p = 0; p < P; p++)
        for (int j = 0; j < sw->n_pos; j++) {
            float *x = sw->real_act + ((size_t)p * sw->n_pos + j) * C;
            memcpy(x, acts + ((size_t)p * W + (sw->pos + j - sw->act_first)) * C, sizeof(float) * C);
            if (sw->cfg->residual_basis == PL_BASIS_CENTERED)
                pl_center_float(x, C);
        }
    if (sw->cfg->activations && !(sw->sigma = pl_malloc(sizeof(double) * (size_t)C * C, "Sigma")))
        return PL_ERR;
    /* The fit is in the raw basis; in the centered one every sample is projected afterwards, which
     * gives N(P mu, P Sigma P): the fit of the projected activations, without its singular Sigma. */
    const float *cov = acts + (size_t)P * W * C;
    if (W == 1) /* one position gathered: the rows are the covariance prompts' activations as they are */
        return pl_fit_gaussian_ridge(cov, sw->cfg->cov_prompts, C, sw->cfg->sigma_ridge, sw->mu, sw->chol,
                                     &sw->trace, sw->sigma, &sw->pd);
    int n;
    float *rows = fit_rows(sw, cov, &n);
    if (!rows)
        return PL_ERR;
    int rc = pl_fit_gaussian_ridge(rows, n, C, sw->cfg->sigma_ridge, sw->mu, sw->chol, &sw->trace, sw->sigma,
                                   &sw->pd);
    free(rows);
    return rc;
}

int pl_sweep_setup_units(pl_sweep *sw)
{
    pl_experiment *ex = &sw->ex;
    ex->cfg = sw->cfg;
    ex->C = sw->C;
    ex->C_read = sw->C_read;
    ex->V = sw->V;
    ex->sae = sw->sae.dir ? &sw->sae : NULL;
    ex->P = sw->P * sw->n_pos; /* the experiment's prompts are the sites (prompt, perturbed position) */
    ex->S = sw->S;
    ex->NB = sw->NB;
    ex->ND = sw->cfg->n_dirs; /* a slice's two kinds are the experiment's directions 0 and 1 */
    ex->steps = sw->n_alpha;
    ex->alpha = sw->alpha;
    ex->real_act = sw->real_act;
    ex->mu = sw->mu;
    ex->chol = sw->chol;
    ex->trace = sw->trace;
    if (pl_experiment_setup_bases(ex) != PL_OK)
        return pl_fail_prefix("%s: [perturb] bases", pl_sweep_config_origin(sw->cfg, "perturb", "bases"));
    if (pl_experiment_setup(ex) != PL_OK)
        return pl_fail_prefix("%s: [perturb] directions", pl_sweep_config_origin(sw->cfg, "perturb", "directions"));
    if (pl_sweep_check_local_sizes(sw) != PL_OK)
        return PL_ERR;
    return PL_OK;
}

/* The local geometry's sizes against the hook's width C: [fisher] k (as pl_fisher_k resolves it) and
 * orthogonal starts, which the optimiser could not place (it failed mid-run, an internal error, exit
 * 3). The run's setup and --dry-run both check, so a dry run refuses what the run would. */
int pl_sweep_check_local_sizes(const pl_sweep *sw)
{
    const pl_sweep_config *cfg = sw->cfg;
    int k = pl_fisher_k(cfg);
    if (k > sw->C)
        return pl_fail("%s: [fisher] k = %d: F at a base has %d eigenpairs (the width of [perturb] hook)%s",
                       pl_sweep_config_origin(cfg, "fisher", "k"), k, sw->C,
                       cfg->fisher_k ? "" : " (k = n_directions, as `fisher` is listed)");
    if (pl_optimized_listed(cfg) && cfg->opt_orthogonal && cfg->opt_starts > sw->C)
        return pl_fail("%s: [optimize] starts = %d with orthogonal = true: at most %d mutually orthogonal optima fit in "
                       "the width of [perturb] hook (lower starts, or orthogonal = false)",
                       pl_sweep_config_origin(cfg, "optimize", "starts"), cfg->opt_starts, sw->C);
    /* under absolute the radius is radius_alpha itself: one too small for float32 steps is refused here
     * (and by --dry-run); under fixed_norm it depends on each base's norm and the optimiser's setup refuses it */
    if (pl_optimized_listed(cfg) && cfg->step_mode == PL_STEP_ABSOLUTE && !pl_sphere_radius_ok(cfg->opt_radius_alpha, sw->C))
        return pl_fail("%s: [optimize] radius_alpha = %g: below the smallest radius whose float32 steps in the %d "
                       "dimensions of [perturb] hook are not all zero (%g)",
                       pl_sweep_config_origin(cfg, "optimize", "radius_alpha"), cfg->opt_radius_alpha, sw->C,
                       FLT_MIN * sqrt((double)sw->C));
    return PL_OK;
}

int pl_sweep_open_sae(pl_sweep *sw)
{
    pl_sweep_config *cfg = sw->cfg;
    if (!cfg->sae_path)
        return PL_OK;
    const char *origin = pl_sweep_config_origin(cfg, "sae", "path");
    if (pl_hook_resid_index(sw->hook) < 0)
        return pl_fail("%s: [sae] path = %s: an SAE reads the residual stream, but [perturb] hook is %s (%s)", origin,
                       cfg->sae_path, cfg->hook, pl_sweep_config_origin(cfg, "perturb", "hook"));
    if (pl_sae_open(&sw->sae, cfg->sae_path, sw->C) != PL_OK)
        return pl_fail_prefix("%s: [sae] path = %s", origin, cfg->sae_path);
    /* The SAE must read the residual that is perturbed: the same index (blocks.L.hook_resid_post is
     * blocks.L+1.hook_resid_pre), or the readouts and directions would belong to another activation. */
    int index;
    if (pl_hook_parse(sw->model, sw->sae.hook, &index) != PL_OK)
        return pl_fail_prefix("%s: [sae] path = %s: cfg.json's hook is not a residual-stream hook of this model",
                              origin, cfg->sae_path);
    if (index != pl_hook_resid_index(sw->hook))
        return pl_fail("%s: [sae] path = %s: the SAE reads %s (cfg.json), but [perturb] hook is %s (%s)", origin,
                       cfg->sae_path, sw->sae.hook, cfg->hook, pl_sweep_config_origin(cfg, "perturb", "hook"));
    /* The SAE encodes the activation in the sweep's basis (docs/sae.md): when cfg.json says which basis
     * it was trained in, the other one would feed it shifted vectors and every SAE number would be off.
     * center_writing_weights changes nothing for RMSNorm models (TL centres LayerNorm models only). */
    int centered = cfg->residual_basis == PL_BASIS_CENTERED;
    int layer_norm = pl_model_get_info(sw->model)->norm == PL_NORM_LAYERNORM;
    if (sw->sae.writing_centered == 0 ? centered : sw->sae.writing_centered == 1 && layer_norm && !centered)
        return pl_fail("%s: [sae] path = %s: cfg.json's model_from_pretrained_kwargs has center_writing_weights = %s "
                       "(the SAE was trained on %s residuals), but [perturb] residual_basis is %s (%s): set "
                       "residual_basis = %s",
                       origin, cfg->sae_path, centered ? "false" : "true", centered ? "raw" : "TransformerLens's centred",
                       centered ? "centered" : "raw", pl_sweep_config_origin(cfg, "perturb", "residual_basis"),
                       centered ? "raw" : "centered");
    if (cfg->sae_sha256 && strcmp(cfg->sae_sha256, sw->sae.sha256))
        return pl_fail("%s: [sae] sha256 = %s, but the SAE in %s has sha256 %s (of cfg.json followed by "
                       "sae_weights.safetensors)",
                       pl_sweep_config_origin(cfg, "sae", "sha256"), cfg->sae_sha256, cfg->sae_path, sw->sae.sha256);
    if (!cfg->sae_sha256 && !(cfg->sae_sha256 = strdup(sw->sae.sha256)))
        return pl_fail("out of memory (SAE sha256)");
    return PL_OK;
}

int pl_unit_steps(const pl_sweep *sw, pl_unit_id id, float *X)
{
    return sw->slice ? pl_unit_slice_of(&sw->ex, id, X) : pl_unit_steps_of(&sw->ex, id, X);
}

void pl_row_alpha_text(const pl_sweep *sw, int k, char *out, size_t size)
{
    if (sw->slice)
        snprintf(out, size, "alpha = %g, beta = %g", sw->alpha[k / sw->n_alpha], sw->alpha[k % sw->n_alpha]);
    else
        snprintf(out, size, "alpha = %g", sw->alpha[k]);
}

/* Whether unit ID has its direction(s): a slice's unit needs both of its kinds'. */
static int unit_defined(const pl_sweep *sw, pl_unit_id id)
{
    if (!sw->slice)
        return pl_unit_defined(&sw->ex, id);
    pl_unit_id second = id;
    second.d = 1;
    return pl_unit_defined(&sw->ex, id) && pl_unit_defined(&sw->ex, second);
}

/* The prompt's real next token at the readout position, or -1. */
static int next_token_at_readout(const pl_sweep *sw, int p)
{
    return sw->read_pos + 1 < sw->T ? sw->tokens[(size_t)p * sw->T + sw->read_pos + 1] : sw->next_token[p];
}

/* ------------------------------------------------------------ a batch */

void pl_unit_cache_init(pl_unit_cache *c)
{
    memset(c, 0, sizeof *c);
    pl_sweep_local_init(&c->local);
}

void pl_unit_cache_free(pl_unit_cache *c)
{
    free(c->X);
    free(c->logits);
    free(c->read);
    free(c->scratch);
    free(c->bad);
    free(c->pos_rows);
    pl_sweep_local_free(&c->local);
    pl_unit_cache_init(c);
}

void pl_sweep_set_batches(pl_sweep *sw)
{
    long rows = (long)sw->steps * (sw->n_pos > 1 ? sw->n_pos : 1); /* output rows of a unit */
    sw->batch_units = rows >= PL_BATCH_ROWS ? 1 : (int)(PL_BATCH_ROWS / rows);
    sw->n_batches = (sw->n_units + sw->batch_units - 1) / sw->batch_units;
    sw->fisher_k = pl_fisher_k(sw->cfg);
    sw->n_opt = pl_optimized_listed(sw->cfg) ? sw->cfg->opt_starts : 0;
    sw->x_opt = PL_LOCAL_EIGEN + sw->fisher_k;
    sw->NX = sw->n_opt ? sw->x_opt + 7 * sw->n_opt + 1 : sw->fisher_k ? sw->x_opt : 0;
    sw->x_sae = sw->NX && sw->cfg->sae_path ? sw->NX : 0;
    sw->NX += sw->x_sae ? 2 * (sw->fisher_k + sw->n_opt) : 0;
    sw->x_vec = sw->NX && sw->cfg->vectors ? sw->NX : 0;
    sw->NX += sw->x_vec ? (sw->fisher_k + sw->n_opt) * sw->C : 0;
    sw->n_pcs = sw->NX ? (sw->cfg->fisher_n_pcs < sw->C ? sw->cfg->fisher_n_pcs : sw->C) : 0;
    int ro = pl_direction_kind_find("real_other");
    sw->n_other = 0;
    for (int d = 0; sw->NX && d < sw->cfg->n_dirs; d++)
        if (sw->cfg->dirs[d].kind == ro)
            sw->n_other = sw->S;
    sw->x_align = sw->n_pcs + sw->n_other ? sw->NX : 0;
    sw->NX += (sw->fisher_k + sw->n_opt) * (sw->n_other + sw->n_pcs);
    sw->NX_site = sw->NX; /* one block: a site's (whole contexts: every perturbed position's geometry), or
                           * a slice's axis (directions 0 then 1); the x_* offsets within one */
    sw->NX *= sw->n_pos > 1 ? sw->n_pos : sw->slice ? 2 : 1;
    sw->unit_floats = sw->NM * sw->NPC * sw->steps + sw->NX;
}

long pl_batch_first_unit(const pl_sweep *sw, long b, int *n_units)
{
    long first = b * sw->batch_units;
    long n = sw->n_units - first;
    *n_units = (int)(n < sw->batch_units ? n : sw->batch_units);
    return first;
}

void pl_unit_name(const pl_sweep *sw, long u, char *out, size_t size)
{
    pl_unit_id id = pl_unit_decode(sw, u);
    if (sw->slice)
        snprintf(out, size, "unit %ld (prompt %d, base %s, slice %s x %s, sample %d)", u, id.p,
                 PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sw->cfg->dirs[0].label, sw->cfg->dirs[1].label, id.s);
    else
        snprintf(out, size, "unit %ld (prompt %d, base %s, direction %s, sample %d)", u, id.p,
                 PL_BASE_KINDS[sw->cfg->bases[id.b]].name, sw->cfg->dirs[id.d].label, id.s);
}

/* Non-finite inputs of a row's metrics, as bits of BAD[row]. */
enum { BAD_STEP = 1, BAD_LOGITS = 2, BAD_READ = 4 };

/* Which rows of a batch's step vectors, logits and read-hook residuals hold a non-finite value (bits of
 * BAD[row]; units without a direction are skipped: their curves are NaN anyway). With [run] nonfinite
 * = error the first one fails the batch with a message naming its unit, alpha and where. NULL X skips
 * the step vectors (checked before evaluating), NULL LOGITS and READ the outputs. */
static int find_nonfinite(const pl_sweep *sw, long first, int n, const float *X, const float *logits,
                          const float *read, unsigned char *bad)
{
    int S = sw->steps, C = sw->C, V = sw->V, CR = sw->C_read;
    for (int i = 0; i < n; i++) {
        if (!unit_defined(sw, pl_unit_decode(sw, first + i)))
            continue;
        for (size_t row = (size_t)i * S; row < (size_t)(i + 1) * S; row++) {
            long at_x = X ? pl_vec_first_nonfinite(X + row * C, (size_t)C) : -1;
            long at_logit = logits ? pl_vec_first_nonfinite(logits + row * V, (size_t)V) : -1;
            long at_read = read ? pl_vec_first_nonfinite(read + row * CR, (size_t)CR) : -1;
            bad[row] |= (at_x >= 0 ? BAD_STEP : 0) | (at_logit >= 0 ? BAD_LOGITS : 0) | (at_read >= 0 ? BAD_READ : 0);
            if (sw->cfg->nonfinite_mark || !bad[row])
                continue;
            char unit[320], what[256], at[96];
            pl_unit_name(sw, first + i, unit, sizeof unit);
            pl_row_alpha_text(sw, (int)(row % S), at, sizeof at);
            if (at_x >= 0)
                snprintf(what, sizeof what, "the step vector (base + alpha x direction) has a non-finite component %ld",
                         at_x);
            else if (at_logit >= 0)
                snprintf(what, sizeof what, "the logit of token %ld is %s, from a finite step vector: the model "
                         "computes it; check its weights", at_logit, isnan(logits[row * V + at_logit]) ? "NaN" : "infinite");
            else
                snprintf(what, sizeof what, "the residual at %s has a non-finite component %ld, from a finite step "
                         "vector: the model computes it; check its weights", sw->cfg->read_hook, at_read);
            pl_fail("%s, %s: %s ([run] nonfinite = error; 'mark' stores NaN and leaves it out of the "
                    "statistics)",
                    unit, at, what);
            return PL_ERR_BAD_INPUT;
        }
    }
    return PL_OK;
}

/* [run] nonfinite = mark: the metrics of unit row K whose inputs (BAD, the unit's rows) are not all
 * finite, in row K or in the unit's reference row REF, become NaN. O[NM, S]. */
static void mark_nonfinite(const pl_sweep *sw, const unsigned char *bad, int ref, float *o)
{
    int S = sw->steps;
    for (int mi = 0; mi < sw->NM; mi++) {
        int reads = PL_METRICS[sw->cfg->metrics[mi]].reads, mask = BAD_STEP;
        mask |= reads & PL_READS_DISTRIBUTIONS ? BAD_LOGITS : 0;
        mask |= reads & PL_READS_RESIDUAL ? BAD_READ : 0;
        for (int k = 0; k < S; k++)
            if ((bad[k] | bad[ref]) & mask)
                o[(size_t)mi * S + k] = NAN;
    }
}

/* The metrics O[NM, S] of unit U computed from finite inputs may still be non-finite: a value beyond
 * float32's range (l2 of steps near FLT_MAX is finite in double, +inf as a float), an overflow inside
 * the SAE's readout. With [run] nonfinite = error that fails the batch naming the unit, alpha and
 * metric; with mark the value is stored as NaN, like a non-finite input's. The documented NaNs (cosine
 * of a zero residual, ce_loss without a next token) are values, not faults (pl_metric_value_ok). */
int pl_check_metric_values(const pl_sweep *sw, long u, float *o)
{
    int S = sw->steps;
    for (int mi = 0; mi < sw->NM; mi++)
        for (int k = 0; k < S; k++) {
            float *v = o + (size_t)mi * S + k;
            if (pl_metric_value_ok(sw->cfg->metrics[mi], *v))
                continue;
            if (sw->cfg->nonfinite_mark) {
                *v = NAN;
                continue;
            }
            char unit[320], at[96];
            pl_unit_name(sw, u, unit, sizeof unit);
            pl_row_alpha_text(sw, k, at, sizeof at);
            pl_fail("%s, %s: metric %s is %s from finite step vectors, logits and residuals (%s) ([run] "
                    "nonfinite = error; 'mark' stores NaN and leaves it out of the statistics)",
                    unit, at, PL_METRICS[sw->cfg->metrics[mi]].name,
                    isnan(*v) ? "NaN" : *v > 0 ? "+inf" : "-inf",
                    isnan(*v) ? "an overflow computing it" : "beyond float32's range");
            return PL_ERR_BAD_INPUT;
        }
    return PL_OK;
}

/* The batch's rows through the model one full patched forward at a time (--naive: the reference the
 * fast path is tested against). Unit i's prompt: PROMPTS[GROUP[i]]. */
static int eval_naive(const pl_sweep *sw, pl_unit_cache *cache, int n, const int *group, const int *prompts)
{
    int C = sw->C, V = sw->V, T = sw->T, TE = sw->T_eval, S = sw->steps, rc = PL_OK;
    for (int i = 0; i < n && rc == PL_OK; i++) {
        const int *tokens = sw->tokens + (size_t)prompts[group[i]] * T;
        for (int k = 0; k < S && rc == PL_OK; k++) {
            size_t row = (size_t)i * S + k;
            pl_run run;
            rc = pl_forward_patched_at(sw->model, tokens, TE, sw->hook, sw->pos, cache->X + row * C, &run);
            if (rc != PL_OK)
                break;
            memcpy(cache->logits + row * V, run.logits, sizeof(float) * V);
            rc = pl_read_at(sw->model, &run, sw->read, TE - 1, cache->read + row * sw->C_read);
            pl_run_free(&run);
        }
    }
    return rc;
}

int pl_batch_runs_open(const pl_sweep *sw, int n, const int *group, const int *prompts, int G, pl_batch_runs *b)
{
    int T = sw->T, TE = sw->T_eval;
    int *tokens = pl_malloc(sizeof(int) * (size_t)G * TE, "batch prompts");
    *b = (pl_batch_runs){pl_calloc((size_t)G, sizeof(pl_run), "clean runs"),
                         pl_malloc(sizeof(pl_run *) * (size_t)n, "clean runs"),
                         pl_malloc(sizeof(int) * (size_t)n, "batch groups"), 0};
    int rc = tokens && b->runs && b->cleans && b->group_rows ? PL_OK : PL_ERR;
    for (int g = 0; rc == PL_OK && g < G; g++)
        memcpy(tokens + (size_t)g * TE, sw->tokens + (size_t)prompts[g] * T, sizeof(int) * TE);
    if (rc == PL_OK)
        rc = pl_forward_batch(sw->model, tokens, G, TE, b->runs);
    free(tokens);
    if (rc != PL_OK) {
        pl_batch_runs_close(b);
        return PL_ERR;
    }
    b->G = G;
    for (int i = 0; i < n; i++) {
        b->cleans[i] = &b->runs[group[i]];
        b->group_rows[i] = sw->steps;
    }
    return PL_OK;
}

void pl_batch_runs_close(pl_batch_runs *b)
{
    for (int g = 0; g < b->G; g++)
        pl_run_free(&b->runs[g]);
    free(b->runs);
    free(b->cleans);
    free(b->group_rows);
    *b = (pl_batch_runs){0};
}

/* The batch's rows through the fast path: one clean forward per distinct prompt (G of them, batched),
 * then every unit's S rows patched against its prompt's cached run. */
static int eval_fast(const pl_sweep *sw, pl_unit_cache *cache, int n, const int *group, const int *prompts, int G)
{
    pl_batch_runs b;
    int rc = pl_batch_runs_open(sw, n, group, prompts, G, &b);
    if (rc == PL_OK)
        rc = pl_patch_eval_groups_at(sw->model, b.cleans, b.group_rows, n, sw->hook, sw->pos, cache->X, cache->logits,
                                     sw->read, cache->read);
    pl_batch_runs_close(&b);
    return rc;
}

/* The metrics of the batch's N units (from unit FIRST) into OUT, from the rows the model computed. */
static int batch_metrics(const pl_sweep *sw, pl_unit_cache *cache, long first, int n, float *out)
{
    int C = sw->C, V = sw->V, S = sw->steps, CR = sw->C_read;
    if (sw->cfg->residual_basis == PL_BASIS_CENTERED) /* L2 and cosine in TransformerLens's basis */
        for (size_t row = 0; row < (size_t)n * S; row++)
            pl_center_float(cache->read + row * CR, CR);
    for (int i = 0; i < n; i++) {
        pl_unit_id id = pl_unit_decode(sw, first + i);
        float *o = out + (size_t)i * sw->unit_floats;
        if (!unit_defined(sw, id)) { /* e.g. sae_active at a base with no active feature */
            for (size_t j = 0; j < (size_t)sw->NM * S; j++)
                o[j] = NAN;
            continue;
        }
        int ref = pl_unit_reference(&sw->ex, id); /* a slice: 0, its (0, 0) (no kind with ref_alpha) */
        pl_unit_metrics(&sw->ex, cache->logits + (size_t)i * S * V, cache->read + (size_t)i * S * CR,
                        cache->X + (size_t)i * S * C, S, ref, next_token_at_readout(sw, id.p), cache->scratch, o);
        mark_nonfinite(sw, cache->bad + (size_t)i * S, ref, o);
        int rc = pl_check_metric_values(sw, first + i, o);
        if (rc != PL_OK)
            return rc;
    }
    return PL_OK;
}

/* Unit ID's step vectors X[steps, C], and with [fisher] or `optimized` its extras[NX]: the local
 * geometry of its base is computed first unless the cache holds it (units are prompt-major, so a
 * batch meets each (prompt, base kind) in one run; a synthetic base's S samples have a slot each),
 * and the steps see it (the fisher and optimized kinds' directions). */
static int unit_steps_local(const pl_sweep *sw, pl_unit_cache *cache, pl_unit_id id, float *X, float *extras)
{
    if (!sw->NX)
        return pl_unit_steps(sw, id, X);
    int rc;
    const pl_base_local *geo = pl_sweep_local_prepare(sw, &cache->local, id, &rc);
    if (rc != PL_OK)
        return rc;
    pl_experiment ex = sw->ex; /* the experiment as seen at this base */
    ex.local = geo;
    if ((sw->slice ? pl_unit_slice_of(&ex, id, X) : pl_unit_steps_of(&ex, id, X)) != PL_OK)
        return PL_ERR;
    if (!sw->slice)
        return pl_sweep_local_unit(sw, &cache->local, geo, id, extras);
    /* a slice: the extras of its two axes' 1-D units (directions 0 and 1 of the same base), each as a
     * 1-D sweep of its kind records them (results.c's finish_slice hands them to the axis table) */
    for (int d = 0; d < 2 && rc == PL_OK; d++) {
        pl_unit_id axis = id;
        axis.d = d;
        rc = pl_sweep_local_unit(sw, &cache->local, geo, axis, extras + (size_t)d * sw->NX_site);
    }
    return rc;
}

int pl_batch_eval(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out)
{
    if (sw->n_pos > 1)
        return pl_batch_eval_contexts(sw, cache, b, out);
    int C = sw->C, V = sw->V, S = sw->steps, n;
    long first = pl_batch_first_unit(sw, b, &n);
    size_t rows = (size_t)sw->batch_units * S;
    if (!cache->X) {
        cache->X = pl_malloc(sizeof(float) * rows * C, "batch steps");
        cache->logits = pl_malloc(sizeof(float) * rows * V, "batch logits");
        cache->read = pl_malloc(sizeof(float) * rows * sw->C_read, "batch readout");
        cache->scratch = pl_malloc(pl_unit_metrics_scratch(&sw->ex, S), "metric scratch");
        cache->bad = pl_malloc(rows, "non-finite rows");
        if (!cache->X || !cache->logits || !cache->read || !cache->scratch || !cache->bad)
            return PL_ERR;
    }
    memset(cache->bad, 0, rows);
    int rc = sw->NX ? pl_sweep_local_optimize_batch(sw, &cache->local, first, n) : PL_OK;
    if (rc != PL_OK)
        return rc;
    /* Units are prompt-major, so a batch's prompts come in runs: group g is the g-th distinct one. */
    int *group = pl_malloc(sizeof(int) * 2 * (size_t)n, "batch groups"), *prompts = group + n, G = 0;
    if (!group)
        return PL_ERR;
    for (int i = 0; i < n; i++) {
        pl_unit_id id = pl_unit_decode(sw, first + i);
        if (G == 0 || prompts[G - 1] != id.p)
            prompts[G++] = id.p;
        group[i] = G - 1;
        rc = unit_steps_local(sw, cache, id, cache->X + (size_t)i * S * C,
                              out + (size_t)i * sw->unit_floats + (size_t)sw->NM * S);
        if (rc != PL_OK) {
            free(group);
            return rc;
        }
    }
    rc = find_nonfinite(sw, first, n, cache->X, NULL, NULL, cache->bad);
    if (rc == PL_OK)
        rc = sw->naive ? eval_naive(sw, cache, n, group, prompts) : eval_fast(sw, cache, n, group, prompts, G);
    free(group);
    if (rc != PL_OK)
        return rc == PL_ERR_BAD_INPUT ? rc : PL_ERR;
    rc = find_nonfinite(sw, first, n, NULL, cache->logits, cache->read, cache->bad);
    if (rc != PL_OK)
        return rc;
    return batch_metrics(sw, cache, first, n, out);
}

void pl_sweep_free(pl_sweep *sw)
{
    free(sw->alpha);
    free(sw->tokens);
    free(sw->real_act);
    free(sw->next_token);
    pl_prompt_texts_free(sw->prompt_text, sw->P);
    free(sw->mu);
    free(sw->chol);
    free(sw->sigma);
    pl_experiment_free(&sw->ex);
    if (sw->sae.dir)
        pl_sae_close(&sw->sae);
    memset(sw, 0, sizeof *sw);
}
