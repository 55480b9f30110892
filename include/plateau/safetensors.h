/* safetensors container: an 8-byte little-endian header length, a JSON header naming every tensor's
 * dtype, shape and [begin, end) byte offsets into the data section that follows, then the data.
 * The parser trusts nothing: header length bounded by the file, JSON well formed, dtypes known,
 * shapes non-negative and their byte size equal to end - begin, offsets inside the data section,
 * tensors non-overlapping. */
#ifndef PLATEAU_SAFETENSORS_H
#define PLATEAU_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_F8_E4M3, ST_F8_E5M2,
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;     /* offsets into the data section */
    const uint8_t *data;     /* = file data section + begin */
} st_tensor;

typedef struct {
    const char *path;        /* for messages; not owned */
    const uint8_t *bytes;    /* whole file */
    size_t size;
    const uint8_t *data;     /* data section */
    size_t data_size;
    st_tensor *tensors;
    int n_tensors;
} st_file;

/* Parse a complete safetensors image held in memory (BYTES, SIZE). PATH is used in messages.
 * The fuzz target calls this directly. */
int st_parse(st_file *f, const char *path, const uint8_t *bytes, size_t size);
void st_free(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);

/* mmap PATH read-only (watched: plateau/watch.h, WHAT naming it there, NULL: "input file") and st_parse
 * it; PATH must outlive *f. Errors name PATH (missing file, not a regular file, and every st_parse
 * failure). st_close unmaps and frees. */
int st_open(st_file *f, const char *path, const char *what);
void st_close(st_file *f);

/* Convert N elements of an F32/F16/BF16 little-endian tensor to fp32 (SRC may be unaligned). */
void st_to_f32(st_dtype dtype, const uint8_t *src, size_t n, float *dst);

/* PL_OK when every element of data[n] (tensor TENSOR of FILE) is finite; else the message names the
 * first NaN or infinity. Weights are checked once, at load: a NaN or infinity in a weight would
 * poison every number computed downstream. */
int st_check_finite(const char *file, const char *tensor, const float *data, size_t n);
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

#endif
