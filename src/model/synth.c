/* plateau synth: a complete Hugging Face model dir of any registry family (registry.h) with seeded
 * random weights. The family's row writes config.json; that config is read back through the same
 * row's reader, whose tensor-name table is what synth writes: what synth writes, plateau loads.
 *
 * Weights follow GPT-2's initialisation scale (normal(0, 0.02), residual projections scaled by
 * 1/sqrt(2L)) plus deliberately non-trivial layer norms and biases, so a forward pass that drops a
 * bias or a layer-norm gain gives visibly different logits. Every tensor draws from its own stream
 * seeded by (seed, tensor name): values do not depend on file order, dtype or the HF quirks. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/safetensors.h"
#include "plateau/synth.h"
#include "families/decoder.h"
#include "registry.h"

/* ---- random numbers: splitmix64 seeds xoshiro256**, Box-Muller for normals ---- */

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, const char *stream_name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the stream name */
    for (const char *p = stream_name; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in (0, 1): never 0, so log() below is finite */
static double rng_uniform(rng_t *r) { return ((rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static double rng_normal(rng_t *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double radius = sqrt(-2.0 * log(rng_uniform(r))), angle = 2.0 * M_PI * rng_uniform(r);
    r->spare = radius * sin(angle);
    r->has_spare = 1;
    return radius * cos(angle);
}

/* ---- fp32 -> f16 / bf16, round to nearest even ---- */

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 112; /* half's biased exponent */
    if (e >= 0x1f)
        return (uint16_t)(sign | 0x7c00);
    uint32_t mant, r, rem, half;
    int shift;
    if (e <= 0) { /* half subnormal: value = M * 2^(e - 14) in units of 2^-24 */
        shift = 14 - e;
        if (shift > 24)
            return (uint16_t)sign;
        mant = man | 0x800000;
    } else {
        shift = 13;
        mant = ((uint32_t)e << 23) | man; /* exponent rides along so a rounding carry bumps it */
    }
    r = mant >> shift;
    rem = mant & ((1u << shift) - 1);
    half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* keep NaN a NaN */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* ---- files ---- */

/* Written by the one atomic writer (pl_atomic_*: a new temporary file beside the target, fsync, rename,
 * fsync of the directory), so a reader never sees half a file and a crash leaves the old one or the new. */
typedef struct {
    FILE *fp;
    pl_atomic_file af;
    char tmp[4096]; /* the file, for messages */
} out_file;

static int out_open(out_file *o, const char *dir, const char *name)
{
    snprintf(o->tmp, sizeof o->tmp, "%s/%s", dir, name);
    o->fp = NULL;
    if (pl_atomic_begin(&o->af, o->tmp) != PL_OK)
        return PL_ERR;
    o->fp = o->af.fp;
    return PL_OK;
}

static int out_close(out_file *o, int ok)
{
    o->fp = NULL;
    if (!ok) {
        pl_atomic_abort(&o->af);
        return PL_ERR;
    }
    return pl_atomic_commit(&o->af);
}

static int copy_file(const char *src_dir, const char *out_dir, const char *name)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/%s", src_dir, name);
    int fd; /* a regular file only (a FIFO would block), copied up to its size at open (bounded) */
    size_t left;
    if (pl_open_input(src, "--vocab-from", &fd, &left) != PL_OK)
        return PL_ERR;
    if (left > PL_MAX_INPUT_BYTES) {
        close(fd);
        return pl_fail("%s: %zu bytes is larger than the %zu a vocabulary file may have", src, left, PL_MAX_INPUT_BYTES);
    }
    FILE *in = fdopen(fd, "rb");
    if (!in) {
        close(fd);
        return pl_fail("%s: cannot open: %s", src, strerror(errno));
    }
    out_file o;
    if (out_open(&o, out_dir, name) != PL_OK) {
        fclose(in);
        return PL_ERR;
    }
    char buf[1 << 16];
    size_t n;
    while (left && (n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in)) > 0) {
        left -= n;
        if (fwrite(buf, 1, n, o.fp) != n)
            break;
    }
    int read_err = ferror(in);
    fclose(in);
    if (read_err) {
        out_close(&o, 0);
        return pl_fail("%s: read failed", src);
    }
    return out_close(&o, 1);
}

/* ---- the synthetic byte-level BPE tokenizer ---- */

static int utf8_put(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2; /* bytes_to_unicode never exceeds U+0143 */
}

/* The synthetic vocabulary as it grows: token -> id, id -> token. */
typedef struct {
    json_t *vocab;
    char **tokens; /* [n_vocab] */
    int n_tokens;
    int id_of_byte[256];
} synth_vocab;

static int vocab_add(synth_vocab *sv, char *token)
{
    if (!token)
        return pl_fail("out of memory (synthetic tokenizer)");
    sv->tokens[sv->n_tokens++] = token; /* owned by sv from here */
    if (json_object_set_new(sv->vocab, token, json_integer(sv->n_tokens - 1)))
        return pl_fail("out of memory (synthetic tokenizer)");
    return PL_OK;
}

/* Ids 0..255: the bytes in GPT-2's bytes_to_unicode order (printable bytes as themselves first). */
static int byte_tokens(synth_vocab *sv)
{
    int byte_order[256], n = 0, is_printable[256] = {0};
    for (int b = 33; b <= 126; b++) is_printable[b] = 1;
    for (int b = 161; b <= 172; b++) is_printable[b] = 1;
    for (int b = 174; b <= 255; b++) is_printable[b] = 1;
    unsigned char_of[256];
    for (int b = 0; b < 256; b++)
        if (is_printable[b])
            byte_order[n++] = b, char_of[b] = (unsigned)b;
    for (int b = 0, extra = 0; b < 256; b++)
        if (!is_printable[b])
            byte_order[n++] = b, char_of[b] = 256u + (unsigned)extra++;
    for (int i = 0; i < 256; i++) {
        char s[4] = {0};
        utf8_put(s, char_of[byte_order[i]]);
        if (vocab_add(sv, strdup(s)) != PL_OK)
            return PL_ERR;
        sv->id_of_byte[byte_order[i]] = i;
    }
    return PL_OK;
}

/* merges.txt: N_MERGES distinct merges, each a new token. Merges grow lowercase words and
 * "Ġ"-prefixed words, so ordinary English text exercises the merge loop. */
static int write_merges(const char *out_dir, synth_vocab *sv, int n_merges, int n_vocab)
{
    out_file o = {0};
    if (out_open(&o, out_dir, "merges.txt") != PL_OK)
        return PL_ERR;
    fprintf(o.fp, "#version: 0.2\n");
    const int *id_of_byte = sv->id_of_byte;
    char **tokens = sv->tokens;
    rng_t r;
    rng_seed(&r, 0x706c617465617531ull, "synthetic tokenizer");
    long attempts = 0;
    for (int m = 0; m < n_merges; attempts++) {
        const char *left, *right;
        if (m < 26) { /* "Ġ a" ... "Ġ z" first, as in GPT-2 */
            left = tokens[id_of_byte[' ']], right = tokens[id_of_byte['a' + m]];
        } else {
            if (attempts > 100L * n_vocab + 1000) {
                out_close(&o, 0);
                return pl_fail("synth: could not build %d distinct merges", n_merges);
            }
            if (sv->n_tokens > 256 && (rng_next(&r) & 3) != 0)
                left = tokens[256 + rng_next(&r) % (uint64_t)(sv->n_tokens - 256)];
            else
                left = tokens[id_of_byte['a' + rng_next(&r) % 26]];
            right = tokens[id_of_byte['a' + rng_next(&r) % 26]];
        }
        size_t len = strlen(left) + strlen(right);
        char *joined = pl_malloc(len + 1, "merge");
        if (joined)
            snprintf(joined, len + 1, "%s%s", left, right);
        if (joined && (json_object_get(sv->vocab, joined) || len > 64)) {
            free(joined);
            continue;
        }
        if (joined)
            fprintf(o.fp, "%s %s\n", left, right);
        if (vocab_add(sv, joined) != PL_OK) {
            out_close(&o, 0);
            return PL_ERR;
        }
        m++;
    }
    return out_close(&o, 1);
}

/* GPT-2's vocab.json and merges.txt shape: ids 0..255 are the bytes in bytes_to_unicode's order,
 * then one token per merge, then <|endoftext|> as the last id. Fixed seed: the tokenizer is the
 * same whatever --seed the weights use. */
static int write_synthetic_tokenizer(const char *out_dir, int n_vocab)
{
    synth_vocab sv = {json_object(), pl_calloc((size_t)n_vocab, sizeof(char *), "synthetic vocab"), 0, {0}};
    int rc = PL_ERR;
    if (!sv.vocab || !sv.tokens || byte_tokens(&sv) != PL_OK || write_merges(out_dir, &sv, n_vocab - 257, n_vocab))
        goto done;
    if (json_object_set_new(sv.vocab, "<|endoftext|>", json_integer(sv.n_tokens))) {
        pl_fail("out of memory (synthetic tokenizer)");
        goto done;
    }
    out_file o;
    if (out_open(&o, out_dir, "vocab.json") != PL_OK)
        goto done;
    int dump_failed = json_dumpf(sv.vocab, o.fp, JSON_COMPACT) != 0;
    rc = out_close(&o, !dump_failed);
    if (rc != PL_OK && dump_failed)
        pl_fail("%s: write failed", o.tmp);
done:
    if (sv.tokens)
        for (int i = 0; i < sv.n_tokens; i++)
            free(sv.tokens[i]);
    free(sv.tokens);
    json_decref(sv.vocab);
    return rc;
}

/* Size of DIR/vocab.json's vocabulary (a JSON object of token -> id). */
static int vocab_size_of(const char *dir, int *n_vocab)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    json_error_t jerr;
    char *text; /* a regular file of bounded size (a FIFO or /dev/zero would never end) */
    size_t len;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &text, &len) != PL_OK)
        return pl_fail_prefix("--vocab-from");
    json_t *vocab = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!vocab)
        return pl_fail("%s: %s", path, jerr.text);
    int ok = json_is_object(vocab) && json_object_size(vocab) > 0;
    *n_vocab = (int)json_object_size(vocab);
    json_decref(vocab);
    if (!ok)
        return pl_fail("%s: not a non-empty JSON object of token -> id", path);
    return PL_OK;
}

