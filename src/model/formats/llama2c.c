/* llama2.c checkpoints (Karpathy's run.c format): a header, then float32 tensors in a fixed order.
 *
 *   version 0 (legacy): 7 int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative:
 *     an untied classifier follows), seq_len; then token_embedding [V, dim], rms_att [L, dim],
 *     wq [L, dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim],
 *     w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
 *     freq_cis_real and freq_cis_imag [seq_len, head_size/2] each (skipped: plateau computes RoPE),
 *     then wcls [V, dim] when untied.
 *   version 1: uint32 magic "ak42" (0x616b3432), int32 version 1, the same 7 int32 (vocab_size
 *     positive), uint8 shared_classifier, zero padding to 256 bytes; then rms_att [L, dim],
 *     rms_ffn [L, dim], rms_final [dim], token_embedding, wq, wk, wv, wo, w1, w2, w3 as above, then
 *     wcls when not shared (export.py's version1_export).
 *   version 2 (int8, Q8_0 groups) is refused.
 * Weights are [out, in] (y = W x), so the model is the decoder of families/decoder.h with
 * RMSNorm eps 1e-5, SwiGLU, interleaved-pair RoPE (theta 10000) over whole heads, as run.c computes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../families/decoder.h"
#include "llama2c.h"
#include "plateau/error.h"

#define LLAMA2C_MAGIC 0x616b3432u
#define V1_HEADER_BYTES 256
#define MAX_DIM 65536
#define MAX_LAYER 4096
#define MAX_VOCAB (1 << 22)
#define MAX_CTX (1 << 24)

static int32_t le32(const uint8_t *p) { return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24); }

int pl_llama2c_parse_header(const char *path, const uint8_t *bytes, size_t size, llama2c_header *h)
{
    memset(h, 0, sizeof *h);
    if (size < 28)
        return pl_fail("%s: %zu bytes is too short for a llama2.c checkpoint header", path, size);
    const uint8_t *p = bytes;
    if ((uint32_t)le32(bytes) == LLAMA2C_MAGIC) {
        if (size < 37)
            return pl_fail("%s: %zu bytes is too short for a llama2.c version-1 header", path, size);
        h->version = le32(bytes + 4);
        if (h->version == 2)
            return pl_fail("%s: llama2.c version 2 (int8 quantised) checkpoints are not supported: export with "
                           "--version 1 (float32)", path);
        if (h->version != 1)
            return pl_fail("%s: llama2.c checkpoint version %d is not supported (0 legacy or 1 float32)", path,
                           h->version);
        p = bytes + 8;
        h->header_bytes = V1_HEADER_BYTES;
    } else {
        h->version = 0;
        h->header_bytes = 28;
    }
    h->dim = le32(p), h->hidden = le32(p + 4), h->n_layers = le32(p + 8), h->n_heads = le32(p + 12);
    h->n_kv_heads = le32(p + 16), h->vocab = le32(p + 20), h->seq_len = le32(p + 24);
    if (h->version == 0) {
        h->shared = h->vocab > 0;
        if (h->vocab < 0 && h->vocab != INT32_MIN)
            h->vocab = -h->vocab;
    } else {
        if (bytes[36] > 1)
            return pl_fail("%s: header: shared_classifier byte is %d (0 or 1)", path, bytes[36]);
        h->shared = bytes[36];
    }
    struct {
        const char *name;
        int v, hi;
    } fields[] = {{"dim", h->dim, MAX_DIM},           {"hidden_dim", h->hidden, 16 * MAX_DIM},
                  {"n_layers", h->n_layers, MAX_LAYER}, {"n_heads", h->n_heads, MAX_DIM},
                  {"n_kv_heads", h->n_kv_heads, MAX_DIM}, {"vocab_size", h->vocab, MAX_VOCAB},
                  {"seq_len", h->seq_len, MAX_CTX}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].v <= 0 || fields[i].v > fields[i].hi)
            return pl_fail("%s: header (llama2.c version %d): %s = %d is outside 1..%d: not a llama2.c checkpoint?",
                           path, h->version, fields[i].name, fields[i].v, fields[i].hi);
    if (h->dim % h->n_heads)
        return pl_fail("%s: header: dim = %d is not divisible by n_heads = %d", path, h->dim, h->n_heads);
    if (h->n_heads % h->n_kv_heads)
        return pl_fail("%s: header: n_heads = %d is not divisible by n_kv_heads = %d", path, h->n_heads, h->n_kv_heads);
    int hs = h->dim / h->n_heads;
    if (hs % 2)
        return pl_fail("%s: header: head size %d is odd: rotary embedding rotates pairs", path, hs);
    /* every count below fits in 64 bits by the caps above */
    uint64_t D = (uint64_t)h->dim, F = (uint64_t)h->hidden, L = (uint64_t)h->n_layers, V = (uint64_t)h->vocab;
    uint64_t KV = (uint64_t)h->n_kv_heads * (uint64_t)hs;
    h->floats = V * D + L * (2 * D + 2 * D * D + 2 * KV * D + 3 * F * D) + D + (h->shared ? 0 : V * D);
    if (h->version == 0)
        h->floats += (uint64_t)h->seq_len * (uint64_t)hs; /* freq_cis_real + freq_cis_imag, hs/2 each */
    uint64_t want = h->header_bytes + 4 * h->floats;
    if (want != size)
        return pl_fail("%s: the header (llama2.c version %d: dim=%d, hidden_dim=%d, n_layers=%d, n_heads=%d, "
                       "n_kv_heads=%d, vocab_size=%d%s, seq_len=%d) needs %llu bytes, the file has %zu: %s",
                       path, h->version, h->dim, h->hidden, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab,
                       h->shared ? "" : " untied", h->seq_len, (unsigned long long)want, size,
                       want > size ? "truncated" : "trailing bytes (not this header's checkpoint)");
    return PL_OK;
}

