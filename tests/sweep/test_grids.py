"""Alpha grids and step lengths against an independent numpy implementation (tests/sweep/reference.py).

Issue 18, item 3: explicit grids (`[perturb] alphas`, 0 prepended as the clean reference), the
presets from their sources (Lee & Heimersheim's lengths, teren's [0, pi] with 361 steps), log-spaced
grids, `norm_scale` (teren's |x|/3 branch) and `step_reference = real` (a synthetic base moved by its
real pair's norm). Each sweep's grid is compared with numpy's (ref.alpha_grid), every curve of three
prompts is recomputed with numpy steps and tests/core/ref_gpt2.py, and the per-curve scores on the
non-uniform grids are recomputed from the raw curves (ref.scores).
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2, log_softmax  # noqa: E402

d = sl.workdir(sys.argv)
V, C, T = 300, 32, 8
model_dir = sl.make_model(d, layers=3, embd=C, vocab=V)
data = sl.make_bin(d, T * 120, V, seed=4)
P, S, COV, SEED, DATA_SEED = 12, 2, 60, 5, 3
model = GPT2(model_dir)
NL = (1, 3, 0.1)

tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
docs = [list(tokens_all[w * T:(w + 1) * T]) + ([int(tokens_all[(w + 1) * T])] if (w + 1) * T < len(tokens_all)
                                                else []) for w in range(len(tokens_all) // T)]
windows, _, _, _ = ref.select_document_start(docs, T, P + COV, DATA_SEED)
acts = np.array([model.forward(w)[0][1][T - 1] for w in windows])  # blocks.1.hook_resid_pre, last position
real, fit = acts[:P], ref.Fit(acts[P:], False)


def config(name, **over):
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S,
                perturb__cov_prompts=COV, run__seed=SEED, perturb__hook="blocks.1.hook_resid_pre",
                perturb__bases="real, synthetic", perturb__directions="cov_random, isotropic",
                readout__read_hook="blocks.2.hook_resid_post", readout__metrics="kl, l2",
                readout__onset_threshold=0.2, readout__nonlinearity="%d, %d, %g" % NL,
                readout__thresholds="kl:0.002, l2:0.5", output__bootstrap=0)
    keys.update(over)
    cfg = sl.base_config(model_dir, data, os.path.join(d, name + ".nc"),
                         **{k: v for k, v in keys.items() if v is not None})
    for k in (k for k, v in keys.items() if v is None):  # left out: the config's default (or derived)
        sec, key = k.split("__")
        cfg[sec].pop(key, None)
    return sl.write_ini(os.path.join(d, name + ".ini"), cfg)


def run(name, **over):
    r = sl.run([config(name, **over), "--quiet"])
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (name, r.stderr))
    return sl.variables(os.path.join(d, name + ".nc"))


def check_curves(label, f, alpha, mode, norm_scale=1.0, step_reference="own"):
    """Every curve of prompts 0, 5, 11 against numpy steps on numpy's grid ALPHA."""
    worst, part = {}, None
    if "real_other" in f["direction"]:
        part, _ = ref.partners(real.astype(np.float32), SEED, P, S)
        if not np.array_equal(part, f["partner"]):
            sl.fail("%s: partners differ from numpy's" % label)
    for p in (0, 5, 11):
        for bi, b in enumerate(f["base"]):
            for di, dn in enumerate(f["direction"]):
                for s in range(S):
                    base = ref.base_vector(b, p, s, real, fit, SEED)
                    dvec = ref.raw_direction(dn, p, s, base, real, fit, SEED, part)
                    r = real[p].astype(np.float32).astype(np.float64) if step_reference == "real" else None
                    X = ref.steps(mode, base, dvec, alpha, False, norm_scale, fit.mu if mode == "arc" else r)
                    logp, reads = [], []
                    for x in X:
                        resid, logits = model.forward(f["tokens"][p], patch=(1, T - 1, x))
                        logp.append(log_softmax(logits[T - 1]))
                        reads.append(resid[3][T - 1])
                    want = ref.metrics_of(np.array(logp), np.array(reads), -1, False)
                    for m in ("kl", "l2"):
                        got = f[m][bi, di, p, s].astype(np.float64)
                        err = np.abs(got - want[m]).max() / max(np.abs(want[m]).max(), 1e-6)
                        worst[m] = max(worst.get(m, 0.0), err)
                        if not err <= 1e-5:
                            sl.fail("%s: prompt %d %s %s sample %d: %s differs by %.3g of its scale\nwant %s\ngot  %s"
                                    % (label, p, b, dn, s, m, err, want[m], got))
    print("ok %s: curves kl, l2 within %.2g, %.2g of scale (prompts 0, 5, 11, both bases, both kinds, both samples)"
          % (label, worst["kl"], worst["l2"]))


