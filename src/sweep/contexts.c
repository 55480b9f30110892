/* Whole contexts (issue 18; Lee & Heimersheim, dajale423/error_pathology scripts/sensitive_direction.py,
 * `run_all_ablations` with pos=None): a unit perturbs the n_pos positions pos..pos+n_pos-1 of its
 * prompt at once, every position moved by the same alpha, and reads every perturbed position.
 *
 * The experiment's "prompts" are the sites (prompt, perturbed position), site p * n_pos + j: each
 * position has its own real activation, its own keyed streams, and so (per_position = own) its own
 * direction of the unit's kind, as Lee's hooks draw one per position. Under per_position = shared
 * every position takes the first one's displacement x_k - x_ref. A unit's rows are its steps, each
 * a variant of the whole context: X[steps, n_pos, C] through pl_patch_eval_positions_at (any hook: a
 * residual one, or a mid-block one, attn.hook_z as Lee's `--hook_loc z`; the readout at a residual
 * hook or ln_final.hook_normalized, C_read wide); its metrics
 * are computed at every position against the unit's reference row there, then kept per position
 * ([readout] positions = each: NPC = n_pos curves per unit and metric, [NM, NPC, steps]) or averaged
 * over the positions ([readout] positions = mean: one curve per unit).
 *
 * With local geometry ([fisher] k, the fisher and optimized kinds; issue 17) every site's is prepared
 * before its steps (local_ops.c: exactly what a one-position sweep at pos + j computes, so the fisher and
 * optimized directions of site j are its own), and the unit's extras hold every site's block and the
 * joint kl_rayleigh of its step (pl_sweep_local_context).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

/* Unit ID's rows X[S, n_pos, C] (variant k, position j at row k * n_pos + j); TMP[2][S, C] scratch. With
 * local geometry ([fisher], `optimized`) each site's is prepared first (local_ops.c: what a one-position
 * sweep at pos + j computes), its steps see it, and the unit's extras EXTRAS[NX] are filled. */
static int context_steps(const pl_sweep *sw, pl_unit_cache *cache, pl_unit_id id, float *X, float *tmp,
                         float *extras)
{
    int S = sw->steps, C = sw->C, N = sw->n_pos, rc = PL_OK;
    float *first = tmp, *own = tmp + (size_t)S * C;
    int ref = pl_unit_reference(&sw->ex, pl_unit_at_position(sw, id, 0));
    const pl_base_local **geos = sw->NX ? pl_calloc((size_t)N, sizeof *geos, "sites' geometry") : NULL;
    if (sw->NX && !geos)
        return PL_ERR;
    for (int j = 0; j < N; j++) {
        float *xj = j == 0 ? first : own;
        pl_experiment ex = sw->ex; /* the experiment as seen at site j's base */
        if (sw->NX) {
            geos[j] = pl_sweep_local_prepare(sw, &cache->local, pl_unit_at_position(sw, id, j), &rc);
            ex.local = geos[j];
        }
        if (rc != PL_OK || pl_unit_steps_of(&ex, pl_unit_at_position(sw, id, j), xj) != PL_OK) {
            free(geos);
            return rc != PL_OK ? rc : PL_ERR;
        }
        for (int k = 0; k < S; k++) {
            float *row = X + ((size_t)k * N + j) * C;
            if (sw->cfg->per_position == PL_PER_POSITION_SHARED && j > 0) /* base_j + (x0_k - x0_ref) */
                for (int c = 0; c < C; c++)
                    row[c] = xj[(size_t)ref * C + c] + (first[(size_t)k * C + c] - first[(size_t)ref * C + c]);
            else
                memcpy(row, xj + (size_t)k * C, sizeof(float) * C);
        }
    }
    if (sw->NX) /* the slots of every site hold their geometry still (a slot per site) */
        rc = pl_sweep_local_context(sw, &cache->local, geos, id, extras);
    free(geos);
    return rc;
}

/* The batch's N units through the fast path: their prompts' clean runs (G distinct ones, batched),
 * then every unit's S variants with all n_pos positions replaced. */
