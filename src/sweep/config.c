/* The sweep's INI config: one table of keys (KEYS) from which everything about a key follows --
 * parsing and conversion into pl_sweep_config, the resolved text (`plateau config`, the `config`
 * attribute of results, checkpoints), validation, and the reference in the man page and
 * docs/config.md (`plateau help --config-md`). It is plateau's one config resolver: `plateau run`,
 * `plateau config` (and through it the Slurm scripts) and `plateau merge` all read configs here.
 *
 * A key is one row: section, name, default, whether it is part of a run's identity, its type (and
 * so its parser and printer), where it lives in pl_sweep_config (offsetof), its allowed values or
 * range, and its documentation. Keys whose value is more than one number or name have a parse and
 * a print function of their own (the row names them). What cannot live in a row -- a check across
 * keys or against the direction kinds -- is in check_across_keys().
 *
 * The file is read whole (a regular file of bounded size) and handed to libinih line by line
 * through ini_parse_stream with a reader that counts the lines: the handler for a key runs right
 * after its line was read, so the count is the key's line. libinih as packaged reads at most
 * INI_MAX_LINE - 1 characters of a line into a fixed buffer; a longer line (a long path) is handed
 * over cut, and its value is then taken from the full line by libinih's own rule (after the first
 * '=' or ':', up to an inline ';' comment, trimmed), so no value is ever silently shortened.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "plateau/error.h"
#include "plateau/fileio.h"
#include "plateau/forward.h"
#include "plateau/sweep.h"
#include "sweep_internal.h"

#define MAX_KEYS ((int)(sizeof((pl_sweep_config *)0)->origin / sizeof(char *)))

typedef struct {
    char *value[MAX_KEYS];
    char *origin[MAX_KEYS]; /* "FILE:LINE" or "--set s.k=v" */
    const char *file;
    const char *text;     /* the whole config */
    size_t len, pos;      /* its length; where the next line starts */
    const char *line_text; /* the line libinih has now, in full */
    size_t line_len;
    int line_cut;         /* libinih got it cut to its buffer */
    int line;
    int failed;           /* the line the handler refused (0: none) */
} raw_config;

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} strbuf;

/* ------------------------------------------------------------ the table */

/* The names of an enum key's values: NAMES[j] is the name of stored value VALUES[j] (or j when
 * VALUES is NULL). The names may be the first field of another table's rows (STRIDE apart), so
 * metrics and base kinds are spelled only in their own tables. */
typedef struct {
    const void *names; /* const char * at names + j * stride */
    size_t stride;
    int n;
    const int *values;
} enum_def;

#define NAMES(array) {array, sizeof array[0], (int)(sizeof array / sizeof array[0]), NULL}

const char *const PL_SAMPLING_NAMES[] = {[PL_SAMPLING_DOCUMENT_START] = "document_start",
                                         [PL_SAMPLING_RANDOM_WINDOW] = "random_window"};
static const char *const format_names[] = {[PL_DATA_AUTO] = "auto", [PL_DATA_JSONL] = "jsonl",
                                           [PL_DATA_TEXT] = "text", [PL_DATA_BIN] = "bin"};
static const char *const dtype_names[] = {"uint16", "uint32"};
static const int dtype_bytes[] = {2, 4};
static const char *const bos_names[] = {[PL_BOS_AUTO] = "auto", [PL_BOS_TRUE] = "true", [PL_BOS_FALSE] = "false"};
static const char *const sign_names[] = {[PL_SAE_SIGN_NEGATIVE] = "negative", [PL_SAE_SIGN_POSITIVE] = "positive"};
static const char *const nonfinite_names[] = {"error", "mark"};

static const enum_def FORMATS = NAMES(format_names);
static const enum_def SAMPLINGS = NAMES(PL_SAMPLING_NAMES);
static const enum_def DTYPES = {dtype_names, sizeof dtype_names[0], 2, dtype_bytes};
static const enum_def BOS_MODES = NAMES(bos_names);
static const enum_def BASES = {(const char *)PL_BASE_KINDS + offsetof(pl_base_kind, name), sizeof PL_BASE_KINDS[0],
                               PL_N_BASE_KINDS, NULL};
static const enum_def STEP_MODES = NAMES(PL_STEP_MODE_NAMES);
static const enum_def RESIDUAL_BASES = NAMES(PL_RESIDUAL_BASIS_NAMES);
static const enum_def ALPHA_GRIDS = NAMES(PL_ALPHA_GRID_NAMES);
static const enum_def STEP_REFERENCES = NAMES(PL_STEP_REFERENCE_NAMES);
static const enum_def METRICS = {(const char *)PL_METRICS + offsetof(pl_metric_info, name), sizeof PL_METRICS[0],
                                 PL_N_METRICS, NULL};
static const enum_def SAE_SIGNS = NAMES(sign_names);
static const enum_def NONFINITE = NAMES(nonfinite_names);
static const enum_def NL_RULES = NAMES(PL_NL_RULE_NAMES);
static const char *const per_position_names[] = {[PL_PER_POSITION_OWN] = "own", [PL_PER_POSITION_SHARED] = "shared"};
static const char *const read_positions_names[] = {[PL_READ_POSITIONS_EACH] = "each", [PL_READ_POSITIONS_MEAN] = "mean"};
static const char *const fit_positions_names[] = {[PL_FIT_POSITIONS_SWEEP] = "sweep", [PL_FIT_POSITIONS_ALL] = "all"};
static const enum_def PER_POSITION = NAMES(per_position_names);
static const enum_def READ_POSITIONS = NAMES(read_positions_names);
static const enum_def FIT_POSITIONS = NAMES(fit_positions_names);
_Static_assert(sizeof PL_STEP_MODE_NAMES / sizeof PL_STEP_MODE_NAMES[0] == PL_N_STEP_MODES, "a name per step mode");

typedef enum {
    KT_STR,    /* char *: a path */
    KT_HOOK,   /* char *: a hook name, canonical (pl_hook_canonical) */
    KT_SHA256, /* char *: 64 lowercase hex digits */
    KT_INT,    /* int in [lo, hi] */
    KT_U64,    /* uint64_t */
    KT_DOUBLE, /* double in [lo, hi], an end open by .open */
    KT_BOOL,   /* int 0/1 */
    KT_ENUM,   /* int: one of .names */
    KT_LIST,   /* int[] at .offset, its length at .count: names of .names, each once */
    KT_CUSTOM, /* .parse and .print (NULL: the char * at .offset) */
} key_type;

enum { OPEN_LO = 1, OPEN_HI = 2 };

