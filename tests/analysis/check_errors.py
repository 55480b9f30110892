"""Bad input to analysis/plot_curves.py and analysis/summary.py: each case must give exactly one
line on stderr that names the file (or option) and the problem, the documented exit status (2 for a
bad file, 1 for a bad command line), no traceback, and for plot_curves.py no figure left behind.
"""
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import netCDF4
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON = os.environ.get("PYTHON", sys.executable)
PLOT = os.path.join(SRC, "analysis", "plot_curves.py")
SUMMARY = os.path.join(SRC, "analysis", "summary.py")
failures = []


def fixture(path, *args):
    subprocess.run([PYTHON, os.path.join(HERE, "make_fixture.py"), path, "--prompts", "5", "--samples", "2",
                    "--steps", "6"] + list(args), check=True)
    return path


cases = []


def expect(script, args, code, *needles, outdir=None):
    """Queue a case; the cases run in parallel at the end (each one is mostly interpreter start-up)."""
    cases.append((script, args, code, needles, outdir))


def judge(script, args, code, needles, outdir, p):
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
    label = f"{name} {' '.join(os.path.basename(a) for a in args)}"
    if problems:
        failures.append(f"{label}: {'; '.join(problems)}; stderr: {p.stderr.strip()!r}")
    else:
        print(f"ok   {label}: {lines[0]}")


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

    # A NetCDF file that is something else entirely.
    other = os.path.join(w, "other.nc")
    with netCDF4.Dataset(other, "w") as nc:
        nc.createDimension("time", 3)
        nc.createVariable("temperature", "f4", ("time",))[:] = [1, 2, 3]
    bad_files.append((other, ["other.nc", "coordinate 'alpha' is missing"]))

    bad_files.append((fixture(os.path.join(w, "noattr.nc"), "--drop-attr", "model_path"),
                      ["noattr.nc", "global attribute 'model_path' is missing"]))
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

    # Right names, wrong shape: kl_median over alpha only.
    wrongdims = fixture(os.path.join(w, "wrongdims.nc"), "--metrics", "kl", "--no-raw", "--drop", "kl_median")
    with netCDF4.Dataset(wrongdims, "a") as nc:
        v = nc.createVariable("kl_median", "f8", ("alpha",))
        v[:] = np.zeros(6)
    bad_files.append((wrongdims, ["wrongdims.nc", "'kl_median' has dimensions (alpha)", "expected (base, direction, alpha)"]))

    for path, needles in bad_files:
        for script in (PLOT, SUMMARY):
            args = [path, "-o", out] if script == PLOT else [path]
            expect(script, args, 2, *needles, outdir=out if script == PLOT else None)

    # Scores missing: summary.py needs them; plot_curves.py draws the curves and says what it skipped.
    noscore = fixture(os.path.join(w, "noscore.nc"), "--metrics", "kl", "--drop", "kl_onset")
    expect(SUMMARY, [noscore], 2, "noscore.nc", "variable 'kl_onset' is missing")
    p = subprocess.run([PYTHON, PLOT, noscore, "-o", os.path.join(w, "noscore")], capture_output=True, text=True)
    if p.returncode != 0 or "skipped kl_scores.png" not in p.stdout or os.path.exists(os.path.join(w, "noscore", "kl_scores.png")):
        failures.append(f"plot_curves.py on a file without kl_onset: exit {p.returncode}, {p.stdout!r} {p.stderr!r}")
    else:
        print("ok   plot_curves.py noscore.nc: curves drawn, kl_scores.png skipped")

    # Command-line problems.
    expect(PLOT, [good], 1, "-o")
    expect(PLOT, [good, "-o", out, "--metric", "nope"], 1, "--metric")
    expect(PLOT, [good, "-o", out, "--dpi", "5"], 1, "--dpi")
    expect(SUMMARY, [good, "--bootstrap", "0"], 1, "--bootstrap")
    expect(SUMMARY, [good, "--seed", "-3"], 1, "--seed")
    expect(SUMMARY, [good, "--alpha", "x"], 1, "--alpha")
    expect(SUMMARY, [good, "--alpha", "1.5"], 2, "good.nc", "--alpha 1.5", "outside")
    onemetric = fixture(os.path.join(w, "onemetric.nc"), "--metrics", "kl")
    expect(SUMMARY, [onemetric, "--metric", "jsd"], 2, "onemetric.nc", "no metric jsd")
    expect(PLOT, [onemetric, "-o", out, "--metric", "cosine"], 2, "onemetric.nc", "no metric cosine")

    # An output directory that cannot be one.
    afile = os.path.join(w, "afile")
    open(afile, "w").close()
    expect(PLOT, [good, "-o", afile], 2, "afile", "not a directory")

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        procs = list(pool.map(lambda c: subprocess.run([PYTHON, c[0]] + c[1], capture_output=True, text=True, timeout=300),
                              cases))
    for c, p in zip(cases, procs):
        judge(*c, p)

if failures:
    for f in failures:
        sys.stderr.write(f"FAIL {f}\n")
    sys.exit(1)
print("check_errors: OK")
