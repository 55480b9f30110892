"""Write a single-hook plateau result file (NetCDF-4) following the layout contract, for merge tests.

Independent of plateau's own writer: the file is built here with netCDF4 from the README's
"Result file" layout, with random values, so the merge can be checked value by value.

    write_result(path, hook="blocks.1.hook_resid_pre", config_overrides={("data", "seed"): "3"}, ...)
"""
import datetime

import netCDF4
import numpy as np

LONG = {"kl": ("KL(clean || perturbed) of the next-token distribution", "nats"),
        "jsd": ("Jensen-Shannon divergence of the next-token distribution", "nats"),
        "l2": ("L2 distance at the read hook", "residual stream units"),
        "cosine": ("cosine similarity at the read hook", "1")}

# The resolved config as `plateau run` writes it: every key, defaults filled.
BASE_CONFIG = [
    ("model", "path", "models/smoke"),
    ("data", "prompts", "data/prompts.jsonl"),
    ("data", "format", "jsonl"),
    ("data", "n_prompts", "4"),
    ("data", "n_ctx", "8"),
    ("data", "seed", "0"),
    ("perturb", "hook", "blocks.1.hook_resid_pre"),
    ("perturb", "position", "-1"),
    ("perturb", "bases", "real, synthetic"),
    ("perturb", "directions", "isotropic, cov_random, real_other"),
    ("perturb", "n_directions", "2"),
    ("perturb", "steps", "11"),
    ("perturb", "alpha_max", "1"),
    ("perturb", "step_mode", "to_target"),
    ("perturb", "cov_prompts", "16"),
    ("readout", "metrics", "kl, jsd, l2, cosine"),
    ("readout", "read_hook", "blocks.1.hook_resid_post"),
    ("readout", "onset_threshold", "0.1"),
    ("output", "path", "results/out.nc"),
    ("output", "raw_curves", "true"),
    ("output", "quantiles", "0.05, 0.25, 0.75, 0.95"),
    ("run", "seed", "0"),
    ("run", "checkpoint_every", "300"),
    ("run", "checkpoint", "results/out.nc.ckpt"),
    ("run", "worker_timeout", "10"),
]


def config_text(overrides):
    lines, section = [], None
    for sec, key, value in BASE_CONFIG:
        value = overrides.get((sec, key), value)
        if value is None:  # drop the key
            continue
        if sec != section:
            if section is not None:
                lines.append("")
            lines.append(f"[{sec}]")
            section = sec
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def write_result(path, hook="blocks.1.hook_resid_pre", config_overrides=None, prompts=4, samples=2, steps=11,
                 bases=("real", "synthetic"), directions=("isotropic", "cov_random", "real_other"),
                 metrics=("kl", "jsd", "l2", "cosine"), seed=0, tokens_seed=7, model_sha256="ab" * 32,
                 extra_variable=None, alpha_max=1.0, model_config_sha256=None):
    overrides = {("perturb", "hook"): hook}
    overrides.update(config_overrides or {})
    rng = np.random.default_rng(seed)
    B, D, P, S, A = len(bases), len(directions), prompts, samples, steps
    quant = np.array([0.05, 0.25, 0.75, 0.95])
    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    for name, n in (("base", B), ("direction", D), ("prompt", P), ("sample", S), ("alpha", A),
                    ("quantile", len(quant)), ("ctx", 8)):
        nc.createDimension(name, n)

    def var(name, dtype, dims, data, long_name, units=None, zlib=False):
        v = nc.createVariable(name, dtype, dims, zlib=zlib)
        v.long_name = long_name
        if units is not None:
            v.units = units
        if dtype is str:
            for i, x in enumerate(data):
                v[i] = x
        else:
            v[:] = data
        return v

    var("alpha", "f8", ("alpha",), np.linspace(0.0, alpha_max, A), "step fraction", "1")
    var("base", str, ("base",), list(bases), "base activation")
    var("direction", str, ("direction",), list(directions), "direction kind")
    var("prompt", "i4", ("prompt",), np.arange(P), "prompt index")
    var("sample", "i4", ("sample",), np.arange(S), "direction sample")
    var("quantile", "f8", ("quantile",), quant, "quantile level", "1")
    for m in metrics:
        ln, un = LONG[m]
        var(m, "f4", ("base", "direction", "prompt", "sample", "alpha"), rng.random((B, D, P, S, A)), ln, un, zlib=True)
        var(f"{m}_mean", "f8", ("base", "direction", "alpha"), rng.random((B, D, A)), "mean " + ln, un)
        var(f"{m}_median", "f8", ("base", "direction", "alpha"), rng.random((B, D, A)), "median " + ln, un)
        var(f"{m}_quantiles", "f8", ("quantile", "base", "direction", "alpha"), rng.random((len(quant), B, D, A)),
            "quantiles of " + ln, un)
        var(f"{m}_count", "i4", ("base", "direction", "alpha"), rng.integers(0, P * S, (B, D, A)), "curves", "1")
        for k in ("onset", "max_slope_alpha", "sharpness"):
            var(f"{m}_{k}", "f4", ("base", "direction", "prompt", "sample"), rng.random((B, D, P, S)), f"{m} {k}", "1")
    var("tokens", "i4", ("prompt", "ctx"), np.random.default_rng(tokens_seed).integers(0, 50257, (P, 8)), "token ids")
    var("partner", "i4", ("prompt", "sample"), (np.arange(P)[:, None] + 1 + np.arange(S)[None, :]) % P,
        "prompt of the real_other target")
    if extra_variable:
        var(extra_variable, "f4", ("prompt",), np.zeros(P), "an extra variable")
    attrs = {"Conventions": "CF-1.8", "title": "plateau sweep", "config": config_text(overrides),
             "model_path": "models/smoke", "model_sha256": model_sha256, "synthetic_model": "true",
             "hook": hook, "read_hook": "blocks.1.hook_resid_post", "n_prompts": np.int32(P),
             "plateau_version": "test", "n_ranks": np.int32(1 + seed % 3), "evals_per_second": 1000.0 + seed,
             "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if model_config_sha256 is not None:  # absent, as in files of plateau before 2026-12-07, unless given
        attrs["model_config_sha256"] = model_config_sha256
    for k, v in attrs.items():
        nc.setncattr(k, v)
    nc.close()
