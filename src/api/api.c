/* libplateau's public API (plateau/plateau.h): models, tokenizing and cached forwards over the model
 * and tokenizer layers. The curves are in curves.c. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "api_internal.h"
#include "plateau/error.h"
#include "plateau/version.h"

/* OpenBLAS's own (no header declares it in every distribution's cblas.h). */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);

/* ------------------------------------------------------------ the library */

int pl_api_version(void) { return PL_API_VERSION; }

const char *pl_library_version(void) { return pl_version(); }

const char *pl_last_error(void) { return pl_error(); }

void pl_free(void *p) { free(p); }

int pl_set_threads(int n)
{
    if (n < 1)
        return pl_fail("threads: %d (at least 1)", n);
    openblas_set_num_threads(n);
    int got = openblas_get_num_threads();
    if (got != n)
        return pl_fail("threads: %d, but this OpenBLAS runs at most %d", n, got);
    return PL_OK;
}

int pl_api_position(int pos, int T, const char *what, int *out)
{
    int p = pos < 0 ? T + pos : pos;
    if (p < 0 || p >= T)
        return pl_fail("%s %d is outside the %d positions of the prompt", what, pos, T);
    *out = p;
    return PL_OK;
}

/* ------------------------------------------------------------ a model */

int pl_lm_open(pl_lm **lm, const char *path)
{
    *lm = NULL;
    if (!path)
        return pl_fail("pl_lm_open: no path");
    pl_lm *h = pl_calloc(1, sizeof *h, "model handle");
    if (!h)
        return PL_ERR;
    if (pl_model_open(&h->model, path) != PL_OK) {
        free(h);
        return PL_ERR;
    }
    *lm = h;
    return PL_OK;
}

void pl_lm_close(pl_lm *lm)
{
    if (!lm)
        return;
    pl_tokenizer_free(lm->tok);
    pl_model_close(lm->model);
    free(lm);
}

int pl_lm_open_tokenizer(pl_lm *lm, const char *path)
{
    pl_tokenizer *tok;
    if (!path)
        return pl_fail("open_tokenizer: no path");
    if (pl_tokenizer_open(&tok, pl_model_path(lm->model), path, pl_model_get_info(lm->model)->n_vocab) != PL_OK)
        return PL_ERR;
    pl_tokenizer_free(lm->tok);
    lm->tok = tok;
    return PL_OK;
}

long pl_lm_size(const pl_lm *lm, int what)
{
    const pl_model_info *i = pl_model_get_info(lm->model);
    switch (what) {
    case PL_SIZE_LAYERS: return i->n_layer;
    case PL_SIZE_D_MODEL: return i->d_model;
    case PL_SIZE_VOCAB: return i->n_vocab;
    case PL_SIZE_CTX: return i->n_ctx;
    case PL_SIZE_HEADS: return i->n_head;
    case PL_SIZE_KV_HEADS: return i->n_kv_head;
    case PL_SIZE_HEAD_DIM: return i->head_dim;
    case PL_SIZE_D_MLP: return i->d_mlp;
    case PL_SIZE_LAYERNORM: return i->norm == PL_NORM_LAYERNORM;
    case PL_SIZE_SYNTHETIC: return i->synthetic;
    default: return -1;
    }
}

const char *pl_lm_family(const pl_lm *lm) { return pl_model_get_info(lm->model)->family; }

const char *pl_lm_format(const pl_lm *lm) { return pl_model_get_info(lm->model)->format; }

int pl_lm_hook(const pl_lm *lm, const char *hook, int *resid_index)
{
    if (!hook)
        return pl_fail("no hook name");
    return pl_hook_parse(lm->model, hook, resid_index);
}

