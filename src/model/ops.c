/* The layer ops the model families share: one plain function per op, fp32 activations, row-major
 * [rows, width] (llm.c style). Statistics and softmax sums accumulate in double so that they do not
 * depend on the order of a float sum (the tests' float64 references compute them that way too). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
/* out[N, C] = layernorm(in[N, C]) * w + b; statistics in double so that they do not depend on the
 * order of a float sum (the reference computes them in float64 too). */
void pl_op_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps)
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
void pl_op_matmul(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT)
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
void pl_op_gelu_tanh(float *x, size_t n)
{
    const float s2 = 2.0f * 0.7978845608028654f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-s2 * (v + 0.044715f * v * v * v)));
    }
}

void pl_op_residual_add(float *x, const float *delta, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += delta[i];
}

/* Causal attention of one query row q[C] over keys and values given as two runs of rows: n_a rows
 * of (ka, va) with row stride stride_a floats (the cached clean positions), then n_b rows of (kb, vb)
 * with stride stride_b (the variant's own positions, still inside its qkv rows). out[C] receives
 * the heads side by side; scores[n_a + n_b] is scratch. */
void pl_op_attend_one(float *out, const float *q, const float *ka, const float *va, int n_a,
                     size_t stride_a, const float *kb, const float *vb, int n_b, size_t stride_b, int C, int H,
                     float *scores)
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
void pl_op_causal_attention(float *out, const float *qkv, int T, int C, int H, float *scores)
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