/* ---- weights ---- */

typedef struct {
    char name[96];      /* as written (with an export's prefix) */
    char seed_name[96]; /* the stream: the family's name, and wte's for GPT-2's tied lm_head */
    pl_init_kind kind;
    st_dtype dtype;
    int ndim;
    int64_t shape[4];
    uint64_t numel, begin, end;
} synth_tensor;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const synth_tensor *)a)->name, ((const synth_tensor *)b)->name);
}

static void add_tensor(synth_tensor *list, int *n, const pl_synth_tensor *t)
{
    synth_tensor *out = &list[(*n)++];
    memset(out, 0, sizeof *out);
    memcpy(out->name, t->name, sizeof out->name);
    memcpy(out->seed_name, t->seed_name, sizeof out->seed_name);
    out->kind = t->kind;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    out->numel = 1;
    for (int i = 0; i < t->ndim; i++)
        out->shape[i] = t->shape[i], out->numel *= (uint64_t)t->shape[i];
}

static void fill_values(const synth_tensor *t, uint64_t seed, int n_layer, float *out)
{
    rng_t r;
    rng_seed(&r, seed, t->seed_name);
    double proj_std = 0.02 / sqrt(2.0 * n_layer);
    for (uint64_t i = 0; i < t->numel; i++) {
        switch (t->kind) {
        case PL_INIT_WEIGHT: out[i] = (float)(0.02 * rng_normal(&r)); break;
        case PL_INIT_PROJ: out[i] = (float)(proj_std * rng_normal(&r)); break;
        case PL_INIT_POS: out[i] = (float)(0.01 * rng_normal(&r)); break;
        case PL_INIT_NORM: out[i] = (float)(1.0 + 0.05 * rng_normal(&r)); break;
        case PL_INIT_BIAS: out[i] = (float)(0.02 * rng_normal(&r)); break;
        case PL_INIT_MASK: { /* HF's causal mask [1, 1, N, N]: lower triangle */
            uint64_t n = (uint64_t)t->shape[3];
            out[i] = (i % n) <= (i / n) % n ? 1.0f : 0.0f;
            break;
        }
        case PL_INIT_MASKED_BIAS: out[i] = -1e4f; break;
        }
    }
}

