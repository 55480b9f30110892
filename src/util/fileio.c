/* Bounded reads of regular files, and atomic writes (see include/plateau/fileio.h). */
#define _GNU_SOURCE /* renameat2 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/watch.h"

static const char *file_kind(mode_t mode)
{
    return S_ISLNK(mode)    ? "a symbolic link"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

int pl_open_input(const char *path, const char *what, int *fd_out, size_t *size)
{
    const char *sep = what ? " " : "", *label = what ? what : "";
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return pl_fail("%s%s%s: cannot open: %s", label, sep, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return pl_fail("%s%s%s: cannot stat: %s", label, sep, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return pl_fail("%s%s%s: is %s, not a regular file", label, sep, path, file_kind(sb.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return pl_fail("%s%s%s: fcntl: %s", label, sep, path, strerror(e));
    }
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    return PL_OK;
}

int pl_read_file(const char *path, size_t max_bytes, char **data, size_t *size)
{
    int fd;
    size_t expect;
    if (pl_open_input(path, NULL, &fd, &expect) != PL_OK)
        return PL_ERR;
    if (expect > max_bytes) {
        close(fd);
        return pl_fail("%s: %zu bytes is larger than the %zu this input may have", path, expect, max_bytes);
    }
    char *buf = pl_malloc(expect + 1, path);
    if (!buf) {
        close(fd);
        return PL_ERR;
    }
    /* read what fstat promised; a file that grows meanwhile is read up to that size */
    size_t len = 0;
    while (len < expect) {
        ssize_t n = read(fd, buf + len, expect - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return pl_fail("%s: read error: %s", path, strerror(e));
        }
        if (n == 0)
            break; /* truncated meanwhile: what is there is what the parser sees */
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return PL_OK;
}

int pl_read_stream(FILE *fp, const char *what, size_t max_bytes, char **data, size_t *size)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = pl_malloc(cap + 1, what);
    if (!buf)
        return PL_ERR;
    for (;;) {
        len += fread(buf + len, 1, cap - len, fp);
        if (len < cap || len > max_bytes)
            break;
        /* grow to at most max_bytes + 1: one byte past the cap proves the stream is over it */
        size_t next = cap > max_bytes / 2 ? max_bytes + 1 : 2 * cap;
        char *bigger = realloc(buf, next + 1);
        if (!bigger) {
            free(buf);
            return pl_fail("%s: out of memory after %zu bytes", what, len);
        }
        buf = bigger;
        cap = next;
    }
    if (len > max_bytes) {
        free(buf);
        return pl_fail("%s: more than %zu bytes, the most plateau reads from it", what, max_bytes);
    }
    if (ferror(fp)) {
        free(buf);
        return pl_fail("%s: read error", what);
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return PL_OK;
}

int pl_map_file(const char *path, const char *what, void **map, size_t *size)
{
    int fd;
    size_t n;
    if (pl_open_input(path, what, &fd, &n) != PL_OK)
        return PL_ERR;
    *map = NULL;
    *size = 0;
    if (n == 0) {
        close(fd);
        return PL_OK;
    }
    struct stat sb; /* the identity the map is watched against (plateau/watch.h) */
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return pl_fail("%s: cannot stat: %s", path, strerror(e));
    }
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return pl_fail("%s: cannot mmap %zu bytes: %s", path, n, strerror(e));
    if (pl_watch_mapping(path, what, p, n, &sb) != PL_OK) {
        munmap(p, n);
        return PL_ERR;
    }
    *map = p;
    *size = n;
    return PL_OK;
}

void pl_unmap_file(void *map, size_t size)
{
    pl_watch_unmap(map);
    if (map && size)
        munmap(map, size);
}


/* ------------------------------------------------------------ atomic writes */

static char *dir_of(const char *path)
{
    char *copy = pl_malloc(strlen(path) + 1, "path");
    if (!copy)
        return NULL;
    strcpy(copy, path);
    char *d = dirname(copy); /* may point into copy or at a static "." */
    char *out = pl_malloc(strlen(d) + 1, "path");
    if (out)
        strcpy(out, d);
    free(copy);
    return out;
}

static int fsync_dir(const char *path)
{
    char *dir = dir_of(path);
    if (!dir)
        return PL_ERR;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = PL_OK;
    if (fd < 0 || fsync(fd) != 0)
        rc = pl_fail("%s: cannot fsync its directory %s: %s", path, dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int pl_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* "<real directory>/<name>" of a path that need not exist yet; NULL when its directory does not
 * resolve either. malloc'ed. */
static char *resolved_target(const char *path)
{
    char *dir = dir_of(path);
    if (!dir)
        return NULL;
    char *real = realpath(dir, NULL);
    free(dir);
    if (!real)
        return NULL;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(real) + strlen(base) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", real, base);
    free(real);
    return out;
}

int pl_same_target(const char *a, const char *b)
{
    struct stat sa, sb;
    int have_a = stat(a, &sa) == 0, have_b = stat(b, &sb) == 0;
    if (have_a || have_b)
        return have_a && have_b && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = resolved_target(a), *rb = resolved_target(b);
    int same = ra && rb ? !strcmp(ra, rb) : !strcmp(a, b);
    free(ra);
    free(rb);
    return same;
}

int pl_check_output(const char *path, const char *what)
{
    pl_atomic_file af;
    if (pl_atomic_begin(&af, path) != PL_OK)
        return pl_fail_prefix("%s", what);
    pl_atomic_abort(&af);
    return PL_OK;
}

int pl_atomic_begin(pl_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    if (!path[0])
        return pl_fail("the path is empty");
    if (!strcmp(path, "-")) /* not a file name here: standard output cannot be renamed into place */
        return pl_fail("'-': standard output cannot take this file (it is written whole and renamed into "
                       "place); name a file (./- for one called '-')");
    struct stat sb; /* lstat: the name itself, never what a link there points to */
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return pl_fail("%s: is %s; plateau only replaces regular files%s", path, file_kind(sb.st_mode),
                       S_ISLNK(sb.st_mode) ? " (it neither follows nor replaces a link: name the file itself)" : "");
    const char *base = strrchr(path, '/');
    size_t dir_len = base ? (size_t)(base - path) + 1 : 0;
    base = base ? base + 1 : path;
    if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
        return pl_fail("%s: names a directory, not a file", path);
    size_t n = strlen(path) + 64;
    af->path = pl_malloc(strlen(path) + 1, "path");
    af->tmp = pl_malloc(n, "path");
    if (!af->path || !af->tmp) {
        pl_atomic_abort(af);
        return PL_ERR;
    }
    strcpy(af->path, path);
    /* O_EXCL: the temporary name is new, so no file of anyone else is ever truncated or removed */
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        if (attempt == 0)
            snprintf(af->tmp, n, "%.*s.%s.tmp.%ld", (int)dir_len, path, base, (long)getpid());
        else
            snprintf(af->tmp, n, "%.*s.%s.tmp.%ld.%d", (int)dir_len, path, base, (long)getpid(), attempt);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = errno;
        if (fd < 0 && err != EEXIST)
            break;
    }
    if (fd < 0) {
        char *dir = dir_of(path);
        struct stat db;
        int no_dir = dir && (stat(dir, &db) != 0 || !S_ISDIR(db.st_mode));
        if (no_dir)
            pl_fail("%s: its directory %s does not exist", path, dir);
        else
            pl_fail("%s: cannot write in its directory: %s", path, strerror(err));
        free(dir);
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return PL_ERR;
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        pl_atomic_abort(af);
        return pl_fail("%s: %s", path, strerror(e));
    }
    return PL_OK;
}

void pl_atomic_abort(pl_atomic_file *af)
{
    if (af->fp) {
        fclose(af->fp);
        if (af->tmp)
            unlink(af->tmp);
    }
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

/* Rename the finished TMP to PATH, replacing only a regular file or nothing. The target may have become
 * something else while the file was written: it is looked at with lstat (the name's own directory entry;
 * rename would replace a symbolic link there, not its target), and when nothing is there the rename
 * must not replace what appears meanwhile (RENAME_NOREPLACE, or link(2) on a file system without it:
 * both fail with EEXIST rather than replace). Left open: a regular file swapped for a link between the
 * lstat and the rename, a window of two system calls in a directory the attacker can write. */
static int place_file(const char *tmp, const char *path)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat sb;
        if (lstat(path, &sb) == 0) {
            if (!S_ISREG(sb.st_mode))
                return pl_fail("%s: is %s now; plateau only replaces regular files", path, file_kind(sb.st_mode));
            if (rename(tmp, path) != 0)
                return pl_fail("%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
            return PL_OK;
        }
        if (errno != ENOENT)
            return pl_fail("%s: cannot stat: %s", path, strerror(errno));
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            return PL_OK;
        int e = errno;
        if (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) { /* no RENAME_NOREPLACE on this file system */
            if (link(tmp, path) == 0) {
                unlink(tmp);
                return PL_OK;
            }
            e = errno;
            /* nor hard links (FAT, some FUSE): a plain rename, the name having been checked just above */
            if (e != EEXIST && rename(tmp, path) == 0)
                return PL_OK;
            e = e != EEXIST ? errno : e;
        }
        if (e != EEXIST)
            return pl_fail("%s: cannot rename %s to it: %s", path, tmp, strerror(e));
        /* something appeared at PATH meanwhile: look at it again */
    }
    return pl_fail("%s: keeps appearing and disappearing while plateau writes it", path);
}

int pl_atomic_commit(pl_atomic_file *af)
{
    int rc = PL_OK;
    if (fflush(af->fp) != 0 || ferror(af->fp))
        rc = pl_fail("%s: write failed: %s", af->path, strerror(errno));
    else if (fsync(fileno(af->fp)) != 0)
        rc = pl_fail("%s: fsync failed: %s", af->path, strerror(errno));
    int closed = fclose(af->fp);
    af->fp = NULL;
    if (rc == PL_OK && closed != 0)
        rc = pl_fail("%s: write failed: %s", af->path, strerror(errno));
    if (rc == PL_OK)
        rc = place_file(af->tmp, af->path);
    if (rc != PL_OK)
        unlink(af->tmp);
    else
        rc = fsync_dir(af->path);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
    return rc;
}

int pl_write_file_atomic(const char *path, const void *bytes, size_t n)
{
    pl_atomic_file af;
    if (pl_atomic_begin(&af, path) != PL_OK)
        return PL_ERR;
    if (n && fwrite(bytes, 1, n, af.fp) != n) {
        int e = errno;
        pl_atomic_abort(&af);
        return pl_fail("%s: write failed: %s", path, strerror(e));
    }
    return pl_atomic_commit(&af);
}
