/* GPT-2 (model_type "gpt2"): config.json keys, the tensor table of a Hugging Face GPT-2
 * model.safetensors, and the forward pass and fast path.
 *
 * Shapes: T positions, C = n_embd, H heads of size hs = C / H, V vocabulary, L blocks, N = n_positions.
 * Activations are row-major [rows, C]; weights keep HF's Conv1D layout [in, out], so
 * X[M, in] @ W[in, out] is a plain row-major sgemm.
 *
 * Every tensor in the file must be a known GPT-2 tensor whose shape follows from config.json, and
 * every required tensor must be present: a stranger's file either loads exactly or fails with one
 * line naming the file, the tensor and the problem. */
#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../model_internal.h"
#include "../ops.h"
#include "families.h"
#include "plateau/error.h"
#include "plateau/safetensors.h"

typedef struct {
    int n_layer;  /* L */
    int n_head;   /* H */
    int n_embd;   /* C */
    int n_ctx;    /* N: n_positions (or n_ctx) */
    int n_vocab;  /* V */
    float ln_eps; /* layer_norm_epsilon */
    int synthetic; /* config.json has "plateau_synthetic": true (written by plateau synth) */
} pl_config;

typedef struct {
    const float *ln_1_w, *ln_1_b;           /* [C], [C] */
    const float *attn_w, *attn_b;           /* attn.c_attn: [C, 3C], [3C] (q, k, v) */
    const float *attn_proj_w, *attn_proj_b; /* attn.c_proj: [C, C], [C] */
    const float *ln_2_w, *ln_2_b;           /* [C], [C] */
    const float *fc_w, *fc_b;               /* mlp.c_fc: [C, 4C], [4C] */
    const float *mlp_proj_w, *mlp_proj_b;   /* mlp.c_proj: [4C, C], [C] */
} pl_block;

typedef struct {
    pl_config cfg;
    const float *wte;             /* [V, C]; also the unembedding (tied, as in GPT-2) */
    const float *wpe;             /* [N, C] */
    pl_block *blocks;             /* [L] */
    const float *ln_f_w, *ln_f_b; /* [C], [C] */
} gpt2_weights;

/* Caps far above GPT-2 xl (48/25/1600/1024/50257) that keep every size computation inside int64. */
#define MAX_LAYER 4096
#define MAX_EMBD 65536
#define MAX_CTX (1 << 20)
#define MAX_VOCAB (1 << 22)

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

