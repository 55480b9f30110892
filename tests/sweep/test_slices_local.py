"""2-D slices through the local geometry (issue 17 item 4 in issue 18's slices): [perturb] slice with the
`fisher` and `optimized` kinds, on a tiny synthetic GPT-2 (plateau synth), against

  * the 1-D sweep of the same two kinds and config: every per-base local output (fisher_eigenvalue,
    fisher_trace, fisher_eigenvector, fisher_fraction, kl_rayleigh for both axes, direction_norm, the
    optima's objective, iterations, tangential gradient, distinct count and direction) bitwise equal,
    since they depend on (prompt, base) only; the slice's alpha axis (beta = 0) equal to the 1-D curve
    of its kind bit for bit under --naive (each row one full patched forward: the axis's step vectors
    are the 1-D curve's), and to float32 rounding on the fast path (rel 1e-5; measured ~2e-7: a fast-path
    row does not keep its bits across batch compositions -- two 1-D runs that list different kinds
    beside `fisher` differ as much in kl);
  * an independent numpy model (tests/core/ref_models.py): at the real bases, every grid point
    x + alpha v1 + beta v2 with v1, v2 built here from the stored fisher_eigenvector / optimum_direction
    ([output] vectors), the file rows and the real activation (`absolute`: d/|d|; `fixed_norm`:
    |x| d/|d|), v2 orthogonalised against v1 (reometry's c - x), through one full patched forward each:
    kl and l2 against the (0, 0) point (rel 1e-4 of the grid's largest value);
  * with [sae] and real_other: the alignment outputs (fisher_max_sae_cos, fisher_real_other_cos, ...)
    bitwise the 1-D run's;
  * non-finite derivatives at the base: exit 2 naming it; under nonfinite = mark its numbers and grid NaN;
  * 1 process vs 2 ranks, bitwise;
  * `slice = fisher, fisher` refused (exit 2): each kind once, as in `directions`.
Seconds on 2 cores.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import sweeplib as sl  # noqa: E402
import ref_models  # noqa: E402

P, S, C, V, T = 3, 2, 32, 300, 8
d = sl.workdir(sys.argv)
model_dir = sl.make_model(d, embd=C, vocab=V)
data = sl.make_bin(d, T * 500, V)
rows = os.path.join(d, "rows.npy")
D = np.random.default_rng(7).standard_normal((S, C)).astype(np.float32)
np.save(rows, D)
FILE = "file:" + rows
LOCAL = ("fisher_eigenvalue", "fisher_trace", "fisher_eigenvector", "fisher_fraction", "fisher_pc_cos", "kl_rayleigh",
         "direction_norm", "base_norm", "optimum_objective", "optimum_iterations", "optimum_tangential_grad",
         "optimum_distinct", "optimum_direction", "optimum_pc_cos", "optimum_status", "optimum_grad_norm")


def config(name, **over):
    keys = dict(data__n_prompts=P, data__n_ctx=T, perturb__n_directions=S, perturb__steps=5, perturb__alpha_max=2.0,
                perturb__step_mode="absolute", readout__metrics="kl, l2", readout__read_hook="blocks.1.hook_resid_post",
                output__activations="true", output__bootstrap=0, output__vectors="true")
    keys.update(over)
    cfg = sl.base_config(model_dir, data, os.path.join(d, name + ".nc"), **keys)
    if "perturb__directions" not in over:
        del cfg["perturb"]["directions"]  # left out: the slice's two kinds
    return sl.write_ini(os.path.join(d, name + ".ini"), cfg), os.path.join(d, name + ".nc")


def run(name, **over):
    return sl.run_ok(name, *config(name, **over))


def naive(ini):
    """The run of INI with --naive (every row one full patched forward: a row's bits do not depend on its batch)."""
    out = ini[:-4] + "-naive.nc"
    r = sl.run([ini, "--quiet", "--naive", "-o", out])
    if r.returncode != 0:
        sl.fail("%s --naive: %s" % (ini, r.stderr))
    return sl.variables(out)


def against_1d(label, f, g, axis, ini_f, ini_g):
    """F (a slice) against G (the 1-D sweep of its kinds): local outputs bitwise, axis AXIS's curves close
    (and bitwise under --naive: the axis's step vectors are the 1-D curve's)."""
    if list(f["direction"]) != list(g["direction"]):
        sl.fail("%s: directions %s, the 1-D run's %s" % (label, list(f["direction"]), list(g["direction"])))
    names = [n for n in g if n in LOCAL or n.startswith(("fisher_", "optimum_"))]
    for n in names:
        if n not in f or f[n].shape != g[n].shape or f[n].tobytes() != g[n].tobytes():
            sl.fail("%s: %s differs from the 1-D sweep's (slice %s, 1-D %s)"
                    % (label, n, f[n].shape if n in f else "missing", g[n].shape))
    for m in ("kl", "l2"):
        a, b = f[m][:, axis].astype(np.float64), g[m][:, axis].astype(np.float64)
        err = np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))
        if not np.all(np.isfinite(a)) or not err <= 1e-5:
            sl.fail("%s: the slice's %s axis differs from the 1-D %s curve by %.3g" % (label, "alpha" if axis == 0
                    else "beta", m, err))
    fn, gn = naive(ini_f), naive(ini_g)
    for m in ("kl", "l2"):
        if fn[m][:, axis].tobytes() != gn[m][:, axis].tobytes():
            sl.fail("%s --naive: the slice's axis is not the 1-D %s curve bit for bit" % (label, m))
    print("ok %s: %s bitwise the 1-D sweep's; the %s axis is the 1-D %s curve (rel %.1e; --naive: bitwise)"
          % (label, ", ".join(names), "alpha" if axis == 0 else "beta", f["direction"][axis], err))


