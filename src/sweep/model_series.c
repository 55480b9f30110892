/* A model series: several model dirs of one family and shape swept by one run, the result stacked
 * along a leading `model` dimension (docs/config.md, [model] path and paths).
 *
 * [model] path = DIR1, DIR2, ...   labels are the dirs' names, steps not given;
 * [model] paths = FILE             one model a line:   DIR [label=LABEL] [step=N]
 *   - blank lines and lines whose first non-blank character is '#' are skipped; a leading UTF-8 byte
 *     order mark and CR line ends are allowed;
 *   - fields are separated by spaces or tabs; DIR is the first field (so it holds no whitespace: link
 *     such a dir under another name), relative to FILE's directory unless absolute;
 *   - label=LABEL: 1-64 characters of [A-Za-z0-9._+-] (default: DIR's last component);
 *   - step=N: the training step, an integer in [0, 2^31 - 1] (default: not given, -1 in the result);
 *   - each key at most once a line; any other field is an error naming FILE:LINE.
 * Labels and dirs are unique in a series (dirs by the file system: a link to a listed dir is that dir).
 * A dir that does not exist is refused here, by name; that the models share one family and shape is
 * checked when they are opened (the scheduler). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "sweep_internal.h"

#define MAX_SERIES_BYTES ((size_t)1 << 22)
#define MAX_LABEL 64
#define MAX_STEP 2147483647LL /* the file's model_step is a 32-bit int (Pythia: 143000) */

void pl_model_series_free(pl_model_entry *models, int n)
{
    for (int k = 0; models && k < n; k++) {
        free(models[k].path);
        free(models[k].label);
    }
    free(models);
}

