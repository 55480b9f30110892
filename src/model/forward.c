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

/* The one hook-name syntax. Only the block number has more than one spelling a user may mean: its
 * leading zeros are dropped. Anything else that is not exactly blocks.<digits>.hook_resid_pre or
 * _post (a sign, a blank, another hook) is refused, so that one activation has one name in configs,
 * outputs, checkpoints, SAE configs and merges. N_LAYER < 0: the model is not known (no range in
 * the message). */
static int hook_canonical(const char *name, char *out, size_t size, int n_layer)
{
    static const char prefix[] = "blocks.";
    const char *d = name + sizeof prefix - 1, *e = d;
    int syntax = strncmp(name, prefix, sizeof prefix - 1) != 0;
    while (!syntax && *e >= '0' && *e <= '9')
        e++;
    if (syntax || e == d || (strcmp(e, ".hook_resid_pre") && strcmp(e, ".hook_resid_post"))) {
        if (n_layer < 0)
            return pl_fail("hook '%s': expected blocks.N.hook_resid_pre or blocks.N.hook_resid_post (N: a block "
                           "number, digits only)", name);
        return pl_fail("hook '%s': expected blocks.N.hook_resid_pre or blocks.N.hook_resid_post (N in 0..%d)", name,
                       n_layer - 1);
    }
    while (d < e - 1 && *d == '0')
        d++;
    if (e - d > PL_HOOK_MAX_DIGITS)
        return pl_fail("hook '%s': block number %.*s is too large", name, (int)(e - d), d);
    if ((size_t)snprintf(out, size, "blocks.%.*s%s", (int)(e - d), d, e) >= size)
        return pl_fail("hook '%s': longer than %zu characters", name, size - 1);
    return PL_OK;
}

int pl_hook_canonical(const char *name, char *out, size_t size) { return hook_canonical(name, out, size, -1); }

int pl_hook_parse(const pl_model *m, const char *name, int *resid_index)
{
    int n_layer = m->info.n_layer;
    char canon[PL_HOOK_NAME_MAX];
    if (hook_canonical(name, canon, sizeof canon, n_layer) != PL_OK)
        return PL_ERR;
    const char *digits = canon + 7;
    long layer = strtol(digits, NULL, 10); /* at most PL_HOOK_MAX_DIGITS digits */
    if (layer >= n_layer)
        return pl_fail("hook '%s': block %ld does not exist (this model has blocks 0..%d)", name, layer,
                       n_layer - 1);
    *resid_index = (int)layer + (strstr(digits, "_post") ? 1 : 0);
    return PL_OK;
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

/* ------------------------------------------------------------ fast path */

int pl_patch_eval(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, int M,
                  float *logits, int read_index, float *read)
{
    return pl_patch_eval_groups(m, &clean, &M, 1, resid_index, pos, X, logits, read_index, read);
}

int pl_patch_eval_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                         int resid_index, int pos, const float *X, float *logits, int read_index, float *read)
{
    int C = m->info.d_model, L = m->info.n_layer;
    if (G < 1)
        return pl_fail("fast path: %d row groups", G);
    int T = cleans[0]->T;
    long total = 0;
    for (int g = 0; g < G; g++) {
        if (cleans[g]->C != C || cleans[g]->L != L || cleans[g]->T != T || !cleans[g]->logits)
            return pl_fail("fast path: cached run %d belongs to another model shape or length", g);
        if (group_rows[g] < 1)
            return pl_fail("fast path: group %d has %d rows", g, group_rows[g]);
        total += group_rows[g];
    }
    if (resid_index < 0 || resid_index > L || pos < 0 || pos >= T)
        return pl_fail("fast path: resid index %d / position %d outside the run (L=%d, T=%d)", resid_index, pos,
                       L, T);
    if (read && (read_index < 0 || read_index > L))
        return pl_fail("fast path: read index %d outside 0..%d", read_index, L);
    if (total > (1L << 24))
        return pl_fail("fast path: %ld rows in one call", total);
    return m->ops->patch_eval_groups(m, cleans, group_rows, G, (int)total, resid_index, pos, X, logits, read_index,
                                     read);
}

int pl_patch_eval_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                            int resid_index, const int *positions, int P, const float *X, float *logits,
                            int read_index, float *read)
{
    int C = m->info.d_model, L = m->info.n_layer;
    if (G < 1 || P < 1)
        return pl_fail("fast path: %d row groups, %d positions", G, P);
    int T = cleans[0]->T;
    long total = 0;
    for (int g = 0; g < G; g++) {
        if (cleans[g]->C != C || cleans[g]->L != L || cleans[g]->T != T || !cleans[g]->logits)
            return pl_fail("fast path: cached run %d belongs to another model shape or length", g);
        if (group_rows[g] < 1)
            return pl_fail("fast path: group %d has %d rows", g, group_rows[g]);
        total += group_rows[g];
    }
    if (resid_index < 0 || resid_index > L)
        return pl_fail("fast path: resid index %d outside 0..%d", resid_index, L);
    for (int j = 0; j < P; j++)
        if (positions[j] < 0 || positions[j] >= T || (j > 0 && positions[j] <= positions[j - 1]))
            return pl_fail("fast path: position %d (%d of %d) is outside 0..%d or not after the one before",
                           positions[j], j, P, T - 1);
    if (read && (read_index < 0 || read_index > L))
        return pl_fail("fast path: read index %d outside 0..%d", read_index, L);
    if (total * (T - positions[0]) > (1L << 24) || total * P > (1L << 24))
        return pl_fail("fast path: %ld variants of %d positions in one call", total, T - positions[0]);
    return m->ops->patch_eval_positions(m, cleans, group_rows, G, (int)total, resid_index, positions, P, X, logits,
                                        read_index, read);
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
