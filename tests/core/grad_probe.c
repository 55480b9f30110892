/* Test driver of plateau/grad.h: JVP, VJP, the metrics' gradients and the Fisher product at a
 * patched residual, as raw float32 files the float64 numpy finite differences (test_grad.py) check.
 *
 * usage: grad_probe MODEL IDS RESID POS READ NEXT IN_PREFIX OUT_PREFIX
 *   IDS       comma-separated token ids (T of them); RESID, READ: resid indices; NEXT: the CE token;
 *             RESID may be a hook name (blocks.N.attn.hook_z, ...): the _at calls, rows X, DX, dx, fv of
 *             W = pl_hook_width floats
 *   IN_PREFIX .X.f32 [M, C] rows, .DX.f32 [M, C] tangents, .GL.f32 [M, V], .GR.f32 [M, C] cotangents
 * writes OUT_PREFIX.{clean_logits [V], clean_read [C], eval_logits, eval_read, logits, dlogits, read,
 *   dread, vjp_logits, vjp_read, dx, mval [4, M], mgrad [4, M, C], fv, fv0}.f32 (metrics kl, jsd,
 *   ce_loss, l2; fv = F(X) DX and fv0 = F(clean) DX with F = J^T (diag p - p p^T) J of the logits;
 *   groups [4]: a two-prompt grouped call vs one-group calls, and rows alone vs the batch).
 *   POS a comma-separated list of positions (whole contexts, RESID a resid index or a hook name):
 *   probe_positions.
 * usage: grad_probe --bench MODEL T POS RESID M REPS: FLOPs and best-of-REPS seconds of M rows by the
 *   fast path (logits), the VJP (a logits cotangent) and the JVP (dlogits); prompt ids t * 7919 mod V.
 *   With P: whole contexts, positions POS .. POS+P-1 at once (the _positions calls), seconds only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metric_grad.h"
#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/grad.h"
#include "plateau/model.h"

/* The point perturbed: a resid index (the one-position residual calls, as they were), or with SITE set a
 * hook point PT (RESID given as a hook name: the _at calls, rows of W = pl_hook_width floats). */
static int SITE;
static pl_hook_point PT;

static int jvp(const pl_model *m, const pl_run *clean, int r, int pos, const float *X, const float *DX, int M,
               float *logits, float *dlogits, int read_r, float *read, float *dread)
{
    if (!SITE)
        return pl_patch_jvp(m, clean, r, pos, X, DX, M, logits, dlogits, read_r, read, dread);
    return pl_patch_jvp_groups_at(m, &clean, &M, 1, PT, pos, X, DX, logits, dlogits, read_r, read, dread);
}

static int vjp(const pl_model *m, const pl_run *clean, int r, int pos, const float *X, int M, const float *glogits,
               int read_r, const float *gread, float *logits, float *read, float *dx)
{
    if (!SITE)
        return pl_patch_vjp(m, clean, r, pos, X, M, glogits, read_r, gread, logits, read, dx);
    return pl_patch_vjp_groups_at(m, &clean, &M, 1, PT, pos, X, glogits, read_r, gread, logits, read, dx);
}

static int jvp_groups(const pl_model *m, const pl_run *const *cl, const int *rows, int G, int r, int pos,
                      const float *X, const float *DX, float *dlogits, int read_r)
{
    if (!SITE)
        return pl_patch_jvp_groups(m, cl, rows, G, r, pos, X, DX, NULL, dlogits, read_r, NULL, NULL);
    return pl_patch_jvp_groups_at(m, cl, rows, G, PT, pos, X, DX, NULL, dlogits, read_r, NULL, NULL);
}

static int vjp_groups(const pl_model *m, const pl_run *const *cl, const int *rows, int G, int r, int pos,
                      const float *X, const float *GL, int read_r, const float *GR, float *dx)
{
    if (!SITE)
        return pl_patch_vjp_groups(m, cl, rows, G, r, pos, X, GL, read_r, GR, NULL, NULL, dx);
    return pl_patch_vjp_groups_at(m, cl, rows, G, PT, pos, X, GL, read_r, GR, NULL, NULL, dx);
}

