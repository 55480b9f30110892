/* sha256 (OpenSSL's libcrypto), as lowercase hex: the identity of models, prompt sets and checkpoints. */
#ifndef PLATEAU_HASH_H
#define PLATEAU_HASH_H

#include <stddef.h>

typedef struct pl_sha256 pl_sha256;

/* Incremental: begin, update any number of times, end (which frees the context and writes 64 hex
 * digits + NUL into OUT). On failure the context is freed and the message says sha256 failed. */
int pl_sha256_begin(pl_sha256 **h);
int pl_sha256_update(pl_sha256 *h, const void *bytes, size_t n);
int pl_sha256_end(pl_sha256 *h, char out[65]);

/* One shot over BYTES. */
int pl_sha256_hex(const void *bytes, size_t n, char out[65]);

/* Of the file at PATH (what `sha256sum` prints), mapped while it is read; WHAT names it in messages
 * ("[data] prompts"). */
int pl_sha256_file(const char *path, const char *what, char out[65]);

#endif
