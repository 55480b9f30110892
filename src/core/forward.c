/* GPT-2 forward pass (fp32, OpenBLAS) and the fast perturbation path.
 *
 * Shapes: T positions, C = n_embd, H heads of size hs = C / H, V vocabulary, L blocks.
 * Activations are row-major [rows, C]; weights are HF Conv1D [in, out].
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/forward.h"

/* ---------------------------------------------------------------- layer ops */

/* out[N, C] = layernorm(in[N, C]) * w + b; statistics in double so that they do not depend on the
 * order of a float sum (the reference computes them in float64 too). */
static void layernorm_forward(float *out, const float *in, const float *w, const float *b, int N, int C,
                              float eps)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++)
            mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++) {
            double d = x[c] - mean;
            var += d * d;
        }
        var /= C;
        float rstd = (float)(1.0 / sqrt(var + eps));
        float fmean = (float)mean;
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - fmean) * rstd * w[c] + b[c];
    }
}

/* out[N, OUT] = in[N, IN] @ W[IN, OUT] + bias[OUT]. One row goes through sgemv: OpenBLAS 0.3.21
 * does not route an M = 1 sgemm to its gemv kernels, and the sgemm path is several times slower. */
static void matmul_forward(float *out, const float *in, const float *W, const float *bias, int N, int IN,
                           int OUT)
{
    for (int i = 0; i < N; i++)
        memcpy(out + (size_t)i * OUT, bias, sizeof(float) * OUT);
    if (N == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, IN, OUT, 1.0f, W, OUT, in, 1, 1.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OUT, IN, 1.0f, in, IN, W, OUT, 1.0f, out,
                    OUT);
}

/* GPT-2's "gelu_new", 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), written as
 * v * sigmoid(2u): the same function without tanh's cancellation near 0, and expf is several times
 * cheaper than tanhf (GELU is a tenth of the fast path's time with tanhf). */
static void gelu_forward(float *x, size_t n)
{
    const float s2 = 2.0f * 0.7978845608028654f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-s2 * (v + 0.044715f * v * v * v)));
    }
}

static void residual_add(float *x, const float *delta, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += delta[i];
}

/* Causal attention of one query row q[C] over keys and values given as two runs of rows: n_a rows
 * of (ka, va) with row stride stride_a floats (the cached clean positions), then n_b rows of (kb, vb)
 * with stride stride_b (the variant's own positions, still inside its qkv rows). out[C] receives
 * the heads side by side; scores[n_a + n_b] is scratch. */
static void attend_one(float *out, const float *q, const float *ka, const float *va, int n_a, size_t stride_a,
                       const float *kb, const float *vb, int n_b, size_t stride_b, int C, int H, float *scores)
{
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    int n = n_a + n_b;
    for (int h = 0; h < H; h++) {
        const float *qh = q + h * hs;
        float maxv = -INFINITY;
        for (int s = 0; s < n; s++) {
            const float *k = (s < n_a ? ka + (size_t)s * stride_a : kb + (size_t)(s - n_a) * stride_b) + h * hs;
            float dot = 0.0f;
            for (int i = 0; i < hs; i++)
                dot += qh[i] * k[i];
            scores[s] = dot * scale;
            if (scores[s] > maxv)
                maxv = scores[s];
        }
        double sum = 0.0;
        for (int s = 0; s < n; s++) {
            scores[s] = expf(scores[s] - maxv);
            sum += scores[s];
        }
        float inv = (float)(1.0 / sum);
        float *oh = out + h * hs;
        for (int i = 0; i < hs; i++)
            oh[i] = 0.0f;
        for (int s = 0; s < n; s++) {
            const float *v = (s < n_a ? va + (size_t)s * stride_a : vb + (size_t)(s - n_a) * stride_b) + h * hs;
            float p = scores[s] * inv;
            for (int i = 0; i < hs; i++)
                oh[i] += p * v[i];
        }
    }
}

/* Causal self-attention of all T positions: out[T, C] from qkv[T, 3C]. Each head's scores and
 * weighted values are two sgemms over strided views of qkv (the upper triangle of the scores is
 * computed and discarded: at GPT-2 sizes that is cheaper than scalar loops). scores[T, T] is
 * scratch. */
static void causal_attention(float *out, const float *qkv, int T, int C, int H, float *scores)
{
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < H; h++) {
        const float *q = qkv + h * hs, *k = qkv + C + h * hs, *v = qkv + 2 * C + h * hs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k, 3 * C, 0.0f, scores,
                    T);
        for (int t = 0; t < T; t++) {
            float *row = scores + (size_t)t * T;
            float maxv = -INFINITY;
            for (int u = 0; u <= t; u++)
                if (row[u] > maxv)
                    maxv = row[u];
            double sum = 0.0;
            for (int u = 0; u <= t; u++) {
                row[u] = expf(row[u] - maxv);
                sum += row[u];
            }
            float inv = (float)(1.0 / sum);
            for (int u = 0; u <= t; u++)
                row[u] *= inv;
            for (int u = t + 1; u < T; u++)
                row[u] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, scores, T, v, 3 * C, 0.0f,
                    out + h * hs, C);
    }
}

