/* The commands' option tables at work: checking a command line against them (cli_prepare), --help
 * and the man page. One table per command (its cmd_*.c), so the help cannot drift from the parser. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "plateau/error.h"
#include "plateau/model.h"
#include "plateau/sweep.h"

static const char EXIT_COMMON[] = "0 done\n"
                                  "1 the command line could not be parsed (one line says why)\n"
                                  "2 bad input: a file, key or value is wrong (one line names it)";

/* The option of SPEC named ARG ("--top", "-o"), or NULL. */
static const cli_option *find_option(const cli_spec *spec, const char *arg, size_t len)
{
    for (const cli_option *o = spec->options; o && o->name; o++)
        if ((strlen(o->name) == len && !strncmp(o->name, arg, len)) ||
            (o->alias && strlen(o->alias) == len && !strncmp(o->alias, arg, len)))
            return o;
    return NULL;
}

static char **g_argv_copy; /* the rewritten command line, freed at exit */

static void free_argv_copy(void) { free(g_argv_copy); }

int cli_prepare(const cli_spec *spec, int *argc, char ***argv)
{
    int n = *argc;
    char **in = *argv;
    /* --opt=value becomes two arguments: at most 2n + 1 pointers */
    char **out = calloc(2 * (size_t)n + 1, sizeof(char *));
    if (!out) {
        pl_fail("out of memory (command line)");
        return cli_fail();
    }
    int m = 0, positional_only = 0;
    out[m++] = in[0];
    for (int i = 1; i < n; i++) {
        char *arg = in[i];
        if (positional_only || arg[0] != '-' || !arg[1]) { /* positional ("-" is stdin) */
            out[m++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) { /* the rest are arguments, even if they start with '-' (tokenize's TEXT) */
            positional_only = 1;
            out[m++] = arg;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            free(out);
            cli_print_help(spec, stdout);
            return fflush(stdout) == 0 ? PL_EXIT_OK : PL_EXIT_INPUT;
        }
        const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_option *o = find_option(spec, arg, len);
        int code = -1;
        if (!o)
            code = cli_usage(spec->name, spec->synopsis, "unknown option '%.*s'", (int)len, arg);
        else if (!o->metavar && eq)
            code = cli_usage(spec->name, spec->synopsis, "%s takes no value (given '%s')", o->name, arg);
        else if (o->metavar && !eq && i + 1 >= n)
            code = cli_usage(spec->name, spec->synopsis, "%s needs a value (%s %s)", o->name, o->name, o->metavar);
        if (code >= 0) {
            free(out);
            return code;
        }
        if (eq) {
            out[m++] = (char *)o->name;
            out[m++] = (char *)eq + 1;
        } else {
            out[m++] = arg;
            if (o->metavar)
                out[m++] = in[++i]; /* a value may start with '-' ("--text -x") */
        }
    }
    out[m] = NULL;
    free(g_argv_copy);
    if (!g_argv_copy)
        atexit(free_argv_copy);
    g_argv_copy = out;
    *argc = m;
    *argv = out;
    return -1;
}

/* "  --top K, ..." column: the option's forms as the help prints them. */
static void option_forms(const cli_option *o, char *buf, size_t size)
{
    if (o->alias)
        snprintf(buf, size, "%s, %s%s%s", o->alias, o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    else
        snprintf(buf, size, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
}

static void print_exit_codes(const cli_spec *spec, FILE *out)
{
    fprintf(out, "\nexit status:\n");
    for (int part = 0; part < 2; part++) {
        const char *text = part ? spec->exit_codes : EXIT_COMMON;
        for (const char *p = text; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            const char *sp = memchr(p, ' ', len);
            size_t code_len = sp ? (size_t)(sp - p) : len;
            fprintf(out, "  %-4.*s%.*s\n", (int)code_len, p, (int)(len - code_len - (sp != NULL)),
                    sp ? sp + 1 : "");
            p = nl ? nl + 1 : p + len;
        }
    }
}

const char CLI_HELP_FAMILIES[] = "a model family";

const char *cli_option_help(const cli_option *o)
{
    static char families[512];
    if (o->help != CLI_HELP_FAMILIES)
        return o->help;
    const char *all = pl_model_families(", ", " or ");
    int first = (int)strcspn(all, ", "); /* model_types have neither */
    snprintf(families, sizeof families, "%.*s (default)%s", first, all, all + first);
    return families;
}

void cli_print_help(const cli_spec *spec, FILE *out)
{
    fprintf(out, "usage: plateau %s %s\n\n%s\n", spec->name, spec->synopsis, spec->summary);
    if (spec->description)
        fprintf(out, "\n%s\n", spec->description);
    fprintf(out, "\noptions:\n");
    char forms[128];
    for (const cli_option *o = spec->options; o && o->name; o++) {
        option_forms(o, forms, sizeof forms);
        if (strlen(forms) > 26)
            fprintf(out, "  %s\n  %-26s  %s\n", forms, "", cli_option_help(o));
        else
            fprintf(out, "  %-26s  %s\n", forms, cli_option_help(o));
    }
    fprintf(out, "  %-26s  %s\n", "-h, --help", "print this help and exit");
    fprintf(out, "\nEvery option taking a value may also be written --option=VALUE.\n");
    print_exit_codes(spec, out);
}

/* The code point of the UTF-8 sequence at S (of at most LEFT bytes) and its length in *LEN; a byte
 * that starts no valid sequence is U+FFFD. */
static unsigned utf8_code(const unsigned char *s, size_t left, size_t *len)
{
    int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
    unsigned code = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    *len = 1;
    if (n == 1 || (size_t)n > left)
        return n == 1 && s[0] < 0x80 ? s[0] : 0xfffd;
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0xfffd;
        code = code << 6 | (s[k] & 0x3fu);
    }
    *len = (size_t)n;
    return code;
}

/* TEXT for roff: a leading '.' or '\'' would be a request, '\' an escape, '-' a hyphen; groff reads
 * bytes as Latin-1, so every other character is written as its \[uXXXX] escape. */
static void roff_text(FILE *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\\')
            fputs("\\e", out);
        else if (c == '-')
            fputs("\\-", out);
        else if ((c == '.' || c == '\'') && (i == 0 || text[i - 1] == '\n'))
            fprintf(out, "\\&%c", c);
        else if ((unsigned char)c >= 0x80) {
            size_t n;
            fprintf(out, "\\[u%04X]", utf8_code((const unsigned char *)text + i, len - i, &n));
            i += n - 1;
        } else
            fputc(c, out);
    }
}

static void roff_line(FILE *out, const char *text)
{
    roff_text(out, text, strlen(text));
    fputc('\n', out);
}

/* ------------------------------------------------------------ the config reference */

/* What docs/config.md and the man page say before the keys (markdown, paragraphs split by blank
 * lines); each key's text comes from the config's own table (pl_sweep_config_key_doc). */
static const char CONFIG_INTRO[] =
    "An INI file (libinih), given to `plateau run` and `plateau config`; `--set section.key=value` "
    "(repeatable, applied in order after the file) and `-o` (the output path) override it. Unknown "
    "sections or keys, repeated keys and bad values are errors naming `FILE:LINE: [section] key: what is "
    "wrong` (or `--set section.key=value: ...`), exit 2.\n\n"
    "The resolved config -- every key, defaults filled in -- is what `plateau config` prints, and it is "
    "stored in the output's `config` attribute and in checkpoints; it reads back as the same config. "
    "The keys of the run's identity (\"identity: yes\") are what a checkpoint's resume must match and "
    "what `plateau merge` requires its inputs to share (but for the hook); the others may change (the "
    "model and the SAE are identified by their sha256, not their path).\n\n"
    "One `key = value` per line at the start of the line (an indented line is an error: libinih would "
    "read it as a continuation of the previous value); lines may be of any length (long paths are "
    "fine). A value that could not be stored and read back as itself is refused, wherever it comes from "
    "(the file, `--set` or `-o`): a line break or another control character, a `;` at the start or "
    "after a blank (it starts a comment), blanks at either end, or a `[` at the start.\n\n"
    "Hook names are stored canonically: `blocks.01.hook_resid_pre` is `blocks.1.hook_resid_pre`; a "
    "sign, a blank or anything but decimal digits in the block number is refused, here and in every "
    "other hook name plateau reads (`--hook`, an SAE's `cfg.json`, merged files).\n";

/* Markdown TEXT[LEN] as plain text: `code` loses its backticks, [text](link) keeps the text,
 * "\|" (a table's escaped bar) is "|". */
static void md_plain(const char *text, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < size; i++) {
        const char *close = text[i] == '[' ? memchr(text + i, ']', len - i) : NULL;
        if (text[i] == '`')
            continue;
        if (close && close + 1 < text + len && close[1] == '(') {
            const char *paren = memchr(close, ')', (size_t)(text + len - close));
            if (paren) {
                size_t n = (size_t)(close - text - i - 1);
                n = n < size - o - 1 ? n : size - o - 1;
                memcpy(out + o, text + i + 1, n);
                o += n;
                i = (size_t)(paren - text);
                continue;
            }
        }
        out[o++] = text[i];
    }
    out[o] = '\0';
}

