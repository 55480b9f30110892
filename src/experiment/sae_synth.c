/* plateau synth-sae: a valid SAELens dir with random weights, for tests and demos only.
 *
 * Decoder rows are random unit vectors and W_enc = W_dec^T (SAELens's initialisation). So that the
 * features are neither all on nor all off, the biases are scaled to the model's activations at the
 * hook, measured by one forward of the vocabulary's first tokens: b_dec is their mean, and with s the
 * per-dimension RMS of their distance to it (a unit row's projection has that spread), b_enc[f] =
 * -s u_f and JumpReLU's threshold[f] = s u'_f / 2, u, u' uniform in [0, 1). Every array draws from
 * its own keyed stream (seed, ...), so the same seed gives the same bytes. cfg.json says
 * "plateau_synthetic": true, and every result computed with it says synthetic_sae = true. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/forward.h"
#include "sae.h"

#define CALIBRATION_TOKENS 16

enum { STREAM_W_DEC = 1, STREAM_B_ENC, STREAM_THRESHOLD }; /* the synthetic SAE's own streams (a = 0) */

typedef struct {
    const char *name;
    const float *data;
    int64_t d0, d1; /* d1 = 0: 1-D */
} out_tensor;

/* A safetensors file of F32 tensors: the header padded with spaces to a multiple of 8 bytes, so every
 * tensor is aligned for mmapped use in place. */
static int write_safetensors(const char *path, const out_tensor *t, int n)
{
    char header[2048];
    size_t len = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = 4 * (uint64_t)t[i].d0 * (uint64_t)(t[i].d1 ? t[i].d1 : 1);
        len += (size_t)snprintf(header + len, sizeof header - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld",
                                t[i].name, (long long)t[i].d0);
        if (t[i].d1)
            len += (size_t)snprintf(header + len, sizeof header - len, ",%lld", (long long)t[i].d1);
        len += (size_t)snprintf(header + len, sizeof header - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)offset, (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    header[len++] = '}';
    while (len % 8)
        header[len++] = ' ';
    pl_atomic_file af;
    if (pl_atomic_begin(&af, path) != PL_OK)
        return PL_ERR;
    uint8_t le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (uint8_t)((uint64_t)len >> (8 * b));
    int ok = fwrite(le, 1, 8, af.fp) == 8 && fwrite(header, 1, len, af.fp) == len;
    for (int i = 0; ok && i < n; i++) { /* little-endian hosts: the floats' bytes are the file's */
        size_t count = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
        ok = fwrite(t[i].data, sizeof(float), count, af.fp) == count;
    }
    if (!ok) {
        int e = errno;
        pl_atomic_abort(&af);
        return pl_fail("%s: write failed: %s", path, strerror(e));
    }
    return pl_atomic_commit(&af);
}

static int write_cfg(const char *path, const pl_model_info *info, const char *model_path, const pl_sae_synth_opts *o,
                     int k)
{
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:s, s:s, s:b, s:s, s:s, s:n, s:s, s:b, s:I, s:s}", "architecture",
                            pl_sae_arch_name(o->arch), "d_in", info->d_model, "d_sae", o->d_sae, "dtype", "float32",
                            "device", "cpu", "apply_b_dec_to_input", 1, "normalize_activations", "none", "hook_name",
                            o->hook, "hook_head_index", "model_name", model_path, "plateau_synthetic", 1,
                            "plateau_seed", (json_int_t)o->seed, "plateau_init",
                            "random unit decoder rows, W_enc = W_dec^T; b_dec = mean activation at the hook; "
                            "b_enc = -s u, threshold = s u' / 2 (s: per-dimension RMS spread, u, u' uniform)");
    if (!cfg)
        return pl_fail("synth-sae: cannot build cfg.json");
    if (o->arch == PL_SAE_TOPK) { /* SAELens 6 reads k; older versions activation_fn_kwargs.k */
        json_object_set_new(cfg, "k", json_integer(k));
        json_object_set_new(cfg, "activation_fn_kwargs", json_pack("{s:i}", "k", k));
    }
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(cfg);
    if (!text)
        return pl_fail("synth-sae: cannot build cfg.json");
    size_t n = strlen(text);
    char *line = pl_malloc(n + 2, "cfg.json");
    if (line)
        snprintf(line, n + 2, "%s\n", text);
    free(text);
    int rc = line ? pl_write_file_atomic(path, line, n + 1) : PL_ERR;
    free(line);
    return rc;
}

