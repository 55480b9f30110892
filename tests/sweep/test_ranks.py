"""Every variable of the output is bitwise identical for 1, 2, 3 and 4 ranks (and the one-process
run needs no mpirun). Covers every base, direction kind (file: too) and metric."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

sl.need_mpirun()
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 200, 300)
rows = os.path.join(d, "rows.npy")
np.save(rows, np.random.default_rng(1).standard_normal((5, 32)).astype(np.float32))
cfg = sl.base_config(model, data, os.path.join(d, "r1.nc"), data__n_prompts=15, perturb__n_directions=3,
                     perturb__directions="real_other, cov_random, isotropic, file:" + rows)
# the second run: every newer kind, the centred basis, a readout position, every metric, the bootstrap
cfg2 = sl.base_config(model, data, os.path.join(d, "s1.nc"), data__n_prompts=15, perturb__n_directions=3,
                      perturb__directions="real_other, naive_isotropic, cov_difference, real_difference",
                      perturb__step_mode="fixed_norm", perturb__center_direction="true",
                      perturb__residual_basis="centered", perturb__position=-2,
                      readout__metrics="kl, jsd, l2, cosine, js_dist, ce_loss", output__bootstrap=300,
                      output__activations="true", data__sampling="random_window")
ini = sl.write_ini(os.path.join(d, "ranks.ini"), cfg)
ini2 = sl.write_ini(os.path.join(d, "ranks2.ini"), cfg2)

for name, path, counts in (("r1", ini, (1, 2, 3, 4)), ("s1", ini2, (2, 3))):
    r = sl.run([path, "--quiet"])
    if r.returncode != 0:
        sl.fail("1 process: " + r.stderr)
    for n in counts:
        out = os.path.join(d, "%s-mpi%d.nc" % (name, n))
        r = sl.run([path, "--quiet", "-o", out], mpi=n)
        if r.returncode != 0:
            sl.fail("%d ranks: exit %d: %s" % (n, r.returncode, r.stderr))
        bad = sl.same_bits(os.path.join(d, name + ".nc"), out)
        if bad:
            sl.fail("%s: %d ranks differ from 1 process in %s" % (name, n, bad))
        print("ok %s: %d ranks bitwise identical to 1 process (%d variables)"
              % (path, n, len(sl.variables(out))))
v = sl.variables(os.path.join(d, "r1.nc"))
if v["direction"] != ["real_other", "cov_random", "isotropic", "file:rows.npy"]:
    sl.fail("direction coordinate %r" % v["direction"])
if not np.all(np.isfinite(v["kl"])) or v["kl"].shape != (2, 4, 15, 3, 11):
    sl.fail("kl shape %s or non-finite values" % (v["kl"].shape,))
# bad input under MPI: every rank exits 2, the message is printed once
r = sl.run([ini, "--set", "perturb.steps=x"], mpi=3)
lines = [l for l in r.stderr.splitlines() if l.startswith("plateau")]
if r.returncode != 2 or len(lines) != 1 or "[perturb] steps: 'x' is not an integer" not in lines[0]:
    sl.fail("bad config on 3 ranks: exit %d: %s" % (r.returncode, r.stderr))
print("ok bad config on 3 ranks: exit 2, one message")

# ranks that compute with different arithmetic (OpenBLAS kernels, here forced by OPENBLAS_CORETYPE as on
# a job across CPU types): every rank exits 2 before any work, rank 0 names the first one that differs
def kernels(coretype):
    r = sl.run([ini, "--dry-run"], env={"OPENBLAS_CORETYPE": coretype})
    line = [l for l in r.stdout.splitlines() if l.startswith("; compute_kernels: ")]
    return line[0].split(": ", 1)[1].split(";")[0].strip() if r.returncode == 0 and line else None


a, b = kernels("Haswell"), kernels("Sandybridge")
if a and b and a != b:
    env = sl.run_env()
    cmd = [sl.shutil.which("mpirun"), "--oversubscribe", "-n", "1", "-x", "OPENBLAS_CORETYPE=Haswell", sl.BIN, "run",
           ini, "--quiet", "-o", os.path.join(d, "mixed.nc"), ":", "-n", "1", "-x", "OPENBLAS_CORETYPE=Sandybridge",
           sl.BIN, "run", ini, "--quiet", "-o", os.path.join(d, "mixed.nc")]
    r = sl.subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    lines = [l for l in r.stderr.splitlines() if l.startswith("plateau")]
    if (r.returncode != 2 or len(lines) != 1 or "rank 1 computes with " + b not in lines[0] or a not in lines[0]
            or os.path.exists(os.path.join(d, "mixed.nc"))):
        sl.fail("ranks with different OpenBLAS kernels: exit %d: %s" % (r.returncode, r.stderr))
    print("ok ranks with different kernels (%s / %s): exit 2, one message, no output" % (a, b))
else:
    print("skip ranks with different kernels: OPENBLAS_CORETYPE does not change this OpenBLAS's kernel (%s / %s)"
          % (a, b))
print("rank tests passed")
