/* sha256 of every tensor (over its fp32 little-endian bytes) against a manifest. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/safetensors.h"
#include "plateau/verify.h"

typedef struct {
    char hash[65];
    char *name;     /* without "transformer." */
    uint64_t nbytes;
    int seen;
    int line;       /* of the manifest, for messages */
} manifest_entry;

static const char *strip_prefix(const char *name)
{
    return strncmp(name, "transformer.", 12) ? name : name + 12;
}

static void free_manifest(manifest_entry *e, int n)
{
    for (int i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

static int by_name(const void *a, const void *b)
{
    const manifest_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* One manifest line (NUL-terminated, without its newline) into *E. */
static int parse_line(const char *name, int line_no, const char *line, manifest_entry *e)
{
    char hash[65], tensor[1024];
    unsigned long long nbytes;
    int used = 0;
    if (strlen(line) > PL_MANIFEST_MAX_LINE || sscanf(line, "%64s %1023s %llu %n", hash, tensor, &nbytes, &used) != 3 ||
        line[used] != '\0')
        return pl_fail("%s: line %d: expected 'SHA256  TENSOR  NBYTES'", name, line_no);
    int hex_ok = strlen(hash) == 64;
    for (int i = 0; hex_ok && i < 64; i++)
        hex_ok = isxdigit((unsigned char)hash[i]) && !isupper((unsigned char)hash[i]);
    if (!hex_ok)
        return pl_fail("%s: line %d: '%s' is not a lowercase hex sha256", name, line_no, hash);
    memcpy(e->hash, hash, 65);
    e->name = strdup(strip_prefix(tensor));
    e->nbytes = nbytes;
    e->seen = 0;
    e->line = line_no;
    return e->name ? PL_OK : pl_fail("out of memory (manifest)");
}

/* The manifest TEXT[LEN] (NAME for messages) into *OUT[*N_OUT]: every line parsed, then a tensor
 * listed twice found by sorting (linear-logarithmic: a manifest of a million lines stays quick). */
static int parse_manifest(const char *name, char *text, size_t len, manifest_entry **out, int *n_out)
{
    if (memchr(text, '\0', len))
        return pl_fail("%s: holds a NUL byte: not a text manifest", name);
    manifest_entry *e = NULL;
    int n = 0, cap = 0, line_no = 0, rc = PL_OK;
    for (char *line = text, *next; rc == PL_OK && line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        size_t n_chars = (size_t)((nl ? nl : text + len) - line);
        line[n_chars] = '\0'; /* the newline, or the buffer's terminating NUL */
        while (n_chars > 0 && line[n_chars - 1] == '\r')
            line[--n_chars] = '\0';
        line_no++;
        if (n_chars == 0 || line[0] == '#')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            manifest_entry *grown = realloc(e, (size_t)cap * sizeof *e);
            if (!grown) {
                rc = pl_fail("out of memory (manifest)");
                break;
            }
            e = grown;
        }
        rc = parse_line(name, line_no, line, &e[n]);
        n += rc == PL_OK;
    }
    if (rc == PL_OK && n == 0)
        rc = pl_fail("%s: no tensors listed", name);
    if (rc == PL_OK) {
        qsort(e, (size_t)n, sizeof *e, by_name);
        for (int i = 1; i < n && rc == PL_OK; i++)
            if (!strcmp(e[i].name, e[i - 1].name))
                rc = pl_fail("%s: line %d: tensor '%s' is listed twice", name, e[i].line, e[i].name);
    }
    if (rc != PL_OK) {
        free_manifest(e, n);
        return rc;
    }
    *out = e;
    *n_out = n;
    return PL_OK;
}

/* Read with a bound: a FIFO or a device (/dev/zero) is refused at open, a file over the cap by its size. */
static int load_manifest(const char *path, manifest_entry **out, int *n_out)
{
    char *text;
    size_t len;
    if (pl_read_file(path, PL_MANIFEST_MAX_BYTES, &text, &len) != PL_OK)
        return pl_fail_prefix("--manifest");
    int rc = parse_manifest(path, text, len, out, n_out);
    free(text);
    return rc;
}

int pl_verify_check_manifest(const char *text, size_t len)
{
    char *copy = pl_malloc(len + 1, "manifest");
    if (!copy)
        return PL_ERR;
    memcpy(copy, text, len);
    copy[len] = '\0';
    manifest_entry *e;
    int n;
    int rc = parse_manifest("manifest", copy, len, &e, &n);
    if (rc == PL_OK)
        free_manifest(e, n);
    free(copy);
    return rc;
}

static float f8_e4m3_to_float(uint8_t b)
{
    int sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 7;
    float v;
    if (exp == 0xf && man == 7)
        v = NAN;
    else if (exp == 0)
        v = ldexpf((float)man / 8.0f, -6);
    else
        v = ldexpf(1.0f + (float)man / 8.0f, exp - 7);
    return sign ? -v : v;
}

/* Element I of T as a float (any safetensors dtype). */
static float element_as_float(const st_tensor *t, uint64_t i)
{
    const uint8_t *p = t->data + i * st_dtype_size(t->dtype);
    uint64_t u = 0;
    for (size_t b = 0; b < st_dtype_size(t->dtype); b++)
        u |= (uint64_t)p[b] << (8 * b);
    float f;
    double d;
    uint8_t h[2];
    switch (t->dtype) {
    case ST_BOOL: return u != 0;
    case ST_U8: case ST_U16: case ST_U32: case ST_U64: return (float)u;
    case ST_I8: return (float)(int8_t)u;
    case ST_I16: return (float)(int16_t)u;
    case ST_I32: return (float)(int32_t)u;
    case ST_I64: return (float)(int64_t)u;
    case ST_F64: memcpy(&d, &u, sizeof d); return (float)d;
    case ST_F8_E4M3: return f8_e4m3_to_float((uint8_t)u);
    case ST_F8_E5M2: h[0] = 0, h[1] = (uint8_t)u; st_to_f32(ST_F16, h, 1, &f); return f;
    default: st_to_f32(t->dtype, p, 1, &f); return f; /* F32, F16, BF16 */
    }
}

static int tensor_sha256(const st_tensor *t, char out[65])
{
    uint64_t numel = (t->end - t->begin) / st_dtype_size(t->dtype);
    enum { BLOCK = 1 << 16 };
    static _Thread_local float floats[BLOCK];
    static _Thread_local uint8_t le[4 * BLOCK];
    pl_sha256 *h;
    if (pl_sha256_begin(&h) != PL_OK)
        return PL_ERR;
    int ok = 1;
    for (uint64_t at = 0; ok && at < numel; at += BLOCK) {
        size_t n = numel - at < BLOCK ? (size_t)(numel - at) : BLOCK;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16)
            st_to_f32(t->dtype, t->data + at * st_dtype_size(t->dtype), n, floats);
        else
            for (size_t i = 0; i < n; i++)
                floats[i] = element_as_float(t, at + i);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &floats[i], sizeof bits);
            le[4 * i] = (uint8_t)bits, le[4 * i + 1] = (uint8_t)(bits >> 8);
            le[4 * i + 2] = (uint8_t)(bits >> 16), le[4 * i + 3] = (uint8_t)(bits >> 24);
        }
        ok = pl_sha256_update(h, le, 4 * n) == PL_OK;
    }
    char digest[65];
    if (pl_sha256_end(h, digest) != PL_OK || !ok)
        return pl_fail("tensor '%s': sha256 failed", t->name);
    memcpy(out, digest, 65);
    return PL_OK;
}

