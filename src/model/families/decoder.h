/* Rotary decoders: the block of Llama (and Mistral, Qwen2, llama2.c checkpoints) and of GPT-NeoX,
 * which differ only in the choices below. The family files (llama.c, neox.c) and the llama2.c format
 * fill a pl_decoder from their config and tensors; decoder.c computes it behind plateau/forward.h.
 *
 * Block l (resid x -> x'), with h = norm_1(x):
 *   attention:  q = h Wq^T + bq, k = h Wk^T + bk, v = h Wv^T + bv; RoPE on q and k at each position;
 *               a = causal softmax(q k^T / sqrt(head_dim)) v (query head i reads key/value head
 *               i / (H / KVH)); o = a Wo^T + bo
 *   MLP:        swiglu:   m(y) = Wdown (silu(Wgate y) * (Wup y))
 *               gelu_erf: m(y) = Wdown gelu(Wup y + bup) + bdown
 *   sequential: x' = x + o, then x' += m(norm_2(x'))             (Llama, NeoX use_parallel_residual=false)
 *   parallel:   x' = x + o + m(norm_2(x))                        (NeoX use_parallel_residual=true)
 * Logits: norm_f(x_L) Wunembed^T. Norms: RMSNorm (weight) or LayerNorm (weight and bias). */
#ifndef PLATEAU_DECODER_H
#define PLATEAU_DECODER_H

#include "../model_internal.h"

enum { PL_MLP_SWIGLU, PL_MLP_GELU_ERF };

typedef struct {
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_mlp, n_vocab, n_ctx;
    int norm;              /* PL_NORM_RMSNORM or PL_NORM_LAYERNORM */
    float norm_eps;
    int mlp;               /* PL_MLP_* */
    int parallel_residual;
    int rot_dim;           /* rotary dims per head (even, <= head_dim) */
    int rope_interleaved;  /* llama2.c's pairs (2k, 2k+1); else HF's rotate-half */
    float *inv_freq;       /* [rot_dim / 2], any rope scaling applied; owned */
    int tied;              /* unembedding = token embedding */
} pl_decoder_config;

typedef struct {
    const float *norm1_w, *norm1_b; /* [C] (b: LayerNorm only) */
    const float *q_w, *q_b;         /* [H*hd, C], [H*hd] or NULL */
    const float *k_w, *k_b;         /* [KVH*hd, C], [KVH*hd] or NULL */
    const float *v_w, *v_b;         /* [KVH*hd, C], [KVH*hd] or NULL */
    const float *qkv_w, *qkv_b;     /* GPT-NeoX's fused [H*3*hd, C]: per head q, k, v (q_w.. are NULL) */
    const float *o_w, *o_b;         /* [C, H*hd], [C] or NULL */
    const float *norm2_w, *norm2_b; /* [C] */
    const float *gate_w;            /* swiglu: [I, C] */
    const float *up_w, *up_b;       /* [I, C], [I] or NULL */
    const float *down_w, *down_b;   /* [C, I], [C] or NULL */
} pl_decoder_block;

typedef struct {
    pl_decoder_config cfg;
    pl_decoder_block *blocks;        /* [L] */
    const float *embed;              /* [V, C] */
    const float *normf_w, *normf_b;  /* [C] */
    const float *unembed;            /* [V, C] */
} pl_decoder;

/* A zeroed decoder with L blocks attached to m (m->weights, m->ops); NULL on failure. */
pl_decoder *pl_decoder_new(pl_model *m, int n_layer);

/* inv_freq[k] = 1 / theta^(2k / rot_dim), in float as HF and run.c compute it. */
int pl_decoder_rope_default(pl_decoder_config *cfg, double theta);

/* Fill m->info from the decoder's config (family, format, params counted from the tensors). */
void pl_decoder_set_info(pl_model *m, const char *family, const char *format, int synthetic);

#endif
