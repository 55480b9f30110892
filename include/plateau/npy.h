/* NumPy's .npy format (version 1.0, 2.0 and 3.0), as np.save writes it: magic, a header that is a
 * Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}, then the array's bytes.
 * The parser reads untrusted bytes: every length and product is checked before it is used. */
#ifndef PLATEAU_NPY_H
#define PLATEAU_NPY_H

#include <stddef.h>
#include <stdint.h>

#define PL_NPY_MAX_DIMS 8

typedef struct {
    char descr[16];                  /* as written: "<f4", "<f8", "|u1", ... */
    int fortran_order;
    int ndim;
    int64_t shape[PL_NPY_MAX_DIMS];
    size_t n_elements;               /* product of shape (1 for a 0-d array) */
    size_t element_bytes;            /* from descr: the digits after the type letter */
    const unsigned char *data;       /* inside the parsed bytes, n_elements * element_bytes of them */
} pl_npy;

/* Parse the .npy file held in BYTES[SIZE]; PATH names it in messages. The data must hold at least
 * n_elements * element_bytes bytes (more is refused too: it is not what np.save writes). */
int pl_npy_parse(const char *path, const void *bytes, size_t size, pl_npy *out);

/* Read PATH (a regular file, bounded read) as a 2-D little-endian float32 or float64 C-order array,
 * into float32 ROWS[rows, cols] (malloc'ed). Every value must be finite as float32: the message
 * names the first row and column that is not. */
int pl_npy_read_matrix(const char *path, float **rows, long *n_rows, long *n_cols);

#endif
