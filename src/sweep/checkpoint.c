/* Checkpoints: the completed units of a run and the optimisations in flight, written atomically by
 * rank 0.
 *
 * Layout (native little-endian, as the nodes of one cluster share it):
 *   "PLCKPT02"                      8 bytes magic ("PLCKPT01": the same without the optimiser states,
 *                                   still read)
 *   model_sha256, data_sha256       64 hex chars each
 *   n_units u64, n_metrics u32, steps u32, config_len u64
 *   config text                     config_len bytes: the resolved config without run-only keys
 *   done[n_units]                   u8, 1 = the unit's curves are final
 *   curves[n_units, n_metrics, NPC, steps] float32 (0 where not done; NPC: the perturbed positions with
 *   [readout] positions = each, else 1)
 *   local[n_units, NX]              float32, only with [fisher] (NX > 0, fixed by the config): each
 *                                   unit's extras (kl_rayleigh, trace, eigenvalues; sweep_internal.h)
 *   optimiser states                the `optimized` kind's optimisations under way when it was written
 *                                   (pl_opt_store_bytes: u64 count, then per base int32 prompt, base,
 *                                   sample, u64 length, pl_sphere_save's bytes); a resumed run goes on
 *                                   from them, bitwise as if never stopped
 *   sha256 of everything above      64 hex chars: a torn or foreign file is refused
 * The file is written atomically (pl_write_file_atomic: a new temporary file beside PATH, fsync,
 * rename, fsync of the directory), so PATH is always either the previous checkpoint or the new one.
 *
 * A run holds PATH.lock (flock, exclusive) from before it looks at PATH until it ends: two runs given
 * one checkpoint path cannot both write it. The lock is on a file of its own because PATH itself is
 * replaced by every write (a lock on it would stay with the old inode). The kernel drops the lock
 * when the process ends, however it ends; a stale PATH.lock is taken over by the next run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "sweep_internal.h"

static const char MAGIC[8] = {'P', 'L', 'C', 'K', 'P', 'T', '0', '2'};
static const char MAGIC_V1[8] = {'P', 'L', 'C', 'K', 'P', 'T', '0', '1'};

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

int pl_checkpoint_bytes(const pl_results *r, const char *config_text, const char *model_sha256,
                        const char *data_sha256, unsigned char **bytes, size_t *len)
{
    const pl_sweep *sw = r->sw;
    bytebuf b = {0};
    uint64_t n_units = (uint64_t)sw->n_units, clen = strlen(config_text);
    uint32_t nm = (uint32_t)sw->NM, steps = (uint32_t)sw->steps;
    size_t table = (size_t)sw->n_units * sw->NM * sw->NPC * sw->steps;
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
    if (sw->NX)
        rc = rc ? rc : put(&b, r->local, sizeof(float) * (size_t)n_units * sw->NX);
    if (sw->opt_store) {
        rc = rc ? rc : pl_opt_store_bytes(sw->opt_store, &b.buf, &b.len);
        b.cap = b.len; /* it reallocs to at least that: put's next append grows it again */
    } else {
        uint64_t none = 0;
        rc = rc ? rc : put(&b, &none, 8);
    }
    char digest[65];
    if (rc != PL_OK || pl_sha256_hex(b.buf, b.len, digest) != PL_OK || put(&b, digest, 64) != PL_OK) {
        free(b.buf);
        return PL_ERR;
    }
    *bytes = b.buf;
    *len = b.len;
    return PL_OK;
}

