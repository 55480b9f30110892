"""Config and data errors: one line naming file:line (or the --set), the key and what is wrong; exit 2;
no output. Also: the resolved config (every key, defaults filled) is the output's `config` attribute."""
import os
import subprocess
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import sweeplib as sl  # noqa: E402

d = sl.workdir(sys.argv)
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 100, 300)
out = os.path.join(d, "out.nc")


def expect_error(name, ini_text, pattern, extra=()):
    path = os.path.join(d, name + ".ini")
    with open(path, "w") as f:
        f.write(ini_text)
    r = sl.run([path, "--quiet"] + list(extra))
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if r.returncode != 2:
        sl.fail("%s: exit %d (want 2); stderr: %s" % (name, r.returncode, r.stderr))
    if len(lines) != 1 or not re.search(pattern, lines[0]):
        sl.fail("%s: want one line matching %r, got %r" % (name, pattern, r.stderr))
    if os.path.exists(out):
        sl.fail("%s: an output file was written" % name)
    print("ok %-22s %s" % (name, lines[0]))


good = "[model]\npath = %s\n[data]\nprompts = %s\nn_prompts = 10\nn_ctx = 8\n[perturb]\ncov_prompts = 40\n" \
       "steps = 5\n[output]\npath = %s\n" % (model, data, out)

expect_error("unknown_key", good + "[perturb]\nnsteps = 3\n",
             r"unknown_key\.ini:13: \[perturb\] nsteps: unknown key \(keys of \[perturb\]: hook, ")
expect_error("unknown_section", good.replace("[output]", "[outputs]"),
             r"unknown_section\.ini:11: \[outputs\]: unknown section")
expect_error("bad_int", good.replace("steps = 5", "steps = five"),
             r"bad_int\.ini:9: \[perturb\] steps: 'five' is not an integer in \[2, 100000\]")
expect_error("bad_enum", good + "[readout]\nmetrics = kl, entropy\n",
             r"bad_enum\.ini:13: \[readout\] metrics: 'entropy' is not one of kl, jsd, l2, cosine")
expect_error("bad_direction", good.replace("[perturb]", "[perturb]\ndirections = cov_random, sideways"),
             r"bad_direction\.ini:8: \[perturb\] directions: 'sideways' is not one of isotropic, cov_random")
expect_error("bad_bool", good + "raw_curves = maybe\n", r"bad_bool\.ini:12: \[output\] raw_curves: 'maybe' is not a boolean")
expect_error("bad_quantile", good + "quantiles = 0.5, 1.5\n",
             r"bad_quantile\.ini:12: \[output\] quantiles: '1\.5' is not a number in \[0, 1\]")
# empty list items are refused by name, not dropped (`A,` was one model, not a series; `kl, , jsd` two metrics)
expect_error("empty_item_model", good.replace("path = %s\n" % model, "path = %s, , %s\n" % (model, model)),
             r"empty_item_model\.ini:2: \[model\] path: '.*, , .*': item 2 of the comma-separated list is empty")
expect_error("empty_item_trailing", good.replace("path = %s\n" % model, "path = %s,\n" % model),
             r"empty_item_trailing\.ini:2: \[model\] path: '.*,': item 2 of the comma-separated list is empty")
expect_error("empty_item_metrics", good + "[readout]\nmetrics = kl, , jsd\n",
             r"empty_item_metrics\.ini:13: \[readout\] metrics: 'kl, , jsd': item 2 of the comma-separated list is empty")
expect_error("empty_item_leading", good + "quantiles = , 0.5\n",
             r"empty_item_leading\.ini:12: \[output\] quantiles: ', 0\.5': item 1 of the comma-separated list is empty")
# ln_final.hook_normalized is refused with the true reason (the last residual, blocks.1.hook_resid_post, runs)
expect_error("perturb_ln_final", good.replace("[perturb]", "[perturb]\nhook = ln_final.hook_normalized"),
             r"perturb_ln_final\.ini:8: \[perturb\] hook: 'ln_final\.hook_normalized' is a readout only: .*\(the "
             r"last residual, before the final norm, is blocks\.1\.hook_resid_post\)")
expect_error("duplicate", good + "[data]\nn_ctx = 9\n", r"duplicate\.ini:13: \[data\] n_ctx: given twice \(first at .*duplicate\.ini:6\)")
expect_error("syntax", good + "this line has no equals sign\n", r"syntax\.ini:12: syntax error")
# --naive with whole contexts: refused before any work (it was a fault of the first batch: exit 3, an empty checkpoint)
expect_error("naive_contexts", good.replace("steps = 5", "steps = 5\nposition = all"),
             r"naive_contexts\.ini:10: \[perturb\] position: positions 0\.\.7 at once \(whole contexts\) run only by "
             r"the fast path; --naive", ["--naive"])
