/* Gemma 2 (model_type "gemma2"): config.json keys, the tensor-name table of HF's Gemma2ForCausalLM and
 * what plateau synth writes for it; the math is the decoder of decoder.h with Gemma 2's options, as
 * transformers' modeling_gemma2.py computes them:
 *   - resid index 0 = embed[tok] * sqrt(hidden_size) (the normalizer a float32 tensor);
 *   - RMSNorm scaling by (1 + w) in fp32 (Gemma2RMSNorm), before and after the attention
 *     (input_layernorm, post_attention_layernorm) and the MLP (pre_feedforward_layernorm,
 *     post_feedforward_layernorm): x' = x + post_attn(attn(in(x))); x'' = x' + post_ff(mlp(pre_ff(x')));
 *   - GeGLU with hidden_activation gelu_pytorch_tanh; grouped-query attention with head_dim;
 *     scores scaled by query_pre_attn_scalar^-0.5 and soft-capped (attn_logit_softcapping) before
 *     the mask; the final logits soft-capped (final_logit_softcapping); tied embeddings by default;
 *   - sliding-window attention (a query at i sees keys j with i - j < sliding_window) on the layers
 *     layer_types names "sliding_attention"; without layer_types, transformers' default: every
 *     even layer (0, 2, ...) slides, the odd ones attend to all keys. The window is computed
 *     exactly, so max_position_embeddings positions are taken.
 * Keys that would change the math and are not implemented are refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../registry.h"
#include "decoder.h"
#include "plateau/error.h"

#define MAX_LAYER 4096
#define MAX_WIDTH 65536
#define MAX_CTX (1 << 24)
#define MAX_VOCAB (1 << 22)

typedef struct {
    int L, C, H, KVH, hd, I, V, n_pos, window, tied;
    double eps, theta, qpas, attn_cap, final_cap;
} gemma_keys;

static int ignored_buffer(const pl_model *m, const char *file, const char *name)
{
    (void)m, (void)file;
    /* a rotary inv_freq table some exports carry: plateau computes its own */
    const char *suffix = ".self_attn.rotary_emb.inv_freq";
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && !strcmp(name + n - s, suffix) && !strncmp(name, "model.layers.", 13);
}

/* A soft-capping key: HF's default when absent, none when null, else a positive number. */
static int read_cap(const pl_hf_config *c, const char *key, double dflt, double *cap)
{
    const json_t *v = json_object_get(c->root, key);
    if (v && json_is_null(v)) {
        *cap = 0.0;
        return PL_OK;
    }
    if (pl_hf_num(c, key, 0, dflt, 0, 1e9, cap)) /* bounds exclusive: a cap is positive */
        return PL_ERR;
    /* the forward holds the cap as a float, where 0 means no cap: a cap that rounds to 0 would
     * silently drop it */
    if (!((float)*cap > 0.0f))
        return pl_fail("%s: key \"%s\" = %g is too small to hold as a float32 soft-cap", c->path, key, *cap);
    return PL_OK;
}

/* query_pre_attn_scalar: HF's 256 when absent; null is an error in transformers (it takes null**-0.5),
 * not its default (Gemma 2 27B's is 144, not 256); the float32 scale it gives must be finite. */
static int read_qpas(const pl_hf_config *c, double *qpas)
{
    const json_t *v = json_object_get(c->root, "query_pre_attn_scalar");
    if (v && json_is_null(v))
        return pl_fail("%s: key \"query_pre_attn_scalar\" is null: transformers needs a number (the scores are "
                       "scaled by its -1/2 power; absent: 256)", c->path);
    if (pl_hf_num(c, "query_pre_attn_scalar", 0, 256.0, 0, 1e9, qpas))
        return PL_ERR;
    if (!isfinite((float)pow(*qpas, -0.5)))
        return pl_fail("%s: key \"query_pre_attn_scalar\" = %g: its -1/2 power overflows float32", c->path, *qpas);
    return PL_OK;
}

