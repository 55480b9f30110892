"""The sae_recon base and the sae_recon_other direction kind against an independent numpy re-derivation.

teren's reconstruction protocol (jettjaniak/teren, branch draft-paper-experiments, commit 3a82827,
notebooks/baseline_recon_experiment.py): the base is SAE(x) (class Reference with use_recon=True) and
the direction goes towards SAE(another prompt's activation) (ReconRandomActivationPerturbation).
From the data, the config and the SAE dir alone, numpy (tests/sae/ref_sae.py for the SAE,
tests/sweep/reference.py for the prompts, the fit, the streams and the steps, tests/core/ref_gpt2.py for
the model) re-derives: SAE(x_p) of every prompt, the partners (real_other's stream: both kinds must
record the same ones), every unit's base and direction (sae_recon_other d = SAE(x_q) - base; real_other
d = x_q - base) at the real and sae_recon bases, the steps in the raw basis (to_target) and the centred
one (fixed_norm, centred d), and the model's curves; base_norm and direction_norm. The sae_active feature
drawn at a sae_recon base uses its own stream (c = 2^32 * 2 + s). A config with the sae_recon base but
no [sae] path is refused by name.

Then, when ../shared holds them, the same base_norm / direction_norm checks with the trained SAE of
tinystories-gpt2 (../shared/saes/tinystories-gpt2/blocks.1.hook_resid_pre) on its model and data.

With a second argument `gemma2`, part 1 alone on Gemma 2 with Gemma Scope's SAE dir, as test_sweep.py's
gemma2 mode: a synthetic gemma2 model (soft-caps, a window of 3 shorter than the prompts, tied; numpy
reference tests/core/ref_models.Gemma2) and a JumpReLU SAE at blocks.1.hook_resid_post under the cfg.json
SAELens's Gemma Scope loader gives (apply_b_dec_to_input false): the sae_recon base and sae_recon_other."""
import os
import shutil
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

RNG_SAE_FEATURE = 11
d = sl.workdir(sys.argv)
GEMMA2 = len(sys.argv) > 2 and sys.argv[2] == "gemma2"
V, C, T = 300, 32, 8
P, S, COV, SEED, DATA_SEED = 8, 2, 60, 5, 3
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
                        "--architecture", arch, "--seed", "3"] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth-sae: " + r.stderr)
    return out


def run(name, keys, expect_fail=False):
    out = os.path.join(d, name + ".nc")
    ini = sl.write_ini(os.path.join(d, name + ".ini"), sl.base_config(model_dir, data, out, **keys))
    r = sl.run([ini])
    if expect_fail:
        return r
    if r.returncode != 0:
        sl.fail("%s: sweep failed: %s" % (name, r.stderr))
    return sl.variables(out)


def recon(sae, x):
    """SAE(x) of float32 rows, as plateau encodes them (the activation as the sweep holds it)."""
    return sae.reconstruct(x.astype(np.float32).astype(np.float64))


def check_norms(label, f, real, rec, centered, tol=1e-4):
    """base_norm and direction_norm of the real and sae_recon bases (raw d: to_target, or centred)."""
    part = f["sae_recon_partner"]
    for bi, b in enumerate(f["base"]):
        for di, kind in enumerate(f["direction"]):
            if kind not in ("sae_recon_other", "real_other") or b not in ("real", "sae_recon"):
                continue  # the synthetic base is the sweep tests' business
            for p in range(len(real)):
                for s in range(part.shape[1]):
                    base = rec[p] if b == "sae_recon" else real[p]
                    if centered:
                        base = ref.center(base)
                    q = part[p, s]
                    dv = (rec[q] if kind == "sae_recon_other" else real[q]) - base
                    if centered:
                        dv = ref.center(dv)
                    for v, want in (("base_norm", np.linalg.norm(base)), ("direction_norm", np.linalg.norm(dv))):
                        got = f[v][bi, di, p, s]
                        if not abs(got - want) <= tol * max(want, 1e-6):
                            sl.fail("%s: %s of base %s, %s, prompt %d sample %d: %.9g, numpy %.9g"
                                    % (label, v, b, kind, p, s, got, want))
    print("ok %s: base_norm and direction_norm of every unit at the real and sae_recon bases" % label)


