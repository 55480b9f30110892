"""Whole contexts with [readout] positions = each (issue 18), checkpoint and resume: a run stopped by
SIGTERM after its first checkpoint (exit 75) and resumed with --resume (on 2 ranks when mpirun is
there) writes a file bitwise identical to the uninterrupted run's: the checkpoint holds every unit's
curves per perturbed position ([n_units, n_metrics, n_positions, steps], src/sweep/checkpoint.c).
Its own test so that it runs in the release pass only (label slow): its run must last a few seconds
for the signal to land mid-run; the ASan pass covers the checkpoint code in sweep_resume and the
per-position curves in sweep_contexts."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
V, T, P, COV = 300, 8, 1000, 40
model = sl.make_model(d, layers=2, embd=32, vocab=V)
data = sl.make_bin(d, T * (P + COV + 20), V, seed=7)
out = os.path.join(d, "each.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=P, data__n_ctx=T, perturb__cov_prompts=COV,
                     perturb__hook="blocks.1.hook_resid_pre", readout__read_hook="blocks.1.hook_resid_post",
                     perturb__position="all", readout__positions="each", perturb__bases="real, synthetic",
                     perturb__directions="cov_random, naive_isotropic", perturb__n_directions=1, perturb__steps=16,
                     readout__metrics="kl, l2", output__bootstrap=20, run__checkpoint_every=0.2)
ini = sl.write_ini(os.path.join(d, "each.ini"), cfg)

full = os.path.join(d, "full.nc")
r = sl.run([ini, "--quiet", "-o", full])
if r.returncode != 0:
    sl.fail("uninterrupted run: " + r.stderr)
proc = sl.start([ini])
sl.wait_for(out + ".ckpt", proc)
proc.send_signal(signal.SIGTERM)
_, err = proc.communicate(timeout=120)
if proc.returncode != 75 or os.path.exists(out):
    sl.fail("SIGTERM: exit %d (want 75, no output): %s" % (proc.returncode, err))
mpi = 2 if sl.shutil.which("mpirun") else 0
r = sl.run([ini, "--resume", "--quiet"], mpi=mpi)
if r.returncode != 0:
    sl.fail("resume: " + r.stderr)
bad = sl.same_bits(full, out)
if bad:
    sl.fail("the resumed output differs from the uninterrupted run in %s" % bad)
print("ok positions = each: SIGTERM (exit 75) and --resume%s bitwise identical to the uninterrupted run"
      % (" on 2 ranks" if mpi else ""))
