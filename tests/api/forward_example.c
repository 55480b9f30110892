/* A program using libplateau as an installed library would (tests/api/test_install.py builds it with
 * `pkg-config --cflags --libs plateau` and with CMake's find_package(plateau)): open MODEL, run the
 * forward of the token ids given, print the last position's V logits, one per line (%.9g). */
#include <stdio.h>
#include <stdlib.h>

#include <plateau/plateau.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL ID...\n", argv[0]);
        return 1;
    }
    if (pl_api_version() / 100 != PL_API_VERSION / 100 || pl_api_version() < PL_API_VERSION) {
        fprintf(stderr, "libplateau has API version %d, this program needs %d\n", pl_api_version(), PL_API_VERSION);
        return 1;
    }
    int T = argc - 2;
    int *ids = malloc(sizeof(int) * (size_t)T);
    for (int t = 0; t < T; t++)
        ids[t] = atoi(argv[t + 2]);
    pl_lm *lm = NULL;
    pl_cache *run = NULL;
    float *logits = NULL;
    int rc = 2;
    if (pl_lm_open(&lm, argv[1]) != PL_OK || pl_lm_run(lm, ids, T, &run) != PL_OK)
        goto done;
    long V = pl_lm_size(lm, PL_SIZE_VOCAB);
    logits = malloc(sizeof(float) * (size_t)(T * V));
    if (!logits || pl_cache_logits(run, logits) != PL_OK)
        goto done;
    for (long v = 0; v < V; v++)
        printf("%.9g\n", logits[(T - 1) * V + v]);
    fprintf(stderr, "plateau %s (API %d): %s model, %d positions\n", pl_library_version(), pl_api_version(),
            pl_lm_family(lm), pl_cache_length(run));
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "error: %s\n", pl_last_error());
    free(logits);
    free(ids);
    pl_cache_free(run);
    pl_lm_close(lm);
    return rc;
}
