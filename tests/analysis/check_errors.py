"""Bad input to analysis/plot_curves.py and analysis/summary.py: each case must give exactly one
line on stderr that names the file (or option) and the problem, the documented exit status (2 for a
bad file, 1 for a bad command line), no traceback, and for plot_curves.py no figure left behind.

Most cases run the scripts in this process (runpy, as `python3 SCRIPT` runs them, with stdout and
stderr captured and any exception other than SystemExit counted as a traceback): each case is then
milliseconds instead of an interpreter start. A few run as real processes, to cover the entry
points themselves, including the message when the interpreter lacks the dependencies.
"""
import contextlib
import io
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import traceback

import netCDF4
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON = os.environ.get("PYTHON", sys.executable)
PLOT = os.path.join(SRC, "analysis", "plot_curves.py")
SUMMARY = os.path.join(SRC, "analysis", "summary.py")
sys.path.insert(0, os.path.join(SRC, "analysis"))  # what running a script from analysis/ does
sys.path.insert(0, HERE)
import make_fixture  # noqa: E402

failures = []


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_inprocess(script, args):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved = sys.argv
    sys.argv = [script] + list(args)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:  # noqa: BLE001 - a crash is what this test looks for
        err.write(traceback.format_exc())
        code = "exception"
    finally:
        sys.argv = saved
    return Ran(code, out.getvalue(), err.getvalue())


def run_process(script, args, python=PYTHON):
    return subprocess.run([python, script] + list(args), capture_output=True, text=True, timeout=300)


def fixture(path, *args):
    saved = sys.argv
    sys.argv = ["make_fixture.py", path, "--prompts", "5", "--samples", "2", "--steps", "6"] + list(args)
    try:
        make_fixture.main()
    finally:
        sys.argv = saved
    return path


