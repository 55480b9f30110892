/* plateau synth: a complete Hugging Face model dir (GPT-2, Llama, Mistral, Qwen2, GPT-NeoX) with seeded
 * random weights.
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

/* GPT-2's vocab.json and merges.txt shape: ids 0..255 are the bytes in bytes_to_unicode's order,
 * then one token per merge, then <|endoftext|> as the last id. Merges grow lowercase words and
 * "Ġ"-prefixed words, so ordinary English text exercises the merge loop. Fixed seed: the tokenizer
 * is the same whatever --seed the weights use. */
static int write_synthetic_tokenizer(const char *out_dir, int n_vocab)
{
    int rc = PL_ERR;
    json_t *vocab = json_object();
    int n_merges = n_vocab - 257, n_tokens = 0;
    char **tokens = pl_calloc((size_t)n_vocab, sizeof *tokens, "synthetic vocab");
    out_file o = {0};
    if (!vocab || !tokens)
        goto done;

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
        tokens[n_tokens] = strdup(s);
        if (!tokens[n_tokens] || json_object_set_new(vocab, s, json_integer(n_tokens)))
            goto oom;
        n_tokens++;
    }

    if (out_open(&o, out_dir, "merges.txt") != PL_OK)
        goto done;
    fprintf(o.fp, "#version: 0.2\n");
    int id_of_byte[256];
    for (int i = 0; i < 256; i++)
        id_of_byte[byte_order[i]] = i;
    rng_t r;
    rng_seed(&r, 0x706c617465617531ull, "synthetic tokenizer");
    long attempts = 0;
    for (int m = 0; m < n_merges; attempts++) {
        const char *left, *right;
        if (m < 26) { /* "Ġ a" ... "Ġ z" first, as in GPT-2 */
            left = tokens[id_of_byte[' ']], right = tokens[id_of_byte['a' + m]];
        } else {
            if (attempts > 100L * n_vocab + 1000) {
                pl_fail("synth: could not build %d distinct merges", n_merges);
                out_close(&o, 0);
                goto done;
            }
            if (n_tokens > 256 && (rng_next(&r) & 3) != 0)
                left = tokens[256 + rng_next(&r) % (uint64_t)(n_tokens - 256)];
            else
                left = tokens[id_of_byte['a' + rng_next(&r) % 26]];
            right = tokens[id_of_byte['a' + rng_next(&r) % 26]];
        }
        size_t len = strlen(left) + strlen(right);
        char *joined = pl_malloc(len + 1, "merge");
        if (!joined)
            goto oom;
        snprintf(joined, len + 1, "%s%s", left, right);
        if (json_object_get(vocab, joined) || len > 64) {
            free(joined);
            continue;
        }
        fprintf(o.fp, "%s %s\n", left, right);
        tokens[n_tokens] = joined;
        if (json_object_set_new(vocab, joined, json_integer(n_tokens)))
            goto oom;
        n_tokens++;
        m++;
    }
    if (out_close(&o, 1) != PL_OK)
        goto done;
    o.fp = NULL;
    if (json_object_set_new(vocab, "<|endoftext|>", json_integer(n_tokens)))
        goto oom;

    if (out_open(&o, out_dir, "vocab.json") != PL_OK)
        goto done;
    int dump_failed = json_dumpf(vocab, o.fp, JSON_COMPACT) != 0;
    if (out_close(&o, !dump_failed) != PL_OK) {
        if (dump_failed)
            pl_fail("%s: write failed", o.tmp);
        goto done;
    }
    o.fp = NULL;
    rc = PL_OK;
    goto done;
oom:
    pl_fail("out of memory (synthetic tokenizer)");
    if (o.fp)
        out_close(&o, 0);
done:
    if (tokens)
        for (int i = 0; i < n_tokens; i++)
            free(tokens[i]);
    free(tokens);
    json_decref(vocab);
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

