"""Helpers of the adversarial regression tests (issue 8, "Trust"): runs that must end in a one-line
error with exit 2 (and never hang), file fingerprints, and poking values into safetensors files."""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sweep"))
import sweeplib as sl  # noqa: E402,F401  (re-exported)

BIN = sl.BIN
HANG_LIMIT = 20  # seconds: every case here fails within a second or two; a run still going has hung


def _run(cmd, env, timeout, stdin=subprocess.DEVNULL):
    """(returncode, stdout, stderr) of CMD; one that does not end within TIMEOUT seconds is killed with
    its process group and reported as a hang (returncode None)."""
    e = sl.run_env()
    if env:
        e.update(env)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, stdin=stdin,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err


def plateau(args, env=None, timeout=HANG_LIMIT):
    """`plateau ARGS`: (returncode or None on a hang, stdout, stderr)."""
    return _run([BIN] + list(args), env, timeout)


def mpi(n, args, timeout=60):
    """`mpirun -n N plateau ARGS`: (returncode or None on a hang, stdout, stderr)."""
    return _run([sl.shutil.which("mpirun"), "--oversubscribe", "-n", str(n), BIN] + list(args), None, timeout)


def plateau_lines(err):
    return [l for l in err.splitlines() if l.startswith("plateau")]


def expect_error(label, result, *needles, code=2, one_line=True):
    """RESULT of plateau()/mpi(): exit CODE and, with ONE_LINE, nothing on stderr but one line holding
    every needle (ONE_LINE = "plateau", for mpirun: one `plateau:` line among mpirun's own)."""
    rc, _, err = result
    if rc is None:
        sl.fail("%s: HANGS (killed after the limit); stderr: %s" % (label, err[-2000:]))
    # under mpirun, its own report of a non-zero exit follows: only plateau's lines count there
    lines = [l for l in err.splitlines() if l.strip()] if one_line is True else plateau_lines(err)
    if rc != code:
        sl.fail("%s: exit %s (want %d): %s" % (label, rc, code, err[-3000:]))
    if one_line and len(lines) != 1:
        sl.fail("%s: want one message line, got %d: %s" % (label, len(lines), err[-3000:]))
    text = "\n".join(lines)
    for n in needles:
        if n not in text:
            sl.fail("%s: message lacks %r: %s" % (label, n, text))
    print("ok %-40s %s" % (label, lines[0] if lines else ""))
    return text


def fingerprint(path):
    """What a file is now: kind and, for a regular file, its sha256."""
    import stat
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return ("file", hashlib.sha256(f.read()).hexdigest())
    return (stat.S_IFMT(st.st_mode), st.st_rdev)


def st_header(path):
    """(header dict, offset of the data section) of a safetensors file, parsed here."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def poke_f32(path, tensor, index, value):
    """Overwrite element INDEX (flat) of F32 tensor TENSOR of a safetensors file with VALUE, in place."""
    header, data = st_header(path)
    info = header[tensor]
    assert info["dtype"] == "F32", info
    begin, end = info["data_offsets"]
    assert 4 * index < end - begin
    with open(path, "r+b") as f:
        f.seek(data + begin + 4 * index)
        f.write(struct.pack("<f", value))


def work(argv, name):
    return sl.workdir([None, argv[1] if len(argv) > 1 else "/tmp/plateau-trust-" + name])
