/* Encode with an HF tokenizer.json BPE pipeline, step for step as HF tokenizers (Rust) does:
 *   1. AddedVocabulary::extract_and_normalize: added tokens with normalized=false are split out of
 *      the raw text (leftmost-longest; single_word, lstrip, rstrip), the rest is normalized, then the
 *      normalized=true tokens (matched as their normalized content) are split out of that;
 *   2. the pre-tokenizer steps, each applied to every piece;
 *   3. the BPE model on every piece (char symbols, byte_fallback, unk/fuse_unk, ignore_merges,
 *      Word::merge_all's merge order).
 * Pieces remember whether they start at offset 0 of the original text, which Metaspace's
 * prepend_scheme "first" asks. */
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>

#include "plateau/error.h"
#include "hf_internal.h"

/* ---- growable lists ---- */

typedef struct {
    tok_buf text;
    size_t *start, *len;
    unsigned char *origin;
    size_t n, cap;
} pieces;

static int pieces_push(pieces *p, const char *s, size_t n, int origin)
{
    if (n == 0)
        return PL_OK; /* Rust drops empty splits */
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        size_t *start = realloc(p->start, cap * sizeof(size_t));
        if (start)
            p->start = start;
        size_t *len = realloc(p->len, cap * sizeof(size_t));
        if (len)
            p->len = len;
        unsigned char *origin_ = realloc(p->origin, cap);
        if (origin_)
            p->origin = origin_;
        if (!start || !len || !origin_)
            return pl_fail("out of memory (pre-tokens)");
        p->cap = cap;
    }
    p->start[p->n] = p->text.len;
    p->len[p->n] = n;
    p->origin[p->n] = (unsigned char)origin;
    p->n++;
    return tok_buf_add(&p->text, s, n);
}

static void pieces_free(pieces *p)
{
    free(p->text.data);
    free(p->start);
    free(p->len);
    free(p->origin);
}

typedef struct {
    int *ids;
    size_t n, cap;
} id_list;

static int ids_push(id_list *l, int id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        int *bigger = realloc(l->ids, cap * sizeof(int));
        if (!bigger)
            return pl_fail("out of memory (token ids)");
        l->ids = bigger;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return PL_OK;
}

/* ---- spans and split behaviours ---- */

typedef struct {
    hf_span *s;
    size_t n, cap;
} spans;

static int spans_push(spans *l, size_t start, size_t end, int is_match)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        hf_span *bigger = realloc(l->s, cap * sizeof(hf_span));
        if (!bigger)
            return pl_fail("out of memory (pre-tokens)");
        l->s = bigger;
        l->cap = cap;
    }
    l->s[l->n++] = (hf_span){start, end, is_match};
    return PL_OK;
}

/* Rust's Pattern for a char predicate: every matching char is its own match. */
enum { CHAR_IS, CHAR_NUMERIC };
static int char_matches(const char *text, size_t n, int kind, uint32_t which, spans *out)
{
    out->n = 0;
    if (n == 0)
        return spans_push(out, 0, 0, 0);
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        int step = tok_utf8_next((const unsigned char *)text + i, n - i, &cp);
        if (step <= 0)
            step = 1;
        int8_t type = kind == CHAR_NUMERIC ? u_charType((UChar32)cp) : 0;
        int hit = kind == CHAR_IS ? cp == which
                                  : (type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER);
        if (hit) {
            if (last < i && spans_push(out, last, i, 0))
                return PL_ERR;
            if (spans_push(out, i, i + (size_t)step, 1))
                return PL_ERR;
            last = i + (size_t)step;
        }
        i += (size_t)step;
    }
    if (last < n)
        return spans_push(out, last, n, 0);
    return PL_OK;
}

