"""Both analysis scripts on the smoke job's real output: `plateau synth` + `plateau run jobs/smoke.ini`
(the job as CI runs it, with the model and prompts put where this test made / found them), then the
same job at a second hook and `plateau merge` of the two, checked as a merged multi-hook file.
The checks are check_analysis.py's: figures and panels as expected, every plotted and printed
number equal to an independent computation from the NetCDF file.

usage: smoke_test.py WORKDIR      (needs PLATEAU_BIN, PLATEAU_SRC_DIR and ../shared's gpt2 vocab and data)
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("PLATEAU_BIN", "build/plateau")
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
SHARED = os.environ.get("PLATEAU_SHARED_DIR", os.path.normpath(os.path.join(SRC, "..", "shared")))
PYTHON = os.environ.get("PYTHON", sys.executable)

vocab = os.path.join(SHARED, "gpt2")
prompts = os.path.join(SHARED, "data", "webtext.valid.jsonl")
for need in (os.path.join(vocab, "vocab.json"), os.path.join(vocab, "merges.txt"), prompts):
    if not os.path.exists(need):
        print(f"SKIP: {need} is missing (the smoke job needs ../shared's GPT-2 vocab and WebText prompts)")
        sys.exit(77)

work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/plateau-analysis-smoke"
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


# Under ASan, Open MPI's own allocations (MPI_Init is always called) would be reported as leaks.
env = dict(os.environ)
env["ASAN_OPTIONS"] = (env["ASAN_OPTIONS"] + ":" if env.get("ASAN_OPTIONS") else "") + "detect_leaks=0"
env.setdefault("OPENBLAS_NUM_THREADS", "1")


def step(args):
    try:
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"FAIL: {' '.join(args)} did not finish in 600 s\n")
        sys.exit(1)
    if p.returncode != 0:
        sys.stderr.write(f"FAIL: {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}\n")
        sys.exit(1)


model = os.path.join(work, "smoke-model")
# The model the job's comment asks for.
step([BIN, "synth", model, "--layers", "2", "--embd", "64", "--heads", "4", "--ctx", "32", "--vocab-from", vocab])
job = os.path.join(SRC, "jobs", "smoke.ini")
common = ["--quiet", "--set", f"model.path={model}", "--set", f"data.prompts={prompts}"]
h1 = os.path.join(work, "smoke.nc")
h0 = os.path.join(work, "smoke_h0.nc")
merged = os.path.join(work, "smoke_merged.nc")
step([BIN, "run", job, "-o", h1] + common)
check = [PYTHON, os.path.join(HERE, "check_analysis.py")]
if subprocess.run(check + [h1]).returncode != 0:
    sys.exit(1)
step([BIN, "run", job, "-o", h0, "--set", "perturb.hook=blocks.0.hook_resid_pre"] + common)
step([BIN, "merge", merged, h0, h1])
if subprocess.run(check + [merged, "--hooks", "2"]).returncode != 0:
    sys.exit(1)
shutil.rmtree(work, ignore_errors=True)
print("smoke_test: OK")
