"""The package's own commands, a floor above the model zoo and the run directory.

    python -m kerasseg import SOURCE --output DIR   # a released DeepLab model as a run directory

(``python -m kerasseg.models`` lists the registry and counts a model; ``python -m kerasseg.data`` checks a
dataset and writes a sample clip.)
"""
from __future__ import annotations

import argparse
import sys

from edge import console

COMMANDS = {"import": "import a released DeepLab model (.tflite or model-zoo checkpoint) as a run directory"}


def parse_args(argv=None) -> argparse.Namespace:
    """The command's own arguments (``import``: kerasseg.rundir.imported's); anything else exits 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["import"]:
        from kerasseg.rundir import imported

        return imported.parse_args(argv[1:])
    parser = console.ArgumentParser(prog="python -m kerasseg", description=__doc__.splitlines()[0],
                                    epilog="; ".join(f"{name}: {text}" for name, text in COMMANDS.items()))
    parser.add_argument("command", choices=list(COMMANDS), help="then COMMAND --help for its options")
    parser.parse_args(argv[:1])  # --help exits 0; a missing or unknown command exits 2, naming the choices
    parser.error(f"unknown command {argv[:1]}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerasseg.rundir import imported

    console.configure(args.log_level)
    return imported.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
