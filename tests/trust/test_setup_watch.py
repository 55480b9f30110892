"""Issue 20, item 3: setup is watched like the sweep.

A 2-rank run whose setup (the clean forwards of a few thousand prompts) takes seconds; once rank 0
reports that the forwards are under way, one rank is stopped with SIGSTOP:
- rank 1 stopped: rank 0 names it ("rank 1 stopped answering during setup") and the job exits 3;
- rank 0 stopped: rank 1 names rank 0 ("no word from rank 0") and the job exits 3.
Either way every rank is gone afterwards and no output is written. [run] worker_timeout is 1 s, so the
job ends within worker_timeout + the setup's grace (5 s) of the stop; the test only fails on a hang
(no end within a limit far above that), never on a measured time."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
if not shutil.which("mpirun"):
    sl.skip("mpirun not found")
d = tl.work(sys.argv, "setup_watch")
T, COV = 64, 6000
model = sl.make_model(d, layers=4, embd=256, heads=8, ctx=T)
data = sl.make_bin(d, T * (COV + 200), 300)
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=8, data__n_ctx=T, perturb__cov_prompts=COV,
                     perturb__hook="blocks.2.hook_resid_pre", perturb__bases="real", perturb__directions="isotropic",
                     perturb__n_directions=1, perturb__steps=5, readout__metrics="kl", output__bootstrap=0,
                     run__worker_timeout=1)
ini = sl.write_ini(os.path.join(d, "setup_watch.ini"), cfg)
LIMIT = 90  # a hang: before the fix nothing ended a stopped setup (killed at 194 s by the test)


def stop_in_setup(victim, needle):
    for p in (out, out + ".ckpt"):
        if os.path.exists(p):
            os.unlink(p)
    proc = sl.start([ini], mpi=2)
    pids = sl.rank_pids(proc.pid, 2)
    lines, started = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "setup: activations of" in line:
                started.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not started.wait(LIMIT):
        proc.kill()
        sl.fail("stop rank %d: the clean forwards never reported progress: %s" % (victim, "".join(lines)))
    os.kill(pids[victim], signal.SIGSTOP)
    t0 = time.time()
    try:
        proc.wait(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.kill()
        sl.fail("stop rank %d during setup: the job HANGS (no end %d s after the stop): %s"
                % (victim, LIMIT, "".join(lines)[-2000:]))
    reader.join(10)
    err = "".join(lines)
    if proc.returncode != 3:
        sl.fail("stop rank %d during setup: exit %d (want 3): %s" % (victim, proc.returncode, err[-2000:]))
    named = [l.strip() for l in err.splitlines() if needle in l]
    if not named or "during setup" not in named[0]:
        sl.fail("stop rank %d during setup: no line names the rank (%r): %s" % (victim, needle, err[-2000:]))
    time.sleep(0.5)
    left = [pid for pid in pids.values() if sl.alive(pid)]
    if left:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        sl.fail("stop rank %d during setup: ranks still there: %s" % (victim, left))
    if os.path.exists(out):
        sl.fail("stop rank %d during setup: an output was written" % victim)
    print("ok rank %d stopped during setup: exit 3 after %.1f s, every rank gone: %s"
          % (victim, time.time() - t0, named[0]))


stop_in_setup(1, "rank 1 stopped answering")
stop_in_setup(0, "no word from rank 0")
print("setup watch tests passed")
