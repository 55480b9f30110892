/* Loading a Hugging Face GPT-2 model dir: config.json + model.safetensors.
 *
 * Every tensor in the file must be a known GPT-2 tensor whose shape follows from config.json, and
 * every required tensor must be present: a stranger's file either loads exactly or fails with one
 * line naming the file, the tensor and the problem. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "plateau/error.h"
#include "plateau/model.h"
#include "plateau/safetensors.h"

/* Caps far above GPT-2 xl (48/25/1600/1024/50257) that keep every size computation inside int64. */
#define MAX_LAYER 4096
#define MAX_EMBD 65536
#define MAX_CTX (1 << 20)
#define MAX_VOCAB (1 << 22)

static int config_int(const json_t *root, const char *path, const char *key, long hi, int *out)
{
    const json_t *v = json_object_get(root, key);
    if (!v)
        return pl_fail("%s: key \"%s\" is missing", path, key);
    if (!json_is_integer(v))
        return pl_fail("%s: key \"%s\" is not an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x <= 0)
        return pl_fail("%s: key \"%s\" must be positive (found %" JSON_INTEGER_FORMAT ")", path, key, x);
    if (x > hi)
        return pl_fail("%s: key \"%s\" = %" JSON_INTEGER_FORMAT " exceeds the supported maximum %ld", path,
                       key, x, hi);
    *out = (int)x;
    return PL_OK;
}

int pl_config_load(pl_config *cfg, const char *path)
{
    memset(cfg, 0, sizeof *cfg);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return pl_fail("%s: cannot open: %s", path, strerror(errno));
    json_error_t jerr;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (!root)
        return pl_fail("%s: not valid JSON: %s (line %d, column %d)", path, jerr.text, jerr.line, jerr.column);
    int rc = PL_ERR;
    if (!json_is_object(root)) {
        pl_fail("%s: not a JSON object", path);
        goto done;
    }
    if (config_int(root, path, "n_layer", MAX_LAYER, &cfg->n_layer) ||
        config_int(root, path, "n_head", MAX_EMBD, &cfg->n_head) ||
        config_int(root, path, "n_embd", MAX_EMBD, &cfg->n_embd) ||
        config_int(root, path, "vocab_size", MAX_VOCAB, &cfg->n_vocab))
        goto done;
    /* HF sizes wpe by n_positions; older exports only have n_ctx. */
    if (config_int(root, path, json_object_get(root, "n_positions") ? "n_positions" : "n_ctx", MAX_CTX,
                   &cfg->n_ctx)) {
        if (!json_object_get(root, "n_positions") && !json_object_get(root, "n_ctx"))
            pl_fail("%s: key \"n_positions\" (or \"n_ctx\") is missing", path);
        goto done;
    }
    if (cfg->n_embd % cfg->n_head != 0) {
        pl_fail("%s: key \"n_embd\" = %d is not divisible by \"n_head\" = %d", path, cfg->n_embd, cfg->n_head);
        goto done;
    }
    cfg->ln_eps = 1e-5f;
    const json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (eps) {
        double e = json_number_value(eps);
        if (!json_is_number(eps) || !(e > 0) || !isfinite(e) || e >= 1) {
            pl_fail("%s: key \"layer_norm_epsilon\" must be a number in (0, 1)", path);
            goto done;
        }
        cfg->ln_eps = (float)e;
    }
    /* Keys that would change the math plateau computes: refuse rather than answer wrongly. */
    const json_t *v = json_object_get(root, "model_type");
    if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "gpt2"))) {
        pl_fail("%s: key \"model_type\" is %s, not \"gpt2\"", path,
                json_is_string(v) ? json_string_value(v) : "not a string");
        goto done;
    }
    v = json_object_get(root, "activation_function");
    if (v && !(json_is_string(v) && (!strcmp(json_string_value(v), "gelu_new") ||
                                     !strcmp(json_string_value(v), "gelu_pytorch_tanh")))) {
        pl_fail("%s: key \"activation_function\" is %.40s: plateau computes GPT-2's tanh GELU (\"gelu_new\")",
                path, json_is_string(v) ? json_string_value(v) : "not a string");
        goto done;
    }
    v = json_object_get(root, "n_inner");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 4 * (json_int_t)cfg->n_embd)) {
        pl_fail("%s: key \"n_inner\" must be null or 4 * n_embd = %d", path, 4 * cfg->n_embd);
        goto done;
    }
    v = json_object_get(root, "scale_attn_weights");
    if (v && !json_is_true(v)) {
        pl_fail("%s: key \"scale_attn_weights\" must be true (GPT-2 scales attention by 1/sqrt(head size))", path);
        goto done;
    }
    v = json_object_get(root, "scale_attn_by_inverse_layer_idx");
    if (v && !json_is_false(v)) {
        pl_fail("%s: key \"scale_attn_by_inverse_layer_idx\" must be false (not GPT-2's attention)", path);
        goto done;
    }
    cfg->synthetic = json_is_true(json_object_get(root, "plateau_synthetic"));
    rc = PL_OK;
