"""Exact derivatives through the fast path (plateau/grad.h, issue 17 item 1) against float64 central
finite differences of the independent numpy references (ref_models.py, ref_gpt2.py), for every family
on the model files test_families.py writes (and plateau synth's GPT-2 and Gemma 2):

  llama (GQA 2, head_dim 24, tied, q/k/v/o biases, llama3 rope scaling, F16), mistral (GQA 4),
  qwen2 (q/k/v biases), gpt_neox (rotary 0.25 parallel; rotary 0.5 sequential), gpt2 (Conv1D
  [in, out] weights, fused [q | k | v], LayerNorm, tanh GELU), gemma2 (soft-caps 2 / 5, window 4 on
  the even layers with T = 11 > 4, post-norms, (1 + w) RMSNorm, GeGLU, query_pre_attn_scalar),
  llama2.c (interleaved RoPE; version 1 GQA 2 untied, version 0 tied), gpt_neox rotary 1.0 tied F16.

For each, at M = 3 perturbed rows X (the clean residual plus noise, so that p != p0) at (resid, pos)
with pos < T-1 (so the perturbed positions' own keys and values are attended by later positions):
  * the full Jacobian of (logits at T-1, residual at the read hook) with respect to X by central
    differences of the float64 reference's full forward (no cache), and plateau's
      JVP  dlogits, dread  vs  J_logits DX, J_read DX
      VJP  dx              vs  J_logits^T GL + J_read^T GR
    relative error (norm of the difference / norm of the reference) <= 1e-3 per row;
  * JVP / VJP consistency u^T (J v) = (J^T u)^T v within 1e-4 (plateau alone);
  * the forward values of the derivative calls vs pl_patch_eval within 1e-4; a call of two groups
    (two prompts' runs) vs one call per group, and each row alone (M = 1) vs the batch, within 1e-5;
  * the metrics KL(clean || perturbed), JSD, CE loss (nats) and L2 at the read hook: values vs numpy's
    within 1e-3, gradients (VJP of metric_grad.c's cotangents) vs central differences of numpy's
    metrics of the reference, <= 1e-3;
  * the Fisher product F DX = J^T (diag p - p p^T) J DX vs the same with the finite-difference J, and
    at the clean base the second-order identity KL(x0 + eps v) ~ eps^2 / 2 v^T F v (reference KL,
    the mean of +eps and -eps (no third-order term), at two small eps: relative difference <= 1e-3.
Edge cases on one model: a read at the patch hook (identity at pos = T-1), a read before it (zero), a
patch at the last resid index (no block in the path).

Mid-block hook points (pl_patch_jvp_groups_at / pl_patch_vjp_groups_at; the reference patched by
TLHooks.run_with_hooks, TransformerLens's meaning of each hook): every family case at every mid-block
point of block 0 (attn.hook_z with every head concatenated, hook_attn_out, hook_resid_mid except with a
parallel residual, hook_mlp_out; after Gemma 2's post-norms as TL hooks them), read at the last resid
index, M = 2 rows with central differences of the first, the same checks as above; the noise at the
hook is grown until it moves the next-token distribution (calibrate), and the second-order identity
is taken where the reference's KL / eps^2 has converged (second_order). On qwen2: every point of the
last block at pos T-1 (the rows go on from resid index L), and a read before the point (zero).

Whole contexts (pl_patch_jvp_positions / pl_patch_vjp_positions, positions_case): the residual at a
resid index replaced at P positions at once (the reference patches all of them), readouts at every
perturbed position; each row's full Jacobian [P (V + C), P C] by central differences; JVP, VJP, the
Fisher product of the mean over positions of KL(clean_t || perturbed_t) and its second-order identity,
grouped calls, on gpt2, llama, both gpt_neox, gemma2 (window 4 < the positions' span) and llama2.c;
a read before and at the patch on qwen2. The same at every mid-block point of block 0 (gpt2, gpt_neox
parallel, gemma2) and of qwen2's last block (pl_patch_{jvp,vjp}_positions_at; the reference patched by
run_with_hooks at every perturbed position), without the second-order identity.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models  # noqa: E402
from test_families import gemma2_dir, llama2c_file, llama_dir, neox_dir  # noqa: E402

FAILURES = []


def check(label, ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILURES.append(f"{label}: {what}")


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def metrics(z0, z, read0, read, nxt):
    """KL(p0 || q), JSD, -log q(next) in nats, and ||read - read0||, as metrics.c defines them."""
    lp0, lq = log_softmax(z0), log_softmax(z)
    p0, q = np.exp(lp0), np.exp(lq)
    m = 0.5 * (p0 + q)
    kl = float((p0 * (lp0 - lq)).sum())
    jsd = float(0.5 * (p0 * (lp0 - np.log(m))).sum() + 0.5 * (q * (lq - np.log(m))).sum())
    return np.array([kl, jsd, -lq[nxt], np.linalg.norm(read - read0)])


def run_probe(args, tmp, path, ids, r, pos, read, nxt, X, DX, GL, GR):
    inp, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    for name, a in (("X", X), ("DX", DX), ("GL", GL), ("GR", GR)):
        np.asarray(a, np.float32).tofile(f"{inp}.{name}.f32")
    p = subprocess.run([args.probe, path, ",".join(map(str, ids)), str(r), str(pos), str(read), str(nxt), inp, out],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"grad_probe failed: {p.stderr}")
    return lambda name: np.fromfile(f"{out}.{name}.f32", np.float32).astype(np.float64)


def point_of(ref, ids, r, pos, read, hook):
    """(x0 [W], patched(vec) -> (logits at T-1, residual at READ at T-1)) of the reference at the
    perturbed point: the resid index R (ref.forward), or a TransformerLens hook (run_with_hooks)."""
    T, L = len(ids), ref.L
    if hook is None:
        def patched(vec):
            rs, lg = ref.forward(ids, patch=(r, pos, vec))
            return lg[T - 1], rs[read][T - 1]
        return ref.forward(ids)[0][r][pos], patched
    read_name = f"blocks.{read}.hook_resid_pre" if read < L else f"blocks.{L - 1}.hook_resid_post"

    def patched(vec):
        cache, lg = ref.run_with_hooks(ids, patch=(hook, pos, vec))
        return lg[T - 1], cache[read_name][T - 1]
    return ref.run_with_hooks(ids)[0][hook][pos], patched


def calibrate(patched, x0, z0, rng):
    """Per-coordinate noise scale at a hook point: the activation's own RMS, grown (by 3, at most 3^6
    times) until a random perturbation moves the next-token distribution by a KL of 1e-3 or more. A
    mid-block activation can be small beside the residual it is added to, and a KL near float32's
    resolution would test the rounding, not the derivative; the growth is bounded because the effect
    of a position before T-1 saturates (its row is normalised before anything reads it)."""
    n = rng.normal(0, 1, x0.shape)
    s = np.linalg.norm(x0) / np.sqrt(x0.shape[0])
    for _ in range(6):
        if metrics(z0, patched(x0 + s * n)[0], 0, 0, 0)[0] >= 1e-3:
            break
        s *= 3
    return s


def second_order(patched, x0, z0, v):
    """(KL(x0 + eps v) + KL(x0 - eps v)) / (2 eps^2) of the reference, eps halved from |x0| / 10 until
    the ratio changes by at most 1e-4 (its error is then ~1e-4 / 3: the ratio is q + c eps^2), and
    that eps. At a hook point the regime where the second-order term dominates can lie far below the
    activation's scale (a peaked next-token distribution), so it is found rather than assumed."""
    eps, prev, r = 0.1 * np.linalg.norm(x0) / np.linalg.norm(v), None, 0.0
    for _ in range(30):
        kl = sum(0.5 * metrics(z0, patched(x0 + sign * eps * v)[0], 0, 0, 0)[0] for sign in (1, -1))
        r = kl / (eps * eps)
        if prev is not None and abs(r - prev) <= 1e-4 * abs(r):
            break
        prev, eps = r, eps / 2
    return r, eps


