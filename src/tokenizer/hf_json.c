/* Load an HF tokenizer.json with a BPE model ("hf-bpe-bytelevel", "hf-bpe-sentencepiece").
 *
 * Every component and option is checked against what hf_encode.c / hf_decode.c reproduce exactly;
 * anything else (another model type, an unknown normalizer, pre-tokenizer, decoder or
 * post-processor, an unknown option, truncation or padding) is refused by name, so a tokenizer.json
 * never silently tokenises differently from HF tokenizers. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "hf_internal.h"

#define MAX_VOCAB (1 << 24)

static const char *const BPE_REGEX =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- small JSON helpers: each error names the file and the place ---- */

static int check_keys(const char *path, const char *where, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(key, allowed[i]);
        if (!ok)
            return pl_fail("%s: %s: option \"%s\" is not supported", path, where, key);
    }
    return PL_OK;
}

static int get_bool(const char *path, const char *where, json_t *obj, const char *key, int fallback, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (fallback < 0)
            return pl_fail("%s: %s: \"%s\" is missing", path, where, key);
        *out = fallback;
        return PL_OK;
    }
    if (!json_is_boolean(v))
        return pl_fail("%s: %s: \"%s\" is not true or false", path, where, key);
    *out = json_is_true(v);
    return PL_OK;
}

/* A string option; NULL (and PL_OK) when absent or null and not REQUIRED. */
static int get_string(const char *path, const char *where, json_t *obj, const char *key, int required,
                      const char **out, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (len)
        *len = 0;
    if (!v || json_is_null(v))
        return required ? pl_fail("%s: %s: \"%s\" is missing", path, where, key) : PL_OK;
    if (!json_is_string(v))
        return pl_fail("%s: %s: \"%s\" is not a string", path, where, key);
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return PL_OK;
}

static int get_char(const char *path, const char *where, json_t *obj, const char *key, uint32_t fallback,
                    uint32_t *out)
{
    const char *s;
    size_t n;
    if (get_string(path, where, obj, key, 0, &s, &n))
        return PL_ERR;
    if (!s) {
        *out = fallback;
        return PL_OK;
    }
    uint32_t cp;
    if (n == 0 || tok_utf8_next((const unsigned char *)s, n, &cp) != (int)n)
        return pl_fail("%s: %s: \"%s\" must be one character, got \"%s\"", path, where, key, s);
    *out = cp;
    return PL_OK;
}

static const char *type_of(const char *path, const char *where, json_t *obj)
{
    json_t *t = json_is_object(obj) ? json_object_get(obj, "type") : NULL;
    if (!json_is_string(t)) {
        pl_fail("%s: %s: expected an object with a string \"type\"", path, where);
        return NULL;
    }
    return json_string_value(t);
}

static int parse_pattern(const char *path, const char *where, json_t *obj, int literal_only, hf_pattern *out)
{
    json_t *p = json_object_get(obj, "pattern");
    json_t *str = json_is_object(p) ? json_object_get(p, "String") : NULL;
    json_t *re = json_is_object(p) ? json_object_get(p, "Regex") : NULL;
    if (!json_is_object(p) || json_object_size(p) != 1 || (!json_is_string(str) && !json_is_string(re)))
        return pl_fail("%s: %s: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", path, where);
    if (str) {
        size_t n = json_string_length(str);
        if (n == 0)
            return pl_fail("%s: %s: an empty String pattern is not supported", path, where);
        out->literal = pl_malloc(n + 1, "pattern");
        if (!out->literal)
            return PL_ERR;
        memcpy(out->literal, json_string_value(str), n + 1);
        out->literal_len = n;
        out->regex = hf_regex_literal(out->literal, n);
        if (!out->regex)
            return pl_fail("%s: %s: cannot compile the String pattern", path, where);
        return PL_OK;
    }
    if (literal_only)
        return pl_fail("%s: %s: a Regex pattern is not supported here (only String)", path, where);
    char place[512];
    snprintf(place, sizeof place, "%s: %s", path, where);
    return hf_regex_compile(json_string_value(re), place, &out->regex);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = pl_malloc(n + 1, "tokenizer string");
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- normalizer ---- */

static int add_normalizer(hf_tok *h, hf_normalizer z)
{
    hf_normalizer *bigger = realloc(h->norms, ((size_t)h->n_norms + 1) * sizeof *bigger);
    if (!bigger)
        return pl_fail("out of memory (normalizers)");
    h->norms = bigger;
    h->norms[h->n_norms++] = z;
    return PL_OK;
}

static int parse_normalizer(hf_tok *h, json_t *obj, int depth)
{
    const char *path = h->path;
    if (json_is_null(obj))
        return PL_OK;
    const char *type = type_of(path, "normalizer", obj);
    if (!type)
        return PL_ERR;
    static const char *const only_type[] = {"type", NULL};
    hf_normalizer z = {0};
    if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") || !strcmp(type, "NFKD")) {
        if (check_keys(path, "normalizer", obj, only_type))
            return PL_ERR;
        z.kind = NORM_UNICODE;
        z.form = !strcmp(type, "NFC") ? "NFC" : !strcmp(type, "NFD") ? "NFD" : !strcmp(type, "NFKC") ? "NFKC" : "NFKD";
        return add_normalizer(h, z);
    }
    if (!strcmp(type, "Prepend")) {
        static const char *const keys[] = {"type", "prepend", NULL};
        const char *s;
        size_t n;
        if (check_keys(path, "normalizer Prepend", obj, keys) ||
            get_string(path, "normalizer Prepend", obj, "prepend", 1, &s, &n))
            return PL_ERR;
        z.kind = NORM_PREPEND;
        z.text = dup_bytes(s, n);
        z.text_len = n;
        return z.text ? add_normalizer(h, z) : PL_ERR;
    }
    if (!strcmp(type, "Replace")) {
        static const char *const keys[] = {"type", "pattern", "content", NULL};
        const char *s;
        size_t n;
        z.kind = NORM_REPLACE;
        if (check_keys(path, "normalizer Replace", obj, keys) ||
            get_string(path, "normalizer Replace", obj, "content", 1, &s, &n) ||
            parse_pattern(path, "normalizer Replace", obj, 0, &z.pattern) || !(z.text = dup_bytes(s, n))) {
            pcre2_code_free(z.pattern.regex);
            free(z.pattern.literal);
            return PL_ERR;
        }
        z.text_len = n;
        return add_normalizer(h, z);
    }
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "normalizers", NULL};
        json_t *list = json_object_get(obj, "normalizers");
        if (check_keys(path, "normalizer Sequence", obj, keys))
            return PL_ERR;
        if (!json_is_array(list))
            return pl_fail("%s: normalizer Sequence: \"normalizers\" is not a list", path);
        if (depth > 8)
            return pl_fail("%s: normalizer Sequence nested too deep", path);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) if (parse_normalizer(h, item, depth + 1)) return PL_ERR;
        return PL_OK;
    }
    return pl_fail("%s: normalizer type \"%s\" is not supported (plateau reproduces NFC, NFD, NFKC, NFKD, Prepend, "
                   "Replace, Sequence)",
                   path, type);
}

