"""The result file's schema (src/io/schema.c) is the one definition of its names:
- analysis/plateau_analysis/_schema.py is what scripts/gen_result_schema.py makes of
  `plateau help --schema-json` (so a change of the C metric enum's order, which keys the Python
  bootstrap streams, fails here until the Python side is regenerated), and the reader's constants
  come from it;
- every dimension, variable (type, dimensions) and global attribute (kind) of a real run's file and of
  a merge of two is described by a row of the dumped schema (an independent walk of the files with
  netCDF4, matched against the JSON's rows);
- merge refuses an input whose `hook` attribute is not its config's [perturb] hook (exit 2, naming
  the file), and accepts one that writes the same hook differently (blocks.01 is blocks.1)."""
import json
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

sys.path.insert(0, os.path.join(sl.SRC, "scripts"))
import gen_result_schema  # noqa: E402

sys.path.insert(0, os.path.join(sl.SRC, "analysis"))
from plateau_analysis import result as pr  # noqa: E402

import netCDF4  # noqa: E402

d = sl.workdir(sys.argv)
dump = subprocess.run([sl.BIN, "help", "--schema-json"], capture_output=True, text=True)
if dump.returncode != 0:
    sl.fail("help --schema-json: exit %d: %s" % (dump.returncode, dump.stderr))
schema = json.loads(dump.stdout)
with open(os.path.join(sl.SRC, "analysis", "plateau_analysis", "_schema.py"), encoding="utf-8") as f:
    if f.read() != gen_result_schema.render(dump.stdout):
        sl.fail("analysis/plateau_analysis/_schema.py is not what the binary's schema generates: run "
                "scripts/gen_result_schema.py build/plateau")
if list(pr.METRICS) != schema["metrics"] or list(pr.SCORES) != [s["name"] for s in schema["scores"]]:
    sl.fail("plateau_analysis METRICS/SCORES %r %r differ from the binary's %r" % (pr.METRICS, pr.SCORES, schema))

# a run with every optional part: comparisons, raw curves, activations, prompt_text, per-unit state
model = sl.make_model(d)
subprocess.run([sys.executable, os.path.join(sl.SRC, "tests", "tokenizer", "make_tiny_vocab.py"), model], check=True)
data = sl.make_bin(d, 8 * 200, 296)
outs = []
for h in (0, 1):
    out = os.path.join(d, "h%d.nc" % h)
    cfg = sl.base_config(model, data, out, perturb__hook="blocks.%d.hook_resid_pre" % h, data__n_prompts=4,
                         perturb__steps=5, perturb__n_directions=1, output__bootstrap=20,
                         perturb__directions="real_other, cov_random, real_difference", output__activations="true",
                         output__raw_curves="true", readout__thresholds="kl:0.01", output__quantiles="0.1, 0.9")
    r = sl.run([sl.write_ini(os.path.join(d, "h%d.ini" % h), cfg), "--quiet"])
    if r.returncode != 0:
        sl.fail("run: " + r.stderr)
    outs.append(out)
