/* Forward and fast-path throughput against OpenBLAS's sgemm peak, measured in the same run.
 *
 * usage: bench_forward MODEL [--seconds S] [--ctx T,T,..] [--rows M,M,..] [--calls N]
 * (any model plateau opens: an HF dir or a llama2.c .bin). --ctx: the full forwards' lengths (default
 * 1,10,64,256), --rows: the fast path's row counts (default 1,16,101,404,1010: the sweep evaluates
 * batches of ~1000 rows per call), --calls: at least N calls per figure (default 3; 1 for the
 * largest shapes, where one 1010-row fast-path call of a Gemma-2-2B shape is ~5 TFLOP).
 * Prints a markdown table. FLOPs are those of pl_forward_flops / pl_patch_flops (matmuls and
 * attention, 2 per multiply-add; layernorm, GELU and softmax not counted). The threads OpenBLAS
 * uses come from OPENBLAS_NUM_THREADS (scripts/bench.sh sets 1: figures are per core).
 */
#include <cblas.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Best GFLOP/s of one sgemm shape over repeats for `seconds`. */
static double sgemm_best(int M, int N, int K, double seconds)
{
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *Cm = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++)
        A[i] = (float)((i % 97) - 48) * 0.01f;
    for (int i = 0; i < K * N; i++)
        B[i] = (float)((i % 89) - 44) * 0.01f;
    double best = 0.0, start = now();
    while (now() - start < seconds) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, Cm, N);
        double dt = now() - t0;
        double g = 2.0 * M * N * K / dt / 1e9;
        if (g > best)
            best = g;
    }
    free(A);
    free(B);
    free(Cm);
    return best;
}

/* OpenBLAS's sgemm peak on this machine: the best of a large square product and the fast path's
 * own largest shape (404 rows x d_mlp x width: 404 x 3072 x 768 for GPT-2 small). */
static double sgemm_peak(double seconds, int d_mlp, int C)
{
    double square = sgemm_best(1536, 1536, 1536, seconds / 2), fast = sgemm_best(404, d_mlp, C, seconds / 2);
    return square > fast ? square : fast;
}

/* The peak's readings through a table: LAST is the latest, LO and HI their range. */
typedef struct {
    double last, lo, hi, seconds;
    int d_mlp, C;
} peak_readings;

/* The mean of the reading before a row (P->last) and a new one after it, which becomes P->last. */
static double peak_around(peak_readings *p)
{
    double before = p->last;
    p->last = sgemm_peak(p->seconds, p->d_mlp, p->C);
    p->lo = p->last < p->lo ? p->last : p->lo;
    p->hi = p->last > p->hi ? p->last : p->hi;
    return (before + p->last) / 2;
}

/* Median-free, robust enough for a table: total time over as many calls as fit in `seconds`
 * (at least 3), divided by the count. */
#define TIME_CALLS(seconds, result, body)                                                                   \
    do {                                                                                                    \
        int calls_ = 0;                                                                                     \
        double start_ = now();                                                                              \
        while (calls_ < min_calls || now() - start_ < (seconds)) {                                          \
            body;                                                                                           \
            calls_++;                                                                                       \
        }                                                                                                   \
        (result) = (now() - start_) / calls_;                                                               \
    } while (0)

static int min_calls = 3;

/* A comma-separated list of positive integers into out[max]; returns the count, 0 if malformed. */
static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000 || (*end && *end != ','))
            return 0;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return *s ? 0 : n;
}

