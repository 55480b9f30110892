/* Synthetic GPT-2 model dirs: Hugging Face layout, seeded random weights of GPT-2-like scale.
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
    int hf_quirks;          /* 'transformer.' prefix, tied lm_head.weight, h.N.attn.bias/masked_bias */
} pl_synth_opts;

/* Write OUT_DIR/{config.json, model.safetensors, vocab.json, merges.txt}; OUT_DIR is created if
 * missing. Each file is written to a temp file and renamed into place. */
int pl_synth(const char *out_dir, const pl_synth_opts *opts);

#endif
