"""Figures from a plateau result: the post's plateau and sensitive-direction plots, individual
curves, the per-curve scores, and for merged files the scores against the hook.

usage: /usr/bin/python3 analysis/plot_curves.py RESULT.nc -o DIR [--metric M [M ...]]
                        [--format png|pdf|svg ...] [--dpi N] [--seed S] [--bootstrap N]

For each metric m in the file it writes into DIR (one file per --format, default png):
  m_all, m_all_logy                 every (base, direction) kind in one panel
  m_plateau, m_plateau_logy         one panel per direction, one line per base (needs 2+ bases)
  m_directions, m_directions_logy   one panel per base, one line per direction (needs 2+ directions)
  m_curves                          individual curves: up to 20 per kind, evenly spaced over
                                    (prompt, sample), with the kind's median; a row of panels per
                                    base, a column per direction (needs raw curves)
  m_scores                          histograms of every per-curve score, one panel per score
  m_scores_cdf                      their empirical CDFs over all curves (non-finite scores never
                                    enter, so a CDF ends below 1 by the fraction of such curves)
  m_by_hook                         merged files: each score's median per kind against the hook,
                                    with percentile-bootstrap 95 % intervals
  m_ratios_by_hook                  merged files: the paired comparisons (ratio of medians, 95 %
                                    interval) against the hook, as plateau wrote them or, for
                                    files without them, computed here (see stats.py)
Curves are the median over all (prompt, sample) curves with 25-75 % and 5-95 % bands, NaN-aware
(non-finite values left out, as plateau does): computed from the raw curves when the file has them,
else read from m_median and m_quantiles. A merged file gets one row of panels per hook. Each kind
keeps one colour in every figure. The log-y versions mask values <= 0 (the curves start at exactly
0); for cosine similarity they show 1 - cosine, and say so. The α axis says what α means under
the file's step mode. Captions carry the model path (and a SYNTHETIC flag), the hook and the
prompt count; the legend sits below the panels.

DIR/figures.json describes every figure written: files, title, caption, size, the panels with
their axis labels, and the plotted numbers (per series: median and band arrays, curve values,
histogram edges and counts, CDF points, medians and intervals), so tests and notebooks can check a
figure without reading pixels. Figures that do not apply to the file are listed under "skipped"
with the reason.

Exit status: 0 on success; 2 with one line on stderr for a missing or unusable file;
1 for a bad command line.
"""
import json
import os
import re
import textwrap

import numpy as np

from . import layout
from .cli import Parser, die, say
from .result import ALPHA_SCORES, EXIT_USAGE, METRICS, SCORE_DIMS, Result, ResultError, plural
from .stats import (curve_stats, paired_table, sample_indices, score_median, score_median_seed)

SCRIPT = "plot_curves.py"
FORMATS = ("png", "pdf", "svg")
N_INDIVIDUAL = 20  # individual curves drawn per kind
TITLE = {"kl": "KL(clean ‖ perturbed)", "jsd": "JSD(clean, perturbed)", "l2": "L2 distance at the read hook",
         "cosine": "cosine similarity at the read hook", "js_dist": "JS distance √JSD(clean, perturbed)",
         "ce_loss": "cross-entropy loss of the next token", "sae_l0": "SAE features active at the hook (L0)",
         "sae_recon_error": "SAE reconstruction error ‖x − SAE(x)‖ at the hook"}
# Which scores a metric lacks on purpose (docs/science.md, "Which score is computed for which metric").
NL_NOTE = {m: f" The NL scores (nonlinearity_alpha, giglemiani_nl_alpha) are not computed for {m}: it is quadratic "
              "near α = 0, so a line through the first steps says nothing; see js_dist (√JSD) or l2."
           for m in ("kl", "jsd", "cosine")}

# What the scores' values are, for axis labels (the α-valued ones take the file's α label).
SCORE_AXIS = {"sharpness": "sharpness: largest normalised rise × (steps − 1)",
              "auc": "auc: area under the curve (step index)"}

plt = None  # matplotlib.pyplot, imported once the input has been checked (it is slow to import)


def jsonable(a):
    """Array -> nested lists with None for NaN/inf (JSON has no NaN)."""
    a = np.asarray(a, dtype=np.float64)
    return [None if not np.isfinite(x) else float(x) for x in a.reshape(-1)] if a.ndim <= 1 else [jsonable(r) for r in a]


