/* GPT-2 (model_type "gpt2"): config.json keys, the tensor-name table of a Hugging Face GPT-2
 * model.safetensors, and what plateau synth writes for it. The math is the decoder (decoder.h):
 * learned position embeddings (wpe) added to the token embedding, LayerNorm with biases, one fused
 * c_attn laid out [q | k | v], tanh GELU ("gelu_new"), sequential residual, no RoPE, and the
 * unembedding tied to wte. HF's Conv1D keeps its weights [in, out]: they stay so (mmapped, no
 * transposed copy) and the decoder applies them as x W.
 *
 * Every tensor in the file must be a known GPT-2 tensor whose shape follows from config.json, and
 * every required tensor must be present: a stranger's file either loads exactly or fails with one
 * line naming the file, the tensor and the problem. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../registry.h"
#include "decoder.h"
#include "plateau/error.h"

/* Caps far above GPT-2 xl (48/25/1600/1024/50257) that keep every size computation inside int64. */
#define MAX_LAYER 4096
#define MAX_EMBD 65536
#define MAX_CTX (1 << 20)
#define MAX_VOCAB (1 << 22)

typedef struct {
    int n_layer, n_head, n_embd, n_ctx, n_vocab;
    float ln_eps;
} gpt2_config;

static int config_int(const json_t *root, const char *path, const char *key, long hi, int *out)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return pl_fail("%s: key \"%s\" is missing", path, key);
    if (!json_is_integer(v))
        return pl_fail("%s: key \"%s\" is not an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x <= 0)
        return pl_fail("%s: key \"%s\" must be positive (found %" JSON_INTEGER_FORMAT ")", path, key, x);
    if (x > hi)
        return pl_fail("%s: key \"%s\" = %" JSON_INTEGER_FORMAT " exceeds the supported maximum %ld", path,
                       key, x, hi);
    *out = (int)x;
    return PL_OK;
}

/* The sizes: n_layer, n_head, n_embd, vocab_size, n_positions (or n_ctx), layer_norm_epsilon. */
static int config_sizes(const pl_hf_config *c, gpt2_config *cfg)
{
    const char *path = c->path;
    json_t *root = c->root;
    if (config_int(root, path, "n_layer", MAX_LAYER, &cfg->n_layer) ||
        config_int(root, path, "n_head", MAX_EMBD, &cfg->n_head) ||
        config_int(root, path, "n_embd", MAX_EMBD, &cfg->n_embd) ||
        config_int(root, path, "vocab_size", MAX_VOCAB, &cfg->n_vocab))
        return PL_ERR;
    /* HF sizes wpe by n_positions; older exports only have n_ctx. */
    if (!json_object_get(root, "n_positions") && !json_object_get(root, "n_ctx"))
        return pl_fail("%s: key \"n_positions\" (or \"n_ctx\") is missing", path);
    if (config_int(root, path, json_object_get(root, "n_positions") ? "n_positions" : "n_ctx", MAX_CTX, &cfg->n_ctx))
        return PL_ERR;
    if (cfg->n_embd % cfg->n_head != 0)
        return pl_fail("%s: key \"n_embd\" = %d is not divisible by \"n_head\" = %d", path, cfg->n_embd, cfg->n_head);
    cfg->ln_eps = 1e-5f;
    const json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (eps) {
        double e = json_number_value(eps);
        if (!json_is_number(eps) || !(e > 0) || !isfinite(e) || e >= 1)
            return pl_fail("%s: key \"layer_norm_epsilon\" must be a number in (0, 1)", path);
        cfg->ln_eps = (float)e;
    }
    return PL_OK;
}

/* Keys that would change the math plateau computes: refuse rather than answer wrongly. */
static int config_refusals(const pl_hf_config *c, const gpt2_config *cfg)
{
    const char *path = c->path;
    const json_t *v = json_object_get(c->root, "activation_function");
    if (v && !(json_is_string(v) && (!strcmp(json_string_value(v), "gelu_new") ||
                                     !strcmp(json_string_value(v), "gelu_pytorch_tanh"))))
        return pl_fail("%s: key \"activation_function\" is %.40s: plateau computes GPT-2's tanh GELU (\"gelu_new\")",
                       path, json_is_string(v) ? json_string_value(v) : "not a string");
    v = json_object_get(c->root, "n_inner");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 4 * (json_int_t)cfg->n_embd))
        return pl_fail("%s: key \"n_inner\" must be null or 4 * n_embd = %d", path, 4 * cfg->n_embd);
    v = json_object_get(c->root, "scale_attn_weights");
    if (v && !json_is_true(v))
        return pl_fail("%s: key \"scale_attn_weights\" must be true (GPT-2 scales attention by 1/sqrt(head size))",
                       path);
    v = json_object_get(c->root, "scale_attn_by_inverse_layer_idx");
    if (v && !json_is_false(v))
        return pl_fail("%s: key \"scale_attn_by_inverse_layer_idx\" must be false (not GPT-2's attention)", path);
    return PL_OK;
}

/* The tensors of one block "h.L.<name>": their place in the decoder block and their shape in
 * multiples of C ([d0 C] or [d0 C, d1 C]; Conv1D weights are [in, out]). */
