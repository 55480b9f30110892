/* .npy parsing (see include/plateau/npy.h). The header is parsed as the literal np.save writes,
 * strictly: the three keys once each, a tuple of non-negative integers for the shape, nothing else. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/npy.h"

typedef struct {
    const char *p, *end;
    const char *path;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int take(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes, into OUT[SIZE]. */
static int quoted(cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return pl_fail("%s: .npy header: expected a quoted string", c->path);
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20)
            return pl_fail("%s: .npy header: unexpected character in a string", c->path);
        c->p++;
    }
    if (c->p >= c->end)
        return pl_fail("%s: .npy header: unterminated string", c->path);
    size_t n = (size_t)(c->p - start);
    c->p++;
    if (n >= size)
        return pl_fail("%s: .npy header: string '%.*s' is too long", c->path, (int)(n > 32 ? 32 : n), start);
    memcpy(out, start, n);
    out[n] = '\0';
    return PL_OK;
}

/* A non-negative integer below 2^62 (shapes whose product overflows are caught later). */
static int integer(cursor *c, int64_t *out)
{
    skip_space(c);
    if (c->p >= c->end || !isdigit((unsigned char)*c->p))
        return pl_fail("%s: .npy header: expected a dimension (a non-negative integer)", c->path);
    int64_t v = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        if (v > ((int64_t)1 << 62) / 10)
            return pl_fail("%s: .npy header: dimension too large", c->path);
        v = v * 10 + (*c->p++ - '0');
    }
    if (c->p < c->end && *c->p == 'L') /* Python 2's long suffix, as old numpy wrote */
        c->p++;
    *out = v;
    return PL_OK;
}

static int shape_tuple(cursor *c, pl_npy *out)
{
    if (!take(c, '('))
        return pl_fail("%s: .npy header: 'shape' is not a tuple", c->path);
    out->ndim = 0;
    if (take(c, ')'))
        return PL_OK;
    for (;;) {
        if (out->ndim == PL_NPY_MAX_DIMS)
            return pl_fail("%s: .npy header: more than %d dimensions", c->path, PL_NPY_MAX_DIMS);
        if (integer(c, &out->shape[out->ndim]) != PL_OK)
            return PL_ERR;
        out->ndim++;
        if (take(c, ')'))
            return PL_OK;
        if (!take(c, ','))
            return pl_fail("%s: .npy header: expected ',' or ')' in 'shape'", c->path);
        if (take(c, ')')) /* (n,) */
            return PL_OK;
    }
}

