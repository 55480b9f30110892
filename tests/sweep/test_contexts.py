"""Whole contexts (issue 18; Lee & Heimersheim's pos=None, dajale423/error_pathology
scripts/sensitive_direction.py): [perturb] position = A:B | all perturbs every listed position of a
prompt at once, every position moved by the same alpha, each with its own direction of the unit's kind
(per_position = own) or the first position's displacement (shared); [readout] positions = mean reads
every perturbed position and averages, = each keeps every position's curve (a leading position
dimension on every curve variable and its statistics). Checked against an independent numpy re-derivation
(reference.py, ref_gpt2.py): the sites' activations, mu and Sigma from the sweep's positions or every
position (fit_positions) with sigma_ridge on the diagonal, the keyed bases and directions per site,
one patched forward per step with every position replaced, the metrics at every position and their
mean, or each position's; the per-position statistics (mean, median, count, a threshold score, its
censored counts and pairs) against numpy, mean = the mean of each. Also: fit_positions and sigma_ridge on a one-position sweep against numpy's mu and Sigma; 1
vs 2 ranks bitwise; bad values refused by name (exit 2)."""
import csv as csv_mod
import json
import os
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
data = sl.make_bin(d, T * 120, V, seed=4)
P, S, STEPS, COV, SEED, DATA_SEED = 4, 2, 6, 40, 5, 3
model = GPT2(model_dir)
tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
docs = [list(tokens_all[w * T:(w + 1) * T]) + ([int(tokens_all[(w + 1) * T])] if (w + 1) * T < len(tokens_all)
                                                else []) for w in range(len(tokens_all) // T)]
windows, next_tokens, _, _ = ref.select_document_start(docs, T, P + COV, DATA_SEED)
ACTS = {r: np.array([model.forward(w)[0][r] for w in windows]) for r in (1,)}  # [prompt, T, C] at resid 1
MODEL, WINDOWS, NEXT_TOKENS = model, windows, next_tokens


def config(name, **over):
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S, perturb__steps=STEPS,
                perturb__cov_prompts=COV, run__seed=SEED, perturb__hook="blocks.1.hook_resid_pre",
                readout__read_hook="blocks.1.hook_resid_post", output__bootstrap=0, perturb__bases="real, synthetic",
                perturb__directions="cov_random, real_other, naive_isotropic", perturb__step_mode="absolute",
                perturb__alpha_max=6.0, readout__metrics="kl, l2, cosine, ce_loss")
    keys.update(over)
    out = os.path.join(d, name + ".nc")
    return sl.write_ini(os.path.join(d, name + ".ini"), sl.base_config(model_dir, data, out, **keys)), out


def run(name, **over):
    return sl.run_ok(name, *config(name, **over))


def fit_of(rows, ridge):
    fit = ref.Fit(rows, False)
    fit.sigma = fit.sigma + ridge * np.eye(fit.C)
    fit.chol = np.linalg.cholesky(fit.sigma)
    fit.iso = np.sqrt(np.trace(fit.sigma) / fit.C)
    return fit


def check_contexts(label, f, first, n, shared, fit_all, ridge, metrics=("kl", "l2", "cosine", "ce_loss"), world=None,
                   hooks=None, each=False):
    """EACH: [readout] positions = each, every position's curve compared (f[m][position, ...]). WORLD: (model, prompts' tokens, next tokens, activations [prompt, T, C] at resid 1 (or at HOOKS'
    first), first position fit_positions = all fits: 1 after a BOS), by default this file's BOS-less one.
    HOOKS: (hook, read_hook) by TransformerLens's names, patched and read through the reference's
    run_with_hooks (all listed positions replaced in one forward); None: resid 1 and resid 2."""
    model, windows, next_tokens, acts, fit_from = world or (MODEL, WINDOWS, NEXT_TOKENS, ACTS[1], 0)
    C = acts.shape[-1]
    positions = list(range(first, first + n))
    real = acts[:P][:, positions].reshape(P * n, C)  # site p * n + j
    rows = acts[P:][:, range(fit_from, T) if fit_all else positions].reshape(-1, C)
    fit = fit_of(rows, ridge)
    part, _ = ref.partners(real.astype(np.float32), SEED, P * n, S)
    alpha = f["alpha"]
    worst = {}
    for p in range(P):
        for bi, b in enumerate(f["base"]):
            for di, dn in enumerate(f["direction"]):
                for s in range(S):
                    X = np.empty((len(alpha), n, C))
                    for j in range(n):
                        site = p * n + j
                        base = ref.base_vector(b, site, s, real, fit, SEED)
                        dvec = ref.raw_direction(dn, site, s, base, real, fit, SEED, part)
                        X[:, j] = ref.steps("absolute", base, dvec, alpha, False)
                        if shared and j > 0:  # the first position's displacement, at every base
                            X[:, j] = base + (X[:, 0] - X[0, 0])
                    logp, reads = [[None] * len(alpha) for _ in range(n)], [[None] * len(alpha) for _ in range(n)]
                    for k in range(len(alpha)):
                        if hooks:
                            cache, logits = model.run_with_hooks(windows[p], patch=(hooks[0], positions, X[k]))
                            read = cache[hooks[1]]
                        else:
                            resid, logits = model.forward(windows[p], patch=(1, positions, X[k]))
                            read = resid[2]
                        for j, q in enumerate(positions):
                            logp[j][k] = log_softmax(logits[q])
                            reads[j][k] = read[q]
                    logp, reads = np.array(logp), np.array(reads)
                    per = [ref.metrics_of(logp[j], reads[j], windows[p][q + 1] if q + 1 < T else next_tokens[p],
                                          False) for j, q in enumerate(positions)]
                    for m in metrics:
                        pairs = ([(np.mean([pm[m] for pm in per], axis=0), f[m][bi, di, p, s], "mean")] if not each
                                 else [(per[j][m], f[m][j, bi, di, p, s], "position %d" % q)
                                       for j, q in enumerate(positions)])
                        for want, got, where in pairs:
                            got = got.astype(np.float64)
                            scale = 1.0 if m == "cosine" else max(np.abs(want).max(), 1e-6)
                            err = np.abs(got - want).max() / scale
                            worst[m] = max(worst.get(m, 0.0), err)
                            if not err <= (1e-5 if m != "cosine" else 1e-6):
                                sl.fail("%s: prompt %d %s %s sample %d, %s: %s differs by %.3g\nwant %s\ngot  %s"
                                        % (label, p, b, dn, s, where, m, err, want, got))
    print("ok %s: every curve (%s positions %d..%d) within %s of numpy's"
          % (label, "each of" if each else "mean over", first, first + n - 1,
             ", ".join("%s %.2g" % kv for kv in worst.items())))


# 1. every position at once (BOS-less data: `all` = 0..T-1), own directions, mu/Sigma from every
#    position with Lee's ridge
f, ini_all, out_all = run("all", perturb__position="all", perturb__fit_positions="all", perturb__sigma_ridge=0.01)
check_contexts("position = all, own, fit_positions = all, sigma_ridge 0.01", f, 0, T, False, True, 0.01)
# 2. a range, one shared direction, mu/Sigma from the sweep's positions
f, _, _ = run("range", perturb__position="2:-2", perturb__per_position="shared", perturb__bases="real")
check_contexts("position = 2:-2, shared, fit_positions = sweep", f, 2, T - 4, True, False, 0.0)

# 2b. [readout] positions = each: a leading position dimension (the absolute token positions) on
#     every curve variable, each position's curve against numpy's; the per-position statistics
#     against numpy over (prompt, sample) at that position; mean = the mean of each; the activations
#     of every perturbed position
f, ini_each, out_each = run("each", perturb__position="2:-2", readout__positions="each", output__bootstrap=50,
                            output__activations="true", readout__thresholds="l2:0.5")
check_contexts("position = 2:-2, positions = each", f, 2, T - 4, False, False, 0.0, each=True)
f_each = f
fm, _, _ = run("each-mean", perturb__position="2:-2", readout__positions="mean", output__bootstrap=50,
               output__activations="true", readout__thresholds="l2:0.5")
if list(f["position"]) != list(range(2, T - 2)):
    sl.fail("positions = each: position coordinate %s, want %s" % (list(f["position"]), list(range(2, T - 2))))
for m in ("kl", "l2", "cosine", "ce_loss"):
    cur = f[m].astype(np.float64)  # [position, base, direction, prompt, sample, alpha]
    if cur.shape != (T - 4,) + fm[m].shape:
        sl.fail("positions = each: %s has shape %s, want %s" % (m, cur.shape, (T - 4,) + fm[m].shape))
    want = cur.mean(axis=0)
    if not np.allclose(fm[m], want, rtol=2e-6, atol=1e-7 * np.abs(want).max()):
        sl.fail("positions = mean: %s is not the mean of positions = each's curves (by %.3g)"
                % (m, np.abs(fm[m] - want).max()))
    for stat, fn in (("_mean", np.mean), ("_median", np.median)):
        got, ref_ = f[m + stat], fn(cur, axis=(3, 4))
        if got.shape != ref_.shape or not np.allclose(got, ref_, rtol=1e-12, atol=0):
            sl.fail("positions = each: %s%s differs from numpy's per-position statistic" % (m, stat))
    if not np.array_equal(f[m + "_count"], np.isfinite(cur).sum(axis=(3, 4))):
        sl.fail("positions = each: %s_count differs from numpy's" % m)
# a threshold score per curve and position, its censored counts and pairs per position
thr = f["l2_alpha_at_threshold"]  # [position, base, direction, prompt, sample]
if thr.shape != f["l2"].shape[:-1]:
    sl.fail("positions = each: l2_alpha_at_threshold has shape %s" % (thr.shape,))
alpha = f["alpha"]
for idx in np.ndindex(*thr.shape):
    c = f["l2"][idx].astype(np.float64)
    k = int(np.argmax(c >= 0.5)) if np.any(c >= 0.5) else -1
    want = np.inf if k < 0 else alpha[0] if k == 0 else alpha[k - 1] + (0.5 - c[k - 1]) / (c[k] - c[k - 1]) * (
        alpha[k] - alpha[k - 1])
    if np.isnan(thr[idx]) and np.all(c == c[0]):  # a flat curve has no score
        continue
    if not (want == thr[idx] or abs(want - thr[idx]) <= 1e-9 * max(1.0, abs(want))):
        sl.fail("positions = each: l2_alpha_at_threshold%s = %r, numpy %r" % (idx, thr[idx], want))
if not np.array_equal(f["l2_alpha_at_threshold_n_censored"], np.isinf(thr).sum(axis=(3, 4))):
    sl.fail("positions = each: l2_alpha_at_threshold_n_censored is not numpy's count per position")
npairs = f["l2_alpha_at_threshold_n_pairs"]  # [position, comparison]
want = np.array([[np.sum(~np.isnan(thr[j, f["comparison_x_base"][c], f["comparison_x_direction"][c]]) &
                         ~np.isnan(thr[j, f["comparison_y_base"][c], f["comparison_y_direction"][c]]))
                  for c in range(len(f["comparison"]))] for j in range(T - 4)])
if not np.array_equal(npairs, want):
    sl.fail("positions = each: l2_alpha_at_threshold_n_pairs %s, numpy's %s" % (npairs, want))
act = f["activation"]  # [position, prompt, resid]
if act.shape != (T - 4, P, C) or not np.allclose(act, ACTS[1][:P, 2:T - 2].transpose(1, 0, 2), rtol=0,
                                                  atol=2e-5 * np.abs(act).max()):
    sl.fail("positions = each: activation %s differs from numpy's [position, prompt, resid]" % (act.shape,))
if not np.array_equal(fm["activation"], act):
    sl.fail("positions = mean: activation differs from positions = each's")
print("ok positions = each: position coordinate, mean/median/count, alpha_at_threshold, its censored counts and "
      "pairs per position match numpy; positions = mean is their mean; activation(position, prompt, resid)")

# 2c. the Python package: open_result opens a per-position result (xarray, its accessor), one position
#     selected is an ordinary one-position result, and the scripts refuse it by name (exit 2)
sys.path.insert(0, os.path.join(sl.SRC, "analysis"))
from plateau_analysis import Result, open_result  # noqa: E402
ds = open_result(out_each)
if ds["kl"].dims[0] != "position" or ds.plateau.metrics != ["kl", "l2", "cosine", "ce_loss"]:
    sl.fail("open_result: kl dims %s, metrics %s" % (ds["kl"].dims, ds.plateau.metrics))
one = Result(out_each, ds.sel(position=3))
got = one.array("kl_mean", ("base", "direction", "alpha"), 0)
if not np.array_equal(got, f["kl_mean"][1]):
    sl.fail("Result of position 3: kl_mean differs from the file's slice")
for script in ("summary.py", "plot_curves.py"):
    extra = ["-o", os.path.join(d, "each-figures")] if script == "plot_curves.py" else []
    r = sl.subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", script), out_each] + extra,
                          capture_output=True, text=True)
    if r.returncode != 2 or "curves per position" not in r.stderr:
        sl.fail("%s on a per-position result: exit %d: %s" % (script, r.returncode, r.stderr))