static int read_sizes(const pl_hf_config *c, gemma_keys *k)
{
    const char *act;
    int bias;
    if (pl_hf_int(c, "num_hidden_layers", 1, 0, 1, MAX_LAYER, &k->L) ||
        pl_hf_int(c, "hidden_size", 1, 0, 1, MAX_WIDTH, &k->C) ||
        pl_hf_int(c, "intermediate_size", 1, 0, 1, 16 * MAX_WIDTH, &k->I) ||
        pl_hf_int(c, "num_attention_heads", 1, 0, 1, MAX_WIDTH, &k->H) ||
        pl_hf_int(c, "num_key_value_heads", 1, 0, 1, MAX_WIDTH, &k->KVH) ||
        pl_hf_int(c, "head_dim", 1, 0, 2, MAX_WIDTH, &k->hd) || pl_hf_int(c, "vocab_size", 1, 0, 1, MAX_VOCAB, &k->V) ||
        pl_hf_int(c, "max_position_embeddings", 1, 0, 1, MAX_CTX, &k->n_pos) ||
        pl_hf_num(c, "rms_norm_eps", 0, 1e-6, 0, 1, &k->eps) || pl_hf_bool(c, "tie_word_embeddings", 1, &k->tied) ||
        pl_hf_bool(c, "attention_bias", 0, &bias) || pl_hf_str(c, "hidden_activation", "gelu_pytorch_tanh", &act) ||
        read_qpas(c, &k->qpas) ||
        read_cap(c, "attn_logit_softcapping", 50.0, &k->attn_cap) ||
        read_cap(c, "final_logit_softcapping", 30.0, &k->final_cap))
        return PL_ERR;
    if (k->H % k->KVH)
        return pl_fail("%s: key \"num_attention_heads\" = %d is not divisible by \"num_key_value_heads\" = %d", c->path,
                       k->H, k->KVH);
    if (k->hd % 2)
        return pl_fail("%s: key \"head_dim\" = %d is odd: rotary embedding rotates pairs", c->path, k->hd);
    if ((long)k->H * k->hd > MAX_WIDTH * 16L)
        return pl_fail("%s: num_attention_heads x head_dim = %ld exceeds the supported maximum %ld", c->path,
                       (long)k->H * k->hd, MAX_WIDTH * 16L);
    /* HF's Gemma2MLP reads hidden_activation (hidden_act is ignored, as transformers does) */
    if (strcmp(act, "gelu_pytorch_tanh"))
        return pl_fail("%s: key \"hidden_activation\" is \"%.40s\": plateau computes Gemma 2's GeGLU with "
                       "\"gelu_pytorch_tanh\"", c->path, act);
    if (bias)
        return pl_fail("%s: key \"attention_bias\" is true: not supported (plateau computes Gemma 2's attention "
                       "without biases)", c->path);
    return PL_OK;
}

/* rope_theta, or transformers 5's rope_parameters {rope_type: default, rope_theta}; no scaling. */
static int read_rope(const pl_hf_config *c, gemma_keys *k)
{
    if (pl_hf_refuse_if_set(c, "rope_scaling", "plateau computes Gemma 2's default RoPE"))
        return PL_ERR;
    if (pl_hf_num(c, "rope_theta", 0, 10000.0, 0, 1e12, &k->theta))
        return PL_ERR;
    const json_t *rp = json_object_get(c->root, "rope_parameters");
    if (!rp || json_is_null(rp))
        return PL_OK;
    const json_t *type = json_object_get(rp, "rope_type"), *theta = json_object_get(rp, "rope_theta");
    if (!json_is_object(rp) || !json_is_string(type) || strcmp(json_string_value(type), "default"))
        return pl_fail("%s: key \"rope_parameters\": only rope_type \"default\" is supported for gemma2", c->path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rp, key, v) {
        if (strcmp(key, "rope_type") && strcmp(key, "rope_theta"))
            return pl_fail("%s: key \"rope_parameters\": \"%.60s\" is not supported", c->path, key);
    }
    if (theta) {
        double t = json_number_value(theta);
        if (!json_is_number(theta) || !isfinite(t) || !(t > 0))
            return pl_fail("%s: key \"rope_parameters\": rope_theta is not a positive number", c->path);
        if (json_object_get(c->root, "rope_theta") && t != k->theta)
            return pl_fail("%s: keys \"rope_theta\" and \"rope_parameters\".rope_theta disagree", c->path);
        k->theta = t;
    }
    return PL_OK;
}

/* The window and which layers slide (layer_types, or transformers' default: the even layers). */
static int read_windows(const pl_hf_config *c, const gemma_keys *k, pl_decoder *d)
{
    const json_t *sw = json_object_get(c->root, "sliding_window"), *types = json_object_get(c->root, "layer_types");
    int window = 0, null_window = sw && json_is_null(sw);
    if (!null_window && pl_hf_int(c, "sliding_window", 0, 4096, 1, MAX_CTX, &window))
        return PL_ERR;
    if (types && !json_is_null(types) && (!json_is_array(types) || (int)json_array_size(types) != k->L))
        return pl_fail("%s: key \"layer_types\" is not a list of num_hidden_layers = %d entries", c->path, k->L);
    for (int l = 0; l < k->L; l++) {
        int sliding = l % 2 == 0;
        if (types && !json_is_null(types)) {
            const char *t = json_string_value(json_array_get(types, (size_t)l));
            if (!t || (strcmp(t, "sliding_attention") && strcmp(t, "full_attention")))
                return pl_fail("%s: key \"layer_types\"[%d] is not \"sliding_attention\" or \"full_attention\"", c->path,
                               l);
            sliding = !strcmp(t, "sliding_attention");
        }
        /* transformers refuses a null window only where a layer slides (layer_types may have none) */
        if (sliding && null_window)
            return pl_fail("%s: key \"sliding_window\" is null: layer %d is a sliding layer and needs a window",
                           c->path, l);
        d->blocks[l].window = sliding ? window : 0;
    }
    return PL_OK;
}

