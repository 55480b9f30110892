/* plateau merge: stack per-hook result files along a new leading `hook` dimension.
 *
 * The inputs are the NetCDF files of one sweep run once per hook (a Slurm array). They may differ
 * in exactly one config key, the swept key; everything else must match, or the merged file would
 * silently mix experiments. The rules:
 *  - every input is a plateau result: global attributes `hook` and `config`, no `hook` dimension yet;
 *  - the `config` attributes are read by the one config resolver (src/sweep/config.c) and agree in
 *    every key that is part of a run's identity except one, the swept key; the run-only keys (output
 *    path, checkpoint path and period, worker timeout, model path) may differ, the model itself is
 *    compared through `model_sha256`; when the swept key is the hook, [sae] sha256 may follow it (an SAE
 *    per hook). A key one file has and another lacks differs;
 *  - the hooks (the config's [perturb] hook, canonical: blocks.01 is blocks.1) are all different;
 *  - dimensions (names, lengths), variables (names, types, dimensions) and coordinate values match.
 *  - each input's `hook` attribute is the hook of its own config (compared canonically).
 * What happens to each variable and global attribute is the schema's `merge` column (src/io/schema.c):
 * coordinates are written once; every other variable gets the `hook` dimension in front, except the
 * provenance variables (tokens, prompt_text, partner: PL_MERGE_ONCE_IF_SAME), written once when they are
 * the same in every input (they are, when the prompts are: tokens that differ are refused). The per-run
 * numeric attributes (PL_GA_PER_HOOK_NUMBER: n_ranks, evals_per_second, each hook's SAE's numbers) become
 * variables over `hook`, each input's config and provenance text (PL_GA_PER_HOOK_TEXT, PL_GA_CONFIG)
 * string variables hook_<name>, each kept as a global attribute too when all inputs agree on it (unless
 * the schema says never or always); every other global attribute must be equal in all inputs and is
 * written once, plus `swept_key`, `merged_from` and the merge's own `created`, `history` and `source`.
 *
 * HDF5 (1.10, under netCDF) can crash on a corrupt file (found by fuzzing: an invalid free while it
 * walks a damaged link table). So every input is first opened and read in full by a child process
 * (merge is a command of its own, never inside an MPI rank): if that child dies, the input is refused
 * as corrupt; if it lives, reading the same bytes again here does the same and lives too.
 *
 * Inputs are regular files read whole with a size bound and opened from memory; the output is built
 * in memory and written by the one atomic writer (pl_write_file_atomic), so a failed merge never
 * leaves a half file and never touches an existing OUT. Every netCDF call is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netcdf.h>
#include <netcdf_mem.h>

#include "plateau/error.h"
#include "plateau/version.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/merge.h"
#include "nc_memory.h"
#include "plateau/sweep.h"
#include "schema.h"

/* More dimensions or variables than a plateau result can have (it has 7 and about 40). */
#define MAX_DIMS 64
#define MAX_VARS 1024

static int nc_fail(int status, const char *path, const char *what)
{
    return pl_fail("%s: %s: %s", path, what, nc_strerror(status));
}

/* Run a netCDF call; on failure record "PATH: WHAT: <netCDF's message>" and return PL_ERR. */
#define NC_CHECK(call, path, what)                                                                                \
    do {                                                                                                          \
        int nc_status_ = (call);                                                                                  \
        if (nc_status_ != NC_NOERR)                                                                               \
            return nc_fail(nc_status_, path, what);                                                               \
    } while (0)

/* ------------------------------------------------------------------ inputs */

typedef struct {
    char name[NC_MAX_NAME + 1];
    nc_type type;
    int ndims;
    int dimids[NC_MAX_VAR_DIMS];
    size_t count; /* elements */
} var_info;

static int var_inquire(int ncid, int varid, const char *path, var_info *v)
{
    NC_CHECK(nc_inq_varndims(ncid, varid, &v->ndims), path, "variable");
    if (v->ndims > 8)
        return pl_fail("%s: variable %d has %d dimensions, which plateau never writes", path, varid, v->ndims);
    NC_CHECK(nc_inq_var(ncid, varid, v->name, &v->type, &v->ndims, v->dimids, NULL), path, "variable");
    if (v->type < NC_BYTE || v->type > NC_STRING)
        return pl_fail("%s: variable '%s' has a user-defined type, which plateau never writes", path, v->name);
    v->count = 1;
    for (int d = 0; d < v->ndims; d++) {
        size_t len;
        NC_CHECK(nc_inq_dimlen(ncid, v->dimids[d], &len), path, v->name);
        if (len && v->count > ((size_t)1 << 40) / len)
            return pl_fail("%s: variable '%s' is too large for a plateau result", path, v->name);
        v->count *= len;
    }
    return PL_OK;
}


typedef struct {
    const char *path;
    int ncid;
    char *model_sha256; /* NULL if absent */
    char *model_config_sha256; /* NULL if absent (files of plateau before 2026-12-07) */
    char *model_path;   /* the `model_path` attribute (absolute), NULL if absent */
    int have_config;
    pl_sweep_config config;
    char label[4096];   /* stacked along `model`: its config's [model] label, else its model dir's name */
} merge_input;

/* What the inputs are stacked along: `hook` (one model's runs at several hooks, a Slurm array's) or
 * `model` (one hook's runs of several models: a model series, each file a model). pl_merge chooses
 * `model` when two or more inputs share one hook; a series run asks for it (pl_merge_models). */
static int by_model;
static const char *stack_dim(void) { return by_model ? "model" : "hook"; }

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
        const char *text = v[0] ? v[0] : "";
        *out = pl_malloc(strlen(text) + 1, "attribute text");
        if (*out)
            strcpy(*out, text);
        nc_free_string(1, v);
        return *out ? PL_OK : PL_ERR;
    }
    return pl_fail("%s: global attribute '%s' is not text", path, name);
}

/* The child's exit code when netCDF refuses the file cleanly (the parent then meets the same error
 * and reports it); any other end but 0 is a crash (a sanitizer's report exits 1). */
#define PROBE_REFUSED 42

/* Everything merge may read of an input: every dimension, attribute and variable. 0 when all of it
 * reads, PROBE_REFUSED at the first netCDF error. */
static int read_everything(void *bytes, size_t len)
{
    int nc, nd, nv, ng;
    if (nc_open_mem(PL_NC_MEMORY_NAME, NC_NOWRITE, len, bytes, &nc) != NC_NOERR)
        return PROBE_REFUSED;
    if (nc_inq(nc, &nd, &nv, &ng, NULL) != NC_NOERR || nd > MAX_DIMS || nv > MAX_VARS)
        return PROBE_REFUSED;
    for (int v = -1; v < nv; v++) { /* -1: the global attributes */
        int na;
        if (nc_inq_varnatts(nc, v, &na) != NC_NOERR)
            return PROBE_REFUSED;
        for (int a = 0; a < na; a++) {
            char name[NC_MAX_NAME + 1];
            nc_type type;
            size_t n, elem;
            if (nc_inq_attname(nc, v, a, name) != NC_NOERR || nc_inq_att(nc, v, name, &type, &n) != NC_NOERR ||
                nc_inq_type(nc, type, NULL, &elem) != NC_NOERR || n > ((size_t)1 << 30) / (elem ? elem : 1))
                return PROBE_REFUSED;
            void *buf = calloc(n ? n : 1, elem ? elem : 1);
            if (!buf || nc_get_att(nc, v, name, buf) != NC_NOERR)
                return PROBE_REFUSED;
            if (type == NC_STRING)
                nc_free_string(n, buf);
            free(buf);
        }
        if (v < 0)
            continue;
        var_info info;
        size_t elem;
        if (var_inquire(nc, v, "", &info) != PL_OK || nc_inq_type(nc, info.type, NULL, &elem) != NC_NOERR)
            return PROBE_REFUSED;
        void *buf = calloc(info.count ? info.count : 1, elem);
        if (!buf || (info.count && nc_get_var(nc, v, buf) != NC_NOERR))
            return PROBE_REFUSED;
        if (info.type == NC_STRING)
            nc_free_string(info.count, buf);
        free(buf);
    }
    return nc_close(nc) == NC_NOERR ? 0 : PROBE_REFUSED;
}

