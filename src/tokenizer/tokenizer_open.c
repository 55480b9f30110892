/* Finding and opening a model's tokenizer: which of the formats (gpt2_bpe.c, hf_json.c, llama2c_tok.c) a
 * path holds, and that it fits the model's vocabulary. tokenizer.c is the object they all return. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plateau/error.h"
#include "tok_internal.h"

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* An HF dir: tokenizer.json, else GPT-2's vocab.json + merges.txt. */
static int open_dir(pl_tokenizer **tok, const char *dir)
{
    char *json = tok_join_path(dir, "tokenizer.json");
    char *vocab = tok_join_path(dir, "vocab.json");
    char *merges = tok_join_path(dir, "merges.txt");
    int rc = PL_ERR;
    if (!json || !vocab || !merges)
        goto done;
    if (exists(json))
        rc = tok_hf_open(tok, json);
    else if (exists(vocab) || exists(merges))
        rc = tok_gpt2_open(tok, dir);
    else
        pl_fail("%s: no tokenizer: looked for tokenizer.json, and for vocab.json + merges.txt", dir);
done:
    free(json);
    free(vocab);
    free(merges);
    return rc;
}

/* A llama2.c checkpoint: tokenizer.bin beside it, else tok<V>.bin. */
static int open_beside_checkpoint(pl_tokenizer **tok, const char *model_path, int model_vocab)
{
    char *dir = strdup(model_path);
    if (!dir)
        return pl_fail("out of memory (path)");
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    const char *where = slash ? (dir[0] ? dir : "/") : ".";
    char name[64];
    snprintf(name, sizeof name, "tok%d.bin", model_vocab);
    char *first = tok_join_path(where, "tokenizer.bin");
    char *second = tok_join_path(where, name);
    int rc = PL_ERR;
    if (!first || !second)
        goto done;
    if (exists(first))
        rc = tok_llama2c_open(tok, first, model_vocab);
    else if (model_vocab > 0 && exists(second))
        rc = tok_llama2c_open(tok, second, model_vocab);
    else if (model_vocab > 0)
        pl_fail("%s: no tokenizer for this llama2.c checkpoint: looked for %s and %s (give one with --tokenizer)",
                model_path, first, second);
    else
        pl_fail("%s: no tokenizer for this llama2.c checkpoint: looked for %s (give one with --tokenizer)",
                model_path, first);
done:
    free(first);
    free(second);
    free(dir);
    return rc;
}

static int check_fits(pl_tokenizer *tok, const char *what, int model_vocab)
{
    if (model_vocab > 0 && tok->vocab_size > model_vocab) {
        /* the highest id that has a token */
        int top = tok->vocab_size - 1;
        while (top >= 0 && tok->display.length[top] < 0)
            top--;
        if (top >= model_vocab)
            return pl_fail("%s: token id %d does not fit the model's vocabulary of %d", what, top, model_vocab);
    }
    return PL_OK;
}

int pl_tokenizer_open(pl_tokenizer **tok, const char *model_path, const char *tokenizer_path, int model_vocab)
{
    *tok = NULL;
    const char *what = tokenizer_path ? tokenizer_path : model_path;
    int rc;
    if (tokenizer_path) {
        if (is_dir(tokenizer_path))
            rc = open_dir(tok, tokenizer_path);
        else if (ends_with(tokenizer_path, ".json"))
            rc = tok_hf_open(tok, tokenizer_path);
        else
            rc = tok_llama2c_open(tok, tokenizer_path, model_vocab);
    } else if (!model_path) {
        return pl_fail("no model path and no tokenizer path");
    } else if (is_dir(model_path)) {
        rc = open_dir(tok, model_path);
    } else if (exists(model_path)) {
        rc = open_beside_checkpoint(tok, model_path, model_vocab);
    } else {
        return pl_fail("%s: cannot open: %s", model_path, strerror(errno));
    }
    if (rc == PL_OK && check_fits(*tok, what, model_vocab)) {
        pl_tokenizer_free(*tok);
        *tok = NULL;
        rc = PL_ERR;
    }
    return rc;
}

int pl_tokenizer_load(pl_tokenizer **tok, const char *dir) { return tok_gpt2_open(tok, dir); }
