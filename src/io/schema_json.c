/* The result schema as JSON (`plateau help --schema-json`): what analysis/plateau_analysis/_schema.py
 * is generated from (scripts/gen_result_schema.py), so the Python reader's names, dimensions and
 * metric order are the C tables', and so is which config keys make a run's identity. */
#include <stdio.h>

#include "plateau/result_file.h"
#include "plateau/sweep.h"
#include "schema.h"

static void json_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static const char *type_name(nc_type t)
{
    return t == NC_STRING ? "string" : t == NC_INT ? "int32" : t == NC_FLOAT ? "float32" : "float64";
}

static void json_dims(FILE *out)
{
    fputs("  \"dimensions\": [\n", out);
    for (int i = 0; i < PL_SCHEMA_N_DIMS; i++) {
        const pl_schema_dim *d = &PL_SCHEMA_DIMS[i];
        fputs("    {\"name\": ", out), json_string(out, d->name);
        fputs(", \"description\": ", out), json_string(out, d->description);
        fputs(", \"present\": ", out), json_string(out, d->present);
        fputs(i + 1 < PL_SCHEMA_N_DIMS ? "},\n" : "}\n", out);
    }
    fputs("  ],\n", out);
}

static void json_vars(FILE *out)
{
    static const char *const scope[] = {"fixed", "metric", "metric_score", "score", "state", "merged"};
    static const char *const merge[] = {"stack", "same", "once_if_same"};
    fputs("  \"variables\": [\n", out);
    for (int i = 0; i < PL_SCHEMA_N_VARS; i++) {
        const pl_schema_var *v = &PL_SCHEMA_VARS[i];
        fputs("    {\"name\": ", out), json_string(out, v->name);
        fprintf(out, ", \"scope\": \"%s\", \"type\": \"%s\", \"coordinate\": %s, \"dims\": ", scope[v->scope],
                type_name(v->type), v->coordinate ? "true" : "false");
        json_string(out, v->dims);
        fputs(", \"units\": ", out), json_string(out, v->units);
        fputs(", \"long_name\": ", out), json_string(out, v->long_name);
        fputs(", \"present\": ", out), json_string(out, v->present);
        fputs(", \"attributes\": ", out), json_string(out, v->attrs);
        fprintf(out, ", \"merge\": \"%s\"}%s\n", merge[v->merge], i + 1 < PL_SCHEMA_N_VARS ? "," : "");
    }
    fputs("  ],\n", out);
}

static void json_globals(FILE *out)
{
    static const char *const kind[] = {"text", "int", "bool", "float64"};
    static const char *const merge[] = {"shared", "hook", "config", "per_hook_text", "per_hook_number", "merge"};
    fputs("  \"global_attributes\": [\n", out);
    for (int i = 0; i < PL_SCHEMA_N_GLOBALS; i++) {
        const pl_schema_global *g = &PL_SCHEMA_GLOBALS[i];
        fputs("    {\"name\": ", out), json_string(out, g->name);
        fprintf(out, ", \"kind\": \"%s\", \"description\": ", kind[g->kind]);
        json_string(out, g->description);
        fprintf(out, ", \"merge\": \"%s\", \"global_when_merged\": \"%s\"", merge[g->merge],
                g->merge_flags & PL_GA_NEVER_GLOBAL    ? "never"
                : g->merge_flags & PL_GA_ALWAYS_GLOBAL ? "always"
                : g->merge == PL_GA_SHARED             ? "always"
                : g->merge == PL_GA_CONFIG             ? "first input's"
                : g->merge == PL_GA_HOOK               ? "never"
                : g->merge == PL_GA_MERGE              ? "the merge's own"
                                                       : "when all inputs agree");
        fputs(", \"merged_long_name\": ", out), json_string(out, g->merged_long_name);
        fputs(", \"merged_units\": ", out), json_string(out, g->merged_units);
        fputs(i + 1 < PL_SCHEMA_N_GLOBALS ? "},\n" : "}\n", out);
    }
    fputs("  ],\n", out);
}

/* The config's keys as the global attribute `config` holds them, each with whether it is part of a
 * run's identity (hashed: what a checkpoint's config hash covers and the files of a merge share). */
static void json_config_keys(FILE *out)
{
    fputs("  \"config_keys\": [\n", out);
    int n = pl_sweep_config_n_keys();
    for (int i = 0; i < n; i++) {
        const char *section, *key;
        int hashed;
        pl_sweep_config_key(i, &section, &key, &hashed);
        fputs("    {\"section\": ", out), json_string(out, section);
        fputs(", \"key\": ", out), json_string(out, key);
        fprintf(out, ", \"identity\": %s}%s\n", hashed ? "true" : "false", i + 1 < n ? "," : "");
    }
    fputs("  ]\n", out);
}

int pl_result_schema_json(FILE *out, const char *const *metrics, int n_metrics, const char *const *scores,
                   const int *alpha_valued, int n_scores)
{
    fputs("{\n  \"metrics\": [", out);
    for (int m = 0; m < n_metrics; m++)
        fputs(m ? ", " : "", out), json_string(out, metrics[m]);
    fputs("],\n  \"scores\": [", out);
    for (int s = 0; s < n_scores; s++) {
        fputs(s ? ", {\"name\": " : "{\"name\": ", out), json_string(out, scores[s]);
        fprintf(out, ", \"alpha_valued\": %s, \"long_name\": ", alpha_valued[s] ? "true" : "false");
        json_string(out, pl_schema_score_long_name(scores[s]));
        fputc('}', out);
    }
    fputs("],\n", out);
    json_dims(out);
    json_vars(out);
    json_globals(out);
    json_config_keys(out);
    fputs("}\n", out);
    return ferror(out) ? -1 : 0;
}