/* ---- pre-tokenizer ---- */

static int add_pretok(hf_tok *h, hf_pretok p)
{
    hf_pretok *bigger = realloc(h->pretoks, ((size_t)h->n_pretoks + 1) * sizeof *bigger);
    if (!bigger)
        return pl_fail("out of memory (pre-tokenizers)");
    h->pretoks = bigger;
    h->pretoks[h->n_pretoks++] = p;
    return PL_OK;
}

static int parse_prepend_scheme(const char *path, const char *where, json_t *obj, int *scheme)
{
    const char *s;
    if (get_string(path, where, obj, "prepend_scheme", 0, &s, NULL))
        return PL_ERR;
    if (s) {
        if (!strcmp(s, "always"))
            *scheme = PREPEND_ALWAYS;
        else if (!strcmp(s, "first"))
            *scheme = PREPEND_FIRST;
        else if (!strcmp(s, "never"))
            *scheme = PREPEND_NEVER;
        else
            return pl_fail("%s: %s: prepend_scheme \"%s\" is not first, always or never", path, where, s);
        return PL_OK;
    }
    /* files written before prepend_scheme existed: add_prefix_space true = always, false = never */
    int add;
    if (get_bool(path, where, obj, "add_prefix_space", 1, &add))
        return PL_ERR;
    *scheme = add ? PREPEND_ALWAYS : PREPEND_NEVER;
    return PL_OK;
}

/* A Split pre-tokenizer. */
static int parse_pretok_split(hf_tok *h, json_t *obj)
{
    const char *path = h->path;
    static const char *const keys[] = {"type", "pattern", "behavior", "invert", NULL};
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *b;
    hf_pretok p = {0};
    p.kind = PRE_SPLIT;
    if (check_keys(path, "pre_tokenizer Split", obj, keys) ||
        get_string(path, "pre_tokenizer Split", obj, "behavior", 1, &b, NULL) ||
        get_bool(path, "pre_tokenizer Split", obj, "invert", 0, &p.invert))
        return PL_ERR;
    p.behavior = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(b, names[i]))
            p.behavior = i;
    if (p.behavior < 0)
        return pl_fail("%s: pre_tokenizer Split: behavior \"%s\" is not one of Removed, Isolated, "
                       "MergedWithPrevious, MergedWithNext, Contiguous",
                       path, b);
    if (parse_pattern(path, "pre_tokenizer Split", obj, 0, &p.pattern) || add_pretok(h, p)) {
        pcre2_code_free(p.pattern.regex);
        free(p.pattern.literal);
        return PL_ERR;
    }
    return PL_OK;
}

static int parse_pretok(hf_tok *h, json_t *obj, int depth)
{
    const char *path = h->path;
    if (json_is_null(obj))
        return PL_OK;
    const char *type = type_of(path, "pre_tokenizer", obj);
    if (!type)
        return PL_ERR;
    hf_pretok p = {0};
    if (!strcmp(type, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int trim;
        p.kind = PRE_BYTELEVEL;
        if (check_keys(path, "pre_tokenizer ByteLevel", obj, keys) ||
            get_bool(path, "pre_tokenizer ByteLevel", obj, "add_prefix_space", -1, &p.add_prefix_space) ||
            get_bool(path, "pre_tokenizer ByteLevel", obj, "trim_offsets", 1, &trim) || /* offsets only */
            get_bool(path, "pre_tokenizer ByteLevel", obj, "use_regex", 1, &p.use_regex))
            return PL_ERR;
        h->bytelevel = 1;
        return add_pretok(h, p);
    }
    if (!strcmp(type, "Split"))
        return parse_pretok_split(h, obj);
    if (!strcmp(type, "Metaspace")) {
        static const char *const keys[] = {"type", "replacement", "prepend_scheme", "split", "add_prefix_space",
                                           "str_rep", NULL};
        p.kind = PRE_METASPACE;
        if (check_keys(path, "pre_tokenizer Metaspace", obj, keys) ||
            get_char(path, "pre_tokenizer Metaspace", obj, "replacement", 0x2581, &p.replacement) ||
            parse_prepend_scheme(path, "pre_tokenizer Metaspace", obj, &p.prepend_scheme) ||
            get_bool(path, "pre_tokenizer Metaspace", obj, "split", 1, &p.split))
            return PL_ERR;
        return add_pretok(h, p);
    }
    if (!strcmp(type, "Digits")) {
        static const char *const keys[] = {"type", "individual_digits", NULL};
        int individual = 0;
        p.kind = PRE_DIGITS;
        if (check_keys(path, "pre_tokenizer Digits", obj, keys) ||
            get_bool(path, "pre_tokenizer Digits", obj, "individual_digits", 0, &individual))
            return PL_ERR;
        p.behavior = individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
        return add_pretok(h, p);
    }
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "pretokenizers", NULL};
        json_t *list = json_object_get(obj, "pretokenizers");
        if (check_keys(path, "pre_tokenizer Sequence", obj, keys))
            return PL_ERR;
        if (!json_is_array(list))
            return pl_fail("%s: pre_tokenizer Sequence: \"pretokenizers\" is not a list", path);
        if (depth > 8)
            return pl_fail("%s: pre_tokenizer Sequence nested too deep", path);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) if (parse_pretok(h, item, depth + 1)) return PL_ERR;
        return PL_OK;
    }
    return pl_fail("%s: pre_tokenizer type \"%s\" is not supported (plateau reproduces ByteLevel, Split, "
                   "Metaspace, Digits, Sequence)",
                   path, type);
}

