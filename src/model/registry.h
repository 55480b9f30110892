/* The family registry: every model family plateau reads from a Hugging Face dir, one row each
 * (registry.c). Loading a dir (pl_family_open_hf), `plateau synth` (synth.c) and `plateau info`
 * (the row's describe lines, the decoder's, the format's) walk this one table; nothing else in
 * plateau names a family.
 *
 * A row is a config.json model_type and the code of its family file (families/<family>.c): the
 * config reader, which also lists the tensor-name table (names, shapes from the config, each
 * tensor's place in the decoder, hence the decoder's options), the post-load checks, and what
 * synth writes. Several model_types may share one family file (llama, mistral, qwen2). The math is
 * always the decoder (families/decoder.h): a family is data. */
#ifndef PLATEAU_REGISTRY_H
#define PLATEAU_REGISTRY_H

#include <jansson.h>

#include "formats/hf_dir.h"
#include "plateau/synth.h"

typedef struct pl_family pl_family;

/* synth's sizes after the family's defaults (the config writer's inputs). */
typedef struct {
    int n_vocab, head_dim, n_kv_head, d_mlp;
    const char *torch_dtype; /* "float32", "float16", "bfloat16" */
} pl_synth_dims;

/* How synth fills a tensor (normal(0, 0.02) for WEIGHT, scaled by 1/sqrt(2L) for PROJ, ...). */
typedef enum { PL_INIT_WEIGHT, PL_INIT_PROJ, PL_INIT_POS, PL_INIT_NORM, PL_INIT_BIAS, PL_INIT_MASK,
               PL_INIT_MASKED_BIAS } pl_init_kind;

/* One tensor synth writes. */
typedef struct {
    char name[96];      /* as written (an export's prefix included) */
    char seed_name[96]; /* its random stream: the family's name for it (a tied copy: the original's) */
    pl_init_kind kind;
    st_dtype dtype;
    int ndim;
    int64_t shape[4];
} pl_synth_tensor;

typedef struct {
    /* config.json C (model_type F->model_type) -> a decoder attached to M (pl_decoder_new) with
     * every option set, and its tensor-name table in W: every tensor the family's files hold, its
     * shape from the config and its place in the decoder (pl_hf_want_add). Keys that would change
     * the math and are not implemented are refused by name. May add `plateau info` lines
     * (pl_model_describe_add). */
    int (*read)(pl_model *m, const pl_hf_config *c, const pl_family *f, pl_hf_wants *w);
    /* How the files name the tensors: an export's prefix, and the buffers to skip (hf_dir.h). */
    const char *prefix;
    int (*unknown)(const pl_model *m, const char *file, const char *name);
    /* After the tensors are loaded (W's found_in, raw): tied heads checked, the unembedding set. */
    int (*finish)(pl_model *m, const pl_hf_config *c, const pl_hf_wants *w);

    /* synth: defaults of D from the options and the family's own checks of them (messages
     * "synth: ..."); then config.json with every key the reader reads. */
    int (*synth_dims)(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d);
    json_t *(*synth_config)(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d);
    /* synth --hf-quirks: the export's extra tensors (a tied head, buffers) appended to T[*n]; NULL:
     * the family has no quirks. */
    void (*synth_quirks)(const pl_model *m, const pl_synth_opts *o, pl_synth_tensor *t, int *n);
    int synth_head_options; /* takes --kv-heads and --head-dim */
} pl_family_code;

struct pl_family {
    const char *model_type;   /* config.json's model_type; --family; pl_model_info.family */
    const char *architecture; /* config.json's architectures[0] as transformers writes it (synth) */
    const pl_family_code *code;
    int variant;              /* the family file's own sub-kind (llama.c: PL_LLAMA_*) */
};

/* The row of MODEL_TYPE, or NULL. */
const pl_family *pl_family_find(const char *model_type);
/* Row I (0..), NULL past the last. */
const pl_family *pl_family_at(int i);
/* The model_types, "gpt2, llama, ..." joined by SEP and the last by LAST_SEP, for messages. */
const char *pl_family_list(const char *sep, const char *last_sep);

/* Open the Hugging Face dir DIR through its model_type's row: config.json read, tensors loaded and
 * checked, m's info set. */
int pl_family_open_hf(pl_model *m, const char *dir);

/* llama.c's variants (pl_family.variant of its rows). */
enum { PL_LLAMA_LLAMA, PL_LLAMA_MISTRAL, PL_LLAMA_QWEN2 };

#endif