#define FIELD(f) offsetof(pl_decoder_block, f)
static const struct {
    const char *name;
    size_t field;
    int d0, d1;
} block_tensors[] = {
    {"ln_1.weight", FIELD(norm1_w), 1, 0},   {"ln_1.bias", FIELD(norm1_b), 1, 0},
    {"attn.c_attn.weight", FIELD(qkv.w), 1, 3}, {"attn.c_attn.bias", FIELD(qkv.b), 3, 0},
    {"attn.c_proj.weight", FIELD(o.w), 1, 1},  {"attn.c_proj.bias", FIELD(o.b), 1, 0},
    {"ln_2.weight", FIELD(norm2_w), 1, 0},   {"ln_2.bias", FIELD(norm2_b), 1, 0},
    {"mlp.c_fc.weight", FIELD(up.w), 1, 4},    {"mlp.c_fc.bias", FIELD(up.b), 4, 0},
    {"mlp.c_proj.weight", FIELD(down.w), 4, 1}, {"mlp.c_proj.bias", FIELD(down.b), 1, 0},
};
#undef FIELD
#define N_BLOCK_TENSORS (int)(sizeof block_tensors / sizeof block_tensors[0])

/* The tensor-name table: every block's tensors, then wte, wpe, ln_f and the tied lm_head. */
static int tensor_table(pl_decoder *d, const gpt2_config *cfg, pl_hf_wants *w)
{
    int64_t C = cfg->n_embd;
    char why_c[64], why_vocab[96], why_pos[96];
    snprintf(why_c, sizeof why_c, "n_embd=%d", cfg->n_embd);
    snprintf(why_vocab, sizeof why_vocab, "vocab_size=%d, n_embd=%d", cfg->n_vocab, cfg->n_embd);
    snprintf(why_pos, sizeof why_pos, "n_positions=%d, n_embd=%d", cfg->n_ctx, cfg->n_embd);
    for (int l = 0; l < cfg->n_layer; l++) {
        pl_decoder_block *b = &d->blocks[l];
        b->qkv.layout = b->o.layout = b->up.layout = b->down.layout = PL_LAYOUT_IN_OUT;
        for (int i = 0; i < N_BLOCK_TENSORS; i++) {
            const float **dst = (const float **)(void *)((char *)b + block_tensors[i].field);
            int ndim = block_tensors[i].d1 ? 2 : 1;
            if (pl_hf_want_add(w, dst, PL_HF_REQUIRED, ndim, block_tensors[i].d0 * C, block_tensors[i].d1 * C, why_c,
                               "h.%d.%s", l, block_tensors[i].name))
                return PL_ERR;
        }
    }
    return pl_hf_want_add(w, &d->embed, PL_HF_REQUIRED, 2, cfg->n_vocab, C, why_vocab, "wte.weight") ||
           pl_hf_want_add(w, &d->pos_embed, PL_HF_REQUIRED, 2, cfg->n_ctx, C, why_pos, "wpe.weight") ||
           pl_hf_want_add(w, &d->normf_w, PL_HF_REQUIRED, 1, C, 0, why_c, "ln_f.weight") ||
           pl_hf_want_add(w, &d->normf_b, PL_HF_REQUIRED, 1, C, 0, why_c, "ln_f.bias") ||
           pl_hf_want_add(w, &d->unembed, PL_HF_TIED, 2, cfg->n_vocab, C, why_vocab, "lm_head.weight");
}

static int gpt2_read(pl_model *m, const pl_hf_config *c, const pl_family *f, pl_hf_wants *w)
{
    (void)f;
    gpt2_config cfg;
    if (config_sizes(c, &cfg) || config_refusals(c, &cfg))
        return PL_ERR;
    pl_decoder *d = pl_decoder_new(m, cfg.n_layer);
    if (!d)
        return PL_ERR;
    pl_decoder_config *dc = &d->cfg;
    dc->d_model = cfg.n_embd, dc->n_head = dc->n_kv_head = cfg.n_head, dc->head_dim = cfg.n_embd / cfg.n_head;
    dc->d_mlp = 4 * cfg.n_embd, dc->n_vocab = cfg.n_vocab, dc->n_ctx = cfg.n_ctx;
    dc->norm = PL_NORM_LAYERNORM, dc->norm_eps = cfg.ln_eps, dc->mlp = PL_MLP_GELU_TANH;
    dc->qkv = PL_QKV_FUSED_BLOCKS, dc->parallel_residual = 0, dc->rot_dim = 0, dc->tied = 1;
    d->n_pos_embed = cfg.n_ctx;
    return tensor_table(d, &cfg, w);
}

/* A name no want holds: HF's causal-mask buffers h.N.attn.bias and h.N.attn.masked_bias are skipped
 * (plateau builds its own mask); a block tensor of a layer beyond n_layer gets its own message. */
