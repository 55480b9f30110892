"""plateau synth: the model dir is complete and loadable, f16/bf16 dirs hold the f32 dir's weights
rounded to nearest even (checked in numpy), weights have GPT-2's scale, output is deterministic per
seed, HF's quirks only rename, the synthetic tokenizer is a well-formed byte-level BPE, and each
family option lands in its config.json key (an option the family ignores is refused, exit 2)."""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

work = tempfile.mkdtemp(prefix="plateau-synth-")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


L, C, H, N, V = 3, 32, 4, 16, 400
dirs = {}
for dt in ("f32", "f16", "bf16"):
    dirs[dt] = os.path.join(work, dt)
    stio.synth(dirs[dt], "--dtype", dt, "--seed", "11", layers=L, embd=C, heads=H, ctx=N, vocab=V)

# ---- the files and the header ----
for dt, d in dirs.items():
    check(sorted(os.listdir(d)) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"],
          f"{dt}: dir holds exactly config.json, merges.txt, model.safetensors, vocab.json ({sorted(os.listdir(d))})")
raw = open(os.path.join(dirs["f32"], "model.safetensors"), "rb").read()
hlen = int.from_bytes(raw[:8], "little")
check((8 + hlen) % 8 == 0, "header padded so the data section is 8-byte aligned")
h32, d32 = stio.read(os.path.join(dirs["f32"], "model.safetensors"))
names = [k for k in h32 if k != "__metadata__"]
check(h32.get("__metadata__") == {"format": "pt"}, "__metadata__ is {format: pt}")
expected = {"wte.weight": [V, C], "wpe.weight": [N, C], "ln_f.weight": [C], "ln_f.bias": [C]}
for l in range(L):
    expected.update({f"h.{l}.ln_1.weight": [C], f"h.{l}.ln_1.bias": [C], f"h.{l}.attn.c_attn.weight": [C, 3 * C],
                     f"h.{l}.attn.c_attn.bias": [3 * C], f"h.{l}.attn.c_proj.weight": [C, C],
                     f"h.{l}.attn.c_proj.bias": [C], f"h.{l}.ln_2.weight": [C], f"h.{l}.ln_2.bias": [C],
                     f"h.{l}.mlp.c_fc.weight": [C, 4 * C], f"h.{l}.mlp.c_fc.bias": [4 * C],
                     f"h.{l}.mlp.c_proj.weight": [4 * C, C], f"h.{l}.mlp.c_proj.bias": [C]})
check({k: h32[k]["shape"] for k in names} == expected, "tensor names and Conv1D [in, out] shapes of HF's GPT-2")
spans = sorted(tuple(h32[k]["data_offsets"]) for k in names)
check(spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and spans[-1][1] == len(d32),
      "tensors tile the data section exactly")

# ---- config.json ----
cfg = json.load(open(os.path.join(dirs["f32"], "config.json")))
want = {"model_type": "gpt2", "n_layer": L, "n_embd": C, "n_head": H, "n_positions": N, "n_ctx": N,
        "vocab_size": V, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "plateau_synthetic": True}
check(all(cfg.get(k) == v for k, v in want.items()), f"config.json keys {want} (got {cfg})")

# ---- f16 / bf16 equal the f32 weights rounded to nearest even ----
h16, d16 = stio.read(os.path.join(dirs["f16"], "model.safetensors"))
hbf, dbf = stio.read(os.path.join(dirs["bf16"], "model.safetensors"))
ok16 = okbf = True
for k in names:
    w = stio.tensor_f32(h32, d32, k)
    a, b = h16[k]["data_offsets"]
    got16 = np.frombuffer(d16[a:b], dtype="<f2").reshape(w.shape)
    ok16 &= h16[k]["dtype"] == "F16" and np.array_equal(got16.view(np.uint16), w.astype(np.float16).view(np.uint16))
    # bf16 reference: of the two bf16 neighbours of w, the nearer; ties to the even one
    u = w.view(np.uint32).astype(np.uint64)
    lo = u & 0xFFFF0000
    hi = lo + 0x10000
    as_f = lambda bits: (bits.astype(np.uint32)).view(np.float32).astype(np.float64)  # noqa: E731
    dlo = np.abs(w.astype(np.float64) - as_f(lo))
    dhi = np.abs(as_f(hi) - w.astype(np.float64))
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (((lo >> 16) & 1) == 1))
    ref = (np.where(pick_hi, hi, lo) >> 16).astype(np.uint16)
    a, b = hbf[k]["data_offsets"]
    gotbf = np.frombuffer(dbf[a:b], dtype="<u2").reshape(w.shape)
    okbf &= hbf[k]["dtype"] == "BF16" and np.array_equal(gotbf, ref)
check(ok16, "f16 dir == f32 weights rounded by numpy's float16 cast, every tensor bit for bit")
check(okbf, "bf16 dir == f32 weights rounded to the nearer bf16 (ties to even), every tensor")