static int gpt2_config_load(pl_config *cfg, const pl_hf_config *c)
{
    memset(cfg, 0, sizeof *cfg);
    const char *path = c->path;
    json_t *root = c->root;
    int rc = PL_ERR;
    if (config_int(root, path, "n_layer", MAX_LAYER, &cfg->n_layer) ||
        config_int(root, path, "n_head", MAX_EMBD, &cfg->n_head) ||
        config_int(root, path, "n_embd", MAX_EMBD, &cfg->n_embd) ||
        config_int(root, path, "vocab_size", MAX_VOCAB, &cfg->n_vocab))
        goto done;
    /* HF sizes wpe by n_positions; older exports only have n_ctx. */
    if (config_int(root, path, json_object_get(root, "n_positions") ? "n_positions" : "n_ctx", MAX_CTX,
                   &cfg->n_ctx)) {
        if (!json_object_get(root, "n_positions") && !json_object_get(root, "n_ctx"))
            pl_fail("%s: key \"n_positions\" (or \"n_ctx\") is missing", path);
        goto done;
    }
    if (cfg->n_embd % cfg->n_head != 0) {
        pl_fail("%s: key \"n_embd\" = %d is not divisible by \"n_head\" = %d", path, cfg->n_embd, cfg->n_head);
        goto done;
    }
    cfg->ln_eps = 1e-5f;
    const json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (eps) {
        double e = json_number_value(eps);
        if (!json_is_number(eps) || !(e > 0) || !isfinite(e) || e >= 1) {
            pl_fail("%s: key \"layer_norm_epsilon\" must be a number in (0, 1)", path);
            goto done;
        }
        cfg->ln_eps = (float)e;
    }
    /* Keys that would change the math plateau computes: refuse rather than answer wrongly. */
    const json_t *v = json_object_get(root, "model_type");
    if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "gpt2"))) {
        pl_fail("%s: key \"model_type\" is %s, not \"gpt2\"", path,
                json_is_string(v) ? json_string_value(v) : "not a string");
        goto done;
    }
    v = json_object_get(root, "activation_function");
    if (v && !(json_is_string(v) && (!strcmp(json_string_value(v), "gelu_new") ||
                                     !strcmp(json_string_value(v), "gelu_pytorch_tanh")))) {
        pl_fail("%s: key \"activation_function\" is %.40s: plateau computes GPT-2's tanh GELU (\"gelu_new\")",
                path, json_is_string(v) ? json_string_value(v) : "not a string");
        goto done;
    }
    v = json_object_get(root, "n_inner");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 4 * (json_int_t)cfg->n_embd)) {
        pl_fail("%s: key \"n_inner\" must be null or 4 * n_embd = %d", path, 4 * cfg->n_embd);
        goto done;
    }
    v = json_object_get(root, "scale_attn_weights");
    if (v && !json_is_true(v)) {
        pl_fail("%s: key \"scale_attn_weights\" must be true (GPT-2 scales attention by 1/sqrt(head size))", path);
        goto done;
    }
    v = json_object_get(root, "scale_attn_by_inverse_layer_idx");
    if (v && !json_is_false(v)) {
        pl_fail("%s: key \"scale_attn_by_inverse_layer_idx\" must be false (not GPT-2's attention)", path);
        goto done;
    }
    cfg->synthetic = json_is_true(json_object_get(root, "plateau_synthetic"));
    rc = PL_OK;
done:
    return rc;
}

static size_t gpt2_n_params(const pl_config *cfg)
{
    size_t C = (size_t)cfg->n_embd, L = (size_t)cfg->n_layer;
    size_t per_block = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C);
    return (size_t)cfg->n_vocab * C + (size_t)cfg->n_ctx * C + L * per_block + 2 * C;
}

/* The tensors of one block, in pl_block's field order. */
enum { B_LN1_W, B_LN1_B, B_ATTN_W, B_ATTN_B, B_APROJ_W, B_APROJ_B, B_LN2_W, B_LN2_B, B_FC_W, B_FC_B,
       B_MPROJ_W, B_MPROJ_B, B_COUNT };
static const char *block_names[B_COUNT] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
};
/* Global tensors follow the L * B_COUNT block slots. */
enum { G_WTE, G_WPE, G_LNF_W, G_LNF_B, G_LM_HEAD, G_COUNT };
static const char *global_names[G_COUNT] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias",
                                            "lm_head.weight"};

/* Expected shape of a slot, and the config keys it follows from (for messages). */
static int expected_shape(const pl_config *cfg, int L_slots, int slot, int64_t shape[2], const char **why)
{
    int64_t C = cfg->n_embd;
    static char buf[128];
    if (slot >= L_slots) {
        switch (slot - L_slots) {
        case G_WTE:
        case G_LM_HEAD:
            shape[0] = cfg->n_vocab, shape[1] = C;
            snprintf(buf, sizeof buf, "vocab_size=%d, n_embd=%d", cfg->n_vocab, cfg->n_embd);
            *why = buf;
            return 2;
        case G_WPE:
            shape[0] = cfg->n_ctx, shape[1] = C;
            snprintf(buf, sizeof buf, "n_positions=%d, n_embd=%d", cfg->n_ctx, cfg->n_embd);
            *why = buf;
            return 2;
        default:
            break; /* ln_f: [C] */
        }
    }
    snprintf(buf, sizeof buf, "n_embd=%d", cfg->n_embd);
    *why = buf;
    int b = slot >= L_slots ? -1 : slot % B_COUNT;
    switch (b) {
    case B_ATTN_W: shape[0] = C, shape[1] = 3 * C; return 2;
    case B_ATTN_B: shape[0] = 3 * C; return 1;
    case B_APROJ_W: shape[0] = C, shape[1] = C; return 2;
    case B_FC_W: shape[0] = C, shape[1] = 4 * C; return 2;
    case B_FC_B: shape[0] = 4 * C; return 1;
    case B_MPROJ_W: shape[0] = 4 * C, shape[1] = C; return 2;
    default: shape[0] = C; return 1;
    }
}