static int context_eval(const pl_sweep *sw, pl_unit_cache *cache, int n, const int *group, const int *prompts, int G)
{
    int *positions = pl_malloc(sizeof(int) * (size_t)sw->n_pos, "perturbed positions");
    if (!positions)
        return PL_ERR;
    for (int j = 0; j < sw->n_pos; j++)
        positions[j] = sw->pos + j;
    pl_batch_runs b;
    int rc = pl_batch_runs_open(sw, n, group, prompts, G, &b);
    if (rc == PL_OK)
        rc = pl_patch_eval_positions_at(sw->model, b.cleans, b.group_rows, n, sw->hook, positions, sw->n_pos, cache->X,
                                        cache->logits, sw->read, cache->read);
    pl_batch_runs_close(&b);
    free(positions);
    return rc;
}

/* Whether any of the N floats at X is not finite. */
static int any_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 1;
    return 0;
}

/* Unit I of the batch (sweep unit U) at position J: its S rows gathered (logits LG [S, V], read RD
 * [S, C_read], X XS [S, C]); returns whether any input there is not finite (the metrics it feeds are NaN). */
static int gather_position(const pl_sweep *sw, const pl_unit_cache *cache, int i, int j, float *lg, float *rd,
                           float *xs)
{
    int S = sw->steps, C = sw->C, V = sw->V, CR = sw->C_read, N = sw->n_pos, bad = 0;
    for (int k = 0; k < S; k++) {
        size_t row = ((size_t)i * S + k) * N + j;
        memcpy(lg + (size_t)k * V, cache->logits + row * V, sizeof(float) * V);
        memcpy(rd + (size_t)k * CR, cache->read + row * CR, sizeof(float) * CR);
        memcpy(xs + (size_t)k * C, cache->X + row * C, sizeof(float) * C);
        if (sw->cfg->residual_basis == PL_BASIS_CENTERED) /* L2 and cosine in TransformerLens's basis */
            pl_center_float(rd + (size_t)k * CR, CR);
    }
    bad |= any_nonfinite(lg, (size_t)S * V) || any_nonfinite(rd, (size_t)S * CR) || any_nonfinite(xs, (size_t)S * C);
    return bad;
}

/* The prompt's real next token after position Q (-1: none). */
static int next_token_after(const pl_sweep *sw, int p, int q)
{
    return q + 1 < sw->T ? sw->tokens[(size_t)p * sw->T + q + 1] : sw->next_token[p];
}

/* Unit I's curves O[NM, NPC, S]: its metrics at every perturbed position against its reference row
 * there, each position's own ([readout] positions = each, NPC = n_pos) or their mean over the
 * positions (NPC = 1; a NaN at any position makes the mean NaN: nothing is dropped). BUF holds
 * S * (V + C_read + C) + NM * S floats of scratch. */
static int context_metrics(const pl_sweep *sw, pl_unit_cache *cache, long u, int i, float *buf, float *o)
{
    int S = sw->steps, C = sw->C, V = sw->V, NM = sw->NM, each = sw->NPC > 1, rc = PL_OK;
    pl_unit_id id = pl_unit_decode(sw, u);
    float *lg = buf, *rd = lg + (size_t)S * V, *xs = rd + (size_t)S * sw->C_read, *oj = xs + (size_t)S * C;
    double *sum = calloc((size_t)NM * S, sizeof(double));
    if (!sum)
        return pl_fail("out of memory (position metrics)");
    for (int j = 0; j < sw->n_pos && rc == PL_OK; j++) {
        pl_unit_id site = pl_unit_at_position(sw, id, j);
        int bad = gather_position(sw, cache, i, j, lg, rd, xs);
        if (bad && !sw->cfg->nonfinite_mark) {
            char name[320];
            pl_unit_name(sw, u, name, sizeof name);
            free(sum);
            pl_fail("%s, position %d: a step vector, logit or read-hook value is not finite ([run] nonfinite = "
                    "error; 'mark' stores NaN and leaves it out of the statistics)", name, sw->pos + j);
            return PL_ERR_BAD_INPUT;
        }
        pl_unit_metrics(&sw->ex, lg, rd, xs, S, pl_unit_reference(&sw->ex, site),
                        next_token_after(sw, id.p, sw->pos + j), cache->scratch, oj);
        if (each) { /* position j's own curves: checked as one position's, then at [mi, j, :] */
            for (size_t k = 0; k < (size_t)NM * S && bad; k++)
                oj[k] = NAN;
            rc = pl_check_metric_values(sw, u, oj);
            for (int mi = 0; mi < NM; mi++)
                memcpy(o + ((size_t)mi * sw->NPC + j) * S, oj + (size_t)mi * S, sizeof(float) * S);
        } else {
            for (size_t k = 0; k < (size_t)NM * S; k++)
                sum[k] += bad ? NAN : oj[k];
        }
    }
    for (size_t k = 0; k < (size_t)NM * S && !each; k++)
        o[k] = (float)(sum[k] / sw->n_pos);
    free(sum);
    return rc != PL_OK || each ? rc : pl_check_metric_values(sw, u, o);
}

