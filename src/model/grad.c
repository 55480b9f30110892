/* plateau/grad.h: the arguments of the derivative calls checked as pl_patch_eval_groups checks its
 * own (forward.c), then the family's derivatives (families/decoder_grad.c). */
#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/grad.h"

/* The groups' runs, positions and read index; *TOTAL receives M. */
static int check_call(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int resid_index,
                      int pos, int read_index, int reads, int *total)
{
    int L = m->info.n_layer;
    if (!m->ops->patch_jvp_groups || !m->ops->patch_vjp_groups)
        return pl_fail("derivatives: family %s has no derivatives through the fast path", m->info.family);
    long sum;
    if (pl_fast_groups_check(m, cleans, group_rows, G, "derivatives", &sum) != PL_OK)
        return PL_ERR;
    int T = cleans[0]->T;
    if (resid_index < 0 || resid_index > L || pos < 0 || pos >= T)
        return pl_fail("derivatives: resid index %d / position %d outside the run (L=%d, T=%d)", resid_index, pos, L,
                       T);
    if (reads && (read_index < 0 || read_index > L))
        return pl_fail("derivatives: read index %d outside 0..%d", read_index, L);
    *total = (int)sum;
    return PL_OK;
}

int pl_patch_jvp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                        int resid_index, int pos, const float *X, const float *DX, float *logits, float *dlogits,
                        int read_index, float *read, float *dread)
{
    int M = 0;
    if (!X || !DX || (!dlogits && !dread))
        return pl_fail("derivatives: a JVP needs rows, tangents and dlogits or dread");
    if (check_call(m, cleans, group_rows, G, resid_index, pos, read_index, read || dread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_jvp_groups(m, cleans, group_rows, G, M, resid_index, pos, X, DX, logits, dlogits, read_index,
                                    read, dread);
}

int pl_patch_vjp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                        int resid_index, int pos, const float *X, const float *glogits, int read_index,
                        const float *gread, float *logits, float *read, float *dx)
{
    int M = 0;
    if (!X || !dx || (!glogits && !gread))
        return pl_fail("derivatives: a VJP needs rows, dx and glogits or gread");
    if (check_call(m, cleans, group_rows, G, resid_index, pos, read_index, read || gread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_vjp_groups(m, cleans, group_rows, G, M, resid_index, pos, X, glogits, read_index, gread,
                                    logits, read, dx);
}

/* A mid-block point PT of this model. */
static int check_mid(const pl_model *m, pl_hook_point pt)
{
    int L = m->info.n_layer;
    if (pt.site <= PL_SITE_RESID_PRE || pt.site >= PL_SITE_RESID_POST || pt.layer < 0 || pt.layer >= L)
        return pl_fail("derivatives: hook point (block %d, site %d) is not a mid-block point of this model (L=%d)",
                       pt.layer, pt.site, L);
    if (pt.site == PL_SITE_RESID_MID && m->info.parallel_residual)
        return pl_fail("derivatives: hook_resid_mid of block %d: this model's attention and MLP run in parallel, "
                       "there is none", pt.layer);
    if (!m->ops->patch_jvp_groups_at || !m->ops->patch_vjp_groups_at || !m->ops->patch_jvp_positions_at ||
        !m->ops->patch_vjp_positions_at)
        return pl_fail("derivatives: family %s has no derivatives from a mid-block hook", m->info.family);
    return PL_OK;
}

/* A mid-block point PT of this model, and the call's rows for the resid index PT.layer + 1 they go on from. */
static int check_site(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, pl_hook_point pt,
                      int pos, int read_index, int reads, int *total)
{
    if (check_mid(m, pt) != PL_OK)
        return PL_ERR;
    return check_call(m, cleans, group_rows, G, pt.layer + 1, pos, read_index, reads, total);
}

int pl_patch_jvp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           pl_hook_point pt, int pos, const float *X, const float *DX, float *logits, float *dlogits,
                           int read_index, float *read, float *dread)
{
    int r = pl_hook_resid_index(pt), M = 0;
    if (r >= 0)
        return pl_patch_jvp_groups(m, cleans, group_rows, G, r, pos, X, DX, logits, dlogits, read_index, read, dread);
    if (!X || !DX || (!dlogits && !dread))
        return pl_fail("derivatives: a JVP needs rows, tangents and dlogits or dread");
    if (check_site(m, cleans, group_rows, G, pt, pos, read_index, read || dread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_jvp_groups_at(m, cleans, group_rows, G, M, pt, pos, X, DX, logits, dlogits, read_index,
                                       read, dread);
}

int pl_patch_vjp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           pl_hook_point pt, int pos, const float *X, const float *glogits, int read_index,
                           const float *gread, float *logits, float *read, float *dx)
{
    int r = pl_hook_resid_index(pt), M = 0;
    if (r >= 0)
        return pl_patch_vjp_groups(m, cleans, group_rows, G, r, pos, X, glogits, read_index, gread, logits, read, dx);
    if (!X || !dx || (!glogits && !gread))
        return pl_fail("derivatives: a VJP needs rows, dx and glogits or gread");
    if (check_site(m, cleans, group_rows, G, pt, pos, read_index, read || gread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_vjp_groups_at(m, cleans, group_rows, G, M, pt, pos, X, glogits, read_index, gread, logits,
                                       read, dx);
}

/* The checks of pl_patch_eval_positions (forward.c's positions_check) for derivatives; *TOTAL: M. */
static int check_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, int read_index, int reads, int *total)
{
    int L = m->info.n_layer;
    if (!m->ops->patch_jvp_positions || !m->ops->patch_vjp_positions)
        return pl_fail("derivatives: family %s has no derivatives over several positions", m->info.family);
    if (!positions || P < 1)
        return pl_fail("derivatives: %d positions", P);
    long sum;
    if (pl_fast_groups_check(m, cleans, group_rows, G, "derivatives", &sum) != PL_OK)
        return PL_ERR;
    int T = cleans[0]->T;
    if (resid_index < 0 || resid_index > L)
        return pl_fail("derivatives: resid index %d outside 0..%d", resid_index, L);
    for (int j = 0; j < P; j++)
        if (positions[j] < 0 || positions[j] >= T || (j > 0 && positions[j] <= positions[j - 1]))
            return pl_fail("derivatives: position %d (%d of %d) is outside 0..%d or not after the one before",
                           positions[j], j, P, T - 1);
    if (reads && (read_index < 0 || read_index > L))
        return pl_fail("derivatives: read index %d outside 0..%d", read_index, L);
    if (sum * (T - positions[0]) > (1L << 24) || sum * P > (1L << 24))
        return pl_fail("derivatives: %ld variants of %d positions in one call", sum, T - positions[0]);
    *total = (int)sum;
    return PL_OK;
}

int pl_patch_jvp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, const float *X, const float *DX,
                           float *logits, float *dlogits, int read_index, float *read, float *dread)
{
    int M = 0;
    if (!X || !DX || (!dlogits && !dread))
        return pl_fail("derivatives: a JVP needs rows, tangents and dlogits or dread");
    if (check_positions(m, cleans, group_rows, G, resid_index, positions, P, read_index, read || dread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_jvp_positions(m, cleans, group_rows, G, M, resid_index, positions, P, X, DX, logits, dlogits,
                                       read_index, read, dread);
}

int pl_patch_vjp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, const float *X, const float *glogits,
                           int read_index, const float *gread, float *logits, float *read, float *dx)
{
    int M = 0;
    if (!X || !dx || (!glogits && !gread))
        return pl_fail("derivatives: a VJP needs rows, dx and glogits or gread");
    if (check_positions(m, cleans, group_rows, G, resid_index, positions, P, read_index, read || gread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_vjp_positions(m, cleans, group_rows, G, M, resid_index, positions, P, X, glogits,
                                       read_index, gread, logits, read, dx);
}

int pl_patch_jvp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                              pl_hook_point pt, const int *positions, int P, const float *X, const float *DX,
                              float *logits, float *dlogits, int read_index, float *read, float *dread)
{
    int r = pl_hook_resid_index(pt), M = 0;
    if (r >= 0)
        return pl_patch_jvp_positions(m, cleans, group_rows, G, r, positions, P, X, DX, logits, dlogits, read_index,
                                      read, dread);
    if (!X || !DX || (!dlogits && !dread))
        return pl_fail("derivatives: a JVP needs rows, tangents and dlogits or dread");
    if (check_mid(m, pt) != PL_OK ||
        check_positions(m, cleans, group_rows, G, pt.layer + 1, positions, P, read_index, read || dread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_jvp_positions_at(m, cleans, group_rows, G, M, pt, positions, P, pl_hook_width(m, pt), X, DX,
                                          logits, dlogits, read_index, read, dread);
}

int pl_patch_vjp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                              pl_hook_point pt, const int *positions, int P, const float *X, const float *glogits,
                              int read_index, const float *gread, float *logits, float *read, float *dx)
{
    int r = pl_hook_resid_index(pt), M = 0;
    if (r >= 0)
        return pl_patch_vjp_positions(m, cleans, group_rows, G, r, positions, P, X, glogits, read_index, gread,
                                      logits, read, dx);
    if (!X || !dx || (!glogits && !gread))
        return pl_fail("derivatives: a VJP needs rows, dx and glogits or gread");
    if (check_mid(m, pt) != PL_OK ||
        check_positions(m, cleans, group_rows, G, pt.layer + 1, positions, P, read_index, read || gread, &M) != PL_OK)
        return PL_ERR;
    return m->ops->patch_vjp_positions_at(m, cleans, group_rows, G, M, pt, positions, P, pl_hook_width(m, pt), X,
                                          glogits, read_index, gread, logits, read, dx);
}

int pl_patch_jvp(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, const float *DX,
                 int M, float *logits, float *dlogits, int read_index, float *read, float *dread)
{
    return pl_patch_jvp_groups(m, &clean, &M, 1, resid_index, pos, X, DX, logits, dlogits, read_index, read, dread);
}

int pl_patch_vjp(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, int M,
                 const float *glogits, int read_index, const float *gread, float *logits, float *read, float *dx)
{
    return pl_patch_vjp_groups(m, &clean, &M, 1, resid_index, pos, X, glogits, read_index, gread, logits, read, dx);
}

double pl_patch_jvp_flops(const pl_model *m, int T, int resid_index, int pos)
{
    return m->ops->patch_jvp_flops ? m->ops->patch_jvp_flops(m, T, resid_index, pos) : 0.0;
}

double pl_patch_vjp_flops(const pl_model *m, int T, int resid_index, int pos)
{
    return m->ops->patch_vjp_flops ? m->ops->patch_vjp_flops(m, T, resid_index, pos) : 0.0;
}
