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
  * refused (exit 2, one line): several positions at once (whole contexts) with [fisher] k or the
    fisher / optimized kinds, at a residual hook too: F and the optimum of the concatenated
    perturbation are not defined yet.
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
for over in ({"fisher__k": "2", "perturb__directions": "cov_random"},
             {"fisher__k": "0", "perturb__directions": "optimized", "optimize__radius_alpha": "1.0",
              "perturb__step_mode": "absolute"}):
    cfg = sl.base_config(model, data, os.path.join(d, "refused.nc"), perturb__position="all", **over)
    r = sl.run([sl.write_ini(os.path.join(d, "refused.ini"), cfg), "--quiet"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    key = "[fisher] k" if over["fisher__k"] != "0" else "[perturb] directions"
    if r.returncode != 2 or len(lines) != 1 or key not in lines[0] or "positions at once" not in lines[0]:
        sl.fail("%s with position = all: exit %d, %r" % (over, r.returncode, r.stderr))
    print("ok refused %s with [perturb] position = all: %s" % (over, lines[0]))
print("fisher hook sweep tests passed")
