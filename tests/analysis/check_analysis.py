"""Run analysis/plot_curves.py and analysis/summary.py on a plateau result and check what they
report against computations made here, independently, from the NetCDF file; and check every
figure as an image: its renderer's text extents inside the canvas, legends off the data, the saved
file's size, content and empty border.

usage: check_analysis.py RESULT.nc [--hooks N] [--formats png,pdf,svg] [--metrics kl,cosine]
                         [--plot-metrics kl,cosine]

(--metrics passes --metric to both scripts and checks only those metrics; --plot-metrics does that
for plot_curves.py alone.)

The file is read with netCDF4 directly (not through xarray or analysis/plateau_analysis); medians
and quantiles are computed by sorting, not with numpy.median/quantile; the bootstrap intervals are
recomputed from the recipe in analysis/plateau_analysis/stats.py's docstring. Exits non-zero with a
message on the first mismatch.
"""
import argparse
import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

import netCDF4
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON = os.environ.get("PYTHON", sys.executable)
PLOT = os.path.join(SRC, "analysis", "plot_curves.py")
SUMMARY = os.path.join(SRC, "analysis", "summary.py")
METRICS = ("kl", "jsd", "l2", "cosine", "js_dist", "ce_loss")
SCORES = ("onset", "max_slope_alpha", "sharpness", "alpha_at_threshold", "nonlinearity_alpha", "auc",
          "max_space_ratio_alpha", "plateau_length", "giglemiani_nl_alpha")
ALPHA_SCORES = ("onset", "max_slope_alpha", "alpha_at_threshold", "nonlinearity_alpha", "max_space_ratio_alpha",
                "plateau_length", "giglemiani_nl_alpha")
CODE = {m: i for i, m in enumerate(METRICS)}
# The α axis label per step mode (the alpha coordinate's step_mode attribute, else the config's).
STEP_LABELS = {"to_target": "α (fraction of the way to the target)", "fixed_norm": "α (step length / ‖x‖)",
               "absolute": "α (step length, activation units)"}
PAIRED = ("n_pairs", "ratio", "ratio_lo", "ratio_hi", "diff", "diff_lo", "diff_hi", "w_plus", "p_value")
SEED, N_BOOT = 7, 60
METRIC_ARGS = []  # --metric ... for both scripts (--metrics)
PLOT_METRIC_ARGS = []  # ... for plot_curves.py alone (--plot-metrics)


def fail(msg):
    sys.stderr.write(f"check_analysis: FAIL: {msg}\n")
    sys.exit(1)


