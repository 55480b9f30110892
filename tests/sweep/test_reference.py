"""Curves and scores against an independent numpy implementation (tests/sweep/reference.py).

From the data file and the config alone, this script re-derives everything a sweep does, in float64
numpy with tests/core/ref_gpt2.py as the model: the seeded prompt selection (checked against the
recorded `tokens` and `next_token`), the partners and difference pairs, mu and Sigma, the keyed bases
and directions of every kind, every step mode (teren's `scan` re-implemented for the post's protocol),
both residual bases, the readout position (read from the full prompt's logits there, not from a
prefix), and every metric. Then it recomputes the per-alpha statistics, the five per-curve scores and
the histograms from the file's raw curves with numpy and compares them to the file's.
"""
import os
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
data = sl.make_bin(d, T * 150, V, seed=4)
rows_path = os.path.join(d, "sae.npy")
file_rows = np.random.default_rng(2).standard_normal((7, C))
np.save(rows_path, file_rows)  # float64 .npy; the sweep reads it as float32
P, S, STEPS, COV, SEED, DATA_SEED = 12, 2, 11, 60, 5, 3
model = GPT2(model_dir)

tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
docs = [list(tokens_all[w * T:(w + 1) * T]) + ([int(tokens_all[(w + 1) * T])] if (w + 1) * T < len(tokens_all)
                                                else []) for w in range(len(tokens_all) // T)]
windows, next_tokens, _, _ = ref.select_document_start(docs, T, P + COV, DATA_SEED)


def run(name, **over):
    out = os.path.join(d, name + ".nc")
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S,
                perturb__steps=STEPS, perturb__cov_prompts=COV, run__seed=SEED, perturb__hook="blocks.1.hook_resid_pre",
                readout__read_hook="blocks.2.hook_resid_post", readout__onset_threshold=0.2,
                output__quantiles="0.1, 0.5, 0.9", output__bootstrap=0, readout__nonlinearity="1, 5, 0.1",
                readout__thresholds="kl:0.002, jsd:0.001, l2:0.5, cosine:0.001, js_dist:0.05, ce_loss:0.01")
    keys.update(over)
    cfg = sl.base_config(model_dir, data, out, **keys)
    ini = sl.write_ini(os.path.join(d, name + ".ini"), cfg)
    r = sl.run([ini, "--quiet"])
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (name, r.stderr))
    return sl.variables(out)


def check_selection(f):
    if not np.array_equal(np.array(windows[:P]), f["tokens"]):
        sl.fail("recorded tokens are not the seeded selection")
    if not np.array_equal(np.array(next_tokens[:P]), f["next_token"]):
        sl.fail("next_token: want %s got %s" % (next_tokens[:P], f["next_token"]))


