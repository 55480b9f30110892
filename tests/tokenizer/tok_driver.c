/* Test driver for plateau_tokenizer: one process for a whole corpus.
 *
 *   tok_driver PATH encode FILE.jsonl...        ids of each document's "text", one line each;
 *                                               also checks decode(encode(text)) == text and reports
 *                                               throughput (tokens/s) on stderr
 *   tok_driver PATH ids FILE.jsonl...           the same ids without the round-trip check (tokenizers
 *                                               that normalise or have <unk> are lossy)
 *   tok_driver PATH special FILE.jsonl...       ids with the model's special tokens (pl_encode_special)
 *   tok_driver PATH decode FILE.jsonl...        hex of decode(encode(text)), one line each
 * PATH: a model dir, or a tokenizer file (tokenizer.json, llama2.c tokenizer.bin): pl_tokenizer_open.
 *   tok_driver MODEL_DIR roundtrip N SEED       decode(encode(s)) == s for N random valid UTF-8 strings
 *                                               drawn from ASCII, whitespace of every kind, Latin-1,
 *                                               combining marks, CJK, emoji and contractions
 *
 * Exit 0 on success, 1 on a mismatch (with the document and offset), 2 on an error message. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "plateau/error.h"
#include "plateau/tokenizer.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encode TEXT, check the round trip; ids go to *ids. Returns 0, 1 (mismatch) or 2 (error). */
static int encode_checked(const pl_tokenizer *tok, const char *what, const char *text, size_t len, int **ids,
                          size_t *n_ids, double *seconds)
{
    double t0 = now_seconds();
    if (pl_encode(tok, text, len, ids, n_ids)) {
        fprintf(stderr, "%s: %s\n", what, pl_error());
        return 2;
    }
    *seconds += now_seconds() - t0;
    char *back;
    size_t back_len;
    if (pl_decode(tok, *ids, *n_ids, &back, &back_len)) {
        fprintf(stderr, "%s: decode: %s\n", what, pl_error());
        return 2;
    }
    int same = back_len == len && !memcmp(back, text, len);
    if (!same) {
        size_t at = 0;
        while (at < len && at < back_len && back[at] == text[at])
            at++;
        fprintf(stderr, "%s: decode(encode(text)) != text: %zu vs %zu bytes, first difference at byte %zu\n", what,
                back_len, len, at);
    }
    free(back);
    return same ? 0 : 1;
}

enum { MODE_ENCODE, MODE_IDS, MODE_SPECIAL, MODE_DECODE };

static int encode_files(const pl_tokenizer *tok, int mode, int n_files, char **files)
{
    size_t docs = 0, bytes = 0, tokens = 0;
    double seconds = 0;
    for (int f = 0; f < n_files; f++) {
        FILE *in = fopen(files[f], "rb");
        if (!in) {
            perror(files[f]);
            return 2;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        for (long line_no = 1; (n = getline(&line, &cap, in)) >= 0; line_no++) {
            if (strspn(line, " \t\r\n") == (size_t)n)
                continue;
            json_error_t jerr;
            json_t *doc = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr);
            json_t *text = doc ? json_object_get(doc, "text") : NULL;
            if (!json_is_string(text)) {
                fprintf(stderr, "%s:%ld: expected {\"text\": \"...\"}: %s\n", files[f], line_no,
                        doc ? "no string \"text\"" : jerr.text);
                json_decref(doc);
                return 2;
            }
            char what[512];
            snprintf(what, sizeof what, "%s:%ld", files[f], line_no);
            int *ids;
            size_t n_ids;
            int rc = 0;
            if (mode == MODE_ENCODE) {
                rc = encode_checked(tok, what, json_string_value(text), json_string_length(text), &ids, &n_ids,
                                    &seconds);
            } else if ((mode == MODE_SPECIAL ? pl_encode_special : pl_encode)(tok, json_string_value(text),
                                                                              json_string_length(text), &ids, &n_ids)) {
                fprintf(stderr, "%s: %s\n", what, pl_error());
                rc = 2;
            }
            if (rc == 2) {
                json_decref(doc);
                return 2;
            }
            if (mode == MODE_DECODE) {
                char *back;
                size_t back_len;
                if (pl_decode(tok, ids, n_ids, &back, &back_len)) {
                    fprintf(stderr, "%s: decode: %s\n", what, pl_error());
                    free(ids);
                    json_decref(doc);
                    return 2;
                }
                for (size_t i = 0; i < back_len; i++)
                    printf("%02x", (unsigned char)back[i]);
                free(back);
            } else {
                for (size_t i = 0; i < n_ids; i++)
                    printf(i ? " %d" : "%d", ids[i]);
            }
            putchar('\n');
            docs++;
            bytes += json_string_length(text);
            tokens += n_ids;
            free(ids);
            json_decref(doc);
            if (rc)
                return 1;
        }
        free(line);
        fclose(in);
    }
    fprintf(stderr, "tok_driver: %zu documents, %zu bytes, %zu tokens, encode %.3f s: %.0f tokens/s, %.2f MB/s\n",
            docs, bytes, tokens, seconds, seconds > 0 ? (double)tokens / seconds : 0.0,
            seconds > 0 ? 1e-6 * (double)bytes / seconds : 0.0);
    return 0;
}

