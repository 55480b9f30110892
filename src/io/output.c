/* The NetCDF-4 result file of a run (the layout is io's schema table, schema.c; see
 * docs/result-format.md), written from the plain pl_result the sweep hands over (plateau/result.h).
 *
 * The file is built in memory (netCDF's nc_create_mem / nc_close_memio: HDF5's core driver) and its
 * bytes are then written by the one atomic writer (pl_write_file_atomic: temporary file, fsync,
 * rename, fsync of the directory). So nothing forks inside an MPI rank, a full disk is an ordinary
 * write error rather than a failure deep inside HDF5, a failed run never leaves a half file under
 * the output name, and an earlier output stays untouched until the new one is complete.
 *
 * Variables are defined from the schema's rows, in their order; their data are then put by name, so
 * a row the writer does not fill (or data without a row) is an error, never a silent gap. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netcdf.h>
#include <netcdf_mem.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/result_file.h"
#include "plateau/version.h"
#include "nc_memory.h"
#include "schema.h"

/* The file being built. */
typedef struct {
    int nc;
    const char *path; /* names it in messages */
    const pl_result *r;
    unsigned char used_score[64]; /* score s has variables (some metric has it) */
} writer;

static int nc_error(const writer *w, int status, const char *what)
{
    int errno_ = errno;
    return pl_fail("output %s: %s (%s)%s%s", w->path, nc_strerror(status), what, errno_ ? ": " : "",
                   errno_ ? strerror(errno_) : "");
}

#define NC_TRY(w, call, what)                                                                                     \
    do {                                                                                                          \
        int nc_status_ = (call);                                                                                  \
        if (nc_status_ != NC_NOERR)                                                                               \
            return nc_error(w, nc_status_, what);                                                                 \
    } while (0)

static int text_att(int nc, int var, const char *name, const char *value)
{
    return nc_put_att_text(nc, var, name, strlen(value), value);
}

/* ------------------------------------------------------------------ definitions */

/* Length of dimension NAME in R (-1: made by its variable: a state's width, sae_feature). */
static long dim_length(const pl_result *r, const char *name)
{
    static const char *const names[] = {"base", "direction", "prompt", "sample", "alpha", "beta", "quantile", "ctx",
                                        "hist_bin", "hist_edge", "comparison", "bound", "resid", "resid_col", "eigen",
                                        "optimum", "other", "pc", "position"};
    const long len[] = {r->NB, r->ND, r->P, r->S, r->K, r->K, r->Q, r->T, r->HB, r->HB + 1, r->n_comparisons, 2, r->C,
                        r->C, r->n_eigen, r->n_optimum, r->n_other, r->n_pc, r->attrs.n_positions};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            return len[i];
    return -1;
}

/* Whether the activation has the position dimension: whole contexts store every perturbed position's. */
static int activation_positions(const pl_result *r)
{
    return r->C > 0 && r->activation != NULL && r->attrs.n_positions > 1;
}

/* Whether R has what a row's `present` condition names. */
static int present(const pl_result *r, const char *when)
{
    if (!strcmp(when, "positions")) /* the curves', the activation's or the local geometry's */
        return r->per_position || activation_positions(r) || (r->attrs.n_positions > 1 && r->fisher_trace);
    if (!strcmp(when, "comparisons"))
        return r->n_comparisons > 0;
    if (!strcmp(when, "slice"))
        return r->slice_mean != NULL;
    if (!strcmp(when, "slice_raw"))
        return r->slice_curves != NULL;
    if (!strcmp(when, "raw_curves"))
        return r->curves != NULL;
    if (!strcmp(when, "tokenizer"))
        return r->prompt_text != NULL;
    if (!strcmp(when, "activations"))
        return r->C > 0 && r->activation != NULL;
    if (!strcmp(when, "resid")) /* the activations' or the vectors' ([output] vectors) */
        return r->C > 0;
    if (!strcmp(when, "sae_active"))
        return r->sae_features > 0;
    if (!strcmp(when, "fisher"))
        return r->n_eigen > 0;
    if (!strcmp(when, "optimized"))
        return r->n_optimum > 0;
    if (!strcmp(when, "fisher_vectors"))
        return r->fisher_eigenvector != NULL;
    if (!strcmp(when, "optimized_vectors"))
        return r->optimum_direction != NULL;
    if (!strcmp(when, "fisher_sae"))
        return r->fisher_max_sae_cos != NULL;
    if (!strcmp(when, "optimized_sae"))
        return r->optimum_max_sae_cos != NULL;
    if (!strcmp(when, "fisher_other"))
        return r->fisher_real_other_cos != NULL;
    if (!strcmp(when, "optimized_other"))
        return r->optimum_real_other_cos != NULL;
    if (!strcmp(when, "fisher_pc"))
        return r->fisher_pc_cos != NULL;
    if (!strcmp(when, "optimized_pc"))
        return r->optimum_pc_cos != NULL;
    if (!strcmp(when, "local_other"))
        return r->n_other > 0 && (r->fisher_real_other_cos || r->optimum_real_other_cos);
    if (!strcmp(when, "local_pc"))
        return r->n_pc > 0 && (r->fisher_pc_cos || r->optimum_pc_cos);
    if (!strcmp(when, "local"))
        return r->n_eigen > 0 || r->n_optimum > 0;
    return !strcmp(when, "");
}

