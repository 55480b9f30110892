/* safetensors parser. Everything in the file is untrusted: every length, offset and shape is
 * checked before anything is dereferenced, and every failure names the file, the tensor and
 * what is wrong with it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/safetensors.h"

/* A GPT-2 header is ~15 KB; 100 MB leaves room for any real file and keeps a hostile length from
 * making jansson allocate gigabytes. */
#define ST_MAX_HEADER_BYTES (100u * 1024u * 1024u)

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},   [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof dtype_table / sizeof dtype_table[0]))

const char *st_dtype_name(st_dtype d)
{
    return (int)d >= 0 && (int)d < N_DTYPES ? dtype_table[d].name : "?";
}

size_t st_dtype_size(st_dtype d)
{
    return (int)d >= 0 && (int)d < N_DTYPES ? dtype_table[d].size : 0;
}

static int dtype_from_name(const char *name, st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(name, dtype_table[i].name)) {
            *out = (st_dtype)i;
            return 1;
        }
    return 0;
}

void st_free(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

/* A JSON value that must be a non-negative integer. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static int parse_tensor(st_file *f, st_tensor *t, const char *name, const json_t *desc)
{
    const char *path = f->path;
    if (!json_is_object(desc))
        return pl_fail("%s: tensor '%s': header entry is not a JSON object", path, name);

    const json_t *dtype = json_object_get(desc, "dtype");
    if (!dtype)
        return pl_fail("%s: tensor '%s': no \"dtype\"", path, name);
    if (!json_is_string(dtype))
        return pl_fail("%s: tensor '%s': \"dtype\" is not a string", path, name);
    if (!dtype_from_name(json_string_value(dtype), &t->dtype))
        return pl_fail("%s: tensor '%s': unknown dtype '%.40s'", path, name, json_string_value(dtype));

    const json_t *shape = json_object_get(desc, "shape");
    if (!shape)
        return pl_fail("%s: tensor '%s': no \"shape\"", path, name);
    if (!json_is_array(shape))
        return pl_fail("%s: tensor '%s': \"shape\" is not an array", path, name);
    size_t ndim = json_array_size(shape);
    if (ndim > ST_MAX_DIMS)
        return pl_fail("%s: tensor '%s': shape has %zu dimensions (at most %d supported)", path, name,
                       ndim, ST_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t n_bytes = st_dtype_size(t->dtype);
    int overflow = 0;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d;
        if (!json_u64(json_array_get(shape, i), &d))
            return pl_fail("%s: tensor '%s': shape entry %zu is not a non-negative integer", path, name, i);
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(n_bytes, d, &n_bytes))
            overflow = 1;
    }
    if (overflow)
        return pl_fail("%s: tensor '%s': shape's byte size overflows 64 bits", path, name);

    const json_t *offsets = json_object_get(desc, "data_offsets");
    if (!offsets)
        return pl_fail("%s: tensor '%s': no \"data_offsets\"", path, name);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        !json_u64(json_array_get(offsets, 0), &t->begin) || !json_u64(json_array_get(offsets, 1), &t->end))
        return pl_fail("%s: tensor '%s': \"data_offsets\" is not a pair of non-negative integers", path,
                       name);
    if (t->end < t->begin)
        return pl_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") end before they begin",
                       path, name, t->begin, t->end);
    if (t->end > f->data_size)
        return pl_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       ") run past the end of the data section (%zu bytes)",
                       path, name, t->begin, t->end, f->data_size);
    if (t->end - t->begin != n_bytes) {
        char dims[ST_MAX_DIMS * 24 + 4];
        int len = 0;
        for (int i = 0; i < t->ndim; i++)
            len += snprintf(dims + len, sizeof dims - (size_t)len, "%s%" PRId64, i ? ", " : "", t->shape[i]);
        dims[len] = '\0';
        return pl_fail("%s: tensor '%s': shape [%s] of %s needs %" PRIu64
                       " bytes but data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRIu64,
                       path, name, dims, st_dtype_name(t->dtype), n_bytes, t->begin, t->end,
                       t->end - t->begin);
    }
    t->data = f->data + t->begin;
    return PL_OK;
}

static int check_metadata(const st_file *f, const json_t *meta)
{
    if (!json_is_object(meta))
        return pl_fail("%s: \"__metadata__\" is not a JSON object", f->path);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return pl_fail("%s: \"__metadata__\" key '%.80s' is not a string", f->path, key);
    }
    return PL_OK;
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int by_begin(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Two tensors may not share a byte: a stranger's file could otherwise alias weights silently. */
static int check_overlap(const st_file *f)
{
    if (f->n_tensors < 2)
        return PL_OK;
    span *order = pl_malloc((size_t)f->n_tensors * sizeof *order, "safetensors tensor order");
    if (!order)
        return PL_ERR;
    for (int i = 0; i < f->n_tensors; i++)
        order[i] = (span){f->tensors[i].begin, f->tensors[i].end, i};
    qsort(order, (size_t)f->n_tensors, sizeof *order, by_begin);
    const st_tensor *reach = NULL; /* the non-empty tensor reaching furthest so far */
    int rc = PL_OK;
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[order[i].index];
        if (t->end == t->begin)
            continue;
        if (reach && reach->end > t->begin) {
            rc = pl_fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                         ") overlap tensor '%s' [%" PRIu64 ", %" PRIu64 ")",
                         f->path, t->name, t->begin, t->end, reach->name, reach->begin, reach->end);
            break;
        }
        if (!reach || t->end > reach->end)
            reach = t;
    }
    free(order);
    return rc;
}