/* NormalizedString::split's behaviours, in place on IN (which becomes the kept ranges, is_match 0). */
static void apply_behavior(spans *in, int behavior)
{
    size_t k = 0;
    int prev = 0;
    switch (behavior) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < in->n; i++)
            in->s[i].is_match = 0;
        return;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < in->n; i++)
            if (!in->s[i].is_match)
                in->s[k++] = in->s[i];
        in->n = k;
        return;
    case SPLIT_CONTIGUOUS:
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < in->n; i++) {
            hf_span c = in->s[i];
            int merge = behavior == SPLIT_CONTIGUOUS ? c.is_match == prev : (c.is_match && !prev);
            if (merge && k > 0)
                in->s[k - 1].end = c.end;
            else
                in->s[k++] = (hf_span){c.start, c.end, 0};
            prev = c.is_match;
        }
        in->n = k;
        return;
    case SPLIT_MERGED_NEXT: {
        /* fold from the right: a match joins the piece after it */
        size_t w = in->n;
        for (size_t i = in->n; i-- > 0;) {
            hf_span c = in->s[i];
            if (c.is_match && !prev && w < in->n)
                in->s[w].start = c.start;
            else
                in->s[--w] = (hf_span){c.start, c.end, 0};
            prev = c.is_match;
        }
        memmove(in->s, in->s + w, (in->n - w) * sizeof(hf_span));
        in->n -= w;
        return;
    }
    }
}

/* ---- normalizers ---- */

static int replace_all(const hf_pattern *p, const char *s, size_t n, const char *with, size_t with_len, tok_buf *out,
                       int *deleted_at_start)
{
    hf_span *m;
    size_t count;
    if (hf_find_matches(p->regex, s, n, &m, &count))
        return PL_ERR;
    out->len = 0;
    int rc = tok_buf_add(out, "", 0);
    for (size_t i = 0; i < count && rc == PL_OK; i++) {
        if (!m[i].is_match)
            rc = tok_buf_add(out, s + m[i].start, m[i].end - m[i].start);
        else {
            rc = tok_buf_add(out, with, with_len);
            if (m[i].start == 0 && m[i].end > 0 && with_len == 0 && deleted_at_start)
                *deleted_at_start = 1;
        }
    }
    free(m);
    return rc;
}

int hf_normalize(const hf_tok *h, const char *s, size_t n, char **out, size_t *out_len, int *at_origin)
{
    tok_buf cur = {0}, next = {0};
    if (tok_buf_add(&cur, s, n))
        return PL_ERR;
    for (int i = 0; i < h->n_norms; i++) {
        const hf_normalizer *z = &h->norms[i];
        int rc = PL_OK;
        if (z->kind == NORM_UNICODE) {
            char *norm;
            size_t norm_len;
            rc = tok_unicode_normalize(z->form, cur.data, cur.len, &norm, &norm_len);
            if (rc == PL_OK) {
                free(cur.data);
                cur = (tok_buf){norm, norm_len, norm_len + 1};
            }
        } else if (z->kind == NORM_PREPEND) {
            if (cur.len > 0) { /* Rust prepends to non-empty strings only */
                next.len = 0;
                rc = tok_buf_add(&next, z->text, z->text_len) || tok_buf_add(&next, cur.data, cur.len) ? PL_ERR : PL_OK;
                tok_buf t = cur;
                cur = next;
                next = t;
            }
        } else {
            int deleted = 0;
            rc = replace_all(&z->pattern, cur.data, cur.len, z->text, z->text_len, &next, &deleted);
            if (deleted)
                *at_origin = 0;
            tok_buf t = cur;
            cur = next;
            next = t;
        }
        if (rc) {
            free(cur.data);
            free(next.data);
            return PL_ERR;
        }
    }
    free(next.data);
    *out = cur.data;
    *out_len = cur.len;
    return PL_OK;
}

/* ---- added tokens ---- */

typedef struct {
    size_t start, end;
    int id; /* -1: text */
} segment;

typedef struct {
    segment *s;
    size_t n, cap;
} segments;

static int segments_push(segments *l, size_t start, size_t end, int id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        segment *bigger = realloc(l->s, cap * sizeof(segment));
        if (!bigger)
            return pl_fail("out of memory (added-token split)");
        l->s = bigger;
        l->cap = cap;
    }
    l->s[l->n++] = (segment){start, end, id};
    return PL_OK;
}

/* The code point ending at byte AT (> 0) of S. */
static uint32_t char_before(const char *s, size_t at)
{
    size_t i = at - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp = 0;
    tok_utf8_next((const unsigned char *)s + i, at - i, &cp);
    return cp;
}