/* The run's dimensions in the schema's order (those a variable makes come with it). */
static int define_dims(writer *w)
{
    for (int i = 0; i < PL_SCHEMA_N_DIMS; i++) {
        const pl_schema_dim *d = &PL_SCHEMA_DIMS[i];
        long len = dim_length(w->r, d->name);
        int id;
        if (len >= 0 && present(w->r, d->present))
            NC_TRY(w, nc_def_dim(w->nc, d->name, (size_t)len, &id), d->name);
    }
    return PL_OK;
}

/* long_name and units. CF units are UDUNITS units: plateau's own ("nats", "residual stream units")
 * are not, so such a quantity is dimensionless ("1") and its unit is named in units_description. */
static int describe(int nc, int var, const char *long_name, const char *units)
{
    int s = text_att(nc, var, "long_name", long_name);
    int udunits = !strcmp(units, "1") || !strcmp(units, "s-1");
    if (!s)
        s = text_att(nc, var, "units", udunits ? units : "1");
    return s || udunits ? s : text_att(nc, var, "units_description", units);
}

/* A variable as ROW says: a coordinate (CF 5: no missing values, so no _FillValue) or a string label
 * (no units: CF units describe numbers) has long_name and units as given; data floats have NaN as
 * _FillValue (a NaN in the file is a value not computed) and UDUNITS units (describe). */
static int def_row(int nc, const pl_schema_var *row, const char *name, int ndims, const int *dims,
                   const char *long_name, const char *units, int *var)
{
    int s = nc_def_var(nc, name, row->type, ndims, dims, var);
    if (s)
        return s;
    if (row->coordinate || row->type == NC_STRING) {
        if (row->type != NC_STRING)
            s = nc_def_var_fill(nc, *var, 1, NULL);
        if (!s)
            s = text_att(nc, *var, "long_name", long_name);
        return s || row->type == NC_STRING ? s : text_att(nc, *var, "units", units);
    }
    if (row->type == NC_FLOAT) {
        float fill = NAN;
        s = nc_def_var_fill(nc, *var, 0, &fill);
    } else if (row->type == NC_DOUBLE) {
        double fill = NAN;
        s = nc_def_var_fill(nc, *var, 0, &fill);
    }
    if (!s && row->deflate)
        s = nc_def_var_deflate(nc, *var, 1, 1, 1);
    return s ? s : describe(nc, *var, long_name, units);
}

/* The template keys of a variable's name, long_name and units (values: define_var's caller). */
static const char *const KEYS[] = {"m",     "s",     "ms",     "m_long", "curve", "score_long", "alpha_long",
                                   "alpha", "metric", "score", "state_long", NULL};
enum { K_M, K_S, K_MS, K_M_LONG, K_CURVE, K_SCORE_LONG, K_ALPHA_LONG, K_ALPHA, K_METRIC, K_SCORE, K_STATE_LONG, K_N };

/* Define the variable of ROW named NAME (its dimensions, defined before, from the row),
 * long_name and units expanded from VALUES. */
static int define_var(writer *w, const pl_schema_var *row, const char *name, const char *const *values)
{
    char dims_text[256], long_name[1024], units[128];
    snprintf(dims_text, sizeof dims_text, "%s", row->dims);
    int dims[8], nd = 0, var;
    for (char *save, *t = strtok_r(dims_text, " ", &save); t && nd < 8; t = strtok_r(NULL, " ", &save)) {
        if (!strcmp(t, "[position]")) { /* the activation's, or the curves' with per_position */
            if (!(strcmp(row->name, "activation") ? w->r->per_position : activation_positions(w->r)))
                continue;
            t = "position";
        }
        if (!strcmp(t, "[site]")) { /* the local geometry of each perturbed position of whole contexts */
            if (w->r->attrs.n_positions <= 1)
                continue;
            t = "position";
        }
        NC_TRY(w, nc_inq_dimid(w->nc, t, &dims[nd++]), name);
    }
    pl_schema_expand(row->long_name, KEYS, values, long_name, sizeof long_name);
    pl_schema_expand(row->units ? row->units : "", KEYS, values, units, sizeof units);
    NC_TRY(w, def_row(w->nc, row, name, nd, dims, long_name, units, &var), name);
    return PL_OK;
}

