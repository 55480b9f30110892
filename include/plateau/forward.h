/* Forward passes of any model (plateau/model.h) and the fast perturbation path.
 *
 * Residual-stream positions are named by an index r in [0, L]: r = l is blocks.l.hook_resid_pre
 * (the input of block l), r = l + 1 is blocks.l.hook_resid_post, so blocks.l.hook_resid_post and
 * blocks.(l+1).hook_resid_pre are the same activation. These TransformerLens names mean the same
 * residual point in every family.
 */
#ifndef PLATEAU_FORWARD_H
#define PLATEAU_FORWARD_H

#include <stddef.h>

#include "plateau/model.h"

/* The one parser of hook names, needing no model. NAME must be blocks.N.SITE, SITE one of
 * TransformerLens's hook_resid_pre, hook_resid_mid, hook_resid_post, attn.hook_z, hook_attn_out,
 * hook_mlp_out, N a block number in decimal digits (no sign, no blank, at most PL_HOOK_MAX_DIGITS
 * of them after leading zeros), or ln_final.hook_normalized; its canonical spelling (leading zeros
 * of N dropped: blocks.01.hook_resid_pre is blocks.1.hook_resid_pre) goes to OUT[SIZE]
 * (PL_HOOK_NAME_MAX is always enough). Everything else is refused with "hook 'NAME': ...". Configs,
 * SAE configs, the --hook options and merge compare hooks by this spelling. */
#define PL_HOOK_MAX_DIGITS 7
#define PL_HOOK_NAME_MAX 64
int pl_hook_canonical(const char *name, char *out, size_t size);
/* The site (PL_SITE_*, below) of a name pl_hook_canonical accepts, -1 for any other. */
int pl_hook_site(const char *name);

/* Where a hook sits, in TransformerLens's semantics (transformer_lens/components/transformer_block.py,
 * TransformerBlock.forward; abstract_attention.py for hook_z; rms_norm.py / layer_norm.py for
 * hook_normalized):
 *   RESID_PRE   the block's input x                                                    [d_model]
 *   ATTN_Z      softmax(s) v of every query head, heads concatenated (head h at h*hd)    [H * head_dim]
 *   ATTN_OUT    z W_O + b_O, after the post-attention norm when the block has one
 *               (Gemma 2: TL applies ln1_post before hook_attn_out, "that which is added to the
 *               residual stream")                                                       [d_model]
 *   RESID_MID   x + attn_out (sequential blocks only: TL has no hook_resid_mid when the attention
 *               and the MLP run in parallel, GPT-NeoX / Pythia)                          [d_model]
 *   MLP_OUT     the MLP's output, after the post-feed-forward norm when the block has one [d_model]
 *   RESID_POST  the block's output                                                        [d_model]
 *   FINAL_NORMALIZED  ln_final.hook_normalized: the final residual normalised *without* the
 *               norm's weight (and bias): (x - mean) / sqrt(var + eps) (LayerNorm), x / sqrt(mean x^2
 *               + eps) (RMSNorm, Gemma's too), as TL hooks it inside its norms         [d_model]
 * Only RESID_PRE / RESID_POST map to a resid index (layer, layer + 1). FINAL_NORMALIZED has layer
 * L and is a readout only. */
enum {
    PL_SITE_RESID_PRE,
    PL_SITE_ATTN_Z,
    PL_SITE_ATTN_OUT,
    PL_SITE_RESID_MID,
    PL_SITE_MLP_OUT,
    PL_SITE_RESID_POST,
    PL_SITE_FINAL_NORMALIZED,
};
typedef struct {
    int layer, site;
} pl_hook_point;

/* Parse a TransformerLens residual hook name ("blocks.1.hook_resid_pre", "blocks.11.hook_resid_post")
 * into its residual index, by pl_hook_canonical's syntax. The other hooks are refused by name (use
 * pl_hook_point_parse where a path takes them). The error names the hook and the valid range for
 * this model. */
int pl_hook_parse(const pl_model *m, const char *name, int *resid_index);

/* Any hook of pl_hook_canonical for this model: the block must exist, and hook_resid_mid is refused
 * on a parallel-residual model (TL has none there). */
