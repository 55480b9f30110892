/* Exact derivatives through the fast path (issue 17, item 1): Jacobian-vector (forward-mode) and
 * vector-Jacobian (reverse-mode) products of the fast path's readouts with respect to the replaced
 * residual rows X.
 *
 * The function differentiated is exactly pl_patch_eval_groups (plateau/forward.h): the residual at
 * (RESID_INDEX, POS) of each group's clean run is replaced by a row of X; positions POS..T-1 flow
 * through blocks RESID_INDEX..L-1, positions before POS keep the clean run's cached keys and values
 * (they do not depend on X: attention is causal). Derivatives flow only through the perturbed
 * positions' rows, including through their own keys and values as later positions attend to them.
 * float32, batched (all rows of a call through one sgemm per weight matrix), double accumulation
 * wherever the forward accumulates in double (norm statistics, softmax sums).
 *
 * Shapes (row-major float32): M = sum of GROUP_ROWS[0..G-1] rows, C = d_model, V = n_vocab.
 *   X[M, C]        the replacement rows (the point at which the derivative is taken)
 *   logits[M, V]   next-token logits at the last position T-1 (as pl_patch_eval_groups)
 *   read[M, C]     residual at READ_INDEX (0..L), last position T-1 (as pl_patch_eval_groups)
 * Row i of every output depends on row i of X only; each row's Jacobian J_i = d(logits_i, read_i)/dX_i.
 * The forward outputs returned beside the derivatives equal pl_patch_eval_groups' for the same call
 * shape up to the last bits (the derivative passes keep their own activations).
 * A read at READ_INDEX < RESID_INDEX, or at READ_INDEX == RESID_INDEX with POS < T-1, does not
 * depend on X: its derivative is zero. At READ_INDEX == RESID_INDEX, POS == T-1, read = X.
 *
 * Readout cotangents of the metrics (KL, JSD, CE, L2: value and gradient, defined exactly as the
 * metrics of a sweep) are in src/experiment/metric_grad.h.
 *
 * Every family plateau loads is a pl_decoder (GPT-2, Llama, Mistral, Qwen2, GPT-NeoX, Gemma 2 and
 * llama2.c checkpoints); a family without derivatives would make these calls fail with a message.
 */
#ifndef PLATEAU_GRAD_H
#define PLATEAU_GRAD_H

#include "plateau/forward.h"
#include "plateau/model.h"

/* Forward mode. DX[M, C]: a tangent per row. Outputs, each optional (NULL to skip; at least one of
 * DLOGITS, DREAD):
 *   logits[M, V], read[M, C]   the forward values at X,
 *   dlogits[M, V] = J_logits(X_i) DX_i,   dread[M, C] = J_read(X_i) DX_i   (READ_INDEX in 0..L when
 *   READ or DREAD is set). */
int pl_patch_jvp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                        int resid_index, int pos, const float *X, const float *DX, float *logits, float *dlogits,
                        int read_index, float *read, float *dread);

/* Reverse mode. Cotangents, each optional (NULL: zero; at least one of them):
 *   glogits[M, V] on the logits, gread[M, C] on the read residual (READ_INDEX in 0..L when set).
 * dx[M, C] = J_logits(X_i)^T glogits_i + J_read(X_i)^T gread_i  (required).
 * logits[M, V], read[M, C]: the forward values at X, optional (READ needs READ_INDEX in 0..L). */
int pl_patch_vjp_groups(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                        int resid_index, int pos, const float *X, const float *glogits, int read_index,
                        const float *gread, float *logits, float *read, float *dx);

/* The same at any hook point PT a sweep perturbs (plateau/forward.h): a resid point is the calls above
 * (bitwise); a mid-block point of block l (attn.hook_z with every head concatenated, hook_attn_out,
 * hook_resid_mid, hook_mlp_out, in TransformerLens's meaning as pl_patch_eval_groups_at takes them)
 * differentiates exactly pl_patch_eval_groups_at: each variant's row at POS finishes block l from the
 * site, then goes on through the residual path from resid index l + 1. X, DX and dx are [M, W] with
 * W = pl_hook_width(PT) (H * head_dim at attn.hook_z, d_model elsewhere); the readouts are as above
 * (READ_INDEX a resid index: one <= l, or l + 1 with POS < T-1, does not depend on X). */
