"""Opening a plateau result (NetCDF-4) as an xarray.Dataset, and the checked view the scripts use.

open_result(path) is the notebook entry point: a lazy Dataset (nothing but the coordinates is read
until used) whose global attributes are decoded (booleans as bool whether the file stores them as
"true"/"false" text or as 0/1 integers, numbers as Python int/float) and whose `plateau` accessor
gives the parsed INI `config` attribute, the hooks, the metrics and scores present and the α label.

The layout is the contract written by `plateau run` and `plateau merge` (docs/result-format.md),
one table in C (src/io/schema.c) that _schema.py is generated from: coordinates alpha, base, direction, prompt, sample, quantile; per metric m the raw curves
m(base, direction, prompt, sample, alpha) when raw_curves = true, the aggregates m_median / m_mean /
m_count (base, direction, alpha) and m_quantiles (quantile, base, direction, alpha), and per-curve
scores m_<score> (base, direction, prompt, sample). A merged file puts a leading `hook` dimension
on everything that varies with the hook. A whole-context run with [readout] positions = each puts a
leading `position` dimension (the absolute token positions; after `hook`) on every metric's
variables: open_result opens it, and `ds.sel(position=N)` is then an ordinary one-position result
(Result(path, ds.sel(position=N))); the scripts refuse it by name (Result.one_curve_per_unit). Variables this module does not know are left alone, and
the ones it knows may be absent: the reader takes what the file has.

Every problem with the file is a ResultError whose text names the file and what is wrong, so the
scripts print one line and exit 2 (plateau's "bad input" code) instead of a traceback.
"""
import configparser
import os
import re
import stat

import numpy as np
import xarray as xr

from ._schema import SCHEMA

# Known metrics in plateau's order (PL_METRIC_*, from the generated schema): the order of figures and
# tables, and the stable codes that key the bootstrap streams, so a row's interval does not depend on
# which other metrics a file (or --metric) includes.
METRICS = tuple(SCHEMA["metrics"])
METRIC_CODE = {m: i for i, m in enumerate(METRICS)}
# Known per-curve scores in plateau's order (PL_SCORE_*), with the same role for their codes.
SCORES = tuple(s["name"] for s in SCHEMA["scores"])
SCORE_CODE = {s: i for i, s in enumerate(SCORES)}
# Scores measured in α (the others, sharpness, are dimensionless rises).
ALPHA_SCORES = tuple(s["name"] for s in SCHEMA["scores"] if s["alpha_valued"])


def _row(scope, name):
    return next(v for v in SCHEMA["variables"] if v["scope"] == scope and v["name"] == name)


def _dims(row):
    """A row's dimensions without the optional leading `[position]` (whole contexts with [readout]
    positions = each put a `position` dimension before all of a metric's)."""
    return tuple(d for d in row["dims"].split() if d not in ("[position]", "[site]"))


RAW_DIMS = _dims(_row("metric", ""))
AGG_DIMS = _dims(_row("metric", "_median"))
QUANT_DIMS = _dims(_row("metric", "_quantiles"))
SCORE_DIMS = _dims(_row("metric_score", ""))
# A metric's aggregates m_<suffix> (mean, median, quantiles, count): not scores.
AGG_SUFFIXES = tuple(v["name"][1:] for v in SCHEMA["variables"] if v["scope"] == "metric" and v["name"])

# Global attributes that are booleans: 0/1 integers (CF has no boolean type), "true"/"false" text in
# older files. Any other "true"/"false" text is decoded too.
BOOLEAN_ATTRS = tuple(g["name"] for g in SCHEMA["global_attributes"] if g["kind"] == "bool")
# Global attributes that are numbers even if a writer stores them as text.
NUMBER_ATTRS = tuple(g["name"] for g in SCHEMA["global_attributes"] if g["kind"] in ("int", "float64"))
# Config keys whose values are comma-separated lists.
LIST_KEYS = {("perturb", "bases"), ("perturb", "directions"), ("readout", "metrics"), ("output", "quantiles")}

# What α means under each [perturb] step_mode, for axis labels (the alpha coordinate's long_name
# is a sentence, which captions quote).
ALPHA_LABELS = {"to_target": "α (fraction of the way to the target)",
                "fixed_norm": "α (step length / ‖x‖)",
                "absolute": "α (step length, activation units)"}