def check_case(args, tmp, label, path, T, r, pos, read, seed, fd=True, hook=None, M=3, fd_rows=None):
    """R a resid index, or with HOOK (a mid-block hook name; R then its block) the _at calls; central
    differences of the first FD_ROWS rows (all by default)."""
    print(f"{label}: {hook if hook else f'resid {r}'} pos {pos} read {read}")
    ref = ref_models.load(path)
    rng = np.random.default_rng(seed)
    V = ref.forward([1])[1].shape[1]
    ids = [int(t) for t in rng.integers(0, V, T)]
    nxt = int(rng.integers(0, V))
    resid0, logits0 = ref.forward(ids)
    C = resid0[0].shape[1]
    x0, patched = point_of(ref, ids, r, pos, read, hook)
    W = x0.shape[0]
    scale = calibrate(patched, x0, logits0[T - 1], rng) if hook else np.linalg.norm(x0) / np.sqrt(W)
    X = (x0 + rng.normal(0, 0.3 * scale, (M, W))).astype(np.float32).astype(np.float64)
    DX = rng.normal(0, 1, (M, W))
    GL, GR = rng.normal(0, 1, (M, V)), rng.normal(0, 1, (M, C))
    got = run_probe(args, tmp, path, ids, hook if hook else r, pos, read, nxt, X, DX, GL, GR)
    dl, dr, dx = got("dlogits").reshape(M, V), got("dread").reshape(M, C), got("dx").reshape(M, W)

    # plateau alone: forwards agree, and u^T (J v) = (J^T u)^T v
    check(label, rel(got("logits"), got("eval_logits")) < 1e-4 and rel(got("read"), got("eval_read")) < 1e-4
          and rel(got("vjp_logits"), got("eval_logits")) < 1e-4, "JVP/VJP forward values == pl_patch_eval")
    lhs = (GL * dl).sum(1) + (GR * dr).sum(1)
    rhs = (dx * DX).sum(1)
    # float32 sums of many terms: besides 1e-4 of the values, 1e-6 of the Cauchy-Schwarz bound (sums
    # that cancel to near 0)
    cs = np.linalg.norm(GL, axis=1) * np.linalg.norm(dl, axis=1) + np.linalg.norm(GR, axis=1) * np.linalg.norm(dr, axis=1)
    check(label, np.all(np.abs(lhs - rhs) <= 1e-4 * (np.abs(lhs) + np.abs(rhs) + 1e-12) + 1e-6 * cs),
          f"u^T(Jv) == (J^T u)^T v (max rel {np.max(np.abs(lhs - rhs) / (np.abs(lhs) + 1e-30)):.1e})")
    grp = got("groups")
    check(label, grp.max() < 1e-5, f"two-prompt grouped calls == one group each, rows alone == batch "
          f"(max rel {grp.max():.1e})")
    if not fd:
        return ref, ids, got, X, DX, GL, GR
    clean_read = resid0[read][T - 1]
    mval, mgrad = got("mval").reshape(4, M), got("mgrad").reshape(4, M, W)
    errs = {k: 0.0 for k in ("jvp", "vjp", "metrics", "metric grads", "fisher")}
    # does the read depend on X: a read after the point, or at it at the last position
    at = r + 1 if hook else r  # the resid index the perturbed row flows on from (a hook's block's output)
    reach = read > at or (read == at and pos == T - 1)
    for i in range(fd_rows or M):
        h = 1e-4 * scale
        J = np.zeros((V + C, W))
        gm = np.zeros((4, W))
        for c in range(W):
            outs = []
            for s in (1, -1):
                xp = X[i].copy()
                xp[c] += s * h
                outs.append(patched(xp))
            J[:V, c] = (outs[0][0] - outs[1][0]) / (2 * h)
            J[V:, c] = (outs[0][1] - outs[1][1]) / (2 * h)
            gm[:, c] = (metrics(logits0[T - 1], *outs[0][:1], clean_read, outs[0][1], nxt)
                        - metrics(logits0[T - 1], *outs[1][:1], clean_read, outs[1][1], nxt)) / (2 * h)
        Jl, Jr = J[:V], J[V:]
        errs["jvp"] = max(errs["jvp"], rel(dl[i], Jl @ DX[i]),
                          rel(dr[i], Jr @ DX[i]) if reach else float(np.abs(dr[i]).max()))
        errs["vjp"] = max(errs["vjp"], rel(dx[i], Jl.T @ GL[i] + Jr.T @ GR[i]))
        lg, rd = patched(X[i])
        want = metrics(logits0[T - 1], lg, clean_read, rd, nxt)
        errs["metrics"] = max(errs["metrics"], float(np.max(np.abs(mval[:, i] - want) / (np.abs(want) + 1e-6))))
        for k in range(4):
            errs["metric grads"] = max(errs["metric grads"], rel(mgrad[k, i], gm[k]))
        p = np.exp(log_softmax(lg))
        u = Jl @ DX[i]
        errs["fisher"] = max(errs["fisher"], rel(got("fv").reshape(M, W)[i], Jl.T @ (p * u - p * (p @ u))))
    against = {"jvp": "J DX (J by float64 central differences)", "vjp": "J^T u (the same J)",
               "metrics": "the numpy metrics", "metric grads": "the numpy metrics' central differences",
               "fisher": "J^T G J DX (the same J)"}
    for k, e in errs.items():
        check(label, e <= 1e-3, f"{k} vs {against[k]}: max rel error {e:.2e}")

    # KL(x0 + eps v) ~ eps^2/2 v^T F0 v at the clean base; the mean of +eps and -eps cancels the
    # third-order term: what is left is O(eps^2) and plateau's float32 F (~1e-4)
    fv0 = got("fv0").reshape(M, W)
    quad = 0.5 * (DX[0] @ fv0[0])
    errs = []
    if hook:
        r2, eps = second_order(patched, x0, logits0[T - 1], DX[0])
        e = abs(r2 - quad) / abs(r2)
        top = float(np.exp(log_softmax(logits0[T - 1])).max())
        if eps < 1e-8 and 1.0 - top < 1e-4:  # never converged: KL's second-order term is below float64's
            print(f"  note: KL(x0 +- eps v) / eps^2 not testable here: the clean next-token distribution is "
                  f"one-hot to {1.0 - top:.0e} (its Fisher metric ~0: 1/2 v^T F v = {quad:.1e})")
            return ref, ids, got, X, DX, GL, GR
        check(label, e <= 1e-3, f"KL(x0 +- eps v) / eps^2 ~ 1/2 v^T F v (eps {eps:.1e}, where the reference's "
              f"ratio has converged): rel {e:.1e}")
        return ref, ids, got, X, DX, GL, GR
    errs = []
    for eps in np.array([4e-3, 1e-3]) * scale * np.sqrt(W) / np.linalg.norm(DX[0]):
        kl = 0.0
        for sign in (1, -1):
            lg, _ = patched(x0 + sign * eps * DX[0])
            kl += 0.5 * metrics(logits0[T - 1], lg, clean_read, clean_read, nxt)[0]
        errs.append(abs(kl - eps * eps * quad) / (eps * eps * quad))
    check(label, max(errs) <= 1e-3,
          f"KL(x0 +- eps v) ~ eps^2/2 v^T F v: rel {errs[0]:.1e} at eps, {errs[1]:.1e} at eps/4")
    return ref, ids, got, X, DX, GL, GR