# --position N: the scripts draw and tabulate that position's curves (the table's median curve is the
# file's kl_median at that position, exactly: repr of the float64 it read); a position the file lacks is
# refused by name
csv_run = sl.subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", "summary.py"), out_each, "--position",
                             "3", "--csv", "--metric", "kl"], capture_output=True, text=True)
if csv_run.returncode != 0:
    sl.fail("summary.py --position 3: exit %d: %s" % (csv_run.returncode, csv_run.stderr))
three = Result(out_each, ds.sel(position=3))  # for the names' order only: the values are netCDF4's (f)
if any(np.array_equal(f["kl_median"][1], f["kl_median"][j]) for j in range(len(f["kl_median"])) if j != 1):
    sl.fail("another position has position 3's kl_median: this check could not tell them apart")
med = {(b, k): np.asarray(f["kl_median"][1][i, j], np.float64)  # position 3 = index 1 (positions 2..T-3)
       for i, b in enumerate(three.bases) for j, k in enumerate(three.directions)}
curve_rows = [row for row in csv_mod.DictReader(csv_run.stdout.splitlines()) if row["kind"] == "curve"]
if not curve_rows:
    sl.fail("summary.py --position 3: no median-curve rows:\n%s" % csv_run.stdout[:1000])
if any(row["position"] != "3" for row in csv_mod.DictReader(csv_run.stdout.splitlines())):
    sl.fail("summary.py --position 3: a row whose position column is not 3:\n%s" % csv_run.stdout[:1000])
