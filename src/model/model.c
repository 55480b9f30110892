/* Opening a model: which format and family a path holds, and the identity of its weights. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "model_internal.h"
#include "plateau/error.h"
#include "plateau/hash.h"

void pl_model_close(pl_model *m)
{
    if (!m)
        return;
    if (m->ops && m->ops->free_weights)
        m->ops->free_weights(m->weights);
    free(m->owned);
    if (m->map)
        munmap(m->map, m->map_size);
    free(m->path);
    free(m->weights_path);
    free(m);
}

int pl_model_open(pl_model **out, const char *path)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return pl_fail("%s: cannot open model: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pl_fail("%s: not a model dir (a Hugging Face dir with config.json and model.safetensors)", path);
    pl_model *m = pl_calloc(1, sizeof *m, "model");
    if (!m)
        return PL_ERR;
    m->path = pl_malloc(strlen(path) + 1, "model path");
    if (!m->path || pl_gpt2_open(m, path) != PL_OK) {
        pl_model_close(m);
        return PL_ERR;
    }
    strcpy(m->path, path);
    if (stat(m->weights_path, &m->weights_stat) != 0) {
        pl_fail("%s: cannot stat: %s", m->weights_path, strerror(errno));
        pl_model_close(m);
        return PL_ERR;
    }
    *out = m;
    return PL_OK;
}

void pl_model_describe(const pl_model *m, FILE *out) { m->ops->describe(m, out); }

int pl_model_check_unchanged(const pl_model *m)
{
    struct stat now;
    const struct stat *then = &m->weights_stat;
    if (stat(m->weights_path, &now) != 0)
        return pl_fail("%s: the model file is gone: %s", m->weights_path, strerror(errno));
    if (now.st_dev != then->st_dev || now.st_ino != then->st_ino || now.st_size != then->st_size ||
        now.st_mtim.tv_sec != then->st_mtim.tv_sec || now.st_mtim.tv_nsec != then->st_mtim.tv_nsec)
        return pl_fail("%s: the model file changed while plateau was using it (size, inode or modification time)",
                       m->weights_path);
    return PL_OK;
}

const pl_model_info *pl_model_get_info(const pl_model *m) { return &m->info; }

const char *pl_model_path(const pl_model *m) { return m->path; }

int pl_model_sha256(const pl_model *m, char out[65])
{
    pl_sha256 *h;
    if (pl_sha256_begin(&h) != PL_OK)
        return PL_ERR;
    if (pl_sha256_update(h, m->map, m->map_size) != PL_OK) {
        char ignored[65];
        pl_sha256_end(h, ignored);
        return pl_fail("%s: sha256 failed", m->weights_path ? m->weights_path : m->path);
    }
    return pl_sha256_end(h, out);
}
