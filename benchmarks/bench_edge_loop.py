"""Does the edge pipeline hide capture and drawing? Loop FPS vs interpreter-only FPS, and the cost of TensorFlow.

    python benchmarks/bench_edge_loop.py                 # builds an int8 MobileNetV2 (0.5) segmenter at 257
    python benchmarks/bench_edge_loop.py --model M.tflite --threads 1

(1) On one Segmenter (the same interpreter, model and thread count), alternated:
interpreter-only FPS (back-to-back ``invoke()`` on a fixed input: set the input,
invoke, copy the output, as the loop's inference thread does) against the
end-to-end FPS of the loop ``python -m edge`` runs, on a 640x480 video file,
headless, with overlay, legend and stats (and a recording with --record).
Goal: loop / interpreter >= 0.9. Beside the FPS, the CPU time per frame of
each: their difference is the work the loop adds to invoke (decode, resize,
argmax, drawing), which the three threads hide only while a core is free for it.
(2) Peak RSS and start-up time (process start to exit after one frame) of the
same command with ``--runtime ai_edge_litert`` and ``--runtime tensorflow``.

The model is built in a subprocess, so this process never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge.loop import Loop, Recorder  # noqa: E402
from edge.segmenter import Segmenter  # noqa: E402
from edge.sources import open_source  # noqa: E402

GOAL = 0.9

BUILD = r'''
import sys
import numpy as np
from kerasseg.backend import keras, tf
size, classes, out, alpha = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
inputs = keras.Input((size, size, 3), batch_size=1)
x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
backbone = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=None)
x = backbone(x)
x = keras.layers.Conv2D(classes, 1)(x)
x = keras.layers.Resizing(size, size, interpolation="bilinear")(x)
model = keras.Model(inputs, x)
converter = tf.lite.TFLiteConverter.from_keras_model(model)
rng = np.random.default_rng(0)
converter.representative_dataset = lambda: ([rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)]
                                            for _ in range(8))
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.int8
open(out, "wb").write(converter.convert())
'''


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .tflite segmentation model (default: build one)")
    parser.add_argument("--size", type=int, default=257, help="input size of the built model")
    parser.add_argument("--alpha", type=float, default=0.5, help="MobileNetV2 width of the built model")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--frames", type=int, default=150, help="frames in the test video")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs of each measurement")
    parser.add_argument("--record", action="store_true", help="also record the overlay to .mp4 in the loop run")
    parser.add_argument("--skip-tensorflow", action="store_true", help="skip the tensorflow.lite comparison")
    return parser.parse_args(argv)


def build_model(path: str, size: int, alpha: float) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", BUILD, str(size), "21", path, str(alpha)], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_video(path: str, frames: int) -> None:
    """A camera-like 640x480 clip: a smooth gradient with moving coloured blocks (MJPG)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    ys, xs = np.mgrid[0:480, 0:640]
    base = np.dstack([xs * 255 // 639, ys * 255 // 479, np.full_like(xs, 96)]).astype(np.uint8)
    for i in range(frames):
        frame = base.copy()
        for k, color in enumerate(((40, 40, 220), (40, 200, 40), (220, 60, 60))):
            x = (60 + 150 * k + 5 * i) % 560
            cv2.rectangle(frame, (x, 120 + 80 * k), (x + 80, 200 + 80 * k), color, thickness=-1)
        writer.write(frame)
    writer.release()


def first_tensor(seg: Segmenter, video: str) -> np.ndarray:
    capture = cv2.VideoCapture(video)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f"cannot read {video}")
    return seg.preprocess(frame)[0]


def interpreter_fps(seg: Segmenter, tensor: np.ndarray, runs: int) -> tuple[float, float]:
    """(FPS, CPU ms per frame) of back-to-back invokes on a fixed input."""
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(runs):
        seg.invoke(tensor)
    return runs / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / runs


def loop_fps(seg: Segmenter, video: str, record: str | None) -> tuple[float, float, dict]:
    """(FPS, CPU ms per frame, stage means in ms) of the loop over the whole video."""
    source = open_source(video)
    recorder = Recorder(record, fps=30.0) if record else None
    cpu, start = time.process_time(), time.perf_counter()
    try:
        result = Loop(seg, source, recorder=recorder).run(handle_signals=False)
    finally:
        source.close()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result.frames / wall, 1e3 * cpu / result.frames, result.stats["stages_ms"]


def process_cost(model: str, video: str, runtime: str, *, root: str = ROOT) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds) of ``python -m edge`` for one frame with ``runtime``, run from
    checkout ``root``."""
    command = [sys.executable, "-m", "edge", "--model", model, "--source", video, "--no-display",
               "--max-frames", "1", "--runtime", runtime, "--log-level", "WARNING"]
    env = dict(os.environ, PYTHONPATH=root)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return took, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime  # ru_maxrss is in KB on Linux


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = os.path.join(tmp, f"mnv2_{args.alpha}_{args.size}_int8.tflite")
            print(f"building an int8 MobileNetV2 (alpha {args.alpha}) segmenter at {args.size}x{args.size} ...",
                  flush=True)
            build_model(model, args.size, args.alpha)
        video = os.path.join(tmp, "video.avi")
        write_video(video, args.frames)

        load_before = os.getloadavg()
        seg = Segmenter.from_file(model, threads=args.threads)  # one interpreter for both measurements
        tensor = first_tensor(seg, video)
        for _ in range(5):
            seg.invoke(tensor)
        interp, loop, interp_cpu, loop_cpu = [], [], [], []
        for _ in range(args.repeats):  # alternate, so background load hits both alike
            fps, cpu = interpreter_fps(seg, tensor, args.frames)
            interp.append(fps)
            interp_cpu.append(cpu)
            fps, cpu, stages = loop_fps(seg, video, os.path.join(tmp, "out.mp4") if args.record else None)
            loop.append(fps)
            loop_cpu.append(cpu)
        i_fps, l_fps = statistics.median(interp), statistics.median(loop)
        ratio = l_fps / i_fps
        print(f"\nmodel {os.path.basename(model)}, threads {args.threads} (one interpreter for both), "
              f"{args.frames} frames of 640x480, {'with' if args.record else 'without'} recording, "
              f"median of {args.repeats} alternated runs")
        print(f"{'interpreter-only FPS':<24} {i_fps:8.1f}   runs {', '.join(f'{x:.1f}' for x in interp)}")
        print(f"{'loop end-to-end FPS':<24} {l_fps:8.1f}   runs {', '.join(f'{x:.1f}' for x in loop)}")
        print(f"{'loop / interpreter':<24} {ratio:8.3f}   goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}")
        # The stages run in three threads; they overlap only when there are idle cores to run them on.
        print("loop stages, ms per frame (last run): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
        i_cpu, l_cpu = statistics.median(interp_cpu), statistics.median(loop_cpu)
        print(f"CPU ms per frame: interpreter-only {i_cpu:.1f}, loop {l_cpu:.1f}; the loop adds {l_cpu - i_cpu:.1f} "
              f"({(l_cpu - i_cpu) / i_cpu:.2f}x invoke), hidden only while a core is free for it; with no free "
              f"core the ratio can reach only {i_cpu / l_cpu:.2f} (interpreter CPU / loop CPU)")
        print(f"cores {len(os.sched_getaffinity(0))}, load average (1/5/15 min) before "
              f"{' / '.join(f'{x:.2f}' for x in load_before)}, after {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")

        runtimes = ["ai_edge_litert"] + ([] if args.skip_tensorflow else ["tensorflow"])
        costs = {r: [process_cost(model, video, r) for _ in range(2)] for r in runtimes}
        print(f"\n{'runtime':<16} {'start-up + 1 frame s':>22} {'peak RSS MB':>12}")
        for runtime, runs in costs.items():
            wall = min(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"{runtime:<16} {wall:>22.2f} {rss:>12.0f}")
        if "tensorflow" in costs:
            base, tf_cost = costs["ai_edge_litert"], costs["tensorflow"]
            print(f"{'tensorflow / litert':<16} {min(r[0] for r in tf_cost) / min(r[0] for r in base):>21.1f}x "
                  f"{max(r[1] for r in tf_cost) / max(r[1] for r in base):>11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
