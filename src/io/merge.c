/* plateau merge: stack per-hook result files along a new leading `hook` dimension.
 *
 * The inputs are the NetCDF files of one sweep run once per hook (a Slurm array). They may differ
 * in exactly one config key, the swept key; everything else must match, or the merged file would
 * silently mix experiments. The rules:
 *  - every input is a plateau result: global attributes `hook` and `config`, no `hook` dimension yet;
 *  - the `config` attributes (resolved INI text) agree in every key except one, the swept key, and
 *    except the keys that say where and how a run happened rather than what it computed (output
 *    path, checkpoint path and period, worker timeout, model path; the model itself is compared
 *    through `model_sha256`);
 *  - the `hook` attributes are all different (they become the coordinate);
 *  - dimensions (names, lengths), variables (names, types, dimensions) and coordinate values match.
 * Coordinates are written once. Every other variable gets the `hook` dimension in front, except the
 * provenance variables tokens and partner, which are written once when they are the same in every
 * input (they are, when the prompts are). The per-run attributes n_ranks and evals_per_second become
 * variables over `hook`; the other global attributes come from the first input, plus `swept_key`,
 * `merged_from` and a new `created`.
 *
 * The output is written under a temporary name in the output's directory and renamed on success, so
 * a failed merge never leaves a half file and never touches an existing OUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <netcdf.h>

#include "plateau/error.h"
#include "plateau/merge.h"

/* ------------------------------------------------------------------ resolved config text */

/* The `config` attribute is INI text written by plateau itself ("[section]" lines and
 * "key = value" lines). It is parsed here line by line rather than with libinih, whose packaged
 * build splits lines longer than 200 characters (long prompt paths or direction lists). */
typedef struct {
    char *section, *key, *value;
} config_entry;

typedef struct {
    config_entry *entries;
    int n, cap;
} config_map;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static char *dup_text(const char *s, const char *what)
{
    char *d = pl_malloc(strlen(s) + 1, what);
    if (d)
        strcpy(d, s);
    return d;
}

static void config_map_free(config_map *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->entries[i].section);
        free(m->entries[i].key);
        free(m->entries[i].value);
    }
    free(m->entries);
    memset(m, 0, sizeof *m);
}

static const char *config_get(const config_map *m, const char *section, const char *key)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->entries[i].section, section) && !strcmp(m->entries[i].key, key))
            return m->entries[i].value;
    return NULL;
}

static int config_parse(const char *path, const char *text, config_map *m)
{
    char *copy = dup_text(text, "config text");
    if (!copy)
        return PL_ERR;
    char section[256] = "";
    int line_no = 0, rc = PL_OK;
    for (char *line = copy, *next; line && rc == PL_OK; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        char *s = trim(line);
        if (!*s || *s == ';' || *s == '#')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || (size_t)(close - s - 1) >= sizeof section) {
                rc = pl_fail("%s: attribute 'config' line %d: bad section header '%s'", path, line_no, s);
                break;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = pl_fail("%s: attribute 'config' line %d: expected 'key = value', got '%s'", path, line_no, s);
            break;
        }
        *eq = '\0';
        if (m->n == m->cap) {
            int cap = m->cap ? 2 * m->cap : 32;
            config_entry *grown = realloc(m->entries, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = pl_fail("out of memory (config entries)");
                break;
            }
            m->entries = grown;
            m->cap = cap;
        }
        config_entry *e = &m->entries[m->n];
        e->section = dup_text(section, "config section");
        e->key = dup_text(trim(s), "config key");
        e->value = dup_text(trim(eq + 1), "config value");
        m->n++;
        if (!e->section || !e->key || !e->value)
            rc = PL_ERR;
    }
    free(copy);
    return rc;
}

