#!/usr/bin/env python
"""Evaluate a trained model: the FCN paper's four metrics and per-class IoU on a dataset split.

    python evaluate.py                                                     # the newest run under runs/
    python evaluate.py runs/20260101-120000-deeplabv3plus --scales 0.5 0.75 1.0 1.25 1.5 1.75 --flip
    python evaluate.py runs/.../best.keras --dataset voc:/data/VOC2012 --crf  # a model file; with a dense CRF

A model file needs its spec: --spec FILE, or spec.json beside it (a run directory has one). A config.yaml beside
it names the dataset; without one, give --dataset. Exit 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys

from edge import console

PROG = "evaluate.py"


def parse_args(argv=None) -> argparse.Namespace:
    parser = console.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=str, nargs="?", default=None, metavar="RUN_DIR_OR_MODEL",
                        help="a run directory or a .keras model (default: the newest run under runs/)")
    parser.add_argument("--spec", type=str, metavar="FILE",
                        help="the spec of a model file (default: spec.json beside it)")
    parser.add_argument("--dataset", type=str, metavar="URI", help="dataset URI (default: the run's)")
    parser.add_argument("--split", type=str, choices=("train", "val"), default="val", help="default: val")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="S",
                        help="image scales whose softmax is averaged (default: 1.0)")
    parser.add_argument("--flip", action="store_true", help="also average the left-right flipped image")
    parser.add_argument("--crf", action="store_true", help="also report mIoU after a dense CRF (needs pydensecrf2)")
    parser.add_argument("--batch-size", type=int, default=8, help="default: 8")
    parser.add_argument("--which", type=str, choices=("best", "last"), default="best",
                        help="for a run directory: best.keras or last.keras (default: best)")
    parser.add_argument("--output", type=str, metavar="FILE.json", help="also write the results as JSON")
    console.add_log_level(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    from kerasseg.data import DatasetError, build_pipeline
    from kerasseg.models import min_input_size
    from kerasseg.training import format_results
    from kerasseg.training.evaluation import evaluate
    from kerasseg.data.sources import open_data
    from kerasseg.rundir import open_trained, target_or_newest
    from edge.files import write_json

    try:
        trained = open_trained(target_or_newest(args.target), spec_path=args.spec, which=args.which)
        source = open_data(trained, args.dataset)
        spec, kwargs = trained.spec, trained.model_kwargs
        dataset = build_pipeline(source, split=args.split, image_size=spec.input_size, batch_size=args.batch_size,
                                 training=False, mean_pixel=spec.mean)
        multiple = min_input_size(arch=kwargs["arch"], output_stride=kwargs.get("output_stride")) if kwargs else 32
        out = evaluate(trained.model, dataset, num_classes=spec.num_classes, labels=spec.labels, scales=args.scales,
                       flip=args.flip, crf=args.crf, ignore_label=spec.ignore_label, size_multiple=multiple)
    except (ValueError, FileNotFoundError, ImportError, DatasetError) as err:
        console.error(PROG, err)
        return 2

    model_path, dataset_uri = trained.model_path, args.dataset or trained.dataset
    mode = f"scales {args.scales}" + (" + flip" if args.flip else "")
    print(format_results(out["results"], title=f"{model_path} on {dataset_uri} ({args.split}), {mode}:"))
    report = {"model": model_path, "dataset": dataset_uri, "split": args.split, "scales": args.scales,
              "flip": args.flip, "results": out["results"]}
    if args.crf:
        print(format_results(out["crf_results"], title="with the dense CRF:"))
        print(f"mean IoU without CRF {out['results']['mean_iou']:.4f}, with CRF {out['crf_results']['mean_iou']:.4f}")
        report["crf_results"] = out["crf_results"]
    if args.output:
        write_json(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
