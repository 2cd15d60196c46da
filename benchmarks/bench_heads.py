"""Invoke time of each export head (full, native, argmax, full-argmax), int8, side by side.

    python benchmarks/bench_heads.py                         # DeepLab MobileNetV2 mobile head at 513 and 257
    python benchmarks/bench_heads.py --sizes 513 --runs 60 --threads 1

The model is DeepLab with MobileNetV2 (alpha 1.0), 1x1 + image pooling, no decoder, output
stride 16, 21 classes, random weights (speed does not depend on them). Each head is converted
full-integer (uint8 in), and at the largest size two more pairs are timed: the scores heads
with a uint8 against an int8 output, and the ARG_MAX heads with uint8 ids (ARG_MAX then CAST)
against int32 ids (ARG_MAX alone). All variants of one size are timed in one process, one
invoke of each in turn, so background load hits each alike; p50 is the median, and the minimum
is shown too, since on a loaded machine it tracks the model's own cost best.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the repository (kerasseg) and benchmarks/ (bench_int8)

from bench_int8 import _interpreter, calibration_for, cpu_simd  # noqa: E402

from kerasseg.backend import keras  # noqa: E402
from kerasseg.export import tflite  # noqa: E402
from kerasseg.export.heads import ArgMaxIds, Head, cut  # noqa: E402
from kerasseg.export.modes import Mode  # noqa: E402

MODEL = dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=1.0, aspp=False, decoder=False, num_classes=21)


def variants(size: int, *, calibration_steps: int, types: bool, keep: str | None) -> dict:
    """{label: int8 .tflite bytes} for every head at ``size`` (and the output-type variants if ``types``).

    With ``keep``, models are saved there and a saved model is used instead of converting again.
    """
    if keep and os.path.isfile(_kept(keep, size, Head.FULL.value)):
        labels = [head.value for head in Head] + (list(TYPE_VARIANTS) if types else [])
        if all(os.path.isfile(_kept(keep, size, label)) for label in labels):
            return {label: open(_kept(keep, size, label), "rb").read() for label in labels}
    from kerasseg.models import build_model
    model = build_model(**MODEL, input_shape=(size, size, 3))
    calibration = calibration_for(size, calibration_steps)

    def convert(ending, scores_type="uint8"):
        return tflite.convert(ending, mode=Mode.INT8, input_size=(size, size), calibration=calibration,
                              scores_type=scores_type)

    out = {head.value: convert(cut(model, head)[0]) for head in Head}
    if types:
        native = cut(model, Head.NATIVE)[0]
        out["full, int8 scores"] = convert(model, "int8")
        out["native, int8 scores"] = convert(native, "int8")
        for head, scores in ((Head.ARGMAX, native.outputs[0]), (Head.FULL_ARGMAX, model.outputs[0])):
            ids = ArgMaxIds(ids_type="int32", name="class_ids")(scores)
            out[f"{head.value}, int32 ids"] = convert(keras.Model(model.inputs, ids))
    if keep:
        os.makedirs(keep, exist_ok=True)
        for label, content in out.items():
            with open(_kept(keep, size, label), "wb") as f:
                f.write(content)
    return out


TYPE_VARIANTS = ("full, int8 scores", "native, int8 scores", "argmax, int32 ids", "full-argmax, int32 ids")


def _kept(folder: str, size: int, label: str) -> str:
    return os.path.join(folder, f"{size}_{label.replace(', ', '_').replace(' ', '_')}.tflite")


def interleaved(contents: dict, *, threads: int, runs: int, warmup: int = 3) -> dict:
    """{label: seconds of each invoke}, one invoke of each model in turn, ``runs`` turns."""
    interpreters = {label: _interpreter(content, threads=threads) for label, content in contents.items()}
    for interpreter in interpreters.values():
        for _ in range(warmup):
            interpreter.invoke()
    times = {label: np.empty(runs) for label in interpreters}
    for run in range(runs):
        for label, interpreter in interpreters.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[label][run] = time.perf_counter() - start
    return times


def output_of(content: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter
    detail = Interpreter(model_content=content).get_output_details()[0]
    return f"{'x'.join(str(int(v)) for v in detail['shape'][1:])} {detail['dtype'].__name__}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[513, 257], help="input sizes (square)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=60, help="timed invokes per variant (default: %(default)s)")
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--keep", type=str, default=None,
                        help="folder to save the converted models in, and to reuse them from on the next run")
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_simd()}")
    print(f"model: {MODEL}, int8, {args.threads} thread(s), {args.runs} invokes each, interleaved")
    for size in args.sizes:
        contents = variants(size, calibration_steps=args.calibration_steps, types=size == max(args.sizes),
                            keep=args.keep)
        times = interleaved(contents, threads=args.threads, runs=args.runs)
        base = np.median(times[Head.FULL.value])
        print(f"\n{size}x{size}")
        print(f"{'head':<26s} {'output':<16s} {'p50 ms':>8s} {'min ms':>8s} {'p90 ms':>8s} {'p50 vs full':>12s}")
        for label, seconds in times.items():
            p50, low, p90 = np.median(seconds), seconds.min(), np.percentile(seconds, 90)
            print(f"{label:<26s} {output_of(contents[label]):<16s} {1e3 * p50:8.2f} {1e3 * low:8.2f} "
                  f"{1e3 * p90:8.2f} {base / p50:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
