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

# --- [fisher] and [optimize]: hostile numbers refused by name, from --set and from the file --------------
# (each a one-line exit 2 naming the key and the value; --dry-run refuses what the run would)
opt_ini = write("opt.ini", open(ini).read().replace("[perturb]\n", "[perturb]\ndirections = fisher, optimized\n"
                                                     "step_mode = absolute\nn_directions = 2\n")
                + "[fisher]\nk = 2\n[optimize]\nradius_alpha = 1\nstarts = 2\nmax_iterations = 5\n")
garbage = ["nan", "NaN", "inf", "-inf", "1e300", "-1", "2147483648", "9223372036854775808", "18446744073709551616",
           "abc", "1.5x", "", "0x10", "3 4"]
hostile = {("fisher", "k"): (garbage + ["4097"], "is not an integer in [0, 4096]"),
           ("fisher", "n_pcs"): (garbage + ["4097"], "is not an integer in [0, 4096]"),
           ("optimize", "starts"): (garbage + ["0", "4097"], "is not an integer in [1, 4096]"),
           ("optimize", "max_iterations"): (garbage + ["0", "1000001"], "is not an integer in [1, 1000000]"),
           ("optimize", "tolerance"): ([g for g in garbage if g != "0x10"] + ["0", "1"], "is not a number in (0, 1)"),
           ("optimize", "distinct_cos"): ([g for g in garbage if g != "0x10"] + ["0", "1.0000001"],
                                          "is not a number in (0, 1]"),
           # 1e300 (and anything past 1e6) overflowed the float32 steps: the run stopped on "the objective is
           # not finite", naming no key
           ("optimize", "radius_alpha"): ([g for g in garbage if g != "0x10"] + ["0", "1e7", "1e39"],
                                          "is not a number in (0, 1000000] or 'none'")}
n_hostile = 0
opt_text = open(opt_ini).read()
for (sec, key), (values, why) in hostile.items():
    for v in values:
        name = "[%s] %s" % (sec, key)
        refused("config --set %s.%s=%r" % (sec, key, v), plateau(["config", opt_ini, "--set", "%s.%s=%s" % (sec, key, v)]),
                name, "'%s' %s" % (v.strip(), why))
        lines = [line for line in opt_text.splitlines() if not line.startswith(key + " =")]
        at = lines.index("[%s]" % sec) + 1
        bad = write("hostile.ini", "\n".join(lines[:at] + ["%s = %s" % (key, v)] + lines[at:]) + "\n")
        # the file through the one resolver (plateau config); `run --dry-run` too for each key's first value
        # (the same resolver behind a heavier start: every value that way made this the longest ASan test)
        refused("config with %s = %r in the file" % (name, v), plateau(["config", bad]),
                "hostile.ini:%d: %s" % (at + 1, name), "'%s' %s" % (v.strip(), why))
        if v == values[0]:
            refused("run --dry-run with %s = %r in the file" % (name, v), sl.run([bad, "--dry-run"]),
                    "hostile.ini:%d: %s" % (at + 1, name), "'%s' %s" % (v.strip(), why))
        n_hostile += 2
# a radius whose float32 steps are all zero (1e-300: x + δ = x, the normalised gradient 0/0, "the objective
# is not finite" naming no key): under absolute refused at the setup (and --dry-run); under fixed_norm,
# where it is radius_alpha times norm_scale times each base's norm, by the optimiser's setup, exit 2 naming
# the key, in a one-position and a whole-context run; nothing written
never = os.path.join(d, "never_opt.nc")
for extra in ([], ["--dry-run"]):
    refused("radius_alpha = 1e-300 (absolute) %s" % extra,
            sl.run([opt_ini, "--quiet", "-o", never, "--set", "optimize.radius_alpha=1e-300"] + extra),
            "--set optimize.radius_alpha=1e-300: [optimize] radius_alpha = 1e-300", "below the smallest radius")
tiny = ["--set", "optimize.radius_alpha=1e-30", "--set", "perturb.step_mode=fixed_norm", "--set",
        "perturb.norm_scale=1e-10"]
# (not a non-finite value: nonfinite = mark does not turn it into NaN optima)
for where in ([], ["--set", "perturb.position=4:8"], ["--set", "run.nonfinite=mark"]):
    refused("radius_alpha 1e-30 x norm_scale 1e-10 (fixed_norm) %s" % where,
            sl.run([opt_ini, "--quiet", "-o", never] + tiny + where),
            "the Fisher metric and optima at the base: [optimize] radius_alpha = 1e-30",
            "below the smallest float32 step")
    n_hostile += 1
if sl.shutil.which("mpirun"):  # on 2 ranks every rank exits, 2
    r = sl.run([opt_ini, "--quiet", "-o", never] + tiny, mpi=2)
    check(r.returncode == 2 and "[optimize] radius_alpha = 1e-30" in r.stderr,
          "2 ranks, radius 1e-30 x 1e-10: exit %d: %s" % (r.returncode, r.stderr))
check(not [f for f in os.listdir(d) if f.startswith("never_opt")], "a refused run wrote its output or a checkpoint")
# the bounds themselves run
r = sl.run([opt_ini, "--quiet", "-o", os.path.join(d, "opt_ok.nc"), "--set", "optimize.radius_alpha=1e6",
            "--set", "optimize.tolerance=1e-300", "--set", "optimize.distinct_cos=1", "--set", "fisher.n_pcs=4096"])
check(r.returncode == 0, "radius_alpha 1e6, tolerance 1e-300, distinct_cos 1, n_pcs 4096: %s" % r.stderr)
print("ok   %d hostile [fisher] and [optimize] values refused by name (--set, the file, --dry-run, the runs)"
      % n_hostile)

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
