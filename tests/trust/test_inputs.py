"""Issue 8, items 4 and 7: malformed inputs are one-line errors (exit 2), ambiguous names have one form.

- .npy direction files written here byte by byte: a shape whose element count wraps (2^58 x 64), a 3-D
  array, Fortran order, big-endian, a truncated header, data shorter and longer than the shape, a
  header that is not a dict; each is refused naming the file (under ASan: no read out of bounds).
- a tokenizer whose ids do not fit the model's vocabulary, with JSONL prompts: one line naming it (the
  message for such a token used to read freed memory).
- hook names: blocks.01.hook_resid_pre is stored as blocks.1.hook_resid_pre, so merge refuses the
  same hook under two spellings; blocks.99999999999999999999 is "too large", not "block -1".
- configs: a directory, a NUL byte, an indented line, a line longer than libinih's 200-byte buffer (a
  long path works, its value intact); `plateau config` prints what `plateau run` runs and reads back
  its own output unchanged; --get prints one value.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "inputs")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=6, perturb__steps=5, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "inputs.ini"), cfg)


def npy(name, header, payload=b"", version=1):
    """A .npy file from a header literal, written here by the format's description."""
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    h += b" " * (-(pre + len(h) + 1) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    path = os.path.join(d, name + ".npy")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + size + h + payload)
    return path


row = np.zeros(32, "<f4").tobytes()
cases = [
    ("shape wraps the element count", npy("wrap", "{'descr': '<f4', 'fortran_order': False, 'shape': (288230376151711744, 64), }", b"\0"),
     "shape overflows"),
    ("shape times dtype beyond the data", npy("wrap2", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 1), }", b"\0"),
     "shorter than its shape"),
    ("3-D array", npy("three", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 32), }", row * 2), "3-D"),
    ("Fortran order", npy("fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 32), }", row * 2),
     "Fortran"),
    ("big-endian", npy("big", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 32), }", row * 2), "'>f4'"),
    ("data shorter than the shape", npy("short", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 32), }", row * 2),
     "shorter than its shape"),
    ("data longer than the shape", npy("long", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 32), }", row * 2),
     "need 128"),
    ("header not a dict", npy("notdict", "['descr', '<f4']"), "not a dict"),
    ("shape not a tuple", npy("notuple", "{'descr': '<f4', 'fortran_order': False, 'shape': 64, }"), "not a tuple"),
    ("key twice", npy("twice", "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1, 32), }", row),
     "repeated key"),
    ("version 2.0, wrong width", npy("v2", "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 31), }", bytes(8 * 31), 2),
     "31 columns"),
]
trunc = os.path.join(d, "trunc.npy")
with open(trunc, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00\xff\x7f{'descr'")
cases.append(("truncated header", trunc, "truncated .npy header"))
for label, path, needle in cases:
    tl.expect_error(".npy: " + label,
                    tl.plateau(["run", ini, "--quiet", "--set", "perturb.directions=file:" + path]),
                    os.path.basename(path), needle)
# and a good version 2.0 float64 file runs
good = npy("good64", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 32), }",
           np.random.default_rng(0).standard_normal((2, 32)).astype("<f8").tobytes(), 2)
r = tl.plateau(["run", ini, "--quiet", "--set", "perturb.directions=file:" + good], timeout=120)
if r[0] != 0:
    sl.fail(".npy version 2.0 float64: " + r[2])
os.unlink(out)
print("ok .npy version 2.0 float64 runs")

# A token outside the vocabulary: the 300-token model with the tokenizer of a 2000-token one.
big_vocab = os.path.join(d, "big_vocab")
os.makedirs(big_vocab)
big_vocab = sl.make_model(big_vocab, vocab=2000)
small = os.path.join(d, "small")
sl.shutil.copytree(model, small)
for f in ("vocab.json", "merges.txt"):
    sl.shutil.copy(os.path.join(big_vocab, f), os.path.join(small, f))
docs = os.path.join(d, "docs.jsonl")
with open(docs, "w") as f:
    for i in range(80):
        f.write(json.dumps({"text": "Document %d says: zebra quilts vex %d jumping wizards!" % (i, i * 7)}) + "\n")
tl.expect_error("token outside the vocabulary", tl.plateau(
    ["run", ini, "--quiet", "--set", "model.path=" + small, "--set", "data.prompts=" + docs]),
    "vocabulary", "300")  # refused when the tokenizer is opened, or naming the document's line

# --- hook names --------------------------------------------------------------------------------
r = tl.plateau(["config", ini, "--set", "perturb.hook=blocks.01.hook_resid_pre", "--get", "perturb.hook"])
if r[0] != 0 or r[1].strip() != "blocks.1.hook_resid_pre":
    sl.fail("blocks.01 not canonicalised: %s %r %s" % (r[0], r[1], r[2]))
