"""Run analysis/plot_curves.py as a user would (as __main__, same arguments) with matplotlib's
Figure.savefig wrapped, and record for every figure what its renderer reports right after it is
saved: the extent of every drawn Text artist (titles, axis and tick labels, legend entries,
caption) against the figure's canvas, the legends against the panels' data areas, and the
figure-level text (title, legend, caption) against the panels with their decorations.

usage: inspect_figures.py REPORT.json SCRIPT ARGS...

REPORT.json: {"exit": code, "figures": {file name: {"width_px", "height_px", "problems": [...],
"texts": n, "title": drawn title}}}. The figure files themselves are checked by check_analysis.py.
"""
import json
import os
import runpy
import sys

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

report_path, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
report = {"figures": {}}
TOL = 0.5  # pixels: extents are floats, the canvas is whole pixels


def drawn_ticks(axis):
    # Axis._update_ticks() returns the ticks that will be drawn; others keep stale labels outside
    # the view and are never rendered.
    return {id(t) for t in axis._update_ticks()}


def inside(bb, box):
    return bb.x0 >= box.x0 - TOL and bb.y0 >= box.y0 - TOL and bb.x1 <= box.x1 + TOL and bb.y1 <= box.y1 + TOL


def overlap(a, b):
    return min(a.x1, b.x1) - max(a.x0, b.x0) > TOL and min(a.y1, b.y1) - max(a.y0, b.y0) > TOL


def inspect(fig):
    # Called right after the figure was saved: its layout is the one drawn into the file.
    r = fig.canvas.get_renderer()
    canvas = fig.bbox
    problems = []
    skip_labels = set()  # tick labels of ticks that are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = drawn_ticks(axis)
            for t in axis.get_major_ticks() + axis.get_minor_ticks():
                if id(t) not in drawn:
                    skip_labels.update((id(t.label1), id(t.label2)))
    texts = 0
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in skip_labels:
            continue
        texts += 1
        bb = t.get_window_extent(r)
        if not inside(bb, canvas):
            problems.append(f"text {t.get_text()[:60]!r} at ({bb.x0:.1f}, {bb.y0:.1f})-({bb.x1:.1f}, {bb.y1:.1f}) "
                            f"outside the {canvas.width:.0f}x{canvas.height:.0f} canvas")
    data = [ax.get_window_extent(r) for ax in fig.axes]
    decorated = [ax.get_tightbbox(r) for ax in fig.axes]
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for lg in legends:
        bb = lg.get_window_extent(r)
        if any(overlap(bb, d) for d in data):
            problems.append("a legend overlaps a panel's data area")
    figure_texts = ([("title", fig._suptitle)] + [("caption", t) for t in fig.texts if t is not fig._suptitle]
                    + [("legend", lg) for lg in fig.legends])
    for what, artist in figure_texts:
        if artist is None or (isinstance(artist, Text) and not artist.get_text().strip()):
            continue
        bb = artist.get_window_extent(r)
        if any(overlap(bb, d) for d in decorated):
            problems.append(f"the {what} overlaps a panel or its labels")
    for i, a in enumerate(decorated):
        for b in decorated[i + 1:]:
            if overlap(a, b):
                problems.append("two panels' labels overlap")
                break
    if len(figure_texts) > 2:
        boxes = [(w, x.get_window_extent(r)) for w, x in figure_texts if x is not None]
        for i, (wa, a) in enumerate(boxes):
            for wb, b in boxes[i + 1:]:
                if overlap(a, b):
                    problems.append(f"the {wa} overlaps the {wb}")
    return {"width_px": int(round(canvas.width)), "height_px": int(round(canvas.height)), "texts": texts,
            "problems": problems, "title": fig._suptitle.get_text() if fig._suptitle else "",
            "dpi": fig.dpi}


original = Figure.savefig


def savefig(self, fname, *a, **kw):
    result = original(self, fname, *a, **kw)
    if not str(fname).endswith(".png"):
        # A vector backend leaves positions computed at its own 72 dpi behind: lay the figure out
        # again on the Agg canvas the extents are measured on.
        self.canvas.draw()
    info = inspect(self)
    dpi = kw.get("dpi")
    if dpi and dpi != self.dpi:  # the canvas the file has
        info["problems"].append(f"saved at dpi {dpi}, laid out at {self.dpi}")
    report["figures"][os.path.basename(str(fname))] = info
    return result


Figure.savefig = savefig
sys.argv = [script] + args
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # what running the script does
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
report["exit"] = code
with open(report_path, "w") as f:
    json.dump(report, f, indent=1)
sys.exit(code)
