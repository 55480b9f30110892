/* The forward API of plateau/forward.h: argument checks common to every family, then the family's
 * own math (model_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/forward.h"

/* ------------------------------------------------------------ hooks */

/* The sites of blocks.N.<site>, in pl_hook_point's order (PL_SITE_RESID_PRE ..). TransformerLens's
 * names: transformer_lens/components/transformer_block.py (hook_resid_pre/mid/post, hook_attn_out,
 * hook_mlp_out, TransformerBlock.__init__) and abstract_attention.py (attn.hook_z). */
static const char *const site_names[] = {"hook_resid_pre", "attn.hook_z",  "hook_attn_out",
                                         "hook_resid_mid", "hook_mlp_out", "hook_resid_post"};
#define N_BLOCK_SITES ((int)(sizeof site_names / sizeof *site_names))
static const char final_normalized[] = "ln_final.hook_normalized";

/* The block site named by E (".hook_resid_pre" ...), or -1. */
static int site_of(const char *e)
{
    for (int i = 0; i < N_BLOCK_SITES; i++)
        if (e[0] == '.' && !strcmp(e + 1, site_names[i]))
            return i;
    return -1;
}

/* The one hook-name syntax. Only the block number has more than one spelling a user may mean: its
 * leading zeros are dropped. Anything else that is not exactly blocks.<digits>.<site> or
 * ln_final.hook_normalized (a sign, a blank, another hook) is refused, so that one activation has
 * one name in configs, outputs, checkpoints, SAE configs and merges. N_LAYER < 0: the model is not
 * known (no range in the message). *SITE: the site (PL_SITE_*). */
static int hook_canonical(const char *name, char *out, size_t size, int n_layer, int *site)
{
    static const char prefix[] = "blocks.";
    if (!strcmp(name, final_normalized)) {
        *site = PL_SITE_FINAL_NORMALIZED;
        if ((size_t)snprintf(out, size, "%s", name) >= size)
            return pl_fail("hook '%s': longer than %zu characters", name, size - 1);
        return PL_OK;
    }
    const char *d = name + sizeof prefix - 1, *e = d;
    int syntax = strncmp(name, prefix, sizeof prefix - 1) != 0;
    while (!syntax && *e >= '0' && *e <= '9')
        e++;
    if (syntax || e == d || (*site = site_of(e)) < 0) {
        static const char sites[] = "hook_resid_pre, hook_resid_mid, hook_resid_post, attn.hook_z, hook_attn_out, "
                                    "hook_mlp_out";
        if (n_layer < 0)
            return pl_fail("hook '%s': expected blocks.N.SITE (N: a block number, digits only; SITE: %s) or %s", name,
                           sites, final_normalized);
        return pl_fail("hook '%s': expected blocks.N.SITE (N in 0..%d; SITE: %s) or %s", name, n_layer - 1, sites,
                       final_normalized);
    }
    while (d < e - 1 && *d == '0')
        d++;
    if (e - d > PL_HOOK_MAX_DIGITS)
        return pl_fail("hook '%s': block number %.*s is too large", name, (int)(e - d), d);
    if ((size_t)snprintf(out, size, "blocks.%.*s%s", (int)(e - d), d, e) >= size)
        return pl_fail("hook '%s': longer than %zu characters", name, size - 1);
    return PL_OK;
}

int pl_hook_canonical(const char *name, char *out, size_t size)
{
    int site;
    return hook_canonical(name, out, size, -1, &site);
}

int pl_hook_site(const char *name)
{
    char canon[PL_HOOK_NAME_MAX];
    int site;
    if (hook_canonical(name, canon, sizeof canon, -1, &site) != PL_OK) {
        pl_error_clear();
        return -1;
    }
    return site;
}

