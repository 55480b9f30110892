"""The SAE direction kinds and readouts of real sweeps against an independent numpy re-derivation.

From the data file, the config and the SAE dir alone, numpy (tests/sweep/reference.py for the prompts,
the fit, the bases, the keyed streams, the step modes and the metrics; tests/sae/ref_sae.py for the SAE;
tests/core/ref_gpt2.py for the model) re-derives: each base's encoding, the features active above
active_fraction of its largest activation, the keyed draw of one of them (`feature`,
`sae_eligible_features`), the never-active features (`sae_feature_active_bases`), every kind's direction
(sae_active d = -act W_dec[f] or +act W_dec[f]; sae_feature_scale x = base + (alpha - 1) act W_dec[f],
measured against its alpha = 1 row; sae_reconstruction d = SAE(base) - base; sae_error_random a keyed
Gaussian as long as that error), the steps in both bases and three step modes, the model's curves, and
the readouts sae_l0 and sae_recon_error of every step vector. Three SAEs, one of each architecture, one of
them made so that one prompt's base has no active feature (its curves must be NaN, and counted).
Draws whose encoding has a pre-activation within float32 reach of a boundary are left out (and counted).

With a second argument `gemma2`, the same checks on Gemma 2 with Gemma Scope's SAE dir: a synthetic gemma2
model (plateau synth: soft-caps, a sliding window of 3 shorter than the 8-token prompts, tied; numpy
reference tests/core/ref_models.Gemma2), a JumpReLU SAE (plateau synth-sae) at blocks.1.hook_resid_post
whose cfg.json is rewritten to the fields SAELens's Gemma Scope loader (get_gemma_2_config_from_hf) gives
(apply_b_dec_to_input false, normalize_activations null, activation_fn relu, ...), driving every SAE
direction kind (sae_active, sae_reconstruction, sae_error_random; sae_feature_scale from 0 to 2).
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ref_sae  # noqa: E402
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402
import sae_models  # noqa: E402
from ref_gpt2 import log_softmax  # noqa: E402

RNG_SAE_FEATURE, RNG_SAE_ERROR = 11, 12
d = sl.workdir(sys.argv)
GEMMA2 = len(sys.argv) > 2 and sys.argv[2] == "gemma2"
V, C, T = 300, 32, 8
P, S, COV, SEED, DATA_SEED = 10, 2, 60, 5, 3
R_READ = 3
model_dir, model, HOOK, R_HOOK = sae_models.reference_model(d, GEMMA2, C, V)
data = sl.make_bin(d, T * 150, V, seed=4)
tokens_all = np.fromfile(data, dtype="<u2").astype(np.int64)
docs = [list(tokens_all[w * T:(w + 1) * T]) + ([int(tokens_all[(w + 1) * T])] if (w + 1) * T < len(tokens_all)
                                                else []) for w in range(len(tokens_all) // T)]
windows, next_tokens, _, _ = ref.select_document_start(docs, T, P + COV, DATA_SEED)
acts_all = np.array([model.forward(w)[0][R_HOOK][T - 1] for w in windows])


def synth(name, arch, extra=()):
    out = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth-sae", out, "--model", model_dir, "--hook", HOOK, "--d-sae", "64",
                        "--architecture", arch, "--seed", "2"] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth-sae: " + r.stderr)
    return out


def run(name, sae_dir, **over):
    out = os.path.join(d, name + ".nc")
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S, perturb__steps=7,
                perturb__cov_prompts=COV, run__seed=SEED, perturb__hook=HOOK,
                readout__read_hook="blocks.2.hook_resid_post",
                output__bootstrap=0, sae__path=sae_dir)
    keys.update(over)
    ini = sl.write_ini(os.path.join(d, name + ".ini"), sl.base_config(model_dir, data, out, **keys))
    r = sl.run([ini])
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (name, r.stderr))
    f = sl.variables(out)
    import netCDF4
    with netCDF4.Dataset(out) as ds:
        f["attrs"] = {k: ds.getncattr(k) for k in ds.ncattrs()}
        f["alpha_long_name"] = ds["alpha"].long_name
        f["score_curve"] = {n: v.score_curve for n, v in ds.variables.items() if "score_curve" in v.ncattrs()}
    f["stderr"] = r.stderr
    return f


def expected_draws(f, sae, real, fit, fraction, centered):
    """feature, eligible [NB, P, S], the active-base counts, the draws left out as ambiguous, each base."""
    NB = len(f["base"])
    feat, elig, amb_draw = np.full((NB, P, S), -1), np.zeros((NB, P, S), int), np.zeros((NB, P, S), bool)
    counts, amb_feat, bases = np.zeros(sae.d_sae, int), np.zeros(sae.d_sae, bool), {}
    for bi, b in enumerate(f["base"]):
        kind = 0 if b == "real" else 1
        for p in range(P):
            for s in range(S):
                x64 = ref.base_vector(b, p, s, real, fit, SEED)
                x = x64.astype(np.float32).astype(np.float64)  # what the SAE encodes: the base as the model sees it
                bases[bi, p, s] = (x, x64)
                pre, gain, _ = sae.pre(x[None])
                a = sae.activate(pre)[0]
                tol = 1e-4 * np.abs(pre).max()
                amb = sae.ambiguous(pre, tol)[0]
                mx = a.max()
                near = (a > 0) & (np.abs(a - fraction * mx) < tol)
                if kind == 1 or s == 0:  # one row per distinct base
                    counts += a > 0
                    amb_feat |= amb
                eligible = np.nonzero((a > 0) & (a > fraction * mx))[0] if mx > 0 else []
                amb_draw[bi, p, s] = bool(amb.any() or near.any())
                elig[bi, p, s] = len(eligible)
                if len(eligible):
                    fi = eligible[ref.Stream(SEED, p, RNG_SAE_FEATURE, 2 * s + kind).below(len(eligible))]
                    feat[bi, p, s] = fi
    return feat, elig, counts, amb_feat, amb_draw, bases


def direction(kind, f_idx, act, gain, x, x64, p, s, sae, sign, centre):
    """The kind's raw d from the base (X: as encoded, float32; X64: as the steps take it)."""
    if kind in ("sae_active", "sae_feature_scale"):
        if f_idx < 0:
            return None
        c = act * gain * sae.W_dec[f_idx]
        return sign * c if kind == "sae_active" else c
    err = sae.reconstruct(x[None])[0] - x64
    if kind == "sae_reconstruction":
        return err
    z = ref.Stream(SEED, p, RNG_SAE_ERROR, s).gaussians(C)
    if centre:
        z, err = ref.center(z), ref.center(err)
    return z * np.linalg.norm(err) / np.linalg.norm(z)


