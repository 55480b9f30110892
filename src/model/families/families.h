/* The families' loaders for Hugging Face dirs (config.json already read, model_type dispatched by
 * formats/hf_dir.c). Each fills m (info, ops, weights, files) or fails with the one-line message. */
#ifndef PLATEAU_FAMILIES_H
#define PLATEAU_FAMILIES_H

#include "../formats/hf_dir.h"

int pl_gpt2_open(pl_model *m, const char *dir, const pl_hf_config *c);                     /* gpt2.c */
int pl_llama_open(pl_model *m, const char *dir, const pl_hf_config *c, const char *type);  /* llama.c */
int pl_neox_open(pl_model *m, const char *dir, const pl_hf_config *c);                     /* neox.c */

#endif
