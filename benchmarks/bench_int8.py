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

The "runtime" section comes first: the CPU's SIMD features, then float32 and
int8 side by side for a plain 1x1 convolution and a plain keras.applications
MobileNetV2 classifier in the same runtime. Their ratio is the most int8 can
gain here from the kernels alone, whatever the segmentation graph. Each model
block also shows whether XNNPACK runs both conversions (ops it takes, and the
latency with the default delegates turned off). Interpreters are timed in
alternating rounds, so background load hits every variant alike.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import cpu_simd  # noqa: E402
from kerasseg.backend import keras, layers  # noqa: E402
from kerasseg.export import edgetpu, tflite  # noqa: E402
from kerasseg.export.modes import Mode  # noqa: E402

MODELS = {
    "deeplab257": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=257),
    "deeplab513": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=513),
    "fcn224": dict(arch="fcn8s", backbone="vgg16", size=224),
}
LATENCY_MODES = (Mode.FLOAT32, Mode.FLOAT16, Mode.DYNAMIC_RANGE, Mode.INT8)


ROUNDS = 5  # each variant is timed in this many alternating rounds of runs / ROUNDS invokes


def _interpreter(content: bytes, *, threads: int, xnnpack: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=content, num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    sample = np.random.default_rng(0).integers(0, 255, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], sample)
    return interpreter


def latencies(contents: dict, *, threads: int, runs: int, warmup: int = 3, xnnpack: bool = True) -> dict:
    """{key: (p50, p90) seconds of one invoke}, the variants timed in alternating rounds."""
    interpreters = {key: _interpreter(content, threads=threads, xnnpack=xnnpack) for key, content in contents.items()}
    for interpreter in interpreters.values():
        for _ in range(warmup):
            interpreter.invoke()
    times = {key: [] for key in interpreters}
    per_round = max(1, -(-runs // ROUNDS))
    for _ in range(ROUNDS):
        for key, interpreter in interpreters.items():
            for _ in range(per_round):
                start = time.perf_counter()
                interpreter.invoke()
                times[key].append(time.perf_counter() - start)
    return {key: (float(np.percentile(t, 50)), float(np.percentile(t, 90))) for key, t in times.items()}


def latency(content: bytes, *, threads: int, runs: int, warmup: int = 3) -> tuple[float, float]:
    """(p50, p90) seconds of one invoke."""
    return latencies({0: content}, threads=threads, runs=runs, warmup=warmup)[0]


def xnnpack_ops(content: bytes) -> tuple[int, int]:
    """(ops the default XNNPACK delegate takes, ops in the model), at 1 thread."""
    from ai_edge_litert.interpreter import Interpreter
    # Without node fusion every delegated op becomes its own DELEGATE node, so they can be counted.
    interpreter = Interpreter(model_content=content, num_threads=1, experimental_disable_delegate_node_fusion=True)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # the only op listing the Python API has
    delegated = sum(op["op_name"] == "DELEGATE" for op in ops)
    return delegated, len(ops) - delegated  # the listing holds the model's ops plus one node per delegated op


def model_macs(content: bytes) -> int:
    return int(sum(op.macs for op in edgetpu.analyze(content).ops))


def calibration_for(size: int, steps: int):
    from kerasseg.data import build_pipeline, open_dataset
    data = open_dataset(f"synthetic:{steps}?val=1&size={size}")
    pipeline = build_pipeline(data, split="train", image_size=(size, size), batch_size=1, training=True)
    return lambda: tflite.calibration_images(pipeline.as_numpy_iterator(), steps=steps)


PEAK_SIZE, PEAK_CHANNELS = 64, 512


def _random_calibration(size: int):
    rng = np.random.default_rng(0)
    return lambda: (rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4))


def conv_models() -> dict:
    """{(mode, "two" | "one"): bytes}: 1x1 convolutions 3 -> 512 (-> 512), float32 and int8.

    The second 64x64x512 -> 512 convolution is the one measured: the two-conv time minus the one-conv time.
    """
    size, channels = PEAK_SIZE, PEAK_CHANNELS
    image = keras.Input((size, size, 3), name="image")
    first = layers.Conv2D(channels, 1)(image)
    models = {"two": keras.Model(image, layers.Conv2D(channels, 1, use_bias=False)(first)),
              "one": keras.Model(image, first)}
    return {(mode, key): tflite.convert(model, mode=mode, input_size=(size, size), calibration=_random_calibration(size))
            for key, model in models.items() for mode in (Mode.FLOAT32, Mode.INT8)}


def conv_seconds(convs: dict, *, threads: int, runs: int, times: dict | None = None) -> dict:
    """{mode: p50 seconds of the 64x64x512 -> 512 1x1 convolution alone} (from ``times`` if given)."""
    times = times or latencies(convs, threads=threads, runs=runs)
    return {mode: max(times[(mode, "two")][0] - times[(mode, "one")][0], 1e-9) for mode in (Mode.FLOAT32, Mode.INT8)}


def peak_int8(*, threads: int, runs: int, convs: dict | None = None, times: dict | None = None
              ) -> tuple[float, int, float]:
    """(MACs per second, MACs, p50) of a 64x64x512 -> 512 int8 1x1 convolution."""
    seconds = conv_seconds(convs or conv_models(), threads=threads, runs=runs, times=times)[Mode.INT8]
    macs = PEAK_SIZE * PEAK_SIZE * PEAK_CHANNELS * PEAK_CHANNELS
    return macs / seconds, macs, seconds


def classifier_models(size: int = 224) -> dict:
    """{mode: bytes} of a plain keras.applications MobileNetV2 (alpha 1.0, 1000 classes, random weights)."""
    image = keras.Input((size, size, 3), name="image")
    net = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=1.0, include_top=True, weights=None)
    model = keras.Model(image, net(layers.Rescaling(1 / 127.5, offset=-1.0)(image)))
    return {mode: tflite.convert(model, mode=mode, input_size=(size, size), calibration=_random_calibration(size))
            for mode in (Mode.FLOAT32, Mode.INT8)}


