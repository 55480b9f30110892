#!/usr/bin/python3
"""Figures from a plateau result (entry point; the code and its documentation are in
plateau_analysis/figures.py).

usage: /usr/bin/python3 analysis/plot_curves.py RESULT.nc -o DIR [--metric M [M ...]]
                        [--format png|pdf|svg ...] [--dpi N] [--seed S] [--bootstrap N] [--position N]
"""
import sys

try:  # the script's own directory is on sys.path, so the package beside it imports as is
    from plateau_analysis.figures import main
except ImportError as e:
    sys.stderr.write(f"plot_curves.py: {e}: run with /usr/bin/python3 (Debian's python3-numpy, python3-xarray, "
                     "python3-netcdf4, python3-matplotlib)\n")
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
