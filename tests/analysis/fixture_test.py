"""Build a fixture result in the documented layout (make_fixture.py) and check both analysis scripts
on it (check_analysis.py). These cover shapes the smoke job does not write.

usage: fixture_test.py single|merged|aggregates|merged-aggregates|one-kind|formats
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = os.environ.get("PYTHON", sys.executable)

# case: (make_fixture.py arguments, check_analysis.py arguments)
CASES = {
    # both bases, three directions, raw curves with NaN and ±inf in some of them, all five scores:
    # figures of 1, 2, 3 and 5 panels; paired statistics computed (the file has none)
    "single": (["--metrics", "kl,cosine", "--nonfinite"], []),
    # merged file: a row of panels per hook, scores against the hook; paired statistics as plateau's
    # C side writes them; synthetic_model as a CF 0/1 integer
    "merged": (["--hooks", "2", "--metrics", "kl", "--paired", "--bool-int", "--prompts", "12", "--samples", "2"],
               ["--hooks", "2"]),
    # raw_curves = false: bands from <m>_quantiles, medians from <m>_median, other quantile levels;
    # one sample ("1 sample"); the scores of today's files only
    "aggregates": (["--no-raw", "--metrics", "jsd", "--prompts", "31", "--samples", "1",
                    "--quantiles", "0.1,0.25,0.5,0.75,0.9", "--scores", "onset,max_slope_alpha,sharpness"], []),
    "merged-aggregates": (["--no-raw", "--hooks", "2", "--metrics", "kl", "--steps", "11"], ["--hooks", "2"]),
    # a single kind: no plateau or direction comparison figures, no paired comparisons; one prompt
    "one-kind": (["--bases", "real", "--directions", "isotropic", "--metrics", "l2", "--prompts", "1",
                  "--samples", "4"], []),
    # --format png, pdf and svg; a real model; step_mode absolute and an alpha without attributes, so
    # the α label comes from the config; paired statistics with one variable per field
    "formats": (["--metrics", "kl", "--real-model", "--step-mode", "absolute", "--no-alpha-attrs",
                 "--directions", "cov_random,real_other", "--prompts", "8", "--samples", "2", "--paired-flat"],
                ["--formats", "png,pdf,svg"]),
}

case = sys.argv[1] if len(sys.argv) == 2 else None
if case not in CASES:
    sys.exit(f"usage: fixture_test.py {'|'.join(CASES)}")
make_args, check_args = CASES[case]
with tempfile.TemporaryDirectory(prefix="plateau-fixture-") as work:
    path = os.path.join(work, f"{case}.nc")
    subprocess.run([PYTHON, os.path.join(HERE, "make_fixture.py"), path] + make_args, check=True)
    rc = subprocess.run([PYTHON, os.path.join(HERE, "check_analysis.py"), path] + check_args).returncode
sys.exit(rc)
