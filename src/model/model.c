/* Opening a model: which format and family a path holds (weights.c: the files its weights live in), and their
 * identity (sha256, unchanged-since-opened). */
#include <errno.h>
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

int pl_model_open(pl_model **out, const char *path) { return pl_model_open_with(out, path, NULL); }

int pl_model_open_with(pl_model **out, const char *path, const pl_model_open_opts *opts)
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
    m->arena = opts ? opts->arena : NULL;
    m->unfused = opts ? opts->unfused : 0;
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

int pl_model_weight_bytes(const char *path, size_t *converted, size_t *file_bytes)
{
    pl_weight_arena plan = {0};
    pl_model_open_opts o = {.arena = &plan};
    pl_model *m;
    if (pl_model_open_with(&m, path, &o) != PL_OK)
        return PL_ERR;
    *converted = plan.used;
    *file_bytes = 0;
    for (int i = 0; i < m->n_files; i++)
        *file_bytes += m->files[i].size;
    pl_model_close(m);
    return PL_OK;
}

void pl_model_describe(const pl_model *m, FILE *out)
{
    m->ops->describe(m, out);
    if (m->format_desc)
        fputs(m->format_desc, out);
}

const pl_model_info *pl_model_get_info(const pl_model *m) { return &m->info; }

const char *pl_model_path(const pl_model *m) { return m->path; }

const char *pl_model_config_sha256(const pl_model *m) { return m->config_sha256; }

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
