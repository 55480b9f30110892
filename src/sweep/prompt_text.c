/* The sweep prompts as text (the result's prompt_text): decoded once, by the tokenizer the data
 * loading opened, into valid UTF-8 for a netCDF string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/tokenizer.h"
#include "sweep_internal.h"

/* S[0..N) starts a sequence of Unicode's table 3-7 (well-formed UTF-8): *WELL 1 and the return its
 * length when it is complete; else *WELL 0 and the return the length of its maximal subpart (the
 * lead byte and the continuation bytes that could still have completed it), which one U+FFFD
 * replaces, as Unicode recommends and Python's decode(errors="replace") does. */
static size_t utf8_sequence(const unsigned char *s, size_t n, int *well)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    *well = 0;
    if (c < 0x80) {
        *well = 1;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 1;
    size_t i = 1;
    while (i <= need && i < n && s[i] >= (i == 1 ? lo : 0x80) && s[i] <= (i == 1 ? hi : 0xBF))
        i++;
    *well = i == need + 1;
    return i;
}

/* RAW[LEN] as a NUL-terminated valid UTF-8 string (malloc'ed): every ill-formed sequence, and NUL
 * (a netCDF string ends there), as U+FFFD. */
static char *clean_utf8(const char *raw, size_t len)
{
    char *clean = pl_malloc(3 * len + 1, "prompt text"), *q = clean; /* U+FFFD: 3 bytes per bad byte */
    if (!clean)
        return NULL;
    for (size_t i = 0; i < len;) {
        int well;
        size_t n = utf8_sequence((const unsigned char *)raw + i, len - i, &well);
        if (well && raw[i] != 0)
            memcpy(q, raw + i, n), q += n;
        else
            memcpy(q, "\xef\xbf\xbd", 3), q += 3;
        i += n;
    }
    *q = '\0';
    return clean;
}

void pl_prompt_texts_free(char **texts, int n)
{
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
}

int pl_prompt_texts(pl_sweep *sw, const pl_tokenizer *tok)
{
    sw->prompt_text = NULL;
    pl_tokenizer *own = NULL;
    if (!tok) { /* a .bin of token ids needs no tokenizer: the texts are there when one opens */
        if (pl_tokenizer_open(&own, sw->cfg->model_path, sw->cfg->tokenizer_path, sw->V) != PL_OK) {
            pl_error_clear();
            return PL_OK;
        }
        tok = own;
    }
    int P = sw->cfg->n_prompts, T = sw->cfg->n_ctx;
    char **out = pl_calloc((size_t)P, sizeof(char *), "prompt texts");
    int rc = out ? PL_OK : PL_ERR, undecodable = 0;
    for (int p = 0; p < P && rc == PL_OK; p++) {
        char *raw;
        size_t len;
        /* an id beyond the tokenizer's vocabulary (a model's padded one): no text, never a lost run */
        if (pl_decode(tok, sw->tokens + (size_t)p * T, (size_t)T, &raw, &len) != PL_OK) {
            undecodable = 1;
            pl_error_clear();
            break;
        }
        out[p] = clean_utf8(raw, len);
        free(raw);
        rc = out[p] ? PL_OK : PL_ERR;
    }
    if (own)
        pl_tokenizer_free(own);
    if (rc != PL_OK || undecodable) {
        pl_prompt_texts_free(out, P);
        return rc;
    }
    sw->prompt_text = out;
    return PL_OK;
}