def check(label, f, sae_dir, mode, centered, prompts=(0, 3, 7)):
    sae = ref_sae.SAE(sae_dir)
    real = ref.center(acts_all[:P]) if centered else acts_all[:P]
    rec = recon(sae, real)
    part, _ = ref.partners(real, SEED, P, S)
    for v in ("sae_recon_partner", "partner"):
        if not np.array_equal(f[v], part):
            sl.fail("%s: %s %s, numpy %s" % (label, v, f[v].tolist(), part.tolist()))
    print("ok %s: sae_recon_partner and partner equal numpy's real_other draw" % label)
    check_norms(label, f, real, rec, centered)
    alpha, worst, n_units = f["alpha"], {}, 0
    for p in prompts:
        for bi, b in enumerate(f["base"]):
            for di, kind in enumerate(f["direction"]):
                if kind not in ("sae_recon_other", "real_other") or b not in ("real", "sae_recon"):
                    continue
                for s in range(S):
                    base = rec[p] if b == "sae_recon" else real[p]
                    if centered:
                        base = ref.center(base)
                    q = part[p, s]
                    dv = (rec[q] if kind == "sae_recon_other" else real[q]) - base
                    X = ref.steps(mode, base, dv, alpha, centered)
                    logp, reads = [], []
                    for xk in X:
                        resid, logits = model.forward(f["tokens"][p], patch=(R_HOOK, T - 1, xk))
                        logp.append(log_softmax(logits[T - 1]))
                        reads.append(resid[R_READ][T - 1])
                    want = ref.metrics_of(np.array(logp), np.array(reads), next_tokens[p], centered)
                    for m in ("kl", "l2"):
                        w, got = want[m], f[m][bi, di, p, s].astype(np.float64)
                        err = np.abs(got - w).max() / max(np.abs(w).max(), 1e-6 if m == "kl" else 1e-12)
                        worst[m] = max(worst.get(m, 0.0), err)
                        if not err <= 2e-5:
                            sl.fail("%s: prompt %d base %s %s sample %d: %s differs by %.3g\nwant %s\ngot  %s"
                                    % (label, p, b, kind, s, m, err, w, got))
                    n_units += 1
    print("ok %s: curves of %d units (prompts %s, real and sae_recon bases, sae_recon_other and real_other); worst %s"
          % (label, n_units, prompts, ", ".join("%s %.2g" % kv for kv in worst.items())))
    return sae, rec


common = dict(data__n_prompts=P, data__n_ctx=T, data__seed=DATA_SEED, perturb__n_directions=S, perturb__steps=5,
              perturb__cov_prompts=COV, run__seed=SEED, perturb__hook=HOOK, readout__read_hook="blocks.2.hook_resid_post",
              readout__metrics="kl, l2", output__bootstrap=0)


def gemma_scope(name, sae_dir):
    return sae_models.gemma_scope(os.path.join(d, name), sae_dir, HOOK)


# 1. standard SAE, raw basis, to_target: alpha = 1 reaches SAE(x_q) (gemma2: the Gemma Scope JumpReLU dir)
std = gemma_scope("gemma_scope", synth("jumprelu", "jumprelu")) if GEMMA2 else synth("standard", "standard")
f = run("standard", dict(common, sae__path=std, perturb__bases="real, sae_recon",
                         perturb__directions="sae_recon_other, real_other, sae_active"))
sae, rec = check("gemma2 + Gemma Scope cfg (jumprelu), to_target, raw" if GEMMA2 else "standard, to_target, raw", f,
                 std, "to_target", centered=False)
