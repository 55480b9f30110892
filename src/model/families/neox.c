/* GPT-NeoX (model_type "gpt_neox", Pythia): config.json keys and the tensor table of HF's
 * GPTNeoXForCausalLM; the math is the rotary decoder of decoder.h with LayerNorm (weight and bias),
 * partial rotate-half RoPE (rotary_pct of each head), exact-erf GELU MLP with biases, the fused
 * query_key_value projection laid out per head, parallel or sequential residual and an untied
 * embed_out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "families.h"
#include "plateau/error.h"

#define MAX_LAYER 4096
#define MAX_WIDTH 65536
#define MAX_CTX (1 << 24)
#define MAX_VOCAB (1 << 22)

static int ignored_buffer(const char *name)
{
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

int pl_neox_open(pl_model *m, const char *dir, const pl_hf_config *c)
{
    int L, C, H, I, V, n_pos, tied, parallel, bias, synthetic;
    double eps, pct, base;
    const char *act;
    if (pl_hf_int(c, "num_hidden_layers", 1, 0, 1, MAX_LAYER, &L) ||
        pl_hf_int(c, "hidden_size", 1, 0, 1, MAX_WIDTH, &C) ||
        pl_hf_int(c, "intermediate_size", 1, 0, 1, 16 * MAX_WIDTH, &I) ||
        pl_hf_int(c, "num_attention_heads", 1, 0, 1, MAX_WIDTH, &H) ||
        pl_hf_int(c, "vocab_size", 1, 0, 1, MAX_VOCAB, &V) ||
        pl_hf_int(c, "max_position_embeddings", 1, 0, 1, MAX_CTX, &n_pos) ||
        pl_hf_num(c, "layer_norm_eps", 0, 1e-5, 0, 1, &eps) || pl_hf_num(c, "rotary_pct", 0, 0.25, 0, 1.0000001, &pct) ||
        pl_hf_bool(c, "use_parallel_residual", 1, &parallel) || pl_hf_bool(c, "tie_word_embeddings", 0, &tied) ||
        pl_hf_bool(c, "attention_bias", 1, &bias) || pl_hf_bool(c, "plateau_synthetic", 0, &synthetic) ||
        pl_hf_str(c, "hidden_act", "gelu", &act))
        return PL_ERR;
    /* newer transformers write rope_theta, older rotary_emb_base */
    const char *base_key = json_object_get(c->root, "rope_theta") ? "rope_theta" : "rotary_emb_base";
    if (pl_hf_num(c, base_key, 0, 10000.0, 0, 1e12, &base))
        return PL_ERR;
    if (json_object_get(c->root, "rope_theta") && json_object_get(c->root, "rotary_emb_base")) {
        double other;
        if (pl_hf_num(c, "rotary_emb_base", 0, 10000.0, 0, 1e12, &other))
            return PL_ERR;
        if (other != base)
            return pl_fail("%s: keys \"rope_theta\" and \"rotary_emb_base\" disagree", c->path);
    }
    if (C % H)
        return pl_fail("%s: key \"hidden_size\" = %d is not divisible by \"num_attention_heads\" = %d", c->path, C, H);
    if (strcmp(act, "gelu"))
        return pl_fail("%s: key \"hidden_act\" is \"%.40s\": plateau computes GPT-NeoX's exact-erf \"gelu\"", c->path,
                       act);
    const json_t *rs = json_object_get(c->root, "rope_scaling");
    if (rs && !json_is_null(rs))
        return pl_fail("%s: key \"rope_scaling\" is set: not supported for gpt_neox", c->path);
    const json_t *prf = json_object_get(c->root, "partial_rotary_factor");
    if (prf && !json_is_null(prf) && !(json_is_number(prf) && json_number_value(prf) == pct))
        return pl_fail("%s: key \"partial_rotary_factor\" differs from \"rotary_pct\"", c->path);
    if (pl_hf_refuse_if_set(c, "quantization_config", "plateau reads F32/F16/BF16 weights") ||
        pl_hf_refuse_if_set(c, "rope_parameters", "give rotary_emb_base, as transformers 4 writes it"))
        return PL_ERR;
    int hd = C / H, rot = (int)(hd * pct); /* as HF: int(head_size * rotary_pct) */
    if (rot % 2)
        return pl_fail("%s: key \"rotary_pct\" = %g gives %d rotary dims of head size %d: not even", c->path, pct, rot,
                       hd);

    pl_decoder *d = pl_decoder_new(m, L);
    if (!d)
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    cfg->d_model = C, cfg->n_head = H, cfg->n_kv_head = H, cfg->head_dim = hd, cfg->d_mlp = I;
    cfg->n_vocab = V, cfg->n_ctx = n_pos, cfg->norm = PL_NORM_LAYERNORM, cfg->norm_eps = (float)eps;
    cfg->mlp = PL_MLP_GELU_ERF, cfg->parallel_residual = parallel, cfg->rot_dim = rot, cfg->rope_interleaved = 0;
    cfg->tied = tied;
    if (pl_decoder_rope_default(cfg, base))
        return PL_ERR;

    pl_hf_wants w = {0};
    char why_attn[120], why_mlp[120], why_vocab[120], why_c[64];
    snprintf(why_attn, sizeof why_attn, "hidden_size=%d, num_attention_heads=%d", C, H);
    snprintf(why_mlp, sizeof why_mlp, "hidden_size=%d, intermediate_size=%d", C, I);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, hidden_size=%d", V, C);
    snprintf(why_c, sizeof why_c, "hidden_size=%d", C);
    const char *p = "gpt_neox.layers";
    int rc = PL_OK;
    const float *embed_out = NULL;
    for (int l = 0; l < L && rc == PL_OK; l++) {
        pl_decoder_block *b = &d->blocks[l];
        rc = pl_hf_want_add(&w, &b->norm1_w, 0, 1, C, 0, why_c, "%s.%d.input_layernorm.weight", p, l) ||
             pl_hf_want_add(&w, &b->norm1_b, 0, 1, C, 0, why_c, "%s.%d.input_layernorm.bias", p, l) ||
             pl_hf_want_add(&w, &b->norm2_w, 0, 1, C, 0, why_c, "%s.%d.post_attention_layernorm.weight", p, l) ||
             pl_hf_want_add(&w, &b->norm2_b, 0, 1, C, 0, why_c, "%s.%d.post_attention_layernorm.bias", p, l) ||
             pl_hf_want_add(&w, &b->qkv_w, 0, 2, 3 * C, C, why_attn, "%s.%d.attention.query_key_value.weight", p, l) ||
             pl_hf_want_add(&w, &b->o_w, 0, 2, C, C, why_attn, "%s.%d.attention.dense.weight", p, l) ||
             pl_hf_want_add(&w, &b->up_w, 0, 2, I, C, why_mlp, "%s.%d.mlp.dense_h_to_4h.weight", p, l) ||
             pl_hf_want_add(&w, &b->up_b, 0, 1, I, 0, why_mlp, "%s.%d.mlp.dense_h_to_4h.bias", p, l) ||
             pl_hf_want_add(&w, &b->down_w, 0, 2, C, I, why_mlp, "%s.%d.mlp.dense_4h_to_h.weight", p, l) ||
             pl_hf_want_add(&w, &b->down_b, 0, 1, C, 0, why_c, "%s.%d.mlp.dense_4h_to_h.bias", p, l);
        if (rc == PL_OK && bias)
            rc = pl_hf_want_add(&w, &b->qkv_b, 0, 1, 3 * C, 0, why_attn, "%s.%d.attention.query_key_value.bias", p, l) ||
                 pl_hf_want_add(&w, &b->o_b, 0, 1, C, 0, why_c, "%s.%d.attention.dense.bias", p, l);
    }
    if (rc == PL_OK)
        rc = pl_hf_want_add(&w, &d->embed, 0, 2, V, C, why_vocab, "gpt_neox.embed_in.weight") ||
             pl_hf_want_add(&w, &d->normf_w, 0, 1, C, 0, why_c, "gpt_neox.final_layer_norm.weight") ||
             pl_hf_want_add(&w, &d->normf_b, 0, 1, C, 0, why_c, "gpt_neox.final_layer_norm.bias") ||
             pl_hf_want_add(&w, &embed_out, tied, 2, V, C, tied ? "tie_word_embeddings=true" : why_vocab,
                            "embed_out.weight");
    if (rc == PL_OK)
        rc = pl_hf_load_tensors(m, dir, &w, "gpt_neox", ignored_buffer);
    pl_hf_wants_free(&w);
    if (rc != PL_OK)
        return PL_ERR;
    if (tied && embed_out && memcmp(embed_out, d->embed, sizeof(float) * (size_t)V * C))
        return pl_fail("%s: tie_word_embeddings is true but embed_out.weight differs from gpt_neox.embed_in.weight",
                       c->path);
    d->unembed = tied ? d->embed : embed_out;
    pl_decoder_set_info(m, "gpt_neox", "hf", synthetic);
    pl_model_describe_add(m, "rope_theta", "%g", base);
    pl_model_describe_add(m, "rotary_pct", "%g", pct);
    pl_model_describe_add(m, "biases", "%s", bias ? "attention and MLP" : "MLP only (attention_bias=false)");
    return PL_OK;
}