int main(int argc, char **argv)
{
    /* The heap as `plateau run` sets it (scheduler.c, keep_freed_memory): the fast path's per-call
     * scratch stays in the heap between calls instead of being mapped and faulted in afresh, so the
     * figures are the sweep's steady state (the faults were ~3 % of a 1010-row call here). */
#if defined(M_ARENA_MAX) && defined(M_MMAP_MAX) && defined(M_TRIM_THRESHOLD)
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
    const char *usage = "usage: bench_forward MODEL_DIR [--seconds S] [--ctx T,..] [--rows M,..] [--calls N]\n";
    double seconds = 3.0;
    int Ts[16] = {1, 10, 64, 256}, nT = 4, Ms[16] = {1, 16, 101, 404, 1010}, nM = 5;
    for (int i = 2; i < argc; i += 2) {
        int ok = i + 1 < argc;
        if (ok && !strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (ok && !strcmp(argv[i], "--ctx"))
            ok = (nT = parse_list(argv[i + 1], Ts, 16)) > 0;
        else if (ok && !strcmp(argv[i], "--rows"))
            ok = (nM = parse_list(argv[i + 1], Ms, 16)) > 0;
        else if (ok && !strcmp(argv[i], "--calls"))
            ok = (min_calls = atoi(argv[i + 1])) > 0;
        else
            ok = 0;
        if (!ok) {
            fprintf(stderr, "%s", usage);
            return 1;
        }
    }
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 1;
    }
    pl_model *m;
    if (pl_model_open(&m, argv[1])) {
        fprintf(stderr, "bench_forward: %s\n", pl_error());
        return 2;
    }
    const pl_model_info *cfg = pl_model_get_info(m);
    int C = cfg->d_model, V = cfg->n_vocab;
    /* The peak is read before the first row and after every row, and each row is held against the mean
     * of the readings on its two sides: this virtual machine's speed drifts by 10 % and more within a
     * minute, and one reading for the whole table made rows look better or worse than they were. */
    peak_readings pk = {sgemm_peak(seconds, cfg->d_mlp, C), 0.0, 0.0, seconds, cfg->d_mlp, C};
    pk.lo = pk.hi = pk.last;
    printf("model: %s L=%d C=%d H=%d KV=%d head_dim=%d MLP=%d V=%d; sgemm peak (best of 1536^3 and 404x%dx%d over "
           "%.1f s, OpenBLAS kernel %s), read before the first row: %.1f GFLOP/s\n\n",
           cfg->family, cfg->n_layer, C, cfg->n_head, cfg->n_kv_head, cfg->head_dim, cfg->d_mlp, V, cfg->d_mlp, C,
           seconds, openblas_get_corename(), pk.last);

    int *tokens = malloc(sizeof(int) * cfg->n_ctx);
    for (int t = 0; t < cfg->n_ctx; t++)
        tokens[t] = (int)((t * 7919L + 13) % V);

    printf("| path | size | calls/s | tokens or evals/s | GFLOP/s | %% of sgemm peak |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int i = 0; i < nT; i++) {
        int T = Ts[i];
        if (T > cfg->n_ctx)
            continue;
        double dt;
        pl_run run;
        TIME_CALLS(seconds, dt, {
            if (pl_forward(m, tokens, T, &run)) {
                fprintf(stderr, "bench_forward: %s\n", pl_error());
                return 2;
            }
            pl_run_free(&run);
        });
        double gf = pl_forward_flops(m, T) / dt / 1e9;
        printf("| full forward | T = %d | %.3g | %.3g tokens/s | %.1f | %.0f %% |\n", T, 1 / dt, T / dt, gf,
               100 * gf / peak_around(&pk));
    }

    /* The default protocol: T = 10, patch blocks.1.hook_resid_pre at the last position, read
     * blocks.(L-1).hook_resid_post. */
    int T = cfg->n_ctx < 10 ? cfg->n_ctx : 10, r = cfg->n_layer > 1 ? 1 : 0, pos = T - 1;
    pl_run clean;
    if (pl_forward(m, tokens, T, &clean)) {
        fprintf(stderr, "bench_forward: %s\n", pl_error());
        return 2;
    }
    int Mmax = 1;
    for (int i = 0; i < nM; i++)
        Mmax = Ms[i] > Mmax ? Ms[i] : Mmax;
    float *X = malloc(sizeof(float) * Mmax * C), *logits = malloc(sizeof(float) * Mmax * (size_t)V),
          *read = malloc(sizeof(float) * Mmax * C);
    if (!X || !logits || !read) {
        fprintf(stderr, "bench_forward: out of memory for %d rows\n", Mmax);
        return 2;
    }
    for (int v = 0; v < Mmax; v++)
        for (int c = 0; c < C; c++)
            X[(size_t)v * C + c] = clean.resid[((size_t)r * T + pos) * C + c] * (1.0f + 0.001f * (v % 404));
    for (int i = 0; i < nM; i++) {
        int M = Ms[i];
        double dt;
        TIME_CALLS(seconds, dt, {
            if (pl_patch_eval(m, &clean, r, pos, X, M, logits, cfg->n_layer, read)) {
                fprintf(stderr, "bench_forward: %s\n", pl_error());
                return 2;
            }
        });
        double gf = M * pl_patch_flops(m, T, r, pos) / dt / 1e9;
        printf("| fast path | M = %d | %.3g | %.3g evals/s | %.1f | %.0f %% |\n", M, 1 / dt, M / dt, gf,
               100 * gf / peak_around(&pk));
    }
    printf("\nEach row's %% is of the mean of the sgemm peak read just before and just after it; the readings "
           "ran from %.1f to %.1f GFLOP/s.\n", pk.lo, pk.hi);
    printf("\nFLOPs (pl_forward_flops, pl_patch_flops; docs/performance.md): matmuls and attention, 2 per multiply-add, logits "
           "of the last position only; here %.3g per fast-path row (T = %d, patch at blocks.%d.hook_resid_pre).\n",
           pl_patch_flops(m, T, r, pos), T, r);
    free(X);
    free(logits);
    free(read);
    free(tokens);
    pl_run_free(&clean);
    pl_model_close(m);
    return 0;
}
