/* GPT-2 byte-level BPE: vocab.json + merges.txt, GPT-2's pre-tokenisation regex, encode and decode.
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
#include "plateau/tokenizer.h"

#define WS "\\t\\n\\x0b\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

/* Largest id accepted in vocab.json; keeps every size computation far from overflow. */
#define MAX_VOCAB (1 << 24)

typedef struct {
    uint64_t key; /* left id << 32 | right id; EMPTY_PAIR when the slot is free */
    int rank;     /* line order in merges.txt: lower merges first */
    int merged;   /* id of the concatenation */
} pair_slot;
#define EMPTY_PAIR UINT64_MAX

struct pl_tokenizer {
    int vocab_size;
    char *token_bytes;      /* every token's bytes, each followed by a NUL */
    size_t *token_offset;   /* (V) start of token id in token_bytes */
    int *token_length;      /* (V) */
    int byte_token[256];    /* id of the single-byte token for each byte */
    int *lookup;            /* open-addressing table bytes -> id, -1 = free */
    size_t lookup_mask;
    pair_slot *pairs;       /* open-addressing table (left, right) -> (rank, merged) */
    size_t pair_mask;
    int n_merges;
    pcre2_code *pretokenizer;
};

/* ---- GPT-2's byte-level alphabet ---- */

/* bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are moved to
 * U+0100.. in byte order. byte_of_codepoint inverts it (code points < 324, -1 outside the alphabet). */
static void byte_alphabet(int byte_of_codepoint[324])
{
    for (int c = 0; c < 324; c++)
        byte_of_codepoint[c] = -1;
    int shifted = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_of_codepoint[printable ? b : 256 + shifted++] = b;
    }
}

/* Decode one UTF-8 code point of S (N bytes available); returns its length, 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > n)
        return 0;
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_of_len[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
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
        int step = utf8_next((const unsigned char *)s + i, n - i, &cp);
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

/* ---- hash tables ---- */

static uint64_t hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static size_t table_size_for(size_t n)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    return size;
}

/* Id of the token with bytes S[0..N), or -1. */
static int lookup_token(const pl_tokenizer *tok, const unsigned char *s, size_t n)
{
    for (size_t slot = hash_bytes(s, n) & tok->lookup_mask;; slot = (slot + 1) & tok->lookup_mask) {
        int id = tok->lookup[slot];
        if (id < 0)
            return -1;
        if ((size_t)tok->token_length[id] == n && !memcmp(tok->token_bytes + tok->token_offset[id], s, n))
            return id;
    }
}

static size_t pair_slot_of(const pl_tokenizer *tok, uint64_t key)
{
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & tok->pair_mask;
    while (tok->pairs[slot].key != EMPTY_PAIR && tok->pairs[slot].key != key)
        slot = (slot + 1) & tok->pair_mask;
    return slot;
}

static const pair_slot *find_pair(const pl_tokenizer *tok, int left, int right)
{
    const pair_slot *p = &tok->pairs[pair_slot_of(tok, (uint64_t)(uint32_t)left << 32 | (uint32_t)right)];
    return p->key == EMPTY_PAIR ? NULL : p;
}

/* ---- loading ---- */

static void describe_codepoint(char *out, size_t n, uint32_t cp)
{
    if (cp == 0x110000)
        snprintf(out, n, "invalid UTF-8");
    else
        snprintf(out, n, "character U+%04X is not in GPT-2's byte-level alphabet", (unsigned)cp);
}

