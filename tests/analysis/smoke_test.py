"""Both analysis scripts on the smoke job's real output: `plateau synth` + `plateau run jobs/smoke.ini`
(the job as CI runs it, with the model and prompts put where this test made / found them), then the
same job at a second hook and `plateau merge` of the two, checked as a merged multi-hook file.
The checks are check_analysis.py's: figures and panels as expected, every plotted and printed
number equal to an independent computation from the NetCDF file, every figure checked as an image.
Then docs/analysis.md's notebook-style example (the python block of "In Python: open_result"), run as
written from a directory where results/smoke.nc is this job's output.

usage: smoke_test.py WORKDIR      (needs PLATEAU_BIN, PLATEAU_SRC_DIR and ../shared's gpt2 vocab and data)
"""
import os
import re
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
# Every metric in the tables; in the figures, KL and cosine (plotted as 1 − cosine on log axes): the
# other metrics take KL's path through the plotting code.
if subprocess.run(check + [h1, "--plot-metrics", "kl,cosine"]).returncode != 0:
    sys.exit(1)
step([BIN, "run", job, "-o", h0, "--set", "perturb.hook=blocks.0.hook_resid_pre"] + common)
step([BIN, "merge", merged, h0, h1])
# One metric is enough for the merged file (the single-hook file's tables had all of them).
if subprocess.run(check + [merged, "--hooks", "2", "--metrics", "kl"]).returncode != 0:
    sys.exit(1)

# docs/analysis.md's example, as a user runs it: from the repository root (here a directory holding
# results/smoke.nc), with analysis/ on PYTHONPATH.
readme = open(os.path.join(SRC, "docs", "analysis.md"), encoding="utf-8").read()
section = readme[readme.index("## In Python: `open_result`"):]
example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
root = os.path.join(work, "root")
os.makedirs(os.path.join(root, "results"))
os.symlink(h1, os.path.join(root, "results", "smoke.nc"))
env_py = dict(env, PYTHONPATH=os.path.join(SRC, "analysis"), MPLBACKEND="Agg")
p = subprocess.run([PYTHON, "-c", example], cwd=root, env=env_py, capture_output=True, text=True, timeout=300)
figure = os.path.join(root, "results", "smoke-kl-real.png")
if p.returncode != 0 or not os.path.exists(figure):
    sys.stderr.write(f"FAIL: docs/analysis.md's python example exited {p.returncode}: {p.stderr.strip()}\n")
    sys.exit(1)
import netCDF4  # noqa: E402
config = netCDF4.Dataset(h1).getncattr("config")
key = lambda k: re.search(rf"^{k}\s*=\s*(.*)$", config, re.M).group(1).strip()
want = f"{key('step_mode')} {int(key('steps'))} {[d.strip() for d in key('directions').split(',')]}"
lines = p.stdout.splitlines()
if lines[:2] != ["True", want]:
    sys.stderr.write(f"FAIL: docs/analysis.md's python example printed {p.stdout[:300]!r}\n")
    sys.exit(1)
import matplotlib.image  # noqa: E402
if float(matplotlib.image.imread(figure)[..., :3].std()) == 0.0:
    sys.stderr.write(f"FAIL: {figure} is blank\n")
    sys.exit(1)
print(f"smoke_test: docs/analysis.md's python example ran ({len(example.splitlines())} lines) and wrote its figure")
shutil.rmtree(work, ignore_errors=True)
print("smoke_test: OK")
