/* Where a model's weights live: the files mapped for it (and their identity), and fp32 views of their
 * tensors (in place when aligned F32, else a converted copy the model owns). The formats (formats/)
 * and families build on these; model.c, which opens a path through them, only calls down. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/fileio.h"

int pl_model_map_file(pl_model *m, const char *path, const char *what, const void **map, size_t *size)
{
    pl_weight_file *grown = realloc(m->files, sizeof *grown * (size_t)(m->n_files + 1));
    if (!grown)
        return pl_fail("out of memory (weight files)");
    m->files = grown;
    pl_weight_file *f = &m->files[m->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return pl_fail("out of memory (weight file path)");
    if (pl_map_file(path, what, &f->map, &f->size) != PL_OK) {
        free(f->path);
        return PL_ERR;
    }
    m->n_files++;
    if (stat(path, &f->st) != 0)
        return pl_fail("%s: cannot stat: %s", path, strerror(errno));
    *map = f->map;
    *size = f->size;
    return PL_OK;
}

/* Pieces of an arena start on 64-byte boundaries (cache lines; OpenBLAS packs from any address). */
#define ARENA_ALIGN 64

/* A plan counts bytes and hands out this, never read: nothing dereferences a weight during a load. */
static float plan_dummy[16] __attribute__((aligned(ARENA_ALIGN)));

float *pl_model_weight_space(pl_model *m, size_t n, int *fill)
{
    pl_weight_arena *a = m->arena;
    size_t bytes = sizeof(float) * (n ? n : 1);
    if (a) {
        size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        *fill = a->base && a->fill;
        if (!a->base) {
            a->used += need;
            return plan_dummy;
        }
        if (need > a->size - a->used) {
            pl_fail("%s: the converted weights need more than the node's shared weight window of %zu bytes "
                    "(%zu in use, %zu more asked)", m->path, a->size, a->used, need);
            return NULL;
        }
        float *out = (float *)(void *)(a->base + a->used);
        a->used += need;
        return out;
    }
    float **grown = realloc(m->owned, sizeof *grown * (size_t)(m->n_owned + 1));
    if (!grown) {
        pl_fail("out of memory (converted weights)");
        return NULL;
    }
    m->owned = grown;
    float *copy = pl_malloc(bytes, "converted weights");
    if (!copy)
        return NULL;
    m->owned[m->n_owned++] = copy;
    *fill = 1;
    return copy;
}

const float *pl_model_weight_f32(pl_model *m, const char *file, const char *tensor, st_dtype dtype,
                                 const void *src, size_t n)
{
    if (dtype == ST_F32 && !((uintptr_t)src & 3u) && m->arena && !m->arena->base)
        return src; /* a plan reads no weight */
    if (dtype == ST_F32 && !((uintptr_t)src & 3u))
        return st_check_finite(file, tensor, src, n) == PL_OK ? src : NULL;
    int fill;
    float *out = pl_model_weight_space(m, n, &fill);
    if (!out || !fill) /* filled (and checked) by another process of the node, or a plan */
        return out;
    st_to_f32(dtype, src, n, out);
    return st_check_finite(file, tensor, out, n) == PL_OK ? out : NULL;
}

void pl_model_describe_add(pl_model *m, const char *key, const char *fmt, ...)
{
    char value[512], line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%-19s %s\n", key, value);
    size_t old = m->format_desc ? strlen(m->format_desc) : 0;
    char *grown = realloc(m->format_desc, old + strlen(line) + 1);
    if (!grown)
        return; /* info lines are a courtesy */
    strcpy(grown + old, line);
    m->format_desc = grown;
}

int pl_model_check_unchanged(const pl_model *m)
{
    for (int i = 0; i < m->n_files; i++) {
        struct stat now;
        const pl_weight_file *f = &m->files[i];
        const struct stat *then = &f->st;
        if (stat(f->path, &now) != 0)
            return pl_fail("%s: the model file is gone: %s", f->path, strerror(errno));
        if (now.st_dev != then->st_dev || now.st_ino != then->st_ino || now.st_size != then->st_size ||
            now.st_mtim.tv_sec != then->st_mtim.tv_sec || now.st_mtim.tv_nsec != then->st_mtim.tv_nsec)
            return pl_fail("%s: the model file changed while plateau was using it (size, inode or modification time)",
                           f->path);
    }
    return PL_OK;
}
