/* The NetCDF-4 result file (the layout is the contract with merge and analysis/, see README).
 *
 * The file is built in memory (netCDF's nc_create_mem / nc_close_memio: HDF5's core driver) and its
 * bytes are then written by the one atomic writer (pl_write_file_atomic: temporary file, fsync,
 * rename, fsync of the directory). So nothing forks inside an MPI rank, a full disk is an ordinary
 * write error rather than a failure deep inside HDF5, a failed run never leaves a half file under
 * the output name, and an earlier output stays untouched until the new one is complete. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
#include "plateau/version.h"
#include "nc_memory.h"
#include "plateau/tokenizer.h"
#include "../tokenizer/tok_internal.h" /* tok_utf8_next: the one UTF-8 decoder */
#include "../sweep/sweep_internal.h"

#define NC_TRY(call)                                                                                              \
    do {                                                                                                          \
        int nc_status_ = (call);                                                                                  \
        if (nc_status_ != NC_NOERR) {                                                                             \
            int errno_ = errno;                                                                                   \
            pl_fail("output %s: %s (in %s)%s%s", path, nc_strerror(nc_status_), #call, errno_ ? ": " : "",         \
                    errno_ ? strerror(errno_) : "");                                                              \
            goto fail;                                                                                            \
        }                                                                                                         \
    } while (0)

