/* The forward pass and fast path of the decoder (decoder.h): every family. Activations are
 * row-major [rows, width]; each weight matrix is applied in its own layout (nn.Linear [out, in] or
 * Conv1D [in, out]). The clean run caches each layer's keys (rotated) and values per key/value head,
 * [T, KVH*hd]: the fast path rotates only the perturbed positions' queries and keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../ops.h"
#include "decoder.h"
#include "plateau/error.h"

static const pl_family_ops decoder_ops;

static void decoder_free(void *weights)
{
    pl_decoder *d = weights;
    if (!d)
        return;
    free(d->blocks);
    free(d->cfg.inv_freq);
    free(d);
}

pl_decoder *pl_decoder_new(pl_model *m, int n_layer)
{
    pl_decoder *d = pl_calloc(1, sizeof *d, "decoder");
    if (!d)
        return NULL;
    d->blocks = pl_calloc((size_t)n_layer, sizeof *d->blocks, "decoder blocks");
    if (!d->blocks) {
        free(d);
        return NULL;
    }
    d->cfg.n_layer = n_layer;
    m->weights = d;
    m->ops = &decoder_ops;
    return d;
}

int pl_decoder_rope_default(pl_decoder_config *cfg, double theta)
{
    int half = cfg->rot_dim / 2;
    cfg->inv_freq = pl_malloc(sizeof(float) * (size_t)(half ? half : 1), "rope frequencies");
    if (!cfg->inv_freq)
        return PL_ERR;
    for (int k = 0; k < half; k++)
        cfg->inv_freq[k] = 1.0f / powf((float)theta, (float)(2 * k) / (float)cfg->rot_dim);
    return PL_OK;
}

void pl_decoder_set_info(pl_model *m, const char *family, const char *format, int synthetic)
{
    const pl_decoder *d = m->weights;
    const pl_decoder_config *c = &d->cfg;
    pl_model_info *info = &m->info;
    snprintf(info->family, sizeof info->family, "%s", family);
    snprintf(info->format, sizeof info->format, "%s", format);
    info->n_layer = c->n_layer;
    info->d_model = c->d_model;
    info->n_head = c->n_head;
    info->n_kv_head = c->n_kv_head;
    info->head_dim = c->head_dim;
    info->d_mlp = c->d_mlp;
    info->n_vocab = c->n_vocab;
    info->n_ctx = c->n_ctx;
    info->norm = c->norm;
    info->synthetic = synthetic;
    info->parallel_residual = c->parallel_residual;
    size_t C = (size_t)c->d_model, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    size_t MLP = (size_t)c->d_mlp, norm = c->norm == PL_NORM_LAYERNORM ? 2 * C : C;
    const pl_decoder_block *b = &d->blocks[0];
    size_t gated = c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH;
    size_t block = 2 * norm + C * (qd + 2 * kvd) + qd * C + (gated ? 3 : 2) * C * MLP;
    block += ((b->q.b || b->qkv.b) ? qd + 2 * kvd : 0) + (b->o.b ? C : 0) + (b->up.b ? MLP : 0) + (b->down.b ? C : 0);
    block += (b->post_attn_norm_w ? C : 0) + (b->post_mlp_norm_w ? C : 0);
    info->n_params = (size_t)c->n_vocab * C * (c->tied ? 1 : 2) + (size_t)d->n_pos_embed * C + norm +
                     (size_t)c->n_layer * block;
}

void pl_decoder_fuse(pl_decoder *d)
{
    const pl_decoder_config *c = &d->cfg;
    size_t C = (size_t)c->d_model, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    int qkv = c->qkv == PL_QKV_SEPARATE;
    for (int l = 0; l < c->n_layer; l++) {
        pl_decoder_block *b = &d->blocks[l];
        qkv = qkv && b->q.layout == PL_LAYOUT_OUT_IN && b->k.layout == PL_LAYOUT_OUT_IN &&
              b->v.layout == PL_LAYOUT_OUT_IN && b->k.w == b->q.w + qd * C && b->v.w == b->k.w + kvd * C &&
              (b->q.b ? b->k.b == b->q.b + qd && b->v.b == b->k.b + kvd : !b->k.b && !b->v.b);
        int gated = c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH;
        if (gated && b->gate.layout == PL_LAYOUT_OUT_IN && b->up.layout == PL_LAYOUT_OUT_IN && !b->gate.b &&
            !b->up.b && b->up.w == b->gate.w + (size_t)c->d_mlp * C)
            b->gate_up = (pl_dec_mat){b->gate.w, NULL, PL_LAYOUT_OUT_IN};
    }
    if (!qkv)
        return;
    for (int l = 0; l < c->n_layer; l++) {
        pl_decoder_block *b = &d->blocks[l];
        b->qkv = (pl_dec_mat){b->q.w, b->q.b, PL_LAYOUT_OUT_IN};
    }
    d->cfg.qkv = PL_QKV_FUSED_BLOCKS;
}

/* ------------------------------------------------------------ layer pieces */

typedef struct {
    float *h;       /* [R, C] normalised input of a sublayer */
    float *qkv;     /* [R, (H + 2 KVH) hd] a fused projection, or NULL */
    float *q;       /* [R, H*hd] (separate or per-head fused), or NULL */
    float *k, *v;   /* [R, KVH*hd] */
    float *att;     /* [R, H*hd] */
    float *o;       /* [R, C] attention output */
    float *a, *b;   /* [R, MLP] MLP hidden (gate, up; b: gated MLPs only) */
    float *mo;      /* [R, C] MLP output */
    float *scores;  /* [T, T] */
    float *rope;    /* [T, rot_dim] the rotary table of the positions in flight */
    void *block;
} scratch;

