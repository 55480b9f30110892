/* Exact derivatives of the decoder's fast path (plateau/grad.h; decoder.h for the model): a forward
 * over the fast path's rows that keeps each block's activations (a tape), then either tangents
 * propagated block by block alongside it (JVP) or cotangents propagated back from the readouts
 * (VJP). One function per op and direction, in the style of llm.c's train_gpt2.c (layernorm_backward,
 * attention_backward, ...), but only with respect to the activations: no weight gradients.
 *
 * Rows as in decoder.c's fast path: variant v carries positions pos..T-1 (n of them) as rows
 * v*n .. v*n + n-1; positions before pos are the clean run's cached keys and values, constants here.
 * The forward repeats decoder.c's arithmetic (the same ops, the same float/double choices), so its
 * logits equal pl_patch_eval_groups' up to the last bits; q, k, v are kept contiguous per row and the
 * attention of the perturbed queries is recomputed here to keep its probabilities. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../ops.h"
#include "decoder.h"
#include "plateau/error.h"

/* One block's saved activations over R rows: what the derivatives of its ops read (the inputs of
 * the norms and nonlinearities; no matmul input, as no weight gradient is taken). */
typedef struct {
    float *x;      /* [R, C] block input */
    float *q;      /* [R, qd] rotated queries */
    float *k, *v;  /* [R, kvd] the rows' own keys (rotated) and values */
    float *P;      /* [R, H, T] attention probabilities over key positions 0..T-1 (0 outside) */
    float *S;      /* [R, H, T] soft-capped scores (attn_softcap only, else NULL) */
    float *o;      /* [R, C] o projection before post_attn_norm */
    float *x1;     /* [R, C] norm_2's input: x + o (sequential), x (parallel) */
    float *a, *b;  /* [R, MLP] gate (or up) pre-activation; gated MLPs: up (else NULL) */
    float *mo;     /* [R, C] down projection before post_mlp_norm */
} tape;

/* Scratch of the derivative passes over R rows. */
typedef struct {
    float *qkv;              /* [R, qd + 2 kvd] a fused projection / its gradient */
    float *dq, *dk, *dv;     /* [R, qd], [R, kvd] */
    float *datt, *dh, *dmid; /* [R, qd], [R, C], [R, C] */
    float *da, *db;          /* [R, MLP] */
    float *rope, *rope_t;    /* [n, rot_dim] rotation table and its inverse (sin negated) */
    void *block;
} grad_scratch;

typedef struct {
    const pl_decoder *d;
    const pl_fast_rows *f;
    int pos, T, n, R;
    int C, H, KVH, hd, qd, kvd, MLP, gated;
} ctx;

static ctx make_ctx(const pl_decoder *d, const pl_fast_rows *f, int pos, int T)
{
    const pl_decoder_config *c = &d->cfg;
    ctx x = {d, f, pos, T, T - pos, f->M * (T - pos), c->d_model, c->n_head, c->n_kv_head, c->head_dim,
             c->n_head * c->head_dim, c->n_kv_head * c->head_dim, c->d_mlp,
             c->mlp == PL_MLP_SWIGLU || c->mlp == PL_MLP_GEGLU_TANH};
    return x;
}

static size_t tape_floats(const ctx *x)
{
    size_t R = (size_t)x->R, cap = x->d->cfg.attn_softcap > 0;
    return R * (4 * (size_t)x->C + (size_t)x->qd + 2 * (size_t)x->kvd + (1 + (size_t)x->gated) * x->MLP +
                (1 + cap) * (size_t)x->H * x->T);
}

static void tape_carve(const ctx *x, tape *t, float *p)
{
    size_t R = (size_t)x->R, C = (size_t)x->C, HT = (size_t)x->H * x->T;
    t->x = p, p += R * C;
    t->q = p, p += R * x->qd;
    t->k = p, p += R * x->kvd;
    t->v = p, p += R * x->kvd;
    t->P = p, p += R * HT;
    t->S = x->d->cfg.attn_softcap > 0 ? p : NULL, p += t->S ? R * HT : 0;
    t->o = p, p += R * C;
    t->x1 = p, p += R * C;
    t->a = p, p += R * x->MLP;
    t->b = x->gated ? p : NULL, p += x->gated ? R * x->MLP : 0;
    t->mo = p;
}

static int scratch_new(const ctx *x, grad_scratch *s)
{
    size_t R = (size_t)x->R, rot = (size_t)x->d->cfg.rot_dim * x->n;
    size_t floats = R * ((size_t)x->qd + 2 * x->kvd) * 2 + R * ((size_t)x->qd + 2 * x->C + 2 * (size_t)x->MLP) + 2 * rot;
    float *p = pl_malloc(sizeof(float) * floats, "derivative scratch");
    if (!p)
        return PL_ERR;
    s->block = p;
    s->qkv = p, p += R * (x->qd + 2 * x->kvd);
    s->dq = p, p += R * x->qd;
    s->dk = p, p += R * x->kvd;
    s->dv = p, p += R * x->kvd;
    s->datt = p, p += R * x->qd;
    s->dh = p, p += R * x->C;
    s->dmid = p, p += R * x->C;
    s->da = p, p += R * x->MLP;
    s->db = p, p += R * x->MLP;
    s->rope = p, p += rot;
    s->rope_t = p;
    const pl_decoder_config *c = &x->d->cfg;
    if (c->rot_dim) {
        pl_op_rope_table(s->rope, c->inv_freq, c->rot_dim, x->pos, x->n);
        memcpy(s->rope_t, s->rope, sizeof(float) * rot);
        for (size_t i = 1; i < rot; i += 2) /* R(-theta) = R(theta)^T: the rotation's transpose */
            s->rope_t[i] = -s->rope_t[i];
    }
    return PL_OK;
}

/* ------------------------------------------------------------ matrices */

/* out[R, OUT] = in[R, IN] through W (+ bias), as decoder.c's apply. */
static void mat_fwd(const pl_dec_mat *W, float *out, const float *in, int R, int IN, int OUT)
{
    if (W->layout == PL_LAYOUT_IN_OUT)
        pl_op_matmul(out, in, W->w, W->b, R, IN, OUT);
    else
        pl_op_linear(out, in, W->w, W->b, R, IN, OUT);
}

/* y[len] (= or += by BETA) A x for a single row: sgemv, as the forward's ops take it for one row
 * (OpenBLAS's sgemm is several times slower there). y is zeroed first when BETA = 0 so that no
 * uninitialised value can reach it through a 0 * NaN. */
static void one_row(int trans, int rows, int cols, const float *A, const float *x, float beta, float *y, int len)
{
    if (beta == 0.0f)
        memset(y, 0, sizeof(float) * (size_t)len);
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, 1.0f, A, cols, x, 1, beta, y, 1);
}

/* Tangent: dout[R, OUT] = din[R, IN] through W, no bias (BETA 1: added to dout). */
static void mat_jvp(const pl_dec_mat *W, float *dout, const float *din, int R, int IN, int OUT, float beta)
{
    int in_out = W->layout == PL_LAYOUT_IN_OUT;
    if (R == 1)
        one_row(in_out, in_out ? IN : OUT, in_out ? OUT : IN, W->w, din, beta, dout, OUT);
    else if (in_out) /* W[IN, OUT] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, OUT, IN, 1.0f, din, IN, W->w, OUT, beta, dout, OUT);
    else /* W[OUT, IN] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OUT, IN, 1.0f, din, IN, W->w, IN, beta, dout, OUT);
}

/* Cotangent: gin[R, IN] (= or += by BETA) gout[R, OUT] through W transposed. */
static void mat_vjp(const pl_dec_mat *W, float *gin, const float *gout, int R, int IN, int OUT, float beta)
{
    int in_out = W->layout == PL_LAYOUT_IN_OUT;
    if (R == 1)
        one_row(!in_out, in_out ? IN : OUT, in_out ? OUT : IN, W->w, gout, beta, gin, IN);
    else if (in_out)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, IN, OUT, 1.0f, gout, OUT, W->w, OUT, beta, gin, IN);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IN, OUT, 1.0f, gout, OUT, W->w, IN, beta, gin, IN);
}

