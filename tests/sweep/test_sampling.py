"""Prompt sampling against a re-implementation in Python (tests/sweep/reference.py), and the
duplicate-partner case.

- random_window on a uint32 .bin token stream: keyed offsets, duplicates dropped and counted;
- document_start on a uint16 .bin whose windows repeat: duplicates dropped and counted;
- real_other and real_difference on prompts that share their first tokens, perturbed inside that shared
  prefix: the partners whose activation equals the base's are redrawn (the counts recorded), so no
  direction is zero and no score is NaN;
- random_window on WebText through GPT-2's tokenizer, documents joined by <|endoftext|>, against
  OpenAI's encoder.py algorithm (tests/tokenizer/gpt2_encoder_ref.py; needs ../shared, else skipped).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import reference as ref  # noqa: E402
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
V, T = 300, 8
model = sl.make_model(d, vocab=V)
P, COV = 12, 20


def sweep(name, data, **over):
    out = os.path.join(d, name + ".nc")
    keys = dict(data__n_prompts=P, data__n_ctx=T, data__seed=7, perturb__cov_prompts=COV, perturb__steps=5,
                perturb__bases="real", perturb__directions="real_other, real_difference", readout__metrics="kl",
                output__bootstrap=0)
    keys.update(over)
    cfg = sl.base_config(model, data, out, **keys)
    r = sl.run([sl.write_ini(os.path.join(d, name + ".ini"), cfg)])
    if r.returncode != 0:
        sl.fail("%s: %s" % (name, r.stderr))
    import netCDF4
    with netCDF4.Dataset(out) as ds:
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return sl.variables(out), attrs, r.stderr


# 1. random windows of a uint32 stream with period 40: at most 40 distinct windows, many duplicates
stream = np.tile(np.random.default_rng(1).integers(0, V, 40), 30).astype("<u4")
path32 = os.path.join(d, "stream32.bin")
stream.tofile(path32)
f, a, err = sweep("windows32", path32, data__sampling="random_window", data__token_dtype="uint32")
want, nxt, dup = ref.select_random_windows(stream.astype(np.int64), T, P + COV, 7)
if not np.array_equal(f["tokens"], np.array(want[:P])) or not np.array_equal(f["next_token"], nxt[:P]):
    sl.fail("random_window tokens differ from the keyed offsets")
if a["duplicate_prompts_dropped"] != dup or dup == 0 or a["sampling"] != "random_window":
    sl.fail("duplicates dropped %s, want %d (> 0)" % (a["duplicate_prompts_dropped"], dup))
if "dropped %d prompts identical" % dup not in err:
    sl.fail("stderr does not report the duplicates: " + err)
print("ok random_window on a uint32 stream: keyed offsets, %d duplicates dropped and counted" % dup)

# a file that is not a whole number of tokens of its dtype is an error
odd = os.path.join(d, "odd.bin")
with open(odd, "wb") as fh:
    fh.write(b"\x01\x00\x00")
r = sl.run([os.path.join(d, "windows32.ini"), "--set", "data.prompts=" + odd, "--quiet"])
if r.returncode != 2 or "3 bytes is not a whole number of uint32 tokens" not in r.stderr:
    sl.fail("odd-sized uint32 file: %d %s" % (r.returncode, r.stderr))
print("ok a token file of the wrong size for its dtype is refused")

# 2. document_start over repeating windows; 3. shared prefixes perturbed inside the prefix
rng = np.random.default_rng(2)
wins = []
for g in range(12):  # 12 groups of 4 windows sharing their first 5 tokens; every 3rd window twice
    prefix = rng.integers(0, V, 5)
    for k in range(4):
        w = np.concatenate([prefix, rng.integers(0, V, T - 5)])
        wins.append(w)
        if k == 2:
            wins.append(w)
path16 = os.path.join(d, "prefixes.bin")
np.array(wins).astype("<u2").tofile(path16)
f, a, err = sweep("prefixes", path16, perturb__position=4)
flat = np.fromfile(path16, "<u2").astype(np.int64)
docs = [list(flat[i * T:(i + 1) * T]) + ([int(flat[(i + 1) * T])] if (i + 1) * T < len(flat) else [])
        for i in range(len(flat) // T)]
want, nxt, dup, _ = ref.select_document_start(docs, T, P + COV, 7)
if not np.array_equal(f["tokens"], np.array(want[:P])) or a["duplicate_prompts_dropped"] != dup or dup == 0:
    sl.fail("document_start: tokens or duplicates (%s, want %d)" % (a["duplicate_prompts_dropped"], dup))
print("ok document_start: %d repeated windows dropped and counted" % dup)
# [data] bos = true: the tokenizer's BOS, then n_ctx - 1 tokens of each window, and the window's next token
g, ga, _ = sweep("prefixes-bos", path16, data__bos="true", perturb__directions="cov_random")
wins_only = [list(flat[i * T:(i + 1) * T]) for i in range(len(flat) // T)]
want_b, nxt_b, dup_b, _ = ref.select_document_start(wins_only, T - 1, P + COV, 7)
bos = ga["bos_token"]
if bos < 0 or not np.all(g["tokens"][:, 0] == bos) or not np.array_equal(g["tokens"][:, 1:], np.array(want_b[:P])) \
        or not np.array_equal(g["next_token"], nxt_b[:P]):
    sl.fail("bos = true: prompts are not BOS + n_ctx - 1 tokens of each window")
if a["bos_token"] != -1:
    sl.fail("bos = auto on a GPT-2-style tokenizer added BOS %s" % a["bos_token"])
print("ok [data] bos: true puts BOS %d first (then n_ctx - 1 tokens); auto adds none for a GPT-2 tokenizer" % bos)
tok = f["tokens"]
# activations at position 4 depend on tokens 0..4 only: equal prefixes, equal activations
key = [tuple(t[:5]) for t in tok]
part, red = f["partner"], f["partner_redraws"]
pairs, red2 = f["difference_prompts"], f["difference_redraws"]
for p in range(P):
    for s in range(part.shape[1]):
        st = ref.Stream(5, p, ref.RNG_PARTNER, s)  # run seed 5 (base_config)
        q, n = ref.draw_other(st, p, P), 0
        while key[q] == key[p]:
            q, n = ref.draw_other(st, p, P), n + 1
        if (q, n) != (part[p, s], red[p, s]):
            sl.fail("partner of (%d, %d): %s, want %s" % (p, s, (part[p, s], red[p, s]), (q, n)))
        r1, r2 = pairs[p, s]
        if len({key[p], key[r1], key[r2]}) != 3:
            sl.fail("real_difference pair (%d, %d) of prompt %d shares an activation" % (r1, r2, p))
if red.sum() == 0 or red2.sum() == 0:
    sl.fail("the data was built for redraws, but none happened (%d, %d)" % (red.sum(), red2.sum()))
if not np.all(np.isfinite(f["kl_onset"])) or not np.all(f["kl"][..., -1] > 0):
    sl.fail("a zero direction slipped through: onsets %s" % f["kl_onset"])
print("ok duplicate partners: %d real_other and %d real_difference redraws, recorded; no zero direction, no NaN"
      % (red.sum(), red2.sum()))

# 4. random_window over WebText documents joined by <|endoftext|>, GPT-2's tokenizer
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
webtext = os.path.join(shared, "data", "webtext.valid.jsonl")
if not os.path.exists(webtext) or not os.path.exists(os.path.join(shared, "gpt2", "vocab.json")):
    print("SKIP (rest): needs %s and %s/gpt2" % (webtext, shared))
    print("sampling tests passed")
    sys.exit(0)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tokenizer"))
from gpt2_encoder_ref import Encoder  # noqa: E402

few = os.path.join(d, "few.jsonl")
with open(webtext) as src, open(few, "w") as dst:
    texts = [json.loads(line)["text"] for line in src][:60]
    for t in texts:
        dst.write(json.dumps({"text": t}) + "\n")
enc = Encoder(os.path.join(shared, "gpt2"))
stream = []
for t in texts:
    stream += enc.encode(t) + [50256]
gmodel = os.path.join(d, "gpt2vocab")
import subprocess  # noqa: E402

r = subprocess.run([sl.BIN, "synth", gmodel, "--layers", "1", "--embd", "16", "--heads", "2", "--ctx", "16",
                    "--vocab-from", os.path.join(shared, "gpt2")], capture_output=True, text=True)
if r.returncode != 0:
    sl.fail("synth: " + r.stderr)
model = gmodel
f, a, _ = sweep("webtext", few, data__sampling="random_window", perturb__hook="blocks.0.hook_resid_pre")
want, nxt, dup = ref.select_random_windows(np.array(stream), T, P + COV, 7)
if not np.array_equal(f["tokens"], np.array(want[:P])) or not np.array_equal(f["next_token"], nxt[:P]):
    sl.fail("random_window over jsonl: tokens differ from encoder.py's stream")
print("ok random_window over %d WebText documents: the <|endoftext|>-joined stream of encoder.py's ids" % len(texts))
print("sampling tests passed")
