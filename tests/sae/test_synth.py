"""plateau synth-sae: a valid SAELens dir for each architecture, the same bytes for the same seed, the
documented initialisation (checked in numpy against the model's own activations), marked synthetic in
cfg.json and in the result of a sweep that uses it; command-line errors exit 1, bad input 2."""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
sys.path.insert(0, os.path.dirname(__file__))
import ref_sae  # noqa: E402
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2  # noqa: E402

d = sl.workdir(sys.argv)
C, HOOK = 32, "blocks.1.hook_resid_post"
model = sl.make_model(d, layers=2, embd=C, ctx=32)


def synth_sae(out, *args):
    return subprocess.run([sl.BIN, "synth-sae", out] + list(args), capture_output=True, text=True)


def read_bytes(p):
    return {f: open(os.path.join(p, f), "rb").read() for f in ("cfg.json", "sae_weights.safetensors")}


# the model's activations at the hook for the vocabulary's first 16 tokens: what the biases are scaled to
x = GPT2(model).forward(np.arange(16))[0][2]
mean, spread = x.mean(0), np.sqrt(((x - x.mean(0)) ** 2).mean())
for arch, extra in (("standard", []), ("jumprelu", []), ("topk", ["--k", "6"])):
    out = os.path.join(d, arch)
    r = synth_sae(out, "--model", model, "--hook", HOOK, "--d-sae", "64", "--architecture", arch, "--seed", "5", *extra)
    if r.returncode != 0:
        sl.fail("%s: %s" % (arch, r.stderr))
    cfg = json.load(open(os.path.join(out, "cfg.json")))
    want = {"architecture": arch, "d_in": C, "d_sae": 64, "hook_name": HOOK, "plateau_synthetic": True,
            "apply_b_dec_to_input": True, "normalize_activations": "none", "plateau_seed": 5}
    if arch == "topk":
        want.update(k=6, activation_fn_kwargs={"k": 6})
    for k, v in want.items():
        if cfg.get(k) != v:
            sl.fail("%s: cfg.json %s = %r, want %r" % (arch, k, cfg.get(k), v))
    s = ref_sae.SAE(out)
    norms = np.linalg.norm(s.W_dec, axis=1)
    if not np.allclose(norms, 1, atol=1e-6) or not np.array_equal(s.W_enc, s.W_dec.T):
        sl.fail("%s: decoder rows not unit norm or W_enc != W_dec^T" % arch)
    if not np.allclose(s.b_dec, mean, rtol=0, atol=1e-4 * np.abs(mean).max()):
        sl.fail("%s: b_dec is not the mean activation at the hook" % arch)
    if not (np.all(s.b_enc <= 0) and np.all(s.b_enc > -spread * (1 + 1e-4))):
        sl.fail("%s: b_enc outside [-s, 0] (s = %g): %s" % (arch, spread, s.b_enc[:5]))
    if arch == "jumprelu" and not (np.all(s.threshold >= 0) and np.all(s.threshold < 0.5 * spread * (1 + 1e-4))):
        sl.fail("jumprelu: thresholds outside [0, s/2]")
    again = os.path.join(d, arch + "-again")
    synth_sae(again, "--model", model, "--hook", HOOK, "--d-sae", "64", "--architecture", arch, "--seed", "5", *extra)
    if read_bytes(out) != read_bytes(again):
        sl.fail("%s: the same seed gave other bytes" % arch)
    other = os.path.join(d, arch + "-other")
    synth_sae(other, "--model", model, "--hook", HOOK, "--d-sae", "64", "--architecture", arch, "--seed", "6", *extra)
    if read_bytes(out)["sae_weights.safetensors"] == read_bytes(other)["sae_weights.safetensors"]:
        sl.fail("%s: another seed gave the same weights" % arch)
    print("ok %s: cfg.json, unit decoder rows, W_enc = W_dec^T, biases scaled to the hook, seeded bytes" % arch)

# a sweep with it says so. The SAE names its hook blocks.0.hook_resid_post, the sweep perturbs
# blocks.1.hook_resid_pre: the same residual, so they agree
sae = os.path.join(d, "for-run")
r = synth_sae(sae, "--model", model, "--hook", "blocks.0.hook_resid_post", "--d-sae", "48")
if r.returncode != 0:
    sl.fail("synth-sae blocks.0.hook_resid_post: " + r.stderr)
data = sl.make_bin(d, 8 * 80, 300)
cfg = sl.base_config(model, data, os.path.join(d, "run.nc"), data__n_prompts=4, perturb__cov_prompts=30,
                     perturb__bases="real", perturb__directions="sae_active", perturb__steps=3,
                     perturb__n_directions=1, sae__path=sae, output__bootstrap=0,
                     readout__metrics="kl, sae_l0")
r = sl.run([sl.write_ini(os.path.join(d, "run.ini"), cfg), "--quiet"])
if r.returncode != 0:
    sl.fail("sweep with the synthetic SAE (its hook blocks.0.hook_resid_post = [perturb] hook "
            "blocks.1.hook_resid_pre): " + r.stderr)
import netCDF4  # noqa: E402

with netCDF4.Dataset(os.path.join(d, "run.nc")) as ds:
    if ds.getncattr("synthetic_sae") != 1 or ds.getncattr("sae_hook") != "blocks.0.hook_resid_post":
        sl.fail("result attributes: synthetic_sae %r, sae_hook %r" % (ds.getncattr("synthetic_sae"),
                                                                       ds.getncattr("sae_hook")))
print("ok a sweep with it: synthetic_sae = true; an SAE of blocks.0.hook_resid_post serves blocks.1.hook_resid_pre")

# errors
for label, args, code, pattern in (
        ("no hook", ["--model", model, "--d-sae", "8"], 1, "OUT_DIR, --model, --hook and --d-sae are required"),
        ("bad architecture", ["--model", model, "--hook", HOOK, "--d-sae", "8", "--architecture", "gated"], 1,
         "--architecture: 'gated' is not standard, jumprelu or topk"),
        ("k without topk", ["--model", model, "--hook", HOOK, "--d-sae", "8", "--k", "2"], 1,
         "--k is for --architecture topk"),
        ("d-sae 0", ["--model", model, "--hook", HOOK, "--d-sae", "0"], 1, "--d-sae: '0' is not an integer"),
        ("k > d-sae", ["--model", model, "--hook", HOOK, "--d-sae", "8", "--architecture", "topk", "--k", "9"], 2,
         "plateau: synth-sae: --k 9 is more than --d-sae 8"),
        ("bad hook", ["--model", model, "--hook", "blocks.7.hook_resid_pre", "--d-sae", "8"], 2,
         "plateau: synth-sae: --hook: hook 'blocks.7.hook_resid_pre': block 7 does not exist"),
        ("no model", ["--model", os.path.join(d, "none"), "--hook", HOOK, "--d-sae", "8"], 2, "cannot open model")):
    r = synth_sae(os.path.join(d, "err"), *args)
    if r.returncode != code or pattern not in r.stderr:
        sl.fail("%s: want exit %d and %r, got %d: %s" % (label, code, pattern, r.returncode, r.stderr))
    print("ok %s: exit %d" % (label, code))
print("synth-sae tests passed")
