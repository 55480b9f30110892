"""Helpers of the jobs/ script tests: a sandbox checkout (the scripts and configs copied into a fresh
directory, so nothing they link, download or write lands in the real one), a sandbox ../shared, a
local HTTP server laid out like the download sites, and a port nothing listens on (offline, fast and
the same on every machine: the tests never reach the real network)."""
import glob
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from functools import partial

BIN = os.path.abspath(os.environ.get("PLATEAU_BIN", "build/plateau"))
SRC = os.path.abspath(os.environ.get("PLATEAU_SRC_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
SHARED = os.path.abspath(os.environ.get("PLATEAU_SHARED_DIR", os.path.join(SRC, "..", "shared")))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(77)


def workdir(argv, name):
    d = os.path.abspath(argv[1] if len(argv) > 1 else "/tmp/plateau-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def closed_port():
    """A local TCP port with no listener: a connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(**extra):
    """The environment of an offline machine: every download URL points at a closed local port."""
    dead = "http://127.0.0.1:%d" % closed_port()
    env = dict(os.environ)
    for k in ("PLATEAU_MODEL", "PLATEAU_DATA", "PLATEAU_RANKS"):
        env.pop(k, None)
    env.update(HF_ENDPOINT=dead, PLATEAU_WEBTEXT_URL=dead + "/webtext.valid.jsonl", PLATEAU_BIN=BIN)
    env.update(extra)
    return env


def sandbox(root, name="repo"):
    """A checkout with the scripts and configs of jobs/, scripts/ and slurm/ (no build, no models/,
    data/ or results/). Returns its path; its ../shared is root/shared (absent until made)."""
    repo = os.path.join(root, name)
    for sub, pattern in (("jobs", "*"), ("scripts", "*.sh"), ("scripts", "*.py"), ("slurm", "*.sbatch")):
        os.makedirs(os.path.join(repo, sub), exist_ok=True)
        for f in glob.glob(os.path.join(SRC, sub, pattern)):
            if os.path.isfile(f):
                shutil.copy(f, os.path.join(repo, sub))
    return repo


def tree(d):
    """Every path under d, for 'nothing changed' checks."""
    out = []
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(base, n), d))
    return sorted(out)


def run(cmd, cwd, env, timeout=120):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def expect(r, code, what):
    if r.returncode != code:
        fail("%s: exit %d, expected %d\nstdout: %s\nstderr: %s" % (what, r.returncode, code, r.stdout, r.stderr))


def one_line(r, what, *needles):
    """stderr is exactly one line and contains every needle."""
    lines = r.stderr.splitlines()
    if len(lines) != 1:
        fail("%s: expected one line on stderr, got %d:\n%s" % (what, len(lines), r.stderr))
    for n in needles:
        if n not in lines[0]:
            fail("%s: stderr does not say %r: %s" % (what, n, lines[0]))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server:
    """A local HTTP server (GET and HEAD) over directory d, like huggingface.co's resolve URLs."""

    def __init__(self, d):
        handler = partial(QuietHandler, directory=d)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
