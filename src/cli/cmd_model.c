/* plateau info / verify / synth: model dirs. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/model.h"
#include "plateau/safetensors.h"
#include "plateau/synth.h"
#include "plateau/verify.h"

static const char info_usage[] = "MODEL";
static const char verify_usage[] = "MODEL_DIR --manifest FILE";

const cli_spec CLI_INFO = {
    "info", info_usage, "A model's family, format, shapes, parameter count, weight files and sha256.",
    "MODEL is a Hugging Face dir (config.json and safetensors weights) or a llama2.c checkpoint (.bin).\n"
    "Says whether the model is synthetic (made by plateau synth: random weights).",
    (const cli_option[]){{NULL, NULL, NULL, NULL}}, NULL};

const cli_spec CLI_VERIFY = {
    "verify", verify_usage, "The sha256 of every tensor of a GPT-2 model dir against a manifest.",
    "The manifest has one 'SHA256  NAME  NBYTES' line per tensor (jobs/gpt2-small.tensors.sha256). Prints\n"
    "every mismatch, then 'K of N manifest tensors match'. Exit 0 only when every weight matches.",
    (const cli_option[]){{"--manifest", NULL, "FILE", "the manifest to check against (required)"},
                         {NULL, NULL, NULL, NULL}},
    NULL};


int cmd_info(int argc, char **argv)
{
    int code = cli_prepare(&CLI_INFO, &argc, &argv);
    if (code >= 0)
        return code;
    if (argc != 2)
        return cli_usage("info", info_usage, "expected exactly one MODEL");
    const char *dir = argv[1];
    pl_model *m;
    if (pl_model_open(&m, dir) != PL_OK)
        return cli_fail();
    char sha[65];
    if (pl_model_sha256(m, sha) != PL_OK) {
        pl_model_close(m);
        return cli_fail();
    }
    const pl_model_info *c = pl_model_get_info(m);
    printf("model               %s\n", dir);
    printf("family              %s\n", c->family);
    printf("format              %s\n", c->format);
    printf("synthetic           %s\n", c->synthetic ? "yes (plateau synth: random weights)" : "no");
    printf("n_layer             %d\n", c->n_layer);
    printf("n_head              %d\n", c->n_head);
    printf("n_kv_head           %d\n", c->n_kv_head);
    printf("head_dim            %d\n", c->head_dim);
    printf("n_embd              %d\n", c->d_model);
    printf("d_mlp               %d\n", c->d_mlp);
    printf("n_ctx               %d\n", c->n_ctx);
    printf("vocab_size          %d\n", c->n_vocab);
    printf("norm                %s\n", c->norm == PL_NORM_LAYERNORM ? "layernorm" : "rmsnorm");
    printf("params              %zu\n", c->n_params);
    pl_model_describe(m, stdout);
    printf("file_sha256         %s\n", sha);
    pl_model_close(m);
    return PL_EXIT_OK;
}

int cmd_verify(int argc, char **argv)
{
    int code = cli_prepare(&CLI_VERIFY, &argc, &argv);
    if (code >= 0)
        return code;
    const char *dir = NULL, *manifest = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--manifest")) {
            if (++i >= argc)
                return cli_usage("verify", verify_usage, "--manifest needs a FILE");
            manifest = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage("verify", verify_usage, "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage("verify", verify_usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir || !manifest)
        return cli_usage("verify", verify_usage, "MODEL_DIR and --manifest FILE are required");
    pl_verify_result r;
    if (pl_verify(dir, manifest, stdout, &r) != PL_OK)
        return cli_fail();
    printf("%d of %d manifest tensors match (%d mismatched, %d missing, %d not in manifest", r.n_match,
           r.n_manifest, r.n_mismatch, r.n_missing, r.n_extra);
    if (r.n_absent_buffers)
        printf("; %d causal-mask buffers absent, as in newer exports: not weights", r.n_absent_buffers);
    printf(")\n");
    fflush(stdout);
    if (r.n_match + r.n_absent_buffers != r.n_manifest || r.n_extra) {
        pl_fail("%s/model.safetensors does not match %s (%d mismatched, %d missing, %d not in manifest)", dir,
                manifest, r.n_mismatch, r.n_missing, r.n_extra);
        return cli_fail();
    }
    return PL_EXIT_OK;
}

/* 1 when DIR/MARKER is a regular file (not a link) holding a JSON object with "plateau_synthetic": true. */
static int has_synthetic_marker(const char *dir, const char *marker)
{
    char path[PATH_MAX];
    struct stat sb;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, marker) >= sizeof path || lstat(path, &sb) != 0 ||
        !S_ISREG(sb.st_mode))
        return 0;
    char *text;
    size_t len;
    if (pl_read_file(path, (size_t)1 << 20, &text, &len) != PL_OK)
        return 0;
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    int ours = json_is_true(json_object_get(root, "plateau_synthetic"));
    json_decref(root);
    return ours;
}

