"""plateau_analysis: reading plateau results in Python.

    from plateau_analysis import open_result
    ds = open_result("results/plateau.nc")        # lazy xarray.Dataset, attributes decoded
    ds.plateau.config["perturb"]["step_mode"]     # the run's resolved INI config, parsed

The scripts analysis/plot_curves.py and analysis/summary.py are thin entry points to
plateau_analysis.figures and plateau_analysis.table. Import it with analysis/ on the path (run
from the repository root with PYTHONPATH=analysis, or see docs/analysis.md for a one-time setup).
Needs numpy and xarray with the netCDF4 engine (Debian: /usr/bin/python3 with python3-numpy,
python3-xarray, python3-netcdf4); the figures also need matplotlib.
"""
from .result import (ALPHA_LABELS, METRICS, SCORES, Result, ResultError, decode_attrs, encode_attrs,
                     open_result, parse_config)

__all__ = ["open_result", "parse_config", "decode_attrs", "encode_attrs", "Result", "ResultError", "METRICS", "SCORES",
           "ALPHA_LABELS"]
