/* Files in and out: the one place plateau opens what a user names.
 *
 * Inputs are regular files only (a FIFO, a device or a directory is refused before anything blocks or
 * reads without end), read whole with a size bound. Outputs are written atomically: a temporary file
 * in the target's directory, fsync, rename over the target, fsync of the directory, so a crash leaves
 * either the old file or the new one, never half of one. The target's own name is looked at with lstat:
 * a symbolic link there (to anything, even a regular file), a device, a FIFO or a socket is refused by
 * name and never replaced, '-' is refused (these outputs are files, not streams), and the rename
 * replaces a regular file or nothing (when nothing was there, it fails rather than replace what
 * appeared meanwhile). Links among the target's directories are followed as usual.
 */
#ifndef PLATEAU_FILEIO_H
#define PLATEAU_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* The size bound of whole-file reads (configs, JSON, tokenizer files, prompts, direction matrices):
 * far above any real input, far below what would exhaust memory by accident. */
#define PL_MAX_INPUT_BYTES ((size_t)1 << 32) /* 4 GiB */

/* Open PATH read-only as an input. It must exist and be a regular file (a FIFO is detected without
 * blocking); *fd is a blocking descriptor, *size the file size. WHAT names the input in messages
 * ("config", "prompts", ...; NULL: none). Errors: "PATH: cannot open: ...", "PATH: not a regular
 * file (a FIFO)", ... */
int pl_open_input(const char *path, const char *what, int *fd, size_t *size);

/* Read all of PATH (a regular file of at most MAX_BYTES) into a malloc'ed buffer *data of *size
 * bytes, plus a terminating NUL. Errors name the file. */
int pl_read_file(const char *path, size_t max_bytes, char **data, size_t *size);

/* The size bound of a stream read whole (plateau tokenize MODEL - reads stdin): a stream has no size to
 * check first, so it is read up to this many bytes and refused past them. */
#define PL_MAX_STDIN_BYTES ((size_t)64 << 20) /* 64 MiB */

/* Read all of FP (a stream: stdin, a pipe) into a malloc'ed *data of *size bytes plus a terminating NUL,
 * at most MAX_BYTES: one more is "WHAT: more than MAX_BYTES bytes, the most plateau reads from it". */
int pl_read_stream(FILE *fp, const char *what, size_t max_bytes, char **data, size_t *size);

/* Map all of PATH (a regular file) read-only. An empty file maps to *map = NULL, *size = 0. */
int pl_map_file(const char *path, const char *what, void **map, size_t *size);
void pl_unmap_file(void *map, size_t size);

/* 1 when A and B name the same existing file (same device and inode), else 0. */
int pl_same_file(const char *a, const char *b);

/* 1 when writing A would write B: the same existing file (pl_same_file), or, when neither exists yet,
 * the same name in the same directory (after resolving the directories' symbolic links). */
int pl_same_target(const char *a, const char *b);

/* Check, before any work, that PATH can take an output (WHAT names it: "output", "checkpoint"): a
 * non-empty name other than '-' that is not a directory, whose existing entry (if any) is a regular
 * file (plateau never replaces or writes through a symbolic link, and never replaces a device, FIFO or
 * socket), in an existing directory where a file can be created (proved by creating and removing a
 * temporary file there). Nothing existing is changed. */
int pl_check_output(const char *path, const char *what);

/* An atomic output: write through fp, then commit (or abort). */
typedef struct {
    char *path;  /* the target */
    char *tmp;   /* "<dir>/.<name>.tmp.<pid>[.N]" beside it, created new (O_EXCL): never someone's file */
    FILE *fp;
} pl_atomic_file;

/* Create the temporary file beside PATH. PATH must not exist or be a regular file (lstat: not a link),
 * and not be '-'. Errors name PATH. */
int pl_atomic_begin(pl_atomic_file *af, const char *path);
/* Flush, fsync, close, rename over the target (only a regular file, or nothing: then without replacing
 * what appears meanwhile) and fsync its directory. On failure the temporary file is removed and the
 * target is untouched. Either way *af is released. */
int pl_atomic_commit(pl_atomic_file *af);
/* Remove the temporary file and release *af (no-op when nothing was begun). */
void pl_atomic_abort(pl_atomic_file *af);
/* pl_atomic_begin + one write of N bytes + pl_atomic_commit. */
int pl_write_file_atomic(const char *path, const void *bytes, size_t n);

#endif