def check_scores(label, f, thresholds):
    """The per-curve scores from the file's raw curves on its grid, in numpy."""
    alpha, finite = f["alpha"], dict.fromkeys(ref.SCORES, 0)
    for m in ("kl", "l2"):
        raw = f[m].astype(np.float64)
        y = ref.score_curve(m, raw)
        for i in np.ndindex(*raw.shape[:4]):
            for k, v in ref.scores(y[i], alpha, 0.2, thresholds[m], nl=NL).items():
                if not ref.has_score(m, k, thresholds[m]):
                    if "%s_%s" % (m, k) in f:
                        sl.fail("%s: %s_%s is written, but plateau does not compute it for %s" % (label, m, k, m))
                    continue
                got = float(f["%s_%s" % (m, k)][i])
                finite[k] += int(not np.isnan(got))  # measured or censored (+inf): defined
                if not np.isclose(got, np.float32(v), rtol=2e-6, atol=1e-6, equal_nan=True):
                    sl.fail("%s: %s_%s at %s: %s, numpy %s (curve %s)" % (label, m, k, i, got, v, y[i]))
    if not all(finite.values()):
        sl.fail("%s: a score is NaN on every curve, the test would check nothing: %s" % (label, finite))
    print("ok %s: the scores of kl and l2 on the grid match numpy (defined: %s)" % (label, finite))


def check_grid(label, f, want, exact=True):
    got = f["alpha"]
    ok = np.array_equal(got, want) if exact else (len(got) == len(want) and got[0] == 0.0 and got[-1] == want[-1]
                                                  and np.allclose(got, want, rtol=1e-15, atol=0))
    if not ok:
        sl.fail("%s: alpha grid\n%r\nnumpy\n%r" % (label, got, want))
    print("ok %s: alpha grid of %d values is numpy's%s" % (label, len(want), "" if exact else " (within 1e-15 relative)"))


TH = {"kl": 0.002, "l2": 0.5}

# 1. an explicit, non-uniform list without 0 (prepended as the clean run), fixed_norm
f = run("explicit", perturb__alphas="0.05, 0.1, 0.3, 0.35, 1.5, 2", perturb__step_mode="fixed_norm", perturb__steps=None)
alpha = ref.alpha_grid(alphas=[0.05, 0.1, 0.3, 0.35, 1.5, 2])
check_grid("alphas = 0.05, ..., 2", f, alpha)
check_curves("explicit grid, fixed_norm", f, alpha, "fixed_norm")
check_scores("explicit grid", f, TH)

# 2. a log grid, absolute steps
f = run("log", perturb__alpha_grid="log", perturb__alpha_min=0.01, perturb__alpha_max=20, perturb__steps=8,
        perturb__step_mode="absolute")
alpha = ref.alpha_grid(20.0, 8, "log", 0.01)
check_grid("alpha_grid = log", f, alpha, exact=False)
check_curves("log grid, absolute", f, alpha, "absolute")
check_scores("log grid", f, TH)

# 3. teren's |x|/3 branch, and a synthetic base moved by its real pair's norm
f = run("scaled", perturb__step_mode="fixed_norm", perturb__norm_scale=1.0 / 3.0, perturb__step_reference="real",
        perturb__steps=5, perturb__alpha_max=3)
alpha = ref.alpha_grid(3.0, 5)
check_grid("linspace(0, 3, 5)", f, alpha)
check_curves("norm_scale = 1/3, step_reference = real", f, alpha, "fixed_norm", 1.0 / 3.0, "real")
# the same distances: every synthetic step lies as far from its base as the real base's step
for p in range(P):
    for s in range(S):
        for dn in ("cov_random", "isotropic"):
            dist = []
            for b in ("real", "synthetic"):
                base = ref.base_vector(b, p, s, real, fit, SEED)
                X = ref.steps("fixed_norm", base, ref.raw_direction(dn, p, s, base, real, fit, SEED), alpha, False,
                              1.0 / 3.0, real[p])
                dist.append(np.linalg.norm(X - base, axis=1))
            if not np.allclose(dist[0], dist[1], rtol=1e-12) or not np.allclose(dist[0], alpha * np.linalg.norm(
                    real[p]) / 3.0, rtol=1e-12):
                sl.fail("step_reference = real: distances differ")
