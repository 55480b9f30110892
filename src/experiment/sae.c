/* A SAELens SAE dir: cfg.json and sae_weights.safetensors, checked as strictly as a model dir, and
 * the SAE's encoding and decoding (see sae.h for the math and SAELens's conventions). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>
#include <jansson.h>

#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/watch.h"
#include "sae.h"

#define MAX_CFG_BYTES ((size_t)16 << 20)
#define LAYER_NORM_EPS 1e-5 /* SAELens's run_time_activation_ln_in */

const char *pl_sae_arch_name(int arch)
{
    return arch == PL_SAE_JUMPRELU ? "jumprelu" : arch == PL_SAE_TOPK ? "topk" : "standard";
}

const char *pl_sae_norm_name(int norm)
{
    return norm == PL_SAE_NORM_CONSTANT_NORM_RESCALE ? "constant_norm_rescale"
           : norm == PL_SAE_NORM_LAYER_NORM         ? "layer_norm"
                                                     : "none";
}

/* ------------------------------------------------------------ cfg.json */

/* A positive integer key (a JSON integer, not 768.0 or "768") at most MAX. */
static int cfg_int(const char *file, json_t *cfg, const char *key, long max, int required, long *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (required)
            return pl_fail("%s: '%s' is missing", file, key);
        *out = 0;
        return PL_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return pl_fail("%s: '%s' must be an integer in 1..%ld", file, key, max);
    *out = (long)json_integer_value(v);
    return PL_OK;
}

static int cfg_bool(const char *file, json_t *cfg, const char *key, int def, int *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return PL_OK;
    }
    if (!json_is_boolean(v))
        return pl_fail("%s: '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return PL_OK;
}

/* The hook the SAE reads: SAELens 6 writes metadata.hook_name (older: hook_name, or hook_point before
 * that); every place that names one must agree. */
static int cfg_hook(const char *file, json_t *cfg, char *out, size_t size)
{
    static const char *const places[][2] = {
        {NULL, "hook_name"}, {NULL, "hook_point"}, {"metadata", "hook_name"}, {"meta", "hook_name"}};
    const char *found = NULL, *where = NULL;
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        json_t *obj = places[i][0] ? json_object_get(cfg, places[i][0]) : cfg;
        json_t *v = json_is_object(obj) ? json_object_get(obj, places[i][1]) : NULL;
        if (!v || json_is_null(v))
            continue;
        char here[64];
        snprintf(here, sizeof here, "%s%s%s", places[i][0] ? places[i][0] : "", places[i][0] ? "." : "",
                 places[i][1]);
        if (!json_is_string(v))
            return pl_fail("%s: '%s' must be a string", file, here);
        if (found && strcmp(found, json_string_value(v)))
            return pl_fail("%s: '%s' is '%s' but '%s' is '%s'", file, where, found, here, json_string_value(v));
        if (!found) {
            found = json_string_value(v);
            where = places[i][0] ? (i == 2 ? "metadata.hook_name" : "meta.hook_name") : places[i][1];
        }
    }
    if (!found)
        return pl_fail("%s: no hook name (hook_name, hook_point or metadata.hook_name)", file);
    if (strlen(found) >= size)
        return pl_fail("%s: hook name '%.40s...' is too long", file, found);
    /* by the one hook syntax (blocks.01 is blocks.1); a name it refuses is kept as written, and the
     * sweep refuses it by name as no residual hook of the model */
    if (pl_hook_canonical(found, out, size) != PL_OK) {
        snprintf(out, size, "%s", found);
        pl_error_clear();
    }
    return PL_OK;
}

/* Which residual basis the SAE was trained in, when cfg.json says: SAELens passes
 * model_from_pretrained_kwargs to TransformerLens's from_pretrained, whose center_writing_weights
 * (default true) makes every residual of a LayerNorm model mean-zero. -1 when not stated as a boolean. */