int cli_generator_dir(const char *cmd, const char *dir, const char *marker, int force)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT)
            return PL_OK; /* the generator creates it */
        return pl_fail("%s: %s: cannot stat: %s", cmd, dir, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return pl_fail("%s: %s is a symbolic link; plateau writes no output through a link: name the directory "
                       "itself", cmd, dir);
    if (!S_ISDIR(sb.st_mode))
        return pl_fail("%s: %s exists and is not a directory", cmd, dir);
    DIR *dp = opendir(dir);
    if (!dp)
        return pl_fail("%s: %s: cannot read the directory: %s", cmd, dir, strerror(errno));
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(dp));)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(dp);
    if (empty)
        return PL_OK;
    if (!force)
        return pl_fail("%s: %s is not empty: pass --force to replace a directory %s wrote before (never one "
                       "holding other weights)", cmd, dir, cmd);
    if (!has_synthetic_marker(dir, marker))
        return pl_fail("%s: %s holds files %s did not write (its %s does not say \"plateau_synthetic\": true): "
                       "refused even with --force, so no real weights are replaced", cmd, dir, cmd, marker);
    return PL_OK;
}

const cli_spec CLI_SYNTH = {
    "synth", "OUT_DIR --layers L --embd C --heads H --ctx N [OPTIONS]",
    "A synthetic model dir with random weights (tests and demos: its curves say nothing about a trained model).",
    "Writes config.json and model.safetensors (and the GPT-2 vocabulary files with --vocab-from) to OUT_DIR;\n"
    "the weights are seeded, so the same options give the same bytes. plateau info and the result files\n"
    "mark such a model as synthetic.",
    (const cli_option[]){
        {"--layers", NULL, "L", "blocks (required)"},
        {"--embd", NULL, "C", "residual width (required)"},
        {"--heads", NULL, "H", "attention (query) heads (required)"},
        {"--ctx", NULL, "N", "context length (required)"},
        {"--family", NULL, "F", CLI_HELP_FAMILIES},
        {"--vocab", NULL, "V", "vocabulary size (default 50257; excludes --vocab-from)"},
        {"--vocab-from", NULL, "DIR", "copy vocab.json and merges.txt from DIR (GPT-2's vocabulary)"},
        {"--dtype", NULL, "T", "f32 (default), f16 or bf16"},
        {"--seed", NULL, "S", "weight seed (default 0)"},
        {"--hf-quirks", NULL, NULL, "GPT-2: HF's transformer. prefix, tied lm_head.weight and attention buffers"},
        {"--kv-heads", NULL, "K", "key/value heads (grouped-query attention; default: --heads)"},
        {"--head-dim", NULL, "D", "head size (default: C / H)"},
        {"--mlp", NULL, "I", "MLP width (default: 4 C for gpt2, gpt_neox and gemma2, 8 C / 3 rounded up to 8 else)"},
        {"--tied", NULL, NULL, "tie the unembedding to the embedding"},
        {"--attention-bias", NULL, NULL, "biases on q, k, v and o (Llama's attention_bias)"},
        {"--rope-theta", NULL, "X", "rotary base (rotary families)"},
        {"--rope-scaling", NULL, "llama3:FACTOR:LOW:HIGH:ORIGINAL_CTX", "Llama 3 rotary scaling"},
        {"--rotary-pct", NULL, "P", "GPT-NeoX: fraction of each head that is rotated, in (0, 1]"},
        {"--sequential-residual", NULL, NULL, "GPT-NeoX: sequential instead of parallel residual"},
        {"--sliding-window", NULL, "W", "Mistral/Qwen2 sliding window; Gemma 2's (default 4096) (positions)"},
        {"--shards", NULL, "N", "write the weights as N safetensors shards with an index"},
        {"--force", NULL, NULL, "replace the files of a non-empty OUT_DIR that plateau synth wrote (config.json says "
                                "\"plateau_synthetic\": true); any other non-empty OUT_DIR is refused"},
        {NULL, NULL, NULL, NULL}},
    NULL};

