#!/usr/bin/python3
"""Figures and a table of a sweep's local geometry (issue 17: [fisher] k, the fisher and optimized kinds).

usage: /usr/bin/python3 analysis/plot_fisher.py RESULT.nc -o OUT_DIR [--metric M] [--format png|pdf|svg]
                                                 [--dpi N] [--position T]

A whole-context file (the local geometry has a leading `position` dimension: each perturbed position's
own) needs --position T: the geometry of the perturbed position T (and the curves and Rayleigh quotients
of position T under [readout] positions = each; under = mean the curves and the joint kl_rayleigh are the
whole context's, as the file has them).

Written to OUT_DIR (whatever the file has):
  fisher_spectrum.png  fisher_eigenvalue against the eigen index, one line per base kind (real vs
                       synthetic): the median over bases and the band between the quartiles, log y;
  <M>_optima.png       the curves of metric M (default kl) from real bases along every direction kind
                       (optimized beside fisher, real_other, cov_random, sae_active ...): median and
                       quartile band over (prompt, sample), linear and log y;
  sae_cos.png          histograms of the largest |cos| of each optimum (optimum_max_sae_cos) and each
                       eigenvector (fisher_max_sae_cos) with the SAE's decoder rows, real bases.
The table printed (also OUT_DIR/fisher_table.tsv), tab-separated: quantity, base, key, median, q25, q75, n.
Statistics are over the distinct bases: a base kind whose numbers are the same for every sample (real:
one base per prompt) counts once per prompt, one with a base per (prompt, sample) (synthetic) once per
pair. Quartiles are numpy's linear interpolation over the finite values; n counts those values.
  spectrum   base  eigen index i      fisher_eigenvalue[..., i] (0: the largest)
  trace      base  -                  fisher_trace
  rayleigh   base  direction kind     <M>_rayleigh (dᵀFd/|d|² of each curve's direction; all samples)
  curve      real  kind@alpha         <M> at the grid's alpha nearest 0.1, 0.3, 0.5, 1 (all samples)
  objective  base  -                  optimum_objective (KL at the optimum, on the sphere |δ| = r)
  distinct   base  -                  optimum_distinct (clusters of optima by |cos| >= distinct_cos)
  sae_cos    base  optimum|eigen      optimum_max_sae_cos, fisher_max_sae_cos
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
    sys.stderr.write(f"plot_fisher.py: {e}: run with /usr/bin/python3 (python3-numpy, python3-xarray, "
                     "python3-netcdf4, python3-matplotlib)\n")
    sys.exit(2)

ALPHAS = (0.1, 0.3, 0.5, 1.0)


def die(msg):
    sys.stderr.write("plot_fisher.py: %s\n" % msg)
    sys.exit(2)


def distinct(da, base):
    """Values of da (dims prompt, base, sample, ...) at base as (n_bases, ...): sample 0 alone when every
    sample holds the same numbers (one base per prompt), else every (prompt, sample)."""
    a = da.sel(base=base).transpose("prompt", "sample", ...).values.astype(float)
    same = np.all((a == a[:, :1]) | (np.isnan(a) & np.isnan(a[:, :1])))
    return a[:, 0] if same else a.reshape((-1,) + a.shape[2:])


def stats(x, axis=None):
    """(median, q25, q75, n) over the finite values (axis None), or arrays of them, one per index along axis
    (over every other axis)."""
    x = np.asarray(x, dtype=float)
    if axis is None:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return np.nan, np.nan, np.nan, 0
        return float(np.median(x)), float(np.quantile(x, 0.25)), float(np.quantile(x, 0.75)), int(x.size)
    cols = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return [np.array(v) for v in zip(*[stats(c) for c in cols])]


def table_rows(ds, metric):
    """The printed table: (quantity, base, key, (median, q25, q75, n)) rows."""
    rows, bases = [], [str(b) for b in ds["base"].values]
    for b in bases:
        if "fisher_eigenvalue" in ds:
            ev = distinct(ds["fisher_eigenvalue"], b)  # (n, eigen)
            for i in range(ev.shape[-1]):
                rows.append(("spectrum", b, str(i), stats(ev[:, i])))
            rows.append(("trace", b, "-", stats(distinct(ds["fisher_trace"], b))))
        ray = "%s_rayleigh" % metric
        if ray in ds:
            for k in ds["direction"].values:
                rows.append(("rayleigh", b, str(k), stats(ds[ray].sel(base=b, direction=k).values)))
        for name, q, key in (("optimum_objective", "objective", "-"), ("optimum_distinct", "distinct", "-"),
                             ("optimum_max_sae_cos", "sae_cos", "optimum"),
                             ("fisher_max_sae_cos", "sae_cos", "eigen")):
            if name in ds:
                rows.append((q, b, key, stats(distinct(ds[name], b))))
    if metric in ds and "real" in bases:
        a = ds["alpha"].values
        for want in ALPHAS:
            i = int(np.argmin(np.abs(a - want)))
            for k in ds["direction"].values:
                rows.append(("curve", "real", "%s@%g" % (k, a[i]),
                             stats(ds[metric].sel(base="real", direction=k).isel(alpha=i).values)))
    return rows


def plot_spectrum(ds, path, dpi):
    fig, ax = plt.subplots(figsize=(6, 4))
    for b in [str(x) for x in ds["base"].values]:
        ev = distinct(ds["fisher_eigenvalue"], b)
        med, q25, q75, _ = stats(ev, axis=1)
        idx = np.arange(1, ev.shape[1] + 1)
        line, = ax.plot(idx, med, marker="o", ms=3, label="%s (%d bases)" % (b, ev.shape[0]))
        ax.fill_between(idx, q25, q75, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("eigen index")
    ax.set_ylabel("eigenvalue of F (nats per squared residual unit)", fontsize=8)
    ax.set_title("spectrum of F = Jᵀ(diag p − p pᵀ)J at the base: median, quartiles", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_curves(ds, metric, path, dpi):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    a = ds["alpha"].values
    for k in ds["direction"].values:
        y = ds[metric].sel(base="real", direction=k).transpose("alpha", ...).values.reshape(len(a), -1)
        med, q25, q75, _ = stats(y, axis=0)
        for ax in axes:
            line, = ax.plot(a, med, label=str(k), lw=2.2 if str(k) == "optimized" else 1.2)
            ax.fill_between(a, q25, q75, color=line.get_color(), alpha=0.2, lw=0)
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("alpha")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle("%s from real bases by direction kind: median over prompts and samples, quartile band" % metric,
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_sae_cos(ds, path, dpi):
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0.0, 1.0, 41)
    for name, label in (("optimum_max_sae_cos", "optima"), ("fisher_max_sae_cos", "Fisher eigenvectors")):
        if name in ds:
            x = distinct(ds[name], "real").ravel()
            x = x[np.isfinite(x)]
            ax.hist(x, bins=bins, alpha=0.55, label="%s (%d)" % (label, x.size))
    ax.set_xlabel("largest |cos| with the SAE's decoder rows")
    ax.set_ylabel("count")
    ax.set_title("alignment with SAE features, real bases", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("result")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--metric", default="kl", help="metric of the curves and Rayleigh quotients (default kl)")
    p.add_argument("--format", default="png", choices=["png", "pdf", "svg"])
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--position", type=int, help="whole contexts: the perturbed position T to plot")
    args = p.parse_args(argv)
    try:
        ds = open_file(args.result)
    except ResultError as e:
        die(str(e))
    if "position" in ds.dims:
        have = [int(t) for t in ds["position"].values]
        if args.position is None or args.position not in have:
            die("%s: whole contexts: the local geometry is per perturbed position (%d..%d): choose one with "
                "--position T%s" % (args.result, have[0], have[-1],
                                     "" if args.position is None else " (%d is not one)" % args.position))
        ds = ds.sel(position=args.position)
    elif args.position is not None:
        die("%s: --position %d: the file perturbs one position (no position dimension)" % (args.result, args.position))
    if "fisher_eigenvalue" not in ds and "optimum_objective" not in ds:
        die("%s: no fisher_eigenvalue or optimum_objective: run the sweep with [fisher] k or the fisher / "
            "optimized direction kinds" % args.result)
    os.makedirs(args.output, exist_ok=True)
    rows = table_rows(ds, args.metric)
    lines = ["quantity\tbase\tkey\tmedian\tq25\tq75\tn"]
    lines += ["%s\t%s\t%s\t%.6g\t%.6g\t%.6g\t%d" % ((q, b, k) + tuple(s)) for q, b, k, s in rows]
    with open(os.path.join(args.output, "fisher_table.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    out = []
    if "fisher_eigenvalue" in ds:
        out.append("fisher_spectrum." + args.format)
        plot_spectrum(ds, os.path.join(args.output, out[-1]), args.dpi)
    if args.metric in ds and "real" in [str(b) for b in ds["base"].values]:
        out.append("%s_optima.%s" % (args.metric, args.format))
        plot_curves(ds, args.metric, os.path.join(args.output, out[-1]), args.dpi)
    if ("optimum_max_sae_cos" in ds or "fisher_max_sae_cos" in ds) and "real" in [str(b) for b in ds["base"].values]:
        out.append("sae_cos." + args.format)
        plot_sae_cos(ds, os.path.join(args.output, out[-1]), args.dpi)
    sys.stderr.write("plot_fisher.py: wrote %s in %s\n" % (", ".join(out + ["fisher_table.tsv"]), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
