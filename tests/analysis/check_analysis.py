"""Run analysis/plot_curves.py and analysis/summary.py on a plateau result and check what they
report against computations made here, independently, from the NetCDF file.

usage: check_analysis.py RESULT.nc [--hooks N]

The file is read with netCDF4 directly (not through xarray or analysis/plateau_result.py); medians
and quantiles are computed by sorting, not with numpy.median/quantile; the bootstrap intervals are
recomputed from the algorithm documented in summary.py's docstring. Exits non-zero with a message
on the first mismatch.
"""
import argparse
import csv
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import netCDF4
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON = os.environ.get("PYTHON", sys.executable)
PLOT = os.path.join(SRC, "analysis", "plot_curves.py")
SUMMARY = os.path.join(SRC, "analysis", "summary.py")
METRICS = ("kl", "jsd", "l2", "cosine")
CODE = {m: i for i, m in enumerate(METRICS)}


def fail(msg):
    sys.stderr.write(f"check_analysis: FAIL: {msg}\n")
    sys.exit(1)


def run(args):
    p = subprocess.run([PYTHON] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


# -- independent statistics --------------------------------------------------------------------

def median_sorted(x):
    s = np.sort(np.asarray(x, dtype=np.float64))
    n = s.size
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def quantile_sorted(x, q):
    """Linear interpolation between order statistics (Hyndman & Fan type 7)."""
    s = np.sort(np.asarray(x, dtype=np.float64))
    pos = q * (s.size - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.size - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def close(a, b, rtol=1e-12, atol=1e-15):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (np.abs(a - b) <= atol + rtol * np.abs(b))))


# -- reading the file ----------------------------------------------------------------------------

class File:
    def __init__(self, path):
        self.nc = netCDF4.Dataset(path)
        self.nc.set_auto_mask(False)
        nc = self.nc
        self.merged = "hook" in nc.dimensions
        self.hooks = [str(x) for x in nc["hook"][:]] if self.merged else [nc.getncattr("hook")]
        self.bases = [str(x) for x in nc["base"][:]]
        self.dirs = [str(x) for x in nc["direction"][:]]
        self.alpha = np.asarray(nc["alpha"][:], dtype=np.float64)
        self.metrics = [m for m in METRICS if m in nc.variables or f"{m}_median" in nc.variables]
        self.synthetic = nc.getncattr("synthetic_model") == "true"
        self.model_path = nc.getncattr("model_path")
        self.n_prompts = int(nc.getncattr("n_prompts"))

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

    def median_curve(self, m, h):
        """(B, D, A) medians from the raw curves when present, else the file's m_median."""
        if self.has(m):
            raw = self.get(m, ("base", "direction", "prompt", "sample", "alpha"), h)
            B, D, P, S, A = raw.shape
            flat = raw.reshape(B, D, P * S, A)
            return np.array([[[median_sorted(flat[b, d, :, k]) for k in range(A)] for d in range(D)] for b in range(B)])
        return self.get(f"{m}_median", ("base", "direction", "alpha"), h)


# -- plot_curves.py ------------------------------------------------------------------------------