static float *read_f32(const char *prefix, const char *name, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.f32", prefix, name);
    float *x = malloc(sizeof(float) * n);
    FILE *f = fopen(path, "rb");
    if (!x || !f || fread(x, sizeof(float), n, f) != n) {
        pl_fail("%s: cannot read %zu floats", path, n);
        exit(2);
    }
    fclose(f);
    return x;
}

static void write_f32(const char *prefix, const char *name, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.f32", prefix, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n || fclose(f)) {
        pl_fail("%s: cannot write", path);
        exit(2);
    }
}

static float *alloc(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof(float));
    if (!x)
        exit(2);
    return x;
}

/* The metrics' values and gradients with respect to X: KL, JSD, CE through the logits, L2 through
 * the read residual, each by one VJP. */
static int metric_grads(const pl_model *m, const pl_run *clean, int r, int pos, int read_r, int next, const float *X,
                        int M, int W, const float *logits, const float *read, const char *out)
{
    int C = clean->C, V = clean->V, T = clean->T;
    float *gl = alloc((size_t)M * V), *gr = alloc((size_t)M * C), *val = alloc(4 * (size_t)M);
    float *grad = alloc(4 * (size_t)M * W);
    const float *cread = clean->resid + ((size_t)read_r * T + T - 1) * C;
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < M; i++) {
            const float *z = logits + (size_t)i * V;
            float *g = gl + (size_t)i * V;
            double v = k == 0 ? pl_kl_grad(clean->logits, z, V, g)
                     : k == 1 ? pl_jsd_grad(clean->logits, z, V, g)
                     : k == 2 ? pl_ce_grad(z, V, next, g)
                              : pl_l2_grad(cread, read + (size_t)i * C, C, gr + (size_t)i * C);
            val[(size_t)k * M + i] = (float)v;
        }
        if (vjp(m, clean, r, pos, X, M, k < 3 ? gl : NULL, read_r, k < 3 ? NULL : gr, NULL, NULL,
                grad + (size_t)k * M * W))
            return PL_ERR;
    }
    write_f32(out, "mval", val, 4 * (size_t)M);
    write_f32(out, "mgrad", grad, 4 * (size_t)M * W);
    free(gl), free(gr), free(val), free(grad);
    return PL_OK;
}

/* fv[M, W] = J^T G J DX at rows X, G = diag p - p p^T of each row's own logits. */
static int fisher(const pl_model *m, const pl_run *clean, int r, int pos, const float *X, const float *DX, int M,
                  float *fv)
{
    int V = clean->V;
    float *z = alloc((size_t)M * V), *dz = alloc((size_t)M * V);
    if (jvp(m, clean, r, pos, X, DX, M, z, dz, 0, NULL, NULL))
        return PL_ERR;
    for (int i = 0; i < M; i++)
        pl_softmax_fisher_apply(z + (size_t)i * V, V, dz + (size_t)i * V, dz + (size_t)i * V);
    int rc = vjp(m, clean, r, pos, X, M, dz, 0, NULL, NULL, NULL, fv);
    free(z), free(dz);
    return rc;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double d = 0.0, nb = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        nb = fmax(nb, fabs((double)b[i]));
    }
    return d / (nb > 0.0 ? nb : 1.0);
}

/* groups[4]: the largest relative differences of a two-group call (rows X at CLEAN, then X at a
 * second prompt's run) from the one-group calls (dlogits, dx), and of each row alone (M = 1:
 * the forward's sgemv path) from the batch (dlogits, dx). */
