/* Hugging Face model dirs (hf_dir.h): config.json, and the safetensors weights, single-file or
 * sharded, matched against a family's tensor table. Which family reads a dir is the registry's
 * business (registry.c). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_dir.h"
#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/safetensors.h"

/* config.json and the shard index are small; a bound keeps a hostile file from exhausting memory. */
#define MAX_CONFIG_BYTES ((size_t)16 << 20)
#define MAX_INDEX_BYTES ((size_t)64 << 20)

char *pl_hf_path(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = pl_malloc(n, "path");
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* SHA256, when not NULL, gets the sha256 of the bytes parsed. */
static int read_json(const char *path, size_t max_bytes, json_t **root, char sha256[65])
{
    char *text;
    size_t len;
    if (pl_read_file(path, max_bytes, &text, &len) != PL_OK)
        return PL_ERR;
    if (sha256 && pl_sha256_hex(text, len, sha256) != PL_OK) {
        free(text);
        return PL_ERR;
    }
    json_error_t jerr;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!*root)
        return pl_fail("%s: not valid JSON: %s (line %d, column %d)", path, jerr.text, jerr.line, jerr.column);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return pl_fail("%s: not a JSON object", path);
    }
    return PL_OK;
}

int pl_hf_config_read(pl_hf_config *c, const char *path)
{
    c->path = path;
    c->root = NULL;
    c->sha256[0] = '\0';
    return read_json(path, MAX_CONFIG_BYTES, &c->root, c->sha256);
}

void pl_hf_config_free(pl_hf_config *c)
{
    json_decref(c->root);
    c->root = NULL;
}

/* ------------------------------------------------------------ config keys */

static const json_t *get(const pl_hf_config *c, const char *key)
{
    const json_t *v = json_object_get(c->root, key);
    return json_is_null(v) ? NULL : v;
}

int pl_hf_int(const pl_hf_config *c, const char *key, int required, long dflt, long lo, long hi, int *out)
{
    const json_t *v = get(c, key);
    if (!v) {
        if (required)
            return pl_fail("%s: key \"%s\" is missing", c->path, key);
        *out = (int)dflt;
        return PL_OK;
    }
    if (!json_is_integer(v))
        return pl_fail("%s: key \"%s\" is not an integer", c->path, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return pl_fail("%s: key \"%s\" = %" JSON_INTEGER_FORMAT " is outside %ld..%ld", c->path, key, x, lo, hi);
    *out = (int)x;
    return PL_OK;
}

int pl_hf_num(const pl_hf_config *c, const char *key, int required, double dflt, double lo, double hi, double *out)
{
    const json_t *v = get(c, key);
    if (!v) {
        if (required)
            return pl_fail("%s: key \"%s\" is missing", c->path, key);
        *out = dflt;
        return PL_OK;
    }
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || !(x > lo) || !(x < hi))
        return pl_fail("%s: key \"%s\" must be a number in (%g, %g)", c->path, key, lo, hi);
    *out = x;
    return PL_OK;
}

/* A null where transformers reads a flag or a name is None there, not the class's default: a falsy
 * flag (a null tie_word_embeddings leaves Gemma 2's head untied, where its default ties it; for flags
 * whose default is false it happens to agree) or a name that fails to load (activation, model_type).
 * Refused, so no null is read either way. Numbers differ: HF reads None as "computed"
 * (num_key_value_heads, head_dim, n_inner) or "off" (sliding_window, the soft-caps), as each family does. */
static int refuse_null(const pl_hf_config *c, const char *key, const char *want)
{
    if (json_is_null(json_object_get(c->root, key)))
        return pl_fail("%s: key \"%s\" is null: give %s or leave the key out for its default", c->path, key, want);
    return PL_OK;
}

int pl_hf_bool(const pl_hf_config *c, const char *key, int dflt, int *out)
{
    if (refuse_null(c, key, "true or false"))
        return PL_ERR;
    const json_t *v = get(c, key);
    if (!v) {
        *out = dflt;
        return PL_OK;
    }
    if (!json_is_boolean(v))
        return pl_fail("%s: key \"%s\" is not true or false", c->path, key);
    *out = json_is_true(v);
    return PL_OK;
}