/* The q, k, v rows of a block's projection: views into scratch (row i of q at q + i*q_stride). */
typedef struct {
    float *q, *k, *v;
    size_t q_stride, kv_stride;
} qkv_view;

static int scratch_alloc(scratch *s, const pl_decoder *d, size_t R, int T)
{
    const pl_decoder_config *c = &d->cfg;
    size_t C = (size_t)c->d_model, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    size_t MLP = (size_t)c->d_mlp, fused = c->qkv != PL_QKV_SEPARATE ? qd + 2 * kvd : 0;
    size_t split = c->qkv != PL_QKV_FUSED_BLOCKS ? qd + 2 * kvd : 0; /* blocks are read in place */
    size_t gated = c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH ? MLP : 0; /* a gated MLP's up */
    size_t floats = R * (C + fused + split + qd + C + MLP + gated + C) + (size_t)T * T + (size_t)T * c->rot_dim;
    float *p = pl_malloc(floats * sizeof(float), "activations");
    if (!p)
        return PL_ERR;
    s->block = p;
    s->h = p, p += R * C;
    s->q = split ? p : NULL, p += split ? R * qd : 0;
    s->k = split ? p : NULL, p += split ? R * kvd : 0;
    s->v = split ? p : NULL, p += split ? R * kvd : 0;
    s->qkv = fused ? p : NULL, p += R * fused;
    s->att = p, p += R * qd;
    s->o = p, p += R * C;
    s->a = p, p += R * MLP;
    s->b = gated ? p : NULL, p += R * gated;
    s->mo = p, p += R * C;
    s->scores = p, p += (size_t)T * T;
    s->rope = p;
    return PL_OK;
}

static void norm(const pl_decoder_config *c, float *out, const float *in, const float *w, const float *b, int R)
{
    if (c->norm == PL_NORM_RMSNORM && c->norm_plus_one)
        pl_op_rmsnorm_1p(out, in, w, R, c->d_model, c->norm_eps);
    else if (c->norm == PL_NORM_RMSNORM)
        pl_op_rmsnorm(out, in, w, R, c->d_model, c->norm_eps);
    else
        pl_op_layernorm(out, in, w, b, R, c->d_model, c->norm_eps);
}

/* out[R, OUT] = in[R, IN] through W in its own layout (+ bias). */
static void apply(const pl_dec_mat *W, float *out, const float *in, int R, int IN, int OUT)
{
    if (W->layout == PL_LAYOUT_IN_OUT)
        pl_op_matmul(out, in, W->w, W->b, R, IN, OUT);
    else
        pl_op_linear(out, in, W->w, W->b, R, IN, OUT);
}

/* q, k, v of R rows of s->h (row i at position s->rope's i % PERIOD), queries and keys rotated. */
static qkv_view project_qkv(const pl_decoder *d, const pl_decoder_block *b, int R, int period, scratch *s)
{
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, H = c->n_head, KVH = c->n_kv_head, hd = c->head_dim, qd = H * hd, kvd = KVH * hd;
    qkv_view p = {s->q, s->k, s->v, (size_t)qd, (size_t)kvd};
    if (c->qkv == PL_QKV_SEPARATE) {
        apply(&b->q, s->q, s->h, R, C, qd);
        apply(&b->k, s->k, s->h, R, C, kvd);
        apply(&b->v, s->v, s->h, R, C, kvd);
    } else {
        size_t width = (size_t)qd + 2 * (size_t)kvd;
        apply(&b->qkv, s->qkv, s->h, R, C, (int)width);
        if (c->qkv == PL_QKV_FUSED_BLOCKS) /* [q | k | v]: strided views, no copy */
            p = (qkv_view){s->qkv, s->qkv + qd, s->qkv + qd + kvd, width, width};
        else /* per head: H = KVH */
            for (int i = 0; i < R; i++) /* per head [q, k, v] -> three [H*hd] rows */
                for (int j = 0; j < H; j++) {
                    const float *src = s->qkv + (size_t)i * 3 * qd + (size_t)j * 3 * hd;
                    memcpy(s->q + (size_t)i * qd + (size_t)j * hd, src, sizeof(float) * hd);
                    memcpy(s->k + (size_t)i * kvd + (size_t)j * hd, src + hd, sizeof(float) * hd);
                    memcpy(s->v + (size_t)i * kvd + (size_t)j * hd, src + 2 * hd, sizeof(float) * hd);
                }
    }
    if (c->rot_dim) {
        pl_op_rope(p.q, R, p.q_stride, H, hd, c->rot_dim, s->rope, period, c->rope_interleaved);
        pl_op_rope(p.k, R, p.kv_stride, KVH, hd, c->rot_dim, s->rope, period, c->rope_interleaved);
    }
    return p;
}

