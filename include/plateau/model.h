/* GPT-2 model: configuration, weights, and loading a Hugging Face model dir.
 *
 * Shapes: L = n_layer, C = n_embd, H = n_head, V = n_vocab, N = n_ctx (max positions).
 * Weights keep Hugging Face's Conv1D layout [in, out], so X[M, in] @ W[in, out] is a plain
 * row-major sgemm. Every pointer is fp32: F32 tensors point straight into the mmapped
 * model.safetensors (ranks on one node share it through the page cache); F16/BF16 tensors are
 * converted once into one owned buffer.
 */
#ifndef PLATEAU_MODEL_H
#define PLATEAU_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layer;  /* L */
    int n_head;   /* H */
    int n_embd;   /* C */
    int n_ctx;    /* N: n_positions (or n_ctx) */
    int n_vocab;  /* V */
    float ln_eps; /* layer_norm_epsilon */
    int synthetic; /* config.json has "plateau_synthetic": true (written by plateau synth) */
} pl_config;

typedef struct {
    const float *ln_1_w, *ln_1_b;           /* [C], [C] */
    const float *attn_w, *attn_b;           /* attn.c_attn: [C, 3C], [3C] (q, k, v) */
    const float *attn_proj_w, *attn_proj_b; /* attn.c_proj: [C, C], [C] */
    const float *ln_2_w, *ln_2_b;           /* [C], [C] */
    const float *fc_w, *fc_b;               /* mlp.c_fc: [C, 4C], [4C] */
    const float *mlp_proj_w, *mlp_proj_b;   /* mlp.c_proj: [4C, C], [C] */
} pl_block;

typedef struct {
    pl_config cfg;
    const float *wte;            /* [V, C]; also the unembedding (tied, as in GPT-2) */
    const float *wpe;            /* [N, C] */
    pl_block *blocks;            /* [L] */
    const float *ln_f_w, *ln_f_b; /* [C], [C] */

    /* storage */
    float *owned;        /* converted F16/BF16 tensors, or NULL */
    void *map;           /* mmapped model.safetensors */
    size_t map_size;
    char *dir;           /* the model dir as given */
} pl_model;

/* Read and validate DIR/config.json. Errors name the file and the key. */
int pl_config_load(pl_config *cfg, const char *config_json_path);

/* Load DIR (config.json + model.safetensors), validating every tensor's name, dtype and shape
 * against the config. On failure *m is left empty and the message names file, tensor, problem. */
int pl_model_load(pl_model *m, const char *dir);
void pl_model_free(pl_model *m);

/* sha256 (lowercase hex, 64 chars + NUL) of DIR/model.safetensors as stored on disk. */
int pl_model_file_sha256(const pl_model *m, char out[65]);

/* Total parameter count (wte counted once). */
size_t pl_model_n_params(const pl_config *cfg);

#endif
