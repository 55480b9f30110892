"""plateau merge against files written here with netCDF4 (make_result.py) and read back with xarray.

usage: PLATEAU_BIN=build/plateau /usr/bin/python3 tests/cluster/test_merge.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import xarray as xr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_result import config_text, write_result  # noqa: E402

PLATEAU = os.environ.get("PLATEAU_BIN", "build/plateau")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def merge(*args):
    p = subprocess.run([PLATEAU, "merge", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr.strip()


def expect_refusal(name, out, inputs, *needles, code=2):
    rc, err = merge(out, *inputs)
    check(rc == code, f"{name}: exit {rc}, expected {code} ({err})")
    lines = [l for l in err.splitlines() if l]
    check(len(lines) == 1, f"{name}: expected a one-line message, got {lines}")
    for n in needles:
        check(n in err, f"{name}: message lacks {n!r}: {err}")
    outdir = os.path.dirname(out) or "."
    leftovers = [f for f in os.listdir(outdir) if ".tmp" in f] if os.path.isdir(outdir) else []
    check(not leftovers, f"{name}: temporary files left: {leftovers}")
    print(f"ok   {name}: {err}")
    return err


def real_outputs(d):
    """Merge what `plateau run` really writes: two hooks of a tiny synthetic model (no ../shared)."""
    model = os.path.join(d, "model")
    r = subprocess.run([PLATEAU, "synth", model, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16",
                        "--vocab", "300"], capture_output=True, text=True)
    if r.returncode != 0:
        check(False, "plateau synth: " + r.stderr)
        return
    tokens = os.path.join(d, "tokens.bin")
    np.random.default_rng(0).integers(0, 300, 8 * 200).astype("<u2").tofile(tokens)
    ini = os.path.join(d, "real.ini")
    with open(ini, "w") as f:
        f.write(f"[model]\npath = {model}\n[data]\nprompts = {tokens}\nn_prompts = 4\nn_ctx = 8\n"
                "[perturb]\nbases = real, synthetic\ndirections = real_other, isotropic\nsteps = 5\n"
                "cov_prompts = 40\n[readout]\nmetrics = kl, cosine\n")
    # Open MPI's own allocations would fail a leak-checking (ASan) build at exit: not ours to judge here.
    env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":"))
    outs = []
    for i, extra in enumerate([[], [], ["--set", "data.seed=4"]]):
        out = os.path.join(d, f"real.hook{i}.nc")
        hook = f"blocks.{min(i, 1)}.hook_resid_pre"
        r = subprocess.run([PLATEAU, "run", ini, "--quiet", "--set", f"perturb.hook={hook}", "-o", out, *extra],
                           capture_output=True, text=True, env=env, timeout=300)
        if r.returncode != 0:
            check(False, f"plateau run (hook {hook}): exit {r.returncode}: {r.stderr}")
            return
        outs.append(out)
    merged = os.path.join(d, "real.nc")
    rc, err = merge(merged, outs[0], outs[1])
    check(rc == 0, f"merge of real outputs: exit {rc}: {err}")
    if rc == 0:
        with xr.open_dataset(merged) as m, xr.open_dataset(outs[0]) as a, xr.open_dataset(outs[1]) as b:
            check(list(m["hook"].values) == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"], "real: hooks")
            for name in a.data_vars:
                if "hook" in m[name].dims:
                    for h, s in enumerate((a, b)):
                        check(m[name].isel(hook=h).values.tobytes() == s[name].values.tobytes(),
                              f"real: {name} hook {h}")
                else:
                    check(name in ("tokens", "partner", "prompt_text") and np.array_equal(m[name].values, a[name].values),
                          f"real: {name} written once but not provenance or not equal")
            check(not np.array_equal(a["kl"].values, b["kl"].values), "real: two hooks gave identical curves")
        print("ok   merge of two real plateau outputs (hooks blocks.0 and blocks.1)")
    # The third run used another data seed at blocks.1: besides the hook, [data] seed differs.
    expect_refusal("real outputs with another data seed", os.path.join(d, "real-bad.nc"), [outs[0], outs[2]],
                   "[data] seed", "'4'", outs[2])


def main():
    d = tempfile.mkdtemp(prefix="plateau-merge-")
    hooks = [f"blocks.{i}.hook_resid_pre" for i in (2, 0, 1)]  # deliberately not sorted
    ins = []
    for i, h in enumerate(hooks):
        p = os.path.join(d, f"sweep.hook{i}.nc")
        # Run-only keys differ per array task and must not block the merge.
        write_result(p, hook=h, seed=10 + i, config_overrides={
            ("output", "path"): p, ("run", "checkpoint"): p + ".ckpt", ("run", "worker_timeout"): str(5 + i),
            ("model", "path"): f"/somewhere/{i}/models/smoke"})
        ins.append(p)
    out = os.path.join(d, "sweep.nc")

    # --- a good merge -------------------------------------------------------------------------
    rc, err = merge(out, *ins)
    check(rc == 0, f"merge of 3 files: exit {rc}: {err}")
    if rc == 0:
        m = xr.open_dataset(out)
        srcs = [xr.open_dataset(p) for p in ins]
        check(list(m["hook"].values) == hooks, f"hook coordinate {list(m['hook'].values)} != {hooks}")
        check(m.sizes["hook"] == 3, "hook dimension length")
        check(m.attrs.get("swept_key") == "perturb.hook", f"swept_key = {m.attrs.get('swept_key')!r}")
        check("hook" not in m.attrs, "merged file must not keep a single 'hook' attribute")
        check(m.attrs.get("config") == srcs[0].attrs["config"], "config attribute is the first input's")
        check(m.attrs.get("merged_from", "").split("\n") == ins, f"merged_from = {m.attrs.get('merged_from')!r}")
        for k in ("Conventions", "title", "model_path", "model_sha256", "synthetic_model", "read_hook", "n_prompts",
                  "plateau_version"):
            check(k in m.attrs and str(m.attrs[k]) == str(srcs[0].attrs[k]), f"global attribute {k} kept")
        check("created" in m.attrs, "created attribute")
        np.testing.assert_array_equal(m["n_ranks"].values, [s.attrs["n_ranks"] for s in srcs])
        np.testing.assert_array_equal(m["evals_per_second"].values, [s.attrs["evals_per_second"] for s in srcs])
        for name in srcs[0].variables:
            v, s0 = m[name], srcs[0][name]
            if name in srcs[0].dims or name in ("tokens", "partner"):
                check(v.dims == s0.dims, f"{name}: dims {v.dims} != {s0.dims} (written once)")
                check(np.array_equal(v.values, s0.values), f"{name}: values")
            else:
                check(v.dims == ("hook",) + s0.dims, f"{name}: dims {v.dims}, expected hook + {s0.dims}")
                check(v.dtype == s0.dtype, f"{name}: dtype {v.dtype} != {s0.dtype}")
                for h, s in enumerate(srcs):
                    # Bitwise: the merge copies, it does not compute.
                    a, b = v.isel(hook=h).values, s[name].values
                    check(a.tobytes() == b.tobytes(), f"{name}: hook {h} differs from {ins[h]}")
            for att in ("long_name", "units"):
                if att in s0.attrs:
                    check(v.attrs.get(att) == s0.attrs[att], f"{name}: attribute {att} not kept")
        m.close()
        for s in srcs:
            s.close()
        print("ok   merge of 3 files: values, coordinates, attributes")

    # A single file is a merge of one hook.
    one = os.path.join(d, "one.nc")
    rc, err = merge(one, ins[0])
    check(rc == 0, f"merge of 1 file: exit {rc}: {err}")
    if rc == 0:
        with xr.open_dataset(one) as m:
            check(list(m["hook"].values) == hooks[:1] and m["kl"].dims[0] == "hook", "merge of 1 file: hook dimension")

    # Prompts that differ between files of one config (the prompts file regenerated between the array's
    # tasks): not one experiment at several hooks, refused naming both files.
    t0, t1 = os.path.join(d, "tok0.nc"), os.path.join(d, "tok1.nc")
    write_result(t0, hook="blocks.0.hook_resid_pre", tokens_seed=1)
    write_result(t1, hook="blocks.1.hook_resid_pre", tokens_seed=2)
    tok = os.path.join(d, "tok.nc")
    rc, err = merge(tok, t0, t1)
    check(rc == 2 and f"{t1}: its prompts' token ids differ from {t0}'s" in err and not os.path.exists(tok),
          f"merge with different tokens: exit {rc}, want 2 naming both files: {err}")

    # --- refusals -----------------------------------------------------------------------------
    # An existing output must survive every failed merge untouched.
    keep = os.path.join(d, "keep.nc")
    with open(keep, "wb") as f:
        f.write(b"previous result")

    bad = os.path.join(d, "seed5.nc")
    write_result(bad, hook="blocks.3.hook_resid_pre", config_overrides={("data", "seed"): "5"})
    expect_refusal("config differs in another key", keep, [ins[0], ins[1], bad],
                   "[data] seed", "'0'", "'5'", ins[0], bad, "[perturb] hook")

    dup = os.path.join(d, "dup.nc")
    write_result(dup, hook=hooks[0], config_overrides={("data", "seed"): "9"})
    expect_refusal("same hook twice", keep, [ins[0], dup], "both have hook", hooks[0], "data.seed")

    missing_key = os.path.join(d, "nokey.nc")
    write_result(missing_key, hook="blocks.4.hook_resid_pre", config_overrides={("readout", "onset_threshold"): None})
    expect_refusal("key absent in one file", keep, [ins[0], missing_key], "[readout] onset_threshold", "(absent)")

    dims = os.path.join(d, "dims.nc")
    write_result(dims, hook="blocks.5.hook_resid_pre", prompts=5)
    expect_refusal("dimension length differs", keep, [ins[0], dims], "dimension 'prompt'", "5", "4", dims)

    extra = os.path.join(d, "extra.nc")
    write_result(extra, hook="blocks.6.hook_resid_pre", extra_variable="surprise")
    expect_refusal("extra variable", keep, [ins[0], extra], "surprise", extra)
    expect_refusal("missing variable", keep, [extra, ins[0]], "surprise", ins[0])

    metrics = os.path.join(d, "metrics.nc")
    write_result(metrics, hook="blocks.7.hook_resid_pre", metrics=("kl", "jsd", "l2"))
    expect_refusal("metric missing (config equal)", keep, [ins[0], metrics], "cosine")

    alpha = os.path.join(d, "alpha.nc")
    write_result(alpha, hook="blocks.8.hook_resid_pre", alpha_max=0.5)
    expect_refusal("coordinate values differ", keep, [ins[0], alpha], "coordinate 'alpha'")

    model = os.path.join(d, "model.nc")
    write_result(model, hook="blocks.9.hook_resid_pre", model_sha256="cd" * 32)
    expect_refusal("other model", keep, [ins[0], model], "model_sha256", model)
    # the same weights under another config.json: another model too; a file without the hash (older) is not refused
    cfg_a, cfg_b = os.path.join(d, "cfg_a.nc"), os.path.join(d, "cfg_b.nc")
    write_result(cfg_a, hook="blocks.10.hook_resid_pre", model_config_sha256="01" * 32)
    write_result(cfg_b, hook="blocks.11.hook_resid_pre", model_config_sha256="02" * 32)
    expect_refusal("other config.json", keep, [cfg_a, cfg_b], "model_config_sha256 differs", "config.json", cfg_b)
    rc, err = merge(os.path.join(d, "cfg_old.nc"), cfg_a, ins[0])
    check(rc == 0, f"a file with model_config_sha256 beside one without (older): exit {rc} ({err})")

    expect_refusal("already merged input", keep, [out, ins[0]], "already has a 'hook' dimension", out)
    expect_refusal("not NetCDF", os.path.join(d, "x.nc"), [keep], keep, "cannot open")
    expect_refusal("missing input", os.path.join(d, "x.nc"), [os.path.join(d, "nope.nc")], "nope.nc")
    expect_refusal("output is an input", ins[1], [ins[0], ins[1]], "also input 2")
    expect_refusal("input twice", os.path.join(d, "x.nc"), [ins[0], ins[0]], "given twice")
    expect_refusal("output directory missing", os.path.join(d, "no", "such", "dir", "o.nc"), ins[:2],
                   "its directory", "does not exist")
    noattr = os.path.join(d, "noattr.nc")
    import netCDF4
    with netCDF4.Dataset(noattr, "w") as nc:
        nc.createDimension("alpha", 3)
        nc.config = config_text({})
    expect_refusal("no hook attribute", os.path.join(d, "x.nc"), [noattr], "'hook' is missing", noattr)

    with open(keep, "rb") as f:
        check(f.read() == b"previous result", "an existing output was modified by a failed merge")
    check(not os.path.exists(os.path.join(d, "x.nc")), "a failed merge created its output")

    rc, err = merge()
    check(rc == 1 and "usage" in err, f"no arguments: exit {rc}: {err}")
    rc, err = merge(out)
    check(rc == 1 and "usage" in err, f"one argument: exit {rc}: {err}")
    rc, err = merge("--bogus", out, ins[0])
    check(rc == 1 and "--bogus" in err, f"unknown option: exit {rc}: {err}")

    real_outputs(d)

    if failures:
        print(f"{len(failures)} failure(s); files kept in {d}")
        return 1
    shutil.rmtree(d)
    print("all merge checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
