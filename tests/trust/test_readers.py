"""Issue 20, item 7: every reader is bounded, and --dry-run sizes a run on paper.

- plateau verify --manifest a FIFO, /dev/zero (read only), a file over the 16 MiB cap (sparse): exit 2
  naming it, at once; a manifest listing a tensor twice: exit 2 naming the line.
- plateau synth --vocab-from a dir whose vocab.json (merges.txt) is a FIFO: exit 2 naming it, no hang.
- plateau tokenize MODEL - with more than 64 MiB on stdin (/dev/zero): exit 2 saying the cap; a short
  stdin still tokenizes.
- a prompts line (text and JSONL) of 5 MiB, over the 4 MiB cap: exit 2 naming file:line, before any
  tokenizing.
- --dry-run of 10^6 directions x 10^5 steps: exit 2 with rank 0's memory figure against the machine's
  physical memory; of 2 directions x 10^5 steps on a model of 8000 tokens (the batch's logits alone are
  3.2 GB): exit 0, its peak RSS (wait4) far below those buffers: the batch is timed on its first 1024
  rows and the rest estimated from shapes (memory_per_rank_bytes above the logits' 3.2 GB).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "readers")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=4, perturb__steps=3, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "readers.ini"), cfg)

# --- verify --manifest -------------------------------------------------------------------------------
fifo = os.path.join(d, "manifest.fifo")
os.mkfifo(fifo)
tl.expect_error("verify --manifest a FIFO", tl.plateau(["verify", model, "--manifest", fifo]), fifo, "FIFO")
tl.expect_error("verify --manifest /dev/zero", tl.plateau(["verify", model, "--manifest", "/dev/zero"]),
                "/dev/zero", "character device")
big = os.path.join(d, "big.sha256")
with open(big, "wb") as f:
    f.truncate(17 << 20)  # sparse: 17 MiB of nothing on disk
tl.expect_error("verify --manifest over 16 MiB", tl.plateau(["verify", model, "--manifest", big]), big,
                "larger than")
dup = os.path.join(d, "dup.sha256")
with open(dup, "w") as f:
    f.write("# two lines, one tensor\n" + ("%s  wte.weight  9600\n" % ("0" * 64)) * 2)
tl.expect_error("verify: a tensor listed twice", tl.plateau(["verify", model, "--manifest", dup]), dup,
                "line 3", "listed twice")

# --- synth --vocab-from --------------------------------------------------------------------------------
for name in ("vocab.json", "merges.txt"):
    vocab = os.path.join(d, "vocab_" + name.split(".")[0])
    os.makedirs(vocab)
    with open(os.path.join(vocab, "vocab.json"), "w") as f:
        json.dump({chr(ord("a") + i): i for i in range(26)}, f)
    with open(os.path.join(vocab, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    os.unlink(os.path.join(vocab, name))
    os.mkfifo(os.path.join(vocab, name))
    tl.expect_error("synth --vocab-from: %s a FIFO" % name,
                    tl.plateau(["synth", os.path.join(d, "s_" + name), "--layers", "1", "--embd", "8", "--heads", "2",
                                "--ctx", "8", "--vocab-from", vocab]), os.path.join(vocab, name), "FIFO")

# --- tokenize - ------------------------------------------------------------------------------------------
with open("/dev/zero", "rb") as zero:
    r = tl._run([tl.BIN, "tokenize", model, "-"], None, tl.HANG_LIMIT, stdin=zero)
tl.expect_error("tokenize - < /dev/zero", r, "stdin", "more than 67108864 bytes")
with open(os.path.join(d, "short.txt"), "w") as f:
    f.write("abc")
with open(os.path.join(d, "short.txt"), "rb") as short:
    r = tl._run([tl.BIN, "tokenize", model, "-"], None, tl.HANG_LIMIT, stdin=short)
arg = tl.plateau(["tokenize", model, "abc"])
if r[0] != 0 or arg[0] != 0 or not r[1].split() or r[1] != arg[1]:
    sl.fail("tokenize - of a short stdin: exit %s %r %r; as an argument: %r" % (r + (arg[1],)))
print("ok tokenize - of a short stdin: %s, as of the argument" % r[1].strip())

# --- a prompts line over the cap -----------------------------------------------------------------------------
line = "the cat " * (5 << 17)  # 5 MiB
for ext, text in (("txt", "a short first document\n" + line + "\n"),
                  ("jsonl", json.dumps({"text": "first"}) + "\n" + json.dumps({"text": line}) + "\n")):
    path = os.path.join(d, "long." + ext)
    with open(path, "w") as f:
        f.write(text)
    tl.expect_error("a 5 MiB prompts line (.%s)" % ext,
                    tl.plateau(["run", ini, "--quiet", "--set", "data.prompts=" + path]), path + ":2",
                    "at most 4194304")

# --- --dry-run on paper ----------------------------------------------------------------------------------
r = tl.plateau(["run", ini, "--dry-run", "--quiet", "--set", "perturb.n_directions=1000000",
                "--set", "perturb.steps=100000"])
tl.expect_error("--dry-run of 10^6 directions x 10^5 steps", r, "rank 0 would need", "GiB", "physical memory")

os.makedirs(os.path.join(d, "wide_dir"))
wide = sl.make_model(os.path.join(d, "wide_dir"), vocab=8000)
wdata = sl.make_bin(d, 8 * 300, 8000, name="wide.bin")
wini = sl.write_ini(os.path.join(d, "wide.ini"),
                    sl.base_config(wide, wdata, out, data__n_prompts=4, perturb__n_directions=2,
                                   perturb__steps=100000, perturb__cov_prompts=40, perturb__bases="real",
                                   perturb__directions="cov_random"))
p = subprocess.Popen([tl.BIN, "run", wini, "--dry-run", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=sl.run_env())
_, status, usage = os.wait4(p.pid, 0)
text, err = p.stdout.read().decode(), p.stderr.read().decode()
p.stdout.close(), p.stderr.close()
if os.waitstatus_to_exitcode(status) != 0:
    sl.fail("--dry-run of 10^5 steps: exit %d: %s" % (os.waitstatus_to_exitcode(status), err))
logits = 4.0 * 100000 * 8000
peak = usage.ru_maxrss * 1024.0
vals = {l.split("=")[0].strip(): float(l.split("=")[1].split(";")[0])
        for l in text.split("[dry_run]")[1].splitlines() if "=" in l}
if not peak < logits / 2:
    sl.fail("--dry-run of 10^5 steps: peak RSS %.2f GB, the batch's logits are %.2f GB" % (peak / 1e9, logits / 1e9))
if not vals["memory_per_rank_bytes"] > logits:
    sl.fail("--dry-run of 10^5 steps: memory_per_rank_bytes %.3g is below the batch's logits %.3g"
            % (vals["memory_per_rank_bytes"], logits))
print("ok --dry-run of 10^5 steps: peak RSS %.2f GB; estimated %.2f GB per rank (logits alone %.2f GB)"
      % (peak / 1e9, vals["memory_per_rank_bytes"] / 1e9, logits / 1e9))
print("readers tests passed")
