"""The result file and a merged one against the CF-1.8 rules that apply to them (Debian 12 has no CF
checker: neither `cfchecks` nor `cf-checker` is packaged), and their provenance:
- Conventions = "CF-1.8"; `history` (the creation time and the command line) and `source`;
- CF 5: coordinate variables (a 1-D variable named as its dimension) have no _FillValue; string
  coordinates carry no `units` (CF units describe numbers);
- booleans are 0/1 integers (synthetic_model, center_direction);
- every variable has a long_name; units are UDUNITS ("1", "s-1"), plateau's own (nats, residual stream
  units) named in units_description;
- per-curve scores are float64 like `alpha`, so xarray's sel(alpha=onset) finds the step;
- provenance: hostname (Python's socket.gethostname()), data_sha256 (hashlib over the prompts file),
  model_path absolute (os.path.realpath of the config's relative path), git_commit as `plateau -V`;
- merge: each input's config, created, history and provenance kept per hook (hook_config, ...), the
  merged file's own created and history; an existing OUT refused (exit 2 naming it) unless --force."""
import hashlib
import os
import re
import socket
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
# a small GPT-2 tokenizer in the model dir (296 tokens: the data's ids stay below), for prompt_text
TOK = os.path.join(sl.SRC, "tests", "tokenizer")
subprocess.run([sys.executable, os.path.join(TOK, "make_tiny_vocab.py"), model], check=True)
data = sl.make_bin(d, 8 * 200, 296)
os.chdir(d)  # relative model and data paths in the config: the file must record them absolute
outs = []
for hook in ("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"):
    out = os.path.join(d, hook.split(".")[1] + ".nc")
    cfg = sl.base_config("model", "tokens.bin", out, perturb__hook=hook, data__n_prompts=6,
                         perturb__directions="real_other, cov_random", perturb__n_directions=2,
                         output__activations="true")
    ini = sl.write_ini(os.path.join(d, "h%s.ini" % hook.split(".")[1]), cfg)
    r = sl.run([ini, "--quiet", "--set=run.seed=5"])
    if r.returncode != 0:
        sl.fail("run: " + r.stderr)
    outs.append((out, ini))

import netCDF4  # noqa: E402
import xarray as xr  # noqa: E402

version = subprocess.run([sl.BIN, "-V"], capture_output=True, text=True).stdout.strip()
git = re.search(r"\(git (\S+)\)", version).group(1)
sha = hashlib.sha256(open(data, "rb").read()).hexdigest()


def cf_rules(path, merged):
    with netCDF4.Dataset(path) as ds:
        g = {k: ds.getncattr(k) for k in ds.ncattrs()}
        if g.get("Conventions") != "CF-1.8":
            sl.fail("%s: Conventions %r" % (path, g.get("Conventions")))
        if not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: plateau (run|merge) ", g.get("history", "")):
            sl.fail("%s: history %r" % (path, g.get("history")))
        if g.get("source") != "plateau %s (git %s)" % (version.split()[1], git):
            sl.fail("%s: source %r vs %r" % (path, g.get("source"), version))
        for name in ("synthetic_model", "center_direction"):
            if not isinstance(g[name], (np.integer, int)) or g[name] not in (0, 1):
                sl.fail("%s: %s = %r is not a 0/1 integer" % (path, name, g[name]))
        for name, v in ds.variables.items():
            if v.dimensions == (name,) and "_FillValue" in v.ncattrs():
                sl.fail("%s: coordinate %s has a _FillValue" % (path, name))
            if v.dtype == str and "units" in v.ncattrs():
                sl.fail("%s: string variable %s has units %r" % (path, name, v.units))
            # UDUNITS knows neither nats nor residual stream units: those are "1", named in units_description
            if "units" in v.ncattrs() and v.units not in ("1", "s-1"):
                sl.fail("%s: %s has units %r (not a UDUNITS unit plateau writes)" % (path, name, v.units))
            if "long_name" not in v.ncattrs():
                sl.fail("%s: %s has no long_name" % (path, name))
            if re.search(r"_(onset|max_slope_alpha|sharpness|alpha_at_threshold|nonlinearity_alpha)$", name) \
                    and v.dtype != np.float64:
                sl.fail("%s: score %s is %s, alpha %s" % (path, name, v.dtype, ds["alpha"].dtype))
        return g


for out, ini in outs:
    g = cf_rules(out, False)
    if g["hostname"] != socket.gethostname():
        sl.fail("hostname %r vs %r" % (g["hostname"], socket.gethostname()))
    if g["data_sha256"] != sha:
        sl.fail("data_sha256 %s vs hashlib %s" % (g["data_sha256"], sha))
    if g["model_path"] != os.path.realpath(model) or g["data_path"] != os.path.realpath(data):
        sl.fail("paths not absolute: %r %r" % (g["model_path"], g["data_path"]))
    if g["git_commit"] != git or g["synthetic_model"] != 1 or "--set run.seed=5" not in g["history"] \
            or ini not in g["history"]:
        sl.fail("git_commit %r, synthetic_model %r, history %r" % (g["git_commit"], g["synthetic_model"], g["history"]))
    for key in ("openblas_config", "threads"):
        if key not in g:
            sl.fail("%s missing" % key)
    config_sha = hashlib.sha256(open(os.path.join(model, "config.json"), "rb").read()).hexdigest()
    if g.get("model_config_sha256") != config_sha:
        sl.fail("model_config_sha256 %r vs hashlib over config.json %s" % (g.get("model_config_sha256"), config_sha))
    # the config's own spelling of its settings (base_config: raw basis, document_start, to_target)
    if (g["residual_basis"], g["sampling"]) != ("raw", "document_start"):
        sl.fail("residual_basis %r, sampling %r" % (g["residual_basis"], g["sampling"]))
    with netCDF4.Dataset(out) as ds:
        if ds["alpha"].step_mode != "to_target":
            sl.fail("alpha's step_mode %r" % ds["alpha"].step_mode)