done:
    json_decref(root);
    return rc;
}

size_t pl_model_n_params(const pl_config *cfg)
{
    size_t C = (size_t)cfg->n_embd, L = (size_t)cfg->n_layer;
    size_t per_block = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C);
    return (size_t)cfg->n_vocab * C + (size_t)cfg->n_ctx * C + L * per_block + 2 * C;
}

/* The tensors of one block, in pl_block's field order. */
enum { B_LN1_W, B_LN1_B, B_ATTN_W, B_ATTN_B, B_APROJ_W, B_APROJ_B, B_LN2_W, B_LN2_B, B_FC_W, B_FC_B,
       B_MPROJ_W, B_MPROJ_B, B_COUNT };
static const char *block_names[B_COUNT] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
};
/* Global tensors follow the L * B_COUNT block slots. */
enum { G_WTE, G_WPE, G_LNF_W, G_LNF_B, G_LM_HEAD, G_COUNT };
static const char *global_names[G_COUNT] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias",
                                            "lm_head.weight"};

/* Expected shape of a slot, and the config keys it follows from (for messages). */
static int expected_shape(const pl_config *cfg, int L_slots, int slot, int64_t shape[2], const char **why)
{
    int64_t C = cfg->n_embd;
    static char buf[128];
    if (slot >= L_slots) {
        switch (slot - L_slots) {
        case G_WTE:
        case G_LM_HEAD:
            shape[0] = cfg->n_vocab, shape[1] = C;
            snprintf(buf, sizeof buf, "vocab_size=%d, n_embd=%d", cfg->n_vocab, cfg->n_embd);
            *why = buf;
            return 2;
        case G_WPE:
            shape[0] = cfg->n_ctx, shape[1] = C;
            snprintf(buf, sizeof buf, "n_positions=%d, n_embd=%d", cfg->n_ctx, cfg->n_embd);
            *why = buf;
            return 2;
        default:
            break; /* ln_f: [C] */
        }
    }
    snprintf(buf, sizeof buf, "n_embd=%d", cfg->n_embd);
    *why = buf;
    int b = slot >= L_slots ? -1 : slot % B_COUNT;
    switch (b) {
    case B_ATTN_W: shape[0] = C, shape[1] = 3 * C; return 2;
    case B_ATTN_B: shape[0] = 3 * C; return 1;
    case B_APROJ_W: shape[0] = C, shape[1] = C; return 2;
    case B_FC_W: shape[0] = C, shape[1] = 4 * C; return 2;
    case B_FC_B: shape[0] = 4 * C; return 1;
    case B_MPROJ_W: shape[0] = 4 * C, shape[1] = C; return 2;
    default: shape[0] = C; return 1;
    }
}

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape)
{
    int len = snprintf(out, cap, "[");
    for (int i = 0; i < ndim && (size_t)len < cap; i++)
        len += snprintf(out + len, cap - (size_t)len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if ((size_t)len < cap)
        snprintf(out + len, cap - (size_t)len, "]");
}

/* Map a file tensor name to its slot: >= 0 a slot, -1 an ignored buffer, -2 unexpected (message
 * recorded). */
static int classify(const char *st_path, const pl_config *cfg, const char *full_name)
{
    const char *name = full_name;
    if (!strncmp(name, "transformer.", 12))
        name += 12;
    int L_slots = cfg->n_layer * B_COUNT;
    for (int g = 0; g < G_COUNT; g++)
        if (!strcmp(name, global_names[g]))
            return L_slots + g;
    if (!strncmp(name, "h.", 2) && name[2] >= '0' && name[2] <= '9') {
        const char *p = name + 2;
        long layer = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 8) {
            layer = layer * 10 + (*p++ - '0');
            digits++;
        }
        int canonical = *p == '.' && !(digits > 1 && name[2] == '0');
        if (canonical) {
            const char *rest = p + 1;
            int known = !strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias");
            int b = -1;
            for (int i = 0; i < B_COUNT && !known; i++)
                if (!strcmp(rest, block_names[i]))
                    b = i, known = 1;
            if (known && layer >= cfg->n_layer)
                return pl_fail("%s: tensor '%s': layer %ld is beyond n_layer=%d from config.json", st_path,
                               full_name, layer, cfg->n_layer),
                       -2;
            if (known)
                return b < 0 ? -1 : (int)layer * B_COUNT + b;
        }
    }
    pl_fail("%s: unexpected tensor '%s' (not a GPT-2 tensor name)", st_path, full_name);
    return -2;
}

