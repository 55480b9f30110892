"""Config values that are stored must read back as themselves (issue 20, items 5 and 6):
- a value with a newline, another control character, a ';' that would start a comment, blanks at its
  ends or a leading '[' is refused (exit 2, one line naming the key), from the file, --set and -o
  (the injection `--set $'model.path=m\\n[run]\\nseed = 99'` among them), by `plateau config` and
  `plateau run` alike, and nothing is written;
- the resolved text reads back as the same config: resolve, print, parse the printed text, print
  again, byte-equal, for configs setting every key, and for the `config` attribute a run stores;
- hook names have one syntax: the config's hooks, synth-sae's --hook and an SAE's cfg.json are
  canonicalised or refused as an independent reference (a regular expression, below) says.
Usage: test_config_values.py WORKDIR"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
checks = 0


def plateau(args):
    return subprocess.run([sl.BIN] + args, capture_output=True, text=True, errors="replace", env=sl.run_env(),
                          timeout=120)


def check(ok, msg):
    global checks
    checks += 1
    if not ok:
        sl.fail(msg)


def write(name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def refused(what, r, *needles, code=2):
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    check(r.returncode == code, f"{what}: exit {r.returncode} (want {code}); stdout {r.stdout[:200]!r} stderr {r.stderr!r}")
    check(len(lines) == 1, f"{what}: want one line on stderr, got {r.stderr!r}")
    for n in needles:
        check(n in lines[0], f"{what}: {n!r} not in {lines[0]!r}")


base = write("base.ini", "[model]\npath = m\n[data]\nprompts = p.jsonl\n")

# --- refused values -------------------------------------------------------------------------------
bad_sets = [
    ("model.path=m\n[run]\nseed = 99", "[model] path", "newline"),  # the injection
    ("data.prompts=a\rb", "[data] prompts", "carriage return"),
    ("perturb.directions=file:a\x01b.npy", "[perturb] directions", "control character"),
    ("output.path=x.nc\n", "[output] path", "newline"),
    ("run.checkpoint=c\n[sae]\npath = s", "[run] checkpoint", "newline"),
    ("model.tokenizer=[run]", "[model] tokenizer", "'['"),
    ("sae.path=[x] s", "[sae] path", "'['"),
    ("perturb.hook=blocks.1.hook_resid_pre ;x", "[perturb] hook", "comment"),
]
for s, key, why in bad_sets:
    for cmd in (["config", base], ["run", base, "--quiet", "-o", os.path.join(d, "never.nc")]):
        refused(f"{cmd[0]} --set {s!r}", plateau(cmd + ["--set", s]), key, why)
check(not os.path.exists(os.path.join(d, "never.nc")), "a refused run wrote its output")
bad_outputs = [("a\n[run]\nseed = 9.nc", "newline"), ("a\tb\x7f.nc", "control character"), (" x.nc", "blanks"),
               ("x.nc ", "blanks"), ("[run].nc", "'['"), ("a ;b.nc", "comment")]
for o, why in bad_outputs:
    refused(f"-o {o!r}", plateau(["config", base, "-o", o]), "-o", "[output] path", why)
# the default output path is the config's name: it must be storable too
odd = write("odd\x1bname.ini", "[model]\npath = m\n[data]\nprompts = p.jsonl\n")
refused("a config named with an escape", plateau(["config", odd]), "[output] path", "control character")
# in the file: a NUL, and a value starting with '['
refused("NUL in the file", plateau(["config", write("nul.ini", "[model]\npath = m\0\n[data]\nprompts = p\n")]),
        "NUL")
refused("'[' value in the file", plateau(["config", write("br.ini", "[model]\npath = [m]\n[data]\nprompts = p\n")]),
        "br.ini:2: [model] path", "'['")
# tabs inside a value are stored and read back (not a line break)
r = plateau(["config", base, "--set", "model.path=a\tb", "--get", "model.path"])
check(r.returncode == 0 and r.stdout == "a\tb\n", f"a tab inside a value: {r.returncode} {r.stdout!r} {r.stderr}")
print(f"ok   {len(bad_sets)} --set values, {len(bad_outputs)} -o paths, a config name and 2 file values refused "
      "by name; nothing written")

# --- round trip: resolve, print, parse the printed text, print again ------------------------------
every_key = """[model]
path = /models/m dir
label = m-1.b_2+c
step = 143000
tokenizer = tok.json
[data]
prompts = data/p.bin
format = auto
n_prompts = 17
n_ctx = 9
seed = 18446744073709551615
sampling = random_window
token_dtype = uint32
bos = false
[perturb]
hook = blocks.0003.hook_resid_post
position = -2
per_position = shared
fit_positions = all
sigma_ridge = 0.01
bases = synthetic, real
directions = isotropic, file:dirs/a b.npy, file:x.safetensors#W_dec, real_difference
n_directions = 3
steps = 7
alpha_max = 0.30000000000000004
alpha_grid = log
alpha_min = 1e-3
step_mode = fixed_norm
norm_scale = 0.3333333333333333
step_reference = real
center_direction = yes
residual_basis = centered
cov_prompts = 21
[readout]
metrics = cosine, js_dist, kl, ce_loss
read_hook = blocks.01.hook_resid_pre
positions = each
position = 5
onset_threshold = 0.125
thresholds = kl:none, l2:3.5, ce_loss:1e-7
nonlinearity = 2, 6, 0.05
nonlinearity_rule = teren
plateau_threshold = none
giglemiani_nl_tolerance = 0.25
[output]
raw_curves = no
quantiles = 0, 0.1, 1
activations = 1
bootstrap = 0
histogram_bins = 3
[sae]
path = saes/one
sha256 = %s
active_fraction = 0.5
sign = positive
[run]
seed = 12
checkpoint_every = 0.25
checkpoint = ckpt/x=1.ckpt
worker_timeout = 1e-3
threads = 3
shared_weights = false
nonfinite = mark
""" % ("0123456789abcdef" * 4)
cases = [("every_key.ini", every_key, []), ("defaults.ini", open(base).read(), []),
         ("sets.ini", open(base).read(), ["--set", "readout.position=perturbed", "--set", "data.format=text",
                                            "-o", "out dir/r;1.nc", "--set", "perturb.steps=2"]),
         ("alphas.ini", open(base).read(), ["--set", "perturb.alphas=0.1, 1e0, 2", "--set", "perturb.steps=4"]),
         ("preset.ini", open(base).read(), ["--set", "perturb.alphas=teren_pi"]),
         ("range.ini", open(base).read(), ["--set", "perturb.position=1:"]),
         ("range2.ini", open(base).read(), ["--set", "perturb.position=-5:-1"]),
         ("all.ini", open(base).read(), ["--set", "perturb.position=all"]),
         ("slice.ini", open(base).read(), ["--set", "perturb.slice=cov_random, real_other"])]
for name, text, extra in cases:
    first = plateau(["config", write(name, text)] + extra)
    check(first.returncode == 0, f"{name}: {first.stderr}")
    again = plateau(["config", write("printed_" + name, first.stdout)])
    check(again.returncode == 0, f"{name}'s printed text does not parse: {again.stderr}")
    check(again.stdout == first.stdout, f"{name}: printed text reads back differently:\n{first.stdout}\n---\n{again.stdout}")
    # and the printed text of a resolved config is every key, once
    keys = re.findall(r"^(\w+) = ", first.stdout, re.M)
    check(len(keys) == 70, f"{name}: {len(keys)} keys printed")
print(f"ok   {len(cases)} configs (one setting every key) print, re-parse and print again byte-equal")

# the config attribute of a run: the text a merge and a resume re-parse
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 60, 300)
out = os.path.join(d, "run.nc")
ini = write("run.ini", "[model]\npath = %s\n[data]\nprompts = %s\nn_prompts = 4\nn_ctx = 8\n[perturb]\n"
            "cov_prompts = 40\nsteps = 3\nhook = blocks.00.hook_resid_post\n[output]\npath = %s\nbootstrap = 10\n"
            % (model, data, out))
r = sl.run([ini, "--quiet"])
check(r.returncode == 0, f"run: {r.stderr}")
import netCDF4  # noqa: E402

with netCDF4.Dataset(out) as ds:
    stored, hook = ds.getncattr("config"), ds.getncattr("hook")
check(hook == "blocks.0.hook_resid_post", f"stored hook {hook!r}")
r = plateau(["config", write("stored.ini", stored)])
check(r.returncode == 0 and r.stdout == stored, f"the stored config reads back differently: {r.stderr}\n{r.stdout}")
print("ok   a run's stored config attribute re-parses to the same text")

# --- hook names: one syntax ---------------------------------------------------------------------


def reference_hook(name):
    """The canonical name, or None when refused: blocks.<decimal digits>.<site> for TransformerLens's
    hook_resid_pre|mid|post, attn.hook_z, hook_attn_out, hook_mlp_out, leading zeros dropped, at most 7
    digits left, or ln_final.hook_normalized; nothing else (no sign, blank, other hook)."""
    if name == "ln_final.hook_normalized":
        return name
    m = re.fullmatch(r"blocks\.([0-9]+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post|attn\.hook_z|"
                     r"hook_attn_out|hook_mlp_out)", name)
    if not m:
        return None
    digits = m.group(1).lstrip("0") or "0"
    return None if len(digits) > 7 else "blocks.%s.%s" % (digits, m.group(2))


names = ["blocks.1.hook_resid_pre", "blocks.01.hook_resid_pre", "blocks.000.hook_resid_post", "blocks.0.hook_resid_pre",
         "blocks.+1.hook_resid_pre", "blocks.-1.hook_resid_pre", "blocks. 1.hook_resid_pre", "blocks.1 .hook_resid_pre",
         "blocks.1.hook_resid_pre\t.x", "blocks..hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.1.hook_resid_prex",
         "blocks.1.hook_mlp_out", "Blocks.1.hook_resid_pre", "blocks.0x1.hook_resid_pre", "blocks.1e0.hook_resid_pre",
         "blocks.１.hook_resid_pre", "blocks.00000001234567.hook_resid_post", "blocks.12345678.hook_resid_pre",
         "blocks.99999999999999999999.hook_resid_pre", "hook_resid_pre", "blocks.1.hook_resid_pre.", "blocks.1",
         "blocks.1.attn.hook_z", "blocks.01.attn.hook_z", "blocks.0.hook_attn_out", "blocks.002.hook_resid_mid",
         "blocks.1.hook_mlp_in", "blocks.1.attn.hook_q", "blocks.1.hook_z", "ln_final.hook_normalized",
         "ln_final.hook_normalizedx", "blocks.0.ln_final.hook_normalized", "ln_final.hook_scale"]
for key in ("perturb.hook", "readout.read_hook"):
    for name in names:
        want = reference_hook(name)
        r = plateau(["config", base, "--set", f"{key}={name}", "--get", key])
        if want is None:
            refused(f"{key} {name!r}", r, "[%s] %s" % tuple(key.split(".")), "hook")
        else:
            check(r.returncode == 0 and r.stdout == want + "\n", f"{key} {name!r}: {r.returncode} {r.stdout!r} "
                  f"{r.stderr} (want {want!r})")
print(f"ok   {len(names)} hook names canonicalised or refused as the reference says, in [perturb] hook and "
      "[readout] read_hook")

# synth-sae --hook: the same parser (a usage error, exit 1, or the canonical name in cfg.json)
for name in ("blocks.+1.hook_resid_pre", "blocks. 1.hook_resid_pre", "blocks.1.hook_mlp_out"):
    r = plateau(["synth-sae", os.path.join(d, "sae_bad"), "--model", model, "--hook", name, "--d-sae", "8"])
    refused(f"synth-sae --hook {name!r}", r, "--hook", name, code=1)
sae = os.path.join(d, "sae")
r = plateau(["synth-sae", sae, "--model", model, "--hook", "blocks.01.hook_resid_pre", "--d-sae", "8"])
check(r.returncode == 0, f"synth-sae blocks.01: {r.stderr}")
with open(os.path.join(sae, "cfg.json")) as f:
    cfg = json.load(f)
check(cfg["hook_name"] == "blocks.1.hook_resid_pre", f"synth-sae wrote hook_name {cfg['hook_name']!r}")
# an SAE whose cfg.json spells its hook blocks.01 reads blocks.1 (the run's sae_hook attribute); one
# whose hook is blocks.+1 is refused by the run, naming the SAE
cfg["hook_name"] = "blocks.01.hook_resid_pre"
with open(os.path.join(sae, "cfg.json"), "w") as f:
    json.dump(cfg, f)
sae_run = ["--quiet", "--set", "sae.path=" + sae, "--set", "perturb.hook=blocks.1.hook_resid_pre",
           "--set", "perturb.directions=sae_active", "--set", "readout.metrics=kl"]
r = sl.run([ini] + sae_run + ["-o", os.path.join(d, "sae01.nc")])
check(r.returncode == 0, f"run with an SAE at blocks.01: {r.stderr}")
with netCDF4.Dataset(os.path.join(d, "sae01.nc")) as ds:
    check(ds.getncattr("sae_hook") == "blocks.1.hook_resid_pre", f"sae_hook {ds.getncattr('sae_hook')!r}")
cfg["hook_name"] = "blocks.+1.hook_resid_pre"
with open(os.path.join(sae, "cfg.json"), "w") as f:
    json.dump(cfg, f)
r = sl.run([ini] + sae_run + ["-o", os.path.join(d, "saeplus.nc")])
refused("run with an SAE at blocks.+1", r, "[sae] path", "blocks.+1.hook_resid_pre")
check(not os.path.exists(os.path.join(d, "saeplus.nc")), "a refused SAE run wrote its output")
print("ok   synth-sae --hook and an SAE's cfg.json hook go through the same parser")
print(f"config values tests passed ({checks} checks)")