typedef int (*parse_fn)(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
typedef void (*print_fn)(strbuf *sb, const pl_sweep_config *cfg);

typedef struct {
    const char *section, *key;
    const char *def; /* "" = no default: required (.missing), optional, or derived */
    int hashed;      /* part of the run's identity: the checkpoint's config hash, what merged files share */
    key_type type;
    size_t offset;   /* of the value in pl_sweep_config */
    size_t count;    /* KT_LIST: of its length */
    const enum_def *names;
    double lo, hi;
    int open;             /* KT_DOUBLE: OPEN_* */
    const char *what;     /* KT_DOUBLE: what the value must be, for messages (NULL: "a number in" the range) */
    int optional;         /* strings: absent or empty leaves NULL */
    const char *missing;  /* a required key: what to give, for the message */
    parse_fn parse;
    print_fn print;
    const char *values;   /* KT_CUSTOM: what it takes, for the docs */
    const char *def_doc;  /* the default as the docs describe it, when .def is "" */
    const char *doc;      /* what it means (markdown: `code`, [text](link)) */
} key_def;

#define OFF(field) offsetof(pl_sweep_config, field)
#define VALUES_PATH "a path"

static int parse_directions(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_directions(strbuf *sb, const pl_sweep_config *cfg);
static int parse_read_position(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_position(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_position(strbuf *sb, const pl_sweep_config *cfg);
static void print_read_position(strbuf *sb, const pl_sweep_config *cfg);
static int parse_thresholds(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_thresholds(strbuf *sb, const pl_sweep_config *cfg);
static int parse_nonlinearity(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_nonlinearity(strbuf *sb, const pl_sweep_config *cfg);
static int parse_plateau_threshold(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_plateau_threshold(strbuf *sb, const pl_sweep_config *cfg);
static int parse_quantiles(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_alphas(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_alphas(strbuf *sb, const pl_sweep_config *cfg);
static int parse_slice(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_slice(strbuf *sb, const pl_sweep_config *cfg);
static void print_quantiles(strbuf *sb, const pl_sweep_config *cfg);
static int parse_output_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_radius_alpha(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_radius_alpha(strbuf *sb, const pl_sweep_config *cfg);
static int parse_start_kind(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_start_kind(strbuf *sb, const pl_sweep_config *cfg);
static int parse_checkpoint_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_model_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_model_path(strbuf *sb, const pl_sweep_config *cfg);
static int parse_models_file(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_model_label(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static int parse_model_step(raw_config *rc, int i, pl_sweep_config *cfg, const char *output);
static void print_model_step(strbuf *sb, const pl_sweep_config *cfg);

/* The order here is the order of the resolved text and of conversion (a key may use the ones
 * before it: [run] checkpoint's default is [output] path's). */
static const key_def KEYS[] = {
    {"model", "path", "", 0, KT_CUSTOM, OFF(model_path), .missing = "the model dir, e.g. models/gpt2",
     .parse = parse_model_path, .print = print_model_path, .values = "a path, or paths separated by commas",
     .def_doc = "(required, unless `paths`)",
     .doc = "a model: a Hugging Face dir of any supported family (config.json, model.safetensors or "
            "shards) or a llama2.c `.bin` checkpoint (see [Model dirs](models.md#model-dirs)). "
            "Several, separated by commas (`DIR1, DIR2, …`): a model series of one family and shape, "
            "swept in one run, every result variable over a leading `model` dimension labelled by the "
            "dirs' names (see [Model series](models.md#model-series)); a path holding a comma is "
            "not accepted here or in a `paths` file: link the dir under another name"},
    {"model", "paths", "", 0, KT_CUSTOM, OFF(models_file), .parse = parse_models_file, .values = VALUES_PATH,
     .def_doc = "(none)",
     .doc = "a model series from a file, instead of `path`: one model dir a line, `DIR [label=LABEL] "
            "[step=N]` (DIR relative to the file's directory; `#` comment lines and blank lines skipped; "
            "LABEL 1–64 characters of `A-Z a-z 0-9 . _ + -`, by default DIR's name; N the training step, "
            "an integer ≥ 0). Even one line makes a series (the result has the `model` dimension). "
            "See [Model series](models.md#model-series)"},
    {"model", "label", "", 0, KT_CUSTOM, OFF(model_label), .parse = parse_model_label, .values = "a label",
     .def_doc = "(the model dir's name)",
     .doc = "a single model's label (1–64 characters of `A-Z a-z 0-9 . _ + -`): what `plateau merge` "
            "calls it when it stacks single-model files along `model`. A series gives its labels per "
            "model (`paths`)"},
    {"model", "step", "", 0, KT_CUSTOM, OFF(model_step), .parse = parse_model_step, .print = print_model_step,
     .values = "an integer in [0, 2147483647]", .def_doc = "(none)",
     .doc = "a single model's training step, recorded as `model_step` when `plateau merge` stacks "
            "single-model files along `model` (−1 there when not given)"},
    {"model", "tokenizer", "", 0, KT_STR, OFF(tokenizer_path), .optional = 1,
     .def_doc = "(the model's own)",
     .doc = "tokenizer for text prompts: a tokenizer.json, a dir, or a llama2.c tokenizer.bin; by "
            "default the model dir's tokenizer.json (else vocab.json + merges.txt), or for a `.bin` "
            "checkpoint `tokenizer.bin` / `tok<vocab_size>.bin` beside it"},
    {"data", "prompts", "", 1, KT_STR, OFF(data_path), .missing = "a .jsonl, .txt or uint16 .bin file",
     .def_doc = "(required)",
     .doc = "`.jsonl` (one `{\"text\": ...}` object a line), `.bin` (nanoGPT-style little-endian "
            "token ids of `token_dtype`; under `document_start` its consecutive `n_ctx` windows are "
            "the documents, under `random_window` it is the token stream), anything else: plain "
            "text, one document per non-empty line"},
    {"data", "format", "auto", 1, KT_ENUM, OFF(data_format), .names = &FORMATS,
     .doc = "`auto` (by extension: `.jsonl`, `.bin`, else text), `jsonl`, `text`, `bin`"},
    {"data", "n_prompts", "1000", 1, KT_INT, OFF(n_prompts), .lo = 2, .hi = 10000000,
     .doc = "sweep prompts"},
    {"data", "n_ctx", "10", 1, KT_INT, OFF(n_ctx), .lo = 1, .hi = 1000000,
     .doc = "tokens per prompt"},
    {"data", "seed", "0", 1, KT_U64, OFF(data_seed),
     .doc = "key of the prompt selection: the order in which documents are visited (Fisher-Yates "
            "with the keyed stream), or the random windows' offsets. The first `n_prompts` prompts "
            "are the sweep's, the next `cov_prompts` fit μ and Σ (disjoint)"},
    {"data", "sampling", "document_start", 1, KT_ENUM, OFF(sampling), .names = &SAMPLINGS,
     .doc = "`document_start`: a prompt is the first `n_ctx` tokens of a document (shorter documents"
            " are skipped and counted: stderr and `short_documents_skipped`). `random_window`: the "
            "documents are concatenated with the end-of-text token after each (a `.bin` is taken as "
            "that stream already, as openwebtext token files are) and each prompt is the window of "
            "`n_ctx` tokens at offset o, o uniform in 0 … N − n_ctx − 1 (N: stream length), drawn "
            "from the stream keyed (data seed, 9); windows may span documents, as the post's did. "
            "Either way a prompt whose tokens equal an earlier prompt's is dropped (stderr and "
            "`duplicate_prompts_dropped`), so no two prompts are alike, and the data's token after "
            "each prompt is kept (`next_token`, −1 at the end of the data or of a document)"},
    {"data", "token_dtype", "uint16", 1, KT_ENUM, OFF(token_bytes), .names = &DTYPES,
     .doc = "`.bin` token width: `uint16` or `uint32` (little-endian); ids must be below the model's"
            " vocabulary"},
    {"data", "bos", "auto", 1, KT_ENUM, OFF(bos), .names = &BOS_MODES,
     .doc = "`true`: every prompt is the tokenizer's BOS token followed by `n_ctx` − 1 tokens of the"
            " data (the global attribute `bos_token` names it); `false`: none; `auto`: the model's "
            "own convention (its tokenizer prepends BOS when encoding with special tokens: Llama "
            "yes, GPT-2 no). Text data always needs the model's tokenizer; a `.bin` needs it unless "
            "`bos = false`"},
    {"perturb", "hook", "blocks.1.hook_resid_pre", 1, KT_HOOK, OFF(hook),
     .doc = "where the activation is replaced, by TransformerLens's name and meaning: "
            "`blocks.N.hook_resid_pre` / `hook_resid_mid` / `hook_resid_post`, `blocks.N.attn.hook_z` "
            "(every query head's z, concatenated: H·head_dim wide), `blocks.N.hook_attn_out`, "
            "`blocks.N.hook_mlp_out` (after Gemma 2's post-norms, as TL hooks them). Bases, μ, Σ and "
            "directions have the hook's width. A parallel-residual model (GPT-NeoX) has no "
            "`hook_resid_mid`; an SAE needs a residual hook; `centered` does not apply to `attn.hook_z`. "
            "The last block's `hook_resid_post` (the last residual) is perturbed too: no block runs after it, "
            "the final norm and the unembedding do; `ln_final.hook_normalized` is a readout only"},
    {"perturb", "position", "-1", 1, KT_CUSTOM, .parse = parse_position, .print = print_position,
     .values = "an integer N, a range `A:B`, or `all`",
     .doc = "position of the replaced activation (-1 = last; negative counts from the end), or whole "
            "contexts (Lee & Heimersheim's `pos=None`): `A:B` replaces positions A … B − 1 at once, "
            "half-open like the Python slice `activation[:, A:B]` their code indexes with (negative "
            "ends count from the end, `A:` runs to the last position), and `all` is every position "
            "0 … n_ctx − 1, BOS included, as their `activation[:] = perturbed_activation` does. "
            "Every listed position moves by the same α (see `per_position`); the readouts are read "
            "at every perturbed position (`[readout] positions`)"},
    {"perturb", "per_position", "own", 1, KT_ENUM, OFF(per_position), .names = &PER_POSITION,
     .doc = "several perturbed positions: `own` (each position its own direction of the unit's kind, "
            "drawn from the position's own keyed stream and base, as Lee & Heimersheim draw one per "
            "position) or `shared` (the first perturbed position's displacement x_k − x_0, added to "
            "every position's base: one direction, the same step at every position)"},
    {"perturb", "fit_positions", "sweep", 1, KT_ENUM, OFF(fit_positions), .names = &FIT_POSITIONS,
     .doc = "which positions of the covariance prompts μ and Σ are fitted to: `sweep` (the perturbed "
            "positions) or `all` (every position but a leading BOS: 1 … n_ctx − 1 when the prompts "
            "start with BOS, else 0 … n_ctx − 1)"},
    {"perturb", "sigma_ridge", "0", 1, KT_DOUBLE, OFF(sigma_ridge), .lo = 0.0, .hi = 1e6,
     .doc = "added to Σ's diagonal before it is factored and sampled from (Lee & Heimersheim: 0.01); "
            "0 keeps the fitted Σ"},
    {"perturb", "bases", "real", 1, KT_LIST, OFF(bases), .count = OFF(n_bases), .names = &BASES,
     .doc = "`real` (the prompt's own activation), `synthetic` (a sample of N(μ, Σ) in its place; "
            "one per prompt and sample, shared by all direction kinds), `sae_recon` (SAE(x), the [SAE](sae.md)'s "
            "reconstruction of the prompt's activation, in its place: teren's reconstruction base), `sae_bag` "
            "(Giglemiani et al.'s bag of features: the prompt's SAE code with each active feature's value "
            "moved to one of the 10 features of nearest density; one per prompt and sample), `sae_cosine` "
            "(their cosine-matched \"structured\" activation; one per prompt). The SAE kinds need [sae] path; "
            "`sae_bag` and `sae_cosine` also the SAE dir's `sparsity.safetensors` ([SAEs](sae.md))"},
    {"perturb", "directions", "cov_random", 1, KT_CUSTOM, .parse = parse_directions, .print = print_directions,
     .values = "comma-separated direction kinds, each once (a file: `file:PATH` or `file:PATH#TENSOR`)",
     .doc = "comma-separated kinds, each giving a raw direction d (the [direction "
            "kinds](science.md#direction-kinds))"},
    {"perturb", "slice", "", 1, KT_CUSTOM, .parse = parse_slice, .print = print_slice,
     .values = "empty, or two direction kinds", .def_doc = "(empty: 1-D curves)",
     .doc = "two direction kinds `KIND1, KIND2`: each unit is a base and one direction of each kind, "
            "evaluated on the (α, β) grid x + α·v1 + β·v2 with the α grid on both axes (Janiak et al.'s 2-D "
            "slices, jettjaniak/reometry `reometry/utils.py`, `interpolate_2d_slice`). v1 and v2 are each "
            "kind's step at α = 1 exactly as a 1-D curve of that kind and `step_mode` takes it; v2 then "
            "loses its component along v1 (reometry's `c - x`: Gram–Schmidt, not renormalised), so the "
            "axes are orthogonal and the α axis (β = 0) is KIND1's 1-D curve. `directions` must list these "
            "two kinds in this order (left out, it is set to them). The result holds the grid as "
            "`<m>_slice` (base, prompt, sample, alpha, beta) with its mean, median and count, and the two "
            "axes as the 1-D curves of the two kinds (`<m>` with direction = KIND1: β = 0; KIND2: α = 0, "
            "along the orthogonalised v2), whose scores and comparisons are those of 1-D curves. `fisher` "
            "and `optimized` are allowed (each kind once): the base's local geometry is computed and "
            "written as in a 1-D run. Not with whole contexts, `step_mode = arc`, a kind whose base sits at "
            "α ≠ 0"},
    {"perturb", "n_directions", "1", 1, KT_INT, OFF(n_directions), .lo = 1, .hi = 1000000,
     .doc = "samples per prompt and direction kind"},
    {"perturb", "steps", "101", 1, KT_INT, OFF(steps), .lo = 2, .hi = 100000,
     .doc = "α grid: linspace(0, alpha_max, steps) (or the log grid); with `alphas` the list's length "
            "(derived: leave it out)"},
    {"perturb", "alpha_max", "1.0", 1, KT_DOUBLE, OFF(alpha_max), .lo = 0.0, .hi = 1e6, .open = OPEN_LO,
     .doc = "last α (with `alphas` the list's last value: derived, leave it out)"},
    {"perturb", "alpha_grid", "linear", 1, KT_ENUM, OFF(alpha_grid), .names = &ALPHA_GRIDS,
     .doc = "`linear`: linspace(0, alpha_max, steps); `log`: α_0 = 0 (the clean reference) then "
            "`steps` − 1 log-spaced values from `alpha_min` to `alpha_max` (numpy's geomspace; exact at "
            "both ends)"},
    {"perturb", "alpha_min", "0", 1, KT_DOUBLE, OFF(alpha_min), .lo = 0.0, .hi = 1e6,
     .doc = "the log grid's first nonzero α, in (0, alpha_max); 0 (unset) for a linear grid"},
    {"perturb", "alphas", "", 1, KT_CUSTOM, .parse = parse_alphas, .print = print_alphas,
     .values = "empty, or increasing numbers ≥ 0, or a preset: `lee_heimersheim_fb36043`, `teren_pi`",
     .def_doc = "(empty: the grid of `alpha_grid`)",
     .doc = "an explicit α grid, strictly increasing, finite, ≥ 0 (at most 2048 values). A list that "
            "does not start at 0 gets 0 prepended: row 0 is the clean run every row is compared with (as "
            "Lee & Heimersheim compare every length with the unperturbed run), so `steps` is the list's "
            "length plus one. `steps` and `alpha_max` follow from the list (given as well, they must "
            "agree). Presets: `lee_heimersheim_fb36043` = 1, 11, 21, …, 201 (`length_list = "
            "list(range(1, 211, 10))` in `dajale423/error_pathology/scripts/sensitive_direction.py` at commit fb36043, "
            "`create_ablation_hooks`; with 0 prepended: 22 steps; these are absolute lengths: use "
            "`step_mode = absolute`), `teren_pi` = linspace(0, π, 361) (`perturbation_range = (0.0, "
            "np.pi)`, `n_steps = 361` in jettjaniak/teren, branch draft-paper-experiments, "
            "`notebooks/draft_experiment.py`: a linear multiplier of d, not an angle). The resolved "
            "text lists the values"},
    {"perturb", "step_mode", "to_target", 1, KT_ENUM, OFF(step_mode), .names = &STEP_MODES,
     .doc = "`to_target`: x_k = base + α_k·d, d unscaled (for target kinds d = target − base: α is "
            "the fraction of the way); `fixed_norm`: x_k = base + α_k·‖base‖·d/‖d‖ (α = 1 moves the "
            "base by its own norm; teren's scan); `absolute`: x_k = base + α_k·d/‖d‖ (α in "
            "residual-stream units); `arc`: Janiak et al.'s norm-preserving interpolation "
            "(jettjaniak/reometry, `reometry/utils.py`, `arc_interpolation`): x_k = μ + ‖base − μ‖·(l_k − "
            "μ)/‖l_k − μ‖ with l_k = base + α_k·d, the straight path of `to_target` pushed out to the "
            "base's distance from μ (the fitted mean; theirs is the mean of the sweep's own activations), "
            "x_0 = base exactly; with `real_other` it is their arc between two real activations (at α = 1 "
            "it reaches the partner's direction from μ, at the base's distance). A zero d leaves every step "
            "at the base (a flat curve; its normalised scores are NaN)"},
    {"perturb", "norm_scale", "1", 1, KT_DOUBLE, OFF(norm_scale), .lo = 0.0, .hi = 1e6, .open = OPEN_LO,
     .doc = "`fixed_norm` only: x_k = base + α_k·norm_scale·‖r‖·d/‖d‖. 1 is teren's scan; teren's "
            "draft-paper-experiments branch (`teren/perturbations.py`, `scan`: `direction /= 3`) is "
            "0.3333333333333333 (its `[0, π]`, 361-step grid is `alphas = teren_pi`)"},
    {"perturb", "step_reference", "own", 1, KT_ENUM, OFF(step_reference), .names = &STEP_REFERENCES,
     .doc = "`fixed_norm` only: r, whose norm sets the step length. `own`: the base itself (teren's "
            "`scan` scales d by the norm of the activation it perturbs, synthetic or not); `real`: the "
            "prompt's real activation, so a synthetic base moves the same distances as its real pair. "
            "For a real base both are the same"},
    {"perturb", "center_direction", "false", 1, KT_BOOL, OFF(center_direction),
     .doc = "d −= mean(d) (the mean over the C components) before scaling, as teren's scan does"},
    {"perturb", "residual_basis", "raw", 1, KT_ENUM, OFF(residual_basis), .names = &RESIDUAL_BASES,
     .doc = "`raw`: Hugging Face's residual as the model computes it. `centered`: TransformerLens's "
            "basis (which the post used): every vector — the real activations, the synthetic bases, "
            "the targets, d, and the L2/cosine readouts — is projected onto the mean-zero subspace "
            "(v − mean(v)·1) before any norm, scaling, distance or cosine is taken; μ and Σ are "
            "fitted in the raw basis and every sample projected, which is exactly the fit of the "
            "projected activations. LayerNorm removes the mean, so the projection changes no logit "
            "(KL, JSD, ce_loss are unchanged); only norms, L2 and cosine move. Refused for RMSNorm "
            "models, where the mean is not invisible"},
    {"perturb", "cov_prompts", "1000", 1, KT_INT, OFF(cov_prompts), .lo = 2, .hi = 10000000,
     .doc = "prompts used only to fit μ and Σ (double precision, unbiased). If Σ is not numerically "
            "positive definite, its eigenvalues are floored at 1e-9 of the largest (raised tenfold "
            "until Cholesky succeeds); how many were raised and the relative Frobenius change go to "
            "stderr and the `sigma_positive_definite_fix` attribute"},
    {"readout", "metrics", "kl, jsd, l2, cosine", 1, KT_LIST, OFF(metrics), .count = OFF(n_metrics), .names = &METRICS,
     .doc = "at the readout position: `kl` KL(clean ‖ perturbed) of the next-token distribution "
            "(nats); `jsd` the Jensen–Shannon divergence (nats, no square root); `js_dist` the "
            "Jensen–Shannon distance as the follow-ups report it, sqrt(JSD in bits) = sqrt(jsd / ln "
            "2), in [0, 1]; `ce_loss` −log q(t) of the prompt's real next token t (the token after "
            "the readout position: the prompt's own, or `next_token` at the last position; NaN where"
            " the data has none); `l2` and `cosine` the L2 distance and cosine similarity of the "
            "residual at `read_hook` (in the residual basis); `sae_l0` and `sae_recon_error` the "
            "SAE's number of active features and ‖x − SAE(x)‖ of the perturbed activation x at the "
            "hook (needs `[sae] path`; see [SAEs](sae.md)). \"Clean\" is the unperturbed "
            "run of the same base (α = 0; sae_feature_scale's α = 1)"},
    {"readout", "read_hook", "", 1, KT_HOOK, OFF(read_hook), .optional = 1,
     .def_doc = "last block's `hook_resid_post`",
     .doc = "residual read for l2 and cosine: `blocks.N.hook_resid_pre` / `_post`, or "
            "`ln_final.hook_normalized` (TransformerLens's: the final residual normalised without the "
            "final norm's weight and bias)"},
    {"readout", "positions", "mean", 1, KT_ENUM, OFF(read_positions), .names = &READ_POSITIONS,
     .doc = "several perturbed positions: `mean` (each metric is the mean over the perturbed "
            "positions of its value there, one curve per unit) or `each` (one curve per unit and "
            "position, as Lee & Heimersheim's per-position KL: every curve variable, its statistics, "
            "scores, histograms and paired comparisons get a leading `position` dimension, the "
            "absolute token position; the statistics are per position)"},
    {"readout", "position", "perturbed", 1, KT_CUSTOM, .parse = parse_read_position, .print = print_read_position,
     .values = "`perturbed`, or a position: an integer in [-1000000, 1000000]",
     .doc = "position whose next-token distribution and `read_hook` residual are read: `perturbed` "
            "(the perturbed position, as teren's code reads KL) or a position ≥ the perturbed one "
            "(negative counts from the end). By causality the logits at position q are the "
            "last-position logits of the prompt's first q + 1 tokens, so a unit runs those tokens"},
    {"readout", "onset_threshold", "0.1", 1, KT_DOUBLE, OFF(onset_threshold), .lo = 0.0, .hi = 1.0, .open = OPEN_LO,
     .doc = "threshold of the (shape-normalised) onset score"},
    {"readout", "thresholds", "kl:0.01, cosine:0.01, js_dist:0.1, ce_loss:0.1", 1, KT_CUSTOM,
     .parse = parse_thresholds, .print = print_thresholds,
     .values = "comma-separated `metric:value`, value a number > 0 or `none`",
     .doc = "absolute thresholds of `alpha_at_threshold`, `metric:value` (value > 0, or `none`), "
            "applied over these defaults; a metric without one (by default `jsd` and `l2`, whose "
            "scale depends on the model) gets no `alpha_at_threshold`. Values are in the score "
            "curve's units: nats of KL, 1 − cosine, JS distance, nats of ce_loss increase, residual "
            "units of L2"},
    {"readout", "nonlinearity", "1, 10, 0.1", 1, KT_CUSTOM, .parse = parse_nonlinearity, .print = print_nonlinearity,
     .values = "`first, last, tolerance`: steps 0 <= first < last <= 100000, tolerance a number > 0",
     .doc = "`first, last, tolerance` of `nonlinearity_alpha`: a line through steps first … last "
            "(grid indices; 0 is α = 0), and the relative deviation that ends it. Under "
            "`nonlinearity_rule = teren`, `first, last` are teren's `start_step, end_step`: the "
            "line through indices first − 1 and last − 1 (the default is teren's call, steps 0 "
            "and 9), tested from index last; `giglemiani_nl_alpha` uses `last` as their `end_step`"},
    {"readout", "nonlinearity_rule", "least_squares", 1, KT_ENUM, OFF(nl_rule), .names = &NL_RULES,
     .doc = "rule of `nonlinearity_alpha`: `least_squares` (a least-squares line through steps "
            "first … last, the deviation divided by |line|) or `teren` (teren's `NL_step`: the line "
            "through two steps, the deviation divided by the line's signed value; see "
            "[science](science.md#per-curve-scores-and-statistics)). Either way a curve that never deviates is censored "
            "(+inf), and the rule is not computed on `kl`, `jsd` or `cosine` (quadratic near α = 0)"},
    {"readout", "plateau_threshold", "20", 1, KT_CUSTOM, .parse = parse_plateau_threshold,
     .print = print_plateau_threshold, .values = "a number > 0, or `none`",
     .doc = "L2 threshold of `plateau_length` (Giglemiani et al.'s activation plateau: the first α "
            "where `l2` ≥ it; theirs 20), scored for the `l2` metric only; `none`: not computed"},
    {"readout", "giglemiani_nl_tolerance", "0.2", 1, KT_DOUBLE, OFF(giglemiani_nl_tolerance), .lo = 0.0,
     .hi = 1e300, .open = OPEN_LO,
     .doc = "relative deviation of `giglemiani_nl_alpha` (their `nl_step` threshold, 20 %)"},
    {"output", "path", "", 0, KT_CUSTOM, OFF(output_path), .parse = parse_output_path, .values = VALUES_PATH,
     .def_doc = "`<config name>.nc`",
     .doc = "NetCDF-4 output (built in memory, then written atomically: `.NAME.tmp.<pid>` beside it,"
            " fsync, rename, fsync of the directory; parent directories are created)"},
    {"output", "raw_curves", "true", 1, KT_BOOL, OFF(raw_curves),
     .doc = "store every curve `<metric>(base, direction, prompt, sample, alpha)`"},
    {"output", "quantiles", "0.05, 0.25, 0.75, 0.95", 1, KT_CUSTOM, .parse = parse_quantiles,
     .print = print_quantiles, .values = "comma-separated numbers in [0, 1], strictly increasing (at most 32)",
     .doc = "levels of `<metric>_quantiles` (strictly increasing, in [0, 1])"},
    {"output", "activations", "false", 1, KT_BOOL, OFF(activations),
     .doc = "also store the real activations `activation(prompt, resid)` (whole contexts: "
            "`activation(position, prompt, resid)`, every perturbed position), `mu(resid)` and "
            "`sigma(resid, resid_col)` (in the residual basis), to build `file:` directions from"},
    {"output", "vectors", "false", 1, KT_BOOL, OFF(vectors),
     .doc = "with `[fisher] k` or the `optimized` kind: also store `fisher_eigenvector(prompt, base, sample, "
            "eigen, resid)` and `optimum_direction(prompt, base, sample, optimum, resid)` (unit vectors, in "
            "the residual basis)"},
    {"output", "bootstrap", "2000", 1, KT_INT, OFF(bootstrap), .lo = 0, .hi = 1000000,
     .doc = "percentile-bootstrap resamples of the paired comparisons (0: no intervals)"},
    {"output", "histogram_bins", "20", 1, KT_INT, OFF(histogram_bins), .lo = 1, .hi = 100000,
     .doc = "bins of every score's histogram"},
    {"sae", "path", "", 0, KT_STR, OFF(sae_path), .optional = 1,
     .def_doc = "(none)",
     .doc = "a SAELens SAE dir (`cfg.json` + `sae_weights.safetensors`) reading `[perturb] hook`: "
            "the SAE direction kinds and readouts need it ([SAEs](sae.md))"},
    {"sae", "sha256", "", 1, KT_SHA256, OFF(sae_sha256), .optional = 1,
     .def_doc = "(the SAE's)",
     .doc = "sha256 of the dir's `cfg.json` followed by `sae_weights.safetensors` (`cat cfg.json "
            "sae_weights.safetensors | sha256sum`); filled in when the SAE opens, so the resolved "
            "config, the output and the checkpoint identify the SAE; set it to pin one (a different "
            "SAE is refused)"},
    {"sae", "active_fraction", "0.1", 1, KT_DOUBLE, OFF(sae_active_fraction), .lo = 0.0, .hi = 1.0, .open = OPEN_HI,
     .what = "a fraction in [0, 1) of the base's largest feature activation",
     .doc = "sae_active's and sae_feature_scale's features: those whose activation at the base is "
            "above this fraction of the base's largest (teren's act/max > 0.1); in [0, 1)"},
    {"sae", "sign", "negative", 1, KT_ENUM, OFF(sae_sign), .names = &SAE_SIGNS,
     .doc = "sae_active's d = −act·W_dec[f] (`negative`: α = 1 removes the feature, teren's) or "
            "+act·W_dec[f] (`positive`: α = 1 doubles it)"},
    {"run", "seed", "0", 1, KT_U64, OFF(seed),
     .doc = "key of the random streams: synthetic bases, directions, partners, bootstrap resamples"},
    {"run", "checkpoint_every", "300", 0, KT_DOUBLE, OFF(checkpoint_every), .lo = 0.0, .hi = 1e9, .open = OPEN_LO,
     .doc = "seconds between checkpoints"},
    {"run", "checkpoint", "", 0, KT_CUSTOM, OFF(checkpoint_path), .parse = parse_checkpoint_path, .values = VALUES_PATH,
     .def_doc = "`<output>.ckpt`",
     .doc = "checkpoint file (removed once the output is written, if it is the file this run wrote "
            "or resumed from)"},
    {"run", "worker_timeout", "10", 0, KT_DOUBLE, OFF(worker_timeout), .lo = 0.0, .hi = 1e9, .open = OPEN_LO,
     .doc = "seconds: a rank silent for worker_timeout + 2 × the slowest batch so far ends the job "
            "(exit 3)"},
    {"run", "threads", "1", 1, KT_INT, OFF(threads), .lo = 1, .hi = 1024,
     .doc = "OpenBLAS threads of every rank, set by plateau itself whatever `OPENBLAS_NUM_THREADS` "
            "or the machine say: OpenBLAS's results depend on its thread count, so the bits depend "
            "on this key and not on how the run was launched. Recorded in the output (`threads`, "
            "`openblas_config`)"},
    {"run", "shared_weights", "true", 0, KT_BOOL, OFF(shared_weights),
     .doc = "under MPI, one fp32 copy of the converted (F16/BF16) and fused weights per node, in an "
            "MPI-3 shared-memory window the node's first rank fills (`false`: a private copy in every "
            "rank). The bits are the same either way; F32 files are mmapped and shared regardless"},
    {"run", "nonfinite", "error", 1, KT_ENUM, OFF(nonfinite_mark), .names = &NONFINITE,
     .doc = "a NaN or infinity in a step vector, a logit or the read hook's residual: `error` stops "
            "the run (exit 2) naming the unit, α and what; `mark` stores NaN for the metrics it "
            "feeds (kl, jsd, js_dist and ce_loss for logits, l2 and cosine for the read hook; a bad "
            "α = 0 row spoils its whole curve) and leaves them out of every count, statistic and "
            "score"},
    {"fisher", "k", "0", 1, KT_INT, OFF(fisher_k), .lo = 0, .hi = 4096,
     .doc = "top eigenpairs of the Fisher metric F = Jᵀ(diag p − p pᵀ)J pulled back to `[perturb] hook` at "
            "every (prompt, base) of the sweep (J = ∂logits/∂x at the perturbed position, p the base's own "
            "next-token distribution; ½ δᵀFδ is KL's second-order term): `fisher_eigenvalue`, "
            "`fisher_trace` and per curve `kl_rayleigh`. Any hook point: a residual one, or a mid-block one "
            "(x is then attn.hook_z with every head concatenated, hook_attn_out, hook_resid_mid or "
            "hook_mlp_out, the rest of its block differentiated too). Whole contexts (several positions): "
            "every perturbed position t has the geometry a one-position sweep at t has (x_t alone, read at "
            "t; a leading `position` dimension), `kl_rayleigh` that of the unit's joint step under the "
            "readout's metric through every position. 0: none, unless `fisher` is among `[perturb] "
            "directions`, which then takes k = `n_directions` (a k below `n_directions` is refused); at "
            "most the hook's width. Exact F (one JVP row per dimension) or block Lanczos, "
            "whichever is cheaper (src/experiment/fisher.c)"},
    {"fisher", "n_pcs", "8", 1, KT_INT, OFF(fisher_n_pcs), .lo = 0, .hi = 4096,
     .doc = "leading principal components of Σ (the sweep's fit, as `sigma` stores it: in the residual "
            "basis) that every Fisher eigenvector and optimum is compared with by |cos|: `fisher_pc_cos`, "
            "`optimum_pc_cos` (with [fisher] k or `optimized`; at most the residual width is used). 0: none"},
    {"optimize", "radius_alpha", "none", 1, KT_CUSTOM, .parse = parse_radius_alpha, .print = print_radius_alpha,
     .values = "a number in (0, 1000000], or `none`",
     .doc = "radius r of the sphere ‖δ‖ = r on which the `optimized` kind maximises KL(clean ‖ perturbed at "
            "x + δ), in the step mode's units: `fixed_norm` r = radius_alpha·norm_scale·‖reference‖, "
            "`absolute` a length (refused under `to_target` and `arc`); required when `optimized` is listed"},
    {"optimize", "starts", "8", 1, KT_INT, OFF(opt_starts), .lo = 1, .hi = 4096,
     .doc = "starts of the sphere optimisation per (prompt, base), each drawn as `start_kind`"},
    {"optimize", "start_kind", "cov_random", 1, KT_CUSTOM, .parse = parse_start_kind, .print = print_start_kind,
     .values = "a direction kind (not `file`, `fisher`, `optimized` or `sae_feature_scale`)",
     .doc = "direction kind the starts are drawn as"},
    {"optimize", "orthogonal", "false", 1, KT_BOOL, OFF(opt_orthogonal),
     .doc = "each optimum of a base constrained orthogonal to the earlier ones (several distinct optima per "
            "base, as Mack & Turner's unsupervised steering vectors)"},
    {"optimize", "max_iterations", "200", 1, KT_INT, OFF(opt_max_iterations), .lo = 1, .hi = 1000000,
     .doc = "accepted ascent steps per start before it stops as capped"},
    {"optimize", "tolerance", "0.001", 1, KT_DOUBLE, OFF(opt_tolerance), .lo = 0.0, .hi = 1.0, .open = OPEN_LO | OPEN_HI,
     .doc = "convergence: ‖tangential ∇f‖ ≤ tolerance·‖∇f‖, or an accepted step changing f by ≤ "
            "tolerance²·|f| (src/experiment/sphere_opt.c; float32's floor is ~3e-4)"},
    {"optimize", "distinct_cos", "0.95", 1, KT_DOUBLE, OFF(opt_distinct_cos), .lo = 0.0, .hi = 1.0, .open = OPEN_LO,
     .doc = "optima of one base with |cos| ≥ distinct_cos (chained) are one optimum: `optimum_distinct` "
            "counts the clusters"},
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
_Static_assert(N_KEYS <= MAX_KEYS, "pl_sweep_config.origin holds every key");
static char *dupstr(const char *s)
{
    char *d = pl_malloc(strlen(s) + 1, "config string");
    if (d)
        strcpy(d, s);
    return d;
}

static int find_key(const char *section, const char *key)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].key, key))
            return i;
    return -1;
}

static int section_known(const char *section)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section))
            return 1;
    return 0;
}

static void keys_of(const char *section, char *out, size_t size)
{
    out[0] = '\0';
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section)) {
            if (out[0])
                strncat(out, ", ", size - strlen(out) - 1);
            strncat(out, KEYS[i].key, size - strlen(out) - 1);
        }
}

/* "model, data, ..." for messages. */
static void sections_of(char *out, size_t size)
{
    out[0] = '\0';
    for (int i = 0; i < N_KEYS; i++)
        if (i == 0 || strcmp(KEYS[i].section, KEYS[i - 1].section))
            snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? ", " : "", KEYS[i].section);
}

/* A line break or another control character would end the line of the stored text. */
static int check_controls(const char *origin, const char *key_name, const char *value)
{
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return pl_fail("%s: %s: %s in the value: plateau cannot store it", origin, key_name,
                           c == '\n' ? "a newline" : c == '\r' ? "a carriage return" : "a control character");
    }
    return PL_OK;
}

/* Every value must survive being written back as INI (the resolved text in outputs, checkpoints,
 * plateau config) and read back as the same value: a line break or another control character would
 * end the line and could inject keys or sections; a ';' at the start or after a blank would read
 * back as a comment; blanks at either end would be trimmed; a value starting with '[' is refused
 * as section syntax, whatever follows it. KEY_NAME is "[section] key". */
static int check_storable(const char *origin, const char *key_name, const char *value)
{
    if (check_controls(origin, key_name, value) != PL_OK)
        return PL_ERR;
    for (const char *p = value; *p; p++) {
        if (*p == ';' && (p == value || isspace((unsigned char)p[-1])))
            return pl_fail("%s: %s: '%s': a ';' %s starts an INI comment; plateau cannot store it", origin, key_name,
                           value, p == value ? "at the start of a value" : "after a blank");
    }
    size_t len = strlen(value);
    if (len && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[len - 1])))
        return pl_fail("%s: %s: '%s': blanks at the start or end of a value would be lost in the stored config",
                       origin, key_name, value);
    if (value[0] == '[')
        return pl_fail("%s: %s: '%s': a value may not start with '[' (INI section syntax)", origin, key_name, value);
    return PL_OK;
}

/* Record the value of (section, key) from ORIGIN; the first problem wins. */
static int set_raw(raw_config *rc, const char *origin, const char *section, const char *key, const char *value,
                   int allow_repeat)
{
    char names[512];
    if (!section_known(section)) {
        sections_of(names, sizeof names);
        return pl_fail("%s: [%s]: unknown section (sections: %s)", origin, section, names);
    }
    int i = find_key(section, key);
    if (i < 0) {
        keys_of(section, names, sizeof names);
        return pl_fail("%s: [%s] %s: unknown key (keys of [%s]: %s)", origin, section, key, section, names);
    }
    if (rc->origin[i] && !allow_repeat)
        return pl_fail("%s: [%s] %s: given twice (first at %s)", origin, section, key, rc->origin[i]);
    char key_name[300];
    snprintf(key_name, sizeof key_name, "[%s] %s", section, key);
    if (check_storable(origin, key_name, value) != PL_OK)
        return PL_ERR;
    free(rc->value[i]);
    free(rc->origin[i]);
    rc->value[i] = dupstr(value);
    rc->origin[i] = dupstr(origin);
    return rc->value[i] && rc->origin[i] ? PL_OK : PL_ERR;
}

/* ini_parse_stream's reader: the next line of the text, cut to libinih's buffer of NUM bytes
 * when longer (the handler then reads the value from the full line). */
static char *line_reader(char *str, int num, void *stream)
{
    raw_config *rc = stream;
    if (rc->pos >= rc->len || num < 3)
        return NULL;
    const char *start = rc->text + rc->pos;
    const char *nl = memchr(start, '\n', rc->len - rc->pos);
    size_t with_nl = nl ? (size_t)(nl - start) + 1 : rc->len - rc->pos;
    rc->pos += with_nl;
    rc->line++;
    rc->line_text = start;
    rc->line_len = nl ? with_nl - 1 : with_nl;
    rc->line_cut = with_nl > (size_t)num - 1;
    size_t n = rc->line_cut ? (size_t)num - 2 : with_nl;
    memcpy(str, start, n);
    if (rc->line_cut)
        str[n++] = '\n';
    str[n] = '\0';
    return str;
}

/* libinih's find_chars_or_comment: the first of CHARS (any char when NULL) or of an inline ';'
 * comment (a ';' after whitespace), or END. */
static const char *find_chars_or_comment(const char *s, const char *end, const char *chars)
{
    int was_space = 0;
    while (s < end && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* The value of the current line as libinih would give it with an unlimited buffer. */
static char *full_line_value(const raw_config *rc)
{
    const char *s = rc->line_text, *end = s + rc->line_len;
    const char *eq = find_chars_or_comment(s, end, "=:");
    const char *v = eq < end ? eq + 1 : end;
    const char *v_end = find_chars_or_comment(v, end, NULL);
    while (v < v_end && isspace((unsigned char)*v))
        v++;
    while (v_end > v && isspace((unsigned char)v_end[-1]))
        v_end--;
    char *out = pl_malloc((size_t)(v_end - v) + 1, "config value");
    if (out) {
        memcpy(out, v, (size_t)(v_end - v));
        out[v_end - v] = '\0';
    }
    return out;
}

static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
    raw_config *rc = user;
    if (rc->failed)
        return 1;
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:%d", rc->file, rc->line);
    /* libinih reads an indented line as the continuation of the previous key's value */
    const char *first = rc->line_text;
    if (rc->line == 1 && rc->line_len >= 3 && !memcmp(first, "\xEF\xBB\xBF", 3))
        first += 3;
    if (*first == ' ' || *first == '\t') {
        pl_fail("%s: indented line: libinih reads it as a continuation of [%s] %s; write every key = value "
                "at the start of its own line",
                origin, section, name);
        rc->failed = rc->line;
        return 0;
    }
    char *full = rc->line_cut ? full_line_value(rc) : NULL;
    if ((rc->line_cut && !full) || set_raw(rc, origin, section, name, full ? full : value, 0) != PL_OK) {
        free(full);
        rc->failed = rc->line;
        return 0;
    }
    free(full);
    return 1;
}
/* ------------------------------------------------------------ value parsers */

static const char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

#define FAIL_KEY(i, ...) key_fail(rc, i, __VA_ARGS__)
static int key_fail(const raw_config *rc, int i, const char *fmt, ...) PL_PRINTF(3, 4);
static int key_fail(const raw_config *rc, int i, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pl_fail("%s: [%s] %s: %s", rc->origin[i] ? rc->origin[i] : rc->file, KEYS[i].section, KEYS[i].key,
                   what);
}

static const char *enum_name(const enum_def *e, int j)
{
    return *(const char *const *)((const char *)e->names + (size_t)j * e->stride);
}

static int enum_value(const enum_def *e, int j) { return e->values ? e->values[j] : j; }

/* "a, b, c" */
static void enum_names(const enum_def *e, char *out, size_t size)
{
    out[0] = '\0';
    for (int j = 0; j < e->n; j++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", j ? ", " : "", enum_name(e, j));
}

static int parse_long(const raw_config *rc, int i, long lo, long hi, long *out)
{
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == s || *end || v < lo || v > hi)
        return FAIL_KEY(i, "'%s' is not an integer in [%ld, %ld]", s, lo, hi);
    *out = v;
    return PL_OK;
}

static int parse_u64(const raw_config *rc, int i, uint64_t *out)
{
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return FAIL_KEY(i, "'%s' is not a non-negative integer", s);
    *out = (uint64_t)v;
    return PL_OK;
}

static int parse_double(const raw_config *rc, int i, double *out)
{
    const key_def *k = &KEYS[i];
    const char *s = rc->value[i];
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!errno && end != s && !*end && isfinite(v) && v >= k->lo && v <= k->hi &&
        !((k->open & OPEN_LO) && v == k->lo) && !((k->open & OPEN_HI) && v == k->hi)) {
        *out = v;
        return PL_OK;
    }
    if (k->what)
        return FAIL_KEY(i, "'%s' is not %s", s, k->what);
    return FAIL_KEY(i, "'%s' is not a number in %s%g, %g%s", s, k->open & OPEN_LO ? "(" : "[", k->lo, k->hi,
                    k->open & OPEN_HI ? ")" : "]");
}

static int parse_bool(const raw_config *rc, int i, int *out)
{
    const char *s = rc->value[i];
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
        *out = 0;
    else
        return FAIL_KEY(i, "'%s' is not a boolean (true or false)", s);
    return PL_OK;
}

/* Split VALUE on commas (and, when SPACES, whitespace) into at most MAX trimmed items. An empty item
 * (`A, , B`, `A,`, `,A`) is refused by name: dropping it silently turned `path = A,` into one model. */
static int split_list(const raw_config *rc, int i, const char *value, int spaces, char **items, int max, int *n,
                      char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "%s", value);
    *n = 0;
    if (!*trim(buf))
        return FAIL_KEY(i, "empty list");
    char *seg = buf;
    for (int k = 1; seg; k++) {
        char *comma = strchr(seg, ',');
        if (comma)
            *comma = '\0';
        char *t = (char *)trim(seg);
        if (!*t)
            return FAIL_KEY(i, "'%s': item %d of the comma-separated list is empty", value, k);
        /* with SPACES, `a b, c` is three items; t is not empty, so each token is an item */
        for (char *save = NULL, *tok = spaces ? strtok_r(t, " \t", &save) : t; tok;
             tok = spaces ? strtok_r(NULL, " \t", &save) : NULL) {
            if (*n == max)
                return FAIL_KEY(i, "more than %d items", max);
            items[(*n)++] = tok;
        }
        seg = comma ? comma + 1 : NULL;
    }
    return PL_OK;
}

/* Names of E, each at most once; OUT[k] their stored values. */
static int parse_enum_list(const raw_config *rc, int i, const enum_def *e, int *out, int *n)
{
    char buf[1024], *items[16], allowed[256];
    if (split_list(rc, i, rc->value[i], 1, items, 16, n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < *n; k++) {
        int found = -1;
        for (int j = 0; j < e->n; j++)
            if (!strcmp(items[k], enum_name(e, j)))
                found = j;
        if (found < 0) {
            enum_names(e, allowed, sizeof allowed);
            return FAIL_KEY(i, "'%s' is not one of %s", items[k], allowed);
        }
        for (int j = 0; j < k; j++)
            if (out[j] == enum_value(e, found))
                return FAIL_KEY(i, "'%s' is listed twice", items[k]);
        out[k] = enum_value(e, found);
    }
    return PL_OK;
}

/* Exactly one of E's names. */
static int parse_enum_one(const raw_config *rc, int i, const enum_def *e, int *out)
{
    int n, v[16];
    if (parse_enum_list(rc, i, e, v, &n) != PL_OK)
        return PL_ERR;
    if (n != 1) {
        char allowed[256];
        enum_names(e, allowed, sizeof allowed);
        return FAIL_KEY(i, "expected one of %s", allowed);
    }
    *out = v[0];
    return PL_OK;
}

/* A string key: absent is "missing" when required, NULL when optional; empty is an error unless
 * optional. KT_HOOK is canonicalised, KT_SHA256 checked. */
static int parse_text(const raw_config *rc, int i, char **out)
{
    const key_def *k = &KEYS[i];
    const char *s = rc->value[i];
    if (!s && k->missing)
        return pl_fail("%s: [%s] %s: missing (%s)", rc->file, k->section, k->key, k->missing);
    if (!s || (!s[0] && k->optional))
        return PL_OK;
    if (!s[0])
        return FAIL_KEY(i, "empty value");
    char hook[PL_HOOK_NAME_MAX];
    if (k->type == KT_HOOK) {
        if (pl_hook_canonical(s, hook, sizeof hook) != PL_OK)
            return FAIL_KEY(i, "%s", pl_error());
        s = hook;
    }
    if (k->type == KT_SHA256 && (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64))
        return FAIL_KEY(i, "'%s' is not a sha256 (64 lowercase hex digits)", s);
    *out = dupstr(s);
    return *out ? PL_OK : PL_ERR;
}

/* Key I's value into its field of CFG, by its type. */
static int convert_key(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    const key_def *k = &KEYS[i];
    void *field = (char *)cfg + k->offset;
    long v = 0;
    switch (k->type) {
    case KT_STR:
    case KT_HOOK:
    case KT_SHA256:
        return parse_text(rc, i, field);
    case KT_INT:
        if (parse_long(rc, i, (long)k->lo, (long)k->hi, &v) != PL_OK)
            return PL_ERR;
        *(int *)field = (int)v;
        return PL_OK;
    case KT_U64:
        return parse_u64(rc, i, field);
    case KT_DOUBLE:
        return parse_double(rc, i, field);
    case KT_BOOL:
        return parse_bool(rc, i, field);
    case KT_ENUM:
        return parse_enum_one(rc, i, k->names, field);
    case KT_LIST:
        return parse_enum_list(rc, i, k->names, field, (int *)((char *)cfg + k->count));
    case KT_CUSTOM:
        return k->parse(rc, i, cfg, output);
    }
    return pl_fail("[%s] %s: no parser", k->section, k->key);
}

/* ------------------------------------------------------------ keys with a parser of their own */

/* "kind, file:PATH, file:PATH#TENSOR, ...": each direction kind at most once. */
static int parse_directions(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    char buf[4096], *items[PL_MAX_DIRECTIONS];
    int n;
    if (split_list(rc, i, rc->value[i], 0, items, PL_MAX_DIRECTIONS, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < n; k++) {
        pl_direction_spec *d = &cfg->dirs[k];
        const char *item = items[k];
        d->kind = strcmp(item, "file") ? pl_direction_kind_find(item) : -1;
        if (d->kind >= 0) {
            d->label = dupstr(item);
        } else if (!strncmp(item, "file:", 5) && item[5]) {
            d->kind = pl_direction_kind_find("file");
            d->path = dupstr(item + 5);
            if (!d->path)
                return PL_ERR;
            char *hash = strchr(d->path, '#');
            if (hash) {
                *hash = '\0';
                d->tensor = dupstr(hash + 1);
                if (!d->tensor || !d->tensor[0] || !d->path[0])
                    return FAIL_KEY(i, "'%s': expected file:PATH or file:PATH#TENSOR", item);
            }
            const char *base = strrchr(d->path, '/');
            base = base ? base + 1 : d->path;
            size_t len = strlen(base) + (d->tensor ? strlen(d->tensor) + 1 : 0) + 6;
            d->label = pl_malloc(len, "direction label");
            if (!d->label)
                return PL_ERR;
            snprintf(d->label, len, "file:%s%s%s", base, d->tensor ? "#" : "", d->tensor ? d->tensor : "");
        } else {
            return FAIL_KEY(i, "'%s' is not one of %s", item, pl_direction_kind_names());
        }
        if (!d->label)
            return PL_ERR;
        for (int j = 0; j < k; j++)
            if (!strcmp(cfg->dirs[j].label, d->label))
                return FAIL_KEY(i, "'%s' is listed twice", d->label);
        cfg->n_dirs = k + 1;
    }
    return PL_OK;
}

/* The printed form of direction D, as `directions` takes it. */
static void direction_text(const pl_direction_spec *d, char *out, size_t size)
{
    if (d->path)
        snprintf(out, size, "file:%s%s%s", d->path, d->tensor ? "#" : "", d->tensor ? d->tensor : "");
    else
        snprintf(out, size, "%s", d->label);
}

/* "KIND1, KIND2": the slice's two kinds are directions 0 and 1 (a default `directions` becomes them). */
static int parse_slice(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    char buf[4096], *items[3], have[2][4200];
    int n, di = find_key("perturb", "directions");
    cfg->slice = 0;
    const char *v = rc->value[i] ? rc->value[i] : "";
    while (isspace((unsigned char)*v))
        v++;
    if (!*v)
        return PL_OK;
    if (split_list(rc, i, v, 0, items, 3, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    if (n != 2)
        return FAIL_KEY(i, "'%s': expected two direction kinds (the alpha axis's, then the beta axis's)", v);
    if (!rc->origin[di]) { /* directions left at its default: the slice's two kinds */
        for (int d = 0; d < cfg->n_dirs; d++)
            free(cfg->dirs[d].label), free(cfg->dirs[d].path), free(cfg->dirs[d].tensor);
        memset(cfg->dirs, 0, sizeof cfg->dirs);
        cfg->n_dirs = 0;
        char *old = rc->value[di];
        rc->value[di] = dupstr(v);
        if (!rc->value[di])
            return PL_ERR;
        free(old);
        if (parse_directions(rc, di, cfg, output) != PL_OK)
            return pl_fail_prefix("%s: [perturb] slice", rc->origin[i] ? rc->origin[i] : rc->file);
    }
    for (int d = 0; d < 2 && d < cfg->n_dirs; d++)
        direction_text(&cfg->dirs[d], have[d], sizeof have[d]);
    if (cfg->n_dirs != 2 || strcmp(have[0], trim(items[0])) || strcmp(have[1], trim(items[1])))
        return FAIL_KEY(i, "'%s': [perturb] directions (%s) must list exactly the slice's two kinds, in its order",
                        v, rc->value[di]);
    cfg->slice = 1;
    return PL_OK;
}

/* One end of A:B: empty (DEF), or an integer in [-1000000, 1000000]. */
static int parse_position_end(const char *s, size_t len, int def, int *out)
{
    if (len == 0) {
        *out = def;
        return PL_OK;
    }
    char buf[32], *end;
    if (len >= sizeof buf)
        return PL_ERR;
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || *end || v < -1000000 || v > 1000000)
        return PL_ERR;
    *out = (int)v;
    return PL_OK;
}

static int parse_position(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i], *colon = strchr(s, ':');
    cfg->position_end = 0;
    if (!strcmp(s, "all")) {
        cfg->position_kind = PL_POSITION_ALL, cfg->position = 0, cfg->position_end = PL_POSITION_TO_END;
        return PL_OK;
    }
    if (!colon) {
        cfg->position_kind = PL_POSITION_ONE;
        if (parse_position_end(s, strlen(s), 0, &cfg->position) != PL_OK || !*s)
            return FAIL_KEY(i, "'%s' is not a position (an integer in [-1000000, 1000000]), a range A:B or 'all'", s);
        return PL_OK;
    }
    cfg->position_kind = PL_POSITION_RANGE;
    if (parse_position_end(s, (size_t)(colon - s), 0, &cfg->position) != PL_OK ||
        parse_position_end(colon + 1, strlen(colon + 1), PL_POSITION_TO_END, &cfg->position_end) != PL_OK)
        return FAIL_KEY(i, "'%s' is not a range A:B of positions (integers, B one past the last; negative: from "
                        "the end)", s);
    return PL_OK;
}

static void sb_printf(strbuf *sb, const char *fmt, ...) PL_PRINTF(2, 3);
static void print_position(strbuf *sb, const pl_sweep_config *cfg)
{
    if (cfg->position_kind == PL_POSITION_ALL)
        sb_printf(sb, "all");
    else if (cfg->position_kind == PL_POSITION_ONE)
        sb_printf(sb, "%d", cfg->position);
    else if (cfg->position_end == PL_POSITION_TO_END)
        sb_printf(sb, "%d:", cfg->position);
    else
        sb_printf(sb, "%d:%d", cfg->position, cfg->position_end);
}

int pl_sweep_config_positions(const pl_sweep_config *cfg, int *first, int *count)
{
    int n = cfg->n_ctx;
    const char *origin = pl_sweep_config_origin(cfg, "perturb", "position");
    if (cfg->position_kind == PL_POSITION_ONE) {
        int p = cfg->position < 0 ? n + cfg->position : cfg->position;
        if (p < 0 || p >= n)
            return pl_fail("%s: [perturb] position: %d is outside the prompt (n_ctx = %d: 0..%d, or -1..-%d)", origin,
                           cfg->position, n, n - 1, n);
        *first = p, *count = 1;
        return PL_OK;
    }
    int a = cfg->position < 0 ? n + cfg->position : cfg->position;
    int b = cfg->position_end == PL_POSITION_TO_END ? n : cfg->position_end < 0 ? n + cfg->position_end
                                                                               : cfg->position_end;
    if (a < 0 || a >= n || b > n || b <= a) {
        char text[64];
        if (cfg->position_kind == PL_POSITION_ALL)
            snprintf(text, sizeof text, "all");
        else if (cfg->position_end == PL_POSITION_TO_END)
            snprintf(text, sizeof text, "%d:", cfg->position);
        else
            snprintf(text, sizeof text, "%d:%d", cfg->position, cfg->position_end);
        return pl_fail("%s: [perturb] position: %s is %s of the prompt's positions 0..%d (n_ctx = %d; A:B is "
                       "half-open: positions A .. B-1)", origin, text, b <= a && a >= 0 && a < n ? "an empty range"
                       : "outside", n - 1, n);
    }
    *first = a, *count = b - a;
    return PL_OK;
}

static int parse_read_position(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    if (!strcmp(s, "perturbed")) {
        cfg->read_position = PL_READ_AT_PERTURBED;
        return PL_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -1000000 || v > 1000000)
        return FAIL_KEY(i, "'%s' is not 'perturbed' or a position (negative: from the end)", s);
    cfg->read_position = (int)v;
    return PL_OK;
}

static int parse_quantiles(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    char buf[1024], *items[PL_MAX_QUANTILES];
    int n;
    if (split_list(rc, i, rc->value[i], 1, items, PL_MAX_QUANTILES, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    for (int k = 0; k < n; k++) {
        char *end;
        errno = 0;
        double q = strtod(items[k], &end);
        if (errno || end == items[k] || *end || !(q >= 0.0 && q <= 1.0))
            return FAIL_KEY(i, "'%s' is not a number in [0, 1]", items[k]);
        if (k > 0 && !(q > cfg->quantiles[k - 1]))
            return FAIL_KEY(i, "quantiles must be strictly increasing ('%s' after %g)", items[k],
                            cfg->quantiles[k - 1]);
        cfg->quantiles[k] = q;
    }
    cfg->n_quantiles = n;
    return PL_OK;
}

/* [perturb] alphas' presets: VALUES[0 .. n - 1] from the sources' own definitions (the key's doc
 * cites them). */
static int alpha_preset(const char *name, double *values, int *n)
{
    if (!strcmp(name, "lee_heimersheim_fb36043")) { /* error_pathology: list(range(1, 211, 10)) */
        *n = 0;
        for (int length = 1; length < 211; length += 10)
            values[(*n)++] = length;
        return 1;
    }
    if (!strcmp(name, "teren_pi")) { /* teren: torch.linspace(0.0, np.pi, 361) */
        *n = 361;
        for (int k = 0; k < 361; k++)
            values[k] = pl_alpha_at(M_PI, 361, k);
        return 1;
    }
    return 0;
}

/* The alpha_grid / alpha_min pair (rows before alphas): a log grid needs 0 < alpha_min < alpha_max
 * and a nonzero alpha beside alpha_min and alpha_max; a linear one no alpha_min. */
static int check_grid_keys(raw_config *rc, const pl_sweep_config *cfg)
{
    int imin = find_key("perturb", "alpha_min");
    if (cfg->alpha_grid == PL_GRID_LINEAR && cfg->alpha_min != 0.0)
        return FAIL_KEY(imin, "%g is for alpha_grid = log (a linear grid starts at 0)", cfg->alpha_min);
    if (cfg->alpha_grid == PL_GRID_LOG && !(cfg->alpha_min > 0.0 && cfg->alpha_min < cfg->alpha_max))
        return FAIL_KEY(imin, "alpha_grid = log needs 0 < alpha_min < alpha_max (%g); got %g", cfg->alpha_max,
                        cfg->alpha_min);
    if (cfg->alpha_grid == PL_GRID_LOG && cfg->steps < 3)
        return FAIL_KEY(find_key("perturb", "steps"), "alpha_grid = log needs steps >= 3 (0, alpha_min, alpha_max)");
    return PL_OK;
}

/* The explicit list's numbers into cfg->alphas[1 ..] (0 at [0] either way), checked. */
static int alpha_list(raw_config *rc, int i, pl_sweep_config *cfg, char **items, int n)
{
    int off = 1;
    cfg->alphas[0] = 0.0;
    for (int k = 0; k < n; k++) {
        char *end;
        errno = 0;
        double a = strtod(items[k], &end);
        if (errno || end == items[k] || *end || !isfinite(a) || a < 0.0 || a > 1e6)
            return FAIL_KEY(i, "'%s' is not a number in [0, 1e6] (nor a preset: lee_heimersheim_fb36043, teren_pi)",
                            items[k]);
        if (k == 0 && a == 0.0) {
            off = 0; /* the list gives the clean reference itself */
        } else if (k + off > 0 && !(a > cfg->alphas[k + off - 1])) {
            return FAIL_KEY(i, "alphas must be strictly increasing ('%s' after %g)", items[k],
                            cfg->alphas[k + off - 1]);
        }
        if (k + off >= PL_MAX_ALPHAS)
            return FAIL_KEY(i, "more than %d values", PL_MAX_ALPHAS);
        cfg->alphas[k + off] = a;
    }
    cfg->alphas[0] = 0.0;
    cfg->n_alphas = n + off;
    if (cfg->n_alphas < 2)
        return FAIL_KEY(i, "'%s' has no alpha beside the clean 0", rc->value[i]);
    return PL_OK;
}

/* steps and alpha_max follow from an explicit list; given as well, they must agree. */
static int alphas_agree(raw_config *rc, pl_sweep_config *cfg)
{
    int is = find_key("perturb", "steps"), im = find_key("perturb", "alpha_max");
    double last = cfg->alphas[cfg->n_alphas - 1];
    if (rc->origin[is] && cfg->steps != cfg->n_alphas)
        return FAIL_KEY(is, "%d disagrees with [perturb] alphas, a grid of %d values with the clean 0 (leave steps out)",
                        cfg->steps, cfg->n_alphas);
    if (rc->origin[im] && cfg->alpha_max != last)
        return FAIL_KEY(im, "%.17g disagrees with [perturb] alphas, whose last value is %.17g (leave alpha_max out)",
                        cfg->alpha_max, last);
    cfg->steps = cfg->n_alphas;
    cfg->alpha_max = last;
    return PL_OK;
}

/* Empty (the grid of alpha_grid), a preset, or "a0, a1, ...". */
static int parse_alphas(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    cfg->n_alphas = 0;
    const char *v = rc->value[i] ? rc->value[i] : "";
    while (isspace((unsigned char)*v))
        v++;
    if (*v && cfg->alpha_grid != PL_GRID_LINEAR)
        return FAIL_KEY(find_key("perturb", "alpha_grid"), "%s: [perturb] alphas is the grid itself (leave alpha_grid out)",
                        PL_ALPHA_GRID_NAMES[cfg->alpha_grid]);
    if (check_grid_keys(rc, cfg) != PL_OK)
        return PL_ERR;
    if (!*v)
        return PL_OK;
    size_t len = strlen(v);
    char *buf = malloc(len + 1), **items = malloc(sizeof(char *) * PL_MAX_ALPHAS);
    int n = 0, status = PL_ERR;
    if (!buf || !items) {
        pl_fail("out of memory ([perturb] alphas)");
    } else if (alpha_preset(trim(strcpy(buf, v)), cfg->alphas + 1, &n)) {
        int off = cfg->alphas[1] == 0.0 ? 0 : 1; /* a preset that starts at 0 gives the reference */
        memmove(cfg->alphas + off, cfg->alphas + 1, sizeof(double) * (size_t)n);
        cfg->alphas[0] = 0.0;
        cfg->n_alphas = n + off;
        status = PL_OK;
    } else if (split_list(rc, i, v, 1, items, PL_MAX_ALPHAS, &n, buf, len + 1) == PL_OK) {
        status = alpha_list(rc, i, cfg, items, n);
    }
    free(buf);
    free(items);
    return status == PL_OK ? alphas_agree(rc, cfg) : PL_ERR;
}

static int metric_index(const char *name)
{
    for (int m = 0; m < PL_N_METRICS; m++)
        if (!strcmp(PL_METRICS[m].name, name))
            return m;
    return -1;
}

/* "metric:value, ..." over the defaults: a named metric gets the value ("none": no threshold). */
static int parse_thresholds(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    for (int m = 0; m < PL_N_METRICS; m++)
        cfg->thresholds[m] = NAN;
    const char *texts[2] = {KEYS[i].def, rc->value[i]};
    for (int pass = 0; pass < 2; pass++) {
        char buf[1024], *items[PL_N_METRICS * 2];
        int n;
        if (split_list(rc, i, texts[pass], 1, items, PL_N_METRICS * 2, &n, buf, sizeof buf) != PL_OK)
            return PL_ERR;
        for (int k = 0; k < n; k++) {
            char *colon = strchr(items[k], ':');
            if (!colon)
                return FAIL_KEY(i, "'%s': expected metric:value (e.g. kl:0.01)", items[k]);
            *colon = '\0';
            int m = metric_index(items[k]);
            if (m < 0)
                return FAIL_KEY(i, "'%s' is not a metric", items[k]);
            const char *v = trim(colon + 1);
            if (!strcmp(v, "none")) {
                cfg->thresholds[m] = NAN;
                continue;
            }
            char *end;
            errno = 0;
            double t = strtod(v, &end);
            if (errno || end == v || *end || !isfinite(t) || !(t > 0.0))
                return FAIL_KEY(i, "%s:'%s' is not a positive number (or none)", items[k], v);
            cfg->thresholds[m] = t;
        }
    }
    return PL_OK;
}

/* "first, last, tolerance" of nonlinearity_alpha. */
static int parse_nonlinearity(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    char buf[256], *items[3];
    int n;
    if (split_list(rc, i, rc->value[i], 1, items, 3, &n, buf, sizeof buf) != PL_OK)
        return PL_ERR;
    char *e0, *e1, *e2;
    errno = 0;
    long a = n == 3 ? strtol(items[0], &e0, 10) : -1, b = n == 3 ? strtol(items[1], &e1, 10) : -1;
    double tol = n == 3 ? strtod(items[2], &e2) : NAN;
    if (n != 3 || errno || *e0 || *e1 || *e2 || a < 0 || b <= a || b > 100000 || !isfinite(tol) || !(tol > 0.0))
        return FAIL_KEY(i, "'%s' is not 'first, last, tolerance' (steps 0 <= first < last, tolerance > 0)",
                        rc->value[i]);
    cfg->nl_first = (int)a;
    cfg->nl_last = (int)b;
    cfg->nl_tolerance = tol;
    return PL_OK;
}

/* Key I's value as a number > 0, or `none` (NaN) into *OUT. */
static int parse_positive_or_none(raw_config *rc, int i, double *out)
{
    const char *s = rc->value[i];
    if (!strcmp(s, "none")) {
        *out = NAN;
        return PL_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0.0))
        return FAIL_KEY(i, "'%s' is not a number > 0 or 'none'", s);
    *out = v;
    return PL_OK;
}

/* A number > 0, or `none` (NaN: plateau_length not computed). */
static int parse_plateau_threshold(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    return parse_positive_or_none(rc, i, &cfg->plateau_threshold);
}

/* -o OUTPUT, else the key, else <config stem>.nc in the current directory. The name is stored in
 * the resolved text like any value, so it must be storable wherever it came from. */
static int parse_output_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    if (output && !output[0])
        return pl_fail("-o: the output path is empty");
    if (output) {
        if (check_storable("-o", "[output] path", output) != PL_OK)
            return PL_ERR;
        cfg->output_path = dupstr(output);
        free(rc->origin[i]); /* messages about the output name where it came from */
        rc->origin[i] = dupstr("-o");
    } else if (rc->value[i] && rc->value[i][0]) {
        cfg->output_path = dupstr(rc->value[i]);
    } else {
        const char *base = strrchr(rc->file, '/');
        base = base ? base + 1 : rc->file;
        size_t len = strlen(base);
        if (len > 4 && !strcmp(base + len - 4, ".ini"))
            len -= 4;
        cfg->output_path = pl_malloc(len + 4, "output path");
        if (cfg->output_path)
            snprintf(cfg->output_path, len + 4, "%.*s.nc", (int)len, base);
        if (cfg->output_path && check_storable(rc->file, "[output] path (the config's name with .nc)",
                                               cfg->output_path) != PL_OK)
            return PL_ERR;
    }
    return cfg->output_path ? PL_OK : PL_ERR;
}

/* The key, else <output path>.ckpt. */
static int parse_checkpoint_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *given = rc->value[i] && rc->value[i][0] ? rc->value[i] : NULL;
    size_t len = given ? strlen(given) + 1 : strlen(cfg->output_path) + 6;
    cfg->checkpoint_path = pl_malloc(len, "checkpoint path");
    if (!cfg->checkpoint_path)
        return PL_ERR;
    snprintf(cfg->checkpoint_path, len, given ? "%s" : "%s.ckpt", given ? given : cfg->output_path);
    return PL_OK;
}

/* ------------------------------------------------------------ [model]: one model or a series */

#define MAX_SERIES_MODELS 4096

/* One dir, as ever, or DIR1, DIR2, ...: a series (model_series.c), model_path its first. Absent
 * when [model] paths lists the models. */
static int parse_model_path(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i], *file = rc->value[find_key("model", "paths")];
    if (s && s[0] && file && file[0])
        return FAIL_KEY(i, "give [model] path or [model] paths (a file listing the models), not both");
    if (file && file[0])
        return PL_OK;
    if (!s)
        return pl_fail("%s: [model] path: missing (%s, or a series: DIR1, DIR2, ... or [model] paths = FILE)",
                       rc->file, KEYS[i].missing);
    if (!s[0])
        return FAIL_KEY(i, "empty value");
    size_t len = strlen(s) + 1;
    char *buf = pl_malloc(len, "model paths"), **items = pl_calloc(MAX_SERIES_MODELS, sizeof *items, "model paths");
    int n = 0, st = buf && items ? split_list(rc, i, s, 0, items, MAX_SERIES_MODELS, &n, buf, len) : PL_ERR;
    if (st == PL_OK && n == 1) {
        cfg->model_path = dupstr(items[0]);
        st = cfg->model_path ? PL_OK : PL_ERR;
    } else if (st == PL_OK) {
        char where[1200];
        snprintf(where, sizeof where, "%s: [model] path", rc->origin[i] ? rc->origin[i] : rc->file);
        st = pl_model_series_from_list(items, n, where, &cfg->models);
        cfg->n_models = st == PL_OK ? n : 0;
        cfg->model_path = st == PL_OK ? dupstr(cfg->models[0].path) : NULL;
        st = cfg->model_path ? st : PL_ERR;
    }
    free(buf);
    free(items);
    return st;
}

/* [model] paths FILE: the series it lists (model_series.c), model_path its first. */
static int parse_models_file(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    if (!s || !s[0])
        return PL_OK;
    cfg->models_file = dupstr(s);
    if (!cfg->models_file || pl_model_series_read(s, &cfg->models, &cfg->n_models) != PL_OK)
        return pl_fail_prefix("%s", rc->origin[i] ? rc->origin[i] : rc->file);
    cfg->model_path = dupstr(cfg->models[0].path);
    return cfg->model_path ? PL_OK : PL_ERR;
}

static int parse_model_label(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    if (!s || !s[0])
        return PL_OK;
    if (cfg->n_models)
        return FAIL_KEY(i, "a series labels each model (label= in a [model] paths file), not with [model] label");
    if (pl_model_label_check(s) != PL_OK)
        return FAIL_KEY(i, "%s", pl_error());
    cfg->model_label = dupstr(s);
    return cfg->model_label ? PL_OK : PL_ERR;
}

static int parse_model_step(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    cfg->model_step = -1;
    if (!s || !s[0])
        return PL_OK;
    if (cfg->n_models)
        return FAIL_KEY(i, "a series gives each model's step (step= in a [model] paths file), not [model] step");
    uint64_t v;
    if (parse_u64(rc, i, &v) != PL_OK)
        return PL_ERR;
    if (v > (uint64_t)INT32_MAX) /* model_step is a 32-bit int in the file */
        return FAIL_KEY(i, "'%s' is not an integer in [0, 2147483647]", s);
    cfg->model_step = (int64_t)v;
    return PL_OK;
}

/* ------------------------------------------------------------ load */

static int K(const char *section, const char *key) { return find_key(section, key); }

/* What no single row can check: the data format from the prompts' extension, and what the direction
 * kinds and metrics need of the rest of the config. */
/* What a slice cannot be combined with, each refused by name. */
static int check_slice(raw_config *rc, const pl_sweep_config *cfg)
{
    int i = K("perturb", "slice");
    const char *at = rc->origin[i] ? rc->origin[i] : rc->file, *why = NULL;
    if (cfg->position_kind != PL_POSITION_ONE)
        why = "whole contexts ([perturb] position A:B or all): a slice perturbs one position";
    else if (cfg->step_mode == PL_STEP_ARC)
        why = "step_mode = arc: the arc is a path, not a plane (use to_target, fixed_norm or absolute)";
    else if (cfg->steps > 1000)
        why = "more than 1000 steps: a unit is steps^2 rows";
    for (int d = 0; !why && d < 2; d++)
        if (PL_DIRECTION_KINDS[cfg->dirs[d].kind].ref_alpha != 0.0)
            why = "a kind whose base sits at alpha != 0 (sae_feature_scale)";
    return why ? pl_fail("%s: [perturb] slice: not with %s", at, why) : PL_OK;
}

static void print_value(strbuf *sb, const pl_sweep_config *cfg, int i);

/* Key I given by the user with a value other than its default (a given default changes nothing, and
 * the resolved text, which writes every key, must read back). */
static int given_not_default(const raw_config *rc, const pl_sweep_config *cfg, int i)
{
    if (!rc->origin[i])
        return 0;
    strbuf sb = {0};
    print_value(&sb, cfg, i);
    int differs = sb.failed || strcmp(sb.buf ? sb.buf : "", KEYS[i].def);
    free(sb.buf);
    return differs;
}

/* The local-geometry keys only the `optimized` kind ([optimize]) or [fisher] k and the fisher and
 * optimized kinds ([fisher] n_pcs, [output] vectors) read: set without them they would be accepted and
 * do nothing, so they are refused as norm_scale is outside fixed_norm (check_step_keys, directions.c). */
static int check_local_keys(const raw_config *rc, const pl_sweep_config *cfg)
{
    int optimized = pl_optimized_listed(cfg), local = optimized || pl_fisher_k(cfg) > 0;
    for (int i = 0; i < N_KEYS; i++) {
        int opt = !strcmp(KEYS[i].section, "optimize");
        int geo = (!strcmp(KEYS[i].section, "fisher") && !strcmp(KEYS[i].key, "n_pcs")) ||
                  (!strcmp(KEYS[i].section, "output") && !strcmp(KEYS[i].key, "vectors"));
        if (opt && !optimized && given_not_default(rc, cfg, i))
            return FAIL_KEY(i, "has no effect: only the `optimized` direction kind reads [optimize], and [perturb] "
                               "directions does not list it (list it, or remove the key)");
        if (geo && !local && given_not_default(rc, cfg, i))
            return FAIL_KEY(i, "has no effect: it is for the local geometry, and there is none (set [fisher] k, or "
                               "list the fisher or optimized kind in [perturb] directions, or remove the key)");
    }
    return PL_OK;
}

static int check_across_keys(raw_config *rc, pl_sweep_config *cfg)
{
    if (cfg->data_format == PL_DATA_AUTO) { /* by extension: .jsonl, .bin, else plain text */
        size_t len = strlen(cfg->data_path);
        cfg->data_format = len >= 6 && !strcmp(cfg->data_path + len - 6, ".jsonl") ? PL_DATA_JSONL
                           : len >= 4 && !strcmp(cfg->data_path + len - 4, ".bin") ? PL_DATA_BIN
                                                                                   : PL_DATA_TEXT;
    }
    const char *which = NULL;
    if (pl_experiment_check_config(cfg, &which) != PL_OK) {
        const char *section = !strcmp(which, "metrics") ? "readout" : !strcmp(which, "path") ? "sae" : "perturb";
        int i = K(section, which);
        return pl_fail_prefix("%s: [%s] %s", rc->origin[i] ? rc->origin[i] : rc->file, section, which);
    }
    if (cfg->slice && check_slice(rc, cfg) != PL_OK)
        return PL_ERR;
    if (check_local_keys(rc, cfg) != PL_OK)
        return PL_ERR;
    if (cfg->nl_rule == PL_NL_TEREN && cfg->nl_first < 1) { /* teren's start_step - 1 would be step -1 */
        int i = K("readout", "nonlinearity");
        return pl_fail("%s: [readout] nonlinearity: first = 0 under nonlinearity_rule = teren: teren's start_step "
                       "counts from 1 (its line goes through step start_step - 1); use 1 for step 0",
                       rc->origin[i] ? rc->origin[i] : rc->file);
    }
    return PL_OK;
}

static int convert(raw_config *rc, pl_sweep_config *cfg, const char *output)
{
    for (int i = 0; i < N_KEYS; i++)
        if (convert_key(rc, i, cfg, output) != PL_OK)
            return PL_ERR;
    return check_across_keys(rc, cfg);
}
/* The longest config plateau reads: far above any real one (a few hundred bytes). */
#define MAX_CONFIG_BYTES ((size_t)1 << 20)

int pl_sweep_config_load(pl_sweep_config *cfg, const char *path, char *const *sets, int n_sets, const char *output)
{
    char *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    if (pl_read_file(path, MAX_CONFIG_BYTES, &text, &len) != PL_OK)
        return pl_fail_prefix("config");
    int rc = pl_sweep_config_parse(cfg, path, text, len, sets, n_sets, output);
    free(text);
    return rc;
}

/* SETS[i] ("section.key=value") over the file's values, in order; a later one wins. */
static int apply_sets(raw_config *rc, char *const *sets, int n_sets)
{
    for (int s = 0; s < n_sets; s++) {
        char origin[1100];
        snprintf(origin, sizeof origin, "--set %s", sets[s]);
        const char *eq = strchr(sets[s], '='), *dot = strchr(sets[s], '.');
        if (!eq || !dot || dot > eq || dot == sets[s] || dot + 1 == eq)
            return pl_fail("%s: expected --set section.key=value", origin);
        char section[256], key[256];
        snprintf(section, sizeof section, "%.*s", (int)(dot - sets[s]), sets[s]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        char key_name[600];
        snprintf(key_name, sizeof key_name, "[%s] %s", section, key);
        /* a line break is refused even at the ends, where trimming would hide it */
        if (check_controls(origin, key_name, eq + 1) != PL_OK)
            return PL_ERR;
        char *value = dupstr(eq + 1);
        int rcode = value ? set_raw(rc, origin, section, key, trim(value), 1) : PL_ERR;
        free(value);
        if (rcode != PL_OK)
            return PL_ERR;
    }
    return PL_OK;
}

/* TEXT through libinih into RC (every problem is an error naming its line). */
static int read_ini(raw_config *rc, const char *name, const char *text, size_t len)
{
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        return pl_fail("%s:%d: a NUL byte (not a text file)", name, line);
    }
    int bad_line = ini_parse_stream(line_reader, rc, on_ini_key, rc);
    /* a syntax error before the refused key is the one to report: "[model" (no ']') makes the keys
     * after it keys of the section "" */
    if (rc->failed && !(bad_line > 0 && bad_line < rc->failed))
        return PL_ERR;
    if (bad_line > 0)
        return pl_fail("%s:%d: syntax error (expected [section] or key = value)", name, bad_line);
    if (bad_line < 0)
        return pl_fail("%s: cannot read config", name);
    return PL_OK;
}

int pl_sweep_config_parse(pl_sweep_config *cfg, const char *name, const char *text, size_t len, char *const *sets,
                          int n_sets, const char *output)
{
    memset(cfg, 0, sizeof *cfg);
    raw_config rc = {0};
    rc.file = name;
    rc.text = text;
    rc.len = len;
    int status = PL_ERR;
    cfg->file = dupstr(name);
    if (!cfg->file || read_ini(&rc, name, text, len) != PL_OK || apply_sets(&rc, sets, n_sets) != PL_OK)
        goto done;
    for (int i = 0; i < N_KEYS; i++) {
        if (!rc.value[i] && KEYS[i].def[0]) {
            rc.value[i] = dupstr(KEYS[i].def);
            if (!rc.value[i])
                goto done;
        }
    }
    status = convert(&rc, cfg, output);
    for (int i = 0; i < N_KEYS; i++) {
        cfg->origin[i] = rc.origin[i];
        rc.origin[i] = NULL;
    }
done:
    for (int i = 0; i < N_KEYS; i++) {
        free(rc.value[i]);
        free(rc.origin[i]);
    }
    if (status != PL_OK)
        pl_sweep_config_free(cfg);
    return status;
}

/* Every char * of the config, through the table (the direction specs are the one list of them). */
void pl_sweep_config_free(pl_sweep_config *cfg)
{
    free(cfg->file);
    pl_model_series_free(cfg->models, cfg->n_models);
    free(cfg->model_path); /* a custom key with a printer of its own: the loop below leaves it */
    for (int i = 0; i < N_KEYS; i++) {
        key_type t = KEYS[i].type;
        if (t == KT_STR || t == KT_HOOK || t == KT_SHA256 || (t == KT_CUSTOM && !KEYS[i].print))
            free(*(char **)((char *)cfg + KEYS[i].offset));
    }
    for (int d = 0; d < PL_MAX_DIRECTIONS; d++) {
        free(cfg->dirs[d].label);
        free(cfg->dirs[d].path);
        free(cfg->dirs[d].tensor);
    }
    for (int i = 0; i < MAX_KEYS; i++)
        free(cfg->origin[i]);
    memset(cfg, 0, sizeof *cfg);
}

const char *pl_sweep_config_origin(const pl_sweep_config *cfg, const char *section, const char *key)
{
    int i = find_key(section, key);
    return cfg->origin[i] ? cfg->origin[i] : cfg->file;
}

/* [perturb] hook and [readout] read_hook as hook points of MODEL (read_hook's default filled). */
static int resolve_hooks(pl_sweep_config *cfg, const pl_model *model, pl_hook_point *hook, pl_hook_point *read)
{
    const pl_model_info *mcfg = pl_model_get_info(model);
    const char *origin = pl_sweep_config_origin(cfg, "perturb", "hook");
    if (pl_hook_point_parse(model, cfg->hook, hook) != PL_OK)
        return pl_fail_prefix("%s: [perturb] hook", origin);
    if (hook->site == PL_SITE_FINAL_NORMALIZED)
        return pl_fail("%s: [perturb] hook: '%s' is a readout only: plateau perturbs the residual stream and the "
                       "blocks' hook points, not the final norm's output (the last residual, before the final "
                       "norm, is blocks.%d.hook_resid_post)",
                       origin, cfg->hook, mcfg->n_layer - 1);
    /* blocks.{L-1}.hook_resid_post (resid index L, TL's common final hook) is perturbed as any other:
     * no block runs after it, ln_final and the unembedding do */
    if (hook->site == PL_SITE_ATTN_Z && cfg->residual_basis == PL_BASIS_CENTERED)
        return pl_fail("%s: [perturb] residual_basis: centered is TransformerLens's basis of what is written to the "
                       "residual stream; '%s' (the heads' z) is not (use raw)",
                       pl_sweep_config_origin(cfg, "perturb", "residual_basis"), cfg->hook);
    if (!cfg->read_hook) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.hook_resid_post", mcfg->n_layer - 1);
        cfg->read_hook = dupstr(name);
        if (!cfg->read_hook)
            return PL_ERR;
    }
    if (pl_hook_point_parse(model, cfg->read_hook, read) != PL_OK)
        return pl_fail_prefix("%s: [readout] read_hook", pl_sweep_config_origin(cfg, "readout", "read_hook"));
    if (pl_hook_resid_index(*read) < 0 && read->site != PL_SITE_FINAL_NORMALIZED)
        return pl_fail("%s: [readout] read_hook: '%s': the readout is the residual stream (blocks.N.hook_resid_pre "
                       "or blocks.N.hook_resid_post) or ln_final.hook_normalized",
                       pl_sweep_config_origin(cfg, "readout", "read_hook"), cfg->read_hook);
    return PL_OK;
}

