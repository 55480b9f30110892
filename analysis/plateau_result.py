"""Open and check a plateau result file (NetCDF-4), shared by plot_curves.py and summary.py.

The layout is the contract written by `plateau run` and `plateau merge` (README, "Result file"):
coordinates alpha, base, direction, prompt, sample, quantile; per metric m in kl, jsd, l2, cosine
the raw curves m(base, direction, prompt, sample, alpha) when raw_curves = true, the aggregates
m_median / m_mean (base, direction, alpha) and m_quantiles(quantile, base, direction, alpha), and
the per-curve scores m_onset / m_sharpness (base, direction, prompt, sample). A merged file puts a
`hook` dimension in front of everything that varies with the hook.

Every problem with the file becomes a ResultError whose text names the file and what is wrong, so
the scripts can print one line and exit 2 (plateau's "bad input" code) instead of a traceback.
"""
import os
import re

import numpy as np
import xarray as xr

METRICS = ("kl", "jsd", "l2", "cosine")
# Stable small integers per metric: part of the bootstrap seeds, so a row's interval does not
# depend on which other metrics a file (or --metric) happens to include.
METRIC_CODE = {m: i for i, m in enumerate(METRICS)}

RAW_DIMS = ("base", "direction", "prompt", "sample", "alpha")
AGG_DIMS = ("base", "direction", "alpha")
QUANT_DIMS = ("quantile", "base", "direction", "alpha")
SCORE_DIMS = ("base", "direction", "prompt", "sample")

EXIT_INPUT = 2  # same meaning as plateau's PL_EXIT_INPUT
EXIT_USAGE = 1  # same meaning as plateau's PL_EXIT_USAGE


class ResultError(Exception):
    """A file that is not a usable plateau result; str() is the one-line message."""


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _strings(values):
    """Coordinate values as Python str, whether stored as NC_STRING or as char arrays."""
    out = []
    for v in np.asarray(values).reshape(-1):
        out.append(_text(v).rstrip("\x00").strip())
    return out


