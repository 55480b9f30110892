/* Opening a model: which format and family a path holds, the files its weights live in, and their
 * identity (sha256, unchanged-since-opened). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"

void pl_model_close(pl_model *m)
{
    if (!m)
        return;
    if (m->ops && m->ops->free_weights)
        m->ops->free_weights(m->weights);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_files; i++) {
        pl_unmap_file(m->files[i].map, m->files[i].size);
        free(m->files[i].path);
    }
    free(m->files);
    free(m->path);
    free(m->format_desc);
    free(m);
}

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

const float *pl_model_weight_f32(pl_model *m, const char *file, const char *tensor, st_dtype dtype,
                                 const void *src, size_t n)
{
    const float *out;
    if (dtype == ST_F32 && !((uintptr_t)src & 3u)) {
        out = src;
    } else {
        float **grown = realloc(m->owned, sizeof *grown * (size_t)(m->n_owned + 1));
        if (!grown) {
            pl_fail("out of memory (converted weights)");
            return NULL;
        }
        m->owned = grown;
        float *copy = pl_malloc(sizeof(float) * (n ? n : 1), "converted weights");
        if (!copy)
            return NULL;
        m->owned[m->n_owned++] = copy;
        st_to_f32(dtype, src, n, copy);
        out = copy;
    }
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

int pl_model_open(pl_model **out, const char *path)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return pl_fail("%s: cannot open model: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return pl_fail("%s: not a model (a Hugging Face dir with config.json, or a llama2.c checkpoint file)", path);
    size_t len = strlen(path);
    if (S_ISREG(sb.st_mode) && ((len >= 12 && !strcmp(path + len - 12, ".safetensors")) ||
                                (len >= 5 && !strcmp(path + len - 5, ".json"))))
        return pl_fail("%s: a Hugging Face model is given by its directory (the one holding config.json)", path);
    pl_model *m = pl_calloc(1, sizeof *m, "model");
    if (!m)
        return PL_ERR;
    m->path = strdup(path);
    int rc = !m->path ? pl_fail("out of memory (model path)")
             : S_ISDIR(sb.st_mode) ? pl_family_open_hf(m, path)
                                   : pl_llama2c_open(m, path);
    if (rc != PL_OK) {
        pl_model_close(m);
        return PL_ERR;
    }
    *out = m;
    return PL_OK;
}

void pl_model_describe(const pl_model *m, FILE *out)
{
    m->ops->describe(m, out);
    if (m->format_desc)
        fputs(m->format_desc, out);
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

const pl_model_info *pl_model_get_info(const pl_model *m) { return &m->info; }

const char *pl_model_path(const pl_model *m) { return m->path; }

/* One hash over the weight files' bytes, concatenated in m->files' order (a single file: the sha256
 * of that file, as `sha256sum` prints it). */
int pl_model_sha256(const pl_model *m, char out[65])
{
    pl_sha256 *h;
    if (pl_sha256_begin(&h) != PL_OK)
        return PL_ERR;
    for (int i = 0; i < m->n_files; i++)
        if (pl_sha256_update(h, m->files[i].map, m->files[i].size) != PL_OK) {
            char ignored[65];
            pl_sha256_end(h, ignored);
            return pl_fail("%s: sha256 failed", m->files[i].path);
        }
    return pl_sha256_end(h, out);
}
