"""docs/explore.py runs (on a synthetic GPT-2 with a byte-level vocabulary, so its --text is tokenized),
prints its curves, and the config it writes is one `plateau run` accepts and runs (shrunk by --set to
a few prompts of a token file)."""
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apilib as al  # noqa: E402

d = tempfile.mkdtemp(prefix="plateau-explore-")
try:
    model = os.path.join(d, "model")
    al.run([al.BIN, "synth", model, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "64", "--vocab", "300"])
    data = os.path.join(d, "tokens.bin")
    np.random.default_rng(0).integers(0, 300, size=3000).astype("<u2").tofile(data)
    env = dict(os.environ, PYTHONPATH=os.path.join(al.SRC, "python"))
    out = al.run([sys.executable, os.path.join(al.SRC, "docs", "explore.py"), model, "--data", data, "--out",
                  os.path.join(d, "explore"), "--steps", "11"], env=env)
    print(out)
    for want in ("KL along each direction", "towards --other", "random 2", "explore.ini"):
        if want not in out:
            al.fail("explore.py printed no %r" % want)
    ini = os.path.join(d, "explore", "explore.ini")
    if al.run([al.BIN, "config", ini, "--get", "perturb.n_directions"]).strip() != "4":
        al.fail("explore.ini: n_directions is not the 4 rows of its direction file")
    result = os.path.join(d, "explore.nc")
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    al.run([al.BIN, "run", ini, "-o", result, "--quiet", "--set", "data.n_prompts=3", "--set", "data.bos=false",
            "--set", "perturb.cov_prompts=30", "--set", "output.bootstrap=0"], env=env)
    if not os.path.exists(result):
        al.fail("plateau run of explore.ini wrote no result")
    print("ok explore.py's config runs: %s" % os.path.basename(result))
finally:
    shutil.rmtree(d, ignore_errors=True)
print("explore tests passed")