/* Keys that say where or how a run happened, not what it computed: they may differ freely. */
static int config_key_ignored(const char *section, const char *key)
{
    static const char *const ignored[][2] = {
        {"model", "path"},   {"output", "path"}, {"run", "checkpoint"}, {"run", "checkpoint_every"},
        {"run", "worker_timeout"},
    };
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (!strcmp(section, ignored[i][0]) && !strcmp(key, ignored[i][1]))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ inputs */

typedef struct {
    const char *path;
    int ncid;
    char *hook;
    char *config_text;
    char *model_sha256; /* NULL if absent */
    config_map config;
} merge_input;

static int nc_fail(int status, const char *path, const char *what)
{
    return pl_fail("%s: %s: %s", path, what, nc_strerror(status));
}

/* A text global attribute (NC_CHAR or NC_STRING) as a malloc'ed string; *OUT = NULL if absent. */
static int read_text_attribute(int ncid, const char *path, const char *name, char **out)
{
    *out = NULL;
    nc_type type;
    size_t len;
    int st = nc_inq_att(ncid, NC_GLOBAL, name, &type, &len);
    if (st == NC_ENOTATT)
        return PL_OK;
    if (st != NC_NOERR)
        return nc_fail(st, path, name);
    if (type == NC_CHAR) {
        char *s = pl_malloc(len + 1, "attribute text");
        if (!s)
            return PL_ERR;
        if ((st = nc_get_att_text(ncid, NC_GLOBAL, name, s)) != NC_NOERR) {
            free(s);
            return nc_fail(st, path, name);
        }
        s[len] = '\0';
        *out = s;
        return PL_OK;
    }
    if (type == NC_STRING && len == 1) {
        char *v[1] = {NULL};
        if ((st = nc_get_att_string(ncid, NC_GLOBAL, name, v)) != NC_NOERR)
            return nc_fail(st, path, name);
        *out = dup_text(v[0] ? v[0] : "", "attribute text");
        nc_free_string(1, v);
        return *out ? PL_OK : PL_ERR;
    }
    return pl_fail("%s: global attribute '%s' is not text", path, name);
}

static int input_open(merge_input *in, const char *path)
{
    memset(in, 0, sizeof *in);
    in->path = path;
    in->ncid = -1;
    int st = nc_open(path, NC_NOWRITE, &in->ncid);
    if (st != NC_NOERR) {
        in->ncid = -1;
        return pl_fail("%s: cannot open as NetCDF: %s", path, nc_strerror(st));
    }
    int dimid;
    if (nc_inq_dimid(in->ncid, "hook", &dimid) == NC_NOERR)
        return pl_fail("%s: already has a 'hook' dimension (a merged file): merge the per-hook files instead", path);
    if (read_text_attribute(in->ncid, path, "hook", &in->hook) != PL_OK ||
        read_text_attribute(in->ncid, path, "config", &in->config_text) != PL_OK ||
        read_text_attribute(in->ncid, path, "model_sha256", &in->model_sha256) != PL_OK)
        return PL_ERR;
    if (!in->hook)
        return pl_fail("%s: not a plateau result: global attribute 'hook' is missing", path);
    if (!in->config_text)
        return pl_fail("%s: not a plateau result: global attribute 'config' is missing", path);
    return config_parse(path, in->config_text, &in->config);
}

static void input_close(merge_input *in)
{
    if (in->ncid >= 0)
        nc_close(in->ncid);
    free(in->hook);
    free(in->config_text);
    free(in->model_sha256);
    config_map_free(&in->config);
}

/* ------------------------------------------------------------------ consistency checks */

/* Does KEY of SECTION have the same value (or absence) in every input? */
static int key_agrees(const merge_input *ins, int n_in, const char *section, const char *key, int *first_diff)
{
    const char *v0 = config_get(&ins[0].config, section, key);
    for (int i = 1; i < n_in; i++) {
        const char *v = config_get(&ins[i].config, section, key);
        if ((v0 == NULL) != (v == NULL) || (v0 && strcmp(v0, v))) {
            *first_diff = i;
            return 0;
        }
    }
    return 1;
}

static char swept_key_text[512];

/* Find the one key the inputs differ in (ignoring the run-only keys) and fail if there are more. */
static int check_configs(const merge_input *ins, int n_in)
{
    swept_key_text[0] = '\0';
    /* Differing keys, each with the first input that disagrees with input 0. Every key of the
     * union over inputs is examined once: a key is looked at in the first input that has it. */
    enum { MAX_DIFF = 8 };
    const config_entry *diff_key[MAX_DIFF];
    int diff_file[MAX_DIFF], n_diff = 0;
    for (int f = 0; f < n_in && n_diff < MAX_DIFF; f++) {
        for (int k = 0; k < ins[f].config.n && n_diff < MAX_DIFF; k++) {
            const config_entry *e = &ins[f].config.entries[k];
            int seen = 0;
            for (int g = 0; g < f && !seen; g++)
                seen = config_get(&ins[g].config, e->section, e->key) != NULL;
            int diff;
            if (seen || config_key_ignored(e->section, e->key) || key_agrees(ins, n_in, e->section, e->key, &diff))
                continue;
            diff_key[n_diff] = e;
            diff_file[n_diff++] = diff;
        }
    }
    /* The swept key is [perturb] hook when it is among them (the array scripts sweep it), else the
     * first; any other differing key is an error. */
    int swept = -1;
    for (int d = 0; d < n_diff; d++)
        if (!strcmp(diff_key[d]->section, "perturb") && !strcmp(diff_key[d]->key, "hook"))
            swept = d;
    if (swept < 0 && n_diff > 0)
        swept = 0;
    for (int d = 0; d < n_diff; d++) {
        if (d == swept)
            continue;
        const config_entry *e = diff_key[d];
        const char *a = config_get(&ins[0].config, e->section, e->key);
        const char *b = config_get(&ins[diff_file[d]].config, e->section, e->key);
        return pl_fail("%s: config differs from %s in [%s] %s ('%s' in %s, '%s' in %s); "
                       "only the swept key ([%s] %s) may differ between the files of one merge",
                       ins[diff_file[d]].path, ins[0].path, e->section, e->key, a ? a : "(absent)", ins[0].path,
                       b ? b : "(absent)", ins[diff_file[d]].path, diff_key[swept]->section, diff_key[swept]->key);
    }
    if (swept >= 0)
        snprintf(swept_key_text, sizeof swept_key_text, "%s.%s", diff_key[swept]->section, diff_key[swept]->key);

    for (int i = 1; i < n_in; i++) {
        const char *a = ins[0].model_sha256, *b = ins[i].model_sha256;
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
            return pl_fail("%s: model_sha256 differs from %s ('%s' vs '%s'): the files come from different models",
                           ins[i].path, ins[0].path, b ? b : "(absent)", a ? a : "(absent)");
    }
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(ins[i].hook, ins[j].hook))
                return pl_fail("%s and %s both have hook '%s'%s%s%s: merge stacks one file per hook", ins[j].path,
                               ins[i].path, ins[i].hook, swept >= 0 ? " (they differ only in " : "",
                               swept >= 0 ? swept_key_text : "", swept >= 0 ? ")" : "");
    return PL_OK;
}