/* s->mo[R, C] = MLP of s->h. */
static void mlp(const pl_decoder_config *c, const pl_decoder_block *b, int R, scratch *s)
{
    int C = c->d_model, MLP = c->d_mlp;
    if ((c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH) && b->gate_up.w) {
        /* one sgemm into [R, 2 MLP] (s->a and s->b are adjacent); each row's gate half activated and
         * moved to row i of s->a (rows in order: a row's target never overlaps a later row's source) */
        size_t width = (size_t)MLP;
        apply(&b->gate_up, s->a, s->h, R, C, 2 * MLP);
        for (size_t i = 0; i < (size_t)R; i++) {
            float *row = s->a + 2 * width * i;
            if (c->mlp == PL_MLP_SWIGLU)
                pl_op_swiglu(row, row + width, width);
            else
                pl_op_geglu_tanh(row, row + width, width);
            memmove(s->a + width * i, row, sizeof(float) * width);
        }
    } else if (c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH) {
        apply(&b->gate, s->a, s->h, R, C, MLP);
        apply(&b->up, s->b, s->h, R, C, MLP);
        if (c->mlp == PL_MLP_SWIGLU)
            pl_op_swiglu(s->a, s->b, (size_t)R * MLP);
        else
            pl_op_geglu_tanh(s->a, s->b, (size_t)R * MLP);
    } else {
        apply(&b->up, s->a, s->h, R, C, MLP);
        if (c->mlp == PL_MLP_GELU_TANH)
            pl_op_gelu_tanh(s->a, (size_t)R * MLP);
        else
            pl_op_gelu_erf(s->a, (size_t)R * MLP);
    }
    apply(&b->down, s->mo, s->a, R, MLP, C);
    if (b->post_mlp_norm_w)
        norm(c, s->mo, s->mo, b->post_mlp_norm_w, NULL, R);
}

/* After attention (s->att): x[R, C] becomes the block's output, sequential or parallel. */
static void finish_block(const pl_decoder_config *c, const pl_decoder_block *b, float *x, int R, scratch *s)
{
    int C = c->d_model, qd = c->n_head * c->head_dim;
    size_t n = (size_t)R * C;
    apply(&b->o, s->o, s->att, R, qd, C);
    if (b->post_attn_norm_w)
        norm(c, s->o, s->o, b->post_attn_norm_w, NULL, R);
    if (c->parallel_residual) {
        norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
        mlp(c, b, R, s);
        pl_op_residual_add(x, s->o, n);
        pl_op_residual_add(x, s->mo, n);
    } else {
        pl_op_residual_add(x, s->o, n);
        norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
        mlp(c, b, R, s);
        pl_op_residual_add(x, s->mo, n);
    }
}

/* A mid-block hook point tapped in the full forward: in block LAYER, the activation at SITE of each
 * sequence's rows POS..POS+COUNT-1 (rows i*T + pos.. of N stacked sequences) is copied to
 * CAPTURE[N, COUNT, W] and/or replaced by PATCH[COUNT, W] (one sequence) before the block goes on. */
typedef struct {
    int layer, site, pos, T, N, count;
    const float *patch;
    float *capture;
} site_tap;

static void tap_at(const site_tap *t, int site, float *buf, int W)
{
    if (site != t->site)
        return;
    size_t n = (size_t)t->count * W;
    for (int i = 0; i < t->N; i++) {
        float *rows = buf + ((size_t)i * t->T + t->pos) * W;
        if (t->capture)
            memcpy(t->capture + (size_t)i * n, rows, sizeof(float) * n);
        if (t->patch)
            memcpy(rows, t->patch, sizeof(float) * n);
    }
}

/* finish_block with the hook points of TransformerLens's TransformerBlock.forward tapped
 * (transformer_lens/components/transformer_block.py): attn.hook_z is the attention's z before W_O
 * (abstract_attention.py), hook_attn_out comes after ln1_post (Gemma 2's post-attention norm: "so
 * hook_attn_out captures that which is added to the residual stream"), hook_resid_mid = resid_pre +
 * attn_out (sequential only), hook_mlp_out after ln2_post (apply_mlp). The same ops in the same order
 * as finish_block, kept apart so that the residual hooks' path is untouched. */
static void finish_block_at(const pl_decoder_config *c, const pl_decoder_block *b, float *x, int R, scratch *s,
                            const site_tap *t)
{
    int C = c->d_model, qd = c->n_head * c->head_dim;
    size_t n = (size_t)R * C;
    tap_at(t, PL_SITE_ATTN_Z, s->att, qd);
    apply(&b->o, s->o, s->att, R, qd, C);
    if (b->post_attn_norm_w)
        norm(c, s->o, s->o, b->post_attn_norm_w, NULL, R);
    tap_at(t, PL_SITE_ATTN_OUT, s->o, C);
    if (c->parallel_residual) { /* TL: resid_pre + attn_out + mlp_out, no hook_resid_mid */
        norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
        mlp(c, b, R, s);
        tap_at(t, PL_SITE_MLP_OUT, s->mo, C);
        pl_op_residual_add(x, s->o, n);
        pl_op_residual_add(x, s->mo, n);
    } else {
        pl_op_residual_add(x, s->o, n);
        tap_at(t, PL_SITE_RESID_MID, x, C);
        norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
        mlp(c, b, R, s);
        tap_at(t, PL_SITE_MLP_OUT, s->mo, C);
        pl_op_residual_add(x, s->mo, n);
    }
}

/* The fast path's end of block l from a mid-block SITE: rows x[R, C] hold resid_pre (one row per
 * variant, at the perturbed position), Y[R, W] the site's new activations; s->att holds the rows'
 * clean attention when SITE is hook_mlp_out (the only site after which the clean attention output is
 * still added). x becomes resid_post. */
