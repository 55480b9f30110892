"""plateau's forward pass and fast path against the independent numpy GPT-2 (ref_gpt2.py).

Model dirs are written here in Python (not by plateau synth), in several shapes, all three dtypes,
with and without the quirks of HF exports (`transformer.` prefix, tied `lm_head.weight`, causal-mask
buffers). Checks:
  * `plateau logits --all` equals the reference's last-position logits within 1e-3;
  * the clean residual stream at every resid index equals the reference within 1e-3;
  * full forwards with a patched residual equal the reference within 1e-3 (logits and read hook);
  * the fast path equals those full forwards within 1e-4, for several hooks, positions and M = 1..17;
  * batched full forwards and the grouped fast path (rows of several prompts in one call) equal
    their one-prompt-at-a-time versions within 1e-4 (check_groups.c).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_gpt2  # noqa: E402

FAILURES = []


def check(name, got, want, tol):
    err = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    status = "ok" if err <= tol else "FAIL"
    print(f"  {status:4} {name}: max|diff| = {err:.3g} (tol {tol:g})")
    if err > tol:
        FAILURES.append(name)


def to_storage(arr, dtype):
    a32 = np.asarray(arr, np.float32)
    if dtype == "F32":
        return a32
    if dtype == "F16":
        return a32.astype("<f2")
    # BF16: round to nearest even on the upper 16 bits
    u = a32.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return rounded


def make_model(path, L, C, H, N, V, dtype, quirks, seed):
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    cfg = {"model_type": "gpt2", "n_layer": L, "n_head": H, "n_embd": C, "n_positions": N, "n_ctx": N,
           "vocab_size": V, "layer_norm_epsilon": 1e-5}
    if quirks:
        del cfg["n_positions"]  # older exports carry only n_ctx
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)

    def w(*shape, scale=0.1):
        return rng.normal(0.0, scale, shape)

    params = [("wte.weight", w(V, C, scale=0.5)), ("wpe.weight", w(N, C, scale=0.3))]
    for l in range(L):
        p = f"h.{l}."
        params += [(p + "ln_1.weight", 1 + w(C)), (p + "ln_1.bias", w(C)),
                   (p + "attn.c_attn.weight", w(C, 3 * C, scale=0.15)), (p + "attn.c_attn.bias", w(3 * C)),
                   (p + "attn.c_proj.weight", w(C, C)), (p + "attn.c_proj.bias", w(C)),
                   (p + "ln_2.weight", 1 + w(C)), (p + "ln_2.bias", w(C)),
                   (p + "mlp.c_fc.weight", w(C, 4 * C)), (p + "mlp.c_fc.bias", w(4 * C)),
                   (p + "mlp.c_proj.weight", w(4 * C, C, scale=0.05)), (p + "mlp.c_proj.bias", w(C))]
    params += [("ln_f.weight", 1 + w(C)), ("ln_f.bias", w(C))]
    tensors = []
    for name, arr in params:
        tensors.append((("transformer." + name) if quirks else name, dtype, to_storage(arr, dtype)))
    if quirks:
        wte = [t for t in tensors if t[0].endswith("wte.weight")][0]
        tensors.append(("lm_head.weight", dtype, wte[2]))
        for l in range(L):
            mask = np.tril(np.ones((N, N), np.float32)).reshape(1, 1, N, N)
            tensors.append((f"transformer.h.{l}.attn.bias", "F32", mask))
            tensors.append((f"transformer.h.{l}.attn.masked_bias", "F32", np.array(-1e4, np.float32)))
        tensors.reverse()  # order in the header must not matter
    ref_gpt2.write_safetensors(os.path.join(path, "model.safetensors"), tensors, {"format": "pt"})


def run_case(args, tmp, L, C, H, N, V, dtype, quirks, seed):
    label = f"L={L} C={C} H={H} N={N} V={V} {dtype}{' quirks' if quirks else ''}"
    print(label)
    path = os.path.join(tmp, f"m{seed}")
    make_model(path, L, C, H, N, V, dtype, quirks, seed)
    check_model(args, tmp, path, ref_gpt2.GPT2(path), label, L, C, V, min(N, 11), seed)


def check_model(args, tmp, path, ref, label, L, C, V, T, seed):
    """Every check of the module docstring on the model at PATH against the reference REF."""
    rng = np.random.default_rng(seed + 1000)
    tokens = rng.integers(0, V, T).tolist()
    ids = ",".join(map(str, tokens))

    out = subprocess.run([args.plateau, "logits", path, "--ids", ids, "--all"], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr)
        FAILURES.append(label + " logits exit")
        return
    got = np.array([float(x) for x in out.stdout.split()])
    resid_ref, logits_ref = ref.forward(tokens)
    check("logits --all vs numpy", got, logits_ref[-1], 1e-3)

    for hook, pos in (("blocks.0.hook_resid_pre", -1), (f"blocks.{L - 1}.hook_resid_pre", 2)):
        g = subprocess.run([args.groups, path, hook, str(pos)], capture_output=True, text=True)
        print("  " + g.stdout.strip().replace("\n", "\n  "))
        if g.returncode != 0:
            print(g.stderr)
            FAILURES.append(f"{label}: batched forward / grouped fast path ({hook}, pos {pos})")

    hooks = [("blocks.0.hook_resid_pre", 0), (f"blocks.{L - 1}.hook_resid_post", L)]
    if L > 1:
        hooks.append(("blocks.1.hook_resid_pre", 1))
    read_hook, read_r = f"blocks.{L - 1}.hook_resid_post", L
    for hook, r in hooks:
        for pos in ([T - 1, T // 2] if r < L else [T - 1]):
            for M in (1, 4, 17):
                base = resid_ref[r][pos]
                targets = rng.normal(0, 1, (M, C)) * np.std(base) + base.mean()
                alphas = np.linspace(0, 1, M)[:, None]
                X = (base + alphas * (targets - base)).astype(np.float32)
                pfile = os.path.join(tmp, "patch.f32")
                X.tofile(pfile)
                prefix = os.path.join(tmp, "probe")
                subprocess.run([args.probe, path, ids, hook, str(pos), read_hook, pfile, prefix], check=True)
                load = lambda name: np.fromfile(f"{prefix}.{name}.f32", np.float32)  # noqa: E731
                tag = f"{hook} pos={pos} M={M}"
                if hook == hooks[0][0] and pos == T - 1 and M == 1:
                    check("clean residual stream vs numpy", load("resid").reshape(L + 1, T, C),
                          np.stack(resid_ref), 1e-3)
                fast_l, naive_l = load("fast_logits").reshape(M, V), load("naive_logits").reshape(M, V)
                fast_r, naive_r = load("fast_read").reshape(M, C), load("naive_read").reshape(M, C)
                check(f"fast path == full forward, logits, {tag}", fast_l, naive_l, 1e-4)
                check(f"fast path == full forward, read hook, {tag}", fast_r, naive_r, 1e-4)
                ref_l = np.empty((M, V))
                ref_r = np.empty((M, C))
                for i in range(M):
                    rr, lg = ref.forward(tokens, patch=(r, pos, X[i].astype(np.float64)))
                    ref_l[i], ref_r[i] = lg[-1], rr[read_r][-1]
                check(f"patched full forward vs numpy, logits, {tag}", naive_l, ref_l, 1e-3)
                check(f"patched full forward vs numpy, read hook, {tag}", naive_r, ref_r, 1e-3)
                if M == 4:  # q, k, v and gate, up as separate matrices: the same within the fast path's tolerance
                    subprocess.run([args.probe, path, ids, hook, str(pos), read_hook, pfile, prefix, "--unfused"],
                                   check=True)
                    check(f"unfused full forward vs numpy, logits, {tag}", load("naive_logits").reshape(M, V),
                          ref_l, 1e-3)
                    check(f"fused == unfused, fast path logits, {tag}", fast_l, load("fast_logits").reshape(M, V), 1e-4)
                    check(f"fused == unfused, full forward logits, {tag}", naive_l,
                          load("naive_logits").reshape(M, V), 1e-4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plateau", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--groups", required=True)
    args = ap.parse_args()
    cases = [(2, 64, 4, 32, 300, "F32", False), (2, 64, 4, 32, 300, "F32", True),
             (3, 48, 3, 16, 517, "F16", False), (3, 48, 3, 16, 517, "BF16", True),
             (1, 32, 2, 12, 100, "BF16", False), (4, 96, 6, 24, 257, "F16", True)]
    with tempfile.TemporaryDirectory() as tmp:
        for seed, case in enumerate(cases):
            run_case(args, tmp, *case, seed=seed)
    n_checks = "all"
    if FAILURES:
        print(f"{len(FAILURES)} checks failed: {FAILURES}")
        sys.exit(1)
    print(f"{n_checks} checks passed")


if __name__ == "__main__":
    main()