# sae_active at the sae_recon base: the features of SAE(x_p), drawn from the base kind's own stream
bi = list(f["base"]).index("sae_recon")
for p in range(P):
    a = sae.encode(rec[p].astype(np.float32).astype(np.float64)[None])[0][0]
    mx = a.max()
    el = np.nonzero((a > 0) & (a > 0.1 * mx))[0] if mx > 0 else []
    for s in range(S):
        want = el[ref.Stream(SEED, p, RNG_SAE_FEATURE, (2 << 32) + s).below(len(el))] if len(el) else -1
        if f["feature"][bi, p, s] != want or f["sae_eligible_features"][bi, p, s] != len(el):
            sl.fail("sae_active at sae_recon, prompt %d sample %d: feature %d of %d, numpy %d of %d" % (
                p, s, f["feature"][bi, p, s], f["sae_eligible_features"][bi, p, s], want, len(el)))
print("ok sae_active's feature draws at the sae_recon base (its own stream)")
if GEMMA2:
    print("Gemma 2 sae_recon base and sae_recon_other tests passed")
    sys.exit(0)

# 2. TopK, teren's protocol: centred basis, fixed_norm with centred d
topk = synth("topk", "topk", ["--k", "8"])
f = run("topk", dict(common, sae__path=topk, perturb__bases="sae_recon, real, synthetic",
                     perturb__directions="real_other, sae_recon_other", perturb__step_mode="fixed_norm",
                     perturb__residual_basis="centered", perturb__center_direction="true"))
check("topk, fixed_norm, centred", f, topk, "fixed_norm", centered=True)

# bitwise the same on 2 ranks (every SAE(x_p) is made in fixed chunks on every rank)
if shutil.which("mpirun"):
    out2 = os.path.join(d, "topk-mpi2.nc")
    r = sl.run([os.path.join(d, "topk.ini"), "--quiet", "-o", out2], mpi=2)
    if r.returncode != 0:
        sl.fail("topk on 2 ranks: %s" % r.stderr)
    bad = sl.same_bits(os.path.join(d, "topk.nc"), out2)
    if bad:
        sl.fail("topk on 2 ranks differs from 1 rank in %s" % bad)
    print("ok bitwise identical on 1 and 2 ranks")
else:
    print("SKIP the 2-rank identity check: mpirun not found")

# 3. refused by name without an SAE
r = run("nosae", dict(common, perturb__bases="real, sae_recon", perturb__directions="real_other"), expect_fail=True)
if r.returncode != 2 or "[perturb] bases" not in r.stderr or "sae_recon needs an SAE" not in r.stderr:
    sl.fail("sae_recon without [sae] path: exit %d: %s" % (r.returncode, r.stderr))
r = run("nosae2", dict(common, perturb__directions="sae_recon_other"), expect_fail=True)
if r.returncode != 2 or "[perturb] directions" not in r.stderr or "sae_recon_other needs an SAE" not in r.stderr:
    sl.fail("sae_recon_other without [sae] path: exit %d: %s" % (r.returncode, r.stderr))
print("ok a base or direction needing an SAE is refused by name without [sae] path")

# 4. Giglemiani et al.'s bases built from SAE latents (teren, branch explorations, commit 0381673,
# notebooks/experiment_plateaus.ipynb, cell 12), re-implemented here from their code in numpy
RNG_SAE_BAG = 13