static void finish_from_site(const pl_decoder_config *c, const pl_decoder_block *b, float *x, int R, scratch *s,
                             int site, const float *Y)
{
    int C = c->d_model, qd = c->n_head * c->head_dim;
    size_t n = (size_t)R * C;
    if (site == PL_SITE_ATTN_Z)
        memcpy(s->att, Y, sizeof(float) * (size_t)R * qd);
    if (site == PL_SITE_ATTN_Z || site == PL_SITE_MLP_OUT) {
        apply(&b->o, s->o, s->att, R, qd, C);
        if (b->post_attn_norm_w)
            norm(c, s->o, s->o, b->post_attn_norm_w, NULL, R);
    }
    if (site == PL_SITE_ATTN_OUT)
        memcpy(s->o, Y, sizeof(float) * n);
    if (c->parallel_residual) { /* hook_resid_mid was refused by pl_hook_point_parse */
        if (site == PL_SITE_MLP_OUT)
            memcpy(s->mo, Y, sizeof(float) * n);
        else {
            norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
            mlp(c, b, R, s);
        }
        pl_op_residual_add(x, s->o, n);
        pl_op_residual_add(x, s->mo, n);
        return;
    }
    if (site == PL_SITE_RESID_MID)
        memcpy(x, Y, sizeof(float) * n);
    else
        pl_op_residual_add(x, s->o, n);
    if (site == PL_SITE_MLP_OUT)
        memcpy(s->mo, Y, sizeof(float) * n);
    else {
        norm(c, s->h, x, b->norm2_w, b->norm2_b, R);
        mlp(c, b, R, s);
    }
    pl_op_residual_add(x, s->mo, n);
}

/* next-token logits[M, V] of final-residual rows x[M, C]. */
static int unembed(const void *weights, const float *x, int M, float *logits)
{
    const pl_decoder *d = weights;
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, V = c->n_vocab;
    float *h = pl_malloc(sizeof(float) * (size_t)M * C, "final norm");
    if (!h)
        return PL_ERR;
    norm(c, h, x, d->normf_w, d->normf_b, M);
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, d->unembed, C, h, 1, 0.0f, logits, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, V, C, 1.0f, h, C, d->unembed, C, 0.0f, logits, V);
    if (c->final_softcap > 0)
        pl_op_softcap(logits, (size_t)M * V, c->final_softcap);
    free(h);
    return PL_OK;
}

/* ------------------------------------------------------------ full forward */

/* Resid index 0 of N sequences of T tokens: x[N*T, C] = embed[token] (+ pos_embed[t]), times
 * embed_scale when set (a float product, as HF's Gemma2 multiplies by a float32 normalizer). */
static void embed(const pl_decoder *d, const int *tokens, size_t R, int T, float *x)
{
    size_t C = (size_t)d->cfg.d_model;
    if (d->pos_embed) /* learned positions, added in the order GPT-2 computes wte + wpe */
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++)
                x[r * C + c] = d->embed[(size_t)tokens[r] * C + c] + d->pos_embed[(r % T) * C + c];
    else /* positions enter by RoPE */
        for (size_t r = 0; r < R; r++)
            memcpy(x + r * C, d->embed + (size_t)tokens[r] * C, sizeof(float) * C);
    if (d->cfg.embed_scale != 0.0f)
        for (size_t i = 0; i < R * C; i++)
            x[i] *= d->cfg.embed_scale;
}

/* Block B's attention options (NULL when all are the defaults, the plain path). */
static const pl_attn_opts *attn_opts(const pl_decoder_config *c, const pl_decoder_block *b, pl_attn_opts *o)
{
    *o = (pl_attn_opts){c->attn_scale, c->attn_softcap, b->window};
    return o->scale > 0 || o->softcap > 0 || o->window > 0 ? o : NULL;
}

/* Attention of block l over each of the N sequences' T positions; the keys and values go to runs. */
static void attend_all(const pl_decoder_config *c, const pl_decoder_block *b, const qkv_view *p, int l, int N, int T,
                       pl_run *runs, scratch *s)
{
    pl_attn_opts o;
    const pl_attn_opts *opt = attn_opts(c, b, &o);
    int H = c->n_head, KVH = c->n_kv_head, hd = c->head_dim, qd = H * hd, kvd = KVH * hd;
    size_t Tkv = (size_t)T * kvd;
    for (int i = 0; i < N; i++) {
        const float *q = p->q + (size_t)i * T * p->q_stride;
        const float *k = p->k + (size_t)i * T * p->kv_stride, *v = p->v + (size_t)i * T * p->kv_stride;
        float *kc = runs[i].k + (size_t)l * Tkv, *vc = runs[i].v + (size_t)l * Tkv;
        for (int t = 0; t < T; t++) {
            memcpy(kc + (size_t)t * kvd, k + (size_t)t * p->kv_stride, sizeof(float) * kvd);
            memcpy(vc + (size_t)t * kvd, v + (size_t)t * p->kv_stride, sizeof(float) * kvd);
        }
        pl_op_causal_attention(s->att + (size_t)i * T * qd, q, p->q_stride, k, v, p->kv_stride, T, H, KVH, hd,
                               s->scores, opt);
    }
}