/* Read all of an input in a child process first: refuse it when the netCDF/HDF5 libraries crash on
 * it, rather than crash here. */
static int probe_in_child(const char *path, void *bytes, size_t len)
{
    fflush(NULL);
    pid_t child = fork();
    if (child < 0)
        return pl_fail("%s: cannot fork to check it: %s", path, strerror(errno));
    if (child == 0) {
        int null = open("/dev/null", O_WRONLY); /* a crash report of the library is not plateau's message */
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        _exit(read_everything(bytes, len));
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return pl_fail("%s: waiting for its check: %s", path, strerror(errno));
    if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != PROBE_REFUSED))
        return pl_fail("%s: the netCDF/HDF5 libraries crash reading it (%s %d): the file is corrupt", path,
                       WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status)
                                                                                     : WEXITSTATUS(status));
    return PL_OK;
}

/* The file's `hook` attribute names the hook of its own config, compared canonically (blocks.01 is
 * blocks.1) by putting it through the one config resolver as that config's [perturb] hook: a file
 * whose attribute and config disagree is not one hook's result, and merge would stack it under the
 * config's hook. (When the canonical hook parser of src/model/forward.c lands, compare through it.) */
static int check_hook_attribute(const merge_input *in, const char *hook, const char *config)
{
    size_t len = strlen(hook) + 16;
    char *set = pl_malloc(len, "hook"), name[4200];
    if (!set)
        return PL_ERR;
    snprintf(set, len, "perturb.hook=%s", hook);
    snprintf(name, sizeof name, "%s (attribute 'config')", in->path);
    pl_sweep_config c;
    memset(&c, 0, sizeof c);
    int rc = pl_sweep_config_parse(&c, name, config, strlen(config), &set, 1, NULL);
    free(set);
    if (rc != PL_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", pl_error());
        return pl_fail("%s: global attribute 'hook' is '%s', not a hook its config accepts (%s)", in->path, hook, why);
    }
    if (strcmp(c.hook, in->config.hook))
        rc = pl_fail("%s: global attribute 'hook' is '%s' but its config's [perturb] hook is '%s': the file is not "
                     "one hook's result", in->path, hook, in->config.hook);
    pl_sweep_config_free(&c);
    return rc;
}

static int input_open(merge_input *in, const char *path, void *bytes, size_t len)
{
    in->path = path;
    if (probe_in_child(path, bytes, len) != PL_OK)
        return PL_ERR;
    int st = nc_open_mem(PL_NC_MEMORY_NAME, NC_NOWRITE, len, bytes, &in->ncid);
    if (st != NC_NOERR) {
        in->ncid = -1;
        return pl_fail("%s: cannot open as NetCDF: %s", path, nc_strerror(st));
    }
    int dimid, nd, nv;
    if (nc_inq_dimid(in->ncid, "hook", &dimid) == NC_NOERR)
        return pl_fail("%s: already has a 'hook' dimension (a merged file): merge the per-hook files instead", path);
    if (nc_inq_dimid(in->ncid, "model", &dimid) == NC_NOERR)
        return pl_fail("%s: already has a 'model' dimension (a model series), which merge does not stack again: "
                       "for models x hooks, analysis/series.py reads one series file per hook", path);
    NC_CHECK(nc_inq(in->ncid, &nd, &nv, NULL, NULL), path, "contents");
    if (nd > MAX_DIMS || nv > MAX_VARS)
        return pl_fail("%s: %d dimensions and %d variables: not a plateau result", path, nd, nv);
    char *hook = NULL, *config = NULL;
    int rc = read_text_attribute(in->ncid, path, "hook", &hook);
    if (rc == PL_OK)
        rc = read_text_attribute(in->ncid, path, "config", &config);
    if (rc == PL_OK)
        rc = read_text_attribute(in->ncid, path, "model_sha256", &in->model_sha256);
    if (rc == PL_OK)
        rc = read_text_attribute(in->ncid, path, "model_path", &in->model_path);
    if (rc == PL_OK)
        rc = read_text_attribute(in->ncid, path, "model_config_sha256", &in->model_config_sha256);
    if (rc == PL_OK && !hook)
        rc = pl_fail("%s: not a plateau result: global attribute 'hook' is missing", path);
    if (rc == PL_OK && !config)
        rc = pl_fail("%s: not a plateau result: global attribute 'config' is missing", path);
    if (rc == PL_OK) {
        char name[4200];
        snprintf(name, sizeof name, "%s (attribute 'config')", path);
        rc = pl_sweep_config_parse(&in->config, name, config, strlen(config), NULL, 0, NULL);
        in->have_config = rc == PL_OK;
    }
    if (rc == PL_OK && in->config.model_label)
        snprintf(in->label, sizeof in->label, "%s", in->config.model_label);
    else if (rc == PL_OK) /* the run's absolute model dir: its config's may be relative to where it ran */
        pl_model_default_label(in->model_path ? in->model_path : in->config.model_path, in->label, sizeof in->label);
    if (rc == PL_OK)
        rc = check_hook_attribute(in, hook, config);
    free(hook);
    free(config);
    return rc;
}

static void input_close(merge_input *in)
{
    if (in->ncid >= 0)
        nc_close(in->ncid);
    free(in->model_sha256);
    free(in->model_config_sha256);
    free(in->model_path);
    if (in->have_config)
        pl_sweep_config_free(&in->config);
}

/* ------------------------------------------------------------------ consistency checks */

/* KEY's value in input I ("section.key"), or NULL when the file's config lacks it. */
static char *config_value(const merge_input *in, int key)
{
    const char *section, *name;
    int hashed;
    pl_sweep_config_key(key, &section, &name, &hashed);
    if (!pl_sweep_config_given(&in->config, key))
        return NULL;
    char full[128];
    snprintf(full, sizeof full, "%s.%s", section, name);
    return pl_sweep_config_value(&in->config, full);
}

static char swept_key_text[128];

/* Stacked along `model`: the configs agree in every key of a run's identity (DIFF_KEY, the first that
 * differs in input DIFF_FILE, or -1), the models are told apart by their labels. */