int pl_sweep_config_resolve(pl_sweep_config *cfg, const pl_model *model, pl_hook_point *hook, pl_hook_point *read,
                            int *pos, int *read_pos)
{
    const pl_model_info *mcfg = pl_model_get_info(model);
    if (resolve_hooks(cfg, model, hook, read) != PL_OK)
        return PL_ERR;
    if (cfg->n_ctx > mcfg->n_ctx)
        return pl_fail("%s: [data] n_ctx: %d is more than the model's %d positions",
                       pl_sweep_config_origin(cfg, "data", "n_ctx"), cfg->n_ctx, mcfg->n_ctx);
    int p, n_pos;
    if (pl_sweep_config_positions(cfg, &p, &n_pos) != PL_OK)
        return PL_ERR;
    *pos = p;
    if (n_pos > 1 && cfg->read_position != PL_READ_AT_PERTURBED)
        return pl_fail("%s: [readout] position: %d with [perturb] position = several positions (%s): the readouts "
                       "are read at every perturbed position; leave [readout] position at `perturbed`",
                       pl_sweep_config_origin(cfg, "readout", "position"), cfg->read_position,
                       pl_sweep_config_origin(cfg, "perturb", "position"));
    /* [fisher] k, `fisher` and `optimized` with several positions (whole contexts): each site (prompt,
     * position) has the geometry a one-position sweep there has (local_ops.c), at any hook point */
    int q = cfg->read_position == PL_READ_AT_PERTURBED ? p
            : cfg->read_position < 0                   ? cfg->n_ctx + cfg->read_position
                                                       : cfg->read_position;
    if (q < p || q >= cfg->n_ctx)
        return pl_fail("%s: [readout] position: %d is outside the positions the perturbation at %d can reach "
                       "(%d..%d: causal attention leaves earlier ones unchanged)",
                       pl_sweep_config_origin(cfg, "readout", "position"), cfg->read_position, p, p, cfg->n_ctx - 1);
    *read_pos = q;
    if (cfg->residual_basis == PL_BASIS_CENTERED && mcfg->norm != PL_NORM_LAYERNORM)
        return pl_fail("%s: [perturb] residual_basis: centered is TransformerLens's basis for LayerNorm models; this "
                       "model normalises with RMSNorm, which does not remove the mean (use raw)",
                       pl_sweep_config_origin(cfg, "perturb", "residual_basis"));
    return PL_OK;
}