static int load_vocab(pl_tokenizer *tok, const char *path, const int byte_of_codepoint[324])
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return pl_fail("%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return pl_fail("%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    }
    int rc = PL_ERR;
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
    tok->token_offset = pl_calloc(n, sizeof(size_t), "token offsets");
    tok->token_length = pl_malloc(n * sizeof(int), "token lengths");
    size_t total = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) total += strlen(key) + 1;
    tok->token_bytes = pl_malloc(total, "token bytes");
    if (!tok->token_offset || !tok->token_length || !tok->token_bytes)
        goto done;
    for (size_t i = 0; i < n; i++)
        tok->token_length[i] = -1;
    size_t used = 0;
    json_object_foreach(root, key, value) {
        if (!json_is_integer(value)) {
            pl_fail("%s: key \"%s\": id is not an integer", path, key);
            goto done;
        }
        json_int_t id = json_integer_value(value);
        if (id < 0 || (size_t)id >= n) {
            pl_fail("%s: key \"%s\": id %lld outside 0..%zu (ids must be 0..N-1 for N tokens)", path, key,
                    (long long)id, n - 1);
            goto done;
        }
        if (tok->token_length[id] >= 0) {
            pl_fail("%s: key \"%s\": id %lld is already used by another token", path, key, (long long)id);
            goto done;
        }
        uint32_t bad;
        long len = unmap_token(byte_of_codepoint, key, strlen(key), (unsigned char *)tok->token_bytes + used, &bad);
        if (len < 0) {
            char why[96];
            describe_codepoint(why, sizeof why, bad);
            pl_fail("%s: key \"%s\": %s", path, key, why);
            goto done;
        }
        if (len == 0) {
            pl_fail("%s: key \"\": empty token", path);
            goto done;
        }
        tok->token_offset[id] = used;
        tok->token_length[id] = (int)len;
        tok->token_bytes[used + (size_t)len] = '\0';
        used += (size_t)len + 1;
    }
    /* n distinct ids in 0..n-1: every id is used exactly once. */
    size_t size = table_size_for(n);
    tok->lookup_mask = size - 1;
    tok->lookup = pl_malloc(size * sizeof(int), "token lookup table");
    if (!tok->lookup)
        goto done;
    memset(tok->lookup, 0xFF, size * sizeof(int));
    for (int id = 0; id < (int)n; id++) {
        const unsigned char *s = (const unsigned char *)tok->token_bytes + tok->token_offset[id];
        size_t slot = hash_bytes(s, (size_t)tok->token_length[id]) & tok->lookup_mask;
        while (tok->lookup[slot] >= 0)
            slot = (slot + 1) & tok->lookup_mask;
        tok->lookup[slot] = id;
    }
    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        tok->byte_token[b] = lookup_token(tok, &byte, 1);
        if (tok->byte_token[b] < 0) {
            int cp = 0;
            while (byte_of_codepoint[cp] != b)
                cp++;
            pl_fail("%s: no token for byte 0x%02X (key \"\\u%04X\"): every byte needs a token", path, b, cp);
            goto done;
        }
    }
    rc = PL_OK;
done:
    json_decref(root);
    return rc;
}

static int load_merges(pl_tokenizer *tok, const char *path, const int byte_of_codepoint[324])
{
    char *data = NULL;
    size_t size = 0;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size))
        return PL_ERR;
    size_t n_lines = 1;
    for (size_t i = 0; i < size; i++)
        n_lines += data[i] == '\n';
    size_t table = table_size_for(n_lines);
    tok->pair_mask = table - 1;
    tok->pairs = pl_malloc(table * sizeof(pair_slot), "merge table");
    unsigned char *scratch = pl_malloc(size + 1, "merge line");
    int rc = PL_ERR;
    if (!tok->pairs || !scratch)
        goto done;
    for (size_t i = 0; i < table; i++)
        tok->pairs[i].key = EMPTY_PAIR;

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
        if (n_parts != 2) {
            pl_fail("%s:%ld: expected two space-separated tokens, found %d", path, line_no, n_parts);
            goto done;
        }
        int ids[2];
        long lens[2];
        for (int k = 0; k < 2; k++) {
            uint32_t bad;
            unsigned char *bytes = scratch + (k ? lens[0] : 0);
            lens[k] = unmap_token(byte_of_codepoint, part[k], strlen(part[k]), bytes, &bad);
            if (lens[k] < 0) {
                char why[96];
                describe_codepoint(why, sizeof why, bad);
                pl_fail("%s:%ld: token \"%s\": %s", path, line_no, part[k], why);
                goto done;
            }
            ids[k] = lookup_token(tok, bytes, (size_t)lens[k]);
            if (ids[k] < 0) {
                pl_fail("%s:%ld: token \"%s\" is not in vocab.json", path, line_no, part[k]);
                goto done;
            }
        }
        int merged = lookup_token(tok, scratch, (size_t)(lens[0] + lens[1]));
        if (merged < 0) {
            pl_fail("%s:%ld: merged token \"%s%s\" is not in vocab.json", path, line_no, part[0], part[1]);
            goto done;
        }
        /* A repeated pair keeps its last rank, as a Python dict built from the lines would. */
        uint64_t key = (uint64_t)(uint32_t)ids[0] << 32 | (uint32_t)ids[1];
        pair_slot *slot = &tok->pairs[pair_slot_of(tok, key)];
        slot->key = key;
        slot->rank = tok->n_merges++;
        slot->merged = merged;
        line = next;
    }
    rc = PL_OK;