/* h.N.attn.bias / h.N.attn.masked_bias (the manifest's names carry no prefix). */
static int is_mask_buffer(const char *name)
{
    int layer, consumed = 0;
    char kind[16];
    return sscanf(name, "h.%d.attn.%15[a-z_]%n", &layer, kind, &consumed) == 2 && name[consumed] == '\0' &&
           (!strcmp(kind, "bias") || !strcmp(kind, "masked_bias"));
}

/* Every tensor of F against the manifest: matches, mismatches and extras counted (and printed). */
static int check_tensors(const st_file *f, const char *st_path, manifest_entry *entries, int n_entries, FILE *out,
                         pl_verify_result *res)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        manifest_entry *e = NULL;
        for (int j = 0; j < n_entries && !e; j++)
            if (!strcmp(entries[j].name, strip_prefix(t->name)))
                e = &entries[j];
        if (!e) {
            fprintf(out, "not in manifest  %s\n", t->name);
            res->n_extra++;
            continue;
        }
        if (e->seen)
            return pl_fail("%s: tensor '%s' appears twice (with and without the 'transformer.' prefix)", st_path,
                           e->name);
        e->seen = 1;
        uint64_t f32_bytes = (t->end - t->begin) / st_dtype_size(t->dtype) * 4;
        if (f32_bytes != e->nbytes) {
            fprintf(out, "size  %s: manifest has %" PRIu64 " bytes, file has %" PRIu64 " (as F32)\n", e->name,
                    e->nbytes, f32_bytes);
            res->n_mismatch++;
            continue;
        }
        char hash[65];
        if (tensor_sha256(t, hash) != PL_OK)
            return PL_ERR;
        if (strcmp(hash, e->hash)) {
            fprintf(out, "mismatch  %s\n", e->name);
            res->n_mismatch++;
        } else {
            res->n_match++;
        }
    }
    return PL_OK;
}