/* b_dec (the mean) and the per-dimension RMS spread of the model's activations at the hook. */
static int calibrate(const pl_model *model, int index, float *mean, double *spread)
{
    const pl_model_info *info = pl_model_get_info(model);
    int C = info->d_model, T = info->n_ctx < CALIBRATION_TOKENS ? info->n_ctx : CALIBRATION_TOKENS;
    int tokens[CALIBRATION_TOKENS];
    for (int t = 0; t < T; t++)
        tokens[t] = t % info->n_vocab;
    pl_run run;
    if (pl_forward(model, tokens, T, &run) != PL_OK)
        return PL_ERR;
    const float *x = run.resid + (size_t)index * T * C;
    double ss = 0.0;
    for (int c = 0; c < C; c++) {
        double m = 0.0;
        for (int t = 0; t < T; t++)
            m += x[(size_t)t * C + c];
        mean[c] = (float)(m / T);
        for (int t = 0; t < T; t++)
            ss += ((double)x[(size_t)t * C + c] - mean[c]) * ((double)x[(size_t)t * C + c] - mean[c]);
    }
    pl_run_free(&run);
    *spread = sqrt(ss / ((double)T * C));
    if (!(*spread > 0.0))
        *spread = 1.0; /* one position: no spread to measure */
    return PL_OK;
}

int pl_sae_synth(const char *out_dir, const pl_model *model, const char *model_path, const pl_sae_synth_opts *o)
{
    const pl_model_info *info = pl_model_get_info(model);
    int C = info->d_model, F = o->d_sae, index;
    if (pl_hook_parse(model, o->hook, &index) != PL_OK)
        return pl_fail_prefix("synth-sae: --hook");
    if (F < 1 || (size_t)F * C > ((size_t)1 << 31))
        return pl_fail("synth-sae: --d-sae %d: expected 1..%zu for width %d", F, ((size_t)1 << 31) / C, C);
    int k = o->k ? o->k : (F / 8 > 1 ? F / 8 : 1);
    if (o->arch == PL_SAE_TOPK && k > F)
        return pl_fail("synth-sae: --k %d is more than --d-sae %d", k, F);
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        return pl_fail("%s: cannot create directory: %s", out_dir, strerror(errno));
    struct stat sb;
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return pl_fail("%s: not a directory", out_dir);
    float *W_dec = pl_malloc(sizeof(float) * (size_t)F * C, "synthetic SAE");
    float *W_enc = pl_malloc(sizeof(float) * (size_t)F * C, "synthetic SAE");
    float *b_enc = pl_malloc(sizeof(float) * F, "synthetic SAE");
    float *threshold = pl_malloc(sizeof(float) * F, "synthetic SAE");
    float *b_dec = pl_malloc(sizeof(float) * C, "synthetic SAE");
    double *z = pl_malloc(sizeof(double) * C, "synthetic SAE"), spread = 1.0;
    int rc = PL_ERR;
    if (!W_dec || !W_enc || !b_enc || !threshold || !b_dec || !z || calibrate(model, index, b_dec, &spread) != PL_OK)
        goto done;
    pl_rng r;
    pl_rng_init(&r, o->seed, 0, STREAM_W_DEC, 0);
    for (int f = 0; f < F; f++) {
        double n2 = 0.0;
        for (int c = 0; c < C; c++) {
            z[c] = pl_rng_gaussian(&r);
            n2 += z[c] * z[c];
        }
        for (int c = 0; c < C; c++) {
            W_dec[(size_t)f * C + c] = (float)(z[c] / sqrt(n2));
            W_enc[(size_t)c * F + f] = W_dec[(size_t)f * C + c];
        }
    }
    pl_rng_init(&r, o->seed, 0, STREAM_B_ENC, 0);
    for (int f = 0; f < F; f++)
        b_enc[f] = (float)(-spread * pl_rng_uniform(&r));
    pl_rng_init(&r, o->seed, 0, STREAM_THRESHOLD, 0);
    for (int f = 0; f < F; f++)
        threshold[f] = (float)(0.5 * spread * pl_rng_uniform(&r));
    out_tensor t[5] = {{"W_dec", W_dec, F, C}, {"W_enc", W_enc, C, F}, {"b_dec", b_dec, C, 0},
                       {"b_enc", b_enc, F, 0}, {"threshold", threshold, F, 0}};
    size_t len = strlen(out_dir) + 32;
    char *path = pl_malloc(len, "path");
    if (!path)
        goto done;
    /* cfg.json last: a dir that has one is complete */
    snprintf(path, len, "%s/sae_weights.safetensors", out_dir);
    rc = write_safetensors(path, t, o->arch == PL_SAE_JUMPRELU ? 5 : 4);
    snprintf(path, len, "%s/cfg.json", out_dir);
    if (rc == PL_OK)
        rc = write_cfg(path, info, model_path, o, k);
    free(path);
done:
    free(W_dec), free(W_enc), free(b_enc), free(threshold), free(b_dec), free(z);
    return rc;
}
