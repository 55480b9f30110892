"""Issue 18, items 4-6: the scores as their sources' code defines them, against numpy re-implementations
of those definitions (reference.py: teren_nl_index, giglemiani_nl_index, max_space_ratio_index), on
the raw curves of a small sweep.

- `nonlinearity_rule = teren`: teren's NL_step (line through steps start_step - 1 and end_step - 1, the
  deviation divided by the line's signed value), censored (+inf) where teren returns n;
- `auc` (np.trapz over the step index), `max_space_ratio_alpha` (teren's argmax from list position 5,
  censored at the last index the rule can return), Giglemiani's `plateau_length` (first alpha where
  l2 >= plateau_threshold) and `giglemiani_nl_alpha` (20 %, returning i - 1);
- the NL scores are not written for kl, jsd and cosine (quadratic near alpha = 0) and are for js_dist
  and l2; every censored score is counted in `<m>_<s>_n_censored`;
- `nonlinearity = 0, ...` under the teren rule is refused (exit 2, naming the key).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 200, 300)
out = os.path.join(d, "rules.nc")
# steps 21 (alpha 0, 0.05, ... 1); the plateau threshold in the synthetic model's l2 units, so that
# some curves cross it and some do not
cfg = sl.base_config(model, data, out, data__n_prompts=8, perturb__steps=21, output__bootstrap=0,
                     readout__metrics="kl, jsd, l2, cosine, js_dist", readout__nonlinearity_rule="teren",
                     readout__nonlinearity="1, 10, 0.1", readout__plateau_threshold="PLACEHOLDER",
                     perturb__directions="real_other, cov_random, isotropic")
probe = dict(cfg)
probe["readout"] = dict(cfg["readout"], plateau_threshold="none")
r = sl.run([sl.write_ini(os.path.join(d, "probe.ini"), probe), "--quiet"])
if r.returncode != 0:
    sl.fail("probe sweep: " + r.stderr)
f = sl.variables(out)
if "l2_plateau_length" in f:
    sl.fail("plateau_threshold = none still wrote l2_plateau_length")
l2 = f["l2"].astype(np.float64)
thr = float(np.median(l2[..., -1]))  # about half the curves reach it by the grid's end
cfg["readout"]["plateau_threshold"] = repr(thr)
r = sl.run([sl.write_ini(os.path.join(d, "rules.ini"), cfg), "--quiet"])
if r.returncode != 0:
    sl.fail("sweep: " + r.stderr)
f = sl.variables(out)
alpha = f["alpha"]
S = len(alpha)
counts = {}
for m in ("kl", "jsd", "l2", "cosine", "js_dist"):
    raw = f[m].astype(np.float64)
    y = ref.score_curve(m, raw)
    for sc in ref.SCORES:
        name = "%s_%s" % (m, sc)
        if not ref.has_score(m, sc, {"kl": 0.01, "cosine": 0.01, "js_dist": 0.1}.get(m), thr):
            if name in f:
                sl.fail("%s written: an NL score on a metric quadratic near 0, or plateau_length off l2" % name)
            continue
        if name not in f:
            sl.fail("%s missing" % name)
        got = f[name].astype(np.float64)
        want = np.full(got.shape, np.nan)
        for i in np.ndindex(*got.shape):
            want[i] = ref.scores(y[i], alpha, 0.1, {"kl": 0.01, "cosine": 0.01, "js_dist": 0.1}.get(m),
                                 nl=(1, 10, 0.1), rule="teren", plateau_threshold=thr, gig_tol=0.2)[sc]
        if not np.array_equal(np.isinf(got), np.isinf(want)) or not np.array_equal(np.isnan(got), np.isnan(want)):
            i = tuple(np.argwhere((np.isinf(got) != np.isinf(want)) | (np.isnan(got) != np.isnan(want)))[0])
            sl.fail("%s at %s: %r, numpy %r (curve %s)" % (name, i, got[i], want[i], y[i]))
        fin = np.isfinite(want)
        if not np.allclose(got[fin], want[fin], rtol=1e-12, atol=1e-12):
            i = tuple(np.argwhere(fin & ~np.isclose(got, want, rtol=1e-12, atol=1e-12))[0])
            sl.fail("%s at %s: %r, numpy %r (curve %s)" % (name, i, got[i], want[i], y[i]))
        n_cens = np.isinf(got).reshape(got.shape[0], got.shape[1], -1).sum(2)
        if not np.array_equal(n_cens, f[name + "_n_censored"]):
            sl.fail("%s_n_censored %s, want %s" % (name, f[name + "_n_censored"], n_cens))
        c = counts.setdefault(sc, [0, 0])
        c[0] += int(fin.sum())
        c[1] += int(np.isinf(got).sum())
for sc in ("nonlinearity_alpha", "plateau_length", "giglemiani_nl_alpha", "max_slope_alpha"):
    if counts[sc][0] == 0 or counts[sc][1] == 0:
        sl.fail("%s: %d measured, %d censored: both must be exercised" % (sc, *counts[sc]))
print("ok scores of kl, jsd, l2, cosine, js_dist under the teren rule match numpy (measured/censored: %s)"
      % ", ".join("%s %d/%d" % (k, *v) for k, v in counts.items()))

# teren's start_step counts from 1: first = 0 is refused, naming the key
bad = dict(cfg)
bad["readout"] = dict(cfg["readout"], nonlinearity="0, 9, 0.1")
r = sl.run([sl.write_ini(os.path.join(d, "bad.ini"), bad), "--quiet", "-o", os.path.join(d, "bad.nc")])
if r.returncode != 2 or "[readout] nonlinearity" not in r.stderr or "teren" not in r.stderr:
    sl.fail("first = 0 under the teren rule: exit %d, %r" % (r.returncode, r.stderr))
print("ok nonlinearity = 0, 9, 0.1 under nonlinearity_rule = teren: exit 2 naming the key")
print("score rule tests passed")