def band_text(bands):
    if not bands:
        return "no bands (the file has no symmetric quantile pair)"
    return " and ".join(f"{100 * lo:g}–{100 * hi:g} %" for (lo, hi), _, _ in bands[::-1]) + " of the curves"


def histogram_edges(values, alpha):
    """Shared bins for one panel. Scores on the α grid (onset) get bins centred on the grid points,
    scores on the grid's midpoints (max_slope_alpha) get the grid points as edges, so no bin falls
    between two possible values; anything else gets 25 equal bins."""
    if values.size == 0:
        return np.linspace(float(alpha[0]), float(alpha[-1]), 26)
    lo, hi = float(values.min()), float(values.max())
    tol = 1e-6 * max(1.0, abs(float(alpha[-1])))
    mids = (alpha[:-1] + alpha[1:]) / 2
    if np.all(np.min(np.abs(values[:, None] - alpha[None, :]), axis=1) <= tol):
        i0, i1 = int(np.argmin(np.abs(alpha - lo))), int(np.argmin(np.abs(alpha - hi)))
        grid = alpha[i0:i1 + 1]
        step = np.diff(alpha).min()
        inner = (grid[:-1] + grid[1:]) / 2
        return np.concatenate(([grid[0] - step / 2], inner, [grid[-1] + step / 2]))
    if np.all(np.min(np.abs(values[:, None] - mids[None, :]), axis=1) <= tol):
        i0, i1 = int(np.argmin(np.abs(mids - lo))), int(np.argmin(np.abs(mids - hi)))
        return alpha[i0:i1 + 2].copy()
    if hi <= lo:
        return np.array([lo - 0.5, hi + 0.5])
    return np.linspace(lo, hi, 26)


class HookAxis:
    """The x axis of figures against the hook: the block number when every hook is
    blocks.N.<same point>, else the hooks in file order; N_SERIES series side by side at each."""

    def __init__(self, hooks, n_series):
        parsed = [re.fullmatch(r"blocks\.(\d+)\.(.+)", h) for h in hooks]
        if all(parsed) and len({p.group(2) for p in parsed}) == 1 and len({p.group(1) for p in parsed}) == len(hooks):
            self.x = np.array([int(p.group(1)) for p in parsed], dtype=np.float64)
            self.ticks, self.label, self.rotate = [p.group(1) for p in parsed], \
                f"block N of blocks.N.{parsed[0].group(2)}", False
        else:
            self.x, self.ticks, self.label, self.rotate = np.arange(len(hooks), dtype=np.float64), list(hooks), "hook", True
        self.order = np.argsort(self.x, kind="stable")  # lines join the hooks left to right
        spread = 0.5 * (np.min(np.diff(np.sort(self.x))) if self.x.size > 1 else 1.0)
        self.offsets = (np.arange(n_series) - (n_series - 1) / 2) * spread / max(1, n_series)

    def errorbar(self, ax, k, y, lo, hi, **style):
        """Series k: Y with the interval [LO, HI] at every hook, shifted sideways from the others."""
        # NaN (undefined: no finite pair) is not drawn; masked values are NaN, not a masked-array warning
        y, lo, hi = (np.ma.filled(np.ma.asarray(v, dtype=np.float64), np.nan) for v in (y, lo, hi))
        # A percentile interval need not contain the estimate (a ratio of medians): no negative bar.
        with np.errstate(invalid="ignore"):
            yerr = np.maximum(np.vstack([y - lo, hi - y]), 0.0)
        open_top = np.isinf(yerr[1]) & np.isfinite(y)  # the interval runs past the grid (censored scores)
        yerr = np.where(np.isfinite(yerr), yerr, 0.0)
        x, y, yerr, open_top = (self.x[self.order] + self.offsets[k], y[self.order], yerr[:, self.order],
                                open_top[self.order])
        # the line through every hook (broken at an undefined one), the points and bars at the defined ones
        # (errorbar given a NaN masks it and warns)
        ax.plot(x, y, linewidth=1.2, **style)
        keep = np.isfinite(y)
        if keep.any():
            ax.errorbar(x[keep], y[keep], yerr=yerr[:, keep], marker="o", markersize=3, capsize=2,
                        **dict(style, linestyle="none"))
        if open_top.any():
            ax.plot(x[open_top], y[open_top], marker="^", markersize=6, **dict(style, linestyle="none"))

    def label_ticks(self, ax):
        ax.set_xticks(self.x)
        ax.set_xticklabels(self.ticks, rotation=40 if self.rotate else 0, ha="right" if self.rotate else "center")

    def record(self):
        return {"x": jsonable(self.x), "xticklabels": self.ticks}


