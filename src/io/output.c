/* The NetCDF-4 result file (the layout is the contract with merge and analysis/, see README):
 * written under PATH.tmp.<pid> and renamed over PATH only when complete, so a failed run never
 * leaves a half file under the output name and an earlier output stays untouched. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netcdf.h>

#include "plateau/error.h"
#include "plateau/version.h"
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

static const char *const METRIC_NAMES[] = {"kl", "jsd", "l2", "cosine"};
static const char *const METRIC_LONG[] = {
    "KL(clean || perturbed) of the last position's next-token distribution",
    "Jensen-Shannon divergence of the last position's next-token distributions",
    "L2 distance to the unperturbed run at read_hook, last position",
    "cosine similarity to the unperturbed run at read_hook, last position",
};
static const char *const METRIC_UNITS[] = {"nats", "nats", "residual stream units", "1"};

static int text_att(int nc, int var, const char *name, const char *value)
{
    return nc_put_att_text(nc, var, name, strlen(value), value);
}

static int describe(int nc, int var, const char *long_name, const char *units)
{
    int s = text_att(nc, var, "long_name", long_name);
    return s ? s : text_att(nc, var, "units", units);
}

static int def_var(int nc, const char *name, nc_type type, int ndims, const int *dims, const char *long_name,
                   const char *units, int *var)
{
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

/* Write the whole file to TMP (PATH names it in messages). */
static int write_netcdf(const char *path, const char *tmp, const pl_results *r, const pl_output_meta *meta)
{
    const pl_sweep *sw = r->sw;
    const pl_sweep_config *cfg = sw->cfg;
    int NB = sw->NB, ND = sw->ND, P = sw->P, S = sw->S, K = sw->steps, NM = sw->NM, T = sw->T;
    int Q = cfg->n_quantiles;
    float *buf = pl_malloc(sizeof(float) * (size_t)NB * ND * P * S * K, "output curves");
    int nc = -1;
    if (!buf)
        return PL_ERR;

    int d_base, d_dir, d_prompt, d_sample, d_alpha, d_q, d_ctx;
    int v_alpha, v_base, v_dir, v_prompt, v_sample, v_q, v_tokens, v_partner;
    int v_raw[PL_N_METRICS], v_mean[PL_N_METRICS], v_median[PL_N_METRICS], v_quant[PL_N_METRICS],
        v_count[PL_N_METRICS], v_onset[PL_N_METRICS], v_slope[PL_N_METRICS], v_sharp[PL_N_METRICS];
    errno = 0;
    int status = nc_create(tmp, NC_NETCDF4 | NC_CLOBBER, &nc);
    if (status != NC_NOERR) {
        pl_fail("output %s: cannot create %s: %s", path, tmp, nc_strerror(status));
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

    NC_TRY(def_var(nc, "alpha", NC_DOUBLE, 1, &d_alpha,
                   cfg->step_mode == PL_STEP_TO_TARGET ? "step fraction toward the target"
                                                       : "step length as a fraction of the base's norm",
                   "1", &v_alpha));
    NC_TRY(def_var(nc, "base", NC_STRING, 1, &d_base, "base activation kind", "1", &v_base));
    NC_TRY(def_var(nc, "direction", NC_STRING, 1, &d_dir, "direction kind", "1", &v_dir));
    NC_TRY(def_var(nc, "prompt", NC_INT, 1, &d_prompt, "sweep prompt index", "1", &v_prompt));
    NC_TRY(def_var(nc, "sample", NC_INT, 1, &d_sample, "direction sample index", "1", &v_sample));
    NC_TRY(def_var(nc, "quantile", NC_DOUBLE, 1, &d_q, "quantile level", "1", &v_q));

    int dims_raw[5] = {d_base, d_dir, d_prompt, d_sample, d_alpha};
    int dims_stat[3] = {d_base, d_dir, d_alpha};
    int dims_quant[4] = {d_q, d_base, d_dir, d_alpha};
    int dims_score[4] = {d_base, d_dir, d_prompt, d_sample};
    char name[64], lname[256];
    for (int mi = 0; mi < NM; mi++) {
        int m = cfg->metrics[mi];
        const char *mn = METRIC_NAMES[m], *units = METRIC_UNITS[m];
        if (cfg->raw_curves) {
            NC_TRY(def_var(nc, mn, NC_FLOAT, 5, dims_raw, METRIC_LONG[m], units, &v_raw[mi]));
            NC_TRY(nc_def_var_deflate(nc, v_raw[mi], 1, 1, 1));
        }
        snprintf(name, sizeof name, "%s_mean", mn);
        snprintf(lname, sizeof lname, "mean over prompts and samples of %s", mn);
        NC_TRY(def_var(nc, name, NC_DOUBLE, 3, dims_stat, lname, units, &v_mean[mi]));
        snprintf(name, sizeof name, "%s_median", mn);
        snprintf(lname, sizeof lname, "median over prompts and samples of %s", mn);
        NC_TRY(def_var(nc, name, NC_DOUBLE, 3, dims_stat, lname, units, &v_median[mi]));
        snprintf(name, sizeof name, "%s_quantiles", mn);
        snprintf(lname, sizeof lname, "quantiles over prompts and samples of %s (linear interpolation)", mn);
        NC_TRY(def_var(nc, name, NC_DOUBLE, 4, dims_quant, lname, units, &v_quant[mi]));
        snprintf(name, sizeof name, "%s_count", mn);
        snprintf(lname, sizeof lname, "curves with a finite %s that entered the statistics", mn);
        NC_TRY(def_var(nc, name, NC_INT, 3, dims_stat, lname, "1", &v_count[mi]));
        const char *of = m == PL_METRIC_COSINE ? "1 - cosine" : mn;
        snprintf(name, sizeof name, "%s_onset", mn);
        snprintf(lname, sizeof lname, "first alpha where %s, normalised by its value at the last alpha, exceeds %g",
                 of, cfg->onset_threshold);
        NC_TRY(def_var(nc, name, NC_FLOAT, 4, dims_score, lname, "1", &v_onset[mi]));
        snprintf(name, sizeof name, "%s_max_slope_alpha", mn);
        snprintf(lname, sizeof lname, "alpha (step midpoint) of the steepest rise of %s", of);
        NC_TRY(def_var(nc, name, NC_FLOAT, 4, dims_score, lname, "1", &v_slope[mi]));
        snprintf(name, sizeof name, "%s_sharpness", mn);
        snprintf(lname, sizeof lname, "largest step-to-step rise of normalised %s times (steps - 1)", of);
        NC_TRY(def_var(nc, name, NC_FLOAT, 4, dims_score, lname, "1", &v_sharp[mi]));
    }
    int dims_tok[2] = {d_prompt, d_ctx}, dims_partner[2] = {d_prompt, d_sample};
    NC_TRY(def_var(nc, "tokens", NC_INT, 2, dims_tok, "token ids of the prompt", "1", &v_tokens));
    NC_TRY(def_var(nc, "partner", NC_INT, 2, dims_partner,
                   "prompt whose real activation is the real_other target (-1: unused)", "1", &v_partner));

    /* global attributes */
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int np = P, nr = meta->n_ranks;
    NC_TRY(text_att(nc, NC_GLOBAL, "Conventions", "CF-1.8"));
    NC_TRY(text_att(nc, NC_GLOBAL, "title", "plateau sweep: output sensitivity along perturbation directions"));
    NC_TRY(text_att(nc, NC_GLOBAL, "config", meta->config_text));
    NC_TRY(text_att(nc, NC_GLOBAL, "model_path", cfg->model_path));
    NC_TRY(text_att(nc, NC_GLOBAL, "model_sha256", meta->model_sha256));
    NC_TRY(text_att(nc, NC_GLOBAL, "synthetic_model", meta->synthetic_model ? "true" : "false"));
    NC_TRY(text_att(nc, NC_GLOBAL, "hook", cfg->hook));
    NC_TRY(text_att(nc, NC_GLOBAL, "read_hook", cfg->read_hook));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "n_prompts", NC_INT, 1, &np));
    NC_TRY(text_att(nc, NC_GLOBAL, "plateau_version", pl_version()));
    NC_TRY(nc_put_att_int(nc, NC_GLOBAL, "n_ranks", NC_INT, 1, &nr));
    NC_TRY(nc_put_att_double(nc, NC_GLOBAL, "evals_per_second", NC_DOUBLE, 1, &meta->evals_per_second));
    NC_TRY(text_att(nc, NC_GLOBAL, "created", created));
    NC_TRY(text_att(nc, NC_GLOBAL, "sigma_positive_definite_fix", meta->sigma_note ? meta->sigma_note : ""));
    NC_TRY(nc_enddef(nc));

    /* coordinates */
    NC_TRY(nc_put_var_double(nc, v_alpha, sw->alpha));
    {
        static const char *base_names[] = {"real", "synthetic"};
        const char *bn[PL_N_BASE_KINDS], *dn[PL_MAX_DIRECTIONS];
        for (int b = 0; b < NB; b++)
            bn[b] = base_names[cfg->bases[b]];
        for (int d = 0; d < ND; d++)
            dn[d] = cfg->dirs[d].label;
        NC_TRY(nc_put_var_string(nc, v_base, bn));
        NC_TRY(nc_put_var_string(nc, v_dir, dn));
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

    for (int mi = 0; mi < NM; mi++) {
        size_t n_stat = (size_t)NB * ND * K, n_score = (size_t)NB * ND * P * S;
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
        NC_TRY(nc_put_var_float(nc, v_onset[mi], r->onset + mi * n_score));
        NC_TRY(nc_put_var_float(nc, v_slope[mi], r->slope_alpha + mi * n_score));
        NC_TRY(nc_put_var_float(nc, v_sharp[mi], r->sharp + mi * n_score));
    }
    NC_TRY(nc_put_var_int(nc, v_tokens, sw->tokens));
    NC_TRY(nc_put_var_int(nc, v_partner, sw->partner));

    status = nc_close(nc);
    nc = -1;
    if (status != NC_NOERR) {
        pl_fail("output %s: cannot finish %s: %s", path, tmp, nc_strerror(status));
        goto fail;
    }
    free(buf);
    return PL_OK;
fail:
    /* No nc_abort/nc_close: after a failed HDF5 write they can crash, and this runs in a child that
     * exits right away; the parent removes the temp file. */
    free(buf);
    return PL_ERR;
}

