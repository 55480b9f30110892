/* The optimisations in flight (sweep_internal.h, "optimisations in flight"): a small table of saved
 * optimiser states keyed by base, and its bytes as a checkpoint and a message carry them. */
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "sweep_internal.h"

void pl_opt_store_init(pl_opt_store *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
}

static void clear(pl_opt_store *st)
{
    for (int i = 0; i < st->n; i++)
        free(st->e[i].bytes);
    st->n = 0;
}

void pl_opt_store_free(pl_opt_store *st)
{
    clear(st);
    free(st->e);
    pthread_mutex_destroy(&st->lock);
    memset(st, 0, sizeof *st);
}

static int find(const pl_opt_store *st, int p, int b, int s)
{
    for (int i = 0; i < st->n; i++)
        if (st->e[i].p == p && st->e[i].b == b && st->e[i].s == s)
            return i;
    return -1;
}

/* Under the lock. */
static int put_locked(pl_opt_store *st, int p, int b, int s, const unsigned char *bytes, size_t len)
{
    int i = find(st, p, b, s);
    if (len == 0) {
        if (i >= 0) {
            free(st->e[i].bytes);
            st->e[i] = st->e[--st->n];
        }
        return PL_OK;
    }
    unsigned char *copy = pl_malloc(len, "optimiser state");
    if (!copy)
        return PL_ERR;
    memcpy(copy, bytes, len);
    if (i < 0) {
        if (st->n == st->cap) {
            int cap = st->cap ? 2 * st->cap : 8;
            pl_opt_saved *e = realloc(st->e, sizeof *e * (size_t)cap);
            if (!e) {
                free(copy);
                return pl_fail("out of memory (optimiser states)");
            }
            st->e = e, st->cap = cap;
        }
        i = st->n++;
        st->e[i] = (pl_opt_saved){p, b, s, NULL, 0};
    }
    free(st->e[i].bytes);
    st->e[i].bytes = copy, st->e[i].len = len;
    return PL_OK;
}

int pl_opt_store_put(pl_opt_store *st, int p, int b, int s, const unsigned char *bytes, size_t len)
{
    pthread_mutex_lock(&st->lock);
    int rc = put_locked(st, p, b, s, bytes, len);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

void pl_opt_store_prune(pl_opt_store *st, int (*needed)(void *ctx, int p, int b, int s), void *ctx)
{
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->n;)
        if (needed(ctx, st->e[i].p, st->e[i].b, st->e[i].s)) {
            i++;
        } else {
            free(st->e[i].bytes);
            st->e[i] = st->e[--st->n];
        }
    pthread_mutex_unlock(&st->lock);
}

int pl_opt_store_get(pl_opt_store *st, int p, int b, int s, unsigned char **bytes, size_t *len)
{
    *bytes = NULL, *len = 0;
    pthread_mutex_lock(&st->lock);
    int i = find(st, p, b, s), rc = PL_OK;
    if (i >= 0 && (*bytes = pl_malloc(st->e[i].len, "optimiser state")) != NULL) {
        memcpy(*bytes, st->e[i].bytes, st->e[i].len);
        *len = st->e[i].len;
    } else if (i >= 0) {
        rc = PL_ERR;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int by_key(const void *a, const void *b)
{
    const pl_opt_saved *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    return x->s < y->s ? -1 : x->s > y->s;
}

static int append(unsigned char **buf, size_t *len, const void *p, size_t n)
{
    unsigned char *nb = realloc(*buf, *len + n + 1);
    if (!nb)
        return pl_fail("out of memory (optimiser states, %zu bytes)", *len + n);
    memcpy(nb + *len, p, n);
    *buf = nb, *len += n;
    return PL_OK;
}

int pl_opt_store_bytes(pl_opt_store *st, unsigned char **buf, size_t *len)
{
    pthread_mutex_lock(&st->lock);
    if (st->n > 1)
        qsort(st->e, (size_t)st->n, sizeof *st->e, by_key);
    uint64_t count = (uint64_t)st->n;
    int rc = append(buf, len, &count, 8);
    for (int i = 0; rc == PL_OK && i < st->n; i++) {
        const pl_opt_saved *e = &st->e[i];
        int32_t key[3] = {e->p, e->b, e->s};
        uint64_t n = e->len;
        rc = append(buf, len, key, sizeof key);
        rc = rc ? rc : append(buf, len, &n, 8);
        rc = rc ? rc : append(buf, len, e->bytes, e->len);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int pl_opt_store_parse(pl_opt_store *st, const unsigned char *bytes, size_t len, size_t max_len)
{
    uint64_t count;
    if (len < 8)
        return pl_fail("optimiser states: corrupt (too short)");
    memcpy(&count, bytes, 8);
    size_t at = 8;
    if (st) {
        pthread_mutex_lock(&st->lock);
        clear(st);
        pthread_mutex_unlock(&st->lock);
    }
    for (uint64_t i = 0; i < count; i++) {
        int32_t key[3];
        uint64_t n;
        if (len - at < 20)
            return pl_fail("optimiser states: corrupt (state %llu of %llu cut short)", (unsigned long long)i,
                           (unsigned long long)count);
        memcpy(key, bytes + at, 12);
        memcpy(&n, bytes + at + 12, 8);
        at += 20;
        if (n == 0 || n > max_len || n > len - at || key[0] < 0 || key[1] < 0 || key[2] < 0)
            return pl_fail("optimiser states: corrupt (state %llu: %llu bytes, base %d/%d/%d)", (unsigned long long)i,
                           (unsigned long long)n, key[0], key[1], key[2]);
        if (st && pl_opt_store_put(st, key[0], key[1], key[2], bytes + at, (size_t)n) != PL_OK)
            return PL_ERR;
        at += (size_t)n;
    }
    if (at != len)
        return pl_fail("optimiser states: corrupt (%zu bytes after the last state)", len - at);
    return PL_OK;
}

size_t pl_opt_state_max(const pl_sweep *sw)
{
    return sw->n_opt ? pl_sphere_state_size(sw->n_opt, sw->C, 1) : 0;
}
