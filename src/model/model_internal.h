/* Inside the model interface: a model is its info, its family's operations, its weights and the
 * files they live in. Only src/model/ includes this. */
#ifndef PLATEAU_MODEL_INTERNAL_H
#define PLATEAU_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/safetensors.h"

/* A family's math behind plateau/forward.h. The public functions check their arguments against
 * the info before calling these. */
typedef struct {
    /* Full forward of N sequences of T tokens (TOKENS[N, T]) through blocks 0..STOP-1 (STOP = L: every
     * block and the last position's logits; STOP < L: runs[i].resid holds indices 0..STOP only, no
     * logits). With PATCH, the residual at (PATCH_INDEX, PATCH_POS) of sequence 0 is replaced by
     * PATCH[C] before it flows on. */
    int (*forward)(const pl_model *m, const int *tokens, int N, int T, int stop, int patch_index, int patch_pos,
                   const float *patch, pl_run *runs);
    /* pl_patch_eval_groups, arguments checked. */
    int (*patch_eval_groups)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                             int resid_index, int pos, const float *X, float *logits, int read_index, float *read);
    /* forward with a mid-block point PT (attn.hook_z .. hook_mlp_out) tapped in block PT.layer: the
     * activation at PT of positions POS..POS+COUNT-1 of each sequence goes to CAPTURE[N, COUNT, W] (or
     * NULL), then is replaced by PATCH[COUNT, W] (or NULL; N = 1) before it flows on. */
    int (*forward_at)(const pl_model *m, const int *tokens, int N, int T, int stop, pl_hook_point pt, int pos,
                      int count, const float *patch, float *capture, pl_run *runs);
    /* pl_patch_eval_groups_at for a mid-block point PT, the readout at resid index READ_INDEX. */
    int (*patch_eval_groups_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                pl_hook_point pt, int pos, const float *X, float *logits, int read_index,
                                float *read);
    /* X[M, C] (final residual rows) becomes ln_final.hook_normalized in place. */
    int (*final_normalized)(const pl_model *m, float *x, int M);
    /* pl_patch_eval_positions, arguments checked. */
    int (*patch_eval_positions)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                int resid_index, const int *positions, int P, const float *X, float *logits,
                                int read_index, float *read);
    /* pl_patch_eval_positions_at for a mid-block point PT, the readout at resid index READ_INDEX. */
    int (*patch_eval_positions_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                                   int M, pl_hook_point pt, const int *positions, int P, const float *X,
                                   float *logits, int read_index, float *read);
    double (*forward_flops)(const pl_model *m, int T);
    double (*patch_flops)(const pl_model *m, int T, int resid_index, int pos);
    /* plateau/grad.h's pl_patch_jvp_groups / pl_patch_vjp_groups, arguments checked (M rows in all);
     * NULL when the family has no derivatives. */
    int (*patch_jvp_groups)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                            int resid_index, int pos, const float *X, const float *DX, float *logits, float *dlogits,
                            int read_index, float *read, float *dread);
    int (*patch_vjp_groups)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                            int resid_index, int pos, const float *X, const float *glogits, int read_index,
                            const float *gread, float *logits, float *read, float *dx);
    /* plateau/grad.h's pl_patch_jvp_groups_at / pl_patch_vjp_groups_at at a mid-block point PT, arguments
     * checked; NULL when the family has none. */
    int (*patch_jvp_groups_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                               pl_hook_point pt, int pos, const float *X, const float *DX, float *logits,
                               float *dlogits, int read_index, float *read, float *dread);
    int (*patch_vjp_groups_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                               pl_hook_point pt, int pos, const float *X, const float *glogits, int read_index,
                               const float *gread, float *logits, float *read, float *dx);
    /* plateau/grad.h's pl_patch_jvp_positions / pl_patch_vjp_positions, arguments checked; NULL when the
     * family has none. */
    int (*patch_jvp_positions)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                               int resid_index, const int *positions, int P, const float *X, const float *DX,
                               float *logits, float *dlogits, int read_index, float *read, float *dread);
    int (*patch_vjp_positions)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G, int M,
                               int resid_index, const int *positions, int P, const float *X, const float *glogits,
                               int read_index, const float *gread, float *logits, float *read, float *dx);
    /* plateau/grad.h's pl_patch_jvp_positions_at / pl_patch_vjp_positions_at at a mid-block point PT
     * (W = pl_hook_width), arguments checked; NULL when the family has none. */
    int (*patch_jvp_positions_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                                  int M, pl_hook_point pt, const int *positions, int P, int W, const float *X,
                                  const float *DX, float *logits, float *dlogits, int read_index, float *read,
                                  float *dread);
    int (*patch_vjp_positions_at)(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                                  int M, pl_hook_point pt, const int *positions, int P, int W, const float *X,
                                  const float *glogits, int read_index, const float *gread, float *logits,
                                  float *read, float *dx);
    double (*patch_jvp_flops)(const pl_model *m, int T, int resid_index, int pos);
    double (*patch_vjp_flops)(const pl_model *m, int T, int resid_index, int pos);
    /* Lines of `plateau info` beyond pl_model_info. */
    void (*describe)(const pl_model *m, FILE *out);
    void (*free_weights)(void *weights);
} pl_family_ops;

/* One mmapped weight file, as opened (pl_model_check_unchanged compares its stat). */
typedef struct {
    char *path;
    void *map;
    size_t size;
    struct stat st;
} pl_weight_file;