/* Keys of other architectures, quantised exports and attention variants plateau does not compute. */
static int read_refusals(const pl_hf_config *c)
{
    if (pl_hf_refuse_if_set(c, "quantization_config", "plateau reads F32/F16/BF16 weights") ||
        pl_hf_refuse_if_set(c, "use_bidirectional_attention", "plateau computes causal attention") ||
        pl_hf_refuse_if_set(c, "use_qk_norm", "plateau computes attention without query/key norms"))
        return PL_ERR;
    const json_t *prf = json_object_get(c->root, "partial_rotary_factor");
    if (prf && !json_is_null(prf) && !(json_is_number(prf) && json_number_value(prf) == 1.0))
        return pl_fail("%s: key \"partial_rotary_factor\" is not 1: not supported for gemma2 (every head dim rotates)",
                       c->path);
    return PL_OK;
}

/* The tensor-name table (HF Gemma2ForCausalLM names). */
static int tensor_table(pl_decoder *d, const gemma_keys *k, pl_hf_wants *w)
{
    int C = k->C, I = k->I, V = k->V, qd = k->H * k->hd, kvd = k->KVH * k->hd, rc = PL_OK;
    char why_attn[160], why_mlp[160], why_vocab[120], why_c[64];
    snprintf(why_attn, sizeof why_attn, "hidden_size=%d, num_attention_heads=%d, num_key_value_heads=%d, head_dim=%d",
             C, k->H, k->KVH, k->hd);
    snprintf(why_mlp, sizeof why_mlp, "hidden_size=%d, intermediate_size=%d", C, I);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, hidden_size=%d", V, C);
    snprintf(why_c, sizeof why_c, "hidden_size=%d", C);
    const char *p = "model.layers";
    for (int l = 0; l < k->L && rc == PL_OK; l++) {
        pl_decoder_block *b = &d->blocks[l];
        rc = pl_hf_want_add(w, &b->norm1_w, 0, 1, C, 0, why_c, "%s.%d.input_layernorm.weight", p, l) ||
             pl_hf_want_add(w, &b->q.w, 0, 2, qd, C, why_attn, "%s.%d.self_attn.q_proj.weight", p, l) ||
             pl_hf_want_add(w, &b->k.w, 0, 2, kvd, C, why_attn, "%s.%d.self_attn.k_proj.weight", p, l) ||
             pl_hf_want_add(w, &b->v.w, 0, 2, kvd, C, why_attn, "%s.%d.self_attn.v_proj.weight", p, l) ||
             pl_hf_want_group(w, 3) ||
             pl_hf_want_add(w, &b->o.w, 0, 2, C, qd, why_attn, "%s.%d.self_attn.o_proj.weight", p, l) ||
             pl_hf_want_add(w, &b->post_attn_norm_w, 0, 1, C, 0, why_c, "%s.%d.post_attention_layernorm.weight", p, l) ||
             pl_hf_want_add(w, &b->norm2_w, 0, 1, C, 0, why_c, "%s.%d.pre_feedforward_layernorm.weight", p, l) ||
             pl_hf_want_add(w, &b->gate.w, 0, 2, I, C, why_mlp, "%s.%d.mlp.gate_proj.weight", p, l) ||
             pl_hf_want_add(w, &b->up.w, 0, 2, I, C, why_mlp, "%s.%d.mlp.up_proj.weight", p, l) ||
             pl_hf_want_group(w, 2) ||
             pl_hf_want_add(w, &b->down.w, 0, 2, C, I, why_mlp, "%s.%d.mlp.down_proj.weight", p, l) ||
             pl_hf_want_add(w, &b->post_mlp_norm_w, 0, 1, C, 0, why_c, "%s.%d.post_feedforward_layernorm.weight", p, l);
    }
    if (rc == PL_OK)
        rc = pl_hf_want_add(w, &d->embed, 0, 2, V, C, why_vocab, "model.embed_tokens.weight") ||
             pl_hf_want_add(w, &d->normf_w, 0, 1, C, 0, why_c, "model.norm.weight") ||
             pl_hf_want_add(w, &d->unembed, k->tied ? PL_HF_TIED : PL_HF_REQUIRED, 2, V, C,
                            k->tied ? "tie_word_embeddings=true" : why_vocab, "lm_head.weight");
    return rc ? PL_ERR : PL_OK;
}

