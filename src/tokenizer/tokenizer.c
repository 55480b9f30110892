/* The one tokenizer interface: the object every kind returns (its accessors, encode and decode dispatched to
 * the kind). Which file a model's tokenizer is in: tokenizer_open.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plateau/error.h"
#include "tok_internal.h"

void pl_tokenizer_free(pl_tokenizer *tok)
{
    if (!tok)
        return;
    if (tok->ops)
        tok->ops->free_impl(tok->impl);
    tok_strings_free(&tok->display);
    free(tok);
}

int pl_tokenizer_vocab_size(const pl_tokenizer *tok) { return tok->vocab_size; }
int pl_tokenizer_bos_id(const pl_tokenizer *tok) { return tok->bos_id; }
int pl_tokenizer_eos_id(const pl_tokenizer *tok) { return tok->eos_id; }
int pl_tokenizer_adds_bos(const pl_tokenizer *tok) { return tok->n_prefix > 0; }
const char *pl_tokenizer_kind(const pl_tokenizer *tok) { return tok->kind; }

int pl_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    return tok->ops->encode(tok, text, len, ids, n_ids);
}

int pl_encode_special(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    if (pl_encode(tok, text, len, ids, n_ids))
        return PL_ERR;
    size_t n = *n_ids + (size_t)tok->n_prefix + (size_t)tok->n_suffix;
    int *with = realloc(*ids, (n ? n : 1) * sizeof(int));
    if (!with) {
        free(*ids);
        *ids = NULL;
        return pl_fail("out of memory (token ids)");
    }
    memmove(with + tok->n_prefix, with, *n_ids * sizeof(int));
    memcpy(with, tok->prefix, (size_t)tok->n_prefix * sizeof(int));
    memcpy(with + tok->n_prefix + *n_ids, tok->suffix, (size_t)tok->n_suffix * sizeof(int));
    *ids = with;
    *n_ids = n;
    return PL_OK;
}

int pl_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len)
{
    return tok->ops->decode(tok, ids, n_ids, out, len);
}

int pl_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (next < 0 || next >= tok->vocab_size || tok->display.length[next] < 0)
        return pl_fail("token id %d is not in the vocabulary (0..%d)", next, tok->vocab_size - 1);
    if (prev >= tok->vocab_size || (prev >= 0 && tok->display.length[prev] < 0))
        prev = -1;
    return tok->ops->decode_next(tok, prev, next, out, len);
}

const char *pl_token_bytes(const pl_tokenizer *tok, int id, size_t *len)
{
    size_t n = 0;
    const char *s = tok_strings_get(&tok->display, id, &n);
    if (s && len)
        *len = n;
    return s;
}