/* ------------------------------------------------------------ norms */

static void norm_fwd(const pl_decoder_config *c, float *out, const float *in, const float *w, const float *b, int R)
{
    if (c->norm == PL_NORM_RMSNORM && c->norm_plus_one)
        pl_op_rmsnorm_1p(out, in, w, R, c->d_model, c->norm_eps);
    else if (c->norm == PL_NORM_RMSNORM)
        pl_op_rmsnorm(out, in, w, R, c->d_model, c->norm_eps);
    else
        pl_op_layernorm(out, in, w, b, R, c->d_model, c->norm_eps);
}

/* The norm's Jacobian at input row x[C] is diag(w') A with A symmetric:
 *   RMSNorm:   A = r (I - r^2 x x^T / C),                 r = rsqrt(mean(x^2) + eps)
 *   LayerNorm: A = r (I - 1 1^T / C - xh xh^T / C),       xh = (x - mean) r
 * w' = w, or (1 + w) in fp32 (norm_plus_one). DIR 0 (JVP): out = w' (A u); DIR 1 (VJP): out = A (w' u).
 * r and the mean as the forward rounds them (float); the dot products in double. OUT may alias U. */
static void norm_deriv(const pl_decoder_config *c, float *out, const float *in, const float *w, const float *u,
                       int R, int dir)
{
    int C = c->d_model, ln = c->norm == PL_NORM_LAYERNORM;
    for (int i = 0; i < R; i++) {
        const float *x = in + (size_t)i * C, *ui = u + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double mean = 0.0, var = 0.0; /* RMSNorm: mean 0, var = mean(x^2), as pl_op_rmsnorm's ss / C */
        for (int j = 0; ln && j < C; j++)
            mean += x[j];
        mean /= C;
        for (int j = 0; j < C; j++)
            var += ((double)x[j] - mean) * ((double)x[j] - mean);
        double r = (float)(1.0 / sqrt(var / C + c->norm_eps)), fmean = (float)mean, su = 0.0, sxu = 0.0;
        for (int j = 0; j < C; j++) {
            double wj = c->norm_plus_one ? (double)(1.0f + w[j]) : (double)w[j];
            double uj = dir ? ui[j] * wj : ui[j];
            su += uj;
            sxu += ((double)x[j] - fmean) * r * uj;
        }
        for (int j = 0; j < C; j++) {
            double wj = c->norm_plus_one ? (double)(1.0f + w[j]) : (double)w[j];
            double uj = dir ? ui[j] * wj : ui[j], xh = ((double)x[j] - fmean) * r;
            double a = r * (uj - (ln ? su / C : 0.0) - xh * sxu / C);
            y[j] = (float)(dir ? a : a * wj);
        }
    }
}

/* ------------------------------------------------------------ attention */

/* Key/value row S (0..pos+j) of row r = v*n + j: the clean cache before pos, the variant's own rows
 * after. */
static const float *key_row(const ctx *x, const float *cache, const float *own, int l, int r, int s)
{
    int v = r / x->n;
    if (s < x->pos)
        return cache + ((size_t)l * x->T + s) * x->kvd;
    return own + ((size_t)v * x->n + (s - x->pos)) * x->kvd;
}

static int window_lo(const pl_decoder_block *b, int n_keys)
{
    return b->window > 0 && n_keys > b->window ? n_keys - b->window : 0;
}

/* att[R, qd] = attention of the rows' queries, as pl_op_attend_one computes it (float dots, scale,
 * soft-cap, expf, double sum), keeping the probabilities t->P (and capped scores t->S). */
static void attn_fwd(const ctx *x, const pl_decoder_block *b, int l, tape *t, float *att)
{
    const pl_decoder_config *c = &x->d->cfg;
    float scale = c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)x->hd), cap = c->attn_softcap;
    int group = x->H / x->KVH, hd = x->hd;
    for (int r = 0; r < x->R; r++) {
        const pl_run *cl = x->f->clean_of[r / x->n];
        int nk = x->pos + r % x->n + 1, lo = window_lo(b, nk);
        for (int h = 0; h < x->H; h++) {
            const float *qh = t->q + (size_t)r * x->qd + (size_t)h * hd;
            float *P = t->P + ((size_t)r * x->H + h) * x->T, maxv = -INFINITY;
            size_t off = (size_t)(h / group) * hd;
            memset(P, 0, sizeof(float) * x->T);
            for (int s = lo; s < nk; s++) {
                const float *k = key_row(x, cl->k, t->k, l, r, s) + off;
                float dot = 0.0f;
                for (int i = 0; i < hd; i++)
                    dot += qh[i] * k[i];
                P[s] = dot * scale;
                if (cap > 0)
                    P[s] = cap * tanhf(P[s] / cap);
                if (t->S)
                    t->S[((size_t)r * x->H + h) * x->T + s] = P[s];
                maxv = P[s] > maxv ? P[s] : maxv;
            }
            double sum = 0.0;
            for (int s = lo; s < nk; s++)
                sum += P[s] = expf(P[s] - maxv);
            float inv = (float)(1.0 / sum), *oh = att + (size_t)r * x->qd + (size_t)h * hd;
            memset(oh, 0, sizeof(float) * hd);
            for (int s = lo; s < nk; s++) {
                const float *vv = key_row(x, cl->v, t->v, l, r, s) + off;
                P[s] *= inv;
                for (int i = 0; i < hd; i++)
                    oh[i] += P[s] * vv[i];
            }
        }
    }
}

/* d score / d (scaled dot) at a soft-capped score s: 1 - tanh^2 = 1 - (s / cap)^2. */
static double cap_slope(const tape *t, size_t at, float cap)
{
    if (!t->S)
        return 1.0;
    double th = t->S[at] / cap;
    return 1.0 - th * th;
}

/* Tangent: datt[R, qd] from dq[R, qd] and the own rows' dk, dv[R, kvd] (the cache is constant):
 * ds = scale (dq.k + q.dk) cap', dP = P (ds - P.ds), datt = sum dP v + P dv. */
static void attn_jvp(const ctx *x, const pl_decoder_block *b, int l, const tape *t, const float *dq,
                     const float *dk, const float *dv, float *datt, double *ds)
{
    const pl_decoder_config *c = &x->d->cfg;
    double scale = c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)x->hd);
    int group = x->H / x->KVH, hd = x->hd;
    for (int r = 0; r < x->R; r++) {
        const pl_run *cl = x->f->clean_of[r / x->n];
        int nk = x->pos + r % x->n + 1, lo = window_lo(b, nk);
        for (int h = 0; h < x->H; h++) {
            size_t qo = (size_t)r * x->qd + (size_t)h * hd, off = (size_t)(h / group) * hd;
            size_t po = ((size_t)r * x->H + h) * x->T;
            const float *P = t->P + po;
            double mean = 0.0;
            for (int s = lo; s < nk; s++) {
                const float *k = key_row(x, cl->k, t->k, l, r, s) + off;
                double acc = 0.0;
                for (int i = 0; i < hd; i++)
                    acc += (double)dq[qo + i] * k[i];
                if (s >= x->pos)
                    for (int i = 0; i < hd; i++)
                        acc += (double)t->q[qo + i] * key_row(x, NULL, dk, l, r, s)[off + i];
                ds[s] = acc * scale * cap_slope(t, po + s, c->attn_softcap);
                mean += P[s] * ds[s];
            }
            float *o = datt + qo;
            memset(o, 0, sizeof(float) * hd);
            for (int s = lo; s < nk; s++) {
                float dP = (float)(P[s] * (ds[s] - mean));
                const float *vv = key_row(x, cl->v, t->v, l, r, s) + off;
                for (int i = 0; i < hd; i++)
                    o[i] += dP * vv[i];
                if (s >= x->pos) {
                    const float *dvv = key_row(x, NULL, dv, l, r, s) + off;
                    for (int i = 0; i < hd; i++)
                        o[i] += P[s] * dvv[i];
                }
            }
        }
    }
}

