/* The fused vector paths against the whole-array computation they replaced, written here again
 * (pl_vec_exp, pl_vec_log and pl_vec_expf over whole arrays or chunks, then plain loops), and against
 * the definitions in long double, on the CPU's vector path and on the scalar one (pl_vec_force_scalar):
 *   - a row's log-sum-exp, KL and JSD (divergences.c): the same bits as the whole-array computation,
 *     and the definitions' values;
 *   - GELU (tanh), SiLU-gated and GELU-gated activations (ops.c): the same bits as the chunked
 *     computation, and the definitions' values;
 *   - the soft-cap c tanh(x / c) (libmvec's tanhf on the AVX2 path, libm's on the plain one): within a
 *     few float ulps of the definition on both;
 *   - the index of the first non-finite value (pl_vec_first_nonfinite), against a plain isfinite scan:
 *     NaN, +-inf, the largest finite float and subnormals at every offset of arrays around its 16-value
 *     blocks.
 * Rows: vocabulary sizes with and without a tail of V % 4 entries, a row equal to the clean one, rows
 * far enough from it that probabilities underflow to 0 on either side (the branches the AVX2 path
 * blends), and logits of a trained model's range. On a CPU without AVX2 both runs take the plain path
 * (it prints which path the CPU has).
 * usage: vector_paths   (exit 0 when every check holds, 1 otherwise) */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "divergences.h"
#include "ops.h"
#include "plateau/vecmath.h"

static int failures, checks;

static void check(int ok, const char *what, double got, double want)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [0, 1), splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------------ divergences */

typedef struct {
    double lse, kl, jsd;
} row_result;

/* The metrics' use of divergences.h: the clean row's distribution, then the row's divergences. */
static row_result plateau_row(const float *z0, const float *z, int V, double *p0, double *e)
{
    row_result r;
    double sum0, sum;
    double lse0 = pl_row_log_sum_exp(z0, V, e, &sum0);
    for (int v = 0; v < V; v++)
        p0[v] = (double)z0[v] - lse0;
    pl_vec_exp(p0, V);
    r.lse = pl_row_log_sum_exp(z, V, e, &sum);
    pl_row_divergences(p0, z0, lse0, z, e, r.lse, sum, V, 1, 1, &r.kl, &r.jsd);
    return r;
}

/* The whole-array computation metrics.c did before divergences.c (its softmax_unnormalised, kl_row and
 * jsd_row): every V-long pass in turn, exp and log through pl_vec_exp and pl_vec_log, sums in four lanes. */
static double lanes(const double *acc) { return (acc[0] + acc[1]) + (acc[2] + acc[3]); }

static double replica_lse(const float *z, int V, double *e, double *sum)
{
    float mx = -INFINITY;
    for (int v = 0; v < V; v++)
        mx = z[v] > mx ? z[v] : mx;
    double acc[4] = {0, 0, 0, 0};
    for (int v = 0; v < V; v++)
        e[v] = (double)z[v] - mx;
    pl_vec_exp(e, V);
    for (int v = 0; v < V; v++)
        acc[v % 4] += e[v];
    *sum = lanes(acc);
    return mx + log(*sum);
}

static row_result replica_row(const float *z0, const float *z, int V, double *p0, double *e)
{
    row_result r;
    double sum, *logp0 = malloc(sizeof(double) * V), *logm = malloc(sizeof(double) * V);
    double lse0 = replica_lse(z0, V, p0, &sum);
    for (int v = 0; v < V; v++)
        logp0[v] = (double)z0[v] - lse0;
    memcpy(p0, logp0, sizeof(double) * V);
    pl_vec_exp(p0, V);
    r.lse = replica_lse(z, V, e, &sum);
    double kl[4] = {0, 0, 0, 0}, jsd[4] = {0, 0, 0, 0}, inv = 1.0 / sum;
    for (int v = 0; v < V; v++)
        if (p0[v] > 0.0)
            kl[v % 4] += p0[v] * (logp0[v] - ((double)z[v] - r.lse));
    for (int v = 0; v < V; v++)
        logm[v] = 0.5 * (p0[v] + e[v] * inv);
    pl_vec_log(logm, V);
    for (int v = 0; v < V; v++) {
        double p = p0[v], q = e[v] * inv, lq = (double)z[v] - r.lse, t = 0.0;
        if (!(p + q > 0.0))
            continue;
        if (p > 0.0)
            t += 0.5 * p * (logp0[v] - logm[v]);
        if (q > 0.0)
            t += 0.5 * q * (lq - logm[v]);
        jsd[v % 4] += t;
    }
    r.kl = lanes(kl), r.jsd = lanes(jsd);
    free(logp0), free(logm);
    return r;
}

/* The definitions, in long double: KL(p || q) = sum p log(p / q) over p > 0; JSD = (KL(p || m) +
 * KL(q || m)) / 2 with m = (p + q) / 2. */
