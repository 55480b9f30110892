/* Prompts for the sweep.
 *
 * Formats: JSONL (one {"text": ...} object per line), plain text (one document per non-empty line),
 * or a nanoGPT-style .bin of little-endian uint16 or uint32 token ids ([data] token_dtype).
 *
 * [data] sampling:
 *   document_start  a prompt is the first n_ctx tokens of a document (a .bin's documents are its
 *                   consecutive n_ctx windows); shorter documents are skipped and counted. Documents
 *                   are visited in a seeded random order (Fisher-Yates with the keyed stream).
 * [data] bos (auto: the tokenizer's own convention) puts the BOS token first in every prompt, followed
 * by n_ctx - 1 tokens of the data.
 *   random_window   the documents concatenated with the end-of-text token after each (a .bin is that
 *                   stream already, as openwebtext token files are), and windows of n_ctx tokens at
 *                   uniformly random offsets drawn from the keyed stream (data seed, WINDOW); a
 *                   window always has the stream's next token after it.
 * Either way the first n_prompts prompts are the sweep's, the next cov_prompts fit mu and Sigma, and
 * a prompt whose tokens equal an earlier one's is dropped and counted, so no two prompts are alike
 * (a duplicate partner would give real_other a zero direction). All of it runs on rank 0 alone, so
 * nothing depends on the number of ranks. Each prompt's next token (the data's token after it, -1
 * when there is none) is kept for ce_loss.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/hash.h"
#include "plateau/tokenizer.h"
#include "plateau/watch.h"
#include "sweep_internal.h"

/* ------------------------------------------------------------ documents of text files */

typedef struct {
    char **text;
    size_t *len;
    long *line;
    long n, cap;
} doc_list;

static void docs_free(doc_list *d)
{
    for (long i = 0; i < d->n; i++)
        free(d->text[i]);
    free(d->text);
    free(d->len);
    free(d->line);
}

static int docs_push(doc_list *d, char *text, size_t len, long line)
{
    if (d->n == d->cap) {
        long nc = d->cap ? d->cap * 2 : 1024;
        char **t = realloc(d->text, sizeof(char *) * nc);
        if (t)
            d->text = t;
        size_t *l = realloc(d->len, sizeof(size_t) * nc);
        if (l)
            d->len = l;
        long *ln = realloc(d->line, sizeof(long) * nc);
        if (ln)
            d->line = ln;
        if (!t || !l || !ln) {
            free(text);
            return pl_fail("out of memory (documents)");
        }
        d->cap = nc;
    }
    d->text[d->n] = text;
    d->len[d->n] = len;
    d->line[d->n] = line;
    d->n++;
    return PL_OK;
}

/* The longest line (one document) of a text or JSONL prompts file: far above a real document (a novel is
 * ~1 MB), and refused at once, before a tokenizer spends minutes on a line that is a file's worth of
 * text (a 40 MB line took 82 s to fail). */
#define PL_MAX_PROMPT_LINE_BYTES ((size_t)4 << 20)

/* Every non-empty line of PATH (JSONL: its "text" string) as a document. */
static int read_lines(const char *path, int jsonl, doc_list *d)
{
    char *data = NULL;
    size_t size = 0;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size) != PL_OK)
        return PL_ERR;
    int rc = PL_OK;
    long lineno = 0;
    for (size_t at = 0; at < size && rc == PL_OK;) {
        const char *line = data + at, *nl = memchr(line, '\n', size - at);
        size_t n = nl ? (size_t)(nl - line) : size - at;
        at += n + (nl != NULL);
        lineno++;
        while (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        if (n > PL_MAX_PROMPT_LINE_BYTES) {
            rc = pl_fail("%s:%ld: a line of %zu bytes; a prompt line (one document) may have at most %zu", path,
                         lineno, n, PL_MAX_PROMPT_LINE_BYTES);
            break;
        }
        const char *text = line;
        size_t len = n;
        json_t *obj = NULL;
        if (jsonl) {
            json_error_t err;
            obj = json_loadb(line, n, 0, &err);
            json_t *t = obj ? json_object_get(obj, "text") : NULL;
            if (!obj || !json_is_string(t)) {
                rc = pl_fail("%s:%ld: expected a JSON object with a \"text\" string%s%s", path, lineno, obj ? "" : ": ",
                             obj ? "" : err.text);
                json_decref(obj);
                break;
            }
            text = json_string_value(t);
            len = json_string_length(t);
        }
        char *copy = pl_malloc(len + 1, "document");
        if (copy) {
            memcpy(copy, text, len);
            copy[len] = '\0';
            rc = docs_push(d, copy, len, lineno);
        } else {
            rc = PL_ERR;
        }
        json_decref(obj);
    }
    free(data);
    return rc;
}