int pl_hf_str(const pl_hf_config *c, const char *key, const char *dflt, const char **out)
{
    if (refuse_null(c, key, "a string"))
        return PL_ERR;
    const json_t *v = get(c, key);
    if (!v) {
        *out = dflt;
        return PL_OK;
    }
    if (!json_is_string(v))
        return pl_fail("%s: key \"%s\" is not a string", c->path, key);
    *out = json_string_value(v);
    return PL_OK;
}

int pl_hf_refuse_if_set(const pl_hf_config *c, const char *key, const char *why)
{
    const json_t *v = get(c, key);
    if (v && !json_is_false(v))
        return pl_fail("%s: key \"%s\" is set: not supported (%s)", c->path, key, why);
    return PL_OK;
}

/* ------------------------------------------------------------ wanted tensors */

int pl_hf_want_add(pl_hf_wants *w, const float **dst, int optional, int ndim, int64_t d0, int64_t d1, const char *why,
                   const char *fmt, ...)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        pl_hf_want *grown = realloc(w->items, sizeof *grown * (size_t)cap);
        if (!grown)
            return pl_fail("out of memory (tensor table)");
        w->items = grown;
        w->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pl_hf_want *it = &w->items[w->n];
    it->name = strdup(name);
    if (!it->name)
        return pl_fail("out of memory (tensor table)");
    it->ndim = ndim;
    it->shape[0] = d0;
    it->shape[1] = d1;
    it->dst = dst;
    it->optional = optional;
    it->why = strdup(why);
    if (!it->why) {
        free((char *)it->name);
        return pl_fail("out of memory (tensor table)");
    }
    it->found_in = NULL;
    it->group = 0;
    *dst = NULL;
    w->n++;
    return PL_OK;
}

int pl_hf_want_group(pl_hf_wants *w, int n)
{
    if (n > 1 && n <= w->n)
        w->items[w->n - n].group = n;
    return PL_OK;
}

void pl_hf_wants_free(pl_hf_wants *w)
{
    for (int i = 0; i < w->n; i++) {
        free((char *)w->items[i].name);
        free((char *)w->items[i].why);
    }
    free(w->items);
    memset(w, 0, sizeof *w);
}