EXIT_INPUT = 2  # same meaning as plateau's PL_EXIT_INPUT
EXIT_USAGE = 1  # same meaning as plateau's PL_EXIT_USAGE


class ResultError(Exception):
    """A file that is not a usable plateau result; str() is the one-line message."""


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return str(value)


def strings(values):
    """Coordinate values as Python str, whether stored as NC_STRING or as char arrays."""
    return [_text(v).rstrip("\x00").strip() for v in np.asarray(values).reshape(-1)]


def plural(n, noun, plural_form=None):
    """'1 sample', '2 samples'."""
    return f"{n} {noun if n == 1 else (plural_form or noun + 's')}"


# -- attributes ------------------------------------------------------------------------------------

def _scalar(value):
    """numpy scalars and one-element arrays as Python scalars; longer arrays as lists."""
    if isinstance(value, np.ndarray):
        if value.size == 1:
            value = value.reshape(-1)[0]
        else:
            return [_scalar(v) for v in value.reshape(-1)]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, bytes):
        return _text(value)
    return value


def _boolean(path, name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return low == "true"
    elif isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ResultError(f"{path}: global attribute '{name}' is {value!r}, expected true/false (or 1/0)")


def decode_attrs(attrs, path="result"):
    """A copy of a file's global attributes, decoded: numpy scalars as Python numbers, booleans
    (BOOLEAN_ATTRS in either encoding, any other "true"/"false" text) as bool, NUMBER_ATTRS given as
    text parsed. `config` stays text (parse_config gives the parsed form)."""
    out = {}
    for name, value in attrs.items():
        value = _scalar(value)
        if name in BOOLEAN_ATTRS:
            value = _boolean(path, name, value)
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        elif name in NUMBER_ATTRS and isinstance(value, str):
            try:
                value = int(value) if re.fullmatch(r"\s*[-+]?\d+\s*", value) else float(value)
            except ValueError:
                raise ResultError(f"{path}: global attribute '{name}' is {value!r}, expected a number") from None
        out[name] = value
    return out


def encode_attrs(attrs):
    """The inverse of decode_attrs for writing: booleans as 0/1 bytes (CF has no boolean type), so
    `ds.assign_attrs(encode_attrs(ds.attrs)).to_netcdf(path)` works on an open_result Dataset."""
    return {k: np.int8(v) if isinstance(v, (bool, np.bool_)) else v for k, v in attrs.items()}


def _config_value(section, key, text):
    def one(s):
        s = s.strip()
        low = s.lower()
        if low in ("true", "false"):
            return low == "true"
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            return s
    items = [x.strip() for x in text.split(",")]
    if (section, key) in LIST_KEYS:
        return [one(x) for x in items if x]
    pairs = [x.split(":", 1) for x in items]
    if len(items) > 1 and all(len(p) == 2 and re.fullmatch(r"\w+", p[0].strip()) for p in pairs):
        # name:value lists ([readout] thresholds = kl:0.01, jsd:none): a dict, "none" as None
        return {k.strip(): None if v.strip().lower() == "none" else one(v) for k, v in pairs}
    if len(items) > 1 and all(isinstance(one(x), (int, float)) and not isinstance(one(x), bool) for x in items):
        return [one(x) for x in items]
    return one(text)


def config_text(text, path="result"):
    """The resolved INI config plateau stores in the `config` attribute, as {section: {key: value text}},
    each value as plateau wrote it (it prints each value one way, so equal text is an equal value)."""
    cp = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",),
                                   comment_prefixes=(";", "#"), inline_comment_prefixes=None)
    cp.optionxform = str  # keys are case-sensitive in plateau
    try:
        cp.read_string(text)
    except configparser.Error as e:
        first = str(e).strip().splitlines()[0]
        raise ResultError(f"{path}: global attribute 'config' is not INI text ({first})") from None
    return {s: dict(cp[s].items()) for s in cp.sections()}


def parse_config(text, path="result"):
    """The config of config_text with its values parsed: true/false as bool, integers and reals as
    numbers, the list keys (bases, directions, metrics, quantiles) and other comma-separated numbers as
    lists, comma-separated name:value pairs as a dict ("none" as None), the rest (paths, hooks, modes)
    as text."""
    return {s: {k: _config_value(s, k, v) for k, v in keys.items()} for s, keys in config_text(text, path).items()}


