"""Temporal smoothing (``python -m edge --smooth WEIGHT``): flicker on a still scene, its CPU cost, and its lag.

    python benchmarks/bench_smoothing.py --run runs/X          # the run's int8 native artifact (converted if missing)
    python benchmarks/bench_smoothing.py --tiny                # a 3-class colour model: checks the script only

All on one int8 artifact with a native head, frames of 640x480, 1 OpenCV thread, every weight side by side
on the same interpreter outputs:

- static scene: one validation image (stretched to 640x480) plus Gaussian sensor noise of sigma 2, 4 and 8
  per frame; the share of frame pixels whose class (the segmenter's exact class map) changes between
  consecutive frames. Goal: at most half of the share without smoothing, at ``--goal-weight``.
- cost: CPU per frame of the smoothing plus the post-processing, minus the post-processing alone (medians),
  for the segmenter's exact class map at the frame and for the loop's output-resolution map. Goal: <= 0.5 ms.
- lag: the same image panning sideways (``--pan`` pixels per frame, noise sigma 2); for each frame the
  delay d (0..8 frames) whose unsmoothed class map agrees best with the smoothed one, averaged. An
  exponential moving average with weight w trails a steady motion by w / (1 - w) frames.

The artifact is converted (or the run's own ``export/*_int8.tflite`` reused, if it has a native head) in a
subprocess, so this process never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import results  # noqa: E402
from machine import cpu_simd, load_line  # noqa: E402
from edge.segmenter import Segmenter  # noqa: E402
from edge.smoothing import Smoother  # noqa: E402

FRAME = (480, 640)
SIGMAS = (2, 4, 8)
WEIGHTS = (0.0, 0.3, 0.5, 0.7)
GOAL_WEIGHT = 0.5
COST_GOAL_MS = 0.5
MAX_LAG = 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", help="a trained run: its int8 native artifact and its first validation image")
    where.add_argument("--tiny", action="store_true",
                       help="a 3-class colour model (class: the strongest colour channel, scores at stride 4) on a "
                            "red-to-green gradient: checks the script in seconds, measures nothing about a real model")
    parser.add_argument("--frames", type=int, default=60, help="frames per noise level and for the pan")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS), help="0 is off")
    parser.add_argument("--goal-weight", type=float, default=GOAL_WEIGHT, help="the weight the goals are for")
    parser.add_argument("--pan", type=float, default=4.0, help="pixels per frame for the lag")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per cost measurement (median)")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)  # internal: the TensorFlow subprocess
    args = parser.parse_args(argv)
    if 0.0 not in args.weights or args.goal_weight not in args.weights:
        parser.error("--weights must include 0 (off) and --goal-weight")
    return args


def prepare_tiny(out_dir: str) -> None:
    """In the subprocess: the colour model, uint8 in and out, with its spec (native head, stride 4)."""
    from kerasseg.backend import keras, tf
    from edge.artifact import Spec, embed_spec
    from edge.files import write_bytes

    size, stride = 64, 4
    inputs = keras.Input((size, size, 3), batch_size=1)
    x = keras.layers.AveragePooling2D(stride, padding="same")(keras.layers.Rescaling(1.0 / 255)(inputs))
    scores = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(
        np.eye(3).reshape(1, 1, 3, 3)))(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, scores))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)]
                                                for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    spec = Spec(labels=("red", "green", "blue"), input_size=(size, size), mean=(0, 0, 0), std=(255, 255, 255),
                output_stride=stride, output_alignment="half_pixel")
    model = write_bytes(os.path.join(out_dir, "tiny_native_uint8.tflite"), embed_spec(converter.convert(), spec))
    t = np.linspace(0.0, 1.0, FRAME[1], dtype=np.float32)[None, :, None]
    scene = np.repeat((1 - t) * np.float32([0, 0, 255]) + t * np.float32([0, 255, 0]), FRAME[0], axis=0)
    cv2.imwrite(os.path.join(out_dir, "scene.png"), scene.astype(np.uint8))
    with open(os.path.join(out_dir, "prepared.json"), "w") as f:
        json.dump({"model": model}, f)


def prepare(run: str, out_dir: str) -> None:
    """In the subprocess: the run's int8 native artifact (reused or converted into ``out_dir``) and a val image."""
    from kerasseg.data import open_dataset
    from kerasseg.export.export import export
    from kerasseg.rundir import open_trained
    from edge.artifact import load_spec

    trained = open_trained(run)
    existing = [os.path.join(run, "export", n) for n in sorted(os.listdir(os.path.join(run, "export")))
                if n.endswith("_int8.tflite")] if os.path.isdir(os.path.join(run, "export")) else []
    model = next((p for p in existing if load_spec(p)[0].output_stride > 1), None)
    if model is None:
        model = export(trained, ["int8"], heads=["native"], out_dir=out_dir, calibration_steps=20,
                       parity_images=8, log=lambda line: None)[0].path
    example = next(open_dataset(trained.dataset, seed=trained.seed).iter_examples("val"))
    cv2.imwrite(os.path.join(out_dir, "scene.png"), cv2.cvtColor(example.image, cv2.COLOR_RGB2BGR))
    with open(os.path.join(out_dir, "prepared.json"), "w") as f:
        json.dump({"model": model}, f)


