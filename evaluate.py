#!/usr/bin/env python
"""Evaluate a trained model: the FCN paper's four metrics and per-class IoU on a dataset split.

    python evaluate.py runs/20260101-120000-deeplabv3plus                  # single scale, the run's dataset
    python evaluate.py runs/... --scales 0.5 0.75 1.0 1.25 1.5 1.75 --flip  # multi-scale + flip
    python evaluate.py runs/.../best.keras --dataset voc:/data/VOC2012 --crf  # a model file; with a dense CRF

A model file needs spec.json beside it (a run directory has one).
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=str, metavar="RUN_DIR_OR_MODEL", help="a run directory or a .keras model")
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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerasseg.data import DatasetError, build_pipeline, open_dataset
    from kerasseg.models import load_model, min_input_size
    from kerasseg.artifact import Spec, SpecError
    from kerasseg.training import RunError, format_results, load_run
    from kerasseg.training.evaluation import evaluate
    from kerasseg.files import write_json

    try:
        # A run directory gives model, spec and dataset; a model file needs its spec beside it.
        if os.path.isdir(args.target):
            run = load_run(args.target)
            model_path = run.model_path if args.which == "best" else run.last_model_path
            spec, config = run.spec, run.config
        else:
            model_path = args.target
            if not os.path.isfile(model_path):
                raise FileNotFoundError(f"RUN_DIR_OR_MODEL: no such directory or model file: {model_path}")
            spec, config = Spec.load(os.path.dirname(os.path.abspath(model_path))), {}
        dataset_uri = args.dataset or config.get("train", {}).get("dataset")
        if not dataset_uri:
            raise ValueError("--dataset: required when evaluating a model file outside a run directory")
        source = open_dataset(dataset_uri, seed=config.get("train", {}).get("seed", 0))
        if list(source.labels) != list(spec.labels):
            raise ValueError(f"--dataset {dataset_uri}: its classes {list(source.labels)} differ from the "
                             f"model's {list(spec.labels)}")
        dataset = build_pipeline(source, split=args.split, image_size=spec.input_size, batch_size=args.batch_size,
                                 training=False, mean_pixel=spec.mean)
        model_config = config.get("model", {})
        multiple = min_input_size(arch=model_config["arch"], output_stride=model_config.get("output_stride")) \
            if model_config else 32
        model = load_model(model_path)
        out = evaluate(model, dataset, num_classes=spec.num_classes, labels=spec.labels, scales=args.scales,
                       flip=args.flip, crf=args.crf, ignore_label=spec.ignore_label, size_multiple=multiple)
    except (ValueError, FileNotFoundError, ImportError, RunError, DatasetError, SpecError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

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
