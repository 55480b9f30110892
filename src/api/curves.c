/* pl_curves (plateau/plateau.h): one prompt's curves along file directions, computed as a sweep's
 * batch computes them (src/sweep/batches.c, pl_batch_eval): the step vectors by pl_unit_steps_of, the
 * evaluations by pl_patch_eval_groups in a sweep's grouping, the readouts by pl_unit_metrics. The
 * science is src/experiment's; this file only builds the experiment a sweep of one prompt, one real
 * base and one file: direction kind would have. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../experiment/experiment.h"
#include "api_internal.h"
#include "plateau/error.h"
#include "plateau/vecmath.h"

/* What the settings ask for, beyond pl_sweep_config's fields. */
typedef struct {
    pl_sweep_config cfg;
    const char *read_hook; /* NULL: the last block's output; else read_hook_buf */
    char read_hook_buf[128];
    int read_at_perturbed, read_position;
    int next_token, next_token_given;
    char buf[1024];        /* the current setting, split */
} curve_settings;


static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static int parse_choice(const char *key, const char *value, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(value, names[i])) {
            *out = i;
            return PL_OK;
        }
    char expected[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s", i ? (i == n - 1 ? " or " : ", ") : "",
                 names[i]);
    return pl_fail("setting %s = '%s': expected %s", key, value, expected);
}

static int parse_int_value(const char *key, const char *value, int *out)
{
    char *end;
    long v = strtol(value, &end, 10);
    if (!*value || *end || v < -1000000 || v > 1000000)
        return pl_fail("setting %s = '%s': expected an integer", key, value);
    *out = (int)v;
    return PL_OK;
}

/* "kl, jsd": each a metric of PL_METRICS without an SAE, none twice. */
static int parse_metrics(curve_settings *s, char *value)
{
    pl_sweep_config *cfg = &s->cfg;
    cfg->n_metrics = 0;
    /* an empty item (`kl,,jsd`, `kl,`) is refused, as the config's lists refuse it */
    for (char *item = value, *next; item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        char *name = trim(item);
        if (!*name && !next && !cfg->n_metrics)
            break; /* no item at all: "no metric" below */
        if (!*name)
            return pl_fail("setting metrics: item %d of the comma-separated list is empty", cfg->n_metrics + 1);
        int m = 0;
        while (m < PL_N_METRICS && strcmp(PL_METRICS[m].name, name))
            m++;
        if (m == PL_N_METRICS)
            return pl_fail("setting metrics: unknown metric '%s'", name);
        if (PL_METRICS[m].reads & PL_READS_SAE)
            return pl_fail("setting metrics: %s needs an SAE, which only `plateau run` ([sae] path) opens", name);
        for (int k = 0; k < cfg->n_metrics; k++)
            if (cfg->metrics[k] == m)
                return pl_fail("setting metrics: %s is listed twice", name);
        cfg->metrics[cfg->n_metrics++] = m;
    }
    if (cfg->n_metrics == 0)
        return pl_fail("setting metrics: no metric");
    return PL_OK;
}