int pl_hook_point_parse(const pl_model *m, const char *name, pl_hook_point *pt)
{
    int n_layer = m->info.n_layer, site;
    char canon[PL_HOOK_NAME_MAX];
    if (hook_canonical(name, canon, sizeof canon, n_layer, &site) != PL_OK)
        return PL_ERR;
    if (site == PL_SITE_FINAL_NORMALIZED) {
        *pt = (pl_hook_point){n_layer, site};
        return PL_OK;
    }
    long layer = strtol(canon + 7, NULL, 10); /* at most PL_HOOK_MAX_DIGITS digits */
    if (layer >= n_layer)
        return pl_fail("hook '%s': block %ld does not exist (this model has blocks 0..%d)", name, layer,
                       n_layer - 1);
    /* transformer_block.py: hook_resid_mid exists only when not cfg.parallel_attn_mlp */
    if (site == PL_SITE_RESID_MID && m->info.parallel_residual)
        return pl_fail("hook '%s': this model's attention and MLP run in parallel (x + attn + mlp), so there is no "
                       "hook_resid_mid (TransformerLens has none either)", name);
    *pt = (pl_hook_point){(int)layer, site};
    return PL_OK;
}

int pl_hook_parse(const pl_model *m, const char *name, int *resid_index)
{
    pl_hook_point pt;
    if (pl_hook_point_parse(m, name, &pt) != PL_OK)
        return PL_ERR;
    if ((*resid_index = pl_hook_resid_index(pt)) < 0)
        return pl_fail("hook '%s': only the residual stream (blocks.N.hook_resid_pre or blocks.N.hook_resid_post) "
                       "is supported here", name);
    return PL_OK;
}

int pl_hook_resid_index(pl_hook_point pt)
{
    return pt.site == PL_SITE_RESID_PRE ? pt.layer : pt.site == PL_SITE_RESID_POST ? pt.layer + 1 : -1;
}

int pl_hook_width(const pl_model *m, pl_hook_point pt)
{
    return pt.site == PL_SITE_ATTN_Z ? m->info.n_head * m->info.head_dim : m->info.d_model;
}

/* ------------------------------------------------------------ full forward */

void pl_run_free(pl_run *run)
{
    free(run->resid);
    free(run->k);
    free(run->v);
    free(run->logits);
    memset(run, 0, sizeof *run);
}

static int check_tokens(const pl_model *m, const int *tokens, int N, int T)
{
    const pl_model_info *info = &m->info;
    if (N < 1)
        return pl_fail("forward: %d sequences", N);
    if (T < 1 || T > info->n_ctx)
        return pl_fail("%d tokens: the model takes 1..%d positions", T, info->n_ctx);
    for (size_t t = 0; t < (size_t)N * T; t++)
        if (tokens[t] < 0 || tokens[t] >= info->n_vocab)
            return pl_fail("token id %d at position %d is outside the vocabulary (0..%d)", tokens[t], (int)(t % T),
                           info->n_vocab - 1);
    return PL_OK;
}

static int forward_checked(const pl_model *m, const int *tokens, int N, int T, int stop, int patch_index,
                           int patch_pos, const float *patch, pl_run *runs)
{
    for (int i = 0; i < N; i++)
        memset(&runs[i], 0, sizeof runs[i]);
    if (check_tokens(m, tokens, N, T) != PL_OK)
        return PL_ERR;
    int L = m->info.n_layer;
    if (patch && (patch_index < 0 || patch_index > L || patch_pos < 0 || patch_pos >= T))
        return pl_fail("patch at resid index %d, position %d is outside the run (L=%d, T=%d)", patch_index,
                       patch_pos, L, T);
    return m->ops->forward(m, tokens, N, T, stop, patch_index, patch_pos, patch, runs);
}

int pl_forward(const pl_model *m, const int *tokens, int T, pl_run *run)
{
    return forward_checked(m, tokens, 1, T, m->info.n_layer, -1, -1, NULL, run);
}

int pl_forward_batch(const pl_model *m, const int *tokens, int N, int T, pl_run *runs)
{
    return forward_checked(m, tokens, N, T, m->info.n_layer, -1, -1, NULL, runs);
}

