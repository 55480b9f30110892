"""The paired comparisons in the NetCDF against numpy and scipy.stats.

For every (metric, score, comparison) of a sweep with both bases and four direction kinds: the pairs
that entered (both scores defined: finite, or censored +inf -- a curve whose event lies beyond the grid
is kept, never dropped), the censored counts on each side, the ratio of Kaplan-Meier medians (computed
from the survival curve by hand), the median difference with censored values tied at the top and the median difference (numpy), their
95 % percentile-bootstrap intervals (the keyed resampling re-implemented from the README), and the
Wilcoxon signed-rank p-value and W+ against scipy.stats.wilcoxon (exact for <= 50 untied nonzero
differences, the normal approximation with tie correction otherwise). 36 pairs per comparison, so
continuous scores take the exact path and grid-valued ones (onset: ties and zeros) the approximation.
"""
import os
import sys
import warnings

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402

warnings.filterwarnings("ignore", "Sample size too small")  # scipy's note on n < 10; we compare anyway
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 200, 300)
B, SEED = 250, 9
out = os.path.join(d, "stats.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=12, perturb__n_directions=3, run__seed=SEED,
                     perturb__directions="real_other, cov_random, naive_isotropic, real_difference",
                     perturb__steps=15, readout__nonlinearity="1, 6, 0.1", output__bootstrap=B,
                     readout__metrics="kl, js_dist, l2, cosine")
r = sl.run([sl.write_ini(os.path.join(d, "stats.ini"), cfg), "--quiet"])
if r.returncode != 0:
    sl.fail("sweep: " + r.stderr)
f = sl.variables(out)
bases, dirs, comps = f["base"], f["direction"], f["comparison"]
want_comps = ["real/synthetic @ %s" % x for x in dirs] + \
    ["%s/real_other @ %s" % (x, b) for b in bases for x in dirs if x != "real_other"]
if comps != want_comps:
    sl.fail("comparisons %s, want %s" % (comps, want_comps))
if not np.array_equal(f["bound"], [0.025, 0.975]):
    sl.fail("bound coordinate %s" % f["bound"])
n_exact = n_approx = n_kept = n_censored = n_mixed = 0
for m in ("kl", "js_dist", "l2", "cosine"):
    for sc in ref.SCORES:
        name = "%s_%s" % (m, sc)
        if name not in f:
            continue
        for c, label in enumerate(comps):
            bx, dx = f["comparison_x_base"][c], f["comparison_x_direction"][c]
            by, dy = f["comparison_y_base"][c], f["comparison_y_direction"][c]
            if label != "%s/%s @ %s" % ((bases[bx], bases[by], dirs[dx]) if bx != by else
                                        (dirs[dx], dirs[dy], bases[bx])):
                sl.fail("comparison %r does not match its indices" % label)
            x, y = f[name][bx, dx].ravel(), f[name][by, dy].ravel()
            want = ref.paired(x, y, B, SEED, ref.fnv1a("%s|%s|%s" % (m, sc, label)))
            where = "%s %s" % (name, label)
            for k in ("n_pairs", "n_censored_x", "n_censored_y"):
                if f[name + "_" + k][c] != want[k]:
                    sl.fail("%s: %s %d, want %d" % (where, k, f[name + "_" + k][c], want[k]))
            n_kept += want["n_pairs"]
            n_censored += want["n_censored_x"] + want["n_censored_y"]
            n_mixed += int(np.sum(np.isinf(want["x"]) != np.isinf(want["y"])))
            if want["n_pairs"] == 0:
                continue
            for k in ("ratio", "difference"):
                if not np.allclose(f[name + "_" + k][c], want[k], rtol=1e-12, atol=0, equal_nan=True):
                    sl.fail("%s: %s %r, want %r" % (where, k, f[name + "_" + k][c], want[k]))
                if not np.allclose(f[name + "_" + k + "_ci"][c], want[k + "_ci"], rtol=1e-12, atol=1e-300,
                                   equal_nan=True):
                    sl.fail("%s: %s_ci %s, want %s" % (where, k, f[name + "_" + k + "_ci"][c], want[k + "_ci"]))
            dd = want["d"]
            # the signed-rank test sees only signs and ranks: a censored-vs-measured difference (+-inf) is
            # tied at the top of |d|, the same as any common value above every finite |d|
            top = 2.0 * np.abs(dd[np.isfinite(dd)]).max(initial=0.0) + 1.0
            dd = np.where(np.isinf(dd), np.sign(dd) * top, dd)
            nz = dd[dd != 0]
            if len(nz) == 0:
                if not np.isnan(f[name + "_wilcoxon_p"][c]):
                    sl.fail("%s: all differences zero, p should be NaN" % where)
                continue
            ranks = stats.rankdata(np.abs(nz))
            exact = len(dd) <= 50 and len(nz) == len(dd) and len(np.unique(np.abs(nz))) == len(nz)
            res = stats.wilcoxon(dd, method="exact" if exact else "approx", correction=False)
            n_exact += exact
            n_approx += not exact
            if not np.isclose(f[name + "_wilcoxon_p"][c], res.pvalue, rtol=1e-9, atol=1e-15):
                sl.fail("%s: Wilcoxon p %r, scipy %r (%s)" % (where, f[name + "_wilcoxon_p"][c], res.pvalue,
                                                                 "exact" if exact else "approx"))
            if f[name + "_wilcoxon_w"][c] != ranks[nz > 0].sum():
                sl.fail("%s: W+ %r, want %r" % (where, f[name + "_wilcoxon_w"][c], ranks[nz > 0].sum()))
