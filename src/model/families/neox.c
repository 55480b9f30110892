/* GPT-NeoX (model_type "gpt_neox", Pythia): config.json keys and the tensor table of HF's
 * GPTNeoXForCausalLM; the math is the decoder of decoder.h with LayerNorm (weight and bias),
 * partial rotate-half RoPE (rotary_pct of each head), exact-erf GELU MLP with biases, the fused
 * query_key_value projection laid out per head, parallel or sequential residual and an untied
 * embed_out; and what plateau synth writes for it. */
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

static int ignored_buffer(const pl_model *m, const char *file, const char *name)
{
    (void)m, (void)file;
    /* causal-mask and rotary buffers of older exports: plateau builds its own */
    static const char *suffixes[] = {".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq"};
    if (strncmp(name, "gpt_neox.layers.", 16))
        return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t s = strlen(suffixes[i]);
        if (n > s && !strcmp(name + n - s, suffixes[i]))
            return 1;
    }
    return 0;
}

typedef struct {
    int L, C, H, I, V, n_pos, tied, parallel, bias, rot;
    double eps, pct, base;
} neox_keys;

static int read_keys(const pl_hf_config *c, neox_keys *k)
{
    const char *act;
    if (pl_hf_int(c, "num_hidden_layers", 1, 0, 1, MAX_LAYER, &k->L) ||
        pl_hf_int(c, "hidden_size", 1, 0, 1, MAX_WIDTH, &k->C) ||
        pl_hf_int(c, "intermediate_size", 1, 0, 1, 16 * MAX_WIDTH, &k->I) ||
        pl_hf_int(c, "num_attention_heads", 1, 0, 1, MAX_WIDTH, &k->H) ||
        pl_hf_int(c, "vocab_size", 1, 0, 1, MAX_VOCAB, &k->V) ||
        pl_hf_int(c, "max_position_embeddings", 1, 0, 1, MAX_CTX, &k->n_pos) ||
        pl_hf_num(c, "layer_norm_eps", 0, 1e-5, 0, 1, &k->eps) ||
        pl_hf_num(c, "rotary_pct", 0, 0.25, 0, 1.0000001, &k->pct) ||
        pl_hf_bool(c, "use_parallel_residual", 1, &k->parallel) || pl_hf_bool(c, "tie_word_embeddings", 0, &k->tied) ||
        pl_hf_bool(c, "attention_bias", 1, &k->bias) || pl_hf_str(c, "hidden_act", "gelu", &act))
        return PL_ERR;
    /* newer transformers write rope_theta, older rotary_emb_base */
    const char *base_key = json_object_get(c->root, "rope_theta") ? "rope_theta" : "rotary_emb_base";
    if (pl_hf_num(c, base_key, 0, 10000.0, 0, 1e12, &k->base))
        return PL_ERR;
    if (json_object_get(c->root, "rope_theta") && json_object_get(c->root, "rotary_emb_base")) {
        double other;
        if (pl_hf_num(c, "rotary_emb_base", 0, 10000.0, 0, 1e12, &other))
            return PL_ERR;
        if (other != k->base)
            return pl_fail("%s: keys \"rope_theta\" and \"rotary_emb_base\" disagree", c->path);
    }
    if (k->C % k->H)
        return pl_fail("%s: key \"hidden_size\" = %d is not divisible by \"num_attention_heads\" = %d", c->path, k->C,
                       k->H);
    if (strcmp(act, "gelu"))
        return pl_fail("%s: key \"hidden_act\" is \"%.40s\": plateau computes GPT-NeoX's exact-erf \"gelu\"", c->path,
                       act);
    const json_t *rs = json_object_get(c->root, "rope_scaling");
    if (rs && !json_is_null(rs))
        return pl_fail("%s: key \"rope_scaling\" is set: not supported for gpt_neox", c->path);
    const json_t *prf = json_object_get(c->root, "partial_rotary_factor");
    if (prf && !json_is_null(prf) && !(json_is_number(prf) && json_number_value(prf) == k->pct))
        return pl_fail("%s: key \"partial_rotary_factor\" differs from \"rotary_pct\"", c->path);
    if (pl_hf_refuse_if_set(c, "quantization_config", "plateau reads F32/F16/BF16 weights") ||
        pl_hf_refuse_if_set(c, "rope_parameters", "give rotary_emb_base, as transformers 4 writes it"))
        return PL_ERR;
    int hd = k->C / k->H;
    k->rot = (int)(hd * k->pct); /* as HF: int(head_size * rotary_pct) */
    if (k->rot % 2)
        return pl_fail("%s: key \"rotary_pct\" = %g gives %d rotary dims of head size %d: not even", c->path, k->pct,
                       k->rot, hd);
    return PL_OK;
}

