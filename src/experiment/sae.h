/* Sparse autoencoders in SAELens's format, and the SAE side of a sweep.
 *
 * A SAELens dir holds cfg.json (d_in, d_sae, hook_name, architecture, apply_b_dec_to_input,
 * normalize_activations, k for TopK) and sae_weights.safetensors (W_enc [d_in, d_sae], b_enc [d_sae],
 * W_dec [d_sae, d_in], b_dec [d_in], threshold [d_sae] for JumpReLU). The weights are mmapped: aligned
 * F32 tensors are used in place, others converted once, every element checked finite. Encoding and
 * decoding follow SAELens's inference SAEs (StandardSAE, JumpReLUSAE, TopKSAE) in fp32, with one
 * OpenBLAS sgemm over the rows given:
 *
 *   x' = norm_in(x) - b_dec [apply_b_dec_to_input]     pre = x' W_enc + b_enc
 *   standard  a = relu(pre)        jumprelu  a = relu(pre) * (pre > threshold)
 *   topk      a = relu(pre) at the k largest pre (ties: the lower feature index first), 0 elsewhere
 *   x_hat = gain * (a W_dec + b_dec) + shift            (norm_out; gain 1, shift 0 without normalisation)
 *
 * normalize_activations: none; constant_norm_rescale (x * sqrt(d_in) / |x|, gain |x| / sqrt(d_in));
 * layer_norm (x - mean over std + 1e-5, std unbiased; gain std, shift mean, as SAELens undoes it). A
 * value that needs a number the dir does not hold (expected_average_only_in's dataset norm) is refused.
 */
#ifndef PLATEAU_SAE_H
#define PLATEAU_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "plateau/model.h"
#include "plateau/safetensors.h"
#include "experiment.h"

enum { PL_SAE_STANDARD, PL_SAE_JUMPRELU, PL_SAE_TOPK };
enum { PL_SAE_NORM_NONE, PL_SAE_NORM_CONSTANT_NORM_RESCALE, PL_SAE_NORM_LAYER_NORM };

typedef struct pl_sae {
    char *dir;
    int d_in, d_sae;
    int arch;                 /* PL_SAE_* */
    int k;                    /* topk's k */
    int norm;                 /* PL_SAE_NORM_* */
    int apply_b_dec_to_input;
    int synthetic;            /* cfg.json's plateau_synthetic (plateau synth-sae) */
    int writing_centered;     /* cfg.json's model_from_pretrained_kwargs.center_writing_weights (top level or
                               * under metadata): 1 true, 0 false, -1 not stated */
    char hook[128];           /* cfg.json's hook name */
    char sha256[65];          /* of cfg.json followed by sae_weights.safetensors */
    const float *W_enc, *b_enc, *W_dec, *b_dec, *threshold; /* threshold: jumprelu only */
    char *weights_path;       /* DIR/sae_weights.safetensors */
    st_file file;             /* the mmapped weights */
    int file_open;
    float *owned[6];          /* converted tensors (not aligned F32) */
} pl_sae;

/* Open and check the SAELens dir DIR against a residual of width D_MODEL: every cfg.json key plateau
 * reads, every tensor's name, dtype, shape and finiteness. Errors name the file, key or tensor. */
int pl_sae_open(pl_sae *sae, const char *dir, int d_model);
void pl_sae_close(pl_sae *sae);
const char *pl_sae_arch_name(int arch);
const char *pl_sae_norm_name(int norm);

/* Bytes of scratch pl_sae_encode needs for N rows. */
size_t pl_sae_encode_scratch(const pl_sae *sae, int N);
/* acts[N, d_sae] of the rows x[N, d_in]; gain[N] and shift[N] (may be NULL) receive norm_out's
 * per-row factors. */
void pl_sae_encode(const pl_sae *sae, const float *x, int N, void *scratch, float *acts, float *gain, float *shift);
/* out[N, d_in] = gain * (acts W_dec + b_dec) + shift. */
void pl_sae_decode(const pl_sae *sae, const float *acts, int N, const float *gain, const float *shift, float *out);

/* The readouts of M step vectors X[M, d_in]: L0[M] (features > 0) and ERR[M] = |x - x_hat|. */
size_t pl_sae_readout_scratch(const pl_sae *sae, int M);
void pl_sae_readout(const pl_sae *sae, const float *X, int M, void *scratch, double *l0, double *err);

/* ------------------------------------------------------------ the SAE direction kinds (sae_directions.c) */

/* What the SAE kinds share: the encoding of every base of the sweep, done once at setup on every
 * rank (in fixed chunks of rows, so the numbers are the same everywhere). Base index b's rows start at
 * row0[b]: one per prompt (row0[b] + p) for a base shared by the samples (real, sae_recon), one per
 * prompt and sample (row0[b] + p S + s) for the synthetic base. */
typedef struct pl_sae_bases {
    int n_rows;                /* rows */
    int row0[PL_N_BASE_KINDS + 1]; /* first row of base index b ([NB]: n_rows) */
    float *x;                  /* [n_rows, C] the bases as the model sees them */
    float *recon;              /* [n_rows, C] the SAE's reconstruction of each */
    float *gain;               /* [n_rows] norm_out's gain of each (1 without normalisation) */
    int *feature;              /* [NB, P, S] sae_active's and sae_feature_scale's feature, -1: none active */
    int *eligible;             /* [NB, P, S] the features it was drawn from (above active_fraction) */
    float *feature_act;        /* [NB, P, S] its activation at the base */
    int *active_bases;         /* [d_sae] base rows at which each feature is active (> 0) */
    int n_never_active;        /* features active at no base row */
    int n_no_feature;          /* (base, prompt, sample) draws at a base with no active feature */
} pl_sae_bases;

int pl_sae_active_setup(pl_experiment *ex, int d);
int pl_sae_feature_defined(const pl_experiment *ex, int d, pl_unit_id id);
void pl_sae_active(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
void pl_sae_feature_scale(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
int pl_sae_reconstruction_setup(pl_experiment *ex, int d);
void pl_sae_reconstruction(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
void pl_sae_error_random(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
/* ex->sae_recon_real[P, C] = SAE(real activation) of every prompt (once; fixed chunks of rows). */
int pl_sae_recon_real_setup(pl_experiment *ex);
int pl_sae_recon_other_setup(pl_experiment *ex, int d);
/* The bases Giglemiani et al. build from SAE latents (sae_giglemiani.c): ex->sae_bag and ex->sae_cosine,
 * for the kinds swept, from each prompt's SAE code and the SAE dir's sparsity.safetensors. */
int pl_sae_giglemiani_setup(pl_experiment *ex);
void pl_sae_recon_other(const pl_experiment *ex, int d, pl_unit_id id, const double *base, double *dir);
void pl_sae_bases_free(pl_sae_bases *sb);

/* ------------------------------------------------------------ synthetic SAEs (sae_synth.c) */

typedef struct {
    const char *hook;     /* the hook it reads (a residual hook of the model) */
    int d_sae, arch, k;   /* k: topk only (0: d_sae / 8, at least 1) */
    uint64_t seed;
} pl_sae_synth_opts;

/* Write a valid SAELens dir OUT_DIR (created if missing) for MODEL: random unit-norm decoder rows,
 * W_enc = W_dec^T, biases and thresholds scaled to the model's activations at the hook (a forward
 * of the first tokens of the vocabulary). cfg.json says "plateau_synthetic": true. */
int pl_sae_synth(const char *out_dir, const pl_model *model, const char *model_path, const pl_sae_synth_opts *o);

#endif