/* Map a file tensor name to its slot: >= 0 a slot, -1 an ignored buffer, -2 unexpected (message
 * recorded). */
static int classify(const char *st_path, const pl_config *cfg, const char *full_name)
{
    const char *name = full_name;
    if (!strncmp(name, "transformer.", 12))
        name += 12;
    int L_slots = cfg->n_layer * B_COUNT;
    for (int g = 0; g < G_COUNT; g++)
        if (!strcmp(name, global_names[g]))
            return L_slots + g;
    if (!strncmp(name, "h.", 2) && name[2] >= '0' && name[2] <= '9') {
        const char *p = name + 2;
        long layer = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 8) {
            layer = layer * 10 + (*p++ - '0');
            digits++;
        }
        int canonical = *p == '.' && !(digits > 1 && name[2] == '0');
        if (canonical) {
            const char *rest = p + 1;
            int known = !strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias");
            int b = -1;
            for (int i = 0; i < B_COUNT && !known; i++)
                if (!strcmp(rest, block_names[i]))
                    b = i, known = 1;
            if (known && layer >= cfg->n_layer)
                return pl_fail("%s: tensor '%s': layer %ld is beyond n_layer=%d from config.json", st_path,
                               full_name, layer, cfg->n_layer),
                       -2;
            if (known)
                return b < 0 ? -1 : (int)layer * B_COUNT + b;
        }
    }
    pl_fail("%s: unexpected tensor '%s' (not a GPT-2 tensor name)", st_path, full_name);
    return -2;
}

static const char *slot_name(int L_slots, int slot, char *buf, size_t cap)
{
    if (slot >= L_slots)
        return global_names[slot - L_slots];
    snprintf(buf, cap, "h.%d.%s", slot / B_COUNT, block_names[slot % B_COUNT]);
    return buf;
}

static void gpt2_free_weights(void *weights)
{
    gpt2_weights *w = weights;
    if (w)
        free(w->blocks);
    free(w);
}

static const pl_family_ops gpt2_ops;

