/* Hugging Face model dirs: config.json, and the weights in model.safetensors or sharded
 * (model.safetensors.index.json + shards). Families (src/model/families) read their keys through these
 * helpers and declare the tensors they expect; this file finds them, checks every name, dtype and
 * shape, and hands back fp32 pointers. */
#ifndef PLATEAU_HF_DIR_H
#define PLATEAU_HF_DIR_H

#include <stdint.h>

#include <jansson.h>

#include "../model_internal.h"

/* ---- config.json keys. Each error names the file and the key. ---- */
typedef struct {
    const char *path; /* config.json, for messages */
    json_t *root;
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

typedef struct {
    const char *name;     /* the family's name for it (without any prefix) */
    int ndim;
    int64_t shape[2];
    const float **dst;    /* receives the fp32 pointer */
    int optional;         /* may be absent (*dst stays NULL) */
    const char *why;      /* the config keys the shape follows from, for messages */
} pl_hf_want;

/* A growable list of wanted tensors (names owned by the list). */
typedef struct {
    pl_hf_want *items;
    int n, cap;
} pl_hf_wants;

int pl_hf_want_add(pl_hf_wants *w, const float **dst, int optional, int ndim, int64_t d0, int64_t d1, const char *why,
                   const char *fmt, ...) __attribute__((format(printf, 8, 9)));
void pl_hf_wants_free(pl_hf_wants *w);

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

/* Open DIR's weights (single or sharded, each file mapped into m), match every file tensor against
 * WANTS (a name IGNORED accepts is skipped: buffers such as rotary inv_freq tables), check shapes and
 * dtypes (F32, F16, BF16), and fill every *dst. FAMILY names the family in messages. */
int pl_hf_load_tensors(pl_model *m, const char *dir, const pl_hf_wants *wants, const char *family,
                       int (*ignored)(const char *name));

#endif
