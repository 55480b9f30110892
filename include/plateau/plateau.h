/* libplateau: the public C API (link with `pkg-config --cflags --libs plateau`, or CMake's
 * find_package(plateau) and plateau::plateau).
 *
 * What a program or a notebook needs of plateau without the CLI: open a model of any family plateau
 * reads (Hugging Face dirs gpt2 / llama / mistral / qwen2 / gpt_neox, llama2.c checkpoints), tokenize,
 * run a forward with the residual stream cached at every hook, patch an activation, and the curves of
 * one unit of a sweep: the readouts (kl, jsd, ...) along directions for a list of alphas, by the fast
 * path, computed by the very functions `plateau run` computes them with.
 *
 * Conventions:
 *   - Handles are opaque (pl_lm, pl_cache); every handle is closed by its own close or free function (NULL is
 *     a no-op). A pl_cache belongs to the pl_lm that made it and must be freed before it.
 *   - A function that can fail returns PL_OK (0) or PL_ERR (-1); pl_last_error() then holds a one-line
 *     message naming the file, key or value and what is wrong (per thread).
 *   - Arrays are row-major float32 (alphas: double), shapes in the comments: T positions, C the
 *     residual width, V the vocabulary, L blocks, D directions, S alphas, NM metrics.
 *   - Hooks are TransformerLens names: blocks.N.hook_resid_pre / blocks.N.hook_resid_post (N in
 *     0..L-1; blocks.N.hook_resid_post and blocks.N+1.hook_resid_pre are the same activation).
 *   - Calls on one pl_lm are not synchronised: one thread per pl_lm at a time. OpenBLAS's thread
 *     count is the process's (pl_set_threads); a result's bits depend on it, as a sweep's on [run]
 *     threads.
 *
 * Versioning: PL_API_VERSION counts the API's revisions; a program compiled against revision N runs
 * with a library whose pl_api_version() >= N as long as the major part (PL_API_VERSION / 100) is the
 * same. New functions and new settings keys of pl_curves come as minor revisions (derivatives of the
 * curves, planned for a later issue, will be pl_curves settings and functions of their own here);
 * the shared library's SOVERSION follows the major part.
 */
#ifndef PLATEAU_PLATEAU_H
#define PLATEAU_PLATEAU_H

#include <stddef.h>

#include "plateau/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* major * 100 + minor */
#define PL_API_VERSION 1

/* ------------------------------------------------------------ the library */

/* The library's PL_API_VERSION (compare with the header's you compiled against). */
int pl_api_version(void);
/* plateau's version ("0.1.0"), as recorded in every result file. */
const char *pl_library_version(void);
/* The message of the last failed call on this thread ("" if none). */
const char *pl_last_error(void);
/* Free memory a function of this API allocated for the caller (pl_tokenize's ids). */
void pl_free(void *p);
/* OpenBLAS threads of this process (a sweep's [run] threads; 1 there by default). */
int pl_set_threads(int n);

/* ------------------------------------------------------------ a model */

typedef struct pl_lm pl_lm;

/* Open the model at PATH (an HF model dir, or a llama2.c .bin), every tensor checked against its
 * config. The tokenizer is opened on first use (pl_tokenize), from beside the model (see
 * plateau/tokenizer.h for where it is looked for). *lm is NULL on failure. */
int pl_lm_open(pl_lm **lm, const char *path);
void pl_lm_close(pl_lm *lm);
/* Use the tokenizer at PATH instead (a tokenizer.json, a llama2.c tokenizer.bin, or a dir: as
 * `plateau tokenize --tokenizer`); its ids are checked against the model's vocabulary. */
int pl_lm_open_tokenizer(pl_lm *lm, const char *path);

/* Sizes of the model (pl_lm_size's WHAT). */
enum {
    PL_SIZE_LAYERS,   /* L */
    PL_SIZE_D_MODEL,  /* C */
    PL_SIZE_VOCAB,    /* V */
    PL_SIZE_CTX,      /* most positions a forward takes */
    PL_SIZE_HEADS,
    PL_SIZE_KV_HEADS,
    PL_SIZE_HEAD_DIM,
    PL_SIZE_D_MLP,
    PL_SIZE_LAYERNORM, /* 1: LayerNorm (the centered residual basis applies), 0: RMSNorm */
    PL_SIZE_SYNTHETIC, /* 1: written by `plateau synth` */
};
/* The size WHAT (PL_SIZE_*), or -1 for an unknown WHAT. */
long pl_lm_size(const pl_lm *lm, int what);
/* "gpt2", "llama", "mistral", "qwen2", "gpt_neox"; format "hf" or "llama2c". */
const char *pl_lm_family(const pl_lm *lm);
const char *pl_lm_format(const pl_lm *lm);

/* The residual index (0..L) of a hook name; the error names the valid range. */
int pl_lm_hook(const pl_lm *lm, const char *hook, int *resid_index);

/* Token ids of TEXT[LEN] without special tokens (HF add_special_tokens=False, run.c's bos=0), with the
 * tokenizer's BOS first when BOS is 1 (as a sweep's prompts under [data] bos = true; an error when the
 * tokenizer has none). *ids is allocated (pl_free), *n its length. */
