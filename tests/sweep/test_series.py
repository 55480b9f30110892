"""Model series ([model] path = DIR1, DIR2, ... and [model] paths = FILE): one run over three synthetic
models of one shape equals, model by model, three single-model runs (every variable, bitwise, after
selecting the model); the `model` coordinate, model_path, model_sha256 (checked against hashlib's
sha256 of model.safetensors) and model_step are the paths file's; `plateau merge` of the single-model
files stacks along `model` to the same numbers; 1 and 2 ranks agree bitwise; SIGTERM mid-series and
--resume give the uninterrupted run's bits; bad input (mixed shapes or families, a missing dir,
duplicate labels or dirs (a link to a listed dir too), malformed paths-file lines, a stale part, a part
of another config) is refused by name with exit 2 on every rank."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
models = []
os.makedirs(os.path.join(d, "models"))
for seed in range(3):
    m = os.path.join(d, "models", "seed%d" % seed)
    r = subprocess.run([sl.BIN, "synth", m, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "32",
                        "--vocab", "300", "--seed", str(seed)], capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth: " + r.stderr)
    models.append(m)
data = sl.make_bin(d, 8 * 400, 300)
labels, steps = ["init", "mid", "final"], [0, 150, 143000]

# The paths file: comments, blank lines, fields in either order, a dir without label or step would
# be its dir's name; dirs relative to the file's own directory.
listing = os.path.join(d, "models", "series.txt")
with open(listing, "w") as f:
    f.write("# a model series\n\n  seed0 label=init step=0\nseed1\tstep=150   label=mid\n"
            "   # indented comment\nseed2 label=final step=143000\n\n")


def config(name, out, **over):
    small = dict(data__n_prompts=10, perturb__steps=7, output__bootstrap=50)
    small.update(over)
    cfg = sl.base_config(models[0], data, out, **small)
    return sl.write_ini(os.path.join(d, name), cfg)


def check_run(r, what):
    if r.returncode != 0:
        sl.fail("%s: exit %d: %s" % (what, r.returncode, r.stderr))


series = os.path.join(d, "series.nc")
ini = config("series.ini", series, model__path="", model__paths=listing)
check_run(sl.run([ini, "--quiet"]), "series run")
leftovers = [p for p in os.listdir(d) if ".model-" in p]
if leftovers:
    sl.fail("the series run left its parts behind: %s" % leftovers)

# Per-run provenance (time, command line, the run's own output path, ranks, speed) may differ.
PER_RUN = {"n_ranks", "evals_per_second", "model_created", "model_history", "model_config", "model_source"}

s = sl.variables(series)
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402

if s["model"] != labels or list(s["model_step"]) != steps:
    sl.fail("model coordinate %s, steps %s; want %s, %s" % (s["model"], list(s["model_step"]), labels, steps))
for k, m in enumerate(models):
    with open(os.path.join(m, "model.safetensors"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    if s["model_sha256"][k] != want:
        sl.fail("model_sha256[%d] = %s, hashlib says %s" % (k, s["model_sha256"][k], want))
    if s["model_path"][k] != os.path.realpath(m) and s["model_path"][k] != os.path.abspath(m):
        sl.fail("model_path[%d] = %s, want %s" % (k, s["model_path"][k], os.path.abspath(m)))
print("ok series: labels, steps, sha256 (hashlib) and paths of the paths file")
# what made the file: the series run's command line, as a single run's history says it (not a merge of its
# parts, which nobody ran and which are gone)
with netCDF4.Dataset(series) as ds:
    history = ds.getncattr("history")
if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: .*plateau run %s --quiet" % re.escape(ini), history):
    sl.fail("the series file's history is %r, want 'TIME: plateau run %s --quiet'" % (history, ini))
print("ok series: history is the run's command line: " + history)

# Each model alone, as a single-model run of the same config.
with netCDF4.Dataset(series) as ds:
    series_dims = {name: var.dimensions for name, var in ds.variables.items()}
singles = []
for k, m in enumerate(models):
    out = os.path.join(d, "single%d.nc" % k)
    check_run(sl.run([config("single%d.ini" % k, out, model__path=m, model__label=labels[k],
                             model__step=steps[k]), "--quiet"]), "single run %d" % k)
    singles.append(out)
    v = sl.variables(out)
    with netCDF4.Dataset(out) as ds:
        if ds.model_sha256 != s["model_sha256"][k]:
            sl.fail("single run %d: model_sha256 %s, the series has %s" % (k, ds.model_sha256, s["model_sha256"][k]))
    for name, x in v.items():
        y = s.get(name)
        if y is None:
            sl.fail("variable %s of the single run is missing from the series" % name)
        y = y[k] if series_dims[name][:1] == ("model",) else y
        if isinstance(x, list):
            same = list(y) == x
        else:
            y = np.asarray(y)
            same = y.shape == x.shape and y.tobytes() == x.tobytes()
        if not same:
            sl.fail("variable %s of model %d differs from its single-model run" % (name, k))
print("ok series = single-model runs, every variable bitwise, model by model")

# plateau merge of the single-model files stacks along model to the same numbers.
merged = os.path.join(d, "merged.nc")
r = subprocess.run([sl.BIN, "merge", merged] + singles, capture_output=True, text=True)
if r.returncode != 0 or "swept key: model" not in r.stderr:
    sl.fail("merge along model: exit %d: %s" % (r.returncode, r.stderr))
mv = sl.variables(merged)
bad = sorted(n for n in set(mv) | set(s) if n not in PER_RUN and
             (n not in mv or n not in s or (mv[n] != s[n] if isinstance(mv[n], list)
                                            else mv[n].tobytes() != np.asarray(s[n]).tobytes())))
if bad:
    sl.fail("merge of the single-model files differs from the series run in %s" % bad)
print("ok plateau merge stacks single-model files along model (= the series run)")

r = subprocess.run([sl.BIN, "merge", os.path.join(d, "dup.nc"), singles[0], singles[0] + ".copy"],
                   capture_output=True, text=True) if not os.system("cp %s %s.copy" % (singles[0], singles[0])) \
    else None
if r is None or r.returncode != 2 or "both have hook" not in r.stderr:
    sl.fail("merge of one model twice: %s" % (r and r.stderr))
print("ok merge refuses one model twice")

# a series file is not stacked again (its single-model parts are gone): refused naming what reads it
r = subprocess.run([sl.BIN, "merge", os.path.join(d, "twice.nc"), series, merged], capture_output=True, text=True)
if r.returncode != 2 or "already has a 'model' dimension" not in r.stderr or "analysis/series.py" not in r.stderr \
        or os.path.exists(os.path.join(d, "twice.nc")):
    sl.fail("merge of two series files: exit %d: %s" % (r.returncode, r.stderr))
print("ok merge refuses series files, naming series.py: " + r.stderr.strip())


def same_but_per_run(a, b, what):
    va, vb = sl.variables(a), sl.variables(b)
    bad = sorted(n for n in set(va) | set(vb) if n not in PER_RUN and
                 (n not in va or n not in vb or (va[n] != vb[n] if isinstance(va[n], list)
                                                 else va[n].tobytes() != vb[n].tobytes())))
    if bad:
        sl.fail("%s: differs in %s" % (what, bad))


if sl.shutil.which("mpirun"):
    two = os.path.join(d, "two.nc")
    check_run(sl.run([ini, "--quiet", "-o", two], mpi=2), "series on 2 ranks")
    same_but_per_run(series, two, "2 ranks vs 1")
    print("ok series on 2 ranks = 1 process, bitwise")

# SIGTERM during the second model, then --resume: the first model's part is kept, the second resumes
# from its checkpoint (or starts again, when the signal came before its first); the bits are the
# uninterrupted run's.
long_cfg = dict(model__path="", model__paths=listing, data__n_prompts=200, perturb__steps=21,
                run__checkpoint_every=0.2)
full, out = os.path.join(d, "long_full.nc"), os.path.join(d, "long.nc")
long_ini = config("long.ini", out, **long_cfg)
check_run(sl.run([long_ini, "--quiet", "-o", full]), "uninterrupted long series")
proc = sl.start([long_ini])
sl.wait_for(out + ".model-0.nc", proc, limit=120)  # the first model is done: the second is at hand
proc.send_signal(signal.SIGTERM)
_, err = proc.communicate(timeout=60)
if proc.returncode != 75 or not os.path.exists(out + ".model-0.nc") or os.path.exists(out):
    sl.fail("SIGTERM mid-series: exit %d (want 75), part 0 %s: %s" % (proc.returncode,
            os.path.exists(out + ".model-0.nc"), err))
r = sl.run([long_ini, "--quiet"])
if r.returncode != 2 or "pass --resume" not in r.stderr:
    sl.fail("a fresh run over an interrupted series' parts: exit %d: %s" % (r.returncode, r.stderr))
r = sl.run([long_ini, "--resume"])
check_run(r, "--resume of the series")
if "'init'" not in r.stderr or "done in" not in r.stderr:
    sl.fail("--resume did not keep model 1's part: %s" % r.stderr)
same_but_per_run(full, out, "resumed series vs uninterrupted")
print("ok SIGTERM mid-series, --resume: bitwise the uninterrupted run")


# --resume after the model list changed: the finished part is another model's. Refused by name before any
# model runs (review: every remaining model ran before the stacker refused). The part: model 'init''s
# single-model result where the series now lists seed1 first.
changed = os.path.join(d, "changed.nc")
check_run(sl.run([config("changed-part.ini", changed + ".model-0.nc", model__label="init"), "--quiet"]),
          "single-model run as a series' part")
changed_ini = config("changed.ini", changed, model__path="%s, %s" % (models[1], models[2]))
r = sl.run([changed_ini, "--resume"])
want = "is model 'init' (%s), but the series' model 1 is 'seed1' (%s)" % (models[0], models[1])
if r.returncode != 2 or want not in r.stderr or "plateau: model " in r.stderr:
    sl.fail("--resume over another model's part: exit %d, want 2 and '%s' before any model: %s"
            % (r.returncode, want, r.stderr))
if sorted(p for p in os.listdir(d) if p.startswith("changed.nc")) != ["changed.nc.model-0.nc"]:
    sl.fail("--resume over another model's part wrote %s" % os.listdir(d))
print("ok --resume over another model's part: refused before any model runs (%s)" % r.stderr.strip()[-120:])

# --resume after the config changed: the finished part is the listed model's, run with another
# n_prompts (a part finished before the signal, no checkpoint of the next model to compare). Refused by
# name before any model runs (review: every remaining model ran before the stacker refused).
recfg = os.path.join(d, "recfg.nc")
check_run(sl.run([config("recfg-part.ini", recfg + ".model-0.nc", model__label="seed0", data__n_prompts=8),
                  "--quiet"]), "single-model run as a series' part, 8 prompts")
r = sl.run([config("recfg.ini", recfg, model__path="%s, %s" % (models[0], models[1])), "--resume"])
want = "%s.model-0.nc: a finished part of this series run under another config: [data] n_prompts is '8' there, " \
    "'10' here" % recfg
if r.returncode != 2 or want not in r.stderr or "plateau: model " in r.stderr:
    sl.fail("--resume over a part of another config: exit %d, want 2 and '%s' before any model: %s"
            % (r.returncode, want, r.stderr))
if sorted(p for p in os.listdir(d) if p.startswith("recfg.nc")) != ["recfg.nc.model-0.nc"]:
    sl.fail("--resume over a part of another config wrote %s" % os.listdir(d))
print("ok --resume over a part of another config: refused before any model runs")


# --resume after a model's step was corrected in the list: its finished part says the old step, which the
# series' model_step would keep (review: only label and dir were compared). Refused before any model runs.
restep = os.path.join(d, "restep.nc")
check_run(sl.run([config("restep-part.ini", restep + ".model-0.nc", model__label="init", model__step=0), "--quiet"]),
          "single-model run as a series' part, step 0")
restep_list = os.path.join(d, "models", "restep.txt")
with open(restep_list, "w") as f:
    f.write("seed0 label=init step=10\nseed1 label=mid step=150\n")
r = sl.run([config("restep.ini", restep, model__path="", model__paths=restep_list), "--resume"])
want = "%s.model-0.nc: a finished part of this series run at another training step: step 0 there, 10 here" % restep
if r.returncode != 2 or want not in r.stderr or "plateau: model " in r.stderr:
    sl.fail("--resume over a part of another step: exit %d, want 2 and '%s' before any model: %s"
            % (r.returncode, want, r.stderr))
print("ok --resume over a part run at another step: refused before any model runs")

# A fresh run over a model's leftover checkpoint (its parts removed as the message says, its checkpoint
# not): refused before any model runs (review: the models before it ran in full first).
fresh = os.path.join(d, "fresh.nc")
fresh_ini = config("fresh.ini", fresh, model__path="%s, %s" % (models[0], models[1]))
with open(fresh + ".ckpt.model-1", "wb") as f:
    f.write(b"left by an interrupted run")
r = sl.run([fresh_ini, "--quiet"])
want = "checkpoint %s.ckpt.model-1 exists (model 2 'seed1' of an interrupted series run)" % fresh
if r.returncode != 2 or want not in r.stderr or os.path.exists(fresh + ".model-0.nc"):
    sl.fail("a fresh series over model 2's checkpoint: exit %d, want 2 and '%s' before model 1 runs: %s"
            % (r.returncode, want, r.stderr))
print("ok a fresh series over a model's leftover checkpoint: refused before any model runs")

# Two models' runs on other prompts under one prompts path (the file regenerated between the array's
# tasks): merge refuses to stack them (review: tokens were stacked along model without a word).
moved = os.path.join(d, "moved")
os.makedirs(moved)
moved_data = sl.make_bin(moved, 8 * 400, 300, seed=0)
m0 = os.path.join(moved, "m0.nc")
check_run(sl.run([config("moved0.ini", m0, model__path=models[0], data__prompts=moved_data), "--quiet"]), "moved 0")
sl.make_bin(moved, 8 * 400, 300, seed=1)  # the same path, other prompts
m1 = os.path.join(moved, "m1.nc")
check_run(sl.run([config("moved1.ini", m1, model__path=models[1], data__prompts=moved_data), "--quiet"]), "moved 1")
r = subprocess.run([sl.BIN, "merge", os.path.join(moved, "both.nc"), m0, m1], capture_output=True, text=True)
want = "%s: its prompts' token ids differ from %s's: the runs did not see the same prompts" % (m1, m0)
if r.returncode != 2 or want not in r.stderr or os.path.exists(os.path.join(moved, "both.nc")):
    sl.fail("merge along model of runs on other prompts: exit %d, want 2 and '%s': %s" % (r.returncode, want, r.stderr))
print("ok merge refuses models run on other prompts: " + r.stderr.strip()[:160])

# A series resumed after its prompts file was regenerated under the same path: model 1's finished part ran
# on the old prompts. Refused at model 2's setup, before its units and before model 3 (review: the
# stacker refused it only once every model had run).
reprompt = os.path.join(d, "reprompt")
os.makedirs(reprompt)
reprompt_data = sl.make_bin(reprompt, 8 * 400, 300, seed=0)
rp = os.path.join(reprompt, "rp.nc")
check_run(sl.run([config("rp-part.ini", rp + ".model-0.nc", model__label="seed0", data__prompts=reprompt_data),
                  "--quiet"]), "single-model run as a series' part, the first prompts")
sl.make_bin(reprompt, 8 * 400, 300, seed=1)  # the same path, other prompts
r = sl.run([config("rp.ini", rp, model__path="%s, %s, %s" % tuple(models[:3]), data__prompts=reprompt_data),
            "--resume"])
want = ("model 'seed1': its prompts' token ids differ from those of model 1 'seed0' (its finished part): a model "
        "series runs every model on the same prompts, so either the prompts file changed (resume with the original "
        "one")
if (r.returncode != 2 or want not in r.stderr or "model 3/3" in r.stderr
        or sorted(p for p in os.listdir(reprompt) if p.startswith("rp.nc")) != ["rp.nc.model-0.nc"]):
    sl.fail("--resume of a series whose prompts file changed: exit %d, want 2 and '%s' before model 3: %s; files %s"
            % (r.returncode, want, r.stderr, os.listdir(reprompt)))
print("ok --resume after the prompts file changed: refused at the next model's setup")

# Models whose tokenizers split the same text differently (a model dir with merges of its own): the second
# model's run is refused at its setup, before its units and before model 3 (the stacker refused it only
# once every model had run).
retok = os.path.join(d, "models", "retok")
shutil.copytree(models[1], retok)
with open(os.path.join(retok, "merges.txt")) as f:
    merges = f.read().splitlines()
with open(os.path.join(retok, "merges.txt"), "w") as f:
    f.write("\n".join(m for m in merges if m != "\u0120 a") + "\n")  # " a" is two tokens here
text = os.path.join(reprompt, "docs.jsonl")
with open(text, "w") as f:
    for i in range(120):
        words = np.random.default_rng(i).integers(0, 26, size=20)  # distinct documents
        f.write(json.dumps({"text": "a " + " ".join(chr(97 + w) for w in words)}) + "\n")
tk = os.path.join(reprompt, "tk.nc")
r = sl.run([config("tk.ini", tk, model__path="%s, %s, %s" % (models[0], retok, models[2]), data__prompts=text)])
want = "model 'retok': its prompts' token ids differ from those of model 1 'seed0' (swept before it in this run)"
want2 = "or this model's tokenizer differs (give every model one with [model] tokenizer"
if (r.returncode != 2 or want not in r.stderr or want2 not in r.stderr or "model 3/3" in r.stderr
        or sorted(p for p in os.listdir(reprompt) if p.startswith("tk.nc")) != ["tk.nc.model-0.nc"]):
    sl.fail("a series whose second model tokenizes otherwise: exit %d, want 2, '%s' and '%s' before model 3: %s; "
            "files %s" % (r.returncode, want, want2, r.stderr, os.listdir(reprompt)))
if " units x " in r.stderr.split("model 2/3")[-1]:
    sl.fail("a series whose second model tokenizes otherwise: refused only after its setup: %s" % r.stderr)
print("ok a model that tokenizes the prompts otherwise: refused at its setup, before its sweep: "
      + [l for l in r.stderr.splitlines() if want in l][0][:160])

# A single-model run whose [model] path is relative ('.', run from the model's dir), merged from elsewhere:
# its default label is its model dir's name (review: '.' resolved in merge's own directory).
rel = []
for k in (0, 1):
    out = os.path.join(d, "rel%d.nc" % k)
    r = sl.subprocess.run([sl.BIN, "run", config("rel%d.ini" % k, out, model__path="."), "--quiet"],
                          capture_output=True, text=True, env=sl.run_env(), cwd=models[k])
    check_run(r, "single-model run from its model dir, [model] path = .")
    rel.append(out)
rel_merged = os.path.join(d, "rel-merged.nc")
r = subprocess.run([sl.BIN, "merge", rel_merged] + rel, capture_output=True, text=True, cwd="/")
if r.returncode != 0:
    sl.fail("merge of runs with [model] path = .: exit %d: %s" % (r.returncode, r.stderr))
with netCDF4.Dataset(rel_merged) as ds:
    got = list(ds["model"][:])
if got != ["seed0", "seed1"]:
    sl.fail("merge of runs with [model] path = . from /: labels %s, want their dirs' names ['seed0', 'seed1']" % got)
print("ok merge labels a run of [model] path = . by its model dir's name, from any directory")


# Bad input: refused by name, exit 2 (on 2 ranks too).
def refused(name, want, mpi=0, **over):
    bad_ini = config("bad-%s.ini" % name, os.path.join(d, "bad-%s.nc" % name), **over)
    r = sl.run([bad_ini, "--quiet"], mpi=mpi, timeout=120)
    if r.returncode != 2 or want not in r.stderr:
        sl.fail("%s: exit %d, want 2 and '%s': %s" % (name, r.returncode, want, r.stderr))
    print("ok refused: %s (%s)" % (name, r.stderr.strip().splitlines()[-1][:150]))


other = os.path.join(d, "models", "wider")
subprocess.run([sl.BIN, "synth", other, "--layers", "2", "--embd", "48", "--heads", "4", "--ctx", "32", "--vocab",
                "300"], check=True, capture_output=True)
llama = os.path.join(d, "models", "llama")
subprocess.run([sl.BIN, "synth", llama, "--family", "llama", "--layers", "2", "--embd", "32", "--heads", "4",
                "--ctx", "32", "--vocab", "300"], check=True, capture_output=True)
refused("shapes", "has residual width 48, but 32", model__path="%s, %s" % (models[0], other))
if sl.shutil.which("mpirun"):
    refused("shapes-2ranks", "has residual width 48, but 32", mpi=2, model__path="%s, %s" % (models[0], other))
refused("families", "family llama", model__path="%s, %s" % (models[0], llama))
refused("missing", "model dir '%s' does not exist" % os.path.join(d, "nowhere"),
        model__path="%s, %s" % (models[0], os.path.join(d, "nowhere")))
refused("duplicate-dir-label", "label 'seed0' is given twice", model__path="%s, %s/" % (models[0], models[0]))
# One dir under two names (a link) is one model twice, whatever the labels.
alias = os.path.join(d, "models", "alias0")
os.symlink(models[0], alias)
refused("alias-dir", "model dir '%s' is model 1's '%s' again" % (alias, models[0]),
        model__path="%s, %s" % (models[0], alias))
refused("both-keys", "not both", model__path=models[0], model__paths=listing)
refused("series-label", "a series labels each model", model__path="%s, %s" % (models[0], models[1]),
        model__label="x")
lines = {
    "dup-label": ("seed0 label=a\nseed1 label=a\n", ":2: label 'a' is given twice"),
    "bad-field": ("seed0 lab=a\n", ":1: 'lab=a': expected DIR [label=LABEL] [step=N]"),
    "bad-step": ("seed0\nseed1 step=-3\n", ":2: 'step=-3': the step is not an integer"),
    "step-twice": ("seed0 step=1 step=2\n", ":1: 'step' is given twice"),
    "bad-label": ("seed0 label=a/b\n", ":1: model '%s': label 'a/b' is not" % os.path.join(d, "models", "seed0")),
    "empty": ("# nothing\n\n", "no model"),
    # a UTF-8 byte order mark and CRLF line ends: line 1 read as seed0, line 2 reached
    "bom-crlf": ("\ufeffseed0 step=1\r\nseed9\r\n", ":2: model dir '%s' does not exist" %
                 os.path.join(d, "models", "seed9")),
    "alias-line": ("seed0 label=a\nalias0 label=b\n", ":2: model dir '%s' is model 1's" % alias),
    "missing-line": ("seed0\nseed9 step=3\n", ":2: model dir '%s' does not exist" % os.path.join(d, "models", "seed9")),
    # each model's run is given its dir as [model] path, where a comma separates models
    "comma": ("seed0\nse,ed1\n", ":2: model dir '%s' holds a comma" % os.path.join(d, "models", "se,ed1")),
}
os.symlink(models[1], os.path.join(d, "models", "se,ed1"))
for name, (text, want) in lines.items():
    p = os.path.join(d, "models", "%s.txt" % name)
    with open(p, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    refused("paths-" + name, want, model__path="", model__paths=p)

# --dry-run names a bad model as the run does, by its entry in the list (the first included: the dry run
# estimates the first model, and named it as a single-model run's [model] path, which the config lacks)
broken = os.path.join(d, "models", "broken")
os.makedirs(broken)
with open(os.path.join(broken, "config.json"), "w") as f:
    f.write("{")
for name, text, want in (("first", "broken step=0\nseed0 step=1\n", "model 1 'broken'"),
                         ("second", "seed0 step=0\nbroken step=1\n", "model 2 'broken'")):
    p = os.path.join(d, "models", "dry-%s.txt" % name)
    with open(p, "w") as f:
        f.write(text)
    ini = config("dry-%s.ini" % name, os.path.join(d, "dry-%s.nc" % name), model__path="", model__paths=p)
    r = sl.run([ini, "--dry-run"], timeout=120)
    if r.returncode != 2 or want not in r.stderr or "[model] path" in r.stderr:
        sl.fail("--dry-run, the %s model broken: exit %d, want 2 and %r: %s" % (name, r.returncode, want, r.stderr))
    print("ok --dry-run names the %s model by its entry: %s" % (name, r.stderr.strip()[-140:]))

# a dir given as seed0/. is labelled by the dir it names, not '.'
p = os.path.join(d, "models", "dot.txt")
with open(p, "w") as f:
    f.write("seed0/. step=0\n")
dot_out = os.path.join(d, "dot.nc")
r = sl.run([config("dot.ini", dot_out, model__path="", model__paths=p), "--quiet"], timeout=120)
with netCDF4.Dataset(dot_out) if r.returncode == 0 else open(os.devnull) as ds:
    got = list(ds["model"][:]) if r.returncode == 0 else None
if got != ["seed0"]:
    sl.fail("a dir given as seed0/.: exit %d, labels %s (want ['seed0']): %s" % (r.returncode, got, r.stderr))
print("ok a dir given as seed0/. is labelled seed0")

# analysis/series.py: its table against the file's own variables, computed here with numpy.
prefix = os.path.join(d, "fig")
r = subprocess.run(["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "series.py"), series, "-o", prefix,
                    "--alpha", "0.5", "--direction", "isotropic"], capture_output=True, text=True)
if r.returncode != 0 or not os.path.exists(prefix + "-heatmap.png") or not os.path.exists(prefix + "-lines.png"):
    sl.fail("analysis/series.py: exit %d: %s" % (r.returncode, r.stderr))
with netCDF4.Dataset(series) as ds:
    med = ds["kl_median"][...]  # model, base, direction, alpha
    k = int(np.argmin(np.abs(ds["alpha"][...] - 0.5)))
    dirs, comps = list(ds["direction"][...]), list(ds["comparison"][...])
    j = dirs.index("isotropic")
    want_ratio = med[:, 0, j, k] / med[:, 1, j, k]
    want_aat = ds["kl_alpha_at_threshold_ratio"][...][:, comps.index("real/synthetic @ isotropic")]
rows = [line.split(",") for line in open(prefix + ".csv").read().splitlines()[1:]]
got = np.array([[float(x[3]), float(x[4])] for x in rows])
if [x[1] for x in rows] != labels or not np.allclose(got[:, 0], want_ratio, rtol=1e-5, equal_nan=True) or \
        not np.allclose(got[:, 1], np.asarray(want_aat, dtype=float), rtol=1e-5, equal_nan=True):
    sl.fail("analysis/series.py table %s, numpy %s %s" % (got, want_ratio, want_aat))
print("ok analysis/series.py: heat map, lines, table = numpy on the file")

# Per-hook series files: one at another hook joins the figure (a row per hook); one whose config differs in
# another key, or a model of another sha256, is refused naming it (review: only labels, steps and alpha were
# compared). A comparison the file does not hold (jsd has no threshold) is an empty field and a note, not the
# NaN of "beyond the grid"; a missing input and an unwritable output are one line and exit 2.
SERIES_PY = os.path.join(sl.SRC, "analysis", "series.py")


def series_py(*args):
    return subprocess.run(["/usr/bin/python3", SERIES_PY] + list(args), capture_output=True, text=True)


hook0, hook0_bad = os.path.join(d, "hook0.nc"), os.path.join(d, "hook0-bad.nc")
check_run(sl.run([config("hook0.ini", hook0, model__path="", model__paths=listing,
                         perturb__hook="blocks.0.hook_resid_post"), "--quiet"]), "series at blocks.0.hook_resid_post")
check_run(sl.run([config("hook0-bad.ini", hook0_bad, model__path="", model__paths=listing,
                         perturb__hook="blocks.0.hook_resid_post", readout__onset_threshold=0.2), "--quiet"]),
          "series at blocks.0.hook_resid_post, another onset_threshold")
r = series_py(series, hook0, "-o", prefix + "-hooks", "--alpha", "0.5", "--direction", "isotropic")
rows = [line.split(",") for line in open(prefix + "-hooks.csv").read().splitlines()[1:]] if r.returncode == 0 else []
if r.returncode != 0 or [x[0] for x in rows] != ["blocks.1.hook_resid_pre"] * 3 + ["blocks.0.hook_resid_post"] * 3:
    sl.fail("analysis/series.py on two hooks' series: exit %d, rows %s: %s" % (r.returncode, rows, r.stderr))
with netCDF4.Dataset(hook0) as ds:
    med0 = ds["kl_median"][...]
    k0 = int(np.argmin(np.abs(ds["alpha"][...] - 0.5)))
    j0 = list(ds["direction"][...]).index("isotropic")
if not np.allclose([float(x[3]) for x in rows[3:]], med0[:, 0, j0, k0] / med0[:, 1, j0, k0], rtol=1e-5):
    sl.fail("analysis/series.py: the second hook's rows %s differ from numpy on its file" % rows[3:])
print("ok analysis/series.py: two hooks' series, a row per hook and model")
r = series_py(series, hook0_bad, "-o", prefix + "-bad", "--alpha", "0.5", "--direction", "isotropic")
want = "%s: config differs from %s in [readout] onset_threshold ('0.1' there, '0.2' here)" % (hook0_bad, series)
if r.returncode != 2 or r.stderr.count("\n") != 1 or want not in r.stderr or os.path.exists(prefix + "-bad.csv"):
    sl.fail("analysis/series.py on series of two configs: exit %d, want 2 and '%s': %s" % (r.returncode, want, r.stderr))
print("ok analysis/series.py refuses series files of two configs: " + r.stderr.strip())
swapped_list = os.path.join(d, "models", "swapped.txt")
with open(swapped_list, "w") as f:
    f.write("seed1 label=init step=0\nseed0 label=mid step=150\nseed2 label=final step=143000\n")
swapped = os.path.join(d, "swapped.nc")
check_run(sl.run([config("swapped.ini", swapped, model__path="", model__paths=swapped_list,
                         perturb__hook="blocks.0.hook_resid_post"), "--quiet"]), "series of other models, same labels")
r = series_py(series, swapped, "-o", prefix + "-swapped", "--alpha", "0.5", "--direction", "isotropic")
want = "%s: model 'init' is another model than in %s" % (swapped, series)
if r.returncode != 2 or want not in r.stderr:
    sl.fail("analysis/series.py on two series of other models: exit %d, want 2 and '%s': %s"
            % (r.returncode, want, r.stderr))
print("ok analysis/series.py refuses series of other models under the same labels: " + r.stderr.strip())
r = series_py(series, "-o", prefix + "-jsd", "--alpha", "0.5", "--direction", "isotropic", "--metric", "jsd")
rows = [line.split(",") for line in open(prefix + "-jsd.csv").read().splitlines()[1:]] if r.returncode == 0 else []
if r.returncode != 0 or len(rows) != 3 or any(x[4] != "" for x in rows) or "no jsd_alpha_at_threshold_ratio" \
        not in r.stderr:
    sl.fail("analysis/series.py --metric jsd (no threshold): exit %d, rows %s, want empty fields and a note: %s"
            % (r.returncode, rows, r.stderr))
print("ok analysis/series.py: a comparison the file lacks is an empty field and a note")
for label, args, want in (("missing input", [os.path.join(d, "nowhere.nc"), "-o", prefix + "-x"], "nowhere.nc: no such file"),
                          ("unwritable output", [series, "-o", os.path.join(d, "no-dir", "x")], "x.csv: cannot write")):
    r = series_py(*args)
    if r.returncode != 2 or r.stderr.count("\n") != 1 or want not in r.stderr:
        sl.fail("analysis/series.py, %s: exit %d, want 2 and one line with '%s': %s" % (label, r.returncode, want, r.stderr))
    print("ok analysis/series.py, %s: %s" % (label, r.stderr.strip()))

# A series listed out of step order (the single-model files merged last first): series.py draws and tables
# the models in step order (review: a line through them in the file's order zigzagged), with each
# model's own numbers.
backwards = os.path.join(d, "backwards.nc")
r = subprocess.run([sl.BIN, "merge", backwards] + singles[::-1], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("merge of the single-model files, last first: %s" % r.stderr)
r = subprocess.run(["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "series.py"), backwards, "-o",
                    prefix + "-back", "--alpha", "0.5", "--direction", "isotropic"], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("analysis/series.py on a series out of step order: exit %d: %s" % (r.returncode, r.stderr))
rows = [line.split(",") for line in open(prefix + "-back.csv").read().splitlines()[1:]]
got = np.array([[float(x[3]), float(x[4])] for x in rows])
if [x[1] for x in rows] != labels or [int(x[2]) for x in rows] != steps or \
        not np.allclose(got[:, 0], want_ratio, rtol=1e-5, equal_nan=True) or \
        not np.allclose(got[:, 1], np.asarray(want_aat, dtype=float), rtol=1e-5, equal_nan=True):
    sl.fail("analysis/series.py on a series out of step order: table %s, want %s in step order, %s %s"
            % (rows, labels, want_ratio, want_aat))
print("ok analysis/series.py: a series out of step order is drawn and tabled in step order")

# A series read at each position (a `position` dimension): one number per model and hook is not defined,
# refused by name (it was a traceback).
each = os.path.join(d, "each.nc")
check_run(sl.run([config("each.ini", each, model__path="%s, %s" % (models[0], models[1]), perturb__position="all",
                         readout__positions="each"), "--quiet"]), "series read at each position")
r = subprocess.run(["/usr/bin/python3", os.path.join(sl.SRC, "analysis", "series.py"), each, "-o", prefix + "-each"],
                   capture_output=True, text=True)
if r.returncode != 2 or r.stderr.count("\n") != 1 or "each.nc: kl_median has the dimension(s) position" not in r.stderr:
    sl.fail("analysis/series.py on a per-position series: exit %d: %s" % (r.returncode, r.stderr))
print("ok analysis/series.py: a per-position series refused by name")
print("all model series checks passed")
