"""slurm/plateau.sbatch and slurm/plateau-hooks.sbatch take --help and -h as a request for their usage
(stdout, exit 0), not as a config name, and never start srun, sbatch or scontrol for it; an option
where the config belongs is one line and exit 1; jobs/quickstart.sh --help likewise. srun, sbatch and
scontrol on PATH are stand-ins that only record being called, so nothing could be submitted."""
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(__file__))
import jobslib as jl  # noqa: E402

root = jl.workdir(sys.argv, "jobs-sbatch")
repo = jl.sandbox(root)
stubs = os.path.join(root, "bin")
called = os.path.join(root, "called")
os.makedirs(stubs)
for tool in ("srun", "sbatch", "scontrol", "mpirun"):
    path = os.path.join(stubs, tool)
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho %s \"$@\" >> %s\n" % (tool, called))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
env = jl.offline_env(PATH=stubs + os.pathsep + os.environ["PATH"])

for script, usage in (("slurm/plateau.sbatch", "sbatch [sbatch options] slurm/plateau.sbatch CONFIG"),
                      ("slurm/plateau-hooks.sbatch", "sbatch [sbatch options] slurm/plateau-hooks.sbatch CONFIG"),
                      ("jobs/quickstart.sh", "bash jobs/quickstart.sh --plan")):
    for flag in ("--help", "-h"):
        what = "%s %s" % (script, flag)
        r = jl.run(["bash", script, flag], repo, env)
        jl.expect(r, 0, what)
        if usage not in r.stdout or r.stderr:
            jl.fail("%s: no usage on stdout, or something on stderr:\n%s\n%s" % (what, r.stdout, r.stderr))
        if any(line.startswith("#SBATCH") for line in r.stdout.splitlines()):
            jl.fail("%s: the usage shows the #SBATCH directives" % what)
for script in ("slurm/plateau.sbatch", "slurm/plateau-hooks.sbatch"):
    what = script + " -o out.nc (an option where the config belongs)"
    r = jl.run(["bash", script, "-o", "out.nc"], repo, env)
    jl.expect(r, 1, what)
    jl.one_line(r, what, "'-o' is not a config")
what = "jobs/quickstart.sh --bogus"
r = jl.run(["bash", "jobs/quickstart.sh", "--bogus"], repo, env)
jl.expect(r, 1, what)
jl.one_line(r, what, "unknown argument '--bogus'")
if os.path.exists(called):
    jl.fail("a Slurm or MPI command ran: " + open(called).read())
if any(p.startswith(("results", "models", "data")) for p in jl.tree(repo)):
    jl.fail("the scripts wrote into the checkout: %s" % jl.tree(repo))
print("sbatch and quickstart argument tests passed")
