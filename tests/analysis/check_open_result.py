"""plateau_analysis.open_result: a lazy xarray.Dataset with decoded attributes, on fixture files
written with netCDF4 in both encodings of booleans (today's "true"/"false" text and the CF 0/1
integers the CLI work will write), numbers given as text, the parsed config, the accessor, the
step-mode α labels, and refusals with one-line messages. The expected values come from what this
test wrote into each file, not from plateau_analysis.
"""
import os
import subprocess
import sys
import tempfile

import netCDF4
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("PLATEAU_SRC_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
PYTHON = os.environ.get("PYTHON", sys.executable)
sys.path.insert(0, os.path.join(SRC, "analysis"))  # what PYTHONPATH=analysis does for a user

from plateau_analysis import ResultError, encode_attrs, open_result, parse_config  # noqa: E402

failures = []


def check(what, ok, detail=""):
    if ok:
        print(f"ok   {what}")
    else:
        failures.append(f"{what}{': ' + detail if detail else ''}")


def fixture(path, *args):
    subprocess.run([PYTHON, os.path.join(HERE, "make_fixture.py"), path, "--prompts", "5", "--samples", "2",
                    "--steps", "6", "--metrics", "kl,cosine"] + list(args), check=True)
    return path


def set_attr(path, name, value):
    with netCDF4.Dataset(path, "a") as nc:
        if value is None:
            nc.delncattr(name)
        else:
            nc.setncattr(name, value)


def refused(path, *needles):
    try:
        open_result(path)
    except ResultError as e:
        msg = str(e)
        return "\n" not in msg and msg.startswith(path) and all(n in msg for n in needles), msg
    return False, "no error"


with tempfile.TemporaryDirectory(prefix="plateau-open-result-") as w:
    # -- booleans, both encodings -------------------------------------------------------------------
    cases = [("text true", [], True), ("text false", ["--real-model"], False),
             ("int 1", ["--bool-int"], True), ("int 0", ["--bool-int", "--real-model"], False)]
    for what, args, want in cases:
        path = fixture(os.path.join(w, what.replace(" ", "_") + ".nc"), *args)
        ds = open_result(path)
        got = ds.attrs["synthetic_model"]
        check(f"synthetic_model stored as {what} -> {want!r}", got is want, repr(got))
    path = fixture(os.path.join(w, "upper.nc"))
    set_attr(path, "synthetic_model", "TRUE")
    check("synthetic_model 'TRUE' -> True", open_result(path).attrs["synthetic_model"] is True)
    for i, bad in enumerate(("maybe", np.int32(2))):
        path = fixture(os.path.join(w, f"badbool{i}.nc"))
        set_attr(path, "synthetic_model", bad)
        ok, msg = refused(path, "synthetic_model", "expected true/false")
        check(f"synthetic_model {bad!r} refused in one line", ok, msg)

    # -- numbers and other attributes ------------------------------------------------------------------
    path = fixture(os.path.join(w, "numbers.nc"))
    ds = open_result(path)
    check("n_prompts is a Python int", type(ds.attrs["n_prompts"]) is int and ds.attrs["n_prompts"] == 5,
          repr(ds.attrs["n_prompts"]))
    check("evals_per_second is a Python float", type(ds.attrs["evals_per_second"]) is float)
    check("text attributes stay text", ds.attrs["model_sha256"] == "0" * 64 and ds.attrs["hook"] == "blocks.0.hook_resid_pre")
    ds.close()  # the lazy Dataset keeps the file open
    set_attr(path, "n_prompts", "5")
    set_attr(path, "evals_per_second", "12.5")
    ds = open_result(path)
    check("numbers stored as text are parsed", ds.attrs["n_prompts"] == 5 and type(ds.attrs["n_prompts"]) is int
          and ds.attrs["evals_per_second"] == 12.5, repr((ds.attrs["n_prompts"], ds.attrs["evals_per_second"])))
    ds.close()
    set_attr(path, "n_prompts", "five")
    ok, msg = refused(path, "n_prompts", "'five'")
    check("n_prompts 'five' refused in one line", ok, msg)

    # -- laziness --------------------------------------------------------------------------------------------
    path = fixture(os.path.join(w, "lazy.nc"))
    ds = open_result(path)
    lazy = [v for v in ds.data_vars if not ds[v].variable._in_memory]
    check("no data variable is read by open_result", len(lazy) == len(ds.data_vars),
          f"in memory: {sorted(set(ds.data_vars) - set(lazy))}")
    with netCDF4.Dataset(path) as nc:
        want = np.asarray(nc["kl"][:], dtype=np.float64)
    check("a variable reads on use", np.array_equal(ds.kl.values.astype(np.float64), want))

    # -- the config ---------------------------------------------------------------------------------------
    cfg = ds.plateau.config
    check("config: integers", cfg["perturb"]["steps"] == 6 and type(cfg["perturb"]["steps"]) is int
          and cfg["perturb"]["position"] == -1)
    check("config: lists", cfg["perturb"]["bases"] == ["real", "synthetic"]
          and cfg["perturb"]["directions"] == ["isotropic", "cov_random", "real_other"]
          and cfg["readout"]["metrics"] == ["kl", "cosine"], repr(cfg["perturb"]))
    check("config: numeric lists", cfg["output"]["quantiles"] == [0.05, 0.25, 0.75, 0.95])
    check("config: booleans", cfg["output"]["raw_curves"] is True)
    check("config: reals and text", cfg["readout"]["onset_threshold"] == 0.1
          and cfg["perturb"]["step_mode"] == "to_target" and cfg["readout"]["read_hook"] == "blocks.1.hook_resid_post")
    check("config: paths stay text", cfg["model"]["path"].startswith("/nonexistent/"))
    one = parse_config("[perturb]\ndirections = file:a.npy#w\nalpha_max = 2.5\n[output]\nraw_curves = false\n"
                       "[readout]\nthresholds = kl:0.01, jsd:none\nnonlinearity = 1, 10, 0.1\n")
    check("parse_config on its own", one == {"perturb": {"directions": ["file:a.npy#w"], "alpha_max": 2.5},
                                             "output": {"raw_curves": False},
                                             "readout": {"thresholds": {"kl": 0.01, "jsd": None},
                                                         "nonlinearity": [1, 10, 0.1]}}, repr(one))

    # -- the accessor: structure and α labels --------------------------------------------------------------------
    check("accessor: one hook", ds.plateau.hooks == ["blocks.0.hook_resid_pre"] and not ds.plateau.merged)
    check("accessor: metrics and scores", ds.plateau.metrics == ["kl", "cosine"]
          and ds.plateau.scores("kl") == ["onset", "max_slope_alpha", "sharpness", "alpha_at_threshold",
                                          "nonlinearity_alpha"], repr(ds.plateau.scores("kl")))
    check("accessor: α label of the step mode", ds.plateau.alpha_label == "α (fraction of the way to the target)",
          ds.plateau.alpha_label)
    ds.close()
    ds = open_result(fixture(os.path.join(w, "mode_new.nc"), "--step-mode", "sideways"))
    check("α label of a mode unknown here: the alpha coordinate's long_name and units",
          ds.plateau.alpha_label == "α (alpha of the sideways mode) [widgets]", ds.plateau.alpha_label)
    labels = {"to_target": "α (fraction of the way to the target)", "fixed_norm": "α (step length / ‖x‖)",
              "absolute": "α (step length, activation units)"}
    for mode, want in labels.items():
        ds = open_result(fixture(os.path.join(w, f"mode_{mode}.nc"), "--no-alpha-attrs", "--step-mode", mode))
        check(f"α label for step_mode {mode} without alpha attributes", ds.plateau.alpha_label == want,
              ds.plateau.alpha_label)
    merged = open_result(fixture(os.path.join(w, "merged.nc"), "--hooks", "2", "--scores", "onset"))
    check("accessor: merged file", merged.plateau.merged and merged.plateau.hooks ==
          ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"] and merged.plateau.scores("kl") == ["onset"])
    check("merged file: variables lead with hook", merged.kl.dims[0] == "hook")

    # -- writing back ------------------------------------------------------------------------------------------
    out = os.path.join(w, "subset.nc")
    merged.sel(base=["real"]).assign_attrs(encode_attrs(merged.attrs)).to_netcdf(out)
    with netCDF4.Dataset(out) as nc:
        check("encode_attrs: booleans written as 0/1", int(nc.getncattr("synthetic_model")) == 1)
    check("a written subset opens again", open_result(out).attrs["synthetic_model"] is True)

    # -- docs/analysis.md's one-time setup: a .pth file in the user site directory ------------------------------------
    readme = open(os.path.join(SRC, "docs", "analysis.md"), encoding="utf-8").read()
    setup = next(line for line in readme.splitlines() if line.startswith("site=$(/usr/bin/python3 -m site --user-site)"))
    env = dict(os.environ, PYTHONUSERBASE=os.path.join(w, "userbase"))
    env.pop("PYTHONPATH", None)
    p = subprocess.run(["bash", "-c", setup], cwd=SRC, env=env, capture_output=True, text=True)
    q = subprocess.run(["/usr/bin/python3", "-c", "import plateau_analysis; print(plateau_analysis.__file__)"],
                       cwd=w, env=env, capture_output=True, text=True)
    want = os.path.join(os.path.realpath(SRC), "analysis", "plateau_analysis", "__init__.py")
    check("docs/analysis.md's .pth setup makes plateau_analysis importable anywhere", p.returncode == 0 and q.returncode == 0
          and os.path.realpath(q.stdout.strip()) == want, f"{p.stderr} {q.stderr} {q.stdout}")

    # -- refusals -----------------------------------------------------------------------------------------------
    ok, msg = refused(os.path.join(w, "absent.nc"), "no such file")
    check("missing file refused", ok, msg)
    notnc = os.path.join(w, "notes.nc")
    open(notnc, "w").write("not NetCDF\n")
    ok, msg = refused(notnc, "not a readable NetCDF file")
    check("text file refused", ok, msg)
    path = fixture(os.path.join(w, "badcfg.nc"))
    set_attr(path, "config", "no section header here\n")
    ok, msg = refused(path, "'config'", "not INI text")
    check("config that is not INI refused", ok, msg)

if failures:
    for f in failures:
        sys.stderr.write(f"FAIL {f}\n")
    sys.exit(1)
print("check_open_result: OK")
