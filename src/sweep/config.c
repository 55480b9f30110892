/* The sweep's INI config: one table of keys with defaults, parsed by libinih, validated strictly.
 * It is plateau's one config resolver: `plateau run`, `plateau config` (and through it the Slurm
 * scripts) and `plateau merge` (the `config` attribute of result files) all read configs here.
 *
 * The file is read whole (a regular file of bounded size) and handed to libinih line by line
 * through ini_parse_stream with a reader that counts the lines: the handler for a key runs right
 * after its line was read, so the count is the key's line. libinih as packaged reads at most
 * INI_MAX_LINE - 1 characters of a line into a fixed buffer; a longer line (a long path) is handed
 * over cut, and its value is then taken from the full line by libinih's own rule (after the first
 * '=' or ':', up to an inline ';' comment, trimmed), so no value is ever silently shortened.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/forward.h"
#include "plateau/sweep.h"
#include "sweep_internal.h"

typedef struct {
    const char *section, *key, *def;
    int hashed; /* part of the checkpoint's config hash */
} key_spec;

/* The order here is the order of the resolved text. "" = no default (required, or derived). */
static const key_spec KEYS[] = {
    {"model", "path", "", 0},
    {"model", "tokenizer", "", 0},
    {"data", "prompts", "", 1},
    {"data", "format", "auto", 1},
    {"data", "n_prompts", "1000", 1},
    {"data", "n_ctx", "10", 1},
    {"data", "seed", "0", 1},
    {"data", "sampling", "document_start", 1},
    {"data", "token_dtype", "uint16", 1},
    {"data", "bos", "auto", 1},
    {"perturb", "hook", "blocks.1.hook_resid_pre", 1},
    {"perturb", "position", "-1", 1},
    {"perturb", "bases", "real", 1},
    {"perturb", "directions", "cov_random", 1},
    {"perturb", "n_directions", "1", 1},
    {"perturb", "steps", "101", 1},
    {"perturb", "alpha_max", "1.0", 1},
    {"perturb", "step_mode", "to_target", 1},
    {"perturb", "center_direction", "false", 1},
    {"perturb", "residual_basis", "raw", 1},
    {"perturb", "cov_prompts", "1000", 1},
    {"readout", "metrics", "kl, jsd, l2, cosine", 1},
    {"readout", "read_hook", "", 1},
    {"readout", "position", "perturbed", 1},
    {"readout", "onset_threshold", "0.1", 1},
    {"readout", "thresholds", "kl:0.01, cosine:0.01, js_dist:0.1, ce_loss:0.1", 1},
    {"readout", "nonlinearity", "1, 10, 0.1", 1},
    {"output", "path", "", 0},
    {"output", "raw_curves", "true", 1},
    {"output", "quantiles", "0.05, 0.25, 0.75, 0.95", 1},
    {"output", "activations", "false", 1},
    {"output", "bootstrap", "2000", 1},
    {"output", "histogram_bins", "20", 1},
    {"sae", "path", "", 0},
    {"sae", "sha256", "", 1},
    {"sae", "active_fraction", "0.1", 1},
    {"sae", "sign", "negative", 1},
    {"run", "seed", "0", 1},
    {"run", "checkpoint_every", "300", 0},
    {"run", "checkpoint", "", 0},
    {"run", "worker_timeout", "10", 0},
    {"run", "threads", "1", 1},
    {"run", "nonfinite", "error", 1},
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
_Static_assert(N_KEYS <= (int)(sizeof ((pl_sweep_config *)0)->origin / sizeof(char *)), "pl_sweep_config.origin holds every key");
static const char *SECTIONS = "model, data, perturb, readout, output, sae, run";

typedef struct {
    char *value[N_KEYS];
    char *origin[N_KEYS]; /* "FILE:LINE" or "--set s.k=v" */
    const char *file;
    const char *text;     /* the whole config */
    size_t len, pos;      /* its length; where the next line starts */
    const char *line_text; /* the line libinih has now, in full */
    size_t line_len;
    int line_cut;         /* libinih got it cut to its buffer */
    int line;
    int failed;
} raw_config;

static char *dupstr(const char *s)
{
    char *d = pl_malloc(strlen(s) + 1, "config string");
    if (d)
        strcpy(d, s);
    return d;
}

static char *fmt_alloc(const char *fmt, const char *a, long n)
{
    size_t len = strlen(fmt) + strlen(a) + 32;
    char *s = pl_malloc(len, "config string");
    if (s)
        snprintf(s, len, fmt, a, n);
    return s;
}

static int find_key(const char *section, const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].key, key))
            return i;
    return -1;
}

static int section_known(const char *section)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section))
            return 1;
    return 0;
}

static void keys_of(const char *section, char *out, size_t size)
{
    out[0] = '\0';
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section)) {
            if (out[0])
                strncat(out, ", ", size - strlen(out) - 1);
            strncat(out, KEYS[i].key, size - strlen(out) - 1);
        }
}

/* Record the value of (section, key) from ORIGIN; the first problem wins. */
static int set_raw(raw_config *rc, const char *origin, const char *section, const char *key, const char *value,
                   int allow_repeat)
{
    if (!section_known(section))
        return pl_fail("%s: [%s]: unknown section (sections: %s)", origin, section, SECTIONS);
    int i = find_key(section, key);
    if (i < 0) {
        char keys[512];
        keys_of(section, keys, sizeof keys);
        return pl_fail("%s: [%s] %s: unknown key (keys of [%s]: %s)", origin, section, key, section, keys);
    }
    if (rc->origin[i] && !allow_repeat)
        return pl_fail("%s: [%s] %s: given twice (first at %s)", origin, section, key, rc->origin[i]);
    /* every value must survive being written back as INI (the resolved text in outputs, checkpoints,
     * plateau config): a ';' at its start or after a blank would read back as a comment */
    for (const char *p = value; *p; p++)
        if (*p == ';' && (p == value || isspace((unsigned char)p[-1])))
            return pl_fail("%s: [%s] %s: '%s': a ';' %s starts an INI comment; plateau cannot store it", origin,
                           section, key, value, p == value ? "at the start of a value" : "after a blank");
    free(rc->value[i]);
    free(rc->origin[i]);
    rc->value[i] = dupstr(value);
    rc->origin[i] = dupstr(origin);
    return rc->value[i] && rc->origin[i] ? PL_OK : PL_ERR;
}

