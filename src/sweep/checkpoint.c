/* Checkpoints: the completed units of a run, written atomically by rank 0.
 *
 * Layout (native little-endian, as the nodes of one cluster share it):
 *   "PLCKPT01"                      8 bytes magic
 *   model_sha256, data_sha256       64 hex chars each
 *   n_units u64, n_metrics u32, steps u32, config_len u64
 *   config text                     config_len bytes: the resolved config without run-only keys
 *   done[n_units]                   u8, 1 = the unit's curves are final
 *   curves[n_units, n_metrics, steps] float32 (0 where not done)
 *   sha256 of everything above      64 hex chars: a torn or foreign file is refused
 * The file is written as PATH.tmp.<pid>, fsynced and renamed over PATH, so PATH is always either
 * the previous checkpoint or the new one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "plateau/error.h"
#include "plateau/hash.h"
#include "sweep_internal.h"

static const char MAGIC[8] = {'P', 'L', 'C', 'K', 'P', 'T', '0', '1'};

typedef struct {
    unsigned char *buf;
    size_t len, cap;
} bytebuf;

static int put(bytebuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        unsigned char *nb = realloc(b->buf, cap);
        if (!nb)
            return pl_fail("out of memory (checkpoint, %zu bytes)", cap);
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return PL_OK;
}

int pl_checkpoint_write(const char *path, const pl_results *r, const char *config_text, const char *model_sha256,
                        const char *data_sha256)
{
    const pl_sweep *sw = r->sw;
    bytebuf b = {0};
    uint64_t n_units = (uint64_t)sw->n_units, clen = strlen(config_text);
    uint32_t nm = (uint32_t)sw->NM, steps = (uint32_t)sw->steps;
    size_t table = (size_t)sw->n_units * sw->NM * sw->steps;
    int rc = put(&b, MAGIC, 8);
    rc = rc ? rc : put(&b, model_sha256, 64);
    rc = rc ? rc : put(&b, data_sha256, 64);
    rc = rc ? rc : put(&b, &n_units, 8);
    rc = rc ? rc : put(&b, &nm, 4);
    rc = rc ? rc : put(&b, &steps, 4);
    rc = rc ? rc : put(&b, &clen, 8);
    rc = rc ? rc : put(&b, config_text, clen);
    rc = rc ? rc : put(&b, r->done, (size_t)n_units);
    rc = rc ? rc : put(&b, r->curves, sizeof(float) * table);
    if (rc != PL_OK) {
        free(b.buf);
        return PL_ERR;
    }
    char digest[65];
    if (pl_sha256_hex(b.buf, b.len, digest) != PL_OK || put(&b, digest, 64) != PL_OK) {
        free(b.buf);
        return PL_ERR;
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = pl_malloc(tlen, "checkpoint name");
    if (!tmp) {
        free(b.buf);
        return PL_ERR;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = pl_fail("checkpoint %s: cannot create %s: %s", path, tmp, strerror(errno));
    } else {
        int ok = fwrite(b.buf, 1, b.len, f) == b.len;
        ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
        int err = errno;
        ok = (fclose(f) == 0) && ok;
        if (!ok) {
            rc = pl_fail("checkpoint %s: cannot write %s: %s (the previous checkpoint is kept)", path, tmp,
                         strerror(err ? err : errno));
            unlink(tmp);
        } else if (rename(tmp, path) != 0) {
            rc = pl_fail("checkpoint %s: cannot rename %s over it: %s", path, tmp, strerror(errno));
            unlink(tmp);
        }
    }
    free(tmp);
    free(b.buf);
    return rc;
}

/* The first line where the two config texts differ, as "[section] key = A here, B in the checkpoint". */
static void config_difference(const char *here, const char *there, char *out, size_t size)
{
    char section[128] = "";
    const char *a = here, *b = there;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) {
            snprintf(out, size, "%s '%.*s' here, '%.*s' in the checkpoint", section, (int)la, a, (int)lb, b);
            return;
        }
        if (la > 0 && a[0] == '[')
            snprintf(section, sizeof section, "%.*s", (int)la, a);
        a += la + (ea ? 1 : 0);
        b += lb + (eb ? 1 : 0);
    }
    snprintf(out, size, "(no line differs)");
}

int pl_checkpoint_read(const char *path, pl_results *r, const char *config_text, const char *model_sha256,
                       const char *data_sha256)
{
    const pl_sweep *sw = r->sw;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pl_fail("--resume: cannot open checkpoint %s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return pl_fail("out of memory (checkpoint %s)", path);
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int read_error = ferror(f);
    fclose(f);
    int rc = PL_ERR;
    char digest[65];
    if (read_error) {
        pl_fail("checkpoint %s: read error", path);
        goto done;
    }
    if (len < 8 + 128 + 24 + 64 || memcmp(buf, MAGIC, 8)) {
        pl_fail("checkpoint %s: not a plateau checkpoint (bad magic or too short)", path);
        goto done;
    }
    if (pl_sha256_hex(buf, len - 64, digest) != PL_OK)
        goto done;
    if (memcmp(digest, buf + len - 64, 64)) {
        pl_fail("checkpoint %s: corrupt (checksum mismatch)", path);
        goto done;
    }
    const unsigned char *p = buf + 8;
    char model[65] = {0}, data[65] = {0};
    memcpy(model, p, 64);
    memcpy(data, p + 64, 64);
    p += 128;
    uint64_t n_units, clen;
    uint32_t nm, steps;
    memcpy(&n_units, p, 8);
    memcpy(&nm, p + 8, 4);
    memcpy(&steps, p + 12, 4);
    memcpy(&clen, p + 16, 8);
    p += 24;
    if (clen > len - (size_t)(p - buf) - 64) {
        pl_fail("checkpoint %s: corrupt (config length)", path);
        goto done;
    }
    size_t here_len = strlen(config_text);
    if (clen != here_len || memcmp(p, config_text, clen)) {
        char *there = pl_malloc(clen + 1, "checkpoint config");
        if (!there)
            goto done;
        memcpy(there, p, clen);
        there[clen] = '\0';
        char diff[1024];
        config_difference(config_text, there, diff, sizeof diff);
        free(there);
        pl_fail("checkpoint %s was written for another config: %s; refusing to resume (delete it or use the "
                "original config)",
                path, diff);
        goto done;
    }
    if (strcmp(model, model_sha256)) {
        pl_fail("checkpoint %s was written for another model: model.safetensors sha256 %.12s... there, %.12s... "
                "here; refusing to resume",
                path, model, model_sha256);
        goto done;
    }
    if (strcmp(data, data_sha256)) {
        pl_fail("checkpoint %s was written for other prompts (the data file changed); refusing to resume", path);
        goto done;
    }
    p += clen;
    size_t table = (size_t)n_units * nm * steps;
    if (n_units != (uint64_t)sw->n_units || nm != (uint32_t)sw->NM || steps != (uint32_t)sw->steps ||
        (size_t)(p - buf) + n_units + 4 * table + 64 != len) {
        pl_fail("checkpoint %s: corrupt (table shape)", path);
        goto done;
    }
    memcpy(r->done, p, (size_t)n_units);
    memcpy(r->curves, p + n_units, 4 * table);
    r->n_done = 0;
    for (uint64_t u = 0; u < n_units; u++)
        r->n_done += r->done[u] != 0;
    rc = PL_OK;
done:
    free(buf);
    return rc;
}