static int check_model_configs(const merge_input *ins, int n_in, int diff_key, int diff_file)
{
    snprintf(swept_key_text, sizeof swept_key_text, "model");
    if (diff_key >= 0) {
        const char *section, *name;
        int hashed;
        pl_sweep_config_key(diff_key, &section, &name, &hashed);
        const merge_input *a = &ins[0], *b = &ins[diff_file];
        char *va = config_value(a, diff_key), *vb = config_value(b, diff_key);
        pl_fail("%s: config differs from %s in [%s] %s ('%s' in %s, '%s' in %s); the files of one model series "
                "differ only in their model", b->path, a->path, section, name, va ? va : "(absent)", a->path,
                vb ? vb : "(absent)", b->path);
        free(va);
        free(vb);
        return PL_ERR;
    }
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(ins[i].label, ins[j].label))
                return pl_fail("%s and %s are both model '%s' ([model] label, else the model dir's name): a model "
                               "series labels each model once", ins[j].path, ins[i].path, ins[i].label);
    return PL_OK;
}

/* Find the one key the inputs differ in (ignoring the run-only keys) and fail if there are more. */
static int check_configs(const merge_input *ins, int n_in)
{
    swept_key_text[0] = '\0';
    enum { MAX_DIFF = 8 };
    int diff_key[MAX_DIFF], diff_file[MAX_DIFF], n_diff = 0;
    for (int k = 0; k < pl_sweep_config_n_keys() && n_diff < MAX_DIFF; k++) {
        const char *section, *name;
        int hashed;
        pl_sweep_config_key(k, &section, &name, &hashed);
        if (!hashed)
            continue;
        char *v0 = config_value(&ins[0], k);
        for (int i = 1; i < n_in; i++) {
            char *v = config_value(&ins[i], k);
            int differ = (v0 == NULL) != (v == NULL) || (v0 && strcmp(v0, v));
            free(v);
            if (differ) {
                diff_key[n_diff] = k;
                diff_file[n_diff++] = i;
                break;
            }
        }
        free(v0);
    }
    /* The swept key is [perturb] hook when it is among them (the array scripts sweep it), else the
     * first; any other differing key is an error. */
    if (by_model)
        return check_model_configs(ins, n_in, n_diff ? diff_key[0] : -1, n_diff ? diff_file[0] : 0);
    int swept = -1;
    for (int d = 0; d < n_diff; d++) {
        const char *section, *name;
        int hashed;
        pl_sweep_config_key(diff_key[d], &section, &name, &hashed);
        if (!strcmp(section, "perturb") && !strcmp(name, "hook"))
            swept = d;
    }
    if (swept < 0 && n_diff > 0)
        swept = 0;
    if (swept >= 0) {
        const char *section, *name;
        int hashed;
        pl_sweep_config_key(diff_key[swept], &section, &name, &hashed);
        snprintf(swept_key_text, sizeof swept_key_text, "%s.%s", section, name);
    }
    for (int d = 0; d < n_diff; d++) {
        if (d == swept)
            continue;
        const char *section, *name, *s_section, *s_name;
        int hashed;
        pl_sweep_config_key(diff_key[d], &section, &name, &hashed);
        pl_sweep_config_key(diff_key[swept], &s_section, &s_name, &hashed);
        /* An SAE sits at one hook: a run per hook has an SAE per hook ([sae] path is run-only; its
         * sha256, which the run resolves, follows the hook and is kept per hook as hook_sae_sha256). */
        if (!strcmp(section, "sae") && !strcmp(name, "sha256") && !strcmp(s_section, "perturb") &&
            !strcmp(s_name, "hook"))
            continue;
        const merge_input *a = &ins[0], *b = &ins[diff_file[d]];
        char *va = config_value(a, diff_key[d]), *vb = config_value(b, diff_key[d]);
        pl_fail("%s: config differs from %s in [%s] %s ('%s' in %s, '%s' in %s); only the swept key ([%s] %s) may "
                "differ between the files of one merge",
                b->path, a->path, section, name, va ? va : "(absent)", a->path, vb ? vb : "(absent)", b->path,
                s_section, s_name);
        free(va);
        free(vb);
        return PL_ERR;
    }
    for (int i = 1; i < n_in; i++) {
        const char *a = ins[0].model_sha256, *b = ins[i].model_sha256;
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
            return pl_fail("%s: model_sha256 differs from %s ('%s' vs '%s'): the files come from different models",
                           ins[i].path, ins[0].path, b ? b : "(absent)", a ? a : "(absent)");
        /* the same weights under another config.json are another model (older files have no hash) */
        const char *ca = ins[0].model_config_sha256, *cb = ins[i].model_config_sha256;
        if (ca && cb && strcmp(ca, cb))
            return pl_fail("%s: model_config_sha256 differs from %s ('%s' vs '%s'): the same weights under another "
                           "config.json, so not one model", ins[i].path, ins[0].path, cb, ca);
    }
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(ins[i].config.hook, ins[j].config.hook))
                return pl_fail("%s and %s both have hook '%s'%s%s%s: merge stacks one file per hook", ins[j].path,
                               ins[i].path, ins[i].config.hook, swept >= 0 ? " (they differ only in " : "",
                               swept >= 0 ? swept_key_text : "", swept >= 0 ? ")" : "");
    return PL_OK;
}

static int dims_text(int ncid, const char *path, const var_info *v, char *out, size_t size)
{
    out[0] = '\0';
    for (int d = 0; d < v->ndims; d++) {
        char name[NC_MAX_NAME + 1];
        NC_CHECK(nc_inq_dimname(ncid, v->dimids[d], name), path, v->name);
        snprintf(out + strlen(out), size - strlen(out), "%s%s", d ? ", " : "", name);
    }
    return PL_OK;
}

