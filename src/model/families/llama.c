/* Llama, Mistral and Qwen2 (model_type "llama", "mistral", "qwen2": three registry rows, told apart
 * by their variant): config.json keys, the tensor-name table of HF's LlamaForCausalLM /
 * MistralForCausalLM / Qwen2ForCausalLM, and what plateau synth writes for them; the math is the
 * decoder of decoder.h (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU).
 *
 * Every key that would change the math and is not implemented is refused by name; every tensor's
 * name, dtype and shape is checked against the config. */
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

/* HF's llama3 rope scaling (transformers' _compute_llama3_parameters): long wavelengths are
 * divided by FACTOR, short ones kept, and the band between interpolated smoothly. */
static int rope_llama3(const pl_hf_config *c, const json_t *rs, pl_decoder_config *cfg)
{
    const char *keys[] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    double val[4];
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(rs, keys[i]);
        val[i] = json_number_value(v);
        if (!json_is_number(v) || !isfinite(val[i]) || !(val[i] > 0))
            return pl_fail("%s: key \"rope_scaling\": \"%s\" is missing or not a positive number", c->path, keys[i]);
    }
    double factor = val[0], low = val[1], high = val[2], old_ctx = val[3];
    if (!(high > low))
        return pl_fail("%s: key \"rope_scaling\": high_freq_factor must exceed low_freq_factor", c->path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rs, key, v) {
        if (strcmp(key, "rope_type") && strcmp(key, "type") && strcmp(key, "factor") && strcmp(key, "low_freq_factor") &&
            strcmp(key, "high_freq_factor") && strcmp(key, "original_max_position_embeddings"))
            return pl_fail("%s: key \"rope_scaling\": \"%.60s\" is not a llama3 rope_scaling key (not supported)",
                           c->path, key);
    }
    double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    for (int k = 0; k < cfg->rot_dim / 2; k++) {
        double f = cfg->inv_freq[k], wavelen = 2.0 * M_PI / f;
        if (wavelen > low_wavelen) {
            f /= factor;
        } else if (wavelen >= high_wavelen) {
            double smooth = (old_ctx / wavelen - low) / (high - low);
            f = (1.0 - smooth) * f / factor + smooth * f;
        }
        cfg->inv_freq[k] = (float)f;
    }
    return PL_OK;
}

static int ignored_buffer(const pl_model *m, const char *file, const char *name)
{
    (void)m, (void)file;
    /* older exports carry each layer's rotary inv_freq table: plateau computes its own */
    const char *suffix = ".self_attn.rotary_emb.inv_freq";
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && !strcmp(name + n - s, suffix) && !strncmp(name, "model.layers.", 13);
}

/* The config keys that size the model and choose its options. */
typedef struct {
    int L, C, H, KVH, hd, I, V, n_pos, n_ctx, window, tied, attn_bias, qkv_bias;
    double eps, theta;
} llama_keys;

