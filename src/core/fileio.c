/* Whole-file reads shared by the loaders (tokenizer files, direction matrices). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"

int pl_read_file(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return pl_fail("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = pl_malloc(cap + 1, path);
    if (!buf) {
        fclose(f);
        return PL_ERR;
    }
    for (;;) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            fclose(f);
            return pl_fail("%s: out of memory reading %zu bytes", path, len);
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return pl_fail("%s: read error", path);
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return PL_OK;
}
