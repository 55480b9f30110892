"""The local geometry at a mid-block hook (issue 17 item 1: derivatives from attn.hook_z, hook_mlp_out,
...; plateau/grad.h's pl_patch_jvp_groups_at / pl_patch_vjp_groups_at) in a sweep on a tiny synthetic
GPT-2, against an explicit Fisher metric built in float64 numpy from central finite differences of the
independent numpy model (tests/core/ref_models.py, patched at the hook by TLHooks.run_with_hooks with
TransformerLens's meaning of the hook):

  F = J^T (diag p - p p^T) J,  J = dlogits/dy at the hook (y: attn.hook_z, every head, [H * head_dim];
  hook_mlp_out [d_model]) and the last position, p = softmax of the logits at the real base y

  * fisher_eigenvalue(prompt, real, :) vs numpy's eigh of F (rel 1e-3), fisher_trace vs tr F;
  * kl_rayleigh of a file direction d vs d^T F d / |d|^2 (rel 1e-3);
  * the optimized kind ([optimize] radius_alpha = 1, step_mode = absolute): the best optimum_objective at
    a real base >= numpy's KL along each of 200 random unit directions at the hook, and the KL along
    every optimum_direction ([output] vectors) = its optimum_objective (1e-3);
  * 1 process and 2 ranks bitwise identical;
  * whole contexts at attn.hook_z (positions 6 and 7, [readout] positions = mean): the last position's site
    geometry (real base: eigenvalues, trace, eigenvectors) bitwise the one-position sweep's above (the same
    code on the same clean run), and the joint kl_rayleigh of the fisher kind's step (every site's unit
    eigenvector at once) vs float64 second differences of numpy's KL averaged over both positions, patched
    at both at once (rel 1e-3).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import sweeplib as sl  # noqa: E402
import ref_models  # noqa: E402

K, S, P, NO = 3, 2, 2, 3
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
ref = ref_models.load(model)
worst = {}
for hook in ("blocks.0.attn.hook_z", "blocks.1.hook_mlp_out"):
    tag = hook.split(".", 2)[2]
    rows = os.path.join(d, tag + ".npy")
    W = 32  # d_model 32; attn.hook_z: 4 heads of 8
    D = np.random.default_rng(7).standard_normal((S, W)).astype(np.float32)
    np.save(rows, D)
    out = os.path.join(d, tag + ".nc")
    cfg = sl.base_config(model, data, out, data__n_prompts=P, perturb__n_directions=S, perturb__hook=hook,
                         perturb__bases="real", perturb__directions="fisher, file:" + rows + ", optimized",
                         perturb__step_mode="absolute", perturb__steps=3, perturb__alpha_max=1.0, perturb__cov_prompts=40,
                         fisher__k=K, readout__metrics="kl", output__activations="true", output__bootstrap=0,
                         output__vectors="true", optimize__radius_alpha=1.0, optimize__starts=NO)
    ini = sl.write_ini(os.path.join(d, tag + ".ini"), cfg)
    r = sl.run([ini, "--quiet"])
    if r.returncode != 0:
        sl.fail("%s: fisher sweep: %s" % (hook, r.stderr))
    v = sl.variables(out)
    tokens, act = v["tokens"], v["activation"].astype(np.float64)
    T = tokens.shape[1]

    def logits_at(ids, y):
        return ref.run_with_hooks(ids, patch=(hook, T - 1, y))[1][T - 1]

    def kl(z0, z):
        a, b = z0 - z0.max(), z - z.max()
        la, lb = a - np.log(np.exp(a).sum()), b - np.log(np.exp(b).sum())
        return float(np.exp(la) @ (la - lb))

    for p in range(P):
        ids, y = [int(t) for t in tokens[p]], act[p]
        if y.size != W:
            sl.fail("%s: activation of %d floats (want %d)" % (hook, y.size, W))
        h = 1e-4 * np.linalg.norm(y) / np.sqrt(W)
        J = np.stack([(logits_at(ids, y + h * e) - logits_at(ids, y - h * e)) / (2 * h) for e in np.eye(W)], 1)
        z0 = logits_at(ids, y)
        q = np.exp(z0 - z0.max())
        q /= q.sum()
        F = J.T @ (np.diag(q) - np.outer(q, q)) @ J
        w = np.linalg.eigh(F)[0][::-1][:K]
        e = {"eigenvalues": float(np.max(np.abs(v["fisher_eigenvalue"][p, 0] - w) / w)),
             "trace": float(np.max(np.abs(v["fisher_trace"][p, 0] - np.trace(F)) / np.trace(F)))}
        for s in range(S):
            dd = D[s].astype(np.float64)
            want = dd @ F @ dd / (dd @ dd)
            e["rayleigh"] = max(e.get("rayleigh", 0.0), abs(v["kl_rayleigh"][0, 1, p, s] - want) / want)
        for j in range(NO):
            u = v["optimum_direction"][p, 0, 0, j].astype(np.float64)
            e["optimum_direction"] = max(e.get("optimum_direction", 0.0), abs(np.linalg.norm(u) - 1),
                                         abs(kl(z0, logits_at(ids, y + u)) / v["optimum_objective"][p, 0, 0, j] - 1))
        for k, x in e.items():
            worst[(hook, k)] = max(worst.get((hook, k), 0.0), x)
        rnd = np.random.default_rng(11 + p).standard_normal((200, W))
        rnd /= np.linalg.norm(rnd, axis=1, keepdims=True)
        best_random = max(kl(z0, logits_at(ids, y + u)) for u in rnd)
        obj = v["optimum_objective"][p, 0, 0]
        if not obj.max() >= best_random:
            sl.fail("%s, prompt %d: best optimum %g below a random direction's KL %g" % (hook, p, obj.max(),
                                                                                         best_random))
        print("ok %s prompt %d: best optimum KL %.6g >= every one of 200 random directions' (max %.6g)"
              % (hook, p, obj.max(), best_random))
    if hook.endswith("attn.hook_z"):
        one_z, ini_z = v, cfg
        sl.need_mpirun()
        out2 = os.path.join(d, tag + "-mpi2.nc")
        r = sl.run([ini, "--quiet", "-o", out2], mpi=2)
        if r.returncode != 0:
            sl.fail("2 ranks: " + r.stderr)
        bad = sl.same_bits(out, out2)
        if bad:
            sl.fail("%s: 2 ranks differ from 1 process in %s" % (hook, bad))
        print("ok %s: 2 ranks bitwise identical to 1 process" % hook)
for (hook, what), e in worst.items():
    if not e <= 1e-3:
        sl.fail("%s: %s vs numpy's explicit F: max error %.2e > 1e-3" % (hook, what, e))
    print("ok %s: %s vs numpy (F from float64 central differences of ref_models.py): max relative error %.1e"
          % (hook, what, e))
# whole contexts at attn.hook_z: positions 6 and 7, the fisher kind only
hook, T = "blocks.0.attn.hook_z", one_z["tokens"].shape[1]
wc = dict(ini_z, output=dict(ini_z["output"], path=os.path.join(d, "ctx.nc")))
wc["perturb"] = dict(ini_z["perturb"], position="%d:%d" % (T - 2, T), directions="fisher")
wc.pop("optimize")
r = sl.run([sl.write_ini(os.path.join(d, "ctx.ini"), wc), "--quiet"])
if r.returncode != 0:
    sl.fail("whole contexts at %s: %s" % (hook, r.stderr))
w = sl.variables(os.path.join(d, "ctx.nc"))
for name in ("fisher_eigenvalue", "fisher_trace", "fisher_eigenvector"):
    if not np.array_equal(w[name][1][:, 0], one_z[name][:, 0]):
        sl.fail("whole contexts at %s: position %d's %s differs from the one-position sweep's" % (hook, T - 1, name))
positions = [T - 2, T - 1]


def mean_kl(ids, Y0, Y1):
    out = []
    for Y in (Y0, Y1):
        z = ref.run_with_hooks(ids, patch=(hook, positions, Y))[1][positions]
        z = z - z.max(axis=1, keepdims=True)
        out.append(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))
    return float(np.mean(np.sum(np.exp(out[0]) * (out[0] - out[1]), axis=1)))


err = 0.0
for p in range(P):
    ids, Y0 = [int(t) for t in w["tokens"][p]], w["activation"][:, p].astype(np.float64)
    for s in range(S):
        Dj = w["fisher_eigenvector"][:, p, 0, s, s].astype(np.float64)  # [2, W]: each site's unit step
        eps = 1e-3 / np.linalg.norm(Dj)
        want = (mean_kl(ids, Y0, Y0 + eps * Dj) + mean_kl(ids, Y0, Y0 - eps * Dj)) / eps ** 2 / np.sum(Dj * Dj)
        err = max(err, abs(w["kl_rayleigh"][0, 0, p, s] - want) / want)
if not err <= 1e-3:
    sl.fail("whole contexts at %s: joint kl_rayleigh vs numpy's second differences: rel error %.2e" % (hook, err))
print("ok whole contexts at %s: position %d's geometry bitwise the one-position sweep's; joint kl_rayleigh vs numpy "
      "rel %.1e" % (hook, T - 1, err))
print("fisher hook sweep tests passed")