int pl_forward_patched(const pl_model *m, const int *tokens, int T, int resid_index, int pos, const float *patch,
                       pl_run *run)
{
    if (!patch)
        return pl_fail("pl_forward_patched: no patch vector");
    return forward_checked(m, tokens, 1, T, m->info.n_layer, resid_index, pos, patch, run);
}

int pl_forward_resid(const pl_model *m, const int *tokens, int N, int T, int resid_index, int pos, float *out)
{
    int L = m->info.n_layer, C = m->info.d_model;
    if (resid_index < 0 || resid_index > L || pos < 0 || pos >= T)
        return pl_fail("residual at index %d, position %d is outside the run (L=%d, T=%d)", resid_index, pos, L, T);
    pl_run *runs = pl_calloc((size_t)(N > 0 ? N : 1), sizeof *runs, "runs");
    if (!runs)
        return PL_ERR;
    int rc = forward_checked(m, tokens, N, T, resid_index, -1, -1, NULL, runs);
    for (int i = 0; i < N; i++) {
        if (rc == PL_OK)
            memcpy(out + (size_t)i * C, runs[i].resid + ((size_t)resid_index * T + pos) * C, sizeof(float) * C);
        pl_run_free(&runs[i]);
    }
    free(runs);
    return rc;
}

/* ------------------------------------------------------------ any hook point */

/* A mid-block point: attn.hook_z, hook_attn_out, hook_resid_mid, hook_mlp_out. */
static int is_mid_block(pl_hook_point pt) { return pt.site > PL_SITE_RESID_PRE && pt.site < PL_SITE_RESID_POST; }

/* The point exists in this model (pl_hook_point_parse makes only such points; API callers may not). */
static int check_point(const pl_model *m, pl_hook_point pt)
{
    int L = m->info.n_layer;
    if (pt.site < PL_SITE_RESID_PRE || pt.site > PL_SITE_FINAL_NORMALIZED ||
        (pt.site == PL_SITE_FINAL_NORMALIZED ? pt.layer != L : pt.layer < 0 || pt.layer >= L))
        return pl_fail("hook point (block %d, site %d) is not in this model (L=%d)", pt.layer, pt.site, L);
    if (pt.site == PL_SITE_RESID_MID && m->info.parallel_residual)
        return pl_fail("hook_resid_mid of block %d: this model's attention and MLP run in parallel, there is none",
                       pt.layer);
    return PL_OK;
}

int pl_forward_at(const pl_model *m, const int *tokens, int N, int T, pl_hook_point pt, int pos, float *out)
{
    int L = m->info.n_layer;
    if (check_point(m, pt) != PL_OK)
        return PL_ERR;
    if (!is_mid_block(pt)) {
        int r = pt.site == PL_SITE_FINAL_NORMALIZED ? L : pl_hook_resid_index(pt);
        if (pl_forward_resid(m, tokens, N, T, r, pos, out) != PL_OK)
            return PL_ERR;
        return pt.site == PL_SITE_FINAL_NORMALIZED ? m->ops->final_normalized(m, out, N) : PL_OK;
    }
    if (pos < 0 || pos >= T)
        return pl_fail("activation at position %d is outside the run (T=%d)", pos, T);
    pl_run *runs = pl_calloc((size_t)(N > 0 ? N : 1), sizeof *runs, "runs");
    if (!runs)
        return PL_ERR;
    int rc = check_tokens(m, tokens, N, T);
    if (rc == PL_OK) /* blocks 0..layer only: the point is inside the last of them */
        rc = m->ops->forward_at(m, tokens, N, T, pt.layer + 1, pt, pos, 1, NULL, out, runs);
    for (int i = 0; i < N; i++)
        pl_run_free(&runs[i]);
    free(runs);
    return rc;
}