static row_result reference_row(const float *z0, const float *z, int V)
{
    long double m0 = -INFINITY, m = -INFINITY, s0 = 0, s = 0, kl = 0, jsd = 0;
    for (int v = 0; v < V; v++) {
        m0 = z0[v] > m0 ? z0[v] : m0;
        m = z[v] > m ? z[v] : m;
    }
    for (int v = 0; v < V; v++) {
        s0 += expl(z0[v] - m0);
        s += expl(z[v] - m);
    }
    long double lse0 = m0 + logl(s0), lse = m + logl(s);
    for (int v = 0; v < V; v++) {
        long double lp = z0[v] - lse0, lq = z[v] - lse, p = expl(lp), q = expl(lq), mm = (p + q) / 2;
        if (p > 0)
            kl += p * (lp - lq);
        if (p > 0)
            jsd += p * (lp - logl(mm)) / 2;
        if (q > 0)
            jsd += q * (lq - logl(mm)) / 2;
    }
    return (row_result){(double)lse, (double)kl, (double)jsd};
}

static void divergence_rows(int V)
{
    float *z0 = malloc(sizeof(float) * V), *z = malloc(sizeof(float) * V);
    double *p0 = malloc(sizeof(double) * V), *e = malloc(sizeof(double) * V);
    for (int v = 0; v < V; v++) /* a trained model's range: a few large logits over a spread */
        z0[v] = (float)(8.0 * (uniform() - 0.5) + (uniform() < 0.01 ? 12.0 * uniform() : 0.0));
    /* perturbations from none to ones that push entries 800 nats down (p or q underflows to 0) */
    const double scales[] = {0.0, 1e-6, 1e-3, 0.1, 1.0, 10.0, 800.0};
    for (size_t k = 0; k < sizeof scales / sizeof *scales; k++) {
        for (int v = 0; v < V; v++)
            z[v] = (float)(z0[v] + scales[k] * (uniform() - (k == 6 ? 0.0 : 0.5)) * (v % 3 == 0 && k == 6 ? -1 : 1));
        row_result fast = {0, 0, 0};
        for (int scalar = 0; scalar < 2; scalar++) {
            pl_vec_force_scalar(scalar);
            row_result got = plateau_row(z0, z, V, p0, e), want = replica_row(z0, z, V, p0, e);
            const char *path = pl_vec_path();
            char what[160];
            snprintf(what, sizeof what, "V %d, scale %g, %s path: lse vs the whole-array computation (bits)", V,
                     scales[k], path);
            check(!memcmp(&got.lse, &want.lse, sizeof(double)), what, got.lse, want.lse);
            snprintf(what, sizeof what, "V %d, scale %g, %s path: KL vs the whole-array computation (bits)", V,
                     scales[k], path);
            check(!memcmp(&got.kl, &want.kl, sizeof(double)), what, got.kl, want.kl);
            snprintf(what, sizeof what, "V %d, scale %g, %s path: JSD vs the whole-array computation (bits)", V,
                     scales[k], path);
            check(!memcmp(&got.jsd, &want.jsd, sizeof(double)), what, got.jsd, want.jsd);
            if (!scalar)
                fast = got;
        }
        pl_vec_force_scalar(0);
        row_result ref = reference_row(z0, z, V);
        char what[160];
        /* the definitions: lse to 1e-14 relative; KL and JSD to 1e-9 relative above a floor of 1e-14
         * (doubles summing 50,000 terms of size ~1e-4 leave ~1e-15 absolute) */
        snprintf(what, sizeof what, "V %d, scale %g: lse vs its definition", V, scales[k]);
        check(fabs(fast.lse - ref.lse) <= 1e-14 * fabs(ref.lse) + 1e-14, what, fast.lse, ref.lse);
        snprintf(what, sizeof what, "V %d, scale %g: KL vs its definition", V, scales[k]);
        check(fabs(fast.kl - ref.kl) <= 1e-9 * fabs(ref.kl) + 1e-14, what, fast.kl, ref.kl);
        snprintf(what, sizeof what, "V %d, scale %g: JSD vs its definition", V, scales[k]);
        check(fabs(fast.jsd - ref.jsd) <= 1e-9 * fabs(ref.jsd) + 1e-14, what, fast.jsd, ref.jsd);
        if (k == 0) {
            check(fast.kl == 0.0, "KL of the clean row itself", fast.kl, 0.0);
            /* JSD's terms are not exactly 0 (q = e / sum is not p0's exp bit for bit): rounding only;
             * metrics.c writes the clean row's as 0 */
            check(fabs(fast.jsd) <= 1e-15, "JSD of the clean row itself (rounding only)", fast.jsd, 0.0);
        }
    }
    free(z0), free(z), free(p0), free(e);
}

/* ------------------------------------------------------------ activations */

enum { GELU, SWIGLU, GEGLU };

static long double gelu_tanh_ref(long double x)
{
    return 0.5L * x * (1.0L + tanhl(0.7978845608028654L * (x + 0.044715L * x * x * x)));
}

/* The chunked computation ops.c did before its fused pass: chunks of 256, the exp arguments, pl_vec_expf
 * over the chunk, then x / (1 + e) (* up). */
