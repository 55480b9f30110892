/* Test-only reference: GPT-2's forward pass and fast path exactly as plateau computed them before
 * GPT-2 went through the generic decoder (src/model/families/gpt2.c at c283874), kept verbatim so
 * that tests/core/gpt2_bitwise.c can compare the decoder against it bit for bit. It uses the same
 * layer ops (src/model/ops.h) and reads DIR/config.json and DIR/model.safetensors itself (names,
 * shapes and dtypes are the loader's business and tested elsewhere: this file assumes a valid dir).
 * Not part of plateau: built only into the test. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpt2_legacy.h"
#include "model_internal.h"
#include "ops.h"
#include "plateau/error.h"
#include "plateau/safetensors.h"

typedef struct {
    int n_layer;  /* L */
    int n_head;   /* H */
    int n_embd;   /* C */
    int n_ctx;    /* N: n_positions (or n_ctx) */
    int n_vocab;  /* V */
    float ln_eps; /* layer_norm_epsilon */
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

/* ------------------------------------------------------------ loading (the test's own) */

static int json_int(json_t *root, const char *key, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v))
        return pl_fail("legacy: config.json: no integer \"%s\"", key);
    *out = (int)json_integer_value(v);
    return PL_OK;
}

static const float *tensor(pl_model *m, const st_file *f, const char *name)
{
    char prefixed[128];
    snprintf(prefixed, sizeof prefixed, "transformer.%s", name);
    const st_tensor *t = st_find(f, name);
    if (!t)
        t = st_find(f, prefixed);
    if (!t) {
        pl_fail("legacy: %s: no tensor '%s'", f->path, name);
        return NULL;
    }
    return pl_model_weight_f32(m, f->path, t->name, t->dtype, t->data, (t->end - t->begin) / st_dtype_size(t->dtype));
}

static int load_config(gpt2_weights *w, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return pl_fail("legacy: %s: %s", path, jerr.text);
    pl_config *c = &w->cfg;
    int rc = json_int(root, "n_layer", &c->n_layer) || json_int(root, "n_head", &c->n_head) ||
             json_int(root, "n_embd", &c->n_embd) || json_int(root, "vocab_size", &c->n_vocab) ||
             json_int(root, json_object_get(root, "n_positions") ? "n_positions" : "n_ctx", &c->n_ctx);
    json_t *eps = json_object_get(root, "layer_norm_epsilon");
    c->ln_eps = eps ? (float)json_number_value(eps) : 1e-5f;
    json_decref(root);
    return rc ? PL_ERR : PL_OK;
}

static const pl_family_ops gpt2_ops;

int gpt2_legacy_open(pl_model *m, const char *dir)
{
    gpt2_weights *w = pl_calloc(1, sizeof *w, "legacy weights");
    if (!w)
        return PL_ERR;
    m->weights = w;
    m->ops = &gpt2_ops;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const void *map;
    size_t size;
    st_file f;
    if (load_config(w, dir) || pl_model_map_file(m, path, NULL, &map, &size) || st_parse(&f, m->files[0].path, map, size))
        return PL_ERR;
    const pl_config *cfg = &w->cfg;
    int rc = !(w->blocks = pl_calloc((size_t)cfg->n_layer, sizeof *w->blocks, "legacy blocks"));
    const float **field[] = {&w->wte, &w->wpe, &w->ln_f_w, &w->ln_f_b};
    const char *global[] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"};
    for (int i = 0; i < 4 && !rc; i++)
        rc = !(*field[i] = tensor(m, &f, global[i]));
    static const char *names[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    for (int l = 0; l < cfg->n_layer && !rc; l++) {
        const float **p = (const float **)&w->blocks[l]; /* pl_block: 12 pointers in names' order */
        char name[96];
        for (int i = 0; i < 12 && !rc; i++) {
            snprintf(name, sizeof name, "h.%d.%s", l, names[i]);
            rc = !(p[i] = tensor(m, &f, name));
        }
    }
    st_free(&f);
    if (rc)
        return PL_ERR;
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
    size_t C = (size_t)cfg->n_embd, L = (size_t)cfg->n_layer;
    size_t per_block = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C);
    info->n_params = (size_t)cfg->n_vocab * C + (size_t)cfg->n_ctx * C + L * per_block + 2 * C;
    return PL_OK;
}

static void gpt2_free_weights(void *weights)
{
    gpt2_weights *w = weights;
    if (w)
        free(w->blocks);
    free(w);
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
                                   s.scores, NULL);
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
                                 rows + 2 * C, j + 1, 3 * (size_t)C, H, H, C / H, s.scores, NULL);
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

static void gpt2_describe(const pl_model *m, FILE *out)
{
    (void)m;
    fprintf(out, "legacy              GPT-2 reference (tests only)\n");
}

static const pl_family_ops gpt2_ops = {
    .describe = gpt2_describe,
    .forward = gpt2_forward,
    .patch_eval_groups = gpt2_patch_eval_groups,
    .forward_flops = gpt2_forward_flops,
    .patch_flops = gpt2_patch_flops,
    .free_weights = gpt2_free_weights,
};