def runtime_section(convs: dict, *, threads: int, runs: int) -> list[str]:
    """Lines: float32 vs int8 on the same kernels with no segmentation graph around them."""
    conv = conv_seconds(convs, threads=threads, runs=runs)
    macs = PEAK_SIZE * PEAK_SIZE * PEAK_CHANNELS * PEAK_CHANNELS
    classifier = latencies(classifier_models(), threads=threads, runs=runs)
    rows = [(f"1x1 conv {PEAK_SIZE}x{PEAK_SIZE}x{PEAK_CHANNELS} -> {PEAK_CHANNELS}", conv[Mode.FLOAT32],
             conv[Mode.INT8], macs),
            ("MobileNetV2 classifier 224, alpha 1.0", classifier[Mode.FLOAT32][0], classifier[Mode.INT8][0], None)]
    lines = [f"{'runtime check, ' + str(threads) + ' thread(s)':<42s} {'float32 ms':>11s} {'int8 ms':>9s} "
             f"{'int8 speed-up':>14s} {'float32 GMAC/s':>15s} {'int8 GMAC/s':>12s}"]
    for name, f32, i8, work in rows:
        rates = (f"{work / f32 / 1e9:15.2f} {work / i8 / 1e9:12.2f}" if work else f"{'':15s} {'':12s}")
        lines.append(f"{name:<42s} {1e3 * f32:11.2f} {1e3 * i8:9.2f} {f32 / i8:13.2f}x {rates}")
    return lines