static void roff_md(FILE *out, const char *md)
{
    size_t len = strlen(md);
    char *plain = malloc(len + 1);
    if (!plain)
        return;
    md_plain(md, len, plain, len + 1);
    roff_text(out, plain, strlen(plain));
    free(plain);
}

static void print_config_man(FILE *out)
{
    fprintf(out, ".SH CONFIG\n");
    for (const char *p = CONFIG_INTRO; *p;) {
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) : strlen(p) - 1;
        char *para = malloc(len + 1);
        if (para) {
            memcpy(para, p, len);
            para[len] = '\0';
            fprintf(out, ".PP\n");
            roff_md(out, para);
            fputc('\n', out);
            free(para);
        }
        p = end ? end + 2 : p + len + 1;
    }
    const char *section = "";
    for (int i = 0; i < pl_sweep_config_n_keys(); i++) {
        pl_config_key_doc k;
        pl_sweep_config_key_doc(i, &k);
        if (strcmp(section, k.section))
            fprintf(out, ".SS \"[%s]\"\n", section = k.section);
        fprintf(out, ".TP\n.B %s\nDefault: ", k.key);
        roff_md(out, k.def);
        fprintf(out, ". Takes ");
        roff_md(out, k.values);
        fprintf(out, ". Identity: %s.\n.br\n", k.hashed ? "yes" : "no");
        roff_md(out, k.doc);
        fputc('\n', out);
    }
}

