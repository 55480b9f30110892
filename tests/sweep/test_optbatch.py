"""A batch's optimisations run together (issue 17, item 9; src/sweep/local_ops.c,
pl_sweep_local_optimize_batch): before a batch's units, every base of the batch the rank has no local
geometry for is optimised in one pl_sphere_run_many. A base's optima, eigenpairs and Rayleigh quotients
must not depend on which batch it falls in, which other bases ran beside it, or which rank ran it:

  * [perturb] steps = 3 (every unit in one batch: all 18 bases optimised together) and steps = 200
    (5 units a batch: bases cut across batches, some found in the rank's cache, others not):
    optimum_*, fisher_eigenvalue/eigenvector/trace and kl_rayleigh bitwise equal, with orthogonal
    = false and true;
  * steps = 200 on 1 process and on 2 ranks (a base cut across two batches is optimised on both
    ranks): the whole output bitwise equal.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 400, 300)
LOCAL = ["optimum_objective", "optimum_iterations", "optimum_tangential_grad", "optimum_distinct",
         "optimum_status", "optimum_grad_norm",
         "optimum_direction", "optimum_real_other_cos", "optimum_pc_cos", "fisher_eigenvalue", "fisher_trace",
         "fisher_eigenvector", "kl_rayleigh"]


def sweep(name, steps, orthogonal, mpi=0):
    out = os.path.join(d, name + ".nc")
    cfg = sl.base_config(model, data, out, data__n_prompts=3, perturb__bases="real, synthetic",
                         perturb__n_directions=3, perturb__directions="optimized, fisher, real_other",
                         perturb__step_mode="fixed_norm", perturb__steps=steps, fisher__k=3,
                         readout__metrics="kl", output__bootstrap=0, output__vectors="true",
                         optimize__radius_alpha=1.0, optimize__starts=3, optimize__orthogonal=orthogonal)
    ini = sl.write_ini(os.path.join(d, name + ".ini"), cfg)
    r = sl.run([ini, "--quiet"], mpi=mpi)
    if r.returncode != 0:
        sl.fail("%s: %s" % (name, r.stderr))
    return out


for orth in ("false", "true"):
    one = sl.variables(sweep("one-batch-" + orth, 3, orth))
    many = sl.variables(sweep("many-batches-" + orth, 200, orth))
    missing = [k for k in LOCAL if k not in one]
    if missing:
        sl.fail("orthogonal = %s: no %s in the output" % (orth, missing))
    bad = [k for k in LOCAL if one[k].tobytes() != many[k].tobytes()]
    if bad:
        sl.fail("orthogonal = %s: one batch and 5-unit batches differ in %s" % (orth, bad))
    print("ok orthogonal = %s: %s bitwise equal in one batch and in 5-unit batches" % (orth, ", ".join(LOCAL)))

sl.need_mpirun()
bad = sl.same_bits(os.path.join(d, "many-batches-false.nc"), sweep("ranks2", 200, "false", mpi=2))
if bad:
    sl.fail("1 process and 2 ranks differ in %s" % bad)
print("ok 5-unit batches on 1 process and on 2 ranks: bitwise equal")