for row in curve_rows:
    k = int(np.argmin(np.abs(three.alpha - float(row["alpha"]))))
    want = med[(row["base"], row["direction"])][k]
    if row["value"] != repr(float(want)):
        sl.fail("summary.py --position 3: %s/%s at alpha %s: %s, the file's position-3 kl_median %r"
                % (row["base"], row["direction"], row["alpha"], row["value"], float(want)))
figs = os.path.join(d, "each-figures-3")
r = sl.subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", "plot_curves.py"), out_each, "--position",
                       "3", "-o", figs, "--metric", "kl"], capture_output=True, text=True)
if r.returncode != 0 or r.stderr:
    sl.fail("plot_curves.py --position 3: exit %d: %s" % (r.returncode, r.stderr))
side = json.load(open(os.path.join(figs, "figures.json")))
if side["position"] != 3 or not side["figures"]:
    sl.fail("plot_curves.py --position 3: figures.json position %r, %d figures"
            % (side["position"], len(side["figures"])))
for script in ("summary.py", "plot_curves.py"):
    extra = ["-o", os.path.join(d, "each-figures-x")] if script == "plot_curves.py" else []
    r = sl.subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", script), out_each, "--position", "999"]
                          + extra, capture_output=True, text=True)
    if (r.returncode != 2 or "--position 999: not one of the file's positions" not in r.stderr
            or len(r.stderr.strip().splitlines()) != 1):
        sl.fail("%s --position 999: exit %d: %s" % (script, r.returncode, r.stderr))
