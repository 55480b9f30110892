/* The family registry (registry.h): one row per config.json model_type. A new family is one file
 * in families/ (its pl_family_code) and one row here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/decoder.h"
#include "registry.h"
#include "plateau/error.h"

/* Each family file's code (families/<family>.c), and its rows. */
extern const pl_family_code pl_gpt2_code, pl_llama_code, pl_neox_code, pl_gemma2_code;

static const pl_family families[] = {
    {"gpt2", "GPT2LMHeadModel", &pl_gpt2_code, 0},
    {"llama", "LlamaForCausalLM", &pl_llama_code, PL_LLAMA_LLAMA},
    {"mistral", "MistralForCausalLM", &pl_llama_code, PL_LLAMA_MISTRAL},
    {"qwen2", "Qwen2ForCausalLM", &pl_llama_code, PL_LLAMA_QWEN2},
    {"gpt_neox", "GPTNeoXForCausalLM", &pl_neox_code, 0},
    {"gemma2", "Gemma2ForCausalLM", &pl_gemma2_code, 0},
};
#define N_FAMILIES (int)(sizeof families / sizeof families[0])

const pl_family *pl_family_at(int i) { return i >= 0 && i < N_FAMILIES ? &families[i] : NULL; }

const pl_family *pl_family_find(const char *model_type)
{
    for (int i = 0; i < N_FAMILIES; i++)
        if (!strcmp(families[i].model_type, model_type))
            return &families[i];
    return NULL;
}

const char *pl_family_list(const char *sep, const char *last_sep)
{
    static char out[512];
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < N_FAMILIES && len < sizeof out; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i == 0 ? "" : i == N_FAMILIES - 1 ? last_sep : sep,
                                families[i].model_type);
    return out;
}

const char *pl_model_families(const char *sep, const char *last_sep) { return pl_family_list(sep, last_sep); }

/* Read C through F's row: the decoder's options, its tensors loaded from DIR and checked, the info. */
static int open_family(pl_model *m, const char *dir, const pl_hf_config *c, const pl_family *f)
{
    pl_hf_wants w = {0};
    pl_hf_names names = {f->model_type, f->code->prefix, f->code->unknown};
    int synthetic, rc = pl_hf_bool(c, "plateau_synthetic", 0, &synthetic);
    if (rc == PL_OK)
        rc = f->code->read(m, c, f, &w);
    if (rc == PL_OK)
        rc = pl_hf_load_tensors(m, dir, &w, &names);
    if (rc == PL_OK)
        rc = f->code->finish(m, c, &w);
    if (rc == PL_OK)
        pl_decoder_fuse(m->weights);
    if (rc == PL_OK)
        pl_decoder_set_info(m, f->model_type, "hf", synthetic);
    pl_hf_wants_free(&w);
    return rc;
}

int pl_family_open_hf(pl_model *m, const char *dir)
{
    char *config_path = pl_hf_path(dir, "config.json");
    if (!config_path)
        return PL_ERR;
    pl_hf_config c;
    int rc = pl_hf_config_read(&c, config_path);
    if (rc == PL_OK) {
        const char *type;
        const pl_family *f = NULL;
        rc = pl_hf_str(&c, "model_type", "gpt2", &type); /* early GPT-2 exports have none */
        if (rc == PL_OK && !(f = pl_family_find(type)))
            rc = pl_fail("%s: model_type \"%.60s\" is not supported (%s)", config_path, type, pl_family_list(", ", ", "));
        if (rc == PL_OK)
            rc = open_family(m, dir, &c, f);
        memcpy(m->config_sha256, c.sha256, sizeof m->config_sha256);
    }
    pl_hf_config_free(&c);
    free(config_path);
    return rc;
}