print("ok step_reference = real: real and synthetic bases move |real| alpha / 3")

# 4. own (the default) is today's fixed_norm bit for bit on real bases; real changes only synthetic ones
own = run("own", perturb__step_mode="fixed_norm", perturb__norm_scale=1.0 / 3.0, perturb__steps=5,
          perturb__alpha_max=3)
if not np.array_equal(own["kl"][0], f["kl"][0]) or np.array_equal(own["kl"][1], f["kl"][1]):
    sl.fail("step_reference: real bases should be identical under own and real, synthetic ones not")
print("ok step_reference: real bases bitwise the same under own and real; synthetic ones move")

# 5. arc (Janiak et al.): real bases towards another prompt's real activation, on an explicit grid
f = run("arc", perturb__step_mode="arc", perturb__directions="real_other, cov_random", perturb__steps=None,
        perturb__alphas="0.1, 0.25, 0.5, 0.75, 1")
alpha = ref.alpha_grid(alphas=[0.1, 0.25, 0.5, 0.75, 1])
check_grid("arc grid", f, alpha)
check_curves("arc around mu", f, alpha, "arc")
# every arc step keeps the base's distance from mu, and at alpha = 1 points from mu towards the partner
for p in range(P):
    for s in range(S):
        base = real[p]
        t = real[f["partner"][p, s]]
        X = ref.steps("arc", base, t - base, alpha, False, 1.0, fit.mu)
        dist = np.linalg.norm(X - fit.mu, axis=1)
        u, w = (X[-1] - fit.mu) / dist[-1], (t - fit.mu) / np.linalg.norm(t - fit.mu)
        if not np.allclose(dist, dist[0], rtol=1e-12) or not np.allclose(u, w, atol=1e-12):
            sl.fail("arc: steps leave the sphere around mu, or alpha = 1 is not towards the partner")
print("ok arc: every step at the base's distance from mu; alpha = 1 towards the partner")

# 6. the presets, through the resolved config (and their steps/alpha_max derived)
for preset in ("lee_heimersheim_fb36043", "teren_pi"):
    r = subprocess.run([sl.BIN, "config", config("preset", perturb__alphas=preset, perturb__step_mode="absolute",
                                                 perturb__steps=None)], capture_output=True, text=True,
                       env=sl.run_env())
    if r.returncode != 0:
        sl.fail("%s: %s" % (preset, r.stderr))
    vals = dict(line.split(" = ", 1) for line in r.stdout.splitlines() if " = " in line)
    got = np.array([float(x) for x in vals["alphas"].split(",")])
    want = ref.alpha_grid(alphas=preset)
    if len(got) != len(want) or not np.allclose(got, want, rtol=1e-15, atol=0) or got[-1] != want[-1]:
        sl.fail("%s: %s\nnumpy %s" % (preset, got, want))
    if int(vals["steps"]) != len(want) or float(vals["alpha_max"]) != want[-1]:
        sl.fail("%s: steps %s alpha_max %s" % (preset, vals["steps"], vals["alpha_max"]))
    print("ok preset %s: %d values, numpy's" % (preset, len(want)))

