"""Checkpoint and resume: SIGTERM mid-run (one process), and a signal to one worker of three ranks,
each followed by --resume (on another rank count) give an output bitwise identical to an
uninterrupted run; a checkpoint of another config, model or model config.json is refused with the reason and left
intact; --resume without a checkpoint starts from the beginning."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 900, 300)
full = os.path.join(d, "full.nc")
out = os.path.join(d, "out.nc")
ckpt = out + ".ckpt"
# enough work that the signal, sent once the first checkpoint exists, lands mid-run on a fast idle
# machine too (11 steps ran 9600 units in 0.2 s in a fresh-clone CI: the run ended before SIGTERM arrived)
cfg = sl.base_config(model, data, out, data__n_prompts=800, perturb__steps=21, run__checkpoint_every=0.05)
ini = sl.write_ini(os.path.join(d, "resume.ini"), cfg)

r = sl.run([ini, "--quiet", "-o", full])
if r.returncode != 0:
    sl.fail("uninterrupted run: " + r.stderr)
if os.path.exists(full + ".ckpt"):
    sl.fail("a finished run left its checkpoint behind")


wait_for, start = sl.wait_for, sl.start


def interrupted_then_resumed(label, mpi_first, signal_rank, mpi_resume):
    for p in (out, ckpt):
        if os.path.exists(p):
            os.unlink(p)
    proc = start([ini], mpi=mpi_first)
    wait_for(ckpt, proc)
    if mpi_first:
        pids = sl.rank_pids(proc.pid, mpi_first)
        os.kill(pids[signal_rank], signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 75:
        sl.fail("%s: exit %d after SIGTERM (want 75): %s" % (label, proc.returncode, err))
    if "SIGTERM received" not in err or "checkpoint" not in err:
        sl.fail("%s: no checkpoint message: %s" % (label, err))
    if os.path.exists(out):
        sl.fail("%s: an output file exists after preemption" % label)
    r = sl.run([ini, "--resume", "--quiet"], mpi=mpi_resume)
    if r.returncode != 0:
        sl.fail("%s: resume failed: %s" % (label, r.stderr))
    bad = sl.same_bits(full, out)
    if bad:
        sl.fail("%s: resumed output differs from the uninterrupted run in %s" % (label, bad))
    print("ok %s: exit 75, resumed bitwise identical" % label)


interrupted_then_resumed("1 process, SIGTERM", 0, None, 0)
if sl.shutil.which("mpirun"):
    interrupted_then_resumed("3 ranks, SIGTERM to rank 2, resumed on 2 ranks", 3, 2, 2)

# a checkpoint from another config or model is refused, and stays
os.unlink(out)
proc = start([ini])
wait_for(ckpt, proc)
proc.send_signal(signal.SIGTERM)
proc.communicate(timeout=60)
before = open(ckpt, "rb").read()
r = sl.run([ini, "--resume", "--quiet", "--set", "perturb.steps=22"])
if r.returncode != 2 or "written for another config: [perturb] 'steps = 22' here, 'steps = 21' in the checkpoint" \
        not in r.stderr:
    sl.fail("other config: exit %d: %s" % (r.returncode, r.stderr))
print("ok other config refused: " + r.stderr.strip())
os.makedirs(os.path.join(d, "other"))
other = sl.make_model(os.path.join(d, "other"), seed=9)
r = sl.run([ini, "--resume", "--quiet", "--set", "model.path=" + other])
if r.returncode != 2 or "written for another model" not in r.stderr:
    sl.fail("other model: exit %d: %s" % (r.returncode, r.stderr))
print("ok other model refused: " + r.stderr.strip())
# the same weights under an edited config.json (another layer-norm epsilon: other numbers from the same
# tensors) are another model: the weights' sha256 alone would have let the resume mix the two
config_json = os.path.join(model, "config.json")
original = open(config_json, "rb").read()
edited = json.loads(original)
edited["layer_norm_epsilon"] = 2 * edited.get("layer_norm_epsilon", 1e-5)
with open(config_json, "w") as f:
    json.dump(edited, f)
r = sl.run([ini, "--resume", "--quiet"])
with open(config_json, "wb") as f:
    f.write(original)
if r.returncode != 2 or "written for another config: [model config.json] 'sha256 = " not in r.stderr:
    sl.fail("edited config.json: exit %d: %s" % (r.returncode, r.stderr))
print("ok edited config.json refused: " + r.stderr.strip())
if open(ckpt, "rb").read() != before or os.path.exists(out):
    sl.fail("a refused resume changed the checkpoint or wrote output")
# output path, checkpoint period and worker timeout may change between runs
r = sl.run([ini, "--resume", "--quiet", "--set", "run.worker_timeout=30", "--set", "run.checkpoint_every=100"])
if r.returncode != 0 or sl.same_bits(full, out):
    sl.fail("resume with changed run-only keys: %d %s" % (r.returncode, r.stderr))

# --resume without a checkpoint: from the beginning, with a note
os.unlink(out)
r = sl.run([ini, "--resume", "--set", "perturb.steps=5"])
if r.returncode != 0 or "no checkpoint at" not in r.stderr:
    sl.fail("--resume without checkpoint: %d %s" % (r.returncode, r.stderr))
print("resume tests passed")