/* A direction kind's per-unit state: [(base,) prompt, sample(, width)], its long name its own. */
static int define_state(writer *w, const pl_schema_var *row, const pl_result_state *st)
{
    int dims[4], nd = 0, var;
    const char *names[3] = {"base", "prompt", "sample"};
    for (int i = st->per_base ? 0 : 1; i < 3; i++)
        NC_TRY(w, nc_inq_dimid(w->nc, names[i], &dims[nd++]), st->name);
    if (st->width > 1) {
        if (nc_inq_dimid(w->nc, st->width_dim, &dims[nd]) != NC_NOERR)
            NC_TRY(w, nc_def_dim(w->nc, st->width_dim, (size_t)st->width, &dims[nd]), st->width_dim);
        nd++;
    }
    NC_TRY(w, def_row(w->nc, row, st->name, nd, dims, st->long_name, "1", &var), st->name);
    return PL_OK;
}

/* Every variable of a row family (METRIC, METRIC_SCORE rows per metric; SCORE rows per used score;
 * STATE rows per state) at the first row of the family, in the schema's order. */
static int define_metric_vars(writer *w, const char **values)
{
    const pl_result *r = w->r;
    char name[256], ms[160];
    for (int mi = 0; mi < r->NM; mi++) {
        const pl_result_metric *mt = &r->metrics[mi];
        values[K_M] = mt->name, values[K_M_LONG] = mt->long_name, values[K_METRIC] = mt->units;
        values[K_CURVE] = mt->score_curve;
        for (int i = 0; i < PL_SCHEMA_N_VARS; i++) {
            const pl_schema_var *row = &PL_SCHEMA_VARS[i];
            snprintf(name, sizeof name, "%s%s", mt->name, row->name);
            if (row->scope == PL_SCH_METRIC && present(r, row->present) && define_var(w, row, name, values) != PL_OK)
                return PL_ERR;
        }
        for (int sc = 0; sc < r->n_scores; sc++) {
            if (!r->has_score[mi * r->n_scores + sc])
                continue;
            const pl_result_score *s = &r->scores[sc];
            w->used_score[sc] = 1;
            snprintf(ms, sizeof ms, "%s_%s", mt->name, s->name);
            values[K_S] = s->name, values[K_MS] = ms, values[K_SCORE] = s->alpha_valued ? r->alpha_units : "1";
            values[K_SCORE_LONG] = pl_schema_score_long_name(s->name);
            if (!values[K_SCORE_LONG])
                return pl_fail("output %s: score '%s' is not in the result schema (src/io/schema.c)", w->path, s->name);
            for (int i = 0; i < PL_SCHEMA_N_VARS; i++) {
                const pl_schema_var *row = &PL_SCHEMA_VARS[i];
                snprintf(name, sizeof name, "%s%s", ms, row->name);
                if (row->scope == PL_SCH_METRIC_SCORE && present(r, row->present) &&
                    define_var(w, row, name, values) != PL_OK)
                    return PL_ERR;
            }
        }
    }
    return PL_OK;
}