/* The integer options of synth (as synth_option). */
static int synth_int_option(int argc, char **argv, int *i, pl_synth_opts *o, int *have_vocab)
{
    const char *a = argv[*i];
    struct {
        const char *flag;
        int *dst;
        long lo, hi;
    } ints[] = {
        {"--layers", &o->n_layer, 1, 4096}, {"--embd", &o->n_embd, 1, 65536}, {"--heads", &o->n_head, 1, 65536},
        {"--ctx", &o->n_ctx, 1, 1 << 20},    {"--vocab", &o->n_vocab, 257, 1 << 22},
        {"--kv-heads", &o->n_kv_head, 1, 65536}, {"--head-dim", &o->head_dim, 2, 65536},
        {"--mlp", &o->d_mlp, 1, 1 << 20}, {"--sliding-window", &o->sliding_window, 1, 1 << 24},
        {"--shards", &o->n_shards, 1, 9999},
    };
    int handled = 0;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !handled; k++)
        if (!strcmp(a, ints[k].flag)) {
            long v;
            if (++*i >= argc)
                return cli_usage("synth", CLI_SYNTH.synopsis, "%s needs a value", a);
            if (cli_parse_int(a, argv[*i], ints[k].lo, ints[k].hi, &v) != PL_OK)
                return cli_usage("synth", CLI_SYNTH.synopsis, "%s", pl_error());
            *ints[k].dst = (int)v;
            *have_vocab |= ints[k].dst == &o->n_vocab;
            handled = 1;
        }
    return handled ? 0 : -1;
}

/* Option ARGV[*i] of synth into O (*i moves past its value): 0 when taken, a usage exit code when
 * wrong, -1 when it is not a synth option (a positional argument or an unknown option). */
