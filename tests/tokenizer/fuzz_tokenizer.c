/* libFuzzer target for the tokenizer: arbitrary bytes into pl_encode and arbitrary ids into pl_decode.
 *
 * Checks, beyond "no crash, no leak, no UB":
 *  - encode succeeds exactly when the input is valid UTF-8 (judged by the independent RFC 3629 check
 *    below), and otherwise names the byte offset of the first invalid sequence;
 *  - on valid input every id is in the vocabulary and decode(encode(s)) == s, byte for byte;
 *  - decode accepts exactly the ids in 0..V-1.
 * The tokenizer dir comes from $PLATEAU_FUZZ_MODEL_DIR (fuzz_tokenizer.seeds prints it). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/tokenizer.h"

static pl_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("PLATEAU_FUZZ_MODEL_DIR");
    if (!dir || pl_tokenizer_load(&tok, dir)) {
        fprintf(stderr, "fuzz_tokenizer: set PLATEAU_FUZZ_MODEL_DIR to a tokenizer dir (%s)\n", dir ? pl_error() : "unset");
        abort();
    }
    return 0;
}

/* Offset of the first byte sequence that is not well-formed UTF-8 (Unicode Table 3-7), or -1. */
static long first_invalid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
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
        } else {
            return (long)i;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return (long)i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return (long)i;
        i += len;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int *ids = NULL;
    size_t n_ids = 0;
    long bad = first_invalid_utf8(data, size);
    int rc = pl_encode(tok, (const char *)data, size, &ids, &n_ids);
    if (bad >= 0) {
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte offset %ld ", bad);
        if (rc == PL_OK || strncmp(pl_error(), want, strlen(want))) {
            fprintf(stderr, "invalid UTF-8 at %ld: encode returned %d, message '%s'\n", bad, rc, pl_error());
            abort();
        }
    } else {
        if (rc != PL_OK) {
            fprintf(stderr, "valid UTF-8 rejected: %s\n", pl_error());
            abort();
        }
        if (n_ids > size)
            abort();
        char *back;
        size_t back_len;
        if (pl_decode(tok, ids, n_ids, &back, &back_len) || back_len != size || memcmp(back, data, size)) {
            fprintf(stderr, "decode(encode(s)) != s (%zu ids)\n", n_ids);
            abort();
        }
        free(back);
    }
    free(ids);

    /* The same bytes as little-endian int32 ids, some in range, most not. */
    size_t n = size / 4;
    int *raw = malloc(n ? n * sizeof(int) : 1);
    if (!raw)
        return 0;
    int all_valid = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 |
                     (uint32_t)data[4 * i + 3] << 24;
        raw[i] = (int)(u & 0x8000FFFFu); /* mostly small ids, sometimes negative */
        all_valid &= raw[i] >= 0 && raw[i] < pl_tokenizer_vocab_size(tok);
    }
    char *text;
    size_t len;
    rc = pl_decode(tok, raw, n, &text, &len);
    if ((rc == PL_OK) != all_valid)
        abort();
    if (rc == PL_OK)
        free(text);
    free(raw);
    return 0;
}
