#!/usr/bin/python3
"""The table jobs/quickstart.sh prints at the end: for each result file, the model it ran on and the
post's two effects in median KL (nats) read off the raw curves.

usage: /usr/bin/python3 scripts/quickstart_summary.py RESULT.nc [RESULT.nc ...] [--bootstrap N] [--seed S]

Per file:
  plateau             for each direction kind and alpha in PLATEAU_ALPHAS: the median KL from the real
                      base and from the synthetic base (a sample of N(mu, Sigma)), and real/synthetic,
                      the ratio of the two medians (< 1: the real activation sits on a plateau: the same
                      step moves the output less)
  sensitive directions from the real base, for each alpha in SENSITIVE_ALPHAS: the median KL of every
                      direction kind, and X/real_other for each other kind (< 1: real_other directions
                      move the output more than X at the same step size)
Medians are over the (prompt, sample) curves finite in both members of a ratio; the bracket is a 95 %
paired percentile-bootstrap interval (N resamples of those pairs; numpy.random.default_rng([S, b1, d1,
b2, d2, k]) with b, d the base and direction indices of numerator 1 and denominator 2 and k the alpha
index; plateau_analysis.stats's replicate_medians and interval). The files' own paired comparisons (onset
and sharpness ratios) are in `analysis/summary.py RESULT.nc`.

Exit status: 0; 2 with one line on stderr for a file that is not a usable plateau result; 1 usage.
"""
import os
import sys

SCRIPT = "quickstart_summary.py"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
try:
    import numpy as np
    from plateau_analysis.cli import Parser, die
    from plateau_analysis.result import EXIT_USAGE, Result, ResultError
    from plateau_analysis.stats import interval, replicate_medians
    from plateau_analysis.table import aligned, text_number, with_ci
except ImportError as e:
    sys.stderr.write(f"{SCRIPT}: {e}: run with /usr/bin/python3 (Debian's python3-numpy, python3-xarray, "
                     "python3-netcdf4)\n")
    sys.exit(2)

PLATEAU_ALPHAS = (0.05, 0.1, 0.2)
SENSITIVE_ALPHAS = (0.2, 0.4, 0.7, 1.0)


def model_name(res):
    """The model's short name: its dir's or checkpoint's name (without .bin)."""
    name = os.path.basename(os.path.normpath(res.model_path))
    return name[:-4] if name.endswith(".bin") else name


def protocol(res):
    """One line: prompts, step mode, basis, as the file's attributes and resolved config say."""
    attrs = res.ds.attrs
    data, perturb = res.config.get("data", {}), res.config.get("perturb", {})
    bos = int(attrs.get("bos_token", -1))
    words = [f"prompts: {data.get('sampling', '?')} of {data.get('n_ctx', '?')} tokens "
             f"of {data.get('prompts', '?')}" + (" (the first is BOS)" if bos >= 0 else ""),
             f"steps: {perturb.get('step_mode', '?')}" +
             (", direction centred" if attrs.get("center_direction") is True else ""),
             f"{attrs.get('residual_basis', '?')} residual basis"]
    return "; ".join(words)


def grid_index(res, a):
    return int(np.argmin(np.abs(res.alpha - a)))


def paired(raw, num, den, k, n_boot, seed):
    """Median of numerator and denominator curves at alpha index k over the finite pairs, their ratio
    and its paired bootstrap interval."""
    (b1, d1), (b2, d2) = num, den
    x = raw[b1, d1, :, :, k].reshape(-1)
    y = raw[b2, d2, :, :, k].reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n == 0:
        return np.nan, np.nan, np.nan, (np.nan, np.nan), 0
    mx, my = float(np.median(x)), float(np.median(y))
    rng = np.random.default_rng([seed, b1, d1, b2, d2, k])
    rx, ry = replicate_medians(rng, (x, y), n, n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mx, my, mx / my if my else np.nan, interval(rx / ry), n


def summarise(path, n_boot, seed):
    res = Result(path)
    if "kl" not in res.metrics or not res.has("kl"):
        raise ResultError(f"{path}: no raw kl curves (the quickstart jobs store them)")
    if res.merged:
        raise ResultError(f"{path}: a merged file: summarise its hooks with analysis/summary.py")
    raw = res.raw("kl", 0)
    name = model_name(res)
    what = "SYNTHETIC model (random weights): its curves say nothing about a trained model" \
        if res.synthetic else "trained model"
    figures = os.path.splitext(path)[0] + "-figures/"
    lines = [f"== {name}: {what} ==",
             f"model {res.model_path} (sha256 {str(res.ds.attrs.get('model_sha256', '?'))[:16]}…)",
             f"{res.n_prompts} prompts × {res.n_samples} sample{'s' if res.n_samples != 1 else ''} each; hook {res.hooks[0]}, position "
             f"{res.ds.attrs.get('position', '?')}; {protocol(res)}",
             f"result {path}; figures {figures} (kl_plateau.png, kl_directions.png)", ""]

    if "real" in res.bases and "synthetic" in res.bases:
        br, bs = res.bases.index("real"), res.bases.index("synthetic")
        rows = []
        for d, direction in enumerate(res.directions):
            for a in PLATEAU_ALPHAS:
                k = grid_index(res, a)
                mr, ms, r, ci, n = paired(raw, (br, d), (bs, d), k, n_boot, seed)
                rows.append([direction, f"{res.alpha[k]:g}", str(n), text_number(mr), text_number(ms), with_ci(r, *ci)])
        lines.append(f"{name} plateau: median KL [nats] from the real vs a synthetic base "
                     "(real/synthetic < 1: a plateau around real activations)")
        lines.append(aligned(["direction", "alpha", "n", "real", "synthetic", "real/synthetic [95% CI]"], rows))
        lines.append("")

    if "real" in res.bases and "real_other" in res.directions and len(res.directions) > 1:
        br, dr = res.bases.index("real"), res.directions.index("real_other")
        others = [(d, x) for d, x in enumerate(res.directions) if d != dr]
        rows = []
        for a in SENSITIVE_ALPHAS:
            k = grid_index(res, a)
            row = [f"{res.alpha[k]:g}"]
            medians, ratios = {}, []
            for d, direction in others:
                mx, mo, r, ci, n = paired(raw, (br, d), (br, dr), k, n_boot, seed)
                medians[direction] = mx
                medians["real_other"] = mo
                ratios.append(with_ci(r, *ci))
            row += [text_number(medians["real_other"])] + [text_number(medians[x]) for _, x in others] + ratios
            rows.append(row)
        lines.append(f"{name} sensitive directions: median KL [nats] from the real base "
                     "(X/real_other < 1: real_other directions are more sensitive)")
        lines.append(aligned(["alpha", "real_other"] + [x for _, x in others] +
                             [f"{x}/real_other [95% CI]" for _, x in others], rows))
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = Parser(prog=SCRIPT, description="The quickstart's summary table (see the module docstring).")
    ap.add_argument("results", metavar="RESULT.nc", nargs="+")
    ap.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    a = ap.parse_args(argv)
    if not 1 <= a.bootstrap <= 1000000:
        die(SCRIPT, f"--bootstrap {a.bootstrap}: expected 1..1000000", EXIT_USAGE)
    if a.seed < 0:
        die(SCRIPT, f"--seed {a.seed}: expected a non-negative integer", EXIT_USAGE)
    try:
        for path in a.results:
            print(summarise(path, a.bootstrap, a.seed))
    except ResultError as e:
        die(SCRIPT, str(e))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `quickstart_summary.py x.nc | head` is normal use
        sys.stderr.close()
        sys.exit(0)
