/* llama2.c's tokenizer.bin ("llama2c"), encoded and decoded exactly as llama2.c's run.c does.
 *
 * File: int32 max_token_length, then per token float32 score, int32 length, `length` bytes (all
 * little-endian). run.c reads as many tokens as the model's vocab_size; here the file is read to its
 * end and, when the model's size is known, the count must equal it.
 *
 * encode (run.c's encode(text, bos=0, eos=0)): a dummy-prefix token " " when the text is not empty;
 * each UTF-8 code point (up to 4 bytes, grouped as run.c groups them) looked up as a piece, else
 * each of its bytes as token byte + 3 (the <0xXX> byte-fallback tokens follow <unk>, <s>, </s>);
 * then, repeatedly, the adjacent pair whose concatenation is a piece with the highest score
 * (leftmost among equals, scores > -1e10) is merged. The heap in bpe_merge.c finds the same pair as
 * run.c's rescan. A piece that appears twice is found as its lowest id (run.c's bsearch over a
 * qsorted vocabulary would pick either; no real tokenizer.bin has duplicates).
 * decode(prev, token): the piece; after BOS (1) a leading space is dropped; a piece that sscanf reads
 * as "<0x%02hhX>" is that raw byte.
 * run.c takes any bytes (a C string): so does plateau, and a NUL byte falls back to <0x00>.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "tok_internal.h"

#define LLAMA2C_BOS 1
#define LLAMA2C_EOS 2
/* Largest number of tokens accepted; keeps every size computation far from overflow. */
#define MAX_TOKENS (1 << 24)

typedef struct {
    tok_strings pieces; /* the pieces as stored in the file */
    float *score;
    int max_token_length;
} llama2c_tok;

static void llama2c_free(void *impl)
{
    llama2c_tok *t = impl;
    if (!t)
        return;
    tok_strings_free(&t->pieces);
    free(t->score);
    free(t);
}

static int32_t read_i32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static float read_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)read_i32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- encode ---- */

typedef struct {
    const llama2c_tok *t;
    tok_buf *concat;
} pair_ctx;

/* run.c merges a pair when the concatenation of its pieces is a piece scoring above -1e10. */
static int llama2c_pair(const void *ctx_, int left, int right, double *priority, int *merged)
{
    const pair_ctx *ctx = ctx_;
    size_t nl = 0, nr = 0;
    const char *l = tok_strings_get(&ctx->t->pieces, left, &nl);
    const char *r = tok_strings_get(&ctx->t->pieces, right, &nr);
    ctx->concat->len = 0;
    if (tok_buf_add(ctx->concat, l, nl) || tok_buf_add(ctx->concat, r, nr))
        return 0;
    int id = tok_strings_find(&ctx->t->pieces, ctx->concat->data, ctx->concat->len);
    float best = -1e10f;
    if (id < 0 || !(ctx->t->score[id] > best))
        return 0;
    *priority = -(double)ctx->t->score[id];
    *merged = id;
    return 1;
}

static int llama2c_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    const llama2c_tok *t = tok->impl;
    *ids = NULL;
    *n_ids = 0;
    /* one dummy prefix + at most one token per byte */
    int *out = pl_malloc((len + 1) * sizeof(int), "token ids");
    tok_bpe_scratch scratch = {0};
    tok_buf concat = {0};
    int rc = PL_ERR;
    if (!out)
        goto done;
    size_t n = 0;
    if (len > 0) {
        int dummy = tok_strings_find(&t->pieces, " ", 1);
        if (dummy < 0) {
            pl_fail("the llama2.c tokenizer has no \" \" piece for run.c's dummy prefix");
            goto done;
        }
        out[n++] = dummy;
    }
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        /* run.c: a code point is a lead byte and the continuation bytes after it, at most 4 bytes */
        size_t k = 1;
        while (i + k < len && (u[i + k] & 0xC0) == 0x80 && k < 4)
            k++;
        int id = tok_strings_find(&t->pieces, text + i, k);
        if (id >= 0)
            out[n++] = id;
        else
            for (size_t b = 0; b < k; b++) {
                int fallback = u[i + b] + 3;
                if (fallback >= tok->vocab_size) {
                    pl_fail("byte 0x%02X needs byte-fallback token %d, beyond the llama2.c tokenizer's %d tokens", u[i + b],
                            fallback, tok->vocab_size);
                    goto done;
                }
                out[n++] = fallback;
            }
        i += k;
    }
    if (tok_bpe_reserve(&scratch, n))
        goto done;
    pair_ctx ctx = {t, &concat};
    n = tok_bpe_merge(&scratch, out, n, llama2c_pair, &ctx, TOK_BPE_IMMEDIATE);
    *ids = out;
    *n_ids = n;
    out = NULL;
    rc = PL_OK;
done:
    free(out);
    free(concat.data);
    tok_bpe_free(&scratch);
    return rc;
}

/* ---- decode ---- */

/* run.c's decode(prev, token), appended to B. */
static int decode_piece(const llama2c_tok *t, int prev, int id, tok_buf *b)
{
    size_t n;
    const char *piece = tok_strings_get(&t->pieces, id, &n); /* NUL-terminated, as run.c's */
    if (prev == LLAMA2C_BOS && piece[0] == ' ')
        piece++;
    unsigned char byte;
    if (sscanf(piece, "<0x%02hhX>", &byte) == 1)
        return tok_buf_add(b, &byte, 1);
    return tok_buf_add(b, piece, strlen(piece));
}

