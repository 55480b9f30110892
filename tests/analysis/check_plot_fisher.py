"""analysis/plot_fisher.py on a tiny synthetic sweep with [fisher] k, the fisher and optimized kinds and a
synthetic SAE: every row of the table it prints against numpy computed here from the file's variables
(read with netCDF4, not xarray): per eigen index the median and quartiles of fisher_eigenvalue over the
distinct bases (real: one per prompt, sample 0; synthetic: one per (prompt, sample)), fisher_trace,
kl_rayleigh per kind, the curves at the alphas nearest 0.1/0.3/0.5/1, optimum_objective,
optimum_distinct and the max |cos| with the SAE; and the three figures are written as PNG files."""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sweep"))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 500, 300)
sae = os.path.join(d, "sae")
r = subprocess.run([sl.BIN, "synth-sae", sae, "--model", model, "--hook", "blocks.1.hook_resid_pre", "--d-sae", "48"],
                   capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth-sae: " + r.stderr)
out = os.path.join(d, "f.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=4, perturb__n_directions=2,
                     perturb__directions="optimized, fisher, cov_random", perturb__steps=11, perturb__alpha_max=1.0,
                     perturb__center_direction="false", perturb__step_mode="fixed_norm", fisher__k=3, readout__metrics="kl", output__bootstrap=0,
                     optimize__radius_alpha=0.3, optimize__starts=3, sae__path=sae)
r = sl.run([sl.write_ini(os.path.join(d, "f.ini"), cfg), "--quiet"])
if r.returncode != 0:
    sl.fail("sweep: " + r.stderr)
figs = os.path.join(d, "figs")
r = subprocess.run(["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "plot_fisher.py"), out, "-o", figs],
                   capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("plot_fisher.py: exit %d: %s" % (r.returncode, r.stderr))
for f in ("fisher_spectrum.png", "kl_optima.png", "sae_cos.png"):
    with open(os.path.join(figs, f), "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            sl.fail("%s is not a PNG" % f)

lines = r.stdout.strip().split("\n")
if lines[0].split("\t") != ["quantity", "base", "key", "median", "q25", "q75", "n"]:
    sl.fail("table header: %r" % lines[0])
got = {}
for line in lines[1:]:
    q, b, k, med, q25, q75, n = line.split("\t")
    got[(q, b, k)] = (float(med), float(q25), float(q75), int(n))

v = sl.variables(out)
bases, kinds, alpha = list(v["base"]), list(v["direction"]), v["alpha"]


def per_base(a, ib, base):
    """(n, ...) values of a (prompt, base, sample, ...) at base ib: a real base once per prompt."""
    x = a[:, ib].astype(float)
    return x[:, 0] if base == "real" else x.reshape((-1,) + x.shape[2:])


def ref(x):
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    return np.percentile(x, 50), np.percentile(x, 25), np.percentile(x, 75), x.size


want = {}
for ib, b in enumerate(bases):
    ev = per_base(v["fisher_eigenvalue"], ib, b)
    for i in range(ev.shape[1]):
        want[("spectrum", b, str(i))] = ref(ev[:, i])
    want[("trace", b, "-")] = ref(per_base(v["fisher_trace"], ib, b))
    for ik, k in enumerate(kinds):
        want[("rayleigh", b, k)] = ref(v["kl_rayleigh"][ib, ik])
    want[("objective", b, "-")] = ref(per_base(v["optimum_objective"], ib, b))
    want[("distinct", b, "-")] = ref(per_base(v["optimum_distinct"], ib, b))
    want[("sae_cos", b, "optimum")] = ref(per_base(v["optimum_max_sae_cos"], ib, b))
    want[("sae_cos", b, "eigen")] = ref(per_base(v["fisher_max_sae_cos"], ib, b))
ir = bases.index("real")
for a in (0.1, 0.3, 0.5, 1.0):
    i = int(np.argmin(np.abs(alpha - a)))
    for ik, k in enumerate(kinds):
        want[("curve", "real", "%s@%g" % (k, alpha[i]))] = ref(v["kl"][ir, ik, :, :, i])
if set(got) != set(want):
    sl.fail("table rows: extra %s, missing %s" % (sorted(set(got) - set(want)), sorted(set(want) - set(got))))
if want[("spectrum", "real", "0")][3] != 4 or want[("spectrum", "synthetic", "0")][3] != 4 * 2:
    sl.fail("bases counted: %s" % (want[("spectrum", "real", "0")],))
for key, w in want.items():
    g = got[key]
    if g[3] != w[3] or not np.allclose(g[:3], w[:3], rtol=1e-5, atol=1e-12, equal_nan=True):
        sl.fail("%s: table %s, numpy %s" % (key, g, w))
print("ok plot_fisher.py: %d table rows = numpy on the file, 3 figures" % len(want))
fifo = os.path.join(d, "fifo.nc")  # netCDF would wait on its writer for ever
if not os.path.exists(fifo):
    os.mkfifo(fifo)
r = subprocess.run(["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "plot_fisher.py"), fifo, "-o", figs],
                   capture_output=True, text=True, timeout=60)
if r.returncode != 2 or fifo + ": is a FIFO, not a regular file" not in r.stderr:
    sl.fail("plot_fisher.py on a FIFO: exit %d: %s" % (r.returncode, r.stderr))
print("ok plot_fisher.py refuses a FIFO (exit 2)")
