/* plateau logits / plateau generate: a model's next-token predictions for a text or id list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/model.h"
#include "plateau/tokenizer.h"


const cli_spec CLI_LOGITS = {
    "logits", "MODEL (--text T | --ids I,J,...) [--top K | --all] [--tokenizer FILE]",
    "The model's next-token logits at the last position of a text or a list of token ids.",
    "--text is encoded with the special tokens the model adds (llama2.c: BOS first; HF:\n"
    "add_special_tokens=True). --top prints 'ID LOGIT TOKEN' lines, best first; --all all V logits.",
    (const cli_option[]){{"--text", NULL, "T", "the prompt as text (needs the model's tokenizer)"},
                         {"--ids", NULL, "I,J,...", "the prompt as token ids"},
                         {"--top", NULL, "K", "print the K largest logits (default 10)"},
                         {"--all", NULL, NULL, "print all V logits, one per line (%.9g)"},
                         {"--tokenizer", NULL, "FILE", "a tokenizer.json, llama2.c tokenizer.bin or dir instead"},
                         {NULL, NULL, NULL, NULL}},
    NULL};

const cli_spec CLI_GENERATE = {
    "generate", "MODEL --text T -n N [--tokenizer FILE]",
    "Greedy continuation of a text by N new tokens (one full forward per token: a sanity check).",
    "Prints T as given, then each new token's text as the tokenizer streams it, then a newline; stops\n"
    "early at the end-of-text token (llama2.c: at BOS, as run.c does).",
    (const cli_option[]){{"--text", NULL, "T", "the prompt (required)"},
                         {"-n", NULL, "N", "new tokens to generate (required)"},
                         {"--tokenizer", NULL, "FILE", "a tokenizer.json, llama2.c tokenizer.bin or dir instead"},
                         {NULL, NULL, NULL, NULL}},
    NULL};

/* "464,3139,286" -> ids; every element must be a non-negative integer. */
static int parse_id_list(const char *text, int **ids, size_t *n)
{
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += (*p == ',');
    int *out = pl_malloc(cap * sizeof(int), "--ids");
    if (!out)
        return PL_ERR;
    size_t count = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        long v;
        if (len == 0 || len >= sizeof item) {
            free(out);
            return pl_fail("--ids: element %zu '%.*s' is not a token id", count + 1, (int)len, p);
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (cli_parse_int("--ids", item, 0, 0x7fffffff, &v)) {
            free(out);
            return PL_ERR;
        }
        out[count++] = (int)v;
        if (!comma)
            break;
        p = comma + 1;
    }
    *ids = out;
    *n = count;
    return PL_OK;
}

/* The model's tokenizer (pl_tokenizer_open's lookup, or TOKENIZER_PATH), its ids checked against V. */
static int open_tokenizer(const pl_model *m, const char *tokenizer_path, pl_tokenizer **tok)
{
    return pl_tokenizer_open(tok, pl_model_path(m), tokenizer_path, pl_model_get_info(m)->n_vocab);
}

/* Token ids of --ids, or of --text with the special tokens the model adds around a text (HF
 * add_special_tokens=True; llama2.c: BOS, as run.c encodes a prompt). */
static int prompt_ids(const pl_model *m, const char *tokenizer_path, const char *text, const char *id_list,
                      pl_tokenizer **tok, int **ids, size_t *n)
{
    if (id_list)
        return parse_id_list(id_list, ids, n);
    if (open_tokenizer(m, tokenizer_path, tok))
        return PL_ERR;
    if (pl_encode_special(*tok, text, strlen(text), ids, n))
        return pl_fail_prefix("--text");
    if (*n == 0)
        return pl_fail("--text: the text has no tokens");
    return PL_OK;
}