static int cfg_writing_centered(json_t *cfg)
{
    json_t *kw = json_object_get(cfg, "model_from_pretrained_kwargs");
    json_t *meta = json_object_get(cfg, "metadata");
    if (!json_is_object(kw) && json_is_object(meta))
        kw = json_object_get(meta, "model_from_pretrained_kwargs");
    json_t *v = json_is_object(kw) ? json_object_get(kw, "center_writing_weights") : NULL;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* Keys that change the math and that plateau does not implement: refused by name. */
static int cfg_refusals(const char *file, json_t *cfg)
{
    static const char *const heads[] = {"hook_head_index", "hook_point_head_index"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(cfg, heads[i]);
        json_t *meta = json_object_get(cfg, "metadata");
        if ((!v || json_is_null(v)) && json_is_object(meta))
            v = json_object_get(meta, heads[i]);
        if (v && !json_is_null(v))
            return pl_fail("%s: '%s' is set: SAEs of one attention head are not residual-stream SAEs", file,
                           heads[i]);
    }
    int fsf = 0;
    if (cfg_bool(file, cfg, "finetuning_scaling_factor", 0, &fsf) != PL_OK)
        return PL_ERR;
    if (fsf)
        return pl_fail("%s: 'finetuning_scaling_factor' is true: a finetuned decoder scale is not implemented", file);
    json_t *reshape = json_object_get(cfg, "reshape_activations");
    if (reshape && !json_is_null(reshape) && !(json_is_string(reshape) && !strcmp(json_string_value(reshape), "none")))
        return pl_fail("%s: 'reshape_activations' must be \"none\" (hook_z SAEs do not read the residual stream)",
                       file);
    return PL_OK;
}

static int cfg_architecture(const char *file, json_t *cfg, pl_sae *sae)
{
    json_t *a = json_object_get(cfg, "architecture");
    const char *arch = "standard";
    if (a && !json_is_null(a)) {
        if (!json_is_string(a))
            return pl_fail("%s: 'architecture' must be a string", file);
        arch = json_string_value(a);
    }
    if (!strcmp(arch, "standard"))
        sae->arch = PL_SAE_STANDARD;
    else if (!strcmp(arch, "jumprelu"))
        sae->arch = PL_SAE_JUMPRELU;
    else if (!strcmp(arch, "topk"))
        sae->arch = PL_SAE_TOPK;
    else
        return pl_fail("%s: architecture '%s' is not implemented (standard, jumprelu, topk)", file, arch);
    /* before SAELens 6 a TopK SAE was architecture standard with activation_fn(_str) topk */
    static const char *const fn_keys[] = {"activation_fn", "activation_fn_str"};
    for (int i = 0; i < 2; i++) {
        json_t *fn = json_object_get(cfg, fn_keys[i]);
        if (!fn || json_is_null(fn))
            continue;
        const char *name = json_is_string(fn) ? json_string_value(fn) : "";
        int relu = !strcmp(name, "relu"), topk = !strcmp(name, "topk");
        if (topk && sae->arch == PL_SAE_STANDARD)
            sae->arch = PL_SAE_TOPK;
        else if (!(relu && sae->arch != PL_SAE_TOPK) && !(topk && sae->arch == PL_SAE_TOPK))
            return pl_fail("%s: '%s' %s%s%s is not implemented for architecture %s (relu; topk)", file, fn_keys[i],
                           json_is_string(fn) ? "'" : "", json_is_string(fn) ? name : "(not a string)",
                           json_is_string(fn) ? "'" : "", arch);
    }
    if (sae->arch != PL_SAE_TOPK)
        return PL_OK;
    long k_top = 0, k_kw = 0;
    json_t *kw = json_object_get(cfg, "activation_fn_kwargs");
    if (cfg_int(file, cfg, "k", 1L << 30, 0, &k_top) != PL_OK)
        return PL_ERR;
    if (json_is_object(kw) && cfg_int(file, kw, "k", 1L << 30, 0, &k_kw) != PL_OK)
        return pl_fail_prefix("activation_fn_kwargs");
    if (k_top && k_kw && k_top != k_kw)
        return pl_fail("%s: 'k' is %ld but activation_fn_kwargs.k is %ld", file, k_top, k_kw);
    if (!k_top && !k_kw)
        return pl_fail("%s: a topk SAE needs 'k' (or activation_fn_kwargs.k)", file);
    sae->k = (int)(k_top ? k_top : k_kw);
    return PL_OK;
}

static int cfg_normalization(const char *file, json_t *cfg, pl_sae *sae)
{
    json_t *v = json_object_get(cfg, "normalize_activations");
    sae->norm = PL_SAE_NORM_NONE;
    if (!v || json_is_null(v) || json_is_false(v))
        return PL_OK;
    const char *name = json_is_true(v) ? "expected_average_only_in" /* SAELens reads true so */
                       : json_is_string(v) ? json_string_value(v)
                                           : NULL;
    if (!name)
        return pl_fail("%s: 'normalize_activations' must be a string", file);
    if (!strcmp(name, "none"))
        return PL_OK;
    if (!strcmp(name, "constant_norm_rescale")) {
        sae->norm = PL_SAE_NORM_CONSTANT_NORM_RESCALE;
        return PL_OK;
    }
    if (!strcmp(name, "layer_norm")) {
        sae->norm = PL_SAE_NORM_LAYER_NORM;
        return PL_OK;
    }
    if (!strcmp(name, "expected_average_only_in"))
        return pl_fail("%s: normalize_activations 'expected_average_only_in' scales inputs by sqrt(d_in) over the "
                       "training data's average norm, which the dir does not hold: fold it into the weights (SAELens's "
                       "fold_activation_norm_scaling_factor) and set normalize_activations to \"none\"",
                       file);
    return pl_fail("%s: normalize_activations '%s' is not implemented (none, constant_norm_rescale, layer_norm)", file,
                   name);
}

static int read_cfg(pl_sae *sae, const char *path, int d_model, char **text, size_t *size)
{
    if (pl_watch_file(path, "SAE cfg.json") != PL_OK || pl_read_file(path, MAX_CFG_BYTES, text, size) != PL_OK)
        return PL_ERR;
    json_error_t jerr;
    json_t *cfg = json_loadb(*text, *size, 0, &jerr);
    if (!cfg)
        return pl_fail("%s: line %d: %s", path, jerr.line, jerr.text);
    int rc = PL_ERR;
    long d_in, d_sae;
    if (!json_is_object(cfg)) {
        pl_fail("%s: not a JSON object", path);
        goto done;
    }
    if (cfg_int(path, cfg, "d_in", 1L << 20, 1, &d_in) != PL_OK ||
        cfg_int(path, cfg, "d_sae", 1L << 26, 1, &d_sae) != PL_OK ||
        cfg_hook(path, cfg, sae->hook, sizeof sae->hook) != PL_OK || cfg_refusals(path, cfg) != PL_OK)
        goto done;
    sae->d_in = (int)d_in;
    sae->d_sae = (int)d_sae;
    sae->writing_centered = cfg_writing_centered(cfg);
    if (d_in != d_model) {
        pl_fail("%s: d_in is %ld, but the model's residual width is %d", path, d_in, d_model);
        goto done;
    }
    if (cfg_architecture(path, cfg, sae) != PL_OK || cfg_normalization(path, cfg, sae) != PL_OK ||
        cfg_bool(path, cfg, "apply_b_dec_to_input", 1, &sae->apply_b_dec_to_input) != PL_OK ||
        cfg_bool(path, cfg, "plateau_synthetic", 0, &sae->synthetic) != PL_OK)
        goto done;
    if (sae->arch == PL_SAE_TOPK && sae->k > sae->d_sae) {
        pl_fail("%s: k = %d is more than d_sae = %d", path, sae->k, sae->d_sae);
        goto done;
    }
    rc = PL_OK;
done:
    json_decref(cfg);
    return rc;
}

/* ------------------------------------------------------------ sae_weights.safetensors */

/* The fp32 view of tensor NAME of shape [D0] or [D0, D1] (D1 = 0: 1-D): in place when aligned F32,
 * else a converted copy kept in sae->owned[SLOT]. Every element must be finite. */
static const float *tensor_f32(pl_sae *sae, const char *path, const char *name, int64_t d0, int64_t d1, int slot)
{
    const st_tensor *t = st_find(&sae->file, name);
    if (!t) {
        pl_fail("%s: tensor '%s' is missing", path, name);
        return NULL;
    }
    int ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[96] = "", want[64];
        for (int i = 0; i < t->ndim && strlen(got) < 64; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (d1)
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        else
            snprintf(want, sizeof want, "[%lld]", (long long)d0);
        pl_fail("%s: tensor '%s' has shape [%s], expected %s (from cfg.json's d_in and d_sae)", path, name, got, want);
        return NULL;
    }
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    const float *out;
    if (t->dtype == ST_F32 && !((uintptr_t)t->data & 3u)) {
        out = (const float *)t->data;
    } else if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64) {
        float *copy = pl_malloc(sizeof(float) * n, "SAE weights");
        if (!copy)
            return NULL;
        sae->owned[slot] = copy;
        if (t->dtype == ST_F64)
            for (size_t i = 0; i < n; i++) {
                double v;
                memcpy(&v, t->data + 8 * i, 8);
                copy[i] = (float)v;
            }
        else
            st_to_f32(t->dtype, t->data, n, copy);
        out = copy;
    } else {
        pl_fail("%s: tensor '%s' is %s (expected F32, F16, BF16 or F64)", path, name, st_dtype_name(t->dtype));
        return NULL;
    }
    return st_check_finite(path, name, out, n) == PL_OK ? out : NULL;
}