/* The manifest's entries the file did not hold: a tied lm_head checked against wte, absent mask
 * buffers, and the missing ones. */
static int check_unseen(const st_file *f, manifest_entry *entries, int n_entries, FILE *out, pl_verify_result *res)
{
    /* HF's export drops lm_head.weight because GPT-2 ties it to wte: check the manifest's entry
     * against wte.weight then. */
    const st_tensor *wte = st_find(f, "wte.weight") ? st_find(f, "wte.weight") : st_find(f, "transformer.wte.weight");
    for (int j = 0; j < n_entries; j++)
        if (!entries[j].seen && !strcmp(entries[j].name, "lm_head.weight") && wte &&
            (wte->end - wte->begin) / st_dtype_size(wte->dtype) * 4 == entries[j].nbytes) {
            char hash[65];
            if (tensor_sha256(wte, hash) != PL_OK)
                return PL_ERR;
            entries[j].seen = 1;
            if (strcmp(hash, entries[j].hash)) {
                fprintf(out, "mismatch  lm_head.weight (tied: checked against %s)\n", wte->name);
                res->n_mismatch++;
            } else {
                res->n_match++;
            }
        }
    /* The causal-mask buffers are constants, not weights: exports made with newer transformers
     * versions leave them out (non-persistent buffers), and the model is complete without them. */
    for (int j = 0; j < n_entries; j++) {
        if (entries[j].seen)
            continue;
        if (is_mask_buffer(entries[j].name)) {
            fprintf(out, "absent buffer  %s: causal mask, not a weight\n", entries[j].name);
            res->n_absent_buffers++;
        } else {
            fprintf(out, "missing  %s\n", entries[j].name);
            res->n_missing++;
        }
    }
    return PL_OK;
}

int pl_verify(const char *model_dir, const char *manifest_path, FILE *out, pl_verify_result *res)
{
    memset(res, 0, sizeof *res);
    manifest_entry *entries = NULL;
    int n_entries = 0;
    if (load_manifest(manifest_path, &entries, &n_entries) != PL_OK)
        return PL_ERR;
    res->n_manifest = n_entries;
    size_t plen = strlen(model_dir) + sizeof "/model.safetensors";
    char *st_path = pl_malloc(plen, "path");
    st_file f;
    if (!st_path) {
        free_manifest(entries, n_entries);
        return PL_ERR;
    }
    snprintf(st_path, plen, "%s/model.safetensors", model_dir);
    if (st_open(&f, st_path, NULL) != PL_OK) {
        free(st_path);
        free_manifest(entries, n_entries);
        return PL_ERR;
    }
    int rc = check_tensors(&f, st_path, entries, n_entries, out, res);
    if (rc == PL_OK)
        rc = check_unseen(&f, entries, n_entries, out, res);
    st_close(&f);
    free(st_path);
    free_manifest(entries, n_entries);
    return rc;
}
