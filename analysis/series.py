#!/usr/bin/python3
"""Plateau strength along a model series (a training-checkpoint series), against training step and hook.

usage: /usr/bin/python3 analysis/series.py SERIES.nc [SERIES.nc ...] -o OUT_PREFIX [--alpha A]
                                           [--direction D] [--metric M] [--format png|pdf] [--dpi N]

Each input is a model-series result (a leading `model` dimension: `[model] paths`), one per hook (a
series run is one hook; run it once per hook). For every (hook, model) two numbers:
  - the real/synthetic ratio at alpha A: median curve of real bases over median curve of synthetic
    bases of direction kind D at the grid's alpha nearest A (`<metric>_median`); below 1: perturbing a
    real activation moves the output less than perturbing a synthetic one (the plateau), 1: no
    difference;
  - the alpha_at_threshold ratio: the file's paired comparison `real/synthetic @ D`
    (`<metric>_alpha_at_threshold_ratio`: the Kaplan-Meier median over the kept (prompt, sample) pairs
    of real's alpha where the metric first crosses its [readout] threshold, over synthetic's; NaN where
    either median lies beyond the grid); above 1: real activations need a larger step to reach the
    threshold. Where the file has no such comparison (a metric without a [readout] threshold, a
    direction kind not compared) the table's field is empty and the heat map's cell says "n/a";
    "nan" and "—" are the comparison's own NaN.
The models are drawn and tabled in training-step order (the file's order when a step is not given),
whatever the order of the series' list. The inputs must be one series (labels, steps and model_sha256) on
one alpha grid at A, run under one config but for the hook (and the SAE that follows it): a file whose
config differs in another key is refused naming the key.
Written: OUT_PREFIX-heatmap.png (hook x training step, both numbers) and OUT_PREFIX-lines.png (both
numbers against training step, a line per hook), and OUT_PREFIX.csv (the table).
"""
import argparse
import collections
import sys

try:
    import numpy as np
    from plateau_analysis.result import ResultError, config_text, open_file
    from plateau_analysis._schema import SCHEMA
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    sys.stderr.write(f"series.py: {e}: run with /usr/bin/python3 (python3-numpy, python3-xarray, python3-netcdf4, "
                     "python3-matplotlib)\n")
    sys.exit(2)


def die(msg):
    sys.stderr.write("series.py: %s\n" % msg)
    sys.exit(2)


# The keys of a run's identity (src/sweep/config.c's hashed keys, from the generated schema) that per-hook
# series files share: all but the hook and the SAE's sha256, which follows the hook (what `plateau merge`
# lets a merge along `hook` differ in: src/io/merge.c, check_configs). The keys outside the identity
# (output and checkpoint paths, [model], ...) may differ; the models are compared by model_sha256.
IDENTITY_KEYS = {(k["section"], k["key"]) for k in SCHEMA["config_keys"] if k["identity"]} - {
    ("perturb", "hook"), ("sae", "sha256")}


def identity(path, text):
    """{(section, key): value text} of the keys that make the experiment, from the resolved config text of
    the file at PATH."""
    try:
        config = config_text(text, path)
    except ResultError as e:
        die(str(e))
    return {(s, k): v.strip() for s, keys in config.items() for k, v in keys.items() if (s, k) in IDENTITY_KEYS}


# One file's numbers: ratio is the metric's real/synthetic median ratio at `alpha` (the grid's alpha used),
# aat the alpha_at_threshold ratio (None: not in the file), identity the config's keys of the experiment.
Strength = collections.namedtuple("Strength", "hook labels steps ratio aat alpha sha256 identity")