def write_sparsity(sae_dir, log10_density):
    """SAELens's sparsity.safetensors: one F32 tensor `sparsity` of log10 feature densities."""
    import json
    import struct
    h = json.dumps({"sparsity": {"dtype": "F32", "shape": [len(log10_density)],
                                 "data_offsets": [0, 4 * len(log10_density)]}}).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(sae_dir, "sparsity.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + np.asarray(log10_density, "<f4").tobytes())


def bag_of_features(sae, rho, x, p, s, top_k=10):
    """synthetic_perturbation_bag_of_features: each active feature's value moved, in place and in index
    order, to one of the top_k features nearest it in density (their selected_features exclusion never
    fires: a set of tensors); random.choice is the stream (seed, p, 13, s) here."""
    a, gain, shift = sae.encode(x[None])
    a = a[0].copy()
    st = ref.Stream(SEED, p, RNG_SAE_BAG, s)
    for f in np.nonzero(a)[0]:
        act = a[f]
        order = np.argsort(np.abs(rho - rho[f]), kind="stable")
        allowed = [g for g in order if g != f][:top_k]
        g = allowed[st.below(len(allowed))]
        a[f] = 0.0
        a[g] = act
    return sae.decode(a[None], gain, shift)[0]


def homeschooled_v2(sae, rho, x):
    """synthetic_perturbation_homeschooled_v2 (mean_sim_base_target = 0.42, 100 density candidates)."""
    a, gain, shift = sae.encode(x[None])
    a = a[0]
    active = np.nonzero(a)[0]
    t = np.argsort(a, kind="stable")[-1]
    sc = np.abs(rho - rho[t])
    sc[t] = np.inf
    cands = np.argsort(sc, kind="stable")[:100]
    W = sae.W_dec / np.maximum(np.linalg.norm(sae.W_dec, axis=1), 1e-8)[:, None]
    c = cands[np.argsort(np.abs(W[cands] @ W[t] - 0.42), kind="stable")[0]]
    csims, tsims = W @ W[c], W[active] @ W[t]
    chosen, vals = [], []
    for i, f in enumerate(active):
        for g in np.argsort(np.abs(csims - tsims[i]), kind="stable"):
            if g in chosen:
                continue
            chosen.append(g)
            vals.append(a[f])
            break
    code = np.zeros(sae.d_sae)
    code[chosen] = vals
    return sae.decode(code[None], gain, shift)[0]


def check_giglemiani(label, f, sae_dir, rho, centered, prompts=(0, 5)):
    sae = ref_sae.SAE(sae_dir)
    real = ref.center(acts_all[:P]) if centered else acts_all[:P]
    part, _ = ref.partners(real, SEED, P, S)
    x32 = real.astype(np.float32).astype(np.float64)
    amb = [bool(sae.ambiguous(sae.pre(x32[p][None])[0], 1e-4 * np.abs(sae.pre(x32[p][None])[0]).max()).any())
           for p in range(P)]
    bases = {}
    for p in range(P):
        bases["sae_cosine", p, 0] = homeschooled_v2(sae, rho, x32[p])
        for s in range(S):
            bases["sae_bag", p, s] = bag_of_features(sae, rho, x32[p], p, s)
            bases["sae_cosine", p, s] = bases["sae_cosine", p, 0]
    di = list(f["direction"]).index("real_other")
    n_checked, worst = 0, {}
    for bi, b in enumerate(f["base"]):
        if b not in ("sae_bag", "sae_cosine"):
            continue
        for p in range(P):
            if amb[p]:
                continue  # a pre-activation within float32 reach of 0: the active set is not determined
            for s in range(S):
                base = ref.center(bases[b, p, s]) if centered else bases[b, p, s]
                got, want = f["base_norm"][bi, di, p, s], np.linalg.norm(base)
                if not abs(got - want) <= 1e-4 * want:
                    sl.fail("%s: base_norm of %s prompt %d sample %d: %.9g, numpy %.9g" % (label, b, p, s, got, want))
                if p not in prompts:
                    continue
                X = ref.steps("to_target", base, real[part[p, s]] - base, f["alpha"], centered)
                logp, reads = [], []
                for xk in X:
                    resid, logits = model.forward(f["tokens"][p], patch=(R_HOOK, T - 1, xk))
                    logp.append(log_softmax(logits[T - 1]))
                    reads.append(resid[R_READ][T - 1])
                w = ref.metrics_of(np.array(logp), np.array(reads), next_tokens[p], centered)
                for m in ("kl", "l2"):
                    g = f[m][bi, di, p, s].astype(np.float64)
                    err = np.abs(g - w[m]).max() / max(np.abs(w[m]).max(), 1e-6 if m == "kl" else 1e-12)
                    worst[m] = max(worst.get(m, 0.0), err)
                    if not err <= 2e-5:
                        sl.fail("%s: %s prompt %d sample %d real_other: %s differs by %.3g" % (label, b, p, s, m, err))
                n_checked += 1
    print("ok %s: base_norm of every sae_bag / sae_cosine unit (%d of %d prompts; the rest near a boundary), curves "
          "of %d units; worst %s" % (label, P - sum(amb), P, n_checked, ", ".join("%s %.2g" % kv for kv in worst.items())))
    if sum(amb) > P // 2:
        sl.fail("%s: %d of %d prompts left out as ambiguous" % (label, sum(amb), P))
    return sae, bases


gig = synth("gig", "standard")
log_density = np.random.default_rng(7).uniform(-6.0, -1.0, 64).astype(np.float32)
write_sparsity(gig, log_density)
rho = 10.0 ** log_density.astype(np.float64)
for basis, mode in (("raw", "to_target"), ("centered", "to_target")):
    f = run("gig-" + basis, dict(common, sae__path=gig, perturb__bases="real, sae_bag, sae_cosine",
                                 perturb__directions="real_other, sae_active", perturb__residual_basis=basis))
    sae, bases = check_giglemiani("Giglemiani bases, %s basis" % basis, f, gig, rho, basis == "centered")
# sae_active at a sae_bag base: that base's own code, stream (seed, p, 11, 3 * 2^32 + s)
bi = list(f["base"]).index("sae_bag")
for p in range(P):  # f: the centred run, the last of the loop above
    for s in range(S):
        x = ref.center(bases["sae_bag", p, s]).astype(np.float32).astype(np.float64)
        pre = sae.pre(x[None])[0]
        if sae.ambiguous(pre, 1e-4 * np.abs(pre).max()).any():
            continue
        a = sae.activate(pre)[0]
        el = np.nonzero((a > 0) & (a > 0.1 * a.max()))[0] if a.max() > 0 else []
        want = el[ref.Stream(SEED, p, RNG_SAE_FEATURE, (3 << 32) + s).below(len(el))] if len(el) else -1
        if f["feature"][bi, p, s] != want:
            sl.fail("sae_active at sae_bag, prompt %d sample %d: feature %d, numpy %d" % (p, s, f["feature"][bi, p, s],
                                                                                        want))
print("ok sae_active's feature draws at the sae_bag base (per sample, its own stream)")
r = run("gig-nosparsity", dict(common, sae__path=std, perturb__bases="real, sae_bag", perturb__directions="real_other"),
        expect_fail=True)
if r.returncode != 2 or "sparsity.safetensors" not in r.stderr or "[perturb] bases: sae_bag" not in r.stderr:
    sl.fail("sae_bag without sparsity.safetensors: exit %d: %s" % (r.returncode, r.stderr))
print("ok sae_bag without the SAE dir's sparsity.safetensors is refused, naming the file")

# 5. the trained SAE of ../shared (tinystories-gpt2), when present
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
tmodel = os.path.join(shared, "models", "tinystories-gpt2")
tsae = os.path.join(shared, "saes", "tinystories-gpt2", "blocks.1.hook_resid_pre")
tdata = os.path.join(shared, "data", "tinystories.jsonl")
if not all(os.path.exists(p) for p in (tmodel, tsae, tdata)):
    print("SKIP the trained-SAE part: needs %s, %s and %s (PLATEAU_SHARED_DIR)" % (tmodel, tsae, tdata))
else:
    out = os.path.join(d, "shared.nc")
    keys = dict(data__n_prompts=12, data__n_ctx=10, perturb__n_directions=2, perturb__steps=3, perturb__cov_prompts=40,
                perturb__hook=HOOK, readout__read_hook="", readout__metrics="kl", output__bootstrap=0,
                output__activations="true", sae__path=tsae, perturb__bases="real, sae_recon",
                perturb__directions="sae_recon_other, real_other")
    cfg = sl.base_config(tmodel, tdata, out, **keys)
    cfg["data"].pop("token_dtype", None)
    ini = sl.write_ini(os.path.join(d, "shared.ini"), cfg)
    r = sl.run([ini])
    if r.returncode != 0:
        sl.fail("tinystories-gpt2 with its SAE: %s" % r.stderr)
    f = sl.variables(out)
    tref = ref_sae.SAE(tsae)
    real = f["activation"].astype(np.float64)
    check_norms("tinystories-gpt2 + its trained TopK SAE, raw basis", f, real, recon(tref, real), centered=False)
print("sae_recon base and sae_recon_other tests passed")