/* Pieces the random strings are built from: each one stresses a branch of the pattern or the
 * byte-level alphabet. */
static const char *const pieces[] = {
    "a", "Z", "the", " of", "'s", "'S", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "\"", " ", "  ", "\t", "\n",
    "\r\n", "\r", "\v", "\f", "0", "42", " 1984", "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe1\xa0\x8e",
    "\xe2\x80\x80", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
    "\xef\xbb\xbf", "\xc3\xa9", "e\xcc\x81", "\xcc\x88", "\xce\xb1\xce\xb2", "\xd0\x96", "\xd8\xb9\xd8\xb1",
    "\xe4\xb8\xad\xe6\x96\x87", "\xe3\x81\x8b", "\xed\x95\x9c", "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "\xe2\x80\x8d", "\xd9\xa3", "\xe2\x85\xa7", "\xc2\xb2", ",", ".", "...", "!?", "-", "--", "(", ")", "{\"", "\",",
    "\",\"", "],[", "<|endoftext|>", "\x01", "\x7f", "\x1c", "\xf4\x8f\xbf\xbf", "\xee\x80\x80", "$", "\\",
};

static int roundtrip_random(const pl_tokenizer *tok, long n_strings, unsigned long seed)
{
    size_t n_pieces = sizeof pieces / sizeof pieces[0];
    uint64_t state = seed * 2862933555777941757ULL + 3037000493ULL;
    char *text = malloc(64 * 1024);
    if (!text)
        return 2;
    double seconds = 0;
    for (long s = 0; s < n_strings; s++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n_parts = (size_t)(state >> 33) % 200, len = 0;
        for (size_t p = 0; p < n_parts; p++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *piece = pieces[(state >> 33) % n_pieces];
            size_t piece_len = strlen(piece);
            memcpy(text + len, piece, piece_len);
            len += piece_len;
        }
        char what[64];
        snprintf(what, sizeof what, "random string %ld (seed %lu)", s, seed);
        int *ids;
        size_t n_ids;
        int rc = encode_checked(tok, what, text, len, &ids, &n_ids, &seconds);
        if (rc != 2)
            free(ids);
        if (rc) {
            free(text);
            return rc;
        }
    }
    free(text);
    fprintf(stderr, "tok_driver: %ld random strings round-trip\n", n_strings);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const modes[] = {"encode", "ids", "special", "decode"};
    int mode = -1;
    for (int i = 0; i < 4; i++)
        if (argc >= 3 && !strcmp(argv[2], modes[i]))
            mode = i;
    if (argc < 4 || (mode < 0 && strcmp(argv[2], "roundtrip"))) {
        fprintf(stderr, "usage: tok_driver PATH encode|ids|special|decode FILE.jsonl... | roundtrip N SEED\n");
        return 2;
    }
    pl_tokenizer *tok;
    struct stat st;
    int is_dir = stat(argv[1], &st) == 0 && S_ISDIR(st.st_mode);
    if (pl_tokenizer_open(&tok, is_dir ? argv[1] : NULL, is_dir ? NULL : argv[1], 0)) {
        fprintf(stderr, "tok_driver: %s\n", pl_error());
        return 2;
    }
    int rc = mode >= 0 ? encode_files(tok, mode, argc - 3, argv + 3)
             : argc == 5                 ? roundtrip_random(tok, atol(argv[3]), strtoul(argv[4], NULL, 10))
                                         : 2;
    pl_tokenizer_free(tok);
    return rc;
}