void pl_hf_format_shape(char *out, size_t cap, int ndim, const int64_t *shape)
{
    int len = snprintf(out, cap, "[");
    for (int i = 0; i < ndim && (size_t)len < cap; i++)
        len += snprintf(out + len, cap - (size_t)len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if ((size_t)len < cap)
        snprintf(out + len, cap - (size_t)len, "]");
}

/* ------------------------------------------------------------ weight files */

void pl_hf_files_free(pl_hf_files *tf)
{
    for (int i = 0; i < tf->n; i++)
        st_free(&tf->files[i]);
    free(tf->files);
    free(tf->missing_in);
    memset(tf, 0, sizeof *tf);
}

static int add_file(pl_model *m, pl_hf_files *tf, const char *path, const char *what)
{
    st_file *grown = realloc(tf->files, sizeof *grown * (size_t)(tf->n + 1));
    if (!grown)
        return pl_fail("out of memory (weight files)");
    tf->files = grown;
    const void *map;
    size_t size;
    if (pl_model_map_file(m, path, what, &map, &size) != PL_OK)
        return PL_ERR;
    if (st_parse(&tf->files[tf->n], m->files[m->n_files - 1].path, map, size) != PL_OK)
        return PL_ERR;
    tf->n++;
    return PL_OK;
}

static int by_string(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The shards named by model.safetensors.index.json's weight_map, opened in sorted order; every
 * tensor the index names must be in its shard, and every shard tensor in the index. */
static int open_sharded(pl_model *m, pl_hf_files *tf, const char *dir, const char *index_path)
{
    json_t *root;
    if (read_json(index_path, MAX_INDEX_BYTES, &root, NULL) != PL_OK)
        return PL_ERR;
    int rc = PL_ERR;
    const char **shards = NULL;
    size_t n_shards = 0;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        pl_fail("%s: \"weight_map\" is missing or not a non-empty JSON object", index_path);
        goto done;
    }
    shards = pl_calloc(json_object_size(map), sizeof *shards, "shard names");
    if (!shards)
        goto done;
    const char *name;
    json_t *v;
    json_object_foreach(map, name, v) {
        if (!json_is_string(v)) {
            pl_fail("%s: weight_map[\"%.200s\"] is not a file name", index_path, name);
            goto done;
        }
        const char *file = json_string_value(v);
        if (!*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, "..")) {
            pl_fail("%s: weight_map[\"%.200s\"] = \"%.200s\" is not a file name in the model dir", index_path, name,
                    file);
            goto done;
        }
        size_t i = 0;
        while (i < n_shards && strcmp(shards[i], file))
            i++;
        if (i == n_shards)
            shards[n_shards++] = file;
    }
    qsort(shards, n_shards, sizeof *shards, by_string);
    for (size_t i = 0; i < n_shards; i++) {
        char *path = pl_hf_path(dir, shards[i]);
        int ok = path && add_file(m, tf, path, NULL) == PL_OK;
        free(path);
        if (!ok)
            goto done;
    }
    json_object_foreach(map, name, v) {
        size_t i = 0;
        while (strcmp(shards[i], json_string_value(v)))
            i++;
        if (!st_find(&tf->files[i], name)) {
            pl_fail("%s: tensor '%.200s' is mapped to %s, which does not hold it", index_path, name, shards[i]);
            goto done;
        }
    }
    for (int i = 0; i < tf->n; i++)
        for (int t = 0; t < tf->files[i].n_tensors; t++) {
            const char *tname = tf->files[i].tensors[t].name;
            const json_t *where = json_object_get(map, tname);
            if (!where || strcmp(json_string_value(where), shards[i])) {
                pl_fail("%s: tensor '%.200s' is not mapped to this shard by %s", tf->files[i].path, tname,
                        index_path);
                goto done;
            }
        }
    rc = PL_OK;
done:
    free(shards);
    json_decref(root);
    return rc;
}

int pl_hf_open_files(pl_model *m, const char *dir, pl_hf_files *tf)
{
    memset(tf, 0, sizeof *tf);
    int rc = PL_ERR;
    char *single = pl_hf_path(dir, "model.safetensors"), *index = pl_hf_path(dir, "model.safetensors.index.json");
    struct stat sb;
    if (!single || !index)
        goto done;
    if (lstat(single, &sb) == 0) {
        if (add_file(m, tf, single, NULL) != PL_OK)
            goto done;
        tf->missing_in = single, single = NULL;
    } else if (lstat(index, &sb) == 0) {
        if (open_sharded(m, tf, dir, index) != PL_OK)
            goto done;
        tf->missing_in = index, index = NULL;
    } else {
        pl_fail("%s: cannot open: No such file or directory (nor is there a model.safetensors.index.json of a "
                "sharded model)", single);
        goto done;
    }
    rc = PL_OK;
done:
    free(single);
    free(index);
    return rc;
}

/* The want a file tensor NAME stands for: its index, or -1 (names->prefix is removed first). */
static int want_of(const pl_hf_wants *wants, const pl_hf_names *names, const char *name)
{
    size_t plen = names->prefix ? strlen(names->prefix) : 0;
    if (plen && !strncmp(name, names->prefix, plen))
        name += plen;
    for (int slot = 0; slot < wants->n; slot++)
        if (!strcmp(wants->items[slot].name, name))
            return slot;
    return -1;
}

/* Match every tensor of the files against WANTS: found[slot] and its file, or the one-line error.
 * *IGNORED counts the skipped buffers. */
