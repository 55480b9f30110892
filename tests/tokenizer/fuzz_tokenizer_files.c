/* libFuzzer targets for the tokenizer files (fuzz_hf_json.c and fuzz_llama2c_tokenizer.c build it with -DFUZZ_HF_JSON or -DFUZZ_LLAMA2C):
 *   hf_json: the input is a tokenizer.json; llama2c: the input is a text length (2 bytes), the text and
 *   then a tokenizer.bin.
 * Beyond "no crash, no leak, no UB": a file is accepted or refused with a message naming it; an
 * accepted tokenizer encodes fixed texts (hf_json) or the input's text (llama2c) into ids that are all
 * in the vocabulary, decodes them, and answers pl_token_bytes / pl_decode_next for every id. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plateau/error.h"
#include "plateau/tokenizer.h"
#include "../../src/tokenizer/tok_internal.h"

static const char name[] = "/nonexistent/fuzz/tokenizer.json"; /* no tokenizer_config.json beside it */

static void exercise(const pl_tokenizer *tok, const char *text, size_t len)
{
    int *ids = NULL;
    size_t n = 0;
    if (pl_encode_special(tok, text, len, &ids, &n) == PL_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= pl_tokenizer_vocab_size(tok)) {
                fprintf(stderr, "id %d outside the vocabulary of %d\n", ids[i], pl_tokenizer_vocab_size(tok));
                abort();
            }
        char *out;
        size_t out_len;
        if (pl_decode(tok, ids, n, &out, &out_len) == PL_OK)
            free(out);
        for (size_t i = 0; i < n; i++)
            if (pl_decode_next(tok, i ? ids[i - 1] : -1, ids[i], &out, &out_len) == PL_OK)
                free(out);
    } else if (!pl_error()[0]) {
        /* refusals are fine (invalid UTF-8, a llama2.c file without " " or byte tokens): unexplained ones not */
        fprintf(stderr, "encode failed without a message\n");
        abort();
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_tokenizer *tok = NULL;
#ifdef FUZZ_HF_JSON
    if (tok_hf_parse(&tok, name, (const char *)data, size) != PL_OK) {
        if (!strstr(pl_error(), name)) {
            fprintf(stderr, "error does not name the file: %s\n", pl_error());
            abort();
        }
        return 0;
    }
    static const char *const texts[] = {"Hello world, it's 2024!", "  spaces\tand\nlines  ", "<s>x</s><|endoftext|>",
                                        "e\xcc\x81 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac 123456", ""};
    for (int i = 0; i < 5; i++)
        exercise(tok, texts[i], strlen(texts[i]));
#else
    if (size < 2)
        return 0;
    size_t len = (size_t)data[0] | (size_t)data[1] << 8;
    if (len > size - 2)
        len = size - 2;
    if (tok_llama2c_parse(&tok, "fuzz.bin", data + 2 + len, size - 2 - len, 0) != PL_OK) {
        if (strncmp(pl_error(), "fuzz.bin: ", 10)) {
            fprintf(stderr, "error does not name the file: %s\n", pl_error());
            abort();
        }
        return 0;
    }
    exercise(tok, (const char *)data + 2, len);
#endif
    for (int id = -1; id <= pl_tokenizer_vocab_size(tok); id++) {
        size_t n;
        pl_token_bytes(tok, id, &n);
    }
    pl_tokenizer_free(tok);
    return 0;
}
