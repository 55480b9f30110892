"""Write a plateau result file following the documented layout, with made-up but plateau-shaped
curves, so analysis/ can be tested without a sweep (and on shapes the smoke job does not produce:
several hooks, no raw curves, scores and statistics the C side is adding, both encodings of
booleans, non-finite values, missing pieces).

usage: make_fixture.py OUT.nc [--hooks N] [--no-raw] [--metrics kl,jsd,...] [--bases ...]
                              [--directions ...] [--prompts P] [--samples S] [--steps K] [--seed S]
                              [--quantiles Q,...] [--scores onset,...] [--paired | --paired-flat] [--bool-int]
                              [--real-model] [--step-mode MODE] [--no-alpha-attrs] [--nonfinite]
                              [--drop VAR] [--drop-attr ATTR]

Written with netCDF4 directly (NC_STRING coordinates, like the C writer), not through xarray.
--paired writes paired statistics in the layout of plateau's C side (science branch): a `comparison`
dimension and coordinate (labels "real/synthetic @ d", "d/real_other @ b"), a `bound` coordinate
(0.025, 0.975), and per metric and score m_<score>_n_pairs, _ratio, _difference, _wilcoxon_p,
_wilcoxon_w over (comparison) and _ratio_ci, _difference_ci over (comparison, bound). --paired-flat
writes the same numbers as m_<score>_<field> over (comparison) for the fields n_pairs, ratio,
ratio_lo, ratio_hi, diff, diff_lo, diff_hi, w_plus, p_value. Their values are computed here from
the fixture's scores (percentile bootstrap; a normal-approximation Wilcoxon p), standing in for
plateau's: the tests check that summary.py and the figures show the file's numbers, not how they
were made.
"""
import argparse
import datetime
import math

import netCDF4
import numpy as np

LONG = {"kl": ("KL(clean || perturbed) of the next-token distribution", "nats"),
        "jsd": ("Jensen-Shannon divergence of the next-token distribution", "nats"),
        "l2": ("L2 distance at the read hook", "residual stream units"),
        "cosine": ("cosine similarity at the read hook", "1"),
        "js_dist": ("Jensen-Shannon distance of the next-token distribution", "sqrt(nats)"),
        "ce_loss": ("cross-entropy of the next token", "nats")}
THRESHOLD = {"kl": 1.5, "jsd": 0.3, "l2": 14.0, "cosine": 0.3, "js_dist": 0.5, "ce_loss": 1.0}
# Where the curves rise, per kind: real activations sit on a longer plateau than synthetic ones,
# and real_other directions are the sensitive ones.
CENTRE_BASE = {"real": 0.45, "synthetic": 0.2}
CENTRE_DIR = {"isotropic": 0.15, "cov_random": 0.1, "real_other": -0.1}
# The alpha coordinate's long_name and units per step mode, as plateau's C side writes them.
ALPHA_MEANING = {"to_target": ("step fraction of the direction: x = base + alpha d (d = target - base for target "
                               "kinds)", "1"),
                 "fixed_norm": ("step length in multiples of the base's norm: x = base + alpha |base| d / |d|", "1"),
                 "absolute": ("step length in activation units: x = base + alpha d / |d|", "residual stream units")}
ALL_SCORES = ("onset", "max_slope_alpha", "sharpness", "alpha_at_threshold", "nonlinearity_alpha")


def scores(curve, alpha, metric):
    """Every score of one curve, as the README defines them (values for a fixture)."""
    y = 1.0 - curve if metric == "cosine" else curve - curve[0] if metric == "ce_loss" else curve
    out = dict.fromkeys(ALL_SCORES, np.nan)
    if not np.all(np.isfinite(y)):
        return out
    slope = np.diff(y) / np.diff(alpha)
    k = int(np.argmax(slope))
    out["max_slope_alpha"] = (alpha[k] + alpha[k + 1]) / 2
    if y[-1] > 0:
        nrm = y / y[-1]
        out["onset"] = alpha[np.argmax(nrm > 0.1)] if np.any(nrm > 0.1) else np.nan
        out["sharpness"] = np.max(np.diff(nrm)) * (len(alpha) - 1)
    hit = np.nonzero(y >= THRESHOLD[metric])[0]
    if hit.size:
        i = hit[0]
        out["alpha_at_threshold"] = alpha[0] if i == 0 else \
            alpha[i - 1] + (THRESHOLD[metric] - y[i - 1]) / (y[i] - y[i - 1]) * (alpha[i] - alpha[i - 1])
    line = np.polyfit(alpha[1:4], y[1:4], 1)
    dev = np.nonzero(np.abs(y[4:] - np.polyval(line, alpha[4:])) > 0.5 * np.abs(np.polyval(line, alpha[4:])))[0]
    if dev.size:
        out["nonlinearity_alpha"] = alpha[4 + dev[0]]
    return out