def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        fail(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def check_plots(f, result, workdir):
    out = os.path.join(workdir, "figs")
    rc, so, se = run([PLOT, result, "-o", out, "--dpi", "60"])
    if rc != 0:
        fail(f"plot_curves.py exited {rc}: {se.strip()}")
    doc = json.load(open(os.path.join(out, "figures.json")))
    H, B, D = len(f.hooks), len(f.bases), len(f.dirs)
    expected = {}
    for m in f.metrics:
        for sfx in ("", "_logy"):
            expected[f"{m}_all{sfx}.png"] = (H, 1)
            if B >= 2:
                expected[f"{m}_plateau{sfx}.png"] = (H, D)
            if D >= 2:
                expected[f"{m}_directions{sfx}.png"] = (H, B)
        if f.has(f"{m}_onset") and f.has(f"{m}_sharpness"):
            expected[f"{m}_scores.png"] = (H, 2)
    written = {fig["file"]: fig for fig in doc["figures"]}
    if set(written) != set(expected):
        fail(f"figures written {sorted(written)} != expected {sorted(expected)}")
    on_disk = {n for n in os.listdir(out) if n.endswith(".png")}
    if on_disk != set(expected):
        fail(f"PNG files in {out}: {sorted(on_disk)}, expected {sorted(expected)}")
    import matplotlib.image
    n_values = 0
    for name, (rows, cols) in expected.items():
        fig = written[name]
        path = os.path.join(out, name)
        if f"wrote {path}" not in so:
            fail(f"plot_curves.py did not report writing {path}")
        w, hgt = png_size(path)
        img = matplotlib.image.imread(path)
        if img.shape[0] != hgt or img.shape[1] != w or float(img[..., :3].std()) == 0.0:
            fail(f"{path}: unreadable or blank image")
        # Figure size grows with the panel grid: a wrong grid shows in the pixel size too.
        if (fig["rows"], fig["cols"]) != (rows, cols) or len(fig["panels"]) != rows * cols:
            fail(f"{name}: {fig['rows']}x{fig['cols']} grid with {len(fig['panels'])} panels, expected {rows}x{cols}")
        if abs(w - (4.6 * cols + 0.4) * 60) > 2 or abs(hgt - (3.5 * rows + 1.5) * 60) > 2:
            fail(f"{name}: {w}x{hgt} pixels does not fit a {rows}x{cols} panel grid")
        if ("[SYNTHETIC MODEL]" in fig["title"]) != f.synthetic or ("SYNTHETIC" in fig["caption"]) != f.synthetic:
            fail(f"{name}: synthetic flag in title/caption does not match synthetic_model={f.synthetic}")
        for needle in (f.model_path[-40:], f"{f.n_prompts} prompts", f.hooks[0], f.hooks[-1]):
            if needle not in fig["caption"]:
                fail(f"{name}: caption lacks '{needle}': {fig['caption']!r}")
        for i, panel in enumerate(fig["panels"]):
            h = i // cols
            if panel["hook"] != f.hooks[h]:
                fail(f"{name}: panel {i} is for hook {panel['hook']}, expected {f.hooks[h]}")
            if not panel["xlabel"] or not panel["ylabel"] or not panel["title"]:
                fail(f"{name}: panel {i} lacks a title or axis label")
            if f.merged and f.hooks[h] not in panel["title"]:
                fail(f"{name}: panel {i} title does not name its hook")
            m = fig["metric"]
            if fig["kind"] == "scores":
                var = (f"{m}_onset", f"{m}_sharpness")[i % cols]
                vals = f.get(var, ("base", "direction", "prompt", "sample"), h)
                edges = np.asarray(panel["edges"])
                allv = vals.reshape(-1)
                if edges[0] > allv.min() or edges[-1] < allv.max():
                    fail(f"{name}: histogram edges do not cover the values of {var}")
                want_series = [(b, d) for b in f.bases for d in f.dirs]
                if [(s["base"], s["direction"]) for s in panel["series"]] != want_series:
                    fail(f"{name}: histogram series {[s['label'] for s in panel['series']]}")
                for s in panel["series"]:
                    v = vals[f.bases.index(s["base"]), f.dirs.index(s["direction"])].reshape(-1)
                    counts, _ = np.histogram(v, edges)
                    if s["counts"] != counts.tolist() or sum(s["counts"]) != v.size or s["n"] != v.size:
                        fail(f"{name}: {var} histogram of {s['label']} differs from the file's values")
                    n_values += len(s["counts"])
                continue
            group = [None] if fig["kind"] == "all" else (f.dirs if fig["kind"] == "plateau" else f.bases)
            g = group[i % cols]
            if fig["kind"] == "all":
                want_series = [(b, d) for b in f.bases for d in f.dirs]
            elif fig["kind"] == "plateau":
                want_series = [(b, g) for b in f.bases]
            else:
                want_series = [(g, d) for d in f.dirs]
            if [(s["base"], s["direction"]) for s in panel["series"]] != want_series:
                fail(f"{name}: panel {i} series {[s['label'] for s in panel['series']]}, expected {want_series}")
            med = f.median_curve(m, h)
            logy = fig["yscale"] == "log"
            flip = fig["transform"] == "1 - x"
            if flip != (logy and m == "cosine"):
                fail(f"{name}: unexpected transform {fig['transform']}")
            for s in panel["series"]:
                b, d = f.bases.index(s["base"]), f.dirs.index(s["direction"])
                want = 1.0 - med[b, d] if flip else med[b, d].copy()
                if logy:
                    want[want <= 0] = np.nan
                got = np.array([np.nan if x is None else x for x in s["median"]])
                if not close(got, want, rtol=1e-12 if f.has(m) else 0):
                    fail(f"{name}: plotted median of {s['label']} differs from the file's curves "
                         f"(max diff {np.nanmax(np.abs(got - want))})")
                n_values += got.size
                # Bands: 5-95 % and 25-75 % of the raw curves, or the file's quantiles.
                if f.has(m):
                    raw = f.get(m, ("base", "direction", "prompt", "sample", "alpha"), h)[b, d]
                    flat = raw.reshape(-1, raw.shape[-1])
                    qv = lambda lv: np.array([quantile_sorted(flat[:, k], lv) for k in range(flat.shape[1])])
                else:
                    qs = f.get(f"{m}_quantiles", ("quantile", "base", "direction", "alpha"), h)[:, b, d]
                    levels = np.asarray(f.nc["quantile"][:], dtype=np.float64)
                    qv = lambda lv: qs[int(np.argmin(np.abs(levels - lv)))]
                if f.has(m):
                    want_bands = {"0.05-0.95", "0.25-0.75"}
                else:
                    levels = np.asarray(f.nc["quantile"][:], dtype=np.float64)
                    want_bands = {f"{lo:g}-{1 - lo:g}" for lo in levels if lo < 0.5 and np.any(np.abs(levels - (1 - lo)) < 1e-9)}
                if set(s["bands"]) != want_bands:
                    fail(f"{name}: bands {sorted(s['bands'])} for {s['label']}")
                for key, (glo, ghi) in s["bands"].items():
                    lo, hi = (float(x) for x in key.split("-"))
                    wlo, whi = (1.0 - qv(hi), 1.0 - qv(lo)) if flip else (qv(lo), qv(hi))
                    if logy:
                        wlo = np.where(wlo > 0, wlo, np.nan)
                        whi = np.where(whi > 0, whi, np.nan)
                    glo = np.array([np.nan if x is None else x for x in glo])
                    ghi = np.array([np.nan if x is None else x for x in ghi])
                    if not (close(glo, wlo, rtol=1e-12) and close(ghi, whi, rtol=1e-12)):
                        fail(f"{name}: {key} band of {s['label']} differs from the file's curves")
                    n_values += 2 * glo.size
    print(f"check_analysis: plot_curves.py: {len(expected)} figures, {n_values} plotted numbers match")


# -- summary.py ----------------------------------------------------------------------------------

def bootstrap(columns, seed_seq, n_boot):
    n = columns[0].size
    idx = np.random.default_rng(seed_seq).integers(0, n, size=(n_boot, n))
    return [np.array([median_sorted(x[row]) for row in idx]) for x in columns]


def ci(rep):
    return np.percentile(rep, [2.5, 97.5])


def check_summary(f, result):
    seed, n_boot = 11, 200
    want_alphas = [f.alpha[1], float(f.alpha[len(f.alpha) // 2]), float(f.alpha[-1])]
    rc, so, se = run([SUMMARY, result, "--csv", "--seed", str(seed), "--bootstrap", str(n_boot),
                      "--alpha"] + [repr(a) for a in want_alphas])
    if rc != 0:
        fail(f"summary.py --csv exited {rc}: {se.strip()}")
    rows = list(csv.DictReader(io.StringIO(so)))
    header = so.splitlines()[0].split(",")
    med_cols = [c for c in header if c.startswith("median_at_")]
    if med_cols != [f"median_at_{a:g}" for a in want_alphas]:
        fail(f"median columns {med_cols}")
    stats = {(r["hook"], r["metric"], r["base"], r["direction"]): r for r in rows if r["kind"] == "stats"}
    ratios = {(r["hook"], r["metric"], r["base"], r["direction"]): r for r in rows if r["kind"] == "ratio"}
    num = lambda s: float(s)
    checked = 0
    want_ratio_keys = set()
    for h, hook in enumerate(f.hooks):
        for m in f.metrics:
            on = f.get(f"{m}_onset", ("base", "direction", "prompt", "sample"), h)
            sh = f.get(f"{m}_sharpness", ("base", "direction", "prompt", "sample"), h)
            med = f.median_curve(m, h)
            file_med = f.get(f"{m}_median", ("base", "direction", "alpha"), h) if f.has(f"{m}_median") else med
            point = {}
            for b, base in enumerate(f.bases):
                for d, direc in enumerate(f.dirs):
                    r = stats.get((hook, m, base, direc))
                    if r is None:
                        fail(f"summary.py has no row for {hook} {m} {base} {direc}")
                    x_on, x_sh = on[b, d].reshape(-1), sh[b, d].reshape(-1)
                    point[(b, d)] = (median_sorted(x_on), median_sorted(x_sh))
                    if int(r["n"]) != x_on.size:
                        fail(f"{hook} {m} {base} {direc}: n={r['n']}, file has {x_on.size} curves")
                    if not (close(num(r["onset"]), point[(b, d)][0]) and close(num(r["sharpness"]), point[(b, d)][1])):
                        fail(f"{hook} {m} {base} {direc}: median onset/sharpness {r['onset']}/{r['sharpness']} "
                             f"!= {point[(b, d)]}")
                    r_on, r_sh = bootstrap([x_on, x_sh], [seed, h, CODE[m], 0, b, d], n_boot)
                    for name, rep in (("onset", r_on), ("sharpness", r_sh)):
                        lo, hi = ci(rep)
                        if not (close(num(r[f"{name}_lo"]), lo) and close(num(r[f"{name}_hi"]), hi)):
                            fail(f"{hook} {m} {base} {direc}: {name} interval [{r[name + '_lo']}, {r[name + '_hi']}] "
                                 f"!= bootstrap [{lo}, {hi}]")
                        if not lo <= hi:
                            fail(f"{hook} {m} {base} {direc}: {name} interval reversed")
                    for col, a in zip(med_cols, want_alphas):
                        k = int(np.argmin(np.abs(f.alpha - a)))
                        if not close(num(r[col]), file_med[b, d, k]):
                            fail(f"{hook} {m} {base} {direc}: {col}={r[col]} != file's median {file_med[b, d, k]}")
                        # The file's aggregate must also agree with the raw curves it summarises.
                        if not close(file_med[b, d, k], med[b, d, k], rtol=1e-6, atol=1e-7):
                            fail(f"{hook} {m} {base} {direc}: {m}_median at alpha {a:g} is {file_med[b, d, k]}, "
                                 f"median of the raw curves is {med[b, d, k]}")
                    checked += 1

            def want_ratio(key, numer, denom):
                want_ratio_keys.add(key)
                r = ratios.get(key)
                if r is None:
                    fail(f"summary.py has no ratio row {key}")
                (b1, d1), (b2, d2) = numer, denom
                cols = [on[b1, d1].reshape(-1), on[b2, d2].reshape(-1), sh[b1, d1].reshape(-1), sh[b2, d2].reshape(-1)]
                with np.errstate(divide="ignore", invalid="ignore"):
                    v_on = point[numer][0] / point[denom][0]
                    v_sh = point[numer][1] / point[denom][1]
                    rep = bootstrap(cols, [seed, h, CODE[m], 1, b1, d1, b2, d2], n_boot)
                    ci_on, ci_sh = ci(rep[0] / rep[1]), ci(rep[2] / rep[3])
                for name, v, c in (("onset", v_on, ci_on), ("sharpness", v_sh, ci_sh)):
                    got = (num(r[name]), num(r[name + "_lo"]), num(r[name + "_hi"]))
                    if not close(got, (v, c[0], c[1])):
                        fail(f"ratio {key}: {name} {got} != {(v, c[0], c[1])}")
                if any(r[c] for c in med_cols):
                    fail(f"ratio {key}: median columns should be empty")

            if "real" in f.bases and "synthetic" in f.bases:
                br, bs = f.bases.index("real"), f.bases.index("synthetic")
                for d, direc in enumerate(f.dirs):
                    want_ratio((hook, m, "real/synthetic", direc), (br, d), (bs, d))
            ref = next((x for x in ("real_other", "cov_random") if x in f.dirs), None)
            if ref:
                dr = f.dirs.index(ref)
                for b, base in enumerate(f.bases):
                    for d, direc in enumerate(f.dirs):
                        if d != dr:
                            want_ratio((hook, m, base, f"{direc}/{ref}"), (b, d), (b, dr))
    if set(ratios) != want_ratio_keys:
        fail(f"unexpected ratio rows {sorted(set(ratios) - want_ratio_keys)}")
    if len(stats) != checked:
        fail(f"summary.py printed {len(stats)} stats rows, expected {checked}")

    # The same seed gives the same table; the text form carries the same numbers.
    rc2, so2, _ = run([SUMMARY, result, "--csv", "--seed", str(seed), "--bootstrap", str(n_boot),
                       "--alpha"] + [repr(a) for a in want_alphas])
    if rc2 != 0 or so2 != so:
        fail("summary.py --csv is not reproducible with the same seed")
    rc, text, se = run([SUMMARY, result, "--seed", str(seed), "--bootstrap", str(n_boot)])
    if rc != 0:
        fail(f"summary.py exited {rc}: {se.strip()}")
    first = next(iter(stats.values()))
    for needle in [f"{num(first['onset']):.4g} [{num(first['onset_lo']):.4g}, {num(first['onset_hi']):.4g}]"] + f.hooks:
        if needle not in text:
            fail(f"text table lacks '{needle}'")
    if ("SYNTHETIC" in text) != f.synthetic:
        fail("text table's synthetic flag does not match the file")
    print(f"check_analysis: summary.py: {checked} rows and {len(ratios)} ratios match independent computations")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("result")
    ap.add_argument("--hooks", type=int, default=0, help="expected number of hooks in a merged file (0: not merged)")
    a = ap.parse_args()
    f = File(a.result)
    if a.hooks and (not f.merged or len(f.hooks) != a.hooks):
        fail(f"{a.result}: expected a merged file with {a.hooks} hooks, got {f.hooks}")
    with tempfile.TemporaryDirectory(prefix="plateau-analysis-") as work:
        check_plots(f, a.result, work)
        check_summary(f, a.result)
    print("check_analysis: OK")


if __name__ == "__main__":
    main()
