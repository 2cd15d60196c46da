"""How the device should bring native-resolution scores to a 640x480 class map: time and agreement.

    python benchmarks/bench_upsample.py
    python benchmarks/bench_upsample.py --repeats 50

Candidates, on uint8 scores (what full-integer artifacts output), 1 OpenCV thread, CPU ms per frame:
  (a) nearest      argmax at the native resolution, then nearest neighbour (the segmenter's grid)
  (b) cv2 bilinear cv2.resize of the uint8 scores to 640x480 (it takes any channel count), then argmax
  (c) cv2 small    the same at 320x240, then nearest to 640x480 (a display-size map)
  (d) exact        edge.upsample.exact: argmax at native resolution, bilinear only where sources disagree
Agreement is the share of pixels equal to the reference, the argmax of float32 bilinear scores at the
frame's pixels (edge.upsample.bilinear: what the Keras full head computes, sampled at the frame), and to
(b). The geometry is a stretch from 513x513 with half-pixel alignment, where (b) is a plain resize.

Score maps: "scene" is a trained model's kind of output (background, three objects, low noise),
"busy" has 21 classes in smooth blobs (many boundaries), "noise" is random (a boundary everywhere, the
worst case for (d)). The default must agree with the full head on >= 99% of pixels.
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

import results  # noqa: E402
from machine import cpu_simd, load_line  # noqa: E402
from edge.upsample import bilinear, decide, exact, frame_grid, nearest  # noqa: E402

FRAME = (480, 640)
SMALL = (240, 320)
INPUT = 513
CASES = [(21, 16), (21, 4), (5, 16), (5, 4)]  # (classes, stride)
GOAL = 0.99


def scores(kind: str, size: int, classes: int, rng) -> np.ndarray:
    """(size, size, classes) uint8 scores of the given kind."""
    if kind == "noise":
        return rng.integers(0, 256, (size, size, classes), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size] / size
    values = np.zeros((size, size, classes), np.float32)
    if kind == "scene":
        values[..., 0] = 2.0
        for _ in range(3):
            c = rng.integers(1, classes)
            (cy, cx), (ry, rx) = rng.uniform(0.2, 0.8, 2), rng.uniform(0.1, 0.3, 2)
            values[..., c] = np.maximum(values[..., c], 4.0 * (1 - ((yy - cy) / ry) ** 2 - ((xx - cx) / rx) ** 2))
        noise, amplitude = 6, 0.5
    else:  # busy
        noise, amplitude = 4, 2.0
    coarse = rng.normal(size=(noise, noise, classes)).astype(np.float32)
    values += amplitude * np.dstack([cv2.resize(coarse[..., c], (size, size), interpolation=cv2.INTER_CUBIC)
                                     for c in range(classes)])
    return np.clip(values * 20 + 100, 0, 255).astype(np.uint8)


def cpu_ms(function, repeats: int):
    """(median CPU ms of one call, its result)."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times), result


def candidates(grid, small_grid, values):
    h, w = FRAME
    return {
        "(a) nearest": lambda: nearest(grid, decide(values).astype(np.uint8)),
        "(b) cv2 bilinear": lambda: decide(cv2.resize(values, (w, h), interpolation=cv2.INTER_LINEAR)),
        "(c) cv2 small": lambda: nearest(small_grid, decide(cv2.resize(values, SMALL[::-1],
                                                                       interpolation=cv2.INTER_LINEAR))),
        "(d) exact": lambda: exact(grid, values, decide(values).astype(np.uint8)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per candidate (median)")
    parser.add_argument("--kinds", nargs="+", choices=("scene", "busy", "noise"), default=["scene", "busy", "noise"])
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    load = os.getloadavg()
    print(f"CPU: {cpu_simd()}")
    print(f"640x480 class map from a {INPUT}x{INPUT} model's native scores (uint8), CPU ms per frame (median of "
          f"{args.repeats}); agreement with the float bilinear reference and with (b)")
    rng = np.random.default_rng(0)
    lowest, rows = 1.0, []
    print(f"{'classes':>7} {'stride':>6} {'native':>7} {'scores':>6} {'candidate':<17} {'CPU ms':>7} "
          f"{'= reference':>11} {'= (b)':>7}")
    for classes, stride in CASES:
        size = -(-INPUT // stride)
        grid = frame_grid(FRAME, (0, 0, INPUT, INPUT), input_size=(INPUT, INPUT), output_size=(size, size))
        small_grid = frame_grid(FRAME, (0, 0, *SMALL), input_size=SMALL, output_size=SMALL)
        for kind in args.kinds:
            values = scores(kind, size, classes, rng)
            reference = decide(bilinear(grid, values))
            timed = {name: cpu_ms(f, args.repeats) for name, f in candidates(grid, small_grid, values).items()}
            opencv = timed["(b) cv2 bilinear"][1]
            lowest = min(lowest, float((timed["(d) exact"][1] == reference).mean()))
            for name, (ms, class_map) in timed.items():
                agrees = 100 * float((class_map == reference).mean()), 100 * float((class_map == opencv).mean())
                rows.append({"classes": classes, "stride": stride, "native": size, "scores": kind, "candidate": name,
                             "cpu_ms": ms, "agrees_with_reference_pct": agrees[0], "agrees_with_b_pct": agrees[1]})
                print(f"{classes:7d} {stride:6d} {size:4d}^2 {kind:>6} {name:<17} {ms:7.2f} "
                      f"{agrees[0]:10.2f}% {agrees[1]:6.2f}%")
    print(f"goal: the default, (d) exact, agrees with the reference on >= {100 * GOAL:.0f}% of pixels: lowest "
          f"{100 * lowest:.2f}%, {'met' if lowest >= GOAL else 'NOT met'}")
    print(load_line(load))
    results.write(args.json, load_before=load, measured={"rows": rows}, ratios={"exact_lowest_agreement": lowest},
                  goals=[results.goal("upsample_agreement", "default upsampling agrees with the full head's bilinear "
                                      "(lowest, %)", compare=">=", target=100 * GOAL, measured=100 * lowest,
                                      unit="%")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