typedef struct {
    char name[NC_MAX_NAME + 1];
    nc_type type;
    int ndims;
    int dimids[NC_MAX_VAR_DIMS];
    size_t count; /* elements */
} var_info;

static int var_inquire(int ncid, int varid, const char *path, var_info *v)
{
    int st = nc_inq_var(ncid, varid, v->name, &v->type, &v->ndims, v->dimids, NULL);
    if (st != NC_NOERR)
        return nc_fail(st, path, "variable");
    if (v->type > NC_STRING)
        return pl_fail("%s: variable '%s' has a user-defined type, which plateau never writes", path, v->name);
    v->count = 1;
    for (int d = 0; d < v->ndims; d++) {
        size_t len;
        if ((st = nc_inq_dimlen(ncid, v->dimids[d], &len)) != NC_NOERR)
            return nc_fail(st, path, v->name);
        v->count *= len;
    }
    return PL_OK;
}

static void dims_text(int ncid, const var_info *v, char *out, size_t size)
{
    out[0] = '\0';
    for (int d = 0; d < v->ndims; d++) {
        char name[NC_MAX_NAME + 1] = "?";
        nc_inq_dimname(ncid, v->dimids[d], name);
        snprintf(out + strlen(out), size - strlen(out), "%s%s", d ? ", " : "", name);
    }
}

