"""jobs/*.ini: every shipped job parses and runs end to end in miniature (a tiny synthetic model with
GPT-2's vocabulary, the real WebText prompts from ../shared through the real tokenizer), and
jobs/smoke.ini runs as CI runs it. Needs ../shared (skips without it)."""
import glob
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
webtext = os.path.join(shared, "data", "webtext.valid.jsonl")
if not os.path.exists(webtext) or not os.path.exists(os.path.join(shared, "gpt2", "vocab.json")):
    sl.skip("needs %s and %s/gpt2 (PLATEAU_SHARED_DIR)" % (webtext, shared))
d = sl.workdir(sys.argv)
model = os.path.join(d, "smoke-model")
r = subprocess.run([sl.BIN, "synth", model, "--layers", "2", "--embd", "64", "--heads", "4", "--ctx", "32",
                    "--vocab-from", os.path.join(shared, "gpt2")], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth: " + r.stderr)


def write_sparsity(sae_dir, log10_density):
    """SAELens's sparsity.safetensors (one F32 tensor `sparsity`, log10 feature densities): what the
    sae_bag and sae_cosine bases sort by."""
    h = json.dumps({"sparsity": {"dtype": "F32", "shape": [len(log10_density)],
                                 "data_offsets": [0, 4 * len(log10_density)]}}).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(sae_dir, "sparsity.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + np.asarray(log10_density, "<f4").tobytes())


jobs = sorted(glob.glob(os.path.join(sl.SRC, "jobs", "*.ini")))
if not jobs:
    sl.fail("no jobs/*.ini")
# ([model] paths and tokenizer emptied: a model series job runs on the smoke model)
common = ["--set", "model.paths=", "--set", "model.tokenizer=", "--set", "model.path=" + model,
          "--set", "data.prompts=" + webtext, "--set", "readout.read_hook="]
for job in jobs:
    name = os.path.basename(job)[:-4]
    out = os.path.join(d, name + ".nc")
    # an explicit grid ([perturb] alphas) is shrunk to three of its kind, an alpha_grid to 3 steps
    grid = "perturb.alphas=0, 1.5, 3.14" if re.search(r"^alphas\s*=", open(job).read(), re.M) else "perturb.steps=3"
    small = [] if name == "smoke" else ["--set", "data.n_prompts=4", "--set", "perturb.cov_prompts=30",
                                        "--set", grid]
    text = open(job).read()
    hook = re.search(r"^hook\s*=\s*blocks\.(\d+)\.(\S+)", text, re.M)
    if hook and int(hook.group(1)) > 1 and "\n[sae]" not in text:  # deeper than the smoke model's 2 blocks:
        small += ["--set", "perturb.hook=blocks.1." + hook.group(2)]  # block 1, the job's site (attn.hook_z ...)
    n_ctx = re.search(r"^n_ctx\s*=\s*(\d+)", text, re.M)
    if n_ctx and int(n_ctx.group(1)) > 32:  # longer than the smoke model's 32 positions
        small += ["--set", "data.n_ctx=16"]
    if "\n[sae]" in open(job).read():  # an SAE job: a synthetic SAE of the smoke model at its hook
        sae = os.path.join(d, name + "-sae")
        r = subprocess.run([sl.BIN, "synth-sae", sae, "--model", model, "--hook", "blocks.1.hook_resid_pre",
                            "--d-sae", "64"], capture_output=True, text=True)
        if r.returncode != 0:
            sl.fail("synth-sae: " + r.stderr)
        small += ["--set", "perturb.hook=blocks.1.hook_resid_pre", "--set", "sae.path=" + sae]
        if re.search(r"^bases\s*=.*\bsae_(bag|cosine)\b", open(job).read(), re.M):  # their feature densities
            write_sparsity(sae, np.random.default_rng(0).uniform(-6.0, -1.0, 64))
    r = sl.run([job, "--quiet", "-o", out] + common + small)
    if r.returncode != 0:
        sl.fail("%s: exit %d: %s" % (name, r.returncode, r.stderr))
    v = sl.variables(out)
    print("ok %-10s bases %s, directions %s, %d prompts" % (name, v["base"], v["direction"], len(v["prompt"])))
print("jobs tests passed")