# ---- GPT-2-like scale, nonzero biases ----
def stat(name):
    return stio.tensor_f32(h32, d32, name).astype(np.float64)


wte = stat("wte.weight")
check(abs(wte.std() - 0.02) < 0.002 and abs(wte.mean()) < 0.002, f"wte ~ normal(0, 0.02) (std {wte.std():.4f})")
proj = np.concatenate([stat(f"h.{l}.mlp.c_proj.weight").ravel() for l in range(L)])
check(abs(proj.std() - 0.02 / np.sqrt(2 * L)) < 0.001, f"c_proj std ~ 0.02/sqrt(2L) = {0.02 / np.sqrt(2 * L):.4f} (got {proj.std():.4f})")
lnw = np.concatenate([stat(f"h.{l}.ln_1.weight") for l in range(L)])
check(abs(lnw.mean() - 1) < 0.03 and lnw.std() > 0.01, f"ln weights ~ 1 + noise (mean {lnw.mean():.3f}, std {lnw.std():.3f})")
bias = stat("h.0.attn.c_attn.bias")
check(np.all(bias != 0) and 0.005 < bias.std() < 0.05, f"biases small and nonzero (std {bias.std():.4f})")

# ---- deterministic per seed ----
again = os.path.join(work, "again")
stio.synth(again, "--dtype", "f32", "--seed", "11", layers=L, embd=C, heads=H, ctx=N, vocab=V)
other = os.path.join(work, "other")
stio.synth(other, "--dtype", "f32", "--seed", "12", layers=L, embd=C, heads=H, ctx=N, vocab=V)
same = all(open(os.path.join(again, f), "rb").read() == open(os.path.join(dirs["f32"], f), "rb").read()
           for f in os.listdir(again))
check(same, "same seed: byte-identical dir")
check(open(os.path.join(other, "model.safetensors"), "rb").read() != raw, "different seed: different weights")

# ---- HF quirks: prefix, tied lm_head, mask buffers; same values; loads ----
q = os.path.join(work, "quirks")
stio.synth(q, "--dtype", "f32", "--seed", "11", "--hf-quirks", layers=L, embd=C, heads=H, ctx=N - 1, vocab=V)
hq, dq = stio.read(os.path.join(q, "model.safetensors"))
check(all(k == "__metadata__" or k == "lm_head.weight" or k.startswith("transformer.") for k in hq),
      "quirks: every tensor but lm_head.weight carries 'transformer.'")
check(np.array_equal(stio.tensor_f32(hq, dq, "lm_head.weight"), stio.tensor_f32(hq, dq, "transformer.wte.weight")),
      "quirks: lm_head.weight == wte.weight")
mask = stio.tensor_f32(hq, dq, "transformer.h.1.attn.bias")
check(hq["transformer.h.1.attn.bias"]["dtype"] == "BOOL" and mask.shape == (1, 1, N - 1, N - 1)
      and np.array_equal(mask[0, 0], np.tril(np.ones((N - 1, N - 1), np.float32))),
      "quirks: h.N.attn.bias is HF's lower-triangular causal mask [1, 1, N, N]")
check(np.array_equal(stio.tensor_f32(hq, dq, "transformer.h.2.mlp.c_fc.weight"), stat("h.2.mlp.c_fc.weight")),
      "quirks: same values as without quirks")
p = stio.run(["info", q])
check(p.returncode == 0 and "ignored buffers" in p.stdout and "tied lm_head" in p.stdout,
      f"quirks dir loads (odd N makes later F32 tensors unaligned) ({p.returncode}: {p.stderr.strip()})")

# ---- info agrees with the file ----
p = stio.run(["info", dirs["bf16"]])
info = dict(ln.split(None, 1) for ln in p.stdout.splitlines())
n_params = sum(int(np.prod(h32[k]["shape"])) for k in names)
check(p.returncode == 0 and int(info["params"]) == n_params, f"info params == {n_params} counted in numpy ({info.get('params')})")
check(info.get("synthetic", "").startswith("yes") and info.get("dtypes") == f"BF16 x{len(names)}"
      and int(info["file_bytes"]) == os.path.getsize(os.path.join(dirs["bf16"], "model.safetensors")),
      f"info: synthetic yes, dtypes, file size ({info})")

# ---- the synthetic tokenizer ----
vocab = json.load(open(os.path.join(dirs["f32"], "vocab.json")))
merges = open(os.path.join(dirs["f32"], "merges.txt"), encoding="utf-8").read().splitlines()
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
byte_tokens = [chr(c) for c in cs]  # GPT-2's bytes_to_unicode, in id order
check(len(vocab) == V and sorted(vocab.values()) == list(range(V)), f"vocab.json: {V} tokens, ids 0..{V - 1}")
check([t for t, i in sorted(vocab.items(), key=lambda kv: kv[1])[:256]] == byte_tokens,
      "ids 0..255 are the 256 byte tokens in bytes_to_unicode order")
