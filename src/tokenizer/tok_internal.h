/* What the tokenizer kinds share behind include/plateau/tokenizer.h: the dispatch table every kind
 * fills in, a string -> id table, the heap-ordered BPE merge loop, UTF-8 helpers and Unicode
 * properties (ICU). Private to src/tokenizer/. */
#ifndef PLATEAU_TOK_INTERNAL_H
#define PLATEAU_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "plateau/tokenizer.h"

typedef struct {
    void (*free_impl)(void *impl);
    int (*encode)(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids);
    int (*decode)(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len);
    int (*decode_next)(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len);
} tok_ops;

/* One string per id; ids without a string (holes in an HF vocab) have length -1. */
typedef struct {
    int n;              /* ids 0..n-1 */
    char *bytes;        /* every string, each followed by a NUL */
    size_t used;        /* bytes of `bytes` taken */
    size_t *offset;     /* (n) */
    int *length;        /* (n) */
    int *slots;         /* open addressing: string -> lowest id holding it; -1 = free */
    size_t mask;
} tok_strings;

struct pl_tokenizer {
    const tok_ops *ops;
    const char *kind;
    int vocab_size;
    int bos_id, eos_id;
    /* encode with special tokens: these ids around the text (HF post-processor; run.c's BOS) */
    int prefix[8], n_prefix, suffix[8], n_suffix;
    tok_strings display; /* pl_token_bytes: each token's raw bytes */
    void *impl;
};

/* ---- string tables (tok_strings.c) ---- */
/* Room for N ids and TOTAL bytes of strings (count one NUL per string in TOTAL); every id starts without a string. */
int tok_strings_init(tok_strings *t, int n, size_t total);
/* Copy S[0..LEN) in as id's string (each id once). */
void tok_strings_set(tok_strings *t, int id, const char *s, size_t len);
/* Build the lookup; call once after every set. */
int tok_strings_index(tok_strings *t);
int tok_strings_find(const tok_strings *t, const char *s, size_t len);
static inline const char *tok_strings_get(const tok_strings *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n || t->length[id] < 0)
        return NULL;
    *len = (size_t)t->length[id];
    return t->bytes + t->offset[id];
}
void tok_strings_free(tok_strings *t);

/* ---- BPE merge loop (bpe_merge.c) ---- */
/* The merge of adjacent ids LEFT, RIGHT: returns 1 and sets *priority (lower merges first) and
 * *merged, or 0 when the pair does not merge. */
typedef int (*tok_pair_fn)(const void *ctx, int left, int right, double *priority, int *merged);

typedef struct {
    size_t cap;
    int *id, *next, *prev;
    void *heap, *pending;
} tok_bpe_scratch;

enum {
    /* encoder.py: every occurrence of the best pair is merged, left to right, before any pair those
     * merges create is considered; an entry is stale when either symbol changed. */
    TOK_BPE_ROUNDS,
    /* HF tokenizers (Rust Word::merge_all) and llama2.c: new pairs compete at once; an entry is
     * stale when the pair now at its position no longer merges into the same id. */
    TOK_BPE_IMMEDIATE,
};

/* Merge IDS[0..n) in place; returns the new count. */
size_t tok_bpe_merge(tok_bpe_scratch *s, int *ids, size_t n, tok_pair_fn pair, const void *ctx, int mode);
int tok_bpe_reserve(tok_bpe_scratch *s, size_t n);
void tok_bpe_free(tok_bpe_scratch *s);

/* Pair table: (left, right) -> (rank, merged), rank = order of insertion; a pair inserted twice
 * keeps its last rank (as a Python dict or Rust HashMap built from the list would). */
typedef struct {
    void *slots;
    size_t mask;
    int n;
} tok_pairs;
int tok_pairs_init(tok_pairs *p, size_t n_merges);
void tok_pairs_add(tok_pairs *p, int left, int right, int merged);
int tok_pairs_lookup(const void *pairs, int left, int right, double *rank, int *merged); /* a tok_pair_fn */
void tok_pairs_free(tok_pairs *p);

/* ---- UTF-8 and Unicode (unicode.c) ---- */
/* Decode one code point of S (N bytes available); its length, 0 if not well-formed UTF-8. */
int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* Byte offset of the first ill-formed sequence, or -1. */
long tok_utf8_invalid_at(const char *s, size_t n);
/* Fail with "invalid UTF-8 at byte offset N (...)" for S, which has an invalid sequence at AT. */
int tok_fail_invalid_utf8(const char *s, size_t n, long at);
/* Encode CP as UTF-8 into OUT (4 bytes room); its length. */
int tok_utf8_put(uint32_t cp, char *out);
/* Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes U+FFFD. Malloc'ed, NUL-ended. */
int tok_utf8_lossy(const char *s, size_t n, char **out, size_t *out_len);
/* Unicode normalisation of valid UTF-8 (form "NFC", "NFD", "NFKC", "NFKD") by ICU. */
int tok_unicode_normalize(const char *form, const char *s, size_t n, char **out, size_t *out_len);
int tok_is_white_space(uint32_t cp);  /* White_Space: Rust char::is_whitespace, regex \s */
int tok_is_word_char(uint32_t cp);    /* Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control */

/* GPT-2's byte-level alphabet (bytes_to_unicode): the code point standing for each byte, and back
 * (code points < 324; -1 outside the alphabet). */
void tok_byte_alphabet(uint32_t codepoint_of_byte[256], int byte_of_codepoint[324]);

/* GPT-2's pre-tokenisation pattern with \s spelled out as Unicode White_Space, which is what both
 * encoder.py's `regex` module and Oniguruma (HF tokenizers' ByteLevel) mean by \s. */
#define TOK_WS "\\t\\n\\x0b\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define TOK_GPT2_PATTERN                                                                                                \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" TOK_WS "\\p{L}\\p{N}]+|[" TOK_WS "]+(?![^" TOK_WS "])|[" TOK_WS \
    "]+"

/* ---- the kinds ---- */
int tok_gpt2_open(pl_tokenizer **tok, const char *dir);
int tok_hf_open(pl_tokenizer **tok, const char *json_path);
int tok_llama2c_open(pl_tokenizer **tok, const char *path, int model_vocab);
/* The same from bytes in memory (PATH only names them in errors; the fuzz targets use these). */
int tok_hf_parse(pl_tokenizer **tok, const char *path, const char *data, size_t size);
int tok_llama2c_parse(pl_tokenizer **tok, const char *path, const unsigned char *data, size_t size, int model_vocab);

/* "DIR/NAME", malloc'ed. */
char *tok_join_path(const char *dir, const char *name);
/* A grown malloc'ed byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} tok_buf;
int tok_buf_add(tok_buf *b, const void *s, size_t n);

#endif
