"""Faults: a worker killed with SIGKILL, or stopped with SIGSTOP, ends the whole job within 15 s with
a message naming the rank (and, from rank 0, the unit), every rank gone, no output file, and a
checkpoint that still resumes to the uninterrupted run's bits. An output that cannot be written
(read-only directory, full disk) is a clear error that leaves the earlier output untouched."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402
rank_pids, start, wait_for = sl.rank_pids, sl.start, sl.wait_for

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 900, 300)
full = os.path.join(d, "full.nc")
out = os.path.join(d, "out.nc")
ckpt = out + ".ckpt"
cfg = sl.base_config(model, data, out, data__n_prompts=800, perturb__steps=41, run__checkpoint_every=0.2,
                     run__worker_timeout=2)  # ~2 s of work: the first checkpoint comes early in it
ini = sl.write_ini(os.path.join(d, "faults.ini"), cfg)
r = sl.run([ini, "--quiet", "-o", full])
if r.returncode != 0:
    sl.fail("uninterrupted run: " + r.stderr)


def fault(label, sig, want_code, patterns):
    for p in (out, ckpt):
        if os.path.exists(p):
            os.unlink(p)
    proc = start([ini], mpi=3)
    wait_for(ckpt, proc)
    pids = rank_pids(proc.pid, 3)
    os.kill(pids[1], sig)
    t0 = time.time()
    err = sl.end_or_kill(proc, pids, 15, label)
    dt = time.time() - t0
    if want_code is not None and proc.returncode != want_code:
        sl.fail("%s: exit %d (want %d): %s" % (label, proc.returncode, want_code, err))
    if proc.returncode == 0:
        sl.fail("%s: exit 0" % label)
    for pat in patterns:
        if pat not in err:
            sl.fail("%s: stderr lacks %r:\n%s" % (label, pat, err))
    time.sleep(0.5)
    left = [pid for pid in pids.values() if sl.alive(pid)]
    if left:
        sl.fail("%s: ranks still running: %s" % (label, left))
    if os.path.exists(out):
        sl.fail("%s: an output file was written" % label)
    r = sl.run([ini, "--resume", "--quiet"])
    if r.returncode != 0 or sl.same_bits(full, out):
        sl.fail("%s: the checkpoint did not resume to identical bits: %s" % (label, r.stderr))
    print("ok %s: job ended in %.1f s (exit %d), message names rank 1 and its unit, checkpoint resumes "
          "bitwise" % (label, dt, proc.returncode))


if sl.shutil.which("mpirun"):
    # mpirun notices the dead rank and names it; rank 0 names the unit it had (on the SIGTERM mpirun sends)
    fault("SIGKILL of rank 1", signal.SIGKILL, None, ["rank 1", "rank 1 was computing batch"])
    # nobody notices a stopped process but rank 0's silence limit: worker_timeout + 2 x slowest unit
    fault("SIGSTOP of rank 1", signal.SIGSTOP, 3, ["rank 1 stopped answering", "while computing batch"])
else:
    print("skip worker faults: no mpirun")

# output write failures, in a private mount namespace with small tmpfs mounts
script = r"""
set -e
mkdir -p {d}/ro {d}/full
mount -t tmpfs -o size=1m tmpfs {d}/ro && echo earlier > {d}/ro/out.nc && mount -o remount,ro {d}/ro
mount -t tmpfs -o size=48k tmpfs {d}/full && echo earlier > {d}/full/out.nc
set +e
{bin} run {ini} --quiet -o {d}/ro/out.nc --set run.checkpoint={d}/ro.ckpt; echo "ro=$?"
{bin} run {ini} --quiet -o {d}/full/out.nc --set run.checkpoint={d}/full.ckpt --set data.n_prompts=200; echo "full=$?"
echo "ro_content=$(cat {d}/ro/out.nc)"; echo "full_content=$(cat {d}/full/out.nc)"; echo "full_ls=$(ls {d}/full)"
""".format(d=d, bin=sl.BIN, ini=ini)
r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                   env=sl.run_env())
if "ro=" not in r.stdout:
    print("skip write failures: no private tmpfs mounts here (%s)" % r.stderr.strip())
else:
    o = r.stdout
    if "ro=2" not in o or "ro/out.nc: cannot write in its directory: Read-only file system" not in r.stderr:
        sl.fail("read-only output dir: %s %s" % (o, r.stderr))
    if "full=2" not in o or "No space left on device" not in r.stderr and "HDF error" not in r.stderr:
        sl.fail("full disk: %s %s" % (o, r.stderr))
    if "ro_content=earlier" not in o or "full_content=earlier" not in o or "full_ls=out.nc\n" not in o:
        sl.fail("earlier output not untouched, or a temp file left: %s" % o)
    if "run again with --resume (and -o) to write the output" not in r.stderr:
        sl.fail("full disk: the finished units were not kept in the checkpoint: %s" % r.stderr)
    print("ok write failures: %s" % " | ".join(l for l in r.stderr.splitlines()))
    # the finished work is not lost: --resume elsewhere only writes
    retry = os.path.join(d, "retry.nc")
    r2 = sl.run([ini, "--resume", "-o", retry, "--set", "run.checkpoint=%s/full.ckpt" % d,
                 "--set", "data.n_prompts=200"])
    if r2.returncode != 0 or "units done" not in r2.stderr or not os.path.exists(retry):
        sl.fail("resume after a failed write: %d %s" % (r2.returncode, r2.stderr))
    r3 = sl.run([ini, "--quiet", "-o", os.path.join(d, "direct.nc"), "--set", "data.n_prompts=200"])
    if r3.returncode != 0 or sl.same_bits(retry, os.path.join(d, "direct.nc")):
        sl.fail("the output written on resume differs from a direct run")
    print("ok after a failed write, --resume -o elsewhere writes the same bits without recomputing")
print("fault tests passed")
