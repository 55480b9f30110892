"""Issue 20, item 1: every input of a run is watched from its open to the output.

While a sweep runs (after its first checkpoint), one input is changed:
- the SAE's weights overwritten in place (8 KB, same size and inode), or truncated;
- the model's weights truncated (on 1 rank, and on 2 ranks under mpirun);
- the prompts file, or a file: direction (.npy), rewritten.
Each run must stop with exit 2 and a line naming the changed file, never die of SIGBUS, never write an
output (which would name inputs it was not computed from). An untouched run of the same config exits 0
(the control: the watch itself stops nothing)."""
import os
import shutil
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "watched")
C = 32
model = sl.make_model(d, embd=C)
data = sl.make_bin(d, 8 * 600, 300)
sae = os.path.join(d, "sae")
r = sl.subprocess.run([sl.BIN, "synth-sae", sae, "--model", model, "--hook", "blocks.1.hook_resid_pre", "--d-sae",
                       "64", "--seed", "2"], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth-sae: " + r.stderr)
rows = os.path.join(d, "rows.npy")
np.save(rows, np.random.default_rng(1).standard_normal((5, C)).astype(np.float32))
out = os.path.join(d, "out.nc")
ckpt = out + ".ckpt"
# seconds of work: the first checkpoint (0.2 s) comes long before the end
cfg = sl.base_config(model, data, out, data__n_prompts=120, perturb__steps=61, run__checkpoint_every=0.2,
                     perturb__directions="real_other, sae_reconstruction, file:" + rows, output__bootstrap=0,
                     perturb__cov_prompts=60, sae__path=sae)
ini = sl.write_ini(os.path.join(d, "watched.ini"), cfg)


def fresh_copies():
    """Private copies of every input, so that each case damages its own."""
    here = os.path.join(d, "case")
    shutil.rmtree(here, ignore_errors=True)
    os.makedirs(here)
    paths = {"model": os.path.join(here, "model"), "sae": os.path.join(here, "sae"),
             "data": os.path.join(here, "tokens.bin"), "rows": os.path.join(here, "rows.npy")}
    shutil.copytree(model, paths["model"])
    shutil.copytree(sae, paths["sae"])
    shutil.copy(data, paths["data"])
    shutil.copy(rows, paths["rows"])
    sets = ["--set", "model.path=" + paths["model"], "--set", "sae.path=" + paths["sae"], "--set",
            "data.prompts=" + paths["data"], "--set",
            "perturb.directions=real_other, sae_reconstruction, file:" + paths["rows"]]
    return paths, sets


def overwrite_8k(path):
    with open(path, "r+b") as f:  # same size, same inode: 8 KB of the data section change
        f.seek(-8192 - 64, os.SEEK_END)
        f.write(np.random.default_rng(9).standard_normal(2048).astype("<f4").tobytes())


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(200)


def case(label, target, damage, needle, mpi=0):
    for p in (out, ckpt):
        if os.path.exists(p):
            os.unlink(p)
    paths, sets = fresh_copies()
    # four times the control's prompts: the damage lands long before the end even when this test is
    # descheduled for a while on a loaded machine (the run stops at the next check, so this costs nothing)
    proc = sl.start([ini, "--quiet", "--set", "data.n_prompts=480"] + sets, mpi=mpi)
    sl.wait_for(ckpt, proc)
    damage(os.path.join(paths[target[0]], target[1]) if target[1] else paths[target[0]])
    try:
        _, err = proc.communicate(timeout=120)
    except sl.subprocess.TimeoutExpired:
        proc.kill()
        sl.fail("%s: the run did not stop" % label)
    rc = proc.returncode
    if rc in (-signal.SIGBUS, 128 + signal.SIGBUS) or "Bus error" in err or "SIGBUS" in err:
        sl.fail("%s: the run died of SIGBUS (exit %d): %s" % (label, rc, err[-2000:]))
    if rc != 2:
        sl.fail("%s: exit %d (want 2): %s" % (label, rc, err[-2000:]))
    lines = [l for l in tl.plateau_lines(err) if needle in l]
    if not lines:
        sl.fail("%s: no line names %s: %s" % (label, needle, err[-2000:]))
    if os.path.exists(out):
        sl.fail("%s: an output was written" % label)
    print("ok %-34s exit 2: %s" % (label, lines[0][:200]))


# The SIGBUS handler, deterministically (a sweep meets it only when the truncation lands inside a batch):
# a mapped input truncated, then read, is exit 2 and one line naming it; a fault outside every watched
# mapping is still the signal.
probe = sys.argv[2] if len(sys.argv) > 2 else None
if probe:
    victim = os.path.join(d, "victim.bin")
    # region: a shared weight window's pages (no file of plateau's) whose tmpfs ran out: exit 3 and its line
    for where, want in (("watched", 2), ("outside", -signal.SIGBUS), ("region", 3)):
        with open(victim, "wb") as f:
            f.write(os.urandom(3 * 8192))
        r = sl.subprocess.run([probe, victim] + ([where] if where != "watched" else []), capture_output=True,
                              text=True, timeout=60, env=sl.run_env())
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if r.returncode != want:
            sl.fail("SIGBUS probe (%s): exit %d (want %d): %s" % (where, r.returncode, want, r.stderr[-2000:]))
        if want == 2 and (len(lines) != 1 or not lines[0].startswith("plateau: probe: " + victim + ": ")
                          or "truncated" not in lines[0]):
            sl.fail("SIGBUS probe: want one line naming the file: %r" % r.stderr)
        if want == 3 and lines != ["plateau: probe: the probe's region lost its pages"]:
            sl.fail("SIGBUS probe in a region: want its one line: %r" % r.stderr)
        print("ok SIGBUS in %s: exit %d %s" % ({2: "a watched mapping", 3: "a region"}.get(want, "an unwatched mapping"),
                                              r.returncode, lines[0] if lines else ""))
else:
    print("skip SIGBUS probe: no driver given")

# the control: the same run, untouched, ends well
paths, sets = fresh_copies()
r = sl.run([ini, "--quiet"] + sets, timeout=300)
if r.returncode != 0 or not os.path.exists(out):
    sl.fail("untouched run: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
print("ok untouched run: exit 0")

case("SAE overwritten in place", ("sae", "sae_weights.safetensors"), overwrite_8k, "sae_weights.safetensors")
case("SAE truncated", ("sae", "sae_weights.safetensors"), truncate, "sae_weights.safetensors")
case("model truncated", ("model", "model.safetensors"), truncate, "model.safetensors")
case("prompts rewritten", ("data", None), overwrite_8k, "tokens.bin")
case("direction file rewritten", ("rows", None), lambda p: np.save(p, np.ones((5, C), np.float32)), "rows.npy")
if shutil.which("mpirun"):
    case("model truncated, 2 ranks", ("model", "model.safetensors"), truncate, "model.safetensors", mpi=2)
    case("SAE overwritten, 2 ranks", ("sae", "sae_weights.safetensors"), overwrite_8k, "sae_weights.safetensors",
         mpi=2)
else:
    print("skip 2-rank cases: no mpirun")
print("watched input tests passed")