/* AddedVocabulary::find_matches over S[0..n) with the tokens of M. */
static int find_added(const hf_tok *h, const hf_matcher *m, const char *s, size_t n, segments *out)
{
    out->n = 0;
    size_t start_offset = 0, search = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (search < n) {
        /* leftmost-longest: the first position where a token starts, the longest token there */
        int found = -1;
        size_t at = search;
        for (; at < n && found < 0; at++) {
            int b = u[at];
            for (int k = m->first[b]; k < m->first[b + 1]; k++) {
                const hf_added *a = &h->added[m->order[k]];
                if (a->len <= n - at && !memcmp(s + at, a->content, a->len)) {
                    found = m->order[k];
                    break;
                }
            }
        }
        if (found < 0)
            break;
        at--;
        const hf_added *a = &h->added[found];
        size_t start = at, stop = at + a->len;
        search = stop;
        if (a->single_word) {
            uint32_t cp;
            int start_space = start == 0 || !tok_is_word_char(char_before(s, start));
            int stop_space = stop == n || (tok_utf8_next(u + stop, n - stop, &cp), !tok_is_word_char(cp));
            if (!start_space || !stop_space)
                continue;
        }
        if (a->lstrip) {
            size_t newstart = start;
            while (newstart > 0) {
                size_t p = newstart - 1;
                while (p > 0 && (u[p] & 0xC0) == 0x80)
                    p--;
                uint32_t cp = 0;
                tok_utf8_next(u + p, newstart - p, &cp);
                if (!tok_is_white_space(cp))
                    break;
                newstart = p;
            }
            start = newstart > start_offset ? newstart : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp = 0;
                int step = tok_utf8_next(u + stop, n - stop, &cp);
                if (step <= 0 || !tok_is_white_space(cp))
                    break;
                stop += (size_t)step;
            }
        }
        if (start < start_offset)
            start = start_offset;
        if (start_offset < start && segments_push(out, start_offset, start, -1))
            return PL_ERR;
        if (segments_push(out, start, stop, a->id))
            return PL_ERR;
        start_offset = stop;
        if (search < stop)
            search = stop;
    }
    if (start_offset < n)
        return segments_push(out, start_offset, n, -1);
    return PL_OK;
}

/* ---- pre-tokenizers ---- */

static int byte_level_map(const char *s, size_t n, tok_buf *out)
{
    static uint32_t cp_of_byte[256];
    static int byte_of_cp[324];
    static int ready;
    if (!ready) {
        tok_byte_alphabet(cp_of_byte, byte_of_cp);
        ready = 1;
    }
    out->len = 0;
    if (tok_buf_add(out, "", 0))
        return PL_ERR;
    for (size_t i = 0; i < n; i++) {
        char utf8[4];
        int k = tok_utf8_put(cp_of_byte[(unsigned char)s[i]], utf8);
        if (tok_buf_add(out, utf8, (size_t)k))
            return PL_ERR;
    }
    return PL_OK;
}

/* The ByteLevel pre-tokenizer on one piece S[N] (ORIGIN: it starts the text): split by GPT-2's
 * regex when use_regex, each part mapped to the byte alphabet, into OUT. TMP, SP and MAPPED are the
 * caller's scratch. */
static int pretok_bytelevel(const hf_tok *h, const hf_pretok *p, const char *s, size_t n, int origin, tok_buf *tmp,
                            spans *sp, tok_buf *mapped, pieces *out)
{
    if (p->add_prefix_space && s[0] != ' ' && tok_buf_add(tmp, " ", 1))
        return PL_ERR;
    if (tok_buf_add(tmp, s, n))
        return PL_ERR;
    if (p->use_regex) {
        hf_span *m;
        size_t count;
        if (hf_find_matches(h->bytelevel_regex, tmp->data, tmp->len, &m, &count))
            return PL_ERR;
        free(sp->s);
        *sp = (spans){m, count, count};
    } else {
        sp->n = 0;
        if (spans_push(sp, 0, tmp->len, 0))
            return PL_ERR;
    }
    for (size_t k = 0; k < sp->n; k++) {
        if (sp->s[k].end == sp->s[k].start)
            continue;
        if (byte_level_map(tmp->data + sp->s[k].start, sp->s[k].end - sp->s[k].start, mapped) ||
            pieces_push(out, mapped->data, mapped->len, origin && sp->s[k].start == 0))
            return PL_ERR;
    }
    return PL_OK;
}

