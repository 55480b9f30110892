/* Bases and directions of the units: partners of real_other, file: direction matrices, and each
 * unit's step vectors base + alpha * direction. A unit's base and target come from keyed random
 * streams and the shared fit (mu, Sigma, real activations), so its values depend only on its index.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/safetensors.h"
#include "../sweep/sweep_internal.h"

int pl_sweep_setup_grid(pl_sweep *sw)
{
    const pl_sweep_config *cfg = sw->cfg;
    sw->alpha = pl_malloc(sizeof(double) * sw->steps, "alpha grid");
    sw->partner = pl_malloc(sizeof(int) * (size_t)sw->P * sw->S, "partners");
    if (!sw->alpha || !sw->partner)
        return PL_ERR;
    /* linspace(0, alpha_max, steps): k * alpha_max / (steps - 1), exact at both ends */
    for (int k = 0; k < sw->steps; k++)
        sw->alpha[k] = k == sw->steps - 1 ? cfg->alpha_max : cfg->alpha_max * k / (sw->steps - 1);
    int has_real_other = 0;
    for (int d = 0; d < sw->ND; d++)
        has_real_other |= cfg->dirs[d].kind == PL_DIR_REAL_OTHER;
    for (int p = 0; p < sw->P; p++)
        for (int s = 0; s < sw->S; s++) {
            int q = -1;
            if (has_real_other) {
                pl_rng r;
                pl_rng_init(&r, cfg->seed, (uint64_t)p, PL_RNG_PARTNER, (uint64_t)s);
                q = (int)pl_rng_below(&r, (uint64_t)sw->P - 1);
                q += q >= p; /* any other sweep prompt */
            }
            sw->partner[(size_t)p * sw->S + s] = q;
        }
    return PL_OK;
}

/* ------------------------------------------------------------ file: directions */

/* A 2-D little-endian float32/float64 C-order .npy file. */
static int load_npy(const char *path, int C, float **rows, long *n_rows)
{
    char *text = NULL;
    size_t size = 0;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &text, &size) != PL_OK)
        return PL_ERR;
    const unsigned char *b = (const unsigned char *)text;
    int rc = PL_ERR;
    size_t hlen, off;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6)) {
        pl_fail("%s: not a .npy file (bad magic)", path);
        goto done;
    }
    if (b[6] == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (size >= 12) {
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        pl_fail("%s: truncated .npy header", path);
        goto done;
    }
    if (off + hlen > size) {
        pl_fail("%s: truncated .npy header", path);
        goto done;
    }
    char *h = pl_malloc(hlen + 1, "npy header");
    if (!h)
        goto done;
    memcpy(h, b + off, hlen);
    h[hlen] = '\0';
    int f8 = strstr(h, "'descr': '<f8'") != NULL, f4 = strstr(h, "'descr': '<f4'") != NULL;
    long r = -1, c = -1;
    char *shape = strstr(h, "'shape': (");
    if (shape && sscanf(shape, "'shape': (%ld, %ld)", &r, &c) != 2)
        r = c = -1;
    int fortran = strstr(h, "'fortran_order': True") != NULL;
    free(h);
    if (!f4 && !f8) {
        pl_fail("%s: dtype must be little-endian float32 or float64 ('<f4' or '<f8')", path);
        goto done;
    }
    if (fortran) {
        pl_fail("%s: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
        goto done;
    }
    if (r < 1 || c < 1) {
        pl_fail("%s: expected a 2-D array (rows = directions, columns = d_model)", path);
        goto done;
    }
    if (c != C) {
        pl_fail("%s: %ld columns, but the model's residual width is %d", path, c, C);
        goto done;
    }
    size_t esz = f8 ? 8 : 4, n = (size_t)r * c;
    off += hlen;
    if (size - off < n * esz) {
        pl_fail("%s: data is shorter than its shape (%ld x %ld)", path, r, c);
        goto done;
    }
    *rows = pl_malloc(sizeof(float) * n, "direction rows");
    if (!*rows)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (f8) {
            double v;
            memcpy(&v, b + off + 8 * i, 8);
            (*rows)[i] = (float)v;
        } else {
            memcpy(&(*rows)[i], b + off + 4 * i, 4);
        }
    }
    *n_rows = r;
    rc = PL_OK;
done:
    free(text);
    return rc;
}

