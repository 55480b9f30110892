/* plateau's one error path.
 *
 * A function that can fail returns PL_ERR (-1) after calling pl_fail() with a one-line message that
 * names the file, key or value and what is wrong with it; PL_OK (0) otherwise. Callers either pass
 * the failure up unchanged, or add context with pl_fail_prefix(). The CLI prints the message once,
 * as "plateau: <message>", and exits with PL_EXIT_INPUT (2).
 */
#ifndef PLATEAU_ERROR_H
#define PLATEAU_ERROR_H

#include <stddef.h>

#define PL_OK 0
#define PL_ERR (-1)

/* Process exit codes, documented in docs/trust.md. */
enum {
    PL_EXIT_OK = 0,
    PL_EXIT_USAGE = 1,      /* command line could not be parsed */
    PL_EXIT_INPUT = 2,      /* bad input: model dir, config, data, checkpoint, output path */
    PL_EXIT_FAULT = 3,      /* a rank died or stopped answering, or an MPI/system failure */
    PL_EXIT_PREEMPTED = 75, /* checkpoint written after SIGTERM/SIGINT/SIGUSR1: requeue and --resume */
};

#if defined(__GNUC__)
#define PL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PL_PRINTF(a, b)
#endif

/* Record a message (printf-style) and return PL_ERR. Line breaks in it become spaces and other
 * control characters '?', so a message is always one line whatever it quotes. */
int pl_fail(const char *fmt, ...) PL_PRINTF(1, 2);
/* Prepend "<context>: " to the recorded message and return PL_ERR. */
int pl_fail_prefix(const char *fmt, ...) PL_PRINTF(1, 2);
/* The recorded message ("" if none). */
const char *pl_error(void);
/* Forget the recorded message. */
void pl_error_clear(void);

/* malloc/calloc that record "out of memory (<what>, N bytes)" on failure. */
void *pl_malloc(size_t bytes, const char *what);
void *pl_calloc(size_t count, size_t size, const char *what);

#endif
