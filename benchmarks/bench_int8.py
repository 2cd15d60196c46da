"""int8 vs float TFLite latency in ai_edge_litert, the runtime's int8 peak, and QAT/PTQ quality.

    python benchmarks/bench_int8.py                      # DeepLabv3+ MobileNetV2 at 257, 1 and 2 threads
    python benchmarks/bench_int8.py --models deeplab257 deeplab513 fcn224
    python benchmarks/bench_int8.py --run runs/X          # also QAT and PTQ mIoU drop on the run's val set
    python benchmarks/bench_int8.py --models deeplab65 --smoke --json R.json   # checks the script: tiny sizes

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
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import results  # noqa: E402
from machine import cpu_simd  # noqa: E402
from kerasseg.backend import keras, layers  # noqa: E402
from kerasseg.export import edgetpu, tflite  # noqa: E402
from kerasseg.export.modes import Mode  # noqa: E402

MODELS = {
    "deeplab257": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=257),
    "deeplab513": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=513),
    "fcn224": dict(arch="fcn8s", backbone="vgg16", size=224),
    "deeplab65": dict(arch="deeplabv3plus", backbone="mobilenetv2", size=65),  # --smoke: checks, not numbers
}
SPEEDUP_GOAL, PEAK_GOAL = 2.5, 50.0  # int8 / float32 on one thread; int8 % of the runtime's int8 peak
DROP_GOALS = {Mode.INT8: 2.0, Mode.QAT: 0.5}  # mIoU points lost from the float model


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


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What the runtime check and each model's table build and time."""
    peak: tuple = (64, 512)  # the measured 1x1 convolution: (side, channels)
    classifier: tuple | None = (224, 1.0)  # the keras.applications MobileNetV2: (side, alpha); None: not timed
    modes: tuple = (Mode.FLOAT32, Mode.FLOAT16, Mode.DYNAMIC_RANGE, Mode.INT8)

    @property
    def peak_macs(self) -> int:
        side, channels = self.peak
        return side * side * channels * channels


FULL, SMOKE = Sizes(), Sizes(peak=(16, 64), classifier=None, modes=(Mode.FLOAT32, Mode.INT8))


def _random_calibration(size: int):
    rng = np.random.default_rng(0)
    return lambda: (rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4))


def conv_models(sizes: Sizes) -> dict:
    """{(mode, "two" | "one"): bytes}: 1x1 convolutions 3 -> C (-> C), float32 and int8.

    The second SxSxC -> C convolution is the one measured: the two-conv time minus the one-conv time.
    """
    size, channels = sizes.peak
    image = keras.Input((size, size, 3), name="image")
    first = layers.Conv2D(channels, 1)(image)
    models = {"two": keras.Model(image, layers.Conv2D(channels, 1, use_bias=False)(first)),
              "one": keras.Model(image, first)}
    return {(mode, key): tflite.convert(model, mode=mode, input_size=(size, size),
                                        calibration=_random_calibration(size))
            for key, model in models.items() for mode in (Mode.FLOAT32, Mode.INT8)}


def conv_seconds(convs: dict, *, threads: int, runs: int, times: dict | None = None) -> dict:
    """{mode: p50 seconds of the measured 1x1 convolution alone} (from ``times`` if given)."""
    times = times or latencies(convs, threads=threads, runs=runs)
    return {mode: max(times[(mode, "two")][0] - times[(mode, "one")][0], 1e-9) for mode in (Mode.FLOAT32, Mode.INT8)}


def classifier_models(sizes: Sizes) -> dict:
    """{mode: bytes} of a plain keras.applications MobileNetV2 (1000 classes, random weights)."""
    size, alpha = sizes.classifier
    image = keras.Input((size, size, 3), name="image")
    net = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, include_top=True, weights=None)
    model = keras.Model(image, net(layers.Rescaling(1 / 127.5, offset=-1.0)(image)))
    return {mode: tflite.convert(model, mode=mode, input_size=(size, size), calibration=_random_calibration(size))
            for mode in (Mode.FLOAT32, Mode.INT8)}