static int load_safetensors(const char *path, const char *name, int C, float **rows, long *n_rows)
{
    st_file f;
    if (st_open(&f, path) != PL_OK)
        return PL_ERR;
    const st_tensor *t = NULL;
    int rc = PL_ERR;
    if (name) {
        t = st_find(&f, name);
        if (!t) {
            pl_fail("%s: no tensor '%s'", path, name);
            goto done;
        }
    } else {
        int n2 = 0;
        for (int i = 0; i < f.n_tensors; i++)
            if (f.tensors[i].ndim == 2) {
                t = &f.tensors[i];
                n2++;
            }
        if (n2 != 1) {
            pl_fail("%s: %d 2-D tensors; name one as file:%s#TENSOR", path, n2, path);
            goto done;
        }
    }
    if (t->ndim != 2) {
        pl_fail("%s: tensor '%s' has %d dimensions (expected 2: rows = directions)", path, t->name, t->ndim);
        goto done;
    }
    if (t->shape[1] != C) {
        pl_fail("%s: tensor '%s' has %lld columns, but the model's residual width is %d", path, t->name,
                (long long)t->shape[1], C);
        goto done;
    }
    if (t->shape[0] < 1) {
        pl_fail("%s: tensor '%s' has no rows", path, t->name);
        goto done;
    }
    size_t n = (size_t)t->shape[0] * C;
    *rows = pl_malloc(sizeof(float) * n, "direction rows");
    if (!*rows)
        goto done;
    if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
        st_to_f32(t->dtype, t->data, n, *rows);
    } else if (t->dtype == ST_F64) {
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, t->data + 8 * i, 8);
            (*rows)[i] = (float)v;
        }
    } else {
        free(*rows);
        *rows = NULL;
        pl_fail("%s: tensor '%s' is %s (expected F32, F64, F16 or BF16)", path, t->name, st_dtype_name(t->dtype));
        goto done;
    }
    *n_rows = (long)t->shape[0];
    rc = PL_OK;
done:
    st_close(&f);
    return rc;
}

int pl_sweep_load_file_directions(pl_sweep *sw)
{
    for (int d = 0; d < sw->ND; d++) {
        const pl_direction_spec *ds = &sw->cfg->dirs[d];
        if (ds->kind != PL_DIR_FILE)
            continue;
        size_t len = strlen(ds->path);
        int npy = len > 4 && !strcmp(ds->path + len - 4, ".npy");
        int rc = npy ? load_npy(ds->path, sw->C, &sw->file_rows[d], &sw->file_n_rows[d])
                     : load_safetensors(ds->path, ds->tensor, sw->C, &sw->file_rows[d], &sw->file_n_rows[d]);
        const char *origin = pl_sweep_config_origin(sw->cfg, "perturb", "directions");
        if (rc != PL_OK)
            return pl_fail_prefix("%s: [perturb] directions: %s", origin, ds->label);
        if (npy && ds->tensor)
            return pl_fail("%s: [perturb] directions: %s: '#%s' names a tensor, but .npy files hold one array",
                           origin, ds->label, ds->tensor);
    }
    return PL_OK;
}

int pl_unit_steps(const pl_sweep *sw, pl_unit_id id, float *X)
{
    const pl_sweep_config *cfg = sw->cfg;
    int C = sw->C;
    double *base = pl_malloc(sizeof(double) * 2 * C, "unit vectors"), *dir = base + C;
    if (!base)
        return PL_ERR;
    const float *real = sw->real_act + (size_t)id.p * C;
    pl_rng r;
    if (cfg->bases[id.b] == PL_BASE_REAL) {
        for (int c = 0; c < C; c++)
            base[c] = real[c];
    } else {
        /* one synthetic base per (prompt, sample), shared by every direction kind */
        pl_rng_init(&r, cfg->seed, (uint64_t)id.p, PL_RNG_SYNTH_BASE, (uint64_t)id.s);
        pl_sample_gaussian(&r, sw->mu, sw->chol, C, base);
    }
    /* dir = target - base (file: the row itself) */
    const pl_direction_spec *ds = &cfg->dirs[id.d];
    switch (ds->kind) {
    case PL_DIR_COV_RANDOM:
        pl_rng_init(&r, cfg->seed, (uint64_t)id.p, PL_RNG_COV_TARGET, (uint64_t)id.s);
        pl_sample_gaussian(&r, sw->mu, sw->chol, C, dir);
        for (int c = 0; c < C; c++)
            dir[c] -= base[c];
        break;
    case PL_DIR_ISOTROPIC: {
        pl_rng_init(&r, cfg->seed, (uint64_t)id.p, PL_RNG_ISO_TARGET, (uint64_t)id.s);
        double scale = sqrt(sw->trace / C);
        for (int c = 0; c < C; c++)
            dir[c] = sw->mu[c] + scale * pl_rng_gaussian(&r) - base[c];
        break;
    }
    case PL_DIR_REAL_OTHER: {
        const float *t = sw->real_act + (size_t)sw->partner[(size_t)id.p * sw->S + id.s] * C;
        for (int c = 0; c < C; c++)
            dir[c] = (double)t[c] - base[c];
        break;
    }
    default: { /* file: row (prompt * n_directions + sample) mod rows */
        long row = (long)(((long long)id.p * sw->S + id.s) % sw->file_n_rows[id.d]);
        const float *t = sw->file_rows[id.d] + (size_t)row * C;
        for (int c = 0; c < C; c++)
            dir[c] = t[c];
        break;
    }
    }
    double scale = 1.0;
    if (cfg->step_mode == PL_STEP_FIXED_NORM) {
        /* alpha = 1 moves the base by its own norm along the direction */
        double nb = 0.0, nd = 0.0;
        for (int c = 0; c < C; c++) {
            nb += base[c] * base[c];
            nd += dir[c] * dir[c];
        }
        scale = nd > 0.0 ? sqrt(nb) / sqrt(nd) : 0.0;
    }
    for (int k = 0; k < sw->steps; k++) {
        double a = sw->alpha[k] * scale;
        float *x = X + (size_t)k * C;
        for (int c = 0; c < C; c++)
            x[c] = (float)(base[c] + a * dir[c]);
    }
    free(base);
    return PL_OK;
}