/* Dimensions and variables of every input against the first. */
static int check_structure(const merge_input *ins, int n_in)
{
    int nd0, nv0;
    nc_inq(ins[0].ncid, &nd0, &nv0, NULL, NULL);
    for (int i = 1; i < n_in; i++) {
        int nd, nv;
        nc_inq(ins[i].ncid, &nd, &nv, NULL, NULL);
        /* Every dimension of the first, same length; then no extra ones. */
        int dimids0[NC_MAX_DIMS];
        nc_inq_dimids(ins[0].ncid, &nd0, dimids0, 0);
        for (int d = 0; d < nd0; d++) {
            char name[NC_MAX_NAME + 1];
            size_t len0, len;
            int id;
            nc_inq_dim(ins[0].ncid, dimids0[d], name, &len0);
            if (nc_inq_dimid(ins[i].ncid, name, &id) != NC_NOERR)
                return pl_fail("%s: dimension '%s' is missing (it is in %s)", ins[i].path, name, ins[0].path);
            nc_inq_dimlen(ins[i].ncid, id, &len);
            if (len != len0)
                return pl_fail("%s: dimension '%s' has length %zu, but %zu in %s", ins[i].path, name, len, len0,
                               ins[0].path);
        }
        if (nd != nd0)
            return pl_fail("%s: has %d dimensions, %s has %d", ins[i].path, nd, ins[0].path, nd0);
        for (int v = 0; v < nv0; v++) {
            var_info a, b;
            int id;
            if (var_inquire(ins[0].ncid, v, ins[0].path, &a) != PL_OK)
                return PL_ERR;
            if (nc_inq_varid(ins[i].ncid, a.name, &id) != NC_NOERR)
                return pl_fail("%s: variable '%s' is missing (it is in %s)", ins[i].path, a.name, ins[0].path);
            if (var_inquire(ins[i].ncid, id, ins[i].path, &b) != PL_OK)
                return PL_ERR;
            char da[512], db[512];
            dims_text(ins[0].ncid, &a, da, sizeof da);
            dims_text(ins[i].ncid, &b, db, sizeof db);
            if (a.type != b.type || strcmp(da, db))
                return pl_fail("%s: variable '%s' is (%s) of type %d, but (%s) of type %d in %s", ins[i].path, a.name,
                               db, b.type, da, a.type, ins[0].path);
        }
        if (nv != nv0) {
            for (int v = 0; v < nv; v++) {
                char name[NC_MAX_NAME + 1];
                int id;
                nc_inq_varname(ins[i].ncid, v, name);
                if (nc_inq_varid(ins[0].ncid, name, &id) != NC_NOERR)
                    return pl_fail("%s: has variable '%s', which %s lacks", ins[i].path, name, ins[0].path);
            }
        }
    }
    return PL_OK;
}

/* ------------------------------------------------------------------ variable data */

typedef struct {
    void *data;
    size_t count;
    nc_type type;
} var_data;

static void var_data_free(var_data *d)
{
    if (d->data && d->type == NC_STRING)
        nc_free_string(d->count, d->data);
    free(d->data);
    d->data = NULL;
}

static int var_data_read(int ncid, const char *path, const char *name, var_data *d)
{
    memset(d, 0, sizeof *d);
    int varid, st;
    var_info v;
    if ((st = nc_inq_varid(ncid, name, &varid)) != NC_NOERR)
        return nc_fail(st, path, name);
    if (var_inquire(ncid, varid, path, &v) != PL_OK)
        return PL_ERR;
    size_t elem;
    if ((st = nc_inq_type(ncid, v.type, NULL, &elem)) != NC_NOERR)
        return nc_fail(st, path, name);
    d->count = v.count;
    d->type = v.type;
    d->data = pl_calloc(v.count ? v.count : 1, elem, name);
    if (!d->data)
        return PL_ERR;
    if (v.count && (st = nc_get_var(ncid, varid, d->data)) != NC_NOERR) {
        free(d->data);
        d->data = NULL;
        return pl_fail("%s: cannot read variable '%s': %s", path, name, nc_strerror(st));
    }
    return PL_OK;
}

