"""Build a fixture result in the documented layout (make_fixture.py) and check both analysis scripts
on it (check_analysis.py). These cover shapes the smoke job does not write.

usage: fixture_test.py single|merged|aggregates|merged-aggregates|one-kind
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = os.environ.get("PYTHON", sys.executable)

CASES = {
    # every metric, both bases, three directions, raw curves
    "single": ([], 0),
    # merged file: a leading hook dimension, one panel row / table block per hook
    "merged": (["--hooks", "3", "--metrics", "kl,cosine"], 3),
    # raw_curves = false: bands from <m>_quantiles, medians from <m>_median
    # ... with other quantile levels ([output] quantiles): bands are the symmetric pairs present
    "aggregates": (["--no-raw", "--metrics", "jsd,l2", "--prompts", "31", "--samples", "1",
                    "--quantiles", "0.1,0.25,0.5,0.75,0.9"], 0),
    "merged-aggregates": (["--no-raw", "--hooks", "2", "--metrics", "kl", "--steps", "11"], 2),
    # a single kind: no plateau or direction comparison figures, no ratios
    "one-kind": (["--bases", "real", "--directions", "isotropic", "--metrics", "kl,l2", "--prompts", "9"], 0),
}

case = sys.argv[1] if len(sys.argv) == 2 else None
if case not in CASES:
    sys.exit(f"usage: fixture_test.py {'|'.join(CASES)}")
args, hooks = CASES[case]
with tempfile.TemporaryDirectory(prefix="plateau-fixture-") as work:
    path = os.path.join(work, f"{case}.nc")
    subprocess.run([PYTHON, os.path.join(HERE, "make_fixture.py"), path] + args, check=True)
    rc = subprocess.run([PYTHON, os.path.join(HERE, "check_analysis.py"), path, "--hooks", str(hooks)]).returncode
sys.exit(rc)