/* The tensor-name table (HF GPTNeoXForCausalLM names). */
static int tensor_table(pl_decoder *d, const neox_keys *k, pl_hf_wants *w)
{
    int C = k->C, I = k->I, V = k->V, rc = PL_OK;
    char why_attn[120], why_mlp[120], why_vocab[120], why_c[64];
    snprintf(why_attn, sizeof why_attn, "hidden_size=%d, num_attention_heads=%d", C, k->H);
    snprintf(why_mlp, sizeof why_mlp, "hidden_size=%d, intermediate_size=%d", C, I);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, hidden_size=%d", V, C);
    snprintf(why_c, sizeof why_c, "hidden_size=%d", C);
    const char *p = "gpt_neox.layers";
    for (int l = 0; l < k->L && rc == PL_OK; l++) {
        pl_decoder_block *b = &d->blocks[l];
        rc = pl_hf_want_add(w, &b->norm1_w, 0, 1, C, 0, why_c, "%s.%d.input_layernorm.weight", p, l) ||
             pl_hf_want_add(w, &b->norm1_b, 0, 1, C, 0, why_c, "%s.%d.input_layernorm.bias", p, l) ||
             pl_hf_want_add(w, &b->norm2_w, 0, 1, C, 0, why_c, "%s.%d.post_attention_layernorm.weight", p, l) ||
             pl_hf_want_add(w, &b->norm2_b, 0, 1, C, 0, why_c, "%s.%d.post_attention_layernorm.bias", p, l) ||
             pl_hf_want_add(w, &b->qkv.w, 0, 2, 3 * C, C, why_attn, "%s.%d.attention.query_key_value.weight", p, l) ||
             pl_hf_want_add(w, &b->o.w, 0, 2, C, C, why_attn, "%s.%d.attention.dense.weight", p, l) ||
             pl_hf_want_add(w, &b->up.w, 0, 2, I, C, why_mlp, "%s.%d.mlp.dense_h_to_4h.weight", p, l) ||
             pl_hf_want_add(w, &b->up.b, 0, 1, I, 0, why_mlp, "%s.%d.mlp.dense_h_to_4h.bias", p, l) ||
             pl_hf_want_add(w, &b->down.w, 0, 2, C, I, why_mlp, "%s.%d.mlp.dense_4h_to_h.weight", p, l) ||
             pl_hf_want_add(w, &b->down.b, 0, 1, C, 0, why_c, "%s.%d.mlp.dense_4h_to_h.bias", p, l);
        if (rc == PL_OK && k->bias)
            rc = pl_hf_want_add(w, &b->qkv.b, 0, 1, 3 * C, 0, why_attn, "%s.%d.attention.query_key_value.bias", p, l) ||
                 pl_hf_want_add(w, &b->o.b, 0, 1, C, 0, why_c, "%s.%d.attention.dense.bias", p, l);
    }
    if (rc == PL_OK)
        rc = pl_hf_want_add(w, &d->embed, 0, 2, V, C, why_vocab, "gpt_neox.embed_in.weight") ||
             pl_hf_want_add(w, &d->normf_w, 0, 1, C, 0, why_c, "gpt_neox.final_layer_norm.weight") ||
             pl_hf_want_add(w, &d->normf_b, 0, 1, C, 0, why_c, "gpt_neox.final_layer_norm.bias") ||
             pl_hf_want_add(w, &d->unembed, k->tied ? PL_HF_TIED : PL_HF_REQUIRED, 2, V, C,
                            k->tied ? "tie_word_embeddings=true" : why_vocab, "embed_out.weight");
    return rc ? PL_ERR : PL_OK;
}

