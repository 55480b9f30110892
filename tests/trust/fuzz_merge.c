/* libFuzzer target for merge inputs (src/io/merge.c): the input is a NetCDF file's bytes, merged with
 * itself as a second hook would be (the same file twice is refused as one hook twice, after every
 * check of its structure, attributes and config has run) and alone (a merge of one file, which reads
 * and writes every variable). Any input is refused with a message or merged, never read outside and
 * never crashing plateau's code. netCDF/HDF5 parse the bytes first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* netCDF may keep pointers into the buffer while open: give it a copy it can own */
    void *a = malloc(size ? size : 1), *b = malloc(size ? size : 1);
    memcpy(a, data, size);
    memcpy(b, data, size);
    char *names[2] = {"fuzz-a.nc", "fuzz-b.nc"};
    void *bytes[2] = {a, b};
    size_t lens[2] = {size, size};
    void *out = NULL;
    size_t out_len = 0;
    pl_error_clear();
    if (pl_merge_buffers("fuzz-out.nc", names, bytes, lens, 1, &out, &out_len, NULL) == PL_OK) {
        if (!out || out_len == 0)
            abort();
        free(out);
        out = NULL;
        if (pl_merge_buffers("fuzz-out.nc", names, bytes, lens, 2, &out, &out_len, NULL) == PL_OK)
            abort(); /* one hook twice */
    } else if (!pl_error()[0]) {
        abort();
    }
    free(out);
    free(a);
    free(b);
    return 0;
}
