/* libFuzzer target for the safetensors header parser: st_parse must reject or accept any byte
 * string without reading outside it; every tensor it accepts must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>

#include "plateau/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file f;
    if (st_parse(&f, "fuzz.safetensors", data, size) != 0)
        return 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (t->data < data || t->data + (t->end - t->begin) > data + size)
            abort(); /* accepted a tensor outside the file */
        if (t->end > t->begin) /* touch both ends so ASan checks the bounds */
            sink ^= t->data[0] ^ t->data[t->end - t->begin - 1];
        if (st_find(&f, t->name) != t && st_find(&f, t->name) == NULL)
            abort();
    }
    (void)sink;
    st_free(&f);
    return 0;
}