# -- opening -----------------------------------------------------------------------------------------

def open_result(path):
    """The plateau result at PATH as a lazy xarray.Dataset with decoded global attributes.
    Raises ResultError (one line naming the file and the problem) when the file cannot be read or
    is not a plateau result. `ds.plateau` gives the parsed config and the file's structure."""
    ds = _open(path)
    try:
        Result(path, ds)  # checks the layout; the Dataset itself stays lazy
    except ResultError:
        ds.close()
        raise
    return ds


def open_file(path):
    """The NetCDF file at PATH as a lazy xarray.Dataset with decoded global attributes, whatever its
    layout (a model series too: analysis/series.py). Raises ResultError (one line naming the file) when
    it cannot be read."""
    return _open(path)


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ResultError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ResultError(f"{path}: is a directory, not a plateau result file")
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # netCDF would wait on a FIFO's writer for ever
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket"
        raise ResultError(f"{path}: is {kind}, not a regular file")
    try:
        # mask_and_scale stays on: plateau writes no fill values, and a file with _FillValue holes
        # should show NaN rather than a huge sentinel.
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as e:  # netCDF4/HDF5 raise OSError, ValueError, RuntimeError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        # netCDF4 appends the path (": b'/path'"); the message names the file already.
        reason = re.sub(r":\s*b?'[^']*'$", "", reason)
        raise ResultError(f"{path}: not a readable NetCDF file ({reason})") from None
    ds.attrs = decode_attrs(ds.attrs, path)
    ds.encoding["plateau_path"] = path
    return ds


# -- the checked view --------------------------------------------------------------------------------

