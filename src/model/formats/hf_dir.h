/* Hugging Face model dirs: config.json, and the weights in model.safetensors or sharded
 * (model.safetensors.index.json + shards). Families (src/model/families) read their keys through these
 * helpers and declare the tensors they expect; this file finds them, checks every name, dtype and
 * shape, and hands back fp32 pointers. */
#ifndef PLATEAU_HF_DIR_H
#define PLATEAU_HF_DIR_H

#include <stdint.h>

#include <jansson.h>

#include "../model_internal.h"
#include "plateau/safetensors.h"

/* ---- config.json keys. Each error names the file and the key. ---- */
typedef struct {
    const char *path; /* config.json, for messages */
    json_t *root;
    char sha256[65]; /* of the bytes parsed: the architecture the weights are read with */
} pl_hf_config;

/* An integer in [lo, hi]; absent: *out = dflt, or an error when REQUIRED. JSON null counts as absent. */
int pl_hf_int(const pl_hf_config *c, const char *key, int required, long dflt, long lo, long hi, int *out);
/* A number in (lo, hi); absent: dflt, or an error when REQUIRED. */
int pl_hf_num(const pl_hf_config *c, const char *key, int required, double dflt, double lo, double hi, double *out);
/* A boolean; absent: dflt. */
int pl_hf_bool(const pl_hf_config *c, const char *key, int dflt, int *out);
/* A string, or dflt when absent (NULL when absent and dflt NULL). */
int pl_hf_str(const pl_hf_config *c, const char *key, const char *dflt, const char **out);
/* Refuse KEY when present with a value other than null or false: WHY says what plateau computes. */
int pl_hf_refuse_if_set(const pl_hf_config *c, const char *key, const char *why);

/* Read DIR/config.json (a regular file of bounded size, a JSON object). */
int pl_hf_config_read(pl_hf_config *c, const char *path);
void pl_hf_config_free(pl_hf_config *c);

/* ---- tensors ---- */

/* "DIR/FILE", malloc'ed (NULL and the message on failure). */
char *pl_hf_path(const char *dir, const char *file);
/* "[d0, d1, ...]" of a tensor shape, for messages. */
void pl_hf_format_shape(char *out, size_t cap, int ndim, const int64_t *shape);

enum { PL_HF_REQUIRED, PL_HF_OPTIONAL, PL_HF_TIED };

typedef struct {
    const char *name;     /* the family's name for it (without any prefix) */
    int ndim;
    int64_t shape[2];
    const float **dst;    /* receives the fp32 pointer */
    int optional;         /* PL_HF_REQUIRED; PL_HF_OPTIONAL: may be absent (*dst stays NULL); PL_HF_TIED:
                             optional, and when present a copy of another tensor (a tied head) */
    const char *why;      /* the config keys the shape follows from, for messages */
    int group;            /* > 1: this want and the next group - 1 are placed side by side (pl_hf_want_group) */
    /* After pl_hf_load_tensors, when present: the file that holds it (m->files' path) and its bytes
     * there. A PL_HF_TIED tensor is not converted (*dst stays NULL): pl_hf_same_values compares it. */
    const char *found_in;
    const void *raw;
    st_dtype dtype;
    size_t numel;
} pl_hf_want;

/* Whether two found tensors hold the same values (same dtype: the same bytes; else the same fp32). */
int pl_hf_same_values(const pl_hf_want *a, const pl_hf_want *b);

/* A growable list of wanted tensors (names owned by the list). */
typedef struct {
    pl_hf_want *items;
    int n, cap;
} pl_hf_wants;
/* The wanted tensor whose pointer lands in DST, or NULL. */
const pl_hf_want *pl_hf_want_of(const pl_hf_wants *w, const float *const *dst);

int pl_hf_want_add(pl_hf_wants *w, const float **dst, int optional, int ndim, int64_t d0, int64_t d1, const char *why,
                   const char *fmt, ...) __attribute__((format(printf, 8, 9)));
void pl_hf_wants_free(pl_hf_wants *w);
/* The last N wants added are one fused matrix: converted (F32 copied) into one buffer, each after
 * the one before, so that the family's pointers to them are the rows of [w1 | w2 | ...] (the
 * decoder then applies them as one, pl_decoder_fuse). Ignored when the model is opened unfused or
 * when one of them is absent or tied. PL_OK (chains with pl_hf_want_add). */
int pl_hf_want_group(pl_hf_wants *w, int n);

/* DIR's weight files, parsed: model.safetensors, or the shards of model.safetensors.index.json in
 * file-name order (every tensor the index names is in its shard, every shard tensor in the index).
 * Each file is mapped into m (m->files). MISSING_IN: the file a missing tensor is reported against. */
typedef struct {
    st_file *files;
    int n;
    char *missing_in;
} pl_hf_files;
int pl_hf_open_files(pl_model *m, const char *dir, pl_hf_files *tf);
void pl_hf_files_free(pl_hf_files *tf);

/* How a family's tensors are named in its files. */
typedef struct {
    const char *family; /* in messages ("not a gpt2 tensor of this config.json") */
    const char *prefix; /* an export's prefix a file name may carry ("transformer."), or NULL */
    /* A file tensor (prefix removed) that no want names: 1 skip it (a buffer such as a causal mask
     * or a rotary table), 0 unexpected, PL_ERR a message of the family's own. NULL: all unexpected. */
    int (*unknown)(const pl_model *m, const char *file, const char *name);
} pl_hf_names;

/* Open DIR's weights (single or sharded, each file mapped into m), match every file tensor against
 * WANTS by NAMES, check shapes and dtypes (F32, F16, BF16), and fill every *dst and found_in. Adds
 * the format's lines of `plateau info` (tensors, dtypes, weight files, bytes). */
int pl_hf_load_tensors(pl_model *m, const char *dir, pl_hf_wants *wants, const pl_hf_names *names);

#endif