/* ------------------------------------------------------------ resolved text */

static void sb_printf(strbuf *sb, const char *fmt, ...) PL_PRINTF(2, 3);
static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, sb->buf ? sb->cap - sb->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = 1;
            return;
        }
        if (sb->buf && sb->len + (size_t)n < sb->cap) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = (sb->cap ? sb->cap * 2 : 1024) + (size_t)n;
        char *nb = realloc(sb->buf, cap);
        if (!nb) {
            sb->failed = 1;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
}

/* The shortest %g that reads back as the same double (0.1, not 0.10000000000000001). */
static void sb_double(strbuf *sb, double v)
{
    char text[64];
    if (v == floor(v) && fabs(v) < 1e15) {
        sb_printf(sb, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    sb_printf(sb, "%s", text);
}

static void print_directions(strbuf *sb, const pl_sweep_config *cfg)
{
    for (int j = 0; j < cfg->n_dirs; j++) {
        const pl_direction_spec *d = &cfg->dirs[j];
        if (d->path)
            sb_printf(sb, "%sfile:%s%s%s", j ? ", " : "", d->path, d->tensor ? "#" : "", d->tensor ? d->tensor : "");
        else
            sb_printf(sb, "%s%s", j ? ", " : "", d->label);
    }
}

static void print_slice(strbuf *sb, const pl_sweep_config *cfg)
{
    char text[4200];
    for (int d = 0; cfg->slice && d < 2; d++) {
        direction_text(&cfg->dirs[d], text, sizeof text);
        sb_printf(sb, "%s%s", d ? ", " : "", text);
    }
}

static void print_read_position(strbuf *sb, const pl_sweep_config *cfg)
{
    if (cfg->read_position == PL_READ_AT_PERTURBED)
        sb_printf(sb, "perturbed");
    else
        sb_printf(sb, "%d", cfg->read_position);
}

/* Every metric's threshold, so the text says all of them whatever the defaults become. */
static void print_thresholds(strbuf *sb, const pl_sweep_config *cfg)
{
    for (int m = 0; m < PL_N_METRICS; m++) {
        sb_printf(sb, "%s%s:", m ? ", " : "", PL_METRICS[m].name);
        if (isfinite(cfg->thresholds[m]))
            sb_double(sb, cfg->thresholds[m]);
        else
            sb_printf(sb, "none");
    }
}

static void print_nonlinearity(strbuf *sb, const pl_sweep_config *cfg)
{
    sb_printf(sb, "%d, %d, ", cfg->nl_first, cfg->nl_last);
    sb_double(sb, cfg->nl_tolerance);
}

/* The explicit grid's values, 0 first (empty when the grid is alpha_grid's). */
static void print_alphas(strbuf *sb, const pl_sweep_config *cfg)
{
    for (int k = 0; k < cfg->n_alphas; k++) {
        sb_printf(sb, "%s", k ? ", " : "");
        sb_double(sb, cfg->alphas[k]);
    }
}

/* [optimize] radius_alpha: a number in (0, 1e6], or `none` (NaN). The bound is alpha_max's and
 * norm_scale's (the radius is in the same units): a radius of 1e300 (or 1e39) overflowed float32 in
 * the model's first step and the run stopped on "the objective is not finite", not naming the key. */
static int parse_radius_alpha(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    if (!strcmp(s, "none")) {
        cfg->opt_radius_alpha = NAN;
        return PL_OK;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0.0) || v > 1e6)
        return FAIL_KEY(i, "'%s' is not a number in (0, 1000000] or 'none'", s);
    cfg->opt_radius_alpha = v;
    return PL_OK;
}

static void print_radius_alpha(strbuf *sb, const pl_sweep_config *cfg)
{
    if (isfinite(cfg->opt_radius_alpha))
        sb_double(sb, cfg->opt_radius_alpha);
    else
        sb_printf(sb, "none");
}

/* Whether kind K can draw the optimiser's starts: not `file` (no per-base direction), `fisher` or
 * `optimized` (they come from the local geometry the starts feed), nor a kind whose alpha is not a
 * step length (ref_alpha != 0: sae_feature_scale needs to_target, which `optimized` refuses). */
static int start_kind_ok(int k)
{
    const char *name = PL_DIRECTION_KINDS[k].name;
    return strcmp(name, "file") && strcmp(name, "fisher") && strcmp(name, "optimized") &&
           PL_DIRECTION_KINDS[k].ref_alpha == 0.0;
}

/* [optimize] start_kind: a direction kind that draws a direction from the base alone. */
static int parse_start_kind(raw_config *rc, int i, pl_sweep_config *cfg, const char *output)
{
    (void)output;
    const char *s = rc->value[i];
    int k = pl_direction_kind_find(s);
    if (k >= 0 && start_kind_ok(k)) {
        cfg->opt_start_kind = k;
        return PL_OK;
    }
    char kinds[512] = ""; /* only the kinds a start can be: the message lists what would work */
    for (int j = 0; j < PL_N_DIRECTION_KINDS; j++)
        if (start_kind_ok(j))
            snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", kinds[0] ? ", " : "",
                     PL_DIRECTION_KINDS[j].name);
    return FAIL_KEY(i, "'%s' is not a direction kind a start can be drawn as (%s)", s, kinds);
}

