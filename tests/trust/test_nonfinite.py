"""Issue 8, item 1: non-finite numbers never become data.

- NaN in an unused row of wte, Inf in ln_f.weight, NaN in a used weight: exit 2, one line, before any
  result is written (never "KL = 0", never a LAPACK message).
- a NaN row in a file: direction (.npy, .safetensors): exit 2 naming the file, row and column.
- logits that become non-finite during the sweep (finite but huge attention weights after the hook):
  [run] nonfinite = error (the default) stops the run naming the unit and alpha, on 1 and on 2 ranks;
  nonfinite = mark stores NaN for KL and JSD, leaves them out of every count (kl_count = 0, statistics
  NaN, scores NaN), while the finite L2 and cosine at the perturbed hook keep their full counts.
  The statistics are recomputed here with numpy from the stored curves.
- a model file rewritten in place during a run stops the run (exit 2, no output); the checkpoint holds
  only units computed before the change and is refused for the changed model.
"""
import os
import shutil
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "nonfinite")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 600, 250)  # token ids below 250: wte rows 250..299 are never used
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=6, perturb__steps=5, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "nf.ini"), cfg)


def broken_model(name, tensor, index, value):
    path = os.path.join(d, name)
    shutil.copytree(model, path)
    tl.poke_f32(os.path.join(path, "model.safetensors"), tensor, index, value)
    return path


def expect_refused(label, model_dir, *needles):
    text = tl.expect_error(label, tl.plateau(["run", ini, "--quiet", "--set", "model.path=" + model_dir]),
                           *needles)
    for bad in ("LAPACK", "eigendecomposition"):
        if bad in text:
            sl.fail("%s: the message is about %s, not about the non-finite value: %s" % (label, bad, text))
    if os.path.exists(out):
        sl.fail("%s: an output was written" % label)


C = 32
expect_refused("NaN in an unused row of wte", broken_model("nan_wte", "wte.weight", 299 * C + 5, float("nan")),
               "NaN")
expect_refused("Inf in ln_f.weight", broken_model("inf_lnf", "ln_f.weight", 3, float("inf")))
expect_refused("NaN in a used weight", broken_model("nan_fc", "h.0.mlp.c_fc.weight", 77, float("nan")), "NaN")

# file: directions with a non-finite entry
rows = np.random.default_rng(1).standard_normal((4, C)).astype(np.float32)
rows[2, 7] = np.nan
npy = os.path.join(d, "nan_rows.npy")
np.save(npy, rows)
tl.expect_error("NaN row in a file: .npy direction",
                tl.plateau(["run", ini, "--quiet", "--set", "perturb.directions=cov_random, file:" + npy]),
                "nan_rows.npy", "row 2, column 7", "NaN")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
from ref_gpt2 import write_safetensors  # noqa: E402

st = os.path.join(d, "inf_rows.safetensors")
rows[2, 7] = np.inf
write_safetensors(st, [("W_dec", "F32", rows)])
tl.expect_error("Inf in a file: .safetensors direction",
                tl.plateau(["run", ini, "--quiet", "--set", "perturb.directions=file:" + st]),
                "inf_rows.safetensors", "W_dec", "row 2, column 7", "infinite")

# Non-finite logits computed from finite weights: block 1's attention weights at float32's largest
# value overflow q.k in the sgemm (float accumulation) for every input. Perturbing at
# blocks.1.hook_resid_pre and reading l2/cosine there too, the reads stay finite.
huge = os.path.join(d, "huge_attn")
shutil.copytree(model, huge)
header, _ = tl.st_header(os.path.join(huge, "model.safetensors"))
n_attn = int(np.prod(header["h.1.attn.c_attn.weight"]["shape"]))
for i in range(n_attn):
    tl.poke_f32(os.path.join(huge, "model.safetensors"), "h.1.attn.c_attn.weight", i, 3.0e38)