static int gemma2_read(pl_model *m, const pl_hf_config *c, const pl_family *f, pl_hf_wants *w)
{
    (void)f;
    gemma_keys k;
    if (read_sizes(c, &k) || read_rope(c, &k) || read_refusals(c))
        return PL_ERR;
    pl_decoder *d = pl_decoder_new(m, k.L);
    if (!d || read_windows(c, &k, d))
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    cfg->d_model = k.C, cfg->n_head = k.H, cfg->n_kv_head = k.KVH, cfg->head_dim = k.hd, cfg->d_mlp = k.I;
    cfg->n_vocab = k.V, cfg->n_ctx = k.n_pos, cfg->norm = PL_NORM_RMSNORM, cfg->norm_eps = (float)k.eps;
    cfg->mlp = PL_MLP_GEGLU_TANH, cfg->qkv = PL_QKV_SEPARATE, cfg->parallel_residual = 0, cfg->rot_dim = k.hd;
    cfg->rope_interleaved = 0, cfg->tied = k.tied, cfg->norm_plus_one = 1;
    cfg->embed_scale = (float)sqrt((double)k.C);      /* torch.tensor(hidden_size**0.5, dtype=float32) */
    cfg->attn_scale = (float)pow(k.qpas, -0.5);       /* query_pre_attn_scalar**-0.5 */
    cfg->attn_softcap = (float)k.attn_cap, cfg->final_softcap = (float)k.final_cap;
    if (pl_decoder_rope_default(cfg, k.theta))
        return PL_ERR;
    pl_model_describe_add(m, "rope_theta", "%g", k.theta);
    return tensor_table(d, &k, w);
}

static int gemma2_finish(pl_model *m, const pl_hf_config *c, const pl_hf_wants *w)
{
    pl_decoder *d = m->weights;
    if (d->cfg.tied) {
        const pl_hf_want *lm = pl_hf_want_of(w, &d->unembed), *embed = pl_hf_want_of(w, &d->embed);
        if (lm->found_in && !pl_hf_same_values(lm, embed))
            return pl_fail("%s: tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight",
                           c->path);
        d->unembed = d->embed;
    }
    return PL_OK;
}

/* ------------------------------------------------------------ plateau synth */

static int gemma2_synth_dims(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d)
{
    (void)f;
    if (d->head_dim % 2)
        return pl_fail("synth: head size %d is odd: rotary embedding rotates pairs", d->head_dim);
    d->d_mlp = o->d_mlp ? o->d_mlp : 4 * o->n_embd; /* Gemma 2 2B and 9B: 4 hidden */
    return PL_OK;
}

/* Gemma 2 2B's choices (soft-caps 50 and 30, query_pre_attn_scalar = head_dim, window 4096 unless
 * --sliding-window) at the options' sizes. */
static json_t *gemma2_synth_config(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d)
{
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:i, s:i}", "model_type",
                            f->model_type, "hidden_size", o->n_embd, "intermediate_size", d->d_mlp, "num_hidden_layers",
                            o->n_layer, "num_attention_heads", o->n_head, "num_key_value_heads", d->n_kv_head,
                            "head_dim", d->head_dim, "vocab_size", d->n_vocab, "max_position_embeddings", o->n_ctx,
                            "tie_word_embeddings", o->tied, "bos_token_id", d->n_vocab - 1, "eos_token_id",
                            d->n_vocab - 1, "pad_token_id", 0);
    if (!cfg)
        return NULL;
    json_object_set_new(cfg, "architectures", json_pack("[s]", f->architecture));
    json_object_set_new(cfg, "hidden_activation", json_string("gelu_pytorch_tanh"));
    json_object_set_new(cfg, "rms_norm_eps", json_real(1e-6));
    json_object_set_new(cfg, "rope_theta", json_real(o->rope_theta > 0 ? o->rope_theta : 10000.0));
    json_object_set_new(cfg, "query_pre_attn_scalar", json_integer(d->head_dim));
    json_object_set_new(cfg, "attn_logit_softcapping", json_real(50.0));
    json_object_set_new(cfg, "final_logit_softcapping", json_real(30.0));
    json_object_set_new(cfg, "sliding_window", json_integer(o->sliding_window ? o->sliding_window : 4096));
    json_object_set_new(cfg, "attention_bias", json_false());
    return cfg;
}

const pl_family_code pl_gemma2_code = {
    .read = gemma2_read,
    .unknown = ignored_buffer,
    .finish = gemma2_finish,
    .synth_dims = gemma2_synth_dims,
    .synth_config = gemma2_synth_config,
    .synth_head_options = 1,
};