def inputs(args, tmp: str) -> tuple[str, np.ndarray, str]:
    """(artifact path, 640x480 BGR scene, what they are)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    which = ["--tiny"] if args.tiny else ["--run", args.run]
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *which, "--prepare", tmp],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"preparing the artifact failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    with open(os.path.join(tmp, "prepared.json")) as f:
        path = json.load(f)["model"]
    scene = cv2.resize(cv2.imread(os.path.join(tmp, "scene.png")), FRAME[::-1], interpolation=cv2.INTER_LINEAR)
    if args.tiny:
        return path, scene, "a 3-class colour model (tiny, native head, uint8) on a red-to-green gradient"
    return path, scene, f"{os.path.basename(path)} of {args.run} on its first validation image"


def outputs(seg: Segmenter, frames) -> tuple[list, object]:
    """The interpreter's raw outputs for ``frames``, and the (shared) geometry."""
    raws, geometry = [], None
    for frame in frames:
        tensor, geometry = seg.preprocess(frame)
        raws.append(seg.invoke(tensor))
    return raws, geometry


def class_maps(seg: Segmenter, raws, geometry, weight: float) -> list:
    smoother = Smoother(weight) if weight else None
    return [seg.postprocess(raw if smoother is None else smoother.update(raw), geometry) for raw in raws]


def flicker(maps) -> float:
    """Share of pixels whose class changes between consecutive maps, averaged over the pairs."""
    return float(np.mean([np.mean(a != b) for a, b in zip(maps, maps[1:])]))


def static_scene(seg, scene, args, rng) -> dict:
    """{sigma: {weight: flicker %}}."""
    out = {}
    for sigma in SIGMAS:
        frames = [np.clip(scene + rng.normal(0, sigma, scene.shape), 0, 255).astype(np.uint8)
                  for _ in range(args.frames)]
        raws, geometry = outputs(seg, frames)
        out[sigma] = {w: 100 * flicker(class_maps(seg, raws, geometry, w)) for w in args.weights}
    return out


def lag(seg, scene, args, rng) -> dict:
    """{weight: (mean delay in frames, % of pixels still disagreeing at that delay)}."""
    wide = cv2.copyMakeBorder(scene, 0, 0, 0, int(args.pan * args.frames) + 1, cv2.BORDER_REFLECT)
    frames = []
    for i in range(args.frames):
        shift = np.float32([[1, 0, -args.pan * i], [0, 1, 0]])
        moved = cv2.warpAffine(wide, shift, FRAME[::-1], flags=cv2.INTER_LINEAR)
        frames.append(np.clip(moved + rng.normal(0, 2, moved.shape), 0, 255).astype(np.uint8))
    raws, geometry = outputs(seg, frames)
    plain = class_maps(seg, raws, geometry, 0.0)
    out = {}
    for weight in args.weights:
        smoothed, delays, misses = class_maps(seg, raws, geometry, weight), [], []
        for t in range(MAX_LAG, len(frames)):
            errors = [np.mean(smoothed[t] != plain[t - d]) for d in range(MAX_LAG + 1)]
            delays.append(int(np.argmin(errors)))
            misses.append(min(errors))
        out[weight] = (float(np.mean(delays)), 100 * float(np.mean(misses)))
    return out


