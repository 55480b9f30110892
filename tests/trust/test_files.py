"""Issue 8, items 2, 5 and 6: no file is destroyed, nothing hangs, writes are durable.

- [run] checkpoint or -o naming the output, the config, the prompts, a file of the model dir or a
  file: direction: exit 2 before any work, the file untouched. -o naming a device node, a FIFO or a
  directory, and -o "": exit 2 at once, the node untouched.
- an existing checkpoint without --resume: exit 2 saying to pass --resume or remove it (1 process and
  2 ranks), the checkpoint untouched; a file that is not a checkpoint is refused with --resume and
  is never removed.
- a FIFO as the config, the prompts (.bin, .jsonl), a file: direction, the checkpoint or a merge
  input: exit 2 naming it, without blocking.
- the output and the checkpoint are written by one atomic writer: a new temporary file (O_EXCL),
  fsync, rename, fsync of the directory, and only then is this run's checkpoint removed; no process
  is forked for the write (strace).
"""
import os
import re
import stat
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "files")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
out = os.path.join(d, "out.nc")
ckpt = out + ".ckpt"
cfg = sl.base_config(model, data, out, data__n_prompts=6, perturb__steps=5, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "files.ini"), cfg)
rows = os.path.join(d, "rows.npy")
np.save(rows, np.random.default_rng(2).standard_normal((3, 32)).astype(np.float32))


def untouched(label, path, before):
    if not os.path.lexists(path) or tl.fingerprint(path) != before:
        sl.fail("%s: %s was changed or removed" % (label, path))


def refused_write(label, extra, victim, *needles):
    before = tl.fingerprint(victim)
    r = tl.plateau(["run", ini, "--set", "perturb.directions=cov_random, file:" + rows] + extra)
    tl.expect_error(label, r, *needles)
    if "units" in r[2]:
        sl.fail("%s: work started before the refusal: %s" % (label, r[2]))
    untouched(label, victim, before)
    if os.path.exists(out) and victim != out:
        sl.fail("%s: an output was written" % label)


# --- outputs that are inputs or each other ---------------------------------------------------------
with open(out, "wb") as f:
    f.write(b"an earlier result")
refused_write("checkpoint = the output", ["--set", "run.checkpoint=" + out], out, "is the output file")
os.unlink(out)
weights = os.path.join(model, "model.safetensors")
for name, key, victim in [
        ("checkpoint = model.safetensors", "run.checkpoint", weights),
        ("checkpoint = config.json", "run.checkpoint", os.path.join(model, "config.json")),
        ("checkpoint = the prompts", "run.checkpoint", data),
        ("checkpoint = the config file", "run.checkpoint", ini),
        ("checkpoint = a file: direction", "run.checkpoint", rows),
        ("-o model.safetensors", "output.path", weights),
        ("-o the prompts", "output.path", data)]:
    refused_write(name, ["--set", "%s=%s" % (key, victim)], victim, "is an input of this run", victim)
# through another name: a symbolic link to the model's weights
link = os.path.join(d, "link.nc")
os.symlink(weights, link)
refused_write("-o a link to model.safetensors", ["-o", link], weights, "is an input of this run")
# a model series: each model's run writes a part file, and the stacked output is checked too (it was not:
# -o naming the config, the paths file or a later model's weights overwrote it after the whole run)
model2 = os.path.join(d, "model2")
sl.shutil.copytree(model, model2)
weights2 = os.path.join(model2, "model.safetensors")
series_list = os.path.join(d, "series.models")
with open(series_list, "w") as f:
    f.write("model label=a\nmodel2 label=b\n")
as_list = ["--set", "model.path=%s, %s" % (model, model2)]
as_file = ["--set", "model.path=", "--set", "model.paths=" + series_list]
for name, extra, victim in [
        ("series: -o the 2nd model's weights", as_list + ["-o", weights2], weights2),
        ("series: -o the config file", as_list + ["-o", ini], ini),
        ("series: -o the prompts", as_file + ["-o", data], data),
        ("series: -o the [model] paths file", as_file + ["-o", series_list], series_list)]:
    refused_write(name, extra, victim, "is an input of this run", victim)

# --- outputs that are not regular files --------------------------------------------------------------
fifo = os.path.join(d, "fifo.nc")
os.mkfifo(fifo)
refused_write("-o a FIFO", ["-o", fifo], fifo, "a FIFO", "plateau only replaces regular files")
refused_write("-o a directory", ["-o", d], model, "directory")
if os.geteuid() == 0:
    node = os.path.join(d, "null.nc")
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    refused_write("-o a character device", ["-o", node], node, "a character device")
else:
    print("skip -o a device node: not root (mknod)")
r = tl.plateau(["run", ini, "-o", ""])
tl.expect_error("-o ''", r, "-o: the output path is empty")

# --- checkpoints --------------------------------------------------------------------------------------
with open(ckpt, "wb") as f:
    f.write(b"most of the work of an earlier run")
before = tl.fingerprint(ckpt)
tl.expect_error("existing checkpoint without --resume", tl.plateau(["run", ini]), ckpt, "--resume", "remove it")
untouched("existing checkpoint without --resume", ckpt, before)
if sl.shutil.which("mpirun"):
    tl.expect_error("existing checkpoint, 2 ranks", tl.mpi(2, ["run", ini]), ckpt, "--resume", one_line="plateau")
    untouched("existing checkpoint, 2 ranks", ckpt, before)
tl.expect_error("not a checkpoint, --resume", tl.plateau(["run", ini, "--resume"]), ckpt, "not a plateau checkpoint")
untouched("not a checkpoint, --resume", ckpt, before)
os.unlink(ckpt)