int pl_tokenize(pl_lm *lm, const char *text, size_t len, int bos, int **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    const pl_model_info *info = pl_model_get_info(lm->model);
    if (!lm->tok && pl_tokenizer_open(&lm->tok, pl_model_path(lm->model), NULL, info->n_vocab) != PL_OK)
        return PL_ERR;
    int *body;
    size_t count;
    if (pl_encode(lm->tok, text, len, &body, &count) != PL_OK)
        return PL_ERR;
    int first = bos ? pl_tokenizer_bos_id(lm->tok) : -1;
    if (bos && first < 0) {
        free(body);
        return pl_fail("bos: the tokenizer (%s) has no BOS token", pl_tokenizer_kind(lm->tok));
    }
    int *out = pl_malloc(sizeof(int) * (count + 1), "token ids");
    if (!out) {
        free(body);
        return PL_ERR;
    }
    if (bos)
        out[0] = first;
    if (count)
        memcpy(out + (bos ? 1 : 0), body, sizeof(int) * count);
    free(body);
    *ids = out;
    *n = count + (bos ? 1 : 0);
    return PL_OK;
}

/* ------------------------------------------------------------ cached forwards */

static int run_into(pl_lm *lm, const int *ids, int T, const char *hook, int pos, const float *x, pl_cache **cache)
{
    *cache = NULL;
    pl_cache *c = pl_calloc(1, sizeof *c, "run cache");
    if (!c)
        return PL_ERR;
    c->lm = lm;
    int index, p, rc;
    if (!hook)
        rc = pl_forward(lm->model, ids, T, &c->run);
    else if (!x)
        rc = pl_fail("run_patched: no patch vector");
    else if ((rc = pl_hook_parse(lm->model, hook, &index)) == PL_OK &&
             (rc = pl_api_position(pos, T, "position", &p)) == PL_OK)
        rc = pl_forward_patched(lm->model, ids, T, index, p, x, &c->run);
    if (rc != PL_OK) {
        free(c);
        return PL_ERR;
    }
    *cache = c;
    return PL_OK;
}

int pl_lm_run(pl_lm *lm, const int *ids, int T, pl_cache **cache) { return run_into(lm, ids, T, NULL, 0, NULL, cache); }

int pl_lm_run_patched(pl_lm *lm, const int *ids, int T, const char *hook, int pos, const float *x, pl_cache **cache)
{
    if (!hook)
        return pl_fail("run_patched: no hook name");
    return run_into(lm, ids, T, hook, pos, x, cache);
}

void pl_cache_free(pl_cache *cache)
{
    if (!cache)
        return;
    pl_run_free(&cache->run);
    free(cache);
}

int pl_cache_length(const pl_cache *cache) { return cache->run.T; }

int pl_cache_resid(const pl_cache *cache, const char *hook, float *resid)
{
    int index;
    if (pl_lm_hook(cache->lm, hook, &index) != PL_OK)
        return PL_ERR;
    const pl_run *r = &cache->run;
    memcpy(resid, r->resid + (size_t)index * r->T * r->C, sizeof(float) * (size_t)r->T * r->C);
    return PL_OK;
}

/* Every position's logits through the fast path's unembedding: the last position's final residual
 * replaced by each position's (nothing of a block runs at resid index L, so each row is the final norm
 * and unembedding of that residual). The model layer has no other public way to unembed a row. */
int pl_cache_logits(const pl_cache *cache, float *logits)
{
    const pl_run *r = &cache->run;
    int T = r->T, L = r->L;
    const float *final = r->resid + (size_t)L * T * r->C;
    const pl_run *clean = r;
    return pl_patch_eval_groups(cache->lm->model, &clean, &T, 1, L, T - 1, final, logits, 0, NULL);
}

int pl_cache_patch_eval(const pl_cache *cache, const char *hook, int pos, const float *X, int M, float *logits,
                        const char *read_hook, float *read)
{
    int index, read_index = 0, p;
    const pl_run *clean = &cache->run;
    if (M < 1)
        return pl_fail("patch_eval: %d rows", M);
    if (pl_lm_hook(cache->lm, hook, &index) != PL_OK || pl_api_position(pos, clean->T, "position", &p) != PL_OK)
        return PL_ERR;
    if (read && (!read_hook || pl_lm_hook(cache->lm, read_hook, &read_index) != PL_OK))
        return read_hook ? PL_ERR : pl_fail("patch_eval: READ without a read hook");
    return pl_patch_eval_groups(cache->lm->model, &clean, &M, 1, index, p, X, logits, read_index, read);
}