static int check_id(const pl_tokenizer *tok, int id, size_t pos)
{
    if (id < 0 || id >= tok->vocab_size)
        return pl_fail("token id %d (position %zu) is not in the vocabulary (0..%d)", id, pos, tok->vocab_size - 1);
    return PL_OK;
}

static int llama2c_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len)
{
    const llama2c_tok *t = tok->impl;
    *out = NULL;
    *len = 0;
    tok_buf b = {0};
    if (tok_buf_add(&b, "", 0))
        return PL_ERR;
    /* The sequence is read as run.c prints a generation: everything after a BOS. */
    int prev = LLAMA2C_BOS;
    for (size_t i = 0; i < n_ids; i++) {
        if (check_id(tok, ids[i], i)) {
            free(b.data);
            return PL_ERR;
        }
        if (i == 0 && ids[0] == LLAMA2C_BOS)
            continue;
        if (decode_piece(t, prev, ids[i], &b)) {
            free(b.data);
            return PL_ERR;
        }
        prev = ids[i];
    }
    *out = b.data;
    *len = b.len;
    return PL_OK;
}

static int llama2c_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len)
{
    tok_buf b = {0};
    if (tok_buf_add(&b, "", 0) || decode_piece(tok->impl, prev, next, &b)) {
        free(b.data);
        return PL_ERR;
    }
    *out = b.data;
    *len = b.len;
    return PL_OK;
}

static const tok_ops llama2c_ops = {llama2c_free, llama2c_encode, llama2c_decode, llama2c_decode_next};

/* ---- loading ---- */

static int parse(pl_tokenizer *tok, llama2c_tok *t, const char *path, const unsigned char *data, size_t size,
                 int model_vocab)
{
    if (size < 4)
        return pl_fail("%s: %zu bytes: too short for llama2.c's tokenizer header (int32 max_token_length)", path, size);
    t->max_token_length = read_i32(data);
    if (t->max_token_length < 1)
        return pl_fail("%s: max_token_length %d (expected >= 1)", path, t->max_token_length);
    /* first pass: count the tokens and check every length against the file and max_token_length */
    size_t count = 0, total = 0;
    for (size_t at = 4; at < size; count++) {
        if (size - at < 8)
            return pl_fail("%s: token %zu: truncated at byte %zu (score and length need 8 bytes, %zu left)", path,
                           count, at, size - at);
        int32_t n = read_i32(data + at + 4);
        if (n < 0 || n > t->max_token_length)
            return pl_fail("%s: token %zu: length %d outside 0..max_token_length (%d)", path, count, n,
                           t->max_token_length);
        if ((size_t)n > size - at - 8)
            return pl_fail("%s: token %zu: length %d runs past the end of the file (%zu bytes left)", path, count, n,
                           size - at - 8);
        if (count >= MAX_TOKENS)
            return pl_fail("%s: more than %d tokens", path, MAX_TOKENS);
        at += 8 + (size_t)n;
        total += (size_t)n + 1;
    }
    if (count == 0)
        return pl_fail("%s: no tokens after the header", path);
    if (model_vocab > 0 && count != (size_t)model_vocab)
        return pl_fail("%s: %zu tokens, but the model's vocabulary has %d", path, count, model_vocab);
    tok->vocab_size = (int)count;
    t->score = pl_malloc(count * sizeof(float), "token scores");
    if (!t->score || tok_strings_init(&t->pieces, (int)count, total) ||
        tok_strings_init(&tok->display, (int)count, total))
        return PL_ERR;
    size_t at = 4;
    for (size_t i = 0; i < count; i++) {
        int32_t n = read_i32(data + at + 4);
        t->score[i] = read_f32(data + at);
        const char *piece = (const char *)data + at + 8;
        tok_strings_set(&t->pieces, (int)i, piece, (size_t)n);
        /* display: the piece as run.c's decode prints it mid-text */
        size_t stored;
        const char *cstr = tok_strings_get(&t->pieces, (int)i, &stored);
        unsigned char byte;
        if (sscanf(cstr, "<0x%02hhX>", &byte) == 1)
            tok_strings_set(&tok->display, (int)i, (const char *)&byte, 1);
        else
            tok_strings_set(&tok->display, (int)i, cstr, strlen(cstr));
        at += 8 + (size_t)n;
    }
    if (tok_strings_index(&t->pieces) || tok_strings_index(&tok->display))
        return PL_ERR;
    tok->bos_id = count > LLAMA2C_BOS ? LLAMA2C_BOS : -1;
    tok->eos_id = count > LLAMA2C_EOS ? LLAMA2C_EOS : -1;
    if (tok->bos_id >= 0)
        tok->prefix[tok->n_prefix++] = tok->bos_id;
    return PL_OK;
}

int tok_llama2c_parse(pl_tokenizer **out, const char *path, const unsigned char *data, size_t size, int model_vocab)
{
    *out = NULL;
    pl_tokenizer *tok = pl_calloc(1, sizeof *tok, "tokenizer");
    llama2c_tok *t = pl_calloc(1, sizeof *t, "tokenizer");
    if (!tok || !t) {
        free(tok);
        free(t);
        return PL_ERR;
    }
    tok->ops = &llama2c_ops;
    tok->impl = t;
    tok->kind = "llama2c";
    int rc = parse(tok, t, path, data, size, model_vocab);
    if (rc)
        pl_tokenizer_free(tok);
    else
        *out = tok;
    return rc;
}

int tok_llama2c_open(pl_tokenizer **out, const char *path, int model_vocab)
{
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    int rc = pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size);
    if (rc == PL_OK)
        rc = tok_llama2c_parse(out, path, (const unsigned char *)data, size, model_vocab);
    free(data);
    return rc;
}
