/* Watched inputs (see include/plateau/watch.h), and the memory regions whose SIGBUS has a line of
 * their own: one table.
 *
 * The table is a fixed array so that the SIGBUS handler can walk it without taking a lock or
 * following memory that may move: an entry is filled, then marked used (release); the handler only
 * reads used entries. Everything else takes the mutex. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plateau/error.h"
#include "plateau/watch.h"

#define WATCH_MAX 1024 /* far above any run's inputs (a model of 100 shards, an SAE, directions) */

/* A watched file (path set), or a region of memory that is no file's (path NULL: pl_watch_region). */
typedef struct {
    int used;          /* read by the signal handler: written with __atomic_store_n */
    char *path, *what; /* what: NULL for a file named by its path alone */
    const char *map;   /* the mapping, or NULL for a file read whole */
    size_t map_size;
    struct stat st;    /* at open */
    char *sigbus_line; /* the handler's line for a SIGBUS in the mapping (after "plateau: " and the prefix) */
    int sigbus_exit;   /* and its exit status */
} watched;

static watched g_watch[WATCH_MAX];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_prefix[64];

/* Fill a free slot with E (its strings malloc'ed: the table takes them; freed on failure). A file read
 * whole (no map) is identified once: its first identity is what was read. */
static int add(watched e)
{
    pthread_mutex_lock(&g_lock);
    int slot = -1;
    for (int i = 0; i < WATCH_MAX; i++) {
        if (!g_watch[i].used && slot < 0)
            slot = i;
        if (!e.map && e.path && g_watch[i].used && !g_watch[i].map && g_watch[i].path &&
            !strcmp(g_watch[i].path, e.path)) {
            pthread_mutex_unlock(&g_lock);
            free(e.path), free(e.what), free(e.sigbus_line);
            return PL_OK;
        }
    }
    int rc = PL_OK;
    if (slot < 0) {
        rc = pl_fail("%s: more than %d input files are open", e.path ? e.path : "a memory region", WATCH_MAX);
        free(e.path), free(e.what), free(e.sigbus_line);
    } else {
        e.used = 0; /* the slot is marked used only once it is whole */
        g_watch[slot] = e;
        __atomic_store_n(&g_watch[slot].used, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int pl_watch_file(const char *path, const char *what)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return PL_OK; /* the reader's own open says why, in its words */
    watched e = {.path = strdup(path), .what = dup_or_null(what), .st = sb};
    if (!e.path || (what && !e.what)) {
        free(e.path), free(e.what);
        return pl_fail("out of memory (watched inputs)");
    }
    return add(e);
}

int pl_watch_mapping(const char *path, const char *what, const void *map, size_t size, const struct stat *sb)
{
    size_t n = strlen(path) + 160;
    watched e = {.path = strdup(path), .what = dup_or_null(what), .map = map, .map_size = size, .st = *sb,
                 .sigbus_line = malloc(n), .sigbus_exit = PL_EXIT_INPUT};
    if (!e.path || (what && !e.what) || !e.sigbus_line) {
        free(e.path), free(e.what), free(e.sigbus_line);
        return pl_fail("out of memory (watched inputs)");
    }
    snprintf(e.sigbus_line, n, "%s: the file was truncated while plateau was reading it (a watched input changed "
             "during the run): the run stops", path);
    return add(e);
}

void pl_watch_region(const void *base, size_t size, const char *line)
{
    watched e = {.map = base, .map_size = size, .sigbus_line = strdup(line), .sigbus_exit = PL_EXIT_FAULT};
    if (!e.sigbus_line)
        return; /* a SIGBUS there is then re-raised as a bare signal: the scheduler reports the rank's death */
    add(e);
}

/* Stop watching the mapping or region at MAP. */
static void remove_map(const void *map)
{
    if (!map)
        return;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < WATCH_MAX; i++) {
        watched *e = &g_watch[i];
        if (e->used && e->map == map) {
            __atomic_store_n(&e->used, 0, __ATOMIC_RELEASE);
            free(e->path);
            free(e->what);
            free(e->sigbus_line);
            memset(e, 0, sizeof *e);
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

void pl_watch_unmap(const void *map) { remove_map(map); }
void pl_watch_region_end(const void *base) { remove_map(base); }

static int same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The error for E, which differs from NOW (or is gone: NOW NULL, ERR its errno). */
static int changed(const watched *e, const struct stat *now, int err)
{
    char what[160];
    snprintf(what, sizeof what, "the %s%s", e->what ? e->what : "input", e->what ? "" : " file");
    const struct stat *then = &e->st;
    if (!now)
        return pl_fail("%s: %s is gone while plateau was using it (%s): the run stops", e->path, what, strerror(err));
    if (now->st_dev != then->st_dev || now->st_ino != then->st_ino)
        return pl_fail("%s: %s was replaced while plateau was using it (another file has its name now): the run "
                       "stops", e->path, what);
    if (now->st_size < then->st_size)
        return pl_fail("%s: %s was truncated while plateau was using it (%lld bytes, %lld when opened): the run "
                       "stops", e->path, what, (long long)now->st_size, (long long)then->st_size);
    return pl_fail("%s: %s changed while plateau was using it (%s): the run stops", e->path, what,
                   now->st_size != then->st_size ? "its size" : !same_time(&now->st_mtim, &then->st_mtim)
                                                                    ? "its modification time"
                                                                    : "its status change time");
}

int pl_watch_check(void)
{
    pthread_mutex_lock(&g_lock);
    int rc = PL_OK;
    for (int i = 0; i < WATCH_MAX && rc == PL_OK; i++) {
        const watched *e = &g_watch[i];
        if (!e->used || !e->path)
            continue;
        struct stat now;
        if (stat(e->path, &now) != 0)
            rc = changed(e, NULL, errno);
        else if (now.st_dev != e->st.st_dev || now.st_ino != e->st.st_ino || now.st_size != e->st.st_size ||
                 !same_time(&now.st_mtim, &e->st.st_mtim) || !same_time(&now.st_ctim, &e->st.st_ctim))
            rc = changed(e, &now, 0);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* ------------------------------------------------------------ SIGBUS */

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Only async-signal-safe calls: strlen, write, _exit, sigaction, raise. */
static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    const char *addr = si ? (const char *)si->si_addr : NULL;
    for (int i = 0; addr && i < WATCH_MAX; i++) {
        const watched *e = &g_watch[i];
        if (!__atomic_load_n(&e->used, __ATOMIC_ACQUIRE) || !e->map || addr < e->map || addr >= e->map + e->map_size)
            continue;
        put("plateau: ");
        put(g_prefix);
        put(e->sigbus_line);
        put("\n");
        _exit(e->sigbus_exit);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

void pl_watch_sigbus(const char *prefix)
{
    snprintf(g_prefix, sizeof g_prefix, "%s", prefix ? prefix : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
