#!/usr/bin/python3
"""The numbers a paper quotes from a plateau result (entry point; the code and its documentation
are in plateau_analysis/table.py).

usage: /usr/bin/python3 analysis/summary.py RESULT.nc [--csv] [--metric M [M ...]] [--score S [S ...]]
                                            [--alpha A [A ...]] [--seed S] [--bootstrap N] [--position N]
"""
import sys

try:  # the script's own directory is on sys.path, so the package beside it imports as is
    from plateau_analysis.table import main
except ImportError as e:
    sys.stderr.write(f"summary.py: {e}: run with /usr/bin/python3 (Debian's python3-numpy, python3-xarray, "
                     "python3-netcdf4)\n")
    sys.exit(2)

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `summary.py x.nc | head` is normal use
        sys.stderr.close()
        sys.exit(0)
