"""Issue 20, item 8: a checkpoint belongs to one run at a time, and --resume --dry-run checks what
--resume checks.

- Two fresh runs started together with one checkpoint path (different outputs): one runs, the other
  stops at once with exit 2 naming the checkpoint "in use"; the winner's output is whole and equals
  a run made alone, and no lock file is left behind.
- While a run holds its checkpoint, `--resume` and `--resume --dry-run` of the same config are refused
  the same way.
- A checkpoint cut short (torn), and one written for another config: `--resume --dry-run` refuses
  each with exit 2 and the same reason the real `--resume` gives; a sound one is accepted and its
  unit count reported, and the real resume then finishes to the bits of an uninterrupted run."""
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "locks")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 600, 300)
out = os.path.join(d, "out.nc")
ckpt = os.path.join(d, "shared.ckpt")
# seconds of work, a checkpoint every 0.2 s
cfg = sl.base_config(model, data, out, data__n_prompts=480, perturb__steps=41, run__checkpoint_every=0.2,
                     output__bootstrap=0, run__checkpoint=ckpt)
ini = sl.write_ini(os.path.join(d, "locks.ini"), cfg)
alone = os.path.join(d, "alone.nc")
r = sl.run([ini, "--quiet", "-o", alone, "--set", "run.checkpoint=" + os.path.join(d, "alone.ckpt")])
if r.returncode != 0:
    sl.fail("run alone: " + r.stderr)


def finish(proc, label):
    try:
        _, err = proc.communicate(timeout=120)
    except sl.subprocess.TimeoutExpired:
        proc.kill()
        sl.fail("%s: did not end" % label)
    return proc.returncode, err


# two fresh runs started together
a_out, b_out = os.path.join(d, "a.nc"), os.path.join(d, "b.nc")
c_out = os.path.join(d, "c.nc")  # the resumes below: an output no run above wrote
a = sl.start([ini, "--quiet", "-o", a_out])
b = sl.start([ini, "--quiet", "-o", b_out])
(ra, ea), (rb, eb) = finish(a, "run a"), finish(b, "run b")
codes = sorted([ra, rb])
loser_err = ea if ra != 0 else eb
winner_out = a_out if ra == 0 else b_out
if codes != [0, 2]:
    sl.fail("two runs on one checkpoint: exits %s (want one 0 and one 2): a: %s | b: %s" % ([ra, rb], ea, eb))
lines = [l for l in loser_err.splitlines() if l.strip()]
if len(lines) != 1 or "in use" not in lines[0] or ckpt not in lines[0]:
    sl.fail("two runs on one checkpoint: the refused run's message: %r" % loser_err)
if os.path.exists(a_out if winner_out == b_out else b_out):
    sl.fail("two runs on one checkpoint: the refused run wrote an output")
if sl.same_bits(alone, winner_out):
    sl.fail("two runs on one checkpoint: the winner's output differs from a run alone")
for left in (ckpt, ckpt + ".lock"):
    if os.path.exists(left):
        sl.fail("two runs on one checkpoint: %s left behind" % left)
print("ok two fresh runs on one checkpoint: one ran, the other: %s" % lines[0])

# --resume and --resume --dry-run while a run holds the checkpoint
a = sl.start([ini, "--quiet", "-o", a_out])
sl.wait_for(ckpt, a)
a.send_signal(signal.SIGSTOP)  # holds the checkpoint for as long as the checks take
for label, extra in (("--resume", []), ("--resume --dry-run", ["--dry-run"])):
    r = tl.plateau(["run", ini, "--quiet", "--resume", "-o", b_out] + extra, timeout=60)
    tl.expect_error("%s while a run holds it" % label, r, "in use", ckpt)
a.send_signal(signal.SIGTERM)  # leaves its checkpoint: exit 75
a.send_signal(signal.SIGCONT)
ra, ea = finish(a, "interrupted run")
if ra != 75 or not os.path.exists(ckpt):
    sl.fail("SIGTERM: exit %d, checkpoint %s: %s" % (ra, os.path.exists(ckpt), ea))
sound = os.path.join(d, "sound.ckpt")
shutil.copy(ckpt, sound)


def both_refuse(label, path, sets, needle):
    """--resume --dry-run and --resume of checkpoint PATH: exit 2, the same reason."""
    args = [ini, "--quiet", "--resume", "-o", c_out, "--set", "run.checkpoint=" + path] + sets
    dry = tl.expect_error(label + " (--dry-run)", tl.plateau(["run"] + args + ["--dry-run"], timeout=60), needle)
    real = tl.expect_error(label + " (real)", tl.plateau(["run"] + args, timeout=60), needle)
    if dry != real:
        sl.fail("%s: --dry-run says %r, the real resume %r" % (label, dry, real))
    if os.path.exists(c_out):
        sl.fail("%s: an output was written" % label)


torn = os.path.join(d, "torn.ckpt")
with open(sound, "rb") as f:
    body = f.read()
with open(torn, "wb") as f:
    f.write(body[:len(body) // 2])
both_refuse("torn checkpoint", torn, [], "corrupt")
other = os.path.join(d, "other.ckpt")
shutil.copy(sound, other)
both_refuse("another config's checkpoint", other, ["--set", "run.seed=6"], "another config")

r = tl.plateau(["run", ini, "--resume", "--dry-run", "-o", c_out], timeout=60)
if r[0] != 0 or "units of this run" not in r[2]:
    sl.fail("--resume --dry-run of a sound checkpoint: exit %s: %s" % (r[0], r[2]))
print("ok --resume --dry-run of a sound checkpoint: %s" % [l for l in r[2].splitlines() if "units" in l][0])
r = sl.run([ini, "--quiet", "--resume", "-o", c_out], timeout=120)
if r.returncode != 0 or sl.same_bits(alone, c_out):
    sl.fail("--resume after the checks: exit %d, differs %s: %s" % (r.returncode, sl.same_bits(alone, c_out)
                                                                   if os.path.exists(c_out) else "-", r.stderr))
if os.path.exists(ckpt + ".lock"):
    sl.fail("the resumed run left its lock file")
print("ok the resumed run matches the uninterrupted one, no lock left")
print("checkpoint lock tests passed")