static void print_start_kind(strbuf *sb, const pl_sweep_config *cfg)
{
    sb_printf(sb, "%s", PL_DIRECTION_KINDS[cfg->opt_start_kind].name);
}

static void print_plateau_threshold(strbuf *sb, const pl_sweep_config *cfg)
{
    if (isfinite(cfg->plateau_threshold))
        sb_double(sb, cfg->plateau_threshold);
    else
        sb_printf(sb, "none");
}

static void print_quantiles(strbuf *sb, const pl_sweep_config *cfg)
{
    for (int j = 0; j < cfg->n_quantiles; j++) {
        sb_printf(sb, "%s", j ? ", " : "");
        sb_double(sb, cfg->quantiles[j]);
    }
}

/* DIR1, DIR2, ... of a series named in [model] path; nothing when [model] paths lists them. */
static void print_model_path(strbuf *sb, const pl_sweep_config *cfg)
{
    if (cfg->models_file)
        return;
    for (int k = 0; k < cfg->n_models; k++)
        sb_printf(sb, "%s%s", k ? ", " : "", cfg->models[k].path);
    if (!cfg->n_models && cfg->model_path)
        sb_printf(sb, "%s", cfg->model_path);
}

static void print_model_step(strbuf *sb, const pl_sweep_config *cfg)
{
    if (cfg->model_step >= 0)
        sb_printf(sb, "%lld", (long long)cfg->model_step);
}