if os.path.exists(out + ".ckpt"):
    sl.fail("naive_contexts: a checkpoint was written")
# a section header without its ']': its line is named, not the first key after it (read as section "")
expect_error("open_section", good.replace("[output]", "[output"), r"open_section\.ini:10: syntax error")
expect_error("missing_model", good.replace("[model]\npath = %s\n" % model, ""), r"missing_model\.ini: \[model\] path: missing")
expect_error("bad_set", good, r"--set perturb\.steps=1: \[perturb\] steps: '1' is not an integer", ["--set", "perturb.steps=1"])
expect_error("set_unknown", good, r"--set data\.colour=red: \[data\] colour: unknown key", ["--set", "data.colour=red"])
expect_error("bad_hook", good + "[perturb]\nhook = blocks.7.hook_resid_pre\n",
             r"bad_hook\.ini:13: \[perturb\] hook: hook 'blocks\.7\.hook_resid_pre': block 7 does not exist")
expect_error("bad_position", good.replace("steps = 5", "steps = 5\nposition = 8"),
             r"bad_position\.ini:10: \[perturb\] position: 8 is outside the prompt")
expect_error("missing_model_dir", good.replace("path = %s\n" % model, "path = %s/nope\n" % d), r"nope")
expect_error("missing_data", good.replace(data, data + ".gone"), r"tokens\.bin\.gone: cannot open: No such file")
expect_error("too_few_prompts", good.replace("n_prompts = 10", "n_prompts = 70"),
             r"tokens\.bin: 100 windows of n_ctx = 8 tokens, but n_prompts \+ cov_prompts = 110 are needed")

# a missing config file (not the placeholder written above)
r = sl.run([os.path.join(d, "nowhere", "x.ini")])
if r.returncode != 2 or "config: " + os.path.join(d, "nowhere", "x.ini") + ": cannot open: No such file or directory" not in r.stderr:
    sl.fail("missing config: %d %s" % (r.returncode, r.stderr))

# text data: documents shorter than n_ctx are skipped and counted; too few is an error naming the count
text = os.path.join(d, "docs.jsonl")
with open(text, "w") as f:
    f.write('{"text": "a"}\n{"nottext": 1}\n')
expect_error("bad_jsonl", good.replace(data, text).replace("[model]", "[model]"),
             r"docs\.jsonl:2: expected a JSON object with a \"text\" string")

# plain text: one document per non-empty line; short ones are skipped and counted on stderr
docs = os.path.join(d, "docs.txt")
with open(docs, "w") as f:
    f.write("short\n\n" + "".join("%d is a document with plenty of words to make ten tokens\n" % i for i in range(50)))
path = os.path.join(d, "text.ini")
with open(path, "w") as f:
    f.write(good.replace(data, docs))
r = sl.run([path])
if r.returncode != 0 or "docs.txt: skipped 1 of" not in r.stderr:
    sl.fail("plain text data: %d %s" % (r.returncode, r.stderr))
os.unlink(out)
expect_error("too_few_docs", good.replace(data, docs).replace("n_prompts = 10", "n_prompts = 20"),
             r"docs\.txt: 50 distinct documents of at least n_ctx = 8 tokens \(1 shorter ones skipped, 0 duplicates "
             r"dropped\), but n_prompts \+ cov_prompts = 20 \+ 40 = 60 are needed")
print("ok plain text data: short documents skipped and counted")

# file: directions from safetensors: one 2-D tensor, or a named one; columns must match
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
from ref_gpt2 import write_safetensors  # noqa: E402

sae = os.path.join(d, "sae.safetensors")
w = np.random.default_rng(0).standard_normal((6, 32)).astype(np.float32)
write_safetensors(sae, [("W_dec", "F32", w), ("b_dec", "F32", w[0].copy()),
                        ("W_enc", "F32", np.ascontiguousarray(w.T))])
wide = os.path.join(d, "wide.npy")
np.save(wide, np.zeros((3, 33), np.float32))
with_dir = good.replace("[perturb]", "[perturb]\ndirections = %s")
expect_error("st_ambiguous", with_dir % ("file:" + sae),
             r"\[perturb\] directions: file:sae\.safetensors: .*sae\.safetensors: 2 2-D tensors; name one as file:")
expect_error("st_missing", with_dir % ("file:" + sae + "#W_nope"), r"sae\.safetensors: no tensor 'W_nope'")
expect_error("st_columns", with_dir % ("file:" + sae + "#W_enc"),
             r"tensor 'W_enc' has 6 columns, but the model's residual width is 32")