def check_curves(label, f, r_hook, pos, read_pos, r_read, mode, centered=False, center_dir=False, rel=1e-5,
                 teren=False):
    """Refit mu and Sigma at (r_hook, pos) and compare every curve of prompts 0, 5, 11."""
    alpha = f["alpha"]
    acts = np.array([model.forward(w)[0][r_hook][pos] for w in windows])
    real = ref.center(acts[:P]) if centered else acts[:P]
    # the sweep's activations are float32: equality (duplicates) is decided there
    real32 = real.astype(np.float32)
    fit = ref.Fit(acts[P:], centered)
    part = pairs = None
    if "real_other" in f["direction"]:
        part, red = ref.partners(real32, SEED, P, S)
        if not np.array_equal(part, f["partner"]) or not np.array_equal(red, f["partner_redraws"]):
            sl.fail("%s: partner\n%s\nvs\n%s" % (label, part, f["partner"]))
    if "real_difference" in f["direction"]:
        pairs, red2 = ref.difference_pairs(real32, SEED, P, S)
        if not np.array_equal(pairs, f["difference_prompts"]) or not np.array_equal(red2, f["difference_redraws"]):
            sl.fail("%s: difference_prompts differ" % label)
    if "activation" in f:  # [output] activations: the real activations and the fit, in the basis
        Pm = np.eye(C) - 1.0 / C if centered else np.eye(C)
        for name, got, want in (("activation", f["activation"], real), ("mu", f["mu"], Pm @ fit.mu),
                                ("sigma", f["sigma"], Pm @ fit.sigma @ Pm)):
            if not np.allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max()):
                sl.fail("%s: %s differs from numpy by %.3g" % (label, name, np.abs(got - want).max()))
        print("ok %s: activation, mu and sigma in the %s basis match numpy" % (label, "centred" if centered else "raw"))
    worst = {}
    for p in (0, 5, 11):
        nt = windows[p][read_pos + 1] if read_pos + 1 < T else next_tokens[p]
        for bi, b in enumerate(f["base"]):
            for di, dn in enumerate(f["direction"]):
                for s in range(S):
                    base = ref.base_vector(b, p, s, real, fit, SEED)
                    dvec = ref.raw_direction(dn, p, s, base, real, fit, SEED, part, pairs, file_rows, S)
                    X = ref.steps(mode, base, dvec, alpha, center_dir or centered)
                    if teren:  # the post's protocol is teren's scan, re-implemented independently
                        Xt = ref.teren_scan(base, dvec, alpha)
                        if not np.allclose(X, Xt, rtol=1e-12, atol=1e-12 * np.abs(Xt).max()):
                            sl.fail("%s: steps differ from teren's scan" % label)
                    logp, reads = [], []
                    for x in X:
                        resid, logits = model.forward(f["tokens"][p], patch=(r_hook, pos, x))
                        logp.append(log_softmax(logits[read_pos]))
                        reads.append(resid[r_read][read_pos])
                    want = ref.metrics_of(np.array(logp), np.array(reads), nt, centered)
                    for m in f["metric_names"]:
                        w = want[m]
                        got = f[m][bi, di, p, s].astype(np.float64)
                        floor = {"kl": 1e-6, "jsd": 1e-6, "js_dist": 1e-3, "ce_loss": 1e-6, "l2": 1e-12}.get(m, 1.0)
                        scale = 1.0 if m == "cosine" else max(np.abs(w).max(), floor)
                        err = np.abs(got - w).max() / scale
                        worst[m] = max(worst.get(m, 0.0), err)
                        tol = 1e-6 if m == "cosine" else (3e-3 if m == "js_dist" else rel)
                        if not err <= tol:
                            sl.fail("%s: prompt %d %s %s sample %d: %s differs by %.3g of its scale\nwant %s\n"
                                    "got  %s" % (label, p, b, dn, s, m, err, w, got))
    for m, e in worst.items():
        print("ok %s: curves %-7s within %.2g of scale, prompts 0, 5, 11, every base, direction and sample"
              % (label, m, e))


def check_scores(label, f, thresholds):
    """Statistics, the five scores and the histograms from the file's raw curves, in numpy."""
    alpha, qs = f["alpha"], np.array([0.1, 0.5, 0.9])
    HB = len(f["onset_hist_edges"]) - 1
    finite = dict.fromkeys(ref.SCORES, 0)
    censored = dict.fromkeys(ref.SCORES, 0)
    for m in f["metric_names"]:
        raw = f[m].astype(np.float64)  # (base, direction, prompt, sample, alpha)
        flat = raw.reshape(raw.shape[0], raw.shape[1], -1, raw.shape[-1])
        for name, want in (("mean", flat.mean(2)), ("median", np.median(flat, 2)),
                           ("quantiles", np.quantile(flat, qs, axis=2))):
            if not np.allclose(f["%s_%s" % (m, name)], want, rtol=1e-12, atol=1e-15, equal_nan=True):
                sl.fail("%s: %s_%s differs from numpy" % (label, m, name))
        y = ref.score_curve(m, raw)
        want = {k: np.full(raw.shape[:4], np.nan) for k in ref.SCORES}
        for i in np.ndindex(*raw.shape[:4]):
            for k, v in ref.scores(y[i], alpha, 0.2, thresholds.get(m), nl=(1, 5, 0.1)).items():
                want[k][i] = v
        for k in ref.SCORES:
            name = "%s_%s" % (m, k)
            if not ref.has_score(m, k, thresholds.get(m)):
                if name in f:
                    sl.fail("%s: %s written (no threshold, or an NL score on a metric quadratic near 0)"
                            % (label, name))
                continue
            got = f[name].astype(np.float64)
            finite[k] += int(np.isfinite(got).sum())
            censored[k] += int(np.isinf(got).sum())
            if not np.array_equal(np.isinf(got), np.isinf(want[k])):
                i = tuple(np.argwhere(np.isinf(got) != np.isinf(want[k]))[0])
                sl.fail("%s: %s censored at %s: %s vs numpy %s (curve %s)" % (label, name, i, got[i], want[k][i],
                                                                              y[i]))
            if not np.array_equal(np.isinf(got).reshape(got.shape[0], got.shape[1], -1).sum(2),
                                  f[name + "_n_censored"]):
                sl.fail("%s: %s_n_censored %s, want %s" % (label, name, f[name + "_n_censored"],
                                                            np.isinf(got).reshape(got.shape[0], got.shape[1], -1).sum(2)))
            if not np.allclose(got, want[k].astype(np.float32), rtol=2e-6, atol=1e-6, equal_nan=True):
                bad = np.argwhere(~np.isclose(got, want[k].astype(np.float32), rtol=2e-6, atol=1e-6, equal_nan=True))
                i = tuple(bad[0])
                sl.fail("%s: %s differs from numpy at %s: %s vs %s (curve %s)" % (label, name, i, got[i], want[k][i],
                                                                                  y[i]))
            edges = f["%s_hist_edges" % k]
            for b in range(raw.shape[0]):
                for dd in range(raw.shape[1]):
                    v = got[b, dd].ravel()
                    v = v[np.isfinite(v)]
                    inside = v[(v >= edges[0]) & (v <= edges[-1])]
                    h, _ = np.histogram(inside, bins=edges)
                    if not np.array_equal(h, f[name + "_hist"][b, dd]) or \
                            len(v) - len(inside) != f[name + "_hist_outside"][b, dd]:
                        sl.fail("%s: %s_hist differs from np.histogram" % (label, name))
        if not np.all(f[m + "_count"] == np.isfinite(flat).sum(2)):
            sl.fail("%s: %s_count" % (label, m))
    for k, n in finite.items():
        if n + censored[k] == 0:
            sl.fail("%s: every %s is NaN: the test would check nothing" % (label, k))
    print("ok %s: mean, median, quantiles, count, %d scores (finite/censored: %s) and %d-bin histograms of %s match "
          "numpy" % (label, len(ref.SCORES), ", ".join("%s %d/%d" % (k, n, censored[k]) for k, n in finite.items()),
                     HB, ", ".join(f["metric_names"])))


