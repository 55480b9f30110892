/* The rows of a file: direction matrix: a 2-D float32/float64 .npy, or one 2-D tensor of a
 * safetensors file (F32, F64, F16, BF16), C columns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/safetensors.h"
#include "experiment.h"

/* A 2-D little-endian float32/float64 C-order .npy file. */
static int load_npy(const char *path, int C, float **rows, long *n_rows)
{
    char *text = NULL;
    size_t size = 0;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &text, &size) != PL_OK)
        return PL_ERR;
    const unsigned char *b = (const unsigned char *)text;
    int rc = PL_ERR;
    size_t hlen, off;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6)) {
        pl_fail("%s: not a .npy file (bad magic)", path);
        goto done;
    }
    if (b[6] == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (size >= 12) {
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        pl_fail("%s: truncated .npy header", path);
        goto done;
    }
    if (off + hlen > size) {
        pl_fail("%s: truncated .npy header", path);
        goto done;
    }
    char *h = pl_malloc(hlen + 1, "npy header");
    if (!h)
        goto done;
    memcpy(h, b + off, hlen);
    h[hlen] = '\0';
    int f8 = strstr(h, "'descr': '<f8'") != NULL, f4 = strstr(h, "'descr': '<f4'") != NULL;
    long r = -1, c = -1;
    char *shape = strstr(h, "'shape': (");
    if (shape && sscanf(shape, "'shape': (%ld, %ld)", &r, &c) != 2)
        r = c = -1;
    int fortran = strstr(h, "'fortran_order': True") != NULL;
    free(h);
    if (!f4 && !f8) {
        pl_fail("%s: dtype must be little-endian float32 or float64 ('<f4' or '<f8')", path);
        goto done;
    }
    if (fortran) {
        pl_fail("%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
        goto done;
    }
    if (r < 1 || c < 1) {
        pl_fail("%s: expected a 2-D array (rows = directions, columns = d_model)", path);
        goto done;
    }
    if (c != C) {
        pl_fail("%s: %ld columns, but the model's residual width is %d", path, c, C);
        goto done;
    }
    size_t esz = f8 ? 8 : 4, n = (size_t)r * c;
    off += hlen;
    if (size - off < n * esz) {
        pl_fail("%s: data is shorter than its shape (%ld x %ld)", path, r, c);
        goto done;
    }
    *rows = pl_malloc(sizeof(float) * n, "direction rows");
    if (!*rows)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (f8) {
            double v;
            memcpy(&v, b + off + 8 * i, 8);
            (*rows)[i] = (float)v;
        } else {
            memcpy(&(*rows)[i], b + off + 4 * i, 4);
        }
    }
    *n_rows = r;
    rc = PL_OK;
done:
    free(text);
    return rc;
}

static int load_safetensors(const char *path, const char *name, int C, float **rows, long *n_rows)
{
    st_file f;
    if (st_open(&f, path) != PL_OK)
        return PL_ERR;
    const st_tensor *t = NULL;
    int rc = PL_ERR;
    if (name) {
        t = st_find(&f, name);
        if (!t) {
            pl_fail("%s: no tensor '%s'", path, name);
            goto done;
        }
    } else {
        int n2 = 0;
        for (int i = 0; i < f.n_tensors; i++)
            if (f.tensors[i].ndim == 2) {
                t = &f.tensors[i];
                n2++;
            }
        if (n2 != 1) {
            pl_fail("%s: %d 2-D tensors; name one as file:%s#TENSOR", path, n2, path);
            goto done;
        }
    }
    if (t->ndim != 2) {
        pl_fail("%s: tensor '%s' has %d dimensions (expected 2: rows = directions)", path, t->name, t->ndim);
        goto done;
    }
    if (t->shape[1] != C) {
        pl_fail("%s: tensor '%s' has %lld columns, but the model's residual width is %d", path, t->name,
                (long long)t->shape[1], C);
        goto done;
    }
    if (t->shape[0] < 1) {
        pl_fail("%s: tensor '%s' has no rows", path, t->name);
        goto done;
    }
    size_t n = (size_t)t->shape[0] * C;
    *rows = pl_malloc(sizeof(float) * n, "direction rows");
    if (!*rows)
        goto done;
    if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
        st_to_f32(t->dtype, t->data, n, *rows);
    } else if (t->dtype == ST_F64) {
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, t->data + 8 * i, 8);
            (*rows)[i] = (float)v;
        }
    } else {
        free(*rows);
        *rows = NULL;
        pl_fail("%s: tensor '%s' is %s (expected F32, F64, F16 or BF16)", path, t->name, st_dtype_name(t->dtype));
        goto done;
    }
    *n_rows = (long)t->shape[0];
    rc = PL_OK;
done:
    st_close(&f);
    return rc;
}

int pl_load_direction_rows(const char *path, const char *tensor, int C, float **rows, long *n_rows)
{
    size_t len = strlen(path);
    if (len > 4 && !strcmp(path + len - 4, ".npy")) {
        if (tensor)
            return pl_fail("'#%s' names a tensor, but .npy files hold one array", tensor);
        return load_npy(path, C, rows, n_rows);
    }
    return load_safetensors(path, tensor, C, rows, n_rows);
}
