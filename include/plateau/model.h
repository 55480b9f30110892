/* The one model interface: what the sweep, the CLI and the checkpoints see of any model.
 *
 * A model is opened from a path (a Hugging Face dir, or a llama2.c checkpoint file); its family
 * (a row of the registry, src/model/registry.c) and file format are its own business. Every weight pointer inside is fp32:
 * F32 tensors point straight into the mmapped file (ranks on one node share it through the page
 * cache); F16/BF16 tensors are converted once, into an owned buffer or a node's shared arena
 * (pl_weight_arena). Forward passes: plateau/forward.h.
 */
#ifndef PLATEAU_MODEL_H
#define PLATEAU_MODEL_H

#include <stddef.h>
#include <stdio.h>

typedef struct pl_model pl_model;

/* How a block normalises the residual. It decides whether the residual's mean is invisible to the
 * model (LayerNorm subtracts it: TransformerLens's centred basis is then exact) or not (RMSNorm). */
enum { PL_NORM_LAYERNORM, PL_NORM_RMSNORM };

typedef struct {
    char family[16];   /* config.json's model_type: a row of the registry (pl_model_families) */
    char format[16];   /* "hf" (config.json + safetensors), "llama2c" */
    int n_layer;       /* L */
    int d_model;       /* C: residual width */
    int n_head;        /* H: query heads */
    int n_kv_head;     /* key/value heads (= H without grouped-query attention) */
    int head_dim;      /* per head */
    int d_mlp;         /* MLP hidden width */
    int n_vocab;       /* V */
    int n_ctx;         /* most positions the model takes */
    int norm;          /* PL_NORM_* */
    int synthetic;     /* written by `plateau synth`: every result made with it says so */
    int parallel_residual; /* x' = x + attn(norm1 x) + mlp(norm2 x): no hook_resid_mid (GPT-NeoX) */
    size_t n_params;   /* parameters, tied matrices counted once */
} pl_model_info;

/* Open PATH, validating every tensor's name, dtype and shape against the config. On failure *m is
 * NULL and the one-line message names the file, key or tensor and the problem. */
int pl_model_open(pl_model **m, const char *path);
void pl_model_close(pl_model *m);

/* Where a model's converted and derived weights go: F16/BF16 tensors made fp32 (and unaligned F32),
 * and the matrices fused at load ([q | k | v], [gate | up]). Without an arena each is a private
 * malloc. A sweep under MPI hands every rank of a node the same region (an MPI-3 shared window the
 * scheduler allocates): the node's first rank opens the model with FILL = 1 and converts into it,
 * the others then open it with FILL = 0 and take the same pointers, converting nothing. Pieces are
 * taken in the order the model's tensors are loaded, which depends only on the files, so every
 * process of the node finds each tensor at the same offset. BASE NULL: count the bytes only. */
typedef struct {
    char *base;  /* the region (64-byte aligned), or NULL (plan: pl_model_weight_bytes) */
    size_t size; /* its bytes */
    int fill;    /* 1: this process writes the weights; 0: they are there already */
    size_t used; /* bytes handed out so far */
} pl_weight_arena;

typedef struct {
    pl_weight_arena *arena; /* NULL: private copies */
    int unfused;            /* keep q, k, v and gate, up as separate matrices (tests compare the two) */
} pl_model_open_opts;

/* pl_model_open with options (NULL: pl_model_open's). A model larger than the arena is refused,
 * naming the model and both sizes. The arena must outlive the model. */
int pl_model_open_with(pl_model **m, const char *path, const pl_model_open_opts *opts);

/* The bytes PATH's converted and derived weights take (what an arena must hold, 64-byte pieces),
 * and the bytes of its weight files (mmapped, shared by every process through the page cache).
 * The files are read and checked as pl_model_open does; nothing is converted. */
int pl_model_weight_bytes(const char *path, size_t *converted, size_t *file_bytes);

const pl_model_info *pl_model_get_info(const pl_model *m);
/* The families a Hugging Face dir may be, as config.json's model_type names, in the registry's order
 * (src/model/registry.c; the first is `plateau synth`'s default), joined by SEP and the last by
 * LAST_SEP: "gpt2, llama, ...". Static storage, overwritten by the next call. */
const char *pl_model_families(const char *sep, const char *last_sep);
/* The path as given to pl_model_open. */
const char *pl_model_path(const pl_model *m);

/* sha256 (64 hex digits + NUL) of the weight file(s) as stored on disk: the model's identity in
 * checkpoints and outputs. */
int pl_model_sha256(const pl_model *m, char out[65]);
/* sha256 (64 hex digits) of the config.json the model was built from, as read; "" for a llama2.c
 * checkpoint, whose header is part of its weight file. The weights' hash does not cover it, and the
 * architecture (norm eps, rope scaling, soft-caps, windows) is in it: checkpoints and the ranks of a
 * run compare it too. */
const char *pl_model_config_sha256(const pl_model *m);

/* PL_OK when every weight file is still the one that was opened (same device, inode, size and
 * modification time); otherwise an error naming the file that changed. A sweep checks this before it
 * writes its result, so a model rewritten during a run cannot mix two models into one file. */
int pl_model_check_unchanged(const pl_model *m);

/* The arithmetic of this process beyond the model's weights, as "OpenBLAS <kernel>, <AVX2|scalar>
 * exp": the sgemm kernel OpenBLAS chose for this CPU (or OPENBLAS_CORETYPE) and the path of the
 * vectorised exp/log (ops.c, metrics.c: chosen from the CPU). Two processes that differ in it may
 * differ in the bits of one evaluation. */
void pl_compute_kernels(char *out, size_t size);
/* 1 when this CPU has AVX-512 but OpenBLAS runs an AVX2 kernel (OpenBLAS 0.3.21 does not know AMD's
 * Zen 4/5 and falls back to Haswell): OPENBLAS_CORETYPE=SkylakeX runs its sgemm about twice as fast. */
int pl_blas_kernel_slow(void);

/* The format's and family's own lines of `plateau info` ("key  value" lines: tensors, dtypes, file
 * size, norm epsilon, ...). */
void pl_model_describe(const pl_model *m, FILE *out);

#endif