/* One "key=value" setting. */
static int parse_setting(curve_settings *s, const char *setting)
{
    if (!setting || strlen(setting) >= sizeof s->buf)
        return pl_fail("setting '%.60s': missing or too long", setting ? setting : "(null)");
    strcpy(s->buf, setting);
    char *eq = strchr(s->buf, '=');
    if (!eq)
        return pl_fail("setting '%s': expected key=value", setting);
    *eq = '\0';
    char *key = trim(s->buf), *value = trim(eq + 1);
    pl_sweep_config *cfg = &s->cfg;
    if (!strcmp(key, "step_mode")) {
        if (parse_choice(key, value, PL_STEP_MODE_NAMES, PL_N_STEP_MODES, &cfg->step_mode) != PL_OK)
            return PL_ERR;
        if (cfg->step_mode == PL_STEP_ARC) /* it circles the fitted mean, which a curve call has not */
            return pl_fail("setting step_mode = arc: arc steps around the mean of a sweep's fit; use it in a sweep");
        return PL_OK;
    }
    if (!strcmp(key, "residual_basis"))
        return parse_choice(key, value, PL_RESIDUAL_BASIS_NAMES, PL_N_RESIDUAL_BASES, &cfg->residual_basis);
    if (!strcmp(key, "center_direction")) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            return pl_fail("setting center_direction = '%s': expected true or false", value);
        cfg->center_direction = !strcmp(value, "true");
        return PL_OK;
    }
    if (!strcmp(key, "metrics"))
        return parse_metrics(s, value);
    if (!strcmp(key, "read_hook")) {
        snprintf(s->read_hook_buf, sizeof s->read_hook_buf, "%s", value);
        s->read_hook = s->read_hook_buf;
        return PL_OK;
    }
    if (!strcmp(key, "read_position")) {
        s->read_at_perturbed = !strcmp(value, "perturbed");
        return s->read_at_perturbed ? PL_OK : parse_int_value(key, value, &s->read_position);
    }
    if (!strcmp(key, "next_token")) {
        s->next_token_given = 1;
        return parse_int_value(key, value, &s->next_token);
    }
    return pl_fail("setting '%s': unknown key (step_mode, center_direction, residual_basis, metrics, read_hook, "
                   "read_position, next_token)", key);
}

static int parse_settings(curve_settings *s, const char *const *settings, int n)
{
    memset(s, 0, sizeof *s);
    s->cfg.step_mode = PL_STEP_FIXED_NORM;
    s->cfg.norm_scale = 1.0; /* fixed_norm by |base| itself (the sweep's [perturb] norm_scale default) */
    s->cfg.residual_basis = PL_BASIS_RAW;
    s->cfg.n_metrics = 1;
    s->cfg.metrics[0] = PL_METRIC_KL;
    s->read_at_perturbed = 1;
    for (int i = 0; i < n; i++)
        if (parse_setting(s, settings[i]) != PL_OK)
            return PL_ERR;
    s->cfg.n_bases = 1;
    s->cfg.bases[0] = PL_BASE_REAL;
    s->cfg.n_dirs = 1;
    s->cfg.dirs[0].kind = pl_direction_kind_find("file");
    s->cfg.dirs[0].label = "file";
    return PL_OK;
}

int pl_curves_metric_count(const char *const *settings, int n_settings)
{
    curve_settings s;
    return parse_settings(&s, settings, n_settings) == PL_OK ? s.cfg.n_metrics : -1;
}

/* ------------------------------------------------------------ the unit's geometry */

/* Where a call perturbs and reads, resolved against the model and the prompt. */
typedef struct {
    int resid_index, read_index, pos, read_pos, T_eval, next_token;
} curve_place;

static int resolve_place(const pl_lm *lm, const curve_settings *s, int T, const char *hook, int pos, curve_place *pl)
{
    const pl_model_info *info = pl_model_get_info(lm->model);
    if (pl_lm_hook(lm, hook, &pl->resid_index) != PL_OK || pl_api_position(pos, T, "position", &pl->pos) != PL_OK)
        return PL_ERR;
    pl->read_index = info->n_layer;
    if (s->read_hook && pl_lm_hook(lm, s->read_hook, &pl->read_index) != PL_OK)
        return pl_fail_prefix("setting read_hook");
    pl->read_pos = pl->pos;
    if (!s->read_at_perturbed && pl_api_position(s->read_position, T, "read_position", &pl->read_pos) != PL_OK)
        return PL_ERR;
    if (pl->read_pos < pl->pos)
        return pl_fail("read_position %d is before the perturbed position %d: the perturbation cannot reach it",
                       pl->read_pos, pl->pos);
    if (s->cfg.residual_basis == PL_BASIS_CENTERED && info->norm != PL_NORM_LAYERNORM)
        return pl_fail("residual_basis = centered is TransformerLens's basis for LayerNorm models; this %s model "
                       "normalises with RMSNorm (use raw)", info->family);
    pl->T_eval = pl->read_pos + 1;
    pl->next_token = -1;
    return PL_OK;
}

/* ------------------------------------------------------------ evaluation */