ref = ref_models.load(model_dir)


def forward(ids, x):
    resid, logits = ref.forward(ids, patch=(1, T - 1, x))
    z = logits[T - 1] - logits[T - 1].max()
    return z - np.log(np.exp(z).sum()), resid[2][T - 1]


def check_grid(label, f, mode, vectors):
    """Every grid point at the real bases against numpy; VECTORS(p, s) -> the two raw directions."""
    alpha, worst = f["alpha"].astype(np.float64), {}
    K = len(alpha)
    for p in range(P):
        ids, x = [int(t) for t in f["tokens"][p]], f["activation"][p].astype(np.float64)
        length = np.linalg.norm(x) if mode == "fixed_norm" else 1.0
        for s in range(S):
            v1, v2 = (length * u / np.linalg.norm(u) for u in vectors(p, s))
            v2 = v2 - (v1 @ v2) / (v1 @ v1) * v1  # reometry's c - x
            lp0, r0 = forward(ids, x)
            for i in range(K):
                for j in range(K):
                    lp, r = forward(ids, x + alpha[i] * v1 + alpha[j] * v2)
                    want = {"kl": float(np.exp(lp0) @ (lp0 - lp)), "l2": float(np.linalg.norm(r - r0))}
                    for m, w in want.items():
                        grid = f[m + "_slice"][0, p, s].astype(np.float64)  # base 0: real
                        err = abs(grid[i, j] - w) / max(np.abs(grid).max(), 1e-9)
                        worst[m] = max(worst.get(m, 0.0), err)
                        if not err <= 1e-4:
                            sl.fail("%s: prompt %d sample %d (alpha %g, beta %g): %s %.8g, numpy %.8g"
                                    % (label, p, s, alpha[i], alpha[j], m, grid[i, j], w))
    print("ok %s: every grid point at the real bases within %s of numpy's full patched forward"
          % (label, ", ".join("%s %.1e" % kv for kv in worst.items())))


# 1. fisher x file, absolute steps: v1 the sign-fixed eigenvector s, v2 file row s
f, ini_f, out_f = run("fisher", perturb__slice="fisher, " + FILE)
g, ini_g, _ = run("fisher-1d", perturb__directions="fisher, " + FILE)
against_1d("slice fisher x file", f, g, 0, ini_f, ini_g)
check_grid("slice fisher x file (absolute)", f, "absolute",
           lambda p, s: (f["fisher_eigenvector"][p, 0, 0, s].astype(np.float64), D[s].astype(np.float64)))
ray, eig = f["kl_rayleigh"][0, 0], f["fisher_eigenvalue"][:, 0, 0]  # [prompt, sample], [prompt, eigen]
if not np.allclose(ray, eig[:, :S], rtol=1e-3):
    sl.fail("the fisher axis's kl_rayleigh %s is not its eigenvalue %s" % (ray, eig))
print("ok the fisher axis's kl_rayleigh is its eigenvalue")

