"""List the model registry, or print parameters and multiply-adds of one configuration.

    python -m kerasseg.models
    python -m kerasseg.models --arch deeplabv3plus --backbone mobilenetv2 --no-aspp --no-decoder --image-size 513
    python -m kerasseg.models import SOURCE --output DIR   # a released DeepLab model as a run directory
    python -m kerasseg.models --arch lraspp --backbone mobilenetv3_large --image-size 520
"""
from __future__ import annotations

import argparse
import sys

from edge import console
from kerasseg.models import (BACKBONES, MOBILENETV2_ALPHAS, MOBILENETV3_ALPHAS, MODELS, OPTION_DOCS, build_model,
                             count_params_and_macs, list_models, model_config)

PROG = "python -m kerasseg.models"


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["import"]:  # python -m kerasseg.models import SOURCE --output DIR
        from kerasseg.models.importing.cli import parse_args as parse_import
        return parse_import(argv[1:])
    parser = console.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                    epilog="python -m kerasseg.models import --help: import a released DeepLab "
                                           "model (.tflite or model-zoo checkpoint) as a run directory")
    parser.add_argument("--arch", choices=list_models(), help="count this arch (without it: list the registry)")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), help="default: the arch's first backbone")
    parser.add_argument("--output-stride", "--output_stride", dest="output_stride", type=int, choices=(8, 16, 32),
                        help="DeepLab only (default 16); FCN is fixed at 32")
    parser.add_argument("--num-classes", "--num_classes", dest="num_classes", type=int, default=21,
                        help="classes, background included (default 21, PASCAL VOC)")
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int, nargs="+", default=[513],
                        metavar="PIXELS", help="one side for a square, or height width (default 513)")
    parser.add_argument("--alpha", type=float, choices=sorted(set(MOBILENETV2_ALPHAS + MOBILENETV3_ALPHAS)),
                        help=OPTION_DOCS["alpha"])
    parser.add_argument("--dropout", type=float, help=OPTION_DOCS["dropout"])
    for flag in ("aspp", "decoder", "edgetpu_friendly", "minimalistic"):
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, action=argparse.BooleanOptionalAction,
                            help=OPTION_DOCS[flag])
    console.add_log_level(parser)
    args = parser.parse_args(argv)
    args.command = None
    if len(args.image_size) not in (1, 2):
        parser.error(f"--image-size: give one or two numbers, got {args.image_size}")
    return args


def print_registry():
    width = max(len(", ".join(MODELS[arch].backbones)) for arch in list_models())
    print(f"{'arch':<15} {'backbones':<{width}} {'output strides':<15} options (default)")
    for arch in list_models():
        entry = MODELS[arch]
        options = ", ".join(f"{k}={v}" for k, v in entry.options.items())
        strides = "/".join(map(str, entry.output_strides))
        print(f"{arch:<15} {', '.join(entry.backbones):<{width}} {strides:<15} {options}")
    print("mobilenetv2 adds alpha=1.0, one of", ", ".join(map(str, MOBILENETV2_ALPHAS)))
    print("mobilenetv3_large and mobilenetv3_small add alpha=1.0, one of", ", ".join(map(str, MOBILENETV3_ALPHAS)),
          "and minimalistic=False")


def print_counts(args):
    height, width = (args.image_size * 2)[:2]
    names = ("alpha", "dropout", "aspp", "decoder", "edgetpu_friendly", "minimalistic")
    options = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    config = model_config(arch=args.arch, num_classes=args.num_classes, backbone=args.backbone,
                          output_stride=args.output_stride, **options)
    model = build_model(**config, input_shape=(height, width, 3))
    params, macs = count_params_and_macs(model, input_shape=(height, width, 3))
    print(", ".join(f"{k}={v}" for k, v in config.items()))
    print(f"input {height}x{width}: {params / 1e6:.3f}M parameters, {macs / 1e9:.3f}G multiply-adds")


def main(argv=None):
    args = parse_args(argv)
    console.configure(args.log_level)
    if args.command == "import":
        from kerasseg.models.importing.cli import run
        return run(args)
    if args.arch is None:
        print_registry()
        return 0
    try:
        print_counts(args)
    except ValueError as err:
        console.error(PROG, err)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