ds.close()
print("ok plateau_analysis: open_result opens a per-position result, .sel(position=N) is a one-position "
      "result, summary.py and plot_curves.py refuse it by name and take --position N (position 3's median "
      "curves in the table, bit for bit; a position the file lacks refused)")

# 3. fit_positions and sigma_ridge on a one-position sweep: mu and Sigma stored against numpy's
for fit_all, ridge in ((True, 0.0), (False, 0.5), (True, 0.01)):
    f, _, _ = run("fit", perturb__position=-2, perturb__fit_positions="all" if fit_all else "sweep",
                  perturb__sigma_ridge=ridge, output__activations="true", perturb__bases="real",
                  perturb__directions="cov_random")
    rows = ACTS[1][P:][:, range(T) if fit_all else [T - 2]].reshape(-1, C)
    fit = fit_of(rows, ridge)
    for name, got, want in (("mu", f["mu"], fit.mu), ("sigma", f["sigma"], fit.sigma),
                            ("activation", f["activation"], ACTS[1][:P, T - 2])):
        if not np.allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max()):
            sl.fail("fit_positions %s, sigma_ridge %g: %s differs from numpy by %.3g"
                    % (fit_all, ridge, name, np.abs(got - want).max()))
    print("ok one position, fit_positions = %s, sigma_ridge = %g: mu, Sigma and activations match numpy"
          % ("all" if fit_all else "sweep", ridge))