# --- FIFOs where files are read ------------------------------------------------------------------------
def fifo_case(label, path, args, *needles):
    if os.path.lexists(path):
        os.unlink(path)
    os.mkfifo(path)
    tl.expect_error(label, tl.plateau(args), path, "FIFO", *needles)
    os.unlink(path)


fifo_case("FIFO as the config", os.path.join(d, "fifo.ini"), ["run", os.path.join(d, "fifo.ini")])
fifo_case("FIFO as the prompts (.bin)", os.path.join(d, "fifo.bin"), ["run", ini, "--set", "data.prompts=" + os.path.join(d, "fifo.bin")])
fifo_case("FIFO as the prompts (.jsonl)", os.path.join(d, "fifo.jsonl"),
          ["run", ini, "--set", "data.prompts=" + os.path.join(d, "fifo.jsonl")])
fifo_case("FIFO as a file: direction", os.path.join(d, "fifo.npy"),
          ["run", ini, "--set", "perturb.directions=file:" + os.path.join(d, "fifo.npy")])
fifo_case("FIFO as the checkpoint (--resume)", ckpt, ["run", ini, "--resume"])
fifo_case("FIFO as plateau config's config", os.path.join(d, "fifo.ini"), ["config", os.path.join(d, "fifo.ini")])

# --- the atomic write, seen by strace ---------------------------------------------------------------------
if not sl.shutil.which("strace"):
    print("skip atomic write order: strace not installed")
else:
    trace = os.path.join(d, "trace")
    e = sl.run_env()
    r = subprocess.run(["strace", "-f", "-qq", "-o", trace, "-e",
                        "trace=openat,fsync,rename,renameat,renameat2,unlink,unlinkat,fork,vfork,clone,clone3",
                        tl.BIN, "run", ini, "--quiet", "--set", "run.checkpoint_every=0.000001"],
                       capture_output=True, text=True, env=e, timeout=120)
    if r.returncode != 0:
        sl.fail("traced run: exit %d: %s" % (r.returncode, r.stderr))
    calls = open(trace).read().splitlines()
    base = os.path.basename(out)

    def index(pattern, start=0):
        for i in range(start, len(calls)):
            if re.search(pattern, calls[i]):
                return i
        sl.fail("trace lacks %r after line %d:\n%s" % (pattern, start, "\n".join(calls[start:start + 40])))

    # the output: temporary file created new, fsynced, renamed over out.nc, directory fsynced
    # (the temporary file the output is written to: the last one created before the rename; the
    # first is setup's proof that the directory is writable, and fd numbers differ between them)
    tmp_open = r'openat\(.*"[^"]*/\.%s\.tmp\.\d+".*O_EXCL.*= (\d+)' % re.escape(base)
    i_first_rename = index(r'rename(at2?)?\(.*\.%s\.tmp\.\d+".*"%s"' % (re.escape(base), re.escape(out)))
    i_open = max(i for i in range(i_first_rename) if re.search(tmp_open, calls[i]))
    fd = re.search(r"= (\d+)$", calls[i_open]).group(1)
    i_sync = index(r"fsync\(%s\)" % fd, i_open)
    i_rename = index(r'rename(at2?)?\(.*\.%s\.tmp\.\d+".*"%s"' % (re.escape(base), re.escape(out)), i_sync)
    i_dir = index(r'openat\(.*"%s".*O_DIRECTORY' % re.escape(d), i_rename)
    i_dsync = index(r"fsync\(", i_dir)
    i_unlink = index(r'unlink(at)?\(.*"%s"' % re.escape(ckpt), i_dsync)
    print("ok output: O_EXCL temporary, fsync, rename, fsync of the directory, then the checkpoint removed "
          "(trace lines %d..%d)" % (i_open, i_unlink))
    # the checkpoint went the same way (it existed: checkpoint_every is tiny)
    index(r'openat\(.*"[^"]*/\.%s\.tmp\.\d+".*O_EXCL' % re.escape(os.path.basename(ckpt)))
    index(r'rename(at2?)?\(.*\.%s\.tmp\.\d+".*"%s"' % (re.escape(os.path.basename(ckpt)), re.escape(ckpt)))
    # Open MPI's singleton MPI_Init starts its launcher (fork + exec of orted) before plateau reads its
    # config; after that, no process may be started: the only clones are threads.
    i_config = index(r'openat\(.*"%s"' % re.escape(ini))
    forks = [c for c in calls[i_config:] if re.search(r"\b(fork|vfork)\(", c) or
             (re.search(r"\bclone3?\(", c) and "CLONE_THREAD" not in c)]
    if forks:
        sl.fail("plateau run started processes: %s" % forks[:3])
    print("ok no fork after MPI_Init: the only clones are threads (%d)" %
          sum("CLONE_THREAD" in c for c in calls[i_config:]))
    if os.path.exists(ckpt) or [f for f in os.listdir(d) if ".tmp." in f]:
        sl.fail("a checkpoint or temporary file was left: %s" % os.listdir(d))
    os.unlink(out)

# --- merge ---------------------------------------------------------------------------------------------
good = os.path.join(d, "good.nc")
r = tl.plateau(["run", ini, "--quiet", "-o", good], timeout=120)
if r[0] != 0:
    sl.fail("run for merge: " + r[2])
mfifo = os.path.join(d, "in.nc")
os.mkfifo(mfifo)
tl.expect_error("FIFO as a merge input", tl.plateau(["merge", os.path.join(d, "m.nc"), good, mfifo]), mfifo, "FIFO")
refused = tl.plateau(["merge", fifo, good])
tl.expect_error("merge -o a FIFO", refused, fifo, "FIFO")
print("files tests passed")