static const char *slot_name(int L_slots, int slot, char *buf, size_t cap)
{
    if (slot >= L_slots)
        return global_names[slot - L_slots];
    snprintf(buf, cap, "h.%d.%s", slot / B_COUNT, block_names[slot % B_COUNT]);
    return buf;
}

void pl_model_free(pl_model *m)
{
    if (!m)
        return;
    free(m->blocks);
    free(m->owned);
    if (m->map)
        munmap(m->map, m->map_size);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

static char *join_path(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = pl_malloc(n, "path");
    if (p)
        snprintf(p, n, "%s/%s", dir, file);
    return p;
}

int pl_model_load(pl_model *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    char *config_path = join_path(dir, "config.json");
    char *st_path = join_path(dir, "model.safetensors");
    const st_tensor **slots = NULL;
    st_file f = {0};
    int rc = PL_ERR, opened = 0;
    if (!config_path || !st_path)
        goto done;
    if (pl_config_load(&m->cfg, config_path) != PL_OK)
        goto done;
    if (st_open(&f, st_path) != PL_OK)
        goto done;
    opened = 1;

    const pl_config *cfg = &m->cfg;
    int L_slots = cfg->n_layer * B_COUNT, n_slots = L_slots + G_COUNT;
    slots = pl_calloc((size_t)n_slots, sizeof *slots, "tensor slots");
    if (!slots)
        goto done;
    char shape_buf[2][ST_MAX_DIMS * 24 + 4], name_buf[64];
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        int slot = classify(st_path, cfg, t->name);
        if (slot == -2)
            goto done;
        if (slot == -1)
            continue; /* causal-mask buffer: plateau builds its own mask */
        if (slots[slot]) {
            pl_fail("%s: tensor '%s' appears twice (as '%s' and '%s')", st_path,
                    slot_name(L_slots, slot, name_buf, sizeof name_buf), slots[slot]->name, t->name);
            goto done;
        }
        slots[slot] = t;
        int64_t want[2];
        const char *why;
        int want_ndim = expected_shape(cfg, L_slots, slot, want, &why);
        if (t->ndim != want_ndim || t->shape[0] != want[0] || (want_ndim == 2 && t->shape[1] != want[1])) {
            format_shape(shape_buf[0], sizeof shape_buf[0], want_ndim, want);
            format_shape(shape_buf[1], sizeof shape_buf[1], t->ndim, t->shape);
            pl_fail("%s: tensor '%s': expected shape %s from config.json (%s), found %s", st_path, t->name,
                    shape_buf[0], why, shape_buf[1]);
            goto done;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            pl_fail("%s: tensor '%s': dtype %s is not supported for weights (F32, F16 or BF16)", st_path,
                    t->name, st_dtype_name(t->dtype));
            goto done;
        }
    }
    for (int s = 0; s < n_slots; s++)
        if (!slots[s] && s != L_slots + G_LM_HEAD) {
            pl_fail("%s: missing tensor '%s' (config.json has n_layer=%d)", st_path,
                    slot_name(L_slots, s, name_buf, sizeof name_buf), cfg->n_layer);
            goto done;
        }
    /* GPT-2 unembeds with wte; an lm_head that differs would be silently ignored, so refuse it. */
    const st_tensor *lm = slots[L_slots + G_LM_HEAD], *wte = slots[L_slots + G_WTE];
    if (lm && (lm->dtype != wte->dtype || memcmp(lm->data, wte->data, lm->end - lm->begin) != 0)) {
        pl_fail("%s: tensor '%s' differs from '%s': only GPT-2's tied unembedding is supported", st_path,
                lm->name, wte->name);
        goto done;
    }

    /* F32 tensors stay in the mmap when aligned; everything else goes into one owned buffer. */
    size_t owned_floats = 0;
    for (int s = 0; s < n_slots; s++) {
        const st_tensor *t = slots[s];
        if (t && s != L_slots + G_LM_HEAD && (t->dtype != ST_F32 || ((uintptr_t)t->data & 3u)))
            owned_floats += (t->end - t->begin) / st_dtype_size(t->dtype);
    }
    if (owned_floats) {
        m->owned = pl_malloc(owned_floats * sizeof(float), "converted weights");
        if (!m->owned)
            goto done;
    }
    const float **ptr = pl_calloc((size_t)n_slots, sizeof *ptr, "weight pointers");
    if (!ptr)
        goto done;
    float *next = m->owned;
    for (int s = 0; s < n_slots; s++) {
        const st_tensor *t = slots[s];
        if (!t || s == L_slots + G_LM_HEAD)
            continue;
        if (t->dtype == ST_F32 && !((uintptr_t)t->data & 3u)) {
            ptr[s] = (const float *)(const void *)t->data;
        } else {
            size_t n = (t->end - t->begin) / st_dtype_size(t->dtype);
            st_to_f32(t->dtype, t->data, n, next);
            ptr[s] = next;
            next += n;
        }
    }
    m->blocks = pl_calloc((size_t)cfg->n_layer, sizeof *m->blocks, "blocks");
    if (!m->blocks) {
        free(ptr);
        goto done;
    }
    for (int l = 0; l < cfg->n_layer; l++) {
        const float **p = ptr + l * B_COUNT;
        m->blocks[l] = (pl_block){
            .ln_1_w = p[B_LN1_W], .ln_1_b = p[B_LN1_B],
            .attn_w = p[B_ATTN_W], .attn_b = p[B_ATTN_B],
            .attn_proj_w = p[B_APROJ_W], .attn_proj_b = p[B_APROJ_B],
            .ln_2_w = p[B_LN2_W], .ln_2_b = p[B_LN2_B],
            .fc_w = p[B_FC_W], .fc_b = p[B_FC_B],
            .mlp_proj_w = p[B_MPROJ_W], .mlp_proj_b = p[B_MPROJ_B],
        };
    }
    m->wte = ptr[L_slots + G_WTE];
    m->wpe = ptr[L_slots + G_WPE];
    m->ln_f_w = ptr[L_slots + G_LNF_W];
    m->ln_f_b = ptr[L_slots + G_LNF_B];
    free(ptr);
    m->map = (void *)f.bytes;
    m->map_size = f.size;
    m->dir = strdup(dir);
    if (!m->dir) {
        pl_fail("out of memory (model dir)");
        goto done;
    }
    rc = PL_OK;
done:
    free(slots);
    if (rc == PL_OK) {
        st_free(&f); /* names only: the mapping now belongs to m */
    } else {
        if (opened && !m->map)
            st_close(&f);
        else
            st_free(&f);
        pl_model_free(m);
    }
    free(config_path);
    free(st_path);
    return rc;
}

int pl_model_file_sha256(const pl_model *m, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return pl_fail("sha256: cannot create an OpenSSL digest context");
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    const uint8_t *p = m->map;
    for (size_t done = 0; ok && done < m->map_size;) {
        size_t chunk = m->map_size - done < (64u << 20) ? m->map_size - done : (64u << 20);
        ok = EVP_DigestUpdate(ctx, p + done, chunk);
        done += chunk;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &len);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return pl_fail("%s/model.safetensors: sha256 failed", m->dir ? m->dir : "?");
    for (unsigned int i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    out[64] = '\0';
    return PL_OK;
}