expect_error("npy_columns", with_dir % ("file:" + wide), r"wide\.npy: 33 columns, but the model's residual width is 32")
path = os.path.join(d, "st.ini")
with open(path, "w") as f:
    f.write(with_dir % ("cov_random, file:" + sae + "#W_dec"))
r = sl.run([path, "--quiet"])
if r.returncode != 0:
    sl.fail("safetensors direction: " + r.stderr)
if sl.variables(out)["direction"] != ["cov_random", "file:sae.safetensors#W_dec"]:
    sl.fail("direction labels %s" % sl.variables(out)["direction"])
os.unlink(out)
print("ok file: directions from safetensors (named tensor), errors for ambiguous, missing, wrong width")

# a valid run records the resolved config: every key, defaults filled, --set applied
path = os.path.join(d, "good.ini")
with open(path, "w") as f:
    f.write(good)
r = sl.run([path, "--quiet", "--set", "perturb.n_directions=2", "--set", "readout.metrics=kl,cosine"])
if r.returncode != 0:
    sl.fail("good config failed: " + r.stderr)
import netCDF4  # noqa: E402

with netCDF4.Dataset(out) as ds:
    cfg = ds.getncattr("config")
    for line in ["[model]", "path = " + model, "format = bin", "n_prompts = 10", "seed = 0",
                 "hook = blocks.1.hook_resid_pre", "position = -1", "bases = real", "directions = cov_random",
                 "n_directions = 2", "steps = 5", "alpha_max = 1", "step_mode = to_target", "cov_prompts = 40",
                 "metrics = kl, cosine", "read_hook = blocks.1.hook_resid_post", "onset_threshold = 0.1",
                 "path = " + out, "raw_curves = true", "quantiles = 0.05, 0.25, 0.75, 0.95", "[run]",
                 "checkpoint_every = 300", "checkpoint = " + out + ".ckpt", "worker_timeout = 10"]:
        if line not in cfg.splitlines():
            sl.fail("resolved config lacks %r:\n%s" % (line, cfg))
    if set(ds.variables) & {"jsd", "l2"} or "kl" not in ds.variables or "cosine_onset" not in ds.variables:
        sl.fail("metrics not as configured: %s" % sorted(ds.variables))
    if ds.getncattr("synthetic_model") != 1:  # CF: a 0/1 integer
        sl.fail("synthetic_model attribute: %r" % ds.getncattr("synthetic_model"))
# the new keys' errors
if os.path.exists(out):
    os.unlink(out)
expect_error("bad_basis", good.replace("steps = 5", "steps = 5\nresidual_basis = tl"), r"\[perturb\] residual_basis: 'tl' is not one of raw, centered")
expect_error("bad_mode", good.replace("steps = 5", "steps = 5\nstep_mode = relative"),
             r"\[perturb\] step_mode: 'relative' is not one of to_target, fixed_norm, absolute")
expect_error("bad_threshold", good + "[readout]\nthresholds = kl:-1\n",
             r"\[readout\] thresholds: kl:'-1' is not a positive number \(or none\)")
expect_error("bad_threshold_metric", good + "[readout]\nthresholds = entropy:1\n",
             r"\[readout\] thresholds: 'entropy' is not a metric")
expect_error("bad_nl", good + "[readout]\nnonlinearity = 10, 1, 0.1\n",
             r"\[readout\] nonlinearity: '10, 1, 0\.1' is not 'first, last, tolerance'")
expect_error("bad_read_position", good.replace("steps = 5", "steps = 5\nposition = -3") + "[readout]\nposition = 2\n",
             r"\[readout\] position: 2 is outside the positions the perturbation at 5 can reach \(5\.\.7")
expect_error("bad_sampling", good.replace("n_ctx = 8", "n_ctx = 8\nsampling = shuffled"),
             r"\[data\] sampling: 'shuffled' is not one of document_start, random_window")
expect_error("missing_tokenizer", good + "[model]\ntokenizer = %s/none.json\n" % d,
             r"tokenizer for \[data\] prompts.*none\.json: cannot open: No such file")
# the centred basis is TransformerLens's for LayerNorm models: refused for an RMSNorm model
shared = os.environ.get("PLATEAU_SHARED_DIR", os.path.join(sl.SRC, "..", "shared"))
llama = os.path.join(shared, "models", "stories260K", "stories260K.bin")
if os.path.exists(llama) and subprocess.run([sl.BIN, "info", llama], capture_output=True).returncode == 0:
    expect_error("rmsnorm_centered", good.replace("path = %s\n" % model, "path = %s\n" % llama)
                 .replace("steps = 5", "steps = 5\nresidual_basis = centered"), r"\[perturb\] residual_basis: centered .* RMSNorm")
else:
    print("SKIP rmsnorm_centered: no RMSNorm model opens here (needs ../shared and llama2.c support)")
print("config tests passed")
