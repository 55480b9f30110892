"""The numbers behind the figures and the table: NaN-aware curve statistics, bootstrap intervals of
score medians, and the paired comparisons (read from the file when plateau computed them, else
computed here the same way as before plateau did).

NaN-aware as on the C side: a non-finite value (NaN, ±inf) leaves the statistic it would enter;
a statistic with nothing left is NaN.

Bootstrap, exactly (so anyone can reproduce an interval): x are the n finite values of a kind in
(prompt, sample) order as float64;
  rng = numpy.random.default_rng([S, h, c, 0, b, d, k])              median of a score
  rng = numpy.random.default_rng([S, h, c, 1, k, b1, d1, b2, d2])    paired comparison (computed here)
where S is the seed, h, b, d index the file's hook, base and direction coordinates, c is the
metric's code (METRIC_CODE: kl 0, jsd 1, l2 2, cosine 3, js_dist 4, ce_loss 5, sae_l0 6,
sae_recon_error 7) and k the score's
(SCORE_CODE: onset 0, max_slope_alpha 1, sharpness 2, alpha_at_threshold 3, nonlinearity_alpha 4,
auc 5, max_space_ratio_alpha 6, plateau_length 7, giglemiani_nl_alpha 8; another score: zlib.crc32 of
its name); idx = rng.integers(0, n, size=(N, n)); the N replicate medians are numpy.median(x[idx],
axis=1) and the interval is their 2.5 % and 97.5 % points (numpy's linear rule; a +inf neighbour gives
+inf). NaN scores (undefined) are left out; censored ones (+inf: the event lies beyond the grid) are
kept, tied at the top, so a median is the Kaplan-Meier median (+inf when beyond the grid). A paired
comparison keeps the pairs with no NaN member and resamples them with one idx: ratio = median(x) /
median(y) (NaN when either is +inf) with replicates median(x[idx]) / median(y[idx]); difference =
median(x - y) (two censored scores differ by 0) with replicates median((x - y)[idx]).
"""
import warnings
import zlib

import numpy as np

from .result import METRIC_CODE, SCORE_CODE, SCORE_DIMS, ResultError, strings

# Fields of a paired comparison, in table order.
PAIRED_FIELDS = ("n_pairs", "ratio", "ratio_lo", "ratio_hi", "diff", "diff_lo", "diff_hi", "w_plus", "p_value")
# Other spellings a writer might use for the same fields.
FIELD_ALIASES = {"n": "n_pairs", "pairs": "n_pairs", "difference": "diff", "difference_lo": "diff_lo",
                 "difference_hi": "diff_hi", "p": "p_value", "wilcoxon_p": "p_value", "pvalue": "p_value",
                 "wilcoxon_w": "w_plus", "w": "w_plus"}
# An interval stored as one variable over (comparison, bound): its two fields.
INTERVALS = {"ratio_ci": ("ratio_lo", "ratio_hi"), "diff_ci": ("diff_lo", "diff_hi"),
             "difference_ci": ("diff_lo", "diff_hi")}


def score_code(score):
    return SCORE_CODE.get(score, zlib.crc32(score.encode()))


def finite(x):
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


# -- curves ----------------------------------------------------------------------------------------

RAW_BANDS = ((0.05, 0.95), (0.25, 0.75))  # from raw curves; outermost first


def curve_stats(res, m, h):
    """Median and bands per (base, direction, alpha) for hook h.
    Returns (median[B, D, A], [((lo, hi), q_lo[B, D, A], q_hi[B, D, A]), ...] outermost first,
    count[B, D, A] or None, source). From raw curves (non-finite values left out) the bands are
    5-95 % and 25-75 %; from the file's aggregates they are every symmetric pair (q, 1 - q) of its
    quantile levels."""
    raw = res.raw(m, h)
    if raw is not None:
        B, D, P, S, A = raw.shape
        flat = np.where(np.isfinite(raw), raw, np.nan).reshape(B, D, P * S, A)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as intended
            med = np.nanmedian(flat, axis=2)
            bands = [((lo, hi), np.nanquantile(flat, lo, axis=2), np.nanquantile(flat, hi, axis=2))
                     for lo, hi in RAW_BANDS]
        return med, bands, np.isfinite(flat).sum(axis=2), "raw curves"
    med = res.array(f"{m}_median", ("base", "direction", "alpha"), h)
    qs = res.array(f"{m}_quantiles", ("quantile", "base", "direction", "alpha"), h)
    levels = res.quantile_levels()
    bands = []
    for i in np.argsort(levels):
        lo = float(levels[i])
        match = np.nonzero(np.abs(levels - (1.0 - lo)) < 1e-9)[0]
        if lo < 0.5 and match.size:
            bands.append(((lo, float(levels[match[0]])), qs[i], qs[match[0]]))
    count = res.array(f"{m}_count", ("base", "direction", "alpha"), h) if res.has(f"{m}_count") else None
    return med, bands, count, f"{m}_median / {m}_quantiles"


