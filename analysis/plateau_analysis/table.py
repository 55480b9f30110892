"""The numbers a paper quotes from a plateau result, as aligned tables or one CSV.

usage: /usr/bin/python3 analysis/summary.py RESULT.nc [--csv] [--metric M [M ...]] [--score S [S ...]]
                                            [--alpha A [A ...]] [--seed S] [--bootstrap N]

Per (hook, metric, base, direction):
  curves         curves of the kind (prompt x sample)
  <score>        the median over the curves of each per-curve score in the file (onset,
                 max_slope_alpha, sharpness, alpha_at_threshold, nonlinearity_alpha, ...), non-finite
                 scores left out, with a percentile-bootstrap 95 % interval; "(k/n)" when only k of
                 the n curves have a finite score
  median@A       the metric's median curve (m_median, or the NaN-aware median of the raw curves when
                 the file has no m_median) at the α grid point nearest to A; default A = 0.1, 0.5
                 and 1 times the largest α
Then the paired comparisons per (hook, metric, score): real vs synthetic base per direction
("real/synthetic @ cov_random") and each direction against real_other per base
("cov_random/real_other @ real"; against cov_random when there is no real_other), on the pairs of
curves with the same (prompt, sample): the ratio of the medians and the median difference, each
with a 95 % percentile-bootstrap interval, and the Wilcoxon signed-rank p-value. When the file
holds them (plateau computes them in C, with GSL) they are printed as they are; for older files
they are computed here (ratio and difference only, recipe in stats.py) and the output says so.

The bootstrap recipe of the score intervals (and of computed comparisons) is in stats.py's
docstring; a row's interval depends only on the seed and that row, not on --metric or --score.

CSV (--csv): one tidy table, full precision (shortest repr that round-trips), columns
  kind, hook, position, metric, base, direction, comparison, score, alpha, n, value, lo, hi, p_value, source
with kind "score" (value = median score, n = finite curves), "curve" (value = median curve at
alpha, n = curves in it when the file says), "ratio" and "difference" (n = pairs); position the token
position of --position (empty without it: the file's one curve per unit); source is "file" for
numbers read from the file and "computed" for numbers computed here. Empty = not applicable.

Exit status: 0 on success; 2 with one line on stderr for a missing or unusable file;
1 for a bad command line.
"""
import csv
import sys
import textwrap

import numpy as np

from .cli import Parser, die
from .result import AGG_DIMS, EXIT_USAGE, METRICS, SCORE_DIMS, Result, ResultError
from .stats import curve_stats, paired_table, score_median, score_median_seed

SCRIPT = "summary.py"
CSV_COLUMNS = ("kind", "hook", "position", "metric", "base", "direction", "comparison", "score", "alpha", "n", "value",
               "lo", "hi", "p_value", "source")


def summarise(res, metrics, scores_wanted, alphas, seed, n_boot):
    """Returns (alpha grid points used, kind rows, paired sources {metric: source}, paired rows)."""
    grid = [int(np.argmin(np.abs(res.alpha - a))) for a in alphas]
    kinds, paired, sources = [], [], {}
    for m in metrics:
        scores = [s for s in res.scores(m) if not scores_wanted or s in scores_wanted]
        for h, hook in enumerate(res.hooks):
            if res.has(f"{m}_median"):
                med, med_source = res.array(f"{m}_median", AGG_DIMS, h), "file"
                count = res.array(f"{m}_count", AGG_DIMS, h) if res.has(f"{m}_count") else None
            else:
                med, _, count, _ = curve_stats(res, m, h)
                med_source = "computed"
            for b, base in enumerate(res.bases):
                for d, direction in enumerate(res.directions):
                    row = {"hook": hook, "metric": m, "base": base, "direction": direction, "scores": {},
                           "curves": None, "medians": [float(med[b, d, k]) for k in grid],
                           "counts": [None if count is None else int(count[b, d, k]) for k in grid],
                           "median_source": med_source}
                    for s in scores:
                        vals = res.array(f"{m}_{s}", SCORE_DIMS, h)[b, d]
                        row["curves"] = int(vals.size)
                        row["scores"][s] = score_median(vals, score_median_seed(seed, h, m, b, d, s), n_boot)
                    if row["curves"] is None and "prompt" in res.ds.sizes:
                        row["curves"] = int(res.ds.sizes["prompt"] * res.ds.sizes.get("sample", 1))
                    kinds.append(row)
        if scores:
            sources[m], rows = paired_table(res, m, seed, n_boot, scores)
            paired += [dict(r, metric=m) for r in rows]
        res.forget()
    return [float(res.alpha[k]) for k in grid], kinds, sources, paired


