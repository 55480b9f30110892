"""scripts/quickstart_summary.py, the table jobs/quickstart.sh ends with: a small sweep in the
quickstart's layout (real and synthetic bases; real_other, cov_random, naive_isotropic; fixed_norm
steps) on a tiny synthetic model, and every printed number recomputed here with numpy from the raw
curves read with netCDF4: the medians at each alpha, the ratios, and the bootstrap intervals by the
recipe in the script's docstring. Also: the model's name and kind in the header, and one line + exit 2
for a file that is not a result."""
import os
import subprocess
import sys

import netCDF4
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import jobslib as jl  # noqa: E402
from sweeplib import run_env  # noqa: E402  (a run's environment: no LeakSanitizer report of Open MPI's allocations)

d = jl.workdir(sys.argv, "jobs-quickstart-summary")
model = os.path.join(d, "tiny-model")
r = subprocess.run([jl.BIN, "synth", model, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "32",
                    "--vocab", "300"], capture_output=True, text=True)
if r.returncode != 0:
    jl.fail("synth: " + r.stderr)
tokens = os.path.join(d, "tokens.bin")
np.random.default_rng(1).integers(0, 300, size=20000).astype("<u2").tofile(tokens)
out = os.path.join(d, "result.nc")
sets = {"model.path": model, "data.prompts": tokens, "data.n_prompts": "40", "data.bos": "false",
        "perturb.steps": "21", "perturb.cov_prompts": "80", "output.bootstrap": "0"}
cmd = [jl.BIN, "run", os.path.join(jl.SRC, "jobs", "quickstart.ini"), "--quiet", "-o", out]
for k, v in sets.items():
    cmd += ["--set", "%s=%s" % (k, v)]
r = subprocess.run(cmd, capture_output=True, text=True, env=run_env())
if r.returncode != 0:
    jl.fail("plateau run: " + r.stderr)

N_BOOT, SEED = 300, 3
script = os.path.join(jl.SRC, "scripts", "quickstart_summary.py")
r = subprocess.run([sys.executable, script, out, "--bootstrap", str(N_BOOT), "--seed", str(SEED)],
                   capture_output=True, text=True)
if r.returncode != 0:
    jl.fail("quickstart_summary.py: exit %d: %s" % (r.returncode, r.stderr))
text = r.stdout

ds = netCDF4.Dataset(out)
alpha = ds["alpha"][:].astype(np.float64)
bases = list(ds["base"][:])
directions = list(ds["direction"][:])
kl = np.asarray(ds["kl"][:], dtype=np.float64)  # (base, direction, prompt, sample, alpha)
if not text.startswith("== tiny-model: SYNTHETIC model (random weights)"):
    jl.fail("header does not name the model and its kind:\n" + text[:200])
for needle in ("model " + model, "40 prompts × 1 sample each", "steps: fixed_norm, direction centred",
               "centered residual basis", "result " + out):
    if needle not in text:
        jl.fail("header lacks %r:\n%s" % (needle, text[:600]))


def g(x):
    return "%.4g" % x


def expected(num, den, k):
    """Medians, ratio and interval by the docstring's recipe, written out here."""
    (b1, d1), (b2, d2) = num, den
    x = kl[b1, d1, :, :, k].reshape(-1)
    y = kl[b2, d2, :, :, k].reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    rng = np.random.default_rng([SEED, b1, d1, b2, d2, k])
    idx = rng.integers(0, n, size=(N_BOOT, n))
    rep = np.median(x[idx], axis=1) / np.median(y[idx], axis=1)
    lo, hi = np.percentile(rep, [2.5, 97.5])
    mx, my = np.median(x), np.median(y)
    return n, mx, my, mx / my, lo, hi


rows = {}
for line in text.splitlines():
    rows.setdefault(line.split()[0] if line.split() else "", []).append(line)
br, bs = bases.index("real"), bases.index("synthetic")
checked = 0
for di, direction in enumerate(directions):
    for a in (0.05, 0.1, 0.2):
        k = int(np.argmin(np.abs(alpha - a)))
        n, mr, ms, ratio, lo, hi = expected((br, di), (bs, di), k)
        want = "%s %s %d %s %s %s [%s, %s]" % (direction, "%g" % alpha[k], n, g(mr), g(ms), g(ratio), g(lo), g(hi))
        got = [" ".join(line.split()) for line in rows.get(direction, [])]
        if want not in got:
            jl.fail("plateau row %s @ %g: expected %r, table has %r" % (direction, a, want, got))
        checked += 1
dr = directions.index("real_other")
others = [i for i in range(len(directions)) if i != dr]
for a in (0.2, 0.4, 0.7, 1.0):
    k = int(np.argmin(np.abs(alpha - a)))
    cells, ratios = [], []
    for di in others:
        n, mx, mo, ratio, lo, hi = expected((br, di), (br, dr), k)
        cells.append(g(mx))
        ratios.append("%s [%s, %s]" % (g(ratio), g(lo), g(hi)))
    want = " ".join(["%g" % alpha[k], g(mo)] + cells + ratios)
    got = [" ".join(line.split()) for line in rows.get("%g" % alpha[k], [])]
    if want not in got:
        jl.fail("sensitive row @ %g: expected %r, table has %r" % (a, want, got))
    checked += 1

bad = os.path.join(d, "not-a-result.nc")
with open(bad, "w") as f:
    f.write("plain text\n")
r = subprocess.run([sys.executable, script, bad], capture_output=True, text=True)
jl.expect(r, 2, "quickstart_summary.py on a text file")
jl.one_line(r, "quickstart_summary.py on a text file", "not-a-result.nc: not a readable NetCDF file")
print("quickstart summary tests passed (%d rows recomputed)" % checked)