def paired(x, y, rng, n_boot=200):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok].astype(np.float64), y[ok].astype(np.float64)
    n = x.size
    out = {"n_pairs": n}
    if n == 0:
        return dict(out, **dict.fromkeys(("ratio", "ratio_lo", "ratio_hi", "diff", "diff_lo", "diff_hi", "w_plus",
                                          "p_value"), np.nan))
    idx = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.median(x) / np.median(y)
        out["ratio_lo"], out["ratio_hi"] = np.percentile(np.median(x[idx], 1) / np.median(y[idx], 1), [2.5, 97.5])
    out["diff"] = np.median(x - y)
    out["diff_lo"], out["diff_hi"] = np.percentile(np.median((x - y)[idx], 1), [2.5, 97.5])
    d = (x - y)[x != y]
    ranks = np.argsort(np.argsort(np.abs(d))) + 1.0
    out["w_plus"] = float(ranks[d > 0].sum())
    m = d.size
    if m:
        mu, sd = m * (m + 1) / 4, math.sqrt(m * (m + 1) * (2 * m + 1) / 24)
        z = (out["w_plus"] - mu) / sd if sd > 0 else 0.0
        out["p_value"] = math.erfc(abs(z) / math.sqrt(2))
    else:
        out["p_value"] = 1.0
    return out