static int groups_check(const pl_model *m, const pl_run *clean, const int *ids, int r, int pos, int read_r,
                        const float *X, const float *DX, const float *GL, const float *GR, int M, int W, const char *out)
{
    int C = clean->C, V = clean->V, T = clean->T, rev[4096];
    for (int t = 0; t < T; t++)
        rev[t] = ids[T - 1 - t];
    pl_run other;
    if (pl_forward(m, rev, T, &other))
        return PL_ERR;
    size_t MC = (size_t)M * C, MV = (size_t)M * V, MW = (size_t)M * W;
    float *X2 = alloc(2 * MW), *DX2 = alloc(2 * MW), *GL2 = alloc(2 * MV), *GR2 = alloc(2 * MC);
    float *dl2 = alloc(2 * MV), *dx2 = alloc(2 * MW), *dl1 = alloc(2 * MV), *dx1 = alloc(2 * MW), res[4] = {0};
    for (int k = 0; k < 2; k++) {
        memcpy(X2 + k * MW, X, sizeof(float) * MW), memcpy(DX2 + k * MW, DX, sizeof(float) * MW);
        memcpy(GL2 + k * MV, GL, sizeof(float) * MV), memcpy(GR2 + k * MC, GR, sizeof(float) * MC);
    }
    const pl_run *cl[2] = {clean, &other};
    int rows[2] = {M, M};
    float *dlg = alloc(2 * MV); /* the grouped JVP without logits (no unembedding forward) */
    if (jvp_groups(m, cl, rows, 2, r, pos, X2, DX2, dlg, read_r) ||
        vjp_groups(m, cl, rows, 2, r, pos, X2, GL2, read_r, GR2, dx2))
        return PL_ERR;
    for (int k = 0; k < 2; k++)
        if (jvp(m, cl[k], r, pos, X, DX, M, dl2 + k * MV, dl1 + k * MV, read_r, NULL, NULL) ||
            vjp(m, cl[k], r, pos, X, M, GL, read_r, GR, NULL, NULL, dx1 + k * MW))
            return PL_ERR;
    res[0] = (float)max_rel(dlg, dl1, 2 * MV), res[1] = (float)max_rel(dx2, dx1, 2 * MW);
    free(dlg);
    for (int i = 0; i < M; i++) {
        if (jvp(m, clean, r, pos, X + (size_t)i * W, DX + (size_t)i * W, 1, NULL, dl2, read_r, NULL, NULL) ||
            vjp(m, clean, r, pos, X + (size_t)i * W, 1, GL + (size_t)i * V, read_r, GR + (size_t)i * C, NULL, NULL,
                dx2))
            return PL_ERR;
        res[2] = fmaxf(res[2], (float)max_rel(dl2, dl1 + (size_t)i * V, (size_t)V));
        res[3] = fmaxf(res[3], (float)max_rel(dx2, dx1 + (size_t)i * W, (size_t)W));
    }
    write_f32(out, "groups", res, 4);
    free(X2), free(DX2), free(GL2), free(GR2), free(dl2), free(dx2), free(dl1), free(dx1);
    pl_run_free(&other);
    return PL_OK;
}

static long file_floats(const char *prefix, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.f32", prefix, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / (long)sizeof(float);
    fclose(f);
    return n;
}

/* pl_patch_eval_groups_at's readout point of resid index READ_R. */
static pl_hook_point resid_point(int read_r, int L)
{
    pl_hook_point p = {read_r < L ? read_r : L - 1, read_r < L ? PL_SITE_RESID_PRE : PL_SITE_RESID_POST};
    return p;
}

static int probe_positions(const pl_model *m, const pl_run *clean, const int *ids, int r, char *poslist, int read_r,
                           const char *in, const char *out);

