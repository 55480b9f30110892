"""Issue 20, items 2 and 4: no output goes through a link, and generators overwrite no real work.

Everything happens inside the test's own directory: the links point at files, FIFOs and directories made
here, never at a system file (no /dev/stdout, no device).

- run -o, [run] checkpoint, merge OUT and merge --force OUT naming a symbolic link (to a regular file, to
  a FIFO, dangling): exit 2 naming the link, before any work; the link and its target unchanged, nothing
  created at a dangling link's target. '-' as a NetCDF output (run -o -, merge -): exit 2, no file '-'.
- synth / synth-sae: a non-empty OUT_DIR without --force is refused (exit 2), its files unchanged; with
  --force, a dir that synth (synth-sae) wrote is rewritten, a dir of a "real" model (config.json without
  "plateau_synthetic") or an SAE dir (cfg.json without it) is refused even with --force; OUT_DIR a symbolic
  link is refused; a synthetic dir whose weights file became a link: exit 2, the link's target unchanged.
"""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "outputs")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 600, 300)
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, data, out, data__n_prompts=4, perturb__steps=3, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "outputs.ini"), cfg)

target = os.path.join(d, "target.nc")
with open(target, "wb") as f:
    f.write(b"somebody's file")
fifo = os.path.join(d, "fifo")
os.mkfifo(fifo)
links = {"a link to a regular file": target, "a link to a FIFO": fifo,
         "a dangling link": os.path.join(d, "nothing-here.nc")}


def make_link(name, to):
    path = os.path.join(d, name)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(to, path)
    return path


def states():
    return {p: tl.fingerprint(p) if os.path.lexists(p) else None
            for p in [target, fifo, links["a dangling link"]] + [os.path.join(d, n) for n in os.listdir(d)]}


def unchanged(label, before, *new_ok):
    after = states()
    for p, fp in before.items():
        if after.get(p) != fp:
            sl.fail("%s: %s changed (%s -> %s)" % (label, p, fp, after.get(p)))
    extra = [p for p in after if p not in before and p not in new_ok]
    if extra:
        sl.fail("%s: created %s" % (label, extra))


def refused(label, args, *needles, cwd_dash=False):
    before = states()
    r = tl.plateau(args)
    text = tl.expect_error(label, r, *needles)
    if "units" in r[2]:
        sl.fail("%s: work started before the refusal: %s" % (label, text))
    unchanged(label, before)
    if cwd_dash and os.path.lexists(os.path.join(d, "-")):
        sl.fail("%s: wrote a file named '-'" % label)


good = os.path.join(d, "good.nc")
r = tl.plateau(["run", ini, "--quiet", "-o", good], timeout=120)
if r[0] != 0:
    sl.fail("run: " + r[2])

for kind, to in links.items():
    link = make_link("link.nc", to)
    refused("run -o " + kind, ["run", ini, "--quiet", "-o", link], link, "symbolic link")
    # --resume: past the check that refuses any existing checkpoint without it
    refused("checkpoint = " + kind, ["run", ini, "--quiet", "--resume", "--set", "run.checkpoint=" + link], link,
            "symbolic link")
    refused("merge OUT = " + kind, ["merge", link, good], link, "symbolic link")
    refused("merge --force OUT = " + kind, ["merge", "--force", link, good], link, "symbolic link")
    os.unlink(link)

# a link made at the output's name while the run computes: the run ends with exit 2 naming it, the link
# and its target unchanged (the rename would have replaced the link). ~120k evaluations (seconds): the
# first checkpoint (0.2 s) comes long before the end.
late = os.path.join(d, "late.nc")
big = sl.write_ini(os.path.join(d, "big.ini"), sl.base_config(model, data, late, data__n_prompts=100,
                                                               perturb__steps=101, run__checkpoint_every=0.2))
proc = sl.start([big, "--quiet"])
sl.wait_for(late + ".ckpt", proc)
os.symlink(target, late)
before = states()
before.pop(late + ".ckpt")  # the run's own, written as it goes
before.pop(late + ".ckpt.lock", None)  # the checkpoint's lock, held while the run lives
try:
    _, err = proc.communicate(timeout=300)
except sl.subprocess.TimeoutExpired:
    proc.kill()
    sl.fail("a link made during the run: the run did not end")
if proc.returncode != 2 or "symbolic link" not in err or late not in err:
    sl.fail("a link made during the run: exit %s: %s" % (proc.returncode, err))
unchanged("a link made during the run", before, late + ".ckpt")
if not os.path.islink(late) or os.readlink(late) != target:
    sl.fail("a link made during the run: the link was replaced")
print("ok a link made at the output's name during the run: exit 2, %s" % err.strip().splitlines()[-1][:150])
os.unlink(late)
if os.path.exists(late + ".ckpt"):
    os.unlink(late + ".ckpt")