def edge_cases(args, tmp, label, path, T, L):
    """A read at the patch hook and before it, and a patch after the last block."""
    ref, ids, got, X, DX, GL, GR = check_case(args, tmp, label + " (read at the patch, pos T-1)", path, T, 1, T - 1,
                                              1, 90, fd=False)
    M, C = X.shape
    check(label, rel(got("dread").reshape(M, C), DX) < 1e-6, "read at the patch, pos T-1: dread == DX")
    _, _, got, X, DX, GL, GR = check_case(args, tmp, label + " (read before the patch)", path, T, 1, 4, 0, 91, fd=False)
    check(label, not got("dread").any(), "read before the patch: dread == 0")
    check_case(args, tmp, label + " (patch at resid L)", path, T, L, T - 1, L, 92)


MID = ["attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out"]


def mid_block_cases(args, tmp, label, path, T, pos, seed):
    """Every mid-block point of block 0 (no hook_resid_mid with a parallel residual: TL has none), the
    readout at the last resid index, M = 2 rows (central differences of the first): the same checks as
    the residual hooks'. A one-block model is perturbed at the last position (before it, nothing
    after block 0 would see the change)."""
    ref = ref_models.load(path)
    pos = T - 1 if ref.L == 1 else pos
    for j, site in enumerate(MID):
        if site == "hook_resid_mid" and getattr(ref, "parallel", False):
            continue
        check_case(args, tmp, f"{label} {site}", path, T, 0, pos, ref.L, seed + j, hook=f"blocks.0.{site}", M=2,
                   fd_rows=1)


