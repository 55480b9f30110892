/* Tokenizers behind one interface. Kinds (pl_tokenizer_kind):
 *   "gpt2-bpe"              GPT-2's vocab.json + merges.txt, byte-exact with OpenAI's encoder.py
 *   "hf-bpe-bytelevel"      HF tokenizer.json, BPE model, ByteLevel pre-tokenizer (GPT-2, GPT-NeoX/Pythia,
 *                           Llama 3, Qwen2, SmolLM)
 *   "hf-bpe-sentencepiece"  HF tokenizer.json, BPE model over SentencePiece-style pieces (Llama 2, Mistral)
 *   "llama2c"               llama2.c's tokenizer.bin, exactly as its run.c encodes and decodes
 * Anything in a tokenizer.json that plateau does not reproduce exactly is refused by name. */
#ifndef PLATEAU_TOKENIZER_H
#define PLATEAU_TOKENIZER_H

#include <stddef.h>

typedef struct pl_tokenizer pl_tokenizer;

/* MODEL_PATH: an HF model dir or a llama2.c checkpoint (.bin); TOKENIZER_PATH: an explicit file or
 * dir, or NULL; MODEL_VOCAB: the model's vocab size (> 0), or 0 when unknown.
 *   explicit dir, or MODEL_PATH a dir: DIR/tokenizer.json if present, else DIR/vocab.json + merges.txt;
 *   explicit file: *.json is a tokenizer.json, anything else a llama2.c tokenizer.bin;
 *   MODEL_PATH a file: tokenizer.bin beside it, else tok<MODEL_VOCAB>.bin beside it.
 * With MODEL_VOCAB > 0 every token id must be below it (a llama2.c tokenizer must have exactly that
 * many tokens). Errors name every file tried. tokenizer_config.json beside a tokenizer.json supplies
 * add_bos_token / bos_token / eos_token when present. */
int pl_tokenizer_open(pl_tokenizer **tok, const char *model_path, const char *tokenizer_path, int model_vocab);

/* Load DIR/vocab.json and DIR/merges.txt (GPT-2). Errors name the file and line/key. */
int pl_tokenizer_load(pl_tokenizer **tok, const char *dir);
void pl_tokenizer_free(pl_tokenizer *tok);

/* Ids are 0..vocab_size-1 (an HF vocab may leave holes: decoding one is an error). */
int pl_tokenizer_vocab_size(const pl_tokenizer *tok);
int pl_tokenizer_bos_id(const pl_tokenizer *tok);   /* -1 if none */
int pl_tokenizer_eos_id(const pl_tokenizer *tok);   /* end-of-text token (<|endoftext|>, </s>), -1 if none */
int pl_tokenizer_adds_bos(const pl_tokenizer *tok); /* 1 if the model's encode-with-specials prepends BOS */
const char *pl_tokenizer_kind(const pl_tokenizer *tok);

/* Encode LEN bytes of TEXT without special tokens (HF add_special_tokens=False; run.c's bos=0).
 * Text must be valid UTF-8 (the error gives the byte offset of the first invalid sequence), except
 * for "llama2c", which takes any bytes as run.c does (its byte fallback). *ids is malloc'ed. */
int pl_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids);
/* pl_encode with the special tokens the model adds around a text: HF add_special_tokens=True (the
 * post-processor, or tokenizer_config.json's add_bos_token/add_eos_token), run.c's bos=1. */
int pl_encode_special(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids);

/* Decode a whole sequence into a malloc'ed string *out of *len bytes (NUL-terminated as well):
 *   gpt2-bpe: the tokens' bytes; hf-*: as HF tokenizers' decode (skip_special_tokens=False, invalid
 *   UTF-8 replaced by U+FFFD); llama2c: as run.c prints a generation after BOS (a leading BOS is
 *   dropped; the first token's leading space is stripped; <0xXX> pieces are raw bytes).
 * An id outside the vocabulary is an error naming it. */
int pl_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len);

/* The raw bytes of one token as it reads inside a text (byte-level alphabet undone, '▁' as a space,
 * <0xXX> as its byte), or NULL for an unknown id. Not NUL-terminated in general. */
const char *pl_token_bytes(const pl_tokenizer *tok, int id, size_t *len);

/* Streaming: the bytes to print when NEXT follows PREV in generation (PREV -1 at the start).
 * llama2c: run.c's decode(prev, next). hf-*: the bytes decoding NEXT adds after PREV (after a special
 * token or at the start, as the first token of a text). gpt2-bpe: NEXT's bytes. Malloc'ed. */
int pl_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len);

#endif
