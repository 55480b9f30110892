/* GPT-2 byte-level BPE ("gpt2-bpe"): vocab.json + merges.txt, GPT-2's pre-tokenisation regex, encode
 * and decode byte-exact with OpenAI's encoder.py.
 *
 * Every token is held as the raw bytes it stands for; the byte-level alphabet of vocab.json and
 * merges.txt (bytes_to_unicode) is undone once at load time, so encoding works on bytes and ids only.
 *
 * Pre-tokenisation uses GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * compiled by PCRE2 in UTF mode, with \s spelled out as an explicit class. Why: GPT-2's encoder.py
 * runs it through Python's `regex` module, whose \s is Unicode White_Space (\t\n\v\f\r, space, U+0085,
 * U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). PCRE2_UCP's \s adds U+180E,
 * and JavaScript's \s (gpt-3-encoder) drops U+0085 and adds U+FEFF. Spelling the class out makes
 * plateau agree with the original encoder.py on those three characters (see tests/tokenizer/README.md),
 * and leaves PCRE2_UCP with nothing to change: \p{L} and \p{N} are Unicode properties in UTF mode.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <jansson.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "tok_internal.h"

static const char gpt2_pattern[] = TOK_GPT2_PATTERN;

/* Largest id accepted in vocab.json; keeps every size computation far from overflow. */
#define MAX_VOCAB (1 << 24)

typedef struct {
    int byte_token[256]; /* id of the single-byte token for each byte */
    tok_pairs pairs;
    pcre2_code *pretokenizer;
} gpt2_bpe;

static void describe_codepoint(char *out, size_t n, uint32_t cp)
{
    if (cp == 0x110000)
        snprintf(out, n, "invalid UTF-8");
    else
        snprintf(out, n, "character U+%04X is not in GPT-2's byte-level alphabet", (unsigned)cp);
}

/* Turn a byte-level token string (UTF-8, N bytes) into the bytes it stands for, written to OUT
 * (room for N bytes). Returns the byte count, or -1 with *bad set to the offending code point
 * (0x110000 for invalid UTF-8). */
static long unmap_token(const int byte_of_codepoint[324], const char *s, size_t n, unsigned char *out,
                        uint32_t *bad)
{
    long len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int step = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (!step) {
            *bad = 0x110000;
            return -1;
        }
        if (cp >= 324 || byte_of_codepoint[cp] < 0) {
            *bad = cp;
            return -1;
        }
        out[len++] = (unsigned char)byte_of_codepoint[cp];
        i += (size_t)step;
    }
    return len;
}

/* ---- loading ---- */

/* vocab.json's entry KEY: VALUE (of N) into V, its token unmapped from the byte alphabet through
 * SCRATCH (at least strlen(KEY) + 1 bytes). */
static int vocab_entry(tok_strings *v, const char *path, const char *key, const json_t *value, size_t n,
                       const int byte_of_codepoint[324], unsigned char *scratch)
{
    if (!json_is_integer(value))
        return pl_fail("%s: key \"%s\": id is not an integer", path, key);
    json_int_t id = json_integer_value(value);
    if (id < 0 || (size_t)id >= n)
        return pl_fail("%s: key \"%s\": id %lld outside 0..%zu (ids must be 0..N-1 for N tokens)", path, key,
                       (long long)id, n - 1);
    if (v->length[id] >= 0)
        return pl_fail("%s: key \"%s\": id %lld is already used by another token", path, key, (long long)id);
    uint32_t bad;
    long len = unmap_token(byte_of_codepoint, key, strlen(key), scratch, &bad);
    if (len < 0) {
        char why[96];
        describe_codepoint(why, sizeof why, bad);
        return pl_fail("%s: key \"%s\": %s", path, key, why);
    }
    if (len == 0)
        return pl_fail("%s: key \"\": empty token", path);
    tok_strings_set(v, (int)id, (const char *)scratch, (size_t)len);
    return PL_OK;
}

/* Every byte's single-byte token (byte-level BPE needs one for each of the 256). */
static int byte_tokens(gpt2_bpe *g, const tok_strings *v, const char *path, const int byte_of_codepoint[324])
{
    for (int b = 0; b < 256; b++) {
        char byte = (char)b;
        g->byte_token[b] = tok_strings_find(v, &byte, 1);
        if (g->byte_token[b] < 0) {
            int cp = 0;
            while (byte_of_codepoint[cp] != b)
                cp++;
            return pl_fail("%s: no token for byte 0x%02X (key \"\\u%04X\"): every byte needs a token", path, b, cp);
        }
    }
    return PL_OK;
}