int pl_batch_eval_contexts(const pl_sweep *sw, pl_unit_cache *cache, long b, float *out)
{
    int C = sw->C, V = sw->V, CR = sw->C_read, S = sw->steps, n;
    long first = pl_batch_first_unit(sw, b, &n);
    size_t rows = (size_t)sw->batch_units * S * sw->n_pos;
    if (sw->naive)
        return pl_fail("--naive evaluates one perturbed position per full forward; [perturb] position = %d..%d "
                       "(whole contexts) runs only by the fast path", sw->pos, sw->pos + sw->n_pos - 1);
    if (!cache->X) {
        cache->X = pl_malloc(sizeof(float) * rows * C, "batch steps");
        cache->logits = pl_malloc(sizeof(float) * rows * V, "batch logits");
        cache->read = pl_malloc(sizeof(float) * rows * CR, "batch readout");
        /* the metrics' scratch, then one position's rows gathered and its metrics */
        cache->scratch = pl_malloc(pl_unit_metrics_scratch(&sw->ex, S), "metric scratch");
        cache->pos_rows = pl_malloc(sizeof(float) * ((size_t)S * (V + CR + C) + (size_t)sw->NM * S + 2 * (size_t)S * C),
                                    "position rows");
        if (!cache->X || !cache->logits || !cache->read || !cache->scratch || !cache->pos_rows)
            return PL_ERR;
    }
    float *buf = cache->pos_rows, *tmp = buf + (size_t)S * (V + CR + C) + (size_t)sw->NM * S;
    int *group = pl_malloc(sizeof(int) * 2 * (size_t)n, "batch groups"), *prompts = group + n, G = 0, rc = PL_OK;
    if (!group)
        return PL_ERR;
    for (int i = 0; i < n && rc == PL_OK; i++) { /* units are prompt-major: a batch's prompts come in runs */
        pl_unit_id id = pl_unit_decode(sw, first + i);
        if (G == 0 || prompts[G - 1] != id.p)
            prompts[G++] = id.p;
        group[i] = G - 1;
        rc = context_steps(sw, cache, id, cache->X + (size_t)i * S * sw->n_pos * C, tmp,
                           out + (size_t)i * sw->unit_floats + (size_t)sw->NM * sw->NPC * S);
    }
    if (rc == PL_OK)
        rc = context_eval(sw, cache, n, group, prompts, G);
    free(group);
    for (int i = 0; i < n && rc == PL_OK; i++) {
        float *o = out + (size_t)i * sw->unit_floats;
        int defined = 1; /* a unit without a direction at some position (e.g. sae_active) has NaN curves */
        for (int j = 0; j < sw->n_pos; j++)
            defined &= pl_unit_defined(&sw->ex, pl_unit_at_position(sw, pl_unit_decode(sw, first + i), j)) != 0;
        if (!defined) {
            for (size_t k = 0; k < (size_t)sw->NM * sw->NPC * S; k++)
                o[k] = NAN;
            continue;
        }
        rc = context_metrics(sw, cache, first + i, i, buf, o);
    }
    return rc;
}