/* ------------------------------------------------------------ hooks */

int pl_hook_parse(const pl_config *cfg, const char *name, int *resid_index)
{
    int layer, consumed = 0;
    char kind[16];
    if (sscanf(name, "blocks.%d.hook_resid_%15[a-z]%n", &layer, kind, &consumed) == 2 &&
        name[consumed] == '\0' && (!strcmp(kind, "pre") || !strcmp(kind, "post"))) {
        if (layer < 0 || layer >= cfg->n_layer)
            return pl_fail("hook '%s': block %d does not exist (this model has blocks 0..%d)", name, layer,
                           cfg->n_layer - 1);
        *resid_index = layer + (kind[1] == 'o' ? 1 : 0);
        return PL_OK;
    }
    return pl_fail("hook '%s': expected blocks.N.hook_resid_pre or blocks.N.hook_resid_post (N in 0..%d)", name,
                   cfg->n_layer - 1);
}

/* ------------------------------------------------------------ scratch */

typedef struct {
    float *ln;    /* [R, C] */
    float *qkv;   /* [R, 3C] */
    float *att;   /* [R, C] */
    float *proj;  /* [R, C] */
    float *fch;   /* [R, 4C] */
    float *scores; /* [T, T] */
    void *block;
} scratch;

static int scratch_alloc(scratch *s, size_t R, int C, int T)
{
    size_t floats = R * (size_t)C * (1 + 3 + 1 + 1 + 4) + (size_t)T * T;
    float *p = pl_malloc(floats * sizeof(float), "activations");
    if (!p)
        return PL_ERR;
    s->block = p;
    s->ln = p;
    s->qkv = s->ln + R * C;
    s->att = s->qkv + R * 3 * C;
    s->proj = s->att + R * C;
    s->fch = s->proj + R * C;
    s->scores = s->fch + R * 4 * C;
    return PL_OK;
}

/* The MLP half of a block on x[R, C], in place: x += proj(gelu(fc(ln_2(x)))). */
static void mlp_residual(const pl_block *b, float *x, int R, int C, float eps, scratch *s)
{
    layernorm_forward(s->ln, x, b->ln_2_w, b->ln_2_b, R, C, eps);
    matmul_forward(s->fch, s->ln, b->fc_w, b->fc_b, R, C, 4 * C);
    gelu_forward(s->fch, (size_t)R * 4 * C);
    matmul_forward(s->proj, s->fch, b->mlp_proj_w, b->mlp_proj_b, R, 4 * C, C);
    residual_add(x, s->proj, (size_t)R * C);
}

/* next-token logits[M, V] of final-residual rows x[M, C] (row stride C). */
static int unembed(const pl_model *m, const float *x, int M, float *logits)
{
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, V = cfg->n_vocab;
    float *ln = pl_malloc(sizeof(float) * (size_t)M * C, "final layernorm");
    if (!ln)
        return PL_ERR;
    layernorm_forward(ln, x, m->ln_f_w, m->ln_f_b, M, C, cfg->ln_eps);
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, m->wte, C, ln, 1, 0.0f, logits, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, V, C, 1.0f, ln, C, m->wte, C, 0.0f, logits, V);
    free(ln);
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

/* Full forward of N sequences of T tokens at once: their rows are stacked into one [N*T, C]
 * activation so that every weight matmul is a single sgemm (attention stays per sequence). The
 * patch, when given, applies to sequence 0 (used with N = 1). */
