"""How the Fisher eigenvectors and the optima line up with the base's real_other directions and with the
leading principal components of Sigma (issue 17, item 5: fisher_real_other_cos, optimum_real_other_cos,
fisher_pc_cos, optimum_pc_cos), on a tiny synthetic GPT-2, against numpy computed from the file's own
vectors ([output] vectors: fisher_eigenvector, optimum_direction; [output] activations: activation, sigma):

  * the PCs: numpy's eigh of the file's `sigma`, the [fisher] n_pcs eigenvectors of largest eigenvalue;
    |cos| of every eigenvector / optimum with each (abs 1e-5: the vectors are stored in float32);
  * real_other at the real base: x_partner - x with partner from the file's `partner` (prompt, sample)
    and x = activation[prompt]; |cos| with each of the n_directions partners' differences (abs 1e-5);
    at a synthetic base (not stored) the values are |cos| in [0, 1], and those of the real_other sample s
    at base sample s are not the real base's (the base differs);
  * both again under residual_basis = centered (sigma is then P Sigma P, the vectors mean-free);
  * absent: without real_other no `other` dimension; [fisher] n_pcs = 0 no `pc` dimension;
  * 1 process and 2 ranks bitwise identical.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

K, S, P, NO, NPC = 3, 3, 3, 3, 4
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 500, 300)
cfg = sl.base_config(model, data, os.path.join(d, "a.nc"), data__n_prompts=P, perturb__n_directions=S,
                     perturb__directions="fisher, real_other, optimized", perturb__bases="real, synthetic",
                     perturb__step_mode="absolute", perturb__steps=3, perturb__alpha_max=2.0, fisher__k=K,
                     fisher__n_pcs=NPC, readout__metrics="kl", output__activations="true", output__bootstrap=0,
                     output__vectors="true", optimize__radius_alpha=1.0, optimize__starts=NO)
ini = sl.write_ini(os.path.join(d, "a.ini"), cfg)


def abs_cos(A, B):
    A = A / np.linalg.norm(A, axis=-1, keepdims=True)
    B = B / np.linalg.norm(B, axis=-1, keepdims=True)
    return np.abs(A @ B.T)


def check(path, basis):
    v = sl.variables(path)
    for name, shape in (("fisher_pc_cos", (P, 2, S, K, NPC)), ("optimum_pc_cos", (P, 2, S, NO, NPC)),
                        ("fisher_real_other_cos", (P, 2, S, K, S)), ("optimum_real_other_cos", (P, 2, S, NO, S))):
        x = v[name]
        if x.shape != shape or not np.all(np.isfinite(x)) or not np.all((x >= 0) & (x <= 1 + 1e-12)):
            sl.fail("%s (%s): shape %s (want %s) or values outside [0, 1]: %s" % (name, basis, x.shape, shape, x))
    w, V = np.linalg.eigh(v["sigma"].astype(np.float64))
    gaps = -np.diff(w[::-1][:NPC + 1])
    if not np.all(gaps > 1e-6 * w[-1]):
        sl.fail("%s: Sigma's leading eigenvalues %s too close for its PCs to be defined" % (basis, w[::-1][:NPC + 1]))
    pcs = V[:, ::-1][:, :NPC].T  # [NPC, C]
    act, partner = v["activation"].astype(np.float64), v["partner"]
    worst = {"pc": 0.0, "real_other": 0.0}
    for p in range(P):
        others = act[partner[p]] - act[p]  # [S, C]: real_other's directions at the real base
        for b in range(2):
            for s in range(S):
                U = v["fisher_eigenvector"][p, b, s].astype(np.float64)
                O = v["optimum_direction"][p, b, s].astype(np.float64)
                worst["pc"] = max(worst["pc"], np.max(np.abs(v["fisher_pc_cos"][p, b, s] - abs_cos(U, pcs))),
                                  np.max(np.abs(v["optimum_pc_cos"][p, b, s] - abs_cos(O, pcs))))
                if b == 0:
                    worst["real_other"] = max(
                        worst["real_other"],
                        np.max(np.abs(v["fisher_real_other_cos"][p, b, s] - abs_cos(U, others))),
                        np.max(np.abs(v["optimum_real_other_cos"][p, b, s] - abs_cos(O, others))))
        # a real base is the same for every sample, and so are its numbers
        for name in ("fisher_pc_cos", "fisher_real_other_cos", "optimum_real_other_cos"):
            if not np.array_equal(v[name][p, 0, 0], v[name][p, 0, 1]):
                sl.fail("%s (%s): the real base's samples differ" % (name, basis))
        # a synthetic base is another base: x_partner - base is another direction
        if np.allclose(v["fisher_real_other_cos"][p, 1, 0], v["fisher_real_other_cos"][p, 0, 0], atol=1e-6):
            sl.fail("fisher_real_other_cos (%s): the synthetic base's equal the real base's" % basis)
    for what, e in worst.items():
        if not e <= 1e-5:
            sl.fail("%s |cos| (%s) vs numpy from the file's vectors: max error %.2e > 1e-5" % (what, basis, e))
        print("ok %s |cos| (%s) vs numpy from the file's vectors: max absolute error %.1e" % (what, basis, e))


r = sl.run([ini, "--quiet"])
if r.returncode != 0:
    sl.fail("sweep: " + r.stderr)
check(os.path.join(d, "a.nc"), "raw basis")
cen = os.path.join(d, "c.nc")
r = sl.run([ini, "--quiet", "--set", "perturb.residual_basis=centered", "-o", cen])
if r.returncode != 0:
    sl.fail("centered: " + r.stderr)
check(cen, "residual_basis = centered")

none = os.path.join(d, "n.nc")
r = sl.run([ini, "--quiet", "--set", "perturb.directions=fisher, optimized", "--set", "fisher.n_pcs=0", "-o", none])
if r.returncode != 0:
    sl.fail("without real_other, n_pcs = 0: " + r.stderr)
vn = sl.variables(none)
left = [n for n in ("fisher_pc_cos", "optimum_pc_cos", "fisher_real_other_cos", "optimum_real_other_cos") if n in vn]
if left:
    sl.fail("without real_other and with n_pcs = 0 the file still has %s" % left)
print("ok without real_other and with [fisher] n_pcs = 0: no alignment variables")

sl.need_mpirun()
out2 = os.path.join(d, "a-mpi2.nc")
r = sl.run([ini, "--quiet", "-o", out2], mpi=2)
if r.returncode != 0:
    sl.fail("2 ranks: " + r.stderr)
bad = sl.same_bits(os.path.join(d, "a.nc"), out2)
if bad:
    sl.fail("2 ranks differ from 1 process in %s" % bad)
print("ok 2 ranks bitwise identical to 1 process (the alignment variables included)")
print("fisher alignment tests passed")