/* L consecutive [rows, cols] matrices starting at *p; each layer's pointer goes to dst(l). */
typedef struct {
    pl_model *m;
    const char *path;
    const float *p; /* next float in the file */
} cursor;

static const float *take(cursor *c, const char *name, size_t n)
{
    const float *out = pl_model_weight_f32(c->m, c->path, name, ST_F32, c->p, n);
    c->p += n;
    return out;
}

/* One tensor per layer: block field at OFFSET of each pl_decoder_block. */
static int take_layers(cursor *c, pl_decoder *d, size_t offset, const char *name, size_t n)
{
    char label[64];
    for (int l = 0; l < d->cfg.n_layer; l++) {
        snprintf(label, sizeof label, "layers.%d.%s", l, name);
        const float **dst = (const float **)(void *)((char *)&d->blocks[l] + offset);
        if (!(*dst = take(c, label, n)))
            return PL_ERR;
    }
    return PL_OK;
}

int pl_llama2c_open(pl_model *m, const char *path)
{
    const void *map;
    size_t size;
    llama2c_header h;
    if (pl_model_map_file(m, path, NULL, &map, &size) != PL_OK)
        return PL_ERR;
    static const uint8_t none[1];
    if (pl_llama2c_parse_header(path, map ? map : none, size, &h) != PL_OK)
        return PL_ERR;
    pl_decoder *d = pl_decoder_new(m, h.n_layers);
    if (!d)
        return PL_ERR;
    pl_decoder_config *cfg = &d->cfg;
    int hs = h.dim / h.n_heads;
    cfg->d_model = h.dim, cfg->n_head = h.n_heads, cfg->n_kv_head = h.n_kv_heads, cfg->head_dim = hs;
    cfg->d_mlp = h.hidden, cfg->n_vocab = h.vocab, cfg->n_ctx = h.seq_len;
    cfg->norm = PL_NORM_RMSNORM, cfg->norm_eps = 1e-5f, cfg->mlp = PL_MLP_SWIGLU, cfg->parallel_residual = 0;
    cfg->rot_dim = hs, cfg->rope_interleaved = 1, cfg->tied = h.shared;
    if (pl_decoder_rope_default(cfg, 10000.0))
        return PL_ERR;

    size_t D = (size_t)h.dim, F = (size_t)h.hidden, V = (size_t)h.vocab, KV = (size_t)h.n_kv_heads * hs;
    cursor c = {m, path, (const float *)(const void *)((const uint8_t *)map + h.header_bytes)};
#define FIELD(f) offsetof(pl_decoder_block, f)
    int rc;
    if (h.version == 0) {
        rc = !(d->embed = take(&c, "token_embedding_table", V * D)) ||
             take_layers(&c, d, FIELD(norm1_w), "rms_att_weight", D) || take_layers(&c, d, FIELD(q.w), "wq", D * D) ||
             take_layers(&c, d, FIELD(k.w), "wk", KV * D) || take_layers(&c, d, FIELD(v.w), "wv", KV * D) ||
             take_layers(&c, d, FIELD(o.w), "wo", D * D) || take_layers(&c, d, FIELD(norm2_w), "rms_ffn_weight", D) ||
             take_layers(&c, d, FIELD(gate.w), "w1", F * D) || take_layers(&c, d, FIELD(down.w), "w2", D * F) ||
             take_layers(&c, d, FIELD(up.w), "w3", F * D) || !(d->normf_w = take(&c, "rms_final_weight", D));
        c.p += (size_t)h.seq_len * hs; /* freq_cis_real, freq_cis_imag: run.c computes RoPE itself too */
    } else {
        rc = take_layers(&c, d, FIELD(norm1_w), "attention_norm", D) ||
             take_layers(&c, d, FIELD(norm2_w), "ffn_norm", D) || !(d->normf_w = take(&c, "norm", D)) ||
             !(d->embed = take(&c, "tok_embeddings", V * D)) || take_layers(&c, d, FIELD(q.w), "wq", D * D) ||
             take_layers(&c, d, FIELD(k.w), "wk", KV * D) || take_layers(&c, d, FIELD(v.w), "wv", KV * D) ||
             take_layers(&c, d, FIELD(o.w), "wo", D * D) || take_layers(&c, d, FIELD(gate.w), "w1", F * D) ||
             take_layers(&c, d, FIELD(down.w), "w2", D * F) || take_layers(&c, d, FIELD(up.w), "w3", F * D);
    }
#undef FIELD
    if (rc)
        return PL_ERR;
    d->unembed = h.shared ? d->embed : take(&c, "wcls", V * D);
    if (!d->unembed)
        return PL_ERR;
    pl_decoder_set_info(m, "llama", "llama2c", 0);
    pl_model_describe_add(m, "llama2c_version", "%d (%s)", h.version,
                          h.version == 0 ? "legacy header; freq_cis tables skipped" : "ak42 float32");
    pl_model_describe_add(m, "rope_theta", "10000");
    pl_model_describe_add(m, "dtypes", "F32 (llama2.c)");
    pl_model_describe_add(m, "file_bytes", "%zu", size);
    return PL_OK;
}
