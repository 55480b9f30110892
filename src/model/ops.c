/* The layer ops the model families share: one plain function per op, fp32 activations, row-major
 * [rows, width] (llm.c style). Statistics and softmax sums accumulate in double so that they do not
 * depend on the order of a float sum (the tests' float64 references compute them that way too). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "plateau/model.h"
#include "plateau/vecmath.h"

#include "ops.h"

/* Sums over a row X[C] in double, in four chains of adds joined as (0 + 1) + (2 + 3), so that the
 * adds of a row do not wait on each other (one chain was ~1.5 % of a GPT-2-shaped sweep). */
static double row_sum(const float *x, int C)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
        a0 += x[c];
        a1 += x[c + 1];
        a2 += x[c + 2];
        a3 += x[c + 3];
    }
    for (; c < C; c++)
        a0 += x[c]; /* the tail joins chain 0: C is a multiple of 4 in every model shipped */
    return (a0 + a1) + (a2 + a3);
}

/* The sum of (x - center)^2 over X[C], as row_sum. */
static double row_sum_sq(const float *x, int C, double center)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
        double d0 = x[c] - center, d1 = x[c + 1] - center, d2 = x[c + 2] - center, d3 = x[c + 3] - center;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    for (; c < C; c++) {
        double d = x[c] - center;
        a0 += d * d;
    }
    return (a0 + a1) + (a2 + a3);
}

/* out[N, C] = layernorm(in[N, C]) * w + b; statistics in double so that they do not depend on the
 * order of a float sum (the reference computes them in float64 too). */
void pl_op_layernorm(float *out, const float *in, const float *w, const float *b, int N, int C, float eps)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double mean = row_sum(x, C) / C;
        double var = row_sum_sq(x, C, mean) / C;
        float rstd = (float)(1.0 / sqrt(var + eps));
        float fmean = (float)mean;
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - fmean) * rstd * w[c] + b[c];
    }
}

/* out[N, OUT] = in[N, IN] @ W[IN, OUT] + bias[OUT]. One row goes through sgemv: OpenBLAS 0.3.21
 * does not route an M = 1 sgemm to its gemv kernels, and the sgemm path is several times slower. */
void pl_op_matmul(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT)
{
    float beta = bias ? 1.0f : 0.0f;
    if (bias)
        for (int i = 0; i < N; i++)
            memcpy(out + (size_t)i * OUT, bias, sizeof(float) * OUT);
    if (N == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, IN, OUT, 1.0f, W, OUT, in, 1, beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OUT, IN, 1.0f, in, IN, W, OUT, beta, out,
                    OUT);
}

void pl_compute_kernels(char *out, size_t size)
{
    snprintf(out, size, "OpenBLAS %s, %s exp", openblas_get_corename(), pl_vec_path());
}

int pl_blas_kernel_slow(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *core = openblas_get_corename();
    return __builtin_cpu_supports("avx512f") && (!strcasecmp(core, "haswell") || !strcasecmp(core, "zen"));
#else
    return 0;
#endif
}

/* GPT-2's "gelu_new", 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), written as
 * v * sigmoid(2u): the same function without tanh's cancellation near 0, and expf is several times
 * cheaper than tanhf (GELU is a tenth of the fast path's time with tanhf). */
#define EXP_CHUNK 256 /* gated_sigmoid's expf arguments on the stack: pl_vec_expf per chunk */

/* x[i] = x[i] * sigmoid(K * poly(x[i])) * (up ? up[i] : 1), poly(v) = v + CUBIC v^3: GELU-tanh (K =
 * 2 sqrt(2/pi), CUBIC = 0.044715) and SiLU (K = 1, CUBIC = 0), in chunks through pl_vec_expf. */
static void gated_sigmoid_plain(float *x, const float *up, size_t n, float K, float cubic)
{
    float e[EXP_CHUNK];
    for (size_t c0 = 0; c0 < n; c0 += EXP_CHUNK) {
        int m = n - c0 < EXP_CHUNK ? (int)(n - c0) : EXP_CHUNK;
        float *xc = x + c0;
        if (cubic != 0.0f)
            for (int i = 0; i < m; i++) {
                float v = xc[i];
                e[i] = -K * (v + cubic * v * v * v);
            }
        else /* not v + 0 v^3: that is NaN where v^3 overflows */
            for (int i = 0; i < m; i++)
                e[i] = -K * xc[i];
        pl_vec_expf(e, m);
        if (up)
            for (int i = 0; i < m; i++)
                xc[i] = xc[i] / (1.0f + e[i]) * up[c0 + i];
        else
            for (int i = 0; i < m; i++)
                xc[i] = xc[i] / (1.0f + e[i]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256 x);

/* gated_sigmoid_plain's operations, eight elements at a time in one pass (no FMA: the same roundings;
 * libmvec's expf on the same groups of eight, libm's on the last n % 8, as pl_vec_expf's chunks do). */
__attribute__((target("avx2,fma"))) static void gated_sigmoid_avx2(float *x, const float *up, size_t n, float K,
                                                                   float cubic)
{
    const __m256 nk = _mm256_set1_ps(-K), c3 = _mm256_set1_ps(cubic), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), a = v;
        if (cubic != 0.0f)
            a = _mm256_add_ps(v, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(c3, v), v), v));
        __m256 y = _mm256_div_ps(v, _mm256_add_ps(one, _ZGVdN8v_expf(_mm256_mul_ps(nk, a))));
        if (up)
            y = _mm256_mul_ps(y, _mm256_loadu_ps(up + i));
        _mm256_storeu_ps(x + i, y);
    }
    if (i < n)
        gated_sigmoid_plain(x + i, up ? up + i : NULL, n - i, K, cubic);
}
#endif

