/* Layer ops shared by the model families (src/model/ops.c). */
#ifndef PLATEAU_MODEL_OPS_H
#define PLATEAU_MODEL_OPS_H

#include <stddef.h>

/* out[N, C] = layernorm(in[N, C]) * w + b; statistics in double so that they do not depend on the
 * order of a float sum (the reference computes them in float64 too). */
void pl_op_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps);

/* out[N, OUT] = in[N, IN] @ W[IN, OUT] + bias[OUT] (bias may be NULL), W in HF Conv1D's layout (GPT-2). One row goes through sgemv: OpenBLAS 0.3.21
 * does not route an M = 1 sgemm to its gemv kernels, and the sgemm path is several times slower. */
void pl_op_matmul(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT);

/* GPT-2's "gelu_new", 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), written as
 * v * sigmoid(2u): the same function without tanh's cancellation near 0, and expf is several times
 * cheaper than tanhf (GELU is a tenth of the fast path's time with tanhf). */
void pl_op_gelu_tanh(float *x, size_t n);

void pl_op_residual_add(float *x, const float *delta, size_t n);

/* out[N, OUT] = in[N, IN] @ W^T + bias (bias may be NULL), W[OUT, IN] in PyTorch's nn.Linear layout
 * (Llama, GPT-NeoX, llama2.c). One row goes through sgemv, as in pl_op_matmul. */
void pl_op_linear(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT);

/* out[N, C] = in * rsqrt(mean(in^2) + eps) * w (HF's LlamaRMSNorm, llama2.c's rmsnorm); the mean in
 * double, as pl_op_layernorm's statistics. */
void pl_op_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps);

/* Gemma's RMSNorm: out = in * rsqrt(mean(in^2) + eps) * (1 + w), (1 + w) in fp32 as HF's
 * Gemma2RMSNorm; the mean in double as pl_op_rmsnorm's. In place (out = in) is allowed. */
void pl_op_rmsnorm_1p(float *out, const float *in, const float *w, int N, int C, float eps);

/* GeGLU: gate[i] = gelu_tanh(gate[i]) * up[i], the GELU of pl_op_gelu_tanh (Gemma's MLP,
 * hidden_activation gelu_pytorch_tanh). */
void pl_op_geglu_tanh(float *gate, const float *up, size_t n);

/* Logit soft-capping, in place: x = cap * tanh(x / cap) (Gemma 2's attention and final logits). */
void pl_op_softcap(float *x, size_t n, float cap);

/* GELU with the exact erf, 0.5 v (1 + erf(v / sqrt 2)) (GPT-NeoX's "gelu"). */
void pl_op_gelu_erf(float *x, size_t n);

/* SwiGLU: gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)) (Llama's MLP, llama2.c's w1/w3). */
void pl_op_swiglu(float *gate, const float *up, size_t n);

/* The rotary table of positions FIRST .. FIRST+PERIOD-1: cs[p, k] = (cos, sin) of the angle
 * (float)(FIRST + p) * inv_freq[k], k < ROT/2: the float product and cosf/sinf, as both HF (float32
 * tensors) and llama2.c's run.c compute it. cs holds PERIOD * ROT floats. */
void pl_op_rope_table(float *cs, const float *inv_freq, int ROT, int first, int period);

/* Rotary position embedding, in place, of R rows x[R, row_stride] holding NH heads of HD floats
 * each (head h at x + h*HD); row i is at table position i % PERIOD of CS (pl_op_rope_table). The
 * first ROT dims of each head rotate, pair k by cs[., k]:
 *   INTERLEAVED = 0: HF's rotate-half (Llama, Qwen2, Mistral, GPT-NeoX), pairs (k, k + ROT/2);
 *   INTERLEAVED = 1: llama2.c's run.c, pairs (2k, 2k + 1). */
void pl_op_rope(float *x, int R, size_t row_stride, int NH, int HD, int ROT, const float *cs, int period,
                int interleaved);

/* Options of the attention ops; NULL: scale 1/sqrt(HD), no soft-capping, full causal attention.
 * scale: scores = q.k * scale; softcap c > 0: scores = c tanh(scores / c) before the mask;
 * window w > 0: a query at position i sees keys j with i - j < w only (HF's sliding window). */
typedef struct {
    float scale;
    float softcap;
    int window;
} pl_attn_opts;

/* Attention of one query row q[H*HD] over keys and values given as two runs of rows: n_a rows of
 * (ka, va) with row stride stride_a floats (the cached clean positions), then n_b rows of (kb, vb)
 * with stride stride_b (the variant's own positions). Keys and values hold KVH heads of HD floats
 * (grouped-query attention: query head h reads key/value head h / (H / KVH)). out[H*HD] receives
 * the heads side by side; scores[n_a + n_b] is scratch. The query sits at the last key's position
 * (a window counts back from it). OPT: pl_attn_opts or NULL. */
void pl_op_attend_one(float *out, const float *q, const float *ka, const float *va, int n_a, size_t stride_a,
                      const float *kb, const float *vb, int n_b, size_t stride_b, int H, int KVH, int HD,
                      float *scores, const pl_attn_opts *opt);

/* Causal self-attention of all T positions: out[T, H*HD] from queries q[T, *] (row stride q_stride)
 * and keys/values k, v[T, *] (row stride kv_stride) of KVH heads (grouped as in pl_op_attend_one).
 * Each head's scores and weighted values are two sgemms over strided views (the upper triangle of
 * the scores is computed and discarded: at these sizes that is cheaper than scalar loops).
 * scores[T, T] is scratch. OPT: pl_attn_opts or NULL. */
void pl_op_causal_attention(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                            size_t kv_stride, int T, int H, int KVH, int HD, float *scores, const pl_attn_opts *opt);

#endif