def check(label, f, sae_dir, mode, centered=False, center_dir=False, fraction=0.1, sign=-1.0, prompts=(0, 4, 9)):
    sae = ref_sae.SAE(sae_dir)
    real = ref.center(acts_all[:P]) if centered else acts_all[:P]
    fit = ref.Fit(acts_all[P:], centered)
    feat, elig, counts, amb_feat, amb_draw, bases = expected_draws(f, sae, real, fit, fraction, centered)
    ok = ~amb_draw
    if not np.array_equal(f["feature"][ok], feat[ok]) or not np.array_equal(f["sae_eligible_features"][ok], elig[ok]):
        bad = np.argwhere(ok & ((f["feature"] != feat) | (f["sae_eligible_features"] != elig)))[0]
        sl.fail("%s: draw %s: feature %d of %d eligible, numpy %d of %d" % (
            label, bad, f["feature"][tuple(bad)], f["sae_eligible_features"][tuple(bad)], feat[tuple(bad)],
            elig[tuple(bad)]))
    if not np.array_equal(f["sae_feature_active_bases"][~amb_feat], counts[~amb_feat]):
        sl.fail("%s: sae_feature_active_bases %s vs numpy %s" % (label, f["sae_feature_active_bases"], counts))
    never = int((f["sae_feature_active_bases"] == 0).sum())
    if f["attrs"]["sae_features_never_active"] != never or "%d of 64 features active at no base" % never \
            not in f["stderr"]:
        sl.fail("%s: never-active count %r, stderr: %s" % (label, f["attrs"]["sae_features_never_active"], f["stderr"]))
    no_feature = int((f["feature"] == -1).sum())
    without = f["attrs"].get("sae_draws_without_active_feature")
    if without is not None and without != no_feature:
        sl.fail("%s: sae_draws_without_active_feature %r, %d in feature" % (
            label, f["attrs"]["sae_draws_without_active_feature"], no_feature))
    alpha = f["alpha"]
    worst, n_units, n_rows, n_amb = {}, 0, 0, 0
    for p in prompts:
        nt = next_tokens[p]
        for bi in range(len(f["base"])):
            for di, kind in enumerate(f["direction"]):
                for s in range(S):
                    x, x64 = bases[bi, p, s]
                    fi = f["feature"][bi, p, s]
                    if kind in ("sae_active", "sae_feature_scale") and amb_draw[bi, p, s]:
                        n_amb += 1
                        continue
                    _, gain, _ = sae.pre(x[None])
                    act = sae.encode(x[None])[0][0, fi] if fi >= 0 else 0.0
                    dvec = direction(kind, fi, act, gain[0], x, x64, p, s, sae, sign, center_dir or centered)
                    metrics = list(f["metric_names"])
                    if dvec is None:
                        for m in metrics:
                            if not np.all(np.isnan(f[m][bi, di, p, s])):
                                sl.fail("%s: %s at a base without active feature: %s not NaN" % (label, kind, m))
                        n_units += 1
                        continue
                    if kind == "sae_feature_scale":  # alpha scales c; alpha = 1 is the base
                        X = ref.steps(mode, x64, dvec, alpha - 1.0, center_dir or centered)
                        r0 = int(np.nonzero(alpha == 1.0)[0][0])
                    else:
                        X = ref.steps(mode, x64, dvec, alpha, center_dir or centered)
                        r0 = 0
                    logp, reads = [], []
                    for xk in X:
                        resid, logits = model.forward(f["tokens"][p], patch=(R_HOOK, T - 1, xk))
                        logp.append(log_softmax(logits[T - 1]))
                        reads.append(resid[R_READ][T - 1])
                    order = [r0] + list(range(len(X)))  # every row against the base's row
                    want = {k: v[1:] for k, v in ref.metrics_of(np.array(logp)[order], np.array(reads)[order], nt,
                                                                centered).items()}
                    X32 = X.astype(np.float32).astype(np.float64)  # what the model and the SAE were given
                    pre, gain, shift = sae.pre(X32)
                    a = sae.activate(pre)
                    want["sae_l0"] = (a > 0).sum(1).astype(float)
                    want["sae_recon_error"] = np.linalg.norm(X32 - sae.decode(a, gain, shift), axis=1)
                    row_ok = ~sae.ambiguous(pre, 1e-4 * np.abs(pre).max()).any(1)
                    n_rows += int(row_ok.sum())
                    for m in metrics:
                        w, got = want[m], f[m][bi, di, p, s].astype(np.float64)
                        if m.startswith("sae_"):
                            w, got = w[row_ok], got[row_ok]
                        floor = {"kl": 1e-6, "jsd": 1e-6, "js_dist": 1e-3, "ce_loss": 1e-6}.get(m, 1e-12)
                        scale = 1.0 if m in ("cosine", "sae_l0") else max(np.abs(w).max(), floor)
                        err = np.abs(got - w).max() / scale if len(w) else 0.0
                        tol = {"cosine": 1e-6, "js_dist": 3e-3, "sae_l0": 0.0}.get(m, 2e-5)
                        worst[m] = max(worst.get(m, 0.0), err)
                        if not err <= tol:
                            sl.fail("%s: prompt %d %s %s sample %d: %s differs by %.3g\nwant %s\ngot  %s"
                                    % (label, p, f["base"][bi], kind, s, m, err, w, got))
                    n_units += 1
    print("ok %s: %d units of prompts %s, every base, SAE kind and sample (%d draws near a boundary left out); "
          "%d SAE readout rows; worst %s" % (label, n_units, prompts, n_amb, n_rows,
                                             ", ".join("%s %.2g" % kv for kv in worst.items())))
    print("ok %s: feature and sae_eligible_features of %d of %d draws, sae_feature_active_bases (%d never active)"
          % (label, int(ok.sum()), ok.size, never))


