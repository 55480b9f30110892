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

/* The one parser of hook names, needing no model: NAME must be blocks.N.hook_resid_pre or
 * blocks.N.hook_resid_post, N a block number in decimal digits (no sign, no blank, at most
 * PL_HOOK_MAX_DIGITS of them after leading zeros); its canonical spelling (leading zeros of N
 * dropped: blocks.01.hook_resid_pre is blocks.1.hook_resid_pre) goes to OUT[SIZE] (PL_HOOK_NAME_MAX
 * is always enough). Everything else is refused with "hook 'NAME': ...". Configs, SAE configs, the
 * --hook options and merge compare hooks by this spelling. */
#define PL_HOOK_MAX_DIGITS 7
#define PL_HOOK_NAME_MAX 64
int pl_hook_canonical(const char *name, char *out, size_t size);

/* Parse a TransformerLens hook name ("blocks.1.hook_resid_pre", "blocks.11.hook_resid_post") into
 * its residual index, by pl_hook_canonical's syntax. The error names the hook and the valid range
 * for this model. */
int pl_hook_parse(const pl_model *m, const char *name, int *resid_index);

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

/* log-softmax of each row of LOGITS[M, V] into LOGP (may alias), in double accumulation. */
void pl_log_softmax(float *logp, const float *logits, int M, int V);

/* FLOPs (multiply-adds count 2) of the matmuls in one pl_forward of T tokens and one
 * pl_patch_eval row, as documented in docs/performance.md. */
double pl_forward_flops(const pl_model *m, int T);
double pl_patch_flops(const pl_model *m, int T, int resid_index, int pos);

#endif