static int neox_read(pl_model *m, const pl_hf_config *c, const pl_family *f, pl_hf_wants *w)
{
    (void)f;
    neox_keys k;
    if (read_keys(c, &k))
        return PL_ERR;
    pl_decoder *d = pl_decoder_new(m, k.L);
    if (!d)
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    cfg->d_model = k.C, cfg->n_head = k.H, cfg->n_kv_head = k.H, cfg->head_dim = k.C / k.H, cfg->d_mlp = k.I;
    cfg->n_vocab = k.V, cfg->n_ctx = k.n_pos, cfg->norm = PL_NORM_LAYERNORM, cfg->norm_eps = (float)k.eps;
    cfg->mlp = PL_MLP_GELU_ERF, cfg->qkv = PL_QKV_FUSED_HEADS, cfg->parallel_residual = k.parallel;
    cfg->rot_dim = k.rot, cfg->rope_interleaved = 0, cfg->tied = k.tied;
    if (pl_decoder_rope_default(cfg, k.base))
        return PL_ERR;
    pl_model_describe_add(m, "rope_theta", "%g", k.base);
    pl_model_describe_add(m, "rotary_pct", "%g", k.pct);
    pl_model_describe_add(m, "biases", "%s", k.bias ? "attention and MLP" : "MLP only (attention_bias=false)");
    return tensor_table(d, &k, w);
}

static int neox_finish(pl_model *m, const pl_hf_config *c, const pl_hf_wants *w)
{
    pl_decoder *d = m->weights;
    if (d->cfg.tied) {
        const pl_hf_want *out = pl_hf_want_of(w, &d->unembed), *in = pl_hf_want_of(w, &d->embed);
        if (out->found_in && !pl_hf_same_values(out, in))
            return pl_fail("%s: tie_word_embeddings is true but embed_out.weight differs from gpt_neox.embed_in.weight",
                           c->path);
        d->unembed = d->embed;
    }
    return PL_OK;
}

/* ------------------------------------------------------------ plateau synth */

static int neox_synth_dims(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d)
{
    (void)f;
    double pct = o->rotary_pct > 0 ? o->rotary_pct : 0.25;
    if ((int)(d->head_dim * pct) % 2)
        return pl_fail("synth: head size %d x rotary_pct %g gives an odd number of rotary dims", d->head_dim, pct);
    d->d_mlp = o->d_mlp ? o->d_mlp : 4 * o->n_embd;
    return PL_OK;
}

static json_t *neox_synth_config(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d)
{
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:i}", "model_type", f->model_type,
                            "hidden_size", o->n_embd, "intermediate_size", d->d_mlp, "num_hidden_layers", o->n_layer,
                            "num_attention_heads", o->n_head, "vocab_size", d->n_vocab, "max_position_embeddings",
                            o->n_ctx, "tie_word_embeddings", o->tied, "bos_token_id", d->n_vocab - 1, "eos_token_id",
                            d->n_vocab - 1);
    if (!cfg)
        return NULL;
    json_object_set_new(cfg, "architectures", json_pack("[s]", f->architecture));
    json_object_set_new(cfg, "hidden_act", json_string("gelu"));
    json_object_set_new(cfg, "layer_norm_eps", json_real(1e-5));
    json_object_set_new(cfg, "rotary_pct", json_real(o->rotary_pct > 0 ? o->rotary_pct : 0.25));
    json_object_set_new(cfg, "rotary_emb_base", json_real(o->rope_theta > 0 ? o->rope_theta : 10000.0));
    json_object_set_new(cfg, "use_parallel_residual", json_boolean(!o->sequential));
    json_object_set_new(cfg, "attention_bias", json_true());
    return cfg;
}

const pl_family_code pl_neox_code = {
    .read = neox_read,
    .unknown = ignored_buffer,
    .finish = neox_finish,
    .synth_dims = neox_synth_dims,
    .synth_config = neox_synth_config,
};