int pl_forward_resid_range(const pl_model *m, const int *tokens, int N, int T, int resid_index, int first, int count,
                           float *out)
{
    int L = m->info.n_layer, C = m->info.d_model;
    if (resid_index < 0 || resid_index > L || first < 0 || count < 1 || first + count > T)
        return pl_fail("residual at index %d, positions %d..%d are outside the run (L=%d, T=%d)", resid_index, first,
                       first + count - 1, L, T);
    pl_run *runs = pl_calloc((size_t)(N > 0 ? N : 1), sizeof *runs, "runs");
    if (!runs)
        return PL_ERR;
    int rc = forward_checked(m, tokens, N, T, resid_index, -1, -1, NULL, runs);
    size_t W = (size_t)count * C;
    for (int i = 0; i < N; i++) {
        if (rc == PL_OK)
            memcpy(out + (size_t)i * W, runs[i].resid + ((size_t)resid_index * T + first) * C, sizeof(float) * W);
        pl_run_free(&runs[i]);
    }
    free(runs);
    return rc;
}

int pl_forward_range_at(const pl_model *m, const int *tokens, int N, int T, pl_hook_point pt, int first, int count,
                        float *out)
{
    int L = m->info.n_layer;
    if (check_point(m, pt) != PL_OK)
        return PL_ERR;
    if (!is_mid_block(pt)) {
        int r = pt.site == PL_SITE_FINAL_NORMALIZED ? L : pl_hook_resid_index(pt);
        if (pl_forward_resid_range(m, tokens, N, T, r, first, count, out) != PL_OK)
            return PL_ERR;
        return pt.site == PL_SITE_FINAL_NORMALIZED ? m->ops->final_normalized(m, out, N * count) : PL_OK;
    }
    if (first < 0 || count < 1 || first + count > T)
        return pl_fail("activations at positions %d..%d are outside the run (T=%d)", first, first + count - 1, T);
    pl_run *runs = pl_calloc((size_t)(N > 0 ? N : 1), sizeof *runs, "runs");
    if (!runs)
        return PL_ERR;
    int rc = check_tokens(m, tokens, N, T);
    if (rc == PL_OK) /* blocks 0..layer only: the point is inside the last of them */
        rc = m->ops->forward_at(m, tokens, N, T, pt.layer + 1, pt, first, count, NULL, out, runs);
    for (int i = 0; i < N; i++)
        pl_run_free(&runs[i]);
    free(runs);
    return rc;
}

int pl_forward_patched_at(const pl_model *m, const int *tokens, int T, pl_hook_point pt, int pos,
                          const float *patch, pl_run *run)
{
    if (check_point(m, pt) != PL_OK)
        return PL_ERR;
    if (pt.site == PL_SITE_FINAL_NORMALIZED)
        return pl_fail("hook 'ln_final.hook_normalized' is a readout: nothing flows on from it to perturb");
    if (!is_mid_block(pt))
        return pl_forward_patched(m, tokens, T, pl_hook_resid_index(pt), pos, patch, run);
    memset(run, 0, sizeof *run);
    if (!patch)
        return pl_fail("pl_forward_patched_at: no patch vector");
    if (check_tokens(m, tokens, 1, T) != PL_OK)
        return PL_ERR;
    if (pos < 0 || pos >= T)
        return pl_fail("patch at position %d is outside the run (T=%d)", pos, T);
    return m->ops->forward_at(m, tokens, 1, T, m->info.n_layer, pt, pos, 1, patch, NULL, run);
}

/* The resid index a readout point reads (ln_final.hook_normalized: L, normalised after), or -1 with
 * the error set. */
static int read_index_of(const pl_model *m, pl_hook_point read_pt)
{
    if (check_point(m, read_pt) != PL_OK)
        return -1;
    if (read_pt.site == PL_SITE_FINAL_NORMALIZED)
        return m->info.n_layer;
    int r = pl_hook_resid_index(read_pt);
    if (r < 0)
        pl_fail("readout at block %d's %s: only the residual stream (blocks.N.hook_resid_pre|post) or "
                "ln_final.hook_normalized can be read", read_pt.layer, site_names[read_pt.site]);
    return r;
}