static int match_tensors(const pl_model *m, const pl_hf_files *tf, const pl_hf_wants *wants, const pl_hf_names *names,
                         const st_tensor **found, const char **found_in, int *ignored)
{
    char shape_buf[2][ST_MAX_DIMS * 24 + 4];
    size_t plen = names->prefix ? strlen(names->prefix) : 0;
    for (int f = 0; f < tf->n; f++) {
        const st_file *sf = &tf->files[f];
        for (int i = 0; i < sf->n_tensors; i++) {
            const st_tensor *t = &sf->tensors[i];
            int slot = want_of(wants, names, t->name);
            if (slot < 0) {
                const char *bare = plen && !strncmp(t->name, names->prefix, plen) ? t->name + plen : t->name;
                int u = names->unknown ? names->unknown(m, sf->path, bare) : 0;
                if (u == PL_ERR)
                    return PL_ERR;
                if (u == 1) {
                    (*ignored)++;
                    continue;
                }
                return pl_fail("%s: unexpected tensor '%s' (not a %s tensor of this config.json)", sf->path, t->name,
                               names->family);
            }
            const pl_hf_want *w = &wants->items[slot];
            if (found[slot] && strcmp(found[slot]->name, t->name)) /* with and without the prefix */
                return pl_fail("%s: tensor '%s' appears twice (as '%s' and '%s')", sf->path, w->name, found[slot]->name,
                               t->name);
            if (found[slot])
                return pl_fail("%s: tensor '%s' appears twice (also in %s)", sf->path, t->name, found_in[slot]);
            found[slot] = t;
            found_in[slot] = sf->path;
            if (t->ndim != w->ndim || t->shape[0] != w->shape[0] || (w->ndim == 2 && t->shape[1] != w->shape[1])) {
                pl_hf_format_shape(shape_buf[0], sizeof shape_buf[0], w->ndim, w->shape);
                pl_hf_format_shape(shape_buf[1], sizeof shape_buf[1], t->ndim, t->shape);
                return pl_fail("%s: tensor '%s': expected shape %s from config.json (%s), found %s", sf->path, t->name,
                               shape_buf[0], w->why, shape_buf[1]);
            }
            if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
                return pl_fail("%s: tensor '%s': dtype %s is not supported for weights (F32, F16 or BF16)", sf->path,
                               t->name, st_dtype_name(t->dtype));
        }
    }
    return PL_OK;
}

/* The format's lines of `plateau info`: tensors (weights, tied copies, skipped buffers), dtypes,
 * weight files and their bytes. */
static void describe_files(pl_model *m, const pl_hf_files *tf, const pl_hf_wants *wants, int ignored)
{
    int n_tensors = 0, n_weights = 0, counts[ST_F8_E5M2 + 1] = {0};
    char tied[128] = "", dtypes[256] = "";
    for (int s = 0; s < wants->n; s++) {
        const pl_hf_want *w = &wants->items[s];
        if (w->found_in && w->optional != PL_HF_TIED)
            n_weights++;
        else if (w->found_in) { /* "lm_head.weight" -> ", tied lm_head" */
            size_t len = strlen(tied), n = strlen(w->name);
            n -= n > 7 && !strcmp(w->name + n - 7, ".weight") ? 7 : 0;
            snprintf(tied + len, sizeof tied - len, ", tied %.*s", (int)n, w->name);
        }
    }
    for (int f = 0; f < tf->n; f++)
        for (int i = 0; i < tf->files[f].n_tensors; i++, n_tensors++)
            counts[tf->files[f].tensors[i].dtype]++;
    for (int d = 0; d <= ST_F8_E5M2; d++)
        if (counts[d]) {
            size_t len = strlen(dtypes);
            snprintf(dtypes + len, sizeof dtypes - len, "%s%s x%d", len ? ", " : "", st_dtype_name((st_dtype)d),
                     counts[d]);
        }
    pl_model_describe_add(m, "tensors", "%d (%d weights%s, %d ignored buffers)", n_tensors, n_weights, tied, ignored);
    pl_model_describe_add(m, "dtypes", "%s", dtypes);
    pl_model_describe_add(m, "weight_files", "%d (%s)", tf->n,
                          tf->n == 1 ? "model.safetensors" : "sharded, sha256 over the shards in name order");
    size_t bytes = 0;
    for (int i = 0; i < m->n_files; i++)
        bytes += m->files[i].size;
    pl_model_describe_add(m, "file_bytes", "%zu", bytes);
}

/* The group of wants starting at S (pl_hf_want_group), when all of them are found and untied and the
 * model is not opened unfused: one buffer, each converted after the one before, every *dst set (the
 * caller then skips them). */