int pl_gpt2_open(pl_model *m, const char *dir, const pl_hf_config *c)
{
    gpt2_weights *w = pl_calloc(1, sizeof *w, "GPT-2 weights");
    if (!w)
        return PL_ERR;
    m->weights = w;
    m->ops = &gpt2_ops;
    const st_tensor **slots = NULL;
    const char **slot_file = NULL;
    pl_hf_files tf = {0};
    int rc = PL_ERR;
    if (gpt2_config_load(&w->cfg, c) != PL_OK || pl_hf_open_files(m, dir, &tf) != PL_OK)
        goto done;

    const pl_config *cfg = &w->cfg;
    int L_slots = cfg->n_layer * B_COUNT, n_slots = L_slots + G_COUNT;
    slots = pl_calloc((size_t)n_slots, sizeof *slots, "tensor slots");
    slot_file = pl_calloc((size_t)n_slots, sizeof *slot_file, "tensor slots");
    if (!slots || !slot_file)
        goto done;
    char shape_buf[2][ST_MAX_DIMS * 24 + 4], name_buf[64];
    for (int fi = 0; fi < tf.n; fi++)
    for (int i = 0; i < tf.files[fi].n_tensors; i++) {
        const st_tensor *t = &tf.files[fi].tensors[i];
        const char *st_path = tf.files[fi].path;
        int slot = classify(st_path, cfg, t->name);
        if (slot == -2)
            goto done;
        if (slot == -1)
            continue; /* causal-mask buffer: plateau builds its own mask */
        if (slots[slot]) {
            pl_fail("%s: tensor '%s' appears twice (as '%s' and '%s')", st_path,
                    slot_name(L_slots, slot, name_buf, sizeof name_buf), slots[slot]->name, t->name);
            goto done;
        }
        slots[slot] = t;
        slot_file[slot] = st_path;
        int64_t want[2];
        const char *why;
        int want_ndim = expected_shape(cfg, L_slots, slot, want, &why);
        if (t->ndim != want_ndim || t->shape[0] != want[0] || (want_ndim == 2 && t->shape[1] != want[1])) {
            pl_hf_format_shape(shape_buf[0], sizeof shape_buf[0], want_ndim, want);
            pl_hf_format_shape(shape_buf[1], sizeof shape_buf[1], t->ndim, t->shape);
            pl_fail("%s: tensor '%s': expected shape %s from config.json (%s), found %s", st_path, t->name,
                    shape_buf[0], why, shape_buf[1]);
            goto done;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            pl_fail("%s: tensor '%s': dtype %s is not supported for weights (F32, F16 or BF16)", st_path,
                    t->name, st_dtype_name(t->dtype));
            goto done;
        }
    }
    for (int s = 0; s < n_slots; s++)
        if (!slots[s] && s != L_slots + G_LM_HEAD) {
            pl_fail("%s: missing tensor '%s' (config.json has n_layer=%d)", tf.missing_in,
                    slot_name(L_slots, s, name_buf, sizeof name_buf), cfg->n_layer);
            goto done;
        }
    /* GPT-2 unembeds with wte; an lm_head that differs would be silently ignored, so refuse it. */
    const st_tensor *lm = slots[L_slots + G_LM_HEAD], *wte = slots[L_slots + G_WTE];
    if (lm && (lm->dtype != wte->dtype || memcmp(lm->data, wte->data, lm->end - lm->begin) != 0)) {
        pl_fail("%s: tensor '%s' differs from '%s': only GPT-2's tied unembedding is supported", slot_file[L_slots + G_LM_HEAD],
                lm->name, wte->name);
        goto done;
    }

    /* F32 tensors stay in the mmap when aligned; everything else is converted into owned buffers. */
    const float **ptr = pl_calloc((size_t)n_slots, sizeof *ptr, "weight pointers");
    if (!ptr)
        goto done;
    for (int s = 0; s < n_slots; s++) {
        const st_tensor *t = slots[s];
        if (!t || s == L_slots + G_LM_HEAD)
            continue;
        ptr[s] = pl_model_weight_f32(m, slot_file[s], t->name, t->dtype, t->data, (t->end - t->begin) / st_dtype_size(t->dtype));
        if (!ptr[s]) {
            free(ptr);
            goto done;
        }
    }
    w->blocks = pl_calloc((size_t)cfg->n_layer, sizeof *w->blocks, "blocks");
    if (!w->blocks) {
        free(ptr);
        goto done;
    }
    for (int l = 0; l < cfg->n_layer; l++) {
        const float **p = ptr + l * B_COUNT;
        w->blocks[l] = (pl_block){
            .ln_1_w = p[B_LN1_W], .ln_1_b = p[B_LN1_B],
            .attn_w = p[B_ATTN_W], .attn_b = p[B_ATTN_B],
            .attn_proj_w = p[B_APROJ_W], .attn_proj_b = p[B_APROJ_B],
            .ln_2_w = p[B_LN2_W], .ln_2_b = p[B_LN2_B],
            .fc_w = p[B_FC_W], .fc_b = p[B_FC_B],
            .mlp_proj_w = p[B_MPROJ_W], .mlp_proj_b = p[B_MPROJ_B],
        };
    }
    w->wte = ptr[L_slots + G_WTE];
    w->wpe = ptr[L_slots + G_WPE];
    w->ln_f_w = ptr[L_slots + G_LNF_W];
    w->ln_f_b = ptr[L_slots + G_LNF_B];
    free(ptr);
    pl_model_info *info = &m->info;
    snprintf(info->family, sizeof info->family, "gpt2");
    snprintf(info->format, sizeof info->format, "hf");
    info->n_layer = cfg->n_layer;
    info->d_model = cfg->n_embd;
    info->n_head = info->n_kv_head = cfg->n_head;
    info->head_dim = cfg->n_embd / cfg->n_head;
    info->d_mlp = 4 * cfg->n_embd;
    info->n_vocab = cfg->n_vocab;
    info->n_ctx = cfg->n_ctx;
    info->norm = PL_NORM_LAYERNORM;
    info->synthetic = cfg->synthetic;
    info->n_params = gpt2_n_params(cfg);
    rc = PL_OK;
done:
    free(slots);
    free(slot_file);
    pl_hf_files_free(&tf); /* names only: the mappings belong to m */
    return rc;
}


