"""plateau run --dry-run: the resolved config and the run's size, memory and time, writing nothing.
- units, evaluations, batches and setup prompts against a hand computation from the config
  (units = prompts x bases x directions x samples; a batch holds 1024 // steps units);
- no output, no checkpoint, no output directory made; exit 0; the printed config is `plateau config`'s;
- its memory figure for rank 0 within a factor of 2 of the real run's peak RSS (wait4 of the run);
- bad config, an existing checkpoint without --resume, a missing model, an output over an input and
  an output directory that cannot be made: exit 2 as a real run (the same message but for the last);
  an output directory still to be made is not made."""
import math
import re
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d, layers=2, embd=256, heads=4, ctx=64, vocab=8000)
data = sl.make_bin(d, 12 * 400, 8000)
out = os.path.join(d, "sub", "out.nc")
cfg = sl.base_config(model, data, out, data__n_ctx=12, data__n_prompts=7, perturb__steps=37,
                     perturb__n_directions=3, perturb__cov_prompts=150, readout__metrics="kl, l2",
                     readout__read_hook="blocks.1.hook_resid_post")  # given: plateau config leaves the default empty
ini = sl.write_ini(os.path.join(d, "dry.ini"), cfg)
ckpt = os.path.join(d, "dry.ckpt")

r = sl.run([ini, "--dry-run", "--set", "run.checkpoint=" + ckpt])
if r.returncode != 0:
    sl.fail("dry run: exit %d: %s" % (r.returncode, r.stderr))
if os.path.exists(os.path.join(d, "sub")) or os.path.exists(ckpt):
    sl.fail("the dry run wrote something: %s" % sorted(os.listdir(d)))
text = r.stdout
conf = subprocess.run([sl.BIN, "config", ini, "--set", "run.checkpoint=" + ckpt], capture_output=True, text=True)
body = text.split("\n", 1)[1].split("\n[dry_run]\n")[0]
if conf.returncode != 0 or body.strip() != conf.stdout.strip():
    sl.fail("dry run's config differs from plateau config's:\n%s\n---\n%s" % (body, conf.stdout))
vals = {}
for line in text.split("\n[dry_run]\n")[1].splitlines():
    if line.startswith("; compute_kernels: OpenBLAS "):  # the one comment line: the arithmetic, not a number
        continue
    key, rest = line.split("=", 1)
    vals[key.strip()] = float(rest.split(";")[0])
units = 7 * 2 * 3 * 3
batch = 1024 // 37
want = {"units": units, "evaluations": units * 37, "setup_prompts": 7 + 150, "ranks": 1}
for k, v in want.items():
    if vals.get(k) != v:
        sl.fail("dry run %s = %s, by hand %s" % (k, vals.get(k), v))
if "%d batches of up to %d units" % (math.ceil(units / batch), batch) not in text:
    sl.fail("batches: %s" % text)
for k in ("memory_per_rank_bytes", "memory_rank0_bytes", "setup_seconds", "sweep_seconds", "time_seconds"):
    if not vals.get(k, 0) > 0:
        sl.fail("dry run %s missing or not positive: %s" % (k, vals.get(k)))
r2 = sl.run([ini, "--dry-run", "--ranks", "4", "--quiet"])
v4 = {l.split("=")[0].strip(): l.split("=")[1].split(";")[0].strip() for l in r2.stdout.split("[dry_run]")[1].splitlines() if "=" in l}
if r2.returncode != 0 or v4["ranks"] != "4":
    sl.fail("--ranks 4: %s %s" % (r2.stdout, r2.stderr))
print("ok   dry run: the config as plateau config resolves it, %d units, %d evaluations, %d batches as by hand; "
      "nothing written" % (units, units * 37, math.ceil(units / batch)))


# The time is linear in rows and prompts: batch 0's time per row times the rows of the busiest rank (batches
# handed out in turn, the last one short), the measured chunk's time per prompt times the busiest rank's
# setup prompts (whole chunks of 512 // n_ctx prompts, contiguous per rank). A run smaller than one batch
# is timed on its own rows, not a full batch's (review: 1023 rows for 264 evaluations).
def busiest_rows(n, per, ranks):
    shares = [0] * ranks
    for b in range(math.ceil(n / per)):
        shares[b % ranks] += min(per, n - b * per)
    return max(shares)