/* The file is written by a forked child: HDF5 (1.10, as in Debian 12) can crash on a write error
 * such as a full disk, and in a child that crash costs only the child. The parent reads the
 * child's message through a pipe, and renames the finished file over PATH or removes it. */
int pl_output_write(const char *path, const pl_results *r, const pl_output_meta *meta)
{
    size_t tlen = strlen(path) + 32;
    char *tmp = pl_malloc(tlen, "output name");
    if (!tmp)
        return PL_ERR;
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fds[2];
    if (pipe(fds) != 0) {
        free(tmp);
        return pl_fail("output %s: pipe: %s", path, strerror(errno));
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        close(fds[0]), close(fds[1]);
        free(tmp);
        return pl_fail("output %s: fork: %s", path, strerror(errno));
    }
    if (child == 0) {
        close(fds[0]);
        int ok = write_netcdf(path, tmp, r, meta) == PL_OK;
        if (!ok) {
            const char *msg = pl_error();
            ssize_t left = (ssize_t)strlen(msg);
            while (left > 0) {
                ssize_t n = write(fds[1], msg, (size_t)left);
                if (n <= 0)
                    break;
                msg += n;
                left -= n;
            }
        }
        close(fds[1]);
        _exit(ok ? 0 : 1); /* no atexit handlers: the parent owns MPI and stdio */
    }
    close(fds[1]);
    char msg[2048];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fds[0], msg + got, sizeof msg - 1 - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EINTR || got == sizeof msg - 1)
            break;
    }
    msg[got] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = PL_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (rename(tmp, path) != 0)
            rc = pl_fail("output %s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    } else if (WIFEXITED(status)) {
        rc = pl_fail("%s (earlier output, if any, is untouched)", got ? msg : "output: write failed");
    } else {
        rc = pl_fail("output %s: the NetCDF library crashed writing %s (signal %d%s%s); earlier output, if any, "
                     "is untouched",
                     path, tmp, WIFSIGNALED(status) ? WTERMSIG(status) : 0, got ? "; " : "", got ? msg : "");
    }
    if (rc != PL_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}
