"""Curves, statistics and scores against an independent numpy implementation.

From the data file and the config alone, this script re-derives everything the sweep does, in
float64 numpy with tests/core/ref_gpt2.py as the model: the seeded prompt selection (checked against
the recorded `tokens`), the partners (checked against `partner`), mu and Sigma of the covariance
prompts, the keyed random bases and targets, every step's patched forward, and every metric. Then it
recomputes the per-(base, direction, alpha) statistics and the per-curve scores from the file's raw
curves with numpy (np.quantile's linear rule) and compares them to the file's.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2, log_softmax  # noqa: E402

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
RNG_DATA, RNG_SYNTH_BASE, RNG_COV_TARGET, RNG_ISO_TARGET, RNG_PARTNER = 1, 2, 3, 4, 5


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Stream:
    """The keyed counter-based stream as the README specifies it."""

    def __init__(self, seed, a, b, c):
        k = mix64((seed + GAMMA) & M64)
        k = mix64(k ^ (((a + 1) * GAMMA) & M64))
        k = mix64(k ^ (((b + 2) * GAMMA) & M64))
        k = mix64(k ^ (((c + 3) * GAMMA) & M64))
        self.key, self.counter, self.spare = k, 0, None

    def u64(self):
        self.counter += 1
        return mix64((self.key + self.counter * GAMMA) & M64)

    def uniform(self):
        return (self.u64() >> 11) * 2.0 ** -53

    def below(self, n):
        return (self.u64() * n) >> 64

    def gaussian(self):
        if self.spare is not None:
            s, self.spare = self.spare, None
            return s
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        rad, th = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
        self.spare = rad * math.sin(th)
        return rad * math.cos(th)


d = sl.workdir(sys.argv)
V, C, T = 300, 32, 8
model_dir = sl.make_model(d, layers=3, embd=C, vocab=V)
data = sl.make_bin(d, T * 150, V, seed=4)
rows_path = os.path.join(d, "sae.npy")
file_rows = np.random.default_rng(2).standard_normal((7, C))
np.save(rows_path, file_rows)  # float64 .npy; the sweep reads it as float32
P, S, STEPS, COV, SEED, DATA_SEED = 12, 2, 11, 60, 5, 3
out = os.path.join(d, "ref.nc")
cfg = sl.base_config(model_dir, data, out, data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED,
                     perturb__n_directions=S, perturb__steps=STEPS, perturb__cov_prompts=COV, run__seed=SEED,
                     perturb__hook="blocks.1.hook_resid_pre", readout__read_hook="blocks.2.hook_resid_post",
                     perturb__directions="real_other, cov_random, isotropic, file:" + rows_path,
                     readout__onset_threshold=0.2, output__quantiles="0.1, 0.5, 0.9")
ini = sl.write_ini(os.path.join(d, "ref.ini"), cfg)
r = sl.run([ini, "--quiet"])
if r.returncode != 0:
    sl.fail("sweep failed: " + r.stderr)
f = sl.variables(out)
bases, dirs = f["base"], f["direction"]
alpha = f["alpha"]
if not np.allclose(alpha, np.linspace(0, 1, STEPS), rtol=0, atol=1e-15):
    sl.fail("alpha grid %s" % alpha)

# --- prompt selection: seeded Fisher-Yates over the .bin's windows
tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
n_win = len(tokens_all) // T
perm = list(range(n_win))
st = Stream(DATA_SEED, RNG_DATA, 0, 0)
for i in range(n_win - 1, 0, -1):
    j = st.below(i + 1)
    perm[i], perm[j] = perm[j], perm[i]
windows = [tokens_all[w * T:(w + 1) * T] for w in perm[:P + COV]]
if not np.array_equal(np.array(windows[:P]), f["tokens"]):
    sl.fail("recorded tokens are not the seeded selection")
print("ok tokens: the seeded selection of %d of %d windows" % (P, n_win))

ref = GPT2(model_dir)
partner = np.full((P, S), -1)
for p in range(P):
    for s in range(S):
        q = Stream(SEED, p, RNG_PARTNER, s).below(P - 1)
        partner[p, s] = q + (q >= p)
if not np.array_equal(partner, f["partner"]):
    sl.fail("partner: want\n%s\ngot\n%s" % (partner, f["partner"]))
print("ok partner: keyed draws of another prompt")


def gaussian_vec(p, kind, s):
    st = Stream(SEED, p, kind, s)
    return np.array([st.gaussian() for _ in range(C)])


def check_curves(label, f, r_hook, pos, r_read, mode, rel=1e-5):
    """Refit mu and Sigma at (r_hook, pos) and compare every curve of prompts 0, 5, 11."""
    acts = np.array([ref.forward(w)[0][r_hook][pos] for w in windows])
    real, cov_acts = acts[:P], acts[P:]
    mu = cov_acts.mean(0)
    sigma = np.cov(cov_acts, rowvar=False)
    chol = np.linalg.cholesky(sigma)
    trace = np.trace(sigma)

    def unit_curves(p, b, dname, s):
        base = real[p] if b == "real" else mu + chol @ gaussian_vec(p, RNG_SYNTH_BASE, s)
        if dname == "real_other":
            direction = real[partner[p, s]] - base
        elif dname == "cov_random":
            direction = mu + chol @ gaussian_vec(p, RNG_COV_TARGET, s) - base
        elif dname == "isotropic":
            direction = mu + math.sqrt(trace / C) * gaussian_vec(p, RNG_ISO_TARGET, s) - base
        else:  # file: the row itself, row (p * S + s) mod rows
            direction = file_rows[(p * S + s) % len(file_rows)].astype(np.float32).astype(np.float64)
        if mode == "fixed_norm":  # alpha = 1 moves the base by its own norm
            direction = direction / np.linalg.norm(direction) * np.linalg.norm(base)
        logp, reads = [], []
        for a in alpha:
            resid, logits = ref.forward(f["tokens"][p], patch=(r_hook, pos, base + a * direction))
            logp.append(log_softmax(logits[-1]))
            reads.append(resid[r_read][-1])
        lp0, r0 = logp[0], reads[0]
        kl, jsd, l2, cos = [], [], [], []
        for lq, rr in zip(logp, reads):
            p0, q = np.exp(lp0), np.exp(lq)
            m = 0.5 * (p0 + q)
            kl.append(np.sum(p0 * (lp0 - lq)))
            jsd.append(0.5 * np.sum(p0 * np.log(p0 / m)) + 0.5 * np.sum(q * np.log(q / m)))
            l2.append(np.linalg.norm(rr - r0))
            cos.append(rr @ r0 / (np.linalg.norm(rr) * np.linalg.norm(r0)))
        return {"kl": np.array(kl), "jsd": np.array(jsd), "l2": np.array(l2), "cosine": np.array(cos)}

    # Tolerances relative to the curve's scale: the sweep runs float32 against this float64
    # reference, and its mu/Sigma come from float32 activations.
    TOL = {"kl": rel, "jsd": rel, "l2": rel, "cosine": 1e-6}
    worst = {m: 0.0 for m in TOL}
    for p in (0, 5, 11):
        for bi, b in enumerate(f["base"]):
            for di, dn in enumerate(f["direction"]):
                for s in range(S):
                    want = unit_curves(p, b, dn, s)
                    for m, w in want.items():
                        got = f[m][bi, di, p, s].astype(np.float64)
                        # KL/JSD below 1e-6 nats are at float32's noise floor (see test_naive.py)
                        floor = {"kl": 1e-6, "jsd": 1e-6, "l2": 1e-12, "cosine": 1.0}[m]
                        scale = 1.0 if m == "cosine" else max(np.abs(w).max(), floor)
                        err = np.abs(got - w).max() / scale
                        worst[m] = max(worst[m], err)
                        if not err <= TOL[m]:
                            sl.fail("%s: prompt %d %s %s sample %d: %s differs by %.3g of its scale\nwant %s\n"
                                    "got  %s" % (label, p, b, dn, s, m, err, w, got))
                    if want["kl"][-1] <= 0 or abs(want["kl"][0]) > 1e-12:
                        sl.fail("degenerate reference curve")
    for m, e in worst.items():
        print("ok %s: curves %-6s within %.2g of scale (tolerance %g), prompts 0, 5, 11, every base, direction "
              "and sample" % (label, m, e, TOL[m]))


check_curves("to_target, last position", f, 1, T - 1, 3, "to_target")

# fixed_norm steps, an earlier position, another hook and read hook
out2 = os.path.join(d, "ref2.nc")
r = sl.run([ini, "--quiet", "-o", out2, "--set", "perturb.step_mode=fixed_norm", "--set", "perturb.position=-3",
            "--set", "perturb.hook=blocks.0.hook_resid_post", "--set", "readout.read_hook=blocks.2.hook_resid_pre"])
if r.returncode != 0:
    sl.fail("fixed_norm sweep failed: " + r.stderr)
# an earlier position barely reaches the last one: curves are smaller, float32 noise relatively larger
check_curves("fixed_norm, position -3", sl.variables(out2), 1, T - 3, 2, "fixed_norm", rel=5e-5)

# --- statistics and scores from the file's raw curves, in numpy
qs = np.array([0.1, 0.5, 0.9])
if not np.array_equal(f["quantile"], qs):
    sl.fail("quantile coordinate %s" % f["quantile"])
for m in ("kl", "jsd", "l2", "cosine"):
    raw = f[m].astype(np.float64)  # (base, direction, prompt, sample, alpha)
    flat = raw.reshape(raw.shape[0], raw.shape[1], -1, raw.shape[-1])
    checks = {"mean": flat.mean(2), "median": np.median(flat, 2),
              "quantiles": np.moveaxis(np.quantile(flat, qs, axis=2), 0, 0)}
    for name, want in checks.items():
        got = f["%s_%s" % (m, name)]
        if not np.allclose(got, want, rtol=1e-12, atol=1e-15):
            sl.fail("%s_%s differs from numpy: max %.3g" % (m, name, np.abs(got - want).max()))
    if not np.all(f[m + "_count"] == P * S):
        sl.fail("%s_count is not %d" % (m, P * S))
    y = 1.0 - raw if m == "cosine" else raw
    end = y[..., -1:]
    norm = y / end
    above = norm > 0.2
    onset = np.where(above.any(-1), alpha[np.argmax(above, -1)], np.nan)
    slopes = np.diff(y, axis=-1) / np.diff(alpha)
    mid = 0.5 * (alpha[:-1] + alpha[1:])
    max_slope_alpha = mid[np.argmax(slopes, -1)]
    sharp = np.diff(norm, axis=-1).max(-1) * (STEPS - 1)
    for name, want in (("onset", onset), ("max_slope_alpha", max_slope_alpha), ("sharpness", sharp)):
        got = f["%s_%s" % (m, name)].astype(np.float64)
        if not np.allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-7, equal_nan=True):
            sl.fail("%s_%s differs from numpy: %s vs %s" % (m, name, got.ravel()[:8], want.ravel()[:8]))
    print("ok %-6s mean, median, quantiles, count, onset, max_slope_alpha, sharpness match numpy" % m)
print("reference tests passed")
