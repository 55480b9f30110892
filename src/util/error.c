#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"

static _Thread_local char error_message[2048];

/* Messages are one line, whatever they quote (a parser's excerpt of a file, a value with a newline):
 * line breaks and tabs become spaces, other control characters '?'. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
        else if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int pl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    one_line(error_message);
    return PL_ERR;
}

int pl_fail_prefix(const char *fmt, ...)
{
    char prefix[1024];
    char previous[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(previous, error_message, sizeof previous);
    /* Messages are one line; truncating a very long one is better than losing the prefix. */
    size_t used = strlen(prefix);
    if (used > sizeof error_message - 3)
        used = sizeof error_message - 3;
    memcpy(error_message, prefix, used);
    memcpy(error_message + used, ": ", 2);
    used += 2;
    size_t rest = strnlen(previous, sizeof previous - 1);
    if (rest > sizeof error_message - 1 - used)
        rest = sizeof error_message - 1 - used;
    memcpy(error_message + used, previous, rest);
    error_message[used + rest] = '\0';
    one_line(error_message);
    return PL_ERR;
}

const char *pl_error(void) { return error_message; }

void pl_error_clear(void) { error_message[0] = '\0'; }

void *pl_malloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        pl_fail("out of memory (%s, %zu bytes)", what, bytes);
    return p;
}

void *pl_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        pl_fail("out of memory (%s, %zu x %zu bytes)", what, count, size);
    return p;
}
