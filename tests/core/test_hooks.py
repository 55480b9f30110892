"""Every TransformerLens hook point plateau takes (issue 18, item 2), for every family, against the
independent numpy reference (ref_models.py / ref_gpt2.py: TLHooks.run_with_hooks, TL's semantics):

  * the clean activation at every hook of every block (blocks.N.hook_resid_pre, attn.hook_z,
    hook_attn_out, hook_resid_mid, hook_mlp_out, hook_resid_post) and at ln_final.hook_normalized,
    every position, within 1e-3 (pl_forward_at);
  * patches at every mid-block hook of the first and the last block (M = 1 and 3, two positions):
    the full patched forward (pl_forward_patched_at) against the reference's patched forward within
    1e-3 (logits and the readout: ln_final.hook_normalized, or a residual hook before or after the
    patch), and the fast path (pl_patch_eval_groups_at, which finishes the block from the hook for
    the perturbed rows only) against that full forward within 1e-4; rows of two prompts grouped in
    one call against each prompt's own call within 1e-4;
  * refusals by name: hook_resid_mid on a parallel-residual model (TL has none), an unknown site,
    ln_final.hook_normalized as a perturbation point, a mid-block hook as a readout.

Model files are written by test_families.py's writers (and plateau synth), with widths where
attn.hook_z's H*head_dim differs from d_model (llama head_dim 24: 96 vs 48; gemma2: 64 vs 48).
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
from test_forward import FAILURES, check  # noqa: E402

SITES = ["hook_resid_pre", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"]
MID = ["attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out"]


class Prober:
    """Every request of one model goes to a single probe_hooks process (--requests): the sanitizer
    builds pay a start-up and a leak check per process. Requests are queued, run together by run(),
    and their outputs read afterwards."""

    def __init__(self, args, tmp, path, ids):
        # a directory of its own: no output (or .err) of another model's request can be read back
        self.args, self.tmp, self.path, self.ids, self.lines = args, tempfile.mkdtemp(dir=tmp), path, ids, []

    def add(self, hook, pos, read_hook, X):
        prefix = os.path.join(self.tmp, f"hk{len(self.lines)}")
        pfile = "-"
        if X is not None:
            pfile = prefix + ".patch.f32"
            X.astype(np.float32).tofile(pfile)
        self.lines.append(f"{hook} {pos} {read_hook} {pfile} {prefix}\n")
        return prefix

    def run(self):
        req = os.path.join(self.tmp, "requests.txt")
        with open(req, "w") as f:
            f.writelines(self.lines)
        r = subprocess.run([self.args.probe_hooks, self.path, self.ids, "--requests", req], capture_output=True,
                           text=True)
        if r.returncode != 0:
            sys.exit("probe_hooks --requests: " + r.stderr)

    @staticmethod
    def result(prefix):
        """(loader, "") for a request that ran, (None, plateau's message) for a refused one."""
        if os.path.exists(prefix + ".err"):
            with open(prefix + ".err") as f:
                return None, f.read().strip()
        return (lambda name: np.fromfile(f"{prefix}.{name}.f32", np.float32)), ""


def check_refused(prefix, hook, read_hook, want):
    _, err = Prober.result(prefix)
    ok = err and all(w in err for w in want)
    print(f"  {'ok' if ok else 'FAIL'} refused {hook} (read {read_hook}): {err}")
    if not ok:
        FAILURES.append(f"refusal of {hook} / {read_hook}")


def check_model(args, tmp, path, label, L, V, T, seed):
    ref = ref_models.load(path)
    rng = np.random.default_rng(seed + 500)
    tokens = rng.integers(0, V, T).tolist()
    ids = ",".join(map(str, tokens))
    tokens2 = tokens[1:] + tokens[:1]
    cache, _ = ref.run_with_hooks(tokens)
    parallel = getattr(ref, "parallel", False)
    prober = Prober(args, tmp, path, ids)
    hooks = [f"blocks.{l}.{s}" for l in range(L) for s in SITES if not (parallel and s == "hook_resid_mid")]
    clean = [(hook, prober.add(hook, 0, "ln_final.hook_normalized", None))
             for hook in hooks + ["ln_final.hook_normalized"]]

    reads = ["ln_final.hook_normalized", f"blocks.{L - 1}.hook_resid_post", "blocks.0.hook_resid_pre"]
    patched = []
    # and the last residual (blocks.{L-1}.hook_resid_post, TL's common final hook): no block after it,
    # the patch goes straight to ln_final and the unembedding (its readouts: the patched x itself)
    mids = [(hook, reads[i % len(reads)]) for i, hook in enumerate(f"blocks.{l}.{s}" for l in sorted({0, L - 1})
                                                                     for s in MID)]
    last = [(f"blocks.{L - 1}.hook_resid_post", r) for r in reads]
    for hook, read_hook in mids + last:
        if parallel and hook.endswith("hook_resid_mid"):
            continue
        for pos in (T - 1, T // 3):
            for M in (1, 3):
                base = cache[hook][pos]
                targets = rng.normal(0, 1, (M, base.size)) * np.std(base) + base.mean()
                X = (base + np.linspace(0, 1, M)[:, None] * (targets - base)).astype(np.float32)
                patched.append((hook, pos, M, read_hook, X, prober.add(hook, pos, read_hook, X)))

    read = "ln_final.hook_normalized"
    refusals = []
    zeros = np.zeros((1, 4096), np.float32)
    if parallel:
        refusals.append(("blocks.0.hook_resid_mid", read, ["blocks.0.hook_resid_mid", "parallel"], None))
    refusals.append(("blocks.0.hook_mlp_in", read, ["blocks.0.hook_mlp_in", "expected"], None))
    refusals.append((f"blocks.{L}.attn.hook_z", read, [f"blocks.{L}.attn.hook_z", "does not exist"], None))
    refusals.append(("ln_final.hook_normalized", read, ["ln_final.hook_normalized", "readout"], zeros))
    refusals.append(("blocks.0.hook_resid_pre", "blocks.0.hook_mlp_out", ["hook_mlp_out", "read"], zeros))
    refusals = [(h, r, w, prober.add(h, 0, r, X)) for h, r, w, X in refusals]
    prober.run()

    for hook, prefix in clean:
        load, err = Prober.result(prefix)
        if load is None:
            print(f"  FAIL {hook}: {err}")
            FAILURES.append(f"{label} {hook}")
            continue
        want = cache[hook]
        check(f"{hook} clean [T, {want.shape[1]}] vs numpy", load("acts").reshape(want.shape), want, 1e-3)

    for hook, pos, M, read_hook, X, prefix in patched:
        load, err = Prober.result(prefix)
        tag = f"{hook} pos={pos} M={M} read {read_hook}"
        if load is None:
            print(f"  FAIL {tag}: {err}")
            FAILURES.append(f"{label} {tag}")
            continue
        C = load("fast_read").size // M
        fast_l, naive_l = load("fast_logits").reshape(M, V), load("naive_logits").reshape(M, V)
        fast_r, naive_r = load("fast_read").reshape(M, C), load("naive_read").reshape(M, C)
        check(f"fast path == full forward, logits, {tag}", fast_l, naive_l, 1e-4)
        check(f"fast path == full forward, readout, {tag}", fast_r, naive_r, 1e-4)
        ref_l, ref_r = np.empty((M, V)), np.empty((M, C))
        for j in range(M):
            c, lg = ref.run_with_hooks(tokens, patch=(hook, pos, X[j].astype(np.float64)))
            ref_l[j], ref_r[j] = lg[-1], c[read_hook][-1]
        check(f"patched full forward vs numpy, logits, {tag}", naive_l, ref_l, 1e-3)
        check(f"patched full forward vs numpy, readout, {tag}", naive_r, ref_r, 1e-3)
        if read_hook == hook and pos == T - 1:  # read where it is perturbed: the readout is the patched x
            check(f"readout == patch, {tag}", fast_r, X, 0.0)
        if M == 3 and pos == T // 3:
            gl, gr = load("group_logits").reshape(2 * M, V), load("group_read").reshape(2 * M, C)
            check(f"grouped == alone, logits, {tag}", gl, np.concatenate([fast_l, load("alone_logits")
                                                                           .reshape(M, V)]), 1e-4)
            check(f"grouped == alone, readout, {tag}", gr, np.concatenate([fast_r, load("alone_read")
                                                                            .reshape(M, C)]), 1e-4)
            c2, lg2 = ref.run_with_hooks(tokens2, patch=(hook, pos, X[1].astype(np.float64)))
            check(f"grouped, second prompt vs numpy, logits, {tag}", gl[M + 1], lg2[-1], 1e-3)

    for hook, read_hook, want, prefix in refusals:
        check_refused(prefix, hook, read_hook, want)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plateau", required=True)
    ap.add_argument("--probe-hooks", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(18)
        cases = []
        p = os.path.join(tmp, "llama_gqa2")
        fam.llama_dir(p, rng, "llama", 2, 48, 4, 2, 257, 40, "F32", head_dim=24, tied=True, attn_bias=True)
        cases.append(("llama GQA 2 head_dim 24 (z 96 wide, d_model 48) o_proj bias", p, 2, 257, 9))
        p = os.path.join(tmp, "mistral")
        fam.llama_dir(p, rng, "mistral", 2, 32, 4, 1, 200, 16, "F32", window=9)
        cases.append(("mistral GQA 4 sliding window 9", p, 2, 200, 9))
        p = os.path.join(tmp, "qwen2")
        fam.llama_dir(p, rng, "qwen2", 2, 32, 4, 2, 200, 16, "F32", tied=True)
        cases.append(("qwen2 q/k/v biases", p, 2, 200, 9))
        p = os.path.join(tmp, "neox_par")
        fam.neox_dir(p, rng, 2, 32, 4, 200, 16, "F32", 0.25, True)
        cases.append(("gpt_neox parallel residual", p, 2, 200, 9))
        p = os.path.join(tmp, "neox_seq")
        fam.neox_dir(p, rng, 2, 32, 2, 200, 16, "F32", 0.5, False)
        cases.append(("gpt_neox sequential", p, 2, 200, 9))
        p = os.path.join(tmp, "gemma2")
        fam.gemma2_dir(p, rng, 2, 48, 4, 2, 16, 200, 16, "F32", 24, 2.0, 5.0, 4)
        cases.append(("gemma2 post-norms, z 64 wide vs d_model 48, soft-caps, window 4", p, 2, 200, 9))
        p = os.path.join(tmp, "gpt2")
        r = subprocess.run([args.plateau, "synth", p, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "16",
                            "--vocab", "300", "--seed", "5"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("synth: " + r.stderr)
        cases.append(("gpt2 (plateau synth)", p, 2, 300, 9))
        p = os.path.join(tmp, "l2c.bin")
        fam.llama2c_file(p, rng, 1, 32, 64, 2, 4, 2, 200, 16, False)
        cases.append(("llama2.c version 1 GQA 2", p, 2, 200, 9))
        for seed, (label, path, L, V, T) in enumerate(cases):
            print(label)
            check_model(args, tmp, path, label, L, V, T, seed)
    if FAILURES:
        print(f"{len(FAILURES)} checks failed: {FAILURES}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
