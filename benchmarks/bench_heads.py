"""Per-frame time of each export head on the device: preprocess + invoke + postprocess to a 640x480 class map.

    python benchmarks/bench_heads.py
    python benchmarks/bench_heads.py --models mobile513 --frames 30

Models (random weights, 21 classes, built by benchmarks/head_models.py and cached in a temp folder):
DeepLab MobileNetV2 alpha 1.0 with the mobile head (1x1 + image pooling, no decoder, OS16) at 513 and
257, and DeepLabv3+ MobileNetV2 at 513 (``tiny65``, alpha 0.35 at 65, only checks the script). Each is
cut at every head and converted to int8 (uint8 in and out); ``edge.Segmenter`` runs them (1 interpreter thread, 1 OpenCV thread) as on a device, the heads of
one model timed in alternating rounds so that background load hits them alike.
Goals: the default CPU head (``kerasseg.export.export.DEFAULT_HEADS``) at least 1.6x faster per frame
than ``full`` for the mobile head at 513; int8 at least 2.5x faster than float32 per frame at 257 on a
CPU with a VNNI dot product (the figure is printed for any CPU, with its flags).
Random weights give noisier maps than a trained model's, so the exact upsampling (which interpolates
only at class boundaries) costs more here than it would on a real scene: see bench_upsample.py.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import head_models  # noqa: E402
import results  # noqa: E402
from machine import cpu_simd, has_vnni, load_line  # noqa: E402
from edge.segmenter import Segmenter  # noqa: E402

HEADS = ("full", "native", "argmax")
ROUNDS = 5
SPEED_GOAL, INT8_GOAL = 1.6, 2.5


def camera_frame() -> np.ndarray:
    """A 640x480 BGR frame: a gradient with a few solid shapes."""
    ys, xs = np.mgrid[0:480, 0:640]
    frame = np.dstack([xs * 255 // 639, ys * 255 // 479, np.full_like(xs, 96)]).astype(np.uint8)
    cv2.rectangle(frame, (80, 120), (260, 400), (40, 40, 220), thickness=-1)
    cv2.circle(frame, (450, 240), 110, (40, 200, 40), thickness=-1)
    return frame


def stage_times(segmenter: Segmenter, frame: np.ndarray, runs: int) -> dict:
    """{stage: [CPU seconds per frame]} for preprocess, invoke, postprocess, their total, and the total's wall time.

    CPU time (the process's) is what a shared machine distorts least; the interpreter runs in this thread.
    """
    times = {"preprocess": [], "invoke": [], "postprocess": [], "total": [], "wall": []}
    for _ in range(runs):
        wall, t0 = time.perf_counter(), time.process_time()
        tensor, geometry = segmenter.preprocess(frame)
        t1 = time.process_time()
        raw = segmenter.invoke(tensor)
        t2 = time.process_time()
        class_map = segmenter.postprocess(raw, geometry)
        t3 = time.process_time()
        wall = time.perf_counter() - wall
        assert class_map.shape == frame.shape[:2]
        for key, seconds in (("preprocess", t1 - t0), ("invoke", t2 - t1), ("postprocess", t3 - t2),
                             ("total", t3 - t0), ("wall", wall)):
            times[key].append(seconds)
    return times


def time_heads(paths: dict, frame: np.ndarray, frames: int) -> dict:
    """{key: {stage: median ms}}, the segmenters timed in alternating rounds."""
    segmenters = {key: Segmenter.from_file(path, threads=1) for key, path in paths.items()}
    for segmenter in segmenters.values():
        stage_times(segmenter, frame, 2)  # warm-up
    times = {key: {} for key in segmenters}
    for _ in range(ROUNDS):
        for key, segmenter in segmenters.items():
            for stage, values in stage_times(segmenter, frame, max(1, frames // ROUNDS)).items():
                times[key].setdefault(stage, []).extend(values)
    return {key: {stage: 1e3 * statistics.median(v) for stage, v in stages.items()} for key, stages in times.items()}


def default_cpu_head() -> str:
    from kerasseg.export.export import DEFAULT_HEADS  # TensorFlow, imported after the builds and only here
    return DEFAULT_HEADS["cpu"].value


def model_rows(model: str, timed: dict, paths: dict, ratios: dict) -> list:
    """Print one model's rows (its heads); the rows for the results file, ratios to its full head into ``ratios``."""
    full, rows = timed.get((model, "full", "int8")), []
    for key, ms in timed.items():
        output = Segmenter.from_file(paths[key], threads=1)._output
        shape = "x".join(str(int(d)) for d in output["shape"][1:]) + " " + np.dtype(output["dtype"]).name
        rows.append({"model": key[0], "head": key[1], "mode": key[2], "output": shape,
                     **{f"{stage}_ms": value for stage, value in ms.items()}})
        if full and key[2] == "int8":
            ratios["full_over_this_cpu"][f"{key[0]} {key[1]}"] = full["total"] / ms["total"]
        ratio, wall = (f"{full[k] / ms[k]:8.2f}x" if full and key[2] == "int8" else "" for k in ("total", "wall"))
        print(f"{key[0]:<10} {key[1]:<8} {key[2]:<8} {shape:<18} {ms['preprocess']:10.2f} {ms['invoke']:8.2f} "
              f"{ms['postprocess']:11.2f} {ms['total']:8.2f} {ratio:>9} {ms['wall']:8.2f} {wall:>9}")
    return rows


def head_goal(model: str, timed: dict, default: str) -> dict:
    """The default CPU head's per-frame speed-up over the full head, printed and as a goal."""
    full, ours = timed.get((model, "full", "int8")), timed.get((model, default, "int8"))
    speedup = full["total"] / ours["total"] if full and ours else None
    if speedup is not None:
        print(f"goal: default CPU head ({default}) >= {SPEED_GOAL}x faster per frame (CPU) than full for "
              f"{model}: {speedup:.2f}x, {'met' if speedup >= SPEED_GOAL else 'NOT met'}")
    return results.goal("heads", f"per-frame time, full head / default CPU head ({default}, {model})",
                        compare=">=", target=SPEED_GOAL, measured=speedup, unit="x")


def int8_over_float32(model: str, timed: dict, ratios: dict) -> None:
    """Print int8 against float32 per frame for each head timed in both (mobile257); into ``ratios``."""
    for head in ("full", "native"):
        if (model, head, "float32") in timed and (model, head, "int8") in timed:
            f32, i8 = timed[(model, head, "float32")], timed[(model, head, "int8")]
            ratio, invoke = f32["total"] / i8["total"], f32["invoke"] / i8["invoke"]
            ratios["int8_over_float32"][f"{model} {head}"] = {"per_frame": ratio, "invoke": invoke}
            vnni = has_vnni()
            print(f"int8 vs float32 per frame at 257, {head} head: {ratio:.2f}x, invoke alone {invoke:.2f}x "
                  f"(goal >= {INT8_GOAL}x on a VNNI CPU; this CPU {'has' if vnni else 'lacks'} avx512_vnni/avx_vnni"
                  f"{'' if vnni else ', so the goal does not apply here'})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(head_models.MODELS),
                        default=["mobile513", "mobile257", "plus513"])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--frames", type=int, default=40, help="timed frames per head (median)")
    parser.add_argument("--cache", default=head_models.CACHE, help="where the built models are kept")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    jobs = [(m, h, "int8") for m in args.models for h in args.heads]
    if "mobile257" in args.models:
        jobs += [("mobile257", h, "float32") for h in ("full", "native")]
    paths = head_models.ensure(jobs, cache=args.cache)
    default = default_cpu_head()
    load = os.getloadavg()
    frame = camera_frame()
    print(f"CPU: {cpu_simd()}")
    print(f"per 640x480 frame, 1 thread, median CPU ms (and wall ms) of {args.frames} frames per head in {ROUNDS} "
          f"alternating rounds; default CPU head: {default}")
    print(f"{'model':<10} {'head':<8} {'mode':<8} {'output':<18} {'preprocess':>10} {'invoke':>8} "
          f"{'postprocess':>11} {'total':>8} {'full/this':>9} {'wall':>8} {'full/this':>9}")
    rows, ratios, goals = [], {"full_over_this_cpu": {}, "int8_over_float32": {}}, []
    # The goal is stated for mobile513; without it (a --quick run) the first model stands in, and the goal says so.
    goal_model = "mobile513" if "mobile513" in args.models else args.models[0]
    for model in args.models:
        timed = time_heads({job: paths[job] for job in jobs if job[0] == model}, frame, args.frames)
        rows += model_rows(model, timed, paths, ratios)
        if model == goal_model:
            goals.append(head_goal(model, timed, default))
        int8_over_float32(model, timed, ratios)
    print(load_line(load))
    results.write(args.json, load_before=load, measured={"default_cpu_head": default, "frames": args.frames,
                                                         "rows": rows}, ratios=ratios, goals=goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
