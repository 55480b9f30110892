/* The rows of a file: direction matrix: a 2-D float32/float64 .npy, or one 2-D tensor of a
 * safetensors file (F32, F64, F16, BF16), C columns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/npy.h"
#include "plateau/safetensors.h"
#include "experiment.h"

/* A 2-D little-endian float32/float64 C-order .npy file (parsed by src/util/npy.c: overflowing
 * shapes, other ranks and short data are refused there, as are non-finite values). */
static int load_npy(const char *path, int C, float **rows, long *n_rows)
{
    long c;
    if (pl_npy_read_matrix(path, rows, n_rows, &c) != PL_OK)
        return PL_ERR;
    if (c != C) {
        free(*rows);
        *rows = NULL;
        return pl_fail("%s: %ld columns, but the model's residual width is %d", path, c, C);
    }
    return PL_OK;
}

/* Every value of ROWS[n, C] must be finite: a NaN direction would make every curve of its units NaN
 * or, worse, pass through a metric as a number. */
static int check_finite_rows(const char *path, const char *tensor, const float *rows, long n, int C)
{
    for (size_t i = 0; i < (size_t)n * C; i++)
        if (!isfinite(rows[i]))
            return pl_fail("%s%s%s: row %zu, column %zu is %s", path, tensor ? "#" : "", tensor ? tensor : "",
                           i / (size_t)C, i % (size_t)C, isnan(rows[i]) ? "NaN" : "infinite");
    return PL_OK;
}

static int load_safetensors(const char *path, const char *name, int C, float **rows, long *n_rows)
{
    st_file f;
    if (st_open(&f, path, NULL) != PL_OK)
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
    rc = check_finite_rows(path, t->name, *rows, *n_rows, C);
    if (rc != PL_OK) {
        free(*rows);
        *rows = NULL;
    }
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