ds = xr.open_dataset(outs[0][0])
onset = ds["kl_onset"].values
finite = onset[np.isfinite(onset)]
if finite.size == 0:
    sl.fail("no finite kl_onset")
ds["alpha"].sel(alpha=finite[0])  # raises KeyError when the dtypes differ
ds.close()
# per-curve norms against numpy: |base| of a real base is |activation|; real_other's d is the
# partner's activation minus the prompt's (to_target, raw basis, no centring: base_config's defaults)
with netCDF4.Dataset(outs[0][0]) as ds:
    if ds["kl"].units != "1" or ds["kl"].units_description != "nats":
        sl.fail("kl units %r / %r" % (ds["kl"].units, getattr(ds["kl"], "units_description", None)))
    ds.set_auto_mask(False)
    act = ds["activation"][:].astype(np.float64)
    bases, dirs = list(ds["base"][:]), list(ds["direction"][:])
    bn, dn, partner = ds["base_norm"][:], ds["direction_norm"][:], ds["partner"][:]
    if ds["base_norm"].dtype != np.float64 or bn.shape != (2, 2, 6, 2):
        sl.fail("base_norm %s %s" % (ds["base_norm"].dtype, bn.shape))
b, dr = bases.index("real"), dirs.index("real_other")
want_b = np.broadcast_to(np.linalg.norm(act, axis=1)[None, :, None], bn[b].shape)
want_d = np.linalg.norm(act[partner] - act[:, None, :], axis=2)
if not np.allclose(bn[b], want_b, rtol=1e-6) or not np.allclose(dn[b, dr], want_d, rtol=1e-5):
    sl.fail("norms: base %s vs %s; direction %s vs %s" % (bn[b], want_b, dn[b, dr], want_d))
if not np.all(np.isfinite(bn)) or not np.all(dn > 0):
    sl.fail("norms not finite and positive: %s %s" % (bn, dn))
print("ok   base_norm and direction_norm per curve against numpy (real bases, real_other)")

# prompt_text: the tokens decoded by vocab.json and GPT-2's byte alphabet, in Python
sys.path.insert(0, TOK)
from byte_alphabet import bytes_to_unicode  # noqa: E402
import json  # noqa: E402
byte_of = {u: b for b, u in bytes_to_unicode().items()}
token_of = {i: t for t, i in json.load(open(os.path.join(model, "vocab.json"), encoding="utf-8")).items()}
with netCDF4.Dataset(outs[0][0]) as ds:
    texts, tokens = list(ds["prompt_text"][:]), ds["tokens"][:]
for p, ids in enumerate(tokens):
    raw = bytes(byte_of[ch] for i in ids for ch in token_of[int(i)])
    want = raw.decode("utf-8", errors="replace").replace("\0", "\ufffd")
    if texts[p] != want:
        sl.fail("prompt_text[%d] %r, Python %r" % (p, texts[p], want))
print("ok   prompt_text = the tokens decoded in Python (vocab.json, byte alphabet, U+FFFD for invalid UTF-8)")
print("ok   result files: CF rules, booleans 0/1, float64 scores (sel(alpha=onset) works), history, source, "
      "hostname, data sha256, absolute paths, git commit")

merged = os.path.join(d, "merged.nc")
r = subprocess.run([sl.BIN, "merge", merged] + [o for o, _ in outs], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("merge: " + r.stderr)
g = cf_rules(merged, True)
with netCDF4.Dataset(merged) as ds:
    cfgs = list(ds["hook_config"][:])
    hist = list(ds["hook_history"][:])
    for i, (out, _) in enumerate(outs):
        with netCDF4.Dataset(out) as one:
            if cfgs[i] != one.getncattr("config") or hist[i] != one.getncattr("history") or \
                    ds["hook_created"][i] != one.getncattr("created"):
                sl.fail("merged: hook %d's config/history/created are not its input's" % i)
if not g["history"].endswith("plateau merge %s %s %s" % (merged, outs[0][0], outs[1][0])):
    sl.fail("merged history %r" % g["history"])
before = open(merged, "rb").read()
r = subprocess.run([sl.BIN, "merge", merged] + [o for o, _ in outs], capture_output=True, text=True)
if r.returncode != 2 or merged not in r.stderr or "--force" not in r.stderr or open(merged, "rb").read() != before:
    sl.fail("merge over an existing OUT: exit %d %r" % (r.returncode, r.stderr))
r = subprocess.run([sl.BIN, "merge", "--force", merged, outs[1][0]], capture_output=True, text=True)
if r.returncode != 0 or netCDF4.Dataset(merged).dimensions["hook"].size != 1:
    sl.fail("merge --force: exit %d %r" % (r.returncode, r.stderr))
print("ok   merged file: CF rules, every input's config, created and history per hook, its own history; "
      "an existing OUT refused (2) unless --force")
print("result file tests passed")