# 2. optimized x fisher, fixed_norm: the optima at radius 0.5 |x|, the fisher kind on the beta axis
opt = dict(perturb__step_mode="fixed_norm", perturb__alpha_max=1.0, optimize__radius_alpha=0.5, optimize__starts=S)
h, ini_h, out_h = run("optimized", perturb__slice="optimized, fisher", **opt)
k, ini_k, _ = run("optimized-1d", perturb__directions="optimized, fisher", **opt)
against_1d("slice optimized x fisher", h, k, 0, ini_h, ini_k)
check_grid("slice optimized x fisher (fixed_norm)", h, "fixed_norm",
           lambda p, s: (h["optimum_direction"][p, 0, 0, s].astype(np.float64),
                         h["fisher_eigenvector"][p, 0, 0, s].astype(np.float64)))

# 3. fisher x real_other with [sae]: the alignment outputs (SAE features, real_other, Sigma's PCs) as a 1-D run's
import subprocess  # noqa: E402
sae = os.path.join(d, "sae")
r = subprocess.run([sl.BIN, "synth-sae", sae, "--model", model_dir, "--hook", "blocks.1.hook_resid_pre", "--d-sae", "48"],
                   capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth-sae: " + r.stderr)
a, _, _ = run("aligned", perturb__slice="fisher, real_other", sae__path=sae, perturb__step_mode="fixed_norm",
              perturb__alpha_max=1.0)
b, _, _ = run("aligned-1d", perturb__directions="fisher, real_other", sae__path=sae, perturb__step_mode="fixed_norm",
              perturb__alpha_max=1.0)
for n in ("fisher_max_sae_cos", "fisher_sae_feature", "fisher_real_other_cos", "fisher_pc_cos"):
    if n not in a:
        sl.fail("slice fisher x real_other with [sae]: no %s" % n)
against_1d("slice fisher x real_other with [sae]", a, b, 0, *(os.path.join(d, x + ".ini") for x in ("aligned", "aligned-1d")))

# 4. non-finite derivatives at the base (tests/trust's huge attention weights, as test_fisher.py): named and
#    exit 2 under nonfinite = error; under mark the base's numbers are NaN and so is its whole grid (a plane
#    needs both axes: x + alpha v1 + beta v2 with v1 NaN)
huge = sl.overflowing_model(model_dir, os.path.join(d, "huge_attn"))
nf = [ini_f, "--quiet", "--set", "model.path=" + huge, "-o", os.path.join(d, "nf.nc")]
r = sl.run(nf)
if r.returncode != 2 or "prompt 0, base real: the Fisher metric and optima at the base" not in r.stderr \
        or len(r.stderr.strip().splitlines()) != 1:
    sl.fail("slice, non-finite logits at the base: exit %d: %s" % (r.returncode, r.stderr))
r = sl.run(nf + ["--set", "run.nonfinite=mark"])
if r.returncode != 0:
    sl.fail("slice, nonfinite = mark: " + r.stderr)
vn = sl.variables(os.path.join(d, "nf.nc"))
if not all(np.isnan(vn[n]).all() for n in ("fisher_eigenvalue", "fisher_trace", "kl_slice", "l2_slice", "kl")):
    sl.fail("slice, nonfinite = mark: the local geometry or the grid is not all NaN")
print("ok slice, non-finite derivatives at the base: exit 2 naming it; under mark its numbers and grid are NaN")

# 5. 1 process vs 2 ranks, bitwise
if sl.shutil.which("mpirun"):
    for ini, out in ((ini_f, out_f), (ini_h, out_h)):
        out2 = out[:-3] + "-mpi2.nc"
        r = sl.run([ini, "--quiet", "-o", out2], mpi=2)
        if r.returncode != 0:
            sl.fail("2 ranks: %s" % r.stderr)
        bad = sl.same_bits(out, out2)
        if bad:
            sl.fail("%s: 2 ranks differ from 1 process in %s" % (os.path.basename(out), bad))
    print("ok slices with fisher and optimized: 2 ranks bitwise identical to 1 process")
else:
    print("skip 1 vs 2 ranks: mpirun not found")

# 6. the same kind twice is refused by name
ini, _ = config("bad", perturb__slice="fisher, fisher")
r = sl.run([ini])
if r.returncode != 2 or "'fisher' is listed twice" not in r.stderr or len(r.stderr.strip().splitlines()) != 1:
    sl.fail("slice = fisher, fisher: exit %d, want 2 and a one-line message: %s" % (r.returncode, r.stderr))
print("ok slice = fisher, fisher refused (exit 2)")
print("slice local-geometry tests passed")
