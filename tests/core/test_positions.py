"""Whole contexts (Lee & Heimersheim's pos=None, issue 18): pl_patch_eval_positions replaces the
residual at P positions of one context at once; checked against a full patched forward of the
independent numpy models (ref_models.py), every family, on small synthetic model files written as
test_families.py writes them (gpt2 by `plateau synth`):

  * logits at every perturbed position [M, P, V] and the read hook there [M, P, C] vs numpy's
    patched forward (all P positions replaced in one forward) within 1e-3;
  * positions `all` (0..T-1, BOS included), a middle range, a sparse set, hooks at the first and last
    block, a read hook before the patch (the clean run), at it (the patch) and after;
  * P = 1 (position T-1) through the new entry equals the one-position fast path (pl_patch_eval_groups)
    within 1e-5
    (the same rows and sgemm shapes: the one-position path itself is checked bit for bit by
    forward_gpt2_bitwise and forward_families);
  * every mid-block hook (attn.hook_z, hook_attn_out, hook_resid_mid, hook_mlp_out) of the first and
    the last block with several positions at once (all, a range, a sparse set) through
    pl_patch_eval_positions_at, against the reference's TransformerLens hooks replaced at those
    positions in one full forward (ref_models.run_with_hooks; at attn.hook_z, Lee & Heimersheim's z:
    every head's z at each listed position), logits and the readout (ln_final.hook_normalized, a
    residual hook before the patch, right after it, at the end) at every perturbed position within
    1e-3; P = 1 there equals the one-position mid-block fast path (pl_patch_eval_groups_at) within
    1e-5; a residual hook read at ln_final.hook_normalized as well.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models  # noqa: E402
import test_families as fam  # noqa: E402

FAILURES = []


def check(name, got, want, tol):
    err = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    ok = err <= tol
    print(f"  {'ok' if ok else 'FAIL':4} {name}: max|diff| = {err:.3g} (tol {tol:g})")
    if not ok:
        FAILURES.append(name)


def models(args, tmp, rng):
    out = []
    p = os.path.join(tmp, "llama")
    fam.llama_dir(p, rng, "llama", 2, 48, 4, 2, 257, 32, "F32", head_dim=16, tied=True, attn_bias=True)
    out.append(("llama GQA 2", p, 2, 48, 257))
    p = os.path.join(tmp, "neox")
    fam.neox_dir(p, rng, 2, 32, 2, 260, 32, "F32", 0.5, True)
    out.append(("gpt_neox rotary 0.5 parallel", p, 2, 32, 260))
    p = os.path.join(tmp, "neox_seq")
    fam.neox_dir(p, rng, 2, 32, 2, 260, 32, "F32", 0.25, False)
    out.append(("gpt_neox rotary 0.25 sequential", p, 2, 32, 260))
    p = os.path.join(tmp, "gemma2")
    fam.gemma2_dir(p, rng, 2, 32, 2, 1, 16, 260, 32, "F32", 16, 2.0, 5.0, 4)
    out.append(("gemma2 soft-caps window 4", p, 2, 32, 260))
    p = os.path.join(tmp, "l2c.bin")
    fam.llama2c_file(p, rng, 1, 32, 64, 2, 4, 2, 260, 16, False)
    out.append(("llama2.c", p, 2, 32, 260))
    p = os.path.join(tmp, "gpt2")
    r = subprocess.run([args.plateau, "synth", p, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16",
                        "--vocab", "300", "--seed", "5"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("synth: " + r.stderr)
    out.append(("gpt2 (plateau synth)", p, 2, 32, 300))
    return out


def probe(args, tmp, path, ids, hook, positions, read_hook, X):
    pfile, prefix = os.path.join(tmp, "patch.f32"), os.path.join(tmp, "probe")
    X.astype(np.float32).tofile(pfile)
    subprocess.run([args.probe, path, ",".join(map(str, ids)), hook, ",".join(map(str, positions)), read_hook,
                    pfile, prefix], check=True)
    return lambda name: np.fromfile(f"{prefix}.{name}.f32", np.float32)


def check_model(args, tmp, rng, label, path, L, C, V):
    ref = ref_models.load(path)
    T = 9
    tokens = rng.integers(0, V, T).tolist()
    resid, _ = ref.forward(tokens)
    cases = [(0, list(range(T)), L), (1, [3, 4, 5, 6], 0), (L - 1, [2, 5, 8], L - 1), (L, list(range(1, T)), L)]
    for r, positions, read_r in cases:
        P, M = len(positions), 3
        base = resid[r][positions]                               # [P, C]
        d = rng.normal(0, 1, (M, P, C))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        alphas = np.array([0.0, 1.0, 4.0])[:, None, None]
        X = base[None] + alphas * d                              # every position moved by the same alpha
        hook = f"blocks.{r}.hook_resid_pre" if r < L else f"blocks.{L - 1}.hook_resid_post"
        read_hook = f"blocks.{read_r}.hook_resid_pre" if read_r < L else f"blocks.{L - 1}.hook_resid_post"
        load = probe(args, tmp, path, tokens, hook, positions, read_hook, X)
        got_l, got_r = load("logits").reshape(M, P, V), load("read").reshape(M, P, C)
        want_l, want_r = np.empty((M, P, V)), np.empty((M, P, C))
        for i in range(M):
            rr, lg = ref.forward(tokens, patch=(r, positions, X[i]))
            want_l[i], want_r[i] = lg[positions], rr[read_r][positions]
        tag = f"{label} r={r} positions={positions[0]}..{positions[-1]} (P={P}) read={read_r}"
        check(f"logits at every perturbed position vs numpy, {tag}", got_l, want_l, 1e-3)
        check(f"read hook at every perturbed position vs numpy, {tag}", got_r, want_r, 1e-3)
    # the one-position path reads at the last position: the same rows when the one position is T-1
    X = resid[1][[T - 1]][None] + rng.normal(0, 1, (4, 1, C))
    load = probe(args, tmp, path, tokens, "blocks.1.hook_resid_pre", [T - 1], f"blocks.{L - 1}.hook_resid_post", X)
    check(f"P = 1 equals the one-position fast path, logits, {label}", load("logits"), load("logits1"), 1e-5)
    check(f"P = 1 equals the one-position fast path, read, {label}", load("read"), load("read1"), 1e-5)


MID = ["attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out"]


def check_mid(args, tmp, rng, label, path, L, V):
    ref = ref_models.load(path)
    parallel = getattr(ref, "parallel", False)
    T = 9
    tokens = rng.integers(0, V, T).tolist()
    cache, clean_logits = ref.run_with_hooks(tokens)
    sets = [list(range(T)), [3, 4, 5, 6], [2, 5, 8]]
    hooks = [f"blocks.{l}.{s}" for l in sorted({0, L - 1}) for s in MID if not (parallel and s == "hook_resid_mid")]
    hooks.append("blocks.1.hook_resid_pre")  # a residual hook read after the final norm
    for i, hook in enumerate(hooks):
        l = int(hook.split(".")[1])
        positions = sets[(i + l) % len(sets)]  # hook_mlp_out gets the sparse set (its rotary table) in every model
        reads = ["ln_final.hook_normalized", f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_post",
                 f"blocks.{L - 1}.hook_resid_post"]
        read_hook = reads[i % len(reads)] if not hook.endswith("resid_pre") else reads[0]
        P, M = len(positions), 3
        base = cache[hook][positions]                            # [P, W]
        W = base.shape[1]
        d = rng.normal(0, 1, (M, P, W))
        d *= np.linalg.norm(base, axis=-1).mean() / np.linalg.norm(d, axis=-1, keepdims=True)
        X = base[None] + np.array([0.0, 0.3, 1.5])[:, None, None] * d
        load = probe(args, tmp, path, tokens, hook, positions, read_hook, X)
        C = load("read").size // (M * P)
        got_l, got_r = load("logits").reshape(M, P, V), load("read").reshape(M, P, C)
        want_l, want_r = np.empty((M, P, V)), np.empty((M, P, C))
        for k in range(M):
            c, lg = ref.run_with_hooks(tokens, patch=(hook, positions, X[k]))
            want_l[k], want_r[k] = lg[positions], c[read_hook][positions]
        tag = f"{label} {hook} positions={positions[0]}..{positions[-1]} (P={P}) read {read_hook}"
        check(f"logits at every perturbed position vs numpy TL hooks, {tag}", got_l, want_l, 1e-3)
        check(f"readout at every perturbed position vs numpy TL hooks, {tag}", got_r, want_r, 1e-3)
        moved = float(np.abs(want_l[2] - clean_logits[positions]).max())
        ok = moved > 1e-2 and moved > 1000 * float(np.abs(got_l - want_l).max())  # the check can see a wrong path
        print(f"  {'ok' if ok else 'FAIL'} the perturbation moves the logits by {moved:.3g}, {tag}")
        if not ok:
            FAILURES.append(f"no effect: {tag}")
        if not hook.endswith("resid_pre"):  # P = 1 at the last position: the one-position mid-block fast path
            X1 = cache[hook][[T - 1]][None] + 0.5 * d[:, :1]
            load = probe(args, tmp, path, tokens, hook, [T - 1], read_hook, X1)
            check(f"P = 1 equals the one-position fast path, logits, {label} {hook}", load("logits"),
                  load("logits1"), 1e-5)
            check(f"P = 1 equals the one-position fast path, readout, {label} {hook}", load("read"),
                  load("read1"), 1e-5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plateau", required=True)
    ap.add_argument("--probe", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(18)
        for label, path, L, C, V in models(args, tmp, rng):
            print(label)
            check_model(args, tmp, rng, label, path, L, C, V)
            check_mid(args, tmp, rng, label, path, L, V)
        bad = subprocess.run([args.probe, path, "1,2,3,4", "blocks.0.hook_resid_pre", "2,1", "blocks.0.hook_resid_pre",
                              os.path.join(tmp, "patch.f32"), os.path.join(tmp, "x")], capture_output=True, text=True)
        ok = bad.returncode == 2 and "not after the one before" in bad.stderr
        print(f"  {'ok' if ok else 'FAIL'} positions out of order refused: {bad.stderr.strip()}")
        if not ok:
            FAILURES.append("positions out of order")
    if FAILURES:
        sys.exit(f"{len(FAILURES)} checks failed: {FAILURES}")
    print("all checks passed")


if __name__ == "__main__":
    main()
