/* plateau tokenize MODEL_DIR TEXT|- : GPT-2 token ids of TEXT, space-separated on one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/tokenizer.h"

static const char usage[] = "MODEL_DIR TEXT|-   ('-' reads all of stdin, byte for byte)";

/* All of stdin, byte for byte (NULs included). */
static int read_stdin(char **data, size_t *size)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = pl_malloc(cap, "stdin");
    if (!buf)
        return PL_ERR;
    for (;;) {
        len += fread(buf + len, 1, cap - len, stdin);
        if (len < cap)
            break;
        char *bigger = realloc(buf, 2 * cap);
        if (!bigger) {
            free(buf);
            return pl_fail("stdin: out of memory after %zu bytes", len);
        }
        buf = bigger;
        cap *= 2;
    }
    if (ferror(stdin)) {
        free(buf);
        return pl_fail("stdin: read error");
    }
    *data = buf;
    *size = len;
    return PL_OK;
}

int cmd_tokenize(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: plateau tokenize %s\n", usage);
        return PL_EXIT_OK;
    }
    if (argc != 3)
        return cli_usage("tokenize", usage, "expected MODEL_DIR and TEXT (or '-'), got %d arguments", argc - 1);
    const char *dir = argv[1];
    int from_stdin = !strcmp(argv[2], "-");

    pl_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int *ids = NULL;
    size_t n_ids = 0;
    int code = PL_EXIT_OK;
    if (pl_tokenizer_load(&tok, dir)) {
        code = cli_fail();
        goto done;
    }
    if (from_stdin) {
        if (read_stdin(&text, &len)) {
            code = cli_fail();
            goto done;
        }
    }
    if (pl_encode(tok, from_stdin ? text : argv[2], from_stdin ? len : strlen(argv[2]), &ids, &n_ids)) {
        pl_fail_prefix("%s", from_stdin ? "stdin" : "TEXT");
        code = cli_fail();
        goto done;
    }
    /* printf per id costs more than the encoding itself on large inputs. */
    for (size_t i = 0; i < n_ids; i++) {
        char digits[16], *p = digits + sizeof digits;
        *--p = '\0';
        unsigned v = (unsigned)ids[i]; /* ids are ≥ 0 */
        do
            *--p = (char)('0' + v % 10);
        while (v /= 10);
        if (i)
            putchar(' ');
        fputs(p, stdout);
    }
    putchar('\n');
    if (fflush(stdout) || ferror(stdout)) {
        pl_fail("stdout: write error");
        code = cli_fail();
    }
done:
    free(ids);
    free(text);
    pl_tokenizer_free(tok);
    return code;
}