class Result:
    """A checked plateau result. Arrays come out as float64 numpy arrays in the layout's dim order,
    one hook at a time (h indexes `hooks`; a file without a hook dimension has exactly one)."""

    def __init__(self, path):
        self.path = path
        if not os.path.exists(path):
            raise ResultError(f"{path}: no such file")
        if os.path.isdir(path):
            raise ResultError(f"{path}: is a directory, not a plateau result file")
        try:
            # mask_and_scale stays on: plateau writes no fill values, and a file with _FillValue
            # holes should show NaN rather than a huge sentinel.
            self.ds = xr.open_dataset(path, engine="netcdf4")
            self.ds.load()
        except Exception as e:  # netCDF4/HDF5 raise OSError, ValueError, RuntimeError, ...
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # netCDF4 appends the path (": b'/path'"); the message names the file already.
            reason = re.sub(r":\s*b?'[^']*'$", "", reason)
            raise ResultError(f"{path}: not a readable NetCDF file ({reason})") from None
        ds = self.ds

        for coord in ("alpha", "base", "direction"):
            if coord not in ds.variables:
                raise ResultError(f"{path}: not a plateau result: coordinate '{coord}' is missing")
        self.merged = "hook" in ds.dims
        self.alpha = np.asarray(ds["alpha"].values, dtype=np.float64).reshape(-1)
        if self.alpha.size < 2 or not np.all(np.isfinite(self.alpha)) or np.any(np.diff(self.alpha) <= 0):
            raise ResultError(f"{path}: coordinate 'alpha' must hold at least 2 increasing finite values")
        self.bases = _strings(ds["base"].values)
        self.directions = _strings(ds["direction"].values)
        if not self.bases or not self.directions:
            raise ResultError(f"{path}: coordinates 'base' and 'direction' must not be empty")

        self.metrics = [m for m in METRICS if m in ds.variables or f"{m}_median" in ds.variables]
        if not self.metrics:
            raise ResultError(f"{path}: not a plateau result: no metric variable "
                              f"(one of {', '.join(METRICS)}, or <metric>_median)")

        for attr in ("model_path", "synthetic_model"):
            if attr not in ds.attrs:
                raise ResultError(f"{path}: not a plateau result: global attribute '{attr}' is missing")
        self.model_path = _text(ds.attrs["model_path"])
        synth = _text(ds.attrs["synthetic_model"]).strip().lower()
        if synth not in ("true", "false"):
            raise ResultError(f"{path}: global attribute 'synthetic_model' is '{synth}', expected 'true' or 'false'")
        self.synthetic = synth == "true"
        self.read_hook = _text(ds.attrs.get("read_hook", "")) or None

        if self.merged:
            if "hook" not in ds.variables:
                raise ResultError(f"{path}: merged result has a 'hook' dimension but no 'hook' coordinate")
            self.hooks = _strings(ds["hook"].values)
        else:
            if "hook" not in ds.attrs:
                raise ResultError(f"{path}: not a plateau result: global attribute 'hook' is missing")
            self.hooks = [_text(ds.attrs["hook"])]

        self.n_samples = int(ds.sizes["sample"]) if "sample" in ds.sizes else None
        if "n_prompts" in ds.attrs:
            try:
                self.n_prompts = int(np.asarray(ds.attrs["n_prompts"]).reshape(-1)[0])
            except (TypeError, ValueError):
                raise ResultError(f"{path}: global attribute 'n_prompts' is not an integer") from None
        elif "prompt" in ds.sizes:
            self.n_prompts = int(ds.sizes["prompt"])
        else:
            raise ResultError(f"{path}: not a plateau result: no 'n_prompts' attribute and no 'prompt' dimension")

        for m in self.metrics:
            if m in ds.variables:
                self._check_dims(m, RAW_DIMS)
            else:
                if "quantile" not in ds.variables:
                    raise ResultError(f"{path}: metric '{m}' has no raw curves and the file has no 'quantile' coordinate")
                for name, dims in ((f"{m}_median", AGG_DIMS), (f"{m}_quantiles", QUANT_DIMS)):
                    if name not in ds.variables:
                        raise ResultError(f"{path}: metric '{m}' has neither raw curves '{m}' nor '{name}'")
                    self._check_dims(name, dims)

    # -- access -------------------------------------------------------------------------------

    def _check_dims(self, name, dims):
        want = (("hook",) if self.merged else ()) + tuple(dims)
        have = tuple(self.ds[name].dims)
        if set(have) != set(want):
            raise ResultError(f"{self.path}: variable '{name}' has dimensions ({', '.join(have)}), "
                              f"expected ({', '.join(want)})")

    def select_metrics(self, wanted):
        """The file's metrics, or those of WANTED (a list, or None for all) in file order; a wanted
        metric the file lacks is an error naming it."""
        if not wanted:
            return list(self.metrics)
        absent = [m for m in wanted if m not in self.metrics]
        if absent:
            raise ResultError(f"{self.path}: no metric {', '.join(absent)} in the file (it has {', '.join(self.metrics)})")
        return [m for m in self.metrics if m in wanted]

    def has(self, name):
        return name in self.ds.variables

    def require(self, name, dims):
        if name not in self.ds.variables:
            raise ResultError(f"{self.path}: variable '{name}' is missing")
        self._check_dims(name, dims)

    def array(self, name, dims, h):
        """Variable `name` for hook index h as float64, axes ordered as `dims`."""
        self.require(name, dims)
        var = self.ds[name]
        if self.merged:
            var = var.isel(hook=h)
        return np.asarray(var.transpose(*dims).values, dtype=np.float64)

    def raw(self, m, h):
        """(base, direction, prompt, sample, alpha) curves, or None without raw curves."""
        return self.array(m, RAW_DIMS, h) if self.has(m) else None

    def quantile_levels(self):
        return np.asarray(self.ds["quantile"].values, dtype=np.float64).reshape(-1) if "quantile" in self.ds.variables else np.zeros(0)

    def long_name(self, name, fallback):
        if name in self.ds.variables:
            return _text(self.ds[name].attrs.get("long_name", fallback))
        return fallback

    def units(self, name):
        if name in self.ds.variables:
            u = self.ds[name].attrs.get("units")
            return None if u is None else _text(u)
        return None

    def hook_label(self, h):
        return self.hooks[h]

    def model_name(self):
        """The model's short name for titles: its dir's or checkpoint's name (without .bin)."""
        name = os.path.basename(os.path.normpath(self.model_path))
        return name[:-4] if name.endswith(".bin") else name

    def describe(self):
        """One-line provenance for captions and table headers."""
        model = self.model_path
        if len(model) > 60:
            model = "…" + model[-59:]
        kind = "SYNTHETIC model (random weights, not GPT-2)" if self.synthetic else "model"
        hooks = self.hooks[0] if len(self.hooks) == 1 else f"{len(self.hooks)} hooks ({self.hooks[0]} … {self.hooks[-1]})"
        read = f" → read {self.read_hook}" if self.read_hook else ""
        samples = f" × {self.n_samples} samples" if self.n_samples else ""
        return (f"{kind}: {model} · hook {hooks}{read} · {self.n_prompts} prompts{samples} · "
                f"{os.path.basename(self.path)}")


def die(script, message, code=EXIT_INPUT):
    import sys
    sys.stderr.write(f"{script}: {message}\n")
    sys.exit(code)