static int probe(char **argv)
{
    pl_model *m;
    if (pl_model_open(&m, argv[1]))
        return PL_ERR;
    const pl_model_info *info = pl_model_get_info(m);
    int C = info->d_model, V = info->n_vocab, L = info->n_layer, ids[4096], T = 0;
    for (char *p = strtok(argv[2], ","); p && T < 4096; p = strtok(NULL, ","))
        ids[T++] = atoi(p);
    int r = 0, pos = atoi(argv[4]), read_r = atoi(argv[5]), next = atoi(argv[6]);
    SITE = strchr(argv[3], '.') != NULL;
    if (SITE && pl_hook_point_parse(m, argv[3], &PT))
        return PL_ERR;
    r = SITE ? -1 : atoi(argv[3]);
    if (strchr(argv[4], ',')) { /* several positions: whole contexts */
        pl_run clean;
        if (pl_forward(m, ids, T, &clean) || probe_positions(m, &clean, ids, r, argv[4], read_r, argv[7], argv[8]))
            return PL_ERR;
        pl_run_free(&clean);
        pl_model_close(m);
        return PL_OK;
    }
    int W = SITE ? pl_hook_width(m, PT) : C;
    const char *in = argv[7], *out = argv[8];
    long nx = file_floats(in, "X");
    if (nx <= 0 || nx % W)
        return pl_fail("%s.X.f32: not rows of %d floats", in, W);
    int M = (int)(nx / W);
    size_t MC = (size_t)M * C, MV = (size_t)M * V, MW = (size_t)M * W;
    float *X = read_f32(in, "X", MW), *DX = read_f32(in, "DX", MW), *GL = read_f32(in, "GL", MV);
    float *GR = read_f32(in, "GR", MC);
    pl_run clean;
    if (pl_forward(m, ids, T, &clean))
        return PL_ERR;
    write_f32(out, "clean_logits", clean.logits, (size_t)V);
    write_f32(out, "clean_read", clean.resid + ((size_t)read_r * T + T - 1) * C, (size_t)C);
    float *el = alloc(MV), *er = alloc(MC), *lg = alloc(MV), *dl = alloc(MV), *rd = alloc(MC), *dr = alloc(MC);
    float *vl = alloc(MV), *vr = alloc(MC), *dx = alloc(MW), *fv = alloc(MW), *X0 = alloc(MW);
    const pl_run *cl = &clean;
    if ((SITE ? pl_patch_eval_groups_at(m, &cl, &M, 1, PT, pos, X, el, resid_point(read_r, L), er)
              : pl_patch_eval(m, &clean, r, pos, X, M, el, read_r, er)) ||
        jvp(m, &clean, r, pos, X, DX, M, lg, dl, read_r, rd, dr) ||
        vjp(m, &clean, r, pos, X, M, GL, read_r, GR, vl, vr, dx) ||
        metric_grads(m, &clean, r, pos, read_r, next, X, M, W, lg, rd, out) || fisher(m, &clean, r, pos, X, DX, M, fv))
        return PL_ERR;
    write_f32(out, "eval_logits", el, MV), write_f32(out, "eval_read", er, MC);
    write_f32(out, "logits", lg, MV), write_f32(out, "dlogits", dl, MV);
    write_f32(out, "read", rd, MC), write_f32(out, "dread", dr, MC);
    write_f32(out, "vjp_logits", vl, MV), write_f32(out, "vjp_read", vr, MC), write_f32(out, "dx", dx, MW);
    write_f32(out, "fv", fv, MW);
    if (SITE && pl_forward_at(m, ids, 1, T, PT, pos, X0)) /* the Fisher metric at the clean base itself */
        return PL_ERR;
    for (int i = SITE; i < M; i++) /* (at a hook point row 0 is already there) */
        memcpy(X0 + (size_t)i * W, SITE ? X0 : clean.resid + ((size_t)r * T + pos) * C, sizeof(float) * W);
    if (fisher(m, &clean, r, pos, X0, DX, M, fv))
        return PL_ERR;
    write_f32(out, "fv0", fv, MW);
    if (groups_check(m, &clean, ids, r, pos, read_r, X, DX, GL, GR, M, W, out))
        return PL_ERR;
    free(X), free(DX), free(GL), free(GR), free(el), free(er), free(lg), free(dl), free(rd), free(dr);
    free(vl), free(vr), free(dx), free(fv), free(X0);
    pl_run_free(&clean);
    pl_model_close(m);
    return PL_OK;
}

