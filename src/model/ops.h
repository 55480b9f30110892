/* Layer ops shared by the model families (src/model/ops.c). */
#ifndef PLATEAU_MODEL_OPS_H
#define PLATEAU_MODEL_OPS_H

#include <stddef.h>

/* out[N, C] = layernorm(in[N, C]) * w + b; statistics in double so that they do not depend on the
 * order of a float sum (the reference computes them in float64 too). */
void pl_op_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps);

/* out[N, OUT] = in[N, IN] @ W[IN, OUT] + bias[OUT]. One row goes through sgemv: OpenBLAS 0.3.21
 * does not route an M = 1 sgemm to its gemv kernels, and the sgemm path is several times slower. */
void pl_op_matmul(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT);

/* GPT-2's "gelu_new", 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), written as
 * v * sigmoid(2u): the same function without tanh's cancellation near 0, and expf is several times
 * cheaper than tanhf (GELU is a tenth of the fast path's time with tanhf). */
void pl_op_gelu_tanh(float *x, size_t n);

void pl_op_residual_add(float *x, const float *delta, size_t n);

/* Causal attention of one query row q[C] over keys and values given as two runs of rows: n_a rows
 * of (ka, va) with row stride stride_a floats (the cached clean positions), then n_b rows of (kb, vb)
 * with stride stride_b (the variant's own positions, still inside its qkv rows). out[C] receives
 * the heads side by side; scores[n_a + n_b] is scratch. */
void pl_op_attend_one(float *out, const float *q, const float *ka, const float *va, int n_a,
                     size_t stride_a, const float *kb, const float *vb, int n_b, size_t stride_b, int C, int H,
                     float *scores);

/* Causal self-attention of all T positions: out[T, C] from qkv[T, 3C]. Each head's scores and
 * weighted values are two sgemms over strided views of qkv (the upper triangle of the scores is
 * computed and discarded: at GPT-2 sizes that is cheaper than scalar loops). scores[T, T] is
 * scratch. */
void pl_op_causal_attention(float *out, const float *qkv, int T, int C, int H, float *scores);

#endif