int pl_read_at(const pl_model *m, const pl_run *run, pl_hook_point read_pt, int t_at, float *read)
{
    int r = read_index_of(m, read_pt), C = m->info.d_model;
    if (r < 0)
        return PL_ERR;
    if (t_at < 0 || t_at >= run->T || r > run->L || run->C != C)
        return pl_fail("readout at resid index %d, position %d is outside the run", r, t_at);
    memcpy(read, run->resid + ((size_t)r * run->T + t_at) * C, sizeof(float) * C);
    return read_pt.site == PL_SITE_FINAL_NORMALIZED ? m->ops->final_normalized(m, read, 1) : PL_OK;
}

int pl_patch_eval_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                            pl_hook_point pt, int pos, const float *X, float *logits, pl_hook_point read_pt,
                            float *read)
{
    int read_index = 0, rc;
    if (check_point(m, pt) != PL_OK || (read && (read_index = read_index_of(m, read_pt)) < 0))
        return PL_ERR;
    if (pt.site == PL_SITE_FINAL_NORMALIZED)
        return pl_fail("hook 'ln_final.hook_normalized' is a readout: nothing flows on from it to perturb");
    if (!is_mid_block(pt)) {
        rc = pl_patch_eval_groups(m, cleans, group_rows, G, pl_hook_resid_index(pt), pos, X, logits, read_index,
                                  read);
    } else {
        /* the checks of pl_patch_eval_groups, for the resid index l + 1 the rows go on from */
        long total;
        if (pl_fast_groups_check(m, cleans, group_rows, G, "fast path", &total) != PL_OK)
            return PL_ERR;
        if (pos < 0 || pos >= cleans[0]->T)
            return pl_fail("fast path: position %d outside the run (T=%d)", pos, cleans[0]->T);
        rc = m->ops->patch_eval_groups_at(m, cleans, group_rows, G, (int)total, pt, pos, X, logits, read_index,
                                          read);
    }
    if (rc == PL_OK && read && read_pt.site == PL_SITE_FINAL_NORMALIZED) {
        long M = 0;
        for (int g = 0; g < G; g++)
            M += group_rows[g];
        rc = m->ops->final_normalized(m, read, (int)M);
    }
    return rc;
}

/* ------------------------------------------------------------ fast path */

int pl_fast_groups_check(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                         const char *what, long *total)
{
    int C = m->info.d_model, L = m->info.n_layer;
    if (G < 1)
        return pl_fail("%s: %d row groups", what, G);
    int T = cleans[0]->T;
    *total = 0;
    for (int g = 0; g < G; g++) {
        if (cleans[g]->C != C || cleans[g]->L != L || cleans[g]->T != T || !cleans[g]->logits)
            return pl_fail("%s: cached run %d belongs to another model shape or length", what, g);
        if (group_rows[g] < 1)
            return pl_fail("%s: group %d has %d rows", what, g, group_rows[g]);
        *total += group_rows[g];
    }
    if (*total > (1L << 24))
        return pl_fail("%s: %ld rows in one call", what, *total);
    return PL_OK;
}

int pl_patch_eval(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, int M,
                  float *logits, int read_index, float *read)
{
    return pl_patch_eval_groups(m, &clean, &M, 1, resid_index, pos, X, logits, read_index, read);
}

int pl_patch_eval_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                         int resid_index, int pos, const float *X, float *logits, int read_index, float *read)
{
    int L = m->info.n_layer;
    long total;
    if (pl_fast_groups_check(m, cleans, group_rows, G, "fast path", &total) != PL_OK)
        return PL_ERR;
    int T = cleans[0]->T;
    if (resid_index < 0 || resid_index > L || pos < 0 || pos >= T)
        return pl_fail("fast path: resid index %d / position %d outside the run (L=%d, T=%d)", resid_index, pos,
                       L, T);
    if (read && (read_index < 0 || read_index > L))
        return pl_fail("fast path: read index %d outside 0..%d", read_index, L);
    return m->ops->patch_eval_groups(m, cleans, group_rows, G, (int)total, resid_index, pos, X, logits, read_index,
                                     read);
}

