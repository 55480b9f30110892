"""Helpers of the sweep's end-to-end tests: tiny synthetic models, token files, configs, runs."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np

BIN = os.environ.get("PLATEAU_BIN", "build/plateau")
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(77)


def workdir(argv):
    d = argv[1] if len(argv) > 1 else "/tmp/plateau-sweep-test"
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def make_model(d, layers=2, embd=32, heads=4, ctx=32, vocab=300, seed=0):
    """A synthetic GPT-2 dir (plateau synth) with a small vocabulary: no tokenizer files needed."""
    path = os.path.join(d, "model")
    r = subprocess.run([BIN, "synth", path, "--layers", str(layers), "--embd", str(embd), "--heads", str(heads),
                        "--ctx", str(ctx), "--vocab", str(vocab), "--seed", str(seed)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        fail("plateau synth failed: " + r.stderr)
    return path


def make_bin(d, n_tokens, vocab, seed=0, name="tokens.bin"):
    """A nanoGPT-style uint16 token file of random ids below VOCAB."""
    path = os.path.join(d, name)
    rng = np.random.default_rng(seed)
    rng.integers(0, vocab, size=n_tokens).astype("<u2").tofile(path)
    return path


def write_ini(path, sections):
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec)
            for k, v in kv.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n")
    return path


def base_config(model, data, out, **over):
    """A small sweep: every base, direction kind and metric."""
    cfg = {
        "model": {"path": model},
        "data": {"prompts": data, "n_prompts": 12, "n_ctx": 8, "seed": 3},
        "perturb": {"hook": "blocks.1.hook_resid_pre", "bases": "real, synthetic",
                    "directions": "real_other, cov_random, isotropic", "n_directions": 2, "steps": 11,
                    "cov_prompts": 60},
        "readout": {"metrics": "kl, jsd, l2, cosine"},
        "output": {"path": out, "bootstrap": 200},  # the statistics tests check the full bootstrap
        "run": {"seed": 5},
    }
    for key, value in over.items():
        sec, k = key.split("__")
        cfg.setdefault(sec, {})[k] = value
    return cfg


def run_env():
    """The environment of a run, as a user has it (OpenBLAS's thread count is not pinned: plateau sets
    its own from [run] threads); under ASan no leak report at exit, since Open MPI's own allocations
    (MPI_Init is always called) would be reported."""
    e = dict(os.environ)
    asan = e.get("ASAN_OPTIONS", "")
    e["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=0"
    return e


def run(args, env=None, timeout=300, mpi=0):
    cmd = ([shutil.which("mpirun"), "--oversubscribe", "-n", str(mpi)] if mpi else []) + [BIN, "run"] + args
    e = run_env()
    if env:
        e.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


def run_ok(name, ini, out, args=("--quiet",)):
    """Run config INI (the test's run NAME), fail the test with its stderr unless it succeeds; the
    variables of its output OUT, INI and OUT."""
    r = run([ini] + list(args))
    if r.returncode != 0:
        fail("%s: sweep failed: %s" % (name, r.stderr))
    return variables(out), ini, out


def ranks_same_bits(name, args, want, out, mpi=2):
    """Run `plateau run ARGS` on MPI ranks (0: 1 process); fail the test (labelled NAME, with the run's
    stderr) unless it succeeds and its output OUT is bitwise WANT's, variable by variable (same_bits):
    WANT is the 1-process run's output, or an uninterrupted run's for a resume. Returns the run."""
    r = run(list(args), mpi=mpi)
    on = "%d ranks" % mpi if mpi else "1 process"
    if r.returncode != 0:
        fail("%s (%s): exit %d: %s" % (name, on, r.returncode, r.stderr))
    bad = same_bits(want, out)
    if bad:
        fail("%s (%s): %s differs from %s in %s" % (name, on, out, want, bad))
    return r


def overflowing_model(model, dest):
    """A copy of synthetic GPT-2 MODEL at DEST whose block-1 attention weights are all 3e38 (tests/trust's
    poke): its logits from block 1 on are not finite. Returns DEST."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "trust"))
    import trustlib as tl
    shutil.copytree(model, dest)
    st = os.path.join(dest, "model.safetensors")
    header, _ = tl.st_header(st)
    for i in range(int(np.prod(header["h.1.attn.c_attn.weight"]["shape"]))):
        tl.poke_f32(st, "h.1.attn.c_attn.weight", i, 3.0e38)
    return dest


def need_mpirun():
    if not shutil.which("mpirun"):
        skip("mpirun not found")


def variables(path):
    """{name: numpy array} of every variable of a NetCDF file (strings as lists)."""
    import netCDF4
    out = {}
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        for name, v in ds.variables.items():
            a = v[...]
            out[name] = list(a) if v.dtype == str else np.array(a)
    return out


def same_bits(a, b):
    """Names of variables whose values differ bitwise between two files."""
    va, vb = variables(a), variables(b)
    if set(va) != set(vb):
        return sorted(set(va) ^ set(vb))
    bad = []
    for k in va:
        x, y = va[k], vb[k]
        if isinstance(x, list):
            if x != y:
                bad.append(k)
        elif x.shape != y.shape or x.tobytes() != y.tobytes():
            bad.append(k)
    return bad


def start(args, mpi=0):
    """Start `plateau run ARGS` (under mpirun -n MPI when MPI) without waiting."""
    import subprocess as sp
    cmd = ([shutil.which("mpirun"), "--oversubscribe", "-n", str(mpi)] if mpi else []) + [BIN, "run"] + args
    env = run_env()
    return sp.Popen(cmd, stdout=sp.PIPE, stderr=sp.PIPE, text=True, env=env)


def wait_for(path, proc, limit=60):
    """Wait until PATH exists (the run's first checkpoint) while PROC still runs."""
    import time
    t0 = time.time()
    while not os.path.exists(path):
        if proc.poll() is not None:
            fail("the run ended (exit %s) before its first checkpoint: %s" % (proc.returncode, proc.stderr.read()))
        if time.time() - t0 > limit:
            proc.kill()
            fail("no checkpoint after %d s" % limit)
        time.sleep(0.05)


def alive(pid):
    """Whether process PID is running (not gone, not a zombie or dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def end_or_kill(proc, pids, timeout, what):
    """The stderr of job PROC (started by start) once it ends; if it has not ended within TIMEOUT
    seconds, kill mpirun and every rank in PIDS ({rank: pid}) and fail the test: WHAT, "the job did
    not end within TIMEOUT s"."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        fail("%s: the job did not end within %g s" % (what, timeout))


def rank_pids(mpirun_pid, n, limit=30):
    """{rank: pid} of the N plateau processes under mpirun (by their OMPI_COMM_WORLD_RANK)."""
    import time
    t0 = time.time()
    while True:
        pids = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != mpirun_pid:
                    continue
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                if b"OMPI_COMM_WORLD_RANK" in env:
                    pids[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
            except (OSError, ValueError, IndexError):
                pass
        if len(pids) == n:
            return pids
        if time.time() - t0 > limit:
            fail("found ranks %s under mpirun, want %d" % (pids, n))
        time.sleep(0.05)
