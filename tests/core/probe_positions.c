/* Test driver: whole contexts (pl_patch_eval_positions_at, which is pl_patch_eval_positions at a
 * residual hook with a residual readout) — M variants each replacing the activation at HOOK (any
 * TransformerLens hook point) at P positions at once — dumped as raw float32 for the numpy reference
 * (test_positions.py).
 *
 * usage: probe_positions MODEL IDS HOOK POSITIONS READ_HOOK PATCHES.f32 OUT_PREFIX
 *   IDS        comma-separated token ids (T of them)
 *   POSITIONS  comma-separated increasing positions (P of them)
 *   PATCHES    M x P x W float32 replacement vectors (W = the hook's width)
 * writes OUT_PREFIX.{logits,read}.f32 ([M, P, V], [M, P, C]) and OUT_PREFIX.{logits1,read1}.f32: the
 * same variants with P = 1 through pl_patch_eval_groups_at, when P is 1 (the fast path's numbers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/model.h"

static int write_f32(const char *prefix, const char *name, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.f32", prefix, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f))
        return pl_fail("%s: cannot write", path);
    return PL_OK;
}

static int parse_ints(char *s, int *out, int max)
{
    int n = 0;
    for (char *p = strtok(s, ","); p && n < max; p = strtok(NULL, ","))
        out[n++] = atoi(p);
    return n;
}

static int probe(char **argv)
{
    pl_model *m;
    if (pl_model_open(&m, argv[1]))
        return PL_ERR;
    int C = pl_model_get_info(m)->d_model, V = pl_model_get_info(m)->n_vocab;
    static int ids[4096], positions[4096];
    int T = parse_ints(argv[2], ids, 4096), P = parse_ints(argv[4], positions, 4096);
    pl_hook_point pt, read_pt;
    if (pl_hook_point_parse(m, argv[3], &pt) || pl_hook_point_parse(m, argv[5], &read_pt))
        return PL_ERR;
    int W = pl_hook_width(m, pt);
    FILE *f = fopen(argv[6], "rb");
    if (!f)
        return pl_fail("%s: cannot open", argv[6]);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    int M = (int)(bytes / (long)(sizeof(float) * W * P));
    float *X = malloc(sizeof(float) * (size_t)M * P * W + 1);
    if (M < 1 || fread(X, sizeof(float) * W * P, M, f) != (size_t)M)
        return pl_fail("%s: short read", argv[6]);
    fclose(f);

    pl_run clean;
    if (pl_forward(m, ids, T, &clean)) {
        free(X);
        pl_model_close(m);
        return PL_ERR;
    }
    const pl_run *cleans[1] = {&clean};
    float *logits = malloc(sizeof(float) * (size_t)M * P * V), *read = malloc(sizeof(float) * (size_t)M * P * C);
    int rc = pl_patch_eval_positions_at(m, cleans, &M, 1, pt, positions, P, X, logits, read_pt, read);
    if (rc == PL_OK)
        rc = write_f32(argv[7], "logits", logits, (size_t)M * P * V) ||
             write_f32(argv[7], "read", read, (size_t)M * P * C);
    if (rc == PL_OK && P == 1)
        rc = pl_patch_eval_groups_at(m, cleans, &M, 1, pt, positions[0], X, logits, read_pt, read) ||
             write_f32(argv[7], "logits1", logits, (size_t)M * V) || write_f32(argv[7], "read1", read, (size_t)M * C);
    free(X);
    free(logits);
    free(read);
    pl_run_free(&clean);
    pl_model_close(m);
    return rc ? PL_ERR : PL_OK;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: probe_positions MODEL IDS HOOK POSITIONS READ_HOOK PATCHES.f32 OUT_PREFIX\n");
        return 1;
    }
    if (probe(argv)) {
        fprintf(stderr, "probe_positions: %s\n", pl_error());
        return 2;
    }
    return 0;
}
