"""Resume in the middle of an optimisation (issue 17, item 7): the `optimized` kind's optimisations are
stopped between two optimiser steps by a SIGTERM the process sends itself before its N-th step
(PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS, a test-only hook of the scheduler: the place is fixed by the work
done, not by time), checkpointed with their state and resumed from it:

  * 1 process, stopped again and again every N = 9 optimiser steps, each time resumed: the run ends
    (each base needs more than N steps, so it ends only if every resume goes on where the last one
    stopped) and its output is bitwise the uninterrupted run's;
  * [optimize] orthogonal = true, 2 ranks (the worker's state travels to rank 0 at every step under a
    tiny checkpoint_every), stopped mid-optimisation, resumed on 1 process, and 1 process stopped,
    resumed on 2 ranks: bitwise the uninterrupted run's;
  * --dry-run reports the local geometry's bases, FLOPs per base and time, counted in time_seconds.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

HOOK = "PLATEAU_TEST_SIGTERM_AFTER_OPT_STEPS"
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 400, 300)


def setup(name, **over):
    full, out = os.path.join(d, name + "-full.nc"), os.path.join(d, name + ".nc")
    cfg = sl.base_config(model, data, out, data__n_prompts=2, perturb__bases="real", perturb__n_directions=3,
                         perturb__directions="optimized", perturb__step_mode="absolute", perturb__steps=3,
                         perturb__alpha_max=2.0, perturb__cov_prompts=40, readout__metrics="kl",
                         output__bootstrap=0, output__vectors="true", optimize__radius_alpha=1.0,
                         optimize__starts=3, **over)
    ini = sl.write_ini(os.path.join(d, name + ".ini"), cfg)
    r = sl.run([ini, "--quiet", "-o", full])
    if r.returncode != 0:
        sl.fail("%s: uninterrupted run: %s" % (name, r.stderr))
    return ini, full, out


def stopped(label, ini, n, mpi=0, resume=False):
    """One run stopped before its n-th optimiser step: exit 75 with its checkpoint."""
    r = sl.run([ini] + (["--resume"] if resume else []), env={HOOK: str(n)}, mpi=mpi)
    if r.returncode != 75 or "SIGTERM received" not in r.stderr:
        sl.fail("%s: exit %d (want 75 after the SIGTERM before optimiser step %d): %s" % (label, r.returncode, n,
                                                                                           r.stderr))
    return r


def resumed(label, ini, full, out, mpi=0):
    r = sl.run([ini, "--resume"], mpi=mpi)
    if r.returncode != 0:
        sl.fail("%s: resume: %s" % (label, r.stderr))
    if "optimisations under way go on where they were" not in r.stderr:
        sl.fail("%s: the checkpoint held no optimisation under way: %s" % (label, r.stderr))
    bad = sl.same_bits(full, out)
    if bad:
        sl.fail("%s: resumed output differs from the uninterrupted run in %s" % (label, bad))


# stopped every N steps: ends only if each resume goes on from the saved states
ini, full, out = setup("again")
its = sl.variables(full)["optimum_iterations"][:, :, 0, :]  # (prompt, base, optimum): every sample alike
N = 9  # each run takes N - 1 steps
if its.max() < N:
    sl.fail("the test needs a base with more than %d optimiser steps (iterations %s)" % (N, its.ravel()))
resume, rounds = False, 0
while True:
    r = sl.run([ini] + (["--resume"] if resume else []), env={HOOK: str(N)})
    rounds += 1
    if r.returncode == 0:
        break
    # a step evaluates every running start: a base takes about its largest start's evaluations in steps
    if r.returncode != 75 or rounds > 2 * int(its.sum()) // (N - 1) + 3:
        sl.fail("stopped every %d steps: round %d exit %d: %s" % (N, rounds, r.returncode, r.stderr))
    resume = True
bad = sl.same_bits(full, out)
if bad:
    sl.fail("stopped every %d steps: the output differs from the uninterrupted run in %s" % (N, bad))
if rounds < 3:
    sl.fail("stopped every %d steps: only %d runs (the hook did not stop it mid-optimisation)" % (N, rounds))
print("ok stopped every %d optimiser steps (%d runs), output bitwise the uninterrupted run's" % (N, rounds))

# --dry-run counts the local geometry: 2 prompts x 1 real base, and its time is in time_seconds
r = sl.run([ini, "--dry-run"])
dry = {l.split("=")[0].strip(): l.split("=")[1].split(";")[0].strip()
       for l in r.stdout.split("[dry_run]")[1].splitlines() if "=" in l} if r.returncode == 0 else {}
if dry.get("local_bases") != "2" or not float(dry.get("optimizer_flops_per_base", 0)) > 0 \
        or not float(dry["fisher_flops_per_base"]) > 0 or not float(dry["local_seconds"]) > 0 \
        or not float(dry["time_seconds"]) >= 0.99 * (float(dry["local_seconds"]) + float(dry["sweep_seconds"])):
    sl.fail("--dry-run's local geometry: exit %d: %s %s" % (r.returncode, dry, r.stderr))
print("ok --dry-run: %s local bases, %s optimiser FLOPs per base, local_seconds %s in time_seconds %s"
      % (dry["local_bases"], dry["optimizer_flops_per_base"], dry["local_seconds"], dry["time_seconds"]))

sl.need_mpirun()
ini, full, out = setup("ortho", optimize__orthogonal="true", run__checkpoint_every=0.001)
stopped("2 ranks", ini, 12, mpi=2)
resumed("2 ranks stopped mid-optimisation, resumed on 1", ini, full, out)
print("ok orthogonal optima, 2 ranks stopped mid-optimisation, resumed on 1 process: bitwise identical")
os.unlink(out)
stopped("1 process", ini, 12)
resumed("1 process stopped mid-optimisation, resumed on 2 ranks", ini, full, out, mpi=2)
print("ok orthogonal optima, 1 process stopped mid-optimisation, resumed on 2 ranks: bitwise identical")
