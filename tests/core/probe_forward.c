/* Test driver: dump a clean run, a batch of patched runs by the fast path, and the same patches by
 * full forwards, as raw float32 files the numpy reference compares against.
 *
 * usage: probe_forward MODEL_DIR IDS HOOK POS READ_HOOK PATCHES.f32 OUT_PREFIX [--unfused]
 *   --unfused  open the model with q, k, v and gate, up as separate matrices (pl_model_open_opts)
 *   IDS        comma-separated token ids (T of them)
 *   PATCHES    M x C float32 replacement vectors for the residual at (HOOK, POS)
 * writes OUT_PREFIX.{resid,clean_logits,fast_logits,fast_read,naive_logits,naive_read}.f32
 */
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

static int probe(char **argv, int unfused)
{
    pl_model *m;
    pl_model_open_opts o = {.unfused = unfused};
    if (pl_model_open_with(&m, argv[1], &o))
        return PL_ERR;
    int C = pl_model_get_info(m)->d_model, V = pl_model_get_info(m)->n_vocab, L = pl_model_get_info(m)->n_layer;
    int ids[4096], T = 0;
    for (char *p = strtok(argv[2], ","); p && T < 4096; p = strtok(NULL, ","))
        ids[T++] = atoi(p);
    int r, read_r, pos = atoi(argv[4]);
    if (pos < 0)
        pos += T;
    if (pl_hook_parse(m, argv[3], &r) || pl_hook_parse(m, argv[5], &read_r))
        return PL_ERR;
    FILE *f = fopen(argv[6], "rb");
    if (!f)
        return pl_fail("%s: cannot open", argv[6]);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    int M = (int)(bytes / (long)(sizeof(float) * C));
    float *X = malloc(sizeof(float) * (size_t)M * C);
    if (fread(X, sizeof(float) * C, M, f) != (size_t)M)
        return pl_fail("%s: short read", argv[6]);
    fclose(f);

    pl_run clean;
    if (pl_forward(m, ids, T, &clean))
        return PL_ERR;
    float *fast_logits = malloc(sizeof(float) * (size_t)M * V), *fast_read = malloc(sizeof(float) * M * C);
    float *naive_logits = malloc(sizeof(float) * (size_t)M * V), *naive_read = malloc(sizeof(float) * M * C);
    if (pl_patch_eval(m, &clean, r, pos, X, M, fast_logits, read_r, fast_read))
        return PL_ERR;
    for (int i = 0; i < M; i++) {
        pl_run run;
        if (pl_forward_patched(m, ids, T, r, pos, X + (size_t)i * C, &run))
            return PL_ERR;
        memcpy(naive_logits + (size_t)i * V, run.logits, sizeof(float) * V);
        memcpy(naive_read + (size_t)i * C, run.resid + ((size_t)read_r * T + T - 1) * C, sizeof(float) * C);
        pl_run_free(&run);
    }
    const char *out = argv[7];
    if (write_f32(out, "resid", clean.resid, (size_t)(L + 1) * T * C) ||
        write_f32(out, "clean_logits", clean.logits, V) ||
        write_f32(out, "fast_logits", fast_logits, (size_t)M * V) ||
        write_f32(out, "fast_read", fast_read, (size_t)M * C) ||
        write_f32(out, "naive_logits", naive_logits, (size_t)M * V) ||
        write_f32(out, "naive_read", naive_read, (size_t)M * C))
        return PL_ERR;
    free(X);
    free(fast_logits);
    free(fast_read);
    free(naive_logits);
    free(naive_read);
    pl_run_free(&clean);
    pl_model_close(m);
    return PL_OK;
}

int main(int argc, char **argv)
{
    int unfused = argc == 9 && !strcmp(argv[8], "--unfused");
    if (argc != 8 && !unfused) {
        fprintf(stderr, "usage: probe_forward MODEL_DIR IDS HOOK POS READ_HOOK PATCHES.f32 OUT_PREFIX [--unfused]\n");
        return 1;
    }
    if (probe(argv, unfused)) {
        fprintf(stderr, "probe_forward: %s\n", pl_error());
        return 2;
    }
    return 0;
}