/* Dimensions and variables of every input against the first. */
static int check_structure(const merge_input *ins, int n_in)
{
    const merge_input *a = &ins[0];
    int nd0, nv0, dimids0[MAX_DIMS];
    NC_CHECK(nc_inq(a->ncid, &nd0, &nv0, NULL, NULL), a->path, "contents");
    NC_CHECK(nc_inq_dimids(a->ncid, &nd0, dimids0, 0), a->path, "dimensions");
    for (int i = 1; i < n_in; i++) {
        const merge_input *b = &ins[i];
        int nd, nv;
        NC_CHECK(nc_inq(b->ncid, &nd, &nv, NULL, NULL), b->path, "contents");
        /* Every dimension of the first, same length; then no extra ones. */
        for (int d = 0; d < nd0; d++) {
            char name[NC_MAX_NAME + 1];
            size_t len0, len;
            int id;
            NC_CHECK(nc_inq_dim(a->ncid, dimids0[d], name, &len0), a->path, "dimension");
            if (nc_inq_dimid(b->ncid, name, &id) != NC_NOERR)
                return pl_fail("%s: dimension '%s' is missing (it is in %s)", b->path, name, a->path);
            NC_CHECK(nc_inq_dimlen(b->ncid, id, &len), b->path, name);
            if (len != len0)
                return pl_fail("%s: dimension '%s' has length %zu, but %zu in %s", b->path, name, len, len0, a->path);
        }
        if (nd != nd0)
            return pl_fail("%s: has %d dimensions, %s has %d", b->path, nd, a->path, nd0);
        for (int v = 0; v < nv0; v++) {
            var_info va, vb;
            int id;
            if (var_inquire(a->ncid, v, a->path, &va) != PL_OK)
                return PL_ERR;
            if (nc_inq_varid(b->ncid, va.name, &id) != NC_NOERR)
                return pl_fail("%s: variable '%s' is missing (it is in %s)", b->path, va.name, a->path);
            if (var_inquire(b->ncid, id, b->path, &vb) != PL_OK)
                return PL_ERR;
            char da[512], db[512];
            if (dims_text(a->ncid, a->path, &va, da, sizeof da) != PL_OK ||
                dims_text(b->ncid, b->path, &vb, db, sizeof db) != PL_OK)
                return PL_ERR;
            if (va.type != vb.type || strcmp(da, db))
                return pl_fail("%s: variable '%s' is (%s) of type %d, but (%s) of type %d in %s", b->path, va.name, db,
                               vb.type, da, va.type, a->path);
        }
        if (nv != nv0) {
            for (int v = 0; v < nv; v++) {
                char name[NC_MAX_NAME + 1];
                int id;
                NC_CHECK(nc_inq_varname(b->ncid, v, name), b->path, "variable");
                if (nc_inq_varid(a->ncid, name, &id) != NC_NOERR)
                    return pl_fail("%s: has variable '%s', which %s lacks", b->path, name, a->path);
            }
            return pl_fail("%s: has %d variables, %s has %d", b->path, nv, a->path, nv0);
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
    int varid;
    var_info v;
    NC_CHECK(nc_inq_varid(ncid, name, &varid), path, name);
    if (var_inquire(ncid, varid, path, &v) != PL_OK)
        return PL_ERR;
    size_t elem;
    NC_CHECK(nc_inq_type(ncid, v.type, NULL, &elem), path, name);
    d->count = v.count;
    d->type = v.type;
    d->data = pl_calloc(v.count ? v.count : 1, elem, name);
    if (!d->data)
        return PL_ERR;
    int st;
    if (v.count && (st = nc_get_var(ncid, varid, d->data)) != NC_NOERR) {
        free(d->data);
        d->data = NULL;
        return pl_fail("%s: cannot read variable '%s': %s", path, name, nc_strerror(st));
    }
    return PL_OK;
}

static int var_data_equal(const var_data *a, const var_data *b, size_t elem)
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
    return !memcmp(a->data, b->data, a->count * elem);
}

/* A coordinate variable: one dimension of its own name. */
static int is_coordinate(int ncid, const char *path, const var_info *v, int *yes)
{
    char dim[NC_MAX_NAME + 1];
    *yes = 0;
    if (v->ndims != 1)
        return PL_OK;
    NC_CHECK(nc_inq_dimname(ncid, v->dimids[0], dim), path, v->name);
    *yes = !strcmp(dim, v->name);
    return PL_OK;
}

/* The schema's merge rule of a variable that is not a coordinate: the provenance variables (tokens,
 * prompt_text, partner) once when equal, every other (and one the schema does not know) stacked. */
static int merge_rule(const char *name)
{
    const pl_schema_var *row = pl_schema_var_find(name);
    return row ? row->merge : PL_MERGE_STACK;
}

/* Is variable NAME the same in every input? */
static int same_in_all(const merge_input *ins, int n_in, const char *name, int *equal, int *first_diff)
{
    var_data first;
    *equal = 1;
    if (var_data_read(ins[0].ncid, ins[0].path, name, &first) != PL_OK)
        return PL_ERR;
    size_t elem;
    int st = nc_inq_type(ins[0].ncid, first.type, NULL, &elem);
    if (st != NC_NOERR) {
        var_data_free(&first);
        return nc_fail(st, ins[0].path, name);
    }
    for (int i = 1; i < n_in && *equal; i++) {
        var_data other;
        if (var_data_read(ins[i].ncid, ins[i].path, name, &other) != PL_OK) {
            var_data_free(&first);
            return PL_ERR;
        }
        if (!var_data_equal(&first, &other, elem)) {
            *equal = 0;
            *first_diff = i;
        }
        var_data_free(&other);
    }
    var_data_free(&first);
    return PL_OK;
}

/* ------------------------------------------------------------------ output */

/* The per-hook global attributes of merge rule KIND (PL_GA_PER_HOOK_TEXT with PL_GA_CONFIG, or
 * PL_GA_PER_HOOK_NUMBER) in the order merge writes their variables (the schema's merge_order):
 * ROWS[*N]. Text ones become string variables hook_<name> (every input's; the global config stays the
 * first input's, readers take the shared keys from it), numbers a variable of their own name over
 * `hook` (an input without it leaves the fill value). */
static void per_hook_rows(int kind, const pl_schema_global **rows, int *n)
{
    *n = 0;
    for (int order = 1; order <= PL_SCHEMA_N_GLOBALS; order++)
        for (int i = 0; i < PL_SCHEMA_N_GLOBALS; i++) {
            const pl_schema_global *g = &PL_SCHEMA_GLOBALS[i];
            int text = g->merge == PL_GA_PER_HOOK_TEXT || g->merge == PL_GA_CONFIG;
            if (g->merge_order == order && (kind == PL_GA_PER_HOOK_NUMBER ? g->merge == kind : text))
                rows[(*n)++] = g;
        }
}

/* Global attributes that describe one run and become variables over `hook` instead. */
static int per_run_attribute(const char *name)
{
    const pl_schema_global *g = pl_schema_global_find(name);
    return g && (g->merge == PL_GA_PER_HOOK_TEXT || g->merge == PL_GA_PER_HOOK_NUMBER);
}

/* Whether any input has global attribute NAME. */
static int any_has_attribute(const merge_input *ins, int n_in, const char *name)
{
    for (int i = 0; i < n_in; i++)
        if (nc_inq_att(ins[i].ncid, NC_GLOBAL, name, NULL, NULL) == NC_NOERR)
            return 1;
    return 0;
}

/* Whether global attribute NAME is present in every input with the same type, length and bytes
 * (*DIFF: the first input that differs). Attributes of non-atomic types count as equal (plateau
 * writes none). */
static int attribute_equal(const merge_input *ins, int n_in, const char *name, int *equal, int *diff)
{
    *equal = 1, *diff = 0;
    nc_type t0;
    size_t n0, bytes = 0;
    if (nc_inq_att(ins[0].ncid, NC_GLOBAL, name, &t0, &n0) != NC_NOERR) {
        *equal = 0;
        return PL_OK;
    }
    if (t0 == NC_STRING || t0 == NC_VLEN || t0 > NC_MAX_ATOMIC_TYPE)
        return PL_OK;
    NC_CHECK(nc_inq_type(ins[0].ncid, t0, NULL, &bytes), ins[0].path, name);
    char *v0 = pl_malloc(n0 * bytes + 1, "attribute"), *v = pl_malloc(n0 * bytes + 1, "attribute");
    int rc = v0 && v ? PL_OK : PL_ERR;
    if (rc == PL_OK && nc_get_att(ins[0].ncid, NC_GLOBAL, name, v0) != NC_NOERR)
        rc = pl_fail("%s: cannot read global attribute '%s'", ins[0].path, name);
    for (int i = 1; i < n_in && rc == PL_OK && *equal; i++) {
        nc_type t;
        size_t n;
        if (nc_inq_att(ins[i].ncid, NC_GLOBAL, name, &t, &n) != NC_NOERR || t != t0 || n != n0 ||
            nc_get_att(ins[i].ncid, NC_GLOBAL, name, v) != NC_NOERR || memcmp(v0, v, n0 * bytes))
            *equal = 0, *diff = i;
    }
    free(v0);
    free(v);
    return rc;
}

/* Every other global attribute is one value for the merged file: it must be the same in every
 * input, or the merged file would carry the first input's value as everyone's. */
static int check_shared_attributes(const merge_input *ins, int n_in)
{
    int ngatts;
    NC_CHECK(nc_inq_natts(ins[0].ncid, &ngatts), ins[0].path, "global attributes");
    for (int a = 0; a < ngatts; a++) {
        char name[NC_MAX_NAME + 1];
        NC_CHECK(nc_inq_attname(ins[0].ncid, NC_GLOBAL, a, name), ins[0].path, "global attribute");
        if (!strcmp(name, "hook") || !strcmp(name, "config") || per_run_attribute(name) ||
            (by_model && !strcmp(name, "model_sha256")))
            continue;
        int equal, diff;
        if (attribute_equal(ins, n_in, name, &equal, &diff) != PL_OK)
            return PL_ERR;
        if (!equal)
            return pl_fail("%s: global attribute '%s' differs from %s's (or is missing): the files are not one "
                           "experiment run at several hooks", ins[diff].path, name, ins[0].path);
    }
    return PL_OK;
}

/* A per-hook attribute that is also kept as a global one: always (model_path: the model is one, by
 * model_sha256; readers expect the attribute), never (the merge's own created, history and source, the
 * run's n_ranks and evals_per_second), else when every input has the same value. */
static int keep_global_too(const merge_input *ins, int n_in, const char *name, int *keep)
{
    const pl_schema_global *g = pl_schema_global_find(name);
    *keep = g && (g->merge_flags & PL_GA_ALWAYS_GLOBAL);
    if (!g || g->merge_flags & (PL_GA_ALWAYS_GLOBAL | PL_GA_NEVER_GLOBAL))
        return PL_OK;
    int diff;
    return attribute_equal(ins, n_in, name, keep, &diff);
}

static int copy_var_attributes(int in, int in_varid, int out, int out_varid, const char *path, const char *var)
{
    int natts;
    NC_CHECK(nc_inq_varnatts(in, in_varid, &natts), path, var);
    for (int a = 0; a < natts; a++) {
        char name[NC_MAX_NAME + 1];
        int st;
        if ((st = nc_inq_attname(in, in_varid, a, name)) != NC_NOERR ||
            (st = nc_copy_att(in, in_varid, name, out, out_varid)) != NC_NOERR)
            return pl_fail("%s: copying an attribute of '%s': %s", path, var, nc_strerror(st));
    }
    return PL_OK;
}

static int put_text(int nc, int varid, const char *name, const char *value, const char *out_name)
{
    NC_CHECK(nc_put_att_text(nc, varid, name, strlen(value), value), out_name, name);
    return PL_OK;
}

typedef struct {
    int in_varid, out_varid;
    int stacked; /* gets the leading hook dimension */
    var_info info;
} var_plan;

/* Define a variable of the output like input variable P->in_varid of IN (with the hook dimension in
 * front when stacked), keeping the writer's compression and chunking and its attributes. */
static int define_like(int in, const char *in_path, int out, const char *out_name, int hook_dim, const int *dim_map,
                       var_plan *p)
{
    int dimids[NC_MAX_VAR_DIMS + 1], nd = 0;
    if (p->stacked)
        dimids[nd++] = hook_dim;
    for (int d = 0; d < p->info.ndims; d++) {
        if (p->info.dimids[d] < 0 || p->info.dimids[d] >= MAX_DIMS || dim_map[p->info.dimids[d]] < 0)
            return pl_fail("%s: variable '%s' has a dimension id %d out of range", in_path, p->info.name,
                           p->info.dimids[d]);
        dimids[nd++] = dim_map[p->info.dimids[d]];
    }
    NC_CHECK(nc_def_var(out, p->info.name, p->info.type, nd, dimids, &p->out_varid), out_name, p->info.name);
    int shuffle, deflate, level, storage;
    NC_CHECK(nc_inq_var_deflate(in, p->in_varid, &shuffle, &deflate, &level), in_path, p->info.name);
    if (deflate)
        NC_CHECK(nc_def_var_deflate(out, p->out_varid, shuffle, deflate, level), out_name, p->info.name);
    if (p->info.ndims > 0) {
        size_t chunks[NC_MAX_VAR_DIMS + 1];
        NC_CHECK(nc_inq_var_chunking(in, p->in_varid, &storage, chunks + p->stacked), in_path, p->info.name);
        if (storage == NC_CHUNKED) {
            if (p->stacked)
                chunks[0] = 1; /* chunks of a stacked variable cover one hook */
            NC_CHECK(nc_def_var_chunking(out, p->out_varid, NC_CHUNKED, chunks), out_name, p->info.name);
        }
    }
    return copy_var_attributes(in, p->in_varid, out, p->out_varid, in_path, p->info.name);
}

/* The merged file being built: OUT (netCDF id) named OUT_NAME, from INS[N_IN]. */
typedef struct {
    int out;
    const char *out_name;
    const merge_input *ins;
    int n_in;
    int hook_dim, hook_var;  /* the stacking dimension (hook or model) and its coordinate */
    int model_var[3];        /* stacked along model: model_path, model_sha256, model_step */
    int dim_map[MAX_DIMS];   /* input dimension id -> output's */
    var_plan *plan;          /* [nvars of the first input] */
    int nvars;
    const pl_schema_global *text_rows[64], *number_rows[64];
    int n_text, n_number;
    int text_var[64], number_var[64]; /* -1: no input has it */
} merge_out;

/* Stacked along `model`: the model's path, sha256 and training step, variables over `model`. */
static int define_model_vars(merge_out *m)
{
    const char *names[] = {"model_path", "model_sha256", "model_step"};
    for (int k = 0; k < 3; k++) {
        const pl_schema_var *row = pl_schema_var_find(names[k]);
        NC_CHECK(nc_def_var(m->out, names[k], row->type, 1, &m->hook_dim, &m->model_var[k]), m->out_name, names[k]);
        if (put_text(m->out, m->model_var[k], "long_name", row->long_name, m->out_name) != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* Dimensions: hook (or model) first, then the inputs' in their order; its coordinate. */
static int define_dims(merge_out *m)
{
    const merge_input *first = &m->ins[0];
    int ndims, in_dimids[MAX_DIMS];
    for (int d = 0; d < MAX_DIMS; d++)
        m->dim_map[d] = -1;
    NC_CHECK(nc_def_dim(m->out, stack_dim(), (size_t)m->n_in, &m->hook_dim), m->out_name, "stacking dimension");
    NC_CHECK(nc_inq_dimids(first->ncid, &ndims, in_dimids, 0), first->path, "dimensions");
    for (int d = 0; d < ndims; d++) {
        if (in_dimids[d] < 0 || in_dimids[d] >= MAX_DIMS)
            return pl_fail("%s: dimension id %d out of range", first->path, in_dimids[d]);
        char name[NC_MAX_NAME + 1];
        size_t len;
        NC_CHECK(nc_inq_dim(first->ncid, in_dimids[d], name, &len), first->path, "dimension");
        NC_CHECK(nc_def_dim(m->out, name, len, &m->dim_map[in_dimids[d]]), m->out_name, name);
    }
    const pl_schema_var *row = pl_schema_var_find(stack_dim());
    NC_CHECK(nc_def_var(m->out, stack_dim(), NC_STRING, 1, &m->hook_dim, &m->hook_var), m->out_name, stack_dim());
    if (put_text(m->out, m->hook_var, "long_name", row->long_name, m->out_name) != PL_OK)
        return PL_ERR;
    return by_model ? define_model_vars(m) : PL_OK;
}

/* Each input variable: written once (a coordinate, equal in all inputs; provenance when equal) or
 * stacked along hook, defined like the input's. */
static int define_vars(merge_out *m)
{
    const merge_input *first = &m->ins[0];
    for (int v = 0; v < m->nvars; v++) {
        var_plan *p = &m->plan[v];
        p->in_varid = v;
        if (var_inquire(first->ncid, v, first->path, &p->info) != PL_OK)
            return PL_ERR;
        int coordinate, rule = merge_rule(p->info.name);
        if (is_coordinate(first->ncid, first->path, &p->info, &coordinate) != PL_OK)
            return PL_ERR;
        p->stacked = 1;
        if (coordinate || rule == PL_MERGE_ONCE_IF_SAME) {
            int equal, diff = 0;
            if (same_in_all(m->ins, m->n_in, p->info.name, &equal, &diff) != PL_OK)
                return PL_ERR;
            if (coordinate && !equal)
                return pl_fail("%s: coordinate '%s' differs from %s: the files do not share one grid",
                               m->ins[diff].path, p->info.name, first->path);
            /* One prompts path and [data] config (keys of the run's identity, equal in all inputs: the swept
             * key is the hook or the model) may still hold other prompts: a file regenerated between the
             * runs, or text tokenized by another tokenizer per model. */
            if (!equal && !strcmp(p->info.name, "tokens"))
                return pl_fail("%s: its prompts' token ids differ from %s's: the runs did not see the same prompts "
                               "(the prompts file changed between them, or another tokenizer made them), so they "
                               "are not one experiment across %ss",
                               m->ins[diff].path, first->path, stack_dim());
            p->stacked = !equal;
        }
        if (define_like(first->ncid, first->path, m->out, m->out_name, m->hook_dim, m->dim_map, p) != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* The per-hook variables of the per-run attributes any input has: numbers, then text (hook_<name>). */
static int define_per_hook_vars(merge_out *m)
{
    per_hook_rows(PL_GA_PER_HOOK_NUMBER, m->number_rows, &m->n_number);
    per_hook_rows(PL_GA_PER_HOOK_TEXT, m->text_rows, &m->n_text);
    for (int k = 0; k < m->n_number; k++) {
        const pl_schema_global *g = m->number_rows[k];
        m->number_var[k] = -1;
        if (!any_has_attribute(m->ins, m->n_in, g->name))
            continue;
        NC_CHECK(nc_def_var(m->out, g->name, g->kind == PL_GA_DOUBLE ? NC_DOUBLE : NC_INT, 1, &m->hook_dim,
                            &m->number_var[k]), m->out_name, g->name);
        if (put_text(m->out, m->number_var[k], "long_name", g->merged_long_name, m->out_name) != PL_OK ||
            (g->merged_units && put_text(m->out, m->number_var[k], "units", g->merged_units, m->out_name) != PL_OK))
            return PL_ERR;
    }
    const pl_schema_var *row = pl_schema_var_find(by_model ? "model_{attr}" : "hook_{attr}");
    for (int k = 0; k < m->n_text; k++) {
        const char *attr = m->text_rows[k]->name;
        m->text_var[k] = -1;
        if (!any_has_attribute(m->ins, m->n_in, attr) || (by_model && !strcmp(attr, "model_path")))
            continue; /* (a model's path is the variable model_path) */
        char name[64], long_name[160];
        const char *keys[] = {"attr", NULL}, *values[] = {attr, NULL};
        snprintf(name, sizeof name, "%s_%s", stack_dim(), attr);
        pl_schema_expand(row->long_name, keys, values, long_name, sizeof long_name);
        NC_CHECK(nc_def_var(m->out, name, NC_STRING, 1, &m->hook_dim, &m->text_var[k]), m->out_name, name);
        if (put_text(m->out, m->text_var[k], "long_name", long_name, m->out_name) != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* Global attributes: the first input's, minus the per-file ones (unless kept global too). */
static int copy_globals(merge_out *m)
{
    const merge_input *first = &m->ins[0];
    int ngatts;
    NC_CHECK(nc_inq_natts(first->ncid, &ngatts), first->path, "global attributes");
    for (int a = 0; a < ngatts; a++) {
        char name[NC_MAX_NAME + 1];
        NC_CHECK(nc_inq_attname(first->ncid, NC_GLOBAL, a, name), first->path, "global attribute");
        const pl_schema_global *g = pl_schema_global_find(name);
        if (g && ((g->merge == PL_GA_HOOK && !by_model) || g->merge == PL_GA_MERGE))
            continue;
        if (by_model && (!strcmp(name, "model_path") || !strcmp(name, "model_sha256")))
            continue; /* variables over model */
        int keep = 1;
        if (per_run_attribute(name) && keep_global_too(m->ins, m->n_in, name, &keep) != PL_OK)
            return PL_ERR;
        if (keep)
            NC_CHECK(nc_copy_att(first->ncid, NC_GLOBAL, name, m->out, NC_GLOBAL), first->path, name);
    }
    return PL_OK;
}

/* A series run's command line while pl_merge_models stacks its parts: the output's history. */
static const char *series_command;

/* The merge's own global attributes: swept_key, merged_from, created, history (this merge as a command
 * line, or the series run's: CF's what made the file), source. */
static int put_merge_globals(merge_out *m, const char *swept_key)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t len = strlen(created) + strlen(m->out_name) + (series_command ? strlen(series_command) : 0) + 32;
    for (int i = 0; i < m->n_in; i++)
        len += strlen(m->ins[i].path) + 1;
    char *from = pl_malloc(len, "merged_from"), *history = pl_malloc(len, "history");
    int rc = from && history ? PL_OK : PL_ERR;
    if (rc == PL_OK) {
        from[0] = '\0';
        snprintf(history, len, "%s: plateau merge %s", created, m->out_name);
        for (int i = 0; i < m->n_in; i++) {
            strcat(strcat(from, m->ins[i].path), i + 1 < m->n_in ? "\n" : "");
            strcat(strcat(history, " "), m->ins[i].path);
        }
        if (series_command)
            snprintf(history, len, "%s: %s", created, series_command);
    }
    char source[256];
    snprintf(source, sizeof source, "plateau %s (git %s)", pl_version(), pl_git_commit());
    rc = rc ? rc : put_text(m->out, NC_GLOBAL, "swept_key", swept_key, m->out_name);
    rc = rc ? rc : put_text(m->out, NC_GLOBAL, "merged_from", from, m->out_name);
    rc = rc ? rc : put_text(m->out, NC_GLOBAL, "created", created, m->out_name);
    rc = rc ? rc : put_text(m->out, NC_GLOBAL, "history", history, m->out_name);
    rc = rc ? rc : put_text(m->out, NC_GLOBAL, "source", source, m->out_name);
    free(from);
    free(history);
    return rc;
}

/* Each input's per-run text attributes into hook_<name> (data mode). */
static int put_per_hook_text(merge_out *m)
{
    for (int k = 0; k < m->n_text; k++) {
        if (m->text_var[k] < 0)
            continue;
        const char *attr = m->text_rows[k]->name;
        for (int i = 0; i < m->n_in; i++) {
            char *text = NULL;
            if (read_text_attribute(m->ins[i].ncid, m->ins[i].path, attr, &text) != PL_OK)
                return PL_ERR;
            size_t at = (size_t)i;
            const char *value = text ? text : "";
            int st = nc_put_var1_string(m->out, m->text_var[k], &at, &value);
            free(text);
            if (st != NC_NOERR)
                return nc_fail(st, m->out_name, attr);
        }
    }
    return PL_OK;
}

/* Each input's per-run numbers into their variables over hook (data mode). */
static int put_per_hook_numbers(merge_out *m)
{
    for (int k = 0; k < m->n_number; k++) {
        if (m->number_var[k] < 0)
            continue;
        const char *name = m->number_rows[k]->name;
        for (int i = 0; i < m->n_in; i++) {
            size_t at = (size_t)i, len;
            double value;
            if (nc_inq_attlen(m->ins[i].ncid, NC_GLOBAL, name, &len) != NC_NOERR)
                continue; /* this input has none: the fill value */
            if (len != 1)
                return pl_fail("%s: global attribute '%s' has %zu values, expected one", m->ins[i].path, name, len);
            NC_CHECK(nc_get_att_double(m->ins[i].ncid, NC_GLOBAL, name, &value), m->ins[i].path, name);
            NC_CHECK(nc_put_var1_double(m->out, m->number_var[k], &at, &value), m->out_name, name);
        }
    }
    return PL_OK;
}

/* Stacked along model: each input's label, model path, sha256 and step. */
static int put_model_vars(merge_out *m)
{
    for (int i = 0; i < m->n_in; i++) {
        const merge_input *in = &m->ins[i];
        size_t at = (size_t)i;
        const char *label = in->label, *path = in->model_path ? in->model_path : in->config.model_path;
        const char *sha = in->model_sha256 ? in->model_sha256 : "";
        int step = (int)in->config.model_step;
        NC_CHECK(nc_put_var1_string(m->out, m->hook_var, &at, &label), m->out_name, "model");
        NC_CHECK(nc_put_var1_string(m->out, m->model_var[0], &at, &path), m->out_name, "model_path");
        NC_CHECK(nc_put_var1_string(m->out, m->model_var[1], &at, &sha), m->out_name, "model_sha256");
        NC_CHECK(nc_put_var1_int(m->out, m->model_var[2], &at, &step), m->out_name, "model_step");
    }
    return PL_OK;
}

/* The hook coordinate and every variable's data: once, or one slice per input (data mode). */
static int put_data(merge_out *m)
{
    const char **hooks = pl_malloc((size_t)m->n_in * sizeof *hooks, "hook names");
    if (!hooks)
        return PL_ERR;
    for (int i = 0; i < m->n_in; i++)
        hooks[i] = m->ins[i].config.hook;
    int st = by_model ? NC_NOERR : nc_put_var_string(m->out, m->hook_var, hooks);
    free(hooks);
    if (st != NC_NOERR)
        return nc_fail(st, m->out_name, "hook");
    if (by_model && put_model_vars(m) != PL_OK)
        return PL_ERR;
    for (int v = 0; v < m->nvars; v++) {
        var_plan *p = &m->plan[v];
        for (int i = 0; i < (p->stacked ? m->n_in : 1); i++) {
            var_data d;
            if (var_data_read(m->ins[i].ncid, m->ins[i].path, p->info.name, &d) != PL_OK)
                return PL_ERR;
            size_t start[NC_MAX_VAR_DIMS + 1] = {0}, count[NC_MAX_VAR_DIMS + 1];
            int nd = 0;
            if (p->stacked) {
                start[nd] = (size_t)i;
                count[nd++] = 1;
            }
            for (int k = 0; k < p->info.ndims && st == NC_NOERR; k++)
                st = nc_inq_dimlen(m->ins[0].ncid, p->info.dimids[k], &count[nd++]);
            if (st == NC_NOERR && d.count)
                st = nc_put_vara(m->out, p->out_varid, start, count, d.data);
            var_data_free(&d);
            if (st != NC_NOERR)
                return pl_fail("%s: writing '%s' from %s: %s", m->out_name, p->info.name, m->ins[i].path,
                               nc_strerror(st));
        }
    }
    return PL_OK;
}

static int write_output(int out, const char *out_name, const merge_input *ins, int n_in, const char *swept_key,
                        var_plan *plan)
{
    merge_out m = {.out = out, .out_name = out_name, .ins = ins, .n_in = n_in, .plan = plan};
    NC_CHECK(nc_inq_nvars(ins[0].ncid, &m.nvars), ins[0].path, "contents");
    if (define_dims(&m) != PL_OK || define_vars(&m) != PL_OK || define_per_hook_vars(&m) != PL_OK ||
        copy_globals(&m) != PL_OK || put_merge_globals(&m, swept_key) != PL_OK)
        return PL_ERR;
    NC_CHECK(nc_enddef(out), out_name, "definitions");
    if (put_per_hook_text(&m) != PL_OK || put_data(&m) != PL_OK || put_per_hook_numbers(&m) != PL_OK)
        return PL_ERR;
    return PL_OK;
}

/* Two or more inputs, all of one hook, no two of one model (model_sha256): a model series. Anything
 * else is stacked along hook, whose checks say what is wrong (the same hook twice, ...). */
static int one_hook_many_models(const merge_input *ins, int n_in)
{
    for (int i = 1; i < n_in; i++) {
        if (strcmp(ins[i].config.hook, ins[0].config.hook))
            return 0;
        for (int j = 0; j < i; j++)
            if (!ins[i].model_sha256 || !ins[j].model_sha256 || !strcmp(ins[i].model_sha256, ins[j].model_sha256))
                return 0;
    }
    return n_in > 1;
}

/* A series run's parts are the models it lists, in order (a part left by another series is refused). */
static char *const *expect_labels, *const *expect_paths;
static int check_part(const merge_input *in, int k, const char *label, const char *path)
{
    if (strcmp(in->label, label) || strcmp(in->config.model_path, path))
        return pl_fail("%s: is model '%s' (%s), but the series' model %d is '%s' (%s): remove it and run again",
                       in->path, in->label, in->config.model_path, k + 1, label, path);
    return PL_OK;
}

static int check_expected(const merge_input *ins, int n_in)
{
    for (int i = 0; expect_labels && i < n_in; i++)
        if (check_part(&ins[i], i, expect_labels[i], expect_paths[i]) != PL_OK)
            return PL_ERR;
    return PL_OK;
}

/* Merge N_IN inputs held in memory (each closed by the caller) into *MEMIO. */
static int merge_inputs(const char *out_name, merge_input *ins, int n_in, NC_memio *memio)
{
    int rc = check_expected(ins, n_in);
    if (rc != PL_OK)
        return PL_ERR;
    if (by_model < 0) /* pl_merge: inputs of one hook and of different models are a model series */
        by_model = one_hook_many_models(ins, n_in);
    rc = check_configs(ins, n_in);
    if (rc == PL_OK)
        rc = check_structure(ins, n_in);
    if (rc == PL_OK)
        rc = check_shared_attributes(ins, n_in);
    if (rc != PL_OK)
        return PL_ERR;
    int nvars;
    NC_CHECK(nc_inq_nvars(ins[0].ncid, &nvars), ins[0].path, "variables");
    var_plan *plan = pl_calloc((size_t)(nvars ? nvars : 1), sizeof *plan, "merge plan");
    if (!plan)
        return PL_ERR;
    int out, st = nc_create_mem(PL_NC_MEMORY_NAME, NC_NETCDF4, 1 << 20, &out);
    if (st != NC_NOERR) {
        free(plan);
        return pl_fail("%s: cannot create the merge in memory: %s", out_name, nc_strerror(st));
    }
    rc = write_output(out, out_name, ins, n_in, swept_key_text, plan);
    free(plan);
    /* closed, never nc_abort()ed: netCDF's abort of a file being created removes the file of its name */
    st = nc_close_memio(out, memio);
    if (rc == PL_OK && st != NC_NOERR)
        rc = nc_fail(st, out_name, "finishing the merge");
    if (rc != PL_OK) {
        free(memio->memory);
        memio->memory = NULL;
    }
    return rc;
}

int pl_merge_buffers(const char *out_name, char *const *names, void *const *bytes, const size_t *lens, int n_in,
                     void **out, size_t *out_len, const char **swept_key)
{
    if (!expect_labels)
        by_model = -1; /* by the inputs' hooks (merge_inputs) */
    merge_input *ins = pl_calloc((size_t)n_in, sizeof *ins, "merge inputs");
    if (!ins)
        return PL_ERR;
    for (int i = 0; i < n_in; i++)
        ins[i].ncid = -1;
    int rc = PL_OK;
    for (int i = 0; i < n_in && rc == PL_OK; i++)
        rc = input_open(&ins[i], names[i], bytes[i], lens[i]);
    NC_memio memio = {0};
    if (rc == PL_OK)
        rc = merge_inputs(out_name, ins, n_in, &memio);
    for (int i = 0; i < n_in; i++)
        input_close(&ins[i]);
    free(ins);
    if (rc != PL_OK)
        return PL_ERR;
    *out = memio.memory;
    *out_len = memio.size;
    if (swept_key)
        *swept_key = swept_key_text;
    return PL_OK;
}

int pl_merge_models(const char *out_path, char *const *parts, int n, char *const *labels, char *const *paths,
                    const char *command_line)
{
    by_model = 1;
    expect_labels = labels;
    expect_paths = paths;
    series_command = command_line;
    int rc = pl_merge(out_path, parts, n, 1, NULL);
    expect_labels = expect_paths = NULL;
    series_command = NULL;
    return rc;
}

/* The part IN against this run's CONFIG for it in the keys of a run's identity: a part finished under
 * another config (say --resume with another n_prompts, between two models' checkpoints) would be
 * refused by the stacker only after every remaining model had run. CONFIG is not resolved against
 * the model: a key it leaves empty (read_hook, [sae] sha256: the run fills them in from the model and
 * the SAE) is left to the stacker. */
static int check_part_config(const merge_input *in, const char *config)
{
    merge_input here = {.path = "this run", .ncid = -1};
    int rc = pl_sweep_config_parse(&here.config, "this run's config", config, strlen(config), NULL, 0, NULL);
    if (rc != PL_OK)
        return PL_ERR;
    for (int key = 0; rc == PL_OK && key < pl_sweep_config_n_keys(); key++) {
        const char *section, *name;
        int hashed;
        pl_sweep_config_key(key, &section, &name, &hashed);
        if (!hashed)
            continue;
        char *vp = config_value(in, key), *vh = config_value(&here, key);
        if (vh && vh[0] && (!vp || strcmp(vp, vh)))
            rc = pl_fail("%s: a finished part of this series run under another config: [%s] %s is '%s' there, '%s' "
                         "here: resume with the original config, or remove the series' parts to start again",
                         in->path, section, name, vp ? vp : "(absent)", vh ? vh : "(absent)");
        free(vp);
        free(vh);
    }
    /* [model] step is not a key of a run's identity (the same run at another step is the same numbers), but
     * it is what the series' model_step says: a step corrected in the paths file must not keep the old one */
    if (rc == PL_OK && in->config.model_step != here.config.model_step)
        rc = pl_fail("%s: a finished part of this series run at another training step: step %lld there, %lld here "
                     "(-1: none): resume with the original list, or remove the series' parts to start again",
                     in->path, (long long)in->config.model_step, (long long)here.config.model_step);
    pl_sweep_config_free(&here.config);
    return rc;
}

/* The sha256 of IN's `tokens` as int32 in file order ("" when it has none): what the stacker compares. */
static int tokens_sha256(const merge_input *in, char out[65])
{
    out[0] = '\0';
    int varid;
    if (nc_inq_varid(in->ncid, "tokens", &varid) != NC_NOERR)
        return PL_OK;
    var_data d;
    if (var_data_read(in->ncid, in->path, "tokens", &d) != PL_OK)
        return PL_ERR;
    int rc = d.type != NC_INT ? pl_fail("%s: variable 'tokens' is not int32", in->path)
                              : pl_sha256_hex(d.data, sizeof(int) * d.count, out);
    var_data_free(&d);
    return rc;
}

int pl_merge_check_part(const char *part, int k, const char *label, const char *path, const char *config,
                        char tokens_sha[65])
{
    char *data = NULL;
    size_t len = 0;
    merge_input in = {.ncid = -1};
    tokens_sha[0] = '\0';
    int rc = pl_read_file(part, PL_MAX_INPUT_BYTES, &data, &len);
    if (rc == PL_OK)
        rc = input_open(&in, part, data, len);
    if (rc == PL_OK)
        rc = check_part(&in, k, label, path);
    if (rc == PL_OK && config)
        rc = check_part_config(&in, config);
    if (rc == PL_OK)
        rc = tokens_sha256(&in, tokens_sha);
    input_close(&in);
    free(data);
    return rc;
}

int pl_merge(const char *out_path, char *const *in_paths, int n_in, int force, const char **swept_key)
{
    if (n_in < 1)
        return pl_fail("merge: no input files");
    for (int i = 0; i < n_in; i++) {
        if (pl_same_target(out_path, in_paths[i]))
            return pl_fail("%s: the output is also input %d: write the merge to a new file", out_path, i + 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(in_paths[i], in_paths[j]) || pl_same_file(in_paths[i], in_paths[j]))
                return pl_fail("%s: given twice (inputs %d and %d)", in_paths[i], j + 1, i + 1);
    }
    if (pl_check_output(out_path, "output") != PL_OK)
        return PL_ERR;
    void **bytes = pl_calloc((size_t)n_in, sizeof *bytes, "merge inputs");
    size_t *lens = pl_calloc((size_t)n_in, sizeof *lens, "merge inputs");
    int rc = bytes && lens ? PL_OK : PL_ERR;
    for (int i = 0; i < n_in && rc == PL_OK; i++) {
        char *data = NULL;
        rc = pl_read_file(in_paths[i], PL_MAX_INPUT_BYTES, &data, &lens[i]);
        bytes[i] = data;
    }
    void *out = NULL;
    size_t out_len = 0;
    if (rc == PL_OK)
        rc = pl_merge_buffers(out_path, in_paths, bytes, lens, n_in, &out, &out_len, swept_key);
    struct stat sb;
    if (rc == PL_OK && !force && lstat(out_path, &sb) == 0) /* checked last: the inputs' errors come first */
        rc = pl_fail("%s exists: pass --force to replace it", out_path);
    if (rc == PL_OK) {
        rc = pl_write_file_atomic(out_path, out, out_len);
        if (rc != PL_OK)
            pl_fail_prefix("output (an existing file of that name is untouched)");
    }
    free(out);
    for (int i = 0; bytes && i < n_in; i++)
        free(bytes[i]);
    free(bytes);
    free(lens);
    return rc;
}
