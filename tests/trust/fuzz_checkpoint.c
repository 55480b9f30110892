/* libFuzzer target for the checkpoint reader (src/sweep/checkpoint.c). The input is a checkpoint file
 * for a small fixed run (6 units, 2 metrics, 3 steps). Its last 64 bytes are a sha256 of the rest;
 * when the input's first byte is odd the target writes the right digest there first, so the fuzzer
 * also reaches everything the checksum guards. Any input is accepted or refused with a message,
 * never read outside; an accepted one fills the table with 0/1 done flags and a matching count, and
 * its optimiser states (format PLCKPT02; the run has 1 optimum in dimension 2) the store. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/hash.h"
#include "sweep_internal.h"

static const char *CONFIG = "[perturb]\nsteps = 3\n";
static const char *MODEL = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *DATA = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_sweep_config cfg;
    memset(&cfg, 0, sizeof cfg);
    pl_sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.cfg = &cfg;
    sw.n_units = 6;
    sw.NM = 2;
    sw.steps = 3;
    sw.n_opt = 1, sw.C = 2;
    pl_opt_store store;
    pl_opt_store_init(&store);
    sw.opt_store = &store;
    pl_results r;
    if (pl_results_init(&r, &sw) != PL_OK)
        abort();
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    if (size > 64 && (data[0] & 1)) {
        char digest[65];
        pl_sha256_hex(copy, size - 64, digest);
        memcpy(copy + size - 64, digest, 64);
    }
    pl_error_clear();
    if (pl_checkpoint_parse("fuzz.ckpt", copy, size, &r, CONFIG, MODEL, DATA) == PL_OK) {
        long n = 0;
        for (long u = 0; u < sw.n_units; u++) {
            if (r.done[u] > 1)
                abort();
            n += r.done[u];
        }
        if (n != r.n_done)
            abort();
    } else if (!pl_error()[0]) {
        abort();
    }
    for (int i = 0; i < store.n; i++)
        if (store.e[i].len == 0 || store.e[i].len > pl_opt_state_max(&sw))
            abort();
    free(copy);
    pl_results_free(&r);
    pl_opt_store_free(&store);
    return 0;
}
