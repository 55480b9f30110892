/* exp and log over arrays, in place, several at a time: glibc's vector math library (libmvec, AVX2,
 * under 4 ulp) when the CPU has AVX2 and FMA, else scalar libm. KL and JSD take an exp and a log per
 * vocabulary entry and step, GELU and SiLU an expf per activation: with scalar libm they were a sixth
 * and a thirtieth of a sweep's time. The path is chosen once per process from the CPU, so every rank
 * of a job on one CPU type computes the same bits (the scheduler checks that every rank has the same:
 * pl_compute_kernels). */
#ifndef PLATEAU_VECMATH_H
#define PLATEAU_VECMATH_H

#include <stddef.h>

void pl_vec_exp(double *x, int n);
void pl_vec_log(double *x, int n);
void pl_vec_expf(float *x, int n);
/* tanhf: libmvec's within 1 ulp of tanh on [-16, 16] (measured; libm's tanhf within 2), the
 * final soft-cap's over every logit of Gemma 2 (256,000 a row). */
void pl_vec_tanhf(float *x, size_t n);
/* Index of the first non-finite value (NaN, +-inf) of X[n], or -1. The batches check every logit of
 * every row (50,257 to 256,000 a row): a test of isfinite per value was ~1 % of a sweep; this one
 * tests the exponent bits of 16 values at a time (SSE2, every x86-64) and looks for the index only in
 * a block that holds one. */
long pl_vec_first_nonfinite(const float *x, size_t n);
/* "AVX2" or "scalar": the path the functions above, and the fused passes that follow their choice
 * (divergences.c, ops.c's gated activations), take in this process. */
const char *pl_vec_path(void);
/* Whether that path is AVX2 (the fused passes' test). */
int pl_vec_avx2(void);
/* For tests of both paths on one CPU (tests/experiment/vector_paths.c): ON = 1 takes the scalar path
 * from here on, 0 the CPU's again. Not for runs: every rank of a job must take the CPU's path. */
void pl_vec_force_scalar(int on);

#endif