def names(f, metrics):
    f["metric_names"] = [m.strip() for m in metrics.split(",")]
    return f


def gemma_scope(name, sae_dir):
    return sae_models.gemma_scope(os.path.join(d, name), sae_dir, HOOK)


if GEMMA2:
    m1 = "kl, jsd, l2, sae_l0, sae_recon_error"
    scope = gemma_scope("gemma_scope", synth("jumprelu", "jumprelu"))
    f = names(run("gemma_scope", scope, perturb__bases="real, synthetic", readout__metrics=m1,
                  perturb__directions="sae_active, sae_reconstruction, sae_error_random"), m1)
    check("gemma2 + Gemma Scope cfg (jumprelu), to_target, raw", f, scope, "to_target")
    m3 = "kl, l2, cosine, sae_l0, sae_recon_error"
    f = names(run("gemma_scope_scale", scope, perturb__bases="real, synthetic", readout__metrics=m3,
                  perturb__alpha_max=2, perturb__steps=9, perturb__directions="sae_feature_scale, sae_active"), m3)
    check("gemma2 + Gemma Scope cfg, sae_feature_scale 0..2", f, scope, "to_target", prompts=(0, 3, 7))
    print("Gemma 2 SAE sweep tests passed")
    sys.exit(0)


# 1. JumpReLU, raw basis, to_target (alpha = 1 removes the feature: teren's d = -act W_dec[f])
m1 = "kl, jsd, l2, sae_l0, sae_recon_error"
jump = synth("jumprelu", "jumprelu")
f = names(run("jumprelu", jump, perturb__bases="real, synthetic", readout__metrics=m1,
              perturb__directions="sae_active, sae_reconstruction, sae_error_random, cov_random"), m1)
