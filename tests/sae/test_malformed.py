"""Malformed SAE dirs and SAE config errors: each exits 2 with a one-line message naming the file, key or
tensor and what is wrong (and never hangs: a FIFO in the weights' place is refused at once). The config
errors, the checks against the model and a sample of the dir errors go through `plateau run` (one of them
on two MPI ranks: exit 2, the message once); the other dir errors through tests/sae/sae_probe.c, which
opens an SAE with the same code (pl_sae_open) without the cost of starting MPI for each."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
sys.path.insert(0, os.path.dirname(__file__))
import ref_sae  # noqa: E402
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
PROBE = sys.argv[2]
C, F, HOOK = 32, 48, "blocks.1.hook_resid_pre"
model = sl.make_model(d, embd=C)
data = sl.make_bin(d, 8 * 120, 300)
rng = np.random.default_rng(1)
GOOD_T = {"W_enc": rng.standard_normal((C, F)), "b_enc": rng.standard_normal(F), "W_dec": rng.standard_normal((F, C)),
          "b_dec": rng.standard_normal(C), "threshold": np.abs(rng.standard_normal(F))}
GOOD_CFG = {"architecture": "jumprelu", "d_in": C, "d_sae": F, "hook_name": HOOK, "apply_b_dec_to_input": True,
            "normalize_activations": "none"}


def sae_dir(name, cfg=None, tensors=None, dtype="F32"):
    path = os.path.join(d, name)
    shutil.rmtree(path, ignore_errors=True)
    return ref_sae.write_sae(path, GOOD_CFG if cfg is None else cfg, GOOD_T if tensors is None else tensors, dtype)


def without(dct, key):
    return {k: v for k, v in dct.items() if k != key}


def config(sae_path, **over):
    keys = dict(data__n_prompts=6, data__n_ctx=8, perturb__directions="sae_active, cov_random", perturb__steps=5,
                perturb__cov_prompts=40, perturb__bases="real", perturb__n_directions=1, output__bootstrap=0,
                sae__path=sae_path)
    keys.update(over)
    return sl.base_config(model, data, os.path.join(d, "out.nc"), **keys)


n_cases = 0


def expect(label, sae_path, pattern, mpi=0, run=False, **over):
    """Exit 2 and one line matching PATTERN: through `plateau run` (RUN, MPI ranks) or the probe."""
    global n_cases
    if run or mpi or over:
        ini = sl.write_ini(os.path.join(d, label + ".ini"), config(sae_path, **over))
        r = sl.run([ini, "--quiet"], mpi=mpi, timeout=60)
    else:
        np.zeros(C, "<f4").tofile(os.path.join(d, "row.f32"))
        r = subprocess.run([PROBE, sae_path, str(C), "1", os.path.join(d, "row.f32"), os.path.join(d, "probe.out")],
                           capture_output=True, text=True, timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and (not mpi or ln.startswith("plateau"))]
    if r.returncode != 2 or len(lines) != 1 or not re.search(pattern, lines[0]):
        sl.fail("%s: want exit 2 and one line matching %r, got exit %d:\n%s" % (label, pattern, r.returncode, r.stderr))
    if os.path.exists(os.path.join(d, "out.nc")):
        sl.fail("%s: an output was written" % label)
    n_cases += 1
    print("ok %-22s %-5s %s" % (label, "run" if run or mpi or over else "probe", lines[0]))


good = sae_dir("good")
r = sl.run([sl.write_ini(os.path.join(d, "good.ini"), config(good)), "--quiet"])
if r.returncode != 0:
    sl.fail("the good SAE dir fails: " + r.stderr)
os.unlink(os.path.join(d, "out.nc"))

# the dir and its files
expect("missing_dir", os.path.join(d, "nowhere"), r"\[sae\] path = .*nowhere: .*nowhere: cannot open SAE dir",
       run=True)
open(os.path.join(d, "a_file"), "w").close()
expect("not_a_dir", os.path.join(d, "a_file"), r"a_file: not a directory \(an SAE is a SAELens dir")
p = sae_dir("no_cfg")
os.unlink(os.path.join(p, "cfg.json"))
expect("no_cfg", p, r"no_cfg/cfg\.json: cannot open")
p = sae_dir("bad_json")
open(os.path.join(p, "cfg.json"), "w").write("{\"d_in\": 32,")
expect("bad_json", p, r"bad_json/cfg\.json: line 1")
p = sae_dir("no_weights")
os.unlink(os.path.join(p, "sae_weights.safetensors"))
expect("no_weights", p, r"no_weights/sae_weights\.safetensors: cannot open")
p = sae_dir("fifo_weights")
os.unlink(os.path.join(p, "sae_weights.safetensors"))
os.mkfifo(os.path.join(p, "sae_weights.safetensors"))
expect("fifo_weights", p, r"fifo_weights/sae_weights\.safetensors: is a FIFO, not a regular file", run=True)
p = sae_dir("truncated")
w = os.path.join(p, "sae_weights.safetensors")
open(w, "r+b").truncate(os.path.getsize(w) - 100)
expect("truncated_weights", p, r"truncated/sae_weights\.safetensors: ")

# cfg.json
expect("no_d_in", sae_dir("no_d_in", without(GOOD_CFG, "d_in")), r"cfg\.json: 'd_in' is missing")
expect("d_sae_string", sae_dir("d_sae_string", dict(GOOD_CFG, d_sae="48")), r"'d_sae' must be an integer in 1\.\.")
expect("d_in_not_width", sae_dir("d_in_48", dict(GOOD_CFG, d_in=48)),
       r"cfg\.json: d_in is 48, but the model's residual width is 32", run=True)
expect("hook_mismatch", sae_dir("hook0", dict(GOOD_CFG, hook_name="blocks.0.hook_resid_pre")),
       r"the SAE reads blocks\.0\.hook_resid_pre \(cfg\.json\), but \[perturb\] hook is blocks\.1\.hook_resid_pre",
       run=True)
expect("hook_not_residual", sae_dir("hook_mlp", dict(GOOD_CFG, hook_name="blocks.1.hook_mlp_out")),
       r"cfg\.json's hook is not a residual-stream hook of this model: hook 'blocks\.1\.hook_mlp_out'", run=True)
expect("no_hook", sae_dir("no_hook", without(GOOD_CFG, "hook_name")), r"cfg\.json: no hook name")
expect("hooks_disagree", sae_dir("hooks2", dict(GOOD_CFG, metadata={"hook_name": "blocks.0.hook_resid_pre"})),
       r"'hook_name' is 'blocks\.1\.hook_resid_pre' but 'metadata\.hook_name' is 'blocks\.0\.hook_resid_pre'")
expect("head_index", sae_dir("head", dict(GOOD_CFG, hook_head_index=3)), r"'hook_head_index' is set")
expect("gated", sae_dir("gated", dict(GOOD_CFG, architecture="gated")), r"architecture 'gated' is not implemented")
expect("tanh_relu", sae_dir("tanh", dict(GOOD_CFG, architecture="standard", activation_fn="tanh-relu"),
                            without(GOOD_T, "threshold")), r"'activation_fn' 'tanh-relu' is not implemented")
expect("topk_no_k", sae_dir("topk_no_k", dict(GOOD_CFG, architecture="topk"), without(GOOD_T, "threshold")),
       r"a topk SAE needs 'k'")
expect("topk_k_big", sae_dir("topk_k_big", dict(GOOD_CFG, architecture="topk", k=49), without(GOOD_T, "threshold")),
       r"k = 49 is more than d_sae = 48")
expect("topk_k_disagree", sae_dir("topk_k2", dict(GOOD_CFG, architecture="topk", k=4, activation_fn_kwargs={"k": 5}),
                                  without(GOOD_T, "threshold")), r"'k' is 4 but activation_fn_kwargs\.k is 5")
expect("norm_expected_avg", sae_dir("norm_avg", dict(GOOD_CFG, normalize_activations="expected_average_only_in")),
       r"normalize_activations 'expected_average_only_in' scales inputs .* the dir does not hold", run=True)
expect("norm_unknown", sae_dir("norm_x", dict(GOOD_CFG, normalize_activations="batch_norm")),
       r"normalize_activations 'batch_norm' is not implemented")
expect("finetuning_scale", sae_dir("fsf", dict(GOOD_CFG, finetuning_scaling_factor=True)),
       r"'finetuning_scaling_factor' is true")

# sae_weights.safetensors
expect("jumprelu_no_threshold", sae_dir("no_threshold", tensors=without(GOOD_T, "threshold")),
       r"tensor 'threshold' is missing: a jumprelu SAE needs one threshold per feature", run=True)
expect("no_b_enc", sae_dir("no_b_enc", tensors=without(GOOD_T, "b_enc")), r"tensor 'b_enc' is missing")
expect("W_enc_transposed", sae_dir("w_enc_t", tensors=dict(GOOD_T, W_enc=GOOD_T["W_enc"].T)),
       r"tensor 'W_enc' has shape \[48, 32\], expected \[32, 48\]")
expect("W_dec_short", sae_dir("w_dec_short", tensors=dict(GOOD_T, W_dec=GOOD_T["W_dec"][:, :31])),
       r"tensor 'W_dec' has shape \[48, 31\], expected \[48, 32\]")
expect("threshold_2d", sae_dir("thr2d", tensors=dict(GOOD_T, threshold=GOOD_T["threshold"][None])),
       r"tensor 'threshold' has shape \[1, 48\], expected \[48\]")
bad = GOOD_T["W_dec"].copy()
bad[3, 5] = np.nan
expect("nan_W_dec", sae_dir("nan", tensors=dict(GOOD_T, W_dec=bad)), r"tensor 'W_dec': element 101 is NaN",
       run=True)
bad = GOOD_T["b_dec"].copy()
bad[2] = np.inf
expect("inf_b_dec_f16", sae_dir("inf", tensors=dict(GOOD_T, b_dec=bad), dtype="F16"),
       r"tensor 'b_dec': element 2 is infinite")
expect("unexpected_tensor", sae_dir("extra", tensors=dict(GOOD_T, log_threshold=GOOD_T["threshold"])),
       r"unexpected tensor 'log_threshold' \(a jumprelu SAE has W_enc, b_enc, W_dec, b_dec, threshold\)")
expect("scaling_factor", sae_dir("scale", tensors=dict(GOOD_T, scaling_factor=np.full(F, 2.0))),
       r"tensor 'scaling_factor' is not all ones \(element 0 is 2\)")
p = sae_dir("int_weights")
ref_sae.write_safetensors(os.path.join(p, "sae_weights.safetensors"),
                          [(k, "I32" if k == "b_dec" else "F32", v.astype("<i4" if k == "b_dec" else "<f4"))
                           for k, v in GOOD_T.items()])
expect("int_dtype", p, r"tensor 'b_dec' is I32 \(expected F32, F16, BF16 or F64\)")

# the config's [sae] keys and what the kinds and readouts need
expect("fraction_1", good, r"\[sae\] active_fraction: '1' is not a fraction in \[0, 1\)", sae__active_fraction=1)
expect("sign", good, r"\[sae\] sign: 'up' is not one of negative, positive", sae__sign="up")
expect("sha_format", good, r"\[sae\] sha256: 'abc' is not a sha256", sae__sha256="abc")
expect("sha_pin", good, r"\[sae\] sha256 = 0{64}, but the SAE in .*good has sha256 [0-9a-f]{64}", sae__sha256="0" * 64)
# the basis the SAE was trained in, when cfg.json says (SAELens: model_from_pretrained_kwargs, top level or
# under metadata): the other residual_basis would feed it shifted vectors
raw_sae = sae_dir("trained_raw", dict(GOOD_CFG, model_from_pretrained_kwargs={"center_writing_weights": False}))
expect("basis_trained_raw", raw_sae, r"\[sae\] path = .*trained_raw: cfg.json's model_from_pretrained_kwargs has "
       r"center_writing_weights = false .* residual_basis is centered .*: set residual_basis = raw",
       perturb__residual_basis="centered")
cen_sae = sae_dir("trained_centred", dict(GOOD_CFG, metadata={"model_from_pretrained_kwargs": {"center_writing_weights": True}}))
expect("basis_trained_centred", cen_sae, r"center_writing_weights = true .* residual_basis is raw .*: set residual_basis = "
       r"centered", perturb__residual_basis="raw")
for label, path, basis in [("trained raw", raw_sae, "raw"), ("trained centred", cen_sae, "centered")]:
    r = sl.run([sl.write_ini(os.path.join(d, "basis_ok.ini"), config(path, perturb__residual_basis=basis)), "--quiet"])
    if r.returncode != 0:
        sl.fail("SAE %s, residual_basis = %s: refused: %s" % (label, basis, r.stderr))
    os.unlink(os.path.join(d, "out.nc"))
    print("ok SAE %s runs with residual_basis = %s" % (label, basis))
expect("kind_without_sae", "", r"\[perturb\] directions: sae_active needs an SAE: set \[sae\] path", run=True)
expect("readout_without_sae", "", r"\[readout\] metrics: sae_recon_error needs an SAE",
       perturb__directions="cov_random", readout__metrics="kl, sae_recon_error")
expect("scale_off_grid", good, r"\[perturb\] directions: sae_feature_scale needs alpha = 1 \(its base\) on the alpha grid",
       perturb__directions="sae_feature_scale", perturb__alpha_max=2, perturb__steps=4)
expect("scale_fixed_norm", good, r"\[perturb\] step_mode: sae_feature_scale needs step_mode = to_target",
       perturb__directions="sae_feature_scale", perturb__step_mode="fixed_norm")
# -o naming the SAE's weights: refused before any work, the weights untouched (the check of a model
# series' other models took the SAE's check as its loop's else: a single-model run overwrote them)
sae_w = os.path.join(good, "sae_weights.safetensors")
with open(sae_w, "rb") as f:
    sae_w_before = f.read()
expect("output_is_sae_weights", good, r"\[output\] path .*good/sae_weights\.safetensors is an input of this run "
       r"\(the SAE's file", output__path=sae_w)
with open(sae_w, "rb") as f:
    if f.read() != sae_w_before:
        sl.fail("output_is_sae_weights: the SAE's weights were changed")
if sl.shutil.which("mpirun"):
    expect("two_ranks", sae_dir("d_in_48_mpi", dict(GOOD_CFG, d_in=48)), r"d_in is 48, but the model's residual width",
           mpi=2)
print("%d malformed SAE dirs and config errors: exit 2 with the message" % n_cases)
print("SAE malformed tests passed")