/* ---- decoder ---- */

static int add_decoder(hf_tok *h, hf_decoder d)
{
    hf_decoder *bigger = realloc(h->decs, ((size_t)h->n_decs + 1) * sizeof *bigger);
    if (!bigger)
        return pl_fail("out of memory (decoders)");
    h->decs = bigger;
    h->decs[h->n_decs++] = d;
    return PL_OK;
}

static int get_count(const char *path, const char *where, json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = 0;
        return PL_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
        return pl_fail("%s: %s: \"%s\" is not a count", path, where, key);
    *out = (int)json_integer_value(v);
    return PL_OK;
}

static int parse_decoder(hf_tok *h, json_t *obj, int depth)
{
    const char *path = h->path;
    const char *type = type_of(path, "decoder", obj);
    if (!type)
        return PL_ERR;
    static const char *const only_type[] = {"type", NULL};
    hf_decoder d = {0};
    if (!strcmp(type, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        d.kind = DEC_BYTELEVEL;
        return check_keys(path, "decoder ByteLevel", obj, keys) ? PL_ERR : add_decoder(h, d);
    }
    if (!strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) {
        d.kind = !strcmp(type, "Fuse") ? DEC_FUSE : DEC_BYTEFALLBACK;
        return check_keys(path, "decoder", obj, only_type) ? PL_ERR : add_decoder(h, d);
    }
    if (!strcmp(type, "Replace")) {
        static const char *const keys[] = {"type", "pattern", "content", NULL};
        const char *s;
        size_t n;
        d.kind = DEC_REPLACE;
        if (check_keys(path, "decoder Replace", obj, keys) ||
            get_string(path, "decoder Replace", obj, "content", 1, &s, &n) ||
            parse_pattern(path, "decoder Replace", obj, 1, &d.pattern) || !(d.content = dup_bytes(s, n))) {
            pcre2_code_free(d.pattern.regex);
            free(d.pattern.literal);
            return PL_ERR;
        }
        d.content_len = n;
        return add_decoder(h, d);
    }
    if (!strcmp(type, "Strip")) {
        static const char *const keys[] = {"type", "content", "start", "stop", NULL};
        d.kind = DEC_STRIP;
        if (check_keys(path, "decoder Strip", obj, keys) ||
            get_char(path, "decoder Strip", obj, "content", ' ', &d.strip_char) ||
            get_count(path, "decoder Strip", obj, "start", &d.start) ||
            get_count(path, "decoder Strip", obj, "stop", &d.stop))
            return PL_ERR;
        return add_decoder(h, d);
    }
    if (!strcmp(type, "Metaspace")) {
        static const char *const keys[] = {"type", "replacement", "prepend_scheme", "split", "add_prefix_space",
                                           "str_rep", NULL};
        int scheme, split;
        d.kind = DEC_METASPACE;
        if (check_keys(path, "decoder Metaspace", obj, keys) ||
            get_char(path, "decoder Metaspace", obj, "replacement", 0x2581, &d.replacement) ||
            parse_prepend_scheme(path, "decoder Metaspace", obj, &scheme) ||
            get_bool(path, "decoder Metaspace", obj, "split", 1, &split))
            return PL_ERR;
        d.prepend_never = scheme == PREPEND_NEVER;
        return add_decoder(h, d);
    }
    if (!strcmp(type, "Sequence")) {
        static const char *const keys[] = {"type", "decoders", NULL};
        json_t *list = json_object_get(obj, "decoders");
        if (check_keys(path, "decoder Sequence", obj, keys))
            return PL_ERR;
        if (!json_is_array(list))
            return pl_fail("%s: decoder Sequence: \"decoders\" is not a list", path);
        if (depth > 8)
            return pl_fail("%s: decoder Sequence nested too deep", path);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) if (parse_decoder(h, item, depth + 1)) return PL_ERR;
        return PL_OK;
    }
    return pl_fail("%s: decoder type \"%s\" is not supported (plateau reproduces ByteLevel, Replace, ByteFallback, "
                   "Fuse, Strip, Metaspace, Sequence)",
                   path, type);
}

/* ---- model ---- */

