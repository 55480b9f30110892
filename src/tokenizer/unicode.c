/* UTF-8 helpers and the Unicode facts the tokenizers need. Normalisation forms and character
 * properties come from ICU (libicu): no hand-written Unicode tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "plateau/error.h"
#include "tok_internal.h"

int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
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

long tok_utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int step = tok_utf8_next(u + i, n - i, &cp);
        if (!step)
            return (long)i;
        i += (size_t)step;
    }
    return -1;
}

int tok_fail_invalid_utf8(const char *s, size_t n, long at)
{
    const unsigned char *u = (const unsigned char *)s + at;
    size_t left = n - (size_t)at;
    const char *why = (u[0] >= 0x80 && u[0] < 0xC0)   ? "stray continuation byte"
                      : (u[0] == 0xC0 || u[0] == 0xC1) ? "overlong encoding"
                      : u[0] >= 0xF5                   ? "byte that never occurs in UTF-8"
                                                       : "truncated, overlong or surrogate sequence";
    (void)left;
    return pl_fail("invalid UTF-8 at byte offset %ld (%s 0x%02X)", at, why, u[0]);
}

int tok_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the maximal subpart of an ill-formed sequence at S (Unicode 15, section 3.9, "U+FFFD
 * substitution of maximal subparts", which Rust's from_utf8_lossy and WHATWG's decoder follow):
 * the longest prefix that could still begin a well-formed sequence, at least one byte. */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
    unsigned b = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0)
            lo = 0xA0;
        if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < len && i < n && s[i] >= 0x80 && s[i] <= 0xBF)
            i++;
    }
    return i;
}

int tok_utf8_lossy(const char *s, size_t n, char **out, size_t *out_len)
{
    tok_buf b = {0};
    const unsigned char *u = (const unsigned char *)s;
    if (tok_buf_add(&b, "", 0))
        return PL_ERR;
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        int step = u[i] < 0x80 ? 1 : tok_utf8_next(u + i, n - i, &cp);
        if (step) {
            i += (size_t)step;
            continue;
        }
        if (tok_buf_add(&b, s + run, i - run) || tok_buf_add(&b, "\xEF\xBF\xBD", 3)) {
            free(b.data);
            return PL_ERR;
        }
        i += maximal_subpart(u + i, n - i);
        run = i;
    }
    if (tok_buf_add(&b, s + run, n - run)) {
        free(b.data);
        return PL_ERR;
    }
    *out = b.data;
    *out_len = b.len;
    return PL_OK;
}

int tok_unicode_normalize(const char *form, const char *s, size_t n, char **out, size_t *out_len)
{
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *norm = !strcmp(form, "NFC")    ? unorm2_getNFCInstance(&err)
                               : !strcmp(form, "NFD")  ? unorm2_getNFDInstance(&err)
                               : !strcmp(form, "NFKC") ? unorm2_getNFKCInstance(&err)
                                                       : unorm2_getNFKDInstance(&err);
    if (U_FAILURE(err))
        return pl_fail("ICU: no %s normalizer: %s", form, u_errorName(err));
    if (n > INT32_MAX / 4)
        return pl_fail("text of %zu bytes is too long to normalise", n);
    int32_t n16 = 0;
    u_strFromUTF8(NULL, 0, &n16, s, (int32_t)n, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR)
        err = U_ZERO_ERROR;
    UChar *in = pl_malloc(((size_t)n16 + 1) * sizeof(UChar), "text for normalisation");
    /* NFKC can grow a code unit up to 18 times (U+FDFA); ask ICU for the size it needs. */
    UChar *norm16 = NULL;
    char *utf8 = NULL;
    int rc = PL_ERR;
    if (!in)
        goto done;
    u_strFromUTF8(in, n16 + 1, NULL, s, (int32_t)n, &err);
    int32_t want = unorm2_normalize(norm, in, n16, NULL, 0, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR)
        err = U_ZERO_ERROR;
    norm16 = pl_malloc(((size_t)want + 1) * sizeof(UChar), "normalised text");
    if (!norm16 || U_FAILURE(err))
        goto fail;
    unorm2_normalize(norm, in, n16, norm16, want + 1, &err);
    int32_t n8 = 0;
    u_strToUTF8(NULL, 0, &n8, norm16, want, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR)
        err = U_ZERO_ERROR;
    utf8 = pl_malloc((size_t)n8 + 1, "normalised text");
    if (!utf8 || U_FAILURE(err))
        goto fail;
    u_strToUTF8(utf8, n8 + 1, NULL, norm16, want, &err);
    if (U_FAILURE(err))
        goto fail;
    utf8[n8] = '\0';
    *out = utf8;
    *out_len = (size_t)n8;
    utf8 = NULL;
    rc = PL_OK;
    goto done;
fail:
    if (U_FAILURE(err))
        pl_fail("ICU %s normalisation failed: %s", form, u_errorName(err));
done:
    free(in);
    free(norm16);
    free(utf8);
    return rc;
}

int tok_is_white_space(uint32_t cp) { return u_hasBinaryProperty((UChar32)cp, UCHAR_WHITE_SPACE); }

int tok_is_word_char(uint32_t cp)
{
    int8_t type = u_charType((UChar32)cp);
    return u_hasBinaryProperty((UChar32)cp, UCHAR_ALPHABETIC) || type == U_NON_SPACING_MARK ||
           type == U_ENCLOSING_MARK || type == U_COMBINING_SPACING_MARK || type == U_DECIMAL_DIGIT_NUMBER ||
           type == U_CONNECTOR_PUNCTUATION || u_hasBinaryProperty((UChar32)cp, UCHAR_JOIN_CONTROL);
}

void tok_byte_alphabet(uint32_t codepoint_of_byte[256], int byte_of_codepoint[324])
{
    for (int c = 0; c < 324; c++)
        byte_of_codepoint[c] = -1;
    int shifted = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)shifted++;
        codepoint_of_byte[b] = cp;
        byte_of_codepoint[cp] = b;
    }
}