def csv_number(x):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return repr(float(x))


def text_number(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def with_ci(x, lo, hi):
    return f"{text_number(x)} [{text_number(lo)}, {text_number(hi)}]"


def aligned(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows)


def write_csv(out, used, kinds, sources, paired, position):
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    blank = dict(dict.fromkeys(CSV_COLUMNS, ""), position="" if position is None else str(position))
    for r in kinds:
        common = dict(blank, hook=r["hook"], metric=r["metric"], base=r["base"], direction=r["direction"])
        for s, (n, med, lo, hi) in r["scores"].items():
            w.writerow((dict(common, kind="score", score=s, n=n, value=csv_number(med), lo=csv_number(lo),
                             hi=csv_number(hi), source="computed")).values())
        for a, v, c in zip(used, r["medians"], r["counts"]):
            w.writerow((dict(common, kind="curve", alpha=csv_number(a), n=csv_number(c), value=csv_number(v),
                             source=r["median_source"])).values())
    for r in paired:
        common = dict(blank, hook=r["hook"], metric=r["metric"], comparison=r["comparison"], score=r["score"],
                      n=csv_number(int(r["n_pairs"]) if np.isfinite(r["n_pairs"]) else None),
                      p_value=csv_number(r["p_value"]), source=sources[r["metric"]])
        for kind, f in (("ratio", "ratio"), ("difference", "diff")):
            w.writerow((dict(common, kind=kind, value=csv_number(r[f]), lo=csv_number(r[f + "_lo"]),
                             hi=csv_number(r[f + "_hi"]))).values())


def paragraph(text):
    """A paragraph of explanation, wrapped for a terminal."""
    print(textwrap.fill(text, width=100, break_on_hyphens=False))


def write_text(res, path, used, kinds, sources, paired, seed, n_boot):
    print(f"plateau summary of {path}")
    print(res.describe())
    print()
    scores = list(dict.fromkeys(s for r in kinds for s in r["scores"]))
    if scores:
        paragraph(f"Per-curve scores: median over the curves of each kind [95 % percentile-bootstrap interval; "
            f"{n_boot} resamples, seed {seed}]; (k/n): only k of the n curves have a finite score.")
        print()
        header = ["hook", "metric", "base", "direction", "curves"] + [f"{s} [95% CI]" for s in scores]
        rows = []
        for r in kinds:
            cells = []
            for s in scores:
                if s not in r["scores"]:
                    cells.append("")
                    continue
                n, med, lo, hi = r["scores"][s]
                cells.append(with_ci(med, lo, hi) + ("" if n == r["curves"] else f" ({n}/{r['curves']})"))
            rows.append([r["hook"], r["metric"], r["base"], r["direction"], str(r["curves"])] + cells)
        print(aligned(header, rows))
        print()
    source = ("the file's <metric>_median" if all(r["median_source"] == "file" for r in kinds)
              else "the file's <metric>_median, or the median of the raw curves where it has none")
    paragraph(f"Median curve ({source}) at the α grid points nearest to the requested values; {res.alpha_label()}.")
    print()
    header = ["hook", "metric", "base", "direction"] + [f"α={a:g}" for a in used]
    print(aligned(header, [[r["hook"], r["metric"], r["base"], r["direction"]] + [text_number(v) for v in r["medians"]]
                           for r in kinds]))
    if not paired:
        return
    print()
    paragraph("Paired comparisons on the curves of the same (prompt, sample), \"x/y @ where\": ratio of the medians "
        "median(x)/median(y) and median difference median(x − y), each with a 95 % percentile-bootstrap "
        "interval; p: two-sided Wilcoxon signed-rank test. real/synthetic > 1: real activations score higher "
        "(for onset: sit on longer plateaus); X/real_other > 1: real_other directions score lower (for "
        "onset: leave the plateau sooner).")
    for m in dict.fromkeys(r["metric"] for r in paired):
        if sources[m] == "file":
            paragraph(f"{m}: as plateau computed them (read from the file).")
        else:
            paragraph(f"{m}: computed here, not read from the file: it has no paired statistics (written by an older "
                f"plateau); {n_boot} resamples, seed {seed}, no Wilcoxon p-value.")
    print()
    header = ["hook", "metric", "score", "comparison", "pairs", "ratio [95% CI]", "difference [95% CI]", "p"]
    rows = [[r["hook"], r["metric"], r["score"], r["comparison"],
             text_number(r["n_pairs"]), with_ci(r["ratio"], r["ratio_lo"], r["ratio_hi"]),
             with_ci(r["diff"], r["diff_lo"], r["diff_hi"]), text_number(r["p_value"], 3)] for r in paired]
    print(aligned(header, rows))


def main(argv=None):
    ap = Parser(prog=SCRIPT, description="Tables of plateau scores, median curves and paired comparisons "
                                         "(see the module docstring).")
    ap.add_argument("result", metavar="RESULT.nc")
    ap.add_argument("--csv", action="store_true", help="one CSV table instead of aligned text")
    ap.add_argument("--metric", action="extend", nargs="+", choices=METRICS, metavar="M",
                    help=f"only these metrics ({', '.join(METRICS)}; repeatable)")
    ap.add_argument("--score", action="extend", nargs="+", metavar="S", help="only these scores (repeatable)")
    ap.add_argument("--alpha", type=float, action="extend", nargs="+", metavar="A",
                    help="α values of the median-curve columns")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ap.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    ap.add_argument("--position", type=int, metavar="N",
                    help="a file with curves per position ([readout] positions = each): the tables at token position N")
    a = ap.parse_args(argv)
    if a.seed < 0:
        die(SCRIPT, f"--seed {a.seed}: expected a non-negative integer", EXIT_USAGE)
    if not 1 <= a.bootstrap <= 1000000:
        die(SCRIPT, f"--bootstrap {a.bootstrap}: expected 1..1000000", EXIT_USAGE)
    if a.alpha and not all(np.isfinite(a.alpha)):
        die(SCRIPT, "--alpha: expected finite numbers", EXIT_USAGE)
    try:
        res = Result.for_tool(a.result, SCRIPT, a.position)
        metrics = res.select_metrics(a.metric)
        if a.score:
            have = sorted({s for m in metrics for s in res.scores(m)})
            absent = [s for s in a.score if s not in have]
            if absent:
                raise ResultError(f"{a.result}: no score {', '.join(absent)} in the file "
                                  f"(it has {', '.join(have) or 'none'})")
        amax = float(res.alpha[-1])
        alphas = a.alpha if a.alpha else [0.1 * amax, 0.5 * amax, amax]
        step = float(np.min(np.diff(res.alpha)))
        for x in alphas:
            if x < res.alpha[0] - step / 2 or x > res.alpha[-1] + step / 2:
                raise ResultError(f"{a.result}: --alpha {x:g} is outside the file's alpha range "
                                  f"{res.alpha[0]:g}..{res.alpha[-1]:g}")
        used, kinds, sources, paired = summarise(res, metrics, a.score, alphas, a.seed, a.bootstrap)
        for want, got in zip(a.alpha or [], used):  # the defaults' columns say which points they are
            if abs(want - got) > 1e-9 * max(1.0, abs(amax)):
                sys.stderr.write(f"{SCRIPT}: note: --alpha {want:g} is not on the grid; using the nearest point {got:g}\n")
    except ResultError as e:
        die(SCRIPT, str(e))
    if a.csv:
        write_csv(sys.stdout, used, kinds, sources, paired, res.position)
    else:
        write_text(res, a.result, used, kinds, sources, paired, a.seed, a.bootstrap)
    return 0
