"""Write a plateau result file following the documented layout, with made-up but plateau-shaped
curves, so analysis/ can be tested without a sweep (and on shapes the smoke job does not produce:
several hooks, no raw curves, missing pieces).

usage: make_fixture.py OUT.nc [--hooks N] [--no-raw] [--metrics kl,jsd,...] [--bases ...]
                              [--directions ...] [--prompts P] [--samples S] [--steps K] [--seed S]
                              [--quantiles Q,...] [--drop VAR] [--drop-attr ATTR]

Written with netCDF4 directly (NC_STRING coordinates, like the C writer), not through xarray.
"""
import argparse
import datetime

import netCDF4
import numpy as np

LONG = {"kl": ("KL(clean || perturbed) of the next-token distribution", "nats"),
        "jsd": ("Jensen-Shannon divergence of the next-token distribution", "nats"),
        "l2": ("L2 distance at the read hook", "residual stream units"),
        "cosine": ("cosine similarity at the read hook", "1")}
# Where the curves rise, per kind: real activations sit on a longer plateau than synthetic ones,
# and real_other directions are the sensitive ones.
CENTRE_BASE = {"real": 0.45, "synthetic": 0.2}
CENTRE_DIR = {"isotropic": 0.15, "cov_random": 0.1, "real_other": -0.1}


def scores(curve, alpha, metric):
    y = 1.0 - curve if metric == "cosine" else curve
    nrm = y / y[-1]
    onset = alpha[np.argmax(nrm > 0.1)]
    rise = np.diff(nrm)
    k = int(np.argmax(rise))
    return onset, alpha[k + 1], rise[k] * (len(alpha) - 1)


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
    ap.add_argument("--drop", action="append", default=[])
    ap.add_argument("--drop-attr", action="append", default=[])
    a = ap.parse_args()

    metrics = a.metrics.split(",")
    bases = a.bases.split(",")
    dirs = a.directions.split(",")
    B, D, P, S, A = len(bases), len(dirs), a.prompts, a.samples, a.steps
    H = max(a.hooks, 1)
    hooks = [f"blocks.{i}.hook_resid_pre" for i in range(H)]
    alpha = np.linspace(0.0, 1.0, A)
    quant = np.array([float(x) for x in a.quantiles.split(",")])
    rng = np.random.default_rng(a.seed)

    curves = {m: np.zeros((H, B, D, P, S, A), np.float32) for m in metrics}
    sc = {m: np.zeros((3, H, B, D, P, S), np.float32) for m in metrics}
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
                                "cosine": 1 - 0.6 * (1 - np.exp(-kl))}
                        for m in metrics:
                            cv = vals[m].astype(np.float32)
                            curves[m][h, bi, di, p, s] = cv
                            sc[m][:, h, bi, di, p, s] = scores(cv.astype(np.float64), alpha, m)

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
    var("alpha", "f8", ("alpha",), alpha, "step fraction", "1")
    var("base", str, ("base",), bases, "base activation")
    var("direction", str, ("direction",), dirs, "direction kind")
    var("prompt", "i4", ("prompt",), np.arange(P), "prompt index")
    var("sample", "i4", ("sample",), np.arange(S), "direction sample")
    var("quantile", "f8", ("quantile",), quant, "quantile level", "1")
    sel = (lambda x: x) if a.hooks else (lambda x: x[0])
    for m in metrics:
        ln, un = LONG[m]
        c64 = curves[m].astype(np.float64)
        flat = c64.reshape(H, B, D, P * S, A)
        if not a.no_raw:
            var(m, "f4", lead + ("base", "direction", "prompt", "sample", "alpha"), sel(curves[m]), ln, un)
        var(f"{m}_mean", "f8", lead + ("base", "direction", "alpha"), sel(flat.mean(axis=3)), "mean " + ln, un)
        var(f"{m}_median", "f8", lead + ("base", "direction", "alpha"), sel(np.median(flat, axis=3)), "median " + ln, un)
        q = np.moveaxis(np.quantile(flat, quant, axis=3), 0, 1)  # (H, Q, B, D, A)
        var(f"{m}_quantiles", "f8", lead + ("quantile", "base", "direction", "alpha"), sel(q), "quantiles of " + ln, un)
        var(f"{m}_count", "i4", lead + ("base", "direction", "alpha"), sel(np.full((H, B, D, A), P * S)), "curves in statistics", "1")
        for k, (name, lname) in enumerate((("onset", "plateau onset alpha"), ("max_slope_alpha", "alpha of maximum slope"),
                                           ("sharpness", "largest normalised step rise times (steps - 1)"))):
            var(f"{m}_{name}", "f4", lead + ("base", "direction", "prompt", "sample"), sel(sc[m][k]), f"{m} {lname}", "1")
    var("tokens", "i4", ("prompt", "ctx"), rng.integers(0, 50257, (P, 8)), "token ids")
    partner = np.full((P, S), -1, np.int32)
    if "real_other" in dirs:
        partner = (np.arange(P)[:, None] + 1 + np.arange(S)[None, :]) % P
    var("partner", "i4", ("prompt", "sample"), partner, "prompt of the real_other target")

    attrs = {"Conventions": "CF-1.8", "title": "plateau fixture for analysis tests",
             "config": "[model]\npath = /nonexistent/fixture-model\n", "model_path": "/nonexistent/fixture-model",
             "model_sha256": "0" * 64, "synthetic_model": "true",
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
