/* plateau tokenize MODEL TEXT|- [--tokenizer FILE] [--bos]: the token ids of TEXT, space-separated on
 * one line, by the model's tokenizer (pl_tokenizer_open's lookup). --bos: with the special tokens the
 * model adds (HF add_special_tokens=True, run.c's BOS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/model.h"
#include "plateau/tokenizer.h"

static const char usage[] = "MODEL TEXT|- [--tokenizer FILE] [--bos]";

const cli_spec CLI_TOKENIZE = {
    "tokenize", usage, "The token ids of TEXT by MODEL's tokenizer, space-separated on one line.",
    "TEXT '-' reads all of stdin, byte for byte (NUL bytes included), at most 64 MiB (exit 2 past it);\n"
    "a TEXT starting with '-' goes after '--' (plateau tokenize MODEL -- '-5 degrees'). The tokenizer is\n"
    "the model's own (tokenizer.json, GPT-2's vocab.json and merges.txt, or llama2.c's tokenizer.bin\n"
    "beside the model).",
    (const cli_option[]){{"--tokenizer", NULL, "FILE", "a tokenizer.json, llama2.c tokenizer.bin or dir instead"},
                         {"--bos", NULL, NULL, "add the special tokens the model adds (HF add_special_tokens; BOS)"},
                         {NULL, NULL, NULL, NULL}},
    NULL};

/* IDS space-separated on one line. printf per id costs more than the encoding itself on large inputs. */
static int print_ids(const int *ids, size_t n_ids)
{
    for (size_t i = 0; i < n_ids; i++) {
        char digits[16], *p = digits + sizeof digits;
        *--p = '\0';
        unsigned v = (unsigned)ids[i]; /* ids are >= 0 */
        do
            *--p = (char)('0' + v % 10);
        while (v /= 10);
        if (i)
            putchar(' ');
        fputs(p, stdout);
    }
    putchar('\n');
    if (fflush(stdout) || ferror(stdout))
        return pl_fail("stdout: write error");
    return PL_OK;
}

/* A llama2.c checkpoint's tokenizer may be tok<V>.bin: *VOCAB (else left 0) comes from the header of
 * MODEL when it is a file. */
static int checkpoint_vocab(const char *model, int *vocab)
{
    struct stat st;
    if (stat(model, &st) != 0 || S_ISDIR(st.st_mode))
        return PL_OK;
    pl_model *m = NULL;
    if (pl_model_open(&m, model))
        return PL_ERR;
    *vocab = pl_model_get_info(m)->n_vocab;
    pl_model_close(m);
    return PL_OK;
}

int cmd_tokenize(int argc, char **argv)
{
    int prepared = cli_prepare(&CLI_TOKENIZE, &argc, &argv);
    if (prepared >= 0)
        return prepared;
    const char *positional[2] = {NULL, NULL}, *tokenizer_path = NULL;
    int n_positional = 0, with_bos = 0;
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        if (options_done) {
            if (n_positional < 2)
                positional[n_positional] = argv[i];
            n_positional++;
        } else if (!strcmp(argv[i], "--")) {
            options_done = 1;
        } else if (!strcmp(argv[i], "--bos")) {
            with_bos = 1;
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (i + 1 >= argc)
                return cli_usage("tokenize", usage, "--tokenizer needs a FILE");
            tokenizer_path = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_usage("tokenize", usage, "unknown option %s", argv[i]);
        } else if (n_positional < 2) {
            positional[n_positional++] = argv[i];
        } else {
            n_positional++;
        }
    }
    if (n_positional != 2)
        return cli_usage("tokenize", usage, "expected MODEL and TEXT (or '-'), got %d arguments", n_positional);
    const char *model = positional[0], *arg_text = positional[1];
    int from_stdin = !strcmp(arg_text, "-");

    pl_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int *ids = NULL;
    size_t n_ids = 0;
    int code = PL_EXIT_OK;
    int model_vocab = 0;
    if ((!tokenizer_path && checkpoint_vocab(model, &model_vocab) != PL_OK) ||
        pl_tokenizer_open(&tok, model, tokenizer_path, model_vocab)) {
        code = cli_fail();
        goto done;
    }
    if (from_stdin) {
        if (pl_read_stream(stdin, "stdin", PL_MAX_STDIN_BYTES, &text, &len)) {
            code = cli_fail();
            goto done;
        }
    }
    if ((with_bos ? pl_encode_special : pl_encode)(tok, from_stdin ? text : arg_text,
                                                   from_stdin ? len : strlen(arg_text), &ids, &n_ids)) {
        pl_fail_prefix("%s", from_stdin ? "stdin" : "TEXT");
        code = cli_fail();
        goto done;
    }
    if (print_ids(ids, n_ids) != PL_OK)
        code = cli_fail();
done:
    free(ids);
    free(text);
    pl_tokenizer_free(tok);
    return code;
}