/* Everything one call evaluates with. */
typedef struct {
    pl_experiment ex;
    const pl_lm *lm;
    const pl_run *clean;
    curve_place place;
    int D, S;
    float *X, *logits, *read; /* [units * S, C], [.., V], [.., C] of one fast-path call */
    const pl_run **cleans;
    int *group_rows;
    void *scratch;
} curve_job;

/* Non-finite inputs or outputs of direction I's rows (of the call's rows starting at ROW0). */
static int check_rows(const curve_job *j, int i, size_t row0, int outputs)
{
    int C = j->ex.C, V = j->ex.V;
    for (int k = 0; k < j->S; k++) {
        size_t row = row0 + (size_t)k;
        const char *what = NULL;
        if (!outputs && pl_vec_first_nonfinite(j->X + row * C, (size_t)C) >= 0)
            what = "the step vector (base + alpha x direction)";
        else if (outputs && pl_vec_first_nonfinite(j->logits + row * V, (size_t)V) >= 0)
            what = "a logit";
        else if (outputs && pl_vec_first_nonfinite(j->read + row * C, (size_t)C) >= 0)
            what = "the residual at the read hook";
        if (what)
            return pl_fail("direction %d, alpha = %g: %s is not finite", i, j->ex.alpha[k], what);
    }
    return PL_OK;
}

/* Directions FIRST .. FIRST+N-1: one pl_patch_eval_groups call, then each unit's metrics into OUT. */
static int eval_units(curve_job *j, int first, int n, float *out)
{
    int C = j->ex.C, V = j->ex.V, S = j->S, NM = j->ex.cfg->n_metrics;
    for (int i = 0; i < n; i++) {
        pl_unit_id id = {0, 0, 0, first + i};
        if (pl_unit_steps_of(&j->ex, id, j->X + (size_t)i * S * C) != PL_OK || check_rows(j, first + i, (size_t)i * S, 0))
            return PL_ERR;
        j->cleans[i] = j->clean;
        j->group_rows[i] = S;
    }
    if (pl_patch_eval_groups(j->lm->model, j->cleans, j->group_rows, n, j->place.resid_index, j->place.pos, j->X,
                             j->logits, j->place.read_index, j->read) != PL_OK)
        return PL_ERR;
    float *o = pl_malloc(sizeof(float) * (size_t)NM * S, "unit metrics");
    if (!o)
        return PL_ERR;
    for (int i = 0; i < n; i++) {
        pl_unit_id id = {0, 0, 0, first + i};
        if (check_rows(j, first + i, (size_t)i * S, 1) != PL_OK) {
            free(o);
            return PL_ERR;
        }
        if (j->ex.cfg->residual_basis == PL_BASIS_CENTERED) /* L2 and cosine in TransformerLens's basis */
            for (int k = 0; k < S; k++)
                pl_center_float(j->read + ((size_t)i * S + k) * C, C);
        pl_unit_metrics(&j->ex, j->logits + (size_t)i * S * V, j->read + (size_t)i * S * C, j->X + (size_t)i * S * C,
                        S, pl_unit_reference(&j->ex, id), j->place.next_token, j->scratch, o);
        for (int m = 0; m < NM; m++)
            memcpy(out + ((size_t)m * j->D + first + i) * S, o + (size_t)m * S, sizeof(float) * S);
    }
    free(o);
    return PL_OK;
}

/* A sweep's batch of S-row units (pl_sweep_set_batches), then the calls over all D directions. */
static int eval_all(curve_job *j, float *out)
{
    int S = j->S, C = j->ex.C, V = j->ex.V;
    int per_call = S >= PL_API_BATCH_ROWS ? 1 : PL_API_BATCH_ROWS / S;
    if (per_call > j->D)
        per_call = j->D;
    size_t rows = (size_t)per_call * S;
    j->X = pl_malloc(sizeof(float) * rows * C, "curve steps");
    j->logits = pl_malloc(sizeof(float) * rows * V, "curve logits");
    j->read = pl_malloc(sizeof(float) * rows * C, "curve readout");
    j->cleans = pl_malloc(sizeof(pl_run *) * (size_t)per_call, "curve runs");
    j->group_rows = pl_malloc(sizeof(int) * (size_t)per_call, "curve groups");
    j->scratch = pl_malloc(pl_unit_metrics_scratch(&j->ex, S), "metric scratch");
    int rc = j->X && j->logits && j->read && j->cleans && j->group_rows && j->scratch ? PL_OK : PL_ERR;
    for (int first = 0; rc == PL_OK && first < j->D; first += per_call)
        rc = eval_units(j, first, j->D - first < per_call ? j->D - first : per_call, out);
    free(j->X), free(j->logits), free(j->read), free(j->cleans), free(j->group_rows), free(j->scratch);
    return rc;
}