/* The weights are mmapped read-only, as a model's are: aligned F32 tensors are used in place, so every
 * rank of a node shares one copy (the page cache), and an SAE of any size loads (Gemma Scope's widest
 * are 5-19 GB). The mapping is watched (plateau/watch.h): a file changed during the run stops it by
 * name, and a SIGBUS from one truncated under it exits 2 naming the file. */
static int read_weights(pl_sae *sae, const char *path)
{
    /* watched as a file too, for the whole process: a series' models open it one after another, and the
     * first identity is what every model must read (the mapping's watch ends with each model's close) */
    if (pl_watch_file(path, "SAE weights file") != PL_OK || st_open(&sae->file, path, "SAE weights file") != PL_OK)
        return PL_ERR;
    sae->file_open = 1;
    int D = sae->d_in, F = sae->d_sae, jump = sae->arch == PL_SAE_JUMPRELU;
    sae->W_enc = tensor_f32(sae, path, "W_enc", D, F, 0);
    sae->b_enc = sae->W_enc ? tensor_f32(sae, path, "b_enc", F, 0, 1) : NULL;
    sae->W_dec = sae->b_enc ? tensor_f32(sae, path, "W_dec", F, D, 2) : NULL;
    sae->b_dec = sae->W_dec ? tensor_f32(sae, path, "b_dec", D, 0, 3) : NULL;
    if (!sae->b_dec)
        return PL_ERR;
    if (jump && !(sae->threshold = tensor_f32(sae, path, "threshold", F, 0, 4)))
        return st_find(&sae->file, "threshold") ? PL_ERR
                                                 : pl_fail("%s: tensor 'threshold' is missing: a jumprelu SAE needs "
                                                           "one threshold per feature",
                                                           path);
    for (int i = 0; i < sae->file.n_tensors; i++) {
        const char *name = sae->file.tensors[i].name;
        if (!strcmp(name, "W_enc") || !strcmp(name, "b_enc") || !strcmp(name, "W_dec") || !strcmp(name, "b_dec") ||
            (jump && !strcmp(name, "threshold")))
            continue;
        if (!strcmp(name, "scaling_factor")) { /* SAELens drops it when it is all ones, and so does plateau */
            const float *s = tensor_f32(sae, path, name, F, 0, 5);
            if (!s)
                return PL_ERR;
            for (int f = 0; f < F; f++)
                if (s[f] != 1.0f)
                    return pl_fail("%s: tensor 'scaling_factor' is not all ones (element %d is %g): a finetuning "
                                   "scaling factor is not implemented",
                                   path, f, s[f]);
            free(sae->owned[5]);
            sae->owned[5] = NULL;
            continue;
        }
        return pl_fail("%s: unexpected tensor '%s' (a %s SAE has W_enc, b_enc, W_dec, b_dec%s)", path, name,
                       pl_sae_arch_name(sae->arch), jump ? ", threshold" : "");
    }
    return PL_OK;
}

