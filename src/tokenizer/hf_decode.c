/* Decode with an HF tokenizer.json decoder chain, as HF tokenizers' decode(ids, skip_special_tokens
 * =False): every id's string (added tokens' content, else the model's) goes through the decoders,
 * each of which maps the list of strings to a new list; the result is their concatenation.
 * Modes: DECODE_FULL is HF's (invalid UTF-8 becomes U+FFFD as Rust's from_utf8_lossy / ByteFallback
 * do); DECODE_RAW keeps raw bytes (streaming); DECODE_TOKEN is one token as it reads mid-text
 * (sequence-level steps Fuse and Strip skipped, Metaspace's first-token rule off). */
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "hf_internal.h"

typedef struct {
    tok_buf *item;
    size_t n, cap;
} strlist;

static void list_free(strlist *l)
{
    for (size_t i = 0; i < l->cap; i++)
        free(l->item[i].data);
    free(l->item);
    memset(l, 0, sizeof *l);
}

static int list_reserve(strlist *l, size_t n)
{
    if (n <= l->cap)
        return PL_OK;
    tok_buf *bigger = realloc(l->item, n * sizeof(tok_buf));
    if (!bigger)
        return pl_fail("out of memory (decoder)");
    memset(bigger + l->cap, 0, (n - l->cap) * sizeof(tok_buf));
    l->item = bigger;
    l->cap = n;
    return PL_OK;
}

/* Append S to item I (creating it empty first when I == l->n). */
static int list_add(strlist *l, size_t i, const char *s, size_t n)
{
    if (i >= l->n) {
        if (i >= l->cap && list_reserve(l, i + 1 > 2 * l->cap ? i + 1 : (l->cap ? 2 * l->cap : 8)))
            return PL_ERR;
        l->item[i].len = 0;
        l->n = i + 1;
    }
    return tok_buf_add(&l->item[i], s, n);
}

static int join(const strlist *in, strlist *out, const char *sep, size_t sep_len)
{
    out->n = 0;
    if (list_add(out, 0, "", 0))
        return PL_ERR;
    for (size_t i = 0; i < in->n; i++)
        if ((i && list_add(out, 0, sep, sep_len)) || list_add(out, 0, in->item[i].data, in->item[i].len))
            return PL_ERR;
    return PL_OK;
}