merged = os.path.join(d, "merged.nc")
r = subprocess.run([sl.BIN, "merge", merged] + outs, capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("merge: " + r.stderr)

TYPES = {"string": str, "int32": np.dtype("int32"), "float32": np.dtype("float32"), "float64": np.dtype("float64")}


def candidates(name, metrics, scores):
    """(row, dims) of the schema rows that can stand for variable NAME, dims with templates filled."""
    for v in schema["variables"]:
        dims = v["dims"].split()
        if v["scope"] in ("fixed", "merged", "state") and "{" not in v["name"] and v["name"] == name:
            yield v, dims
        elif v["scope"] == "merged" and v["name"] == "hook_{attr}" and name.startswith("hook_"):
            yield v, dims
        elif v["scope"] == "metric" and any(name == m + v["name"] for m in metrics):
            yield v, dims
        elif v["scope"] == "metric_score" and any(name == m + "_" + s + v["name"] for m in metrics for s in scores):
            yield v, dims
        elif v["scope"] == "score" and any(name == s + v["name"] for s in scores):
            yield v, dims
        elif v["scope"] == "state" and v["name"] == "{state}":
            yield v, None  # a direction kind's own name and shape


def check_file(path, merged):
    metrics, scores = schema["metrics"], [s["name"] for s in schema["scores"]]
    globals_ = {g["name"]: g for g in schema["global_attributes"]}
    with netCDF4.Dataset(path) as ds:
        for dim in ds.dimensions:
            if dim not in [x["name"] for x in schema["dimensions"]] and dim != "pair":
                sl.fail("%s: dimension %s is not in the schema" % (path, dim))
        for name, var in ds.variables.items():
            found = False
            for row, dims in candidates(name, metrics, scores):
                lead = ["hook"] if merged and row["scope"] != "merged" and list(var.dimensions[:1]) == ["hook"] else []
                if row["scope"] != "merged" and merged and row["merge"] == "stack" and not lead:
                    continue
                want = TYPES[row["type"]]
                if (var.dtype == str) != (want is str) or (want is not str and var.dtype != want):
                    continue
                if dims is not None and list(var.dimensions) != lead + dims:
                    continue
                found = True
                break
            per_hook = merged and name in globals_ and globals_[name]["merge"] == "per_hook_number"
            if not found and not per_hook:
                sl.fail("%s: variable %s %s %s is described by no schema row" % (path, name, var.dtype,
                                                                                  var.dimensions))
        for att in ds.ncattrs():
            g = globals_.get(att)
            if g is None:
                sl.fail("%s: global attribute %s is not in the schema" % (path, att))
            value = ds.getncattr(att)
            ok = {"text": isinstance(value, str), "float64": isinstance(value, (float, np.floating)),
                  "int": isinstance(value, (int, np.integer)), "bool": isinstance(value, (int, np.integer))
                  and value in (0, 1)}[g["kind"]]
            if not ok:
                sl.fail("%s: global attribute %s = %r is not of the schema's kind %s" % (path, att, value, g["kind"]))


for path in outs:
    check_file(path, False)
check_file(merged, True)


# merge checks each input's hook attribute against its own config. The file is rewritten whole
# (netCDF4 cannot open plateau's files for appending), its global hook attribute replaced.
def with_hook(src, hook, name):
    dst = os.path.join(d, name)
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w") as b:
        a.set_auto_mask(False)
        for n, dim in a.dimensions.items():
            b.createDimension(n, None if dim.isunlimited() else len(dim))
        for n, v in a.variables.items():
            fill = v.getncattr("_FillValue") if "_FillValue" in v.ncattrs() else None
            w = b.createVariable(n, v.dtype, v.dimensions, fill_value=fill)
            w.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
            if v.size:
                w[...] = v[...]
        b.setncatts({k: (hook if k == "hook" else a.getncattr(k)) for k in a.ncattrs()})
    return dst


lying = with_hook(outs[1], "blocks.0.hook_resid_pre", "lying.nc")
r = subprocess.run([sl.BIN, "merge", os.path.join(d, "m2.nc"), outs[0], lying], capture_output=True, text=True)
if r.returncode != 2 or "lying.nc" not in r.stderr or "'hook'" not in r.stderr or "blocks.1.hook_resid_pre" not in r.stderr:
    sl.fail("merge of a file whose hook attribute contradicts its config: exit %d: %s" % (r.returncode, r.stderr))
if os.path.exists(os.path.join(d, "m2.nc")):
    sl.fail("the refused merge wrote its output")
spelled = with_hook(outs[1], "blocks.01.hook_resid_pre", "spelled.nc")
r = subprocess.run([sl.BIN, "merge", os.path.join(d, "m3.nc"), outs[0], spelled], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("merge of a file whose hook attribute is its config's hook written blocks.01: exit %d: %s"
            % (r.returncode, r.stderr))
with netCDF4.Dataset(os.path.join(d, "m3.nc")) as ds:
    if list(ds["hook"][:]) != ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]:
        sl.fail("merged hooks %r" % list(ds["hook"][:]))
print("ok: schema dump = _schema.py; every variable and attribute of a run and a merge described; hook attribute checked")