def judge(script, args, code, needles, outdir, p, how):
    name = os.path.basename(script)
    lines = p.stderr.strip().splitlines()
    problems = []
    if p.returncode != code:
        problems.append(f"exit {p.returncode}, expected {code}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    elif not lines[0].startswith(f"{name}: "):
        problems.append("message does not start with the script name")
    for n in needles:
        if n not in p.stderr:
            problems.append(f"message lacks '{n}'")
    if "Traceback" in p.stderr:
        problems.append("traceback")
    if outdir and os.path.isdir(outdir) and any(x.endswith(".png") for x in os.listdir(outdir)):
        problems.append("figures written for a bad file")
    label = f"{name} {' '.join(os.path.basename(a) for a in args)} ({how})"
    if problems:
        failures.append(f"{label}: {'; '.join(problems)}; stderr: {p.stderr.strip()!r}")
    else:
        print(f"ok   {label}: {lines[0]}")


def expect(script, args, code, *needles, outdir=None, process=False):
    p = run_process(script, args) if process else run_inprocess(script, args)
    judge(script, args, code, needles, outdir, p, "process" if process else "in process")


with tempfile.TemporaryDirectory(prefix="plateau-analysis-errors-") as w:
    out = os.path.join(w, "figs")
    bad_files = []

    missing = os.path.join(w, "missing.nc")
    bad_files.append((missing, ["no such file"]))

    text = os.path.join(w, "notes.nc")
    with open(text, "w") as f:
        f.write("this is not NetCDF\n")
    bad_files.append((text, ["not a readable NetCDF file"]))

    good = fixture(os.path.join(w, "good.nc"))
    truncated = os.path.join(w, "truncated.nc")
    with open(good, "rb") as f:
        blob = f.read()
    with open(truncated, "wb") as f:
        f.write(blob[: len(blob) // 3])
    bad_files.append((truncated, ["truncated.nc", "not a readable NetCDF file"]))

    bad_files.append((w, ["is a directory"]))
    fifo = os.path.join(w, "fifo.nc")  # netCDF would wait on its writer for ever
    os.mkfifo(fifo)
    bad_files.append((fifo, ["fifo.nc", "is a FIFO, not a regular file"]))

    # A NetCDF file that is something else entirely.
    other = os.path.join(w, "other.nc")
    with netCDF4.Dataset(other, "w") as nc:
        nc.createDimension("time", 3)
        nc.createVariable("temperature", "f4", ("time",))[:] = [1, 2, 3]
    bad_files.append((other, ["other.nc", "coordinate 'alpha' is missing"]))

    bad_files.append((fixture(os.path.join(w, "noattr.nc"), "--drop-attr", "model_path"),
                      ["noattr.nc", "global attribute 'model_path' is missing"]))
    # a model series (plateau run with [model] paths, or merge along `model`): its model_path is a
    # variable over `model`, and the message said "not a plateau result"
    series = fixture(os.path.join(w, "series.nc"), "--drop-attr", "model_path")
    with netCDF4.Dataset(series, "a") as nc:
        nc.createDimension("model", 2)
        nc.createVariable("model_path", str, ("model",))[:] = np.array(["/m/a", "/m/b"], dtype=object)
    bad_files.append((series, ["series.nc", "a model-series result (2 models along 'model')", "analysis/series.py"]))
    bad_files.append((fixture(os.path.join(w, "nohook.nc"), "--drop-attr", "hook"),
                      ["nohook.nc", "global attribute 'hook' is missing"]))
    bad_files.append((fixture(os.path.join(w, "nometric.nc"), "--metrics", "kl", "--drop", "kl", "--drop", "kl_median"),
                      ["nometric.nc", "no metric variable"]))
    bad_files.append((fixture(os.path.join(w, "noquant.nc"), "--metrics", "l2", "--no-raw", "--drop", "l2_quantiles"),
                      ["noquant.nc", "metric 'l2'", "l2_quantiles"]))
    bad_files.append((fixture(os.path.join(w, "noqcoord.nc"), "--metrics", "kl", "--no-raw", "--drop", "quantile"),
                      ["noqcoord.nc", "no 'quantile' coordinate"]))
    bad_files.append((fixture(os.path.join(w, "nohookcoord.nc"), "--hooks", "2", "--drop", "hook"),
                      ["nohookcoord.nc", "no 'hook' coordinate"]))
    # A boolean attribute that is neither encoding.
    badbool = fixture(os.path.join(w, "badbool.nc"), "--metrics", "kl")
    with netCDF4.Dataset(badbool, "a") as nc:
        nc.setncattr("synthetic_model", "yes")
    bad_files.append((badbool, ["badbool.nc", "'synthetic_model'", "'yes'"]))
    # A config attribute that is not INI.
    badcfg = fixture(os.path.join(w, "badcfg.nc"), "--metrics", "kl")
    with netCDF4.Dataset(badcfg, "a") as nc:
        nc.setncattr("config", "steps = 3\n")
    bad_files.append((badcfg, ["badcfg.nc", "'config'", "not INI text"]))

    # Right names, wrong shape: kl_median over alpha only; a score over the wrong dimensions.
    wrongdims = fixture(os.path.join(w, "wrongdims.nc"), "--metrics", "kl", "--no-raw", "--drop", "kl_median")
    with netCDF4.Dataset(wrongdims, "a") as nc:
        nc.createVariable("kl_median", "f8", ("alpha",))[:] = np.zeros(6)
    bad_files.append((wrongdims, ["wrongdims.nc", "'kl_median' has dimensions (alpha)", "expected (base, direction, alpha)"]))
    wrongscore = fixture(os.path.join(w, "wrongscore.nc"), "--metrics", "kl", "--drop", "kl_onset")
    with netCDF4.Dataset(wrongscore, "a") as nc:
        nc.createVariable("kl_onset", "f4", ("base", "direction", "prompt"))[:] = np.zeros((2, 3, 5))
    bad_files.append((wrongscore, ["wrongscore.nc", "'kl_onset' has dimensions (base, direction, prompt)"]))

    for path, needles in bad_files:
        for script in (PLOT, SUMMARY):
            args = [path, "-o", out] if script == PLOT else [path]
            expect(script, args, 2, *needles, outdir=out if script == PLOT else None)
            shutil.rmtree(out, ignore_errors=True)

    # The entry points as processes: a bad file, a bad command line.
    expect(PLOT, [missing, "-o", out], 2, "missing.nc", "no such file", outdir=out, process=True)
    expect(SUMMARY, [text], 2, "notes.nc", "not a readable NetCDF file", process=True)
    expect(SUMMARY, [good, "--metric", "nope"], 1, "--metric", process=True)

    # An interpreter without the dependencies (the pyenv python3 first on PATH here) is told which one to use.
    plain = shutil.which("python3")
    if plain and subprocess.run([plain, "-c", "import xarray, matplotlib"], capture_output=True).returncode != 0:
        for script in (PLOT, SUMMARY):
            p = run_process(script, [good, "-o", out] if script == PLOT else [good], python=plain)
            judge(script, [good], 2, ["/usr/bin/python3"], out, p, f"process under {plain}")
    else:
        print("note: the python3 on PATH has xarray and matplotlib; the missing-dependency message is not exercised")

    # Scores missing: the scripts use what the file has.
    noscore = fixture(os.path.join(w, "noscore.nc"), "--metrics", "kl", "--scores", "")
    p = run_inprocess(PLOT, [noscore, "-o", os.path.join(w, "noscore")])
    if p.returncode != 0 or "skipped kl_scores:" not in p.stdout or "skipped kl_by_hook:" not in p.stdout \
            or os.path.exists(os.path.join(w, "noscore", "kl_scores.png")) \
            or not os.path.exists(os.path.join(w, "noscore", "kl_all.png")):
        failures.append(f"plot_curves.py on a file without scores: exit {p.returncode}, {p.stdout!r} {p.stderr!r}")
    else:
        print("ok   plot_curves.py noscore.nc: curves drawn, score figures skipped")
    p = run_inprocess(SUMMARY, [noscore])
    if p.returncode != 0 or "Per-curve scores" in p.stdout or "Median curve" not in p.stdout or p.stderr:
        failures.append(f"summary.py on a file without scores: exit {p.returncode}, {p.stdout!r} {p.stderr!r}")
    else:
        print("ok   summary.py noscore.nc: median curves, no score table")
    oneless = fixture(os.path.join(w, "oneless.nc"), "--metrics", "kl", "--drop", "kl_onset")
    p = run_inprocess(SUMMARY, [oneless, "--csv"])
    if p.returncode != 0 or ",onset," in p.stdout or ",sharpness," not in p.stdout:
        failures.append(f"summary.py on a file without kl_onset: exit {p.returncode}, {p.stderr!r}")
    else:
        print("ok   summary.py oneless.nc: the other scores, no onset")

    # Command-line problems.
    expect(PLOT, [good], 1, "-o")
    expect(PLOT, [good, "-o", out, "--metric", "nope"], 1, "--metric")
    expect(PLOT, [good, "-o", out, "--dpi", "5"], 1, "--dpi")
    expect(PLOT, [good, "-o", out, "--format", "bmp"], 1, "--format")
    expect(PLOT, [good, "-o", out, "--bootstrap", "0"], 1, "--bootstrap")
    expect(SUMMARY, [good, "--bootstrap", "0"], 1, "--bootstrap")
    expect(SUMMARY, [good, "--seed", "-3"], 1, "--seed")
    expect(SUMMARY, [good, "--alpha", "x"], 1, "--alpha")
    expect(SUMMARY, [good, "--alpha", "1.5"], 2, "good.nc", "--alpha 1.5", "outside")
    expect(SUMMARY, [good, "--score", "nope"], 2, "good.nc", "no score nope")
    onemetric = fixture(os.path.join(w, "onemetric.nc"), "--metrics", "kl")
    expect(SUMMARY, [onemetric, "--metric", "jsd"], 2, "onemetric.nc", "no metric jsd")
    expect(PLOT, [onemetric, "-o", out, "--metric", "cosine"], 2, "onemetric.nc", "no metric cosine")

    # An output directory that cannot be one.
    afile = os.path.join(w, "afile")
    open(afile, "w").close()
    expect(PLOT, [good, "-o", afile], 2, "afile", "not a directory")

if failures:
    for f in failures:
        sys.stderr.write(f"FAIL {f}\n")
    sys.exit(1)
print("check_errors: OK")