class Result:
    """A checked plateau result for the scripts: the lazy Dataset `ds` plus what the figures and
    tables need to know about it. Arrays come out as float64 numpy arrays in the given dim order,
    one hook at a time (h indexes `hooks`; a file without a hook dimension has exactly one); a
    variable is read from disk when first asked for, and kept until forget() is called."""

    def __init__(self, path, ds=None):
        self.path = os.fspath(path)
        self._cache = {}
        if ds is None:
            ds = _open(self.path)
            try:
                self._check(ds)
            except ResultError:
                ds.close()
                raise
        else:
            self._check(ds)

    def _check(self, ds):
        self.ds = ds
        path = self.path

        for coord in ("alpha", "base", "direction"):
            if coord not in ds.variables:
                raise ResultError(f"{path}: not a plateau result: coordinate '{coord}' is missing")
        self.merged = "hook" in ds.dims
        # whole contexts, [readout] positions = each: the metrics' variables have a position dimension
        self.positions = None
        if "position" in ds.dims and any("position" in ds[v].dims for v in ds.data_vars
                                          if any(v == m or v.startswith(m + "_") for m in METRICS)):
            if "position" not in ds.variables:
                raise ResultError(f"{path}: a 'position' dimension but no 'position' coordinate")
            self.positions = [int(x) for x in np.asarray(ds["position"].values).reshape(-1)]
        # one position selected from such a file (ds.sel(position=N)): its captions say which
        self.position = (int(ds["position"].values) if self.positions is None and "position" in ds.coords
                         and ds["position"].ndim == 0 else None)
        self.alpha = np.asarray(ds["alpha"].values, dtype=np.float64).reshape(-1)
        if self.alpha.size < 2 or not np.all(np.isfinite(self.alpha)) or np.any(np.diff(self.alpha) <= 0):
            raise ResultError(f"{path}: coordinate 'alpha' must hold at least 2 increasing finite values")
        self.bases = strings(ds["base"].values)
        self.directions = strings(ds["direction"].values)
        if not self.bases or not self.directions:
            raise ResultError(f"{path}: coordinates 'base' and 'direction' must not be empty")

        self.metrics = [m for m in METRICS if m in ds.variables or f"{m}_median" in ds.variables]
        if not self.metrics:
            raise ResultError(f"{path}: not a plateau result: no metric variable "
                              f"(one of {', '.join(METRICS)}, or <metric>_median)")

        if "model" in ds.dims:  # a model series: per-model attributes are variables over `model`
            raise ResultError(f"{path}: a model-series result ({ds.sizes['model']} models along 'model'): this "
                              f"reads one model's result; draw the series with analysis/series.py, or select one "
                              f"model in xarray (xr.open_dataset(path).sel(model=LABEL))")
        for attr in ("model_path", "synthetic_model"):
            if attr not in ds.attrs:
                raise ResultError(f"{path}: not a plateau result: global attribute '{attr}' is missing")
        self.model_path = _text(ds.attrs["model_path"])
        self.synthetic = ds.attrs["synthetic_model"]  # decoded to bool (or refused) by decode_attrs
        self.read_hook = _text(ds.attrs.get("read_hook", "")) or None
        self.config = parse_config(_text(ds.attrs["config"]), path) if "config" in ds.attrs else {}

        if self.merged:
            if "hook" not in ds.variables:
                raise ResultError(f"{path}: merged result has a 'hook' dimension but no 'hook' coordinate")
            self.hooks = strings(ds["hook"].values)
        else:
            if "hook" not in ds.attrs:
                raise ResultError(f"{path}: not a plateau result: global attribute 'hook' is missing")
            self.hooks = [_text(ds.attrs["hook"])]

        self.n_samples = int(ds.sizes["sample"]) if "sample" in ds.sizes else None
        if "n_prompts" in ds.attrs:
            if not isinstance(ds.attrs["n_prompts"], int) or isinstance(ds.attrs["n_prompts"], bool):
                raise ResultError(f"{path}: global attribute 'n_prompts' is not an integer")
            self.n_prompts = ds.attrs["n_prompts"]
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
            for s in self.scores(m):
                self._check_dims(f"{m}_{s}", SCORE_DIMS)

    # -- structure --------------------------------------------------------------------------------

    def _check_dims(self, name, dims):
        want = (("hook",) if self.merged else ()) + (("position",) if self.positions else ()) + tuple(dims)
        have = tuple(self.ds[name].dims)
        if set(have) != set(want):
            raise ResultError(f"{self.path}: variable '{name}' has dimensions ({', '.join(have)}), "
                              f"expected ({', '.join(want)})")

    def scores(self, m):
        """The per-curve scores of metric m in the file: the known ones in plateau's order, then any
        other m_<name> over (base, direction, prompt, sample)."""
        known = [s for s in SCORES if f"{m}_{s}" in self.ds.variables]
        lead = ({"hook"} if self.merged else set()) | ({"position"} if self.positions else set())
        other = []
        for name in self.ds.data_vars:
            if not name.startswith(m + "_"):
                continue
            s = name[len(m) + 1:]
            if s in known or s in AGG_SUFFIXES:
                continue
            if set(self.ds[name].dims) == set(SCORE_DIMS) | lead and not any(
                    name.startswith(o + "_") and len(o) > len(m) for o in METRICS):
                other.append(s)
        return known + sorted(other)

    def one_curve_per_unit(self, tool):
        """Refuse (ResultError naming the file) a result with curves per position: TOOL's figures and
        tables take one curve per (base, direction, prompt, sample)."""
        if self.positions:
            raise ResultError(
                f"{self.path}: curves per position ([readout] positions = each, positions "
                f"{self.positions[0]}..{self.positions[-1]}): {tool} takes one curve per unit; choose one "
                f"with --position N (or in Python: open_result(path).sel(position=N)), or run with "
                f"[readout] positions = mean")

    @classmethod
    def for_tool(cls, path, tool, position=None):
        """The result at PATH as TOOL's figures and tables take it, one curve per unit: the file itself
        (a per-position file refused by name), or with POSITION its curves at that token position (a
        per-position file's; any other is refused)."""
        if position is None:
            res = cls(path)
            res.one_curve_per_unit(tool)
            return res
        ds = _open(path)
        try:
            whole = cls(path, ds)
            if not whole.positions:
                raise ResultError(f"{path}: --position {position}: the file has one curve per unit, not curves "
                                  f"per position ([readout] positions = each)")
            if position not in whole.positions:
                raise ResultError(f"{path}: --position {position}: not one of the file's positions "
                                  f"({whole.positions[0]}..{whole.positions[-1]}, {len(whole.positions)} of them)")
            return cls(path, ds.sel(position=position))
        except ResultError:
            ds.close()
            raise

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

    # -- data ---------------------------------------------------------------------------------------

    def array(self, name, dims, h):
        """Variable `name` for hook index h as float64, axes ordered as `dims` (read on first use)."""
        key = (name, tuple(dims), h)
        if key not in self._cache:
            self.require(name, dims)
            var = self.ds[name]
            if self.merged:
                var = var.isel(hook=h)
            try:
                self._cache[key] = np.asarray(var.transpose(*dims).values, dtype=np.float64)
            except (OSError, RuntimeError, ValueError) as e:
                raise ResultError(f"{self.path}: cannot read variable '{name}' ({str(e).strip() or type(e).__name__})") from None
        return self._cache[key]

    def forget(self):
        """Drop the arrays read so far (the scripts call this between metrics)."""
        self._cache.clear()

    def raw(self, m, h):
        """(base, direction, prompt, sample, alpha) curves, or None without raw curves."""
        return self.array(m, RAW_DIMS, h) if self.has(m) else None

    def quantile_levels(self):
        if "quantile" not in self.ds.variables:
            return np.zeros(0)
        return np.asarray(self.ds["quantile"].values, dtype=np.float64).reshape(-1)

    # -- words ----------------------------------------------------------------------------------------

    def attr(self, name, key):
        if name in self.ds.variables:
            v = self.ds[name].attrs.get(key)
            return None if v is None else _text(v)
        return None

    def units(self, name):
        """The variable's units; for a dimensionless one ("1") that names its unit in
        units_description (plateau's nats, residual stream units), that name."""
        units = self.attr(name, "units")
        if units is None or units.strip() in ("", "1"):
            return self.attr(name, "units_description") or units
        return units

    def step_mode(self):
        """[perturb] step_mode: the alpha coordinate's `step_mode` attribute, else the config's."""
        return self.attr("alpha", "step_mode") or self.config.get("perturb", {}).get("step_mode")

    def alpha_label(self):
        """What α means in this file, short enough for an axis: the label of its step mode (see
        ALPHA_LABELS); for a mode this code does not know, the alpha coordinate's long_name (and
        units, unless "1"); "α" when the file says neither."""
        if self.step_mode() in ALPHA_LABELS:
            return ALPHA_LABELS[self.step_mode()]
        long_name = self.attr("alpha", "long_name")
        if long_name:
            units = self.attr("alpha", "units")
            return f"α ({long_name})" + (f" [{units}]" if units and units.strip() not in ("1", "") else "")
        return "α"

    def alpha_meaning(self):
        """The alpha coordinate's own long_name (a sentence, for captions), or None."""
        return self.attr("alpha", "long_name")

    def describe(self):
        """One-line provenance for captions and table headers."""
        model = self.model_path
        if len(model) > 60:
            model = "…" + model[-59:]
        kind = "SYNTHETIC model (random weights, not GPT-2)" if self.synthetic else "model"
        if len(self.hooks) == 1:
            hooks = f"hook {self.hooks[0]}"
        else:
            hooks = f"{len(self.hooks)} hooks ({self.hooks[0]} … {self.hooks[-1]})"
        read = f" → read {self.read_hook}" if self.read_hook else ""
        if self.position is not None:
            read += f" at token position {self.position}"
        samples = f" × {plural(self.n_samples, 'sample')}" if self.n_samples else ""
        return (f"{kind}: {model} · {hooks}{read} · {plural(self.n_prompts, 'prompt')}{samples} · "
                f"{os.path.basename(self.path)}")


# -- the xarray accessor ------------------------------------------------------------------------------

@xr.register_dataset_accessor("plateau")
class PlateauAccessor:
    """ds.plateau on a Dataset from open_result: .config (parsed INI), .hooks, .merged, .metrics,
    .scores(m), .alpha_label, .describe()."""

    def __init__(self, ds):
        self._ds = ds
        self._result = None

    @property
    def _r(self):
        if self._result is None:
            self._result = Result(self._ds.encoding.get("plateau_path", "result"), self._ds)
        return self._result

    @property
    def config(self):
        return self._r.config

    @property
    def hooks(self):
        return list(self._r.hooks)

    @property
    def merged(self):
        return self._r.merged

    @property
    def metrics(self):
        return list(self._r.metrics)

    def scores(self, metric):
        return self._r.scores(metric)

    @property
    def alpha_label(self):
        return self._r.alpha_label()

    def describe(self):
        return self._r.describe()