struct pl_model {
    pl_model_info info;
    const pl_family_ops *ops;
    void *weights;          /* the family's tensor table (pointers into the maps or owned) */
    float **owned;          /* tensors converted to fp32 (F16/BF16, or unaligned F32) */
    int n_owned;
    pl_weight_file *files;  /* the weight files, in sha256 order */
    int n_files;
    char *path;             /* as given to pl_model_open */
    char *format_desc;      /* the format's `plateau info` lines, or NULL */
    pl_weight_arena *arena; /* where converted and fused weights go, or NULL (private, in owned) */
    int unfused;            /* pl_model_open_opts.unfused */
    char config_sha256[65]; /* of config.json as parsed; "" for a llama2.c file (its header is in the weights) */
};

/* Map PATH (a regular file, through src/util) and append it to m->files. MAP and SIZE receive the
 * mapping. WHAT names the file in messages ("weights", "shard"). */
int pl_model_map_file(pl_model *m, const char *path, const char *what, const void **map, size_t *size);

/* An fp32 view of N elements stored at SRC in DTYPE (F32/F16/BF16): SRC itself when it is aligned
 * F32, else a converted copy owned by M. Every element must be finite: otherwise the error names
 * FILE, TENSOR and the first bad index. NULL on failure. */
const float *pl_model_weight_f32(pl_model *m, const char *file, const char *tensor, st_dtype dtype,
                                 const void *src, size_t n);

/* Room for N floats of converted or derived weights: the next piece of m->arena, or a private
 * buffer owned by M. *FILL: whether the caller writes them (0: another process of the node has).
 * NULL and the message on failure (out of memory, or the arena is full). */
float *pl_model_weight_space(pl_model *m, size_t n, int *fill);

/* Append a line "key  value" to the format's lines of `plateau info`. */
void pl_model_describe_add(pl_model *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- bookkeeping shared by the families' forwards (runs.c) ---- */

/* Allocate RUNS[0..N-1] of T positions: resid [STOP+1, T, C], k and v [max(STOP, 1), T, KV_DIM],
 * logits [V] when STOP == L. On failure the caller frees them with pl_run_free. */
int pl_runs_alloc(pl_run *runs, int N, int T, int C, int L, int V, int kv_dim, int stop);

/* A family's unembedding: logits[M, V] of final-residual rows x[M, C]. */
typedef int (*pl_unembed_fn)(const void *weights, const float *x, int M, float *logits);
/* Each run's next-token logits from the final residual x[N*T, C] of N stacked sequences. */
int pl_runs_logits(pl_run *runs, int N, int T, int C, int V, const float *x, pl_unembed_fn unembed,
                   const void *weights);

/* The checks every fast-path and derivative call makes of its row groups: G >= 1, each of CLEANS[G] a
 * complete run (logits kept) of this model's shape and of one length, GROUP_ROWS[g] >= 1, and at most
 * 2^24 rows in all (*TOTAL). Messages start with WHAT ("fast path", "derivatives"). */
int pl_fast_groups_check(const pl_model *m, const pl_run *const *cleans, const int *group_rows, int G,
                         const char *what, long *total);

/* The fast path's rows: M variants (patched rows of their group's clean run), each carrying positions
 * pos..T-1 (n of them): variant v's rows are x[v*n .. v*n + n-1, C]. With P > 0 (whole contexts),
 * the outputs are the rows at offsets out[0..P-1] (position - pos) of each variant, not the last. */
typedef struct {
    float *x;
    const pl_run **clean_of; /* [M] each variant's clean run */
    int M, n, C;
    int P;                   /* 0: one position, output at the last; else the outputs' count */
    const int *out;          /* [P] offsets of the output rows within a variant */
} pl_fast_rows;
/* F's rows (M variants of N positions, C wide; uninitialised) and each variant's clean run, from the
 * groups. On failure F holds nothing. */
int pl_fast_rows_alloc(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M, int n,
                       int C);
/* Fill the rows (X[v] at pos, the clean run after it) and, for READ_INDEX <= RESID_INDEX, READ. */
int pl_fast_rows_init(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M,
                      int resid_index, int pos, const float *X, int read_index, float *read);
/* read[M, C] = each variant's last position. */
void pl_fast_rows_read(const pl_fast_rows *f, float *read);
/* Move each variant's last position to row v (for the unembedding of x[M, C]). */
void pl_fast_rows_gather_last(pl_fast_rows *f);
void pl_fast_rows_free(pl_fast_rows *f);
/* Whole contexts: rows p0..T-1 of the clean run at RESID_INDEX with X[v, j] at POSITIONS[j]
 * (OFFSETS[P] = POSITIONS - p0, kept by F); READ[M, P, C] filled for READ_INDEX <= RESID_INDEX.
 * pl_fast_rows_read then fills [M, P, C] and pl_fast_rows_gather_last gathers M*P rows. */
int pl_fast_rows_init_positions(pl_fast_rows *f, const pl_run *const *cleans, const int *group_rows, int G, int M,
                                int resid_index, const int *positions, const int *offsets, int P, const float *X,
                                int read_index, float *read);

/* Openers: a Hugging Face dir through its family's registry row (registry.c), a llama2.c
 * checkpoint (formats/llama2c.c). */
int pl_family_open_hf(pl_model *m, const char *dir);
int pl_llama2c_open(pl_model *m, const char *path);

#endif