/* The fused pass where the process's vector math is AVX2 (pl_vec_avx2), else in chunks: the same bits.
 * The chunked version spent most of its time in scalar loops around the vector expf (1.5 % of a
 * GPT-2-shaped sweep, its GELU over 1010 x 3072 activations a block). */
static void gated_sigmoid(float *x, const float *up, size_t n, float K, float cubic)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (pl_vec_avx2()) {
        gated_sigmoid_avx2(x, up, n, K, cubic);
        return;
    }
#endif
    gated_sigmoid_plain(x, up, n, K, cubic);
}

void pl_op_gelu_tanh(float *x, size_t n) { gated_sigmoid(x, NULL, n, 2.0f * 0.7978845608028654f, 0.044715f); }

void pl_op_residual_add(float *x, const float *delta, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += delta[i];
}

void pl_op_linear(float *out, const float *in, const float *W, const float *bias, int N, int IN, int OUT)
{
    float beta = bias ? 1.0f : 0.0f;
    if (bias)
        for (int i = 0; i < N; i++)
            memcpy(out + (size_t)i * OUT, bias, sizeof(float) * OUT);
    if (N == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OUT, IN, 1.0f, W, IN, in, 1, beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN, 1.0f, in, IN, W, IN, beta, out, OUT);
}

void pl_op_rmsnorm(float *out, const float *in, const float *w, int N, int C, float eps)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float rstd = (float)(1.0 / sqrt(row_sum_sq(x, C, 0.0) / C + eps));
        for (int c = 0; c < C; c++)
            y[c] = x[c] * rstd * w[c];
    }
}

void pl_op_rmsnorm_1p(float *out, const float *in, const float *w, int N, int C, float eps)
{
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float rstd = (float)(1.0 / sqrt(row_sum_sq(x, C, 0.0) / C + eps));
        for (int c = 0; c < C; c++)
            y[c] = x[c] * rstd * (1.0f + w[c]);
    }
}

void pl_op_geglu_tanh(float *gate, const float *up, size_t n)
{
    gated_sigmoid(gate, up, n, 2.0f * 0.7978845608028654f, 0.044715f);
}

void pl_op_softcap(float *x, size_t n, float cap)
{
    for (size_t i = 0; i < n; i++)
        x[i] /= cap;
    pl_vec_tanhf(x, n);
    for (size_t i = 0; i < n; i++)
        x[i] *= cap;
}

void pl_op_gelu_erf(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void pl_op_swiglu(float *gate, const float *up, size_t n) { gated_sigmoid(gate, up, n, 1.0f, 0.0f); }

void pl_op_rope_table(float *cs, const float *inv_freq, int ROT, int first, int period)
{
    int half = ROT / 2;
    for (int p = 0; p < period; p++)
        for (int k = 0; k < half; k++) {
            float angle = (float)(first + p) * inv_freq[k];
            cs[2 * ((size_t)p * half + k)] = cosf(angle);
            cs[2 * ((size_t)p * half + k) + 1] = sinf(angle);
        }
}

void pl_op_rope(float *x, int R, size_t row_stride, int NH, int HD, int ROT, const float *cs, int period,
                int interleaved)
{
    int half = ROT / 2;
    for (int i = 0; i < R; i++) {
        const float *c = cs + 2 * (size_t)(i % period) * half;
        for (int h = 0; h < NH; h++) {
            float *v = x + (size_t)i * row_stride + (size_t)h * HD;
            for (int k = 0; k < half; k++) {
                int a = interleaved ? 2 * k : k, b = interleaved ? 2 * k + 1 : k + half;
                float x0 = v[a], x1 = v[b], co = c[2 * k], si = c[2 * k + 1];
                v[a] = x0 * co - x1 * si;
                v[b] = x1 * co + x0 * si;
            }
        }
    }
}

/* y[i] += a x[i], i < n: four at a time where SSE is (each element's product and sum are those of the
 * scalar loop, so the same bits); the compiler keeps the scalar loop, since y might alias x. */
static inline void add_scaled(float *restrict y, float a, const float *restrict x, int n)
{
    int i = 0;
#ifdef __SSE__
    __m128 va = _mm_set1_ps(a);
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_mul_ps(va, _mm_loadu_ps(x + i))));
#endif
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* Row s of the keys (or values) a[0..n_a) (row stride STRIDE_A) followed by b (STRIDE_B). */
static inline const float *kv_row(const float *a, const float *b, int n_a, size_t stride_a, size_t stride_b, int s)
{
    return s < n_a ? a + (size_t)s * stride_a : b + (size_t)(s - n_a) * stride_b;
}