/* One pre-tokenizer step from IN to OUT. */
static int pretok_step(const hf_tok *h, const hf_pretok *p, const pieces *in, pieces *out)
{
    spans sp = {0};
    tok_buf tmp = {0}, mapped = {0};
    int rc = PL_ERR;
    out->n = 0;
    out->text.len = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->text.data + in->start[i];
        size_t n = in->len[i];
        int origin = in->origin[i];
        tmp.len = 0;
        if (p->kind == PRE_BYTELEVEL) {
            if (pretok_bytelevel(h, p, s, n, origin, &tmp, &sp, &mapped, out) != PL_OK)
                goto done;
            continue;
        }
        if (p->kind == PRE_METASPACE) {
            char rep[4];
            int rep_len = tok_utf8_put(p->replacement, rep);
            int starts = n >= (size_t)rep_len && !memcmp(s, rep, (size_t)rep_len);
            if (!starts && s[0] == ' ')
                starts = 1; /* the space is about to become the replacement */
            if (!starts && (p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && origin)) &&
                tok_buf_add(&tmp, rep, (size_t)rep_len))
                goto done;
            for (size_t k = 0; k < n; k++)
                if (s[k] == ' ' ? tok_buf_add(&tmp, rep, (size_t)rep_len) : tok_buf_add(&tmp, s + k, 1))
                    goto done;
            if (!p->split) {
                if (pieces_push(out, tmp.data, tmp.len, origin))
                    goto done;
                continue;
            }
            if (char_matches(tmp.data, tmp.len, CHAR_IS, p->replacement, &sp))
                goto done;
            apply_behavior(&sp, SPLIT_MERGED_NEXT);
        } else {
            if (tok_buf_add(&tmp, s, n))
                goto done;
            if (p->kind == PRE_DIGITS) {
                if (char_matches(tmp.data, tmp.len, CHAR_NUMERIC, 0, &sp))
                    goto done;
            } else {
                hf_span *m;
                size_t count;
                if (hf_find_matches(p->pattern.regex, tmp.data, tmp.len, &m, &count))
                    goto done;
                free(sp.s);
                sp = (spans){m, count, count};
                if (p->invert)
                    for (size_t k = 0; k < sp.n; k++)
                        sp.s[k].is_match = !sp.s[k].is_match;
            }
            apply_behavior(&sp, p->behavior);
        }
        for (size_t k = 0; k < sp.n; k++)
            if (pieces_push(out, tmp.data + sp.s[k].start, sp.s[k].end - sp.s[k].start, origin && sp.s[k].start == 0))
                goto done;
    }
    rc = PL_OK;
done:
    free(sp.s);
    free(tmp.data);
    free(mapped.data);
    return rc;
}

/* ---- the BPE model ---- */