static int read_sizes(const pl_hf_config *c, const pl_family *f, llama_keys *k)
{
    int mlp_bias;
    const char *act;
    if (pl_hf_int(c, "num_hidden_layers", 1, 0, 1, MAX_LAYER, &k->L) ||
        pl_hf_int(c, "hidden_size", 1, 0, 1, MAX_WIDTH, &k->C) ||
        pl_hf_int(c, "intermediate_size", 1, 0, 1, 16 * MAX_WIDTH, &k->I) ||
        pl_hf_int(c, "num_attention_heads", 1, 0, 1, MAX_WIDTH, &k->H) ||
        pl_hf_int(c, "num_key_value_heads", 0, k->H, 1, MAX_WIDTH, &k->KVH) ||
        pl_hf_int(c, "vocab_size", 1, 0, 1, MAX_VOCAB, &k->V) ||
        pl_hf_int(c, "max_position_embeddings", 1, 0, 1, MAX_CTX, &k->n_pos) ||
        pl_hf_num(c, "rms_norm_eps", 0, 1e-6, 0, 1, &k->eps) ||
        pl_hf_num(c, "rope_theta", 0, 10000.0, 0, 1e12, &k->theta) || pl_hf_bool(c, "tie_word_embeddings", 0, &k->tied) ||
        pl_hf_bool(c, "mlp_bias", 0, &mlp_bias) || pl_hf_str(c, "hidden_act", "silu", &act))
        return PL_ERR;
    if (k->H % k->KVH)
        return pl_fail("%s: key \"num_attention_heads\" = %d is not divisible by \"num_key_value_heads\" = %d", c->path,
                       k->H, k->KVH);
    if (json_object_get(c->root, "head_dim") && !json_is_null(json_object_get(c->root, "head_dim"))) {
        if (pl_hf_int(c, "head_dim", 1, 0, 2, MAX_WIDTH, &k->hd))
            return PL_ERR;
    } else {
        if (k->C % k->H)
            return pl_fail("%s: key \"hidden_size\" = %d is not divisible by \"num_attention_heads\" = %d", c->path, k->C,
                           k->H);
        k->hd = k->C / k->H;
    }
    if (k->hd % 2)
        return pl_fail("%s: head size %d is odd: rotary embedding rotates pairs", c->path, k->hd);
    if ((long)k->H * k->hd > MAX_WIDTH * 16L)
        return pl_fail("%s: num_attention_heads x head_dim = %ld exceeds the supported maximum %ld", c->path,
                       (long)k->H * k->hd, MAX_WIDTH * 16L);
    if (strcmp(act, "silu"))
        return pl_fail("%s: key \"hidden_act\" is \"%.40s\": plateau computes %s's SwiGLU with \"silu\"", c->path, act,
                       f->model_type);
    if (mlp_bias)
        return pl_fail("%s: key \"mlp_bias\" is true: not supported (plateau computes the MLP without biases)", c->path);
    k->attn_bias = 0;
    if (f->variant != PL_LLAMA_QWEN2 && pl_hf_bool(c, "attention_bias", 0, &k->attn_bias))
        return PL_ERR;
    if (f->variant == PL_LLAMA_MISTRAL && k->attn_bias)
        return pl_fail("%s: key \"attention_bias\" is true: Mistral has no attention biases", c->path);
    k->qkv_bias = f->variant == PL_LLAMA_QWEN2 || k->attn_bias;
    return PL_OK;
}

/* Keys of other architectures sharing these model_types, or of quantised exports; and the sliding
 * window. */