/* ------------------------------------------------------------ whole contexts (several positions) */

/* The whole-context calls at resid index R, or with SITE at the hook point PT (the _at calls). */
static int jvp_pos(const pl_model *m, const pl_run *const *cl, int *rows, int G, int r, const int *pos, int P,
                   const float *X, const float *DX, float *logits, float *dlogits, int read_r, float *read, float *dread)
{
    if (!SITE)
        return pl_patch_jvp_positions(m, cl, rows, G, r, pos, P, X, DX, logits, dlogits, read_r, read, dread);
    return pl_patch_jvp_positions_at(m, cl, rows, G, PT, pos, P, X, DX, logits, dlogits, read_r, read, dread);
}

static int vjp_pos(const pl_model *m, const pl_run *const *cl, int *rows, int G, int r, const int *pos, int P,
                   const float *X, const float *GL, int read_r, const float *GR, float *logits, float *read, float *dx)
{
    if (!SITE)
        return pl_patch_vjp_positions(m, cl, rows, G, r, pos, P, X, GL, read_r, GR, logits, read, dx);
    return pl_patch_vjp_positions_at(m, cl, rows, G, PT, pos, P, X, GL, read_r, GR, logits, read, dx);
}

/* fv[M, P, C] = (1/P) sum_t J_t^T (diag p_t - p_t p_t^T) J_t DX at rows X[M, P, C]: the Fisher metric of
 * the mean over the perturbed positions of KL(clean_t || perturbed_t), as [readout] positions = mean
 * averages it (p_t: the perturbed position t's own next-token distribution). */
static int fisher_positions(const pl_model *m, const pl_run *clean, int r, const int *pos, int P, const float *X,
                            const float *DX, int M, float *fv)
{
    size_t V = (size_t)clean->V, MP = (size_t)M * P;
    float *z = alloc(MP * V), *dz = alloc(MP * V);
    if (jvp_pos(m, &clean, &M, 1, r, pos, P, X, DX, z, dz, 0, NULL, NULL))
        return PL_ERR;
    for (size_t i = 0; i < MP; i++) {
        pl_softmax_fisher_apply(z + i * V, (int)V, dz + i * V, dz + i * V);
        for (size_t j = 0; j < V; j++)
            dz[i * V + j] /= (float)P;
    }
    int rc = vjp_pos(m, &clean, &M, 1, r, pos, P, X, dz, 0, NULL, NULL, NULL, fv);
    free(z), free(dz);
    return rc;
}

/* groups[4] of whole contexts: a two-group call (CLEAN, then the reversed prompt's run) vs one call per
 * group (dlogits, dx), and each variant alone vs the batch (dlogits, dx): largest relative differences. */