tl.expect_error("blocks.99999999999999999999", tl.plateau(
    ["run", ini, "--set", "perturb.hook=blocks.99999999999999999999.hook_resid_pre"]), "too large")
a, b = os.path.join(d, "a.nc"), os.path.join(d, "b.nc")
for path, hook, extra in ((a, "blocks.01.hook_resid_pre", []), (b, "blocks.1.hook_resid_pre", ["--set", "data.seed=1"])):
    r = tl.plateau(["run", ini, "--quiet", "-o", path, "--set", "perturb.hook=" + hook] + extra, timeout=120)
    if r[0] != 0:
        sl.fail("run at %s: %s" % (hook, r[2]))
v = sl.variables(a)
import netCDF4  # noqa: E402
with netCDF4.Dataset(a) as ds:
    if ds.getncattr("hook") != "blocks.1.hook_resid_pre" or "hook = blocks.1.hook_resid_pre" not in ds.getncattr("config"):
        sl.fail("blocks.01 stored verbatim: %r" % ds.getncattr("hook"))
tl.expect_error("merge of blocks.01 and blocks.1", tl.plateau(["merge", os.path.join(d, "m.nc"), a, b]),
                "both have hook 'blocks.1.hook_resid_pre'")
print("ok hook names are canonical: blocks.01 is blocks.1")

# --- configs -----------------------------------------------------------------------------------
tl.expect_error("config is a directory", tl.plateau(["run", d]), d, "a directory")
with open(ini) as f:
    text = f.read()
nul = os.path.join(d, "nul.ini")
with open(nul, "w") as f:
    f.write(text.replace("[perturb]", "[perturb]\nsteps\0 = 3"))
tl.expect_error("NUL byte in a config", tl.plateau(["run", nul]), "nul.ini:", "NUL byte")
indented = os.path.join(d, "indented.ini")
with open(indented, "w") as f:
    f.write(text.replace("[run]\n", "[run]\n  seed = 9\n"))
tl.expect_error("indented line", tl.plateau(["run", indented]), "indented.ini:", "indented line")
deep = os.path.join(d, *["a-directory-name-long-enough-to-push-the-line-past-libinih-s-buffer"] * 4)
os.makedirs(deep)
long_rows = os.path.join(deep, "rows.npy")
np.save(long_rows, np.random.default_rng(3).standard_normal((2, 32)).astype(np.float32))
long_ini = os.path.join(d, "long.ini")
with open(long_ini, "w") as f:
    f.write(text.replace("[perturb]", "[perturb]\ndirections = cov_random, file:%s  ; a comment\n" % long_rows)
            .replace("directions = real_other, cov_random, isotropic\n", ""))
if len(long_rows) < 250:
    sl.fail("the long path is only %d characters" % len(long_rows))
r = tl.plateau(["config", long_ini, "--get", "perturb.directions"])
if r[0] != 0 or r[1].strip() != "cov_random, file:" + long_rows:
    sl.fail("a %d-character line: %s %r %s" % (len(long_rows), r[0], r[1], r[2]))
r = tl.plateau(["run", long_ini, "--quiet"], timeout=120)
if r[0] != 0:
    sl.fail("run with a long line: " + r[2])
with netCDF4.Dataset(out) as ds:
    stored = ds.getncattr("config")
os.unlink(out)
print("ok a %d-character config line keeps its value" % (len("directions = cov_random, file:") + len(long_rows)))

# plateau config: the text `plateau run` stores (but read_hook, which needs the model), and a fixed point
r = tl.plateau(["config", long_ini])
if r[0] != 0:
    sl.fail("plateau config: " + r[2])
resolved = os.path.join(d, "resolved.ini")
with open(resolved, "w") as f:
    f.write(r[1])
want = [l for l in stored.splitlines() if not l.startswith("read_hook")]
got = [l for l in r[1].splitlines() if not l.startswith("read_hook")]
if want != got:
    sl.fail("plateau config differs from the run's config attribute:\n%s\n---\n%s" % (r[1], stored))
r2 = tl.plateau(["config", resolved])
if r2[0] != 0 or r2[1] != r[1]:
    sl.fail("plateau config of its own output differs: %s" % r2[2])
tl.expect_error("--get of no key", tl.plateau(["config", ini, "--get", "run.nothing"]), "'run.nothing' is not a config key")
r = tl.plateau(["config", ini, "-o", os.path.join(d, "x", "y.nc"), "--resume", "--get", "run.checkpoint"])
if r[0] != 0 or r[1] != os.path.join(d, "x", "y.nc.ckpt") + "\n":
    sl.fail("--get run.checkpoint with -o: %r %s" % (r[1], r[2]))
print("ok plateau config: the run's config, a fixed point, --get")
print("inputs tests passed")