static void print_token(const pl_tokenizer *tok, int id)
{
    size_t len = 0;
    const char *bytes = tok ? pl_token_bytes(tok, id, &len) : NULL;
    if (!bytes) {
        printf("?");
        return;
    }
    /* One line per token: show control bytes escaped so a newline token stays on its line. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c == '\r')
            printf("\\r");
        else if (c == '\\')
            printf("\\\\");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

int cmd_logits(int argc, char **argv)
{
    int prepared = cli_prepare(&CLI_LOGITS, &argc, &argv);
    if (prepared >= 0)
        return prepared;
    const char *dir = NULL, *text = NULL, *id_list = NULL, *tokenizer_path = NULL;
    long top = 10;
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc)
            id_list = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            tokenizer_path = argv[++i];
        else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
            if (cli_parse_int("--top", argv[++i], 1, 1 << 30, &top))
                return cli_usage("logits", CLI_LOGITS.synopsis, "%s", pl_error());
        } else if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage("logits", CLI_LOGITS.synopsis, "unknown or incomplete option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return cli_usage("logits", CLI_LOGITS.synopsis, "unexpected argument '%s'", argv[i]);
    }
    if (!dir || (!text == !id_list))
        return cli_usage("logits", CLI_LOGITS.synopsis, "need MODEL and exactly one of --text, --ids");

    pl_model *m = NULL;
    pl_tokenizer *tok = NULL;
    int *ids = NULL;
    size_t n = 0;
    pl_run run = {0};
    int rc = PL_EXIT_INPUT;
    if (id_list && parse_id_list(id_list, &ids, &n)) /* a malformed list is a command-line error */
        return cli_usage("logits", CLI_LOGITS.synopsis, "%s", pl_error());
    if (pl_model_open(&m, dir)) {
        free(ids);
        return cli_fail();
    }
    if ((!id_list && prompt_ids(m, tokenizer_path, text, NULL, &tok, &ids, &n)) || pl_forward(m, ids, (int)n, &run)) {
        cli_fail();
        goto done;
    }
    int V = pl_model_get_info(m)->n_vocab;
    if (all) {
        for (int v = 0; v < V; v++)
            printf("%.9g\n", run.logits[v]);
    } else {
        if (!tok && open_tokenizer(m, tokenizer_path, &tok))
            tok = NULL; /* token strings are a courtesy for --ids; the logits stand without them */
        pl_error_clear();
        int k = top < V ? (int)top : V;
        float *scratch = pl_malloc(sizeof(float) * V, "logits");
        if (!scratch) {
            cli_fail();
            goto done;
        }
        memcpy(scratch, run.logits, sizeof(float) * V);
        for (int i = 0; i < k; i++) {
            int best = argmax(scratch, V);
            printf("%d %.9g ", best, run.logits[best]);
            print_token(tok, best);
            putchar('\n');
            scratch[best] = -INFINITY;
        }
        free(scratch);
    }
    rc = PL_EXIT_OK;
done:
    pl_run_free(&run);
    free(ids);
    pl_tokenizer_free(tok);
    pl_model_close(m);
    return rc;
}

/* Greedy decoding of STEPS tokens after IDS[N] (room for N + STEPS), each printed as it comes.
 * One full forward per token: generate is a sanity check, not a hot path. */
static int greedy_continue(const pl_model *m, const pl_tokenizer *tok, int *ids, size_t n, long steps)
{
    /* run.c ends a llama2.c generation at BOS (its sequence delimiter); the other tokenizers' models at
     * their end-of-text token. */
    int llama2c = !strcmp(pl_tokenizer_kind(tok), "llama2c");
    int stop_id = llama2c ? pl_tokenizer_bos_id(tok) : pl_tokenizer_eos_id(tok);
    for (long s = 0; s < steps; s++) {
        pl_run run;
        if (pl_forward(m, ids, (int)n, &run))
            return PL_ERR;
        int next = argmax(run.logits, pl_model_get_info(m)->n_vocab);
        pl_run_free(&run);
        if (next == stop_id)
            break;
        char *bytes;
        size_t len;
        if (pl_decode_next(tok, ids[n - 1], next, &bytes, &len))
            return PL_ERR;
        fwrite(bytes, 1, len, stdout);
        free(bytes);
        fflush(stdout);
        ids[n++] = next;
    }
    return PL_OK;
}

int cmd_generate(int argc, char **argv)
{
    int prepared = cli_prepare(&CLI_GENERATE, &argc, &argv);
    if (prepared >= 0)
        return prepared;
    const char *dir = NULL, *text = NULL, *tokenizer_path = NULL;
    long steps = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            tokenizer_path = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            if (cli_parse_int("-n", argv[++i], 0, 1 << 20, &steps))
                return cli_usage("generate", CLI_GENERATE.synopsis, "%s", pl_error());
        } else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage("generate", CLI_GENERATE.synopsis, "unknown or incomplete option '%s'", argv[i]);
        else if (!dir)
            dir = argv[i];
        else
            return cli_usage("generate", CLI_GENERATE.synopsis, "unexpected argument '%s'", argv[i]);
    }
    if (!dir || !text || steps < 0)
        return cli_usage("generate", CLI_GENERATE.synopsis, "need MODEL, --text and -n");

    pl_model *m = NULL;
    pl_tokenizer *tok = NULL;
    int *ids = NULL;
    size_t n = 0;
    int rc = PL_EXIT_INPUT;
    if (pl_model_open(&m, dir))
        return cli_fail();
    if (prompt_ids(m, tokenizer_path, text, NULL, &tok, &ids, &n)) {
        cli_fail();
        goto done;
    }
    if (n + (size_t)steps > (size_t)pl_model_get_info(m)->n_ctx) {
        pl_fail("-n %ld: prompt (%zu tokens) + continuation exceeds the model's %d positions", steps, n,
                pl_model_get_info(m)->n_ctx);
        cli_fail();
        goto done;
    }
    int *all = realloc(ids, sizeof(int) * (n + (size_t)steps + 1));
    if (!all) {
        pl_fail("out of memory (generate)");
        cli_fail();
        goto done;
    }
    ids = all;
    fputs(text, stdout);
    if (greedy_continue(m, tok, ids, n, steps) != PL_OK) {
        cli_fail();
        goto done;
    }
    putchar('\n');
    rc = PL_EXIT_OK;
done:
    free(ids);
    pl_tokenizer_free(tok);
    pl_model_close(m);
    return rc;
}