/* ------------------------------------------------------------ scratch */

typedef struct {
    float *ln;    /* [R, C] */
    float *qkv;   /* [R, 3C] */
    float *att;   /* [R, C] */
    float *proj;  /* [R, C] */
    float *fch;   /* [R, 4C] */
    float *scores; /* [T, T] */
    void *block;
} scratch;

static int scratch_alloc(scratch *s, size_t R, int C, int T)
{
    size_t floats = R * (size_t)C * (1 + 3 + 1 + 1 + 4) + (size_t)T * T;
    float *p = pl_malloc(floats * sizeof(float), "activations");
    if (!p)
        return PL_ERR;
    s->block = p;
    s->ln = p;
    s->qkv = s->ln + R * C;
    s->att = s->qkv + R * 3 * C;
    s->proj = s->att + R * C;
    s->fch = s->proj + R * C;
    s->scores = s->fch + R * 4 * C;
    return PL_OK;
}

/* The MLP half of a block on x[R, C], in place: x += proj(gelu(fc(ln_2(x)))). */
static void mlp_residual(const pl_block *b, float *x, int R, int C, float eps, scratch *s)
{
    pl_op_layernorm(s->ln, x, b->ln_2_w, b->ln_2_b, R, C, eps);
    pl_op_matmul(s->fch, s->ln, b->fc_w, b->fc_b, R, C, 4 * C);
    pl_op_gelu_tanh(s->fch, (size_t)R * 4 * C);
    pl_op_matmul(s->proj, s->fch, b->mlp_proj_w, b->mlp_proj_b, R, 4 * C, C);
    pl_op_residual_add(x, s->proj, (size_t)R * C);
}

/* next-token logits[M, V] of final-residual rows x[M, C] (row stride C). */
static int unembed(const void *weights, const float *x, int M, float *logits)
{
    const gpt2_weights *m = weights;
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, V = cfg->n_vocab;
    float *ln = pl_malloc(sizeof(float) * (size_t)M * C, "final layernorm");
    if (!ln)
        return PL_ERR;
    pl_op_layernorm(ln, x, m->ln_f_w, m->ln_f_b, M, C, cfg->ln_eps);
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, m->wte, C, ln, 1, 0.0f, logits, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, V, C, 1.0f, ln, C, m->wte, C, 0.0f, logits, V);
    free(ln);
    return PL_OK;
}

/* ------------------------------------------------------------ full forward */

/* Full forward of N sequences of T tokens at once: their rows are stacked into one [N*T, C]
 * activation so that every weight matmul is a single sgemm (attention stays per sequence). The
 * patch, when given, applies to sequence 0 (used with N = 1). */