static int load_vocab(pl_tokenizer *tok, gpt2_bpe *g, const char *path, const int byte_of_codepoint[324])
{
    json_error_t jerr;
    char *text;
    size_t text_len;
    /* a bounded read of a regular file: a FIFO or device as vocab.json is refused, never waited on */
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &text, &text_len) != PL_OK)
        return PL_ERR;
    json_t *root = json_loadb(text, text_len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return pl_fail("%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    int rc = PL_ERR;
    unsigned char *scratch = NULL;
    tok_strings *v = &tok->display;
    if (!json_is_object(root)) {
        pl_fail("%s: expected a JSON object {\"token\": id, ...}", path);
        goto done;
    }
    size_t n = json_object_size(root);
    if (n == 0 || n > MAX_VOCAB) {
        pl_fail("%s: %zu tokens (expected 1..%d)", path, n, MAX_VOCAB);
        goto done;
    }
    tok->vocab_size = (int)n;
    size_t total = 0, longest = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        total += strlen(key) + 1;
        if (strlen(key) > longest)
            longest = strlen(key);
    }
    scratch = pl_malloc(longest + 1, "token bytes");
    if (!scratch || tok_strings_init(v, (int)n, total))
        goto done;
    json_object_foreach(root, key, value) {
        if (vocab_entry(v, path, key, value, n, byte_of_codepoint, scratch) != PL_OK)
            goto done;
    }
    /* n distinct ids in 0..n-1: every id is used exactly once. */
    if (tok_strings_index(v) || byte_tokens(g, v, path, byte_of_codepoint) != PL_OK)
        goto done;
    tok->eos_id = tok->bos_id = tok_strings_find(v, "<|endoftext|>", 13);
    rc = PL_OK;
done:
    free(scratch);
    json_decref(root);
    return rc;
}

/* One merges.txt line LINE (number LINE_NO; split in place) added to g->pairs; SCRATCH holds the two
 * tokens' bytes (at least strlen(LINE) + 1). */
static int merge_line(pl_tokenizer *tok, gpt2_bpe *g, const char *path, long line_no, char *line,
                      const int byte_of_codepoint[324], unsigned char *scratch)
{
    char *part[3];
    int n_parts = 0;
    for (char *p = line; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (n_parts < 3)
            part[n_parts] = p;
        n_parts++;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (n_parts != 2)
        return pl_fail("%s:%ld: expected two space-separated tokens, found %d", path, line_no, n_parts);
    int ids[2];
    long lens[2];
    for (int k = 0; k < 2; k++) {
        uint32_t bad;
        unsigned char *bytes = scratch + (k ? lens[0] : 0);
        lens[k] = unmap_token(byte_of_codepoint, part[k], strlen(part[k]), bytes, &bad);
        if (lens[k] < 0) {
            char why[96];
            describe_codepoint(why, sizeof why, bad);
            return pl_fail("%s:%ld: token \"%s\": %s", path, line_no, part[k], why);
        }
        ids[k] = tok_strings_find(&tok->display, (const char *)bytes, (size_t)lens[k]);
        if (ids[k] < 0)
            return pl_fail("%s:%ld: token \"%s\" is not in vocab.json", path, line_no, part[k]);
    }
    int merged = tok_strings_find(&tok->display, (const char *)scratch, (size_t)(lens[0] + lens[1]));
    if (merged < 0)
        return pl_fail("%s:%ld: merged token \"%s%s\" is not in vocab.json", path, line_no, part[0], part[1]);
    tok_pairs_add(&g->pairs, ids[0], ids[1], merged);
    return PL_OK;
}

static int load_merges(pl_tokenizer *tok, gpt2_bpe *g, const char *path, const int byte_of_codepoint[324])
{
    char *data = NULL;
    size_t size = 0;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size))
        return PL_ERR;
    size_t n_lines = 1;
    for (size_t i = 0; i < size; i++)
        n_lines += data[i] == '\n';
    unsigned char *scratch = pl_malloc(size + 1, "merge line");
    int rc = PL_ERR;
    if (!scratch || tok_pairs_init(&g->pairs, n_lines))
        goto done;

    char *line = data;
    for (long line_no = 1; line < data + size; line_no++) {
        char *end = memchr(line, '\n', (size_t)(data + size - line));
        char *next = end ? end + 1 : data + size;
        if (!end)
            end = data + size;
        if (end > line && end[-1] == '\r')
            end--;
        *end = '\0';
        if (memchr(line, '\0', (size_t)(end - line))) {
            pl_fail("%s:%ld: NUL byte in line", path, line_no);
            goto done;
        }
        /* The first line of GPT-2's file is "#version: 0.2": a comment, not a merge. */
        if (line_no == 1 && !strncmp(line, "#version", 8)) {
            line = next;
            continue;
        }
        if (merge_line(tok, g, path, line_no, line, byte_of_codepoint, scratch) != PL_OK)
            goto done;
        line = next;
    }
    rc = PL_OK;
done:
    free(scratch);
    free(data);
    return rc;
}

static void gpt2_free(void *impl)
{
    gpt2_bpe *g = impl;
    if (!g)
        return;
    pcre2_code_free(g->pretokenizer);
    tok_pairs_free(&g->pairs);
    free(g);
}