/* A markdown table cell: '|' would end it. */
static void md_cell(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            fputc('\\', out);
        fputc(*p, out);
    }
}

void cli_print_config_md(FILE *out)
{
    fprintf(out, "# Config reference\n\n"
                 "<!-- Generated by `plateau help --config-md` from the key table (KEYS) in src/sweep/config.c,\n"
                 "     which also parses, checks and prints every key: edit the table, then run\n"
                 "     `build/plateau help --config-md > docs/config.md`. The test sweep_config_doc fails while\n"
                 "     this file and the table differ. -->\n\n%s",
            CONFIG_INTRO);
    const char *section = "";
    for (int i = 0; i < pl_sweep_config_n_keys(); i++) {
        pl_config_key_doc k;
        pl_sweep_config_key_doc(i, &k);
        if (strcmp(section, k.section))
            fprintf(out, "\n## [%s]\n\n| key | default | takes | identity | meaning |\n|---|---|---|---|---|\n",
                    section = k.section);
        fprintf(out, "| `%s` | ", k.key);
        md_cell(out, k.def);
        fputs(" | ", out);
        md_cell(out, k.values);
        fprintf(out, " | %s | ", k.hashed ? "yes" : "no");
        md_cell(out, k.doc);
        fputs(" |\n", out);
    }
}