static int model_word(const hf_tok *h, const char *w, size_t n, tok_bpe_scratch *scratch, id_list *out)
{
    if (h->ignore_merges) {
        int id = tok_strings_find(&h->vocab, w, n);
        if (id >= 0)
            return ids_push(out, id);
    }
    size_t first = out->n;
    int unk = -1; /* a pending <unk>, added once a known char follows (fuse_unk folds a run into one) */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int step = tok_utf8_next((const unsigned char *)w + i, n - i, &cp);
        if (step <= 0)
            step = 1;
        int id = tok_strings_find(&h->vocab, w + i, (size_t)step);
        if (id >= 0) {
            if (unk >= 0 && ids_push(out, unk))
                return PL_ERR;
            unk = -1;
            if (ids_push(out, id))
                return PL_ERR;
        } else {
            int all = h->byte_fallback;
            for (int k = 0; k < step && all; k++)
                all = h->byte_fallback_id[(unsigned char)w[i + (size_t)k]] >= 0;
            if (all) {
                /* as Rust: the byte tokens go in before a pending <unk> */
                for (int k = 0; k < step; k++)
                    if (ids_push(out, h->byte_fallback_id[(unsigned char)w[i + (size_t)k]]))
                        return PL_ERR;
            } else if (h->unk_id >= 0) {
                if (unk >= 0 && !h->fuse_unk && ids_push(out, unk))
                    return PL_ERR;
                unk = h->unk_id;
            }
            /* no unk_token: Rust drops the char */
        }
        i += (size_t)step;
    }
    if (unk >= 0 && ids_push(out, unk))
        return PL_ERR;
    size_t count = out->n - first;
    if (count < 2)
        return PL_OK;
    if (tok_bpe_reserve(scratch, count))
        return PL_ERR;
    out->n = first + tok_bpe_merge(scratch, out->ids + first, count, tok_pairs_lookup, &h->pairs, TOK_BPE_IMMEDIATE);
    return PL_OK;
}

/* Pre-tokenize and model one piece of normalized text. */
static int encode_piece(const hf_tok *h, const char *s, size_t n, int origin, pieces bufs[2],
                        tok_bpe_scratch *scratch, id_list *out)
{
    pieces *cur = &bufs[0], *next = &bufs[1];
    cur->n = 0;
    cur->text.len = 0;
    if (pieces_push(cur, s, n, origin))
        return PL_ERR;
    for (int i = 0; i < h->n_pretoks; i++) {
        if (pretok_step(h, &h->pretoks[i], cur, next))
            return PL_ERR;
        pieces *t = cur;
        cur = next;
        next = t;
    }
    for (size_t i = 0; i < cur->n; i++)
        if (model_word(h, cur->text.data + cur->start[i], cur->len[i], scratch, out))
            return PL_ERR;
    return PL_OK;
}

int hf_encode(const pl_tokenizer *tok, const char *text, size_t len, int **ids, size_t *n_ids)
{
    const hf_tok *h = tok->impl;
    *ids = NULL;
    *n_ids = 0;
    long bad = tok_utf8_invalid_at(text, len);
    if (bad >= 0)
        return tok_fail_invalid_utf8(text, len, bad);
    id_list out = {0};
    segments raw = {0}, sub = {0};
    pieces bufs[2];
    memset(bufs, 0, sizeof bufs);
    tok_bpe_scratch scratch = {0};
    char *norm = NULL;
    int rc = PL_ERR;
    if (find_added(h, &h->raw_matcher, text, len, &raw))
        goto done;
    for (size_t r = 0; r < raw.n; r++) {
        segment seg = raw.s[r];
        if (seg.id >= 0) {
            if (ids_push(&out, seg.id))
                goto done;
            continue;
        }
        if (seg.end == seg.start)
            continue;
        int origin = seg.start == 0;
        size_t norm_len;
        free(norm);
        norm = NULL;
        if (hf_normalize(h, text + seg.start, seg.end - seg.start, &norm, &norm_len, &origin))
            goto done;
        if (find_added(h, &h->normalized_matcher, norm, norm_len, &sub))
            goto done;
        for (size_t k = 0; k < sub.n; k++) {
            if (sub.s[k].id >= 0) {
                if (ids_push(&out, sub.s[k].id))
                    goto done;
            } else if (sub.s[k].end > sub.s[k].start &&
                       encode_piece(h, norm + sub.s[k].start, sub.s[k].end - sub.s[k].start,
                                    origin && sub.s[k].start == 0, bufs, &scratch, &out))
                goto done;
        }
    }
    if (!out.ids && ids_push(&out, 0) == PL_OK)
        out.n = 0;
    if (!out.ids)
        goto done;
    *ids = out.ids;
    *n_ids = out.n;
    out.ids = NULL;
    rc = PL_OK;
done:
    free(out.ids);
    free(raw.s);
    free(sub.s);
    free(norm);
    pieces_free(&bufs[0]);
    pieces_free(&bufs[1]);
    tok_bpe_free(&scratch);
    return rc;
}
