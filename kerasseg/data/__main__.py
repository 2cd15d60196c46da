"""``python -m kerasseg.data check URI``: print the dataset check; exit 1 naming the bad files."""
from __future__ import annotations

import argparse
import sys

from edge.files import write_json
from kerasseg.data.base import SPLITS, DatasetError
from kerasseg.data.check import DatasetCheckError, check_dataset
from kerasseg.data.sources import open_dataset, with_options


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kerasseg.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="read every example and print the class histogram, label values, "
                                              "size mismatches and ignore share")
    check.add_argument("dataset", type=str,
                       help="dataset URI: synthetic, voc:PATH, folder:PATH, coco:PATH, ade20k:PATH, tfds:NAME")
    check.add_argument("--val-fraction", type=float, default=None,
                       help="share of the images that form val when the dataset has no split lists (default 0.2)")
    check.add_argument("--colormap", type=str, default=None, metavar="FILE",
                       help="colour map of colour (RGB) masks: lines 'name:R,G,B', as in CVAT's labelmap.txt")
    check.add_argument("--splits", type=str, nargs="+", choices=SPLITS, default=list(SPLITS))
    check.add_argument("--max-examples", type=int, default=None, help="read at most this many examples per split")
    check.add_argument("--seed", type=int, default=0, help="seed of the dataset (synthetic images, folder split)")
    check.add_argument("--json", type=str, default=None, help="also write the report as JSON to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        uri = with_options(args.dataset, val_fraction=args.val_fraction, colormap=args.colormap)
        source = open_dataset(uri, seed=args.seed)
        report = check_dataset(source, splits=args.splits, max_examples=args.max_examples)
    except DatasetCheckError as err:
        print(err.report.format())
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.format())
    if args.json:
        write_json(args.json, report.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
