"""Sweeps on every model family through the one model interface: synthetic llama (GQA, tied),
qwen2 (biases), gpt_neox (partial rotary, sequential residual) and gemma2 (soft-caps, sliding window
of 3 on the even layers, shorter than the 8-token prompts; tied) dirs from plateau synth, and the
trained llama2.c stories260K (when ../shared is present), on nanoGPT-style .bin token data:
  * the fast path equals --naive within 1e-5 relative per curve (as test_naive.py measures it);
  * 1 process and 2 MPI ranks give bitwise identical files."""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

sl.need_mpirun()
d = sl.workdir(sys.argv)
models = []
for name, extra in (("llama", ["--family", "llama", "--kv-heads", "2", "--tied"]),
                    ("qwen2", ["--family", "qwen2", "--kv-heads", "1"]),
                    ("gpt_neox", ["--family", "gpt_neox", "--sequential-residual", "--rotary-pct", "0.5"]),
                    ("gemma2", ["--family", "gemma2", "--kv-heads", "2", "--tied", "--sliding-window", "3"])):
    path = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth", path, "--layers", "3", "--embd", "32", "--heads", "4", "--ctx", "32",
                        "--vocab", "300", "--seed", "4"] + extra, capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth %s: %s" % (name, r.stderr))
    models.append((name, path, 300))
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
stories = os.path.join(shared, "models", "stories260K", "stories260K.bin")
if os.path.exists(stories):
    models.append(("stories260K", stories, 512))
else:
    print("note: %s is absent: the trained llama2.c model is not swept" % stories)

for name, model, vocab in models:
    data = sl.make_bin(d, 8 * 200, vocab, name=name + ".bin")
    runs = {}
    for label, args, mpi in (("fast", [], 0), ("naive", ["--naive"], 0), ("2 ranks", [], 2)):
        out = os.path.join(d, "%s-%s.nc" % (name, label.replace(" ", "")))
        cfg = sl.base_config(model, data, out, perturb__steps=7, data__n_prompts=8)
        ini = sl.write_ini(os.path.join(d, name + ".ini"), cfg)
        r = sl.run([ini, "--quiet"] + args, mpi=mpi)
        if r.returncode != 0:
            sl.fail("%s %s: exit %d: %s" % (name, label, r.returncode, r.stderr))
        runs[label] = out
    a, b = sl.variables(runs["fast"]), sl.variables(runs["naive"])
    for m in ("kl", "jsd", "l2", "cosine"):
        x, y = a[m].astype(np.float64), b[m].astype(np.float64)
        floor = 1e-6 if m in ("kl", "jsd") else 1e-9
        scale = np.maximum(np.abs(y).max(axis=-1, keepdims=True), floor)
        err = (np.abs(x - y) / scale).max()
        if not err <= 1e-5:
            sl.fail("%s: %s fast vs naive relative error %.3g" % (name, m, err))
        print("ok %s: %-6s fast vs --naive max relative difference %.2g" % (name, m, err))
    bad = sl.same_bits(runs["fast"], runs["2 ranks"])
    if bad:
        sl.fail("%s: 2 ranks differ from 1 process in %s" % (name, bad))
    print("ok %s: 2 ranks bitwise identical to 1 process" % name)
print("family sweep tests passed")
