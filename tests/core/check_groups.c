/* Batched entry points against their one-at-a-time versions on a model dir:
 *   pl_forward_batch of N prompts == N pl_forward calls (residuals, K/V, logits), and
 *   pl_patch_eval_groups over G prompts' runs == G pl_patch_eval calls,
 * both within 1e-4 (the two differ only in sgemm shapes). pl_patch_eval itself is checked against
 * full patched forwards and the numpy reference by test_forward.py.
 * usage: check_groups MODEL_DIR HOOK POS   (exit 0 when every difference is within tolerance) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/model.h"

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d)
            d = fabs((double)a[i] - b[i]);
    return d;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: check_groups MODEL_DIR HOOK POS\n");
        return 1;
    }
    pl_model *m;
    int r;
    if (pl_model_open(&m, argv[1]) || pl_hook_parse(m, argv[2], &r)) {
        fprintf(stderr, "check_groups: %s\n", pl_error());
        return 2;
    }
    enum { N = 3 };
    int C = pl_model_get_info(m)->d_model, V = pl_model_get_info(m)->n_vocab, L = pl_model_get_info(m)->n_layer;
    int T = pl_model_get_info(m)->n_ctx < 9 ? pl_model_get_info(m)->n_ctx : 9, pos = atoi(argv[3]);
    if (pos < 0)
        pos += T;
    int tokens[N * 9];
    unsigned seed = 12345;
    for (int i = 0; i < N * T; i++) {
        seed = seed * 1103515245u + 12345u;
        tokens[i] = (int)((seed >> 8) % (unsigned)V);
    }
    pl_run single[N], batch[N];
    for (int i = 0; i < N; i++)
        if (pl_forward(m, tokens + i * T, T, &single[i])) {
            fprintf(stderr, "check_groups: %s\n", pl_error());
            return 2;
        }
    if (pl_forward_batch(m, tokens, N, T, batch)) {
        fprintf(stderr, "check_groups: %s\n", pl_error());
        return 2;
    }
    double worst = 0.0;
    size_t TC = (size_t)T * C;
    for (int i = 0; i < N; i++) {
        double d = max_diff(single[i].resid, batch[i].resid, (L + 1) * TC);
        size_t kv = (size_t)L * T * single[i].kv_dim;
        d = fmax(d, max_diff(single[i].k, batch[i].k, kv));
        d = fmax(d, max_diff(single[i].v, batch[i].v, kv));
        d = fmax(d, max_diff(single[i].logits, batch[i].logits, V));
        worst = fmax(worst, d);
    }
    printf("forward_batch vs forward: max|diff| %.3g\n", worst);
    int fail = worst > 1e-4;

    /* groups of 1, 4 and 2 rows, perturbing each prompt's own activation */
    int rows[N] = {1, 4, 2}, M = 7;
    const pl_run *cleans[N] = {&single[0], &single[1], &single[2]};
    float *X = malloc(sizeof(float) * M * C);
    for (int g = 0, v = 0; g < N; g++)
        for (int i = 0; i < rows[g]; i++, v++)
            for (int c = 0; c < C; c++)
                X[(size_t)v * C + c] = single[g].resid[((size_t)r * T + pos) * C + c] * (1.0f + 0.3f * i) + 0.05f * i;
    float *lg = malloc(sizeof(float) * (size_t)M * V), *rd = malloc(sizeof(float) * M * C);
    float *lg1 = malloc(sizeof(float) * (size_t)M * V), *rd1 = malloc(sizeof(float) * M * C);
    if (pl_patch_eval_groups(m, cleans, rows, N, r, pos, X, lg, L, rd)) {
        fprintf(stderr, "check_groups: %s\n", pl_error());
        return 2;
    }
    for (int g = 0, v = 0; g < N; v += rows[g], g++)
        if (pl_patch_eval(m, cleans[g], r, pos, X + (size_t)v * C, rows[g], lg1 + (size_t)v * V, L,
                          rd1 + (size_t)v * C)) {
            fprintf(stderr, "check_groups: %s\n", pl_error());
            return 2;
        }
    double dl = max_diff(lg, lg1, (size_t)M * V), dr = max_diff(rd, rd1, (size_t)M * C);
    printf("patch_eval_groups vs patch_eval per group: logits %.3g, read %.3g\n", dl, dr);
    fail |= dl > 1e-4 || dr > 1e-4;
    for (int i = 0; i < N; i++) {
        pl_run_free(&single[i]);
        pl_run_free(&batch[i]);
    }
    free(X);
    free(lg);
    free(rd);
    free(lg1);
    free(rd1);
    pl_model_close(m);
    return fail;
}