static int var_data_equal(const var_data *a, const var_data *b, int ncid)
{
    if (a->count != b->count || a->type != b->type)
        return 0;
    if (a->type == NC_STRING) {
        char **sa = a->data, **sb = b->data;
        for (size_t i = 0; i < a->count; i++)
            if (strcmp(sa[i] ? sa[i] : "", sb[i] ? sb[i] : ""))
                return 0;
        return 1;
    }
    size_t elem;
    nc_inq_type(ncid, a->type, NULL, &elem);
    return !memcmp(a->data, b->data, a->count * elem);
}

/* A coordinate variable: one dimension of its own name. */
static int is_coordinate(int ncid, const var_info *v)
{
    char dim[NC_MAX_NAME + 1];
    return v->ndims == 1 && nc_inq_dimname(ncid, v->dimids[0], dim) == NC_NOERR && !strcmp(dim, v->name);
}

static int is_provenance(const char *name)
{
    return !strcmp(name, "tokens") || !strcmp(name, "partner");
}

/* Is variable NAME the same in every input? */
static int same_in_all(const merge_input *ins, int n_in, const char *name, int *equal, int *first_diff)
{
    var_data first;
    *equal = 1;
    if (var_data_read(ins[0].ncid, ins[0].path, name, &first) != PL_OK)
        return PL_ERR;
    for (int i = 1; i < n_in && *equal; i++) {
        var_data other;
        if (var_data_read(ins[i].ncid, ins[i].path, name, &other) != PL_OK) {
            var_data_free(&first);
            return PL_ERR;
        }
        if (!var_data_equal(&first, &other, ins[0].ncid)) {
            *equal = 0;
            *first_diff = i;
        }
        var_data_free(&other);
    }
    var_data_free(&first);
    return PL_OK;
}

/* ------------------------------------------------------------------ output */

/* Global attributes that describe one run and become variables over `hook` instead. */
static int per_run_attribute(const char *name)
{
    return !strcmp(name, "n_ranks") || !strcmp(name, "evals_per_second");
}

static int copy_var_attributes(int in, int in_varid, int out, int out_varid, const char *path, const char *var)
{
    int natts, st;
    if ((st = nc_inq_varnatts(in, in_varid, &natts)) != NC_NOERR)
        return nc_fail(st, path, var);
    for (int a = 0; a < natts; a++) {
        char name[NC_MAX_NAME + 1];
        if ((st = nc_inq_attname(in, in_varid, a, name)) != NC_NOERR ||
            (st = nc_copy_att(in, in_varid, name, out, out_varid)) != NC_NOERR)
            return pl_fail("%s: copying attribute %s of '%s': %s", path, name, var, nc_strerror(st));
    }
    return PL_OK;
}

typedef struct {
    int in_varid, out_varid;
    int stacked; /* gets the leading hook dimension */
    var_info info;
} var_plan;

