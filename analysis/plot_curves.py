#!/usr/bin/python3
"""Figures from a plateau result: the post's plateau and sensitive-direction plots.

usage: /usr/bin/python3 analysis/plot_curves.py RESULT.nc -o DIR [--metric M ...] [--dpi N]

For each metric in the file (kl, jsd, l2, cosine) it writes into DIR:
  <m>_all.png, <m>_all_logy.png                 every (base, direction) kind in one panel
  <m>_plateau.png, <m>_plateau_logy.png         real vs synthetic base, one panel per direction
                                                (needs two or more bases)
  <m>_directions.png, <m>_directions_logy.png   real_other vs cov_random vs isotropic, one panel
                                                per base (needs two or more directions)
  <m>_scores.png                                histograms of plateau onset and sharpness per kind
Curves are the median over all (prompt, sample) curves with 25-75 % and 5-95 % bands: computed
from the raw curves when the file has them, else read from <m>_median and <m>_quantiles. A merged
multi-hook file gets one row of panels per hook. Each kind keeps one colour in every figure.
The log-y versions mask values <= 0 (the curves start at exactly 0); for cosine similarity they show
1 - cosine, which is what rises. Captions carry the model path (and a SYNTHETIC flag), the hook and
the prompt count.

DIR/figures.json describes every figure written: file, title, caption, the panels with their axis
labels, and the plotted numbers (per series: median and band arrays, or histogram edges and counts),
so tests and notebooks can check a figure without reading pixels. Figures that do not apply to the
file are listed under "skipped" with the reason.

Exit status: 0 on success; 2 with one line on stderr for a missing or unusable file;
1 for a bad command line.
"""
import argparse
import json
import os
import sys

SCRIPT = "plot_curves.py"
try:
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on cluster nodes
    from plateau_result import (AGG_DIMS, METRICS, QUANT_DIMS, SCORE_DIMS, EXIT_USAGE,
                                Result, ResultError, die)
except ImportError as e:
    sys.stderr.write(f"{SCRIPT}: {e}: run with /usr/bin/python3 (Debian's python3-numpy, python3-xarray, "
                     "python3-netcdf4, python3-matplotlib)\n")
    sys.exit(2)

plt = None  # matplotlib.pyplot, imported once the input has been checked (it is slow to import)

RAW_BANDS = ((0.05, 0.95), (0.25, 0.75))  # from raw curves; outermost first (drawn lighter, underneath)
TITLE = {"kl": "KL(clean ‖ perturbed)", "jsd": "JSD(clean, perturbed)", "l2": "L2 distance at read hook",
         "cosine": "cosine similarity at read hook"}


class Parser(argparse.ArgumentParser):
    def error(self, message):
        die(SCRIPT, f"{message} (see --help)", EXIT_USAGE)


def curve_stats(res, m, h):
    """Median and bands per (base, direction, alpha) for hook h.
    Returns (median[B, D, A], [((lo, hi), q_lo[B, D, A], q_hi[B, D, A]), ...] outermost first,
    n_curves or None, source). From raw curves the bands are 5-95 % and 25-75 %; from the file's
    aggregates they are every symmetric pair (q, 1 - q) of its quantile levels."""
    raw = res.raw(m, h)
    if raw is not None:
        B, D, P, S, A = raw.shape
        flat = raw.reshape(B, D, P * S, A)
        bands = [((lo, hi), np.quantile(flat, lo, axis=2), np.quantile(flat, hi, axis=2)) for lo, hi in RAW_BANDS]
        return np.median(flat, axis=2), bands, P * S, "raw curves"
    med = res.array(f"{m}_median", AGG_DIMS, h)
    qs = res.array(f"{m}_quantiles", QUANT_DIMS, h)
    levels = res.quantile_levels()
    bands = []
    for i in np.argsort(levels):
        lo = float(levels[i])
        match = np.nonzero(np.abs(levels - (1.0 - lo)) < 1e-9)[0]
        if lo < 0.5 and match.size:
            bands.append(((lo, float(levels[match[0]])), qs[i], qs[match[0]]))
    n = None
    if res.has(f"{m}_count"):
        counts = res.array(f"{m}_count", AGG_DIMS, h)
        n = int(counts.max()) if counts.size else None
    return med, bands, n, f"{m}_median / {m}_quantiles"