static void replica_gated(float *x, const float *up, size_t n, float K, float cubic)
{
    float e[256];
    for (size_t c0 = 0; c0 < n; c0 += 256) {
        int m = n - c0 < 256 ? (int)(n - c0) : 256;
        float *xc = x + c0;
        for (int i = 0; i < m; i++) {
            float v = xc[i];
            e[i] = cubic != 0.0f ? -K * (v + cubic * v * v * v) : -K * v;
        }
        pl_vec_expf(e, m);
        for (int i = 0; i < m; i++)
            xc[i] = up ? xc[i] / (1.0f + e[i]) * up[c0 + i] : xc[i] / (1.0f + e[i]);
    }
}

static void activation(int kind, size_t n)
{
    float *x = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    float *up = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(12.0 * (uniform() - 0.5));
        up[i] = (float)(4.0 * (uniform() - 0.5));
    }
    static const char *names[] = {"GELU (tanh)", "SwiGLU", "GeGLU"};
    const float k_gelu = 2.0f * 0.7978845608028654f;
    for (int scalar = 1; scalar >= 0; scalar--) { /* the CPU's path last: a, checked below, is its */
        pl_vec_force_scalar(scalar);
        memcpy(a, x, sizeof(float) * n);
        memcpy(b, x, sizeof(float) * n);
        if (kind == GELU)
            pl_op_gelu_tanh(a, n), replica_gated(b, NULL, n, k_gelu, 0.044715f);
        else if (kind == SWIGLU)
            pl_op_swiglu(a, up, n), replica_gated(b, up, n, 1.0f, 0.0f);
        else
            pl_op_geglu_tanh(a, up, n), replica_gated(b, up, n, k_gelu, 0.044715f);
        char what[160];
        snprintf(what, sizeof what, "%s, n %zu, %s path: vs the chunked computation (bits)", names[kind], n,
                 pl_vec_path());
        size_t first = 0;
        while (first < n && !memcmp(a + first, b + first, sizeof(float)))
            first++;
        check(first == n, what, first < n ? a[first] : 0.0, first < n ? b[first] : 0.0);
    }
    char what[160];
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        long double v = x[i], want = kind == GELU ? gelu_tanh_ref(v)
                                     : kind == SWIGLU ? v / (1.0L + expl(-v)) * up[i]
                                                      : gelu_tanh_ref(v) * up[i];
        double err = (double)fabsl(a[i] - want) / (fabs((double)want) + 1e-30);
        if (fabsl(want) > 1e-3 && err > worst)
            worst = err, at = i;
    }
    snprintf(what, sizeof what, "%s, n %zu: worst relative error vs the definition (at x = %g)", names[kind], n,
             (double)x[at]);
    check(worst < 1e-5, what, worst, 1e-5);
    free(x), free(a), free(b), free(up);
}

static void softcap(size_t n, float cap)
{
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(6.0 * cap * (uniform() - 0.5));
    for (int pass = 0; pass < 2; pass++) {
        memcpy(y, x, sizeof(float) * n);
        pl_vec_force_scalar(pass);
        pl_op_softcap(y, n, cap);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            long double want = cap * tanhl((long double)x[i] / cap);
            double ulp = nextafterf(fabsf((float)want), INFINITY) - fabsf((float)want);
            double err = (double)fabsl(y[i] - want) / ulp;
            worst = err > worst ? err : worst;
        }
        char what[128];
        snprintf(what, sizeof what, "soft-cap %g, %s path: worst error vs c tanh(x / c), in float ulps", (double)cap,
                 pass ? "plain C" : pl_vec_path());
        check(worst <= 4.0, what, worst, 4.0);
    }
    pl_vec_force_scalar(0);
    free(x), free(y);
}

/* Index of the first non-finite value, the plain way. */
static long first_nonfinite_ref(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return (long)i;
    return -1;
}

static void first_nonfinite(void)
{
    const float odd[] = {NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e-45f, -0.0f};
    float x[80];
    for (size_t n = 0; n <= 80; n++)
        for (size_t at = 0; at <= n; at++) /* at == n: every value finite */
            for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
                for (size_t i = 0; i < n; i++)
                    x[i] = (float)(200.0 * (uniform() - 0.5));
                if (at < n)
                    x[at] = odd[k];
                if (at + 3 < n && k % 2) /* a second one later must not matter */
                    x[at + 3] = INFINITY;
                long got = pl_vec_first_nonfinite(x, n), want = first_nonfinite_ref(x, n);
                char what[128];
                snprintf(what, sizeof what, "first non-finite of %zu values, %g at %zu", n, (double)odd[k], at);
                check(got == want, what, (double)got, (double)want);
            }
}

int main(void)
{
    first_nonfinite();
    printf("vector path of this CPU: %s\n", pl_vec_path());
    const int Vs[] = {50257, 1000, 4099, 7, 3};
    for (size_t i = 0; i < sizeof Vs / sizeof *Vs; i++)
        divergence_rows(Vs[i]);
    const size_t ns[] = {3072 * 4, 3072 * 4 + 5, 7, 256 + 3};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (int kind = GELU; kind <= GEGLU; kind++)
            activation(kind, ns[i]);
    softcap(256000 + 5, 30.0f);
    softcap(1000, 50.0f);
    printf("%d of %d checks hold\n", checks - failures, checks);
    return failures ? 1 : 0;
}