void cli_print_man(const cli_spec *const *specs, int n, FILE *out)
{
    fprintf(out, ".TH PLATEAU 1 \"\" \"plateau %s\" \"User Commands\"\n", PLATEAU_VERSION);
    fprintf(out, ".SH NAME\nplateau \\- error correction in language models: plateaus and sensitive directions\n");
    fprintf(out, ".SH SYNOPSIS\n.B plateau\n.I COMMAND\n[\\fIARGS\\fR]\n.br\n.B plateau help\n[\\fICOMMAND\\fR]\n"
                 ".br\n.B plateau \\-\\-version\n");
    fprintf(out, ".SH DESCRIPTION\nplateau runs the activation\\-plateau and sensitive\\-direction experiments on "
                 "a language model as a C/MPI job and writes NetCDF results. Every command prints its help with "
                 "\\fB\\-\\-help\\fR; this page holds the same text, and the config keys (CONFIG below). The "
                 "source tree's docs/result-format.md documents the result file.\n");
    fprintf(out, ".SH COMMANDS\n");
    for (int i = 0; i < n; i++) {
        const cli_spec *s = specs[i];
        fprintf(out, ".SS \"plateau %s\"\n.B plateau %s\n", s->name, s->name);
        roff_line(out, s->synopsis);
        fprintf(out, ".PP\n");
        roff_line(out, s->summary);
        if (s->description) {
            fprintf(out, ".PP\n");
            roff_line(out, s->description);
        }
        for (const cli_option *o = s->options; o && o->name; o++) {
            char forms[128];
            option_forms(o, forms, sizeof forms);
            fprintf(out, ".TP\n.B ");
            roff_line(out, forms);
            roff_line(out, cli_option_help(o));
        }
        if (s->exit_codes) {
            fprintf(out, ".PP\nExit codes beyond 0, 1 and 2:\n");
            for (const char *p = s->exit_codes; *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                fprintf(out, ".br\n");
                roff_text(out, p, len);
                fputc('\n', out);
                p = nl ? nl + 1 : p + len;
            }
        }
    }
    print_config_man(out);
    fprintf(out, ".SH EXIT STATUS\n");
    for (const char *p = EXIT_COMMON; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, ".TP\n");
        const char *sp = memchr(p, ' ', len);
        fprintf(out, ".B %.*s\n", (int)(sp - p), p);
        roff_text(out, sp + 1, len - (size_t)(sp - p) - 1);
        fputc('\n', out);
        p = nl ? nl + 1 : p + len;
    }
    fprintf(out, ".TP\n.B 3\n(run) fault: a rank died, stopped answering or failed; the checkpoint is written "
                 "first\n.TP\n.B 75\n(run) checkpointed after SIGTERM, SIGINT or SIGUSR1: run again with "
                 "\\fB\\-\\-resume\\fR\n");
    fprintf(out, ".SH SEE ALSO\n.BR mpirun (1),\n.BR sbatch (1)\n");
}

/* ------------------------------------------------------------ the one way a command fails */

int cli_fail(void)
{
    fprintf(stderr, "plateau: %s\n", pl_error());
    return PL_EXIT_INPUT;
}

int cli_usage(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "plateau %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* one line: the reason, then where the options are */
    fprintf(stderr, " (usage: plateau %s %s; plateau %s --help)\n", cmd, usage, cmd);
    return PL_EXIT_USAGE;
}

int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi)
        return pl_fail("%s: '%s' is not an integer in [%ld, %ld]", flag, text, lo, hi);
    *out = v;
    return PL_OK;
}