/* ini_parse_stream's reader: the next line of the text, cut to libinih's buffer of NUM bytes
 * when longer (the handler then reads the value from the full line). */
static char *line_reader(char *str, int num, void *stream)
{
    raw_config *rc = stream;
    if (rc->pos >= rc->len || num < 3)
        return NULL;
    const char *start = rc->text + rc->pos;
    const char *nl = memchr(start, '\n', rc->len - rc->pos);
    size_t with_nl = nl ? (size_t)(nl - start) + 1 : rc->len - rc->pos;
    rc->pos += with_nl;
    rc->line++;
    rc->line_text = start;
    rc->line_len = nl ? with_nl - 1 : with_nl;
    rc->line_cut = with_nl > (size_t)num - 1;
    size_t n = rc->line_cut ? (size_t)num - 2 : with_nl;
    memcpy(str, start, n);
    if (rc->line_cut)
        str[n++] = '\n';
    str[n] = '\0';
    return str;
}

/* libinih's find_chars_or_comment: the first of CHARS (any char when NULL) or of an inline ';'
 * comment (a ';' after whitespace), or END. */
static const char *find_chars_or_comment(const char *s, const char *end, const char *chars)
{
    int was_space = 0;
    while (s < end && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* The value of the current line as libinih would give it with an unlimited buffer. */
static char *full_line_value(const raw_config *rc)
{
    const char *s = rc->line_text, *end = s + rc->line_len;
    const char *eq = find_chars_or_comment(s, end, "=:");
    const char *v = eq < end ? eq + 1 : end;
    const char *v_end = find_chars_or_comment(v, end, NULL);
    while (v < v_end && isspace((unsigned char)*v))
        v++;
    while (v_end > v && isspace((unsigned char)v_end[-1]))
        v_end--;
    char *out = pl_malloc((size_t)(v_end - v) + 1, "config value");
    if (out) {
        memcpy(out, v, (size_t)(v_end - v));
        out[v_end - v] = '\0';
    }
    return out;
}

static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
    raw_config *rc = user;
    if (rc->failed)
        return 1;
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:%d", rc->file, rc->line);
    /* libinih reads an indented line as the continuation of the previous key's value */
    const char *first = rc->line_text;
    if (rc->line == 1 && rc->line_len >= 3 && !memcmp(first, "\xEF\xBB\xBF", 3))
        first += 3;
    if (*first == ' ' || *first == '\t') {
        pl_fail("%s: indented line: libinih reads it as a continuation of [%s] %s; write every key = value "
                "at the start of its own line",
                origin, section, name);
        rc->failed = 1;
        return 0;
    }
    char *full = rc->line_cut ? full_line_value(rc) : NULL;
    if ((rc->line_cut && !full) || set_raw(rc, origin, section, name, full ? full : value, 0) != PL_OK) {
        free(full);
        rc->failed = 1;
        return 0;
    }
    free(full);
    return 1;
}

/* ------------------------------------------------------------ value parsers */

static const char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

#define FAIL_KEY(i, ...) key_fail(rc, i, __VA_ARGS__)
static int key_fail(const raw_config *rc, int i, const char *fmt, ...) PL_PRINTF(3, 4);
static int key_fail(const raw_config *rc, int i, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pl_fail("%s: [%s] %s: %s", rc->origin[i] ? rc->origin[i] : rc->file, KEYS[i].section, KEYS[i].key,
                   what);
}

static int parse_long(const raw_config *rc, int i, long lo, long hi, long *out)
{
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == s || *end || v < lo || v > hi)
        return FAIL_KEY(i, "'%s' is not an integer in [%ld, %ld]", s, lo, hi);
    *out = v;
    return PL_OK;
}

static int parse_int(const raw_config *rc, int i, long lo, long hi, int *out)
{
    long v = 0;
    if (parse_long(rc, i, lo, hi, &v) != PL_OK)
        return PL_ERR;
    *out = (int)v;
    return PL_OK;
}

static int parse_u64(const raw_config *rc, int i, uint64_t *out)
{
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return FAIL_KEY(i, "'%s' is not a non-negative integer", s);
    *out = (uint64_t)v;
    return PL_OK;
}

static int parse_double(const raw_config *rc, int i, double lo, double hi, int lo_open, double *out)
{
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
        return FAIL_KEY(i, "'%s' is not a number in %s%g, %g]", s, lo_open ? "(" : "[", lo, hi);
    *out = v;
    return PL_OK;
}

static int parse_bool(const raw_config *rc, int i, int *out)
{
    const char *s = rc->value[i];
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
        *out = 0;
    else
        return FAIL_KEY(i, "'%s' is not a boolean (true or false)", s);
    return PL_OK;
}

