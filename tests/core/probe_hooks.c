/* Test driver for any hook point (plateau/forward.h, pl_hook_point): dump a hook's clean activations
 * at every position, and a batch of patches at (HOOK, POS) through the fast path, through full
 * patched forwards, and through the fast path with the rows split over two prompts' runs (grouped),
 * as raw float32 files the numpy reference (ref_models.py) compares against.
 *
 * usage: probe_hooks MODEL IDS HOOK POS READ_HOOK PATCHES.f32 OUT_PREFIX
 *        probe_hooks MODEL IDS --requests FILE   (many requests on one model load: run_requests)
 *   IDS        comma-separated token ids (T of them); the second prompt of the grouped call is IDS
 *              rotated left by one
 *   PATCHES    M x W float32 replacement activations (W: the hook's width), or "-" for none
 * writes OUT_PREFIX.acts.f32 [T, W] and, with patches, OUT_PREFIX.{fast_logits,fast_read,naive_logits,
 * naive_read,group_logits,group_read,alone_logits,alone_read}.f32 (group: rows 0..M-1 on IDS, M..2M-1
 * on the rotated prompt, one call; alone: the rotated prompt's M rows in a call of their own). Exit 2
 * with plateau's one-line message when a hook is refused.
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

static float *read_patches(const char *path, int W, int *M)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        pl_fail("%s: cannot open", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    *M = (int)(bytes / (long)(sizeof(float) * W));
    float *X = malloc(sizeof(float) * (size_t)*M * W + 1);
    if (!X || *M < 1 || fread(X, sizeof(float) * W, *M, f) != (size_t)*M) {
        fclose(f);
        free(X);
        pl_fail("%s: not M x %d floats", path, W);
        return NULL;
    }
    fclose(f);
    return X;
}

/* fast path (one prompt, then two prompts grouped and the second alone) and full forwards */
static int patches(const pl_model *m, const int *ids, const int *ids2, int T, pl_hook_point pt, int pos,
                   pl_hook_point read_pt, const float *X, int M, int W, const char *out)
{
    int C = pl_model_get_info(m)->d_model, V = pl_model_get_info(m)->n_vocab;
    pl_run clean = {0}, clean2 = {0};
    size_t n2 = (size_t)2 * M;
    float *logits = malloc(sizeof(float) * n2 * V * 2), *read = malloc(sizeof(float) * n2 * C * 2);
    float *naive_l = malloc(sizeof(float) * (size_t)M * V), *naive_r = malloc(sizeof(float) * (size_t)M * C);
    float *X2 = malloc(sizeof(float) * n2 * W);
    int rc = !logits || !read || !naive_l || !naive_r || !X2 ? pl_fail("out of memory") : PL_OK;
    if (!rc)
        rc = pl_forward(m, ids, T, &clean) || pl_forward(m, ids2, T, &clean2);
    if (!rc) {
        memcpy(X2, X, sizeof(float) * M * W);
        memcpy(X2 + (size_t)M * W, X, sizeof(float) * M * W);
        const pl_run *cl[2] = {&clean, &clean2};
        int rows[2] = {M, M};
        float *gl = logits + (size_t)M * V, *gr = read + (size_t)M * C; /* [2M] grouped */
        float *al = gl + n2 * V, *ar = gr + n2 * C;                     /* [M] alone */
        rc = pl_patch_eval_groups_at(m, cl, rows, 1, pt, pos, X, logits, read_pt, read) ||
             pl_patch_eval_groups_at(m, cl, rows, 2, pt, pos, X2, gl, read_pt, gr) ||
             pl_patch_eval_groups_at(m, cl + 1, rows, 1, pt, pos, X, al, read_pt, ar);
        for (int i = 0; i < M && !rc; i++) {
            pl_run run;
            rc = pl_forward_patched_at(m, ids, T, pt, pos, X + (size_t)i * W, &run);
            if (!rc) {
                rc = pl_read_at(m, &run, read_pt, T - 1, naive_r + (size_t)i * C);
                memcpy(naive_l + (size_t)i * V, run.logits, sizeof(float) * V);
                pl_run_free(&run);
            }
        }
        if (!rc)
            rc = write_f32(out, "fast_logits", logits, (size_t)M * V) ||
                 write_f32(out, "fast_read", read, (size_t)M * C) ||
                 write_f32(out, "naive_logits", naive_l, (size_t)M * V) ||
                 write_f32(out, "naive_read", naive_r, (size_t)M * C) || write_f32(out, "group_logits", gl, n2 * V) ||
                 write_f32(out, "group_read", gr, n2 * C) || write_f32(out, "alone_logits", al, (size_t)M * V) ||
                 write_f32(out, "alone_read", ar, (size_t)M * C);
    }
    free(logits), free(read), free(naive_l), free(naive_r), free(X2);
    pl_run_free(&clean);
    pl_run_free(&clean2);
    return rc ? PL_ERR : PL_OK;
}