typedef enum { K_WEIGHT, K_PROJ, K_WPE, K_LN_W, K_BIAS, K_MASK, K_MASKED_BIAS } init_kind;

typedef struct {
    char name[96];  /* as written (with the quirks' prefix) */
    char seed_name[96]; /* the stream: unprefixed, and wte's for the tied lm_head */
    init_kind kind;
    st_dtype dtype;
    int ndim;
    int64_t shape[4];
    uint64_t numel, begin, end;
} synth_tensor;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const synth_tensor *)a)->name, ((const synth_tensor *)b)->name);
}

static void add_tensor(synth_tensor *list, int *n, const char *prefix, const char *name, init_kind kind,
                       st_dtype dtype, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    synth_tensor *t = &list[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
    snprintf(t->seed_name, sizeof t->seed_name, "%s", name);
    t->kind = kind;
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    t->numel = 1;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = dims[i], t->numel *= (uint64_t)dims[i];
}

static void fill_values(const synth_tensor *t, uint64_t seed, int n_layer, float *out)
{
    rng_t r;
    rng_seed(&r, seed, t->seed_name);
    double proj_std = 0.02 / sqrt(2.0 * n_layer);
    for (uint64_t i = 0; i < t->numel; i++) {
        switch (t->kind) {
        case K_WEIGHT: out[i] = (float)(0.02 * rng_normal(&r)); break;
        case K_PROJ: out[i] = (float)(proj_std * rng_normal(&r)); break;
        case K_WPE: out[i] = (float)(0.01 * rng_normal(&r)); break;
        case K_LN_W: out[i] = (float)(1.0 + 0.05 * rng_normal(&r)); break;
        case K_BIAS: out[i] = (float)(0.02 * rng_normal(&r)); break;
        case K_MASK: { /* HF's causal mask [1, 1, N, N]: lower triangle */
            uint64_t n = (uint64_t)t->shape[3];
            out[i] = (i % n) <= (i / n) % n ? 1.0f : 0.0f;
            break;
        }
        case K_MASKED_BIAS: out[i] = -1e4f; break;
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

/* The tensor list of a GPT-2 dir (today's layout, with or without the HF quirks). */
static int gpt2_tensors(const pl_synth_opts *o, int n_vocab, synth_tensor *ts)
{
    int L = o->n_layer, n = 0;
    int64_t C = o->n_embd, N = o->n_ctx, V = n_vocab;
    const char *prefix = o->hf_quirks ? "transformer." : "";
    st_dtype dt = o->dtype;
    add_tensor(ts, &n, prefix, "wte.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
    add_tensor(ts, &n, prefix, "wpe.weight", K_WPE, dt, 2, N, C, 0, 0);
    for (int l = 0; l < L; l++) {
        char nm[64];
#define BLOCK(suffix, kind, ndim, d0, d1) \
    (snprintf(nm, sizeof nm, "h.%d.%s", l, suffix), add_tensor(ts, &n, prefix, nm, kind, dt, ndim, d0, d1, 0, 0))
        BLOCK("ln_1.weight", K_LN_W, 1, C, 0);
        BLOCK("ln_1.bias", K_BIAS, 1, C, 0);
        BLOCK("attn.c_attn.weight", K_WEIGHT, 2, C, 3 * C);
        BLOCK("attn.c_attn.bias", K_BIAS, 1, 3 * C, 0);
        BLOCK("attn.c_proj.weight", K_PROJ, 2, C, C);
        BLOCK("attn.c_proj.bias", K_BIAS, 1, C, 0);
        BLOCK("ln_2.weight", K_LN_W, 1, C, 0);
        BLOCK("ln_2.bias", K_BIAS, 1, C, 0);
        BLOCK("mlp.c_fc.weight", K_WEIGHT, 2, C, 4 * C);
        BLOCK("mlp.c_fc.bias", K_BIAS, 1, 4 * C, 0);
        BLOCK("mlp.c_proj.weight", K_PROJ, 2, 4 * C, C);
        BLOCK("mlp.c_proj.bias", K_BIAS, 1, C, 0);
#undef BLOCK
        if (o->hf_quirks) {
            snprintf(nm, sizeof nm, "h.%d.attn.bias", l);
            add_tensor(ts, &n, prefix, nm, K_MASK, ST_BOOL, 4, 1, 1, N, N);
            snprintf(nm, sizeof nm, "h.%d.attn.masked_bias", l);
            add_tensor(ts, &n, prefix, nm, K_MASKED_BIAS, ST_F32, 0, 0, 0, 0, 0);
        }
    }
    add_tensor(ts, &n, prefix, "ln_f.weight", K_LN_W, dt, 1, C, 0, 0, 0);
    add_tensor(ts, &n, prefix, "ln_f.bias", K_BIAS, dt, 1, C, 0, 0, 0);
    if (o->hf_quirks) { /* HF writes the tied head unprefixed, with wte's values */
        add_tensor(ts, &n, "", "lm_head.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
        snprintf(ts[n - 1].seed_name, sizeof ts[n - 1].seed_name, "wte.weight");
    }
    return n;
}

/* Llama, Mistral, Qwen2 (HF LlamaForCausalLM names). */
static int llama_tensors(const pl_synth_opts *o, int n_vocab, int hd, int kvh, int mlp, synth_tensor *ts)
{
    int n = 0, qwen2 = !strcmp(o->family, "qwen2");
    int64_t C = o->n_embd, V = n_vocab, qd = (int64_t)o->n_head * hd, kvd = (int64_t)kvh * hd, I = mlp;
    st_dtype dt = o->dtype;
    add_tensor(ts, &n, "", "model.embed_tokens.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
    for (int l = 0; l < o->n_layer; l++) {
        char nm[96];
#define BLOCK(suffix, kind, ndim, d0, d1)                                   \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix), \
     add_tensor(ts, &n, "", nm, kind, dt, ndim, d0, d1, 0, 0))
        BLOCK("input_layernorm.weight", K_LN_W, 1, C, 0);
        BLOCK("self_attn.q_proj.weight", K_WEIGHT, 2, qd, C);
        BLOCK("self_attn.k_proj.weight", K_WEIGHT, 2, kvd, C);
        BLOCK("self_attn.v_proj.weight", K_WEIGHT, 2, kvd, C);
        BLOCK("self_attn.o_proj.weight", K_PROJ, 2, C, qd);
        if (qwen2 || o->attention_bias) {
            BLOCK("self_attn.q_proj.bias", K_BIAS, 1, qd, 0);
            BLOCK("self_attn.k_proj.bias", K_BIAS, 1, kvd, 0);
            BLOCK("self_attn.v_proj.bias", K_BIAS, 1, kvd, 0);
        }
        if (o->attention_bias)
            BLOCK("self_attn.o_proj.bias", K_BIAS, 1, C, 0);
        BLOCK("post_attention_layernorm.weight", K_LN_W, 1, C, 0);
        BLOCK("mlp.gate_proj.weight", K_WEIGHT, 2, I, C);
        BLOCK("mlp.up_proj.weight", K_WEIGHT, 2, I, C);
        BLOCK("mlp.down_proj.weight", K_PROJ, 2, C, I);
#undef BLOCK
    }
    add_tensor(ts, &n, "", "model.norm.weight", K_LN_W, dt, 1, C, 0, 0, 0);
    if (!o->tied)
        add_tensor(ts, &n, "", "lm_head.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
    return n;
}

/* GPT-NeoX (HF GPTNeoXForCausalLM names). */
static int neox_tensors(const pl_synth_opts *o, int n_vocab, int mlp, synth_tensor *ts)
{
    int n = 0;
    int64_t C = o->n_embd, V = n_vocab, I = mlp;
    st_dtype dt = o->dtype;
    add_tensor(ts, &n, "", "gpt_neox.embed_in.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
    for (int l = 0; l < o->n_layer; l++) {
        char nm[96];
#define BLOCK(suffix, kind, ndim, d0, d1)                                   \
    (snprintf(nm, sizeof nm, "gpt_neox.layers.%d.%s", l, suffix), \
     add_tensor(ts, &n, "", nm, kind, dt, ndim, d0, d1, 0, 0))
        BLOCK("input_layernorm.weight", K_LN_W, 1, C, 0);
        BLOCK("input_layernorm.bias", K_BIAS, 1, C, 0);
        BLOCK("post_attention_layernorm.weight", K_LN_W, 1, C, 0);
        BLOCK("post_attention_layernorm.bias", K_BIAS, 1, C, 0);
        BLOCK("attention.query_key_value.weight", K_WEIGHT, 2, 3 * C, C);
        BLOCK("attention.query_key_value.bias", K_BIAS, 1, 3 * C, 0);
        BLOCK("attention.dense.weight", K_PROJ, 2, C, C);
        BLOCK("attention.dense.bias", K_BIAS, 1, C, 0);
        BLOCK("mlp.dense_h_to_4h.weight", K_WEIGHT, 2, I, C);
        BLOCK("mlp.dense_h_to_4h.bias", K_BIAS, 1, I, 0);
        BLOCK("mlp.dense_4h_to_h.weight", K_PROJ, 2, C, I);
        BLOCK("mlp.dense_4h_to_h.bias", K_BIAS, 1, C, 0);
#undef BLOCK
    }
    add_tensor(ts, &n, "", "gpt_neox.final_layer_norm.weight", K_LN_W, dt, 1, C, 0, 0, 0);
    add_tensor(ts, &n, "", "gpt_neox.final_layer_norm.bias", K_BIAS, dt, 1, C, 0, 0, 0);
    if (!o->tied)
        add_tensor(ts, &n, "", "embed_out.weight", K_WEIGHT, dt, 2, V, C, 0, 0);
    return n;
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
static int write_safetensors(const char *out_dir, const pl_synth_opts *o, int n_vocab, int hd, int kvh, int mlp)
{
    const char *family = o->family ? o->family : "gpt2";
    synth_tensor *ts = pl_calloc((size_t)(16 * o->n_layer + 8), sizeof *ts, "synth tensor list");
    if (!ts)
        return PL_ERR;
    int n = !strcmp(family, "gpt2")       ? gpt2_tensors(o, n_vocab, ts)
            : !strcmp(family, "gpt_neox") ? neox_tensors(o, n_vocab, mlp, ts)
                                          : llama_tensors(o, n_vocab, hd, kvh, mlp, ts);
    qsort(ts, (size_t)n, sizeof *ts, by_name);
    int shards = o->n_shards > 1 ? o->n_shards : 1, rc = PL_OK;
    if (shards > n)
        shards = n;
    if (shards == 1) {
        rc = write_one_safetensors(out_dir, "model.safetensors", o, ts, n);
        free(ts);
        return rc;
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
    free(ts);
    return rc;
}

/* config.json of a Llama-family or GPT-NeoX dir, with every key plateau reads. */
static json_t *decoder_config(const pl_synth_opts *o, int n_vocab, int hd, int kvh, int mlp)
{
    const char *family = o->family;
    double theta = o->rope_theta > 0 ? o->rope_theta : 10000.0;
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:i}", "model_type", family, "hidden_size",
                            o->n_embd, "intermediate_size", mlp, "num_hidden_layers", o->n_layer,
                            "num_attention_heads", o->n_head, "vocab_size", n_vocab, "max_position_embeddings",
                            o->n_ctx, "tie_word_embeddings", o->tied, "bos_token_id", n_vocab - 1, "eos_token_id",
                            n_vocab - 1);
    if (!cfg)
        return NULL;
    if (!strcmp(family, "gpt_neox")) {
        json_object_set_new(cfg, "architectures", json_pack("[s]", "GPTNeoXForCausalLM"));
        json_object_set_new(cfg, "hidden_act", json_string("gelu"));
        json_object_set_new(cfg, "layer_norm_eps", json_real(1e-5));
        json_object_set_new(cfg, "rotary_pct", json_real(o->rotary_pct > 0 ? o->rotary_pct : 0.25));
        json_object_set_new(cfg, "rotary_emb_base", json_real(theta));
        json_object_set_new(cfg, "use_parallel_residual", json_boolean(!o->sequential));
        json_object_set_new(cfg, "attention_bias", json_true());
        return cfg;
    }
    const char *arch = !strcmp(family, "llama") ? "LlamaForCausalLM"
                       : !strcmp(family, "mistral") ? "MistralForCausalLM" : "Qwen2ForCausalLM";
    json_object_set_new(cfg, "architectures", json_pack("[s]", arch));
    json_object_set_new(cfg, "hidden_act", json_string("silu"));
    json_object_set_new(cfg, "num_key_value_heads", json_integer(kvh));
    if (o->head_dim)
        json_object_set_new(cfg, "head_dim", json_integer(hd));
    json_object_set_new(cfg, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(cfg, "rope_theta", json_real(theta));
    if (o->llama3[0] > 0)
        json_object_set_new(cfg, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", o->llama3[0],
                                      "low_freq_factor", o->llama3[1], "high_freq_factor", o->llama3[2],
                                      "original_max_position_embeddings", (int)o->llama3[3]));
    else
        json_object_set_new(cfg, "rope_scaling", json_null());
    if (!strcmp(family, "llama"))
        json_object_set_new(cfg, "attention_bias", json_boolean(o->attention_bias));
    if (!strcmp(family, "mistral"))
        json_object_set_new(cfg, "sliding_window", o->sliding_window ? json_integer(o->sliding_window) : json_null());
    if (!strcmp(family, "qwen2")) {
        json_object_set_new(cfg, "use_sliding_window", json_boolean(o->sliding_window > 0));
        json_object_set_new(cfg, "sliding_window", json_integer(o->sliding_window ? o->sliding_window : o->n_ctx));
    }
    return cfg;
}

static int write_config(const char *out_dir, const pl_synth_opts *o, int n_vocab, int hd, int kvh, int mlp)
{
    const char *dtype_name = o->dtype == ST_F16 ? "float16" : o->dtype == ST_BF16 ? "bfloat16" : "float32";
    json_t *cfg;
    if (o->family && strcmp(o->family, "gpt2")) {
        cfg = decoder_config(o, n_vocab, hd, kvh, mlp);
        if (cfg) {
            json_object_set_new(cfg, "torch_dtype", json_string(dtype_name));
            json_object_set_new(cfg, "plateau_synthetic", json_true());
            json_object_set_new(cfg, "plateau_seed", json_integer((json_int_t)o->seed));
            json_object_set_new(cfg, "plateau_init", json_string("normal(0,0.02); output projections "
                                                                 "0.02/sqrt(2L); norms 1+0.05z; biases 0.02z"));
        }
    } else
    cfg = json_pack(
        "{s:s, s:[s], s:f, s:i, s:f, s:i, s:f, s:f, s:s, s:i, s:i, s:i, s:n, s:i, s:i, s:f, s:s, s:i, s:b, "
        "s:I, s:s, s:b}",
        "activation_function", "gelu_new", "architectures", "GPT2LMHeadModel", "attn_pdrop", 0.1,
        "bos_token_id", n_vocab - 1, "embd_pdrop", 0.1, "eos_token_id", n_vocab - 1, "initializer_range", 0.02,
        "layer_norm_epsilon", 1e-5, "model_type", "gpt2", "n_ctx", o->n_ctx, "n_embd", o->n_embd, "n_head",
        o->n_head, "n_inner", "n_layer", o->n_layer, "n_positions", o->n_ctx, "resid_pdrop", 0.1,
        "torch_dtype", dtype_name, "vocab_size", n_vocab, "plateau_synthetic", 1, "plateau_seed",
        (json_int_t)o->seed, "plateau_init", "normal(0,0.02); c_proj 0.02/sqrt(2L); wpe 0.01; ln 1+0.05z; bias 0.02z",
        "plateau_hf_quirks", o->hf_quirks);
    if (!cfg)
        return pl_fail("synth: cannot build config.json");
    out_file of;
    if (out_open(&of, out_dir, "config.json") != PL_OK) {
        json_decref(cfg);
        return PL_ERR;
    }
    int failed = json_dumpf(cfg, of.fp, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0;
    fputc('\n', of.fp);
    json_decref(cfg);
    return out_close(&of, !failed);
}

int pl_synth(const char *out_dir, const pl_synth_opts *o)
{
    const char *family = o->family ? o->family : "gpt2";
    int gpt2 = !strcmp(family, "gpt2"), neox = !strcmp(family, "gpt_neox");
    if (!gpt2 && !neox && strcmp(family, "llama") && strcmp(family, "mistral") && strcmp(family, "qwen2"))
        return pl_fail("synth: --family '%s' is not gpt2, llama, mistral, qwen2 or gpt_neox", family);
    if (o->n_layer <= 0 || o->n_embd <= 0 || o->n_head <= 0 || o->n_ctx <= 0)
        return pl_fail("synth: layers, embd, heads and ctx must be positive");
    if (o->n_embd % o->n_head && (!o->head_dim || gpt2 || neox))
        return pl_fail("synth: --embd %d is not divisible by --heads %d", o->n_embd, o->n_head);
    int hd = o->head_dim ? o->head_dim : o->n_embd / o->n_head, kvh = o->n_kv_head ? o->n_kv_head : o->n_head;
    int mlp = o->d_mlp ? o->d_mlp : neox ? 4 * o->n_embd : (8 * o->n_embd / 3 + 7) / 8 * 8;
    if (o->n_head % kvh)
        return pl_fail("synth: --heads %d is not divisible by --kv-heads %d", o->n_head, kvh);
    if (neox && (int)(hd * (o->rotary_pct > 0 ? o->rotary_pct : 0.25)) % 2)
        return pl_fail("synth: head size %d x rotary_pct %g gives an odd number of rotary dims", hd,
                       o->rotary_pct > 0 ? o->rotary_pct : 0.25);
    if ((gpt2 || neox) && (o->n_kv_head || o->head_dim))
        return pl_fail("synth: --kv-heads and --head-dim are for llama, mistral and qwen2");
    if (o->dtype != ST_F32 && o->dtype != ST_F16 && o->dtype != ST_BF16)
        return pl_fail("synth: dtype must be f32, f16 or bf16");
    int n_vocab = o->n_vocab;
    if (o->vocab_from) {
        if (vocab_size_of(o->vocab_from, &n_vocab) != PL_OK)
            return PL_ERR;
    } else if (n_vocab < 257) {
        return pl_fail("synth: vocab size %d is below 257 (256 byte tokens + <|endoftext|>)", n_vocab);
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        return pl_fail("%s: cannot create directory: %s", out_dir, strerror(errno));
    struct stat sb;
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return pl_fail("%s: not a directory", out_dir);

    /* config.json goes last: a dir that has one is complete. */
    if (o->vocab_from) {
        if (copy_file(o->vocab_from, out_dir, "vocab.json") != PL_OK ||
            copy_file(o->vocab_from, out_dir, "merges.txt") != PL_OK)
            return PL_ERR;
    } else if (write_synthetic_tokenizer(out_dir, n_vocab) != PL_OK) {
        return PL_ERR;
    }
    if (write_safetensors(out_dir, o, n_vocab, hd, kvh, mlp) != PL_OK)
        return PL_ERR;
    return write_config(out_dir, o, n_vocab, hd, kvh, mlp);
}