/* ---- encode / decode ---- */

static int gpt2_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    const gpt2_bpe *g = tok->impl;
    *ids = NULL;
    *n_ids = 0;
    /* Every token covers at least one byte, so len ids always suffice. */
    int *out = pl_malloc((len ? len : 1) * sizeof(int), "token ids");
    pcre2_match_data *match = pcre2_match_data_create(1, NULL);
    tok_bpe_scratch scratch = {0};
    int rc = PL_ERR;
    if (!out || !match) {
        if (!match)
            pl_fail("out of memory (PCRE2 match data)");
        goto done;
    }
    size_t n_out = 0;
    uint32_t utf_check = 0; /* PCRE2 validates the whole subject on the first call only */
    for (size_t offset = 0; offset < len;) {
        int m = pcre2_match(g->pretokenizer, (PCRE2_SPTR)text, len, offset, PCRE2_ANCHORED | utf_check, match,
                            NULL);
        if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            if (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21)
                pl_fail("invalid UTF-8 at byte offset %zu (%s)", (size_t)pcre2_get_startchar(match), (char *)msg);
            else
                pl_fail("pre-tokenisation failed at byte offset %zu: %s", offset, (char *)msg);
            goto done;
        }
        utf_check = PCRE2_NO_UTF_CHECK;
        PCRE2_SIZE *span = pcre2_get_ovector_pointer(match);
        if (span[0] != offset || span[1] <= offset) {
            pl_fail("pre-tokenisation made no progress at byte offset %zu", offset);
            goto done;
        }
        size_t n = span[1] - span[0];
        if (tok_bpe_reserve(&scratch, n))
            goto done;
        for (size_t i = 0; i < n; i++)
            out[n_out + i] = g->byte_token[(unsigned char)text[offset + i]];
        n_out += tok_bpe_merge(&scratch, out + n_out, n, tok_pairs_lookup, &g->pairs, TOK_BPE_ROUNDS);
        offset += n;
    }
    *ids = out;
    *n_ids = n_out;
    out = NULL;
    rc = PL_OK;
done:
    tok_bpe_free(&scratch);
    pcre2_match_data_free(match);
    free(out);
    return rc;
}

/* GPT-2's decode is the tokens' bytes, concatenated (encoder.py's, before its errors="replace"). */
static int gpt2_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    tok_buf b = {0};
    if (tok_buf_add(&b, "", 0))
        return PL_ERR;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n;
        const char *s = tok_strings_get(&tok->display, ids[i], &n);
        if (!s) {
            free(b.data);
            return pl_fail("token id %d (position %zu) is not in the vocabulary (0..%d)", ids[i], i,
                           tok->vocab_size - 1);
        }
        if (tok_buf_add(&b, s, n)) {
            free(b.data);
            return PL_ERR;
        }
    }
    *out = b.data;
    *len = b.len;
    return PL_OK;
}

static int gpt2_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len)
{
    (void)prev;
    return gpt2_decode(tok, &next, 1, out, len);
}

static const tok_ops gpt2_ops = {gpt2_free, gpt2_encode, gpt2_decode, gpt2_decode_next};

int tok_gpt2_open(pl_tokenizer **out, const char *dir)
{
    *out = NULL;
    pl_tokenizer *tok = pl_calloc(1, sizeof *tok, "tokenizer");
    gpt2_bpe *g = pl_calloc(1, sizeof *g, "tokenizer");
    if (!tok || !g) {
        free(tok);
        free(g);
        return PL_ERR;
    }
    tok->ops = &gpt2_ops;
    tok->impl = g;
    tok->kind = "gpt2-bpe";
    tok->bos_id = tok->eos_id = -1;
    uint32_t codepoint_of_byte[256];
    int byte_of_codepoint[324];
    tok_byte_alphabet(codepoint_of_byte, byte_of_codepoint);
    char *vocab_path = tok_join_path(dir, "vocab.json");
    char *merges_path = tok_join_path(dir, "merges.txt");
    int rc = PL_ERR;
    if (!vocab_path || !merges_path)
        goto done;
    if (load_vocab(tok, g, vocab_path, byte_of_codepoint) || load_merges(tok, g, merges_path, byte_of_codepoint))
        goto done;
    int err;
    PCRE2_SIZE err_offset;
    g->pretokenizer = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err,
                                    &err_offset, NULL);
    if (!g->pretokenizer) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        pl_fail("tokenizer: PCRE2 cannot compile GPT-2's pattern at offset %zu: %s", (size_t)err_offset,
                (char *)msg);
        goto done;
    }
    /* JIT is only a speed-up: without it (no JIT support, W^X policy) pcre2_match interprets. */
    pcre2_jit_compile(g->pretokenizer, PCRE2_JIT_COMPLETE);
    rc = PL_OK;
done:
    free(vocab_path);
    free(merges_path);
    if (rc)
        pl_tokenizer_free(tok);
    else
        *out = tok;
    return rc;
}
