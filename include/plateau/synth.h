/* Synthetic model dirs of any family: Hugging Face layout, seeded random weights of GPT-2-like scale.
 *
 * Used by the tests (models of any shape, every dtype, with and without HF's quirks) and by the
 * benchmarks (the GPT-2-small shape). config.json carries "plateau_synthetic": true so every
 * downstream output can say it was computed on a synthetic model. */
#ifndef PLATEAU_SYNTH_H
#define PLATEAU_SYNTH_H

#include <stdint.h>

#include "plateau/safetensors.h"

typedef struct {
    int n_layer, n_embd, n_head, n_ctx; /* L, C, H, N */
    int n_vocab;            /* V for the synthetic tokenizer; ignored with vocab_from (V = its size) */
    st_dtype dtype;         /* ST_F32, ST_F16 or ST_BF16 */
    uint64_t seed;
    const char *vocab_from; /* dir whose vocab.json + merges.txt are copied, or NULL */
    int hf_quirks;          /* gpt2: 'transformer.' prefix, tied lm_head.weight, h.N.attn.bias/masked_bias */
    /* Families beyond GPT-2 (zero: the family's default). */
    const char *family;     /* NULL (the registry's first row) or a model_type of the registry (pl_model_families) */
    int n_kv_head;          /* key/value heads (llama, mistral, qwen2); 0: n_head */
    int head_dim;           /* explicit head_dim (llama, mistral, qwen2); 0: n_embd / n_head */
    int d_mlp;              /* intermediate_size; 0: 4 n_embd (gpt_neox), 8 n_embd / 3 rounded up to 8 (others) */
    int tied;               /* tie_word_embeddings */
    int attention_bias;     /* llama: q, k, v, o biases (qwen2 always has q, k, v biases) */
    double rope_theta;      /* 0: 10000 */
    double llama3[4];       /* rope_scaling llama3: factor, low_freq_factor, high_freq_factor,
                               original_max_position_embeddings; factor 0: no scaling */
    double rotary_pct;      /* gpt_neox; 0: 0.25 */
    int sequential;         /* gpt_neox: use_parallel_residual false */
    int sliding_window;     /* mistral, qwen2 (use_sliding_window): 0 none; gemma2: 0 = 4096 */
    int n_shards;           /* > 1: model-0000i-of-0000N.safetensors + model.safetensors.index.json */
} pl_synth_opts;

/* Write OUT_DIR/{config.json, model.safetensors (or shards and their index), vocab.json, merges.txt};
 * OUT_DIR is created if missing. Each file is written to a temp file and renamed into place;
 * config.json goes last. */
int pl_synth(const char *out_dir, const pl_synth_opts *opts);

#endif