/* The name of stored value V of E ("" when none has it). */
static const char *enum_name_of(const enum_def *e, int v)
{
    for (int j = 0; j < e->n; j++)
        if (enum_value(e, j) == v)
            return enum_name(e, j);
    return "";
}

/* Key I's value as the resolved text writes it: what its parser reads back as the same value. */
static void print_value(strbuf *sb, const pl_sweep_config *cfg, int i)
{
    const key_def *k = &KEYS[i];
    const void *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case KT_CUSTOM:
        if (k->print)
            k->print(sb, cfg);
        else /* a string */
            sb_printf(sb, "%s", *(char *const *)field ? *(char *const *)field : "");
        return;
    case KT_STR:
    case KT_HOOK:
    case KT_SHA256:
        sb_printf(sb, "%s", *(char *const *)field ? *(char *const *)field : "");
        return;
    case KT_INT:
        sb_printf(sb, "%d", *(const int *)field);
        return;
    case KT_U64:
        sb_printf(sb, "%llu", (unsigned long long)*(const uint64_t *)field);
        return;
    case KT_DOUBLE:
        sb_double(sb, *(const double *)field);
        return;
    case KT_BOOL:
        sb_printf(sb, "%s", *(const int *)field ? "true" : "false");
        return;
    case KT_ENUM:
        sb_printf(sb, "%s", enum_name_of(k->names, *(const int *)field));
        return;
    case KT_LIST:
        for (int j = 0; j < *(const int *)((const char *)cfg + k->count); j++)
            sb_printf(sb, "%s%s", j ? ", " : "", enum_name_of(k->names, ((const int *)field)[j]));
        return;
    }
}