def band_text(bands):
    if not bands:
        return "no bands (the file has no symmetric quantile pair)"
    return " and ".join(f"{100 * hi - 100 * lo:.0f} % ({100 * lo:g}–{100 * hi:g} %)" for (lo, hi), _, _ in bands[::-1]) + " bands"


def histogram_edges(values, alpha):
    """Shared bins for one panel. Onsets and max-slope alphas sit on the alpha grid, so bins centred
    on the grid points avoid empty in-between bins; anything else gets 25 equal bins."""
    if values.size == 0:
        return np.linspace(0.0, 1.0, 26)
    lo, hi = float(values.min()), float(values.max())
    on_grid = np.min(np.abs(values[:, None] - alpha[None, :]), axis=1) <= 1e-6 * max(1.0, abs(alpha[-1]))
    if np.all(on_grid):
        i0, i1 = int(np.argmin(np.abs(alpha - lo))), int(np.argmin(np.abs(alpha - hi)))
        grid = alpha[i0:i1 + 1]
        step = np.diff(alpha).min()
        mids = (grid[:-1] + grid[1:]) / 2
        return np.concatenate(([grid[0] - step / 2], mids, [grid[-1] + step / 2]))
    if hi <= lo:
        return np.array([lo - 0.5, hi + 0.5])
    return np.linspace(lo, hi, 26)