static int text_att(int nc, int var, const char *name, const char *value)
{
    return nc_put_att_text(nc, var, name, strlen(value), value);
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

/* A coordinate (CF 5: no missing values, so no _FillValue), or a string label (no units: CF units
 * describe numbers). */
static int def_coord(int nc, const char *name, nc_type type, int ndims, const int *dims, const char *long_name,
                     const char *units, int *var)
{
    int s = nc_def_var(nc, name, type, ndims, dims, var);
    if (!s && type != NC_STRING)
        s = nc_def_var_fill(nc, *var, 1, NULL);
    if (!s)
        s = text_att(nc, *var, "long_name", long_name);
    return s || type == NC_STRING ? s : text_att(nc, *var, "units", units);
}

/* A data variable: floats with NaN as _FillValue (a NaN in the file is a value not computed). */
static int def_var(int nc, const char *name, nc_type type, int ndims, const int *dims, const char *long_name,
                   const char *units, int *var)
{
    if (type == NC_STRING)
        return def_coord(nc, name, type, ndims, dims, long_name, units, var);
    int s = nc_def_var(nc, name, type, ndims, dims, var);
    if (s)
        return s;
    if (type == NC_FLOAT) {
        float fill = NAN;
        s = nc_def_var_fill(nc, *var, 0, &fill);
    } else if (type == NC_DOUBLE) {
        double fill = NAN;
        s = nc_def_var_fill(nc, *var, 0, &fill);
    }
    return s ? s : describe(nc, *var, long_name, units);
}

/* def_var of the variable STEM SUFFIX (a statistic, score or comparison of a metric), its long name
 * printed from LONG_FMT. */
__attribute__((format(printf, 9, 10))) static int def_derived(int nc, const char *stem, const char *suffix,
                                                              nc_type type, int ndims, const int *dims,
                                                              const char *units, int *var, const char *long_fmt,
                                                              ...)
{
    char name[160], long_name[512];
    snprintf(name, sizeof name, "%s%s", stem, suffix);
    va_list ap;
    va_start(ap, long_fmt);
    vsnprintf(long_name, sizeof long_name, long_fmt, ap);
    va_end(ap);
    return def_var(nc, name, type, ndims, dims, long_name, units, var);
}

/* What alpha means in the step mode used (the alpha coordinate's long_name and units). */
static void alpha_meaning(const pl_sweep_config *cfg, const char **long_name, const char **units)
{
    switch (cfg->step_mode) {
    case PL_STEP_FIXED_NORM:
        *long_name = "step length in multiples of the base's norm: x = base + alpha |base| d / |d|";
        *units = "1";
        break;
    case PL_STEP_ABSOLUTE:
        *long_name = "step length in activation units: x = base + alpha d / |d|";
        *units = "residual stream units";
        break;
    default:
        *long_name = "step fraction of the direction: x = base + alpha d (d = target - base for target kinds)";
        *units = "1";
    }
}

static const char *score_long_name(int sc)
{
    switch (sc) {
    case PL_SCORE_ONSET: return "first alpha where the curve, divided by its value at the last alpha, exceeds onset_threshold";
    case PL_SCORE_MAX_SLOPE_ALPHA: return "alpha (step midpoint) of the curve's steepest rise";
    case PL_SCORE_SHARPNESS: return "largest step-to-step rise of the curve divided by its last value, times (steps - 1)";
    case PL_SCORE_ALPHA_AT_THRESHOLD: return "first alpha where the curve reaches the absolute threshold (linear interpolation)";
    default: return "teren's NL step: first alpha after the fit steps where the curve deviates from the least-squares line through them by more than the tolerance (relative)";
    }
}

/* sha256 of the file at PATH (the prompts file: what `sha256sum` prints). */
static int file_sha256(const char *path, char out[65])
{
    void *map;
    size_t size;
    if (pl_map_file(path, "[data] prompts", &map, &size) != PL_OK)
        return PL_ERR;
    int rc = pl_sha256_hex(map, size, out);
    pl_unmap_file(map, size);
    return rc;
}

/* S[0..N) starts an ill-formed UTF-8 sequence: the length of its maximal subpart (the lead byte and
 * the continuation bytes that could still have completed it), which one U+FFFD replaces, as
 * Unicode recommends and Python's decode(errors="replace") does. */
static size_t ill_formed_length(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 1;
    size_t i = 1;
    while (i <= need && i < n && s[i] >= (i == 1 ? lo : 0x80) && s[i] <= (i == 1 ? hi : 0xBF))
        i++;
    return i;
}

static void free_texts(char **texts, int n)
{
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
}

/* The sweep prompts decoded by the model's tokenizer (pl_decode), as valid UTF-8 (a window may cut a
 * character: invalid sequences become U+FFFD). *TEXTS NULL when the model has no tokenizer (a .bin
 * of token ids needs none) or a prompt holds an id it cannot decode: the file then has no
 * prompt_text. */
static int decode_prompts(const pl_sweep *sw, char ***texts)
{
    *texts = NULL;
    pl_tokenizer *tok = NULL;
    if (pl_tokenizer_open(&tok, sw->cfg->model_path, sw->cfg->tokenizer_path, sw->V) != PL_OK) {
        pl_error_clear();
        return PL_OK;
    }
    char **out = pl_calloc((size_t)sw->P, sizeof(char *), "prompt texts");
    int rc = out ? PL_OK : PL_ERR, undecodable = 0;
    for (int p = 0; p < sw->P && rc == PL_OK && !undecodable; p++) {
        char *raw;
        size_t len;
        /* an id beyond the tokenizer's vocabulary (a model's padded one): no text, never a lost run */
        if (pl_decode(tok, sw->tokens + (size_t)p * sw->T, (size_t)sw->T, &raw, &len) != PL_OK) {
            undecodable = 1;
            break;
        }
        char *clean = pl_malloc(3 * len + 1, "prompt text"), *q = clean; /* U+FFFD: 3 bytes per bad byte */
        rc = clean ? PL_OK : PL_ERR;
        for (size_t i = 0; clean && i < len;) {
            uint32_t cp;
            int n = tok_utf8_next((const unsigned char *)raw + i, len - i, &cp);
            if (n > 0 && cp != 0) {
                memcpy(q, raw + i, (size_t)n), q += n, i += (size_t)n;
            } else { /* NUL too: a netCDF string ends there */
                memcpy(q, "\xef\xbf\xbd", 3), q += 3;
                i += n > 0 ? (size_t)n : ill_formed_length((const unsigned char *)raw + i, len - i);
            }
        }
        if (clean)
            *q = '\0';
        free(raw);
        out[p] = clean;
    }
    pl_tokenizer_free(tok);
    if (rc != PL_OK || undecodable) {
        free_texts(out, sw->P);
        if (undecodable)
            pl_error_clear();
        return rc;
    }
    *texts = out;
    return PL_OK;
}

/* base_norm and direction_norm [base, direction, prompt, sample] of every unit (NaN where the unit has
 * no direction, e.g. sae_active at a base without an active feature). */
static int put_norms(int nc, int v_base, int v_dir, const pl_sweep *sw, const char *path)
{
    size_t n = (size_t)sw->n_units;
    double *bn = pl_malloc(sizeof(double) * 2 * (n ? n : 1), "curve norms"), *dn = bn + n;
    if (!bn)
        return PL_ERR;
    for (long u = 0; u < sw->n_units; u++) {
        pl_unit_id id = pl_unit_decode(sw, u);
        size_t at = (((size_t)id.b * sw->ND + id.d) * sw->P + id.p) * sw->S + id.s;
        bn[at] = dn[at] = NAN;
        if (pl_unit_defined(&sw->ex, id) && pl_unit_norms(&sw->ex, id, &bn[at], &dn[at]) != PL_OK) {
            free(bn);
            return PL_ERR;
        }
    }
    int st = nc_put_var_double(nc, v_base, bn);
    if (st == NC_NOERR)
        st = nc_put_var_double(nc, v_dir, dn);
    free(bn);
    if (st != NC_NOERR)
        return pl_fail("output %s: %s (base_norm, direction_norm)", path, nc_strerror(st));
    return PL_OK;
}

/* Per (metric, score): the variables' ids. */
typedef struct {
    int score, hist, outside, n_pairs, ratio, ratio_ci, diff, diff_ci, p, w;
} score_vars;

/* mu and Sigma of the output's basis: projected onto the mean-zero subspace when centered. */
static void basis_fit(const pl_sweep *sw, double *mu, double *sigma)
{
    int C = sw->C;
    memcpy(mu, sw->mu, sizeof(double) * C);
    memcpy(sigma, sw->sigma, sizeof(double) * (size_t)C * C);
    if (sw->cfg->residual_basis != PL_BASIS_CENTERED)
        return;
    pl_center(mu, C);
    for (int i = 0; i < C; i++) /* rows, then columns: P Sigma P */
        pl_center(sigma + (size_t)i * C, C);
    double *col = malloc(sizeof(double) * C);
    if (!col)
        return;
    for (int j = 0; j < C; j++) {
        for (int i = 0; i < C; i++)
            col[i] = sigma[(size_t)i * C + j];
        pl_center(col, C);
        for (int i = 0; i < C; i++)
            sigma[(size_t)i * C + j] = col[i];
    }
    free(col);
}

/* What the SAE of [sae] path is, as global attributes (the first NetCDF status that is not
 * NC_NOERR). */
static int write_sae_attributes(int nc, const pl_experiment *ex)
{
    const pl_sae *sae = ex->sae;
    int d_sae = sae->d_sae, k = sae->k, s = NC_NOERR;
    s = s ? s : text_att(nc, NC_GLOBAL, "sae_path", sae->dir);
    s = s ? s : text_att(nc, NC_GLOBAL, "sae_sha256", sae->sha256);
    int synthetic = sae->synthetic != 0, b_dec = sae->apply_b_dec_to_input != 0; /* booleans: 0/1 */
    s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "synthetic_sae", NC_INT, 1, &synthetic);
    s = s ? s : text_att(nc, NC_GLOBAL, "sae_hook", sae->hook);
    s = s ? s : text_att(nc, NC_GLOBAL, "sae_architecture", pl_sae_arch_name(sae->arch));
    s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "sae_d_sae", NC_INT, 1, &d_sae);
    if (sae->arch == PL_SAE_TOPK)
        s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "sae_k", NC_INT, 1, &k);
    s = s ? s : text_att(nc, NC_GLOBAL, "sae_normalize_activations", pl_sae_norm_name(sae->norm));
    s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "sae_apply_b_dec_to_input", NC_INT, 1, &b_dec);
    if (ex->sae_bases) {
        int never = ex->sae_bases->n_never_active, none = ex->sae_bases->n_no_feature;
        s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "sae_features_never_active", NC_INT, 1, &never);
        if (ex->sae_bases->feature)
            s = s ? s : nc_put_att_int(nc, NC_GLOBAL, "sae_draws_without_active_feature", NC_INT, 1, &none);
    }
    return s;
}

