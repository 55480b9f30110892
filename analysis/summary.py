#!/usr/bin/python3
"""The numbers a paper quotes from a plateau result, as an aligned table or CSV.

usage: /usr/bin/python3 analysis/summary.py RESULT.nc [--csv] [--alpha A ...] [--metric M ...]
                                            [--seed S] [--bootstrap N]

One `stats` row per (hook, metric, base, direction):
  n                      curves (prompt x sample) with finite onset and sharpness
  onset, sharpness       median over those curves of <m>_onset and <m>_sharpness, with a
                         percentile-bootstrap 95 % interval
  median@A               the metric's median curve (<m>_median, or the median of the raw curves
                         when the file has no <m>_median) at the alpha grid point nearest to A;
                         default A = 0.1, 0.5 and 1 times the largest alpha
and `ratio` rows, the ratios of those medians that the post's two experiments turn on:
  real / synthetic                 per direction, when the file has both bases
  <direction> / real_other         per base, for every other direction (cov_random and isotropic
                                   included); against cov_random when there is no real_other
with paired percentile-bootstrap 95 % intervals (numerator and denominator resampled with the
same (prompt, sample) indices, since both bases and all directions share the prompts).

Bootstrap, exactly (so anyone can reproduce an interval): values x are the n finite curves of a
kind in (prompt, sample) order as float64;
  rng = numpy.random.default_rng([S, h, c, 0, b, d])        stats row
  rng = numpy.random.default_rng([S, h, c, 1, b1, d1, b2, d2])   ratio row (numerator b1,d1)
where h, b, d index the file's hook, base and direction coordinates and c is the metric's code
(kl 0, jsd 1, l2 2, cosine 3); idx = rng.integers(0, n, size=(N, n)); the N replicate medians are
numpy.median(x[idx], axis=1) (for ratios the elementwise quotient of the two replicate medians), and
the interval is numpy.percentile(replicates, [2.5, 97.5]). Onset and sharpness share idx.
A row's interval therefore does not depend on the other rows or on --metric.

CSV (--csv) has one header line and full-precision numbers (shortest repr that round-trips);
columns: kind, hook, metric, base, direction, n, onset, onset_lo, onset_hi, sharpness,
sharpness_lo, sharpness_hi, median_at_<alpha>... (empty for ratio rows). In ratio rows `base`
holds "real/synthetic" and `direction` the direction, or `base` the base and `direction`
"<direction>/<reference>".

Exit status: 0 on success; 2 with one line on stderr for a missing or unusable file;
1 for a bad command line.
"""
import argparse
import csv
import sys

SCRIPT = "summary.py"
try:
    import numpy as np
    from plateau_result import (AGG_DIMS, METRIC_CODE, METRICS, SCORE_DIMS, EXIT_USAGE,
                                Result, ResultError, die)
except ImportError as e:
    sys.stderr.write(f"{SCRIPT}: {e}: run with /usr/bin/python3 (Debian's python3-numpy, python3-xarray, "
                     "python3-netcdf4)\n")
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        die(SCRIPT, f"{message} (see --help)", EXIT_USAGE)