char *pl_sweep_config_text(const pl_sweep_config *cfg, int hashed_only)
{
    strbuf sb = {0};
    const char *section = "";
    for (int i = 0; i < N_KEYS; i++) {
        if (hashed_only && !KEYS[i].hashed)
            continue;
        if (strcmp(section, KEYS[i].section)) {
            sb_printf(&sb, "%s[%s]\n", section[0] ? "\n" : "", KEYS[i].section);
            section = KEYS[i].section;
        }
        sb_printf(&sb, "%s = ", KEYS[i].key);
        print_value(&sb, cfg, i);
        sb_printf(&sb, "\n");
    }
    if (sb.failed) {
        free(sb.buf);
        pl_fail("out of memory (config text)");
        return NULL;
    }
    return sb.buf;
}

/* ------------------------------------------------------------ single keys */

int pl_sweep_config_n_keys(void) { return N_KEYS; }

int pl_sweep_config_given(const pl_sweep_config *cfg, int i) { return cfg->origin[i] != NULL; }

void pl_sweep_config_key(int i, const char **section, const char **key, int *hashed)
{
    *section = KEYS[i].section;
    *key = KEYS[i].key;
    *hashed = KEYS[i].hashed;
}

char *pl_sweep_config_value(const pl_sweep_config *cfg, const char *name)
{
    const char *dot = strchr(name, '.');
    for (int i = 0; dot && i < N_KEYS; i++)
        if (strlen(KEYS[i].section) == (size_t)(dot - name) && !strncmp(KEYS[i].section, name, dot - name) &&
            !strcmp(KEYS[i].key, dot + 1)) {
            strbuf sb = {0};
            print_value(&sb, cfg, i);
            sb_printf(&sb, "%s", ""); /* an empty value is "" */
            if (sb.failed) {
                free(sb.buf);
                pl_fail("out of memory (config value)");
                return NULL;
            }
            return sb.buf;
        }
    pl_fail("'%s' is not a config key (section.key, e.g. run.checkpoint)", name);
    return NULL;
}