/* The checks of a whole-context call whose rows go on from RESID_INDEX; *TOTAL: the rows. */
static int positions_check(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, int read_index, const float *read,
                           long *total)
{
    int L = m->info.n_layer;
    if (P < 1)
        return pl_fail("fast path: %d positions", P);
    if (pl_fast_groups_check(m, cleans, group_rows, G, "fast path", total) != PL_OK)
        return PL_ERR;
    int T = cleans[0]->T;
    if (resid_index < 0 || resid_index > L)
        return pl_fail("fast path: resid index %d outside 0..%d", resid_index, L);
    for (int j = 0; j < P; j++)
        if (positions[j] < 0 || positions[j] >= T || (j > 0 && positions[j] <= positions[j - 1]))
            return pl_fail("fast path: position %d (%d of %d) is outside 0..%d or not after the one before",
                           positions[j], j, P, T - 1);
    if (read && (read_index < 0 || read_index > L))
        return pl_fail("fast path: read index %d outside 0..%d", read_index, L);
    if (*total * (T - positions[0]) > (1L << 24) || *total * P > (1L << 24))
        return pl_fail("fast path: %ld variants of %d positions in one call", *total, T - positions[0]);
    return PL_OK;
}

int pl_patch_eval_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                            int resid_index, const int *positions, int P, const float *X, float *logits,
                            int read_index, float *read)
{
    long total;
    if (positions_check(m, cleans, group_rows, G, resid_index, positions, P, read_index, read, &total) != PL_OK)
        return PL_ERR;
    return m->ops->patch_eval_positions(m, cleans, group_rows, G, (int)total, resid_index, positions, P, X, logits,
                                        read_index, read);
}

int pl_patch_eval_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                               pl_hook_point pt, const int *positions, int P, const float *X, float *logits,
                               pl_hook_point read_pt, float *read)
{
    int read_index = 0, rc;
    if (check_point(m, pt) != PL_OK || (read && (read_index = read_index_of(m, read_pt)) < 0))
        return PL_ERR;
    if (pt.site == PL_SITE_FINAL_NORMALIZED)
        return pl_fail("hook 'ln_final.hook_normalized' is a readout: nothing flows on from it to perturb");
    if (!is_mid_block(pt)) {
        rc = pl_patch_eval_positions(m, cleans, group_rows, G, pl_hook_resid_index(pt), positions, P, X, logits,
                                     read_index, read);
    } else {
        /* the checks of pl_patch_eval_positions, for the resid index l + 1 the rows go on from */
        long M;
        rc = positions_check(m, cleans, group_rows, G, pt.layer + 1, positions, P, read_index, read, &M);
        if (rc == PL_OK)
            rc = m->ops->patch_eval_positions_at(m, cleans, group_rows, G, (int)M, pt, positions, P, X, logits,
                                                 read_index, read);
    }
    if (rc == PL_OK && read && read_pt.site == PL_SITE_FINAL_NORMALIZED) {
        long M = 0;
        for (int g = 0; g < G; g++)
            M += group_rows[g];
        rc = m->ops->final_normalized(m, read, (int)(M * P));
    }
    return rc;
}

/* ------------------------------------------------------------ readout helpers */

void pl_log_softmax(float *logp, const float *logits, int M, int V)
{
    for (int i = 0; i < M; i++) {
        const float *z = logits + (size_t)i * V;
        float *out = logp + (size_t)i * V;
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++)
            if (z[j] > maxv)
                maxv = z[j];
        double sum = 0.0;
        for (int j = 0; j < V; j++)
            sum += expf(z[j] - maxv);
        float lse = (float)(maxv + log(sum));
        for (int j = 0; j < V; j++)
            out[j] = z[j] - lse;
    }
}

/* ------------------------------------------------------------ FLOP counts */

double pl_forward_flops(const pl_model *m, int T) { return m->ops->forward_flops(m, T); }

double pl_patch_flops(const pl_model *m, int T, int resid_index, int pos)
{
    return m->ops->patch_flops(m, T, resid_index, pos);
}