def busiest_prompts(n, chunk, ranks):
    c = math.ceil(n / chunk)
    return max(min(c * (r + 1) // ranks * chunk, n) - min(c * r // ranks * chunk, n) for r in range(ranks))


def dry_times(sets, ranks):
    r = sl.run([ini, "--dry-run", "--quiet", "--ranks", str(ranks)] + [a for s in sets for a in ("--set", s)])
    if r.returncode != 0:
        sl.fail("dry run %s: %s" % (sets, r.stderr))
    lines = {l.split("=")[0].strip(): l for l in r.stdout.split("[dry_run]")[1].splitlines() if "=" in l}
    m = re.search(r"= (\S+) .*batch 0 \((\d+) rows\) took (\S+) s here.*; the busiest rank's (\d+) rows",
                  lines["sweep_seconds"])
    q = re.search(r"= (\S+) .*: (\d+) prompts took (\S+) s here; the busiest rank's (\d+) prompts",
                  lines["setup_seconds"])
    if not m or not q:
        sl.fail("dry run %s: no rows or prompts in %s" % (sets, lines))
    return [float(x) for x in m.groups()], [float(x) for x in q.groups()]


chunk = 512 // 12
for sets, n_units, steps, ranks in (([], units, 37, 1), ([], units, 37, 4), ([], units, 37, 3),
                                    (["data.n_prompts=2", "perturb.steps=11"], 2 * 2 * 3 * 3, 11, 1),
                                    (["data.n_prompts=2", "perturb.steps=11"], 2 * 2 * 3 * 3, 11, 2)):
    (sweep, rows0, t0, busy), (setup, n_chunk, tc, busy_p) = dry_times(sets, ranks)
    per = (1024 // steps) * steps
    want0, want_busy = min(per, n_units * steps), busiest_rows(n_units * steps, per, ranks)
    want_p = busiest_prompts(int(vals["setup_prompts"]) if not sets else 2 + 150, chunk, ranks)
    if rows0 != want0 or busy != want_busy or busy_p != want_p or n_chunk != min(chunk, 157 if not sets else 152):
        sl.fail("dry run %s on %d ranks: batch 0 %d rows, busiest %d rows, %d prompts (chunk %d); by hand %d, %d, %d"
                % (sets, ranks, rows0, busy, busy_p, n_chunk, want0, want_busy, want_p))
    # the printed figures have 3 significant digits: each within 0.5 %
    if abs(sweep - t0 * busy / rows0) > 0.011 * sweep or abs(setup - tc * busy_p / n_chunk) > 0.011 * setup:
        sl.fail("dry run %s on %d ranks: sweep %g s, setup %g s, not batch 0's %g s x %d / %d rows, the chunk's %g s "
                "x %d / %d prompts" % (sets, ranks, sweep, setup, t0, busy, rows0, tc, busy_p, n_chunk))
    print("ok   dry run %s on %d ranks: batch 0 of %d rows, the busiest rank's %d rows and %d setup prompts as by "
          "hand, the times scaled by them" % (" ".join(sets) or "as configured", ranks, rows0, busy, busy_p))

# the real run's peak memory
p = subprocess.Popen([sl.BIN, "run", ini, "--quiet", "--set", "run.checkpoint=" + ckpt], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, env=sl.run_env())
_, status, usage = os.wait4(p.pid, 0)
err = p.stderr.read().decode()
p.stdout.close(), p.stderr.close()
if os.waitstatus_to_exitcode(status) != 0:
    sl.fail("real run: %s" % err)
peak = usage.ru_maxrss * 1024.0
est = vals["memory_rank0_bytes"]
# Under AddressSanitizer a run's RSS holds ASan's shadow and quarantine of freed blocks, which grow with
# the run's length: no estimate of plateau's own memory is meant to cover that.
asan = "libasan" in subprocess.run(["ldd", sl.BIN], capture_output=True, text=True).stdout
if asan:
    print("note an ASan build: the memory check is left to the release build (rank 0 %.1f MB vs peak RSS %.1f MB)"
          % (est / 1e6, peak / 1e6))
elif not (peak / 2 <= est <= 2 * peak):
    sl.fail("dry run's rank-0 memory %.1f MB is not within a factor 2 of the real run's peak RSS %.1f MB"
            % (est / 1e6, peak / 1e6))
else:
    print("ok   dry run's rank-0 memory %.1f MB vs the real run's peak RSS %.1f MB" % (est / 1e6, peak / 1e6))

# errors are the real run's
os.remove(out)
for args, what in (([ini, "--set", "perturb.steps=x"], "[perturb] steps: 'x' is not an integer"),
                   ([ini, "--set", "model.path=" + d + "/nowhere"], "nowhere"),
                   ([ini, "--set", "run.checkpoint=" + data], "is an input of this run")):
    real, dry = sl.run(args), sl.run(args + ["--dry-run"])
    if dry.returncode != 2 or real.returncode != 2 or what not in dry.stderr or dry.stderr != real.stderr:
        sl.fail("%s: dry exit %d %r, real exit %d %r" % (args, dry.returncode, dry.stderr, real.returncode,
                                                         real.stderr))
# an output directory that cannot be made (under a regular file): 2 as the real run, nothing made
bad_out = os.path.join(data, "sub", "out.nc")
real, dry = sl.run([ini, "-o", bad_out]), sl.run([ini, "-o", bad_out, "--dry-run"])
if dry.returncode != 2 or real.returncode != 2 or bad_out not in dry.stderr or bad_out not in real.stderr:
    sl.fail("output under a file: dry exit %d %r, real exit %d %r" % (dry.returncode, dry.stderr, real.returncode,
                                                                      real.stderr))
fresh = os.path.join(d, "fresh", "deeper", "out.nc")
dry = sl.run([ini, "-o", fresh, "--dry-run", "--quiet"])
if dry.returncode != 0 or os.path.exists(os.path.join(d, "fresh")):
    sl.fail("a new output directory: exit %d %r, or the dry run made it" % (dry.returncode, dry.stderr))
open(ckpt, "w").write("x")
dry = sl.run([ini, "--dry-run", "--set", "run.checkpoint=" + ckpt])
if dry.returncode != 2 or "pass --resume" not in dry.stderr or open(ckpt).read() != "x":
    sl.fail("existing checkpoint: exit %d %r" % (dry.returncode, dry.stderr))
print("ok   bad config, missing model, output over an input, an existing checkpoint, an output directory that "
      "cannot be made: exit 2 as a real run; a new output directory is not made")
print("dry-run tests passed")