static int define_score_vars(writer *w, const pl_schema_var *row, const char **values)
{
    const pl_result *r = w->r;
    for (int sc = 0; sc < r->n_scores; sc++) {
        if (!w->used_score[sc])
            continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s", r->scores[sc].name, row->name);
        values[K_S] = r->scores[sc].name, values[K_SCORE] = r->scores[sc].alpha_valued ? r->alpha_units : "1";
        if (define_var(w, row, name, values) != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* The row of state ST: its own (partner) or the generic one. */
static const pl_schema_var *state_row(const pl_result_state *st)
{
    const pl_schema_var *row = pl_schema_var_find(st->name);
    if (row && row->scope == PL_SCH_STATE)
        return row;
    return pl_schema_var_find("{state}");
}

/* Every variable of the file, in the schema's order. */
static int define_vars(writer *w)
{
    const pl_result *r = w->r;
    const char *values[K_N] = {0};
    values[K_ALPHA_LONG] = r->alpha_long_name, values[K_ALPHA] = r->alpha_units;
    int metrics_done = 0, states_done = 0;
    for (int i = 0; i < PL_SCHEMA_N_VARS; i++) {
        const pl_schema_var *row = &PL_SCHEMA_VARS[i];
        int rc = PL_OK;
        if (row->scope == PL_SCH_FIXED && present(r, row->present)) {
            if (!strcmp(row->name, "sae_feature_active_bases")) { /* its dimension comes with it */
                int d;
                NC_TRY(w, nc_def_dim(w->nc, "sae_feature", (size_t)r->sae_features, &d), "sae_feature");
            }
            rc = define_var(w, row, row->name, values);
        } else if ((row->scope == PL_SCH_METRIC || row->scope == PL_SCH_METRIC_SCORE) && !metrics_done++) {
            rc = define_metric_vars(w, values);
        } else if (row->scope == PL_SCH_SCORE) {
            rc = define_score_vars(w, row, values);
        } else if (row->scope == PL_SCH_STATE && !states_done++) {
            for (int k = 0; k < r->n_states && rc == PL_OK; k++)
                rc = define_state(w, state_row(&r->states[k]), &r->states[k]);
        }
        if (rc != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* The attributes of the schema's `attrs` column: the alpha coordinate's step mode, the scores'
 * parameters, the basis of the activations. */
static int define_var_attributes(writer *w)
{
    const pl_result *r = w->r;
    int nc = w->nc, v;
    NC_TRY(w, nc_inq_varid(nc, "alpha", &v), "alpha");
    NC_TRY(w, text_att(nc, v, "step_mode", r->step_mode), "alpha");
    if (r->slice_mean) {
        NC_TRY(w, nc_inq_varid(nc, "beta", &v), "beta");
        NC_TRY(w, text_att(nc, v, "alpha_direction", r->slice_directions[0]), "beta");
        NC_TRY(w, text_att(nc, v, "beta_direction", r->slice_directions[1]), "beta");
    }
    for (int mi = 0; mi < r->NM; mi++)
        for (int sc = 0; sc < r->n_scores; sc++) {
            if (!r->has_score[mi * r->n_scores + sc])
                continue;
            const char *s = r->scores[sc].name;
            char name[160];
            snprintf(name, sizeof name, "%s_%s", r->metrics[mi].name, s);
            NC_TRY(w, nc_inq_varid(nc, name, &v), name);
            NC_TRY(w, text_att(nc, v, "score_curve", r->metrics[mi].score_curve), name);
            if (!strcmp(s, "onset"))
                NC_TRY(w, nc_put_att_double(nc, v, "onset_threshold", NC_DOUBLE, 1, &r->onset_threshold), name);
            if (!strcmp(s, "alpha_at_threshold"))
                NC_TRY(w, nc_put_att_double(nc, v, "threshold", NC_DOUBLE, 1, &r->metrics[mi].threshold), name);
            if (!strcmp(s, "nonlinearity_alpha")) {
                NC_TRY(w, nc_put_att_int(nc, v, "fit_steps", NC_INT, 2, r->nl_fit_steps), name);
                NC_TRY(w, nc_put_att_double(nc, v, "tolerance", NC_DOUBLE, 1, &r->nl_tolerance), name);
                NC_TRY(w, text_att(nc, v, "rule", r->nl_rule ? r->nl_rule : "least_squares"), name);
            }
            if (!strcmp(s, "plateau_length"))
                NC_TRY(w, nc_put_att_double(nc, v, "threshold", NC_DOUBLE, 1, &r->plateau_threshold), name);
            if (!strcmp(s, "giglemiani_nl_alpha")) {
                NC_TRY(w, nc_put_att_int(nc, v, "end_step", NC_INT, 1, &r->nl_fit_steps[1]), name);
                NC_TRY(w, nc_put_att_double(nc, v, "tolerance", NC_DOUBLE, 1, &r->giglemiani_nl_tolerance), name);
            }
        }
    if (r->n_optimum) { /* CF 3.5 flags: the optimiser's PL_OPT_* (src/experiment/fisher.h) */
        static const int flags[] = {1, 2, 3, 4};
        NC_TRY(w, nc_inq_varid(nc, "optimum_status", &v), "optimum_status");
        NC_TRY(w, nc_put_att_int(nc, v, "flag_values", NC_INT, 4, flags), "optimum_status");
        NC_TRY(w, text_att(nc, v, "flag_meanings", "gradient flat cap stall"), "optimum_status");
    }
    static const char *const with_basis[] = {"activation", "mu", "sigma", "fisher_eigenvector", "optimum_direction"};
    const int has[] = {r->activation != NULL, r->activation != NULL, r->activation != NULL,
                       r->fisher_eigenvector != NULL, r->optimum_direction != NULL};
    for (int k = 0; k < 5 && r->C > 0; k++) {
        if (!has[k])
            continue;
        NC_TRY(w, nc_inq_varid(nc, with_basis[k], &v), with_basis[k]);
        NC_TRY(w, text_att(nc, v, "residual_basis", r->attrs.residual_basis), with_basis[k]);
    }
    return PL_OK;
}

/* ------------------------------------------------------------------ global attributes */

/* What the writer knows of the file it writes: when, where, by what (G points into it; the caller
 * frees history, model_abs and data_abs). */
typedef struct {
    char created[32], source[256], host[256], data_sha[65];
    char *history, *model_abs, *data_abs;
} provenance;

static int fill_globals(const pl_result *r, pl_schema_globals *g, provenance *pv)
{
    memset(pv, 0, sizeof *pv);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(pv->created, sizeof pv->created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(pv->source, sizeof pv->source, "plateau %s (git %s)", pl_version(), pl_git_commit());
    if (gethostname(pv->host, sizeof pv->host) != 0)
        snprintf(pv->host, sizeof pv->host, "unknown");
    pv->host[sizeof pv->host - 1] = '\0';
    const char *cmd = r->attrs.command_line ? r->attrs.command_line : "plateau run";
    pv->history = pl_malloc(strlen(cmd) + 64, "history");
    if (!pv->history)
        return PL_ERR;
    sprintf(pv->history, "%s: %s", pv->created, cmd);
    if (pl_sha256_file(r->attrs.data_path, "[data] prompts", pv->data_sha) != PL_OK)
        return PL_ERR;
    pv->model_abs = realpath(r->attrs.model_path, NULL);
    pv->data_abs = realpath(r->attrs.data_path, NULL);
    *g = (pl_schema_globals){r->attrs, "CF-1.8", "plateau sweep: output sensitivity along perturbation directions",
                             pv->source, pv->history, pv->created, pl_git_commit(), pv->host, pl_version(),
                             pv->data_sha};
    if (pv->model_abs)
        g->run.model_path = pv->model_abs;
    if (pv->data_abs)
        g->run.data_path = pv->data_abs;
    return PL_OK;
}

/* The global attributes of the schema, in its order, from G (absent text / PL_RESULT_NO_INT: none). */
static int put_globals(writer *w, const pl_schema_globals *g)
{
    for (int i = 0; i < PL_SCHEMA_N_GLOBALS; i++) {
        const pl_schema_global *row = &PL_SCHEMA_GLOBALS[i];
        if (row->offset == (size_t)-1)
            continue;
        const char *at = (const char *)g + row->offset;
        if (row->kind == PL_GA_TEXT) {
            const char *text = *(const char *const *)at;
            if (text)
                NC_TRY(w, text_att(w->nc, NC_GLOBAL, row->name, text), row->name);
        } else if (row->kind == PL_GA_DOUBLE) {
            NC_TRY(w, nc_put_att_double(w->nc, NC_GLOBAL, row->name, NC_DOUBLE, 1, (const double *)at), row->name);
        } else if (*(const int *)at != PL_RESULT_NO_INT) { /* booleans are 0/1 integers: "false" is true to Python */
            NC_TRY(w, nc_put_att_int(w->nc, NC_GLOBAL, row->name, NC_INT, 1, (const int *)at), row->name);
        }
    }
    return PL_OK;
}

/* ------------------------------------------------------------------ data */

static int put(writer *w, const char *name, const void *data)
{
    int v;
    NC_TRY(w, nc_inq_varid(w->nc, name, &v), name);
    NC_TRY(w, nc_put_var(w->nc, v, data), name);
    return PL_OK;
}

/* Curves per (unit, metric): the perturbed positions with per_position, else 1. */
static int npc(const pl_result *r)
{
    return r->per_position ? r->attrs.n_positions : 1;
}

/* put of variable STEM SUFFIX */
static int put2(writer *w, const char *stem, const char *suffix, const void *data)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", stem, suffix);
    return put(w, name, data);
}

static int put_coordinates(writer *w, double *dbuf)
{
    const pl_result *r = w->r;
    int NC = r->n_comparisons, n = r->P > r->S ? r->P : r->S;
    if ((r->slice_mean && put(w, "beta", r->alpha) != PL_OK) || put(w, "alpha", r->alpha) != PL_OK ||
        put(w, "base", r->bases) != PL_OK ||
        put(w, "direction", r->directions) != PL_OK)
        return PL_ERR;
    int *idx = pl_malloc(sizeof(int) * (size_t)(NC > n ? NC : n), "indices");
    const char **labels = pl_malloc(sizeof(char *) * (size_t)(NC ? NC : 1), "comparison labels");
    int rc = idx && labels ? PL_OK : PL_ERR;
    for (int i = 0; i < n && rc == PL_OK; i++)
        idx[i] = i;
    rc = rc ? rc : put(w, "prompt", idx);
    rc = rc ? rc : put(w, "sample", idx);
    if (rc == PL_OK && r->Q)
        rc = put(w, "quantile", r->quantiles);
    for (int c = 0; c < NC; c++)
        labels[c] = r->comparisons[c].label;
    static const char *const fields[] = {"comparison_x_base", "comparison_x_direction", "comparison_y_base",
                                         "comparison_y_direction"};
    for (int k = 0; k < 4 && NC && rc == PL_OK; k++) {
        for (int c = 0; c < NC; c++) {
            const pl_result_comparison *cp = &r->comparisons[c];
            idx[c] = k == 0 ? cp->x_base : k == 1 ? cp->x_direction : k == 2 ? cp->y_base : cp->y_direction;
        }
        rc = put(w, fields[k], idx);
    }
    if (rc == PL_OK && NC) {
        double bounds[2] = {0.025, 0.975};
        rc = put(w, "comparison", labels);
        rc = rc ? rc : put(w, "bound", bounds);
    }
    for (int sc = 0; sc < r->n_scores && rc == PL_OK; sc++) {
        if (!w->used_score[sc])
            continue;
        double lo = r->scores[sc].hist_lo, hi = r->scores[sc].hist_hi;
        for (int k = 0; k <= r->HB; k++)
            dbuf[k] = k == r->HB ? hi : lo + (hi - lo) * k / r->HB;
        rc = put2(w, r->scores[sc].name, "_hist_edges", dbuf);
    }
    free(idx);
    free(labels);
    return rc;
}

/* The paired comparisons PP[NC] of one (metric, score) (NC: the comparisons, times the positions with
 * per_position): one field of every comparison at a time. */
static int put_paired(writer *w, const char *ms, const pl_result_paired *pp, int NC, double *dbuf, int *ibuf)
{
    for (int c = 0; c < NC; c++)
        ibuf[c] = pp[c].n_pairs;
    if (put2(w, ms, "_n_pairs", ibuf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < 2; k++) {
        for (int c = 0; c < NC; c++)
            ibuf[c] = k == 0 ? pp[c].n_censored_x : pp[c].n_censored_y;
        if (put2(w, ms, k == 0 ? "_n_censored_x" : "_n_censored_y", ibuf) != PL_OK)
            return PL_ERR;
    }
    static const char *const one[] = {"_ratio", "_difference", "_wilcoxon_p", "_wilcoxon_w"};
    static const char *const two[] = {"_ratio_ci", "_difference_ci"};
    for (int k = 0; k < 4; k++) {
        for (int c = 0; c < NC; c++)
            dbuf[c] = k == 0 ? pp[c].ratio : k == 1 ? pp[c].diff : k == 2 ? pp[c].p_value : pp[c].w_plus;
        if (put2(w, ms, one[k], dbuf) != PL_OK)
            return PL_ERR;
    }
    for (int k = 0; k < 2; k++) {
        for (int c = 0; c < NC; c++) {
            dbuf[2 * c] = k == 0 ? pp[c].ratio_lo : pp[c].diff_lo;
            dbuf[2 * c + 1] = k == 0 ? pp[c].ratio_hi : pp[c].diff_hi;
        }
        if (put2(w, ms, two[k], dbuf) != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* Metric MI's raw curves: the sweep's table [p, b, d, s, (m), j, k] as [j, b, d, p, s, k] in BUF. */
static int put_curves(writer *w, int mi, float *buf)
{
    const pl_result *r = w->r;
    int NB = r->NB, ND = r->ND, P = r->P, S = r->S, K = r->K, NPC = npc(r);
    for (int j = 0; j < NPC; j++)
        for (int b = 0; b < NB; b++)
            for (int d = 0; d < ND; d++)
                for (int p = 0; p < P; p++)
                    for (int s = 0; s < S; s++) {
                        long u = (((long)p * NB + b) * ND + d) * S + s;
                        memcpy(buf + (((((size_t)j * NB + b) * ND + d) * P + p) * S + s) * K,
                               r->curves + (((size_t)u * r->NM + mi) * NPC + j) * K, sizeof(float) * K);
                    }
    return put(w, r->metrics[mi].name, buf);
}

/* Metric MI's slice: the grid [p, b, s, (m), K * K] as [b, p, s, K, K] in BUF (raw curves), and its
 * statistics. */
static int put_slice(writer *w, int mi, float *buf)
{
    const pl_result *r = w->r;
    int NB = r->NB, P = r->P, S = r->S;
    size_t G = (size_t)r->K * r->K, n_stat = (size_t)NB * G;
    for (int b = 0; r->slice_curves && b < NB; b++)
        for (int p = 0; p < P; p++)
            for (int s = 0; s < S; s++) {
                long u = ((long)p * NB + b) * S + s;
                memcpy(buf + (((size_t)b * P + p) * S + s) * G, r->slice_curves + ((size_t)u * r->NM + mi) * G,
                       sizeof(float) * G);
            }
    const char *m = r->metrics[mi].name;
    if (r->slice_curves && put2(w, m, "_slice", buf) != PL_OK)
        return PL_ERR;
    if (put2(w, m, "_slice_mean", r->slice_mean + mi * n_stat) != PL_OK ||
        put2(w, m, "_slice_median", r->slice_median + mi * n_stat) != PL_OK ||
        put2(w, m, "_slice_count", r->slice_count + mi * n_stat) != PL_OK)
        return PL_ERR;
    return PL_OK;
}

/* Everything of metric MI: curves, statistics, scores, histograms, comparisons. */
static int put_metric(writer *w, int mi, float *buf, double *dbuf, int *ibuf)
{
    const pl_result *r = w->r;
    const char *m = r->metrics[mi].name;
    int NSC = r->n_scores, NC = r->n_comparisons, NPC = npc(r);
    size_t n_stat = (size_t)NPC * r->NB * r->ND * r->K, n_bd = (size_t)NPC * r->NB * r->ND;
    size_t n_kind = (size_t)r->P * r->S;
    if (r->curves && put_curves(w, mi, buf) != PL_OK)
        return PL_ERR;
    if (r->slice_mean && put_slice(w, mi, buf) != PL_OK)
        return PL_ERR;
    if (put2(w, m, "_mean", r->mean + mi * n_stat) != PL_OK || put2(w, m, "_median", r->median + mi * n_stat) != PL_OK ||
        (r->Q && put2(w, m, "_quantiles", r->quant + mi * n_stat * r->Q) != PL_OK) ||
        put2(w, m, "_count", r->count + mi * n_stat) != PL_OK)
        return PL_ERR;
    for (int sc = 0; sc < NSC; sc++) {
        if (!r->has_score[mi * NSC + sc])
            continue;
        size_t at = (size_t)mi * NSC + sc;
        char ms[160];
        snprintf(ms, sizeof ms, "%s_%s", m, r->scores[sc].name);
        if (put2(w, ms, "", r->score_values + at * n_bd * n_kind) != PL_OK ||
            put2(w, ms, "_hist", r->hist + at * n_bd * r->HB) != PL_OK ||
            put2(w, ms, "_hist_outside", r->hist_outside + at * n_bd) != PL_OK ||
            put2(w, ms, "_n_censored", r->n_censored + at * n_bd) != PL_OK ||
            (NC && put_paired(w, ms, r->paired + at * NPC * NC, NPC * NC, dbuf, ibuf) != PL_OK))
            return PL_ERR;
    }
    return PL_OK;
}

/* The variables after the metrics': norms, prompts, states, SAE, activations. */
static int put_rest(writer *w)
{
    const pl_result *r = w->r;
    if (put(w, "base_norm", r->base_norm) != PL_OK || put(w, "direction_norm", r->direction_norm) != PL_OK ||
        put(w, "tokens", r->tokens) != PL_OK || (r->prompt_text && put(w, "prompt_text", r->prompt_text) != PL_OK) ||
        put(w, "next_token", r->next_token) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < r->n_states; k++)
        if (put(w, r->states[k].name, r->states[k].values) != PL_OK)
            return PL_ERR;
    if (r->n_eigen && (put(w, "fisher_eigenvalue", r->fisher_eigenvalue) != PL_OK ||
                       put(w, "fisher_fraction", r->fisher_fraction) != PL_OK))
        return PL_ERR;
    if ((r->n_eigen || r->n_optimum) &&
        (put(w, "fisher_trace", r->fisher_trace) != PL_OK || put(w, "kl_rayleigh", r->kl_rayleigh) != PL_OK))
        return PL_ERR;
    if (r->n_optimum && (put(w, "optimum_objective", r->optimum_objective) != PL_OK ||
                         put(w, "optimum_iterations", r->optimum_iterations) != PL_OK ||
                         put(w, "optimum_tangential_grad", r->optimum_tangential_grad) != PL_OK ||
                         put(w, "optimum_grad_norm", r->optimum_grad_norm) != PL_OK ||
                         put(w, "optimum_status", r->optimum_status) != PL_OK ||
                         put(w, "optimum_start", r->optimum_start) != PL_OK ||
                         put(w, "optimum_cluster", r->optimum_cluster) != PL_OK ||
                         put(w, "optimum_distinct", r->optimum_distinct) != PL_OK))
        return PL_ERR;
    if ((r->fisher_eigenvector && put(w, "fisher_eigenvector", r->fisher_eigenvector) != PL_OK) ||
        (r->optimum_direction && put(w, "optimum_direction", r->optimum_direction) != PL_OK))
        return PL_ERR;
    if (r->fisher_max_sae_cos && (put(w, "fisher_max_sae_cos", r->fisher_max_sae_cos) != PL_OK ||
                                  put(w, "fisher_sae_feature", r->fisher_sae_feature) != PL_OK))
        return PL_ERR;
    if (r->optimum_max_sae_cos && (put(w, "optimum_max_sae_cos", r->optimum_max_sae_cos) != PL_OK ||
                                   put(w, "optimum_sae_feature", r->optimum_sae_feature) != PL_OK))
        return PL_ERR;
    if ((r->fisher_real_other_cos && put(w, "fisher_real_other_cos", r->fisher_real_other_cos) != PL_OK) ||
        (r->optimum_real_other_cos && put(w, "optimum_real_other_cos", r->optimum_real_other_cos) != PL_OK) ||
        (r->fisher_pc_cos && put(w, "fisher_pc_cos", r->fisher_pc_cos) != PL_OK) ||
        (r->optimum_pc_cos && put(w, "optimum_pc_cos", r->optimum_pc_cos) != PL_OK))
        return PL_ERR;
    if (r->sae_features && put(w, "sae_feature_active_bases", r->sae_feature_active_bases) != PL_OK)
        return PL_ERR;
    if (r->C && r->activation && (put(w, "activation", r->activation) != PL_OK || put(w, "mu", r->mu) != PL_OK ||
                 put(w, "sigma", r->sigma) != PL_OK))
        return PL_ERR;
    return PL_OK;
}

/* The data of every variable (data mode). */
static int put_data(writer *w)
{
    const pl_result *r = w->r;
    int NC = r->n_comparisons * npc(r), HB = r->HB, NP = r->attrs.n_positions;
    size_t n_curve = (size_t)npc(r) * r->NB * r->ND * r->P * r->S * r->K;
    if (r->slice_curves && (size_t)r->NB * r->P * r->S * r->K * r->K > n_curve) /* a slice's grid */
        n_curve = (size_t)r->NB * r->P * r->S * r->K * r->K;
    float *buf = r->curves ? pl_malloc(sizeof(float) * (n_curve ? n_curve : 1), "output curves") : NULL;
    double *dbuf = pl_malloc(sizeof(double) * (size_t)(NC > HB + 1 ? NC : HB + 1) * 2, "output values");
    int *ibuf = pl_malloc(sizeof(int) * (size_t)(NC > NP ? NC : NP > 1 ? NP : 1), "output values");
    int rc = dbuf && ibuf && (buf || !r->curves) ? PL_OK : PL_ERR;
    if (rc == PL_OK)
        rc = put_coordinates(w, dbuf);
    if (rc == PL_OK && present(r, "positions")) { /* absolute token positions */
        for (int j = 0; j < NP; j++)
            ibuf[j] = r->attrs.position + j;
        rc = put(w, "position", ibuf);
    }
    for (int mi = 0; mi < r->NM && rc == PL_OK; mi++)
        rc = put_metric(w, mi, buf, dbuf, ibuf);
    if (rc == PL_OK)
        rc = put_rest(w);
    free(buf), free(dbuf), free(ibuf);
    return rc;
}

/* ------------------------------------------------------------------ the file */

/* Define and fill the file W->nc (created in memory). */
static int build(writer *w)
{
    pl_schema_globals g;
    provenance pv = {0};
    int rc = define_dims(w);
    rc = rc ? rc : define_vars(w);
    rc = rc ? rc : define_var_attributes(w);
    rc = rc ? rc : fill_globals(w->r, &g, &pv);
    rc = rc ? rc : put_globals(w, &g);
    if (rc == PL_OK) {
        int st = nc_enddef(w->nc);
        rc = st == NC_NOERR ? put_data(w) : nc_error(w, st, "definitions");
    }
    free(pv.history), free(pv.model_abs), free(pv.data_abs);
    return rc;
}

/* Build the whole file in memory: *MEMIO holds its bytes (free memio->memory). */
static int write_netcdf(const char *path, const pl_result *r, NC_memio *memio)
{
    writer w = {-1, path, r, {0}};
    if (r->n_scores > (int)sizeof w.used_score)
        return pl_fail("output %s: %d scores, more than the writer knows", path, r->n_scores);
    errno = 0;
    int status = nc_create_mem(PL_NC_MEMORY_NAME, NC_NETCDF4, 1 << 20, &w.nc);
    if (status != NC_NOERR)
        return pl_fail("output %s: cannot create it in memory: %s", path, nc_strerror(status));
    int rc = build(&w);
    /* closed, never nc_abort()ed: netCDF's abort of a file being created removes the file of its name */
    status = nc_close_memio(w.nc, memio);
    if (rc == PL_OK && status != NC_NOERR)
        rc = pl_fail("output %s: cannot finish it in memory: %s", path, nc_strerror(status));
    if (rc != PL_OK) {
        if (status == NC_NOERR)
            free(memio->memory);
        memio->memory = NULL;
    }
    return rc;
}

int pl_result_write(const char *path, const pl_result *r)
{
    NC_memio memio = {0};
    if (write_netcdf(path, r, &memio) != PL_OK)
        return PL_ERR;
    int rc = pl_write_file_atomic(path, memio.memory, memio.size);
    free(memio.memory);
    if (rc != PL_OK)
        return pl_fail_prefix("output (an earlier file under its name, if any, is untouched)");
    return PL_OK;
}