def config_text(a, hooks, metrics, quant):
    return (f"[model]\npath = {a.model_path}\n\n[data]\nprompts = data/fixture.jsonl\nformat = jsonl\n"
            f"n_prompts = {a.prompts}\nn_ctx = 8\nseed = 0\n\n[perturb]\nhook = {hooks[0]}\nposition = -1\n"
            f"bases = {', '.join(a.bases.split(','))}\ndirections = {', '.join(a.directions.split(','))}\n"
            f"n_directions = {a.samples}\nsteps = {a.steps}\nalpha_max = 1\nstep_mode = {a.step_mode}\n"
            f"cov_prompts = 50\n\n[readout]\nmetrics = {', '.join(metrics)}\nread_hook = blocks.1.hook_resid_post\n"
            f"onset_threshold = 0.1\n\n[output]\npath = fixture.nc\nraw_curves = {'false' if a.no_raw else 'true'}\n"
            f"quantiles = {', '.join(f'{q:g}' for q in quant)}\n\n[run]\nseed = 0\ncheckpoint_every = 300\n"
            f"checkpoint = fixture.nc.ckpt\nworker_timeout = 10\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hooks", type=int, default=0, help="0: single-hook file; N: merged file with N hooks")
    ap.add_argument("--no-raw", action="store_true")
    ap.add_argument("--metrics", default="kl,jsd,l2,cosine")
    ap.add_argument("--bases", default="real,synthetic")
    ap.add_argument("--directions", default="isotropic,cov_random,real_other")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quantiles", default="0.05,0.25,0.75,0.95")
    ap.add_argument("--scores", default=",".join(ALL_SCORES))
    ap.add_argument("--paired", action="store_true", help="write paired statistics as plateau's C side does")
    ap.add_argument("--paired-flat", action="store_true", help="... with one variable per field")
    ap.add_argument("--bool-int", action="store_true", help="synthetic_model as a 0/1 integer (CF) instead of text")
    ap.add_argument("--real-model", action="store_true", help="synthetic_model false")
    ap.add_argument("--step-mode", default="to_target")
    ap.add_argument("--no-alpha-attrs", action="store_true", help="alpha without long_name and units")
    ap.add_argument("--nonfinite", action="store_true", help="NaN and inf in some raw curves")
    ap.add_argument("--model-path", default="/nonexistent/a/rather/long/directory/name/for/the/fixture-model-"
                                            "that-wraps-in-captions")
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--drop-attr", action="append", default=[])
    a = ap.parse_args()

    metrics = a.metrics.split(",")
    bases = a.bases.split(",")
    dirs = a.directions.split(",")
    score_names = [s for s in a.scores.split(",") if s]
    B, D, P, S, A = len(bases), len(dirs), a.prompts, a.samples, a.steps
    H = max(a.hooks, 1)
    hooks = [f"blocks.{i}.hook_resid_pre" for i in range(H)]
    alpha = np.linspace(0.0, 1.0, A)
    quant = np.array([float(x) for x in a.quantiles.split(",")])
    rng = np.random.default_rng(a.seed)

    curves = {m: np.zeros((H, B, D, P, S, A), np.float32) for m in metrics}
    sc = {m: {s: np.zeros((H, B, D, P, S), np.float32) for s in ALL_SCORES} for m in metrics}
    for h in range(H):
        for bi, b in enumerate(bases):
            for di, d in enumerate(dirs):
                for p in range(P):
                    for s in range(S):
                        c = CENTRE_BASE.get(b, 0.3) + CENTRE_DIR.get(d, 0.0) + 0.03 * h + 0.08 * rng.standard_normal()
                        w = 0.04 + 0.04 * rng.random()
                        amp = np.exp(0.5 * rng.standard_normal()) * 3.0
                        kl = amp * (1 / (1 + np.exp(-(alpha - c) / w)) - 1 / (1 + np.exp(c / w)))
                        kl = np.maximum(kl, 0.0)
                        vals = {"kl": kl, "jsd": np.log(2) * (1 - np.exp(-kl)), "l2": 12.0 * np.sqrt(kl),
                                "cosine": 1 - 0.6 * (1 - np.exp(-kl)),
                                "js_dist": np.sqrt(np.log(2) * (1 - np.exp(-kl))), "ce_loss": 3.0 + kl}
                        for m in metrics:
                            cv = vals[m].astype(np.float32)
                            if a.nonfinite and (p + s + bi + di) % 7 == 3:
                                cv[A // 2 + (p % 3)] = (np.nan, np.inf, -np.inf)[p % 3]
                            curves[m][h, bi, di, p, s] = cv
                            for name, v in scores(cv.astype(np.float64), alpha, m).items():
                                sc[m][name][h, bi, di, p, s] = v

    nc = netCDF4.Dataset(a.out, "w", format="NETCDF4")
    lead = ("hook",) if a.hooks else ()
    if a.hooks:
        nc.createDimension("hook", H)
    for name, n in (("base", B), ("direction", D), ("prompt", P), ("sample", S), ("alpha", A),
                    ("quantile", len(quant)), ("ctx", 8)):
        nc.createDimension(name, n)

    def var(name, dtype, dims, data, long_name, units=None):
        if name in a.drop:
            return
        v = nc.createVariable(name, dtype, dims)
        if long_name is not None:
            v.long_name = long_name
        if units is not None:
            v.units = units
        if dtype is str:
            for i, x in enumerate(data):
                v[i] = x
        else:
            v[:] = data

    if a.hooks:
        var("hook", str, ("hook",), hooks, "swept hook")
    if a.no_alpha_attrs:
        var("alpha", "f8", ("alpha",), alpha, None)
    else:
        meaning = ALPHA_MEANING.get(a.step_mode, (f"alpha of the {a.step_mode} mode", "widgets"))
        var("alpha", "f8", ("alpha",), alpha, *meaning)
        nc["alpha"].step_mode = a.step_mode
    var("base", str, ("base",), bases, "base activation")
    var("direction", str, ("direction",), dirs, "direction kind")
    var("prompt", "i4", ("prompt",), np.arange(P), "prompt index")
    var("sample", "i4", ("sample",), np.arange(S), "direction sample")
    var("quantile", "f8", ("quantile",), quant, "quantile level", "1")
    sel = (lambda x: x) if a.hooks else (lambda x: x[0])
    for m in metrics:
        ln, un = LONG[m]
        c64 = curves[m].astype(np.float64)
        flat = np.where(np.isfinite(c64), c64, np.nan).reshape(H, B, D, P * S, A)
        if not a.no_raw:
            var(m, "f4", lead + ("base", "direction", "prompt", "sample", "alpha"), sel(curves[m]), ln, un)
        with np.errstate(all="ignore"):
            var(f"{m}_mean", "f8", lead + ("base", "direction", "alpha"), sel(np.nanmean(flat, axis=3)), "mean " + ln, un)
            var(f"{m}_median", "f8", lead + ("base", "direction", "alpha"), sel(np.nanmedian(flat, axis=3)),
                "median " + ln, un)
            q = np.moveaxis(np.nanquantile(flat, quant, axis=3), 0, 1)  # (H, Q, B, D, A)
        var(f"{m}_quantiles", "f8", lead + ("quantile", "base", "direction", "alpha"), sel(q), "quantiles of " + ln, un)
        var(f"{m}_count", "i4", lead + ("base", "direction", "alpha"), sel(np.isfinite(flat).sum(axis=3)),
            "curves in statistics", "1")
        for name in score_names:
            var(f"{m}_{name}", "f4", lead + ("base", "direction", "prompt", "sample"), sel(sc[m][name]),
                f"{m} {name}", "1")
    comps = []
    if a.paired or a.paired_flat:
        if "real" in bases and "synthetic" in bases:
            comps += [(f"real/synthetic @ {d}", (bases.index("real"), di), (bases.index("synthetic"), di))
                      for di, d in enumerate(dirs)]
        ref = next((r for r in ("real_other", "cov_random") if r in dirs), None)
        if ref:
            comps += [(f"{d}/{ref} @ {b}", (bi, di), (bi, dirs.index(ref)))
                      for bi, b in enumerate(bases) for di, d in enumerate(dirs) if d != ref]
        nc.createDimension("comparison", len(comps))
        var("comparison", str, ("comparison",), [c[0] for c in comps], "paired comparison: x/y @ where")
        if a.paired:
            nc.createDimension("bound", 2)
            var("bound", "f8", ("bound",), [0.025, 0.975], "percentile bounding the 95 % interval", "1")
            for k, what in enumerate(("x_base", "x_direction", "y_base", "y_direction")):
                var(f"comparison_{what}", "i4", ("comparison",), [c[1 + k // 2][k % 2] for c in comps], what, "1")
        fields = ("n_pairs", "ratio", "ratio_lo", "ratio_hi", "diff", "diff_lo", "diff_hi", "w_plus", "p_value")
        for m in metrics:
            for name in score_names:
                table = {f: np.zeros((H, len(comps))) for f in fields}
                for h in range(H):
                    for k, (_, (b1, d1), (b2, d2)) in enumerate(comps):
                        st = paired(sc[m][name][h, b1, d1].reshape(-1), sc[m][name][h, b2, d2].reshape(-1), rng)
                        for f in fields:
                            table[f][h, k] = st[f]
                base = f"{m}_{name}"
                if a.paired_flat:
                    for f in fields:
                        var(f"{base}_{f}", "i4" if f == "n_pairs" else "f8", lead + ("comparison",), sel(table[f]),
                            f"{f} of {base}", "1")
                    continue
                for f, as_name in (("n_pairs", "n_pairs"), ("ratio", "ratio"), ("diff", "difference"),
                                   ("p_value", "wilcoxon_p"), ("w_plus", "wilcoxon_w")):
                    var(f"{base}_{as_name}", "i4" if f == "n_pairs" else "f8", lead + ("comparison",), sel(table[f]),
                        f"{as_name} of {base}", "1")
                for f, as_name in (("ratio", "ratio_ci"), ("diff", "difference_ci")):
                    ci = np.stack([table[f + "_lo"], table[f + "_hi"]], axis=-1)  # (H, comparison, bound)
                    var(f"{base}_{as_name}", "f8", lead + ("comparison", "bound"), sel(ci), f"95 % interval of {base}", "1")
    var("tokens", "i4", ("prompt", "ctx"), rng.integers(0, 50257, (P, 8)), "token ids")
    partner = np.full((P, S), -1, np.int32)
    if "real_other" in dirs:
        partner = (np.arange(P)[:, None] + 1 + np.arange(S)[None, :]) % P
    var("partner", "i4", ("prompt", "sample"), partner, "prompt of the real_other target")

    synthetic = not a.real_model
    attrs = {"Conventions": "CF-1.8", "title": "plateau fixture for analysis tests",
             "config": config_text(a, hooks, metrics, quant), "model_path": a.model_path,
             "model_sha256": "0" * 64,
             "synthetic_model": np.int8(synthetic) if a.bool_int else ("true" if synthetic else "false"),
             "read_hook": "blocks.1.hook_resid_post", "n_prompts": np.int32(P), "plateau_version": "fixture",
             "n_ranks": np.int32(1), "evals_per_second": 0.0,
             "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if a.hooks:
        attrs["swept_key"] = "perturb.hook"
    else:
        attrs["hook"] = hooks[0]
    for k, v in attrs.items():
        if k not in a.drop_attr:
            nc.setncattr(k, v)
    nc.close()


if __name__ == "__main__":
    main()
