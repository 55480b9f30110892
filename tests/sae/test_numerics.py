"""The SAE's encoding, decoding and readouts against an independent numpy SAE (tests/sae/ref_sae.py).

SAEs of all three architectures: made by `plateau synth-sae`, and written by numpy in the other forms a
SAELens dir takes (F16 and F64 weights; apply_b_dec_to_input false; normalize_activations
constant_norm_rescale and layer_norm; SAELens 6's metadata.hook_name, the older hook_point and
activation_fn_str topk with activation_fn_kwargs.k; an all-ones scaling_factor). Rows: real activations
of the model at the hook (numpy forward) and random ones around them. The probe (tests/sae/sae_probe.c)
runs plateau's code: one encode over all rows (sgemm), one per row (sgemv), the decode and the readouts.
Entries whose activity float32 rounding could flip (pre-activation within 1e-4 of 0, the threshold or
the k-th largest) are left out of the set comparison, and rows holding one out of the reconstruction
comparison; integer-valued SAEs and rows, where float32 is exact, check exact ties and boundaries: the
TopK tie rule (lower feature index), pre == threshold and pre == 0 inactive.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sweep"))
sys.path.insert(0, os.path.dirname(__file__))
import ref_sae  # noqa: E402
import sweeplib as sl  # noqa: E402
from ref_gpt2 import GPT2  # noqa: E402

d = sl.workdir(sys.argv)
PROBE = sys.argv[2]
C, HOOK = 32, "blocks.1.hook_resid_pre"
model_dir = sl.make_model(d, layers=2, embd=C)
model = GPT2(model_dir)
rng = np.random.default_rng(7)
real = np.concatenate([model.forward(rng.integers(0, 300, 8))[0][1] for _ in range(3)])  # [24, C] at the hook
rows = np.concatenate([real, real.mean(0) + real.std(0) * rng.standard_normal((16, C))]).astype(np.float32)


def synth(name, arch, extra=()):
    out = os.path.join(d, name)
    r = subprocess.run([sl.BIN, "synth-sae", out, "--model", model_dir, "--hook", HOOK, "--d-sae", "96",
                        "--architecture", arch, "--seed", "3"] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("synth-sae %s: %s" % (arch, r.stderr))
    return out


def probe(sae_dir, x):
    inp, outp = os.path.join(d, "in.f32"), os.path.join(d, "out.bin")
    x.astype("<f4").tofile(inp)
    r = subprocess.run([PROBE, sae_dir, str(C), str(len(x)), inp, outp], capture_output=True, text=True)
    if r.returncode != 0:
        sl.fail("probe %s: %s" % (sae_dir, r.stderr))
    raw = open(outp, "rb").read()
    N, F = len(x), json.load(open(os.path.join(sae_dir, "cfg.json")))["d_sae"]
    f32 = np.frombuffer(raw[: 4 * (2 * N * F + N * C + 2 * N)], "<f4").astype(np.float64)
    f64 = np.frombuffer(raw[4 * (2 * N * F + N * C + 2 * N):], "<f8")
    parts = np.split(f32, np.cumsum([N * F, N * F, N * C, N]))
    return {"acts": parts[0].reshape(N, F), "acts1": parts[1].reshape(N, F), "recon": parts[2].reshape(N, C),
            "gain": parts[3], "shift": parts[4], "l0": f64[:N], "err": f64[N:]}


def check(label, sae_dir, x, exact=False):
    ref = ref_sae.SAE(sae_dir)
    got = probe(sae_dir, x)
    x64 = x.astype(np.float64)
    pre, gain, shift = ref.pre(x64)
    acts = ref.activate(pre)
    recon = ref.decode(acts, gain, shift)
    amb = np.zeros_like(pre, bool) if exact else ref.ambiguous(pre, 1e-4 * np.abs(pre).max())
    clean_rows = ~amb.any(1)
    for key in ("acts", "acts1"):
        g = got[key]
        if not np.array_equal((g > 0) & ~amb, (acts > 0) & ~amb):
            i = np.argwhere(((g > 0) != (acts > 0)) & ~amb)[0]
            sl.fail("%s: %s: feature %d of row %d active %s, numpy says %s (pre %r)"
                    % (label, key, i[1], i[0], g[tuple(i)] > 0, acts[tuple(i)] > 0, pre[tuple(i)]))
        scale = np.abs(acts).max()
        err = np.abs(np.where(amb, 0, g - acts)).max() / scale
        if not (err == 0 if exact else err < 1e-5):
            sl.fail("%s: %s differ from numpy by %.3g of their scale" % (label, key, err))
    for key, want in (("gain", gain), ("shift", shift)):
        if not np.allclose(got[key], want, rtol=1e-6, atol=1e-6 * np.abs(x64).max()):
            sl.fail("%s: %s %s vs numpy %s" % (label, key, got[key][:4], want[:4]))
    n = int(clean_rows.sum())
    if n < len(x) // 2:
        sl.fail("%s: only %d of %d rows free of near-boundary pre-activations: the test checks too little"
                % (label, n, len(x)))
    scale = np.abs(recon).max()
    rec_err = np.abs(got["recon"][clean_rows] - recon[clean_rows]).max() / scale
    if not (rec_err == 0 if exact else rec_err < 1e-5):
        sl.fail("%s: reconstruction differs from numpy by %.3g of its scale" % (label, rec_err))
    l0 = (acts > 0).sum(1)
    if not np.array_equal(got["l0"][clean_rows], l0[clean_rows]):
        sl.fail("%s: sae_l0 %s vs numpy %s" % (label, got["l0"][:6], l0[:6]))
    err = np.linalg.norm(x64 - recon, axis=1)
    if not np.allclose(got["err"][clean_rows], err[clean_rows], rtol=2e-5, atol=1e-6 * scale):
        sl.fail("%s: sae_recon_error %s vs numpy %s" % (label, got["err"][:4], err[:4]))
    print("ok %-44s %s, L0 %.1f of %d, %d/%d rows without a near-boundary entry%s"
          % (label, ref.arch, l0.mean(), ref.d_sae, n, len(x), ", exact" if exact else ""))
    return ref


# 1. plateau synth-sae, all three architectures
dirs = {a: synth("synth-" + a, a, ["--k", "12"] if a == "topk" else []) for a in ("standard", "jumprelu", "topk")}
for arch, sd in dirs.items():
    check("synth-sae " + arch, sd, rows)

# 2. the other forms of a SAELens dir, from the synthetic weights
base, _ = ref_sae.read_safetensors(os.path.join(dirs["jumprelu"], "sae_weights.safetensors"))
w = {k: v[1] for k, v in base.items()}
common = {"d_in": C, "d_sae": 96, "dtype": "float32"}
std = {k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
variants = [
    ("standard, F16, no b_dec on input, const-norm", dict(common, architecture="standard", hook_name=HOOK,
                                                         apply_b_dec_to_input=False,
                                                         normalize_activations="constant_norm_rescale"), std, "F16"),
    ("jumprelu, F64, layer_norm, metadata.hook_name", dict(common, architecture="jumprelu",
                                                          normalize_activations="layer_norm",
                                                          metadata={"hook_name": HOOK, "sae_lens_version": "6.5.1"}),
     dict(std, threshold=w["threshold"]), "F64"),
    ("topk pre-6: hook_point, activation_fn_str", dict(common, hook_point=HOOK, activation_fn_str="topk",
                                                      activation_fn_kwargs={"k": 5}, normalize_activations=False),
     std, "F32"),
    ("standard with an all-ones scaling_factor", dict(common, hook_name=HOOK), dict(std, scaling_factor=np.ones(96)),
     "F32"),
]
for i, (label, cfg, tensors, dtype) in enumerate(variants):
    check(label, ref_sae.write_sae(os.path.join(d, "variant-%d" % i), cfg, tensors, dtype), rows)

# 3. integers: float32 is exact, so ties and boundaries are decided exactly as numpy decides them
F = 40
wi = {"W_enc": rng.integers(-2, 3, (C, F)), "b_enc": rng.integers(-3, 4, F), "W_dec": rng.integers(-2, 3, (F, C)),
      "b_dec": rng.integers(-1, 2, C)}
xi = rng.integers(-3, 4, (30, C)).astype(np.float32)
for arch, extra in (("topk", {"k": 7}), ("jumprelu", {}), ("standard", {})):
    t = dict(wi, threshold=rng.integers(0, 4, F)) if arch == "jumprelu" else wi
    ref = check("integer-valued %s (exact ties)" % arch,
                ref_sae.write_sae(os.path.join(d, "int-" + arch), dict(common, d_sae=F, architecture=arch,
                                                                       hook_name=HOOK, **extra), t), xi, exact=True)
    pre = ref.pre(xi.astype(np.float64))[0]
    if arch == "topk":
        ties = sum(int((np.sort(r)[::-1][6] == np.sort(r)[::-1][7])) for r in pre)
        if ties < 5:
            sl.fail("the integer TopK test has only %d rows with a tie at the k-th value" % ties)
    if arch == "jumprelu" and not np.any(pre == ref.threshold):
        sl.fail("the integer JumpReLU test has no pre-activation equal to its threshold")
print("SAE numerics tests passed")