/* ------------------------------------------------------------ the selection */

/* Seeded Fisher-Yates permutation of 0..n-1. */
static long *permutation(long n, uint64_t seed)
{
    long *perm = pl_malloc(sizeof(long) * (n ? n : 1), "document order");
    if (!perm)
        return NULL;
    pl_rng r;
    pl_rng_init(&r, seed, PL_RNG_DATA, 0, 0);
    for (long i = 0; i < n; i++)
        perm[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)pl_rng_below(&r, (uint64_t)i + 1);
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm;
}

/* The prompts chosen so far, with a hash set of their tokens to drop duplicates. */
typedef struct {
    int *tokens, *next; /* [need, T], [need] */
    long need, got, duplicates;
    int T;
    int bos;            /* prepended to every prompt, or -1 */
    int *scratch;       /* [T] */
    long *slot;         /* open addressing over prompt indices, -1 = empty */
    size_t n_slots;
} selection;

static uint64_t hash_tokens(const int *t, int T)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < T; i++)
        h = (h ^ (uint32_t)t[i]) * 0x100000001b3ULL;
    return h;
}

static int selection_init(selection *s, long need, int T)
{
    memset(s, 0, sizeof *s);
    s->need = need;
    s->T = T;
    s->bos = -1;
    s->n_slots = 16;
    while (s->n_slots < 2 * (size_t)need)
        s->n_slots *= 2;
    s->tokens = pl_malloc(sizeof(int) * (size_t)need * T, "prompt tokens");
    s->next = pl_malloc(sizeof(int) * (size_t)need, "next tokens");
    s->slot = pl_malloc(sizeof(long) * s->n_slots, "prompt set");
    s->scratch = pl_malloc(sizeof(int) * T, "prompt");
    if (!s->tokens || !s->next || !s->slot || !s->scratch)
        return PL_ERR;
    for (size_t i = 0; i < s->n_slots; i++)
        s->slot[i] = -1;
    return PL_OK;
}

static void selection_free(selection *s)
{
    free(s->tokens);
    free(s->next);
    free(s->slot);
    free(s->scratch);
}

/* Take the prompt IDS[T] (followed by NEXT in the data, -1: nothing) unless an earlier one has the
 * same tokens (counted). With a BOS (s->bos >= 0) the prompt is BOS + IDS[0 .. T-2], and NEXT must be
 * the data's token after those. */
static void selection_offer(selection *s, const int *ids, int next)
{
    int T = s->T;
    if (s->bos >= 0) {
        s->scratch[0] = s->bos;
        memcpy(s->scratch + 1, ids, sizeof(int) * (T - 1));
        ids = s->scratch;
    }
    size_t i = hash_tokens(ids, T) & (s->n_slots - 1);
    for (; s->slot[i] >= 0; i = (i + 1) & (s->n_slots - 1))
        if (!memcmp(s->tokens + (size_t)s->slot[i] * T, ids, sizeof(int) * T)) {
            s->duplicates++;
            return;
        }
    memcpy(s->tokens + (size_t)s->got * T, ids, sizeof(int) * T);
    s->next[s->got] = next;
    s->slot[i] = s->got++;
}

/* ------------------------------------------------------------ token streams */

