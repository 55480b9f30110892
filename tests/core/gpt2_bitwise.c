/* GPT-2 through the one decoder against GPT-2 as plateau computed it before (gpt2_legacy.c, the
 * old forward and fast path kept for this test), bit for bit: the residual at every index, the
 * keys and values, the logits of pl_forward, pl_forward_batch, pl_forward_resid and
 * pl_forward_patched, and the logits and reads of pl_patch_eval_groups at every resid index and
 * several positions (one row: sgemv; many rows in groups: sgemm); also the info and FLOP counts.
 * usage: gpt2_bitwise MODEL_DIR   (exit 0 when every number is the same bits, 1 otherwise) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2_legacy.h"
#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/forward.h"

static int failures, compared;

static void same(const char *what, const float *a, const float *b, size_t n)
{
    compared++;
    if (memcmp(a, b, n * sizeof(float))) {
        size_t i = 0;
        while (!memcmp(a + i, b + i, sizeof(float)) && i < n)
            i++;
        printf("DIFF %s: element %zu of %zu: decoder %.9g, legacy %.9g\n", what, i, n, (double)a[i], (double)b[i]);
        failures++;
    }
}

static void same_run(const char *what, const pl_run *a, const pl_run *b, int stop)
{
    char label[160];
    size_t resid = (size_t)(stop + 1) * a->T * a->C, kv = (size_t)(stop ? stop : 1) * a->T * a->kv_dim;
    snprintf(label, sizeof label, "%s: resid (every index)", what);
    same(label, a->resid, b->resid, resid);
    snprintf(label, sizeof label, "%s: keys", what);
    same(label, a->k, b->k, stop ? kv : 0);
    snprintf(label, sizeof label, "%s: values", what);
    same(label, a->v, b->v, stop ? kv : 0);
    if (stop == a->L) {
        snprintf(label, sizeof label, "%s: logits", what);
        same(label, a->logits, b->logits, (size_t)a->V);
    }
}

#define CHECK(call)                                                  \
    do {                                                             \
        if ((call) != PL_OK) {                                       \
            fprintf(stderr, "gpt2_bitwise: %s\n", pl_error());       \
            exit(2);                                                 \
        }                                                            \
    } while (0)

/* The fast path on both models: G groups of rows patching their prompt's residual (r, pos). */
static void fast_path(pl_model *const *mm, pl_run (*clean)[3], int G, const int *rows, int r, int pos, int read_r)
{
    const pl_model_info *info = pl_model_get_info(mm[0]);
    int C = info->d_model, V = info->n_vocab, M = 0, T = clean[0][0].T;
    for (int g = 0; g < G; g++)
        M += rows[g];
    float *X = malloc(sizeof(float) * (size_t)M * C), *out[2][2];
    for (int g = 0, v = 0; g < G; g++)
        for (int i = 0; i < rows[g]; i++, v++)
            for (int c = 0; c < C; c++)
                X[(size_t)v * C + c] = clean[0][g].resid[((size_t)r * T + pos) * C + c] * (1.0f + 0.3f * i) + 0.05f * i;
    for (int k = 0; k < 2; k++) {
        const pl_run *cleans[3] = {&clean[k][0], &clean[k][1], &clean[k][2]};
        out[k][0] = malloc(sizeof(float) * (size_t)M * V);
        out[k][1] = malloc(sizeof(float) * (size_t)M * C);
        CHECK(pl_patch_eval_groups(mm[k], cleans, rows, G, r, pos, X, out[k][0], read_r, out[k][1]));
    }
    char label[160];
    snprintf(label, sizeof label, "fast path (%d rows in %d groups, resid %d, pos %d): logits", M, G, r, pos);
    same(label, out[0][0], out[1][0], (size_t)M * V);
    snprintf(label, sizeof label, "fast path (%d rows in %d groups, resid %d, pos %d): read at %d", M, G, r, pos, read_r);
    same(label, out[0][1], out[1][1], (size_t)M * C);
    for (int k = 0; k < 2; k++)
        free(out[k][0]), free(out[k][1]);
    free(X);
}

/* Full forwards of three prompts: single, batched, stopped early, patched. */
static void forwards(pl_model *const *mm, const int *tokens, int T, pl_run (*clean)[3])
{
    const pl_model_info *info = pl_model_get_info(mm[0]);
    int L = info->n_layer, C = info->d_model;
    pl_run batch[2][3], patched[2];
    float *resid[2];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++)
            CHECK(pl_forward(mm[k], tokens + i * T, T, &clean[k][i]));
        CHECK(pl_forward_batch(mm[k], tokens, 3, T, batch[k]));
        resid[k] = malloc(sizeof(float) * 3 * C);
        CHECK(pl_forward_resid(mm[k], tokens, 3, T, L / 2, T - 1, resid[k]));
        CHECK(pl_forward_patched(mm[k], tokens, T, L / 2, T / 2, clean[0][1].resid, &patched[k]));
    }
    for (int i = 0; i < 3; i++) {
        same_run("pl_forward", &clean[0][i], &clean[1][i], L);
        same_run("pl_forward_batch", &batch[0][i], &batch[1][i], L);
    }
    same("pl_forward_resid", resid[0], resid[1], (size_t)3 * C);
    same_run("pl_forward_patched", &patched[0], &patched[1], L);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++)
            pl_run_free(&batch[k][i]);
        pl_run_free(&patched[k]);
        free(resid[k]);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gpt2_bitwise MODEL_DIR\n");
        return 2;
    }
    pl_model *mm[2];
    CHECK(pl_model_open(&mm[0], argv[1]));
    mm[1] = pl_calloc(1, sizeof *mm[1], "legacy model");
    CHECK(mm[1] ? gpt2_legacy_open(mm[1], argv[1]) : PL_ERR);
    const pl_model_info *a = pl_model_get_info(mm[0]), *b = pl_model_get_info(mm[1]);
    if (strcmp(a->family, "gpt2") || a->n_params != b->n_params || a->n_ctx != b->n_ctx || a->d_mlp != b->d_mlp) {
        printf("DIFF info: family %s, params %zu vs %zu, n_ctx %d vs %d\n", a->family, a->n_params, b->n_params,
               a->n_ctx, b->n_ctx);
        failures++;
    }
    int L = a->n_layer, V = a->n_vocab, T = a->n_ctx < 11 ? a->n_ctx : 11;
    int tokens[3 * 11];
    unsigned seed = 2024;
    for (int i = 0; i < 3 * T; i++) {
        seed = seed * 1103515245u + 12345u;
        tokens[i] = (int)((seed >> 8) % (unsigned)V);
    }
    pl_run clean[2][3];
    forwards(mm, tokens, T, clean);
    int one[1] = {1}, groups[3] = {1, 4, 2};
    for (int r = 0; r < L; r++) {
        int positions[3] = {0, T / 2, T - 1};
        for (int p = 0; p < 3; p++) {
            fast_path(mm, clean, 1, one, r, positions[p], L);
            fast_path(mm, clean, 3, groups, r, positions[p], r + 1);
        }
    }
    if (pl_forward_flops(mm[0], T) != pl_forward_flops(mm[1], T) ||
        pl_patch_flops(mm[0], T, 1, T / 2) != pl_patch_flops(mm[1], T, 1, T / 2)) {
        printf("DIFF FLOP counts\n");
        failures++;
    }
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++)
            pl_run_free(&clean[k][i]);
        pl_model_close(mm[k]);
    }
    printf("%s: %d arrays compared bit for bit (T = %d, %d layers), %d differ\n", argv[1], compared, T, L, failures);
    return failures ? 1 : 0;
}