def mid_block_edges(args, tmp, label, path, T, L):
    """Every mid-block point of the last block (the rows go on from resid index L: no block after),
    perturbed at the last position, read at L (its own output); and a read before the point (zero)."""
    for j, site in enumerate(MID):
        check_case(args, tmp, f"{label} last block {site}, pos T-1", path, T, L - 1, T - 1, L, 200 + j,
                   hook=f"blocks.{L - 1}.{site}", M=2, fd_rows=1)
    _, _, got, X, DX, GL, GR = check_case(args, tmp, label + " attn.hook_z, read before the point", path, T, L - 1,
                                          4, L - 1, 210, fd=False, hook=f"blocks.{L - 1}.attn.hook_z", M=2)
    check(label, not got("dread").any(), "read before the point: dread == 0")


def positions_case(args, tmp, label, path, T, r, positions, read, seed, M=2, fd_rows=1, hook=None):
    """Whole contexts (pl_patch_jvp_positions / pl_patch_vjp_positions): the residual at resid index R
    replaced at the P POSITIONS at once by rows X[M, P, C]; readouts at every perturbed position. The
    reference patches all P positions (ref.forward(patch=(r, positions, [P, C]))) and its float64
    central differences give each row's full Jacobian [P (V + C), P C]; checked as check_case: JVP,
    VJP, the forward values, u^T(Jv) == (J^T u)^T v, grouped calls and rows alone, the Fisher product of
    the mean over positions of KL(clean_t || perturbed_t), F = (1/P) sum_t J_t^T (diag p_t - p_t p_t^T)
    J_t, against the same J, and the second-order identity mean_t KL_t(x0 +- eps v) ~ eps^2/2 v^T F0 v.
    With HOOK (a mid-block hook of block R, TransformerLens's meaning; the reference patched by
    run_with_hooks at every perturbed position): the _at calls, rows of the hook's width W, the noise
    grown as calibrate does; no second-order identity there (a mid-block KL can sit near float64's
    resolution: check_case's second_order search is for one position)."""
    print(f"{label}: {hook if hook else f'resid {r}'} positions {positions} read {read}")
    ref = ref_models.load(path)
    rng = np.random.default_rng(seed)
    V = ref.forward([1])[1].shape[1]
    ids = [int(t) for t in rng.integers(0, V, T)]
    resid0, logits0 = ref.forward(ids)
    C, P, L = resid0[0].shape[1], len(positions), ref.L
    z0, read0 = logits0[positions], resid0[read][positions]
    read_name = f"blocks.{read}.hook_resid_pre" if read < L else f"blocks.{L - 1}.hook_resid_post"
    x0 = ref.run_with_hooks(ids)[0][hook][positions] if hook else resid0[r][positions]  # [P, W]
    W = x0.shape[1]

    def patched(vec):  # vec [P * W] -> (logits [P, V], read [P, C]) at the perturbed positions
        if hook:
            cache, lg = ref.run_with_hooks(ids, patch=(hook, positions, vec.reshape(P, W)))
            return lg[positions], cache[read_name][positions]
        rs, lg = ref.forward(ids, patch=(r, positions, vec.reshape(P, W)))
        return lg[positions], rs[read][positions]

    def mean_kl(vec):
        lg = patched(vec)[0]
        return np.mean([metrics(z0[t], lg[t], 0, 0, 0)[0] for t in range(P)])
    scale = np.linalg.norm(x0) / np.sqrt(x0.size)
    noise = rng.normal(0, 1, x0.size)
    for _ in range(6 if hook else 0):  # as calibrate: a KL near float32's resolution tests the rounding
        if mean_kl(x0.ravel() + scale * noise) >= 1e-3:
            break
        scale *= 3
    X = (x0[None] + rng.normal(0, 0.3 * scale, (M, P, W))).astype(np.float32).astype(np.float64)
    DX = rng.normal(0, 1, (M, P, W))
    GL, GR = rng.normal(0, 1, (M, P, V)), rng.normal(0, 1, (M, P, C))
    got = run_probe(args, tmp, path, ids, hook if hook else r, ",".join(map(str, positions)), read, 0, X, DX, GL, GR)
    dl, dr, dx = got("dlogits").reshape(M, P, V), got("dread").reshape(M, P, C), got("dx").reshape(M, P, W)
    at = r + 1 if hook else r  # the resid index the perturbed rows flow on from
    check(label, rel(got("logits"), got("eval_logits")) < 1e-4 and rel(got("read"), got("eval_read")) < 1e-4
          and rel(got("vjp_logits"), got("eval_logits")) < 1e-4, "JVP/VJP forward values == pl_patch_eval_positions")
    want = np.array([patched(X[i].ravel())[0] for i in range(M)])
    check(label, rel(got("logits"), want.ravel()) < 1e-3, f"logits vs the reference: rel {rel(got('logits'), want.ravel()):.1e}")
    lhs = (GL * dl).sum((1, 2)) + (GR * dr).sum((1, 2))
    rhs = (dx * DX).sum((1, 2))
    cs = np.linalg.norm(GL.reshape(M, -1), axis=1) * np.linalg.norm(dl.reshape(M, -1), axis=1) \
        + np.linalg.norm(GR.reshape(M, -1), axis=1) * np.linalg.norm(dr.reshape(M, -1), axis=1)
    check(label, np.all(np.abs(lhs - rhs) <= 1e-4 * (np.abs(lhs) + np.abs(rhs) + 1e-12) + 1e-6 * cs),
          f"u^T(Jv) == (J^T u)^T v (max rel {np.max(np.abs(lhs - rhs) / (np.abs(lhs) + 1e-30)):.1e})")
    grp = got("groups")
    check(label, grp.max() < 1e-5, f"two-prompt grouped calls == one group each, rows alone == batch "
          f"(max rel {grp.max():.1e})")
    if read < at:
        check(label, not dr.any(), "read before the patch: dread == 0")
    elif read == r and not hook:
        check(label, rel(dr, DX) < 1e-6, "read at the patch: dread == DX at every perturbed position")
    errs = {"jvp": 0.0, "vjp": 0.0, "fisher": 0.0}
    fv = got("fv").reshape(M, P * W)
    for i in range(fd_rows):
        h = 1e-4 * scale
        Jl, Jr = np.zeros((P, V, P * W)), np.zeros((P, C, P * W))
        for c in range(P * W):
            outs = []
            for sgn in (1, -1):
                xp = X[i].ravel().copy()
                xp[c] += sgn * h
                outs.append(patched(xp))
            Jl[:, :, c] = (outs[0][0] - outs[1][0]) / (2 * h)
            Jr[:, :, c] = (outs[0][1] - outs[1][1]) / (2 * h)
        v = DX[i].ravel()
        errs["jvp"] = max(errs["jvp"], rel(dl[i], Jl @ v), rel(dr[i], Jr @ v) if read > at else 0.0)
        want = sum(Jl[t].T @ GL[i, t] + Jr[t].T @ GR[i, t] for t in range(P))
        errs["vjp"] = max(errs["vjp"], rel(dx[i].ravel(), want))
        lg = patched(X[i].ravel())[0]
        f = np.zeros(P * W)
        for t in range(P):
            pt, u = np.exp(log_softmax(lg[t])), Jl[t] @ v
            f += Jl[t].T @ (pt * u - pt * (pt @ u)) / P
        errs["fisher"] = max(errs["fisher"], rel(fv[i], f))
    for k, e in errs.items() if fd_rows else ():
        check(label, e <= 1e-3, f"{k} vs float64 central differences of the reference: max rel error {e:.2e}")
    if hook:
        return
    quad = 0.5 * (DX[0].ravel() @ got("fv0").reshape(M, P * C)[0])
    errs = []
    for eps in np.array([2e-3, 5e-4]) * scale * np.sqrt(P * C) / np.linalg.norm(DX[0]):
        kl = 0.0
        for sgn in (1, -1):
            lg = patched(x0.ravel() + sgn * eps * DX[0].ravel())[0]
            kl += 0.5 * np.mean([metrics(z0[t], lg[t], read0[t], read0[t], 0)[0] for t in range(P)])
        errs.append(abs(kl - eps * eps * quad) / (eps * eps * quad))
    check(label, max(errs) <= 1e-3, f"mean_t KL_t(x0 +- eps v) ~ eps^2/2 v^T F v: rel {errs[0]:.1e} at eps, "
          f"{errs[1]:.1e} at eps/4")


