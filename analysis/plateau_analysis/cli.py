"""What both command-line scripts share: one-line errors with plateau's exit codes, an argument
parser that exits 1 on a bad command line, and progress lines that survive a closed pipe."""
import argparse
import os
import sys

from .result import EXIT_INPUT, EXIT_USAGE


def die(script, message, code=EXIT_INPUT):
    sys.stderr.write(f"{script}: {message}\n")
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    """argparse with plateau's usage error: one line, exit 1."""

    def error(self, message):
        die(self.prog, f"{message} (see --help)", EXIT_USAGE)


def say(line):
    """A line on stdout; a closed pipe (`script ... | head`) must not stop the work."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")