def names(f, metrics):
    f["metric_names"] = [m.strip() for m in metrics.split(",")]
    return f


THRESH = {"kl": 0.002, "jsd": 0.001, "l2": 0.5, "cosine": 0.001, "js_dist": 0.05, "ce_loss": 0.01}

# 1. today's protocol: to_target steps, raw basis, every legacy kind and a file: matrix
f = names(run("legacy", perturb__directions="real_other, cov_random, isotropic, file:" + rows_path,
              output__activations="true"), "kl, jsd, l2, cosine")
check_selection(f)
if not np.allclose(f["alpha"], np.linspace(0, 1, STEPS), rtol=0, atol=1e-15):
    sl.fail("alpha grid %s" % f["alpha"])
check_curves("to_target, last position", f, 1, T - 1, T - 1, 3, "to_target")
check_scores("to_target", f, THRESH)

# 2. fixed_norm at an earlier position, read at the last one, another hook and read hook
f = names(run("fixed", perturb__step_mode="fixed_norm", perturb__position=-3, readout__position=-1,
              perturb__hook="blocks.0.hook_resid_post", readout__read_hook="blocks.2.hook_resid_pre",
              perturb__directions="real_other, cov_random, isotropic"), "kl, jsd, l2, cosine")
# an earlier position barely reaches the last one: curves are smaller, float32 noise relatively larger
check_curves("fixed_norm, position -3 read at -1", f, 1, T - 3, T - 1, 2, "fixed_norm", rel=5e-5)

# 3. the post's protocol (teren): fixed_norm, centred d, centred basis; the new kinds and metrics;
#    read at the perturbed position (-2: the logits there, which predict the prompt's last token)
metrics3 = "kl, js_dist, l2, cosine, ce_loss"
f = names(run("teren", perturb__step_mode="fixed_norm", perturb__center_direction="true",
              perturb__residual_basis="centered", perturb__position=-2, readout__metrics=metrics3,
              output__activations="true",
              perturb__directions="real_other, naive_isotropic, cov_difference, real_difference"), metrics3)
check_curves("teren protocol, centered basis, position -2", f, 1, T - 2, T - 2, 3, "fixed_norm", centered=True,
             teren=True)
check_scores("teren protocol", f, THRESH)

# 4. absolute steps, raw basis, centred directions, alpha in activation units, last position with
#    the data's next token for ce_loss
f = names(run("absolute", perturb__step_mode="absolute", perturb__alpha_max=8, perturb__center_direction="true",
              readout__metrics="kl, jsd, l2, ce_loss",
              perturb__directions="cov_random, naive_isotropic, cov_difference, real_difference"), "kl, jsd, l2, ce_loss")
check_curves("absolute steps, raw basis, centred d", f, 1, T - 1, T - 1, 3, "absolute", center_dir=True)
check_scores("absolute", f, THRESH)
print("reference tests passed")
