/* The SAE's encoding and decoding, for the numpy comparison (tests/sae/test_sae_numerics.py):
 *
 *   sae_probe SAE_DIR D_MODEL N IN.f32 OUT.bin
 *
 * reads N rows of D_MODEL float32 from IN.f32, opens SAE_DIR as a sweep does, and writes to OUT.bin:
 * acts [N, d_sae] of one encode call over all rows, acts [N, d_sae] of N one-row calls (the sgemv
 * path), the reconstruction [N, d_in], gain [N] and shift [N] (float32), then the readouts L0 [N]
 * and |x - x_hat| [N] (float64). An SAE that does not open: "plateau: <message>", exit 2. */
#include <stdio.h>
#include <stdlib.h>

#include "plateau/error.h"
#include "sae.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: sae_probe SAE_DIR D_MODEL N IN.f32 OUT.bin\n");
        return 1;
    }
    int D = atoi(argv[2]), N = atoi(argv[3]);
    pl_sae sae;
    if (pl_sae_open(&sae, argv[1], D) != PL_OK) {
        fprintf(stderr, "plateau: %s\n", pl_error());
        return 2;
    }
    int F = sae.d_sae;
    float *x = malloc(sizeof(float) * (size_t)N * D), *acts = malloc(sizeof(float) * (size_t)N * F);
    float *acts1 = malloc(sizeof(float) * (size_t)N * F), *recon = malloc(sizeof(float) * (size_t)N * D);
    float *gain = malloc(sizeof(float) * N), *shift = malloc(sizeof(float) * N);
    double *l0 = malloc(sizeof(double) * N), *err = malloc(sizeof(double) * N);
    void *scratch = malloc(pl_sae_readout_scratch(&sae, N));
    FILE *in = fopen(argv[4], "rb"), *out = fopen(argv[5], "wb");
    if (!x || !acts || !acts1 || !recon || !gain || !shift || !l0 || !err || !scratch || !in || !out ||
        fread(x, sizeof(float), (size_t)N * D, in) != (size_t)N * D) {
        fprintf(stderr, "sae_probe: cannot read %s or write %s\n", argv[4], argv[5]);
        return 1;
    }
    pl_sae_encode(&sae, x, N, scratch, acts, gain, shift);
    pl_sae_decode(&sae, acts, N, gain, shift, recon);
    for (int r = 0; r < N; r++)
        pl_sae_encode(&sae, x + (size_t)r * D, 1, scratch, acts1 + (size_t)r * F, NULL, NULL);
    pl_sae_readout(&sae, x, N, scratch, l0, err);
    fwrite(acts, sizeof(float), (size_t)N * F, out);
    fwrite(acts1, sizeof(float), (size_t)N * F, out);
    fwrite(recon, sizeof(float), (size_t)N * D, out);
    fwrite(gain, sizeof(float), N, out);
    fwrite(shift, sizeof(float), N, out);
    fwrite(l0, sizeof(double), N, out);
    fwrite(err, sizeof(double), N, out);
    fclose(in);
    if (fclose(out) != 0)
        return 1;
    printf("%s %s d_sae %d k %d\n", sae.hook, pl_sae_arch_name(sae.arch), F, sae.k);
    free(x), free(acts), free(acts1), free(recon), free(gain), free(shift), free(l0), free(err), free(scratch);
    pl_sae_close(&sae);
    return 0;
}
