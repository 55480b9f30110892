"""plateau verify against manifests computed independently here (hashlib over numpy's float32
little-endian bytes): a clean model passes in every dtype and with HF's quirks; a flipped value,
a missing tensor, an extra tensor and a malformed manifest are all reported, exit 2."""
import hashlib
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

work = tempfile.mkdtemp(prefix="plateau-verify-")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def manifest_for(model_dir, path, drop=(), add=()):
    header, data = stio.read(os.path.join(model_dir, "model.safetensors"))
    lines = []
    for name in sorted(header):
        if name == "__metadata__":
            continue
        bare = name[len("transformer."):] if name.startswith("transformer.") else name
        if bare in drop:
            continue
        f32 = np.ascontiguousarray(stio.tensor_f32(header, data, name), dtype="<f4")
        lines.append(f"{hashlib.sha256(f32.tobytes()).hexdigest()}  {bare}  {f32.nbytes}")
    lines += list(add)
    open(path, "w").write("\n".join(lines) + "\n")
    return len(lines)


def verify(model_dir, manifest):
    return stio.run(["verify", model_dir, "--manifest", manifest])


# 1. clean models pass: f32, f16, bf16 (converted to f32 before hashing), and HF quirks
#    (transformer. prefix, BOOL causal-mask buffers, scalar masked_bias, tied lm_head).
for dtype, quirks in [("f32", False), ("f16", False), ("bf16", True), ("f32", True)]:
    d = os.path.join(work, f"m_{dtype}_{int(quirks)}")
    stio.synth(d, "--dtype", dtype, "--seed", "5", *(["--hf-quirks"] if quirks else []))
    man = os.path.join(work, f"man_{dtype}_{int(quirks)}")
    n = manifest_for(d, man)
    p = verify(d, man)
    check(p.returncode == 0 and f"{n} of {n} manifest tensors match" in p.stdout,
          f"clean {dtype} quirks={quirks}: exit 0, '{n} of {n} match' (got {p.returncode}: {p.stdout.strip()[-200:]} {p.stderr.strip()})")

base = os.path.join(work, "m_f32_0")
man = os.path.join(work, "man_f32_0")

# 2. one flipped value is found and named
flipped = os.path.join(work, "flipped")
shutil.copytree(base, flipped)
h, data = stio.read(os.path.join(flipped, "model.safetensors"))
a, b = h["h.1.mlp.c_fc.weight"]["data_offsets"]
data = bytearray(data)
data[a + 4 * 37 + 2] ^= 0x01  # one mantissa bit of element 37
stio.write(os.path.join(flipped, "model.safetensors"), h, bytes(data))
p = verify(flipped, man)
check(p.returncode == 2 and "mismatch  h.1.mlp.c_fc.weight" in p.stdout.splitlines()
      and sum(ln.startswith("mismatch  ") for ln in p.stdout.splitlines()) == 1 and "does not match" in p.stderr,
      f"flipped bit: exit 2, exactly 'mismatch  h.1.mlp.c_fc.weight' (got {p.returncode}: {p.stdout!r} {p.stderr!r})")

# 3. a tensor missing from the file, and one the manifest lacks
gap = os.path.join(work, "gap")
shutil.copytree(base, gap)
h, data = stio.read(os.path.join(gap, "model.safetensors"))
del h["h.0.ln_2.bias"]
stio.write(os.path.join(gap, "model.safetensors"), h, data)
p = verify(gap, man)
check(p.returncode == 2 and "missing  h.0.ln_2.bias" in p.stdout.splitlines(),
      f"missing tensor listed, exit 2 (got {p.returncode}: {p.stdout!r})")
man_short = os.path.join(work, "man_short")
manifest_for(base, man_short, drop={"wpe.weight"})
p = verify(base, man_short)
check(p.returncode == 2 and "not in manifest  wpe.weight" in p.stdout.splitlines(),
      f"extra file tensor listed as 'not in manifest', exit 2 (got {p.returncode}: {p.stdout!r})")

# 4. size disagreement
man_size = os.path.join(work, "man_size")
lines = open(man).read().splitlines()
lines = [ln.replace("  ln_f.bias  64", "  ln_f.bias  68") for ln in lines]
open(man_size, "w").write("\n".join(lines) + "\n")
p = verify(base, man_size)
check(p.returncode == 2 and "size  ln_f.bias: manifest has 68 bytes, file has 64 (as F32)" in p.stdout,
      f"size mismatch listed (got {p.returncode}: {p.stdout!r})")

# 5. HF exports drop the tied lm_head.weight: the manifest's entry is checked against wte.weight
man_tied = os.path.join(work, "man_tied")
h, data = stio.read(os.path.join(base, "model.safetensors"))
wte = np.ascontiguousarray(stio.tensor_f32(h, data, "wte.weight"), dtype="<f4")
n = manifest_for(base, man_tied, add=[f"{hashlib.sha256(wte.tobytes()).hexdigest()}  lm_head.weight  {wte.nbytes}"])
p = verify(base, man_tied)
check(p.returncode == 0 and f"{n} of {n} manifest tensors match" in p.stdout,
      f"tied lm_head.weight checked against wte.weight (got {p.returncode}: {p.stdout!r} {p.stderr!r})")

# 6. malformed manifests and usage errors
bad = os.path.join(work, "man_bad")
lines = open(man).read().splitlines()
lines[2] = "nothex  h.0.ln_1.weight  64"
open(bad, "w").write("\n".join(lines) + "\n")
p = verify(base, bad)
check(p.returncode == 2 and p.stderr.startswith(f"plateau: {bad}: line 3: 'nothex' is not a lowercase hex sha256"),
      f"bad hash in manifest: exit 2 naming line 3 (got {p.returncode}: {p.stderr!r})")
lines[2] = "0" * 64 + "  h.0.ln_1.weight"
open(bad, "w").write("\n".join(lines) + "\n")
p = verify(base, bad)
check(p.returncode == 2 and f"{bad}: line 3: expected 'SHA256  TENSOR  NBYTES'" in p.stderr,
      f"short manifest line: exit 2 (got {p.returncode}: {p.stderr!r})")
lines = open(man).read().splitlines()
open(bad, "w").write("\n".join(lines + [lines[0]]) + "\n")
p = verify(base, bad)
check(p.returncode == 2 and "is listed twice" in p.stderr, f"duplicate manifest entry: exit 2 ({p.stderr!r})")
p = verify(base, os.path.join(work, "no_such_manifest"))
check(p.returncode == 2 and "no_such_manifest: cannot open" in p.stderr, f"missing manifest: exit 2 ({p.stderr!r})")
p = stio.run(["verify", base])
check(p.returncode == 1 and "usage: plateau verify" in p.stderr, f"no --manifest: usage, exit 1 ({p.stderr!r})")

shutil.rmtree(work)
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
