"""A released model against our re-export of the same weights: per-frame time and pixel agreement.

    python benchmarks/bench_released.py
    python benchmarks/bench_released.py --released deeplabv3_mnv2_pascal_quant.tflite --frames 60
    python benchmarks/bench_released.py --smoke          # benchmarks/run.py --quick: checks the script only

Imports the released int8 file (default: Coral's DeepLabv3 MobileNetV2 depth 0.5 for VOC, tests/data) with
``python -m kerasseg import``'s library calls, timing the import, then exports it as ``convert.py --int8``
does (default CPU head, calibrated on the photos with ``images:``). ``edge.Segmenter`` runs both (1 interpreter
thread, 1 OpenCV thread) on the two photos stretched to 640x480 camera frames, in alternating rounds: per-frame
CPU time (preprocess + invoke + post-processing to a 640x480 class map) and the share of pixels on which their
class maps agree. Goals: ours at least 1.4x faster per frame, at least 98% agreement on each photo. The photos
also calibrate the export, as a user's own images would.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import results  # noqa: E402
from bench_heads import time_heads  # noqa: E402
from machine import cpu_simd, load_line  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
RELEASED = os.path.join(DATA, "deeplabv3_mnv2_dm05_pascal_quant.tflite")
PHOTOS = ("grace_hopper.bmp", "cat.bmp")
FRAME_SIZE = (640, 480)  # width, height
SPEED_GOAL, AGREEMENT_GOAL = 1.4, 0.98
SMOKE = {"input_size": (129, 129), "calibration_steps": 2, "frames": 3}


def import_and_export(released: str, photos: str, work: str, *, input_size, calibration_steps: int) -> dict:
    """Import ``released`` into a run directory and export it to int8 (default head); paths and seconds."""
    from kerasseg.export.export import export
    from kerasseg.export.modes import Mode
    from kerasseg.models.importing import import_model
    from kerasseg.models.importing.labels import imported_spec
    from kerasseg.rundir import open_trained
    from kerasseg.rundir.imported import write_imported_run

    started = time.perf_counter()
    imported = import_model(released)
    run = write_imported_run(imported, os.path.join(work, "imported"), imported_spec(imported))
    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result, = export(open_trained(run.path), [Mode.INT8], dataset=f"images:{photos}", input_size=input_size,
                     calibration_steps=calibration_steps, log=lambda line: None)
    return {"ours": result.path, "import_seconds": import_seconds, "export_seconds": time.perf_counter() - started,
            "head": result.head.value, "parity_pixel_agreement": result.parity.pixel_agreement,
            "config": imported.config}


def agreement(paths: dict, frames: dict) -> dict:
    """Per photo, the share of the 640x480 frame's pixels on which the two models give the same class."""
    from edge.segmenter import Segmenter

    segmenters = {key: Segmenter.from_file(path, threads=1) for key, path in paths.items()}
    return {name: float(np.mean(segmenters["released"].segment(frame) == segmenters["ours"].segment(frame)))
            for name, frame in frames.items()}


def timings(paths: dict, frames: dict, count: int) -> dict:
    """{model: {stage: median CPU ms per frame}} over the photos, the two models alternating."""
    per_photo = [time_heads(paths, frame, count) for frame in frames.values()]
    return {key: {stage: float(np.mean([p[key][stage] for p in per_photo])) for stage in per_photo[0][key]}
            for key in paths}


def report(measured: dict, timed: dict, agree: dict) -> tuple[dict, list]:
    """Print the comparison; the ratios and goals for the results file."""
    print(f"import: {measured['import_seconds']:.1f} s; export (convert.py --int8, head {measured['head']}): "
          f"{measured['export_seconds']:.1f} s; parity against the Keras model on the photos: "
          f"{100 * measured['parity_pixel_agreement']:.2f}% of pixels")
    print(f"{'model':<10} {'preprocess':>10} {'invoke':>8} {'postprocess':>11} {'total':>8} {'wall':>8}  (ms)")
    for key, ms in timed.items():
        print(f"{key:<10} {ms['preprocess']:10.2f} {ms['invoke']:8.2f} {ms['postprocess']:11.2f} {ms['total']:8.2f} "
              f"{ms['wall']:8.2f}")
    speedup = timed["released"]["total"] / timed["ours"]["total"]
    wall = timed["released"]["wall"] / timed["ours"]["wall"]
    print(f"speed-up per frame (CPU): {speedup:.2f}x (wall {wall:.2f}x); goal >= {SPEED_GOAL}x: "
          f"{'met' if speedup >= SPEED_GOAL else 'NOT met'}")
    met = "met" if min(agree.values()) >= AGREEMENT_GOAL else "NOT met"
    print("pixel agreement with the released file: "
          + ", ".join(f"{name} {100 * share:.2f}%" for name, share in agree.items())
          + f"; goal >= {100 * AGREEMENT_GOAL:.0f}% on each: {met}")
    ratios = {"released_over_ours_cpu": speedup, "released_over_ours_wall": wall}
    goals = [results.goal("released_speedup", "per-frame time, released int8 file / our re-export of its weights",
                          compare=">=", target=SPEED_GOAL, measured=speedup, unit="x"),
             results.goal("released_agreement", "pixel agreement of our re-export with the released file (worst "
                          "photo)", compare=">=", target=AGREEMENT_GOAL, measured=min(agree.values()))]
    return ratios, goals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released", default=RELEASED, help="a released int8 DeepLab .tflite (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=40, help="timed frames per model and photo (median)")
    parser.add_argument("--calibration-steps", type=int, default=32, help="convert.py --calibration-steps")
    parser.add_argument("--input-size", type=int, nargs=2, default=None, help="export size (default: the file's)")
    parser.add_argument("--smoke", action="store_true", help=f"a quick check of the script: {SMOKE}")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.input_size, args.calibration_steps, args.frames = SMOKE["input_size"], SMOKE["calibration_steps"], \
            SMOKE["frames"]
    cv2.setNumThreads(1)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-released-") as work:
        photos = os.path.join(work, "photos")
        os.makedirs(photos)
        for name in PHOTOS:
            shutil.copy(os.path.join(DATA, name), photos)
        measured = import_and_export(args.released, photos, work, input_size=args.input_size,
                                     calibration_steps=args.calibration_steps)
        frames = {name: cv2.resize(cv2.imread(os.path.join(DATA, name)), FRAME_SIZE, interpolation=cv2.INTER_AREA)
                  for name in PHOTOS}
        paths = {"released": args.released, "ours": measured["ours"]}
        print(f"CPU: {cpu_simd()}")
        print(f"released {args.released} against our re-export ({measured['config']['backbone']} alpha "
              f"{measured['config'].get('alpha')}), int8, 1 thread, per 640x480 frame, median CPU ms of "
              f"{args.frames} frames per photo in alternating rounds")
        timed = timings(paths, frames, args.frames)
        agree = agreement(paths, frames)
        ratios, goals = report(measured, timed, agree)
    print(load_line(load))
    measured = {key: value for key, value in measured.items() if key != "ours"}
    results.write(args.json, load_before=load, measured={**measured, "ms_per_frame": timed, "agreement": agree,
                                                         "frames": args.frames, "released": args.released},
                  ratios=ratios, goals=goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
