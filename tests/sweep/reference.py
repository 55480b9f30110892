"""An independent numpy re-derivation of what a sweep computes, written from the README for the tests.

Nothing here calls plateau: the keyed streams, the prompt selection, the direction kinds, the step
modes (teren's `scan` re-implemented), the residual bases, the metrics, the per-curve scores, the paired
comparisons and the histograms are all re-implemented in float64 numpy, and the model is
tests/core/ref_gpt2.py.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from ref_gpt2 import log_softmax  # noqa: E402,F401

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
(RNG_DATA, RNG_SYNTH_BASE, RNG_COV_TARGET, RNG_ISO_TARGET, RNG_PARTNER, RNG_NAIVE_ISO, RNG_COV_DIFFERENCE,
 RNG_REAL_DIFFERENCE, RNG_WINDOW, RNG_BOOTSTRAP) = range(1, 11)
SCORES = ("onset", "max_slope_alpha", "sharpness", "alpha_at_threshold", "nonlinearity_alpha", "auc",
          "max_space_ratio_alpha", "plateau_length", "giglemiani_nl_alpha")
CENSORED = np.inf  # a score whose event lies beyond the grid (docs/science.md)
QUADRATIC_NEAR_0 = ("kl", "jsd", "cosine")  # the NL scores are not written for these
NL_SCORES = ("nonlinearity_alpha", "giglemiani_nl_alpha")


def has_score(metric, score, threshold, plateau_threshold=20.0):
    """Whether plateau writes METRIC's SCORE (docs/science.md: which score is computed for which metric)."""
    if score in NL_SCORES and metric in QUADRATIC_NEAR_0:
        return False
    if score == "alpha_at_threshold":
        return threshold is not None
    if score == "plateau_length":
        return metric == "l2" and plateau_threshold is not None
    return True


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

    def below_many(self, n, count):
        """COUNT draws of below(N), vectorised (the bootstrap draws hundreds of thousands)."""
        i = np.arange(self.counter + 1, self.counter + 1 + count, dtype=np.uint64)
        self.counter += count
        with np.errstate(over="ignore"):
            z = np.uint64(self.key) + i * np.uint64(GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        # (z * n) >> 64 with 64-bit halves: n < 2^32 here
        hi, lo = z >> np.uint64(32), z & np.uint64(0xFFFFFFFF)
        n64 = np.uint64(n)
        return ((hi * n64 + ((lo * n64) >> np.uint64(32))) >> np.uint64(32)).astype(np.int64)

    def gaussian(self):
        if self.spare is not None:
            s, self.spare = self.spare, None
            return s
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        rad, th = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
        self.spare = rad * math.sin(th)
        return rad * math.cos(th)

    def gaussians(self, n):
        return np.array([self.gaussian() for _ in range(n)])


def fnv1a(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def permutation(n, seed):
    perm = list(range(n))
    st = Stream(seed, RNG_DATA, 0, 0)
    for i in range(n - 1, 0, -1):
        j = st.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def select_document_start(docs, T, need, seed):
    """Documents (token lists) in the seeded order: first T tokens, short ones skipped, duplicates dropped.
    Returns (prompts, next tokens, duplicates, skipped)."""
    out, nxt, seen, dup, short = [], [], set(), 0, 0
    for i in permutation(len(docs), seed):
        if len(out) == need:
            break
        d = docs[i]
        if len(d) < T:
            short += 1
            continue
        key = tuple(d[:T])
        if key in seen:
            dup += 1
            continue
        seen.add(key)
        out.append(list(key))
        nxt.append(d[T] if len(d) > T else -1)
    return out, nxt, dup, short


def select_random_windows(stream, T, need, seed):
    """Windows of T tokens at keyed random offsets 0..N-T-1 of STREAM, duplicates dropped."""
    st = Stream(seed, RNG_WINDOW, 0, 0)
    out, nxt, seen, dup = [], [], set(), 0
    while len(out) < need:
        o = st.below(len(stream) - T)
        key = tuple(stream[o:o + T])
        if key in seen:
            dup += 1
            continue
        seen.add(key)
        out.append(list(key))
        nxt.append(int(stream[o + T]))
    return out, nxt, dup


def center(v):
    return v - v.mean(-1, keepdims=True)


class Fit:
    """mu, Sigma of the covariance prompts' activations (raw basis), the sampler, and the basis."""

    def __init__(self, cov_acts, centered):
        self.mu = cov_acts.mean(0)
        self.sigma = np.cov(cov_acts, rowvar=False)
        self.chol = np.linalg.cholesky(self.sigma)
        self.C = cov_acts.shape[1]
        self.centered = centered
        if centered:  # tr(P Sigma P) / (C - 1)
            P = np.eye(self.C) - 1.0 / self.C
            self.iso = math.sqrt(np.trace(P @ self.sigma @ P) / (self.C - 1))
        else:
            self.iso = math.sqrt(np.trace(self.sigma) / self.C)

    def basis(self, v):
        return center(v) if self.centered else v

    def sample(self, seed, p, kind, s):
        return self.basis(self.mu + self.chol @ Stream(seed, p, kind, s).gaussians(self.C))


def draw_other(st, p, P):
    q = st.below(P - 1)
    return q + (q >= p)


def partners(real, seed, P, S):
    """real_other partners with redraws while the activation equals the base's; (partner, redraws)."""
    part, red = np.zeros((P, S), int), np.zeros((P, S), int)
    for p in range(P):
        for s in range(S):
            st = Stream(seed, p, RNG_PARTNER, s)
            q, n = draw_other(st, p, P), 0
            while np.array_equal(real[q], real[p]):
                q, n = draw_other(st, p, P), n + 1
            part[p, s], red[p, s] = q, n
    return part, red


def difference_pairs(real, seed, P, S):
    pairs, red = np.zeros((P, S, 2), int), np.zeros((P, S), int)
    same = lambda a, b: np.array_equal(real[a], real[b])  # noqa: E731
    for p in range(P):
        for s in range(S):
            st = Stream(seed, p, RNG_REAL_DIFFERENCE, s)
            n, r1 = 0, draw_other(st, p, P)
            while same(r1, p):
                r1, n = draw_other(st, p, P), n + 1
            r2 = draw_other(st, p, P)
            while same(r2, p) or same(r2, r1):
                r2, n = draw_other(st, p, P), n + 1
            pairs[p, s], red[p, s] = (r1, r2), n
    return pairs, red


def base_vector(kind, p, s, real, fit, seed):
    return real[p] if kind == "real" else fit.sample(seed, p, RNG_SYNTH_BASE, s)


def raw_direction(kind, p, s, base, real, fit, seed, part=None, pairs=None, file_rows=None, S=1):
    """The kind's direction d before centring and scaling."""
    if kind == "isotropic":
        t = fit.basis(fit.mu + fit.iso * Stream(seed, p, RNG_ISO_TARGET, s).gaussians(fit.C))
        return t - base
    if kind == "cov_random":
        return fit.sample(seed, p, RNG_COV_TARGET, s) - base
    if kind == "real_other":
        return real[part[p, s]] - base
    if kind == "naive_isotropic":
        return fit.iso * Stream(seed, p, RNG_NAIVE_ISO, s).gaussians(fit.C)
    if kind == "cov_difference":
        t1 = fit.mu + fit.chol @ Stream(seed, p, RNG_COV_DIFFERENCE, 2 * s).gaussians(fit.C)
        t2 = fit.mu + fit.chol @ Stream(seed, p, RNG_COV_DIFFERENCE, 2 * s + 1).gaussians(fit.C)
        return t1 - t2
    if kind == "real_difference":
        return real[pairs[p, s, 0]] - real[pairs[p, s, 1]]
    if kind.startswith("file:"):
        return file_rows[(p * S + s) % len(file_rows)].astype(np.float32).astype(np.float64)
    raise ValueError(kind)


def teren_scan(x, d, alphas):
    """LASR teren's `scan`, re-implemented: d -= mean(d); d *= |x| / |d| (when |d| != 0); x + alpha d."""
    d = d - d.mean()
    if np.linalg.norm(d) != 0.0:
        d = d * np.linalg.norm(x) / np.linalg.norm(d)
    return np.array([x + a * d for a in alphas])


def steps(mode, base, d, alphas, center_direction, norm_scale=1.0, reference=None):
    """plateau's step modes as the README states them. fixed_norm moves by norm_scale |r| at alpha = 1,
    r the base itself or REFERENCE (step_reference = real: the prompt's real activation)."""
    if center_direction:
        d = d - d.mean()
    nd = np.linalg.norm(d)
    r = base if reference is None else reference
    if mode == "arc":  # Janiak et al.'s arc_interpolation (reometry/utils.py) around mu = REFERENCE
        return np.array([base if a == 0 else arc_point(base, base + a * d, reference) for a in alphas])
    if mode == "to_target":
        scale = 1.0
    elif mode == "fixed_norm":
        scale = norm_scale * np.linalg.norm(r) / nd if nd > 0 else 0.0
    else:
        scale = 1.0 / nd if nd > 0 else 0.0
    return np.array([base + a * scale * d for a in alphas])


def arc_point(a, lin, mu):
    """reometry's arc_interpolation at one point: lin - mu rescaled to |a - mu|, then + mu."""
    cen = lin - mu
    n = np.linalg.norm(cen)
    return mu + cen * (np.linalg.norm(a - mu) / n) if n > 0 else lin


def alpha_grid(alpha_max=1.0, steps=101, grid="linear", alpha_min=0.0, alphas=None):
    """The alpha grid as docs/config.md states it: linspace(0, alpha_max, steps); 0 followed by
    geomspace(alpha_min, alpha_max, steps - 1); or an explicit list (0 prepended when absent); presets
    from their sources: Lee & Heimersheim's length_list = list(range(1, 211, 10)) and teren's
    torch.linspace(0, pi, 361)."""
    if alphas == "lee_heimersheim_fb36043":
        alphas = list(range(1, 211, 10))
    elif alphas == "teren_pi":
        alphas = np.linspace(0.0, np.pi, 361)
    if alphas is not None:
        a = np.asarray(alphas, np.float64)
        return a if a[0] == 0.0 else np.concatenate([[0.0], a])
    if grid == "log":
        return np.concatenate([[0.0], np.geomspace(alpha_min, alpha_max, steps - 1)])
    return np.linspace(0.0, alpha_max, steps)


def metrics_of(logp, reads, next_token, centered):
    """Every metric of a unit's rows against row 0. logp: [steps, V] log-probs; reads: [steps, C]."""
    if centered:
        reads = center(reads)
    lp0, r0 = logp[0], reads[0]
    out = {m: [] for m in ("kl", "jsd", "js_dist", "l2", "cosine", "ce_loss")}
    for lq, rr in zip(logp, reads):
        p0, q = np.exp(lp0), np.exp(lq)
        m = 0.5 * (p0 + q)
        jsd = 0.5 * np.sum(p0 * np.log(p0 / m)) + 0.5 * np.sum(q * np.log(q / m))
        out["kl"].append(np.sum(p0 * (lp0 - lq)))
        out["jsd"].append(jsd)
        out["js_dist"].append(math.sqrt(max(jsd, 0.0) / math.log(2)))
        out["l2"].append(np.linalg.norm(rr - r0))
        out["cosine"].append(rr @ r0 / (np.linalg.norm(rr) * np.linalg.norm(r0)))
        out["ce_loss"].append(-lq[next_token] if next_token >= 0 else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def score_curve(metric, c):
    c = np.asarray(c, np.float64)
    if metric == "cosine":
        return 1.0 - c
    if metric == "ce_loss":
        return c - c[..., :1]
    return c


def teren_nl_index(y, start_step, end_step, tol):
    """teren's NL_step (branch draft-paper-experiments, notebooks/baseline_experiment.py) re-written from
    its definition: the line through (start_step - 1, y) and (end_step - 1, y) over the step index; the
    first i >= end_step whose deviation divided by the line's SIGNED value exceeds tol; len(y) when none."""
    i1, i2 = start_step - 1, end_step - 1
    m = (y[i2] - y[i1]) / (i2 - i1)
    idx = np.arange(end_step, len(y))
    line = y[i1] + m * (idx - i1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(y[end_step:] - line) / line
    hit = np.nonzero(rel > tol)[0]
    return int(idx[hit[0]]) if len(hit) else len(y)


def giglemiani_nl_index(y, end_step, tol):
    """Giglemiani et al.'s nl_step (teren, branch explorations, notebooks/experiment_plateaus.ipynb): the
    line through steps 0 and end_step - 1, the first deviating step i >= end_step, returning i - 1;
    len(y) when none."""
    i = teren_nl_index(y, 1, end_step, tol)
    return i - 1 if i < len(y) else len(y)


def max_space_ratio_index(y):
    """teren's max_space_ratio_step: for each prefix y[:i] (i = 1 .. n - 1) the triangle y[i-1] * i / 2
    over np.trapz of the prefix on the step index (0 for a zero area); argmax from list position 5."""
    ratios = []
    for i in range(1, len(y)):
        area = np.trapz(y[:i], np.arange(i))
        ratios.append(0.0 if area == 0 else y[i - 1] * i / 2 / area)
    return int(np.argmax(ratios[5:])) + 5


def scores(y, alpha, onset_threshold, threshold, nl=(1, 10, 0.1), rule="least_squares", plateau_threshold=20.0,
           gig_tol=0.2):
    """The per-curve scores of one score curve y (docs/science.md definitions): NaN when undefined,
    CENSORED (+inf) when the event lies beyond the grid."""
    out = dict.fromkeys(SCORES, np.nan)
    if not np.all(np.isfinite(y)) or np.all(y == y[0]):
        return out
    S = len(y)
    slopes = np.diff(y) / np.diff(alpha)
    k = int(np.argmax(slopes))
    out["max_slope_alpha"] = CENSORED if k == S - 2 else 0.5 * (alpha[k] + alpha[k + 1])
    if threshold is not None:
        out["alpha_at_threshold"] = CENSORED
        hit = np.nonzero(y >= threshold)[0]
        if len(hit):
            k = hit[0]
            out["alpha_at_threshold"] = alpha[0] if k == 0 else np.interp(threshold, [y[k - 1], y[k]],
                                                                           [alpha[k - 1], alpha[k]])
    a, b, tol = nl
    if rule == "least_squares" and b < S - 1:
        c1, c0 = np.polyfit(alpha[a:b + 1], y[a:b + 1], 1)
        out["nonlinearity_alpha"] = CENSORED
        for k in range(b + 1, S):
            line = c0 + c1 * alpha[k]
            if abs(y[k] - line) > tol * abs(line):
                out["nonlinearity_alpha"] = alpha[k]
                break
    if rule == "teren" and b < S:
        i = teren_nl_index(y, a, b, tol)
        out["nonlinearity_alpha"] = CENSORED if i == S else alpha[i]
    if b < S:
        i = giglemiani_nl_index(y, b, gig_tol)
        out["giglemiani_nl_alpha"] = CENSORED if i == S else alpha[i]
    out["auc"] = np.trapz(y, np.arange(S))
    if S >= 7:
        j = max_space_ratio_index(y)
        out["max_space_ratio_alpha"] = CENSORED if j == S - 2 else alpha[j]
    if plateau_threshold is not None:
        hit = np.nonzero(y >= plateau_threshold)[0]  # Giglemiani's find_activation_plateau_length
        out["plateau_length"] = alpha[hit[0]] if len(hit) else CENSORED
    end = y[-1]
    if end > 0:
        n = y / end
        above = np.nonzero(n > onset_threshold)[0]
        if len(above):
            out["onset"] = alpha[above[0]]
        out["sharpness"] = np.diff(n).max() * (S - 1)
    return out


def km_median(t):
    """Kaplan-Meier median of T, +inf entries right-censored (at one point above every event), computed
    from the survival curve: the smallest event time where S(t) <= 1/2, the midpoint of the interval
    where S is exactly 1/2 (R's survival convention), +inf when S stays above 1/2 (or at 1/2 to the
    last event)."""
    t = np.sort(np.asarray(t, np.float64))
    n, surv = len(t), 1.0
    events = t[np.isfinite(t)]
    times = np.unique(events)
    for j, u in enumerate(times):
        at_risk = np.sum(t >= u)
        surv *= 1.0 - np.sum(events == u) / at_risk
        if abs(surv - 0.5) < 1e-12:
            return 0.5 * (u + times[j + 1]) if j + 1 < len(times) else np.inf
        if surv < 0.5:
            return u
    assert n > 0
    return np.inf


def censored_difference(x, y):
    """x - y with a censored (+inf) score above every measured one and two censored ones tied."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(x) & np.isinf(y), 0.0, x - y)


def percentile_linear(v, q):
    """numpy's linear percentile rule, an infinite neighbour giving that infinity (numpy's own lerp
    gives NaN there); NaN when any value is NaN."""
    v = np.sort(np.asarray(v, np.float64))
    if np.isnan(v).any():
        return np.full(len(q), np.nan)
    out = []
    for p in q:
        h = (len(v) - 1) * p / 100.0
        i = int(np.floor(h))
        t = h - i
        if i + 1 >= len(v) or t == 0 or v[i] == v[i + 1]:
            out.append(v[i])
        else:
            out.append(v[i] + t * (v[i + 1] - v[i]))
    return np.array(out)


def paired(x, y, B, seed, key):
    """Ratio of Kaplan-Meier medians, median difference, their keyed percentile-bootstrap intervals, the
    pairs kept (every pair without a NaN: censored +inf scores stay) and the censored counts."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[ok], y[ok]
    n = len(x)
    res = {"n_pairs": n, "n_censored_x": int(np.isinf(x).sum()), "n_censored_y": int(np.isinf(y).sum())}
    if n == 0:
        return res

    def ratio(a, b):
        ma, mb = km_median(a), km_median(b)
        return np.nan if np.isinf(ma) or np.isinf(mb) or mb == 0 else ma / mb

    d = censored_difference(x, y)
    res["ratio"] = ratio(x, y)
    res["difference"] = np.median(d)
    if B:
        idx = Stream(seed, key, RNG_BOOTSTRAP, 0).below_many(n, B * n).reshape(B, n)
        rr = np.array([ratio(x[i], y[i]) for i in idx])
        with np.errstate(invalid="ignore"):
            rd = np.median(d[idx], 1)
        res["ratio_ci"] = percentile_linear(rr, [2.5, 97.5])
        res["difference_ci"] = percentile_linear(rd, [2.5, 97.5])
    res["x"], res["y"], res["d"] = x, y, d
    return res
