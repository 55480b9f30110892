"""Helpers of the Python package's tests: the package from the build tree, one small model of every
family plateau reads (synthetic dirs from `plateau synth`, a llama2.c checkpoint written by
tests/core/test_families.py's writer, and the trained stories260K when ../shared has it)."""
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.join(HERE, "..", ".."))
BIN = os.environ.get("PLATEAU_BIN", os.path.join(SRC, "build", "plateau"))
SHARED = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(SRC, "..", "shared"))
sys.path.insert(0, os.path.join(SRC, "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "core"))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        fail("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


SYNTH = (("gpt2", []), ("llama", ["--kv-heads", "2", "--tied"]), ("mistral", ["--kv-heads", "1"]),
         ("qwen2", ["--kv-heads", "2"]), ("gpt_neox", ["--rotary-pct", "0.5", "--sequential-residual"]))


def models(d, vocab=300):
    """[(name, path, V)] of one small model per family, under D."""
    import test_families  # tests/core: writes llama2.c checkpoints without plateau
    out = []
    for family, extra in SYNTH:
        path = os.path.join(d, family)
        run([BIN, "synth", path, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "32", "--vocab",
             str(vocab), "--seed", "3", "--family", family] + extra)
        out.append((family, path, vocab))
    path = os.path.join(d, "llama2c.bin")
    test_families.llama2c_file(path, np.random.default_rng(5), 1, 32, 80, 2, 4, 2, vocab, 32, False)
    out.append(("llama2c", path, vocab))
    stories = os.path.join(SHARED, "models", "stories260K", "stories260K.bin")
    if os.path.exists(stories):
        out.append(("stories260K", stories, 512))
    else:
        print("note: %s is absent: the trained llama2.c model is left out" % stories)
    return out


def rel_err(got, want, floor=1e-6):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float((np.abs(got - want) / np.maximum(np.abs(want).max(), floor)).max())
