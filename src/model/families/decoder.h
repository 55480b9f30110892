/* The decoder: the one forward pass of every family (GPT-2, Llama, Mistral, Qwen2, GPT-NeoX and
 * llama2.c checkpoints), which differ only in the choices below. A family file (families/) or a
 * format (formats/llama2c.c) fills a pl_decoder from its config and tensors; decoder.c computes it
 * behind plateau/forward.h.
 *
 * Resid index 0: embed[tok] (+ pos_embed[t] when the family learns positions: GPT-2), times
 * embed_scale when set (Gemma 2: sqrt(hidden) as a float).
 * Block l (resid x -> x'), with h = norm_1(x):
 *   attention:  q = h Wq + bq, k = h Wk + bk, v = h Wv + bv (separate, or one fused matrix laid out
 *               per head [q, k, v] (GPT-NeoX) or as blocks [q | k | v] (GPT-2)); RoPE on the first
 *               rot_dim dims of each head of q and k (none when rot_dim = 0);
 *               s = q k^T * attn_scale (1/sqrt(head_dim) unless set), soft-capped s = c tanh(s / c)
 *               when attn_softcap = c is set, then masked: causal, and on a block with window w
 *               only the w latest keys (key j of query i when i - j < w, HF's sliding window);
 *               a = softmax(s) v (query head i reads key/value head i / (H / KVH)); o = a Wo + bo,
 *               then o = post_attn_norm(o) when the block has one (Gemma 2)
 *   MLP:        swiglu:    m(y) = Wdown (silu(Wgate y) * (Wup y))
 *               geglu_tanh: m(y) = Wdown (gelu_tanh(Wgate y) * (Wup y))   (Gemma 2)
 *               gelu_erf:  m(y) = Wdown gelu(Wup y + bup) + bdown
 *               gelu_tanh: the same with GPT-2's tanh GELU ("gelu_new")
 *               then m = post_mlp_norm(m) when the block has one (Gemma 2)
 *   sequential: x' = x + o, then x' += m(norm_2(x'))             (GPT-2, Llama, NeoX sequential)
 *   parallel:   x' = x + o + m(norm_2(x))                        (NeoX use_parallel_residual=true)
 * Logits: norm_f(x_L) Wunembed^T, soft-capped c tanh(l / c) when final_softcap = c is set. Norms:
 * RMSNorm (weight; (1 + weight) in fp32 when norm_plus_one, Gemma) or LayerNorm (weight and bias).
 * Every option's zero value is the plain decoder.
 *
 * Each weight matrix keeps the layout of its file (pl_dec_mat.layout): PyTorch nn.Linear [out, in]
 * (y = x W^T, pl_op_linear) or HF Conv1D [in, out] (y = x W, pl_op_matmul, GPT-2). The weights stay
 * where they were loaded (mmapped or converted), and each layout keeps its own sgemm orientation;
 * separate q, k, v and gate, up that the loader placed side by side are applied as one matrix each
 * (pl_decoder_fuse).
 *
 * Later choices (Gemma 2's post-norms, (1+w) RMSNorm, soft-capping, GeGLU, embedding scale,
 * sliding windows) belong here as further fields of pl_decoder_config, read by the same forward, and
 * by the derivatives of the fast path (decoder_grad.c: every choice above needs its op's tangent and
 * cotangent there too). */
#ifndef PLATEAU_DECODER_H
#define PLATEAU_DECODER_H

#include "../model_internal.h"

enum { PL_MLP_SWIGLU, PL_MLP_GELU_ERF, PL_MLP_GELU_TANH, PL_MLP_GEGLU_TANH };
/* How q, k and v come out of the attention's input projection. */
enum {
    PL_QKV_SEPARATE,     /* q, k, v: three matrices */
    PL_QKV_FUSED_HEADS,  /* qkv [3*H*hd]: per head [q, k, v] (GPT-NeoX's query_key_value; H = KVH) */
    PL_QKV_FUSED_BLOCKS, /* qkv [(H + 2 KVH) hd]: [q | k | v] (GPT-2's c_attn) */
};
/* A weight matrix's layout in memory. */
enum {
    PL_LAYOUT_OUT_IN, /* [out, in]: PyTorch nn.Linear (y = x W^T); the zero default */
    PL_LAYOUT_IN_OUT, /* [in, out]: HF Conv1D (y = x W) */
};

typedef struct {
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_mlp, n_vocab, n_ctx;
    int norm;              /* PL_NORM_RMSNORM or PL_NORM_LAYERNORM */
    float norm_eps;
    int mlp;               /* PL_MLP_* */
    int qkv;               /* PL_QKV_* */
    int parallel_residual;
    int rot_dim;           /* rotary dims per head (even, <= head_dim); 0: no RoPE */
    int rope_interleaved;  /* llama2.c's pairs (2k, 2k+1); else HF's rotate-half */
    float *inv_freq;       /* [rot_dim / 2], any rope scaling applied; owned (NULL when rot_dim = 0) */
    int tied;              /* unembedding = token embedding */
    /* Gemma 2's choices; 0 everywhere else. */
    int norm_plus_one;     /* RMSNorm scales by (1 + w), computed in fp32 */
    float embed_scale;     /* resid index 0 = embed[tok] * embed_scale; 0: unscaled */
    float attn_scale;      /* scores = q.k * attn_scale; 0: 1/sqrt(head_dim) */
    float attn_softcap;    /* scores = c tanh(scores / c) before the mask; 0: none */
    float final_softcap;   /* logits = c tanh(logits / c); 0: none */
} pl_decoder_config;

