/* HF tokenizer.json with a BPE model: the parsed pipeline (hf_json.c), encode (hf_encode.c),
 * decode (hf_decode.c) and the Oniguruma -> PCRE2 pattern translation (hf_regex.c). */
#ifndef PLATEAU_HF_INTERNAL_H
#define PLATEAU_HF_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tok_internal.h"

/* A Split/Replace pattern: {"String": s} (matched literally) or {"Regex": onig} (translated). */
typedef struct {
    pcre2_code *regex;
    char *literal; /* the String form, for decoders */
    size_t literal_len;
} hf_pattern;

enum { NORM_UNICODE, NORM_PREPEND, NORM_REPLACE };
typedef struct {
    int kind;
    const char *form; /* NORM_UNICODE: "NFC", "NFD", "NFKC", "NFKD" */
    char *text;       /* NORM_PREPEND: prepended; NORM_REPLACE: replacement */
    size_t text_len;
    hf_pattern pattern;
} hf_normalizer;

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PRE_BYTELEVEL, PRE_SPLIT, PRE_METASPACE, PRE_DIGITS };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct {
    int kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    hf_pattern pattern;              /* Split */
    int behavior, invert;            /* Split; Digits: behavior */
    uint32_t replacement;            /* Metaspace */
    int prepend_scheme, split;       /* Metaspace */
} hf_pretok;

enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct {
    int kind;
    hf_pattern pattern; /* Replace: literal only */
    char *content;      /* Replace */
    size_t content_len;
    uint32_t strip_char; /* Strip */
    int start, stop;     /* Strip */
    uint32_t replacement; /* Metaspace */
    int prepend_never;    /* Metaspace */
} hf_decoder;

typedef struct {
    int id;
    char *content; /* as matched: the content, or for normalized tokens the normalized content */
    size_t len;
    int single_word, lstrip, rstrip, normalized, special;
} hf_added;

/* Added tokens of one matching pass, bucketed by first byte, longest first. */
typedef struct {
    int *order;        /* indices into hf_tok.added */
    int first[257];    /* order[first[b] .. first[b+1]) start with byte b */
} hf_matcher;

typedef struct {
    const char *path;
    int bytelevel; /* the pre-tokenizer has a ByteLevel step: vocab strings are in GPT-2's byte alphabet */
    hf_normalizer *norms;
    int n_norms;
    hf_pretok *pretoks;
    int n_pretoks;
    int has_decoder;
    hf_decoder *decs;
    int n_decs;
    hf_added *added;
    int n_added;
    hf_matcher raw_matcher, normalized_matcher;
    unsigned char *is_special; /* (V) added special tokens */
    tok_strings vocab;         /* the model's vocab, strings as in the file */
    tok_strings text;          /* every id's string for decoding: added tokens, else the model's */
    tok_pairs pairs;
    int unk_id, fuse_unk, ignore_merges;
    int byte_fallback_id[256]; /* "<0xXX>" tokens when byte_fallback, else -1 */
    int byte_fallback;
    pcre2_code *bytelevel_regex;
} hf_tok;

/* hf_regex.c: compile a pattern of a tokenizer.json (Oniguruma syntax) for PCRE2 with Oniguruma's
 * meaning, or refuse what it cannot translate exactly. WHAT names the place for errors. */
int hf_regex_compile(const char *onig, const char *what, pcre2_code **out);
pcre2_code *hf_regex_literal(const char *s, size_t n);

/* A match list over TEXT[0..n): Rust tokenizers' Pattern::find_matches for a compiled pattern
 * (Oniguruma's find_iter: an empty match right after the previous match is skipped). */
typedef struct {
    size_t start, end;
    int is_match;
} hf_span;
int hf_find_matches(const pcre2_code *re, const char *text, size_t n, hf_span **spans, size_t *n_spans);

/* hf_decode.c */
enum { DECODE_FULL, DECODE_RAW, DECODE_TOKEN };
int hf_decode_chain(const pl_tokenizer *tok, const int *ids, size_t n_ids, int mode, char **out, size_t *len);
int hf_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len);
int hf_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len);

/* hf_encode.c */
int hf_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids);
/* Apply the normalizers to S (valid UTF-8); *at_origin is cleared when a leading character is deleted. */
int hf_normalize(const hf_tok *h, const char *s, size_t n, char **out, size_t *out_len, int *at_origin);

void hf_free(void *impl);

#endif
