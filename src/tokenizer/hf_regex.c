/* Patterns of a tokenizer.json are Oniguruma regexes (Ruby syntax), which HF tokenizers compiles
 * with onig. plateau runs them with PCRE2 after rewriting the few constructs whose meaning differs,
 * and refuses the constructs it cannot carry over exactly:
 *   \s \S    Oniguruma: Unicode White_Space (PCRE2's \s would add U+180E): spelled out (TOK_WS);
 *            \S inside a class cannot be spelled out and is refused
 *   \d \D    Oniguruma: Unicode Nd (PCRE2 without UCP: ASCII): \p{Nd} \P{Nd}
 *   \v       Oniguruma: U+000B (PCRE2: any vertical space): \x0b
 *   \uHHHH   Oniguruma only: \x{HHHH}
 *   {,n}     Oniguruma: {0,n} (PCRE2 10.42: literal text)
 *   \w \W \b \B \h \H \G \K \R \X \N \k \g, back references, POSIX brackets, class intersections
 *   (&&) and inline options other than i: refused by name.
 * `.` is any character but \n and ^ $ are line anchors in both once PCRE2 uses LF newlines and
 * multiline mode; (?i) is Unicode case folding in both (PCRE2's UTF mode). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "hf_internal.h"

static int refuse(const char *what, const char *onig, size_t at, const char *why)
{
    return pl_fail("%s: pattern \"%s\": %s at offset %zu is not supported (plateau cannot reproduce Oniguruma's "
                   "meaning exactly)",
                   what, onig, why, at);
}

static pcre2_code *compile(const char *pattern, size_t n, uint32_t options, int *err, PCRE2_SIZE *err_offset)
{
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc)
        return NULL;
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, n, PCRE2_UTF | options, err, err_offset, cc);
    pcre2_compile_context_free(cc);
    if (code)
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* only a speed-up */
    return code;
}

pcre2_code *hf_regex_literal(const char *s, size_t n)
{
    int err;
    PCRE2_SIZE off;
    return compile(s, n, PCRE2_LITERAL, &err, &off);
}

/* The escape at onig[*i] == '\\' (IN_CLASS: inside [...]) appended to B in PCRE2's spelling; *i is
 * left on its last character. */
static int translate_escape(const char *onig, const char *what, size_t n, size_t *i, int in_class, tok_buf *b)
{
    if (*i + 1 >= n)
        return refuse(what, onig, *i, "a trailing backslash");
    char e = onig[++*i];
    const char *add = NULL;
    switch (e) {
    case 's':
        add = in_class ? TOK_WS : "[" TOK_WS "]";
        break;
    case 'S':
        if (in_class)
            return refuse(what, onig, *i - 1, "\\S inside a character class");
        add = "[^" TOK_WS "]";
        break;
    case 'd':
        add = "\\p{Nd}";
        break;
    case 'D':
        add = "\\P{Nd}";
        break;
    case 'v':
        add = "\\x0b";
        break;
    case 'u': {
        char hex[5] = {0};
        if (*i + 4 >= n)
            return refuse(what, onig, *i - 1, "a short \\u escape");
        memcpy(hex, onig + *i + 1, 4);
        if (strspn(hex, "0123456789abcdefABCDEF") != 4)
            return refuse(what, onig, *i - 1, "a \\u escape without 4 hex digits");
        char esc[16];
        snprintf(esc, sizeof esc, "\\x{%s}", hex);
        *i += 4;
        return tok_buf_add(b, esc, strlen(esc)) ? PL_ERR : PL_OK;
    }
    case 'w': case 'W': case 'b': case 'B': case 'h': case 'H': case 'G': case 'K': case 'R':
    case 'X': case 'N': case 'k': case 'g': case 'O': case 'y': case 'Y': case 'o': case 'c': case 'C':
    case 'M': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8':
    case '9': {
        char why[32];
        snprintf(why, sizeof why, "\\%c", e);
        return refuse(what, onig, *i - 1, why);
    }
    default: {
        /* \p{..} \P{..} \x.. \t \n \r \f \a \e \A \z \Z and escaped punctuation mean the same */
        char esc[3] = {'\\', e, 0};
        return tok_buf_add(b, esc, 2) ? PL_ERR : PL_OK;
    }
    }
    return tok_buf_add(b, add, strlen(add)) ? PL_ERR : PL_OK;
}

/* The character onig[*i] (not an escape) appended to B in PCRE2's spelling, *IN_CLASS tracking
 * [...]; *i is left on the last character consumed. */