args = ["run", ini, "--quiet", "--set", "model.path=" + huge, "--set", "readout.read_hook=blocks.1.hook_resid_pre"]
tl.expect_error("non-finite logits (nonfinite = error)", tl.plateau(args),
                "unit 0 (prompt 0, base real, direction real_other, sample 0), alpha = 0", "NaN",
                "[run] nonfinite = error")
if sl.shutil.which("mpirun"):
    tl.expect_error("non-finite logits on 2 ranks", tl.mpi(2, args), "alpha = 0", "[run] nonfinite = error",
                    one_line="plateau")
if os.path.exists(out):
    sl.fail("nonfinite = error wrote an output")

r = tl.plateau(args + ["--set", "run.nonfinite=mark"], timeout=120)
if r[0] != 0:
    sl.fail("nonfinite = mark: exit %s: %s" % (r[0], r[2]))
v = sl.variables(out)
P, S = 6, 2
for m in ("kl", "jsd"):
    if not np.isnan(v[m]).all():
        sl.fail("mark: %s has %d non-NaN values where every logit row is non-finite" % (m, np.sum(~np.isnan(v[m]))))
    if v[m + "_count"].any() or not np.isnan(v[m + "_mean"]).all() or not np.isnan(v[m + "_median"]).all():
        sl.fail("mark: %s counted or summarised: count max %d" % (m, v[m + "_count"].max()))
    for score in ("onset", "max_slope_alpha", "sharpness"):
        if not np.isnan(v["%s_%s" % (m, score)]).all():
            sl.fail("mark: %s_%s of a NaN curve is not NaN" % (m, score))
for m in ("l2", "cosine"):
    raw = v[m]  # (base, direction, prompt, sample, alpha)
    if not np.isfinite(raw).all():
        sl.fail("mark: %s at the perturbed hook has non-finite values" % m)
    flat = raw.reshape(raw.shape[0], raw.shape[1], P * S, raw.shape[-1])
    if (v[m + "_count"] != P * S).any():
        sl.fail("mark: %s_count is not the full %d" % (m, P * S))
    if not np.allclose(v[m + "_mean"], flat.astype(np.float64).mean(axis=2), rtol=1e-12, atol=0):
        sl.fail("mark: %s_mean differs from numpy's" % m)
    if not np.allclose(v[m + "_median"], np.median(flat.astype(np.float64), axis=2), rtol=1e-12, atol=0):
        sl.fail("mark: %s_median differs from numpy's" % m)
print("ok nonfinite = mark: KL and JSD stored as NaN and left out of every count; L2 and cosine counted in full")
os.unlink(out)

# A model rewritten in place while the sweep runs.
# ~300k evaluations (seconds): the first checkpoint (0.2 s) comes long before the end
big = sl.base_config(model, data, out, data__n_prompts=250, perturb__steps=101, run__checkpoint_every=0.2)
big_ini = sl.write_ini(os.path.join(d, "big.ini"), big)
moving = os.path.join(d, "moving")
shutil.copytree(model, moving)
ckpt = out + ".ckpt"
proc = sl.start([big_ini, "--set", "model.path=" + moving])
sl.wait_for(ckpt, proc)
weights = os.path.join(moving, "model.safetensors")
with open(weights, "r+b") as f:  # same size, same inode: one weight changes
    f.seek(-4, os.SEEK_END)
    f.write(b"\x00\x00\x80\x3f")
try:
    _, err = proc.communicate(timeout=60)
except sl.subprocess.TimeoutExpired:
    proc.kill()
    sl.fail("model rewritten in place: the run did not stop")
if proc.returncode != 2 or "changed" not in err or os.path.exists(out):
    sl.fail("model rewritten in place: exit %d, output %s: %s" % (proc.returncode, os.path.exists(out), err))
print("ok model rewritten in place: exit 2 (%s)" % [l for l in err.splitlines() if "changed" in l][0])
r = tl.plateau(["run", big_ini, "--resume", "--quiet", "--set", "model.path=" + moving], timeout=60)
tl.expect_error("resume with the changed model", r, "written for another model")
print("nonfinite tests passed")