/* "<0xXX>" as Rust reads it (u8::from_str_radix of the two chars: hex digits, or '+' and one digit). */
static int fallback_byte(const tok_buf *t)
{
    const char *s = t->data;
    if (t->len != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (k == 3 && c == '+')
            continue;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ByteLevel: map each token's chars back through GPT-2's byte alphabet. */
static int decode_bytelevel(int mode, const strlist *in, strlist *out)
{
    static uint32_t cp_of_byte[256];
    static int byte_of_cp[324];
    static int ready;
    if (!ready) {
        tok_byte_alphabet(cp_of_byte, byte_of_cp);
        ready = 1;
    }
    tok_buf bytes = {0};
    int rc = tok_buf_add(&bytes, "", 0);
    for (size_t i = 0; i < in->n && rc == PL_OK; i++) {
        const tok_buf *t = &in->item[i];
        size_t start = bytes.len;
        int in_alphabet = 1;
        for (size_t k = 0; k < t->len && rc == PL_OK;) {
            uint32_t cp;
            int n = tok_utf8_next((const unsigned char *)t->data + k, t->len - k, &cp);
            if (n <= 0 || cp >= 324 || byte_of_cp[cp] < 0) {
                in_alphabet = 0;
                break;
            }
            char b = (char)byte_of_cp[cp];
            rc = tok_buf_add(&bytes, &b, 1);
            k += (size_t)n;
        }
        if (!in_alphabet) { /* Rust: a token with a char outside the alphabet is its own bytes */
            bytes.len = start;
            rc = rc ? rc : tok_buf_add(&bytes, t->data, t->len);
        }
    }
    if (rc == PL_OK && mode == DECODE_FULL) {
        char *lossy;
        size_t n;
        rc = tok_utf8_lossy(bytes.data, bytes.len, &lossy, &n);
        if (rc == PL_OK)
            rc = list_add(out, 0, lossy, n);
        free(lossy);
    } else if (rc == PL_OK) {
        rc = list_add(out, 0, bytes.data, bytes.len);
    }
    free(bytes.data);
    return rc;
}

/* Replace: the pattern literal becomes the content, in each token. */
static int decode_replace(const hf_decoder *d, const strlist *in, strlist *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const tok_buf *t = &in->item[i];
        if (list_add(out, i, "", 0))
            return PL_ERR;
        size_t k = 0, plen = d->pattern.literal_len;
        while (k < t->len) {
            if (plen && plen <= t->len - k && !memcmp(t->data + k, d->pattern.literal, plen)) {
                if (list_add(out, i, d->content, d->content_len))
                    return PL_ERR;
                k += plen;
            } else {
                if (list_add(out, i, t->data + k, 1))
                    return PL_ERR;
                k++;
            }
        }
    }
    return PL_OK;
}

/* ByteFallback: runs of <0xNN> tokens become their bytes. */
static int decode_bytefallback(int mode, const strlist *in, strlist *out)
{
    size_t o = 0;
    for (size_t i = 0; i < in->n;) {
        if (fallback_byte(&in->item[i]) < 0) {
            if (list_add(out, o++, in->item[i].data, in->item[i].len))
                return PL_ERR;
            i++;
            continue;
        }
        size_t j = i;
        tok_buf run = {0};
        int rc = tok_buf_add(&run, "", 0);
        for (; j < in->n && rc == PL_OK && fallback_byte(&in->item[j]) >= 0; j++) {
            char b = (char)fallback_byte(&in->item[j]);
            rc = tok_buf_add(&run, &b, 1);
        }
        if (rc == PL_OK) {
            if (mode != DECODE_FULL || tok_utf8_invalid_at(run.data, run.len) < 0)
                rc = list_add(out, o++, run.data, run.len);
            else /* Rust: one U+FFFD per byte when the run is not valid UTF-8 */
                for (size_t k = 0; k < run.len && rc == PL_OK; k++)
                    rc = list_add(out, o++, "\xEF\xBF\xBD", 3);
        }
        free(run.data);
        if (rc)
            return PL_ERR;
        i = j;
    }
    return PL_OK;
}

/* Strip: up to `start` strip chars cut from the front of each token, `stop` from the back. */
static int decode_strip(const hf_decoder *d, const strlist *in, strlist *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const tok_buf *t = &in->item[i];
        /* the chars of the token, cut `start` matching chars from the front, `stop` from the back */
        size_t cut_start = 0, cut_stop = t->len;
        for (int k = 0; k < d->start && cut_start < t->len; k++) {
            uint32_t cp;
            int n = tok_utf8_next((const unsigned char *)t->data + cut_start, t->len - cut_start, &cp);
            if (n <= 0 || cp != d->strip_char)
                break;
            cut_start += (size_t)n;
        }
        for (int k = 0; k < d->stop && cut_stop > cut_start; k++) {
            size_t p = cut_stop - 1;
            while (p > cut_start && ((unsigned char)t->data[p] & 0xC0) == 0x80)
                p--;
            uint32_t cp;
            int n = tok_utf8_next((const unsigned char *)t->data + p, cut_stop - p, &cp);
            if (n <= 0 || (size_t)n != cut_stop - p || cp != d->strip_char)
                break;
            cut_stop = p;
        }
        if (list_add(out, i, t->data + cut_start, cut_stop - cut_start))
            return PL_ERR;
    }
    return PL_OK;
}

/* Metaspace: the replacement char becomes a space. */
static int decode_metaspace(const hf_decoder *d, int mode, const strlist *in, strlist *out)
{
    char rep[4];
    size_t rep_len = (size_t)tok_utf8_put(d->replacement, rep);
    for (size_t i = 0; i < in->n; i++) {
        const tok_buf *t = &in->item[i];
        /* Rust drops every replacement char of the first token unless prepend_scheme is never */
        int drop = i == 0 && !d->prepend_never && mode != DECODE_TOKEN;
        if (list_add(out, i, "", 0))
            return PL_ERR;
        for (size_t k = 0; k < t->len;) {
            if (rep_len <= t->len - k && !memcmp(t->data + k, rep, rep_len)) {
                if (!drop && list_add(out, i, " ", 1))
                    return PL_ERR;
                k += rep_len;
            } else {
                if (list_add(out, i, t->data + k, 1))
                    return PL_ERR;
                k++;
            }
        }
    }
    return PL_OK;
}

