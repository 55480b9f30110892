/* Llama, Mistral and Qwen2 (model_type "llama", "mistral", "qwen2"): config.json keys and the
 * tensor table of HF's LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM; the math is the
 * rotary decoder of decoder.h (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU).
 *
 * Every key that would change the math and is not implemented is refused by name; every tensor's
 * name, dtype and shape is checked against the config. */
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

static int ignored_buffer(const char *name)
{
    /* older exports carry each layer's rotary inv_freq table: plateau computes its own */
    const char *suffix = ".self_attn.rotary_emb.inv_freq";
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && !strcmp(name + n - s, suffix) && !strncmp(name, "model.layers.", 13);
}

int pl_llama_open(pl_model *m, const char *dir, const pl_hf_config *c, const char *type)
{
    int qwen2 = !strcmp(type, "qwen2"), mistral = !strcmp(type, "mistral");
    int L, C, H, KVH, hd, I, V, n_pos, tied, attn_bias = 0, synthetic, mlp_bias;
    double eps, theta;
    const char *act;
    if (pl_hf_int(c, "num_hidden_layers", 1, 0, 1, MAX_LAYER, &L) ||
        pl_hf_int(c, "hidden_size", 1, 0, 1, MAX_WIDTH, &C) ||
        pl_hf_int(c, "intermediate_size", 1, 0, 1, 16 * MAX_WIDTH, &I) ||
        pl_hf_int(c, "num_attention_heads", 1, 0, 1, MAX_WIDTH, &H) ||
        pl_hf_int(c, "num_key_value_heads", 0, H, 1, MAX_WIDTH, &KVH) ||
        pl_hf_int(c, "vocab_size", 1, 0, 1, MAX_VOCAB, &V) ||
        pl_hf_int(c, "max_position_embeddings", 1, 0, 1, MAX_CTX, &n_pos) ||
        pl_hf_num(c, "rms_norm_eps", 0, 1e-6, 0, 1, &eps) || pl_hf_num(c, "rope_theta", 0, 10000.0, 0, 1e12, &theta) ||
        pl_hf_bool(c, "tie_word_embeddings", 0, &tied) || pl_hf_bool(c, "plateau_synthetic", 0, &synthetic) ||
        pl_hf_bool(c, "mlp_bias", 0, &mlp_bias) || pl_hf_str(c, "hidden_act", "silu", &act))
        return PL_ERR;
    if (H % KVH)
        return pl_fail("%s: key \"num_attention_heads\" = %d is not divisible by \"num_key_value_heads\" = %d", c->path,
                       H, KVH);
    if (json_object_get(c->root, "head_dim") && !json_is_null(json_object_get(c->root, "head_dim"))) {
        if (pl_hf_int(c, "head_dim", 1, 0, 2, MAX_WIDTH, &hd))
            return PL_ERR;
    } else {
        if (C % H)
            return pl_fail("%s: key \"hidden_size\" = %d is not divisible by \"num_attention_heads\" = %d", c->path, C,
                           H);
        hd = C / H;
    }
    if (hd % 2)
        return pl_fail("%s: head size %d is odd: rotary embedding rotates pairs", c->path, hd);
    if ((long)H * hd > MAX_WIDTH * 16L)
        return pl_fail("%s: num_attention_heads x head_dim = %ld exceeds the supported maximum %ld", c->path,
                       (long)H * hd, MAX_WIDTH * 16L);
    if (strcmp(act, "silu"))
        return pl_fail("%s: key \"hidden_act\" is \"%.40s\": plateau computes %s's SwiGLU with \"silu\"", c->path, act,
                       type);
    if (mlp_bias)
        return pl_fail("%s: key \"mlp_bias\" is true: not supported (plateau computes the MLP without biases)", c->path);
    if (!qwen2 && pl_hf_bool(c, "attention_bias", 0, &attn_bias))
        return PL_ERR;
    if (mistral && attn_bias)
        return pl_fail("%s: key \"attention_bias\" is true: Mistral has no attention biases", c->path);
    /* Keys of other architectures sharing these model_types, or of quantised exports. */
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
                       c->path, type);

    /* Sliding-window attention: plateau computes full causal attention, which is the same thing as
     * long as no query is further than the window from any key. So the model takes at most
     * sliding_window positions (a longer prompt is refused by the forward, naming the limit). */
    int n_ctx = n_pos, window = 0, use_window = 1;
    if (qwen2 && pl_hf_bool(c, "use_sliding_window", 0, &use_window))
        return PL_ERR;
    if ((mistral || qwen2) && use_window) {
        if (pl_hf_int(c, "sliding_window", 0, 0, 1, MAX_CTX, &window))
            return PL_ERR;
        if (window && window < n_ctx)
            n_ctx = window;
    }

    pl_decoder *d = pl_decoder_new(m, L);
    if (!d)
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    cfg->d_model = C, cfg->n_head = H, cfg->n_kv_head = KVH, cfg->head_dim = hd, cfg->d_mlp = I;
    cfg->n_vocab = V, cfg->n_ctx = n_ctx, cfg->norm = PL_NORM_RMSNORM, cfg->norm_eps = (float)eps;
    cfg->mlp = PL_MLP_SWIGLU, cfg->parallel_residual = 0, cfg->rot_dim = hd, cfg->rope_interleaved = 0;
    cfg->tied = tied;
    if (pl_decoder_rope_default(cfg, theta))
        return PL_ERR;

    const json_t *rs = json_object_get(c->root, "rope_scaling");
    const char *scaling = "none";
    if (rs && !json_is_null(rs)) {
        const json_t *t = json_object_get(rs, "rope_type");
        if (!t)
            t = json_object_get(rs, "type");
        if (!json_is_object(rs) || !json_is_string(t))
            return pl_fail("%s: key \"rope_scaling\" has no \"rope_type\"", c->path);
        scaling = json_string_value(t);
        if (!strcmp(scaling, "llama3")) {
            if (rope_llama3(c, rs, cfg))
                return PL_ERR;
        } else if (strcmp(scaling, "default")) {
            return pl_fail("%s: key \"rope_scaling\": rope_type \"%.40s\" is not supported (none, default or llama3)",
                           c->path, scaling);
        }
    }

    /* The tensor table. */
    pl_hf_wants w = {0};
    char why_attn[160], why_mlp[160], why_vocab[120], why_c[64];
    snprintf(why_attn, sizeof why_attn, "hidden_size=%d, num_attention_heads=%d, num_key_value_heads=%d, head_dim=%d",
             C, H, KVH, hd);
    snprintf(why_mlp, sizeof why_mlp, "hidden_size=%d, intermediate_size=%d", C, I);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, hidden_size=%d", V, C);
    snprintf(why_c, sizeof why_c, "hidden_size=%d", C);
    int qd = H * hd, kvd = KVH * hd, qkv_bias = qwen2 || attn_bias, rc = PL_OK;
    const float *lm_head = NULL;
    for (int l = 0; l < L && rc == PL_OK; l++) {
        pl_decoder_block *b = &d->blocks[l];
        rc = pl_hf_want_add(&w, &b->norm1_w, 0, 1, C, 0, why_c, "model.layers.%d.input_layernorm.weight", l) ||
             pl_hf_want_add(&w, &b->q_w, 0, 2, qd, C, why_attn, "model.layers.%d.self_attn.q_proj.weight", l) ||
             pl_hf_want_add(&w, &b->k_w, 0, 2, kvd, C, why_attn, "model.layers.%d.self_attn.k_proj.weight", l) ||
             pl_hf_want_add(&w, &b->v_w, 0, 2, kvd, C, why_attn, "model.layers.%d.self_attn.v_proj.weight", l) ||
             pl_hf_want_add(&w, &b->o_w, 0, 2, C, qd, why_attn, "model.layers.%d.self_attn.o_proj.weight", l) ||
             pl_hf_want_add(&w, &b->norm2_w, 0, 1, C, 0, why_c, "model.layers.%d.post_attention_layernorm.weight", l) ||
             pl_hf_want_add(&w, &b->gate_w, 0, 2, I, C, why_mlp, "model.layers.%d.mlp.gate_proj.weight", l) ||
             pl_hf_want_add(&w, &b->up_w, 0, 2, I, C, why_mlp, "model.layers.%d.mlp.up_proj.weight", l) ||
             pl_hf_want_add(&w, &b->down_w, 0, 2, C, I, why_mlp, "model.layers.%d.mlp.down_proj.weight", l);
        if (rc == PL_OK && qkv_bias)
            rc = pl_hf_want_add(&w, &b->q_b, 0, 1, qd, 0, why_attn, "model.layers.%d.self_attn.q_proj.bias", l) ||
                 pl_hf_want_add(&w, &b->k_b, 0, 1, kvd, 0, why_attn, "model.layers.%d.self_attn.k_proj.bias", l) ||
                 pl_hf_want_add(&w, &b->v_b, 0, 1, kvd, 0, why_attn, "model.layers.%d.self_attn.v_proj.bias", l);
        if (rc == PL_OK && attn_bias)
            rc = pl_hf_want_add(&w, &b->o_b, 0, 1, C, 0, why_c, "model.layers.%d.self_attn.o_proj.bias", l);
    }
    if (rc == PL_OK)
        rc = pl_hf_want_add(&w, &d->embed, 0, 2, V, C, why_vocab, "model.embed_tokens.weight") ||
             pl_hf_want_add(&w, &d->normf_w, 0, 1, C, 0, why_c, "model.norm.weight") ||
             pl_hf_want_add(&w, &lm_head, tied, 2, V, C, tied ? "tie_word_embeddings=true" : why_vocab,
                            "lm_head.weight");
    char family[64];
    snprintf(family, sizeof family, "%s", type);
    if (rc == PL_OK)
        rc = pl_hf_load_tensors(m, dir, &w, family, ignored_buffer);
    pl_hf_wants_free(&w);
    if (rc != PL_OK)
        return PL_ERR;
    if (tied && lm_head && memcmp(lm_head, d->embed, sizeof(float) * (size_t)V * C))
        return pl_fail("%s: tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight",
                       c->path);
    d->unembed = tied ? d->embed : lm_head;
    pl_decoder_set_info(m, type, "hf", synthetic);
    pl_model_describe_add(m, "rope_theta", "%g", theta);
    pl_model_describe_add(m, "rope_scaling", "%s", scaling);
    if (n_ctx < n_pos)
        pl_model_describe_add(m, "sliding_window", "%d (plateau takes at most this many positions: full attention "
                              "is then exact)", window);
    pl_model_describe_add(m, "biases", "%s", qkv_bias ? (attn_bias ? "q, k, v, o" : "q, k, v") : "none");
    return PL_OK;
}