/* Build the whole file in memory: *MEMIO holds its bytes (free memio->memory). PATH names it in
 * messages. */
static int write_netcdf(const char *path, const pl_results *r, const pl_output_meta *meta, NC_memio *memio)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    const pl_experiment *ex = &sw->ex;
    int NB = sw->NB, ND = sw->ND, P = sw->P, S = sw->S, K = sw->steps, NM = sw->NM, T = sw->T, C = sw->C;
    int Q = cfg->n_quantiles, NC = r->n_comparisons, HB = cfg->histogram_bins, NSC = PL_N_SCORES;
    size_t n_kind = (size_t)P * S;
    float *buf = pl_malloc(sizeof(float) * (size_t)NB * ND * n_kind * K, "output curves");
    double *dbuf = pl_malloc(sizeof(double) * (size_t)(NC > HB + 1 ? NC : HB + 1) * 2, "output values");
    int *ibuf = pl_malloc(sizeof(int) * (size_t)(NC ? NC : 1), "output values");
    double *fit_mu = NULL, *fit_sigma = NULL;
    char *history = NULL, *model_abs = NULL, *data_abs = NULL, **prompt_text = NULL;
    int nc = -1;
    if (!buf || !dbuf || !ibuf || decode_prompts(sw, &prompt_text) != PL_OK)
        goto fail;
    if (cfg->activations) {
        fit_mu = pl_malloc(sizeof(double) * C, "mu");
        fit_sigma = pl_malloc(sizeof(double) * (size_t)C * C, "Sigma");
        if (!fit_mu || !fit_sigma || !sw->sigma)
            goto fail;
        basis_fit(sw, fit_mu, fit_sigma);
    }

    int d_base, d_dir, d_prompt, d_sample, d_alpha, d_q, d_ctx, d_cmp = -1, d_bound = -1, d_bin, d_edge, d_resid = -1,
        d_resid2 = -1;
    int v_alpha, v_base, v_dir, v_prompt, v_sample, v_q, v_tokens, v_next, v_bound = -1, v_act = -1, v_mu = -1,
        v_sigma = -1;
    int v_cmp[5] = {-1, -1, -1, -1, -1};
    int v_edges[PL_N_SCORES];
    int v_raw[PL_N_METRICS], v_mean[PL_N_METRICS], v_median[PL_N_METRICS], v_quant[PL_N_METRICS],
        v_count[PL_N_METRICS];
    score_vars sv[PL_N_METRICS][PL_N_SCORES];
    int v_state[PL_MAX_DIRECTIONS][PL_MAX_UNIT_STATE];
    errno = 0;
    int status = nc_create_mem(PL_NC_MEMORY_NAME, NC_NETCDF4, 1 << 20, &nc);
    if (status != NC_NOERR) {
        pl_fail("output %s: cannot create it in memory: %s", path, nc_strerror(status));
        nc = -1;
        goto fail;
    }
    NC_TRY(nc_def_dim(nc, "base", NB, &d_base));
    NC_TRY(nc_def_dim(nc, "direction", ND, &d_dir));
    NC_TRY(nc_def_dim(nc, "prompt", P, &d_prompt));
    NC_TRY(nc_def_dim(nc, "sample", S, &d_sample));
    NC_TRY(nc_def_dim(nc, "alpha", K, &d_alpha));
    NC_TRY(nc_def_dim(nc, "quantile", Q, &d_q));
    NC_TRY(nc_def_dim(nc, "ctx", T, &d_ctx));
    NC_TRY(nc_def_dim(nc, "hist_bin", HB, &d_bin));
    NC_TRY(nc_def_dim(nc, "hist_edge", HB + 1, &d_edge));
    if (NC) {
        NC_TRY(nc_def_dim(nc, "comparison", NC, &d_cmp));
        NC_TRY(nc_def_dim(nc, "bound", 2, &d_bound));
    }
    if (cfg->activations) {
        NC_TRY(nc_def_dim(nc, "resid", C, &d_resid));
        NC_TRY(nc_def_dim(nc, "resid_col", C, &d_resid2));
    }

    const char *alpha_long, *alpha_units;
    alpha_meaning(cfg, &alpha_long, &alpha_units);
    char alpha_text[1024];
    snprintf(alpha_text, sizeof alpha_text, "%s", alpha_long);
    for (int d = 0; d < ND; d++) /* kinds whose alpha means something else (sae_feature_scale) say so */
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].alpha_meaning)
            snprintf(alpha_text + strlen(alpha_text), sizeof alpha_text - strlen(alpha_text), "; %s",
                     PL_DIRECTION_KINDS[cfg->dirs[d].kind].alpha_meaning);
    NC_TRY(def_coord(nc, "alpha", NC_DOUBLE, 1, &d_alpha, alpha_text, alpha_units, &v_alpha));
    {
        static const char *const mode_names[] = {"to_target", "fixed_norm", "absolute"};
        NC_TRY(text_att(nc, v_alpha, "step_mode", mode_names[cfg->step_mode]));
    }
    NC_TRY(def_var(nc, "base", NC_STRING, 1, &d_base, "base activation kind", "1", &v_base));
    NC_TRY(def_var(nc, "direction", NC_STRING, 1, &d_dir, "direction kind", "1", &v_dir));
    NC_TRY(def_coord(nc, "prompt", NC_INT, 1, &d_prompt, "sweep prompt index", "1", &v_prompt));
    NC_TRY(def_coord(nc, "sample", NC_INT, 1, &d_sample, "direction sample index", "1", &v_sample));
    NC_TRY(def_coord(nc, "quantile", NC_DOUBLE, 1, &d_q, "quantile level", "1", &v_q));
    if (NC) {
        static const char *const cmp_names[] = {"comparison", "comparison_x_base", "comparison_x_direction",
                                                "comparison_y_base", "comparison_y_direction"};
        static const char *const cmp_long[] = {
            "paired comparison x/y of two (base, direction) kinds' scores, by (prompt, sample)",
            "index into base of x", "index into direction of x", "index into base of y",
            "index into direction of y"};
        for (int k = 0; k < 5; k++)
            NC_TRY(def_var(nc, cmp_names[k], k ? NC_INT : NC_STRING, 1, &d_cmp, cmp_long[k], "1", &v_cmp[k]));
        NC_TRY(def_coord(nc, "bound", NC_DOUBLE, 1, &d_bound,
                       "percentile of the bootstrap distribution bounding the 95 % interval", "1", &v_bound));
    }

    int dims_raw[5] = {d_base, d_dir, d_prompt, d_sample, d_alpha};
    int dims_stat[3] = {d_base, d_dir, d_alpha};
    int dims_quant[4] = {d_q, d_base, d_dir, d_alpha};
    int dims_score[4] = {d_base, d_dir, d_prompt, d_sample};
    int dims_hist[3] = {d_base, d_dir, d_bin};
    int dims_ci[2] = {d_cmp, d_bound};
    char name[128], lname[512];
    int used_score[PL_N_SCORES] = {0};
    for (int mi = 0; mi < NM; mi++) {
        int m = cfg->metrics[mi];
        const pl_metric_info *mt = &PL_METRICS[m];
        const char *mn = mt->name, *units = mt->units;
        if (cfg->raw_curves) {
            NC_TRY(def_var(nc, mn, NC_FLOAT, 5, dims_raw, mt->long_name, units, &v_raw[mi]));
            NC_TRY(nc_def_var_deflate(nc, v_raw[mi], 1, 1, 1));
        }
        NC_TRY(def_derived(nc, mn, "_mean", NC_DOUBLE, 3, dims_stat, units, &v_mean[mi],
                           "mean over prompts and samples of %s", mn));
        NC_TRY(def_derived(nc, mn, "_median", NC_DOUBLE, 3, dims_stat, units, &v_median[mi],
                           "median over prompts and samples of %s", mn));
        NC_TRY(def_derived(nc, mn, "_quantiles", NC_DOUBLE, 4, dims_quant, units, &v_quant[mi],
                           "quantiles over prompts and samples of %s (linear interpolation)", mn));
        NC_TRY(def_derived(nc, mn, "_count", NC_INT, 3, dims_stat, "1", &v_count[mi],
                           "curves with a finite %s that entered the statistics", mn));
        const char *curve = mt->score_on == PL_SCORE_ON_ONE_MINUS ? "1 - cosine"
                            : mt->score_on == PL_SCORE_ON_INCREASE ? "ce_loss - ce_loss at alpha 0"
                                                                   : mn;
        for (int sc = 0; sc < NSC; sc++) {
            score_vars *v = &sv[mi][sc];
            if (!r->has_score[mi][sc])
                continue;
            used_score[sc] = 1;
            const char *scn = PL_SCORES[sc].name, *sunits = PL_SCORES[sc].alpha_valued ? alpha_units : "1";
            char ms[128]; /* metric_score: the stem of every variable of this score */
            snprintf(ms, sizeof ms, "%s_%s", mn, scn);
            /* float64 like alpha, so that sel(alpha=onset) finds the step */
            NC_TRY(def_derived(nc, ms, "", NC_DOUBLE, 4, dims_score, sunits, &v->score, "%s (curve: %s)",
                               score_long_name(sc), curve));
            NC_TRY(text_att(nc, v->score, "score_curve", curve));
            if (sc == PL_SCORE_ONSET)
                NC_TRY(nc_put_att_double(nc, v->score, "onset_threshold", NC_DOUBLE, 1, &cfg->onset_threshold));
            if (sc == PL_SCORE_ALPHA_AT_THRESHOLD)
                NC_TRY(nc_put_att_double(nc, v->score, "threshold", NC_DOUBLE, 1, &cfg->thresholds[m]));
            if (sc == PL_SCORE_NONLINEARITY_ALPHA) {
                int fit[2] = {cfg->nl_first, cfg->nl_last};
                NC_TRY(nc_put_att_int(nc, v->score, "fit_steps", NC_INT, 2, fit));
                NC_TRY(nc_put_att_double(nc, v->score, "tolerance", NC_DOUBLE, 1, &cfg->nl_tolerance));
            }
            NC_TRY(def_derived(nc, ms, "_hist", NC_INT, 3, dims_hist, "1", &v->hist,
                               "histogram of %s over prompts and samples (bins: %s_hist_edges)", ms, scn));
            NC_TRY(def_derived(nc, ms, "_hist_outside", NC_INT, 2, dims_hist, "1", &v->outside,
                               "finite %s values outside the histogram's range", ms));
            if (!NC)
                continue;
            NC_TRY(def_derived(nc, ms, "_n_pairs", NC_INT, 1, &d_cmp, "1", &v->n_pairs,
                               "(prompt, sample) pairs where both kinds' %s are finite", ms));
            NC_TRY(def_derived(nc, ms, "_ratio", NC_DOUBLE, 1, &d_cmp, "1", &v->ratio,
                               "median of x's %s over median of y's (paired pairs only)", ms));
            NC_TRY(def_derived(nc, ms, "_ratio_ci", NC_DOUBLE, 2, dims_ci, "1", &v->ratio_ci,
                               "95 %% percentile-bootstrap interval of %s_ratio", ms));
            NC_TRY(def_derived(nc, ms, "_difference", NC_DOUBLE, 1, &d_cmp, sunits, &v->diff,
                               "median over pairs of x's %s minus y's", ms));
            NC_TRY(def_derived(nc, ms, "_difference_ci", NC_DOUBLE, 2, dims_ci, sunits, &v->diff_ci,
                               "95 %% percentile-bootstrap interval of %s_difference", ms));
            NC_TRY(def_derived(nc, ms, "_wilcoxon_p", NC_DOUBLE, 1, &d_cmp, "1", &v->p,
                               "two-sided Wilcoxon signed-rank p-value of x's %s against y's", ms));
            NC_TRY(def_derived(nc, ms, "_wilcoxon_w", NC_DOUBLE, 1, &d_cmp, "1", &v->w,
                               "Wilcoxon W+: sum of the ranks of |x - y| where x > y (%s)", ms));
        }
    }
    for (int sc = 0; sc < NSC; sc++)
        if (used_score[sc]) {
            snprintf(name, sizeof name, "%s_hist_edges", PL_SCORES[sc].name);
            snprintf(lname, sizeof lname, "bin edges of the %s histograms (bins [e_k, e_k+1), the last closed)",
                     PL_SCORES[sc].name);
            NC_TRY(def_coord(nc, name, NC_DOUBLE, 1, &d_edge, lname,
                           PL_SCORES[sc].alpha_valued ? alpha_units : "1", &v_edges[sc]));
        }
    int v_base_norm, v_dir_norm;
    NC_TRY(def_var(nc, "base_norm", NC_DOUBLE, 4, dims_score, "|base| of the curve, in the residual basis",
                   "residual stream units", &v_base_norm));
    NC_TRY(def_var(nc, "direction_norm", NC_DOUBLE, 4, dims_score,
                   "|d| of the curve's direction as its steps use it (centred when they are), before the step "
                   "mode's scaling; step k lies |alpha_k| |d| (to_target), |alpha_k| |base| (fixed_norm) or "
                   "|alpha_k| (absolute) from the base",
                   "residual stream units", &v_dir_norm));
    int v_text = -1;
    if (prompt_text)
        NC_TRY(def_var(nc, "prompt_text", NC_STRING, 1, &d_prompt,
                       "the sweep prompt's tokens decoded by the model's tokenizer (invalid UTF-8 as U+FFFD)", "",
                       &v_text));
    int dims_tok[2] = {d_prompt, d_ctx};
    NC_TRY(def_var(nc, "tokens", NC_INT, 2, dims_tok, "token ids of the prompt", "1", &v_tokens));
    NC_TRY(def_var(nc, "next_token", NC_INT, 1, &d_prompt,
                   "the data's token after the prompt (-1: none); ce_loss at the last position predicts it", "1",
                   &v_next));
    /* the direction kinds' per-unit state (partner, difference_prompts, ...) */
    for (int d = 0; d < ND; d++)
        for (int k = 0; k < ex->dir[d].n_state; k++) {
            const pl_unit_state *st = &ex->dir[d].state[k];
            int dims[4], nd = 0, wdim;
            if (st->per_base)
                dims[nd++] = d_base;
            dims[nd++] = d_prompt;
            dims[nd++] = d_sample;
            if (st->width > 1) {
                if (nc_inq_dimid(nc, st->width_dim, &wdim) != NC_NOERR)
                    NC_TRY(nc_def_dim(nc, st->width_dim, st->width, &wdim));
                dims[nd++] = wdim;
            }
            NC_TRY(def_var(nc, st->name, NC_INT, nd, dims, st->long_name, "1", &v_state[d][k]));
        }
    int v_sae_active = -1;
    if (ex->sae_bases) {
        int d_feature;
        NC_TRY(nc_def_dim(nc, "sae_feature", ex->sae->d_sae, &d_feature));
        NC_TRY(def_var(nc, "sae_feature_active_bases", NC_INT, 1, &d_feature,
                       "bases of the sweep (real: per prompt; synthetic: per prompt and sample) at which the SAE "
                       "feature is active (> 0); 0: never active in the run",
                       "1", &v_sae_active));
    }
    if (cfg->activations) {
        int dims_act[2] = {d_prompt, d_resid}, dims_sigma[2] = {d_resid, d_resid2};
        const char *basis = cfg->residual_basis == PL_BASIS_CENTERED ? "centered" : "raw";
        NC_TRY(def_var(nc, "activation", NC_FLOAT, 2, dims_act,
                       "real activation of each sweep prompt at (hook, position)", "residual stream units", &v_act));
        NC_TRY(def_var(nc, "mu", NC_DOUBLE, 1, &d_resid, "mean of the covariance prompts' activations",
                       "residual stream units", &v_mu));
        NC_TRY(def_var(nc, "sigma", NC_DOUBLE, 2, dims_sigma,
                       "covariance of the covariance prompts' activations (unbiased; the positive-definite Sigma "
                       "sampled from)", "residual stream units squared", &v_sigma));
        NC_TRY(text_att(nc, v_act, "residual_basis", basis));
        NC_TRY(text_att(nc, v_mu, "residual_basis", basis));
        NC_TRY(text_att(nc, v_sigma, "residual_basis", basis));
    }

    /* global attributes */
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int np = P, nr = meta->n_ranks, ppos = sw->pos, rpos = sw->read_pos, boot = cfg->bootstrap;
    int ndup = (int)sw->n_duplicates, nshort = (int)sw->n_short, bos = sw->bos_id;
    int synthetic = meta->synthetic_model != 0, centered = cfg->center_direction != 0;
    char source[256], host[256] = "unknown", data_sha[65];
    snprintf(source, sizeof source, "plateau %s (git %s)", pl_version(), pl_git_commit());
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    history = pl_malloc(strlen(meta->command_line ? meta->command_line : "") + 64, "history");
    if (!history)
        goto fail;
    sprintf(history, "%s: %s", created, meta->command_line ? meta->command_line : "plateau run");
    model_abs = realpath(cfg->model_path, NULL);
    data_abs = realpath(cfg->data_path, NULL);
    if (file_sha256(cfg->data_path, data_sha) != PL_OK)
        goto fail;
    NC_TRY(text_att(nc, NC_GLOBAL, "Conventions", "CF-1.8"));
    NC_TRY(text_att(nc, NC_GLOBAL, "title", "plateau sweep: output sensitivity along perturbation directions"));
    NC_TRY(text_att(nc, NC_GLOBAL, "source", source));
    NC_TRY(text_att(nc, NC_GLOBAL, "history", history));
    NC_TRY(text_att(nc, NC_GLOBAL, "config", meta->config_text));
    NC_TRY(text_att(nc, NC_GLOBAL, "model_path", model_abs ? model_abs : cfg->model_path));
    NC_TRY(text_att(nc, NC_GLOBAL, "model_sha256", meta->model_sha256));
    /* booleans are 0/1 integers (a string "false" is true to Python) */
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "synthetic_model", NC_INT, 1, &synthetic));
    NC_TRY(text_att(nc, NC_GLOBAL, "data_path", data_abs ? data_abs : cfg->data_path));
    NC_TRY(text_att(nc, NC_GLOBAL, "data_sha256", data_sha));
    NC_TRY(text_att(nc, NC_GLOBAL, "git_commit", pl_git_commit()));
    NC_TRY(text_att(nc, NC_GLOBAL, "hostname", host));
    NC_TRY(text_att(nc, NC_GLOBAL, "hook", cfg->hook));
    NC_TRY(text_att(nc, NC_GLOBAL, "read_hook", cfg->read_hook));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "position", NC_INT, 1, &ppos));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "read_position", NC_INT, 1, &rpos));
    NC_TRY(text_att(nc, NC_GLOBAL, "residual_basis", cfg->residual_basis == PL_BASIS_CENTERED ? "centered" : "raw"));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "center_direction", NC_INT, 1, &centered));
    NC_TRY(text_att(nc, NC_GLOBAL, "sampling",
                    cfg->sampling == PL_SAMPLING_RANDOM_WINDOW ? "random_window" : "document_start"));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "duplicate_prompts_dropped", NC_INT, 1, &ndup));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "short_documents_skipped", NC_INT, 1, &nshort));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "bos_token", NC_INT, 1, &bos));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "bootstrap_resamples", NC_INT, 1, &boot));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "n_prompts", NC_INT, 1, &np));
    NC_TRY(text_att(nc, NC_GLOBAL, "plateau_version", pl_version()));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "n_ranks", NC_INT, 1, &nr));
    NC_TRY(nc_put_att_double(nc, NC_GLOBAL, "evals_per_second", NC_DOUBLE, 1, &meta->evals_per_second));
    NC_TRY(text_att(nc, NC_GLOBAL, "created", created));
    NC_TRY(text_att(nc, NC_GLOBAL, "sigma_positive_definite_fix", meta->sigma_note ? meta->sigma_note : ""));
    /* what the bits depend on besides the config and the model: OpenBLAS's build and kernels */
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "threads", NC_INT, 1, &meta->threads));
    NC_TRY(text_att(nc, NC_GLOBAL, "openblas_config", meta->openblas_config ? meta->openblas_config : ""));
    if (ex->sae)
        NC_TRY(write_sae_attributes(nc, ex));
    NC_TRY(nc_enddef(nc));

    /* coordinates */
    NC_TRY(nc_put_var_double(nc, v_alpha, sw->alpha));
    {
        const char *bn[PL_N_BASE_KINDS], *dn[PL_MAX_DIRECTIONS];
        for (int b = 0; b < NB; b++)
            bn[b] = PL_BASE_KINDS[cfg->bases[b]].name;
        for (int d = 0; d < ND; d++)
            dn[d] = cfg->dirs[d].label;
        NC_TRY(nc_put_var_string(nc, v_base, bn));
        NC_TRY(nc_put_var_string(nc, v_dir, dn));
    }
    for (int c = 0; c < NC; c++) {
        const pl_comparison *cp = &r->comparisons[c];
        const char *label = cp->label;
        int idx4[4] = {cp->b1, cp->d1, cp->b2, cp->d2};
        size_t at = (size_t)c;
        NC_TRY(nc_put_var1_string(nc, v_cmp[0], &at, &label));
        for (int k = 1; k < 5; k++)
            NC_TRY(nc_put_var1_int(nc, v_cmp[k], &at, &idx4[k - 1]));
    }
    if (NC) {
        double bounds[2] = {0.025, 0.975};
        NC_TRY(nc_put_var_double(nc, v_bound, bounds));
    }
    int *idx = pl_malloc(sizeof(int) * (size_t)(P > S ? P : S), "indices");
    if (!idx)
        goto fail;
    for (int i = 0; i < P; i++)
        idx[i] = i;
    status = nc_put_var_int(nc, v_prompt, idx);
    if (status == NC_NOERR) {
        for (int i = 0; i < S; i++)
            idx[i] = i;
        status = nc_put_var_int(nc, v_sample, idx);
    }
    free(idx);
    NC_TRY(status);
    if (Q)
        NC_TRY(nc_put_var_double(nc, v_q, cfg->quantiles));
    for (int sc = 0; sc < NSC; sc++)
        if (used_score[sc]) {
            double lo, hi;
            pl_score_range(sw, sc, &lo, &hi);
            for (int k = 0; k <= HB; k++)
                dbuf[k] = k == HB ? hi : lo + (hi - lo) * k / HB;
            NC_TRY(nc_put_var_double(nc, v_edges[sc], dbuf));
        }

    for (int mi = 0; mi < NM; mi++) {
        size_t n_stat = (size_t)NB * ND * K;
        if (cfg->raw_curves) {
            /* table [p, b, d, s, (m), k] -> [b, d, p, s, k] */
            for (int b = 0; b < NB; b++)
                for (int d = 0; d < ND; d++)
                    for (int p = 0; p < P; p++)
                        for (int s = 0; s < S; s++) {
                            long u = (((long)p * NB + b) * ND + d) * S + s;
                            memcpy(buf + ((((size_t)b * ND + d) * P + p) * S + s) * K,
                                   r->curves + ((size_t)u * NM + mi) * K, sizeof(float) * K);
                        }
            NC_TRY(nc_put_var_float(nc, v_raw[mi], buf));
        }
        NC_TRY(nc_put_var_double(nc, v_mean[mi], r->mean + mi * n_stat));
        NC_TRY(nc_put_var_double(nc, v_median[mi], r->median + mi * n_stat));
        if (Q)
            NC_TRY(nc_put_var_double(nc, v_quant[mi], r->quant + mi * n_stat * Q));
        NC_TRY(nc_put_var_int(nc, v_count[mi], r->count + mi * n_stat));
        for (int sc = 0; sc < NSC; sc++) {
            const score_vars *v = &sv[mi][sc];
            if (!r->has_score[mi][sc])
                continue;
            size_t at = (size_t)mi * NSC + sc;
            NC_TRY(nc_put_var_double(nc, v->score, r->scores + at * NB * ND * n_kind));
            NC_TRY(nc_put_var_int(nc, v->hist, r->hist + at * NB * ND * HB));
            NC_TRY(nc_put_var_int(nc, v->outside, r->hist_outside + at * NB * ND));
            if (!NC)
                continue;
            const pl_paired *pp = r->paired + at * NC;
            for (int c = 0; c < NC; c++)
                ibuf[c] = pp[c].n_pairs;
            NC_TRY(nc_put_var_int(nc, v->n_pairs, ibuf));
#define PUT_FIELD(var, field)                                                                                     \
    do {                                                                                                          \
        for (int c = 0; c < NC; c++)                                                                              \
            dbuf[c] = pp[c].field;                                                                                \
        NC_TRY(nc_put_var_double(nc, var, dbuf));                                                                 \
    } while (0)
#define PUT_CI(var, lo, hi)                                                                                       \
    do {                                                                                                          \
        for (int c = 0; c < NC; c++) {                                                                            \
            dbuf[2 * c] = pp[c].lo;                                                                               \
            dbuf[2 * c + 1] = pp[c].hi;                                                                           \
        }                                                                                                         \
        NC_TRY(nc_put_var_double(nc, var, dbuf));                                                                 \
    } while (0)
            PUT_FIELD(v->ratio, ratio);
            PUT_CI(v->ratio_ci, ratio_lo, ratio_hi);
            PUT_FIELD(v->diff, diff);
            PUT_CI(v->diff_ci, diff_lo, diff_hi);
            PUT_FIELD(v->p, p_value);
            PUT_FIELD(v->w, w_plus);
#undef PUT_FIELD
#undef PUT_CI
        }
    }
    if (put_norms(nc, v_base_norm, v_dir_norm, sw, path) != PL_OK)
        goto fail;
    NC_TRY(nc_put_var_int(nc, v_tokens, sw->tokens));
    if (prompt_text)
        NC_TRY(nc_put_var_string(nc, v_text, (const char **)prompt_text));
    NC_TRY(nc_put_var_int(nc, v_next, sw->next_token));
    for (int d = 0; d < ND; d++)
        for (int k = 0; k < ex->dir[d].n_state; k++)
            NC_TRY(nc_put_var_int(nc, v_state[d][k], ex->dir[d].state[k].values));
    if (ex->sae_bases)
        NC_TRY(nc_put_var_int(nc, v_sae_active, ex->sae_bases->active_bases));
    if (cfg->activations) {
        NC_TRY(nc_put_var_float(nc, v_act, sw->real_act));
        NC_TRY(nc_put_var_double(nc, v_mu, fit_mu));
        NC_TRY(nc_put_var_double(nc, v_sigma, fit_sigma));
    }

    status = nc_close_memio(nc, memio);
    nc = -1;
    if (status != NC_NOERR) {
        pl_fail("output %s: cannot finish it in memory: %s", path, nc_strerror(status));
        goto fail;
    }
    free(buf), free(dbuf), free(ibuf), free(fit_mu), free(fit_sigma);
    free(history), free(model_abs), free(data_abs);
    free_texts(prompt_text, P);
    return PL_OK;
fail:
    /* closed, never nc_abort()ed: netCDF's abort of a file being created removes the file of its name */
    if (nc >= 0 && nc_close_memio(nc, memio) == NC_NOERR)
        free(memio->memory);
    memio->memory = NULL;
    free(buf), free(dbuf), free(ibuf), free(fit_mu), free(fit_sigma);
    free(history), free(model_abs), free(data_abs);
    free_texts(prompt_text, P);
    return PL_ERR;
}

int pl_output_write(const char *path, const pl_results *r, const pl_output_meta *meta)
{
    NC_memio memio = {0};
    if (write_netcdf(path, r, meta, &memio) != PL_OK)
        return PL_ERR;
    int rc = pl_write_file_atomic(path, memio.memory, memio.size);
    free(memio.memory);
    if (rc != PL_OK)
        return pl_fail_prefix("output (an earlier file under its name, if any, is untouched)");
    return PL_OK;
}