def cpu_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def cost(seg, scene, weight: float, repeats: int) -> dict:
    """CPU ms per frame: post-processing alone and with smoothing, for the frame map and the loop's map."""
    raw, geometry = outputs(seg, [scene])
    raw = raw[0]
    smoother = Smoother(weight)
    smoother.update(raw)
    out = {}
    for name, to_frame in (("frame", True), ("loop", False)):
        alone = cpu_ms(lambda: seg.postprocess(raw, geometry, to_frame=to_frame), repeats)
        smoothed = cpu_ms(lambda: seg.postprocess(smoother.update(raw), geometry, to_frame=to_frame), repeats)
        out[name] = {"alone_ms": alone, "smoothed_ms": smoothed, "extra_ms": smoothed - alone}
    out["update_ms"] = cpu_ms(lambda: smoother.update(raw), repeats)
    return out


def _ratio(row: dict, weight: float) -> float | None:
    """Flicker with ``weight`` over flicker without; None when there is none without."""
    return row[weight] / row[0.0] if row[0.0] else None


def report(what, seg, flickers, lags, costs, args) -> list:
    print(f"{what}; output {seg.output_size[0]}x{seg.output_size[1]}x{seg.spec.num_classes} "
          f"{np.dtype(seg._output['dtype']).name}, frames {FRAME[1]}x{FRAME[0]}")
    print("static scene: % of pixels changing class between consecutive frames")
    print(f"{'sigma':>5} " + " ".join(f"{'w ' + format(w, 'g'):>8}" for w in args.weights) + "  ratio at goal weight")
    for sigma, row in flickers.items():
        ratio = _ratio(row, args.goal_weight)
        print(f"{sigma:5d} " + " ".join(f"{row[w]:7.3f}%" for w in args.weights)
              + (f"  {ratio:.2f}" if ratio is not None else "  (no flicker to reduce)"))
    print(f"lag: panning {args.pan:g} px/frame; mean delay in frames (pixels disagreeing at that delay)")
    for weight, (delay, miss) in lags.items():
        expected = weight / (1 - weight)
        print(f"  w {weight:g}: {delay:.2f} frames ({miss:.2f}%); an average with this weight trails by {expected:.2f}")
    print(f"cost at w {args.goal_weight:g}, CPU ms per frame (median of {args.repeats}): update alone "
          f"{costs['update_ms']:.3f}")
    for name in ("frame", "loop"):
        c = costs[name]
        print(f"  {name:5s} map: post-processing {c['alone_ms']:.3f}, with smoothing {c['smoothed_ms']:.3f}, "
              f"extra {c['extra_ms']:.3f}")
    worst = max((r for r in (_ratio(row, args.goal_weight) for row in flickers.values()) if r is not None),
                default=None)
    extra = max(costs[name]["extra_ms"] for name in ("frame", "loop"))
    return [results.goal("smoothing_flicker", f"flicker with --smooth {args.goal_weight:g} over without, worst "
                         f"sigma", compare="<=", target=0.5, measured=worst),
            results.goal("smoothing_cost", f"extra CPU per 640x480 frame for --smooth {args.goal_weight:g}, ms",
                         compare="<=", target=COST_GOAL_MS, measured=extra)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.prepare:
        prepare_tiny(args.prepare) if args.tiny else prepare(args.run, args.prepare)
        return 0
    cv2.setNumThreads(1)
    load = os.getloadavg()
    print(f"CPU: {cpu_simd()}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path, scene, what = inputs(args, tmp)
        seg = Segmenter.from_file(path, threads=1)
        flickers = static_scene(seg, scene, args, rng)
        lags = lag(seg, scene, args, rng)
        costs = cost(seg, scene, args.goal_weight, args.repeats)
    goals = report(what, seg, flickers, lags, costs, args)
    print(load_line(load))
    measured = {"model": what, "flicker_pct": {str(s): {str(w): v for w, v in row.items()} for s, row in flickers.items()},
                "lag_frames": {str(w): d for w, (d, _) in lags.items()},
                "lag_disagreement_pct": {str(w): m for w, (_, m) in lags.items()}, "cost_ms": costs}
    ratios = {f"flicker_sigma{s}": _ratio(row, args.goal_weight) for s, row in flickers.items()}
    results.write(args.json, load_before=load, measured=measured, ratios=ratios, goals=goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
