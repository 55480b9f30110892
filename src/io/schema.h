/* The result file's schema: every dimension, variable and global attribute a plateau result (and a
 * merge of results) can hold, with its type, dimensions, units, long_name and how merge treats it.
 * One table, read by the writer (output.c), by merge (merge.c) and dumped as JSON for the Python
 * reader (analysis/plateau_analysis/_schema.py is generated from `plateau help --schema-json`). */
#ifndef PLATEAU_IO_SCHEMA_H
#define PLATEAU_IO_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

#include <netcdf.h>

#include "plateau/result.h"

/* Which variables a row stands for. */
enum {
    PL_SCH_FIXED,        /* one variable of that name */
    PL_SCH_METRIC,       /* one per metric m: name m + suffix */
    PL_SCH_METRIC_SCORE, /* one per metric m and score s the file has: m_s + suffix */
    PL_SCH_SCORE,        /* one per score s any metric has: s + suffix */
    PL_SCH_STATE,        /* a direction kind's per-unit state (partner, ...): named by the kind */
    PL_SCH_MERGED        /* written by merge only */
};

/* How merge treats a variable of its inputs. */
enum {
    PL_MERGE_STACK,    /* gets the leading hook dimension, one slice per input */
    PL_MERGE_SAME,     /* a coordinate: equal in every input (else refused), written once */
    PL_MERGE_ONCE_IF_SAME /* provenance: written once when equal in every input, else stacked */
};

/* A dimension: its name, what it counts and when the file has it ("" always). */
typedef struct {
    const char *name, *description, *present;
} pl_schema_dim;

extern const pl_schema_dim PL_SCHEMA_DIMS[];
extern const int PL_SCHEMA_N_DIMS;

typedef struct {
    const char *name;      /* the name, or the suffix appended to the stem (metric, metric_score, score) */
    int scope;             /* PL_SCH_* */
    nc_type type;
    int coordinate;        /* 1: no _FillValue (CF 5), no units_description; 0: data (NaN fill for floats) */
    const char *dims;      /* dimension names, space-separated; "[position]": a leading position dimension
                              when the data has one (curves and all derived from them with [readout]
                              positions = each; activation of whole contexts), else none; "[site]":
                              a leading position dimension in whole contexts (n_positions > 1: the local
                              geometry of each perturbed position, as a one-position sweep there) */
    const char *units;     /* UDUNITS or plateau's; "{alpha}": alpha's, "{metric}": the metric's,
                              "{score}": the score's (alpha's or "1"); NULL: none (strings) */
    const char *long_name; /* {m} metric, {s} score, {ms} m_s, {curve} the curve the scores see,
                              {score_long} the score's description, {alpha_long} alpha's */
    const char *present;   /* when the file has it ("" always) */
    const char *attrs;     /* attributes beyond long_name/units/_FillValue ("" none) */
    int deflate;           /* zlib level 1 with shuffle */
    int merge;             /* PL_MERGE_* */
} pl_schema_var;

extern const pl_schema_var PL_SCHEMA_VARS[];
extern const int PL_SCHEMA_N_VARS;

/* How merge treats a global attribute. */
enum {
    PL_GA_SHARED,      /* equal in every input (else refused), written once */
    PL_GA_HOOK,        /* the input's hook: becomes the `hook` coordinate */
    PL_GA_CONFIG,      /* each input's in hook_config; the global one is the first input's */
    PL_GA_PER_HOOK_TEXT,   /* each input's in hook_<name>; kept global too when all agree */
    PL_GA_PER_HOOK_NUMBER, /* a variable <name> over hook; kept global too when all agree */
    PL_GA_MERGE        /* written by merge only */
};
/* merge_flags */
enum {
    PL_GA_NEVER_GLOBAL = 1, /* per-hook only: not kept global even when all inputs agree */
    PL_GA_ALWAYS_GLOBAL = 2 /* kept global even when the inputs differ (the first input's) */
};

/* The value kinds of attributes. */
enum { PL_GA_TEXT, PL_GA_INT, PL_GA_BOOL, PL_GA_DOUBLE };

/* The values of a result's global attributes: the run's (pl_result_attrs, paths made absolute) and
 * what the writer adds. */
typedef struct {
    pl_result_attrs run;
    const char *conventions, *title, *source, *history, *created, *git_commit, *hostname, *plateau_version;
    const char *data_sha256;
} pl_schema_globals;

typedef struct {
    const char *name;
    int kind;              /* PL_GA_*: BOOL is a 0/1 int (CF has no boolean) */
    size_t offset;         /* in pl_schema_globals (output.c fills one), or (size_t)-1: merge's own */
    const char *description;
    int merge;             /* PL_GA_SHARED ... */
    int merge_flags;
    int merge_order;       /* the order of the hook_<name> / per-hook variables merge writes (1..) */
    const char *merged_long_name, *merged_units; /* PL_GA_PER_HOOK_NUMBER: the variable's */
} pl_schema_global;

extern const pl_schema_global PL_SCHEMA_GLOBALS[];
extern const int PL_SCHEMA_N_GLOBALS;

/* A variable's row by its full name (fixed, merged and per-unit-state rows only), or NULL. */
const pl_schema_var *pl_schema_var_find(const char *name);
/* A global attribute's row, or NULL. */
const pl_schema_global *pl_schema_global_find(const char *name);
/* A score's description (its variables' long_name), or NULL for a score the schema does not know. */
const char *pl_schema_score_long_name(const char *score);

/* Expand TEMPLATE's {m}, {s}, {ms}, {curve}, {score_long}, {alpha_long}, {alpha}, {metric}, {score}
 * from the NULL-terminated KEYS/VALUES into OUT[SIZE]. */
void pl_schema_expand(const char *tmpl, const char *const *keys, const char *const *values, char *out, size_t size);

#endif