/* decoder_forward, with the mid-block point TAP (or NULL) tapped in its block. */
static int forward_tapped(const pl_model *model, const int *tokens, int N, int T, int stop, int patch_index,
                          int patch_pos, const float *patch, const site_tap *tap, pl_run *runs)
{
    const pl_decoder *d = model->weights;
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, L = c->n_layer, V = c->n_vocab, kvd = c->n_kv_head * c->head_dim;
    size_t TC = (size_t)T * C, R = (size_t)N * T;
    float *x = pl_malloc(sizeof(float) * R * C, "residual stream");
    scratch s = {0};
    if (!x || scratch_alloc(&s, d, R, T) != PL_OK || pl_runs_alloc(runs, N, T, C, L, V, kvd, stop) != PL_OK)
        goto fail;
    if (c->rot_dim)
        pl_op_rope_table(s.rope, c->inv_freq, c->rot_dim, 0, T);
    embed(d, tokens, R, T, x);

    for (int l = 0; l <= stop; l++) {
        if (patch && l == patch_index)
            memcpy(x + (size_t)patch_pos * C, patch, sizeof(float) * C);
        for (int i = 0; i < N; i++)
            memcpy(runs[i].resid + (size_t)l * TC, x + i * TC, sizeof(float) * TC);
        if (l == stop)
            break;
        const pl_decoder_block *b = &d->blocks[l];
        norm(c, s.h, x, b->norm1_w, b->norm1_b, (int)R);
        qkv_view p = project_qkv(d, b, (int)R, T, &s);
        attend_all(c, b, &p, l, N, T, runs, &s);
        if (tap && l == tap->layer)
            finish_block_at(c, b, x, (int)R, &s, tap);
        else
            finish_block(c, b, x, (int)R, &s);
    }
    if (stop == L && pl_runs_logits(runs, N, T, C, V, x, unembed, d) != PL_OK)
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

static int decoder_forward(const pl_model *model, const int *tokens, int N, int T, int stop, int patch_index,
                           int patch_pos, const float *patch, pl_run *runs)
{
    return forward_tapped(model, tokens, N, T, stop, patch_index, patch_pos, patch, NULL, runs);
}

static int decoder_forward_at(const pl_model *model, const int *tokens, int N, int T, int stop, pl_hook_point pt,
                              int pos, int count, const float *patch, float *capture, pl_run *runs)
{
    site_tap tap = {pt.layer, pt.site, pos, T, N, count, patch, capture};
    return forward_tapped(model, tokens, N, T, stop, -1, -1, NULL, &tap, runs);
}

/* ------------------------------------------------------------ fast path */

/* Attention of block l for the fast path's rows: variant v's n positions pos..T-1 attend to its
 * clean run's cached positions 0..pos-1 and to their own keys and values. */
static void attend_rows(const pl_decoder_config *c, const pl_decoder_block *b, const qkv_view *p, int l,
                        const pl_fast_rows *f, int pos, int T, scratch *s)
{
    pl_attn_opts o;
    const pl_attn_opts *opt = attn_opts(c, b, &o);
    int H = c->n_head, KVH = c->n_kv_head, hd = c->head_dim, qd = H * hd, kvd = KVH * hd, n = f->n;
    size_t Tkv = (size_t)T * kvd;
    for (int v = 0; v < f->M; v++) {
        const float *kc = f->clean_of[v]->k + (size_t)l * Tkv, *vc = f->clean_of[v]->v + (size_t)l * Tkv;
        const float *kr = p->k + (size_t)v * n * p->kv_stride, *vr = p->v + (size_t)v * n * p->kv_stride;
        for (int j = 0; j < n; j++) {
            size_t row = (size_t)v * n + j;
            pl_op_attend_one(s->att + row * qd, p->q + row * p->q_stride, kc, vc, pos, (size_t)kvd, kr, vr, j + 1,
                             p->kv_stride, H, KVH, hd, s->scores, opt);
        }
    }
}

/* Blocks RESID_INDEX..L-1 for the fast path's R rows in F (each variant's positions pos..T-1, n of
 * them), reading the residual at READ_INDEX on the way when READ is set. */
static void fast_blocks(const pl_decoder *d, pl_fast_rows *f, scratch *s, int resid_index, int pos, int T, int n,
                        size_t R, int read_index, float *read)
{
    const pl_decoder_config *c = &d->cfg;
    for (int l = resid_index; l < c->n_layer; l++) {
        const pl_decoder_block *b = &d->blocks[l];
        norm(c, s->h, f->x, b->norm1_w, b->norm1_b, (int)R);
        qkv_view p = project_qkv(d, b, (int)R, n, s);
        attend_rows(c, b, &p, l, f, pos, T, s);
        finish_block(c, b, f->x, (int)R, s);
        if (read && read_index == l + 1)
            pl_fast_rows_read(f, read);
    }
}

static int decoder_patch_eval_groups(const pl_model *model, const pl_run *const *cleans, const int *group_rows,
                                     int G, int M, int resid_index, int pos, const float *X, float *logits,
                                     int read_index, float *read)
{
    const pl_decoder *d = model->weights;
    const pl_decoder_config *c = &d->cfg;
    int kvd = c->n_kv_head * c->head_dim, T = cleans[0]->T;
    if (cleans[0]->kv_dim != kvd)
        return pl_fail("fast path: cached run has %d key/value floats per position, the model %d", cleans[0]->kv_dim,
                       kvd);

    /* Every variant carries positions pos..T-1 (n of them): rows v*n .. v*n + n-1. */
    int n = T - pos;
    size_t R = (size_t)M * n;
    pl_fast_rows f = {0};
    scratch s = {0};
    if (pl_fast_rows_init(&f, cleans, group_rows, G, M, resid_index, pos, X, read_index, read) != PL_OK)
        return PL_ERR;
    if (scratch_alloc(&s, d, R, T) != PL_OK) {
        pl_fast_rows_free(&f);
        return PL_ERR;
    }
    if (c->rot_dim)
        pl_op_rope_table(s.rope, c->inv_freq, c->rot_dim, pos, n); /* the variants' positions pos..T-1 */

    fast_blocks(d, &f, &s, resid_index, pos, T, n, R, read_index, read);
    free(s.block);
    int rc = PL_OK;
    if (logits) {
        pl_fast_rows_gather_last(&f);
        rc = unembed(d, f.x, M, logits);
    }
    pl_fast_rows_free(&f);
    return rc;
}
/* The fast path at a mid-block point of block l: each variant's row at POS starts from its clean
 * resid_pre (the cache), finishes block l from the site with X's row there (finish_from_site; at
 * hook_mlp_out the row's clean attention is recomputed first, over the cached keys and values), and
 * the resulting resid_post rows go through the resid fast path from l + 1. Other positions of block l
 * are unchanged: their keys and values come from resid_pre. */
static int decoder_patch_eval_groups_at(const pl_model *model, const pl_run *const *cleans, const int *group_rows,
                                        int G, int M, pl_hook_point pt, int pos, const float *X, float *logits,
                                        int read_index, float *read)
{
    const pl_decoder *d = model->weights;
    const pl_decoder_config *c = &d->cfg;
    const pl_decoder_block *b = &d->blocks[pt.layer];
    int C = c->d_model, T = cleans[0]->T;
    size_t TC = (size_t)T * C;
    pl_fast_rows f = {0};
    scratch s = {0};
    f.M = M, f.n = 1, f.C = C;
    f.x = pl_malloc(sizeof(float) * (size_t)M * C, "fast-path rows");
    f.clean_of = pl_malloc(sizeof(pl_run *) * (size_t)M, "fast-path groups");
    int rc = PL_ERR;
    if (!f.x || !f.clean_of || scratch_alloc(&s, d, (size_t)M, T) != PL_OK)
        goto done;
    for (int g = 0, v = 0; g < G; g++)
        for (int i = 0; i < group_rows[g]; i++, v++) {
            f.clean_of[v] = cleans[g];
            memcpy(f.x + (size_t)v * C, cleans[g]->resid + (size_t)pt.layer * TC + (size_t)pos * C,
                   sizeof(float) * C);
        }
    if (pt.site == PL_SITE_MLP_OUT) {
        if (c->rot_dim)
            pl_op_rope_table(s.rope, c->inv_freq, c->rot_dim, pos, 1);
        norm(c, s.h, f.x, b->norm1_w, b->norm1_b, M);
        qkv_view p = project_qkv(d, b, M, 1, &s);
        attend_rows(c, b, &p, pt.layer, &f, pos, T, &s);
    }
    finish_from_site(c, b, f.x, M, &s, pt.site, X);
    rc = decoder_patch_eval_groups(model, cleans, group_rows, G, M, pt.layer + 1, pos, f.x, logits, read_index,
                                   read);
done:
    free(s.block);
    pl_fast_rows_free(&f);
    return rc;
}

/* ln_final.hook_normalized of rows x[M, C], in place: the final norm without its weight (and bias),
 * as TransformerLens hooks it (transformer_lens/components/layer_norm.py, rms_norm.py: hook_normalized
 * is x / scale, before "* self.w (+ self.b)"; Gemma's (1 + w) is a weight too). */
static int decoder_final_normalized(const pl_model *model, float *x, int M)
{
    const pl_decoder_config *c = &((const pl_decoder *)model->weights)->cfg;
    int C = c->d_model;
    float *one = pl_malloc(sizeof(float) * (size_t)C, "unit weights"), *zero = pl_calloc((size_t)C, sizeof(float),
                                                                                         "zero bias");
    if (!one || !zero) {
        free(one);
        free(zero);
        return PL_ERR;
    }
    for (int i = 0; i < C; i++)
        one[i] = 1.0f;
    if (c->norm == PL_NORM_LAYERNORM)
        pl_op_layernorm(x, x, one, zero, M, C, c->norm_eps);
    else
        pl_op_rmsnorm(x, x, one, M, C, c->norm_eps);
    free(one);
    free(zero);
    return PL_OK;
}


/* Whole contexts (pl_patch_eval_positions): the loop of decoder_patch_eval_groups over rows p0..T-1
 * of each variant, P of them patched; the outputs are the P patched rows. A loop of its own (not a
 * shared helper) so the one-position path above stays exactly as it was. */
static int decoder_patch_eval_positions(const pl_model *model, const pl_run *const *cleans, const int *group_rows,
                                        int G, int M, int resid_index, const int *positions, int P, const float *X,
                                        float *logits, int read_index, float *read)
{
    const pl_decoder *d = model->weights;
    const pl_decoder_config *c = &d->cfg;
    int kvd = c->n_kv_head * c->head_dim, T = cleans[0]->T, pos = positions[0], n = T - pos;
    if (cleans[0]->kv_dim != kvd)
        return pl_fail("fast path: cached run has %d key/value floats per position, the model %d", cleans[0]->kv_dim,
                       kvd);
    size_t R = (size_t)M * n;
    int *offsets = pl_malloc(sizeof(int) * (size_t)P, "perturbed positions");
    pl_fast_rows f = {0};
    scratch s = {0};
    if (!offsets)
        return PL_ERR;
    for (int j = 0; j < P; j++)
        offsets[j] = positions[j] - pos;
    int rc = pl_fast_rows_init_positions(&f, cleans, group_rows, G, M, resid_index, positions, offsets, P, X,
                                         read_index, read);
    if (rc == PL_OK)
        rc = scratch_alloc(&s, d, R, T);
    if (rc == PL_OK && c->rot_dim)
        pl_op_rope_table(s.rope, c->inv_freq, c->rot_dim, pos, n);
    if (rc == PL_OK)
        fast_blocks(d, &f, &s, resid_index, pos, T, n, R, read_index, read);
    free(s.block);
    if (rc == PL_OK && logits) {
        pl_fast_rows_gather_last(&f); /* the M*P patched rows */
        rc = unembed(d, f.x, M * P, logits);
    }
    pl_fast_rows_free(&f);
    free(offsets);
    return rc;
}

/* Whole contexts at a mid-block point of block l (pl_patch_eval_positions_at): the one-position
 * design of decoder_patch_eval_groups_at over P positions. Each variant's P perturbed rows (row
 * v*P + j at POSITIONS[j]) start from their clean resid_pre and finish block l from the site with X's
 * rows there (finish_from_site; at hook_mlp_out the rows' clean attention is recomputed first, each
 * over the cached keys before it and its own); the resulting resid_post rows then replace those
 * positions at resid index l + 1 in the whole-context fast path, which takes every other position
 * p0..T-1 from the clean run. That is exact: in block l a perturbation at a mid-block site changes
 * no other position (the block's keys and values come from resid_pre, and attn.hook_z is after the
 * attention's mixing, so z at one position is that position's attention output alone). */
static int decoder_patch_eval_positions_at(const pl_model *model, const pl_run *const *cleans,
                                           const int *group_rows, int G, int M, pl_hook_point pt,
                                           const int *positions, int P, const float *X, float *logits,
                                           int read_index, float *read)
{
    const pl_decoder *d = model->weights;
    const pl_decoder_config *c = &d->cfg;
    const pl_decoder_block *b = &d->blocks[pt.layer];
    int C = c->d_model, T = cleans[0]->T, kvd = c->n_kv_head * c->head_dim, qd = c->n_head * c->head_dim;
    size_t TC = (size_t)T * C, R = (size_t)M * P;
    pl_fast_rows f = {0};
    scratch s = {0};
    int rc = PL_ERR;
    if (cleans[0]->kv_dim != kvd)
        return pl_fail("fast path: cached run has %d key/value floats per position, the model %d", cleans[0]->kv_dim,
                       kvd);
    /* f: M variants of P rows each (only for the rows and their clean runs: not a pl_fast_rows_init layout) */
    if (pl_fast_rows_alloc(&f, cleans, group_rows, G, M, P, C) != PL_OK || scratch_alloc(&s, d, R, T) != PL_OK)
        goto done;
    for (int v = 0; v < M; v++)
        for (int j = 0; j < P; j++)
            memcpy(f.x + ((size_t)v * P + j) * C, f.clean_of[v]->resid + (size_t)pt.layer * TC +
                   (size_t)positions[j] * C, sizeof(float) * C);
    if (pt.site == PL_SITE_MLP_OUT) { /* the rows' clean attention output, added before the MLP's */
        pl_attn_opts o;
        const pl_attn_opts *opt = attn_opts(c, b, &o);
        for (int j = 0; c->rot_dim && j < P; j++) /* table row j: position positions[j] (period P) */
            pl_op_rope_table(s.rope + (size_t)j * c->rot_dim, c->inv_freq, c->rot_dim, positions[j], 1);
        norm(c, s.h, f.x, b->norm1_w, b->norm1_b, (int)R);
        qkv_view p = project_qkv(d, b, (int)R, P, &s);
        size_t Tkv = (size_t)T * kvd;
        for (size_t row = 0; row < R; row++) {
            const pl_run *cl = f.clean_of[row / P];
            pl_op_attend_one(s.att + row * qd, p.q + row * p.q_stride, cl->k + (size_t)pt.layer * Tkv,
                             cl->v + (size_t)pt.layer * Tkv, positions[row % P], (size_t)kvd,
                             p.k + row * p.kv_stride, p.v + row * p.kv_stride, 1, p.kv_stride, c->n_head,
                             c->n_kv_head, c->head_dim, s.scores, opt);
        }
    }
    finish_from_site(c, b, f.x, (int)R, &s, pt.site, X);
    rc = decoder_patch_eval_positions(model, cleans, group_rows, G, M, pt.layer + 1, positions, P, f.x, logits,
                                      read_index, read);
done:
    free(s.block);
    pl_fast_rows_free(&f);
    return rc;
}
/* ------------------------------------------------------------ FLOP counts */

/* Matmul FLOPs of one block for n rows (two per multiply-add): q, k, v, o and the MLP's two or
 * three matrices. */
static double block_matmul_flops(const pl_decoder_config *c, double n)
{
    double C = c->d_model, qd = (double)c->n_head * c->head_dim, kvd = (double)c->n_kv_head * c->head_dim;
    double MLP = c->d_mlp;
    int gated = c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH;
    return 2.0 * n * (C * qd + 2.0 * C * kvd + qd * C + (gated ? 3.0 : 2.0) * C * MLP);
}

/* Attention FLOPs of block b for query positions first..last-1: q.k and p.v over the t+1 keys (at
 * most its window), per query head. */
static double attention_flops(const pl_decoder_config *c, const pl_decoder_block *b, int first, int last)
{
    double f = 0.0, qd = (double)c->n_head * c->head_dim;
    for (int t = first; t < last; t++)
        f += 4.0 * qd * (b->window > 0 && t + 1 > b->window ? b->window : t + 1);
    return f;
}

static double decoder_forward_flops(const pl_model *m, int T)
{
    const pl_decoder *d = m->weights;
    const pl_decoder_config *c = &d->cfg;
    double f = 2.0 * c->d_model * c->n_vocab;
    for (int l = 0; l < c->n_layer; l++)
        f += block_matmul_flops(c, T) + attention_flops(c, &d->blocks[l], 0, T);
    return f;
}

static double decoder_patch_flops(const pl_model *m, int T, int resid_index, int pos)
{
    const pl_decoder *d = m->weights;
    const pl_decoder_config *c = &d->cfg;
    double f = 2.0 * c->d_model * c->n_vocab;
    for (int l = resid_index; l < c->n_layer; l++)
        f += block_matmul_flops(c, T - pos) + attention_flops(c, &d->blocks[l], pos, T);
    return f;
}

/* The `plateau info` lines of the options only Gemma 2 sets (none for the other families). */
static void describe_gemma(const pl_decoder *d, FILE *out)
{
    const pl_decoder_config *c = &d->cfg;
    if (c->norm_plus_one)
        fprintf(out, "rmsnorm_weight      1 + w (Gemma)\n");
    if (d->blocks[0].post_attn_norm_w || d->blocks[0].post_mlp_norm_w)
        fprintf(out, "block_norms         pre- and post-attention, pre- and post-feed-forward\n");
    if (c->embed_scale != 0.0f)
        fprintf(out, "embedding_scale     %.9g\n", (double)c->embed_scale);
    if (c->attn_scale > 0)
        fprintf(out, "attention_scale     %.9g (1/sqrt(head_dim) = %.9g)\n", (double)c->attn_scale,
                1.0 / sqrt((double)c->head_dim));
    if (c->attn_softcap > 0)
        fprintf(out, "attn_softcap        %g (scores = c tanh(scores / c))\n", (double)c->attn_softcap);
    if (c->final_softcap > 0)
        fprintf(out, "final_softcap       %g (logits = c tanh(logits / c))\n", (double)c->final_softcap);
    int windowed = 0, w = 0;
    for (int l = 0; l < c->n_layer; l++)
        windowed += d->blocks[l].window > 0, w = d->blocks[l].window > 0 ? d->blocks[l].window : w;
    if (windowed) {
        char layers[256] = "";
        size_t len = 0;
        for (int l = 0; l < c->n_layer && len < sizeof layers - 8; l++)
            if (d->blocks[l].window > 0)
                len += (size_t)snprintf(layers + len, sizeof layers - len, "%s%d", len ? ", " : "", l);
        fprintf(out, "sliding_window      %d keys on %d of %d layers (%s; computed exactly)\n", w, windowed, c->n_layer,
                len < sizeof layers - 8 ? layers : "...");
    }
}

static void decoder_describe(const pl_model *m, FILE *out)
{
    const pl_decoder *d = m->weights;
    const pl_decoder_config *c = &d->cfg;
    static const char *mlp_name[] = {"swiglu (silu gate)", "gelu (exact erf)", "gelu (tanh, GPT-2's gelu_new)",
                                     "geglu (tanh-GELU gate)"};
    static const char *qkv_name[] = {"", ", fused q, k, v per head", ", fused [q | k | v]"};
    fprintf(out, "attention           %s (%d query heads, %d key/value heads%s)\n",
            c->n_kv_head == c->n_head ? "multi-head" : "grouped-query", c->n_head, c->n_kv_head, qkv_name[c->qkv]);
    fprintf(out, "norm_eps            %g\n", (double)c->norm_eps);
    fprintf(out, "mlp                 %s%s\n", mlp_name[c->mlp], d->blocks[0].gate_up.w ? ", fused [gate | up]" : "");
    fprintf(out, "residual            %s\n", c->parallel_residual ? "parallel (x + attn(ln1 x) + mlp(ln2 x))"
                                                                   : "sequential");
    if (d->pos_embed)
        fprintf(out, "positions           learned (%d position embeddings)\n", d->n_pos_embed);
    if (c->rot_dim)
        fprintf(out, "rotary              %d of %d dims per head, %s\n", c->rot_dim, c->head_dim,
                c->rope_interleaved ? "interleaved pairs (llama2.c)" : "rotate-half (HF)");
    fprintf(out, "tied_embeddings     %s\n", c->tied ? "yes" : "no");
    describe_gemma(d, out);
}

static const pl_family_ops decoder_ops = {
    .describe = decoder_describe,
    .forward = decoder_forward,
    .patch_eval_groups = decoder_patch_eval_groups,
    .forward_at = decoder_forward_at,
    .patch_eval_groups_at = decoder_patch_eval_groups_at,
    .final_normalized = decoder_final_normalized,
    .patch_eval_positions = decoder_patch_eval_positions,
    .patch_eval_positions_at = decoder_patch_eval_positions_at,
    .forward_flops = decoder_forward_flops,
    .patch_flops = decoder_patch_flops,
    .free_weights = decoder_free,
    .patch_jvp_groups = pl_decoder_patch_jvp_groups,
    .patch_vjp_groups = pl_decoder_patch_vjp_groups,
    .patch_jvp_groups_at = pl_decoder_patch_jvp_groups_at,
    .patch_vjp_groups_at = pl_decoder_patch_vjp_groups_at,
    .patch_jvp_positions = pl_decoder_patch_jvp_positions,
    .patch_vjp_positions = pl_decoder_patch_vjp_positions,
    .patch_jvp_positions_at = pl_decoder_patch_jvp_positions_at,
    .patch_vjp_positions_at = pl_decoder_patch_vjp_positions_at,
    .patch_jvp_flops = pl_decoder_patch_jvp_flops,
    .patch_vjp_flops = pl_decoder_patch_vjp_flops,
};
