"""The real GPT-2-small manifest ($PLATEAU_SHARED_DIR/gpt2/gpt2-small.tensors.sha256) parses: checked
against a small synthetic model, every one of its entries is accounted for (size mismatch for the
layers the small model has, missing for the rest, "absent buffer" for causal-mask buffers), and the only matches are the two
h.N.attn.masked_bias scalars (-1e4 in both GPT-2 and plateau synth). Skips without ../shared."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

manifest = os.path.join(os.environ.get("PLATEAU_SHARED_DIR", ""), "gpt2", "gpt2-small.tensors.sha256")
if not os.path.isfile(manifest):
    print(f"skip: {manifest} not present (needs ../shared beside the checkout)")
    sys.exit(77)
entries = [ln.split() for ln in open(manifest) if ln.strip()]
names = {e[1] for e in entries}
work = tempfile.mkdtemp(prefix="plateau-realman-")
d = os.path.join(work, "m")
stio.synth(d, "--hf-quirks", layers=2, embd=16, heads=4, ctx=8)
p = stio.run(["verify", d, "--manifest", manifest])
reported = {}
for ln in p.stdout.splitlines()[:-1]:
    kind, rest = ln.split("  ", 1)
    reported[rest.split(":")[0]] = kind
bad = []
if p.returncode != 2:
    bad.append(f"exit {p.returncode}, expected 2")
if f"2 of {len(entries)} manifest tensors match" not in p.stdout:
    bad.append(f"summary line lacks '2 of {len(entries)} manifest tensors match'")
if set(reported) | {"h.0.attn.masked_bias", "h.1.attn.masked_bias"} != names:
    bad.append(f"reported {len(reported)} names, manifest has {len(names)}: {sorted(names ^ set(reported))[:5]}")
if reported.get("h.11.mlp.c_proj.weight") != "missing" or reported.get("h.0.attn.c_attn.weight") != "size":
    bad.append("h.11.* should be missing and h.0.* a size mismatch")
# Causal-mask buffers are constants that newer exports omit: reported, never counted as missing.
if reported.get("h.11.attn.bias") != "absent buffer" or "h.11.attn.bias" in [k for k, v in reported.items() if v == "missing"]:
    bad.append("h.11.attn.bias should be reported as an absent buffer, not missing")
shutil.rmtree(work)
print(p.stdout[-300:], p.stderr)
print("FAIL: " + "; ".join(bad) if bad else f"ok: all {len(entries)} entries of the real manifest parsed and accounted for")
sys.exit(1 if bad else 0)