int pl_hook_point_parse(const pl_model *m, const char *name, pl_hook_point *pt);
/* The resid index of a RESID_PRE / RESID_POST point, -1 for any other. */
int pl_hook_resid_index(pl_hook_point pt);
/* Floats per position at the hook: H * head_dim at attn.hook_z, d_model elsewhere. */
int pl_hook_width(const pl_model *m, pl_hook_point pt);

/* Everything a clean run leaves behind. */
typedef struct {
    int T;         /* positions */
    int C, L, V;
    int kv_dim;    /* floats per position and layer in k and v (key/value heads x head size) */
    float *resid;  /* [L+1, T, C] residual stream at every resid index */
    float *k, *v;  /* [L, T, kv_dim] attention keys (as attended, after any rotary embedding) and values */
    float *logits; /* [V] next-token logits at the last position */
} pl_run;

/* Full forward of TOKENS[0..T-1] (T <= n_ctx); fills *run (allocates; free with pl_run_free). */
int pl_forward(const pl_model *m, const int *tokens, int T, pl_run *run);

/* Full forwards of N sequences of T tokens (TOKENS[N, T]) at once, stacked into one sgemm per
 * weight matrix; RUNS[N] are filled as by pl_forward. The numbers can differ from N single
 * pl_forward calls in the last bits (another sgemm shape), never by more. */
int pl_forward_batch(const pl_model *m, const int *tokens, int N, int T, pl_run *runs);

/* The residual at (RESID_INDEX, POS) of N sequences of T tokens, OUT[N, C], computed as by
 * pl_forward_batch but stopping there: no block past RESID_INDEX and no unembedding is computed. */
int pl_forward_resid(const pl_model *m, const int *tokens, int N, int T, int resid_index, int pos, float *out);

/* The residual at RESID_INDEX of positions FIRST..FIRST+COUNT-1 of N sequences of T tokens,
 * OUT[N, COUNT, C], computed as by pl_forward_resid (whole contexts: every position's activation). */
int pl_forward_resid_range(const pl_model *m, const int *tokens, int N, int T, int resid_index, int first, int count,
                           float *out);

/* Full forward with the residual at (resid_index, pos) replaced by PATCH[C] before it flows on
 * (the --naive path and the fast path's reference). */
int pl_forward_patched(const pl_model *m, const int *tokens, int T, int resid_index, int pos,
                       const float *patch, pl_run *run);
void pl_run_free(pl_run *run);

/* The same three at any hook point PT (widths W = pl_hook_width): resid points go through the
 * functions above unchanged (bitwise); a mid-block point (attn.hook_z, hook_attn_out, hook_resid_mid,
 * hook_mlp_out) is read or replaced inside its block. pl_forward_at: OUT[N, W] at (PT, POS);
 * ln_final.hook_normalized is readable there. pl_forward_patched_at: PATCH[W] at (PT, POS) (not at
 * ln_final.hook_normalized). */
int pl_forward_at(const pl_model *m, const int *tokens, int N, int T, pl_hook_point pt, int pos, float *out);
int pl_forward_patched_at(const pl_model *m, const int *tokens, int T, pl_hook_point pt, int pos,
                          const float *patch, pl_run *run);
/* OUT[N, COUNT, W]: the activation at PT of positions FIRST..FIRST+COUNT-1 of N sequences (whole
 * contexts' fit over every position): pl_forward_resid_range at a resid point (bitwise), a mid-block
 * point read inside its block as pl_forward_at reads it, ln_final.hook_normalized readable. */
int pl_forward_range_at(const pl_model *m, const int *tokens, int N, int T, pl_hook_point pt, int first, int count,
                        float *out);
/* READ[C] = what a readout hook (a resid point or ln_final.hook_normalized) holds at position T_AT of
 * RUN. Refuses any other point by name. */
int pl_read_at(const pl_model *m, const pl_run *run, pl_hook_point read_pt, int t_at, float *read);