def synth(args, path, *extra):
    r = subprocess.run([args.plateau, "synth", path, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16",
                        "--vocab", "300", "--seed", "5", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("synth: " + r.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plateau", required=True)
    ap.add_argument("--probe", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(17)
        cases = []
        p = os.path.join(tmp, "llama_gqa2")
        llama_dir(p, rng, "llama", 3, 48, 4, 2, 257, 40, "F16", head_dim=24, tied=True, attn_bias=True,
                  theta=500000.0, llama3=(8.0, 1.0, 4.0, 8))
        cases.append(("llama GQA 2 head_dim 24 tied biases llama3 F16", p, 11, 1, 6, 3))
        p = os.path.join(tmp, "mistral")
        llama_dir(p, rng, "mistral", 2, 32, 8, 2, 200, 64, "BF16", window=12)
        cases.append(("mistral GQA 4 BF16", p, 11, 0, 5, 1))
        p = os.path.join(tmp, "qwen2")
        llama_dir(p, rng, "qwen2", 2, 32, 4, 2, 200, 32, "F32", tied=True)
        cases.append(("qwen2 biases GQA 2 tied F32", p, 11, 1, 7, 2))
        p = os.path.join(tmp, "neox_par")
        neox_dir(p, rng, 2, 32, 4, 200, 32, "F32", 0.25, True)
        cases.append(("gpt_neox rotary 0.25 parallel F32", p, 11, 0, 6, 2))
        p = os.path.join(tmp, "neox_seq")
        neox_dir(p, rng, 3, 48, 3, 200, 32, "BF16", 0.5, False, base=1000.0)
        cases.append(("gpt_neox rotary 0.5 sequential BF16", p, 11, 1, 8, 2))
        p = os.path.join(tmp, "gpt2")
        synth(args, p)
        cases.append(("gpt2 (plateau synth)", p, 11, 0, 6, 2))
        p = os.path.join(tmp, "gemma2_caps")
        gemma2_dir(p, rng, 3, 48, 4, 2, 16, 200, 32, "F32", 24, 2.0, 5.0, 4)
        cases.append(("gemma2 soft-caps 2/5 window 4 post-norms qpas 24 F32", p, 11, 0, 5, 3))
        p = os.path.join(tmp, "gemma2_synth")
        synth(args, p, "--family", "gemma2", "--kv-heads", "2", "--head-dim", "8", "--tied", "--sliding-window", "5")
        cases.append(("gemma2 (plateau synth) window 5", p, 11, 0, 4, 2))
        p = os.path.join(tmp, "l2c_v1.bin")
        llama2c_file(p, rng, 1, 48, 100, 2, 6, 3, 260, 24, False)
        cases.append(("llama2.c version 1 untied GQA 2", p, 11, 0, 6, 1))
        p = os.path.join(tmp, "l2c_v0.bin")
        llama2c_file(p, rng, 0, 32, 64, 2, 4, 4, 260, 16, True)
        cases.append(("llama2.c version 0 tied", p, 11, 1, 3, 2))
        p = os.path.join(tmp, "neox_full")
        neox_dir(p, rng, 1, 32, 2, 200, 16, "F16", 1.0, True, tied=True)
        cases.append(("gpt_neox rotary 1.0 parallel tied F16", p, 11, 0, 2, 1))
        for seed, (label, path, T, r, pos, read) in enumerate(cases):
            check_case(args, tmp, label, path, T, r, pos, read, seed)
        edge_cases(args, tmp, "qwen2", os.path.join(tmp, "qwen2"), 11, 2)
        # every family at the last residual (blocks.{L-1}.hook_resid_post, resid index L: no block runs,
        # ln_final and the unembedding do), the sweep's [fisher] and `optimized` at TL's final hook
        for seed, (label, path, T, r, pos, read) in enumerate(cases):
            L = ref_models.load(path).L
            check_case(args, tmp, label + " (patch at resid L)", path, T, L, T - 1, L, 200 + seed, M=2, fd_rows=1)
        for seed, (label, path, T, r, pos, read) in enumerate(cases):
            mid_block_cases(args, tmp, label, path, T, pos, 100 + 10 * seed)
        mid_block_edges(args, tmp, "qwen2", os.path.join(tmp, "qwen2"), 11, 2)
        # whole contexts: several positions at once (a window smaller than the span on gemma2; T-1 among
        # them on llama), a read before and at the patch on qwen2
        by_label = {c[0]: c for c in cases}
        for seed, (label, positions) in enumerate((
                ("gpt2 (plateau synth)", [3, 5, 8]),
                ("llama GQA 2 head_dim 24 tied biases llama3 F16", [2, 6, 10]),
                ("gpt_neox rotary 0.25 parallel F32", [4, 5, 9]),
                ("gpt_neox rotary 0.5 sequential BF16", [1, 7]),
                ("gemma2 soft-caps 2/5 window 4 post-norms qpas 24 F32", [1, 6, 9]),
                ("llama2.c version 1 untied GQA 2", [0, 4, 10]))):
            _, path, T, r, _, read = by_label[label]
            positions_case(args, tmp, label + " whole contexts", path, T, r, positions, read, 300 + seed)
        positions_case(args, tmp, "qwen2 whole contexts, read before", os.path.join(tmp, "qwen2"), 11, 1, [3, 6], 0,
                       310, fd_rows=0)
        # whole contexts at every mid-block point of block 0 (gpt2: sequential; neox: parallel, no
        # hook_resid_mid) and of qwen2's last block
        for label, positions in (("gpt2 (plateau synth)", [3, 5, 8]), ("gpt_neox rotary 0.25 parallel F32", [4, 9]),
                                 ("gemma2 soft-caps 2/5 window 4 post-norms qpas 24 F32", [1, 6, 9])):
            _, path, T, _, _, _ = by_label[label]
            L = ref_models.load(path).L
            for j, site in enumerate(MID):
                if site == "hook_resid_mid" and "parallel" in label:
                    continue
                positions_case(args, tmp, f"{label} whole contexts {site}", path, T, 0, positions, L, 320 + j,
                               hook=f"blocks.0.{site}")
        for j, site in enumerate(MID):
            positions_case(args, tmp, f"qwen2 whole contexts last block {site}", os.path.join(tmp, "qwen2"), 11, 1,
                           [2, 7, 10], 2, 330 + j, hook=f"blocks.1.{site}")
        positions_case(args, tmp, "qwen2 whole contexts attn.hook_z, read before", os.path.join(tmp, "qwen2"), 11, 1,
                       [3, 6], 1, 340, fd_rows=0, hook="blocks.1.attn.hook_z")
        positions_case(args, tmp, "qwen2 whole contexts, read at the patch", os.path.join(tmp, "qwen2"), 11, 1,
                       [3, 6], 1, 311, fd_rows=0)
    if FAILURES:
        print(f"{len(FAILURES)} checks failed: {FAILURES}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
