"""2-D slices (issue 18 item 3; Janiak et al., jettjaniak/reometry reometry/utils.py interpolate_2d_slice):
[perturb] slice = KIND1, KIND2 makes each unit a base and one direction of each kind, evaluated on the
(alpha, beta) grid base + alpha v1 + beta v2, v1 and v2 each kind's step at alpha = 1 as a 1-D curve takes
it and v2 orthogonalised against v1 (reometry's c - x). Checked against an independent numpy
re-derivation (reference.py, ref_gpt2.py): the keyed bases and directions, the step mode's scaling, the
Gram-Schmidt step, one full patched forward per grid point and the metrics against the (0, 0) point; the
grid's statistics against numpy's over (prompt, sample); the 1-D variables are the grid's two axes, and
the alpha axis is a 1-D sweep of KIND1. Also: 1 vs 2 ranks bitwise; a merge of two hooks' slices; a SIGTERM and --resume bitwise;
bad values refused by name (exit 2); a 1-D sweep is unchanged by the key's existence (its default)."""
import os
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2, log_softmax  # noqa: E402

d = sl.workdir(sys.argv)
V, C, T = 300, 32, 8
model_dir = sl.make_model(d, layers=2, embd=C, vocab=V)
data = sl.make_bin(d, T * 800, V, seed=4)
P, S, STEPS, COV, SEED, DATA_SEED = 3, 2, 5, 40, 5, 3
model = GPT2(model_dir)
tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
docs = [list(tokens_all[w * T:(w + 1) * T]) + ([int(tokens_all[(w + 1) * T])] if (w + 1) * T < len(tokens_all)
                                                else []) for w in range(len(tokens_all) // T)]
windows, next_tokens, _, _ = ref.select_document_start(docs, T, P + COV, DATA_SEED)
ACTS = np.array([model.forward(w)[0][1] for w in windows])  # [prompt, T, C] at resid 1
Q = T - 1  # position -1


def config(name, **over):
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S, perturb__steps=STEPS,
                perturb__cov_prompts=COV, run__seed=SEED, perturb__hook="blocks.1.hook_resid_pre",
                readout__read_hook="blocks.1.hook_resid_post", output__bootstrap=0, perturb__bases="real, synthetic",
                perturb__slice="cov_random, real_other", perturb__step_mode="absolute", perturb__alpha_max=6.0,
                readout__metrics="kl, l2, cosine, ce_loss")
    keys.update(over)
    cfg = sl.base_config(model_dir, data, os.path.join(d, name + ".nc"), **keys)
    if "directions" not in {k.split("__")[1] for k in over if k.startswith("perturb__")}:
        del cfg["perturb"]["directions"]  # left out: the slice's two kinds
    return sl.write_ini(os.path.join(d, name + ".ini"), cfg), os.path.join(d, name + ".nc")


def run(name, **over):
    return sl.run_ok(name, *config(name, **over))


def check_grid(label, f, mode, kinds, metrics=("kl", "l2", "cosine", "ce_loss")):
    """Every grid point of every unit against numpy's full patched forward."""
    real = ACTS[:P, Q]
    fit = ref.Fit(ACTS[P:, Q], False)
    part, _ = ref.partners(real.astype(np.float32), SEED, P, S)
    alpha = f["alpha"]
    K = len(alpha)
    if not np.array_equal(f["beta"], alpha):
        sl.fail("%s: beta's grid is not alpha's" % label)
    worst = {}
    for p in range(P):
        for bi, b in enumerate(f["base"]):
            for s in range(S):
                base = ref.base_vector(b, p, s, real, fit, SEED)
                v = [ref.steps(mode, base, ref.raw_direction(k, p, s, base, real, fit, SEED, part), [1.0], False,
                               reference=real[p])[0] - base for k in kinds]
                v2 = v[1] - (v[0] @ v[1]) / (v[0] @ v[0]) * v[0]  # reometry's c - x
                logp = np.empty((K * K, V))
                reads = np.empty((K * K, C))
                for i in range(K):
                    for j in range(K):
                        resid, logits = model.forward(windows[p], patch=(1, Q, base + alpha[i] * v[0] + alpha[j] * v2))
                        logp[i * K + j] = log_softmax(logits[Q])
                        reads[i * K + j] = resid[2][Q]
                want = ref.metrics_of(logp, reads, next_tokens[p], False)
                for m in metrics:
                    w = want[m].reshape(K, K)
                    got = f[m + "_slice"][bi, p, s].astype(np.float64)
                    scale = 1.0 if m == "cosine" else max(np.abs(w).max(), 1e-6)
                    err = np.abs(got - w).max() / scale
                    worst[m] = max(worst.get(m, 0.0), err)
                    if not err <= (1e-5 if m != "cosine" else 1e-6):
                        sl.fail("%s: prompt %d %s sample %d: %s differs by %.3g\nwant %s\ngot  %s"
                                % (label, p, b, s, m, err, w, got))
    print("ok %s: every grid point within %s of numpy's" % (label, ", ".join("%s %.2g" % kv for kv in worst.items())))


def check_derived(label, f, metrics):
    """The 1-D variables are the grid's axes; the grid's statistics are numpy's over (prompt, sample)."""
    for m in metrics:
        g = f[m + "_slice"]  # [base, prompt, sample, alpha, beta]
        if not (np.array_equal(f[m][:, 0], g[..., :, 0], equal_nan=True) and
                np.array_equal(f[m][:, 1], g[..., 0, :], equal_nan=True)):
            sl.fail("%s: %s's 1-D curves are not the slice's axes (beta = 0, alpha = 0)" % (label, m))
        flat = g.astype(np.float64).reshape(g.shape[0], -1, g.shape[3], g.shape[4])
        count = np.isfinite(flat).sum(1)
        with np.errstate(all="ignore"):
            mean, median = np.nanmean(flat, 1), np.nanmedian(flat, 1)
        if not np.array_equal(f[m + "_slice_count"], count):
            sl.fail("%s: %s_slice_count differs from numpy's" % (label, m))
        for name, want in (("mean", mean), ("median", median)):
            got = f["%s_slice_%s" % (m, name)]
            if not np.allclose(got, want, rtol=1e-6, atol=1e-9, equal_nan=True):
                sl.fail("%s: %s_slice_%s differs from numpy's by %.3g" % (label, m, name, np.nanmax(np.abs(got - want))))
    print("ok %s: the 1-D curves are the slice's axes; grid mean, median and count match numpy" % label)


# 1. absolute steps, real and synthetic bases, cov_random x real_other
f, ini_abs, out_abs = run("absolute")
if list(f["direction"]) != ["cov_random", "real_other"]:
    sl.fail("slice: directions %s, want the slice's two kinds" % list(f["direction"]))
check_grid("slice absolute, cov_random x real_other", f, "absolute", ("cov_random", "real_other"))
check_derived("slice absolute", f, ("kl", "l2", "cosine", "ce_loss"))

# 2. fixed_norm with step_reference = real (a synthetic base moves its real pair's distance), isotropic
#    kinds, the sweep's default metrics' scores on the axes
f, _, _ = run("fixed", perturb__step_mode="fixed_norm", perturb__step_reference="real", perturb__alpha_max=1.0,
              perturb__slice="naive_isotropic, isotropic", readout__metrics="kl, l2")
check_grid("slice fixed_norm, step_reference = real, naive_isotropic x isotropic", f, "fixed_norm",
           ("naive_isotropic", "isotropic"), metrics=("kl", "l2"))
check_derived("slice fixed_norm", f, ("kl", "l2"))

# 3. the alpha axis is KIND1's 1-D curve: a 1-D sweep of cov_random gives it (to float rounding: the
#    slice's rows are base + alpha v1 + 0 v2 in one sum, and other rows share its fast-path call)
g, _, _ = run("one-d", perturb__slice="", perturb__directions="cov_random")
f_abs = sl.variables(out_abs)
for m in ("kl", "l2"):
    a, b = f_abs[m][:, 0], g[m][:, 0]
    if not np.allclose(a, b, rtol=1e-4, atol=1e-6):
        sl.fail("the slice's alpha axis differs from a 1-D cov_random sweep in %s by %.3g" % (m, np.abs(a - b).max()))
print("ok the slice's alpha axis (beta = 0) is the 1-D cov_random sweep's curve")

# 4. 1 vs 2 ranks, bitwise
if sl.shutil.which("mpirun"):
    out2 = os.path.join(d, "absolute-mpi2.nc")
    sl.ranks_same_bits("slice", [ini_abs, "--quiet", "-o", out2], out_abs, out2)
    print("ok slice: 2 ranks bitwise identical to 1 process")
else:
    print("skip 1 vs 2 ranks: mpirun not found")

# 4b. plateau merge stacks two hooks' slices along `hook`, the grid as it is in each input
f0, _, out0 = run("hook0", perturb__hook="blocks.0.hook_resid_post", perturb__bases="real", readout__metrics="kl, l2")
f1, _, out1 = run("hook1", perturb__bases="real", readout__metrics="kl, l2")
merged = os.path.join(d, "merged.nc")
r = sl.subprocess.run([sl.BIN, "merge", merged, out0, out1], capture_output=True, text=True, env=sl.run_env())
if r.returncode != 0:
    sl.fail("merge of two slices: " + r.stderr)
g = sl.variables(merged)
for name in ("kl_slice", "l2_slice_median", "kl_slice_count", "kl", "kl_median"):
    if not (np.array_equal(g[name][0], f0[name], equal_nan=True) and np.array_equal(g[name][1], f1[name], equal_nan=True)):
        sl.fail("merge: %s is not the inputs' stacked along hook" % name)
if not np.array_equal(g["beta"], f0["beta"]):
    sl.fail("merge: beta differs from the inputs'")
print("ok merge: two hooks' slices stacked along hook (grids, statistics, axes)")

# 5. SIGTERM mid-run, then --resume: bitwise the uninterrupted run
ini, out = config("resume", data__n_prompts=400, perturb__bases="real", readout__metrics="kl",
                  run__checkpoint_every=0.2, perturb__steps=31)
full = os.path.join(d, "resume-full.nc")
r = sl.run([ini, "--quiet", "-o", full, "--set", "run.checkpoint=" + os.path.join(d, "full.ckpt")])
if r.returncode != 0:
    sl.fail("uninterrupted run: " + r.stderr)
proc = sl.start([ini])
sl.wait_for(out + ".ckpt", proc)
proc.send_signal(signal.SIGTERM)
_, err = proc.communicate(timeout=120)
if proc.returncode == 75:
    sl.ranks_same_bits("slice: resumed after SIGTERM", [ini, "--resume", "--quiet"], full, out, mpi=0)
    print("ok slice: SIGTERM (exit 75) and --resume give the uninterrupted run's bits")
elif proc.returncode == 0:
    print("skip resume: the run ended before the signal")
else:
    sl.fail("SIGTERM: exit %d: %s" % (proc.returncode, err))

# 6. bad values refused by name, exit 2
ini, _ = config("bad")
for sets, want in (
        (["perturb.slice=cov_random"], "[perturb] slice: 'cov_random': expected two direction kinds"),
        (["perturb.slice=cov_random, nothing"], "'nothing' is not one of"),
        (["perturb.slice=cov_random, cov_random"], "'cov_random' is listed twice"),
        (["perturb.directions=cov_random, isotropic"], "[perturb] directions (cov_random, isotropic) must list "
                                                      "exactly the slice's two kinds"),
        (["perturb.directions=real_other, cov_random"], "must list exactly the slice's two kinds, in its order"),
        (["perturb.position=all"], "[perturb] slice: not with whole contexts"),
        (["perturb.step_mode=arc"], "[perturb] slice: not with step_mode = arc"),
        (["perturb.steps=1001"], "[perturb] slice: not with more than 1000 steps")):
    r = sl.run([ini] + [x for s in sets for x in ("--set", s)])
    if r.returncode != 2 or want not in r.stderr or len(r.stderr.strip().splitlines()) != 1:
        sl.fail("--set %s: exit %d, want 2 and a one-line message with %r: %s" % (sets, r.returncode, want, r.stderr))
print("ok bad slices refused by name (exit 2)")
print("slice tests passed")
