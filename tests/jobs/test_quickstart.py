"""jobs/quickstart.sh's choice of models and prompts, read from its --plan output (the same decisions
as a real run, with every fetch script asked --check): GPT-2 present; $PLATEAU_MODEL; only the trained
TinyStories models (all, one, without their prompts); nothing but WebText (the synthetic model);
nothing at all (exit 69); a corrupt model (exit 2); $PLATEAU_DATA and $PLATEAU_RANKS. Each case runs in
its own sandbox checkout beside its own ../shared, offline (downloads go to a closed local port), and
--plan must leave the sandbox as it was.

  test_quickstart.py WORKDIR            the cases that need nothing from ../shared
  test_quickstart.py WORKDIR shared     the cases with the real trained models of ../shared (exit 77
                                        without them)"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import jobslib as jl  # noqa: E402

mode = sys.argv[2] if len(sys.argv) > 2 else "local"
root = jl.workdir(sys.argv, "jobs-quickstart-" + mode)
nproc = os.cpu_count()


def case(name, shared_models=(), shared_data=(), models=None):
    """A sandbox checkout root/NAME/repo beside root/NAME/shared holding links to the real models of
    SHARED_MODELS and prompt files SHARED_DATA (name -> a path to link, or text to write)."""
    d = os.path.join(root, name)
    repo = jl.sandbox(d)
    shared = os.path.join(d, "shared")
    os.makedirs(os.path.join(shared, "models"))
    os.makedirs(os.path.join(shared, "data"))
    for m in shared_models:
        os.symlink(os.path.join(jl.SHARED, "models", m), os.path.join(shared, "models", m))
    for f in shared_data:
        if f == "webtext.valid.jsonl":
            with open(os.path.join(shared, "data", f), "w") as out:
                for i in range(20):
                    out.write(json.dumps({"text": "Web page number %d says hello to the world." % i}) + "\n")
        else:
            os.symlink(os.path.join(jl.SHARED, "data", f), os.path.join(shared, "data", f))
    for rel, maker in (models or {}).items():
        maker(os.path.join(repo, "models", rel))
    return repo, shared


def synth(family):
    def make(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        r = subprocess.run([jl.BIN, "synth", path, "--family", family, "--layers", "2", "--embd", "32", "--heads", "4",
                            "--ctx", "32", "--vocab", "300"], capture_output=True, text=True)
        if r.returncode != 0:
            jl.fail("synth: " + r.stderr)
    return make


def plan(repo, shared, code=0, what="", **env):
    """Runs quickstart.sh --plan; returns (the runs it would make as (label, command) pairs, stderr)."""
    before = jl.tree(os.path.dirname(repo))
    r = jl.run(["bash", "jobs/quickstart.sh", "--plan"], repo, jl.offline_env(PLATEAU_SHARED_DIR=shared, **env))
    jl.expect(r, code, what)
    if jl.tree(os.path.dirname(repo)) != before:
        jl.fail("%s: --plan changed the sandbox: %s" % (what, sorted(set(jl.tree(os.path.dirname(repo))) ^ set(before))))
    runs = []
    for line in r.stderr.splitlines():
        if line.startswith("quickstart: would run ("):
            label, cmd = line[len("quickstart: would run ("):].split("): ", 1)
            runs.append((label, cmd))
    return runs, r.stderr


def want_runs(runs, expected, what):
    """expected: (label, config, output) triples in order."""
    got = [(label, cmd) for label, cmd in runs]
    if len(got) != len(expected):
        jl.fail("%s: runs %s, expected %s" % (what, got, expected))
    for (label, cmd), (wl, config, out) in zip(got, expected):
        if label != wl or (" run %s -o %s" % (config, out)) not in cmd:
            jl.fail("%s: run %r: %s, expected %s with %s -> %s" % (what, label, cmd, wl, config, out))


def need(stderr, what, *needles):
    for n in needles:
        if n not in stderr:
            jl.fail("%s: stderr does not say %r:\n%s" % (what, n, stderr))


def local_cases():
    what = "GPT-2 present"
    repo, shared = case("gpt2", shared_data=["webtext.valid.jsonl"], models={"gpt2": synth("gpt2")})
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, [("gpt2", "jobs/quickstart.ini", "results/quickstart.nc")], what)
    if "model.path" in runs[0][1]:
        jl.fail("%s: the GPT-2 run overrides the config's model: %s" % (what, runs[0][1]))
    if not runs[0][1].startswith("mpirun ") or (" -n %d " % nproc) not in runs[0][1]:
        jl.fail("%s: expected mpirun with %d ranks (the cores): %s" % (what, nproc, runs[0][1]))
    need(err, what, "fetch-data: would link data/webtext.valid.jsonl -> ")
    if "fetch-gpt2" in err or "fetch-model" in err:
        jl.fail("%s: looked for another model although models/gpt2 is there:\n%s" % (what, err))

    if "--resume" in runs[0][1]:
        jl.fail("%s: --resume without a checkpoint: %s" % (what, runs[0][1]))

    # Ctrl-C during a quickstart leaves results/quickstart.nc.ckpt; plateau run refuses to start over it
    # without --resume, which quickstart.sh's user cannot pass: the next quickstart must resume it.
    what = "an interrupted quickstart's checkpoint"
    ckpt = os.path.join(repo, "results", "quickstart.nc.ckpt")
    os.makedirs(os.path.dirname(ckpt))
    with open(ckpt, "wb") as out:
        out.write(b"checkpoint")
    runs, err = plan(repo, shared, what=what)
    if not runs[0][1].endswith(" --resume"):
        jl.fail("%s: the run does not resume it: %s" % (what, runs[0][1]))
    need(err, what, "results/quickstart.nc.ckpt is there")
    os.remove(ckpt)
    os.rmdir(os.path.dirname(ckpt))

    what = "one rank"
    runs, _ = plan(repo, shared, what=what, PLATEAU_RANKS="1")
    if runs[0][1].startswith("mpirun"):
        jl.fail("%s: PLATEAU_RANKS=1 still runs mpirun: %s" % (what, runs[0][1]))
    plan(repo, shared, 2, "PLATEAU_RANKS=zero", PLATEAU_RANKS="zero")

    what = "PLATEAU_DATA"
    data = os.path.join(shared, "data", "webtext.valid.jsonl")
    runs, err = plan(repo, shared, what=what, PLATEAU_DATA=data)
    if "--set data.prompts=" + data not in runs[0][1] or "fetch-data" in err:
        jl.fail("%s: the run does not read $PLATEAU_DATA, or fetch-data was asked:\n%s\n%s" % (what, runs, err))
    r = jl.run(["bash", "jobs/quickstart.sh", "--plan"], repo,
               jl.offline_env(PLATEAU_SHARED_DIR=shared, PLATEAU_DATA=os.path.join(root, "nothing.jsonl")))
    jl.expect(r, 2, "PLATEAU_DATA missing")
    need(r.stderr.splitlines()[-1], "PLATEAU_DATA missing", "nothing.jsonl is not a readable file")

    what = "PLATEAU_MODEL, a Llama (RMSNorm)"
    llama = os.path.join(root, "llama-model")
    synth("llama")(llama)
    runs, err = plan(repo, shared, what=what, PLATEAU_MODEL=llama)
    want_runs(runs, [(llama, "jobs/quickstart.ini", "results/quickstart.nc")], what)
    for s in ("--set model.path=" + llama, "--set perturb.residual_basis=raw"):
        if s not in runs[0][1]:
            jl.fail("%s: run lacks %r: %s" % (what, s, runs[0][1]))
    what = "PLATEAU_MODEL, a GPT-2 (LayerNorm)"
    runs, _ = plan(repo, shared, what=what, PLATEAU_MODEL=os.path.join(repo, "models", "gpt2"))
    if "residual_basis" in runs[0][1]:
        jl.fail("%s: a LayerNorm model keeps the centred basis: %s" % (what, runs[0][1]))
    r = jl.run(["bash", "jobs/quickstart.sh", "--plan"], repo,
               jl.offline_env(PLATEAU_SHARED_DIR=shared, PLATEAU_MODEL=os.path.join(root, "no-such-model")))
    jl.expect(r, 2, "PLATEAU_MODEL missing")
    need(r.stderr.splitlines()[-1], "PLATEAU_MODEL missing", "no-such-model: no such file or directory")

    what = "nothing but WebText"
    repo, shared = case("synthetic", shared_data=["webtext.valid.jsonl"])
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, [("synthetic", "jobs/quickstart.ini", "results/quickstart-synthetic.nc")], what)
    if "--set model.path=models/synthetic-gpt2-small" not in runs[0][1]:
        jl.fail("%s: not the synthetic model: %s" % (what, runs[0][1]))
    need(err, what, "fetch-gpt2: cannot download ", "fetch-model: cannot download ", "stories260K.bin",
         "fetch-model: tinystories-gpt2 is neither in", "SYNTHETIC", "would make the synthetic model: ")

    what = "nothing at all"
    repo, shared = case("nothing")
    _, err = plan(repo, shared, 69, what)
    need(err.splitlines()[-1], what, "no prompt data can be had here")

    what = "a corrupt stories260K in models/"
    def corrupt(path):
        os.makedirs(path)
        for f in ("stories260K.bin", "tok512.bin"):
            with open(os.path.join(path, f), "wb") as out:
                out.write(b"not the real file")
    repo, shared = case("corrupt", shared_data=["webtext.valid.jsonl"], models={"stories260K": corrupt})
    _, err = plan(repo, shared, 2, what)
    need(err, what, "stories260K.bin: sha256 ", "expected b0a507e7", "remove models/stories260K")


def shared_cases():
    for m in ("stories260K", "tinystories-gpt2"):
        if not os.path.isdir(os.path.join(jl.SHARED, "models", m)):
            jl.skip("needs %s/models/%s (PLATEAU_SHARED_DIR)" % (jl.SHARED, m))
    if not os.path.isfile(os.path.join(jl.SHARED, "data", "tinystories.jsonl")):
        jl.skip("needs %s/data/tinystories.jsonl" % jl.SHARED)
    both = [("stories260K", "jobs/quickstart-stories260K.ini", "results/quickstart-stories260K.nc"),
            ("tinystories-gpt2", "jobs/quickstart-tinystories-gpt2.ini", "results/quickstart-tinystories-gpt2.nc")]

    what = "only ../shared"
    repo, shared = case("shared", ["stories260K", "tinystories-gpt2"], ["tinystories.jsonl", "webtext.valid.jsonl"])
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, both, what)
    need(err, what, "fetch-gpt2: cannot download ", "would link models/stories260K -> ",
         "would link models/tinystories-gpt2 -> ", "would link data/tinystories.jsonl -> ")
    if "SYNTHETIC" in err or "synthetic" in " ".join(c for _, c in runs):
        jl.fail("%s: a synthetic model although trained ones can be had:\n%s" % (what, err))

    what = "only stories260K"
    repo, shared = case("stories260K", ["stories260K"], ["tinystories.jsonl"])
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, both[:1], what)
    need(err, what, "fetch-model: tinystories-gpt2 is neither in")

    what = "only tinystories-gpt2"
    repo, shared = case("tinystories-gpt2", ["tinystories-gpt2"], ["tinystories.jsonl"])
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, both[1:], what)
    need(err, what, "fetch-model: cannot download ")

    what = "models without TinyStories prompts"
    repo, shared = case("no-tinystories", ["stories260K", "tinystories-gpt2"], ["webtext.valid.jsonl"])
    runs, err = plan(repo, shared, what=what)
    want_runs(runs, [("synthetic", "jobs/quickstart.ini", "results/quickstart-synthetic.nc")], what)
    need(err, what, "no TinyStories prompts can be had here: not running stories260K tinystories-gpt2")


if mode == "shared":
    shared_cases()
else:
    local_cases()
print("quickstart plan tests passed (%s)" % mode)
