/* Prompts for the sweep.
 *
 * Formats: JSONL (one {"text": ...} object per line), plain text (one document per non-empty line),
 * or a nanoGPT-style .bin of little-endian uint16 token ids (consecutive n_ctx windows are the
 * documents). A prompt is the first n_ctx tokens of a document; shorter documents are skipped and
 * counted. Documents are visited in a seeded random order ([data] seed): the first n_prompts usable
 * ones are the sweep's prompts, the next cov_prompts fit mu and Sigma, so the two sets are disjoint.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/tokenizer.h"
#include "sweep_internal.h"

typedef struct {
    char **text;
    size_t *len;
    long *line;
    long n;
} doc_list;

static void docs_free(doc_list *d)
{
    for (long i = 0; i < d->n; i++)
        free(d->text[i]);
    free(d->text);
    free(d->len);
    free(d->line);
}

static int docs_push(doc_list *d, long *cap, char *text, size_t len, long line)
{
    if (d->n == *cap) {
        long nc = *cap ? *cap * 2 : 1024;
        char **t = realloc(d->text, sizeof(char *) * nc);
        if (t)
            d->text = t;
        size_t *l = realloc(d->len, sizeof(size_t) * nc);
        if (l)
            d->len = l;
        long *ln = realloc(d->line, sizeof(long) * nc);
        if (ln)
            d->line = ln;
        if (!t || !l || !ln) {
            free(text);
            return pl_fail("out of memory (documents)");
        }
        *cap = nc;
    }
    d->text[d->n] = text;
    d->len[d->n] = len;
    d->line[d->n] = line;
    d->n++;
    return PL_OK;
}

/* Open the prompts file: a regular file (a FIFO or device is refused before anything blocks). */
static FILE *open_prompts(const char *path, size_t *size)
{
    int fd;
    if (pl_open_input(path, NULL, &fd, size) != PL_OK)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        pl_fail("%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

static int read_lines(const char *path, int jsonl, doc_list *d)
{
    size_t size;
    FILE *f = open_prompts(path, &size);
    if (!f)
        return PL_ERR;
    if (size > PL_MAX_INPUT_BYTES) {
        fclose(f);
        return pl_fail("%s: %zu bytes is larger than the %zu a prompts file may have", path, size,
                       (size_t)PL_MAX_INPUT_BYTES);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0, dcap = 0;
    int rc = PL_OK;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (jsonl) {
            json_error_t err;
            json_t *obj = json_loadb(line, (size_t)n, 0, &err);
            json_t *text = obj ? json_object_get(obj, "text") : NULL;
            if (!obj || !json_is_string(text)) {
                rc = pl_fail("%s:%ld: expected a JSON object with a \"text\" string%s%s", path, lineno,
                             obj ? "" : ": ", obj ? "" : err.text);
                json_decref(obj);
                break;
            }
            size_t len = json_string_length(text);
            char *copy = pl_malloc(len + 1, "document");
            if (!copy) {
                json_decref(obj);
                rc = PL_ERR;
                break;
            }
            memcpy(copy, json_string_value(text), len + 1);
            json_decref(obj);
            rc = docs_push(d, &dcap, copy, len, lineno);
        } else {
            char *copy = pl_malloc((size_t)n + 1, "document");
            if (!copy) {
                rc = PL_ERR;
                break;
            }
            memcpy(copy, line, (size_t)n + 1);
            rc = docs_push(d, &dcap, copy, (size_t)n, lineno);
        }
        if (rc != PL_OK)
            break;
    }
    if (rc == PL_OK && ferror(f))
        rc = pl_fail("%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

/* Seeded Fisher-Yates permutation of 0..n-1. */
static long *permutation(long n, uint64_t seed)
{
    long *perm = pl_malloc(sizeof(long) * (n ? n : 1), "document order");
    if (!perm)
        return NULL;
    pl_rng r;
    pl_rng_init(&r, seed, PL_RNG_DATA, 0, 0);
    for (long i = 0; i < n; i++)
        perm[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)pl_rng_below(&r, (uint64_t)i + 1);
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm;
}

static int load_bin(pl_sweep_config *cfg, int V, int *tokens, long need)
{
    const char *path = cfg->data_path;
    int T = cfg->n_ctx;
    size_t size;
    FILE *f = open_prompts(path, &size);
    if (!f)
        return PL_ERR;
    long bytes = (long)size;
    if (bytes % 2) {
        fclose(f);
        return pl_fail("%s: %ld bytes is not a whole number of uint16 tokens", path, bytes);
    }
    long n_windows = bytes / 2 / T;
    if (n_windows < need) {
        fclose(f);
        return pl_fail("%s: %ld windows of n_ctx = %d tokens, but n_prompts + cov_prompts = %ld are needed", path,
                       n_windows, T, need);
    }
    long *perm = permutation(n_windows, cfg->data_seed);
    unsigned char *buf = pl_malloc(2 * (size_t)T, "token window");
    int rc = perm && buf ? PL_OK : PL_ERR;
    for (long i = 0; i < need && rc == PL_OK; i++) {
        long w = perm[i];
        if (fseek(f, w * 2 * T, SEEK_SET) || fread(buf, 2, (size_t)T, f) != (size_t)T) {
            rc = pl_fail("%s: read error at window %ld", path, w);
            break;
        }
        for (int t = 0; t < T; t++) {
            int id = buf[2 * t] | buf[2 * t + 1] << 8;
            if (id >= V) {
                rc = pl_fail("%s: token %d at offset %ld is outside the model's vocabulary (%d)", path, id,
                             (w * T + t) * 2, V);
                break;
            }
            tokens[(size_t)i * T + t] = id;
        }
    }
    free(perm);
    free(buf);
    fclose(f);
    return rc;
}

int pl_data_load(pl_sweep_config *cfg, int V, int **tokens_out, int verbose)
{
    int T = cfg->n_ctx;
    long need = (long)cfg->n_prompts + cfg->cov_prompts;
    int *tokens = pl_malloc(sizeof(int) * (size_t)need * T, "prompt tokens");
    if (!tokens)
        return PL_ERR;
    if (cfg->data_format == PL_DATA_BIN) {
        if (load_bin(cfg, V, tokens, need) != PL_OK) {
            free(tokens);
            return PL_ERR;
        }
        *tokens_out = tokens;
        return PL_OK;
    }

    doc_list docs = {0};
    pl_tokenizer *tok = NULL;
    long *perm = NULL;
    int rc = read_lines(cfg->data_path, cfg->data_format == PL_DATA_JSONL, &docs);
    if (rc == PL_OK && pl_tokenizer_load(&tok, cfg->model_path) != PL_OK)
        rc = pl_fail_prefix("%s: tokenizer for [data] prompts", cfg->model_path);
    if (rc == PL_OK && !(perm = permutation(docs.n, cfg->data_seed)))
        rc = PL_ERR;
    long got = 0, skipped = 0, visited = 0;
    /* Visit documents in the seeded order until enough are usable; on a shortfall, keep going to
     * count how many there are in all. */
    for (long i = 0; rc == PL_OK && i < docs.n; i++) {
        long di = perm[i];
        int *ids = NULL;
        size_t n_ids = 0;
        if (pl_encode(tok, docs.text[di], docs.len[di], &ids, &n_ids) != PL_OK) {
            rc = pl_fail_prefix("%s:%ld", cfg->data_path, docs.line[di]);
            break;
        }
        visited++;
        if (n_ids < (size_t)T) {
            skipped++;
        } else {
            if (got < need)
                for (int t = 0; t < T; t++) {
                    if (ids[t] < 0 || ids[t] >= V) {
                        rc = pl_fail("%s:%ld: token %d is outside the model's vocabulary (%d)", cfg->data_path,
                                     docs.line[di], ids[t], V);
                        free(ids);
                        goto out;
                    }
                    tokens[(size_t)got * T + t] = ids[t];
                }
            got++;
        }
        free(ids);
        if (got >= need)
            break;
    }
    if (rc == PL_OK && got < need)
        rc = pl_fail("%s: %ld documents of at least n_ctx = %d tokens (%ld shorter ones skipped), but n_prompts + "
                     "cov_prompts = %d + %d = %ld are needed",
                     cfg->data_path, got, T, skipped, cfg->n_prompts, cfg->cov_prompts, need);
    if (rc == PL_OK && verbose && skipped)
        fprintf(stderr, "plateau: %s: skipped %ld of %ld documents visited (shorter than n_ctx = %d tokens)\n",
                cfg->data_path, skipped, visited, T);
out:
    free(perm);
    if (tok)
        pl_tokenizer_free(tok);
    docs_free(&docs);
    if (rc != PL_OK) {
        free(tokens);
        return PL_ERR;
    }
    *tokens_out = tokens;
    return PL_OK;
}