/* One weight matrix and its bias: w [out, in] or [in, out] (layout), b [out] or NULL. */
typedef struct {
    const float *w, *b;
    int layout; /* PL_LAYOUT_* */
} pl_dec_mat;

typedef struct {
    const float *norm1_w, *norm1_b; /* [C] (b: LayerNorm only) */
    pl_dec_mat q, k, v;             /* PL_QKV_SEPARATE: out H*hd, KVH*hd, KVH*hd; in C */
    pl_dec_mat qkv;                 /* PL_QKV_FUSED_*: out (H + 2 KVH) hd, in C */
    pl_dec_mat o;                   /* out C, in H*hd */
    const float *norm2_w, *norm2_b; /* [C] */
    pl_dec_mat gate;                /* swiglu: out I, in C */
    pl_dec_mat up;                  /* out I, in C */
    pl_dec_mat down;                /* out C, in I */
    const float *post_attn_norm_w;  /* [C] norm of the attention output, or NULL (Gemma 2) */
    const float *post_mlp_norm_w;   /* [C] norm of the MLP output, or NULL (Gemma 2) */
    int window;                     /* sliding window: a query sees its `window` latest keys; 0: all */
    pl_dec_mat gate_up;             /* gated MLPs fused at load: [gate | up], out 2I, in C, layout
                                       OUT_IN, whose halves gate.w and up.w are (pl_decoder_fuse); w NULL:
                                       gate and up apart */
} pl_decoder_block;

typedef struct {
    pl_decoder_config cfg;
    pl_decoder_block *blocks;        /* [L] */
    const float *embed;              /* [V, C] */
    const float *pos_embed;          /* [n_positions, C] learned positions (GPT-2's wpe), or NULL */
    int n_pos_embed;                 /* its rows (counted in the parameters) */
    const float *normf_w, *normf_b;  /* [C] */
    const float *unembed;            /* [V, C] */
} pl_decoder;

/* A zeroed decoder with L blocks attached to m (m->weights, m->ops); NULL on failure. */
pl_decoder *pl_decoder_new(pl_model *m, int n_layer);

/* inv_freq[k] = 1 / theta^(2k / rot_dim), in float as HF and run.c compute it. */
int pl_decoder_rope_default(pl_decoder_config *cfg, double theta);

/* Apply each block's q, k, v (every block's, all [out, in], biases all or none) as one fused [q | k | v]
 * matrix (cfg.qkv = PL_QKV_FUSED_BLOCKS, b->qkv a view starting at q) when the loader placed them side
 * by side (pl_hf_want_group), and gate, up as one [gate | up] (b->gate_up); q, k, v, gate and up stay
 * valid views. One sgemm instead of three (two): the same multiply-adds, larger N. */
void pl_decoder_fuse(pl_decoder *d);

/* Fill m->info from the decoder's config (family, format, params counted from the tensors). */
void pl_decoder_set_info(pl_model *m, const char *family, const char *format, int synthetic);

/* Derivatives of the fast path (decoder_grad.c; plateau/grad.h), arguments checked: the family ops
 * patch_jvp_groups, patch_vjp_groups, patch_jvp_flops and patch_vjp_flops. */
int pl_decoder_patch_jvp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                int resid_index, int pos, const float *X, const float *DX, float *logits,
                                float *dlogits, int read_index, float *read, float *dread);
int pl_decoder_patch_vjp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                int resid_index, int pos, const float *X, const float *glogits, int read_index,
                                const float *gread, float *logits, float *read, float *dx);
/* The same from a mid-block point PT (attn.hook_z, hook_attn_out, hook_resid_mid, hook_mlp_out): X, DX,
 * dx [M, W] with W = pl_hook_width; ops patch_jvp_groups_at, patch_vjp_groups_at. */
int pl_decoder_patch_jvp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                   pl_hook_point pt, int pos, const float *X, const float *DX, float *logits,
                                   float *dlogits, int read_index, float *read, float *dread);
int pl_decoder_patch_vjp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                   pl_hook_point pt, int pos, const float *X, const float *glogits, int read_index,
                                   const float *gread, float *logits, float *read, float *dx);
/* Whole contexts at a resid index (pl_patch_jvp_positions / pl_patch_vjp_positions): X, DX, dx
 * [M, P, C]; ops patch_jvp_positions, patch_vjp_positions. */
int pl_decoder_patch_jvp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                   int resid_index, const int *positions, int P, const float *X, const float *DX,
                                   float *logits, float *dlogits, int read_index, float *read, float *dread);
int pl_decoder_patch_vjp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                   int resid_index, const int *positions, int P, const float *X, const float *glogits,
                                   int read_index, const float *gread, float *logits, float *read, float *dx);
/* The same from a mid-block point PT: X, DX, dx [M, P, W] with W = pl_hook_width; ops
 * patch_jvp_positions_at, patch_vjp_positions_at. */
int pl_decoder_patch_jvp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                                      int M, pl_hook_point pt, const int *positions, int P, int W, const float *X,
                                      const float *DX, float *logits, float *dlogits, int read_index, float *read,
                                      float *dread);
int pl_decoder_patch_vjp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                                      int M, pl_hook_point pt, const int *positions, int P, int W, const float *X,
                                      const float *glogits, int read_index, const float *gread, float *logits,
                                      float *read, float *dx);
double pl_decoder_patch_jvp_flops(const pl_model *m, int T, int resid_index, int pos);
double pl_decoder_patch_vjp_flops(const pl_model *m, int T, int resid_index, int pos);

#endif
