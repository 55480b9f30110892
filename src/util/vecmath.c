/* Vectorised exp, log, expf and tanhf, and the scan for non-finite values (plateau/vecmath.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "plateau/vecmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* libmvec's AVX2 variants; the target attribute makes the __m256 arguments' ABI the AVX one (clang
 * refuses the call without it) */
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_exp(__m256d x);
__attribute__((target("avx2,fma"))) __m256d _ZGVdN4v_log(__m256d x);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256 x);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_tanhf(__m256 x);

__attribute__((target("avx2,fma"))) static void exp_avx2(double *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(x + i, _ZGVdN4v_exp(_mm256_loadu_pd(x + i)));
    for (; i < n; i++)
        x[i] = exp(x[i]);
}

__attribute__((target("avx2,fma"))) static void log_avx2(double *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(x + i, _ZGVdN4v_log(_mm256_loadu_pd(x + i)));
    for (; i < n; i++)
        x[i] = log(x[i]);
}

__attribute__((target("avx2,fma"))) static void expf_avx2(float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _ZGVdN8v_expf(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        x[i] = expf(x[i]);
}

__attribute__((target("avx2,fma"))) static void tanhf_avx2(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _ZGVdN8v_tanhf(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        x[i] = tanhf(x[i]);
}

static int forced_scalar;

static int use_avx2(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached && !forced_scalar;
}
#else
static int forced_scalar;
static int use_avx2(void) { return 0; }
static void exp_avx2(double *x, int n) { (void)x, (void)n; }
static void log_avx2(double *x, int n) { (void)x, (void)n; }
static void expf_avx2(float *x, int n) { (void)x, (void)n; }
static void tanhf_avx2(float *x, size_t n) { (void)x, (void)n; }
#endif

void pl_vec_exp(double *x, int n)
{
    if (use_avx2()) {
        exp_avx2(x, n);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = exp(x[i]);
}

void pl_vec_log(double *x, int n)
{
    if (use_avx2()) {
        log_avx2(x, n);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = log(x[i]);
}

void pl_vec_expf(float *x, int n)
{
    if (use_avx2()) {
        expf_avx2(x, n);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = expf(x[i]);
}

void pl_vec_tanhf(float *x, size_t n)
{
    if (use_avx2()) {
        tanhf_avx2(x, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

/* Whether X[16] holds a value whose exponent bits are all ones (NaN or +-inf). */
#if defined(__x86_64__) && defined(__GNUC__)
static int block_has_nonfinite(const float *x)
{
    const __m128i exponent = _mm_set1_epi32(0x7f800000);
    __m128i hit = _mm_setzero_si128();
    for (int i = 0; i < 16; i += 4) {
        __m128i bits = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(x + i)), exponent);
        hit = _mm_or_si128(hit, _mm_cmpeq_epi32(bits, exponent));
    }
    return _mm_movemask_epi8(hit) != 0;
}
#else
static int block_has_nonfinite(const float *x)
{
    int hit = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        hit |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return hit;
}
#endif

long pl_vec_first_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    while (i + 16 <= n && !block_has_nonfinite(x + i))
        i += 16;
    for (; i < n; i++)
        if (!isfinite(x[i]))
            return (long)i;
    return -1;
}

void pl_vec_force_scalar(int on) { forced_scalar = on; }

int pl_vec_avx2(void) { return use_avx2(); }

const char *pl_vec_path(void) { return use_avx2() ? "AVX2" : "scalar"; }
