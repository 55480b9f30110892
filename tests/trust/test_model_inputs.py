"""Issue 8, items 5 and 7, for the files of a model dir (read by src/model and src/tokenizer through
src/util): a FIFO as model.safetensors, config.json or vocab.json, merges.txt that is /dev/zero, and
config.json that is a directory are one-line errors (exit 2) naming the file, without blocking or
reading without end, both for `plateau run` and for the model commands; a JSON error that quotes a
line break is still one line."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trustlib as tl  # noqa: E402

sl = tl.sl
d = tl.work(sys.argv, "model_inputs")
model = sl.make_model(d)
data = sl.make_bin(d, 8 * 300, 300)
docs = os.path.join(d, "docs.jsonl")
with open(docs, "w") as f:
    for i in range(80):
        f.write(json.dumps({"text": "document %d has words enough for eight tokens, %d" % (i, i)}) + "\n")
out = os.path.join(d, "out.nc")
cfg = sl.base_config(model, docs, out, data__n_prompts=6, perturb__steps=5, perturb__cov_prompts=40)
ini = sl.write_ini(os.path.join(d, "model_inputs.ini"), cfg)


def broken(label, file, make, *needles):
    path = os.path.join(d, label.replace(" ", "_"))
    sl.shutil.copytree(model, path)
    target = os.path.join(path, file)
    os.unlink(target)
    make(target)
    for args in (["run", ini, "--quiet", "--set", "model.path=" + path], ["info", path]):
        if args[0] == "info" and file in ("vocab.json", "merges.txt"):
            args = ["tokenize", path, "hello"]
        tl.expect_error("%s (%s)" % (label, args[0]), tl.plateau(args), file, *needles)
    if os.path.exists(out):
        sl.fail("%s: an output was written" % label)


broken("FIFO as model.safetensors", "model.safetensors", os.mkfifo, "FIFO")
broken("FIFO as config.json", "config.json", os.mkfifo, "FIFO")
broken("config.json a directory", "config.json", os.mkdir, "directory")
broken("FIFO as vocab.json", "vocab.json", os.mkfifo, "FIFO")
broken("merges.txt is /dev/zero", "merges.txt", lambda p: os.symlink("/dev/zero", p), "character device")
# found by fuzz_model_config: jansson quotes the text near a JSON error, newline included; the message
# stays one line
def broken_escape(path):
    with open(path, "w") as f:
        f.write('{\n  "model_type": "\\\\\\\\\\\n  "n_layer": 2\n}\n')


broken("config.json with an escape broken across lines", "config.json", broken_escape, "not valid JSON")
print("model input tests passed")