static int synth_option(int argc, char **argv, int *i, pl_synth_opts *o, int *have_vocab, int *force)
{
    const char *a = argv[*i];
    int taken = synth_int_option(argc, argv, i, o, have_vocab);
    if (taken != -1)
        return taken;
    if (!strcmp(a, "--seed")) {
        long v;
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "--seed needs a value");
        if (cli_parse_int(a, argv[*i], 0, LONG_MAX, &v) != PL_OK)
            return cli_usage("synth", CLI_SYNTH.synopsis, "%s", pl_error());
        o->seed = (uint64_t)v;
    } else if (!strcmp(a, "--dtype")) {
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "--dtype needs a value");
        if (!strcmp(argv[*i], "f32"))
            o->dtype = ST_F32;
        else if (!strcmp(argv[*i], "f16"))
            o->dtype = ST_F16;
        else if (!strcmp(argv[*i], "bf16"))
            o->dtype = ST_BF16;
        else
            return cli_usage("synth", CLI_SYNTH.synopsis, "--dtype: '%s' is not f32, f16 or bf16", argv[*i]);
    } else if (!strcmp(a, "--vocab-from")) {
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "--vocab-from needs a DIR");
        o->vocab_from = argv[*i];
    } else if (!strcmp(a, "--force")) {
        *force = 1;
    } else if (!strcmp(a, "--hf-quirks")) {
        o->hf_quirks = 1;
    } else if (!strcmp(a, "--tied")) {
        o->tied = 1;
    } else if (!strcmp(a, "--attention-bias")) {
        o->attention_bias = 1;
    } else if (!strcmp(a, "--sequential-residual")) {
        o->sequential = 1;
    } else if (!strcmp(a, "--family")) {
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "--family needs a value");
        o->family = argv[*i];
    } else if (!strcmp(a, "--rope-theta") || !strcmp(a, "--rotary-pct")) {
        char *end;
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "%s needs a value", a);
        /* by the whole name: both start "--ro" (a test of a[2] sent --rotary-pct to rope_theta) */
        int pct = !strcmp(a, "--rotary-pct");
        double v = strtod(argv[*i], &end);
        if (*end || !(v > 0) || (pct && v > 1))
            return cli_usage("synth", CLI_SYNTH.synopsis, "%s: '%s' is not a %s", a, argv[*i],
                             pct ? "fraction in (0, 1]" : "positive number");
        *(pct ? &o->rotary_pct : &o->rope_theta) = v;
    } else if (!strcmp(a, "--rope-scaling")) {
        char extra;
        if (++*i >= argc)
            return cli_usage("synth", CLI_SYNTH.synopsis, "--rope-scaling needs a value");
        if (sscanf(argv[*i], "llama3:%lf:%lf:%lf:%lf%c", &o->llama3[0], &o->llama3[1], &o->llama3[2], &o->llama3[3],
                   &extra) != 4 || !(o->llama3[0] > 0) || !(o->llama3[2] > o->llama3[1]) || !(o->llama3[1] > 0) ||
            !(o->llama3[3] >= 1))
            return cli_usage("synth", CLI_SYNTH.synopsis,
                             "--rope-scaling: '%s' is not llama3:FACTOR:LOW:HIGH:ORIGINAL_CTX (HIGH > LOW > 0)",
                             argv[*i]);
    } else {
        return -1;
    }
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    int code = cli_prepare(&CLI_SYNTH, &argc, &argv);
    if (code >= 0)
        return code;
    pl_synth_opts o = {.n_vocab = 50257, .dtype = ST_F32, .seed = 0};
    const char *out_dir = NULL;
    int have_vocab = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = synth_option(argc, argv, &i, &o, &have_vocab, &force);
        if (taken >= 0) {
            if (taken > 0)
                return taken;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage("synth", CLI_SYNTH.synopsis, "unknown option '%s'", a);
        } else if (!out_dir) {
            out_dir = a;
        } else {
            return cli_usage("synth", CLI_SYNTH.synopsis, "unexpected argument '%s'", a);
        }
    }
    if (!out_dir)
        return cli_usage("synth", CLI_SYNTH.synopsis, "OUT_DIR is required");
    if (!o.n_layer || !o.n_embd || !o.n_head || !o.n_ctx)
        return cli_usage("synth", CLI_SYNTH.synopsis, "--layers, --embd, --heads and --ctx are required");
    if (o.n_embd % o.n_head && !o.head_dim)
        return cli_usage("synth", CLI_SYNTH.synopsis, "--embd %d is not divisible by --heads %d", o.n_embd, o.n_head);
    if (have_vocab && o.vocab_from)
        return cli_usage("synth", CLI_SYNTH.synopsis, "--vocab and --vocab-from exclude each other");
    if (cli_generator_dir("synth", out_dir, "config.json", force) != PL_OK || pl_synth(out_dir, &o) != PL_OK)
        return cli_fail();
    return PL_EXIT_OK;
}
