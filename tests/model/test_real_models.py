"""The two trained models of ../shared/models against independent references.

stories260K (llama2.c version 0, GQA, tied):
  * `plateau logits --ids --all` equals a numpy re-implementation of run.c's forward
    (tests/core/ref_models.Llama2c, which reads the .bin itself) within 1e-3 at several lengths;
  * the reference's greedy decoding from BOS, printed as run.c prints it (the first piece after BOS
    loses its leading space, <0xXX> pieces are bytes), reproduces greedy-t0-n200.txt byte for byte
    (the file has no trailing newline: the 200 pieces are compared as bytes, nothing stripped);
  * `plateau generate stories260K.bin --text '' -n 200` (BOS, then 200 new tokens, decoded as run.c
    prints them, its tokenizer tok512.bin found beside the checkpoint) prints exactly the file's bytes
    followed by the newline generate (like run.c) ends with.
tinystories-gpt2 (HF GPT-2):
  * `plateau logits --all` equals the numpy GPT-2 (ref_gpt2.py) within 1e-3;
  * `plateau generate . --text "Once upon a time, there was a little" -n 40` prints exactly
    sample-greedy.txt (which ends with the newline generate prints).
Skips (77) when ../shared/models is absent.
"""
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "core"))
import ref_gpt2  # noqa: E402
import ref_models  # noqa: E402

PLATEAU = os.environ["PLATEAU_BIN"]
SHARED = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(HERE, "..", "..", "..", "shared"))
STORIES = os.path.join(SHARED, "models", "stories260K")
TINY = os.path.join(SHARED, "models", "tinystories-gpt2")
if not (os.path.isdir(STORIES) and os.path.isdir(TINY)):
    print(f"skip: {SHARED}/models (stories260K, tinystories-gpt2) is absent")
    sys.exit(77)
failures = []


def check(name, ok, detail=""):
    print(f"  {'ok' if ok else 'FAIL'}   {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def plateau_logits(path, ids):
    out = subprocess.run([PLATEAU, "logits", path, "--ids", ",".join(map(str, ids)), "--all"], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"plateau logits failed: {out.stderr}")
    return np.array([float(x) for x in out.stdout.split()])


def llama2c_vocab(path):
    raw = open(path, "rb").read()
    pos, pieces = 4, []
    while pos < len(raw):
        _, n = struct.unpack("<fi", raw[pos:pos + 8])
        pieces.append(raw[pos + 8:pos + 8 + n])
        pos += 8 + n
    return pieces


print("stories260K")
bin_path = os.path.join(STORIES, "stories260K.bin")
ref = ref_models.load(bin_path)
pieces = llama2c_vocab(os.path.join(STORIES, "tok512.bin"))
ids, text = [1], b""
for _ in range(200):  # run.c -n 200 from BOS: 200 positions, 200 printed pieces
    _, logits = ref.forward(ids)
    nxt = int(np.argmax(logits[-1]))
    if nxt == 1:
        break
    piece = pieces[nxt]
    if ids[-1] == 1 and piece.startswith(b" "):
        piece = piece[1:]
    if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
        piece = bytes([int(piece[3:5], 16)])
    text += piece
    ids.append(nxt)
want = open(os.path.join(STORIES, "greedy-t0-n200.txt"), "rb").read()
check("numpy run.c greedy decoding == greedy-t0-n200.txt", text == want, f"{len(text)} vs {len(want)} bytes")
for T in (1, 7, 64, 200):
    got = plateau_logits(bin_path, ids[:T])
    _, lg = ref.forward(ids[:T])
    err = float(np.max(np.abs(got - lg[-1])))
    check(f"logits vs numpy run.c, T={T}", err <= 1e-3, f"max|diff| {err:.3g}")
out = subprocess.run([PLATEAU, "generate", bin_path, "--text", "", "-n", "200"], capture_output=True)
# generate prints the pieces, then a newline (as run.c does); the file holds the pieces alone
check("plateau generate --text '' -n 200 == greedy-t0-n200.txt + newline",
      out.returncode == 0 and out.stdout == want + b"\n", out.stderr.decode().strip() or
      f"{len(out.stdout)} bytes printed, the file has {len(want)}")

print("tinystories-gpt2")
g = ref_gpt2.GPT2(TINY)
toks = [7454, 2402, 257, 640, 11, 612, 373, 257, 1310]  # "Once upon a time, there was a little" (GPT-2 BPE)
_, lg = g.forward(toks)
err = float(np.max(np.abs(plateau_logits(TINY, toks) - lg[-1])))
check("logits vs numpy GPT-2", err <= 1e-3, f"max|diff| {err:.3g}")
out = subprocess.run([PLATEAU, "generate", TINY, "--text", "Once upon a time, there was a little", "-n", "40"],
                     capture_output=True)
sample = open(os.path.join(TINY, "sample-greedy.txt"), "rb").read()
check("generate -n 40 == sample-greedy.txt", out.returncode == 0 and out.stdout == sample,
      out.stderr.decode().strip())

if failures:
    print(f"{len(failures)} checks failed: {failures}")
    sys.exit(1)
print("all checks passed")
