"""SAE sweeps are bitwise identical on any number of ranks and after a resume: every SAE kind, both
bases, both residual bases and the readouts, on 1 process and on 2 and 3 MPI ranks; SIGTERM then
--resume on another rank count. A checkpoint made with another SAE (same path, other weights) is
refused: [sae] sha256 is part of the config a checkpoint holds."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 700, 300)
HOOK = "blocks.1.hook_resid_pre"


def synth(name, arch, seed, extra=()):
    out = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth-sae", out, "--model", model, "--hook", HOOK, "--d-sae", "80",
                        "--architecture", arch, "--seed", str(seed)] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth-sae: " + r.stderr)
    return out


jump, topk = synth("jumprelu", "jumprelu", 1), synth("topk", "topk", 2, ["--k", "9"])
cfg1 = sl.base_config(model, data, os.path.join(d, "a1.nc"), data__n_prompts=15, perturb__n_directions=3,
                      perturb__directions="sae_active, sae_reconstruction, sae_error_random, cov_random",
                      readout__metrics="kl, l2, sae_l0, sae_recon_error", sae__path=jump, output__bootstrap=100)
cfg2 = sl.base_config(model, data, os.path.join(d, "b1.nc"), data__n_prompts=15, perturb__n_directions=2,
                      perturb__directions="sae_feature_scale, sae_active, sae_error_random", perturb__alpha_max=2,
                      perturb__residual_basis="centered", readout__metrics="js_dist, cosine, sae_l0, sae_recon_error",
                      sae__path=topk, sae__sign="positive", output__bootstrap=100)
ini1 = sl.write_ini(os.path.join(d, "a.ini"), cfg1)
ini2 = sl.write_ini(os.path.join(d, "b.ini"), cfg2)
sl.need_mpirun()
for name, ini, counts in (("a1", ini1, (2, 3)), ("b1", ini2, (2,))):
    r = sl.run([ini, "--quiet"])
    if r.returncode != 0:
        sl.fail("1 process: " + r.stderr)
    for n in counts:
        out = os.path.join(d, "%s-mpi%d.nc" % (name, n))
        sl.ranks_same_bits(name, [ini, "--quiet", "-o", out], os.path.join(d, name + ".nc"), out, mpi=n)
        print("ok %s: %d ranks bitwise identical to 1 process (%d variables)" % (name, n, len(sl.variables(out))))

# SIGTERM after the first checkpoint, --resume on 2 ranks: the uninterrupted run's bits
full, out = os.path.join(d, "full.nc"), os.path.join(d, "out.nc")
cfg3 = sl.base_config(model, data, out, data__n_prompts=600, perturb__n_directions=1, perturb__bases="real",
                      perturb__steps=101,
                      perturb__directions="sae_active, sae_reconstruction, sae_error_random",
                      readout__metrics="kl, sae_l0, sae_recon_error", sae__path=jump, output__bootstrap=0,
                      run__checkpoint_every=0.2)
ini3 = sl.write_ini(os.path.join(d, "c.ini"), cfg3)
r = sl.run([ini3, "--quiet", "-o", full])
if r.returncode != 0:
    sl.fail("uninterrupted: " + r.stderr)
proc = sl.start([ini3])
sl.wait_for(out + ".ckpt", proc)
proc.send_signal(signal.SIGTERM)
_, err = proc.communicate(timeout=60)
if proc.returncode != 75:
    sl.fail("exit %d after SIGTERM (want 75): %s" % (proc.returncode, err))
saved = open(out + ".ckpt", "rb").read()
# the same path with other weights: refused, checkpoint untouched
os.rename(jump, jump + ".orig")
synth("jumprelu", "jumprelu", 7)
r = sl.run([ini3, "--resume", "--quiet"])
if r.returncode != 2 or "written for another config: [sae] 'sha256 = " not in r.stderr:
    sl.fail("resume with another SAE: exit %d: %s" % (r.returncode, r.stderr))
if open(out + ".ckpt", "rb").read() != saved:
    sl.fail("a refused resume changed the checkpoint")
print("ok another SAE at the same path: resume refused (" + r.stderr.strip()[:90] + "...)")
sl.shutil.rmtree(jump)
os.rename(jump + ".orig", jump)
sl.ranks_same_bits("resumed on 2 ranks", [ini3, "--resume", "--quiet"], full, out)
print("ok SIGTERM, exit 75, --resume on 2 ranks: bitwise identical to the uninterrupted run")
print("SAE rank tests passed")