/* The BPE model's options (everything but vocab and merges); *unk: unk_token or NULL. */
static int parse_model_options(hf_tok *h, json_t *model, const char **unk)
{
    const char *path = h->path;
    if (!json_is_object(model))
        return pl_fail("%s: \"model\" is missing or not an object", path);
    json_t *type = json_object_get(model, "type");
    if (type && !json_is_string(type))
        return pl_fail("%s: model: \"type\" is not a string", path);
    if (type ? strcmp(json_string_value(type), "BPE") != 0 : !json_object_get(model, "merges"))
        return pl_fail("%s: model type \"%s\" is not supported (plateau reproduces BPE only)", path,
                       type ? json_string_value(type) : "(none)");
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                       "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                                       "vocab", "merges", NULL};
    if (check_keys(path, "model BPE", model, keys))
        return PL_ERR;
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0))
        return pl_fail("%s: model BPE: dropout %g is not supported (it makes tokenisation random)", path,
                       json_is_number(dropout) ? json_number_value(dropout) : -1.0);
    const char *prefix, *suffix;
    if (get_string(path, "model BPE", model, "continuing_subword_prefix", 0, &prefix, NULL) ||
        get_string(path, "model BPE", model, "end_of_word_suffix", 0, &suffix, NULL) ||
        get_string(path, "model BPE", model, "unk_token", 0, unk, NULL) ||
        get_bool(path, "model BPE", model, "fuse_unk", 0, &h->fuse_unk) ||
        get_bool(path, "model BPE", model, "byte_fallback", 0, &h->byte_fallback) ||
        get_bool(path, "model BPE", model, "ignore_merges", 0, &h->ignore_merges))
        return PL_ERR;
    if (prefix && *prefix)
        return pl_fail("%s: model BPE: continuing_subword_prefix \"%s\" is not supported", path, prefix);
    if (suffix && *suffix)
        return pl_fail("%s: model BPE: end_of_word_suffix \"%s\" is not supported", path, suffix);
    return PL_OK;
}

/* h->vocab from the BPE model's "vocab" object, then the unk and byte-fallback ids. */
static int parse_vocab(hf_tok *h, json_t *model, const char *unk, int *vocab_count)
{
    const char *path = h->path;
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return pl_fail("%s: model BPE: \"vocab\" is not an object {\"token\": id, ...}", path);
    size_t n = json_object_size(vocab), total = 0;
    json_int_t top = -1;
    const char *key;
    json_t *value;
    json_object_foreach(vocab, key, value) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) >= MAX_VOCAB)
            return pl_fail("%s: model BPE: vocab key \"%s\": id is not an integer in 0..%d", path, key, MAX_VOCAB - 1);
        if (json_integer_value(value) > top)
            top = json_integer_value(value);
        total += strlen(key) + 1;
    }
    if (n == 0)
        return pl_fail("%s: model BPE: empty vocab", path);
    *vocab_count = (int)n;
    if (tok_strings_init(&h->vocab, (int)top + 1, total))
        return PL_ERR;
    json_object_foreach(vocab, key, value) {
        json_int_t id = json_integer_value(value);
        if (h->vocab.length[id] >= 0)
            return pl_fail("%s: model BPE: vocab key \"%s\": id %lld is already used by \"%s\"", path, key,
                           (long long)id, h->vocab.bytes + h->vocab.offset[id]);
        size_t len = strlen(key);
        if (len == 0)
            return pl_fail("%s: model BPE: vocab has an empty token", path);
        tok_strings_set(&h->vocab, (int)id, key, len);
    }
    if (tok_strings_index(&h->vocab))
        return PL_ERR;
    h->unk_id = -1;
    if (unk) {
        h->unk_id = tok_strings_find(&h->vocab, unk, strlen(unk));
        if (h->unk_id < 0)
            return pl_fail("%s: model BPE: unk_token \"%s\" is not in the vocab", path, unk);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        h->byte_fallback_id[b] = h->byte_fallback ? tok_strings_find(&h->vocab, name, 6) : -1;
    }
    return PL_OK;
}

/* Merge I (0-based) written "a b": its two tokens. A token may itself hold spaces (Llama 2's "   "):
 * then, as HF tokenizers does, the one split whose two halves and their concatenation are all in the
 * vocab. JOINED is scratch. */
static int split_merge_string(const hf_tok *h, json_t *m, size_t i, tok_buf *joined, const char **a, size_t *na,
                              const char **b, size_t *nb)
{
    const char *s = json_string_value(m);
    size_t len = json_string_length(m), found = 0, at = 0;
    for (size_t p = 0; p < len; p++) {
        if (s[p] != ' ')
            continue;
        joined->len = 0;
        if (tok_buf_add(joined, s, p) || tok_buf_add(joined, s + p + 1, len - p - 1))
            return PL_ERR;
        if (tok_strings_find(&h->vocab, s, p) >= 0 && tok_strings_find(&h->vocab, s + p + 1, len - p - 1) >= 0 &&
            tok_strings_find(&h->vocab, joined->data, joined->len) >= 0) {
            found++;
            at = p;
        }
    }
    if (!memchr(s, ' ', len) || (found != 1 && strchr(strchr(s, ' ') + 1, ' ')))
        return pl_fail("%s: model BPE: merge %zu \"%s\" is not two tokens separated by a space%s", h->path, i + 1, s,
                       found > 1 ? " (ambiguous: several splits are tokens)" : "");
    if (found != 1) /* one space: the split is fixed; the checks below name what is missing */
        at = (size_t)(strchr(s, ' ') - s);
    *a = s;
    *na = at;
    *b = s + at + 1;
    *nb = len - at - 1;
    return PL_OK;
}