/* Split VALUE on commas (and, when SPACES, whitespace) into at most MAX trimmed items. */
static int split_list(const raw_config *rc, int i, int spaces, char **items, int max, int *n, char *buf,
                      size_t bufsize)
{
    snprintf(buf, bufsize, "%s", rc->value[i]);
    *n = 0;
    const char *seps = spaces ? ", \t" : ",";
    for (char *save = NULL, *tok = strtok_r(buf, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
        char *t = (char *)trim(tok);
        if (!*t)
            continue;
        if (*n == max)
            return FAIL_KEY(i, "more than %d items", max);
        items[(*n)++] = t;
    }
    if (*n == 0)
        return FAIL_KEY(i, "empty list");
    return PL_OK;
}

static int parse_enum_list(const raw_config *rc, int i, const char *const *names, int n_names, int *out, int *n)
{
    char buf[1024], *items[16];
    if (split_list(rc, i, 1, items, 16, n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < *n; k++) {
        int found = -1;
        for (int j = 0; j < n_names; j++)
            if (!strcmp(items[k], names[j]))
                found = j;
        if (found < 0) {
            char allowed[256] = "";
            for (int j = 0; j < n_names; j++)
                snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", j ? ", " : "",
                         names[j]);
            return FAIL_KEY(i, "'%s' is not one of %s", items[k], allowed);
        }
        for (int j = 0; j < k; j++)
            if (out[j] == found)
                return FAIL_KEY(i, "'%s' is listed twice", items[k]);
        out[k] = found;
    }
    return PL_OK;
}

/* Exactly one of NAMES. */
static int parse_enum_one(const raw_config *rc, int i, const char *const *names, int n_names, int *out)
{
    int n, v[16];
    if (parse_enum_list(rc, i, names, n_names, v, &n) != PL_OK)
        return PL_ERR;
    if (n != 1) {
        char allowed[256] = "";
        for (int j = 0; j < n_names; j++)
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", j ? ", " : "", names[j]);
        return FAIL_KEY(i, "expected one of %s", allowed);
    }
    *out = v[0];
    return PL_OK;
}

static int parse_directions(const raw_config *rc, int i, pl_sweep_config *cfg)
{
    char buf[4096], *items[PL_MAX_DIRECTIONS];
    int n;
    if (split_list(rc, i, 0, items, PL_MAX_DIRECTIONS, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < n; k++) {
        pl_direction_spec *d = &cfg->dirs[k];
        const char *item = items[k];
        d->kind = strcmp(item, "file") ? pl_direction_kind_find(item) : -1;
        if (d->kind >= 0) {
            d->label = dupstr(item);
        } else if (!strncmp(item, "file:", 5) && item[5]) {
            d->kind = pl_direction_kind_find("file");
            d->path = dupstr(item + 5);
            if (!d->path)
                return PL_ERR;
            char *hash = strchr(d->path, '#');
            if (hash) {
                *hash = '\0';
                d->tensor = dupstr(hash + 1);
                if (!d->tensor[0] || !d->path[0])
                    return FAIL_KEY(i, "'%s': expected file:PATH or file:PATH#TENSOR", item);
            }
            const char *base = strrchr(d->path, '/');
            base = base ? base + 1 : d->path;
            size_t len = strlen(base) + (d->tensor ? strlen(d->tensor) + 1 : 0) + 6;
            d->label = pl_malloc(len, "direction label");
            if (!d->label)
                return PL_ERR;
            snprintf(d->label, len, "file:%s%s%s", base, d->tensor ? "#" : "", d->tensor ? d->tensor : "");
        } else {
            return FAIL_KEY(i, "'%s' is not one of %s", item, pl_direction_kind_names());
        }
        if (!d->label)
            return PL_ERR;
        for (int j = 0; j < k; j++)
            if (!strcmp(cfg->dirs[j].label, d->label))
                return FAIL_KEY(i, "'%s' is listed twice", d->label);
        cfg->n_dirs = k + 1;
    }
    return PL_OK;
}

static int parse_quantiles(const raw_config *rc, int i, pl_sweep_config *cfg)
{
    char buf[1024], *items[PL_MAX_QUANTILES];
    int n;
    if (split_list(rc, i, 1, items, PL_MAX_QUANTILES, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < n; k++) {
        char *end;
        errno = 0;
        double q = strtod(items[k], &end);
        if (errno || end == items[k] || *end || !(q >= 0.0 && q <= 1.0))
            return FAIL_KEY(i, "'%s' is not a number in [0, 1]", items[k]);
        if (k > 0 && !(q > cfg->quantiles[k - 1]))
            return FAIL_KEY(i, "quantiles must be strictly increasing ('%s' after %g)", items[k],
                            cfg->quantiles[k - 1]);
        cfg->quantiles[k] = q;
    }
    cfg->n_quantiles = n;
    return PL_OK;
}

static int metric_index(const char *name)
{
    for (int m = 0; m < PL_N_METRICS; m++)
        if (!strcmp(PL_METRICS[m].name, name))
            return m;
    return -1;
}

/* "metric:value, ..." over the defaults: a named metric gets the value ("none": no threshold). */
static int parse_thresholds(const raw_config *rc, int i, pl_sweep_config *cfg)
{
    for (int m = 0; m < PL_N_METRICS; m++)
        cfg->thresholds[m] = NAN;
    const char *texts[2] = {KEYS[i].def, rc->value[i]};
    for (int pass = 0; pass < 2; pass++) {
        char buf[1024], *items[PL_N_METRICS * 2];
        int n;
        raw_config one = *rc;
        char *saved = one.value[i];
        one.value[i] = (char *)texts[pass];
        int ok = split_list(&one, i, 1, items, PL_N_METRICS * 2, &n, buf, sizeof buf);
        one.value[i] = saved;
        if (ok != PL_OK)
            return PL_ERR;
        for (int k = 0; k < n; k++) {
            char *colon = strchr(items[k], ':');
            if (!colon)
                return FAIL_KEY(i, "'%s': expected metric:value (e.g. kl:0.01)", items[k]);
            *colon = '\0';
            int m = metric_index(items[k]);
            if (m < 0)
                return FAIL_KEY(i, "'%s' is not a metric", items[k]);
            const char *v = trim(colon + 1);
            if (!strcmp(v, "none")) {
                cfg->thresholds[m] = NAN;
                continue;
            }
            char *end;
            errno = 0;
            double t = strtod(v, &end);
            if (errno || end == v || *end || !isfinite(t) || !(t > 0.0))
                return FAIL_KEY(i, "%s:'%s' is not a positive number (or none)", items[k], v);
            cfg->thresholds[m] = t;
        }
    }
    return PL_OK;
}

/* "first, last, tolerance" of nonlinearity_alpha. */
static int parse_nonlinearity(const raw_config *rc, int i, pl_sweep_config *cfg)
{
    char buf[256], *items[3];
    int n;
    if (split_list(rc, i, 1, items, 3, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    char *e0, *e1, *e2;
    errno = 0;
    long a = n == 3 ? strtol(items[0], &e0, 10) : -1, b = n == 3 ? strtol(items[1], &e1, 10) : -1;
    double tol = n == 3 ? strtod(items[2], &e2) : NAN;
    if (n != 3 || errno || *e0 || *e1 || *e2 || a < 0 || b <= a || b > 100000 || !isfinite(tol) || !(tol > 0.0))
        return FAIL_KEY(i, "'%s' is not 'first, last, tolerance' (steps 0 <= first < last, tolerance > 0)",
                        rc->value[i]);
    cfg->nl_first = (int)a;
    cfg->nl_last = (int)b;
    cfg->nl_tolerance = tol;
    return PL_OK;
}

static int parse_string(const raw_config *rc, int i, char **out)
{
    if (!rc->value[i][0])
        return FAIL_KEY(i, "empty value");
    *out = dupstr(rc->value[i]);
    return *out ? PL_OK : PL_ERR;
}

/* A hook name with its block number written canonically: "blocks.01.hook_resid_pre" is stored as
 * "blocks.1.hook_resid_pre", so one hook has one name in outputs, checkpoints and merges. Names
 * that do not start "blocks.<digits>." are kept as given (the model judges them). */
static int parse_hook(const raw_config *rc, int i, char **out)
{
    const char *s = rc->value[i];
    if (!s[0])
        return FAIL_KEY(i, "empty value");
    if (strncmp(s, "blocks.", 7) || !isdigit((unsigned char)s[7]))
        return (*out = dupstr(s)) ? PL_OK : PL_ERR;
    const char *d = s + 7, *e = d;
    while (isdigit((unsigned char)*e))
        e++;
    if (*e != '.')
        return (*out = dupstr(s)) ? PL_OK : PL_ERR;
    while (d < e - 1 && *d == '0')
        d++;
    if (e - d > 7)
        return FAIL_KEY(i, "'%s': block number %.*s is too large", s, (int)(e - d), d);
    size_t len = strlen(s) + 1;
    *out = pl_malloc(len, "hook name");
    if (!*out)
        return PL_ERR;
    snprintf(*out, len, "blocks.%.*s%s", (int)(e - d), d, e);
    return PL_OK;
}

/* ------------------------------------------------------------ load */

static int K(const char *section, const char *key) { return find_key(section, key); }

static int convert(raw_config *rc, pl_sweep_config *cfg, const char *output)
{
    int i;
    /* [model] */
    i = K("model", "path");
    if (!rc->value[i])
        return pl_fail("%s: [model] path: missing (the model dir, e.g. models/gpt2)", rc->file);
    if (parse_string(rc, i, &cfg->model_path) != PL_OK)
        return PL_ERR;
    i = K("model", "tokenizer");
    if (rc->value[i] && rc->value[i][0] && parse_string(rc, i, &cfg->tokenizer_path) != PL_OK)
        return PL_ERR;
    /* [data] */
    i = K("data", "prompts");
    if (!rc->value[i])
        return pl_fail("%s: [data] prompts: missing (a .jsonl, .txt or uint16 .bin file)", rc->file);
    if (parse_string(rc, i, &cfg->data_path) != PL_OK)
        return PL_ERR;
    static const char *const formats[] = {"auto", "jsonl", "text", "bin"};
    static const char *const samplings[] = {"document_start", "random_window"};
    static const char *const dtypes[] = {"uint16", "uint32"};
    static const char *const bos_modes[] = {"auto", "true", "false"};
    int dtype;
    if (parse_enum_one(rc, K("data", "format"), formats, 4, &cfg->data_format) != PL_OK ||
        parse_int(rc, K("data", "n_prompts"), 2, 10000000, &cfg->n_prompts) != PL_OK ||
        parse_int(rc, K("data", "n_ctx"), 1, 1000000, &cfg->n_ctx) != PL_OK ||
        parse_u64(rc, K("data", "seed"), &cfg->data_seed) != PL_OK ||
        parse_enum_one(rc, K("data", "sampling"), samplings, 2, &cfg->sampling) != PL_OK ||
        parse_enum_one(rc, K("data", "token_dtype"), dtypes, 2, &dtype) != PL_OK ||
        parse_enum_one(rc, K("data", "bos"), bos_modes, 3, &cfg->bos) != PL_OK)
        return PL_ERR;
    cfg->token_bytes = dtype ? 4 : 2;
    if (cfg->data_format == PL_DATA_AUTO) { /* by extension: .jsonl, .bin, else plain text */
        size_t len = strlen(cfg->data_path);
        cfg->data_format = len >= 6 && !strcmp(cfg->data_path + len - 6, ".jsonl") ? PL_DATA_JSONL
                           : len >= 4 && !strcmp(cfg->data_path + len - 4, ".bin") ? PL_DATA_BIN
                                                                                   : PL_DATA_TEXT;
    }
    /* [perturb] */
    static const char *const bases[] = {"real", "synthetic"};
    static const char *const modes[] = {"to_target", "fixed_norm", "absolute"};
    static const char *const bases_of_residual[] = {"raw", "centered"};
    if (parse_hook(rc, K("perturb", "hook"), &cfg->hook) != PL_OK ||
        parse_int(rc, K("perturb", "position"), -1000000, 1000000, &cfg->position) != PL_OK ||
        parse_enum_list(rc, K("perturb", "bases"), bases, 2, cfg->bases, &cfg->n_bases) != PL_OK ||
        parse_directions(rc, K("perturb", "directions"), cfg) != PL_OK ||
        parse_int(rc, K("perturb", "n_directions"), 1, 1000000, &cfg->n_directions) != PL_OK ||
        parse_int(rc, K("perturb", "steps"), 2, 100000, &cfg->steps) != PL_OK ||
        parse_double(rc, K("perturb", "alpha_max"), 0.0, 1e6, 1, &cfg->alpha_max) != PL_OK ||
        parse_enum_one(rc, K("perturb", "step_mode"), modes, 3, &cfg->step_mode) != PL_OK ||
        parse_bool(rc, K("perturb", "center_direction"), &cfg->center_direction) != PL_OK ||
        parse_enum_one(rc, K("perturb", "residual_basis"), bases_of_residual, 2, &cfg->residual_basis) != PL_OK)
        return PL_ERR;
    if (parse_int(rc, K("perturb", "cov_prompts"), 2, 10000000, &cfg->cov_prompts) != PL_OK)
        return PL_ERR;
    /* [readout] */
    const char *metrics[PL_N_METRICS];
    for (int m = 0; m < PL_N_METRICS; m++)
        metrics[m] = PL_METRICS[m].name;
    if (parse_enum_list(rc, K("readout", "metrics"), metrics, PL_N_METRICS, cfg->metrics, &cfg->n_metrics) != PL_OK)
        return PL_ERR;
    i = K("readout", "position");
    if (!strcmp(rc->value[i], "perturbed"))
        cfg->read_position = PL_READ_AT_PERTURBED;
    else {
        char *end;
        errno = 0;
        long v = strtol(rc->value[i], &end, 10);
        if (errno || end == rc->value[i] || *end || v < -1000000 || v > 1000000)
            return FAIL_KEY(i, "'%s' is not 'perturbed' or a position (negative: from the end)", rc->value[i]);
        cfg->read_position = (int)v;
    }
    i = K("readout", "read_hook");
    if (rc->value[i] && rc->value[i][0] && parse_hook(rc, i, &cfg->read_hook) != PL_OK)
        return PL_ERR;
    if (parse_double(rc, K("readout", "onset_threshold"), 0.0, 1.0, 1, &cfg->onset_threshold) != PL_OK ||
        parse_thresholds(rc, K("readout", "thresholds"), cfg) != PL_OK ||
        parse_nonlinearity(rc, K("readout", "nonlinearity"), cfg) != PL_OK)
        return PL_ERR;
    /* [output] */
    i = K("output", "path");
    if (output && !output[0]) {
        return pl_fail("-o: the output path is empty");
    } else if (output) {
        cfg->output_path = dupstr(output);
        free(rc->origin[i]); /* messages about the output name where it came from */
        rc->origin[i] = dupstr("-o");
    } else if (rc->value[i] && rc->value[i][0]) {
        cfg->output_path = dupstr(rc->value[i]);
    } else {
        /* default: <config stem>.nc in the current directory */
        const char *base = strrchr(rc->file, '/');
        base = base ? base + 1 : rc->file;
        size_t len = strlen(base);
        if (len > 4 && !strcmp(base + len - 4, ".ini"))
            len -= 4;
        cfg->output_path = pl_malloc(len + 4, "output path");
        if (cfg->output_path)
            snprintf(cfg->output_path, len + 4, "%.*s.nc", (int)len, base);
    }
    if (!cfg->output_path)
        return PL_ERR;
    if (parse_bool(rc, K("output", "raw_curves"), &cfg->raw_curves) != PL_OK ||
        parse_quantiles(rc, K("output", "quantiles"), cfg) != PL_OK ||
        parse_bool(rc, K("output", "activations"), &cfg->activations) != PL_OK ||
        parse_int(rc, K("output", "bootstrap"), 0, 1000000, &cfg->bootstrap) != PL_OK ||
        parse_int(rc, K("output", "histogram_bins"), 1, 100000, &cfg->histogram_bins) != PL_OK)
        return PL_ERR;
    /* [sae] */
    static const char *const signs[] = {"negative", "positive"};
    i = K("sae", "path");
    if (rc->value[i] && rc->value[i][0] && parse_string(rc, i, &cfg->sae_path) != PL_OK)
        return PL_ERR;
    i = K("sae", "sha256");
    if (rc->value[i] && rc->value[i][0]) {
        const char *h = rc->value[i];
        if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
            return FAIL_KEY(i, "'%s' is not a sha256 (64 lowercase hex digits)", h);
        if (parse_string(rc, i, &cfg->sae_sha256) != PL_OK)
            return PL_ERR;
    }
    i = K("sae", "active_fraction");
    if (parse_double(rc, i, 0.0, 1.0, 0, &cfg->sae_active_fraction) != PL_OK)
        return PL_ERR;
    if (cfg->sae_active_fraction >= 1.0)
        return FAIL_KEY(i, "'%s' is not a fraction in [0, 1) of the base's largest feature activation", rc->value[i]);
    if (parse_enum_one(rc, K("sae", "sign"), signs, 2, &cfg->sae_sign) != PL_OK)
        return PL_ERR;
    /* what the direction kinds and metrics need of the rest of the config */
    const char *which = NULL;
    if (pl_experiment_check_config(cfg, &which) != PL_OK) {
        const char *section = !strcmp(which, "metrics") ? "readout" : !strcmp(which, "path") ? "sae" : "perturb";
        return pl_fail_prefix("%s: [%s] %s", rc->origin[K(section, which)] ? rc->origin[K(section, which)] : rc->file,
                              section, which);
    }
    /* [run] */
    if (parse_u64(rc, K("run", "seed"), &cfg->seed) != PL_OK ||
        parse_double(rc, K("run", "checkpoint_every"), 0.0, 1e9, 1, &cfg->checkpoint_every) != PL_OK ||
        parse_double(rc, K("run", "worker_timeout"), 0.0, 1e9, 1, &cfg->worker_timeout) != PL_OK ||
        parse_int(rc, K("run", "threads"), 1, 1024, &cfg->threads) != PL_OK)
        return PL_ERR;
    static const char *const nonfinite[] = {"error", "mark"};
    if (parse_enum_one(rc, K("run", "nonfinite"), nonfinite, 2, &cfg->nonfinite_mark) != PL_OK)
        return PL_ERR;
    i = K("run", "checkpoint");
    if (rc->value[i] && rc->value[i][0])
        cfg->checkpoint_path = dupstr(rc->value[i]);
    else
        cfg->checkpoint_path = fmt_alloc("%s.ckpt", cfg->output_path, 0);
    if (!cfg->checkpoint_path)
        return PL_ERR;
    return PL_OK;
}

/* The longest config plateau reads: far above any real one (a few hundred bytes). */
#define MAX_CONFIG_BYTES ((size_t)1 << 20)

int pl_sweep_config_load(pl_sweep_config *cfg, const char *path, char *const *sets, int n_sets, const char *output)
{
    char *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    if (pl_read_file(path, MAX_CONFIG_BYTES, &text, &len) != PL_OK)
        return pl_fail_prefix("config");
    int rc = pl_sweep_config_parse(cfg, path, text, len, sets, n_sets, output);
    free(text);
    return rc;
}

int pl_sweep_config_parse(pl_sweep_config *cfg, const char *name, const char *text, size_t len, char *const *sets,
                          int n_sets, const char *output)
{
    memset(cfg, 0, sizeof *cfg);
    raw_config rc = {0};
    rc.file = name;
    rc.text = text;
    rc.len = len;
    int status = PL_ERR;
    cfg->file = dupstr(name);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        pl_fail("%s:%d: a NUL byte (not a text file)", name, line);
        goto done;
    }
    int bad_line = ini_parse_stream(line_reader, &rc, on_ini_key, &rc);
    if (rc.failed)
        goto done;
    if (bad_line > 0) {
        pl_fail("%s:%d: syntax error (expected [section] or key = value)", name, bad_line);
        goto done;
    }
    if (bad_line < 0) {
        pl_fail("%s: cannot read config", name);
        goto done;
    }
    for (int s = 0; s < n_sets; s++) {
        char origin[1100];
        snprintf(origin, sizeof origin, "--set %s", sets[s]);
        const char *eq = strchr(sets[s], '='), *dot = strchr(sets[s], '.');
        if (!eq || !dot || dot > eq || dot == sets[s] || dot + 1 == eq) {
            pl_fail("%s: expected --set section.key=value", origin);
            goto done;
        }
        char section[256], key[256];
        snprintf(section, sizeof section, "%.*s", (int)(dot - sets[s]), sets[s]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        char *value = dupstr(eq + 1);
        int rcode = value ? set_raw(&rc, origin, section, key, trim(value), 1) : PL_ERR;
        free(value);
        if (rcode != PL_OK)
            goto done;
    }
    for (int i = 0; i < N_KEYS; i++) {
        if (!rc.value[i] && KEYS[i].def[0]) {
            rc.value[i] = dupstr(KEYS[i].def);
            if (!rc.value[i])
                goto done;
        }
    }
    status = convert(&rc, cfg, output);
    for (int i = 0; i < N_KEYS; i++) {
        cfg->origin[i] = rc.origin[i];
        rc.origin[i] = NULL;
    }
done:
    for (int i = 0; i < N_KEYS; i++) {
        free(rc.value[i]);
        free(rc.origin[i]);
    }
    if (status != PL_OK)
        pl_sweep_config_free(cfg);
    return status;
}

void pl_sweep_config_free(pl_sweep_config *cfg)
{
    free(cfg->file);
    free(cfg->model_path);
    free(cfg->tokenizer_path);
    free(cfg->data_path);
    free(cfg->hook);
    for (int d = 0; d < PL_MAX_DIRECTIONS; d++) {
        free(cfg->dirs[d].label);
        free(cfg->dirs[d].path);
        free(cfg->dirs[d].tensor);
    }
    free(cfg->read_hook);
    free(cfg->sae_path);
    free(cfg->sae_sha256);
    free(cfg->output_path);
    free(cfg->checkpoint_path);
    for (int i = 0; i < 64; i++)
        free(cfg->origin[i]);
    memset(cfg, 0, sizeof *cfg);
}

const char *pl_sweep_config_origin(const pl_sweep_config *cfg, const char *section, const char *key)
{
    int i = find_key(section, key);
    return cfg->origin[i] ? cfg->origin[i] : cfg->file;
}

int pl_sweep_config_resolve(pl_sweep_config *cfg, const pl_model *model, int *resid_index, int *read_index,
                            int *pos, int *read_pos)
{
    const pl_model_info *mcfg = pl_model_get_info(model);
    if (pl_hook_parse(model, cfg->hook, resid_index) != PL_OK)
        return pl_fail_prefix("%s: [perturb] hook", pl_sweep_config_origin(cfg, "perturb", "hook"));
    if (*resid_index >= mcfg->n_layer)
        return pl_fail("%s: [perturb] hook: '%s' is the last residual (nothing downstream to perturb)",
                       pl_sweep_config_origin(cfg, "perturb", "hook"), cfg->hook);
    if (!cfg->read_hook) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.hook_resid_post", mcfg->n_layer - 1);
        cfg->read_hook = dupstr(name);
        if (!cfg->read_hook)
            return PL_ERR;
    }
    if (pl_hook_parse(model, cfg->read_hook, read_index) != PL_OK)
        return pl_fail_prefix("%s: [readout] read_hook", pl_sweep_config_origin(cfg, "readout", "read_hook"));
    if (cfg->n_ctx > mcfg->n_ctx)
        return pl_fail("%s: [data] n_ctx: %d is more than the model's %d positions",
                       pl_sweep_config_origin(cfg, "data", "n_ctx"), cfg->n_ctx, mcfg->n_ctx);
    int p = cfg->position < 0 ? cfg->n_ctx + cfg->position : cfg->position;
    if (p < 0 || p >= cfg->n_ctx)
        return pl_fail("%s: [perturb] position: %d is outside the prompt (n_ctx = %d: 0..%d, or -1..-%d)",
                       pl_sweep_config_origin(cfg, "perturb", "position"), cfg->position, cfg->n_ctx, cfg->n_ctx - 1,
                       cfg->n_ctx);
    *pos = p;
    int q = cfg->read_position == PL_READ_AT_PERTURBED ? p
            : cfg->read_position < 0                   ? cfg->n_ctx + cfg->read_position
                                                       : cfg->read_position;
    if (q < p || q >= cfg->n_ctx)
        return pl_fail("%s: [readout] position: %d is outside the positions the perturbation at %d can reach "
                       "(%d..%d: causal attention leaves earlier ones unchanged)",
                       pl_sweep_config_origin(cfg, "readout", "position"), cfg->read_position, p, p, cfg->n_ctx - 1);
    *read_pos = q;
    if (cfg->residual_basis == PL_BASIS_CENTERED && mcfg->norm != PL_NORM_LAYERNORM)
        return pl_fail("%s: [perturb] residual_basis: centered is TransformerLens's basis for LayerNorm models; this "
                       "model normalises with RMSNorm, which does not remove the mean (use raw)",
                       pl_sweep_config_origin(cfg, "perturb", "residual_basis"));
    return PL_OK;
}

/* ------------------------------------------------------------ resolved text */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) PL_PRINTF(2, 3);
static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, sb->buf ? sb->cap - sb->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = 1;
            return;
        }
        if (sb->buf && sb->len + (size_t)n < sb->cap) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = (sb->cap ? sb->cap * 2 : 1024) + (size_t)n;
        char *nb = realloc(sb->buf, cap);
        if (!nb) {
            sb->failed = 1;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
}

/* The shortest %g that reads back as the same double (0.1, not 0.10000000000000001). */
static void sb_double(strbuf *sb, double v)
{
    char text[64];
    if (v == floor(v) && fabs(v) < 1e15) {
        sb_printf(sb, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    sb_printf(sb, "%s", text);
}

static void print_value(strbuf *sb, const pl_sweep_config *cfg, int i)
{
    static const char *const base_names[] = {"real", "synthetic"};
    static const char *const format_names[] = {"auto", "jsonl", "text", "bin"};
    const char *s = KEYS[i].section, *k = KEYS[i].key;
#define IS(a, b) (!strcmp(s, a) && !strcmp(k, b))
    if (IS("model", "path"))
        sb_printf(sb, "%s", cfg->model_path);
    else if (IS("model", "tokenizer"))
        sb_printf(sb, "%s", cfg->tokenizer_path ? cfg->tokenizer_path : "");
    else if (IS("data", "prompts"))
        sb_printf(sb, "%s", cfg->data_path);
    else if (IS("data", "format"))
        sb_printf(sb, "%s", format_names[cfg->data_format]);
    else if (IS("data", "n_prompts"))
        sb_printf(sb, "%d", cfg->n_prompts);
    else if (IS("data", "n_ctx"))
        sb_printf(sb, "%d", cfg->n_ctx);
    else if (IS("data", "seed"))
        sb_printf(sb, "%llu", (unsigned long long)cfg->data_seed);
    else if (IS("data", "sampling"))
        sb_printf(sb, "%s", cfg->sampling == PL_SAMPLING_RANDOM_WINDOW ? "random_window" : "document_start");
    else if (IS("data", "token_dtype"))
        sb_printf(sb, "%s", cfg->token_bytes == 4 ? "uint32" : "uint16");
    else if (IS("data", "bos"))
        sb_printf(sb, "%s", cfg->bos == PL_BOS_TRUE ? "true" : cfg->bos == PL_BOS_FALSE ? "false" : "auto");
    else if (IS("perturb", "hook"))
        sb_printf(sb, "%s", cfg->hook);
    else if (IS("perturb", "position"))
        sb_printf(sb, "%d", cfg->position);
    else if (IS("perturb", "bases"))
        for (int j = 0; j < cfg->n_bases; j++)
            sb_printf(sb, "%s%s", j ? ", " : "", base_names[cfg->bases[j]]);
    else if (IS("perturb", "directions"))
        for (int j = 0; j < cfg->n_dirs; j++) {
            const pl_direction_spec *d = &cfg->dirs[j];
            if (d->path)
                sb_printf(sb, "%sfile:%s%s%s", j ? ", " : "", d->path, d->tensor ? "#" : "",
                          d->tensor ? d->tensor : "");
            else
                sb_printf(sb, "%s%s", j ? ", " : "", d->label);
        }
    else if (IS("perturb", "n_directions"))
        sb_printf(sb, "%d", cfg->n_directions);
    else if (IS("perturb", "steps"))
        sb_printf(sb, "%d", cfg->steps);
    else if (IS("perturb", "alpha_max"))
        sb_double(sb, cfg->alpha_max);
    else if (IS("perturb", "step_mode"))
        sb_printf(sb, "%s", cfg->step_mode == PL_STEP_TO_TARGET    ? "to_target"
                            : cfg->step_mode == PL_STEP_FIXED_NORM ? "fixed_norm"
                                                                   : "absolute");
    else if (IS("perturb", "center_direction"))
        sb_printf(sb, "%s", cfg->center_direction ? "true" : "false");
    else if (IS("perturb", "residual_basis"))
        sb_printf(sb, "%s", cfg->residual_basis == PL_BASIS_CENTERED ? "centered" : "raw");
    else if (IS("perturb", "cov_prompts"))
        sb_printf(sb, "%d", cfg->cov_prompts);
    else if (IS("readout", "metrics"))
        for (int j = 0; j < cfg->n_metrics; j++)
            sb_printf(sb, "%s%s", j ? ", " : "", PL_METRICS[cfg->metrics[j]].name);
    else if (IS("readout", "read_hook"))
        sb_printf(sb, "%s", cfg->read_hook ? cfg->read_hook : "");
    else if (IS("readout", "position")) {
        if (cfg->read_position == PL_READ_AT_PERTURBED)
            sb_printf(sb, "perturbed");
        else
            sb_printf(sb, "%d", cfg->read_position);
    } else if (IS("readout", "onset_threshold"))
        sb_double(sb, cfg->onset_threshold);
    else if (IS("readout", "thresholds")) {
        for (int m = 0; m < PL_N_METRICS; m++) {
            sb_printf(sb, "%s%s:", m ? ", " : "", PL_METRICS[m].name);
            if (isfinite(cfg->thresholds[m]))
                sb_double(sb, cfg->thresholds[m]);
            else
                sb_printf(sb, "none");
        }
    } else if (IS("readout", "nonlinearity")) {
        sb_printf(sb, "%d, %d, ", cfg->nl_first, cfg->nl_last);
        sb_double(sb, cfg->nl_tolerance);
    }
    else if (IS("output", "path"))
        sb_printf(sb, "%s", cfg->output_path);
    else if (IS("output", "raw_curves"))
        sb_printf(sb, "%s", cfg->raw_curves ? "true" : "false");
    else if (IS("output", "quantiles"))
        for (int j = 0; j < cfg->n_quantiles; j++)
        {
            sb_printf(sb, "%s", j ? ", " : "");
            sb_double(sb, cfg->quantiles[j]);
        }
    else if (IS("output", "activations"))
        sb_printf(sb, "%s", cfg->activations ? "true" : "false");
    else if (IS("output", "bootstrap"))
        sb_printf(sb, "%d", cfg->bootstrap);
    else if (IS("output", "histogram_bins"))
        sb_printf(sb, "%d", cfg->histogram_bins);
    else if (IS("sae", "path"))
        sb_printf(sb, "%s", cfg->sae_path ? cfg->sae_path : "");
    else if (IS("sae", "sha256"))
        sb_printf(sb, "%s", cfg->sae_sha256 ? cfg->sae_sha256 : "");
    else if (IS("sae", "active_fraction"))
        sb_double(sb, cfg->sae_active_fraction);
    else if (IS("sae", "sign"))
        sb_printf(sb, "%s", cfg->sae_sign == PL_SAE_SIGN_POSITIVE ? "positive" : "negative");
    else if (IS("run", "seed"))
        sb_printf(sb, "%llu", (unsigned long long)cfg->seed);
    else if (IS("run", "checkpoint_every"))
        sb_double(sb, cfg->checkpoint_every);
    else if (IS("run", "checkpoint"))
        sb_printf(sb, "%s", cfg->checkpoint_path);
    else if (IS("run", "worker_timeout"))
        sb_double(sb, cfg->worker_timeout);
    else if (IS("run", "threads"))
        sb_printf(sb, "%d", cfg->threads);
    else if (IS("run", "nonfinite"))
        sb_printf(sb, "%s", cfg->nonfinite_mark ? "mark" : "error");
#undef IS
}

char *pl_sweep_config_text(const pl_sweep_config *cfg, int hashed_only)
{
    strbuf sb = {0};
    const char *section = "";
    for (int i = 0; i < N_KEYS; i++) {
        if (hashed_only && !KEYS[i].hashed)
            continue;
        if (strcmp(section, KEYS[i].section)) {
            sb_printf(&sb, "%s[%s]\n", section[0] ? "\n" : "", KEYS[i].section);
            section = KEYS[i].section;
        }
        sb_printf(&sb, "%s = ", KEYS[i].key);
        print_value(&sb, cfg, i);
        sb_printf(&sb, "\n");
    }
    if (sb.failed) {
        free(sb.buf);
        pl_fail("out of memory (config text)");
        return NULL;
    }
    return sb.buf;
}

/* ------------------------------------------------------------ single keys */

int pl_sweep_config_n_keys(void) { return N_KEYS; }

int pl_sweep_config_given(const pl_sweep_config *cfg, int i) { return cfg->origin[i] != NULL; }

void pl_sweep_config_key(int i, const char **section, const char **key, int *hashed)
{
    *section = KEYS[i].section;
    *key = KEYS[i].key;
    *hashed = KEYS[i].hashed;
}

char *pl_sweep_config_value(const pl_sweep_config *cfg, const char *name)
{
    const char *dot = strchr(name, '.');
    for (int i = 0; dot && i < N_KEYS; i++)
        if (strlen(KEYS[i].section) == (size_t)(dot - name) && !strncmp(KEYS[i].section, name, dot - name) &&
            !strcmp(KEYS[i].key, dot + 1)) {
            strbuf sb = {0};
            print_value(&sb, cfg, i);
            sb_printf(&sb, "%s", ""); /* an empty value is "" */
            if (sb.failed) {
                free(sb.buf);
                pl_fail("out of memory (config value)");
                return NULL;
            }
            return sb.buf;
        }
    pl_fail("'%s' is not a config key (section.key, e.g. run.checkpoint)", name);
    return NULL;
}