static int write_output(int out, const char *tmp, const merge_input *ins, int n_in, const char *swept_key)
{
    const merge_input *first = &ins[0];
    int in = first->ncid, st;
    int ndims, nvars, ngatts;
    nc_inq(in, &ndims, &nvars, &ngatts, NULL);

    /* Dimensions: hook first, then the inputs' in their order. */
    int hook_dim, dim_map[NC_MAX_DIMS];
    if ((st = nc_def_dim(out, "hook", (size_t)n_in, &hook_dim)) != NC_NOERR)
        return nc_fail(st, tmp, "hook dimension");
    int in_dimids[NC_MAX_DIMS];
    nc_inq_dimids(in, &ndims, in_dimids, 0);
    for (int d = 0; d < ndims; d++) {
        if (in_dimids[d] < 0 || in_dimids[d] >= NC_MAX_DIMS)
            return pl_fail("%s: dimension id %d out of range", first->path, in_dimids[d]);
        char name[NC_MAX_NAME + 1];
        size_t len;
        nc_inq_dim(in, in_dimids[d], name, &len);
        if ((st = nc_def_dim(out, name, len, &dim_map[in_dimids[d]])) != NC_NOERR)
            return nc_fail(st, tmp, name);
    }

    int hook_var;
    if ((st = nc_def_var(out, "hook", NC_STRING, 1, &hook_dim, &hook_var)) != NC_NOERR)
        return nc_fail(st, tmp, "hook variable");
    const char *hook_long = "hook where the perturbation is applied (one per merged file)";
    nc_put_att_text(out, hook_var, "long_name", strlen(hook_long), hook_long);

    var_plan *plan = pl_calloc((size_t)(nvars ? nvars : 1), sizeof *plan, "merge plan");
    if (!plan)
        return PL_ERR;
    int rc = PL_OK;
    for (int v = 0; v < nvars && rc == PL_OK; v++) {
        var_plan *p = &plan[v];
        p->in_varid = v;
        if ((rc = var_inquire(in, v, first->path, &p->info)) != PL_OK)
            break;
        if (is_coordinate(in, &p->info)) {
            int equal, diff = 0;
            if ((rc = same_in_all(ins, n_in, p->info.name, &equal, &diff)) != PL_OK)
                break;
            if (!equal) {
                rc = pl_fail("%s: coordinate '%s' differs from %s: the files do not share one grid", ins[diff].path,
                             p->info.name, first->path);
                break;
            }
            p->stacked = 0;
        } else if (is_provenance(p->info.name)) {
            int equal, diff;
            if ((rc = same_in_all(ins, n_in, p->info.name, &equal, &diff)) != PL_OK)
                break;
            p->stacked = !equal;
        } else {
            p->stacked = 1;
        }
        int dimids[NC_MAX_VAR_DIMS + 1], nd = 0;
        if (p->stacked)
            dimids[nd++] = hook_dim;
        for (int d = 0; d < p->info.ndims; d++)
            dimids[nd++] = dim_map[p->info.dimids[d]];
        if ((st = nc_def_var(out, p->info.name, p->info.type, nd, dimids, &p->out_varid)) != NC_NOERR) {
            rc = nc_fail(st, tmp, p->info.name);
            break;
        }
        /* Keep the writer's compression; chunks of a stacked variable cover one hook. */
        int shuffle, deflate, level, storage;
        size_t chunks[NC_MAX_VAR_DIMS + 1];
        if (nc_inq_var_deflate(in, v, &shuffle, &deflate, &level) == NC_NOERR && deflate)
            nc_def_var_deflate(out, p->out_varid, shuffle, deflate, level);
        if (p->info.ndims > 0 && nc_inq_var_chunking(in, v, &storage, chunks + p->stacked) == NC_NOERR &&
            storage == NC_CHUNKED) {
            if (p->stacked)
                chunks[0] = 1;
            nc_def_var_chunking(out, p->out_varid, NC_CHUNKED, chunks);
        }
        rc = copy_var_attributes(in, v, out, p->out_varid, first->path, p->info.name);
    }

    /* Per-run numbers, one per hook. */
    int per_run_var[2] = {-1, -1};
    const char *per_run_name[2] = {"n_ranks", "evals_per_second"};
    const char *per_run_long[2] = {"MPI ranks of the run that produced this hook",
                                   "perturbed evaluations per second of that run"};
    for (int k = 0; k < 2 && rc == PL_OK; k++) {
        int have_all = 1;
        for (int i = 0; i < n_in; i++)
            have_all &= nc_inq_att(ins[i].ncid, NC_GLOBAL, per_run_name[k], NULL, NULL) == NC_NOERR;
        if (!have_all)
            continue;
        nc_type type = k == 0 ? NC_INT : NC_DOUBLE;
        if ((st = nc_def_var(out, per_run_name[k], type, 1, &hook_dim, &per_run_var[k])) != NC_NOERR) {
            rc = nc_fail(st, tmp, per_run_name[k]);
            break;
        }
        nc_put_att_text(out, per_run_var[k], "long_name", strlen(per_run_long[k]), per_run_long[k]);
        if (k == 1)
            nc_put_att_text(out, per_run_var[k], "units", 3, "s-1");
    }

    /* Global attributes: the first input's, minus the per-file ones, plus the merge's own. */
    for (int a = 0; a < ngatts && rc == PL_OK; a++) {
        char name[NC_MAX_NAME + 1];
        nc_inq_attname(in, NC_GLOBAL, a, name);
        if (!strcmp(name, "hook") || !strcmp(name, "created") || !strcmp(name, "swept_key") ||
            !strcmp(name, "merged_from") || per_run_attribute(name))
            continue;
        if ((st = nc_copy_att(in, NC_GLOBAL, name, out, NC_GLOBAL)) != NC_NOERR)
            rc = pl_fail("%s: copying global attribute %s: %s", first->path, name, nc_strerror(st));
    }
    if (rc == PL_OK) {
        char created[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
        size_t from_len = 1;
        for (int i = 0; i < n_in; i++)
            from_len += strlen(ins[i].path) + 1;
        char *from = pl_malloc(from_len, "merged_from");
        if (!from) {
            rc = PL_ERR;
        } else {
            from[0] = '\0';
            for (int i = 0; i < n_in; i++) {
                strcat(from, ins[i].path);
                if (i + 1 < n_in)
                    strcat(from, "\n");
            }
            if ((st = nc_put_att_text(out, NC_GLOBAL, "swept_key", strlen(swept_key), swept_key)) != NC_NOERR ||
                (st = nc_put_att_text(out, NC_GLOBAL, "merged_from", strlen(from), from)) != NC_NOERR ||
                (st = nc_put_att_text(out, NC_GLOBAL, "created", strlen(created), created)) != NC_NOERR)
                rc = nc_fail(st, tmp, "global attributes");
            free(from);
        }
    }
    if (rc == PL_OK && (st = nc_enddef(out)) != NC_NOERR)
        rc = nc_fail(st, tmp, "definitions");

    /* Data. */
    if (rc == PL_OK) {
        const char **hooks = pl_malloc((size_t)n_in * sizeof *hooks, "hook names");
        if (!hooks) {
            rc = PL_ERR;
        } else {
            for (int i = 0; i < n_in; i++)
                hooks[i] = ins[i].hook;
            if ((st = nc_put_var_string(out, hook_var, hooks)) != NC_NOERR)
                rc = nc_fail(st, tmp, "hook");
            free(hooks);
        }
    }
    for (int v = 0; v < nvars && rc == PL_OK; v++) {
        var_plan *p = &plan[v];
        int n_src = p->stacked ? n_in : 1;
        for (int i = 0; i < n_src && rc == PL_OK; i++) {
            var_data d;
            if ((rc = var_data_read(ins[i].ncid, ins[i].path, p->info.name, &d)) != PL_OK)
                break;
            size_t start[NC_MAX_VAR_DIMS + 1] = {0}, count[NC_MAX_VAR_DIMS + 1];
            int nd = 0;
            if (p->stacked) {
                start[nd] = (size_t)i;
                count[nd++] = 1;
            }
            for (int k = 0; k < p->info.ndims; k++)
                nc_inq_dimlen(in, p->info.dimids[k], &count[nd++]);
            if (d.count && (st = nc_put_vara(out, p->out_varid, start, count, d.data)) != NC_NOERR)
                rc = pl_fail("%s: writing '%s' from %s: %s", tmp, p->info.name, ins[i].path, nc_strerror(st));
            var_data_free(&d);
        }
    }
    for (int k = 0; k < 2 && rc == PL_OK; k++) {
        if (per_run_var[k] < 0)
            continue;
        for (int i = 0; i < n_in && rc == PL_OK; i++) {
            size_t at = (size_t)i;
            double value;
            if ((st = nc_get_att_double(ins[i].ncid, NC_GLOBAL, per_run_name[k], &value)) != NC_NOERR)
                rc = pl_fail("%s: global attribute %s: %s", ins[i].path, per_run_name[k], nc_strerror(st));
            else if ((st = nc_put_var1_double(out, per_run_var[k], &at, &value)) != NC_NOERR)
                rc = nc_fail(st, tmp, per_run_name[k]);
        }
    }
    free(plan);
    return rc;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Flush the finished temporary file to disk before it takes the output's name. */
static int sync_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pl_fail("%s: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? PL_OK : pl_fail("%s: fsync: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* netCDF reports a missing directory as "Permission denied": say what is really wrong first. */
static int check_output_dir(const char *out_path)
{
    const char *slash = strrchr(out_path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == out_path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - out_path), out_path);
    struct stat st;
    if (stat(dir, &st) != 0)
        return pl_fail("%s: output directory %s: %s", out_path, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return pl_fail("%s: %s is not a directory", out_path, dir);
    if (access(dir, W_OK) != 0)
        return pl_fail("%s: output directory %s is not writable: %s", out_path, dir, strerror(errno));
    return PL_OK;
}

int pl_merge(const char *out_path, char *const *in_paths, int n_in, const char **swept_key)
{
    if (n_in < 1)
        return pl_fail("merge: no input files");
    for (int i = 0; i < n_in; i++) {
        if (same_file(out_path, in_paths[i]))
            return pl_fail("%s: the output is also input %d: write the merge to a new file", out_path, i + 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(in_paths[i], in_paths[j]) || same_file(in_paths[i], in_paths[j]))
                return pl_fail("%s: given twice (inputs %d and %d)", in_paths[i], j + 1, i + 1);
    }

    merge_input *ins = pl_calloc((size_t)n_in, sizeof *ins, "merge inputs");
    if (!ins)
        return PL_ERR;
    for (int i = 0; i < n_in; i++)
        ins[i].ncid = -1;
    int rc = PL_OK;
    for (int i = 0; i < n_in && rc == PL_OK; i++)
        rc = input_open(&ins[i], in_paths[i]);
    if (rc == PL_OK)
        rc = check_configs(ins, n_in);
    if (rc == PL_OK)
        rc = check_structure(ins, n_in);

    char *tmp = NULL;
    if (rc == PL_OK)
        rc = check_output_dir(out_path);
    if (rc == PL_OK) {
        size_t len = strlen(out_path) + 32;
        tmp = pl_malloc(len, "temporary path");
        if (!tmp)
            rc = PL_ERR;
        else
            snprintf(tmp, len, "%s.tmp%ld", out_path, (long)getpid());
    }
    if (rc == PL_OK) {
        int out, st = nc_create(tmp, NC_NETCDF4 | NC_CLOBBER, &out);
        if (st != NC_NOERR) {
            rc = pl_fail("%s: cannot create the output (temporary %s): %s", out_path, tmp, nc_strerror(st));
        } else {
            rc = write_output(out, tmp, ins, n_in, swept_key_text);
            st = nc_close(out);
            if (rc == PL_OK && st != NC_NOERR)
                rc = nc_fail(st, tmp, "closing");
            if (rc == PL_OK)
                rc = sync_file(tmp);
            if (rc == PL_OK && rename(tmp, out_path) != 0)
                rc = pl_fail("%s: cannot rename %s to it: %s", out_path, tmp, strerror(errno));
            if (rc != PL_OK)
                unlink(tmp);
        }
    }
    free(tmp);
    for (int i = 0; i < n_in; i++)
        input_close(&ins[i]);
    free(ins);
    if (rc == PL_OK && swept_key)
        *swept_key = swept_key_text;
    return rc;
}