/* One request on an open model: HOOK's clean activations at every position, and with PATCHES (not
 * "-") the patches at (HOOK, POS) read at READ_HOOK. */
static int probe(const pl_model *m, const int *ids, const int *ids2, int T, const char *hook, int pos,
                 const char *read_hook, const char *patch_file, const char *out)
{
    if (pos < 0)
        pos += T;
    pl_hook_point pt, read_pt;
    if (pl_hook_point_parse(m, hook, &pt) || pl_hook_point_parse(m, read_hook, &read_pt))
        return PL_ERR;
    int W = pl_hook_width(m, pt), rc = PL_OK, M = 0;
    float *acts = malloc(sizeof(float) * (size_t)T * W);
    if (!acts)
        return pl_fail("out of memory");
    for (int t = 0; t < T && !rc; t++)
        rc = pl_forward_at(m, ids, 1, T, pt, t, acts + (size_t)t * W);
    if (!rc)
        rc = write_f32(out, "acts", acts, (size_t)T * W);
    free(acts);
    if (!rc && strcmp(patch_file, "-")) {
        float *X = read_patches(patch_file, W, &M);
        rc = !X || patches(m, ids, ids2, T, pt, pos, read_pt, X, M, W, out);
        free(X);
    }
    return rc ? PL_ERR : PL_OK;
}

/* --requests FILE: one request per line, "HOOK POS READ_HOOK PATCHES OUT_PREFIX", all on one model
 * load (one process instead of one per request: the sanitizer builds pay per process). A refused
 * request writes plateau's message to OUT_PREFIX.err and the next one runs. */
static int run_requests(const pl_model *m, const int *ids, const int *ids2, int T, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return pl_fail("%s: cannot open", path);
    char line[8192], hook[512], read_hook[512], patch_file[4096], out[4096];
    int pos, rc = PL_OK;
    while (!rc && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%511s %d %511s %4095s %4095s", hook, &pos, read_hook, patch_file, out) != 5) {
            rc = pl_fail("%s: malformed request line: %s", path, line);
            break;
        }
        if (probe(m, ids, ids2, T, hook, pos, read_hook, patch_file, out) != PL_OK) {
            char err[4200];
            snprintf(err, sizeof err, "%s.err", out);
            FILE *e = fopen(err, "w");
            if (!e || fprintf(e, "%s\n", pl_error()) < 0 || fclose(e))
                rc = pl_fail("%s: cannot write", err);
        }
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    int requests = argc == 5 && !strcmp(argv[3], "--requests");
    if (argc != 8 && !requests) {
        fprintf(stderr, "usage: probe_hooks MODEL IDS HOOK POS READ_HOOK PATCHES.f32|- OUT_PREFIX\n"
                        "       probe_hooks MODEL IDS --requests FILE\n");
        return 1;
    }
    pl_model *m;
    if (pl_model_open(&m, argv[1])) {
        fprintf(stderr, "probe_hooks: %s\n", pl_error());
        return 2;
    }
    int ids[4096], ids2[4096], T = 0;
    for (char *p = strtok(argv[2], ","); p && T < 4096; p = strtok(NULL, ","))
        ids[T++] = atoi(p);
    for (int t = 0; t < T; t++)
        ids2[t] = ids[(t + 1) % T];
    int rc = requests ? run_requests(m, ids, ids2, T, argv[4])
                      : probe(m, ids, ids2, T, argv[3], atoi(argv[4]), argv[5], argv[6], argv[7]);
    pl_model_close(m);
    if (rc) {
        fprintf(stderr, "probe_hooks: %s\n", pl_error());
        return 2;
    }
    return 0;
}