static int gpt2_forward(const pl_model *model, const int *tokens, int N, int T, int stop, int patch_index,
                        int patch_pos, const float *patch, pl_run *runs)
{
    const gpt2_weights *m = model->weights;
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, L = cfg->n_layer, V = cfg->n_vocab, H = cfg->n_head;

    size_t TC = (size_t)T * C, R = (size_t)N * T;
    float *x = pl_malloc(sizeof(float) * R * C, "residual stream");
    scratch s = {0};
    if (!x || scratch_alloc(&s, R, C, T) != PL_OK || pl_runs_alloc(runs, N, T, C, L, V, C, stop) != PL_OK)
        goto fail;

    for (size_t r = 0; r < R; r++) /* resid index 0: token + position embeddings */
        for (int c = 0; c < C; c++)
            x[r * C + c] = m->wte[(size_t)tokens[r] * C + c] + m->wpe[(r % T) * C + c];

    for (int l = 0; l <= stop; l++) {
        if (patch && l == patch_index)
            memcpy(x + (size_t)patch_pos * C, patch, sizeof(float) * C);
        for (int i = 0; i < N; i++)
            memcpy(runs[i].resid + (size_t)l * TC, x + i * TC, sizeof(float) * TC);
        if (l == stop)
            break;
        const pl_block *b = &m->blocks[l];
        pl_op_layernorm(s.ln, x, b->ln_1_w, b->ln_1_b, (int)R, C, cfg->ln_eps);
        pl_op_matmul(s.qkv, s.ln, b->attn_w, b->attn_b, (int)R, C, 3 * C);
        for (int i = 0; i < N; i++) {
            const float *qkv = s.qkv + i * 3 * TC;
            float *kc = runs[i].k + (size_t)l * TC, *vc = runs[i].v + (size_t)l * TC;
            for (int t = 0; t < T; t++) {
                memcpy(kc + (size_t)t * C, qkv + (size_t)t * 3 * C + C, sizeof(float) * C);
                memcpy(vc + (size_t)t * C, qkv + (size_t)t * 3 * C + 2 * C, sizeof(float) * C);
            }
            pl_op_causal_attention(s.att + i * TC, qkv, 3 * (size_t)C, qkv + C, qkv + 2 * C, 3 * (size_t)C, T, H, H, C / H,
                                   s.scores);
        }
        pl_op_matmul(s.proj, s.att, b->attn_proj_w, b->attn_proj_b, (int)R, C, C);
        pl_op_residual_add(x, s.proj, R * C);
        mlp_residual(b, x, (int)R, C, cfg->ln_eps, &s);
    }
    if (stop == L && pl_runs_logits(runs, N, T, C, V, x, unembed, m) != PL_OK)
        goto fail;
    free(s.block);
    free(x);
    return PL_OK;
fail:
    free(s.block);
    free(x);
    for (int i = 0; i < N; i++)
        pl_run_free(&runs[i]);
    return PL_ERR;
}

/* ------------------------------------------------------------ fast path */

static int gpt2_patch_eval_groups(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                  int M, int resid_index, int pos, const float *X, float *logits, int read_index,
                                  float *read)
{
    const gpt2_weights *m = model->weights;
    const pl_config *cfg = &m->cfg;
    int C = cfg->n_embd, L = cfg->n_layer, H = cfg->n_head, T = cleans[0]->T;

    /* Every variant carries positions pos..T-1 (n of them): rows v*n .. v*n + n-1. */
    int n = T - pos;
    size_t R = (size_t)M * n, TC = (size_t)T * C;
    pl_fast_rows f = {0};
    scratch s = {0};
    if (pl_fast_rows_init(&f, cleans, group_rows, G, M, resid_index, pos, X, read_index, read) != PL_OK)
        return PL_ERR;
    if (scratch_alloc(&s, R, C, T) != PL_OK) {
        pl_fast_rows_free(&f);
        return PL_ERR;
    }
    float *x = f.x;
    const pl_run **clean_of = f.clean_of;

    for (int l = resid_index; l < L; l++) {
        const pl_block *b = &m->blocks[l];
        pl_op_layernorm(s.ln, x, b->ln_1_w, b->ln_1_b, (int)R, C, cfg->ln_eps);
        pl_op_matmul(s.qkv, s.ln, b->attn_w, b->attn_b, (int)R, C, 3 * C);
        for (int v = 0; v < M; v++) {
            const float *kc = clean_of[v]->k + (size_t)l * TC, *vc = clean_of[v]->v + (size_t)l * TC;
            const float *rows = s.qkv + (size_t)v * n * 3 * C;
            for (int j = 0; j < n; j++)
                pl_op_attend_one(s.att + ((size_t)v * n + j) * C, rows + (size_t)j * 3 * C, kc, vc, pos, C, rows + C,
                                 rows + 2 * C, j + 1, 3 * (size_t)C, H, H, C / H, s.scores);
        }
        pl_op_matmul(s.proj, s.att, b->attn_proj_w, b->attn_proj_b, (int)R, C, C);
        pl_op_residual_add(x, s.proj, R * C);
        mlp_residual(b, x, (int)R, C, cfg->ln_eps, &s);
        if (read && read_index == l + 1)
            pl_fast_rows_read(&f, read);
    }
    free(s.block);
    int rc = PL_OK;
    if (logits) {
        pl_fast_rows_gather_last(&f);
        rc = unembed(m, f.x, M, logits);
    }
    pl_fast_rows_free(&f);
    return rc;
}

