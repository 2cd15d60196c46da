"""int8 vs float TFLite latency in ai_edge_litert, the runtime's int8 peak, and QAT/PTQ quality.

    python benchmarks/bench_int8.py                      # DeepLabv3+ MobileNetV2 at 257, 1 and 2 threads
    python benchmarks/bench_int8.py --models deeplab257 deeplab513 fcn224
    python benchmarks/bench_int8.py --run runs/X          # also QAT and PTQ mIoU drop on the run's val set

Latency is p50/p90 over --runs invocations after warm-up, for float32, float16,
dynamic-range and int8 conversions of the same (randomly initialised) model.
The peak is the multiply-add rate of a large int8 1x1 convolution in the same
runtime; the model's rate (its multiply-adds over its p50) is reported as a share
of it. Goals: int8 >= 2.5x faster than float32 on one thread; DeepLabv3+
MobileNetV2 int8 >= 50% of peak.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kerasseg.backend import keras, layers  # noqa: E402
from kerasseg.export import edgetpu, tflite  # noqa: E402
from kerasseg.export.modes import Mode  # noqa: E402

MODELS = {
    "deeplab257": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=257),
    "deeplab513": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=513),
    "fcn224": dict(arch="fcn8s", backbone="vgg16", size=224),
}
LATENCY_MODES = (Mode.FLOAT32, Mode.FLOAT16, Mode.DYNAMIC_RANGE, Mode.INT8)


def latency(content: bytes, *, threads: int, runs: int, warmup: int = 3) -> tuple[float, float]:
    """(p50, p90) seconds of one invoke."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    sample = np.random.default_rng(0).integers(0, 255, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], sample)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def model_macs(content: bytes) -> int:
    return int(sum(op.macs for op in edgetpu.analyze(content).ops))


def calibration_for(size: int, steps: int):
    from kerasseg.data import build_pipeline, open_dataset
    data = open_dataset(f"synthetic:{steps}?val=1&size={size}")
    pipeline = build_pipeline(data, split="train", image_size=(size, size), batch_size=1, training=True)
    return lambda: tflite.calibration_images(pipeline.as_numpy_iterator(), steps=steps)


def peak_int8(*, threads: int, runs: int) -> tuple[float, int, float]:
    """(MACs per second, MACs, p50) of a 64x64x512 -> 512 int8 1x1 convolution."""
    size, channels = 64, 512
    image = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(channels, 1, use_bias=False)(layers.Conv2D(channels, 1)(image))  # the second is measured
    model = keras.Model(image, x)
    rng = np.random.default_rng(0)
    content = tflite.convert(model, mode=Mode.INT8, input_size=(size, size), calibration=lambda: (
        rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4)))
    single = keras.Model(image, layers.Conv2D(channels, 1)(image))
    first = tflite.convert(single, mode=Mode.INT8, input_size=(size, size), calibration=lambda: (
        rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4)))
    p50, _ = latency(content, threads=threads, runs=runs)
    p50_first, _ = latency(first, threads=threads, runs=runs)
    macs = size * size * channels * channels
    seconds = max(p50 - p50_first, 1e-9)
    return macs / seconds, macs, seconds


def bench_model(name: str, *, threads_list, runs: int, calibration_steps: int, alpha: float):
    from kerasseg.models import build_model
    entry = MODELS[name]
    kwargs = {"alpha": alpha} if entry["backbone"] == "mobilenetv2" else {}
    model = build_model(arch=entry["arch"], backbone=entry["backbone"], num_classes=21, **kwargs)
    size = entry["size"]
    calibration = calibration_for(size, calibration_steps)
    contents = {mode: tflite.convert(model, mode=mode, input_size=(size, size), calibration=calibration)
                for mode in LATENCY_MODES}
    macs = model_macs(contents[Mode.INT8])
    rows = {}
    for threads in threads_list:
        for mode, content in contents.items():
            rows[(threads, mode)] = latency(content, threads=threads, runs=runs)
    return size, macs, rows


def quality(run_dir: str, *, qat_steps: int, calibration_steps: int):
    """mIoU drop of PTQ int8 and QAT int8 on the run's val set (exports to a temporary folder)."""
    from kerasseg.export.export import export, source_from_run
    source = source_from_run(run_dir)
    with tempfile.TemporaryDirectory() as out:
        source.out_dir = out
        results = export(source, [Mode.INT8, Mode.QAT], qat_steps=qat_steps, calibration_steps=calibration_steps,
                         max_drop=100.0, log=lambda line: None)
    return {r.mode: r.parity for r in results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["deeplab257"])
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width for the DeepLab models")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--run", type=str, default=None, help="also measure PTQ and QAT mIoU drop on this run")
    parser.add_argument("--qat-steps", type=int, default=200)
    args = parser.parse_args(argv)

    peaks = {t: peak_int8(threads=t, runs=args.runs) for t in args.threads}
    for t, (rate, macs, seconds) in peaks.items():
        print(f"int8 1x1-conv peak, {t} thread(s): {rate / 1e9:6.2f} GMAC/s ({macs / 1e6:.0f} MMAC in "
              f"{1e3 * seconds:.2f} ms)")
    for name in args.models:
        size, macs, rows = bench_model(name, threads_list=args.threads, runs=args.runs,
                                       calibration_steps=args.calibration_steps, alpha=args.alpha)
        print(f"\n{name} ({size}x{size}, {macs / 1e9:.2f} GMAC)")
        print(f"{'threads':>7s} " + " ".join(f"{m.value + ' p50/p90 ms':>26s}" for m in LATENCY_MODES)
              + f" {'int8 speed-up':>14s} {'int8 % of peak':>15s}")
        for t in args.threads:
            cells = " ".join(f"{1e3 * rows[(t, m)][0]:12.1f} /{1e3 * rows[(t, m)][1]:9.1f}   " for m in LATENCY_MODES)
            speedup = rows[(t, Mode.FLOAT32)][0] / rows[(t, Mode.INT8)][0]
            share = (macs / rows[(t, Mode.INT8)][0]) / peaks[t][0]
            print(f"{t:7d} {cells} {speedup:13.2f}x {100 * share:14.1f}%")
        print("goals: int8 >= 2.5x float32 on 1 thread; DeepLabv3+ MobileNetV2 int8 >= 50% of peak")
    if args.run:
        parity = quality(args.run, qat_steps=args.qat_steps, calibration_steps=args.calibration_steps * 10)
        print(f"\nquality on {args.run} ({parity[Mode.INT8].num_images} val images)")
        print(f"{'':10s} {'keras mIoU':>11s} {'tflite mIoU':>12s} {'drop (points)':>14s} {'goal':>8s}")
        for mode, goal in ((Mode.INT8, 2.0), (Mode.QAT, 0.5)):
            report = parity[mode]
            print(f"{mode.value:10s} {100 * report.keras_miou:11.2f} {100 * report.tflite_miou:12.2f} "
                  f"{report.miou_drop:14.2f} {'<= ' + str(goal):>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
