"""List the model registry, or print parameters and multiply-adds of one configuration.

    python -m kerasseg.models
    python -m kerasseg.models --arch deeplabv3plus --backbone mobilenetv2 --no-aspp --no-decoder --image-size 513
    python -m kerasseg.models --arch lraspp --backbone mobilenetv3_large --image-size 520
"""
from __future__ import annotations

import sys

from edge import console
from kerasseg.models import (BACKBONE_OPTIONS, MODELS, OPTIONS, add_option_flags, build_model, count_params_and_macs,
                             list_models, model_config)
from kerasseg.models.registry import ALPHAS

PROG = "python -m kerasseg.models"


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = console.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                    epilog="python -m kerasseg import --help: import a released DeepLab model "
                                           "(.tflite or model-zoo checkpoint) as a run directory")
    if argv[:1] == ["import"]:  # the command of an earlier release; it writes a run, a floor above the models
        parser.error("the import command is `python -m kerasseg import SOURCE --output DIR`")
    parser.add_argument("--arch", choices=list_models(), help="count this arch (without it: list the registry)")
    parser.add_argument("--num-classes", "--num_classes", dest="num_classes", type=int, default=21,
                        help="classes, background included (default 21, PASCAL VOC)")
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int, nargs="+", default=[513],
                        metavar="PIXELS", help="one side for a square, or height width (default 513)")
    add_option_flags(parser, underscores=True, notes={"backbone": "the arch's first", "output_stride": 16,
                                                      "dropout": "the arch's"})
    console.add_log_level(parser)
    args = parser.parse_args(argv)
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
    for backbone, options in BACKBONE_OPTIONS.items():
        print(f"{backbone} adds", ", ".join(f"{k}={v}" for k, v in options.items()),
              f"(alpha one of {', '.join(map(str, ALPHAS[backbone]))})")


def print_counts(args):
    height, width = (args.image_size * 2)[:2]
    options = {k: getattr(args, k) for k in OPTIONS if k not in ("backbone", "output_stride")
               and getattr(args, k) is not None}
    config = model_config(arch=args.arch, num_classes=args.num_classes, backbone=args.backbone,
                          output_stride=args.output_stride, **options)
    model = build_model(**config, input_shape=(height, width, 3))
    params, macs = count_params_and_macs(model, input_shape=(height, width, 3))
    print(", ".join(f"{k}={v}" for k, v in config.items()))
    print(f"input {height}x{width}: {params / 1e6:.3f}M parameters, {macs / 1e9:.3f}G multiply-adds")


def main(argv=None):
    args = parse_args(argv)
    console.configure(args.log_level)
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
