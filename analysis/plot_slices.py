#!/usr/bin/python3
"""Heat maps of a 2-D slice sweep ([perturb] slice = KIND1, KIND2; Janiak et al.'s 2-D slices,
jettjaniak/reometry scripts/plot_2d_slices_paper.py, plot_2d_slice).

usage: /usr/bin/python3 analysis/plot_slices.py RESULT.nc -o OUT_DIR [--metric M ...] [--stat median|mean]
                                                 [--prompts N] [--format png|pdf|svg] [--dpi N]

Written to OUT_DIR, per metric M (default: every metric the file has a slice of):
  <M>_slice.<fmt>          one panel per base kind: the statistic (median by default) over prompts and
                           samples of M on the (alpha, beta) grid base + alpha v1 + beta v2 (<M>_slice_median
                           or <M>_slice_mean as the file stores them), a filled contour map with its colour
                           bar; alpha along KIND1 (x), beta along KIND2 orthogonalised against KIND1 (y);
                           a fisher or optimized axis names which eigenvectors / optima the samples pool
                           (sample s is u_s / optimum s of its base);
  <M>_slice_prompts.<fmt>  with --prompts N (and raw curves in the file): the first N prompts' own slices
                           (sample 0, first base), each coloured on its own scale, as reometry draws one
                           slice per prompt;
  <M>_slice.tsv            the plotted statistic, tab-separated: base, alpha, beta, value, count (the
                           curves that entered it, <M>_slice_count).
What differs from reometry's figure: reometry's axes are the plane through three real activations a, b, c
(b - a and c's part orthogonal to it, the grid (-0.25, 1.25) on both axes) and its colour is the L2
distance at the last layer of each prompt's own slice; here the axes are the slice's two direction kinds
from one base, the grid is the sweep's alpha grid, and the panel is a statistic over prompts.
"""
import argparse
import os
import sys

try:
    import numpy as np
    from plateau_analysis.result import ResultError, open_file
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    sys.stderr.write(f"plot_slices.py: {e}: run with /usr/bin/python3 (python3-numpy, python3-xarray, "
                     "python3-netcdf4, python3-matplotlib)\n")
    sys.exit(2)


def die(msg):
    sys.stderr.write("plot_slices.py: %s\n" % msg)
    sys.exit(2)


def slice_metrics(ds):
    """The metrics the file has a slice of, in its order."""
    return [str(v)[:-len("_slice_median")] for v in ds.data_vars if str(v).endswith("_slice_median")]


def panel(ax, fig, alpha, beta, z, title):
    """A filled contour map of z[alpha, beta] (beta on y), its colour bar, the base marked at (0, 0)."""
    finite = np.isfinite(z)
    if finite.sum() >= 4 and np.nanmax(z) > np.nanmin(z):
        cs = ax.contourf(alpha, beta, np.where(finite, z, np.nan).T, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, fraction=0.046, pad=0.04)
    else:  # flat or mostly undefined: no contour to draw
        ax.text(0.5, 0.5, "flat or undefined", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    ax.plot([0], [0], marker="o", ms=5, color="white", mec="black")
    ax.set_title(title, fontsize=8)
    ax.set_aspect("auto")


# Kinds whose sample s is an index into the base's local geometry (issue 17): a statistic over samples
# pools eigenvectors (optima) 0..n_directions-1, so the axis label says which.
INDEXED = {"fisher": "u_s", "optimized": "optimum s"}


def axis_name(kind, n_samples):
    if kind not in INDEXED:
        return kind
    return "%s %s, s = %s" % (kind, INDEXED[kind], "0" if n_samples == 1 else "0..%d pooled" % (n_samples - 1))


def plot_metric(ds, metric, stat, out_dir, fmt, dpi, n_prompts):
    name = "%s_slice_%s" % (metric, stat)
    if name not in ds:
        die("%s: no variable %s (not a slice result?)" % (metric, name))
    beta = ds["beta"]
    kinds = beta.attrs.get("alpha_direction", "v1"), beta.attrs.get("beta_direction", "v2")
    k1, k2 = (axis_name(k, ds.sizes.get("sample", 1)) for k in kinds)
    one1, one2 = (axis_name(k, 1) for k in kinds)  # the prompts' own slices are sample 0's
    alpha, b = ds["alpha"].values, beta.values
    bases = [str(x) for x in ds["base"].values]
    fig, axes = plt.subplots(1, len(bases), figsize=(4.6 * len(bases), 3.8), squeeze=False)
    rows = []
    for ax, base in zip(axes[0], bases):
        z = ds[name].sel(base=base).transpose("alpha", "beta").values.astype(float)
        n = ds["%s_slice_count" % metric].sel(base=base).transpose("alpha", "beta").values
        panel(ax, fig, alpha, b, z, "%s base: %s of %s" % (base, stat, metric))
        ax.set_xlabel("alpha along %s" % k1, fontsize=8)
        ax.set_ylabel("beta along %s (orthogonalised)" % k2, fontsize=8)
        rows += [(base, alpha[i], b[j], z[i, j], int(n[i, j])) for i in range(len(alpha)) for j in range(len(b))]
    fig.suptitle("%s on the slice base + alpha v1 + beta v2 (%s over prompts and samples)" % (metric, stat), fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "%s_slice.%s" % (metric, fmt)), dpi=dpi)
    plt.close(fig)
    with open(os.path.join(out_dir, "%s_slice.tsv" % metric), "w") as f:
        f.write("base\talpha\tbeta\t%s\tcount\n" % stat)
        for r in rows:
            f.write("%s\t%.17g\t%.17g\t%.17g\t%d\n" % r)
    raw = "%s_slice" % metric
    if n_prompts and raw in ds:
        n = min(n_prompts, ds.sizes["prompt"])
        fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
        for p, ax in enumerate(axes[0]):
            z = ds[raw].isel(base=0, prompt=p, sample=0).transpose("alpha", "beta").values.astype(float)
            panel(ax, fig, alpha, b, z, "prompt %d (%s base)" % (p, bases[0]))
            ax.set_xlabel("alpha (%s)" % one1, fontsize=7)
            ax.set_ylabel("beta (%s)" % one2, fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "%s_slice_prompts.%s" % (metric, fmt)), dpi=dpi)
        plt.close(fig)
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description="heat maps of a plateau slice sweep ([perturb] slice)")
    ap.add_argument("result")
    ap.add_argument("-o", "--out", required=True, help="output directory")
    ap.add_argument("--metric", nargs="+", help="metrics (default: every metric with a slice)")
    ap.add_argument("--stat", choices=("median", "mean"), default="median")
    ap.add_argument("--prompts", type=int, default=0, help="also draw the first N prompts' own slices")
    ap.add_argument("--format", choices=("png", "pdf", "svg"), default="png")
    ap.add_argument("--dpi", type=int, default=150)
    a = ap.parse_args(argv)
    try:
        ds = open_file(a.result)
    except ResultError as e:
        die(str(e))
    if "beta" not in ds.dims:
        die("%s: not a slice result (no beta dimension: run with [perturb] slice = KIND1, KIND2)" % a.result)
    metrics = a.metric or slice_metrics(ds)
    os.makedirs(a.out, exist_ok=True)
    for m in metrics:
        n = plot_metric(ds, m, a.stat, a.out, a.format, a.dpi, a.prompts)
        print("%s: %d grid points per base -> %s" % (m, n // ds.sizes["base"],
                                                      os.path.join(a.out, "%s_slice.%s" % (m, a.format))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