static void encode_values(st_dtype dtype, const float *src, uint64_t n, uint8_t *dst)
{
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bits;
        uint16_t h;
        switch (dtype) {
        case ST_BOOL: dst[i] = src[i] != 0.0f; break;
        case ST_F16:
        case ST_BF16:
            h = dtype == ST_F16 ? float_to_half(src[i]) : float_to_bf16(src[i]);
            dst[2 * i] = (uint8_t)h, dst[2 * i + 1] = (uint8_t)(h >> 8);
            break;
        default:
            memcpy(&bits, &src[i], sizeof bits);
            for (int b = 0; b < 4; b++)
                dst[4 * i + b] = (uint8_t)(bits >> (8 * b));
            break;
        }
    }
}

/* How synth fills the tensor loaded into DST, by its place in the decoder: norms' gains near 1,
 * biases and learned positions small, the projections back into the residual scaled by
 * 1/sqrt(2L) (GPT-2's initialisation), every other matrix normal(0, 0.02). */
static pl_init_kind init_kind_of(const pl_decoder *d, const float *const *dst)
{
    if (dst == &d->normf_w)
        return PL_INIT_NORM;
    if (dst == &d->normf_b)
        return PL_INIT_BIAS;
    if (dst == &d->pos_embed)
        return PL_INIT_POS;
    const char *p = (const char *)dst, *first = (const char *)d->blocks;
    if (p < first || p >= (const char *)(d->blocks + d->cfg.n_layer))
        return PL_INIT_WEIGHT;
    const pl_decoder_block *b = &d->blocks[(size_t)(p - first) / sizeof *b];
    if (dst == &b->norm1_w || dst == &b->norm2_w)
        return PL_INIT_NORM;
    if (dst == &b->o.w || dst == &b->down.w)
        return PL_INIT_PROJ;
    const float *const *biases[] = {&b->norm1_b, &b->norm2_b, &b->q.b, &b->k.b, &b->v.b, &b->qkv.b,
                                    &b->o.b,     &b->gate.b,  &b->up.b, &b->down.b};
    for (size_t i = 0; i < sizeof biases / sizeof biases[0]; i++)
        if (dst == biases[i])
            return PL_INIT_BIAS;
    return PL_INIT_WEIGHT;
}

