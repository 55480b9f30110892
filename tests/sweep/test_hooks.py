"""Sweeps at TransformerLens's other hook points end to end (issue 18, item 2): config -> plateau run ->
NetCDF opened by xarray, at attn.hook_z (Gemma 2 with H*head_dim = 64 != d_model = 32, and GPT-2) and
hook_mlp_out (after Gemma 2's post-feed-forward norm), read at ln_final.hook_normalized or a residual
hook. Checks, per run:
  * the file says the hook and read_hook, and activation / mu / sigma have the hook's width;
  * the stored real activations equal the independent numpy reference's TL hook
    (tests/core/ref_models.py, run_with_hooks) on the stored prompt tokens within 1e-4;
  * every metric's curves equal --naive's (one full forward patched at the hook per step, read with
    pl_read_at) within 1e-5 relative, as test_naive.py asks of the residual hooks;
  * at attn.hook_z, 2 and 3 MPI ranks write the same bits as 1 process.
And refusals by name through the config: hook_resid_mid on a parallel-residual GPT-NeoX,
ln_final.hook_normalized as [perturb] hook, a mid-block [readout] read_hook, residual_basis = centered
at attn.hook_z, an unknown site."""
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import sweeplib as sl  # noqa: E402
import ref_models  # noqa: E402

d = sl.workdir(sys.argv)


def synth(name, *extra):
    path = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth", path, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "32",
                        "--vocab", "300", "--seed", "2", "--force", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth %s: %s" % (name, r.stderr))
    return path


gemma = synth("gemma2", "--family", "gemma2", "--kv-heads", "2", "--head-dim", "16", "--tied")
gpt2 = sl.make_model(d, layers=2)
neox = synth("neox", "--family", "gpt_neox")
data = sl.make_bin(d, 8 * 300, 300)
import xarray as xr  # noqa: E402

cases = [(gemma, "blocks.1.attn.hook_z", "ln_final.hook_normalized", 64),
         (gemma, "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post", 32),
         (gpt2, "blocks.0.attn.hook_z", "blocks.0.hook_resid_pre", 32),
         (gpt2, "blocks.1.hook_mlp_out", "ln_final.hook_normalized", 32)]
for model, hook, read_hook, width in cases:
    label = "%s %s read %s" % (os.path.basename(model), hook, read_hook)
    fast, naive = os.path.join(d, "fast.nc"), os.path.join(d, "naive.nc")
    over = {"perturb__hook": hook, "readout__read_hook": read_hook, "perturb__cov_prompts": 100,
            "output__activations": "true", "output__bootstrap": 20}
    ini = sl.write_ini(os.path.join(d, "h.ini"), sl.base_config(model, data, fast, **over))
    for args in ([ini, "--quiet"], [ini, "--quiet", "--naive", "-o", naive]):
        r = sl.run(args)
        if r.returncode != 0:
            sl.fail("%s %s: %s" % (label, args, r.stderr))
    with xr.open_dataset(fast) as ds:
        if ds.attrs["hook"] != hook or ds.attrs["read_hook"] != read_hook:
            sl.fail("%s: file says hook %r, read_hook %r" % (label, ds.attrs["hook"], ds.attrs["read_hook"]))
        act, tokens, pos = ds["activation"].values, ds["tokens"].values, int(ds.attrs["position"])
        shapes = (act.shape[1], ds["mu"].shape[0], ds["sigma"].shape)
        if shapes != (width, width, (width, width)):
            sl.fail("%s: activation / mu / sigma widths %s, want %d" % (label, shapes, width))
    ref = ref_models.load(model)
    want = np.stack([ref.run_with_hooks(list(map(int, t)))[0][hook][pos] for t in tokens])
    err = float(np.abs(act - want).max())
    if not err <= 1e-4:
        sl.fail("%s: stored activations vs numpy TL hook: max|diff| %.3g" % (label, err))
    print("ok %s: activation [%d, %d] vs numpy max|diff| %.2g" % (label, act.shape[0], width, err))
    a, b = sl.variables(fast), sl.variables(naive)
    for m in ("kl", "jsd", "l2", "cosine"):
        x, y = a[m].astype(np.float64), b[m].astype(np.float64)
        floor = 1e-6 if m in ("kl", "jsd") else 1e-9
        scale = np.maximum(np.abs(y).max(axis=-1, keepdims=True), floor)
        err = (np.abs(x - y) / scale).max()
        if not err <= 1e-5:
            sl.fail("%s: %s fast vs naive relative error %.3g" % (label, m, err))
    print("ok %s: kl, jsd, l2, cosine fast == naive within 1e-5 relative" % label)
    if model == gemma and hook.endswith("attn.hook_z") and shutil.which("mpirun"):  # the new paths, any rank count
        for n in (2, 3):
            out_n = os.path.join(d, "fast-mpi%d.nc" % n)
            r = sl.run([ini, "--quiet", "-o", out_n], mpi=n)
            if r.returncode != 0:
                sl.fail("%s, %d ranks: exit %d: %s" % (label, n, r.returncode, r.stderr))
            bad = sl.same_bits(fast, out_n)
            if bad:
                sl.fail("%s: %d ranks differ from 1 process in %s" % (label, n, bad))
            print("ok %s: %d ranks bitwise identical to 1 process" % (label, n))

out = os.path.join(d, "refused.nc")
refusals = [(neox, {"perturb__hook": "blocks.1.hook_resid_mid"}, ["[perturb] hook", "blocks.1.hook_resid_mid",
                                                                  "parallel"]),
            (gpt2, {"perturb__hook": "ln_final.hook_normalized"}, ["[perturb] hook", "ln_final.hook_normalized",
                                                                   "readout"]),
            (gpt2, {"readout__read_hook": "blocks.1.hook_mlp_out"}, ["[readout] read_hook", "blocks.1.hook_mlp_out"]),
            (gemma, {"perturb__hook": "blocks.0.attn.hook_z", "perturb__residual_basis": "centered"},
             ["residual_basis", "blocks.0.attn.hook_z"]),
            # the Fisher metric runs at every hook point, one position or whole contexts (sweep_fisher_hooks,
            # sweep_fisher_contexts); whole contexts and the fit over every position at every hook (test_contexts.py)
            (gpt2, {"perturb__hook": "blocks.0.hook_mlp_in"}, ["[perturb] hook", "blocks.0.hook_mlp_in"])]
for model, over, needles in refusals:
    ini = sl.write_ini(os.path.join(d, "r.ini"), sl.base_config(model, data, out, **over))
    r = sl.run([ini, "--quiet"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    if r.returncode != 2 or len(lines) != 1 or not all(n in lines[0] for n in needles) or os.path.exists(out):
        sl.fail("%s: exit %d, stderr %r (want exit 2, one line with %s)" % (over, r.returncode, r.stderr, needles))
    print("ok refused %s: %s" % (over, lines[0]))
print("hook sweep tests passed")
