/* libFuzzer target for the .npy parser (src/util/npy.c): any byte string is accepted or refused with
 * a message, never read outside; an accepted array's data lies inside the input and fills it exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_npy a;
    if (pl_npy_parse("fuzz.npy", data, size, &a) != PL_OK) {
        if (!pl_error()[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    size_t bytes = a.n_elements * a.element_bytes;
    if (a.data < data || a.data + bytes != data + size || a.ndim < 0 || a.ndim > PL_NPY_MAX_DIMS)
        abort();
    size_t n = 1;
    for (int i = 0; i < a.ndim; i++)
        n *= (size_t)a.shape[i];
    if (n != a.n_elements)
        abort();
    volatile uint8_t sink = 0;
    if (bytes) /* touch both ends: ASan checks the bounds */
        sink ^= a.data[0] ^ a.data[bytes - 1];
    (void)sink;
    return 0;
}