def runtime_section(convs: dict, sizes: Sizes, *, threads: int, runs: int) -> dict:
    """Print float32 vs int8 on the same kernels with no segmentation graph around them; {row: numbers}."""
    conv = conv_seconds(convs, threads=threads, runs=runs)
    side, channels = sizes.peak
    rows = {f"1x1 conv {side}x{side}x{channels} -> {channels}": (conv[Mode.FLOAT32], conv[Mode.INT8], sizes.peak_macs)}
    if sizes.classifier:
        classifier = latencies(classifier_models(sizes), threads=threads, runs=runs)
        rows[f"MobileNetV2 classifier {sizes.classifier[0]}, alpha {sizes.classifier[1]}"] = (
            classifier[Mode.FLOAT32][0], classifier[Mode.INT8][0], None)
    print(f"{'runtime check, ' + str(threads) + ' thread(s)':<42s} {'float32 ms':>11s} {'int8 ms':>9s} "
          f"{'int8 speed-up':>14s} {'float32 GMAC/s':>15s} {'int8 GMAC/s':>12s}")
    for name, (f32, i8, work) in rows.items():
        rates = (f"{work / f32 / 1e9:15.2f} {work / i8 / 1e9:12.2f}" if work else f"{'':15s} {'':12s}")
        print(f"{name:<42s} {1e3 * f32:11.2f} {1e3 * i8:9.2f} {f32 / i8:13.2f}x {rates}")
    print("A model's int8 speed-up can exceed these ratios only where its own ops do: XNNPACK's x86 int8 kernels\n"
          "without a VNNI dot product widen int8 to 16 bits and multiply pairs (vpmaddwd), about the float FMA rate.")
    return {name: {"float32_ms": 1e3 * f32, "int8_ms": 1e3 * i8, "int8_speedup": f32 / i8}
            for name, (f32, i8, _) in rows.items()}