# '-': standard output cannot take a NetCDF file; nothing named '-' appears (the runs' cwd is D)
os.chdir(d)
refused("run -o -", ["run", ini, "--quiet", "-o", "-"], "'-'", "standard output", cwd_dash=True)
refused("merge -", ["merge", "-", good], "'-'", "standard output", cwd_dash=True)
refused("merge --force -", ["merge", "--force", "-", good], "'-'", "standard output", cwd_dash=True)

# --- generators ----------------------------------------------------------------------------------------
SYNTH = ["--layers", "1", "--embd", "16", "--heads", "2", "--ctx", "8", "--vocab", "300"]


def synth(out_dir, *extra):
    return tl.plateau(["synth", out_dir] + SYNTH + list(extra), timeout=60)


def synth_sae(out_dir, *extra):
    return tl.plateau(["synth-sae", out_dir, "--model", model, "--hook", "blocks.0.hook_resid_pre", "--d-sae", "8"]
                      + list(extra), timeout=60)


def tree(path):
    return {n: tl.fingerprint(os.path.join(path, n)) for n in sorted(os.listdir(path))}


def ok(label, r):
    if r[0] != 0:
        sl.fail("%s: exit %s: %s" % (label, r[0], r[2]))
    print("ok %s" % label)


# a "trained" model: a synthetic dir whose config.json does not say plateau_synthetic (as HF's do not)
trained = os.path.join(d, "trained")
shutil.copytree(model, trained)
conf = os.path.join(trained, "config.json")
c = json.load(open(conf))
c.pop("plateau_synthetic", None)
json.dump(c, open(conf, "w"))
before = tree(trained)
tl.expect_error("synth over a trained model", synth(trained), trained, "not empty", "--force")
tl.expect_error("synth --force over a trained model", synth(trained, "--force"), trained, "did not write",
                "plateau_synthetic")
if tree(trained) != before:
    sl.fail("synth over a trained model changed it")

# a non-empty dir of something else
other = os.path.join(d, "other")
os.makedirs(other)
with open(os.path.join(other, "notes.txt"), "w") as f:
    f.write("mine")
tl.expect_error("synth --force over another dir", synth(other, "--force"), other, "did not write")

# a dir synth wrote: refused without --force, rewritten with it (same options: same bytes)
mine = os.path.join(d, "mine")
ok("synth into a new dir", synth(mine))
first = tree(mine)
tl.expect_error("synth again without --force", synth(mine, "--seed", "1"), mine, "not empty", "--force")
if tree(mine) != first:
    sl.fail("synth without --force changed the dir")
ok("synth --force over its own dir", synth(mine, "--seed", "1", "--force"))
if tree(mine)["model.safetensors"] == first["model.safetensors"]:
    sl.fail("synth --force --seed 1 did not rewrite the weights")
os.makedirs(os.path.join(d, "empty_dir"))
ok("synth into an existing empty dir", synth(os.path.join(d, "empty_dir")))

# OUT_DIR a link, and a weights file that became a link: refused, the targets untouched
dir_link = make_link("dir_link", mine)
before = tree(mine)
tl.expect_error("synth OUT_DIR = a link", synth(dir_link, "--force"), dir_link, "symbolic link")
weights = os.path.join(mine, "model.safetensors")
os.unlink(weights)
os.symlink(target, weights)
before, target_before = tree(mine), tl.fingerprint(target)
tl.expect_error("synth --force, model.safetensors a link", synth(mine, "--force"), weights, "symbolic link")
if tree(mine) != before or tl.fingerprint(target) != target_before:
    sl.fail("synth --force wrote through a link")

# synth-sae: the same rules with cfg.json
sae = os.path.join(d, "sae")
ok("synth-sae into a new dir", synth_sae(sae))
first = tree(sae)
tl.expect_error("synth-sae again without --force", synth_sae(sae, "--seed", "1"), sae, "not empty", "--force")
ok("synth-sae --force over its own dir", synth_sae(sae, "--seed", "1", "--force"))
real_sae = os.path.join(d, "real_sae")
shutil.copytree(sae, real_sae)
cfg_path = os.path.join(real_sae, "cfg.json")
c = json.load(open(cfg_path))
c.pop("plateau_synthetic")
json.dump(c, open(cfg_path, "w"))
before = tree(real_sae)
tl.expect_error("synth-sae --force over a real SAE", synth_sae(real_sae, "--force"), real_sae, "did not write")
tl.expect_error("synth-sae over a model dir", synth_sae(trained, "--force"), trained, "cfg.json")
if tree(real_sae) != before:
    sl.fail("synth-sae over a real SAE changed it")
sae_link = make_link("sae_link", sae)
tl.expect_error("synth-sae OUT_DIR = a link", synth_sae(sae_link, "--force"), sae_link, "symbolic link")
print("outputs tests passed")