def say(line):
    """Progress on stdout; a closed pipe (`plot_curves.py ... | head`) must not stop the figures."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")


def jsonable(a):
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=np.float64).reshape(-1)]


class Plotter:
    def __init__(self, res, outdir, dpi):
        self.res, self.outdir, self.dpi = res, outdir, dpi
        self.pairs = [(b, d) for b in res.bases for d in res.directions]
        cmap = plt.get_cmap("tab10")
        # One colour per kind for every figure of the run, so a kind is recognisable across files.
        self.colour = {pair: cmap(i % 10) for i, pair in enumerate(self.pairs)}
        self.style = {b: ("-", "--", ":", "-.")[i % 4] for i, b in enumerate(res.bases)}
        self.figures, self.skipped = [], []
        self.stats = {}

    def stats_for(self, m, h):
        if (m, h) not in self.stats:
            self.stats[(m, h)] = curve_stats(self.res, m, h)
        return self.stats[(m, h)]

    def caption(self, extra):
        return f"{self.res.describe()}\n{extra}"

    def new_figure(self, rows, cols, title, caption, sharey=False):
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 0.4, 3.5 * rows + 1.5), squeeze=False,
                                 sharey="row" if sharey else False)
        prefix = "[SYNTHETIC MODEL] " if self.res.synthetic else ""
        fig.suptitle(f"{prefix}{self.res.model_name()} · {title}", fontsize=12)
        fig.text(0.01, 0.008, caption, fontsize=7.5, ha="left", va="bottom", wrap=True)
        # Fixed margins in inches (tight_layout costs half the run time): caption and x labels at
        # the bottom, title and panel titles (two lines when they name the hook) at the top.
        width, height = fig.get_size_inches()
        title_h = 0.55 if self.res.merged else 0.35
        gap_w, gap_h = 0.8, 0.55 + title_h
        bottom, top = 0.6 + 0.5, 0.45 + title_h
        ax_h = (height - bottom - top - (rows - 1) * gap_h) / rows
        ax_w = (width - 0.75 - 0.2 - (cols - 1) * gap_w) / cols
        fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=bottom / height, top=1 - top / height,
                            wspace=gap_w / ax_w, hspace=gap_h / ax_h)
        return fig, axes

    def save(self, fig, name, record):
        path = os.path.join(self.outdir, name)
        try:
            fig.savefig(path, dpi=self.dpi)
        except OSError as e:
            raise ResultError(f"{path}: cannot write figure ({e.strerror or e})") from None
        finally:
            plt.close(fig)
        record["file"] = name
        self.figures.append(record)
        shape = f"{record['rows']}x{record['cols']} panels"
        say(f"{SCRIPT}: wrote {path} ({record['kind']}, {shape})")

    def curves(self, m, kind, logy):
        """kind: 'all' (one panel), 'plateau' (panel per direction, series per base) or
        'directions' (panel per base, series per direction)."""
        res = self.res
        if kind == "all":
            groups = [None]
        elif kind == "plateau":
            groups = res.directions
        else:
            groups = res.bases
        rows, cols = len(res.hooks), len(groups)
        transform = "1 - x" if (logy and m == "cosine") else None
        what = {"all": "every kind", "plateau": "real vs synthetic base",
                "directions": " vs ".join(res.directions) + " directions"}[kind]
        title = f"{TITLE[m]}: {what}" + (" (log y)" if logy else "")
        name_in_file = m if res.has(m) else f"{m}_median"
        # The file's long_name is a sentence; the axis gets the short name and the units.
        ylabel = TITLE[m] if not transform else f"1 − {TITLE[m]}"
        units = res.units(name_in_file)
        if units and units != "1":
            ylabel += f" [{units}]"
        # What α means depends on the step mode; the file's alpha coordinate says it before the colon.
        meaning = res.long_name("alpha", "step size").split(":")[0]
        xlabel = f"α: {meaning} ({len(res.alpha)} steps)"
        first = self.stats_for(m, 0)
        caption = self.caption(f"Median over curves (line), {band_text(first[1])}, from {first[3]}."
                               + (" Values ≤ 0 not shown on the log axis." if logy else ""))
        # Panels of one hook share the y axis, so kinds compare by eye across panels.
        fig, axes = self.new_figure(rows, cols, title, caption, sharey=True)
        record = {"kind": kind, "metric": m, "yscale": "log" if logy else "linear", "title": fig._suptitle.get_text(),
                  "caption": caption, "rows": rows, "cols": cols, "transform": transform, "panels": []}
        for h in range(rows):
            med, band_stats, n, source = self.stats_for(m, h)
            for g, group in enumerate(groups):
                ax = axes[h][g]
                if kind == "all":
                    series = self.pairs
                    ptitle = "all kinds"
                elif kind == "plateau":
                    series = [(b, group) for b in res.bases]
                    ptitle = f"direction: {group}"
                else:
                    series = [(group, d) for d in res.directions]
                    ptitle = f"base: {group}"
                if res.merged:
                    ptitle = f"{res.hook_label(h)}\n{ptitle}"
                panel = {"hook": res.hook_label(h), "title": ptitle, "xlabel": xlabel, "ylabel": ylabel,
                         "source": source, "n_curves": n, "series": []}
                for (b, d) in series:
                    bi, di = res.bases.index(b), res.directions.index(d)
                    y = med[bi, di]
                    bands = {levels: (q_lo[bi, di], q_hi[bi, di]) for levels, q_lo, q_hi in band_stats}
                    if transform:
                        y = 1.0 - y
                        bands = {k: (1.0 - v[1], 1.0 - v[0]) for k, v in bands.items()}
                    if logy:
                        y = np.where(y > 0, y, np.nan)
                        bands = {k: (np.where(v[0] > 0, v[0], np.nan), np.where(v[1] > 0, v[1], np.nan))
                                 for k, v in bands.items()}
                    colour = self.colour[(b, d)]
                    label = f"{b} / {d}"
                    for k, (ylo, yhi) in enumerate(bands.values()):
                        # Outer bands lighter; bands stack, so the inner ones read darker still.
                        ax.fill_between(res.alpha, ylo, yhi, color=colour, alpha=0.12 + 0.16 * k / max(1, len(bands) - 1),
                                        linewidth=0)
                    ax.plot(res.alpha, y, color=colour, linestyle=self.style[b], linewidth=1.8, label=label)
                    panel["series"].append({"base": b, "direction": d, "label": label, "median": jsonable(y),
                                            "bands": {f"{lo:g}-{hi:g}": [jsonable(v[0]), jsonable(v[1])]
                                                      for (lo, hi), v in bands.items()}})
                if logy:
                    ax.set_yscale("log")
                ax.set_title(ptitle, fontsize=10)
                ax.set_xlabel(xlabel, fontsize=9)
                ax.set_ylabel(ylabel, fontsize=9)
                ax.yaxis.set_tick_params(labelleft=True)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8, loc="best")
                record["panels"].append(panel)
        suffix = "_logy" if logy else ""
        self.save(fig, f"{m}_{kind}{suffix}.png", record)

    def scores(self, m):
        res = self.res
        names = [f"{m}_onset", f"{m}_sharpness"]
        missing = [n for n in names if not res.has(n)]
        if missing:
            self.skipped.append({"figure": f"{m}_scores.png", "reason": f"no variable {', '.join(missing)}"})
            say(f"{SCRIPT}: skipped {m}_scores.png: the file has no {', '.join(missing)}")
            return
        rows, cols = len(res.hooks), 2
        title = f"{TITLE[m]}: plateau onset and sharpness per kind"
        caption = self.caption("Histograms over all (prompt, sample) curves of each kind; shared bins per panel.")
        fig, axes = self.new_figure(rows, cols, title, caption)
        record = {"kind": "scores", "metric": m, "yscale": "linear", "title": fig._suptitle.get_text(),
                  "caption": caption, "rows": rows, "cols": cols, "transform": None, "panels": []}
        for h in range(rows):
            for c, name in enumerate(names):
                ax = axes[h][c]
                vals = res.array(name, SCORE_DIMS, h)  # (B, D, P, S)
                finite = vals[np.isfinite(vals)]
                edges = histogram_edges(finite, res.alpha)
                xlabel = ("plateau onset α" if c == 0 else "sharpness: largest normalised rise × (steps − 1)")
                ptitle = ("plateau onset" if c == 0 else "sharpness") + f" ({m})"
                if res.merged:
                    ptitle = f"{res.hook_label(h)}\n{ptitle}"
                panel = {"hook": res.hook_label(h), "variable": name, "title": ptitle, "xlabel": xlabel,
                         "ylabel": "curves", "edges": jsonable(edges), "series": []}
                for (b, d) in self.pairs:
                    v = vals[res.bases.index(b), res.directions.index(d)].reshape(-1)
                    v = v[np.isfinite(v)]
                    counts, _ = np.histogram(v, edges)
                    ax.hist(v, edges, histtype="step", linewidth=1.6, color=self.colour[(b, d)],
                            linestyle=self.style[b], label=f"{b} / {d} (n={v.size})")
                    panel["series"].append({"base": b, "direction": d, "label": f"{b} / {d}", "n": int(v.size),
                                            "counts": [int(x) for x in counts]})
                ax.set_title(ptitle, fontsize=10)
                ax.set_xlabel(xlabel, fontsize=9)
                ax.set_ylabel("curves", fontsize=9)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7, loc="best")
                record["panels"].append(panel)
        self.save(fig, f"{m}_scores.png", record)


def main(argv=None):
    ap = Parser(prog=SCRIPT, description="Figures from a plateau result file (see the module docstring).")
    ap.add_argument("result", metavar="RESULT.nc")
    ap.add_argument("-o", "--outdir", metavar="DIR", required=True, help="directory for the PNGs (created)")
    ap.add_argument("--metric", action="append", choices=METRICS, help="only this metric (repeatable)")
    ap.add_argument("--dpi", type=int, default=110)
    a = ap.parse_args(argv)
    if not 20 <= a.dpi <= 600:
        die(SCRIPT, f"--dpi {a.dpi}: expected 20..600", EXIT_USAGE)
    try:
        res = Result(a.result)
        metrics = res.select_metrics(a.metric)
        if os.path.exists(a.outdir) and not os.path.isdir(a.outdir):
            raise ResultError(f"{a.outdir}: exists and is not a directory")
        try:
            os.makedirs(a.outdir, exist_ok=True)
        except OSError as e:
            raise ResultError(f"{a.outdir}: cannot create directory ({e.strerror})") from None
        global plt
        import matplotlib.pyplot as plt
        p = Plotter(res, a.outdir, a.dpi)
        for m in metrics:
            for logy in (False, True):
                p.curves(m, "all", logy)
                for kind, count, need in (("plateau", len(res.bases), "two bases"),
                                          ("directions", len(res.directions), "two directions")):
                    if count >= 2:
                        p.curves(m, kind, logy)
                    else:
                        fname = f"{m}_{kind}{'_logy' if logy else ''}.png"
                        p.skipped.append({"figure": fname, "reason": f"the file has fewer than {need}"})
                        say(f"{SCRIPT}: skipped {fname}: the file has fewer than {need}")
            p.scores(m)
        sidecar = os.path.join(a.outdir, "figures.json")
        doc = {"source": os.path.abspath(a.result), "synthetic_model": res.synthetic, "model_path": res.model_path,
               "hooks": res.hooks, "merged": res.merged, "bases": res.bases, "directions": res.directions,
               "alpha": jsonable(res.alpha), "metrics": metrics, "figures": p.figures, "skipped": p.skipped}
        try:
            with open(sidecar, "w") as f:
                json.dump(doc, f, indent=1)
        except OSError as e:
            raise ResultError(f"{sidecar}: cannot write ({e.strerror})") from None
    except ResultError as e:
        die(SCRIPT, str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
