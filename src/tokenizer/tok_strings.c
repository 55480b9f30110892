/* String tables shared by the tokenizer kinds: one string per id, found again by its bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "tok_internal.h"

static uint64_t hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

int tok_strings_init(tok_strings *t, int n, size_t total)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->offset = pl_calloc((size_t)n ? (size_t)n : 1, sizeof(size_t), "token offsets");
    t->length = pl_malloc(((size_t)n ? (size_t)n : 1) * sizeof(int), "token lengths");
    t->bytes = pl_malloc(total + 1, "token bytes");
    if (!t->offset || !t->length || !t->bytes)
        return PL_ERR;
    for (int i = 0; i < n; i++)
        t->length[i] = -1;
    t->bytes[0] = '\0';
    return PL_OK;
}

void tok_strings_set(tok_strings *t, int id, const char *s, size_t len)
{
    memcpy(t->bytes + t->used, s, len);
    t->bytes[t->used + len] = '\0';
    t->offset[id] = t->used;
    t->length[id] = (int)len;
    t->used += len + 1;
}

int tok_strings_index(tok_strings *t)
{
    size_t size = 16;
    while (size < 2 * (size_t)t->n)
        size *= 2;
    t->mask = size - 1;
    t->slots = pl_malloc(size * sizeof(int), "token lookup table");
    if (!t->slots)
        return PL_ERR;
    memset(t->slots, 0xFF, size * sizeof(int));
    for (int id = 0; id < t->n; id++) {
        if (t->length[id] < 0)
            continue;
        const char *s = t->bytes + t->offset[id];
        if (tok_strings_find(t, s, (size_t)t->length[id]) >= 0)
            continue; /* a repeated string is found as its lowest id */
        size_t slot = hash_bytes((const unsigned char *)s, (size_t)t->length[id]) & t->mask;
        while (t->slots[slot] >= 0)
            slot = (slot + 1) & t->mask;
        t->slots[slot] = id;
    }
    return PL_OK;
}

int tok_strings_find(const tok_strings *t, const char *s, size_t len)
{
    for (size_t slot = hash_bytes((const unsigned char *)s, len) & t->mask;; slot = (slot + 1) & t->mask) {
        int id = t->slots[slot];
        if (id < 0)
            return -1;
        if ((size_t)t->length[id] == len && !memcmp(t->bytes + t->offset[id], s, len))
            return id;
    }
}

void tok_strings_free(tok_strings *t)
{
    free(t->bytes);
    free(t->offset);
    free(t->length);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int tok_buf_add(tok_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger)
            return pl_fail("out of memory (tokenizer buffer, %zu bytes)", cap);
        b->data = bigger;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PL_OK;
}

char *tok_join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = pl_malloc(n, "path");
    if (path)
        snprintf(path, n, "%s/%s", dir, name);
    return path;
}