/* ------------------------------------------------------------ FLOP counts */

/* Matmul FLOPs of one block for n rows: c_attn 3C^2, c_proj C^2, c_fc 4C^2, mlp c_proj 4C^2,
 * two FLOPs per multiply-add. */
static double block_matmul_flops(double C, double n) { return 24.0 * C * C * n; }

/* Attention FLOPs for query positions first..last-1 attending causally: q.k and p.v over t+1 keys. */
static double attention_flops(double C, int first, int last)
{
    double f = 0.0;
    for (int t = first; t < last; t++)
        f += 4.0 * C * (t + 1);
    return f;
}

static double gpt2_forward_flops(const pl_model *m, int T)
{
    const pl_config *cfg = &((const gpt2_weights *)m->weights)->cfg;
    double C = cfg->n_embd;
    return cfg->n_layer * (block_matmul_flops(C, T) + attention_flops(C, 0, T)) + 2.0 * C * cfg->n_vocab;
}

static double gpt2_patch_flops(const pl_model *m, int T, int resid_index, int pos)
{
    const pl_config *cfg = &((const gpt2_weights *)m->weights)->cfg;
    double C = cfg->n_embd;
    return (cfg->n_layer - resid_index) * (block_matmul_flops(C, T - pos) + attention_flops(C, pos, T)) +
           2.0 * C * cfg->n_vocab;
}

/* `plateau info`: the file's tensors (re-read: the model keeps only fp32 pointers) and dtypes. */
static void gpt2_describe(const pl_model *m, FILE *out)
{
    const pl_config *c = &((const gpt2_weights *)m->weights)->cfg;
    int counts[ST_F8_E5M2 + 1] = {0}, n_weights = 4 + 12 * c->n_layer, n_tensors = 0, has_lm_head = 0;
    size_t bytes = 0;
    for (int i = 0; i < m->n_files; i++) {
        st_file f;
        if (st_parse(&f, m->files[i].path, m->files[i].map, m->files[i].size) != PL_OK)
            return;
        has_lm_head |= st_find(&f, "lm_head.weight") || st_find(&f, "transformer.lm_head.weight");
        for (int t = 0; t < f.n_tensors; t++)
            counts[f.tensors[t].dtype]++;
        n_tensors += f.n_tensors;
        bytes += m->files[i].size;
        st_free(&f);
    }
    char dtypes[256] = "";
    for (int d = 0; d <= ST_F8_E5M2; d++)
        if (counts[d]) {
            size_t len = strlen(dtypes);
            snprintf(dtypes + len, sizeof dtypes - len, "%s%s x%d", len ? ", " : "", st_dtype_name((st_dtype)d),
                     counts[d]);
        }
    fprintf(out, "layer_norm_epsilon  %g\n", (double)c->ln_eps);
    fprintf(out, "tensors             %d (%d weights%s, %d ignored buffers)\n", n_tensors, n_weights,
            has_lm_head ? ", tied lm_head" : "", n_tensors - n_weights - has_lm_head);
    fprintf(out, "dtypes              %s\n", dtypes);
    fprintf(out, "weight_files        %d%s\n", m->n_files, m->n_files > 1 ? " (sharded, sha256 over the shards in name order)" : "");
    fprintf(out, "file_bytes          %zu\n", bytes);
}

static const pl_family_ops gpt2_ops = {
    .describe = gpt2_describe,
    .forward = gpt2_forward,
    .patch_eval_groups = gpt2_patch_eval_groups,
    .forward_flops = gpt2_forward_flops,
    .patch_flops = gpt2_patch_flops,
    .free_weights = gpt2_free_weights,
};
