/* GPT-2 byte-level BPE (vocab.json + merges.txt), with GPT-2's pre-tokenisation pattern. */
#ifndef PLATEAU_TOKENIZER_H
#define PLATEAU_TOKENIZER_H

#include <stddef.h>

typedef struct pl_tokenizer pl_tokenizer;

/* Load DIR/vocab.json and DIR/merges.txt. Errors name the file and line/key. */
int pl_tokenizer_load(pl_tokenizer **tok, const char *dir);
void pl_tokenizer_free(pl_tokenizer *tok);
int pl_tokenizer_vocab_size(const pl_tokenizer *tok);

/* Encode LEN bytes of TEXT (must be valid UTF-8; the error gives the byte offset of the first
 * invalid sequence). *ids is malloc'ed, *n_ids its length. */
int pl_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids);

/* Decode IDS into a malloc'ed byte string *out of *len bytes (NUL-terminated as well).
 * An id outside the vocabulary is an error naming it. */
int pl_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len);

/* The token's bytes (decoded from the byte-level alphabet), or NULL for an unknown id. */
const char *pl_token_bytes(const pl_tokenizer *tok, int id, size_t *len);

#endif