/* Merge I (0-based), "a b" or ["a", "b"], added to h->pairs. JOINED is scratch. */
static int parse_merge(hf_tok *h, json_t *m, size_t i, tok_buf *joined)
{
    const char *path = h->path, *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (json_is_string(m)) {
        if (split_merge_string(h, m, i, joined, &a, &na, &b, &nb) != PL_OK)
            return PL_ERR;
    } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
        a = json_string_value(json_array_get(m, 0));
        na = json_string_length(json_array_get(m, 0));
        b = json_string_value(json_array_get(m, 1));
        nb = json_string_length(json_array_get(m, 1));
    } else {
        return pl_fail("%s: model BPE: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i + 1);
    }
    int ia = tok_strings_find(&h->vocab, a, na), ib = tok_strings_find(&h->vocab, b, nb);
    if (ia < 0 || ib < 0)
        return pl_fail("%s: model BPE: merge %zu: token \"%.*s\" is not in the vocab", path, i + 1,
                       (int)(ia < 0 ? na : nb), ia < 0 ? a : b);
    joined->len = 0;
    if (tok_buf_add(joined, a, na) || tok_buf_add(joined, b, nb))
        return PL_ERR;
    int merged = tok_strings_find(&h->vocab, joined->data, joined->len);
    if (merged < 0)
        return pl_fail("%s: model BPE: merge %zu: merged token \"%s\" is not in the vocab", path, i + 1, joined->data);
    tok_pairs_add(&h->pairs, ia, ib, merged);
    return PL_OK;
}

static int parse_model(hf_tok *h, json_t *model, int *vocab_count)
{
    const char *unk = NULL;
    if (parse_model_options(h, model, &unk) != PL_OK || parse_vocab(h, model, unk, vocab_count) != PL_OK)
        return PL_ERR;
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return pl_fail("%s: model BPE: \"merges\" is not a list", h->path);
    if (tok_pairs_init(&h->pairs, json_array_size(merges)))
        return PL_ERR;
    tok_buf joined = {0};
    size_t i;
    json_t *m;
    int rc = PL_OK;
    json_array_foreach(merges, i, m) {
        if ((rc = parse_merge(h, m, i, &joined)) != PL_OK)
            break;
    }
    free(joined.data);
    return rc;
}

/* ---- added tokens ---- */

static int parse_added(hf_tok *h, json_t *list, int vocab_count)
{
    const char *path = h->path;
    if (!list || json_is_null(list))
        return PL_OK;
    if (!json_is_array(list))
        return pl_fail("%s: \"added_tokens\" is not a list", path);
    h->added = pl_calloc(json_array_size(list) + 1, sizeof(hf_added), "added tokens");
    if (!h->added)
        return PL_ERR;
    int max_added = -1;
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized",
                                           "special", NULL};
        if (!json_is_object(t))
            return pl_fail("%s: %s is not an object", path, where);
        hf_added a = {0};
        const char *content;
        size_t len;
        json_t *id = json_object_get(t, "id");
        if (check_keys(path, where, t, keys) || get_string(path, where, t, "content", 1, &content, &len) ||
            get_bool(path, where, t, "special", 0, &a.special) ||
            get_bool(path, where, t, "single_word", 0, &a.single_word) ||
            get_bool(path, where, t, "lstrip", 0, &a.lstrip) || get_bool(path, where, t, "rstrip", 0, &a.rstrip) ||
            get_bool(path, where, t, "normalized", !a.special, &a.normalized))
            return PL_ERR;
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= MAX_VOCAB)
            return pl_fail("%s: %s: \"id\" is not an integer in 0..%d", path, where, MAX_VOCAB - 1);
        if (len == 0)
            continue; /* HF ignores empty added tokens */
        for (int k = 0; k < h->n_added; k++)
            if (h->added[k].len == len && !memcmp(h->added[k].content, content, len))
                return pl_fail("%s: %s: \"%s\" is listed twice", path, where, content);
        /* the id HF tokenizers gives it: the vocab's, else the next after the added ones */
        int given = tok_strings_find(&h->vocab, content, len);
        if (given < 0)
            given = max_added < 0 ? vocab_count : max_added >= vocab_count ? max_added + 1 : vocab_count;
        if (json_integer_value(id) != given)
            return pl_fail("%s: %s: \"%s\" has id %lld, but HF tokenizers would give it id %d", path, where, content,
                           (long long)json_integer_value(id), given);
        a.id = given;
        if (given > max_added)
            max_added = given;
        a.content = dup_bytes(content, len);
        a.len = len;
        if (!a.content)
            return PL_ERR;
        if (tok_utf8_invalid_at(a.content, len) >= 0)
            return pl_fail("%s: %s: content is not valid UTF-8", path, where);
        h->added[h->n_added++] = a;
    }
    return PL_OK;
}

/* Bucket the tokens of one matching pass by first byte, longest first. */
static int build_matcher(hf_tok *h, hf_matcher *m, int normalized)
{
    m->order = pl_malloc(((size_t)h->n_added + 1) * sizeof(int), "added-token matcher");
    if (!m->order)
        return PL_ERR;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        m->first[b] = n;
        for (int i = 0; i < h->n_added; i++)
            if (h->added[i].normalized == normalized && (unsigned char)h->added[i].content[0] == b)
                m->order[n++] = i;
        for (int x = m->first[b] + 1; x < n; x++) /* insertion sort, longest first */
            for (int y = x; y > m->first[b] && h->added[m->order[y]].len > h->added[m->order[y - 1]].len; y--) {
                int t = m->order[y];
                m->order[y] = m->order[y - 1];
                m->order[y - 1] = t;
            }
    }
    m->first[256] = n;
    return PL_OK;
}

/* ---- post-processor and tokenizer_config.json ---- */

