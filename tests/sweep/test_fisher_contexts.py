"""The local geometry of whole contexts (issue 17 item 4 with [perturb] position = A:B; docs/science.md
"The local geometry at a base"): every site (prompt, position t) has the geometry a one-position sweep at t
computes, and the joint kl_rayleigh of a whole-context curve is its step's quadratic form under the readout's
pulled-back Fisher metric. On a tiny synthetic GPT-2 (plateau synth), positions 5..7 of 8:

  * site t of the whole-context sweep vs a one-position sweep at t (same config otherwise): the real base's
    fisher_eigenvalue, fisher_trace and fisher_eigenvector BITWISE (the same code on the same clean run of
    t + 1 tokens, the same activation); the fisher kind's site-t direction is that eigenvector. The optima of
    site (prompt 0, first position), whose start stream is keyed alike (experiment prompt 0 in both), bitwise
    too; every other site's optima (their starts keyed by the site) converged: tangential gradient small,
    objective >= KL along each of 200 random unit directions at that position (numpy);
  * the joint kl_rayleigh of the fisher and optimized units (their steps are unit vectors per site, read
    from fisher_eigenvector / optimum_direction) against float64 central second differences of the
    independent numpy model (tests/core/ref_models.py) perturbing every position at once:
    (KL(eps) + KL(-eps)) / eps^2 / |d|^2, the KL averaged over the positions ([readout] positions = mean) or
    each position's (= each, a position dimension on kl_rayleigh); rel 1e-3;
  * the same under step_mode = fixed_norm (site j's step |x_j| u_j) and per_position = shared (every site
    the first one's step), and fisher_fraction per site of that step in the site's top-k subspace (numpy);
    the fisher kind's own site direction lies in its site's subspace (1);
  * non-finite logits at the sites: exit 2 naming (prompt, position, base); under nonfinite = mark NaN;
  * a run stopped mid-optimisation and resumed: bitwise the uninterrupted run's;
  * analysis/plot_fisher.py --position T: that position's spectrum (median vs numpy), refused without it;
  * 1 process vs 2 ranks bitwise; rank 1 of 2 killed (SIGKILL) mid-optimisation: the job ends naming it and
    the checkpoint resumes to the uninterrupted run's bits; --dry-run counts (prompt, position, base) geometry
    bases.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import sweeplib as sl  # noqa: E402
import ref_models  # noqa: E402

K, S, P, NO, T = 3, 2, 2, 3, 8
FIRST, N = 5, 3  # positions 5, 6, 7
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, T * 400, 300)


def config(name, **over):
    keys = dict(data__n_prompts=P, perturb__n_directions=S, perturb__bases="real, synthetic",
                perturb__directions="fisher, optimized, cov_random", perturb__step_mode="absolute",
                perturb__steps=5, perturb__alpha_max=2.0, fisher__k=K, optimize__radius_alpha=1.0,
                optimize__starts=NO, optimize__start_kind="naive_isotropic", readout__metrics="kl, l2",
                output__activations="true", output__bootstrap=0, output__vectors="true")
    keys.update(over)
    out = os.path.join(d, name + ".nc")
    return sl.write_ini(os.path.join(d, name + ".ini"), sl.base_config(model, data, out, **keys)), out


def sweep(name, mpi=0, **over):
    ini, out = config(name, **over)
    r = sl.run([ini, "--quiet"], mpi=mpi)
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (name, r.stderr))
    return sl.variables(out), ini, out


pos_range = "%d:%d" % (FIRST, FIRST + N)
each, ini_each, out_each = sweep("each", perturb__position=pos_range, readout__positions="each")
mean, _, _ = sweep("mean", perturb__position=pos_range, readout__positions="mean")
if list(each["position"]) != list(range(FIRST, FIRST + N)):
    sl.fail("position coordinate %s" % list(each["position"]))
for name, shape in (("fisher_eigenvalue", (N, P, 2, S, K)), ("fisher_trace", (N, P, 2, S)),
                    ("optimum_objective", (N, P, 2, S, NO)), ("fisher_eigenvector", (N, P, 2, S, K, 32)),
                    ("fisher_fraction", (N, 2, 3, P, S)), ("kl_rayleigh", (N, 2, 3, P, S))):
    if each[name].shape != shape or not np.all(np.isfinite(each[name])):
        sl.fail("positions = each: %s has shape %s (want %s) or non-finite values" % (name, each[name].shape, shape))
if mean["kl_rayleigh"].shape != (2, 3, P, S):
    sl.fail("positions = mean: kl_rayleigh has shape %s" % (mean["kl_rayleigh"].shape,))
for name in ("fisher_eigenvalue", "fisher_trace", "optimum_objective", "fisher_eigenvector", "fisher_fraction"):
    if not np.array_equal(each[name], mean[name]):
        sl.fail("%s differs between positions = each and = mean (the sites' geometry is the readout's own)" % name)
print("ok shapes: a leading position dimension on the sites' geometry; kl_rayleigh's under positions = each only")

# 1. site t == a one-position sweep at t (real base, index 0)
for j in range(N):
    t = FIRST + j
    one, _, _ = sweep("one-%d" % t, perturb__position=str(t))
    if not np.array_equal(one["activation"], each["activation"][j]):
        sl.fail("position %d: the one-position sweep's activation differs from the site's" % t)
    for name in ("fisher_eigenvalue", "fisher_trace", "fisher_eigenvector"):
        got, want = each[name][j][:, 0], one[name][:, 0]
        if not np.array_equal(got, want):
            sl.fail("position %d: %s at the real base differs from a one-position sweep's (max %.3g)"
                    % (t, name, np.abs(got - want).max()))
    if j == 0:  # site (prompt 0, position FIRST) is experiment prompt 0 in both runs: same start streams
        for name in ("optimum_objective", "optimum_direction", "optimum_iterations", "optimum_status"):
            if not np.array_equal(each[name][0][0, 0], one[name][0, 0]):
                sl.fail("position %d, prompt 0: %s differs from the one-position sweep's" % (t, name))
    print("ok position %d: the real base's eigenvalues, trace and eigenvectors bitwise a one-position sweep's%s"
          % (t, "; prompt 0's optima too" if j == 0 else ""))

# 2. the joint kl_rayleigh against central second differences of numpy's model
ref = ref_models.load(model)
tokens, act = each["tokens"], each["activation"].astype(np.float64)  # act [position, prompt, C]
positions = list(range(FIRST, FIRST + N))


def log_probs(ids, X):
    z = ref.forward(ids, patch=(1, positions, X))[1][positions]  # [N, V]
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def kl_each(l0, l1):
    return np.sum(np.exp(l0) * (l0 - l1), axis=1)  # [N]


worst = {"mean": 0.0, "each": 0.0}
for p in range(P):
    ids = [int(x) for x in tokens[p]]
    X0 = act[:, p]
    l0 = log_probs(ids, X0)
    for di, vec in ((0, "fisher_eigenvector"), (1, "optimum_direction")):
        for s in range(S):
            D = each[vec][:, p, 0, s, s].astype(np.float64)  # [N, C]: site j's unit step (absolute)
            eps = 1e-3 / np.linalg.norm(D)
            second = (kl_each(l0, log_probs(ids, X0 + eps * D)) + kl_each(l0, log_probs(ids, X0 - eps * D))) / eps ** 2
            want_each = second / np.sum(D * D)
            for name, got, want in (("mean", mean["kl_rayleigh"][0, di, p, s], want_each.mean()),
                                    ("each", each["kl_rayleigh"][:, 0, di, p, s], want_each)):
                err = float(np.max(np.abs(got - want) / np.abs(want)))
                worst[name] = max(worst[name], err)
                if not err <= 1e-3:
                    sl.fail("prompt %d, %s sample %d: kl_rayleigh (%s) %s, numpy's second differences %s"
                            % (p, vec, s, name, got, want))
print("ok joint kl_rayleigh vs float64 second differences of numpy's model: mean rel %.1e, each rel %.1e"
      % (worst["mean"], worst["each"]))

# the joint step as the step mode and per_position make it: fixed_norm (site j moves by |x_j| u_j) and
# shared (every site by the first one's step u_0); fisher_fraction per site of that step in the site's subspace
for label, over in (("fixed_norm", dict(perturb__step_mode="fixed_norm", perturb__alpha_max=0.5)),
                    ("shared", dict(perturb__per_position="shared"))):
    v, _, _ = sweep(label, perturb__position=pos_range, readout__positions="mean", perturb__bases="real",
                    perturb__directions="fisher", optimize__radius_alpha="none", optimize__starts=8,
                    optimize__start_kind="cov_random", **over)
    err_r, err_f = 0.0, 0.0
    for p in range(P):
        ids, X0 = [int(x) for x in tokens[p]], act[:, p]
        l0 = log_probs(ids, X0)
        for s in range(S):
            U = v["fisher_eigenvector"][:, p, 0, s].astype(np.float64)  # [N, K, C]
            if label == "shared":
                D = np.stack([U[0, s]] * N)
            else:
                D = U[:, s] * np.linalg.norm(X0, axis=1, keepdims=True)
            eps = 1e-3 / np.linalg.norm(D)
            second = (kl_each(l0, log_probs(ids, X0 + eps * D)) + kl_each(l0, log_probs(ids, X0 - eps * D))) / eps ** 2
            want = second.mean() / np.sum(D * D)
            err_r = max(err_r, abs(v["kl_rayleigh"][0, 0, p, s] - want) / want)
            frac = [np.sum((U[j] @ D[j]) ** 2) / (D[j] @ D[j]) for j in range(N)]
            err_f = max(err_f, float(np.max(np.abs(v["fisher_fraction"][:, 0, 0, p, s] - frac))))
    if not (err_r <= 1e-3 and err_f <= 1e-4):
        sl.fail("%s: joint kl_rayleigh rel error %.2e, fisher_fraction abs error %.2e vs numpy" % (label, err_r, err_f))
    print("ok %s: the joint kl_rayleigh vs numpy's second differences (rel %.1e), fisher_fraction per site of the "
          "site's step (abs %.1e)" % (label, err_r, err_f))
if not np.allclose(each["fisher_fraction"][:, :, 0], 1.0, rtol=1e-5):
    sl.fail("fisher_fraction of the fisher kind per site %s (want 1)" % each["fisher_fraction"][:, :, 0])
print("ok fisher_fraction of the fisher kind is 1 at every site")

# 3. the optima of every site converged (their starts keyed by the site, so no one-position twin)
obj, tan = each["optimum_objective"], each["optimum_tangential_grad"]
if not np.all(tan <= 0.05 * 2 * obj):
    sl.fail("tangential gradients %s not small against 2 f / r" % tan)
rng = np.random.default_rng(3)
for j, t in enumerate(positions):
    for p in range(P):
        ids = [int(x) for x in tokens[p]][:t + 1]  # the site's one-position readout: its prefix, read at t
        x = act[j, p]

        z0 = ref.forward(ids, patch=(1, t, x))[1][t]
        la = z0 - z0.max()
        la = la - np.log(np.exp(la).sum())

        def kl_at(u):
            z1 = ref.forward(ids, patch=(1, t, x + u))[1][t]
            lb = z1 - z1.max()
            return float(np.exp(la) @ (la - (lb - np.log(np.exp(lb).sum()))))
        rnd = rng.standard_normal((200, x.size))
        rnd /= np.linalg.norm(rnd, axis=1, keepdims=True)
        best = max(kl_at(u) for u in rnd)
        if not obj[j, p, 0, 0].max() >= best:
            sl.fail("position %d prompt %d: best optimum %g below a random direction's KL %g"
                    % (t, p, obj[j, p, 0, 0].max(), best))
print("ok every site's best optimum >= KL along each of 200 random directions at its position; tangential "
      "gradients <= 5 % of 2 f / r")

# 4. stopped mid-optimisation (PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS, the scheduler's test hook: before the
#    N-th optimiser step, a place fixed by the work done), resumed: bitwise the uninterrupted run's
stop_ini, stop_out = config("stopped", perturb__position=pos_range, readout__positions="each")
its = each["optimum_iterations"]
STOP = int(its[:2].sum()) + 2  # in the middle of the sites' optimisations (a step runs every start of a base)
r = sl.run([stop_ini, "--quiet"], env={"PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS": str(STOP)})
if r.returncode != 75:
    sl.fail("stopped before optimiser step %d: exit %d (want 75): %s" % (STOP, r.returncode, r.stderr))
r = sl.ranks_same_bits("stopped mid-optimisation, resumed", [stop_ini, "--resume"], out_each, stop_out, mpi=0)
if "optimisations under way go on where they were" not in r.stderr:
    sl.fail("resume: no optimisation under way in the checkpoint: %s" % r.stderr)
print("ok stopped before optimiser step %d (a site's optimisation under way), resumed: bitwise the uninterrupted "
      "run's" % STOP)

# non-finite logits at the sites (block 1's attention weights at 3e38, tests/trust's poke): the run stops naming
# the prompt, position and base (nonfinite = error, exit 2); under mark every site's geometry, the joint
# kl_rayleigh and the fisher kind's curves are NaN
huge = sl.overflowing_model(model, os.path.join(d, "huge_attn"))
nf_ini, nf_out = config("nf", perturb__position=pos_range, readout__positions="each", model__path=huge,
                       perturb__directions="fisher, cov_random", optimize__radius_alpha="none",
                       optimize__starts=8, optimize__start_kind="cov_random")
r = sl.run([nf_ini, "--quiet"])
want = "prompt 0, position %d, base real: the Fisher metric and optima at the base" % FIRST
if r.returncode != 2 or want not in r.stderr or len(r.stderr.strip().splitlines()) != 1:
    sl.fail("non-finite logits at the sites: exit %d: %s" % (r.returncode, r.stderr))
r = sl.run([nf_ini, "--quiet", "--set", "run.nonfinite=mark"])
vn = sl.variables(nf_out) if r.returncode == 0 else None
if vn is None or not (np.isnan(vn["fisher_eigenvalue"]).all() and np.isnan(vn["fisher_trace"]).all()
                      and np.isnan(vn["kl_rayleigh"]).all() and np.isnan(vn["kl"][:, :, 0]).all()):
    sl.fail("nonfinite = mark: exit %d, or the sites' geometry, kl_rayleigh or the fisher curves not all NaN: %s"
            % (r.returncode, r.stderr))
print("ok non-finite logits at the sites: exit 2 naming prompt 0, position %d, base real; under mark the sites' "
      "geometry, kl_rayleigh and the fisher curves are NaN" % FIRST)

# analysis/plot_fisher.py takes one position of a whole-context file (--position), refuses the file without it
import subprocess  # noqa: E402
plot = ["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "plot_fisher.py"), out_each, "-o", os.path.join(d, "figs")]
r = subprocess.run(plot, capture_output=True, text=True)
if r.returncode != 2 or "--position" not in r.stderr:
    sl.fail("plot_fisher.py without --position: exit %d: %s" % (r.returncode, r.stderr))
r = subprocess.run(plot + ["--position", str(FIRST + 1)], capture_output=True, text=True)
rows = [x.split("\t") for x in r.stdout.splitlines()[1:]]
got = [float(x[3]) for x in rows if x[0] == "spectrum" and x[1] == "real"]
want = list(np.median(each["fisher_eigenvalue"][1, :, 0, 0].astype(np.float64), axis=0))
if r.returncode != 0 or not np.allclose(got, want, rtol=1e-5):
    sl.fail("plot_fisher.py --position %d: exit %d, real spectrum %s (numpy %s): %s"
            % (FIRST + 1, r.returncode, got, want, r.stderr))
print("ok plot_fisher.py --position %d: the real spectrum's medians are that position's; refused without it"
      % (FIRST + 1))

# 5. ranks, dry-run
sl.need_mpirun()
two = os.path.join(d, "each-mpi2.nc")
sl.ranks_same_bits("whole contexts", [ini_each, "--quiet", "-o", two], out_each, two)
print("ok 2 ranks bitwise identical to 1 process")

# a rank killed (SIGKILL) mid-optimisation in a 2-rank whole-context run: the job ends, every rank gone,
# nonzero exit, the message names rank 1; no output; the checkpoint (holding the optimisations under way)
# resumes to the uninterrupted run's bits. Mid-optimisation: the kill comes once the checkpoint has grown
# past its first write, i.e. holds optimiser states (whole contexts: the sites' optima come before any unit)
import signal  # noqa: E402
import time  # noqa: E402

kill_ini, kill_out = config("killed", perturb__position="2:8", data__n_prompts=8, perturb__directions="optimized, "
                            "cov_random", perturb__steps=3, fisher__k=0, optimize__starts=8,
                            optimize__tolerance=1e-4, output__vectors="false", output__activations="false",
                            run__checkpoint_every=0.05, run__worker_timeout=5)
kill_full = os.path.join(d, "killed-full.nc")
r = sl.run([kill_ini, "--quiet", "-o", kill_full])
if r.returncode != 0:
    sl.fail("killed: uninterrupted run: " + r.stderr)
proc = sl.start([kill_ini], mpi=2)
sl.wait_for(kill_out + ".ckpt", proc)
pids = sl.rank_pids(proc.pid, 2)
first, t0 = os.path.getsize(kill_out + ".ckpt"), time.time()
while proc.poll() is None and time.time() - t0 < 60:
    try:
        if os.path.getsize(kill_out + ".ckpt") > first:
            break
    except OSError:
        pass
    time.sleep(0.005)
if proc.poll() is not None:
    sl.fail("killed: the run ended (exit %s) before its checkpoint held an optimisation under way" % proc.returncode)
os.kill(pids[1], signal.SIGKILL)
err = sl.end_or_kill(proc, pids, 60, "SIGKILL of rank 1 mid-optimisation")
time.sleep(0.5)
left = [pid for pid in pids.values() if sl.alive(pid)]
if proc.returncode == 0 or "rank 1" not in err or left or os.path.exists(kill_out):
    sl.fail("SIGKILL of rank 1 mid-optimisation: exit %d, ranks left %s, output written %s: %s"
            % (proc.returncode, left, os.path.exists(kill_out), err))
r = sl.ranks_same_bits("resumed after SIGKILL of rank 1", [kill_ini, "--resume"], kill_full, kill_out, mpi=0)
if "optimisations under way go on where they were" not in r.stderr:
    sl.fail("resume after SIGKILL of rank 1: no optimisation under way in the checkpoint: %s" % r.stderr)
print("ok 2 ranks, rank 1 killed (SIGKILL) mid-optimisation: the job ended (exit %d) naming rank 1, every rank "
      "gone, no output; the checkpoint's optimisations resumed to the uninterrupted run's bits" % proc.returncode)
r = sl.run([ini_each, "--dry-run"])
line = [x for x in r.stdout.splitlines() if x.split()[:1] == ["local_bases"]]
# real: one per prompt; synthetic: one per (prompt, sample); each at every position
if r.returncode != 0 or not line or line[0].split("=")[1].split()[0] != str(N * P * (1 + S)):
    sl.fail("--dry-run local_bases: %s (want %d): %s" % (line, N * P * (1 + S), r.stderr))
print("ok --dry-run: local_bases = positions x prompts x bases = %d" % (N * P * (1 + S)))
print("whole-context local geometry tests passed")