static int gpt2_unknown(const pl_model *m, const char *file, const char *name)
{
    if (strncmp(name, "h.", 2) || name[2] < '0' || name[2] > '9')
        return 0;
    const char *p = name + 2;
    long layer = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 8) {
        layer = layer * 10 + (*p++ - '0');
        digits++;
    }
    if (*p != '.' || (digits > 1 && name[2] == '0'))
        return 0;
    const char *rest = p + 1;
    int buffer = !strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias"), known = buffer;
    for (int i = 0; i < N_BLOCK_TENSORS && !known; i++)
        known = !strcmp(rest, block_tensors[i].name);
    int n_layer = ((const pl_decoder *)m->weights)->cfg.n_layer;
    if (known && layer >= n_layer)
        return pl_fail("%s: tensor '%s': layer %ld is beyond n_layer=%d from config.json", file, name, layer, n_layer);
    return buffer;
}

/* GPT-2 unembeds with wte; an lm_head that differs would be silently ignored, so refuse it. */
static int gpt2_finish(pl_model *m, const pl_hf_config *c, const pl_hf_wants *w)
{
    (void)c;
    pl_decoder *d = m->weights;
    const pl_hf_want *lm = pl_hf_want_of(w, &d->unembed), *wte = pl_hf_want_of(w, &d->embed);
    if (lm && lm->found_in && !pl_hf_same_values(lm, wte))
        return pl_fail("%s: tensor '%s' differs from '%s': only GPT-2's tied unembedding is supported", lm->found_in,
                       lm->name, wte->name);
    d->unembed = d->embed;
    return PL_OK;
}

/* ------------------------------------------------------------ plateau synth */

static int gpt2_synth_dims(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d)
{
    (void)f;
    if (o->d_mlp && o->d_mlp != 4 * o->n_embd)
        return pl_fail("synth: --mlp %d: GPT-2's MLP is 4 x --embd = %d wide", o->d_mlp, 4 * o->n_embd);
    d->d_mlp = 4 * o->n_embd;
    return PL_OK;
}

static json_t *gpt2_synth_config(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d)
{
    return json_pack(
        "{s:s, s:[s], s:f, s:i, s:f, s:i, s:f, s:f, s:s, s:i, s:i, s:i, s:n, s:i, s:i, s:f, s:s, s:i, s:b, "
        "s:I, s:s, s:b}",
        "activation_function", "gelu_new", "architectures", f->architecture, "attn_pdrop", 0.1, "bos_token_id",
        d->n_vocab - 1, "embd_pdrop", 0.1, "eos_token_id", d->n_vocab - 1, "initializer_range", 0.02,
        "layer_norm_epsilon", 1e-5, "model_type", f->model_type, "n_ctx", o->n_ctx, "n_embd", o->n_embd, "n_head",
        o->n_head, "n_inner", "n_layer", o->n_layer, "n_positions", o->n_ctx, "resid_pdrop", 0.1, "torch_dtype",
        d->torch_dtype, "vocab_size", d->n_vocab, "plateau_synthetic", 1, "plateau_seed", (json_int_t)o->seed,
        "plateau_init", "normal(0,0.02); c_proj 0.02/sqrt(2L); wpe 0.01; ln 1+0.05z; bias 0.02z", "plateau_hf_quirks",
        o->hf_quirks);
}

/* HF's GPT-2 exports: the tied lm_head.weight written unprefixed with wte's values, and each
 * layer's causal-mask buffers (a BOOL [1, 1, N, N] lower triangle and a scalar masked_bias). */
static void gpt2_synth_quirks(const pl_model *m, const pl_synth_opts *o, pl_synth_tensor *t, int *n)
{
    const pl_decoder_config *c = &((const pl_decoder *)m->weights)->cfg;
    pl_synth_tensor *lm = &t[(*n)++];
    *lm = (pl_synth_tensor){.kind = PL_INIT_WEIGHT, .dtype = o->dtype, .ndim = 2, .shape = {c->n_vocab, c->d_model}};
    snprintf(lm->name, sizeof lm->name, "lm_head.weight");
    snprintf(lm->seed_name, sizeof lm->seed_name, "wte.weight");
    for (int l = 0; l < c->n_layer; l++) {
        pl_synth_tensor *mask = &t[(*n)++], *masked = &t[(*n)++];
        *mask = (pl_synth_tensor){.kind = PL_INIT_MASK, .dtype = ST_BOOL, .ndim = 4, .shape = {1, 1, c->n_ctx, c->n_ctx}};
        snprintf(mask->seed_name, sizeof mask->seed_name, "h.%d.attn.bias", l);
        snprintf(mask->name, sizeof mask->name, "transformer.h.%d.attn.bias", l);
        *masked = (pl_synth_tensor){.kind = PL_INIT_MASKED_BIAS, .dtype = ST_F32, .ndim = 0};
        snprintf(masked->seed_name, sizeof masked->seed_name, "h.%d.attn.masked_bias", l);
        snprintf(masked->name, sizeof masked->name, "transformer.h.%d.attn.masked_bias", l);
    }
}

const pl_family_code pl_gpt2_code = {
    .read = gpt2_read,
    .prefix = "transformer.",
    .unknown = gpt2_unknown,
    .finish = gpt2_finish,
    .synth_dims = gpt2_synth_dims,
    .synth_config = gpt2_synth_config,
    .synth_quirks = gpt2_synth_quirks,
};