static int set_specials(pl_tokenizer *tok, int *dst, int *n_dst, json_t *ids, const char *path, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_VOCAB)
            return pl_fail("%s: post_processor: special token \"%s\" has a bad id", path, name);
        if (*n_dst >= 8)
            return pl_fail("%s: post_processor: more than 8 special tokens around the text", path);
        dst[(*n_dst)++] = (int)json_integer_value(v);
    }
    (void)tok;
    return PL_OK;
}

static int parse_post(pl_tokenizer *tok, hf_tok *h, json_t *obj, int depth, int *seen)
{
    const char *path = h->path;
    if (!obj || json_is_null(obj))
        return PL_OK;
    const char *type = type_of(path, "post_processor", obj);
    if (!type)
        return PL_ERR;
    if (!strcmp(type, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        return check_keys(path, "post_processor ByteLevel", obj, keys); /* offsets only */
    }
    if (!strcmp(type, "Sequence") && depth == 0) {
        static const char *const keys[] = {"type", "processors", NULL};
        json_t *list = json_object_get(obj, "processors");
        if (check_keys(path, "post_processor Sequence", obj, keys))
            return PL_ERR;
        if (!json_is_array(list))
            return pl_fail("%s: post_processor Sequence: \"processors\" is not a list", path);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) if (parse_post(tok, h, item, depth + 1, seen)) return PL_ERR;
        return PL_OK;
    }
    if (*seen)
        return pl_fail("%s: post_processor: more than one processor adds special tokens", path);
    *seen = 1;
    if (!strcmp(type, "TemplateProcessing")) {
        static const char *const keys[] = {"type", "single", "pair", "special_tokens", NULL};
        json_t *single = json_object_get(obj, "single"), *specials = json_object_get(obj, "special_tokens");
        if (check_keys(path, "post_processor TemplateProcessing", obj, keys))
            return PL_ERR;
        if (!json_is_array(single) || !json_is_object(specials))
            return pl_fail("%s: post_processor TemplateProcessing: \"single\" or \"special_tokens\" is missing", path);
        int after = 0;
        size_t i;
        json_t *item;
        json_array_foreach(single, i, item) {
            json_t *sp = json_object_get(item, "SpecialToken"), *seq = json_object_get(item, "Sequence");
            if (json_is_object(seq)) {
                json_t *which = json_object_get(seq, "id");
                if (after || !json_is_string(which) || strcmp(json_string_value(which), "A"))
                    return pl_fail("%s: post_processor TemplateProcessing: \"single\" must hold sequence A once", path);
                after = 1;
            } else if (json_is_object(sp) && json_is_string(json_object_get(sp, "id"))) {
                const char *name = json_string_value(json_object_get(sp, "id"));
                json_t *ids = json_object_get(json_object_get(specials, name), "ids");
                if (!json_is_array(ids))
                    return pl_fail("%s: post_processor TemplateProcessing: special token \"%s\" has no ids", path, name);
                if (set_specials(tok, after ? tok->suffix : tok->prefix, after ? &tok->n_suffix : &tok->n_prefix, ids,
                                 path, name))
                    return PL_ERR;
            } else {
                return pl_fail("%s: post_processor TemplateProcessing: item %zu of \"single\" is not understood", path, i);
            }
        }
        if (!after)
            return pl_fail("%s: post_processor TemplateProcessing: \"single\" has no sequence A", path);
        return PL_OK;
    }
    if (!strcmp(type, "RobertaProcessing")) {
        static const char *const keys[] = {"type", "sep", "cls", "trim_offsets", "add_prefix_space", NULL};
        json_t *cls = json_object_get(obj, "cls"), *sep = json_object_get(obj, "sep");
        if (check_keys(path, "post_processor RobertaProcessing", obj, keys))
            return PL_ERR;
        if (!json_is_array(cls) || !json_is_integer(json_array_get(cls, 1)) || !json_is_array(sep) ||
            !json_is_integer(json_array_get(sep, 1)))
            return pl_fail("%s: post_processor RobertaProcessing: \"cls\" and \"sep\" must be [token, id]", path);
        tok->prefix[tok->n_prefix++] = (int)json_integer_value(json_array_get(cls, 1));
        tok->suffix[tok->n_suffix++] = (int)json_integer_value(json_array_get(sep, 1));
        return PL_OK;
    }
    return pl_fail("%s: post_processor type \"%s\" is not supported (plateau reproduces ByteLevel, "
                   "TemplateProcessing, RobertaProcessing, Sequence)",
                   path, type);
}

/* The id of a token by its text (added tokens first, as HF's token_to_id), or -1. */
static int id_of(const hf_tok *h, const char *s, size_t n)
{
    for (int i = 0; i < h->n_added; i++)
        if (h->added[i].len == n && !memcmp(h->added[i].content, s, n))
            return h->added[i].id;
    return tok_strings_find(&h->vocab, s, n);
}

static int config_token(const char *path, json_t *cfg, const char *key, const hf_tok *h, int *id, int *present)
{
    json_t *v = json_object_get(cfg, key);
    *present = 0;
    if (!v || json_is_null(v))
        return PL_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return pl_fail("%s: \"%s\" is neither a string nor {\"content\": ...}", path, key);
    *present = 1;
    *id = id_of(h, json_string_value(v), json_string_length(v));
    if (*id < 0)
        return pl_fail("%s: %s \"%s\" is not a token of the tokenizer", path, key, json_string_value(v));
    return PL_OK;
}