int st_parse(st_file *f, const char *path, const uint8_t *bytes, size_t size)
{
    static const uint8_t none[8];
    if (!bytes)
        bytes = none; /* an empty file maps to NULL; size < 8 is reported below */
    memset(f, 0, sizeof *f);
    f->path = path;
    f->bytes = bytes;
    f->size = size;
    if (size < 8)
        return pl_fail("%s: file is %zu bytes, too short for the 8-byte header length", path, size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    if (header_len > size - 8)
        return pl_fail("%s: header length %" PRIu64 " runs past the end of the file (%zu bytes after the "
                       "length field)",
                       path, header_len, size - 8);
    if (header_len > ST_MAX_HEADER_BYTES)
        return pl_fail("%s: header length %" PRIu64 " exceeds the %u-byte limit", path, header_len,
                       ST_MAX_HEADER_BYTES);
    if (header_len < 2)
        return pl_fail("%s: header length %" PRIu64 " is too short for a JSON object", path, header_len);
    f->data = bytes + 8 + header_len;
    f->data_size = size - 8 - (size_t)header_len;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return pl_fail("%s: header is not valid JSON: %s (header byte %d)", path, jerr.text, jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return pl_fail("%s: header is not a JSON object", path);
    }

    size_t n = json_object_size(root);
    f->tensors = pl_calloc(n, sizeof *f->tensors, "safetensors tensor table");
    if (!f->tensors) {
        json_decref(root);
        return PL_ERR;
    }
    const char *key;
    json_t *value;
    int rc = PL_OK;
    json_object_foreach(root, key, value) {
        if (!strcmp(key, "__metadata__")) {
            rc = check_metadata(f, value);
        } else {
            st_tensor *t = &f->tensors[f->n_tensors];
            /* names end up in one-line messages: no control characters, bounded length */
            size_t len = strlen(key);
            int printable = len > 0 && len <= 1024;
            for (size_t i = 0; i < len && printable; i++)
                printable = (unsigned char)key[i] >= 0x20 && key[i] != 0x7f;
            if (!printable) {
                rc = pl_fail("%s: tensor #%d: name is empty, longer than 1024 bytes or holds control characters",
                             path, f->n_tensors + 1);
                break;
            }
            rc = parse_tensor(f, t, key, value);
            if (rc == PL_OK) {
                t->name = strdup(key);
                if (!t->name)
                    rc = pl_fail("out of memory (tensor name)");
                else
                    f->n_tensors++;
            }
        }
        if (rc != PL_OK)
            break;
    }
    json_decref(root);
    if (rc == PL_OK)
        rc = check_overlap(f);
    if (rc != PL_OK) {
        st_free(f);
        f->path = path;
    }
    return rc;
}

int st_open(st_file *f, const char *path, const char *what)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    void *map;
    size_t size;
    /* through src/util: a FIFO or directory is refused at once, never waited on */
    if (pl_map_file(path, what, &map, &size) != PL_OK)
        return PL_ERR;
    if (st_parse(f, path, map, size) != PL_OK) {
        pl_unmap_file(map, size);
        return PL_ERR;
    }
    return PL_OK;
}

void st_close(st_file *f)
{
    pl_unmap_file((void *)f->bytes, f->size);
    st_free(f);
}

/* IEEE half -> single, exact for every input (subnormals, inf, NaN included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal half: normalise into a float */
        int shift = 0;
        while (!(man & 0x400)) {
            man <<= 1;
            shift++;
        }
        man &= 0x3ff;
        bits = sign | ((uint32_t)(113 - shift) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

void st_to_f32(st_dtype dtype, const uint8_t *src, size_t n, float *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        switch (dtype) {
        case ST_F16:
            dst[i] = half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
            break;
        case ST_BF16: /* bf16 is the top half of an fp32 */
            bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, sizeof bits);
            break;
        default: /* ST_F32, little-endian */
            bits = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 |
                   (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &bits, sizeof bits);
            break;
        }
    }
}

int st_check_finite(const char *file, const char *tensor, const float *data, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(data[i]))
            return pl_fail("%s: tensor '%s': element %zu is %s: the weights are corrupt", file, tensor, i,
                           isnan(data[i]) ? "NaN" : "infinite");
    return PL_OK;
}