static int forward_impl(const pl_model *m, const int *tokens, int N, int T, int patch_index, int patch_pos,
                        const float *patch, pl_run *runs)
{
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, L = cfg->n_layer, V = cfg->n_vocab, H = cfg->n_head;
    for (int i = 0; i < N; i++)
        memset(&runs[i], 0, sizeof runs[i]);
    if (N < 1)
        return pl_fail("forward: %d sequences", N);
    if (T < 1 || T > cfg->n_ctx)
        return pl_fail("%d tokens: the model takes 1..%d positions (n_positions)", T, cfg->n_ctx);
    for (size_t t = 0; t < (size_t)N * T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return pl_fail("token id %d at position %d is outside the vocabulary (0..%d)", tokens[t],
                           (int)(t % T), V - 1);
    if (patch && (patch_index < 0 || patch_index > L || patch_pos < 0 || patch_pos >= T))
        return pl_fail("patch at resid index %d, position %d is outside the run (L=%d, T=%d)", patch_index,
                       patch_pos, L, T);

    size_t TC = (size_t)T * C, R = (size_t)N * T;
    float *x = pl_malloc(sizeof(float) * R * C, "residual stream");
    float *last = pl_malloc(sizeof(float) * (size_t)N * C, "last positions");
    scratch s = {0};
    int ok = x && last && scratch_alloc(&s, R, C, T) == PL_OK;
    for (int i = 0; ok && i < N; i++) {
        pl_run *run = &runs[i];
        run->T = T;
        run->C = C;
        run->L = L;
        run->V = V;
        run->resid = pl_malloc(sizeof(float) * (size_t)(L + 1) * TC, "residual cache");
        run->k = pl_malloc(sizeof(float) * (size_t)(L ? L : 1) * TC, "key cache");
        run->v = pl_malloc(sizeof(float) * (size_t)(L ? L : 1) * TC, "value cache");
        run->logits = pl_malloc(sizeof(float) * (size_t)V, "logits");
        ok = run->resid && run->k && run->v && run->logits;
    }
    if (!ok)
        goto fail;

    for (size_t r = 0; r < R; r++) /* resid index 0: token + position embeddings */
        for (int c = 0; c < C; c++)
            x[r * C + c] = m->wte[(size_t)tokens[r] * C + c] + m->wpe[(r % T) * C + c];

    for (int l = 0; l <= L; l++) {
        if (patch && l == patch_index)
            memcpy(x + (size_t)patch_pos * C, patch, sizeof(float) * C);
        for (int i = 0; i < N; i++)
            memcpy(runs[i].resid + (size_t)l * TC, x + i * TC, sizeof(float) * TC);
        if (l == L)
            break;
        const pl_block *b = &m->blocks[l];
        layernorm_forward(s.ln, x, b->ln_1_w, b->ln_1_b, (int)R, C, cfg->ln_eps);
        matmul_forward(s.qkv, s.ln, b->attn_w, b->attn_b, (int)R, C, 3 * C);
        for (int i = 0; i < N; i++) {
            const float *qkv = s.qkv + i * 3 * TC;
            float *kc = runs[i].k + (size_t)l * TC, *vc = runs[i].v + (size_t)l * TC;
            for (int t = 0; t < T; t++) {
                memcpy(kc + (size_t)t * C, qkv + (size_t)t * 3 * C + C, sizeof(float) * C);
                memcpy(vc + (size_t)t * C, qkv + (size_t)t * 3 * C + 2 * C, sizeof(float) * C);
            }
            causal_attention(s.att + i * TC, qkv, T, C, H, s.scores);
        }
        matmul_forward(s.proj, s.att, b->attn_proj_w, b->attn_proj_b, (int)R, C, C);
        residual_add(x, s.proj, R * C);
        mlp_residual(b, x, (int)R, C, cfg->ln_eps, &s);
    }
    for (int i = 0; i < N; i++)
        memcpy(last + (size_t)i * C, x + i * TC + (size_t)(T - 1) * C, sizeof(float) * C);
    float *logits = N == 1 ? runs[0].logits : pl_malloc(sizeof(float) * (size_t)N * V, "logits");
    if (!logits || unembed(m, last, N, logits)) {
        if (N > 1)
            free(logits);
        goto fail;
    }
    if (N > 1) {
        for (int i = 0; i < N; i++)
            memcpy(runs[i].logits, logits + (size_t)i * V, sizeof(float) * V);
        free(logits);
    }
    free(s.block);
    free(x);
    free(last);
    return PL_OK;
fail:
    free(s.block);
    free(x);
    free(last);
    for (int i = 0; i < N; i++)
        pl_run_free(&runs[i]);
    return PL_ERR;
}

int pl_forward(const pl_model *m, const int *tokens, int T, pl_run *run)
{
    return forward_impl(m, tokens, 1, T, -1, -1, NULL, run);
}

int pl_forward_batch(const pl_model *m, const int *tokens, int N, int T, pl_run *runs)
{
    return forward_impl(m, tokens, N, T, -1, -1, NULL, runs);
}

int pl_forward_patched(const pl_model *m, const int *tokens, int T, int resid_index, int pos, const float *patch,
                       pl_run *run)
{
    if (!patch)
        return pl_fail("pl_forward_patched: no patch vector");
    return forward_impl(m, tokens, 1, T, resid_index, pos, patch, run);
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
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, L = cfg->n_layer, H = cfg->n_head;
    if (G < 1)
        return pl_fail("fast path: %d row groups", G);
    int T = cleans[0]->T;
    long total = 0;
    for (int g = 0; g < G; g++) {
        if (cleans[g]->C != C || cleans[g]->L != L || cleans[g]->T != T)
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
    int M = (int)total;

    /* Every variant carries positions pos..T-1 (n of them): rows v*n .. v*n + n-1. */
    int n = T - pos;
    size_t R = (size_t)M * n, TC = (size_t)T * C;
    float *x = pl_malloc(sizeof(float) * R * C, "fast-path residual");
    const pl_run **clean_of = pl_malloc(sizeof(pl_run *) * (size_t)M, "fast-path groups");
    scratch s = {0};
    if (!x || !clean_of || scratch_alloc(&s, R, C, T)) {
        free(x);
        free(clean_of);
        return PL_ERR;
    }
    for (int g = 0, v = 0; g < G; g++)
        for (int i = 0; i < group_rows[g]; i++)
            clean_of[v++] = cleans[g];
    for (int v = 0; v < M; v++) {
        const float *clean_r = clean_of[v]->resid + (size_t)resid_index * TC;
        memcpy(x + (size_t)v * n * C, X + (size_t)v * C, sizeof(float) * C);
        if (n > 1)
            memcpy(x + ((size_t)v * n + 1) * C, clean_r + (size_t)(pos + 1) * C, sizeof(float) * (n - 1) * C);
    }
    /* A read hook at or before the patch sees what is there: the clean run, or the patch itself. */
    if (read && read_index <= resid_index)
        for (int v = 0; v < M; v++)
            memcpy(read + (size_t)v * C, x + ((size_t)v * n + n - 1) * C, sizeof(float) * C);
    if (read && read_index < resid_index)
        for (int v = 0; v < M; v++)
            memcpy(read + (size_t)v * C, clean_of[v]->resid + (size_t)read_index * TC + (size_t)(T - 1) * C,
                   sizeof(float) * C);

    for (int l = resid_index; l < L; l++) {
        const pl_block *b = &m->blocks[l];
        layernorm_forward(s.ln, x, b->ln_1_w, b->ln_1_b, (int)R, C, cfg->ln_eps);
        matmul_forward(s.qkv, s.ln, b->attn_w, b->attn_b, (int)R, C, 3 * C);
        for (int v = 0; v < M; v++) {
            const float *kc = clean_of[v]->k + (size_t)l * TC, *vc = clean_of[v]->v + (size_t)l * TC;
            const float *rows = s.qkv + (size_t)v * n * 3 * C;
            for (int j = 0; j < n; j++)
                attend_one(s.att + ((size_t)v * n + j) * C, rows + (size_t)j * 3 * C, kc, vc, pos, C, rows + C,
                           rows + 2 * C, j + 1, 3 * (size_t)C, C, H, s.scores);
        }
        matmul_forward(s.proj, s.att, b->attn_proj_w, b->attn_proj_b, (int)R, C, C);
        residual_add(x, s.proj, R * C);
        mlp_residual(b, x, (int)R, C, cfg->ln_eps, &s);
        if (read && read_index == l + 1)
            for (int v = 0; v < M; v++)
                memcpy(read + (size_t)v * C, x + ((size_t)v * n + n - 1) * C, sizeof(float) * C);
    }
    free(s.block);
    free(clean_of);

    int rc = PL_OK;
    if (logits) {
        if (n > 1) /* gather each variant's last position into consecutive rows */
            for (int v = 0; v < M; v++)
                memmove(x + (size_t)v * C, x + ((size_t)v * n + n - 1) * C, sizeof(float) * C);
        rc = unembed(m, x, M, logits);
    }
    free(x);
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

/* Matmul FLOPs of one block for n rows: c_attn 3C^2, c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2,
 * two FLOPs per multiply-add. */
static double block_matmul_flops(double C, double n) { return 24.0 * C * C * n; }

/* Attention FLOPs for query positions first..last-1 attending causally: q.k and p.v over t+1 keys. */
static double attention_flops(double C, int first, int last)
{
    double f = 0.0;
    for (int t = first; t < last; t++)
        f += 4.0 * C * (t + 1);
    return f;
}

double pl_forward_flops(const pl_config *cfg, int T)
{
    double C = cfg->n_embd;
    return cfg->n_layer * (block_matmul_flops(C, T) + attention_flops(C, 0, T)) + 2.0 * C * cfg->n_vocab;
}

double pl_patch_flops(const pl_config *cfg, int T, int resid_index, int pos)
{
    double C = cfg->n_embd;
    return (cfg->n_layer - resid_index) * (block_matmul_flops(C, T - pos) + attention_flops(C, pos, T)) +
           2.0 * C * cfg->n_vocab;
}