static int groups_positions(const pl_model *m, const pl_run *clean, const int *ids, int r, const int *pos, int P,
                            int read_r, const float *X, const float *DX, const float *GL, const float *GR, int M, int W,
                            const char *out)
{
    int T = clean->T, rev[4096];
    for (int t = 0; t < T; t++)
        rev[t] = ids[T - 1 - t];
    pl_run other;
    if (pl_forward(m, rev, T, &other))
        return PL_ERR;
    size_t MC = (size_t)M * P * clean->C, MV = (size_t)M * P * clean->V, PC = MC / M, PV = MV / M;
    size_t MW = (size_t)M * P * W, PW = MW / M;
    float *X2 = alloc(2 * MW), *DX2 = alloc(2 * MW), *GL2 = alloc(2 * MV), *GR2 = alloc(2 * MC), res[4] = {0};
    float *dl2 = alloc(2 * MV), *dx2 = alloc(2 * MW), *dl1 = alloc(2 * MV), *dx1 = alloc(2 * MW);
    for (int k = 0; k < 2; k++) {
        memcpy(X2 + k * MW, X, sizeof(float) * MW), memcpy(DX2 + k * MW, DX, sizeof(float) * MW);
        memcpy(GL2 + k * MV, GL, sizeof(float) * MV), memcpy(GR2 + k * MC, GR, sizeof(float) * MC);
    }
    const pl_run *cl[2] = {clean, &other};
    int rows[2] = {M, M}, one = 1;
    if (jvp_pos(m, cl, rows, 2, r, pos, P, X2, DX2, NULL, dl2, read_r, NULL, NULL) ||
        vjp_pos(m, cl, rows, 2, r, pos, P, X2, GL2, read_r, GR2, NULL, NULL, dx2))
        return PL_ERR;
    for (int k = 0; k < 2; k++)
        if (jvp_pos(m, &cl[k], &M, 1, r, pos, P, X, DX, NULL, dl1 + k * MV, read_r, NULL, NULL) ||
            vjp_pos(m, &cl[k], &M, 1, r, pos, P, X, GL, read_r, GR, NULL, NULL, dx1 + k * MW))
            return PL_ERR;
    res[0] = (float)max_rel(dl2, dl1, 2 * MV), res[1] = (float)max_rel(dx2, dx1, 2 * MW);
    for (int i = 0; i < M; i++) {
        if (jvp_pos(m, &clean, &one, 1, r, pos, P, X + i * PW, DX + i * PW, NULL, dl2, read_r, NULL, NULL) ||
            vjp_pos(m, &clean, &one, 1, r, pos, P, X + i * PW, GL + i * PV, read_r, GR + i * PC, NULL, NULL, dx2))
            return PL_ERR;
        res[2] = fmaxf(res[2], (float)max_rel(dl2, dl1 + i * PV, PV));
        res[3] = fmaxf(res[3], (float)max_rel(dx2, dx1 + i * PW, PW));
    }
    write_f32(out, "groups", res, 4);
    free(X2), free(DX2), free(GL2), free(GR2), free(dl2), free(dx2), free(dl1), free(dx1);
    pl_run_free(&other);
    return PL_OK;
}

/* POS a comma-separated list of P positions: pl_patch_{jvp,vjp}_positions at resid index R, rows
 * X[M, P, C]; the outputs as probe's ([M, P, *] instead of [M, *]) without the metrics: eval_*, logits,
 * dlogits, read, dread, vjp_*, dx, fv (fisher_positions at X), fv0 (at the clean base), groups. */
