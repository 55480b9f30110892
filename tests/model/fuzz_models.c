/* libFuzzer target: opening a model from hostile bytes. FUZZ_LLAMA2C: the input is a llama2.c
 * checkpoint (header, sizes, tensor walk, non-finite scan); otherwise it is an HF dir's config.json
 * (every family's key parsing through model_type dispatch; the dir has no weights, so a config that
 * parses ends at "model.safetensors: cannot open"). Each input goes through pl_model_open from a file, as a
 * user's would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plateau/error.h"
#include "plateau/model.h"

static char dir[256], file[300];

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/plateau-fuzz-model.%ld", (long)getpid());
#ifdef FUZZ_LLAMA2C
        snprintf(file, sizeof file, "%s/model.bin", dir);
#else
        snprintf(file, sizeof file, "%s/config.json", dir);
#endif
    }
    mkdir(dir, 0700); /* every time: a concurrent run may have removed it */
    FILE *f = fopen(file, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    pl_model *m = NULL;
#ifdef FUZZ_LLAMA2C
    int rc = pl_model_open(&m, file);
#else
    int rc = pl_model_open(&m, dir);
#endif
    if (rc == PL_OK) {
        /* a complete model: its info must be self-consistent */
        const pl_model_info *i = pl_model_get_info(m);
        if (i->n_layer < 1 || i->d_model < 1 || i->n_vocab < 1 || i->n_head % i->n_kv_head)
            abort();
        pl_model_close(m);
    } else if (!pl_error()[0] || strchr(pl_error(), '\n')) {
        abort(); /* every failure is one line */
    }
    pl_error_clear();
    return 0;
}