def median_curve(res, m, h):
    """(B, D, A): the file's m_median when present (computed by plateau), else the NaN-aware median
    of the raw curves."""
    if res.has(f"{m}_median"):
        return res.array(f"{m}_median", ("base", "direction", "alpha"), h)
    return curve_stats(res, m, h)[0]


def sample_indices(n, k):
    """Up to k of n curves, evenly spaced over the (prompt, sample) order: the individual curves a
    figure shows (deterministic, so a test and a reader can find them)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


# -- bootstrap -----------------------------------------------------------------------------------

def replicate_medians(rng, columns, n, n_boot):
    """Bootstrap medians of each 1-D array in `columns` (all length n) under the same resampling.
    Drawn in blocks of rows to bound memory; numpy's bounded-integer stream is the same whether the
    (N, n) index matrix is drawn at once or row block by row block."""
    out = [np.empty(n_boot) for _ in columns]
    block = max(1, (1 << 22) // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        for o, x in zip(out, columns):
            o[done:done + k] = np.median(x[idx], axis=1)
        done += k
    return out


def interval(replicates):
    """2.5 % and 97.5 % points (numpy's linear rule); a neighbour at +inf (a censored median) gives +inf,
    where numpy's own interpolation would give NaN."""
    r = np.sort(np.asarray(replicates, dtype=np.float64))
    if np.isnan(r).any():
        return np.nan, np.nan
    out = []
    for q in (0.025, 0.975):
        h = (r.size - 1) * q
        i = int(np.floor(h))
        t = h - i
        out.append(r[i] if i + 1 >= r.size or t == 0 or r[i] == r[i + 1] else r[i] + t * (r[i + 1] - r[i]))
    return float(out[0]), float(out[1])


def score_median(values, seed_seq, n_boot):
    """(n, median, lo, hi) of the defined VALUES with a percentile-bootstrap 95 % interval. NaN (undefined)
    is left out; a censored score (+inf: its event lies beyond the grid) is kept, tied at the top, so the
    median is the Kaplan-Meier median (+inf when it lies beyond the grid; docs/science.md)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return 0, np.nan, np.nan, np.nan
    (rep,) = replicate_medians(np.random.default_rng(seed_seq), (x,), x.size, n_boot)
    return int(x.size), float(np.median(x)), *interval(rep)


def score_median_seed(seed, h, m, b, d, score):
    return [seed, h, METRIC_CODE[m], 0, b, d, score_code(score)]


def paired_compute(x, y, seed_seq, n_boot):
    """A paired comparison computed here (files written before plateau computed them). As plateau's
    (docs/science.md): a pair with a NaN member is left out, a censored one (+inf) kept, tied at the top;
    a ratio whose median is beyond the grid is NaN; two censored scores differ by 0."""
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    ok = ~np.isnan(x) & ~np.isnan(y) & (x != -np.inf) & (y != -np.inf)
    x, y = x[ok], y[ok]
    n = int(x.size)
    out = dict.fromkeys(PAIRED_FIELDS, np.nan)
    out["n_pairs"] = n
    if n == 0:
        return out
    with np.errstate(invalid="ignore"):
        d = np.where(np.isinf(x) & np.isinf(y), 0.0, x - y)
    rx, ry, rd = replicate_medians(np.random.default_rng(seed_seq), (x, y, d), n, n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = np.float64(np.median(x)), np.float64(np.median(y))
        out["ratio"] = float(np.nan if np.isinf(mx) or np.isinf(my) else mx / my)
        out["ratio_lo"], out["ratio_hi"] = interval(np.where(np.isinf(rx) | np.isinf(ry), np.nan, rx / ry))
    out["diff"] = float(np.median(d))
    out["diff_lo"], out["diff_hi"] = interval(rd)
    return out


# -- paired comparisons ----------------------------------------------------------------------------

def comparisons(res):
    """The comparisons the post's two experiments turn on, as (label, (b1, d1), (b2, d2)):
    real/synthetic per direction (both bases present) and every other direction against
    real_other per base (against cov_random when there is no real_other). Labels as plateau writes
    them: "real/synthetic @ cov_random", "cov_random/real_other @ real"."""
    out = []
    if "real" in res.bases and "synthetic" in res.bases:
        br, bs = res.bases.index("real"), res.bases.index("synthetic")
        for d, direction in enumerate(res.directions):
            out.append((f"real/synthetic @ {direction}", (br, d), (bs, d)))
    ref = next((r for r in ("real_other", "cov_random") if r in res.directions), None)
    if ref is not None:
        dr = res.directions.index(ref)
        for b, base in enumerate(res.bases):
            for d, direction in enumerate(res.directions):
                if d != dr:
                    out.append((f"{direction}/{ref} @ {base}", (b, d), (b, dr)))
    return out


def _field(name):
    if name in INTERVALS:
        return name
    name = FIELD_ALIASES.get(name, name)
    return name if name in PAIRED_FIELDS else None


def file_paired(res, m):
    """The paired statistics plateau wrote for metric m, or None when the file has none:
    {score: {"labels": [comparison...], field: array[hook, comparison]}}.
    Read by variable name over a `comparison` dimension whose coordinate holds the labels (after the
    leading `hook` of a merged file): m_<score>_<field>(comparison) with the fields of
    PAIRED_FIELDS or their FIELD_ALIASES (difference, wilcoxon_p, wilcoxon_w, ...), and intervals
    either as two fields (ratio_lo, ratio_hi) or as one m_<score>_ratio_ci / _difference_ci over
    (comparison, bound) whose `bound` coordinate holds the two levels."""
    ds = res.ds
    if "comparison" not in ds.dims:
        return None
    if "comparison" not in ds.variables:
        raise ResultError(f"{res.path}: the file has a 'comparison' dimension but no 'comparison' coordinate")
    labels = strings(ds["comparison"].values)
    lead = ("hook",) if res.merged else ()
    scores = res.scores(m)
    found = {}
    for name in ds.data_vars:
        var = ds[name]
        if "comparison" not in var.dims or not name.startswith(m + "_"):
            continue
        rest = name[len(m) + 1:]
        score = next((s for s in sorted(set(scores) | set(SCORE_CODE), key=len, reverse=True)
                      if rest.startswith(s + "_") and _field(rest[len(s) + 1:])), None)
        if score is None:
            continue
        field = _field(rest[len(score) + 1:])
        if field in INTERVALS:
            res._check_dims(name, ("comparison", "bound"))
            arr = np.asarray(var.transpose(*(lead + ("comparison", "bound"))).values, dtype=np.float64)
            arr = arr if res.merged else arr[None]
            levels = (np.asarray(ds["bound"].values, dtype=np.float64) if "bound" in ds.variables
                      else np.arange(arr.shape[-1], dtype=np.float64))
            lo, hi = int(np.argmin(levels)), int(np.argmax(levels))
            for f, k in zip(INTERVALS[field], (lo, hi)):
                found.setdefault(score, {})[f] = arr[..., k]
            continue
        res._check_dims(name, ("comparison",))
        arr = np.asarray(var.transpose(*(lead + ("comparison",))).values, dtype=np.float64)
        found.setdefault(score, {})[field] = arr if res.merged else arr[None]
    if not found:
        return None
    order = [s for s in scores if s in found] + sorted(s for s in found if s not in scores)
    return {s: dict(found[s], labels=labels) for s in order}


def paired_table(res, m, seed, n_boot, scores=None):
    """Paired comparisons of metric m for every hook: (source, rows) with rows
    {"hook", "h", "score", "comparison", field: value...} by hook, score, comparison. source is "file" when plateau wrote
    them (printed as they are), else "computed" (paired_compute; no Wilcoxon p-value)."""
    from_file = file_paired(res, m)
    rows = []
    if from_file is not None:
        for h, hook in enumerate(res.hooks):
            for s, fields in from_file.items():
                if scores and s not in scores:
                    continue
                for c, label in enumerate(fields["labels"]):
                    row = {"hook": hook, "h": h, "score": s, "comparison": label}
                    for f in PAIRED_FIELDS:
                        row[f] = float(fields[f][h, c]) if f in fields else np.nan
                    rows.append(row)
        return "file", rows
    comps = comparisons(res)
    for h, hook in enumerate(res.hooks):
        for s in res.scores(m):
            if scores and s not in scores:
                continue
            vals = res.array(f"{m}_{s}", SCORE_DIMS, h)
            for label, (b1, d1), (b2, d2) in comps:
                seq = [seed, h, METRIC_CODE[m], 1, score_code(s), b1, d1, b2, d2]
                row = {"hook": hook, "h": h, "score": s, "comparison": label}
                row.update(paired_compute(vals[b1, d1], vals[b2, d2], seq, n_boot))
                rows.append(row)
    return "computed", rows
