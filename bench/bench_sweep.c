/* The figures scripts/bench_sweep.sh needs besides the sweep's own evals/s: OpenBLAS's sgemm peak
 * on this machine, measured now, and the FLOPs of one fast-path evaluation and one full forward
 * under the sweep's default protocol (n_ctx = 10, blocks.1.hook_resid_pre, last position).
 *
 * usage: bench_sweep MODEL_DIR [--seconds S] [--ctx T] [--hook NAME]
 *        bench_sweep --shape WIDTH MLP [--seconds S] [--sustained]
 * --shape measures the sgemm of a model of that width and MLP size without loading one (a BF16
 * model's fp32 copy takes 10 GB and a minute): the peak alone, or with --sustained only the average
 * GFLOP/s of the batch shape (1010 x MLP x width: 1010 x 3072 x 768 for GPT-2 small) over S seconds.
 * Run two at once to see what two ranks can get from this machine.
 * Prints "key value" lines. Threads: OPENBLAS_NUM_THREADS (the script sets 1: per-core figures).
 */
#include <cblas.h>
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

/* Best GFLOP/s of one row-major sgemm shape over repeats for `seconds`; *sustained gets the
 * average over the whole window (what two processes running at once each get). */
static double sgemm_window(int M, int N, int K, double seconds, double *sustained)
{
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *Cm = malloc(sizeof(float) * M * N);
    if (!A || !B || !Cm) {
        fprintf(stderr, "bench_sweep: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < M * K; i++)
        A[i] = (float)((i % 97) - 48) * 0.01f;
    for (int i = 0; i < K * N; i++)
        B[i] = (float)((i % 89) - 44) * 0.01f;
    double best = 0.0, start = now();
    long calls = 0;
    while (now() - start < seconds) {
        double t0 = now();
        calls++;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, Cm, N);
        double g = 2.0 * M * N * K / (now() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    if (sustained)
        *sustained = 2.0 * M * N * K * calls / (now() - start) / 1e9;
    free(A), free(B), free(Cm);
    return best;
}

static double sgemm_best(int M, int N, int K, double seconds) { return sgemm_window(M, N, K, seconds, NULL); }

/* The best of the sweep's largest shapes: 101 rows through the MLP's input (C x I), and the
 * unembedding (C x V), plus a large square product: the peak the sweep is held against. *FC gets the
 * first one's. */
static double sgemm_peak(int C, int mlp, double seconds, double *fc)
{
    *fc = sgemm_best(101, mlp, C, seconds / 3);
    double unembed = sgemm_best(101, 4096, C, seconds / 3), square = sgemm_best(1536, 1536, 1536, seconds / 3);
    double peak = *fc > unembed ? *fc : unembed;
    return square > peak ? square : peak;
}

static const char *usage = "usage: bench_sweep MODEL_DIR [--seconds S] [--ctx T] [--hook NAME]\n"
                           "       bench_sweep --shape WIDTH MLP [--seconds S] [--sustained]\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 1;
    }
    double seconds = 4.0;
    int T = 10, C = 0, mlp = 0, sustained_only = 0, i = 1;
    const char *hook = "blocks.1.hook_resid_pre", *dir = NULL;
    if (!strcmp(argv[1], "--shape") && argc >= 4) {
        C = atoi(argv[2]), mlp = atoi(argv[3]), i = 4;
        if (C <= 0 || mlp <= 0) {
            fputs(usage, stderr);
            return 1;
        }
    } else
        dir = argv[i++];
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--sustained") && !dir)
            sustained_only = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc && dir)
            T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hook") && i + 1 < argc && dir)
            hook = argv[++i];
        else {
            fprintf(stderr, "bench_sweep: unknown or misplaced argument '%s'\n%s", argv[i], usage);
            return 1;
        }
    }
    double fc;
    if (!dir) {
        if (sustained_only) {
            double g;
            sgemm_window(1010, mlp, C, seconds, &g);
            printf("sgemm_sustained_gflops %.2f\n", g);
        } else
            printf("sgemm_peak_gflops %.2f\n", sgemm_peak(C, mlp, seconds, &fc));
        return 0;
    }
    pl_model *m;
    int r;
    if (pl_model_open(&m, dir) != PL_OK || pl_hook_parse(m, hook, &r) != PL_OK) {
        fprintf(stderr, "bench_sweep: %s\n", pl_error());
        return 2;
    }
    C = pl_model_get_info(m)->d_model, mlp = pl_model_get_info(m)->d_mlp;
    printf("sgemm_peak_gflops %.2f\n", sgemm_peak(C, mlp, seconds, &fc));
    /* the kernel OpenBLAS chose for this CPU (OPENBLAS_CORETYPE overrides it): the peak depends on it */
    printf("openblas_core %s\n", openblas_get_corename());
    printf("width %d\nmlp %d\n", C, mlp);
    printf("sgemm_mlp_shape %dx%d\n", mlp, C);
    printf("sgemm_101_mlp_gflops %.2f\n", fc);
    printf("patch_flops %.6g\n", pl_patch_flops(m, T, r, T - 1));
    printf("forward_flops %.6g\n", pl_forward_flops(m, T));
    pl_model_close(m);
    return 0;
}