int pl_checkpoint_write(const char *path, const pl_results *r, const char *config_text, const char *model_sha256,
                        const char *data_sha256)
{
    unsigned char *bytes;
    size_t len;
    if (pl_checkpoint_bytes(r, config_text, model_sha256, data_sha256, &bytes, &len) != PL_OK)
        return PL_ERR;
    int rc = pl_write_file_atomic(path, bytes, len);
    free(bytes);
    if (rc != PL_OK)
        return pl_fail_prefix("checkpoint (the previous one, if any, is kept)");
    return PL_OK;
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

/* A checkpoint's longest config text: as long as a config file may be. */
#define MAX_CONFIG_TEXT ((size_t)1 << 20)

int pl_checkpoint_parse(const char *path, const void *bytes, size_t len, pl_results *r, const char *config_text,
                        const char *model_sha256, const char *data_sha256)
{
    const pl_sweep *sw = r->sw;
    const unsigned char *buf = bytes;
    char digest[65];
    if (len < 8 + 128 + 24 + 64 || (memcmp(buf, MAGIC, 8) && memcmp(buf, MAGIC_V1, 8)))
        return pl_fail("checkpoint %s: not a plateau checkpoint (bad magic or too short)", path);
    int v1 = !memcmp(buf, MAGIC_V1, 8); /* an older plateau's: no optimiser states */
    if (pl_sha256_hex(buf, len - 64, digest) != PL_OK)
        return PL_ERR;
    if (memcmp(digest, buf + len - 64, 64))
        return pl_fail("checkpoint %s: corrupt (checksum mismatch)", path);
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
    if (clen > len - (size_t)(p - buf) - 64 || clen > MAX_CONFIG_TEXT)
        return pl_fail("checkpoint %s: corrupt (config length)", path);
    /* the weights first: another model's config.json differs too, and 'another model' says more */
    if (memcmp(model, model_sha256, 64))
        return pl_fail("checkpoint %s was written for another model: model sha256 %.12s... there, %.12s... here; "
                       "refusing to resume",
                       path, model, model_sha256);
    size_t here_len = strlen(config_text);
    if (clen != here_len || memcmp(p, config_text, clen)) {
        char *there = pl_malloc(clen + 1, "checkpoint config");
        if (!there)
            return PL_ERR;
        memcpy(there, p, clen);
        there[clen] = '\0';
        char diff[1024];
        config_difference(config_text, there, diff, sizeof diff);
        free(there);
        return pl_fail("checkpoint %s was written for another config: %s; refusing to resume (remove it or use the "
                       "original config)",
                       path, diff);
    }
    if (memcmp(data, data_sha256, 64))
        return pl_fail("checkpoint %s was written for other prompts (the data file changed); refusing to resume",
                       path);
    p += clen;
    if (n_units != (uint64_t)sw->n_units || nm != (uint32_t)sw->NM || steps != (uint32_t)sw->steps)
        return pl_fail("checkpoint %s: its table is not this run's shape (written by another version of plateau, "
                       "or corrupt); refusing to resume (remove it)", path);
    size_t table = (size_t)n_units * nm * sw->NPC * steps;
    size_t extras = (size_t)n_units * sw->NX;
    size_t states_at = (size_t)(p - buf) + n_units + sizeof(float) * (table + extras);
    if (states_at + 64 > len || (v1 && states_at + 64 != len))
        return pl_fail("checkpoint %s: its table is not this run's size (written by another version of plateau, "
                       "whose units hold other numbers, or corrupt); refusing to resume (remove it)", path);
    if (!v1 && pl_opt_store_parse(NULL, buf + states_at, len - 64 - states_at, pl_opt_state_max(sw)) != PL_OK)
        return pl_fail_prefix("checkpoint %s", path);
    for (uint64_t u = 0; u < n_units; u++)
        if (p[u] > 1)
            return pl_fail("checkpoint %s: corrupt (done flag of unit %llu)", path, (unsigned long long)u);
    r->n_done = 0;
    for (uint64_t u = 0; u < n_units; u++)
        r->n_done += p[u];
    if (r->done) /* NULL: only checked (--resume --dry-run) */
        memcpy(r->done, p, (size_t)n_units);
    if (r->curves)
        memcpy(r->curves, p + n_units, sizeof(float) * table);
    if (r->local && extras)
        memcpy(r->local, p + n_units + sizeof(float) * table, sizeof(float) * extras);
    if (r->done && !v1 && sw->opt_store) /* checked above: this only copies */
        return pl_opt_store_parse(sw->opt_store, buf + states_at, len - 64 - states_at, pl_opt_state_max(sw));
    return PL_OK;
}

int pl_checkpoint_read(const char *path, pl_results *r, const char *config_text, const char *model_sha256,
                       const char *data_sha256)
{
    const pl_sweep *sw = r->sw;
    /* this run's checkpoint has exactly this size; another config's may have a longer config text */
    size_t most = 8 + 128 + 24 + MAX_CONFIG_TEXT + (size_t)sw->n_units * (1 + sizeof(float) * sw->unit_floats) + 64;
    /* and at most one optimiser state per base: P x NB x S of them (whole contexts: per site) */
    most += 8 + (size_t)sw->P * (sw->n_pos > 1 ? sw->n_pos : 1) * sw->NB * sw->S * (20 + pl_opt_state_max(sw));
    char *bytes;
    size_t len;
    if (pl_read_file(path, most, &bytes, &len) != PL_OK)
        return pl_fail_prefix("--resume: checkpoint");
    int rc = pl_checkpoint_parse(path, bytes, len, r, config_text, model_sha256, data_sha256);
    free(bytes);
    return rc;
}

/* ------------------------------------------------------------ the lock */

/* "PATH.lock", malloc'ed. */
static char *lock_name(const char *path)
{
    char *name = pl_malloc(strlen(path) + 6, "path");
    if (name)
        sprintf(name, "%s.lock", path);
    return name;
}

/* The pid written in a held lock file, for the message (0: unknown). */
static long lock_holder(int fd)
{
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int pl_checkpoint_lock(const char *path, int *fd_out)
{
    *fd_out = -1;
    char *name = lock_name(path);
    if (!name)
        return PL_ERR;
    /* A lock file unlinked by its last holder between our open and our flock is not the one at the
     * name any more: take the lock again on the file that is. */
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0666);
        if (fd < 0) {
            int e = errno;
            free(name);
            return pl_fail("checkpoint %s: cannot create its lock file %s.lock: %s", path, path, strerror(e));
        }
        struct stat held, named;
        if (fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
            close(fd);
            free(name);
            return pl_fail("checkpoint %s: its lock file %s.lock is not a regular file", path, path);
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
            close(fd);
            free(name);
            if (e != EWOULDBLOCK)
                return pl_fail("checkpoint %s: cannot lock %s.lock: %s", path, path, strerror(e));
            char who[64] = "another run";
            if (pid > 0)
                snprintf(who, sizeof who, "another run (process %ld)", pid);
            return pl_fail("checkpoint %s is in use by %s, which holds %s.lock: two runs cannot share a checkpoint; "
                           "wait for it to end, or give this run another [run] checkpoint",
                           path, who, path);
        }
        if (stat(name, &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino) {
            char pid[32];
            int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
                /* the pid is only for the message of a run that finds the lock held */
            }
            free(name);
            *fd_out = fd;
            return PL_OK;
        }
        close(fd);
    }
    free(name);
    return pl_fail("checkpoint %s: cannot take its lock %s.lock (it keeps being replaced)", path, path);
}

void pl_checkpoint_unlock(const char *path, int fd)
{
    if (fd < 0)
        return;
    char *name = lock_name(path);
    if (name) /* still locked while it goes: a run waiting on this file retries on a new one */
        unlink(name);
    free(name);
    close(fd);
}

int pl_checkpoint_lock_free(const char *path)
{
    int fd;
    char *name = lock_name(path);
    if (!name)
        return PL_ERR;
    struct stat sb;
    int exists = lstat(name, &sb) == 0;
    free(name);
    if (!exists) /* nobody holds it; nothing is created by looking */
        return PL_OK;
    if (pl_checkpoint_lock(path, &fd) != PL_OK)
        return PL_ERR;
    close(fd); /* the file stays as it was found (a stale lock file, now with our pid: harmless) */
    return PL_OK;
}
