"""The setup's clean forwards (batched, stopping at the hook, fixed chunks of prompts shared out over
the ranks) give bitwise the same file on 1, 2 and 3 ranks: the activations, mu and Sigma, and every
curve and statistic downstream. 200 prompts of 8 tokens are four chunks (64, 64, 64, 8 prompts), which
2 ranks share two and two, 3 ranks one, one and two: a prompt's activation may not depend on which
rank computed it."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

sl.need_mpirun()
d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 400, 300)
cfg = sl.base_config(model, data, os.path.join(d, "one.nc"), data__n_prompts=10, perturb__cov_prompts=190,
                     perturb__n_directions=1, output__activations="true", output__bootstrap=50)
ini = sl.write_ini(os.path.join(d, "setup.ini"), cfg)
r = sl.run([ini, "--quiet"])
if r.returncode != 0:
    sl.fail("1 process: " + r.stderr)
for n in (2, 3):
    out = os.path.join(d, "mpi%d.nc" % n)
    r = sl.run([ini, "--quiet", "-o", out], mpi=n)
    if r.returncode != 0:
        sl.fail("%d ranks: exit %d: %s" % (n, r.returncode, r.stderr))
    bad = sl.same_bits(os.path.join(d, "one.nc"), out)
    if bad:
        sl.fail("%d ranks differ from 1 process in %s" % (n, bad))
    print("ok   %d ranks: bitwise the file of 1 process (activation, mu, sigma and %d more variables)"
          % (n, len(sl.variables(out)) - 3))
print("setup rank tests passed")
