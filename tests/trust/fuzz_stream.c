/* libFuzzer target for the bounded stream reader (pl_read_stream, src/util/fileio.c: tokenize's stdin):
 * the input's first byte sets the cap (0..255 times 257 bytes: the buffer's growth steps and the cap fall
 * anywhere), the rest is the stream. A stream of at most the cap reads back byte for byte, NUL-terminated;
 * a longer one is refused with a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = (size_t)data[0] * 257, n = size - 1;
    FILE *fp = n ? fmemopen((void *)(data + 1), n, "rb") : fopen("/dev/null", "rb");
    if (!fp)
        return 0;
    char *text = NULL;
    size_t len = 0;
    int rc = pl_read_stream(fp, "fuzz", cap, &text, &len);
    fclose(fp);
    if (rc != PL_OK) {
        if (n <= cap || !pl_error()[0])
            abort(); /* refused only past the cap, and always saying why */
        return 0;
    }
    if (n > cap || len != n || memcmp(text, data + 1, n) || text[len] != '\0')
        abort();
    free(text);
    return 0;
}
