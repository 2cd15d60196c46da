#!/usr/bin/env python
"""Train a segmentation model and write a run directory (config, spec, checkpoints, best model, metrics).

    python train.py --arch deeplabv3plus                      # the main job: built-in dataset, ~10 min on a CPU
    python train.py --config my.yaml --epochs 50              # YAML sets any flag below; flags override it
    python train.py --resume runs/20260101-120000-deeplabv3plus  # continue an interrupted run

Settings not given come from the architecture (FCN uses the paper's SGD settings) and then the defaults.
"""
from __future__ import annotations

import argparse
import sys

from edge import console
from kerasseg.training.config import CLASS_WEIGHTS, OPTIMIZERS, STRATEGIES, TrainConfig, normalize_image_size

PROG = "train.py"


def parse_args(argv=None) -> argparse.Namespace:
    # Every setting defaults to None ("not given") so that the YAML file and the arch defaults can fill it.
    parser = console.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=str, metavar="FILE.yaml",
                        help="YAML file with any of the settings below (keys are the flag names with underscores)")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", type=str, choices=_archs(), help=f"architecture (default: {TrainConfig.arch})")
    _model_flags(model)
    model.add_argument("--backbone-weights", type=str, metavar="PATH_OR_imagenet",
                       help="initial backbone weights: 'imagenet' or a weights file (default: random)")
    model.add_argument("--init-from", type=str, metavar="SOURCE", help="fine-tune a trained model (architecture "
                       "included): a released DeepLab .tflite or model-zoo checkpoint, a run directory or a .keras")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", type=str, metavar="URI",
                      help="synthetic (default), voc:PATH, folder:PATH, coco:PATH, ade20k:PATH or tfds:NAME "
                           "(see kerasseg.data)")
    data.add_argument("--val-fraction", type=float, metavar="F",
                      help="share of images that form val when the dataset has no split lists (default: 0.2)")
    data.add_argument("--colormap", type=str, metavar="FILE",
                      help="colour map of RGB masks: lines 'name:R,G,B', as in CVAT's labelmap.txt")
    data.add_argument("--image-size", type=int, nargs="+", metavar="N",
                      help=f"training crop: N or HEIGHT WIDTH (default: {TrainConfig.image_size[0]})")
    data.add_argument("--scale-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                      help="random scale augmentation (default: the dataset's; 0.5 2.0 for real datasets)")
    data.add_argument("--class-weights", type=str, choices=CLASS_WEIGHTS,
                      help="'auto' weighs the loss by median frequency balancing of the train labels (default: none)")
    data.add_argument("--check-data", action="store_true", help="print the dataset check before training")
    data.add_argument("--skip-bad-files", action=argparse.BooleanOptionalAction, default=None,
                      help="skip bad files instead of stopping; they are counted per split, with their reasons, in "
                           "the log, metrics.json and the final summary")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, help=f"default: {TrainConfig.epochs}")
    opt.add_argument("--steps-per-epoch", type=int, help="default: train images // batch size")
    opt.add_argument("--batch-size", type=int, help=f"global batch size over all replicas (default: {TrainConfig.batch_size})")
    opt.add_argument("--learning-rate", type=float, help="peak learning rate (default: DeepLab 0.02 from random weights, 0.001 with "
                          "--backbone-weights; FCN 1e-4)")
    opt.add_argument("--optimizer", type=str, choices=OPTIMIZERS, help="default: per arch (FCN: sgd)")
    opt.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    opt.add_argument("--weight-decay", type=float, help="decoupled weight decay (default: per arch; FCN: 5e-4)")
    opt.add_argument("--warmup-steps", type=int, help="linear warm-up before the poly (power 0.9) decay")
    opt.add_argument("--seed", type=int, help="seed for the data order and augmentation (default: 0)")
    hw = parser.add_argument_group("hardware")
    hw.add_argument("--strategy", type=str, choices=STRATEGIES,
                    help="tf.distribute strategy; 'auto' mirrors over several GPUs, multi_worker reads TF_CONFIG")
    hw.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                    help="mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU; logits stay float32")
    opt.add_argument("--bn-momentum", type=float,
                     help="moving-average momentum of every batch norm (default: DeepLab 0.9, else the model's)")
    hw.add_argument("--sync-batch-norm", action=argparse.BooleanOptionalAction, default=None,
                    help="batch-norm statistics over all replicas")
    run = parser.add_argument_group("run directory")
    run.add_argument("--output-dir", type=str, help="run directory (default: a new folder under runs/)")
    run.add_argument("--resume", type=str, nargs="?", const="", metavar="RUN_DIR",
                     help="continue a run from its last checkpoint (RUN_DIR, else --output-dir, else the latest run)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    console.add_log_level(parser)
    return parser.parse_args(argv)


def _archs():
    from kerasseg.models import list_models
    return list_models()


def _model_flags(group):
    """The build options of the model registry's table that training takes, with their training defaults."""
    from kerasseg.models import add_option_flags
    add_option_flags(group, training=True, notes={
        "backbone": "the arch's", "output_stride": 16, "alpha": "0.35 for DeepLab MobileNetV2, else 1.0",
        "dropout": "the arch's"})

def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    from kerasseg.data import DatasetError
    from edge.artifact import SpecError
    from kerasseg.rundir import RunError, latest_run, read_config
    from kerasseg.training import NonFiniteLossError, TrainingInterrupted, format_results, train
    from kerasseg.training.config import FIELDS, read_yaml
    from kerasseg.training.init_from import resolve_with_source

    try:
        # Settings: saved run (when resuming) < arch defaults < YAML < flags.
        overrides = {k: v for k, v in vars(args).items() if k in FIELDS and v is not None}
        if args.image_size is not None:
            overrides["image_size"] = normalize_image_size(args.image_size)
        yaml_values = read_yaml(args.config) if args.config else {}
        output_dir, resume = args.output_dir, args.resume is not None
        base = None
        if resume:
            output_dir = (args.resume or args.output_dir
                          or latest_run(require_model=False, require_checkpoint=True).path)
            base = read_config(output_dir)["train"]
        if args.val_fraction is not None or args.colormap:  # data options travel in the dataset URI
            from kerasseg.data import DEFAULT_URI, with_options
            uri = overrides.get("dataset") or yaml_values.get("dataset") or (base or {}).get("dataset") or DEFAULT_URI
            overrides["dataset"] = with_options(uri, val_fraction=args.val_fraction, colormap=args.colormap)
        config, init_source = resolve_with_source(overrides=overrides, yaml_values=yaml_values, base=base)
        result = train(config, output_dir=output_dir, resume=resume, check_data=args.check_data,
                       verbose=not args.quiet, init_source=init_source)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130 if stop.signal_name == "SIGINT" else 143
    except NonFiniteLossError as err:
        console.error(PROG, err)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError, RunError, DatasetError, SpecError) as err:
        console.error(PROG, err)
        return 2

    print(format_results(result.best, title=f"Final val metrics (best epoch {result.best_epoch} of "
                                            f"{len(result.history)}, {result.seconds / 60:.1f} min):"))
    for split, messages in result.skipped_files.items():
        print(f"Skipped {len(messages)} bad file(s) in {split}:\n  " + "\n  ".join(messages))
    print(f"Run directory: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