/* Cotangent: from gatt[R, qd], gq[R, qd] (=) and the own rows' gk, gv[R, kvd] (=, accumulated over
 * the later rows that attend to them): dP = gatt.v, dS = P (dP - P.dP) cap' scale,
 * gq = sum dS k, gk += dS q, gv += P gatt. */
static void attn_vjp(const ctx *x, const pl_decoder_block *b, int l, const tape *t, const float *gatt, float *gq,
                     float *gk, float *gv, double *dS)
{
    const pl_decoder_config *c = &x->d->cfg;
    double scale = c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)x->hd);
    int group = x->H / x->KVH, hd = x->hd;
    memset(gq, 0, sizeof(float) * (size_t)x->R * x->qd);
    memset(gk, 0, sizeof(float) * (size_t)x->R * x->kvd);
    memset(gv, 0, sizeof(float) * (size_t)x->R * x->kvd);
    for (int r = 0; r < x->R; r++) {
        const pl_run *cl = x->f->clean_of[r / x->n];
        int nk = x->pos + r % x->n + 1, lo = window_lo(b, nk);
        for (int h = 0; h < x->H; h++) {
            size_t qo = (size_t)r * x->qd + (size_t)h * hd, off = (size_t)(h / group) * hd;
            size_t po = ((size_t)r * x->H + h) * x->T;
            const float *P = t->P + po, *go = gatt + qo;
            double mean = 0.0;
            for (int s = lo; s < nk; s++) {
                const float *vv = key_row(x, cl->v, t->v, l, r, s) + off;
                double acc = 0.0;
                for (int i = 0; i < hd; i++)
                    acc += (double)go[i] * vv[i];
                dS[s] = acc;
                mean += P[s] * acc;
            }
            for (int s = lo; s < nk; s++) {
                float g = (float)(P[s] * (dS[s] - mean) * cap_slope(t, po + s, c->attn_softcap) * scale);
                const float *k = key_row(x, cl->k, t->k, l, r, s) + off;
                for (int i = 0; i < hd; i++)
                    gq[qo + i] += g * k[i];
                if (s >= x->pos) {
                    float *gkk = (float *)key_row(x, NULL, gk, l, r, s) + off;
                    float *gvv = (float *)key_row(x, NULL, gv, l, r, s) + off;
                    for (int i = 0; i < hd; i++) {
                        gkk[i] += g * t->q[qo + i];
                        gvv[i] += P[s] * go[i];
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------ projections of q, k, v */

/* Split a fused row block qkv[R, qd + 2 kvd] into q, k, v (DIR 0) or pack them into it (DIR 1). */
static void qkv_split(const ctx *x, int layout, float *qkv, float *q, float *k, float *v, int dir)
{
    size_t w = (size_t)x->qd + 2 * (size_t)x->kvd, hd = (size_t)x->hd;
    for (int r = 0; r < x->R; r++) {
        float *row = qkv + (size_t)r * w, *qr = q + (size_t)r * x->qd;
        float *kr = k + (size_t)r * x->kvd, *vr = v + (size_t)r * x->kvd;
        int heads = layout == PL_QKV_FUSED_BLOCKS ? 1 : x->H; /* per head [q, k, v] (H = KVH), or [q | k | v] */
        size_t qn = layout == PL_QKV_FUSED_BLOCKS ? (size_t)x->qd : hd, kn = layout == PL_QKV_FUSED_BLOCKS ? (size_t)x->kvd : hd;
        for (int j = 0; j < heads; j++) {
            float *src = row + (size_t)j * (qn + 2 * kn);
            float *parts[3] = {qr + j * qn, kr + j * kn, vr + j * kn};
            size_t at[3] = {0, qn, qn + kn}, len[3] = {qn, kn, kn};
            for (int p = 0; p < 3; p++)
                if (dir)
                    memcpy(src + at[p], parts[p], sizeof(float) * len[p]);
                else
                    memcpy(parts[p], src + at[p], sizeof(float) * len[p]);
        }
    }
}

/* q, k, v[R, *] = projections of h[R, C]: the forward (MODE 0, biases), the tangent (MODE 1, no
 * biases), rotated by TABLE. */
static void qkv_project(const ctx *x, const pl_decoder_block *b, const float *h, float *q, float *k, float *v,
                        float *qkv, const float *table, int mode)
{
    const pl_decoder_config *c = &x->d->cfg;
    int C = x->C, R = x->R;
    if (c->qkv == PL_QKV_SEPARATE) {
        const pl_dec_mat *W[3] = {&b->q, &b->k, &b->v};
        float *out[3] = {q, k, v};
        int width[3] = {x->qd, x->kvd, x->kvd};
        for (int p = 0; p < 3; p++)
            if (mode)
                mat_jvp(W[p], out[p], h, R, C, width[p], 0.0f);
            else
                mat_fwd(W[p], out[p], h, R, C, width[p]);
    } else {
        int w = x->qd + 2 * x->kvd;
        if (mode)
            mat_jvp(&b->qkv, qkv, h, R, C, w, 0.0f);
        else
            mat_fwd(&b->qkv, qkv, h, R, C, w);
        qkv_split(x, c->qkv, qkv, q, k, v, 0);
    }
    if (c->rot_dim) {
        pl_op_rope(q, R, (size_t)x->qd, x->H, x->hd, c->rot_dim, table, x->n, c->rope_interleaved);
        pl_op_rope(k, R, (size_t)x->kvd, x->KVH, x->hd, c->rot_dim, table, x->n, c->rope_interleaved);
    }
}

/* Cotangent: gh[R, C] (+= by BETA) from gq, gk, gv (rotated back in place by the inverse table). */
static void qkv_vjp(const ctx *x, const pl_decoder_block *b, float *gq, float *gk, float *gv, float *qkv,
                    const float *table_t, float *gh, float beta)
{
    const pl_decoder_config *c = &x->d->cfg;
    int C = x->C, R = x->R;
    if (c->rot_dim) {
        pl_op_rope(gq, R, (size_t)x->qd, x->H, x->hd, c->rot_dim, table_t, x->n, c->rope_interleaved);
        pl_op_rope(gk, R, (size_t)x->kvd, x->KVH, x->hd, c->rot_dim, table_t, x->n, c->rope_interleaved);
    }
    if (c->qkv == PL_QKV_SEPARATE) {
        mat_vjp(&b->q, gh, gq, R, C, x->qd, beta);
        mat_vjp(&b->k, gh, gk, R, C, x->kvd, 1.0f);
        mat_vjp(&b->v, gh, gv, R, C, x->kvd, 1.0f);
    } else {
        qkv_split(x, c->qkv, qkv, gq, gk, gv, 1);
        mat_vjp(&b->qkv, gh, qkv, R, C, x->qd + 2 * x->kvd, beta);
    }
}

/* ------------------------------------------------------------ MLP activations */

/* f(v) and f'(v) of the MLP's activation (decoder.h): silu, tanh GELU (as v sigmoid(2u)), erf GELU. */
static void act_eval(int mlp, float v, double *f, double *df)
{
    if (mlp == PL_MLP_SWIGLU) {
        double s = 1.0 / (1.0 + exp(-(double)v));
        *f = v * s, *df = s * (1.0 + v * (1.0 - s));
    } else if (mlp == PL_MLP_GELU_ERF) {
        *f = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
        *df = 0.5 * (1.0 + erf(v * 0.70710678118654752)) + v * exp(-0.5 * (double)v * v) * 0.3989422804014327;
    } else { /* tanh GELU: v sigmoid(2u), u = k (v + 0.044715 v^3) */
        double k2 = 2.0 * 0.7978845608028654, s = 1.0 / (1.0 + exp(-k2 * (v + 0.044715 * v * v * v)));
        *f = v * s, *df = s + v * s * (1.0 - s) * k2 * (1.0 + 3.0 * 0.044715 * v * v);
    }
}

/* Forward of the MLP's hidden layer: act[R, MLP] from t->a (and t->b), by decoder.c's ops. */
static void act_fwd(const ctx *x, const tape *t, float *act)
{
    int mlp = x->d->cfg.mlp;
    size_t n = (size_t)x->R * x->MLP;
    memcpy(act, t->a, sizeof(float) * n);
    if (mlp == PL_MLP_SWIGLU)
        pl_op_swiglu(act, t->b, n);
    else if (mlp == PL_MLP_GEGLU_TANH)
        pl_op_geglu_tanh(act, t->b, n);
    else if (mlp == PL_MLP_GELU_TANH)
        pl_op_gelu_tanh(act, n);
    else
        pl_op_gelu_erf(act, n);
}

/* Tangent (DIR 0): dact = f'(a) da b + f(a) db, into da. Cotangent (DIR 1): from gact in da,
 * ga = gact b f'(a) into da, gb = gact f(a) into db. Ungated: b = 1, no db. */
static void act_deriv(const ctx *x, const tape *t, float *da, float *db, int dir)
{
    int mlp = x->d->cfg.mlp == PL_MLP_GEGLU_TANH ? PL_MLP_GELU_TANH : x->d->cfg.mlp;
    size_t n = (size_t)x->R * x->MLP;
    for (size_t i = 0; i < n; i++) {
        double f, df, bi = x->gated ? t->b[i] : 1.0;
        act_eval(mlp, t->a[i], &f, &df);
        if (dir == 0) {
            da[i] = (float)(df * da[i] * bi + (x->gated ? f * db[i] : 0.0));
        } else {
            double g = da[i];
            da[i] = (float)(g * bi * df);
            if (x->gated)
                db[i] = (float)(g * f);
        }
    }
}

/* ------------------------------------------------------------ blocks */

/* Forward of block l over the rows f->x[R, C] (in place), as decoder.c's, keeping the tape. The
 * sublayers' other activations live in the scratch the derivative passes use after it: h_1 and h_2
 * in dh, the attention output in datt, the MLP hidden layer in da, the post-norms' outputs in dmid
 * and dh. */
static void block_fwd(const ctx *x, int l, float *xr, tape *t, grad_scratch *s)
{
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    int R = x->R, C = x->C;
    size_t n = (size_t)R * C;
    memcpy(t->x, xr, sizeof(float) * n);
    norm_fwd(c, s->dh, xr, b->norm1_w, b->norm1_b, R);
    qkv_project(x, b, s->dh, t->q, t->k, t->v, s->qkv, s->rope, 0);
    attn_fwd(x, b, l, t, s->datt);
    mat_fwd(&b->o, t->o, s->datt, R, x->qd, C);
    const float *o = t->o;
    if (b->post_attn_norm_w) {
        norm_fwd(c, s->dmid, t->o, b->post_attn_norm_w, NULL, R);
        o = s->dmid;
    }
    if (!c->parallel_residual)
        pl_op_residual_add(xr, o, n);
    memcpy(t->x1, xr, sizeof(float) * n); /* parallel: x1 = x (o is added below) */
    norm_fwd(c, s->dh, t->x1, b->norm2_w, b->norm2_b, R);
    mat_fwd(x->gated ? &b->gate : &b->up, t->a, s->dh, R, C, x->MLP);
    if (x->gated)
        mat_fwd(&b->up, t->b, s->dh, R, C, x->MLP);
    act_fwd(x, t, s->da);
    mat_fwd(&b->down, t->mo, s->da, R, x->MLP, C);
    if (c->parallel_residual)
        pl_op_residual_add(xr, o, n);
    if (b->post_mlp_norm_w) {
        norm_fwd(c, s->dh, t->mo, b->post_mlp_norm_w, NULL, R);
        pl_op_residual_add(xr, s->dh, n);
    } else {
        pl_op_residual_add(xr, t->mo, n);
    }
}

/* Tangent of block l: dx[R, C] (in place) through the block at its tape. */
static void block_jvp(const ctx *x, int l, float *dx, const tape *t, grad_scratch *s, double *ds)
{
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    int R = x->R, C = x->C;
    size_t n = (size_t)R * C;
    norm_deriv(c, s->dh, t->x, b->norm1_w, dx, R, 0);
    qkv_project(x, b, s->dh, s->dq, s->dk, s->dv, s->qkv, s->rope, 1);
    attn_jvp(x, b, l, t, s->dq, s->dk, s->dv, s->datt, ds);
    mat_jvp(&b->o, s->dmid, s->datt, R, x->qd, C, 0.0f); /* d o */
    if (b->post_attn_norm_w)
        norm_deriv(c, s->dmid, t->o, b->post_attn_norm_w, s->dmid, R, 0);
    if (!c->parallel_residual)
        pl_op_residual_add(dx, s->dmid, n); /* d x1 */
    norm_deriv(c, s->dh, t->x1, b->norm2_w, dx, R, 0);
    mat_jvp(x->gated ? &b->gate : &b->up, s->da, s->dh, R, C, x->MLP, 0.0f);
    if (x->gated)
        mat_jvp(&b->up, s->db, s->dh, R, C, x->MLP, 0.0f);
    act_deriv(x, t, s->da, s->db, 0);
    if (c->parallel_residual)
        pl_op_residual_add(dx, s->dmid, n);
    mat_jvp(&b->down, s->dh, s->da, R, x->MLP, C, 0.0f);
    if (b->post_mlp_norm_w)
        norm_deriv(c, s->dh, t->mo, b->post_mlp_norm_w, s->dh, R, 0);
    pl_op_residual_add(dx, s->dh, n);
}

/* s->dh[R, C] = J_m(x1)^T g: the MLP's cotangent at its input x1 (through the post-norm, the down,
 * activation, gate/up and norm_2), G the MLP output's gradient. */
static void mlp_input_vjp(const ctx *x, const pl_decoder_block *b, const tape *t, grad_scratch *s, const float *g)
{
    const pl_decoder_config *c = &x->d->cfg;
    int R = x->R, C = x->C;
    const float *gm = g;
    if (b->post_mlp_norm_w) {
        norm_deriv(c, s->dmid, t->mo, b->post_mlp_norm_w, g, R, 1);
        gm = s->dmid;
    }
    mat_vjp(&b->down, s->da, gm, R, x->MLP, C, 0.0f);
    act_deriv(x, t, s->da, s->db, 1);
    mat_vjp(x->gated ? &b->gate : &b->up, s->dh, s->da, R, C, x->MLP, 0.0f);
    if (x->gated)
        mat_vjp(&b->up, s->dh, s->db, R, C, x->MLP, 1.0f);
    norm_deriv(c, s->dh, t->x1, b->norm2_w, s->dh, R, 1);
}

/* Cotangent of block l: g[R, C], the gradient at the block's output, becomes the gradient at its
 * input. The own rows' keys and values collect the gradients of every later row attending to them. */
static void block_vjp(const ctx *x, int l, float *g, const tape *t, grad_scratch *s, double *dS)
{
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    int R = x->R, C = x->C;
    size_t n = (size_t)R * C;
    mlp_input_vjp(x, b, t, s, g); /* through norm_2: the gradient at x1 */
    float *gx = s->dh; /* sequential: g at x1 = g + (dh); parallel: g at x gets (dh) beside the rest */
    for (size_t i = 0; i < n; i++)
        gx[i] += g[i];
    /* the attention output's gradient: g at x1 (sequential) or g (parallel) */
    const float *go = c->parallel_residual ? g : gx;
    if (b->post_attn_norm_w) {
        norm_deriv(c, s->dmid, t->o, b->post_attn_norm_w, go, R, 1);
        go = s->dmid;
    }
    mat_vjp(&b->o, s->datt, go, R, x->qd, C, 0.0f);
    attn_vjp(x, b, l, t, s->datt, s->dq, s->dk, s->dv, dS);
    qkv_vjp(x, b, s->dq, s->dk, s->dv, s->qkv, s->rope_t, s->dmid, 0.0f);
    norm_deriv(c, s->dmid, t->x, b->norm1_w, s->dmid, R, 1);
    for (size_t i = 0; i < n; i++)
        g[i] = gx[i] + s->dmid[i];
}

/* ------------------------------------------------------------ readouts */

/* Row k (0..P-1, or 0 for one position) of variant v's output rows within rows[R, C]: its last row
 * (one position), or the perturbed position's row at offset out[k] (whole contexts, f->P > 0). */
static size_t out_row(const ctx *x, int v, int k)
{
    return (size_t)v * x->n + (x->f->P > 0 ? x->f->out[k] : x->n - 1);
}

/* The outputs' count per variant: P perturbed positions, or the one last position. */
static int outs_of(const ctx *x)
{
    return x->f->P > 0 ? x->f->P : 1;
}

/* out[M * outs, C] = each variant's output rows of rows[R, C] (ADD: add them into the rows instead). */
static void last_rows(const ctx *x, const float *rows, float *out)
{
    int P = outs_of(x);
    for (int v = 0; v < x->f->M; v++)
        for (int k = 0; k < P; k++)
            memcpy(out + ((size_t)v * P + k) * x->C, rows + out_row(x, v, k) * x->C, sizeof(float) * x->C);
}

static void add_last_rows(const ctx *x, float *rows, const float *add)
{
    int P = outs_of(x);
    for (int v = 0; v < x->f->M; v++)
        for (int k = 0; k < P; k++)
            pl_op_residual_add(rows + out_row(x, v, k) * x->C, add + ((size_t)v * P + k) * x->C, (size_t)x->C);
}

/* logits[M, V] of the final rows xl[M, C] (h[M, C] scratch), as decoder.c's unembed. */
static void unembed_fwd(const pl_decoder *d, const float *xl, int M, float *h, float *logits)
{
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, V = c->n_vocab;
    norm_fwd(c, h, xl, d->normf_w, d->normf_b, M);
    if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, d->unembed, C, h, 1, 0.0f, logits, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, V, C, 1.0f, h, C, d->unembed, C, 0.0f, logits, V);
    if (c->final_softcap > 0)
        pl_op_softcap(logits, (size_t)M * V, c->final_softcap);
}

/* z *= the final soft-cap's slope 1 - (logits / cap)^2 at the capped LOGITS. */
static void softcap_slope(const pl_decoder_config *c, float *z, const float *logits, size_t n)
{
    if (c->final_softcap > 0)
        for (size_t i = 0; i < n; i++) {
            double th = logits[i] / c->final_softcap;
            z[i] = (float)(z[i] * (1.0 - th * th));
        }
}

/* Tangent: dlogits[M, V] from the final rows xl and their tangents dxl[M, C] (h: scratch [M, C]). */
static void unembed_jvp(const pl_decoder *d, const float *xl, const float *dxl, int M, const float *logits,
                        float *h, float *dlogits)
{
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, V = c->n_vocab;
    norm_deriv(c, h, xl, d->normf_w, dxl, M, 0);
    if (M == 1)
        one_row(0, V, C, d->unembed, h, 0.0f, dlogits, V);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, V, C, 1.0f, h, C, d->unembed, C, 0.0f, dlogits, V);
    softcap_slope(c, dlogits, logits, (size_t)M * V);
}

/* Cotangent: gxl[M, C] from glogits[M, V] (gz: scratch [M, V]). */
static void unembed_vjp(const pl_decoder *d, const float *xl, const float *glogits, int M, const float *logits,
                        float *gz, float *gxl)
{
    const pl_decoder_config *c = &d->cfg;
    int C = c->d_model, V = c->n_vocab;
    const float *g = glogits;
    if (c->final_softcap > 0) { /* copied only for the soft-cap's slope: the copy into fresh pages cost more
                                   than the matmul for a large vocabulary and a small width */
        memcpy(gz, glogits, sizeof(float) * (size_t)M * V);
        softcap_slope(c, gz, logits, (size_t)M * V);
        g = gz;
    }
    if (M == 1)
        one_row(1, V, C, d->unembed, g, 0.0f, gxl, C);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, C, V, 1.0f, g, V, d->unembed, C, 0.0f, gxl, C);
    norm_deriv(c, gxl, xl, d->normf_w, gxl, M, 1);
}

/* ------------------------------------------------------------ the passes */

/* Everything a pass holds: the rows, NT tapes, scratch, and buffers of the readouts. */
typedef struct {
    pl_fast_rows f;
    ctx x;
    grad_scratch s;
    tape *tapes;
    float *mem;     /* the tapes' floats, then the buffers below */
    float *g;       /* [R, C] tangents or cotangents of the rows */
    float *xl, *dl; /* [Mo, C] output rows (Mo = M, or M * P for whole contexts) and their tangents */
    float *h;       /* [Mo, C] */
    float *z, *gz;  /* [Mo, V] logits (when the caller has none) and the logits' cotangent */
    double *ds;     /* [T] */
    int *offsets;   /* [P] whole contexts: the perturbed positions - p0 (f.out), else NULL */
    int Mo;         /* the output rows */
} pass;

static void pass_free(pass *p)
{
    pl_fast_rows_free(&p->f);
    free(p->s.block);
    free(p->tapes);
    free(p->mem);
    free(p->ds);
    free(p->offsets);
}

/* The rows of one call: one position POS (POSITIONS NULL: pl_fast_rows_init), or the P POSITIONS of
 * whole contexts (pl_fast_rows_init_positions, as decoder.c's decoder_patch_eval_positions; the rows
 * start at p0 = POSITIONS[0]). */
static int pass_rows(pass *p, const pl_run *const *cleans, const int *group_rows, int G, int M, int resid_index,
                     int pos, const int *positions, int P, const float *X, int read_index, float *read)
{
    if (!positions)
        return pl_fast_rows_init(&p->f, cleans, group_rows, G, M, resid_index, pos, X, read_index, read);
    p->offsets = pl_malloc(sizeof(int) * (size_t)P, "perturbed positions");
    if (!p->offsets)
        return PL_ERR;
    for (int j = 0; j < P; j++)
        p->offsets[j] = positions[j] - positions[0];
    return pl_fast_rows_init_positions(&p->f, cleans, group_rows, G, M, resid_index, positions, p->offsets, P, X,
                                       read_index, read);
}

static int pass_init(pass *p, const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G, int M,
                     int resid_index, int pos, const int *positions, int P, const float *X, int read_index,
                     float *read, int nt)
{
    const pl_decoder *d = model->weights;
    int T = cleans[0]->T, kvd = d->cfg.n_kv_head * d->cfg.head_dim;
    memset(p, 0, sizeof *p);
    if (cleans[0]->kv_dim != kvd)
        return pl_fail("derivatives: cached run has %d key/value floats per position, the model %d",
                       cleans[0]->kv_dim, kvd);
    if (positions)
        pos = positions[0];
    if (pass_rows(p, cleans, group_rows, G, M, resid_index, pos, positions, P, X, read_index, read) != PL_OK) {
        pass_free(p);
        return PL_ERR;
    }
    p->x = make_ctx(d, &p->f, pos, T);
    p->Mo = M * outs_of(&p->x);
    size_t R = (size_t)p->x.R, C = (size_t)p->x.C, V = (size_t)d->cfg.n_vocab, tf = tape_floats(&p->x);
    size_t Mo = (size_t)p->Mo, floats = (size_t)nt * tf + R * C + 3 * Mo * C + 2 * Mo * V;
    p->mem = pl_malloc(sizeof(float) * floats, "derivative tapes");
    p->tapes = pl_calloc((size_t)(nt ? nt : 1), sizeof(tape), "derivative tapes");
    p->ds = pl_malloc(sizeof(double) * (size_t)T, "attention scratch");
    if (!p->mem || !p->tapes || !p->ds || scratch_new(&p->x, &p->s) != PL_OK) {
        pass_free(p);
        return PL_ERR;
    }
    float *q = p->mem;
    for (int i = 0; i < nt; i++, q += tf)
        tape_carve(&p->x, &p->tapes[i], q);
    p->g = q, q += R * C;
    p->xl = q, q += Mo * C;
    p->dl = q, q += Mo * C;
    p->h = q, q += Mo * C;
    p->z = q, q += Mo * V;
    p->gz = q;
    memset(p->g, 0, sizeof(float) * R * C);
    return PL_OK;
}

/* Forward mode over the rows of one position POS (POSITIONS NULL) or of the P POSITIONS at once
 * (whole contexts): the tangent DX[M * outs, C] enters at each variant's perturbed rows; every later
 * row (perturbed or not) attends to the perturbed rows' keys and values, which carry tangents too
 * (attn_jvp: every own row s >= p0); outputs at the output rows (last_rows). */
static int jvp_pass(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G, int M,
                    int resid_index, int pos, const int *positions, int P, const float *X, const float *DX,
                    float *logits, float *dlogits, int read_index, float *read, float *dread)
{
    const pl_decoder *d = model->weights;
    int L = d->cfg.n_layer, C = d->cfg.d_model;
    pass p;
    if (pass_init(&p, model, cleans, group_rows, G, M, resid_index, pos, positions, P, X, read_index, read, 1) !=
        PL_OK)
        return PL_ERR;
    int Mo = p.Mo, K = outs_of(&p.x);
    for (int v = 0; v < M; v++) /* the tangent enters at each variant's perturbed rows */
        for (int k = 0; k < K; k++)
            memcpy(p.g + ((size_t)v * p.x.n + (positions ? (size_t)p.offsets[k] : 0)) * C,
                   DX + ((size_t)v * K + k) * C, sizeof(float) * C);
    if (dread && read_index <= resid_index) { /* at the patch: its own tangent at the output rows, else none */
        if (read_index == resid_index)
            last_rows(&p.x, p.g, dread);
        else
            memset(dread, 0, sizeof(float) * (size_t)Mo * C);
    }
    for (int l = resid_index; l < L; l++) {
        block_fwd(&p.x, l, p.f.x, &p.tapes[0], &p.s);
        block_jvp(&p.x, l, p.g, &p.tapes[0], &p.s, p.ds);
        if (read && read_index == l + 1)
            last_rows(&p.x, p.f.x, read);
        if (dread && read_index == l + 1)
            last_rows(&p.x, p.g, dread);
    }
    if (logits || dlogits) {
        float *z = logits ? logits : p.z;
        last_rows(&p.x, p.f.x, p.xl);
        last_rows(&p.x, p.g, p.dl);
        if (logits || d->cfg.final_softcap > 0)
            unembed_fwd(d, p.xl, Mo, p.h, z);
        if (dlogits)
            unembed_jvp(d, p.xl, p.dl, Mo, z, p.h, dlogits);
    }
    pass_free(&p);
    return PL_OK;
}

/* Reverse mode over the same rows: cotangents enter at the output rows, flow back through every
 * block (the perturbed rows' keys and values collect the gradients of every later row attending to
 * them, attn_vjp), and dx[M * outs, C] is read at the perturbed rows. */
static int vjp_pass(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G, int M,
                    int resid_index, int pos, const int *positions, int P, const float *X, const float *glogits,
                    int read_index, const float *gread, float *logits, float *read, float *dx)
{
    const pl_decoder *d = model->weights;
    int L = d->cfg.n_layer, C = d->cfg.d_model, nt = L - resid_index;
    pass p;
    if (pass_init(&p, model, cleans, group_rows, G, M, resid_index, pos, positions, P, X, read_index, read, nt) !=
        PL_OK)
        return PL_ERR;
    int Mo = p.Mo, K = outs_of(&p.x);
    for (int l = resid_index; l < L; l++) {
        block_fwd(&p.x, l, p.f.x, &p.tapes[l - resid_index], &p.s);
        if (read && read_index == l + 1)
            last_rows(&p.x, p.f.x, read);
    }
    if (logits || glogits) {
        float *z = logits ? logits : p.z;
        last_rows(&p.x, p.f.x, p.xl);
        if (logits || d->cfg.final_softcap > 0) /* the logits' values: asked for, or the soft-cap's slope */
            unembed_fwd(d, p.xl, Mo, p.h, z);
        if (glogits) {
            unembed_vjp(d, p.xl, glogits, Mo, z, p.gz, p.dl);
            add_last_rows(&p.x, p.g, p.dl);
        }
    }
    if (gread && read_index == L)
        add_last_rows(&p.x, p.g, gread);
    for (int l = L - 1; l >= resid_index; l--) {
        block_vjp(&p.x, l, p.g, &p.tapes[l - resid_index], &p.s, p.ds);
        if (gread && read_index == l && l >= resid_index) /* a read inside the path; below it, none */
            add_last_rows(&p.x, p.g, gread);
    }
    for (int v = 0; v < M; v++) /* the gradient at each variant's perturbed rows */
        for (int k = 0; k < K; k++)
            memcpy(dx + ((size_t)v * K + k) * C,
                   p.g + ((size_t)v * p.x.n + (positions ? (size_t)p.offsets[k] : 0)) * C, sizeof(float) * C);
    pass_free(&p);
    return PL_OK;
}

int pl_decoder_patch_jvp_groups(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                int M, int resid_index, int pos, const float *X, const float *DX, float *logits,
                                float *dlogits, int read_index, float *read, float *dread)
{
    return jvp_pass(model, cleans, group_rows, G, M, resid_index, pos, NULL, 0, X, DX, logits, dlogits, read_index,
                    read, dread);
}

int pl_decoder_patch_vjp_groups(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                int M, int resid_index, int pos, const float *X, const float *glogits,
                                int read_index, const float *gread, float *logits, float *read, float *dx)
{
    return vjp_pass(model, cleans, group_rows, G, M, resid_index, pos, NULL, 0, X, glogits, read_index, gread,
                    logits, read, dx);
}

int pl_decoder_patch_jvp_positions(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                   int M, int resid_index, const int *positions, int P, const float *X,
                                   const float *DX, float *logits, float *dlogits, int read_index, float *read,
                                   float *dread)
{
    return jvp_pass(model, cleans, group_rows, G, M, resid_index, positions[0], positions, P, X, DX, logits, dlogits,
                    read_index, read, dread);
}

int pl_decoder_patch_vjp_positions(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                   int M, int resid_index, const int *positions, int P, const float *X,
                                   const float *glogits, int read_index, const float *gread, float *logits,
                                   float *read, float *dx)
{
    return vjp_pass(model, cleans, group_rows, G, M, resid_index, positions[0], positions, P, X, glogits, read_index,
                    gread, logits, read, dx);
}

/* ------------------------------------------------------------ mid-block points */

/* A mid-block point of block l (attn.hook_z, hook_attn_out, hook_resid_mid, hook_mlp_out) at POS:
 * each variant's row at POS starts from its clean resid_pre (the cache) and finishes block l from the
 * site with its row Y of X there, as decoder.c's finish_from_site; its resid_post row then goes on
 * through the residual path from resid index l + 1 (the passes above, unchanged). No other position
 * of block l depends on Y (their keys and values come from resid_pre), so the derivative is that of
 * the rest of the block at one row per variant, chained with the residual path's:
 *   sequential: attn.hook_z    x' = x1 + m(x1), x1 = x + post_attn(Y Wo + bo)
 *               hook_attn_out  x' = x1 + m(x1), x1 = x + Y
 *               hook_resid_mid x' = Y + m(Y)
 *               hook_mlp_out   x' = x1_clean + Y                       (identity)
 *   parallel:   attn.hook_z    x' = x + post_attn(Y Wo + bo) + m(x)    (m(x) constant)
 *               hook_attn_out, hook_mlp_out: x' = Y + constants        (identity)
 * with m(y) = post_mlp(mlp(norm_2(y))). */
typedef struct {
    pl_fast_rows f; /* M variants, one row each (n = 1): resid_pre, then resid_post, in x */
    ctx x;
    grad_scratch s;
    tape t;
    float *mem;
    double *ds;
} site_pass;

static void site_free(site_pass *p)
{
    free(p->f.x);
    free(p->f.clean_of);
    free(p->s.block);
    free(p->mem);
    free(p->ds);
}

static int site_init(site_pass *p, const pl_decoder *d, const pl_run *const *cleans, const int *group_rows, int G,
                     int M, pl_hook_point pt, int pos)
{
    int C = d->cfg.d_model, T = cleans[0]->T, kvd = d->cfg.n_kv_head * d->cfg.head_dim;
    size_t TC = (size_t)T * C;
    memset(p, 0, sizeof *p);
    if (cleans[0]->kv_dim != kvd)
        return pl_fail("derivatives: cached run has %d key/value floats per position, the model %d",
                       cleans[0]->kv_dim, kvd);
    p->f.M = M, p->f.n = 1, p->f.C = C;
    p->f.x = pl_malloc(sizeof(float) * (size_t)M * C, "derivative rows");
    p->f.clean_of = pl_malloc(sizeof(pl_run *) * (size_t)M, "derivative groups");
    p->ds = pl_malloc(sizeof(double) * (size_t)T, "attention scratch");
    if (!p->f.x || !p->f.clean_of || !p->ds) {
        site_free(p);
        return PL_ERR;
    }
    for (int g = 0, v = 0; g < G; g++)
        for (int i = 0; i < group_rows[g]; i++, v++) {
            p->f.clean_of[v] = cleans[g];
            memcpy(p->f.x + (size_t)v * C, cleans[g]->resid + (size_t)pt.layer * TC + (size_t)pos * C,
                   sizeof(float) * C);
        }
    p->x = make_ctx(d, &p->f, pos, T);
    p->x.n = 1, p->x.R = M; /* one row per variant: the row at POS */
    p->mem = pl_malloc(sizeof(float) * tape_floats(&p->x), "derivative tape");
    if (!p->mem || scratch_new(&p->x, &p->s) != PL_OK) {
        site_free(p);
        return PL_ERR;
    }
    tape_carve(&p->x, &p->t, p->mem);
    return PL_OK;
}

/* The MLP's forward from x1 = t->x1: t->a, t->b, t->mo kept; out[R, C] = post_mlp(mlp(norm_2(x1))). */
static void site_mlp_fwd(const ctx *x, const pl_decoder_block *b, tape *t, grad_scratch *s, float *out)
{
    const pl_decoder_config *c = &x->d->cfg;
    int R = x->R, C = x->C;
    norm_fwd(c, s->dh, t->x1, b->norm2_w, b->norm2_b, R);
    mat_fwd(x->gated ? &b->gate : &b->up, t->a, s->dh, R, C, x->MLP);
    if (x->gated)
        mat_fwd(&b->up, t->b, s->dh, R, C, x->MLP);
    act_fwd(x, t, s->da);
    mat_fwd(&b->down, t->mo, s->da, R, x->MLP, C);
    if (b->post_mlp_norm_w)
        norm_fwd(c, out, t->mo, b->post_mlp_norm_w, NULL, R);
    else
        memcpy(out, t->mo, sizeof(float) * (size_t)R * C);
}

/* Forward of block L from SITE with Y[R, W]: p->f.x (resid_pre) becomes resid_post, the tape kept.
 * At hook_mlp_out the rows' clean attention is recomputed over the cached keys and values first. */
static void site_fwd(site_pass *p, int l, int site, const float *Y)
{
    const ctx *x = &p->x;
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    tape *t = &p->t;
    grad_scratch *s = &p->s;
    float *xr = p->f.x;
    int R = x->R, C = x->C;
    size_t n = (size_t)R * C;
    const float *o = Y; /* what the attention adds to the residual: post_attn(z Wo + bo), or Y */
    if (site == PL_SITE_ATTN_Z || site == PL_SITE_MLP_OUT) {
        const float *z = Y;
        if (site == PL_SITE_MLP_OUT) {
            norm_fwd(c, s->dh, xr, b->norm1_w, b->norm1_b, R);
            qkv_project(x, b, s->dh, t->q, t->k, t->v, s->qkv, s->rope, 0);
            attn_fwd(x, b, l, t, s->datt);
            z = s->datt;
        }
        mat_fwd(&b->o, t->o, z, R, x->qd, C);
        o = t->o;
        if (b->post_attn_norm_w) {
            norm_fwd(c, s->dmid, t->o, b->post_attn_norm_w, NULL, R);
            o = s->dmid;
        }
    }
    if (site == PL_SITE_RESID_MID)
        memcpy(xr, Y, sizeof(float) * n);
    else if (!c->parallel_residual)
        pl_op_residual_add(xr, o, n);
    memcpy(t->x1, xr, sizeof(float) * n); /* norm_2's input: x1 (sequential), x (parallel) */
    const float *mo = Y; /* what the MLP adds: Y at hook_mlp_out */
    if (site != PL_SITE_MLP_OUT) {
        site_mlp_fwd(x, b, t, s, s->dh);
        mo = s->dh;
    }
    if (c->parallel_residual)
        pl_op_residual_add(xr, o, n);
    pl_op_residual_add(xr, mo, n);
}

/* Tangent of the MLP at the tape: dx[R, C] += J_m(x1) dx. */
static void site_mlp_jvp(const ctx *x, const pl_decoder_block *b, const tape *t, grad_scratch *s, float *dx)
{
    const pl_decoder_config *c = &x->d->cfg;
    int R = x->R, C = x->C;
    norm_deriv(c, s->dh, t->x1, b->norm2_w, dx, R, 0);
    mat_jvp(x->gated ? &b->gate : &b->up, s->da, s->dh, R, C, x->MLP, 0.0f);
    if (x->gated)
        mat_jvp(&b->up, s->db, s->dh, R, C, x->MLP, 0.0f);
    act_deriv(x, t, s->da, s->db, 0);
    mat_jvp(&b->down, s->dh, s->da, R, x->MLP, C, 0.0f);
    if (b->post_mlp_norm_w)
        norm_deriv(c, s->dh, t->mo, b->post_mlp_norm_w, s->dh, R, 0);
    pl_op_residual_add(dx, s->dh, (size_t)R * C);
}

/* Cotangent of the MLP at the tape: g[R, C] += J_m(x1)^T g. */
static void site_mlp_vjp(const ctx *x, const pl_decoder_block *b, const tape *t, grad_scratch *s, float *g)
{
    mlp_input_vjp(x, b, t, s, g);
    pl_op_residual_add(g, s->dh, (size_t)x->R * x->C);
}

/* Tangent: dout[R, C] (resid_post) from dY[R, W] at the site. */
static void site_jvp(site_pass *p, int l, int site, const float *dY, float *dout)
{
    const ctx *x = &p->x;
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    size_t n = (size_t)x->R * x->C;
    if (site == PL_SITE_ATTN_Z) {
        mat_jvp(&b->o, dout, dY, x->R, x->qd, x->C, 0.0f);
        if (b->post_attn_norm_w)
            norm_deriv(c, dout, p->t.o, b->post_attn_norm_w, dout, x->R, 0);
    } else {
        memcpy(dout, dY, sizeof(float) * n);
    }
    /* the MLP sees Y's change only after the attention in a sequential block */
    if (!c->parallel_residual && site != PL_SITE_MLP_OUT)
        site_mlp_jvp(x, b, &p->t, &p->s, dout);
}

/* Cotangent: gY[R, W] at the site from g[R, C] at resid_post (G is overwritten). */
static void site_vjp(site_pass *p, int l, int site, float *g, float *gY)
{
    const ctx *x = &p->x;
    const pl_decoder_config *c = &x->d->cfg;
    const pl_decoder_block *b = &x->d->blocks[l];
    if (!c->parallel_residual && site != PL_SITE_MLP_OUT)
        site_mlp_vjp(x, b, &p->t, &p->s, g); /* now the gradient at x1 */
    if (site != PL_SITE_ATTN_Z) {
        memcpy(gY, g, sizeof(float) * (size_t)x->R * x->C);
        return;
    }
    const float *go = g;
    if (b->post_attn_norm_w) {
        norm_deriv(c, p->s.dmid, p->t.o, b->post_attn_norm_w, g, x->R, 1);
        go = p->s.dmid;
    }
    mat_vjp(&b->o, gY, go, x->R, x->qd, x->C, 0.0f);
}

int pl_decoder_patch_jvp_groups_at(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                   int M, pl_hook_point pt, int pos, const float *X, const float *DX, float *logits,
                                   float *dlogits, int read_index, float *read, float *dread)
{
    site_pass p;
    if (site_init(&p, model->weights, cleans, group_rows, G, M, pt, pos) != PL_OK)
        return PL_ERR;
    float *dpost = pl_malloc(sizeof(float) * (size_t)M * p.x.C, "derivative rows");
    int rc = PL_ERR;
    if (dpost) {
        site_fwd(&p, pt.layer, pt.site, X);
        site_jvp(&p, pt.layer, pt.site, DX, dpost);
        rc = pl_decoder_patch_jvp_groups(model, cleans, group_rows, G, M, pt.layer + 1, pos, p.f.x, dpost, logits,
                                         dlogits, read_index, read, dread);
    }
    free(dpost);
    site_free(&p);
    return rc;
}

int pl_decoder_patch_vjp_groups_at(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G,
                                   int M, pl_hook_point pt, int pos, const float *X, const float *glogits,
                                   int read_index, const float *gread, float *logits, float *read, float *dx)
{
    site_pass p;
    if (site_init(&p, model->weights, cleans, group_rows, G, M, pt, pos) != PL_OK)
        return PL_ERR;
    float *gpost = pl_malloc(sizeof(float) * (size_t)M * p.x.C, "derivative rows");
    int rc = PL_ERR;
    if (gpost) {
        site_fwd(&p, pt.layer, pt.site, X);
        rc = pl_decoder_patch_vjp_groups(model, cleans, group_rows, G, M, pt.layer + 1, pos, p.f.x, glogits,
                                         read_index, gread, logits, read, gpost);
        if (rc == PL_OK)
            site_vjp(&p, pt.layer, pt.site, gpost, dx);
    }
    free(gpost);
    site_free(&p);
    return rc;
}

/* Whole contexts at a mid-block point of block l (pl_patch_jvp_positions_at / _vjp_positions_at), as
 * decoder.c's decoder_patch_eval_positions_at: no other position of block l depends on the P perturbed
 * rows (keys and values come from resid_pre; z is after the attention's mixing), so each perturbed
 * position's rows finish block l from the site on their own (one site pass per position: its own
 * rotary position and key count), and their resid_post rows [M, P, C] go on through the whole-context
 * passes from resid index l + 1. */

/* rows[M, w] = position j's rows of all[M, P, w]. */
static void rows_of(float *rows, const float *all, int M, int P, int j, int w)
{
    for (int v = 0; v < M; v++)
        memcpy(rows + (size_t)v * w, all + ((size_t)v * P + j) * w, sizeof(float) * (size_t)w);
}

/* all[M, P, w]: position j's rows set from rows[M, w]. */
static void set_rows(float *all, const float *rows, int M, int P, int j, int w)
{
    for (int v = 0; v < M; v++)
        memcpy(all + ((size_t)v * P + j) * w, rows + (size_t)v * w, sizeof(float) * (size_t)w);
}

/* post[M, P, C] = resid_post of the perturbed rows X[M, P, W]; with DX, dpost = their tangents. With
 * G_POST (the cotangents at resid_post from the passes after block l), dx[M, P, W] instead. */
static int site_positions(const pl_model *model, const pl_run *const *cleans, const int *group_rows, int G, int M,
                          pl_hook_point pt, const int *positions, int P, int W, const float *X, const float *DX,
                          float *post, float *dpost, const float *gpost, float *dx)
{
    int C = ((const pl_decoder *)model->weights)->cfg.d_model, w = W > C ? W : C;
    float *a = pl_malloc(sizeof(float) * (size_t)M * w * 2, "derivative rows"), *b = a ? a + (size_t)M * w : NULL;
    if (!a)
        return PL_ERR;
    int rc = PL_OK;
    for (int j = 0; j < P && rc == PL_OK; j++) {
        site_pass p;
        if ((rc = site_init(&p, model->weights, cleans, group_rows, G, M, pt, positions[j])) != PL_OK)
            break;
        rows_of(a, X, M, P, j, W);
        site_fwd(&p, pt.layer, pt.site, a);
        if (post)
            set_rows(post, p.f.x, M, P, j, C);
        if (DX) {
            rows_of(a, DX, M, P, j, W);
            site_jvp(&p, pt.layer, pt.site, a, b);
            set_rows(dpost, b, M, P, j, C);
        }
        if (gpost) {
            rows_of(a, gpost, M, P, j, C);
            site_vjp(&p, pt.layer, pt.site, a, b);
            set_rows(dx, b, M, P, j, W);
        }
        site_free(&p);
    }
    free(a);
    return rc;
}

int pl_decoder_patch_jvp_positions_at(const pl_model *model, const pl_run *const *cleans, const int *group_rows,
                                      int G, int M, pl_hook_point pt, const int *positions, int P, int W,
                                      const float *X, const float *DX, float *logits, float *dlogits, int read_index,
                                      float *read, float *dread)
{
    size_t n = (size_t)M * P * ((const pl_decoder *)model->weights)->cfg.d_model;
    float *post = pl_malloc(sizeof(float) * n * 2, "derivative rows");
    if (!post)
        return PL_ERR;
    int rc = site_positions(model, cleans, group_rows, G, M, pt, positions, P, W, X, DX, post, post + n, NULL, NULL);
    if (rc == PL_OK)
        rc = jvp_pass(model, cleans, group_rows, G, M, pt.layer + 1, positions[0], positions, P, post, post + n,
                      logits, dlogits, read_index, read, dread);
    free(post);
    return rc;
}

int pl_decoder_patch_vjp_positions_at(const pl_model *model, const pl_run *const *cleans, const int *group_rows,
                                      int G, int M, pl_hook_point pt, const int *positions, int P, int W,
                                      const float *X, const float *glogits, int read_index, const float *gread,
                                      float *logits, float *read, float *dx)
{
    size_t n = (size_t)M * P * ((const pl_decoder *)model->weights)->cfg.d_model;
    float *post = pl_malloc(sizeof(float) * n * 2, "derivative rows");
    if (!post)
        return PL_ERR;
    int rc = site_positions(model, cleans, group_rows, G, M, pt, positions, P, W, X, NULL, post, NULL, NULL, NULL);
    if (rc == PL_OK)
        rc = vjp_pass(model, cleans, group_rows, G, M, pt.layer + 1, positions[0], positions, P, post, glogits,
                      read_index, gread, logits, read, post + n);
    if (rc == PL_OK)
        rc = site_positions(model, cleans, group_rows, G, M, pt, positions, P, W, X, NULL, NULL, NULL, post + n, dx);
    free(post);
    return rc;
}

/* ------------------------------------------------------------ FLOP counts */

/* Attention FLOPs of block b for query positions first..last-1 (as decoder.c counts them). */
static double attention_flops(const pl_decoder_config *c, const pl_decoder_block *b, int first, int last)
{
    double f = 0.0, qd = (double)c->n_head * c->head_dim;
    for (int t = first; t < last; t++)
        f += 4.0 * qd * (b->window > 0 && t + 1 > b->window ? b->window : t + 1);
    return f;
}

/* The unembedding's matmul for one row, which the derivative calls skip in their forward when the
 * logits are not asked for and there is no final soft-cap (whose slope needs them). */
static double unembed_flops(const pl_model *m)
{
    const pl_decoder *d = m->weights;
    return d->cfg.final_softcap > 0 ? 0.0 : 2.0 * d->cfg.d_model * d->cfg.n_vocab;
}

/* JVP without the logits' values: the forward, and each matmul and attention once more for the
 * tangents (ds: two dots per key, datt: two axpys per key). */
double pl_decoder_patch_jvp_flops(const pl_model *m, int T, int resid_index, int pos)
{
    return 2.0 * m->ops->patch_flops(m, T, resid_index, pos) - unembed_flops(m);
}

/* VJP without the logits' values: the forward, each matmul once more transposed (input gradients
 * only, no weight gradients), and the attention's backward (dP, dq, dk, dv: four dots or axpys per
 * key, twice the forward's). */
double pl_decoder_patch_vjp_flops(const pl_model *m, int T, int resid_index, int pos)
{
    const pl_decoder *d = m->weights;
    double f = 2.0 * m->ops->patch_flops(m, T, resid_index, pos) - unembed_flops(m);
    for (int l = resid_index; l < d->cfg.n_layer; l++)
        f += attention_flops(&d->cfg, &d->blocks[l], pos, T);
    return f;
}
