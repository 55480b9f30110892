"""`plateau merge` of an SAE experiment run once per hook with each hook's own SAE (as SAELens releases
ship one SAE per hook): the merge accepts the per-hook [sae] path, stores each hook's SAE provenance
and numbers per hook (hook_sae_path, hook_sae_sha256, hook_sae_hook, sae_features_never_active, ...),
equal to what each input file says; and a global attribute that differs between inputs without being
per-hook is refused by name (exit 2), never written as the first input's value for every hook.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

import netCDF4  # noqa: E402

d = sl.workdir(sys.argv)
V, C, T = 300, 32, 8
model_dir = sl.make_model(d, layers=3, embd=C, vocab=V)
data = sl.make_bin(d, T * 150, V, seed=4)
HOOKS = ("blocks.0.hook_resid_pre", "blocks.2.hook_resid_pre")


def synth_sae(hook, seed):
    out = os.path.join(d, "sae-" + hook)
    r = subprocess.run([sl.BIN, "synth-sae", out, "--model", model_dir, "--hook", hook, "--d-sae", "48",
                        "--architecture", "topk", "--k", "6", "--seed", str(seed)], capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth-sae: " + r.stderr)
    return out


def run(hook, sae_dir):
    out = os.path.join(d, hook + ".nc")
    keys = dict(data__n_prompts=6, data__n_ctx=T, perturb__n_directions=2, perturb__steps=5, perturb__cov_prompts=40,
                perturb__hook=hook, readout__metrics="kl, sae_l0", output__bootstrap=0, sae__path=sae_dir,
                perturb__directions="sae_active, cov_random")
    ini = sl.write_ini(os.path.join(d, hook + ".ini"), sl.base_config(model_dir, data, out, **keys))
    r = sl.run([ini])
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (hook, r.stderr))
    return out


def merge(*args):
    return subprocess.run([sl.BIN, "merge"] + list(args), capture_output=True, text=True, env=sl.run_env(), timeout=300)


inputs = [run(h, synth_sae(h, seed)) for h, seed in zip(HOOKS, (2, 3))]
merged = os.path.join(d, "merged.nc")
r = merge(merged, *inputs)
if r.returncode != 0:
    sl.fail("merge of per-hook SAE runs: exit %d: %s" % (r.returncode, r.stderr))

with netCDF4.Dataset(merged) as m:
    for i, path in enumerate(inputs):
        with netCDF4.Dataset(path) as ds:
            for name in ("sae_path", "sae_sha256", "sae_hook", "sae_architecture", "read_hook"):
                got = m["hook_" + name][i]
                if got != ds.getncattr(name):
                    sl.fail("hook %d: hook_%s is %r, the input says %r" % (i, name, got, ds.getncattr(name)))
            for name in ("sae_features_never_active", "sae_d_sae", "sae_k", "synthetic_sae", "threads"):
                if int(m[name][i]) != int(ds.getncattr(name)):
                    sl.fail("hook %d: %s is %r, the input says %r" % (i, name, m[name][i], ds.getncattr(name)))
            if ds.getncattr("sae_hook") != HOOKS[i]:
                sl.fail("input %d: sae_hook %r" % (i, ds.getncattr("sae_hook")))
            kl = np.asarray(m["kl"][i])
            if not np.array_equal(kl, np.asarray(ds["kl"][:]), equal_nan=True):
                sl.fail("hook %d: merged kl differs from the input's" % i)
    # a per-hook attribute stays global only where every input has that value
    for a in (a for a in m.ncattrs() if a.startswith("sae_") or a in ("read_hook", "threads")):
        for path in inputs:
            with netCDF4.Dataset(path) as ds:
                if str(ds.getncattr(a)) != str(m.getncattr(a)):
                    sl.fail("global attribute %s = %r in the merge, %r in %s" % (a, m.getncattr(a), ds.getncattr(a), path))
    for a in ("sae_path", "sae_sha256", "sae_hook"):
        if a in m.ncattrs():
            sl.fail("global attribute %s (it differs between the hooks) left in the merge" % a)
print("ok merge of per-hook SAE runs: each hook's SAE path, sha256, hook, numbers and curves")

# A global attribute that is one value for the merged file but differs between inputs: refused. The
# copy's `title` is patched in place (same length; plateau's files cannot be reopened for writing, see
# the README's result file section).
bad = os.path.join(d, "bad.nc")
with open(inputs[1], "rb") as f:
    raw = f.read()
if raw.count(b"output sensitivity") != 1:
    sl.fail("the title text appears %d times in %s" % (raw.count(b"output sensitivity"), inputs[1]))
with open(bad, "wb") as g:
    g.write(raw.replace(b"output sensitivity", b"OUTPUT sensitivity"))
r = merge(os.path.join(d, "bad-merged.nc"), inputs[0], bad)
lines = r.stderr.strip().splitlines()
if r.returncode != 2 or len(lines) != 1 or "'title'" not in lines[0] or bad not in lines[0]:
    sl.fail("a differing shared attribute: exit %d, %r" % (r.returncode, r.stderr))
if os.path.exists(os.path.join(d, "bad-merged.nc")):
    sl.fail("the refused merge wrote its output")
print("ok a global attribute differing between inputs is refused by name:", lines[0])
print("SAE merge tests passed")
