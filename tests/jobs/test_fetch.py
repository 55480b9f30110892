"""jobs/fetch-gpt2.sh, fetch-model.sh and fetch-data.sh: offline, each says why in one line and exits 69
(2 for a file that fails its sha256, 1 for usage), leaving nothing behind; --help; and the download
paths against a local HTTP server laid out like the real sites (what arrives is what was served,
converted where the script converts, or refused when its sha256 is wrong).

  test_fetch.py WORKDIR           cases that need nothing from ../shared
  test_fetch.py WORKDIR shared    linking from ../shared, and stories260K's real files downloaded and
                                  checked against jobs/stories260K.sha256 (exit 77 without ../shared)"""
import filecmp
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import jobslib as jl  # noqa: E402

mode = sys.argv[2] if len(sys.argv) > 2 else "local"
root = jl.workdir(sys.argv, "jobs-fetch-" + mode)
counter = [0]


def fresh(shared=None):
    """A new sandbox checkout; its ../shared is SHARED (default: an empty dir)."""
    counter[0] += 1
    d = os.path.join(root, "c%d" % counter[0])
    repo = jl.sandbox(d)
    if shared is None:
        shared = os.path.join(d, "shared")
        os.makedirs(shared)
    return repo, shared


def fetch(repo, shared, args, code, what, **env):
    r = jl.run(["bash"] + args, repo, jl.offline_env(PLATEAU_SHARED_DIR=shared, **env))
    jl.expect(r, code, what)
    return r


def nothing_left(repo, what):
    for sub in ("models", "data"):
        d = os.path.join(repo, sub)
        left = os.listdir(d) if os.path.isdir(d) else []
        if left:
            jl.fail("%s: left %s/%s behind" % (what, sub, left))


def serve(files):
    """A server over a fresh dir holding FILES {relative path: bytes}."""
    counter[0] += 1
    d = os.path.join(root, "site%d" % counter[0])
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
        with open(os.path.join(d, rel), "wb") as f:
            f.write(data)
    return jl.Server(d)