int pl_sae_open(pl_sae *sae, const char *dir, int d_model)
{
    memset(sae, 0, sizeof *sae);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return pl_fail("%s: cannot open SAE dir: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return pl_fail("%s: not a directory (an SAE is a SAELens dir: cfg.json + sae_weights.safetensors)", dir);
    size_t len = strlen(dir) + 32;
    char *cfg_path = pl_malloc(len, "path"), *text = NULL;
    size_t text_size = 0;
    sae->dir = pl_malloc(strlen(dir) + 1, "path");
    sae->weights_path = pl_malloc(len, "path"); /* the mapped file's name outlives the open (st_file) */
    int rc = PL_ERR;
    if (!cfg_path || !sae->weights_path || !sae->dir)
        goto done;
    strcpy(sae->dir, dir);
    snprintf(cfg_path, len, "%s/cfg.json", dir);
    snprintf(sae->weights_path, len, "%s/sae_weights.safetensors", dir);
    if (read_cfg(sae, cfg_path, d_model, &text, &text_size) != PL_OK || read_weights(sae, sae->weights_path) != PL_OK)
        goto done;
    pl_sha256 *h;
    if (pl_sha256_begin(&h) != PL_OK)
        goto done;
    if (pl_sha256_update(h, text, text_size) != PL_OK ||
        pl_sha256_update(h, sae->file.bytes, sae->file.size) != PL_OK) {
        char ignored[65];
        pl_sha256_end(h, ignored);
        pl_fail("%s: sha256 failed", dir);
        goto done;
    }
    if (pl_sha256_end(h, sae->sha256) != PL_OK)
        goto done;
    rc = PL_OK;
done:
    free(cfg_path);
    free(text);
    if (rc != PL_OK)
        pl_sae_close(sae);
    return rc;
}

void pl_sae_close(pl_sae *sae)
{
    if (sae->file_open)
        st_close(&sae->file);
    for (int i = 0; i < 6; i++)
        free(sae->owned[i]);
    free(sae->dir);
    free(sae->weights_path);
    memset(sae, 0, sizeof *sae);
}

/* ------------------------------------------------------------ encoding and decoding */

size_t pl_sae_encode_scratch(const pl_sae *sae, int N)
{
    return sizeof(float) * ((size_t)N * sae->d_in + (size_t)sae->d_sae);
}

/* out[N, n] = a[N, K] b[K, n]: one sgemm (sgemv for one row: OpenBLAS does not route M = 1 itself). */
static void matmul(const float *a, const float *b, int N, int K, int n, float *out)
{
    if (N == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, K, n, 1.0f, b, n, a, 1, 0.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, n, K, 1.0f, a, K, b, n, 0.0f, out, n);
}

/* The K-th largest of v[n] (a quickselect on a copy in TMP[n]). */
static float kth_largest(const float *v, int n, int K, float *tmp)
{
    memcpy(tmp, v, sizeof(float) * n);
    int lo = 0, hi = n - 1, want = K - 1; /* the element of rank K - 1 in descending order */
    while (lo < hi) {
        float pivot = tmp[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (i < hi && tmp[i] > pivot) /* bounded: a NaN (an overflowing step) stops no scan */
                i++;
            while (j > lo && tmp[j] < pivot)
                j--;
            if (i <= j) {
                float t = tmp[i];
                tmp[i++] = tmp[j];
                tmp[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            break;
    }
    return tmp[want];
}

void pl_sae_encode(const pl_sae *sae, const float *x, int N, void *scratch, float *acts, float *gain, float *shift)
{
    int D = sae->d_in, F = sae->d_sae;
    float *xin = scratch, *tmp = xin + (size_t)N * D;
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * D;
        float *o = xin + (size_t)r * D;
        double g = 1.0, m = 0.0, scale = 1.0;
        if (sae->norm == PL_SAE_NORM_CONSTANT_NORM_RESCALE) {
            double n2 = 0.0;
            for (int c = 0; c < D; c++)
                n2 += (double)xr[c] * xr[c];
            g = sqrt(n2) / sqrt((double)D); /* x sqrt(d_in) / |x| in, divided by that factor out */
            scale = 1.0 / g;
        } else if (sae->norm == PL_SAE_NORM_LAYER_NORM) {
            double s = 0.0, v = 0.0;
            for (int c = 0; c < D; c++)
                s += xr[c];
            m = s / D;
            for (int c = 0; c < D; c++)
                v += ((double)xr[c] - m) * ((double)xr[c] - m);
            g = sqrt(v / (D - 1)); /* torch's std: unbiased */
            scale = 1.0 / (g + LAYER_NORM_EPS);
        }
        for (int c = 0; c < D; c++)
            o[c] = (float)(((double)xr[c] - m) * scale) - (sae->apply_b_dec_to_input ? sae->b_dec[c] : 0.0f);
        if (gain)
            gain[r] = (float)g;
        if (shift)
            shift[r] = (float)m;
    }
    matmul(xin, sae->W_enc, N, D, F, acts);
    for (int r = 0; r < N; r++) {
        float *a = acts + (size_t)r * F;
        for (int f = 0; f < F; f++)
            a[f] += sae->b_enc[f];
        if (sae->arch == PL_SAE_TOPK) {
            float t = kth_largest(a, F, sae->k, tmp);
            int above = 0;
            for (int f = 0; f < F; f++)
                above += a[f] > t;
            int ties = sae->k - above; /* values equal to the k-th largest that are kept */
            for (int f = 0; f < F; f++) {
                int keep = a[f] > t || (a[f] == t && ties-- > 0);
                a[f] = keep && a[f] > 0.0f ? a[f] : 0.0f;
            }
        } else {
            for (int f = 0; f < F; f++) {
                int on = a[f] > 0.0f && (sae->arch != PL_SAE_JUMPRELU || a[f] > sae->threshold[f]);
                a[f] = on ? a[f] : 0.0f;
            }
        }
    }
}

void pl_sae_decode(const pl_sae *sae, const float *acts, int N, const float *gain, const float *shift, float *out)
{
    int D = sae->d_in;
    matmul(acts, sae->W_dec, N, sae->d_sae, D, out);
    for (int r = 0; r < N; r++) {
        float *o = out + (size_t)r * D;
        for (int c = 0; c < D; c++)
            o[c] += sae->b_dec[c];
        if (sae->norm != PL_SAE_NORM_NONE)
            for (int c = 0; c < D; c++)
                o[c] = o[c] * gain[r] + shift[r];
    }
}

size_t pl_sae_readout_scratch(const pl_sae *sae, int M)
{
    /* acts [M, d_sae], x_hat [M, d_in], gain and shift [M], then the encoder's scratch */
    return sizeof(float) * ((size_t)M * sae->d_sae + (size_t)M * sae->d_in + 2 * (size_t)M) +
           pl_sae_encode_scratch(sae, M);
}

void pl_sae_readout(const pl_sae *sae, const float *X, int M, void *scratch, double *l0, double *err)
{
    int D = sae->d_in, F = sae->d_sae;
    float *acts = scratch, *xhat = acts + (size_t)M * F, *gain = xhat + (size_t)M * D, *shift = gain + M;
    pl_sae_encode(sae, X, M, shift + M, acts, gain, shift);
    pl_sae_decode(sae, acts, M, gain, shift, xhat);
    for (int r = 0; r < M; r++) {
        const float *a = acts + (size_t)r * F, *x = X + (size_t)r * D, *y = xhat + (size_t)r * D;
        int n = 0, finite = 1;
        for (int f = 0; f < F; f++) {
            n += a[f] > 0.0f;
            finite &= isfinite(a[f]) != 0;
        }
        double e = 0.0;
        for (int c = 0; c < D; c++)
            e += ((double)x[c] - y[c]) * ((double)x[c] - y[c]);
        l0[r] = finite ? n : NAN; /* an overflowed encoding has no count: [run] nonfinite catches the NaN */
        err[r] = sqrt(e);
    }
}
