"""GPT-2 through the one decoder is bitwise what plateau computed before (issue 16): gpt2_bitwise
compares the decoder's logits, every resid hook, keys, values and the fast path's logits and reads
against the old GPT-2 forward kept as a test-only reference (gpt2_legacy.c), on synthetic GPT-2s
(F32; BF16 with HF's quirks and an odd context) and on ../shared/models/tinystories-gpt2 when present."""
import argparse
import os
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--plateau", required=True)
ap.add_argument("--probe", required=True)
args = ap.parse_args()

work = tempfile.mkdtemp(prefix="plateau-gpt2-bitwise-")
failures = 0
models = []
for name, extra in (("f32", []), ("bf16-quirks", ["--dtype", "bf16", "--hf-quirks", "--ctx", "9"])):
    d = os.path.join(work, name)
    cmd = [args.plateau, "synth", d, "--layers", "3", "--embd", "32", "--heads", "4", "--ctx", "12", "--vocab", "300",
           "--seed", "4"] + extra
    subprocess.run(cmd, check=True, capture_output=True)
    models.append(d)
import shutil  # noqa: E402
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
real = os.path.join(shared, "models", "tinystories-gpt2")
if os.path.isfile(os.path.join(real, "model.safetensors")):
    models.append(real)
else:
    print(f"skip the trained model: {real} is not present")
for d in models:
    p = subprocess.run([args.probe, d], capture_output=True, text=True)
    print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr.strip())
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        failures += 1
shutil.rmtree(work)
print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