f["direction"] = f["direction"][:3]  # cov_random is the sweep tests' business
check("jumprelu, to_target, raw", f, jump, "to_target")

# --dry-run counts the SAE's weight file once per node (mmapped, shared by the page cache), beside the
# model's: memory_sae_mapped_bytes is the file's size, and memory_per_node_bytes of 4 ranks adds it once.
r = subprocess.run([sl.BIN, "run", os.path.join(d, "jumprelu.ini"), "--dry-run", "--ranks", "4"], capture_output=True,
                   text=True, env=sl.run_env())
dry = {line.split("=")[0].strip(): float(line.split("=")[1].split(";")[0])
       for line in r.stdout.split("[dry_run]")[-1].splitlines() if line.startswith("memory_")}
sae_bytes = os.path.getsize(os.path.join(jump, "sae_weights.safetensors"))
node = dry.get("memory_weights_mapped_bytes", 0) + sae_bytes + dry.get("memory_weights_converted_bytes", 0) + \
    4 * dry.get("memory_per_rank_bytes", 0) + dry.get("memory_rank0_bytes", 0) - dry.get("memory_per_rank_bytes", 0)
if r.returncode != 0 or dry.get("memory_sae_mapped_bytes") != sae_bytes or \
        abs(dry.get("memory_per_node_bytes", -1) - node) > 4:
    sl.fail("--dry-run with an SAE: exit %d, memory %s, want memory_sae_mapped_bytes %d and per node %d: %s"
            % (r.returncode, dry, sae_bytes, node, r.stderr))
print("ok --dry-run: the SAE's weight file once per node (%d bytes)" % sae_bytes)

# the analysis scripts know the SAE readouts: a table row and a figure per SAE metric
res = os.path.join(d, "jumprelu.nc")
tab = subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", "summary.py"), res, "--csv", "--bootstrap", "50"],
                     capture_output=True, text=True)
rows = [r.split(",") for r in tab.stdout.splitlines()]
for m in ("sae_l0", "sae_recon_error"):
    if tab.returncode != 0 or not any(m in r for r in rows):
        sl.fail("summary.py --csv has no %s row (exit %d): %s" % (m, tab.returncode, tab.stderr.strip()))
figs = os.path.join(d, "figs")
fig = subprocess.run([sys.executable, os.path.join(sl.SRC, "analysis", "plot_curves.py"), res, "-o", figs,
                      "--metric", "sae_l0", "sae_recon_error"], capture_output=True, text=True)
made = sorted(os.listdir(figs)) if os.path.isdir(figs) else []
for m in ("sae_l0", "sae_recon_error"):
    if fig.returncode != 0 or not any(n.startswith(m) and n.endswith(".png") for n in made):
        sl.fail("plot_curves.py drew no %s figure (exit %d, %s): %s" % (m, fig.returncode, made, fig.stderr.strip()))