def local_cases():
    repo, shared = fresh()
    for script, usage in (("fetch-gpt2.sh", "bash jobs/fetch-gpt2.sh [gpt2|"), ("fetch-model.sh", "bash jobs/fetch-model.sh stories260K|"),
                          ("fetch-data.sh", "bash jobs/fetch-data.sh [webtext|tinystories]")):
        r = fetch(repo, shared, ["jobs/" + script, "--help"], 0, script + " --help")
        if usage not in r.stdout or r.stderr:
            jl.fail("%s --help: no usage on stdout, or noise on stderr:\n%s\n%s" % (script, r.stdout, r.stderr))
        jl.one_line(fetch(repo, shared, ["jobs/" + script, "stories260K", "--bogus"], 1, script + " --bogus"),
                    script + " --bogus", "unknown option '--bogus'")
    for args, needle in ((["jobs/fetch-gpt2.sh", "gpt5"], "unknown model 'gpt5'"),
                         (["jobs/fetch-model.sh", "gpt5"], "unknown model 'gpt5'"),
                         (["jobs/fetch-data.sh", "gpt5"], "unknown data set 'gpt5'")):
        jl.one_line(fetch(repo, shared, args, 2, " ".join(args)), " ".join(args), needle)
    nothing_left(repo, "usage errors")

    # Offline: one line naming the URL, exit 69, nothing left behind; --check the same without trying.
    for args, needle in ((["jobs/fetch-gpt2.sh", "gpt2"], "/openai-community/gpt2/resolve/main/config.json: "),
                         (["jobs/fetch-model.sh", "stories260K"], "/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin: "),
                         (["jobs/fetch-data.sh"], "/webtext.valid.jsonl: "),
                         (["jobs/fetch-data.sh", "tinystories"], "/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt: ")):
        for check in ([], ["--check"]):
            what = "offline " + " ".join(args + check)
            jl.one_line(fetch(repo, shared, args + check, 69, what), what, "cannot download http://127.0.0.1:", needle,
                        "(offline?)")
            nothing_left(repo, what)
    what = "tinystories-gpt2 nowhere"
    jl.one_line(fetch(repo, shared, ["jobs/fetch-model.sh", "tinystories-gpt2"], 69, what), what,
                "tinystories-gpt2 is neither in models/tinystories-gpt2 nor in", "it has no download")
    nothing_left(repo, what)
    what = "fetch-gpt2 without a build"
    jl.one_line(fetch(repo, shared, ["jobs/fetch-gpt2.sh", "gpt2"], 2, what, PLATEAU_BIN=os.path.join(root, "none")),
                what, "none not built")
    what = "PLATEAU_DATA unreadable"
    jl.one_line(fetch(repo, shared, ["jobs/fetch-data.sh"], 2, what, PLATEAU_DATA=os.path.join(root, "none.jsonl")),
                what, "none.jsonl is not a readable file")
    nothing_left(repo, "offline")

    # Downloads from a local server in the sites' layout.
    tiny = os.path.join(root, "tiny-gpt2")
    r = subprocess.run([jl.BIN, "synth", tiny, "--layers", "2", "--embd", "32", "--heads", "4", "--ctx", "32",
                        "--vocab", "300"], capture_output=True, text=True)
    if r.returncode != 0:
        jl.fail("synth: " + r.stderr)
    files = ["config.json", "vocab.json", "merges.txt", "model.safetensors"]
    site = {}
    for name in ("gpt2-medium", "gpt2"):
        for f in files:
            site["openai-community/%s/resolve/main/%s" % (name, f)] = open(os.path.join(tiny, f), "rb").read()
    srv = serve(site)
    try:
        repo, shared = fresh()
        what = "fetch-gpt2 gpt2-medium from a mirror"
        fetch(repo, shared, ["jobs/fetch-gpt2.sh", "gpt2-medium", "--check"], 0, what + " --check", HF_ENDPOINT=srv.url)
        nothing_left(repo, what + " --check")
        fetch(repo, shared, ["jobs/fetch-gpt2.sh", "gpt2-medium"], 0, what, HF_ENDPOINT=srv.url)
        for f in files:
            if not filecmp.cmp(os.path.join(tiny, f), os.path.join(repo, "models", "gpt2-medium", f), shallow=False):
                jl.fail("%s: models/gpt2-medium/%s differs from what was served" % (what, f))
        if os.listdir(os.path.join(repo, "models")) != ["gpt2-medium"]:
            jl.fail("%s: models/ holds %s" % (what, os.listdir(os.path.join(repo, "models"))))
        what = "fetch-gpt2 gpt2 that is not GPT-2 small"
        r = fetch(repo, shared, ["jobs/fetch-gpt2.sh", "gpt2"], 2, what, HF_ENDPOINT=srv.url)
        if "does not match the GPT-2 small manifest" not in r.stderr.splitlines()[-1]:
            jl.fail("%s: %s" % (what, r.stderr))
        if os.path.exists(os.path.join(repo, "models", "gpt2")) or \
                not os.path.isfile(os.path.join(repo, "models", "gpt2.partial", "model.safetensors")):
            jl.fail("%s: expected models/gpt2.partial and no models/gpt2" % what)
    finally:
        srv.close()

    stories = ["Once upon a time, there was a little cat.\nThe cat liked milk.",
               "Tom had a red ball. He said, \"Look, Mom!\" — and ran ✓ away.", "Lily saw a big tree."]
    text = "\n<|endoftext|>\n".join(stories) + "\n<|endoftext|>\n"
    bad = b"\x00" * 1000
    srv = serve({"datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt": text.encode(),
                 "webtext.valid.jsonl": b'{"text": "a page"}\n',
                 "karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin": bad,
                 "karpathy/tinyllamas/resolve/main/stories260K/tok512.bin": bad})
    try:
        repo, shared = fresh()
        env = dict(HF_ENDPOINT=srv.url, PLATEAU_WEBTEXT_URL=srv.url + "/webtext.valid.jsonl")
        what = "fetch-data tinystories from a mirror"
        r = fetch(repo, shared, ["jobs/fetch-data.sh", "tinystories", "--check"], 0, what + " --check", **env)
        jl.one_line(r, what + " --check", "would download " + srv.url)
        nothing_left(repo, what + " --check")
        fetch(repo, shared, ["jobs/fetch-data.sh", "tinystories"], 0, what, **env)
        got = [json.loads(line)["text"] for line in open(os.path.join(repo, "data", "tinystories.jsonl"), encoding="utf-8")]
        if got != stories:
            jl.fail("%s: stories %r, expected %r" % (what, got, stories))
        what = "fetch-data webtext from a mirror"
        fetch(repo, shared, ["jobs/fetch-data.sh"], 0, what, **env)
        if open(os.path.join(repo, "data", "webtext.valid.jsonl"), "rb").read() != b'{"text": "a page"}\n':
            jl.fail("%s: data/webtext.valid.jsonl is not what was served" % what)
        if sorted(os.listdir(os.path.join(repo, "data"))) != ["tinystories.jsonl", "webtext.valid.jsonl"]:
            jl.fail("%s: data/ holds %s" % (what, os.listdir(os.path.join(repo, "data"))))

        what = "fetch-model stories260K whose download fails its sha256"
        r = fetch(repo, shared, ["jobs/fetch-model.sh", "stories260K"], 2, what, **env)
        if "stories260K.bin: sha256 " not in r.stderr or "expected b0a507e7" not in r.stderr:
            jl.fail("%s: %s" % (what, r.stderr))
        if os.path.exists(os.path.join(repo, "models", "stories260K")) or \
                not os.path.isdir(os.path.join(repo, "models", "stories260K.partial")):
            jl.fail("%s: expected models/stories260K.partial and no models/stories260K" % what)
    finally:
        srv.close()

    srv = serve({"karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin": bad})  # tok512.bin: 404
    try:
        repo, shared = fresh()
        what = "fetch-model stories260K with a file missing on the server"
        jl.one_line(fetch(repo, shared, ["jobs/fetch-model.sh", "stories260K"], 69, what, HF_ENDPOINT=srv.url),
                    what, "tok512.bin: ", "404")
        nothing_left(repo, what)
    finally:
        srv.close()