static int read_config(pl_tokenizer *tok, const hf_tok *h)
{
    /* tokenizer_config.json beside tokenizer.json */
    const char *slash = strrchr(h->path, '/');
    char *dir = slash ? dup_bytes(h->path, (size_t)(slash - h->path)) : dup_bytes(".", 1);
    char *path = dir ? tok_join_path(dir[0] ? dir : "/", "tokenizer_config.json") : NULL;
    free(dir);
    if (!path)
        return PL_ERR;
    struct stat st;
    if (stat(path, &st) != 0) {
        free(path);
        return PL_OK;
    }
    char *data = NULL;
    size_t size;
    json_t *cfg = NULL;
    int rc = PL_ERR;
    if (pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size))
        goto done;
    json_error_t jerr;
    cfg = json_loadb(data, size, JSON_DECODE_INT_AS_REAL, &jerr); /* model_max_length can be 1e30 */
    if (!cfg) {
        pl_fail("%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
        goto done;
    }
    if (!json_is_object(cfg)) {
        pl_fail("%s: expected a JSON object", path);
        goto done;
    }
    int bos = -1, eos = -1, has_bos = 0, has_eos = 0, add = 0;
    if (config_token(path, cfg, "bos_token", h, &bos, &has_bos) ||
        config_token(path, cfg, "eos_token", h, &eos, &has_eos))
        goto done;
    if (has_bos)
        tok->bos_id = bos;
    if (has_eos)
        tok->eos_id = eos;
    /* transformers rebuilds the post-processor from these flags (LlamaTokenizerFast and others) */
    json_t *flag = json_object_get(cfg, "add_bos_token");
    if (flag && !json_is_null(flag)) {
        if (get_bool(path, "tokenizer config", cfg, "add_bos_token", 0, &add))
            goto done;
        if (add && !has_bos) {
            pl_fail("%s: add_bos_token is true but bos_token is not set", path);
            goto done;
        }
        tok->n_prefix = 0;
        if (add)
            tok->prefix[tok->n_prefix++] = bos;
    }
    flag = json_object_get(cfg, "add_eos_token");
    if (flag && !json_is_null(flag)) {
        if (get_bool(path, "tokenizer config", cfg, "add_eos_token", 0, &add))
            goto done;
        if (add && !has_eos) {
            pl_fail("%s: add_eos_token is true but eos_token is not set", path);
            goto done;
        }
        tok->n_suffix = 0;
        if (add)
            tok->suffix[tok->n_suffix++] = eos;
    }
    rc = PL_OK;
done:
    json_decref(cfg);
    free(data);
    free(path);
    return rc;
}

/* ---- assembly ---- */

void hf_free(void *impl)
{
    hf_tok *h = impl;
    if (!h)
        return;
    for (int i = 0; i < h->n_norms; i++) {
        free(h->norms[i].text);
        pcre2_code_free(h->norms[i].pattern.regex);
        free(h->norms[i].pattern.literal);
    }
    for (int i = 0; i < h->n_pretoks; i++) {
        pcre2_code_free(h->pretoks[i].pattern.regex);
        free(h->pretoks[i].pattern.literal);
    }
    for (int i = 0; i < h->n_decs; i++) {
        free(h->decs[i].content);
        pcre2_code_free(h->decs[i].pattern.regex);
        free(h->decs[i].pattern.literal);
    }
    for (int i = 0; i < h->n_added; i++)
        free(h->added[i].content);
    free(h->norms);
    free(h->pretoks);
    free(h->decs);
    free(h->added);
    free(h->raw_matcher.order);
    free(h->normalized_matcher.order);
    free(h->is_special);
    tok_strings_free(&h->vocab);
    tok_strings_free(&h->text);
    tok_pairs_free(&h->pairs);
    pcre2_code_free(h->bytelevel_regex);
    free((char *)h->path);
    free(h);
}

static const tok_ops hf_ops = {hf_free, hf_encode, hf_decode, hf_decode_next};

/* Normalized added tokens are matched as their normalized content. */
static int normalize_added(hf_tok *h)
{
    const char *path = h->path;
    for (int i = 0; i < h->n_added; i++) {
        hf_added *a = &h->added[i];
        if (!a->normalized || h->n_norms == 0)
            continue;
        char *norm;
        size_t n;
        int origin = 1;
        if (hf_normalize(h, a->content, a->len, &norm, &n, &origin))
            return pl_fail_prefix("%s: added token \"%s\"", path, a->content);
        if (n == 0) {
            free(norm);
            return pl_fail("%s: added token \"%s\" normalizes to nothing", path, a->content);
        }
        free(a->content);
        a->content = norm;
        a->len = n;
    }
    return PL_OK;
}

/* Every id's text: added tokens' content (as in the file, LIST), else the model's; the template's
 * special ids must have one. */
static int build_texts(pl_tokenizer *tok, hf_tok *h, json_t *list)
{
    const char *path = h->path;
    int top = h->vocab.n - 1;
    for (int i = 0; i < h->n_added; i++)
        if (h->added[i].id > top)
            top = h->added[i].id;
    tok->vocab_size = top + 1;
    size_t total = h->vocab.used;
    size_t k;
    json_t *t;
    json_array_foreach(list, k, t) total += json_string_length(json_object_get(t, "content")) + 1;
    h->is_special = pl_calloc((size_t)tok->vocab_size, 1, "special-token flags");
    if (!h->is_special || tok_strings_init(&h->text, tok->vocab_size, total))
        return PL_ERR;
    json_array_foreach(list, k, t) {
        json_t *c = json_object_get(t, "content");
        if (json_string_length(c) == 0)
            continue;
        int id = (int)json_integer_value(json_object_get(t, "id"));
        tok_strings_set(&h->text, id, json_string_value(c), json_string_length(c));
        h->is_special[id] = json_is_true(json_object_get(t, "special"));
    }
    for (int id = 0; id < h->vocab.n; id++) {
        size_t n;
        const char *s = tok_strings_get(&h->vocab, id, &n);
        if (s && h->text.length[id] < 0)
            tok_strings_set(&h->text, id, s, n);
    }
    if (tok_strings_index(&h->text))
        return PL_ERR;
    for (int i = 0; i < tok->n_prefix; i++)
        if (tok->prefix[i] >= tok->vocab_size || h->text.length[tok->prefix[i]] < 0)
            return pl_fail("%s: post_processor: special token id %d is not in the vocabulary", path, tok->prefix[i]);
    for (int i = 0; i < tok->n_suffix; i++)
        if (tok->suffix[i] >= tok->vocab_size || h->text.length[tok->suffix[i]] < 0)
            return pl_fail("%s: post_processor: special token id %d is not in the vocabulary", path, tok->suffix[i]);
    return PL_OK;
}