/* The tensors of F's dir for config CFG: the row's reader's tensor-name table (its required
 * tensors; a tied head is not written), with --hf-quirks the export's prefix and extra tensors.
 * Reading CFG back also checks it: options the family refuses fail here, before any file. */
static int tensor_list(const pl_family *f, const pl_synth_opts *o, json_t *cfg, const char *out_dir,
                       synth_tensor **out, int *n_out)
{
    pl_model *m = pl_calloc(1, sizeof *m, "synth model");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json (as synth writes it)", out_dir);
    pl_hf_config c = {path, cfg, ""};
    pl_hf_wants w = {0};
    int rc = m ? f->code->read(m, &c, f, &w) : PL_ERR, n = 0, quirks = o->hf_quirks && f->code->synth_quirks;
    synth_tensor *ts = rc ? NULL : pl_calloc((size_t)w.n + 2 * (size_t)o->n_layer + 8, sizeof *ts, "synth tensors");
    if (ts) {
        const pl_decoder *d = m->weights;
        for (int i = 0; i < w.n; i++) {
            if (w.items[i].optional != PL_HF_REQUIRED)
                continue;
            pl_synth_tensor t = {.kind = init_kind_of(d, w.items[i].dst), .dtype = o->dtype, .ndim = w.items[i].ndim,
                                 .shape = {w.items[i].shape[0], w.items[i].shape[1]}};
            snprintf(t.name, sizeof t.name, "%s%s", quirks && f->code->prefix ? f->code->prefix : "", w.items[i].name);
            snprintf(t.seed_name, sizeof t.seed_name, "%s", w.items[i].name);
            add_tensor(ts, &n, &t);
        }
        pl_synth_tensor *all = quirks ? pl_calloc(2 * (size_t)o->n_layer + 1, sizeof *all, "synth quirks") : NULL;
        int n_extra = 0;
        if (all)
            f->code->synth_quirks(m, o, all, &n_extra);
        for (int i = 0; i < n_extra; i++)
            add_tensor(ts, &n, &all[i]);
        free(all);
        if (quirks && !all)
            free(ts), ts = NULL;
    }
    rc = rc == PL_OK && ts ? PL_OK : PL_ERR;
    pl_hf_wants_free(&w);
    pl_model_close(m);
    *out = ts;
    *n_out = n;
    return rc;
}

