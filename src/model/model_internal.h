/* Inside the model interface: a model is its info, its family's operations and its weights.
 * Only src/model/ includes this. */
#ifndef PLATEAU_MODEL_INTERNAL_H
#define PLATEAU_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "plateau/forward.h"
#include "plateau/model.h"

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
    double (*forward_flops)(const pl_model *m, int T);
    double (*patch_flops)(const pl_model *m, int T, int resid_index, int pos);
    /* Lines of `plateau info` beyond pl_model_info. */
    void (*describe)(const pl_model *m, FILE *out);
    void (*free_weights)(void *weights);
} pl_family_ops;

struct pl_model {
    pl_model_info info;
    const pl_family_ops *ops;
    void *weights;       /* the family's tensor table (pointers into map or owned) */
    float *owned;        /* tensors converted to fp32 (F16/BF16, or unaligned F32), or NULL */
    void *map;           /* the mmapped weight file */
    size_t map_size;
    char *path;          /* as given to pl_model_open */
    char *weights_path;  /* the file behind map */
    struct stat weights_stat; /* as opened: pl_model_check_unchanged compares */
};

/* Family loaders: fill *m (info, ops, weights, storage) from an HF dir. */
int pl_gpt2_open(pl_model *m, const char *dir);

#endif
