"""Convert a trained kerasseg model to TFLite / Edge TPU, with a parity report for each artifact.

    python convert.py --int8                  # newest run under runs/
    python convert.py --run runs/X --qat --edgetpu
    python convert.py --model best.keras --spec spec.json --dataset synthetic --float32
    python convert.py --int8 --head native full argmax

Each mode writes RUN/export/NAME_MODE.tflite (spec inside), NAME_MODE.spec.json and
NAME_MODE.parity.json for its default head, NAME_MODE_HEAD.* for any other --head.
A drop is Keras minus device mIoU, in points (positive: the artifact lost accuracy).
An artifact that drops more than --max-drop is written as NAME_MODE[_HEAD].FAILED.*
instead, and convert.py exits 1; 2 on bad input.
"""
import argparse
import sys

from edge import console
from kerasseg.export.edgetpu import REALIGN_STEPS
from kerasseg.export.export import (DEFAULT_CALIBRATION_STEPS, DEFAULT_HEADS, DEFAULT_MAX_DROP, DEFAULT_QAT_STEPS,
                                    check_options, export)
from kerasseg.export.heads import Head
from kerasseg.export.modes import Mode
from kerasseg.rundir import open_trained, target_or_newest

PROG = "convert.py"

MODE_HELP = {
    Mode.FLOAT32: "float32 weights and activations",
    Mode.FLOAT16: "float16 weights, float32 compute",
    Mode.DYNAMIC_RANGE: "int8 weights, float activations",
    Mode.INT8: "full-integer post-training quantization, uint8 input, calibrated on training images",
    Mode.QAT: "quantization-aware fine-tuning (--qat-steps at lr 3e-5), then full-integer conversion",
    Mode.EDGETPU: "full-integer, Edge-TPU-friendly rebuild; runs edgetpu_compiler if installed, op report always",
}


def parse_args(argv=None):
    parser = console.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run", type=str, default=None, help="run directory (default: the newest under --runs)")
    where.add_argument("--model", type=str, default=None, help="a .keras file (spec.json beside it, or --spec)")
    parser.add_argument("--runs", type=str, default="runs", help="where to look for the newest run (default: %(default)s)")
    parser.add_argument("--spec", type=str, default=None, help="spec JSON for --model")
    parser.add_argument("--dataset", type=str, default=None,
                        help="dataset URI for calibration, QAT and parity (default: the run's)")
    for mode in Mode:
        parser.add_argument(f"--{mode.value}", dest=mode.name.lower(), action="store_true", help=MODE_HELP[mode])
    parser.add_argument("--head", type=str, nargs="+", choices=[h.value for h in Head], default=None,
                        help="where each graph ends, one artifact per mode and head: full (scores at the input "
                             "size), native (scores at the classifier's resolution), argmax (native class ids), "
                             "full-argmax (class ids at the input size; not with --edgetpu). Default: "
                             + ", ".join(f"{target} {head.value}" for target, head in DEFAULT_HEADS.items()))
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                        help="fixed input size (default: the training crop)")
    parser.add_argument("--calibration-steps", type=int, default=DEFAULT_CALIBRATION_STEPS,
                        help="training images drawn for post-training calibration (default: %(default)s)")
    parser.add_argument("--qat-steps", type=int, default=DEFAULT_QAT_STEPS, help="quantization-aware training steps (default: %(default)s)")
    parser.add_argument("--edgetpu-finetune-steps", type=int, default=None,
                        help=f"--edgetpu: training steps after the rebuild switches resizes to the legacy alignment "
                             f"(default: {REALIGN_STEPS} when the model was trained with half-pixel resizes and "
                             f"--head includes full, else 0: a native head needs none, see the README)")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP,
                        help="a mode whose mIoU drop (Keras minus device, points) exceeds this is written as "
                             "NAME_MODE.FAILED.* and convert.py exits 1 (default: %(default)s)")
    parser.add_argument("--parity-images", type=int, default=None,
                        help="validation images for the parity report (default: all)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing export files")
    console.add_log_level(parser)
    args = parser.parse_args(argv)
    args.modes = [mode for mode in Mode if getattr(args, mode.name.lower())]
    if not args.modes:
        parser.error(f"choose at least one mode: {' '.join('--' + m.value for m in Mode)}")
    if args.spec and not args.model:
        parser.error("--spec goes with --model")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    try:
        check_options(args.modes, calibration_steps=args.calibration_steps, qat_steps=args.qat_steps,
                      heads=args.head, edgetpu_finetune_steps=args.edgetpu_finetune_steps)
        trained = open_trained(target_or_newest(args.model or args.run, runs=args.runs), spec_path=args.spec)
        results = export(trained, args.modes, dataset=args.dataset, heads=args.head, input_size=args.input_size,
                         calibration_steps=args.calibration_steps, qat_steps=args.qat_steps, max_drop=args.max_drop,
                         overwrite=args.overwrite, parity_images=args.parity_images,
                         edgetpu_finetune_steps=args.edgetpu_finetune_steps)
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as err:
        console.error(PROG, err)
        return 2
    for r in results:
        print(f"{r.mode.value:14s} {r.head.value:12s} {r.parity.verdict(hint=False):40s} {r.path}")
    failed = [r for r in results if not r.parity.passed]
    for r in failed:
        print(f"convert.py: [{r.mode.value}/{r.head.value}] {r.parity.verdict()}; written as {r.path}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