/* A .bin file's tokens, every id checked against V. */
static int read_bin(const pl_sweep_config *cfg, int V, int **tokens, long *n)
{
    const char *path = cfg->data_path;
    void *map = NULL;
    size_t bytes = 0;
    int w = cfg->token_bytes;
    if (pl_map_file(path, "token file", &map, &bytes) != PL_OK)
        return PL_ERR;
    int rc = PL_OK;
    if (bytes % (size_t)w) {
        rc = pl_fail("%s: %zu bytes is not a whole number of uint%d tokens ([data] token_dtype)", path, bytes, 8 * w);
    } else {
        *n = (long)(bytes / (size_t)w);
        *tokens = pl_malloc(sizeof(int) * (size_t)(*n ? *n : 1), "token stream");
        if (!*tokens)
            rc = PL_ERR;
        const unsigned char *b = map;
        for (long i = 0; rc == PL_OK && i < *n; i++) {
            uint32_t id = w == 2 ? (uint32_t)(b[2 * i] | b[2 * i + 1] << 8)
                                 : (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                                       (uint32_t)b[4 * i + 3] << 24;
            if (id >= (uint32_t)V)
                rc = pl_fail("%s: token %u at byte offset %ld is outside the model's vocabulary (%d)", path, id,
                             i * w, V);
            else
                (*tokens)[i] = (int)id;
        }
    }
    pl_unmap_file(map, bytes);
    return rc;
}

/* Encode document DI of DOCS, checking every id against V. */
static int encode_doc(const pl_sweep_config *cfg, const pl_tokenizer *tok, const doc_list *docs, long di, int V,
                      int **ids, size_t *n_ids)
{
    if (pl_encode(tok, docs->text[di], docs->len[di], ids, n_ids) != PL_OK)
        return pl_fail_prefix("%s:%ld", cfg->data_path, docs->line[di]);
    for (size_t t = 0; t < *n_ids; t++)
        if ((*ids)[t] < 0 || (*ids)[t] >= V) {
            int bad = (*ids)[t];
            free(*ids);
            *ids = NULL;
            return pl_fail("%s:%ld: token %d is outside the model's vocabulary (%d)", cfg->data_path, docs->line[di],
                           bad, V);
        }
    return PL_OK;
}

/* random_window: windows of T tokens (T - 1 after a BOS) at random offsets of STREAM[N], each with
 * its next token. */
static int draw_windows(const pl_sweep_config *cfg, const int *stream, long N, selection *sel)
{
    int T = cfg->n_ctx - (sel->bos >= 0);
    if (N < (long)T + 1)
        return pl_fail("%s: %ld tokens in all, but a window of %d tokens and its next token need %d", cfg->data_path,
                       N, T, T + 1);
    pl_rng r;
    pl_rng_init(&r, cfg->data_seed, PL_RNG_WINDOW, 0, 0);
    long limit = 20 * sel->need + 1000, draws = 0;
    while (sel->got < sel->need && draws < limit) {
        long o = (long)pl_rng_below(&r, (uint64_t)(N - T)); /* offsets 0 .. N - T - 1 */
        selection_offer(sel, stream + o, stream[o + T]);
        draws++;
    }
    if (sel->got < sel->need)
        return pl_fail("%s: %ld distinct windows of n_ctx = %d tokens in %ld draws (%ld duplicates), but n_prompts + "
                       "cov_prompts = %ld are needed: the data is too short or too repetitive",
                       cfg->data_path, sel->got, cfg->n_ctx, draws, sel->duplicates, sel->need);
    return PL_OK;
}

/* The tokenizer the data needs (none for a .bin without BOS) and, under [data] bos, sel->bos. */
static int open_data_tokenizer(const pl_sweep_config *cfg, int V, selection *sel, pl_tokenizer **tok)
{
    /* [data] bos: auto follows the tokenizer's own convention (pl_tokenizer_adds_bos) */
    if (cfg->data_format != PL_DATA_BIN || cfg->bos != PL_BOS_FALSE) {
        if (pl_tokenizer_open(tok, cfg->model_path, cfg->tokenizer_path, V) != PL_OK)
            return pl_fail_prefix("%s: tokenizer for [data] prompts%s", cfg->model_path,
                                  cfg->data_format == PL_DATA_BIN ? " ([data] bos = false needs none for a .bin)" : "");
    }
    if (*tok && (cfg->bos == PL_BOS_TRUE || (cfg->bos == PL_BOS_AUTO && pl_tokenizer_adds_bos(*tok)))) {
        sel->bos = pl_tokenizer_bos_id(*tok);
        if (sel->bos < 0)
            return pl_fail("%s: [data] bos: the tokenizer (%s) has no BOS token",
                           pl_sweep_config_origin(cfg, "data", "bos"), pl_tokenizer_kind(*tok));
    }
    return PL_OK;
}

/* A .bin's prompts: random windows of the stream, or its consecutive n_ctx windows in seeded order (L
 * tokens of the data each). */
static int select_from_bin(const pl_sweep_config *cfg, int V, int L, selection *sel)
{
    int T = cfg->n_ctx;
    long need = sel->need, N = 0, *perm = NULL;
    int *stream = NULL;
    int rc = read_bin(cfg, V, &stream, &N);
    if (rc == PL_OK && cfg->sampling == PL_SAMPLING_RANDOM_WINDOW) {
        rc = draw_windows(cfg, stream, N, sel);
    } else if (rc == PL_OK) {
        long n_windows = N / T;
        if (n_windows < need)
            rc = pl_fail("%s: %ld windows of n_ctx = %d tokens, but n_prompts + cov_prompts = %ld are needed",
                         cfg->data_path, n_windows, T, need);
        if (rc == PL_OK && !(perm = permutation(n_windows, cfg->data_seed)))
            rc = PL_ERR;
        for (long i = 0; rc == PL_OK && i < n_windows && sel->got < need; i++) {
            long w = perm[i];
            selection_offer(sel, stream + w * T, w * T + L < N ? stream[w * T + L] : -1);
        }
        if (rc == PL_OK && sel->got < need)
            rc = pl_fail("%s: %ld distinct windows of n_ctx = %d tokens (%ld duplicates dropped), but n_prompts + "
                         "cov_prompts = %ld are needed",
                         cfg->data_path, sel->got, T, sel->duplicates, need);
    }
    free(perm);
    free(stream);
    return rc;
}

/* random_window over text: the documents concatenated with the end-of-text token after each, then
 * windows drawn from that stream. */
static int select_windows_of_documents(const pl_sweep_config *cfg, pl_tokenizer *tok, const doc_list *docs, int V,
                                       selection *sel)
{
    int eos = pl_tokenizer_eos_id(tok);
    if (eos < 0)
        return pl_fail("%s: [data] sampling = random_window: the tokenizer has no end-of-text token to put "
                       "between documents", pl_sweep_config_origin(cfg, "data", "sampling"));
    long cap = 0, N = 0;
    int *stream = NULL, rc = PL_OK;
    for (long di = 0; rc == PL_OK && di < docs->n; di++) {
        int *ids = NULL;
        size_t n_ids = 0;
        if ((rc = encode_doc(cfg, tok, docs, di, V, &ids, &n_ids)) != PL_OK)
            break;
        if (N + (long)n_ids + 1 > cap) {
            long nc = (cap ? cap * 2 : 65536) + (long)n_ids + 1;
            int *ns = realloc(stream, sizeof(int) * (size_t)nc);
            if (!ns) {
                free(ids);
                rc = pl_fail("out of memory (token stream)");
                break;
            }
            stream = ns;
            cap = nc;
        }
        memcpy(stream + N, ids, sizeof(int) * n_ids);
        N += (long)n_ids;
        stream[N++] = eos;
        free(ids);
    }
    if (rc == PL_OK)
        rc = draw_windows(cfg, stream, N, sel);
    free(stream);
    return rc;
}

/* document_start over text: documents visited in the seeded order until enough are usable (L tokens of
 * the data each); on a shortfall, keep going to count how many there are in all. */
static int select_document_starts(const pl_sweep_config *cfg, pl_tokenizer *tok, const doc_list *docs, int V, int L,
                                  selection *sel, long *skipped, long *visited)
{
    long need = sel->need, *perm = permutation(docs->n, cfg->data_seed);
    if (!perm)
        return PL_ERR;
    int rc = PL_OK;
    for (long i = 0; i < docs->n && sel->got < need; i++) {
        int *ids = NULL;
        size_t n_ids = 0;
        if ((rc = encode_doc(cfg, tok, docs, perm[i], V, &ids, &n_ids)) != PL_OK)
            break;
        ++*visited;
        if (n_ids < (size_t)L)
            ++*skipped;
        else
            selection_offer(sel, ids, n_ids > (size_t)L ? ids[L] : -1);
        free(ids);
    }
    free(perm);
    if (rc == PL_OK && sel->got < need)
        rc = pl_fail("%s: %ld distinct documents of at least n_ctx = %d tokens (%ld shorter ones skipped, %ld "
                     "duplicates dropped), but n_prompts + cov_prompts = %d + %d = %ld are needed",
                     cfg->data_path, sel->got, cfg->n_ctx, *skipped, sel->duplicates, cfg->n_prompts,
                     cfg->cov_prompts, need);
    return rc;
}

int pl_data_load(pl_sweep *sw, int verbose)
{
    pl_sweep_config *cfg = sw->cfg;
    int T = cfg->n_ctx, V = sw->V;
    long need = (long)cfg->n_prompts + cfg->cov_prompts;
    selection sel;
    doc_list docs = {0};
    pl_tokenizer *tok = NULL;
    long skipped = 0, visited = 0;
    int rc = selection_init(&sel, need, T);
    /* identified before it is read: a change during the run stops it (plateau/watch.h) */
    if (rc == PL_OK)
        rc = pl_watch_file(cfg->data_path, "[data] prompts file");
    if (rc == PL_OK)
        rc = open_data_tokenizer(cfg, V, &sel, &tok);
    int L = T - (sel.bos >= 0); /* tokens a prompt takes from the data */
    if (rc == PL_OK && L < 1)
        rc = pl_fail("%s: [data] n_ctx: 1 token is the BOS alone; a prompt needs at least one token of the data",
                     pl_sweep_config_origin(cfg, "data", "n_ctx"));
    if (rc == PL_OK && cfg->data_format == PL_DATA_BIN) {
        rc = select_from_bin(cfg, V, L, &sel);
    } else if (rc == PL_OK) {
        rc = read_lines(cfg->data_path, cfg->data_format == PL_DATA_JSONL, &docs);
        if (rc == PL_OK && cfg->sampling == PL_SAMPLING_RANDOM_WINDOW)
            rc = select_windows_of_documents(cfg, tok, &docs, V, &sel);
        else if (rc == PL_OK)
            rc = select_document_starts(cfg, tok, &docs, V, L, &sel, &skipped, &visited);
    }
    if (rc == PL_OK && verbose && skipped)
        fprintf(stderr, "plateau: %s: skipped %ld of %ld documents visited (shorter than n_ctx = %d tokens)\n",
                cfg->data_path, skipped, visited, T);
    if (rc == PL_OK && verbose && sel.duplicates)
        fprintf(stderr, "plateau: %s: dropped %ld prompts identical to an earlier one\n", cfg->data_path,
                sel.duplicates);
    docs_free(&docs);
    if (rc != PL_OK) {
        if (tok)
            pl_tokenizer_free(tok);
        selection_free(&sel);
        return PL_ERR;
    }
    sw->tokens = sel.tokens;
    sw->next_token = sel.next;
    sw->n_duplicates = sel.duplicates;
    sw->n_short = skipped;
    sw->bos_id = sel.bos;
    free(sel.slot);
    free(sel.scratch);
    rc = pl_prompt_texts(sw, tok); /* decoded once, here: the result's prompt_text */
    if (tok)
        pl_tokenizer_free(tok);
    return rc;
}

int pl_data_sha256(const pl_sweep *sw, char out[65])
{
    size_t n = (size_t)sw->P + sw->cfg->cov_prompts, T = (size_t)sw->T;
    int *all = pl_malloc(sizeof(int) * n * (T + 1), "prompt identity");
    if (!all)
        return PL_ERR;
    memcpy(all, sw->tokens, sizeof(int) * n * T);
    memcpy(all + n * T, sw->next_token, sizeof(int) * n);
    int rc = pl_sha256_hex(all, sizeof(int) * n * (T + 1), out);
    free(all);
    return rc;
}

int pl_tokens_sha256(const pl_sweep *sw, char out[65])
{
    return pl_sha256_hex(sw->tokens, sizeof(int) * (size_t)sw->P * (size_t)sw->T, out);
}