int pl_tokenize(pl_lm *lm, const char *text, size_t len, int bos, int **ids, size_t *n);

/* ------------------------------------------------------------ a forward with every hook cached */

typedef struct pl_cache pl_cache;

/* The clean forward of IDS[T] (1 <= T <= PL_SIZE_CTX): the residual at every hook and the keys and
 * values of every block are kept in *cache. */
int pl_lm_run(pl_lm *lm, const int *ids, int T, pl_cache **cache);
/* The same forward with the residual at (HOOK, POS) replaced by X[C] before it flows on (the
 * activation patching of TransformerLens's hooks; POS < 0 counts from the end). */
int pl_lm_run_patched(pl_lm *lm, const int *ids, int T, const char *hook, int pos, const float *x, pl_cache **cache);
void pl_cache_free(pl_cache *cache);

/* T of the cached run. */
int pl_cache_length(const pl_cache *cache);
/* RESID[T, C]: the residual at HOOK, every position. */
int pl_cache_resid(const pl_cache *cache, const char *hook, float *resid);
/* LOGITS[T, V]: the next-token logits at every position. Position t's row is the final norm and the
 * unembedding of the last block's output at t (one matrix product over the T rows: the last row can
 * differ from a single-row forward's, e.g. `plateau logits`, in the last bits). */
int pl_cache_logits(const pl_cache *cache, float *logits);

/* The fast path: M variants of the run, the residual at (HOOK, POS) replaced by X[m] (X[M, C]); only
 * positions POS.. of each variant are computed, the earlier ones' keys and values come from the
 * cache. Outputs (each may be NULL): LOGITS[M, V] at the run's last position; READ[M, C] the residual
 * at READ_HOOK, last position. */
int pl_cache_patch_eval(const pl_cache *cache, const char *hook, int pos, const float *X, int M, float *logits,
                        const char *read_hook, float *read);

/* ------------------------------------------------------------ the curves of one unit */

/* What `plateau run` computes for one prompt, one base and D directions given as a file: direction
 * kind file:, one curve per row, as [perturb] directions = file:PATH with n_directions = D and
 * bases = real.
 *
 *   IDS[T]      the prompt. As in a sweep, the readout position q (default: POS) decides the run:
 *               its first q + 1 tokens go through the model, their last position is read.
 *   HOOK, POS   the perturbed activation ([perturb] hook, position; POS < 0 counts from the end).
 *   BASE        [C]: the activation the steps start from, in the raw residual basis; NULL: the
 *               prompt's own activation at (HOOK, POS) ("real" base). In the centered basis it is
 *               centred, as a sweep centres its real activations.
 *   DIRS[D, C]  the directions d (unnormalised; the step mode scales them).
 *   ALPHAS[S]   the alphas of the steps x_k = base + alpha_k * scale * d; ALPHAS[0] must be 0: every
 *               step is measured against the unperturbed base, row 0, as in a sweep, whose grid is
 *               linspace(0, alpha_max, steps).
 *   SETTINGS    N_SETTINGS strings "key=value" with the config's key names (NULL when none):
 *                 step_mode         to_target | fixed_norm (default; a config's is to_target) | absolute
 *                 center_direction  true | false (default)                          [perturb]
 *                 residual_basis    raw (default) | centered                        [perturb]
 *                 metrics           kl, jsd, l2, cosine, js_dist, ce_loss (default: kl)
 *                 read_hook         default: the last block's hook_resid_post        [readout]
 *                 read_position     perturbed (default) or a position, < 0 from the end [readout]
 *                 next_token        ce_loss's token (default: IDS[q + 1], none past the end: NaN)
 *               (the SAE metrics and the other direction kinds need a sweep's resources: use
 *               `plateau run`).
 *   OUT         [NM, D, S]: metric m (in the order of the metrics setting) of direction i at alpha k.
 *
 * The rows go through pl_patch_eval_groups in the grouping a sweep uses (units of S rows, as many per
 * call as a sweep's batch holds), so with the same BASE the numbers are a sweep's bit for bit at the
 * same OpenBLAS thread count; with BASE NULL the base is this run's activation, which a sweep computes
 * in another batch shape (equal within float rounding: tests/api measures <= 4e-6 relative per curve,
 * and holds it to 1e-5). A call of fewer directions than a sweep's batch holds units groups its rows
 * otherwise than a sweep of many prompts does, and so agrees to rounding only. A non-finite step vector, logit
 * or read residual is an error naming the direction and alpha ([run] nonfinite = error). */
int pl_curves(pl_lm *lm, const int *ids, int T, const char *hook, int pos, const float *base, const float *dirs,
              int D, const double *alphas, int S, const char *const *settings, int n_settings, float *out);

/* The number of metrics SETTINGS ask for (NM of pl_curves' OUT), or -1 with an error. */
int pl_curves_metric_count(const char *const *settings, int n_settings);

#ifdef __cplusplus
}
#endif

#endif