# 7. refused, by key, with exit 2: what a grid or a step key cannot mean
plain = config("plain", perturb__steps=None)
refusals = [
    (["perturb.alphas=3, 1"], "[perturb] alphas", "strictly increasing"),
    (["perturb.alphas=0"], "[perturb] alphas", "no alpha beside the clean 0"),
    (["perturb.alphas=-1, 2"], "[perturb] alphas", "not a number in [0, 1e6]"),
    (["perturb.alphas=1, nan"], "[perturb] alphas", "not a number"),
    (["perturb.alphas=1, 3", "perturb.steps=5"], "[perturb] steps", "disagrees with [perturb] alphas"),
    (["perturb.alphas=1, 3", "perturb.alpha_max=2"], "[perturb] alpha_max", "disagrees with [perturb] alphas"),
    (["perturb.alphas=1, 3", "perturb.alpha_grid=log", "perturb.alpha_min=0.5"], "[perturb] alpha_grid",
     "is the grid itself"),
    (["perturb.alphas=1, 3", "perturb.alpha_grid=log"], "[perturb] alpha_grid", "is the grid itself"),
    (["perturb.alphas=1, 3", "perturb.alpha_min=0.5"], "[perturb] alpha_min", "is for alpha_grid = log"),
    (["perturb.alphas=no_such_preset"], "[perturb] alphas", "'no_such_preset' is not a number"),
    (["perturb.alpha_grid=log"], "[perturb] alpha_min", "needs 0 < alpha_min < alpha_max"),
    (["perturb.alpha_grid=log", "perturb.alpha_min=2"], "[perturb] alpha_min", "needs 0 < alpha_min < alpha_max"),
    (["perturb.alpha_grid=log", "perturb.alpha_min=0.1", "perturb.steps=2"], "[perturb] steps", "needs steps >= 3"),
    (["perturb.alpha_min=0.1"], "[perturb] alpha_min", "is for alpha_grid = log"),
    (["perturb.norm_scale=0.5"], "[perturb] norm_scale", "scales fixed_norm steps"),
    (["perturb.norm_scale=0", "perturb.step_mode=fixed_norm"], "[perturb] norm_scale", "not a number in (0"),
    (["perturb.step_reference=real", "perturb.step_mode=absolute"], "[perturb] step_reference", "steps by no norm"),
    # the local-geometry keys, set to a non-default value with nothing that reads them (review of issue 17)
    (["optimize.radius_alpha=0.5"], "[optimize] radius_alpha", "only the `optimized` direction kind reads"),
    (["optimize.starts=16"], "[optimize] starts", "only the `optimized` direction kind reads"),
    (["optimize.orthogonal=true"], "[optimize] orthogonal", "only the `optimized` direction kind reads"),
    (["optimize.start_kind=isotropic"], "[optimize] start_kind", "only the `optimized` direction kind reads"),
    (["optimize.max_iterations=50"], "[optimize] max_iterations", "only the `optimized` direction kind reads"),
    (["optimize.tolerance=0.01"], "[optimize] tolerance", "only the `optimized` direction kind reads"),
    (["optimize.distinct_cos=0.9"], "[optimize] distinct_cos", "only the `optimized` direction kind reads"),
    (["fisher.k=2", "optimize.starts=16"], "[optimize] starts", "only the `optimized` direction kind reads"),
    (["fisher.n_pcs=4"], "[fisher] n_pcs", "there is none (set [fisher] k"),
    (["output.vectors=true"], "[output] vectors", "there is none (set [fisher] k"),
]
for sets, key, why in refusals:
    r = subprocess.run([sl.BIN, "config", plain] + [a for s in sets for a in ("--set", s)], capture_output=True,
                       text=True, env=sl.run_env())
    lines = r.stderr.strip().splitlines()
    if r.returncode != 2 or len(lines) != 1 or key not in lines[0] or why not in lines[0]:
        sl.fail("%s: want exit 2 naming %s (%s), got %d: %s" % (sets, key, why, r.returncode, r.stderr))
print("ok %d bad grid and step settings refused by key, exit 2" % len(refusals))

# ... and accepted where something reads them, or when given at their default (the resolved text gives
# every key, and must read back)
accepted = [
    ["optimize.starts=8", "optimize.tolerance=0.001", "optimize.radius_alpha=none", "fisher.n_pcs=8",
     "output.vectors=false", "optimize.start_kind=cov_random"],
    ["fisher.k=2", "fisher.n_pcs=4", "output.vectors=true"],
    ["perturb.directions=fisher", "fisher.n_pcs=0"],
    ["perturb.directions=optimized", "perturb.step_mode=fixed_norm", "optimize.radius_alpha=0.5",
     "optimize.starts=16", "optimize.orthogonal=true", "optimize.start_kind=isotropic",
     "optimize.max_iterations=50", "optimize.tolerance=0.01", "optimize.distinct_cos=0.9", "fisher.n_pcs=4",
     "output.vectors=true"],
]
for sets in accepted:
    r = subprocess.run([sl.BIN, "config", plain] + [a for s in sets for a in ("--set", s)], capture_output=True,
                       text=True, env=sl.run_env())
    if r.returncode != 0:
        sl.fail("%s: want exit 0, got %d: %s" % (sets, r.returncode, r.stderr))
print("ok %d settings of the local-geometry keys accepted where they are read or at their defaults" % len(accepted))
print("grid tests passed")
