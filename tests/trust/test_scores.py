"""Issue 20, item 6: the scores of a flat curve are NaN, and a non-finite metric from finite inputs is
caught by [run] nonfinite.

- a zero direction (file: rows of zeros) and a direction too small to move a float32 step (1e-30, to_target):
  every step vector is the base bit for bit, so every curve is exactly the base's (KL, JSD, L2 = 0, cosine
  = its value at alpha = 0), and every score of every metric is NaN (the follow-ups: a flat curve has no
  onset or sharpness); a random direction beside it keeps finite scores.
- a direction with entries near 3e38 (to_target): L2 at the perturbed hook exceeds float32's range. Under
  [run] nonfinite = error the run stops (exit 2) naming the unit, alpha and metric; under mark those values
  are NaN (never +inf), left out of l2_count, and every other value equals an independent numpy L2 of the
  same step vectors (the hook is the read hook: L2 = |x_k - x_0| of the steps themselves).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "scores")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 600, 250)
out = os.path.join(d, "out.nc")
C, P, S, K = 32, 6, 2, 11
cfg = sl.base_config(model, data, out, data__n_prompts=P, perturb__steps=K, perturb__cov_prompts=40,
                     perturb__bases="real", perturb__n_directions=S, readout__metrics="kl, jsd, l2, cosine")
ini = sl.write_ini(os.path.join(d, "scores.ini"), cfg)
SCORES = ("onset", "max_slope_alpha", "sharpness", "nonlinearity_alpha")


def npy(name, rows):
    path = os.path.join(d, name)
    np.save(path, np.asarray(rows, np.float32))
    return path


def run(*sets):
    args = ["run", ini, "--quiet"]
    for s in sets:
        args += ["--set", s]
    return tl.plateau(args, timeout=120)


for label, rows in (("zero direction", np.zeros((S, C))), ("1e-30 direction", np.full((S, C), 1e-30))):
    path = npy(label.split()[0] + ".npy", rows)
    r = run("perturb.directions=file:%s, cov_random" % path)
    if r[0] != 0:
        sl.fail("%s: exit %s: %s" % (label, r[0], r[2]))
    v = sl.variables(out)
    for m in ("kl", "jsd", "l2", "cosine"):
        curve = v[m][0, 0]  # (prompt, sample, alpha) of the file: direction
        if not (curve == curve[..., :1]).all():
            sl.fail("%s: %s curve is not the base's value at every alpha: max |c - c0| %g"
                    % (label, m, np.abs(curve - curve[..., :1]).max()))
        if m != "cosine" and (curve != 0).any():
            sl.fail("%s: %s is not 0" % (label, m))
        for s in SCORES:
            if s == "nonlinearity_alpha" and m in ("kl", "jsd", "cosine"):  # quadratic near 0: not written
                if "%s_%s" % (m, s) in v:
                    sl.fail("%s: %s_%s written for a metric quadratic near 0" % (label, m, s))
                continue
            sc = v["%s_%s" % (m, s)]
            if not np.isnan(sc[0, 0]).all():
                sl.fail("%s: %s_%s of a flat curve is finite on %d of %d curves: %s"
                        % (label, m, s, np.isfinite(sc[0, 0]).sum(), sc[0, 0].size, sc[0, 0]))
            # defined: a value, or censored (+inf: max_slope_alpha of a curve still rising at the grid's end)
            if s in ("onset", "max_slope_alpha") and m != "cosine" and np.isnan(sc[0, 1]).any():
                sl.fail("%s: %s_%s of the random direction is undefined: %s" % (label, m, s, sc[0, 1]))
    os.unlink(out)
    print("ok %s: every curve flat at the base's value, every score NaN, the random direction's defined" % label)

huge = npy("huge.npy", np.full((S, C), 3.0e38))
tl.expect_error("l2 beyond float32 (nonfinite = error)", run("perturb.directions=file:" + huge),
                "direction file:huge.npy", "metric l2 is +inf", "[run] nonfinite = error")
if os.path.exists(out):
    sl.fail("nonfinite = error wrote an output")
r = run("perturb.directions=file:" + huge, "run.nonfinite=mark")
if r[0] != 0:
    sl.fail("l2 beyond float32 (mark): exit %s: %s" % (r[0], r[2]))
v = sl.variables(out)
l2 = v["l2"][0, 0]  # (prompt, sample, alpha)
if np.isinf(l2).any():
    sl.fail("mark: l2 holds %d infinities" % np.isinf(l2).sum())
alpha = v["alpha"]
# to_target: x_k = base + alpha_k d, so |x_k - x_0| = alpha_k |d| (float32 steps, as plateau forms them)
base = np.zeros(C, np.float32)
ref = np.array([np.linalg.norm((base + np.float32(a) * np.full(C, np.float32(3.0e38))).astype(np.float64) - base)
                for a in alpha])
want_nan = ref > np.finfo(np.float32).max
if not want_nan.any() or want_nan.all():
    sl.fail("the test's direction does not straddle float32's range: %s" % ref)
for p in range(P):
    for s in range(S):
        if not (np.isnan(l2[p, s]) == want_nan).all():
            sl.fail("mark: l2 NaN at %s, want NaN exactly where |x_k - x_0| > FLT_MAX (%s)"
                    % (np.isnan(l2[p, s]).astype(int), want_nan.astype(int)))
        got = l2[p, s][~want_nan].astype(np.float64)
        if not np.allclose(got, ref[~want_nan], rtol=1e-5, atol=0):
            sl.fail("mark: finite l2 %s differs from numpy's %s" % (got, ref[~want_nan]))
if (v["l2_count"][0, 0] != P * S * (~want_nan)).any():
    sl.fail("mark: l2_count %s, want %d where finite" % (v["l2_count"][0, 0], P * S))
print("ok l2 beyond float32: exit 2 under error; NaN (not +inf) under mark, uncounted, the rest equal numpy's")

# The SAE's readout: steps of alternating +-3e38 overflow the SAE's float32 encoding (inf - inf = NaN), where
# counting the features "> 0" would give a finite, wrong L0.
sae = os.path.join(d, "sae")
r = tl.plateau(["synth-sae", sae, "--model", model, "--hook", "blocks.1.hook_resid_pre", "--d-sae", "16"])
if r[0] != 0:
    sl.fail("synth-sae: " + r[2])
alt = np.full((S, C), 3.0e38)
alt[:, ::2] *= -1
alt = npy("alt.npy", alt)
sae_args = ("sae.path=" + sae, "readout.metrics=sae_l0", "perturb.directions=file:" + alt)
tl.expect_error("SAE readout overflow (nonfinite = error)", run(*sae_args), "metric sae_l0 is NaN",
                "[run] nonfinite = error")
r = run(*(sae_args + ("run.nonfinite=mark",)))
if r[0] != 0:
    sl.fail("SAE readout overflow (mark): exit %s: %s" % (r[0], r[2]))
l0 = sl.variables(out)["sae_l0"][0, 0]
if not np.isnan(l0).any() or not np.isfinite(l0[..., 0]).all() or (l0[np.isfinite(l0)] % 1).any():
    sl.fail("mark: sae_l0 should be NaN where the encoding overflowed, whole counts elsewhere: %s" % l0[0, 0])
print("ok SAE readout overflow: exit 2 under error; NaN under mark (%d of %d values), counts elsewhere"
      % (np.isnan(l0).sum(), l0.size))
print("scores tests passed")