# 3b. fit_positions = all skips a leading BOS: prompts that start with BOS (GPT-2's tokenizer from
#     ../shared; skipped without it) fit mu over positions 1..T-1. The covariance prompts are the
#     selection's next ones: a run with n_prompts = P + COV records them as its sweep prompts.
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
if os.path.exists(os.path.join(shared, "gpt2", "vocab.json")):
    bos_model = os.path.join(d, "bos-model")
    r = sl.subprocess.run([sl.BIN, "synth", bos_model, "--layers", "2", "--embd", "16", "--heads", "2", "--ctx", "16",
                           "--vocab-from", os.path.join(shared, "gpt2")], capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth: " + r.stderr)
    bos_data = sl.make_bin(d, T * 200, 50000, seed=6, name="bos.bin")
    common = dict(model__path=bos_model, data__prompts=bos_data, data__bos="true", perturb__position=-1,
                  perturb__bases="real", perturb__directions="cov_random", perturb__steps=2,
                  readout__metrics="kl", readout__read_hook="blocks.1.hook_resid_post")
    f, _, _ = run("bos", perturb__fit_positions="all", output__activations="true", **common)
    g, _, _ = run("bos-prompts", data__n_prompts=P + COV, perturb__cov_prompts=2, **common)
    bos_ref = GPT2(bos_model)
    cov_tokens = g["tokens"][P:]
    if not np.array_equal(g["tokens"][:P], f["tokens"]) or not np.all(cov_tokens[:, 0] == 50256):  # <|endoftext|>
        sl.fail("BOS run: the covariance prompts are not the selection's next ones, or do not start with BOS")
    acts = np.array([bos_ref.forward(list(t))[0][1] for t in cov_tokens])  # [COV, T, C]
    want = acts[:, 1:].reshape(-1, acts.shape[-1]).mean(0)
    with_bos = acts.reshape(-1, acts.shape[-1]).mean(0)
    err = np.abs(f["mu"] - want).max()
    if not err <= 2e-5 * np.abs(want).max() or np.abs(with_bos - want).max() < 100 * err:
        sl.fail("fit_positions = all with BOS: mu differs from numpy's over positions 1..T-1 by %.3g (with the "
                "BOS row: %.3g)" % (err, np.abs(f["mu"] - with_bos).max()))
    print("ok fit_positions = all with BOS prompts: mu over positions 1..%d matches numpy (%.2g; the BOS row "
          "would move it by %.2g)" % (T - 1, err, np.abs(with_bos - want).max()))
    # every position of BOS prompts at once: every BOS site is one activation (real_other redraws a
    # partner equal to its base, so none points at another BOS), as numpy's exact float64 has it
    f, _, _ = run("bos-all", **dict(common, perturb__position="all", perturb__fit_positions="all",
                                    perturb__sigma_ridge=0.01, perturb__directions="real_other, cov_random",
                         perturb__steps=4, perturb__alpha_max=6.0, perturb__step_mode="absolute",
                         readout__metrics="kl, l2"))
    world = (bos_ref, [list(t) for t in g["tokens"]], list(g["next_token"]), acts_all := np.array(
        [bos_ref.forward(list(t))[0][1] for t in g["tokens"]]), 1)
    if not np.all(acts_all[:, 0] == acts_all[0, 0]):
        sl.fail("numpy's BOS activations differ")
    check_contexts("BOS prompts, position = all, real_other and cov_random", f, 0, T, False, True, 0.01,
                   metrics=("kl", "l2"), world=world)
else:
    print("skip fit_positions = all with BOS: needs %s/gpt2 (PLATEAU_SHARED_DIR)" % shared)

# 3c. whole contexts at mid-block hooks (Lee & Heimersheim's `--hook_loc z`): attn.hook_z of a Gemma 2
#     whose z (4 heads x 16 = 64) is wider than its residual (32), every position, mu/Sigma over every
#     position at the hook with the ridge, read after the final norm; GPT-2's hook_mlp_out on a range
#     with one shared direction. numpy replaces TL's hook at every listed position in one forward.
import ref_models  # noqa: E402
gemma = os.path.join(d, "gemma2")
r = sl.subprocess.run([sl.BIN, "synth", gemma, "--family", "gemma2", "--layers", "2", "--embd", "32", "--heads", "4",
                       "--kv-heads", "2", "--head-dim", "16", "--ctx", "32", "--vocab", str(V), "--seed", "2",
                       "--tied", "--force"], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth gemma2: " + r.stderr)
MID_RUNS = []
for label, mdir, hook, read_hook, over, (first, n, shared) in (
        ("gemma2 blocks.0.attn.hook_z (64 wide), position = all, fit_positions = all, ridge 0.01, read "
         "ln_final.hook_normalized", gemma, "blocks.0.attn.hook_z", "ln_final.hook_normalized",
         dict(perturb__position="all", perturb__fit_positions="all", perturb__sigma_ridge=0.01), (0, T, False)),
        ("gpt2 blocks.0.hook_mlp_out, position = 2:-1, shared, read blocks.1.hook_resid_post", model_dir,
         "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post",
         dict(perturb__position="2:-1", perturb__per_position="shared", perturb__bases="real"), (2, T - 3, True))):
    mref = ref_models.load(mdir)
    acts = np.array([mref.run_with_hooks(list(map(int, w)))[0][hook] for w in WINDOWS])
    f, ini_mid, out_mid = run("mid-" + hook.replace(".", "-"), model__path=mdir, perturb__hook=hook,
                              readout__read_hook=read_hook, readout__metrics="kl, l2, cosine", **over)
    check_contexts(label, f, first, n, shared, "fit_positions" in over, over.get("perturb__sigma_ridge", 0.0),
                   metrics=("kl", "l2", "cosine"), world=(mref, WINDOWS, NEXT_TOKENS, acts, 0),
                   hooks=(hook, read_hook))
    MID_RUNS.append((label, ini_mid, out_mid))

# 4. 1 vs 2 ranks, bitwise
if sl.shutil.which("mpirun"):
    out2 = os.path.join(d, "all-mpi2.nc")
    r = sl.run([ini_all, "--quiet", "-o", out2], mpi=2)
    if r.returncode != 0:
        sl.fail("2 ranks: %s" % r.stderr)
    bad = sl.same_bits(out_all, out2)
    if bad:
        sl.fail("whole contexts: 2 ranks differ from 1 process in %s" % bad)
    out2 = os.path.join(d, "each-mpi2.nc")
    r = sl.run([ini_each, "--quiet", "-o", out2], mpi=2)
    if r.returncode != 0:
        sl.fail("2 ranks, positions = each: %s" % r.stderr)
    bad = sl.same_bits(out_each, out2)
    if bad:
        sl.fail("positions = each: 2 ranks differ from 1 process in %s" % bad)
    print("ok whole contexts (positions = mean and each): 2 ranks bitwise identical to 1 process")
    label, ini_mid, out_mid = MID_RUNS[0]
    out2 = os.path.join(d, "mid-mpi2.nc")
    r = sl.run([ini_mid, "--quiet", "-o", out2], mpi=2)
    if r.returncode != 0:
        sl.fail("%s, 2 ranks: %s" % (label, r.stderr))
    bad = sl.same_bits(out_mid, out2)
    if bad:
        sl.fail("%s: 2 ranks differ from 1 process in %s" % (label, bad))
    print("ok %s: 2 ranks bitwise identical to 1 process" % label)
else:
    print("skip 1 vs 2 ranks: mpirun not found")

# 4c. merge: two hooks of a per-position sweep stack along hook, position kept after it
out_h0 = os.path.join(d, "each-h0.nc")
r = sl.run([ini_each, "--quiet", "--set", "perturb.hook=blocks.0.hook_resid_post", "-o", out_h0])
merged = os.path.join(d, "each-merged.nc")
r2 = sl.subprocess.run([sl.BIN, "merge", merged, out_each, out_h0, "--force"], capture_output=True, text=True)
if r.returncode != 0 or r2.returncode != 0:
    sl.fail("merge of per-position results: %s %s" % (r.stderr, r2.stderr))
fmg, fh0 = sl.variables(merged), sl.variables(out_h0)
for v in ("kl", "kl_mean", "l2_alpha_at_threshold", "l2_alpha_at_threshold_n_pairs", "activation"):
    for h, part in enumerate((f_each, fh0)):
        if not np.array_equal(fmg[v][h], part[v], equal_nan=True):
            sl.fail("merge: %s of hook %d differs from its input's" % (v, h))
if list(fmg["position"]) != list(f_each["position"]) or open_result(merged)["kl"].dims[:2] != ("hook", "position"):
    sl.fail("merge: position coordinate or kl's leading dimensions wrong")
print("ok merge of per-position results: (hook, position, ...) slices equal their inputs'")

# 5. bad values refused by name, exit 2
ini, _ = config("bad")
for key, value, want in (
        ("perturb.position", "5:2", "[perturb] position: 5:2 is an empty range"),
        ("perturb.position", "0:99", "[perturb] position: 0:99 is outside"),
        ("perturb.position", "a:b", "[perturb] position: 'a:b' is not a range"),
        ("perturb.position", "every", "[perturb] position: 'every' is not a position"),
        ("perturb.per_position", "mine", "[perturb] per_position"),
        ("perturb.fit_positions", "some", "[perturb] fit_positions"),
        ("perturb.sigma_ridge", "-1", "[perturb] sigma_ridge"),
        ("readout.positions", "max", "[readout] positions")):
    r = sl.run([ini, "--set", "%s=%s" % (key, value)])
    if r.returncode != 2 or want not in r.stderr:
        sl.fail("%s = %s: exit %d: %s" % (key, value, r.returncode, r.stderr))
    print("ok %s = %s refused: %s" % (key, value, r.stderr.strip().splitlines()[-1]))
for sets, want in ((["perturb.position=all", "readout.position=-1"], "[readout] position: -1 with [perturb] position"),):
    r = sl.run([ini] + [a for s in sets for a in ("--set", s)])
    if r.returncode != 2 or want not in r.stderr:
        sl.fail("%s: exit %d: %s" % (sets, r.returncode, r.stderr))
    print("ok %s refused: %s" % (" ".join(sets), r.stderr.strip().splitlines()[-1]))
print("whole-context tests passed")