/* Checks of the arrays a call is given: finite directions and base, a grid that starts at 0. */
static int check_inputs(const float *base, const float *dirs, int D, int C, const double *alphas, int S)
{
    if (D < 1 || S < 1 || !dirs || !alphas)
        return pl_fail("curves: %d directions and %d alphas (at least one of each)", D, S);
    if (alphas[0] != 0.0)
        return pl_fail("curves: alphas[0] is %g; it must be 0, the unperturbed base every step is measured against",
                       alphas[0]);
    for (int k = 0; k < S; k++)
        if (!isfinite(alphas[k]))
            return pl_fail("curves: alphas[%d] is not finite", k);
    long at = pl_vec_first_nonfinite(dirs, (size_t)D * C);
    if (at >= 0)
        return pl_fail("curves: direction %ld, component %ld is not finite", at / C, at % C);
    if (base && (at = pl_vec_first_nonfinite(base, (size_t)C)) >= 0)
        return pl_fail("curves: base component %ld is not finite", at);
    return PL_OK;
}

int pl_curves(pl_lm *lm, const int *ids, int T, const char *hook, int pos, const float *base, const float *dirs,
              int D, const double *alphas, int S, const char *const *settings, int n_settings, float *out)
{
    curve_settings s;
    curve_job j = {0};
    const pl_model_info *info = pl_model_get_info(lm->model);
    int C = info->d_model;
    if (parse_settings(&s, settings, n_settings) != PL_OK || check_inputs(base, dirs, D, C, alphas, S) != PL_OK ||
        resolve_place(lm, &s, T, hook, pos, &j.place) != PL_OK)
        return PL_ERR;
    if (j.place.read_pos + 1 < T)
        j.place.next_token = ids[j.place.read_pos + 1];
    if (s.next_token_given)
        j.place.next_token = s.next_token;
    /* a sweep's prompt without a next token has NaN ce_loss (its data ended there); here the caller can
     * say it, so a curve of NaN only is refused */
    for (int k = 0; k < s.cfg.n_metrics && j.place.next_token < 0; k++)
        if (s.cfg.metrics[k] == PL_METRIC_CE_LOSS)
            return pl_fail("curves: metric ce_loss needs the token after the read position (%d, the prompt's last): "
                           "pass next_token", j.place.read_pos);
    pl_run clean;
    if (pl_forward(lm->model, ids, j.place.T_eval, &clean) != PL_OK)
        return PL_ERR;
    float *real = pl_malloc(sizeof(float) * C, "base");
    float *rows = pl_malloc(sizeof(float) * (size_t)D * C, "direction rows");
    int rc = real && rows ? PL_OK : PL_ERR;
    if (rc == PL_OK) {
        memcpy(real, base ? base : clean.resid + ((size_t)j.place.resid_index * clean.T + j.place.pos) * C,
               sizeof(float) * C);
        if (s.cfg.residual_basis == PL_BASIS_CENTERED) /* as a sweep centres its real activations */
            pl_center_float(real, C);
        memcpy(rows, dirs, sizeof(float) * (size_t)D * C);
        pl_experiment *ex = &j.ex;
        ex->cfg = &s.cfg, ex->C = C, ex->C_read = C, ex->V = info->n_vocab, ex->P = 1, ex->S = D, ex->NB = 1, ex->ND = 1;
        ex->steps = S, ex->alpha = alphas, ex->real_act = real;
        ex->dir[0].rows = rows, ex->dir[0].n_rows = D;
        j.lm = lm, j.clean = &clean, j.D = D, j.S = S;
        rc = eval_all(&j, out);
    }
    free(real);
    free(rows);
    pl_run_free(&clean);
    return rc;
}
