"""plateau runs started without a launcher, several at once on one machine.

Without mpirun or srun, plateau is an Open MPI singleton in isolated mode (no supporting daemon). Every
isolated singleton is named job family 0, job 1, so each would use one shared session directory,
$TMPDIR/ompi.<host>.<uid>/jf.0/1/0, and remove it when it ends. A run starting while another ended
failed in MPI_Init ("mkdir ... jf.0/1: No such file or directory", exit 1: CI met it once in ~100
singleton runs of a parallel ctest). plateau's singletons create no session directory.

- with a process that creates and removes that jf.0 directory in a loop (what every other isolated
  singleton's start and end does, compressed), 4 runs in a row each succeed and write the solo run's bits
  (before the fix nearly every one failed: 29 of 30 in a trial of a bare MPI_Init);
- 4 runs started at once all succeed with the solo run's bits;
- a user's own OMPI_MCA_ess_singleton_isolated = 1 or true is the same singleton (runs beside the churn
  succeed); a user's 0 (a daemon per singleton, with its own session directory) runs with the same bits.
"""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 400, 250)
solo = os.path.join(d, "solo.nc")
cfg = sl.base_config(model, data, solo, data__n_prompts=4, perturb__steps=5, perturb__n_directions=1,
                     perturb__cov_prompts=40, output__bootstrap=20)
ini = sl.write_ini(os.path.join(d, "run.ini"), cfg)


def start(out, env=None):
    e = sl.run_env()
    e.update(env or {})
    return subprocess.Popen([sl.BIN, "run", ini, "--quiet", "-o", out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def finish(name, p, out):
    _, err = p.communicate(timeout=120)
    if p.returncode != 0:
        sl.fail("%s: exit %d: %s" % (name, p.returncode, err.strip()[:600]))
    bad = sl.same_bits(solo, out)
    if bad:
        sl.fail("%s: %s differs from the solo run's output in %s" % (name, out, bad))
    os.unlink(out)


r = sl.run([ini, "--quiet"])
if r.returncode != 0:
    sl.fail("solo run: exit %d: %s" % (r.returncode, r.stderr))

# Open MPI's session directory root (opal_tmp_directory, orte_setup_top_session_dir): the first of
# TMPDIR, TEMP, TMP, else /tmp; the host name up to its first dot (unless it is an IP address); the uid.
host = socket.gethostname()
if not all(part.isdigit() for part in host.split(".")):
    host = host.split(".")[0]
tmp = next((os.environ[k] for k in ("TMPDIR", "TEMP", "TMP") if os.environ.get(k)), "/tmp")
top = os.path.join(tmp, "ompi.%s.%d" % (host, os.getuid()))
jobfam = os.path.join(top, "jf.0")
churn = subprocess.Popen([sys.executable, "-c", """
import os, sys
top, jobfam = sys.argv[1], sys.argv[2]
while True:
    for path in (top, jobfam):
        try:
            os.mkdir(path, 0o700)
        except OSError:
            pass
    try:
        os.rmdir(jobfam)
    except OSError:
        pass
""", top, jobfam])
try:
    for i in range(4):
        out = os.path.join(d, "churn%d.nc" % i)
        finish("run %d beside another singleton's session directory coming and going" % i, start(out), out)
    # a user's own isolated mode (1, or Open MPI's other spellings of true) is the same singleton: no directory
    for i, value in enumerate(("1", "true")):
        out = os.path.join(d, "churn-user%d.nc" % i)
        finish("a user's OMPI_MCA_ess_singleton_isolated=%s beside the same churn" % value,
               start(out, {"OMPI_MCA_ess_singleton_isolated": value}), out)
finally:
    churn.kill()
    churn.wait()
    for path in (jobfam, top):  # only if empty: a live run's directory stays
        try:
            os.rmdir(path)
        except OSError:
            pass
print("ok 4 runs beside a session directory created and removed in a loop, and 2 with the user's own "
      "ess_singleton_isolated = 1 / true: each the solo run's bits")

outs = [os.path.join(d, "together%d.nc" % i) for i in range(4)]
procs = [start(o) for o in outs]
for i, (p, o) in enumerate(zip(procs, outs)):
    finish("run %d of 4 started at once" % i, p, o)
print("ok 4 runs started at once: each the solo run's bits")

out = os.path.join(d, "daemon.nc")
finish("a user's OMPI_MCA_ess_singleton_isolated=0", start(out, {"OMPI_MCA_ess_singleton_isolated": "0"}), out)
print("ok a user's own ess_singleton_isolated=0 (a supporting daemon) runs: the solo run's bits")