/* pl_token_bytes: each token as it reads mid-text. */
static int build_display(pl_tokenizer *tok, hf_tok *h)
{
    size_t display_total = 0;
    char **strs = pl_calloc((size_t)tok->vocab_size, sizeof(char *), "token display");
    size_t *lens = pl_calloc((size_t)tok->vocab_size, sizeof(size_t), "token display");
    int rc = strs && lens ? PL_OK : PL_ERR;
    for (int id = 0; id < tok->vocab_size && rc == PL_OK; id++)
        if (h->text.length[id] >= 0) {
            rc = hf_decode_chain(tok, &id, 1, DECODE_TOKEN, &strs[id], &lens[id]);
            display_total += lens[id] + 1;
        }
    if (rc == PL_OK)
        rc = tok_strings_init(&tok->display, tok->vocab_size, display_total);
    for (int id = 0; id < tok->vocab_size && rc == PL_OK; id++)
        if (strs[id])
            tok_strings_set(&tok->display, id, strs[id], lens[id]);
    if (rc == PL_OK)
        rc = tok_strings_index(&tok->display);
    for (int id = 0; strs && id < tok->vocab_size; id++)
        free(strs[id]);
    free(strs);
    free(lens);
    return rc;
}

static int build(pl_tokenizer *tok, hf_tok *h, json_t *root)
{
    const char *path = h->path;
    if (!json_is_object(root))
        return pl_fail("%s: expected a JSON object", path);
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "model", "post_processor", "decoder", NULL};
    if (check_keys(path, "top level", root, keys))
        return PL_ERR;
    for (int k = 0; k < 2; k++) {
        const char *what = k ? "padding" : "truncation";
        json_t *v = json_object_get(root, what);
        if (v && !json_is_null(v))
            return pl_fail("%s: \"%s\" is set: plateau encodes whole texts (set it to null)", path, what);
    }
    int vocab_count = 0;
    if (parse_model(h, json_object_get(root, "model"), &vocab_count) ||
        parse_added(h, json_object_get(root, "added_tokens"), vocab_count) ||
        parse_normalizer(h, json_object_get(root, "normalizer") ? json_object_get(root, "normalizer") : json_null(), 0) ||
        parse_pretok(h, json_object_get(root, "pre_tokenizer") ? json_object_get(root, "pre_tokenizer") : json_null(), 0))
        return PL_ERR;
    json_t *dec = json_object_get(root, "decoder");
    h->has_decoder = dec && !json_is_null(dec);
    if (h->has_decoder && parse_decoder(h, dec, 0))
        return PL_ERR;
    int seen = 0;
    if (parse_post(tok, h, json_object_get(root, "post_processor"), 0, &seen))
        return PL_ERR;
    if (hf_regex_compile(BPE_REGEX, "ByteLevel", &h->bytelevel_regex))
        return PL_ERR;

    if (normalize_added(h) != PL_OK)
        return PL_ERR;
    if (build_matcher(h, &h->raw_matcher, 0) || build_matcher(h, &h->normalized_matcher, 1))
        return PL_ERR;

    if (build_texts(tok, h, json_object_get(root, "added_tokens")) != PL_OK)
        return PL_ERR;

    /* BOS/EOS: tokenizer_config.json when present, else the template's single prefix token and the
     * usual end-of-text names */
    tok->bos_id = tok->n_prefix == 1 ? tok->prefix[0] : -1;
    tok->eos_id = -1;
    static const char *const eos_names[] = {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", NULL};
    for (int i = 0; eos_names[i] && tok->eos_id < 0; i++)
        tok->eos_id = id_of(h, eos_names[i], strlen(eos_names[i]));
    if (read_config(tok, h))
        return PL_ERR;

    return build_display(tok, h);
}

int tok_hf_parse(pl_tokenizer **out, const char *path, const char *data, size_t size)
{
    *out = NULL;
    pl_tokenizer *tok = pl_calloc(1, sizeof *tok, "tokenizer");
    hf_tok *h = pl_calloc(1, sizeof *h, "tokenizer");
    char *pathcopy = dup_bytes(path, strlen(path));
    if (!tok || !h || !pathcopy) {
        free(tok);
        free(h);
        free(pathcopy);
        return PL_ERR;
    }
    h->path = pathcopy;
    tok->ops = &hf_ops;
    tok->impl = h;
    json_error_t jerr;
    json_t *root = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);
    int rc = root ? build(tok, h, root) : pl_fail("%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    tok->kind = h->bytelevel ? "hf-bpe-bytelevel" : "hf-bpe-sentencepiece";
    json_decref(root);
    if (rc)
        pl_tokenizer_free(tok);
    else
        *out = tok;
    return rc;
}

int tok_hf_open(pl_tokenizer **out, const char *path)
{
    *out = NULL;
    char *data = NULL;
    size_t size = 0;
    int rc = pl_read_file(path, PL_MAX_INPUT_BYTES, &data, &size);
    if (rc == PL_OK)
        rc = tok_hf_parse(out, path, data, size);
    free(data);
    return rc;
}
