"""analysis/plot_slices.py on a tiny synthetic slice sweep ([perturb] slice): the table it writes
(<m>_slice.tsv: base, alpha, beta, statistic, count) against numpy's median and mean over (prompt,
sample) of the file's raw <m>_slice (read with netCDF4, not xarray), the figures written as PNG files,
and a file without a slice refused with exit 2."""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sweep"))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
out = os.path.join(d, "s.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=4, perturb__n_directions=2, perturb__slice="cov_random, real_other",
                     perturb__directions="cov_random, real_other", perturb__steps=5, perturb__alpha_max=1.0,
                     readout__metrics="kl, l2", output__bootstrap=0)
r = sl.run([sl.write_ini(os.path.join(d, "s.ini"), cfg), "--quiet"])
if r.returncode != 0:
    sl.fail("sweep: " + r.stderr)
script = os.path.join(sl.SRC, "analysis", "plot_slices.py")
v = sl.variables(out)
for stat in ("median", "mean"):
    figs = os.path.join(d, "figs-" + stat)
    r = subprocess.run(["/usr/bin/python3", script, out, "-o", figs, "--stat", stat, "--prompts", "2"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("plot_slices.py: exit %d: %s" % (r.returncode, r.stderr))
    for m in ("kl", "l2"):
        for f in ("%s_slice.png" % m, "%s_slice_prompts.png" % m):
            with open(os.path.join(figs, f), "rb") as fh:
                if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                    sl.fail("%s is not a PNG" % f)
        raw = v[m + "_slice"].astype(np.float64)  # [base, prompt, sample, alpha, beta]
        flat = raw.reshape(raw.shape[0], -1, raw.shape[3], raw.shape[4])
        want = np.nanmedian(flat, 1) if stat == "median" else np.nanmean(flat, 1)
        count = np.isfinite(flat).sum(1)
        lines = open(os.path.join(figs, m + "_slice.tsv")).read().strip().split("\n")
        if lines[0].split("\t") != ["base", "alpha", "beta", stat, "count"]:
            sl.fail("%s table header: %r" % (m, lines[0]))
        bases, alpha = list(v["base"]), v["alpha"]
        if len(lines) - 1 != len(bases) * len(alpha) ** 2:
            sl.fail("%s table: %d rows, want %d" % (m, len(lines) - 1, len(bases) * len(alpha) ** 2))
        for line in lines[1:]:
            b, a, be, val, n = line.split("\t")
            bi, i, j = bases.index(b), int(np.argmin(np.abs(alpha - float(a)))), int(np.argmin(np.abs(alpha - float(be))))
            if alpha[i] != float(a) or alpha[j] != float(be) or int(n) != count[bi, i, j] or \
                    not np.isclose(float(val), want[bi, i, j], rtol=1e-6, atol=1e-12):
                sl.fail("%s %s at (%s, %s, %s): %s (n %s), numpy %r (n %d)" % (m, stat, b, a, be, val, n, want[bi, i, j],
                                                                           count[bi, i, j]))
    print("ok plot_slices.py --stat %s: kl and l2 tables match numpy over (prompt, sample); PNGs written" % stat)
one_d = os.path.join(d, "one.nc")
cfg = sl.base_config(model, data, one_d, data__n_prompts=2, perturb__directions="cov_random", perturb__steps=3,
                     readout__metrics="kl", output__bootstrap=0)
r = sl.run([sl.write_ini(os.path.join(d, "one.ini"), cfg), "--quiet"])
r = subprocess.run(["/usr/bin/python3", script, one_d, "-o", os.path.join(d, "x")], capture_output=True, text=True)
if r.returncode != 2 or "not a slice result" not in r.stderr:
    sl.fail("a 1-D result: exit %d: %s" % (r.returncode, r.stderr))
print("ok a 1-D result refused (exit 2)")
fifo = os.path.join(d, "fifo.nc")  # netCDF would wait on its writer for ever
if not os.path.exists(fifo):
    os.mkfifo(fifo)
r = subprocess.run(["/usr/bin/python3", script, fifo, "-o", os.path.join(d, "x")], capture_output=True, text=True,
                   timeout=60)
if r.returncode != 2 or fifo + ": is a FIFO, not a regular file" not in r.stderr:
    sl.fail("a FIFO as the result: exit %d: %s" % (r.returncode, r.stderr))
print("ok a FIFO as the result refused (exit 2)")