static int read_refusals(const pl_hf_config *c, const pl_family *f, llama_keys *k)
{
    static const char *refused[][2] = {
        {"quantization_config", "plateau reads F32/F16/BF16 weights"},
        {"rope_parameters", "give rope_theta and rope_scaling, as transformers 4 writes them"},
        {"attn_logit_softcapping", "plateau computes plain softmax attention"},
        {"final_logit_softcapping", "plateau computes plain logits"},
        {"use_qk_norm", "plateau computes attention without query/key norms"},
        {"qk_layernorm", "plateau computes attention without query/key norms"},
        {"embedding_multiplier", "plateau computes unscaled embeddings"},
        {"logits_scaling", "plateau computes unscaled logits"},
        {"residual_multiplier", "plateau computes unscaled residuals"},
        {"attention_multiplier", "plateau scales attention by 1/sqrt(head_dim)"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (pl_hf_refuse_if_set(c, refused[i][0], refused[i][1]))
            return PL_ERR;
    const json_t *prf = json_object_get(c->root, "partial_rotary_factor");
    if (prf && !json_is_null(prf) && !(json_is_number(prf) && json_number_value(prf) == 1.0))
        return pl_fail("%s: key \"partial_rotary_factor\" is not 1: not supported for %s (every head dim rotates)",
                       c->path, f->model_type);
    /* Sliding-window attention: plateau computes full causal attention, which is the same thing as
     * long as no query is further than the window from any key. So the model takes at most
     * sliding_window positions (a longer prompt is refused by the forward, naming the limit). */
    int use_window = 1;
    k->n_ctx = k->n_pos, k->window = 0;
    if (f->variant == PL_LLAMA_QWEN2 && pl_hf_bool(c, "use_sliding_window", 0, &use_window))
        return PL_ERR;
    if (f->variant != PL_LLAMA_LLAMA && use_window) {
        if (pl_hf_int(c, "sliding_window", 0, 0, 1, MAX_CTX, &k->window))
            return PL_ERR;
        if (k->window && k->window < k->n_ctx)
            k->n_ctx = k->window;
    }
    return PL_OK;
}

/* rope_scaling: none, default or llama3 (applied to cfg->inv_freq); *SCALING names it. */
static int read_rope_scaling(const pl_hf_config *c, pl_decoder_config *cfg, const char **scaling)
{
    const json_t *rs = json_object_get(c->root, "rope_scaling");
    *scaling = "none";
    if (!rs || json_is_null(rs))
        return PL_OK;
    const json_t *t = json_object_get(rs, "rope_type");
    if (!t)
        t = json_object_get(rs, "type");
    if (!json_is_object(rs) || !json_is_string(t))
        return pl_fail("%s: key \"rope_scaling\" has no \"rope_type\"", c->path);
    *scaling = json_string_value(t);
    if (!strcmp(*scaling, "llama3"))
        return rope_llama3(c, rs, cfg);
    if (strcmp(*scaling, "default"))
        return pl_fail("%s: key \"rope_scaling\": rope_type \"%.40s\" is not supported (none, default or llama3)",
                       c->path, *scaling);
    return PL_OK;
}

/* The tensor-name table (HF LlamaForCausalLM names). */
static int tensor_table(pl_decoder *d, const llama_keys *k, pl_hf_wants *w)
{
    int C = k->C, I = k->I, V = k->V, qd = k->H * k->hd, kvd = k->KVH * k->hd, rc = PL_OK;
    char why_attn[160], why_mlp[160], why_vocab[120], why_c[64];
    snprintf(why_attn, sizeof why_attn, "hidden_size=%d, num_attention_heads=%d, num_key_value_heads=%d, head_dim=%d",
             C, k->H, k->KVH, k->hd);
    snprintf(why_mlp, sizeof why_mlp, "hidden_size=%d, intermediate_size=%d", C, I);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, hidden_size=%d", V, C);
    snprintf(why_c, sizeof why_c, "hidden_size=%d", C);
    for (int l = 0; l < k->L && rc == PL_OK; l++) {
        pl_decoder_block *b = &d->blocks[l];
        rc = pl_hf_want_add(w, &b->norm1_w, 0, 1, C, 0, why_c, "model.layers.%d.input_layernorm.weight", l) ||
             pl_hf_want_add(w, &b->q.w, 0, 2, qd, C, why_attn, "model.layers.%d.self_attn.q_proj.weight", l) ||
             pl_hf_want_add(w, &b->k.w, 0, 2, kvd, C, why_attn, "model.layers.%d.self_attn.k_proj.weight", l) ||
             pl_hf_want_add(w, &b->v.w, 0, 2, kvd, C, why_attn, "model.layers.%d.self_attn.v_proj.weight", l) ||
             pl_hf_want_group(w, 3) ||
             pl_hf_want_add(w, &b->o.w, 0, 2, C, qd, why_attn, "model.layers.%d.self_attn.o_proj.weight", l) ||
             pl_hf_want_add(w, &b->norm2_w, 0, 1, C, 0, why_c, "model.layers.%d.post_attention_layernorm.weight", l) ||
             pl_hf_want_add(w, &b->gate.w, 0, 2, I, C, why_mlp, "model.layers.%d.mlp.gate_proj.weight", l) ||
             pl_hf_want_add(w, &b->up.w, 0, 2, I, C, why_mlp, "model.layers.%d.mlp.up_proj.weight", l) ||
             pl_hf_want_group(w, 2) ||
             pl_hf_want_add(w, &b->down.w, 0, 2, C, I, why_mlp, "model.layers.%d.mlp.down_proj.weight", l);
        if (rc == PL_OK && k->qkv_bias)
            rc = pl_hf_want_add(w, &b->q.b, 0, 1, qd, 0, why_attn, "model.layers.%d.self_attn.q_proj.bias", l) ||
                 pl_hf_want_add(w, &b->k.b, 0, 1, kvd, 0, why_attn, "model.layers.%d.self_attn.k_proj.bias", l) ||
                 pl_hf_want_add(w, &b->v.b, 0, 1, kvd, 0, why_attn, "model.layers.%d.self_attn.v_proj.bias", l) ||
                 pl_hf_want_group(w, 3);
        if (rc == PL_OK && k->attn_bias)
            rc = pl_hf_want_add(w, &b->o.b, 0, 1, C, 0, why_c, "model.layers.%d.self_attn.o_proj.bias", l);
    }
    if (rc == PL_OK)
        rc = pl_hf_want_add(w, &d->embed, 0, 2, V, C, why_vocab, "model.embed_tokens.weight") ||
             pl_hf_want_add(w, &d->normf_w, 0, 1, C, 0, why_c, "model.norm.weight") ||
             pl_hf_want_add(w, &d->unembed, k->tied ? PL_HF_TIED : PL_HF_REQUIRED, 2, V, C,
                            k->tied ? "tie_word_embeddings=true" : why_vocab, "lm_head.weight");
    return rc ? PL_ERR : PL_OK;
}

static int llama_read(pl_model *m, const pl_hf_config *c, const pl_family *f, pl_hf_wants *w)
{
    llama_keys k;
    if (read_sizes(c, f, &k) || read_refusals(c, f, &k))
        return PL_ERR;
    pl_decoder *d = pl_decoder_new(m, k.L);
    if (!d)
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    cfg->d_model = k.C, cfg->n_head = k.H, cfg->n_kv_head = k.KVH, cfg->head_dim = k.hd, cfg->d_mlp = k.I;
    cfg->n_vocab = k.V, cfg->n_ctx = k.n_ctx, cfg->norm = PL_NORM_RMSNORM, cfg->norm_eps = (float)k.eps;
    cfg->mlp = PL_MLP_SWIGLU, cfg->qkv = PL_QKV_SEPARATE, cfg->parallel_residual = 0, cfg->rot_dim = k.hd;
    cfg->rope_interleaved = 0, cfg->tied = k.tied;
    const char *scaling;
    if (pl_decoder_rope_default(cfg, k.theta) || read_rope_scaling(c, cfg, &scaling))
        return PL_ERR;
    pl_model_describe_add(m, "rope_theta", "%g", k.theta);
    pl_model_describe_add(m, "rope_scaling", "%s", scaling);
    if (k.n_ctx < k.n_pos)
        pl_model_describe_add(m, "sliding_window", "%d (plateau takes at most this many positions: full attention "
                              "is then exact)", k.window);
    pl_model_describe_add(m, "biases", "%s", k.qkv_bias ? (k.attn_bias ? "q, k, v, o" : "q, k, v") : "none");
    return tensor_table(d, &k, w);
}

static int llama_finish(pl_model *m, const pl_hf_config *c, const pl_hf_wants *w)
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

static int llama_synth_dims(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d)
{
    (void)f;
    d->d_mlp = o->d_mlp ? o->d_mlp : (8 * o->n_embd / 3 + 7) / 8 * 8;
    return PL_OK;
}

static json_t *llama_synth_config(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d)
{
    double theta = o->rope_theta > 0 ? o->rope_theta : 10000.0;
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:i}", "model_type", f->model_type,
                            "hidden_size", o->n_embd, "intermediate_size", d->d_mlp, "num_hidden_layers", o->n_layer,
                            "num_attention_heads", o->n_head, "vocab_size", d->n_vocab, "max_position_embeddings",
                            o->n_ctx, "tie_word_embeddings", o->tied, "bos_token_id", d->n_vocab - 1, "eos_token_id",
                            d->n_vocab - 1);
    if (!cfg)
        return NULL;
    json_object_set_new(cfg, "architectures", json_pack("[s]", f->architecture));
    json_object_set_new(cfg, "hidden_act", json_string("silu"));
    json_object_set_new(cfg, "num_key_value_heads", json_integer(d->n_kv_head));
    if (o->head_dim)
        json_object_set_new(cfg, "head_dim", json_integer(d->head_dim));
    json_object_set_new(cfg, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(cfg, "rope_theta", json_real(theta));
    if (o->llama3[0] > 0)
        json_object_set_new(cfg, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", o->llama3[0],
                                      "low_freq_factor", o->llama3[1], "high_freq_factor", o->llama3[2],
                                      "original_max_position_embeddings", (int)o->llama3[3]));
    else
        json_object_set_new(cfg, "rope_scaling", json_null());
    if (f->variant == PL_LLAMA_LLAMA)
        json_object_set_new(cfg, "attention_bias", json_boolean(o->attention_bias));
    if (f->variant == PL_LLAMA_MISTRAL)
        json_object_set_new(cfg, "sliding_window", o->sliding_window ? json_integer(o->sliding_window) : json_null());
    if (f->variant == PL_LLAMA_QWEN2) {
        json_object_set_new(cfg, "use_sliding_window", json_boolean(o->sliding_window > 0));
        json_object_set_new(cfg, "sliding_window", json_integer(o->sliding_window ? o->sliding_window : o->n_ctx));
    }
    return cfg;
}

const pl_family_code pl_llama_code = {
    .read = llama_read,
    .unknown = ignored_buffer,
    .finish = llama_finish,
    .synth_dims = llama_synth_dims,
    .synth_config = llama_synth_config,
    .synth_head_options = 1,
};