def bench_model(name: str, *, threads_list, runs: int, calibration_steps: int, alpha: float, convs: dict):
    """Latency rows {(threads, mode): (p50, p90)}, the int8 peak per thread count timed in the same rounds
    (so both see the same load), and XNNPACK's share of the float32 and int8 graphs."""
    from kerasseg.models import build_model
    entry = MODELS[name]
    kwargs = {"alpha": alpha} if entry["backbone"] == "mobilenetv2" else {}
    model = build_model(arch=entry["arch"], backbone=entry["backbone"], num_classes=21, **kwargs)
    size = entry["size"]
    calibration = calibration_for(size, calibration_steps)
    contents = {mode: tflite.convert(model, mode=mode, input_size=(size, size), calibration=calibration)
                for mode in LATENCY_MODES}
    macs = model_macs(contents[Mode.INT8])
    rows, peaks = {}, {}
    for threads in threads_list:
        times = latencies({**contents, **convs}, threads=threads, runs=runs)
        for mode in contents:
            rows[(threads, mode)] = times[mode]
        peaks[threads] = peak_int8(threads=threads, runs=runs, convs=convs, times=times)
    pair = {mode: contents[mode] for mode in (Mode.FLOAT32, Mode.INT8)}
    builtin = latencies(pair, threads=1, runs=max(3, runs // 2), xnnpack=False)
    delegation = {mode: (xnnpack_ops(content), builtin[mode][0]) for mode, content in pair.items()}
    return size, macs, rows, peaks, delegation


def quality(run_dir: str, *, qat_steps: int, calibration_steps: int):
    """mIoU drop of PTQ int8 and QAT int8 on the run's val set (exports to a temporary folder)."""
    from kerasseg.export.export import export
    from kerasseg.export.heads import Head
    from kerasseg.training.trained import open_trained
    with tempfile.TemporaryDirectory() as out:
        results = export(open_trained(run_dir), [Mode.INT8, Mode.QAT], out_dir=out, heads=[Head.FULL],
                         qat_steps=qat_steps, calibration_steps=calibration_steps, max_drop=100.0,
                         log=lambda line: None)
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

    print(f"CPU: {cpu_simd()}")
    convs = conv_models()
    for line in runtime_section(convs, threads=1, runs=args.runs):
        print(line)
    print("A model's int8 speed-up can exceed these ratios only where its own ops do: XNNPACK's x86 int8 kernels\n"
          "without a VNNI dot product widen int8 to 16 bits and multiply pairs (vpmaddwd), about the float FMA rate.")
    for name in args.models:
        size, macs, rows, peaks, delegation = bench_model(
            name, threads_list=args.threads, runs=args.runs, calibration_steps=args.calibration_steps,
            alpha=args.alpha, convs=convs)
        print()
        for t, (rate, peak_macs, seconds) in peaks.items():
            print(f"int8 1x1-conv peak, {t} thread(s): {rate / 1e9:6.2f} GMAC/s ({peak_macs / 1e6:.0f} MMAC in "
                  f"{1e3 * seconds:.2f} ms, timed in the same rounds as {name})")
        print(f"{name} ({size}x{size}, {macs / 1e9:.2f} GMAC)")
        print(f"{'threads':>7s} " + " ".join(f"{m.value + ' p50/p90 ms':>26s}" for m in LATENCY_MODES)
              + f" {'int8 speed-up':>14s} {'int8 % of peak':>15s}")
        for t in args.threads:
            cells = " ".join(f"{1e3 * rows[(t, m)][0]:12.1f} /{1e3 * rows[(t, m)][1]:9.1f}   " for m in LATENCY_MODES)
            speedup = rows[(t, Mode.FLOAT32)][0] / rows[(t, Mode.INT8)][0]
            share = (macs / rows[(t, Mode.INT8)][0]) / peaks[t][0]
            print(f"{t:7d} {cells} {speedup:13.2f}x {100 * share:14.1f}%")
        print("goals: int8 >= 2.5x float32 on 1 thread; DeepLabv3+ MobileNetV2 int8 >= 50% of peak")
        for mode, ((delegated, total), builtin_p50) in delegation.items():
            print(f"  {mode.value}: XNNPACK takes {delegated} of {total} ops; without the default "
                  f"delegates (builtin kernels), 1 thread p50 {1e3 * builtin_p50:.1f} ms")
    if args.run:
        parity = quality(args.run, qat_steps=args.qat_steps, calibration_steps=args.calibration_steps * 10)
        print(f"\nquality on {args.run} ({parity[Mode.INT8].num_images} val images)")
        print(f"{'':10s} {'keras mIoU':>11s} {'device mIoU':>12s} {'drop (points)':>14s} {'goal':>8s}")
        for mode, goal in ((Mode.INT8, 2.0), (Mode.QAT, 0.5)):
            report = parity[mode]
            print(f"{mode.value:10s} {100 * report.keras_miou:11.2f} {100 * report.device_miou:12.2f} "
                  f"{report.miou_drop:14.2f} {'<= ' + str(goal):>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