static int probe_positions(const pl_model *m, const pl_run *clean, const int *ids, int r, char *poslist, int read_r,
                           const char *in, const char *out)
{
    int C = clean->C, V = clean->V, T = clean->T, pos[4096], P = 0, W = SITE ? pl_hook_width(m, PT) : C;
    for (char *p = strtok(poslist, ","); p && P < 4096; p = strtok(NULL, ","))
        pos[P++] = atoi(p);
    long nx = file_floats(in, "X");
    if (nx <= 0 || nx % ((long)P * W))
        return pl_fail("%s.X.f32: not rows of %d x %d floats", in, P, W);
    int M = (int)(nx / ((long)P * W));
    size_t MW = (size_t)nx, MC = (size_t)M * P * C, MV = (size_t)M * P * V;
    float *X = read_f32(in, "X", MW), *DX = read_f32(in, "DX", MW), *GL = read_f32(in, "GL", MV);
    float *GR = read_f32(in, "GR", MC), *el = alloc(MV), *er = alloc(MC), *lg = alloc(MV), *dl = alloc(MV);
    float *rd = alloc(MC), *dr = alloc(MC), *vl = alloc(MV), *vr = alloc(MC), *dx = alloc(MW), *fv = alloc(MW);
    const pl_run *cl = clean;
    if ((SITE ? pl_patch_eval_positions_at(m, &cl, &M, 1, PT, pos, P, X, el, resid_point(read_r, clean->L), er)
              : pl_patch_eval_positions(m, &clean, &M, 1, r, pos, P, X, el, read_r, er)) ||
        jvp_pos(m, &clean, &M, 1, r, pos, P, X, DX, lg, dl, read_r, rd, dr) ||
        vjp_pos(m, &clean, &M, 1, r, pos, P, X, GL, read_r, GR, vl, vr, dx) ||
        fisher_positions(m, clean, r, pos, P, X, DX, M, fv))
        return PL_ERR;
    write_f32(out, "eval_logits", el, MV), write_f32(out, "eval_read", er, MC);
    write_f32(out, "logits", lg, MV), write_f32(out, "dlogits", dl, MV);
    write_f32(out, "read", rd, MC), write_f32(out, "dread", dr, MC);
    write_f32(out, "vjp_logits", vl, MV), write_f32(out, "vjp_read", vr, MC), write_f32(out, "dx", dx, MW);
    write_f32(out, "fv", fv, MW);
    float *X0 = alloc(MW);
    for (int i = 0; i < M; i++) /* the clean base: each perturbed position's clean activation */
        for (int j = 0; j < P; j++) {
            float *x0 = X0 + ((size_t)i * P + j) * W;
            if (!SITE)
                memcpy(x0, clean->resid + ((size_t)r * T + pos[j]) * C, sizeof(float) * C);
            else if (pl_forward_at(m, ids, 1, T, PT, pos[j], x0) != PL_OK)
                return PL_ERR;
        }
    if (fisher_positions(m, clean, r, pos, P, X0, DX, M, fv))
        return PL_ERR;
    write_f32(out, "fv0", fv, MW);
    if (groups_positions(m, clean, ids, r, pos, P, read_r, X, DX, GL, GR, M, W, out))
        return PL_ERR;
    free(X0), free(X), free(DX), free(GL), free(GR), free(el), free(er), free(lg), free(dl), free(rd), free(dr);
    free(vl), free(vr), free(dx), free(fv);
    return PL_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* --bench with P > 0: whole contexts, positions POS .. POS+P-1 at once (rows [M, P, C]): seconds of
 * pl_patch_eval_positions (logits), pl_patch_vjp_positions (a logits cotangent) and
 * pl_patch_jvp_positions (dlogits), best of REPS. */
static int bench_positions(const pl_model *m, const pl_run *clean, int r, int pos, int P, int M, int reps)
{
    int C = clean->C, V = clean->V, T = clean->T, at[4096];
    if (P < 1 || pos + P > T || P > 4096)
        return pl_fail("--bench: %d positions from %d do not fit T = %d", P, pos, T);
    for (int j = 0; j < P; j++)
        at[j] = pos + j;
    size_t MP = (size_t)M * P;
    float *X = alloc(MP * C), *lg = alloc(MP * V), *dx = alloc(MP * C);
    for (size_t i = 0; i < MP; i++)
        for (int c = 0; c < C; c++)
            X[i * C + c] = clean->resid[((size_t)r * T + pos + i % P) * C + c] * (1.0f + 0.01f * (float)(i / P));
    for (size_t i = 0; i < MP * V; i++)
        lg[i] = (float)((i % 7) - 3) * 1e-3f;
    double te = 1e30, tv = 1e30, tj = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = now();
        if (pl_patch_eval_positions(m, &clean, &M, 1, r, at, P, X, lg, 0, NULL))
            return PL_ERR;
        double t1 = now();
        if (pl_patch_vjp_positions(m, &clean, &M, 1, r, at, P, X, lg, 0, NULL, NULL, NULL, dx))
            return PL_ERR;
        double t2 = now();
        if (pl_patch_jvp_positions(m, &clean, &M, 1, r, at, P, X, X, NULL, lg, 0, NULL, NULL))
            return PL_ERR;
        double t3 = now();
        te = fmin(te, t1 - t0), tv = fmin(tv, t2 - t1), tj = fmin(tj, t3 - t2);
    }
    printf("T %d positions %d..%d resid %d M %d, seconds per call (best of %d): fast path %.4g, VJP %.4g (x%.2f), "
           "JVP %.4g (x%.2f)\n", T, pos, pos + P - 1, r, M, reps, te, tv, tv / te, tj, tj / te);
    free(X), free(lg), free(dx);
    return PL_OK;
}