static int parse_header(const char *path, const char *h, size_t n, pl_npy *out)
{
    cursor c = {h, h + n, path};
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    if (!take(&c, '{'))
        return pl_fail("%s: .npy header is not a dict", path);
    for (;;) {
        if (take(&c, '}'))
            break;
        char key[32];
        if (quoted(&c, key, sizeof key) != PL_OK)
            return PL_ERR;
        if (!take(&c, ':'))
            return pl_fail("%s: .npy header: expected ':' after '%s'", path, key);
        if (!strcmp(key, "descr") && !seen_descr++) {
            if (quoted(&c, out->descr, sizeof out->descr) != PL_OK)
                return PL_ERR;
        } else if (!strcmp(key, "fortran_order") && !seen_order++) {
            skip_space(&c);
            if ((size_t)(c.end - c.p) >= 4 && !memcmp(c.p, "True", 4))
                out->fortran_order = 1, c.p += 4;
            else if ((size_t)(c.end - c.p) >= 5 && !memcmp(c.p, "False", 5))
                out->fortran_order = 0, c.p += 5;
            else
                return pl_fail("%s: .npy header: 'fortran_order' is not True or False", path);
        } else if (!strcmp(key, "shape") && !seen_shape++) {
            if (shape_tuple(&c, out) != PL_OK)
                return PL_ERR;
        } else {
            return pl_fail("%s: .npy header: unexpected or repeated key '%s'", path, key);
        }
        if (take(&c, '}'))
            break;
        if (!take(&c, ','))
            return pl_fail("%s: .npy header: expected ',' or '}' after '%s'", path, key);
    }
    if (!seen_descr || !seen_order || !seen_shape)
        return pl_fail("%s: .npy header lacks '%s'", path, !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    /* the rest is padding: spaces and the closing newline */
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\n' || *c.p == '\r' || *c.p == '\0'))
        c.p++;
    if (c.p != c.end)
        return pl_fail("%s: .npy header: unexpected text after the dict", path);
    return PL_OK;
}

int pl_npy_parse(const char *path, const void *bytes, size_t size, pl_npy *out)
{
    const unsigned char *b = bytes;
    memset(out, 0, sizeof *out);
    if (size < 10 || memcmp(b, "\x93NUMPY", 6))
        return pl_fail("%s: not a .npy file (bad magic)", path);
    size_t hlen, off;
    if (b[6] == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (size < 12)
            return pl_fail("%s: truncated .npy header", path);
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return pl_fail("%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", path, b[6], b[7]);
    }
    if (hlen > size - off)
        return pl_fail("%s: truncated .npy header (%zu bytes announced, %zu in the file)", path, hlen, size - off);
    if (parse_header(path, (const char *)b + off, hlen, out) != PL_OK)
        return PL_ERR;
    const char *d = out->descr;
    if (!d[0] || !strchr("<>|=", d[0]) || !isalpha((unsigned char)d[1]) || !isdigit((unsigned char)d[2]))
        return pl_fail("%s: .npy dtype '%s' is not a plain numeric type", path, d);
    char *end;
    long esz = strtol(d + 2, &end, 10);
    if (*end || esz < 1 || esz > 16)
        return pl_fail("%s: .npy dtype '%s' is not a plain numeric type", path, d);
    out->element_bytes = (size_t)esz;
    size_t n = 1;
    for (int i = 0; i < out->ndim; i++) {
        size_t dim = (size_t)out->shape[i];
        if (dim != 0 && n > SIZE_MAX / dim)
            return pl_fail("%s: .npy shape overflows (dimension %d is %lld)", path, i, (long long)out->shape[i]);
        n *= dim;
    }
    out->n_elements = n;
    size_t data = size - off - hlen;
    if (n > data / out->element_bytes)
        return pl_fail("%s: .npy data is %zu bytes, shorter than its shape and dtype '%s' need", path, data, d);
    if (n * out->element_bytes != data)
        return pl_fail("%s: .npy data is %zu bytes, but its shape and dtype '%s' need %zu", path, data, d,
                       n * out->element_bytes);
    out->data = b + off + hlen;
    return PL_OK;
}

int pl_npy_read_matrix(const char *path, float **rows, long *n_rows, long *n_cols)
{
    char *text = NULL;
    size_t size = 0;
    *rows = NULL;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &text, &size) != PL_OK)
        return PL_ERR;
    pl_npy a;
    int rc = pl_npy_parse(path, text, size, &a);
    int f4 = !strcmp(a.descr, "<f4"), f8 = !strcmp(a.descr, "<f8");
    if (rc == PL_OK && !f4 && !f8)
        rc = pl_fail("%s: dtype '%s': must be little-endian float32 or float64 ('<f4' or '<f8')", path, a.descr);
    if (rc == PL_OK && a.fortran_order)
        rc = pl_fail("%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
    if (rc == PL_OK && a.ndim != 2)
        rc = pl_fail("%s: a %d-D array; expected a 2-D array (rows x columns)", path, a.ndim);
    if (rc == PL_OK && (a.shape[0] < 1 || a.shape[1] < 1))
        rc = pl_fail("%s: an empty array (shape %lld x %lld)", path, (long long)a.shape[0], (long long)a.shape[1]);
    if (rc == PL_OK && !(*rows = pl_malloc(sizeof(float) * a.n_elements, path)))
        rc = PL_ERR;
    for (size_t i = 0; rc == PL_OK && i < a.n_elements; i++) {
        double v;
        if (f8) {
            memcpy(&v, a.data + 8 * i, 8);
        } else {
            float f;
            memcpy(&f, a.data + 4 * i, 4);
            v = f;
        }
        (*rows)[i] = (float)v;
        if (!isfinite((*rows)[i]))
            rc = pl_fail("%s: row %zu, column %zu is %s%s", path, i / (size_t)a.shape[1], i % (size_t)a.shape[1],
                         isnan(v) ? "NaN" : isinf(v) ? "infinite" : "beyond float32's range",
                         isnan(v) || isinf(v) ? "" : " (a float64 above 3.4e38)");
    }
    if (rc == PL_OK) {
        *n_rows = (long)a.shape[0];
        *n_cols = (long)a.shape[1];
    } else {
        free(*rows);
        *rows = NULL;
    }
    free(text);
    return rc;
}