int pl_model_label_check(const char *label)
{
    size_t n = strlen(label);
    if (n == 0 || n > MAX_LABEL ||
        strspn(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-") != n)
        return pl_fail("label '%s' is not 1-%d characters of A-Z a-z 0-9 . _ + -", label, MAX_LABEL);
    return PL_OK;
}

/* DIR's last component (trailing slashes dropped) into OUT[SIZE]; for a DIR ending in . or .. (ckpt/step-0/.)
 * the last component of the dir it names, as realpath resolves it (the label '.' would say nothing). */
void pl_model_default_label(const char *dir, char *out, size_t size)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(out, size, "%.*s", (int)(n - start), dir + start);
    char *resolved;
    if ((strcmp(out, ".") && strcmp(out, "..")) || !(resolved = realpath(dir, NULL)))
        return;
    pl_model_default_label(resolved, out, size);
    free(resolved);
}

/* Entry K of MODELS from DIR, LABEL (NULL: the dir's name) and STEP; WHERE names it in messages. */
static int set_entry(pl_model_entry *models, int k, const char *dir, const char *label, int64_t step,
                     const char *where)
{
    char name[4096];
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pl_fail("%s: model dir '%s' does not exist", where, dir);
    if (strchr(dir, ',')) /* each model's run gets it as [model] path, where a comma separates models */
        return pl_fail("%s: model dir '%s' holds a comma: link it under another name", where, dir);
    if (!label) {
        pl_model_default_label(dir, name, sizeof name);
        label = name;
    }
    if (pl_model_label_check(label) != PL_OK)
        return pl_fail_prefix("%s: model '%s'%s", where, dir, label == name ? " (its dir's name as label; give "
                                                                               "label= in a [model] paths file)" : "");
    for (int j = 0; j < k; j++) {
        if (!strcmp(models[j].label, label))
            return pl_fail("%s: label '%s' is given twice (models %d and %d): labels name the `model` coordinate",
                           where, label, j + 1, k + 1);
        if (!strcmp(models[j].path, dir))
            return pl_fail("%s: model dir '%s' is listed twice (models %d and %d)", where, dir, j + 1, k + 1);
        /* the same dir under another name (a link, "A/./", "../x/A"): one model twice, not two models */
        struct stat sj;
        if (stat(models[j].path, &sj) == 0 && sj.st_dev == sb.st_dev && sj.st_ino == sb.st_ino)
            return pl_fail("%s: model dir '%s' is model %d's '%s' again (the same file or dir): a series lists "
                           "each model once", where, dir, j + 1, models[j].path);
    }
    models[k].path = strdup(dir);
    models[k].label = strdup(label);
    models[k].step = step;
    return models[k].path && models[k].label ? PL_OK : pl_fail("out of memory (model series)");
}

int pl_model_series_from_list(char *const *dirs, int n, const char *where, pl_model_entry **out)
{
    pl_model_entry *models = calloc((size_t)n, sizeof *models);
    if (!models)
        return pl_fail("out of memory (model series)");
    for (int k = 0; k < n; k++)
        if (set_entry(models, k, dirs[k], NULL, -1, where) != PL_OK) {
            pl_model_series_free(models, n);
            return PL_ERR;
        }
    *out = models;
    return PL_OK;
}

/* One field after the dir: label=... or step=...; *LABEL points into FIELD. */
static int parse_field(char *field, const char *where, char **label, int64_t *step)
{
    char *eq = strchr(field, '=');
    if (eq && !strncmp(field, "label=", 6) && !*label) {
        *label = eq + 1;
        return PL_OK;
    }
    if (eq && !strncmp(field, "step=", 5) && *step < 0) {
        char *end;
        long long v = strtoll(eq + 1, &end, 10);
        if (end == eq + 1 || *end || v < 0 || v > MAX_STEP || eq[1] == '-' || eq[1] == '+')
            return pl_fail("%s: '%s': the step is not an integer in [0, 2147483647]", where, field);
        *step = v;
        return PL_OK;
    }
    if (eq && (!strncmp(field, "label=", 6) || !strncmp(field, "step=", 5)))
        return pl_fail("%s: '%.*s' is given twice", where, (int)(eq - field), field);
    return pl_fail("%s: '%s': expected DIR [label=LABEL] [step=N]", where, field);
}

/* LINE (NUL-terminated, no newline) of FILE: skipped (*GOT 0) or the model's dir, label and step. */
static int parse_line(char *line, const char *where, char **dir, char **label, int64_t *step, int *got)
{
    *got = 0, *dir = NULL, *label = NULL, *step = -1;
    for (char *save = NULL, *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
        if (!*dir) {
            if (tok[0] == '#')
                return PL_OK; /* a comment line */
            *dir = tok;
            *got = 1;
        } else if (parse_field(tok, where, label, step) != PL_OK) {
            return PL_ERR;
        }
    }
    return PL_OK;
}

/* DIR relative to FILE's directory (absolute dirs as they are) into OUT[SIZE]. */
static void relative_to(const char *file, const char *dir, char *out, size_t size)
{
    const char *slash = strrchr(file, '/');
    if (dir[0] == '/' || !slash)
        snprintf(out, size, "%s", dir);
    else
        snprintf(out, size, "%.*s/%s", (int)(slash - file), file, dir);
}

static int count_lines(const char *text, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

int pl_model_series_read(const char *file, pl_model_entry **out, int *n_out)
{
    char *text = NULL;
    size_t len = 0;
    if (pl_read_file(file, MAX_SERIES_BYTES, &text, &len) != PL_OK)
        return pl_fail_prefix("[model] paths");
    if (memchr(text, '\0', len)) {
        free(text);
        return pl_fail("[model] paths %s: a NUL byte (not a text file)", file);
    }
    int cap = count_lines(text, len), n = 0, rc = PL_OK, line_no = 0;
    pl_model_entry *models = calloc((size_t)cap, sizeof *models);
    if (!models)
        rc = pl_fail("out of memory (model series)");
    /* a UTF-8 byte order mark (editors on Windows write one) is not part of the first dir */
    char *first = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? text + 3 : text;
    for (char *line = first, *next; rc == PL_OK && line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char where[4200], *dir, *label, path[4096];
        int64_t step;
        int got;
        snprintf(where, sizeof where, "[model] paths %s:%d", file, ++line_no);
        rc = parse_line(line, where, &dir, &label, &step, &got);
        if (rc == PL_OK && got) {
            relative_to(file, dir, path, sizeof path);
            rc = set_entry(models, n, path, label, step, where);
            n += rc == PL_OK;
        }
    }
    free(text);
    if (rc == PL_OK && n == 0)
        rc = pl_fail("[model] paths %s: no model (one dir a line: DIR [label=LABEL] [step=N])", file);
    if (rc != PL_OK) {
        pl_model_series_free(models, cap);
        return PL_ERR;
    }
    *out = models;
    *n_out = n;
    return PL_OK;
}

/* Whether two models are of one family and shape: the fields a series' result must share (its
 * dimensions, hooks and units are the same for every model). WHAT: the first field that differs. */
static int same_shape(const pl_model_info *a, const pl_model_info *b, char *what, size_t size)
{
    if (strcmp(a->family, b->family) || strcmp(a->format, b->format)) {
        snprintf(what, size, "family %s (%s), but %s (%s)", b->family, b->format, a->family, a->format);
        return 0;
    }
    const struct { const char *name; int x, y; } f[] = {
        {"layers", a->n_layer, b->n_layer},     {"residual width", a->d_model, b->d_model},
        {"heads", a->n_head, b->n_head},        {"key/value heads", a->n_kv_head, b->n_kv_head},
        {"head width", a->head_dim, b->head_dim}, {"MLP width", a->d_mlp, b->d_mlp},
        {"vocabulary", a->n_vocab, b->n_vocab}, {"context", a->n_ctx, b->n_ctx},
        {"norm", a->norm, b->norm},             {"synthetic", a->synthetic, b->synthetic},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].x != f[i].y) {
            snprintf(what, size, "%s %d, but %d", f[i].name, f[i].y, f[i].x);
            return 0;
        }
    return 1;
}

int pl_model_series_check(const pl_sweep_config *cfg)
{
    const char *origin = pl_sweep_config_origin(cfg, "model", cfg->models_file ? "paths" : "path");
    pl_model *first = NULL;
    int rc = PL_OK;
    for (int k = 0; k < cfg->n_models && rc == PL_OK; k++) {
        const pl_model_entry *e = &cfg->models[k];
        pl_model *m = NULL;
        char what[256];
        if (pl_model_open(&m, e->path) != PL_OK)
            rc = pl_fail_prefix("%s: model %d '%s' (%s)", origin, k + 1, e->label, e->path);
        else if (first && !same_shape(pl_model_get_info(first), pl_model_get_info(m), what, sizeof what))
            rc = pl_fail("%s: model %d '%s' (%s) has %s of model 1 '%s' (%s): a series is models of one family and "
                         "shape", origin, k + 1, e->label, e->path, what, cfg->models[0].label, cfg->models[0].path);
        if (!first)
            first = m;
        else
            pl_model_close(m);
    }
    pl_model_close(first);
    return rc;
}

/* BASE.model-K[EXT], malloc'ed: model K's own file beside the series' */
static char *model_file(const char *base, int k, const char *ext)
{
    size_t len = strlen(base) + strlen(ext) + 32;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s.model-%d%s", base, k, ext);
    return p;
}

char *pl_model_series_part(const pl_sweep_config *cfg, int k) { return model_file(cfg->output_path, k, ".nc"); }

char *pl_model_series_checkpoint(const pl_sweep_config *cfg, int k) { return model_file(cfg->checkpoint_path, k, ""); }

/* "model.path=DIR" ...: the --set overrides that make model K's run of a series a single-model run
 * (SETS, then these), malloc'ed into ARGS->texts and listed in ARGS->sets. */
int pl_model_series_sets(const pl_sweep_config *cfg, int k, char *const *sets, int n_sets, pl_series_args *a)
{
    memset(a, 0, sizeof *a);
    const pl_model_entry *e = &cfg->models[k];
    a->sets = calloc((size_t)n_sets + 5, sizeof *a->sets);
    size_t len = strlen(e->path) + strlen(e->label) + strlen(cfg->checkpoint_path) + 160;
    a->text = malloc(len);
    if (!a->sets || !a->text)
        return pl_fail("out of memory (model series)");
    for (int s = 0; s < n_sets; s++)
        a->sets[a->n_sets++] = sets[s];
    char *p = a->text, step[32] = "";
    if (e->step >= 0)
        snprintf(step, sizeof step, "%lld", (long long)e->step);
    int n = snprintf(p, len, "model.paths=") + 1;
    n += snprintf(p + n, len - (size_t)n, "model.path=%s", e->path) + 1;
    n += snprintf(p + n, len - (size_t)n, "model.label=%s", e->label) + 1;
    n += snprintf(p + n, len - (size_t)n, "model.step=%s", step) + 1;
    char *ckpt = pl_model_series_checkpoint(cfg, k);
    if (!ckpt)
        return pl_fail("out of memory (model series)");
    snprintf(p + n, len - (size_t)n, "run.checkpoint=%s", ckpt);
    free(ckpt);
    for (int j = 0; j < 5; j++, p += strlen(p) + 1)
        a->sets[a->n_sets++] = p;
    return PL_OK;
}

void pl_series_args_free(pl_series_args *a)
{
    free(a->sets);
    free(a->text);
    memset(a, 0, sizeof *a);
}