if n_censored == 0 or n_mixed == 0:
    sl.fail("the sweep had %d censored scores in kept pairs, %d pairs censored on one side only: the censored "
            "path must be exercised" % (n_censored, n_mixed))
print("ok %d pairs kept, %d censored scores among them (%d pairs censored on one side only)"
      % (n_kept, n_censored, n_mixed))
if n_exact == 0 or n_approx == 0:
    sl.fail("the test covered %d exact and %d approximate p-values: both paths must be exercised"
            % (n_exact, n_approx))
print("ok %d comparisons x scores x metrics: n_pairs, ratio, difference and keyed bootstrap intervals match numpy; "
      "Wilcoxon p and W+ match scipy (%d exact, %d normal approximation)" % (len(comps), n_exact, n_approx))

# bootstrap = 0: no intervals, the rest unchanged
out0 = os.path.join(d, "b0.nc")
r = sl.run([sl.write_ini(os.path.join(d, "b0.ini"), cfg), "--quiet", "-o", out0, "--set", "output.bootstrap=0"])
if r.returncode != 0:
    sl.fail("bootstrap = 0: " + r.stderr)
g = sl.variables(out0)
if not np.all(np.isnan(g["kl_onset_ratio_ci"])) or not np.array_equal(g["kl_onset_ratio"], f["kl_onset_ratio"],
                                                                        equal_nan=True):
    sl.fail("bootstrap = 0 should leave only the intervals NaN")
print("ok bootstrap = 0: intervals NaN, estimates unchanged")
# GSL is linked without gslcblas in front of OpenBLAS: every cblas symbol, plateau's and GSL's own,
# binds to OpenBLAS (gslcblas would be a slow reference BLAS under the model's sgemm)
import re  # noqa: E402
import subprocess  # noqa: E402

r = subprocess.run([sl.BIN, "info", os.path.join(d, "nowhere")], capture_output=True, text=True,
                   env=dict(os.environ, LD_BIND_NOW="1", LD_DEBUG="bindings"))
binds = re.findall(r"binding file (\S+) .* to (\S+) .*symbol `(cblas_\w+)'", r.stderr)
if not binds:
    print("SKIP (cblas check): the dynamic linker printed no bindings (LD_DEBUG unsupported here)")
else:
    bad = [b for b in binds if "openblas" not in b[1]]
    if bad or not any(b[2] == "cblas_sgemm" for b in binds):
        sl.fail("cblas symbols bound outside OpenBLAS: %s" % bad[:5])
    print("ok %d cblas bindings (plateau's and libgsl's) all go to OpenBLAS" % len(binds))
print("statistics tests passed")