/* One safetensors file of TS[0..n-1] (sorted by name): header JSON padded with spaces so the data
 * section is 8-byte aligned. */
static int write_one_safetensors(const char *out_dir, const char *file, const pl_synth_opts *o, synth_tensor *ts,
                                 int n)
{
    size_t hcap = (size_t)n * 256 + 256, hlen = 0;
    char *header = pl_malloc(hcap, "safetensors header");
    float *values = NULL;
    uint8_t *bytes = NULL;
    out_file of = {0};
    int rc = PL_ERR;
    if (!header)
        goto done;
    hlen += (size_t)snprintf(header + hlen, hcap - hlen, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0, max_numel = 1;
    for (int i = 0; i < n; i++) {
        synth_tensor *t = &ts[i];
        t->begin = offset;
        t->end = offset + t->numel * st_dtype_size(t->dtype);
        offset = t->end;
        if (t->numel > max_numel)
            max_numel = t->numel;
        hlen += (size_t)snprintf(header + hlen, hcap - hlen, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
                                 st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            hlen += (size_t)snprintf(header + hlen, hcap - hlen, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        hlen += (size_t)snprintf(header + hlen, hcap - hlen, "],\"data_offsets\":[%llu,%llu]}",
                                 (unsigned long long)t->begin, (unsigned long long)t->end);
    }
    header[hlen++] = '}';
    while (hlen % 8)
        header[hlen++] = ' ';

    values = pl_malloc(max_numel * sizeof *values, "synth values");
    bytes = pl_malloc(max_numel * 4, "synth bytes");
    if (!values || !bytes)
        goto done;
    if (out_open(&of, out_dir, file) != PL_OK)
        goto done;
    uint8_t len_le[8];
    for (int b = 0; b < 8; b++)
        len_le[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
    fwrite(len_le, 1, 8, of.fp);
    fwrite(header, 1, hlen, of.fp);
    for (int i = 0; i < n; i++) {
        fill_values(&ts[i], o->seed, o->n_layer, values);
        encode_values(ts[i].dtype, values, ts[i].numel, bytes);
        fwrite(bytes, 1, ts[i].end - ts[i].begin, of.fp);
    }
    rc = out_close(&of, 1);
done:
    free(values);
    free(bytes);
    free(header);
    return rc;
}

/* model.safetensors, or N shards of consecutive tensors (by name) and their index. */
/* model.safetensors, or N shards of consecutive tensors (by name) and their index. */
static int write_safetensors(const char *out_dir, const pl_synth_opts *o, synth_tensor *ts, int n)
{
    qsort(ts, (size_t)n, sizeof *ts, by_name);
    int shards = o->n_shards > 1 ? o->n_shards : 1, rc = PL_OK;
    if (shards > n)
        shards = n;
    if (shards == 1) {
        return write_one_safetensors(out_dir, "model.safetensors", o, ts, n);
    }
    json_t *map = json_object(), *index = json_object();
    uint64_t total = 0;
    for (int s = 0, first = 0; s < shards && rc == PL_OK; s++) {
        int last = (int)((long)n * (s + 1) / shards);
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, shards);
        rc = write_one_safetensors(out_dir, file, o, ts + first, last - first);
        for (int i = first; i < last; i++) {
            json_object_set_new(map, ts[i].name, json_string(file));
            total += ts[i].numel * st_dtype_size(ts[i].dtype);
        }
        first = last;
    }
    json_object_set_new(index, "metadata", json_pack("{s:I}", "total_size", (json_int_t)total));
    json_object_set_new(index, "weight_map", map);
    out_file of;
    if (rc == PL_OK && out_open(&of, out_dir, "model.safetensors.index.json") == PL_OK) {
        int failed = json_dumpf(index, of.fp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0;
        rc = out_close(&of, !failed);
    } else {
        rc = PL_ERR;
    }
    json_decref(index);
    return rc;
}

/* config.json for the options: the family's keys, and the marks of a synthetic model. */
static json_t *synth_config(const pl_family *f, const pl_synth_opts *o, const pl_synth_dims *d)
{
    json_t *cfg = f->code->synth_config(f, o, d);
    if (cfg && !json_object_get(cfg, "plateau_synthetic")) {
        json_object_set_new(cfg, "torch_dtype", json_string(d->torch_dtype));
        json_object_set_new(cfg, "plateau_synthetic", json_true());
        json_object_set_new(cfg, "plateau_seed", json_integer((json_int_t)o->seed));
        json_object_set_new(cfg, "plateau_init", json_string("normal(0,0.02); output projections "
                                                             "0.02/sqrt(2L); norms 1+0.05z; biases 0.02z"));
    }
    if (!cfg)
        pl_fail("synth: cannot build config.json");
    return cfg;
}

static int write_config(const char *out_dir, json_t *cfg)
{
    out_file of;
    if (out_open(&of, out_dir, "config.json") != PL_OK)
        return PL_ERR;
    int failed = json_dumpf(cfg, of.fp, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0;
    fputc('\n', of.fp);
    return out_close(&of, !failed);
}

/* The options' sizes after the defaults, checked (the shared checks, then the family's). */
static int synth_dims(const pl_family *f, const pl_synth_opts *o, pl_synth_dims *d)
{
    if (o->n_layer <= 0 || o->n_embd <= 0 || o->n_head <= 0 || o->n_ctx <= 0)
        return pl_fail("synth: layers, embd, heads and ctx must be positive");
    if (o->n_embd % o->n_head && (!o->head_dim || !f->code->synth_head_options))
        return pl_fail("synth: --embd %d is not divisible by --heads %d", o->n_embd, o->n_head);
    if (!f->code->synth_head_options && (o->n_kv_head || o->head_dim)) {
        char list[256] = "";
        const char *last = NULL;
        for (int i = 0; pl_family_at(i); i++)
            if (pl_family_at(i)->code->synth_head_options) {
                size_t len = strlen(list);
                if (last)
                    snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", last);
                last = pl_family_at(i)->model_type;
            }
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", len ? " and " : "", last ? last : "none");
        return pl_fail("synth: --kv-heads and --head-dim are for %s", list);
    }
    d->head_dim = o->head_dim ? o->head_dim : o->n_embd / o->n_head;
    d->n_kv_head = o->n_kv_head ? o->n_kv_head : o->n_head;
    if (o->n_head % d->n_kv_head)
        return pl_fail("synth: --heads %d is not divisible by --kv-heads %d", o->n_head, d->n_kv_head);
    if (o->dtype != ST_F32 && o->dtype != ST_F16 && o->dtype != ST_BF16)
        return pl_fail("synth: dtype must be f32, f16 or bf16");
    d->torch_dtype = o->dtype == ST_F16 ? "float16" : o->dtype == ST_BF16 ? "bfloat16" : "float32";
    d->n_vocab = o->n_vocab;
    if (o->vocab_from) {
        if (vocab_size_of(o->vocab_from, &d->n_vocab) != PL_OK)
            return PL_ERR;
    } else if (d->n_vocab < 257) {
        return pl_fail("synth: vocab size %d is below 257 (256 byte tokens + <|endoftext|>)", d->n_vocab);
    }
    return f->code->synth_dims(f, o, d);
}

/* The files of OUT_DIR (which exists): tokenizer, weights, and config.json last. */
static int write_dir(const char *out_dir, const pl_synth_opts *o, const pl_synth_dims *d, json_t *cfg,
                     synth_tensor *ts, int n)
{
    if (o->vocab_from) {
        if (copy_file(o->vocab_from, out_dir, "vocab.json") != PL_OK ||
            copy_file(o->vocab_from, out_dir, "merges.txt") != PL_OK)
            return PL_ERR;
    } else if (write_synthetic_tokenizer(out_dir, d->n_vocab) != PL_OK) {
        return PL_ERR;
    }
    if (write_safetensors(out_dir, o, ts, n) != PL_OK)
        return PL_ERR;
    return write_config(out_dir, cfg);
}

/* An option whose setting the family's config.json does not carry is one the family ignores: refused
 * by name, rather than writing a model without it (--sliding-window on llama, --attention-bias on
 * gemma2, --rope-scaling on gpt2 were taken and dropped). */
static int ignored_option(const pl_family *f, const pl_synth_opts *o, json_t *cfg)
{
    const char *bad = NULL;
    if (o->attention_bias && !json_is_true(json_object_get(cfg, "attention_bias")))
        bad = "--attention-bias";
    else if (o->llama3[0] > 0 && !json_is_object(json_object_get(cfg, "rope_scaling")))
        bad = "--rope-scaling";
    else if (o->rotary_pct > 0 && !json_object_get(cfg, "rotary_pct"))
        bad = "--rotary-pct";
    else if (o->sequential && !json_object_get(cfg, "use_parallel_residual"))
        bad = "--sequential-residual";
    else if (o->sliding_window && !json_is_integer(json_object_get(cfg, "sliding_window")))
        bad = "--sliding-window";
    else if (o->rope_theta > 0 && !json_object_get(cfg, "rope_theta") && !json_object_get(cfg, "rotary_emb_base"))
        bad = "--rope-theta";
    else if (o->hf_quirks && !f->code->synth_quirks)
        bad = "--hf-quirks";
    if (bad)
        return pl_fail("synth: %s does not apply to --family %s (it has no such setting: leave the option out)", bad,
                       f->model_type);
    return PL_OK;
}

int pl_synth(const char *out_dir, const pl_synth_opts *o)
{
    const pl_family *f = pl_family_find(o->family ? o->family : pl_family_at(0)->model_type) /* the first row: GPT-2 */;
    if (!f)
        return pl_fail("synth: --family '%s' is not %s", o->family, pl_family_list(", ", " or "));
    pl_synth_dims d = {0};
    if (synth_dims(f, o, &d) != PL_OK)
        return PL_ERR;
    json_t *cfg = synth_config(f, o, &d);
    synth_tensor *ts = NULL;
    int n = 0, rc = cfg ? ignored_option(f, o, cfg) : PL_ERR;
    if (rc == PL_OK)
        rc = tensor_list(f, o, cfg, out_dir, &ts, &n);
    if (rc == PL_OK && mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        rc = pl_fail("%s: cannot create directory: %s", out_dir, strerror(errno));
    struct stat sb;
    if (rc == PL_OK && (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        rc = pl_fail("%s: not a directory", out_dir);
    if (rc == PL_OK)
        rc = write_dir(out_dir, o, &d, cfg, ts, n);
    free(ts);
    json_decref(cfg);
    return rc;
}