/* The fast path. Evaluate M replacement vectors X[M, C] for the residual at (resid_index, pos)
 * of the clean run. Positions before pos are unchanged in every block (causal attention), so
 * their cached K/V are reused and only positions pos..T-1 of each of the M variants flow through
 * blocks resid_index..L-1, as rows of one sgemm per weight matrix (sgemv when there is one row).
 * Outputs, each optional (NULL to skip):
 *   logits[M, V]   next-token logits at the last position,
 *   read[M, C]     residual at read_index, last position (any read_index in [0, L]).
 */
int pl_patch_eval(const pl_model *m, const pl_run *clean, int resid_index, int pos,
                  const float *X, int M, float *logits, int read_index, float *read);

/* pl_patch_eval over G groups of rows in one call: the first GROUP_ROWS[0] rows of X patch
 * CLEANS[0], the next GROUP_ROWS[1] rows CLEANS[1], and so on (all runs of one length T). Rows of
 * different prompts then share every weight sgemm, so a call can be large whatever the number of
 * variants per prompt. Outputs as in pl_patch_eval, rows in X's order. A row's numbers depend on
 * the whole call's shape (OpenBLAS picks kernels by size): callers that need bitwise
 * reproducibility group rows the same way every time. */
int pl_patch_eval_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                         int resid_index, int pos, const float *X, float *logits, int read_index, float *read);

/* pl_patch_eval_groups at any hook point: X[M, W] replaces the activation at (PT, POS) (W =
 * pl_hook_width), the readout READ[M, C] is at READ_PT (a resid point or ln_final.hook_normalized).
 * A resid point with a resid readout is pl_patch_eval_groups itself, bitwise. A mid-block point of
 * block l changes no other position in block l (its keys and values come from resid_pre), so each
 * variant's row at POS finishes block l from the site, one row per variant, and the rows then go
 * through the fast path from resid index l + 1. */
int pl_patch_eval_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                            pl_hook_point pt, int pos, const float *X, float *logits, pl_hook_point read_pt,
                            float *read);
/* Whole contexts (Lee & Heimersheim's pos=None): the residual at resid_index is replaced at P listed
 * positions POSITIONS[P] (strictly increasing, in [0, T); p0 = POSITIONS[0]) by the rows of
 * X[M, P, C] at once, grouped over CLEANS as in pl_patch_eval_groups. Positions p0..T-1 of each
 * variant flow through blocks resid_index..L-1 as sgemm rows; positions before p0 come from the
 * clean cache (causal attention leaves them unchanged). Outputs, each optional (NULL to skip):
 *   logits[M, P, V]  next-token logits at every perturbed position,
 *   read[M, P, C]    residual at read_index at every perturbed position (any read_index in [0, L]).
 * A separate entry, so pl_patch_eval_groups (one position) keeps its numbers bit for bit. */
int pl_patch_eval_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                            int resid_index, const int *positions, int P, const float *X, float *logits,
                            int read_index, float *read);

/* pl_patch_eval_positions at any hook point: X[M, P, W] replaces the activation at PT (W =
 * pl_hook_width) at the P POSITIONS at once; READ[M, P, C] is at READ_PT (a resid point or
 * ln_final.hook_normalized), LOGITS[M, P, V] as there. A resid point with a resid readout is
 * pl_patch_eval_positions itself, bitwise. A mid-block point of block l (attn.hook_z, hook_attn_out,
 * hook_resid_mid, hook_mlp_out) changes no other position in block l (its keys and values come from
 * resid_pre; z is after the attention's mixing), so each variant's P perturbed rows finish block l
 * from the site and replace those positions' resid_post in pl_patch_eval_positions from l + 1: the
 * full forward with TransformerLens's hook replaced at those positions. */
int pl_patch_eval_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                               pl_hook_point pt, const int *positions, int P, const float *X, float *logits,
                               pl_hook_point read_pt, float *read);

/* log-softmax of each row of LOGITS[M, V] into LOGP (may alias), in double accumulation. */
void pl_log_softmax(float *logp, const float *logits, int M, int V);

/* FLOPs (multiply-adds count 2) of the matmuls in one pl_forward of T tokens and one
 * pl_patch_eval row, as documented in docs/performance.md. */
double pl_forward_flops(const pl_model *m, int T);
double pl_patch_flops(const pl_model *m, int T, int resid_index, int pos);

#endif