static int bench(char **argv)
{
    pl_model *m;
    if (pl_model_open(&m, argv[2]))
        return PL_ERR;
    int C = pl_model_get_info(m)->d_model, V = pl_model_get_info(m)->n_vocab, T = atoi(argv[3]), pos = atoi(argv[4]);
    int r = atoi(argv[5]), M = atoi(argv[6]), reps = atoi(argv[7]), ids[4096];
    for (int t = 0; t < T; t++)
        ids[t] = (t * 7919) % V;
    pl_run clean;
    if (pl_forward(m, ids, T, &clean))
        return PL_ERR;
    float *X = alloc((size_t)M * C), *lg = alloc((size_t)M * V), *dx = alloc((size_t)M * C);
    for (int i = 0; i < M; i++)
        for (int c = 0; c < C; c++)
            X[(size_t)i * C + c] = clean.resid[((size_t)r * T + pos) * C + c] * (1.0f + 0.01f * (float)i);
    if (argv[8]) /* whole contexts */
        return bench_positions(m, &clean, r, pos, atoi(argv[8]), M, reps);
    for (size_t i = 0; i < (size_t)M * V; i++)
        lg[i] = (float)((i % 7) - 3) * 1e-3f;
    double te = 1e30, tv = 1e30, tj = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = now();
        if (pl_patch_eval(m, &clean, r, pos, X, M, lg, 0, NULL))
            return PL_ERR;
        double t1 = now();
        if (pl_patch_vjp(m, &clean, r, pos, X, M, lg, 0, NULL, NULL, NULL, dx))
            return PL_ERR;
        double t2 = now();
        if (pl_patch_jvp(m, &clean, r, pos, X, X, M, NULL, lg, 0, NULL, NULL))
            return PL_ERR;
        double t3 = now();
        te = te < t1 - t0 ? te : t1 - t0;
        tv = tv < t2 - t1 ? tv : t2 - t1;
        tj = tj < t3 - t2 ? tj : t3 - t2;
    }
    double fe = pl_patch_flops(m, T, r, pos), fv = pl_patch_vjp_flops(m, T, r, pos), fj = pl_patch_jvp_flops(m, T, r, pos);
    printf("T %d pos %d resid %d M %d: fast path row %.4g FLOPs, VJP row %.4g (x%.2f), JVP row %.4g (x%.2f)\n", T, pos, r, M, fe,
           fv, fv / fe, fj, fj / fe);
    printf("seconds per call (best of %d): fast path %.4g, VJP %.4g (x%.2f), JVP %.4g (x%.2f)\n", reps, te, tv,
           tv / te, tj, tj / te);
    pl_model_close(m);
    return PL_OK;
}

int main(int argc, char **argv)
{
    if ((argc == 8 || argc == 9) && !strcmp(argv[1], "--bench"))
        return bench(argv) == PL_OK ? 0 : (fprintf(stderr, "grad_probe: %s\n", pl_error()), 2);
    if (argc != 9) {
        fprintf(stderr, "usage: grad_probe MODEL IDS RESID POS READ NEXT IN_PREFIX OUT_PREFIX\n"
                        "       grad_probe --bench MODEL T POS RESID M REPS [P]\n");
        return 1;
    }
    if (probe(argv) != PL_OK) {
        fprintf(stderr, "grad_probe: %s\n", pl_error());
        return 2;
    }
    return 0;
}