def strength(path, metric, direction, alpha):
    """The Strength of one file."""
    try:
        ds = open_file(path)
    except ResultError as e:
        die(str(e))
    if "config" not in ds.attrs:
        die("%s: not a plateau result: global attribute 'config' is missing" % path)
    if "model" not in ds.dims:
        die("%s: no `model` dimension: not a model-series result" % path)
    med = "%s_median" % metric
    if med not in ds:
        die("%s: no %s (is %s among [readout] metrics?)" % (path, med, metric))
    extra = [x for x in ds[med].dims if x not in ("model", "base", "direction", "alpha")]
    if extra:  # one number a model and hook: a per-position file would fill the table with arrays
        die("%s: %s has the dimension(s) %s ([readout] positions = each?): series.py draws one number per model "
            "and hook" % (path, med, ", ".join(extra)))
    dirs = [str(x) for x in ds["direction"].values]
    if direction not in dirs:
        die("%s: direction kind %s not in %s" % (path, direction, dirs))
    bases = [str(x) for x in ds["base"].values]
    if "real" not in bases or "synthetic" not in bases:
        die("%s: needs bases real and synthetic, has %s" % (path, bases))
    a = ds["alpha"].values
    i = int(np.argmin(np.abs(a - alpha)))
    curve = ds[med].sel(direction=direction).isel(alpha=i)
    kl_ratio = (curve.sel(base="real") / curve.sel(base="synthetic")).values
    name = "%s_alpha_at_threshold_ratio" % metric
    comp = "real/synthetic @ %s" % direction
    comps = [str(x) for x in ds["comparison"].values] if "comparison" in ds.dims else []
    aat = ds[name].isel(comparison=comps.index(comp)).values if name in ds and comp in comps else None
    steps = ds["model_step"].values.astype(float)
    steps[steps < 0] = np.nan
    return Strength(str(ds.attrs.get("hook", path)), [str(x) for x in ds["model"].values], steps, kl_ratio, aat,
                    float(a[i]), [str(x) for x in ds["model_sha256"].values], identity(path, str(ds.attrs["config"])))