static int load_group(pl_model *m, pl_hf_wants *wants, int s, const st_tensor **found, const char **found_in)
{
    int g = wants->items[s].group, fill;
    size_t total = 0;
    if (m->unfused || s + g > wants->n)
        return PL_OK;
    for (int i = s; i < s + g; i++) {
        if (!found[i] || wants->items[i].optional == PL_HF_TIED)
            return PL_OK;
        total += (found[i]->end - found[i]->begin) / st_dtype_size(found[i]->dtype);
    }
    float *out = pl_model_weight_space(m, total, &fill);
    if (!out)
        return PL_ERR;
    int plan = m->arena && !m->arena->base; /* out is a placeholder, never read */
    for (int i = s; i < s + g; i++) {
        const st_tensor *t = found[i];
        size_t n = (t->end - t->begin) / st_dtype_size(t->dtype);
        *wants->items[i].dst = out;
        if (fill) {
            st_to_f32(t->dtype, t->data, n, out);
            if (st_check_finite(found_in[i], t->name, out, n) != PL_OK)
                return PL_ERR;
        }
        out += plan ? 0 : n;
    }
    return PL_OK;
}

int pl_hf_load_tensors(pl_model *m, const char *dir, pl_hf_wants *wants, const pl_hf_names *names)
{
    pl_hf_files tf = {0};
    const st_tensor **found = NULL;
    const char **found_in = NULL;
    int rc = PL_ERR, ignored = 0;
    if (pl_hf_open_files(m, dir, &tf) != PL_OK)
        goto done;
    found = pl_calloc((size_t)(wants->n ? wants->n : 1), sizeof *found, "tensor slots");
    found_in = pl_calloc((size_t)(wants->n ? wants->n : 1), sizeof *found_in, "tensor slots");
    if (!found || !found_in || match_tensors(m, &tf, wants, names, found, found_in, &ignored) != PL_OK)
        goto done;
    for (int s = 0; s < wants->n; s++) {
        pl_hf_want *w = &wants->items[s];
        if (!found[s] && w->optional == PL_HF_REQUIRED) {
            pl_fail("%s: missing tensor '%s' (%s, config.json: %s)", tf.missing_in, w->name, names->family, w->why);
            goto done;
        }
        if (!found[s])
            continue;
        const st_tensor *t = found[s];
        size_t n = (t->end - t->begin) / st_dtype_size(t->dtype);
        w->found_in = found_in[s]; /* m->files' path and map: live as long as m */
        w->raw = t->data, w->dtype = t->dtype, w->numel = n;
        if (w->group > 1 && load_group(m, wants, s, found, found_in) != PL_OK)
            goto done;
        if (w->optional != PL_HF_TIED && !*w->dst &&
            !(*w->dst = pl_model_weight_f32(m, found_in[s], t->name, t->dtype, t->data, n)))
            goto done;
    }
    describe_files(m, &tf, wants, ignored);
    rc = PL_OK;
done:
    free(found);
    free(found_in);
    pl_hf_files_free(&tf);
    return rc;
}

int pl_hf_same_values(const pl_hf_want *a, const pl_hf_want *b)
{
    if (a->numel != b->numel)
        return 0;
    if (a->dtype == b->dtype)
        return !memcmp(a->raw, b->raw, a->numel * st_dtype_size(a->dtype));
    enum { CHUNK = 4096 };
    float fa[CHUNK], fb[CHUNK];
    size_t sa = st_dtype_size(a->dtype), sb = st_dtype_size(b->dtype);
    for (size_t i = 0; i < a->numel; i += CHUNK) {
        size_t n = a->numel - i < CHUNK ? a->numel - i : CHUNK;
        st_to_f32(a->dtype, (const uint8_t *)a->raw + i * sa, n, fa);
        st_to_f32(b->dtype, (const uint8_t *)b->raw + i * sb, n, fb);
        if (memcmp(fa, fb, n * sizeof(float)))
            return 0;
    }
    return 1;
}

const pl_hf_want *pl_hf_want_of(const pl_hf_wants *w, const float *const *dst)
{
    for (int i = 0; i < w->n; i++)
        if (w->items[i].dst == dst)
            return &w->items[i];
    return NULL;
}