static int translate_char(const char *onig, const char *what, size_t n, size_t *i, int *in_class, tok_buf *b)
{
    char c = onig[*i];
    char one[2] = {c, 0};
    const char *add = one;
    if (c == '[') {
        if (*in_class && *i + 1 < n && onig[*i + 1] == ':')
            return refuse(what, onig, *i, "a POSIX bracket expression");
        if (*in_class)
            return refuse(what, onig, *i, "a nested character class");
        *in_class = 1;
        add = "[";
        /* a ']' or '^]' right after '[' is a literal in both */
        if (*i + 1 < n && onig[*i + 1] == '^') {
            add = "[^";
            ++*i;
        }
        if (*i + 1 < n && onig[*i + 1] == ':')
            return refuse(what, onig, *i, "a POSIX bracket expression");
    } else if (c == ']' && *in_class) {
        *in_class = 0;
    } else if (c == '&' && *in_class && *i + 1 < n && onig[*i + 1] == '&') {
        return refuse(what, onig, *i, "a class intersection (&&)");
    } else if (c == '(' && !*in_class && *i + 1 < n && onig[*i + 1] == '?') {
        /* (?: (?= (?! (?<= (?<! (?> (?<name> and the i option are the same in both */
        const char *g = onig + *i + 2;
        if (!(*g == ':' || *g == '=' || *g == '!' || *g == '>' || (*g == '<' && (g[1] == '=' || g[1] == '!')) ||
              !strncmp(g, "i:", 2) || !strncmp(g, "i)", 2) || !strncmp(g, "-i:", 3) || !strncmp(g, "-i)", 3)))
            return refuse(what, onig, *i, "an inline option or group kind other than (?: (?= (?! (?<= (?<! (?> (?i");
        add = "(?";
        ++*i;
    } else if (c == '{' && !*in_class && *i + 1 < n && onig[*i + 1] == ',') {
        add = "{0";
    }
    return tok_buf_add(b, add, strlen(add)) ? PL_ERR : PL_OK;
}

int hf_regex_compile(const char *onig, const char *what, pcre2_code **out)
{
    *out = NULL;
    tok_buf b = {0};
    size_t n = strlen(onig);
    int in_class = 0; /* inside [...] */
    int rc = PL_ERR;
    if (tok_buf_add(&b, "", 0))
        return PL_ERR;
    for (size_t i = 0; i < n; i++) {
        int step = onig[i] == '\\' ? translate_escape(onig, what, n, &i, in_class, &b)
                                   : translate_char(onig, what, n, &i, &in_class, &b);
        if (step != PL_OK)
            goto done;
    }
    int err;
    PCRE2_SIZE err_offset;
    *out = compile(b.data, b.len, PCRE2_MULTILINE, &err, &err_offset);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        pl_fail("%s: pattern \"%s\": cannot compile: %s", what, onig, (char *)msg);
        goto done;
    }
    rc = PL_OK;
done:
    free(b.data);
    return rc;
}

int hf_find_matches(const pcre2_code *re, const char *text, size_t n, hf_span **spans, size_t *n_spans)
{
    *spans = NULL;
    *n_spans = 0;
    size_t cap = 16, count = 0;
    hf_span *out = pl_malloc(cap * sizeof(hf_span), "pattern matches");
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = PL_ERR;
    if (!out || !md) {
        if (!md)
            pl_fail("out of memory (PCRE2 match data)");
        goto done;
    }
#define PUSH(s, e, m)                                                                                                  \
    do {                                                                                                               \
        if (count + 1 > cap) {                                                                                         \
            hf_span *bigger = realloc(out, 2 * cap * sizeof(hf_span));                                                 \
            if (!bigger) {                                                                                             \
                pl_fail("out of memory (pattern matches)");                                                            \
                goto done;                                                                                             \
            }                                                                                                          \
            out = bigger;                                                                                              \
            cap *= 2;                                                                                                  \
        }                                                                                                              \
        out[count++] = (hf_span){(s), (e), (m)};                                                                       \
    } while (0)
    if (n == 0) {
        PUSH(0, 0, 0);
    } else {
        size_t last_end = 0, prev = 0;
        int have_last = 0;
        size_t last_match_end = 0;
        while (last_end <= n) {
            int m = pcre2_match(re, (PCRE2_SPTR)text, n, last_end, PCRE2_NO_UTF_CHECK, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH)
                break;
            if (m < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(m, msg, sizeof msg);
                pl_fail("pattern match failed at byte offset %zu: %s", last_end, (char *)msg);
                goto done;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t s = ov[0], e = ov[1];
            if (e == s && have_last && last_match_end == e) {
                /* Oniguruma's find_iter: no empty match right after the previous one; step one char */
                uint32_t cp;
                int step = last_end < n ? tok_utf8_next((const unsigned char *)text + last_end, n - last_end, &cp) : 1;
                last_end += step > 0 ? (size_t)step : 1;
                continue;
            }
            last_end = e;
            last_match_end = e;
            have_last = 1;
            if (prev != s)
                PUSH(prev, s, 0);
            PUSH(s, e, 1);
            prev = e;
        }
        if (prev != n)
            PUSH(prev, n, 0);
    }
#undef PUSH
    *spans = out;
    *n_spans = count;
    out = NULL;
    rc = PL_OK;
done:
    free(out);
    pcre2_match_data_free(md);
    return rc;
}