def save(fig, path, dpi):
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        die("%s: cannot write: %s" % (path, e.strerror or e))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True, help="output prefix")
    p.add_argument("--alpha", type=float, default=0.25, help="alpha of the ratio of medians (default 0.25)")
    p.add_argument("--direction", default="cov_random", help="direction kind (default cov_random)")
    p.add_argument("--metric", default="kl", help="metric (default kl)")
    p.add_argument("--format", default="png", choices=["png", "pdf"])
    p.add_argument("--dpi", type=int, default=100)
    args = p.parse_args(argv)
    rows = [strength(f, args.metric, args.direction, args.alpha) for f in args.inputs]
    first, labels = rows[0], rows[0].labels
    for f, r in zip(args.inputs, rows):
        if r.labels != labels:
            die("%s: not the model series of %s (its `model` labels differ)" % (f, args.inputs[0]))
        if not np.array_equal(r.steps, first.steps, equal_nan=True):
            die("%s: not the model series of %s (its model_step differ)" % (f, args.inputs[0]))
        if r.alpha != first.alpha:
            die("%s: the alpha nearest %g is %g, but %g in %s: the ratios would be at different alphas"
                % (f, args.alpha, r.alpha, first.alpha, args.inputs[0]))
        if r.sha256 != first.sha256:
            k = next(k for k in range(len(labels)) if r.sha256[k] != first.sha256[k])
            die("%s: model '%s' is another model than in %s (model_sha256 %s, there %s): not one series"
                % (f, labels[k], args.inputs[0], r.sha256[k][:16], first.sha256[k][:16]))
        for key in sorted(set(r.identity) | set(first.identity)):
            if r.identity.get(key) != first.identity.get(key):
                die("%s: config differs from %s in [%s] %s ('%s' there, '%s' here): the files of one figure differ "
                    "only in their hook" % (f, args.inputs[0], key[0], key[1], first.identity.get(key, "(absent)"),
                                            r.identity.get(key, "(absent)")))
    hooks, steps = [r.hook for r in rows], first.steps
    for h, hook in enumerate(hooks):
        if hook in hooks[:h]:
            die("%s: hook %s again (also %s): one file per hook"
                % (args.inputs[h], hook, args.inputs[hooks.index(hook)]))
    used_alpha = first.alpha
    ratio = np.array([r.ratio for r in rows])
    # a comparison the file does not hold is absent (None), not NaN: NaN is the comparison's own "beyond the grid"
    absent = np.array([[r.aat is None] * len(labels) for r in rows])
    for f, r in zip(args.inputs, rows):
        if r.aat is None:
            sys.stderr.write("series.py: %s: no %s_alpha_at_threshold_ratio for 'real/synthetic @ %s' (a [readout] "
                             "threshold for %s and the direction kind %s among [perturb] directions make it): its "
                             "column is empty, its cells n/a\n" % (f, args.metric, args.direction, args.metric,
                                                                     args.direction))
    aat = np.array([np.full(len(labels), np.nan) if r.aat is None else r.aat for r in rows])
    # a series lists its models in any order: a line through them in that order would zigzag
    if not np.isnan(steps).any():
        order = np.argsort(steps, kind="stable")
        labels, steps, ratio, aat = [labels[k] for k in order], steps[order], ratio[:, order], aat[:, order]
        absent = absent[:, order]
    try:
        with open(args.output + ".csv", "w") as f:
            f.write("hook,model,step,%s_ratio_at_alpha_%g,alpha_at_threshold_ratio\n" % (args.metric, used_alpha))
            for h, hook in enumerate(hooks):
                for k, lab in enumerate(labels):
                    f.write("%s,%s,%s,%.6g,%s\n" % (hook, lab, "" if np.isnan(steps[k]) else int(steps[k]),
                                                    ratio[h, k], "" if absent[h, k] else "%.6g" % aat[h, k]))
    except OSError as e:
        die("%s.csv: cannot write: %s" % (args.output, e.strerror or e))
    what = ["%s real/synthetic (medians) at α = %g" % (args.metric.upper(), used_alpha),
            "alpha_at_threshold ratio (real/synthetic @ %s)" % args.direction]
    xt = ["%s\n%s" % (lab, "" if np.isnan(s) else "step %d" % s) for lab, s in zip(labels, steps)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.2 + 0.6 * len(hooks) + 1.5), squeeze=False)
    for ax, data, title, cmap, na in zip(axes[0], (ratio, aat), what, ("viridis", "viridis_r"),
                                         (np.zeros_like(absent), absent)):
        cm = plt.get_cmap(cmap).copy()
        cm.set_bad("lightgrey")  # NaN cells (undefined ratios) grey, so their dash shows
        im = ax.imshow(data, aspect="auto", cmap=cm)
        ax.set_xticks(range(len(labels)), xt, fontsize=8)
        ax.set_yticks(range(len(hooks)), hooks, fontsize=8)
        ax.set_title(title, fontsize=9)
        for (h, k), v in np.ndenumerate(data):
            text = "n/a" if na[h, k] else "—" if np.isnan(v) else "%.2f" % v
            ax.text(k, h, text, ha="center", va="center", fontsize=8,
                    color="k" if np.isnan(v) else "w")
        fig.colorbar(im, ax=ax)
    fig.suptitle("plateau strength along the series (%s)" % args.direction, fontsize=10)
    fig.tight_layout()
    save(fig, "%s-heatmap.%s" % (args.output, args.format), args.dpi)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
    x = steps if not np.isnan(steps).any() else np.arange(len(labels))
    for ax, data, title, ref in zip(axes[0], (ratio, aat), what, (1.0, 1.0)):
        for h, hook in enumerate(hooks):
            ax.plot(x, data[h], marker="o", label=hook)
        ax.axhline(ref, color="grey", lw=0.8, ls="--")
        ax.set_xscale("symlog", linthresh=max(1.0, np.nanmin(x[x > 0])) if (x > 0).any() else 1.0)
        ax.set_xlabel("training step" if x is steps else "model")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("plateau strength against training step (1 = no plateau)", fontsize=10)
    fig.tight_layout()
    save(fig, "%s-lines.%s" % (args.output, args.format), args.dpi)
    print("series.py: wrote %s-heatmap.%s, %s-lines.%s, %s.csv" % (args.output, args.format, args.output,
                                                                    args.format, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