def run(args):
    p = subprocess.run([PYTHON] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


# -- independent statistics --------------------------------------------------------------------

def finite(x):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return x[np.isfinite(x)]


def median_sorted(x):
    s = np.sort(finite(x))
    n = s.size
    if n == 0:
        return np.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_rows(M):
    """Median of each row, by sorting."""
    s = np.sort(M, axis=1)
    n = s.shape[1]
    return s[:, n // 2] if n % 2 else (s[:, n // 2 - 1] + s[:, n // 2]) / 2


def quantile_sorted(x, q):
    """Linear interpolation between order statistics (Hyndman & Fan type 7) of the finite values."""
    s = np.sort(finite(x))
    if s.size == 0:
        return np.nan
    pos = q * (s.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.size - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def close(a, b, rtol=1e-12, atol=1e-15):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    same_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= atol + rtol * np.abs(b)
    return bool(np.all(both_nan | same_inf | near))


def nums(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def score_code(s):
    return SCORES.index(s) if s in SCORES else zlib.crc32(s.encode())


def ci(rep):
    with np.errstate(invalid="ignore"):
        return np.percentile(rep, [2.5, 97.5])


def ci_censored(rep):
    """2.5 % / 97.5 % by order statistics (type 7); a +inf neighbour (a median beyond the grid) gives +inf."""
    r = np.sort(np.asarray(rep, dtype=np.float64))
    if np.isnan(r).any():
        return np.nan, np.nan
    out = []
    for q in (0.025, 0.975):
        pos = q * (r.size - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, r.size - 1)
        out.append(r[lo] if pos == lo or r[lo] == r[hi] else r[lo] + (pos - lo) * (r[hi] - r[lo]))
    return out[0], out[1]


def boot_median(x, seq, n_boot):
    """(n, median, lo, hi) of the defined values of x (NaN left out; censored +inf kept at the top, so the
    median is the Kaplan-Meier median under censoring at the grid's end), bootstrap recomputed by sorting."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return 0, np.nan, np.nan, np.nan
    idx = np.random.default_rng(seq).integers(0, x.size, size=(n_boot, x.size))
    lo, hi = ci_censored(median_rows(x[idx]))
    s = np.sort(x)
    n = s.size
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return x.size, med, lo, hi


def boot_paired(x, y, seq, n_boot):
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = dict.fromkeys(PAIRED, np.nan)
    out["n_pairs"] = x.size
    if x.size == 0:
        return out
    idx = np.random.default_rng(seq).integers(0, x.size, size=(n_boot, x.size))
    rx, ry, rd = median_rows(x[idx]), median_rows(y[idx]), median_rows((x - y)[idx])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = median_sorted(x) / median_sorted(y)
        out["ratio_lo"], out["ratio_hi"] = ci(rx / ry)
    out["diff"] = median_sorted(x - y)
    out["diff_lo"], out["diff_hi"] = ci(rd)
    return out


# -- reading the file ----------------------------------------------------------------------------

class File:
    def __init__(self, path):
        self.path = path
        self.nc = netCDF4.Dataset(path)
        self.nc.set_auto_mask(False)
        nc = self.nc
        self.merged = "hook" in nc.dimensions
        self.hooks = [str(x) for x in nc["hook"][:]] if self.merged else [nc.getncattr("hook")]
        self.bases = [str(x) for x in nc["base"][:]]
        self.dirs = [str(x) for x in nc["direction"][:]]
        self.alpha = np.asarray(nc["alpha"][:], dtype=np.float64)
        self.metrics = [m for m in METRICS if m in nc.variables or f"{m}_median" in nc.variables]
        syn = nc.getncattr("synthetic_model")
        self.synthetic = syn == "true" if isinstance(syn, str) else bool(int(syn))
        self.model_path = nc.getncattr("model_path")
        self.n_prompts = int(nc.getncattr("n_prompts"))
        self.n_samples = nc.dimensions["sample"].size
        cfg = nc.getncattr("config") if "config" in nc.ncattrs() else ""
        a = nc["alpha"]
        mode = re.search(r"^step_mode\s*=\s*(\S+)", cfg, re.M)
        mode = a.getncattr("step_mode") if "step_mode" in a.ncattrs() else mode.group(1) if mode else None
        if mode in STEP_LABELS:
            self.alpha_label = STEP_LABELS[mode]
        elif "long_name" in a.ncattrs():
            units = a.getncattr("units") if "units" in a.ncattrs() else ""
            self.alpha_label = f"α ({a.getncattr('long_name')})" + (f" [{units}]" if units not in ("", "1") else "")
        else:
            self.alpha_label = "α"
        self.paired_in_file = "comparison" in nc.dimensions

    def get(self, name, dims, h):
        v = self.nc[name]
        have = list(v.dimensions)
        data = np.asarray(v[:], dtype=np.float64)
        if self.merged:
            data = np.take(data, h, axis=have.index("hook"))
            have.remove("hook")
        return np.transpose(data, [have.index(d) for d in dims])

    def has(self, name):
        return name in self.nc.variables

    def scores(self, m):
        return [s for s in SCORES if self.has(f"{m}_{s}")]

    def raw(self, m, h):
        return self.get(m, ("base", "direction", "prompt", "sample", "alpha"), h)

    def median_curve(self, m, h):
        """(B, D, A) NaN-aware medians from the raw curves when present, else the file's m_median."""
        if self.has(m):
            raw = self.raw(m, h)
            B, D, P, S, A = raw.shape
            flat = raw.reshape(B, D, P * S, A)
            return np.array([[[median_sorted(flat[b, d, :, k]) for k in range(A)] for d in range(D)] for b in range(B)])
        return self.get(f"{m}_median", ("base", "direction", "alpha"), h)

    def comparisons(self):
        out = []
        if "real" in self.bases and "synthetic" in self.bases:
            br, bs = self.bases.index("real"), self.bases.index("synthetic")
            out += [(f"real/synthetic @ {d}", (br, i), (bs, i)) for i, d in enumerate(self.dirs)]
        ref = next((r for r in ("real_other", "cov_random") if r in self.dirs), None)
        if ref:
            dr = self.dirs.index(ref)
            out += [(f"{d}/{ref} @ {b}", (bi, di), (bi, dr))
                    for bi, b in enumerate(self.bases) for di, d in enumerate(self.dirs) if di != dr]
        return out

    def paired(self, m, h, seed, n_boot):
        """{(score, comparison label): fields} as the file has them or as the recipe computes them."""
        out = {}
        if self.paired_in_file:
            labels = [str(x) for x in self.nc["comparison"][:]]
            for s in self.scores(m):
                base = f"{m}_{s}"
                if self.has(f"{base}_ratio_ci"):  # the C side's layout: intervals over (comparison, bound)
                    one = lambda v: self.get(f"{base}_{v}", ("comparison",), h)
                    bound = np.asarray(self.nc["bound"][:], dtype=np.float64)
                    lo, hi = int(np.argmin(bound)), int(np.argmax(bound))
                    rci = self.get(f"{base}_ratio_ci", ("comparison", "bound"), h)
                    dci = self.get(f"{base}_difference_ci", ("comparison", "bound"), h)
                    cols = {"n_pairs": one("n_pairs"), "ratio": one("ratio"), "ratio_lo": rci[:, lo],
                            "ratio_hi": rci[:, hi], "diff": one("difference"), "diff_lo": dci[:, lo],
                            "diff_hi": dci[:, hi], "w_plus": one("wilcoxon_w"), "p_value": one("wilcoxon_p")}
                else:
                    cols = {f: self.get(f"{base}_{f}", ("comparison",), h) for f in PAIRED}
                for k, label in enumerate(labels):
                    out[(s, label)] = {f: float(cols[f][k]) for f in PAIRED}
            return out
        for s in self.scores(m):
            v = self.get(f"{m}_{s}", ("base", "direction", "prompt", "sample"), h)
            for label, (b1, d1), (b2, d2) in self.comparisons():
                out[(s, label)] = boot_paired(v[b1, d1], v[b2, d2], [seed, h, CODE[m], 1, score_code(s), b1, d1, b2, d2],
                                              n_boot)
        return out


# -- images ---------------------------------------------------------------------------------------

def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        fail(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def check_png(path, want_w, want_h):
    import matplotlib.image
    w, h = png_size(path)
    if abs(w - want_w) > 1 or abs(h - want_h) > 1:
        fail(f"{path}: {w}x{h} pixels, the figure was laid out as {want_w}x{want_h}")
    img = matplotlib.image.imread(path)[..., :3]
    if img.shape[:2] != (h, w) or float(img.std()) == 0.0:
        fail(f"{path}: unreadable or blank image")
    # Nothing drawn may touch the edge: clipped text would leave ink on the border.
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if np.any(border < 0.999):
        fail(f"{path}: something is drawn on the image's outermost pixels (clipped?)")
    # Ink in every quarter of the image's height: title, panels, legend and caption are all there.
    ink = (img < 0.9).any(axis=2).any(axis=1)
    for q in range(4):
        if not ink[q * h // 4:(q + 1) * h // 4].any():
            fail(f"{path}: the image's quarter {q + 1} (from the top) is empty")


def check_pdf(path, width_in, height_in):
    data = open(path, "rb").read()
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-64:]:
        fail(f"{path}: not a complete PDF file")
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    if not box or abs(float(box.group(1)) - 72 * width_in) > 1 or abs(float(box.group(2)) - 72 * height_in) > 1:
        fail(f"{path}: MediaBox {box.group(0) if box else None} is not {width_in:.2f} x {height_in:.2f} in")
    if b"/Font" not in data:
        fail(f"{path}: no text in the PDF")


def check_svg(path, width_in, height_in):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        fail(f"{path}: not well-formed XML ({e})")
    if not root.tag.endswith("svg"):
        fail(f"{path}: root element is {root.tag}, not svg")
    w, h = (float(root.get(k, "0").replace("pt", "")) for k in ("width", "height"))
    if abs(w - 72 * width_in) > 1 or abs(h - 72 * height_in) > 1:
        fail(f"{path}: {w} x {h} pt is not {width_in:.2f} x {height_in:.2f} in")
    if len(list(root.iter())) < 50:
        fail(f"{path}: almost empty SVG")


# -- plot_curves.py ------------------------------------------------------------------------------

def expected_figures(f, metrics):
    """{name: (rows, cols, panels)} of every figure plot_curves.py must write for F's METRICS."""
    H, B, D = len(f.hooks), len(f.bases), len(f.dirs)
    out = {}
    for m in metrics:
        for sfx in ("", "_logy"):
            out[f"{m}_all{sfx}"] = (H, 1, H)
            if B >= 2:
                out[f"{m}_plateau{sfx}"] = (H, D, H * D)
            if D >= 2:
                out[f"{m}_directions{sfx}"] = (H, B, H * B)
        if f.has(m):
            out[f"{m}_curves"] = (H * B, D, H * B * D)
        n = len(f.scores(m))
        if n:
            grid = (H, n) if f.merged else ((n + min(n, 3) - 1) // min(n, 3), min(n, 3))
            for k in ("scores", "scores_cdf"):
                out[f"{m}_{k}"] = grid + (H * n,)
            if f.merged:
                out[f"{m}_by_hook"] = ((n + min(n, 3) - 1) // min(n, 3), min(n, 3), n)
                if f.comparisons() or f.paired_in_file:
                    out[f"{m}_ratios_by_hook"] = out[f"{m}_by_hook"]
    return out


def check_words(f, name, fig):
    if ("[SYNTHETIC MODEL]" in fig["title"]) != f.synthetic or ("SYNTHETIC" in fig["caption"]) != f.synthetic:
        fail(f"{name}: synthetic flag in title/caption does not match synthetic_model={f.synthetic}")
    if fig["title_drawn"].replace("\n", " ") != fig["title"]:
        fail(f"{name}: the drawn title {fig['title_drawn']!r} is not the title {fig['title']!r} wrapped at spaces")
    prompts = "1 prompt " if f.n_prompts == 1 else f"{f.n_prompts} prompts"
    for needle in (f.model_path[-40:], prompts, f.hooks[0], f.hooks[-1]):
        if needle not in fig["caption"]:
            fail(f"{name}: caption lacks '{needle}': {fig['caption']!r}")
    for text in (fig["title"], fig["caption"]) + tuple(p["title"] for p in fig["panels"]):
        if re.search(r"(?<![\d.])1 (samples|prompts|curves|hooks)\b", text) or re.search(r"\bhook \d+ hooks", text):
            fail(f"{name}: wrong plural in {text!r}")
    if fig["metric"] == "cosine" and fig["transform"] == "1 - x" and not re.search(r"1 − cosine", fig["title"]):
        fail(f"{name}: plots 1 − cosine but the title says {fig['title']!r}")


def check_plots(f, result, workdir, formats):
    out = os.path.join(workdir, "figs")
    report_path = os.path.join(workdir, "inspect.json")
    fmt_args = sum((["--format", x] for x in formats), [])
    rc, so, se = run([os.path.join(HERE, "inspect_figures.py"), report_path, PLOT, result, "-o", out, "--dpi", "40",
                      "--seed", str(SEED), "--bootstrap", str(N_BOOT)] + fmt_args + (PLOT_METRIC_ARGS or METRIC_ARGS))
    if rc != 0:
        fail(f"plot_curves.py exited {rc}: {se.strip()}")
    if se.strip():  # numpy's or matplotlib's warnings (NaN and censored scores drawn carelessly) are a fault
        fail(f"plot_curves.py wrote to stderr: {se.strip()[:400]}")
    report = json.load(open(report_path))["figures"]
    doc = json.load(open(os.path.join(out, "figures.json")))
    expected = expected_figures(f, f.plot_metrics)
    written = {fig["name"]: fig for fig in doc["figures"]}
    if set(written) != set(expected):
        fail(f"figures written {sorted(written)} != expected {sorted(expected)}")
    want_files = {f"{n}.{x}" for n in expected for x in formats}
    on_disk = {n for n in os.listdir(out) if n != "figures.json"}
    if on_disk != want_files:
        fail(f"files in {out}: {sorted(on_disk ^ want_files)} differ from the expected figures")
    if set(report) != want_files:
        fail(f"figures saved {sorted(set(report) ^ want_files)} differ from the expected ones")
    n_values = 0
    panel_counts = set()
    for name, (rows, cols, n_panels) in expected.items():
        fig = written[name]
        for x in formats:
            path = os.path.join(out, f"{name}.{x}")
            if f"wrote {path}" not in so:
                fail(f"plot_curves.py did not report writing {path}")
            info = report[f"{name}.{x}"]
            if info["problems"]:
                fail(f"{name}.{x}: {'; '.join(info['problems'][:5])}")
            if info["texts"] < 5:
                fail(f"{name}.{x}: only {info['texts']} texts drawn")
            if x == "png":
                check_png(path, info["width_px"], info["height_px"])
            elif x == "pdf":
                check_pdf(path, fig["width_in"], fig["height_in"])
            else:
                check_svg(path, fig["width_in"], fig["height_in"])
        if abs(report[f"{name}.{formats[0]}"]["width_px"] - fig["width_in"] * 40) > 1:
            fail(f"{name}: figure size in the sidecar differs from the canvas")
        if (fig["rows"], fig["cols"], len(fig["panels"])) != (rows, cols, n_panels):
            fail(f"{name}: {fig['rows']}x{fig['cols']} grid with {len(fig['panels'])} panels, "
                 f"expected {rows}x{cols} with {n_panels}")
        if fig["width_in"] < min(cols, n_panels) * 4.0 or fig["height_in"] < rows * 2.8:
            fail(f"{name}: {fig['width_in']:.2f} x {fig['height_in']:.2f} in is too small for {rows}x{cols} panels")
        panel_counts.add(n_panels)
        check_words(f, name, fig)
        n_values += check_figure_numbers(f, name, fig)
    print(f"check_analysis: plot_curves.py: {len(expected)} figures ({', '.join(formats)}; panel counts "
          f"{sorted(panel_counts)}), images and text extents checked, {n_values} plotted numbers match")


def check_figure_numbers(f, name, fig):
    kind, m = fig["kind"], fig["metric"]
    n_values = 0
    H = len(f.hooks)
    if kind in ("scores", "scores_cdf"):
        scores = f.scores(m)
        for i, panel in enumerate(fig["panels"]):
            h, s = divmod(i, len(scores))
            s = scores[s]
            if panel["hook"] != f.hooks[h] or panel["variable"] != f"{m}_{s}":
                fail(f"{name}: panel {i} is {panel['hook']} {panel['variable']}, expected {f.hooks[h]} {m}_{s}")
            if (s in ALPHA_SCORES) != (panel["xlabel"] == f.alpha_label):
                fail(f"{name}: panel {i} x label {panel['xlabel']!r} (α label {f.alpha_label!r})")
            vals = f.get(f"{m}_{s}", ("base", "direction", "prompt", "sample"), h)
            n_cens = int(np.isposinf(np.asarray(vals, dtype=np.float64)).sum())
            want_title = f"({finite(vals).size} of {vals.size} finite" + (f", {n_cens} censored > α_last)" if n_cens
                                                                           else ")")
            if want_title not in panel["title"]:
                fail(f"{name}: panel title {panel['title']!r} does not count the finite and censored scores")
            want_series = [(b, d) for b in f.bases for d in f.dirs]
            if [(x["base"], x["direction"]) for x in panel["series"]] != want_series:
                fail(f"{name}: series {[x['label'] for x in panel['series']]}")
            for x in panel["series"]:
                v = vals[f.bases.index(x["base"]), f.dirs.index(x["direction"])]
                fv = finite(v)
                if x["n"] != fv.size or x["n_total"] != v.size:
                    fail(f"{name}: {x['label']} n={x['n']}/{x['n_total']}, file has {fv.size}/{v.size}")
                if x.get("n_censored") != int(np.isposinf(np.asarray(v, dtype=np.float64)).sum()):
                    fail(f"{name}: {x['label']} n_censored={x.get('n_censored')}, file has "
                         f"{int(np.isposinf(np.asarray(v, dtype=np.float64)).sum())}")
                if kind == "scores":
                    edges = nums(panel["edges"])
                    if fv.size and (edges[0] > fv.min() or edges[-1] < fv.max()):
                        fail(f"{name}: histogram edges do not cover the values of {m}_{s}")
                    if x["counts"] != np.histogram(fv, edges)[0].tolist():
                        fail(f"{name}: {m}_{s} histogram of {x['label']} differs from the file's values")
                    n_values += len(x["counts"])
                else:
                    if not (close(nums(x["x"]), np.sort(fv)) and
                            close(nums(x["y"]), np.arange(1, fv.size + 1) / v.size)):
                        fail(f"{name}: {m}_{s} CDF of {x['label']} differs from the file's values")
                    n_values += 2 * fv.size
        return n_values
    if kind in ("by_hook", "ratios_by_hook"):
        scores = f.scores(m)
        for c, panel in enumerate(fig["panels"]):
            s = scores[c]
            if panel["score"] != s:
                fail(f"{name}: panel {c} is {panel['score']}, expected {s}")
            if kind == "by_hook":
                vals = [f.get(f"{m}_{s}", ("base", "direction", "prompt", "sample"), h) for h in range(H)]
                for x in panel["series"]:
                    b, d = f.bases.index(x["base"]), f.dirs.index(x["direction"])
                    want = np.array([boot_median(vals[h][b, d], [SEED, h, CODE[m], 0, b, d, score_code(s)], N_BOOT)
                                     for h in range(H)])
                    want[np.isinf(want)] = np.nan  # JSON has no inf: a median beyond the grid is null there
                    got = np.stack([nums(x["n"]), nums(x["median"]), nums(x["lo"]), nums(x["hi"])], axis=1)
                    if not close(got, want):
                        fail(f"{name}: {s} medians/intervals of {x['label']} differ: {got.tolist()} vs {want.tolist()}")
                    n_values += got.size
            else:
                if fig["source"] != ("file" if f.paired_in_file else "computed"):
                    fail(f"{name}: source {fig['source']}")
                per_h = [f.paired(m, h, SEED, N_BOOT) for h in range(H)]
                labels = [k[1] for k in per_h[0] if k[0] == s]
                if [x["comparison"] for x in panel["series"]] != labels:
                    fail(f"{name}: comparisons {[x['comparison'] for x in panel['series']]} != {labels}")
                for x in panel["series"]:
                    want = np.array([[per_h[h][(s, x["comparison"])][k] for k in ("ratio", "ratio_lo", "ratio_hi",
                                                                                  "n_pairs")] for h in range(H)])
                    got = np.stack([nums(x["ratio"]), nums(x["lo"]), nums(x["hi"]), nums(x["n_pairs"])], axis=1)
                    # JSON has no inf: a ratio over a zero median is written as null
                    want = np.where(np.isfinite(want), want, np.nan)
                    if not close(got, want):
                        fail(f"{name}: {s} {x['comparison']} ratios differ: {got.tolist()} vs {want.tolist()}")
                    n_values += got.size
        return n_values
    if kind == "curves":
        B = len(f.bases)
        for i, panel in enumerate(fig["panels"]):
            row, d = divmod(i, len(f.dirs))
            h, b = divmod(row, B)
            (x,) = panel["series"]
            if (panel["hook"], x["base"], x["direction"]) != (f.hooks[h], f.bases[b], f.dirs[d]):
                fail(f"{name}: panel {i} is {panel['hook']} {x['label']}")
            raw = f.raw(m, h)[b, d]
            P, S = raw.shape[:2]
            n = P * S
            want_idx = np.arange(n) if n <= 20 else np.unique(np.round(np.linspace(0, n - 1, 20)).astype(int))
            if x["indices"] != [[int(k // S), int(k % S)] for k in want_idx]:
                fail(f"{name}: individual curves {x['indices']} are not evenly spaced over (prompt, sample)")
            for (p, s_), curve in zip(x["indices"], x["curves"]):
                want = raw[p, s_].copy()
                want[~np.isfinite(want)] = np.nan
                if not close(nums(curve), want, rtol=0):
                    fail(f"{name}: curve (prompt {p}, sample {s_}) of {x['label']} differs from the file")
                n_values += len(curve)
            med = np.array([median_sorted(raw[:, :, k]) for k in range(raw.shape[-1])])
            if not close(nums(x["median"]), med):
                fail(f"{name}: median of {x['label']} differs from the file's curves")
            if panel["xlabel"] != f.alpha_label:
                fail(f"{name}: x label {panel['xlabel']!r}, expected {f.alpha_label!r}")
        return n_values

    # median curves with bands
    cols = fig["cols"]
    for i, panel in enumerate(fig["panels"]):
        h = i // cols
        if panel["hook"] != f.hooks[h]:
            fail(f"{name}: panel {i} is for hook {panel['hook']}, expected {f.hooks[h]}")
        if not panel["xlabel"] or not panel["ylabel"] or not panel["title"]:
            fail(f"{name}: panel {i} lacks a title or axis label")
        if panel["xlabel"] != f.alpha_label:
            fail(f"{name}: x label {panel['xlabel']!r}, expected {f.alpha_label!r}")
        if f.merged and f.hooks[h] not in panel["title"]:
            fail(f"{name}: panel {i} title does not name its hook")
        if kind == "all":
            want_series = [(b, d) for b in f.bases for d in f.dirs]
        elif kind == "plateau":
            want_series = [(b, f.dirs[i % cols]) for b in f.bases]
        else:
            want_series = [(f.bases[i % cols], d) for d in f.dirs]
        if [(x["base"], x["direction"]) for x in panel["series"]] != want_series:
            fail(f"{name}: panel {i} series {[x['label'] for x in panel['series']]}, expected {want_series}")
        med = f.median_curve(m, h)
        logy = fig["yscale"] == "log"
        flip = fig["transform"] == "1 - x"
        if flip != (logy and m == "cosine"):
            fail(f"{name}: unexpected transform {fig['transform']}")
        if flip and not panel["ylabel"].startswith("1 − "):
            fail(f"{name}: y label {panel['ylabel']!r} does not say 1 − cosine")
        for x in panel["series"]:
            b, d = f.bases.index(x["base"]), f.dirs.index(x["direction"])
            want = 1.0 - med[b, d] if flip else med[b, d].copy()
            if logy:
                want[~(want > 0)] = np.nan
            want[~np.isfinite(want)] = np.nan
            got = nums(x["median"])
            if not close(got, want, rtol=1e-12 if f.has(m) else 0):
                fail(f"{name}: plotted median of {x['label']} differs from the file's curves")
            n_values += got.size
            if f.has(m):
                flat = f.raw(m, h)[b, d].reshape(-1, len(f.alpha))
                qv = lambda lv: np.array([quantile_sorted(flat[:, k], lv) for k in range(flat.shape[1])])
                want_bands = {"0.05-0.95", "0.25-0.75"}
            else:
                qs = f.get(f"{m}_quantiles", ("quantile", "base", "direction", "alpha"), h)[:, b, d]
                levels = np.asarray(f.nc["quantile"][:], dtype=np.float64)
                qv = lambda lv: qs[int(np.argmin(np.abs(levels - lv)))]
                want_bands = {f"{lo:g}-{1 - lo:g}" for lo in levels if lo < 0.5 and np.any(np.abs(levels - (1 - lo)) < 1e-9)}
            if set(x["bands"]) != want_bands:
                fail(f"{name}: bands {sorted(x['bands'])} for {x['label']}")
            for key, (glo, ghi) in x["bands"].items():
                lo, hi = (float(v) for v in key.split("-"))
                wlo, whi = (1.0 - qv(hi), 1.0 - qv(lo)) if flip else (qv(lo), qv(hi))
                if logy:
                    wlo = np.where(wlo > 0, wlo, np.nan)
                    whi = np.where(whi > 0, whi, np.nan)
                if not (close(nums(glo), wlo, rtol=1e-12) and close(nums(ghi), whi, rtol=1e-12)):
                    fail(f"{name}: {key} band of {x['label']} differs from the file's curves")
                n_values += 2 * len(glo)
    return n_values


# -- summary.py ----------------------------------------------------------------------------------

def check_summary(f, result):
    seed, n_boot = 11, 80
    want_alphas = [f.alpha[1], float(f.alpha[len(f.alpha) // 2]), float(f.alpha[-1])]
    rc, so, se = run([SUMMARY, result, "--csv", "--seed", str(seed), "--bootstrap", str(n_boot),
                      "--alpha"] + [repr(a) for a in want_alphas] + METRIC_ARGS)
    if rc != 0:
        fail(f"summary.py --csv exited {rc}: {se.strip()}")
    header = so.splitlines()[0].split(",")
    if header != ["kind", "hook", "position", "metric", "base", "direction", "comparison", "score", "alpha", "n", "value", "lo",
                  "hi", "p_value", "source"]:
        fail(f"CSV header {header}")
    rows = list(csv.DictReader(io.StringIO(so)))
    num = lambda s: np.nan if s == "" else float(s)
    seen = {}
    for r in rows:
        key = (r["kind"], r["hook"], r["metric"], r["base"], r["direction"], r["comparison"], r["score"], r["alpha"])
        if key in seen:
            fail(f"duplicate CSV row {key}")
        seen[key] = r
    checked = 0
    for h, hook in enumerate(f.hooks):
        for m in f.metrics:
            med = f.median_curve(m, h)
            file_med = f.get(f"{m}_median", ("base", "direction", "alpha"), h) if f.has(f"{m}_median") else med
            for b, base in enumerate(f.bases):
                for d, direc in enumerate(f.dirs):
                    for s in f.scores(m):
                        r = seen.pop(("score", hook, m, base, direc, "", s, ""), None)
                        if r is None:
                            fail(f"summary.py has no score row for {hook} {m} {base} {direc} {s}")
                        v = f.get(f"{m}_{s}", ("base", "direction", "prompt", "sample"), h)[b, d]
                        want = boot_median(v, [seed, h, CODE[m], 0, b, d, score_code(s)], n_boot)
                        got = (int(r["n"]), num(r["value"]), num(r["lo"]), num(r["hi"]))
                        if got[0] != want[0] or not close(got[1:], want[1:]) or r["source"] != "computed":
                            fail(f"{hook} {m} {base} {direc} {s}: {got} != {want}")
                        checked += 1
                    for a in want_alphas:
                        k = int(np.argmin(np.abs(f.alpha - a)))
                        r = seen.pop(("curve", hook, m, base, direc, "", "", repr(float(f.alpha[k]))), None)
                        if r is None:
                            fail(f"summary.py has no curve row for {hook} {m} {base} {direc} at {f.alpha[k]!r}")
                        if not close(num(r["value"]), file_med[b, d, k]):
                            fail(f"{hook} {m} {base} {direc}: median at {a} = {r['value']} != file's {file_med[b, d, k]}")
                        if r["source"] != ("file" if f.has(f"{m}_median") else "computed"):
                            fail(f"{hook} {m} {base} {direc}: median source {r['source']}")
                        # The file's aggregate must also agree with the raw curves it summarises.
                        if not close(file_med[b, d, k], med[b, d, k], rtol=1e-6, atol=1e-7):
                            fail(f"{hook} {m} {base} {direc}: {m}_median at alpha {a:g} is {file_med[b, d, k]}, "
                                 f"median of the raw curves is {med[b, d, k]}")
                        checked += 1
            for (s, label), want in f.paired(m, h, seed, n_boot).items():
                for kind, fld in (("ratio", "ratio"), ("difference", "diff")):
                    r = seen.pop((kind, hook, m, "", "", label, s, ""), None)
                    if r is None:
                        fail(f"summary.py has no {kind} row for {hook} {m} {s} {label}")
                    got = (num(r["n"]), num(r["value"]), num(r["lo"]), num(r["hi"]), num(r["p_value"]))
                    exp = (want["n_pairs"], want[fld], want[fld + "_lo"], want[fld + "_hi"],
                           want["p_value"] if f.paired_in_file else np.nan)
                    if not close(got, exp) or r["source"] != ("file" if f.paired_in_file else "computed"):
                        fail(f"{kind} {hook} {m} {s} {label}: {got} ({r['source']}) != {exp}")
                    checked += 1
    if seen:
        fail(f"unexpected CSV rows {sorted(seen)[:5]}")

    # The same seed gives the same table; the text form carries the same numbers.
    rc2, so2, _ = run([SUMMARY, result, "--csv", "--seed", str(seed), "--bootstrap", str(n_boot),
                       "--alpha"] + [repr(a) for a in want_alphas] + METRIC_ARGS)
    if rc2 != 0 or so2 != so:
        fail("summary.py --csv is not reproducible with the same seed")
    rc, text, se = run([SUMMARY, result, "--seed", str(seed), "--bootstrap", str(n_boot)] + METRIC_ARGS)
    if rc != 0:
        fail(f"summary.py exited {rc}: {se.strip()}")
    first = next(r for r in rows if r["kind"] == "score")
    fmt = lambda s: f"{float(s):.4g}"
    needles = [f"{fmt(first['value'])} [{fmt(first['lo'])}, {fmt(first['hi'])}]"] + f.hooks
    ratio = next((r for r in rows if r["kind"] == "ratio" and r["value"] and r["lo"]), None)
    if ratio:
        needles.append(f"{fmt(ratio['value'])} [{fmt(ratio['lo'])}, {fmt(ratio['hi'])}]")
        needles.append("as plateau computed them (read from the file)" if f.paired_in_file else
                       "computed here, not read from the file")
    flat = " ".join(text.split())  # the explanations are wrapped to the terminal
    for needle in needles:
        if needle not in flat:
            fail(f"text table lacks '{needle}'")
    if ("SYNTHETIC" in text) != f.synthetic:
        fail("text table's synthetic flag does not match the file")
    if re.search(r"(?<![\d.])1 (samples|prompts)\b", text):
        fail("text table says '1 samples' or '1 prompts'")
    print(f"check_analysis: summary.py: {checked} rows match independent computations "
          f"(paired statistics {'from the file' if f.paired_in_file else 'computed'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("result")
    ap.add_argument("--hooks", type=int, default=0, help="expected number of hooks in a merged file (0: not merged)")
    ap.add_argument("--formats", default="png")
    ap.add_argument("--metrics", help="comma-separated: only these metrics")
    ap.add_argument("--plot-metrics", help="comma-separated: only these metrics in the figures")
    a = ap.parse_args()
    f = File(a.result)
    if a.metrics:
        wanted = a.metrics.split(",")
        f.metrics = [m for m in f.metrics if m in wanted]
        METRIC_ARGS.extend(["--metric"] + wanted)
    f.plot_metrics = list(f.metrics)
    if a.plot_metrics:
        wanted = a.plot_metrics.split(",")
        f.plot_metrics = [m for m in f.metrics if m in wanted]
        PLOT_METRIC_ARGS.extend(["--metric"] + wanted)
    if a.hooks and (not f.merged or len(f.hooks) != a.hooks):
        fail(f"{a.result}: expected a merged file with {a.hooks} hooks, got {f.hooks}")
    with tempfile.TemporaryDirectory(prefix="plateau-analysis-") as work:
        check_plots(f, a.result, work, a.formats.split(","))
        check_summary(f, a.result)
    print("check_analysis: OK")


if __name__ == "__main__":
    main()
