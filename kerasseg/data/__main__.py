"""``python -m kerasseg.data check URI``: print the dataset check; exit 1 naming the bad files.

``python -m kerasseg.data clip --output clip.mp4``: a sample video for ``python -m edge``, from the validation
images of a run's dataset (the newest run's by default), or of the built-in dataset when there is no run.
Exit 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys

from edge import console
from edge.files import write_json
from kerasseg.data.base import SPLITS, DatasetError
from kerasseg.data.check import DatasetCheckError, check_dataset
from kerasseg.data.sources import open_dataset, with_options

PROG = "python -m kerasseg.data"


def parse_args(argv=None) -> argparse.Namespace:
    parser = console.ArgumentParser(prog=PROG, description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
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
    console.add_log_level(check)
    _clip_parser(commands)
    return parser.parse_args(argv)


def _clip_parser(commands) -> None:
    from kerasseg.data import clip

    parser = commands.add_parser("clip", help="write a short video (and optionally the still images) from a run's "
                                              "validation images, for python -m edge and predict.py")
    parser.add_argument("--output", type=str, required=True, metavar="FILE.mp4",
                        help="the video to write (.mp4, .m4v, .mov, .avi or .mkv)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run", type=str, default=None,
                       help="a run directory: its dataset and seed (default: the newest run under runs/, else the "
                            "built-in dataset)")
    where.add_argument("--dataset", type=str, default=None, metavar="URI", help="a dataset URI instead of a run's")
    parser.add_argument("--images", type=int, default=clip.DEFAULT_IMAGES,
                        help="validation images in the clip (default: %(default)s)")
    parser.add_argument("--seconds-per-image", type=float, default=clip.DEFAULT_SECONDS_PER_IMAGE,
                        help="how long the view pans across each image (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=clip.DEFAULT_FPS, help="frame rate (default: %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=list(clip.DEFAULT_SIZE), metavar=("HEIGHT", "WIDTH"),
                        help="frame size (default: %(default)s, a camera's)")
    parser.add_argument("--stills", type=str, default=None, metavar="DIR",
                        help="also write the images themselves into DIR as PNG files (for predict.py)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a --dataset (default: %(default)s)")
    console.add_log_level(parser)


def clip_source(args):
    """(dataset source, what it is in words) for ``clip``: --dataset, --run, the newest run, else the built-in one
    (also when the newest run was imported and names no dataset)."""
    from kerasseg.data.sources import DEFAULT_URI
    from kerasseg.rundir import RunError, latest_run, load_run

    if args.dataset:
        return open_dataset(args.dataset, seed=args.seed), f"dataset {args.dataset}"
    if args.run is not None:
        try:
            run = load_run(args.run, require_model=False)
        except RunError as err:
            raise ValueError(f"--run: {err}") from None
        if run.dataset is None:
            raise ValueError(f"--run {args.run}: the run names no dataset (an imported model); pass --dataset URI")
    else:
        try:
            run = latest_run(require_model=False)
        except RunError:
            return open_dataset(DEFAULT_URI, seed=args.seed), f"the built-in dataset ({DEFAULT_URI}; no run under runs/)"
        if run.dataset is None:
            return (open_dataset(DEFAULT_URI, seed=args.seed),
                    f"the built-in dataset ({DEFAULT_URI}; the newest run, {run.path}, names no dataset)")
    return open_dataset(run.dataset, seed=run.seed), f"run {run.path} (dataset {run.dataset})"


def make_clip(args) -> int:
    from kerasseg.data.clip import write_clip

    source, what = clip_source(args)
    made = write_clip(source, args.output, images=args.images, size=tuple(args.size), fps=args.fps,
                      seconds_per_image=args.seconds_per_image, stills_dir=args.stills)
    print(f"Wrote {made.path}: {made.frames} frames of {made.size[1]}x{made.size[0]} at {made.fps:g} FPS, panning "
          f"across {made.images} validation images of {what}")
    if made.stills:
        print(f"Wrote {len(made.stills)} images to {args.stills}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    if args.command == "clip":
        try:
            return make_clip(args)
        except (DatasetError, ValueError, OSError) as err:
            console.error(PROG, err)
            return 2
    try:
        uri = with_options(args.dataset, val_fraction=args.val_fraction, colormap=args.colormap)
        source = open_dataset(uri, seed=args.seed)
        report = check_dataset(source, splits=args.splits, max_examples=args.max_examples)
    except DatasetCheckError as err:
        print(err.report.format())
        console.error(PROG, err)
        return 1
    except (DatasetError, ValueError) as err:
        console.error(PROG, err)
        return 2
    print(report.format())
    if args.json:
        write_json(args.json, report.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