static int step(const hf_tok *h, const hf_decoder *d, int mode, const strlist *in, strlist *out)
{
    (void)h;
    out->n = 0;
    switch (d->kind) {
    case DEC_BYTELEVEL:
        return decode_bytelevel(mode, in, out);
    case DEC_REPLACE:
        return decode_replace(d, in, out);
    case DEC_BYTEFALLBACK:
        return decode_bytefallback(mode, in, out);
    case DEC_FUSE:
        if (mode == DECODE_TOKEN)
            break;
        return join(in, out, "", 0);
    case DEC_STRIP:
        if (mode == DECODE_TOKEN)
            break;
        return decode_strip(d, in, out);
    case DEC_METASPACE:
        return decode_metaspace(d, mode, in, out);
    }
    /* a step skipped in DECODE_TOKEN: copy */
    for (size_t i = 0; i < in->n; i++)
        if (list_add(out, i, in->item[i].data, in->item[i].len))
            return PL_ERR;
    return PL_OK;
}

int hf_decode_chain(const pl_tokenizer *tok, const int *ids, size_t n_ids, int mode, char **out, size_t *len)
{
    const hf_tok *h = tok->impl;
    *out = NULL;
    *len = 0;
    strlist a = {0}, b = {0}, *cur = &a, *next = &b;
    int rc = PL_ERR;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n;
        const char *s = tok_strings_get(&h->text, ids[i], &n);
        if (!s) {
            pl_fail("token id %d (position %zu) is not in the vocabulary (0..%d)", ids[i], i, tok->vocab_size - 1);
            goto done;
        }
        if (list_add(cur, i, s, n))
            goto done;
    }
    if (!h->has_decoder) {
        /* Rust without a decoder: the tokens joined by spaces */
        if (mode != DECODE_TOKEN) {
            if (join(cur, next, " ", 1))
                goto done;
            strlist *t = cur;
            cur = next;
            next = t;
        }
    }
    for (int k = 0; k < h->n_decs; k++) {
        if (step(h, &h->decs[k], mode, cur, next))
            goto done;
        strlist *t = cur;
        cur = next;
        next = t;
    }
    if (join(cur, next, "", 0))
        goto done;
    *out = next->item[0].data;
    *len = next->item[0].len;
    next->item[0].data = NULL;
    next->item[0].cap = 0;
    rc = PL_OK;
done:
    list_free(&a);
    list_free(&b);
    return rc;
}

int hf_decode(const pl_tokenizer *tok, const int *ids, size_t n_ids, char **out, size_t *len)
{
    return hf_decode_chain(tok, ids, n_ids, DECODE_FULL, out, len);
}

int hf_decode_next(const pl_tokenizer *tok, int prev, int next, char **out, size_t *len)
{
    const hf_tok *h = tok->impl;
    if (prev < 0 || h->is_special[prev])
        return hf_decode_chain(tok, &next, 1, DECODE_RAW, out, len);
    int pair[2] = {prev, next};
    char *both = NULL, *first = NULL;
    size_t both_len, first_len;
    if (hf_decode_chain(tok, pair, 2, DECODE_RAW, &both, &both_len) ||
        hf_decode_chain(tok, pair, 1, DECODE_RAW, &first, &first_len)) {
        free(both);
        free(first);
        return PL_ERR;
    }
    int rc = PL_OK;
    if (first_len <= both_len && !memcmp(both, first, first_len)) {
        memmove(both, both + first_len, both_len - first_len + 1);
        *out = both;
        *len = both_len - first_len;
    } else {
        free(both);
        rc = hf_decode_chain(tok, &next, 1, DECODE_TOKEN, out, len);
    }
    free(first);
    return rc;
}