/* ------------------------------------------------------------ the reference (docs, man page) */

/* "`a`, `b`, `c`" */
static void enum_names_md(const enum_def *e, char *out, size_t size)
{
    out[0] = '\0';
    for (int j = 0; j < e->n; j++)
        snprintf(out + strlen(out), size - strlen(out), "%s`%s`", j ? ", " : "", enum_name(e, j));
}

/* What key I takes, from its type and range (markdown). */
static void key_values(const key_def *k, char *out, size_t size)
{
    char names[400];
    switch (k->type) {
    case KT_STR:
        snprintf(out, size, "%s%s", VALUES_PATH, k->optional ? " (empty: the default)" : "");
        return;
    case KT_HOOK:
        snprintf(out, size, "a TransformerLens hook name: `blocks.N.hook_resid_pre`, `blocks.N.hook_resid_post`, ... "
                 "(see the description)%s", k->optional ? " (empty: the default)" : "");
        return;
    case KT_SHA256:
        snprintf(out, size, "64 lowercase hex digits (empty: the SAE's)");
        return;
    case KT_INT:
        snprintf(out, size, "an integer in [%.0f, %.0f]", k->lo, k->hi);
        return;
    case KT_U64:
        snprintf(out, size, "an integer in [0, 2^64 - 1]");
        return;
    case KT_DOUBLE: {
        strbuf lo = {0}, hi = {0}; /* 1000000000, not 1e+09 */
        sb_double(&lo, k->lo);
        sb_double(&hi, k->hi);
        snprintf(out, size, "a number in %s%s, %s%s", k->open & OPEN_LO ? "(" : "[", lo.buf ? lo.buf : "?",
                 hi.buf ? hi.buf : "?", k->open & OPEN_HI ? ")" : "]");
        free(lo.buf);
        free(hi.buf);
        return;
    }
    case KT_BOOL:
        snprintf(out, size, "`true` or `false` (also `yes`/`no`, `1`/`0`)");
        return;
    case KT_ENUM:
        enum_names_md(k->names, names, sizeof names);
        snprintf(out, size, "one of %s", names);
        return;
    case KT_LIST:
        enum_names_md(k->names, names, sizeof names);
        snprintf(out, size, "a comma-separated list of %s, each at most once", names);
        return;
    case KT_CUSTOM:
        snprintf(out, size, "%s", k->values);
        return;
    }
}

void pl_sweep_config_key_doc(int i, pl_config_key_doc *out)
{
    const key_def *k = &KEYS[i];
    out->section = k->section;
    out->key = k->key;
    out->hashed = k->hashed;
    out->doc = k->doc;
    int plain = k->type == KT_INT || k->type == KT_U64 || k->type == KT_DOUBLE || k->type == KT_BOOL;
    if (k->def_doc)
        snprintf(out->def, sizeof out->def, "%s", k->def_doc);
    else
        snprintf(out->def, sizeof out->def, plain ? "%s" : "`%s`", k->def);
    key_values(k, out->values, sizeof out->values);
}