void pl_op_attend_one(float *out, const float *q, const float *ka, const float *va, int n_a, size_t stride_a,
                      const float *kb, const float *vb, int n_b, size_t stride_b, int H, int KVH, int HD,
                      float *scores, const pl_attn_opts *opt)
{
    float scale = opt && opt->scale > 0 ? opt->scale : 1.0f / sqrtf((float)HD), cap = opt ? opt->softcap : 0.0f;
    int n = n_a + n_b, group = H / KVH;
    int lo = opt && opt->window > 0 && n > opt->window ? n - opt->window : 0; /* the first key in the window */
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * HD;
        size_t kv_off = (size_t)(h / group) * HD;
        float maxv = -INFINITY;
        /* Four keys' dots at a time, each summed over i in order as one dot alone would be (the same
         * bits): a single float sum is a chain of dependent adds, and at head_dim 64 those chains were
         * most of the fast path's attention time. */
        int s = lo;
        for (; s + 4 <= n; s += 4) {
            const float *k0 = kv_row(ka, kb, n_a, stride_a, stride_b, s) + kv_off;
            const float *k1 = kv_row(ka, kb, n_a, stride_a, stride_b, s + 1) + kv_off;
            const float *k2 = kv_row(ka, kb, n_a, stride_a, stride_b, s + 2) + kv_off;
            const float *k3 = kv_row(ka, kb, n_a, stride_a, stride_b, s + 3) + kv_off;
            float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
            for (int i = 0; i < HD; i++) {
                d0 += qh[i] * k0[i];
                d1 += qh[i] * k1[i];
                d2 += qh[i] * k2[i];
                d3 += qh[i] * k3[i];
            }
            scores[s] = d0 * scale, scores[s + 1] = d1 * scale, scores[s + 2] = d2 * scale, scores[s + 3] = d3 * scale;
        }
        for (; s < n; s++) {
            const float *k = kv_row(ka, kb, n_a, stride_a, stride_b, s) + kv_off;
            float dot = 0.0f;
            for (int i = 0; i < HD; i++)
                dot += qh[i] * k[i];
            scores[s] = dot * scale;
        }
        for (s = lo; s < n; s++) {
            if (cap > 0)
                scores[s] = cap * tanhf(scores[s] / cap);
            if (scores[s] > maxv)
                maxv = scores[s];
        }
        double sum = 0.0;
        for (int s = lo; s < n; s++) {
            scores[s] = expf(scores[s] - maxv);
            sum += scores[s];
        }
        float inv = (float)(1.0 / sum);
        float *oh = out + (size_t)h * HD;
        for (int i = 0; i < HD; i++)
            oh[i] = 0.0f;
        for (int s = lo; s < n; s++) {
            const float *v = kv_row(va, vb, n_a, stride_a, stride_b, s) + kv_off;
            add_scaled(oh, scores[s] * inv, v, HD);
        }
    }
}

void pl_op_causal_attention(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                            size_t kv_stride, int T, int H, int KVH, int HD, float *scores, const pl_attn_opts *opt)
{
    float scale = opt && opt->scale > 0 ? opt->scale : 1.0f / sqrtf((float)HD), cap = opt ? opt->softcap : 0.0f;
    int group = H / KVH, window = opt ? opt->window : 0;
    for (int h = 0; h < H; h++) {
        const float *qh = q + (size_t)h * HD, *kh = k + (size_t)(h / group) * HD, *vh = v + (size_t)(h / group) * HD;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, scale, qh, (int)q_stride, kh, (int)kv_stride,
                    0.0f, scores, T);
        for (int t = 0; t < T; t++) {
            float *row = scores + (size_t)t * T;
            int lo = window > 0 && t + 1 > window ? t + 1 - window : 0; /* keys lo..t: i - j < window */
            if (cap > 0)
                pl_op_softcap(row + lo, (size_t)(t + 1 - lo), cap);
            float maxv = -INFINITY;
            for (int u = lo; u <= t; u++)
                if (row[u] > maxv)
                    maxv = row[u];
            double sum = 0.0;
            for (int u = lo; u <= t; u++) {
                row[u] = expf(row[u] - maxv);
                sum += row[u];
            }
            float inv = (float)(1.0 / sum);
            for (int u = 0; u < lo; u++)
                row[u] = 0.0f;
            for (int u = lo; u <= t; u++)
                row[u] *= inv;
            for (int u = t + 1; u < T; u++)
                row[u] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1.0f, scores, T, vh, (int)kv_stride, 0.0f,
                    out + (size_t)h * HD, H * HD);
    }
}
