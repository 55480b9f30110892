"""A model's identity over all its weight files (tests/model/identity.c drives the C API):
  * pl_model_sha256 of a single-file dir is the sha256 of model.safetensors, of a llama2.c checkpoint
    the sha256 of the .bin, and of a sharded dir the sha256 of its shards concatenated in file-name
    order (hashlib here);
  * pl_model_check_unchanged notices a change (a new modification time) of any shard, naming it,
    and of a single file;
  * a model.safetensors path given where the model dir belongs is refused with a hint (exit 2)."""
import glob
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core"))
import numpy as np  # noqa: E402
import test_families  # noqa: E402  (the independent llama2.c writer)

DRIVER = sys.argv[1]
failures = []


def check(name, ok, detail=""):
    print(f"  {'ok' if ok else 'FAIL'}   {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def run(model, touched):
    p = subprocess.run([DRIVER, model, touched], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"identity driver failed: {p.stderr}")
    return dict(line.split(" ", 1) for line in p.stdout.splitlines())


with tempfile.TemporaryDirectory() as tmp:
    single, sharded = os.path.join(tmp, "single"), os.path.join(tmp, "sharded")
    stio.synth(single, "--family", "llama", "--kv-heads", "2")
    stio.synth(sharded, "--family", "gpt_neox", "--embd", "32", "--shards", "3")
    st = os.path.join(single, "model.safetensors")
    out = run(single, st)
    check("single file: sha256 of model.safetensors", out["sha256"] == hashlib.sha256(open(st, "rb").read()).hexdigest())
    check("single file: unchanged before", out["before"] == "unchanged", out["before"])
    check("single file: a new mtime is noticed", "model.safetensors: the model file changed" in out["after"],
          out["after"])

    p = stio.run(["info", st])
    check("a model.safetensors path instead of its dir: exit 2, told to give the dir",
          p.returncode == 2 and "is given by its directory" in p.stderr, p.stderr.strip())

    l2c = os.path.join(tmp, "model.bin")
    test_families.llama2c_file(l2c, np.random.default_rng(0), 1, 16, 32, 2, 4, 2, 300, 8, False)
    out = run(l2c, l2c)
    check("llama2.c: sha256 of the .bin", out["sha256"] == hashlib.sha256(open(l2c, "rb").read()).hexdigest())
    check("llama2.c: a new mtime is noticed", "model.bin: the model file changed" in out["after"], out["after"])

    shards = sorted(glob.glob(os.path.join(sharded, "model-*-of-*.safetensors")))
    want = hashlib.sha256(b"".join(open(s, "rb").read() for s in shards)).hexdigest()
    out = run(sharded, shards[1])
    check(f"sharded: sha256 of the {len(shards)} shards concatenated in name order", out["sha256"] == want)
    check("sharded: unchanged before", out["before"] == "unchanged", out["before"])
    check("sharded: a change of the second shard is noticed and named",
          os.path.basename(shards[1]) + ": the model file changed" in out["after"], out["after"])

if failures:
    print(f"{len(failures)} checks failed: {failures}")
    sys.exit(1)
print("all checks passed")
