/* plateau synth-sae: a synthetic SAELens dir for a model's hook (tests and demos only). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/forward.h"
#include "plateau/model.h"
#include "../experiment/sae.h"

static const char synth_sae_usage[] =
    "OUT_DIR --model MODEL --hook H --d-sae N [--architecture standard|jumprelu|topk] [--k K] [--seed S] [--force]";

const cli_spec CLI_SYNTH_SAE = {
    "synth-sae", synth_sae_usage,
    "A synthetic SAELens dir (cfg.json, sae_weights.safetensors) for a model's hook (tests and demos only).",
    NULL,
    (const cli_option[]){{"--model", NULL, "MODEL", "the model the SAE reads (required)"},
                         {"--hook", NULL, "H", "its hook, e.g. blocks.1.hook_resid_pre (required)"},
                         {"--d-sae", NULL, "N", "number of features (required)"},
                         {"--architecture", NULL, "A", "standard (default), jumprelu or topk"},
                         {"--k", NULL, "K", "active features of a topk SAE"},
                         {"--seed", NULL, "S", "weight seed (default 0)"},
                         {"--force", NULL, NULL,
                          "replace the files of a non-empty OUT_DIR that synth-sae wrote (cfg.json says "
                          "\"plateau_synthetic\": true); any other non-empty OUT_DIR is refused"},
                         {NULL, NULL, NULL, NULL}},
    NULL};

int cmd_synth_sae(int argc, char **argv)
{
    int code = cli_prepare(&CLI_SYNTH_SAE, &argc, &argv);
    if (code >= 0)
        return code;
    pl_sae_synth_opts o = {.arch = PL_SAE_STANDARD};
    const char *out_dir = NULL, *model_path = NULL;
    char hook[PL_HOOK_NAME_MAX];
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--hook") || !strcmp(a, "--architecture") || !strcmp(a, "--d-sae") ||
            !strcmp(a, "--k") || !strcmp(a, "--seed")) {
            if (++i >= argc)
                return cli_usage("synth-sae", synth_sae_usage, "%s needs a value", a);
            const char *value = argv[i];
            if (!strcmp(a, "--model")) {
                model_path = value;
            } else if (!strcmp(a, "--hook")) {
                if (pl_hook_canonical(value, hook, sizeof hook) != PL_OK)
                    return cli_usage("synth-sae", synth_sae_usage, "--hook: %s", pl_error());
                int site = pl_hook_site(hook);
                if (site != PL_SITE_RESID_PRE && site != PL_SITE_RESID_POST)
                    return cli_usage("synth-sae", synth_sae_usage, "--hook: '%s': an SAE here reads the residual "
                                     "stream (blocks.N.hook_resid_pre or blocks.N.hook_resid_post)", hook);
                o.hook = hook; /* canonical: cfg.json names the hook as configs and outputs do */
            } else if (!strcmp(a, "--architecture")) {
                if (!strcmp(value, "standard"))
                    o.arch = PL_SAE_STANDARD;
                else if (!strcmp(value, "jumprelu"))
                    o.arch = PL_SAE_JUMPRELU;
                else if (!strcmp(value, "topk"))
                    o.arch = PL_SAE_TOPK;
                else
                    return cli_usage("synth-sae", synth_sae_usage,
                                     "--architecture: '%s' is not standard, jumprelu or topk", value);
            } else {
                long hi = !strcmp(a, "--seed") ? LONG_MAX : 1L << 26;
                if (cli_parse_int(a, value, !strcmp(a, "--seed") ? 0 : 1, hi, &v) != PL_OK)
                    return cli_usage("synth-sae", synth_sae_usage, "%s", pl_error());
                if (!strcmp(a, "--d-sae"))
                    o.d_sae = (int)v;
                else if (!strcmp(a, "--k"))
                    o.k = (int)v;
                else
                    o.seed = (uint64_t)v;
            }
        } else if (a[0] == '-' && a[1]) {
            return cli_usage("synth-sae", synth_sae_usage, "unknown option '%s'", a);
        } else if (!out_dir) {
            out_dir = a;
        } else {
            return cli_usage("synth-sae", synth_sae_usage, "unexpected argument '%s'", a);
        }
    }
    if (!out_dir || !model_path || !o.hook || !o.d_sae)
        return cli_usage("synth-sae", synth_sae_usage, "OUT_DIR, --model, --hook and --d-sae are required");
    if (o.k && o.arch != PL_SAE_TOPK)
        return cli_usage("synth-sae", synth_sae_usage, "--k is for --architecture topk");
    if (cli_generator_dir("synth-sae", out_dir, "cfg.json", force) != PL_OK)
        return cli_fail();
    pl_model *m;
    if (pl_model_open(&m, model_path) != PL_OK)
        return cli_fail();
    int rc = pl_sae_synth(out_dir, m, model_path, &o);
    pl_model_close(m);
    return rc == PL_OK ? PL_EXIT_OK : cli_fail();
}