done:
    free(scratch);
    free(data);
    return rc;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = pl_malloc(n, "path");
    if (path)
        snprintf(path, n, "%s/%s", dir, name);
    return path;
}

int pl_tokenizer_load(pl_tokenizer **out, const char *dir)
{
    *out = NULL;
    pl_tokenizer *tok = pl_calloc(1, sizeof *tok, "tokenizer");
    if (!tok)
        return PL_ERR;
    int byte_of_codepoint[324];
    byte_alphabet(byte_of_codepoint);
    char *vocab_path = join_path(dir, "vocab.json");
    char *merges_path = join_path(dir, "merges.txt");
    int rc = PL_ERR;
    if (!vocab_path || !merges_path)
        goto done;
    if (load_vocab(tok, vocab_path, byte_of_codepoint) || load_merges(tok, merges_path, byte_of_codepoint))
        goto done;
    int err;
    PCRE2_SIZE err_offset;
    tok->pretokenizer = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err,
                                      &err_offset, NULL);
    if (!tok->pretokenizer) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        pl_fail("tokenizer: PCRE2 cannot compile GPT-2's pattern at offset %zu: %s", (size_t)err_offset,
                (char *)msg);
        goto done;
    }
    /* JIT is only a speed-up: without it (no JIT support, W^X policy) pcre2_match interprets. */
    pcre2_jit_compile(tok->pretokenizer, PCRE2_JIT_COMPLETE);
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

void pl_tokenizer_free(pl_tokenizer *tok)
{
    if (!tok)
        return;
    pcre2_code_free(tok->pretokenizer);
    free(tok->token_bytes);
    free(tok->token_offset);
    free(tok->token_length);
    free(tok->lookup);
    free(tok->pairs);
    free(tok);
}

int pl_tokenizer_vocab_size(const pl_tokenizer *tok) { return tok->vocab_size; }

const char *pl_token_bytes(const pl_tokenizer *tok, int id, size_t *len)
{
    if (id < 0 || id >= tok->vocab_size)
        return NULL;
    if (len)
        *len = (size_t)tok->token_length[id];
    return tok->token_bytes + tok->token_offset[id];
}

/* ---- BPE merge loop ---- */

/* A candidate merge of the symbol at `pos` with its right neighbour. It may go stale when either
 * symbol changes; left/right ids are kept to recognise that when the entry is popped. */
typedef struct {
    int rank, pos, left, right, merged;
} merge_candidate;

typedef struct {
    size_t cap;             /* symbols the buffers below can hold */
    int *id, *next, *prev;  /* (n) doubly linked symbols of the word; id -1 = absorbed */
    merge_candidate *heap;  /* min-heap on (rank, pos): ≤ n-1 initial + 2 per merge */
    merge_candidate *pending;
} bpe_scratch;

static int scratch_reserve(bpe_scratch *s, size_t n)
{
    if (n <= s->cap)
        return PL_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->heap);
    free(s->pending);
    s->id = pl_malloc(cap * sizeof(int), "BPE symbols");
    s->next = pl_malloc(cap * sizeof(int), "BPE symbols");
    s->prev = pl_malloc(cap * sizeof(int), "BPE symbols");
    s->heap = pl_malloc(3 * cap * sizeof(merge_candidate), "BPE heap");
    s->pending = pl_malloc(2 * cap * sizeof(merge_candidate), "BPE heap");
    s->cap = cap;
    if (!s->id || !s->next || !s->prev || !s->heap || !s->pending) {
        s->cap = 0;
        return PL_ERR;
    }
    return PL_OK;
}

static void scratch_free(bpe_scratch *s)
{
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->heap);
    free(s->pending);
}