check(vocab.get("<|endoftext|>") == V - 1, "<|endoftext|> is the last id")
check(merges[0].startswith("#version") and len(merges) - 1 == V - 257, f"merges.txt: header + {V - 257} merges")
ok = True
for i, line in enumerate(merges[1:]):
    a, b = line.split(" ")
    ok &= a in vocab and b in vocab and vocab[a] < 256 + i and vocab[b] < 256 + i and vocab.get(a + b) == 256 + i
check(ok, "every merge joins two earlier tokens into the next id")

# ---- --vocab-from copies the tokenizer and sets V ----
shared = os.environ.get("PLATEAU_SHARED_DIR", "")
gpt2_tok = os.path.join(shared, "gpt2")
if os.path.isfile(os.path.join(gpt2_tok, "vocab.json")):
    vf = os.path.join(work, "vocab_from")
    stio.synth(vf, "--vocab-from", gpt2_tok, layers=1, embd=8, heads=2, ctx=4)
    same = all(open(os.path.join(vf, f), "rb").read() == open(os.path.join(gpt2_tok, f), "rb").read()
               for f in ("vocab.json", "merges.txt"))
    cfg = json.load(open(os.path.join(vf, "config.json")))
    hv, _ = stio.read(os.path.join(vf, "model.safetensors"))
    check(same and cfg["vocab_size"] == 50257 and hv["wte.weight"]["shape"] == [50257, 8],
          "--vocab-from: vocab.json/merges.txt copied byte for byte, V = 50257")
else:
    print(f"skip --vocab-from part: {gpt2_tok} not present")

# ---- usage errors: exit 1, nothing written ----
for args, msg in [(["--embd", "16", "--heads", "4", "--ctx", "8"], "are required"),
                  (["--layers", "1", "--embd", "10", "--heads", "3", "--ctx", "8"], "not divisible"),
                  (["--layers", "1", "--embd", "8", "--heads", "2", "--ctx", "8", "--dtype", "f8"], "--dtype"),
                  (["--layers", "1", "--embd", "8", "--heads", "2", "--ctx", "8", "--vocab", "100"], "--vocab"),
                  (["--layers", "x", "--embd", "8", "--heads", "2", "--ctx", "8"], "--layers"),
                  (["--layers", "1", "--embd", "8", "--heads", "2", "--ctx", "8", "--vocab", "300",
                    "--vocab-from", work], "exclude")]:
    out = os.path.join(work, "usage")
    p = stio.run(["synth", out] + args)
    check(p.returncode == 1 and msg in p.stderr and not os.path.exists(out),
          f"synth {' '.join(args)}: exit 1 mentioning {msg!r} ({p.returncode}: {p.stderr.strip()})")
p = stio.run(["synth", os.path.join(work, "nope", "deeper"), "--layers", "1", "--embd", "8", "--heads", "2",
              "--ctx", "4", "--vocab", "300"])
check(p.returncode == 2 and "cannot create directory" in p.stderr, f"unwritable OUT_DIR: exit 2 ({p.stderr.strip()})")

# ---- family options: each lands in its own config.json key; one the family ignores is refused ----
base = ["--layers", "1", "--embd", "16", "--heads", "2", "--ctx", "8", "--vocab", "300"]
out = os.path.join(work, "neox")
for args, want in ((["--rotary-pct", "0.5"], {"rotary_pct": 0.5, "rotary_emb_base": 10000.0}),
                   (["--rope-theta", "7"], {"rotary_pct": 0.25, "rotary_emb_base": 7.0})):
    p = stio.run(["synth", out, "--force", "--family", "gpt_neox"] + base + args)
    cfg = json.load(open(os.path.join(out, "config.json"))) if p.returncode == 0 else {}
    got = {k: cfg.get(k) for k in want}
    check(got == want, f"synth --family gpt_neox {' '.join(args)}: config.json {got} (want {want}; {p.stderr.strip()})")
p = stio.run(["synth", out, "--force", "--family", "gpt_neox"] + base + ["--rotary-pct", "7"])
check(p.returncode == 1 and "--rotary-pct: '7' is not a fraction" in p.stderr,
      f"synth --rotary-pct 7: exit 1, not a fraction ({p.returncode}: {p.stderr.strip()})")
for family, args in (("llama", ["--sliding-window", "4"]), ("gemma2", ["--attention-bias"]),
                     ("gpt2", ["--rope-scaling", "llama3:8:1:4:8"]), ("llama", ["--rotary-pct", "0.5"]),
                     ("mistral", ["--sequential-residual"]), ("gpt2", ["--rope-theta", "500000"]),
                     ("llama", ["--hf-quirks"])):
    out = os.path.join(work, "ignored-" + family)
    p = stio.run(["synth", out, "--family", family] + base + args)
    check(p.returncode == 2 and f"{args[0]} does not apply to --family {family}" in p.stderr and
          not os.path.exists(os.path.join(out, "config.json")),
          f"synth --family {family} {' '.join(args)}: exit 2, refused by name ({p.returncode}: {p.stderr.strip()})")

shutil.rmtree(work)
print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