def replicate_medians(rng, columns, n, n_boot):
    """Bootstrap medians of each 1-D array in `columns` (all length n) under the same resampling.
    Drawn in blocks of rows to bound memory; numpy's bounded-integer stream is the same whether the
    (N, n) index matrix is drawn at once or row block by row block."""
    out = [np.empty(n_boot) for _ in columns]
    block = max(1, (1 << 22) // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        for o, x in zip(out, columns):
            o[done:done + k] = np.median(x[idx], axis=1)
        done += k
    return out


def interval(replicates):
    with np.errstate(invalid="ignore"):
        lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(lo), float(hi)


def summarise(res, metrics, alphas, seed, n_boot):
    """Returns (alpha grid points used, stats rows, ratio rows); rows are dicts."""
    grid = [int(np.argmin(np.abs(res.alpha - a))) for a in alphas]
    stats, ratios = [], []
    for h in range(len(res.hooks)):
        for m in metrics:
            code = METRIC_CODE[m]
            onset = res.array(f"{m}_onset", SCORE_DIMS, h)
            sharp = res.array(f"{m}_sharpness", SCORE_DIMS, h)
            if res.has(f"{m}_median"):
                med = res.array(f"{m}_median", AGG_DIMS, h)
            else:
                raw = res.raw(m, h)
                B, D, P, S, A = raw.shape
                med = np.median(raw.reshape(B, D, P * S, A), axis=2)
            point = {}
            for b, base in enumerate(res.bases):
                for d, direction in enumerate(res.directions):
                    x_on, x_sh = onset[b, d].reshape(-1), sharp[b, d].reshape(-1)
                    ok = np.isfinite(x_on) & np.isfinite(x_sh)
                    x_on, x_sh = x_on[ok], x_sh[ok]
                    n = int(x_on.size)
                    row = {"kind": "stats", "hook": res.hooks[h], "metric": m, "base": base,
                           "direction": direction, "n": n, "medians": [float(med[b, d, k]) for k in grid]}
                    if n == 0:
                        row.update(onset=np.nan, onset_ci=(np.nan, np.nan), sharpness=np.nan, sharpness_ci=(np.nan, np.nan))
                    else:
                        rng = np.random.default_rng([seed, h, code, 0, b, d])
                        r_on, r_sh = replicate_medians(rng, (x_on, x_sh), n, n_boot)
                        row.update(onset=float(np.median(x_on)), onset_ci=interval(r_on),
                                   sharpness=float(np.median(x_sh)), sharpness_ci=interval(r_sh))
                    stats.append(row)
                    point[(b, d)] = ok

            def ratio(num, den, base_label, direction_label):
                (b1, d1), (b2, d2) = num, den
                ok = point[num] & point[den]
                n = int(ok.sum())
                row = {"kind": "ratio", "hook": res.hooks[h], "metric": m, "base": base_label,
                       "direction": direction_label, "n": n, "medians": [None] * len(grid)}
                if n == 0:
                    row.update(onset=np.nan, onset_ci=(np.nan, np.nan), sharpness=np.nan, sharpness_ci=(np.nan, np.nan))
                    ratios.append(row)
                    return
                cols = [onset[b1, d1].reshape(-1)[ok], onset[b2, d2].reshape(-1)[ok],
                        sharp[b1, d1].reshape(-1)[ok], sharp[b2, d2].reshape(-1)[ok]]
                rng = np.random.default_rng([seed, h, code, 1, b1, d1, b2, d2])
                r = replicate_medians(rng, cols, n, n_boot)
                with np.errstate(divide="ignore", invalid="ignore"):
                    row.update(onset=float(np.float64(np.median(cols[0])) / np.median(cols[1])),
                               onset_ci=interval(r[0] / r[1]),
                               sharpness=float(np.float64(np.median(cols[2])) / np.median(cols[3])),
                               sharpness_ci=interval(r[2] / r[3]))
                ratios.append(row)

            if "real" in res.bases and "synthetic" in res.bases:
                br, bs = res.bases.index("real"), res.bases.index("synthetic")
                for d, direction in enumerate(res.directions):
                    ratio((br, d), (bs, d), "real/synthetic", direction)
            ref = next((r for r in ("real_other", "cov_random") if r in res.directions), None)
            if ref is not None:
                dr = res.directions.index(ref)
                for b, base in enumerate(res.bases):
                    for d, direction in enumerate(res.directions):
                        if d != dr:
                            ratio((b, d), (b, dr), base, f"{direction}/{ref}")
    return [float(res.alpha[k]) for k in grid], stats, ratios


def csv_number(x):
    if x is None:
        return ""
    return repr(float(x))


def text_number(x):
    if x is None:
        return ""
    return f"{x:.4g}"


def with_ci(x, ci):
    return f"{text_number(x)} [{text_number(ci[0])}, {text_number(ci[1])}]"


def aligned(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines)


def main(argv=None):
    ap = Parser(prog=SCRIPT, description="Table of plateau onsets, sharpness and ratios (see the module docstring).")
    ap.add_argument("result", metavar="RESULT.nc")
    ap.add_argument("--csv", action="store_true", help="CSV instead of aligned text")
    ap.add_argument("--alpha", type=float, nargs="+", metavar="A", help="alphas for the median columns")
    ap.add_argument("--metric", action="append", choices=METRICS, help="only this metric (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ap.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    a = ap.parse_args(argv)
    if a.seed < 0:
        die(SCRIPT, f"--seed {a.seed}: expected a non-negative integer", EXIT_USAGE)
    if not 1 <= a.bootstrap <= 1000000:
        die(SCRIPT, f"--bootstrap {a.bootstrap}: expected 1..1000000", EXIT_USAGE)
    if a.alpha and not all(np.isfinite(a.alpha)):
        die(SCRIPT, "--alpha: expected finite numbers", EXIT_USAGE)
    try:
        res = Result(a.result)
        metrics = res.select_metrics(a.metric)
        for m in metrics:
            for v in (f"{m}_onset", f"{m}_sharpness"):
                res.require(v, SCORE_DIMS)
        amax = float(res.alpha[-1])
        alphas = a.alpha if a.alpha else [0.1 * amax, 0.5 * amax, amax]
        step = float(np.min(np.diff(res.alpha)))
        for x in alphas:
            if x < res.alpha[0] - step / 2 or x > res.alpha[-1] + step / 2:
                raise ResultError(f"{a.result}: --alpha {x:g} is outside the file's alpha range "
                                  f"{res.alpha[0]:g}..{res.alpha[-1]:g}")
        used, stats, ratios = summarise(res, metrics, alphas, a.seed, a.bootstrap)
        for want, got in zip(alphas, used):
            if abs(want - got) > 1e-9 * max(1.0, abs(amax)):
                sys.stderr.write(f"{SCRIPT}: note: --alpha {want:g} is not on the grid; using the nearest point {got:g}\n")
    except ResultError as e:
        die(SCRIPT, str(e))

    if a.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["kind", "hook", "metric", "base", "direction", "n", "onset", "onset_lo", "onset_hi",
                    "sharpness", "sharpness_lo", "sharpness_hi"] + [f"median_at_{x:g}" for x in used])
        for r in stats + ratios:
            w.writerow([r["kind"], r["hook"], r["metric"], r["base"], r["direction"], r["n"],
                        csv_number(r["onset"]), csv_number(r["onset_ci"][0]), csv_number(r["onset_ci"][1]),
                        csv_number(r["sharpness"]), csv_number(r["sharpness_ci"][0]), csv_number(r["sharpness_ci"][1])]
                       + [csv_number(v) for v in r["medians"]])
        return 0

    print(f"plateau summary of {a.result}")
    print(res.describe())
    print(f"onset, sharpness: median over curves [95 % percentile-bootstrap interval; {a.bootstrap} resamples, seed {a.seed}]")
    print()
    header = ["hook", "metric", "base", "direction", "n", "onset [95% CI]", "sharpness [95% CI]"] + \
             [f"median@{x:g}" for x in used]
    rows = [[r["hook"], r["metric"], r["base"], r["direction"], str(r["n"]), with_ci(r["onset"], r["onset_ci"]),
             with_ci(r["sharpness"], r["sharpness_ci"])] + [text_number(v) for v in r["medians"]] for r in stats]
    print(aligned(header, rows))
    if ratios:
        print()
        print("ratios of the medians [95 % paired percentile-bootstrap interval]: "
              "real/synthetic > 1 means real activations sit on longer plateaus; "
              "X/real_other > 1 means real_other directions leave the plateau sooner")
        print()
        header = ["hook", "metric", "ratio", "for", "n", "onset ratio [95% CI]", "sharpness ratio [95% CI]"]
        rows = []
        for r in ratios:
            if r["base"] == "real/synthetic":
                what, where = "real/synthetic", f"direction {r['direction']}"
            else:
                what, where = r["direction"], f"base {r['base']}"
            rows.append([r["hook"], r["metric"], what, where, str(r["n"]), with_ci(r["onset"], r["onset_ci"]),
                         with_ci(r["sharpness"], r["sharpness_ci"])])
        print(aligned(header, rows))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `summary.py x.nc | head` is normal use
        sys.stderr.close()
        sys.exit(0)