def shared_cases():
    real = os.path.join(jl.SHARED, "models", "stories260K")
    if not os.path.isfile(os.path.join(real, "stories260K.bin")) or \
            not os.path.isfile(os.path.join(jl.SHARED, "data", "tinystories.jsonl")):
        jl.skip("needs %s/models/stories260K and %s/data/tinystories.jsonl (PLATEAU_SHARED_DIR)" % (jl.SHARED, jl.SHARED))
    repo, _ = fresh()
    for args, link, target in ((["jobs/fetch-model.sh", "stories260K"], "models/stories260K", real),
                               (["jobs/fetch-model.sh", "tinystories-gpt2"], "models/tinystories-gpt2",
                                os.path.join(jl.SHARED, "models", "tinystories-gpt2")),
                               (["jobs/fetch-data.sh", "tinystories"], "data/tinystories.jsonl",
                                os.path.join(jl.SHARED, "data", "tinystories.jsonl"))):
        what = " ".join(args) + " from ../shared"
        jl.one_line(fetch(repo, jl.SHARED, args, 0, what), what, link + " -> ")
        if os.path.realpath(os.path.join(repo, link)) != os.path.realpath(target):
            jl.fail("%s: %s does not lead to %s" % (what, link, target))
        r = fetch(repo, jl.SHARED, args, 0, what + ", again")
        if r.stderr:
            jl.fail("%s, again: says %s" % (what, r.stderr))

    site = os.path.join(root, "tinyllamas")
    os.makedirs(os.path.join(site, "karpathy", "tinyllamas", "resolve", "main"))
    shutil.copytree(real, os.path.join(site, "karpathy", "tinyllamas", "resolve", "main", "stories260K"))
    srv = jl.Server(site)
    try:
        repo, shared = fresh()
        what = "fetch-model stories260K downloaded"
        jl.one_line(fetch(repo, shared, ["jobs/fetch-model.sh", "stories260K"], 0, what, HF_ENDPOINT=srv.url),
                    what, "models/stories260K downloaded from " + srv.url, "sha256 checked")
        for f in ("stories260K.bin", "tok512.bin"):
            if not filecmp.cmp(os.path.join(real, f), os.path.join(repo, "models", "stories260K", f), shallow=False):
                jl.fail("%s: %s differs from ../shared's" % (what, f))
        if os.listdir(os.path.join(repo, "models")) != ["stories260K"]:
            jl.fail("%s: models/ holds %s" % (what, os.listdir(os.path.join(repo, "models"))))
    finally:
        srv.close()


if mode == "shared":
    shared_cases()
else:
    local_cases()
print("fetch tests passed (%s)" % mode)