static int candidate_before(const merge_candidate *a, const merge_candidate *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(merge_candidate *heap, size_t *n, merge_candidate c)
{
    size_t i = (*n)++;
    while (i > 0 && candidate_before(&c, &heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static merge_candidate heap_pop(merge_candidate *heap, size_t *n)
{
    merge_candidate top = heap[0], last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n)
            break;
        if (child + 1 < *n && candidate_before(&heap[child + 1], &heap[child]))
            child++;
        if (!candidate_before(&heap[child], &last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n)
        heap[i] = last;
    return top;
}

static int candidate_at(const pl_tokenizer *tok, const bpe_scratch *s, int pos, merge_candidate *c)
{
    int right = s->next[pos];
    const pair_slot *p = find_pair(tok, s->id[pos], s->id[right]);
    if (!p)
        return 0;
    *c = (merge_candidate){p->rank, pos, s->id[pos], s->id[right], p->merged};
    return 1;
}

/* BPE of one pre-token WORD (N ≥ 1 bytes); appends its ids to OUT.
 *
 * Same result as encoder.py's bpe(): repeatedly take the lowest-ranked adjacent pair and merge all
 * its occurrences left to right. Here each occurrence is a heap entry ordered by (rank, position), so
 * one rank's occurrences pop left to right; pairs that a merge creates wait in `pending` until that
 * rank's round is over, because encoder.py only looks at them after merging every occurrence.
 * O(n log n) instead of encoder.py's O(n^2), which matters for long runs without spaces. */
static size_t bpe_word(const pl_tokenizer *tok, bpe_scratch *s, const unsigned char *word, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        s->id[i] = tok->byte_token[word[i]];
        s->next[i] = i + 1 < n ? (int)i + 1 : -1;
        s->prev[i] = (int)i - 1;
    }
    size_t n_heap = 0, n_pending = 0;
    merge_candidate c;
    for (size_t i = 0; i + 1 < n; i++)
        if (candidate_at(tok, s, (int)i, &c))
            heap_push(s->heap, &n_heap, c);
    int round = -1;
    for (;;) {
        if (n_pending && (!n_heap || s->heap[0].rank != round)) {
            for (size_t i = 0; i < n_pending; i++)
                heap_push(s->heap, &n_heap, s->pending[i]);
            n_pending = 0;
        }
        if (!n_heap)
            break;
        c = heap_pop(s->heap, &n_heap);
        int right = s->next[c.pos];
        if (s->id[c.pos] != c.left || right < 0 || s->id[right] != c.right)
            continue; /* stale: one of the two symbols was merged since */
        round = c.rank;
        s->id[c.pos] = c.merged;
        s->id[right] = -1;
        s->next[c.pos] = s->next[right];
        if (s->next[right] >= 0)
            s->prev[s->next[right]] = c.pos;
        merge_candidate fresh;
        if (s->prev[c.pos] >= 0 && candidate_at(tok, s, s->prev[c.pos], &fresh))
            s->pending[n_pending++] = fresh;
        if (s->next[c.pos] >= 0 && candidate_at(tok, s, c.pos, &fresh))
            s->pending[n_pending++] = fresh;
    }
    size_t n_out = 0;
    for (int i = 0; i >= 0; i = s->next[i])
        out[n_out++] = s->id[i];
    return n_out;
}

/* ---- encode / decode ---- */

int pl_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    /* Every token covers at least one byte, so len ids always suffice. */
    int *out = pl_malloc(len * sizeof(int), "token ids");
    pcre2_match_data *match = pcre2_match_data_create(1, NULL);
    bpe_scratch scratch = {0};
    int rc = PL_ERR;
    if (!out || !match) {
        if (!match)
            pl_fail("out of memory (PCRE2 match data)");
        goto done;
    }
    size_t n_out = 0;
    uint32_t utf_check = 0; /* PCRE2 validates the whole subject on the first call only */
    for (size_t offset = 0; offset < len;) {
        int m = pcre2_match(tok->pretokenizer, (PCRE2_SPTR)text, len, offset, PCRE2_ANCHORED | utf_check, match,
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
        if (scratch_reserve(&scratch, n))
            goto done;
        n_out += bpe_word(tok, &scratch, (const unsigned char *)text + offset, n, out + n_out);
        offset += n;
    }
    *ids = out;
    *n_ids = n_out;
    out = NULL;
    rc = PL_OK;
done:
    scratch_free(&scratch);
    pcre2_match_data_free(match);
    free(out);
    return rc;
}

int pl_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return pl_fail("token id %d (position %zu) is not in the vocabulary (0..%d)", ids[i], i,
                           tok->vocab_size - 1);
        total += (size_t)tok->token_length[ids[i]];
    }
    char *text = pl_malloc(total + 1, "decoded text");
    if (!text)
        return PL_ERR;
    size_t used = 0;
    for (size_t i = 0; i < n_ids; i++) {
        memcpy(text + used, tok->token_bytes + tok->token_offset[ids[i]], (size_t)tok->token_length[ids[i]]);
        used += (size_t)tok->token_length[ids[i]];
    }
    text[used] = '\0';
    *out = text;
    *len = used;
    return PL_OK;
}