int pl_patch_jvp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           pl_hook_point pt, int pos, const float *X, const float *DX, float *logits, float *dlogits,
                           int read_index, float *read, float *dread);
int pl_patch_vjp_groups_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           pl_hook_point pt, int pos, const float *X, const float *glogits, int read_index,
                           const float *gread, float *logits, float *read, float *dx);

/* Whole contexts at a resid index (issue 17 item 1 with several positions): the function differentiated
 * is exactly pl_patch_eval_positions (plateau/forward.h): the residual at RESID_INDEX is replaced at the
 * P POSITIONS (strictly increasing, in [0, T); p0 = POSITIONS[0]) by the rows X[M, P, C] of each
 * variant at once. Positions p0..T-1 flow through blocks RESID_INDEX..L-1; every row after a perturbed
 * position attends to that position's key and value, which depend on X, so derivatives flow through
 * them (positions before p0 keep the clean cache, constants). The readouts are those of
 * pl_patch_eval_positions at every perturbed position t (not the last position):
 *   logits[M, P, V]  next-token logits at t,   read[M, P, C]  residual at READ_INDEX at t.
 * Each variant's Jacobian is the block matrix J[v] = d(logits_t, read_t)_{t} / d(X_s)_{s}: [P (V + C),
 * P C], block (t, s) zero for s > t (causal). Rows of different variants do not mix.
 *   JVP: dlogits[v, t] = sum_s J_logits[v](t, s) DX[v, s], dread likewise (DX[M, P, C]);
 *   VJP: dx[v, s] = sum_t J_logits[v](t, s)^T glogits[v, t] + J_read[v](t, s)^T gread[v, t].
 * A read at READ_INDEX < RESID_INDEX does not depend on X (zero); at READ_INDEX == RESID_INDEX,
 * read = X (dread = DX). Optional outputs and the forward values as in the _groups calls; the calls
 * check their arguments as pl_patch_eval_positions does. A metric averaged over the perturbed
 * positions ([readout] positions = mean) has as its cotangent each position's own cotangent / P. */
int pl_patch_jvp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, const float *X, const float *DX,
                           float *logits, float *dlogits, int read_index, float *read, float *dread);
int pl_patch_vjp_positions(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                           int resid_index, const int *positions, int P, const float *X, const float *glogits,
                           int read_index, const float *gread, float *logits, float *read, float *dx);

/* Whole contexts at any hook point PT a sweep perturbs: the derivatives of pl_patch_eval_positions_at.
 * A resid point is pl_patch_jvp_positions / pl_patch_vjp_positions (bitwise); at a mid-block point of
 * block l (as pl_patch_jvp_groups_at takes them) each variant's P perturbed rows finish block l from
 * the site and go on through the residual path from resid index l + 1 (no other position of block l
 * depends on them). X, DX, dx [M, P, W] with W = pl_hook_width(PT); readouts as above (READ_INDEX a
 * resid index: one <= l does not depend on X). */
int pl_patch_jvp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                              pl_hook_point pt, const int *positions, int P, const float *X, const float *DX,
                              float *logits, float *dlogits, int read_index, float *read, float *dread);
int pl_patch_vjp_positions_at(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                              pl_hook_point pt, const int *positions, int P, const float *X, const float *glogits,
                              int read_index, const float *gread, float *logits, float *read, float *dx);

/* One clean run's M rows: the _groups calls with G = 1 (as pl_patch_eval). */
int pl_patch_jvp(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, const float *DX,
                 int M, float *logits, float *dlogits, int read_index, float *read, float *dread);
int pl_patch_vjp(const pl_model *m, const pl_run *clean, int resid_index, int pos, const float *X, int M,
                 const float *glogits, int read_index, const float *gread, float *logits, float *read, float *dx);

/* FLOPs (multiply-adds count 2) of the matmuls and attention of one row of pl_patch_jvp /
 * pl_patch_vjp (its forward included) without the forward outputs (LOGITS and READ NULL: the
 * unembedding's forward is then skipped unless a final soft-cap needs the logits), comparable with
 * pl_patch_flops (one fast-path row). */
double pl_patch_jvp_flops(const pl_model *m, int T, int resid_index, int pos);
double pl_patch_vjp_flops(const pl_model *m, int T, int resid_index, int pos);

#endif