def note_if_empty(ax, axis, panel, field, why):
    """A panel none of whose series has a finite FIELD says WHY in its middle (and in the record), on fixed
    limits (AXIS's hooks), instead of a blank axis a reader could take for a drawing fault."""
    if any(np.isfinite(np.ma.filled(np.ma.asarray(r[field], dtype=np.float64), np.nan)).any()
           for r in panel["series"]):
        return
    panel["note"] = why
    ax.set_xlim(np.min(axis.x) - 0.5, np.max(axis.x) + 0.5)
    ax.set_ylim(0.0, 1.0)
    shown = why.replace(": ", ":\n", 1).replace(" is ", "\nis ", 1).replace(" for ", "\nfor ", 1)
    ax.text(0.5, 0.5, shown, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.35")


class Plotter:
    def __init__(self, res, outdir, dpi, formats, seed, n_boot):
        self.res, self.outdir, self.dpi, self.formats = res, outdir, dpi, formats
        self.seed, self.n_boot = seed, n_boot
        self.pairs = [(b, d) for b in res.bases for d in res.directions]
        cmap = plt.get_cmap("tab10")
        # One colour per kind for every figure of the run, so a kind is recognisable across files.
        self.colour = {pair: cmap(i % 10) for i, pair in enumerate(self.pairs)}
        self.style = {b: ("-", "--", ":", "-.")[i % 4] for i, b in enumerate(res.bases)}
        self.figures, self.skipped = [], []
        self._stats = {}

    # -- shared pieces ----------------------------------------------------------------------------

    def stats_for(self, m, h):
        if (m, h) not in self._stats:
            self._stats[(m, h)] = curve_stats(self.res, m, h)
        return self._stats[(m, h)]

    def forget(self):
        self._stats.clear()
        self.res.forget()

    def metric_title(self, m):
        return TITLE.get(m) or self.res.attr(m if self.res.has(m) else f"{m}_median", "long_name") or m

    def units_suffix(self, name):
        units = self.res.units(name)
        return f" [{units}]" if units and units.strip() not in ("1", "") else ""

    def score_axis(self, m, s):
        if s in ALPHA_SCORES:
            return self.res.alpha_label()
        return SCORE_AXIS.get(s) or self.res.attr(f"{m}_{s}", "long_name") or s

    def panel_title(self, h, text):
        return f"{self.res.hooks[h]}\n{text}" if self.res.merged else text

    def kind_handles(self, pairs, **kw):
        from matplotlib.lines import Line2D
        return ([Line2D([], [], color=self.colour[p], linestyle=self.style[p[0]], linewidth=kw.get("lw", 1.8))
                 for p in pairs], [f"{b} / {d}" for b, d in pairs])

    @staticmethod
    def legend_columns(pairs):
        """A legend row per base, a column per direction, when the kinds shown form that grid."""
        directions = list(dict.fromkeys(d for _, d in pairs))
        bases = list(dict.fromkeys(b for b, _ in pairs))
        return len(directions) if len(pairs) == len(bases) * len(directions) else None

    def skip(self, name, reason):
        self.skipped.append({"figure": name, "reason": reason})
        say(f"{SCRIPT}: skipped {name}: {reason}")

    def save(self, fig, axes, name, record, title, caption, handles, labels, ncol=None):
        prefix = "[SYNTHETIC MODEL] " if self.res.synthetic else ""
        drawn_title, drawn_caption = layout.finish(fig, axes, prefix + title, caption, handles, labels, ncol)
        width, height = fig.get_size_inches()
        record.update(name=name, title=prefix + title, caption=caption, title_drawn=drawn_title,
                      caption_drawn=drawn_caption, legend=list(labels), width_in=float(width),
                      height_in=float(height), dpi=self.dpi, files=[])
        try:
            for fmt in self.formats:
                path = os.path.join(self.outdir, f"{name}.{fmt}")
                # No creation date in PDF and SVG: the same file gives the same bytes.
                meta = {"png": None, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
                try:
                    fig.savefig(path, dpi=self.dpi, format=fmt, metadata=meta)
                except OSError as e:
                    raise ResultError(f"{path}: cannot write figure ({e.strerror or e})") from None
                record["files"].append(os.path.basename(path))
                say(f"{SCRIPT}: wrote {path} ({record['kind']}, {record['rows']}x{record['cols']} panels)")
        finally:
            plt.close(fig)
        record["file"] = record["files"][0]
        self.figures.append(record)

    def caption(self, *lines):
        meaning = self.res.alpha_meaning()
        alpha = (f"α: {meaning}" + (f" [{self.res.units('alpha')}]" if self.res.units("alpha") not in (None, "", "1")
                                    else "") + ".") if meaning else ""
        return "\n".join((self.res.describe(),) + lines + ((alpha,) if alpha else ()))

    # -- median curves with bands --------------------------------------------------------------------

    def curves(self, m, kind, logy):
        """kind: 'all' (one panel), 'plateau' (panel per direction, line per base) or 'directions'
        (panel per base, line per direction)."""
        res = self.res
        groups = {"all": [None], "plateau": res.directions, "directions": res.bases}[kind]
        rows, cols = len(res.hooks), len(groups)
        transform = "1 - x" if (logy and m == "cosine") else None
        name = self.metric_title(m)
        yname = f"1 − {name}" if transform else name
        what = {"all": "every base / direction kind", "plateau": f"{' vs '.join(res.bases)} base",
                "directions": f"{' vs '.join(res.directions)} direction"}[kind]
        title = f"{yname}: {what}" + (" (log y)" if logy else "")
        ylabel = yname + self.units_suffix(m if res.has(m) else f"{m}_median")
        xlabel = res.alpha_label()
        _, first_bands, count, source = self.stats_for(m, 0)
        n_curves = (res.n_prompts * (res.n_samples or 1)) if res.has(m) else (
            int(np.max(count)) if count is not None and count.size else None)
        of = f"the {plural(n_curves, 'curve')} of each kind" if n_curves else "the curves of each kind"
        caption = self.caption(f"Line: median over {of} (non-finite values left out); shading: "
                               f"{band_text(first_bands)}; from {source}."
                               + (" Values ≤ 0 are not shown on the log axis." if logy else ""))
        # Panels of one hook share the y axis, so kinds compare by eye across panels.
        fig, axes = layout.new_figure(plt, rows, cols, self.dpi, sharey=True)
        record = {"kind": kind, "metric": m, "yscale": "log" if logy else "linear", "rows": rows, "cols": cols,
                  "transform": transform, "panels": []}
        shown = []
        for h in range(rows):
            med, band_stats, count, source = self.stats_for(m, h)
            for g, group in enumerate(groups):
                ax = axes[h][g]
                if kind == "all":
                    series, ptitle = self.pairs, "all kinds"
                elif kind == "plateau":
                    series, ptitle = [(b, group) for b in res.bases], f"direction: {group}"
                else:
                    series, ptitle = [(group, d) for d in res.directions], f"base: {group}"
                ptitle = self.panel_title(h, ptitle)
                panel = {"hook": res.hooks[h], "title": ptitle, "xlabel": xlabel, "ylabel": ylabel,
                         "source": source, "series": []}
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
                    for k, (ylo, yhi) in enumerate(bands.values()):
                        # Outer bands lighter; bands stack, so the inner ones read darker still.
                        ax.fill_between(res.alpha, ylo, yhi, color=colour, alpha=self.band_alpha(k, len(bands)),
                                        linewidth=0)
                    ax.plot(res.alpha, y, color=colour, linestyle=self.style[b], linewidth=1.8)
                    if (b, d) not in shown:
                        shown.append((b, d))
                    panel["series"].append({"base": b, "direction": d, "label": f"{b} / {d}", "median": jsonable(y),
                                            "bands": {f"{lo:g}-{hi:g}": [jsonable(v[0]), jsonable(v[1])]
                                                      for (lo, hi), v in bands.items()}})
                if logy:
                    ax.set_yscale("log")
                self.decorate(ax, ptitle, xlabel, ylabel)
                ax.yaxis.set_tick_params(labelleft=True)
                record["panels"].append(panel)
        shown = [p for p in self.pairs if p in shown]  # base by base, as the legend's rows
        handles, labels = self.kind_handles(shown)
        from matplotlib.patches import Patch
        grey = (0.35, 0.35, 0.35)
        for k, ((lo, hi), _, _) in enumerate(first_bands):
            covered = 1.0
            for j in range(k + 1):  # what the eye sees inside band k: it and every band outside it
                covered *= 1.0 - self.band_alpha(j, len(first_bands))
            handles.append(Patch(facecolor=grey, alpha=1.0 - covered, linewidth=0))
            labels.append(f"{100 * lo:g}–{100 * hi:g} %")
        self.save(fig, axes, f"{m}_{kind}{'_logy' if logy else ''}", record, title, caption, handles, labels,
                  ncol=self.legend_columns(shown))

    @staticmethod
    def band_alpha(k, n):
        return 0.12 + 0.16 * k / max(1, n - 1)

    def decorate(self, ax, title, xlabel, ylabel):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8.5)
        # a long label (a score named with its alpha's meaning) runs past a small panel's height: two lines
        ax.set_ylabel(textwrap.fill(ylabel, 46) if len(ylabel) > 46 else ylabel, fontsize=8.5)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)

    # -- individual curves -------------------------------------------------------------------------

    def individual(self, m):
        res = self.res
        name = f"{m}_curves"
        if not res.has(m):
            self.skip(name, f"the file has no raw curves '{m}' (raw_curves = false)")
            return
        B, D = len(res.bases), len(res.directions)
        rows, cols = len(res.hooks) * B, D  # a row per (hook, base), a column per direction
        P, S = res.ds.sizes["prompt"], res.ds.sizes["sample"]
        idx = sample_indices(P * S, N_INDIVIDUAL)
        title = f"{self.metric_title(m)}: individual curves"
        ylabel = self.metric_title(m) + self.units_suffix(m)
        xlabel = res.alpha_label()
        caption = self.caption(f"Thin lines: {len(idx)} of the {plural(P * S, 'curve')} of each kind, evenly spaced "
                               f"over (prompt, sample); thick line: the median over all of them.")
        fig, axes = layout.new_figure(plt, rows, cols, self.dpi, sharey=True)
        record = {"kind": "curves", "metric": m, "yscale": "linear", "rows": rows, "cols": cols, "transform": None,
                  "panels": []}
        for h in range(len(res.hooks)):
            raw = res.raw(m, h)
            med = self.stats_for(m, h)[0]
            for bi, b in enumerate(res.bases):
                for di, d in enumerate(res.directions):
                    ax = axes[h * B + bi][di]
                    flat = raw[bi, di].reshape(P * S, -1)
                    colour = self.colour[(b, d)]
                    for i in idx:
                        ax.plot(res.alpha, flat[i], color=colour, linewidth=0.6, alpha=0.55)
                    ax.plot(res.alpha, med[bi, di], color=colour, linestyle=self.style[b], linewidth=2.2)
                    ptitle = self.panel_title(h, f"{b} / {d}")
                    self.decorate(ax, ptitle, xlabel, ylabel)
                    ax.yaxis.set_tick_params(labelleft=True)
                    record["panels"].append({"hook": res.hooks[h], "title": ptitle, "xlabel": xlabel, "ylabel": ylabel,
                                             "series": [{"base": b, "direction": d, "label": f"{b} / {d}",
                                                         "indices": [[int(i // S), int(i % S)] for i in idx],
                                                         "curves": [jsonable(flat[i]) for i in idx],
                                                         "median": jsonable(med[bi, di])}]})
        from matplotlib.lines import Line2D
        dark = (0.25, 0.25, 0.25)
        handles = [Line2D([], [], color=dark, linewidth=0.6, alpha=0.55), Line2D([], [], color=dark, linewidth=2.2)]
        labels = ["one (prompt, sample) curve", "median over all curves of the kind"]
        self.save(fig, axes, name, record, title, caption, handles, labels)

    # -- scores ----------------------------------------------------------------------------------------

    def scores(self, m, cdf):
        res = self.res
        name = f"{m}_scores_cdf" if cdf else f"{m}_scores"
        scores = res.scores(m)
        if not scores:
            self.skip(name, f"the file has no per-curve scores of {m} ({m}_onset, ...)")
            return
        # A row of panels per hook; a single hook's panels flow into rows of three.
        rows, cols = (len(res.hooks), len(scores)) if res.merged else layout.grid_for(len(scores))
        title = f"{self.metric_title(m)}: per-curve scores" + (", cumulative distribution" if cdf else "")
        if cdf:
            caption = self.caption("Empirical CDF of each score over all curves of a kind; a censored score (+inf: "
                                   "its event lies beyond the grid's last α, e.g. a level never reached) or an "
                                   "undefined one (NaN) never enters, so the CDF ends below 1 by their fraction "
                                   "(the panel title counts the censored ones)." + NL_NOTE.get(m, ""))
        else:
            caption = self.caption("Histograms of each score over the curves of each kind: censored scores (+inf: "
                                   "the event lies beyond the grid's last α) and undefined ones (NaN) are not "
                                   "drawn, the panel title counts both; shared bins per panel."
                                   + NL_NOTE.get(m, ""))
        fig, axes = layout.new_figure(plt, rows, cols, self.dpi, n=len(res.hooks) * len(scores))
        record = {"kind": "scores_cdf" if cdf else "scores", "metric": m, "yscale": "linear", "rows": rows,
                  "cols": cols, "transform": None, "panels": []}
        for h in range(len(res.hooks)):
            for c, s in enumerate(scores):
                i = h * len(scores) + c
                ax = axes[i // cols][i % cols]
                vals = res.array(f"{m}_{s}", SCORE_DIMS, h)  # (B, D, P, S)
                fin = vals[np.isfinite(vals)]
                n_cens = int(np.isposinf(vals).sum())
                ptitle = self.panel_title(h, f"{s} ({fin.size} of {vals.size} finite"
                                             + (f", {n_cens} censored > α_last)" if n_cens else ")"))
                xlabel = self.score_axis(m, s)
                ylabel = "fraction of curves" if cdf else "curves"
                panel = {"hook": res.hooks[h], "variable": f"{m}_{s}", "score": s, "title": ptitle,
                         "xlabel": xlabel, "ylabel": ylabel, "series": []}
                edges = None if cdf else histogram_edges(fin, res.alpha)
                if edges is not None:
                    panel["edges"] = jsonable(edges)
                # α-valued scores over the whole α range, so panels and kinds compare at a glance
                xlim = None
                if s in ALPHA_SCORES:
                    lo, hi = float(res.alpha[0]), float(res.alpha[-1])
                    if fin.size:
                        lo, hi = min(lo, float(fin.min())), max(hi, float(fin.max()))
                    if edges is not None:
                        lo, hi = min(lo, float(edges[0])), max(hi, float(edges[-1]))
                    margin = 0.03 * (hi - lo)
                    xlim = (lo - margin, hi + margin)
                for (b, d) in self.pairs:
                    v = vals[res.bases.index(b), res.directions.index(d)].reshape(-1)
                    total = int(v.size)
                    v = v[np.isfinite(v)]
                    colour, ls = self.colour[(b, d)], self.style[b]
                    if cdf:
                        x = np.sort(v)
                        y = np.arange(1, x.size + 1) / total
                        if x.size:  # from 0 at the first value to the last level, held to the right edge
                            right = xlim[1] if xlim else x[-1]
                            ax.step(np.concatenate(([x[0]], x, [max(right, x[-1])])),
                                    np.concatenate(([0.0], y, [y[-1]])), where="post",
                                    color=colour, linestyle=ls, linewidth=1.5)
                        panel["series"].append({"base": b, "direction": d, "label": f"{b} / {d}", "n": int(v.size),
                                                "n_total": total, "x": jsonable(x), "y": jsonable(y)})
                    else:
                        counts, _ = np.histogram(v, edges)
                        if v.size:
                            ax.hist(v, edges, histtype="step", linewidth=1.5, color=colour, linestyle=ls)
                        panel["series"].append({"base": b, "direction": d, "label": f"{b} / {d}", "n": int(v.size),
                                                "n_total": total, "counts": [int(x) for x in counts]})
                    panel["series"][-1]["n_censored"] = int(np.isposinf(
                        vals[res.bases.index(b), res.directions.index(d)]).sum())
                if xlim:
                    ax.set_xlim(*xlim)
                if cdf:
                    ax.set_ylim(0, 1.02)
                else:
                    from matplotlib.ticker import MaxNLocator
                    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
                self.decorate(ax, ptitle, xlabel, ylabel)
                record["panels"].append(panel)
        handles, labels = self.kind_handles(self.pairs, lw=1.5)
        self.save(fig, axes, name, record, title, caption, handles, labels, ncol=self.legend_columns(self.pairs))

    # -- against the hook (merged files) ------------------------------------------------------------------

    def by_hook(self, m):
        res = self.res
        name = f"{m}_by_hook"
        scores = res.scores(m)
        if not scores:
            self.skip(name, f"the file has no per-curve scores of {m}")
            return
        axis = HookAxis(res.hooks, len(self.pairs))
        xlabel = axis.label
        title = f"{self.metric_title(m)}: median scores by hook"
        caption = self.caption(f"Median of each score over the curves of a kind (non-finite left out), with "
                               f"percentile-bootstrap 95 % intervals ({self.n_boot} resamples, seed {self.seed}: "
                               f"the intervals summary.py prints with the same seed); kinds are offset "
                               f"sideways to keep the bars apart; a triangle: the interval's upper end lies beyond "
                               f"the grid (censored scores).")
        rows, cols = layout.grid_for(len(scores))
        fig, axes = layout.new_figure(plt, rows, cols, self.dpi, n=len(scores))
        record = {"kind": "by_hook", "metric": m, "yscale": "linear", "rows": rows, "cols": cols,
                  "transform": None, "panels": []}
        for c, s in enumerate(scores):
            ax = axes[c // cols][c % cols]
            vals = [res.array(f"{m}_{s}", SCORE_DIMS, h) for h in range(len(res.hooks))]
            ylabel = f"median {self.score_axis(m, s)}" if s not in ALPHA_SCORES else f"median {s}, {res.alpha_label()}"
            panel = dict({"score": s, "variable": f"{m}_{s}", "title": s, "xlabel": xlabel, "ylabel": ylabel,
                          "series": []}, **axis.record())
            for k, (b, d) in enumerate(self.pairs):
                bi, di = res.bases.index(b), res.directions.index(d)
                stats = [score_median(vals[h][bi, di], score_median_seed(self.seed, h, m, bi, di, s), self.n_boot)
                         for h in range(len(res.hooks))]
                n, med, lo, hi = (np.array(v, dtype=np.float64) for v in zip(*stats))
                axis.errorbar(ax, k, med, lo, hi, color=self.colour[(b, d)], linestyle=self.style[b])
                panel["series"].append({"base": b, "direction": d, "label": f"{b} / {d}", "n": jsonable(n),
                                        "median": jsonable(med), "lo": jsonable(lo), "hi": jsonable(hi)})
            note_if_empty(ax, axis, panel, "median",
                          f"no finite median: {s} is NaN or beyond the grid (censored) for every curve")
            axis.label_ticks(ax)
            self.decorate(ax, s, xlabel, ylabel)
            record["panels"].append(panel)
        handles, labels = self.kind_handles(self.pairs, lw=1.2)
        self.save(fig, axes, name, record, title, caption, handles, labels, ncol=self.legend_columns(self.pairs))

    def ratios_by_hook(self, m):
        res = self.res
        name = f"{m}_ratios_by_hook"
        source, table = paired_table(res, m, self.seed, self.n_boot)
        scores = list(dict.fromkeys(r["score"] for r in table))
        labels_c = list(dict.fromkeys(r["comparison"] for r in table))
        if not table:
            self.skip(name, "no paired comparison applies (needs two bases, or real_other or cov_random "
                            "beside another direction)")
            return
        axis = HookAxis(res.hooks, len(labels_c))
        xlabel = axis.label
        cmap = plt.get_cmap("tab10")
        title = f"{self.metric_title(m)}: paired comparisons by hook"
        how = ("as plateau computed them (in the file)" if source == "file" else
               f"computed here: the file has no paired statistics (percentile bootstrap, {self.n_boot} "
               f"resamples, seed {self.seed})")
        caption = self.caption(f"Ratio of the medians of paired curves (same prompt and sample), with 95 % "
                               f"intervals, {how}. Above 1: the first kind's score is larger. A triangle: the "
                               f"interval's upper end is unbounded (censored scores).")
        rows, cols = layout.grid_for(len(scores))
        fig, axes = layout.new_figure(plt, rows, cols, self.dpi, n=len(scores))
        record = {"kind": "ratios_by_hook", "metric": m, "yscale": "linear", "rows": rows, "cols": cols,
                  "transform": None, "source": source, "panels": []}
        from matplotlib.lines import Line2D
        handles = []
        for c, s in enumerate(scores):
            ax = axes[c // cols][c % cols]
            ylabel = f"ratio of median {s}"
            panel = dict({"score": s, "title": s, "xlabel": xlabel, "ylabel": ylabel, "series": []}, **axis.record())
            ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle=":")
            for k, label in enumerate(labels_c):
                by_h = {r["h"]: r for r in table if r["score"] == s and r["comparison"] == label}
                get = lambda f: np.array([by_h[h][f] if h in by_h else np.nan for h in range(len(res.hooks))])
                ratio, lo, hi, n = get("ratio"), get("ratio_lo"), get("ratio_hi"), get("n_pairs")
                ls = "-" if label.startswith("real/synthetic") else "--"
                colour = cmap(k % 10)
                axis.errorbar(ax, k, ratio, lo, hi, color=colour, linestyle=ls)
                if c == 0:
                    handles.append(Line2D([], [], color=colour, linestyle=ls, linewidth=1.2, marker="o", markersize=3))
                panel["series"].append({"comparison": label, "ratio": jsonable(ratio), "lo": jsonable(lo),
                                        "hi": jsonable(hi), "n_pairs": jsonable(n)})
            note_if_empty(ax, axis, panel, "ratio",
                          f"no finite ratio: {s} is NaN or beyond the grid (censored) for these pairs")
            axis.label_ticks(ax)
            self.decorate(ax, s, xlabel, ylabel)
            record["panels"].append(panel)
        self.save(fig, axes, name, record, title, caption, handles, labels_c)


def main(argv=None):
    ap = Parser(prog=SCRIPT, description="Figures from a plateau result file (see the module docstring).")
    ap.add_argument("result", metavar="RESULT.nc")
    ap.add_argument("-o", "--outdir", metavar="DIR", required=True, help="directory for the figures (created)")
    ap.add_argument("--metric", action="extend", nargs="+", choices=METRICS, metavar="M",
                    help=f"only these metrics ({', '.join(METRICS)}; repeatable)")
    ap.add_argument("--format", action="extend", nargs="+", choices=FORMATS, metavar="FMT",
                    help="png (default), pdf or svg; several give one file per format")
    ap.add_argument("--dpi", type=int, default=110, help="pixels per inch (default 110)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed of the by-hook intervals (default 0)")
    ap.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                    help="bootstrap resamples of the by-hook intervals (default 2000)")
    ap.add_argument("--position", type=int, metavar="N",
                    help="a file with curves per position ([readout] positions = each): draw those at token position N")
    a = ap.parse_args(argv)
    if not 20 <= a.dpi <= 600:
        die(SCRIPT, f"--dpi {a.dpi}: expected 20..600", EXIT_USAGE)
    if a.seed < 0:
        die(SCRIPT, f"--seed {a.seed}: expected a non-negative integer", EXIT_USAGE)
    if not 1 <= a.bootstrap <= 1000000:
        die(SCRIPT, f"--bootstrap {a.bootstrap}: expected 1..1000000", EXIT_USAGE)
    formats = list(dict.fromkeys(a.format or ["png"]))
    try:
        res = Result.for_tool(a.result, SCRIPT, a.position)
        metrics = res.select_metrics(a.metric)
        if os.path.exists(a.outdir) and not os.path.isdir(a.outdir):
            raise ResultError(f"{a.outdir}: exists and is not a directory")
        try:
            os.makedirs(a.outdir, exist_ok=True)
        except OSError as e:
            raise ResultError(f"{a.outdir}: cannot create directory ({e.strerror})") from None
        global plt
        import matplotlib
        matplotlib.use("Agg")  # files only: no display on cluster nodes
        import matplotlib.pyplot as plt
        p = Plotter(res, a.outdir, a.dpi, formats, a.seed, a.bootstrap)
        for m in metrics:
            for logy in (False, True):
                p.curves(m, "all", logy)
                for kind, count, need in (("plateau", len(res.bases), "two bases"),
                                          ("directions", len(res.directions), "two directions")):
                    if count >= 2:
                        p.curves(m, kind, logy)
                    else:
                        p.skip(f"{m}_{kind}{'_logy' if logy else ''}", f"the file has fewer than {need}")
            p.individual(m)
            p.scores(m, cdf=False)
            p.scores(m, cdf=True)
            if res.merged:
                p.by_hook(m)
                p.ratios_by_hook(m)
            else:
                for kind in ("by_hook", "ratios_by_hook"):
                    p.skip(f"{m}_{kind}", "needs a merged file (plateau merge) with a hook dimension")
            p.forget()
        sidecar = os.path.join(a.outdir, "figures.json")
        doc = {"source": os.path.abspath(a.result), "position": res.position,
               "synthetic_model": res.synthetic, "model_path": res.model_path,
               "hooks": res.hooks, "merged": res.merged, "bases": res.bases, "directions": res.directions,
               "alpha": jsonable(res.alpha), "alpha_label": res.alpha_label(), "metrics": metrics,
               "formats": formats, "seed": a.seed, "bootstrap": a.bootstrap,
               "figures": p.figures, "skipped": p.skipped}
        try:
            with open(sidecar, "w") as f:
                json.dump(doc, f, indent=1)
        except OSError as e:
            raise ResultError(f"{sidecar}: cannot write ({e.strerror})") from None
    except ResultError as e:
        die(SCRIPT, str(e))
    return 0