print("ok summary.py and plot_curves.py read sae_l0 and sae_recon_error")

# 2. TopK in the post's protocol: centred basis, fixed_norm, centred d; sign positive, another fraction
m2 = "js_dist, cosine, ce_loss, sae_l0, sae_recon_error"
topk = synth("topk", "topk", ["--k", "8"])
f = names(run("topk", topk, perturb__bases="real, synthetic", readout__metrics=m2, perturb__step_mode="fixed_norm",
              perturb__residual_basis="centered", perturb__center_direction="true", sae__sign="positive",
              sae__active_fraction=0.3, perturb__directions="sae_active, sae_reconstruction, sae_error_random"), m2)
check("topk, fixed_norm, centred basis", f, topk, "fixed_norm", centered=True, center_dir=True, fraction=0.3, sign=1.0)
# every score's score_curve names its own metric: the increase over alpha 0 for ce_loss and the SAE readouts
INCREASE = ("ce_loss", "sae_l0", "sae_recon_error")
for m in f["metric_names"]:
    want = "1 - cosine" if m == "cosine" else "%s - %s at alpha 0" % (m, m) if m in INCREASE else m
    got = {n: c for n, c in f["score_curve"].items() if n.startswith(m + "_")}  # no metric's name starts another's
    if not got or any(c != want for c in got.values()):
        sl.fail("score_curve of %s's scores: %s, want %r" % (m, got, want))
print("ok score_curve names each metric (%s)" % ", ".join(f["metric_names"]))

# 3. a standard SAE under which prompt 3's real activation has no active feature; sae_feature_scale from
#    0 to 2 and absolute steps of sae_active
std = synth("standard", "standard")
s = ref_sae.SAE(std)
b_enc = -((acts_all[3] - s.b_dec) @ s.W_enc) - 0.05 * np.linalg.norm(acts_all[:P] - acts_all[3], axis=1).mean()
dead = ref_sae.write_sae(os.path.join(d, "dead3"), dict(s.cfg, plateau_synthetic=False),
                         {"W_enc": s.W_enc, "b_enc": b_enc, "W_dec": s.W_dec, "b_dec": s.b_dec})
m3 = "kl, l2, cosine, sae_l0, sae_recon_error"
f = names(run("scale", dead, perturb__bases="real, synthetic", readout__metrics=m3, perturb__alpha_max=2,
              perturb__steps=9, perturb__directions="sae_feature_scale, sae_active"), m3)
if not np.all(f["feature"][0, 3] == -1) or f["attrs"]["sae_draws_without_active_feature"] < S:
    sl.fail("prompt 3's real base: feature %s, draws without %r" % (f["feature"][0, 3],
                                                                    f["attrs"]["sae_draws_without_active_feature"]))
if "have no active feature at their base" not in f["stderr"] or f["attrs"]["synthetic_sae"] != 0:  # CF: a 0/1 integer
    sl.fail("no note of the draws without a feature, or synthetic_sae: %s" % f["stderr"])
if "sae_feature_scale: the scale of one SAE feature's contribution" not in f["alpha_long_name"]:
    sl.fail("alpha's long_name does not say what alpha means for sae_feature_scale: " + f["alpha_long_name"])
if not np.all(np.isnan(f["kl_onset"][:, 0])) or not np.isfinite(f["kl_onset"][:, 1]).any():
    sl.fail("sae_feature_scale must have NaN scores, sae_active finite ones")
if f["comparison"] != ["real/synthetic @ sae_active"]:
    sl.fail("comparisons %s: sae_feature_scale must enter none" % f["comparison"])
if not (f["kl_count"][0, 0] == 2 * (P - 1)).all():  # prompt 3's two samples are NaN
    sl.fail("kl_count of sae_feature_scale on the real base: %s" % f["kl_count"][0, 0])
check("standard, sae_feature_scale 0..2, prompt 3 dead", f, dead, "to_target", prompts=(0, 3, 7))
f = names(run("absolute", dead, perturb__bases="real", readout__metrics="kl, sae_recon_error",
              perturb__step_mode="absolute", perturb__alpha_max=3, perturb__directions="sae_active"),
          "kl, sae_recon_error")
check("standard, absolute steps", f, dead, "absolute", prompts=(1, 3))
print("SAE sweep tests passed")