def bench_model(name: str, sizes: Sizes, *, threads_list, runs: int, calibration_steps: int, alpha: float,
                convs: dict) -> dict:
    """One model's measurements: p50/p90 ms per (threads, mode), the int8 1x1-conv peak per thread count timed in
    the same rounds (so both see the same load), and XNNPACK's share of the float32 and int8 graphs."""
    from kerasseg.models import build_model
    entry = MODELS[name]
    kwargs = {"alpha": alpha} if entry["backbone"] == "mobilenetv2" else {}
    model = build_model(arch=entry["arch"], backbone=entry["backbone"], num_classes=21, **kwargs)
    size = entry["size"]
    calibration = calibration_for(size, calibration_steps)
    contents = {mode: tflite.convert(model, mode=mode, input_size=(size, size), calibration=calibration)
                for mode in sizes.modes}
    threads = {}
    for count in threads_list:
        times = latencies({**contents, **convs}, threads=count, runs=runs)
        peak_seconds = conv_seconds(convs, threads=count, runs=runs, times=times)[Mode.INT8]
        threads[str(count)] = {"p50_ms": {m.value: 1e3 * times[m][0] for m in contents},
                               "p90_ms": {m.value: 1e3 * times[m][1] for m in contents},
                               "peak_int8_gmac_per_s": sizes.peak_macs / peak_seconds / 1e9,
                               "peak_conv_ms": 1e3 * peak_seconds}
    pair = {mode: contents[mode] for mode in (Mode.FLOAT32, Mode.INT8)}
    builtin = latencies(pair, threads=1, runs=max(3, runs // 2), xnnpack=False)
    xnnpack = {}
    for mode, content in pair.items():
        delegated, total = xnnpack_ops(content)
        xnnpack[mode.value] = {"ops_delegated": delegated, "ops": total, "builtin_p50_ms": 1e3 * builtin[mode][0]}
    return {"size": size, "gmac": model_macs(contents[Mode.INT8]) / 1e9, "threads": threads, "xnnpack": xnnpack}


def print_model(name: str, result: dict, peak_macs: int) -> dict:
    """Print one model's table; {threads: {"int8_speedup", "int8_share_of_peak_pct"}}."""
    size, modes, ratios = result["size"], list(next(iter(result["threads"].values()))["p50_ms"]), {}
    print()
    for t, row in result["threads"].items():
        print(f"int8 1x1-conv peak, {t} thread(s): {row['peak_int8_gmac_per_s']:6.2f} GMAC/s ({peak_macs / 1e6:.0f} "
              f"MMAC in {row['peak_conv_ms']:.2f} ms, timed in the same rounds as {name})")
    print(f"{name} ({size}x{size}, {result['gmac']:.2f} GMAC)")
    print(f"{'threads':>7s} " + " ".join(f"{m + ' p50/p90 ms':>26s}" for m in modes)
          + f" {'int8 speed-up':>14s} {'int8 % of peak':>15s}")
    for t, row in result["threads"].items():
        cells = " ".join(f"{row['p50_ms'][m]:12.1f} /{row['p90_ms'][m]:9.1f}   " for m in modes)
        speedup = row["p50_ms"]["float32"] / row["p50_ms"]["int8"]
        share = 100 * (result["gmac"] / (row["p50_ms"]["int8"] / 1e3)) / row["peak_int8_gmac_per_s"]
        ratios[t] = {"int8_speedup": speedup, "int8_share_of_peak_pct": share}
        print(f"{int(t):7d} {cells} {speedup:13.2f}x {share:14.1f}%")
    print(f"goals: int8 >= {SPEEDUP_GOAL}x float32 on 1 thread; DeepLabv3+ MobileNetV2 int8 >= {PEAK_GOAL:g}% of peak")
    for mode, x in result["xnnpack"].items():
        print(f"  {mode}: XNNPACK takes {x['ops_delegated']} of {x['ops']} ops; without the default "
              f"delegates (builtin kernels), 1 thread p50 {x['builtin_p50_ms']:.1f} ms")
    return ratios


def quality(run_dir: str, *, qat_steps: int, calibration_steps: int) -> dict:
    """Print and return the mIoU of PTQ int8 and QAT int8 against the float model on the run's val set."""
    from kerasseg.export.export import export
    from kerasseg.export.heads import Head
    from kerasseg.rundir import open_trained
    with tempfile.TemporaryDirectory() as out:
        exported = export(open_trained(run_dir), [Mode.INT8, Mode.QAT], out_dir=out, heads=[Head.FULL],
                          qat_steps=qat_steps, calibration_steps=calibration_steps, max_drop=100.0,
                          log=lambda line: None)
    parity = {r.mode: r.parity for r in exported}
    print(f"\nquality on {run_dir} ({parity[Mode.INT8].num_images} val images)")
    print(f"{'':10s} {'keras mIoU':>11s} {'device mIoU':>12s} {'drop (points)':>14s} {'goal':>8s}")
    for mode, goal in DROP_GOALS.items():
        report = parity[mode]
        print(f"{mode.value:10s} {100 * report.keras_miou:11.2f} {100 * report.device_miou:12.2f} "
              f"{report.miou_drop:14.2f} {'<= ' + str(goal):>8s}")
    return {"run": run_dir, "val_images": parity[Mode.INT8].num_images,
            "float_miou_pct": 100 * parity[Mode.INT8].keras_miou,
            **{mode.value: {"device_miou_pct": 100 * parity[mode].device_miou, "drop_points": parity[mode].miou_drop}
               for mode in DROP_GOALS}}


def goals_of(models: dict, ratios: dict, quality_: dict | None) -> list:
    """The goals, for the first model on one thread (or its fewest threads) and the run's quality."""
    name = next(iter(models), None)
    row = None
    if name is not None and ratios[name]:
        row = ratios[name].get("1") or ratios[name][min(ratios[name], key=int)]
    at = f" ({name}, 1 thread)"
    goals = [results.goal("int8_speedup", "int8 speed-up over float32" + at, compare=">=", target=SPEEDUP_GOAL,
                          measured=row and row["int8_speedup"], unit="x"),
             results.goal("int8_peak_share", "int8 share of the runtime's int8 1x1-conv peak" + at, compare=">=",
                          target=PEAK_GOAL, measured=row and row["int8_share_of_peak_pct"], unit="%")]
    for mode, text in ((Mode.QAT, "QAT mIoU drop from float (points)"),
                       (Mode.INT8, "PTQ int8 mIoU drop from float (points)")):
        goals.append(results.goal(f"{mode.value}_drop", text, compare="<=", target=DROP_GOALS[mode],
                                  measured=quality_ and quality_[mode.value]["drop_points"]))
    return goals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["deeplab257"])
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width for the DeepLab models")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--run", type=str, default=None, help="also measure PTQ and QAT mIoU drop on this run")
    parser.add_argument("--qat-steps", type=int, default=200)
    parser.add_argument("--smoke", action="store_true",
                        help="a small 1x1 conv, no classifier, only float32 and int8: checks the script, not the numbers")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    sizes = SMOKE if args.smoke else FULL

    print(f"CPU: {cpu_simd()}")
    convs = conv_models(sizes)
    runtime = runtime_section(convs, sizes, threads=1, runs=args.runs)
    models = {name: bench_model(name, sizes, threads_list=args.threads, runs=args.runs, alpha=args.alpha,
                                calibration_steps=args.calibration_steps, convs=convs) for name in args.models}
    ratios = {name: print_model(name, result, sizes.peak_macs) for name, result in models.items()}
    quality_ = quality(args.run, qat_steps=args.qat_steps,
                       calibration_steps=args.calibration_steps * 10) if args.run else None
    results.write(args.json, load_before=load, goals=goals_of(models, ratios, quality_), ratios=ratios,
                  measured={"runtime_check": runtime, "models": models, "quality": quality_})
    return 0


if __name__ == "__main__":
    sys.exit(main())
